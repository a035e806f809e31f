//! The replicated routing configuration: tenants, carriers, gateways and rate-deck rows.
//!
//! These types travel through the Raft log and live in every node's state, so they are plain
//! serialisable data with a `validate` method each. Validation runs before a change is
//! proposed and again when it is applied; its errors name the field at fault so that the admin
//! API can say exactly what to fix. Runtime state that changes without an operator (gateway
//! health, current call counts) is kept out of these types and handed to selection separately.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::policy::CallingPolicy;
use crate::usage::LimitsConfig;
use crate::FieldError;

/// Longest name of a tenant, carrier or gateway, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most digits a rate-deck prefix may have: E.164 numbers have at most 15.
pub const MAX_PREFIX_DIGITS: usize = 15;
/// Longest rate description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 256;
/// Longest SIP URI accepted for a gateway, in bytes.
pub const MAX_SIP_URI_BYTES: usize = 256;
/// Longest tech prefix, in characters.
pub const MAX_TECH_PREFIX_CHARS: usize = 16;
/// Longest extension a dial plan may declare. Extensions must stay shorter than the shortest
/// public number form (NANP 7-digit local dialling), or the two would be ambiguous.
pub const MAX_EXTENSION_DIGITS: u8 = 6;
/// Most emergency numbers one dial plan may list.
pub const MAX_EMERGENCY_NUMBERS: usize = 8;
/// Most carriers one tenant may list as allowed.
pub const MAX_ALLOWED_CARRIERS: usize = 1_000;
/// Most final SIP codes one carrier may list.
pub const MAX_FINAL_CODES: usize = 300;

/// How a tenant's users dial, used to turn what they dial into E.164.
///
/// NANP plans (`country_code` "1") get the full North American rules (7, 10 and 11-digit
/// forms, area and exchange code checks). Other plans accept `+` forms, the international
/// prefix, national-prefix forms (the national prefix is replaced by the country code) and
/// extensions, with no per-country length rules beyond E.164's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialPlan {
    /// The tenant's own country calling code, digits only ("1" for NANP, "44" for the UK).
    pub country_code: String,
    /// Area code prepended to 7-digit local numbers (NANP only). Without it, 7-digit numbers
    /// are refused rather than guessed.
    pub home_area_code: Option<String>,
    /// What users dial before a country code for an international call ("011" in NANP).
    pub international_prefix: String,
    /// What users dial before a national number ("1" in NANP, "0" in most of Europe); empty
    /// when the country has none. A NANP plan must use "1".
    pub national_prefix: String,
    /// Short codes that reach emergency services in this plan ("911", "933" in NANP). They are
    /// recognised before anything else and never treated as extensions.
    pub emergency_numbers: BTreeSet<String>,
    /// Shortest internal extension, in digits.
    pub extension_min_digits: u8,
    /// Longest internal extension, in digits; at most [`MAX_EXTENSION_DIGITS`].
    pub extension_max_digits: u8,
}

impl DialPlan {
    /// The defaults for a tenant in `country_code`: NANP's for "1" (or none given), the
    /// common international ones otherwise (international prefix 00, national prefix 0,
    /// emergency 112). The admin API and trunkctl fill unset dial-plan fields from here.
    pub fn defaults_for(country_code: &str) -> Self {
        if country_code.is_empty() || country_code == "1" {
            return DialPlan::nanp();
        }
        DialPlan {
            country_code: country_code.to_owned(),
            home_area_code: None,
            international_prefix: "00".to_owned(),
            national_prefix: "0".to_owned(),
            emergency_numbers: BTreeSet::from(["112".to_owned()]),
            ..DialPlan::nanp()
        }
    }

    /// The North American Numbering Plan as dialled from the US and Canada.
    pub fn nanp() -> Self {
        DialPlan {
            country_code: "1".to_owned(),
            home_area_code: None,
            international_prefix: "011".to_owned(),
            national_prefix: "1".to_owned(),
            emergency_numbers: ["911", "933"].into_iter().map(str::to_owned).collect(),
            extension_min_digits: 2,
            extension_max_digits: 6,
        }
    }

    /// Whether this plan follows the North American Numbering Plan rules.
    pub fn is_nanp(&self) -> bool {
        self.country_code == "1"
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        let country_code = self.country_code.as_str();
        if !is_digits(country_code, 1, 3) || country_code.starts_with('0') {
            return Err(FieldError::new(
                "dial_plan.country_code",
                "must be 1 to 3 digits not starting with 0",
            ));
        }
        if let Some(area_code) = &self.home_area_code {
            if !self.is_nanp() {
                return Err(FieldError::new(
                    "dial_plan.home_area_code",
                    "is only used by NANP plans (country code 1)",
                ));
            }
            if !is_nanp_area_code(area_code) {
                return Err(FieldError::new(
                    "dial_plan.home_area_code",
                    "must be a NANP area code: 3 digits, the first 2 to 9, not N11",
                ));
            }
        }
        if !is_digits(&self.international_prefix, 1, 4) {
            return Err(FieldError::new(
                "dial_plan.international_prefix",
                "must be 1 to 4 digits",
            ));
        }
        if !self.national_prefix.is_empty() && !is_digits(&self.national_prefix, 1, 2) {
            return Err(FieldError::new(
                "dial_plan.national_prefix",
                "must be empty or 1 to 2 digits",
            ));
        }
        if self.international_prefix == self.national_prefix {
            return Err(FieldError::new(
                "dial_plan.national_prefix",
                "must differ from the international prefix",
            ));
        }
        if self.is_nanp() && self.national_prefix != "1" {
            return Err(FieldError::new(
                "dial_plan.national_prefix",
                "must be \"1\" in a NANP plan",
            ));
        }
        if self.emergency_numbers.is_empty() {
            return Err(FieldError::new(
                "dial_plan.emergency_numbers",
                "must list at least one emergency number",
            ));
        }
        if self.emergency_numbers.len() > MAX_EMERGENCY_NUMBERS {
            return Err(FieldError::new(
                "dial_plan.emergency_numbers",
                format!("must list at most {MAX_EMERGENCY_NUMBERS} numbers"),
            ));
        }
        if self
            .emergency_numbers
            .iter()
            .any(|number| !is_digits(number, 2, 6))
        {
            return Err(FieldError::new(
                "dial_plan.emergency_numbers",
                "each must be 2 to 6 digits",
            ));
        }
        if self.extension_min_digits < 1 || self.extension_min_digits > self.extension_max_digits {
            return Err(FieldError::new(
                "dial_plan.extension_min_digits",
                "must be at least 1 and at most extension_max_digits",
            ));
        }
        if self.extension_max_digits > MAX_EXTENSION_DIGITS {
            return Err(FieldError::new(
                "dial_plan.extension_max_digits",
                format!(
                    "must be at most {MAX_EXTENSION_DIGITS}, shorter than any public number form"
                ),
            ));
        }
        Ok(())
    }
}

impl Default for DialPlan {
    fn default() -> Self {
        DialPlan::nanp()
    }
}

/// How a tenant's eligible carriers are put in order. See `select_route` for the exact rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Cheapest rate first, then cheapest connect fee.
    LeastCost,
    /// The tenant's `allowed_carriers` order.
    Priority,
    /// Random by weight among carriers of equal priority.
    Weighted,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LeastCost => "least-cost",
            Strategy::Priority => "priority",
            Strategy::Weighted => "weighted",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = FieldError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "least-cost" | "least_cost" => Ok(Strategy::LeastCost),
            "priority" => Ok(Strategy::Priority),
            "weighted" => Ok(Strategy::Weighted),
            _ => Err(FieldError::new(
                "strategy",
                "must be one of least-cost, priority, weighted",
            )),
        }
    }
}

/// Something a carrier can do that some calls or tenants require.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// T.38 fax relay; required for fax calls.
    T38,
    /// SIP over TLS; a tenant that requires it is only routed to TLS gateways.
    Tls,
    /// Encrypted media (SRTP).
    Srtp,
    /// Takes emergency calls (911, 112) as dialled; only such carriers get them.
    Emergency,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::T38 => "t38",
            Capability::Tls => "tls",
            Capability::Srtp => "srtp",
            Capability::Emergency => "emergency",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Capability {
    type Err = FieldError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "t38" => Ok(Capability::T38),
            "tls" => Ok(Capability::Tls),
            "srtp" => Ok(Capability::Srtp),
            "emergency" => Ok(Capability::Emergency),
            _ => Err(FieldError::new(
                "capability",
                "must be one of t38, tls, srtp, emergency",
            )),
        }
    }
}

/// A customer account whose users place calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    pub dial_plan: DialPlan,
    pub strategy: Strategy,
    /// Carriers this tenant may use, in the tenant's order of preference (the order the
    /// `Priority` strategy follows). Empty means every carrier.
    pub allowed_carriers: Vec<String>,
    /// Capabilities every carrier used for this tenant must have (e.g. `tls` and `srtp` for a
    /// tenant under HIPAA-style rules).
    pub required_capabilities: BTreeSet<Capability>,
    /// Which calls the tenant's users may make ([`CallingPolicy`]); empty allows every call.
    pub policy: CallingPolicy,
    /// Usage limits ([`LimitsConfig`]); none by default, and then lookups never wait on
    /// admission.
    pub limits: LimitsConfig,
}

impl Tenant {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        self.dial_plan.validate()?;
        if self.allowed_carriers.len() > MAX_ALLOWED_CARRIERS {
            return Err(FieldError::new(
                "allowed_carriers",
                format!("must list at most {MAX_ALLOWED_CARRIERS} carriers"),
            ));
        }
        let mut seen = BTreeSet::new();
        for carrier in &self.allowed_carriers {
            validate_name("allowed_carriers", carrier)?;
            if !seen.insert(carrier.as_str()) {
                return Err(FieldError::new(
                    "allowed_carriers",
                    format!("lists {carrier:?} twice"),
                ));
            }
        }
        if self.required_capabilities.contains(&Capability::Emergency) {
            return Err(FieldError::new(
                "required_capabilities",
                "emergency is what routing looks for on a carrier for emergency calls; a \
                 tenant's other calls can't require it",
            ));
        }
        self.policy.validate(&self.dial_plan)?;
        self.limits.validate()
    }

    /// Whether the tenant may use the named carrier.
    pub fn allows_carrier(&self, carrier: &str) -> bool {
        self.allowed_carriers.is_empty() || self.allowed_carriers.iter().any(|name| name == carrier)
    }
}

/// How a carrier wants the number written in the request it receives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    /// Leading digits of the E.164 number to remove (1 turns "14155550100" into
    /// "4155550100").
    pub strip_digits: u8,
    /// Prepended after stripping; carriers use it to tell customers apart on a shared trunk.
    /// Digits, `#` and `*` only, because it ends up in the request URI.
    pub tech_prefix: String,
    /// Send the number with a leading `+` (after the tech prefix). Needs `strip_digits` 0,
    /// since a `+` number must be complete.
    pub plus: bool,
}

impl Translation {
    pub fn validate(&self) -> Result<(), FieldError> {
        if usize::from(self.strip_digits) > MAX_PREFIX_DIGITS {
            return Err(FieldError::new(
                "translation.strip_digits",
                format!("must be at most {MAX_PREFIX_DIGITS}"),
            ));
        }
        if self.tech_prefix.chars().count() > MAX_TECH_PREFIX_CHARS
            || !self
                .tech_prefix
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b'#' || byte == b'*')
        {
            return Err(FieldError::new(
                "translation.tech_prefix",
                format!("must be at most {MAX_TECH_PREFIX_CHARS} of the characters 0-9 # *"),
            ));
        }
        if self.plus && self.strip_digits != 0 {
            return Err(FieldError::new(
                "translation.plus",
                "a '+' number must keep every digit; set strip_digits to 0",
            ));
        }
        Ok(())
    }

    /// The dial string for `digits` (an E.164 number without `+`), or `None` when stripping
    /// would leave no digits.
    pub fn apply(&self, digits: &str) -> Option<String> {
        let kept = digits.get(usize::from(self.strip_digits)..)?;
        if kept.is_empty() {
            return None;
        }
        let mut dial_string =
            String::with_capacity(self.tech_prefix.len() + usize::from(self.plus) + kept.len());
        dial_string.push_str(&self.tech_prefix);
        if self.plus {
            dial_string.push('+');
        }
        dial_string.push_str(kept);
        Some(dial_string)
    }
}

/// A provider that terminates calls, reached through one or more gateways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carrier {
    pub name: String,
    pub capabilities: BTreeSet<Capability>,
    pub translation: Translation,
    /// Failure codes (400 to 699) that this carrier uses as the callee's final answer, so a
    /// leg ending with one is not rerouted to another carrier (e.g. a carrier that answers
    /// 503 when the callee's number is out of service).
    pub final_codes: BTreeSet<u16>,
    /// A disabled carrier is never routed to; its configuration and deck are kept.
    pub enabled: bool,
}

impl Carrier {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        self.translation.validate()?;
        if self.final_codes.len() > MAX_FINAL_CODES {
            return Err(FieldError::new(
                "final_codes",
                format!("must list at most {MAX_FINAL_CODES} codes"),
            ));
        }
        if let Some(code) = self
            .final_codes
            .iter()
            .find(|code| !(400..=699).contains(*code))
        {
            return Err(FieldError::new(
                "final_codes",
                format!("{code} is not a SIP failure code (400 to 699)"),
            ));
        }
        Ok(())
    }
}

/// URI scheme of a gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SipScheme {
    Sip,
    /// SIP over TLS end to end; its transport is always TLS.
    Sips,
}

/// How the proxy reaches a gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A gateway address: `sip:host[:port][;transport=udp|tcp|tls]` or `sips:host[:port]`.
///
/// The parser is strict on purpose: the URI is handed to SIP proxies verbatim, so anything it
/// does not understand (a user part, other parameters, spaces) is refused instead of passed on.
/// The scheme, host and transport are case-insensitive and kept in lower case; `sips` always
/// means TLS (`sips:...;transport=tcp` and `;transport=tls` are accepted and printed without
/// the parameter, `;transport=udp` is refused). The string form is the serialised form, so a
/// stored URI is always one that parses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SipUri {
    scheme: SipScheme,
    /// Host name, dotted IPv4 address or bracketed IPv6 address, lower case.
    host: String,
    port: Option<u16>,
    transport: Transport,
}

impl SipUri {
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let invalid = |reason: &str| FieldError::new("uri", reason);
        if text.len() > MAX_SIP_URI_BYTES {
            return Err(invalid("is longer than 256 bytes"));
        }
        let (scheme, rest) = match text.split_once(':') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sip") => (SipScheme::Sip, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sips") => (SipScheme::Sips, rest),
            _ => return Err(invalid("must start with sip: or sips:")),
        };
        if rest.contains('@') {
            return Err(invalid("must not have a user part"));
        }
        let (host_port, parameters) = match rest.split_once(';') {
            Some((host_port, parameters)) => (host_port, Some(parameters)),
            None => (rest, None),
        };
        let (host, port_text) = split_host_port(host_port).ok_or_else(|| {
            invalid("host must be a host name, an IPv4 address or a bracketed IPv6 address")
        })?;
        let host = host.to_ascii_lowercase();
        if !is_valid_host(&host) {
            return Err(invalid(
                "host must be a host name, an IPv4 address or a bracketed IPv6 address",
            ));
        }
        let port = match port_text {
            None => None,
            Some(port_text) => Some(
                parse_port(port_text)
                    .ok_or_else(|| invalid("port must be a number from 1 to 65535"))?,
            ),
        };
        let mut transport = None;
        if let Some(parameters) = parameters {
            for parameter in parameters.split(';') {
                let Some((name, value)) = parameter.split_once('=') else {
                    return Err(invalid("only the transport parameter is allowed"));
                };
                if !name.eq_ignore_ascii_case("transport") {
                    return Err(invalid("only the transport parameter is allowed"));
                }
                if transport.is_some() {
                    return Err(invalid("transport is given twice"));
                }
                transport = Some(match value.to_ascii_lowercase().as_str() {
                    "udp" => Transport::Udp,
                    "tcp" => Transport::Tcp,
                    "tls" => Transport::Tls,
                    _ => return Err(invalid("transport must be udp, tcp or tls")),
                });
            }
        }
        let transport = match (scheme, transport) {
            (SipScheme::Sip, transport) => transport.unwrap_or(Transport::Udp),
            (SipScheme::Sips, Some(Transport::Udp)) => {
                return Err(invalid("sips: cannot use transport=udp"));
            }
            (SipScheme::Sips, _) => Transport::Tls,
        };
        Ok(SipUri {
            scheme,
            host,
            port,
            transport,
        })
    }

    pub fn scheme(&self) -> SipScheme {
        self.scheme
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The Request-URI of a call to `user` (a dial string) at this gateway:
    /// `sip:+442071234567@gw.example:5060;transport=tcp`. Characters a SIP user part can't
    /// hold as they are (`#` of a tech prefix, for one) are %-escaped (RFC 3261, 25.1).
    pub fn request_uri(&self, user: &str) -> String {
        let mut uri = String::with_capacity(self.host.len() + user.len() + 24);
        // Writing to a String can't fail.
        let _ = self.write(Some(user), &mut uri);
        uri
    }

    /// The URI into `out`, with `user` (escaped as RFC 3261's `user` allows) when given:
    /// built with pushes, not the formatting machinery, because every leg of every answer
    /// writes two.
    fn write<W: fmt::Write>(&self, user: Option<&str>, out: &mut W) -> fmt::Result {
        out.write_str(match self.scheme {
            SipScheme::Sip => "sip:",
            SipScheme::Sips => "sips:",
        })?;
        if let Some(user) = user {
            for byte in user.bytes() {
                let plain = byte.is_ascii_alphanumeric()
                    || matches!(
                        byte,
                        b'-' | b'_'
                            | b'.'
                            | b'!'
                            | b'~'
                            | b'*'
                            | b'\''
                            | b'('
                            | b')'
                            | b'&'
                            | b'='
                            | b'+'
                            | b'$'
                            | b','
                            | b';'
                            | b'?'
                            | b'/'
                    );
                if plain {
                    out.write_char(char::from(byte))?;
                } else {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    out.write_char('%')?;
                    out.write_char(char::from(HEX[usize::from(byte >> 4)]))?;
                    out.write_char(char::from(HEX[usize::from(byte & 0x0f)]))?;
                }
            }
            out.write_char('@')?;
        }
        out.write_str(&self.host)?;
        if let Some(port) = self.port {
            out.write_char(':')?;
            let mut digits = [0u8; 5];
            let mut rest = port;
            let mut start = digits.len();
            loop {
                start -= 1;
                // A digit: 0 to 9.
                digits[start] = b'0' + (rest % 10) as u8;
                rest /= 10;
                if rest == 0 {
                    break;
                }
            }
            for &digit in &digits[start..] {
                out.write_char(char::from(digit))?;
            }
        }
        if self.scheme == SipScheme::Sip && self.transport != Transport::Udp {
            out.write_str(";transport=")?;
            out.write_str(self.transport.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(None, formatter)
    }
}

impl FromStr for SipUri {
    type Err = FieldError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SipUri::parse(text)
    }
}

impl TryFrom<String> for SipUri {
    type Error = FieldError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        SipUri::parse(&text)
    }
}

impl From<SipUri> for String {
    fn from(uri: SipUri) -> Self {
        uri.to_string()
    }
}

/// Splits `host[:port]` or `[v6]:port`; `None` when brackets are unbalanced.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if text.starts_with('[') {
        let end = text.find(']')?;
        let (host, rest) = text.split_at(end + 1);
        match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => Some((host, Some(port))),
            None => Some((text, None)),
        }
    }
}

fn parse_port(text: &str) -> Option<u16> {
    if !is_digits(text, 1, 5) {
        return None;
    }
    text.parse::<u16>().ok().filter(|port| *port != 0)
}

fn is_valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|address| address.parse::<Ipv6Addr>().is_ok());
    }
    if host
        .bytes()
        .all(|byte| byte.is_ascii_digit() || byte == b'.')
    {
        return host.parse::<Ipv4Addr>().is_ok();
    }
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let mut labels = 0;
    let mut last_label_numeric = false;
    for label in host.split('.') {
        let bytes = label.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes
                .iter()
                .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return false;
        }
        labels += 1;
        last_label_numeric = bytes.iter().all(u8::is_ascii_digit);
    }
    labels > 0 && !last_label_numeric
}

/// A gateway's health as the health checks and operators see it. Kept apart from [`Gateway`]
/// because it changes without an operator; a gateway absent from the health map is `Up`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayHealth {
    #[default]
    Up,
    /// Failing its probes (or held down as flapping).
    Down,
    /// Held down only by its circuit breaker, on leg reports: skipped, unless every candidate
    /// of a call is skipped and some are held only so; then those are offered (degraded) —
    /// a breaker alone never refuses every call.
    BreakerOpen,
    /// Taken out of service by an operator for maintenance.
    Drained,
}

/// One SIP endpoint of a carrier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// Unique across the cluster, not just within the carrier, so health and call counts can
    /// be keyed by it.
    pub name: String,
    /// Name of the carrier this gateway belongs to.
    pub carrier: String,
    pub uri: SipUri,
    /// Lower is tried first.
    pub priority: u32,
    /// Share of calls among gateways (or carriers) of equal priority. 0 makes the gateway a
    /// standby: it is ordered after every weighted peer of the same priority, never drawn
    /// ahead of one.
    pub weight: u32,
    /// Most calls at once; `None` for no limit.
    pub max_concurrent_calls: Option<u32>,
    /// A disabled gateway is never routed to, nor probed.
    pub enabled: bool,
    /// How its OPTIONS probes differ from the cluster's probe policy.
    pub probe: crate::health::ProbeOverrides,
}

impl Gateway {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        validate_name("carrier", &self.carrier)?;
        if self.max_concurrent_calls == Some(0) {
            return Err(FieldError::new(
                "max_concurrent_calls",
                "must be at least 1; disable the gateway to stop its traffic",
            ));
        }
        self.probe
            .validate()
            .map_err(|error| error.within("probe"))?;
        Ok(())
    }
}

/// One row of a carrier's rate deck.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Leading digits of the E.164 numbers this row prices, without `+`.
    pub prefix: String,
    pub rate_micros_per_minute: u64,
    /// Charged once per answered call.
    pub connect_fee_micros: u64,
    pub description: String,
    /// First moment the row applies (inclusive), unix milliseconds; `None` for always.
    pub effective_from_ms: Option<u64>,
    /// Moment the row stops applying (exclusive), unix milliseconds; `None` for never.
    pub effective_until_ms: Option<u64>,
}

impl Rate {
    pub fn validate(&self) -> Result<(), FieldError> {
        if !is_digits(&self.prefix, 1, MAX_PREFIX_DIGITS) {
            return Err(FieldError::new(
                "prefix",
                format!("must be 1 to {MAX_PREFIX_DIGITS} digits"),
            ));
        }
        if self.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_BYTES} bytes"),
            ));
        }
        if let (Some(from_ms), Some(until_ms)) = (self.effective_from_ms, self.effective_until_ms) {
            if from_ms >= until_ms {
                return Err(FieldError::new(
                    "effective_until",
                    "must be later than effective_from",
                ));
            }
        }
        Ok(())
    }

    /// Whether the row applies at `now_ms`.
    pub fn is_effective(&self, now_ms: u64) -> bool {
        self.effective_from_ms
            .is_none_or(|from_ms| from_ms <= now_ms)
            && self
                .effective_until_ms
                .is_none_or(|until_ms| now_ms < until_ms)
    }
}

/// Names of tenants, carriers and gateways: 1 to 64 ASCII letters, digits, `-`, `_` or `.`,
/// starting with a letter or digit. They appear in metrics labels, CSV files and SIP headers,
/// so nothing that needs quoting is allowed.
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

/// Whether `text` is between `min` and `max` ASCII digits long and nothing else.
pub(crate) fn is_digits(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// Whether `text` is a NANP area code (NPA): 3 digits, first 2 to 9, not an N11 service code.
pub(crate) fn is_nanp_area_code(text: &str) -> bool {
    match text.as_bytes() {
        [first, second, third] => {
            (b'2'..=b'9').contains(first)
                && second.is_ascii_digit()
                && third.is_ascii_digit()
                && !(*second == b'1' && *third == b'1')
        }
        _ => false,
    }
}
