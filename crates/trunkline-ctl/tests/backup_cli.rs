//! `trunkctl backup FILE` and `trunkctl backup verify FILE` against a real node: a backup
//! written whole or not at all (never over an existing file), checked by its SHA-256 and its
//! header, sealed with the node's key when the node has keys, and every damaged, truncated or
//! foreign file refused with exit code 3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{check, pki, start_node_sealed, trunkctl_as};

const KEY: &str = "7 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

fn files() -> trunkline_tls::TlsFiles {
    trunkline_tls::TlsFiles {
        cert: pki().join("node-1.pem"),
        key: pki().join("node-1.key"),
        ca: pki().join("ca.pem"),
    }
}

#[test]
fn a_backup_is_written_whole_verified_and_damage_is_refused() {
    let (node, token) = start_node_sealed(true, files(), None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.backup");
    let path = file.to_str().unwrap();
    check(
        trunkctl_as(&node, &token, &["config", "set", "site/name", "london"]),
        0,
        &[],
        &[],
    );
    check(
        trunkctl_as(&node, &token, &["backup", path]),
        0,
        &["backup written", "1 settings"],
        &["100%"],
    );
    assert!(!dir.path().join("one.backup.partial").exists());
    // Never over a file that exists.
    let before = std::fs::read(&file).unwrap();
    check(
        trunkctl_as(&node, &token, &["backup", path]),
        2,
        &[],
        &["exists"],
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);

    let stdout = check(
        trunkctl_as(&node, &token, &["-o", "json", "backup", "verify", path]),
        0,
        &[],
        &[],
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["cluster_name"], "cli");
    assert_eq!(summary["contents"]["settings"], 1);
    assert!(summary["sealed_with"].is_null());

    let mut damaged = before.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    let damaged_file = dir.path().join("damaged.backup");
    std::fs::write(&damaged_file, &damaged).unwrap();
    check(
        trunkctl_as(
            &node,
            &token,
            &["backup", "verify", damaged_file.to_str().unwrap()],
        ),
        3,
        &[],
        &["SHA-256 does not match"],
    );
    let truncated = dir.path().join("truncated.backup");
    std::fs::write(&truncated, &before[..20]).unwrap();
    check(
        trunkctl_as(
            &node,
            &token,
            &["backup", "verify", truncated.to_str().unwrap()],
        ),
        3,
        &[],
        &["truncated"],
    );
    let foreign = dir.path().join("foreign.backup");
    std::fs::write(&foreign, b"PK\x03\x04 a zip file").unwrap();
    check(
        trunkctl_as(
            &node,
            &token,
            &["backup", "verify", foreign.to_str().unwrap()],
        ),
        3,
        &[],
        &["not a Trunkline backup"],
    );
}

#[test]
fn a_node_with_keys_seals_its_backups() {
    let (node, token) = start_node_sealed(true, files(), Some(KEY));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealed.backup");
    let path = file.to_str().unwrap();
    check(
        trunkctl_as(&node, &token, &["backup", path]),
        0,
        &["backup written", "sealed with key 7"],
        &[],
    );
    // No plaintext of the state in the file: the route token key and token records are in it.
    let bytes = std::fs::read(&file).unwrap();
    assert!(!bytes
        .windows(b"admin".len())
        .any(|window| window == b"admin"));
    // trunkctl checks the framing, the SHA-256 and the header; the sealed state itself is
    // opened by `trunkline restore` with the key (tests/backup.rs of the node).
    check(
        trunkctl_as(&node, &token, &["backup", "verify", path]),
        0,
        &["backup verified", "sealed with key 7", "0 settings"],
        &[],
    );
}
