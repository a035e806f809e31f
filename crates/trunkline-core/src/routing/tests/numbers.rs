//! Golden tests of normalisation: each dialled form the dial plans define, and each way a
//! dialled string can be malformed.

use crate::routing::{normalize, DialPlan, E164Number, Normalized, NumberError};

/// NANP with a home area code, so 7-digit dialling works.
fn nanp_212() -> DialPlan {
    DialPlan {
        home_area_code: Some("212".to_owned()),
        ..DialPlan::nanp()
    }
}

/// The UK: national prefix 0, international prefix 00, emergency 999 and 112.
fn united_kingdom() -> DialPlan {
    DialPlan {
        country_code: "44".to_owned(),
        home_area_code: None,
        international_prefix: "00".to_owned(),
        national_prefix: "0".to_owned(),
        emergency_numbers: ["999", "112"].into_iter().map(str::to_owned).collect(),
        extension_min_digits: 3,
        extension_max_digits: 4,
    }
}

/// Spain: no national prefix, national numbers dialled as they are.
fn spain() -> DialPlan {
    DialPlan {
        country_code: "34".to_owned(),
        national_prefix: String::new(),
        international_prefix: "00".to_owned(),
        emergency_numbers: ["112"].into_iter().map(str::to_owned).collect(),
        ..united_kingdom()
    }
}

fn render(result: Result<Normalized, NumberError>) -> String {
    match result {
        Ok(Normalized::E164(number)) => number.to_string(),
        Ok(Normalized::Emergency {
            code,
            routing_digits,
        }) => format!("emergency {code} via {routing_digits}"),
        Ok(Normalized::Extension(extension)) => format!("extension {extension}"),
        Err(error) => format!("error {error:?}"),
    }
}

#[track_caller]
fn check(plan: &DialPlan, dialled: &str, expected: &str) {
    assert!(plan.validate().is_ok(), "test plan is invalid");
    let actual = render(normalize(dialled, plan));
    assert_eq!(actual, expected, "dialled {dialled:?}");
}

#[test]
fn nanp_local_seven_digits_use_the_home_area_code() {
    check(&nanp_212(), "5550100", "+12125550100");
    check(&nanp_212(), "555-0100", "+12125550100");
    check(&DialPlan::nanp(), "5550100", "error MissingHomeAreaCode");
    check(
        &nanp_212(),
        "1550100",
        r#"error InvalidExchange { exchange: "155" }"#,
    );
}

#[test]
fn nanp_ten_digits() {
    check(&nanp_212(), "4155550100", "+14155550100");
    check(&nanp_212(), "(415) 555-0100", "+14155550100");
    check(&nanp_212(), "415.555.0100", "+14155550100");
}

#[test]
fn nanp_eleven_digits_and_one_plus() {
    check(&nanp_212(), "14155550100", "+14155550100");
    check(&nanp_212(), "1 (415) 555-0100", "+14155550100");
    check(&nanp_212(), "1-800-555-0100", "+18005550100");
    check(
        &nanp_212(),
        "24155550100",
        r#"error WrongLength { digits: 11, expected: "7, 10 or 11 digits, or 011 and an international number" }"#,
    );
}

#[test]
fn nanp_international_prefix() {
    check(&nanp_212(), "011 44 20 7123 4567", "+442071234567");
    check(&nanp_212(), "01133142685300", "+33142685300");
    check(&nanp_212(), "011 1 415 555 0100", "+14155550100");
    check(&nanp_212(), "0114412", "error TooShort { digits: 4 }");
}

#[test]
fn plus_forms() {
    check(&nanp_212(), "+1 415 555 0100", "+14155550100");
    check(&nanp_212(), "+1 (415) 555-0100", "+14155550100");
    check(&nanp_212(), "+442071234567", "+442071234567");
    check(&nanp_212(), "+44 (0)20 7123 4567", "+442071234567");
    check(&nanp_212(), "+33 (0)1 42 68 53 00", "+33142685300");
    // Only right after the country code is a bracketed 0 a national prefix.
    check(&nanp_212(), "+44 20 (0)7123 456", "+442007123456");
    check(&nanp_212(), "  +44 20 7123 4567 ", "+442071234567");
    check(&united_kingdom(), "+1 415 555 0100", "+14155550100");
}

#[test]
fn emergency_numbers() {
    check(&nanp_212(), "911", "emergency 911 via 1911");
    check(&nanp_212(), "933", "emergency 933 via 1933");
    check(&nanp_212(), "9-1-1", "emergency 911 via 1911");
    check(&nanp_212(), "1911", "emergency 911 via 1911");
    check(&nanp_212(), "+1911", "emergency 911 via 1911");
    check(&nanp_212(), "0111911", "emergency 911 via 1911");
    check(&DialPlan::nanp(), "911", "emergency 911 via 1911");
    check(&united_kingdom(), "999", "emergency 999 via 44999");
    check(&united_kingdom(), "112", "emergency 112 via 44112");
    check(&united_kingdom(), "0999", "emergency 999 via 44999");
}

#[test]
fn nanp_service_codes_are_refused_not_taken_for_extensions() {
    check(&nanp_212(), "411", r#"error ServiceCode { code: "411" }"#);
    check(&nanp_212(), "211", r#"error ServiceCode { code: "211" }"#);
    check(&nanp_212(), "811", r#"error ServiceCode { code: "811" }"#);
    check(&nanp_212(), "412", "extension 412");
}

#[test]
fn extensions() {
    check(&nanp_212(), "12", "extension 12");
    check(&nanp_212(), "1234", "extension 1234");
    check(&nanp_212(), "123456", "extension 123456");
    check(&nanp_212(), "12-34", "extension 1234");
    check(
        &nanp_212(),
        "7",
        r#"error WrongLength { digits: 1, expected: "7, 10 or 11 digits, or 011 and an international number" }"#,
    );
    check(&united_kingdom(), "2001", "extension 2001");
}

#[test]
fn national_forms_outside_nanp() {
    check(&united_kingdom(), "020 7123 4567", "+442071234567");
    check(&united_kingdom(), "00 1 415 555 0100", "+14155550100");
    check(&united_kingdom(), "00 33 1 42 68 53 00", "+33142685300");
    check(
        &united_kingdom(),
        "2071234567",
        r#"error WrongLength { digits: 10, expected: "an extension, a national number after the national prefix, or an international number" }"#,
    );
    check(&spain(), "912 345 678", "+34912345678");
}

#[test]
fn malformed_input() {
    let plan = nanp_212();
    check(&plan, "", "error Empty");
    check(&plan, " - ", "error Empty");
    check(&plan, "+", "error Empty");
    check(
        &plan,
        "abc",
        "error InvalidCharacter { character: 'a', position: 0 }",
    );
    check(
        &plan,
        "415555010x",
        "error InvalidCharacter { character: 'x', position: 9 }",
    );
    check(
        &plan,
        "*67 415 555 0100",
        "error InvalidCharacter { character: '*', position: 0 }",
    );
    check(
        &plan,
        "1+415 555 0100",
        "error InvalidCharacter { character: '+', position: 1 }",
    );
    check(
        &plan,
        "++14155550100",
        "error InvalidCharacter { character: '+', position: 1 }",
    );
    check(
        &plan,
        "sip:4155550100@example.com",
        "error InvalidCharacter { character: 's', position: 0 }",
    );
    check(
        &plan,
        "415\u{00e9}5550100",
        "error InvalidCharacter { character: '\u{00e9}', position: 3 }",
    );
    check(&plan, &"1".repeat(65), "error TooManyCharacters");
    check(&plan, "+4412345678901234", "error TooLong { digits: 16 }");
    check(&plan, "+44123", "error TooShort { digits: 5 }");
    check(&plan, "+0441234567", "error InvalidCountryCode");
    check(
        &plan,
        "+1415555010",
        r#"error WrongLength { digits: 10, expected: "11 digits for a NANP number (+1 and 10 digits)" }"#,
    );
    check(
        &plan,
        "55501000",
        r#"error WrongLength { digits: 8, expected: "7, 10 or 11 digits, or 011 and an international number" }"#,
    );
    check(
        &plan,
        "0125550100",
        r#"error InvalidAreaCode { area_code: "012" }"#,
    );
    check(
        &plan,
        "1125550100",
        r#"error InvalidAreaCode { area_code: "112" }"#,
    );
    check(
        &plan,
        "9115550100",
        r#"error InvalidAreaCode { area_code: "911" }"#,
    );
    check(
        &plan,
        "4150550100",
        r#"error InvalidExchange { exchange: "055" }"#,
    );
    check(
        &plan,
        "+1 415 155 0100",
        r#"error InvalidExchange { exchange: "155" }"#,
    );
}

#[test]
fn errors_read_as_sentences() {
    let error = normalize("5550100", &DialPlan::nanp()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "7-digit dialling needs a home area code in the tenant's dial plan"
    );
    let error = normalize("+4412345678901234", &DialPlan::nanp()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the number has 16 digits; E.164 allows at most 15"
    );
}

#[test]
fn e164_numbers_are_checked_when_deserialised() {
    let number: E164Number = serde_json::from_str("\"14155550100\"").unwrap();
    assert_eq!(number.to_string(), "+14155550100");
    assert!(serde_json::from_str::<E164Number>("\"+14155550100\"").is_err());
    assert!(serde_json::from_str::<E164Number>("\"1415555\"").is_err());
    assert!(serde_json::from_str::<E164Number>("\"0441234567\"").is_err());
}

mod properties {
    use proptest::prelude::*;

    use crate::routing::{normalize, DialPlan, Normalized, MAX_E164_DIGITS, MIN_E164_DIGITS};

    proptest! {
        /// Whatever is dialled, normalisation returns (never panics) and an E.164 result keeps
        /// the invariants every later step relies on.
        #[test]
        fn any_input_gives_a_valid_result_or_an_error(dialled in "[+0-9 ()a.\\-]{0,70}") {
            let plan = DialPlan { home_area_code: Some("415".to_owned()), ..DialPlan::nanp() };
            if let Ok(Normalized::E164(number)) = normalize(&dialled, &plan) {
                let digits = number.digits();
                prop_assert!((MIN_E164_DIGITS..=MAX_E164_DIGITS).contains(&digits.len()));
                prop_assert!(digits.bytes().all(|byte| byte.is_ascii_digit()));
                prop_assert!(!digits.starts_with('0'));
                if digits.starts_with('1') {
                    prop_assert_eq!(digits.len(), 11);
                }
            }
        }

        /// The separators people type never change the number.
        #[test]
        fn separators_do_not_change_the_number(
            number in "[2-9]([02-9][0-9]|1[02-9])[2-9][0-9]{6}",
            separators in proptest::collection::vec("[ ().\\-]{0,2}", 10),
        ) {
            let plan = DialPlan::nanp();
            let plain = normalize(&number, &plan).unwrap();
            let decorated: String = number
                .chars()
                .zip(&separators)
                .map(|(digit, separator)| format!("{separator}{digit}"))
                .collect();
            prop_assert_eq!(normalize(&decorated, &plan).unwrap(), plain.clone());
            let with_one = format!("1{number}");
            prop_assert_eq!(normalize(&with_one, &plan).unwrap(), plain.clone());
            let with_plus = format!("+1{number}");
            prop_assert_eq!(normalize(&with_plus, &plan).unwrap(), plain);
        }
    }
}
