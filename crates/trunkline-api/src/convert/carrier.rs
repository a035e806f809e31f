//! `trunkline.v1.Carrier` to and from the core's [`Carrier`].

use std::collections::BTreeSet;

use crate::v1 as proto;
use trunkline_core::{
    routing::{Capability, Carrier, Translation},
    FieldError,
};

pub fn carrier_from_proto(carrier: proto::Carrier) -> Result<Carrier, FieldError> {
    let capabilities = carrier
        .capabilities
        .iter()
        .map(|capability| {
            capability
                .parse::<Capability>()
                .map_err(|error| error.renamed("capabilities"))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    let translation = carrier.translation.unwrap_or_default();
    let strip_digits = u8::try_from(translation.strip_digits).map_err(|_| {
        FieldError::new(
            "translation.strip_digits",
            format!("{} is too large", translation.strip_digits),
        )
    })?;
    let final_codes = carrier
        .final_codes
        .iter()
        .map(|code| {
            u16::try_from(*code)
                .map_err(|_| FieldError::new("final_codes", format!("{code} is not a SIP code")))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    let carrier = Carrier {
        name: carrier.name,
        capabilities,
        translation: Translation {
            strip_digits,
            tech_prefix: translation.tech_prefix,
            plus: translation.plus,
        },
        final_codes,
        enabled: !carrier.disabled,
    };
    carrier.validate()?;
    Ok(carrier)
}

pub fn carrier_to_proto(carrier: &Carrier) -> proto::Carrier {
    proto::Carrier {
        name: carrier.name.clone(),
        capabilities: carrier
            .capabilities
            .iter()
            .map(|capability| capability.as_str().to_owned())
            .collect(),
        translation: Some(proto::Translation {
            strip_digits: carrier.translation.strip_digits.into(),
            tech_prefix: carrier.translation.tech_prefix.clone(),
            plus: carrier.translation.plus,
        }),
        final_codes: carrier
            .final_codes
            .iter()
            .map(|code| u32::from(*code))
            .collect(),
        disabled: !carrier.enabled,
    }
}
