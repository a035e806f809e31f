//! Planning an inbound call and what happens when a leg ends.

use super::*;
use crate::{
    inbound::{
        after_leg, evaluate, plan_inbound, InboundPlan, InboundRefusal, Leg, LegOutcome, NextStep,
        SkipReason, Trigger, Verdict, DEFAULT_RING_TIMEOUT_MS,
    },
    Error,
};

const ALICE: &str = "sip:alice@example.com";
const DID: &str = "+14155550100";

/// A short summary of legs: "edge/contact" for device legs, the destination for the others.
fn summary(plan: &InboundPlan) -> Vec<String> {
    plan.legs
        .iter()
        .map(|leg| match leg {
            Leg::Device { edge, contact, .. } => format!("{edge}/{contact}"),
            Leg::Continuity {
                destination: Destination::Number(number),
                ..
            } => number.clone(),
            Leg::Continuity {
                destination: Destination::Sip(uri),
                ..
            } => uri.clone(),
            Leg::Continuity {
                destination: Destination::Voicemail { mailbox },
                ..
            } => format!("vm:{mailbox}"),
        })
        .collect()
}

/// Plans `DID` at `now_ms` with `down` edges and checks the legs and skip reason.
fn check(
    config: &InboundConfig,
    now_ms: u64,
    down: &[&str],
    legs: &[&str],
    reason: Option<SkipReason>,
) {
    let plan = plan_inbound(config, DID, now_ms, |edge| down.contains(&edge)).unwrap();
    assert_eq!(summary(&plan), legs);
    assert_eq!(plan.reason, reason);
    assert_eq!(plan.straight_to_continuity, reason.is_some());
}

fn registered(
    device_plan: Option<ContinuityPlan>,
    did_plan: Option<ContinuityPlan>,
) -> InboundConfig {
    config_with(&[
        (1, put_device(device(ALICE, device_plan))),
        (2, put_did(did(DID, Some(ALICE), did_plan))),
        (
            1_000,
            InboundCommand::Register {
                bindings: vec![
                    update(ALICE, "edge-b", "sip:a@10.0.0.2", 60_000),
                    update(ALICE, "edge-a", "sip:a@10.0.0.1", 60_000),
                ],
            },
        ),
        (
            2_000,
            InboundCommand::Register {
                bindings: vec![update(ALICE, "edge-c", "sip:a@10.0.0.3", 60_000)],
            },
        ),
    ])
}

#[test]
fn device_legs_most_recent_first_then_continuity() {
    let config = registered(
        None,
        Some(plan(vec![number_target("+12125550100"), voicemail()])),
    );
    check(
        &config,
        3_000,
        &[],
        &[
            "edge-c/sip:a@10.0.0.3",
            "edge-a/sip:a@10.0.0.1",
            "edge-b/sip:a@10.0.0.2",
            "+12125550100",
            "vm:box1",
        ],
        None,
    );
    let plan = plan_inbound(&config, DID, 3_000, |_| false).unwrap();
    assert_eq!(plan.device_legs, 3);
    assert!(matches!(
        plan.legs[0],
        Leg::Device {
            ring_timeout_ms: 20_000,
            ..
        }
    ));
    assert!(matches!(
        plan.legs[3],
        Leg::Continuity {
            ring_timeout_ms: 20_000,
            ..
        }
    ));
}

#[test]
fn down_edges_are_skipped_and_all_down_goes_straight_to_continuity() {
    let config = registered(None, Some(plan(vec![voicemail()])));
    check(
        &config,
        3_000,
        &["edge-c"],
        &["edge-a/sip:a@10.0.0.1", "edge-b/sip:a@10.0.0.2", "vm:box1"],
        None,
    );
    check(
        &config,
        3_000,
        &["edge-a", "edge-b", "edge-c"],
        &["vm:box1"],
        Some(SkipReason::AllEdgesDown),
    );
}

#[test]
fn expired_bindings_are_not_rung() {
    let config = registered(None, Some(plan(vec![voicemail()])));
    // edge-a and edge-b expire at 61_000, edge-c at 62_000.
    check(
        &config,
        60_999,
        &[],
        &[
            "edge-c/sip:a@10.0.0.3",
            "edge-a/sip:a@10.0.0.1",
            "edge-b/sip:a@10.0.0.2",
            "vm:box1",
        ],
        None,
    );
    check(
        &config,
        61_000,
        &[],
        &["edge-c/sip:a@10.0.0.3", "vm:box1"],
        None,
    );
    check(
        &config,
        62_000,
        &[],
        &["vm:box1"],
        Some(SkipReason::NotRegistered),
    );
}

#[test]
fn a_disabled_device_goes_to_continuity_only() {
    let mut config = registered(None, Some(plan(vec![voicemail()])));
    let mut disabled = device(ALICE, None);
    disabled.enabled = false;
    config.apply(2_500, &put_device(disabled), tenants).unwrap();
    check(
        &config,
        3_000,
        &[],
        &["vm:box1"],
        Some(SkipReason::Disabled),
    );
}

#[test]
fn the_plan_falls_back_from_did_to_device_to_tenant() {
    let did_plan = plan(vec![number_target("+12125550100")]);
    let device_plan = plan(vec![number_target("+13125550100")]);
    let tenant_plan = plan(vec![voicemail()]);
    let mut config = registered(Some(device_plan.clone()), Some(did_plan));
    config
        .apply(
            2_500,
            &InboundCommand::SetTenantContinuity {
                tenant: TENANT.to_owned(),
                plan: Some(tenant_plan),
            },
            tenants,
        )
        .unwrap();
    check(
        &config,
        70_000,
        &[],
        &["+12125550100"],
        Some(SkipReason::NotRegistered),
    );
    config
        .apply(2_600, &put_did(did(DID, Some(ALICE), None)), tenants)
        .unwrap();
    check(
        &config,
        70_000,
        &[],
        &["+13125550100"],
        Some(SkipReason::NotRegistered),
    );
    config
        .apply(2_700, &put_device(device(ALICE, None)), tenants)
        .unwrap();
    check(
        &config,
        70_000,
        &[],
        &["vm:box1"],
        Some(SkipReason::NotRegistered),
    );
}

#[test]
fn refusals() {
    let config = registered(None, None);
    let unknown = plan_inbound(&config, "+19999999999", 3_000, |_| false).unwrap_err();
    assert_eq!(
        unknown,
        InboundRefusal::UnknownDid {
            did: "+19999999999".to_owned()
        }
    );
    assert_eq!(unknown.to_error(), Error::not_found("did", "+19999999999"));
    assert_eq!(unknown.sip_code(), 404);

    // Registered, no continuity at all: device legs only.
    check(
        &config,
        3_000,
        &[],
        &[
            "edge-c/sip:a@10.0.0.3",
            "edge-a/sip:a@10.0.0.1",
            "edge-b/sip:a@10.0.0.2",
        ],
        None,
    );
    let plan = plan_inbound(&config, DID, 3_000, |_| false).unwrap();
    assert!(matches!(
        plan.legs[0],
        Leg::Device {
            ring_timeout_ms: 20_000,
            ..
        }
    ));
    // Not registered and nowhere to go.
    let refusal = plan_inbound(&config, DID, 70_000, |_| false).unwrap_err();
    assert_eq!(
        refusal,
        InboundRefusal::Unavailable {
            did: DID.to_owned(),
            reason: SkipReason::NotRegistered
        }
    );
    assert_eq!(refusal.sip_code(), 480);

    // No device and no target.
    let forward_only = config_with(&[(1, put_did(did(DID, None, None)))]);
    let refusal = plan_inbound(&forward_only, DID, 3_000, |_| false).unwrap_err();
    assert_eq!(
        refusal,
        InboundRefusal::NoDestination {
            did: DID.to_owned()
        }
    );
    assert!(refusal
        .to_string()
        .contains("no device and has no continuity target"));
}

#[test]
fn triggers_off_keep_the_call_off_continuity() {
    let quiet = ContinuityPlan {
        targets: vec![voicemail()],
        triggers: Triggers {
            not_registered: false,
            unreachable: false,
            no_answer_ms: None,
            ..Triggers::default()
        },
    };
    let config = registered(None, Some(quiet));
    let refusal = plan_inbound(&config, DID, 70_000, |_| false).unwrap_err();
    assert_eq!(
        refusal,
        InboundRefusal::Unavailable {
            did: DID.to_owned(),
            reason: SkipReason::NotRegistered
        }
    );
    let refusal = plan_inbound(&config, DID, 3_000, |_| true).unwrap_err();
    assert_eq!(
        refusal,
        InboundRefusal::Unavailable {
            did: DID.to_owned(),
            reason: SkipReason::AllEdgesDown
        }
    );
    let plan = plan_inbound(&config, DID, 3_000, |_| false).unwrap();
    assert!(matches!(
        plan.legs[0],
        Leg::Device {
            ring_timeout_ms: DEFAULT_RING_TIMEOUT_MS,
            ..
        }
    ));
}

/// Checks the verdict of `triggers` on each (outcome, verdict) pair.
fn check_verdicts(triggers: &Triggers, cases: &[(LegOutcome, Verdict)]) {
    for (outcome, expected) in cases {
        assert_eq!(
            evaluate(triggers, *outcome),
            *expected,
            "{outcome:?} with {triggers:?}"
        );
    }
}

#[test]
fn each_trigger_with_the_defaults() {
    use LegOutcome::*;
    check_verdicts(
        &Triggers::default(),
        &[
            (Answered, Verdict::Answered),
            (NoAnswer, Verdict::Continue(Trigger::NoAnswer)),
            (Final { code: 486 }, Verdict::Stop { code: 486 }),
            (Final { code: 600 }, Verdict::Stop { code: 600 }),
            (
                Final { code: 408 },
                Verdict::Continue(Trigger::Failure { code: 408 }),
            ),
            (
                Final { code: 480 },
                Verdict::Continue(Trigger::Failure { code: 480 }),
            ),
            (
                Final { code: 503 },
                Verdict::Continue(Trigger::Failure { code: 503 }),
            ),
            (
                Final { code: 500 },
                Verdict::Continue(Trigger::Failure { code: 500 }),
            ),
            (Final { code: 404 }, Verdict::Stop { code: 404 }),
            (Final { code: 603 }, Verdict::Stop { code: 603 }),
            (Unreachable, Verdict::Continue(Trigger::Unreachable)),
        ],
    );
}

#[test]
fn each_trigger_switched() {
    use LegOutcome::*;
    let inverted = Triggers {
        not_registered: false,
        no_answer_ms: None,
        busy: true,
        failure_codes: codes(&[404]),
        server_errors: false,
        unreachable: false,
    };
    check_verdicts(
        &inverted,
        &[
            (NoAnswer, Verdict::Stop { code: 480 }),
            (Final { code: 486 }, Verdict::Continue(Trigger::Busy)),
            (Final { code: 600 }, Verdict::Continue(Trigger::Busy)),
            (
                Final { code: 404 },
                Verdict::Continue(Trigger::Failure { code: 404 }),
            ),
            (Final { code: 408 }, Verdict::Stop { code: 408 }),
            (Final { code: 503 }, Verdict::Stop { code: 503 }),
            (Unreachable, Verdict::Stop { code: 480 }),
        ],
    );
}

#[test]
fn after_leg_walks_the_plan() {
    let config = registered(
        None,
        Some(plan(vec![number_target("+12125550100"), voicemail()])),
    );
    let plan = plan_inbound(&config, DID, 3_000, |_| false).unwrap();
    // Device fork (legs 0..3) not answered: first continuity leg.
    assert_eq!(
        after_leg(&plan, 1, LegOutcome::NoAnswer),
        NextStep::Try { leg: 3 }
    );
    assert_eq!(
        after_leg(&plan, 0, LegOutcome::Final { code: 503 }),
        NextStep::Try { leg: 3 }
    );
    assert_eq!(
        after_leg(&plan, 0, LegOutcome::Final { code: 486 }),
        NextStep::Stop { code: 486 }
    );
    assert_eq!(after_leg(&plan, 0, LegOutcome::Answered), NextStep::Done);
    assert_eq!(
        after_leg(&plan, 3, LegOutcome::NoAnswer),
        NextStep::Try { leg: 4 }
    );
    assert_eq!(
        after_leg(&plan, 3, LegOutcome::Final { code: 603 }),
        NextStep::Stop { code: 603 }
    );
    assert_eq!(
        after_leg(&plan, 4, LegOutcome::NoAnswer),
        NextStep::Stop { code: 480 }
    );
    assert_eq!(
        after_leg(&plan, 4, LegOutcome::Final { code: 500 }),
        NextStep::Stop { code: 500 }
    );

    // Device legs only: a triggered ending has nowhere to go.
    let bare = registered(None, None);
    let plan = plan_inbound(&bare, DID, 3_000, |_| false).unwrap();
    assert_eq!(
        after_leg(&plan, 0, LegOutcome::Final { code: 408 }),
        NextStep::Stop { code: 408 }
    );

    // Straight to continuity: leg 0 is the first target.
    let plan = plan_inbound(&config, DID, 70_000, |_| false).unwrap();
    assert_eq!(plan.device_legs, 0);
    assert_eq!(
        after_leg(&plan, 0, LegOutcome::Unreachable),
        NextStep::Try { leg: 1 }
    );
}
