//! `loadgen`'s command line: the subcommands, the flags every measured run shares, and the
//! parsers of durations, counts and lists, so a mistake names its flag before anything
//! connects anywhere.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use super::{
    commands,
    driver::{RunPlan, RunShape},
    schedule::Pace,
};

/// Most connections (or workers) one run opens.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Most requests in flight on one connection, or on one stream.
pub const MAX_IN_FLIGHT: usize = 1_000;
/// The longest run or warm-up.
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);
/// The highest open-loop rate, requests a second.
pub const MAX_RATE: u64 = 10_000_000;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator: Trunkline's routing and writes against Redis, PostgreSQL and etcd \
             doing the same work. One JSON object per run on stdout, a line for people on \
             stderr.",
    after_help = "Exit codes: 0 measured, 1 a run or its setup failed, 2 bad arguments."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// RouteOutbound lookups against Trunkline nodes: unary gRPC, or the RouteStream API.
    Route(commands::route::Args),
    /// The same lookups as one MGET of every prefix of the number from Redis.
    Redis(commands::redis::Args),
    /// The same lookups as one prepared DISTINCT ON query from PostgreSQL.
    Pg(commands::pg::Args),
    /// Replicated writes: Trunkline SetSetting or etcd Put, to the leader or a follower.
    Write(commands::write::Args),
    /// Copies a node's rate decks into Redis and PostgreSQL, and draws the numbers to look up.
    LoadDecks(commands::load_decks::Args),
    /// Starts a Trunkline cluster of real processes on loopback, prints where, and waits.
    Cluster(commands::cluster::Args),
    /// What a rate deck row costs in resident memory: a node restarted with 1M and 5M rows,
    /// and Redis holding the same rows as keys.
    DeckMemory(commands::deck_memory::Args),
    /// Turns the runs' JSON lines into docs/performance.md's report and its JSON.
    Report(commands::report::Args),
}

impl Cli {
    /// Checks what clap can't: flags that only make sense together.
    pub fn validate(&self) -> Result<(), String> {
        match &self.command {
            Command::Route(args) => args.numbers.validate().and_then(|()| args.validate()),
            Command::Redis(args) => args.numbers.validate(),
            Command::Pg(args) => args.numbers.validate(),
            Command::Write(args) => args.validate(),
            Command::Cluster(_)
            | Command::DeckMemory(_)
            | Command::LoadDecks(_)
            | Command::Report(_) => Ok(()),
        }
    }
}

/// The flags of every measured run.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Connections opened (gRPC: one HTTP/2 connection each).
    #[arg(long, default_value_t = 50, value_parser = connections)]
    pub connections: usize,
    /// The measured window: `10s`, `500ms`, `2m`.
    #[arg(long, default_value = "10s", value_parser = run_duration)]
    pub duration: Duration,
    /// Requests sent, not recorded, before the window.
    #[arg(long, default_value = "2s", value_parser = warmup_duration)]
    pub warmup: Duration,
    /// Open loop: this many requests a second in all, latency measured from when each was
    /// due. Without it, a closed loop: each worker sends when its previous request is
    /// answered.
    #[arg(long, value_parser = rate)]
    pub rate: Option<u64>,
    /// The run's name in the JSON and the report (default: the backend's).
    #[arg(long)]
    pub label: Option<String>,
    /// Server processes to measure CPU and memory of, with their descendants: `PID,PID`.
    #[arg(long, value_delimiter = ',', value_parser = pid)]
    pub server_pids: Vec<u32>,
}

impl RunArgs {
    pub fn plan(&self) -> RunPlan {
        RunPlan {
            warmup: self.warmup,
            duration: self.duration,
            pace: match self.rate {
                Some(per_second) => Pace::Open { per_second },
                None => Pace::Closed,
            },
        }
    }

    pub fn label(&self, shape: &RunShape) -> String {
        self.label.clone().unwrap_or_else(|| shape.backend.clone())
    }
}

/// The flags of the lookups: which numbers.
#[derive(Clone, Debug, clap::Args)]
pub struct NumbersArgs {
    /// The numbers to look up, one a line (from `loadgen load-decks --numbers-out`); request
    /// `i` looks up number `i` modulo their count, so every backend sees the same sequence.
    #[arg(long)]
    pub numbers: PathBuf,
}

impl NumbersArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.numbers.is_file() {
            Ok(())
        } else {
            Err(format!(
                "--numbers {}: no such file",
                self.numbers.display()
            ))
        }
    }

    pub fn read(&self) -> anyhow::Result<Vec<String>> {
        let text = std::fs::read_to_string(&self.numbers)
            .map_err(|error| anyhow::anyhow!("--numbers {}: {error}", self.numbers.display()))?;
        super::decks::parse_numbers(&text)
            .map_err(|error| anyhow::anyhow!("--numbers {}: {error}", self.numbers.display()))
    }
}

/// `10s`, `500ms`, `2m`, `1.5s`: a duration with its unit.
pub fn duration(text: &str) -> Result<Duration, String> {
    let (number, unit_seconds) = if let Some(number) = text.strip_suffix("ms") {
        (number, 0.001)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60.0)
    } else {
        return Err(format!("{text:?} needs a unit: ms, s or m (e.g. 10s)"));
    };
    let seconds = number
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite() && *value >= 0.0)
        .map(|value| value * unit_seconds)
        .ok_or_else(|| format!("{text:?} is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let duration = Duration::from_secs_f64(seconds.min(MAX_DURATION.as_secs_f64() + 1.0));
    if duration > MAX_DURATION {
        return Err(format!("{text:?} is longer than {MAX_DURATION:?}"));
    }
    Ok(duration)
}

fn run_duration(text: &str) -> Result<Duration, String> {
    duration(text).and_then(|duration| {
        if duration.is_zero() {
            Err("a run must last longer than 0".to_owned())
        } else {
            Ok(duration)
        }
    })
}

fn warmup_duration(text: &str) -> Result<Duration, String> {
    duration(text)
}

/// A path to a file that exists (a binary to run).
pub fn existing_file(text: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(text);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{text}: no such file"))
    }
}

/// A whole number from `low` to `high`.
pub fn count_between(text: &str, low: u64, high: u64) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|value| (low..=high).contains(value))
        .ok_or_else(|| format!("{text:?} is not a whole number from {low} to {high}"))
}

pub fn connections(text: &str) -> Result<usize, String> {
    count_between(text, 1, MAX_CONNECTIONS as u64).map(|value| value as usize)
}

pub fn in_flight(text: &str) -> Result<usize, String> {
    count_between(text, 1, MAX_IN_FLIGHT as u64).map(|value| value as usize)
}

fn rate(text: &str) -> Result<u64, String> {
    count_between(text, 1, MAX_RATE)
}

fn pid(text: &str) -> Result<u32, String> {
    count_between(text, 1, u64::from(u32::MAX)).map(|value| value as u32)
}

/// A `host:port` address.
pub fn address(text: &str) -> Result<String, String> {
    if trunkline_api::is_host_port(text) {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not host:port"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_to_run_must_be_a_file_that_exists() {
        let here = std::env::current_exe().unwrap();
        assert_eq!(existing_file(here.to_str().unwrap()), Ok(here));
        let error = existing_file("/nonexistent/trunkline").unwrap_err();
        assert!(error.contains("no such file"), "{error}");
        assert!(existing_file("/").is_err(), "a folder is not a binary");
    }

    /// Parses `arguments` (after `loadgen`; `NUMBERS` stands for a numbers file that exists);
    /// the error message when it fails.
    fn parse(arguments: &str) -> Result<Cli, String> {
        let numbers = std::env::current_exe().unwrap();
        let arguments = arguments.replace("NUMBERS", &numbers.display().to_string());
        let cli = Cli::try_parse_from(std::iter::once("loadgen").chain(arguments.split(' ')))
            .map_err(|error| error.to_string())?;
        cli.validate()?;
        Ok(cli)
    }

    /// `arguments` fail, with a message naming `flag` and saying `why`.
    fn check_refused(arguments: &str, flag: &str, why: &str) {
        let message = parse(arguments).err().unwrap_or_else(|| {
            panic!("{arguments:?} was accepted");
        });
        assert!(
            message.contains(flag) && message.contains(why),
            "{arguments:?}: {message}"
        );
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert!(duration("10").unwrap_err().contains("needs a unit"));
        assert!(duration("-1s").is_err());
        assert!(duration("xs").is_err());
        assert!(duration("2h").is_err());
        assert!(duration("61m").unwrap_err().contains("longer than"));
    }

    #[test]
    fn a_lookup_run_with_defaults() {
        let cli = parse("route --addrs 127.0.0.1:7400 --numbers NUMBERS").unwrap();
        let Command::Route(args) = cli.command else {
            panic!("not a route command");
        };
        assert_eq!(args.run.connections, 50);
        assert_eq!(args.run.plan().pace, Pace::Closed);
        assert_eq!(args.run.duration, Duration::from_secs(10));
        assert_eq!(args.streams, 1);
    }

    #[test]
    fn an_open_loop_run() {
        let cli = parse("redis --addr 127.0.0.1:6379 --numbers NUMBERS --rate 5000").unwrap();
        let Command::Redis(args) = cli.command else {
            panic!("not a redis command");
        };
        assert_eq!(args.run.plan().pace, Pace::Open { per_second: 5_000 });
    }

    #[test]
    fn bad_numbers_name_their_flag() {
        check_refused(
            "route --addrs 127.0.0.1:7400 --numbers NUMBERS --connections 0",
            "--connections",
            "from 1 to",
        );
        check_refused(
            "redis --addr 127.0.0.1:6379 --numbers NUMBERS --rate 0",
            "--rate",
            "from 1 to",
        );
        check_refused(
            "redis --addr 127.0.0.1:6379 --numbers NUMBERS --duration 0s",
            "--duration",
            "longer than 0",
        );
        check_refused(
            "redis --addr 127.0.0.1:6379 --numbers NUMBERS --warmup 2",
            "--warmup",
            "needs a unit",
        );
        check_refused(
            "redis --addr 127.0.0.1:6379 --numbers NUMBERS --server-pids 12,x",
            "--server-pids",
            "not a whole number",
        );
    }

    #[test]
    fn addresses_must_be_host_and_port() {
        check_refused(
            "redis --addr localhost --numbers NUMBERS",
            "--addr",
            "host:port",
        );
        check_refused(
            "route --addrs 127.0.0.1:7400,nope --numbers NUMBERS",
            "--addrs",
            "host:port",
        );
    }

    #[test]
    fn flags_of_another_target_are_refused() {
        check_refused(
            "route --addrs 127.0.0.1:7400 --numbers NUMBERS --window 8",
            "--window",
            "--target stream",
        );
        check_refused(
            "write --target etcd --addrs 127.0.0.1:2379 --to follower",
            "--to follower",
            "two or more",
        );
    }

    #[test]
    fn a_numbers_file_that_is_not_there_is_refused_before_connecting() {
        check_refused(
            "redis --addr 127.0.0.1:6379 --numbers /nonexistent/numbers.txt",
            "--numbers /nonexistent/numbers.txt",
            "no such file",
        );
    }

    #[test]
    fn required_flags_are_named() {
        check_refused("route --numbers NUMBERS", "--addrs", "required");
        check_refused("pg --addr 127.0.0.1:5432", "--numbers", "required");
    }
}
