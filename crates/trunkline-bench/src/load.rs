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

/// The load binaries' command line: `--trunkline PATH [--calls N] [--concurrency N]
/// [--nodes N]`.
pub struct LoadArgs {
    pub trunkline: std::path::PathBuf,
    pub calls: usize,
    pub concurrency: usize,
    /// Nodes in the cluster under load: 1 is a `trunkline dev` node alone.
    pub nodes: usize,
}

/// Reads the arguments after the program name; `calls` is the default of `--calls`.
pub fn parse_args(
    mut arguments: impl Iterator<Item = String>,
    calls: usize,
) -> Result<LoadArgs, String> {
    let mut trunkline = None;
    let mut args = LoadArgs {
        trunkline: std::path::PathBuf::new(),
        calls,
        concurrency: 64,
        nodes: 1,
    };
    while let Some(argument) = arguments.next() {
        let mut number = |flag: &str| -> Result<usize, String> {
            let value = arguments.next().ok_or(format!("{flag} needs a number"))?;
            value
                .parse()
                .ok()
                .filter(|number| *number > 0)
                .ok_or(format!("{flag}: {value:?} is not a positive number"))
        };
        match argument.as_str() {
            "--trunkline" => {
                trunkline = Some(std::path::PathBuf::from(
                    arguments.next().ok_or("--trunkline needs a path")?,
                ))
            }
            "--calls" => args.calls = number("--calls")?,
            "--concurrency" => args.concurrency = number("--concurrency")?,
            "--nodes" => args.nodes = number("--nodes")?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    args.trunkline = trunkline.ok_or("--trunkline PATH is required")?;
    if !args.trunkline.is_file() {
        return Err(format!("{}: no such file", args.trunkline.display()));
    }
    Ok(args)
}

/// A channel to each node, in order.
pub async fn connect(
    nodes: &[crate::dev_node::Node],
) -> anyhow::Result<Vec<tonic::transport::Channel>> {
    let mut channels = Vec::new();
    for node in nodes {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.api_addr))?
            .connect()
            .await
            .map_err(|error| anyhow::anyhow!("can't connect to {}: {error}", node.api_addr))?;
        channels.push(channel);
    }
    Ok(channels)
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
