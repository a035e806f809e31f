//! The routing view: everything a route lookup reads, derived from the applied state off the
//! request path and swapped in atomically.
//!
//! A builder task follows the state machine. When a batch changes the rate decks it rebuilds
//! the prefix index on a blocking thread (a million-row deck takes a second or so) while
//! lookups keep using the previous view; configuration-only changes republish at once with
//! the existing index. A lookup takes the current `Arc<RoutingView>` without any lock.
//! Health transitions are configuration-only changes: a gateway that went down is skipped by
//! the first lookup after the view of its entry is published.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use trunkline_core::routing::{
    Carrier, Gateway, GatewayHealth, HighRiskList, PrefixIndex, PrefixIndexBuilder,
};
use trunkline_store::{AppliedState, StateReader};

use crate::{error::ClusterError, route_token::TokenKey};

/// The settings key holding the operator's high-risk prefixes, comma separated.
pub use trunkline_core::settings::HIGH_RISK_PREFIXES_KEY;

pub struct RoutingView {
    /// The applied state this view was built from.
    pub applied: Arc<AppliedState>,
    pub applied_index: u64,
    pub index: Arc<PrefixIndex>,
    /// The decks version `index` was built from.
    pub decks_version: u64,
    /// Sorted by name, as selection wants them.
    pub carriers: Vec<Carrier>,
    /// Sorted by carrier, then name.
    pub gateways: Vec<Gateway>,
    pub health: BTreeMap<String, GatewayHealth>,
    pub high_risk: HighRiskList,
    /// The cluster's route token key, keyed once for every lookup of this view; `None`
    /// before the cluster set one.
    pub token_key: Option<TokenKey>,
}

impl RoutingView {
    fn build(applied: Arc<AppliedState>, index: Arc<PrefixIndex>, decks_version: u64) -> Self {
        let routing = applied.state.routing();
        let carriers: Vec<Carrier> = routing.carriers().cloned().collect();
        let mut gateways: Vec<Gateway> = routing.gateways().cloned().collect();
        gateways.sort_by(|a, b| (&a.carrier, &a.name).cmp(&(&b.carrier, &b.name)));
        let high_risk = applied
            .state
            .settings()
            .get(HIGH_RISK_PREFIXES_KEY)
            .map(|setting| {
                setting
                    .value
                    .split(',')
                    .map(str::trim)
                    .filter(|prefix| !prefix.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        // The setting is validated when written, so this only fails on a log from a build
        // that did not validate it; an empty list is then the safe reading.
        let high_risk = HighRiskList::new(high_risk).unwrap_or_else(|error| {
            tracing::warn!(%error, "ignoring an invalid high-risk prefix list");
            HighRiskList::default()
        });
        let token_key = routing
            .route_token_key()
            .and_then(|key| TokenKey::new(key).ok());
        RoutingView {
            token_key,
            applied_index: applied.last_applied.map_or(0, |log_id| log_id.index),
            health: routing.health(applied.state.health()),
            carriers,
            gateways,
            high_risk,
            index,
            decks_version,
            applied,
        }
    }
}

fn build_index(applied: &AppliedState) -> Result<PrefixIndex, String> {
    let routing = applied.state.routing();
    let rows: usize = routing.decks().map(|(_, deck)| deck.len()).sum();
    let mut builder = PrefixIndexBuilder::with_capacity(rows);
    for (carrier, deck) in routing.decks() {
        builder
            .add_deck(carrier, deck)
            .map_err(|error| error.to_string())?;
    }
    builder.finish().map_err(|error| error.to_string())
}

/// The current view, and a way to wait for one that includes a log index.
pub struct RoutingViews {
    current: ArcSwap<RoutingView>,
    published: watch::Sender<u64>,
}

impl RoutingViews {
    /// Builds the first view synchronously (start-up) and starts the builder task.
    pub async fn start(mut reader: StateReader) -> Arc<RoutingViews> {
        let applied = reader.current();
        let decks_version = applied.state.routing().decks_version();
        let index = tokio::task::spawn_blocking({
            let applied = applied.clone();
            move || build_index(&applied)
        })
        .await
        .ok()
        .and_then(|built| {
            built
                .map_err(|error| tracing::error!(%error, "can't build the prefix index"))
                .ok()
        })
        .unwrap_or_default();
        let view = RoutingView::build(applied, Arc::new(index), decks_version);
        let (published, _) = watch::channel(view.applied_index);
        let views = Arc::new(RoutingViews {
            current: ArcSwap::from_pointee(view),
            published,
        });
        let builder = views.clone();
        tokio::spawn(async move {
            while let Ok(applied) = reader.changed().await {
                builder.rebuild(applied).await;
            }
        });
        views
    }

    pub fn current(&self) -> Arc<RoutingView> {
        self.current.load_full()
    }

    async fn rebuild(&self, applied: Arc<AppliedState>) {
        let previous = self.current();
        let decks_version = applied.state.routing().decks_version();
        let index = if decks_version == previous.decks_version {
            previous.index.clone()
        } else {
            let source = applied.clone();
            match tokio::task::spawn_blocking(move || build_index(&source)).await {
                Ok(Ok(index)) => Arc::new(index),
                Ok(Err(error)) => {
                    tracing::error!(%error, "can't build the prefix index; keeping the previous one");
                    previous.index.clone()
                }
                Err(error) => {
                    tracing::error!(%error, "the prefix index build failed; keeping the previous one");
                    previous.index.clone()
                }
            }
        };
        let view = RoutingView::build(applied, index, decks_version);
        let applied_index = view.applied_index;
        self.current.store(Arc::new(view));
        self.published.send_replace(applied_index);
    }

    /// The current view once it includes `index`, waiting at most `timeout`.
    pub async fn at_least(
        &self,
        index: u64,
        timeout: Duration,
    ) -> Result<Arc<RoutingView>, ClusterError> {
        let mut published = self.published.subscribe();
        let reached = tokio::time::timeout(timeout, async {
            published
                .wait_for(|applied| *applied >= index)
                .await
                .is_ok()
        })
        .await;
        match reached {
            Ok(true) => Ok(self.current()),
            _ => Err(ClusterError::DeadlineExceeded(format!(
                "routing state did not reach applied index {index} within {timeout:?} (it is at {})",
                self.current().applied_index
            ))),
        }
    }
}
