//! What authentication and the audit log cost a request: parsing and checking a token against
//! 10,000 records (right, wrong and malformed, which must cost about the same), and applying
//! an audited change to a state whose audit log is full.
//!
//! Run: `cargo bench -p trunkline-bench --bench auth`.

// A benchmark that cannot set up its inputs has nothing to measure: failing loudly with the
// reason is the right answer, so `expect` is allowed here.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use trunkline_core::{
    audit::{Actor, MAX_AUDIT_ENTRIES},
    auth::{
        tokens::{self, TokenCommand, TokenRecord, Tokens, ID_BYTES, SECRET_BYTES},
        Role, Scope,
    },
    settings::SettingsCommand,
    Command, Request, State,
};

const TOKENS: u32 = 10_000;

fn tokens() -> (Tokens, String) {
    let mut records = Tokens::default();
    let mut last = String::new();
    for number in 0..TOKENS {
        let mut id = [0u8; ID_BYTES];
        id[..4].copy_from_slice(&number.to_be_bytes());
        let minted = tokens::mint(id, [number as u8; SECRET_BYTES]);
        let record = TokenRecord {
            id: minted.id.clone(),
            name: format!("token-{number}"),
            role: Role::Operator,
            scope: Scope::All,
            hash: minted.hash,
            created_ms: 0,
            expires_ms: None,
            revoked_ms: None,
            created_by: String::new(),
        };
        records
            .apply(0, &TokenCommand::Create(record), |_| true)
            .expect("a valid token");
        last = minted.text;
    }
    (records, last)
}

fn token_check(c: &mut Criterion) {
    let (records, right) = tokens();
    let mut wrong = right.clone();
    wrong.replace_range(
        right.len() - 1..,
        if right.ends_with('0') { "1" } else { "0" },
    );
    let mut group = c.benchmark_group("token_check");
    group.bench_function("right", |b| {
        b.iter(|| {
            let presented = tokens::parse(black_box(&right)).expect("parses");
            black_box(records.verify(&presented, 1).is_some())
        })
    });
    group.bench_function("wrong_secret", |b| {
        b.iter(|| {
            let presented = tokens::parse(black_box(&wrong)).expect("parses");
            black_box(records.verify(&presented, 1).is_some())
        })
    });
    group.bench_function("malformed", |b| {
        b.iter(|| {
            if tokens::parse(black_box("Bearer nonsense")).is_none() {
                records.spend_a_check();
            }
        })
    });
    group.finish();
}

fn audited_apply(c: &mut Criterion) {
    let actor = Actor {
        name: "ops".into(),
        source: "192.0.2.1".into(),
        rpc: "trunkline.v1.AdminService/SetSetting".into(),
    };
    let audited = |index: u64| {
        Command::Settings(SettingsCommand::Set {
            key: "k".into(),
            value: index.to_string(),
        })
    };
    let mut state = State::default();
    let mut index = 0;
    while state.audit().len() < MAX_AUDIT_ENTRIES {
        index += 1;
        state.apply(
            index,
            &Request {
                idempotency: None,
                time_ms: index,
                actor: Some(actor.clone()),
                command: audited(index),
            },
        );
    }
    c.bench_function("audited_set_on_a_full_log", |b| {
        b.iter(|| {
            // Readers hold the previous state, so apply copies on write, as in the node.
            let reader = state.clone();
            index += 1;
            black_box(state.apply(
                index,
                &Request {
                    idempotency: None,
                    time_ms: index,
                    actor: Some(actor.clone()),
                    command: audited(index),
                },
            ));
            drop(reader);
        })
    });
}

criterion_group!(benches, token_check, audited_apply);
criterion_main!(benches);
