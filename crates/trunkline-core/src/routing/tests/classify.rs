//! Golden tests of destination classes, one line per rule of the classification.

use crate::routing::{
    classify, normalize, DestinationClass, DialPlan, HighRiskList, NANP_TOLL_FREE_AREA_CODES,
};

fn nanp_212() -> DialPlan {
    DialPlan {
        home_area_code: Some("212".to_owned()),
        ..DialPlan::nanp()
    }
}

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

/// Cuba, and one Caribbean NANP area code the operator singled out.
fn high_risk() -> HighRiskList {
    HighRiskList::new(["53".to_owned(), "1284".to_owned()]).unwrap()
}

#[track_caller]
fn check(plan: &DialPlan, dialled: &str, expected: DestinationClass) {
    let normalized = normalize(dialled, plan).unwrap();
    assert_eq!(
        classify(&normalized, plan, &high_risk()),
        expected,
        "dialled {dialled:?} ({normalized})"
    );
}

#[test]
fn emergency_and_internal() {
    check(&nanp_212(), "911", DestinationClass::Emergency);
    check(&nanp_212(), "933", DestinationClass::Emergency);
    check(&nanp_212(), "1911", DestinationClass::Emergency);
    check(&united_kingdom(), "999", DestinationClass::Emergency);
    check(&nanp_212(), "2001", DestinationClass::Internal);
}

#[test]
fn every_nanp_toll_free_code() {
    for area_code in NANP_TOLL_FREE_AREA_CODES {
        check(
            &nanp_212(),
            &format!("1{area_code}5550100"),
            DestinationClass::TollFree,
        );
    }
    check(&nanp_212(), "8005550100", DestinationClass::TollFree);
    check(&nanp_212(), "+1 888 555 0100", DestinationClass::TollFree);
    // 822 is reserved for toll-free but not in service: an ordinary area code until it is.
    check(&nanp_212(), "8225550100", DestinationClass::National);
    // From outside NANP, toll-free numbers are neither free nor national.
    check(
        &united_kingdom(),
        "+1 800 555 0100",
        DestinationClass::International,
    );
}

#[test]
fn premium_is_area_code_900_and_exchange_976() {
    check(&nanp_212(), "9005550100", DestinationClass::Premium);
    check(&nanp_212(), "1 900 976 0100", DestinationClass::Premium);
    check(&nanp_212(), "2129760100", DestinationClass::Premium);
    check(&nanp_212(), "9760100", DestinationClass::Premium);
    check(&nanp_212(), "+1 876 976 0100", DestinationClass::Premium);
    check(
        &united_kingdom(),
        "+1 900 555 0100",
        DestinationClass::Premium,
    );
    // A 976 exchange in a toll-free area code is toll-free.
    check(&nanp_212(), "8009760100", DestinationClass::TollFree);
    // 976 elsewhere in the number means nothing.
    check(&nanp_212(), "2125550976", DestinationClass::National);
}

#[test]
fn national_is_the_plans_country() {
    check(&nanp_212(), "5550100", DestinationClass::National);
    check(&nanp_212(), "4155550100", DestinationClass::National);
    check(&nanp_212(), "+1 604 555 0100", DestinationClass::National);
    // US territories share the domestic plan.
    check(&nanp_212(), "7875550100", DestinationClass::National);
    check(
        &united_kingdom(),
        "020 7123 4567",
        DestinationClass::National,
    );
    check(
        &united_kingdom(),
        "+44 20 7123 4567",
        DestinationClass::National,
    );
}

#[test]
fn international_is_any_other_country() {
    check(
        &nanp_212(),
        "011 44 20 7123 4567",
        DestinationClass::International,
    );
    check(
        &nanp_212(),
        "+33 1 42 68 53 00",
        DestinationClass::International,
    );
    check(
        &united_kingdom(),
        "+1 415 555 0100",
        DestinationClass::International,
    );
    // Caribbean NANP countries share country code 1 but are international.
    check(
        &nanp_212(),
        "1 876 555 0100",
        DestinationClass::International,
    );
    check(&nanp_212(), "8095550100", DestinationClass::International);
    check(
        &nanp_212(),
        "+1 441 555 0100",
        DestinationClass::International,
    );
    // 44 is not a prefix of 441 as a country: the UK plan's +1 441 is still international.
    check(
        &united_kingdom(),
        "+1 441 555 0100",
        DestinationClass::International,
    );
}

#[test]
fn the_operator_high_risk_list_wins() {
    check(&nanp_212(), "011 53 7 123 4567", DestinationClass::HighRisk);
    check(&nanp_212(), "+5371234567", DestinationClass::HighRisk);
    check(&nanp_212(), "1 284 555 0100", DestinationClass::HighRisk);
    check(
        &united_kingdom(),
        "+1 284 555 0100",
        DestinationClass::HighRisk,
    );
    // 5 alone is not on the list: Peru (51) is ordinary.
    check(
        &nanp_212(),
        "+51 1 234 5678",
        DestinationClass::International,
    );
}

#[test]
fn high_risk_lists_hold_digits_only() {
    let error = HighRiskList::new(["53".to_owned(), "+44".to_owned()]).unwrap_err();
    assert_eq!(error.field(), "high_risk_prefixes");
    assert!(HighRiskList::new([String::new()]).is_err());
    assert!(HighRiskList::new(["1".repeat(16)]).is_err());
    assert!(serde_json::from_str::<HighRiskList>(r#"["53", "x"]"#).is_err());
    let list: HighRiskList = serde_json::from_str(r#"["53", "1284", "53"]"#).unwrap();
    assert_eq!(list.prefixes().collect::<Vec<_>>(), ["1284", "53"]);
}
