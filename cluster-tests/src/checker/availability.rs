//! Availability: lookups sent to a node the client could reach keep succeeding, through
//! leader loss and partitions (they may be stale, and say so).
//!
//! Trunkline answers route lookups, and reads that accept staleness, from each node's own
//! applied state, so a node cut off from the leader still answers. This checker takes the
//! operations that promise that (route lookups and stale-ok reads; linearizable and
//! min-applied-index reads may rightly fail on a minority node and are left out), drops
//! those sent to a node the client could not reach at the time (killed or paused, as the
//! nemesis recorded in [`Fault::unreachable_nodes`]), and counts the rest: failures by kind,
//! during faults and not, and per time window for the report's timeline. Any failure among
//! them is a `Fail`: "lookups on surviving nodes never fail".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    checker::Verdict,
    history::{Consistency, Fault, History, OpKind, Operation, Outcome, Returned},
};

/// The width of a timeline window unless asked otherwise.
pub const DEFAULT_WINDOW_NANOS: u64 = 1_000_000_000;
/// Most windows in a timeline; a longer run gets wider windows.
pub const MAX_WINDOWS: usize = 3_600;
/// Most failed operations quoted in a result; the counts cover them all.
pub const MAX_REPORTED_FAILURES: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailabilityOptions {
    /// Width of a timeline window (at least 1).
    pub window_nanos: u64,
    /// How long after a fault is healed its unreachable nodes still count as unreachable:
    /// 0 when the harness marks a fault healed only once the nodes answer again.
    pub recovery_grace_nanos: u64,
}

impl Default for AvailabilityOptions {
    fn default() -> Self {
        AvailabilityOptions {
            window_nanos: DEFAULT_WINDOW_NANOS,
            recovery_grace_nanos: 0,
        }
    }
}

/// One window of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCounts {
    pub start_nanos: u64,
    /// Operations considered that were invoked in the window.
    pub operations: u64,
    pub failures: u64,
    /// True when some fault was in force during the window.
    pub during_fault: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityResult {
    pub verdict: Verdict,
    /// Lookups and stale-ok reads sent to a reachable node.
    pub considered: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Lookups and stale-ok reads left out because their node was unreachable.
    pub excluded_unreachable: u64,
    pub considered_during_faults: u64,
    pub failed_during_faults: u64,
    /// `fail/<error>` or `unknown/<error>` → count.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// The stalest answer, as the nodes reported it.
    pub max_staleness_ms: Option<u64>,
    pub window_nanos: u64,
    pub windows: Vec<WindowCounts>,
    /// The first [`MAX_REPORTED_FAILURES`] failures.
    pub failed_operations: Vec<Operation>,
}

/// True for the operations that must keep succeeding on any reachable node.
fn promises_availability(operation: &Operation) -> bool {
    match &operation.kind {
        OpKind::RouteLookup { .. } => true,
        OpKind::Read { consistency, .. } => *consistency == Consistency::Stale,
        // Admissions need a quorum by design (limits fail closed).
        OpKind::Write { .. }
        | OpKind::Delete { .. }
        | OpKind::Cas { .. }
        | OpKind::Admit { .. }
        | OpKind::EndCall { .. } => false,
    }
}

fn staleness_ms(operation: &Operation) -> Option<u64> {
    match &operation.outcome {
        Outcome::Ok {
            returned:
                Returned::Read {
                    read_state: Some(state),
                    ..
                }
                | Returned::Lookup {
                    read_state: Some(state),
                },
        } => Some(state.staleness_ms),
        _ => None,
    }
}

/// True when the client could not reach the operation's node at some point while it ran.
fn unreachable(operation: &Operation, faults: &[Fault], grace_nanos: u64) -> bool {
    faults.iter().any(|fault| {
        if !fault.unreachable_nodes.contains(&operation.node) {
            return false;
        }
        let widened = Fault {
            end_nanos: fault.end_nanos.map(|end| end.saturating_add(grace_nanos)),
            ..fault.clone()
        };
        widened.overlaps(operation.invoke_nanos, operation.complete_nanos)
    })
}

/// A window width no narrower than asked that fits the run into [`MAX_WINDOWS`] windows.
fn window_width(asked_nanos: u64, end_nanos: u64) -> u64 {
    let mut width = asked_nanos.max(1);
    while end_nanos / width >= MAX_WINDOWS as u64 {
        width = width.saturating_mul(2);
    }
    width
}

pub fn check(history: &History, options: &AvailabilityOptions) -> AvailabilityResult {
    let faults = &history.faults;
    let end_nanos = history
        .operations
        .iter()
        .map(|operation| operation.complete_nanos.unwrap_or(operation.invoke_nanos))
        .chain(
            faults
                .iter()
                .map(|fault| fault.end_nanos.unwrap_or(fault.start_nanos)),
        )
        .max()
        .unwrap_or(0);
    let window_nanos = window_width(options.window_nanos, end_nanos);
    let window_count = usize::try_from(end_nanos / window_nanos).map_or(MAX_WINDOWS, |n| n + 1);
    let mut windows: Vec<WindowCounts> = (0..window_count)
        .map(|index| {
            let start_nanos = index as u64 * window_nanos;
            let end = start_nanos.saturating_add(window_nanos - 1);
            WindowCounts {
                start_nanos,
                operations: 0,
                failures: 0,
                during_fault: faults
                    .iter()
                    .any(|fault| fault.overlaps(start_nanos, Some(end))),
            }
        })
        .collect();

    let mut result = AvailabilityResult {
        verdict: Verdict::Pass,
        considered: 0,
        succeeded: 0,
        failed: 0,
        excluded_unreachable: 0,
        considered_during_faults: 0,
        failed_during_faults: 0,
        failures_by_kind: BTreeMap::new(),
        max_staleness_ms: None,
        window_nanos,
        windows: Vec::new(),
        failed_operations: Vec::new(),
    };
    for operation in history
        .operations
        .iter()
        .filter(|op| promises_availability(op))
    {
        if unreachable(operation, faults, options.recovery_grace_nanos) {
            result.excluded_unreachable += 1;
            continue;
        }
        result.considered += 1;
        let during_fault = faults
            .iter()
            .any(|fault| fault.overlaps(operation.invoke_nanos, operation.complete_nanos));
        if during_fault {
            result.considered_during_faults += 1;
        }
        let mut window = usize::try_from(operation.invoke_nanos / window_nanos)
            .ok()
            .and_then(|index| windows.get_mut(index));
        if let Some(window) = window.as_deref_mut() {
            window.operations += 1;
        }
        let Some(error) = operation.outcome.error() else {
            result.succeeded += 1;
            if let Some(staleness) = staleness_ms(operation) {
                result.max_staleness_ms = Some(result.max_staleness_ms.unwrap_or(0).max(staleness));
            }
            continue;
        };
        result.failed += 1;
        if let Some(window) = window {
            window.failures += 1;
        }
        if during_fault {
            result.failed_during_faults += 1;
        }
        *result
            .failures_by_kind
            .entry(format!("{}/{}", operation.outcome.name(), error.name()))
            .or_default() += 1;
        if result.failed_operations.len() < MAX_REPORTED_FAILURES {
            result.failed_operations.push(operation.clone());
        }
    }
    result.windows = windows;
    result.verdict = if let Some(first) = result.failed_operations.first() {
        Verdict::Fail {
            reason: format!(
                "{} of {} lookups on reachable nodes failed ({} during faults); first: {first}",
                result.failed, result.considered, result.failed_during_faults
            ),
        }
    } else if history.dropped_operations > 0 {
        Verdict::Unknown {
            reason: format!(
                "the history is incomplete: {} operations were not recorded",
                history.dropped_operations
            ),
        }
    } else if result.considered == 0 {
        Verdict::Unknown {
            reason: "no lookups on reachable nodes to judge".to_owned(),
        }
    } else {
        Verdict::Pass
    };
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::test_history::parse;

    fn run(text: &str) -> AvailabilityResult {
        let options = AvailabilityOptions {
            window_nanos: 100,
            recovery_grace_nanos: 0,
        };
        check(&parse(text), &options)
    }

    #[test]
    fn lookups_on_reachable_nodes_must_succeed() {
        let result = run("
            fault partition-n1 100..300
            p0@n1 0..10 lookup 1415 -> ok
            p0@n1 150..160 lookup 1415 -> ok
            p1@n2 150..160 stale-read x -> 1
            ");
        assert_eq!(result.verdict, Verdict::Pass);
        assert_eq!(result.considered, 3);
        assert_eq!(result.considered_during_faults, 2);

        // A partition leaves the node reachable by clients: its lookups must still answer.
        let result = run("
            fault partition-n1 100..300
            p0@n1 150..160 lookup 1415 -> fail not_applied
            p0@n1 170..180 lookup 1415 -> unknown timeout
            p0@n2 400..410 lookup 1415 -> ok
            ");
        assert!(result.verdict.is_fail());
        assert_eq!(result.failed, 2);
        assert_eq!(result.failed_during_faults, 2);
        let kinds: Vec<(&str, u64)> = result
            .failures_by_kind
            .iter()
            .map(|(kind, count)| (kind.as_str(), *count))
            .collect();
        assert_eq!(kinds, [("fail/not_applied", 1), ("unknown/timeout", 1)]);
        let reason = result.verdict.reason().unwrap();
        assert!(reason.starts_with("2 of 3 lookups"), "{reason}");
    }

    #[test]
    fn lookups_on_unreachable_nodes_are_left_out() {
        let result = run("
            fault kill-n2 100..300 unreachable 2
            p0@n2 90..110 lookup 1 -> fail connect_failed
            p0@n2 200..210 lookup 1 -> unknown timeout
            p0@n2 250..? lookup 1 -> unknown incomplete
            p1@n1 200..210 lookup 1 -> ok
            p0@n2 310..320 lookup 1 -> ok
            ");
        assert_eq!(result.verdict, Verdict::Pass, "{result:#?}");
        assert_eq!(result.excluded_unreachable, 3);
        assert_eq!(result.considered, 2);
        // Not once the node is back.
        let result = run("
            fault kill-n2 100..300 unreachable 2
            p0@n2 310..320 lookup 1 -> fail connect_failed
            ");
        assert!(result.verdict.is_fail());
    }

    #[test]
    fn a_recovery_grace_extends_the_fault() {
        let history = parse(
            "
            fault kill-n2 100..300 unreachable 2
            p0@n2 310..320 lookup 1 -> fail connect_failed
            p1@n1 310..320 lookup 1 -> ok
            ",
        );
        let options = AvailabilityOptions {
            window_nanos: 100,
            recovery_grace_nanos: 50,
        };
        assert_eq!(check(&history, &options).verdict, Verdict::Pass);
    }

    #[test]
    fn writes_and_strict_reads_are_not_judged() {
        let result = run("
            fault partition-n1 0..300
            p0@n1 10..20 read x -> unknown timeout
            p0@n1 30..40 write x 1 -> fail not_applied
            ");
        assert_eq!(result.considered, 0);
        assert!(matches!(result.verdict, Verdict::Unknown { .. }));
    }

    #[test]
    fn the_timeline_counts_failures_per_window() {
        let result = run("
            fault partition-n1 100..199
            p0@n1 0..10 lookup 1 -> ok
            p0@n1 150..160 lookup 1 -> fail other
            p0@n1 160..170 lookup 1 -> ok
            p0@n1 250..260 lookup 1 -> ok
            ");
        let timeline: Vec<(u64, u64, u64, bool)> = result
            .windows
            .iter()
            .map(|w| (w.start_nanos, w.operations, w.failures, w.during_fault))
            .collect();
        assert_eq!(
            timeline,
            [(0, 1, 0, false), (100, 2, 1, true), (200, 1, 0, false)]
        );
    }

    #[test]
    fn a_long_run_gets_wider_windows() {
        assert_eq!(window_width(100, 99), 100);
        let width = window_width(1, 10 * MAX_WINDOWS as u64);
        assert!(10 * MAX_WINDOWS as u64 / width < MAX_WINDOWS as u64);
        assert_eq!(window_width(0, 0), 1);
    }
}
