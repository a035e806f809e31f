//! Peer backfill of the call record archive: a node that installed a snapshot fetches the
//! records of the entries it never applied from another member, and its archive becomes whole
//! again with no operator action.
//!
//! Both sides live here. **Serving** ([`serve`], behind the peer listener's `FetchRecords`):
//! records of a range of log time, after a key to resume from, read on a blocking thread from
//! the archive as the fetcher takes them, in chunks of at most [`limits::FETCH_CHUNK_RECORDS`]
//! records or [`limits::FETCH_CHUNK_BYTES`], at most [`limits::FETCH_RECORDS_PER_CALL`] a call,
//! at most [`limits::FETCH_MAX_STREAMS`] streams at once. A record travels as the codec encodes
//! it (never the sender's sealed bytes: nodes may have different keys), and every chunk says
//! from when the sender's archive is whole.
//!
//! **Fetching** ([`start`], a task of every node): while this node's archive is whole only
//! from later than the retention's horizon, it asks every other member from when theirs is
//! whole, fetches from the one that covers most (from the horizon, or from where that peer is
//! whole, up to where this node is), in calls that each resume after the last key taken, moving
//! to the next peer when one fails, and hands the records to the store's
//! [`Backfill`](trunkline_store::Backfill), which swaps them in and moves `complete_since_ms`
//! back only as far as the peers covered. A peer that is itself incomplete gives what it
//! has; the next round asks the others for the rest. Rounds that can't finish are retried with
//! a doubling pause up to [`limits::BACKFILL_RETRY_MAX`]. Applies never wait on any of it: the
//! archive's lock is held only for the final swap.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use trunkline_api::v1::internal::RaftPayload;
use trunkline_core::cdr::Cdr;
use trunkline_store::{ArchivedCdr, Backfill, CdrArchive, NodeId, StoreError};

use crate::{cluster::Cluster, limits, wire};

/// What a node asks a peer for: the records made from `since_ms` (inclusive) to `until_ms`
/// (exclusive), after the key `after` when resuming. `since_ms == until_ms` asks only from
/// when the peer's archive is whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRecordsRequest {
    pub since_ms: u64,
    pub until_ms: u64,
    /// (log time ms, log index, position) of the last record already taken.
    pub after: Option<(u64, u64, u32)>,
}

/// One chunk of a FetchRecords stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsChunk {
    /// The sender's archive holds every record from this log time on (0: all of them).
    pub covers_since_ms: u64,
    pub records: Vec<FetchedRecord>,
    /// The range is exhausted; otherwise the call ended after its share of records and the
    /// fetcher resumes after the last key.
    pub done: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedRecord {
    /// (log time ms, log index, position): the record's key, the same on every node.
    pub key: (u64, u64, u32),
    /// The record as `trunkline_store::codec` encodes it (versioned, checksummed).
    pub record: Vec<u8>,
}

/// The streams of FetchRecords a node serves at once.
#[derive(Clone, Debug)]
pub struct FetchSlots(Arc<Semaphore>);

impl Default for FetchSlots {
    fn default() -> Self {
        FetchSlots(Arc::new(Semaphore::new(limits::FETCH_MAX_STREAMS)))
    }
}

impl FetchSlots {
    pub fn acquire(&self) -> Result<OwnedSemaphorePermit, Status> {
        Arc::clone(&self.0).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "this node already serves {} record fetches; try another node or later",
                limits::FETCH_MAX_STREAMS
            ))
        })
    }
}

/// Streams the records `request` asks for (already checked) from `archive`, read on a
/// blocking thread a chunk ahead of the fetcher; `slot` is held until the stream ends.
pub fn serve(
    archive: CdrArchive,
    request: FetchRecordsRequest,
    cluster_name: String,
    slot: OwnedSemaphorePermit,
) -> ReceiverStream<Result<RaftPayload, Status>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(limits::FETCH_CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let send = |chunk: Result<RecordsChunk, Status>| {
            let message = chunk.and_then(|chunk| {
                Ok(RaftPayload {
                    cluster_name: cluster_name.clone(),
                    payload: wire::encode(&chunk)?,
                })
            });
            sender.blocking_send(message).is_ok()
        };
        let unreadable = |error: StoreError| {
            Status::data_loss(format!(
                "this node's record archive can't be read ({error}); fetch from another node"
            ))
        };
        let covers = || archive.complete_since_ms().map_err(unreadable);
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut sent = 0u64;
        for item in archive.scan_kept(request.since_ms, request.until_ms) {
            let archived = match item {
                Ok(archived) => archived,
                Err(error) => {
                    send(Err(unreadable(error)));
                    return;
                }
            };
            let key = (archived.recorded_ms, archived.log_index, archived.position);
            if request.after.is_some_and(|after| key <= after) {
                continue;
            }
            let record = match trunkline_store::codec::encode(&archived.cdr) {
                Ok(record) => record,
                Err(error) => {
                    send(Err(Status::internal(format!(
                        "can't encode the record {key:?}: {error}"
                    ))));
                    return;
                }
            };
            bytes += record.len();
            records.push(FetchedRecord { key, record });
            sent += 1;
            let last_of_call = sent >= limits::FETCH_RECORDS_PER_CALL;
            if records.len() >= limits::FETCH_CHUNK_RECORDS
                || bytes >= limits::FETCH_CHUNK_BYTES
                || last_of_call
            {
                let chunk = covers().map(|covers_since_ms| RecordsChunk {
                    covers_since_ms,
                    records: std::mem::take(&mut records),
                    done: false,
                });
                bytes = 0;
                if !send(chunk) || last_of_call {
                    return;
                }
            }
        }
        // The last chunk goes even when empty: it says the range is done, and from when.
        send(covers().map(|covers_since_ms| RecordsChunk {
            covers_since_ms,
            records,
            done: true,
        }));
    });
    ReceiverStream::new(receiver)
}

/// Starts the task that backfills this node's archive from peers whenever it is incomplete.
/// It ends once the node is gone.
pub fn start(cluster: Arc<Cluster>, archive: CdrArchive) {
    let weak = Arc::downgrade(&cluster);
    drop(cluster);
    tokio::spawn(async move {
        let mut retry = limits::BACKFILL_RETRY_MIN;
        loop {
            let pause = {
                let Some(cluster) = weak.upgrade() else {
                    return;
                };
                match round(&cluster, &archive).await {
                    Ok(Round::Whole) => {
                        retry = limits::BACKFILL_RETRY_MIN;
                        limits::BACKFILL_CHECK_INTERVAL
                    }
                    Ok(Round::Progress) => {
                        retry = limits::BACKFILL_RETRY_MIN;
                        Duration::ZERO
                    }
                    Err(reason) => {
                        tracing::warn!(
                            retry_in = ?retry,
                            "the call record archive is incomplete and could not be backfilled \
                             from a peer: {reason}"
                        );
                        let pause = retry;
                        retry = (retry * 2).min(limits::BACKFILL_RETRY_MAX);
                        pause
                    }
                }
            };
            tokio::time::sleep(pause).await;
        }
    });
}

enum Round {
    /// Nothing to fetch: the archive is whole as far as the retention reaches.
    Whole,
    /// Records went in; look again at once.
    Progress,
}

/// A peer and from when its archive is whole.
struct Offer {
    node_id: NodeId,
    peer_addr: String,
    covers_since_ms: u64,
}

/// One look at the archive and, when it is incomplete, one backfill from the peers.
async fn round(cluster: &Cluster, archive: &CdrArchive) -> Result<Round, String> {
    let complete_since_ms = archive
        .complete_since_ms()
        .map_err(|error| format!("the archive can't say from when it is whole: {error}"))?;
    let horizon_ms = archive.retained_since_ms();
    if complete_since_ms == 0 || complete_since_ms <= horizon_ms {
        return Ok(Round::Whole);
    }
    let members: Vec<(NodeId, String)> = {
        let metrics = cluster.metrics();
        metrics
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != cluster.node_id)
            .map(|(id, node)| (*id, node.peer_addr.clone()))
            .collect()
    };
    if members.is_empty() {
        return Err("no other member to fetch from".to_owned());
    }
    let mut offers = Vec::new();
    let mut refusals = Vec::new();
    for (node_id, peer_addr) in members {
        let probe = FetchRecordsRequest {
            since_ms: 0,
            until_ms: 0,
            after: None,
        };
        match fetch(
            cluster,
            node_id,
            &peer_addr,
            &probe,
            limits::FETCH_COVERAGE_TIMEOUT,
        )
        .await
        {
            Ok(mut stream) => match next_chunk(&mut stream).await {
                Ok(Some(chunk)) => offers.push(Offer {
                    node_id,
                    peer_addr,
                    covers_since_ms: chunk.covers_since_ms,
                }),
                Ok(None) => refusals.push(format!("node {node_id}: no answer")),
                Err(status) => refusals.push(format!("node {node_id}: {}", status.message())),
            },
            Err(status) => refusals.push(format!("node {node_id}: {}", status.message())),
        }
    }
    offers.retain(|offer| offer.covers_since_ms < complete_since_ms);
    offers.sort_by_key(|offer| offer.covers_since_ms);
    let Some(best) = offers.first() else {
        return Err(format!(
            "no reachable member holds records older than log time {complete_since_ms} ms \
             ({})",
            if refusals.is_empty() {
                "every member is as incomplete".to_owned()
            } else {
                refusals.join("; ")
            }
        ));
    };
    let since_ms = horizon_ms.max(best.covers_since_ms);
    let begun = blocking({
        let archive = archive.clone();
        move || archive.begin_backfill(since_ms)
    })
    .await?;
    let Some(mut backfill) = begun else {
        // Whole meanwhile (the next round sees it), or a folder whose snapshot was installed
        // before the archive kept its boundary: then nothing can be fetched safely.
        return Err(format!(
            "this archive can't take records from before log time {complete_since_ms} ms: its \
             snapshot was installed by an older trunkline; give the node an empty data folder \
             to have every record"
        ));
    };
    tracing::info!(
        since_ms,
        until_ms = backfill.until_ms(),
        from_node = best.node_id,
        "backfilling the call record archive from a peer"
    );
    let mut covered_since_ms = since_ms;
    let mut failures = Vec::new();
    let mut fetched = None;
    for offer in &offers {
        match fetch_all(cluster, offer, backfill).await {
            Ok((returned, covers)) => {
                fetched = Some(returned);
                covered_since_ms = covered_since_ms.max(covers);
                break;
            }
            Err(Fetched::Peer {
                backfill: returned,
                reason,
                covers_since_ms,
            }) => {
                backfill = *returned;
                covered_since_ms = covered_since_ms.max(covers_since_ms);
                failures.push(format!("node {}: {reason}", offer.node_id));
                continue;
            }
            Err(Fetched::Store(reason)) => return Err(reason),
        }
    }
    let Some(backfill) = fetched else {
        // The backfill was dropped with the last failure, removing what it staged.
        return Err(format!(
            "the fetch failed on every peer ({})",
            failures.join("; ")
        ));
    };
    let added = backfill.records_added();
    let outcome = blocking(move || backfill.finish(covered_since_ms)).await?;
    tracing::info!(
        records_added = added,
        swapped = outcome.swapped,
        complete_since_ms = outcome.complete_since_ms,
        "backfilled the call record archive"
    );
    Ok(Round::Progress)
}

/// Why a fetch from one peer stopped.
enum Fetched {
    /// The peer failed (unreachable, refused, a bad chunk, too slow): another may do. The
    /// backfill goes back, with the highest coverage the peer reported.
    Peer {
        backfill: Box<Backfill>,
        reason: String,
        covers_since_ms: u64,
    },
    /// The store failed or refused what the peer sent: the round ends, the backfill with it.
    Store(String),
}

/// Fetches from `offer` what `backfill` still lacks, in calls that each resume after the last
/// key taken; returns it with the highest coverage the peer reported.
async fn fetch_all(
    cluster: &Cluster,
    offer: &Offer,
    mut backfill: Backfill,
) -> Result<(Backfill, u64), Fetched> {
    let mut covers_since_ms = offer.covers_since_ms;
    let peer = |backfill, reason: String, covers_since_ms| {
        Err(Fetched::Peer {
            backfill: Box::new(backfill),
            reason,
            covers_since_ms,
        })
    };
    loop {
        let request = FetchRecordsRequest {
            since_ms: backfill.since_ms(),
            until_ms: backfill.until_ms(),
            after: backfill.last_fetched(),
        };
        let opened = fetch(
            cluster,
            offer.node_id,
            &offer.peer_addr,
            &request,
            limits::FETCH_CALL_TIMEOUT,
        )
        .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(status) => return peer(backfill, status.message().to_owned(), covers_since_ms),
        };
        let deadline = tokio::time::Instant::now() + limits::FETCH_CALL_TIMEOUT;
        let mut progressed = false;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, next_chunk(&mut stream)).await {
                // The call's time is up: a new call resumes after the last key, if this one
                // brought anything.
                Err(_) if progressed => break,
                Err(_) => {
                    let reason = format!("nothing within {:?}", limits::FETCH_CALL_TIMEOUT);
                    return peer(backfill, reason, covers_since_ms);
                }
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => {
                    let reason = "the stream ended before the range did".to_owned();
                    return peer(backfill, reason, covers_since_ms);
                }
                Ok(Err(status)) => {
                    return peer(backfill, status.message().to_owned(), covers_since_ms)
                }
            };
            covers_since_ms = covers_since_ms.max(chunk.covers_since_ms);
            let records = match decode_records(chunk.records) {
                Ok(records) => records,
                Err(reason) => return peer(backfill, reason, covers_since_ms),
            };
            let count = records.len();
            progressed |= count > 0;
            let taken = blocking(move || {
                let result = backfill.add(records);
                Ok((backfill, result))
            })
            .await;
            backfill = match taken {
                Ok((returned, Ok(()))) => returned,
                // Out of order, or the disk failed: what was staged can't be trusted.
                Ok((_, Err(error))) => {
                    return Err(Fetched::Store(format!(
                        "records from node {} can't be taken: {error}",
                        offer.node_id
                    )))
                }
                Err(reason) => return Err(Fetched::Store(reason)),
            };
            if count > 0 {
                tracing::debug!(
                    from_node = offer.node_id,
                    records = count,
                    added_so_far = backfill.records_added(),
                    "backfill chunk taken"
                );
            }
            if chunk.done {
                return Ok((backfill, covers_since_ms));
            }
        }
    }
}

/// The records of a chunk, decoded.
fn decode_records(records: Vec<FetchedRecord>) -> Result<Vec<ArchivedCdr>, String> {
    records
        .into_iter()
        .map(|fetched| {
            let (recorded_ms, log_index, position) = fetched.key;
            let cdr: Cdr = trunkline_store::codec::decode(&fetched.record).map_err(|error| {
                format!(
                    "the record {:?} it sent is unreadable: {error}",
                    fetched.key
                )
            })?;
            Ok(ArchivedCdr {
                recorded_ms,
                log_index,
                position,
                cdr,
            })
        })
        .collect()
}

/// Opens a FetchRecords stream to a peer; `timeout` bounds the call (and, as its deadline,
/// the serving side).
async fn fetch(
    cluster: &Cluster,
    node_id: NodeId,
    peer_addr: &str,
    request: &FetchRecordsRequest,
    timeout: Duration,
) -> Result<tonic::Streaming<RaftPayload>, Status> {
    let mut client = cluster
        .dialer
        .client(node_id, peer_addr)
        .map_err(|error| Status::unavailable(error.to_string()))?;
    let mut message = tonic::Request::new(RaftPayload {
        cluster_name: cluster.cluster_name.clone(),
        payload: wire::encode(request)?,
    });
    message.set_timeout(timeout);
    let response = tokio::time::timeout(timeout, client.fetch_records(message))
        .await
        .map_err(|_| Status::deadline_exceeded(format!("no answer within {timeout:?}")))??;
    Ok(response.into_inner())
}

/// The next chunk of a stream, within [`limits::FETCH_CHUNK_TIMEOUT`].
async fn next_chunk(
    stream: &mut tonic::Streaming<RaftPayload>,
) -> Result<Option<RecordsChunk>, Status> {
    let message = tokio::time::timeout(limits::FETCH_CHUNK_TIMEOUT, stream.message())
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!("no chunk within {:?}", limits::FETCH_CHUNK_TIMEOUT))
        })??;
    message
        .map(|message| wire::decode(&message.payload))
        .transpose()
}

/// Runs blocking archive work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("the record archive: {error}")),
        Err(join_error) => Err(format!("the archive work did not finish: {join_error}")),
    }
}
