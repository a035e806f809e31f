//! The accept loop both listeners use, and the connections it hands to tonic.
//!
//! tonic's own incoming stream accepts without limit, keeps idle connections forever and,
//! when `accept` fails with EMFILE, retries at once: a spinning core that logs nothing. Here
//! instead:
//!
//! - **a cap on open connections**: a semaphore permit is held by each [`Connection`] for its
//!   life. At the cap a new connection is accepted and closed at once (and a rate-limited
//!   warning logged) rather than left in the kernel's backlog: the client learns at once that
//!   this node is full and a failover client tries another, the backlog never fills with
//!   connections nobody will serve for minutes, and the idle timer below frees slots;
//! - **an idle timeout**: a connection that carries no request for the idle timeout is
//!   closed. Requests are counted by [`ConnectionActivityLayer`], which finds the
//!   connection's [`ConnectionActivity`] in the request's extensions (tonic puts the
//!   [`Connected::ConnectInfo`] there). Bytes do not count, so HTTP/2 pings cannot keep an
//!   idle connection open, and a connection that never sends a request is closed too;
//! - **back-off when `accept` fails for want of a resource** (file descriptors, buffers,
//!   memory): 100 ms doubling to 1 s, with a rate-limited warning;
//! - `TCP_NODELAY` on every connection (tonic's `tcp_nodelay` applies only to listeners it
//!   binds itself); without it every small answer waits for the client's delayed ACK;
//! - **TLS** (unless the node runs `--insecure`): the handshake runs in a task of its own,
//!   holding the connection's slot, bounded by [`limits::TLS_HANDSHAKE_TIMEOUT`] (or the idle
//!   timeout if shorter), with the
//!   configuration current when the connection arrived (so a reload applies at once). What
//!   the client's certificate proves goes in [`ConnectionInfo`].

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    codegen::{http, Body as HttpBody, Service},
    transport::server::{Connected, TcpConnectInfo},
};

use trunkline_core::audit::Actor;

use crate::{
    auth::PendingAudit,
    limits,
    tls::{NodeTls, Side},
};

/// What the accept loop of one listener enforces.
#[derive(Debug, Clone)]
pub struct ListenerLimits {
    /// The listener's name in log lines (`api` or `peer`).
    pub name: &'static str,
    /// The configuration key of `max_connections`, named in the warning at the cap.
    pub max_connections_key: &'static str,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// `None`: plaintext (`--insecure`, loopback only).
    pub tls: Option<(Arc<NodeTls>, Side)>,
    /// Where a handshake refused for its client certificate is recorded (the audit log).
    pub refusals: Arc<PendingAudit>,
}

/// Accepts connections on `listener` under `limits` until the returned stream is dropped
/// (tonic drops it when it stops accepting at shutdown); the listening socket closes then.
pub fn accept(
    listener: TcpListener,
    limits: ListenerLimits,
) -> ReceiverStream<io::Result<Connection>> {
    // One connection handed over at a time: accepting runs ahead of tonic by at most one.
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(accept_loop(listener, limits, sender));
    ReceiverStream::new(receiver)
}

async fn accept_loop(
    listener: TcpListener,
    limits: ListenerLimits,
    sender: mpsc::Sender<io::Result<Connection>>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff: Option<Duration> = None;
    let mut refused = RateLimitedWarning::default();
    let mut failed = RateLimitedWarning::default();
    loop {
        let accepted = tokio::select! {
            _ = sender.closed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote_addr)) => {
                backoff = None;
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    // Dropping the stream closes it: the client sees the connection end.
                    drop(stream);
                    if let Some(suppressed) = refused.due() {
                        tracing::warn!(
                            listener = limits.name,
                            max_connections = limits.max_connections,
                            %remote_addr,
                            refused_since_last_warning = suppressed,
                            "refusing connections: the listener is at {} ({}); raise it or \
                             find who holds the connections",
                            limits.max_connections_key,
                            limits.max_connections,
                        );
                    }
                    continue;
                };
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "can't set TCP_NODELAY");
                }
                match &limits.tls {
                    None => {
                        let connection = Connection::new(
                            Stream::Plain(stream),
                            None,
                            permit,
                            limits.idle_timeout,
                        );
                        if sender.send(Ok(connection)).await.is_err() {
                            return;
                        }
                    }
                    Some((tls, side)) => {
                        tokio::spawn(handshake(
                            stream,
                            (tls.clone(), *side),
                            permit,
                            limits.idle_timeout,
                            limits.refusals.clone(),
                            sender.clone(),
                        ));
                    }
                }
            }
            // The connection died between SYN and accept: nothing wrong with the listener.
            Err(error) if is_connection_error(&error) => {
                tracing::debug!(listener = limits.name, %error, "a connection failed before it was accepted");
            }
            Err(error) => {
                // Out of file descriptors, socket buffers or memory (EMFILE, ENFILE, ENOBUFS,
                // ENOMEM) or something unexpected: retrying at once would spin. Pause, so the
                // connections being served can finish and free what is missing.
                let delay = backoff.map_or(limits::ACCEPT_BACKOFF_MIN, |delay| {
                    (delay * 2).min(limits::ACCEPT_BACKOFF_MAX)
                });
                backoff = Some(delay);
                if let Some(suppressed) = failed.due() {
                    tracing::warn!(
                        listener = limits.name,
                        %error,
                        retry_in = ?delay,
                        failures_since_last_warning = suppressed,
                        "can't accept connections (out of file descriptors? check LimitNOFILE \
                         and max_connections); pausing the listener"
                    );
                }
                tokio::select! {
                    _ = sender.closed() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Completes the TLS handshake of an accepted connection and hands it to tonic; a client
/// that fails it or stalls is dropped (with its slot) and logged at debug level only, since
/// scanners and health checkers do it all day.
async fn handshake(
    stream: TcpStream,
    (tls, side): (Arc<NodeTls>, Side),
    slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    refusals: Arc<PendingAudit>,
    sender: mpsc::Sender<io::Result<Connection>>,
) {
    let remote_addr = stream.peer_addr().ok();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config(side));
    // A connection that sends nothing is idle: it waits no longer than an idle one would.
    let timeout = limits::TLS_HANDSHAKE_TIMEOUT.min(idle_timeout);
    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(?remote_addr, ?side, %error, "TLS handshake failed");
            if let Some(reason) = crate::tls::certificate_refusal(&error) {
                let actor = Actor {
                    name: "-".into(),
                    source: remote_addr.map_or_else(|| "-".into(), |addr| addr.ip().to_string()),
                    rpc: format!("TLS handshake ({} listener)", side.name()),
                };
                refusals.push(actor, &reason, false);
            }
            return;
        }
        Err(_) => {
            tracing::debug!(?remote_addr, ?side, "TLS handshake timed out");
            return;
        }
    };
    // The verifier accepted the chain; what it names is read once here.
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|certificate| PeerCertificate {
            node: tls.node_of(certificate),
            token: trunkline_core::auth::tokens::certificate_token(certificate),
            certificate: certificate.clone().into_owned(),
        });
    let connection = Connection::new(
        Stream::Tls(Box::new(stream)),
        peer.map(Arc::new),
        slot,
        idle_timeout,
    );
    let _ = sender.send(Ok(connection)).await;
}

/// Errors of one connection, not of the listener; the next `accept` can succeed at once.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Logs at most once per [`limits::LISTENER_WARNING_INTERVAL`] and counts what it skipped.
#[derive(Default)]
struct RateLimitedWarning {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedWarning {
    /// `Some(skipped since the last warning)` when a warning is due now.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < limits::LISTENER_WARNING_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// What the requests of one connection tell its idle timer.
#[derive(Debug)]
pub struct ConnectionActivity {
    in_flight: AtomicUsize,
    /// When the last request started or ended (or the connection was accepted).
    last_active: Mutex<Instant>,
}

impl ConnectionActivity {
    fn new() -> Self {
        ConnectionActivity {
            in_flight: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        // A poisoned lock still holds a valid Instant: nothing can be half written.
        *self
            .last_active
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn last_active(&self) -> Instant {
        *self
            .last_active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn start_request(self: &Arc<Self>) -> RequestInFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        RequestInFlight {
            activity: self.clone(),
        }
    }
}

/// A request in flight on a connection; dropping it ends the request for the idle timer.
#[derive(Debug)]
pub struct RequestInFlight {
    activity: Arc<ConnectionActivity>,
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.activity.touch();
        self.activity.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The certificate a client showed in the TLS handshake, verified against the cluster CA.
#[derive(Debug)]
pub struct PeerCertificate {
    /// The node of this cluster it names, if any (`node-<id>.<cluster>.trunkline`).
    pub node: Option<u64>,
    /// The id and hash of the token bound to it, if one is (`CreateToken` with a
    /// certificate).
    pub token: (String, trunkline_core::auth::tokens::SecretHash),
    pub certificate: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
}

/// What tonic puts in every request's extensions for a [`Connection`].
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    pub activity: Arc<ConnectionActivity>,
    /// `None`: no client certificate (or a plaintext listener).
    pub peer: Option<Arc<PeerCertificate>>,
}

/// The byte stream of a connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(stream) => stream,
            Stream::Tls(stream) => stream.get_ref().0,
        }
    }
}

/// Delegates an `AsyncRead`/`AsyncWrite` method to whichever stream it is.
macro_rules! delegate {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            Stream::Plain($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            Stream::Tls($stream) => {
                let $stream = Pin::new($stream.as_mut());
                $call
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, stream => stream.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, stream => stream.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, stream => stream.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, stream => stream.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, stream => stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }
}

/// An accepted connection holding its slot under the listener's connection cap, closed
/// (reads end) once it has carried no request for the idle timeout.
pub struct Connection {
    stream: Stream,
    peer: Option<Arc<PeerCertificate>>,
    /// The connection's slot under `max_connections`, given back when hyper drops the
    /// connection.
    _slot: OwnedSemaphorePermit,
    activity: Arc<ConnectionActivity>,
    idle_timeout: Duration,
    /// Fires at the earliest moment the connection could be idle; checked (and re-armed) on
    /// every read that finds no data.
    idle_timer: Pin<Box<Sleep>>,
    /// Set once the idle timer closed the connection; reads keep ending.
    closed_idle: bool,
}

impl Connection {
    fn new(
        stream: Stream,
        peer: Option<Arc<PeerCertificate>>,
        slot: OwnedSemaphorePermit,
        idle_timeout: Duration,
    ) -> Self {
        Connection {
            stream,
            peer,
            _slot: slot,
            activity: Arc::new(ConnectionActivity::new()),
            idle_timeout,
            idle_timer: Box::pin(tokio::time::sleep(idle_timeout)),
            closed_idle: false,
        }
    }

    /// Whether the connection has carried no request for the idle timeout. When not, the
    /// timer is re-armed for the next moment it could be, and wakes the reader then.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.idle_timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let now = Instant::now();
            let deadline = if self.activity.in_flight.load(Ordering::SeqCst) > 0 {
                now + self.idle_timeout
            } else {
                self.activity.last_active() + self.idle_timeout
            };
            if deadline <= now {
                return true;
            }
            self.idle_timer.as_mut().reset(deadline);
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed_idle {
            return Poll::Ready(Ok(()));
        }
        // Bytes waiting are read first: a request arriving as the timer fires is served.
        if let Poll::Ready(read) = Pin::new(&mut this.stream).poll_read(cx, buf) {
            return Poll::Ready(read);
        }
        if this.poll_idle(cx) {
            tracing::debug!(idle_timeout = ?this.idle_timeout, "closing an idle connection");
            this.closed_idle = true;
            // The end of the stream: hyper closes the connection and drops it, which gives
            // back its slot and file descriptor.
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            tcp: self.stream.tcp().connect_info(),
            activity: self.activity.clone(),
            peer: self.peer.clone(),
        }
    }
}

/// Counts each request as in flight on its connection from the call until its response body
/// ends or is dropped, for the connection's idle timer. Also puts tonic's usual
/// [`TcpConnectInfo`] in the request, so `Request::remote_addr` keeps working.
#[derive(Debug, Clone, Default)]
pub struct ConnectionActivityLayer;

impl<S> tower::Layer<S> for ConnectionActivityLayer {
    type Service = ConnectionActivityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectionActivityService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ConnectionActivityService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, RequestBody> Service<http::Request<RequestBody>> for ConnectionActivityService<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<RequestBody>) -> Self::Future {
        let info = request.extensions().get::<ConnectionInfo>().cloned();
        let in_flight = info.map(|info| {
            request.extensions_mut().insert(info.tcp.clone());
            info.activity.start_request()
        });
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(match in_flight {
                Some(in_flight) => response.map(|body| {
                    tonic::body::Body::new(BodyInFlight {
                        body,
                        _in_flight: in_flight,
                    })
                }),
                None => response,
            })
        })
    }
}

/// A response body that keeps its request counted as in flight until it ends or is dropped.
struct BodyInFlight {
    body: tonic::body::Body,
    _in_flight: RequestInFlight,
}

impl HttpBody for BodyInFlight {
    type Data = tonic::codegen::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
