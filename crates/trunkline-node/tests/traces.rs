//! Traces against a real node process exporting to a small OTLP collector in this test (an
//! in-process tonic `TraceService`): a lookup and a write sent with a W3C `traceparent`
//! continue the caller's trace, each RPC's span names its tenant and call, and the routing
//! decision and the write's trip through Raft are its children.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    trace_service_server::{TraceService, TraceServiceServer},
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use support::{routing::alpha_and_beta, *};
use trunkline_client::{proto, Retry};

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    services: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource_spans in request.into_inner().resource_spans {
            if let Some(resource) = &resource_spans.resource {
                for attribute in &resource.attributes {
                    if attribute.key == "service.name" {
                        if let Some(Value::StringValue(name)) = attribute
                            .value
                            .as_ref()
                            .and_then(|value| value.value.clone())
                        {
                            self.services.lock().unwrap().push(name);
                        }
                    }
                }
            }
            for scope in resource_spans.scope_spans {
                self.spans.lock().unwrap().extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref()?.value.clone())
        .map(|value| match value {
            Value::StringValue(text) => text,
            other => format!("{other:?}"),
        })
}

impl Collector {
    /// Waits for a span named `name` in trace `trace_id` (hex).
    async fn span(&self, name: &str, trace_id: &str) -> Span {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(span) = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .find(|span| span.name == name && hex(&span.trace_id) == trace_id)
            {
                return span.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no span {name} in trace {trace_id}; got {:?}",
                self.spans
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|span| (span.name.clone(), hex(&span.trace_id)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A collector listening on a free port: it, its endpoint URL, and its server task.
async fn collector() -> (
    Collector,
    String,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
) {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // Spans leave the nodes' batches a tenth of a second after they end.
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    (collector, endpoint, server)
}

const LOOKUP_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const WRITE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const STREAM_TRACE: &str = "5b8efff798038103d269b633813fc60c";
const FORWARD_TRACE: &str = "6e0c63257de34c926f9efcd03899ddd1";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace_id: &str) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
    format!("00-{trace_id}-{CALLER_SPAN}-01").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn rpcs_continue_the_callers_trace_with_their_steps_as_children() {
    let (collector, endpoint, server) = collector().await;
    let root = tempfile::tempdir().unwrap();
    let (node, client) = started(root.path(), &["--insecure", "--otlp-endpoint", &endpoint]).await;
    let index = alpha_and_beta(&client).await;

    let lookup = proto::RouteOutboundRequest {
        tenant: "acme".into(),
        call_id: "traced-call".into(),
        to: "+442071838750".into(),
        min_applied_index: index,
        ..Default::default()
    };
    let routed = client
        .route(Retry::NotSent, |mut route| {
            let mut request = tonic::Request::new(lookup.clone());
            request
                .metadata_mut()
                .insert("traceparent", traceparent(LOOKUP_TRACE));
            async move { route.route_outbound(request).await }
        })
        .await
        .unwrap();
    assert!(!routed.legs.is_empty());
    let write = proto::SetSettingRequest {
        key: "traced/key".into(),
        value: "v".into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let mut request = tonic::Request::new(write.clone());
            request
                .metadata_mut()
                .insert("traceparent", traceparent(WRITE_TRACE));
            async move { admin.set_setting(request).await }
        })
        .await
        .unwrap();

    // The lookup: the caller's trace, the caller's span as parent, tenant and call named.
    let rpc = collector
        .span("trunkline.v1.RouteService/RouteOutbound", LOOKUP_TRACE)
        .await;
    assert_eq!(hex(&rpc.parent_span_id), CALLER_SPAN);
    assert_eq!(attribute(&rpc, "tenant").as_deref(), Some("acme"));
    assert_eq!(attribute(&rpc, "call_id").as_deref(), Some("traced-call"));
    let decision = collector.span("route_decision", LOOKUP_TRACE).await;
    assert_eq!(decision.parent_span_id, rpc.span_id);

    // The write: its RPC's span, the write through Raft beneath it, the proposal beneath that.
    let rpc = collector
        .span("trunkline.v1.AdminService/SetSetting", WRITE_TRACE)
        .await;
    assert_eq!(hex(&rpc.parent_span_id), CALLER_SPAN);
    let write = collector.span("raft_write", WRITE_TRACE).await;
    assert_eq!(write.parent_span_id, rpc.span_id);
    let proposal = collector.span("raft_propose", WRITE_TRACE).await;
    let group = collector.span("group_commit", WRITE_TRACE).await;
    assert_eq!(group.parent_span_id, write.span_id);
    assert_eq!(proposal.parent_span_id, group.span_id);

    // A RouteStream: each request a span of its own beneath the stream's, naming its call.
    let mut route =
        trunkline_api::v1::route_service_client::RouteServiceClient::new(node.channel().await);
    let mut streamed = tonic::Request::new(tokio_stream::iter(vec![proto::RouteStreamRequest {
        id: 7,
        request: Some(proto::route_stream_request::Request::RouteOutbound(
            proto::RouteOutboundRequest {
                call_id: "streamed-call".into(),
                ..lookup.clone()
            },
        )),
    }]));
    streamed
        .metadata_mut()
        .insert("traceparent", traceparent(STREAM_TRACE));
    let mut answers = route.route_stream(streamed).await.unwrap().into_inner();
    assert!(answers.message().await.unwrap().is_some());
    let stream = collector
        .span("trunkline.v1.RouteService/RouteStream", STREAM_TRACE)
        .await;
    let request = collector.span("stream_request", STREAM_TRACE).await;
    assert_eq!(request.parent_span_id, stream.span_id);
    assert_eq!(
        attribute(&request, "call_id").as_deref(),
        Some("streamed-call")
    );
    assert_eq!(attribute(&request, "tenant").as_deref(), Some("acme"));
    let decision = collector.span("route_decision", STREAM_TRACE).await;
    assert_eq!(decision.parent_span_id, request.span_id);

    assert!(collector
        .services
        .lock()
        .unwrap()
        .iter()
        .all(|name| name == "trunkline"));
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_log_format_json_every_log_line_is_a_json_object() {
    let root = tempfile::tempdir().unwrap();
    let (node, _client) = started(root.path(), &["--insecure", "--log-format", "json"]).await;
    let log = node.log();
    let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the node logged nothing");
    for line in lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(object["timestamp"].is_string(), "{line}");
        assert!(object["level"].is_string(), "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
    // The unauthenticated-mode warning every --no-auth node logs, as an object.
    assert!(log.contains("\"level\":\"WARN\""), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_forwarded_to_the_leader_continues_the_callers_trace_there() {
    let _serial = serial();
    let (collector, endpoint, server) = collector().await;
    let mut extra = vec!["--insecure", "--otlp-endpoint", endpoint.as_str()];
    extra.extend(FAST_RAFT);
    let cluster = TestCluster::start(2, &extra).await;
    let leader = cluster.leader().await;
    let follower = if leader == 1 { 2 } else { 1 };
    let write = proto::SetSettingRequest {
        key: "forwarded/key".into(),
        value: "v".into(),
    };
    cluster
        .get(follower)
        .client()
        .admin(Retry::NotSent, |mut admin| {
            let mut request = tonic::Request::new(write.clone());
            request
                .metadata_mut()
                .insert("traceparent", traceparent(FORWARD_TRACE));
            async move { admin.set_setting(request).await }
        })
        .await
        .unwrap();
    // On the follower: the RPC, its write, the batch, the forwarding; on the leader: the
    // forwarded request beneath the forwarding, and the proposal beneath that.
    let forward = collector.span("forward_to_leader", FORWARD_TRACE).await;
    let forwarded = collector.span("forwarded", FORWARD_TRACE).await;
    assert_eq!(forwarded.parent_span_id, forward.span_id);
    let proposal = collector.span("raft_propose", FORWARD_TRACE).await;
    assert_eq!(proposal.parent_span_id, forwarded.span_id);
    server.abort();
}
