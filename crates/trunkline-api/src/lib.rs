//! Trunkline's wire contract: the code generated from `proto/trunkline/v1`, and the
//! conversions to and from the core's types that the node and trunkctl share (`convert`).
//!
//! Only this crate, the node and the tools know protobuf; the core does not.

pub mod convert;

use trunkline_core::FieldError;

/// A node id from a request: 0 is proto3's "not set", so ids start at 1. Node ids name Raft
/// members, which the core never sees, so the rule lives here, where the node and trunkctl
/// both find it.
pub fn node_id(field: &'static str, node_id: u64) -> Result<u64, FieldError> {
    if node_id == 0 {
        Err(FieldError::new(field, "must be a positive number"))
    } else {
        Ok(node_id)
    }
}

/// Whether `value` is `host:port` with a non-empty host and a port from 1 to 65535: the form
/// every address in the contract (advertised addresses, endpoints, join requests) takes.
pub fn is_host_port(value: &str) -> bool {
    value.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0)
    })
}

#[allow(clippy::all, missing_docs, unreachable_pub)]
pub mod v1 {
    tonic::include_proto!("trunkline.v1");

    /// The internal peer-to-peer service; served only on the peer listener.
    pub mod internal {
        tonic::include_proto!("trunkline.v1.internal");
    }

    /// gRPC metadata keys that are part of the contract.
    pub mod metadata {
        /// Set on an UNAVAILABLE status when the request was certainly not applied (the node
        /// could not reach a leader), so a client may send it to another node.
        pub const RETRY_HEADER: &str = "trunkline-retry";
        pub const RETRY_NOT_APPLIED: &str = "not-applied";
        /// The leader's client address, when the answering node knows it.
        pub const LEADER_HEADER: &str = "trunkline-leader";
        /// Set on an INVALID_ARGUMENT status that is about one request field: the field's name
        /// as the wire spells it (`rules.allowed_hours`), so a client maps it to its own name
        /// for it without parsing the message.
        pub const FIELD_HEADER: &str = "trunkline-field";
        /// On an `AdminService` write: `<client>-<sequence>`, the client's random id in hex
        /// (1 to 16 digits) and the call's number in decimal. A write sent again with the same
        /// key (because its outcome was unknown) applies once and answers alike.
        pub const IDEMPOTENCY_HEADER: &str = "trunkline-idempotency-key";

        /// The `(client, sequence)` of an idempotency key's text; `None` when malformed.
        pub fn parse_idempotency_key(text: &str) -> Option<(u64, u64)> {
            let (client, sequence) = text.split_once('-')?;
            if client.is_empty() || client.len() > 16 {
                return None;
            }
            let client = u64::from_str_radix(client, 16).ok()?;
            let sequence = sequence.parse().ok()?;
            Some((client, sequence))
        }
    }

    /// Encoded descriptors of the public services, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/trunkline_v1_descriptor.bin"));
}
