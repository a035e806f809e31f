//! `trunkctl token` and `--token` against a node that requires a token of every caller.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{check, json, start_node_with, trunkctl, trunkctl_as};

#[test]
fn tokens_are_made_listed_used_and_revoked() {
    let (node, admin) = start_node_with(true);

    // No token: refused, saying only that, with what to do.
    check(
        trunkctl(&node, &["tenant", "list"]),
        1,
        &[],
        &["UNAUTHENTICATED", "unauthenticated", "--token"],
    );

    let created = check(
        trunkctl_as(
            &node,
            &admin,
            &[
                "-o",
                "json",
                "token",
                "create",
                "--role",
                "auditor",
                "--name",
                "audit",
                "--expires",
                "90d",
            ],
        ),
        0,
        &[],
        &[],
    );
    let created = json(&created);
    let auditor = created["token"].as_str().unwrap().to_owned();
    assert!(auditor.starts_with("tl1."), "{created}");

    // An auditor reads and may not write.
    check(
        trunkctl_as(&node, &auditor, &["tenant", "list"]),
        0,
        &[],
        &[],
    );
    check(
        trunkctl_as(&node, &auditor, &["tenant", "add", "acme"]),
        1,
        &[],
        &["PERMISSION_DENIED", "auditor"],
    );
    check(
        trunkctl_as(&node, &admin, &["tenant", "add", "acme"]),
        0,
        &["Tenant \"acme\" created"],
        &[],
    );

    // A tenant token needs its tenant; a proxy token its tenants or --all-tenants.
    check(
        trunkctl_as(&node, &admin, &["token", "create", "--role", "tenant"]),
        1,
        &[],
        &["tenants", "is required"],
    );
    check(
        trunkctl_as(
            &node,
            &admin,
            &[
                "token",
                "create",
                "--role",
                "proxy",
                "--all-tenants",
                "--name",
                "sbc",
            ],
        ),
        0,
        &["shown this once", "tl1."],
        &[],
    );

    let listed = check(trunkctl_as(&node, &admin, &["token", "list"]), 0, &[], &[]);
    for needle in ["initial-admin", "audit", "sbc", "(all)", "live", "auditor"] {
        assert!(listed.contains(needle), "{needle:?} not in:\n{listed}");
    }
    assert!(!listed.contains("tl1."), "a secret is listed:\n{listed}");

    check(
        trunkctl_as(&node, &admin, &["token", "revoke", "audit"]),
        0,
        &["Token \"audit\" revoked"],
        &[],
    );
    check(
        trunkctl_as(&node, &auditor, &["tenant", "list"]),
        1,
        &[],
        &["UNAUTHENTICATED"],
    );
    check(
        trunkctl_as(&node, &admin, &["token", "revoke", "audit"]),
        3,
        &[],
        &["token \"audit\" not found"],
    );
    let listed = check(
        trunkctl_as(&node, &admin, &["-o", "json", "token", "list"]),
        0,
        &[],
        &[],
    );
    let listed = json(&listed);
    let audit = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["name"] == "audit")
        .unwrap();
    assert_eq!(audit["state"], "revoked", "{audit}");

    // The audit log: who did what, streamed; its chain checks out.
    // Refused calls are written about once a second.
    let mut audit = String::new();
    for _ in 0..50 {
        audit = check(trunkctl_as(&node, &admin, &["audit", "list"]), 0, &[], &[]);
        if audit.contains("permission denied") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for needle in [
        "- from 127.0.0.1 trunkline.v1.AdminService/ListRouting -: unauthenticated",
        "initial-admin from",
        "AdminService/PutTenant tenant acme: ok",
        "AdminService/RevokeToken token audit: ok",
        "audit from 127.0.0.1 trunkline.v1.AdminService/PutTenant -: permission denied",
    ] {
        assert!(audit.contains(needle), "{needle:?} not in:\n{audit}");
    }
    let mine = check(
        trunkctl_as(
            &node,
            &admin,
            &[
                "-o",
                "json",
                "audit",
                "list",
                "--actor",
                "initial-admin",
                "--since",
                "1h",
            ],
        ),
        0,
        &[],
        &[],
    );
    let lines: Vec<serde_json::Value> = mine.lines().map(json).collect();
    assert!(lines.len() >= 4, "{mine}");
    assert!(
        lines.iter().all(|line| line["actor"] == "initial-admin"),
        "{mine}"
    );
    check(
        trunkctl_as(&node, &admin, &["audit", "verify"]),
        0,
        &["The audit log is intact"],
        &[],
    );

    // Key rotation needs keys; this node has none, and says so.
    check(
        trunkctl_as(&node, &admin, &["keys", "rotate"]),
        1,
        &[],
        &["FAILED_PRECONDITION", "no encryption keys"],
    );

    // The token can come from a file too.
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("admin.token");
    std::fs::write(&file, format!("{admin}\n")).unwrap();
    check(
        trunkctl(
            &node,
            &[
                "--token-file",
                file.to_str().unwrap(),
                "tenant",
                "show",
                "acme",
            ],
        ),
        0,
        &["acme"],
        &[],
    );
    check(
        trunkctl(
            &node,
            &["--token-file", "/nonexistent/token", "tenant", "list"],
        ),
        2,
        &[],
        &["--token-file /nonexistent/token"],
    );
}
