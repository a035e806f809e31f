//! Usage limits across three real processes: calls fired at every node at once never have
//! more admitted than the limit, and are admitted again as others end; a spend limit stops at
//! the limit, not past it; emergency calls pass a full limit; call ends are checked and
//! idempotent.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use support::{
    routing::{
        gateway, import_priced, outbound, put_carrier_with, report_call_end, route_outbound,
        try_put_gateway, unprobed,
    },
    *,
};
use trunkline_client::{proto, Client, ClientError, Retry};

async fn setup(client: &Client, limits: proto::TenantLimits) -> u64 {
    for (name, capabilities) in [("cheap", &[][..]), ("psap", &["emergency"][..])] {
        put_carrier_with(client, name, capabilities, vec![]).await;
        let uri = format!("sip:{name}-1.example.net");
        try_put_gateway(client, unprobed(gateway(&format!("{name}-1"), name, &uri)))
            .await
            .unwrap();
    }
    // cheap's deck: one row for NANP, 0.10 a minute and 0.05 to connect.
    import_priced(client, "cheap", &[("1", 100_000, 50_000)]).await;
    let request = proto::PutTenantRequest {
        tenant: Some(proto::Tenant {
            name: "acme".into(),
            limits: Some(limits),
            ..Default::default()
        }),
        mode: proto::PutMode::Create.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_tenant(request).await }
        })
        .await
        .unwrap()
        .applied_index
}

async fn route(
    client: &Client,
    call_id: &str,
    to: &str,
    min_applied_index: u64,
) -> proto::RouteOutboundResponse {
    route_outbound(client, outbound("acme", call_id, to, min_applied_index))
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

async fn usage(client: &Client) -> proto::UsageCounters {
    let request = proto::GetUsageRequest {
        tenant: "acme".into(),
        consistency: Some(proto::ReadConsistency {
            linearizable: true,
            ..Default::default()
        }),
    };
    client
        .admin(Retry::Idempotent, |mut admin| {
            let request = request.clone();
            async move { admin.get_usage(request).await }
        })
        .await
        .unwrap()
        .counters
        .unwrap()
}

fn limit(answer: &proto::RouteOutboundResponse) -> Option<i32> {
    answer.refusal.as_ref().map(|refusal| refusal.reason)
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_at_every_node_at_once_never_exceed_the_limit_and_are_admitted_as_others_end() {
    let _serial = serial();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let clients = [
        std::sync::Arc::new(cluster.get(1).client()),
        std::sync::Arc::new(cluster.get(2).client()),
        std::sync::Arc::new(cluster.get(3).client()),
    ];
    let written = setup(
        &clients[0],
        proto::TenantLimits {
            tenant: Some(proto::UsageLimits {
                concurrent_calls: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;

    // 30 calls at once, ten through each node.
    let mut calls = tokio::task::JoinSet::new();
    for call in 0..30 {
        let client = clients[call % 3].clone();
        calls.spawn(async move {
            let call_id = format!("call-{call}@proxy");
            let answer = route(&client, &call_id, "4155550100", written).await;
            (call_id, answer)
        });
    }
    let mut admitted = Vec::new();
    let mut refused = 0;
    while let Some(result) = calls.join_next().await {
        let (call_id, answer) = result.unwrap();
        match limit(&answer) {
            None => {
                assert!(!answer.legs.is_empty());
                assert!(answer.max_duration_ms > 0, "an admitted call has a grant");
                admitted.push((call_id, answer.route_token));
            }
            Some(reason) => {
                assert_eq!(reason, proto::RefusalReason::LimitConcurrentCalls as i32);
                let refusal = answer.refusal.unwrap();
                assert_eq!(refusal.sip_code, 503);
                assert!(answer.legs.is_empty() && answer.route_token.is_empty());
                refused += 1;
            }
        }
    }
    assert_eq!(admitted.len(), 5, "admitted past the limit of 5");
    assert_eq!(refused, 25);
    assert_eq!(usage(&clients[1]).await.active_calls, 5);

    // A dry run (trunkctl route test) shows where a call would go without holding a slot.
    let request = proto::RouteOutboundRequest {
        tenant: "acme".into(),
        call_id: "dry-run@proxy".into(),
        to: "4155550100".into(),
        dry_run: true,
        ..Default::default()
    };
    let dry = clients[0]
        .route(Retry::NotSent, |mut route| {
            let request = request.clone();
            async move { route.route_outbound(request).await }
        })
        .await
        .unwrap();
    assert_eq!(limit(&dry), None);
    assert!(!dry.legs.is_empty() && dry.route_token.is_empty());
    assert!(
        dry.warnings.iter().any(|w| w.contains("dry run")),
        "{:?}",
        dry.warnings
    );
    assert_eq!(usage(&clients[2]).await.active_calls, 5);

    // An emergency call is never refused by a limit, and holds no slot.
    let emergency = route(&clients[2], "call-911@proxy", "911", 0).await;
    assert_eq!(limit(&emergency), None);
    assert_eq!(emergency.legs[0].carrier, "psap");
    assert_eq!(emergency.max_duration_ms, 0);

    // Two calls end, through two other nodes: two more are admitted, and no more.
    for (node, (call_id, token)) in admitted.iter().take(2).enumerate() {
        let ended = end(&clients[(node + 1) % 3], call_id, token, Some(30_000))
            .await
            .unwrap();
        assert!(ended.released);
        assert_eq!(ended.billed_ms, 30_000);
        assert_eq!(ended.cost_micros, 50_000 + 50_000);
        // Reported twice: nothing more is released.
        let again = end(&clients[node % 3], call_id, token, Some(30_000))
            .await
            .unwrap();
        assert!(!again.released);
    }
    let mut more = tokio::task::JoinSet::new();
    for call in 100..110 {
        let client = clients[call % 3].clone();
        more.spawn(
            async move { route(&client, &format!("call-{call}@proxy"), "4155550100", 0).await },
        );
    }
    let mut admitted_again = 0;
    while let Some(result) = more.join_next().await {
        if limit(&result.unwrap()).is_none() {
            admitted_again += 1;
        }
    }
    assert_eq!(admitted_again, 2);
    let counters = usage(&clients[0]).await;
    assert_eq!(counters.active_calls, 5);
    assert_eq!(counters.spend_micros_today, 200_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spend_limit_stops_calls_at_the_limit_and_bad_ends_are_refused() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let client = cluster.get(1).client();
    // 1.00 a day.
    let written = setup(
        &client,
        proto::TenantLimits {
            tenant: Some(proto::UsageLimits {
                spend_per_day_micros: Some(1_000_000),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let first = route(&client, "spend-1@proxy", "4155550100", written).await;
    assert_eq!(limit(&first), None);
    // (1.00 - 0.05) / 0.10 a minute: 9.5 minutes.
    assert_eq!(first.max_duration_ms, 570_000);
    let second = route(&client, "spend-2@proxy", "4155550100", 0).await;
    assert_eq!(
        limit(&second),
        Some(proto::RefusalReason::LimitSpendPerDay as i32)
    );

    // Bad ends: named fields, nothing released.
    for (request, field) in [
        (
            proto::ReportCallEndRequest {
                call_id: "spend-1@proxy".into(),
                route_token: first.route_token.clone(),
                answered: true,
                answer_time_ms: 2_000,
                end_time_ms: 1_000,
                legs: Vec::new(),
            },
            "end_time_ms",
        ),
        (
            proto::ReportCallEndRequest {
                call_id: "spend-1@proxy".into(),
                route_token: first.route_token.clone(),
                answered: true,
                answer_time_ms: 0,
                end_time_ms: 1_000,
                legs: Vec::new(),
            },
            "answer_time_ms",
        ),
        (
            proto::ReportCallEndRequest {
                call_id: "another@proxy".into(),
                route_token: first.route_token.clone(),
                ..Default::default()
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
        assert!(status.message().contains(field), "{field}: {status:?}");
    }
    assert_eq!(usage(&client).await.active_calls, 1);

    // It talks an hour: billed to its grant, the limit exactly, not past it.
    let ended = end(
        &client,
        "spend-1@proxy",
        &first.route_token,
        Some(3_600_000),
    )
    .await
    .unwrap();
    assert_eq!((ended.billed_ms, ended.cost_micros), (570_000, 1_000_000));
    let counters = usage(&client).await;
    assert_eq!(counters.spend_micros_today, 1_000_000);
    assert_eq!(counters.held_micros_today, 0);
    let third = route(&client, "spend-3@proxy", "4155550100", 0).await;
    assert_eq!(
        limit(&third),
        Some(proto::RefusalReason::LimitSpendPerDay as i32)
    );
}
