//! `trunkline.v1.CallingPolicy` and `PolicyRules` to and from the core's [`CallingPolicy`].

use std::collections::{BTreeMap, BTreeSet};

use crate::v1 as proto;
use trunkline_core::{
    policy::{AllowedHours, CallingPolicy, PolicyRules, PolicyScope, SourceKind},
    FieldError,
};

/// The policy as the core holds it; checked against the tenant's dial plan by
/// `Tenant::validate`, which the tenant's conversion calls.
pub fn policy_from_proto(policy: proto::CallingPolicy) -> Result<CallingPolicy, FieldError> {
    let tenant = policy
        .tenant
        .map(rules_from_proto)
        .transpose()
        .map_err(|error| error.within("policy.tenant"))?
        .unwrap_or_default();
    let mut sources = BTreeMap::new();
    for (kind, rules) in policy.sources {
        let kind: SourceKind = kind
            .parse()
            .map_err(|error: FieldError| error.renamed("policy.sources"))?;
        let rules = rules_from_proto(rules)
            .map_err(|error| error.within(&format!("policy.sources[{kind}]")))?;
        sources.insert(kind, rules);
    }
    let mut extensions = BTreeMap::new();
    for (extension, rules) in policy.extensions {
        let rules = rules_from_proto(rules)
            .map_err(|error| error.within(&format!("policy.extensions[{extension}]")))?;
        extensions.insert(extension, rules);
    }
    Ok(CallingPolicy {
        tenant,
        sources,
        extensions,
    })
}

pub fn policy_to_proto(policy: &CallingPolicy) -> Option<proto::CallingPolicy> {
    if policy.is_empty() {
        return None;
    }
    Some(proto::CallingPolicy {
        tenant: Some(rules_to_proto(&policy.tenant)),
        sources: policy
            .sources
            .iter()
            .map(|(kind, rules)| (kind.as_str().to_owned(), rules_to_proto(rules)))
            .collect(),
        extensions: policy
            .extensions
            .iter()
            .map(|(extension, rules)| (extension.clone(), rules_to_proto(rules)))
            .collect(),
    })
}

/// A scope as the wire names it: `tenant`, `source:KIND`, `extension:NAME`.
pub fn scope_from_text(field: &'static str, text: &str) -> Result<PolicyScope, FieldError> {
    let scope = match text.split_once(':') {
        None if text == "tenant" => PolicyScope::Tenant,
        Some(("source", kind)) => PolicyScope::Source(
            kind.parse()
                .map_err(|error: FieldError| FieldError::new(field, error.reason().to_owned()))?,
        ),
        Some(("extension", extension)) => PolicyScope::Extension(extension.to_owned()),
        _ => {
            return Err(FieldError::new(
                field,
                format!(
                    "{text:?} is not a scope: tenant, source:phone, source:auto-attendant, \
                     source:voicemail or extension:NAME"
                ),
            ))
        }
    };
    scope
        .validate()
        .map_err(|error| FieldError::new(field, error.reason().to_owned()))?;
    Ok(scope)
}

pub fn rules_from_proto(rules: proto::PolicyRules) -> Result<PolicyRules, FieldError> {
    let codes = |list: Option<proto::CodeList>| {
        list.map(|list| list.codes.into_iter().collect::<BTreeSet<String>>())
    };
    let allowed_hours = match rules.allowed_hours {
        Some(hours) => Some(AllowedHours::parse(&rules.time_zone, &hours)?),
        None if !rules.time_zone.is_empty() => {
            return Err(FieldError::new(
                "time_zone",
                "is set without allowed_hours: give the hours it applies to",
            ))
        }
        None => None,
    };
    let refusal_sip_code = rules
        .refusal_sip_code
        .map(|code| {
            u16::try_from(code).map_err(|_| {
                FieldError::new(
                    "refusal_sip_code",
                    format!("{code} is not a SIP failure code (400 to 699)"),
                )
            })
        })
        .transpose()?;
    let rules = PolicyRules {
        disabled: rules.disabled,
        block_international: rules.block_international,
        block_long_distance: rules.block_long_distance,
        block_premium: rules.block_premium,
        allowed_countries: codes(rules.allowed_countries),
        blocked_prefixes: codes(rules.blocked_prefixes),
        allowed_hours,
        refusal_sip_code,
    };
    rules.validate()?;
    Ok(rules)
}

pub fn rules_to_proto(rules: &PolicyRules) -> proto::PolicyRules {
    let codes = |set: &Option<BTreeSet<String>>| {
        set.as_ref().map(|set| proto::CodeList {
            codes: set.iter().cloned().collect(),
        })
    };
    proto::PolicyRules {
        disabled: rules.disabled,
        block_international: rules.block_international,
        block_long_distance: rules.block_long_distance,
        block_premium: rules.block_premium,
        allowed_countries: codes(&rules.allowed_countries),
        blocked_prefixes: codes(&rules.blocked_prefixes),
        allowed_hours: rules.allowed_hours.as_ref().map(AllowedHours::windows_text),
        time_zone: rules
            .allowed_hours
            .as_ref()
            .map(|hours| hours.time_zone().to_owned())
            .unwrap_or_default(),
        refusal_sip_code: rules.refusal_sip_code.map(u32::from),
    }
}
