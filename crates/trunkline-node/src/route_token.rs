//! Route tokens: what a call has tried, carried by the proxy between RouteOutbound and each
//! ReportLeg, so any node can answer the next report without per-call state in memory.
//!
//! A token is `base64url(version ‖ bincode(RouteToken) ‖ tag)` where the tag is the first 16
//! bytes of HMAC-SHA256 under the cluster's route token key (replicated, set once at cluster
//! initialisation). A proxy can read nothing useful from it and can't forge or alter it.
//!
//! The payload is bincode with variable-length integers ([`compact`]): a proxy carries the
//! token in every answer it reads, keeps it in the call's dialog and sends it back in every
//! report, and with fixed eight-byte lengths and counts half of it was zeros (a planned
//! call's token: 470 characters, 212 with varints). Tokens of the fixed-width formats (4, 5,
//! and inbound 2) issued before an upgrade are still read.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use trunkline_core::{cdr::LegRecord, policy::SourceKind, routing::Media, Error};

use crate::error::ClusterError;

/// 6: [`RouteToken`] in [`compact`] bincode. 5 was the same fields in fixed-width bincode
/// (still read, see [`decode_any`]); 4 ended before [`RouteToken::plan`] (still read too); 3
/// did not carry what the call's record needs, and 1 had no source or extension either.
const FORMAT_VERSION: u8 = 6;
/// Outbound tokens in fixed-width bincode, with the plan (5) and from before it (4): still
/// read, so a call routed before an upgrade reports its end afterwards.
const FIXED_FORMAT_VERSION: u8 = 5;
const PLANLESS_FORMAT_VERSION: u8 = 4;
/// The first byte of an inbound call's token ([`InboundToken`]) in [`compact`] bincode; 2 is
/// the same in fixed-width bincode, still read.
const INBOUND_FORMAT_VERSION: u8 = 7;
const FIXED_INBOUND_FORMAT_VERSION: u8 = 2;
/// Outbound tokens of older releases: refused with a word on why.
const OLD_FORMAT_VERSIONS: [u8; 2] = [1, 3];
const TAG_BYTES: usize = 16;
/// Longest token accepted, in characters.
pub const MAX_TOKEN_CHARS: usize = 4096;
/// A token older than this is refused: no call fails over after an hour.
pub const TOKEN_TTL_MS: u64 = 60 * 60 * 1000;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteToken {
    /// Binds the token to one call: the first 8 bytes of SHA-256 of its Call-ID.
    pub call_id_hash: u64,
    pub tenant: String,
    /// The number as dialled; each node normalises it again with the same dial plan.
    pub dialled: String,
    pub media: Media,
    /// Where the call comes from and the calling extension: a reroute meets the same calling
    /// policy as the first lookup.
    pub source: SourceKind,
    pub extension: Option<String>,
    /// The calling number as the lookup gave it, for the call's record.
    pub from: String,
    /// The node that answered the lookup.
    pub node: u64,
    /// Carriers that failed in this call, in order; they are never offered again.
    pub excluded_carriers: Vec<String>,
    /// Every leg reported so far, in order, with how it ended: the call's record is made
    /// from the token at its end, wherever that is reported.
    pub legs: Vec<LegRecord>,
    /// The first leg of the latest answer, and its price: what the call is billed at when it
    /// is answered.
    pub offered: Option<OfferedLeg>,
    /// Legs reported so far.
    pub attempts: u32,
    /// Seeds weighted selection, so every node orders equal carriers the same way.
    pub seed: u64,
    pub issued_ms: u64,
    /// The applied index of the routing state that issued the token: a node answering the
    /// next report first catches up to it, so a report never sees older configuration than
    /// the lookup did.
    pub applied_index: u64,
    /// A call routed with a plan (the proxy fails over on its own): every leg of the answer,
    /// in order and priced, so its end report can name the legs it tried and the one that
    /// answered. Empty otherwise. Last, so a version 4 token is this one without it.
    pub plan: Vec<OfferedLeg>,
}

/// The leg a proxy tries next, as priced when it was offered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedLeg {
    pub carrier: String,
    pub gateway: String,
    pub rate_micros_per_minute: u64,
    pub connect_fee_micros: u64,
}

/// Where an inbound call is in its plan. Kept by meaning, not by leg index: the plan is made
/// again at each report, and the device may have gained or lost contacts meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InboundStep {
    /// The device's contacts, rung together.
    DeviceFork,
    /// The continuity target at this position.
    Continuity(u32),
}

/// The state of an inbound call between RouteInbound and its leg reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundToken {
    pub call_id_hash: u64,
    pub did: String,
    /// The step the next report is about.
    pub step: InboundStep,
    pub attempts: u32,
    pub issued_ms: u64,
    /// As for [`RouteToken::applied_index`].
    pub applied_index: u64,
}

/// Either kind of token, as a leg report carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
// Decoded once a request and taken apart at once: a Box would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Token {
    Outbound(RouteToken),
    Inbound(InboundToken),
}

/// SHA-256 of the Call-ID, first 8 bytes: the call's identity in the token and its selection
/// seed.
pub fn call_id_hash(call_id: &str) -> u64 {
    let digest = Sha256::digest(call_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// The cluster's route token key, ready to sign: HMAC's keyed inner and outer states are
/// computed once (when the routing view is built), and each token clones them.
#[derive(Clone)]
pub struct TokenKey(HmacSha256);

impl TokenKey {
    pub fn new(key: &[u8]) -> Result<TokenKey, Error> {
        HmacSha256::new_from_slice(key)
            .map(TokenKey)
            .map_err(|_| Error::FailedPrecondition("the route token key is unusable".to_owned()))
    }

    fn mac(&self) -> HmacSha256 {
        self.0.clone()
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TokenKey(..)")
    }
}

pub fn encode(token: &RouteToken, key: &TokenKey) -> Result<String, Error> {
    seal(FORMAT_VERSION, token, key)
}

pub fn encode_inbound(token: &InboundToken, key: &TokenKey) -> Result<String, Error> {
    seal(INBOUND_FORMAT_VERSION, token, key)
}

/// The bincode of current tokens: integers and lengths as varints (a string's length, a
/// count, an attempt number: one byte instead of eight), little-endian, nothing left over
/// after the token, and no value read longer than a token can be.
fn compact() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_TOKEN_CHARS as u64)
}

fn seal<T: Serialize>(version: u8, token: &T, key: &TokenKey) -> Result<String, Error> {
    use bincode::Options;
    let mut bytes = vec![version];
    compact()
        .serialize_into(&mut bytes, token)
        .map_err(|error| {
            Error::FailedPrecondition(format!("can't encode a route token: {error}"))
        })?;
    let mut mac = key.mac();
    mac.update(&bytes);
    let tag = mac.finalize().into_bytes();
    bytes.extend_from_slice(&tag[..TAG_BYTES]);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn invalid(reason: &str) -> ClusterError {
    ClusterError::Domain(Error::invalid("route_token", reason))
}

/// The authenticated body of a token: its version byte, then the payload.
fn open(text: &str, key: &TokenKey) -> Result<Vec<u8>, ClusterError> {
    if text.is_empty() {
        return Err(invalid(
            "is required: pass the token from RouteOutbound, RouteInbound or the last ReportLeg",
        ));
    }
    if text.len() > MAX_TOKEN_CHARS {
        return Err(invalid("is too long to be a route token"));
    }
    let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| invalid("is not a route token (not base64url)"))?;
    if bytes.len() <= 1 + TAG_BYTES {
        return Err(invalid("is too short to be a route token"));
    }
    let tag = bytes.split_off(bytes.len() - TAG_BYTES);
    let mut mac = key.mac();
    mac.update(&bytes);
    mac.verify_truncated_left(&tag).map_err(|_| {
        invalid("failed authentication: it was altered or issued by another cluster")
    })?;
    Ok(bytes)
}

pub fn decode(text: &str, key: &TokenKey) -> Result<RouteToken, ClusterError> {
    match decode_any(text, key)? {
        Token::Outbound(token) => Ok(token),
        Token::Inbound(_) => Err(invalid("belongs to an inbound call")),
    }
}

/// An outbound or an inbound call's token.
///
/// A token this cluster issued (its tag checks) in a format this node doesn't know was
/// issued by a newer release, during a rolling upgrade: refused as not applied (gRPC
/// `UNAVAILABLE`, HTTP 503), so a client or a proxy's node walk sends the report to another
/// node, an upgraded one, instead of dropping it as malformed.
pub fn decode_any(text: &str, key: &TokenKey) -> Result<Token, ClusterError> {
    use bincode::Options;
    let body = open(text, key)?;
    let Some((&version, payload)) = body.split_first() else {
        return Err(invalid("is too short to be a route token"));
    };
    let decoded = match version {
        FORMAT_VERSION => compact().deserialize(payload).map(Token::Outbound),
        INBOUND_FORMAT_VERSION => compact().deserialize(payload).map(Token::Inbound),
        FIXED_FORMAT_VERSION => bincode::deserialize(payload).map(Token::Outbound),
        PLANLESS_FORMAT_VERSION => {
            // Version 4 is version 5 without the plan, its last field: bincode writes a
            // field after another and an empty Vec as its length, a u64 of 0.
            let mut payload = payload.to_vec();
            payload.extend_from_slice(&0u64.to_le_bytes());
            bincode::deserialize(&payload).map(Token::Outbound)
        }
        FIXED_INBOUND_FORMAT_VERSION => bincode::deserialize(payload).map(Token::Inbound),
        version if OLD_FORMAT_VERSIONS.contains(&version) => {
            return Err(invalid(
                "was issued by an older release: start the call again with RouteOutbound",
            ))
        }
        version => {
            return Err(ClusterError::NotApplied {
                message: format!(
                    "route_token: was issued by a newer release than this node's (format \
                     {version}): send the report to an upgraded node"
                ),
                leader_api_addr: None,
            })
        }
    };
    decoded.map_err(|_| invalid("is malformed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> RouteToken {
        RouteToken {
            call_id_hash: call_id_hash("abc@proxy"),
            tenant: "acme".into(),
            dialled: "+442071234567".into(),
            media: Media::Voice,
            source: SourceKind::Voicemail,
            extension: Some("2001".into()),
            from: "+12125550100".into(),
            node: 2,
            excluded_carriers: vec!["alpha".into()],
            legs: vec![LegRecord {
                carrier: "alpha".into(),
                gateway: "alpha-1".into(),
                sip_code: 503,
                transport: None,
            }],
            offered: Some(OfferedLeg {
                carrier: "beta".into(),
                gateway: "beta-1".into(),
                rate_micros_per_minute: 9_000,
                connect_fee_micros: 0,
            }),
            attempts: 1,
            seed: 7,
            issued_ms: 1_000,
            applied_index: 12,
            plan: Vec::new(),
        }
    }

    /// A call routed with a plan of two carriers.
    fn planned() -> RouteToken {
        RouteToken {
            plan: vec![
                OfferedLeg {
                    carrier: "alpha".into(),
                    gateway: "alpha-1".into(),
                    rate_micros_per_minute: 7_000,
                    connect_fee_micros: 100,
                },
                OfferedLeg {
                    carrier: "beta".into(),
                    gateway: "beta-1".into(),
                    rate_micros_per_minute: 9_000,
                    connect_fee_micros: 0,
                },
            ],
            ..token()
        }
    }

    #[test]
    fn a_token_round_trips_under_its_key() {
        let key = TokenKey::new(&[3u8; 32]).unwrap();
        let text = encode(&token(), &key).unwrap();
        assert_eq!(decode(&text, &key).unwrap(), token());
    }

    #[test]
    fn a_plans_legs_round_trip_and_a_token_from_before_plans_is_still_read() {
        let key = TokenKey::new(&[3u8; 32]).unwrap();
        let planned = planned();
        let text = encode(&planned, &key).unwrap();
        assert_eq!(decode(&text, &key).unwrap(), planned);

        // A version 4 token: the same fields in fixed-width bincode, without the plan.
        let mut payload = bincode::serialize(&token()).unwrap();
        assert_eq!(payload.split_off(payload.len() - 8), [0u8; 8]);
        let old = sealed_as(PLANLESS_FORMAT_VERSION, payload, &key);
        assert_eq!(decode(&old, &key).unwrap(), token());
    }

    /// A token's payload as this release writes it.
    fn compact_bytes<T: Serialize>(token: &T) -> Vec<u8> {
        use bincode::Options;
        compact().serialize(token).unwrap()
    }

    /// A token as a release that wrote `version` sealed it, from its payload's bytes.
    fn sealed_as(version: u8, payload: Vec<u8>, key: &TokenKey) -> String {
        let mut bytes = vec![version];
        bytes.extend_from_slice(&payload);
        let mut mac = key.mac();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes()[..TAG_BYTES]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn tokens_are_written_compact_and_fixed_width_ones_are_still_read() {
        let key = TokenKey::new(&[3u8; 32]).unwrap();
        let planned = RouteToken {
            issued_ms: 1_796_000_000_000,
            ..planned()
        };
        let short = encode(&planned, &key).unwrap();
        let fixed = sealed_as(
            FIXED_FORMAT_VERSION,
            bincode::serialize(&planned).unwrap(),
            &key,
        );
        // What a proxy carries and sends back with every report: lengths and small numbers
        // in a byte each, not eight.
        assert!(
            short.len() * 10 < fixed.len() * 6,
            "compact {} characters, fixed-width {}",
            short.len(),
            fixed.len()
        );
        assert_eq!(decode(&short, &key).unwrap(), planned);
        assert_eq!(decode(&fixed, &key).unwrap(), planned);

        let inbound = InboundToken {
            call_id_hash: call_id_hash("in@proxy"),
            did: "+14155550100".into(),
            step: InboundStep::DeviceFork,
            attempts: 0,
            issued_ms: 1_796_000_000_000,
            applied_index: 9,
        };
        let fixed = sealed_as(
            FIXED_INBOUND_FORMAT_VERSION,
            bincode::serialize(&inbound).unwrap(),
            &key,
        );
        let short = encode_inbound(&inbound, &key).unwrap();
        assert!(short.len() < fixed.len());
        for text in [short, fixed] {
            assert_eq!(
                decode_any(&text, &key).unwrap(),
                Token::Inbound(inbound.clone())
            );
        }

        // A compact body with a byte left over is not a token this node wrote.
        let mut payload = compact_bytes(&planned);
        payload.push(0);
        let error = decode(&sealed_as(FORMAT_VERSION, payload, &key), &key).unwrap_err();
        assert!(error.to_string().contains("malformed"), "{error}");
    }

    #[test]
    fn an_altered_or_foreign_token_is_refused() {
        let key = TokenKey::new(&[3u8; 32]).unwrap();
        let text = encode(&token(), &key).unwrap();
        let error = decode(&text, &TokenKey::new(&[4u8; 32]).unwrap()).unwrap_err();
        assert!(
            error.to_string().contains("failed authentication"),
            "{error}"
        );

        // Flip one bit of the body: the excluded carrier list, say.
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&text)
            .unwrap();
        bytes[10] ^= 1;
        let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert!(decode(&altered, &key)
            .unwrap_err()
            .to_string()
            .contains("failed authentication"));

        for garbage in ["", "%%%", "AAAA", &"A".repeat(MAX_TOKEN_CHARS + 1)] {
            let error = decode(garbage, &key).unwrap_err();
            assert!(error.to_string().starts_with("route_token: "), "{error}");
        }
    }

    #[test]
    fn a_token_of_a_newer_release_is_sent_elsewhere_and_one_of_an_older_is_refused() {
        let key = TokenKey::new(&[3u8; 32]).unwrap();
        let payload = compact_bytes(&token());
        // Tagged under this cluster's key, in a format this release doesn't write: a newer
        // node issued it. Refused as not applied, so a client or a proxy's node walk takes
        // it to another node (gRPC UNAVAILABLE with the not-applied mark: HTTP 503).
        for version in [8, 0xff] {
            let error = decode(&sealed_as(version, payload.clone(), &key), &key).unwrap_err();
            assert!(
                matches!(error, ClusterError::NotApplied { .. }),
                "{error:?}"
            );
            assert!(error.to_string().contains("newer release"), "{error}");
            let status = tonic::Status::from(error);
            assert_eq!(status.code(), tonic::Code::Unavailable);
            assert_eq!(
                status
                    .metadata()
                    .get(trunkline_api::v1::metadata::RETRY_HEADER)
                    .and_then(|value| value.to_str().ok()),
                Some(trunkline_api::v1::metadata::RETRY_NOT_APPLIED)
            );
        }
        // Not under this cluster's key: not a token of any release, refused as invalid.
        let foreign = sealed_as(8, payload.clone(), &TokenKey::new(&[4u8; 32]).unwrap());
        let status = tonic::Status::from(decode(&foreign, &key).unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        // A format of an older release: no node reads it any more.
        let status = tonic::Status::from(decode(&sealed_as(3, payload, &key), &key).unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("older release"), "{status:?}");
    }

    #[test]
    fn inbound_tokens_round_trip_and_are_told_apart() {
        let key = TokenKey::new(&[3u8; 32]).unwrap();
        let inbound = InboundToken {
            call_id_hash: call_id_hash("in@proxy"),
            did: "+14155550100".into(),
            step: InboundStep::Continuity(1),
            attempts: 2,
            issued_ms: 5,
            applied_index: 9,
        };
        let text = encode_inbound(&inbound, &key).unwrap();
        assert_eq!(decode_any(&text, &key).unwrap(), Token::Inbound(inbound));
        let error = decode(&text, &key).unwrap_err();
        assert!(error.to_string().contains("inbound"), "{error}");
        let outbound = encode(&token(), &key).unwrap();
        assert_eq!(
            decode_any(&outbound, &key).unwrap(),
            Token::Outbound(token())
        );
    }

    #[test]
    fn call_ids_hash_apart() {
        assert_ne!(call_id_hash("a"), call_id_hash("b"));
        assert_eq!(call_id_hash("a"), call_id_hash("a"));
    }
}
