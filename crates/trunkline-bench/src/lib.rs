//! Workloads for Trunkline's routing benchmarks: rate decks of millions of rows, the routing
//! configuration around them, dialled numbers, and one route decision as the node makes it.
//!
//! The benchmarks (`benches/route_decision.rs`, `benches/prefix_lookup.rs`,
//! `benches/index_build.rs`) and the measuring binaries (`index_memory`, `route_latency`) all
//! draw their inputs from here, so they measure the same decks and numbers. Everything is
//! deterministic: a [`DeckSpec`] (row count, carriers, seed) and a seed for the numbers fix
//! every row and every number.
//!
//! - [`Deck`] generates the carriers' rate decks (see the `deck` module for their shape) and
//!   streams them into a [`PrefixIndex`];
//! - [`Deck::dialled_numbers`] draws numbers from the same distribution as the decks;
//! - [`RoutingSetup`] is the configuration selection weighs: carriers, gateways, health,
//!   load, the high-risk list;
//! - [`Router::decide`] is one full decision: normalise, classify, look up, select.
//!
//! How to run them, and what DESIGN.md's numbers ask of them: see the crate's `README.md`.

mod config;
mod deck;
pub mod dev_node;
mod dialled;
pub mod load;
pub mod loadgen;

use rand::Rng;
use trunkline_core::routing::{
    classify, normalize, select_route, DestinationClass, Media, NumberError, PrefixIndex,
    RouteInput, Tenant, MAX_INDEX_ROWS,
};

pub use config::{RoutingSetup, TENANT_NAME};
pub use deck::{
    Deck, DeckSpec, COUNTRIES, DEFAULT_CARRIERS, DEFAULT_SEED, INTERNATIONAL_UNIVERSE_PREFIXES,
    NOW_MS,
};
pub use dialled::{dial_plan, HOME_AREA_CODE};

/// Bytes of every file under a folder (the store's measure, which `/metrics` shows too).
pub use trunkline_store::folder_bytes;

/// Seed of the routing configuration, distinct from the decks'.
pub const SETUP_SEED: u64 = 0x6761_7465_7761_7973;
/// Seed of the dialled numbers.
pub const NUMBERS_SEED: u64 = 0x6e75_6d62_6572_7321;
/// Deck sizes the benchmarks and binaries measure by default: DESIGN.md's 5 million and a
/// smaller deck to compare with.
pub const DEFAULT_ROWS: [usize; 2] = [1_000_000, 5_000_000];
/// Numbers a benchmark cycles through: enough that they do not sit in cache together with
/// the index lines they touch, few enough to generate in milliseconds.
pub const BENCH_NUMBERS: usize = 1 << 16;

/// What one decision came to, so a benchmark can keep the work from being optimised away and
/// a test can look at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSummary {
    pub class: DestinationClass,
    /// Carriers with an effective prefix for the number.
    pub carriers_matched: usize,
    /// Legs offered, every usable gateway of every eligible carrier.
    pub legs: usize,
}

/// One tenant's route decisions against a loaded index: the core's part of a
/// `RouteOutbound` answer. The node also copies each leg into its reply (names, URI, dial
/// string), which is not measured here.
#[derive(Clone, Copy, Debug)]
pub struct Router<'a> {
    index: &'a PrefixIndex,
    setup: &'a RoutingSetup,
    tenant: &'a Tenant,
    now_ms: u64,
}

impl<'a> Router<'a> {
    /// Routes for `tenant` with `setup`'s configuration and `index`, at [`NOW_MS`].
    pub fn new(index: &'a PrefixIndex, setup: &'a RoutingSetup, tenant: &'a Tenant) -> Self {
        Router {
            index,
            setup,
            tenant,
            now_ms: NOW_MS,
        }
    }

    /// One full decision for `dialled`: normalise with the tenant's dial plan, classify, look
    /// the number up in the index, and select and order the legs (voice, first attempt, no
    /// explanation), with gateway health and call counts checked. The legs' dial strings are
    /// computed lazily by `Leg::dial_string`, so they are not part of it.
    pub fn decide<R: Rng + ?Sized>(
        &self,
        dialled: &str,
        rng: &mut R,
    ) -> Result<RouteSummary, NumberError> {
        let normalized = normalize(dialled, &self.tenant.dial_plan)?;
        let class = classify(&normalized, &self.tenant.dial_plan, &self.setup.high_risk);
        let rates = match normalized.routing_digits() {
            Some(digits) => self.index.lookup(digits, self.now_ms),
            None => Vec::new(),
        };
        let input = RouteInput {
            tenant: self.tenant,
            destination: &normalized,
            carriers: &self.setup.carriers,
            gateways: &self.setup.gateways,
            health: &self.setup.health,
            concurrent_calls: Some(&self.setup.concurrent_calls),
            rates: &rates,
            media: Media::Voice,
            excluded_carriers: &self.setup.excluded,
            explain: false,
        };
        let decision = select_route(&input, rng);
        Ok(RouteSummary {
            class,
            carriers_matched: rates.len(),
            legs: decision.legs.len(),
        })
    }
}

/// "1M", "5M", "250k": a row count as benchmark names show it.
pub fn rows_label(rows: usize) -> String {
    if rows >= 1_000_000 && rows % 1_000_000 == 0 {
        format!("{}M", rows / 1_000_000)
    } else if rows >= 1_000 && rows % 1_000 == 0 {
        format!("{}k", rows / 1_000)
    } else {
        rows.to_string()
    }
}

/// Reads row counts given on a command line ("1M", "250k", "300000"); none gives
/// [`DEFAULT_ROWS`]. Each must be from 1 to the index's limit of rows.
pub fn parse_rows(arguments: impl IntoIterator<Item = String>) -> Result<Vec<usize>, String> {
    let mut rows = Vec::new();
    for argument in arguments {
        let (digits, scale) = if let Some(millions) = argument.strip_suffix(['M', 'm']) {
            (millions, 1_000_000)
        } else if let Some(thousands) = argument.strip_suffix(['k', 'K']) {
            (thousands, 1_000)
        } else {
            (argument.as_str(), 1)
        };
        let count = digits
            .parse::<usize>()
            .ok()
            .and_then(|count| count.checked_mul(scale))
            .filter(|count| (1..=MAX_INDEX_ROWS).contains(count))
            .ok_or_else(|| {
                format!(
                    "{argument:?} is not a row count from 1 to {MAX_INDEX_ROWS} \
                     (digits, optionally followed by k or M)"
                )
            })?;
        rows.push(count);
    }
    if rows.is_empty() {
        rows.extend(DEFAULT_ROWS);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;
