//! `trunkctl rates imports` and `rates abort` as an operator uses them: the real binary
//! against a real node started in this process, with an import another client staged and
//! left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{check, closed_port, json, start_node, trunkctl, trunkctl_with};
use trunkline_client::{proto, Retry};

const OWNER: &str = "0123456789abcdef0123456789abcdef";

/// Stages one chunk of `rows` rows under `import_id` for carrier `cheap`, as a client that
/// then goes away would.
fn stage(api_addr: &str, import_id: &str, rows: u64) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = support::client(api_addr);
        let request = proto::StageRatesRequest {
            carrier: "cheap".into(),
            import_id: import_id.into(),
            owner: OWNER.into(),
            rates: (0..rows)
                .map(|n| proto::Rate {
                    prefix: format!("44{n}"),
                    rate_micros_per_minute: 1_000,
                    ..Default::default()
                })
                .collect(),
            first_line: 2,
        };
        client
            .admin(Retry::NotSent, |mut admin| {
                let request = request.clone();
                async move { admin.stage_rates(request).await }
            })
            .await
            .unwrap();
    });
}

#[test]
fn an_abandoned_import_is_listed_and_its_owner_aborts_it() {
    let node = start_node();
    check(trunkctl(&node, &["carrier", "add", "cheap"]), 0, &[], &[]);
    check(
        trunkctl(&node, &["rates", "imports"]),
        0,
        &["No imports are staged."],
        &[],
    );
    stage(&node.api_addr, "left-behind", 3);

    let table = check(
        trunkctl(&node, &["rates", "imports"]),
        0,
        &["IMPORT", "CARRIER", "ROWS", "IDLE", "left-behind", "cheap"],
        &[],
    );
    assert!(!table.contains(OWNER), "the owner token is secret: {table}");
    let listed = json(&check(
        trunkctl(&node, &["-o", "json", "rates", "imports"]),
        0,
        &[],
        &[],
    ));
    assert_eq!(listed[0]["import_id"], "left-behind");
    assert_eq!(listed[0]["carrier"], "cheap");
    assert_eq!(listed[0]["staged_rows"], 3);
    assert!(listed[0]["idle_ms"].is_u64());

    // Someone else's token is refused and the import stays.
    check(
        trunkctl(
            &node,
            &[
                "rates",
                "abort",
                "left-behind",
                "--owner",
                "fedcba9876543210fedcba9876543210",
            ],
        ),
        1,
        &[],
        &["INVALID_ARGUMENT", "owner"],
    );
    check(
        trunkctl(&node, &["rates", "abort", "left-behind", "--owner", OWNER]),
        0,
        &["Aborted import left-behind", "3 staged rows dropped"],
        &[],
    );
    check(
        trunkctl(&node, &["rates", "imports"]),
        0,
        &["No imports are staged."],
        &[],
    );
    check(
        trunkctl(&node, &["rates", "abort", "left-behind", "--owner", OWNER]),
        1,
        &[],
        &["NOT_FOUND"],
    );
}

#[test]
fn rates_import_prints_how_to_abort_it() {
    let node = start_node();
    check(trunkctl(&node, &["carrier", "add", "cheap"]), 0, &[], &[]);
    let folder = tempfile::tempdir().unwrap();
    let deck = folder.path().join("deck.csv");
    std::fs::write(&deck, "prefix,rate\n44,0.01\n").unwrap();
    let output = trunkctl(
        &node,
        &[
            "rates",
            "import",
            deck.to_str().unwrap(),
            "--carrier",
            "cheap",
        ],
    );
    check(
        output,
        0,
        &["Imported 1 rows"],
        &["trunkctl rates abort ", "--owner "],
    );
}

#[test]
fn abort_mistakes_exit_2_before_anything_is_sent() {
    let dead = closed_port();
    for (args, needle) in [
        (
            &["rates", "abort", "bad id!", "--owner", OWNER][..],
            "IMPORT: ",
        ),
        (&["rates", "abort", "ok", "--owner", "short"], "--owner: "),
        (
            &["rates", "abort", "ok", "--owner", &"g".repeat(32)],
            "--owner: ",
        ),
    ] {
        check(trunkctl_with(&dead, args), 2, &[], &[needle]);
    }
    check(
        trunkctl_with(&dead, &["rates", "abort", "ok"]),
        2,
        &[],
        &["--owner"],
    );
}
