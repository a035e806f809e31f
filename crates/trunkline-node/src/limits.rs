//! Every bound the node puts on work, in one place, each with why it has the value it has.

use std::time::Duration;

/// Largest message on the peer listener: a full batch of log entries or a snapshot chunk,
/// with room to spare. Entries are bounded by [`RAFT_MAX_PAYLOAD_ENTRIES`] and each command
/// is bounded by the client listener's [`API_MAX_MESSAGE_BYTES`].
pub const RAFT_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// Log entries per AppendEntries message.
pub const RAFT_MAX_PAYLOAD_ENTRIES: u64 = 64;
/// Bytes per InstallSnapshot chunk.
pub const RAFT_SNAPSHOT_CHUNK_BYTES: u64 = 4 * 1024 * 1024;
/// How long to wait for a TCP connection to a peer before it counts as unreachable.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

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
/// Time given to in-flight requests after SIGTERM before the node stops anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Settings returned by one list request.
pub const MAX_LIST_SETTINGS: usize = 1000;
/// Chunks of an export buffered ahead of a slow reader.
pub const EXPORT_CHANNEL_CHUNKS: usize = 4;
/// Events a watcher may ask to see from before it connected.
pub const MAX_RECENT_EVENTS: u32 = 1000;
/// Events buffered ahead of a slow watcher; beyond it the stream waits (and the watcher may
/// later be told it missed events the log no longer keeps).
pub const EVENT_CHANNEL_EVENTS: usize = 64;

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
/// Largest `streams.max_*_streams` accepted.
pub const MAX_STREAMS_LIMIT: usize = 10_000;
