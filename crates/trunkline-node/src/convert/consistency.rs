//! `trunkline.v1.ReadConsistency` to [`Consistency`], and [`ReadState`] back to the wire.

use trunkline_api::v1 as proto;

use crate::cluster::{Consistency, ReadState};

impl From<Option<proto::ReadConsistency>> for Consistency {
    fn from(consistency: Option<proto::ReadConsistency>) -> Self {
        let consistency = consistency.unwrap_or_default();
        Consistency {
            min_applied_index: consistency.min_applied_index,
            linearizable: consistency.linearizable,
            max_staleness_ms: consistency.max_staleness_ms,
        }
    }
}

impl From<ReadState> for proto::ReadState {
    fn from(state: ReadState) -> Self {
        proto::ReadState {
            node_id: state.node_id,
            applied_index: state.applied_index,
            leader_id: state.leader_id.unwrap_or(0),
            staleness_ms: state.staleness_ms,
        }
    }
}
