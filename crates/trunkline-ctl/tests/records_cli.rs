//! `trunkctl cdr` and `trunkctl alerts` as an operator uses them: records of blocked and
//! answered calls listed and exported as CSV and JSON lines; a premium burst raising an alert
//! whose action stays through an acknowledgement until `tenant unblock`; mistakes named by
//! their flag.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{check, closed_port, json, start_node, trunkctl, trunkctl_with};
use trunkline_client::{proto, Retry};

/// Routes `to` for tenant acme through the API, as a SIP proxy would; ends it answered when
/// `talk_ms` is given. The answer's refusal reason, if any.
fn call(api_addr: &str, call_id: &str, to: &str, talk_ms: Option<u64>) -> Option<i32> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = support::client(api_addr);
        let request = proto::RouteOutboundRequest {
            tenant: "acme".into(),
            call_id: call_id.into(),
            to: to.into(),
            from: "+12125550100".into(),
            ..Default::default()
        };
        let answer = client
            .route(Retry::NotSent, |mut route| {
                let request = request.clone();
                async move { route.route_outbound(request).await }
            })
            .await
            .unwrap();
        if let Some(talk_ms) = talk_ms {
            let request = proto::ReportCallEndRequest {
                call_id: call_id.into(),
                route_token: answer.route_token.clone(),
                answered: true,
                answer_time_ms: 1_796_000_000_000,
                end_time_ms: 1_796_000_000_000 + talk_ms,
                legs: Vec::new(),
            };
            client
                .route(Retry::NotSent, |mut route| {
                    let request = request.clone();
                    async move { route.report_call_end(request).await }
                })
                .await
                .unwrap();
        }
        answer.refusal.map(|refusal| refusal.reason)
    })
}

/// Runs `args` until its stdout holds `needle` (records and alerts apply a moment after the
/// calls that make them).
fn eventually(node: &support::Node, args: &[&str], needle: &str) -> String {
    for _ in 0..100 {
        let output = trunkctl(node, args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && stdout.contains(needle) {
            return stdout;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{needle:?} never appeared in `trunkctl {}`", args.join(" "));
}

#[test]
fn records_are_listed_and_exported_and_an_alert_blocks_until_unblocked() {
    let node = start_node();
    let ok = |args: &[&str]| check(trunkctl(&node, args), 0, &[], &[]);
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
    ok(&["tenant", "add", "acme"]);
    ok(&["policy", "set", "--tenant", "acme", "--block-premium", "on"]);
    ok(&[
        "alerts",
        "rule",
        "premium-burst",
        "--threshold",
        "2",
        "--action",
        "block-international",
    ]);
    check(
        trunkctl(&node, &["alerts", "rules"]),
        0,
        &["premium-burst", "block-international", "webhook: none"],
        &[],
    );

    // A call answered for 61.5 s, then three premium calls the policy blocks: attempts all
    // the same, so the third raises the alert.
    assert_eq!(
        call(&node.api_addr, "talk@proxy", "4155550100", Some(61_500)),
        None
    );
    for n in 0..3 {
        assert_eq!(
            call(
                &node.api_addr,
                &format!("900-{n}@proxy"),
                &format!("900555{n}000"),
                None
            ),
            Some(proto::RefusalReason::PolicyPremium as i32)
        );
    }

    let listed = eventually(&node, &["cdr", "list"], "900-2@proxy");
    assert!(listed.contains("talk@proxy"), "{listed}");
    assert!(listed.contains("answered"), "{listed}");
    assert!(listed.contains("policy-premium (tenant)"), "{listed}");
    let blocked = check(
        trunkctl(
            &node,
            &["cdr", "list", "--disposition", "blocked", "-o", "json"],
        ),
        0,
        &[],
        &[],
    );
    let lines: Vec<serde_json::Value> = blocked.lines().map(json).collect();
    assert_eq!(lines.len(), 3, "{blocked}");
    assert!(lines.iter().all(|line| line["sip_code"] == 403));

    let csv = folder.path().join("records.csv");
    check(
        trunkctl(
            &node,
            &["cdr", "export", "--output-file", csv.to_str().unwrap()],
        ),
        0,
        &[],
        &["4 records written"],
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 5, "{text}");
    assert!(rows[0].starts_with("recorded,call_id,tenant,"), "{text}");
    let answered = rows.iter().find(|row| row.contains("talk@proxy")).unwrap();
    // 62 started seconds at 0.01 a minute: 0.010333.. rounded up to the micro-unit.
    assert!(answered.contains(",62000,0.010334,"), "{answered}");
    let jsonl = check(
        trunkctl(
            &node,
            &["cdr", "export", "--format", "jsonl", "--tenant", "acme"],
        ),
        0,
        &[],
        &[],
    );
    assert_eq!(jsonl.lines().map(json).count(), 4);

    // The alert, its action in force, and clearing it.
    let alerts = eventually(&node, &["alerts", "list"], "premium-burst");
    assert!(
        alerts.contains("IN FORCE: block-international on tenant acme"),
        "{alerts}"
    );
    let listed = json(&check(
        trunkctl(&node, &["alerts", "list", "-o", "json"]),
        0,
        &[],
        &[],
    ));
    let id = listed["alerts"][0]["id"].as_u64().unwrap().to_string();
    check(
        trunkctl(&node, &["alerts", "show", &id]),
        0,
        &["premium-burst for tenant acme", "open"],
        &[],
    );
    assert_eq!(
        call(&node.api_addr, "uk@proxy", "011442071234567", None),
        Some(proto::RefusalReason::PolicyAlertAction as i32)
    );
    ok(&["alerts", "ack", &id]);
    check(
        trunkctl(&node, &["alerts", "list", "--open"]),
        0,
        &["No alerts.", "IN FORCE"],
        &[],
    );
    check(
        trunkctl(&node, &["tenant", "unblock", "acme"]),
        0,
        &["Cleared on tenant acme: block-international."],
        &[],
    );
    check(
        trunkctl(&node, &["tenant", "unblock", "acme"]),
        0,
        &["had no automatic action"],
        &[],
    );
    assert_eq!(
        call(&node.api_addr, "uk-2@proxy", "011442071234567", None),
        None
    );

    // Mistakes.
    check(
        trunkctl(
            &node,
            &["alerts", "rule", "premium-burst", "--threshold", "0"],
        ),
        2,
        &[],
        &["--threshold: must be above 0"],
    );
    check(
        trunkctl(
            &node,
            &["alerts", "rule", "premium-burst", "--window", "10ms"],
        ),
        2,
        &[],
        &["--window: must be from 1000"],
    );
    check(
        trunkctl(
            &node,
            &[
                "alerts",
                "rule",
                "premium-burst",
                "--action",
                "lower-concurrent-calls=0",
            ],
        ),
        2,
        &[],
        &["--action: "],
    );
    check(
        trunkctl(&node, &["cdr", "list", "--disposition", "ok"]),
        1,
        &[],
        &["disposition", "answered"],
    );
}

#[test]
fn record_and_alert_mistakes_exit_2_before_anything_is_sent() {
    let dead = closed_port();
    for (args, needle) in [
        (&["cdr", "list", "--since", "yesterday"][..], "RFC 3339"),
        (&["cdr", "export", "--format", "xml"][..], "--format"),
        (
            &[
                "alerts",
                "rule",
                "premium-burst",
                "--reset",
                "--threshold",
                "3",
            ][..],
            "--threshold",
        ),
        (&["alerts", "ack", "seven"][..], "seven"),
    ] {
        check(trunkctl_with(&dead, args), 2, &[], &[needle]);
    }
}

#[test]
fn a_tenant_sets_its_own_alert_rule_and_drops_it_for_the_clusters() {
    let node = start_node();
    let ok = |args: &[&str]| check(trunkctl(&node, args), 0, &[], &[]);
    // `alerts rule premium-burst --tenant TENANT FLAGS...`
    let tenant_rule = |tenant: &str, flags: &[&str]| {
        let base = ["alerts", "rule", "premium-burst", "--tenant", tenant];
        trunkctl(&node, &[&base[..], flags].concat())
    };
    ok(&["tenant", "add", "acme"]);
    check(
        tenant_rule("acme", &["--threshold", "50"]),
        0,
        &["Rule premium-burst of tenant acme set"],
        &[],
    );
    let threshold_of = |args: &[&str]| {
        let rules = json(&ok(args));
        let rule = rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|rule| rule["rule"] == "premium-burst")
            .unwrap()
            .clone();
        (rule["threshold"].as_u64().unwrap(), rule["set_by"].clone())
    };
    // The tenant's own setting applies to it; the cluster's is unchanged.
    let (own, set_by) = threshold_of(&["alerts", "rules", "--tenant", "acme", "-o", "json"]);
    assert_eq!((own, set_by.as_str()), (50, Some("tenant")));
    let (cluster, set_by) = threshold_of(&["alerts", "rules", "-o", "json"]);
    assert_ne!(cluster, 50);
    assert!(set_by.is_null());
    check(
        trunkctl(&node, &["alerts", "rules", "--tenant", "acme"]),
        0,
        &["SET BY", "tenant", "cluster"],
        &[],
    );
    // Reset drops the tenant's own: the cluster's applies to it again.
    check(tenant_rule("acme", &["--reset"]), 0, &[], &[]);
    let (now, set_by) = threshold_of(&["alerts", "rules", "--tenant", "acme", "-o", "json"]);
    assert_eq!((now, set_by.as_str()), (cluster, Some("cluster")));
    // An unknown tenant exits 3 and names it.
    let not_found = ["tenant \"nobody\" not found"];
    let rules_of_nobody = trunkctl(&node, &["alerts", "rules", "--tenant", "nobody"]);
    check(rules_of_nobody, 3, &[], &not_found);
    check(
        tenant_rule("nobody", &["--threshold", "3"]),
        3,
        &[],
        &not_found,
    );
}
