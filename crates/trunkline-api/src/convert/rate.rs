//! `trunkline.v1.Rate` to and from the core's [`Rate`].

use crate::v1 as proto;
use trunkline_core::routing::Rate;

/// Validation happens when the command is proposed, where the row's line is known.
pub fn rate_from_proto(rate: proto::Rate) -> Rate {
    Rate {
        prefix: rate.prefix,
        rate_micros_per_minute: rate.rate_micros_per_minute,
        connect_fee_micros: rate.connect_fee_micros,
        description: rate.description,
        effective_from_ms: (rate.effective_from_ms != 0).then_some(rate.effective_from_ms),
        effective_until_ms: (rate.effective_until_ms != 0).then_some(rate.effective_until_ms),
    }
}

pub fn rate_to_proto(rate: Rate) -> proto::Rate {
    proto::Rate {
        prefix: rate.prefix,
        rate_micros_per_minute: rate.rate_micros_per_minute,
        connect_fee_micros: rate.connect_fee_micros,
        description: rate.description,
        effective_from_ms: rate.effective_from_ms.unwrap_or(0),
        effective_until_ms: rate.effective_until_ms.unwrap_or(0),
    }
}
