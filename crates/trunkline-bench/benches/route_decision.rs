//! One full route decision (normalise, classify, prefix lookup, select) with 1 and 5 million
//! deck rows loaded, for the least-cost and the weighted strategy.
//!
//! DESIGN.md asks for a decision in at most 2 µs (p99) with 5 million prefixes loaded. Each
//! index is built once, outside the timed loop; every iteration routes the next of
//! `BENCH_NUMBERS` dialled numbers drawn like the decks, so lookups hit memory as real
//! traffic does rather than a few hot cache lines. Criterion reports the mean and median time
//! per decision; the `route_latency` binary reports the tail (p99, p99.9).
//!
//! Run: `cargo bench -p trunkline-bench --bench route_decision` (add `-- 1M` for the 1M rows
//! alone).

// A benchmark that cannot set up its inputs has nothing to measure: failing loudly with the
// reason is the right answer, so `expect` is allowed here.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use trunkline_bench::{
    rows_label, Deck, DeckSpec, Router, RoutingSetup, BENCH_NUMBERS, DEFAULT_ROWS, NUMBERS_SEED,
    SETUP_SEED,
};
use trunkline_core::routing::Strategy;

/// Seed of the weighted draws during selection.
const SELECTION_SEED: u64 = 42;

fn route_decision(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("route_decision");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for rows in DEFAULT_ROWS {
        let deck = Deck::new(DeckSpec::new(rows));
        let index = deck
            .build_index()
            .expect("the generated decks build into an index");
        let setup =
            RoutingSetup::new(&deck, SETUP_SEED).expect("the generated configuration is valid");
        let numbers = deck.dialled_numbers(BENCH_NUMBERS, NUMBERS_SEED);
        for strategy in [Strategy::LeastCost, Strategy::Weighted] {
            let tenant = setup.tenant(strategy);
            let router = Router::new(&index, &setup, &tenant);
            let mut rng = SmallRng::seed_from_u64(SELECTION_SEED);
            let mut next = 0;
            group.bench_function(
                BenchmarkId::new(strategy.as_str(), rows_label(rows)),
                |bencher| {
                    bencher.iter(|| {
                        let dialled = &numbers[next % numbers.len()];
                        next += 1;
                        router
                            .decide(black_box(dialled), &mut rng)
                            .expect("every generated number normalises")
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, route_decision);
criterion_main!(benches);
