//! Validation of DIDs, devices and continuity plans: each error names the field at fault.

use super::*;
use crate::inbound::{MAX_CONTINUITY_TARGETS, MAX_FAILURE_CODES};

/// Checks that `did` validates, or fails naming `field`.
fn check_did(did: Did, field: Option<&str>) {
    match (did.validate(), field) {
        (Ok(()), None) => {}
        (Err(error), Some(field)) => assert_eq!(error.field(), field, "{error}"),
        (result, expected) => panic!("{did:?}: got {result:?}, expected field {expected:?}"),
    }
}

#[test]
fn numbers_must_be_e164_with_plus() {
    check_did(did("+14155550100", None, None), None);
    check_did(did("+4420", None, None), Some("number"));
    check_did(did("+12345678", None, None), None);
    check_did(did("+1234567890123456", None, None), Some("number"));
    check_did(did("14155550100", None, None), Some("number"));
    check_did(did("+04155550100", None, None), Some("number"));
    check_did(did("+1 415 555 0100", None, None), Some("number"));
    check_did(did("(415) 555-0100", None, None), Some("number"));
}

#[test]
fn device_aors_are_strict() {
    check_did(
        did("+14155550100", Some("sip:alice@example.com"), None),
        None,
    );
    check_did(
        did("+14155550100", Some("sips:alice@10.0.0.1:5061"), None),
        None,
    );
    for bad in [
        "alice@example.com",
        "sip:example.com",
        "sip:@example.com",
        "sip:alice@Example.com",
        "SIP:alice@example.com",
        "sip:alice@example.com;transport=tcp",
        "sip:al ice@example.com",
        "sip:alice@example.com:0",
        "sip:alice@example.com:70000",
    ] {
        check_did(did("+14155550100", Some(bad), None), Some("device"));
    }
    let long = format!("sip:{}@example.com", "a".repeat(300));
    check_did(did("+14155550100", Some(&long), None), Some("device"));
}

#[test]
fn continuity_plans_are_bounded_and_checked() {
    let ok = plan(vec![number_target("+12125550100"), voicemail()]);
    check_did(did("+14155550100", None, Some(ok)), None);

    let too_many = plan(vec![voicemail(); MAX_CONTINUITY_TARGETS + 1]);
    check_did(
        did("+14155550100", None, Some(too_many)),
        Some("continuity.targets"),
    );

    let mut short = voicemail();
    short.ring_timeout_ms = 999;
    check_did(
        did("+14155550100", None, Some(plan(vec![short]))),
        Some("continuity.targets.ring_timeout_ms"),
    );

    let bad_number = plan(vec![number_target("2125550100")]);
    check_did(
        did("+14155550100", None, Some(bad_number)),
        Some("continuity.targets.destination.number"),
    );

    let bad_sip = plan(vec![ContinuityTarget {
        destination: Destination::Sip("http://example.com".to_owned()),
        ring_timeout_ms: 10_000,
    }]);
    check_did(
        did("+14155550100", None, Some(bad_sip)),
        Some("continuity.targets.destination.sip"),
    );

    let bad_mailbox = plan(vec![ContinuityTarget {
        destination: Destination::Voicemail {
            mailbox: "".to_owned(),
        },
        ring_timeout_ms: 10_000,
    }]);
    check_did(
        did("+14155550100", None, Some(bad_mailbox)),
        Some("continuity.targets.destination.mailbox"),
    );
}

#[test]
fn triggers_are_checked() {
    let with = |triggers: Triggers| {
        did(
            "+14155550100",
            None,
            Some(ContinuityPlan {
                targets: vec![voicemail()],
                triggers,
            }),
        )
    };
    check_did(with(Triggers::default()), None);
    let busy_as_failure = Triggers {
        failure_codes: codes(&[486]),
        ..Triggers::default()
    };
    check_did(
        with(busy_as_failure),
        Some("continuity.triggers.failure_codes"),
    );
    let not_final = Triggers {
        failure_codes: codes(&[302]),
        ..Triggers::default()
    };
    check_did(with(not_final), Some("continuity.triggers.failure_codes"));
    let many = Triggers {
        failure_codes: (400..400 + MAX_FAILURE_CODES as u16 + 1).collect(),
        ..Triggers::default()
    };
    check_did(with(many), Some("continuity.triggers.failure_codes"));
    let long_wait = Triggers {
        no_answer_ms: Some(10_000_000),
        ..Triggers::default()
    };
    check_did(with(long_wait), Some("continuity.triggers.no_answer_ms"));
}

#[test]
fn default_triggers_match_the_issue() {
    let triggers = Triggers::default();
    assert!(triggers.not_registered && triggers.unreachable && !triggers.busy);
    for code in [408, 480, 500, 503, 599] {
        assert!(triggers.is_failure(code), "{code}");
    }
    for code in [404, 486, 600, 603, 484] {
        assert!(!triggers.is_failure(code), "{code}");
    }
}

#[test]
fn a_did_forwarding_to_itself_is_refused() {
    let own = plan(vec![number_target("+14155550100")]);
    let error = did("+14155550100", None, Some(own)).validate().unwrap_err();
    assert_eq!(error.field(), "continuity.targets");
    assert!(
        error.to_string().contains("+14155550100 -> +14155550100"),
        "{error}"
    );
}
