//! The one place where values become bytes for sled, and bytes become values again.
//!
//! Every value the store writes (log entries, the vote, snapshots, the identity record) is
//! encoded here, and every key that carries a number is built here. Keeping it in one module
//! means encryption at rest (AES-GCM under an operator key) can be added by giving it a new
//! format version, without touching any caller.
//!
//! A value is one format-version byte followed by the payload:
//!
//! - version [`FORMAT_CHECKED`]: a CRC-32 (IEEE, as `crc32fast` computes it) of the payload, 4 bytes little-endian, then the payload: bincode 1.3 with its default
//!   options (variable-length integers, little-endian, trailing bytes rejected), at most
//!   [`MAX_ENCODED_BYTES`].
//!
//! Every read verifies the checksum: sled 0.34 can hand back damaged bytes after a crash or a
//! bad disk, and a value that decodes is not necessarily the value that was written. Decoding
//! refuses a version it does not know instead of guessing, so a folder written by a newer
//! Trunkline fails loudly on an older one; version 1 (the same payload without a checksum,
//! written by development builds before checksums) is refused too, because a value without a
//! checksum can't be trusted.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StoreError;

/// Format version of a bincode payload without a checksum; no longer read or written.
pub const FORMAT_UNCHECKED: u8 = 1;
/// Format version of a checksummed bincode payload.
pub const FORMAT_CHECKED: u8 = 2;
/// Bytes of the checksum that follows the version byte.
const CHECKSUM_BYTES: usize = 4;

/// Largest payload encoded or decoded, in bytes. A snapshot of the whole state is the largest
/// value; the bound keeps a damaged length prefix from asking for an absurd allocation.
pub const MAX_ENCODED_BYTES: u64 = 1 << 30;

/// Length of a log key: a big-endian `u64` index, so sled's byte order is log order.
pub const LOG_KEY_BYTES: usize = 8;

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_ENCODED_BYTES)
}

/// Encodes `value` as a format-version byte, the payload's checksum and the bincode payload.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![FORMAT_CHECKED, 0, 0, 0, 0];
    options()
        .serialize_into(&mut bytes, value)
        .map_err(StoreError::Encode)?;
    let checksum = crc32fast::hash(&bytes[1 + CHECKSUM_BYTES..]);
    bytes[1..1 + CHECKSUM_BYTES].copy_from_slice(&checksum.to_le_bytes());
    Ok(bytes)
}

/// Decodes bytes written by [`encode`], after checking the payload against its checksum.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        None => Err(StoreError::EmptyValue),
        Some((&FORMAT_CHECKED, rest)) => {
            let Some((stored, payload)) = rest.split_first_chunk::<CHECKSUM_BYTES>() else {
                return Err(StoreError::Checksum {
                    detail: format!(
                        "the value is {} bytes, too short for its checksum",
                        bytes.len()
                    ),
                });
            };
            let stored = u32::from_le_bytes(*stored);
            let computed = crc32fast::hash(payload);
            if stored != computed {
                return Err(StoreError::Checksum {
                    detail: format!(
                        "a {}-byte value has checksum {computed:08x}, but {stored:08x} was \
                         written with it",
                        payload.len()
                    ),
                });
            }
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
        assert_eq!(bytes[0], FORMAT_CHECKED);
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
    fn a_flipped_bit_anywhere_after_the_version_is_caught() {
        let bytes = encode(&(42u64, "a gateway drain".to_owned())).unwrap();
        for position in 1..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[position] ^= 1 << bit;
                assert!(
                    decode::<(u64, String)>(&damaged).is_err(),
                    "bit {bit} of byte {position} flipped and the value still decoded"
                );
            }
        }
    }

    #[test]
    fn a_value_without_a_checksum_is_refused() {
        let mut bytes = vec![FORMAT_UNCHECKED];
        options().serialize_into(&mut bytes, &7u64).unwrap();
        assert!(matches!(
            decode::<u64>(&bytes),
            Err(StoreError::UnsupportedFormat { version: 1 })
        ));
        assert!(matches!(
            decode::<u64>(&[FORMAT_CHECKED, 1, 2]),
            Err(StoreError::Checksum { .. })
        ));
    }

    /// Snapshots and backups written while a deck was a `Vec<Rate>` must keep loading, and
    /// a packed deck must write the same bytes.
    #[test]
    fn a_packed_deck_encodes_as_the_rows_it_holds() {
        use trunkline_core::routing::{Deck, Rate};
        let rates: Vec<Rate> = (0..300_u64)
            .map(|n| Rate {
                prefix: format!("0{n}"),
                rate_micros_per_minute: n * 1_000_003,
                connect_fee_micros: n,
                description: if n % 3 == 0 {
                    "Mobile".into()
                } else {
                    String::new()
                },
                effective_from_ms: (n % 5 == 0).then_some(n * 7),
                effective_until_ms: (n % 7 == 0).then_some(u64::MAX - n),
            })
            .collect();
        let deck = Deck::from_rates(&rates).unwrap();
        let bytes = encode(&rates).unwrap();
        assert_eq!(encode(&deck).unwrap(), bytes);
        assert_eq!(decode::<Deck>(&bytes).unwrap(), deck);

        // A staged chunk was the rows with their file lines.
        let lined: Vec<(u64, Rate)> = rates
            .into_iter()
            .enumerate()
            .map(|(offset, rate)| (41 + offset as u64, rate))
            .collect();
        let bytes = encode(&lined).unwrap();
        let chunk = decode::<trunkline_core::routing::StagedChunk>(&bytes).unwrap();
        assert_eq!(encode(&chunk).unwrap(), bytes);
    }

    #[test]
    fn an_empty_value_is_an_error() {
        assert!(matches!(decode::<u64>(&[]), Err(StoreError::EmptyValue)));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&1u64).unwrap();
        bytes.push(0);
        // The checksum no longer matches; with a matching checksum bincode refuses them.
        assert!(matches!(
            decode::<u64>(&bytes),
            Err(StoreError::Checksum { .. })
        ));
        let mut payload = Vec::new();
        options().serialize_into(&mut payload, &1u64).unwrap();
        payload.push(0);
        let mut bytes = vec![FORMAT_CHECKED];
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
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
