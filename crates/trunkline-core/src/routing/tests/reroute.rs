//! Tests of the outbound leg-ending rules: one table row per class of ending, each checked
//! against a carrier with no final codes and against one that marks the code final.

use std::collections::BTreeSet;

use crate::routing::{
    leg_verdict, LegEnding, LegTransportError, LegVerdict, StopCause, CALLEE_FINAL_CODES,
};

#[track_caller]
fn check(ending: LegEnding, final_codes: &[u16], expected: LegVerdict) {
    let final_codes: BTreeSet<u16> = final_codes.iter().copied().collect();
    assert_eq!(
        leg_verdict(ending, &final_codes),
        expected,
        "{ending:?} with final codes {final_codes:?}"
    );
}

fn reply(code: u32) -> LegEnding {
    LegEnding::Reply { code }
}

fn stop(code: u16, cause: StopCause) -> LegVerdict {
    LegVerdict::Stop { code, cause }
}

#[test]
fn provisional_replies_decide_nothing() {
    check(reply(100), &[], LegVerdict::Provisional { code: 100 });
    check(reply(180), &[], LegVerdict::Provisional { code: 180 });
    check(reply(183), &[], LegVerdict::Provisional { code: 183 });
    check(reply(199), &[], LegVerdict::Provisional { code: 199 });
    // A carrier's final codes are failure codes; they never turn a 1xx into an ending.
    check(reply(180), &[180], LegVerdict::Provisional { code: 180 });
}

#[test]
fn success_replies_answer_the_call() {
    check(reply(200), &[], LegVerdict::Answered { code: 200 });
    check(reply(202), &[], LegVerdict::Answered { code: 202 });
    check(reply(299), &[], LegVerdict::Answered { code: 299 });
    check(reply(200), &[200], LegVerdict::Answered { code: 200 });
}

#[test]
fn redirects_stop_the_call() {
    check(reply(300), &[], stop(300, StopCause::OtherFinal));
    check(reply(302), &[], stop(302, StopCause::OtherFinal));
    check(reply(399), &[], stop(399, StopCause::OtherFinal));
    check(reply(302), &[302], stop(302, StopCause::CarrierFinal));
}

#[test]
fn the_callees_answer_stops_the_call_whatever_the_carrier() {
    for code in [404, 484, 486, 600, 603] {
        check(reply(code.into()), &[], stop(code, StopCause::Callee));
        // Marked final by the carrier too: the carrier's list is checked first.
        check(
            reply(code.into()),
            &[code],
            stop(code, StopCause::CarrierFinal),
        );
    }
    assert_eq!(CALLEE_FINAL_CODES, [404, 484, 486, 600, 603]);
}

#[test]
fn other_failure_codes_stop_the_call() {
    for code in [400, 401, 403, 407, 410, 480, 487, 488, 499, 604, 606, 699] {
        check(reply(code.into()), &[], stop(code, StopCause::OtherFinal));
        check(
            reply(code.into()),
            &[code],
            stop(code, StopCause::CarrierFinal),
        );
    }
}

#[test]
fn timeouts_and_server_errors_reroute_unless_the_carrier_marks_them_final() {
    for code in [408, 500, 502, 503, 504, 580, 599] {
        check(reply(code.into()), &[], LegVerdict::Reroute);
        check(reply(code.into()), &[404, 486], LegVerdict::Reroute);
        check(
            reply(code.into()),
            &[code],
            stop(code, StopCause::CarrierFinal),
        );
    }
    // Only the codes the carrier lists: 503 final does not make 502 final.
    check(reply(502), &[503], LegVerdict::Reroute);
    check(reply(503), &[503], stop(503, StopCause::CarrierFinal));
    // 407 and 409 are not 408.
    check(reply(407), &[], stop(407, StopCause::OtherFinal));
    check(reply(409), &[], stop(409, StopCause::OtherFinal));
}

#[test]
fn every_transport_error_reroutes_whatever_the_carrier() {
    for error in [
        LegTransportError::Timeout,
        LegTransportError::Refused,
        LegTransportError::Unreachable,
    ] {
        check(LegEnding::Transport(error), &[], LegVerdict::Reroute);
        check(
            LegEnding::Transport(error),
            &[408, 503],
            LegVerdict::Reroute,
        );
    }
}

#[test]
fn a_report_without_an_ending_is_unreported() {
    check(LegEnding::Unreported, &[], LegVerdict::Unreported);
    check(LegEnding::Unreported, &[503], LegVerdict::Unreported);
}

#[test]
fn codes_outside_100_to_699_are_unknown() {
    for code in [0, 1, 99, 700, 999, 65_535, 65_536, u32::MAX] {
        check(reply(code), &[], LegVerdict::UnknownCode { code });
    }
    // Final codes cannot bring one in, even one that truncates to a listed code.
    check(reply(700), &[700], LegVerdict::UnknownCode { code: 700 });
    check(
        reply(65_536 + 503),
        &[503],
        LegVerdict::UnknownCode { code: 66_039 },
    );
}
