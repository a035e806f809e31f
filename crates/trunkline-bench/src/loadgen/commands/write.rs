//! `loadgen write`: replicated writes, each acknowledged once a quorum has it. Trunkline's
//! `AdminService.SetSetting` against etcd's `KV/Put`, the same keys and values, sent to the
//! leader, to a follower (which hands the write to the leader), or spread over every member.
//!
//! Request `i` writes key `loadgen/<i mod --keys>` with a value of `--value-bytes` bytes (the
//! index, zero-padded), so both systems keep a fixed set of keys overwritten in turn.

use std::time::Duration;

use anyhow::{bail, Context};
use tonic::{
    client::Grpc,
    transport::{Channel, Endpoint},
};
use trunkline_api::v1::{self as proto, admin_service_client::AdminServiceClient};

use crate::loadgen::{
    cli::{self, RunArgs},
    driver::{self, CallError, Outcome, Request, RunShape},
    etcd,
    histogram::Latencies,
};

/// How long to wait for the members to agree on a leader before the run.
pub const LEADER_WAIT: Duration = Duration::from_secs(30);
/// Shortest value: it holds the request's index, up to 20 digits.
const MIN_VALUE_BYTES: u64 = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// AdminService.SetSetting.
    Trunkline,
    /// etcd's KV/Put over gRPC.
    Etcd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Member {
    /// Every connection to the leader.
    Leader,
    /// Every connection to one member that does not lead.
    Follower,
    /// Connections spread over every member.
    All,
}

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    pub target: Target,
    /// Every member's client address, `HOST:PORT,...` (Trunkline's api, etcd's client URL).
    #[arg(long, required = true, value_delimiter = ',', value_parser = cli::address)]
    pub addrs: Vec<String>,
    /// Which member the writes go to.
    #[arg(long, value_enum, default_value_t = Member::Leader)]
    pub to: Member,
    /// Writes in flight on each connection.
    #[arg(long, default_value_t = 1, value_parser = cli::in_flight)]
    pub streams: usize,
    /// Distinct keys written in turn.
    #[arg(long, default_value_t = 1_000, value_parser = keys)]
    pub keys: u64,
    /// Bytes of each value.
    #[arg(long, default_value_t = 64, value_parser = value_bytes)]
    pub value_bytes: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

fn keys(text: &str) -> Result<u64, String> {
    cli::count_between(text, 1, 50_000)
}

fn value_bytes(text: &str) -> Result<usize, String> {
    cli::count_between(text, MIN_VALUE_BYTES, 60 * 1024).map(|bytes| bytes as usize)
}

impl Args {
    pub fn validate(&self) -> Result<(), String> {
        super::check_addresses(&self.addrs)?;
        if self.to == Member::Follower && self.addrs.len() < 2 {
            return Err(
                "--to follower needs two or more --addrs: the members, to find one that does \
                 not lead"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// The key and value of request `index`.
fn key_value(index: u64, keys: u64, value_bytes: usize) -> (String, String) {
    (
        format!("loadgen/{}", index % keys),
        format!("{index:0value_bytes$}"),
    )
}

struct SetSetting {
    client: AdminServiceClient<Channel>,
    keys: u64,
    value_bytes: usize,
}

impl Request for SetSetting {
    async fn send(&mut self, index: u64) -> Result<Outcome, CallError> {
        let (key, value) = key_value(index, self.keys, self.value_bytes);
        self.client
            .set_setting(proto::SetSettingRequest { key, value })
            .await?;
        Ok(Outcome::Found)
    }
}

struct EtcdPut {
    grpc: Grpc<Channel>,
    keys: u64,
    value_bytes: usize,
}

impl Request for EtcdPut {
    async fn send(&mut self, index: u64) -> Result<Outcome, CallError> {
        let (key, value) = key_value(index, self.keys, self.value_bytes);
        etcd::put(&mut self.grpc, key.into_bytes(), value.into_bytes()).await?;
        Ok(Outcome::Found)
    }
}

pub async fn exec(args: Args) -> anyhow::Result<()> {
    let latencies = Latencies::new()?;
    let targets = match args.to {
        Member::All => args.addrs.clone(),
        member => {
            let leader = wait_for_leader(args.target, &args.addrs).await?;
            match member {
                Member::Follower => args
                    .addrs
                    .iter()
                    .find(|addr| **addr != leader)
                    .cloned()
                    .into_iter()
                    .collect(),
                _ => vec![leader],
            }
        }
    };
    let channels = super::grpc_connections(&targets, args.run.connections).await?;
    let shape = RunShape {
        backend: match args.target {
            Target::Trunkline => "trunkline-set-setting",
            Target::Etcd => "etcd-put",
        }
        .to_owned(),
        target: format!(
            "{} ({})",
            targets.join(","),
            match args.to {
                Member::Leader => "leader",
                Member::Follower => "follower",
                Member::All => "all members",
            }
        ),
        connections: args.run.connections,
        streams_per_connection: args.streams,
        window_per_stream: None,
    };
    let label = args.run.label(&shape);
    let workers = channels
        .iter()
        .flat_map(|channel| (0..args.streams).map(|_| channel.clone()));
    let (plan, pids) = (args.run.plan(), &args.run.server_pids);
    let result = match args.target {
        Target::Trunkline => {
            let workers = workers
                .map(|channel| SetSetting {
                    client: AdminServiceClient::new(channel),
                    keys: args.keys,
                    value_bytes: args.value_bytes,
                })
                .collect();
            driver::run(&label, shape, plan, pids, latencies, workers).await?
        }
        Target::Etcd => {
            let workers = workers
                .map(|channel| EtcdPut {
                    grpc: Grpc::new(channel),
                    keys: args.keys,
                    value_bytes: args.value_bytes,
                })
                .collect();
            driver::run(&label, shape, plan, pids, latencies, workers).await?
        }
    };
    super::print(&result).context("can't print the result")
}

/// The address of the member that leads, once one does (asking each in turn). Members that
/// do not listen yet (just started) are asked again until [`LEADER_WAIT`].
async fn wait_for_leader(target: Target, addrs: &[String]) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    let mut channels = Vec::with_capacity(addrs.len());
    for addr in addrs {
        // Lazy: connected on the first call, and again after a refused one.
        channels.push(Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy());
    }
    let mut last_error = String::from("no member says it leads");
    loop {
        for (addr, channel) in addrs.iter().zip(channels.iter()) {
            let leads = match target {
                Target::Trunkline => AdminServiceClient::new(channel.clone())
                    .cluster_status(proto::ClusterStatusRequest {})
                    .await
                    .map(|status| {
                        let status = status.into_inner();
                        status.node_id != 0 && status.leader_id == status.node_id
                    }),
                Target::Etcd => etcd::status(&mut Grpc::new(channel.clone()))
                    .await
                    .map(|status| status.is_leader()),
            };
            match leads {
                Ok(true) => return Ok(addr.clone()),
                Ok(false) => {}
                Err(status) => last_error = format!("{addr}: {status}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "no leader among {} within {LEADER_WAIT:?} ({last_error})",
                addrs.join(",")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cycle_and_values_have_the_size_asked() {
        assert_eq!(
            key_value(1_234, 1_000, 24),
            (
                "loadgen/234".to_owned(),
                "000000000000000000001234".to_owned()
            )
        );
        assert_eq!(key_value(u64::MAX, 1_000, 20).1.len(), 20);
    }
}
