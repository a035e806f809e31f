//! Tests of the configuration types: the SIP URI parser, validation naming the field at fault,
//! and the serialised forms that go through Raft.

use std::collections::BTreeSet;

use crate::routing::{
    Capability, Carrier, DialPlan, Gateway, Rate, SipUri, Strategy, Tenant, Translation, Transport,
};

/// Parses `text` and renders the result: the canonical URI and its transport, or the error.
#[track_caller]
fn check_uri(text: &str, expected: &str) {
    let actual = match SipUri::parse(text) {
        Ok(uri) => format!("{uri} ({})", uri.transport()),
        Err(error) => format!("error {error}"),
    };
    assert_eq!(actual, expected, "uri {text:?}");
}

#[test]
fn sip_uris_parse_strictly() {
    check_uri("sip:gw1.example.com", "sip:gw1.example.com (udp)");
    check_uri("sip:gw1.example.com:5060", "sip:gw1.example.com:5060 (udp)");
    check_uri(
        "sip:GW1.Example.COM;transport=TCP",
        "sip:gw1.example.com;transport=tcp (tcp)",
    );
    check_uri(
        "SIP:192.0.2.10:5080;transport=udp",
        "sip:192.0.2.10:5080 (udp)",
    );
    check_uri(
        "sip:[2001:db8::1]:5061;transport=tls",
        "sip:[2001:db8::1]:5061;transport=tls (tls)",
    );
    check_uri("sips:gw.example.com", "sips:gw.example.com (tls)");
    check_uri(
        "sips:gw.example.com:5061;transport=tcp",
        "sips:gw.example.com:5061 (tls)",
    );
    check_uri("sip:localhost", "sip:localhost (udp)");

    check_uri("gw.example.com", "error uri: must start with sip: or sips:");
    check_uri(
        "tel:+14155550100",
        "error uri: must start with sip: or sips:",
    );
    check_uri(
        "sip:",
        "error uri: host must be a host name, an IPv4 address or a bracketed IPv6 address",
    );
    check_uri(
        "sip:user@gw.example.com",
        "error uri: must not have a user part",
    );
    check_uri(
        "sip:gw.example.com:0",
        "error uri: port must be a number from 1 to 65535",
    );
    check_uri(
        "sip:gw.example.com:65536",
        "error uri: port must be a number from 1 to 65535",
    );
    check_uri(
        "sip:gw.example.com:",
        "error uri: port must be a number from 1 to 65535",
    );
    check_uri(
        "sip:gw.example.com:+50",
        "error uri: port must be a number from 1 to 65535",
    );
    check_uri(
        "sip:gw.example.com;transport=sctp",
        "error uri: transport must be udp, tcp or tls",
    );
    check_uri(
        "sip:gw.example.com;transport=tcp;transport=udp",
        "error uri: transport is given twice",
    );
    check_uri(
        "sip:gw.example.com;lr",
        "error uri: only the transport parameter is allowed",
    );
    check_uri(
        "sip:gw.example.com;maddr=x",
        "error uri: only the transport parameter is allowed",
    );
    check_uri(
        "sips:gw.example.com;transport=udp",
        "error uri: sips: cannot use transport=udp",
    );
    for bad_host in [
        "sip:gw example.com",
        "sip:-gw.example.com",
        "sip:gw-.example.com",
        "sip:gw..example.com",
        "sip:gw_1.example.com",
        "sip:256.0.0.1",
        "sip:1.2.3",
        "sip:[2001:db8::1",
        "sip:[not-v6]",
        "sip:2001:db8::1",
        "sip:gw.example.com>",
    ] {
        assert!(
            SipUri::parse(bad_host).is_err(),
            "{bad_host:?} was accepted"
        );
    }
    let long_host = format!("sip:{}.com", "a".repeat(260));
    assert!(SipUri::parse(&long_host).is_err());
}

#[test]
fn sip_uris_serialise_as_strings_and_are_checked_when_read() {
    let uri = SipUri::parse("sip:gw.example.com:5080;transport=tcp").unwrap();
    let json = serde_json::to_string(&uri).unwrap();
    assert_eq!(json, r#""sip:gw.example.com:5080;transport=tcp""#);
    assert_eq!(serde_json::from_str::<SipUri>(&json).unwrap(), uri);
    assert!(serde_json::from_str::<SipUri>(r#""sip:user@gw""#).is_err());
}

fn tenant() -> Tenant {
    Tenant {
        name: "acme".to_owned(),
        dial_plan: DialPlan::nanp(),
        strategy: Strategy::LeastCost,
        allowed_carriers: vec!["alpha".to_owned(), "beta".to_owned()],
        required_capabilities: BTreeSet::from([Capability::Tls]),
        policy: Default::default(),
        limits: Default::default(),
    }
}

fn carrier() -> Carrier {
    Carrier {
        name: "alpha".to_owned(),
        capabilities: BTreeSet::from([Capability::T38]),
        translation: Translation {
            strip_digits: 1,
            tech_prefix: "1234#".to_owned(),
            plus: false,
        },
        final_codes: BTreeSet::from([503]),
        enabled: true,
    }
}

fn gateway() -> Gateway {
    Gateway {
        name: "alpha-east".to_owned(),
        carrier: "alpha".to_owned(),
        uri: SipUri::parse("sip:east.alpha.example;transport=tls").unwrap(),
        priority: 10,
        weight: 0,
        max_concurrent_calls: Some(100),
        enabled: true,
        probe: Default::default(),
    }
}

fn rate() -> Rate {
    Rate {
        prefix: "1415".to_owned(),
        rate_micros_per_minute: 4_000,
        connect_fee_micros: 0,
        description: "USA - California".to_owned(),
        effective_from_ms: Some(1_000),
        effective_until_ms: Some(2_000),
    }
}

/// Validation result as "ok" or the name of the field it blames.
fn blamed(result: Result<(), crate::FieldError>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(error) => error.field().to_owned(),
    }
}

#[test]
fn valid_configuration_passes() {
    assert_eq!(blamed(tenant().validate()), "ok");
    assert_eq!(blamed(carrier().validate()), "ok");
    assert_eq!(blamed(gateway().validate()), "ok");
    assert_eq!(blamed(rate().validate()), "ok");
    assert_eq!(blamed(DialPlan::nanp().validate()), "ok");
}

#[test]
fn validation_names_the_field() {
    let mut tenant_cases: Vec<(Tenant, &str)> = Vec::new();
    let mut case = tenant();
    case.name = String::new();
    tenant_cases.push((case, "name"));
    let mut case = tenant();
    case.name = "acme corp".to_owned();
    tenant_cases.push((case, "name"));
    let mut case = tenant();
    case.allowed_carriers.push("alpha".to_owned());
    tenant_cases.push((case, "allowed_carriers"));
    let mut case = tenant();
    case.dial_plan.home_area_code = Some("112".to_owned());
    tenant_cases.push((case, "dial_plan.home_area_code"));
    let mut case = tenant();
    case.dial_plan.country_code = "0".to_owned();
    tenant_cases.push((case, "dial_plan.country_code"));
    let mut case = tenant();
    case.dial_plan.national_prefix = "0".to_owned();
    tenant_cases.push((case, "dial_plan.national_prefix"));
    let mut case = tenant();
    case.dial_plan.international_prefix = "+".to_owned();
    tenant_cases.push((case, "dial_plan.international_prefix"));
    let mut case = tenant();
    case.dial_plan.extension_max_digits = 7;
    tenant_cases.push((case, "dial_plan.extension_max_digits"));
    let mut case = tenant();
    case.dial_plan.extension_min_digits = 0;
    tenant_cases.push((case, "dial_plan.extension_min_digits"));
    let mut case = tenant();
    case.dial_plan.emergency_numbers.clear();
    tenant_cases.push((case, "dial_plan.emergency_numbers"));
    for (case, field) in tenant_cases {
        assert_eq!(blamed(case.validate()), field, "{case:?}");
    }

    let mut case = carrier();
    case.translation.tech_prefix = "12;drop".to_owned();
    assert_eq!(blamed(case.validate()), "translation.tech_prefix");
    let mut case = carrier();
    case.translation.plus = true;
    assert_eq!(blamed(case.validate()), "translation.plus");
    let mut case = carrier();
    case.translation.strip_digits = 16;
    assert_eq!(blamed(case.validate()), "translation.strip_digits");
    let mut case = carrier();
    case.final_codes.insert(200);
    assert_eq!(blamed(case.validate()), "final_codes");

    let mut case = gateway();
    case.max_concurrent_calls = Some(0);
    assert_eq!(blamed(case.validate()), "max_concurrent_calls");
    let mut case = gateway();
    case.carrier = String::new();
    assert_eq!(blamed(case.validate()), "carrier");

    for bad_prefix in ["", "44a", "+44", "1234567890123456", " 44"] {
        let mut case = rate();
        case.prefix = bad_prefix.to_owned();
        assert_eq!(blamed(case.validate()), "prefix", "prefix {bad_prefix:?}");
    }
    let mut case = rate();
    case.effective_until_ms = Some(1_000);
    assert_eq!(blamed(case.validate()), "effective_until");
    let mut case = rate();
    case.description = "x".repeat(257);
    assert_eq!(blamed(case.validate()), "description");
}

#[test]
fn error_messages_name_field_and_fix() {
    let mut case = rate();
    case.prefix = "44a".to_owned();
    assert_eq!(
        case.validate().unwrap_err().to_string(),
        "prefix: must be 1 to 15 digits"
    );
}

#[test]
fn names_parse_from_their_wire_spelling() {
    assert_eq!("t38".parse::<Capability>().unwrap(), Capability::T38);
    assert_eq!("TLS".parse::<Capability>().unwrap(), Capability::Tls);
    assert_eq!("srtp".parse::<Capability>().unwrap(), Capability::Srtp);
    assert_eq!(
        "fax".parse::<Capability>().unwrap_err().field(),
        "capability"
    );
    assert_eq!(
        "least-cost".parse::<Strategy>().unwrap(),
        Strategy::LeastCost
    );
    assert_eq!("weighted".parse::<Strategy>().unwrap(), Strategy::Weighted);
    assert!("cheapest".parse::<Strategy>().is_err());
    for strategy in [Strategy::LeastCost, Strategy::Priority, Strategy::Weighted] {
        assert_eq!(strategy.to_string().parse::<Strategy>().unwrap(), strategy);
        let json = serde_json::to_string(&strategy).unwrap();
        assert_eq!(json, format!("\"{strategy}\""));
    }
    assert_eq!(serde_json::to_string(&Capability::T38).unwrap(), r#""t38""#);
}

#[test]
fn configuration_round_trips_through_serde() {
    let tenant = tenant();
    let json = serde_json::to_string(&tenant).unwrap();
    assert_eq!(serde_json::from_str::<Tenant>(&json).unwrap(), tenant);
    let gateway = gateway();
    let json = serde_json::to_string(&gateway).unwrap();
    assert_eq!(serde_json::from_str::<Gateway>(&json).unwrap(), gateway);
    assert_eq!(gateway.uri.transport(), Transport::Tls);
}

#[test]
fn translation_is_strip_then_tech_prefix_then_plus() {
    let translate = |strip_digits, tech_prefix: &str, plus, digits: &str| {
        Translation {
            strip_digits,
            tech_prefix: tech_prefix.to_owned(),
            plus,
        }
        .apply(digits)
    };
    assert_eq!(
        translate(0, "", false, "14155550100").as_deref(),
        Some("14155550100")
    );
    assert_eq!(
        translate(1, "", false, "14155550100").as_deref(),
        Some("4155550100")
    );
    assert_eq!(
        translate(0, "", true, "14155550100").as_deref(),
        Some("+14155550100")
    );
    assert_eq!(
        translate(1, "0101", false, "14155550100").as_deref(),
        Some("01014155550100")
    );
    assert_eq!(
        translate(0, "77#", true, "442071234567").as_deref(),
        Some("77#+442071234567")
    );
    assert_eq!(translate(4, "", false, "1911").as_deref(), None);
    assert_eq!(translate(15, "9", false, "1911").as_deref(), None);
    assert_eq!(translate(3, "", false, "1911").as_deref(), Some("1"));
}

#[test]
fn a_request_uri_puts_the_dial_string_in_the_gateways_uri() {
    let uri = |text: &str, user: &str| SipUri::parse(text).unwrap().request_uri(user);
    assert_eq!(
        uri("sip:gw.example.net", "+442071234567"),
        "sip:+442071234567@gw.example.net"
    );
    assert_eq!(
        uri("sip:10.0.0.1:5080;transport=tcp", "0044207"),
        "sip:0044207@10.0.0.1:5080;transport=tcp"
    );
    assert_eq!(
        uri("sips:[2001:db8::1]:5061", "911"),
        "sips:911@[2001:db8::1]:5061"
    );
    // A tech prefix's '#' is escaped; '*' and '+' are fine as they are.
    assert_eq!(
        uri("sip:gw.example.net", "1010#*44"),
        "sip:1010%23*44@gw.example.net"
    );
    // Every width of port, and the URI alone as Display writes it.
    for port in ["1", "10", "506", "5060", "65535"] {
        let text = format!("sip:gw.example.net:{port};transport=tls");
        assert_eq!(SipUri::parse(&text).unwrap().to_string(), text);
        assert_eq!(
            uri(&text, "1"),
            format!("sip:1@gw.example.net:{port};transport=tls")
        );
    }
}
