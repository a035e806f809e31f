//! Usage limits: how many calls a tenant (and each of its extensions) may have at once, start
//! per second, hour and day, and how many minutes and how much money a day they may use.
//!
//! **Admission goes through the replicated state.** A call of a tenant with limits is admitted
//! by applying an [`Admission`] (the node batches them, many to a log entry): every node applies
//! the same admissions in the same order at the same log time, so no limit is ever exceeded
//! cluster-wide however many nodes route at once, and a node cut off from the quorum admits
//! nothing (it refuses, fail closed). A tenant with no limits never comes here: its lookups
//! stay off consensus.
//!
//! **Minutes and spend are granted, not guessed.** An admitted call is granted a duration: the
//! longest its destination class allows ([`MaxDurations`]), cut to what the day's minutes and
//! spend have left after what is booked and what other live calls hold; the proxy ends the call
//! at that duration (RouteOutbound returns it). The grant is held until the call ends, then
//! replaced by what the call really used: so the day's spend can't pass its limit, even with
//! every admitted call talking to the end of its grant.
//!
//! **Every call ends.** A call whose end is never reported is released when its grant (plus a
//! grace period) runs out, booked as if it talked all of it. Ends are idempotent: a second
//! report of the same call, or the end of a call never admitted, changes nothing.
//!
//! Windows are fixed buckets of log time (the second, the hour, the UTC day); a call is booked
//! to the day it started. Emergency calls are never admitted here: never counted, never
//! refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::routing::{validate_name, DestinationClass};
use crate::FieldError;

/// Largest value of any count limit.
pub const MAX_COUNT_LIMIT: u32 = 10_000_000;
/// Largest daily spend limit: a billion in the currency's units (micro-units here).
pub const MAX_SPEND_LIMIT_MICROS: u64 = 1_000_000_000 * 1_000_000;
/// Longest duration any destination class may be granted: a day.
pub const MAX_GRANT_MS: u64 = 24 * 60 * 60 * 1000;
/// Shortest useful grant: a call that could last less than this is refused instead.
pub const MIN_GRANT_MS: u64 = 6_000;
/// A call whose end is not reported is released this long after its grant ran out.
pub const END_GRACE_MS: u64 = 60_000;
/// Calls one tenant may hold admitted at once whatever its limits: bounds the state.
pub const MAX_ACTIVE_CALLS_PER_TENANT: usize = 100_000;
/// Admissions or ends in one command.
pub const MAX_PER_COMMAND: usize = 2_000;
const SECOND_MS: u64 = 1_000;
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 86_400_000;
const MINUTE_MS: u64 = 60_000;

/// Limits of one scope (the tenant, or each extension on its own). `None`: unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLimits {
    pub concurrent_calls: Option<u32>,
    pub calls_per_second: Option<u32>,
    pub calls_per_hour: Option<u32>,
    pub calls_per_day: Option<u32>,
    pub minutes_per_day: Option<u32>,
    /// Micro-units of the rate decks' currency.
    pub spend_per_day_micros: Option<u64>,
}

impl UsageLimits {
    pub fn is_empty(&self) -> bool {
        self == &UsageLimits::default()
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        for (field, value) in [
            ("concurrent_calls", self.concurrent_calls),
            ("calls_per_second", self.calls_per_second),
            ("calls_per_hour", self.calls_per_hour),
            ("calls_per_day", self.calls_per_day),
            ("minutes_per_day", self.minutes_per_day),
        ] {
            if let Some(value) = value {
                if value == 0 || value > MAX_COUNT_LIMIT {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "{value} is not a limit: 1 to {MAX_COUNT_LIMIT} (leave it unset for \
                             no limit; disable the caller in its calling policy to stop all calls)"
                        ),
                    ));
                }
            }
        }
        if let Some(spend) = self.spend_per_day_micros {
            if spend == 0 || spend > MAX_SPEND_LIMIT_MICROS {
                return Err(FieldError::new(
                    "spend_per_day_micros",
                    format!("{spend} is not a limit: 1 to {MAX_SPEND_LIMIT_MICROS} micro-units"),
                ));
            }
        }
        Ok(())
    }
}

/// Longest a call may last, by destination class: shorter for the classes fraud favours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxDurations {
    pub default_ms: u64,
    pub international_ms: u64,
    /// Premium and high-risk destinations.
    pub premium_ms: u64,
}

impl Default for MaxDurations {
    fn default() -> Self {
        MaxDurations {
            default_ms: 4 * HOUR_MS,
            international_ms: 2 * HOUR_MS,
            premium_ms: HOUR_MS / 2,
        }
    }
}

impl MaxDurations {
    pub fn for_class(&self, class: DestinationClass) -> u64 {
        match class {
            DestinationClass::International => self.international_ms,
            DestinationClass::Premium | DestinationClass::HighRisk => self.premium_ms,
            _ => self.default_ms,
        }
    }

    fn validate(&self) -> Result<(), FieldError> {
        for (field, value) in [
            ("max_duration.default_ms", self.default_ms),
            ("max_duration.international_ms", self.international_ms),
            ("max_duration.premium_ms", self.premium_ms),
        ] {
            if !(MIN_GRANT_MS..=MAX_GRANT_MS).contains(&value) {
                return Err(FieldError::new(
                    field,
                    format!(
                        "{value} ms: a call lasts {MIN_GRANT_MS} ms to {MAX_GRANT_MS} ms at most"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A tenant's usage limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsConfig {
    pub tenant: UsageLimits,
    /// Applied to each calling extension on its own.
    pub per_extension: UsageLimits,
    /// The SIP reply to a call a limit refuses: 503 (try again later) or 403.
    pub refusal_sip_code: u16,
    pub max_duration: MaxDurations,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            tenant: UsageLimits::default(),
            per_extension: UsageLimits::default(),
            refusal_sip_code: 503,
            max_duration: MaxDurations::default(),
        }
    }
}

impl LimitsConfig {
    /// Whether any limit is set: calls of a tenant without are never admitted through Raft.
    pub fn is_limited(&self) -> bool {
        !self.tenant.is_empty() || !self.per_extension.is_empty()
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        self.tenant
            .validate()
            .map_err(|error| error.within("limits.tenant"))?;
        self.per_extension
            .validate()
            .map_err(|error| error.within("limits.per_extension"))?;
        if !matches!(self.refusal_sip_code, 403 | 503) {
            return Err(FieldError::new(
                "limits.refusal_sip_code",
                format!("{} is not 403 or 503", self.refusal_sip_code),
            ));
        }
        self.max_duration
            .validate()
            .map_err(|error| error.within("limits"))
    }
}

/// Which limit refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitKind {
    ConcurrentCalls,
    CallsPerSecond,
    CallsPerHour,
    CallsPerDay,
    MinutesPerDay,
    SpendPerDay,
    /// The bound on calls one tenant may hold, whatever its limits.
    ActiveCalls,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::ConcurrentCalls => "concurrent-calls",
            LimitKind::CallsPerSecond => "calls-per-second",
            LimitKind::CallsPerHour => "calls-per-hour",
            LimitKind::CallsPerDay => "calls-per-day",
            LimitKind::MinutesPerDay => "minutes-per-day",
            LimitKind::SpendPerDay => "spend-per-day",
            LimitKind::ActiveCalls => "active-calls",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A call asking to be admitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    pub tenant: String,
    /// The call's identity (a hash of its Call-ID): admitting it again is idempotent.
    pub call: u64,
    pub extension: Option<String>,
    pub class: DestinationClass,
    /// The price of the dearest leg offered, so a grant covers whichever carrier answers.
    pub rate_micros_per_minute: u64,
    pub connect_fee_micros: u64,
    /// Which request asked (a nonce per RouteOutbound): a withdrawal names the attempt it
    /// withdraws, so it never releases a call a later attempt was told is admitted.
    pub attempt: u64,
}

/// A call that ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEnd {
    pub tenant: String,
    pub call: u64,
    /// Answer to end; 0 for a call never answered.
    pub talk_ms: u64,
    /// `Some(attempt)`: the node withdraws the admission of that attempt, which it could not
    /// confirm (its write timed out). It releases the call only if that attempt is the last
    /// one admitted (a retry with the same Call-ID that was answered wins), and if the
    /// admission has not applied yet, it is refused when it does ([`CANCEL_MEMORY_MS`]): a
    /// call nobody was told was admitted never holds a slot.
    pub cancel: Option<u64>,
}

/// How long a withdrawn admission is remembered: far longer than an admission can take to
/// apply (the node gives up on it after seconds).
pub const CANCEL_MEMORY_MS: u64 = 10 * 60 * 1000;
/// Most withdrawn admissions remembered; the oldest are forgotten first.
pub const MAX_CANCELLED: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsageCommand {
    Admit(Vec<Admission>),
    End(Vec<CallEnd>),
}

impl UsageCommand {
    pub fn validate(&self) -> Result<(), FieldError> {
        let (count, tenants): (usize, Vec<&str>) = match self {
            UsageCommand::Admit(admissions) => (
                admissions.len(),
                admissions.iter().map(|a| a.tenant.as_str()).collect(),
            ),
            UsageCommand::End(ends) => {
                (ends.len(), ends.iter().map(|e| e.tenant.as_str()).collect())
            }
        };
        if count == 0 || count > MAX_PER_COMMAND {
            return Err(FieldError::new(
                "calls",
                format!("{count} in one command; 1 to {MAX_PER_COMMAND}"),
            ));
        }
        for tenant in tenants {
            validate_name("tenant", tenant)?;
        }
        if let UsageCommand::Admit(admissions) = self {
            for admission in admissions {
                if let Some(extension) = &admission.extension {
                    validate_name("extension", extension)?;
                }
            }
        }
        Ok(())
    }
}

/// What one admission came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admitted {
    /// Go ahead; end the call after `max_duration_ms` at the latest.
    Yes {
        max_duration_ms: u64,
    },
    No {
        limit: LimitKind,
        message: String,
    },
}

/// What one end came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ended {
    /// Released and booked: the minutes and the cost the call used.
    Booked { billed_ms: u64, cost_micros: u64 },
    /// Not admitted now: already ended or released, or never admitted. Nothing changed.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsageResponse {
    Admitted(Vec<Admitted>),
    Ended(Vec<Ended>),
}

/// A count in a fixed window of log time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub window: u64,
    pub count: u64,
}

impl Bucket {
    /// The count in the window holding `now_ms`, `size_ms` wide.
    fn current(&self, now_ms: u64, size_ms: u64) -> u64 {
        if self.window == now_ms / size_ms {
            self.count
        } else {
            0
        }
    }

    fn add(&mut self, now_ms: u64, size_ms: u64, amount: u64) {
        let window = now_ms / size_ms;
        if self.window != window {
            *self = Bucket { window, count: 0 };
        }
        self.count = self.count.saturating_add(amount);
    }

    /// Takes back what a call held, if the window is still the one it was added in.
    fn release(&mut self, window: u64, amount: u64) {
        if self.window == window {
            self.count = self.count.saturating_sub(amount);
        }
    }

    /// Adds to window `window` if it is this bucket's or a later one; a window already over is
    /// left alone.
    fn book(&mut self, window: u64, amount: u64) {
        if self.window == window {
            self.count = self.count.saturating_add(amount);
        } else if self.window < window {
            *self = Bucket {
                window,
                count: amount,
            };
        }
    }
}

/// One scope's usage now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub active: u64,
    pub second: Bucket,
    pub hour: Bucket,
    pub day: Bucket,
    /// Milliseconds talked today (booked), and held by live calls' grants (reserved).
    pub booked_ms: Bucket,
    pub reserved_ms: Bucket,
    pub booked_micros: Bucket,
    pub reserved_micros: Bucket,
}

/// One scope's usage as of a time: the counts of the windows holding it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageNow {
    pub active_calls: u64,
    pub calls_this_second: u64,
    pub calls_this_hour: u64,
    pub calls_today: u64,
    pub talk_ms_today: u64,
    pub held_ms_today: u64,
    pub spend_micros_today: u64,
    pub held_micros_today: u64,
}

impl Counters {
    /// The counts as of `now_ms` (a window that has passed counts 0).
    pub fn at(&self, now_ms: u64) -> UsageNow {
        UsageNow {
            active_calls: self.active,
            calls_this_second: self.second.current(now_ms, SECOND_MS),
            calls_this_hour: self.hour.current(now_ms, HOUR_MS),
            calls_today: self.day.current(now_ms, DAY_MS),
            talk_ms_today: self.booked_ms.current(now_ms, DAY_MS),
            held_ms_today: self.reserved_ms.current(now_ms, DAY_MS),
            spend_micros_today: self.booked_micros.current(now_ms, DAY_MS),
            held_micros_today: self.reserved_micros.current(now_ms, DAY_MS),
        }
    }

    fn check(&self, limits: &UsageLimits, now_ms: u64) -> Result<(), (LimitKind, String)> {
        let over =
            |limit: Option<u32>, used: u64| limit.is_some_and(|limit| used >= u64::from(limit));
        if over(limits.concurrent_calls, self.active) {
            return Err((
                LimitKind::ConcurrentCalls,
                format!("{} calls at once", self.active),
            ));
        }
        for (kind, limit, bucket, size, what) in [
            (
                LimitKind::CallsPerSecond,
                limits.calls_per_second,
                &self.second,
                SECOND_MS,
                "this second",
            ),
            (
                LimitKind::CallsPerHour,
                limits.calls_per_hour,
                &self.hour,
                HOUR_MS,
                "this hour",
            ),
            (
                LimitKind::CallsPerDay,
                limits.calls_per_day,
                &self.day,
                DAY_MS,
                "today (UTC)",
            ),
        ] {
            let used = bucket.current(now_ms, size);
            if over(limit, used) {
                return Err((kind, format!("{used} calls {what}")));
            }
        }
        Ok(())
    }

    /// The longest grant the day's minutes and spend leave for a call at this price, capped at
    /// `longest`; refused when under [`MIN_GRANT_MS`].
    fn grant(
        &self,
        limits: &UsageLimits,
        now_ms: u64,
        longest: u64,
        rate: u64,
        fee: u64,
    ) -> Result<u64, (LimitKind, String)> {
        let mut grant = longest;
        if let Some(minutes) = limits.minutes_per_day {
            let used =
                self.booked_ms.current(now_ms, DAY_MS) + self.reserved_ms.current(now_ms, DAY_MS);
            let left = (u64::from(minutes) * MINUTE_MS).saturating_sub(used);
            if left < MIN_GRANT_MS {
                return Err((
                    LimitKind::MinutesPerDay,
                    format!(
                        "{} of {minutes} minutes used or held today (UTC)",
                        used / MINUTE_MS
                    ),
                ));
            }
            grant = grant.min(left);
        }
        if let Some(spend) = limits.spend_per_day_micros {
            let used = self.booked_micros.current(now_ms, DAY_MS)
                + self.reserved_micros.current(now_ms, DAY_MS);
            let left = spend.saturating_sub(used).saturating_sub(fee);
            let affordable = if rate == 0 {
                if used.saturating_add(fee) > spend {
                    0
                } else {
                    u64::MAX
                }
            } else {
                // u128: a day of a dear rate overflows u64 micro-units per millisecond.
                u64::try_from(u128::from(left) * u128::from(MINUTE_MS) / u128::from(rate))
                    .unwrap_or(u64::MAX)
            };
            if affordable < MIN_GRANT_MS {
                return Err((
                    LimitKind::SpendPerDay,
                    format!("{used} of {spend} micro-units spent or held today (UTC)"),
                ));
            }
            grant = grant.min(affordable);
        }
        Ok(grant)
    }

    fn hold(&mut self, now_ms: u64, grant_ms: u64, reserved_micros: u64) {
        self.active += 1;
        self.second.add(now_ms, SECOND_MS, 1);
        self.hour.add(now_ms, HOUR_MS, 1);
        self.day.add(now_ms, DAY_MS, 1);
        self.reserved_ms.add(now_ms, DAY_MS, grant_ms);
        self.reserved_micros.add(now_ms, DAY_MS, reserved_micros);
    }

    fn settle(&mut self, call: &ActiveCall, billed_ms: u64, cost_micros: u64) {
        self.active = self.active.saturating_sub(1);
        let day = call.admitted_ms / DAY_MS;
        self.reserved_ms.release(day, call.grant_ms);
        self.reserved_micros.release(day, call.reserved_micros);
        // Booked to the day the call started; nothing if that day is over.
        self.booked_ms.book(day, billed_ms);
        self.booked_micros.book(day, cost_micros);
    }

    /// Nothing live and nothing counted today: the counters can go.
    fn idle(&self, now_ms: u64) -> bool {
        self.active == 0 && self.day.window < now_ms / DAY_MS
    }
}

/// A call admitted and not yet ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveCall {
    pub extension: Option<String>,
    pub admitted_ms: u64,
    pub grant_ms: u64,
    pub rate_micros_per_minute: u64,
    pub connect_fee_micros: u64,
    pub reserved_micros: u64,
    /// The last attempt told the call is admitted.
    pub attempt: u64,
}

impl ActiveCall {
    /// What `talk_ms` of talk costs: the connect fee and the rate per started second, for an
    /// answered call; never more than the grant.
    fn cost(&self, talk_ms: u64) -> (u64, u64) {
        if talk_ms == 0 {
            return (0, 0);
        }
        let billed_ms = talk_ms.min(self.grant_ms).div_ceil(SECOND_MS) * SECOND_MS;
        let billed_ms = billed_ms.min(self.grant_ms);
        (
            billed_ms,
            self.connect_fee_micros + price(self.rate_micros_per_minute, billed_ms),
        )
    }
}

/// `rate` per minute for `ms`, rounded up to a micro-unit.
pub(crate) fn price(rate: u64, ms: u64) -> u64 {
    u64::try_from((u128::from(rate) * u128::from(ms)).div_ceil(u128::from(MINUTE_MS)))
        .unwrap_or(u64::MAX)
}

/// One tenant's usage: its own counters, each extension's, and its live calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUsage {
    pub tenant: Counters,
    pub extensions: BTreeMap<String, Counters>,
    pub calls: BTreeMap<u64, ActiveCall>,
}

/// Every tenant's usage, in the replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBook {
    tenants: BTreeMap<String, Arc<TenantUsage>>,
    /// When each live call is released if its end never comes: (time, tenant, call).
    deadlines: BTreeSet<(u64, String, u64)>,
    /// The UTC day idle extension counters were last dropped.
    swept_day: u64,
    /// Withdrawn admissions that had not applied: (tenant, call, attempt) → when to forget.
    cancelled: BTreeMap<(String, u64, u64), u64>,
}

impl UsageBook {
    pub fn tenant(&self, tenant: &str) -> Option<&TenantUsage> {
        self.tenants.get(tenant).map(Arc::as_ref)
    }

    /// Admits or refuses each call in turn, at log time `now_ms`. `limits_of` gives a tenant's
    /// limits (`None`: the tenant is gone, the call is refused).
    pub fn admit<'a>(
        &mut self,
        now_ms: u64,
        admissions: &[Admission],
        limits_of: impl Fn(&str) -> Option<std::borrow::Cow<'a, LimitsConfig>>,
    ) -> Vec<Admitted> {
        admissions
            .iter()
            .map(|admission| match limits_of(&admission.tenant) {
                Some(limits) => self.admit_one(now_ms, admission, &limits),
                None => Admitted::No {
                    limit: LimitKind::ActiveCalls,
                    message: format!("tenant {:?} does not exist", admission.tenant),
                },
            })
            .collect()
    }

    fn admit_one(&mut self, now_ms: u64, admission: &Admission, limits: &LimitsConfig) -> Admitted {
        if self.swept_day == 0 {
            self.swept_day = now_ms / DAY_MS;
        }
        if self.cancelled.contains_key(&(
            admission.tenant.clone(),
            admission.call,
            admission.attempt,
        )) {
            return Admitted::No {
                limit: LimitKind::ActiveCalls,
                message: "the admission of this call was withdrawn: it timed out on the node \
                          that asked; start the call again with a new Call-ID"
                    .to_owned(),
            };
        }
        let usage = self.tenants.entry(admission.tenant.clone()).or_default();
        if let Some(call) = usage.calls.get(&admission.call) {
            let grant = call.grant_ms;
            if call.attempt != admission.attempt {
                // This attempt is the one its proxy hears of now: a withdrawal of an earlier
                // one must not release the call.
                if let Some(call) = Arc::make_mut(usage).calls.get_mut(&admission.call) {
                    call.attempt = admission.attempt;
                }
            }
            return Admitted::Yes {
                max_duration_ms: grant,
            };
        }
        if usage.calls.len() >= MAX_ACTIVE_CALLS_PER_TENANT {
            return Admitted::No {
                limit: LimitKind::ActiveCalls,
                message: format!(
                    "{MAX_ACTIVE_CALLS_PER_TENANT} calls are admitted for this tenant and not ended"
                ),
            };
        }
        let empty = Counters::default();
        let extension = admission
            .extension
            .as_deref()
            .filter(|_| !limits.per_extension.is_empty());
        let extension_counters = extension.map(|name| usage.extensions.get(name).unwrap_or(&empty));
        let longest = limits.max_duration.for_class(admission.class);
        let (rate, fee) = (
            admission.rate_micros_per_minute,
            admission.connect_fee_micros,
        );
        let mut scopes = vec![(&usage.tenant, &limits.tenant, "the tenant")];
        if let Some(counters) = extension_counters {
            scopes.push((counters, &limits.per_extension, "the extension"));
        }
        let mut grant = longest;
        for (counters, scope_limits, who) in scopes {
            let checked = counters
                .check(scope_limits, now_ms)
                .and_then(|()| counters.grant(scope_limits, now_ms, longest, rate, fee));
            match checked {
                Ok(scope_grant) => grant = grant.min(scope_grant),
                Err((limit, used)) => {
                    return Admitted::No {
                        limit,
                        message: format!("{who}'s {limit} limit is reached: {used}"),
                    }
                }
            }
        }
        let reserved_micros = fee + price(rate, grant);
        let usage = Arc::make_mut(usage);
        usage.tenant.hold(now_ms, grant, reserved_micros);
        if let Some(name) = extension {
            usage.extensions.entry(name.to_owned()).or_default().hold(
                now_ms,
                grant,
                reserved_micros,
            );
        }
        usage.calls.insert(
            admission.call,
            ActiveCall {
                extension: extension.map(str::to_owned),
                admitted_ms: now_ms,
                grant_ms: grant,
                rate_micros_per_minute: rate,
                connect_fee_micros: fee,
                reserved_micros,
                attempt: admission.attempt,
            },
        );
        self.deadlines.insert((
            now_ms.saturating_add(grant).saturating_add(END_GRACE_MS),
            admission.tenant.clone(),
            admission.call,
        ));
        Admitted::Yes {
            max_duration_ms: grant,
        }
    }

    /// Releases and books each call; unknown ones change nothing, except that a withdrawn
    /// admission not applied yet is remembered, to be refused when it applies.
    pub fn end(&mut self, now_ms: u64, ends: &[CallEnd]) -> Vec<Ended> {
        ends.iter()
            .map(|end| {
                let Some(attempt) = end.cancel else {
                    return self.end_one(&end.tenant, end.call, end.talk_ms);
                };
                let held_by = self
                    .tenants
                    .get(&end.tenant)
                    .and_then(|usage| usage.calls.get(&end.call))
                    .map(|call| call.attempt);
                match held_by {
                    // Admitted by this attempt, and nobody heard of it: release it.
                    Some(held) if held == attempt => self.end_one(&end.tenant, end.call, 0),
                    // A later attempt was answered: the call stays.
                    Some(_) => Ended::Unknown,
                    None => {
                        self.remember_cancel(now_ms, &end.tenant, end.call, attempt);
                        Ended::Unknown
                    }
                }
            })
            .collect()
    }

    fn remember_cancel(&mut self, now_ms: u64, tenant: &str, call: u64, attempt: u64) {
        if self.cancelled.len() >= MAX_CANCELLED {
            let oldest = self
                .cancelled
                .iter()
                .min_by_key(|(_, forget_at)| **forget_at)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.cancelled.remove(&oldest);
            }
        }
        self.cancelled.insert(
            (tenant.to_owned(), call, attempt),
            now_ms.saturating_add(CANCEL_MEMORY_MS),
        );
    }

    fn end_one(&mut self, tenant: &str, call: u64, talk_ms: u64) -> Ended {
        let Some(usage) = self.tenants.get_mut(tenant) else {
            return Ended::Unknown;
        };
        let Some(active) = usage.calls.get(&call).cloned() else {
            return Ended::Unknown;
        };
        let usage = Arc::make_mut(usage);
        usage.calls.remove(&call);
        let (billed_ms, cost_micros) = active.cost(talk_ms);
        usage.tenant.settle(&active, billed_ms, cost_micros);
        if let Some(extension) = &active.extension {
            if let Some(counters) = usage.extensions.get_mut(extension) {
                counters.settle(&active, billed_ms, cost_micros);
            }
        }
        self.deadlines.remove(&(
            active
                .admitted_ms
                .saturating_add(active.grant_ms)
                .saturating_add(END_GRACE_MS),
            tenant.to_owned(),
            call,
        ));
        Ended::Booked {
            billed_ms,
            cost_micros,
        }
    }

    /// Whether some call's end is overdue at `now_ms`, a new day has idle counters to drop,
    /// or withdrawn admissions wait to be forgotten.
    pub fn expiry_due(&self, now_ms: u64) -> bool {
        self.deadlines
            .first()
            .is_some_and(|(deadline, ..)| *deadline <= now_ms)
            || (now_ms / DAY_MS > self.swept_day && !self.tenants.is_empty())
            || self
                .cancelled
                .values()
                .any(|forget_at| *forget_at <= now_ms)
    }

    /// Releases every call whose end is overdue, booked as if it talked its whole grant, and
    /// once a day drops the counters of extensions with nothing live and nothing counted today
    /// (they would otherwise pile up, one per extension ever seen). Returns how many calls were
    /// released.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        self.cancelled.retain(|_, forget_at| *forget_at > now_ms);
        let today = now_ms / DAY_MS;
        if today > self.swept_day {
            self.swept_day = today;
            for usage in self.tenants.values_mut() {
                if usage
                    .extensions
                    .values()
                    .any(|counters| counters.idle(now_ms))
                {
                    Arc::make_mut(usage)
                        .extensions
                        .retain(|_, counters| !counters.idle(now_ms));
                }
            }
        }
        let mut released = 0;
        while let Some((deadline, tenant, call)) = self.deadlines.first().cloned() {
            if deadline > now_ms {
                break;
            }
            let grant = self
                .tenants
                .get(&tenant)
                .and_then(|usage| usage.calls.get(&call))
                .map_or(0, |call| call.grant_ms);
            self.end_one(&tenant, call, grant);
            // end_one removed the deadline; a stale one (no such call) goes here.
            self.deadlines.remove(&(deadline, tenant, call));
            released += 1;
        }
        released
    }

    /// Forgets a deleted tenant's usage.
    pub fn remove_tenant(&mut self, tenant: &str) {
        if self.tenants.remove(tenant).is_some() {
            self.deadlines.retain(|(_, name, _)| name != tenant);
        }
    }
}

#[cfg(test)]
mod tests;
