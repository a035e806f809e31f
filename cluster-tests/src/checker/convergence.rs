//! Convergence: once the faults have healed and the workload stopped, every node holds the
//! same applied state.
//!
//! The harness reads each node's applied index and its settings (key, value and the log
//! index of the write that last changed it) and, for the replicated state that is not
//! settings (routing configuration, later admissions and CDRs), whatever digest the node can
//! report. Every node must agree on all of it: the same applied index (the harness waits for
//! the cluster to go quiet first), the same keys with the same values written at the same
//! log index, the same digests. A difference names the key and what each node holds.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{checker::Verdict, history::NodeId};

/// Most differences listed in a result; the count covers them all.
pub const MAX_REPORTED_DIFFERENCES: usize = 100;

/// One setting as a node holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingEntry {
    pub key: String,
    pub value: String,
    /// The log index of the write that last changed it: equal values written by different
    /// writes are a difference too.
    pub modify_index: u64,
}

/// What one node holds after healing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalNodeState {
    pub node: NodeId,
    pub applied_index: u64,
    pub settings: Vec<SettingEntry>,
    /// Other replicated state, summarised by the node (name → digest), compared verbatim.
    #[serde(default)]
    pub digests: BTreeMap<String, String>,
}

/// Something the nodes disagree on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// `applied_index`, `setting <key>` or `digest <name>`.
    pub what: String,
    /// What each node holds; `None` when it holds nothing.
    pub values: BTreeMap<NodeId, Option<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvergenceResult {
    pub verdict: Verdict,
    pub nodes: usize,
    pub applied_indexes: BTreeMap<NodeId, u64>,
    pub keys: usize,
    pub difference_count: usize,
    /// The first [`MAX_REPORTED_DIFFERENCES`] differences.
    pub differences: Vec<Difference>,
}

/// Compares the nodes' final states.
pub fn check(states: &[FinalNodeState]) -> ConvergenceResult {
    let applied_indexes: BTreeMap<NodeId, u64> = states
        .iter()
        .map(|state| (state.node, state.applied_index))
        .collect();
    let mut settings: BTreeMap<NodeId, BTreeMap<&str, String>> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for state in states {
        let held = settings.entry(state.node).or_default();
        for entry in &state.settings {
            let shown = format!("{} @{}", entry.value, entry.modify_index);
            if held.insert(entry.key.as_str(), shown).is_some() {
                duplicates.push(format!("node {} lists {} twice", state.node, entry.key));
            }
        }
    }
    let keys: BTreeSet<&str> = settings
        .values()
        .flat_map(|held| held.keys().copied())
        .collect();
    let digest_names: BTreeSet<&str> = states
        .iter()
        .flat_map(|state| state.digests.keys().map(String::as_str))
        .collect();

    let mut differences = Vec::new();
    let mut difference_count = 0;
    let mut note = |what: String, values: BTreeMap<NodeId, Option<String>>| {
        let distinct: BTreeSet<&Option<String>> = values.values().collect();
        if distinct.len() > 1 {
            difference_count += 1;
            if differences.len() < MAX_REPORTED_DIFFERENCES {
                differences.push(Difference { what, values });
            }
        }
    };
    note(
        "applied_index".to_owned(),
        applied_indexes
            .iter()
            .map(|(node, index)| (*node, Some(index.to_string())))
            .collect(),
    );
    for key in &keys {
        note(
            format!("setting {key}"),
            settings
                .iter()
                .map(|(node, held)| (*node, held.get(key).cloned()))
                .collect(),
        );
    }
    for name in &digest_names {
        note(
            format!("digest {name}"),
            states
                .iter()
                .map(|state| (state.node, state.digests.get(*name).cloned()))
                .collect(),
        );
    }

    let verdict = if difference_count > 0 {
        let first = &differences[0];
        let held: Vec<String> = first
            .values
            .iter()
            .map(|(node, value)| format!("n{node}: {}", value.as_deref().unwrap_or("(nothing)")))
            .collect();
        Verdict::Fail {
            reason: format!(
                "{difference_count} differences between nodes; first: {}: {}",
                first.what,
                held.join(", ")
            ),
        }
    } else if !duplicates.is_empty() {
        Verdict::Unknown {
            reason: format!("malformed final state: {}", duplicates.join("; ")),
        }
    } else if applied_indexes.len() < 2 {
        Verdict::Unknown {
            reason: format!(
                "{} nodes' final state: nothing to compare",
                applied_indexes.len()
            ),
        }
    } else {
        Verdict::Pass
    };
    ConvergenceResult {
        verdict,
        nodes: applied_indexes.len(),
        applied_indexes,
        keys: keys.len(),
        difference_count,
        differences,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's state from `key=value@index` words.
    fn node(node: NodeId, applied_index: u64, settings: &str) -> FinalNodeState {
        FinalNodeState {
            node,
            applied_index,
            settings: settings
                .split_whitespace()
                .map(|word| {
                    let (key, rest) = word.split_once('=').unwrap();
                    let (value, index) = rest.split_once('@').unwrap();
                    SettingEntry {
                        key: key.into(),
                        value: value.into(),
                        modify_index: index.parse().unwrap(),
                    }
                })
                .collect(),
            digests: BTreeMap::new(),
        }
    }

    fn check_nodes(states: &[FinalNodeState], expected: &str, first_difference: Option<&str>) {
        let result = check(states);
        assert_eq!(result.verdict.name(), expected, "{result:#?}");
        assert_eq!(
            result.differences.first().map(|d| d.what.as_str()),
            first_difference
        );
    }

    #[test]
    fn equal_nodes_converge() {
        check_nodes(
            &[
                node(1, 9, "a=1@3 b=2@9"),
                node(2, 9, "b=2@9 a=1@3"),
                node(3, 9, "a=1@3 b=2@9"),
            ],
            "pass",
            None,
        );
    }

    #[test]
    fn a_node_behind_is_a_difference() {
        check_nodes(
            &[node(1, 9, "a=1@3 b=2@9"), node(2, 8, "a=1@3")],
            "fail",
            Some("applied_index"),
        );
        let result = check(&[node(1, 9, "a=1@3 b=2@9"), node(2, 8, "a=1@3")]);
        assert_eq!(result.difference_count, 2);
        assert_eq!(result.differences[1].values[&2], None);
        assert!(result.verdict.reason().unwrap().contains("n2: 8"));
    }

    #[test]
    fn the_same_value_from_another_write_is_a_difference() {
        check_nodes(
            &[node(1, 9, "a=1@3"), node(2, 9, "a=1@5")],
            "fail",
            Some("setting a"),
        );
    }

    #[test]
    fn digests_are_compared_too() {
        let mut first = node(1, 9, "a=1@3");
        let mut second = node(2, 9, "a=1@3");
        first.digests.insert("routing".into(), "abc".into());
        second.digests.insert("routing".into(), "abd".into());
        check_nodes(&[first, second], "fail", Some("digest routing"));
    }

    #[test]
    fn one_node_or_a_malformed_state_is_unknown() {
        check_nodes(&[node(1, 9, "a=1@3")], "unknown", None);
        check_nodes(&[], "unknown", None);
        check_nodes(
            &[node(1, 9, "a=1@3 a=1@3"), node(2, 9, "a=1@3")],
            "unknown",
            None,
        );
    }
}
