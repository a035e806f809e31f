//! `trunkctl policy` as an operator uses it: scopes set rule by rule, shown, cleared; `route
//! test` showing a blocked call with its reason and SIP code, and emergency calls going through
//! every block; usage limits set and shown; mistakes named by their flag before anything is
//! sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{check, closed_port, json, start_node, trunkctl, trunkctl_with};

#[test]
fn policy_mistakes_exit_2_before_anything_is_sent() {
    let dead = closed_port();
    let run = |args: &[&str]| trunkctl_with(&dead, args);
    for (args, needle) in [
        (
            &["policy", "set", "--tenant", "acme"][..],
            "nothing to change",
        ),
        (
            &[
                "policy",
                "set",
                "--tenant",
                "acme",
                "--block-premium",
                "yes",
            ],
            "--block-premium",
        ),
        (
            &["policy", "set", "--tenant", "a b", "--block-premium", "on"],
            "--tenant",
        ),
        (
            &[
                "policy",
                "set",
                "--tenant",
                "acme",
                "--extension",
                "20 01",
                "--disabled",
                "on",
            ],
            "--extension",
        ),
        (
            &[
                "policy",
                "set",
                "--tenant",
                "acme",
                "--source",
                "voicemail",
                "--extension",
                "2001",
                "--disabled",
                "on",
            ],
            "--extension",
        ),
        (
            &[
                "policy",
                "set",
                "--tenant",
                "acme",
                "--time-zone",
                "Europe/London",
            ],
            "--time-zone: give --allowed-hours with it",
        ),
        (
            &[
                "policy",
                "set",
                "--tenant",
                "acme",
                "--refusal-sip-code",
                "forbidden",
            ],
            "--refusal-sip-code",
        ),
    ] {
        check(run(args), 2, &[], &[needle]);
    }
}

#[test]
fn scopes_block_calls_and_emergency_calls_go_through() {
    let node = start_node();
    let ok = |args: &[&str]| check(trunkctl(&node, args), 0, &[], &[]);
    // A tenant before any emergency-capable carrier: the write warns.
    ok(&["carrier", "add", "cheap"]);
    ok(&[
        "gateway",
        "add",
        "cheap-1",
        "--carrier",
        "cheap",
        "--uri",
        "sip:cheap-1.example.net",
        "--probe",
        "off",
    ]);
    check(
        trunkctl(&node, &["tenant", "add", "acme", "--home-area-code", "212"]),
        0,
        &[],
        &["no emergency-capable carrier"],
    );
    let folder = tempfile::tempdir().unwrap();
    let deck = folder.path().join("deck.csv");
    std::fs::write(&deck, "prefix,rate\n1,0.01\n44,0.02\n1900,0.90\n").unwrap();
    ok(&[
        "rates",
        "import",
        deck.to_str().unwrap(),
        "--carrier",
        "cheap",
    ]);
    ok(&["carrier", "add", "psap", "--capabilities", "emergency"]);
    ok(&[
        "gateway",
        "add",
        "psap-1",
        "--carrier",
        "psap",
        "--uri",
        "sip:psap-1.example.net",
        "--probe",
        "off",
    ]);

    // No policy: premium routes.
    check(
        trunkctl(&node, &["route", "test", "9005551234", "--tenant", "acme"]),
        0,
        &["premium", "cheap"],
        &[],
    );
    ok(&[
        "policy",
        "set",
        "--tenant",
        "acme",
        "--block-premium",
        "on",
        "--block-international",
        "on",
        "--allowed-hours",
        "mon-fri 08:00-18:00",
        "--time-zone",
        "America/New_York",
    ]);
    ok(&[
        "policy",
        "set",
        "--tenant",
        "acme",
        "--extension",
        "2001",
        "--block-international",
        "off",
        "--refusal-sip-code",
        "603",
    ]);
    ok(&[
        "policy",
        "set",
        "--tenant",
        "acme",
        "--source",
        "voicemail",
        "--disabled",
        "on",
    ]);
    let shown = check(
        trunkctl(&node, &["policy", "show", "--tenant", "acme"]),
        0,
        &[
            "Emergency calls are never blocked",
            "extension:2001",
            "source:voicemail",
            "mon-fri 08:00-18:00 (America/New_York)",
        ],
        &[],
    );
    assert!(shown.contains("603"), "{shown}");
    let listed = json(&check(
        trunkctl(
            &node,
            &["--output", "json", "policy", "show", "--tenant", "acme"],
        ),
        0,
        &[],
        &[],
    ));
    assert_eq!(listed["scopes"][0]["scope"], "tenant");
    assert_eq!(listed["scopes"][0]["block_premium"], true);

    // Premium is blocked whatever the hour (the prefix rules come before the hours).
    check(
        trunkctl(&node, &["route", "test", "9005551234", "--tenant", "acme"]),
        3,
        &["Blocked by calling policy (premium)", "SIP 403"],
        &["is blocked"],
    );
    // Voicemail may not call out at all.
    check(
        trunkctl(
            &node,
            &[
                "route",
                "test",
                "4155550100",
                "--tenant",
                "acme",
                "--source",
                "voicemail",
            ],
        ),
        3,
        &["(disabled)", "the policy for voicemail calls"],
        &[],
    );
    // Emergency calls go through every rule, to the emergency-capable carrier, as dialled.
    for source in ["phone", "voicemail"] {
        let routed = json(&check(
            trunkctl(
                &node,
                &[
                    "--output", "json", "route", "test", "911", "--tenant", "acme", "--source",
                    source, "--from", "2001",
                ],
            ),
            0,
            &[],
            &[],
        ));
        assert_eq!(routed["destination_class"], "emergency");
        assert_eq!(routed["legs"][0]["carrier"], "psap");
        assert_eq!(routed["legs"][0]["dial_string"], "911");
    }

    // Clearing the scopes leaves the tenant's own rules.
    ok(&[
        "policy",
        "clear",
        "--tenant",
        "acme",
        "--source",
        "voicemail",
    ]);
    ok(&["policy", "clear", "--tenant", "acme", "--extension", "2001"]);
    let shown = check(
        trunkctl(&node, &["policy", "show", "--tenant", "acme"]),
        0,
        &["tenant"],
        &[],
    );
    assert!(!shown.contains("extension:2001"), "{shown}");
    // A contradiction the node finds across scopes is named by its flag.
    check(
        trunkctl(
            &node,
            &[
                "policy",
                "set",
                "--tenant",
                "acme",
                "--extension",
                "2002",
                "--allowed-countries",
                "44",
            ],
        ),
        2,
        &[],
        &["--block-international"],
    );
    check(
        trunkctl(
            &node,
            &[
                "policy",
                "set",
                "--tenant",
                "nobody",
                "--block-premium",
                "on",
            ],
        ),
        3,
        &[],
        &["tenant \"nobody\" not found"],
    );
}

#[test]
fn usage_limits_are_set_shown_and_checked_before_anything_is_sent() {
    let dead = closed_port();
    for (args, needle) in [
        (
            &["usage", "limits", "--tenant", "acme"][..],
            "nothing to change",
        ),
        (
            &[
                "usage",
                "limits",
                "--tenant",
                "acme",
                "--concurrent-calls",
                "many",
            ],
            "--concurrent-calls",
        ),
        (
            &["usage", "limits", "--tenant", "acme", "--spend-per-day=-3"],
            "--spend-per-day",
        ),
    ] {
        check(trunkctl_with(&dead, args), 2, &[], &[needle]);
    }
    let node = start_node();
    check(trunkctl(&node, &["tenant", "add", "acme"]), 0, &[], &[]);
    check(
        trunkctl(
            &node,
            &[
                "usage",
                "limits",
                "--tenant",
                "acme",
                "--concurrent-calls",
                "10",
                "--spend-per-day",
                "25.50",
                "--max-premium-duration",
                "10m",
            ],
        ),
        0,
        &[],
        &[],
    );
    check(
        trunkctl(
            &node,
            &[
                "usage",
                "limits",
                "--tenant",
                "acme",
                "--each-extension",
                "--concurrent-calls",
                "2",
            ],
        ),
        0,
        &[],
        &[],
    );
    // A limit of 0 is refused by the check the node makes too, naming the flag.
    check(
        trunkctl(
            &node,
            &[
                "usage",
                "limits",
                "--tenant",
                "acme",
                "--calls-per-day",
                "0",
            ],
        ),
        2,
        &[],
        &["--calls-per-day"],
    );
    let shown = check(
        trunkctl(&node, &["usage", "show", "--tenant", "acme"]),
        0,
        &["calls now", "0 / 10", "spend today", "25.5"],
        &[],
    );
    assert!(shown.contains("calls today"), "{shown}");
    let listed = json(&check(
        trunkctl(
            &node,
            &["--output", "json", "usage", "show", "--tenant", "acme"],
        ),
        0,
        &[],
        &[],
    ));
    assert_eq!(listed["limits"]["concurrent_calls"], 10);
    assert_eq!(listed["extension_limits"]["concurrent_calls"], 2);
    assert_eq!(listed["usage"]["active_calls"], 0);
    // Removing a limit.
    check(
        trunkctl(
            &node,
            &[
                "usage",
                "limits",
                "--tenant",
                "acme",
                "--concurrent-calls",
                "none",
            ],
        ),
        0,
        &[],
        &[],
    );
    let listed = json(&check(
        trunkctl(
            &node,
            &["--output", "json", "usage", "show", "--tenant", "acme"],
        ),
        0,
        &[],
        &[],
    ));
    assert!(listed["limits"]["concurrent_calls"].is_null(), "{listed}");
    check(
        trunkctl(&node, &["usage", "show", "--tenant", "nobody"]),
        3,
        &[],
        &["tenant \"nobody\" not found"],
    );
}
