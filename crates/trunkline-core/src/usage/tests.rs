//! Usage limits: each limit refuses the call past it and admits again as calls end or windows
//! pass; grants keep the day's minutes and spend under their limits with every call talking to
//! the end of its grant; ends are idempotent; unreported calls are released.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// 2026-11-30 00:00:00 UTC.
const DAY_START: u64 = 1_796_083_200_000 - DAY_MS;

fn admission(call: u64) -> Admission {
    Admission {
        tenant: "acme".to_owned(),
        call,
        extension: None,
        class: DestinationClass::National,
        rate_micros_per_minute: 10_000,
        connect_fee_micros: 0,
        attempt: call,
    }
}

fn limited(tenant: UsageLimits) -> LimitsConfig {
    LimitsConfig {
        tenant,
        ..LimitsConfig::default()
    }
}

fn admit(book: &mut UsageBook, limits: &LimitsConfig, now: u64, admission: Admission) -> Admitted {
    book.admit(now, &[admission], |_| {
        Some(std::borrow::Cow::Borrowed(limits))
    })
    .remove(0)
}

fn admitted(answer: &Admitted) -> bool {
    matches!(answer, Admitted::Yes { .. })
}

fn refused_by(answer: &Admitted) -> Option<LimitKind> {
    match answer {
        Admitted::No { limit, .. } => Some(*limit),
        Admitted::Yes { .. } => None,
    }
}

fn end(book: &mut UsageBook, call: u64, talk_ms: u64) -> Ended {
    book.end(
        DAY_START,
        &[CallEnd {
            tenant: "acme".to_owned(),
            call,
            talk_ms,
            cancel: None,
        }],
    )
    .remove(0)
}

#[test]
fn a_withdrawn_admission_is_refused_when_it_applies_late_and_released_when_it_applied() {
    let limits = limited(UsageLimits {
        concurrent_calls: Some(1),
        ..UsageLimits::default()
    });
    let cancel = |call| CallEnd {
        tenant: "acme".to_owned(),
        call,
        talk_ms: 0,
        cancel: Some(call),
    };
    let mut book = UsageBook::default();
    let now = DAY_START + HOUR_MS;
    // The withdrawal applies first: the late admission is refused and holds nothing.
    assert_eq!(book.end(now, &[cancel(1)]), [Ended::Unknown]);
    assert_eq!(
        refused_by(&admit(&mut book, &limits, now + 1, admission(1))),
        Some(LimitKind::ActiveCalls)
    );
    assert!(admitted(&admit(&mut book, &limits, now + 2, admission(2))));
    // The admission applied first: the withdrawal releases it.
    end(&mut book, 2, 0);
    assert!(admitted(&admit(&mut book, &limits, now + 3, admission(3))));
    assert!(matches!(
        book.end(now + 4, &[cancel(3)])[0],
        Ended::Booked { .. }
    ));
    assert!(admitted(&admit(&mut book, &limits, now + 5, admission(4))));
    // A retry with the same Call-ID (another attempt) was answered admitted: withdrawing the
    // first attempt must not release the call the proxy now holds.
    end(&mut book, 4, 0);
    assert!(admitted(&admit(&mut book, &limits, now + 6, admission(5))));
    let retry = Admission {
        attempt: 55,
        ..admission(5)
    };
    assert!(admitted(&admit(&mut book, &limits, now + 7, retry)));
    assert_eq!(book.end(now + 8, &[cancel(5)]), [Ended::Unknown]);
    assert_eq!(book.tenant("acme").unwrap().tenant.active, 1);
    assert_eq!(
        refused_by(&admit(&mut book, &limits, now + 9, admission(6))),
        Some(LimitKind::ConcurrentCalls)
    );
    end(&mut book, 5, 0);
    assert!(admitted(&admit(&mut book, &limits, now + 10, admission(4))));
    // Forgotten after a while.
    assert!(book.expiry_due(now + CANCEL_MEMORY_MS));
    book.expire(now + CANCEL_MEMORY_MS);
    end(&mut book, 4, 0);
    assert!(admitted(&admit(
        &mut book,
        &limits,
        now + CANCEL_MEMORY_MS + 1,
        admission(1)
    )));
}

#[test]
fn concurrent_calls_are_admitted_up_to_the_limit_and_again_as_calls_end() {
    let limits = limited(UsageLimits {
        concurrent_calls: Some(3),
        ..UsageLimits::default()
    });
    let mut book = UsageBook::default();
    let now = DAY_START + 1_000;
    for call in 1..=3 {
        assert!(admitted(&admit(&mut book, &limits, now, admission(call))));
    }
    assert_eq!(
        refused_by(&admit(&mut book, &limits, now, admission(4))),
        Some(LimitKind::ConcurrentCalls)
    );
    // Admitting a live call again is idempotent: no second slot.
    assert!(admitted(&admit(&mut book, &limits, now, admission(2))));
    assert_eq!(book.tenant("acme").unwrap().tenant.active, 3);
    assert!(matches!(end(&mut book, 2, 30_000), Ended::Booked { .. }));
    // Ending it twice, or a call never admitted, changes nothing: no double release.
    assert_eq!(end(&mut book, 2, 30_000), Ended::Unknown);
    assert_eq!(end(&mut book, 99, 30_000), Ended::Unknown);
    assert_eq!(book.tenant("acme").unwrap().tenant.active, 2);
    assert!(admitted(&admit(&mut book, &limits, now, admission(4))));
    assert_eq!(
        refused_by(&admit(&mut book, &limits, now, admission(5))),
        Some(LimitKind::ConcurrentCalls)
    );
}

#[test]
fn rate_limits_count_in_their_window_and_open_in_the_next() {
    for (limits, window) in [
        (
            UsageLimits {
                calls_per_second: Some(2),
                ..UsageLimits::default()
            },
            SECOND_MS,
        ),
        (
            UsageLimits {
                calls_per_hour: Some(2),
                ..UsageLimits::default()
            },
            HOUR_MS,
        ),
        (
            UsageLimits {
                calls_per_day: Some(2),
                ..UsageLimits::default()
            },
            DAY_MS,
        ),
    ] {
        let kind = if window == SECOND_MS {
            LimitKind::CallsPerSecond
        } else if window == HOUR_MS {
            LimitKind::CallsPerHour
        } else {
            LimitKind::CallsPerDay
        };
        let limits = limited(limits);
        let mut book = UsageBook::default();
        let now = DAY_START + 5 * HOUR_MS;
        assert!(admitted(&admit(&mut book, &limits, now, admission(1))));
        end(&mut book, 1, 0);
        assert!(admitted(&admit(&mut book, &limits, now + 1, admission(2))));
        // Ended calls still count: the window counts calls started.
        assert_eq!(
            refused_by(&admit(&mut book, &limits, now + 2, admission(3))),
            Some(kind)
        );
        assert!(admitted(&admit(
            &mut book,
            &limits,
            now + window,
            admission(3)
        )));
    }
}

#[test]
fn a_spend_limit_is_never_passed_even_if_every_call_talks_to_its_grant() {
    // 1.00 a day; 0.10 a minute and 0.05 to connect.
    let limits = limited(UsageLimits {
        spend_per_day_micros: Some(1_000_000),
        ..UsageLimits::default()
    });
    let priced = |call| Admission {
        rate_micros_per_minute: 100_000,
        connect_fee_micros: 50_000,
        ..admission(call)
    };
    let mut book = UsageBook::default();
    let now = DAY_START + HOUR_MS;
    let mut grants = Vec::new();
    let mut call = 0;
    loop {
        call += 1;
        match admit(&mut book, &limits, now, priced(call)) {
            Admitted::Yes { max_duration_ms } => grants.push((call, max_duration_ms)),
            Admitted::No { limit, .. } => {
                assert_eq!(limit, LimitKind::SpendPerDay);
                break;
            }
        }
        assert!(call < 100, "the limit never refused");
    }
    // The first call may spend it all: (1.00 - 0.05) / 0.10 = 9.5 minutes.
    assert_eq!(grants, [(1, 570_000)]);
    // It talks all of it and more: billed to its grant, at the limit, not past it.
    let Ended::Booked { cost_micros, .. } = end(&mut book, 1, 3_600_000) else {
        panic!("the call was admitted");
    };
    assert_eq!(cost_micros, 1_000_000);
    assert_eq!(
        refused_by(&admit(&mut book, &limits, now, priced(50))),
        Some(LimitKind::SpendPerDay)
    );
    // The next day starts afresh.
    assert!(admitted(&admit(
        &mut book,
        &limits,
        now + DAY_MS,
        priced(51)
    )));
}

#[test]
fn calls_share_what_is_left_and_a_short_call_gives_back_what_it_did_not_use() {
    // 10 minutes a day.
    let limits = limited(UsageLimits {
        minutes_per_day: Some(10),
        ..UsageLimits::default()
    });
    let mut book = UsageBook::default();
    let now = DAY_START + HOUR_MS;
    let Admitted::Yes {
        max_duration_ms: first,
    } = admit(&mut book, &limits, now, admission(1))
    else {
        panic!("admitted");
    };
    assert_eq!(first, 600_000);
    assert_eq!(
        refused_by(&admit(&mut book, &limits, now, admission(2))),
        Some(LimitKind::MinutesPerDay)
    );
    // It talked 61 seconds, rounded up to the second: the rest is free again.
    assert_eq!(
        end(&mut book, 1, 60_500),
        Ended::Booked {
            billed_ms: 61_000,
            cost_micros: 10_167
        }
    );
    let Admitted::Yes {
        max_duration_ms: second,
    } = admit(&mut book, &limits, now, admission(2))
    else {
        panic!("admitted");
    };
    assert_eq!(second, 600_000 - 61_000);
    // An unanswered call costs nothing.
    assert_eq!(
        end(&mut book, 2, 0),
        Ended::Booked {
            billed_ms: 0,
            cost_micros: 0
        }
    );
}

#[test]
fn each_extension_has_its_own_limit_within_the_tenants() {
    let limits = LimitsConfig {
        tenant: UsageLimits {
            concurrent_calls: Some(3),
            ..UsageLimits::default()
        },
        per_extension: UsageLimits {
            concurrent_calls: Some(1),
            ..UsageLimits::default()
        },
        ..LimitsConfig::default()
    };
    let from = |call, extension: &str| Admission {
        extension: Some(extension.to_owned()),
        ..admission(call)
    };
    let mut book = UsageBook::default();
    let now = DAY_START;
    assert!(admitted(&admit(&mut book, &limits, now, from(1, "2001"))));
    let refused = admit(&mut book, &limits, now, from(2, "2001"));
    assert_eq!(refused_by(&refused), Some(LimitKind::ConcurrentCalls));
    let Admitted::No { message, .. } = refused else {
        unreachable!()
    };
    assert!(message.contains("extension"), "{message}");
    assert!(admitted(&admit(&mut book, &limits, now, from(3, "2002"))));
    assert!(admitted(&admit(&mut book, &limits, now, from(4, "2003"))));
    let refused = admit(&mut book, &limits, now, from(5, "2004"));
    assert_eq!(refused_by(&refused), Some(LimitKind::ConcurrentCalls));
}

#[test]
fn a_call_whose_end_never_comes_is_released_after_its_grant_and_booked_in_full() {
    let limits = LimitsConfig {
        tenant: UsageLimits {
            concurrent_calls: Some(1),
            ..UsageLimits::default()
        },
        max_duration: MaxDurations {
            premium_ms: 60_000,
            ..MaxDurations::default()
        },
        ..LimitsConfig::default()
    };
    let premium = Admission {
        class: DestinationClass::Premium,
        ..admission(1)
    };
    let mut book = UsageBook::default();
    let now = DAY_START + HOUR_MS;
    assert_eq!(
        admit(&mut book, &limits, now, premium),
        Admitted::Yes {
            max_duration_ms: 60_000
        }
    );
    assert!(!book.expiry_due(now + 60_000));
    assert!(book.expiry_due(now + 60_000 + END_GRACE_MS));
    assert_eq!(book.expire(now + 60_000 + END_GRACE_MS), 1);
    let usage = book.tenant("acme").unwrap();
    assert_eq!(usage.tenant.active, 0);
    assert_eq!(usage.tenant.booked_ms.count, 60_000);
    // Released once: the late end report changes nothing.
    assert_eq!(end(&mut book, 1, 10_000), Ended::Unknown);
    assert!(admitted(&admit(
        &mut book,
        &limits,
        now + 2 * 60_000 + END_GRACE_MS,
        admission(2)
    )));
}

#[test]
fn counters_never_go_negative_and_idle_extensions_are_dropped_a_day_later() {
    let limits = LimitsConfig {
        per_extension: UsageLimits {
            calls_per_day: Some(5),
            ..UsageLimits::default()
        },
        ..LimitsConfig::default()
    };
    let mut book = UsageBook::default();
    let now = DAY_START;
    for call in 0..50 {
        let from = Admission {
            extension: Some(format!("e{call}")),
            ..admission(call)
        };
        admit(&mut book, &limits, now, from);
        end(&mut book, call, 1_000);
        end(&mut book, call, 1_000);
    }
    let usage = book.tenant("acme").unwrap();
    assert_eq!(usage.tenant.active, 0);
    assert_eq!(usage.extensions.len(), 50);
    assert!(usage
        .extensions
        .values()
        .all(|counters| counters.active == 0));
    assert!(book.expiry_due(now + DAY_MS));
    book.expire(now + DAY_MS);
    assert!(book.tenant("acme").unwrap().extensions.is_empty());
}

#[test]
fn absurd_limits_are_refused_naming_the_field() {
    for (limits, field) in [
        (
            limited(UsageLimits {
                concurrent_calls: Some(0),
                ..UsageLimits::default()
            }),
            "limits.tenant.concurrent_calls",
        ),
        (
            LimitsConfig {
                per_extension: UsageLimits {
                    calls_per_second: Some(MAX_COUNT_LIMIT + 1),
                    ..UsageLimits::default()
                },
                ..LimitsConfig::default()
            },
            "limits.per_extension.calls_per_second",
        ),
        (
            limited(UsageLimits {
                spend_per_day_micros: Some(0),
                ..UsageLimits::default()
            }),
            "limits.tenant.spend_per_day_micros",
        ),
        (
            LimitsConfig {
                refusal_sip_code: 200,
                ..LimitsConfig::default()
            },
            "limits.refusal_sip_code",
        ),
        (
            LimitsConfig {
                max_duration: MaxDurations {
                    international_ms: 10,
                    ..MaxDurations::default()
                },
                ..LimitsConfig::default()
            },
            "limits.max_duration.international_ms",
        ),
    ] {
        assert_eq!(limits.validate().unwrap_err().field(), field);
    }
    assert!(!LimitsConfig::default().is_limited());
    LimitsConfig::default().validate().unwrap();
}
