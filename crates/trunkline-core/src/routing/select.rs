//! Route selection: which carrier gateways a call tries, in which order, with which dial
//! string.
//!
//! [`select_route`] is a pure function of its input and a random number generator, so every
//! node gives the same answer for the same input and seed, and the rules can be
//! property-tested. The steps:
//!
//! 1. Each carrier is checked in turn and dropped, with the first reason that applies, when
//!    it was already tried in this call (`excluded_carriers`), is disabled, cannot carry fax
//!    (fax needs T.38), is not among the tenant's allowed carriers, lacks a capability the
//!    tenant requires, has no prefix for the number, or stripping its translation leaves no
//!    digits.
//! 2. Each gateway of a remaining carrier is dropped when disabled, down, drained, at its
//!    call limit (when current call counts are given), or not TLS for a tenant that requires
//!    TLS. A gateway missing from the health map is up. A carrier left without gateways is
//!    dropped. A gateway held down only by its circuit breaker is dropped too, except:
//!    - half-open trials ([`RouteInput::select_with_trials`]): once its breaker has been open
//!      for the policy's `trial_after_ms`, a sample of calls (one in `trial_one_in`, drawn from
//!      the call's hash and the gateway's name, see `health::is_breaker_trial`) keeps it as
//!      if it were up, at the rank its priority and weight give it, and the explanation names
//!      it a breaker trial. Not last: a trial placed after the healthy legs would rarely be
//!      reached (the call is usually answered first), so the breaker would rarely learn that
//!      the gateway is back. The price is bounded: only sampled calls, and a failed trial
//!      costs that call one leg, as any failed leg does;
//!    - degraded answers: when no gateway at all is usable and some are held only by their
//!      breakers, the selection runs again with those offered (`RouteDecision::degraded`).
//! 3. The carriers are ordered by the tenant's strategy:
//!    - `LeastCost`: rate, then connect fee, then carrier priority, then name;
//!    - `Priority`: position in the tenant's `allowed_carriers` (when the list is empty,
//!      every carrier ties), then carrier priority, then name;
//!    - `Weighted`: carrier priority, then a draw by carrier weight among equal priorities.
//!
//!    A carrier's priority is its best gateway's priority; its weight is the sum of the
//!    weights of its gateways at that priority, so a carrier with more capacity at its
//!    preferred tier gets a larger share. Carrier weights come from gateways because weight
//!    is already how operators size gateways, and a separate carrier weight would be a
//!    second knob to keep in step.
//! 4. A carrier's gateways are ordered by priority, then drawn by weight among equal
//!    priorities. Weight 0 means standby: after every weighted peer, in name order.
//! 5. One leg per gateway, carriers in order and each carrier's gateways in order.
//!
//! Emergency calls go to carriers with the `emergency` capability only, with the number as
//! the caller dialled it (`911`, `933`, `112`): emergency services are reached by the short
//! code, not by an E.164 form, so the carrier's translation is not applied. A carrier's deck
//! prices the call when it lists the routing digits (country code and code, `1911`); without
//! such a row the call is routed at no charge. Emergency calls are never lost to a tenant's
//! routing restrictions: a carrier that is not allowed for the tenant or lacks a required
//! capability, and a non-TLS gateway for a tenant that requires TLS, are kept for an emergency
//! call but ordered after every carrier and gateway that meets the restrictions (reaching
//! emergency services matters more than the carrier preference or transport rule). Excluded,
//! disabled, down, drained and full ones, fax without T.38 and carriers without the
//! `emergency` capability are still dropped.
//!
//! Ties are broken by name, and candidates are considered in name order whatever order the
//! configuration lists them in, so the result depends only on the configuration and the
//! random draws.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::model::{Capability, Carrier, Gateway, GatewayHealth, Strategy, Tenant, Transport};
use super::numbers::Normalized;
use super::prefix::RateMatch;
use crate::health::BreakerTrials;

/// What the call carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    #[default]
    Voice,
    /// Fax; only carriers with T.38 can carry it.
    Fax,
}

/// Everything one routing decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct RouteInput<'a> {
    pub tenant: &'a Tenant,
    /// The dialled number after normalisation. An extension gets no legs.
    pub destination: &'a Normalized,
    /// Every configured carrier; the tenant's restrictions are applied here.
    pub carriers: &'a [Carrier],
    /// Every configured gateway; each belongs to the carrier it names.
    pub gateways: &'a [Gateway],
    /// Gateway name to health; a gateway not in the map is up.
    pub health: &'a BTreeMap<String, GatewayHealth>,
    /// Gateway name to calls in progress, when known; without it call limits are not checked.
    pub concurrent_calls: Option<&'a BTreeMap<String, u32>>,
    /// The prefix index's answer for the destination's routing digits.
    pub rates: &'a [RateMatch<'a>],
    pub media: Media,
    /// Carriers already tried in this call; never offered again.
    pub excluded_carriers: &'a BTreeSet<String>,
    /// Whether to fill [`RouteDecision::explanation`]; it costs allocations, so only when asked.
    pub explain: bool,
}

/// One attempt: a gateway of a carrier and what to send it.
///
/// It borrows from the configuration and the lookup instead of copying names and URIs: a
/// decision with dozens of legs is made on every call, and the API layer copies what it sends
/// once, when it builds the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leg<'a> {
    pub carrier: &'a Carrier,
    pub gateway: &'a Gateway,
    /// The deck prefix, rate and connect fee that price the call on this carrier (an empty
    /// prefix and no charge for an emergency call the deck does not list).
    pub rate: RateMatch<'a>,
    /// The destination's routing digits, which the carrier's translation applies to.
    digits: &'a str,
    /// For an emergency call, the code as dialled, sent untranslated.
    emergency_code: Option<&'a str>,
}

impl Leg<'_> {
    /// The number as this carrier wants it: its translation applied to the destination, or
    /// the emergency code as dialled.
    pub fn dial_string(&self) -> String {
        if let Some(code) = self.emergency_code {
            return code.to_owned();
        }
        // Selection only keeps carriers whose translation leaves digits, so this is never the
        // empty fallback.
        self.carrier
            .translation
            .apply(self.digits)
            .unwrap_or_default()
    }
}

/// Why a carrier or gateway was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// Already tried in this call.
    Excluded,
    CarrierDisabled,
    NotAllowedForTenant,
    MissingCapability(Capability),
    NoMatchingPrefix,
    /// The carrier's translation strips every digit of the number.
    NumberTooShortForTranslation,
    /// Every gateway of the carrier was dropped.
    NoUsableGateway,
    GatewayDisabled,
    GatewayDown,
    /// Held down only by its circuit breaker (offered when nothing else is).
    GatewayBreakerOpen,
    GatewayDrained,
    GatewayAtCapacity,
    /// The tenant requires TLS and the gateway's transport is not TLS.
    GatewayNotTls,
}

impl fmt::Display for DropReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Excluded => formatter.write_str("already tried in this call"),
            DropReason::CarrierDisabled => formatter.write_str("carrier disabled"),
            DropReason::NotAllowedForTenant => formatter.write_str("not allowed for the tenant"),
            DropReason::MissingCapability(capability) => {
                write!(formatter, "lacks capability {capability}")
            }
            DropReason::NoMatchingPrefix => formatter.write_str("no matching prefix"),
            DropReason::NumberTooShortForTranslation => {
                formatter.write_str("translation strips every digit")
            }
            DropReason::NoUsableGateway => formatter.write_str("no usable gateway"),
            DropReason::GatewayDisabled => formatter.write_str("gateway disabled"),
            DropReason::GatewayDown => formatter.write_str("gateway down"),
            DropReason::GatewayBreakerOpen => {
                formatter.write_str("gateway held down by its circuit breaker")
            }
            DropReason::GatewayDrained => formatter.write_str("gateway drained"),
            DropReason::GatewayAtCapacity => formatter.write_str("gateway at capacity"),
            DropReason::GatewayNotTls => formatter.write_str("gateway transport is not TLS"),
        }
    }
}

/// What happened to one candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Used. For a carrier, `rank` is its position among carriers; for a gateway, the
    /// position of its leg; both count from 1.
    Kept {
        rank: usize,
    },
    /// Used only because the call is an emergency call; `waived` is the restriction that
    /// would otherwise have dropped it.
    KeptForEmergency {
        rank: usize,
        waived: DropReason,
    },
    Dropped(DropReason),
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Kept { rank } => write!(formatter, "kept: rank {rank}"),
            Verdict::KeptForEmergency { rank, waived } => {
                write!(
                    formatter,
                    "kept for emergency: rank {rank} ({waived} waived)"
                )
            }
            Verdict::Dropped(reason) => write!(formatter, "dropped: {reason}"),
        }
    }
}

/// One line of an explanation: a carrier (`gateway` is `None`) or one of its gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub carrier: &'a str,
    pub gateway: Option<&'a str>,
    pub verdict: Verdict,
    /// A gateway held down by its circuit breaker, kept because this call is sampled as a
    /// half-open trial; operators reading an explanation need to know why a down gateway
    /// got a leg.
    pub breaker_trial: bool,
}

/// The legs to try, in order, and on request why each candidate was kept or dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteDecision<'a> {
    pub legs: Vec<Leg<'a>>,
    /// No gateway was usable, so gateways held down only by their breakers are offered.
    pub degraded: bool,
    /// Every carrier, and every gateway of a carrier that got as far as its gateways, in
    /// name order with each carrier's gateways after it. Empty unless `explain` was set.
    pub explanation: Vec<Candidate<'a>>,
}

/// Chooses the legs for one call. See the module documentation for the rules.
///
/// The work is linear in the number of carriers and gateways when `carriers` is sorted by
/// name and `gateways` by carrier and then name, as a configuration snapshot kept in sorted
/// maps naturally is; other orders give the same answer after a sort per call.
///
/// No breaker-held gateway is tried as a half-open trial here; a lookup for a real call uses
/// [`RouteInput::select_with_trials`].
pub fn select_route<'a, R: Rng + ?Sized>(input: &RouteInput<'a>, rng: &mut R) -> RouteDecision<'a> {
    select_pass(input, None, rng)
}

impl<'a> RouteInput<'a> {
    /// [`select_route`] with half-open breakers: a gateway held down only by its breaker is
    /// kept, at its usual rank, when `trials` samples this call for it (see the module
    /// documentation). The sampling depends only on the replicated health table, the call's
    /// hash and `trials.now_ms`, so every node answers a call the same way.
    pub fn select_with_trials<R: Rng + ?Sized>(
        &self,
        trials: &BreakerTrials<'_>,
        rng: &mut R,
    ) -> RouteDecision<'a> {
        select_pass(self, Some(trials), rng)
    }
}

fn select_pass<'a, R: Rng + ?Sized>(
    input: &RouteInput<'a>,
    trials: Option<&BreakerTrials<'_>>,
    rng: &mut R,
) -> RouteDecision<'a> {
    let (decision, breaker_held) = select(input, trials, rng, false);
    if decision.legs.is_empty() && breaker_held {
        // A breaker opens on leg reports, which a proxy's trouble can skew: it may skip a
        // gateway, never refuse every call on its own.
        let (mut degraded, _) = select(input, trials, rng, true);
        degraded.degraded = !degraded.legs.is_empty();
        return degraded;
    }
    decision
}

/// One pass of [`select_route`]; with `waive_breakers`, gateways held down only by their
/// breakers are usable, and otherwise those `trials` samples for this call are. Also says
/// whether one was skipped for its breaker alone.
fn select<'a, R: Rng + ?Sized>(
    input: &RouteInput<'a>,
    trials: Option<&BreakerTrials<'_>>,
    rng: &mut R,
    waive_breakers: bool,
) -> (RouteDecision<'a>, bool) {
    let mut breaker_held = false;
    let mut explanation = Explanation {
        enabled: input.explain,
        candidates: Vec::new(),
    };
    let Some(digits) = input.destination.routing_digits() else {
        return (RouteDecision::default(), false);
    };
    let emergency_code = match input.destination {
        Normalized::Emergency { code, .. } => Some(code.as_str()),
        _ => None,
    };
    let emergency = emergency_code.is_some();
    let requires_tls = input
        .tenant
        .required_capabilities
        .contains(&Capability::Tls);

    // Everything is joined by carrier name, walking lists sorted by it side by side.
    let carriers = sorted_by(input.carriers.iter().collect(), |carrier| {
        carrier.name.as_str()
    });
    let gateways = sorted_by(input.gateways.iter().collect(), |gateway| {
        (gateway.carrier.as_str(), gateway.name.as_str())
    });
    let rates = sorted_by(input.rates.iter().collect(), |rate| rate.carrier);
    let allowed = sorted_by(
        input
            .tenant
            .allowed_carriers
            .iter()
            .enumerate()
            .map(|(position, name)| (name.as_str(), position))
            .collect(),
        |(name, _)| *name,
    );
    let mut gateway_cursor = SortedCursor::new(&gateways);
    let mut rate_cursor = SortedCursor::new(&rates);
    let mut allowed_cursor = SortedCursor::new(&allowed);

    let mut eligible: Vec<Eligible<'a>> = Vec::new();
    let mut usable: Vec<UsableGateway<'a>> = Vec::new();
    for carrier in carriers {
        let name = carrier.name.as_str();
        let carrier_slot = explanation.record(name, None, Verdict::Kept { rank: 0 });
        let preference = allowed_cursor
            .take_equal(name, |(allowed, _)| allowed)
            .first()
            .map(|(_, position)| *position);
        let rate = rate_cursor
            .take_equal(name, |rate| rate.carrier)
            .first()
            .copied();
        let carrier_gateways = gateway_cursor.take_equal(name, |gateway| gateway.carrier.as_str());
        let allowed_for_tenant = input.tenant.allowed_carriers.is_empty() || preference.is_some();
        let assessed =
            assess_carrier(carrier, input, allowed_for_tenant, emergency).and_then(|waived| {
                if emergency {
                    let free = RateMatch {
                        carrier: name,
                        prefix: "",
                        rate_micros_per_minute: 0,
                        connect_fee_micros: 0,
                    };
                    return Ok((waived, rate.copied().unwrap_or(free)));
                }
                let rate = rate.ok_or(DropReason::NoMatchingPrefix)?;
                if usize::from(carrier.translation.strip_digits) >= digits.len() {
                    return Err(DropReason::NumberTooShortForTranslation);
                }
                Ok((waived, *rate))
            });
        let (waived, rate) = match assessed {
            Ok(assessed) => assessed,
            Err(reason) => {
                explanation.set(carrier_slot, Verdict::Dropped(reason));
                continue;
            }
        };

        let first = usable.len();
        for gateway in carrier_gateways {
            let health = input.health.get(&gateway.name).copied().unwrap_or_default();
            let trial = !waive_breakers
                && health == GatewayHealth::BreakerOpen
                && trials.is_some_and(|trials| trials.admits(&gateway.name));
            match assess_gateway(
                gateway,
                health,
                input,
                requires_tls,
                emergency,
                waive_breakers || trial,
            ) {
                Ok(gateway_waived) => {
                    let slot =
                        explanation.record(name, Some(&gateway.name), Verdict::Kept { rank: 0 });
                    if trial {
                        explanation.mark_breaker_trial(slot);
                    }
                    usable.push(UsableGateway {
                        gateway,
                        waived: gateway_waived,
                        explanation_slot: slot,
                    });
                }
                Err(reason) => {
                    breaker_held |= reason == DropReason::GatewayBreakerOpen;
                    explanation.record(name, Some(&gateway.name), Verdict::Dropped(reason));
                }
            }
        }
        let Some(own) = usable.get_mut(first..) else {
            continue;
        };
        if own.is_empty() {
            explanation.set(carrier_slot, Verdict::Dropped(DropReason::NoUsableGateway));
            continue;
        }
        // Gateways meeting the tenant's restrictions first, then by priority, then drawn by
        // weight among equals (drawn from name order, so the draws do not depend on how the
        // configuration was listed).
        own.sort_by(|a, b| {
            (a.waived.is_some(), a.gateway.priority, &a.gateway.name).cmp(&(
                b.waived.is_some(),
                b.gateway.priority,
                &b.gateway.name,
            ))
        });
        for group in own.chunk_by_mut(|a, b| a.tier() == b.tier()) {
            weighted_shuffle(group, |usable| u64::from(usable.gateway.weight), rng);
        }
        let best_tier = own.first().map_or((true, u32::MAX), UsableGateway::tier);
        let weight = own
            .iter()
            .take_while(|usable| usable.tier() == best_tier)
            .map(|usable| u64::from(usable.gateway.weight))
            .sum();
        let waived = waived.or(if best_tier.0 {
            Some(DropReason::GatewayNotTls)
        } else {
            None
        });
        eligible.push(Eligible {
            carrier,
            rate,
            waived,
            gateways: first..usable.len(),
            best_priority: best_tier.1,
            weight,
            preference: preference.unwrap_or(usize::MAX),
            explanation_slot: carrier_slot,
        });
    }

    order_carriers(&mut eligible, input.tenant.strategy, rng);

    let mut legs = Vec::with_capacity(usable.len());
    for (carrier_rank, carrier) in eligible.iter().enumerate() {
        explanation.set(
            carrier.explanation_slot,
            verdict(carrier_rank + 1, carrier.waived),
        );
        for usable in usable.get(carrier.gateways.clone()).unwrap_or_default() {
            legs.push(Leg {
                carrier: carrier.carrier,
                gateway: usable.gateway,
                rate: carrier.rate,
                digits,
                emergency_code,
            });
            explanation.set(usable.explanation_slot, verdict(legs.len(), usable.waived));
        }
    }
    let decision = RouteDecision {
        legs,
        degraded: false,
        explanation: explanation.candidates,
    };
    (decision, breaker_held)
}

/// A carrier that survived the checks, with what ordering needs.
struct Eligible<'a> {
    carrier: &'a Carrier,
    rate: RateMatch<'a>,
    /// The restriction waived because the call is an emergency call, if any.
    waived: Option<DropReason>,
    /// Its usable gateways, in order, as a range of the shared list.
    gateways: Range<usize>,
    /// Priority of the first gateway.
    best_priority: u32,
    /// Sum of the weights of the gateways sharing the first gateway's priority.
    weight: u64,
    /// Position in the tenant's `allowed_carriers`; `usize::MAX` when not listed.
    preference: usize,
    explanation_slot: Option<usize>,
}

struct UsableGateway<'a> {
    gateway: &'a Gateway,
    waived: Option<DropReason>,
    explanation_slot: Option<usize>,
}

impl UsableGateway<'_> {
    /// Gateways of one tier share a weighted draw: same waiver status, same priority.
    fn tier(&self) -> (bool, u32) {
        (self.waived.is_some(), self.gateway.priority)
    }
}

/// `items` sorted by `key`; a list that is already sorted, as configuration snapshots usually
/// are, costs one pass.
fn sorted_by<T, K: Ord>(mut items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    if !items.is_sorted_by(|a, b| key(a) <= key(b)) {
        items.sort_by_key(|item| key(item));
    }
    items
}

/// Walks a list sorted by carrier name alongside carriers taken in name order.
struct SortedCursor<'s, T> {
    items: &'s [T],
    position: usize,
}

impl<'s, T> SortedCursor<'s, T> {
    fn new(items: &'s [T]) -> Self {
        SortedCursor { items, position: 0 }
    }

    /// The items whose name is `name`, skipping those before it.
    fn take_equal<'k>(&mut self, name: &str, item_name: impl Fn(&T) -> &'k str) -> &'s [T]
    where
        's: 'k,
    {
        while self
            .items
            .get(self.position)
            .is_some_and(|item| item_name(item) < name)
        {
            self.position += 1;
        }
        let start = self.position;
        while self
            .items
            .get(self.position)
            .is_some_and(|item| item_name(item) == name)
        {
            self.position += 1;
        }
        self.items.get(start..self.position).unwrap_or_default()
    }
}

/// Returns the restriction waived for an emergency call, or why the carrier is dropped.
fn assess_carrier(
    carrier: &Carrier,
    input: &RouteInput<'_>,
    allowed_for_tenant: bool,
    emergency: bool,
) -> Result<Option<DropReason>, DropReason> {
    if input.excluded_carriers.contains(&carrier.name) {
        return Err(DropReason::Excluded);
    }
    if !carrier.enabled {
        return Err(DropReason::CarrierDisabled);
    }
    if input.media == Media::Fax && !carrier.capabilities.contains(&Capability::T38) {
        return Err(DropReason::MissingCapability(Capability::T38));
    }
    if emergency && !carrier.capabilities.contains(&Capability::Emergency) {
        return Err(DropReason::MissingCapability(Capability::Emergency));
    }
    let restriction = if !allowed_for_tenant {
        Some(DropReason::NotAllowedForTenant)
    } else {
        input
            .tenant
            .required_capabilities
            .iter()
            .find(|capability| !carrier.capabilities.contains(capability))
            .map(|capability| DropReason::MissingCapability(*capability))
    };
    match restriction {
        Some(reason) if !emergency => Err(reason),
        waived => Ok(waived),
    }
}

/// Returns the restriction waived for an emergency call, or why the gateway is dropped.
fn assess_gateway(
    gateway: &Gateway,
    health: GatewayHealth,
    input: &RouteInput<'_>,
    requires_tls: bool,
    emergency: bool,
    waive_breakers: bool,
) -> Result<Option<DropReason>, DropReason> {
    if !gateway.enabled {
        return Err(DropReason::GatewayDisabled);
    }
    match health {
        GatewayHealth::Up => {}
        GatewayHealth::BreakerOpen if waive_breakers => {}
        GatewayHealth::BreakerOpen => return Err(DropReason::GatewayBreakerOpen),
        GatewayHealth::Down => return Err(DropReason::GatewayDown),
        GatewayHealth::Drained => return Err(DropReason::GatewayDrained),
    }
    if let (Some(limit), Some(calls)) = (
        gateway.max_concurrent_calls,
        input
            .concurrent_calls
            .and_then(|calls| calls.get(&gateway.name)),
    ) {
        if *calls >= limit {
            return Err(DropReason::GatewayAtCapacity);
        }
    }
    if requires_tls && gateway.uri.transport() != Transport::Tls {
        if emergency {
            return Ok(Some(DropReason::GatewayNotTls));
        }
        return Err(DropReason::GatewayNotTls);
    }
    Ok(None)
}

/// Puts eligible carriers in the strategy's order; carriers kept only for an emergency call
/// come last whatever the strategy.
fn order_carriers<R: Rng + ?Sized>(eligible: &mut [Eligible<'_>], strategy: Strategy, rng: &mut R) {
    match strategy {
        Strategy::LeastCost => eligible.sort_by(|a, b| {
            (
                a.waived.is_some(),
                a.rate.rate_micros_per_minute,
                a.rate.connect_fee_micros,
                a.best_priority,
                &a.carrier.name,
            )
                .cmp(&(
                    b.waived.is_some(),
                    b.rate.rate_micros_per_minute,
                    b.rate.connect_fee_micros,
                    b.best_priority,
                    &b.carrier.name,
                ))
        }),
        Strategy::Priority => eligible.sort_by(|a, b| {
            (
                a.waived.is_some(),
                a.preference,
                a.best_priority,
                &a.carrier.name,
            )
                .cmp(&(
                    b.waived.is_some(),
                    b.preference,
                    b.best_priority,
                    &b.carrier.name,
                ))
        }),
        Strategy::Weighted => {
            eligible.sort_by(|a, b| {
                (a.waived.is_some(), a.best_priority, &a.carrier.name).cmp(&(
                    b.waived.is_some(),
                    b.best_priority,
                    &b.carrier.name,
                ))
            });
            for group in eligible.chunk_by_mut(|a, b| {
                (a.waived.is_some(), a.best_priority) == (b.waived.is_some(), b.best_priority)
            }) {
                weighted_shuffle(group, |carrier| carrier.weight, rng);
            }
        }
    }
}

/// Orders `items` by repeated weighted draws without replacement: each position goes to one of
/// the items not yet placed, with probability proportional to its weight. Items of weight 0
/// are never drawn; they follow the drawn ones in their original order.
fn weighted_shuffle<T, R: Rng + ?Sized>(items: &mut [T], weight: impl Fn(&T) -> u64, rng: &mut R) {
    // Stable, so weight-0 items keep their order at the end.
    items.sort_by_key(|item| weight(item) == 0);
    let weighted = items.iter().take_while(|item| weight(item) > 0).count();
    for start in 0..weighted {
        let Some(remaining) = items.get_mut(start..weighted) else {
            return;
        };
        // Weights are u32 values widened to u64, and there are far fewer than 2^32 items, so
        // the sum cannot overflow.
        let total: u64 = remaining.iter().map(&weight).sum();
        if total == 0 {
            return;
        }
        let mut draw = rng.random_range(0..total);
        let chosen = remaining
            .iter()
            .position(|item| {
                let item_weight = weight(item);
                if draw < item_weight {
                    true
                } else {
                    draw -= item_weight;
                    false
                }
            })
            .unwrap_or(0);
        remaining.swap(0, chosen);
    }
}

fn verdict(rank: usize, waived: Option<DropReason>) -> Verdict {
    match waived {
        Some(waived) => Verdict::KeptForEmergency { rank, waived },
        None => Verdict::Kept { rank },
    }
}

/// The explanation being built; a no-op unless asked for.
struct Explanation<'a> {
    enabled: bool,
    candidates: Vec<Candidate<'a>>,
}

impl<'a> Explanation<'a> {
    /// Adds a candidate and returns its position, to set its final verdict later.
    fn record(
        &mut self,
        carrier: &'a str,
        gateway: Option<&'a str>,
        verdict: Verdict,
    ) -> Option<usize> {
        if !self.enabled {
            return None;
        }
        self.candidates.push(Candidate {
            carrier,
            gateway,
            verdict,
            breaker_trial: false,
        });
        Some(self.candidates.len() - 1)
    }

    fn mark_breaker_trial(&mut self, slot: Option<usize>) {
        if let Some(candidate) = slot.and_then(|slot| self.candidates.get_mut(slot)) {
            candidate.breaker_trial = true;
        }
    }

    fn set(&mut self, slot: Option<usize>, verdict: Verdict) {
        if let Some(candidate) = slot.and_then(|slot| self.candidates.get_mut(slot)) {
            candidate.verdict = verdict;
        }
    }
}

#[cfg(test)]
#[path = "tests/select_trials.rs"]
mod trial_tests;
