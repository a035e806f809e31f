//! `trunkctl doctor` against a real node: every check passes on a healthy node (with its
//! certificate's days counted), and an endpoint that does not answer or a certificate closer
//! to expiry than asked fails with exit code 3, naming the check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{check, closed_port, start_node_with, trunkctl_command};

#[test]
fn doctor_passes_a_healthy_node_and_names_what_fails() {
    let (node, token) = start_node_with(true);
    let doctor = |endpoints: &str, extra: &[&str]| {
        trunkctl_command()
            .args([
                "--endpoints",
                endpoints,
                "--timeout-ms",
                "3000",
                "-o",
                "json",
                "doctor",
            ])
            .args(extra)
            .env("TRUNKLINE_TOKEN", &token)
            .output()
            .unwrap()
    };
    let stdout = check(doctor(&node.api_addr, &[]), 0, &[], &[]);
    let checks: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = checks
        .iter()
        .map(|check| check["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "endpoints",
            "membership",
            "leader",
            "replication",
            "clocks",
            "disk",
            "certificates",
            "gateways"
        ]
    );
    assert!(checks.iter().all(|check| check["ok"] == true), "{stdout}");
    let certificates = checks
        .iter()
        .find(|check| check["check"] == "certificates")
        .unwrap();
    assert!(
        certificates["detail"]
            .as_str()
            .unwrap()
            .contains("more days"),
        "{certificates}"
    );

    // A certificate valid for fewer days than asked for.
    let stdout = check(
        doctor(&node.api_addr, &["--min-certificate-days", "5000"]),
        3,
        &[],
        &["certificates"],
    );
    assert!(stdout.contains("expires within"), "{stdout}");
    // An endpoint that does not answer.
    let endpoints = format!("{},{}", node.api_addr, closed_port());
    check(
        doctor(&endpoints, &[]),
        3,
        &["not answering"],
        &["endpoints"],
    );
}
