//! "Every acknowledged call record is present": each call end a node acknowledged (the
//! `EndCall` operations that completed `Ok`) has its record, ended, in the archive of every
//! node at the end of the run. A node acknowledges an end only once the call's record is
//! applied, so a missing one is a record lost after it was acknowledged.
//!
//! A node that caught up from a snapshot lacks the records made before it (its archive says
//! from when it is whole); it is left out of the check, and counted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Verdict;
use crate::history::{History, OpKind, Outcome};

/// The ended calls one node's archive holds, as read at the end of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecords {
    pub node: u64,
    /// The log time from which the node's archive is whole (0: all of it).
    pub complete_since_ms: u64,
    /// Call-IDs with a record of the call's end.
    pub ended: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CdrsResult {
    pub verdict: Verdict,
    /// Ends acknowledged to the clients.
    pub acknowledged: u64,
    /// Nodes whose archive was checked, and nodes left out (caught up from a snapshot).
    pub nodes_checked: u64,
    pub nodes_incomplete: u64,
    /// Acknowledged records missing, on the node missing the most.
    pub missing: u64,
}

pub fn check(history: &History, nodes: &[NodeRecords]) -> CdrsResult {
    let acknowledged: BTreeSet<&str> = history
        .operations
        .iter()
        .filter_map(|operation| match (&operation.kind, &operation.outcome) {
            (OpKind::EndCall { call }, Outcome::Ok { .. }) => Some(call.as_str()),
            _ => None,
        })
        .collect();
    let complete: Vec<&NodeRecords> = nodes
        .iter()
        .filter(|node| node.complete_since_ms == 0)
        .collect();
    let mut worst: Option<(u64, Vec<&str>)> = None;
    for node in &complete {
        let missing: Vec<&str> = acknowledged
            .iter()
            .filter(|call| !node.ended.contains(**call))
            .copied()
            .collect();
        if !missing.is_empty()
            && worst
                .as_ref()
                .is_none_or(|(_, most)| missing.len() > most.len())
        {
            worst = Some((node.node, missing));
        }
    }
    let verdict = match &worst {
        Some((node, missing)) => Verdict::Fail {
            reason: format!(
                "node {node} lacks {} acknowledged call records: {}",
                missing.len(),
                missing
                    .iter()
                    .take(5)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        None if complete.is_empty() => Verdict::Unknown {
            reason: "no node with a whole archive was read".to_owned(),
        },
        None if acknowledged.is_empty() => Verdict::Unknown {
            reason: "no call end was acknowledged".to_owned(),
        },
        None => Verdict::Pass,
    };
    CdrsResult {
        verdict,
        acknowledged: acknowledged.len() as u64,
        nodes_checked: complete.len() as u64,
        nodes_incomplete: (nodes.len() - complete.len()) as u64,
        missing: worst.map_or(0, |(_, missing)| missing.len() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Recorder;

    fn ended(recorder: &Recorder, call: &str, acknowledged: bool) {
        let end = recorder.invoke(1, 1, OpKind::EndCall { call: call.into() });
        if acknowledged {
            recorder.complete(end, Outcome::written(true));
        }
    }

    fn node(node: u64, complete_since_ms: u64, calls: &[&str]) -> NodeRecords {
        NodeRecords {
            node,
            complete_since_ms,
            ended: calls.iter().map(|call| (*call).to_owned()).collect(),
        }
    }

    #[test]
    fn an_acknowledged_end_missing_from_a_whole_archive_fails() {
        let recorder = Recorder::new();
        ended(&recorder, "a", true);
        ended(&recorder, "b", true);
        // Never acknowledged: it may or may not be there.
        ended(&recorder, "c", false);
        let history = recorder.history();

        let all = [node(1, 0, &["a", "b"]), node(2, 0, &["a", "b", "c"])];
        let result = check(&history, &all);
        assert!(result.verdict.is_pass(), "{result:?}");
        assert_eq!((result.acknowledged, result.nodes_checked), (2, 2));

        let lost = [node(1, 0, &["a", "b"]), node(2, 0, &["a"])];
        let result = check(&history, &lost);
        assert!(result.verdict.is_fail(), "{result:?}");
        assert_eq!(result.missing, 1);

        // A node that caught up from a snapshot is left out, not failed.
        let caught_up = [node(1, 0, &["a", "b"]), node(2, 5, &[])];
        let result = check(&history, &caught_up);
        assert!(result.verdict.is_pass(), "{result:?}");
        assert_eq!(result.nodes_incomplete, 1);
        assert!(!check(&history, &[node(2, 5, &[])]).verdict.is_pass());
    }
}
