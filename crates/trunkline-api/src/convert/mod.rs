//! Conversions between the wire messages and the core's domain types, one file a type, used by
//! the node and trunkctl alike. Each `*_from_proto` checks what the core would and returns a
//! [`FieldError`](trunkline_core::FieldError) naming the bad field as it is called on the wire
//! (`dial_plan.home_area_code`, `probe.timeout_ms`), so the node can say what to fix and
//! trunkctl can name the flag that sets it.

mod alerts;
mod audit;
mod carrier;
mod cdr;
mod gateway;
mod health;
mod inbound;
mod policy;
mod rate;
mod route;
mod setting;
mod tenant;
mod usage;

pub use alerts::{
    alert_rule_from_text, alert_to_proto, rule_config_from_proto, rule_config_to_proto,
};
pub use audit::{audit_from_proto, audit_to_proto};
pub use carrier::{carrier_from_proto, carrier_to_proto};
pub use cdr::cdr_to_proto;
pub use gateway::{gateway_from_proto, gateway_to_proto};
pub use health::{
    edge_health, event_to_proto, gateway_health, health_policy_from_proto, health_policy_to_proto,
    liveness_to_proto, probe_overrides_from_proto, probe_overrides_to_proto, source_to_proto,
};
pub use inbound::{
    binding_to_proto, device_from_proto, device_to_proto, did_from_proto, did_to_proto,
    edge_from_proto, edge_to_proto, inbound_leg_to_proto, plan_from_proto, plan_to_proto,
    target_to_proto, triggers_to_proto,
};
pub use policy::{
    policy_from_proto, policy_to_proto, rules_from_proto, rules_to_proto, scope_from_text,
};
pub use rate::{rate_from_proto, rate_to_proto};
pub use route::{destination_class_from_proto, destination_class_to_proto, refusal_reason_name};
pub use setting::setting;
pub use tenant::{tenant_from_proto, tenant_to_proto};
pub use usage::{limits_from_proto, limits_to_proto, usage_to_proto};
