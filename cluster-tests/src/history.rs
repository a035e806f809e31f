//! The recorded history of a chaos-test workload, in the style of Jepsen and porcupine.
//!
//! Every request a workload client sends is one [`Operation`]: which client (process) sent
//! it, to which node, what it asked ([`OpKind`]), when it was invoked and when the client
//! stopped waiting (monotonic nanoseconds since the [`Recorder`]'s origin, one `Instant`
//! shared by every client), and what came of it ([`Outcome`]):
//!
//! - `Ok`: the node answered, with the value read or whether the write took effect;
//! - `Fail`: the request certainly did not take effect (refused as invalid, `UNAVAILABLE`
//!   with the `trunkline-retry: not-applied` hint, no connection could be made);
//! - `Unknown`: it may or may not have taken effect (a timeout, a connection lost mid-request,
//!   the run ended first). The checkers treat its completion as never: it may take effect at
//!   any time after its invocation, or not at all.
//!
//! The nemesis timeline ([`Fault`]) is recorded next to the operations so the checkers know
//! which nodes a client could not reach and when. Everything here is serde-serialisable so a
//! report can dump the history it judged.

use std::{
    collections::BTreeSet,
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use serde::{Deserialize, Serialize};

/// Most operations a [`Recorder`] keeps; later ones are counted in
/// [`History::dropped_operations`] and the checkers that need every operation say `Unknown`.
pub const MAX_OPERATIONS: usize = 1_000_000;
/// Most nemesis faults a [`Recorder`] keeps.
pub const MAX_FAULTS: usize = 10_000;

/// A workload client. One process has at most one operation in flight, as in Jepsen.
pub type ProcessId = u64;
/// A Trunkline node, by its Raft node id.
pub type NodeId = u64;
/// An operation's position in [`History::operations`].
pub type OperationId = u64;

/// How fresh a read must be, as asked in `ReadConsistency`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// `linearizable: true`: the node confirms with the leader first. Only these reads are
    /// judged by the linearizability checker.
    #[default]
    Linearizable,
    /// `min_applied_index`: read-your-writes on any node, not linearizable.
    MinAppliedIndex(u64),
    /// The node's own applied state, however stale. The availability checker expects these
    /// to keep succeeding on every node the client can reach.
    Stale,
}

/// What an operation asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpKind {
    /// `GetSetting`.
    Read {
        key: String,
        consistency: Consistency,
    },
    /// `SetSetting`.
    Write { key: String, value: String },
    /// `DeleteSetting`.
    Delete { key: String },
    /// `CompareAndSetSetting`: writes `new` (deletes when `None`) only if the key holds
    /// `expected` (`None`: the key must not exist).
    Cas {
        key: String,
        expected: Option<String>,
        new: Option<String>,
    },
    /// `RouteOutbound` (or any other lookup answered from the node's own state), for the
    /// availability checker. The node asked is [`Operation::node`]; `destination` is only
    /// for the humans reading the history.
    RouteLookup { destination: String },
    /// `RouteOutbound` for a tenant with a concurrent-call limit: admitted or refused.
    Admit { call: String },
    /// `ReportCallEnd` of an admitted call.
    EndCall { call: String },
}

impl OpKind {
    /// The settings key the operation touches; `None` for route lookups.
    pub fn key(&self) -> Option<&str> {
        match self {
            OpKind::Read { key, .. }
            | OpKind::Write { key, .. }
            | OpKind::Delete { key }
            | OpKind::Cas { key, .. } => Some(key),
            OpKind::RouteLookup { .. } | OpKind::Admit { .. } | OpKind::EndCall { .. } => None,
        }
    }

    /// A short name for counting: `read`, `write`, `delete`, `cas`, `route_lookup`.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Read { .. } => "read",
            OpKind::Write { .. } => "write",
            OpKind::Delete { .. } => "delete",
            OpKind::Cas { .. } => "cas",
            OpKind::RouteLookup { .. } => "route_lookup",
            OpKind::Admit { .. } => "admit",
            OpKind::EndCall { .. } => "end_call",
        }
    }

    /// True for the operations that may change the register.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            OpKind::Write { .. } | OpKind::Delete { .. } | OpKind::Cas { .. }
        )
    }
}

/// Why an operation did not come back `Ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// `INVALID_ARGUMENT`: refused before anything was proposed.
    InvalidArgument,
    /// `UNAVAILABLE` with `trunkline-retry: not-applied`: the node could not reach a leader
    /// and did not propose the write.
    NotApplied,
    /// No connection to the node could be made, so the request never left the client.
    ConnectFailed,
    /// `UNAVAILABLE` without the not-applied hint, or a connection lost mid-request.
    Unavailable,
    /// `DEADLINE_EXCEEDED` or the client's own timeout.
    Timeout,
    /// `FAILED_PRECONDITION`, e.g. a read refused as too stale.
    FailedPrecondition,
    /// The run ended before the operation completed.
    Incomplete,
    /// Any other status; the detail names it.
    Other,
}

impl ErrorKind {
    /// True when an error of this kind proves the request had no effect, so the operation
    /// may be recorded as [`Outcome::Fail`]. Anything else is [`Outcome::Unknown`]: calling
    /// an uncertain write failed could make the checkers cry wolf.
    pub fn certainly_not_applied(self) -> bool {
        matches!(
            self,
            ErrorKind::InvalidArgument | ErrorKind::NotApplied | ErrorKind::ConnectFailed
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotApplied => "not_applied",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::Incomplete => "incomplete",
            ErrorKind::Other => "other",
        }
    }
}

/// Where a read's answer came from, copied from the response's `ReadState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    pub node_id: NodeId,
    pub applied_index: u64,
    /// 0 when the node knew no leader.
    pub leader_id: NodeId,
    /// Upper bound on how stale the answer is; 0 on the leader.
    pub staleness_ms: u64,
}

/// What an `Ok` operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "returned", rename_all = "snake_case")]
pub enum Returned {
    /// A read: the value seen, `None` when the key did not exist.
    Read {
        value: Option<String>,
        /// Log index of the write that produced the value, for humans tracing a violation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        modify_index: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_state: Option<ReadState>,
    },
    /// A write, delete or compare-and-set: `succeeded` is the response's flag (false for a
    /// compare that failed or a delete of a missing key).
    Write {
        succeeded: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        applied_index: Option<u64>,
    },
    /// A route lookup that answered.
    Lookup {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_state: Option<ReadState>,
    },
    /// An admission that answered: admitted, or refused by the limit.
    Admission { admitted: bool },
}

/// What came of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ok {
        returned: Returned,
    },
    /// Certainly had no effect.
    Fail {
        error: ErrorKind,
        detail: String,
    },
    /// May or may not have had an effect, at any time after its invocation.
    Unknown {
        error: ErrorKind,
        detail: String,
    },
}

impl Outcome {
    /// A read that saw `value` (`None`: absent).
    pub fn read(value: Option<String>) -> Outcome {
        Outcome::Ok {
            returned: Returned::Read {
                value,
                modify_index: None,
                read_state: None,
            },
        }
    }

    /// A write, delete or compare-and-set that was answered.
    pub fn written(succeeded: bool) -> Outcome {
        Outcome::Ok {
            returned: Returned::Write {
                succeeded,
                applied_index: None,
            },
        }
    }

    /// A route lookup that was answered.
    pub fn looked_up() -> Outcome {
        Outcome::Ok {
            returned: Returned::Lookup { read_state: None },
        }
    }

    /// An error: `Fail` when its kind proves nothing was applied, `Unknown` otherwise. The
    /// one place the rule lives, so every workload classifies errors the same way.
    pub fn from_error(error: ErrorKind, detail: impl Into<String>) -> Outcome {
        let detail = detail.into();
        if error.certainly_not_applied() {
            Outcome::Fail { error, detail }
        } else {
            Outcome::Unknown { error, detail }
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    /// The error of a `Fail` or `Unknown` outcome.
    pub fn error(&self) -> Option<ErrorKind> {
        match self {
            Outcome::Ok { .. } => None,
            Outcome::Fail { error, .. } | Outcome::Unknown { error, .. } => Some(*error),
        }
    }

    /// `ok`, `fail` or `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Fail { .. } => "fail",
            Outcome::Unknown { .. } => "unknown",
        }
    }
}

/// One request of a workload client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Its index in [`History::operations`], so explanations can name it.
    pub id: OperationId,
    pub process: ProcessId,
    /// The node the request was sent to.
    pub node: NodeId,
    pub kind: OpKind,
    /// Taken before the request was sent: no earlier than the real start.
    pub invoke_nanos: u64,
    /// Taken after the answer arrived or the client gave up: no earlier than the real end.
    /// `None` when the run ended first. For an `Unknown` outcome the checkers ignore it.
    pub complete_nanos: Option<u64>,
    pub outcome: Outcome,
}

impl Operation {
    /// The latest time the operation can have taken effect: its completion when the outcome
    /// is known, `None` (never) when it is `Unknown`.
    pub fn effect_deadline_nanos(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Unknown { .. } => None,
            Outcome::Ok { .. } | Outcome::Fail { .. } => self.complete_nanos,
        }
    }
}

impl fmt::Display for Operation {
    /// `#12 p3 n2 write x=v7 -> ok [1.200000s..1.250000s]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} p{} n{} ", self.id, self.process, self.node)?;
        match &self.kind {
            OpKind::Read { key, consistency } => {
                write!(f, "read {key}")?;
                match consistency {
                    Consistency::Linearizable => {}
                    Consistency::MinAppliedIndex(index) => write!(f, " (min index {index})")?,
                    Consistency::Stale => write!(f, " (stale ok)")?,
                }
            }
            OpKind::Write { key, value } => write!(f, "write {key}={value}")?,
            OpKind::Delete { key } => write!(f, "delete {key}")?,
            OpKind::Cas { key, expected, new } => write!(
                f,
                "cas {key} {}->{}",
                show_value(expected.as_deref()),
                show_value(new.as_deref())
            )?,
            OpKind::RouteLookup { destination } => write!(f, "lookup {destination}")?,
            OpKind::Admit { call } => write!(f, "admit {call}")?,
            OpKind::EndCall { call } => write!(f, "end {call}")?,
        }
        match &self.outcome {
            Outcome::Ok {
                returned: Returned::Read { value, .. },
            } => write!(f, " -> {}", show_value(value.as_deref()))?,
            Outcome::Ok {
                returned: Returned::Write { succeeded, .. },
            } => write!(f, " -> {}", if *succeeded { "ok" } else { "not done" })?,
            Outcome::Ok {
                returned: Returned::Lookup { .. },
            } => write!(f, " -> ok")?,
            Outcome::Ok {
                returned: Returned::Admission { admitted },
            } => write!(f, " -> {}", if *admitted { "admitted" } else { "refused" })?,
            Outcome::Fail { error, .. } => write!(f, " -> fail ({})", error.name())?,
            Outcome::Unknown { error, .. } => write!(f, " -> unknown ({})", error.name())?,
        }
        let end = match self.complete_nanos {
            Some(nanos) => format_nanos(nanos),
            None => "never".to_owned(),
        };
        write!(f, " [{}..{end}]", format_nanos(self.invoke_nanos))
    }
}

/// A register value for humans: the value, or `nil` for an absent key.
pub fn show_value(value: Option<&str>) -> String {
    match value {
        Some(value) => value.to_owned(),
        None => "nil".to_owned(),
    }
}

/// Nanoseconds since the origin as seconds with microsecond precision: `1.250000s`.
pub fn format_nanos(nanos: u64) -> String {
    format!(
        "{}.{:06}s",
        nanos / 1_000_000_000,
        nanos % 1_000_000_000 / 1_000
    )
}

/// One nemesis fault: from when the harness started it until it was healed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub id: u64,
    /// What was done, for the report: `kill -9 n2`, `partition {1} | {2,3}`.
    pub name: String,
    pub start_nanos: u64,
    /// When it was healed and the nodes answer again; `None` when the history ended first.
    pub end_nanos: Option<u64>,
    /// Nodes the clients could not reach while the fault lasted (killed or paused nodes).
    /// A partition between nodes leaves this empty: clients still reach every node, and
    /// lookups there must keep succeeding.
    pub unreachable_nodes: BTreeSet<NodeId>,
}

impl Fault {
    /// True when the fault was in force at some point of `[start, end]` (`end` `None`:
    /// open-ended).
    pub fn overlaps(&self, start_nanos: u64, end_nanos: Option<u64>) -> bool {
        let starts_before_end = end_nanos.is_none_or(|end| self.start_nanos <= end);
        let ends_after_start = self.end_nanos.is_none_or(|end| end >= start_nanos);
        starts_before_end && ends_after_start
    }
}

/// A finished (or snapshotted) recording.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// In invocation order; `operations[i].id == i`.
    pub operations: Vec<Operation>,
    pub faults: Vec<Fault>,
    /// Operations invoked after [`MAX_OPERATIONS`] was reached and not recorded. When not
    /// zero the history is incomplete and the checkers that need all of it say `Unknown`.
    pub dropped_operations: u64,
    /// Faults started after [`MAX_FAULTS`] was reached and not recorded.
    pub dropped_faults: u64,
}

impl History {
    /// Every settings key an operation touched, in order.
    pub fn keys(&self) -> BTreeSet<&str> {
        self.operations
            .iter()
            .filter_map(|operation| operation.kind.key())
            .collect()
    }

    /// From the first invocation to the last completion (or invocation), in nanoseconds.
    pub fn duration_nanos(&self) -> u64 {
        let start = self
            .operations
            .iter()
            .map(|operation| operation.invoke_nanos)
            .min()
            .unwrap_or(0);
        let end = self
            .operations
            .iter()
            .map(|operation| operation.complete_nanos.unwrap_or(operation.invoke_nanos))
            .max()
            .unwrap_or(0);
        end.saturating_sub(start)
    }

    /// The operation with this id, if the history holds it.
    pub fn operation(&self, id: OperationId) -> Option<&Operation> {
        let index = usize::try_from(id).ok()?;
        self.operations
            .get(index)
            .filter(|operation| operation.id == id)
            .or_else(|| self.operations.iter().find(|operation| operation.id == id))
    }
}

/// A handle on an invoked operation, to complete it. Not `Clone`: an operation completes
/// once.
#[must_use = "complete the operation with Recorder::complete"]
#[derive(Debug)]
pub struct OpHandle {
    /// `None` when the operation was dropped because the recorder was full.
    index: Option<usize>,
}

/// A handle on a started fault, to mark it healed.
#[must_use = "mark the fault healed with Recorder::fault_healed"]
#[derive(Debug)]
pub struct FaultHandle {
    index: Option<usize>,
}

#[derive(Debug, Default)]
struct Recording {
    history: History,
}

/// Records a history from many client tasks at once. Cheap to clone: clones share the
/// recording and the time origin.
#[derive(Clone, Debug)]
pub struct Recorder {
    origin: Instant,
    max_operations: usize,
    max_faults: usize,
    recording: Arc<Mutex<Recording>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder whose time origin is now, keeping at most [`MAX_OPERATIONS`] operations.
    pub fn new() -> Recorder {
        Recorder::with_limits(MAX_OPERATIONS, MAX_FAULTS)
    }

    /// A recorder keeping at most `max_operations` operations and `max_faults` faults.
    pub fn with_limits(max_operations: usize, max_faults: usize) -> Recorder {
        Recorder {
            origin: Instant::now(),
            max_operations,
            max_faults,
            recording: Arc::new(Mutex::new(Recording::default())),
        }
    }

    /// The instant every timestamp is measured from.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Nanoseconds since the origin, monotonic.
    pub fn now_nanos(&self) -> u64 {
        // A u64 of nanoseconds lasts 584 years; saturate rather than wrap.
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        // A panic while holding the lock can only interrupt a push or a field store, which
        // leave the recording consistent, so a poisoned lock is still safe to use.
        self.recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `process` is about to send `kind` to `node`. Call it just before
    /// sending, so the invocation time is no later than the real one.
    pub fn invoke(&self, process: ProcessId, node: NodeId, kind: OpKind) -> OpHandle {
        let invoke_nanos = self.now_nanos();
        let mut recording = self.lock();
        let history = &mut recording.history;
        if history.operations.len() >= self.max_operations {
            history.dropped_operations += 1;
            return OpHandle { index: None };
        }
        let index = history.operations.len();
        history.operations.push(Operation {
            id: index as OperationId,
            process,
            node,
            kind,
            invoke_nanos,
            complete_nanos: None,
            outcome: Outcome::Unknown {
                error: ErrorKind::Incomplete,
                detail: "the run ended before the operation completed".to_owned(),
            },
        });
        OpHandle { index: Some(index) }
    }

    /// Records the outcome of an operation. Call it as soon as the answer (or the error)
    /// arrives, so the completion time is no earlier than the real one.
    pub fn complete(&self, handle: OpHandle, outcome: Outcome) {
        let complete_nanos = self.now_nanos();
        let Some(index) = handle.index else {
            return;
        };
        let mut recording = self.lock();
        if let Some(operation) = recording.history.operations.get_mut(index) {
            operation.complete_nanos = Some(complete_nanos);
            operation.outcome = outcome;
        }
    }

    /// Records that the nemesis started a fault. Call it just before injecting it.
    pub fn fault_started(
        &self,
        name: impl Into<String>,
        unreachable_nodes: BTreeSet<NodeId>,
    ) -> FaultHandle {
        let start_nanos = self.now_nanos();
        let mut recording = self.lock();
        let history = &mut recording.history;
        if history.faults.len() >= self.max_faults {
            history.dropped_faults += 1;
            return FaultHandle { index: None };
        }
        let index = history.faults.len();
        history.faults.push(Fault {
            id: index as u64,
            name: name.into(),
            start_nanos,
            end_nanos: None,
            unreachable_nodes,
        });
        FaultHandle { index: Some(index) }
    }

    /// Records that a fault was healed. Call it once the affected nodes answer again.
    pub fn fault_healed(&self, handle: FaultHandle) {
        let end_nanos = self.now_nanos();
        let Some(index) = handle.index else {
            return;
        };
        let mut recording = self.lock();
        if let Some(fault) = recording.history.faults.get_mut(index) {
            fault.end_nanos = Some(end_nanos);
        }
    }

    /// A copy of everything recorded so far. Operations still in flight appear as
    /// `Unknown` ([`ErrorKind::Incomplete`]) with no completion time.
    pub fn history(&self) -> History {
        self.lock().history.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(key: &str) -> OpKind {
        OpKind::Read {
            key: key.into(),
            consistency: Consistency::Linearizable,
        }
    }

    #[test]
    fn the_recorder_stamps_invoke_before_complete_and_ids_in_order() {
        let recorder = Recorder::new();
        let first = recorder.invoke(0, 1, read("a"));
        let second = recorder.clone().invoke(1, 2, read("b"));
        recorder.complete(second, Outcome::read(None));
        recorder.complete(first, Outcome::read(Some("1".into())));
        let history = recorder.history();
        assert_eq!(history.operations.len(), 2);
        for (index, operation) in history.operations.iter().enumerate() {
            assert_eq!(operation.id, index as u64);
            let complete = operation.complete_nanos.unwrap();
            assert!(operation.invoke_nanos <= complete);
        }
        assert_eq!(history.operations[1].node, 2);
        assert_eq!(history.operation(1).unwrap().process, 1);
    }

    #[test]
    fn operations_never_completed_are_unknown() {
        let recorder = Recorder::new();
        let _pending = recorder.invoke(0, 1, read("a"));
        let history = recorder.history();
        assert_eq!(history.operations[0].complete_nanos, None);
        assert_eq!(
            history.operations[0].outcome.error(),
            Some(ErrorKind::Incomplete)
        );
        assert_eq!(history.operations[0].effect_deadline_nanos(), None);
    }

    #[test]
    fn a_full_recorder_counts_what_it_drops() {
        let recorder = Recorder::with_limits(2, 1);
        for process in 0..5 {
            let handle = recorder.invoke(process, 1, read("a"));
            recorder.complete(handle, Outcome::read(None));
        }
        let healed = recorder.fault_started("kill -9 n1", BTreeSet::from([1]));
        let dropped = recorder.fault_started("pause n2", BTreeSet::from([2]));
        recorder.fault_healed(healed);
        recorder.fault_healed(dropped);
        let history = recorder.history();
        assert_eq!(history.operations.len(), 2);
        assert_eq!(history.dropped_operations, 3);
        assert_eq!(history.faults.len(), 1);
        assert!(history.faults[0].end_nanos.is_some());
        assert_eq!(history.dropped_faults, 1);
    }

    #[test]
    fn errors_are_fail_only_when_nothing_can_have_been_applied() {
        for (error, certain) in [
            (ErrorKind::InvalidArgument, true),
            (ErrorKind::NotApplied, true),
            (ErrorKind::ConnectFailed, true),
            (ErrorKind::Unavailable, false),
            (ErrorKind::Timeout, false),
            (ErrorKind::FailedPrecondition, false),
            (ErrorKind::Incomplete, false),
            (ErrorKind::Other, false),
        ] {
            let outcome = Outcome::from_error(error, "x");
            assert_eq!(
                matches!(outcome, Outcome::Fail { .. }),
                certain,
                "{error:?}"
            );
            assert_eq!(outcome.error(), Some(error));
        }
    }

    #[test]
    fn a_history_round_trips_through_json() {
        let recorder = Recorder::new();
        let write = recorder.invoke(
            0,
            1,
            OpKind::Cas {
                key: "a".into(),
                expected: None,
                new: Some("1".into()),
            },
        );
        recorder.complete(write, Outcome::written(true));
        let lookup = recorder.invoke(
            1,
            3,
            OpKind::RouteLookup {
                destination: "14155550100".into(),
            },
        );
        recorder.complete(lookup, Outcome::from_error(ErrorKind::Timeout, "5 s"));
        let fault = recorder.fault_started("pause n3", BTreeSet::from([3]));
        recorder.fault_healed(fault);
        let history = recorder.history();
        let json = serde_json::to_string(&history).unwrap();
        let back: History = serde_json::from_str(&json).unwrap();
        assert_eq!(back, history);
    }

    #[test]
    fn operations_print_for_humans() {
        let operation = Operation {
            id: 12,
            process: 3,
            node: 2,
            kind: OpKind::Cas {
                key: "x".into(),
                expected: None,
                new: Some("v7".into()),
            },
            invoke_nanos: 1_200_000_000,
            complete_nanos: Some(1_250_000_000),
            outcome: Outcome::written(false),
        };
        assert_eq!(
            operation.to_string(),
            "#12 p3 n2 cas x nil->v7 -> not done [1.200000s..1.250000s]"
        );
    }

    #[test]
    fn faults_overlap_closed_intervals() {
        let fault = Fault {
            id: 0,
            name: "kill".into(),
            start_nanos: 10,
            end_nanos: Some(20),
            unreachable_nodes: BTreeSet::new(),
        };
        assert!(fault.overlaps(0, Some(10)));
        assert!(fault.overlaps(20, Some(30)));
        assert!(fault.overlaps(15, None));
        assert!(!fault.overlaps(0, Some(9)));
        assert!(!fault.overlaps(21, None));
        let open = Fault {
            end_nanos: None,
            ..fault
        };
        assert!(open.overlaps(1_000, Some(2_000)));
    }
}
