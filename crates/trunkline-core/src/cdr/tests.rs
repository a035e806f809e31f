use super::*;

const DAY_MS: u64 = 86_400_000;
use crate::settings::SettingsCommand;
use crate::state::{Command, Request, Response, State};

fn record(call_id: &str, disposition: Disposition) -> Cdr {
    Cdr {
        call_id: call_id.to_owned(),
        tenant: "acme".to_owned(),
        extension: Some("101".to_owned()),
        source: SourceKind::Phone,
        from: "+12125550100".to_owned(),
        dialled: "9005551234".to_owned(),
        normalized: "+19005551234".to_owned(),
        class: Some(DestinationClass::Premium),
        node: 2,
        start_ms: 1_000,
        answer_ms: None,
        end_ms: None,
        disposition,
        reason: String::new(),
        sip_code: 0,
        legs: Vec::new(),
        billed_ms: 0,
        cost_micros: 0,
    }
}

fn answered(call_id: &str) -> Cdr {
    Cdr {
        answer_ms: Some(2_000),
        end_ms: Some(62_000),
        legs: vec![LegRecord {
            carrier: "alpha".into(),
            gateway: "alpha-1".into(),
            sip_code: 200,
            transport: None,
        }],
        billed_ms: 60_000,
        cost_micros: 10_000,
        ..record(call_id, Disposition::Answered)
    }
}

#[test]
fn a_routed_call_is_held_until_its_end_and_archived_once() {
    let mut book = CdrBook::default();
    let mut archive = Vec::new();
    let outcome = book.record(
        1_000,
        &[record("c1", Disposition::InProgress)],
        &mut archive,
    );
    assert_eq!(outcome, vec![Recorded::Yes]);
    assert!(archive.is_empty(), "a call in progress stays in the state");
    assert_eq!(book.open_count(), 1);

    let outcome = book.record(62_000, &[answered("c1")], &mut archive);
    assert_eq!(outcome, vec![Recorded::Yes]);
    assert_eq!(archive.len(), 1);
    assert_eq!(archive[0].disposition, Disposition::Answered);
    assert_eq!(book.open_count(), 0);

    // The proxy retries its end report; the lookup's record comes late from a slow node.
    let outcome = book.record(
        63_000,
        &[answered("c1"), record("c1", Disposition::InProgress)],
        &mut archive,
    );
    assert_eq!(outcome, vec![Recorded::Duplicate, Recorded::Duplicate]);
    assert_eq!(archive.len(), 1, "{archive:?}");
    assert_eq!(
        book.open_count(),
        0,
        "a late lookup record never reopens a call"
    );
    assert_eq!(book.archived(), 1);
}

#[test]
fn an_end_whose_lookup_record_was_lost_is_still_a_whole_record() {
    let mut book = CdrBook::default();
    let mut archive = Vec::new();
    book.record(5_000, &[answered("c2")], &mut archive);
    assert_eq!(archive, vec![answered("c2")]);
}

#[test]
fn blocked_refused_and_unroutable_attempts_are_archived_at_once() {
    let mut book = CdrBook::default();
    let mut archive = Vec::new();
    let attempts = [
        Cdr {
            reason: "policy-premium (tenant)".into(),
            sip_code: 403,
            ..record("b1", Disposition::Blocked)
        },
        Cdr {
            reason: "limit-concurrent-calls".into(),
            sip_code: 503,
            ..record("b2", Disposition::Refused)
        },
        record("b3", Disposition::NoRoute),
        // The same Call-ID blocked twice is two attempts.
        record("b1", Disposition::Blocked),
    ];
    let outcome = book.record(1_000, &attempts, &mut archive);
    assert_eq!(outcome, vec![Recorded::Yes; 4]);
    assert_eq!(archive.len(), 4);
    assert_eq!(book.open_count(), 0);
}

#[test]
fn a_call_whose_end_never_comes_is_closed_as_unterminated() {
    let mut book = CdrBook::default();
    let mut archive = Vec::new();
    book.record(
        1_000,
        &[record("c3", Disposition::InProgress)],
        &mut archive,
    );
    let closes = 1_000 + OPEN_CALL_MS;
    assert!(!book.expiry_due(closes - 1));
    assert!(book.expiry_due(closes));
    book.expire(closes, &mut archive);
    assert_eq!(archive.len(), 1);
    assert_eq!(archive[0].disposition, Disposition::Unterminated);
    assert_eq!(book.open_count(), 0);
    // Its end, arriving after all, is a record of its own (the call did end).
    book.record(closes + 1, &[answered("c3")], &mut archive);
    assert_eq!(archive.len(), 2);
}

#[test]
fn ended_calls_are_forgotten_after_a_while_so_the_state_stays_bounded() {
    let mut book = CdrBook::default();
    let mut archive = Vec::new();
    book.record(1_000, &[answered("c4")], &mut archive);
    assert!(book.expiry_due(1_000 + ENDED_MEMORY_MS));
    book.expire(1_000 + ENDED_MEMORY_MS, &mut archive);
    assert_eq!(
        book,
        CdrBook {
            archived: 1,
            ..CdrBook::default()
        }
    );
}

#[test]
fn past_the_bound_on_open_calls_a_lookup_record_is_archived_as_it_is() {
    let mut book = CdrBook::default();
    let mut archive = Vec::new();
    let records: Vec<Cdr> = (0..MAX_PER_COMMAND)
        .map(|n| record(&format!("o{n}"), Disposition::InProgress))
        .collect();
    while book.open_count() < MAX_OPEN_CALLS {
        let batch: Vec<Cdr> = records
            .iter()
            .map(|r| Cdr {
                call_id: format!("{}-{}", r.call_id, book.open_count()),
                ..r.clone()
            })
            .collect();
        book.record(1_000, &batch, &mut archive);
    }
    assert!(archive.is_empty());
    book.record(
        1_000,
        &[record("over", Disposition::InProgress)],
        &mut archive,
    );
    assert_eq!(book.open_count(), MAX_OPEN_CALLS);
    assert_eq!(archive.len(), 1);
    assert_eq!(archive[0].disposition, Disposition::InProgress);
}

#[test]
fn endings_read_from_the_last_leg() {
    for (answered, code, expected) in [
        (true, Some(200), Disposition::Answered),
        (true, None, Disposition::Answered),
        (false, Some(486), Disposition::Busy),
        (false, Some(600), Disposition::Busy),
        (false, Some(408), Disposition::NoAnswer),
        (false, Some(480), Disposition::NoAnswer),
        (false, Some(487), Disposition::NoAnswer),
        (false, Some(503), Disposition::Failed),
        (false, Some(404), Disposition::Failed),
        (false, Some(0), Disposition::Failed),
        (false, None, Disposition::Failed),
    ] {
        assert_eq!(
            Disposition::of_end(answered, code),
            expected,
            "{answered} {code:?}"
        );
    }
    for disposition in Disposition::ALL {
        assert_eq!(Disposition::parse(disposition.as_str()), Some(disposition));
    }
    assert_eq!(Disposition::parse("ok"), None);
}

#[test]
fn bad_records_are_refused_naming_the_field() {
    let field = |command: CdrCommand| command.validate().unwrap_err().field().to_owned();
    assert_eq!(field(CdrCommand::Record(Vec::new())), "records");
    let mut end_before_answer = answered("x");
    end_before_answer.end_ms = Some(1_000);
    assert_eq!(
        field(CdrCommand::Record(vec![end_before_answer])),
        "records[0].end_ms"
    );
    let mut answer_on_busy = answered("x");
    answer_on_busy.disposition = Disposition::Busy;
    assert_eq!(
        field(CdrCommand::Record(vec![answer_on_busy])),
        "records[0].answer_ms"
    );
    let mut legs = answered("x");
    legs.legs = vec![legs.legs[0].clone(); MAX_LEGS + 1];
    assert_eq!(
        field(CdrCommand::Record(vec![
            record("ok", Disposition::NoRoute),
            legs
        ])),
        "records[1].legs"
    );
    assert_eq!(
        field(CdrCommand::Record(vec![record("", Disposition::NoRoute)])),
        "records[0].call_id"
    );
    let long = Cdr {
        from: "1".repeat(MAX_FIELD_BYTES + 1),
        ..record("x", Disposition::NoRoute)
    };
    assert_eq!(field(CdrCommand::Record(vec![long])), "records[0].from");
}

fn at(time_ms: u64, command: Command) -> Request {
    Request {
        idempotency: None,
        time_ms,
        command,
        actor: None,
    }
}

#[test]
fn the_state_hands_finished_records_to_the_archive_in_log_order() {
    let mut state = State::default();
    let mut archive = Vec::new();
    let response = state.apply_archiving(
        1,
        &at(
            1_000,
            Command::Cdr(CdrCommand::Record(vec![
                record("a", Disposition::InProgress),
                record("b", Disposition::Blocked),
            ])),
        ),
        &mut archive,
    );
    assert_eq!(
        response,
        Response::Cdr(CdrResponse::Recorded(vec![Recorded::Yes, Recorded::Yes]))
    );
    assert_eq!(archive.len(), 1);
    assert_eq!(state.cdrs().open_count(), 1);

    // A quiet cluster's ticks close what never ended.
    let mut archive = Vec::new();
    state.apply_archiving(2, &at(1_000 + OPEN_CALL_MS, Command::Tick), &mut archive);
    assert_eq!(archive.len(), 1);
    assert_eq!(archive[0].call_id, "a");
    assert_eq!(archive[0].disposition, Disposition::Unterminated);

    // An invalid batch in the log is rejected whole.
    let mut archive = Vec::new();
    let response = state.apply_archiving(
        3,
        &at(2_000, Command::Cdr(CdrCommand::Record(Vec::new()))),
        &mut archive,
    );
    assert!(matches!(response, Response::Rejected(_)), "{response:?}");
    assert!(archive.is_empty());
}

#[test]
fn retention_comes_from_the_settings() {
    let mut settings = Settings::default();
    assert_eq!(retention_ms(&settings), DEFAULT_RETENTION_DAYS * DAY_MS);
    settings.apply(
        1,
        &SettingsCommand::Set {
            key: RETENTION_SETTING.into(),
            value: "7".into(),
        },
    );
    assert_eq!(retention_ms(&settings), 7 * DAY_MS);
}

#[test]
fn talk_time_is_billed_per_started_second_with_the_fee_once() {
    assert_eq!(bill(0, 60_000, 5_000), (0, 0));
    assert_eq!(bill(1, 60_000, 5_000), (1_000, 6_000));
    assert_eq!(bill(60_000, 60_000, 5_000), (60_000, 65_000));
    assert_eq!(bill(60_001, 60_000, 0), (61_000, 61_000));
    // A third of a micro-unit is charged as a whole one.
    assert_eq!(bill(1_000, 20, 0), (1_000, 1));
    assert_eq!(bill(u64::MAX, u64::MAX, u64::MAX).1, u64::MAX);
}

#[test]
fn applying_a_record_copies_one_shard_not_the_book() {
    // Readers hold the published state, so every change is a copy on write: a book that was
    // copied whole for each batch made ends 10 times slower once calls were in progress.
    let mut book = CdrBook::default();
    let mut archive = Vec::new();
    let calls: Vec<Cdr> = (0..20_000)
        .map(|n| record(&format!("c{n}"), Disposition::InProgress))
        .collect();
    for batch in calls.chunks(MAX_PER_COMMAND) {
        book.record(1_000, batch, &mut archive);
    }
    let published = book.clone();
    book.record(2_000, &[answered("c7")], &mut archive);
    let copied = book
        .shards
        .iter()
        .zip(&published.shards)
        .filter(|(now, before)| !Arc::ptr_eq(now, before))
        .count();
    assert_eq!(copied, 1);
    assert_eq!(book.open_count(), 19_999);
    assert_eq!(published.open_count(), 20_000);
}

#[test]
fn a_copied_shard_shares_its_keys_and_they_serialise_as_the_pair_they_were() {
    // Tombstones of the last two minutes' calls are most of a shard at high rates, and every
    // shard a batch touches is copied: the copy must not copy their strings.
    let mut book = CdrBook::default();
    let mut archive = Vec::new();
    let ended: Vec<Cdr> = (0..20_000).map(|n| answered(&format!("e{n}"))).collect();
    for batch in ended.chunks(MAX_PER_COMMAND) {
        book.record(1_000, batch, &mut archive);
    }
    let published = book.clone();
    book.record(
        2_000,
        &[record("new", Disposition::InProgress)],
        &mut archive,
    );
    let index = shard_of(&Arc::new(("acme".to_owned(), "new".to_owned())));
    let (now, before) = (&book.shards[index], &published.shards[index]);
    assert!(!Arc::ptr_eq(now, before), "the touched shard is a copy");
    let shared = before
        .calls
        .keys()
        .filter(|key| now.calls.keys().any(|copy| Arc::ptr_eq(key, copy)))
        .count();
    assert!(shared > 0);
    assert_eq!(
        shared,
        before.calls.len(),
        "every key of the copy is shared"
    );

    // Snapshots written before keys were shared hold plain pairs: a shared key serialises as
    // its pair (serde's `rc`), so a shard reads and writes the same bytes as before.
    let keys: Vec<&CallKey> = now.calls.keys().collect();
    let pairs: Vec<(String, String)> = keys.iter().map(|key| (***key).clone()).collect();
    let old = serde_json::to_string(&pairs).unwrap();
    assert_eq!(serde_json::to_string(&keys).unwrap(), old);
    let read: Vec<CallKey> = serde_json::from_str(&old).unwrap();
    assert_eq!(read.iter().collect::<Vec<_>>(), keys);
}
