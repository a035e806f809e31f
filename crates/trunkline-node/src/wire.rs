//! Encoding of the payloads carried by the internal peer service.
//!
//! Both ends of the peer listener run the same build, so openraft's own serde types travel
//! as bincode inside a protobuf `bytes` field rather than being mirrored field by field.

use serde::{de::DeserializeOwned, Serialize};

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, tonic::Status> {
    bincode::serialize(value)
        .map_err(|error| tonic::Status::internal(format!("can't encode a peer message: {error}")))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, tonic::Status> {
    bincode::deserialize(bytes).map_err(|error| {
        tonic::Status::invalid_argument(format!(
            "malformed peer message ({error}); are both nodes running the same trunkline version?"
        ))
    })
}
