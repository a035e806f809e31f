//! Normalisation of a dialled string to E.164 with the tenant's dial plan.
//!
//! Rate decks, high-risk lists and carriers all speak E.164, but users dial whatever their
//! phone lets them: 7-digit local numbers, `1+` long distance, `011` international, `+` forms
//! copied from a web page with spaces and brackets, short internal extensions and emergency
//! codes. This module turns one dialled string into one of three outcomes (a public E.164
//! number, an emergency call or an internal extension) or a [`NumberError`] that says what is
//! wrong with it. It never guesses: a form the plan does not define is refused.
//!
//! The order of the rules matters and is fixed:
//! 1. visual separators (space, `-`, `(`, `)`, `.`) are dropped, and so is a bracketed
//!    national prefix after `+` (`+44 (0)20 7123 4567`); a `+` may only come first;
//!    anything else (letters, `*`, `#`, `sip:` or `tel:` URIs) is refused: the proxy sends
//!    the user part's digits;
//! 2. the plan's emergency numbers, alone or after the national prefix or `+` and the country
//!    code (`911`, `1911`, `+1911`), are emergency calls. `1911` is accepted because a caller
//!    who habitually dials `1` first must still reach help, and it can be nothing else: no
//!    NANP area code has the N11 form;
//! 3. NANP only: other 3-digit N11 service codes (211, 311, 411, 511, 611, 711, 811) are
//!    refused with [`NumberError::ServiceCode`], since their destination depends on where the
//!    caller is and they must never be mistaken for extensions;
//! 4. a number whose length is in the plan's extension range is an extension;
//! 5. the international prefix followed by a country code and number, or a `+` form;
//! 6. the plan's national forms: NANP 7 digits (with the home area code), 10 digits and
//!    `1` + 10 digits; elsewhere the national prefix (if any) followed by the national number.
//!
//! Every E.164 result has 7 to 15 digits, starts with a non-zero country code, and if it is a
//! NANP number (country code 1) it has 11 digits with a valid area code and exchange.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{is_nanp_area_code, DialPlan};

/// Longest dialled string accepted, in characters, separators included.
pub const MAX_DIALLED_CHARS: usize = 64;
/// Most digits of an E.164 number (ITU-T E.164).
pub const MAX_E164_DIGITS: usize = 15;
/// Fewest digits of an E.164 number accepted. The shortest numbers in service are 7 digits
/// with their country code (Niue, Tokelau); anything shorter is a truncated number.
pub const MIN_E164_DIGITS: usize = 7;

/// A dialled string that cannot be routed, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("the number is empty")]
    Empty,
    #[error("the number is longer than {MAX_DIALLED_CHARS} characters")]
    TooManyCharacters,
    #[error("the number has {character:?} at position {position}; only digits, a leading '+' and the separators ' -().' are allowed")]
    InvalidCharacter { character: char, position: usize },
    #[error("the number has {digits} digits; E.164 allows at most {MAX_E164_DIGITS}")]
    TooLong { digits: usize },
    #[error("the number has {digits} digits with its country code; at least {MIN_E164_DIGITS} are needed")]
    TooShort { digits: usize },
    #[error("a {digits}-digit number is not valid here; expected {expected}")]
    WrongLength {
        digits: usize,
        expected: &'static str,
    },
    #[error("7-digit dialling needs a home area code in the tenant's dial plan")]
    MissingHomeAreaCode,
    #[error("{area_code} is not a NANP area code (it must start with 2 to 9 and not be N11)")]
    InvalidAreaCode { area_code: String },
    #[error("{exchange} is not a NANP exchange code (it must start with 2 to 9)")]
    InvalidExchange { exchange: String },
    #[error("a country code cannot start with 0")]
    InvalidCountryCode,
    #[error("{code} is a local service code, which Trunkline does not route")]
    ServiceCode { code: String },
}

/// A public telephone number in E.164 form, kept as its digits without the `+`.
///
/// Construct with [`normalize`] or [`E164Number::new`]; both enforce the invariants in the
/// module documentation, and so does deserialisation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164Number(String);

impl E164Number {
    /// Checks `digits` (E.164 without `+`, digits only).
    pub fn new(digits: &str) -> Result<Self, NumberError> {
        if let Some((position, character)) = digits
            .chars()
            .enumerate()
            .find(|(_, character)| !character.is_ascii_digit())
        {
            return Err(NumberError::InvalidCharacter {
                character,
                position,
            });
        }
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        if digits.len() > MAX_E164_DIGITS {
            return Err(NumberError::TooLong {
                digits: digits.len(),
            });
        }
        if digits.len() < MIN_E164_DIGITS {
            return Err(NumberError::TooShort {
                digits: digits.len(),
            });
        }
        if digits.starts_with('0') {
            return Err(NumberError::InvalidCountryCode);
        }
        if let Some(national) = digits.strip_prefix('1') {
            if national.len() != 10 {
                return Err(NumberError::WrongLength {
                    digits: digits.len(),
                    expected: "11 digits for a NANP number (+1 and 10 digits)",
                });
            }
            check_nanp_national(national)?;
        }
        Ok(E164Number(digits.to_owned()))
    }

    /// The digits, without `+`.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// Whether the number is in the North American Numbering Plan (country code 1).
    pub fn is_nanp(&self) -> bool {
        self.0.starts_with('1')
    }

    /// For a NANP number, its area code (NPA) and exchange code (NXX).
    pub fn nanp_area_and_exchange(&self) -> Option<(&str, &str)> {
        let national = self.0.strip_prefix('1')?;
        Some((national.get(0..3)?, national.get(3..6)?))
    }
}

impl fmt::Display for E164Number {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "+{}", self.0)
    }
}

impl TryFrom<String> for E164Number {
    type Error = NumberError;

    fn try_from(digits: String) -> Result<Self, Self::Error> {
        E164Number::new(&digits)
    }
}

impl From<E164Number> for String {
    fn from(number: E164Number) -> Self {
        number.0
    }
}

/// What a dialled string turned out to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Normalized {
    /// A public number, routed through carriers by its E.164 digits.
    E164(E164Number),
    /// A call to emergency services.
    Emergency {
        /// The plan's emergency number that was dialled ("911").
        code: String,
        /// Country code followed by the emergency number ("1911"): the key under which
        /// carriers that accept emergency calls list them in their decks, and the digits their
        /// translation is applied to. It cannot clash with a real NANP number, since no area
        /// code has the N11 form.
        routing_digits: String,
    },
    /// An internal extension of the tenant; never routed to a carrier.
    Extension(String),
}

impl Normalized {
    /// The digits carriers' decks are searched with and translation applies to; `None` for
    /// an extension.
    pub fn routing_digits(&self) -> Option<&str> {
        match self {
            Normalized::E164(number) => Some(number.digits()),
            Normalized::Emergency { routing_digits, .. } => Some(routing_digits),
            Normalized::Extension(_) => None,
        }
    }

    pub fn is_emergency(&self) -> bool {
        matches!(self, Normalized::Emergency { .. })
    }
}

impl fmt::Display for Normalized {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Normalized::E164(number) => number.fmt(formatter),
            Normalized::Emergency { code, .. } => formatter.write_str(code),
            Normalized::Extension(extension) => formatter.write_str(extension),
        }
    }
}

/// Normalises what a user of a tenant with `plan` dialled. See the module documentation for
/// the rules. `plan` is assumed valid ([`DialPlan::validate`]); an invalid plan gives refusals,
/// never a panic.
pub fn normalize(dialled: &str, plan: &DialPlan) -> Result<Normalized, NumberError> {
    if dialled.chars().nth(MAX_DIALLED_CHARS).is_some() {
        return Err(NumberError::TooManyCharacters);
    }
    let mut digits = String::with_capacity(MAX_DIALLED_CHARS);
    let mut plus = false;
    // Byte offsets; every character before the current one is ASCII (anything else is refused
    // on sight), so they are also character positions.
    let mut characters = dialled.char_indices();
    while let Some((position, character)) = characters.next() {
        match character {
            '0'..='9' => digits.push(character),
            // "+44 (0)20 ...": the national prefix shown in brackets right after the country
            // code (1 to 3 digits) is not dialled after '+'.
            '(' if plus
                && (1..=3).contains(&digits.len())
                && dialled
                    .get(position..)
                    .is_some_and(|rest| rest.starts_with("(0)")) =>
            {
                characters.next();
                characters.next();
            }
            ' ' | '-' | '(' | ')' | '.' => {}
            '+' if !plus && digits.is_empty() => plus = true,
            _ => {
                return Err(NumberError::InvalidCharacter {
                    character,
                    position,
                })
            }
        }
    }
    if digits.is_empty() {
        return Err(NumberError::Empty);
    }
    if plus {
        return international(&digits, plan);
    }
    if let Some(emergency) = emergency(&digits, plan) {
        return Ok(emergency);
    }
    if plan.is_nanp() && is_nanp_service_code(&digits) {
        return Err(NumberError::ServiceCode { code: digits });
    }
    let extension_digits =
        usize::from(plan.extension_min_digits)..=usize::from(plan.extension_max_digits);
    if extension_digits.contains(&digits.len()) {
        return Ok(Normalized::Extension(digits));
    }
    if !plan.international_prefix.is_empty() {
        if let Some(rest) = digits.strip_prefix(plan.international_prefix.as_str()) {
            return international(rest, plan);
        }
    }
    if plan.is_nanp() {
        nanp_national(&digits, plan)
    } else {
        other_national(&digits, plan)
    }
}

/// `digits` as dialled after `+` or the international prefix: country code and number.
fn international(digits: &str, plan: &DialPlan) -> Result<Normalized, NumberError> {
    if let Some(code) = digits
        .strip_prefix(plan.country_code.as_str())
        .filter(|code| plan.emergency_numbers.contains(*code))
    {
        return Ok(emergency_call(code, plan));
    }
    E164Number::new(digits).map(Normalized::E164)
}

/// An emergency number alone or after the national prefix (`911`, `1911`).
fn emergency(digits: &str, plan: &DialPlan) -> Option<Normalized> {
    if plan.emergency_numbers.contains(digits) {
        return Some(emergency_call(digits, plan));
    }
    if plan.national_prefix.is_empty() {
        return None;
    }
    let code = digits.strip_prefix(plan.national_prefix.as_str())?;
    plan.emergency_numbers
        .contains(code)
        .then(|| emergency_call(code, plan))
}

fn emergency_call(code: &str, plan: &DialPlan) -> Normalized {
    Normalized::Emergency {
        code: code.to_owned(),
        routing_digits: format!("{}{code}", plan.country_code),
    }
}

/// NANP 3-digit N11 codes (2 to 9 followed by 11).
fn is_nanp_service_code(digits: &str) -> bool {
    matches!(digits.as_bytes(), [b'2'..=b'9', b'1', b'1'])
}

/// NANP national forms: 7 digits with the home area code, 10 digits, 1 + 10 digits.
fn nanp_national(digits: &str, plan: &DialPlan) -> Result<Normalized, NumberError> {
    let national = match digits.len() {
        7 => {
            let area_code = plan
                .home_area_code
                .as_deref()
                .ok_or(NumberError::MissingHomeAreaCode)?;
            format!("{area_code}{digits}")
        }
        10 => digits.to_owned(),
        11 if digits.starts_with('1') => digits.get(1..).unwrap_or_default().to_owned(),
        _ => {
            return Err(NumberError::WrongLength {
                digits: digits.len(),
                expected: "7, 10 or 11 digits, or 011 and an international number",
            })
        }
    };
    check_nanp_national(&national)?;
    E164Number::new(&format!("1{national}")).map(Normalized::E164)
}

/// National forms outside NANP: the national prefix (if the plan has one) and the national
/// number, which becomes the country code and the national number.
fn other_national(digits: &str, plan: &DialPlan) -> Result<Normalized, NumberError> {
    let national = if plan.national_prefix.is_empty() {
        digits
    } else {
        digits
            .strip_prefix(plan.national_prefix.as_str())
            .ok_or(NumberError::WrongLength {
                digits: digits.len(),
                expected: "an extension, a national number after the national prefix, or an international number",
            })?
    };
    E164Number::new(&format!("{}{national}", plan.country_code)).map(Normalized::E164)
}

/// Checks the area code and exchange of a 10-digit NANP national number.
fn check_nanp_national(national: &str) -> Result<(), NumberError> {
    let area_code = national.get(0..3).unwrap_or(national);
    if !is_nanp_area_code(area_code) {
        return Err(NumberError::InvalidAreaCode {
            area_code: area_code.to_owned(),
        });
    }
    let exchange = national.get(3..6).unwrap_or_default();
    if !matches!(exchange.as_bytes(), [b'2'..=b'9', _, _]) {
        return Err(NumberError::InvalidExchange {
            exchange: exchange.to_owned(),
        });
    }
    Ok(())
}
