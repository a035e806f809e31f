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

/// What one call of a load gives back: nothing, a refusal, or something to keep (a routed
/// call's id and token).
pub enum Answer<O> {
    Done,
    Refused,
    Keep(O),
}

/// Runs `call` on each item from `concurrency` callers (caller `i` through node `i % n`),
/// timing each; the report and what the calls kept.
pub async fn drive<T, O, F, Fut>(
    channels: &[tonic::transport::Channel],
    concurrency: usize,
    items: Vec<T>,
    call: F,
) -> anyhow::Result<(Report, Vec<O>)>
where
    T: Clone + Send + Sync + 'static,
    O: Send + 'static,
    F: Fn(RouteClient, T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Answer<O>>> + Send,
{
    let items = std::sync::Arc::new(items);
    let call = std::sync::Arc::new(call);
    let started = std::time::Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..concurrency {
        let client = RouteClient::new(channels[caller % channels.len()].clone());
        let (items, call) = (items.clone(), call.clone());
        callers.spawn(async move {
            let (mut times, mut kept, mut refused) = (Vec::new(), Vec::new(), 0);
            for item in items.iter().skip(caller).step_by(concurrency) {
                let sent = std::time::Instant::now();
                let answer = call(client.clone(), item.clone()).await?;
                times.push(sent.elapsed());
                match answer {
                    Answer::Done => {}
                    Answer::Refused => refused += 1,
                    Answer::Keep(value) => kept.push(value),
                }
            }
            anyhow::Ok((times, kept, refused))
        });
    }
    let (mut times, mut kept, mut refused) = (Vec::new(), Vec::new(), 0);
    while let Some(result) = callers.join_next().await {
        let (caller_times, caller_kept, caller_refused) = result??;
        times.extend(caller_times);
        kept.extend(caller_kept);
        refused += caller_refused;
    }
    Ok((report(times, started.elapsed(), refused), kept))
}

/// The route service's client, as [`drive`] hands it to each call.
pub type RouteClient =
    trunkline_api::v1::route_service_client::RouteServiceClient<tonic::transport::Channel>;

/// A ReportCallEnd of each `(call id, token)`: answered, a minute of talk. Counted as refused:
/// the ends whose `released` is not `released` (a limited tenant's calls are released).
pub async fn end_calls(
    channels: &[tonic::transport::Channel],
    concurrency: usize,
    calls: Vec<(String, String)>,
    released: bool,
) -> anyhow::Result<Report> {
    use trunkline_api::v1 as proto;
    let ended = drive(
        channels,
        concurrency,
        calls,
        move |mut client, (call_id, route_token)| async move {
            let answer = client
                .report_call_end(proto::ReportCallEndRequest {
                    call_id,
                    route_token,
                    answered: true,
                    answer_time_ms: 1_796_000_000_000,
                    end_time_ms: 1_796_000_060_000,
                    legs: Vec::new(),
                })
                .await?
                .into_inner();
            Ok(if answer.released == released {
                Answer::<()>::Done
            } else {
                Answer::Refused
            })
        },
    )
    .await?;
    Ok(ended.0)
}

/// A load binary's `main`: reads the arguments (exit 2 on a mistake), runs `run` on a
/// two-thread runtime, and exits 1 with the error if it fails.
pub fn main_with<F, Fut>(name: &str, default_calls: usize, run: F) -> std::process::ExitCode
where
    F: FnOnce(LoadArgs) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let args = match parse_args(std::env::args().skip(1), default_calls) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{name}: {message}");
            eprintln!("usage: {name} --trunkline PATH [--calls N] [--concurrency N] [--nodes N]");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: can't start the async runtime: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error:#}");
            std::process::ExitCode::from(1)
        }
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
