//! Prometheus metrics: what the node counts as it works ([`NodeMetrics`], atomics updated on
//! the lookup, leg-report, probe and write paths) and what it reads at scrape time (Raft's
//! metrics, the replicated state, the store, the disk), served as text on `metrics_addr`'s
//! `/metrics` ([`MetricsEndpoint`]).
//!
//! Names follow Prometheus's conventions (`trunkline_` prefix, base units, `_total` on
//! counters, `_seconds`/`_bytes`). Labels are bounded: RPC names, outcomes, refusal reasons
//! and SIP codes are fixed sets; gateway, carrier and node labels come from the cluster's own
//! configuration; nothing is labelled by call, number or tenant.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use http_body_util::Full;
use hyper::body::Bytes;
use openraft::ServerState;
use tokio::sync::Semaphore;
use trunkline_api::v1 as proto;
use trunkline_core::{
    events::EventKind,
    health::{Liveness, ProbeResult, TransitionSource},
};
use trunkline_metrics::{
    Counter, Exposition, Histogram, Kind, LATENCY_BUCKETS, ROUND_TRIP_BUCKETS,
};
use trunkline_store::StoreMetrics;

use crate::{
    cdrs::Recorder,
    cluster::{now_ms, Cluster, STALENESS_UNKNOWN},
    http1::{Handler, HttpResponse},
    listener::ConnectionInfo,
};

/// The `RouteService` calls measured, as the `rpc` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    RouteOutbound,
    ReportLeg,
    RouteInbound,
    ReportCallEnd,
    ReportRegistration,
}

const RPCS: [Rpc; 5] = [
    Rpc::RouteOutbound,
    Rpc::ReportLeg,
    Rpc::RouteInbound,
    Rpc::ReportCallEnd,
    Rpc::ReportRegistration,
];

impl Rpc {
    fn as_str(self) -> &'static str {
        match self {
            Rpc::RouteOutbound => "route_outbound",
            Rpc::ReportLeg => "report_leg",
            Rpc::RouteInbound => "route_inbound",
            Rpc::ReportCallEnd => "report_call_end",
            Rpc::ReportRegistration => "report_registration",
        }
    }
}

/// How a call of the route service ended, as the `outcome` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered: legs to try, the next step of a call, a registration or end booked.
    Ok,
    /// Answered with a refusal (policy, limit, no carrier): the proxy rejects the call.
    Refused,
    /// An error status (bad input, not allowed, unavailable, deadline).
    Error,
}

const OUTCOMES: [Outcome; 3] = [Outcome::Ok, Outcome::Refused, Outcome::Error];

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }
}

/// Refusal reasons counted by their wire number; a number past this counts as the last.
const REFUSAL_SLOTS: usize = 64;
/// Refusals answered as an error status carrying a `trunkline-refusal` word rather than a
/// wire reason; counted after the wire reasons.
const STATUS_REFUSALS: [&str; 2] = ["unknown-tenant", "invalid-number"];
/// SIP codes counted one by one (reroutes); 0 stands for a transport error or local timeout.
const SIP_CODE_SLOTS: usize = 700;

/// What a probe came to, as the `result` label names it.
const PROBE_RESULTS: [&str; 3] = ["reply", "timeout", "transport_error"];

/// What the node counts as it works. One per node, shared through the [`Cluster`].
pub struct NodeMetrics {
    /// Duration of each route-service call, by RPC and outcome.
    requests: Vec<Histogram>,
    refusals: Vec<Counter>,
    reroutes: Vec<Counter>,
    /// Leg reports answered with a next leg, and with a stop.
    leg_next: Counter,
    leg_stop: Counter,
    probe_round_trip: Histogram,
    probes: [Counter; 3],
    /// Raft entries this node proposed as leader, the writes they carried, how long each
    /// took to commit and apply, and those that failed.
    proposals: Counter,
    proposed_writes: Counter,
    proposal_seconds: Histogram,
    proposal_failures: Counter,
    /// Terms this node saw begin (each began with an election), and leader changes.
    elections: Counter,
    leader_changes: Counter,
    raft_seen: Mutex<(u64, Option<u64>)>,
    /// Calls of tenants with limits admitted and refused.
    admitted: Counter,
    admission_refused: Counter,
}

#[derive(Clone, Debug, Default)]
struct EventCounts {
    /// The newest event index counted; `None` before the first scrape.
    last_index: Option<u64>,
    /// Gateway transitions by (to, source).
    transitions: [[u64; 3]; 2],
    security_alerts: u64,
    fraud_alerts: u64,
}

const SOURCES: [TransitionSource; 3] = [
    TransitionSource::Probe,
    TransitionSource::Breaker,
    TransitionSource::Flapping,
];

fn source_slot(source: TransitionSource) -> usize {
    match source {
        TransitionSource::Probe => 0,
        TransitionSource::Breaker => 1,
        TransitionSource::Flapping => 2,
    }
}

fn liveness_slot(liveness: Liveness) -> usize {
    match liveness {
        Liveness::Up => 0,
        Liveness::Down => 1,
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            requests: (0..RPCS.len() * OUTCOMES.len())
                .map(|_| Histogram::new(LATENCY_BUCKETS))
                .collect(),
            refusals: (0..REFUSAL_SLOTS + STATUS_REFUSALS.len())
                .map(|_| Counter::new())
                .collect(),
            reroutes: (0..SIP_CODE_SLOTS).map(|_| Counter::new()).collect(),
            leg_next: Counter::new(),
            leg_stop: Counter::new(),
            probe_round_trip: Histogram::new(ROUND_TRIP_BUCKETS),
            probes: [Counter::new(), Counter::new(), Counter::new()],
            proposals: Counter::new(),
            proposed_writes: Counter::new(),
            proposal_seconds: Histogram::new(LATENCY_BUCKETS),
            proposal_failures: Counter::new(),
            elections: Counter::new(),
            leader_changes: Counter::new(),
            raft_seen: Mutex::new((0, None)),
            admitted: Counter::new(),
            admission_refused: Counter::new(),
        }
    }
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

/// A call's histogram among `requests`: by RPC, then outcome (the enums' order).
fn request_slot(rpc: Rpc, outcome: Outcome) -> usize {
    rpc as usize * OUTCOMES.len() + outcome as usize
}

impl NodeMetrics {
    /// One call of the route service, from when it was received.
    pub fn request(&self, rpc: Rpc, outcome: Outcome, started: Instant) {
        if let Some(histogram) = self.requests.get(request_slot(rpc, outcome)) {
            histogram.observe(started.elapsed());
        }
    }

    /// A refused call, by the refusal's wire reason.
    pub fn refusal(&self, reason: i32) {
        let slot = usize::try_from(reason).unwrap_or(0).min(REFUSAL_SLOTS - 1);
        if let Some(counter) = self.refusals.get(slot) {
            counter.inc();
        }
    }

    /// A refusal answered as an error status (an unknown tenant, a number that can't be
    /// read), named by its `trunkline-refusal` header; false for any other error.
    pub fn status_refusal(&self, status: &tonic::Status) -> bool {
        let word = status
            .metadata()
            .get(crate::route_service::REFUSAL_HEADER)
            .and_then(|value| value.to_str().ok());
        let Some(slot) = STATUS_REFUSALS
            .iter()
            .position(|known| Some(*known) == word)
        else {
            return false;
        };
        if let Some(counter) = self.refusals.get(REFUSAL_SLOTS + slot) {
            counter.inc();
        }
        true
    }

    /// A leg report's verdict: the call moves to a next leg (rerouted because of `sip_code`,
    /// 0 for a transport error or the proxy's own timeout), or stops.
    pub fn leg_verdict(&self, rerouted_on: Option<u32>) {
        match rerouted_on {
            Some(code) => {
                self.leg_next.inc();
                let slot = usize::try_from(code)
                    .ok()
                    .filter(|code| *code < SIP_CODE_SLOTS)
                    .unwrap_or(0);
                if let Some(counter) = self.reroutes.get(slot) {
                    counter.inc();
                }
            }
            None => self.leg_stop.inc(),
        }
    }

    /// One probe's result.
    pub fn probe(&self, result: &ProbeResult) {
        let slot = match result {
            ProbeResult::Reply { round_trip_ms, .. } => {
                self.probe_round_trip
                    .observe(Duration::from_millis(*round_trip_ms));
                0
            }
            ProbeResult::Timeout => 1,
            ProbeResult::TransportError { .. } => 2,
        };
        self.probes[slot].inc();
    }

    /// One Raft entry proposed by this node as leader, carrying `writes` writes.
    pub fn proposal(&self, writes: usize, started: Instant, committed: bool) {
        self.proposals.inc();
        self.proposed_writes.add(writes as u64);
        self.proposal_seconds.observe(started.elapsed());
        if !committed {
            self.proposal_failures.inc();
        }
    }

    /// What Raft's metrics said last: counts the terms that began and leader changes.
    pub fn raft_observed(&self, term: u64, leader: Option<u64>) {
        let mut seen = self
            .raft_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (last_term, last_leader) = *seen;
        // The first term seen is where the process found the cluster, not an election.
        if last_term != 0 && term > last_term {
            self.elections.add(term - last_term);
        }
        // Likewise the first leader seen: a restart is not a leader change.
        if last_term != 0 && leader.is_some() && leader != last_leader {
            self.leader_changes.inc();
        }
        *seen = (term.max(last_term), leader.or(last_leader));
    }

    /// A call of a tenant with limits admitted, or refused by a limit.
    pub fn admission(&self, admitted: bool) {
        if admitted {
            self.admitted.inc();
        } else {
            self.admission_refused.inc();
        }
    }
}

/// The `/metrics` endpoint of a node.
pub struct MetricsEndpoint {
    cluster: Arc<Cluster>,
    store: Arc<StoreMetrics>,
    recorder: Arc<Recorder>,
    data_dir: PathBuf,
    /// Scrapes rendered at once; more are answered 429.
    rendering: Semaphore,
    /// When the process started, unix seconds (about: when this endpoint was made).
    started_s: f64,
    /// Events counted from the replicated event log, from where the first scrape found it.
    events: Mutex<EventCounts>,
}

/// Scrapes rendered at once on one node.
const MAX_CONCURRENT_SCRAPES: usize = 2;

impl MetricsEndpoint {
    pub fn new(
        cluster: Arc<Cluster>,
        store: Arc<StoreMetrics>,
        recorder: Arc<Recorder>,
        data_dir: PathBuf,
    ) -> Self {
        MetricsEndpoint {
            cluster,
            store,
            recorder,
            data_dir,
            rendering: Semaphore::new(MAX_CONCURRENT_SCRAPES),
            started_s: now_ms() as f64 / 1e3,
            events: Mutex::new(EventCounts::default()),
        }
    }

    /// Every metric, in Prometheus's text format.
    pub async fn render(&self) -> String {
        let data_dir = self.data_dir.clone();
        let cluster = self.cluster.clone();
        // Walking the folder, statvfs and /proc block: off the runtime's threads.
        let (disk, process) = tokio::task::spawn_blocking(move || {
            let (free, reserve) = cluster.disk_status();
            (
                Disk {
                    used: trunkline_store::folder_bytes(&data_dir),
                    free,
                    reserve,
                },
                Process::read(),
            )
        })
        .await
        .unwrap_or_default();
        let mut out = Exposition::new();
        self.node(&mut out);
        self.requests(&mut out);
        self.raft(&mut out);
        self.state(&mut out);
        self.store(&mut out, &disk);
        process.write(&mut out, self.started_s);
        out.finish()
    }

    fn node(&self, out: &mut Exposition) {
        let cluster = &self.cluster;
        let node_id = cluster.node_id.to_string();
        out.family(
            "trunkline_node_info",
            "This node: its id, cluster and version (always 1).",
            Kind::Gauge,
        )
        .sample(
            "trunkline_node_info",
            &[
                ("node_id", node_id.as_str()),
                ("cluster", cluster.cluster_name.as_str()),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1.0,
        );
    }

    fn requests(&self, out: &mut Exposition) {
        let metrics = &self.cluster.meters;
        out.family(
            "trunkline_route_request_duration_seconds",
            "Time to answer a RouteService call (gRPC, RouteStream or HTTP), by RPC and outcome.",
            Kind::Histogram,
        );
        for rpc in RPCS {
            for outcome in OUTCOMES {
                if let Some(histogram) = metrics.requests.get(request_slot(rpc, outcome)) {
                    out.histogram(
                        "trunkline_route_request_duration_seconds",
                        &[("rpc", rpc.as_str()), ("outcome", outcome.as_str())],
                        histogram,
                    );
                }
            }
        }
        out.family(
            "trunkline_route_refusals_total",
            "Calls refused (answered with a refusal the proxy turns into a SIP reply), by reason.",
            Kind::Counter,
        );
        for reason in 1..REFUSAL_SLOTS {
            let Ok(known) = proto::RefusalReason::try_from(reason as i32) else {
                continue;
            };
            let name = trunkline_api::convert::refusal_reason_name(known.into());
            let count = metrics.refusals.get(reason).map_or(0, Counter::get);
            out.sample(
                "trunkline_route_refusals_total",
                &[("reason", &name)],
                count as f64,
            );
        }
        for (slot, name) in STATUS_REFUSALS.iter().enumerate() {
            let count = metrics
                .refusals
                .get(REFUSAL_SLOTS + slot)
                .map_or(0, Counter::get);
            out.sample(
                "trunkline_route_refusals_total",
                &[("reason", name)],
                count as f64,
            );
        }
        out.family(
            "trunkline_leg_reports_total",
            "Leg reports by verdict: the call moves to a next leg, or stops.",
            Kind::Counter,
        )
        .sample(
            "trunkline_leg_reports_total",
            &[("verdict", "next")],
            metrics.leg_next.get() as f64,
        )
        .sample(
            "trunkline_leg_reports_total",
            &[("verdict", "stop")],
            metrics.leg_stop.get() as f64,
        );
        out.family(
            "trunkline_reroutes_total",
            "Calls moved to a next leg, by the SIP code that ended the last one (0: a transport \
             error or the proxy's own timeout).",
            Kind::Counter,
        );
        for (code, counter) in metrics.reroutes.iter().enumerate() {
            let count = counter.get();
            if count > 0 {
                out.sample(
                    "trunkline_reroutes_total",
                    &[("sip_code", &code.to_string())],
                    count as f64,
                );
            }
        }
        out.family(
            "trunkline_probes_total",
            "SIP OPTIONS probes this node sent, by result.",
            Kind::Counter,
        );
        for (result, counter) in PROBE_RESULTS.iter().zip(&metrics.probes) {
            out.sample(
                "trunkline_probes_total",
                &[("result", result)],
                counter.get() as f64,
            );
        }
        out.family(
            "trunkline_probe_round_trip_seconds",
            "Round trip of the probes a gateway answered.",
            Kind::Histogram,
        )
        .histogram(
            "trunkline_probe_round_trip_seconds",
            &[],
            &metrics.probe_round_trip,
        );
        out.family(
            "trunkline_admissions_total",
            "Calls of tenants with usage limits, admitted or refused by a limit.",
            Kind::Counter,
        )
        .sample(
            "trunkline_admissions_total",
            &[("outcome", "admitted")],
            metrics.admitted.get() as f64,
        )
        .sample(
            "trunkline_admissions_total",
            &[("outcome", "refused")],
            metrics.admission_refused.get() as f64,
        );
        out.single(
            "trunkline_cdrs_dropped_total",
            "Lookup call records dropped because the record queue was full.",
            Kind::Counter,
            self.recorder.dropped() as f64,
        );
    }

    fn raft(&self, out: &mut Exposition) {
        let cluster = &self.cluster;
        let metrics = &cluster.meters;
        let raft = cluster.metrics();
        let (_, staleness) = cluster.leader_and_staleness();
        let leading = raft.state == ServerState::Leader;
        out.single(
            "trunkline_raft_term",
            "The current Raft term.",
            Kind::Gauge,
            raft.current_term as f64,
        );
        out.single(
            "trunkline_raft_leader_id",
            "The node id of the leader this node knows of; -1 when it knows none.",
            Kind::Gauge,
            raft.current_leader.map_or(-1.0, |leader| leader as f64),
        );
        out.single(
            "trunkline_raft_is_leader",
            "1 on the leader.",
            Kind::Gauge,
            f64::from(u8::from(leading)),
        );
        out.family(
            "trunkline_raft_state",
            "This node's Raft state (1 for the current one).",
            Kind::Gauge,
        );
        for (state, name) in [
            (ServerState::Leader, "leader"),
            (ServerState::Follower, "follower"),
            (ServerState::Candidate, "candidate"),
            (ServerState::Learner, "learner"),
            (ServerState::Shutdown, "shutdown"),
        ] {
            out.sample(
                "trunkline_raft_state",
                &[("state", name)],
                f64::from(u8::from(raft.state == state)),
            );
        }
        out.single(
            "trunkline_raft_stopped",
            "1 when the Raft core stopped (a storage error): the node no longer applies the log.",
            Kind::Gauge,
            f64::from(u8::from(raft.running_state.is_err())),
        );
        out.single(
            "trunkline_raft_last_log_index",
            "Index of the last entry in this node's log.",
            Kind::Gauge,
            raft.last_log_index.unwrap_or(0) as f64,
        );
        out.single(
            "trunkline_raft_committed_index",
            "Index of the last entry this node knows committed.",
            Kind::Gauge,
            self.store.committed_index.get() as f64,
        );
        out.single(
            "trunkline_raft_applied_index",
            "Index of the last entry applied to this node's state.",
            Kind::Gauge,
            raft.last_applied.map_or(0, |log_id| log_id.index) as f64,
        );
        out.single(
            "trunkline_raft_staleness_seconds",
            "How old this node's state may be: since its leader's quorum last answered (on the \
             leader) or since a leader last reached it; +Inf when never.",
            Kind::Gauge,
            if staleness == STALENESS_UNKNOWN {
                f64::INFINITY
            } else {
                staleness as f64 / 1e3
            },
        );
        out.family(
            "trunkline_raft_follower_lag_entries",
            "On the leader: entries each other member is behind the leader's log.",
            Kind::Gauge,
        );
        if let Some(replication) = &raft.replication {
            let last = raft.last_log_index.unwrap_or(0);
            for (node, matched) in replication {
                if *node == cluster.node_id {
                    continue;
                }
                let matched = matched.map_or(0, |log_id| log_id.index);
                out.sample(
                    "trunkline_raft_follower_lag_entries",
                    &[("follower", &node.to_string())],
                    last.saturating_sub(matched) as f64,
                );
            }
        }
        let membership = raft.membership_config.membership();
        let voters = membership.voter_ids().count();
        let learners = membership.learner_ids().count();
        out.family(
            "trunkline_raft_members",
            "Members of the cluster's configuration, by role.",
            Kind::Gauge,
        )
        .sample(
            "trunkline_raft_members",
            &[("role", "voter")],
            voters as f64,
        )
        .sample(
            "trunkline_raft_members",
            &[("role", "learner")],
            learners as f64,
        );
        out.single(
            "trunkline_raft_elections_total",
            "Terms this node saw begin since it started (each began with an election).",
            Kind::Counter,
            metrics.elections.get() as f64,
        );
        out.single(
            "trunkline_raft_leader_changes_total",
            "Times this node saw the leader change since it started.",
            Kind::Counter,
            metrics.leader_changes.get() as f64,
        );
        out.single(
            "trunkline_raft_proposals_total",
            "Raft entries this node proposed as leader (a group-committed batch is one).",
            Kind::Counter,
            metrics.proposals.get() as f64,
        );
        out.single(
            "trunkline_raft_proposed_writes_total",
            "Writes carried by the entries this node proposed.",
            Kind::Counter,
            metrics.proposed_writes.get() as f64,
        );
        out.single(
            "trunkline_raft_proposal_failures_total",
            "Proposals that did not commit (leadership lost, deadline, storage failure).",
            Kind::Counter,
            metrics.proposal_failures.get() as f64,
        );
        out.family(
            "trunkline_raft_proposal_duration_seconds",
            "Time from proposing an entry to its being applied on the leader.",
            Kind::Histogram,
        )
        .histogram(
            "trunkline_raft_proposal_duration_seconds",
            &[],
            &metrics.proposal_seconds,
        );
        out.family(
            "trunkline_raft_apply_duration_seconds",
            "Time to apply one run of committed entries to the state.",
            Kind::Histogram,
        )
        .histogram(
            "trunkline_raft_apply_duration_seconds",
            &[],
            &self.store.apply_seconds,
        );
        out.single(
            "trunkline_raft_entries_applied_total",
            "Log entries applied since the node started.",
            Kind::Counter,
            self.store.entries_applied.get() as f64,
        );
        out.single(
            "trunkline_raft_snapshot_index",
            "Last log index the current snapshot covers.",
            Kind::Gauge,
            raft.snapshot.map_or(0, |log_id| log_id.index) as f64,
        );
        out.single(
            "trunkline_raft_snapshot_bytes",
            "Size of the last snapshot built or installed since the node started (0: none yet).",
            Kind::Gauge,
            self.store.snapshot_bytes.get() as f64,
        );
        out.family(
            "trunkline_raft_snapshot_build_duration_seconds",
            "Time to build, store and flush a snapshot.",
            Kind::Histogram,
        )
        .histogram(
            "trunkline_raft_snapshot_build_duration_seconds",
            &[],
            &self.store.snapshot_build_seconds,
        );
        out.single(
            "trunkline_raft_snapshots_installed_total",
            "Snapshots received from a leader and installed.",
            Kind::Counter,
            self.store.snapshots_installed.get() as f64,
        );
    }

    fn state(&self, out: &mut Exposition) {
        let applied = self.cluster.reader.current();
        let state = &applied.state;
        let now = now_ms();
        let routing = state.routing();
        let health = state.health();

        out.family(
            "trunkline_gateway_up",
            "1 while a gateway is up in the replicated health table, 0 while down.",
            Kind::Gauge,
        );
        let (mut up, mut down) = (0u64, 0u64);
        for gateway in routing.gateways() {
            let alive = health.liveness(&gateway.name) == Liveness::Up;
            if alive {
                up += 1;
            } else {
                down += 1;
            }
            out.sample(
                "trunkline_gateway_up",
                &[("carrier", &gateway.carrier), ("gateway", &gateway.name)],
                f64::from(u8::from(alive)),
            );
        }
        out.family(
            "trunkline_gateways",
            "Gateways configured, by health state.",
            Kind::Gauge,
        )
        .sample("trunkline_gateways", &[("state", "up")], up as f64)
        .sample("trunkline_gateways", &[("state", "down")], down as f64);

        let counts = self.count_events(state.events());
        out.family(
            "trunkline_gateway_transitions_total",
            "Gateway health transitions applied since this node's first scrape, by the state \
             entered and what caused it.",
            Kind::Counter,
        );
        for (to_slot, to) in [(0, "up"), (1, "down")] {
            for source in SOURCES {
                out.sample(
                    "trunkline_gateway_transitions_total",
                    &[("to", to), ("source", source.as_str())],
                    counts.transitions[to_slot][source_slot(source)] as f64,
                );
            }
        }
        out.single(
            "trunkline_breaker_openings_total",
            "Gateways taken down by a circuit breaker (leg reports) since this node's first scrape.",
            Kind::Counter,
            counts.transitions[1][source_slot(TransitionSource::Breaker)] as f64,
        );
        out.single(
            "trunkline_security_alerts_total",
            "Security alerts (tokens locked, sources refused) since this node's first scrape.",
            Kind::Counter,
            counts.security_alerts as f64,
        );
        out.single(
            "trunkline_fraud_alerts_total",
            "Fraud alerts raised since this node's first scrape.",
            Kind::Counter,
            counts.fraud_alerts as f64,
        );
        out.single(
            "trunkline_cdrs_archived_total",
            "Call records finished and archived since the cluster began (the same on every node).",
            Kind::Counter,
            state.cdrs().archived() as f64,
        );
        out.single(
            "trunkline_calls_open",
            "Calls in progress: looked up and not yet ended.",
            Kind::Gauge,
            state.cdrs().open_count() as f64,
        );
        let open_alerts = state
            .alerts()
            .alerts()
            .filter(|alert| alert.acknowledged.is_none())
            .count();
        out.single(
            "trunkline_fraud_alerts_open",
            "Fraud alerts not yet acknowledged.",
            Kind::Gauge,
            open_alerts as f64,
        );

        let registrations = state.inbound().registrations();
        let (mut registered, mut live_bindings, mut bindings) = (0u64, 0u64, 0u64);
        for aor in registrations.aors() {
            let live = registrations.live(aor, now).len() as u64;
            registered += u64::from(live > 0);
            live_bindings += live;
            bindings += registrations.all(aor).len() as u64;
        }
        out.single(
            "trunkline_registered_devices",
            "Devices (addresses of record) with at least one live registration.",
            Kind::Gauge,
            registered as f64,
        );
        out.family(
            "trunkline_registration_bindings",
            "Registration bindings held, live and expired (not yet removed).",
            Kind::Gauge,
        )
        .sample(
            "trunkline_registration_bindings",
            &[("state", "live")],
            live_bindings as f64,
        )
        .sample(
            "trunkline_registration_bindings",
            &[("state", "expired")],
            bindings.saturating_sub(live_bindings) as f64,
        );
        out.family(
            "trunkline_config_objects",
            "Objects of the replicated routing configuration, by kind.",
            Kind::Gauge,
        )
        .sample(
            "trunkline_config_objects",
            &[("kind", "tenant")],
            routing.tenants().count() as f64,
        )
        .sample(
            "trunkline_config_objects",
            &[("kind", "carrier")],
            routing.carriers().count() as f64,
        )
        .sample(
            "trunkline_config_objects",
            &[("kind", "gateway")],
            routing.gateways().count() as f64,
        );
    }

    /// Counts the events applied since the last scrape (from the first scrape on: what was
    /// in the log before it is history, not this process's count).
    fn count_events(&self, log: &trunkline_core::events::EventLog) -> EventCounts {
        let mut counts = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let newest = log.iter().next_back().map_or(0, |event| event.index);
        match counts.last_index {
            None => counts.last_index = Some(newest),
            Some(last) => {
                let (events, _missed) = log.after(last);
                for event in events {
                    match &event.kind {
                        EventKind::GatewayHealth(transition) => {
                            counts.transitions[liveness_slot(transition.to)]
                                [source_slot(transition.source)] += 1;
                        }
                        EventKind::SecurityAlert(_) => counts.security_alerts += 1,
                        EventKind::FraudAlert(_) => counts.fraud_alerts += 1,
                    }
                }
                counts.last_index = Some(newest.max(last));
            }
        }
        counts.clone()
    }

    fn store(&self, out: &mut Exposition, disk: &Disk) {
        out.single(
            "trunkline_store_disk_used_bytes",
            "Bytes of every file in the data folder (sled, snapshots, the call record archive).",
            Kind::Gauge,
            disk.used as f64,
        );
        if let Some(free) = disk.free {
            out.single(
                "trunkline_store_disk_free_bytes",
                "Bytes free for the node on the data folder's disk.",
                Kind::Gauge,
                free as f64,
            );
        }
        out.single(
            "trunkline_store_disk_reserve_bytes",
            "Free bytes the node keeps: client writes are refused below it (0: no reserve).",
            Kind::Gauge,
            disk.reserve as f64,
        );
    }
}

/// The data folder's disk: bytes the folder holds, free (`None`: unknown), the reserve.
#[derive(Debug, Default)]
struct Disk {
    used: u64,
    free: Option<u64>,
    reserve: u64,
}

/// The process's own figures, from /proc (Linux); absent elsewhere.
#[derive(Debug, Default)]
struct Process {
    resident_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

impl Process {
    fn read() -> Process {
        let resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmRSS:"))
                    .and_then(|value| {
                        value
                            .trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
            })
            .map(|kib| kib * 1024);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as u64);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                limits
                    .lines()
                    .find(|line| line.starts_with("Max open files"))
                    .and_then(|line| line.split_whitespace().nth(3))
                    .and_then(|soft| soft.parse().ok())
            });
        Process {
            resident_bytes,
            open_fds,
            max_fds,
        }
    }

    fn write(&self, out: &mut Exposition, started_s: f64) {
        out.single(
            "process_start_time_seconds",
            "When the process started, unix seconds.",
            Kind::Gauge,
            started_s,
        );
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory of the process.",
                self.resident_bytes,
            ),
            (
                "process_open_fds",
                "File descriptors the process has open.",
                self.open_fds,
            ),
            (
                "process_max_fds",
                "The most file descriptors the process may open.",
                self.max_fds,
            ),
        ] {
            if let Some(value) = value {
                out.single(name, help, Kind::Gauge, value as f64);
            }
        }
    }
}

impl Handler for MetricsEndpoint {
    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
        _info: ConnectionInfo,
    ) -> HttpResponse {
        if request.uri().path() != "/metrics" {
            return plain(404, "not found: the metrics are at /metrics\n".to_owned());
        }
        if request.method() != hyper::Method::GET && request.method() != hyper::Method::HEAD {
            return plain(405, "use GET\n".to_owned());
        }
        let Ok(_permit) = self.rendering.try_acquire() else {
            return plain(429, "scrapes already in progress; try again\n".to_owned());
        };
        let mut response = plain(200, self.render().await);
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }
}

fn plain(status: u16, body: String) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}
