//! The node's metrics: counters and histograms on atomics (an update is one or two relaxed
//! atomic adds, no lock, no allocation, so the lookup path can count everything), and
//! [`Exposition`], which writes them in Prometheus's text format (version 0.0.4) when
//! `/metrics` is scraped.
//!
//! Labels are fixed when a metric is made (`&'static str` values the code names) or come
//! from the cluster's own configuration at scrape time (gateway names, node ids): never from a
//! call, a number or anything a client sends, so the number of series stays bounded.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A count that only goes up (from 0 when the process starts).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, by: u64) {
        self.0.fetch_add(by, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down, set where it changes (most gauges are read from the state
/// at scrape time instead, and need no `Gauge`).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub const fn new() -> Self {
        Gauge(AtomicU64::new(0))
    }

    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket bounds for request latencies, in seconds: 50 µs to 5 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// Bucket bounds for network round trips (probes), in seconds: 1 ms to 10 s.
pub const ROUND_TRIP_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A distribution of durations in fixed buckets. Each observation lands in the first bucket
/// whose bound it does not exceed (Prometheus's `le`); the sum is kept in nanoseconds.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, increasing.
    bounds: &'static [f64],
    /// The same bounds in nanoseconds, for the comparison an observation makes.
    bounds_nanos: Box<[u64]>,
    /// One more than `bounds`: the last counts what is above every bound (`+Inf`).
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// `bounds` must increase (the constants above do; a test checks them).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            bounds_nanos: bounds
                .iter()
                .map(|bound| seconds_to_nanos(*bound))
                .collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.bounds_nanos.partition_point(|bound| *bound < nanos);
        if let Some(count) = self.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }
}

fn seconds_to_nanos(seconds: f64) -> u64 {
    // Bounds are small positive constants; the cast saturates anyway.
    (seconds * 1e9).round() as u64
}

/// The kind of a metric family, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes metric families in Prometheus's text format. Each family is announced once with
/// [`Exposition::family`], then its samples follow; the caller keeps a family's samples
/// together, as the format requires.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// A sample's labels: names with their values.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Exposition {
    pub fn new() -> Self {
        Exposition::default()
    }

    /// Announces a family: its help text and its kind.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Self {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of a counter or gauge.
    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) -> &mut Self {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        self.text.push(' ');
        write_value(&mut self.text, value);
        self.text.push('\n');
        self
    }

    /// A whole single-sample family.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: f64) -> &mut Self {
        self.family(name, help, kind).sample(name, &[], value)
    }

    /// One histogram's samples (`_bucket` per bound and `+Inf`, `_sum` in seconds, `_count`)
    /// under `name`, with `labels` on each.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: Labels<'_>,
        histogram: &Histogram,
    ) -> &mut Self {
        let mut cumulative = 0u64;
        let bucket_name = format!("{name}_bucket");
        for (index, count) in histogram.buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = match histogram.bounds.get(index) {
                Some(bound) => format_bound(*bound),
                None => "+Inf".to_owned(),
            };
            self.text.push_str(&bucket_name);
            write_labels(&mut self.text, labels, Some(&bound));
            let _ = writeln!(self.text, " {cumulative}");
        }
        let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative as f64)
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(text: &mut String, labels: Labels<'_>, le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    text.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            text.push(',');
        }
        first = false;
        text.push_str(name);
        text.push_str("=\"");
        for character in value.chars() {
            match character {
                '\\' => text.push_str("\\\\"),
                '"' => text.push_str("\\\""),
                '\n' => text.push_str("\\n"),
                other => text.push(other),
            }
        }
        text.push('"');
    }
    text.push('}');
}

fn write_value(text: &mut String, value: f64) {
    if value.is_nan() {
        text.push_str("NaN");
    } else if value.is_infinite() {
        text.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(text, "{value}");
    }
}

fn format_bound(bound: f64) -> String {
    format!("{bound}")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bucket_bounds_increase() {
        for bounds in [LATENCY_BUCKETS, ROUND_TRIP_BUCKETS] {
            assert!(
                bounds.windows(2).all(|pair| pair[0] < pair[1]),
                "{bounds:?}"
            );
        }
    }

    #[test]
    fn an_observation_lands_in_the_first_bucket_it_does_not_exceed() {
        let histogram = Histogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(1_000)); // on the bound: le="0.001"
        histogram.observe(Duration::from_micros(1_001));
        histogram.observe(Duration::from_millis(11));
        histogram.observe(Duration::from_secs(u64::MAX)); // saturates, still +Inf
        let mut exposition = Exposition::new();
        exposition
            .family("x_seconds", "X.", Kind::Histogram)
            .histogram("x_seconds", &[("rpc", "a")], &histogram);
        let text = exposition.finish();
        assert!(
            text.contains("x_seconds_bucket{rpc=\"a\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{rpc=\"a\",le=\"0.01\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{rpc=\"a\",le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_count{rpc=\"a\"} 4\n"), "{text}");
        assert_eq!(histogram.count(), 4);
    }

    #[test]
    fn the_sum_is_in_seconds() {
        let histogram = Histogram::new(LATENCY_BUCKETS);
        histogram.observe(Duration::from_millis(1_500));
        histogram.observe(Duration::from_millis(500));
        let mut exposition = Exposition::new();
        exposition.histogram("y", &[], &histogram);
        assert!(exposition.finish().contains("y_sum 2\n"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut exposition = Exposition::new();
        exposition
            .family("z_total", "Line one\nback\\slash.", Kind::Counter)
            .sample("z_total", &[("gateway", "a\"b\\c\nd")], 3.0);
        let text = exposition.finish();
        assert_eq!(
            text,
            "# HELP z_total Line one\\nback\\\\slash.\n# TYPE z_total counter\n\
             z_total{gateway=\"a\\\"b\\\\c\\nd\"} 3\n"
        );
    }

    #[test]
    fn counters_and_gauges_count() {
        let counter = Counter::new();
        counter.inc();
        counter.add(4);
        assert_eq!(counter.get(), 5);
        let gauge = Gauge::new();
        gauge.set(7);
        gauge.set(2);
        assert_eq!(gauge.get(), 2);
    }
}
