//! Inbound calls across three real processes: registrations reported through one node are
//! batched into few entries and seen by lookups on the others; a device registered through two
//! edges gets both contacts, most recently refreshed first; expiry (by log time) and
//! un-registering leave fewer; with none left, or the device disabled, the call goes straight
//! to continuity, number targets with their outbound legs; bad input is refused whole. DID,
//! device and edge puts honour their PutMode, and all three are deleted through DeleteObject.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use support::{
    routing::{gateway, import, put_carrier, put_tenant, try_put_gateway, unprobed},
    *,
};
use trunkline_client::{proto, Client, ClientError, Retry};

const DID: &str = "+14155550100";
const FORWARD_TO: &str = "+14155550199";
const AOR: &str = "sip:alice@acme.example";

async fn admin_write<T, F, Fut>(client: &Client, call: F) -> Result<T, ClientError>
where
    F: FnMut(proto::admin_service_client::AdminServiceClient<trunkline_client::Transport>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    client.admin(Retry::NotSent, call).await
}

/// Carrier alpha with one unprobed gateway pricing "1", tenant acme, Alice's device, and the
/// DID that rings it and forwards to FORWARD_TO, then voicemail.
async fn setup(client: &Client) {
    put_carrier(client, "alpha", vec![]).await;
    try_put_gateway(
        client,
        unprobed(gateway("alpha-1", "alpha", "sip:192.0.2.10")),
    )
    .await
    .unwrap();
    import(client, "alpha", &[("1", 1_000)]).await;
    put_tenant(client, "acme").await;
    put_device(client, false).await.unwrap();
    put_did(client, DID, Some(AOR), &[FORWARD_TO])
        .await
        .unwrap();
}

async fn put_device(client: &Client, disabled: bool) -> Result<u64, ClientError> {
    let request = proto::PutDeviceRequest {
        device: Some(proto::Device {
            aor: AOR.into(),
            tenant: "acme".into(),
            disabled,
            continuity: None,
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    admin_write(client, |mut admin| {
        let request = request.clone();
        async move { admin.put_device(request).await }
    })
    .await
    .map(|response| response.applied_index)
}

async fn put_did(
    client: &Client,
    number: &str,
    device: Option<&str>,
    targets: &[&str],
) -> Result<u64, ClientError> {
    let continuity = (!targets.is_empty()).then(|| proto::ContinuityPlan {
        targets: targets
            .iter()
            .map(|target| proto::ContinuityTarget {
                destination: Some(proto::continuity_target::Destination::Number(
                    (*target).to_owned(),
                )),
                ring_timeout_ms: 20_000,
            })
            .chain(std::iter::once(proto::ContinuityTarget {
                destination: Some(proto::continuity_target::Destination::Voicemail(
                    "alice".into(),
                )),
                ring_timeout_ms: 30_000,
            }))
            .collect(),
        triggers: None,
    });
    let request = proto::PutDidRequest {
        did: Some(proto::Did {
            number: number.into(),
            tenant: "acme".into(),
            device: device.unwrap_or_default().into(),
            continuity,
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    admin_write(client, |mut admin| {
        let request = request.clone();
        async move { admin.put_did(request).await }
    })
    .await
    .map(|response| response.applied_index)
}

async fn register(
    client: &Client,
    edge: &str,
    contact: &str,
    expires_s: u32,
) -> Result<u64, ClientError> {
    let request = proto::ReportRegistrationRequest {
        edge: edge.into(),
        aor: AOR.into(),
        contact: contact.into(),
        expires_s,
        path: vec![format!("sip:{edge}.example;lr")],
        received: String::new(),
    };
    client
        .route(Retry::NotSent, |mut route| {
            let request = request.clone();
            async move { route.report_registration(request).await }
        })
        .await
        .map(|response| response.applied_index)
}

async fn route_inbound(
    client: &Client,
    did: &str,
    min_applied_index: u64,
) -> Result<proto::RouteInboundResponse, ClientError> {
    let request = proto::RouteInboundRequest {
        did: did.into(),
        from: "+12125550123".into(),
        call_id: "inbound-call".into(),
        min_applied_index,
    };
    client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.route_inbound(request).await }
        })
        .await
}

async fn report_leg(
    client: &Client,
    token: &str,
    sip_code: u32,
    no_answer: bool,
) -> proto::ReportLegResponse {
    let request = proto::ReportLegRequest {
        call_id: "inbound-call".into(),
        route_token: token.into(),
        sip_code,
        no_answer,
        ..Default::default()
    };
    client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.report_leg(request).await }
        })
        .await
        .unwrap()
}

fn contacts(response: &proto::RouteInboundResponse) -> Vec<(String, String)> {
    response
        .legs
        .iter()
        .filter(|leg| leg.kind == proto::InboundLegKind::Device as i32)
        .map(|leg| (leg.edge.clone(), leg.contact.clone()))
        .collect()
}

fn status_of(error: &ClientError) -> tonic::Code {
    match error {
        ClientError::Status { status, .. } => status.code(),
        other => panic!("not a status: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dual_path_bindings_expire_and_calls_divert_to_continuity_on_every_node() {
    let _serial = serial();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let writer = cluster.get(1).client();
    let reader = cluster.get(2).client();
    let other = cluster.get(3).client();
    setup(&writer).await;

    // Two edges; edge-a's binding is short-lived, edge-b registers last.
    register(&writer, "edge-a", "sip:alice@10.0.0.5:5060", 2)
        .await
        .unwrap();
    let registered = register(&writer, "edge-b", "sip:alice@10.0.1.6:5060", 3_600)
        .await
        .unwrap();
    let both = route_inbound(&reader, DID, registered).await.unwrap();
    assert_eq!(
        contacts(&both),
        vec![
            ("edge-b".to_owned(), "sip:alice@10.0.1.6:5060".to_owned()),
            ("edge-a".to_owned(), "sip:alice@10.0.0.5:5060".to_owned()),
        ],
        "both contacts, most recently refreshed first: {both:?}"
    );
    assert!(!both.straight_to_continuity);
    assert_eq!(both.skip_reason, proto::SkipReason::Unspecified as i32);
    assert_eq!(both.legs[0].path, vec!["sip:edge-b.example;lr".to_owned()]);
    // After the device legs, the continuity targets in order.
    let kinds: Vec<i32> = both.legs.iter().map(|leg| leg.kind).collect();
    assert_eq!(
        kinds,
        vec![
            proto::InboundLegKind::Device as i32,
            proto::InboundLegKind::Device as i32,
            proto::InboundLegKind::Continuity as i32,
            proto::InboundLegKind::Continuity as i32,
        ]
    );

    // Leg reports move the call along the same list, on any node.
    let reporter = cluster.get(3).client();
    let next = report_leg(&reporter, &both.route_token, 0, true).await;
    let Some(proto::report_leg_response::Outcome::NextInbound(forward)) = &next.outcome else {
        panic!("the device rang out: continuity next, got {next:?}")
    };
    assert_eq!(
        forward
            .target
            .as_ref()
            .and_then(|target| target.destination.clone()),
        Some(proto::continuity_target::Destination::Number(
            FORWARD_TO.to_owned()
        ))
    );
    assert_eq!(forward.outbound_legs.len(), 1);
    let next = report_leg(&reporter, &next.route_token, 0, true).await;
    let Some(proto::report_leg_response::Outcome::NextInbound(voicemail)) = &next.outcome else {
        panic!("the forward rang out: voicemail next, got {next:?}")
    };
    assert_eq!(
        voicemail
            .target
            .as_ref()
            .and_then(|target| target.destination.clone()),
        Some(proto::continuity_target::Destination::Voicemail(
            "alice".to_owned()
        ))
    );
    let done = report_leg(&reporter, &next.route_token, 200, false).await;
    assert!(
        matches!(&done.outcome, Some(proto::report_leg_response::Outcome::Stop(stop)) if stop.reason == proto::StopReason::Answered as i32),
        "{done:?}"
    );
    // Busy with the busy trigger off: the caller hears busy, no continuity.
    let busy = report_leg(&reporter, &both.route_token, 486, false).await;
    assert!(
        matches!(&busy.outcome, Some(proto::report_leg_response::Outcome::Stop(stop)) if stop.sip_code == 486),
        "{busy:?}"
    );

    // edge-a expires by log time (the leader ticks a quiet log along): one contact left,
    // seen on a third node.
    let deadline = Instant::now() + Duration::from_secs(10);
    let one = loop {
        let answer = route_inbound(&other, DID, registered).await.unwrap();
        if contacts(&answer).len() == 1 {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "edge-a never expired: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(contacts(&one)[0].0, "edge-b");

    // edge-b un-registers: straight to continuity, the number with its carrier legs.
    let gone = register(&writer, "edge-b", "sip:alice@10.0.1.6:5060", 0)
        .await
        .unwrap();
    let diverted = route_inbound(&other, DID, gone).await.unwrap();
    assert!(diverted.straight_to_continuity, "{diverted:?}");
    assert_eq!(diverted.reason, "the device is not registered");
    assert_eq!(
        diverted.skip_reason,
        proto::SkipReason::NotRegistered as i32
    );
    let first = &diverted.legs[0];
    assert_eq!(first.kind, proto::InboundLegKind::Continuity as i32);
    assert_eq!(
        first
            .target
            .as_ref()
            .and_then(|target| target.destination.clone()),
        Some(proto::continuity_target::Destination::Number(
            FORWARD_TO.to_owned()
        ))
    );
    assert_eq!(first.ring_timeout_ms, 20_000);
    let carriers: Vec<&str> = first
        .outbound_legs
        .iter()
        .map(|leg| leg.gateway.as_str())
        .collect();
    assert_eq!(carriers, vec!["alpha-1"]);

    // Registered again but disabled: continuity only.
    register(&writer, "edge-b", "sip:alice@10.0.1.6:5060", 3_600)
        .await
        .unwrap();
    let disabled = put_device(&writer, true).await.unwrap();
    let answer = route_inbound(&reader, DID, disabled).await.unwrap();
    assert!(answer.straight_to_continuity);
    assert_eq!(answer.reason, "the device is disabled");
    assert_eq!(answer.skip_reason, proto::SkipReason::DeviceDisabled as i32);
    assert!(contacts(&answer).is_empty());

    // A DID that rings nothing and forwards nowhere: a clear refusal; an unknown DID too.
    let empty = put_did(&writer, "+14155550111", None, &[]).await;
    let index = match empty {
        Ok(index) => index,
        Err(error) => panic!("a forward-nowhere DID should be storable: {error}"),
    };
    let error = route_inbound(&reader, "+14155550111", index)
        .await
        .unwrap_err();
    assert_eq!(
        status_of(&error),
        tonic::Code::FailedPrecondition,
        "{error}"
    );
    assert!(
        error.to_string().contains("no continuity target"),
        "{error}"
    );
    let error = route_inbound(&reader, "+14155550123", index)
        .await
        .unwrap_err();
    assert_eq!(status_of(&error), tonic::Code::NotFound, "{error}");
    assert!(error.to_string().contains("did"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshes_are_batched_and_bad_input_is_refused_whole() {
    let _serial = serial();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let writer = cluster.get(1).client();
    setup(&writer).await;

    // 2,000 refreshes of 10 bindings at once, through one node: few entries.
    let shared = std::sync::Arc::new(cluster.get(1).client());
    let started = Instant::now();
    let mut refreshes = tokio::task::JoinSet::new();
    for refresh in 0..2_000 {
        let client = shared.clone();
        refreshes.spawn(async move {
            let edge = format!("edge-{}", refresh % 10);
            let contact = format!("sip:alice@10.0.0.{}:5060", refresh % 10);
            register(&client, &edge, &contact, 600).await
        });
    }
    let mut indexes = BTreeSet::new();
    while let Some(joined) = refreshes.join_next().await {
        indexes.insert(joined.unwrap().unwrap());
    }
    println!(
        "2000 registrations written in {} entries, {:?}",
        indexes.len(),
        started.elapsed()
    );
    assert!(
        indexes.len() < 200,
        "{} entries for 2000 registrations: not batched",
        indexes.len()
    );
    let last = *indexes.iter().next_back().unwrap();
    let answer = route_inbound(&cluster.get(3).client(), DID, last)
        .await
        .unwrap();
    assert_eq!(contacts(&answer).len(), 10);

    // Bad input: each refused with the field named, nothing applied.
    let before = admin_list(&writer).await;
    let error = register(&writer, "edge-x", "not a uri", 60)
        .await
        .unwrap_err();
    assert_eq!(status_of(&error), tonic::Code::InvalidArgument, "{error}");
    assert!(error.to_string().contains("contact"), "{error}");
    let error = register(&writer, "edge-x", "sip:alice@10.0.0.9", 100_000)
        .await
        .unwrap_err();
    assert_eq!(status_of(&error), tonic::Code::InvalidArgument, "{error}");
    assert!(error.to_string().contains("expires"), "{error}");
    let error = put_did(&writer, "4155550100", Some(AOR), &[])
        .await
        .unwrap_err();
    assert_eq!(status_of(&error), tonic::Code::InvalidArgument, "{error}");
    assert!(error.to_string().contains("number"), "{error}");
    // A DID forwarding to itself, and two DIDs forwarding to each other.
    let error = put_did(&writer, "+14155550177", None, &["+14155550177"])
        .await
        .unwrap_err();
    assert_eq!(status_of(&error), tonic::Code::InvalidArgument, "{error}");
    put_did(&writer, "+14155550181", None, &["+14155550182"])
        .await
        .unwrap();
    let error = put_did(&writer, "+14155550182", None, &["+14155550181"])
        .await
        .unwrap_err();
    assert_eq!(
        status_of(&error),
        tonic::Code::FailedPrecondition,
        "{error}"
    );
    assert!(error.to_string().contains("loop"), "{error}");
    let after = admin_list(&writer).await;
    assert_eq!(
        after.dids.len(),
        before.dids.len() + 1,
        "only +14155550181 was added"
    );
    assert!(!after
        .dids
        .iter()
        .any(|did| did.number == "+14155550182" || did.number == "+14155550177"));
    // The routing tenant can't be deleted while inbound uses it.
    let request = proto::DeleteObjectRequest {
        kind: proto::ObjectKind::Tenant.into(),
        name: "acme".into(),
    };
    let error = admin_write(&writer, |mut admin| {
        let request = request.clone();
        async move { admin.delete_object(request).await }
    })
    .await
    .unwrap_err();
    assert_eq!(
        status_of(&error),
        tonic::Code::FailedPrecondition,
        "{error}"
    );
}

/// Deletes the `kind` object called `name` through DeleteObject; the log index of the write.
async fn delete(client: &Client, kind: proto::ObjectKind, name: &str) -> Result<u64, ClientError> {
    let request = proto::DeleteObjectRequest {
        kind: kind.into(),
        name: name.into(),
    };
    admin_write(client, |mut admin| {
        let request = request.clone();
        async move { admin.delete_object(request).await }
    })
    .await
    .map(|response| response.applied_index)
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_puts_take_a_mode_and_inbound_objects_are_deleted_like_routing_ones() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let writer = cluster.get(1).client();
    setup(&writer).await;
    let did = |number: &str| proto::Did {
        number: number.into(),
        tenant: "acme".into(),
        ..Default::default()
    };
    let put_did = |did: proto::Did, mode: proto::PutMode| {
        let request = proto::PutDidRequest {
            did: Some(did),
            mode: mode.into(),
        };
        admin_write(&writer, move |mut admin| {
            let request = request.clone();
            async move { admin.put_did(request).await }
        })
    };
    let put_device = |aor: &str, mode: proto::PutMode| {
        let request = proto::PutDeviceRequest {
            device: Some(proto::Device {
                aor: aor.into(),
                tenant: "acme".into(),
                ..Default::default()
            }),
            mode: mode.into(),
        };
        admin_write(&writer, move |mut admin| {
            let request = request.clone();
            async move { admin.put_device(request).await }
        })
    };
    let put_edge = |name: &str, mode: proto::PutMode| {
        let request = proto::PutEdgeRequest {
            edge: Some(proto::Edge {
                name: name.into(),
                uri: "sip:192.0.2.50".into(),
                disabled: true,
                probe: None,
            }),
            mode: mode.into(),
        };
        admin_write(&writer, move |mut admin| {
            let request = request.clone();
            async move { admin.put_edge(request).await }
        })
    };
    let refused = |result: Result<proto::PutResponse, ClientError>, code, message: &str| {
        let error = result.unwrap_err();
        assert_eq!(status_of(&error), code, "{error}");
        assert!(error.to_string().contains(message), "{error}");
    };

    // Create refuses an existing object, Replace a missing one; both answer `replaced`.
    refused(
        put_did(did(DID), proto::PutMode::Create).await,
        tonic::Code::AlreadyExists,
        "did \"+14155550100\" already exists",
    );
    refused(
        put_did(did("+14155550123"), proto::PutMode::Replace).await,
        tonic::Code::NotFound,
        "did \"+14155550123\" not found",
    );
    let created = put_did(did("+14155550123"), proto::PutMode::Create)
        .await
        .unwrap();
    assert!(!created.replaced);
    refused(
        put_device(AOR, proto::PutMode::Create).await,
        tonic::Code::AlreadyExists,
        "device \"sip:alice@acme.example\" already exists",
    );
    refused(
        put_device("sip:bob@acme.example", proto::PutMode::Replace).await,
        tonic::Code::NotFound,
        "device \"sip:bob@acme.example\" not found",
    );
    let created = put_edge("edge-m", proto::PutMode::Create).await.unwrap();
    assert!(!created.replaced);
    refused(
        put_edge("edge-m", proto::PutMode::Create).await,
        tonic::Code::AlreadyExists,
        "edge \"edge-m\" already exists",
    );
    let replaced = put_edge("edge-m", proto::PutMode::Replace).await.unwrap();
    assert!(replaced.replaced);
    assert!(replaced.applied_index > created.applied_index);

    // SetTenantContinuity answers with a PutResponse too.
    let request = proto::SetTenantContinuityRequest {
        tenant: "acme".into(),
        plan: None,
    };
    let answer = admin_write(&writer, |mut admin| {
        let request = request.clone();
        async move { admin.set_tenant_continuity(request).await }
    })
    .await
    .unwrap();
    assert!(answer.applied_index >= replaced.applied_index);

    // DIDs, devices and edges are deleted through DeleteObject, keyed by number, AOR, name.
    delete(&writer, proto::ObjectKind::Did, "+14155550123")
        .await
        .unwrap();
    let error = delete(&writer, proto::ObjectKind::Did, "+14155550123")
        .await
        .unwrap_err();
    assert_eq!(status_of(&error), tonic::Code::NotFound, "{error}");
    let error = delete(&writer, proto::ObjectKind::Device, AOR)
        .await
        .unwrap_err();
    assert_eq!(
        status_of(&error),
        tonic::Code::FailedPrecondition,
        "{error}"
    );
    delete(&writer, proto::ObjectKind::Did, DID).await.unwrap();
    delete(&writer, proto::ObjectKind::Device, AOR)
        .await
        .unwrap();
    delete(&writer, proto::ObjectKind::Edge, "edge-m")
        .await
        .unwrap();
    let after = admin_list(&writer).await;
    assert!(after.dids.is_empty() && after.devices.is_empty() && after.edges.is_empty());
    // A malformed key names the wire's field; an unknown kind is refused.
    for (kind, name) in [
        (proto::ObjectKind::Did, "4155550100"),
        (proto::ObjectKind::Device, "alice"),
        (proto::ObjectKind::Edge, "bad name"),
    ] {
        let error = delete(&writer, kind, name).await.unwrap_err();
        assert_eq!(status_of(&error), tonic::Code::InvalidArgument, "{error}");
        assert!(error.to_string().contains("name: "), "{kind:?}: {error}");
    }
    let error = delete(&writer, proto::ObjectKind::Unspecified, "x")
        .await
        .unwrap_err();
    assert_eq!(status_of(&error), tonic::Code::InvalidArgument, "{error}");
    assert!(error.to_string().contains("kind"), "{error}");
}

async fn admin_list(client: &Client) -> proto::ListInboundResponse {
    client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .list_inbound(proto::ListInboundRequest {
                    consistency: Some(proto::ReadConsistency {
                        linearizable: true,
                        ..Default::default()
                    }),
                })
                .await
        })
        .await
        .unwrap()
}

async fn put_edge(client: &Client, name: &str, uri: &str) {
    let request = proto::PutEdgeRequest {
        edge: Some(proto::Edge {
            name: name.into(),
            uri: uri.into(),
            disabled: false,
            probe: Some(proto::ProbeOverrides {
                interval_ms: Some(300),
                timeout_ms: Some(100),
                down_after: Some(2),
                ..Default::default()
            }),
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    admin_write(client, |mut admin| {
        let request = request.clone();
        async move { admin.put_edge(request).await }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bindings_through_a_down_edge_are_skipped_and_only_those_go_straight_to_continuity() {
    use trunkline_node::sip_responder::{Behaviour, SipResponder};
    let _serial = serial();
    let silent = SipResponder::start_udp(Behaviour::Silent).await.unwrap();
    let answering = SipResponder::start_udp(Behaviour::Reply(200))
        .await
        .unwrap();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let writer = cluster.get(1).client();
    setup(&writer).await;
    put_edge(&writer, "edge-a", &silent.uri()).await;
    put_edge(&writer, "edge-b", &answering.uri()).await;
    register(&writer, "edge-a", "sip:alice@10.0.0.5:5060", 3_600)
        .await
        .unwrap();
    let registered = register(&writer, "edge-b", "sip:alice@10.0.1.6:5060", 3_600)
        .await
        .unwrap();

    // edge-a goes down by its probes: its binding is skipped on every node.
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in [1, 2, 3] {
        let client = cluster.get(node).client();
        loop {
            let answer = route_inbound(&client, DID, registered).await.unwrap();
            if contacts(&answer)
                == vec![("edge-b".to_owned(), "sip:alice@10.0.1.6:5060".to_owned())]
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "edge-a still rung on node {node}: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let health = writer
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.list_health(proto::ListHealthRequest::default()).await
        })
        .await
        .unwrap();
    let edge_a = health
        .gateways
        .iter()
        .find(|line| line.gateway == "edge-a")
        .unwrap();
    assert!(edge_a.edge);
    assert_eq!(edge_a.state, proto::GatewayState::Down as i32);

    // With only the down edge's binding left, the call doesn't wait for a ring timeout.
    let gone = register(&writer, "edge-b", "sip:alice@10.0.1.6:5060", 0)
        .await
        .unwrap();
    let answer = route_inbound(&cluster.get(2).client(), DID, gone)
        .await
        .unwrap();
    assert!(answer.straight_to_continuity, "{answer:?}");
    assert_eq!(
        answer.reason,
        "every edge the device is registered at is down"
    );
    assert_eq!(answer.skip_reason, proto::SkipReason::AllEdgesDown as i32);

    // A gateway can't take an edge's name: health is kept by name.
    let error = try_put_gateway(&writer, gateway("edge-a", "alpha", "sip:192.0.2.20"))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(&error),
        tonic::Code::FailedPrecondition,
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_path_is_taken_as_sip_writes_it() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let client = cluster.get(1).client();
    setup(&client).await;
    let report = |path: Vec<&str>| {
        let request = proto::ReportRegistrationRequest {
            edge: "edge-a".into(),
            aor: AOR.into(),
            contact: "sip:alice@10.0.0.5:5060".into(),
            expires_s: 3_600,
            path: path.into_iter().map(str::to_owned).collect(),
            received: String::new(),
        };
        let client = &client;
        async move {
            client
                .route(Retry::NotSent, |mut route| {
                    let request = request.clone();
                    async move { route.report_registration(request).await }
                })
                .await
        }
    };
    // A Path header value as the REGISTER carried it: two URIs in angle brackets, a
    // header parameter on the first.
    let registered = report(vec!["<sip:edge-a.example;lr>;ob, <sip:10.0.0.2:5070;lr>"])
        .await
        .unwrap()
        .applied_index;
    let answer = route_inbound(&client, DID, registered).await.unwrap();
    assert_eq!(
        answer.legs[0].path,
        vec![
            "sip:edge-a.example;lr".to_owned(),
            "sip:10.0.0.2:5070;lr".to_owned()
        ]
    );
    // A bracket left open is refused naming the field.
    let error = report(vec!["<sip:edge-a.example;lr"]).await.unwrap_err();
    assert_eq!(status_of(&error), tonic::Code::InvalidArgument, "{error}");
    assert_eq!(error.invalid_field().map(|(field, _)| field), Some("path"));
}
