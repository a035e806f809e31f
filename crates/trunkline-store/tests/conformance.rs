//! openraft's storage conformance suite against the sled store, each case in a fresh data
//! folder. It is the contract openraft itself relies on: log state, vote, purge, truncate,
//! membership, apply and snapshot transfer.

use openraft::testing::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use tempfile::TempDir;
use trunkline_store::{Identity, LogStore, NodeId, StateMachineStore, Store, TypeConfig};

/// Opens a store in a new temporary folder; the folder (the guard) outlives the store.
struct TempStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for TempStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir()
            .map_err(|e| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let identity = Identity {
            cluster_name: "conformance".to_owned(),
            node_id: 0,
        };
        let store = Store::open(dir.path(), &identity).map_err(|e| {
            StorageError::from_io_error(
                ErrorSubject::Store,
                ErrorVerb::Write,
                std::io::Error::other(e),
            )
        })?;
        Ok((dir, store.log_store(), store.state_machine()))
    }
}

#[test]
fn the_store_passes_openraft_conformance_suite() {
    Suite::test_all(TempStoreBuilder).unwrap();
}
