//! trunkctl's edge commands as an operator uses them: the real binary against a real node
//! started in this process. Edge proxies through add/update/show/list/remove, every kind of
//! mistake caught before anything is sent, the namespace edges share with gateways, and
//! `health` listing declared edges as `(edge)` while the node probes SIP responders on
//! 127.0.0.1 standing in for them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{check, closed_port, json, start_node, trunkctl, trunkctl_with, value_of, Node};
use trunkline_node::sip_responder::{Behaviour, SipResponder};

/// Longest wait for an edge to be probed or change state: probes run every 200 ms here.
const HEALTH_WAIT: Duration = Duration::from_secs(20);
/// Pause between two polls of `trunkctl health`.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Probe overrides that make an edge change state within a second.
const FAST_PROBES: &[&str] = &[
    "--probe-interval",
    "200ms",
    "--probe-timeout",
    "100ms",
    "--down-after",
    "2",
    "--up-after",
    "1",
];

/// The cells of the table line whose first cell is `name`.
fn cells_of(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{table}"))
        .split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs `trunkctl health` until its table satisfies `done`; fails with `what` and the last
/// table after [`HEALTH_WAIT`].
fn wait_for_health(node: &Node, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + HEALTH_WAIT;
    loop {
        let table = check(trunkctl(node, &["health"]), 0, &[], &[]);
        if done(&table) {
            return table;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {HEALTH_WAIT:?}; last `trunkctl health`:\n{table}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[test]
fn edge_usage_mistakes_exit_2_before_anything_is_sent() {
    // No node runs at this address: each mistake must be found before any I/O (a request
    // would fail with exit code 1 instead).
    let dead = closed_port();
    let run = |args: &[&str]| trunkctl_with(&dead, args);
    let uri = "sip:edge1.example.net";
    for (args, needle) in [
        (
            &["edge", "add", "edge1", "--uri", "http://edge1.example.net"][..],
            "--uri: must start with sip: or sips:",
        ),
        (
            &[
                "edge",
                "add",
                "edge1",
                "--uri",
                "sip:alice@edge1.example.net",
            ],
            "--uri: must not have a user part",
        ),
        (&["edge", "add", "edge1"], "--uri"),
        (
            &["edge", "add", "bad name", "--uri", uri],
            "edge name: \"bad name\" must be",
        ),
        (
            &[
                "edge",
                "add",
                "edge1",
                "--uri",
                uri,
                "--probe-interval",
                "10ms",
            ],
            "--probe-interval: interval_ms must be from 100",
        ),
        (
            &[
                "edge",
                "add",
                "edge1",
                "--uri",
                uri,
                "--alive-codes",
                "200,408",
            ],
            "--alive-codes: alive code 408",
        ),
        (
            &["edge", "add", "edge1", "--uri", uri, "--probe", "maybe"],
            "'maybe' for '--probe <on|off>'",
        ),
        (&["edge", "update", "edge1"], "nothing to change"),
        (
            &["edge", "update", "edge1", "--enabled", "--disabled"],
            "--disabled",
        ),
        (
            &["edge", "update", "edge1", "--uri", "edge1.example.net"],
            "--uri: must start with sip: or sips:",
        ),
        (
            &["edge", "update", "edge1", "--down-after", "0"],
            "--down-after: down_after must be from 1",
        ),
        (
            &["edge", "update", "edge1", "--probe-timeout", "50ms"],
            "--probe-timeout: timeout_ms must be from 100",
        ),
        (&["edge", "show", "bad name"], "edge name: \"bad name\""),
        (&["edge", "remove", "edge!"], "edge name: \"edge!\""),
    ] {
        check(run(args), 2, &[], &[needle]);
    }
}

#[test]
fn edges_add_show_list_update_and_remove() {
    let node = start_node();
    check(
        trunkctl(&node, &["edge", "list"]),
        0,
        &["EDGE", "URI", "STATE", "PROBE"],
        &[],
    );
    check(
        trunkctl(
            &node,
            &[
                "edge",
                "add",
                "edge-a",
                "--uri",
                "sip:edge-a.example.net:5070;transport=tcp",
                "--probe-interval",
                "5s",
                "--down-after",
                "4",
            ],
        ),
        0,
        &["Edge \"edge-a\" created (log index"],
        &[],
    );
    check(
        trunkctl(
            &node,
            &["edge", "add", "edge-a", "--uri", "sip:edge-a.example.net"],
        ),
        3,
        &[],
        &["edge \"edge-a\" already exists; `trunkctl edge update`"],
    );
    check(
        trunkctl(
            &node,
            &[
                "edge",
                "add",
                "edge-b",
                "--uri",
                "sip:edge-b.example.net",
                "--disabled",
            ],
        ),
        0,
        &["created"],
        &[],
    );

    let shown = check(trunkctl(&node, &["edge", "show", "edge-a"]), 0, &[], &[]);
    for (field, value) in [
        ("name", "edge-a"),
        ("uri", "sip:edge-a.example.net:5070;transport=tcp"),
        ("state", "enabled"),
        ("probe", "on"),
        ("probe interval", "5s"),
        ("probe down after", "4"),
    ] {
        assert_eq!(value_of(&shown, field), value, "{field}");
    }
    let list = check(trunkctl(&node, &["edge", "list"]), 0, &[], &[]);
    assert_eq!(
        cells_of(&list, "edge-a"),
        [
            "edge-a",
            "sip:edge-a.example.net:5070;transport=tcp",
            "enabled",
            "on (overrides)"
        ]
    );
    assert_eq!(
        cells_of(&list, "edge-b"),
        ["edge-b", "sip:edge-b.example.net", "disabled", "on"]
    );

    // Update changes only what it is given; the overrides not given are kept.
    check(
        trunkctl(
            &node,
            &[
                "edge",
                "update",
                "edge-a",
                "--uri",
                "sip:10.0.0.7",
                "--disabled",
                "--up-after",
                "3",
            ],
        ),
        0,
        &["Edge \"edge-a\" updated"],
        &[],
    );
    let edge = json(&check(
        trunkctl(&node, &["-o", "json", "edge", "show", "edge-a"]),
        0,
        &[],
        &[],
    ));
    assert_eq!(
        edge,
        serde_json::json!({
            "name": "edge-a", "uri": "sip:10.0.0.7", "enabled": false,
            "probe": {
                "disabled": false, "interval_ms": 5000, "timeout_ms": null, "down_after": 4,
                "up_after": 3, "alive_codes": [],
            },
        })
    );
    check(
        trunkctl(
            &node,
            &["edge", "update", "edge-a", "--enabled", "--probe-defaults"],
        ),
        0,
        &["updated"],
        &[],
    );
    let shown = check(trunkctl(&node, &["edge", "show", "edge-a"]), 0, &[], &[]);
    assert_eq!(value_of(&shown, "state"), "enabled");
    assert_eq!(value_of(&shown, "probe"), "on (cluster policy)");
    assert_eq!(value_of(&shown, "uri"), "sip:10.0.0.7");
    check(
        trunkctl(&node, &["edge", "update", "edge-a", "--probe", "off"]),
        0,
        &["updated"],
        &[],
    );
    let list = check(trunkctl(&node, &["edge", "list"]), 0, &[], &[]);
    assert_eq!(cells_of(&list, "edge-a")[3], "off");

    check(
        trunkctl(&node, &["edge", "remove", "edge-a"]),
        0,
        &["Edge \"edge-a\" removed"],
        &[],
    );
    let list = json(&check(
        trunkctl(&node, &["-o", "json", "edge", "list"]),
        0,
        &[],
        &[],
    ));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["edge-b"]);
    for args in [
        &["edge", "show", "edge-a"][..],
        &["edge", "remove", "edge-a"],
        &["edge", "update", "edge-a", "--disabled"],
    ] {
        check(
            trunkctl(&node, args),
            3,
            &[],
            &["edge \"edge-a\" not found; `trunkctl edge list`"],
        );
    }
}

#[test]
fn edges_and_gateways_share_names() {
    let node = start_node();
    check(trunkctl(&node, &["carrier", "add", "acme"]), 0, &[], &[]);
    check(
        trunkctl(
            &node,
            &[
                "gateway",
                "add",
                "shared",
                "--carrier",
                "acme",
                "--uri",
                "sip:gw.acme.example",
            ],
        ),
        0,
        &[],
        &[],
    );
    // The node refuses the clash; nothing was created.
    check(
        trunkctl(
            &node,
            &["edge", "add", "shared", "--uri", "sip:edge.example.net"],
        ),
        1,
        &[],
        &["is the name of a gateway; gateways and edges share names"],
    );
    check(
        trunkctl(&node, &["edge", "show", "shared"]),
        3,
        &[],
        &["not found"],
    );
}

#[test]
fn health_lists_declared_edges_as_edges_with_their_prober() {
    let node = start_node();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let alive = runtime
        .block_on(SipResponder::start_tcp(Behaviour::Reply(200)))
        .unwrap();
    let silent = runtime
        .block_on(SipResponder::start_udp(Behaviour::Silent))
        .unwrap();
    for (name, uri) in [("edge-alive", alive.uri()), ("edge-silent", silent.uri())] {
        let mut args = vec!["edge", "add", name, "--uri", &uri];
        args.extend_from_slice(FAST_PROBES);
        check(trunkctl(&node, &args), 0, &["created"], &[]);
    }
    check(trunkctl(&node, &["carrier", "add", "acme"]), 0, &[], &[]);
    check(
        trunkctl(
            &node,
            &[
                "gateway",
                "add",
                "gw1",
                "--carrier",
                "acme",
                "--uri",
                "sip:gw1.acme.example",
                "--probe",
                "off",
            ],
        ),
        0,
        &[],
        &[],
    );

    let table = wait_for_health(&node, "both edges were probed", |table| {
        table.contains("edge-silent")
            && cells_of(table, "edge-silent").contains(&"down".into())
            && cells_of(table, "edge-alive").contains(&"200".into())
    });
    let cells = cells_of(&table, "edge-alive");
    assert_eq!(
        cells[..5],
        ["edge-alive", "(edge)", "up", "-", "-"],
        "{table}"
    );
    assert!(cells[5].ends_with(" ms"), "{table}");
    assert_eq!(cells[6..], ["200", "node 1"], "{table}");
    let cells = cells_of(&table, "edge-silent");
    assert_eq!(cells[..3], ["edge-silent", "(edge)", "down"], "{table}");
    assert_eq!(cells.last().unwrap(), "node 1", "{table}");
    // A gateway still shows its carrier.
    assert_eq!(cells_of(&table, "gw1")[1], "acme", "{table}");
    assert!(!alive.received().is_empty(), "the edge's probes reached it");

    let list = json(&check(
        trunkctl(&node, &["-o", "json", "health"]),
        0,
        &[],
        &[],
    ));
    let line = |name: &str| {
        list["gateways"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["gateway"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .clone()
    };
    let edge = line("edge-alive");
    assert_eq!(edge["edge"], true);
    assert_eq!(edge["carrier"], "");
    assert_eq!(edge["prober_node"], 1);
    assert_eq!(line("gw1")["edge"], false);

    // Disabled, an edge is no longer probed: no prober.
    check(
        trunkctl(&node, &["edge", "update", "edge-alive", "--disabled"]),
        0,
        &["updated"],
        &[],
    );
    let table = check(trunkctl(&node, &["health"]), 0, &[], &[]);
    let cells = cells_of(&table, "edge-alive");
    assert_eq!(cells[1], "(edge)", "{table}");
    assert!(cells.contains(&"disabled".into()), "{table}");
    assert_eq!(cells.last().unwrap(), "-", "{table}");
}
