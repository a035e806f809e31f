//! Trunkline's wire contract: the code generated from `proto/trunkline/v1`.
//!
//! Only this crate and the node know protobuf; conversions between these messages and the
//! domain types live in the node (and the client), one module per type.

#![allow(clippy::all, missing_docs, unreachable_pub)]

pub mod v1 {
    tonic::include_proto!("trunkline.v1");

    /// The internal peer-to-peer service; served only on the peer listener.
    pub mod internal {
        tonic::include_proto!("trunkline.v1.internal");
    }

    /// Encoded descriptors of the public services, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/trunkline_v1_descriptor.bin"));
}
