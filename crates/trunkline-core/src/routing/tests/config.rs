//! The replicated routing configuration: puts, deletes, drains and staged deck imports,
//! applied through `State` as the log applies them.

use std::collections::BTreeSet;

use crate::{
    routing::{
        Carrier, DialPlan, Gateway, ObjectKind, PutMode, Rate, RoutingCommand, RoutingResponse,
        SipUri, Strategy, Tenant, Translation, STAGED_IMPORT_TTL_MS,
    },
    Command, Error, Request, Response, State,
};

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
            time_ms: self.time_ms,
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
                deck.iter()
                    .map(|rate| (rate.prefix.clone(), rate.rate_micros_per_minute))
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
                carrier: carrier.into(),
                first_line: line,
                rates: chunk.clone(),
            })?;
            line += chunk.len() as u64;
            rows += chunk.len() as u64;
        }
        self.apply(RoutingCommand::CommitRates {
            import_id: id.into(),
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
        RoutingResponse::Put { replaced: true }
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
            tenant: tenant("t", &["nope"]),
            mode: PutMode::Upsert,
        })
        .unwrap_err();
    assert_eq!(error, Error::not_found("carrier", "nope"));

    log.ok(RoutingCommand::PutGateway {
        gateway: gateway("g1", "alpha"),
        mode: PutMode::Upsert,
    });
    log.ok(RoutingCommand::PutTenant {
        tenant: tenant("t", &["alpha"]),
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
        carrier: "alpha".into(),
        first_line: 2,
        rates: vec![rate("33", 7)],
    });
    assert_eq!(log.deck("alpha").len(), 2);
    assert_eq!(log.state.routing().decks_version(), version);
    log.ok(RoutingCommand::CommitRates {
        import_id: "second".into(),
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
        carrier: "alpha".into(),
        first_line: 2,
        rates: vec![rate("44", 1)],
    });
    let error = log
        .apply(RoutingCommand::CommitRates {
            import_id: "a".into(),
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
        carrier: "alpha".into(),
        first_line: 2,
        rates: vec![rate("44", 1)],
    });
    log.time_ms += STAGED_IMPORT_TTL_MS;
    let error = log
        .apply(RoutingCommand::CommitRates {
            import_id: "a".into(),
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
