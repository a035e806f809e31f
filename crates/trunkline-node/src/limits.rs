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
/// Events a watcher may ask to see from before it connected.
pub const MAX_RECENT_EVENTS: u32 = 1000;
/// Events buffered ahead of a slow watcher; beyond it the stream waits (and the watcher may
/// later be told it missed events the log no longer keeps).
pub const EVENT_CHANNEL_EVENTS: usize = 64;
