//! Gateway health on a node: the probes this node runs, the circuit breakers fed by the leg
//! reports it receives, and the transitions it proposes to Raft.
//!
//! - A supervisor task computes, every [`SUPERVISE_INTERVAL`], which enabled gateways this node
//!   probes (rendezvous hashing over the live voters, [`Liveness`]) and starts or stops one
//!   task per gateway. Adding nodes spreads probes; it never multiplies them.
//! - A probe task sends one OPTIONS per interval ([`SipProber`]), feeds the result to the
//!   core's [`ProbeTracker`], and passes any transition through the [`TransitionLimiter`]
//!   before proposing it. Once an up gateway misses a probe, the next ones go out every
//!   interval / down-threshold, so a dead gateway is down about one interval after its last
//!   reply instead of down-threshold intervals, with no extra traffic to healthy ones. It starts from the replicated state and the replicated transition
//!   history, so a takeover neither resets a down gateway nor grants a fresh flapping budget.
//!   When a breaker opened the gateway (on any node), the probes wait out the cool-down and
//!   then close it after enough alive replies.
//! - Leg reports feed a [`CircuitBreaker`] per gateway on the node that receives them; an
//!   opening is proposed once, as a compare-and-set from up.
//! - Half-open: once a breaker has been open for the policy's `trial_after_ms`, route lookups
//!   offer the gateway to a sample of calls (the core's `BreakerTrials`). A report of such a
//!   leg, received by any node, that shows the gateway working closes the breaker early: the
//!   node proposes Down→Up as a compare-and-set, through the same flapping limiter as a
//!   probe's closing (built from the replicated transition history, so no node gets a fresh
//!   budget). A failed trial changes nothing: the gateway stays down and the cool-down keeps
//!   running from the opening.
//! - A gateway nobody probes (probing disabled) does not stay down past the breaker's
//!   cool-down: the node that would probe it proposes it up, and calls decide again.
//! - Declared edge proxies (inbound) are probed the same way; gateways and edges share one
//!   namespace, so the health table is keyed by name alone.
//!
//! Only transitions reach the log, never probe results; the live results stay in memory and
//! are served to `ListHealth` through the peer listener. [`HealthMonitor::health_lines`]
//! builds `ListHealth`'s lines: the replicated state of every gateway and edge, who probes
//! it, and the live results gathered from those probers.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};
use tracing::Instrument;

use serde::{Deserialize, Serialize};
use tokio::{task::JoinHandle, time::Instant};
use trunkline_api::v1 as proto;
use trunkline_core::{
    health::{
        assign, BreakerPolicy, CircuitBreaker, GatewayState, HealthCommand, HealthTable,
        LegOutcome, LimiterDecision, Liveness as GatewayLiveness, ProbeOverrides, ProbePolicy,
        ProbeResult, ProbeTracker, Transition, TransitionLimiter, TransitionLimiterPolicy,
        TransitionSource,
    },
    routing::SipUri,
    Command, Error, State,
};
use trunkline_store::NodeId;

use crate::{
    cluster::{now_ms, Cluster},
    convert,
    error::ClusterError,
    liveness::Liveness,
    network::{self, PeerCall},
    routing_view::RoutingViews,
    sip_probe::SipProber,
};

/// How often the assignment of gateways to this node is recomputed.
pub const SUPERVISE_INTERVAL: Duration = Duration::from_millis(100);
/// Longest a proposal of a transition may take before it is retried on the next probe.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long ListHealth waits for another node's live probe results.
pub const PROBE_STATUS_TIMEOUT: Duration = Duration::from_millis(500);

/// The live result of one gateway's probes, kept by its prober.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub gateway: String,
    pub last_round_trip_ms: Option<u64>,
    /// Unix ms when the last probe finished; 0 before the first.
    pub last_probe_ms: u64,
    /// "200", "503", "timeout", "connection refused", ...
    pub last_result: String,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
}

/// `ListHealth`'s answer: see [`HealthMonitor::health_lines`].
#[derive(Clone, Debug)]
pub struct HealthLines {
    /// Gateways in name order, then edges in name order.
    pub lines: Vec<proto::GatewayHealth>,
    /// The probers that did not answer for their live results, each with why.
    pub unreachable_probers: Vec<String>,
}

struct ProbeTask {
    handle: JoinHandle<()>,
    report: Arc<Mutex<ProbeReport>>,
}

struct BreakerSlot {
    breaker: CircuitBreaker,
    policy: BreakerPolicy,
    /// The gateway's `changed_index` when this breaker opened (or its own opening's index).
    opened_index: u64,
    proposing: bool,
}

impl BreakerSlot {
    fn new(policy: BreakerPolicy) -> Self {
        BreakerSlot {
            breaker: CircuitBreaker::new(policy.clone()),
            policy,
            opened_index: 0,
            proposing: false,
        }
    }
}

pub struct HealthMonitor {
    cluster: Arc<Cluster>,
    views: Arc<RoutingViews>,
    liveness: Arc<Liveness>,
    prober: Arc<SipProber>,
    probes: Mutex<HashMap<String, ProbeTask>>,
    breakers: Mutex<HashMap<String, BreakerSlot>>,
    /// Gateways whose recovery (unprobed, or by a trial call) is being proposed, so it is
    /// proposed once.
    recovering: Mutex<BTreeSet<String>>,
}

impl HealthMonitor {
    /// Starts the supervisor. It stops when the monitor is dropped.
    pub fn start(
        cluster: Arc<Cluster>,
        views: Arc<RoutingViews>,
        liveness: Arc<Liveness>,
        prober: Arc<SipProber>,
    ) -> Arc<HealthMonitor> {
        let monitor = Arc::new(HealthMonitor {
            cluster,
            views,
            liveness,
            prober,
            probes: Mutex::new(HashMap::new()),
            breakers: Mutex::new(HashMap::new()),
            recovering: Mutex::new(BTreeSet::new()),
        });
        let weak = Arc::downgrade(&monitor);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(SUPERVISE_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(monitor) = weak.upgrade() else {
                    return;
                };
                monitor.supervise();
            }
        });
        monitor
    }

    /// Stops every probe task (at shutdown).
    pub fn stop(&self) {
        if let Ok(mut probes) = self.probes.lock() {
            for (_, task) in probes.drain() {
                task.handle.abort();
            }
        }
    }

    fn supervise(self: &Arc<Self>) {
        let view = self.views.current();
        let state = &view.applied.state;
        let live = self.liveness.live_voters();
        let own = self.cluster.node_id;
        let mut mine = BTreeSet::new();
        for target in probe_targets(state) {
            if !target.enabled || assign(target.name, &live) != Some(own) {
                continue;
            }
            if target.probe.disabled {
                self.recover_unprobed(target.name, state.health());
            } else {
                mine.insert(target.name.to_owned());
            }
        }
        let Ok(mut probes) = self.probes.lock() else {
            return;
        };
        probes.retain(|name, task| {
            let keep = mine.contains(name) && !task.handle.is_finished();
            if !keep {
                task.handle.abort();
                tracing::debug!(gateway = %name, "no longer probing");
            }
            keep
        });
        for name in mine {
            if probes.contains_key(&name) {
                continue;
            }
            tracing::debug!(gateway = %name, "probing");
            let report = Arc::new(Mutex::new(ProbeReport {
                gateway: name.clone(),
                ..ProbeReport::default()
            }));
            let task = GatewayProber {
                name: name.clone(),
                cluster: self.cluster.clone(),
                views: self.views.clone(),
                prober: self.prober.clone(),
                report: report.clone(),
                keeper: None,
            };
            probes.insert(
                name,
                ProbeTask {
                    handle: tokio::spawn(task.run()),
                    report,
                },
            );
        }
    }

    /// A down gateway that nobody probes comes back after the breaker's cool-down.
    fn recover_unprobed(self: &Arc<Self>, gateway: &str, table: &HealthTable) {
        let Some(replicated) = table.gateway(gateway) else {
            return;
        };
        if replicated.state != GatewayLiveness::Down
            || now_ms().saturating_sub(replicated.since_ms) < table.policy().breaker.cool_down_ms
        {
            return;
        }
        let reason = format!(
            "not probed: back after the {} ms cool-down, calls decide",
            table.policy().breaker.cool_down_ms
        );
        self.propose_recovery(
            gateway,
            GatewayLiveness::Up,
            reason,
            TransitionSource::Breaker,
        );
    }

    /// Proposes a down gateway's change to `to` (a compare-and-set from down), at most one
    /// at a time per gateway whatever asks for it (an unprobed gateway's cool-down, a trial
    /// call); a stale one (a probe or another node got there first) is dropped.
    fn propose_recovery(
        self: &Arc<Self>,
        gateway: &str,
        to: GatewayLiveness,
        reason: String,
        source: TransitionSource,
    ) {
        let Ok(mut recovering) = self.recovering.lock() else {
            return;
        };
        if !recovering.insert(gateway.to_owned()) {
            return;
        }
        let monitor = self.clone();
        let gateway = gateway.to_owned();
        tokio::spawn(async move {
            let command = transition_command(
                &gateway,
                monitor.cluster.node_id,
                GatewayLiveness::Down,
                to,
                reason.clone(),
                source,
                None,
            );
            match propose(&monitor.cluster, &monitor.views, command).await {
                Ok(_) => {
                    tracing::info!(%gateway, to = to.as_str(), %reason, "a down gateway's recovery written")
                }
                Err(error) => {
                    tracing::debug!(%gateway, %error, "a down gateway's recovery not written")
                }
            }
            if let Ok(mut recovering) = monitor.recovering.lock() {
                recovering.remove(&gateway);
            }
        });
    }

    /// Counts one leg report in the gateway's breaker; proposes the opening when it trips.
    /// A report on a gateway a breaker holds down (opened on any node) is a half-open trial's
    /// ([`HealthMonitor::record_trial`]).
    pub fn record_leg(self: &Arc<Self>, gateway: &str, outcome: LegOutcome) {
        let view = self.views.current();
        let state = &view.applied.state;
        if state.routing().gateway(gateway).is_none() {
            return;
        }
        let table = state.health();
        let replicated = table.gateway(gateway).cloned().unwrap_or_default();
        if replicated.state == GatewayLiveness::Down
            && replicated.source == TransitionSource::Breaker
        {
            self.record_trial(gateway, outcome, table, &replicated);
            return;
        }
        let policy = &table.policy().breaker;
        let Ok(mut breakers) = self.breakers.lock() else {
            return;
        };
        let slot = breakers
            .entry(gateway.to_owned())
            .or_insert_with(|| BreakerSlot::new(policy.clone()));
        if slot.policy != *policy {
            *slot = BreakerSlot::new(policy.clone());
        }
        if slot.breaker.is_open() {
            let closed_since = replicated.state == GatewayLiveness::Up
                && replicated.changed_index > slot.opened_index;
            if slot.proposing || !closed_since {
                return;
            }
            *slot = BreakerSlot::new(policy.clone());
        }
        if replicated.state == GatewayLiveness::Down {
            return;
        }
        let Some(opened) = slot.breaker.record_leg(outcome, now_ms()) else {
            return;
        };
        slot.opened_index = replicated.changed_index;
        slot.proposing = true;
        let monitor = self.clone();
        let gateway = gateway.to_owned();
        tokio::spawn(async move {
            let command = transition_command(
                &gateway,
                monitor.cluster.node_id,
                GatewayLiveness::Up,
                GatewayLiveness::Down,
                opened.reason,
                TransitionSource::Breaker,
                None,
            );
            let result = propose(&monitor.cluster, &monitor.views, command).await;
            let Ok(mut breakers) = monitor.breakers.lock() else {
                return;
            };
            let Some(slot) = breakers.get_mut(&gateway) else {
                return;
            };
            slot.proposing = false;
            match result {
                Ok(index) => slot.opened_index = index,
                // Someone else took it down first: stay open until it is back up.
                Err(ClusterError::Domain(Error::FailedPrecondition(_))) => {
                    let view = monitor.views.current();
                    slot.opened_index = view
                        .applied
                        .state
                        .health()
                        .gateway(&gateway)
                        .map_or(0, |state| state.changed_index);
                }
                Err(error) => {
                    tracing::warn!(%gateway, %error, "can't write the breaker opening; it will trip again on the next failures");
                    *slot = BreakerSlot::new(slot.policy.clone());
                }
            }
        });
    }

    /// Judges a leg report on a gateway held down by a breaker, as the breaker's half-open
    /// state: a leg showing the gateway working, once `trial_after_ms` has passed since the
    /// opening, proposes Down→Up. The report may come from a sampled trial, a degraded answer
    /// or a leg placed before the opening and answered only now: each shows the gateway
    /// answering now. The breaker is rebuilt from the replicated opening, so any node that
    /// receives the report can close a breaker another node opened.
    fn record_trial(
        self: &Arc<Self>,
        gateway: &str,
        outcome: LegOutcome,
        table: &HealthTable,
        replicated: &GatewayState,
    ) {
        let now = now_ms();
        let policy = table.policy();
        let mut breaker = CircuitBreaker::opened_at(policy.breaker.clone(), replicated.since_ms);
        let Some(closed) = breaker.record_trial(outcome, now) else {
            return;
        };
        // The budget the prober's limiter would use, from the replicated history: closings by
        // trials count against a flapping gateway like any other transition.
        let mut limiter = TransitionLimiter::with_history(
            policy.limiter.clone(),
            GatewayLiveness::Down,
            &replicated.recent_ms,
            None,
            now,
        );
        let (transition, source) = match limiter.admit(closed) {
            LimiterDecision::Publish(transition) => (transition, TransitionSource::Breaker),
            LimiterDecision::PublishFlapping(transition) => {
                (transition, TransitionSource::Flapping)
            }
            LimiterDecision::Suppress => return,
        };
        self.propose_recovery(gateway, transition.to, transition.reason, source);
    }

    /// The live results of the gateways this node probes.
    pub fn probe_reports(&self) -> Vec<ProbeReport> {
        let Ok(probes) = self.probes.lock() else {
            return Vec::new();
        };
        probes
            .values()
            .filter_map(|task| task.report.lock().ok().map(|report| report.clone()))
            .collect()
    }

    /// What `ListHealth` shows of `state`: a line per gateway (only `carrier`'s when given)
    /// and, for the whole cluster, per declared edge, each naming the node that probes it (as
    /// this node sees the live voters) and carrying that prober's live results.
    pub async fn health_lines(&self, state: &State, carrier: Option<&str>) -> HealthLines {
        let routing = state.routing();
        let table = state.health();
        let live = self.liveness.live_voters();
        let prober = |name: &str| assign(name, &live).unwrap_or(0);
        let mut lines: Vec<proto::GatewayHealth> = routing
            .gateways()
            .filter(|gateway| carrier.is_none_or(|carrier| gateway.carrier == carrier))
            .map(|gateway| {
                let mut line = convert::gateway_health(
                    gateway,
                    table.gateway(&gateway.name),
                    routing.is_drained(&gateway.name),
                );
                if gateway.enabled {
                    line.prober_node = prober(&gateway.name);
                }
                line
            })
            .collect();
        if carrier.is_none() {
            for edge in state.inbound().edges() {
                let mut line = convert::edge_health(edge, table.gateway(&edge.name));
                if edge.enabled {
                    line.prober_node = prober(&edge.name);
                }
                lines.push(line);
            }
        }
        let probers: BTreeSet<NodeId> = lines
            .iter()
            .filter(|line| !line.probing_disabled && line.prober_node != 0)
            .map(|line| line.prober_node)
            .collect();
        let (reports, unreachable_probers) = self.gather_reports(&probers).await;
        for line in &mut lines {
            if let Some(report) = reports.get(&line.gateway) {
                line.last_round_trip_ms = report.last_round_trip_ms;
                line.last_probe_ms = report.last_probe_ms;
                line.last_result = report.last_result.clone();
                line.consecutive_failures = report.consecutive_failures;
                line.consecutive_successes = report.consecutive_successes;
            }
        }
        HealthLines {
            lines,
            unreachable_probers,
        }
    }

    /// Live probe results from every prober node in `probers`: this node's from memory,
    /// others' through the peer listener. Returns the reports and the probers that did not
    /// answer, with why.
    async fn gather_reports(
        &self,
        probers: &BTreeSet<NodeId>,
    ) -> (HashMap<String, ProbeReport>, Vec<String>) {
        let mut reports: HashMap<String, ProbeReport> = HashMap::new();
        let mut unreachable = Vec::new();
        let metrics = self.cluster.metrics();
        let membership = metrics.membership_config.membership();
        let mut asks = tokio::task::JoinSet::new();
        for node in probers {
            if *node == self.cluster.node_id {
                for report in self.probe_reports() {
                    reports.insert(report.gateway.clone(), report);
                }
                continue;
            }
            let Some(peer) = membership.get_node(node) else {
                unreachable.push(format!("node {node}: not a member"));
                continue;
            };
            let node = *node;
            let addr = peer.peer_addr.clone();
            let cluster_name = self.cluster.cluster_name.clone();
            let dialer = self.cluster.dialer.clone();
            asks.spawn(async move {
                let answer: Result<Vec<ProbeReport>, String> = match dialer.client(node, &addr) {
                    Ok(mut client) => network::call(
                        &mut client,
                        &cluster_name,
                        PeerCall::ProbeStatus,
                        &(),
                        PROBE_STATUS_TIMEOUT,
                    )
                    .await
                    .map_err(|status| status.message().to_owned()),
                    Err(error) => Err(error.to_string()),
                };
                (node, addr, answer)
            });
        }
        while let Some(joined) = asks.join_next().await {
            match joined {
                Ok((_, _, Ok(answer))) => {
                    for report in answer {
                        reports.insert(report.gateway.clone(), report);
                    }
                }
                Ok((node, addr, Err(error))) => {
                    unreachable.push(format!("node {node} ({addr}): {error}"));
                }
                Err(error) => unreachable.push(format!("a probe status request failed: {error}")),
            }
        }
        unreachable.sort();
        (reports, unreachable)
    }
}

/// Something the health checks probe: a carrier gateway or a declared edge proxy. They share
/// one namespace, so the health table is keyed by name alone.
struct ProbeTarget<'a> {
    name: &'a str,
    enabled: bool,
    probe: &'a ProbeOverrides,
}

fn probe_targets(state: &State) -> impl Iterator<Item = ProbeTarget<'_>> {
    let gateways = state.routing().gateways().map(|gateway| ProbeTarget {
        name: &gateway.name,
        enabled: gateway.enabled,
        probe: &gateway.probe,
    });
    let edges = state.inbound().edges().map(|edge| ProbeTarget {
        name: &edge.name,
        enabled: edge.enabled,
        probe: &edge.probe,
    });
    gateways.chain(edges)
}

/// The address and probe overrides of the gateway or edge called `name`.
fn probe_target(state: &State, name: &str) -> Option<(SipUri, ProbeOverrides)> {
    if let Some(gateway) = state.routing().gateway(name) {
        return Some((gateway.uri.clone(), gateway.probe.clone()));
    }
    state
        .inbound()
        .edge(name)
        .map(|edge| (edge.uri.clone(), edge.probe.clone()))
}

fn transition_command(
    gateway: &str,
    observer_node: NodeId,
    from: GatewayLiveness,
    to: GatewayLiveness,
    reason: String,
    source: TransitionSource,
    round_trip_ms: Option<u64>,
) -> Command {
    let mut reason = reason;
    if reason.len() > trunkline_core::health::table::MAX_REASON_BYTES {
        let mut end = trunkline_core::health::table::MAX_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    Command::Health(HealthCommand::Transition {
        gateway: gateway.to_owned(),
        observer_node,
        from,
        to,
        reason,
        source,
        round_trip_ms,
    })
}

/// Writes a transition and waits (briefly) until this node's routing view includes it, so
/// the proposer's next look at the replicated state sees its own change.
async fn propose(
    cluster: &Cluster,
    views: &RoutingViews,
    command: Command,
) -> Result<u64, ClusterError> {
    let written = tokio::time::timeout(PROPOSE_TIMEOUT, cluster.write(command))
        .await
        .map_err(|_| {
            ClusterError::DeadlineExceeded(format!(
                "the transition was not written within {PROPOSE_TIMEOUT:?}"
            ))
        })??;
    let (_, index) = written;
    let _ = views.at_least(index, PROPOSE_TIMEOUT).await;
    Ok(index)
}

/// The probe spacing while an up gateway has failed its last probe: the interval divided by
/// the down threshold, so a dead gateway is down after about one interval plus the retries
/// (never sooner than the probe timeout, never later than the interval).
fn confirm_interval(policy: &ProbePolicy) -> Duration {
    let spacing = (policy.interval_ms / u64::from(policy.down_after.max(1)))
        .max(policy.timeout_ms)
        .min(policy.interval_ms);
    Duration::from_millis(spacing)
}

fn describe(result: &ProbeResult) -> String {
    match result {
        ProbeResult::Reply { status_code, .. } => status_code.to_string(),
        ProbeResult::Timeout => "timeout".to_owned(),
        ProbeResult::TransportError { kind } => kind.to_string(),
    }
}

/// The models of one gateway on its prober, built from the replicated state.
struct Keeper {
    tracker: ProbeTracker,
    limiter: TransitionLimiter,
    limiter_policy: TransitionLimiterPolicy,
    /// Set while a breaker opening waits for the probes to close it.
    breaker: Option<CircuitBreaker>,
    /// The replicated `changed_index` this keeper has taken into account.
    known_index: u64,
    /// A transition decided here and not yet in the log.
    pending: Option<(Transition, TransitionSource)>,
    /// The last probe's round trip when it was a reply; `None` after a timeout or a transport
    /// error, so a down transition does not show an old round trip.
    last_round_trip_ms: Option<u64>,
}

impl Keeper {
    fn adopt(
        probe: &ProbePolicy,
        table: &HealthTable,
        replicated: &GatewayState,
        now_ms: u64,
    ) -> Keeper {
        let policy = table.policy();
        let flapping_since = (replicated.source == TransitionSource::Flapping)
            .then(|| replicated.recent_ms.last().copied())
            .flatten();
        Keeper {
            tracker: ProbeTracker::new(probe.clone(), replicated.state, now_ms),
            limiter: TransitionLimiter::with_history(
                policy.limiter.clone(),
                replicated.state,
                &replicated.recent_ms,
                flapping_since,
                now_ms,
            ),
            limiter_policy: policy.limiter.clone(),
            breaker: (replicated.state == GatewayLiveness::Down
                && replicated.source == TransitionSource::Breaker)
                .then(|| CircuitBreaker::opened_at(policy.breaker.clone(), replicated.since_ms)),
            known_index: replicated.changed_index,
            pending: None,
            last_round_trip_ms: None,
        }
    }

    /// Feeds one probe result; a transition to publish becomes `pending`.
    fn record(&mut self, result: ProbeResult, now_ms: u64) {
        self.last_round_trip_ms = match result {
            ProbeResult::Reply { round_trip_ms, .. } => Some(round_trip_ms),
            ProbeResult::Timeout | ProbeResult::TransportError { .. } => None,
        };
        let transition = self.tracker.record(result, now_ms);
        let alive = self.tracker.consecutive_successes() > 0;
        let candidate = match &mut self.breaker {
            // An open breaker: the probes close it, after the cool-down.
            Some(breaker) => breaker.record_probe(alive, now_ms).map(|closed| {
                self.breaker = None;
                self.tracker =
                    ProbeTracker::new(self.tracker.policy().clone(), GatewayLiveness::Up, now_ms);
                (closed, TransitionSource::Breaker)
            }),
            None => transition.map(|transition| (transition, TransitionSource::Probe)),
        };
        let decided = match candidate {
            Some((transition, source)) => match self.limiter.admit(transition) {
                LimiterDecision::Publish(transition) => Some((transition, source)),
                LimiterDecision::PublishFlapping(transition) => {
                    Some((transition, TransitionSource::Flapping))
                }
                LimiterDecision::Suppress => None,
            },
            None => self
                .limiter
                .poll(self.tracker.state(), now_ms)
                .map(|transition| (transition, TransitionSource::Probe)),
        };
        if decided.is_some() {
            self.pending = decided;
        }
    }
}

/// The probe loop of one gateway on its prober node.
struct GatewayProber {
    name: String,
    cluster: Arc<Cluster>,
    views: Arc<RoutingViews>,
    prober: Arc<SipProber>,
    report: Arc<Mutex<ProbeReport>>,
    keeper: Option<Keeper>,
}

impl GatewayProber {
    async fn run(mut self) {
        let mut next = Instant::now();
        loop {
            tokio::time::sleep_until(next).await;
            let view = self.views.current();
            let state = &view.applied.state;
            let Some((uri, probe)) = probe_target(state, &self.name) else {
                return;
            };
            let table = state.health().clone();
            let probe_policy = probe.effective(&table.policy().probe);
            let started = Instant::now();
            next = started + Duration::from_millis(probe_policy.interval_ms);
            self.sync(&probe_policy, &table);

            let result = self
                .prober
                .probe(&uri, Duration::from_millis(probe_policy.timeout_ms))
                .instrument(crate::span!("probe", gateway = %self.name))
                .await;
            self.cluster.meters.probe(&result);
            let now = now_ms();
            let Some(keeper) = self.keeper.as_mut() else {
                continue;
            };
            keeper.record(result, now);
            if keeper.tracker.state() == GatewayLiveness::Up
                && keeper.tracker.consecutive_failures() > 0
            {
                // Suspected: confirm quickly instead of waiting whole intervals.
                next = started + confirm_interval(&probe_policy);
            }
            if let Ok(mut report) = self.report.lock() {
                report.last_probe_ms = now;
                report.last_result = describe(&result);
                if let ProbeResult::Reply { round_trip_ms, .. } = result {
                    report.last_round_trip_ms = Some(round_trip_ms);
                }
                report.consecutive_failures = keeper.tracker.consecutive_failures();
                report.consecutive_successes = keeper.tracker.consecutive_successes();
            }
            self.publish().await;
        }
    }

    /// Takes in changes others made (a breaker opening, an earlier prober's transitions, a
    /// policy change) before the next probe.
    fn sync(&mut self, probe_policy: &ProbePolicy, table: &HealthTable) {
        let now = now_ms();
        let replicated = table.gateway(&self.name).cloned().unwrap_or_default();
        let adopt = match &self.keeper {
            None => true,
            Some(keeper) => {
                replicated.changed_index > keeper.known_index
                    || keeper.limiter_policy != table.policy().limiter
            }
        };
        if adopt {
            if let Some(keeper) = &self.keeper {
                if keeper.known_index != 0 || replicated.changed_index != 0 {
                    tracing::debug!(gateway = %self.name, state = replicated.state.as_str(), "taking in the replicated health");
                }
            }
            self.keeper = Some(Keeper::adopt(probe_policy, table, &replicated, now));
            return;
        }
        if let Some(keeper) = self.keeper.as_mut() {
            if keeper.tracker.policy() != probe_policy {
                keeper.tracker =
                    ProbeTracker::new(probe_policy.clone(), keeper.tracker.state(), now);
            }
        }
    }

    /// Proposes the pending transition, if the log does not already say it.
    async fn publish(&mut self) {
        let Some(keeper) = self.keeper.as_mut() else {
            return;
        };
        let Some((transition, source)) = keeper.pending.clone() else {
            return;
        };
        let view = self.views.current();
        let replicated = view
            .applied
            .state
            .health()
            .gateway(&self.name)
            .cloned()
            .unwrap_or_default();
        let restates_flapping =
            source == TransitionSource::Flapping && replicated.source != TransitionSource::Flapping;
        if replicated.state == transition.to && !restates_flapping {
            keeper.pending = None;
            return;
        }
        let command = transition_command(
            &self.name,
            self.cluster.node_id,
            replicated.state,
            transition.to,
            transition.reason.clone(),
            source,
            keeper.last_round_trip_ms,
        );
        match propose(&self.cluster, &self.views, command).await {
            Ok(index) => {
                tracing::info!(gateway = %self.name, to = transition.to.as_str(), reason = %transition.reason, "health transition written");
                keeper.known_index = index;
                keeper.pending = None;
            }
            Err(ClusterError::Domain(error)) => {
                // Stale (someone changed it first) or the gateway is gone: start again from
                // what the log says.
                tracing::debug!(gateway = %self.name, %error, "transition refused; taking in the log's state");
                self.keeper = None;
            }
            Err(error) => {
                tracing::warn!(gateway = %self.name, %error, "can't write a health transition; retrying after the next probe");
            }
        }
    }
}
