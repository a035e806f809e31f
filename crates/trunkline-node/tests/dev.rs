//! `trunkline dev`, the README's first command: it initialises itself, seeds the demo, and
//! answers the two lookups its banner suggests; restarted on its data it seeds nothing twice.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use support::trunkline_binary;
use trunkline_client::{proto, Client, Retry};

/// Starts `trunkline dev` on fresh ports and returns it with its client address and banner.
fn start_dev(data_dir: &std::path::Path) -> (Child, String, String) {
    let mut child = Command::new(trunkline_binary())
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("TRUNKLINE_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line);
        }
    });
    let mut banner = String::new();
    let mut api = None;
    while !banner.contains("route inbound") {
        let line = receiver
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("trunkline dev printed no banner; so far:\n{banner}"));
        if let Some(address) = line.trim().strip_prefix("api") {
            api = address.split_whitespace().next().map(str::to_owned);
        }
        banner.push_str(&line);
        banner.push('\n');
    }
    (
        child,
        api.expect("the banner names the api address"),
        banner,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_seeds_a_demo_that_answers_the_lookups_its_banner_suggests() {
    let _serial = support::serial();
    let data = tempfile::tempdir().unwrap();
    let (mut child, api, banner) = start_dev(&data.path().join("dev"));
    assert!(
        banner.contains("route test +442071234567 --tenant demo"),
        "{banner}"
    );
    // It requires a token; trunkctl finds this one in the data folder.
    let token = std::fs::read_to_string(data.path().join("dev").join("admin.token")).unwrap();
    let anonymous = Client::new([api.clone()]).unwrap();
    let refused = anonymous
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .list_inbound(proto::ListInboundRequest::default())
                .await
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.status().map(tonic::Status::code),
        Some(tonic::Code::Unauthenticated)
    );
    let client = Client::new([api.clone()])
        .unwrap()
        .with_token(&token)
        .unwrap();

    let request = proto::RouteOutboundRequest {
        tenant: "demo".into(),
        call_id: "dev-outbound".into(),
        to: "+442071234567".into(),
        ..Default::default()
    };
    let outbound = client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.route_outbound(request).await }
        })
        .await
        .unwrap();
    assert!(!outbound.legs.is_empty(), "{outbound:?}");

    let request = proto::RouteInboundRequest {
        did: "+14155550100".into(),
        call_id: "dev-inbound".into(),
        ..Default::default()
    };
    let inbound = client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.route_inbound(request).await }
        })
        .await
        .unwrap();
    assert!(inbound.straight_to_continuity, "{inbound:?}");
    assert_eq!(inbound.reason, "the device is not registered");
    assert!(
        !inbound.legs[0].outbound_legs.is_empty(),
        "the forward number is routed by the demo carriers: {inbound:?}"
    );
    let _ = child.kill();
    let _ = child.wait();

    // The first admin token is in the data folder, for trunkctl, readable by its owner only.
    let token_file = data.path().join("dev").join("admin.token");
    assert!(token.starts_with("tl1."), "{token}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&token_file.metadata().unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "{mode:o}");

    // Restarted on its data: no second seeding (it would fail on the existing objects).
    let (mut child, api, _) = start_dev(&data.path().join("dev"));
    let client = Client::new([api]).unwrap().with_token(&token).unwrap();
    let listed = client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .list_inbound(proto::ListInboundRequest::default())
                .await
        })
        .await
        .unwrap();
    assert_eq!(listed.dids.len(), 1);
    assert_eq!(listed.devices.len(), 1);
    let _ = child.kill();
    let _ = child.wait();
}
