//! A tiny SIP responder that stands in for a carrier gateway in tests.
//!
//! It answers every OPTIONS it receives with a fixed status code, or stays silent, and records
//! when and from where each OPTIONS arrived, so a test can check how often a node probes and
//! from which address. The behaviour can be changed while it runs ([`SipResponder::set`]), so a
//! test can take a "gateway" down and bring it back.
//!
//! It is real SIP on real sockets (127.0.0.1, port 0), built on the core codec: requests are
//! parsed with [`parse_message`], TCP streams framed with [`find_message_end`], and replies
//! built with [`build_response`]. Anything that is not an OPTIONS request is ignored.
//!
//! Deliberately absent: transactions, retransmissions, TLS. Dropping the responder (or
//! [`SipResponder::stop`]) aborts its tasks and closes its sockets.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::debug;
use trunkline_core::sip::{
    build_response, find_message_end, parse_message, FrameBoundary, Message, Request,
    MAX_MESSAGE_BYTES,
};

/// Receive buffer for one datagram: the largest UDP payload.
const UDP_RECEIVE_BUFFER_BYTES: usize = 64 * 1024;
/// Bytes read from a TCP connection at a time.
const TCP_READ_CHUNK_BYTES: usize = 4096;
/// TCP connections served at once; more are closed on accept.
const MAX_TCP_CONNECTIONS: usize = 64;
/// OPTIONS remembered by [`SipResponder::received`]; the oldest are forgotten beyond it.
pub const MAX_RECORDED_REQUESTS: usize = 100_000;
/// Pause after a failed receive or accept, so a persistent socket error cannot spin a core.
const SOCKET_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// What the responder does with each OPTIONS it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer with this status code (100 to 699).
    Reply(u16),
    /// Record the request and never answer, like a dead gateway behind a live network.
    Silent,
}

/// One OPTIONS request the responder received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub at: Instant,
    /// The datagram's source address, or the TCP connection's peer address.
    pub from: SocketAddr,
}

/// A SIP gateway stand-in on 127.0.0.1 (see the module docs).
pub struct SipResponder {
    addr: SocketAddr,
    /// Whether it listens on UDP or TCP, for [`SipResponder::uri`].
    tcp: bool,
    state: Arc<SharedState>,
    /// The receive loop (UDP) or the accept loop (TCP), which owns the connection tasks.
    task: JoinHandle<()>,
}

/// What the test and the responder's tasks share.
struct SharedState {
    behaviour: Mutex<Behaviour>,
    received: Mutex<VecDeque<Received>>,
}

impl SipResponder {
    /// Starts a UDP responder on 127.0.0.1 and a free port.
    pub async fn start_udp(behaviour: Behaviour) -> std::io::Result<SipResponder> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = socket.local_addr()?;
        let state = SharedState::new(behaviour);
        let task = tokio::spawn(serve_udp(socket, Arc::clone(&state)));
        Ok(SipResponder {
            addr,
            tcp: false,
            state,
            task,
        })
    }

    /// Starts a TCP responder on 127.0.0.1 and a free port.
    pub async fn start_tcp(behaviour: Behaviour) -> std::io::Result<SipResponder> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = SharedState::new(behaviour);
        let task = tokio::spawn(serve_tcp(listener, Arc::clone(&state)));
        Ok(SipResponder {
            addr,
            tcp: true,
            state,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway URI that reaches this responder: `sip:127.0.0.1:PORT`, with
    /// `;transport=tcp` for a TCP responder.
    pub fn uri(&self) -> String {
        let transport = if self.tcp { ";transport=tcp" } else { "" };
        format!("sip:{}{transport}", self.addr)
    }

    /// Changes what the responder does with the OPTIONS that arrive from now on.
    pub fn set(&self, behaviour: Behaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    /// Every OPTIONS received so far (the last [`MAX_RECORDED_REQUESTS`]), oldest first,
    /// answered or not.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).iter().copied().collect()
    }

    /// Stops the responder and closes its sockets; the same as dropping it.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for SipResponder {
    fn drop(&mut self) {
        // Aborting the TCP accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

impl SharedState {
    fn new(behaviour: Behaviour) -> Arc<SharedState> {
        Arc::new(SharedState {
            behaviour: Mutex::new(behaviour),
            received: Mutex::new(VecDeque::new()),
        })
    }

    /// Records `bytes` if they are an OPTIONS request and returns the reply to send, if any.
    fn handle(&self, bytes: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        let request = match parse_message(bytes) {
            Ok(Message::Request(request)) if request.method == "OPTIONS" => request,
            Ok(_) => {
                debug!(%from, "SIP responder ignores a message that is not OPTIONS");
                return None;
            }
            Err(error) => {
                debug!(%from, %error, "SIP responder ignores unparsable bytes");
                return None;
            }
        };
        {
            let mut received = lock(&self.received);
            if received.len() >= MAX_RECORDED_REQUESTS {
                received.pop_front();
            }
            received.push_back(Received {
                at: Instant::now(),
                from,
            });
        }
        let behaviour = *lock(&self.behaviour);
        match behaviour {
            Behaviour::Silent => None,
            Behaviour::Reply(status_code) => Some(reply(&request, status_code)),
        }
    }
}

fn reply(request: &Request, status_code: u16) -> Vec<u8> {
    let to_tag = format!("{:016x}", rand::rng().random::<u64>());
    build_response(request, status_code, reason_phrase(status_code), &to_tag)
}

/// Reason phrases of the codes tests use (RFC 3261 section 21).
const REASON_PHRASES: [(u16, &str); 10] = [
    (100, "Trying"),
    (180, "Ringing"),
    (200, "OK"),
    (403, "Forbidden"),
    (404, "Not Found"),
    (408, "Request Timeout"),
    (480, "Temporarily Unavailable"),
    (486, "Busy Here"),
    (500, "Server Internal Error"),
    (503, "Service Unavailable"),
];

/// The usual reason phrase for the codes tests use, one for the class for the rest.
fn reason_phrase(status_code: u16) -> &'static str {
    let known = REASON_PHRASES
        .iter()
        .find(|(code, _)| *code == status_code)
        .map(|(_, phrase)| *phrase);
    known.unwrap_or(match status_code / 100 {
        1 => "Provisional",
        2 => "Success",
        3 => "Redirection",
        4 => "Client Error",
        5 => "Server Error",
        _ => "Global Failure",
    })
}

async fn serve_udp(socket: UdpSocket, state: Arc<SharedState>) {
    let mut buffer = vec![0_u8; UDP_RECEIVE_BUFFER_BYTES];
    loop {
        let (length, from) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                debug!(%error, "SIP responder: UDP receive failed");
                tokio::time::sleep(SOCKET_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Some(datagram) = buffer.get(..length) else {
            continue;
        };
        if let Some(response) = state.handle(datagram, from) {
            if let Err(error) = socket.send_to(&response, from).await {
                debug!(%from, %error, "SIP responder: UDP send failed");
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<SharedState>) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                debug!(%error, "SIP responder: TCP accept failed");
                tokio::time::sleep(SOCKET_ERROR_BACKOFF).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_TCP_CONNECTIONS {
            debug!(%from, "SIP responder: too many TCP connections, closing the new one");
            continue;
        }
        connections.spawn(serve_tcp_connection(stream, from, Arc::clone(&state)));
    }
}

/// Answers the OPTIONS on one connection until the peer closes it or sends bytes that do not
/// frame as SIP.
async fn serve_tcp_connection(mut stream: TcpStream, from: SocketAddr, state: Arc<SharedState>) {
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
                    let response = buffer
                        .get(message_start..message_end)
                        .and_then(|message| state.handle(message, from));
                    buffer.drain(..message_end.min(buffer.len()));
                    if let Some(response) = response {
                        if let Err(error) = stream.write_all(&response).await {
                            debug!(%from, %error, "SIP responder: TCP write failed");
                            return;
                        }
                    }
                }
                Err(error) => {
                    debug!(%from, %error, "SIP responder: closing an out-of-step TCP stream");
                    return;
                }
            }
        }
        let room = MAX_MESSAGE_BYTES.saturating_sub(buffer.len());
        let Some(window) = chunk.get_mut(..room.min(TCP_READ_CHUNK_BYTES)) else {
            return;
        };
        if window.is_empty() {
            debug!(%from, "SIP responder: closing a TCP stream with an oversized message");
            return;
        }
        match stream.read(window).await {
            Ok(0) => return,
            Ok(length) => buffer.extend_from_slice(window.get(..length).unwrap_or_default()),
            Err(error) => {
                debug!(%from, %error, "SIP responder: TCP read failed");
                return;
            }
        }
    }
}

/// Locks a mutex, also after a panic elsewhere: the data here (a behaviour, a list of
/// arrivals) is valid whatever the panicking thread was doing.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
