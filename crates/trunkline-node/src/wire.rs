//! Encoding of the payloads carried by the internal peer service.
//!
//! Both ends of the peer listener run the same build, so openraft's own serde types travel
//! as bincode inside a protobuf `bytes` field rather than being mirrored field by field.
//! Decoding is bounded: bincode reads at most [`limits::RAFT_MAX_MESSAGE_BYTES`] (no payload
//! can be larger, the listener refuses bigger messages), a length prefix larger than what is
//! left of the payload fails instead of allocating, and trailing bytes are refused.

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

use crate::limits;

/// Fixed-width integers, little-endian (the encoding of `bincode::serialize`), bounded.
fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(limits::RAFT_MAX_MESSAGE_BYTES as u64)
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, tonic::Status> {
    options()
        .serialize(value)
        .map_err(|error| tonic::Status::internal(format!("can't encode a peer message: {error}")))
}

/// Bytes `value` takes on the peer wire; `None` when it can't be encoded within the bound.
pub fn encoded_size<T: Serialize>(value: &T) -> Option<u64> {
    options().serialized_size(value).ok()
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, tonic::Status> {
    options().deserialize(bytes).map_err(|error| {
        tonic::Status::invalid_argument(format!(
            "payload: malformed peer message ({error}); are both nodes running the same \
             trunkline version?"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_keeps_the_value_and_matches_plain_bincode() {
        let value = (7u64, "seven".to_owned(), vec![1u8, 2, 3]);
        let bytes = encode(&value).unwrap();
        assert_eq!(bytes, bincode::serialize(&value).unwrap());
        assert_eq!(decode::<(u64, String, Vec<u8>)>(&bytes).unwrap(), value);
    }

    #[test]
    fn a_giant_length_prefix_fails_without_allocating() {
        // A Vec<u64> claiming u64::MAX / 2 elements, followed by nothing.
        let bytes = (u64::MAX / 2).to_le_bytes();
        let error = decode::<Vec<u64>>(&bytes).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        let bytes = (u64::MAX / 2).to_le_bytes();
        let error = decode::<Vec<u8>>(&bytes).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn trailing_bytes_and_garbage_are_refused() {
        let mut bytes = encode(&5u64).unwrap();
        bytes.push(0);
        assert_eq!(
            decode::<u64>(&bytes).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert!(decode::<(u64, String)>(&[0xff; 3]).is_err());
    }
}
