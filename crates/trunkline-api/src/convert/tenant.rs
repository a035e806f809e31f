//! `trunkline.v1.Tenant` and `DialPlan` to and from the core's [`Tenant`].

use std::collections::BTreeSet;

use crate::v1 as proto;
use trunkline_core::{
    routing::{Capability, DialPlan, Strategy, Tenant},
    FieldError,
};

pub fn tenant_from_proto(tenant: proto::Tenant) -> Result<Tenant, FieldError> {
    let strategy = match proto::Strategy::try_from(tenant.strategy) {
        Ok(proto::Strategy::Unspecified | proto::Strategy::LeastCost) => Strategy::LeastCost,
        Ok(proto::Strategy::Priority) => Strategy::Priority,
        Ok(proto::Strategy::Weighted) => Strategy::Weighted,
        Err(_) => {
            return Err(FieldError::new(
                "strategy",
                format!("{} is not a strategy", tenant.strategy),
            ))
        }
    };
    let required_capabilities = tenant
        .required_capabilities
        .iter()
        .map(|capability| {
            capability
                .parse::<Capability>()
                .map_err(|error| error.renamed("required_capabilities"))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    let tenant = Tenant {
        name: tenant.name,
        dial_plan: tenant
            .dial_plan
            .map(dial_plan_from_proto)
            .transpose()?
            .unwrap_or_else(DialPlan::nanp),
        strategy,
        allowed_carriers: tenant.allowed_carriers,
        required_capabilities,
        policy: tenant
            .policy
            .map(super::policy_from_proto)
            .transpose()?
            .unwrap_or_default(),
        limits: tenant
            .limits
            .map(super::limits_from_proto)
            .transpose()?
            .unwrap_or_default(),
    };
    tenant.validate()?;
    Ok(tenant)
}

/// Empty fields take the defaults of the plan's country ([`DialPlan::defaults_for`]).
fn dial_plan_from_proto(plan: proto::DialPlan) -> Result<DialPlan, FieldError> {
    let mut result = DialPlan::defaults_for(&plan.country_code);
    if !plan.home_area_code.is_empty() {
        result.home_area_code = Some(plan.home_area_code);
    }
    if !plan.international_prefix.is_empty() {
        result.international_prefix = plan.international_prefix;
    }
    if !plan.national_prefix.is_empty() {
        result.national_prefix = plan.national_prefix;
    }
    if !plan.emergency_numbers.is_empty() {
        result.emergency_numbers = plan.emergency_numbers.into_iter().collect();
    }
    let digits = |field: &'static str, value: u32| {
        u8::try_from(value).map_err(|_| FieldError::new(field, format!("{value} is too large")))
    };
    if plan.extension_min_digits != 0 {
        result.extension_min_digits =
            digits("dial_plan.extension_min_digits", plan.extension_min_digits)?;
    }
    if plan.extension_max_digits != 0 {
        result.extension_max_digits =
            digits("dial_plan.extension_max_digits", plan.extension_max_digits)?;
    }
    result.validate()?;
    Ok(result)
}

pub fn tenant_to_proto(tenant: &Tenant) -> proto::Tenant {
    let plan = &tenant.dial_plan;
    proto::Tenant {
        name: tenant.name.clone(),
        dial_plan: Some(proto::DialPlan {
            country_code: plan.country_code.clone(),
            home_area_code: plan.home_area_code.clone().unwrap_or_default(),
            international_prefix: plan.international_prefix.clone(),
            national_prefix: plan.national_prefix.clone(),
            emergency_numbers: plan.emergency_numbers.iter().cloned().collect(),
            extension_min_digits: plan.extension_min_digits.into(),
            extension_max_digits: plan.extension_max_digits.into(),
        }),
        strategy: match tenant.strategy {
            Strategy::LeastCost => proto::Strategy::LeastCost,
            Strategy::Priority => proto::Strategy::Priority,
            Strategy::Weighted => proto::Strategy::Weighted,
        }
        .into(),
        allowed_carriers: tenant.allowed_carriers.clone(),
        required_capabilities: tenant
            .required_capabilities
            .iter()
            .map(|capability| capability.as_str().to_owned())
            .collect(),
        policy: super::policy_to_proto(&tenant.policy),
        limits: super::limits_to_proto(&tenant.limits),
    }
}
