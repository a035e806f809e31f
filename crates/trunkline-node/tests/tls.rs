//! TLS on real `trunkline` processes (issue 12, item 1): both listeners speak TLS; the peer
//! listener takes Raft only from a certificate of the cluster CA naming a node of this
//! cluster, and only for the node it names; a node refuses to start on another node's
//! certificate; certificates reload on SIGHUP and when their files change; plaintext only on
//! loopback with `--insecure`.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::{path::Path, sync::Arc, time::Duration};

use openraft::{raft::VoteRequest, Vote};
use support::*;
use tonic::{transport::Channel, Code};
use trunkline_api::v1::internal::{raft_service_client::RaftServiceClient, RaftPayload};
use trunkline_tls::{
    ca,
    rustls::{pki_types::CertificateDer, ClientConfig, RootCertStore},
};

/// A certificate issued by the CA in `pki` (or a CA of its own when `pki` is `None`).
fn issue(pki: Option<&Path>, cluster: &str, subject: ca::Subject) -> ca::Issued {
    let authority = match pki {
        Some(pki) => ca::Issued::read(pki, "ca").unwrap(),
        None => ca::new_ca(cluster).unwrap(),
    };
    ca::issue(&authority, cluster, &subject, ca::DEFAULT_VALIDITY).unwrap()
}

fn node_subject(id: u64) -> ca::Subject {
    ca::Subject::Node {
        id,
        hosts: vec!["127.0.0.1".into()],
    }
}

/// A client configuration trusting the test CA and showing `identity`, if any.
fn dial_config(pki: &Path, identity: Option<&ca::Issued>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in trunkline_tls::read_certificates("ca", &pki.join("ca.pem")).unwrap() {
        roots.add(cert).unwrap();
    }
    let identity = identity.map(|issued| {
        use trunkline_tls::rustls::pki_types::{pem::PemObject, PrivateKeyDer};
        (
            vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
        )
    });
    Arc::new(trunkline_tls::client_config(Arc::new(roots), identity).unwrap())
}

/// A Raft client of `node`'s peer listener, dialling as `identity`.
async fn peer_as(
    node: &TestNode,
    identity: Option<&ca::Issued>,
) -> Result<RaftServiceClient<Channel>, String> {
    let connector = trunkline_tls::connect::Connector::fixed(
        dial_config(node.pki.as_deref().unwrap(), identity),
        &trunkline_tls::node_name(CLUSTER_NAME, node.node_id),
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.peer_addr))
        .unwrap()
        .connect_with_connector(connector)
        .await
        .map_err(|error| format!("{error:?}"))?;
    Ok(RaftServiceClient::new(channel))
}

fn vote_from(node: u64) -> tonic::Request<RaftPayload> {
    let vote = VoteRequest::<u64>::new(Vote::new(1, node), None);
    let mut request = tonic::Request::new(RaftPayload {
        cluster_name: CLUSTER_NAME.into(),
        payload: bincode::serialize(&vote).unwrap(),
    });
    request.set_timeout(Duration::from_secs(5));
    request
}

/// A vote sent as `identity`: the connection's failure, or the node's answer.
async fn send_vote(
    node: &TestNode,
    identity: Option<&ca::Issued>,
    from: u64,
) -> Result<Result<(), tonic::Status>, String> {
    let mut client = peer_as(node, identity).await?;
    match client.vote(vote_from(from)).await {
        Ok(_) => Ok(Ok(())),
        // A handshake the server rejects after it completes on the client's side (TLS 1.3
        // sends the client's certificate last) shows as a transport failure of the call.
        Err(status) if std::error::Error::source(&status).is_some() => Err(format!("{status:?}")),
        Err(status) => Ok(Err(status)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_member_certificate_speaks_raft_and_only_for_its_own_node() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let node = cluster.get(1);
    let pki = node.pki.clone().unwrap();

    // No certificate, a certificate from another CA, and a client certificate with no node
    // name: the handshake fails or the message is refused; none reaches Raft.
    let no_certificate = send_vote(node, None, 2).await;
    assert!(no_certificate.is_err(), "{no_certificate:?}");
    let foreign = issue(None, CLUSTER_NAME, node_subject(2));
    let from_another_ca = send_vote(node, Some(&foreign), 2).await;
    assert!(from_another_ca.is_err(), "{from_another_ca:?}");

    // A certificate of the right CA that names no node (a client's): refused as
    // unauthenticated, before the message is decoded.
    let client_certificate = issue(
        Some(&pki),
        CLUSTER_NAME,
        ca::Subject::Client {
            name: "node-2.test.trunkline".into(),
        },
    );
    let answer = send_vote(node, Some(&client_certificate), 2).await.unwrap();
    let status = answer.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("certificate"), "{status:?}");

    // Node 2's certificate of this cluster, speaking for node 3: refused, naming both.
    let node2 = issue(Some(&pki), CLUSTER_NAME, node_subject(2));
    let status = send_vote(node, Some(&node2), 3).await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("node 3") && status.message().contains("node 2's"),
        "{status:?}"
    );
    // Speaking for itself it gets through to the checks behind (node 2 is no member here,
    // so its vote is refused there, not by the certificate).
    let answer = send_vote(node, Some(&node2), 2).await.unwrap();
    if let Err(status) = &answer {
        assert_ne!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    // A forwarded write from a node that is not a member is refused by certificate.
    let mut client = peer_as(node, Some(&node2)).await.unwrap();
    let mut forward = tonic::Request::new(RaftPayload {
        cluster_name: CLUSTER_NAME.into(),
        payload: vec![0],
    });
    forward.set_timeout(Duration::from_secs(5));
    let status = client.forward(forward).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("not a member"), "{status:?}");

    // The node is unharmed: it still leads at its term and takes writes.
    let client = node.client();
    let after = support::status(&client).await.unwrap();
    assert_eq!(after.leader_id, 1, "{after:?}");
    assert!(after.refused_peer_messages >= 3, "{after:?}");
    assert!(
        set(&client, "after-strangers", "v")
            .await
            .unwrap()
            .succeeded
    );

    // Every refusal for a certificate is in the audit log, with where it came from.
    let expected = [
        ("TLS handshake (peer listener)", "no client certificate"),
        (
            "TLS handshake (peer listener)",
            "not issued by the cluster CA",
        ),
        ("peer Vote", "certificate of its CA naming the node"),
        ("peer Vote", "node 2's"),
        ("peer Forward", "not a member"),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let entries = audit_entries(&client).await;
        let missing: Vec<_> = expected
            .iter()
            .filter(|(rpc, result)| {
                !entries.iter().any(|entry| {
                    entry.rpc == *rpc
                        && entry.result.contains(result)
                        && entry.source == "127.0.0.1"
                })
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not in the audit log: {missing:?}\n{entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn audit_entries(
    client: &trunkline_client::Client,
) -> Vec<trunkline_client::proto::AuditEntry> {
    use trunkline_client::{proto, Retry};
    let mut stream = client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.list_audit(proto::ListAuditRequest::default()).await
        })
        .await
        .unwrap();
    let mut entries = Vec::new();
    while let Some(entry) = stream.message().await.unwrap() {
        entries.push(entry);
    }
    entries
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plaintext_client_gets_no_answer_from_a_tls_listener() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(root.path(), 1, &[]);
    let plaintext = client_of(vec![node.api_addr.clone()], None);
    let error = support::status(&plaintext).await.unwrap_err();
    assert!(
        error
            .status()
            .is_none_or(|status| status.code() != Code::Ok),
        "{error}"
    );
    // Over TLS the same node answers.
    support::status(&node.client()).await.unwrap();
    // A client that trusts another CA refuses the node's certificate.
    let elsewhere = tempfile::tempdir().unwrap();
    let other_pki = ensure_pki(elsewhere.path(), 1);
    let distrustful = client_of(vec![node.api_addr.clone()], Some(&other_pki));
    let error = support::status(&distrustful).await.unwrap_err().to_string();
    assert!(error.contains("certificate"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_refuses_to_start_on_a_certificate_that_is_not_its_own() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(root.path(), 1, &[]);
    let pki = node.pki.clone().unwrap();
    node.stop();

    // Node 2's certificate (and key) where node 1's should be.
    let node2 = issue(Some(&pki), CLUSTER_NAME, node_subject(2));
    node2.write(&pki, "node-1", true).unwrap();
    let (status, stderr) = node.start_expecting_exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tls.cert_file"), "{stderr}");
    assert!(stderr.contains("is not node 1's certificate"), "{stderr}");

    // Node 1's name, but from another CA.
    let foreign = issue(None, CLUSTER_NAME, node_subject(1));
    foreign.write(&pki, "node-1", true).unwrap();
    let (status, stderr) = node.start_expecting_exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not accepted by the CA"), "{stderr}");

    // Not a certificate at all.
    std::fs::write(pki.join("node-1.pem"), "hello").unwrap();
    let (status, stderr) = node.start_expecting_exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds no certificate"), "{stderr}");
}

/// The certificate `address` serves, by a TLS handshake trusting `pki`'s CA.
async fn served_certificate(address: &str, pki: &Path) -> CertificateDer<'static> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = trunkline_tls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(client_tls(pki))
        .connect(name, tcp)
        .await
        .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_reload_on_sighup_and_a_bad_file_changes_nothing() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(root.path(), 1, &[]);
    let pki = node.pki.clone().unwrap();
    let before = served_certificate(&node.api_addr, &pki).await;
    let client = node.client();
    support::status(&client).await.unwrap();

    // A half-written certificate and SIGHUP: still the old one, and said so.
    std::fs::write(pki.join("node-1.pem"), "-----BEGIN CERTIFICATE-----\nAAAA").unwrap();
    let hangup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &node.pid().unwrap().to_string()])
            .status()
            .unwrap()
    };
    assert!(hangup().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !node.log().contains("can't reload the TLS certificates") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload failure logged:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served_certificate(&node.api_addr, &pki).await, before);

    // A renewed certificate: served to new connections after SIGHUP, without a restart.
    let renewed = issue(Some(&pki), CLUSTER_NAME, node_subject(1));
    renewed.write(&pki, "node-1", true).unwrap();
    assert!(hangup().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let served = served_certificate(&node.api_addr, &pki).await;
        if served != before {
            let expected = {
                use trunkline_tls::rustls::pki_types::pem::PemObject;
                CertificateDer::from_pem_slice(renewed.cert_pem.as_bytes()).unwrap()
            };
            assert_eq!(served, expected);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still the old certificate:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The node logs the reload just after swapping the certificate in: the new one may be
    // served a moment before the line is written.
    while !node.log().contains("TLS certificates reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload logged:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The open connection goes on, and so does a new one.
    support::status(&client).await.unwrap();
    support::status(&node.client()).await.unwrap();
}

#[test]
fn plaintext_is_only_for_loopback_and_only_when_asked() {
    let root = tempfile::tempdir().unwrap();
    let serve = |extra: &[&str]| {
        std::process::Command::new(trunkline_binary())
            .args(["serve", "--node-id", "1", "--peer-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(root.path().join("data"))
            .args(extra)
            .output()
            .unwrap()
    };
    let output = serve(&["--api-addr", "0.0.0.0:0", "--insecure"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("api_addr 0.0.0.0:0 is not a loopback address"),
        "{stderr}"
    );
    let output = serve(&["--api-addr", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--insecure"), "{stderr}");
    assert!(stderr.contains("trunkctl certs init"), "{stderr}");
    // Nothing was written: the node never opened its data folder.
    assert!(!root.path().join("data").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_close_to_expiry_is_warned_about_and_still_served() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let pki = ensure_pki(root.path(), 1);
    let authority = ca::Issued::read(&pki, "ca").unwrap();
    ca::issue(
        &authority,
        CLUSTER_NAME,
        &node_subject(1),
        Duration::from_secs(10 * 24 * 3600),
    )
    .unwrap()
    .write(&pki, "node-1", true)
    .unwrap();
    let node = TestNode::start(root.path(), 1, &[]);
    let log = node.log();
    assert!(log.contains("expires within 30 days"), "{log}");
    assert!(log.contains("--node-id 1 --force"), "{log}");
    support::status(&node.client()).await.unwrap();

    // A certificate good for a year says nothing.
    let other = tempfile::tempdir().unwrap();
    let fresh = TestNode::start(other.path(), 1, &[]);
    assert!(!fresh.log().contains("expires within"), "{}", fresh.log());
}
