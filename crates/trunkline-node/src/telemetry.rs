//! Logs and traces: the `tracing` subscriber the daemon runs with — log lines as text or JSON
//! (`--log-format`) on standard error, and, when `--otlp-endpoint` is given, spans exported
//! over OTLP/gRPC with `tracing-opentelemetry`.
//!
//! Spans: one per client RPC (gRPC: [`TraceLayer`]; HTTP: `http_api`), named by its path,
//! carrying the tenant and call id when the call has them and continuing the caller's trace
//! from a W3C `traceparent` header; children for the routing decision, a write's trip
//! through Raft and its forwarding to the leader; roots for applying entries and for probe
//! rounds. With no endpoint nothing is made: [`rpc_span`] and [`span`] return
//! `Span::none()` after one relaxed atomic load, so the lookup path pays nothing for traces
//! that are off.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll},
};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tower::Service;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, Layer};

/// Whether spans are exported: set once, when the subscriber is installed with an endpoint.
static TRACING: AtomicBool = AtomicBool::new(false);

/// Spans are made only when they go somewhere.
pub fn enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line an event.
    #[default]
    Text,
    /// One JSON object a line (timestamp, level, target, fields, spans), for log shippers.
    Json,
}

/// Keeps the trace exporter running; flushes the spans still queued when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("trunkline: traces not all exported at exit: {error}");
            }
        }
    }
}

/// Who the spans come from, as the exported resource names it.
pub struct Origin<'a> {
    pub node_id: u64,
    pub cluster_name: &'a str,
}

/// Installs the process's subscriber: `filter` (an `EnvFilter` directive, `info` when it
/// does not parse) for the log lines, in `format`, and with `otlp_endpoint` an exporter of
/// spans. Must run inside the Tokio runtime when an endpoint is given (the exporter's batch
/// task runs on it).
pub fn init(
    filter: &str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    origin: &Origin<'_>,
) -> anyhow::Result<Telemetry> {
    let env_filter = || {
        tracing_subscriber::EnvFilter::try_new(filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(env_filter());
    let Some(endpoint) = otlp_endpoint else {
        tracing_subscriber::registry().with(logs).try_init()?;
        return Ok(Telemetry { provider: None });
    };
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("trunkline")
        .with_attributes([
            opentelemetry::KeyValue::new("trunkline.node_id", origin.node_id as i64),
            opentelemetry::KeyValue::new("trunkline.cluster", origin.cluster_name.to_owned()),
            opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("trunkline");
    // Only this program's spans: openraft's and the libraries' own stay out of the traces.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
            metadata.target().starts_with("trunkline")
        }));
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()?;
    TRACING.store(true, Ordering::Relaxed);
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// Reads W3C trace context from HTTP headers (gRPC metadata is HTTP/2 headers).
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span of one client RPC at `path` over `system` (`grpc`, `http`), continuing the trace
/// a `traceparent` header names; `Span::none()` when traces are off.
pub fn rpc_span(system: &'static str, path: &str, headers: &http::HeaderMap) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: "trunkline::rpc",
        "rpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = system,
        rpc.method = %path,
        tenant = tracing::field::Empty,
        call_id = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // A span without a remote parent starts its own trace.
    let _ = span.set_parent(parent);
    span
}

/// Writes the current span's trace context into an outgoing peer request's metadata (a
/// write forwarded to the leader), so the leader's work continues the caller's trace.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    if !enabled() {
        return;
    }
    struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);
    impl Injector for Metadata<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
                tonic::metadata::MetadataValue::try_from(value.as_str()),
            ) {
                self.0.insert(key, value);
            }
        }
    }
    let context = Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut Metadata(metadata));
}

/// The span of a request another node forwarded here, continuing the trace its metadata
/// carries; `Span::none()` when traces are off.
pub fn forwarded_span(metadata: &tonic::metadata::MetadataMap) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(target: "trunkline::rpc", "forwarded", otel.kind = "server");
    let headers = metadata.clone().into_headers();
    let _ = span.set_parent(TraceContextPropagator::new().extract(&Headers(&headers)));
    span
}

/// Names the tenant and call of the RPC being served (no effect when traces are off).
pub fn record_call(tenant: &str, call_id: &str) {
    if !enabled() {
        return;
    }
    let span = Span::current();
    if !tenant.is_empty() {
        span.record("tenant", tenant);
    }
    if !call_id.is_empty() {
        span.record("call_id", call_id);
    }
}

/// A span for one step of the work (`route_decision`, `raft_write`, `forward_to_leader`,
/// `apply`, `probe`), a child of the current span if there is one; `Span::none()` when
/// traces are off.
#[macro_export]
macro_rules! span {
    ($name:literal $(, $($field:tt)*)?) => {
        if $crate::telemetry::enabled() {
            tracing::info_span!(target: "trunkline::work", $name $(, $($field)*)?)
        } else {
            tracing::Span::none()
        }
    };
}

/// The layer that gives every client RPC its span ([`rpc_span`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Traced<S> {
    inner: S,
}

impl<S, Body> Service<http::Request<Body>> for Traced<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let span = rpc_span("grpc", request.uri().path(), request.headers());
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        future.instrument(span)
    }
}
