//! Tests of the packed deck: it reads back exactly the rows it was built from, in the order
//! the configuration keeps, serialises as the `Vec<Rate>` it replaced, and merges as the
//! configuration's import merge promises.

use proptest::prelude::*;

use crate::routing::{Deck, PrefixKey, Rate};

fn rate(prefix: &str, rate_micros_per_minute: u64, description: &str) -> Rate {
    Rate {
        prefix: prefix.to_owned(),
        rate_micros_per_minute,
        connect_fee_micros: rate_micros_per_minute / 3,
        description: description.to_owned(),
        effective_from_ms: None,
        effective_until_ms: None,
    }
}

/// The order the configuration keeps a deck in, on `Rate`s.
fn sort(rates: &mut [Rate]) {
    rates.sort_by(|a, b| (&a.prefix, a.effective_from_ms).cmp(&(&b.prefix, b.effective_from_ms)));
}

fn deck(rates: &[Rate]) -> Deck {
    Deck::from_rates(rates).unwrap()
}

#[test]
fn leading_zeros_and_fifteen_digit_prefixes_read_back() {
    let rates = [
        rate("0", 1, ""),
        rate("007", 2, "bond"),
        rate("07", 3, ""),
        rate("999999999999999", 4, "longest"),
    ];
    let deck = deck(&rates);
    assert_eq!(deck.len(), 4);
    assert_eq!(deck.rates().collect::<Vec<_>>(), rates);
    assert_eq!(&*deck.row(1).unwrap().prefix.digits(), "007");
    assert!(deck.row(4).is_none());
}

#[test]
fn a_prefix_that_is_not_1_to_15_digits_is_refused() {
    for prefix in ["", "1234567890123456", "12a", "+44"] {
        let error = Deck::from_rates(&[rate(prefix, 1, "")]).unwrap_err();
        assert_eq!(error.field(), "prefix", "{prefix:?}");
        assert!(PrefixKey::parse(prefix).is_none(), "{prefix:?}");
    }
}

#[test]
fn a_deck_serialised_with_a_bad_prefix_does_not_load() {
    let json = serde_json::to_string(&[rate("12x", 1, "")]).unwrap();
    let error = serde_json::from_str::<Deck>(&json).unwrap_err();
    assert!(error.to_string().contains("prefix"), "{error}");
}

#[test]
fn shared_details_are_stored_once() {
    let many: Vec<Rate> = (0..1_000)
        .map(|n| rate(&format!("44{n:04}"), n, "United Kingdom"))
        .collect();
    let one_each: Vec<Rate> = (0..1_000)
        .map(|n| rate(&format!("44{n:04}"), n, &format!("United Kingdom {n:04}")))
        .collect();
    let shared = deck(&many).memory_bytes();
    let distinct = deck(&one_each).memory_bytes();
    assert!(shared < 32 * 1_000, "{shared} bytes for 1,000 rows");
    assert!(
        distinct > shared + 1_000 * 40,
        "{distinct} against {shared}"
    );
}

#[test]
fn a_merge_replaces_every_row_of_a_prefix_it_brings() {
    let mut dated = rate("44", 9, "");
    dated.effective_from_ms = Some(5_000);
    let mut before = rate("44", 10, "");
    before.effective_until_ms = Some(5_000);
    let current = deck(&[rate("1", 5, ""), before, dated, rate("4", 1, "")]);
    let incoming = deck(&[rate("33", 7, ""), rate("44", 12, "")]);
    let merged: Vec<(String, u64)> = current
        .merged(&incoming)
        .rates()
        .map(|rate| (rate.prefix, rate.rate_micros_per_minute))
        .collect();
    assert_eq!(
        merged,
        [
            ("1".to_owned(), 5),
            ("33".to_owned(), 7),
            ("4".to_owned(), 1),
            ("44".to_owned(), 12)
        ]
    );
}

fn rates_strategy() -> impl Strategy<Value = Vec<Rate>> {
    proptest::collection::vec(
        (
            "[0-9]{1,15}",
            0..1_000_000_u64,
            proptest::option::of(0..100_u64),
            proptest::option::of(100..200_u64),
            "[a-c]{0,2}",
        )
            .prop_map(|(prefix, micros, from, until, description)| Rate {
                prefix,
                rate_micros_per_minute: micros,
                connect_fee_micros: micros / 7,
                description,
                effective_from_ms: from,
                effective_until_ms: until,
            }),
        0..40,
    )
    .prop_map(|mut rates| {
        sort(&mut rates);
        rates
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_deck_reads_back_and_serialises_as_its_rates(rates in rates_strategy()) {
        let deck = deck(&rates);
        prop_assert_eq!(deck.rates().collect::<Vec<_>>(), rates.clone());
        let json = serde_json::to_string(&deck).unwrap();
        prop_assert_eq!(&json, &serde_json::to_string(&rates).unwrap());
        prop_assert_eq!(serde_json::from_str::<Deck>(&json).unwrap(), deck);
    }

    #[test]
    fn prefix_keys_order_as_their_digits(a in "[0-9]{1,15}", b in "[0-9]{1,15}") {
        let (key_a, key_b) = (PrefixKey::parse(&a).unwrap(), PrefixKey::parse(&b).unwrap());
        prop_assert_eq!(key_a.cmp_digits(key_b), a.cmp(&b));
        prop_assert_eq!(key_a == key_b, a == b);
        prop_assert_eq!(&*key_a.digits(), a.as_str());
    }

    #[test]
    fn a_merge_is_the_old_rows_of_other_prefixes_and_every_new_row_in_order(
        current in rates_strategy(),
        incoming in rates_strategy(),
    ) {
        let mut expected: Vec<Rate> = current
            .iter()
            .filter(|old| !incoming.iter().any(|new| new.prefix == old.prefix))
            .cloned()
            .chain(incoming.iter().cloned())
            .collect();
        sort(&mut expected);
        let merged = deck(&current).merged(&deck(&incoming));
        // Rows equal under the sort keep either order; compare as the sort leaves them.
        let mut got: Vec<Rate> = merged.rates().collect();
        sort(&mut got);
        prop_assert_eq!(got, expected);
        let in_order = merged.rates().collect::<Vec<_>>().windows(2).all(|pair| {
            (&pair[0].prefix, pair[0].effective_from_ms)
                <= (&pair[1].prefix, pair[1].effective_from_ms)
        });
        prop_assert!(in_order, "the merged deck is out of order");
    }
}
