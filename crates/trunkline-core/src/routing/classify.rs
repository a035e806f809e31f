//! Destination classes: what kind of call a normalised number is.
//!
//! The class drives usage policy (block international, block premium, never block emergency),
//! fraud detection and call records, so the rules favour caution where they must choose:
//!
//! - Emergency and internal calls are recognised by normalisation and classified as such.
//! - A number matching the operator's [`HighRiskList`] is `HighRisk`, whatever else it is:
//!   the operator's explicit list wins over the built-in tables.
//! - NANP premium rate is area code 900, and exchange code 976 in any area code but the
//!   toll-free ones. 976 was never an area code; it is the exchange that US and Canadian telcos
//!   set aside for pay-per-call services ("976 numbers"), which is what the industry means by
//!   "900/976" and what call-blocking products block. A 976 exchange in a toll-free area code
//!   is an ordinary toll-free number. This applies to NANP numbers whatever the caller's plan.
//! - NANP toll-free (800, 833, 844, 855, 866, 877, 888) is `TollFree` only for a NANP caller;
//!   from elsewhere these numbers are not free and are `International`.
//! - NANP area codes of countries other than the US and Canada (the Caribbean and Bermuda,
//!   [`NANP_OTHER_COUNTRY_AREA_CODES`]) share country code 1 but are billed as international
//!   and are the classic target of call-back fraud, so they are `International`, not
//!   `National`. US territories (Puerto Rico, Guam, US Virgin Islands and so on) are national.
//! - Otherwise a number with the plan's country code is `National` (local and long distance
//!   alike) and any other is `International`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{is_digits, DialPlan, MAX_PREFIX_DIGITS};
use super::numbers::{E164Number, Normalized};
use crate::FieldError;

/// NANP toll-free area codes in service.
pub const NANP_TOLL_FREE_AREA_CODES: [&str; 7] = ["800", "833", "844", "855", "866", "877", "888"];
/// NANP premium-rate area code.
pub const NANP_PREMIUM_AREA_CODE: &str = "900";
/// NANP premium-rate exchange code, in any area code.
pub const NANP_PREMIUM_EXCHANGE: &str = "976";
/// NANP area codes that belong to countries other than the United States and Canada.
pub const NANP_OTHER_COUNTRY_AREA_CODES: [&str; 21] = [
    "242", // Bahamas
    "246", // Barbados
    "264", // Anguilla
    "268", // Antigua and Barbuda
    "284", // British Virgin Islands
    "345", // Cayman Islands
    "441", // Bermuda
    "473", // Grenada
    "649", // Turks and Caicos Islands
    "658", // Jamaica
    "664", // Montserrat
    "721", // Sint Maarten
    "758", // Saint Lucia
    "767", // Dominica
    "784", // Saint Vincent and the Grenadines
    "809", // Dominican Republic
    "829", // Dominican Republic
    "849", // Dominican Republic
    "868", // Trinidad and Tobago
    "869", // Saint Kitts and Nevis
    "876", // Jamaica
];
/// Most prefixes an operator's high-risk list may hold.
pub const MAX_HIGH_RISK_PREFIXES: usize = 100_000;

/// What kind of destination a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationClass {
    Emergency,
    /// An extension of the calling tenant.
    Internal,
    TollFree,
    /// Same country as the tenant's dial plan, local or long distance.
    National,
    International,
    /// Premium-rate services (NANP 900 and 976).
    Premium,
    /// A prefix on the operator's high-risk list.
    HighRisk,
}

impl DestinationClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationClass::Emergency => "emergency",
            DestinationClass::Internal => "internal",
            DestinationClass::TollFree => "toll-free",
            DestinationClass::National => "national",
            DestinationClass::International => "international",
            DestinationClass::Premium => "premium",
            DestinationClass::HighRisk => "high-risk",
        }
    }
}

impl fmt::Display for DestinationClass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The operator-wide list of E.164 prefixes (digits, no `+`) treated as high risk, such as
/// countries or ranges known for toll fraud. Serialised as the list of prefixes and checked
/// again when read back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct HighRiskList {
    prefixes: BTreeSet<String>,
}

impl HighRiskList {
    /// Builds the list; every prefix must be 1 to 15 digits. Duplicates are merged.
    pub fn new(prefixes: impl IntoIterator<Item = String>) -> Result<Self, FieldError> {
        let mut set = BTreeSet::new();
        for prefix in prefixes {
            if !is_digits(&prefix, 1, MAX_PREFIX_DIGITS) {
                return Err(FieldError::new(
                    "high_risk_prefixes",
                    format!("{prefix:?} is not 1 to {MAX_PREFIX_DIGITS} digits"),
                ));
            }
            set.insert(prefix);
            if set.len() > MAX_HIGH_RISK_PREFIXES {
                return Err(FieldError::new(
                    "high_risk_prefixes",
                    format!("must hold at most {MAX_HIGH_RISK_PREFIXES} prefixes"),
                ));
            }
        }
        Ok(HighRiskList { prefixes: set })
    }

    /// Whether some prefix on the list starts `number`.
    pub fn matches(&self, number: &E164Number) -> bool {
        let digits = number.digits();
        (1..=digits.len()).any(|length| {
            digits
                .get(..length)
                .is_some_and(|prefix| self.prefixes.contains(prefix))
        })
    }

    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes.iter().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}

impl TryFrom<Vec<String>> for HighRiskList {
    type Error = FieldError;

    fn try_from(prefixes: Vec<String>) -> Result<Self, Self::Error> {
        HighRiskList::new(prefixes)
    }
}

impl From<HighRiskList> for Vec<String> {
    fn from(list: HighRiskList) -> Self {
        list.prefixes.into_iter().collect()
    }
}

/// The class of a normalised number dialled by a tenant with `dial_plan`. See the module
/// documentation for the rules and their order.
pub fn classify(
    normalized: &Normalized,
    dial_plan: &DialPlan,
    high_risk: &HighRiskList,
) -> DestinationClass {
    let number = match normalized {
        Normalized::Emergency { .. } => return DestinationClass::Emergency,
        Normalized::Extension(_) => return DestinationClass::Internal,
        Normalized::E164(number) => number,
    };
    if high_risk.matches(number) {
        return DestinationClass::HighRisk;
    }
    if let Some((area_code, exchange)) = number.nanp_area_and_exchange() {
        if area_code == NANP_PREMIUM_AREA_CODE {
            return DestinationClass::Premium;
        }
        // A 976 exchange inside a toll-free area code is an ordinary toll-free number.
        if NANP_TOLL_FREE_AREA_CODES.contains(&area_code) {
            return if dial_plan.is_nanp() {
                DestinationClass::TollFree
            } else {
                DestinationClass::International
            };
        }
        if exchange == NANP_PREMIUM_EXCHANGE {
            return DestinationClass::Premium;
        }
    }
    if is_abroad(number, dial_plan) {
        DestinationClass::International
    } else {
        DestinationClass::National
    }
}

/// Whether `number` is abroad for a caller with `dial_plan`: in another country, or in a NANP
/// area code of a country other than the US and Canada. Calling policies use it for every
/// class (a premium or high-risk number may be abroad too); [`classify`] calls the rest
/// `International`.
pub fn is_abroad(number: &E164Number, dial_plan: &DialPlan) -> bool {
    if let Some((area_code, _)) = number.nanp_area_and_exchange() {
        return !dial_plan.is_nanp() || NANP_OTHER_COUNTRY_AREA_CODES.contains(&area_code);
    }
    // Country codes are prefix-free (ITU-T E.164), so a prefix test is a country test.
    dial_plan.country_code.is_empty()
        || !number.digits().starts_with(dial_plan.country_code.as_str())
}
