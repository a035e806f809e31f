//! The replicated routing configuration: puts, deletes, drains and staged deck imports,
//! applied through `State` as the log applies them.

use std::collections::BTreeSet;

use crate::{
    routing::{
        Carrier, DialPlan, Gateway, ObjectKind, PutMode, Rate, RoutingCommand, RoutingResponse,
        SipUri, Strategy, Tenant, Translation, MAX_STAGED_IMPORTS, MAX_STAGED_IMPORTS_PER_OWNER,
        STAGED_IMPORT_IDLE_MS, STAGED_IMPORT_TTL_MS,
    },
    Command, Error, Request, Response, State,
};

/// The owner token the tests' imports are staged under.
const OWNER: &str = "0123456789abcdef0123456789abcdef";
/// Another client's token.
const OTHER: &str = "fedcba9876543210fedcba9876543210";

fn carrier(name: &str) -> Carrier {
    Carrier {
        name: name.to_owned(),
        capabilities: BTreeSet::new(),
        translation: Translation {
            strip_digits: 0,
            tech_prefix: String::new(),
            plus: true,
        },
        final_codes: BTreeSet::new(),
        enabled: true,
    }
}

fn gateway(name: &str, carrier: &str) -> Gateway {
    Gateway {
        name: name.to_owned(),
        carrier: carrier.to_owned(),
        uri: SipUri::parse("sip:gw.example").unwrap(),
        priority: 1,
        weight: 1,
        max_concurrent_calls: None,
        enabled: true,
        probe: Default::default(),
    }
}

fn tenant(name: &str, allowed: &[&str]) -> Tenant {
    Tenant {
        name: name.to_owned(),
        dial_plan: DialPlan::nanp(),
        strategy: Strategy::LeastCost,
        allowed_carriers: allowed.iter().map(|c| c.to_string()).collect(),
        required_capabilities: BTreeSet::new(),
        policy: Default::default(),
        limits: Default::default(),
    }
}

fn rate(prefix: &str, rate: u64) -> Rate {
    Rate {
        prefix: prefix.to_owned(),
        rate_micros_per_minute: rate,
        connect_fee_micros: 0,
        description: String::new(),
        effective_from_ms: None,
        effective_until_ms: None,
    }
}

/// A state with the log applied so far, applying each command at the next index and time.
struct Log {
    state: State,
    index: u64,
    time_ms: u64,
}

impl Log {
    fn new() -> Log {
        Log {
            state: State::default(),
            index: 0,
            time_ms: 1_000,
        }
    }

    fn apply(&mut self, command: RoutingCommand) -> Result<RoutingResponse, Error> {
        self.index += 1;
        self.time_ms += 10;
        let request = Request {
            idempotency: None,
            time_ms: self.time_ms,
            actor: None,
            command: Command::Routing(command),
        };
        match self.state.apply(self.index, &request) {
            Response::Routing(response) => Ok(response),
            Response::Rejected(error) => Err(error),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn ok(&mut self, command: RoutingCommand) -> RoutingResponse {
        self.apply(command).unwrap()
    }

    fn deck(&self, carrier: &str) -> Vec<(String, u64)> {
        self.state
            .routing()
            .deck(carrier)
            .map(|deck| {
                deck.rates()
                    .map(|rate| (rate.prefix, rate.rate_micros_per_minute))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn import(
        &mut self,
        id: &str,
        carrier: &str,
        chunks: &[Vec<Rate>],
        replace: bool,
    ) -> Result<RoutingResponse, Error> {
        let mut line = 2;
        let mut rows = 0;
        for chunk in chunks {
            self.apply(RoutingCommand::StageRates {
                import_id: id.into(),
                owner: OWNER.into(),
                carrier: carrier.into(),
                first_line: line,
                rates: chunk.clone(),
            })?;
            line += chunk.len() as u64;
            rows += chunk.len() as u64;
        }
        self.apply(RoutingCommand::CommitRates {
            import_id: id.into(),
            owner: OWNER.into(),
            carrier: carrier.into(),
            replace,
            expected_rows: rows,
        })
    }
}

fn with_carrier() -> Log {
    let mut log = Log::new();
    log.ok(RoutingCommand::PutCarrier {
        carrier: carrier("alpha"),
        mode: PutMode::Create,
    });
    log
}

#[test]
fn put_modes_create_replace_and_upsert() {
    let mut log = with_carrier();
    let error = log
        .apply(RoutingCommand::PutCarrier {
            carrier: carrier("alpha"),
            mode: PutMode::Create,
        })
        .unwrap_err();
    assert!(matches!(error, Error::AlreadyExists { .. }), "{error}");
    let error = log
        .apply(RoutingCommand::PutCarrier {
            carrier: carrier("beta"),
            mode: PutMode::Replace,
        })
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert_eq!(
        log.ok(RoutingCommand::PutCarrier {
            carrier: carrier("alpha"),
            mode: PutMode::Upsert
        }),
        RoutingResponse::Put {
            replaced: true,
            warnings: Vec::new(),
        }
    );
}

#[test]
fn references_must_exist_and_block_deletes() {
    let mut log = with_carrier();
    let error = log
        .apply(RoutingCommand::PutGateway {
            gateway: gateway("g1", "nope"),
            mode: PutMode::Upsert,
        })
        .unwrap_err();
    assert_eq!(error, Error::not_found("carrier", "nope"));
    let error = log
        .apply(RoutingCommand::PutTenant {
            tenant: Box::new(tenant("t", &["nope"])),
            mode: PutMode::Upsert,
        })
        .unwrap_err();
    assert_eq!(error, Error::not_found("carrier", "nope"));

    log.ok(RoutingCommand::PutGateway {
        gateway: gateway("g1", "alpha"),
        mode: PutMode::Upsert,
    });
    log.ok(RoutingCommand::PutTenant {
        tenant: Box::new(tenant("t", &["alpha"])),
        mode: PutMode::Upsert,
    });
    let error = log
        .apply(RoutingCommand::Delete {
            kind: ObjectKind::Carrier,
            name: "alpha".into(),
        })
        .unwrap_err();
    assert!(error.to_string().contains("g1"), "{error}");
    log.ok(RoutingCommand::Delete {
        kind: ObjectKind::Gateway,
        name: "g1".into(),
    });
    let error = log
        .apply(RoutingCommand::Delete {
            kind: ObjectKind::Carrier,
            name: "alpha".into(),
        })
        .unwrap_err();
    assert!(error.to_string().contains("tenants t"), "{error}");
    log.ok(RoutingCommand::Delete {
        kind: ObjectKind::Tenant,
        name: "t".into(),
    });
    log.ok(RoutingCommand::Delete {
        kind: ObjectKind::Carrier,
        name: "alpha".into(),
    });
    assert!(log.state.routing().carrier("alpha").is_none());
}

#[test]
fn a_gateway_cannot_silently_move_to_another_carrier() {
    let mut log = with_carrier();
    log.ok(RoutingCommand::PutCarrier {
        carrier: carrier("beta"),
        mode: PutMode::Create,
    });
    log.ok(RoutingCommand::PutGateway {
        gateway: gateway("g1", "alpha"),
        mode: PutMode::Upsert,
    });
    let error = log
        .apply(RoutingCommand::PutGateway {
            gateway: gateway("g1", "beta"),
            mode: PutMode::Upsert,
        })
        .unwrap_err();
    assert!(matches!(error, Error::FailedPrecondition(_)), "{error}");
}

#[test]
fn drain_marks_health_and_needs_a_known_gateway() {
    let mut log = with_carrier();
    assert!(log
        .apply(RoutingCommand::SetDrained {
            gateway: "g1".into(),
            drained: true
        })
        .is_err());
    log.ok(RoutingCommand::PutGateway {
        gateway: gateway("g1", "alpha"),
        mode: PutMode::Upsert,
    });
    log.ok(RoutingCommand::SetDrained {
        gateway: "g1".into(),
        drained: true,
    });
    assert!(log.state.routing().is_drained("g1"));
    assert_eq!(log.state.routing().health(log.state.health()).len(), 1);
    log.ok(RoutingCommand::SetDrained {
        gateway: "g1".into(),
        drained: false,
    });
    assert!(log.state.routing().health(log.state.health()).is_empty());
}

#[test]
fn an_import_replaces_the_deck_only_at_commit() {
    let mut log = with_carrier();
    log.import(
        "first",
        "alpha",
        &[vec![rate("44", 10), rate("1", 5)]],
        true,
    )
    .unwrap();
    let version = log.state.routing().decks_version();
    assert_eq!(
        log.deck("alpha"),
        [("1".to_owned(), 5), ("44".to_owned(), 10)]
    );

    // Staged chunks change nothing until the commit.
    log.ok(RoutingCommand::StageRates {
        import_id: "second".into(),
        owner: OWNER.into(),
        carrier: "alpha".into(),
        first_line: 2,
        rates: vec![rate("33", 7)],
    });
    assert_eq!(log.deck("alpha").len(), 2);
    assert_eq!(log.state.routing().decks_version(), version);
    log.ok(RoutingCommand::CommitRates {
        import_id: "second".into(),
        owner: OWNER.into(),
        carrier: "alpha".into(),
        replace: true,
        expected_rows: 1,
    });
    assert_eq!(log.deck("alpha"), [("33".to_owned(), 7)]);
    assert!(log.state.routing().decks_version() > version);
}

#[test]
fn a_merge_replaces_only_the_prefixes_it_brings() {
    let mut log = with_carrier();
    log.import("a", "alpha", &[vec![rate("44", 10), rate("1", 5)]], true)
        .unwrap();
    log.import("b", "alpha", &[vec![rate("44", 12), rate("33", 7)]], false)
        .unwrap();
    assert_eq!(
        log.deck("alpha"),
        [
            ("1".to_owned(), 5),
            ("33".to_owned(), 7),
            ("44".to_owned(), 12)
        ]
    );
}

#[test]
fn a_duplicate_prefix_across_chunks_fails_the_import_naming_both_lines() {
    let mut log = with_carrier();
    log.import("a", "alpha", &[vec![rate("1", 1)]], true)
        .unwrap();
    let error = log
        .import(
            "b",
            "alpha",
            &[vec![rate("44", 1), rate("45", 1)], vec![rate("44", 2)]],
            true,
        )
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("line 4") && text.contains("line 2") && text.contains("44"),
        "{text}"
    );
    assert_eq!(
        log.deck("alpha"),
        [("1".to_owned(), 1)],
        "a failed import changed the deck"
    );
}

#[test]
fn future_dated_rows_of_one_prefix_are_not_duplicates() {
    let mut log = with_carrier();
    let mut old = rate("44", 10);
    old.effective_until_ms = Some(5_000);
    let mut new = rate("44", 8);
    new.effective_from_ms = Some(5_000);
    log.import("a", "alpha", &[vec![new, old]], true).unwrap();
    assert_eq!(
        log.deck("alpha"),
        [("44".to_owned(), 10), ("44".to_owned(), 8)]
    );
}

#[test]
fn a_lost_chunk_is_detected_at_commit_and_nothing_applies() {
    let mut log = with_carrier();
    log.ok(RoutingCommand::StageRates {
        import_id: "a".into(),
        owner: OWNER.into(),
        carrier: "alpha".into(),
        first_line: 2,
        rates: vec![rate("44", 1)],
    });
    let error = log
        .apply(RoutingCommand::CommitRates {
            import_id: "a".into(),
            owner: OWNER.into(),
            carrier: "alpha".into(),
            replace: true,
            expected_rows: 2,
        })
        .unwrap_err();
    assert!(error.to_string().contains("chunk was lost"), "{error}");
    assert!(log.deck("alpha").is_empty());
}

#[test]
fn an_abandoned_import_expires_by_log_time() {
    let mut log = with_carrier();
    log.ok(RoutingCommand::StageRates {
        import_id: "a".into(),
        owner: OWNER.into(),
        carrier: "alpha".into(),
        first_line: 2,
        rates: vec![rate("44", 1)],
    });
    log.time_ms += STAGED_IMPORT_TTL_MS;
    let error = log
        .apply(RoutingCommand::CommitRates {
            import_id: "a".into(),
            owner: OWNER.into(),
            carrier: "alpha".into(),
            replace: true,
            expected_rows: 1,
        })
        .unwrap_err();
    assert_eq!(error, Error::not_found("import", "a"));
}

#[test]
fn a_bad_row_is_refused_with_its_line() {
    let mut log = with_carrier();
    let error = log
        .apply(RoutingCommand::StageRates {
            import_id: "a".into(),
            owner: OWNER.into(),
            carrier: "alpha".into(),
            first_line: 10,
            rates: vec![rate("44", 1), rate("4x", 1)],
        })
        .unwrap_err();
    assert!(error.to_string().contains("line 11"), "{error}");
}

#[test]
fn the_route_token_key_is_set_once() {
    let mut log = Log::new();
    log.ok(RoutingCommand::SetRouteTokenKey { key: vec![1; 32] });
    log.ok(RoutingCommand::SetRouteTokenKey { key: vec![2; 32] });
    assert_eq!(log.state.routing().route_token_key(), Some(&[1u8; 32][..]));
    assert!(log
        .apply(RoutingCommand::SetRouteTokenKey { key: vec![1; 3] })
        .is_err());
}

// Staging rules: owner tokens, idle eviction at log time, abort and the list of imports.

/// What one staging step does: the command's result, in short.
#[derive(Debug, PartialEq)]
enum Step {
    /// Stage one row under (import id, owner) at the log's time plus `after_ms`.
    Stage(&'static str, &'static str, u64),
    Commit(&'static str, &'static str),
    Abort(&'static str, &'static str),
}

/// Runs `steps` against a log with carrier `alpha` and checks each result (`staged N`,
/// `committed N`, `aborted N`, or the error's text contains the expectation) and, at the end,
/// the staged imports as `id:rows:idle_ms` at the log's time.
fn check(steps: &[(Step, &str)], expected_imports: &[&str]) {
    assert_eq!(check_imports(steps), expected_imports);
}

/// Like [`check`], returning the staged imports for the caller to look at.
fn check_imports(steps: &[(Step, &str)]) -> Vec<String> {
    let mut log = with_carrier();
    for (step, expected) in steps {
        let result = match *step {
            Step::Stage(id, owner, after_ms) => {
                log.time_ms += after_ms;
                log.apply(RoutingCommand::StageRates {
                    import_id: id.into(),
                    owner: owner.into(),
                    carrier: "alpha".into(),
                    first_line: 2,
                    rates: vec![rate("44", 1)],
                })
            }
            Step::Commit(id, owner) => {
                let rows = log
                    .state
                    .routing()
                    .staged_imports()
                    .find(|(staged_id, _)| staged_id.as_str() == id)
                    .map_or(0, |(_, staged)| staged.rows);
                log.apply(RoutingCommand::CommitRates {
                    import_id: id.into(),
                    owner: owner.into(),
                    carrier: "alpha".into(),
                    replace: true,
                    expected_rows: rows,
                })
            }
            Step::Abort(id, owner) => log.apply(RoutingCommand::AbortRates {
                import_id: id.into(),
                owner: owner.into(),
            }),
        };
        let actual = match result {
            Ok(RoutingResponse::Staged { staged_rows }) => format!("staged {staged_rows}"),
            Ok(RoutingResponse::Committed { deck_rows }) => format!("committed {deck_rows}"),
            Ok(RoutingResponse::Aborted { staged_rows }) => format!("aborted {staged_rows}"),
            Ok(other) => format!("{other:?}"),
            Err(error) => error.to_string(),
        };
        assert!(
            actual.contains(expected),
            "{step:?}: expected {expected:?}, got {actual:?}"
        );
    }
    let now = log.state.time_ms();
    log.state
        .routing()
        .staged_imports()
        .map(|(id, staged)| format!("{id}:{}:{}", staged.rows, staged.idle_ms(now)))
        .collect()
}

#[test]
fn only_the_owner_adds_to_commits_or_aborts_an_import() {
    check(
        &[
            (Step::Stage("a", OWNER, 0), "staged 1"),
            (Step::Stage("a", OTHER, 0), "owner"),
            (Step::Commit("a", OTHER), "is not the owner token"),
            (Step::Abort("a", OTHER), "is not the owner token"),
            (Step::Stage("a", OWNER, 0), "staged 2"),
        ],
        &["a:2:0"],
    );
    check(
        &[
            (Step::Stage("a", OWNER, 0), "staged 1"),
            (Step::Commit("a", OWNER), "committed 1"),
        ],
        &[],
    );
}

#[test]
fn an_owner_token_must_be_hex_of_at_least_128_bits() {
    for owner in ["", "abc", "0123456789abcdef0123456789abcdeg"] {
        let command = RoutingCommand::AbortRates {
            import_id: "a".into(),
            owner: owner.into(),
        };
        let error = command.validate().unwrap_err();
        assert!(error.to_string().contains("owner"), "{error}");
    }
}

#[test]
fn abort_drops_the_import_and_frees_its_slot() {
    check(
        &[
            (Step::Stage("a", OWNER, 0), "staged 1"),
            (Step::Stage("a", OWNER, 0), "staged 2"),
            (Step::Abort("a", OWNER), "aborted 2"),
            (Step::Abort("a", OWNER), "not found"),
            (Step::Commit("a", OWNER), "not found"),
        ],
        &[],
    );
}

/// Steps staging `count` imports "i0", "i1", ..., each under its own owner token.
fn fill(count: usize) -> Vec<(Step, &'static str)> {
    const OWNERS: [&str; 17] = [
        "00000000000000000000000000000000",
        "00000000000000000000000000000001",
        "00000000000000000000000000000002",
        "00000000000000000000000000000003",
        "00000000000000000000000000000004",
        "00000000000000000000000000000005",
        "00000000000000000000000000000006",
        "00000000000000000000000000000007",
        "00000000000000000000000000000008",
        "00000000000000000000000000000009",
        "0000000000000000000000000000000a",
        "0000000000000000000000000000000b",
        "0000000000000000000000000000000c",
        "0000000000000000000000000000000d",
        "0000000000000000000000000000000e",
        "0000000000000000000000000000000f",
        "00000000000000000000000000000010",
    ];
    const IDS: [&str; 17] = [
        "i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9", "i10", "i11", "i12", "i13",
        "i14", "i15", "i16",
    ];
    (0..count)
        .map(|n| (Step::Stage(IDS[n], OWNERS[n], 0), "staged 1"))
        .collect()
}

#[test]
fn full_slots_refuse_a_new_import_while_every_import_is_active() {
    assert_eq!(MAX_STAGED_IMPORTS, 16);
    let mut steps = fill(16);
    // Each step moves the log 10 ms on: nothing has been idle for a minute.
    steps.push((Step::Stage("new", OWNER, 0), "none has been idle"));
    let imports = check_imports(&steps);
    assert_eq!(imports.len(), 16);
}

#[test]
fn an_idle_import_is_evicted_by_a_new_one_when_the_slots_are_full() {
    let mut steps = fill(16);
    // i0..i15 have had no chunk for a minute (log time); i1 then sends one.
    steps.push((
        Step::Stage(
            "i1",
            "00000000000000000000000000000001",
            STAGED_IMPORT_IDLE_MS,
        ),
        "staged 2",
    ));
    steps.push((Step::Stage("new", OWNER, 0), "staged 1"));
    let imports = check_imports(&steps);
    // The longest idle (i0) made room; the one that just sent a chunk stays.
    assert!(
        !imports.iter().any(|line| line.starts_with("i0:")),
        "{imports:?}"
    );
    assert!(
        imports.iter().any(|line| line.starts_with("i1:2:")),
        "{imports:?}"
    );
    assert!(
        imports.iter().any(|line| line.starts_with("new:1:0")),
        "{imports:?}"
    );
    assert_eq!(imports.len(), 16);
}

#[test]
fn an_evicted_import_cannot_commit_what_it_lost() {
    let mut steps = fill(16);
    steps.push((Step::Stage("new", OWNER, STAGED_IMPORT_IDLE_MS), "staged 1"));
    // i0 was evicted: its next chunk starts the import over with 1 row, so its client's
    // commit (expecting every row it sent) is refused as "a chunk was lost".
    steps.push((
        Step::Stage("i0", "00000000000000000000000000000000", 0),
        "staged 1",
    ));
    check_imports(&steps);
}

#[test]
fn one_owner_token_holds_at_most_a_few_imports() {
    let ids = ["a", "b", "c", "d", "e"];
    let mut steps: Vec<(Step, &str)> = ids[..MAX_STAGED_IMPORTS_PER_OWNER]
        .iter()
        .map(|id| (Step::Stage(id, OWNER, 0), "staged 1"))
        .collect();
    steps.push((
        Step::Stage(ids[MAX_STAGED_IMPORTS_PER_OWNER], OWNER, 0),
        "under this owner token",
    ));
    steps.push((Step::Stage("other", OTHER, 0), "staged 1"));
    check(
        &steps,
        &["a:1:50", "b:1:40", "c:1:30", "d:1:20", "other:1:0"],
    );
}

#[test]
fn imports_list_with_rows_and_idle_time_at_log_time() {
    check(
        &[
            (Step::Stage("a", OWNER, 0), "staged 1"),
            (Step::Stage("b", OTHER, 0), "staged 1"),
            (Step::Stage("a", OWNER, 5_000), "staged 2"),
            (Step::Stage("b", OTHER, 1_000), "staged 2"),
        ],
        &["a:2:1010", "b:2:0"],
    );
}
