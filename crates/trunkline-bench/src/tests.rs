//! Tests of the workload generator: the decks and numbers are deterministic, the decks have
//! the rows asked for and build into an index, and the numbers mostly find a route, so the
//! benchmarks measure lookups that hit, as real traffic does.

use rand::rngs::SmallRng;
use rand::SeedableRng;
use trunkline_core::routing::{normalize, DestinationClass, Normalized, Rate, Strategy};

use crate::{dial_plan, Deck, DeckSpec, Router, RoutingSetup, NOW_MS, NUMBERS_SEED, SETUP_SEED};

/// A deck small enough to generate quickly in a debug build.
fn small_spec(seed: u64) -> DeckSpec {
    DeckSpec {
        rows: 40_000,
        carriers: 5,
        seed,
        international_prefixes: 20_000,
    }
}

fn rows_of(deck: &Deck) -> Vec<(String, Rate)> {
    let mut rows = Vec::new();
    deck.for_each_row(|carrier, rate| rows.push((carrier.to_owned(), rate.clone())));
    rows
}

#[test]
fn the_same_seed_gives_the_same_decks_and_numbers() {
    let first = Deck::new(small_spec(7));
    let second = Deck::new(small_spec(7));
    assert_eq!(rows_of(&first), rows_of(&second));
    assert_eq!(
        first.dialled_numbers(500, NUMBERS_SEED),
        second.dialled_numbers(500, NUMBERS_SEED)
    );

    let other = Deck::new(small_spec(8));
    assert_ne!(rows_of(&first), rows_of(&other));
    assert_ne!(first.dialled_numbers(500, 1), first.dialled_numbers(500, 2));
}

#[test]
fn a_deck_has_the_rows_asked_for_and_builds_into_an_index() {
    let deck = Deck::new(small_spec(1));
    assert_eq!(deck.rows(), 40_000);
    assert_eq!(rows_of(&deck).len(), 40_000);
    assert_eq!(deck.collect_rows().len(), 40_000);
    // Building refuses a carrier listing one prefix twice, so this also checks there is none.
    let index = deck.build_index().unwrap();
    assert_eq!(index.len(), 40_000);
    assert_eq!(index.carrier_count(), 5);
    let distinct = deck.distinct_prefixes();
    assert!(
        distinct > 20_000 && distinct < 40_000,
        "{distinct} distinct prefixes"
    );
    let share = deck.nanp_share();
    assert!((0.4..0.8).contains(&share), "NANP share {share}");
}

#[test]
fn rows_have_the_shapes_of_real_decks() {
    let deck = Deck::new(small_spec(2));
    let rows = rows_of(&deck);
    let lengths: std::collections::BTreeSet<usize> =
        rows.iter().map(|(_, rate)| rate.prefix.len()).collect();
    assert!(lengths.contains(&4) && lengths.contains(&7), "{lengths:?}");
    assert!(lengths.iter().all(|length| (1..=8).contains(length)));
    assert!(rows.iter().all(|(_, rate)| !rate.prefix.starts_with('0')));
    let expired = rows
        .iter()
        .filter(|(_, rate)| !rate.is_effective(NOW_MS))
        .count();
    assert!(
        expired > 0 && expired < rows.len() / 50,
        "{expired} expired"
    );
    let prices: std::collections::BTreeSet<u64> = rows
        .iter()
        .map(|(_, rate)| rate.rate_micros_per_minute)
        .collect();
    assert!(prices.len() < 2_000, "{} price points", prices.len());
}

#[test]
fn numbers_normalise_and_most_match_a_prefix() {
    let deck = Deck::new(small_spec(3));
    let index = deck.build_index().unwrap();
    let plan = dial_plan();
    let numbers = deck.dialled_numbers(2_000, NUMBERS_SEED);
    let mut matched = 0;
    let mut nanp = 0;
    for dialled in &numbers {
        let normalized = normalize(dialled, &plan).unwrap();
        let Normalized::E164(number) = &normalized else {
            panic!("{dialled:?} is not a public number: {normalized:?}");
        };
        nanp += usize::from(number.is_nanp());
        if !index.lookup(number.digits(), NOW_MS).is_empty() {
            matched += 1;
        }
    }
    assert!(
        matched * 100 >= numbers.len() * 95,
        "{matched} of {} matched",
        numbers.len()
    );
    assert!(
        matched < numbers.len(),
        "every number matched; none went unserved"
    );
    assert!(nanp * 100 >= numbers.len() * 40, "{nanp} NANP numbers");
    assert_eq!(deck.routing_digits(2_000, NUMBERS_SEED).len(), 2_000);
}

#[test]
fn decisions_offer_legs_for_most_numbers_with_either_strategy() {
    let deck = Deck::new(small_spec(4));
    let index = deck.build_index().unwrap();
    let setup = RoutingSetup::new(&deck, SETUP_SEED).unwrap();
    assert!(setup.gateways.len() >= 10);
    for strategy in [Strategy::LeastCost, Strategy::Weighted] {
        let tenant = setup.tenant(strategy);
        tenant.validate().unwrap();
        let router = Router::new(&index, &setup, &tenant);
        let mut rng = SmallRng::seed_from_u64(5);
        let numbers = deck.dialled_numbers(1_000, NUMBERS_SEED);
        let mut routed = 0;
        let mut classes = std::collections::BTreeSet::new();
        for dialled in &numbers {
            let summary = router.decide(dialled, &mut rng).unwrap();
            assert!(summary.legs == 0 || summary.carriers_matched > 0);
            routed += usize::from(summary.legs > 0);
            classes.insert(summary.class.as_str());
        }
        assert!(
            routed * 100 >= numbers.len() * 90,
            "{strategy}: {routed} routed"
        );
        assert!(classes.contains(DestinationClass::National.as_str()));
        assert!(classes.contains(DestinationClass::International.as_str()));
    }
}

#[test]
fn row_counts_read_as_benchmark_names() {
    assert_eq!(crate::rows_label(1_000_000), "1M");
    assert_eq!(crate::rows_label(5_000_000), "5M");
    assert_eq!(crate::rows_label(250_000), "250k");
    assert_eq!(crate::rows_label(1_234), "1234");
}

#[test]
fn row_counts_are_read_from_the_command_line() {
    let parse = |arguments: &[&str]| {
        crate::parse_rows(arguments.iter().map(|argument| (*argument).to_owned()))
    };
    assert_eq!(parse(&[]), Ok(vec![1_000_000, 5_000_000]));
    assert_eq!(
        parse(&["1M", "250k", "1234"]),
        Ok(vec![1_000_000, 250_000, 1_234])
    );
    assert!(parse(&["0"]).is_err());
    assert!(parse(&["51M"]).is_err());
    assert!(parse(&["lots"]).unwrap_err().contains("\"lots\""));
}
