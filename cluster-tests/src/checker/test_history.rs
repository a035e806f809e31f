//! A small text format for writing histories in the checkers' tests, so each test reads as
//! the history it judges. One operation or fault a line; blank lines and `#` comments skipped:
//!
//! ```text
//! p0 0..10 write x 1 -> ok            # process 0 asks node 1; ok = the write took effect
//! p1@n2 20..30 read x -> 1            # process 1 asks node 2 (linearizable read), saw "1"
//! p1 20..30 read x -> nil             # saw the key absent
//! p2 0..10 stale-read x -> 1          # a read that may be stale
//! p2 0..10 cas x nil 1 -> ok          # compare-and-set succeeded; `not-done` if it failed
//! p3 0..? write x 2 -> unknown        # never completed (`?`), outcome unknown
//! p3 0..10 write x 2 -> unknown       # timed out at 10
//! p4 0..10 delete x -> fail           # certainly not applied (not_applied)
//! p4 0..10 delete x -> fail connect_failed
//! p5 0..10 lookup 14155550100 -> ok
//! fault kill-n2 5..40 unreachable 2,3 # unreachable list optional; `?` end: never healed
//! ```

use std::collections::BTreeSet;

use crate::history::{
    Consistency, ErrorKind, Fault, History, OpKind, Operation, Outcome, Returned,
};

/// Parses the text format above; panics with the line on anything it does not understand.
pub(crate) fn parse(text: &str) -> History {
    let mut history = History::default();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "fault" {
            let (start_nanos, end_nanos) = interval(words[2]);
            let unreachable_nodes = match words.get(3) {
                Some(&"unreachable") => words[4]
                    .split(',')
                    .map(|node| node.parse().unwrap())
                    .collect(),
                Some(other) => panic!("{line}: unexpected {other}"),
                None => BTreeSet::new(),
            };
            history.faults.push(Fault {
                id: history.faults.len() as u64,
                name: words[1].to_owned(),
                start_nanos,
                end_nanos,
                unreachable_nodes,
            });
            continue;
        }
        history
            .operations
            .push(operation(history.operations.len() as u64, line, &words));
    }
    history
}

fn interval(word: &str) -> (u64, Option<u64>) {
    let (start, end) = word.split_once("..").unwrap();
    let end = if end == "?" {
        None
    } else {
        Some(end.parse().unwrap())
    };
    (start.parse().unwrap(), end)
}

fn value(word: &str) -> Option<String> {
    if word == "nil" {
        None
    } else {
        Some(word.to_owned())
    }
}

fn operation(id: u64, line: &str, words: &[&str]) -> Operation {
    let (process, node) = match words[0].split_once('@') {
        Some((process, node)) => (process, node.trim_start_matches('n').parse().unwrap()),
        None => (words[0], 1),
    };
    let process = process.trim_start_matches('p').parse().unwrap();
    let (invoke_nanos, complete_nanos) = interval(words[1]);
    let arrow = words.iter().position(|word| *word == "->").unwrap();
    let command = &words[2..arrow];
    let result = &words[arrow + 1..];
    let key = || command[1].to_owned();
    let kind = match command[0] {
        "read" | "stale-read" => OpKind::Read {
            key: key(),
            consistency: if command[0] == "read" {
                Consistency::Linearizable
            } else {
                Consistency::Stale
            },
        },
        "write" => OpKind::Write {
            key: key(),
            value: command[2].to_owned(),
        },
        "delete" => OpKind::Delete { key: key() },
        "cas" => OpKind::Cas {
            key: key(),
            expected: value(command[2]),
            new: value(command[3]),
        },
        "lookup" => OpKind::RouteLookup {
            destination: command[1].to_owned(),
        },
        other => panic!("{line}: unknown command {other}"),
    };
    let error = |default: ErrorKind| match result.get(1) {
        None => default,
        Some(name) => serde_json::from_value(serde_json::Value::String((*name).to_owned()))
            .unwrap_or_else(|_| panic!("{line}: unknown error {name}")),
    };
    let outcome = match (result[0], &kind) {
        ("fail", _) => Outcome::Fail {
            error: error(ErrorKind::NotApplied),
            detail: String::new(),
        },
        ("unknown", _) => Outcome::Unknown {
            error: error(ErrorKind::Timeout),
            detail: String::new(),
        },
        ("ok", OpKind::RouteLookup { .. }) => Outcome::looked_up(),
        ("ok", _) => Outcome::written(true),
        ("not-done", _) => Outcome::written(false),
        (seen, OpKind::Read { .. }) => Outcome::Ok {
            returned: Returned::Read {
                value: value(seen),
                modify_index: None,
                read_state: None,
            },
        },
        (other, _) => panic!("{line}: unknown result {other}"),
    };
    Operation {
        id,
        process,
        node,
        kind,
        invoke_nanos,
        complete_nanos,
        outcome,
    }
}

#[test]
fn the_format_parses_every_kind_of_line() {
    let history = parse(
        "
        p0 0..10 write x 1 -> ok
        p1@n2 20..30 read x -> nil     # absent
        p2 0..? cas x nil 1 -> unknown
        p3 5..6 lookup 1415 -> fail connect_failed
        fault kill-n2 5..? unreachable 2
        ",
    );
    assert_eq!(history.operations.len(), 4);
    assert_eq!(history.operations[1].node, 2);
    assert_eq!(history.operations[1].outcome, Outcome::read(None));
    assert_eq!(history.operations[2].complete_nanos, None);
    assert_eq!(
        history.operations[3].outcome.error(),
        Some(ErrorKind::ConnectFailed)
    );
    assert_eq!(history.faults[0].unreachable_nodes, BTreeSet::from([2]));
    assert_eq!(history.faults[0].end_nanos, None);
}
