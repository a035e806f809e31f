//! Every bound the node puts on work, in one place, each with why it has the value it has.

use std::time::Duration;

/// Largest message on the peer listener (and what a node sends to a peer).
///
/// What a real message needs: an AppendEntries batch is at most [`RAFT_MAX_PAYLOAD_ENTRIES`]
/// entries, but the log reader also stops a batch once it holds
/// `trunkline_store::MAX_READ_BYTES` (4 MiB) of encoded entries, so a batch is under 4 MiB
/// plus its last entry. One entry carries one command, and a command came in as one client
/// request of at most [`API_MAX_MESSAGE_BYTES`] (4 MiB). A batch is therefore under 8 MiB
/// plus per-entry framing (a log id and a leader time, tens of bytes, times 64). A snapshot
/// chunk is [`RAFT_SNAPSHOT_CHUNK_BYTES`] (4 MiB) plus its metadata; a forwarded write is one
/// command plus an envelope. 16 MiB is twice the largest of these: bincode (varint lengths)
/// may encode a command somewhat larger than the protobuf request it came from, and the
/// margin must never be what stops replication. It was 256 MiB, which let four stalled
/// messages hold a gigabyte.
pub const RAFT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Log entries per AppendEntries message.
pub const RAFT_MAX_PAYLOAD_ENTRIES: u64 = 64;
/// Bytes per InstallSnapshot chunk.
pub const RAFT_SNAPSHOT_CHUNK_BYTES: u64 = 4 * 1024 * 1024;
/// How long to wait for a TCP connection to a peer before it counts as unreachable.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Largest command one write may propose, as encoded on the peer wire. Every entry must
/// fit an AppendEntries message ([`RAFT_MAX_MESSAGE_BYTES`]) beside a full read batch of
/// others (the log reader stops after 4 MiB, plus one entry), or it could never be
/// replicated; the largest real commands (a 5,000-row rate chunk, 1,000 registrations) are
/// well under 1 MiB.
pub const MAX_COMMAND_WIRE_BYTES: u64 = 4 * 1024 * 1024;
/// Largest request accepted on the client listener.
pub const API_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Requests in flight on the client listener before new ones are shed with UNAVAILABLE.
pub const API_MAX_IN_FLIGHT: usize = 4096;
/// Concurrent requests on one client connection.
pub const API_MAX_IN_FLIGHT_PER_CONNECTION: usize = 1024;
/// A request without its own deadline gets this one.
pub const API_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write waits for a leader and for commit before giving up with UNAVAILABLE.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a write follows a changing leader before giving up.
pub const WRITE_MAX_FORWARDS: usize = 5;
/// Longest a read waits to reach its `min_applied_index` or linearizable index.
pub const READ_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the leader waits to reach a node being joined before calling it unreachable.
pub const JOIN_HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a membership change may take to commit.
pub const MEMBERSHIP_CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time a follower gives a forwarded request beyond the leader's own bound, so the
/// leader's answer (even a timeout) arrives instead of a silent cut-off.
pub const FORWARD_MARGIN: Duration = Duration::from_secs(1);
/// From SIGTERM (or a storage failure) to the end of the process, whatever hangs: a
/// watchdog thread exits the process then.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Time given to in-flight requests to finish after the listeners stop.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_millis(1500);
/// Time given to Raft to stop after the drain.
pub const RAFT_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(1000);
/// After the Raft core fails on a storage error: how long the node keeps answering lookups
/// from its last applied state (reporting NOT_SERVING, so proxies and load balancers move
/// away) before it stops. With the drain and Raft's stop it stays within SHUTDOWN_GRACE.
pub const STORAGE_FAILURE_LOOKUP_WINDOW: Duration = Duration::from_millis(2000);
/// Settings returned by one list request.
pub const MAX_LIST_SETTINGS: usize = 1000;
/// Chunks of an export buffered ahead of a slow reader.
pub const EXPORT_CHANNEL_CHUNKS: usize = 4;
/// Audit entries copied out of the state at once by a ListAudit stream.
pub const AUDIT_PAGE_ENTRIES: usize = 256;
/// Audit entries a ListAudit stream buffers for a slow reader.
pub const AUDIT_CHANNEL_ENTRIES: usize = 256;
/// Events a watcher may ask to see from before it connected (the core's, which trunkctl
/// checks too).
pub use trunkline_core::events::MAX_RECENT_EVENTS;
/// Events buffered ahead of a slow watcher; beyond it the stream waits (and the watcher may
/// later be told it missed events the log no longer keeps).
pub const EVENT_CHANNEL_EVENTS: usize = 64;

// ---- Listeners: connections, HTTP/2 and buffered request bytes ----
//
// Memory a client can make a listener hold is bounded by: open connections
// ([`API_MAX_CONNECTIONS`]) times the HTTP/2 connection window (bytes received but not yet
// read by a request), plus the request bytes read but not yet decoded, which all requests
// together may hold at most [`API_MAX_BUFFERED_REQUEST_BYTES`] of.

/// Open connections on the client listener. Beyond it a new connection is accepted and
/// closed at once, so the client fails fast (and a failover client tries another node)
/// instead of waiting in the kernel's backlog. SIP proxies and trunkctl hold a few
/// connections each; 2,048 leaves room for hundreds of proxies and stays well under the
/// systemd unit's `LimitNOFILE=65536`.
pub const API_MAX_CONNECTIONS: usize = 2048;
/// Open connections on the peer listener. Each other member opens a handful (Raft
/// replication, forwarded requests, pings, probe status); 256 covers a cluster of dozens of
/// nodes and learners.
pub const PEER_MAX_CONNECTIONS: usize = 256;
/// A connection that carries no request for this long is closed (on both listeners). A
/// request in flight (including a long-lived watch stream) keeps it open; bytes alone
/// (HTTP/2 pings) do not. Clients reconnect transparently; a minute keeps an active proxy's
/// connection open between bursts while an abandoned one frees its slot soon.
pub const CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent HTTP/2 streams a client may open on one connection: the same as the requests
/// served at once per connection ([`API_MAX_IN_FLIGHT_PER_CONNECTION`]), so a proxy that
/// multiplexes its lookups on one connection is not throttled by the transport.
pub const API_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 1024;
/// HTTP/2 flow-control window per stream on the client listener: the most request bytes a
/// client can push on one stream before the request reads them. Lookups are a few hundred
/// bytes; 256 KiB still moves a 4 MiB rate deck chunk in 16 round trips (milliseconds on a
/// LAN).
pub const API_HTTP2_STREAM_WINDOW_BYTES: u32 = 256 * 1024;
/// HTTP/2 flow-control window per connection on the client listener: the most unread
/// request bytes one connection can make the node hold, whatever its number of streams.
pub const API_HTTP2_CONNECTION_WINDOW_BYTES: u32 = 1024 * 1024;
/// Smallest window accepted in the configuration: the HTTP/2 default (RFC 9113 6.9.2).
pub const MIN_HTTP2_WINDOW_BYTES: u32 = 65_535;
/// Largest window HTTP/2 can express (RFC 9113 6.9.1).
pub const MAX_HTTP2_WINDOW_BYTES: u32 = (1 << 31) - 1;
/// Request bytes read from all connections of the client listener and not yet decoded into
/// messages. A request that would go beyond fails with RESOURCE_EXHAUSTED (and releases what
/// it held); the bytes are released when a request's body is decoded or dropped. A thousand
/// clients that each send most of a 4 MiB body and stall would otherwise hold 4 GB. 256 MiB
/// fits 64 maximum-size requests at once, far more than real imports ever overlap.
pub const API_MAX_BUFFERED_REQUEST_BYTES: usize = 256 * 1024 * 1024;

/// Requests in flight on the peer listener before new ones are shed with UNAVAILABLE (the
/// sender retries). A follower forwards at most what its own client listener admits
/// ([`API_MAX_IN_FLIGHT`]), so this matches it.
pub const PEER_MAX_IN_FLIGHT: usize = 4096;
/// A peer request that sends no `grpc-timeout` of its own ends after this long. Every real
/// peer call sets its own, shorter deadline (openraft's TTL, the install-snapshot timeout,
/// the forward timeout); this bounds a sender that stalls mid-message. It must not be below
/// `raft.install_snapshot_timeout_ms` (checked by the configuration).
pub const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Request bytes read and not yet decoded across the peer listener: eight maximum-size
/// messages ([`RAFT_MAX_MESSAGE_BYTES`]). A node receives one append or snapshot chunk at a
/// time from its leader plus forwarded commands (each at most 4 MiB).
pub const PEER_MAX_BUFFERED_REQUEST_BYTES: usize = 8 * RAFT_MAX_MESSAGE_BYTES;
/// HTTP/2 windows on the peer listener: wider than the client listener's, because peers may
/// sit a WAN round trip apart and move 4-8 MiB messages; at 50 ms a 2 MiB stream window
/// still moves 40 MB/s. The connection cap bounds their total.
pub const PEER_HTTP2_STREAM_WINDOW_BYTES: u32 = 2 * 1024 * 1024;
pub const PEER_HTTP2_CONNECTION_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// Concurrent HTTP/2 streams per peer connection.
pub const PEER_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 1024;
/// HTTP/2 pings on an otherwise quiet connection: a peer that stops answering (host gone,
/// cable cut) has its connection and its in-flight streams (a watch) closed after
/// interval + timeout, instead of holding them until TCP gives up after many minutes.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// First pause after `accept` fails for want of a resource (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM); it doubles up to [`ACCEPT_BACKOFF_MAX`]. Retrying at once spins a core and starves
/// the connections being served, which are what frees the resource.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a new connection has to finish its TLS handshake; one that stalls holds a slot
/// under the listener's connection cap, so it is closed after this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the node looks at its certificate files for a change (SIGHUP reloads at once).
pub const TLS_RELOAD_POLL: Duration = Duration::from_secs(10);
/// A certificate that expires within this long is warned about, at load and once a day.
pub const TLS_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);
pub const TLS_EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// At most one warning per listener per this interval about refused connections or failed
/// accepts (with a count of what was not logged), so an attack does not flood the log.
pub const LISTENER_WARNING_INTERVAL: Duration = Duration::from_secs(10);

// Peer input: bounds on what a message on the peer listener may carry (see `peer_check`).

/// Largest term jump a peer message may ask of this node. Terms grow by one an election; a
/// node cut off for 20 years campaigning every 150 ms reaches about 2^32, so a bigger jump is
/// no election history. It also means a forger needs about 2^30 accepted messages to push a
/// term to [`PEER_MAX_TERM`].
pub const PEER_MAX_TERM_JUMP: u64 = 1 << 32;
/// Largest term a node takes from a peer: far below `u64::MAX`, so openraft's `term + 1`
/// when it campaigns can never overflow (it panics, or wraps and then panics, if it does).
pub const PEER_MAX_TERM: u64 = 1 << 62;
/// Largest log index a peer message may name: a million entries a second for over 100,000
/// years, and far from overflow when openraft adds to an index.
pub const PEER_MAX_LOG_INDEX: u64 = 1 << 62;
/// Largest snapshot a node receives. A snapshot is held in memory whole on both sides, so
/// this is more than a node's state can be; the real guard is that chunks arrive in order.
pub const PEER_MAX_SNAPSHOT_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Longest snapshot id (the store makes ids of a few dozen bytes).
pub const PEER_MAX_SNAPSHOT_ID_BYTES: usize = 256;
/// Most nodes a membership carried in a peer message may list (3 or 5 voters plus learners).
pub const PEER_MAX_MEMBERS: usize = 1024;
/// Longest address (host:port) in a membership or a forwarded join: a DNS name is at most
/// 253 bytes.
pub const PEER_MAX_ADDRESS_BYTES: usize = 512;
/// A refused peer message is logged at most this often; the others are counted and the
/// count goes into the next line.
pub const PEER_REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

// Streams and answers: what one client can make a node hold. The defaults below are the
// values of the `[streams]` and `[answers]` options in config.rs, where an operator may need
// another value; the rest are fixed.

/// Default open `WatchEvents` streams per node (`streams.max_watch_streams`). A watcher is
/// an operator's dashboard or an alerting bridge: a few per cluster, so 64 leaves room while
/// bounding what stalled watchers can hold ([`EVENT_CHANNEL_EVENTS`] events each).
pub const DEFAULT_MAX_WATCH_STREAMS: usize = 64;
/// Default open `ExportRates` streams per node (`streams.max_export_streams`). Exports are
/// occasional operator runs; each buffers up to [`EXPORT_CHANNEL_CHUNKS`] chunks of
/// [`EXPORT_CHUNK_ROWS`] rows (about 100 KiB a chunk) ahead of a slow reader.
pub const DEFAULT_MAX_EXPORT_STREAMS: usize = 16;
/// Default open `RouteStream` streams per node (`streams.max_route_streams`). A proxy opens
/// one or a few per node it talks to; each works on at most [`ROUTE_STREAM_WINDOW`]
/// requests at a time and buffers as many answers.
pub const DEFAULT_MAX_ROUTE_STREAMS: usize = 256;
/// Requests of one `RouteStream` a node works on at once; it reads the stream's next request
/// only when one of them is answered, so a faster sender waits on HTTP/2 flow control.
pub const ROUTE_STREAM_WINDOW: usize = 64;
/// Events a watcher copies out of the published state at a time before it sends them and
/// looks again; the state itself is never held while a send waits.
pub const EVENT_BATCH_EVENTS: usize = 64;
/// Rows in one exported chunk, copied out of the deck before the send; smaller than the
/// import's chunk so a stalled export holds little.
pub const EXPORT_CHUNK_ROWS: usize = 1_000;
/// Default legs in one route answer, RouteOutbound or an inbound number target
/// (`answers.max_legs`). A proxy tries legs in order and a call gives up after
/// `outbound::MAX_ATTEMPTS` failed legs anyway, so more than a few dozen only cost bytes
/// (10,000 gateways made a 558 KB answer); a reroute after a failed carrier still reaches
/// carriers beyond the first answer, because it routes again without the failed carrier.
pub const DEFAULT_MAX_LEGS_PER_ANSWER: usize = 32;
/// Largest `answers.max_legs` accepted: keeps an answer well under the message limit.
pub const MAX_LEGS_PER_ANSWER: usize = 1_000;
/// Candidate lines in one explanation before the rest are summed up in one "and N more" line.
pub const MAX_EXPLANATION_LINES: usize = 64;
/// Extensions in one GetUsage answer, the busiest first.
pub const MAX_USAGE_EXTENSIONS: usize = 1_000;
/// Largest `streams.max_*_streams` accepted.
pub const MAX_STREAMS_LIMIT: usize = 10_000;

// Backfill of the call record archive between peers (see `backfill`).

/// Records in one chunk of a FetchRecords stream, and the bytes after which a chunk ends
/// sooner: a record is a few hundred bytes (at most 1 MiB), so a chunk stays far under
/// [`RAFT_MAX_MESSAGE_BYTES`].
pub const FETCH_CHUNK_RECORDS: usize = 1_000;
pub const FETCH_CHUNK_BYTES: usize = 1024 * 1024;
/// Records one FetchRecords call sends before it ends; the fetching node resumes after the
/// last key in a new call, so no call runs long.
pub const FETCH_RECORDS_PER_CALL: u64 = 100_000;
/// Chunks a serving node reads ahead of a slow fetcher.
pub const FETCH_CHUNKS_AHEAD: usize = 2;
/// FetchRecords streams one node serves at once: backfills are rare (a node that installed a
/// snapshot) and each reads the archive from disk.
pub const FETCH_MAX_STREAMS: usize = 2;
/// Deadline of one FetchRecords call (the serving side ends it after
/// [`FETCH_RECORDS_PER_CALL`] records, far sooner on any real disk and network).
pub const FETCH_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the next chunk of a FetchRecords stream.
pub const FETCH_CHUNK_TIMEOUT: Duration = Duration::from_secs(15);
/// Deadline of the call that asks a peer from when its archive is whole.
pub const FETCH_COVERAGE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a node whose archive is whole looks again (one read of the meta tree).
pub const BACKFILL_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Pause after a backfill round that could not finish (no peer reachable, none holding
/// older records), doubling up to [`BACKFILL_RETRY_MAX`].
pub const BACKFILL_RETRY_MIN: Duration = Duration::from_secs(1);
pub const BACKFILL_RETRY_MAX: Duration = Duration::from_secs(60);
