//! `PrefixIndex::lookup` alone, with 1 and 5 million deck rows loaded: every carrier's longest
//! effective prefix for an E.164 number.
//!
//! The numbers are the benchmark's dialled numbers already normalised, cycled through so
//! that each lookup probes cold parts of the index as real traffic does. The index is built
//! once, outside the timed loop.
//!
//! Run: `cargo bench -p trunkline-bench --bench prefix_lookup`.

// A benchmark that cannot set up its inputs has nothing to measure: failing loudly with the
// reason is the right answer, so `expect` is allowed here.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use trunkline_bench::{
    rows_label, Deck, DeckSpec, BENCH_NUMBERS, DEFAULT_ROWS, NOW_MS, NUMBERS_SEED,
};

fn prefix_lookup(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("prefix_lookup");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for rows in DEFAULT_ROWS {
        let deck = Deck::new(DeckSpec::new(rows));
        let index = deck
            .build_index()
            .expect("the generated decks build into an index");
        let numbers = deck.routing_digits(BENCH_NUMBERS, NUMBERS_SEED);
        let mut next = 0;
        group.bench_function(BenchmarkId::from_parameter(rows_label(rows)), |bencher| {
            bencher.iter(|| {
                let digits = &numbers[next % numbers.len()];
                next += 1;
                index.lookup(black_box(digits), NOW_MS).len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, prefix_lookup);
criterion_main!(benches);
