//! TCP proxies between the nodes' peer listeners, run by the harness on the host, so it can
//! slow chosen links down: latency and jitter, the way etcd's robustness suite does it.
//! These machines' kernels have no `netem` qdisc, so a userspace proxy is the one way to
//! delay traffic without tools in the image.
//!
//! Each node gets one proxy listening on the bridge's gateway address (the host side of the
//! run's network), and advertises that address as its peer address: every Raft message,
//! forwarded write and hello between nodes goes node -> proxy of the receiving node ->
//! receiving node. The proxy knows the sender from the connection's source address, so a
//! delay can be set per directed link (`from -> to`), and it applies to every chunk read
//! after it is set, also on connections already open. Order is kept: a chunk is never
//! delivered before the chunk read before it.
//!
//! Partitions and packet loss are not done here but with iptables in the nodes' namespaces
//! (see [`nemesis`](super::nemesis)), which drop traffic to these proxies' ports.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use rand::Rng;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpListener, TcpStream,
    },
    sync::{mpsc, Semaphore},
    task::{JoinHandle, JoinSet},
    time::Instant,
};

use super::{HarnessError, Result};
use crate::history::NodeId;

/// Most connections one proxy carries at once; more are refused (closed at once).
pub const MAX_CONNECTIONS_PER_PROXY: usize = 128;
/// Largest chunk read from one side before it is queued for the other.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks queued in one direction of one connection, waiting out their delay. The reader
/// waits when the queue is full, which slows the sender down as a slow link would.
pub const QUEUED_CHUNKS: usize = 256;
/// How long a proxy waits to connect to the node behind it: the node's own peer connect
/// timeout, so a dead node looks to its peers as it would without the proxy (a container
/// on the bridge that is up accepts within a millisecond).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause after a failed accept before the next.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// Largest delay or jitter accepted for one link.
pub const MAX_LINK_DELAY: Duration = Duration::from_secs(10);

/// The delay added to every chunk on a directed link: `delay` plus a uniformly random
/// amount in `[-jitter, +jitter]` (never below zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkDelay {
    pub delay: Duration,
    pub jitter: Duration,
}

impl LinkDelay {
    fn sample(self) -> Duration {
        if self.jitter.is_zero() {
            return self.delay;
        }
        let jitter_micros = u64::try_from(self.jitter.as_micros()).unwrap_or(u64::MAX);
        let delay_micros = u64::try_from(self.delay.as_micros()).unwrap_or(u64::MAX);
        let low = delay_micros.saturating_sub(jitter_micros);
        let high = delay_micros.saturating_add(jitter_micros);
        Duration::from_micros(rand::rng().random_range(low..=high))
    }
}

/// What every proxy of a run shares: the delays and who is who.
#[derive(Debug, Default)]
struct Shared {
    delays: RwLock<HashMap<(NodeId, NodeId), LinkDelay>>,
    /// Node of each container address, to know the sending node of a connection.
    sources: RwLock<HashMap<IpAddr, NodeId>>,
}

impl Shared {
    fn delay(&self, from: NodeId, to: NodeId) -> LinkDelay {
        self.delays
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(from, to))
            .copied()
            .unwrap_or_default()
    }

    fn source(&self, address: IpAddr) -> NodeId {
        // 0: not a node (nothing else should connect; it gets no delay).
        self.sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&address)
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Debug)]
struct PeerProxy {
    listen: SocketAddr,
    /// The accept loop; it owns every connection task, so aborting it closes them all.
    task: JoinHandle<()>,
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The proxies of one run, one per node.
#[derive(Debug)]
pub struct ProxySet {
    gateway: Ipv4Addr,
    shared: Arc<Shared>,
    proxies: Mutex<BTreeMap<NodeId, PeerProxy>>,
}

impl ProxySet {
    /// Proxies that listen on `gateway`, the host's address on the run's network.
    pub fn new(gateway: Ipv4Addr) -> ProxySet {
        ProxySet {
            gateway,
            shared: Arc::new(Shared::default()),
            proxies: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts the proxy in front of `node`, whose peer listener is `target`; returns the
    /// address the node should advertise as its peer address.
    pub async fn add(&self, node: NodeId, target: SocketAddr) -> Result<SocketAddr> {
        let listener = TcpListener::bind((self.gateway, 0))
            .await
            .map_err(|error| {
                HarnessError::io(
                    format!("proxy for node {node}: can't listen on {}", self.gateway),
                    error,
                )
            })?;
        let listen = listener
            .local_addr()
            .map_err(|error| HarnessError::io("proxy address", error))?;
        self.shared
            .sources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(target.ip(), node);
        let task = tokio::spawn(accept_loop(listener, node, target, self.shared.clone()));
        self.lock().insert(node, PeerProxy { listen, task });
        Ok(listen)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, PeerProxy>> {
        self.proxies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The address of the proxy in front of `node`.
    pub fn address(&self, node: NodeId) -> Option<SocketAddr> {
        self.lock().get(&node).map(|proxy| proxy.listen)
    }

    /// The proxies' ports, by node.
    pub fn ports(&self) -> BTreeMap<NodeId, u16> {
        self.lock()
            .iter()
            .map(|(node, proxy)| (*node, proxy.listen.port()))
            .collect()
    }

    /// Delays every chunk sent from `from` to `to`.
    pub fn set_delay(&self, from: NodeId, to: NodeId, delay: LinkDelay) -> Result<()> {
        if delay.delay > MAX_LINK_DELAY || delay.jitter > MAX_LINK_DELAY {
            return Err(HarnessError::Setup(format!(
                "link delay {delay:?} is above the limit of {MAX_LINK_DELAY:?}"
            )));
        }
        self.shared
            .delays
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((from, to), delay);
        Ok(())
    }

    /// Removes every delay.
    pub fn clear_delays(&self) {
        self.shared
            .delays
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Accepts connections until the proxy is dropped (which aborts this task and, with it,
/// every connection it carries).
async fn accept_loop(listener: TcpListener, node: NodeId, target: SocketAddr, shared: Arc<Shared>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_PROXY));
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set stays as small as the live ones.
        while connections.try_join_next().is_some() {}
        let Ok((inbound, peer)) = listener.accept().await else {
            // Out of file descriptors or the like: don't spin.
            tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            drop(inbound);
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let from = shared.source(peer.ip());
            carry(inbound, from, node, target, shared).await;
            drop(permit);
        });
    }
}

/// Carries one connection from node `from` to node `to` (behind `target`) until either side
/// closes it.
async fn carry(
    inbound: TcpStream,
    from: NodeId,
    to: NodeId,
    target: SocketAddr,
    shared: Arc<Shared>,
) {
    let outbound = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        // The node is down: reset the sender's connection (linger 0 sends RST), which is
        // what a refused connection looks like to it, one hop later.
        _ => {
            let _ = inbound.set_zero_linger();
            return;
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (inbound_read, inbound_write) = inbound.into_split();
    let (outbound_read, outbound_write) = outbound.into_split();
    tokio::select! {
        _ = pipe(inbound_read, outbound_write, from, to, shared.clone()) => {}
        _ = pipe(outbound_read, inbound_write, to, from, shared) => {}
    }
}

/// One direction of a connection: reads chunks, holds each for the link's delay, writes
/// them in order.
async fn pipe(
    mut reader: OwnedReadHalf,
    mut writer: OwnedWriteHalf,
    from: NodeId,
    to: NodeId,
    shared: Arc<Shared>,
) {
    let (sender, mut receiver) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUED_CHUNKS);
    let read = async move {
        let mut last_due = Instant::now();
        loop {
            let mut buffer = vec![0u8; CHUNK_BYTES];
            let read = match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            buffer.truncate(read);
            let due = (Instant::now() + shared.delay(from, to).sample()).max(last_due);
            last_due = due;
            if sender.send((due, buffer)).await.is_err() {
                return;
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = receiver.recv().await {
            tokio::time::sleep_until(due).await;
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    };
    // The writer finishes after the reader: it drains what was queued, then closes.
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_delayed_link_is_slower_and_keeps_order() {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_address = backend.local_addr().unwrap();
        tokio::spawn(async move {
            // An echo server.
            let (mut stream, _) = backend.accept().await.unwrap();
            let mut buffer = vec![0u8; 1024];
            loop {
                let read = stream.read(&mut buffer).await.unwrap();
                if read == 0 {
                    return;
                }
                stream.write_all(&buffer[..read]).await.unwrap();
            }
        });
        let proxies = ProxySet::new(Ipv4Addr::LOCALHOST);
        let address = proxies.add(2, backend_address).await.unwrap();
        // Connections from 127.0.0.1 come from node 2's address as far as the proxy
        // knows, so delay 2 -> 2.
        proxies
            .set_delay(
                2,
                2,
                LinkDelay {
                    delay: Duration::from_millis(100),
                    jitter: Duration::from_millis(50),
                },
            )
            .unwrap();
        let mut client = TcpStream::connect(address).await.unwrap();
        let started = std::time::Instant::now();
        for byte in 0u8..20 {
            client.write_all(&[byte]).await.unwrap();
        }
        let mut echoed = vec![0u8; 20];
        client.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, (0u8..20).collect::<Vec<_>>());
        // There and back: at least twice the delay less the jitter.
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        proxies.clear_delays();
        let started = std::time::Instant::now();
        client.write_all(&[7]).await.unwrap();
        let mut one = [0u8; 1];
        client.read_exact(&mut one).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
