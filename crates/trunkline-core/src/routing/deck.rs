//! One carrier's rate deck as the replicated state holds it: packed, immutable, sorted.
//!
//! Decks are the bulk of the state (millions of rows per carrier), and every member holds
//! every deck, so a row's resident cost is what decides how large a deck a node can carry.
//! A [`Rate`] is about a hundred bytes inline plus the prefix's heap allocation; here a row is
//! 28 bytes in four columns:
//!
//! - the prefix as a [`PrefixKey`] (its length and its digits read as a number, in a `u64`),
//! - the rate and the connect fee (a `u64` each: real decks have as many price points as rows
//!   when prices carry sub-cent precision, so they are not shared),
//! - the number of the row's [`Details`]: its effective period and description, which decks
//!   repeat across thousands of rows and are stored once.
//!
//! Rows stay in the order the configuration keeps them (prefix digits in lexicographic order,
//! then effective-from), and a deck reads back as [`Rate`]s. It serialises exactly as the
//! `Vec<Rate>` it replaces, so snapshots and backups written before keep loading.

use std::{cmp::Ordering, collections::HashMap, fmt, ops::Range};

use serde::{
    de::{SeqAccess, Visitor},
    ser::SerializeSeq,
    Deserialize, Deserializer, Serialize, Serializer,
};

use super::model::{Rate, MAX_PREFIX_DIGITS};
use crate::FieldError;

/// Bit position of the length in a [`PrefixKey`]; 10^15 < 2^50.
pub(crate) const LENGTH_SHIFT: u32 = 50;
const VALUE_MASK: u64 = (1 << LENGTH_SHIFT) - 1;

/// 1 to 15 decimal digits packed as `length << 50 | value`: unique per digit string (leading
/// zeros are kept by the length) and never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrefixKey(u64);

impl PrefixKey {
    /// The key of `digits`; `None` unless it is 1 to 15 ASCII digits.
    pub fn parse(digits: &str) -> Option<PrefixKey> {
        let bytes = digits.as_bytes();
        if bytes.is_empty()
            || bytes.len() > MAX_PREFIX_DIGITS
            || !bytes.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let value = bytes
            .iter()
            .fold(0_u64, |value, byte| value * 10 + u64::from(byte - b'0'));
        Some(PrefixKey::from_parts(bytes.len(), value))
    }

    /// The key of the `length` digits whose decimal value is `value`.
    pub(crate) fn from_parts(length: usize, value: u64) -> PrefixKey {
        PrefixKey(((length as u64) << LENGTH_SHIFT) | value)
    }

    /// The key whose packed form is `raw`; only for keys made by [`PrefixKey::raw`].
    pub(crate) fn from_raw(raw: u64) -> PrefixKey {
        PrefixKey(raw)
    }

    /// The packed form, `length << 50 | value`.
    pub fn raw(self) -> u64 {
        self.0
    }

    /// Number of digits.
    pub fn len(self) -> usize {
        (self.0 >> LENGTH_SHIFT) as usize
    }

    /// Never true: a key has at least one digit. (Clippy wants it beside `len`.)
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    fn value(self) -> u64 {
        self.0 & VALUE_MASK
    }

    /// The digits, without allocating.
    pub fn digits(self) -> PrefixDigits {
        let length = self.len().min(MAX_PREFIX_DIGITS);
        let mut bytes = [b'0'; MAX_PREFIX_DIGITS];
        let mut value = self.value();
        for byte in bytes.iter_mut().take(length).rev() {
            // `value % 10` is below 10.
            *byte = b'0' + (value % 10) as u8;
            value /= 10;
        }
        PrefixDigits { bytes, length }
    }

    /// The order of the digit strings (`"1" < "12" < "2"`), which is the order decks keep.
    pub fn cmp_digits(self, other: PrefixKey) -> Ordering {
        // Padding both with zeros on the right to 15 digits orders them as strings, except
        // that a prefix and the same prefix followed by zeros pad alike: the shorter is first.
        let padded = |key: PrefixKey| {
            key.value() * 10_u64.pow((MAX_PREFIX_DIGITS.saturating_sub(key.len())) as u32)
        };
        padded(self)
            .cmp(&padded(other))
            .then(self.len().cmp(&other.len()))
    }
}

/// A prefix's digits on the stack; derefs to `&str`.
#[derive(Clone, Copy)]
pub struct PrefixDigits {
    bytes: [u8; MAX_PREFIX_DIGITS],
    length: usize,
}

impl std::ops::Deref for PrefixDigits {
    type Target = str;

    fn deref(&self) -> &str {
        let digits = self.bytes.get(..self.length).unwrap_or_default();
        // Only ASCII digits are ever written.
        std::str::from_utf8(digits).unwrap_or_default()
    }
}

impl fmt::Display for PrefixDigits {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self)
    }
}

impl fmt::Debug for PrefixDigits {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, formatter)
    }
}

/// What rows share: the effective period and the description.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Details {
    effective_from_ms: Option<u64>,
    effective_until_ms: Option<u64>,
    description: Box<str>,
}

/// One row of a [`Deck`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeckRow<'a> {
    pub prefix: PrefixKey,
    pub rate_micros_per_minute: u64,
    pub connect_fee_micros: u64,
    pub effective_from_ms: Option<u64>,
    pub effective_until_ms: Option<u64>,
    pub description: &'a str,
}

impl DeckRow<'_> {
    pub fn to_rate(&self) -> Rate {
        Rate {
            prefix: self.prefix.digits().to_string(),
            rate_micros_per_minute: self.rate_micros_per_minute,
            connect_fee_micros: self.connect_fee_micros,
            description: self.description.to_owned(),
            effective_from_ms: self.effective_from_ms,
            effective_until_ms: self.effective_until_ms,
        }
    }
}

/// One carrier's deck; see the module documentation. Build it with [`DeckBuilder`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Deck {
    prefixes: Vec<PrefixKey>,
    rates: Vec<u64>,
    fees: Vec<u64>,
    details_of: Vec<u32>,
    details: Vec<Details>,
}

impl fmt::Debug for Deck {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Deck")
            .field("rows", &self.len())
            .field("details", &self.details.len())
            .finish()
    }
}

impl Deck {
    /// A deck of `rates`, which must already be in deck order (by prefix digits, then
    /// effective-from); refuses a row whose prefix is not 1 to 15 digits.
    pub fn from_rates<'a>(rates: impl IntoIterator<Item = &'a Rate>) -> Result<Deck, FieldError> {
        let rates = rates.into_iter();
        let mut builder = DeckBuilder::with_capacity(rates.size_hint().0);
        for rate in rates {
            builder.push_rate(rate)?;
        }
        Ok(builder.finish())
    }

    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// Row `index`, or `None` past the end.
    pub fn row(&self, index: usize) -> Option<DeckRow<'_>> {
        let details = self.details.get(*self.details_of.get(index)? as usize)?;
        Some(DeckRow {
            prefix: *self.prefixes.get(index)?,
            rate_micros_per_minute: *self.rates.get(index)?,
            connect_fee_micros: *self.fees.get(index)?,
            effective_from_ms: details.effective_from_ms,
            effective_until_ms: details.effective_until_ms,
            description: &details.description,
        })
    }

    /// The rows in `range` (clamped to the deck), in order.
    pub fn rows_in(&self, range: Range<usize>) -> impl Iterator<Item = DeckRow<'_>> {
        let end = range.end.min(self.len());
        (range.start.min(end)..end).filter_map(|index| self.row(index))
    }

    /// Every row, in order.
    pub fn rows(&self) -> impl Iterator<Item = DeckRow<'_>> {
        self.rows_in(0..self.len())
    }

    /// Every row as a [`Rate`] (allocating its strings), in order.
    pub fn rates(&self) -> impl Iterator<Item = Rate> + '_ {
        self.rows().map(|row| row.to_rate())
    }

    /// The rows of `self` whose prefix `incoming` has no row for, and every row of
    /// `incoming`, in deck order: what merging an import into a deck makes.
    pub fn merged(&self, incoming: &Deck) -> Deck {
        let replaced: std::collections::HashSet<PrefixKey> =
            incoming.prefixes.iter().copied().collect();
        let mut builder = DeckBuilder::with_capacity(self.len().saturating_add(incoming.len()));
        let mut kept = self
            .rows()
            .filter(|row| !replaced.contains(&row.prefix))
            .peekable();
        let mut new = incoming.rows().peekable();
        loop {
            let take_kept = match (kept.peek(), new.peek()) {
                (Some(old), Some(new)) => deck_order(old, new) != Ordering::Greater,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let row = if take_kept { kept.next() } else { new.next() };
            if let Some(row) = row {
                builder.push(row);
            }
        }
        builder.finish()
    }

    /// Bytes the deck holds on the heap, for reports.
    pub fn memory_bytes(&self) -> usize {
        self.prefixes.capacity() * std::mem::size_of::<PrefixKey>()
            + self.rates.capacity() * 8
            + self.fees.capacity() * 8
            + self.details_of.capacity() * 4
            + self.details.capacity() * std::mem::size_of::<Details>()
            + self
                .details
                .iter()
                .map(|details| details.description.len())
                .sum::<usize>()
    }
}

/// Deck order: prefix digits, then effective-from (no start first).
fn deck_order(a: &DeckRow<'_>, b: &DeckRow<'_>) -> Ordering {
    a.prefix
        .cmp_digits(b.prefix)
        .then(a.effective_from_ms.cmp(&b.effective_from_ms))
}

/// Collects rows in deck order and packs them.
#[derive(Debug, Default)]
pub struct DeckBuilder {
    deck: Deck,
    numbers: HashMap<Details, u32>,
}

impl DeckBuilder {
    pub fn with_capacity(rows: usize) -> DeckBuilder {
        DeckBuilder {
            deck: Deck {
                prefixes: Vec::with_capacity(rows),
                rates: Vec::with_capacity(rows),
                fees: Vec::with_capacity(rows),
                details_of: Vec::with_capacity(rows),
                details: Vec::new(),
            },
            numbers: HashMap::new(),
        }
    }

    /// Appends `rate`; refuses a prefix that is not 1 to 15 digits.
    pub fn push_rate(&mut self, rate: &Rate) -> Result<(), FieldError> {
        let prefix = PrefixKey::parse(&rate.prefix).ok_or_else(|| {
            FieldError::new("prefix", format!("must be 1 to {MAX_PREFIX_DIGITS} digits"))
        })?;
        self.push(DeckRow {
            prefix,
            rate_micros_per_minute: rate.rate_micros_per_minute,
            connect_fee_micros: rate.connect_fee_micros,
            effective_from_ms: rate.effective_from_ms,
            effective_until_ms: rate.effective_until_ms,
            description: &rate.description,
        });
        Ok(())
    }

    pub fn push(&mut self, row: DeckRow<'_>) {
        let details = Details {
            effective_from_ms: row.effective_from_ms,
            effective_until_ms: row.effective_until_ms,
            description: row.description.into(),
        };
        let number = match self.numbers.get(&details) {
            Some(number) => *number,
            None => {
                // A deck holds at most MAX_DECK_ROWS rows, so at most as many details: far
                // below u32::MAX; saturating keeps a bound even if that ever changed.
                let number = u32::try_from(self.deck.details.len()).unwrap_or(u32::MAX);
                self.deck.details.push(details.clone());
                self.numbers.insert(details, number);
                number
            }
        };
        self.deck.prefixes.push(row.prefix);
        self.deck.rates.push(row.rate_micros_per_minute);
        self.deck.fees.push(row.connect_fee_micros);
        self.deck.details_of.push(number);
    }

    pub fn finish(self) -> Deck {
        let mut deck = self.deck;
        deck.prefixes.shrink_to_fit();
        deck.rates.shrink_to_fit();
        deck.fees.shrink_to_fit();
        deck.details_of.shrink_to_fit();
        deck.details.shrink_to_fit();
        deck
    }
}

/// A row serialised as a [`Rate`] is, field for field, without building one.
#[derive(Serialize)]
struct RateOut<'a> {
    prefix: &'a str,
    rate_micros_per_minute: u64,
    connect_fee_micros: u64,
    description: &'a str,
    effective_from_ms: Option<u64>,
    effective_until_ms: Option<u64>,
}

impl Serialize for Deck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for row in self.rows() {
            let digits = row.prefix.digits();
            seq.serialize_element(&RateOut {
                prefix: &digits,
                rate_micros_per_minute: row.rate_micros_per_minute,
                connect_fee_micros: row.connect_fee_micros,
                description: row.description,
                effective_from_ms: row.effective_from_ms,
                effective_until_ms: row.effective_until_ms,
            })?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Deck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Deck, D::Error> {
        struct DeckVisitor;

        impl<'de> Visitor<'de> for DeckVisitor {
            type Value = Deck;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a sequence of rate deck rows")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Deck, A::Error> {
                // The length comes from the input: trust it only so far.
                let hint = seq.size_hint().unwrap_or(0).min(1 << 20);
                let mut builder = DeckBuilder::with_capacity(hint);
                while let Some(rate) = seq.next_element::<Rate>()? {
                    builder.push_rate(&rate).map_err(serde::de::Error::custom)?;
                }
                Ok(builder.finish())
            }
        }

        deserializer.deserialize_seq(DeckVisitor)
    }
}
