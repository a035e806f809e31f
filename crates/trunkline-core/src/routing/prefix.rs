//! The longest-prefix index over every carrier's rate deck.
//!
//! Routing a call needs, for each carrier, the longest prefix of that carrier's deck that
//! starts the dialled number and is in effect now. Decks are large (a full A-Z deck plus US
//! NPA-NXX rows runs to a million rows per carrier; the index is built for five million rows
//! in all) and a lookup sits on the path of every call, so the index is a flat, immutable,
//! cache-friendly structure built once off the hot path and then only read. The node keeps it
//! behind an `Arc` and swaps in a new one when a deck changes; replacing one carrier's deck is
//! a rebuild from all decks, which takes seconds for millions of rows and never blocks readers
//! of the old index.
//!
//! # Layout
//!
//! A prefix of `length` digits is the key `length << 50 | value`, where `value` is the prefix
//! read as a decimal number (15 digits are below 2^50, so keys are unique and never 0).
//!
//! - `slots`: an open-addressing hash table with linear probing, about 60% full
//!   (`SLOTS_PER_KEY`). A slot is 16 bytes: the key, and either the prefix's only deck row
//!   `(carrier number, tariff number)` inline or, when several carriers (or several
//!   effective periods) share the prefix, where its rows start in `overflow` and how many
//!   there are. Long prefixes usually belong to one carrier, so a hit on them costs a single
//!   cache line; most probes of a lookup are misses, which cost one line too.
//! - `overflow`: `(carrier number, tariff number)` pairs, eight bytes, for prefixes with
//!   several rows, sorted within a prefix by carrier and then by effective-from time.
//! - `tariffs`: the distinct `(rate, connect fee, effective period)` combinations. Decks reuse
//!   a few thousand price points across millions of prefixes, so this table is small and
//!   stays in cache. Descriptions are not kept: routing never needs them, and the replicated
//!   deck has them.
//! - `lengths_present`: a bit per prefix length that occurs, so a lookup skips lengths no deck
//!   uses.
//!
//! Memory is about 27 bytes per distinct prefix (16-byte slots at 60% load), plus 8 bytes per
//! row of a prefix that several rows share, plus 32 bytes per distinct tariff: 27 bytes a row
//! when carriers' prefixes differ, about 8 bytes a row more than its share of the slot when
//! they coincide. [`PrefixIndex::memory_bytes`] reports the exact figure.
//!
//! A lookup computes the values of every prefix of the number in one pass and reads each
//! length's first slot in a second; those reads do not depend on each other, so the processor
//! overlaps their cache misses. It then probes from the longest length to the shortest. The
//! first effective row found for a carrier is its longest effective prefix; the lookup stops
//! early once every carrier has one.

use std::collections::HashMap;
use std::fmt;

use super::deck::{Deck, PrefixKey, LENGTH_SHIFT};
use super::model::{validate_name, Rate, MAX_PREFIX_DIGITS};
use crate::FieldError;

/// Most rows an index may hold; keeps every offset in a `u32`.
pub const MAX_INDEX_ROWS: usize = 50_000_000;
/// Most carriers an index may hold.
pub const MAX_INDEX_CARRIERS: usize = 65_536;

/// Most matches a lookup reserves room for up front; more carriers than this still work, with
/// the answer growing as needed.
const MAX_MATCHES_RESERVED: usize = 64;
/// The key of an unused slot; no key is 0 because every prefix has at least one digit.
const EMPTY_KEY: u64 = 0;
/// Set in [`Slot::first`] when the prefix's rows are in `overflow`.
const OVERFLOW_BIT: u32 = 1 << 31;
/// Slots per distinct prefix, as a fraction: 5/3 slots, a load factor of 0.6.
const SLOTS_PER_KEY_NUMERATOR: usize = 5;
const SLOTS_PER_KEY_DENOMINATOR: usize = 3;
/// `effective_until` of a tariff that never ends.
const NEVER_MS: u64 = u64::MAX;

/// A deck row that cannot go into the index.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("carrier {carrier:?}: {source}")]
    InvalidCarrier {
        carrier: String,
        #[source]
        source: FieldError,
    },
    #[error("carrier {carrier:?}, prefix {prefix:?}: {source}")]
    InvalidRate {
        carrier: String,
        prefix: String,
        #[source]
        source: FieldError,
    },
    #[error("carrier {carrier:?} has rows for prefix {prefix} whose effective periods overlap")]
    OverlappingRates { carrier: String, prefix: String },
    #[error("the prefix index holds at most {MAX_INDEX_ROWS} rows")]
    TooManyRows,
    #[error("the prefix index holds at most {MAX_INDEX_CARRIERS} carriers")]
    TooManyCarriers,
}

/// One carrier's longest effective prefix for a number, as returned by
/// [`PrefixIndex::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateMatch<'a> {
    pub carrier: &'a str,
    /// The matched prefix (the leading digits of the number looked up).
    pub prefix: &'a str,
    pub rate_micros_per_minute: u64,
    pub connect_fee_micros: u64,
}

/// A price point shared by deck rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tariff {
    rate_micros_per_minute: u64,
    connect_fee_micros: u64,
    /// 0 when the row has no start.
    effective_from_ms: u64,
    /// [`NEVER_MS`] when the row has no end.
    effective_until_ms: u64,
}

impl Tariff {
    fn is_effective(&self, now_ms: u64) -> bool {
        self.effective_from_ms <= now_ms
            && (now_ms < self.effective_until_ms || self.effective_until_ms == NEVER_MS)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    carrier: u32,
    tariff: u32,
}

/// One hash table slot; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    /// [`EMPTY_KEY`] for an unused slot.
    key: u64,
    /// The only row's carrier number, or [`OVERFLOW_BIT`] and the start of the rows in
    /// `overflow`.
    first: u32,
    /// The only row's tariff number, or the number of rows in `overflow`.
    second: u32,
}

/// The immutable longest-prefix index. Build it with [`PrefixIndex::build`] or
/// [`PrefixIndexBuilder`].
#[derive(Clone, Default)]
pub struct PrefixIndex {
    /// Carrier names by carrier number.
    carriers: Vec<String>,
    slots: Vec<Slot>,
    overflow: Vec<Entry>,
    tariffs: Vec<Tariff>,
    /// Number of deck rows.
    rows: usize,
    /// Bit `n` is set when some prefix has `n` digits.
    lengths_present: u16,
}

impl fmt::Debug for PrefixIndex {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PrefixIndex")
            .field("carriers", &self.carriers.len())
            .field("rows", &self.rows)
            .field("slots", &self.slots.len())
            .field("overflow", &self.overflow.len())
            .field("tariffs", &self.tariffs.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl PrefixIndex {
    /// Builds an index from `(carrier name, deck row)` pairs in any order.
    pub fn build<'a>(
        rows: impl IntoIterator<Item = (&'a str, &'a Rate)>,
    ) -> Result<PrefixIndex, IndexError> {
        let mut builder = PrefixIndexBuilder::new();
        for (carrier, rate) in rows {
            builder.add(carrier, rate)?;
        }
        builder.finish()
    }

    /// For each carrier with a prefix of `digits` in effect at `now_ms`, its longest such
    /// prefix. When a carrier's longest matching prefix is not in effect, its next longest one
    /// that is counts instead. `digits` is an E.164 number without `+` (or an emergency
    /// routing key); anything that is not 1 to 15 ASCII digits matches nothing. Matches come
    /// longest prefix first, in no other particular order.
    pub fn lookup<'a>(&'a self, digits: &'a str, now_ms: u64) -> Vec<RateMatch<'a>> {
        // At most one match per carrier: one allocation, never regrown.
        let mut matches = Vec::with_capacity(self.carriers.len().min(MAX_MATCHES_RESERVED));
        let mut matched = CarrierSet::new(self.carriers.len());
        let bytes = digits.as_bytes();
        if bytes.is_empty()
            || bytes.len() > MAX_PREFIX_DIGITS
            || !bytes.iter().all(u8::is_ascii_digit)
            || self.slots.is_empty()
        {
            return matches;
        }
        // values[n] is the number's first n digits read as a decimal number.
        let mut values = [0_u64; MAX_PREFIX_DIGITS + 1];
        let mut value = 0_u64;
        for (slot, byte) in values.iter_mut().skip(1).zip(bytes) {
            value = value * 10 + u64::from(byte - b'0');
            *slot = value;
        }
        // First pass: where each length's probe starts, and a read of that slot. The reads do
        // not depend on each other, so the processor issues them together and the cache misses
        // overlap; the probing pass below then finds the slots in cache instead of waiting for
        // memory once per length.
        let capacity = self.slots.len();
        let mut homes = [usize::MAX; MAX_PREFIX_DIGITS + 1];
        let mut touched = 0_u64;
        for (length, (home, value)) in homes
            .iter_mut()
            .zip(&values)
            .enumerate()
            .take(bytes.len() + 1)
        {
            if length > 0 && self.lengths_present & (1 << length) != 0 {
                *home = home_slot(key(length, *value), capacity);
                touched ^= self.slots.get(*home).map_or(0, |slot| slot.key);
            }
        }
        std::hint::black_box(touched);
        for (length, (home, value)) in homes.iter().zip(&values).enumerate().rev() {
            if *home == usize::MAX {
                continue;
            }
            let Some(slot) = self.find_from(*home, key(length, *value)) else {
                continue;
            };
            let prefix = digits.get(..length).unwrap_or(digits);
            let single;
            let run = if slot.first & OVERFLOW_BIT == 0 {
                single = [Entry {
                    carrier: slot.first,
                    tariff: slot.second,
                }];
                &single[..]
            } else {
                let start = (slot.first & !OVERFLOW_BIT) as usize;
                start
                    .checked_add(slot.second as usize)
                    .and_then(|end| self.overflow.get(start..end))
                    .unwrap_or_default()
            };
            for entry in run {
                if matched.contains(entry.carrier) {
                    continue;
                }
                let (Some(carrier), Some(tariff)) = (
                    self.carriers.get(entry.carrier as usize),
                    self.tariffs.get(entry.tariff as usize),
                ) else {
                    continue;
                };
                if !tariff.is_effective(now_ms) {
                    continue;
                }
                matched.insert(entry.carrier);
                matches.push(RateMatch {
                    carrier,
                    prefix,
                    rate_micros_per_minute: tariff.rate_micros_per_minute,
                    connect_fee_micros: tariff.connect_fee_micros,
                });
            }
            if matches.len() == self.carriers.len() {
                break;
            }
        }
        matches
    }

    /// Number of deck rows in the index.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Number of carriers with at least one row.
    pub fn carrier_count(&self) -> usize {
        self.carriers.len()
    }

    /// Heap and inline bytes the index holds, for benchmarks and metrics.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.slots.capacity() * size_of::<Slot>()
            + self.overflow.capacity() * size_of::<Entry>()
            + self.tariffs.capacity() * size_of::<Tariff>()
            + self.carriers.capacity() * size_of::<String>()
            + self.carriers.iter().map(String::capacity).sum::<usize>()
    }

    /// The slot holding `key`, probing from its home slot `home`.
    fn find_from(&self, home: usize, key: u64) -> Option<&Slot> {
        let capacity = self.slots.len();
        let mut position = home;
        // The table always has empty slots, so the probe ends well before a full turn; the
        // bound only makes termination obvious.
        for _ in 0..capacity {
            let slot = self.slots.get(position)?;
            if slot.key == key {
                return Some(slot);
            }
            if slot.key == EMPTY_KEY {
                return None;
            }
            position += 1;
            if position == capacity {
                position = 0;
            }
        }
        None
    }
}

/// The carriers a lookup has already matched: a bit per carrier number, on the stack for the
/// usual few dozen carriers so a lookup allocates nothing but its answer.
struct CarrierSet {
    inline: [u64; CarrierSet::INLINE_WORDS],
    /// Used instead of `inline` when there are more carriers than it can hold.
    spilled: Vec<u64>,
}

impl CarrierSet {
    const INLINE_WORDS: usize = 4;

    fn new(carrier_count: usize) -> Self {
        let words = carrier_count.div_ceil(64);
        CarrierSet {
            inline: [0; CarrierSet::INLINE_WORDS],
            spilled: if words > CarrierSet::INLINE_WORDS {
                vec![0; words]
            } else {
                Vec::new()
            },
        }
    }

    fn words(&self) -> &[u64] {
        if self.spilled.is_empty() {
            &self.inline
        } else {
            &self.spilled
        }
    }

    fn contains(&self, carrier: u32) -> bool {
        let (word, bit) = (carrier as usize / 64, carrier % 64);
        self.words()
            .get(word)
            .is_some_and(|bits| bits & (1 << bit) != 0)
    }

    fn insert(&mut self, carrier: u32) {
        let (word, bit) = (carrier as usize / 64, carrier % 64);
        let words = if self.spilled.is_empty() {
            &mut self.inline[..]
        } else {
            &mut self.spilled[..]
        };
        if let Some(bits) = words.get_mut(word) {
            *bits |= 1 << bit;
        }
    }
}

/// Collects deck rows one at a time (for streaming from storage) and builds the index.
#[derive(Debug, Default)]
pub struct PrefixIndexBuilder {
    carriers: Vec<String>,
    carrier_numbers: HashMap<String, u32>,
    tariffs: Vec<Tariff>,
    tariff_numbers: HashMap<Tariff, u32>,
    rows: Vec<Row>,
}

#[derive(Clone, Copy, Debug)]
struct Row {
    key: u64,
    carrier: u32,
    tariff: u32,
}

impl PrefixIndexBuilder {
    pub fn new() -> Self {
        PrefixIndexBuilder::default()
    }

    /// A builder with room for `rows` rows, to avoid regrowing while loading a known number.
    pub fn with_capacity(rows: usize) -> Self {
        PrefixIndexBuilder {
            rows: Vec::with_capacity(rows.min(MAX_INDEX_ROWS)),
            ..PrefixIndexBuilder::default()
        }
    }

    /// Adds one row of `carrier`'s deck, after checking it.
    pub fn add(&mut self, carrier: &str, rate: &Rate) -> Result<(), IndexError> {
        let invalid = |source| IndexError::InvalidRate {
            carrier: carrier.to_owned(),
            prefix: rate.prefix.clone(),
            source,
        };
        rate.validate().map_err(invalid)?;
        let prefix = PrefixKey::parse(&rate.prefix).ok_or_else(|| {
            invalid(FieldError::new(
                "prefix",
                format!("must be 1 to {MAX_PREFIX_DIGITS} digits"),
            ))
        })?;
        let carrier_number = self.carrier_number(carrier)?;
        self.push(
            carrier_number,
            prefix,
            Tariff {
                rate_micros_per_minute: rate.rate_micros_per_minute,
                connect_fee_micros: rate.connect_fee_micros,
                effective_from_ms: rate.effective_from_ms.unwrap_or(0),
                effective_until_ms: rate.effective_until_ms.unwrap_or(NEVER_MS),
            },
        )
    }

    /// Adds every row of `carrier`'s deck; the deck's rows were checked when it was built.
    pub fn add_deck(&mut self, carrier: &str, deck: &Deck) -> Result<(), IndexError> {
        let carrier_number = self.carrier_number(carrier)?;
        self.rows.reserve(deck.len().min(MAX_INDEX_ROWS));
        for row in deck.rows() {
            self.push(
                carrier_number,
                row.prefix,
                Tariff {
                    rate_micros_per_minute: row.rate_micros_per_minute,
                    connect_fee_micros: row.connect_fee_micros,
                    effective_from_ms: row.effective_from_ms.unwrap_or(0),
                    effective_until_ms: row.effective_until_ms.unwrap_or(NEVER_MS),
                },
            )?;
        }
        Ok(())
    }

    fn push(&mut self, carrier: u32, prefix: PrefixKey, tariff: Tariff) -> Result<(), IndexError> {
        if self.rows.len() >= MAX_INDEX_ROWS {
            return Err(IndexError::TooManyRows);
        }
        let tariff_number = match self.tariff_numbers.get(&tariff) {
            Some(number) => *number,
            None => {
                // At most one tariff per row, and rows are bounded by MAX_INDEX_ROWS.
                let number =
                    u32::try_from(self.tariffs.len()).map_err(|_| IndexError::TooManyRows)?;
                self.tariffs.push(tariff);
                self.tariff_numbers.insert(tariff, number);
                number
            }
        };
        self.rows.push(Row {
            key: prefix.raw(),
            carrier,
            tariff: tariff_number,
        });
        Ok(())
    }

    /// Number of rows added so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Builds the index. Refuses rows of one carrier for one prefix whose effective periods
    /// overlap, since the lookup could not tell which applies.
    pub fn finish(self) -> Result<PrefixIndex, IndexError> {
        let PrefixIndexBuilder {
            carriers,
            tariffs,
            mut rows,
            ..
        } = self;
        let from_ms = |row: &Row| {
            tariffs
                .get(row.tariff as usize)
                .map_or(0, |tariff| tariff.effective_from_ms)
        };
        let until_ms = |row: &Row| {
            tariffs
                .get(row.tariff as usize)
                .map_or(NEVER_MS, |tariff| tariff.effective_until_ms)
        };
        rows.sort_unstable_by_key(|row| (row.key, row.carrier));
        for group in rows.chunk_by_mut(|a, b| a.key == b.key && a.carrier == b.carrier) {
            if group.len() < 2 {
                continue;
            }
            group.sort_unstable_by_key(from_ms);
            for pair in group.windows(2) {
                if let [earlier, later] = pair {
                    if until_ms(earlier) > from_ms(later) {
                        return Err(IndexError::OverlappingRates {
                            carrier: carriers
                                .get(earlier.carrier as usize)
                                .cloned()
                                .unwrap_or_default(),
                            prefix: key_to_prefix(earlier.key),
                        });
                    }
                }
            }
        }

        let distinct_keys = rows.chunk_by(|a, b| a.key == b.key).count();
        let capacity = distinct_keys * SLOTS_PER_KEY_NUMERATOR / SLOTS_PER_KEY_DENOMINATOR + 1;
        let mut slots = vec![Slot::default(); capacity];
        let shared_rows = rows.len() - distinct_keys;
        let mut overflow = Vec::with_capacity(if shared_rows == 0 {
            0
        } else {
            shared_rows + distinct_keys.min(shared_rows)
        });
        let mut lengths_present = 0_u16;
        for group in rows.chunk_by(|a, b| a.key == b.key) {
            let Some(first_row) = group.first() else {
                continue;
            };
            let filled = match group {
                [only] => Slot {
                    key: only.key,
                    first: only.carrier,
                    second: only.tariff,
                },
                _ => {
                    // Offsets are bounded by MAX_INDEX_ROWS, far below OVERFLOW_BIT.
                    let start = u32::try_from(overflow.len())
                        .ok()
                        .filter(|start| start & OVERFLOW_BIT == 0)
                        .ok_or(IndexError::TooManyRows)?;
                    overflow.extend(group.iter().map(|row| Entry {
                        carrier: row.carrier,
                        tariff: row.tariff,
                    }));
                    Slot {
                        key: first_row.key,
                        first: OVERFLOW_BIT | start,
                        second: u32::try_from(group.len()).map_err(|_| IndexError::TooManyRows)?,
                    }
                }
            };
            let home = home_slot(first_row.key, capacity);
            // capacity > distinct_keys, so an empty slot always exists.
            let slot = (0..capacity)
                .map(|step| (home + step) % capacity)
                .find_map(|position| {
                    slots
                        .get(position)
                        .filter(|slot| slot.key == EMPTY_KEY)
                        .map(|_| position)
                })
                .and_then(|position| slots.get_mut(position))
                .ok_or(IndexError::TooManyRows)?;
            *slot = filled;
            lengths_present |= 1 << (first_row.key >> LENGTH_SHIFT);
        }

        let mut tariffs = tariffs;
        tariffs.shrink_to_fit();
        overflow.shrink_to_fit();
        Ok(PrefixIndex {
            carriers,
            slots,
            overflow,
            tariffs,
            rows: rows.len(),
            lengths_present,
        })
    }

    fn carrier_number(&mut self, carrier: &str) -> Result<u32, IndexError> {
        if let Some(number) = self.carrier_numbers.get(carrier) {
            return Ok(*number);
        }
        validate_name("carrier", carrier).map_err(|source| IndexError::InvalidCarrier {
            carrier: carrier.to_owned(),
            source,
        })?;
        if self.carriers.len() >= MAX_INDEX_CARRIERS {
            return Err(IndexError::TooManyCarriers);
        }
        let number = u32::try_from(self.carriers.len()).map_err(|_| IndexError::TooManyCarriers)?;
        self.carriers.push(carrier.to_owned());
        self.carrier_numbers.insert(carrier.to_owned(), number);
        Ok(number)
    }
}

/// The key of a prefix of `length` digits whose decimal value is `value`.
fn key(length: usize, value: u64) -> u64 {
    PrefixKey::from_parts(length, value).raw()
}

/// The prefix digits a key stands for, for messages.
fn key_to_prefix(key: u64) -> String {
    PrefixKey::from_raw(key).digits().to_string()
}

/// Where the probe for `key` starts in a table of `capacity` slots: a multiplicative hash
/// (the splitmix64 finaliser) mapped onto the table with a multiply-shift, which needs no
/// power-of-two capacity. Returns 0 for an empty table.
fn home_slot(key: u64, capacity: usize) -> usize {
    let mut hash = key;
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    ((u128::from(hash) * capacity as u128) >> 64) as usize
}
