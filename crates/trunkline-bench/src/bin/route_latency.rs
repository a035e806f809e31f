//! The distribution of single route decision times (p50 to p99.9 and the worst), with 1 and
//! 5 million deck rows loaded, for the least-cost and the weighted strategy.
//!
//! DESIGN.md's target is a p99, which criterion does not report: it times batches of
//! iterations and gives their mean and median. This binary times every decision on its own
//! with `Instant`, after a warm-up, over the same decks, configuration and numbers as the
//! `route_decision` benchmark, and prints the percentiles. Each measurement includes one
//! clock read's overhead, printed on the first line so it can be subtracted.
//!
//! Usage: `route_latency [ROWS...]`, rows as `1M`, `250k` or digits; 1M and 5M by default.
//! Run with `cargo run --release -p trunkline-bench --bin route_latency`.
//!
//! Exit codes: 0 done (also when the output is closed early), 1 the workload could not be
//! built, 2 bad arguments.

use std::hint::black_box;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use trunkline_bench::{
    parse_rows, rows_label, Deck, DeckSpec, Router, RoutingSetup, BENCH_NUMBERS, NUMBERS_SEED,
    SETUP_SEED,
};
use trunkline_core::routing::Strategy;

/// Decisions timed per deck size and strategy.
const DECISIONS: usize = 1_000_000;
/// Decisions made before timing starts, to warm caches and the branch predictor.
const WARM_UP_DECISIONS: usize = 100_000;
/// Seed of the weighted draws during selection.
const SELECTION_SEED: u64 = 42;

/// Carriers a tenant-sized case allows.
const TENANT_SIZED_CARRIERS: usize = 4;

fn main() -> ExitCode {
    let rows = match parse_rows(std::env::args().skip(1)) {
        Ok(rows) => rows,
        Err(message) => {
            eprintln!("route_latency: {message}\nusage: route_latency [ROWS...]");
            return ExitCode::from(2);
        }
    };
    match run(&rows) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("route_latency: {error}");
            ExitCode::from(1)
        }
    }
}

fn run(sizes: &[usize]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "clock overhead per reading: {} ns",
        clock_overhead_nanos()
    )?;
    writeln!(
        out,
        "{:<6} {:<11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6}",
        "rows", "strategy", "mean ns", "p50", "p90", "p99", "p99.9", "max", "legs"
    )?;
    for &rows in sizes {
        let deck = Deck::new(DeckSpec::new(rows));
        let index = deck.build_index().map_err(io::Error::other)?;
        let setup = RoutingSetup::new(&deck, SETUP_SEED).map_err(io::Error::other)?;
        let numbers = deck.dialled_numbers(BENCH_NUMBERS, NUMBERS_SEED);
        let cases = [
            ("least-cost", setup.tenant(Strategy::LeastCost)),
            ("weighted", setup.tenant(Strategy::Weighted)),
            (
                "lc-4-carr",
                setup.tenant_with_carriers(Strategy::LeastCost, TENANT_SIZED_CARRIERS),
            ),
        ];
        for (case, tenant) in cases {
            let router = Router::new(&index, &setup, &tenant);
            let mut rng = SmallRng::seed_from_u64(SELECTION_SEED);
            let mut cycle = numbers.iter().cycle();
            for dialled in cycle.by_ref().take(WARM_UP_DECISIONS) {
                let _ = black_box(router.decide(black_box(dialled), &mut rng));
            }
            let mut nanos = Vec::with_capacity(DECISIONS);
            let mut legs = 0_usize;
            for dialled in cycle.take(DECISIONS) {
                let started = Instant::now();
                let summary = router.decide(black_box(dialled), &mut rng);
                nanos.push(duration_nanos(started.elapsed()));
                legs += summary.map_or(0, |summary| summary.legs);
            }
            nanos.sort_unstable();
            let mean = nanos.iter().sum::<u64>() / nanos.len().max(1) as u64;
            writeln!(
                out,
                "{:<6} {:<11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6.1}",
                rows_label(rows),
                case,
                mean,
                percentile(&nanos, 50.0),
                percentile(&nanos, 90.0),
                percentile(&nanos, 99.0),
                percentile(&nanos, 99.9),
                nanos.last().copied().unwrap_or_default(),
                legs as f64 / DECISIONS as f64,
            )?;
        }
    }
    Ok(())
}

/// The value below which `percent` of the sorted `nanos` fall (nearest rank).
fn percentile(nanos: &[u64], percent: f64) -> u64 {
    let rank = ((percent / 100.0) * nanos.len() as f64).ceil() as usize;
    nanos
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

/// The median cost of reading the clock twice around nothing.
fn clock_overhead_nanos() -> u64 {
    let mut nanos: Vec<u64> = (0..100_000)
        .map(|_| duration_nanos(Instant::now().elapsed()))
        .collect();
    nanos.sort_unstable();
    percentile(&nanos, 50.0)
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
