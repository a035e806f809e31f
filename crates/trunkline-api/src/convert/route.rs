//! What a route answer says about a call for the wire: its destination class and why it was
//! refused. The node writes them; trunkctl and call records read them back with the same names.

use trunkline_core::routing::DestinationClass;

use crate::v1 as proto;

pub fn destination_class_to_proto(class: DestinationClass) -> proto::DestinationClass {
    match class {
        DestinationClass::Emergency => proto::DestinationClass::Emergency,
        DestinationClass::Internal => proto::DestinationClass::Internal,
        DestinationClass::TollFree => proto::DestinationClass::TollFree,
        DestinationClass::National => proto::DestinationClass::National,
        DestinationClass::International => proto::DestinationClass::International,
        DestinationClass::Premium => proto::DestinationClass::Premium,
        DestinationClass::HighRisk => proto::DestinationClass::HighRisk,
    }
}

/// The class a route answer names, `None` when unset or unknown to this build.
pub fn destination_class_from_proto(class: i32) -> Option<DestinationClass> {
    Some(match proto::DestinationClass::try_from(class).ok()? {
        proto::DestinationClass::Unspecified => return None,
        proto::DestinationClass::Emergency => DestinationClass::Emergency,
        proto::DestinationClass::Internal => DestinationClass::Internal,
        proto::DestinationClass::TollFree => DestinationClass::TollFree,
        proto::DestinationClass::National => DestinationClass::National,
        proto::DestinationClass::International => DestinationClass::International,
        proto::DestinationClass::Premium => DestinationClass::Premium,
        proto::DestinationClass::HighRisk => DestinationClass::HighRisk,
    })
}

/// A refusal's reason as records, `route test` and scripts name it: the wire enum's name
/// without its prefix, in kebab case (`REFUSAL_REASON_POLICY_PREMIUM` is `policy-premium`);
/// `unknown` for a reason this build does not know.
pub fn refusal_reason_name(reason: i32) -> String {
    let name = proto::RefusalReason::try_from(reason)
        .ok()
        .filter(|reason| *reason != proto::RefusalReason::Unspecified)
        .map_or("unknown", |reason| reason.as_str_name());
    name.trim_start_matches("REFUSAL_REASON_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_comes_back_as_it_went() {
        for class in [
            DestinationClass::Emergency,
            DestinationClass::Internal,
            DestinationClass::TollFree,
            DestinationClass::National,
            DestinationClass::International,
            DestinationClass::Premium,
            DestinationClass::HighRisk,
        ] {
            let wire = destination_class_to_proto(class) as i32;
            assert_eq!(destination_class_from_proto(wire), Some(class));
        }
        assert_eq!(destination_class_from_proto(0), None);
        assert_eq!(destination_class_from_proto(99), None);
    }

    #[test]
    fn reasons_are_named_from_the_wire() {
        let name = |reason: proto::RefusalReason| refusal_reason_name(reason as i32);
        assert_eq!(name(proto::RefusalReason::PolicyPremium), "policy-premium");
        assert_eq!(name(proto::RefusalReason::NoRoute), "no-route");
        assert_eq!(
            name(proto::RefusalReason::LimitConcurrentCalls),
            "limit-concurrent-calls"
        );
        assert_eq!(name(proto::RefusalReason::Unspecified), "unknown");
        assert_eq!(refusal_reason_name(999), "unknown");
    }
}
