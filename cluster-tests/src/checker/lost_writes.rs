//! No acknowledged write lost: once the faults have healed, every node reads, for every key,
//! the value of the key's last acknowledged write.
//!
//! "Last" in real time: an acknowledged write (or delete, or successful compare-and-set) is
//! superseded when another acknowledged one was invoked after it completed. The writes no
//! other acknowledged write supersedes are the key's last ones; when several overlap, any of
//! them may be the final value. A write whose outcome is unknown may take effect at any time
//! after it was sent, even after the last acknowledged one, so its value is accepted too.
//! Anything else read at the end (an older value, a value never written, the key absent
//! after an acknowledged write) means an acknowledged write was lost.
//!
//! The final reads are taken by the harness after healing: one linearizable read per key on
//! every node ([`FinalRead`]). This check is narrower than the linearizability checker but
//! its answer is simple to read, and it also covers the nodes that were down while the
//! workload ran.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    checker::Verdict,
    history::{show_value, History, NodeId, OpKind, Operation, OperationId, Outcome, Returned},
};

/// Most lost writes (and unread keys) listed in a result; the counts cover them all.
pub const MAX_REPORTED_LOSSES: usize = 100;

/// One node's answer for one key after healing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    pub node: NodeId,
    pub key: String,
    /// `None`: the key does not exist on that node.
    pub value: Option<String>,
}

/// A value the key may end with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedValue {
    /// The write that would have left it.
    pub operation: OperationId,
    /// `None`: the write deleted the key.
    pub value: Option<String>,
    /// True for a write whose outcome is unknown (accepted, but not owed).
    pub unknown: bool,
}

/// A node whose final value for a key is none of the values the key may end with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostWrite {
    pub node: NodeId,
    pub key: String,
    pub observed: Option<String>,
    /// The key's last acknowledged writes, then the unknown writes that could also have
    /// left their value.
    pub expected: Vec<ExpectedValue>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostWritesResult {
    pub verdict: Verdict,
    /// Keys with at least one acknowledged write.
    pub keys_checked: usize,
    pub nodes_checked: usize,
    pub acknowledged_writes: u64,
    /// How many (node, key) pairs read something no write explains.
    pub lost_count: usize,
    /// The first [`MAX_REPORTED_LOSSES`] of them.
    pub lost: Vec<LostWrite>,
    /// (node, key) pairs with acknowledged writes but no final read, first
    /// [`MAX_REPORTED_LOSSES`].
    pub unread: Vec<(NodeId, String)>,
    pub unread_count: usize,
}

/// The value an acknowledged or unknown operation leaves the key with, if it writes.
fn written_value(operation: &Operation) -> Option<Option<String>> {
    let succeeded = match &operation.outcome {
        Outcome::Fail { .. } => return None,
        Outcome::Unknown { .. } => None,
        Outcome::Ok {
            returned: Returned::Write { succeeded, .. },
        } => Some(*succeeded),
        Outcome::Ok { .. } => return None,
    };
    match (&operation.kind, succeeded) {
        (OpKind::Write { value, .. }, None | Some(true)) => Some(Some(value.clone())),
        // A delete leaves the key absent whether or not it existed.
        (OpKind::Delete { .. }, _) => Some(None),
        (OpKind::Cas { new, .. }, None | Some(true)) => Some(new.clone()),
        _ => None,
    }
}

/// Checks the final reads against the history. Nodes are those that appear in
/// `final_reads`; keys are those with an acknowledged write in `history`.
pub fn check(history: &History, final_reads: &[FinalRead]) -> LostWritesResult {
    // Per key: the acknowledged writes and the unknown ones, with the value each leaves.
    let mut acknowledged: BTreeMap<&str, Vec<(&Operation, Option<String>)>> = BTreeMap::new();
    let mut unknown: BTreeMap<&str, Vec<(&Operation, Option<String>)>> = BTreeMap::new();
    for operation in &history.operations {
        let (Some(key), Some(value)) = (operation.kind.key(), written_value(operation)) else {
            continue;
        };
        let bucket = if operation.outcome.is_ok() {
            &mut acknowledged
        } else {
            &mut unknown
        };
        bucket.entry(key).or_default().push((operation, value));
    }
    let mut expected: BTreeMap<&str, Vec<ExpectedValue>> = BTreeMap::new();
    let mut acknowledged_writes = 0;
    for (key, writes) in &acknowledged {
        acknowledged_writes += writes.len() as u64;
        let latest_invoke = writes
            .iter()
            .map(|(operation, _)| operation.invoke_nanos)
            .max()
            .unwrap_or(0);
        let last = writes.iter().filter(|(operation, _)| {
            // Not superseded: no acknowledged write was invoked after it completed.
            operation
                .complete_nanos
                .is_none_or(|complete| complete >= latest_invoke)
        });
        let maybe = unknown.get(key).into_iter().flatten();
        let values = last
            .map(|write| (write, false))
            .chain(maybe.map(|write| (write, true)))
            .map(|((operation, value), unknown)| ExpectedValue {
                operation: operation.id,
                value: value.clone(),
                unknown,
            })
            .collect();
        expected.insert(key, values);
    }

    let nodes: BTreeSet<NodeId> = final_reads.iter().map(|read| read.node).collect();
    let mut seen: BTreeSet<(NodeId, &str)> = BTreeSet::new();
    let mut lost = Vec::new();
    let mut lost_count = 0;
    for read in final_reads {
        seen.insert((read.node, read.key.as_str()));
        let Some(values) = expected.get(read.key.as_str()) else {
            continue;
        };
        if values.iter().any(|expected| expected.value == read.value) {
            continue;
        }
        lost_count += 1;
        if lost.len() < MAX_REPORTED_LOSSES {
            lost.push(LostWrite {
                node: read.node,
                key: read.key.clone(),
                observed: read.value.clone(),
                expected: values.clone(),
            });
        }
    }
    let missing: Vec<(NodeId, String)> = nodes
        .iter()
        .flat_map(|node| expected.keys().map(move |key| (*node, *key)))
        .filter(|pair| !seen.contains(pair))
        .map(|(node, key)| (node, key.to_owned()))
        .collect();
    let unread_count = missing.len();
    let unread: Vec<(NodeId, String)> = missing.into_iter().take(MAX_REPORTED_LOSSES).collect();

    let verdict = if history.dropped_operations > 0 {
        // A write the recorder had no room for could explain any final value.
        Verdict::Unknown {
            reason: format!(
                "the history is incomplete: {} operations were not recorded \
                 ({lost_count} final reads unexplained by the recorded writes)",
                history.dropped_operations
            ),
        }
    } else if let Some(first) = lost.first() {
        let owed: Vec<String> = first
            .expected
            .iter()
            .filter(|expected| !expected.unknown)
            .map(|expected| {
                format!(
                    "#{} {}",
                    expected.operation,
                    show_value(expected.value.as_deref())
                )
            })
            .collect();
        Verdict::Fail {
            reason: format!(
                "{lost_count} final reads miss the last acknowledged write; first: node {} \
                 reads {} = {} but the last acknowledged write was {}",
                first.node,
                first.key,
                show_value(first.observed.as_deref()),
                owed.join(" or ")
            ),
        }
    } else if let Some((node, key)) = unread.first() {
        Verdict::Unknown {
            reason: format!(
                "{unread_count} (node, key) pairs have acknowledged writes but no final read; \
                 first: node {node} key {key}"
            ),
        }
    } else if expected.is_empty() || nodes.is_empty() {
        Verdict::Unknown {
            reason: "nothing to check: no acknowledged writes or no final reads".to_owned(),
        }
    } else {
        Verdict::Pass
    };
    LostWritesResult {
        verdict,
        keys_checked: expected.len(),
        nodes_checked: nodes.len(),
        acknowledged_writes,
        lost_count,
        lost,
        unread,
        unread_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::test_history::parse;

    fn read(node: NodeId, key: &str, value: Option<&str>) -> FinalRead {
        FinalRead {
            node,
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    /// Checks `history` with every node in `nodes` reading `value` for key x.
    fn check_x(history: &str, nodes: &[NodeId], value: Option<&str>) -> LostWritesResult {
        let reads: Vec<FinalRead> = nodes.iter().map(|node| read(*node, "x", value)).collect();
        check(&parse(history), &reads)
    }

    const TWO_WRITES: &str = "
        p0 0..10 write x 1 -> ok
        p0 20..30 write x 2 -> ok
    ";

    #[test]
    fn the_last_acknowledged_write_must_be_read_everywhere() {
        assert_eq!(
            check_x(TWO_WRITES, &[1, 2, 3], Some("2")).verdict,
            Verdict::Pass
        );
        let result = check_x(TWO_WRITES, &[1, 2, 3], Some("1"));
        assert!(result.verdict.is_fail());
        assert_eq!(result.lost_count, 3);
        assert_eq!(result.lost[0].observed.as_deref(), Some("1"));
        let owed: Vec<OperationId> = result.lost[0]
            .expected
            .iter()
            .map(|value| value.operation)
            .collect();
        assert_eq!(owed, [1]);
        let reason = result.verdict.reason().unwrap();
        assert!(
            reason.contains("last acknowledged write was #1 2"),
            "{reason}"
        );
    }

    #[test]
    fn one_node_behind_is_a_loss() {
        let history = parse(TWO_WRITES);
        let reads = [
            read(1, "x", Some("2")),
            read(2, "x", Some("2")),
            read(3, "x", None),
        ];
        let result = check(&history, &reads);
        assert_eq!(result.lost_count, 1);
        assert_eq!(result.lost[0].node, 3);
    }

    #[test]
    fn overlapping_last_writes_may_either_win() {
        let history = "
            p0 0..10 write x 1 -> ok
            p0 20..40 write x 2 -> ok
            p1 30..50 write x 3 -> ok
        ";
        for value in ["2", "3"] {
            assert_eq!(check_x(history, &[1], Some(value)).verdict, Verdict::Pass);
        }
        assert!(check_x(history, &[1], Some("1")).verdict.is_fail());
    }

    #[test]
    fn an_unknown_write_may_win_but_is_not_owed() {
        let history = "
            p0 0..10 write x 1 -> ok
            p1 5..? write x 9 -> unknown
            p0 20..30 write x 2 -> fail
        ";
        for value in ["1", "9"] {
            assert_eq!(check_x(history, &[1], Some(value)).verdict, Verdict::Pass);
        }
        // The failed write certainly did not happen.
        assert!(check_x(history, &[1], Some("2")).verdict.is_fail());
    }

    #[test]
    fn deletes_and_compare_and_sets_are_writes() {
        let history = "
            p0 0..10 write x 1 -> ok
            p0 20..30 delete x -> ok
        ";
        assert_eq!(check_x(history, &[1], None).verdict, Verdict::Pass);
        assert!(check_x(history, &[1], Some("1")).verdict.is_fail());
        let history = "
            p0 0..10 write x 1 -> ok
            p0 20..30 cas x 1 2 -> ok
            p0 40..50 cas x 1 3 -> not-done
        ";
        assert_eq!(check_x(history, &[1], Some("2")).verdict, Verdict::Pass);
        assert!(check_x(history, &[1], Some("3")).verdict.is_fail());
    }

    #[test]
    fn a_key_never_read_at_the_end_is_unknown() {
        let history = parse(
            "
            p0 0..10 write x 1 -> ok
            p0 0..10 write y 1 -> ok
            ",
        );
        let result = check(&history, &[read(1, "x", Some("1"))]);
        assert!(matches!(result.verdict, Verdict::Unknown { .. }));
        assert_eq!(result.unread, [(1, "y".to_owned())]);
        let nothing = check(&history, &[]);
        assert!(matches!(nothing.verdict, Verdict::Unknown { .. }));
    }

    #[test]
    fn a_truncated_history_cannot_prove_a_loss() {
        let mut history = parse(TWO_WRITES);
        history.dropped_operations = 1;
        let result = check(&history, &[read(1, "x", Some("7"))]);
        assert!(
            matches!(result.verdict, Verdict::Unknown { .. }),
            "{result:?}"
        );
        assert_eq!(result.lost_count, 1);
    }
}
