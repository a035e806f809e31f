//! Fraud alerts across three real processes: a burst of premium calls spread over every node
//! raises one alert, on the event stream and on a webhook receiver (a small HTTP server in the
//! test); the rule's automatic action blocks calls abroad (never emergency calls, never
//! national ones) until an operator clears it, acknowledged or not; blocked attempts have
//! records naming the action.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};
use std::time::Duration;
use support::{
    routing::{
        gateway, import_priced, outbound, put_carrier_with, put_tenant, report_call_end,
        route_outbound, try_put_gateway, unprobed,
    },
    *,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use trunkline_client::{proto, Client, Retry};
use trunkline_tls::rustls;

async fn setup(client: &Client) {
    for (name, capabilities) in [("cheap", &[][..]), ("psap", &["emergency"][..])] {
        put_carrier_with(client, name, capabilities, vec![]).await;
        let uri = format!("sip:{name}-1.example.net");
        try_put_gateway(client, unprobed(gateway(&format!("{name}-1"), name, &uri)))
            .await
            .unwrap();
    }
    // Everywhere, premium numbers and the UK included.
    import_priced(client, "cheap", &[("1", 100_000, 0), ("44", 200_000, 0)]).await;
    put_tenant(client, "acme").await;
}

/// A webhook receiver: answers every POST 200 and hands over its body.
async fn receiver() -> (String, mpsc::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/fraud", listener.local_addr().unwrap());
    let (sender, bodies) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let n = stream.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|line| line.strip_prefix("Content-Length: "))
                            .and_then(|value| value.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            assert!(head.starts_with("POST /fraud HTTP/1.1"), "{head}");
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                                .await;
                            let _ = sender.send(body.to_owned()).await;
                            break;
                        }
                    }
                }
            });
        }
    });
    (url, bodies)
}

/// An https webhook receiver with a certificate for `localhost` issued by a CA of its own
/// (written to `ca_file`): hands over each body it gets, and counts the connections whose TLS
/// handshake failed (a client that does not trust its CA).
async fn tls_receiver(
    folder: &std::path::Path,
    ca_file: &std::path::Path,
) -> (String, mpsc::Receiver<String>, Arc<AtomicUsize>) {
    let ca = trunkline_tls::ca::new_ca("hooks").unwrap();
    let subject = trunkline_tls::ca::Subject::Node {
        id: 1,
        hosts: vec!["localhost".into()],
    };
    let issued =
        trunkline_tls::ca::issue(&ca, "hooks", &subject, Duration::from_secs(3_600)).unwrap();
    std::fs::write(ca_file, &ca.cert_pem).unwrap();
    let (cert_file, key_file) = (folder.join("hook.crt"), folder.join("hook.key"));
    std::fs::write(&cert_file, &issued.cert_pem).unwrap();
    std::fs::write(&key_file, &issued.key_pem).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(trunkline_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            trunkline_tls::read_certificates("cert", &cert_file).unwrap(),
            trunkline_tls::read_key("key", &key_file).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/fraud",
        listener.local_addr().unwrap().port()
    );
    let (sender, bodies) = mpsc::channel(16);
    let refused = Arc::new(AtomicUsize::new(0));
    let failures = Arc::clone(&refused);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(mut stream) = acceptor.accept(stream).await else {
                failures.fetch_add(1, Ordering::SeqCst);
                continue;
            };
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("Content-Length: "))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    let _ = sender.send(body.to_owned()).await;
                    break;
                }
            }
        }
    });
    (url, bodies, refused)
}

/// Sets the premium-burst rule: above `threshold` premium calls a minute, `action` ("" for
/// none).
async fn premium_burst_rule(client: &Client, threshold: u64, action: &str) {
    let rule = proto::SetAlertRuleRequest {
        config: Some(proto::AlertRuleConfig {
            rule: "premium-burst".into(),
            enabled: true,
            threshold,
            window_ms: 60_000,
            action: action.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let rule = rule.clone();
            async move { admin.set_alert_rule(rule).await }
        })
        .await
        .unwrap();
}

async fn route(client: &Client, call_id: &str, to: &str) -> proto::RouteOutboundResponse {
    route_outbound(client, outbound("acme", call_id, to, 0))
        .await
        .unwrap()
}

fn refusal_reason(answer: &proto::RouteOutboundResponse) -> Option<proto::RefusalReason> {
    answer
        .refusal
        .as_ref()
        .and_then(|refusal| proto::RefusalReason::try_from(refusal.reason).ok())
}

async fn alerts(client: &Client) -> proto::ListAlertsResponse {
    let request = proto::ListAlertsRequest {
        consistency: Some(proto::ReadConsistency {
            linearizable: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .admin(Retry::Idempotent, |mut admin| {
            let request = request.clone();
            async move { admin.list_alerts(request).await }
        })
        .await
        .unwrap()
}

/// Routes `to` until the answer shows `blocked` (the action applies on each node a moment
/// after the alert is raised).
async fn until_blocked(client: &Client, to: &str, blocked: bool) -> proto::RouteOutboundResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for attempt in 0.. {
        let answer = route(client, &format!("probe-{to}-{attempt}@proxy"), to).await;
        let is_blocked = refusal_reason(&answer) == Some(proto::RefusalReason::PolicyAlertAction);
        if is_blocked == blocked || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_premium_burst_alerts_everywhere_and_blocks_calls_abroad_until_cleared() {
    let _serial = serial();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let clients = [
        cluster.get(1).client(),
        cluster.get(2).client(),
        cluster.get(3).client(),
    ];
    let admin = &clients[0];
    setup(admin).await;
    let (url, mut webhook) = receiver().await;
    set(admin, "alerts/webhook_url", &url).await.unwrap();
    premium_burst_rule(admin, 3, "block-international").await;
    let mut events = cluster
        .get(2)
        .client()
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .watch_events(proto::WatchEventsRequest {
                    follow: true,
                    ..Default::default()
                })
                .await
        })
        .await
        .unwrap();

    // Before the burst, calls abroad go.
    let abroad = route(admin, "before@proxy", "011442071234567").await;
    assert!(abroad.refusal.is_none(), "{abroad:?}");
    // Four premium calls, spread over the three nodes: the fourth passes the threshold.
    for n in 0..4 {
        let answer = route(
            &clients[n % 3],
            &format!("premium-{n}@proxy"),
            &format!("900555{:04}", n * 1_111),
        )
        .await;
        assert!(answer.refusal.is_none(), "{answer:?}");
    }

    // On the event stream...
    let alert = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.message().await.unwrap().unwrap();
            if let Some(proto::event::Kind::FraudAlert(alert)) = event.kind {
                return alert;
            }
        }
    })
    .await
    .expect("no fraud alert on the event stream");
    assert_eq!(alert.rule, "premium-burst");
    assert_eq!(alert.tenant, "acme");
    assert_eq!(alert.action, "block-international");
    assert_eq!((alert.observed, alert.limit), (4, 3));
    // ... and on the webhook, once.
    let posted = tokio::time::timeout(Duration::from_secs(10), webhook.recv())
        .await
        .expect("nothing posted to the webhook")
        .unwrap();
    let posted: serde_json::Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(posted["id"], alert.id);
    assert_eq!(posted["rule"], "premium-burst");
    assert_eq!(posted["tenant"], "acme");
    assert_eq!(posted["action"], "block-international");

    // The action: calls abroad are refused on every node; national and emergency calls go.
    for client in &clients {
        let blocked = until_blocked(client, "011442071234567", true).await;
        let refusal = blocked.refusal.as_ref().unwrap();
        assert_eq!(
            refusal_reason(&blocked),
            Some(proto::RefusalReason::PolicyAlertAction),
            "{blocked:?}"
        );
        assert_eq!(refusal.sip_code, 403);
        assert!(
            refusal.message.contains("trunkctl tenant unblock acme"),
            "{refusal:?}"
        );
    }
    assert!(route(admin, "national@proxy", "4155550100")
        .await
        .refusal
        .is_none());
    let emergency = route(admin, "911@proxy", "911").await;
    assert!(emergency.refusal.is_none(), "{emergency:?}");
    assert_eq!(emergency.legs[0].carrier, "psap");

    let listed = alerts(admin).await;
    assert_eq!(listed.alerts.len(), 1, "{listed:?}");
    assert_eq!(listed.actions.len(), 1);
    assert_eq!(listed.actions[0].action, "block-international");

    // Acknowledged, the action stays; unblocked, it goes.
    let id = alert.id;
    admin
        .admin(Retry::NotSent, |mut admin| async move {
            admin
                .acknowledge_alert(proto::AcknowledgeAlertRequest { id })
                .await
        })
        .await
        .unwrap();
    let listed = alerts(admin).await;
    assert!(!listed.alerts[0].acknowledged_by.is_empty());
    assert_eq!(
        refusal_reason(&route(admin, "acked@proxy", "011442071234567").await),
        Some(proto::RefusalReason::PolicyAlertAction)
    );
    let cleared = admin
        .admin(Retry::NotSent, |mut admin| async move {
            admin
                .unblock_tenant(proto::UnblockTenantRequest {
                    tenant: "acme".into(),
                })
                .await
        })
        .await
        .unwrap();
    assert_eq!(cleared.cleared, vec!["block-international".to_owned()]);
    for client in &clients {
        let answer = until_blocked(client, "011442071234567", false).await;
        assert!(answer.refusal.is_none(), "{answer:?}");
    }

    // The blocked attempts have records that say why.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = admin
            .admin(Retry::Idempotent, |mut admin| async move {
                admin
                    .list_cdrs(proto::ListCdrsRequest {
                        disposition: "blocked".into(),
                        ..Default::default()
                    })
                    .await
            })
            .await
            .unwrap();
        let mut blocked = Vec::new();
        while let Some(chunk) = stream.message().await.unwrap() {
            blocked.extend(chunk.records);
        }
        if !blocked.is_empty() {
            assert!(
                blocked
                    .iter()
                    .all(|record| record.reason == "policy-alert-action (tenant)"),
                "{blocked:#?}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no blocked records");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rules_and_unknown_alerts_are_refused_naming_the_field() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let client = cluster.get(1).client();
    for (config, field) in [
        (
            proto::AlertRuleConfig {
                rule: "nonsense".into(),
                threshold: 1,
                window_ms: 60_000,
                ..Default::default()
            },
            "config.rule",
        ),
        (
            proto::AlertRuleConfig {
                rule: "premium-burst".into(),
                threshold: 0,
                window_ms: 60_000,
                ..Default::default()
            },
            "config.threshold",
        ),
        (
            proto::AlertRuleConfig {
                rule: "premium-burst".into(),
                threshold: 3,
                window_ms: 60_000,
                action: "shutdown".into(),
                ..Default::default()
            },
            "config.action",
        ),
    ] {
        let request = proto::SetAlertRuleRequest {
            config: Some(config),
            reset: false,
            ..Default::default()
        };
        let error = client
            .admin(Retry::NotSent, |mut admin| {
                let request = request.clone();
                async move { admin.set_alert_rule(request).await }
            })
            .await
            .unwrap_err();
        let status = error.status().unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{status:?}"
        );
    }
    let error = client
        .admin(Retry::NotSent, |mut admin| async move {
            admin
                .acknowledge_alert(proto::AcknowledgeAlertRequest { id: 77 })
                .await
        })
        .await
        .unwrap_err();
    assert_eq!(error.status().unwrap().code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lowered_concurrent_limit_holds_a_tenant_without_limits_until_cleared() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let client = cluster.get(1).client();
    setup(&client).await;
    premium_burst_rule(&client, 1, "lower-concurrent-calls=1").await;
    // Before: no limits, so no admission and no grant.
    assert_eq!(
        route(&client, "free@proxy", "4155550100")
            .await
            .max_duration_ms,
        0
    );
    route(&client, "p1@proxy", "9005551000").await;
    route(&client, "p2@proxy", "9005552000").await;

    // Once the action applies, calls are admitted one at a time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        let answer = route(&client, "held@proxy", "4155550100").await;
        if answer.max_duration_ms > 0 {
            break answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "never admitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let second = route(&client, "second@proxy", "4155550101").await;
    assert_eq!(
        refusal_reason(&second),
        Some(proto::RefusalReason::LimitConcurrentCalls),
        "{second:?}"
    );
    // An emergency call is never held.
    assert!(route(&client, "911@proxy", "911").await.refusal.is_none());
    let ended = report_call_end(&client, "held@proxy", &first.route_token, None)
        .await
        .unwrap();
    assert!(ended.released);
    assert!(route(&client, "third@proxy", "4155550102")
        .await
        .refusal
        .is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_webhook_is_posted_only_to_a_receiver_the_node_trusts() {
    let _serial = serial();
    let pki = tempfile::tempdir().unwrap();
    // The node trusts the first receiver's CA only.
    let trusted_ca = pki.path().join("trusted-ca.pem");
    let untrusted_folder = pki.path().join("untrusted");
    std::fs::create_dir(&untrusted_folder).unwrap();
    let (trusted_url, mut trusted, _) = tls_receiver(pki.path(), &trusted_ca).await;
    let (untrusted_url, mut untrusted, refused) =
        tls_receiver(&untrusted_folder, &untrusted_folder.join("ca.pem")).await;
    let ca_flag = format!("--webhook-ca-file={}", trusted_ca.display());
    let extra: Vec<&str> = FAST_RAFT
        .iter()
        .copied()
        .chain([ca_flag.as_str()])
        .collect();
    let cluster = TestCluster::start(1, &extra).await;
    let admin = &cluster.get(1).client();
    setup(admin).await;
    premium_burst_rule(admin, 1, "").await;
    set(admin, "alerts/webhook_url", &untrusted_url)
        .await
        .unwrap();
    for n in 0..2 {
        let answer = route(admin, &format!("premium-{n}@proxy"), "9005550100").await;
        assert!(answer.refusal.is_none(), "{answer:?}");
    }
    // The node tries the receiver it does not trust and gives it nothing...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while refused.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never tried the https receiver"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        untrusted.try_recv().is_err(),
        "posted to an untrusted receiver"
    );
    // ... and the alert it could not deliver goes to the trusted one.
    set(admin, "alerts/webhook_url", &trusted_url)
        .await
        .unwrap();
    let posted = tokio::time::timeout(Duration::from_secs(90), trusted.recv())
        .await
        .expect("nothing posted to the trusted https receiver")
        .unwrap();
    let posted: serde_json::Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(posted["rule"], "premium-burst");
    assert_eq!(posted["tenant"], "acme");
    let listed = alerts(admin).await;
    assert_eq!(posted["id"], listed.alerts[0].id);
}
