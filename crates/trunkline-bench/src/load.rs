//! What the load binaries (`limits_load`, `cdr_load`) print for a set of timed requests:
//! requests per second, p50, p99 and the worst, and how many were refused.

use std::time::Duration;

/// Percentiles and rate of a set of timed requests.
pub struct Report {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub worst: Duration,
    pub refused: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{:>10.0} {:>9} {:>9} {:>9} {:>8}",
            self.per_second,
            format!("{:.2?}", self.p50),
            format!("{:.2?}", self.p99),
            format!("{:.2?}", self.worst),
            self.refused
        )
    }
}

/// The header line matching [`Report`]'s columns, after a label of `label_width`.
pub fn header(label_width: usize) -> String {
    format!(
        "{:<label_width$} {:>10} {:>9} {:>9} {:>9} {:>8}",
        "", "per sec", "p50", "p99", "worst", "refused"
    )
}

/// The report of `times` (one per request) taken over `elapsed`.
pub fn report(mut times: Vec<Duration>, elapsed: Duration, refused: usize) -> Report {
    times.sort();
    let at = |fraction: f64| {
        let index = ((times.len() as f64 - 1.0) * fraction).round() as usize;
        times.get(index).copied().unwrap_or_default()
    };
    Report {
        per_second: times.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        worst: times.last().copied().unwrap_or_default(),
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_times() {
        let times: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let report = report(times, Duration::from_secs(2), 3);
        assert_eq!(report.per_second, 50.0);
        assert_eq!(report.p50, Duration::from_millis(51));
        assert_eq!(report.p99, Duration::from_millis(99));
        assert_eq!(report.worst, Duration::from_millis(100));
        assert_eq!(report.refused, 3);
    }
}
