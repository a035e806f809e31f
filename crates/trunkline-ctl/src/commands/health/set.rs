//! `trunkctl health policy set [flags]`: change some settings of the cluster's health policy.
//!
//! Each value given is checked on its own with the core's rules before anything is sent.
//! Then the policy is read as of every committed write, the given settings are changed, the
//! whole is checked again (a timeout must stay within the interval, whichever of the two was
//! given) and written back whole. A concurrent change between the read and the write is
//! overwritten (the policy has no version to compare yet), as with `gateway update`.

use std::collections::BTreeSet;

use serde::Serialize;
use trunkline_api::convert::{health_policy_from_proto, health_policy_to_proto};
use trunkline_client::{proto, Retry};
use trunkline_core::{
    health::{breaker::MAX_WINDOW_MS, HealthPolicy, ProbeOverrides},
    FieldError,
};

use crate::{
    commands::{
        check::{self, Optional},
        view,
    },
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Args, Default, PartialEq)]
pub struct Args {
    /// Time between two OPTIONS probes of a gateway (durations: 500ms, 2s, 1m; a bare number
    /// is ms).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    interval: Option<u64>,
    /// How long a probe waits for a final reply; at most the interval.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    timeout: Option<u64>,
    /// Failed probes in a row that take an up gateway down.
    #[arg(long, value_name = "N")]
    down_after: Option<u32>,
    /// Alive probes in a row that bring a down gateway back.
    #[arg(long, value_name = "N")]
    up_after: Option<u32>,
    /// Final replies that count as alive (200 to 699, never 408).
    #[arg(long, value_name = "CODE,...")]
    alive_codes: Option<String>,
    /// Failed calls in a row (transport failure, 408, 503) that open a gateway's breaker.
    #[arg(long, value_name = "N")]
    breaker_failures: Option<u32>,
    /// The window the breaker's failure ratio is counted over.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    breaker_window: Option<u64>,
    /// Fewer calls than this in the window never open the breaker by ratio.
    #[arg(long, value_name = "N")]
    breaker_min_samples: Option<u32>,
    /// Percent of failed calls in the window that opens the breaker (1 to 100).
    #[arg(long, value_name = "PERCENT")]
    breaker_ratio: Option<u32>,
    /// How long an open breaker waits before probes may close it.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    cool_down: Option<u64>,
    /// Alive probes after the cool-down that close the breaker.
    #[arg(long, value_name = "N")]
    breaker_probe_successes: Option<u32>,
    /// How long after opening sampled calls start trying the gateway (half-open); at most
    /// the cool-down.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    breaker_trial_after: Option<u64>,
    /// One call in N tries a gateway held down by its breaker, as a trial; a trial that
    /// reaches a working gateway closes the breaker early. 0 turns trials off.
    #[arg(long, value_name = "N")]
    breaker_trial_one_in: Option<u32>,
    /// Health changes one gateway may make per flapping window; the last holds it down.
    #[arg(long, value_name = "N")]
    max_transitions: Option<u32>,
    /// The window --max-transitions is counted over.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    flapping_window: Option<u64>,
}

impl Args {
    fn alive_codes(&self) -> Result<Option<BTreeSet<u16>>, Failure> {
        let Some(text) = &self.alive_codes else {
            return Ok(None);
        };
        let codes = check::parse_codes("--alive-codes", text)?;
        // parse_codes read each code as a u16, so none is dropped here.
        Ok(Some(
            codes
                .into_iter()
                .filter_map(|code| u16::try_from(code).ok())
                .collect(),
        ))
    }

    /// Sets the settings given on `policy`.
    fn apply(&self, policy: &mut HealthPolicy) -> Result<(), Failure> {
        let probe = &mut policy.probe;
        set(&mut probe.interval_ms, self.interval);
        set(&mut probe.timeout_ms, self.timeout);
        set(&mut probe.down_after, self.down_after);
        set(&mut probe.up_after, self.up_after);
        set(&mut probe.alive_codes, self.alive_codes()?);
        let breaker = &mut policy.breaker;
        set(
            &mut breaker.consecutive_failures_to_open,
            self.breaker_failures,
        );
        set(&mut breaker.window_ms, self.breaker_window);
        set(&mut breaker.min_samples, self.breaker_min_samples);
        if let Some(ratio) = self.breaker_ratio {
            breaker.failure_ratio_percent = u8::try_from(ratio).map_err(|_| {
                check::usage(
                    "--breaker-ratio",
                    "failure_ratio_percent must be from 1 to 100",
                )
            })?;
        }
        set(&mut breaker.cool_down_ms, self.cool_down);
        set(
            &mut breaker.probe_successes_to_close,
            self.breaker_probe_successes,
        );
        set(&mut breaker.trial_after_ms, self.breaker_trial_after);
        set(&mut breaker.trial_one_in, self.breaker_trial_one_in);
        let flapping = &mut policy.limiter;
        set(&mut flapping.max_transitions, self.max_transitions);
        set(&mut flapping.window_ms, self.flapping_window);
        Ok(())
    }

    /// Checks each value given on its own, before anything is sent: the probe values as a
    /// gateway's overrides are checked (a timeout is compared with an interval only when both
    /// are given), the others against the defaults, which they don't depend on.
    fn check_alone(&self) -> Result<(), Failure> {
        ProbeOverrides {
            disabled: false,
            interval_ms: self.interval,
            timeout_ms: self.timeout,
            down_after: self.down_after,
            up_after: self.up_after,
            alive_codes: self.alive_codes()?,
        }
        .validate()
        .map_err(|error| error.within("probe"))
        .map_err(policy_failure(""))?;
        let mut policy = HealthPolicy::default();
        self.apply(&mut policy)?;
        // The trial delay is compared with the cool-down only when both are given.
        let breaker = &mut policy.breaker;
        if self.cool_down.is_none() {
            breaker.cool_down_ms = breaker
                .cool_down_ms
                .max(breaker.trial_after_ms.min(MAX_WINDOW_MS));
        }
        if self.breaker_trial_after.is_none() {
            breaker.trial_after_ms = breaker.trial_after_ms.min(breaker.cool_down_ms);
        }
        policy
            .breaker
            .validate()
            .map_err(|error| error.within("breaker"))
            .and_then(|()| {
                policy
                    .limiter
                    .validate()
                    .map_err(|error| error.within("flapping"))
            })
            .map_err(policy_failure(""))
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// Fields whose flag is not what `check::flag_for` makes of the field's name.
const TRIAL_FLAGS: &[(&str, &str)] = &[
    ("policy.breaker.trial_after_ms", "--breaker-trial-after"),
    ("policy.breaker.trial_one_in", "--breaker-trial-one-in"),
];

/// A field of the policy refused, naming its flag.
fn policy_failure(hint: &str) -> impl Fn(FieldError) -> Failure + '_ {
    move |error| {
        let error = error.within("policy");
        match TRIAL_FLAGS
            .iter()
            .find(|(field, _)| *field == error.field())
        {
            Some((_, flag)) => check::usage(flag, format!("{}{hint}", error.reason())),
            None => check::field_failure("", hint)(error),
        }
    }
}

/// Checks the whole policy with the core's rules.
fn check(policy: &HealthPolicy, hint: &str) -> Result<(), Failure> {
    policy.validate().map_err(policy_failure(hint))
}

/// The outcome, as printed.
#[derive(Serialize)]
struct Updated {
    applied_index: u64,
    /// The settings whose value changed, named as the flags.
    changed: Vec<Change>,
    policy: view::HealthPolicy,
}

#[derive(Serialize)]
struct Change {
    setting: &'static str,
    from: String,
    to: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    if args.is_empty() {
        return Err(Failure::Usage(
            "nothing to change: give at least one setting (see `trunkctl health policy set --help`)"
                .into(),
        ));
    }
    args.check_alone()?;
    let latest = crate::commands::config::latest();
    let before = super::policy(context, latest)
        .await?
        .policy
        .unwrap_or_default();
    let mut policy = from_proto(&before)?;
    args.apply(&mut policy)?;
    check(
        &policy,
        " (the settings not given keep their current values: see `trunkctl health policy show`)",
    )?;
    let after = health_policy_to_proto(&policy);
    let request = proto::SetHealthPolicyRequest {
        policy: Some(after.clone()),
    };
    let response = context
        .admin(Retry::Write, request, |mut admin, request| async move {
            admin.set_health_policy(request).await
        })
        .await?;
    let before = view::HealthPolicy::from(&before);
    let after = view::HealthPolicy::from(&after);
    let changed = view::health_policy_settings(&before)
        .into_iter()
        .zip(view::health_policy_settings(&after))
        .filter(|(old, new)| old.value != new.value)
        .map(|(old, new)| Change {
            setting: new.name,
            from: old.value,
            to: new.value,
        })
        .collect();
    let updated = Updated {
        applied_index: response.applied_index,
        changed,
        policy: after,
    };
    output::emit(context.format, &updated, |updated| {
        let changes = if updated.changed.is_empty() {
            "no setting changed".to_owned()
        } else {
            updated
                .changed
                .iter()
                .map(|change| format!("{} {} -> {}", change.setting, change.from, change.to))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "Health policy updated (log index {}): {changes}",
            updated.applied_index
        )
    })
}

/// The policy the node sent, as the core's model.
fn from_proto(policy: &proto::HealthPolicy) -> Result<HealthPolicy, Failure> {
    health_policy_from_proto(Some(policy.clone())).map_err(|error| {
        Failure::Request(format!(
            "the node sent a health policy trunkctl can't read ({error}); is trunkctl older \
             than the node?"
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: Args,
    }

    fn args(flags: &[&str]) -> Args {
        Command::try_parse_from(std::iter::once("set").chain(flags.iter().copied()))
            .unwrap()
            .args
    }

    fn usage_message(result: Result<(), Failure>) -> String {
        match result {
            Err(Failure::Usage(message)) => message,
            other => panic!("not a usage failure: {other:?}"),
        }
    }

    #[test]
    fn each_value_is_checked_on_its_own_and_names_its_flag() {
        for (flags, needle) in [
            (
                &["--interval", "10ms"][..],
                "--interval: interval_ms must be",
            ),
            (&["--timeout", "50"], "--timeout: timeout_ms must be"),
            (
                &["--interval", "1s", "--timeout", "2s"],
                "--timeout: timeout_ms must be at most interval_ms",
            ),
            (&["--down-after", "0"], "--down-after: down_after"),
            (
                &["--alive-codes", "200,408"],
                "--alive-codes: alive code 408",
            ),
            (
                &["--alive-codes", "20x"],
                "--alive-codes: \"20x\" is not a SIP code",
            ),
            (&["--breaker-ratio", "300"], "--breaker-ratio: "),
            (&["--breaker-ratio", "0"], "--breaker-ratio: "),
            (&["--breaker-window", "5ms"], "--breaker-window: window_ms"),
            (&["--cool-down", "2h"], "--cool-down: cool_down_ms"),
            (&["--breaker-min-samples", "0"], "--breaker-min-samples: "),
            (&["--breaker-failures", "0"], "--breaker-failures: "),
            (
                &["--breaker-probe-successes", "0"],
                "--breaker-probe-successes: ",
            ),
            (&["--max-transitions", "1"], "--max-transitions: "),
            (
                &["--breaker-trial-after", "1m", "--cool-down", "30s"],
                "--breaker-trial-after: trial_after_ms must be at most cool_down_ms",
            ),
            (
                &["--breaker-trial-one-in", "2000000"],
                "--breaker-trial-one-in: trial_one_in must be from 0",
            ),
            (&["--flapping-window", "0"], "--flapping-window: window_ms"),
        ] {
            let message = usage_message(args(flags).check_alone());
            assert!(message.starts_with(needle), "{flags:?}: {message}");
        }
        // Alone, a short interval is fine: the timeout it is compared with may change too.
        assert!(args(&["--interval", "500ms"]).check_alone().is_ok());
        assert!(args(&["--breaker-trial-after", "1m"]).check_alone().is_ok());
        assert!(args(&["--breaker-trial-one-in", "0"]).check_alone().is_ok());
        assert!(args(&["--cool-down", "1s"]).check_alone().is_ok());
        assert!(args(&["--timeout", "5s"]).check_alone().is_ok());
    }

    #[test]
    fn only_the_given_settings_change_and_the_whole_is_checked() {
        let mut policy = HealthPolicy::default();
        args(&[
            "--interval",
            "5s",
            "--alive-codes",
            "404,200",
            "--breaker-ratio",
            "25",
        ])
        .apply(&mut policy)
        .unwrap();
        let mut expected = HealthPolicy::default();
        expected.probe.interval_ms = 5_000;
        expected.probe.alive_codes = BTreeSet::from([200, 404]);
        expected.breaker.failure_ratio_percent = 25;
        assert_eq!(policy, expected);
        assert_eq!(
            from_proto(&health_policy_to_proto(&policy)).unwrap(),
            policy
        );

        let mut policy = HealthPolicy::default();
        args(&["--interval", "500ms"]).apply(&mut policy).unwrap();
        let message = usage_message(check(&policy, " (hint)"));
        assert!(
            message.starts_with("--timeout: timeout_ms must be") && message.ends_with("(hint)"),
            "{message}"
        );
    }
}
