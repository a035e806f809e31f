//! The replicated health of every gateway, and the cluster's health policy.
//!
//! Only transitions reach the log, never probe results: a [`HealthCommand::Transition`] says
//! which node saw a gateway go up or down, from which state, and why. Applying one is a
//! compare-and-set on the gateway's state (`from` must be the state the log holds), so two
//! nodes racing to report the same change write it once and a stale report changes nothing.
//!
//! Each gateway keeps the log times of its recent transitions, so whichever node probes it
//! next (after a takeover) continues the same flapping budget instead of starting afresh.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Serialize};

use super::{
    rendezvous_weight, BreakerPolicy, Liveness, NodeId, ProbePolicy, TransitionLimiterPolicy,
    MAX_TRANSITIONS_PER_WINDOW,
};
use crate::{routing::validate_name, Error, FieldError};

/// Longest reason text kept with a transition.
pub const MAX_REASON_BYTES: usize = 256;

/// The cluster-wide health settings. Gateways may override the probe part.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPolicy {
    pub probe: ProbePolicy,
    pub breaker: BreakerPolicy,
    pub limiter: TransitionLimiterPolicy,
}

impl HealthPolicy {
    /// Fields are named as the wire names them: the limiter's are `flapping.*`.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.probe
            .validate()
            .map_err(|error| error.within("probe"))?;
        self.breaker
            .validate()
            .map_err(|error| error.within("breaker"))?;
        self.limiter
            .validate()
            .map_err(|error| error.within("flapping"))
    }
}

/// What saw the change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionSource {
    /// Active OPTIONS probes crossed a threshold.
    #[default]
    Probe,
    /// The passive circuit breaker opened on leg reports, or probes closed it.
    Breaker,
    /// The transition limiter held the gateway down because it flaps.
    Flapping,
}

impl TransitionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionSource::Probe => "probe",
            TransitionSource::Breaker => "breaker",
            TransitionSource::Flapping => "flapping",
        }
    }
}

/// A gateway's replicated health, as `trunkctl health` lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayState {
    pub state: Liveness,
    /// Log time of the transition into `state`.
    pub since_ms: u64,
    pub reason: String,
    pub source: TransitionSource,
    /// The node that saw the transition (the prober, or the node whose breaker opened).
    pub observer_node: NodeId,
    /// Round-trip time of the probe that completed the transition, if it was a reply.
    pub round_trip_ms: Option<u64>,
    /// Log index of the last transition; 0 for a gateway that never had one.
    pub changed_index: u64,
    /// Log times of the most recent transitions, oldest first, at most
    /// [`MAX_TRANSITIONS_PER_WINDOW`].
    pub recent_ms: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthCommand {
    SetPolicy(HealthPolicy),
    Transition {
        gateway: String,
        observer_node: NodeId,
        /// The state the observer believes the log holds; the transition applies only then.
        from: Liveness,
        to: Liveness,
        reason: String,
        source: TransitionSource,
        round_trip_ms: Option<u64>,
    },
}

impl HealthCommand {
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            HealthCommand::SetPolicy(policy) => policy.validate().map_err(Error::from),
            HealthCommand::Transition {
                gateway,
                from,
                to,
                reason,
                source,
                ..
            } => {
                validate_name("gateway", gateway)?;
                if reason.len() > MAX_REASON_BYTES {
                    return Err(Error::invalid(
                        "reason",
                        format!("must be at most {MAX_REASON_BYTES} bytes"),
                    ));
                }
                // Only the flapping hold may restate a state (to update the reason).
                if from == to && !(*source == TransitionSource::Flapping && *to == Liveness::Down) {
                    return Err(Error::invalid("to", "must differ from `from`"));
                }
                Ok(())
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthResponse {
    PolicySet,
    Changed,
}

/// A transition as applied: what the event stream carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedTransition {
    pub gateway: String,
    pub from: Liveness,
    pub to: Liveness,
    pub reason: String,
    pub source: TransitionSource,
    pub observer_node: NodeId,
    pub round_trip_ms: Option<u64>,
}

/// Shards of the health table. Readers hold the previous state, so applying a transition
/// copies what it changes: one shard, about 1/64 of the gateways, not the whole table.
const SHARDS: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthTable {
    policy: HealthPolicy,
    /// Gateways that had a transition, by shard ([`shard_of`]); absent ones are up. Empty
    /// until the first transition.
    shards: Vec<Arc<BTreeMap<String, GatewayState>>>,
}

fn shard_of(gateway: &str) -> usize {
    // The remainder is below SHARDS, so it fits a usize.
    (rendezvous_weight(gateway, 0) % SHARDS as u64) as usize
}

impl HealthTable {
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// The gateway's replicated health; up since forever when it never had a transition.
    pub fn gateway(&self, name: &str) -> Option<&GatewayState> {
        self.shards.get(shard_of(name))?.get(name)
    }

    pub fn liveness(&self, name: &str) -> Liveness {
        self.gateway(name)
            .map_or(Liveness::Up, |gateway| gateway.state)
    }

    /// Every gateway that had a transition, in no particular order.
    pub fn gateways(&self) -> impl Iterator<Item = (&String, &GatewayState)> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    /// Names of the gateways that are down, in no particular order.
    pub fn down(&self) -> impl Iterator<Item = &String> {
        self.gateways()
            .filter(|(_, gateway)| gateway.state == Liveness::Down)
            .map(|(name, _)| name)
    }

    /// Forgets a deleted gateway.
    pub fn remove(&mut self, gateway: &str) {
        if let Some(shard) = self.shards.get_mut(shard_of(gateway)) {
            if shard.contains_key(gateway) {
                Arc::make_mut(shard).remove(gateway);
            }
        }
    }

    fn entry(&mut self, gateway: &str) -> &mut GatewayState {
        if self.shards.len() != SHARDS {
            // First transition (or a table from a build with another shard count).
            let mut shards: Vec<BTreeMap<String, GatewayState>> =
                (0..SHARDS).map(|_| BTreeMap::new()).collect();
            for (name, state) in self.gateways() {
                if let Some(shard) = shards.get_mut(shard_of(name)) {
                    shard.insert(name.clone(), state.clone());
                }
            }
            self.shards = shards.into_iter().map(Arc::new).collect();
        }
        let index = shard_of(gateway);
        // The table now has SHARDS shards and `shard_of` is below SHARDS; the fallback only
        // keeps this panic-free.
        if index >= self.shards.len() {
            self.shards.resize_with(index + 1, Arc::default);
        }
        let shard = Arc::make_mut(&mut self.shards[index]);
        shard.entry(gateway.to_owned()).or_default()
    }

    /// Applies a validated command. `gateway_exists` says whether the routing configuration
    /// has the gateway a transition names.
    pub fn apply(
        &mut self,
        log_index: u64,
        time_ms: u64,
        command: &HealthCommand,
        gateway_exists: bool,
    ) -> Result<(HealthResponse, Option<AppliedTransition>), Error> {
        match command {
            HealthCommand::SetPolicy(policy) => {
                self.policy = policy.clone();
                Ok((HealthResponse::PolicySet, None))
            }
            HealthCommand::Transition {
                gateway,
                observer_node,
                from,
                to,
                reason,
                source,
                round_trip_ms,
            } => {
                if !gateway_exists {
                    return Err(Error::not_found("gateway", gateway.clone()));
                }
                let current = self.liveness(gateway);
                if current != *from {
                    return Err(Error::FailedPrecondition(format!(
                        "gateway {gateway:?} is {} in the log, not {}; the transition is stale",
                        current.as_str(),
                        from.as_str()
                    )));
                }
                let entry = self.entry(gateway);
                if entry.state != *to || entry.changed_index == 0 {
                    entry.since_ms = time_ms;
                }
                entry.state = *to;
                entry.reason = reason.clone();
                entry.source = *source;
                entry.observer_node = *observer_node;
                entry.round_trip_ms = *round_trip_ms;
                entry.changed_index = log_index;
                entry.recent_ms.push(time_ms);
                let keep = MAX_TRANSITIONS_PER_WINDOW as usize;
                if entry.recent_ms.len() > keep {
                    let excess = entry.recent_ms.len() - keep;
                    entry.recent_ms.drain(..excess);
                }
                Ok((
                    HealthResponse::Changed,
                    Some(AppliedTransition {
                        gateway: gateway.clone(),
                        from: *from,
                        to: *to,
                        reason: reason.clone(),
                        source: *source,
                        observer_node: *observer_node,
                        round_trip_ms: *round_trip_ms,
                    }),
                ))
            }
        }
    }
}
