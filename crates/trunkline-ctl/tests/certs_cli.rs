//! `trunkctl certs init|issue` (issue 12, item 1): a CA and certificates a node starts with
//! and trunkctl trusts; nothing overwritten by accident; bad input refused with what to do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{check, start_node_on, trunkctl_command};
use trunkline_tls::rustls::pki_types::{pem::PemObject, CertificateDer};

fn certs(args: &[&str]) -> std::process::Output {
    trunkctl_command()
        .env_remove("TRUNKLINE_CA_FILE")
        .arg("certs")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_ca_and_node_certificate_made_by_trunkctl_serve_a_node_trunkctl_trusts() {
    let root = tempfile::tempdir().unwrap();
    let pki = root.path().join("pki");
    let pki_arg = pki.to_str().unwrap();
    check(
        certs(&["init", "--cluster", "cli", "--out", pki_arg]),
        0,
        &["ca.pem", "ca.key"],
        &[],
    );
    let mode = std::fs::metadata(pki.join("ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the CA key is readable by others: {mode:o}"
    );
    // A second init never replaces the CA.
    check(
        certs(&["init", "--cluster", "cli", "--out", pki_arg]),
        1,
        &[],
        &["exists already"],
    );
    let issue_node = |extra: &[&str]| {
        let mut args = vec![
            "issue",
            "node",
            "--node-id",
            "1",
            "--cluster",
            "cli",
            "--host",
            "127.0.0.1",
            "--ca-dir",
            pki_arg,
            "--out",
            pki_arg,
        ];
        args.extend_from_slice(extra);
        certs(&args)
    };
    check(
        issue_node(&[]),
        0,
        &["node-1.cli.trunkline", "127.0.0.1"],
        &[],
    );
    let cert = std::fs::read(pki.join("node-1.pem")).unwrap();
    let cert = CertificateDer::from_pem_slice(&cert).unwrap();
    assert_eq!(trunkline_tls::node_of(&cert, "cli"), Some(1));
    check(issue_node(&[]), 1, &[], &["--force"]);
    check(issue_node(&["--force"]), 0, &[], &[]);

    // The node starts on them, and trunkctl reaches it over TLS with the CA...
    let files = trunkline_tls::TlsFiles {
        cert: pki.join("node-1.pem"),
        key: pki.join("node-1.key"),
        ca: pki.join("ca.pem"),
    };
    let (node, admin_token) = start_node_on(true, files);
    let status = |ca: Option<&std::path::Path>| {
        let mut command = trunkctl_command();
        command.env_remove("TRUNKLINE_CA_FILE");
        if let Some(ca) = ca {
            command.arg("--ca-file").arg(ca);
        }
        command
            .args([
                "--endpoints",
                &node.api_addr,
                "--timeout-ms",
                "5000",
                "cluster",
                "status",
            ])
            .output()
            .unwrap()
    };
    let as_admin = |args: &[&str]| {
        trunkctl_command()
            .env("TRUNKLINE_CA_FILE", pki.join("ca.pem"))
            .env("TRUNKLINE_TOKEN", &admin_token)
            .args(["--endpoints", &node.api_addr, "--timeout-ms", "5000"])
            .args(args)
            .output()
            .unwrap()
    };
    check(as_admin(&["cluster", "status"]), 0, &["leader"], &[]);
    // ...but not in plaintext, and the message says what is missing.
    check(status(None), 1, &[], &["--ca-file"]);
    // A CA of another cluster does not vouch for it.
    let other = root.path().join("other");
    check(
        certs(&["init", "--cluster", "cli", "--out", other.to_str().unwrap()]),
        0,
        &[],
        &[],
    );
    check(
        status(Some(&other.join("ca.pem"))),
        1,
        &["certificate"],
        &[],
    );
}

#[test]
fn bad_requests_are_refused_with_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let pki = root.path().join("pki");
    let pki_arg = pki.to_str().unwrap();
    let issue_client = |name: &str, cluster: &str| {
        certs(&[
            "issue",
            "client",
            "--name",
            name,
            "--cluster",
            cluster,
            "--ca-dir",
            pki_arg,
            "--out",
            pki_arg,
        ])
    };
    check(
        certs(&["issue", "client", "--name", "ops", "--ca-dir", pki_arg]),
        2,
        &[],
        &["trunkctl certs init"],
    );
    check(
        certs(&["init", "--cluster", "no spaces", "--out", pki_arg]),
        2,
        &[],
        &["--cluster"],
    );
    check(
        certs(&["init", "--cluster", "east", "--out", pki_arg]),
        0,
        &[],
        &[],
    );
    check(issue_client("../ops", "east"), 2, &[], &["--name"]);
    check(
        certs(&[
            "issue",
            "node",
            "--node-id",
            "0",
            "--cluster",
            "east",
            "--ca-dir",
            pki_arg,
        ]),
        2,
        &[],
        &["node id"],
    );
    // Issuing under another cluster's name than the CA's makes nothing.
    check(issue_client("ops", "west"), 1, &[], &["cluster \"west\""]);
    assert!(!pki.join("ops.pem").exists());
    check(issue_client("ops", "east"), 0, &["ops.pem"], &[]);
}
