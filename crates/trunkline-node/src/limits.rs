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
