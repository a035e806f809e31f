//! `trunkline.v1.Gateway` to and from the core's [`Gateway`].

use crate::v1 as proto;
use trunkline_core::{
    routing::{Gateway, SipUri},
    FieldError,
};

pub fn gateway_from_proto(gateway: proto::Gateway) -> Result<Gateway, FieldError> {
    let gateway = Gateway {
        name: gateway.name,
        carrier: gateway.carrier,
        uri: SipUri::parse(&gateway.uri)?,
        priority: gateway.priority,
        weight: gateway.weight,
        max_concurrent_calls: (gateway.max_concurrent_calls != 0)
            .then_some(gateway.max_concurrent_calls),
        enabled: !gateway.disabled,
        probe: super::health::probe_overrides_from_proto(gateway.probe)?,
    };
    gateway.validate()?;
    Ok(gateway)
}

pub fn gateway_to_proto(gateway: &Gateway, drained: bool) -> proto::Gateway {
    proto::Gateway {
        name: gateway.name.clone(),
        carrier: gateway.carrier.clone(),
        uri: gateway.uri.to_string(),
        priority: gateway.priority,
        weight: gateway.weight,
        max_concurrent_calls: gateway.max_concurrent_calls.unwrap_or(0),
        disabled: !gateway.enabled,
        drained,
        probe: super::health::probe_overrides_to_proto(&gateway.probe),
    }
}
