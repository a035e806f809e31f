//! trunkctl as an operator uses it: the real binary against a real node started in this
//! process, checking output, exit codes and the messages of every kind of mistake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{check, closed_port, start_node, trunkctl, trunkctl_with};

#[test]
fn settings_round_trip_in_tables_and_json() {
    let node = start_node();
    check(
        trunkctl(&node, &["config", "set", "routing/strategy", "least-cost"]),
        0,
        &["routing/strategy = least-cost", "version 1"],
        &[],
    );
    let stdout = check(
        trunkctl(&node, &["config", "get", "routing/strategy"]),
        0,
        &[],
        &[],
    );
    assert_eq!(stdout, "least-cost\n");
    let json = check(
        trunkctl(
            &node,
            &[
                "-o",
                "json",
                "config",
                "get",
                "routing/strategy",
                "--linearizable",
            ],
        ),
        0,
        &[],
        &[],
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["setting"]["value"], "least-cost");
    assert_eq!(value["setting"]["version"], 1);
    assert_eq!(value["read_state"]["node_id"], 1);

    // Compare-and-set: a mismatch exits 3 and changes nothing; a match writes.
    check(
        trunkctl(
            &node,
            &[
                "config",
                "cas",
                "routing/strategy",
                "--expected",
                "priority",
                "--value",
                "weighted",
            ],
        ),
        3,
        &["holds \"least-cost\""],
        &["compare failed"],
    );
    check(
        trunkctl(
            &node,
            &[
                "config",
                "cas",
                "routing/strategy",
                "--expected",
                "least-cost",
                "--value",
                "weighted",
            ],
        ),
        0,
        &["= weighted", "version 2"],
        &[],
    );
    check(
        trunkctl(
            &node,
            &["config", "cas", "new-key", "--absent", "--value", "1"],
        ),
        0,
        &["new-key = 1"],
        &[],
    );

    let table = check(
        trunkctl(&node, &["config", "list"]),
        0,
        &["KEY", "new-key", "routing/strategy", "weighted"],
        &[],
    );
    assert!(
        table.find("new-key") < table.find("routing/strategy"),
        "keys out of order: {table}"
    );

    check(
        trunkctl(&node, &["config", "delete", "new-key"]),
        0,
        &["new-key deleted"],
        &[],
    );
    check(
        trunkctl(&node, &["config", "get", "new-key"]),
        3,
        &[],
        &["not found"],
    );
    check(
        trunkctl(&node, &["config", "delete", "new-key"]),
        3,
        &[],
        &["did not exist"],
    );
}

#[test]
fn cluster_commands_show_the_node_and_refuse_what_would_break_it() {
    let node = start_node();
    check(
        trunkctl(&node, &["cluster", "status"]),
        0,
        &["leader", "voter (leader)", &node.api_addr],
        &[],
    );
    let json = check(
        trunkctl(&node, &["-o", "json", "cluster", "members"]),
        0,
        &[],
        &[],
    );
    let members: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(members[0]["node_id"], 1);
    assert_eq!(members[0]["role"], "voter");

    check(
        trunkctl(&node, &["cluster", "init"]),
        1,
        &[],
        &["FAILED_PRECONDITION", "already initialised"],
    );
    check(
        trunkctl(&node, &["cluster", "remove", "1"]),
        1,
        &[],
        &["last voter"],
    );
    let closed = closed_port();
    check(
        trunkctl(
            &node,
            &[
                "cluster",
                "join",
                "--node-id",
                "2",
                "--peer-addr",
                &closed,
                "--api-addr",
                &closed,
            ],
        ),
        1,
        &[],
        &["UNAVAILABLE", "can't reach node 2", &closed],
    );
    check(
        trunkctl(&node, &["cluster", "promote", "7"]),
        1,
        &[],
        &["NOT_FOUND", "member \"7\""],
    );
}

#[test]
fn a_down_endpoint_is_skipped_and_all_down_says_what_to_check() {
    let node = start_node();
    let dead = closed_port();
    check(trunkctl(&node, &["config", "set", "k", "v"]), 0, &[], &[]);
    // The first endpoint is down: the next one answers.
    let both = format!("{dead},{}", node.api_addr);
    let stdout = check(trunkctl_with(&both, &["config", "get", "k"]), 0, &[], &[]);
    assert_eq!(stdout, "v\n");
    check(
        trunkctl_with(&both, &["config", "set", "k", "w"]),
        0,
        &["k = w"],
        &[],
    );
    // Status asks every endpoint and marks the dead one.
    check(
        trunkctl_with(&both, &["cluster", "status"]),
        0,
        &["unreachable", &dead, "leader"],
        &[],
    );
    // All down.
    check(
        trunkctl_with(&dead, &["config", "get", "k"]),
        1,
        &[],
        &["no node could be reached", &dead, "Is trunkline running"],
    );
}

#[test]
fn usage_mistakes_exit_2_before_anything_is_sent() {
    // No node is running at this address: a usage error must be found before any I/O.
    let dead = closed_port();
    check(
        trunkctl_with(
            &dead,
            &[
                "cluster",
                "join",
                "--node-id",
                "0",
                "--peer-addr",
                "a:1",
                "--api-addr",
                "a:2",
            ],
        ),
        2,
        &[],
        &["node id must be a positive number"],
    );
    check(
        trunkctl_with(
            &dead,
            &[
                "cluster",
                "join",
                "--node-id",
                "2",
                "--peer-addr",
                "nohost",
                "--api-addr",
                "a:2",
            ],
        ),
        2,
        &[],
        &["--peer-addr", "host:port"],
    );
    check(
        trunkctl_with(&dead, &["config", "set", "has space", "v"]),
        2,
        &[],
        &["key \"has space\""],
    );
    check(
        trunkctl_with("localhost", &["config", "get", "k"]),
        2,
        &[],
        &["\"localhost\" is not host:port"],
    );
    check(
        trunkctl_with(&format!("{dead},{dead}"), &["cluster", "init"]),
        2,
        &[],
        &["exactly one"],
    );
    check(
        trunkctl_with(&dead, &["config", "cas", "k", "--value", "v"]),
        2,
        &[],
        &["--expected"],
    );
}
