//! What one client can make a node hold, against a real process: staging slots that unused
//! import ids can't block, open WatchEvents and ExportRates streams counted per node, and
//! answers capped in legs without losing the carriers beyond the first answer.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::time::{Duration, Instant};

use support::{
    routing::{gateway, import, put_carrier, put_tenant, try_put_gateway, unprobed, OWNER},
    *,
};
use tonic::Code;
use trunkline_client::{proto, Client, ClientError, Retry};

fn code(error: &ClientError) -> Code {
    match error {
        ClientError::Status { status, .. } => status.code(),
        other => panic!("expected a status, got {other}"),
    }
}

/// A distinct owner token for import `n`.
fn owner(n: usize) -> String {
    format!("{n:032x}")
}

async fn stage(
    client: &Client,
    import_id: &str,
    owner: &str,
    rates: Vec<proto::Rate>,
) -> Result<proto::StageRatesResponse, ClientError> {
    let request = proto::StageRatesRequest {
        carrier: "alpha".into(),
        import_id: import_id.into(),
        owner: owner.into(),
        rates,
        first_line: 2,
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.stage_rates(request).await }
        })
        .await
}

async fn stage_one(client: &Client, import_id: &str, owner: &str) -> Result<u64, ClientError> {
    let rate = proto::Rate {
        prefix: "44".into(),
        rate_micros_per_minute: 1,
        ..Default::default()
    };
    Ok(stage(client, import_id, owner, vec![rate])
        .await?
        .staged_rows)
}

async fn abort(
    client: &Client,
    import_id: &str,
    owner: &str,
) -> Result<proto::AbortRatesResponse, ClientError> {
    let request = proto::AbortRatesRequest {
        import_id: import_id.into(),
        owner: owner.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.abort_rates(request).await }
        })
        .await
}

async fn imports(client: &Client) -> Vec<proto::StagedImport> {
    client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .list_imports(proto::ListImportsRequest { consistency: None })
                .await
        })
        .await
        .unwrap()
        .imports
}

#[tokio::test(flavor = "multi_thread")]
async fn unused_import_ids_no_longer_block_imports_and_abort_frees_a_slot() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let client = cluster.client();
    put_carrier(&client, "alpha", vec![]).await;

    // 16 clients stage one chunk each and go away: every slot is taken.
    for n in 0..16 {
        stage_one(&client, &format!("stale-{n}"), &owner(n))
            .await
            .unwrap();
    }
    let listed = imports(&client).await;
    assert_eq!(listed.len(), 16);
    assert!(listed.iter().all(|import| import.carrier == "alpha"));
    assert!(listed.iter().all(|import| import.staged_rows == 1));

    // While they are fresh, a 17th import is refused, naming the way out.
    let refused = stage_one(&client, "fresh", OWNER).await.unwrap_err();
    assert_eq!(code(&refused), Code::ResourceExhausted, "{refused}");
    assert!(refused.to_string().contains("abort one"), "{refused}");

    // Only the owner token aborts an import; aborting frees the slot at once.
    let wrong = abort(&client, "stale-0", &owner(1)).await.unwrap_err();
    assert_eq!(code(&wrong), Code::InvalidArgument, "{wrong}");
    assert!(wrong.to_string().contains("owner"), "{wrong}");
    let aborted = abort(&client, "stale-0", &owner(0)).await.unwrap();
    assert_eq!(aborted.staged_rows, 1);
    assert_eq!(stage_one(&client, "fresh", OWNER).await.unwrap(), 1);

    // Another client's chunk under a known import id is refused.
    let hijack = stage_one(&client, "fresh", &owner(99)).await.unwrap_err();
    assert_eq!(code(&hijack), Code::InvalidArgument, "{hijack}");

    // A minute later (log time: the next entry is stamped with the leader's clock) the
    // abandoned imports may be evicted by a new one. Old code: blocked for 30 minutes.
    tokio::time::sleep(Duration::from_millis(
        trunkline_core::routing::STAGED_IMPORT_IDLE_MS + 1_000,
    ))
    .await;
    assert_eq!(stage_one(&client, "fresh", OWNER).await.unwrap(), 2);
    assert_eq!(
        stage_one(&client, "newer", &owner(100)).await.unwrap(),
        1,
        "an idle import should have made room"
    );
    let listed = imports(&client).await;
    assert_eq!(listed.len(), 16);
    // The longest idle went first: stale-1 (stale-0 was aborted).
    assert!(!listed.iter().any(|import| import.import_id == "stale-1"));
    let fresh = listed
        .iter()
        .find(|import| import.import_id == "fresh")
        .unwrap();
    assert_eq!(fresh.staged_rows, 2);
    let stale = listed
        .iter()
        .find(|import| import.import_id == "stale-2")
        .unwrap();
    assert!(stale.idle_ms >= trunkline_core::routing::STAGED_IMPORT_IDLE_MS);
}

async fn route(client: &Client, call_id: &str) -> proto::RouteOutboundResponse {
    let request = proto::RouteOutboundRequest {
        tenant: "acme".into(),
        call_id: call_id.into(),
        from: "+14155550100".into(),
        to: "+442071234567".into(),
        media: proto::Media::Voice.into(),
        explain: true,
        min_applied_index: 0,
        ..Default::default()
    };
    client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.route_outbound(request).await }
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_has_at_most_the_leg_limit_and_reroute_reaches_the_carriers_beyond() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let client = cluster.client();
    // 100 gateways: 60 of the cheaper carrier alpha, 40 of beta.
    for (carrier, gateways) in [("alpha", 60), ("beta", 40)] {
        put_carrier(&client, carrier, vec![]).await;
        for n in 0..gateways {
            let name = format!("{carrier}-{n:02}");
            let uri = format!("sip:{name}.example.net;transport=udp");
            try_put_gateway(&client, unprobed(gateway(&name, carrier, &uri)))
                .await
                .unwrap();
        }
    }
    import(&client, "alpha", &[("44", 1_000)]).await;
    import(&client, "beta", &[("44", 2_000)]).await;
    put_tenant(&client, "acme").await;

    let routed = route(&client, "call-1@proxy").await;
    assert_eq!(routed.legs.len(), 32, "the default answers.max_legs");
    assert!(routed.legs.iter().all(|leg| leg.carrier == "alpha"));
    // Every leg explained, at most 64 other lines, one summary.
    assert!(routed.explanation.len() <= 32 + 64 + 1);
    let summary = routed.explanation.last().unwrap();
    assert!(summary.reason.contains("more not shown"), "{summary:?}");

    // alpha fails: the next leg comes from beta, which was beyond the first answer.
    let request = proto::ReportLegRequest {
        call_id: "call-1@proxy".into(),
        route_token: routed.route_token,
        carrier: "alpha".into(),
        gateway: routed.legs[0].gateway.clone(),
        sip_code: 503,
        ..Default::default()
    };
    let reported = client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.report_leg(request).await }
        })
        .await
        .unwrap();
    match reported.outcome.unwrap() {
        proto::report_leg_response::Outcome::Next(leg) => assert_eq!(leg.carrier, "beta"),
        other => panic!("expected a reroute to beta, got {other:?}"),
    }
}

async fn watch(client: &Client) -> Result<tonic::Streaming<proto::Event>, ClientError> {
    client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .watch_events(proto::WatchEventsRequest {
                    follow: true,
                    ..Default::default()
                })
                .await
        })
        .await
}

async fn export(client: &Client) -> Result<tonic::Streaming<proto::ExportRatesChunk>, ClientError> {
    client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .export_rates(proto::ExportRatesRequest {
                    carrier: "alpha".into(),
                    consistency: None,
                })
                .await
        })
        .await
}

/// Retries `open` until it succeeds: a closed stream's slot is freed when the node notices.
async fn reopens<T, F, Fut>(mut open: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open().await {
            Ok(stream) => return stream,
            Err(error) if Instant::now() < deadline => {
                assert_eq!(code(&error), Code::ResourceExhausted, "{error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("the slot was not freed: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn open_streams_are_capped_per_node_and_a_closed_one_frees_its_slot() {
    let _serial = serial();
    let mut extra = FAST_RAFT.to_vec();
    extra.extend(["--max-watch-streams", "2", "--max-export-streams", "1"]);
    let cluster = TestCluster::start(1, &extra).await;
    let client = cluster.client();

    let first = watch(&client).await.unwrap();
    let _second = watch(&client).await.unwrap();
    let refused = watch(&client).await.unwrap_err();
    assert_eq!(code(&refused), Code::ResourceExhausted, "{refused}");
    assert!(
        refused.to_string().contains("streams.max_watch_streams"),
        "{refused}"
    );
    drop(first);
    let _third = reopens(|| watch(&client)).await;

    // A deck bigger than the HTTP/2 windows, so an export nobody reads stays open.
    put_carrier(&client, "alpha", vec![]).await;
    let rows: Vec<proto::Rate> = (0..60_000u64)
        .map(|n| proto::Rate {
            prefix: format!("9{n:06}"),
            rate_micros_per_minute: 500,
            description: "x".repeat(100),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(5_000) {
        stage(&client, "big", OWNER, chunk.to_vec()).await.unwrap();
    }
    let commit = proto::CommitRatesRequest {
        carrier: "alpha".into(),
        import_id: "big".into(),
        owner: OWNER.into(),
        replace: true,
        expected_rows: rows.len() as u64,
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let commit = commit.clone();
            async move { admin.commit_rates(commit).await }
        })
        .await
        .unwrap();

    let stalled = export(&client).await.unwrap();
    let refused = export(&client).await.unwrap_err();
    assert_eq!(code(&refused), Code::ResourceExhausted, "{refused}");
    assert!(
        refused.to_string().contains("streams.max_export_streams"),
        "{refused}"
    );
    drop(stalled);
    let mut again = reopens(|| export(&client)).await;
    let mut exported = 0;
    while let Some(chunk) = again.message().await.unwrap() {
        exported += chunk.rates.len();
    }
    assert_eq!(exported, rows.len());
}
