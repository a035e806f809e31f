use super::*;
use crate::policy::SourceKind;

const T0: u64 = 1_796_000_000_000;

fn call(number: &str, class: DestinationClass) -> Cdr {
    Cdr {
        call_id: format!("{number}@proxy"),
        tenant: "acme".into(),
        extension: None,
        source: SourceKind::Phone,
        from: String::new(),
        dialled: number.into(),
        normalized: number.into(),
        class: Some(class),
        node: 1,
        start_ms: T0,
        answer_ms: None,
        end_ms: None,
        disposition: Disposition::InProgress,
        reason: String::new(),
        sip_code: 0,
        legs: Vec::new(),
        billed_ms: 0,
        cost_micros: 0,
    }
}

fn premium(n: u32) -> Cdr {
    call(&format!("+1900555{n:04}"), DestinationClass::Premium)
}

#[test]
fn a_premium_burst_raises_one_alert_and_its_action_blocks_calls_abroad_only() {
    let mut book = AlertBook::default();
    let mut config = AlertRule::PremiumBurst.default_config();
    config.action = Some(AlertAction::BlockInternational);
    book.apply(
        T0,
        &AlertCommand::SetRule {
            tenant: None,
            rule: AlertRule::PremiumBurst,
            config: Some(config),
        },
    )
    .unwrap();
    // The threshold is 5 a minute: the sixth fires. (Numbers far apart: no scanning.)
    for n in 0..5 {
        assert!(book
            .observe(T0 + u64::from(n), &[premium(n * 1_000)])
            .is_empty());
    }
    let raised = book.observe(T0 + 5, &[premium(5_000)]);
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].rule, AlertRule::PremiumBurst);
    assert_eq!((raised[0].observed, raised[0].limit), (6, 5));
    assert_eq!(raised[0].action, Some(AlertAction::BlockInternational));
    // An open alert is not raised again.
    assert!(book.observe(T0 + 6, &[premium(6_000)]).is_empty());

    assert!(book
        .blocking("acme", DestinationClass::International)
        .is_some());
    assert!(book.blocking("acme", DestinationClass::Premium).is_some());
    assert!(book.blocking("acme", DestinationClass::National).is_none());
    assert!(book.blocking("acme", DestinationClass::Emergency).is_none());
    assert!(book
        .blocking("globex", DestinationClass::International)
        .is_none());

    // Acknowledging keeps the action; clearing it is separate.
    let id = raised[0].id;
    book.apply(
        T0 + 7,
        &AlertCommand::Acknowledge {
            id,
            by: "ops".into(),
        },
    )
    .unwrap();
    assert_eq!(
        book.alert(id).unwrap().acknowledged,
        Some(("ops".into(), T0 + 7))
    );
    assert!(book
        .blocking("acme", DestinationClass::International)
        .is_some());
    let cleared = book
        .apply(
            T0 + 8,
            &AlertCommand::Unblock {
                tenant: "acme".into(),
            },
        )
        .unwrap();
    assert_eq!(
        cleared,
        AlertResponse::Cleared(vec![AlertAction::BlockInternational])
    );
    assert!(book
        .blocking("acme", DestinationClass::International)
        .is_none());
    assert!(book
        .apply(
            T0,
            &AlertCommand::Acknowledge {
                id: 999,
                by: "x".into()
            }
        )
        .is_err());
}

#[test]
fn no_action_ever_blocks_an_emergency_call() {
    for action in [
        AlertAction::BlockInternational,
        AlertAction::BlockAllButEmergency,
        AlertAction::LowerConcurrentCalls(1),
    ] {
        assert!(!action.blocks(DestinationClass::Emergency), "{action:?}");
        assert_eq!(AlertAction::parse(&action.to_string()), Some(action));
    }
    assert!(!AlertAction::LowerConcurrentCalls(1).blocks(DestinationClass::Premium));
    assert_eq!(AlertAction::parse("lower-concurrent-calls=0"), None);
    assert_eq!(AlertAction::parse("lower-concurrent-calls=x"), None);
    assert!(AlertAction::BlockAllButEmergency.blocks(DestinationClass::National));
    assert!(AlertAction::BlockAllButEmergency.blocks(DestinationClass::TollFree));
    assert!(!AlertAction::BlockInternational.blocks(DestinationClass::TollFree));
}

#[test]
fn emergency_calls_and_ends_are_not_attempts() {
    let mut book = AlertBook::default();
    let mut emergency = call("911", DestinationClass::Emergency);
    for n in 0..100 {
        emergency.call_id = format!("e{n}");
        assert!(book.observe(T0 + n, &[emergency.clone()]).is_empty());
    }
    let mut ended = premium(1);
    ended.disposition = Disposition::Failed;
    for n in 0..100 {
        assert!(book.observe(T0 + n, &[ended.clone()]).is_empty());
    }
}

#[test]
fn scanning_a_number_range_is_sequential_dialling() {
    let mut book = AlertBook::default();
    let mut raised = Vec::new();
    for n in 0..11 {
        raised.extend(book.observe(
            T0 + n,
            &[call(
                &format!("+1415555{:04}", 1200 + n),
                DestinationClass::National,
            )],
        ));
    }
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].rule, AlertRule::SequentialDialling);
    assert_eq!(raised[0].observed, 11);

    // The same number again and again is not a scan.
    let mut book = AlertBook::default();
    for n in 0..50 {
        assert!(book
            .observe(T0 + n, &[call("+14155551200", DestinationClass::National)])
            .is_empty());
    }
}

#[test]
fn many_very_short_answered_calls_are_flagged() {
    let mut book = AlertBook::default();
    let mut raised = Vec::new();
    for n in 0..31u64 {
        let mut record = call(&format!("+1415{n:07}"), DestinationClass::National);
        record.call_id = format!("short-{n}");
        record.disposition = Disposition::Answered;
        record.answer_ms = Some(T0);
        record.end_ms = Some(T0 + 3_000);
        raised.extend(book.observe(T0 + n * 1_000, &[record]));
    }
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].rule, AlertRule::ShortCalls);
}

#[test]
fn the_learned_baseline_catches_a_burst_the_fixed_threshold_allows() {
    let mut book = AlertBook::default();
    // Two weeks of one international call an hour, learned.
    let mut now = T0;
    for hour in 0..(2 * 168) {
        now = T0 + hour * HOUR_MS;
        assert!(book
            .observe(
                now,
                &[call(
                    &format!("+4420{hour:08}"),
                    DestinationClass::International
                )]
            )
            .is_empty());
    }
    // Then 12 in a minute: under the fixed 30, far above ten times the hour's baseline (1 a
    // minute at least once scaled from the hour).
    now += HOUR_MS;
    let mut raised = Vec::new();
    for n in 0..12u64 {
        raised.extend(book.observe(
            now + n,
            &[call(
                &format!("+4420{:08}", 900_000 + n * 1_000),
                DestinationClass::International,
            )],
        ));
    }
    assert!(
        raised
            .iter()
            .any(|alert| alert.rule == AlertRule::InternationalBurst),
        "{raised:?}"
    );
}

#[test]
fn windows_slide_and_old_counts_fade() {
    let mut window = Window::default();
    assert_eq!(window.add(0, 60_000, 10), 10);
    // Half-way into the next minute half of the last minute still counts.
    assert_eq!(window.add(90_000, 60_000, 0), 5);
    // Two minutes on, nothing.
    assert_eq!(window.add(240_000, 60_000, 1), 1);
}

#[test]
fn bad_rule_settings_are_refused_naming_the_field() {
    let field = |config: RuleConfig| {
        AlertCommand::SetRule {
            tenant: None,
            rule: AlertRule::PremiumBurst,
            config: Some(config),
        }
        .validate()
        .unwrap_err()
        .field()
        .to_owned()
    };
    let base = AlertRule::PremiumBurst.default_config();
    assert_eq!(
        field(RuleConfig {
            threshold: 0,
            ..base.clone()
        }),
        "threshold"
    );
    assert_eq!(
        field(RuleConfig {
            window_ms: 10,
            ..base.clone()
        }),
        "window_ms"
    );
    assert_eq!(
        field(RuleConfig {
            baseline_factor: Some(1),
            ..base
        }),
        "baseline_factor"
    );
    for rule in AlertRule::ALL {
        assert_eq!(AlertRule::parse(rule.as_str()), Some(rule));
        assert!(rule.default_config().validate().is_ok());
    }
}

#[test]
fn a_lowered_concurrent_limit_applies_to_tenants_with_and_without_limits() {
    let mut book = AlertBook::default();
    let mut config = AlertRule::PremiumBurst.default_config();
    config.threshold = 1;
    config.action = Some(AlertAction::LowerConcurrentCalls(2));
    book.apply(
        T0,
        &AlertCommand::SetRule {
            tenant: None,
            rule: AlertRule::PremiumBurst,
            config: Some(config),
        },
    )
    .unwrap();
    let unlimited = LimitsConfig::default();
    assert!(!book.effective_limits("acme", &unlimited).is_limited());
    book.observe(T0, &[premium(1_000), premium(2_000)]);

    // No limits of its own: now held to 2 calls at once, so admitted through Raft.
    let lowered = book.effective_limits("acme", &unlimited);
    assert!(lowered.is_limited());
    assert_eq!(lowered.tenant.concurrent_calls, Some(2));
    // Its own lower limit stands; a higher one is lowered.
    let mut own = LimitsConfig::default();
    own.tenant.concurrent_calls = Some(1);
    assert_eq!(
        book.effective_limits("acme", &own).tenant.concurrent_calls,
        Some(1)
    );
    own.tenant.concurrent_calls = Some(50);
    assert_eq!(
        book.effective_limits("acme", &own).tenant.concurrent_calls,
        Some(2)
    );
    // Other tenants, and after the unblock, are untouched.
    assert!(!book.effective_limits("globex", &unlimited).is_limited());
    book.apply(
        T0,
        &AlertCommand::Unblock {
            tenant: "acme".into(),
        },
    )
    .unwrap();
    assert!(!book.effective_limits("acme", &unlimited).is_limited());
}

#[test]
fn a_tenants_own_rule_wins_for_it_only_and_goes_with_the_tenant() {
    let mut book = AlertBook::default();
    let set = |tenant: Option<&str>, threshold: Option<u64>| AlertCommand::SetRule {
        tenant: tenant.map(str::to_owned),
        rule: AlertRule::PremiumBurst,
        config: threshold.map(|threshold| RuleConfig {
            threshold,
            ..AlertRule::PremiumBurst.default_config()
        }),
    };
    // The cluster's threshold is 5; acme's own is 1.
    book.apply(T0, &set(Some("acme"), Some(1))).unwrap();
    let globex = |n: u32| Cdr {
        tenant: "globex".into(),
        ..premium(n)
    };
    assert!(book.observe(T0, &[premium(0), globex(0)]).is_empty());
    let raised = book.observe(T0 + 1, &[premium(1_000), globex(1_000)]);
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].tenant, "acme");
    assert_eq!((raised[0].observed, raised[0].limit), (2, 1));
    assert_eq!(
        book.policy()
            .rule_for("globex", AlertRule::PremiumBurst)
            .threshold,
        5
    );

    // A cluster change leaves acme's own rule alone; dropping acme's brings the cluster's.
    book.apply(T0 + 2, &set(None, Some(9))).unwrap();
    assert_eq!(
        book.policy()
            .rule_for("acme", AlertRule::PremiumBurst)
            .threshold,
        1
    );
    assert_eq!(
        book.policy()
            .rule_for("globex", AlertRule::PremiumBurst)
            .threshold,
        9
    );
    book.apply(T0 + 3, &set(Some("acme"), None)).unwrap();
    assert_eq!(
        book.policy()
            .rule_for("acme", AlertRule::PremiumBurst)
            .threshold,
        9
    );
    assert!(book.policy().tenants.is_empty());

    // A deleted tenant's own rules go with it.
    book.apply(T0 + 4, &set(Some("acme"), Some(2))).unwrap();
    book.remove_tenant("acme");
    assert!(book
        .policy()
        .tenant_rule("acme", AlertRule::PremiumBurst)
        .is_none());
    // A bad tenant name is refused naming the field.
    let error = set(Some("no spaces"), Some(1)).validate().unwrap_err();
    assert_eq!(error.field(), "tenant");
}
