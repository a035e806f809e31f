//! A Rust client for Trunkline that fails over across nodes.
//!
//! Give it every node's client address. A call goes to the node that answered last; when
//! that node can't be reached it moves on to the next. Reads are retried on another node
//! after any UNAVAILABLE answer. Writes are retried only when the request certainly never
//! left this process (the connection could not be made) or the node says it was not applied
//! (it could not reach a leader), because any node forwards a write to the leader itself and
//! a retry after an unknown outcome could apply it twice. A node that can't reach the leader
//! names it when it knows it, and the client tries that endpoint next. While no node can take
//! a write (an election), the client tries again, with pauses, for up to its leader wait (5 s
//! unless set). A write sent with [`Retry::Write`] carries an idempotency key
//! (`trunkline-idempotency-key`), so it is also sent again when its outcome is unknown: the
//! cluster applies a key once and answers a repeat with the first answer.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::Channel,
    Code, Status,
};
pub use trunkline_api::v1 as proto;
use trunkline_api::v1::{
    admin_service_client::AdminServiceClient,
    metadata::{FIELD_HEADER, IDEMPOTENCY_HEADER, LEADER_HEADER, RETRY_HEADER, RETRY_NOT_APPLIED},
    route_service_client::RouteServiceClient,
};

/// How long to wait for a TCP connection to one node before trying the next.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How often an HTTP/2 ping checks that a connection's node is still there.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection counts as broken.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The deadline of one request when the caller sets none.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the TLS handshake with one node may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(2_000);
/// Largest answer accepted from a node.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Whether a request may be sent again to another node after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Reads: any UNAVAILABLE answer moves on to the next node.
    Idempotent,
    /// Writes: only a failure to connect, or a node saying it was not applied, moves on.
    NotSent,
    /// Writes whose every effect is decided by the request (not CreateToken, whose secret the
    /// node draws): sent with an idempotency key, and sent again on an unknown outcome too.
    Write,
}

/// How long a write waits, trying again, for a node that can take it (a leader elected).
pub const DEFAULT_LEADER_WAIT: Duration = Duration::from_secs(5);
/// The first pause between rounds over the nodes; it doubles up to [`MAX_ROUND_PAUSE`].
const FIRST_ROUND_PAUSE: Duration = Duration::from_millis(50);
const MAX_ROUND_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no endpoints given: pass --endpoints host:port[,host:port...]")]
    NoEndpoints,
    #[error("endpoint {endpoint:?} is not host:port")]
    BadEndpoint { endpoint: String },
    #[error("the token holds characters a header can't carry: give the token as printed")]
    BadToken,
    #[error("no node could be reached: {}", describe(.attempts))]
    Unreachable { attempts: Vec<(String, String)> },
    #[error("{} ({}): {}", .endpoint, code_name(.status.code()), .status.message())]
    Status { endpoint: String, status: Status },
}

fn describe(attempts: &[(String, String)]) -> String {
    attempts
        .iter()
        .map(|(endpoint, error)| format!("{endpoint}: {error}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The gRPC code in the form users see in docs, e.g. `FAILED_PRECONDITION`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl ClientError {
    /// The gRPC status a node answered with, if one did.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The request field an INVALID_ARGUMENT answer is about, and why, when the node named
    /// one (its `trunkline-field` header).
    pub fn invalid_field(&self) -> Option<(&str, &str)> {
        let status = self.status()?;
        if status.code() != Code::InvalidArgument {
            return None;
        }
        let field = header(status, FIELD_HEADER)?;
        let message = status.message();
        let reason = message
            .strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(message);
        Some((field, reason))
    }
}

/// `host:port` of an endpoint given as `host:port`, `http://host:port` or `https://host:port`.
fn endpoint_address(endpoint: &str) -> &str {
    endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
}

/// Adds `authorization: Bearer <token>` to every request when the client has a token, and
/// the call's idempotency key when it has one.
#[derive(Clone, Debug, Default)]
pub struct Bearer {
    token: Option<MetadataValue<Ascii>>,
    idempotency: Option<MetadataValue<Ascii>>,
}

impl Bearer {
    /// A token for the `authorization` header; `None` if it can't be a header value.
    pub fn new(token: &str) -> Option<Bearer> {
        MetadataValue::try_from(format!("Bearer {}", token.trim()))
            .ok()
            .map(|value| Bearer {
                token: Some(value),
                idempotency: None,
            })
    }

    fn keyed(&self, key: Option<&MetadataValue<Ascii>>) -> Bearer {
        Bearer {
            token: self.token.clone(),
            idempotency: key.cloned(),
        }
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(key) = &self.idempotency {
            request
                .metadata_mut()
                .insert(IDEMPOTENCY_HEADER, key.clone());
        }
        Ok(request)
    }
}

/// The channel a service client is made on: one node's connection, with the token.
pub type Transport = InterceptedService<Channel, Bearer>;

pub struct Client {
    endpoints: Vec<String>,
    bearer: Bearer,
    /// `None`: plaintext (a node run `--insecure` on loopback).
    tls: Option<Arc<trunkline_tls::rustls::ClientConfig>>,
    /// One connection per endpoint, made on first use and kept.
    channels: Mutex<Vec<Option<Channel>>>,
    /// One per endpoint, held while a connection to it is being made: calls that find no
    /// connection wait for that one instead of each opening (and handshaking) their own.
    /// Under each: when the last attempt failed and why, so calls that waited for it fail at
    /// once with its error rather than each trying (and waiting out a timeout) in turn.
    connecting: Vec<tokio::sync::Mutex<Option<(std::time::Instant, String)>>>,
    /// The endpoint that answered last; calls start there.
    preferred: AtomicUsize,
    request_timeout: Duration,
    /// How long a write waits for a node that can take it.
    leader_wait: Duration,
    /// This client's random id, the first half of its idempotency keys.
    id: u64,
    /// The number of the last keyed call.
    sequence: AtomicU64,
}

impl Client {
    pub fn new<I, S>(endpoints: I) -> Result<Client, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(Into::into)
            .map(|endpoint: String| endpoint.trim().to_owned())
            .filter(|endpoint| !endpoint.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        for endpoint in &endpoints {
            let address = endpoint_address(endpoint);
            if !trunkline_api::is_host_port(address) {
                return Err(ClientError::BadEndpoint {
                    endpoint: endpoint.clone(),
                });
            }
        }
        Ok(Client {
            bearer: Bearer::default(),
            tls: None,
            channels: Mutex::new(vec![None; endpoints.len()]),
            connecting: endpoints
                .iter()
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            endpoints,
            preferred: AtomicUsize::new(0),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            leader_wait: DEFAULT_LEADER_WAIT,
            id: random_id(),
            sequence: AtomicU64::new(0),
        })
    }

    /// Sends `token` with every call (`authorization: Bearer <token>`).
    pub fn with_token(mut self, token: &str) -> Result<Client, ClientError> {
        self.bearer = Bearer::new(token).ok_or(ClientError::BadToken)?;
        Ok(self)
    }

    /// Speaks TLS to every node with `config` (see `trunkline_tls::client_config_from_files`),
    /// expecting each node's certificate to be valid for the host its endpoint names.
    pub fn with_tls(mut self, config: Arc<trunkline_tls::rustls::ClientConfig>) -> Client {
        self.tls = Some(config);
        self
    }

    pub fn with_request_timeout(mut self, timeout: Duration) -> Client {
        self.request_timeout = timeout;
        self
    }

    /// How long a write tries again for a node that can take it; zero: one round only.
    pub fn with_leader_wait(mut self, wait: Duration) -> Client {
        self.leader_wait = wait;
        self
    }

    /// A client of one of the endpoints, with this one's token and timeout.
    pub fn only(&self, endpoint: &str) -> Result<Client, ClientError> {
        let mut client = Client::new([endpoint])?
            .with_request_timeout(self.request_timeout)
            .with_leader_wait(self.leader_wait);
        client.bearer = self.bearer.clone();
        client.tls = self.tls.clone();
        Ok(client)
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    fn cached(&self, index: usize) -> Option<Channel> {
        self.channels
            .lock()
            .ok()
            .and_then(|channels| channels.get(index).cloned().flatten())
    }

    async fn channel(&self, index: usize) -> Result<Channel, String> {
        if let Some(channel) = self.cached(index) {
            return Ok(channel);
        }
        // One connection attempt per endpoint at a time; whoever waited uses its result.
        let waited_from = std::time::Instant::now();
        let mut connecting = match self.connecting.get(index) {
            Some(connecting) => Some(connecting.lock().await),
            None => None,
        };
        if let Some(channel) = self.cached(index) {
            return Ok(channel);
        }
        if let Some(Some((failed_at, error))) = connecting.as_deref() {
            if *failed_at >= waited_from {
                return Err(error.clone());
            }
        }
        let connected = self.connect(index).await;
        if let (Err(error), Some(connecting)) = (&connected, connecting.as_deref_mut()) {
            *connecting = Some((std::time::Instant::now(), error.clone()));
        }
        connected
    }

    /// Opens a connection to endpoint `index` and keeps it for later calls.
    async fn connect(&self, index: usize) -> Result<Channel, String> {
        let address = endpoint_address(&self.endpoints[index % self.endpoints.len()]);
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|error| error.to_string())?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(self.request_timeout)
            .tcp_nodelay(true)
            // A node that vanished without a reset (a partition, a pulled cable) is noticed
            // within interval + timeout even on an idle connection or an open event stream.
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let connected = match &self.tls {
            None => endpoint.connect().await,
            Some(config) => {
                let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
                let connector = trunkline_tls::connect::Connector::fixed(
                    config.clone(),
                    host,
                    CONNECT_TIMEOUT,
                    TLS_HANDSHAKE_TIMEOUT,
                )
                .ok_or_else(|| format!("{host} is not a DNS name or IP address to verify"))?;
                endpoint.connect_with_connector(connector).await
            }
        };
        let channel = connected.map_err(|error| error_chain(&error))?;
        if let Ok(mut channels) = self.channels.lock() {
            if let Some(slot) = channels.get_mut(index) {
                *slot = Some(channel.clone());
            }
        }
        Ok(channel)
    }

    fn forget(&self, index: usize) {
        if let Ok(mut channels) = self.channels.lock() {
            if let Some(slot) = channels.get_mut(index) {
                *slot = None;
            }
        }
    }

    /// Calls a method of the service `make` builds on a channel, failing over as `retry`
    /// allows. The closure is called once per node tried.
    pub async fn call<S, T, F, Fut>(
        &self,
        retry: Retry,
        make: fn(Transport) -> S,
        mut method: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(S) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let count = self.endpoints.len();
        let key = (retry == Retry::Write)
            .then(|| {
                let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
                MetadataValue::try_from(format!("{:x}-{sequence}", self.id)).ok()
            })
            .flatten();
        let bearer = self.bearer.keyed(key.as_ref());
        let deadline = tokio::time::Instant::now() + self.leader_wait;
        let mut pause = FIRST_ROUND_PAUSE;
        let mut attempts = Vec::new();
        let mut order: VecDeque<usize> = VecDeque::new();
        let mut rounds = 0u32;
        loop {
            if order.is_empty() {
                if rounds > 0 {
                    // A whole round failed in a way that allows another: wait for a leader.
                    if retry == Retry::Idempotent || tokio::time::Instant::now() + pause > deadline
                    {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_ROUND_PAUSE);
                    attempts.clear();
                }
                rounds += 1;
                let start = self.preferred.load(Ordering::Relaxed);
                order = (0..count).map(|offset| (start + offset) % count).collect();
            }
            let Some(index) = order.pop_front() else {
                break;
            };
            let endpoint = &self.endpoints[index];
            let channel = match self.channel(index).await {
                Ok(channel) => channel,
                Err(error) => {
                    attempts.push((endpoint.clone(), error));
                    continue;
                }
            };
            match method(make(InterceptedService::new(channel, bearer.clone()))).await {
                Ok(response) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(response.into_inner());
                }
                Err(status) => {
                    let transport = is_transport_failure(&status);
                    if transport {
                        self.forget(index);
                    }
                    let not_applied = header(&status, RETRY_HEADER) == Some(RETRY_NOT_APPLIED);
                    let may_retry = match retry {
                        // A read may go anywhere again: a node that is down or cut off
                        // shows as UNAVAILABLE, or as UNKNOWN / CANCELLED when the
                        // connection broke with the request in flight.
                        Retry::Idempotent => {
                            transport
                                || matches!(
                                    status.code(),
                                    Code::Unavailable | Code::Unknown | Code::Cancelled
                                )
                        }
                        Retry::NotSent => not_applied || (transport && never_sent(&status)),
                        // Keyed: a repeat applies nothing twice, so an unknown outcome (a
                        // leadership change, a broken connection, a deadline) is retried too.
                        Retry::Write => {
                            not_applied
                                || transport
                                || matches!(
                                    status.code(),
                                    Code::Unavailable
                                        | Code::Unknown
                                        | Code::Cancelled
                                        | Code::DeadlineExceeded
                                )
                        }
                    };
                    let more = !order.is_empty()
                        || (retry != Retry::Idempotent
                            && tokio::time::Instant::now() + pause <= deadline);
                    if may_retry && more {
                        // Follow the node's leader hint when it names an endpoint we have.
                        if let Some(leader) = header(&status, LEADER_HEADER) {
                            if let Some(position) = order.iter().position(|candidate| {
                                same_address(&self.endpoints[*candidate], leader)
                            }) {
                                if let Some(hinted) = order.remove(position) {
                                    order.push_front(hinted);
                                }
                            }
                        }
                        attempts.push((endpoint.clone(), status.message().to_owned()));
                        continue;
                    }
                    return Err(ClientError::Status {
                        endpoint: endpoint.clone(),
                        status,
                    });
                }
            }
        }
        Err(ClientError::Unreachable { attempts })
    }

    /// Calls an `AdminService` method with failover.
    pub async fn admin<T, F, Fut>(&self, retry: Retry, method: F) -> Result<T, ClientError>
    where
        F: FnMut(AdminServiceClient<Transport>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call(retry, admin_client, method).await
    }

    /// Calls a `RouteService` method with failover.
    pub async fn route<T, F, Fut>(&self, retry: Retry, method: F) -> Result<T, ClientError>
    where
        F: FnMut(RouteServiceClient<Transport>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call(retry, route_client, method).await
    }
}

fn header<'a>(status: &'a Status, name: &str) -> Option<&'a str> {
    status
        .metadata()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

fn same_address(endpoint: &str, address: &str) -> bool {
    endpoint.strip_prefix("http://").unwrap_or(endpoint) == address
}

fn admin_client(channel: Transport) -> AdminServiceClient<Transport> {
    AdminServiceClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES)
}

fn route_client(channel: Transport) -> RouteServiceClient<Transport> {
    RouteServiceClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A status made by this process's transport (no node answered), not by a node.
fn is_transport_failure(status: &Status) -> bool {
    use std::error::Error;
    status
        .source()
        .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
}

/// A random 64-bit id for this client, from the standard library's randomly seeded hasher.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A transport failure that happened while connecting, so the request never reached a node.
fn never_sent(status: &Status) -> bool {
    use std::error::Error;
    status.source().is_some_and(|source| {
        let chain = error_chain(source).to_lowercase();
        chain.contains("tcp connect error") || chain.contains("connection refused")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_field_is_read_from_its_header_not_the_message() {
        let refused = |code, field: Option<&'static str>, message: &str| {
            let mut status = Status::new(code, message);
            if let Some(field) = field {
                let value = MetadataValue::from_static(field);
                status.metadata_mut().insert(FIELD_HEADER, value);
            }
            ClientError::Status {
                endpoint: "http://127.0.0.1:7400".into(),
                status,
            }
        };
        let error = refused(
            Code::InvalidArgument,
            Some("rules.allowed_hours"),
            "rules.allowed_hours: 25:00 is not a time",
        );
        assert_eq!(
            error.invalid_field(),
            Some(("rules.allowed_hours", "25:00 is not a time"))
        );
        // A message that only looks like `field: reason` names no field.
        let error = refused(Code::InvalidArgument, None, "rules: broken");
        assert_eq!(error.invalid_field(), None);
        let error = refused(Code::NotFound, Some("tenant"), "tenant: not found");
        assert_eq!(error.invalid_field(), None);
    }

    #[test]
    fn endpoints_are_validated_before_any_connection() {
        assert!(matches!(
            Client::new(Vec::<String>::new()),
            Err(ClientError::NoEndpoints)
        ));
        assert!(matches!(
            Client::new([" ", ""]),
            Err(ClientError::NoEndpoints)
        ));
        for bad in ["localhost", "host:", ":7400", "host:99999", "host:0"] {
            assert!(
                matches!(Client::new([bad]), Err(ClientError::BadEndpoint { .. })),
                "{bad} accepted"
            );
        }
        let client = Client::new(["127.0.0.1:7400", " node2:7400 ", "http://node3:7400"]).unwrap();
        assert_eq!(client.endpoints().len(), 3);
    }

    #[tokio::test]
    async fn every_endpoint_down_is_reported_with_each_reason() {
        // Ports bound and closed at once are very unlikely to be reused within the test.
        let mut addresses = Vec::new();
        for _ in 0..2 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            addresses.push(listener.local_addr().unwrap().to_string());
        }
        let client = Client::new(addresses.clone()).unwrap();
        let error = client
            .admin(Retry::Idempotent, |mut admin| async move {
                admin.cluster_status(proto::ClusterStatusRequest {}).await
            })
            .await
            .unwrap_err();
        let ClientError::Unreachable { attempts } = &error else {
            panic!("unexpected {error:?}");
        };
        assert_eq!(attempts.len(), 2);
        for address in &addresses {
            assert!(error.to_string().contains(address.as_str()), "{error}");
        }
    }
}
