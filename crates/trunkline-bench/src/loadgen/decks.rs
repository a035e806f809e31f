//! The rate decks every backend holds, and the numbers every backend looks up.
//!
//! The decks come from a running node (`AdminService.ExportRates`, one carrier at a time), so
//! Redis and PostgreSQL hold exactly the rows Trunkline routes with. The numbers are drawn
//! from the same rows: a prefix picked at random (fixed seed) and extended with random
//! digits to a full number, so every lookup is priced by at least one carrier, as most real
//! calls are.
//!
//! The anchors' layouts, and what a longest-prefix match is in each:
//!
//! - Redis: one key per distinct prefix, `trunkline:rate:<prefix>`, holding every carrier's
//!   row for it as `carrier,rate_micros,connect_fee_micros` joined by `;`. A lookup is one
//!   `MGET` of the keys of every prefix of the number (11 or 12 keys), and the client keeps,
//!   for each carrier, the longest prefix that hit ([`longest_per_carrier`]), then orders the
//!   carriers by price, as a consumer of such a layout would.
//! - PostgreSQL: table `rates (carrier, prefix, rate_micros, connect_fee_micros)` with
//!   primary key `(prefix, carrier)`, and [`LPM_QUERY`]: the rows whose prefix is any prefix
//!   of the number (an index probe per prefix), the longest per carrier by `DISTINCT ON`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use trunkline_api::v1::{self as proto, admin_service_client::AdminServiceClient};

/// The Redis keys' prefix.
pub const REDIS_KEY_PREFIX: &str = "trunkline:rate:";
/// The PostgreSQL table, created (replacing any of that name) by `load-decks`.
pub const TABLE_DDL: &str = "DROP TABLE IF EXISTS rates; \
     CREATE TABLE rates (carrier text NOT NULL, prefix text NOT NULL, \
     rate_micros bigint NOT NULL, connect_fee_micros bigint NOT NULL, \
     PRIMARY KEY (prefix, carrier))";
pub const TABLE_COPY: &str =
    "COPY rates (carrier, prefix, rate_micros, connect_fee_micros) FROM STDIN";
/// The longest-prefix match: `$1` is the `text[]` of every prefix of the number.
pub const LPM_QUERY: &str = "SELECT DISTINCT ON (carrier) carrier, prefix, rate_micros, \
     connect_fee_micros FROM rates WHERE prefix = ANY($1) \
     ORDER BY carrier, length(prefix) DESC";
/// Most rows exported (DESIGN.md's largest deck is 5 million).
pub const MAX_ROWS: usize = 10_000_000;
/// The longest E.164 number, in digits.
pub const MAX_NUMBER_DIGITS: usize = 15;

/// One carrier's rate for one prefix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeckRow {
    pub carrier: String,
    pub prefix: String,
    pub rate_micros: u64,
    pub connect_fee_micros: u64,
}

/// What a longest-prefix match found for one carrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub carrier: String,
    pub prefix_digits: usize,
    pub rate_micros: u64,
}

/// Every carrier's deck from the node at `addr`, the rows in force now.
pub async fn export(addr: &str) -> anyhow::Result<Vec<DeckRow>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .with_context(|| format!("can't connect to the Trunkline node at {addr}"))?;
    let mut admin = AdminServiceClient::new(channel);
    let routing = admin
        .list_routing(proto::ListRoutingRequest::default())
        .await
        .context("ListRouting")?
        .into_inner();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let mut rows = Vec::new();
    for carrier in routing.carriers {
        let mut chunks = admin
            .export_rates(proto::ExportRatesRequest {
                carrier: carrier.name.clone(),
                consistency: None,
            })
            .await
            .with_context(|| format!("ExportRates of {}", carrier.name))?
            .into_inner();
        while let Some(chunk) = chunks.message().await? {
            for rate in chunk.rates {
                let started = rate.effective_from_ms <= now_ms;
                let ended = rate.effective_until_ms != 0 && rate.effective_until_ms <= now_ms;
                if started && !ended {
                    rows.push(DeckRow {
                        carrier: carrier.name.clone(),
                        prefix: rate.prefix,
                        rate_micros: rate.rate_micros_per_minute,
                        connect_fee_micros: rate.connect_fee_micros,
                    });
                }
            }
            if rows.len() > MAX_ROWS {
                bail!("the decks hold over {MAX_ROWS} rows");
            }
        }
    }
    if rows.is_empty() {
        bail!("the node at {addr} has no rate deck rows (is it a `trunkline dev` node?)");
    }
    rows.sort();
    Ok(rows)
}

/// `count` numbers (E.164, with `+`) that the decks price, from `seed`.
pub fn dialled_numbers(rows: &[DeckRow], count: usize, seed: u64) -> Vec<String> {
    // Emergency and short codes are not numbers to route by price.
    let prefixes: Vec<&str> = rows
        .iter()
        .map(|row| row.prefix.as_str())
        .filter(|prefix| *prefix != "1911" && prefix.len() < 11)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if prefixes.is_empty() {
        return Vec::new();
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let prefix = prefixes[rng.random_range(0..prefixes.len())];
            let nanp = prefix.starts_with('1');
            let digits = if nanp { 11 } else { rng.random_range(11..=12) };
            let mut number = String::with_capacity(digits + 1);
            number.push('+');
            number.push_str(prefix);
            for position in prefix.len()..digits {
                // NANP: the area code and the exchange start with 2 to 9.
                let low = if nanp && (position == 1 || position == 4) {
                    2
                } else {
                    0
                };
                let digit: u8 = rng.random_range(low..=9);
                number.push(char::from(b'0' + digit));
            }
            number
        })
        .collect()
}

/// Reads a numbers file (one E.164 number a line, `#` comments and blank lines skipped).
pub fn parse_numbers(text: &str) -> Result<Vec<String>, String> {
    let mut numbers = Vec::new();
    for (line_number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let digits = line.strip_prefix('+').unwrap_or(line);
        if digits.is_empty()
            || digits.len() > MAX_NUMBER_DIGITS
            || !digits.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Err(format!(
                "line {}: {line:?} is not a number (1 to {MAX_NUMBER_DIGITS} digits, optionally after +)",
                line_number + 1
            ));
        }
        numbers.push(format!("+{digits}"));
    }
    if numbers.is_empty() {
        return Err("no numbers in it".to_owned());
    }
    Ok(numbers)
}

/// Every prefix of `digits`, shortest first: what an LPM lookup asks for.
pub fn prefixes_of(digits: &str) -> Vec<&str> {
    (1..=digits.len())
        .filter_map(|end| digits.get(..end))
        .collect()
}

/// The Redis value of each prefix: every carrier's row for it.
pub fn redis_values(rows: &[DeckRow]) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for row in rows {
        let value = values.entry(row.prefix.clone()).or_default();
        if !value.is_empty() {
            value.push(';');
        }
        value.push_str(&format!(
            "{},{},{}",
            row.carrier, row.rate_micros, row.connect_fee_micros
        ));
    }
    values
}

/// The longest prefix per carrier among `hits`: for each prefix length (shortest first, as
/// [`prefixes_of`] lists them) the Redis value found for it, if any. Ordered by price.
pub fn longest_per_carrier(hits: &[Option<Vec<u8>>]) -> Result<Vec<Match>, String> {
    let mut found: BTreeMap<&str, Match> = BTreeMap::new();
    for (position, value) in hits.iter().enumerate().rev() {
        let Some(value) = value else { continue };
        let value =
            std::str::from_utf8(value).map_err(|_| "a deck value that is not UTF-8".to_owned())?;
        for row in value.split(';') {
            let mut fields = row.split(',');
            let (Some(carrier), Some(rate), Some(_fee), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("a deck row {row:?} that is not carrier,rate,fee"));
            };
            let rate_micros = rate
                .parse()
                .map_err(|_| format!("a deck row {row:?} with a rate that is not a number"))?;
            found.entry(carrier).or_insert_with(|| Match {
                carrier: carrier.to_owned(),
                prefix_digits: position + 1,
                rate_micros,
            });
        }
    }
    let mut matches: Vec<Match> = found.into_values().collect();
    matches.sort_by(|a, b| (a.rate_micros, &a.carrier).cmp(&(b.rate_micros, &b.carrier)));
    Ok(matches)
}

/// The rows in PostgreSQL's COPY text format: tab-separated, backslash-escaped.
pub fn copy_text(rows: &[DeckRow]) -> String {
    let escape = |text: &str| {
        text.replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
    };
    let mut text = String::new();
    for row in rows {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            escape(&row.carrier),
            escape(&row.prefix),
            row.rate_micros,
            row.connect_fee_micros
        ));
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn row(carrier: &str, prefix: &str, rate_micros: u64) -> DeckRow {
        DeckRow {
            carrier: carrier.to_owned(),
            prefix: prefix.to_owned(),
            rate_micros,
            connect_fee_micros: 0,
        }
    }

    fn deck() -> Vec<DeckRow> {
        vec![
            row("atlas", "1415", 4_100),
            row("beacon", "1415", 4_900),
            row("atlas", "1415200", 3_500),
            row("cobalt", "44", 6_000),
            row("cobalt", "4420", 5_000),
            row("beacon", "1911", 0),
        ]
    }

    #[test]
    fn numbers_extend_deck_prefixes_to_full_numbers() {
        let rows = deck();
        let numbers = dialled_numbers(&rows, 200, 7);
        assert_eq!(numbers.len(), 200);
        for number in &numbers {
            let digits = number.strip_prefix('+').unwrap();
            assert!(digits.bytes().all(|byte| byte.is_ascii_digit()), "{number}");
            let priced = rows
                .iter()
                .any(|row| row.prefix != "1911" && digits.starts_with(&row.prefix));
            assert!(priced, "{number} is priced by no row");
            if digits.starts_with('1') {
                assert_eq!(digits.len(), 11, "{number}");
                assert!(digits.as_bytes()[4] >= b'2', "exchange of {number}");
            } else {
                assert!((11..=12).contains(&digits.len()), "{number}");
            }
        }
        // The same seed gives the same numbers; another seed others.
        assert_eq!(numbers, dialled_numbers(&rows, 200, 7));
        assert_ne!(numbers, dialled_numbers(&rows, 200, 8));
    }

    #[test]
    fn redis_values_hold_every_carrier_of_a_prefix() {
        let values = redis_values(&deck());
        assert_eq!(values["1415"], "atlas,4100,0;beacon,4900,0");
        assert_eq!(values["4420"], "cobalt,5000,0");
        assert_eq!(values.len(), 5);
    }

    #[test]
    fn the_longest_prefix_wins_per_carrier_then_price_orders() {
        let values = redis_values(&deck());
        let number = "14152001234";
        let hits: Vec<Option<Vec<u8>>> = prefixes_of(number)
            .iter()
            .map(|prefix| values.get(*prefix).map(|value| value.clone().into_bytes()))
            .collect();
        let matches = longest_per_carrier(&hits).unwrap();
        assert_eq!(
            matches,
            [
                Match {
                    carrier: "atlas".to_owned(),
                    prefix_digits: 7,
                    rate_micros: 3_500
                },
                Match {
                    carrier: "beacon".to_owned(),
                    prefix_digits: 4,
                    rate_micros: 4_900
                },
            ]
        );
        assert_eq!(longest_per_carrier(&[None, None]).unwrap(), []);
    }

    #[test]
    fn a_malformed_redis_value_is_an_error() {
        for value in ["atlas,1", "atlas,x,0", "atlas,1,0,9"] {
            let hits = [Some(value.as_bytes().to_vec())];
            assert!(longest_per_carrier(&hits).is_err(), "{value}");
        }
    }

    #[test]
    fn prefixes_of_a_number_shortest_first() {
        assert_eq!(prefixes_of("4420"), ["4", "44", "442", "4420"]);
    }

    #[test]
    fn numbers_files_are_checked_line_by_line() {
        assert_eq!(
            parse_numbers("# demo\n+14155550100\n\n442071234567\n").unwrap(),
            ["+14155550100", "+442071234567"]
        );
        assert!(parse_numbers("+1415x\n").unwrap_err().contains("line 1"));
        assert!(parse_numbers("+1234567890123456\n").is_err());
        assert!(parse_numbers("# nothing\n").is_err());
    }

    #[test]
    fn copy_text_escapes_what_would_split_a_row() {
        let text = copy_text(&[row("a\tb", "44", 1)]);
        assert_eq!(text, "a\\tb\t44\t1\t0\n");
    }
}
