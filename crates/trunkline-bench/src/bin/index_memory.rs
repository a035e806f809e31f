//! Memory of the prefix index per deck row, and the process's resident memory, for decks of 1
//! and 5 million rows. Criterion measures time only; this is the memory half of issue 3's
//! benchmarks.
//!
//! For each deck size it resets the process's peak resident set (`/proc/self/clear_refs`),
//! generates the decks and builds the index, then prints `PrefixIndex::memory_bytes` per row
//! and the resident set before, after and at its peak during the build (`VmRSS`, `VmHWM` in
//! `/proc/self/status`), and how many distinct prefixes the rows share. The peak includes the builder's working memory (16 bytes a row plus
//! its maps), which is freed once the index is built; the index is what a node keeps.
//!
//! Usage: `index_memory [ROWS...]`, rows as `1M`, `250k` or digits; 1M and 5M by default.
//! Run with `cargo run --release -p trunkline-bench --bin index_memory`.
//!
//! Exit codes: 0 done (also when the output is closed early), 1 an index could not be built,
//! 2 bad arguments.

use std::fs;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

use trunkline_bench::{parse_rows, rows_label, Deck, DeckSpec};

fn main() -> ExitCode {
    let rows = match parse_rows(std::env::args().skip(1)) {
        Ok(rows) => rows,
        Err(message) => {
            eprintln!("index_memory: {message}\nusage: index_memory [ROWS...]");
            return ExitCode::from(2);
        }
    };
    match run(&rows) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("index_memory: {error}");
            ExitCode::from(1)
        }
    }
}

fn run(sizes: &[usize]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let mut measured = Vec::with_capacity(sizes.len());
    for &rows in sizes {
        let peak_reset = reset_peak_resident();
        let before_kib = status_kib("VmRSS");
        let started = Instant::now();
        let deck = Deck::new(DeckSpec::new(rows));
        let index = deck.build_index().map_err(io::Error::other)?;
        let seconds = started.elapsed().as_secs_f64();
        let after_kib = status_kib("VmRSS");
        let peak_kib = status_kib("VmHWM");
        let bytes = index.memory_bytes();
        writeln!(
            out,
            "== {} rows, {} carriers",
            rows_label(index.len()),
            index.carrier_count()
        )?;
        writeln!(out, "index                {index:?}")?;
        writeln!(
            out,
            "memory_bytes         {bytes} ({:.1} MiB)",
            bytes as f64 / (1024.0 * 1024.0)
        )?;
        writeln!(
            out,
            "bytes per row        {:.2}",
            bytes as f64 / index.len().max(1) as f64
        )?;
        writeln!(out, "generate + build     {seconds:.2} s")?;
        writeln!(out, "resident before      {}", kib_text(before_kib))?;
        writeln!(out, "resident after       {}", kib_text(after_kib))?;
        writeln!(
            out,
            "peak resident        {}{}",
            kib_text(peak_kib),
            if peak_reset {
                " (since this deck started)"
            } else {
                " (since the process started: the peak could not be reset)"
            }
        )?;
        measured.push((rows, bytes));
    }
    // Counted after every measurement, since counting holds every row's key and the allocator
    // may keep that memory, which would show in the next deck's resident set.
    for (rows, bytes) in measured {
        let distinct = Deck::new(DeckSpec::new(rows)).distinct_prefixes();
        writeln!(
            out,
            "== {}: {distinct} distinct prefixes, {:.2} rows and {:.2} index bytes each",
            rows_label(rows),
            rows as f64 / distinct.max(1) as f64,
            bytes as f64 / distinct.max(1) as f64
        )?;
    }
    Ok(())
}

/// Resets `VmHWM` to the current resident set, so each deck's peak is its own. Linux only;
/// false when the kernel refused.
fn reset_peak_resident() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `kB` field of `/proc/self/status`; `None` off Linux or when the field is missing.
fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

fn kib_text(kib: Option<u64>) -> String {
    match kib {
        Some(kib) => format!("{:.1} MiB", kib as f64 / 1024.0),
        None => "unknown".to_owned(),
    }
}
