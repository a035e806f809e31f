//! Workloads that drive a cluster while the nemesis works, recording every request into the
//! history ([`Recorder`]): invoke just before sending, complete as soon as the answer (or the
//! error) is in, with the node asked.
//!
//! - the settings register: linearizable reads, writes, deletes and compare-and-sets on a
//!   small set of keys, each through a node picked at random (which forwards writes to the
//!   leader). Keys rotate: after [`RegisterOptions::operations_per_key`] operations the
//!   workload moves to fresh keys, which keeps each key's history small enough for the
//!   linearizability search (as Jepsen's independent keys do);
//! - route lookups on every node: `RouteOutbound` against a tenant, carriers and decks the
//!   harness sets up first ([`setup_routing`]), answered from each node's own state;
//! - the leader-kill failover measurement ([`leader_kill_trial`]): kill the leader, time
//!   until a write succeeds through the survivors, and count lookups that failed meanwhile
//!   through a client that fails over between nodes;
//! - the final reads the lost-write and convergence checkers judge ([`final_states`]).
//!
//! Errors are classified in one place ([`classify`]): `Fail` only when the request certainly
//! had no effect, `Unknown` otherwise, so the checkers never blame the cluster for a write the
//! client gave up on.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::{sync::watch, task::JoinSet};
use tonic::Code;
use trunkline_client::{
    proto::{
        self,
        metadata::{RETRY_HEADER, RETRY_NOT_APPLIED},
    },
    Client, ClientError, Retry,
};

use super::{
    cluster::{Cluster, LEADER_TIMEOUT},
    nemesis::{Nemesis, CATCH_UP_TIMEOUT},
    HarnessError, Result,
};
use crate::{
    checker::{
        convergence::{FinalNodeState, SettingEntry},
        lost_writes::FinalRead,
    },
    history::{
        Consistency, ErrorKind, NodeId, OpKind, Outcome, ProcessId, ReadState, Recorder, Returned,
    },
};

/// Deadline of one register operation. Longer than the node's own write timeout (5 s), so
/// the node's answer, not the client's impatience, decides most outcomes.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(6);
/// Deadline of one route lookup: answered from local state, so a slow one is a failure.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two lookups of one node's lookup client.
pub const LOOKUP_INTERVAL: Duration = Duration::from_millis(20);
/// How long workers get to finish their operation in flight once asked to stop; an
/// operation still running then is left `Unknown` (incomplete).
pub const STOP_GRACE: Duration = Duration::from_secs(8);
/// Process ids of lookup workers start here (register processes count up from 0).
pub const LOOKUP_PROCESS_BASE: ProcessId = 1_000_000;
/// A register process that saw an `Unknown` outcome continues as a new process (its old
/// operation may still be in flight, as in Jepsen); new ids are this far apart.
pub const PROCESS_STRIDE: ProcessId = 1_000;
/// The tenant the route lookups use.
pub const TENANT: &str = "chaos";
/// The tenant of the admission workers: the lookups' tenant, limited to
/// [`CONCURRENT_LIMIT`] calls at once.
pub const LIMITED_TENANT: &str = "chaos-limited";
/// The limited tenant's concurrent-call limit: fewer than the admission workers, so they
/// contend for it.
pub const CONCURRENT_LIMIT: u64 = 2;
/// Process ids of admission workers start here.
pub const ADMISSION_PROCESS_BASE: ProcessId = 2_000_000;
/// Deadline of one admission or call end: a Raft write on the node's side (3 s at most).
pub const ADMISSION_TIMEOUT: Duration = Duration::from_secs(4);
/// How long an admitted call is held before its end is reported.
pub const CALL_HOLD: Duration = Duration::from_millis(150);
/// The limited tenant's longest call: a call whose admission answer was lost (the node died
/// after applying it) holds its slot this long plus a minute's grace.
pub const LIMITED_MAX_DURATION_MS: u64 = 10_000;
/// Times an admission whose answer was lost is asked again with the same Call-ID
/// (idempotent), so the worker learns its grant and can end it.
pub const ADMISSION_RETRIES: usize = 2;
/// Numbers looked up, as dialled (NANP and international).
pub const DESTINATIONS: &[&str] = &["+14155550100", "2125550199", "011442071234567"];
/// Prefix of the settings keys of the register workload.
pub const REGISTER_PREFIX: &str = "reg/";
/// Prefix of the settings keys the failover probes write.
pub const FAILOVER_PREFIX: &str = "failover/";
/// Pause between two failover probe writes (several are in flight at once).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// Deadline of one failover probe write.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Most failover probe writes in flight at once.
pub const MAX_PROBES_IN_FLIGHT: usize = 64;
/// How long a leader-kill trial waits for a write to succeed before calling it failed.
pub const FAILOVER_DEADLINE: Duration = Duration::from_secs(20);
/// Lookups keep running this long after the first successful write, so failures right
/// after the election are counted too.
pub const FAILOVER_LOOKUP_TAIL: Duration = Duration::from_millis(500);
/// Deadline of one lookup through the failover client: room to give up connecting to a
/// dead node (the client's connect timeout) and ask the next.
pub const FAILOVER_LOOKUP_TIMEOUT: Duration =
    trunkline_client::CONNECT_TIMEOUT.saturating_add(LOOKUP_TIMEOUT);
/// Pause between two lookups of the failover lookup client.
pub const FAILOVER_LOOKUP_INTERVAL: Duration = Duration::from_millis(5);
/// Most settings read back from one node at the end ([`final_states`]); the node's own cap
/// on a list.
pub const MAX_FINAL_SETTINGS: u32 = 1_000;

/// What a request's failure tells about its effect. `Fail`-worthy kinds are the ones where
/// the request certainly did nothing (see [`ErrorKind::certainly_not_applied`]).
pub fn classify(error: &ClientError) -> (ErrorKind, String) {
    let detail = error.to_string();
    let kind = match error {
        ClientError::NoEndpoints | ClientError::BadEndpoint { .. } | ClientError::BadToken => {
            ErrorKind::InvalidArgument
        }
        // No node could even be connected to (the client tries the next node only when the
        // request was not sent, or the node said it was not applied).
        ClientError::Unreachable { .. } => ErrorKind::ConnectFailed,
        ClientError::Status { status, .. } => match status.code() {
            Code::Unavailable => {
                let not_applied = status
                    .metadata()
                    .get(RETRY_HEADER)
                    .and_then(|value| value.to_str().ok())
                    == Some(RETRY_NOT_APPLIED);
                if not_applied {
                    ErrorKind::NotApplied
                } else if never_connected(status) {
                    ErrorKind::ConnectFailed
                } else {
                    ErrorKind::Unavailable
                }
            }
            Code::DeadlineExceeded | Code::Cancelled => ErrorKind::Timeout,
            Code::InvalidArgument => ErrorKind::InvalidArgument,
            Code::FailedPrecondition => ErrorKind::FailedPrecondition,
            _ => ErrorKind::Other,
        },
    };
    (kind, detail)
}

/// A transport error raised while connecting: the request never left this process.
fn never_connected(status: &tonic::Status) -> bool {
    use std::error::Error;
    let mut chain = String::new();
    let mut source = status.source();
    while let Some(cause) = source {
        chain.push_str(&cause.to_string().to_lowercase());
        chain.push_str(": ");
        source = cause.source();
    }
    chain.contains("tcp connect error") || chain.contains("connection refused")
}

fn read_state(state: Option<proto::ReadState>) -> Option<ReadState> {
    state.map(|state| ReadState {
        node_id: state.node_id,
        applied_index: state.applied_index,
        leader_id: state.leader_id,
        staleness_ms: state.staleness_ms,
    })
}

/// Sends one recorded request: `call` gets the client; the answer is turned into an
/// outcome by `outcome`. Enforces [`OPERATION_TIMEOUT`] on top of the client's own.
async fn recorded<T, Fut>(
    recorder: &Recorder,
    process: ProcessId,
    node: NodeId,
    kind: OpKind,
    timeout: Duration,
    call: Fut,
    outcome: impl FnOnce(T) -> Outcome,
) -> Outcome
where
    Fut: std::future::Future<Output = std::result::Result<T, ClientError>>,
{
    let handle = recorder.invoke(process, node, kind);
    let result = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(answer)) => outcome(answer),
        Ok(Err(error)) => {
            let (kind, detail) = classify(&error);
            Outcome::from_error(kind, detail)
        }
        Err(_) => Outcome::from_error(ErrorKind::Timeout, format!("no answer within {timeout:?}")),
    };
    recorder.complete(handle, result.clone());
    result
}

/// A linearizable read of `key` through `client`.
pub async fn read(
    client: &Client,
    recorder: &Recorder,
    process: ProcessId,
    node: NodeId,
    key: &str,
) -> Outcome {
    let request = proto::GetSettingRequest {
        key: key.to_owned(),
        consistency: Some(proto::ReadConsistency {
            linearizable: true,
            ..Default::default()
        }),
    };
    let kind = OpKind::Read {
        key: key.to_owned(),
        consistency: Consistency::Linearizable,
    };
    let call = client.admin(Retry::Idempotent, |mut admin| {
        let request = request.clone();
        async move { admin.get_setting(request).await }
    });
    recorded(
        recorder,
        process,
        node,
        kind,
        OPERATION_TIMEOUT,
        call,
        |answer| Outcome::Ok {
            returned: Returned::Read {
                modify_index: answer.setting.as_ref().map(|s| s.modify_index),
                value: answer.setting.map(|setting| setting.value),
                read_state: read_state(answer.read_state),
            },
        },
    )
    .await
}

fn written(answer: proto::SettingWriteResponse) -> Outcome {
    Outcome::Ok {
        returned: Returned::Write {
            succeeded: answer.succeeded,
            applied_index: Some(answer.applied_index),
        },
    }
}

/// Writes `value` to `key` through `client`.
pub async fn write(
    client: &Client,
    recorder: &Recorder,
    process: ProcessId,
    node: NodeId,
    key: &str,
    value: &str,
    timeout: Duration,
) -> Outcome {
    let request = proto::SetSettingRequest {
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let kind = OpKind::Write {
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let call = client.admin(Retry::NotSent, |mut admin| {
        let request = request.clone();
        async move { admin.set_setting(request).await }
    });
    recorded(recorder, process, node, kind, timeout, call, written).await
}

async fn delete(
    client: &Client,
    recorder: &Recorder,
    process: ProcessId,
    node: NodeId,
    key: &str,
) -> Outcome {
    let request = proto::DeleteSettingRequest {
        key: key.to_owned(),
    };
    let kind = OpKind::Delete {
        key: key.to_owned(),
    };
    let call = client.admin(Retry::NotSent, |mut admin| {
        let request = request.clone();
        async move { admin.delete_setting(request).await }
    });
    recorded(
        recorder,
        process,
        node,
        kind,
        OPERATION_TIMEOUT,
        call,
        written,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn compare_and_set(
    client: &Client,
    recorder: &Recorder,
    process: ProcessId,
    node: NodeId,
    key: &str,
    expected: Option<String>,
    new: Option<String>,
) -> Outcome {
    let request = proto::CompareAndSetSettingRequest {
        key: key.to_owned(),
        expected: expected.clone(),
        value: new.clone(),
    };
    let kind = OpKind::Cas {
        key: key.to_owned(),
        expected,
        new,
    };
    let call = client.admin(Retry::NotSent, |mut admin| {
        let request = request.clone();
        async move { admin.compare_and_set_setting(request).await }
    });
    recorded(
        recorder,
        process,
        node,
        kind,
        OPERATION_TIMEOUT,
        call,
        written,
    )
    .await
}

/// One route lookup of `destination` through `client`.
pub async fn lookup(
    client: &Client,
    recorder: Option<(&Recorder, ProcessId, NodeId)>,
    call_id: &str,
    destination: &str,
    timeout: Duration,
) -> Outcome {
    let request = proto::RouteOutboundRequest {
        tenant: TENANT.to_owned(),
        call_id: call_id.to_owned(),
        from: "+14155550000".to_owned(),
        to: destination.to_owned(),
        media: proto::Media::Voice.into(),
        explain: false,
        min_applied_index: 0,
        ..Default::default()
    };
    let call = client.route(Retry::Idempotent, |mut route| {
        let request = request.clone();
        async move { route.route_outbound(request).await }
    });
    let outcome = |answer: proto::RouteOutboundResponse| {
        if answer.legs.is_empty() {
            // Every node has the fixture before lookups start: an answer without legs is
            // wrong, not stale.
            let why = answer.refusal.map(|r| r.message).unwrap_or_default();
            Outcome::from_error(ErrorKind::Other, format!("no legs: {why}"))
        } else {
            Outcome::Ok {
                returned: Returned::Lookup {
                    read_state: read_state(answer.read_state),
                },
            }
        }
    };
    let kind = OpKind::RouteLookup {
        destination: destination.to_owned(),
    };
    match recorder {
        Some((recorder, process, node)) => {
            recorded(recorder, process, node, kind, timeout, call, outcome).await
        }
        None => match tokio::time::timeout(timeout, call).await {
            Ok(Ok(answer)) => outcome(answer),
            Ok(Err(error)) => {
                let (kind, detail) = classify(&error);
                Outcome::from_error(kind, detail)
            }
            Err(_) => Outcome::from_error(ErrorKind::Timeout, "lookup timed out"),
        },
    }
}

/// Puts the tenant, two carriers with gateways and their decks the lookups route over, and
/// waits until every member has applied them.
pub async fn setup_routing(cluster: &Cluster) -> Result<()> {
    let client = cluster.failover_client(&cluster.up_members(), OPERATION_TIMEOUT)?;
    let fail = |what: &str| {
        let what = what.to_owned();
        move |error| HarnessError::client(format!("routing setup: {what}"), error)
    };
    for (carrier, rates) in [
        (
            "alpha",
            vec![("1", 9_000u64), ("1415", 7_000), ("44", 12_000)],
        ),
        (
            "beta",
            vec![("1", 8_000u64), ("1212", 6_500), ("4420", 9_500)],
        ),
    ] {
        let request = proto::PutCarrierRequest {
            carrier: Some(proto::Carrier {
                name: carrier.to_owned(),
                translation: Some(proto::Translation {
                    plus: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: proto::PutMode::Unspecified.into(),
        };
        client
            .admin(Retry::NotSent, |mut admin| {
                let request = request.clone();
                async move { admin.put_carrier(request).await }
            })
            .await
            .map_err(fail("carrier"))?;
        for (index, priority) in [(1, 10), (2, 20)] {
            let request = proto::PutGatewayRequest {
                gateway: Some(proto::Gateway {
                    name: format!("{carrier}-{index}"),
                    carrier: carrier.to_owned(),
                    uri: format!("sip:{carrier}-{index}.example.net;transport=udp"),
                    priority,
                    weight: 10,
                    // Nobody answers at example.net: unprobed, they stay up.
                    probe: Some(proto::ProbeOverrides {
                        disabled: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                mode: proto::PutMode::Unspecified.into(),
            };
            client
                .admin(Retry::NotSent, |mut admin| {
                    let request = request.clone();
                    async move { admin.put_gateway(request).await }
                })
                .await
                .map_err(fail("gateway"))?;
        }
        let import_id = format!("chaos-{carrier}-{}", rand::rng().random::<u64>());
        let owner = format!("{:032x}", rand::rng().random::<u128>());
        let stage = proto::StageRatesRequest {
            carrier: carrier.to_owned(),
            import_id: import_id.clone(),
            owner: owner.clone(),
            rates: rates
                .iter()
                .map(|(prefix, rate)| proto::Rate {
                    prefix: (*prefix).to_owned(),
                    rate_micros_per_minute: *rate,
                    ..Default::default()
                })
                .collect(),
            first_line: 2,
        };
        client
            .admin(Retry::NotSent, |mut admin| {
                let stage = stage.clone();
                async move { admin.stage_rates(stage).await }
            })
            .await
            .map_err(fail("stage rates"))?;
        let commit = proto::CommitRatesRequest {
            carrier: carrier.to_owned(),
            import_id,
            owner: owner.clone(),
            replace: true,
            expected_rows: rates.len() as u64,
        };
        client
            .admin(Retry::NotSent, |mut admin| {
                let commit = commit.clone();
                async move { admin.commit_rates(commit).await }
            })
            .await
            .map_err(fail("commit rates"))?;
    }
    let request = proto::PutTenantRequest {
        tenant: Some(proto::Tenant {
            name: TENANT.to_owned(),
            ..Default::default()
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_tenant(request).await }
        })
        .await
        .map_err(fail("tenant"))?;
    let request = proto::PutTenantRequest {
        tenant: Some(proto::Tenant {
            name: LIMITED_TENANT.to_owned(),
            limits: Some(proto::TenantLimits {
                tenant: Some(proto::UsageLimits {
                    concurrent_calls: Some(CONCURRENT_LIMIT as u32),
                    ..Default::default()
                }),
                max_duration_ms: LIMITED_MAX_DURATION_MS,
                max_international_duration_ms: LIMITED_MAX_DURATION_MS,
                max_premium_duration_ms: LIMITED_MAX_DURATION_MS,
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_tenant(request).await }
        })
        .await
        .map_err(fail("limited tenant"))?;
    cluster
        .wait_converged(super::cluster::CONVERGE_TIMEOUT)
        .await
        .map(drop)
}

/// The shape of the register workload.
#[derive(Clone, Debug)]
pub struct RegisterOptions {
    /// Concurrent clients.
    pub processes: usize,
    /// Keys in use at once.
    pub keys_in_flight: u64,
    /// Operations on a key before the workload moves to fresh keys.
    pub operations_per_key: u64,
    /// Pause after each operation of one process.
    pub think_time: Duration,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            processes: 6,
            keys_in_flight: 3,
            operations_per_key: 120,
            think_time: Duration::from_millis(10),
        }
    }
}

/// Counts of a workload's operations, by outcome.
#[derive(Clone, Debug, Default)]
pub struct WorkloadSummary {
    pub register_operations: u64,
    pub lookups: u64,
    pub duration: Duration,
}

/// Workers running against a cluster until [`Workload::stop`].
pub struct Workload {
    stop: watch::Sender<bool>,
    workers: JoinSet<(u64, u64)>,
    started: Instant,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl Workload {
    /// Starts the register workload (when `register` is given) and one lookup worker per
    /// member (when `lookups`; the routing fixture must be set up first).
    pub fn start(
        cluster: Arc<Cluster>,
        recorder: Recorder,
        register: Option<RegisterOptions>,
        lookups: bool,
    ) -> Workload {
        let (stop, stopped) = watch::channel(false);
        let mut workers = JoinSet::new();
        if let Some(options) = register {
            let shared = Arc::new(RegisterShared::default());
            for process in 0..options.processes {
                workers.spawn(register_worker(
                    cluster.clone(),
                    recorder.clone(),
                    options.clone(),
                    shared.clone(),
                    process as ProcessId,
                    stopped.clone(),
                ));
            }
        }
        if lookups {
            for node in cluster.members() {
                workers.spawn(lookup_worker(
                    cluster.clone(),
                    recorder.clone(),
                    node,
                    stopped.clone(),
                ));
                workers.spawn(admission_worker(
                    cluster.clone(),
                    recorder.clone(),
                    node,
                    stopped.clone(),
                ));
            }
        }
        Workload {
            stop,
            workers,
            started: Instant::now(),
        }
    }

    /// Asks every worker to stop after its operation in flight and waits (at most
    /// [`STOP_GRACE`]); workers still busy then are aborted, their operation left
    /// incomplete.
    pub async fn stop(mut self) -> WorkloadSummary {
        let _ = self.stop.send(true);
        let mut summary = WorkloadSummary {
            duration: self.started.elapsed(),
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        loop {
            match tokio::time::timeout_at(deadline, self.workers.join_next()).await {
                Ok(Some(Ok((register, lookups)))) => {
                    summary.register_operations += register;
                    summary.lookups += lookups;
                }
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    self.workers.abort_all();
                    break;
                }
            }
        }
        summary
    }
}

/// True once the workload was asked to stop, or its controller is gone (dropped without
/// [`Workload::stop`], e.g. when a test step failed): either way the worker ends.
fn should_stop(stopped: &watch::Receiver<bool>) -> bool {
    *stopped.borrow() || stopped.has_changed().is_err()
}

/// What the register processes share.
#[derive(Debug, Default)]
struct RegisterShared {
    /// Operations started so far, which picks the key generation.
    operations: AtomicU64,
    /// The last value some process saw per key, to make compare-and-sets that can succeed.
    last_seen: Mutex<HashMap<String, Option<String>>>,
}

impl RegisterShared {
    fn remember(&self, key: &str, value: Option<String>) {
        self.last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), value);
    }

    fn last_seen(&self, key: &str) -> Option<String> {
        self.last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .flatten()
    }
}

async fn register_worker(
    cluster: Arc<Cluster>,
    recorder: Recorder,
    options: RegisterOptions,
    shared: Arc<RegisterShared>,
    first_process: ProcessId,
    stopped: watch::Receiver<bool>,
) -> (u64, u64) {
    let mut process = first_process;
    let mut sequence = 0u64;
    while !should_stop(&stopped) {
        let count = shared.operations.fetch_add(1, Ordering::Relaxed);
        let keys_in_flight = options.keys_in_flight.max(1);
        let generation = count / (options.operations_per_key.max(1) * keys_in_flight);
        let members = cluster.members();
        if members.is_empty() {
            break;
        }
        let (slot, choice, node) = {
            let mut random = rand::rng();
            (
                random.random_range(0..keys_in_flight),
                random.random_range(0..100u32),
                members[random.random_range(0..members.len())],
            )
        };
        let key = format!("{REGISTER_PREFIX}{}", generation * keys_in_flight + slot);
        let Ok(client) = cluster.client(node) else {
            break;
        };
        sequence += 1;
        let value = format!("p{process}-{sequence}");
        let outcome = match choice {
            0..=39 => {
                let outcome = read(&client, &recorder, process, node, &key).await;
                if let Outcome::Ok {
                    returned: Returned::Read { value, .. },
                } = &outcome
                {
                    shared.remember(&key, value.clone());
                }
                outcome
            }
            40..=74 => {
                write(
                    &client,
                    &recorder,
                    process,
                    node,
                    &key,
                    &value,
                    OPERATION_TIMEOUT,
                )
                .await
            }
            75..=94 => {
                let expected = shared.last_seen(&key);
                compare_and_set(
                    &client,
                    &recorder,
                    process,
                    node,
                    &key,
                    expected,
                    Some(value),
                )
                .await
            }
            _ => delete(&client, &recorder, process, node, &key).await,
        };
        if matches!(outcome, Outcome::Unknown { .. }) {
            process += PROCESS_STRIDE;
        }
        tokio::time::sleep(options.think_time).await;
    }
    (sequence, 0)
}

async fn lookup_worker(
    cluster: Arc<Cluster>,
    recorder: Recorder,
    node: NodeId,
    stopped: watch::Receiver<bool>,
) -> (u64, u64) {
    let process = LOOKUP_PROCESS_BASE + node;
    let Ok(client) = cluster.client(node) else {
        return (0, 0);
    };
    let mut count = 0u64;
    while !should_stop(&stopped) {
        // A node taken out of the cluster is no longer looked up.
        if !cluster.node(node).is_ok_and(|entry| entry.member) {
            break;
        }
        // Skip nodes the nemesis has down; the checker would excuse the failures, but they
        // would only slow the worker down.
        if cluster.node(node).is_ok_and(|entry| entry.state.is_up()) {
            let destination = DESTINATIONS[(count as usize) % DESTINATIONS.len()];
            let call_id = format!("n{node}-{count}@chaos");
            let _ = lookup(
                &client,
                Some((&recorder, process, node)),
                &call_id,
                destination,
                LOOKUP_TIMEOUT,
            )
            .await;
            count += 1;
        }
        tokio::time::sleep(LOOKUP_INTERVAL).await;
    }
    (0, count)
}

/// Admits calls of the limited tenant through one node, holds each admitted call a moment
/// and reports its end, for the limits checker.
async fn admission_worker(
    cluster: Arc<Cluster>,
    recorder: Recorder,
    node: NodeId,
    stopped: watch::Receiver<bool>,
) -> (u64, u64) {
    let process = ADMISSION_PROCESS_BASE + node;
    let Ok(client) = cluster.client(node) else {
        return (0, 0);
    };
    let mut count = 0u64;
    while !should_stop(&stopped) {
        if !cluster.node(node).is_ok_and(|entry| entry.member) {
            break;
        }
        if cluster.node(node).is_ok_and(|entry| entry.state.is_up()) {
            let call = format!("n{node}-{count}@limited");
            let mut answer = admit(&client, &recorder, process, node, &call).await;
            for _ in 0..ADMISSION_RETRIES {
                let Admission::Lost = answer else { break };
                tokio::time::sleep(LOOKUP_INTERVAL).await;
                answer = admit(&client, &recorder, process, node, &call).await;
            }
            if let Admission::Admitted(token) = answer {
                tokio::time::sleep(CALL_HOLD).await;
                // An end is idempotent: a proxy reports it again, through any node, until
                // one answers.
                for attempt in 0..=ADMISSION_RETRIES {
                    let (to, via) = if attempt == 0 {
                        (node, client.clone())
                    } else {
                        match cluster
                            .up_members()
                            .into_iter()
                            .find(|other| *other != node)
                        {
                            Some(other) => match cluster.client(other) {
                                Ok(other_client) => (other, other_client),
                                Err(_) => break,
                            },
                            None => break,
                        }
                    };
                    if end_call(&via, &recorder, process, to, &call, token.clone()).await {
                        break;
                    }
                    tokio::time::sleep(LOOKUP_INTERVAL).await;
                }
            }
            count += 1;
        }
        tokio::time::sleep(LOOKUP_INTERVAL).await;
    }
    (0, count)
}

/// What one admission came to, as the worker sees it.
enum Admission {
    /// Admitted, with the call's route token.
    Admitted(String),
    /// Refused, by the limit or because the node could not check it (then withdrawn).
    Refused,
    /// No answer: it may have applied; asking again with the same Call-ID tells.
    Lost,
}

/// One admission of `call`.
async fn admit(
    client: &Client,
    recorder: &Recorder,
    process: ProcessId,
    node: NodeId,
    call: &str,
) -> Admission {
    let request = proto::RouteOutboundRequest {
        tenant: LIMITED_TENANT.to_owned(),
        call_id: call.to_owned(),
        to: DESTINATIONS[0].to_owned(),
        ..Default::default()
    };
    let answer = client.route(Retry::NotSent, |mut route| {
        let request = request.clone();
        async move { route.route_outbound(request).await }
    });
    let token = std::sync::Mutex::new(None);
    let outcome = |answer: proto::RouteOutboundResponse| match answer.refusal {
        None if !answer.legs.is_empty() => {
            if let Ok(mut slot) = token.lock() {
                *slot = Some(answer.route_token);
            }
            Outcome::Ok {
                returned: Returned::Admission { admitted: true },
            }
        }
        Some(refusal) if refusal.reason == proto::RefusalReason::LimitConcurrentCalls as i32 => {
            Outcome::Ok {
                returned: Returned::Admission { admitted: false },
            }
        }
        // No quorum (or no legs): the admission may or may not have applied.
        refusal => Outcome::from_error(
            ErrorKind::Other,
            refusal
                .map(|r| r.message)
                .unwrap_or_else(|| "no legs".to_owned()),
        ),
    };
    let kind = OpKind::Admit {
        call: call.to_owned(),
    };
    let outcome = recorded(
        recorder,
        process,
        node,
        kind,
        ADMISSION_TIMEOUT,
        answer,
        outcome,
    )
    .await;
    match (token.into_inner().ok().flatten(), outcome) {
        (Some(token), _) => Admission::Admitted(token),
        // A refusal the node answered: the limit, or limits it could not check (withdrawn).
        (None, Outcome::Ok { .. } | Outcome::Fail { .. }) => Admission::Refused,
        (
            None,
            Outcome::Unknown {
                error: ErrorKind::Other,
                ..
            },
        ) => Admission::Refused,
        (None, Outcome::Unknown { .. }) => Admission::Lost,
    }
}

async fn end_call(
    client: &Client,
    recorder: &Recorder,
    process: ProcessId,
    node: NodeId,
    call: &str,
    token: String,
) -> bool {
    let request = proto::ReportCallEndRequest {
        call_id: call.to_owned(),
        route_token: token,
        ..Default::default()
    };
    let ended = client.route(Retry::NotSent, |mut route| {
        let request = request.clone();
        async move { route.report_call_end(request).await }
    });
    let kind = OpKind::EndCall {
        call: call.to_owned(),
    };
    recorded(
        recorder,
        process,
        node,
        kind,
        ADMISSION_TIMEOUT,
        ended,
        |answer: proto::ReportCallEndResponse| Outcome::written(answer.released),
    )
    .await
    .is_ok()
}

/// One leader-kill trial's numbers.
#[derive(Clone, Debug)]
pub struct FailoverTrial {
    pub killed_leader: NodeId,
    /// From just before the kill until the first write through a survivor succeeded.
    pub write_back: Duration,
    /// The leader the survivors elected.
    pub new_leader: NodeId,
    /// Lookups through the failover client (the killed leader first in its list) from the
    /// kill until [`FAILOVER_LOOKUP_TAIL`] after the first successful write.
    pub lookups: u64,
    pub failed_lookups: u64,
    /// The slowest of those lookups, failed or not: failing over from a dead node costs up
    /// to the client's connect timeout.
    pub slowest_lookup: Duration,
    /// Why lookups failed, one line each (bounded).
    pub lookup_failures: Vec<String>,
}

/// Most lookup failure reasons kept per trial.
const MAX_FAILURE_REASONS: usize = 10;

/// Kills the leader, measures how long until a write succeeds again through the survivors
/// while a failover client keeps looking routes up, then restarts the old leader and waits
/// until it has caught up. The probe writes are recorded in the history (key
/// `failover/<trial>`), so the checkers judge them too.
pub async fn leader_kill_trial(
    nemesis: &mut Nemesis,
    recorder: &Recorder,
    trial: u64,
) -> Result<FailoverTrial> {
    let cluster = nemesis.cluster().clone();
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await?;
    let survivors: Vec<NodeId> = cluster
        .up_members()
        .into_iter()
        .filter(|node| *node != leader)
        .collect();
    // The lookup client starts at the leader, so it has to fail over when it dies.
    let mut order = vec![leader];
    order.extend(&survivors);
    let lookup_client = Arc::new(cluster.failover_client(&order, LOOKUP_TIMEOUT)?);
    let (stop_lookups, lookups_stopped) = watch::channel(false);
    let lookups = tokio::spawn(failover_lookups(lookup_client, lookups_stopped, trial));
    // Let the lookup client settle on the leader first.
    tokio::time::sleep(FAILOVER_LOOKUP_TAIL).await;

    let killed_at = Instant::now();
    nemesis.kill(leader).await?;
    let write_back = probe_writes(&cluster, recorder, &survivors, trial, killed_at).await;
    tokio::time::sleep(FAILOVER_LOOKUP_TAIL).await;
    let _ = stop_lookups.send(true);
    let (lookups, failed_lookups, lookup_failures, slowest_lookup) =
        lookups.await.unwrap_or_default();
    let write_back = write_back?;
    let new_leader = cluster.wait_for_leader(LEADER_TIMEOUT).await?;

    nemesis.restart(leader).await?;
    nemesis.wait_caught_up(leader, CATCH_UP_TIMEOUT).await?;
    Ok(FailoverTrial {
        killed_leader: leader,
        write_back,
        new_leader,
        lookups,
        failed_lookups,
        slowest_lookup,
        lookup_failures,
    })
}

/// Sends a write through the survivors every [`PROBE_INTERVAL`] (several in flight, each
/// with [`PROBE_TIMEOUT`]) until one succeeds; returns when it did, measured from
/// `killed_at`.
async fn probe_writes(
    cluster: &Cluster,
    recorder: &Recorder,
    survivors: &[NodeId],
    trial: u64,
    killed_at: Instant,
) -> Result<Duration> {
    let key = format!("{FAILOVER_PREFIX}{trial}");
    let mut probes = JoinSet::new();
    let mut sent = 0u64;
    let deadline = killed_at + FAILOVER_DEADLINE;
    let mut next_probe = tokio::time::Instant::now();
    loop {
        if Instant::now() > deadline {
            probes.abort_all();
            return Err(HarnessError::timeout(
                format!("a write through the survivors {survivors:?} after the leader was killed"),
                FAILOVER_DEADLINE,
                format!("{sent} probe writes sent"),
            ));
        }
        if probes.len() < MAX_PROBES_IN_FLIGHT && !survivors.is_empty() {
            let node = survivors[(sent as usize) % survivors.len()];
            let client = cluster.client(node)?;
            let recorder = recorder.clone();
            let key = key.clone();
            // Probe processes: one per probe, far above the register and lookup ids.
            let process = 2 * LOOKUP_PROCESS_BASE + trial * 10_000 + sent;
            let value = format!("t{trial}-{sent}");
            probes.spawn(async move {
                let outcome = write(
                    &client,
                    &recorder,
                    process,
                    node,
                    &key,
                    &value,
                    PROBE_TIMEOUT,
                )
                .await;
                (outcome.is_ok(), Instant::now())
            });
            sent += 1;
        }
        next_probe += PROBE_INTERVAL;
        tokio::select! {
            Some(Ok((true, at))) = probes.join_next(), if !probes.is_empty() => {
                // Let the probes still in flight finish (their outcome goes into the
                // history) without waiting for them here.
                probes.detach_all();
                return Ok(at.duration_since(killed_at));
            }
            _ = tokio::time::sleep_until(next_probe) => {}
        }
    }
}

/// Lookups through a failover client until stopped: (sent, failed, failure reasons, the
/// slowest).
async fn failover_lookups(
    client: Arc<Client>,
    stopped: watch::Receiver<bool>,
    trial: u64,
) -> (u64, u64, Vec<String>, Duration) {
    let (mut sent, mut failed, mut reasons) = (0u64, 0u64, Vec::new());
    let mut slowest = Duration::ZERO;
    while !should_stop(&stopped) {
        let destination = DESTINATIONS[(sent as usize) % DESTINATIONS.len()];
        let call_id = format!("failover-{trial}-{sent}@chaos");
        let started = Instant::now();
        let outcome = lookup(
            &client,
            None,
            &call_id,
            destination,
            FAILOVER_LOOKUP_TIMEOUT,
        )
        .await;
        slowest = slowest.max(started.elapsed());
        sent += 1;
        if !outcome.is_ok() {
            failed += 1;
            if reasons.len() < MAX_FAILURE_REASONS {
                reasons.push(format!("{outcome:?}"));
            }
        }
        tokio::time::sleep(FAILOVER_LOOKUP_INTERVAL).await;
    }
    (sent, failed, reasons, slowest)
}

/// What the nodes hold at the end of a run, once the faults are healed and the workload
/// stopped: the input of the convergence and lost-write checkers.
#[derive(Clone, Debug, Default)]
pub struct FinalStates {
    /// Each member's applied index, settings and routing digest.
    pub nodes: Vec<FinalNodeState>,
    /// Each member's value of every key the history touched.
    pub reads: Vec<FinalRead>,
    /// The ended calls of the limited tenant each member's record archive holds.
    pub records: Vec<crate::checker::cdrs::NodeRecords>,
}

/// The limited tenant's ended calls in `node`'s record archive.
async fn ended_calls(client: &Client, node: NodeId) -> Result<crate::checker::cdrs::NodeRecords> {
    let request = proto::ListCdrsRequest {
        tenant: LIMITED_TENANT.to_owned(),
        ..Default::default()
    };
    let mut stream = client
        .admin(Retry::Idempotent, |mut admin| {
            let request = request.clone();
            async move { admin.list_cdrs(request).await }
        })
        .await
        .map_err(|error| HarnessError::client(format!("records of node {node}"), error))?;
    let mut records = crate::checker::cdrs::NodeRecords {
        node,
        ..Default::default()
    };
    loop {
        let chunk = stream.message().await.map_err(|status| {
            HarnessError::Setup(format!("the records of node {node}: {status}"))
        })?;
        let Some(chunk) = chunk else {
            break;
        };
        records.complete_since_ms = chunk.complete_since_ms;
        records.ended.extend(
            chunk
                .records
                .into_iter()
                .filter(|record| {
                    matches!(
                        record.disposition.as_str(),
                        "answered" | "busy" | "no-answer" | "failed"
                    )
                })
                .map(|record| record.call_id),
        );
    }
    Ok(records)
}

/// Reads every member's settings and routing configuration once it has applied at least
/// `min_applied_index` (take it from [`Cluster::wait_converged`]), and each of `keys`.
pub async fn final_states(
    cluster: &Cluster,
    min_applied_index: u64,
    keys: &BTreeSet<String>,
) -> Result<FinalStates> {
    // Linearizable too, as the lost-write checker expects; after convergence the two agree.
    let consistency = proto::ReadConsistency {
        min_applied_index,
        linearizable: true,
        ..Default::default()
    };
    let mut states = FinalStates::default();
    for node in cluster.up_members() {
        let client = cluster.client(node)?;
        let request = proto::ListSettingsRequest {
            prefix: String::new(),
            limit: MAX_FINAL_SETTINGS,
            consistency: Some(consistency),
        };
        let listed = client
            .admin(Retry::Idempotent, |mut admin| {
                let request = request.clone();
                async move { admin.list_settings(request).await }
            })
            .await
            .map_err(|error| HarnessError::client(format!("settings of node {node}"), error))?;
        let applied_index = listed
            .read_state
            .map(|state| state.applied_index)
            .unwrap_or(0);
        let mut settings: BTreeMap<String, proto::Setting> = listed
            .settings
            .into_iter()
            .map(|setting| (setting.key.clone(), setting))
            .collect();
        if settings.len() >= MAX_FINAL_SETTINGS as usize {
            // The list was cut short: read the history's keys one by one instead.
            settings.clear();
            for key in keys {
                let request = proto::GetSettingRequest {
                    key: key.clone(),
                    consistency: Some(consistency),
                };
                let got = client
                    .admin(Retry::Idempotent, |mut admin| {
                        let request = request.clone();
                        async move { admin.get_setting(request).await }
                    })
                    .await
                    .map_err(|error| {
                        HarnessError::client(format!("{key} on node {node}"), error)
                    })?;
                if let Some(setting) = got.setting {
                    settings.insert(key.clone(), setting);
                }
            }
        }
        let routing_request = proto::ListRoutingRequest {
            consistency: Some(consistency),
        };
        let routing = client
            .admin(Retry::Idempotent, |mut admin| {
                let request = routing_request;
                async move { admin.list_routing(request).await }
            })
            .await
            .map_err(|error| HarnessError::client(format!("routing of node {node}"), error))?;
        states.records.push(ended_calls(&client, node).await?);
        for key in keys {
            states.reads.push(FinalRead {
                node,
                key: key.clone(),
                value: settings.get(key).map(|setting| setting.value.clone()),
            });
        }
        states.nodes.push(FinalNodeState {
            node,
            applied_index,
            settings: settings
                .into_values()
                .map(|setting| SettingEntry {
                    key: setting.key,
                    value: setting.value,
                    modify_index: setting.modify_index,
                })
                .collect(),
            digests: BTreeMap::from([(
                "routing".to_owned(),
                format!(
                    "tenants {:?} carriers {:?} gateways {:?} decks {:?}",
                    routing.tenants.iter().map(|t| &t.name).collect::<Vec<_>>(),
                    routing.carriers.iter().map(|c| &c.name).collect::<Vec<_>>(),
                    routing.gateways.iter().map(|g| &g.name).collect::<Vec<_>>(),
                    routing.deck_rows.iter().collect::<BTreeMap<_, _>>(),
                ),
            )]),
        });
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_that_prove_nothing_happened_are_failures() {
        let unreachable = ClientError::Unreachable { attempts: vec![] };
        assert_eq!(classify(&unreachable).0, ErrorKind::ConnectFailed);
        let mut status = tonic::Status::unavailable("no leader");
        status
            .metadata_mut()
            .insert(RETRY_HEADER, RETRY_NOT_APPLIED.parse().unwrap());
        let not_applied = ClientError::Status {
            endpoint: "n1".into(),
            status,
        };
        assert_eq!(classify(&not_applied).0, ErrorKind::NotApplied);
        let lost = ClientError::Status {
            endpoint: "n1".into(),
            status: tonic::Status::unavailable("connection reset"),
        };
        assert_eq!(classify(&lost).0, ErrorKind::Unavailable);
        let timeout = ClientError::Status {
            endpoint: "n1".into(),
            status: tonic::Status::cancelled("Timeout expired"),
        };
        assert_eq!(classify(&timeout).0, ErrorKind::Timeout);
    }
}
