//! The routing configuration around the decks: carriers, their gateways, gateway health and
//! load, the operator's high-risk list and the benchmark tenant.
//!
//! Selection's cost grows with the carriers and gateways it weighs, so the configuration is
//! as busy as a real one: every carrier of the deck has 2 to 4 gateways in two priority tiers
//! with different weights and call limits, some carriers need `+` or a tech prefix, one
//! carrier is disabled, a few gateways are down, drained, disabled or at capacity, and the
//! lists come sorted by name as a configuration snapshot keeps them.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trunkline_core::{
    routing::{
        Capability, Carrier, Gateway, GatewayHealth, HighRiskList, SipUri, Strategy, Tenant,
        Translation,
    },
    FieldError,
};

use crate::deck::Deck;
use crate::dialled::dial_plan;

/// Name of the benchmark tenant.
pub const TENANT_NAME: &str = "bench";
/// Every how many carriers one is disabled.
const DISABLED_CARRIER_EVERY: usize = 17;
/// Every how many gateways one is down, one drained and one disabled.
const DOWN_GATEWAY_EVERY: usize = 11;
const DRAINED_GATEWAY_EVERY: usize = 13;
const DISABLED_GATEWAY_EVERY: usize = 19;
/// Calls in progress on a gateway are drawn up to its limit plus this many, so some gateways
/// are at capacity.
const CALLS_OVER_LIMIT: u32 = 20;
/// Prefixes the operator treats as high risk: countries and ranges known for toll fraud.
const HIGH_RISK_PREFIXES: [&str; 16] = [
    "232", "252", "882", "883", "979", "881", "2327", "2521", "53", "8823", "1876", "1809", "1284",
    "1473", "1649", "1268",
];

/// Everything selection reads besides the tenant and the index's answer.
#[derive(Clone, Debug)]
pub struct RoutingSetup {
    /// Sorted by name.
    pub carriers: Vec<Carrier>,
    /// Sorted by carrier, then name.
    pub gateways: Vec<Gateway>,
    pub health: BTreeMap<String, GatewayHealth>,
    pub concurrent_calls: BTreeMap<String, u32>,
    pub high_risk: HighRiskList,
    /// Carriers already tried in the call: none, as for a first attempt.
    pub excluded: BTreeSet<String>,
}

impl RoutingSetup {
    /// The configuration for `deck`'s carriers, drawn from `seed`.
    pub fn new(deck: &Deck, seed: u64) -> Result<RoutingSetup, FieldError> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut carriers = Vec::new();
        let mut gateways = Vec::new();
        let mut health = BTreeMap::new();
        let mut concurrent_calls = BTreeMap::new();
        for (position, name) in deck.carrier_names().enumerate() {
            let mut capabilities = BTreeSet::new();
            if rng.random_bool(0.5) {
                capabilities.insert(Capability::T38);
            }
            let tls = rng.random_bool(0.4);
            if tls {
                capabilities.insert(Capability::Tls);
                if rng.random_bool(0.6) {
                    capabilities.insert(Capability::Srtp);
                }
            }
            let translation = match position % 3 {
                0 => Translation {
                    plus: true,
                    ..Translation::default()
                },
                1 => Translation {
                    tech_prefix: format!("{}#", 1_000 + position * 37),
                    ..Translation::default()
                },
                _ => Translation::default(),
            };
            let carrier = Carrier {
                name: name.to_owned(),
                capabilities,
                translation,
                final_codes: if position % 2 == 0 {
                    BTreeSet::from([503])
                } else {
                    BTreeSet::new()
                },
                enabled: position % DISABLED_CARRIER_EVERY != DISABLED_CARRIER_EVERY - 1,
            };
            carrier.validate()?;
            carriers.push(carrier);

            for number in 1..=rng.random_range(2..=4) {
                let gateway_name = format!("{name}-gw{number}");
                let uri = if tls && rng.random_bool(0.5) {
                    format!("sips:gw{number}.{name}.example.net:5061")
                } else {
                    format!("sip:gw{number}.{name}.example.net;transport=tcp")
                };
                let limit = rng.random_range(200..=1_000);
                let gateway = Gateway {
                    name: gateway_name.clone(),
                    carrier: name.to_owned(),
                    uri: SipUri::parse(&uri)?,
                    priority: if number <= 2 { 10 } else { 20 },
                    weight: rng.random_range(1..=10) * 10,
                    max_concurrent_calls: Some(limit),
                    enabled: gateways.len() % DISABLED_GATEWAY_EVERY != DISABLED_GATEWAY_EVERY - 1,
                    probe: Default::default(),
                };
                gateway.validate()?;
                let counted = gateways.len() + 1;
                if counted % DOWN_GATEWAY_EVERY == 0 {
                    health.insert(gateway_name.clone(), GatewayHealth::Down);
                } else if counted % DRAINED_GATEWAY_EVERY == 0 {
                    health.insert(gateway_name.clone(), GatewayHealth::Drained);
                }
                concurrent_calls
                    .insert(gateway_name, rng.random_range(0..=limit + CALLS_OVER_LIMIT));
                gateways.push(gateway);
            }
        }
        carriers.sort_by(|a, b| a.name.cmp(&b.name));
        gateways.sort_by(|a, b| (&a.carrier, &a.name).cmp(&(&b.carrier, &b.name)));
        Ok(RoutingSetup {
            carriers,
            gateways,
            health,
            concurrent_calls,
            high_risk: HighRiskList::new(
                HIGH_RISK_PREFIXES.iter().map(|prefix| (*prefix).to_owned()),
            )?,
            excluded: BTreeSet::new(),
        })
    }

    /// The benchmark tenant with `strategy`: NANP dial plan, every carrier allowed, no
    /// required capability.
    pub fn tenant(&self, strategy: Strategy) -> Tenant {
        Tenant {
            name: TENANT_NAME.to_owned(),
            dial_plan: dial_plan(),
            strategy,
            allowed_carriers: Vec::new(),
            required_capabilities: BTreeSet::new(),
            policy: Default::default(),
            limits: Default::default(),
        }
    }

    /// A tenant-sized case: the benchmark tenant allowed only the first `count` enabled
    /// carriers, as a customer account usually is, so an answer has a handful of legs.
    pub fn tenant_with_carriers(&self, strategy: Strategy, count: usize) -> Tenant {
        Tenant {
            allowed_carriers: self
                .carriers
                .iter()
                .filter(|carrier| carrier.enabled)
                .take(count)
                .map(|carrier| carrier.name.clone())
                .collect(),
            ..self.tenant(strategy)
        }
    }
}
