//! Latencies of one run: an HDR histogram of microseconds, one per worker, merged at the end,
//! and the percentiles a report shows.
//!
//! Three significant digits keep every recorded value within 0.1% of the truth from 1 µs to a
//! minute, in a fixed 64 KiB per histogram whatever the number of requests; a worker never
//! allocates while it records.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The longest latency told apart from a longer one; slower answers count as this.
pub const MAX_LATENCY: Duration = Duration::from_secs(60);
/// Significant decimal digits kept of every value.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Recorded latencies, in microseconds.
#[derive(Clone, Debug)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Latencies {
    /// An empty set, recording up to [`MAX_LATENCY`].
    pub fn new() -> Result<Latencies, hdrhistogram::CreationError> {
        let highest_micros = MAX_LATENCY.as_micros() as u64;
        Ok(Latencies {
            histogram: Histogram::new_with_bounds(1, highest_micros, SIGNIFICANT_DIGITS)?,
        })
    }

    /// Records one latency; anything over [`MAX_LATENCY`] counts as that.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros);
    }

    /// Adds every latency `other` recorded.
    pub fn merge(&mut self, other: &Latencies) -> Result<(), hdrhistogram::AdditionError> {
        self.histogram.add(&other.histogram)
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The percentiles a report shows; all zero when nothing was recorded.
    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        let millis = |micros: u64| micros as f64 / 1_000.0;
        let at = |quantile: f64| millis(self.histogram.value_at_quantile(quantile));
        LatencySummary {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: millis(self.histogram.max()),
            mean_ms: self.histogram.mean() / 1_000.0,
        }
    }
}

/// Percentiles of a run's latencies, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Records `micros` and checks the summary's percentiles against `expected_ms` (p50, p90,
    /// p99, p999, max), each within the histogram's 0.1%.
    fn check(micros: impl IntoIterator<Item = u64>, expected_ms: [f64; 5]) {
        let mut latencies = Latencies::new().unwrap();
        for value in micros {
            latencies.record(Duration::from_micros(value));
        }
        let summary = latencies.summary();
        let got = [
            summary.p50_ms,
            summary.p90_ms,
            summary.p99_ms,
            summary.p999_ms,
            summary.max_ms,
        ];
        for (got, expected) in got.iter().zip(expected_ms) {
            assert!(
                (got - expected).abs() <= expected * 0.001 + 0.001,
                "got {got:?}, expected {expected_ms:?} (all: {summary:?})"
            );
        }
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        // 1 µs to 10 ms, one each: the n-th percentile is n% of 10 ms.
        check(1..=10_000, [5.0, 9.0, 9.9, 9.99, 10.0]);
    }

    #[test]
    fn a_slow_tail_shows_only_in_the_high_percentiles() {
        // 99.8% at 200 µs, 0.2% at 50 ms.
        let fast = std::iter::repeat_n(200, 99_800);
        let slow = std::iter::repeat_n(50_000, 200);
        check(fast.chain(slow), [0.2, 0.2, 0.2, 50.0, 50.0]);
    }

    #[test]
    fn merged_histograms_count_both() {
        let mut first = Latencies::new().unwrap();
        let mut second = Latencies::new().unwrap();
        for _ in 0..90 {
            first.record(Duration::from_micros(100));
        }
        for _ in 0..10 {
            second.record(Duration::from_millis(7));
        }
        first.merge(&second).unwrap();
        assert_eq!(first.count(), 100);
        let summary = first.summary();
        assert_eq!(summary.p50_ms, 0.1);
        assert!((summary.p99_ms - 7.0).abs() < 0.01, "{summary:?}");
    }

    #[test]
    fn latencies_past_the_maximum_count_as_the_maximum() {
        let mut latencies = Latencies::new().unwrap();
        latencies.record(Duration::from_secs(3_600));
        let max_ms = latencies.summary().max_ms;
        assert!((max_ms - 60_000.0).abs() < 60.0, "{max_ms}");
    }

    #[test]
    fn nothing_recorded_is_all_zero() {
        let latencies = Latencies::new().unwrap();
        assert_eq!(latencies.summary(), LatencySummary::default());
    }
}
