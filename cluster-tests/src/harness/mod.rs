//! The container harness: real `trunkline` binaries in Docker containers, faults injected
//! from outside, and workloads that record what they saw.
//!
//! - [`image`]: a `FROM scratch` image of the `trunkline` binary the tests were built with,
//!   made without any image registry;
//! - [`docker`]: the `docker` command line, the run's network and containers, and the
//!   [`docker::RunGuard`] that removes them when a test ends, fails or is interrupted (plus a
//!   sweep of what an earlier, killed run left behind);
//! - [`proxy`]: the TCP proxies every Raft connection between nodes goes through, so the
//!   harness can delay links (latency and jitter) on a kernel without `netem`;
//! - [`cluster`]: a 3- or 5-node cluster on its own `--internal` network: start, form,
//!   membership changes, status, logs;
//! - [`nemesis`]: the faults (kill -9, pause, partitions, packet loss, latency, rolling
//!   restarts, membership changes), each recorded in the history's timeline;
//! - [`workload`]: settings register operations and route lookups recorded into a
//!   [`Recorder`](crate::history::Recorder), and the leader-kill failover measurement;
//! - [`run`]: where a run's report and logs go, and whether the suites run at all;
//! - [`suite`]: one test from start to verdict (cluster, workload, heal, checkers, report).
//!
//! Everything the tests contact is on the network a run creates: the nodes' addresses and
//! the bridge's gateway address (the host side, where the proxies listen).

pub mod cluster;
pub mod docker;
pub mod image;
pub mod nemesis;
pub mod proxy;
pub mod run;
pub mod suite;
pub mod workload;

use std::time::Duration;

use trunkline_client::ClientError;

/// Everything that can go wrong while setting up or driving the harness. Faults the
/// workloads see are not errors: they are recorded in the history.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Docker can't be used at all; the message says how to fix it or skip the suite.
    #[error("{0}")]
    DockerUnavailable(String),
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("`{command}` did not finish within {timeout:?}")]
    CommandTimeout { command: String, timeout: Duration },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} did not happen within {timeout:?}{}", detail_suffix(.detail))]
    Timeout {
        what: String,
        timeout: Duration,
        detail: String,
    },
    #[error("{what}: {source}")]
    Client { what: String, source: ClientError },
    #[error("{0}")]
    Setup(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> HarnessError {
        HarnessError::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn client(what: impl Into<String>, source: ClientError) -> HarnessError {
        HarnessError::Client {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn timeout(
        what: impl Into<String>,
        timeout: Duration,
        detail: impl Into<String>,
    ) -> HarnessError {
        HarnessError::Timeout {
            what: what.into(),
            timeout,
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
