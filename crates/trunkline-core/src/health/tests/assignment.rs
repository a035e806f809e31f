//! Tests of probe assignment: golden weights (the hash must never change between builds or
//! nodes) and properties of rendezvous hashing.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::health::{assign, rendezvous_weight, NodeId};

#[track_caller]
fn check(gateway: &str, live_nodes: &[NodeId], expected: Option<NodeId>) {
    assert_eq!(
        assign(gateway, live_nodes),
        expected,
        "gateway {gateway} nodes {live_nodes:?}"
    );
}

#[test]
fn weights_are_stable_across_builds() {
    // Pinned values: every node of every version must compute the same weights, or two nodes
    // would both (or neither) probe a gateway during a rolling upgrade. The values come from
    // an independent model: FNV-1a 64 of name + 0xff + big-endian id, then SplitMix64's
    // finaliser (whose FNV part gives the published 0xaf63dc4c8601ec8c for "a").
    assert_eq!(rendezvous_weight("", 0), 0x80b1_ece3_5ca7_1072);
    assert_eq!(rendezvous_weight("gw-east-1", 1), 0xeca0_a158_9144_7e49);
}

#[test]
fn assignment_picks_one_live_node_or_none() {
    check("gw-east-1", &[], None);
    check("gw-east-1", &[7], Some(7));
    let winner = assign("gw-east-1", &[1, 2, 3]).expect("some node");
    check("gw-east-1", &[3, 2, 1], Some(winner));
    check("gw-east-1", &[1, 2, 3, 2, 1], Some(winner));
}

fn gateway_names() -> Vec<String> {
    (0..3_000)
        .map(|index| format!("carrier{}-gw{}", index % 37, index))
        .collect()
}

#[test]
fn distribution_is_roughly_even() {
    let nodes: Vec<NodeId> = (1..=5).collect();
    let mut counts: BTreeMap<NodeId, usize> = BTreeMap::new();
    let gateways = gateway_names();
    for gateway in &gateways {
        *counts
            .entry(assign(gateway, &nodes).expect("some node"))
            .or_default() += 1;
    }
    let expected = gateways.len() / nodes.len();
    for (node, count) in &counts {
        assert!(
            count.abs_diff(expected) * 100 <= expected * 15,
            "node {node} probes {count} gateways, expected about {expected}: {counts:?}"
        );
    }
    assert_eq!(counts.len(), nodes.len());
}

#[test]
fn adding_a_node_moves_about_one_in_n() {
    let before: Vec<NodeId> = (1..=4).collect();
    let after: Vec<NodeId> = (1..=5).collect();
    let gateways = gateway_names();
    let moved = gateways
        .iter()
        .filter(|gateway| assign(gateway, &before) != assign(gateway, &after))
        .inspect(|gateway| assert_eq!(assign(gateway, &after), Some(5), "moved to the new node"))
        .count();
    let expected = gateways.len() / 5;
    assert!(
        moved.abs_diff(expected) * 100 <= expected * 15,
        "{moved} of {} gateways moved, expected about {expected}",
        gateways.len()
    );
}

proptest! {
    #[test]
    fn every_gateway_gets_exactly_one_live_node(
        gateway in "[a-z0-9-]{1,20}",
        nodes in prop::collection::btree_set(any::<u64>(), 1..8),
    ) {
        let live: Vec<NodeId> = nodes.iter().copied().collect();
        let chosen = assign(&gateway, &live);
        prop_assert!(chosen.is_some_and(|node| nodes.contains(&node)));
        // The answer does not depend on the order nodes are listed in.
        let reversed: Vec<NodeId> = live.iter().rev().copied().collect();
        prop_assert_eq!(assign(&gateway, &reversed), chosen);
    }

    #[test]
    fn removing_a_node_moves_only_its_gateways(
        gateways in prop::collection::vec("[a-z0-9-]{1,20}", 1..50),
        nodes in prop::collection::btree_set(0u64..1_000, 2..8),
        removed_index in any::<prop::sample::Index>(),
    ) {
        let live: Vec<NodeId> = nodes.iter().copied().collect();
        let removed = live[removed_index.index(live.len())];
        let remaining: Vec<NodeId> = live.iter().copied().filter(|node| *node != removed).collect();
        for gateway in &gateways {
            let before = assign(gateway, &live);
            let after = assign(gateway, &remaining);
            if before != Some(removed) {
                prop_assert_eq!(after, before, "gateway {} moved off a surviving node", gateway);
            } else {
                prop_assert!(after.is_some_and(|node| node != removed));
            }
        }
        let _: BTreeSet<NodeId> = remaining.into_iter().collect();
    }
}
