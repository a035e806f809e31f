//! Tests of the longest-prefix index: golden cases for matching and effective periods, a
//! property test against a brute-force scan of the decks, and the memory bound.

use crate::routing::{IndexError, PrefixIndex, PrefixIndexBuilder, Rate, RateMatch};

fn rate(prefix: &str, rate_micros_per_minute: u64) -> Rate {
    Rate {
        prefix: prefix.to_owned(),
        rate_micros_per_minute,
        connect_fee_micros: 0,
        description: String::new(),
        effective_from_ms: None,
        effective_until_ms: None,
    }
}

fn window(mut rate: Rate, from_ms: Option<u64>, until_ms: Option<u64>) -> Rate {
    rate.effective_from_ms = from_ms;
    rate.effective_until_ms = until_ms;
    rate
}

fn build(decks: &[(&str, Rate)]) -> PrefixIndex {
    PrefixIndex::build(decks.iter().map(|(carrier, rate)| (*carrier, rate))).unwrap()
}

/// Looks `digits` up and renders the matches as "carrier prefix rate", sorted by carrier.
#[track_caller]
fn check(index: &PrefixIndex, digits: &str, now_ms: u64, expected: &[&str]) {
    let mut actual: Vec<String> = index
        .lookup(digits, now_ms)
        .iter()
        .map(|found| {
            format!(
                "{} {} {}",
                found.carrier, found.prefix, found.rate_micros_per_minute
            )
        })
        .collect();
    actual.sort();
    assert_eq!(actual, expected, "lookup {digits:?} at {now_ms}");
}

#[test]
fn each_carrier_gets_its_own_longest_prefix() {
    let index = build(&[
        ("alpha", rate("1", 9_000)),
        ("alpha", rate("1415", 5_000)),
        ("alpha", rate("1415555", 4_000)),
        ("beta", rate("14", 6_000)),
        ("beta", rate("1416", 3_000)),
        ("gamma", rate("44", 1_000)),
    ]);
    check(
        &index,
        "14155550100",
        0,
        &["alpha 1415555 4000", "beta 14 6000"],
    );
    check(
        &index,
        "14165550100",
        0,
        &["alpha 1 9000", "beta 1416 3000"],
    );
    check(&index, "12125550100", 0, &["alpha 1 9000"]);
    check(&index, "442071234567", 0, &["gamma 44 1000"]);
    check(&index, "33142685300", 0, &[]);
}

#[test]
fn a_prefix_only_matches_from_the_start_and_as_a_whole() {
    let index = build(&[
        ("alpha", rate("4415", 1)),
        ("alpha", rate("123456789012345", 2)),
    ]);
    check(&index, "14415000000", 0, &[]);
    check(&index, "4410000000", 0, &[]);
    check(&index, "441", 0, &[]);
    check(&index, "123456789012345", 0, &["alpha 123456789012345 2"]);
}

#[test]
fn rows_apply_only_within_their_effective_period() {
    let index = build(&[
        ("alpha", rate("1", 9_000)),
        ("alpha", window(rate("1415", 5_000), None, Some(1_000))),
        (
            "alpha",
            window(rate("1415", 6_000), Some(1_000), Some(2_000)),
        ),
        ("alpha", window(rate("1415555", 4_000), Some(5_000), None)),
    ]);
    // The longest prefix is not yet in effect: the next longest that is counts.
    check(&index, "14155550100", 0, &["alpha 1415 5000"]);
    check(&index, "14155550100", 999, &["alpha 1415 5000"]);
    // effective_until is exclusive and effective_from inclusive.
    check(&index, "14155550100", 1_000, &["alpha 1415 6000"]);
    check(&index, "14155550100", 2_000, &["alpha 1 9000"]);
    check(&index, "14155550100", 5_000, &["alpha 1415555 4000"]);
    check(&index, "14155550100", u64::MAX, &["alpha 1415555 4000"]);
}

#[test]
fn overlapping_rows_for_one_prefix_are_refused() {
    let overlapping = [
        ("alpha", window(rate("1415", 5_000), None, Some(1_000))),
        ("alpha", window(rate("1415", 6_000), Some(999), None)),
    ];
    let result = PrefixIndex::build(overlapping.iter().map(|(carrier, rate)| (*carrier, rate)));
    assert_eq!(
        result.unwrap_err(),
        IndexError::OverlappingRates {
            carrier: "alpha".to_owned(),
            prefix: "1415".to_owned()
        }
    );
    let duplicate = [
        ("alpha", rate("0044", 1)),
        ("beta", rate("0044", 1)),
        ("alpha", rate("0044", 2)),
    ];
    let result = PrefixIndex::build(duplicate.iter().map(|(carrier, rate)| (*carrier, rate)));
    assert_eq!(
        result.unwrap_err(),
        IndexError::OverlappingRates {
            carrier: "alpha".to_owned(),
            prefix: "0044".to_owned()
        }
    );
    // The same prefix for two carriers is no overlap.
    build(&[("alpha", rate("1415", 1)), ("beta", rate("1415", 2))]);
}

#[test]
fn bad_rows_are_refused_with_the_field_named() {
    let mut builder = PrefixIndexBuilder::new();
    let error = builder.add("alpha", &rate("44a", 1)).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"carrier "alpha", prefix "44a": prefix: must be 1 to 15 digits"#
    );
    let error = builder.add("bad name", &rate("44", 1)).unwrap_err();
    assert!(
        matches!(error, IndexError::InvalidCarrier { .. }),
        "{error:?}"
    );
    let error = builder
        .add("alpha", &window(rate("44", 1), Some(5), Some(5)))
        .unwrap_err();
    assert!(error.to_string().contains("effective_until"), "{error}");
    assert!(builder.is_empty());
}

#[test]
fn lookups_of_anything_but_digits_match_nothing() {
    let index = build(&[("alpha", rate("1", 1))]);
    check(&index, "", 0, &[]);
    check(&index, "+14155550100", 0, &[]);
    check(&index, "1415555010a", 0, &[]);
    check(&index, "1234567890123456", 0, &[]);
    check(&PrefixIndex::default(), "14155550100", 0, &[]);
    check(&build(&[]), "14155550100", 0, &[]);
}

#[test]
fn many_carriers_sharing_prefixes_each_get_their_longest() {
    // More carriers than the lookup tracks on the stack; every third has a longer prefix.
    let carriers: Vec<String> = (0..300)
        .map(|number| format!("carrier{number:03}"))
        .collect();
    let mut rows: Vec<(&str, Rate)> = carriers
        .iter()
        .map(|carrier| (carrier.as_str(), rate("44", 100)))
        .collect();
    for (number, carrier) in carriers.iter().enumerate().step_by(3) {
        rows.push((carrier.as_str(), rate("4420", number as u64)));
    }
    let favoured: Vec<&str> = carriers.iter().step_by(3).map(String::as_str).collect();
    let index = build(&rows);
    let matches = index.lookup("442071234567", 0);
    assert_eq!(matches.len(), 300);
    for found in &matches {
        let number: u64 = found.carrier["carrier".len()..].parse().unwrap();
        let expected = if favoured.contains(&found.carrier) {
            ("4420", number)
        } else {
            ("44", 100)
        };
        assert_eq!((found.prefix, found.rate_micros_per_minute), expected);
    }
}

#[test]
fn memory_per_row_stays_small() {
    let rows: Vec<Rate> = (0..200_000_u64)
        .map(|value| rate(&format!("1{value:07}"), value % 500))
        .collect();
    let index = PrefixIndex::build(rows.iter().map(|rate| ("alpha", rate))).unwrap();
    assert_eq!(index.len(), rows.len());
    let bytes_per_row = index.memory_bytes() / rows.len();
    // A 16-byte slot at 60% load holds each row inline; tariffs are shared.
    assert!(bytes_per_row <= 30, "{bytes_per_row} bytes per row");
    check(&index, "10123456", 0, &["alpha 10123456 456"]);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const CARRIERS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

    /// Deck rows over a small alphabet so prefixes of the looked-up numbers are common.
    fn deck_row() -> impl Strategy<Value = (usize, Rate)> {
        (
            0..CARRIERS.len(),
            "[123]{1,6}",
            0..10_000_u64,
            proptest::option::of(0..100_u64),
            proptest::option::of(1..100_u64),
        )
            .prop_map(|(carrier, prefix, rate_micros_per_minute, from, length)| {
                let until = match (from, length) {
                    (Some(from), Some(length)) => Some(from + length),
                    (None, length) => length,
                    (Some(_), None) => None,
                };
                (
                    carrier,
                    window(rate(&prefix, rate_micros_per_minute), from, until),
                )
            })
    }

    fn overlaps(a: &Rate, b: &Rate) -> bool {
        let a_from = a.effective_from_ms.unwrap_or(0);
        let b_from = b.effective_from_ms.unwrap_or(0);
        let a_until = a.effective_until_ms.unwrap_or(u64::MAX);
        let b_until = b.effective_until_ms.unwrap_or(u64::MAX);
        a_from < b_until && b_from < a_until
    }

    /// The answer by reading every row: per carrier, the longest effective prefix.
    fn brute_force(rows: &[(usize, Rate)], digits: &str, now_ms: u64) -> Vec<String> {
        let mut answer = Vec::new();
        for (number, carrier) in CARRIERS.iter().enumerate() {
            let best = rows
                .iter()
                .filter(|(row_carrier, row)| {
                    *row_carrier == number
                        && digits.starts_with(row.prefix.as_str())
                        && row.is_effective(now_ms)
                })
                .max_by_key(|(_, row)| row.prefix.len());
            if let Some((_, row)) = best {
                answer.push(format!(
                    "{carrier} {} {}",
                    row.prefix, row.rate_micros_per_minute
                ));
            }
        }
        answer.sort();
        answer
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn lookup_finds_each_carriers_longest_effective_prefix(
            candidate_rows in proptest::collection::vec(deck_row(), 0..60),
            digits in "[123]{1,8}",
            now_ms in 0..220_u64,
        ) {
            // Keep only rows a valid deck could hold: no overlapping periods for one prefix.
            let mut rows: Vec<(usize, Rate)> = Vec::new();
            for (carrier, row) in candidate_rows {
                let clashes = rows.iter().any(|(kept_carrier, kept)| {
                    *kept_carrier == carrier && kept.prefix == row.prefix && overlaps(kept, &row)
                });
                if !clashes {
                    rows.push((carrier, row));
                }
            }
            let index = PrefixIndex::build(
                rows.iter().map(|(carrier, rate)| (CARRIERS[*carrier], rate)),
            ).unwrap();
            let matches: Vec<RateMatch<'_>> = index.lookup(&digits, now_ms);
            let mut actual: Vec<String> = matches
                .iter()
                .map(|found| format!("{} {} {}", found.carrier, found.prefix, found.rate_micros_per_minute))
                .collect();
            actual.sort();
            prop_assert_eq!(actual, brute_force(&rows, &digits, now_ms));
        }
    }
}
