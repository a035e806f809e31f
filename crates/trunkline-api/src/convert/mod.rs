//! Conversions between the wire messages and the core's domain types that both the node and
//! trunkctl need: health policy and probe overrides, gateway health lines and events, and the
//! inbound configuration. Each `*_from_proto` checks what the core would and names the bad
//! field as it is called on the wire, so a command-line tool can map it to its flag.

mod health;
mod inbound;

pub use health::{
    edge_health, event_to_proto, gateway_health, health_policy_from_proto, health_policy_to_proto,
    liveness_to_proto, probe_overrides_from_proto, probe_overrides_to_proto, source_to_proto,
};
pub use inbound::{
    binding_to_proto, device_from_proto, device_to_proto, did_from_proto, did_to_proto,
    edge_from_proto, edge_to_proto, inbound_leg_to_proto, plan_from_proto, plan_to_proto,
    target_to_proto, triggers_to_proto,
};
