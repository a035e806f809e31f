//! Conversions between protobuf messages and the node's own types (Raft membership, read
//! consistency); the domain's conversions live in `trunkline_api::convert` and are re-exported
//! here so the node has one place to look.

mod consistency;
mod member;

pub use member::members;
pub use trunkline_api::convert::*;
