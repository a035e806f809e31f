//! What can go wrong opening and using a data folder, and how it reaches openraft.
//!
//! [`StoreError`] is what [`Store::open`](crate::Store::open) and the codec return: expected
//! conditions an operator can fix (another node's folder, a folder in use, a foreign folder)
//! each name the path and say what to do; the rest (I/O, a damaged folder) are fatal.
//! Inside the openraft trait impls every failure becomes a [`StorageError`] whose
//! [`ErrorSubject`] and [`ErrorVerb`] say what was being read or written; openraft stops the
//! node on any of them, which is the right answer to a disk that lost data.

use std::io;
use std::path::PathBuf;

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};

use crate::codec::LOG_KEY_BYTES;
use crate::folder::{Identity, IDENTITY_FILE};
use crate::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The identity given to [`Store::open`](crate::Store::open) is malformed; nothing was
    /// touched.
    #[error("invalid node identity: {reason}")]
    InvalidIdentity { reason: String },

    /// The folder belongs to another cluster or another node id; nothing was written.
    #[error(
        "the data folder {path} belongs to {found}, but this node is configured as {expected}; \
         point this node at its own data folder, or at an empty one to start it as a new node"
    )]
    IdentityMismatch {
        path: PathBuf,
        found: Identity,
        expected: Identity,
    },

    /// The folder's encryption and the keys given don't match: a key is missing or wrong, or
    /// keys were given for a folder made without them. Nothing was written.
    #[error("the data folder {path}: {detail}")]
    Keys { path: PathBuf, detail: String },

    /// Another process (or another open in this one) holds the folder's lock.
    #[error(
        "the data folder {path} is in use by another trunkline process; stop that process \
         first, or give this node a different data folder"
    )]
    InUse { path: PathBuf },

    /// The path exists but holds something other than a Trunkline data folder; nothing was
    /// written.
    #[error(
        "{path} is not a Trunkline data folder: it holds {found} but no {IDENTITY_FILE}; \
         choose a new or empty folder for this node's data"
    )]
    NotADataFolder { path: PathBuf, found: String },

    /// The folder has a database but lost the file that says whose it is; nothing was written.
    #[error(
        "the data folder {path} has a database but no {IDENTITY_FILE}, so it cannot tell which \
         cluster and node it belongs to; restore that file from a backup, or move the folder \
         aside and start this node with an empty one"
    )]
    MissingIdentity { path: PathBuf },

    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("could not open the database in {path}: {source}")]
    Database {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },

    /// Something read back from the folder breaks an invariant the store wrote it with.
    /// The node must not start on it: it could serve, or vote on, state older than it
    /// acknowledged.
    #[error(
        "the data folder {path} is damaged: {detail}. This node will not start on it. To bring \
         it back as an empty member that catches up from the cluster, run `trunkline recover \
         --data-dir {}` (it moves the folder aside and keeps this node's last vote)",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    /// A segment of the call record archive is damaged (or a record can't go in one). Only
    /// the records from there on are affected; another node holds the same records.
    #[error("the call record archive file {path} is damaged: {detail}")]
    DamagedArchive { path: PathBuf, detail: String },

    /// Records from a peer could not be taken into the call record archive (out of order,
    /// or another backfill is under way). Nothing was swapped in; the backfill can start over.
    #[error("the call record backfill can't go on: {detail}")]
    Backfill { detail: String },

    #[error("could not encode a value for storage: {0}")]
    Encode(bincode::Error),

    #[error("could not decode a stored value: {0}")]
    Decode(bincode::Error),

    /// A stored value does not match the checksum written with it.
    #[error("a stored value is damaged: {detail}")]
    Checksum { detail: String },

    #[error("a stored value is empty")]
    EmptyValue,

    #[error(
        "a stored value has format version {version}, which this trunkline does not know; \
         the folder was written by a newer version: run that version on it"
    )]
    UnsupportedFormat { version: u8 },

    #[error("a log key is {length} bytes long; log keys are {LOG_KEY_BYTES}")]
    BadLogKey { length: usize },

    /// Every handle to the state machine was dropped: no more changes will come.
    #[error("the state machine was shut down")]
    Closed,
}

/// An I/O failure inside an openraft trait impl, naming what was being done to what.
pub(crate) fn storage_error<E>(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    error: &E,
) -> StorageError<NodeId>
where
    E: std::error::Error + 'static,
{
    StorageIOError::new(subject, verb, AnyError::new(error)).into()
}

/// A broken invariant inside an openraft trait impl: what was found against what was expected.
pub(crate) fn violation(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    detail: impl ToString,
) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::error(detail)).into()
}
