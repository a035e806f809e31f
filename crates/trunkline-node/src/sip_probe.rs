//! The node's SIP OPTIONS prober: sends one probe to a gateway and reports how it ended as a
//! [`ProbeResult`] for the health model in `trunkline_core::health`.
//!
//! This is the I/O half of probing; the core's sans-IO codec (`trunkline_core::sip`) builds
//! the request, parses and frames replies, and decides whether a reply answers a probe.
//!
//! - **UDP** (the default): every probe leaves from one shared socket per node. A single
//!   receive task reads every datagram, finds the waiting probe by the top Via branch, checks
//!   the reply really answers it ([`matches()`]), skips provisional (1xx) replies and hands the
//!   final one over through a oneshot channel. A waiting probe is removed from the map when its
//!   reply arrives and when it gives up (timeout, or its future is dropped), so nothing leaks.
//! - **TCP** (`;transport=tcp`): one connection per probe, closed afterwards. Replies are framed
//!   with [`find_message_end`]; bytes that do not frame, or the peer closing before a final
//!   reply, end the probe with a transport error.
//! - **TLS** (`sips:` or `;transport=tls`): **not a SIP probe.** Trunkline has no TLS library,
//!   so a TLS gateway is probed by a TCP connect to its port only, and a successful connect is
//!   reported as `Reply { status_code: 200, .. }`. That proves the port accepts connections,
//!   nothing about the SIP service behind it. All of it is in `tls_connect_check`.
//!
//! The address in Via, From and Contact is the one the gateway can answer to: for UDP, the
//! source address the kernel picks for the gateway (never `0.0.0.0` or `::`, even when the
//! node binds the wildcard) with the shared socket's port; for TCP, the connection's local
//! address.
//!
//! A probe's timeout covers everything: name resolution, connecting, sending and the reply.
//! The health model, not this module, decides what a result means for the gateway.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tracing::debug;
use trunkline_core::health::probe::MAX_PROBE_INTERVAL_MS;
use trunkline_core::health::{ProbeResult, TransportErrorKind};
use trunkline_core::routing::{SipUri, Transport};
use trunkline_core::sip::{
    find_message_end, matches, parse_response, FrameBoundary, OptionsRequest, MAX_MESSAGE_BYTES,
};

/// Probes waiting for a UDP reply at once; a probe beyond it fails at once with
/// `TransportError { kind: Other }` instead of growing the map without bound.
pub const MAX_PENDING_PROBES: usize = 100_000;
/// Receive buffer for one datagram: the largest UDP payload.
pub const UDP_RECEIVE_BUFFER_BYTES: usize = 64 * 1024;
/// Gateway IP addresses whose source address is remembered; the cache starts over when full.
pub const MAX_SOURCE_ADDRESS_CACHE_ENTRIES: usize = 4096;
/// Longest probe timeout honoured: the longest probe interval the health model accepts.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_millis(MAX_PROBE_INTERVAL_MS);
/// The port of a `sip:` URI without one (RFC 3261 section 19.1.2).
pub const DEFAULT_SIP_PORT: u16 = 5060;
/// The port of a TLS URI without one.
pub const DEFAULT_SIPS_PORT: u16 = 5061;
/// Bytes read from a TCP connection at a time.
const TCP_READ_CHUNK_BYTES: usize = 4096;
/// Pause after a failed UDP receive, so a persistent socket error cannot spin a core.
const RECEIVE_ERROR_BACKOFF: Duration = Duration::from_millis(10);
/// CSeq numbers stay below 2^31 (RFC 3261 section 8.1.1.5).
const SEQUENCE_NUMBER_MASK: u32 = 0x7fff_ffff;

/// Sends SIP OPTIONS probes for one node. Share it with an [`Arc`]; dropping the last one stops
/// its receive task and closes the UDP socket.
pub struct SipProber {
    /// The one UDP socket every UDP probe leaves from and every UDP reply arrives on.
    socket: Arc<UdpSocket>,
    local_udp_addr: SocketAddr,
    /// UDP probes waiting for their final reply, by Via branch. Shared with the receive task;
    /// never locked across an await.
    pending: Arc<Mutex<HashMap<String, PendingProbe>>>,
    max_pending_probes: usize,
    /// The source IP the kernel picks for each gateway IP, when the socket binds the wildcard.
    source_ips: Mutex<HashMap<IpAddr, IpAddr>>,
    next_sequence_number: AtomicU32,
    receive_task: JoinHandle<()>,
}

/// A UDP probe waiting for its reply.
struct PendingProbe {
    /// The request as sent, to check a reply against with [`matches()`].
    request: OptionsRequest,
    reply: oneshot::Sender<FinalReply>,
}

/// What the receive task hands to a waiting probe.
struct FinalReply {
    status_code: u16,
    /// When the datagram was read, so the round trip does not include the probe's wake-up.
    received_at: Instant,
}

impl SipProber {
    /// Binds the shared UDP socket probes leave from (e.g. `0.0.0.0:0` or `0.0.0.0:5060`) and
    /// starts the receive task. Must be called inside a Tokio runtime.
    pub async fn bind(udp_addr: SocketAddr) -> io::Result<Arc<SipProber>> {
        SipProber::bind_with_limit(udp_addr, MAX_PENDING_PROBES).await
    }

    async fn bind_with_limit(
        udp_addr: SocketAddr,
        max_pending_probes: usize,
    ) -> io::Result<Arc<SipProber>> {
        let socket = Arc::new(UdpSocket::bind(udp_addr).await?);
        let local_udp_addr = socket.local_addr()?;
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let receive_task = tokio::spawn(receive_replies(Arc::clone(&socket), Arc::clone(&pending)));
        debug!(%local_udp_addr, "SIP prober bound");
        Ok(Arc::new(SipProber {
            socket,
            local_udp_addr,
            pending,
            max_pending_probes,
            source_ips: Mutex::new(HashMap::new()),
            next_sequence_number: AtomicU32::new(1),
            receive_task,
        }))
    }

    /// The address the shared UDP socket is bound to (possibly the wildcard).
    pub fn local_udp_addr(&self) -> SocketAddr {
        self.local_udp_addr
    }

    /// UDP probes currently waiting for a reply.
    pub fn pending_probe_count(&self) -> usize {
        lock(&self.pending).len()
    }

    /// One OPTIONS probe to `target`, waiting at most `timeout` in total (DNS, connect, reply;
    /// capped at [`MAX_PROBE_TIMEOUT`]).
    ///
    /// A name that does not resolve in time, or at all, is `Unreachable`; a TCP or TLS
    /// connection not established in time is `ConnectTimeout`; no final reply in time is
    /// `Timeout`.
    pub async fn probe(&self, target: &SipUri, timeout: Duration) -> ProbeResult {
        let deadline = Instant::now() + timeout.min(MAX_PROBE_TIMEOUT);
        let result = self.probe_until(target, deadline).await;
        debug!(%target, ?result, "SIP probe ended");
        result
    }

    async fn probe_until(&self, target: &SipUri, deadline: Instant) -> ProbeResult {
        let ipv4_required = match target.transport() {
            // UDP probes leave from the shared socket, so only its address family will do.
            Transport::Udp => Some(self.local_udp_addr.is_ipv4()),
            Transport::Tcp | Transport::Tls => None,
        };
        let destination = match resolve(target, ipv4_required, deadline).await {
            Ok(destination) => destination,
            Err(kind) => return ProbeResult::TransportError { kind },
        };
        match target.transport() {
            Transport::Udp => self.probe_udp(target, destination, deadline).await,
            Transport::Tcp => self.probe_tcp(target, destination, deadline).await,
            Transport::Tls => tls_connect_check(destination, deadline).await,
        }
    }

    async fn probe_udp(
        &self,
        target: &SipUri,
        destination: SocketAddr,
        deadline: Instant,
    ) -> ProbeResult {
        let source_ip = match self.source_ip(destination) {
            Ok(source_ip) => source_ip,
            Err(error) => {
                debug!(%destination, %error, "no route to the gateway");
                return transport_error(&error);
            }
        };
        let local_address = SocketAddr::new(source_ip, self.local_udp_addr.port());
        let request = OptionsRequest::new(
            target,
            local_address,
            self.sequence_number(),
            &mut rand::rng(),
        );
        let bytes = request.to_bytes();
        let (sender, receiver) = oneshot::channel();
        // Removes the entry however this future ends: reply, timeout, error or cancellation.
        let _registration = match self.register(request, sender) {
            Ok(registration) => registration,
            Err(kind) => return ProbeResult::TransportError { kind },
        };
        let sent_at = Instant::now();
        match timeout_at(deadline, self.socket.send_to(&bytes, destination)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                debug!(%destination, %error, "sending a UDP probe failed");
                return transport_error(&error);
            }
            Err(_) => return ProbeResult::Timeout,
        }
        match timeout_at(deadline, receiver).await {
            Ok(Ok(reply)) => ProbeResult::Reply {
                status_code: reply.status_code,
                round_trip_ms: milliseconds(reply.received_at.saturating_duration_since(sent_at)),
            },
            // The receive task dropped the sender without replying: it is gone.
            Ok(Err(_)) => ProbeResult::TransportError {
                kind: TransportErrorKind::Other,
            },
            Err(_) => ProbeResult::Timeout,
        }
    }

    async fn probe_tcp(
        &self,
        target: &SipUri,
        destination: SocketAddr,
        deadline: Instant,
    ) -> ProbeResult {
        let mut stream = match connect(destination, deadline).await {
            Ok(stream) => stream,
            Err(kind) => return ProbeResult::TransportError { kind },
        };
        let local_address = match stream.local_addr() {
            Ok(local_address) => local_address,
            Err(error) => return transport_error(&error),
        };
        let request = OptionsRequest::new(
            target,
            local_address,
            self.sequence_number(),
            &mut rand::rng(),
        );
        let sent_at = Instant::now();
        match timeout_at(deadline, stream.write_all(&request.to_bytes())).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                debug!(%destination, %error, "sending a TCP probe failed");
                return transport_error(&error);
            }
            Err(_) => return ProbeResult::Timeout,
        }
        match timeout_at(deadline, read_final_reply(&mut stream, &request)).await {
            Ok(Ok(status_code)) => ProbeResult::Reply {
                status_code,
                round_trip_ms: milliseconds(sent_at.elapsed()),
            },
            Ok(Err(kind)) => ProbeResult::TransportError { kind },
            Err(_) => ProbeResult::Timeout,
        }
    }

    /// The source IP for UDP datagrams to `destination`: the bound IP, or when the socket binds
    /// the wildcard, the one the kernel's routing picks.
    fn source_ip(&self, destination: SocketAddr) -> io::Result<IpAddr> {
        let bound_ip = self.local_udp_addr.ip();
        if !bound_ip.is_unspecified() {
            return Ok(bound_ip);
        }
        if let Some(source_ip) = lock(&self.source_ips).get(&destination.ip()) {
            return Ok(*source_ip);
        }
        // A connected UDP socket sends nothing: connect only asks the kernel for a route.
        let unspecified = match destination {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let throwaway = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))?;
        throwaway.connect(destination)?;
        let source_ip = throwaway.local_addr()?.ip();
        if source_ip.is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "the kernel picked no source address",
            ));
        }
        let mut source_ips = lock(&self.source_ips);
        if source_ips.len() >= MAX_SOURCE_ADDRESS_CACHE_ENTRIES {
            source_ips.clear();
        }
        source_ips.insert(destination.ip(), source_ip);
        Ok(source_ip)
    }

    /// Adds a waiting UDP probe, unless too many are waiting already.
    fn register(
        &self,
        request: OptionsRequest,
        reply: oneshot::Sender<FinalReply>,
    ) -> Result<Registration<'_>, TransportErrorKind> {
        let branch = request.branch().to_owned();
        let mut pending = lock(&self.pending);
        if pending.len() >= self.max_pending_probes {
            debug!(
                limit = self.max_pending_probes,
                "too many SIP probes waiting; refusing one"
            );
            return Err(TransportErrorKind::Other);
        }
        if pending.contains_key(&branch) {
            // 128 random bits make this practically impossible; never replace another probe.
            return Err(TransportErrorKind::Other);
        }
        pending.insert(branch.clone(), PendingProbe { request, reply });
        Ok(Registration {
            pending: &self.pending,
            branch,
        })
    }

    fn sequence_number(&self) -> u32 {
        self.next_sequence_number.fetch_add(1, Ordering::Relaxed) & SEQUENCE_NUMBER_MASK
    }
}

impl Drop for SipProber {
    fn drop(&mut self) {
        self.receive_task.abort();
    }
}

/// A waiting UDP probe's entry in the map, removed when this is dropped.
struct Registration<'a> {
    pending: &'a Mutex<HashMap<String, PendingProbe>>,
    branch: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.branch);
    }
}

/// **Not a SIP probe: a TCP connect check standing in for one.**
///
/// Trunkline has no TLS library, so it cannot speak SIP over TLS. A TLS gateway is probed by
/// opening a TCP connection to its port and closing it again. A successful connect is reported
/// as `Reply { status_code: 200, round_trip_ms: <connect time> }` although no SIP message was
/// exchanged: it proves only that something accepts connections on the port, not that the SIP
/// service, its certificate or its TLS handshake work. Failures are reported as for TCP
/// (`ConnectionRefused`, `ConnectTimeout`, `Unreachable`, ...). Whoever reads health of a TLS
/// gateway must know it is a connect check.
async fn tls_connect_check(destination: SocketAddr, deadline: Instant) -> ProbeResult {
    let started = Instant::now();
    match connect(destination, deadline).await {
        Ok(stream) => {
            let connect_time = started.elapsed();
            drop(stream);
            debug!(%destination, "TLS gateway accepted a TCP connection (connect check only)");
            ProbeResult::Reply {
                status_code: 200,
                round_trip_ms: milliseconds(connect_time),
            }
        }
        Err(kind) => ProbeResult::TransportError { kind },
    }
}

/// Reads every datagram on the shared socket and hands each final reply to its waiting probe.
async fn receive_replies(
    socket: Arc<UdpSocket>,
    pending: Arc<Mutex<HashMap<String, PendingProbe>>>,
) {
    let mut buffer = vec![0_u8; UDP_RECEIVE_BUFFER_BYTES];
    loop {
        let (length, from) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                debug!(%error, "SIP prober: UDP receive failed");
                tokio::time::sleep(RECEIVE_ERROR_BACKOFF).await;
                continue;
            }
        };
        let received_at = Instant::now();
        let Some(datagram) = buffer.get(..length) else {
            continue;
        };
        let response = match parse_response(datagram) {
            Ok(response) => response,
            Err(error) => {
                debug!(%from, %error, "SIP prober ignores a datagram that is not a response");
                continue;
            }
        };
        let Some(branch) = response.top_via_branch.as_deref() else {
            debug!(%from, "SIP prober ignores a response without a Via branch");
            continue;
        };
        let waiting = {
            let mut pending = lock(&pending);
            let answers = pending
                .get(branch)
                .is_some_and(|probe| matches(&probe.request, &response));
            if !answers {
                debug!(%from, branch, "SIP prober ignores a response that answers no probe");
                continue;
            }
            if !response.is_final() {
                debug!(%from, status_code = response.status_code, "provisional reply");
                continue;
            }
            pending.remove(branch)
        };
        if let Some(waiting) = waiting {
            // The probe may have given up since; then nobody wants the reply.
            let _ = waiting.reply.send(FinalReply {
                status_code: response.status_code,
                received_at,
            });
        }
    }
}

/// Reads from a probe's TCP connection until the final reply to `request`; other messages
/// (provisional replies, requests from the peer, replies to something else) are skipped.
async fn read_final_reply(
    stream: &mut TcpStream,
    request: &OptionsRequest,
) -> Result<u16, TransportErrorKind> {
    let mut buffer: Vec<u8> = Vec::with_capacity(TCP_READ_CHUNK_BYTES);
    let mut chunk = [0_u8; TCP_READ_CHUNK_BYTES];
    loop {
        loop {
            match find_message_end(&buffer) {
                Ok(FrameBoundary::Incomplete { discardable_bytes }) => {
                    buffer.drain(..discardable_bytes.min(buffer.len()));
                    break;
                }
                Ok(FrameBoundary::Complete {
                    message_start,
                    message_end,
                }) => {
                    let message = buffer.get(message_start..message_end).unwrap_or_default();
                    match parse_response(message) {
                        Ok(response) if matches(request, &response) && response.is_final() => {
                            return Ok(response.status_code);
                        }
                        Ok(response) => {
                            debug!(
                                status_code = response.status_code,
                                "TCP probe skips a provisional or unrelated response"
                            );
                        }
                        Err(error) => debug!(%error, "TCP probe skips a message"),
                    }
                    buffer.drain(..message_end.min(buffer.len()));
                }
                Err(error) => {
                    debug!(%error, "TCP probe: the stream does not frame as SIP");
                    return Err(TransportErrorKind::Other);
                }
            }
        }
        let room = MAX_MESSAGE_BYTES.saturating_sub(buffer.len());
        let window_bytes = room.min(TCP_READ_CHUNK_BYTES);
        if window_bytes == 0 {
            debug!("TCP probe: a message longer than the limit");
            return Err(TransportErrorKind::Other);
        }
        let Some(window) = chunk.get_mut(..window_bytes) else {
            return Err(TransportErrorKind::Other);
        };
        match stream.read(window).await {
            Ok(0) => {
                debug!("TCP probe: the gateway closed the connection before a final reply");
                return Err(TransportErrorKind::ConnectionReset);
            }
            Ok(length) => buffer.extend_from_slice(window.get(..length).unwrap_or_default()),
            Err(error) => {
                debug!(%error, "TCP probe: read failed");
                return Err(error_kind(&error));
            }
        }
    }
}

/// The gateway's socket address, its name resolved within the deadline. `ipv4_required`
/// keeps only IPv4 (`Some(true)`) or only IPv6 (`Some(false)`) addresses: UDP probes must
/// match the shared socket's family.
async fn resolve(
    target: &SipUri,
    ipv4_required: Option<bool>,
    deadline: Instant,
) -> Result<SocketAddr, TransportErrorKind> {
    let port = destination_port(target);
    let host = target.host();
    // IPv6 literals are bracketed in a SIP URI.
    let bare_host = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    let usable = |address: &SocketAddr| ipv4_required.is_none_or(|ipv4| address.is_ipv4() == ipv4);
    if let Ok(ip) = bare_host.parse::<IpAddr>() {
        let address = SocketAddr::new(ip, port);
        if !usable(&address) {
            debug!(%address, "the UDP socket's address family cannot reach the gateway");
            return Err(TransportErrorKind::Unreachable);
        }
        return Ok(address);
    }
    match timeout_at(deadline, tokio::net::lookup_host((bare_host, port))).await {
        Ok(Ok(mut addresses)) => addresses.find(usable).ok_or_else(|| {
            debug!(host, "the name has no usable address");
            TransportErrorKind::Unreachable
        }),
        Ok(Err(error)) => {
            debug!(host, %error, "the name does not resolve");
            Err(TransportErrorKind::Unreachable)
        }
        Err(_) => {
            debug!(host, "the name did not resolve within the probe timeout");
            Err(TransportErrorKind::Unreachable)
        }
    }
}

/// The port a probe goes to: the URI's, or the default for its transport.
fn destination_port(target: &SipUri) -> u16 {
    target.port().unwrap_or(match target.transport() {
        Transport::Udp | Transport::Tcp => DEFAULT_SIP_PORT,
        Transport::Tls => DEFAULT_SIPS_PORT,
    })
}

/// A TCP connection established before the deadline.
async fn connect(
    destination: SocketAddr,
    deadline: Instant,
) -> Result<TcpStream, TransportErrorKind> {
    match timeout_at(deadline, TcpStream::connect(destination)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => {
            debug!(%destination, %error, "TCP connect failed");
            Err(match error.kind() {
                io::ErrorKind::TimedOut => TransportErrorKind::ConnectTimeout,
                _ => error_kind(&error),
            })
        }
        Err(_) => Err(TransportErrorKind::ConnectTimeout),
    }
}

fn transport_error(error: &io::Error) -> ProbeResult {
    ProbeResult::TransportError {
        kind: error_kind(error),
    }
}

/// What an I/O error means for a gateway.
fn error_kind(error: &io::Error) -> TransportErrorKind {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => TransportErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected
        | io::ErrorKind::TimedOut => TransportErrorKind::ConnectionReset,
        io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::NetworkDown
        | io::ErrorKind::AddrNotAvailable => TransportErrorKind::Unreachable,
        _ => TransportErrorKind::Other,
    }
}

fn milliseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Locks a mutex, also after a panic elsewhere: a map entry is inserted or removed whole, so
/// the maps stay valid whatever the panicking thread was doing.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::str::FromStr;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::net::{TcpListener, UdpSocket};
    use tokio::task::JoinSet;
    use tokio::time::Instant;
    use trunkline_core::health::{ProbeResult, TransportErrorKind};
    use trunkline_core::routing::SipUri;
    use trunkline_core::sip::{build_response, parse_message, Message, Request};

    use super::{destination_port, SipProber};
    use crate::sip_responder::{Behaviour, SipResponder};

    /// The timeout of probes expected to time out: short, so the suite stays fast.
    const SHORT_TIMEOUT: Duration = Duration::from_millis(300);
    /// The timeout of probes expected to be answered: generous, for a loaded 2-core machine.
    const LONG_TIMEOUT: Duration = Duration::from_secs(5);
    /// How late a timed-out probe may return on a loaded machine.
    const TIMEOUT_SLACK: Duration = Duration::from_secs(2);

    fn uri(text: &str) -> SipUri {
        SipUri::from_str(text).unwrap()
    }

    fn reply(status_code: u16) -> ProbeResult {
        ProbeResult::Reply {
            status_code,
            round_trip_ms: 0,
        }
    }

    fn transport_error(kind: TransportErrorKind) -> ProbeResult {
        ProbeResult::TransportError { kind }
    }

    /// The result with the round trip zeroed, so replies compare by status code.
    fn without_round_trip(result: ProbeResult) -> ProbeResult {
        match result {
            ProbeResult::Reply { status_code, .. } => reply(status_code),
            other => other,
        }
    }

    async fn prober() -> Arc<SipProber> {
        SipProber::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
            .await
            .unwrap()
    }

    /// Probes `target` and checks the result; returns the time the probe took.
    async fn check(
        prober: &SipProber,
        target: &str,
        timeout: Duration,
        expected: ProbeResult,
    ) -> Duration {
        let started = Instant::now();
        let result = prober.probe(&uri(target), timeout).await;
        let elapsed = started.elapsed();
        assert_eq!(without_round_trip(result), expected, "probe to {target}");
        if expected == ProbeResult::Timeout {
            assert!(elapsed >= timeout, "timed out early: {elapsed:?}");
            assert!(
                elapsed < timeout + TIMEOUT_SLACK,
                "timed out late: {elapsed:?}"
            );
        }
        assert_eq!(prober.pending_probe_count(), 0, "a probe was left waiting");
        elapsed
    }

    /// A UDP socket a test answers from by hand, for replies the responder cannot send.
    async fn scripted_gateway() -> (UdpSocket, SipUri) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let target = uri(&format!("sip:{}", socket.local_addr().unwrap()));
        (socket, target)
    }

    async fn receive_request(socket: &UdpSocket) -> (Request, SocketAddr) {
        let mut buffer = vec![0_u8; 65_536];
        let (length, from) = socket.recv_from(&mut buffer).await.unwrap();
        match parse_message(&buffer[..length]).unwrap() {
            Message::Request(request) => (request, from),
            Message::Response(response) => panic!("expected a request, got {response:?}"),
        }
    }

    /// `request` with every value of header `name` passed through `change`.
    fn altered(request: &Request, name: &str, change: impl Fn(&str) -> String) -> Request {
        let mut request = request.clone();
        for header in &mut request.headers {
            if header.name == name {
                header.value = change(&header.value);
            }
        }
        request
    }

    #[tokio::test]
    async fn udp_gateway_answering_200_is_a_reply_with_its_round_trip() {
        let prober = prober().await;
        let responder = SipResponder::start_udp(Behaviour::Reply(200))
            .await
            .unwrap();
        check(&prober, &responder.uri(), LONG_TIMEOUT, reply(200)).await;
        let started = Instant::now();
        let result = prober.probe(&uri(&responder.uri()), LONG_TIMEOUT).await;
        let elapsed = started.elapsed();
        let ProbeResult::Reply {
            status_code: 200,
            round_trip_ms,
        } = result
        else {
            panic!("expected a 200 reply, got {result:?}");
        };
        assert!(u128::from(round_trip_ms) <= elapsed.as_millis());
        let received = responder.received();
        assert_eq!(received.len(), 2);
        assert_eq!(
            received[0].from,
            SocketAddr::from((Ipv4Addr::LOCALHOST, prober.local_udp_addr().port()))
        );
    }

    #[tokio::test]
    async fn udp_gateway_answering_503_is_a_503_reply() {
        let prober = prober().await;
        let responder = SipResponder::start_udp(Behaviour::Reply(503))
            .await
            .unwrap();
        check(&prober, &responder.uri(), LONG_TIMEOUT, reply(503)).await;
    }

    #[tokio::test]
    async fn silent_udp_gateway_times_out_and_leaves_nothing_pending() {
        let prober = prober().await;
        let responder = SipResponder::start_udp(Behaviour::Silent).await.unwrap();
        check(
            &prober,
            &responder.uri(),
            SHORT_TIMEOUT,
            ProbeResult::Timeout,
        )
        .await;
        check(
            &prober,
            &responder.uri(),
            SHORT_TIMEOUT,
            ProbeResult::Timeout,
        )
        .await;
        assert_eq!(
            responder.received().len(),
            2,
            "silent, but the OPTIONS arrived"
        );
    }

    #[tokio::test]
    async fn udp_port_with_nothing_listening_times_out() {
        let prober = prober().await;
        let closed = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let target = format!("sip:{}", closed.local_addr().unwrap());
        drop(closed);
        check(&prober, &target, SHORT_TIMEOUT, ProbeResult::Timeout).await;
    }

    #[tokio::test]
    async fn responder_behaviour_changes_while_it_runs() {
        let prober = prober().await;
        let responder = SipResponder::start_udp(Behaviour::Reply(200))
            .await
            .unwrap();
        check(&prober, &responder.uri(), LONG_TIMEOUT, reply(200)).await;
        responder.set(Behaviour::Silent);
        check(
            &prober,
            &responder.uri(),
            SHORT_TIMEOUT,
            ProbeResult::Timeout,
        )
        .await;
        responder.set(Behaviour::Reply(503));
        check(&prober, &responder.uri(), LONG_TIMEOUT, reply(503)).await;
        assert_eq!(responder.received().len(), 3);
    }

    #[tokio::test]
    async fn via_names_the_source_address_never_the_wildcard() {
        let prober = prober().await;
        let (gateway, target) = scripted_gateway().await;
        let answer = async {
            let (request, from) = receive_request(&gateway).await;
            let response = build_response(&request, 200, "OK", "tag");
            gateway.send_to(&response, from).await.unwrap();
            request
        };
        let (result, request) = tokio::join!(prober.probe(&target, LONG_TIMEOUT), answer);
        assert_eq!(without_round_trip(result), reply(200));
        let port = prober.local_udp_addr().port();
        let via: Vec<&str> = request.header_values("via").collect();
        assert_eq!(via.len(), 1);
        assert!(
            via[0].starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK")),
            "Via: {}",
            via[0]
        );
        for header in &request.headers {
            assert!(!header.value.contains("0.0.0.0"), "{header:?}");
        }
    }

    #[tokio::test]
    async fn provisional_reply_is_skipped_until_the_final_one() {
        let prober = prober().await;
        let (gateway, target) = scripted_gateway().await;
        let answer = async {
            let (request, from) = receive_request(&gateway).await;
            for status_code in [100, 180] {
                let provisional = build_response(&request, status_code, "Trying", "tag");
                gateway.send_to(&provisional, from).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let response = build_response(&request, 200, "OK", "tag");
            gateway.send_to(&response, from).await.unwrap();
        };
        let (result, ()) = tokio::join!(prober.probe(&target, LONG_TIMEOUT), answer);
        assert_eq!(without_round_trip(result), reply(200));
        assert_eq!(prober.pending_probe_count(), 0);
    }

    #[tokio::test]
    async fn provisional_reply_alone_is_a_timeout() {
        let prober = prober().await;
        let (gateway, target) = scripted_gateway().await;
        let answer = async {
            let (request, from) = receive_request(&gateway).await;
            let provisional = build_response(&request, 100, "Trying", "tag");
            gateway.send_to(&provisional, from).await.unwrap();
        };
        let started = Instant::now();
        let (result, ()) = tokio::join!(prober.probe(&target, SHORT_TIMEOUT), answer);
        assert_eq!(result, ProbeResult::Timeout);
        assert!(started.elapsed() >= SHORT_TIMEOUT);
        assert_eq!(prober.pending_probe_count(), 0);
    }

    #[tokio::test]
    async fn garbage_and_replies_to_other_probes_are_ignored() {
        let prober = prober().await;
        let (gateway, target) = scripted_gateway().await;
        let answer = async {
            let (request, from) = receive_request(&gateway).await;
            let wrong_branch = altered(&request, "via", |via| {
                via.replace("branch=z9hG4bK", "branch=z9hG4bKother")
            });
            let wrong_call_id = altered(&request, "call-id", |_| "someone-else@10.0.0.1".into());
            let wrong_sequence = altered(&request, "cseq", |_| "999999 OPTIONS".into());
            let datagrams = [
                b"\x00\xffnot SIP at all".to_vec(),
                b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
                build_response(&wrong_branch, 500, "Server Internal Error", "tag"),
                build_response(&wrong_call_id, 500, "Server Internal Error", "tag"),
                build_response(&wrong_sequence, 500, "Server Internal Error", "tag"),
                build_response(&request, 200, "OK", "tag"),
            ];
            for datagram in datagrams {
                gateway.send_to(&datagram, from).await.unwrap();
            }
        };
        let (result, ()) = tokio::join!(prober.probe(&target, LONG_TIMEOUT), answer);
        assert_eq!(without_round_trip(result), reply(200));
    }

    #[tokio::test]
    async fn late_reply_after_a_timeout_is_ignored() {
        let prober = prober().await;
        let (gateway, target) = scripted_gateway().await;
        let (result, (request, from)) = tokio::join!(
            prober.probe(&target, SHORT_TIMEOUT),
            receive_request(&gateway)
        );
        assert_eq!(result, ProbeResult::Timeout);
        let late = build_response(&request, 200, "OK", "tag");
        gateway.send_to(&late, from).await.unwrap();
        // The next probe gets its own reply, not the late one.
        let answer = async {
            let (request, from) = receive_request(&gateway).await;
            let response = build_response(&request, 503, "Service Unavailable", "tag");
            gateway.send_to(&response, from).await.unwrap();
        };
        let (result, ()) = tokio::join!(prober.probe(&target, LONG_TIMEOUT), answer);
        assert_eq!(without_round_trip(result), reply(503));
    }

    #[tokio::test]
    async fn concurrent_probes_each_get_their_own_reply() {
        let prober = prober().await;
        let healthy = SipResponder::start_udp(Behaviour::Reply(200))
            .await
            .unwrap();
        let failing = SipResponder::start_udp(Behaviour::Reply(503))
            .await
            .unwrap();
        let mut probes = JoinSet::new();
        for index in 0..40 {
            let prober = Arc::clone(&prober);
            let (target, status_code) = if index % 2 == 0 {
                (uri(&healthy.uri()), 200)
            } else {
                (uri(&failing.uri()), 503)
            };
            probes.spawn(async move { (prober.probe(&target, LONG_TIMEOUT).await, status_code) });
        }
        while let Some(outcome) = probes.join_next().await {
            let (result, status_code) = outcome.unwrap();
            assert_eq!(without_round_trip(result), reply(status_code));
        }
        assert_eq!(prober.pending_probe_count(), 0);
    }

    #[tokio::test]
    async fn probes_beyond_the_pending_limit_fail_at_once() {
        let prober = SipProber::bind_with_limit(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), 1)
            .await
            .unwrap();
        let responder = SipResponder::start_udp(Behaviour::Silent).await.unwrap();
        let target = uri(&responder.uri());
        let waiting = tokio::spawn({
            let prober = Arc::clone(&prober);
            let target = target.clone();
            async move { prober.probe(&target, LONG_TIMEOUT).await }
        });
        let started = Instant::now();
        while prober.pending_probe_count() == 0 {
            assert!(
                started.elapsed() < LONG_TIMEOUT,
                "the first probe never waited"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = prober.probe(&target, LONG_TIMEOUT).await;
        assert_eq!(refused, transport_error(TransportErrorKind::Other));
        assert!(started.elapsed() < LONG_TIMEOUT);
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        assert_eq!(
            prober.pending_probe_count(),
            0,
            "a cancelled probe was left waiting"
        );
    }

    #[tokio::test]
    async fn host_name_is_resolved() {
        let prober = prober().await;
        let responder = SipResponder::start_udp(Behaviour::Reply(200))
            .await
            .unwrap();
        let target = format!("sip:localhost:{}", responder.addr().port());
        check(&prober, &target, LONG_TIMEOUT, reply(200)).await;
    }

    #[tokio::test]
    async fn host_name_that_does_not_resolve_is_unreachable() {
        let prober = prober().await;
        let target = "sip:no-such-gateway.invalid";
        let result = prober.probe(&uri(target), SHORT_TIMEOUT).await;
        assert_eq!(result, transport_error(TransportErrorKind::Unreachable));
    }

    #[tokio::test]
    async fn ipv6_gateway_from_an_ipv4_socket_is_unreachable() {
        let prober = prober().await;
        let result = prober.probe(&uri("sip:[::1]:5060"), SHORT_TIMEOUT).await;
        assert_eq!(result, transport_error(TransportErrorKind::Unreachable));
    }

    #[test]
    fn port_defaults_to_5060_and_5061_for_tls() {
        for (target, expected) in [
            ("sip:gw.example.com", 5060),
            ("sip:gw.example.com;transport=tcp", 5060),
            ("sip:gw.example.com;transport=tls", 5061),
            ("sips:gw.example.com", 5061),
            ("sips:gw.example.com:5071", 5071),
            ("sip:192.0.2.1:5080", 5080),
        ] {
            assert_eq!(destination_port(&uri(target)), expected, "{target}");
        }
    }

    #[tokio::test]
    async fn tcp_gateway_answering_200_is_a_reply() {
        let prober = prober().await;
        let responder = SipResponder::start_tcp(Behaviour::Reply(200))
            .await
            .unwrap();
        assert!(responder.uri().ends_with(";transport=tcp"));
        check(&prober, &responder.uri(), LONG_TIMEOUT, reply(200)).await;
        responder.set(Behaviour::Reply(503));
        check(&prober, &responder.uri(), LONG_TIMEOUT, reply(503)).await;
        assert_eq!(responder.received().len(), 2);
    }

    #[tokio::test]
    async fn silent_tcp_gateway_times_out() {
        let prober = prober().await;
        let responder = SipResponder::start_tcp(Behaviour::Silent).await.unwrap();
        check(
            &prober,
            &responder.uri(),
            SHORT_TIMEOUT,
            ProbeResult::Timeout,
        )
        .await;
        assert_eq!(responder.received().len(), 1);
    }

    #[tokio::test]
    async fn tcp_connection_refused_is_a_transport_error() {
        let prober = prober().await;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let target = format!("sip:{addr};transport=tcp");
        let expected = transport_error(TransportErrorKind::ConnectionRefused);
        check(&prober, &target, LONG_TIMEOUT, expected).await;
    }

    #[tokio::test]
    async fn tcp_gateway_closing_before_a_reply_is_a_reset() {
        let prober = prober().await;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let target = uri(&format!(
            "sip:{};transport=tcp",
            listener.local_addr().unwrap()
        ));
        let close = async {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        };
        let (result, ()) = tokio::join!(prober.probe(&target, LONG_TIMEOUT), close);
        assert_eq!(result, transport_error(TransportErrorKind::ConnectionReset));
    }

    #[tokio::test]
    async fn tls_gateway_is_a_connect_check_only() {
        let prober = prober().await;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = format!("sips:{addr}");
        check(&prober, &target, LONG_TIMEOUT, reply(200)).await;
        drop(listener);
        let expected = transport_error(TransportErrorKind::ConnectionRefused);
        check(&prober, &target, LONG_TIMEOUT, expected).await;
    }
}
