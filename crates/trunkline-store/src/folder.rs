//! The data folder on disk: whose it is, and who is using it.
//!
//! A node's folder holds:
//!
//! - [`IDENTITY_FILE`]: the cluster name and node id the folder was created for, as JSON an
//!   operator can read. It sits outside the database on purpose: opening a sled database
//!   writes to it (recovery, a new snapshot file), so the identity must be checkable before
//!   the database is opened, or a node pointed at the wrong folder would change it before
//!   refusing it. The database records the identity too, and the two must agree.
//! - [`LOCK_FILE`]: held with an exclusive advisory lock while a process uses the folder, so
//!   a second process gets [`StoreError::InUse`] instead of sled's raw lock error.
//! - [`DATABASE_DIR`]: the sled database.
//! - [`ARCHIVE_DIR`]: the call record archive's segment files (see [`crate::cdr_archive`]).
//! - [`SNAPSHOT_DIR`]: the current snapshot's data (see [`crate::snapshot_store`]).
//!
//! [`claim`] validates the identity, inspects the folder read-only, and refuses a mismatch or a
//! foreign folder before it writes anything.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::acknowledged::{AcknowledgedFile, ACKNOWLEDGED_FILE};
use crate::{NodeId, StoreError};

/// The file that ties a data folder to one cluster and one node id.
pub(crate) const IDENTITY_FILE: &str = "trunkline-identity.json";
/// Where a new identity file is written before it is renamed into place, so a crash never
/// leaves a half-written one.
const IDENTITY_TEMP_FILE: &str = ".trunkline-identity.json.tmp";
/// The file locked while a process uses the folder.
pub(crate) const LOCK_FILE: &str = "trunkline.lock";
/// The sled database, inside the data folder.
pub(crate) const DATABASE_DIR: &str = "db";
/// The call record archive's segment files, inside the data folder.
pub(crate) const ARCHIVE_DIR: &str = "cdrs";
/// The current snapshot's data file, inside the data folder (see [`crate::snapshot_store`]).
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";

/// Version of the identity file's layout.
const IDENTITY_FILE_FORMAT: u32 = 1;
/// An identity file is a few dozen bytes; anything bigger is not ours.
const MAX_IDENTITY_FILE_BYTES: u64 = 64 * 1024;
/// Longest cluster name, in bytes.
pub const MAX_CLUSTER_NAME_BYTES: usize = 128;
/// How many names of a foreign folder's entries an error message shows.
const MAX_LISTED_ENTRIES: usize = 5;

/// Which cluster and which node a data folder belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The operator's name for the cluster; two clusters must never share a folder.
    pub cluster_name: String,
    pub node_id: NodeId,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cluster {:?} node {}", self.cluster_name, self.node_id)
    }
}

impl Identity {
    /// A cluster name is 1 to [`MAX_CLUSTER_NAME_BYTES`] bytes without control characters, so
    /// it prints cleanly in every message that names it.
    pub fn validate(&self) -> Result<(), StoreError> {
        let name = &self.cluster_name;
        let reason = if name.trim().is_empty() {
            "the cluster name must not be empty".to_owned()
        } else if name.len() > MAX_CLUSTER_NAME_BYTES {
            format!(
                "the cluster name is {} bytes; the limit is {MAX_CLUSTER_NAME_BYTES}",
                name.len()
            )
        } else if let Some(bad) = name.chars().find(|c| c.is_control()) {
            format!("the cluster name contains the control character {bad:?}")
        } else {
            return Ok(());
        };
        Err(StoreError::InvalidIdentity { reason })
    }
}

/// The identity file's content.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    format: u32,
    cluster_name: String,
    node_id: NodeId,
}

/// A data folder this process holds the lock of. Dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DataFolder {
    pub(crate) path: PathBuf,
    /// Held open for its advisory lock; never read or written.
    _lock: File,
}

/// Makes `path` this node's data folder, or confirms it already is; refuses, without writing
/// anything, a folder of another cluster or node, a foreign folder, or one in use.
pub(crate) fn claim(path: &Path, identity: &Identity) -> Result<DataFolder, StoreError> {
    identity.validate()?;
    if let Some(found) = inspect(path)? {
        check_identity(path, &found, identity)?;
    }

    // Checks passed: from here on the folder is ours to write.
    fs::create_dir_all(path).map_err(io_error("create", path))?;
    let lock = lock(path)?;
    // Read again under the lock: another process may have created the folder in between.
    match read_identity(path)? {
        Some(found) => check_identity(path, &found, identity)?,
        None => {
            // The record first: a folder with an identity always has one, so a missing record
            // is damage, never a folder that was created half-way.
            AcknowledgedFile::create(path)?;
            write_identity(path, identity)?;
        }
    }
    Ok(DataFolder {
        path: path.to_owned(),
        _lock: lock,
    })
}

/// The identity of an existing data folder; an error when `path` is not one.
pub(crate) fn identity_of(path: &Path) -> Result<Identity, StoreError> {
    match inspect(path)? {
        Some(identity) => Ok(identity),
        None => Err(StoreError::NotADataFolder {
            path: path.to_owned(),
            found: "nothing of a node's data".to_owned(),
        }),
    }
}

/// Takes the lock of an existing data folder, without writing anything else.
pub(crate) fn lock_existing(path: &Path) -> Result<File, StoreError> {
    lock(path)
}

/// Looks at the folder without writing: `None` when it is absent or empty (a new node), the
/// recorded identity when it is a data folder, an error when it is something else.
fn inspect(path: &Path) -> Result<Option<Identity>, StoreError> {
    match fs::metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("read", path)(error)),
        Ok(metadata) if !metadata.is_dir() => {
            return Err(StoreError::NotADataFolder {
                path: path.to_owned(),
                found: "a file, not a folder".to_owned(),
            })
        }
        Ok(_) => {}
    }
    if let Some(identity) = read_identity(path)? {
        return Ok(Some(identity));
    }

    let mut foreign = Vec::new();
    let entries = fs::read_dir(path).map_err(io_error("list", path))?;
    for entry in entries {
        let name = entry.map_err(io_error("list", path))?.file_name();
        let name = name.to_string_lossy();
        match name.as_ref() {
            // Left by a first start that stopped before it wrote the identity file.
            LOCK_FILE | IDENTITY_TEMP_FILE | ACKNOWLEDGED_FILE => {}
            name if name.starts_with(".trunkline-acknowledged") => {}
            DATABASE_DIR => {
                return Err(StoreError::MissingIdentity {
                    path: path.to_owned(),
                })
            }
            other => foreign.push(other.to_owned()),
        }
    }
    if foreign.is_empty() {
        return Ok(None);
    }
    foreign.sort();
    let shown = foreign.len().min(MAX_LISTED_ENTRIES);
    let mut found = foreign[..shown].join(", ");
    if foreign.len() > shown {
        found.push_str(&format!(" and {} more", foreign.len() - shown));
    }
    Err(StoreError::NotADataFolder {
        path: path.to_owned(),
        found,
    })
}

fn check_identity(path: &Path, found: &Identity, expected: &Identity) -> Result<(), StoreError> {
    if found == expected {
        return Ok(());
    }
    Err(StoreError::IdentityMismatch {
        path: path.to_owned(),
        found: found.clone(),
        expected: expected.clone(),
    })
}

fn lock(path: &Path) -> Result<File, StoreError> {
    let lock_path = path.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(io_error("open", &lock_path))?;
    match fs2::FileExt::try_lock_exclusive(&file) {
        Ok(()) => Ok(file),
        Err(error)
            if error.kind() == io::ErrorKind::WouldBlock
                || error.raw_os_error() == fs2::lock_contended_error().raw_os_error() =>
        {
            Err(StoreError::InUse {
                path: path.to_owned(),
            })
        }
        Err(error) => Err(io_error("lock", &lock_path)(error)),
    }
}

fn read_identity(path: &Path) -> Result<Option<Identity>, StoreError> {
    let file_path = path.join(IDENTITY_FILE);
    let file = match File::open(&file_path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("open", &file_path)(error)),
    };
    let mut text = String::new();
    file.take(MAX_IDENTITY_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(io_error("read", &file_path))?;
    let content: IdentityFile =
        serde_json::from_str(&text).map_err(|error| StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("{IDENTITY_FILE} is unreadable ({error})"),
        })?;
    if content.format != IDENTITY_FILE_FORMAT {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!(
                "{IDENTITY_FILE} has format {}; this trunkline knows format {IDENTITY_FILE_FORMAT}",
                content.format
            ),
        });
    }
    let identity = Identity {
        cluster_name: content.cluster_name,
        node_id: content.node_id,
    };
    identity.validate().map_err(|error| StoreError::Corrupt {
        path: path.to_owned(),
        detail: format!("{IDENTITY_FILE} holds an invalid identity ({error})"),
    })?;
    Ok(Some(identity))
}

/// Writes the identity file atomically: a temporary file, synced, renamed into place, and the
/// folder synced so the rename itself survives a crash.
fn write_identity(path: &Path, identity: &Identity) -> Result<(), StoreError> {
    let content = IdentityFile {
        format: IDENTITY_FILE_FORMAT,
        cluster_name: identity.cluster_name.clone(),
        node_id: identity.node_id,
    };
    let mut text = serde_json::to_string_pretty(&content).map_err(|error| StoreError::Io {
        action: "write",
        path: path.join(IDENTITY_FILE),
        source: io::Error::other(error),
    })?;
    text.push('\n');

    let temp_path = path.join(IDENTITY_TEMP_FILE);
    let mut file = File::create(&temp_path).map_err(io_error("create", &temp_path))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error("write", &temp_path))?;
    let file_path = path.join(IDENTITY_FILE);
    fs::rename(&temp_path, &file_path).map_err(io_error("create", &file_path))?;
    File::open(path)
        .and_then(|folder| folder.sync_all())
        .map_err(io_error("sync", path))
}

pub(crate) fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(cluster_name: &str, node_id: NodeId) -> Identity {
        Identity {
            cluster_name: cluster_name.to_owned(),
            node_id,
        }
    }

    #[test]
    fn a_bad_cluster_name_is_refused_before_any_io() {
        let missing = Path::new("/nonexistent/trunkline/never-created");
        for name in [
            "",
            "  ",
            "tab\tname",
            &"x".repeat(MAX_CLUSTER_NAME_BYTES + 1),
        ] {
            let error = claim(missing, &identity(name, 1)).unwrap_err();
            assert!(
                matches!(error, StoreError::InvalidIdentity { .. }),
                "{name:?}: {error}"
            );
        }
        assert!(!missing.exists());
    }

    #[test]
    fn the_identity_file_round_trips_any_node_id() {
        let dir = tempfile::tempdir().unwrap();
        let expected = identity("edge west", u64::MAX);
        write_identity(dir.path(), &expected).unwrap();
        assert_eq!(read_identity(dir.path()).unwrap(), Some(expected));
        assert!(!dir.path().join(IDENTITY_TEMP_FILE).exists());
    }

    #[test]
    fn a_leftover_lock_file_alone_counts_as_an_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE), b"").unwrap();
        assert_eq!(inspect(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_database_without_its_identity_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(DATABASE_DIR)).unwrap();
        let error = claim(dir.path(), &identity("prod", 1)).unwrap_err();
        assert!(
            matches!(error, StoreError::MissingIdentity { .. }),
            "{error}"
        );
        assert!(!dir.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn a_file_in_place_of_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        fs::write(&file, b"not a folder").unwrap();
        let error = claim(&file, &identity("prod", 1)).unwrap_err();
        assert!(
            matches!(error, StoreError::NotADataFolder { .. }),
            "{error}"
        );
    }
}
