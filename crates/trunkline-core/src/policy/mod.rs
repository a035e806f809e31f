//! Calling policies: which calls a tenant's users may make.
//!
//! A tenant's [`CallingPolicy`] has three scopes of [`PolicyRules`]: the tenant's own, one per
//! source kind (phones, the auto-attendant, voicemail call-outs) and one per extension. Every
//! rule of a scope is optional; for each rule the most specific scope that sets it wins
//! (extension, then source kind, then tenant), so an operator blocks international calls for
//! the tenant and lifts the block for one extension by setting it to `false` there.
//!
//! [`CallingPolicy::check`] applies the effective rules to one call, in this order, and names
//! the first that blocks it: the extension is disabled; the number starts with a blocked
//! prefix; premium or high-risk destinations are blocked; the number is abroad and
//! international calls are blocked, or its country is not among the allowed countries; the
//! number is national outside the home area and long distance is blocked; the call is outside
//! the allowed hours.
//!
//! **Emergency calls are never blocked**, by any rule of any scope: `check` answers `Ok` for
//! them before it reads a rule. Internal calls (to the tenant's own extensions) only meet the
//! disabled rule.
//!
//! Contradictions are refused when the policy is written ([`CallingPolicy::validate`]): a
//! scope combination that blocks international calls while it lists allowed countries abroad,
//! or blocks long distance in a dial plan with no home area.

mod hours;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use hours::{AllowedHours, HoursWindow, MAX_HOURS_TEXT_BYTES, MAX_HOURS_WINDOWS};

use crate::routing::{
    is_abroad, is_digits, validate_name, DestinationClass, DialPlan, E164Number, Normalized,
    MAX_PREFIX_DIGITS,
};
use crate::FieldError;

/// Most extensions with a scope of their own in one tenant's policy.
pub const MAX_POLICY_EXTENSIONS: usize = 1_000;
/// Most country codes one scope may allow.
pub const MAX_ALLOWED_COUNTRIES: usize = 300;
/// Most blocked prefixes in one tenant's whole policy, every scope together.
pub const MAX_POLICY_PREFIXES: usize = 10_000;
/// The SIP reply to a blocked call unless a scope says otherwise: 403 Forbidden.
pub const DEFAULT_REFUSAL_SIP_CODE: u16 = 403;

/// Where a call comes from, as the proxy says in RouteOutbound.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A user's phone or softphone; what a proxy that says nothing means.
    #[default]
    Phone,
    /// An auto-attendant (IVR) transferring a caller out.
    AutoAttendant,
    /// Voicemail calling out (notification call-outs, "press 0 to reach").
    Voicemail,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [
        SourceKind::Phone,
        SourceKind::AutoAttendant,
        SourceKind::Voicemail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Phone => "phone",
            SourceKind::AutoAttendant => "auto-attendant",
            SourceKind::Voicemail => "voicemail",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for SourceKind {
    type Err = FieldError;

    fn from_str(text: &str) -> Result<Self, FieldError> {
        SourceKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                FieldError::new(
                    "source",
                    format!("{text:?} is not a source kind: phone, auto-attendant or voicemail"),
                )
            })
    }
}

/// The rules of one scope. `None` leaves a rule to the wider scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRules {
    /// Refuse every call but emergency calls (an extension out of service, a suspended
    /// customer).
    pub disabled: Option<bool>,
    /// Refuse calls to numbers abroad.
    pub block_international: Option<bool>,
    /// Refuse national calls outside the dial plan's home area (NANP plans with a home area
    /// code).
    pub block_long_distance: Option<bool>,
    /// Refuse premium-rate (NANP 900 and 976) and high-risk destinations.
    pub block_premium: Option<bool>,
    /// Country calling codes calls abroad may go to; empty allows every country.
    pub allowed_countries: Option<BTreeSet<String>>,
    /// E.164 prefixes (digits) refused, whatever the destination class.
    pub blocked_prefixes: Option<BTreeSet<String>>,
    pub allowed_hours: Option<AllowedHours>,
    /// The SIP reply a proxy sends for a call this policy blocks; 400 to 699.
    pub refusal_sip_code: Option<u16>,
}

impl PolicyRules {
    pub fn is_empty(&self) -> bool {
        self == &PolicyRules::default()
    }

    /// Each rule on its own: sane codes, prefixes and sizes.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(countries) = &self.allowed_countries {
            if countries.len() > MAX_ALLOWED_COUNTRIES {
                return Err(FieldError::new(
                    "allowed_countries",
                    format!("must list at most {MAX_ALLOWED_COUNTRIES} country codes"),
                ));
            }
            for country in countries {
                if !is_digits(country, 1, 3) || country.starts_with('0') {
                    return Err(FieldError::new(
                        "allowed_countries",
                        format!("{country:?} is not a country calling code (1 to 3 digits, as 1, 44 or 353)"),
                    ));
                }
            }
        }
        if let Some(prefixes) = &self.blocked_prefixes {
            for prefix in prefixes {
                if !is_digits(prefix, 1, MAX_PREFIX_DIGITS) {
                    return Err(FieldError::new(
                        "blocked_prefixes",
                        format!(
                            "{prefix:?} is not an E.164 prefix (1 to {MAX_PREFIX_DIGITS} digits, no '+')"
                        ),
                    ));
                }
            }
        }
        if let Some(code) = self.refusal_sip_code {
            if !(400..=699).contains(&code) {
                return Err(FieldError::new(
                    "refusal_sip_code",
                    format!("{code} is not a SIP failure code (400 to 699)"),
                ));
            }
        }
        Ok(())
    }

    fn prefix_count(&self) -> usize {
        self.blocked_prefixes.as_ref().map_or(0, BTreeSet::len)
    }
}

/// A tenant's calling policy: its own rules and the narrower scopes'.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingPolicy {
    pub tenant: PolicyRules,
    pub sources: BTreeMap<SourceKind, PolicyRules>,
    /// By extension or calling device name.
    pub extensions: BTreeMap<String, PolicyRules>,
}

/// A scope of a policy: the tenant's own rules, a source kind's or an extension's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PolicyScope {
    Tenant,
    Source(SourceKind),
    Extension(String),
}

impl fmt::Display for PolicyScope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyScope::Tenant => formatter.write_str("the tenant's policy"),
            PolicyScope::Source(kind) => write!(formatter, "the policy for {kind} calls"),
            PolicyScope::Extension(extension) => {
                write!(formatter, "extension {extension}'s policy")
            }
        }
    }
}

/// The rule that blocked a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockReason {
    ExtensionDisabled,
    BlockedPrefix,
    Premium,
    International,
    CountryNotAllowed,
    LongDistance,
    OutsideAllowedHours,
    /// A fraud alert's automatic action (`crate::alerts`), until an operator clears it.
    AlertAction,
}

impl BlockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::ExtensionDisabled => "disabled",
            BlockReason::BlockedPrefix => "blocked-prefix",
            BlockReason::Premium => "premium",
            BlockReason::International => "international",
            BlockReason::CountryNotAllowed => "country-not-allowed",
            BlockReason::LongDistance => "long-distance",
            BlockReason::OutsideAllowedHours => "outside-allowed-hours",
            BlockReason::AlertAction => "alert-action",
        }
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A call the policy refuses: the rule, the scope that set it, the SIP code to send and a
/// sentence for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub reason: BlockReason,
    pub scope: PolicyScope,
    pub sip_code: u16,
    pub message: String,
}

/// What the policy needs to know of one call.
#[derive(Clone, Copy, Debug)]
pub struct PolicyCall<'a> {
    pub destination: &'a Normalized,
    pub class: DestinationClass,
    pub dial_plan: &'a DialPlan,
    pub source: SourceKind,
    /// The calling extension or device, when the proxy said or the caller's number is one.
    pub extension: Option<&'a str>,
    pub now_ms: u64,
}

/// The layers that apply to one call, narrowest first.
struct Layers<'a> {
    layers: [(Option<&'a PolicyRules>, PolicyScope); 3],
}

impl<'a> Layers<'a> {
    fn new(
        policy: &'a CallingPolicy,
        source: Option<SourceKind>,
        extension: Option<&'a str>,
    ) -> Self {
        // A scope is only read where its rules are: no name is copied for an extension
        // without rules of its own.
        let own = extension.and_then(|extension| policy.extensions.get_key_value(extension));
        Layers {
            layers: [
                (
                    own.map(|(_, rules)| rules),
                    own.map_or(PolicyScope::Tenant, |(name, _)| {
                        PolicyScope::Extension(name.clone())
                    }),
                ),
                (
                    source.and_then(|source| policy.sources.get(&source)),
                    PolicyScope::Source(source.unwrap_or_default()),
                ),
                (Some(&policy.tenant), PolicyScope::Tenant),
            ],
        }
    }

    /// The narrowest scope's value of a rule, and that scope.
    fn rule<T>(
        &self,
        pick: impl Fn(&'a PolicyRules) -> Option<&'a T>,
    ) -> Option<(&'a T, &PolicyScope)> {
        self.layers
            .iter()
            .find_map(|(rules, scope)| rules.and_then(&pick).map(|value| (value, scope)))
    }

    fn flag(&self, pick: impl Fn(&'a PolicyRules) -> Option<&'a bool>) -> Option<&PolicyScope> {
        self.rule(pick)
            .and_then(|(value, scope)| value.then_some(scope))
    }

    fn sip_code(&self) -> u16 {
        self.rule(|rules| rules.refusal_sip_code.as_ref())
            .map_or(DEFAULT_REFUSAL_SIP_CODE, |(code, _)| *code)
    }
}

impl PolicyScope {
    /// The scope as the wire and trunkctl name it: `tenant`, `source:voicemail`,
    /// `extension:2001`.
    pub fn key(&self) -> String {
        match self {
            PolicyScope::Tenant => "tenant".to_owned(),
            PolicyScope::Source(kind) => format!("source:{kind}"),
            PolicyScope::Extension(extension) => format!("extension:{extension}"),
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            PolicyScope::Extension(extension) => validate_name("extension", extension),
            PolicyScope::Tenant | PolicyScope::Source(_) => Ok(()),
        }
    }
}

impl CallingPolicy {
    pub fn is_empty(&self) -> bool {
        self == &CallingPolicy::default()
    }

    /// The rules of one scope, if it has any.
    pub fn rules(&self, scope: &PolicyScope) -> Option<&PolicyRules> {
        match scope {
            PolicyScope::Tenant => Some(&self.tenant).filter(|rules| !rules.is_empty()),
            PolicyScope::Source(kind) => self.sources.get(kind),
            PolicyScope::Extension(extension) => self.extensions.get(extension),
        }
    }

    /// Sets one scope's rules, or with `None` (or empty rules) removes them; returns whether
    /// the scope had rules. The result is not validated: call [`CallingPolicy::validate`].
    pub fn set(&mut self, scope: &PolicyScope, rules: Option<PolicyRules>) -> bool {
        let rules = rules.filter(|rules| !rules.is_empty());
        match scope {
            PolicyScope::Tenant => {
                let had = !self.tenant.is_empty();
                self.tenant = rules.unwrap_or_default();
                had
            }
            PolicyScope::Source(kind) => match rules {
                Some(rules) => self.sources.insert(*kind, rules).is_some(),
                None => self.sources.remove(kind).is_some(),
            },
            PolicyScope::Extension(extension) => match rules {
                Some(rules) => self.extensions.insert(extension.clone(), rules).is_some(),
                None => self.extensions.remove(extension).is_some(),
            },
        }
    }

    /// Checks every scope's rules and every combination of scopes a call can meet against
    /// `dial_plan`, so a contradiction is refused when written, not found on a call.
    pub fn validate(&self, dial_plan: &DialPlan) -> Result<(), FieldError> {
        if self.extensions.len() > MAX_POLICY_EXTENSIONS {
            return Err(FieldError::new(
                "policy.extensions",
                format!("must hold at most {MAX_POLICY_EXTENSIONS} extensions"),
            ));
        }
        self.tenant
            .validate()
            .map_err(|error| error.within("policy.tenant"))?;
        for (kind, rules) in &self.sources {
            rules
                .validate()
                .map_err(|error| error.within(&format!("policy.sources[{kind}]")))?;
        }
        let mut prefixes = self.tenant.prefix_count();
        for (extension, rules) in &self.extensions {
            validate_name("extension", extension)
                .map_err(|error| error.within("policy.extensions"))?;
            rules
                .validate()
                .map_err(|error| error.within(&format!("policy.extensions[{extension}]")))?;
            prefixes += rules.prefix_count();
        }
        prefixes += self
            .sources
            .values()
            .map(PolicyRules::prefix_count)
            .sum::<usize>();
        if prefixes > MAX_POLICY_PREFIXES {
            return Err(FieldError::new(
                "policy.blocked_prefixes",
                format!("a policy holds at most {MAX_POLICY_PREFIXES} blocked prefixes in all"),
            ));
        }
        let sources = std::iter::once(None).chain(SourceKind::ALL.into_iter().map(Some));
        for source in sources {
            let extensions =
                std::iter::once(None).chain(self.extensions.keys().map(|e| Some(e.as_str())));
            for extension in extensions {
                self.validate_combination(dial_plan, source, extension)?;
            }
        }
        Ok(())
    }

    fn validate_combination(
        &self,
        dial_plan: &DialPlan,
        source: Option<SourceKind>,
        extension: Option<&str>,
    ) -> Result<(), FieldError> {
        let layers = Layers::new(self, source, extension);
        let context = || match (source, extension) {
            (_, Some(extension)) => format!("for extension {extension}"),
            (Some(source), None) => format!("for {source} calls"),
            (None, None) => "for the tenant".to_owned(),
        };
        if let (Some(scope), Some((countries, _))) = (
            layers.flag(|rules| rules.block_international.as_ref()),
            layers.rule(|rules| rules.allowed_countries.as_ref()),
        ) {
            let abroad: Vec<&str> = countries
                .iter()
                .filter(|country| **country != dial_plan.country_code)
                .map(String::as_str)
                .collect();
            if !abroad.is_empty() {
                return Err(FieldError::new(
                    "policy.block_international",
                    format!(
                        "{} blocks international calls {} while allowed_countries lists {}: \
                         leave block_international off to allow only those countries",
                        scope,
                        context(),
                        abroad.join(", ")
                    ),
                ));
            }
        }
        if let Some(scope) = layers.flag(|rules| rules.block_long_distance.as_ref()) {
            if dial_plan.home_area_code.is_none() {
                return Err(FieldError::new(
                    "policy.block_long_distance",
                    format!(
                        "{scope} blocks long distance {} but the dial plan has no home area code: \
                         set dial_plan.home_area_code (long distance is a national call outside \
                         the home area)",
                        context()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether the call may go ahead; see the module documentation for the order of rules.
    pub fn check(&self, call: &PolicyCall<'_>) -> Result<(), Blocked> {
        if call.class == DestinationClass::Emergency
            || call.destination.is_emergency()
            || self.is_empty()
        {
            return Ok(());
        }
        let layers = Layers::new(self, Some(call.source), call.extension);
        let blocked = |reason, scope: &PolicyScope, message: String| Blocked {
            reason,
            scope: scope.clone(),
            sip_code: layers.sip_code(),
            message: format!("{message} ({scope})"),
        };
        if let Some(scope) = layers.flag(|rules| rules.disabled.as_ref()) {
            let who = call
                .extension
                .map_or_else(|| "this caller".to_owned(), |e| format!("extension {e}"));
            return Err(blocked(
                BlockReason::ExtensionDisabled,
                scope,
                format!("calls from {who} are disabled; only emergency calls go through"),
            ));
        }
        let Normalized::E164(number) = call.destination else {
            return Ok(());
        };
        if let Some((prefixes, scope)) = layers.rule(|rules| rules.blocked_prefixes.as_ref()) {
            if let Some(prefix) = matching_prefix(prefixes, number) {
                return Err(blocked(
                    BlockReason::BlockedPrefix,
                    scope,
                    format!("{number} starts with blocked prefix {prefix}"),
                ));
            }
        }
        if matches!(
            call.class,
            DestinationClass::Premium | DestinationClass::HighRisk
        ) {
            if let Some(scope) = layers.flag(|rules| rules.block_premium.as_ref()) {
                return Err(blocked(
                    BlockReason::Premium,
                    scope,
                    format!("{number} is a {} destination, which is blocked", call.class),
                ));
            }
        }
        let abroad = is_abroad(number, call.dial_plan);
        if abroad {
            if let Some(scope) = layers.flag(|rules| rules.block_international.as_ref()) {
                return Err(blocked(
                    BlockReason::International,
                    scope,
                    format!("{number} is abroad and international calls are blocked"),
                ));
            }
            if let Some((countries, scope)) = layers.rule(|rules| rules.allowed_countries.as_ref())
            {
                let allowed = countries.is_empty()
                    || countries
                        .iter()
                        .any(|country| number.digits().starts_with(country.as_str()));
                if !allowed {
                    let listed: Vec<&str> = countries.iter().map(String::as_str).collect();
                    return Err(blocked(
                        BlockReason::CountryNotAllowed,
                        scope,
                        format!(
                            "{number} is not in an allowed country (country codes {})",
                            listed.join(", ")
                        ),
                    ));
                }
            }
        } else if call.class != DestinationClass::TollFree {
            if let Some(scope) = layers.flag(|rules| rules.block_long_distance.as_ref()) {
                let home = call.dial_plan.home_area_code.as_deref();
                let area = number.nanp_area_and_exchange().map(|(area, _)| area);
                if area.is_some() && area != home {
                    return Err(blocked(
                        BlockReason::LongDistance,
                        scope,
                        format!(
                            "{number} is long distance (outside area code {}) and long distance \
                             is blocked",
                            home.unwrap_or("-")
                        ),
                    ));
                }
            }
        }
        if let Some((hours, scope)) = layers.rule(|rules| rules.allowed_hours.as_ref()) {
            if !hours.allows(call.now_ms) {
                return Err(blocked(
                    BlockReason::OutsideAllowedHours,
                    scope,
                    format!("calls are allowed {hours} only"),
                ));
            }
        }
        Ok(())
    }
}

fn matching_prefix<'p>(prefixes: &'p BTreeSet<String>, number: &E164Number) -> Option<&'p str> {
    let digits = number.digits();
    (1..=digits.len().min(MAX_PREFIX_DIGITS)).find_map(|length| {
        digits
            .get(..length)
            .and_then(|prefix| prefixes.get(prefix))
            .map(String::as_str)
    })
}

#[cfg(test)]
mod tests;
