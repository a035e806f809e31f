//! Call detail records across three real processes: every attempt has a record (blocked,
//! unroutable, emergency, answered after a failed leg, busy), each with its legs, times and
//! cost; a call's end is acknowledged only once its record is replicated, so records reported
//! to one node are all there after that node is killed; a repeated end adds nothing; listings
//! filter, and bad filters are refused naming the field.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::time::Duration;

use support::{
    routing::{
        gateway, import_priced, outbound, put_carrier_with, put_tenant, report_call_end,
        route_outbound, try_put_gateway, unprobed, ANSWER_MS,
    },
    *,
};
use trunkline_client::{proto, Client, ClientError, Retry};

async fn setup(client: &Client) -> u64 {
    for (name, capabilities) in [
        ("cheap", &[][..]),
        ("dear", &[][..]),
        ("psap", &["emergency"][..]),
    ] {
        put_carrier_with(client, name, capabilities, vec![]).await;
        let uri = format!("sip:{name}-1.example.net");
        try_put_gateway(client, unprobed(gateway(&format!("{name}-1"), name, &uri)))
            .await
            .unwrap();
    }
    // NANP: cheap at 0.10 a minute, dear at 0.60 a minute and 0.05 to connect.
    import_priced(client, "cheap", &[("1", 100_000, 0)]).await;
    import_priced(client, "dear", &[("1", 600_000, 50_000)]).await;
    put_tenant(client, "acme").await;
    let request = proto::SetCallingPolicyRequest {
        tenant: "acme".into(),
        scope: "tenant".into(),
        rules: Some(proto::PolicyRules {
            block_premium: Some(true),
            ..Default::default()
        }),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.set_calling_policy(request).await }
        })
        .await
        .unwrap()
        .applied_index
}

async fn route(
    client: &Client,
    call_id: &str,
    to: &str,
    index: u64,
) -> proto::RouteOutboundResponse {
    let request = proto::RouteOutboundRequest {
        extension: "101".into(),
        ..outbound("acme", call_id, to, index)
    };
    route_outbound(client, request).await.unwrap()
}

async fn report_leg(
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
        ..Default::default()
    };
    client
        .route(Retry::NotSent, |mut route| {
            let request = request.clone();
            async move { route.report_leg(request).await }
        })
        .await
        .unwrap()
}

async fn end(
    client: &Client,
    call_id: &str,
    token: &str,
    talk_ms: Option<u64>,
) -> Result<proto::ReportCallEndResponse, ClientError> {
    report_call_end(client, call_id, token, talk_ms).await
}

async fn list(
    client: &Client,
    request: proto::ListCdrsRequest,
) -> Result<Vec<proto::CallRecord>, ClientError> {
    let mut stream = client
        .admin(Retry::Idempotent, |mut admin| {
            let request = request.clone();
            async move { admin.list_cdrs(request).await }
        })
        .await?;
    let mut records = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        assert_eq!(
            chunk.complete_since_ms, 0,
            "a node that applied every entry"
        );
        records.extend(chunk.records);
    }
    Ok(records)
}

/// The records on a node once it holds `count` of them (records are applied on every node
/// shortly after they are acknowledged by the leader).
async fn records_on(client: &Client, count: usize) -> Vec<proto::CallRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = list(client, proto::ListCdrsRequest::default())
            .await
            .unwrap();
        if records.len() >= count || tokio::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn by_call<'a>(records: &'a [proto::CallRecord], call_id: &str) -> Vec<&'a proto::CallRecord> {
    records.iter().filter(|r| r.call_id == call_id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attempt_is_recorded_and_acknowledged_records_outlive_the_node_that_took_them() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    let one = cluster.get(1).client();
    let two = cluster.get(2).client();
    let written = setup(&one).await;

    // Everything goes through node 2.
    let blocked = route(&two, "premium@proxy", "9005551234", written).await;
    assert!(blocked.refusal.is_some());
    let emergency = route(&two, "911@proxy", "911", written).await;
    assert_eq!(emergency.legs[0].carrier, "psap");
    let internal = route(&two, "ext@proxy", "2001", written).await;
    assert!(internal.refusal.is_some(), "{internal:?}");

    // Answered on the second carrier after the first said 503.
    let answered = route(&two, "answered@proxy", "4155550100", written).await;
    assert_eq!(answered.legs[0].carrier, "cheap");
    let next = report_leg(
        &two,
        "answered@proxy",
        &answered.route_token,
        &answered.legs[0],
        503,
    )
    .await;
    let Some(proto::report_leg_response::Outcome::Next(leg)) = &next.outcome else {
        panic!("{next:?}");
    };
    assert_eq!(leg.carrier, "dear");
    // Busy on the first carrier.
    let busy = route(&two, "busy@proxy", "4155550101", written).await;
    let stop = report_leg(&two, "busy@proxy", &busy.route_token, &busy.legs[0], 486).await;
    assert!(matches!(
        stop.outcome,
        Some(proto::report_leg_response::Outcome::Stop(_))
    ));

    end(&two, "answered@proxy", &next.route_token, Some(61_500))
        .await
        .unwrap();
    end(&two, "busy@proxy", &stop.route_token, None)
        .await
        .unwrap();
    // The proxy's retry of an end it did not hear back from.
    end(&two, "busy@proxy", &stop.route_token, None)
        .await
        .unwrap();

    // Acknowledged: node 2 can go, and every record is on the others.
    cluster.node(2).kill();
    let records = records_on(&one, 4).await;
    let three = list(&cluster.get(3).client(), proto::ListCdrsRequest::default())
        .await
        .unwrap();
    assert_eq!(records, three, "every node archives the same records");
    assert_eq!(records.len(), 4, "{records:#?}");

    let premium = by_call(&records, "premium@proxy");
    assert_eq!(premium.len(), 1);
    assert_eq!(premium[0].disposition, "blocked");
    assert_eq!(premium[0].reason, "policy-premium (tenant)");
    assert_eq!(premium[0].sip_code, 403);
    assert_eq!(premium[0].destination_class, "premium");
    assert_eq!(premium[0].node_id, 2);
    assert_eq!(premium[0].from, "+12125550100");
    assert_eq!(premium[0].extension, "101");

    let internal = by_call(&records, "ext@proxy");
    assert_eq!(internal[0].disposition, "no-route");
    assert_eq!(internal[0].sip_code, 404);

    let answered = by_call(&records, "answered@proxy");
    assert_eq!(answered.len(), 1, "one record a call: {answered:#?}");
    let answered = answered[0];
    assert_eq!(answered.disposition, "answered");
    assert_eq!(answered.dialled, "4155550100");
    assert_eq!(answered.normalized, "+14155550100");
    assert_eq!(answered.destination_class, "national");
    assert_eq!(answered.answer_ms, ANSWER_MS);
    assert_eq!(answered.end_ms, ANSWER_MS + 61_500);
    assert_eq!(answered.legs.len(), 1);
    assert_eq!(
        (answered.legs[0].carrier.as_str(), answered.legs[0].sip_code),
        ("cheap", 503)
    );
    // 62 started seconds at dear's 0.60 a minute, plus its 0.05 to connect.
    assert_eq!(answered.billed_ms, 62_000);
    assert_eq!(answered.cost_micros, 50_000 + 620_000);

    let busy = by_call(&records, "busy@proxy");
    assert_eq!(busy.len(), 1, "a repeated end adds nothing: {busy:#?}");
    assert_eq!(busy[0].disposition, "busy");
    assert_eq!(busy[0].sip_code, 486);
    assert_eq!(busy[0].billed_ms, 0);

    // The emergency call's end never came: it is in progress, not in the archive yet.
    assert!(by_call(&records, "911@proxy").is_empty());

    // Filters, and what a listing refuses.
    let only_busy = list(
        &one,
        proto::ListCdrsRequest {
            disposition: "busy".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(only_busy.len(), 1);
    let other_tenant = list(
        &one,
        proto::ListCdrsRequest {
            tenant: "globex".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(other_tenant.is_empty());
    let first_two = list(
        &one,
        proto::ListCdrsRequest {
            limit: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(first_two[..], records[..2]);
    let since = records[3].recorded_ms;
    let later = list(
        &one,
        proto::ListCdrsRequest {
            since_ms: since,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(later.iter().all(|record| record.recorded_ms >= since));
    assert!(later.len() < records.len() || records[0].recorded_ms == since);

    let error = list(
        &one,
        proto::ListCdrsRequest {
            disposition: "ok".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    let status = error.status().unwrap();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("disposition: "), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_call_ends_are_refused_and_add_no_record() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let client = cluster.get(1).client();
    let written = setup(&client).await;
    let call = route(&client, "bad@proxy", "4155550100", written).await;

    // End before answer, a foreign token, another call's Call-ID.
    let early = proto::ReportCallEndRequest {
        call_id: "bad@proxy".into(),
        route_token: call.route_token.clone(),
        answered: true,
        answer_time_ms: ANSWER_MS,
        end_time_ms: ANSWER_MS - 1,
        legs: Vec::new(),
    };
    for (request, field) in [
        (early.clone(), "end_time_ms"),
        (
            proto::ReportCallEndRequest {
                route_token: "not-a-token".into(),
                ..early.clone()
            },
            "route_token",
        ),
        (
            proto::ReportCallEndRequest {
                call_id: "other@proxy".into(),
                end_time_ms: ANSWER_MS,
                ..early.clone()
            },
            "route_token",
        ),
    ] {
        let error = client
            .route(Retry::NotSent, |mut route| {
                let request = request.clone();
                async move { route.report_call_end(request).await }
            })
            .await
            .unwrap_err();
        let status = error.status().unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(field), "{status:?}");
    }
    // A gateway name the token and the record could not carry: refused, naming the field.
    let leg = proto::ReportLegRequest {
        call_id: "bad@proxy".into(),
        route_token: call.route_token.clone(),
        carrier: call.legs[0].carrier.clone(),
        gateway: "g".repeat(300),
        sip_code: 503,
        ..Default::default()
    };
    let error = client
        .route(Retry::NotSent, |mut route| {
            let leg = leg.clone();
            async move { route.report_leg(leg).await }
        })
        .await
        .unwrap_err();
    let status = error.status().unwrap();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("gateway: "), "{status:?}");

    let records = list(&client, proto::ListCdrsRequest::default())
        .await
        .unwrap();
    assert!(records.is_empty(), "{records:#?}");
}
