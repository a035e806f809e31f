//! Building the prefix index from 1 million deck rows, in rows per second: the work a node
//! does off the request path each time a deck changes (issue 3 asks for rows per second on
//! import, and DESIGN.md for a 1-million-row import in under 10 s end to end).
//!
//! The rows are generated once, before timing; each iteration feeds all of them to a
//! `PrefixIndexBuilder` (which checks every row) and builds the index. Dropping the index is
//! not timed.
//!
//! Run: `cargo bench -p trunkline-bench --bench index_build`.

// A benchmark that cannot set up its inputs has nothing to measure: failing loudly with the
// reason is the right answer, so `expect` is allowed here.
#![allow(clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use trunkline_bench::{rows_label, Deck, DeckSpec};
use trunkline_core::routing::PrefixIndexBuilder;

/// Rows per build.
const ROWS: usize = 1_000_000;

fn index_build(criterion: &mut Criterion) {
    let deck = Deck::new(DeckSpec::new(ROWS));
    let names: Vec<&str> = deck.carrier_names().collect();
    let rows = deck.collect_rows();
    let mut group = criterion.benchmark_group("index_build");
    // Each build takes a good fraction of a second: the fewest samples criterion allows.
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function(BenchmarkId::from_parameter(rows_label(ROWS)), |bencher| {
        bencher.iter_with_large_drop(|| {
            let mut builder = PrefixIndexBuilder::with_capacity(rows.len());
            for (carrier, rate) in &rows {
                builder
                    .add(names[*carrier], rate)
                    .expect("generated rows are valid");
            }
            builder
                .finish()
                .expect("generated decks have no overlapping rows")
        })
    });
    group.finish();
}

criterion_group!(benches, index_build);
criterion_main!(benches);
