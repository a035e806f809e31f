//! The server streams that outlive their request: `WatchEvents` and `ExportRates` (and the
//! slots that count `RouteStream`s, which `route_stream.rs` runs).
//!
//! Each stream runs as a task feeding a small channel, and a reader may stop reading at any
//! time for as long as it likes. So two rules keep a stalled reader cheap:
//!
//! - **Nothing big is held across an await.** Before every send the task loads the published
//!   state, copies out a bounded batch (at most [`limits::EVENT_BATCH_EVENTS`] events, or
//!   [`limits::EXPORT_CHUNK_ROWS`] rows) as wire messages, and drops the state. A task parked
//!   in `send().await` holds only that batch, never an `Arc<AppliedState>` (which would pin a
//!   whole old copy of the state, decks and all, once the state moves on).
//! - **Streams are counted.** Each open stream holds a permit of its kind ([`StreamSlots`]);
//!   past the limit a new stream is refused with RESOURCE_EXHAUSTED naming the limit. The
//!   permit moves into the task and is dropped when the task ends: when the stream is done,
//!   the client goes away (the channel closes), or the node stops.
//!
//! An export is of the deck as it was when the export started, and never a mix of two decks:
//! the task keeps only a [`Weak`] reference to that deck (which pins no rows) and, before each
//! chunk, checks that the carrier's current deck is still the same allocation. If the deck was
//! replaced (or the carrier deleted) the stream ends with ABORTED "the deck changed during
//! export; run it again". Holding the deck's `Arc` instead would be consistent too, but a
//! stalled export would then pin one whole old deck (up to 10 million rows) per stream.

use std::{
    future::Future,
    sync::{Arc, Weak},
};

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tonic::Status;
use trunkline_api::v1 as proto;
use trunkline_core::routing::Deck;
use trunkline_store::{AppliedState, StateReader};

use crate::{convert, limits};

/// Where a stream task loads the published state from. [`StateReader`] in the node; a fake in
/// tests, so they can check what the task keeps alive.
pub trait StateSource: Send + 'static {
    /// The latest published state. Callers drop it before they next await.
    fn current(&self) -> Arc<AppliedState>;
    /// Waits for a publication after the last one waited for; false when none will come.
    fn changed(&mut self) -> impl Future<Output = bool> + Send;
}

impl StateSource for StateReader {
    fn current(&self) -> Arc<AppliedState> {
        StateReader::current(self)
    }

    async fn changed(&mut self) -> bool {
        StateReader::changed(self).await.is_ok()
    }
}

/// The kinds of counted stream, for the message a refused client gets.
#[derive(Clone, Copy, Debug)]
pub enum StreamKind {
    Watch,
    Export,
    Audit,
    Records,
    Route,
}

impl StreamKind {
    fn rpc(self) -> &'static str {
        match self {
            StreamKind::Watch => "WatchEvents",
            StreamKind::Export => "ExportRates",
            StreamKind::Audit => "ListAudit",
            StreamKind::Records => "ListCdrs",
            StreamKind::Route => "RouteStream",
        }
    }

    /// The config key that sets this kind's limit.
    fn option(self) -> &'static str {
        match self {
            StreamKind::Watch => "streams.max_watch_streams",
            StreamKind::Route => "streams.max_route_streams",
            // Audit listings are as rare as exports and share their limit's value.
            StreamKind::Export | StreamKind::Audit | StreamKind::Records => {
                "streams.max_export_streams"
            }
        }
    }
}

/// At most `limit` open streams of one kind on this node.
#[derive(Clone, Debug)]
pub struct StreamSlots {
    kind: StreamKind,
    limit: usize,
    permits: Arc<Semaphore>,
}

impl StreamSlots {
    pub fn new(kind: StreamKind, limit: usize) -> StreamSlots {
        StreamSlots {
            kind,
            limit,
            permits: Arc::new(Semaphore::new(limit)),
        }
    }

    /// A slot for one stream, or RESOURCE_EXHAUSTED naming the limit. Never waits.
    pub fn acquire(&self) -> Result<OwnedSemaphorePermit, Status> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                Err(Status::resource_exhausted(format!(
                    "{} {} streams are open on this node, the limit ({}): close one, or raise \
                     the limit with {}",
                    self.limit,
                    self.kind.rpc(),
                    self.kind.option(),
                    self.kind.option(),
                )))
            }
        }
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

/// What a watcher asked for, already validated.
#[derive(Clone, Copy, Debug)]
pub struct WatchRequest {
    /// Start after this event index; 0: start from `recent`.
    pub after_index: u64,
    /// When `after_index` is 0, how many events from before the watcher connected to send.
    pub recent: u32,
    /// Keep the stream open for events still to come.
    pub follow: bool,
}

/// Starts a watcher's task; the stream is the returned receiver. `channel_events` bounds what
/// is buffered ahead of a slow reader.
/// `token`: the id of the token the stream was opened with, if any: a following stream ends
/// (UNAUTHENTICATED) at the first change after that token is revoked or expires.
pub fn watch_events<S: StateSource>(
    mut source: S,
    request: WatchRequest,
    token: Option<String>,
    mut stopping: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
    channel_events: usize,
) -> mpsc::Receiver<Result<proto::Event, Status>> {
    let (sender, receiver) = mpsc::channel(channel_events.max(1));
    tokio::spawn(async move {
        // Dropped when the task ends, whichever way: that frees the slot.
        let _permit = permit;
        let mut after = start_after(&source.current(), request);
        loop {
            if let Some(token) = &token {
                let now_ms = crate::cluster::now_ms();
                if !source.current().state.tokens().is_live(token, now_ms) {
                    let _ = sender.send(Err(crate::auth::unauthenticated())).await;
                    return;
                }
            }
            // The state is loaded and dropped inside `event_batch`: only copies are awaited on.
            let (batch, more) = event_batch(&source.current(), after);
            for (index, message) in batch {
                after = index;
                if sender.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            if more {
                continue;
            }
            if !request.follow {
                return;
            }
            tokio::select! {
                changed = source.changed() => if !changed { return },
                _ = stopping.wait_for(|stopping| *stopping) => return,
                _ = sender.closed() => return,
            }
        }
    });
    receiver
}

/// Where a watcher starts: after the given index, or before the latest `recent` events.
fn start_after(applied: &AppliedState, request: WatchRequest) -> u64 {
    if request.after_index > 0 {
        return request.after_index;
    }
    let events = applied.state.events();
    events
        .recent(request.recent as usize)
        .next()
        .map_or(events.last_index(), |first| first.index.saturating_sub(1))
}

/// At most [`limits::EVENT_BATCH_EVENTS`] events after `after`, as wire messages with their
/// indexes, and whether more are waiting.
fn event_batch(applied: &AppliedState, after: u64) -> (Vec<(u64, proto::Event)>, bool) {
    let routing = applied.state.routing();
    let carrier_of = |gateway: &str| {
        routing
            .gateway(gateway)
            .map(|gateway| gateway.carrier.clone())
            .unwrap_or_default()
    };
    let (mut backlog, missed) = applied.state.events().after(after);
    let mut batch = Vec::new();
    for event in backlog.by_ref().take(limits::EVENT_BATCH_EVENTS) {
        // Only the first event after `after` can follow a gap.
        let missed_before = batch.is_empty() && missed;
        batch.push((
            event.index,
            convert::event_to_proto(event, carrier_of, missed_before),
        ));
    }
    let more = backlog.next().is_some();
    (batch, more)
}

/// Streams the audit entries `keep` keeps, oldest first, a page at a time: each page is
/// copied out of the published state, which is dropped before the entries are sent.
pub fn list_audit<S: StateSource>(
    source: S,
    keep: impl Fn(&trunkline_core::audit::AuditEntry) -> bool + Send + 'static,
    permit: OwnedSemaphorePermit,
) -> mpsc::Receiver<Result<proto::AuditEntry, Status>> {
    let (sender, receiver) = mpsc::channel(limits::AUDIT_CHANNEL_ENTRIES);
    tokio::spawn(async move {
        let _permit = permit;
        let mut after = 0;
        loop {
            let page =
                source
                    .current()
                    .state
                    .audit()
                    .page_after(after, limits::AUDIT_PAGE_ENTRIES, &keep);
            let Some(last) = page.last() else { return };
            after = last.seq;
            for entry in page {
                if sender
                    .send(Ok(convert::audit_to_proto(entry)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    receiver
}

/// Starts an export of `deck` (the carrier's deck when the export was asked for); the stream
/// is the returned receiver. See the module docs for what a reader sees when the deck changes.
pub fn export_rates<S: StateSource>(
    source: S,
    carrier: String,
    deck: Option<&Arc<Deck>>,
    permit: OwnedSemaphorePermit,
    channel_chunks: usize,
) -> mpsc::Receiver<Result<proto::ExportRatesChunk, Status>> {
    let (sender, receiver) = mpsc::channel(channel_chunks.max(1));
    // The task never holds the rows, only a way to tell whether the deck is still current.
    let (deck, rows) = match deck {
        Some(deck) => (Arc::downgrade(deck), deck.len()),
        None => (Weak::new(), 0),
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut offset = 0;
        while offset < rows {
            let chunk = export_chunk(&source.current(), &carrier, &deck, offset);
            let Some(chunk) = chunk else {
                let _ = sender
                    .send(Err(Status::aborted(format!(
                        "the deck of carrier {carrier:?} changed during export; run it again"
                    ))))
                    .await;
                return;
            };
            offset += chunk.rates.len();
            if chunk.rates.is_empty() || sender.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    receiver
}

/// Rows `offset..offset + EXPORT_CHUNK_ROWS` of the carrier's deck, copied out; `None` when
/// the carrier's deck is no longer the one the export started with.
fn export_chunk(
    applied: &AppliedState,
    carrier: &str,
    started_with: &Weak<Deck>,
    offset: usize,
) -> Option<proto::ExportRatesChunk> {
    let current = applied.state.routing().deck(carrier)?;
    // The Weak keeps the allocation's address from being reused, so equal pointers mean the
    // same deck.
    if !std::ptr::eq(started_with.as_ptr(), Arc::as_ptr(current)) {
        return None;
    }
    let end = offset.saturating_add(limits::EXPORT_CHUNK_ROWS);
    Some(proto::ExportRatesChunk {
        rates: current
            .rows_in(offset..end)
            .map(|row| convert::rate_to_proto(row.to_rate()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use trunkline_core::{
        health::{HealthCommand, Liveness, TransitionSource},
        routing::{Carrier, Gateway, PutMode, Rate, RoutingCommand, SipUri, Translation},
        Command, Request, State,
    };

    use super::*;

    /// A published state the test replaces at will, like the state machine does.
    struct FakeSource {
        states: watch::Receiver<Arc<AppliedState>>,
    }

    impl StateSource for FakeSource {
        fn current(&self) -> Arc<AppliedState> {
            Arc::clone(&self.states.borrow())
        }

        async fn changed(&mut self) -> bool {
            self.states.changed().await.is_ok()
        }
    }

    fn apply(state: &mut State, index: u64, command: Command) {
        let request = Request {
            idempotency: None,
            time_ms: 1_000 + index,
            actor: None,
            command,
        };
        let response = state.apply(index, &request);
        assert!(
            !matches!(response, trunkline_core::Response::Rejected(_)),
            "{response:?}"
        );
    }

    /// A state with a carrier, a gateway, a deck of `rows` rows and `events` health events.
    fn state(rows: usize, events: u64) -> State {
        let mut state = State::default();
        let mut index = 1;
        apply(
            &mut state,
            index,
            Command::Routing(RoutingCommand::PutCarrier {
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
                mode: PutMode::Upsert,
            }),
        );
        index += 1;
        apply(
            &mut state,
            index,
            Command::Routing(RoutingCommand::PutGateway {
                gateway: Gateway {
                    name: "gw1".into(),
                    carrier: "alpha".into(),
                    uri: SipUri::parse("sip:gw1.example").unwrap(),
                    priority: 1,
                    weight: 1,
                    max_concurrent_calls: None,
                    enabled: true,
                    probe: Default::default(),
                },
                mode: PutMode::Upsert,
            }),
        );
        let mut up = true;
        for _ in 0..events {
            index += 1;
            let (from, to) = if up {
                (Liveness::Up, Liveness::Down)
            } else {
                (Liveness::Down, Liveness::Up)
            };
            up = !up;
            apply(
                &mut state,
                index,
                Command::Health(HealthCommand::Transition {
                    gateway: "gw1".into(),
                    observer_node: 1,
                    from,
                    to,
                    reason: "test".into(),
                    source: TransitionSource::Probe,
                    round_trip_ms: None,
                }),
            );
        }
        if rows > 0 {
            let rates: Vec<Rate> = (0..rows)
                .map(|row| Rate {
                    prefix: format!("1{row:07}"),
                    rate_micros_per_minute: 1,
                    connect_fee_micros: 0,
                    description: String::new(),
                    effective_from_ms: None,
                    effective_until_ms: None,
                })
                .collect();
            let chunks = rates.chunks(trunkline_core::routing::MAX_ROWS_PER_CHUNK);
            for chunk in chunks {
                index += 1;
                apply(
                    &mut state,
                    index,
                    Command::Routing(RoutingCommand::StageRates {
                        import_id: "deck".into(),
                        owner: "0123456789abcdef0123456789abcdef".into(),
                        carrier: "alpha".into(),
                        first_line: 1,
                        rates: chunk.to_vec(),
                    }),
                );
            }
            index += 1;
            apply(
                &mut state,
                index,
                Command::Routing(RoutingCommand::CommitRates {
                    import_id: "deck".into(),
                    owner: "0123456789abcdef0123456789abcdef".into(),
                    carrier: "alpha".into(),
                    replace: true,
                    expected_rows: rows as u64,
                }),
            );
        }
        state
    }

    fn applied(state: State) -> Arc<AppliedState> {
        Arc::new(AppliedState {
            state,
            ..AppliedState::default()
        })
    }

    /// Lets spawned tasks run until they all wait (the runtime is single-threaded).
    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_stalled_watcher_does_not_pin_the_state_it_read() {
        let first = applied(state(0, 10));
        let old = Arc::downgrade(&first);
        let (publish, states) = watch::channel(first);
        let (_stop, stopping) = watch::channel(false);
        let slots = StreamSlots::new(StreamKind::Watch, 1);
        let request = WatchRequest {
            after_index: 0,
            recent: 10,
            follow: true,
        };
        // A channel of one event and nobody reading: the task parks in send with 9 to go.
        let mut stream = watch_events(
            FakeSource { states },
            request,
            None,
            stopping,
            slots.acquire().unwrap(),
            1,
        );
        settle().await;
        publish.send_replace(applied(state(0, 0)));
        settle().await;
        assert!(
            old.upgrade().is_none(),
            "a watcher parked in send still holds the old state"
        );
        // The watcher still delivers what it copied out, in order.
        let first = stream.recv().await.unwrap().unwrap();
        let second = stream.recv().await.unwrap().unwrap();
        assert!(first.index < second.index);
    }

    #[tokio::test]
    async fn a_watcher_frees_its_slot_when_the_client_goes_away() {
        let (_publish, states) = watch::channel(applied(state(0, 3)));
        let (_stop, stopping) = watch::channel(false);
        let slots = StreamSlots::new(StreamKind::Watch, 1);
        let request = WatchRequest {
            after_index: 0,
            recent: 0,
            follow: true,
        };
        let stream = watch_events(
            FakeSource { states },
            request,
            None,
            stopping,
            slots.acquire().unwrap(),
            4,
        );
        let refused = slots.acquire().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("streams.max_watch_streams"));
        drop(stream);
        settle().await;
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test]
    async fn a_stalled_export_pins_neither_the_state_nor_the_deck() {
        let first = applied(state(3 * limits::EXPORT_CHUNK_ROWS, 0));
        let old_state = Arc::downgrade(&first);
        let old_deck = Arc::downgrade(first.state.routing().deck("alpha").unwrap());
        let deck = first.state.routing().deck("alpha").cloned();
        let (publish, states) = watch::channel(first);
        let slots = StreamSlots::new(StreamKind::Export, 1);
        let mut stream = export_rates(
            FakeSource { states },
            "alpha".into(),
            deck.as_ref(),
            slots.acquire().unwrap(),
            1,
        );
        drop(deck);
        settle().await;
        // The deck is replaced while the reader is stalled.
        publish.send_replace(applied(state(10, 0)));
        settle().await;
        assert!(old_state.upgrade().is_none(), "the export pins the state");
        assert!(old_deck.upgrade().is_none(), "the export pins the deck");
        // What was copied before the change arrives; then the stream says the deck changed.
        let chunk = stream.recv().await.unwrap().unwrap();
        assert_eq!(chunk.rates.len(), limits::EXPORT_CHUNK_ROWS);
        let mut ended = None;
        while let Some(item) = stream.recv().await {
            if let Err(status) = item {
                ended = Some(status);
            }
        }
        let status = ended.unwrap();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert!(status.message().contains("changed during export"));
        settle().await;
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test]
    async fn an_export_of_an_unchanged_deck_sends_every_row_once() {
        let rows = 2 * limits::EXPORT_CHUNK_ROWS + 7;
        let first = applied(state(rows, 0));
        let deck = first.state.routing().deck("alpha").cloned();
        let (_publish, states) = watch::channel(first);
        let slots = StreamSlots::new(StreamKind::Export, 1);
        let mut stream = export_rates(
            FakeSource { states },
            "alpha".into(),
            deck.as_ref(),
            slots.acquire().unwrap(),
            1,
        );
        let mut prefixes = Vec::new();
        while let Some(chunk) = stream.recv().await {
            prefixes.extend(chunk.unwrap().rates.into_iter().map(|rate| rate.prefix));
        }
        let expected: Vec<String> = deck.unwrap().rates().map(|r| r.prefix).collect();
        assert_eq!(prefixes, expected);
    }
}
