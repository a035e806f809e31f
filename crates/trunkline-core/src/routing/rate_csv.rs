//! Rate decks as CSV: a streaming reader that checks every row, and a writer that puts a deck
//! back in the same format, so that an export imports again unchanged.
//!
//! Carriers send decks as spreadsheets saved to CSV, so the reader is strict where a mistake
//! would misprice calls and lenient where nothing can go wrong:
//!
//! - The first non-blank line is a header naming the columns, in any order, case-insensitive
//!   and trimmed. `prefix` and `rate` are required; `connect_fee`, `description`,
//!   `effective_from` and `effective_until` are optional. Any other column is an error that
//!   names it: a typo such as `rat` or `conect_fee` must not silently drop a price.
//! - Fields follow RFC 4180: a field in double quotes may hold commas, line breaks and doubled
//!   quotes (`""`). Blanks around unquoted fields are trimmed; quoted text is kept as is.
//!   Blank lines are skipped, a UTF-8 byte-order mark before the header is ignored, and lines
//!   may end with `\n` or `\r\n`.
//! - `prefix`: 1 to [`MAX_PREFIX_DIGITS`] digits, nothing else (no `+`).
//! - `rate` and `connect_fee`: decimal currency units per minute and per call (`0.0125`),
//!   converted exactly to millionths (micros). More than six decimal places is an error
//!   unless the extra places are zeros; negative amounts, signs, exponents and currency
//!   symbols are errors. An empty `connect_fee` is 0.
//! - `effective_from` (inclusive) and `effective_until` (exclusive): empty for "always" /
//!   "never ends", or `YYYY-MM-DD` (midnight UTC), RFC 3339 UTC `YYYY-MM-DDTHH:MM:SS[.mmm]Z`,
//!   or unix milliseconds. Unix milliseconds below [`MIN_UNIX_MILLISECONDS`] are refused
//!   because they are almost always unix seconds or a `YYYYMMDD` date.
//! - One prefix may appear on several rows only when their effective periods do not overlap
//!   (a price change dated in the future); otherwise the later row is a duplicate.
//!
//! Every row is checked with [`Rate::validate`] as well. Errors carry the line (the first
//! line of the row, counting from 1) and, where there is one, the column. The reader keeps
//! one small entry per prefix to find duplicates, and nothing else, so a deck of
//! [`MAX_IMPORT_ROWS`] rows can be checked without holding the deck in memory.
//!
//! The writer prints the header [`RATE_CSV_HEADER`], amounts with trailing zeros trimmed and
//! dates in RFC 3339 UTC (unix milliseconds past the year 9999), quoting only the fields that
//! need it. Date arithmetic is done here (days from the civil calendar and back) rather than
//! with a date crate: the core stays free of dependencies and clocks.

use std::{
    borrow::Cow,
    collections::{hash_map::Entry, HashMap},
    io::{self, BufRead, Read, Write},
};

use super::{Rate, MAX_PREFIX_DIGITS};
use crate::FieldError;

/// Most rows one import may have.
pub const MAX_IMPORT_ROWS: u64 = 10_000_000;
/// Longest row in bytes, line breaks included (a row spans several lines when a quoted field
/// holds line breaks). Generous: a row of the longest description fully quoted needs about
/// 600 bytes.
pub const MAX_RECORD_BYTES: usize = 8 * 1024;
/// Decimal places kept for money: amounts are stored in millionths of the currency unit.
pub const MONEY_DECIMAL_PLACES: usize = 6;
/// Smallest unix millisecond value accepted in a date column (1973-03-03T09:46:40Z). Smaller
/// numbers are unix seconds or `YYYYMMDD` dates typed by mistake.
pub const MIN_UNIX_MILLISECONDS: u64 = 100_000_000_000;
/// The header the writer prints, and the columns the reader knows.
pub const RATE_CSV_HEADER: &str =
    "prefix,rate,connect_fee,description,effective_from,effective_until";

const MICROS_PER_UNIT: u64 = 1_000_000;
const MILLISECONDS_PER_DAY: u64 = 86_400_000;
/// The last moment RFC 3339's four-digit years can write: 9999-12-31T23:59:59.999Z.
const LAST_RFC3339_MILLISECONDS: u64 = 253_402_300_799_999;
const DATE_FORMS: &str = "write YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or unix milliseconds";

/// A column of a rate deck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Prefix,
    Rate,
    ConnectFee,
    Description,
    EffectiveFrom,
    EffectiveUntil,
}

impl Column {
    const ALL: [Column; 6] = [
        Column::Prefix,
        Column::Rate,
        Column::ConnectFee,
        Column::Description,
        Column::EffectiveFrom,
        Column::EffectiveUntil,
    ];

    fn name(self) -> &'static str {
        match self {
            Column::Prefix => "prefix",
            Column::Rate => "rate",
            Column::ConnectFee => "connect_fee",
            Column::Description => "description",
            Column::EffectiveFrom => "effective_from",
            Column::EffectiveUntil => "effective_until",
        }
    }
}

/// Why a deck can't be imported. `Display` leaves the line out so that callers can print
/// `FILE:LINE: message`; [`RateCsvError::line`] gives it. Messages start with the column
/// when there is one.
#[derive(Debug, thiserror::Error)]
pub enum RateCsvError {
    #[error("can't read the file: {source}")]
    Read { line: u64, source: io::Error },
    #[error("the row is not UTF-8 text; save the file as UTF-8")]
    NotUtf8 { line: u64 },
    #[error("the row is longer than {MAX_RECORD_BYTES} bytes (a quoted field never closed?)")]
    RecordTooLong { line: u64 },
    #[error("{column}: {reason}")]
    Quoting {
        line: u64,
        column: String,
        reason: &'static str,
    },
    #[error("the file is empty; its first line must name the columns, e.g. {RATE_CSV_HEADER}")]
    MissingHeader { line: u64 },
    #[error("{column}: missing column; the header must name it")]
    MissingColumn { line: u64, column: &'static str },
    #[error("unknown column {column:?}; the columns are {RATE_CSV_HEADER}")]
    UnknownColumn { line: u64, column: String },
    #[error("{column}: the header names this column twice")]
    DuplicateColumn { line: u64, column: String },
    #[error("the row has {found} fields but the header has {expected}")]
    FieldCount {
        line: u64,
        found: usize,
        expected: usize,
    },
    #[error("{column}: {reason}")]
    InvalidValue {
        line: u64,
        column: String,
        reason: String,
    },
    #[error(
        "prefix: {prefix} is already priced on line {first_line} for an overlapping period; \
         rows for one prefix need effective_from..effective_until periods that don't overlap"
    )]
    DuplicatePrefix {
        line: u64,
        prefix: String,
        first_line: u64,
    },
    #[error("more than {MAX_IMPORT_ROWS} rows; split the deck")]
    TooManyRows { line: u64 },
}

impl RateCsvError {
    /// The line of the row at fault, counting from 1.
    pub fn line(&self) -> u64 {
        match self {
            RateCsvError::Read { line, .. }
            | RateCsvError::NotUtf8 { line }
            | RateCsvError::RecordTooLong { line }
            | RateCsvError::Quoting { line, .. }
            | RateCsvError::MissingHeader { line }
            | RateCsvError::MissingColumn { line, .. }
            | RateCsvError::UnknownColumn { line, .. }
            | RateCsvError::DuplicateColumn { line, .. }
            | RateCsvError::FieldCount { line, .. }
            | RateCsvError::InvalidValue { line, .. }
            | RateCsvError::DuplicatePrefix { line, .. }
            | RateCsvError::TooManyRows { line } => *line,
        }
    }

    /// The column at fault, when the error is about one.
    pub fn column(&self) -> Option<&str> {
        match self {
            RateCsvError::Quoting { column, .. }
            | RateCsvError::UnknownColumn { column, .. }
            | RateCsvError::DuplicateColumn { column, .. }
            | RateCsvError::InvalidValue { column, .. } => Some(column),
            RateCsvError::MissingColumn { column, .. } => Some(column),
            RateCsvError::DuplicatePrefix { .. } => Some(Column::Prefix.name()),
            RateCsvError::Read { .. }
            | RateCsvError::NotUtf8 { .. }
            | RateCsvError::RecordTooLong { .. }
            | RateCsvError::MissingHeader { .. }
            | RateCsvError::FieldCount { .. }
            | RateCsvError::TooManyRows { .. } => None,
        }
    }

    /// Whether reading can't go on after this error. After any other error the reader moves
    /// on to the next row, so that one pass can report every bad row.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            RateCsvError::Read { .. }
                | RateCsvError::RecordTooLong { .. }
                | RateCsvError::TooManyRows { .. }
        )
    }
}

/// Where each known column sits in a row.
#[derive(Clone, Copy, Debug)]
struct ColumnPositions {
    prefix: usize,
    rate: usize,
    connect_fee: Option<usize>,
    description: Option<usize>,
    effective_from: Option<usize>,
    effective_until: Option<usize>,
}

/// One field of a row after unquoting.
struct Field<'a> {
    text: Cow<'a, str>,
    quoted: bool,
}

impl Field<'_> {
    /// The value with surrounding blanks removed, for columns where blanks mean nothing.
    fn value(&self) -> &str {
        self.text.trim_matches(is_blank)
    }
}

/// Reads rate-deck rows from CSV, one at a time, checking each.
///
/// `new` reads the header; the iterator then yields `(line, rate)` for each row, or the
/// row's error. After an error that [`RateCsvError::is_fatal`] the iterator ends.
pub struct RateCsvReader<R> {
    reader: R,
    positions: ColumnPositions,
    /// The header's column names as written, to name the column of a quoting error.
    header: Vec<String>,
    /// The line number the next physical line will have.
    next_line: u64,
    rows: u64,
    seen: SeenPrefixes,
    /// Raw bytes of the current row, reused between rows.
    record: Vec<u8>,
    finished: bool,
}

impl<R: BufRead> RateCsvReader<R> {
    /// Reads and checks the header.
    pub fn new(reader: R) -> Result<Self, RateCsvError> {
        let mut deck = RateCsvReader {
            reader,
            positions: ColumnPositions {
                prefix: 0,
                rate: 0,
                connect_fee: None,
                description: None,
                effective_from: None,
                effective_until: None,
            },
            header: Vec::new(),
            next_line: 1,
            rows: 0,
            seen: SeenPrefixes::default(),
            record: Vec::new(),
            finished: false,
        };
        let line = loop {
            match deck.next_record()? {
                None => return Err(RateCsvError::MissingHeader { line: 1 }),
                Some(_) if is_blank_record(&deck.record) => continue,
                Some(line) => break line,
            }
        };
        let text = std::str::from_utf8(&deck.record).map_err(|_| RateCsvError::NotUtf8 { line })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let fields = split_fields(text).map_err(|(_, reason)| RateCsvError::Quoting {
            line,
            column: "header".to_owned(),
            reason,
        })?;
        let mut found: [Option<usize>; 6] = [None; 6];
        let mut header = Vec::with_capacity(fields.len());
        for (position, field) in fields.iter().enumerate() {
            let name = field.value();
            let Some(index) = Column::ALL
                .iter()
                .position(|column| column.name().eq_ignore_ascii_case(name))
            else {
                return Err(RateCsvError::UnknownColumn {
                    line,
                    column: name.to_owned(),
                });
            };
            if let Some(slot) = found.get_mut(index) {
                if slot.is_some() {
                    return Err(RateCsvError::DuplicateColumn {
                        line,
                        column: name.to_owned(),
                    });
                }
                *slot = Some(position);
            }
            header.push(name.to_owned());
        }
        let [prefix, rate, connect_fee, description, effective_from, effective_until] = found;
        let required = |position: Option<usize>, column: Column| {
            position.ok_or(RateCsvError::MissingColumn {
                line,
                column: column.name(),
            })
        };
        deck.positions = ColumnPositions {
            prefix: required(prefix, Column::Prefix)?,
            rate: required(rate, Column::Rate)?,
            connect_fee,
            description,
            effective_from,
            effective_until,
        };
        deck.header = header;
        Ok(deck)
    }

    /// Rows read so far, good and bad.
    pub fn rows_read(&self) -> u64 {
        self.rows
    }

    /// Reads the next row's bytes, line breaks inside quotes included and the final line break
    /// removed, into `self.record`. Returns the row's first line, or `None` at the end.
    fn next_record(&mut self) -> Result<Option<u64>, RateCsvError> {
        self.record.clear();
        let first_line = self.next_line;
        let mut in_quotes = false;
        loop {
            let start = self.record.len();
            // One byte more than allowed, to tell a full row from an overlong one.
            let allowance = (MAX_RECORD_BYTES + 1).saturating_sub(start) as u64;
            let read = (&mut self.reader)
                .take(allowance)
                .read_until(b'\n', &mut self.record)
                .map_err(|source| RateCsvError::Read {
                    line: self.next_line,
                    source,
                })?;
            if read == 0 {
                if start == 0 {
                    return Ok(None);
                }
                // The file ends inside a quoted field; the field parser names the column.
                break;
            }
            if self.record.len() > MAX_RECORD_BYTES {
                return Err(RateCsvError::RecordTooLong { line: first_line });
            }
            self.next_line += 1;
            in_quotes = ends_inside_quotes(self.record.get(start..).unwrap_or_default(), in_quotes);
            if !in_quotes || self.record.last() != Some(&b'\n') {
                break;
            }
        }
        if self.record.last() == Some(&b'\n') {
            self.record.pop();
            if self.record.last() == Some(&b'\r') {
                self.record.pop();
            }
        }
        Ok(Some(first_line))
    }

    /// The next row, or `None` at the end of the file.
    fn read_row(&mut self) -> Result<Option<(u64, Rate)>, RateCsvError> {
        let line = loop {
            match self.next_record()? {
                None => return Ok(None),
                Some(_) if is_blank_record(&self.record) => continue,
                Some(line) => break line,
            }
        };
        self.rows += 1;
        if self.rows > MAX_IMPORT_ROWS {
            return Err(RateCsvError::TooManyRows { line });
        }
        let text = std::str::from_utf8(&self.record).map_err(|_| RateCsvError::NotUtf8 { line })?;
        let fields = split_fields(text).map_err(|(position, reason)| RateCsvError::Quoting {
            line,
            column: self
                .header
                .get(position)
                .cloned()
                .unwrap_or_else(|| format!("field {}", position + 1)),
            reason,
        })?;
        if fields.len() != self.header.len() {
            return Err(RateCsvError::FieldCount {
                line,
                found: fields.len(),
                expected: self.header.len(),
            });
        }
        let rate = parse_row(&self.positions, &fields, line)?;
        self.seen.insert(&rate, line)?;
        Ok(Some((line, rate)))
    }
}

impl<R: BufRead> Iterator for RateCsvReader<R> {
    type Item = Result<(u64, Rate), RateCsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.read_row() {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(error) => {
                self.finished = error.is_fatal();
                Some(Err(error))
            }
        }
    }
}

/// Whether a row's line ends inside a quoted field, so that the row goes on to the next
/// line. `in_quotes` says whether the line starts inside one. A quote opens a quoted field
/// only at the start of a field; a stray quote elsewhere is left for [`split_fields`] to
/// report, so it can't swallow the lines after it.
fn ends_inside_quotes(line: &[u8], mut in_quotes: bool) -> bool {
    let mut at_field_start = !in_quotes;
    let mut bytes = line.iter().peekable();
    while let Some(byte) = bytes.next() {
        if in_quotes {
            if *byte == b'"' {
                if bytes.peek() == Some(&&b'"') {
                    bytes.next();
                } else {
                    in_quotes = false;
                }
            }
            continue;
        }
        match byte {
            b',' => at_field_start = true,
            b' ' | b'\t' => {}
            b'"' if at_field_start => {
                in_quotes = true;
                at_field_start = false;
            }
            _ => at_field_start = false,
        }
    }
    in_quotes
}

fn is_blank(character: char) -> bool {
    character == ' ' || character == '\t'
}

fn is_blank_record(record: &[u8]) -> bool {
    record.iter().all(|byte| *byte == b' ' || *byte == b'\t')
}

/// Splits one row into fields, unquoting them. On error, gives the position of the field at
/// fault and why.
fn split_fields(record: &str) -> Result<Vec<Field<'_>>, (usize, &'static str)> {
    let bytes = record.as_bytes();
    let length = bytes.len();
    let mut fields = Vec::new();
    let mut position = 0;
    loop {
        while bytes
            .get(position)
            .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
        {
            position += 1;
        }
        if bytes.get(position) == Some(&b'"') {
            let start = position + 1;
            let mut cursor = start;
            let mut doubled = false;
            let end = loop {
                let Some(offset) = bytes
                    .get(cursor..)
                    .and_then(|rest| rest.iter().position(|byte| *byte == b'"'))
                else {
                    return Err((fields.len(), "a quoted field is never closed"));
                };
                let quote = cursor + offset;
                if bytes.get(quote + 1) == Some(&b'"') {
                    doubled = true;
                    cursor = quote + 2;
                } else {
                    break quote;
                }
            };
            let content = record.get(start..end).unwrap_or_default();
            position = end + 1;
            while bytes
                .get(position)
                .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
            {
                position += 1;
            }
            if position < length && bytes.get(position) != Some(&b',') {
                return Err((
                    fields.len(),
                    "text after the closing quote; quote the whole field",
                ));
            }
            fields.push(Field {
                text: if doubled {
                    Cow::Owned(content.replace("\"\"", "\""))
                } else {
                    Cow::Borrowed(content)
                },
                quoted: true,
            });
        } else {
            let end = bytes
                .get(position..)
                .and_then(|rest| rest.iter().position(|byte| *byte == b','))
                .map_or(length, |offset| position + offset);
            let content = record.get(position..end).unwrap_or_default();
            if content.contains('"') {
                return Err((
                    fields.len(),
                    "a quote inside an unquoted field; quote the whole field and double the \
                     quotes inside it (\"\")",
                ));
            }
            fields.push(Field {
                text: Cow::Borrowed(content.trim_end_matches(is_blank)),
                quoted: false,
            });
            position = end;
        }
        if position >= length {
            return Ok(fields);
        }
        // At a comma: a field follows, even when the row ends here.
        position += 1;
    }
}

/// Builds and checks the rate of one row.
fn parse_row(
    positions: &ColumnPositions,
    fields: &[Field<'_>],
    line: u64,
) -> Result<Rate, RateCsvError> {
    let invalid = |column: Column, reason: String| RateCsvError::InvalidValue {
        line,
        column: column.name().to_owned(),
        reason,
    };
    let field = |position: Option<usize>| position.and_then(|position| fields.get(position));

    let prefix = field(Some(positions.prefix)).map_or("", Field::value);
    if prefix.is_empty() {
        return Err(invalid(Column::Prefix, "is empty".to_owned()));
    }
    if prefix.len() > MAX_PREFIX_DIGITS || !prefix.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid(
            Column::Prefix,
            format!(
                "{prefix:?} is not a prefix: write 1 to {MAX_PREFIX_DIGITS} digits, without '+', \
                 spaces or dashes"
            ),
        ));
    }
    let rate = field(Some(positions.rate)).map_or("", Field::value);
    if rate.is_empty() {
        return Err(invalid(
            Column::Rate,
            "is empty; write the price per minute, e.g. 0.0125".to_owned(),
        ));
    }
    let rate_micros_per_minute =
        parse_micros(rate).map_err(|reason| invalid(Column::Rate, reason))?;
    let connect_fee_micros = match field(positions.connect_fee).map_or("", Field::value) {
        "" => 0,
        text => parse_micros(text).map_err(|reason| invalid(Column::ConnectFee, reason))?,
    };
    let description = match field(positions.description) {
        Some(field) if field.quoted => field.text.to_string(),
        Some(field) => field.value().to_owned(),
        None => String::new(),
    };
    let effective_from_ms = match field(positions.effective_from).map_or("", Field::value) {
        "" => None,
        text => Some(parse_unix_ms(text).map_err(|reason| invalid(Column::EffectiveFrom, reason))?),
    };
    let effective_until_ms = match field(positions.effective_until).map_or("", Field::value) {
        "" => None,
        text => {
            let until_ms =
                parse_unix_ms(text).map_err(|reason| invalid(Column::EffectiveUntil, reason))?;
            // On the wire 0 means "never ends": the epoch itself can't be an end.
            if until_ms == 0 {
                return Err(invalid(
                    Column::EffectiveUntil,
                    "must be later than 1970-01-01T00:00:00Z".to_owned(),
                ));
            }
            Some(until_ms)
        }
    };
    let rate = Rate {
        prefix: prefix.to_owned(),
        rate_micros_per_minute,
        connect_fee_micros,
        description,
        effective_from_ms,
        effective_until_ms,
    };
    rate.validate()
        .map_err(|error| invalid_field(&error, line))?;
    Ok(rate)
}

/// A [`Rate::validate`] error as the column it names and the reason alone.
fn invalid_field(error: &FieldError, line: u64) -> RateCsvError {
    RateCsvError::InvalidValue {
        line,
        column: error.field().to_owned(),
        reason: error.reason().to_owned(),
    }
}

/// Prefixes seen so far and the periods they are priced for, to find duplicates.
#[derive(Default)]
struct SeenPrefixes {
    /// Prefixes priced on a row without dates, with that row's line. The common case, so it
    /// costs one 16-byte entry a row.
    always: HashMap<u64, u64>,
    /// Prefixes priced on rows with dates: each row's period and line.
    dated: HashMap<u64, Vec<PricedPeriod>>,
}

#[derive(Clone, Copy)]
struct PricedPeriod {
    from_ms: u64,
    /// Exclusive; `u64::MAX` for "never ends".
    until_ms: u64,
    line: u64,
}

impl SeenPrefixes {
    /// Records `rate`'s prefix and period, or names the earlier row it overlaps.
    fn insert(&mut self, rate: &Rate, line: u64) -> Result<(), RateCsvError> {
        let key = prefix_key(&rate.prefix);
        let duplicate = |first_line: u64| RateCsvError::DuplicatePrefix {
            line,
            prefix: rate.prefix.clone(),
            first_line,
        };
        if let Some(first_line) = self.always.get(&key) {
            return Err(duplicate(*first_line));
        }
        if rate.effective_from_ms.is_none() && rate.effective_until_ms.is_none() {
            if let Some(first) = self.dated.get(&key).and_then(|periods| periods.first()) {
                return Err(duplicate(first.line));
            }
            self.always.insert(key, line);
            return Ok(());
        }
        let period = PricedPeriod {
            from_ms: rate.effective_from_ms.unwrap_or(0),
            until_ms: rate.effective_until_ms.unwrap_or(u64::MAX),
            line,
        };
        match self.dated.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert(vec![period]);
            }
            Entry::Occupied(mut entry) => {
                if let Some(earlier) = entry.get().iter().find(|earlier| {
                    earlier.from_ms < period.until_ms && period.from_ms < earlier.until_ms
                }) {
                    return Err(duplicate(earlier.line));
                }
                entry.get_mut().push(period);
            }
        }
        Ok(())
    }
}

/// A prefix of 1 to 15 digits as one number: its length above bit 50, its value below (15
/// digits stay under 2^50), so "1" and "01" differ.
fn prefix_key(prefix: &str) -> u64 {
    let value = prefix.bytes().fold(0_u64, |value, digit| {
        value.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'))
    });
    ((prefix.len() as u64) << 50) | value
}

/// An amount in currency units (`0.0125`) as millionths of the unit.
pub fn parse_micros(text: &str) -> Result<u64, String> {
    if text.starts_with('-') {
        return Err(format!("{text:?} is below zero"));
    }
    let not_an_amount = || {
        format!("{text:?} is not an amount: write a decimal number such as 0.0125, without sign or currency symbol")
    };
    let (units, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if (units.is_empty() && fraction.is_empty()) || !all_digits(units) || !all_digits(fraction) {
        return Err(not_an_amount());
    }
    let (kept, extra) = fraction.split_at(fraction.len().min(MONEY_DECIMAL_PLACES));
    if extra.bytes().any(|byte| byte != b'0') {
        return Err(format!(
            "{text:?} has more than {MONEY_DECIMAL_PLACES} decimal places; amounts are kept in \
             millionths"
        ));
    }
    let too_large = || format!("{text:?} is too large");
    let mut micros = 0_u64;
    for digit in units.bytes() {
        micros = micros
            .checked_mul(10)
            .and_then(|micros| micros.checked_add(u64::from(digit - b'0')))
            .ok_or_else(too_large)?;
    }
    micros = micros.checked_mul(MICROS_PER_UNIT).ok_or_else(too_large)?;
    let mut fraction_micros = 0_u64;
    for place in 0..MONEY_DECIMAL_PLACES {
        let digit = kept.as_bytes().get(place).map_or(0, |digit| digit - b'0');
        fraction_micros = fraction_micros * 10 + u64::from(digit);
    }
    micros.checked_add(fraction_micros).ok_or_else(too_large)
}

/// Millionths of a currency unit as a decimal amount with trailing zeros trimmed: `12500`
/// is `0.0125`, `2000000` is `2`.
pub fn format_micros(micros: u64) -> String {
    let units = micros / MICROS_PER_UNIT;
    let fraction = micros % MICROS_PER_UNIT;
    if fraction == 0 {
        return units.to_string();
    }
    let fraction = format!("{fraction:06}");
    format!("{units}.{}", fraction.trim_end_matches('0'))
}

/// A date column's value as unix milliseconds.
pub fn parse_unix_ms(text: &str) -> Result<u64, String> {
    let bytes = text.as_bytes();
    if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) {
        let value: u64 = text
            .parse()
            .map_err(|_| format!("{text:?} is too large for unix milliseconds"))?;
        if value < MIN_UNIX_MILLISECONDS {
            return Err(format!(
                "{text:?} is too small for unix milliseconds (before 1973); unix seconds or a \
                 YYYYMMDD date? {DATE_FORMS}"
            ));
        }
        return Ok(value);
    }
    let not_a_date = || format!("{text:?} is not a date: {DATE_FORMS}");
    let number = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let digits = bytes.get(range).ok_or_else(not_a_date)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(not_a_date());
        }
        Ok(digits
            .iter()
            .fold(0, |value, digit| value * 10 + u32::from(digit - b'0')))
    };
    let separator = |position: usize, allowed: &[u8]| -> Result<(), String> {
        match bytes.get(position) {
            Some(byte) if allowed.contains(byte) => Ok(()),
            _ => Err(not_a_date()),
        }
    };
    let year = number(0..4)?;
    separator(4, b"-")?;
    let month = number(5..7)?;
    separator(7, b"-")?;
    let day = number(8..10)?;
    if year < 1970 {
        return Err(format!("{text:?} is before 1970"));
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("{text:?} is not a date on the calendar"));
    }
    let days = days_from_civil(i64::from(year), month, day);
    // Years from 1970 on give non-negative days.
    let mut milliseconds = u64::try_from(days).map_err(|_| not_a_date())? * MILLISECONDS_PER_DAY;
    if bytes.len() == 10 {
        return Ok(milliseconds);
    }
    separator(10, b"Tt ")?;
    let hour = number(11..13)?;
    separator(13, b":")?;
    let minute = number(14..16)?;
    separator(16, b":")?;
    let second = number(17..19)?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "{text:?} is not a time of day (00:00:00 to 23:59:59)"
        ));
    }
    milliseconds += (u64::from(hour) * 3_600 + u64::from(minute) * 60 + u64::from(second)) * 1_000;
    let mut rest = bytes.get(19..).unwrap_or_default();
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        let (fraction_digits, after) = fraction.split_at(digits);
        if fraction_digits.is_empty() {
            return Err(not_a_date());
        }
        if fraction_digits.iter().skip(3).any(|digit| *digit != b'0') {
            return Err(format!("{text:?} is more precise than a millisecond"));
        }
        let mut fraction_ms = 0_u64;
        for place in 0..3 {
            let digit = fraction_digits.get(place).map_or(0, |digit| digit - b'0');
            fraction_ms = fraction_ms * 10 + u64::from(digit);
        }
        milliseconds += fraction_ms;
        rest = after;
    }
    match rest {
        b"Z" | b"z" | b"+00:00" | b"-00:00" => Ok(milliseconds),
        [] => Err(format!("{text:?} has no time zone: end it with Z (UTC)")),
        _ if rest
            .first()
            .is_some_and(|byte| *byte == b'+' || *byte == b'-') =>
        {
            Err(format!(
                "{text:?} is not in UTC: convert it and end it with Z"
            ))
        }
        _ => Err(not_a_date()),
    }
}

/// Unix milliseconds as RFC 3339 UTC (`2025-07-01T00:00:00Z`, with `.mmm` when there are
/// milliseconds), or as the plain number past the year 9999, which RFC 3339 can't write.
pub fn format_unix_ms(unix_ms: u64) -> String {
    if unix_ms > LAST_RFC3339_MILLISECONDS {
        return unix_ms.to_string();
    }
    // Bounded by the year 9999 above, so the day count fits an i64.
    let days = (unix_ms / MILLISECONDS_PER_DAY) as i64;
    let of_day = unix_ms % MILLISECONDS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let hour = of_day / 3_600_000;
    let minute = of_day / 60_000 % 60;
    let second = of_day / 1_000 % 60;
    let millisecond = of_day % 1_000;
    if millisecond == 0 {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millisecond:03}Z")
    }
}

fn is_leap_year(year: u32) -> bool {
    match (year % 400, year % 100, year % 4) {
        (0, _, _) => true,
        (_, 0, _) => false,
        (_, _, remainder) => remainder == 0,
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`: years counted from March, so the leap day ends the year, in 400-year
/// eras of 146,097 days).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // In range by construction: day 1 to 31, month 1 to 12.
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = (if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    }) as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes rate-deck rows as CSV in the format [`RateCsvReader`] reads.
pub struct RateCsvWriter<W: Write> {
    writer: W,
    /// The row being written, reused between rows.
    row: String,
}

impl<W: Write> RateCsvWriter<W> {
    /// Writes the header.
    pub fn new(mut writer: W) -> io::Result<Self> {
        writer.write_all(RATE_CSV_HEADER.as_bytes())?;
        writer.write_all(b"\n")?;
        Ok(RateCsvWriter {
            writer,
            row: String::new(),
        })
    }

    pub fn write(&mut self, rate: &Rate) -> io::Result<()> {
        let row = &mut self.row;
        row.clear();
        push_field(row, &rate.prefix);
        row.push(',');
        row.push_str(&format_micros(rate.rate_micros_per_minute));
        row.push(',');
        row.push_str(&format_micros(rate.connect_fee_micros));
        row.push(',');
        push_field(row, &rate.description);
        row.push(',');
        if let Some(from_ms) = rate.effective_from_ms {
            row.push_str(&format_unix_ms(from_ms));
        }
        row.push(',');
        if let Some(until_ms) = rate.effective_until_ms {
            row.push_str(&format_unix_ms(until_ms));
        }
        row.push('\n');
        self.writer.write_all(row.as_bytes())
    }

    /// Flushes and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.writer.flush()?;
        Ok(self.writer)
    }
}

/// Writes a whole deck: the header, then one row per rate.
pub fn write_rates<'a, W: Write>(
    writer: W,
    rates: impl IntoIterator<Item = &'a Rate>,
) -> io::Result<W> {
    let mut deck = RateCsvWriter::new(writer)?;
    for rate in rates {
        deck.write(rate)?;
    }
    deck.finish()
}

/// Appends `text` as one field, quoted when the reader would otherwise split or trim it.
fn push_field(row: &mut String, text: &str) {
    let needs_quotes = text.contains([',', '"', '\n', '\r'])
        || text.starts_with(is_blank)
        || text.ends_with(is_blank);
    if needs_quotes {
        row.push('"');
        row.push_str(&text.replace('"', "\"\""));
        row.push('"');
    } else {
        row.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    /// Reads `csv` and renders every row and error, one a line, as `LINE: prefix rate fee
    /// "description" from until` or `LINE: error: message`.
    fn read(csv: &str) -> String {
        let reader = match RateCsvReader::new(csv.as_bytes()) {
            Ok(reader) => reader,
            Err(error) => return format!("{}: error: {error}", error.line()),
        };
        let mut lines = Vec::new();
        for row in reader {
            lines.push(match row {
                Ok((line, rate)) => format!(
                    "{line}: {} {} {} {:?} {} {}",
                    rate.prefix,
                    rate.rate_micros_per_minute,
                    rate.connect_fee_micros,
                    rate.description,
                    rate.effective_from_ms
                        .map_or("-".to_owned(), |ms| ms.to_string()),
                    rate.effective_until_ms
                        .map_or("-".to_owned(), |ms| ms.to_string()),
                ),
                Err(error) => format!("{}: error: {error}", error.line()),
            });
        }
        lines.join("\n")
    }

    fn check(csv: &str, expected: &str) {
        let actual = read(csv);
        let expected = expected
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(actual, expected, "input:\n{csv}");
    }

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        check(
            "prefix,rate\n44,0.0125\n1,0.005\n",
            r#"
            2: 44 12500 0 "" - -
            3: 1 5000 0 "" - -
            "#,
        );
        check(
            " Description , RATE,Prefix ,connect_fee\nUK,0.02,44,0.1\n",
            r#"2: 44 20000 100000 "UK" - -"#,
        );
        check(
            "effective_until,effective_from,rate,prefix\n2025-02-01,2025-01-01,1,33\n",
            r#"2: 33 1000000 0 "" 1735689600000 1738368000000"#,
        );
    }

    #[test]
    fn the_header_must_name_known_columns_once() {
        check("", "1: error: the file is empty; its first line must name the columns, e.g. prefix,rate,connect_fee,description,effective_from,effective_until");
        check("\n  \n", "1: error: the file is empty; its first line must name the columns, e.g. prefix,rate,connect_fee,description,effective_from,effective_until");
        check(
            "prefix,rat\n44,1\n",
            r#"1: error: unknown column "rat"; the columns are prefix,rate,connect_fee,description,effective_from,effective_until"#,
        );
        check(
            "prefix,rate,\n44,1,\n",
            r#"1: error: unknown column ""; the columns are prefix,rate,connect_fee,description,effective_from,effective_until"#,
        );
        check(
            "prefix,rate,Rate\n",
            "1: error: Rate: the header names this column twice",
        );
        check(
            "prefix,description\n44,x\n",
            "1: error: rate: missing column; the header must name it",
        );
        check(
            "\n\nrate\n",
            "3: error: prefix: missing column; the header must name it",
        );
    }

    #[test]
    fn quoting_follows_rfc_4180() {
        check(
            "prefix,rate,description\n\
             44,0.01,\"London, \"\"inner\"\" zone\"\n\
             45,0.01, \"  kept  \" \n\
             46,0.01,  trimmed  \n\
             47,0.01,\"two\nlines\"\n\
             48,0.01,\"\"\n\
             \"49\",\" 0.5 \",x\n",
            r#"
            2: 44 10000 0 "London, \"inner\" zone" - -
            3: 45 10000 0 "  kept  " - -
            4: 46 10000 0 "trimmed" - -
            5: 47 10000 0 "two\nlines" - -
            7: 48 10000 0 "" - -
            8: 49 500000 0 "x" - -
            "#,
        );
    }

    #[test]
    fn line_endings_blank_lines_and_a_byte_order_mark_are_tolerated() {
        check(
            "\u{feff}prefix,rate\r\n44,1\r\n\r\n\n45,2",
            r#"
            2: 44 1000000 0 "" - -
            5: 45 2000000 0 "" - -
            "#,
        );
    }

    #[test]
    fn bad_quoting_names_the_line_and_column() {
        check(
            "prefix,rate,description\n44,1,ab\"c\n45,1,\"ab\"c\n46,1,\"never closed\n",
            r#"
            2: error: description: a quote inside an unquoted field; quote the whole field and double the quotes inside it ("")
            3: error: description: text after the closing quote; quote the whole field
            4: error: description: a quoted field is never closed
            "#,
        );
    }

    #[test]
    fn rows_must_have_as_many_fields_as_the_header() {
        check(
            "prefix,rate\n44,1,x\n45\n46,1\n",
            r#"
            2: error: the row has 3 fields but the header has 2
            3: error: the row has 1 fields but the header has 2
            4: 46 1000000 0 "" - -
            "#,
        );
    }

    #[test]
    fn prefixes_are_digits_only() {
        check(
            "prefix,rate\n+44,1\n44 20,1\n4a,1\n,1\n1234567890123456,1\n123456789012345,1\n",
            r#"
            2: error: prefix: "+44" is not a prefix: write 1 to 15 digits, without '+', spaces or dashes
            3: error: prefix: "44 20" is not a prefix: write 1 to 15 digits, without '+', spaces or dashes
            4: error: prefix: "4a" is not a prefix: write 1 to 15 digits, without '+', spaces or dashes
            5: error: prefix: is empty
            6: error: prefix: "1234567890123456" is not a prefix: write 1 to 15 digits, without '+', spaces or dashes
            7: 123456789012345 1000000 0 "" - -
            "#,
        );
    }

    #[test]
    fn amounts_convert_exactly_to_micros() {
        check(
            "prefix,rate,connect_fee\n\
             1,0.0125,\n2,1,0\n3,.5,2.\n4,0.000001,0.123456\n5,0.01250000,1.000000000\n\
             6,18446744073709.551615,0\n",
            r#"
            2: 1 12500 0 "" - -
            3: 2 1000000 0 "" - -
            4: 3 500000 2000000 "" - -
            5: 4 1 123456 "" - -
            6: 5 12500 1000000 "" - -
            7: 6 18446744073709551615 0 "" - -
            "#,
        );
        check(
            "prefix,rate,connect_fee\n\
             1,-0.01,0\n2,0.0000001,0\n3,$0.01,0\n4,1e-3,0\n5,,0\n6,.,0\n7,1,-1\n\
             8,18446744073709.551616,0\n9,+1,0\n10,1.2.3,0\n",
            r#"
            2: error: rate: "-0.01" is below zero
            3: error: rate: "0.0000001" has more than 6 decimal places; amounts are kept in millionths
            4: error: rate: "$0.01" is not an amount: write a decimal number such as 0.0125, without sign or currency symbol
            5: error: rate: "1e-3" is not an amount: write a decimal number such as 0.0125, without sign or currency symbol
            6: error: rate: is empty; write the price per minute, e.g. 0.0125
            7: error: rate: "." is not an amount: write a decimal number such as 0.0125, without sign or currency symbol
            8: error: connect_fee: "-1" is below zero
            9: error: rate: "18446744073709.551616" is too large
            10: error: rate: "+1" is not an amount: write a decimal number such as 0.0125, without sign or currency symbol
            11: error: rate: "1.2.3" is not an amount: write a decimal number such as 0.0125, without sign or currency symbol
            "#,
        );
    }

    #[test]
    fn dates_in_three_forms_become_unix_milliseconds() {
        check(
            "prefix,rate,effective_from,effective_until\n\
             1,1,1970-01-01,1970-01-02\n\
             2,1,2024-02-29,2024-03-01T12:30:15Z\n\
             3,1,2024-03-01t12:30:15.5z,2024-03-01 12:30:16.123+00:00\n\
             4,1,1735689600000,\n\
             5,1,,9999-12-31T23:59:59.999Z\n",
            r#"
            2: 1 1000000 0 "" 0 86400000
            3: 2 1000000 0 "" 1709164800000 1709296215000
            4: 3 1000000 0 "" 1709296215500 1709296216123
            5: 4 1000000 0 "" 1735689600000 -
            6: 5 1000000 0 "" - 253402300799999
            "#,
        );
        check(
            "prefix,rate,effective_from,effective_until\n\
             1,1,2023-02-29,\n2,1,1969-12-31,\n3,1,20250101,\n4,1,1735689600,\n\
             5,1,2025-01-01T00:00:00,\n6,1,2025-01-01T01:00:00+01:00,\n7,1,2025-1-1,\n\
             8,1,2025-01-01T24:00:00Z,\n9,1,,1970-01-01\n10,1,2025-01-02,2025-01-01\n\
             11,1,2025-01-01T00:00:00.0001Z,\n12,1,99999999999999999999,\n",
            r#"
            2: error: effective_from: "2023-02-29" is not a date on the calendar
            3: error: effective_from: "1969-12-31" is before 1970
            4: error: effective_from: "20250101" is too small for unix milliseconds (before 1973); unix seconds or a YYYYMMDD date? write YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or unix milliseconds
            5: error: effective_from: "1735689600" is too small for unix milliseconds (before 1973); unix seconds or a YYYYMMDD date? write YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or unix milliseconds
            6: error: effective_from: "2025-01-01T00:00:00" has no time zone: end it with Z (UTC)
            7: error: effective_from: "2025-01-01T01:00:00+01:00" is not in UTC: convert it and end it with Z
            8: error: effective_from: "2025-1-1" is not a date: write YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or unix milliseconds
            9: error: effective_from: "2025-01-01T24:00:00Z" is not a time of day (00:00:00 to 23:59:59)
            10: error: effective_until: must be later than 1970-01-01T00:00:00Z
            11: error: effective_until: must be later than effective_from
            12: error: effective_from: "2025-01-01T00:00:00.0001Z" is more precise than a millisecond
            13: error: effective_from: "99999999999999999999" is too large for unix milliseconds
            "#,
        );
    }

    #[test]
    fn a_prefix_may_repeat_only_for_periods_that_do_not_overlap() {
        check(
            "prefix,rate,effective_from,effective_until\n\
             44,1,,2025-01-01\n\
             44,2,2025-01-01,2025-06-01\n\
             44,3,2025-06-01,\n\
             44,4,2025-03-01,2025-04-01\n\
             1,1,,\n\
             1,2,2030-01-01,\n\
             1,3,,\n\
             33,1,2030-01-01,\n\
             33,2,,\n\
             033,1,,\n",
            r#"
            2: 44 1000000 0 "" - 1735689600000
            3: 44 2000000 0 "" 1735689600000 1748736000000
            4: 44 3000000 0 "" 1748736000000 -
            5: error: prefix: 44 is already priced on line 3 for an overlapping period; rows for one prefix need effective_from..effective_until periods that don't overlap
            6: 1 1000000 0 "" - -
            7: error: prefix: 1 is already priced on line 6 for an overlapping period; rows for one prefix need effective_from..effective_until periods that don't overlap
            8: error: prefix: 1 is already priced on line 6 for an overlapping period; rows for one prefix need effective_from..effective_until periods that don't overlap
            9: 33 1000000 0 "" 1893456000000 -
            10: error: prefix: 33 is already priced on line 9 for an overlapping period; rows for one prefix need effective_from..effective_until periods that don't overlap
            11: 033 1000000 0 "" - -
            "#,
        );
    }

    #[test]
    fn rows_are_checked_with_rate_validate() {
        let long = "x".repeat(super::super::MAX_DESCRIPTION_BYTES + 1);
        check(
            &format!("prefix,rate,description\n44,1,{long}\n"),
            "2: error: description: must be at most 256 bytes",
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_name_their_line() {
        let mut csv = b"prefix,rate,description\n44,1,ok\n45,1,".to_vec();
        csv.extend_from_slice(&[0xff, 0xfe, b'\n']);
        csv.extend_from_slice(b"46,1,ok\n");
        let rows: Vec<String> = RateCsvReader::new(csv.as_slice())
            .unwrap()
            .map(|row| match row {
                Ok((line, _)) => format!("{line}: ok"),
                Err(error) => format!("{}: {error}", error.line()),
            })
            .collect();
        assert_eq!(
            rows,
            [
                "2: ok",
                "3: the row is not UTF-8 text; save the file as UTF-8",
                "4: ok"
            ]
        );
    }

    #[test]
    fn an_overlong_row_stops_the_reader() {
        let csv = format!(
            "prefix,rate,description\n44,1,{}\n45,1,x\n",
            "y".repeat(MAX_RECORD_BYTES)
        );
        check(
            &csv,
            "2: error: the row is longer than 8192 bytes (a quoted field never closed?)",
        );
        // A quote never closed swallows the rest of the file until the limit.
        let csv = format!(
            "prefix,rate,description\n44,1,\"open\n{}",
            "45,1,x\n".repeat(MAX_RECORD_BYTES / 7 + 1)
        );
        check(
            &csv,
            "2: error: the row is longer than 8192 bytes (a quoted field never closed?)",
        );
    }

    #[test]
    fn errors_name_line_and_column_for_callers() {
        let mut reader = RateCsvReader::new("prefix,rate\n44,-1\n".as_bytes()).unwrap();
        let error = reader.next().unwrap().unwrap_err();
        assert_eq!(error.line(), 2);
        assert_eq!(error.column(), Some("rate"));
        assert!(!error.is_fatal());
        assert!(reader.next().is_none());
        assert_eq!(reader.rows_read(), 1);
    }

    #[test]
    fn a_reader_error_is_fatal_and_names_its_line() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let input = "prefix,rate\n44,1\n".as_bytes().chain(Failing);
        let mut reader = RateCsvReader::new(io::BufReader::new(input)).unwrap();
        assert_eq!(reader.next().unwrap().unwrap().0, 2);
        let error = reader.next().unwrap().unwrap_err();
        assert_eq!(error.line(), 3);
        assert!(error.is_fatal());
        assert_eq!(error.to_string(), "can't read the file: disk on fire");
        assert!(reader.next().is_none());
    }

    #[test]
    fn money_formats_with_trailing_zeros_trimmed() {
        for (micros, text) in [
            (0, "0"),
            (1, "0.000001"),
            (12_500, "0.0125"),
            (1_000_000, "1"),
            (2_500_000, "2.5"),
            (u64::MAX, "18446744073709.551615"),
        ] {
            assert_eq!(format_micros(micros), text);
            assert_eq!(parse_micros(text), Ok(micros));
        }
    }

    #[test]
    fn dates_format_as_rfc_3339_utc() {
        for (unix_ms, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z"),
            (1_709_296_215_500, "2024-03-01T12:30:15.500Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "253402300800000"),
        ] {
            assert_eq!(format_unix_ms(unix_ms), text);
            assert_eq!(parse_unix_ms(text), Ok(unix_ms), "{text}");
        }
    }

    #[test]
    fn day_counts_match_the_calendar_day_by_day() {
        // Walk every day from 1970 to 2500 and check the arithmetic against a counter.
        let mut days = 0_i64;
        for year in 1970..2500_u32 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(i64::from(year), month, day), days);
                    assert_eq!(civil_from_days(days), (i64::from(year), month, day));
                    days += 1;
                }
            }
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert!(is_leap_year(2000) && !is_leap_year(1900) && is_leap_year(2024));
    }

    #[test]
    fn the_writer_quotes_only_what_needs_it() {
        let rates = [
            Rate {
                prefix: "44".into(),
                rate_micros_per_minute: 12_500,
                connect_fee_micros: 0,
                description: "UK, \"fixed\"".into(),
                effective_from_ms: Some(1_735_689_600_000),
                effective_until_ms: None,
            },
            Rate {
                prefix: "4420".into(),
                rate_micros_per_minute: 1_000_000,
                connect_fee_micros: 10_000,
                description: " London".into(),
                effective_from_ms: None,
                effective_until_ms: Some(1_735_689_600_001),
            },
            Rate {
                prefix: "1".into(),
                rate_micros_per_minute: 5_000,
                connect_fee_micros: 0,
                description: "NANP".into(),
                effective_from_ms: None,
                effective_until_ms: None,
            },
        ];
        let written = String::from_utf8(write_rates(Vec::new(), &rates).unwrap()).unwrap();
        assert_eq!(
            written,
            "prefix,rate,connect_fee,description,effective_from,effective_until\n\
             44,0.0125,0,\"UK, \"\"fixed\"\"\",2025-01-01T00:00:00Z,\n\
             4420,1,0.01,\" London\",,2025-01-01T00:00:00.001Z\n\
             1,0.005,0,NANP,,\n"
        );
    }

    fn date() -> impl Strategy<Value = Option<u64>> {
        prop_oneof![
            Just(None),
            (1_u64..=LAST_RFC3339_MILLISECONDS).prop_map(Some),
            (1_u64..=u64::MAX).prop_map(Some),
            // Whole days and seconds, the common cases.
            (1_u64..2_932_896).prop_map(|days| Some(days * MILLISECONDS_PER_DAY)),
        ]
    }

    fn rate() -> impl Strategy<Value = Rate> {
        (
            "[0-9]{1,15}",
            any::<u64>(),
            prop_oneof![Just(0_u64), any::<u64>()],
            "[ \t,\"\r\na-zA-Z0-9éß€-]{0,40}",
            date(),
            date(),
        )
            .prop_map(|(prefix, rate, fee, description, from, until)| Rate {
                prefix,
                rate_micros_per_minute: rate,
                connect_fee_micros: fee,
                description,
                effective_from_ms: from,
                effective_until_ms: until,
            })
            .prop_filter("a valid rate", |rate| rate.validate().is_ok())
    }

    proptest! {
        #[test]
        fn export_then_import_gives_the_same_rows(rates in prop::collection::vec(rate(), 0..40)) {
            let mut seen = std::collections::HashSet::new();
            let rates: Vec<Rate> = rates
                .into_iter()
                .filter(|rate| seen.insert(rate.prefix.clone()))
                .collect();
            let written = write_rates(Vec::new(), &rates).unwrap();
            let read: Vec<Rate> = RateCsvReader::new(written.as_slice())
                .unwrap()
                .map(|row| row.map(|(_, rate)| rate))
                .collect::<Result<_, _>>()
                .unwrap();
            prop_assert_eq!(read, rates);
        }

        #[test]
        fn amounts_round_trip(micros in any::<u64>()) {
            prop_assert_eq!(parse_micros(&format_micros(micros)), Ok(micros));
        }

        #[test]
        fn dates_round_trip(unix_ms in any::<u64>()) {
            prop_assert_eq!(parse_unix_ms(&format_unix_ms(unix_ms)), Ok(unix_ms));
        }

        #[test]
        fn any_input_gives_rows_or_errors_never_a_panic(input in "[0-9a-z,\"\n\r .:-]{0,200}") {
            if let Ok(reader) = RateCsvReader::new(format!("prefix,rate,description,effective_from\n{input}").as_bytes()) {
                for (_, rate) in reader.take(1_000).flatten() {
                    prop_assert!(rate.validate().is_ok());
                }
            }
        }
    }
}
