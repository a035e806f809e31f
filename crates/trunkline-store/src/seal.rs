//! Encryption at rest: with keys, every value the store writes to sled is sealed with
//! AES-256-GCM before it leaves this crate, and opened (and authenticated) when read back.
//!
//! A sealed value is [`SEALED`], the key id (`u32`, little-endian), a random 96-bit nonce,
//! then the ciphertext with its 16-byte tag. The plaintext is the codec's value (format byte,
//! checksum, payload), so what is sealed is exactly what an unencrypted folder holds. The key
//! id lets values written under an older key be read after a new one is added: the last key of
//! the ring seals, every key of the ring opens.
//!
//! Keys come from the operator as text, one per line: `ID HEX` (a number, then 64 hex digits
//! for 32 bytes), blank lines and `#` comments ignored. Snapshots sent to followers are not
//! sealed (the peer transport protects them); only what is stored is.

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};

/// First byte of a sealed value; the codec's format bytes are small numbers, so a sealed value
/// is never mistaken for a plain one.
pub const SEALED: u8 = 0xA5;
const ID_BYTES: usize = 4;
const NONCE_BYTES: usize = 12;
const HEADER_BYTES: usize = 1 + ID_BYTES + NONCE_BYTES;
const KEY_BYTES: usize = 32;

/// The keys of a node: every one opens, the last one seals.
pub struct KeyRing {
    keys: Vec<(u32, Aes256Gcm)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u32> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

impl KeyRing {
    /// Reads `ID HEX` lines; says which line is wrong and why, never the key.
    pub fn parse(text: &str) -> Result<KeyRing, String> {
        let mut keys: Vec<(u32, Aes256Gcm)> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |reason: &str| format!("line {}: {reason}", number + 1);
            let mut words = line.split_whitespace();
            let (Some(id), Some(hex), None) = (words.next(), words.next(), words.next()) else {
                return Err(at(
                    "expected `ID HEX`: a key id, a space, then 64 hex digits",
                ));
            };
            let id: u32 = id
                .parse()
                .map_err(|_| at("the key id is not a number (0 to 4294967295)"))?;
            if keys.iter().any(|(known, _)| *known == id) {
                return Err(at(&format!("key id {id} is given twice")));
            }
            let bytes = decode_hex(hex)
                .filter(|bytes| bytes.len() == KEY_BYTES)
                .ok_or_else(|| at("the key is not 64 hex digits (32 bytes)"))?;
            let cipher =
                Aes256Gcm::new_from_slice(&bytes).map_err(|_| at("the key is not 32 bytes"))?;
            keys.push((id, cipher));
        }
        if keys.is_empty() {
            return Err("no key: give at least one `ID HEX` line".to_owned());
        }
        Ok(KeyRing { keys })
    }

    /// Reads a key file (`ID HEX` lines); the error names the file and the line.
    pub fn read(path: &std::path::Path) -> Result<KeyRing, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("can't read the key file {}: {error}", path.display()))?;
        KeyRing::parse(&text).map_err(|reason| format!("the key file {}: {reason}", path.display()))
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> u32 {
        self.keys.last().map_or(0, |(id, _)| *id)
    }

    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, String> {
        let Some((id, cipher)) = self.keys.last() else {
            return Err("no key to seal with".to_owned());
        };
        let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), plain)
            .map_err(|_| "AES-GCM refused to encrypt the value".to_owned())?;
        let mut sealed = Vec::with_capacity(HEADER_BYTES + ciphertext.len());
        sealed.push(SEALED);
        sealed.extend_from_slice(&id.to_le_bytes());
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens a sealed value; an error says which key was needed and whether it is missing
    /// or did not fit (a wrong key, or a damaged value).
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < HEADER_BYTES || sealed[0] != SEALED {
            return Err("the value is not sealed".to_owned());
        }
        let mut id = [0u8; ID_BYTES];
        id.copy_from_slice(&sealed[1..1 + ID_BYTES]);
        let id = u32::from_le_bytes(id);
        let Some((_, cipher)) = self.keys.iter().find(|(known, _)| *known == id) else {
            return Err(format!(
                "it was sealed with key {id}, which is not among the keys given"
            ));
        };
        let nonce = Nonce::from_slice(&sealed[1 + ID_BYTES..HEADER_BYTES]);
        cipher.decrypt(nonce, &sealed[HEADER_BYTES..]).map_err(|_| {
            format!("key {id} does not open it: a wrong key for this folder, or a damaged value")
        })
    }
}

/// The key id a sealed value was sealed with; `None` for a value that is not sealed.
pub fn key_id_of(value: &[u8]) -> Option<u32> {
    if value.len() < HEADER_BYTES || value[0] != SEALED {
        return None;
    }
    let mut id = [0u8; ID_BYTES];
    id.copy_from_slice(&value[1..1 + ID_BYTES]);
    Some(u32::from_le_bytes(id))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_1: &str = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const KEY_2: &str = "2 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn a_sealed_value_opens_and_hides_its_contents() {
        let ring = KeyRing::parse(KEY_1).unwrap();
        let plain = b"+14155550100 sip:gw.example.net";
        let sealed = ring.seal(plain).unwrap();
        assert_eq!(sealed[0], SEALED);
        assert!(!sealed.windows(12).any(|window| window == &plain[..12]));
        assert_eq!(ring.open(&sealed).unwrap(), plain);
        // A fresh nonce each time.
        assert_ne!(ring.seal(plain).unwrap(), sealed);
    }

    #[test]
    fn an_older_key_still_opens_and_the_newest_seals() {
        let old = KeyRing::parse(KEY_1).unwrap();
        let sealed_old = old.seal(b"old").unwrap();
        let rotated = KeyRing::parse(&format!("# rotated\n{KEY_1}\n\n{KEY_2}\n")).unwrap();
        assert_eq!(rotated.current_id(), 2);
        assert_eq!(rotated.open(&sealed_old).unwrap(), b"old");
        let sealed_new = rotated.seal(b"new").unwrap();
        assert!(old.open(&sealed_new).unwrap_err().contains("key 2"));
    }

    #[test]
    fn a_wrong_key_or_a_changed_byte_is_refused() {
        let ring = KeyRing::parse(KEY_1).unwrap();
        let mut sealed = ring.seal(b"value").unwrap();
        let wrong = KeyRing::parse(&KEY_2.replacen('2', "1", 1)).unwrap();
        assert!(wrong.open(&sealed).unwrap_err().contains("does not open"));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(ring.open(&sealed).is_err());
    }

    #[test]
    fn bad_key_text_says_which_line() {
        for (text, needle) in [
            ("", "no key"),
            ("1", "line 1"),
            ("x 00", "not a number"),
            ("1 0011", "64 hex"),
            (&format!("{KEY_1}\n{KEY_1}"), "twice"),
            (
                "1 zz02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "64 hex",
            ),
        ] {
            let error = KeyRing::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
    }
}
