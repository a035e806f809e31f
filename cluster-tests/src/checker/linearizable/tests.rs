//! Tests of the linearizability checker: small histories known to be good or bad, written in
//! the text format of `checker::test_history`, and property tests over histories generated
//! from real sequential executions.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::{
    checker::test_history::parse,
    history::{ErrorKind, History},
};

fn run(text: &str) -> LinearizabilityResult {
    check(&parse(text), &LinearizabilityOptions::default())
}

/// The history is linearizable.
fn good(text: &str) {
    let result = run(text);
    assert_eq!(result.verdict, Verdict::Pass, "{result:#?}");
}

/// The history is not, and the explanation is exactly these operations.
fn bad(text: &str, explanation: &[OperationId]) {
    let result = run(text);
    assert!(result.verdict.is_fail(), "{result:#?}");
    let failed: Vec<&KeyResult> = result
        .keys
        .iter()
        .filter(|key| key.verdict.is_fail())
        .collect();
    assert_eq!(failed.len(), 1, "{result:#?}");
    let violation = failed[0].violation.as_ref().unwrap();
    let ids: Vec<OperationId> = violation.operations.iter().map(|op| op.id).collect();
    assert_eq!(ids, explanation, "{}", violation.render(&failed[0].key));
    assert!(violation.minimal, "{}", violation.render(&failed[0].key));
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_a_violation() {
    bad(
        "
        p0 0..10 write x 1 -> ok
        p1 20..30 read x -> nil
        ",
        &[0, 1],
    );
    bad(
        "
        p0 0..10 write x 1 -> ok
        p0 20..30 write x 2 -> ok
        p1 40..50 read x -> 1
        ",
        &[0, 1, 2],
    );
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    good(
        "
        p0 0..10 write x 1 -> ok
        p0 20..50 write x 2 -> ok
        p1 30..40 read x -> 1
        p2 30..40 read x -> 2
        p3 60..70 read x -> 2
        ",
    );
}

#[test]
fn once_a_read_saw_the_new_value_a_later_read_cannot_see_the_old_one() {
    bad(
        "
        p0 0..10 write x 1 -> ok
        p0 20..100 write x 2 -> ok
        p1 30..40 read x -> 2
        p2 50..60 read x -> 1
        ",
        &[0, 1, 2, 3],
    );
}

#[test]
fn operations_that_touch_are_concurrent() {
    good(
        "
        p0 0..10 write x 1 -> ok
        p1 10..20 read x -> nil
        ",
    );
}

#[test]
fn two_compare_and_sets_cannot_both_succeed_from_the_same_value() {
    bad(
        "
        p0 0..10 write x 0 -> ok
        p1 20..30 cas x 0 1 -> ok
        p2 20..30 cas x 0 2 -> ok
        ",
        &[0, 1, 2],
    );
    bad(
        "
        p1 20..30 cas x nil 1 -> ok
        p2 25..35 cas x nil 2 -> ok
        ",
        &[0, 1],
    );
    good(
        "
        p0 0..10 write x 0 -> ok
        p1 20..30 cas x 0 1 -> ok
        p2 20..30 cas x 0 2 -> not-done
        p3 40..50 read x -> 1
        ",
    );
}

#[test]
fn a_compare_and_set_that_failed_saw_another_value() {
    bad(
        "
        p0 0..10 write x 0 -> ok
        p1 20..30 cas x 0 1 -> not-done
        ",
        &[0, 1],
    );
}

#[test]
fn a_delete_says_whether_the_key_existed() {
    good(
        "
        p0 0..10 delete x -> not-done
        p0 20..30 write x 1 -> ok
        p1 40..50 delete x -> ok
        p1 60..70 read x -> nil
        ",
    );
    bad("p0 0..10 delete x -> ok", &[0]);
    bad(
        "
        p0 0..10 write x 1 -> ok
        p0 20..30 delete x -> not-done
        ",
        &[0, 1],
    );
}

#[test]
fn an_unknown_write_may_show_up_later() {
    good(
        "
        p0 0..10 write x 1 -> unknown
        p1 100..110 read x -> 1
        ",
    );
    // Even after a later acknowledged write: it may take effect long after it timed out.
    good(
        "
        p0 0..10 write x 1 -> unknown
        p1 20..30 write x 2 -> ok
        p2 40..50 read x -> 2
        p2 60..70 read x -> 1
        ",
    );
    good(
        "
        p0 0..? cas x nil 1 -> unknown
        p1 100..110 read x -> 1
        ",
    );
}

#[test]
fn an_unknown_write_may_never_show_up() {
    good(
        "
        p0 0..10 write x 1 -> ok
        p1 20..30 write x 2 -> unknown
        p2 40..50 read x -> 1
        p2 60..70 read x -> 1
        p3 80..? delete x -> unknown
        ",
    );
}

#[test]
fn an_unknown_write_takes_effect_at_most_once() {
    bad(
        "
        p0 0..10 write x 1 -> unknown
        p1 20..30 write x 2 -> ok
        p2 40..50 read x -> 1
        p2 60..70 read x -> 2
        p2 80..90 read x -> 1
        ",
        &[0, 1, 2, 3],
    );
}

#[test]
fn an_unknown_write_cannot_show_up_before_it_was_invoked() {
    bad(
        "
        p1 0..10 read x -> 1
        p0 20..30 write x 1 -> unknown
        ",
        // Nothing invoked before the read completed wrote 1: the read alone says no.
        &[0],
    );
}

#[test]
fn a_failed_write_never_shows_up() {
    bad(
        "
        p0 0..10 write x 1 -> fail
        p1 20..30 read x -> 1
        ",
        &[1],
    );
}

#[test]
fn a_read_of_a_value_never_written_is_a_violation() {
    bad(
        "
        p0 0..10 write x 1 -> ok
        p1 20..30 read x -> 7
        p1 40..50 read x -> 1
        ",
        &[1],
    );
}

#[test]
fn reads_that_may_be_stale_and_unknown_reads_are_not_judged() {
    good(
        "
        p0 0..10 write x 1 -> ok
        p1 20..30 stale-read x -> nil
        p1 40..50 read x -> unknown
        p1 60..70 read x -> fail
        p1 80..90 read x -> 1
        ",
    );
}

#[test]
fn keys_are_judged_independently() {
    let result = run("
        p0 0..10 write x 1 -> ok
        p0 20..30 write y 1 -> ok
        p1 40..50 read x -> 1
        p1 60..70 read y -> nil
        ");
    assert!(result.verdict.is_fail());
    let verdicts: Vec<(&str, &str)> = result
        .keys
        .iter()
        .map(|key| (key.key.as_str(), key.verdict.name()))
        .collect();
    assert_eq!(verdicts, [("x", "pass"), ("y", "fail")]);
    let reason = result.verdict.reason().unwrap();
    assert!(
        reason.contains("1 of 2 keys") && reason.contains("key y"),
        "{reason}"
    );
}

#[test]
fn a_violation_deep_in_a_long_history_is_shrunk_to_the_operations_involved() {
    let mut text = String::new();
    for round in 0..200u64 {
        let start = round * 100;
        text.push_str(&format!(
            "p0 {start}..{} write x {round} -> ok\n",
            start + 40
        ));
        let seen = if round == 150 { round - 1 } else { round };
        text.push_str(&format!(
            "p1 {}..{} read x -> {seen}\n",
            start + 50,
            start + 60
        ));
    }
    let result = run(&text);
    let key = &result.keys[0];
    assert!(key.verdict.is_fail(), "{key:#?}");
    let violation = key.violation.as_ref().unwrap();
    let ids: Vec<OperationId> = violation.operations.iter().map(|op| op.id).collect();
    // The write of 149, the write of 150, and the read after it that saw 149.
    assert_eq!(ids, [298, 300, 301], "{}", violation.render("x"));
    assert_eq!(violation.stuck_at, 301);
    assert_eq!(violation.value_when_stuck.as_deref(), Some("150"));
    assert_eq!(violation.longest_linearization, 301);
}

#[test]
fn without_shrinking_the_operations_around_the_stuck_point_are_quoted() {
    let history = parse(
        "
        p0 0..10 write x 1 -> ok
        p0 20..30 write x 2 -> ok
        p1 40..50 read x -> 1
        ",
    );
    let options = LinearizabilityOptions {
        max_shrink_checks: 0,
        ..LinearizabilityOptions::default()
    };
    let result = check(&history, &options);
    let violation = result.keys[0].violation.as_ref().unwrap();
    assert!(!violation.minimal);
    assert_eq!(violation.stuck_at, 2);
    let ids: Vec<OperationId> = violation.operations.iter().map(|op| op.id).collect();
    assert_eq!(ids, [0, 1, 2]);
}

#[test]
fn a_search_past_its_bound_says_unknown_not_pass() {
    // Twelve concurrent unknown writes, each seen by some read, and reads that see 0 again
    // after 1: many orders to try before the answer is no.
    let mut text = String::new();
    for process in 0..12 {
        text.push_str(&format!("p{process} 0..100 write x {process} -> unknown\n"));
    }
    for (index, seen) in [3, 5, 7, 9, 11, 2, 4, 6, 8, 10, 0, 1, 0].iter().enumerate() {
        let start = 200 + index * 20;
        text.push_str(&format!("p20 {start}..{} read x -> {seen}\n", start + 10));
    }
    let options = LinearizabilityOptions {
        max_states_per_key: 100,
        ..LinearizabilityOptions::default()
    };
    let result = check(&parse(&text), &options);
    match &result.verdict {
        Verdict::Unknown { reason } => assert!(reason.contains("gave up"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // With the default bound the same history is decided, down to the operations involved.
    let result = run(&text);
    assert!(result.verdict.is_fail(), "{result:#?}");
    let violation = result.keys[0].violation.as_ref().unwrap();
    let ids: Vec<OperationId> = violation.operations.iter().map(|op| op.id).collect();
    assert_eq!(ids, [0, 1, 22, 23, 24], "{}", violation.render("x"));
}

#[test]
fn unknown_writes_nobody_read_do_not_blow_up_the_search() {
    // Thirty timed-out writes that no read saw could take effect in 2^30 combinations; they
    // are interchangeable, so the search tries them in one order only.
    let mut text = String::from("p0 0..10 write x a -> ok\n");
    for process in 1..=30 {
        text.push_str(&format!(
            "p{process} 20..30 write x u{process} -> unknown\n"
        ));
    }
    text.push_str("p40 40..50 write x b -> ok\n");
    text.push_str("p41 60..70 read x -> a\n");
    let result = run(&text);
    let key = &result.keys[0];
    assert!(key.verdict.is_fail(), "{key:#?}");
    assert!(key.explored_states < 10_000, "{}", key.explored_states);
    let violation = key.violation.as_ref().unwrap();
    let ids: Vec<OperationId> = violation.operations.iter().map(|op| op.id).collect();
    assert_eq!(ids, [0, 31, 32], "{}", violation.render("x"));
}

#[test]
fn a_truncated_history_is_never_a_pass_or_a_fail() {
    let mut history = parse("p0 0..10 write x 1 -> ok");
    history.dropped_operations = 3;
    let result = check(&history, &LinearizabilityOptions::default());
    assert!(
        matches!(result.verdict, Verdict::Unknown { .. }),
        "{result:?}"
    );
    assert!(!run("").verdict.is_pass());
}

#[test]
fn a_malformed_history_is_unknown() {
    let mut history = parse("p0 0..10 read x -> 1");
    history.operations[0].outcome = Outcome::written(true);
    let result = check(&history, &LinearizabilityOptions::default());
    match &result.keys[0].verdict {
        Verdict::Unknown { reason } => assert!(reason.contains("malformed"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_long_history_with_little_concurrency_is_checked_quickly() {
    let mut text = String::new();
    for round in 0..5_000u64 {
        let start = round * 10;
        text.push_str(&format!(
            "p0 {start}..{} write x {round} -> ok\n",
            start + 15
        ));
        text.push_str(&format!(
            "p1 {}..{} read x -> {round}\n",
            start + 9,
            start + 12
        ));
    }
    let result = run(&text);
    assert_eq!(result.verdict, Verdict::Pass);
    assert!(result.keys[0].explored_states < 100_000);
}

/// One planned operation of a generated sequential execution.
#[derive(Clone, Debug)]
struct Plan {
    key: usize,
    command: u8,
    pick: u8,
    before: u64,
    after: u64,
    fate: u8,
}

fn plans() -> impl Strategy<Value = Vec<Plan>> {
    prop::collection::vec(
        (0..2usize, 0..4u8, 0..3u8, 0..250u64, 0..250u64, 0..10u8).prop_map(
            |(key, command, pick, before, after, fate)| Plan {
                key,
                command,
                pick,
                before,
                after,
                fate,
            },
        ),
        1..40,
    )
}

/// Plans whose operations never overlap and all complete: the only legal order is the real
/// one.
fn sequential_plans() -> impl Strategy<Value = Vec<Plan>> {
    prop::collection::vec(
        (0..2usize, 0..4u8, 0..3u8, 0..50u64, 0..50u64, 3..10u8).prop_map(
            |(key, command, pick, before, after, fate)| Plan {
                key,
                command,
                pick,
                before,
                after,
                fate,
            },
        ),
        1..40,
    )
}

/// Runs the plans one after another against a register per key, each taking effect at its
/// own instant, then widens every operation around that instant: the result is
/// linearizable by construction. Some writes time out (taking effect or not) or fail.
fn execute(plans: &[Plan]) -> History {
    let keys = ["a", "b"];
    let mut state: [Option<String>; 2] = [None, None];
    let mut written: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut operations = Vec::new();
    for (index, plan) in plans.iter().enumerate() {
        let at = 1_000 + index as u64 * 100;
        let key = keys[plan.key].to_owned();
        let current = state[plan.key].clone();
        let value = format!("v{index}");
        let kind = match plan.command {
            0 => OpKind::Read {
                key,
                consistency: Consistency::Linearizable,
            },
            1 => OpKind::Write {
                key,
                value: value.clone(),
            },
            2 => OpKind::Delete { key },
            _ => OpKind::Cas {
                key,
                expected: match plan.pick {
                    0 => None,
                    1 => current.clone(),
                    _ => written[plan.key].first().cloned(),
                },
                new: Some(value.clone()),
            },
        };
        // 0: times out after taking effect; 1: times out without; 2: fails; else ok.
        let applied = plan.fate != 1 && plan.fate != 2;
        let returned = match &kind {
            OpKind::Read { .. } => Outcome::read(current.clone()),
            OpKind::Write { .. } => Outcome::written(true),
            OpKind::Delete { .. } => Outcome::written(current.is_some()),
            OpKind::Cas { expected, .. } => Outcome::written(*expected == current),
            OpKind::RouteLookup { .. } | OpKind::Admit { .. } | OpKind::EndCall { .. } => {
                Outcome::looked_up()
            }
        };
        if applied {
            match &kind {
                OpKind::Write { .. } => state[plan.key] = Some(value.clone()),
                OpKind::Delete { .. } => state[plan.key] = None,
                OpKind::Cas { expected, new, .. } if *expected == current => {
                    state[plan.key].clone_from(new)
                }
                _ => {}
            }
            written[plan.key].push(value);
        }
        let outcome = match plan.fate {
            0 | 1 => Outcome::Unknown {
                error: ErrorKind::Timeout,
                detail: String::new(),
            },
            2 => Outcome::Fail {
                error: ErrorKind::NotApplied,
                detail: String::new(),
            },
            _ => returned,
        };
        let complete_nanos = if plan.fate == 0 && plan.pick == 0 {
            None
        } else {
            Some(at + plan.after)
        };
        operations.push(Operation {
            id: 0,
            process: index as u64,
            node: 1,
            kind,
            invoke_nanos: at - plan.before,
            complete_nanos,
            outcome,
        });
    }
    operations.sort_by_key(|operation| operation.invoke_nanos);
    for (id, operation) in operations.iter_mut().enumerate() {
        operation.id = id as u64;
    }
    History {
        operations,
        ..History::default()
    }
}

proptest! {
    #[test]
    fn histories_of_sequential_executions_are_linearizable(plans in plans()) {
        let history = execute(&plans);
        let result = check(&history, &LinearizabilityOptions::default());
        prop_assert!(
            result.keys.iter().all(|key| key.verdict.is_pass()),
            "{:#?}",
            result
        );
    }

    #[test]
    fn a_read_of_a_value_never_written_is_always_caught(plans in plans(), choice in any::<usize>()) {
        let mut history = execute(&plans);
        let reads: Vec<usize> = history
            .operations
            .iter()
            .enumerate()
            .filter(|(_, operation)| {
                matches!(operation.kind, OpKind::Read { .. }) && operation.outcome.is_ok()
            })
            .map(|(index, _)| index)
            .collect();
        prop_assume!(!reads.is_empty());
        let corrupted = reads[choice % reads.len()];
        history.operations[corrupted].outcome = Outcome::read(Some("never-written".into()));
        let result = check(&history, &LinearizabilityOptions::default());
        prop_assert!(result.verdict.is_fail(), "{:#?}", result);
    }

    #[test]
    fn a_stale_read_is_always_caught_when_nothing_overlaps(
        plans in sequential_plans(),
        choice in any::<usize>(),
    ) {
        let mut history = execute(&plans);
        prop_assert!(check(&history, &LinearizabilityOptions::default()).verdict.is_pass());
        // Every (read, value it did not see but that its key held before) pair.
        let mut candidates = Vec::new();
        let mut held: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        for (index, operation) in history.operations.iter().enumerate() {
            let Some(key) = operation.kind.key() else { continue };
            let before = held.entry(key.to_owned()).or_insert_with(|| vec![None]);
            if let (OpKind::Read { .. }, Outcome::Ok { returned: Returned::Read { value, .. } }) =
                (&operation.kind, &operation.outcome)
            {
                for old in before.iter().filter(|old| *old != value) {
                    candidates.push((index, old.clone()));
                }
            }
            let written = match (&operation.kind, &operation.outcome) {
                (OpKind::Write { value, .. }, Outcome::Ok { .. }) => Some(Some(value.clone())),
                (OpKind::Delete { .. }, Outcome::Ok { .. }) => Some(None),
                (OpKind::Cas { new, .. }, outcome) if *outcome == Outcome::written(true) => {
                    Some(new.clone())
                }
                _ => None,
            };
            before.extend(written);
        }
        prop_assume!(!candidates.is_empty());
        let (read, stale) = candidates[choice % candidates.len()].clone();
        history.operations[read].outcome = Outcome::read(stale);
        let result = check(&history, &LinearizabilityOptions::default());
        prop_assert!(result.verdict.is_fail(), "{:#?}", result);
    }
}
