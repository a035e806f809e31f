//! `RouteStream` against a real node process: many lookups and a leg report on one HTTP/2
//! stream, answered by id exactly as the unary RPCs answer; refusals as tagged errors on a
//! stream that goes on; more bytes through one stream than the listener's whole request
//! budget; a request that waits holding up none after it; and open streams counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::{collections::BTreeMap, time::Duration};

use support::{
    routing::{alpha_and_beta, outbound},
    *,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use trunkline_client::proto::{
    self, route_service_client::RouteServiceClient, route_stream_request::Request as Asked,
    route_stream_response::Response as Answered,
};

/// A stream whose requests are sent through the returned sender.
async fn open(
    node: &TestNode,
) -> Result<
    (
        mpsc::Sender<proto::RouteStreamRequest>,
        tonic::Streaming<proto::RouteStreamResponse>,
    ),
    tonic::Status,
> {
    let (sender, receiver) = mpsc::channel(16);
    let mut route = RouteServiceClient::new(node.channel().await);
    let answers = route
        .route_stream(ReceiverStream::new(receiver))
        .await?
        .into_inner();
    Ok((sender, answers))
}

fn lookup(id: u64, request: proto::RouteOutboundRequest) -> proto::RouteStreamRequest {
    proto::RouteStreamRequest {
        id,
        request: Some(Asked::RouteOutbound(request)),
    }
}

/// The listener's request budget in the first test: the smallest a node takes.
const BUDGET: usize = 4 * 1024 * 1024;
/// Lookups on the stream: about 300 bytes each, more than [`BUDGET`] in all.
const LOOKUPS: u64 = 16_000;
/// The first lookups are calls (a token, a call record); the rest are dry runs.
const REAL_CALLS: u64 = 10;

/// Lookup `id` of the first test, with a long (256-byte) Call-ID.
fn request(id: u64, applied: u64) -> proto::RouteOutboundRequest {
    let call_id = format!("{id:06}-{}@10.0.0.1", "c".repeat(238));
    let mut request = outbound("acme", &call_id, "+442071234567", applied);
    request.dry_run = id > REAL_CALLS;
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_answers_every_request_by_id_as_the_unary_calls_do() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    // The smallest request budget for the whole listener (4 MiB, the largest message), and
    // a stream that sends more than that: a stream holds the budget for the message arriving,
    // not for all it ever sent.
    let (node, client) = started(
        root.path(),
        &["--api-max-buffered-request-bytes", &BUDGET.to_string()],
    )
    .await;
    let applied = alpha_and_beta(&client).await;

    let (sender, mut answers) = open(&node).await.unwrap();
    let writer = tokio::spawn(async move {
        for id in 1..=LOOKUPS {
            sender.send(lookup(id, request(id, applied))).await.unwrap();
        }
        // Refusals come back as errors with the same metadata as the unary call's status.
        sender
            .send(lookup(
                100_001,
                outbound("nobody", "refused@10.0.0.1", "+442071234567", 0),
            ))
            .await
            .unwrap();
        sender
            .send(proto::RouteStreamRequest {
                id: 100_002,
                request: None,
            })
            .await
            .unwrap();
        sender
    });

    let mut by_id = BTreeMap::new();
    while by_id.len() < LOOKUPS as usize + 2 {
        let answer = tokio::time::timeout(Duration::from_secs(30), answers.message())
            .await
            .expect("the stream answers")
            .unwrap()
            .expect("the stream is still open");
        assert!(
            by_id.insert(answer.id, answer.response).is_none(),
            "id {} answered twice",
            answer.id
        );
    }
    let sender = writer.await.unwrap();
    let request_bytes: usize = (1..=LOOKUPS)
        .map(|id| prost::Message::encoded_len(&lookup(id, request(id, applied))))
        .sum();
    assert!(request_bytes > BUDGET, "{request_bytes} bytes");

    for id in 1..=LOOKUPS {
        match by_id.get(&id).unwrap() {
            Some(Answered::RouteOutbound(answer)) => {
                let carriers: Vec<&str> =
                    answer.legs.iter().map(|leg| leg.carrier.as_str()).collect();
                assert_eq!(carriers, ["alpha", "beta"], "answer to {id}");
                assert_eq!(answer.route_token.is_empty(), id > REAL_CALLS);
            }
            other => panic!("answer to {id}: {other:?}"),
        }
    }
    match by_id.get(&100_001).unwrap() {
        Some(Answered::Error(error)) => {
            assert_eq!(error.code, Code::NotFound as u32, "{error:?}");
            assert_eq!(error.refusal, "unknown-tenant");
            assert_eq!(error.sip_code, 403);
        }
        other => panic!("unknown tenant: {other:?}"),
    }
    match by_id.get(&100_002).unwrap() {
        Some(Answered::Error(error)) => {
            assert_eq!(error.code, Code::InvalidArgument as u32, "{error:?}");
            assert_eq!(error.field, "request");
        }
        other => panic!("nothing asked: {other:?}"),
    }

    // The same lookup unary and on the stream: the same legs.
    let unary = support::routing::route_outbound(&client, request(1, applied))
        .await
        .unwrap();
    let Some(Answered::RouteOutbound(streamed)) = by_id.get(&1).unwrap() else {
        unreachable!("checked above")
    };
    assert_eq!(unary.legs, streamed.legs);
    // The read state names the leader the node came to know after it started.
    let read = streamed.read_state.as_ref().unwrap();
    assert_eq!((read.node_id, read.leader_id), (1, 1));
    assert!(read.applied_index >= applied);

    // The stream goes on after refusals: alpha fails with 503, the report answers beta.
    sender
        .send(proto::RouteStreamRequest {
            id: 100_003,
            request: Some(Asked::ReportLeg(proto::ReportLegRequest {
                call_id: request(1, applied).call_id,
                route_token: streamed.route_token.clone(),
                carrier: "alpha".into(),
                gateway: "alpha-1".into(),
                sip_code: 503,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
    let answer = answers.message().await.unwrap().unwrap();
    assert_eq!(answer.id, 100_003);
    match answer.response {
        Some(Answered::ReportLeg(report)) => match report.outcome {
            Some(proto::report_leg_response::Outcome::Next(leg)) => {
                assert_eq!(leg.carrier, "beta")
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }

    // The client closes its side: the node answers what it has and ends the stream cleanly.
    drop(sender);
    let end = tokio::time::timeout(Duration::from_secs(10), answers.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");
}

/// A request that waits (here a read at an index the node won't reach) goes on in its own
/// task: the lookups sent after it on the same stream are answered first, and it is answered
/// once its wait ends. (Most lookups are answered by the task reading the stream.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_waits_holds_up_none_sent_after_it() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (node, client) = started(root.path(), &[]).await;
    let applied = alpha_and_beta(&client).await;
    let (sender, mut answers) = open(&node).await.unwrap();

    let mut waiting = outbound(
        "acme",
        "waits@10.0.0.1",
        "+442071234567",
        applied + 1_000_000,
    );
    waiting.dry_run = true;
    sender.send(lookup(1, waiting)).await.unwrap();
    for id in 2..=6 {
        let mut request = outbound("acme", &format!("{id}@10.0.0.1"), "+442071234567", 0);
        request.dry_run = true;
        sender.send(lookup(id, request)).await.unwrap();
    }
    let mut order = Vec::new();
    for _ in 1..=6 {
        let answer = tokio::time::timeout(Duration::from_secs(30), answers.message())
            .await
            .expect("the stream answers")
            .unwrap()
            .expect("the stream is still open");
        match (answer.id, &answer.response) {
            (1, Some(Answered::Error(error))) => {
                assert_eq!(error.code, Code::DeadlineExceeded as u32, "{error:?}")
            }
            (1, other) => panic!("the waiting read: {other:?}"),
            (_, Some(Answered::RouteOutbound(answer))) => assert_eq!(answer.legs.len(), 2),
            (id, other) => panic!("answer to {id}: {other:?}"),
        }
        order.push(answer.id);
    }
    assert_eq!(order, [2, 3, 4, 5, 6, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_route_streams_are_counted_and_a_closed_one_gives_its_slot_back() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (node, _client) = started(root.path(), &["--max-route-streams", "1"]).await;

    let (first, mut first_answers) = open(&node).await.unwrap();
    let Err(refused) = open(&node).await else {
        panic!("a second stream is opened past the limit");
    };
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("streams.max_route_streams"),
        "{}",
        refused.message()
    );

    drop(first);
    let end = tokio::time::timeout(Duration::from_secs(10), first_answers.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");
    // The slot is given back as the stream's reader ends, just after the answers end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match open(&node).await {
            Ok(_) => break,
            Err(status) if tokio::time::Instant::now() < deadline => {
                assert_eq!(status.code(), Code::ResourceExhausted);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("the slot was never given back: {status}"),
        }
    }
}
