//! The replicated inbound configuration: DIDs, devices and continuity plans.
//!
//! These types travel through the Raft log, so they are plain serialisable data with a
//! `validate` method each, like the routing model. Validation checks each value on its own;
//! checks that need the rest of the configuration (the device exists, no continuity loop) live
//! in `config.rs`. Errors name the field as the admin API spells it; where a list is involved
//! the reason says which element.
//!
//! Numbers are taken in E.164 form only (`+` then 8 to 15 digits, not starting with 0) and are
//! never normalised here: the admin API or trunkctl normalises with the tenant's dial plan
//! before proposing, so that the stored key of a DID is exactly what a proxy sends.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Shortest E.164 number accepted for a DID or a continuity target, in digits after the `+`.
pub const MIN_NUMBER_DIGITS: usize = 8;
/// Longest E.164 number, in digits after the `+`.
pub const MAX_NUMBER_DIGITS: usize = 15;
/// Longest tenant, edge or mailbox name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest address of record or SIP destination, in bytes.
pub const MAX_AOR_BYTES: usize = 256;
/// Longest contact, path entry or received address a proxy may report, in bytes.
pub const MAX_CONTACT_BYTES: usize = 512;
/// Most continuity targets in one plan.
pub const MAX_CONTINUITY_TARGETS: usize = 8;
/// Most SIP codes one plan may list as failures.
pub const MAX_FAILURE_CODES: usize = 32;
/// Shortest ring timeout or no-answer time: less and the phone hardly rings.
pub const MIN_RING_TIMEOUT_MS: u64 = 1_000;
/// Longest ring timeout or no-answer time.
pub const MAX_RING_TIMEOUT_MS: u64 = 300_000;
/// No-answer time of a plan made with [`Triggers::default`].
pub const DEFAULT_NO_ANSWER_MS: u64 = 20_000;
/// SIP codes that mean the callee is busy; they are governed by [`Triggers::busy`], never by
/// [`Triggers::failure_codes`].
pub const BUSY_CODES: [u16; 2] = [486, 600];

/// A public number that rings a customer's device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Did {
    /// E.164 with `+`, e.g. "+14155550100"; the key of the DID.
    pub number: String,
    pub tenant: String,
    /// The address of record of the device it rings; `None` for a number that only forwards
    /// (its continuity targets are then used straight away).
    pub device: Option<String>,
    /// Overrides the device's plan and the tenant default when set.
    pub continuity: Option<ContinuityPlan>,
}

/// An edge proxy devices register through. Declaring one is optional: it makes the edge
/// probed with OPTIONS like a carrier gateway (its name shares the gateways' namespace in the
/// health table), so calls skip bindings through an edge that is down. An edge that was never
/// declared counts as up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub name: String,
    /// Where its probes go.
    pub uri: crate::routing::SipUri,
    /// A disabled edge is not probed; its health stays as it was.
    pub enabled: bool,
    pub probe: crate::health::ProbeOverrides,
}

impl Edge {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        self.probe.validate().map_err(|error| error.within("probe"))
    }
}

/// A customer's phone or softphone, known by its address of record. The edges report where it
/// is registered; those bindings live in `Registrations`, not here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// `sip:user@domain` (or `sips:`), the key of the device.
    pub aor: String,
    pub tenant: String,
    /// A disabled device is never rung; its DIDs go straight to continuity.
    pub enabled: bool,
    /// Used for DIDs that ring this device and have no plan of their own.
    pub continuity: Option<ContinuityPlan>,
}

/// Where a call goes when the device cannot take it, and when that happens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuityPlan {
    /// Tried in order, one at a time.
    pub targets: Vec<ContinuityTarget>,
    pub triggers: Triggers,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuityTarget {
    pub destination: Destination,
    /// How long this target rings before the next one is tried.
    pub ring_timeout_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Destination {
    /// Another public number, E.164 with `+`. When it is itself a DID the call follows that
    /// DID's plan, which is why loops are refused.
    Number(String),
    /// A SIP URI, handed to the proxy as is.
    Sip(String),
    Voicemail {
        mailbox: String,
    },
}

/// Which ways a device attempt can end make the call move on to the continuity targets. Any
/// other ending stops the call with the device's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triggers {
    /// No live binding for the device (or the device is disabled).
    pub not_registered: bool,
    /// Ring the device this long, then move on; `None`: ring for the default ring time and
    /// then stop the call (480) rather than move on.
    pub no_answer_ms: Option<u64>,
    /// The device answered busy (486 or 600).
    pub busy: bool,
    /// Final codes other than busy that move the call on (408, 480 by default).
    pub failure_codes: BTreeSet<u16>,
    /// Every 5xx moves the call on, besides those in `failure_codes`. A flag rather than 100
    /// listed codes keeps plans small and readable.
    pub server_errors: bool,
    /// Every binding was through an edge that is down, or the attempt failed at transport
    /// level (no SIP answer at all).
    pub unreachable: bool,
}

impl Default for Triggers {
    fn default() -> Self {
        Triggers {
            not_registered: true,
            no_answer_ms: Some(DEFAULT_NO_ANSWER_MS),
            busy: false,
            failure_codes: BTreeSet::from([408, 480]),
            server_errors: true,
            unreachable: true,
        }
    }
}

impl Triggers {
    /// Whether a final `code` other than busy moves the call on.
    pub fn is_failure(&self, code: u16) -> bool {
        self.failure_codes.contains(&code) || (self.server_errors && (500..=599).contains(&code))
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(no_answer_ms) = self.no_answer_ms {
            validate_ring_timeout("continuity.triggers.no_answer_ms", no_answer_ms)?;
        }
        if self.failure_codes.len() > MAX_FAILURE_CODES {
            return Err(FieldError::new(
                "continuity.triggers.failure_codes",
                format!("must list at most {MAX_FAILURE_CODES} codes"),
            ));
        }
        for code in &self.failure_codes {
            if !(400..=699).contains(code) {
                return Err(FieldError::new(
                    "continuity.triggers.failure_codes",
                    format!("{code} is not a final failure code (400 to 699)"),
                ));
            }
            if BUSY_CODES.contains(code) {
                return Err(FieldError::new(
                    "continuity.triggers.failure_codes",
                    format!("{code} means busy: use triggers.busy instead"),
                ));
            }
        }
        Ok(())
    }
}

impl ContinuityPlan {
    /// E.164 numbers among the targets, in order.
    pub fn numbers(&self) -> impl Iterator<Item = &str> {
        self.targets
            .iter()
            .filter_map(|target| match &target.destination {
                Destination::Number(number) => Some(number.as_str()),
                _ => None,
            })
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        if self.targets.len() > MAX_CONTINUITY_TARGETS {
            return Err(FieldError::new(
                "continuity.targets",
                format!("must list at most {MAX_CONTINUITY_TARGETS} targets"),
            ));
        }
        for (index, target) in self.targets.iter().enumerate() {
            let at = |error: FieldError| {
                FieldError::new(
                    error.field().to_owned(),
                    format!("target {index}: {}", error.reason()),
                )
            };
            validate_ring_timeout("continuity.targets.ring_timeout_ms", target.ring_timeout_ms)
                .map_err(at)?;
            target.destination.validate().map_err(at)?;
        }
        self.triggers.validate()
    }
}

impl Destination {
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            Destination::Number(number) => {
                validate_number("continuity.targets.destination.number", number)
            }
            Destination::Sip(uri) => validate_sip_destination(uri),
            Destination::Voicemail { mailbox } => {
                validate_name("continuity.targets.destination.mailbox", mailbox)
            }
        }
    }
}

impl Did {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_number("number", &self.number)?;
        validate_name("tenant", &self.tenant)?;
        if let Some(device) = &self.device {
            validate_aor("device", device)?;
        }
        if let Some(plan) = &self.continuity {
            plan.validate()?;
            if plan.numbers().any(|number| number == self.number) {
                return Err(FieldError::new(
                    "continuity.targets",
                    format!(
                        "continuity loop: {} -> {} (a DID cannot forward to itself)",
                        self.number, self.number
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Device {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_aor("aor", &self.aor)?;
        validate_name("tenant", &self.tenant)?;
        if let Some(plan) = &self.continuity {
            plan.validate()?;
        }
        Ok(())
    }
}

fn validate_ring_timeout(field: &'static str, value_ms: u64) -> Result<(), FieldError> {
    if (MIN_RING_TIMEOUT_MS..=MAX_RING_TIMEOUT_MS).contains(&value_ms) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("must be {MIN_RING_TIMEOUT_MS} to {MAX_RING_TIMEOUT_MS} ms"),
        ))
    }
}

/// An E.164 number with `+`: `+` then 8 to 15 digits, the first not 0. No spaces, no dial-plan
/// forms: those are normalised before the request is proposed.
pub fn validate_number(field: &'static str, number: &str) -> Result<(), FieldError> {
    let valid = match number.strip_prefix('+') {
        Some(digits) => {
            (MIN_NUMBER_DIGITS..=MAX_NUMBER_DIGITS).contains(&digits.len())
                && digits.bytes().all(|byte| byte.is_ascii_digit())
                && !digits.starts_with('0')
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "must be E.164 with '+': '+' then {MIN_NUMBER_DIGITS} to {MAX_NUMBER_DIGITS} \
                 digits, not starting with 0 (got {number:?})"
            ),
        ))
    }
}

/// Tenant, edge and mailbox names: the routing model's name rule (1 to 64 ASCII letters,
/// digits, `-`, `_` or `.`, starting with a letter or digit).
pub fn validate_name(field: &'static str, name: &str) -> Result<(), FieldError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.starts_with(|character: char| character.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "must be 1 to 64 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit",
        ))
    }
}

/// An address of record: `sip:user@domain` or `sips:user@domain`, in lower-case canonical form
/// so that it can be compared byte for byte. The user part is letters, digits and
/// `-_.!~*'()+`; the domain a host name or IPv4 address with an optional port. Nothing else
/// (parameters, headers, display names) is allowed: the AOR is a key, not a route.
pub fn validate_aor(field: &'static str, aor: &str) -> Result<(), FieldError> {
    let invalid = |reason: &str| FieldError::new(field, format!("{reason} (got {aor:?})"));
    if aor.len() > MAX_AOR_BYTES {
        return Err(invalid("must be at most 256 bytes"));
    }
    let rest = aor
        .strip_prefix("sip:")
        .or_else(|| aor.strip_prefix("sips:"))
        .ok_or_else(|| invalid("must be sip:user@domain or sips:user@domain, lower case"))?;
    let (user, host_port) = rest
        .split_once('@')
        .ok_or_else(|| invalid("must have a user part: sip:user@domain"))?;
    let user_valid = !user.is_empty()
        && user.bytes().all(|byte| {
            byte.is_ascii_alphanumeric()
                || matches!(
                    byte,
                    b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')' | b'+'
                )
        });
    if !user_valid {
        return Err(invalid(
            "user part must be letters, digits or -_.!~*'()+ and not empty",
        ));
    }
    let (host, port) = match host_port.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    };
    if !is_host(host) {
        return Err(invalid(
            "domain must be a lower-case host name or an IPv4 address",
        ));
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(number) if number > 0) || port.starts_with('0') {
            return Err(invalid("port must be a number from 1 to 65535"));
        }
    }
    Ok(())
}

/// A lower-case host name: labels of letters, digits and `-`, joined by dots.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        })
}

/// A SIP continuity destination: a `sip:` or `sips:` URI of printable ASCII without spaces,
/// quotes or angle brackets, at most [`MAX_AOR_BYTES`].
fn validate_sip_destination(uri: &str) -> Result<(), FieldError> {
    validate_uri_text("continuity.targets.destination.sip", uri, MAX_AOR_BYTES)
}

/// A URI as a proxy reported it (contact, path entry): `sip:` or `sips:` (any case) and the
/// rest printable ASCII without spaces, quotes or angle brackets. It is handed back to the
/// proxy verbatim, so it is only checked for being one safe token, not parsed.
pub fn validate_uri_text(
    field: &'static str,
    uri: &str,
    max_bytes: usize,
) -> Result<(), FieldError> {
    let lower_scheme = uri.get(..5).map(str::to_ascii_lowercase);
    let rest = match lower_scheme.as_deref() {
        Some("sips:") => uri.get(5..),
        Some(prefix) if prefix.starts_with("sip:") => uri.get(4..),
        _ => None,
    };
    let valid = uri.len() <= max_bytes
        && rest.is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|byte| byte.is_ascii_graphic() && !matches!(byte, b'<' | b'>' | b'"'))
        });
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "must be a sip: or sips: URI of at most {max_bytes} bytes, without spaces, \
                 quotes or angle brackets"
            ),
        ))
    }
}
