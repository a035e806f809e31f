//! Outbound routing across three real processes: configuration and a deck written through one
//! node, lookups through another, leg reports through the third, and a carrier is never
//! offered twice in one call.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::collections::BTreeSet;

use support::{
    routing::{gateway, import, put_carrier, put_tenant, unprobed, OWNER},
    *,
};
use trunkline_client::{proto, Client, Retry};

async fn try_put_gateway(
    client: &Client,
    name: &str,
    carrier: &str,
    uri: &str,
    priority: u32,
) -> Result<proto::PutResponse, trunkline_client::ClientError> {
    // Nobody answers at these addresses: unprobed, they stay up.
    let mut gateway = unprobed(gateway(name, carrier, uri));
    gateway.priority = priority;
    gateway.weight = 10;
    support::routing::try_put_gateway(client, gateway).await
}

async fn put_gateway(client: &Client, name: &str, carrier: &str, priority: u32) -> u64 {
    let uri = format!("sip:{name}.example.net;transport=udp");
    try_put_gateway(client, name, carrier, &uri, priority)
        .await
        .unwrap()
        .applied_index
}

async fn route(
    client: &Client,
    call_id: &str,
    to: &str,
    min_applied_index: u64,
) -> Result<proto::RouteOutboundResponse, trunkline_client::ClientError> {
    let request = proto::RouteOutboundRequest {
        tenant: "acme".into(),
        call_id: call_id.into(),
        from: "+14155550100".into(),
        to: to.into(),
        media: proto::Media::Voice.into(),
        explain: true,
        min_applied_index,
        ..Default::default()
    };
    client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.route_outbound(request).await }
        })
        .await
}

async fn report(
    client: &Client,
    call_id: &str,
    token: &str,
    leg: &proto::Leg,
    sip_code: u32,
) -> proto::ReportLegResponse {
    let request = proto::ReportLegRequest {
        call_id: call_id.into(),
        route_token: token.into(),
        carrier: leg.carrier.clone(),
        gateway: leg.gateway.clone(),
        sip_code,
        transport_error: 0,
        time_to_first_reply_ms: 100,
        time_to_failure_ms: 200,
        no_answer: false,
        proxy_timeout: false,
        planned: false,
    };
    client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.report_leg(request).await }
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn legs_fail_over_across_nodes_and_never_revisit_a_carrier() {
    let _serial = serial();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let (first, second, third) = (
        cluster.get(1).client(),
        cluster.get(2).client(),
        cluster.get(3).client(),
    );

    // Configuration and decks through node 1. Prices: alpha < beta < gamma < delta for UK
    // numbers; delta marks 503 as the callee's final answer.
    for (carrier, final_codes) in [
        ("alpha", vec![]),
        ("beta", vec![]),
        ("gamma", vec![]),
        ("delta", vec![503]),
    ] {
        put_carrier(&first, carrier, final_codes).await;
        put_gateway(&first, &format!("{carrier}-1"), carrier, 10).await;
        put_gateway(&first, &format!("{carrier}-2"), carrier, 20).await;
    }
    import(&first, "alpha", &[("44", 10_000), ("4420", 5_000)]).await;
    import(&first, "beta", &[("44", 6_000)]).await;
    import(&first, "gamma", &[("442", 7_000)]).await;
    import(&first, "delta", &[("4", 9_000)]).await;
    let written = put_tenant(&first, "acme").await;

    // Look up through node 2, at least at the last write.
    let call_id = "call-1@proxy";
    let routed = route(&second, call_id, "011 44 20 7123 4567", written)
        .await
        .unwrap();
    assert_eq!(routed.normalized, "+442071234567");
    assert_eq!(
        routed.destination_class,
        proto::DestinationClass::International as i32
    );
    let carriers: Vec<&str> = routed.legs.iter().map(|leg| leg.carrier.as_str()).collect();
    // Least cost by each carrier's longest prefix: alpha 4420 @5000, beta 44 @6000,
    // gamma 442 @7000, delta 4 @9000; each carrier's gateways by priority.
    assert_eq!(
        carriers,
        ["alpha", "alpha", "beta", "beta", "gamma", "gamma", "delta", "delta"]
    );
    assert_eq!(routed.legs[0].gateway, "alpha-1");
    assert_eq!(routed.legs[0].prefix, "4420");
    assert_eq!(routed.legs[0].dial_string, "+442071234567");
    // A ready Request-URI: the dial string in the gateway's URI.
    let gateway = routed.legs[0].uri.strip_prefix("sip:").unwrap();
    assert_eq!(
        routed.legs[0].request_uri,
        format!("sip:+442071234567@{gateway}")
    );
    assert!(routed.read_state.unwrap().applied_index >= written);
    assert!(!routed.explanation.is_empty());

    // A report that does not name the leg's carrier says it is required.
    let request = proto::ReportLegRequest {
        call_id: call_id.into(),
        route_token: routed.route_token.clone(),
        sip_code: 503,
        ..Default::default()
    };
    let error = third
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.report_leg(request).await }
        })
        .await
        .unwrap_err();
    let (field, reason) = error.invalid_field().expect("a field error");
    assert_eq!(field, "carrier");
    assert!(reason.starts_with("is required"), "{error}");

    // Report failures through node 3: each report moves to the next carrier, never back.
    let mut tried = vec![routed.legs[0].carrier.clone()];
    let mut leg = routed.legs[0].clone();
    let mut token = routed.route_token.clone();
    for expected in ["beta", "gamma", "delta"] {
        let answer = report(&third, call_id, &token, &leg, 503).await;
        let Some(proto::report_leg_response::Outcome::Next(next)) = answer.outcome else {
            panic!("expected a next leg, got {:?}", answer.outcome);
        };
        assert_eq!(next.carrier, expected);
        assert!(
            !tried.contains(&next.carrier),
            "{} offered twice",
            next.carrier
        );
        tried.push(next.carrier.clone());
        leg = next;
        token = answer.route_token;
    }
    // delta says 503 is final for it: the call stops there.
    let answer = report(&first, call_id, &token, &leg, 503).await;
    let Some(proto::report_leg_response::Outcome::Stop(stop)) = answer.outcome else {
        panic!("expected a stop, got {:?}", answer.outcome);
    };
    assert_eq!(stop.reason, proto::StopReason::CarrierFinal as i32);

    // The same report on any node gives the same answer.
    let routed = route(&first, "call-2@proxy", "+442071234567", 0)
        .await
        .unwrap();
    let mut answers = BTreeSet::new();
    for client in [&first, &second, &third] {
        let answer = report(
            client,
            "call-2@proxy",
            &routed.route_token,
            &routed.legs[0],
            408,
        )
        .await;
        answers.insert(format!("{:?}", answer.outcome));
    }
    assert_eq!(answers.len(), 1, "nodes disagree: {answers:?}");

    // After a failure the next carrier answers: the call stops as answered.
    let answer = report(
        &third,
        "call-2@proxy",
        &routed.route_token,
        &routed.legs[0],
        408,
    )
    .await;
    let Some(proto::report_leg_response::Outcome::Next(next)) = answer.outcome else {
        panic!("expected a next leg");
    };
    assert_ne!(next.carrier, routed.legs[0].carrier);
    let answered = report(&first, "call-2@proxy", &answer.route_token, &next, 200).await;
    assert!(
        matches!(answered.outcome, Some(proto::report_leg_response::Outcome::Stop(ref stop)) if stop.reason == proto::StopReason::Answered as i32 && stop.sip_code == 200)
    );

    // The callee's answer ends the call; a forged or foreign token is refused.
    let answer = report(
        &second,
        "call-2@proxy",
        &routed.route_token,
        &routed.legs[0],
        486,
    )
    .await;
    assert!(
        matches!(answer.outcome, Some(proto::report_leg_response::Outcome::Stop(ref stop)) if stop.reason == proto::StopReason::CalleeAnswer as i32)
    );
    let mut forged = routed.route_token.clone();
    forged.replace_range(10..11, if &forged[10..11] == "A" { "B" } else { "A" });
    let request = proto::ReportLegRequest {
        call_id: "call-2@proxy".into(),
        route_token: forged,
        carrier: "alpha".into(),
        gateway: "alpha-1".into(),
        sip_code: 503,
        ..Default::default()
    };
    let error = second
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.report_leg(request).await }
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.status().unwrap().code(),
        tonic::Code::InvalidArgument,
        "{error}"
    );

    // A drained gateway is skipped on every node.
    let drain = proto::DrainGatewayRequest {
        gateway: "alpha-1".into(),
        drained: true,
    };
    let drained = third
        .admin(Retry::NotSent, |mut admin| {
            let drain = drain.clone();
            async move { admin.drain_gateway(drain).await }
        })
        .await
        .unwrap()
        .applied_index;
    for client in [&first, &second, &third] {
        let routed = route(client, "call-3@proxy", "+442071234567", drained)
            .await
            .unwrap();
        assert_eq!(routed.legs[0].gateway, "alpha-2");
        assert!(routed.legs.iter().all(|leg| leg.gateway != "alpha-1"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_route_requests_get_the_right_status_and_name_the_field() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let cluster = TestCluster {
        nodes: vec![TestNode::start(root.path(), 1, FAST_RAFT)],
        root,
    };
    cluster.init().await;
    let client = cluster.get(1).client();
    put_carrier(&client, "alpha", vec![]).await;
    let written = put_tenant(&client, "acme").await;

    let error = route(&client, "c", "12x45", written).await.unwrap_err();
    let status = error.status().unwrap();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("to: "), "{error}");
    assert_eq!(status.metadata().get("trunkline-sip-code").unwrap(), "484");

    // No deck yet: a valid number gets no legs and a refusal that explain can back up.
    let routed = route(&client, "c", "+442071234567", written).await.unwrap();
    assert!(routed.legs.is_empty());
    assert_eq!(
        routed.refusal.unwrap().reason,
        proto::RefusalReason::NoRoute as i32
    );
    assert!(routed
        .explanation
        .iter()
        .any(|candidate| candidate.carrier == "alpha" && !candidate.kept));

    let mut request = proto::RouteOutboundRequest {
        tenant: "nobody".into(),
        call_id: "c".into(),
        to: "+442071234567".into(),
        ..Default::default()
    };
    let unknown = client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.route_outbound(request).await }
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.status().unwrap().code(), tonic::Code::NotFound);
    assert_eq!(
        unknown
            .status()
            .unwrap()
            .metadata()
            .get("trunkline-refusal")
            .unwrap(),
        "unknown-tenant"
    );
    // The SIP code the proto documents: a caller this cluster does not serve.
    let sip_code = unknown
        .status()
        .unwrap()
        .metadata()
        .get("trunkline-sip-code");
    assert_eq!(sip_code.unwrap(), "403");

    request.tenant = "acme".into();
    request.call_id = String::new();
    let missing = client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.route_outbound(request).await }
        })
        .await
        .unwrap_err();
    assert_eq!(
        missing.status().unwrap().code(),
        tonic::Code::InvalidArgument
    );
    assert!(missing.to_string().contains("call_id"), "{missing}");

    // Configuration errors: unknown carrier referenced, a bad URI, a bad deck row.
    let error = try_put_gateway(&client, "g", "nope", "sip:a.example", 10)
        .await
        .unwrap_err();
    assert_eq!(
        error.status().unwrap().code(),
        tonic::Code::NotFound,
        "{error}"
    );
    let error = try_put_gateway(&client, "g", "alpha", "http://x", 10)
        .await
        .unwrap_err();
    assert_eq!(
        error.status().unwrap().code(),
        tonic::Code::InvalidArgument,
        "{error}"
    );
    assert!(error.to_string().contains("uri"), "{error}");
    let error = client
        .admin(Retry::NotSent, |mut admin| async move {
            admin
                .stage_rates(proto::StageRatesRequest {
                    carrier: "alpha".into(),
                    import_id: "x".into(),
                    owner: OWNER.into(),
                    rates: vec![proto::Rate {
                        prefix: "44a".into(),
                        ..Default::default()
                    }],
                    first_line: 7,
                })
                .await
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.status().unwrap().code(),
        tonic::Code::InvalidArgument,
        "{error}"
    );
    assert!(
        error.to_string().contains("line 7") && error.to_string().contains("prefix"),
        "{error}"
    );

    // An oversized request is refused by size before it is decoded.
    let huge = proto::StageRatesRequest {
        carrier: "alpha".into(),
        import_id: "huge".into(),
        owner: OWNER.into(),
        rates: vec![proto::Rate {
            prefix: "44".into(),
            description: "x".repeat(5 * 1024 * 1024),
            ..Default::default()
        }],
        first_line: 2,
    };
    let error = client
        .admin(Retry::NotSent, |mut admin| {
            let huge = huge.clone();
            async move { admin.stage_rates(huge).await }
        })
        .await
        .unwrap_err();
    let code = error.status().unwrap().code();
    assert!(
        matches!(
            code,
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{error}"
    );

    // A leg report without what it needs says which field "is required".
    for (field, request) in [
        ("call_id", proto::ReportLegRequest::default()),
        (
            "route_token",
            proto::ReportLegRequest {
                call_id: "c".into(),
                ..Default::default()
            },
        ),
    ] {
        let error = client
            .route(Retry::Idempotent, |mut route| {
                let request = request.clone();
                async move { route.report_leg(request).await }
            })
            .await
            .unwrap_err();
        let (named, reason) = error.invalid_field().expect("a field error");
        assert_eq!(named, field);
        assert!(reason.starts_with("is required"), "{error}");
    }
}

/// A large import is staged while the old deck keeps answering; lookups during the import
/// never fail and never see a half-applied deck; after the commit they see the new one.
#[tokio::test(flavor = "multi_thread")]
async fn the_old_deck_serves_until_a_large_import_commits() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let cluster = TestCluster {
        nodes: vec![TestNode::start(root.path(), 1, FAST_RAFT)],
        root,
    };
    cluster.init().await;
    let client = cluster.get(1).client();
    put_carrier(&client, "alpha", vec![]).await;
    put_gateway(&client, "alpha-1", "alpha", 10).await;
    import(&client, "alpha", &[("44", 1_000)]).await;
    let written = put_tenant(&client, "acme").await;
    assert_eq!(
        route(&client, "c", "+442071234567", written)
            .await
            .unwrap()
            .legs[0]
            .rate_micros_per_minute,
        1_000
    );

    // Lookups run throughout the import.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lookups = {
        let stop = stop.clone();
        let client = cluster.get(1).client();
        tokio::spawn(async move {
            let (mut answered, mut failed, mut rates) = (0u64, 0u64, BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match route(&client, "lookup", "+442071234567", 0).await {
                    Ok(routed) if !routed.legs.is_empty() => {
                        answered += 1;
                        rates.insert(routed.legs[0].rate_micros_per_minute);
                    }
                    _ => failed += 1,
                }
            }
            (answered, failed, rates)
        })
    };

    // 100,000 rows in 20 chunks; 44 is re-priced.
    let import_id = "big";
    let mut rows: Vec<proto::Rate> = (0..99_999u64)
        .map(|n| proto::Rate {
            prefix: format!("9{n:06}"),
            rate_micros_per_minute: 500,
            ..Default::default()
        })
        .collect();
    rows.push(proto::Rate {
        prefix: "44".into(),
        rate_micros_per_minute: 2_000,
        ..Default::default()
    });
    let mut line = 2;
    for chunk in rows.chunks(5_000) {
        let stage = proto::StageRatesRequest {
            carrier: "alpha".into(),
            import_id: import_id.into(),
            owner: OWNER.into(),
            rates: chunk.to_vec(),
            first_line: line,
        };
        line += chunk.len() as u64;
        client
            .admin(Retry::NotSent, |mut admin| {
                let stage = stage.clone();
                async move { admin.stage_rates(stage).await }
            })
            .await
            .unwrap();
        // Staged rows are not the deck yet.
        let routed = route(&client, "c", "+442071234567", 0).await.unwrap();
        assert_eq!(routed.legs[0].rate_micros_per_minute, 1_000);
    }
    let commit = proto::CommitRatesRequest {
        carrier: "alpha".into(),
        import_id: import_id.into(),
        owner: OWNER.into(),
        replace: true,
        expected_rows: rows.len() as u64,
    };
    let committed = client
        .admin(Retry::NotSent, |mut admin| {
            let commit = commit.clone();
            async move { admin.commit_rates(commit).await }
        })
        .await
        .unwrap();
    assert_eq!(committed.deck_rows, 100_000);
    let routed = route(&client, "c", "+442071234567", committed.applied_index)
        .await
        .unwrap();
    assert_eq!(routed.legs[0].rate_micros_per_minute, 2_000);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, failed, rates) = lookups.await.unwrap();
    assert_eq!(failed, 0, "lookups failed during the import");
    assert!(answered > 0);
    assert!(
        rates.iter().all(|rate| *rate == 1_000 || *rate == 2_000),
        "a half-applied deck answered: {rates:?}"
    );
}
