//! The nemesis: faults injected into a running cluster from outside, each recorded in the
//! history's timeline (start, heal, which nodes clients could not reach meanwhile).
//!
//! - process faults: kill -9 and restart on the same data; SIGTERM and restart; `docker
//!   pause` / `unpause` (the processes freeze, connections stay open, nothing answers);
//! - network faults, made with iptables inside each node's network namespace from the host
//!   (`nsenter -t PID -n iptables ...`), so the image needs no tools: partitions into
//!   components (one node isolated, majority/minority, a bridge node in two components) and
//!   random packet loss on peer traffic with the `statistic` match. Rules live in chains of
//!   their own (`CHAOS-*`), re-applied when a restarted node comes back with a fresh
//!   namespace;
//! - slow links: latency and jitter added by the harness's TCP proxies (see
//!   [`proxy`](super::proxy));
//! - operations: a rolling restart of every node, and membership changes (add, remove,
//!   replace a node) while the workload runs.
//!
//! Only peer traffic is partitioned or dropped; the harness's clients always reach a node
//! that is up, which is what lets the availability checker demand that lookups keep
//! succeeding there.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    cluster::{
        Cluster, NodeState, CONVERGE_TIMEOUT, LEADER_TIMEOUT, NODE_READY_TIMEOUT, PEER_PORT,
        POLL_INTERVAL,
    },
    docker,
    proxy::LinkDelay,
    HarnessError, Result,
};
use crate::history::{FaultHandle, NodeId, Recorder};

/// Chains the nemesis owns in every node's namespace: partitions, then packet loss.
const PARTITION_INPUT_CHAIN: &str = "CHAOS-PART-IN";
const PARTITION_OUTPUT_CHAIN: &str = "CHAOS-PART-OUT";
const LOSS_INPUT_CHAIN: &str = "CHAOS-LOSS-IN";
const LOSS_OUTPUT_CHAIN: &str = "CHAOS-LOSS-OUT";
/// Largest packet-loss probability the nemesis accepts: above this Raft can't make progress
/// and the run proves nothing.
pub const MAX_LOSS_PROBABILITY: f64 = 0.5;
/// How long a restarted node has to catch up with the leader.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two nodes of a rolling restart, as an operator would leave.
pub const ROLLING_RESTART_SETTLE: Duration = Duration::from_secs(1);

/// A network partition: the components that can still talk within themselves. A node in
/// two components (a bridge) talks to both; two nodes that share no component can't talk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub components: Vec<BTreeSet<NodeId>>,
}

impl Partition {
    /// `node` alone, everyone else together.
    pub fn isolate(node: NodeId, all: &[NodeId]) -> Partition {
        Partition::halves(&[node], all)
    }

    /// `side` against everyone else in `all`.
    pub fn halves(side: &[NodeId], all: &[NodeId]) -> Partition {
        let side: BTreeSet<NodeId> = side.iter().copied().collect();
        let rest: BTreeSet<NodeId> = all.iter().copied().filter(|n| !side.contains(n)).collect();
        Partition {
            components: vec![side, rest],
        }
    }

    /// `left` and `right` can't talk to each other; `bridge` talks to both.
    pub fn bridge(left: &[NodeId], bridge: NodeId, right: &[NodeId]) -> Partition {
        let mut left: BTreeSet<NodeId> = left.iter().copied().collect();
        let mut right: BTreeSet<NodeId> = right.iter().copied().collect();
        left.insert(bridge);
        right.insert(bridge);
        Partition {
            components: vec![left, right],
        }
    }

    /// True when `a` and `b` share a component. Nodes in no component (added later) talk
    /// to everyone.
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        let placed = |node: NodeId| self.components.iter().any(|c| c.contains(&node));
        if !placed(a) || !placed(b) {
            return true;
        }
        self.components
            .iter()
            .any(|component| component.contains(&a) && component.contains(&b))
    }

    /// `{1} | {2,3}`, for the timeline.
    pub fn describe(&self) -> String {
        self.components
            .iter()
            .map(|component| {
                let nodes: Vec<String> = component.iter().map(|n| format!("n{n}")).collect();
                format!("{{{}}}", nodes.join(","))
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// One line of the nemesis timeline, for the report.
#[derive(Clone, Debug)]
pub struct TimelineEntry {
    /// Since the recorder's origin.
    pub at: Duration,
    pub event: String,
}

/// Injects and heals faults in one cluster, recording each.
pub struct Nemesis {
    cluster: Arc<Cluster>,
    recorder: Recorder,
    partition: Option<(Partition, FaultHandle)>,
    /// Drop probability by node.
    loss: Option<(BTreeMap<NodeId, f64>, FaultHandle)>,
    latency: Option<FaultHandle>,
    /// Nodes killed, stopped or paused by the nemesis, with their fault.
    down: BTreeMap<NodeId, FaultHandle>,
    timeline: Vec<TimelineEntry>,
}

impl std::fmt::Debug for Nemesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nemesis")
            .field("partition", &self.partition.as_ref().map(|(p, _)| p))
            .field("loss", &self.loss.as_ref().map(|(l, _)| l))
            .field("down", &self.down.keys())
            .finish()
    }
}

impl Nemesis {
    pub fn new(cluster: Arc<Cluster>, recorder: Recorder) -> Nemesis {
        Nemesis {
            cluster,
            recorder,
            partition: None,
            loss: None,
            latency: None,
            down: BTreeMap::new(),
            timeline: Vec::new(),
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Every event so far, oldest first.
    pub fn timeline(&self) -> &[TimelineEntry] {
        &self.timeline
    }

    /// Notes an event in the timeline (and on stderr, so a live run can be followed).
    pub fn note(&mut self, event: impl Into<String>) {
        let at = self.recorder.origin().elapsed();
        let event = event.into();
        eprintln!("chaos [{:>8.3}s] {event}", at.as_secs_f64());
        self.timeline.push(TimelineEntry { at, event });
    }

    fn start_fault(&mut self, name: String, unreachable: BTreeSet<NodeId>) -> FaultHandle {
        self.note(format!("start: {name}"));
        self.recorder.fault_started(name, unreachable)
    }

    fn heal_fault(&mut self, handle: FaultHandle, name: &str) {
        self.recorder.fault_healed(handle);
        self.note(format!("healed: {name}"));
    }

    /// kill -9 of `node`; it stays down until [`Nemesis::restart`].
    pub async fn kill(&mut self, node: NodeId) -> Result<()> {
        let fault = self.start_fault(format!("kill -9 n{node}"), BTreeSet::from([node]));
        self.cluster.kill(node).await?;
        self.down.insert(node, fault);
        Ok(())
    }

    /// SIGTERM to `node`; it stays down until [`Nemesis::restart`].
    pub async fn stop(&mut self, node: NodeId) -> Result<()> {
        let fault = self.start_fault(format!("stop (SIGTERM) n{node}"), BTreeSet::from([node]));
        self.cluster.stop(node).await?;
        self.down.insert(node, fault);
        Ok(())
    }

    /// Starts a killed or stopped node on its data, re-applies the network faults in force
    /// to its fresh namespace, and waits until it answers.
    pub async fn restart(&mut self, node: NodeId) -> Result<()> {
        self.cluster.start_again(node).await?;
        // Before it answers, so it never talks to peers a partition in force cuts it from.
        self.apply_rules(node).await?;
        self.cluster
            .wait_answering(node, NODE_READY_TIMEOUT)
            .await?;
        if let Some(fault) = self.down.remove(&node) {
            self.heal_fault(fault, &format!("n{node} restarted"));
        }
        Ok(())
    }

    pub async fn pause(&mut self, node: NodeId) -> Result<()> {
        let fault = self.start_fault(format!("pause n{node}"), BTreeSet::from([node]));
        self.cluster.pause(node).await?;
        self.down.insert(node, fault);
        Ok(())
    }

    pub async fn unpause(&mut self, node: NodeId) -> Result<()> {
        self.cluster.unpause(node).await?;
        if let Some(fault) = self.down.remove(&node) {
            self.heal_fault(fault, &format!("n{node} unpaused"));
        }
        Ok(())
    }

    /// Partitions the nodes (replacing any partition in force).
    pub async fn partition(&mut self, partition: Partition) -> Result<()> {
        if let Some((_, fault)) = self.partition.take() {
            self.heal_fault(fault, "previous partition");
        }
        let fault = self.start_fault(
            format!("partition {}", partition.describe()),
            BTreeSet::new(),
        );
        self.partition = Some((partition, fault));
        self.apply_rules_everywhere().await
    }

    pub async fn heal_partition(&mut self) -> Result<()> {
        if let Some((partition, fault)) = self.partition.take() {
            self.apply_rules_everywhere().await?;
            self.heal_fault(fault, &format!("partition {}", partition.describe()));
        }
        Ok(())
    }

    /// Drops each peer packet into and out of `nodes` with `probability`.
    pub async fn packet_loss(&mut self, nodes: &[NodeId], probability: f64) -> Result<()> {
        if !(0.0..=MAX_LOSS_PROBABILITY).contains(&probability) {
            return Err(HarnessError::Setup(format!(
                "packet loss {probability} is outside 0..={MAX_LOSS_PROBABILITY}"
            )));
        }
        self.heal_loss().await?;
        let names: Vec<String> = nodes.iter().map(|n| format!("n{n}")).collect();
        let fault = self.start_fault(
            format!(
                "packet loss {:.0}% on {}",
                probability * 100.0,
                names.join(",")
            ),
            BTreeSet::new(),
        );
        let loss = nodes.iter().map(|node| (*node, probability)).collect();
        self.loss = Some((loss, fault));
        self.apply_rules_everywhere().await
    }

    pub async fn heal_loss(&mut self) -> Result<()> {
        if let Some((_, fault)) = self.loss.take() {
            self.apply_rules_everywhere().await?;
            self.heal_fault(fault, "packet loss");
        }
        Ok(())
    }

    /// Delays every link between members by `delay` plus or minus up to `jitter`, each
    /// way.
    pub fn latency(&mut self, delay: Duration, jitter: Duration) -> Result<()> {
        self.heal_latency();
        let fault = self.start_fault(
            format!(
                "latency {}ms ± {}ms on every link",
                delay.as_millis(),
                jitter.as_millis()
            ),
            BTreeSet::new(),
        );
        let nodes: Vec<NodeId> = self.cluster.nodes().iter().map(|n| n.id).collect();
        for from in &nodes {
            for to in &nodes {
                if from != to {
                    self.cluster
                        .proxies()
                        .set_delay(*from, *to, LinkDelay { delay, jitter })?;
                }
            }
        }
        self.latency = Some(fault);
        Ok(())
    }

    pub fn heal_latency(&mut self) {
        if let Some(fault) = self.latency.take() {
            self.cluster.proxies().clear_delays();
            self.heal_fault(fault, "latency");
        }
    }

    /// Heals everything: unpauses and restarts every node the nemesis took down, removes
    /// partitions, loss and delays.
    pub async fn heal_all(&mut self) -> Result<()> {
        self.heal_latency();
        self.heal_partition().await?;
        self.heal_loss().await?;
        let down: Vec<NodeId> = self.down.keys().copied().collect();
        for node in down {
            match self.cluster.node(node)?.state {
                NodeState::Paused => self.unpause(node).await?,
                NodeState::Killed | NodeState::Stopped => self.restart(node).await?,
                NodeState::Running => {
                    if let Some(fault) = self.down.remove(&node) {
                        self.heal_fault(fault, &format!("n{node}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Restarts every member in turn (SIGTERM, start, caught up) while the cluster keeps
    /// serving.
    pub async fn rolling_restart(&mut self) -> Result<()> {
        self.note("rolling restart begins");
        for node in self.cluster.members() {
            self.stop(node).await?;
            self.restart(node).await?;
            self.wait_caught_up(node, CATCH_UP_TIMEOUT).await?;
            tokio::time::sleep(ROLLING_RESTART_SETTLE).await;
        }
        self.note("rolling restart done");
        Ok(())
    }

    /// Waits until `node` has applied everything the leader had committed when the wait
    /// began.
    pub async fn wait_caught_up(&mut self, node: NodeId, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let leader = self.cluster.wait_for_leader(LEADER_TIMEOUT).await?;
        let target = self.cluster.status(leader).await?.committed_index;
        loop {
            if let Ok(status) = self.cluster.status(node).await {
                if status.applied_index >= target {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(HarnessError::timeout(
                    format!("node {node} catching up to index {target}"),
                    timeout,
                    "",
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts a new node, joins it as a learner and promotes it to voter; returns its id.
    pub async fn add_node(&mut self) -> Result<NodeId> {
        let node = self.cluster.next_node_id();
        let fault = self.start_fault(format!("add n{node}"), BTreeSet::new());
        self.cluster.launch(node).await?;
        self.apply_rules(node).await?;
        self.cluster.join(node).await?;
        self.cluster.promote(node).await?;
        self.heal_fault(fault, &format!("n{node} is a voter"));
        Ok(node)
    }

    /// Removes `node` from the cluster, then stops its container.
    pub async fn remove_node(&mut self, node: NodeId) -> Result<()> {
        let fault = self.start_fault(format!("remove n{node}"), BTreeSet::new());
        self.cluster.remove_member(node).await?;
        self.cluster.stop(node).await?;
        self.heal_fault(fault, &format!("n{node} removed"));
        Ok(())
    }

    /// Replaces `node` by a new one: add the new node first, then remove the old, so the
    /// cluster never runs with fewer voters than it had.
    pub async fn replace_node(&mut self, node: NodeId) -> Result<NodeId> {
        let replacement = self.add_node().await?;
        self.remove_node(node).await?;
        self.note(format!("n{node} replaced by n{replacement}"));
        Ok(replacement)
    }

    /// Waits until the members that are up agree on the applied state.
    pub async fn wait_converged(&mut self) -> Result<()> {
        self.cluster
            .wait_converged(CONVERGE_TIMEOUT)
            .await
            .map(drop)
    }

    async fn apply_rules_everywhere(&mut self) -> Result<()> {
        let nodes: Vec<NodeId> = self
            .cluster
            .nodes()
            .iter()
            .filter(|node| matches!(node.state, NodeState::Running | NodeState::Paused))
            .map(|node| node.id)
            .collect();
        for node in nodes {
            self.apply_rules(node).await?;
        }
        Ok(())
    }

    /// Makes `node`'s chains hold exactly the rules the faults in force call for. Paused
    /// nodes too: their namespace takes rules while the processes are frozen.
    async fn apply_rules(&self, node: NodeId) -> Result<()> {
        let pid = self.cluster.pid(node).await?;
        for (chain, hook) in [
            (PARTITION_INPUT_CHAIN, "INPUT"),
            (PARTITION_OUTPUT_CHAIN, "OUTPUT"),
            (LOSS_INPUT_CHAIN, "INPUT"),
            (LOSS_OUTPUT_CHAIN, "OUTPUT"),
        ] {
            ensure_chain(pid, chain, hook).await?;
            docker::iptables_in(pid, &["-F", chain]).await?;
        }
        for rule in self.rules_for(node) {
            let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
            docker::iptables_in(pid, &rule).await?;
        }
        Ok(())
    }

    /// The iptables rules (`-A CHAIN ...`) `node` needs now.
    fn rules_for(&self, node: NodeId) -> Vec<Vec<String>> {
        let gateway = self.cluster.network.gateway.to_string();
        let ports = self.cluster.proxies().ports();
        let addresses: BTreeMap<NodeId, String> = self
            .cluster
            .nodes()
            .iter()
            .map(|node| (node.id, node.address.to_string()))
            .collect();
        let mut rules = Vec::new();
        let rule = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        if let Some((partition, _)) = &self.partition {
            for (other, port) in &ports {
                if *other == node || partition.connected(node, *other) {
                    continue;
                }
                let port = port.to_string();
                // To the other node's proxy: how Raft traffic to it leaves this node.
                rules.push(rule(&[
                    "-A",
                    PARTITION_OUTPUT_CHAIN,
                    "-d",
                    &gateway,
                    "-p",
                    "tcp",
                    "--dport",
                    &port,
                    "-j",
                    "DROP",
                ]));
                // Direct traffic between containers, should anything use it.
                if let Some(address) = addresses.get(other) {
                    rules.push(rule(&[
                        "-A",
                        PARTITION_OUTPUT_CHAIN,
                        "-d",
                        address,
                        "-j",
                        "DROP",
                    ]));
                    rules.push(rule(&[
                        "-A",
                        PARTITION_INPUT_CHAIN,
                        "-s",
                        address,
                        "-j",
                        "DROP",
                    ]));
                }
            }
        }
        if let Some(probability) = self
            .loss
            .as_ref()
            .and_then(|(loss, _)| loss.get(&node).copied())
        {
            let probability = format!("{probability:.4}");
            let statistic = ["-m", "statistic", "--mode", "random", "--probability"];
            let peer_port = PEER_PORT.to_string();
            // Peer traffic only: requests from proxies to this node and its answers, and
            // this node's requests to the other nodes' proxies.
            let mut drop_rule = |chain: &str, matcher: &[&str]| {
                let mut words = vec!["-A", chain];
                words.extend_from_slice(matcher);
                words.extend_from_slice(&statistic);
                words.extend_from_slice(&[&probability, "-j", "DROP"]);
                rules.push(rule(&words));
            };
            drop_rule(LOSS_INPUT_CHAIN, &["-p", "tcp", "--dport", &peer_port]);
            drop_rule(LOSS_OUTPUT_CHAIN, &["-p", "tcp", "--sport", &peer_port]);
            for (other, port) in &ports {
                if *other != node {
                    let port = port.to_string();
                    drop_rule(
                        LOSS_OUTPUT_CHAIN,
                        &["-d", &gateway, "-p", "tcp", "--dport", &port],
                    );
                    drop_rule(
                        LOSS_INPUT_CHAIN,
                        &["-s", &gateway, "-p", "tcp", "--sport", &port],
                    );
                }
            }
        }
        rules
    }
}

/// Creates `chain` in the namespace of `pid` if missing, and jumps to it from `hook` once.
async fn ensure_chain(pid: u32, chain: &str, hook: &str) -> Result<()> {
    if docker::iptables_in(pid, &["-S", chain]).await.is_err() {
        docker::iptables_in(pid, &["-N", chain]).await?;
    }
    if docker::iptables_in(pid, &["-C", hook, "-j", chain])
        .await
        .is_err()
    {
        docker::iptables_in(pid, &["-A", hook, "-j", chain]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_say_who_talks_to_whom() {
        let all = [1, 2, 3, 4, 5];
        let isolated = Partition::isolate(3, &all);
        assert!(!isolated.connected(3, 1));
        assert!(isolated.connected(1, 2));
        assert_eq!(isolated.describe(), "{n3} | {n1,n2,n4,n5}");

        let bridge = Partition::bridge(&[1, 2], 3, &[4, 5]);
        assert!(bridge.connected(3, 1) && bridge.connected(3, 5));
        assert!(!bridge.connected(1, 4));
        assert!(bridge.connected(1, 2) && bridge.connected(4, 5));
        // A node added after the partition was made talks to everyone.
        assert!(bridge.connected(6, 1));
    }
}
