//! The one place where values become bytes for sled, and bytes become values again.
//!
//! Every value the store writes (log entries, the vote, snapshots, the identity record) is
//! encoded here, and every key that carries a number is built here. Keeping it in one module
//! means encryption at rest (AES-GCM under an operator key) can be added by giving it a new
//! format version, without touching any caller.
//!
//! A value is one format-version byte followed by the payload:
//!
//! - version [`FORMAT_BINCODE`]: bincode 1.3 with its default options (variable-length
//!   integers, little-endian, trailing bytes rejected), at most [`MAX_ENCODED_BYTES`].
//!
//! Decoding refuses a version it does not know instead of guessing, so a folder written by a
//! newer Trunkline fails loudly on an older one.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StoreError;

/// Format version of a plain bincode payload.
pub const FORMAT_BINCODE: u8 = 1;

/// Largest payload encoded or decoded, in bytes. A snapshot of the whole state is the largest
/// value; the bound keeps a damaged length prefix from asking for an absurd allocation.
pub const MAX_ENCODED_BYTES: u64 = 1 << 30;

/// Length of a log key: a big-endian `u64` index, so sled's byte order is log order.
pub const LOG_KEY_BYTES: usize = 8;

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_ENCODED_BYTES)
}

/// Encodes `value` as a format-version byte followed by its bincode payload.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![FORMAT_BINCODE];
    options()
        .serialize_into(&mut bytes, value)
        .map_err(StoreError::Encode)?;
    Ok(bytes)
}

/// Decodes bytes written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        None => Err(StoreError::EmptyValue),
        Some((&FORMAT_BINCODE, payload)) => {
            options().deserialize(payload).map_err(StoreError::Decode)
        }
        Some((&version, _)) => Err(StoreError::UnsupportedFormat { version }),
    }
}

/// The sled key of the log entry at `index`.
pub fn log_key(index: u64) -> [u8; LOG_KEY_BYTES] {
    index.to_be_bytes()
}

/// The log index a sled key stands for; fails on a key [`log_key`] did not make.
pub fn log_index(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; LOG_KEY_BYTES] = key
        .try_into()
        .map_err(|_| StoreError::BadLogKey { length: key.len() })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips_behind_its_version_byte() {
        let value = (7u64, String::from("trunk"), Some(vec![1u8, 2, 3]));
        let bytes = encode(&value).unwrap();
        assert_eq!(bytes[0], FORMAT_BINCODE);
        let back: (u64, String, Option<Vec<u8>>) = decode(&bytes).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn an_unknown_version_is_refused_not_guessed() {
        let mut bytes = encode(&1u64).unwrap();
        bytes[0] = 99;
        let error = decode::<u64>(&bytes).unwrap_err();
        assert!(
            matches!(error, StoreError::UnsupportedFormat { version: 99 }),
            "{error:?}"
        );
    }

    #[test]
    fn an_empty_value_is_an_error() {
        assert!(matches!(decode::<u64>(&[]), Err(StoreError::EmptyValue)));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&1u64).unwrap();
        bytes.push(0);
        assert!(matches!(decode::<u64>(&bytes), Err(StoreError::Decode(_))));
    }

    #[test]
    fn log_keys_sort_in_index_order() {
        let mut keys = [300u64, 2, u64::MAX, 0, 256].map(log_key);
        keys.sort();
        let indexes: Vec<u64> = keys.iter().map(|key| log_index(key).unwrap()).collect();
        assert_eq!(indexes, [0, 2, 256, 300, u64::MAX]);
    }

    #[test]
    fn a_key_of_the_wrong_length_is_not_a_log_index() {
        assert!(matches!(
            log_index(b"vote"),
            Err(StoreError::BadLogKey { length: 4 })
        ));
    }
}
