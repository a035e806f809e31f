//! trunkctl's inbound commands as an operator uses them: the real binary against a real node
//! started in this process. Devices, DIDs and tenant continuity plans through add/update/
//! show/list/remove, a registration reported as an edge would, and `route inbound` going to
//! the device first or straight to continuity; every kind of mistake caught before anything
//! is sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{check, closed_port, json, start_node, trunkctl, trunkctl_with, value_of, Node};
use trunkline_client::{proto, Retry};

const ALICE: &str = "sip:alice@example.com";
const DID: &str = "+14155550100";

/// Reports a registration of `aor` through `edge`, as an edge proxy does.
fn register(node: &Node, edge: &str, aor: &str, contact: &str, expires_s: u32) {
    let request = proto::ReportRegistrationRequest {
        edge: edge.into(),
        aor: aor.into(),
        contact: contact.into(),
        expires_s,
        path: vec![format!("sip:{edge}.example.net;lr")],
        received: "203.0.113.7:5060".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = support::client(&node.api_addr);
        client
            .route(Retry::NotSent, |mut route| {
                let request = request.clone();
                async move { route.report_registration(request).await }
            })
            .await
            .unwrap();
    });
}

#[test]
fn inbound_usage_mistakes_exit_2_before_anything_is_sent() {
    // No node runs at this address: each mistake must be found before any I/O (a request
    // would fail with exit code 1 instead).
    let dead = closed_port();
    let run = |args: &[&str]| trunkctl_with(&dead, args);
    for (args, needle) in [
        (
            &["did", "add", "4155550100", "--tenant", "acme"][..],
            "NUMBER: must be E.164 with '+'",
        ),
        (
            &["did", "add", DID, "--tenant", "bad name"],
            "--tenant: \"bad name\" must be",
        ),
        (
            &[
                "did",
                "add",
                DID,
                "--tenant",
                "acme",
                "--device",
                "alice@example.com",
            ],
            "--device: must be sip:user@domain",
        ),
        (
            &[
                "did",
                "add",
                DID,
                "--tenant",
                "acme",
                "--continuity",
                "+1415/0s",
            ],
            "--continuity: \"+1415/0s\": ",
        ),
        (
            &[
                "did",
                "add",
                DID,
                "--tenant",
                "acme",
                "--continuity",
                "+14155550199/0s",
            ],
            "--continuity: \"+14155550199/0s\": ring time must be from 1s to 5m",
        ),
        (
            &[
                "did",
                "add",
                DID,
                "--tenant",
                "acme",
                "--continuity",
                "4155550199/20s",
            ],
            "is not a continuity target",
        ),
        (
            &["did", "add", DID, "--tenant", "acme", "--continuity", DID],
            "--continuity: continuity loop: +14155550100 -> +14155550100",
        ),
        (
            &[
                "did",
                "add",
                DID,
                "--tenant",
                "acme",
                "--failure-codes",
                "408,486",
            ],
            "--failure-codes: 486 means busy",
        ),
        (
            &[
                "did",
                "add",
                DID,
                "--tenant",
                "acme",
                "--no-answer",
                "100ms",
            ],
            "--no-answer: must be 1000 to 300000 ms",
        ),
        (
            &["did", "add", DID, "--tenant", "acme", "--no-answer", "soon"],
            "--no-answer",
        ),
        (
            &["did", "add", DID, "--tenant", "acme", "--busy", "maybe"],
            "--busy",
        ),
        (
            &[
                "did",
                "update",
                DID,
                "--no-continuity",
                "--continuity",
                "voicemail:a",
            ],
            "--no-continuity",
        ),
        (&["did", "update", DID], "nothing to change"),
        (&["did", "show", "+1"], "NUMBER: must be E.164"),
        (&["did", "remove", "14155550100"], "NUMBER: must be E.164"),
        (
            &["device", "add", "sip:Alice@Example.com", "--tenant", "acme"],
            "AOR: domain must be a lower-case host name",
        ),
        (
            &["device", "add", "sip:example.com", "--tenant", "acme"],
            "AOR: must have a user part",
        ),
        (
            &["device", "update", ALICE, "--enabled", "--disabled"],
            "--disabled",
        ),
        (&["device", "update", ALICE], "nothing to change"),
        (&["device", "bindings", "alice"], "AOR: "),
        (
            &["continuity", "set", "--tenant", "acme"],
            "nothing to change",
        ),
        (
            &[
                "continuity",
                "set",
                "--tenant",
                "acme",
                "--continuity",
                "voicemail:bad box",
            ],
            "--continuity: \"voicemail:bad box\": ",
        ),
        (&["route", "inbound", "4155550100"], "DID: must be E.164"),
    ] {
        check(run(args), 2, &[], &[needle]);
    }
}

#[test]
fn devices_dids_and_continuity_are_configured_shown_and_routed() {
    let node = start_node();
    check(
        trunkctl(&node, &["tenant", "add", "acme"]),
        0,
        &["created"],
        &[],
    );
    check(
        trunkctl(&node, &["device", "add", ALICE, "--tenant", "acme"]),
        0,
        &["Device \"sip:alice@example.com\" created (log index"],
        &[],
    );
    check(
        trunkctl(
            &node,
            &[
                "did",
                "add",
                DID,
                "--tenant",
                "acme",
                "--device",
                ALICE,
                "--continuity",
                "+14155550199/25s,voicemail:alice,sip:desk@pbx.example/15s",
                "--busy",
                "on",
                "--no-answer",
                "15s",
            ],
        ),
        0,
        &["DID \"+14155550100\" created"],
        &[],
    );
    check(
        trunkctl(&node, &["did", "add", DID, "--tenant", "acme"]),
        3,
        &[],
        &["did \"+14155550100\" already exists"],
    );

    // show and list, as a table and as JSON.
    let shown = check(trunkctl(&node, &["did", "show", DID]), 0, &[], &[]);
    assert_eq!(value_of(&shown, "tenant"), "acme");
    assert_eq!(value_of(&shown, "device"), ALICE);
    assert_eq!(
        value_of(&shown, "continuity"),
        "+14155550199/25s,voicemail:alice/20s,sip:desk@pbx.example/15s"
    );
    assert_eq!(value_of(&shown, "on busy"), "yes");
    assert_eq!(value_of(&shown, "on no answer"), "after 15s");
    assert_eq!(value_of(&shown, "on failure codes"), "408,480");
    let shown = json(&check(
        trunkctl(&node, &["-o", "json", "did", "show", DID, "--linearizable"]),
        0,
        &[],
        &[],
    ));
    assert_eq!(shown["continuity"]["targets"][1]["kind"], "voicemail");
    assert_eq!(shown["continuity"]["targets"][1]["destination"], "alice");
    assert_eq!(shown["continuity"]["targets"][1]["ring_timeout_ms"], 20_000);
    assert_eq!(shown["continuity"]["triggers"]["no_answer_ms"], 15_000);
    let listed = check(
        trunkctl(&node, &["did", "list", "--tenant", "acme"]),
        0,
        &["DID", "TENANT", "DEVICE", "CONTINUITY", DID, ALICE],
        &[],
    );
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let listed = check(
        trunkctl(&node, &["did", "list", "--tenant", "other"]),
        0,
        &[],
        &[],
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");
    check(
        trunkctl(&node, &["device", "list"]),
        0,
        &["DEVICE", ALICE, "acme", "enabled"],
        &[],
    );
    check(
        trunkctl(&node, &["did", "show", "+14155550999"]),
        3,
        &[],
        &["not found"],
    );

    // update keeps what was not given.
    check(
        trunkctl(
            &node,
            &[
                "did",
                "update",
                DID,
                "--busy",
                "off",
                "--failure-codes",
                "404",
            ],
        ),
        0,
        &["updated"],
        &[],
    );
    let shown = check(trunkctl(&node, &["did", "show", DID]), 0, &[], &[]);
    assert_eq!(value_of(&shown, "on busy"), "no");
    assert_eq!(value_of(&shown, "on failure codes"), "404");
    assert_eq!(value_of(&shown, "on no answer"), "after 15s");
    assert!(value_of(&shown, "continuity").starts_with("+14155550199/25s,"));
    check(
        trunkctl(&node, &["did", "update", "+14155550999", "--busy", "on"]),
        3,
        &[],
        &["not found"],
    );

    // Not registered: straight to continuity, the device skipped, and why.
    let routed = check(
        trunkctl(&node, &["route", "inbound", DID]),
        0,
        &[
            "tenant acme",
            "Straight to continuity: the device is not registered",
            "+14155550199",
            "voicemail:alice",
            "sip:desk@pbx.example",
        ],
        &[],
    );
    assert!(
        !routed
            .lines()
            .any(|line| line.split_whitespace().nth(1) == Some("device")),
        "{routed}"
    );
    check(
        trunkctl(&node, &["route", "inbound", "+14155550999"]),
        3,
        &[],
        &["no inbound route for +14155550999", "not found"],
    );

    // A registration reported by an edge: the bindings, then the device rung first.
    register(&node, "edge-a", ALICE, "sip:alice@10.0.0.5:5060", 300);
    let bindings = check(
        trunkctl(&node, &["device", "bindings", ALICE, "--linearizable"]),
        0,
        &[
            "EDGE",
            "EXPIRES",
            "REFRESHED",
            "edge-a",
            "sip:alice@10.0.0.5:5060",
            "sip:edge-a.example.net;lr",
            "203.0.113.7:5060",
            " ago",
        ],
        &[],
    );
    let row = bindings.lines().nth(1).unwrap();
    assert!(row.contains("in 4m") || row.contains("in 5m0s"), "{row}");
    let bindings = json(&check(
        trunkctl(&node, &["-o", "json", "device", "bindings", ALICE]),
        0,
        &[],
        &[],
    ));
    assert_eq!(bindings["bindings"][0]["edge"], "edge-a");
    check(
        trunkctl(&node, &["device", "show", ALICE, "--linearizable"]),
        0,
        &["Live bindings", "edge-a", DID],
        &[],
    );
    let routed = check(
        trunkctl(&node, &["route", "inbound", DID, "--from", "+12125550111"]),
        0,
        &["Device: sip:alice@example.com"],
        &[],
    );
    assert!(!routed.contains("Straight to continuity"), "{routed}");
    let first_leg = routed
        .lines()
        .skip_while(|line| !line.starts_with("STEP"))
        .nth(1)
        .unwrap();
    assert!(
        first_leg.contains("device") && first_leg.contains("sip:alice@10.0.0.5:5060"),
        "{routed}"
    );
    let routed = json(&check(
        trunkctl(&node, &["-o", "json", "route", "inbound", DID]),
        0,
        &[],
        &[],
    ));
    assert_eq!(routed["legs"][0]["kind"], "device");
    assert_eq!(routed["legs"][0]["edge"], "edge-a");
    assert_eq!(routed["legs"][1]["kind"], "continuity");
    assert_eq!(routed["legs"][1]["step"], 2);

    // The tenant's default plan applies once the DID's own plan is gone.
    check(
        trunkctl(
            &node,
            &[
                "continuity",
                "set",
                "--tenant",
                "acme",
                "--continuity",
                "voicemail:main/30s",
            ],
        ),
        0,
        &["set"],
        &[],
    );
    let shown = check(
        trunkctl(&node, &["continuity", "show", "--tenant", "acme"]),
        0,
        &[],
        &[],
    );
    assert_eq!(value_of(&shown, "continuity"), "voicemail:main/30s");
    assert_eq!(value_of(&shown, "on not registered"), "yes");
    check(
        trunkctl(&node, &["did", "update", DID, "--no-continuity"]),
        0,
        &["updated"],
        &[],
    );
    check(
        trunkctl(&node, &["did", "show", DID]),
        0,
        &["none of its own"],
        &[],
    );
    check(
        trunkctl(&node, &["device", "update", ALICE, "--disabled"]),
        0,
        &["updated"],
        &[],
    );
    check(
        trunkctl(&node, &["route", "inbound", DID]),
        0,
        &[
            "Straight to continuity: the device is disabled",
            "voicemail:main",
        ],
        &[],
    );
    check(
        trunkctl(&node, &["continuity", "clear", "--tenant", "acme"]),
        0,
        &["cleared"],
        &[],
    );
    check(
        trunkctl(&node, &["continuity", "show", "--tenant", "acme"]),
        0,
        &["none (calls that can't reach the device stop with 480)"],
        &[],
    );
    // Disabled and no plan anywhere: nowhere to go.
    check(
        trunkctl(&node, &["route", "inbound", DID]),
        3,
        &[],
        &[
            "no inbound route for +14155550100",
            "the device is disabled",
        ],
    );

    // The node refuses what only it can see, with the reason.
    check(
        trunkctl(
            &node,
            &[
                "did",
                "add",
                "+14155550101",
                "--tenant",
                "acme",
                "--device",
                "sip:bob@example.com",
            ],
        ),
        1,
        &[],
        &["sip:bob@example.com"],
    );

    check(
        trunkctl(&node, &["did", "remove", DID]),
        0,
        &["DID \"+14155550100\" removed"],
        &[],
    );
    check(
        trunkctl(&node, &["device", "remove", ALICE]),
        0,
        &["removed"],
        &[],
    );
    check(
        trunkctl(&node, &["device", "bindings", ALICE]),
        3,
        &[],
        &["device \"sip:alice@example.com\" not found"],
    );
}
