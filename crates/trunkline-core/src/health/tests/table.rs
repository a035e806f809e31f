//! The replicated health table applied through `State`: compare-and-set transitions, the
//! combined selection health, events, deletes and the flapping budget carried by the log.

use std::collections::BTreeSet;

use crate::{
    events::EventKind,
    health::{
        HealthCommand, HealthPolicy, LimiterDecision, Liveness, ProbeOverrides, ProbePolicy,
        Transition, TransitionLimiter, TransitionLimiterPolicy, TransitionSource,
    },
    routing::{
        Carrier, Gateway, GatewayHealth, ObjectKind, PutMode, RoutingCommand, SipUri, Translation,
    },
    Command, Error, Request, Response, State,
};

struct Log {
    state: State,
    index: u64,
    time_ms: u64,
}

impl Log {
    fn with_gateways(names: &[&str]) -> Log {
        let mut log = Log {
            state: State::default(),
            index: 0,
            time_ms: 1_000,
        };
        log.apply(Command::Routing(RoutingCommand::PutCarrier {
            carrier: Carrier {
                name: "alpha".into(),
                capabilities: BTreeSet::new(),
                translation: Translation {
                    strip_digits: 0,
                    tech_prefix: String::new(),
                    plus: true,
                },
                final_codes: BTreeSet::new(),
                enabled: true,
            },
            mode: PutMode::Create,
        }))
        .unwrap();
        for name in names {
            log.apply(Command::Routing(RoutingCommand::PutGateway {
                gateway: Gateway {
                    name: (*name).into(),
                    carrier: "alpha".into(),
                    uri: SipUri::parse("sip:192.0.2.1").unwrap(),
                    priority: 1,
                    weight: 1,
                    max_concurrent_calls: None,
                    enabled: true,
                    probe: ProbeOverrides::default(),
                },
                mode: PutMode::Create,
            }))
            .unwrap();
        }
        log
    }

    fn apply(&mut self, command: Command) -> Result<Response, Error> {
        self.index += 1;
        self.time_ms += 100;
        let request = Request {
            idempotency: None,
            time_ms: self.time_ms,
            actor: None,
            command,
        };
        match self.state.apply(self.index, &request) {
            Response::Rejected(error) => Err(error),
            response => Ok(response),
        }
    }

    fn transition(&mut self, gateway: &str, from: Liveness, to: Liveness) -> Result<(), Error> {
        self.apply(Command::Health(HealthCommand::Transition {
            gateway: gateway.into(),
            observer_node: 2,
            from,
            to,
            reason: format!("{} by test", to.as_str()),
            source: TransitionSource::Probe,
            round_trip_ms: Some(7),
        }))
        .map(|_| ())
    }
}

#[test]
fn a_transition_changes_state_and_selection_health_and_makes_an_event() {
    let mut log = Log::with_gateways(&["gw1", "gw2"]);
    log.transition("gw1", Liveness::Up, Liveness::Down).unwrap();
    let health = log.state.health();
    let gw1 = health.gateway("gw1").unwrap();
    assert_eq!(gw1.state, Liveness::Down);
    assert_eq!(
        gw1.since_ms, log.time_ms,
        "since is log time, not the observer's"
    );
    assert_eq!(gw1.observer_node, 2);
    assert_eq!(gw1.round_trip_ms, Some(7));
    assert_eq!(gw1.changed_index, log.index);
    assert_eq!(health.liveness("gw2"), Liveness::Up);

    let selection = log.state.routing().health(log.state.health());
    assert_eq!(selection.get("gw1"), Some(&GatewayHealth::Down));
    assert_eq!(selection.get("gw2"), None);

    let events: Vec<_> = log.state.events().after(0).0.cloned().collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].index, log.index);
    let EventKind::GatewayHealth(change) = &events[0].kind else {
        panic!("not a health change: {:?}", events[0]);
    };
    assert_eq!((change.from, change.to), (Liveness::Up, Liveness::Down));
    assert_eq!(change.gateway, "gw1");
}

#[test]
fn a_stale_transition_is_refused_and_changes_nothing() {
    let mut log = Log::with_gateways(&["gw1"]);
    log.transition("gw1", Liveness::Up, Liveness::Down).unwrap();
    let before = log.state.health().clone();
    // A second node's breaker saw the same failure a moment later.
    let error = log
        .transition("gw1", Liveness::Up, Liveness::Down)
        .unwrap_err();
    assert!(matches!(error, Error::FailedPrecondition(_)), "{error}");
    assert_eq!(log.state.health(), &before);
    assert_eq!(log.state.events().len(), 1);
}

#[test]
fn a_transition_of_an_unknown_gateway_is_not_found() {
    let mut log = Log::with_gateways(&["gw1"]);
    let error = log
        .transition("nope", Liveness::Up, Liveness::Down)
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert!(log.state.health().gateway("nope").is_none());
}

#[test]
fn drained_wins_over_down_in_selection_health() {
    let mut log = Log::with_gateways(&["gw1"]);
    log.transition("gw1", Liveness::Up, Liveness::Down).unwrap();
    log.apply(Command::Routing(RoutingCommand::SetDrained {
        gateway: "gw1".into(),
        drained: true,
    }))
    .unwrap();
    let selection = log.state.routing().health(log.state.health());
    assert_eq!(selection.get("gw1"), Some(&GatewayHealth::Drained));
}

#[test]
fn deleting_a_gateway_forgets_its_health() {
    let mut log = Log::with_gateways(&["gw1"]);
    log.transition("gw1", Liveness::Up, Liveness::Down).unwrap();
    log.apply(Command::Routing(RoutingCommand::Delete {
        kind: ObjectKind::Gateway,
        name: "gw1".into(),
    }))
    .unwrap();
    assert!(log.state.health().gateway("gw1").is_none());
}

#[test]
fn only_the_flapping_hold_may_restate_down() {
    let mut log = Log::with_gateways(&["gw1"]);
    log.transition("gw1", Liveness::Up, Liveness::Down).unwrap();
    let since = log.state.health().gateway("gw1").unwrap().since_ms;
    let restate = |source| {
        Command::Health(HealthCommand::Transition {
            gateway: "gw1".into(),
            observer_node: 1,
            from: Liveness::Down,
            to: Liveness::Down,
            reason: "flapping".into(),
            source,
            round_trip_ms: None,
        })
    };
    let error = log.apply(restate(TransitionSource::Probe)).unwrap_err();
    assert!(matches!(error, Error::InvalidField { .. }), "{error}");
    log.apply(restate(TransitionSource::Flapping)).unwrap();
    let gw1 = log.state.health().gateway("gw1").unwrap();
    assert_eq!(gw1.source, TransitionSource::Flapping);
    assert_eq!(gw1.since_ms, since, "still down since the first transition");
    assert_eq!(gw1.recent_ms.len(), 2);
}

#[test]
fn an_invalid_policy_is_refused_naming_the_part() {
    let mut log = Log::with_gateways(&[]);
    let policy = HealthPolicy {
        probe: ProbePolicy {
            interval_ms: 10,
            ..ProbePolicy::default()
        },
        ..HealthPolicy::default()
    };
    let error = log
        .apply(Command::Health(HealthCommand::SetPolicy(policy)))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("probe.interval_ms: interval_ms"),
        "{error}"
    );
    assert_eq!(log.state.health().policy(), &HealthPolicy::default());
}

#[test]
fn a_new_prober_continues_the_replicated_flapping_budget() {
    let mut log = Log::with_gateways(&["gw1"]);
    let mut liveness = Liveness::Up;
    for _ in 0..4 {
        let next = match liveness {
            Liveness::Up => Liveness::Down,
            Liveness::Down => Liveness::Up,
        };
        log.transition("gw1", liveness, next).unwrap();
        liveness = next;
    }
    let gateway = log.state.health().gateway("gw1").unwrap().clone();
    let policy = TransitionLimiterPolicy {
        max_transitions: 6,
        window_ms: 60_000,
    };
    let mut limiter = TransitionLimiter::with_history(
        policy.clone(),
        gateway.state,
        &gateway.recent_ms,
        None,
        log.time_ms,
    );
    let proposal = |to, at_ms| Transition {
        from: Liveness::Up,
        to,
        reason: "test".into(),
        at_ms,
    };
    // 4 of 6 used: one more ordinary transition, then the reserved flapping one.
    assert!(matches!(
        limiter.admit(proposal(Liveness::Down, log.time_ms + 1)),
        LimiterDecision::Publish(_)
    ));
    assert!(matches!(
        limiter.admit(proposal(Liveness::Up, log.time_ms + 2)),
        LimiterDecision::PublishFlapping(_)
    ));
    // Long after the window the old history no longer counts.
    let later_ms = log.time_ms + 120_000;
    let mut fresh =
        TransitionLimiter::with_history(policy, gateway.state, &gateway.recent_ms, None, later_ms);
    for (offset, to) in [Liveness::Down, Liveness::Up, Liveness::Down, Liveness::Up]
        .into_iter()
        .enumerate()
    {
        let decision = fresh.admit(proposal(to, later_ms + offset as u64));
        assert!(
            matches!(decision, LimiterDecision::Publish(_)),
            "{decision:?}"
        );
    }
}

#[test]
fn probe_overrides_replace_only_what_they_name() {
    let cluster = ProbePolicy::default();
    let overrides = ProbeOverrides {
        interval_ms: Some(500),
        alive_codes: Some(BTreeSet::from([200, 404])),
        ..ProbeOverrides::default()
    };
    overrides.validate().unwrap();
    let effective = overrides.effective(&cluster);
    assert_eq!(effective.interval_ms, 500);
    assert_eq!(effective.timeout_ms, 500, "cut to the interval");
    assert_eq!(effective.down_after, cluster.down_after);
    assert_eq!(effective.alive_codes, BTreeSet::from([200, 404]));
    let bad = ProbeOverrides {
        alive_codes: Some(BTreeSet::from([408])),
        ..ProbeOverrides::default()
    };
    assert!(bad.validate().unwrap_err().reason().contains("408"));
    let inverted = ProbeOverrides {
        interval_ms: Some(200),
        timeout_ms: Some(300),
        ..ProbeOverrides::default()
    };
    assert!(inverted.validate().is_err());
}
