//! Group commit: the writes that queue on a node while its previous entries are in flight
//! are proposed together, as one [`Command::Batch`] entry.
//!
//! openraft 0.9 appends and flushes each proposal on its own (the core awaits the flush of
//! one entry before it takes the next), so a leader proposing one entry per write spends
//! two fsyncs, a replication round and an apply per write. A batch costs that once for all
//! its writes. Each write keeps its own actor, idempotency key and answer: the state machine
//! applies a batch's writes as it would apply them in entries of their own
//! (`trunkline_core::State::apply`).
//!
//! One task per node takes the writes in arrival order. One batch is in flight at a time;
//! whatever queued meanwhile is the next batch, up to [`MAX_BATCHED_WRITES`] writes and
//! [`MAX_COMMAND_WIRE_BYTES`] (what one entry may carry). A batch that starts with a bulk
//! write (a rate deck chunk, [`BULK_WRITE_BYTES`] or more) goes beside it, up to
//! [`BULK_IN_FLIGHT`] of those, so an import does not hold up the small writes behind it.
//! (With four batches of any kind in flight, 50 writers made batches of about 8 and the
//! three-node cluster took 4,150 SetSettings a second at 303 µs of CPU each; with one,
//! 5,900 at 216 µs: openraft appends and flushes one entry at a time anyway, so more in
//! flight only made the entries smaller.)
//! A write that is alone goes as it always did, in an entry of its own. On a follower a batch
//! is forwarded to the leader as one request, so forwarding is batched too.
//!
//! Bounded: at most [`QUEUE_CAPACITY`] writes wait; beyond it a write is refused at once as
//! not applied. A write whose batch failed gets the batch's error (an unknown outcome stays
//! unknown for each of its writes, and is safe to retry with an idempotency key).

use std::sync::{Arc, Weak};
use tracing::Instrument;

use tokio::sync::{mpsc, oneshot, Semaphore};
use trunkline_core::{state::MAX_BATCHED_WRITES, BatchedWrite, Command, Response};

use crate::{
    cluster::{Cluster, LeaderReply, LeaderRequest},
    error::ClusterError,
    limits::MAX_COMMAND_WIRE_BYTES,
};

/// Writes waiting to be proposed on one node; beyond it a write is refused as not applied.
pub const QUEUE_CAPACITY: usize = 4_096;
/// Batches of bulk writes of one node in flight at once, beside the one batch of small ones.
pub const BULK_IN_FLIGHT: usize = 3;
/// A write of at least this many bytes on the wire is a bulk write.
pub const BULK_WRITE_BYTES: u64 = 64 * 1024;

/// What a write comes back with: its response and the index of the entry that carried it.
pub type Outcome = Result<(Response, u64), ClusterError>;

/// A write waiting for its batch.
pub struct Pending {
    write: BatchedWrite,
    /// What the write adds to an entry's encoding.
    bytes: u64,
    reply: oneshot::Sender<Outcome>,
    /// The span of the write's caller (none when traces are off): the batch's span is a child
    /// of the first's and follows from the others.
    span: tracing::Span,
}

impl Pending {
    pub fn new(write: BatchedWrite, bytes: u64) -> (Pending, oneshot::Receiver<Outcome>) {
        let (reply, answer) = oneshot::channel();
        (
            Pending {
                write,
                bytes,
                reply,
                span: tracing::Span::current(),
            },
            answer,
        )
    }
}

/// Starts the node's group-commit task, which ends when the returned sender (and every clone
/// of it) is dropped. It holds the cluster weakly: the cluster owns the sender.
pub fn start(cluster: Weak<Cluster>) -> mpsc::Sender<Pending> {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    tokio::spawn(run(cluster, receiver));
    sender
}

async fn run(cluster: Weak<Cluster>, mut receiver: mpsc::Receiver<Pending>) {
    let small = Arc::new(Semaphore::new(1));
    let bulk = Arc::new(Semaphore::new(BULK_IN_FLIGHT));
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match receiver.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let slots = if first.bytes >= BULK_WRITE_BYTES {
            &bulk
        } else {
            &small
        };
        // Never closed, so acquiring only waits; what queues meanwhile joins the batch.
        let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
            return;
        };
        let (batch, rest) = gather(&mut receiver, first);
        carried = rest;
        let Some(cluster) = cluster.upgrade() else {
            answer_all(batch, &stopping());
            return;
        };
        tokio::spawn(async move {
            propose(&cluster, batch).await;
            drop(permit);
        });
    }
}

fn stopping() -> ClusterError {
    ClusterError::Unavailable("the node is shutting down; the write was not applied".to_owned())
}

/// The batch that starts with `first`: what else is queued now, in order, while it fits one
/// entry; the first write that would not fit is handed back to start the next batch.
fn gather(
    receiver: &mut mpsc::Receiver<Pending>,
    first: Pending,
) -> (Vec<Pending>, Option<Pending>) {
    let mut bytes = first.bytes;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCHED_WRITES {
        let Ok(next) = receiver.try_recv() else {
            break;
        };
        if bytes.saturating_add(next.bytes) > MAX_COMMAND_WIRE_BYTES {
            return (batch, Some(next));
        }
        bytes += next.bytes;
        batch.push(next);
    }
    (batch, None)
}

async fn propose(cluster: &Cluster, batch: Vec<Pending>) {
    let span = match batch.first() {
        Some(first) if crate::telemetry::enabled() => {
            let span = first
                .span
                .in_scope(|| crate::span!("group_commit", writes = batch.len()));
            for pending in batch.iter().skip(1) {
                span.follows_from(&pending.span);
            }
            span
        }
        _ => tracing::Span::none(),
    };
    propose_batch(cluster, batch).instrument(span).await;
}

async fn propose_batch(cluster: &Cluster, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        if let Some(Pending { write, reply, .. }) = batch.pop() {
            let BatchedWrite {
                command,
                actor,
                idempotency,
            } = write;
            let result = cluster
                .submit(LeaderRequest::Write(
                    command,
                    actor.map(Box::new),
                    idempotency,
                ))
                .await;
            let answer = match result.and_then(|reply| outcome(reply, None)) {
                Ok(mut outcomes) => outcomes.pop().unwrap_or_else(unexpected),
                Err(error) => Err(error),
            };
            let _ = reply.send(answer);
        }
        return;
    }
    let count = batch.len();
    let (writes, replies): (Vec<BatchedWrite>, Vec<_>) = batch
        .into_iter()
        .map(|pending| (pending.write, pending.reply))
        .unzip();
    let result = cluster
        .submit(LeaderRequest::Write(Command::Batch(writes), None, None))
        .await
        .and_then(|reply| outcome(reply, Some(count)));
    match result {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

fn unexpected() -> Outcome {
    Err(ClusterError::internal("no answer for a write"))
}

/// Each write's outcome from the leader's reply: `count` writes of a batch, or (`None`) one
/// write alone. A write refused at apply is a domain error, as a lone write's always was.
fn outcome(reply: LeaderReply, count: Option<usize>) -> Result<Vec<Outcome>, ClusterError> {
    let LeaderReply::Written {
        response,
        log_index,
    } = reply
    else {
        return Err(ClusterError::internal(format!(
            "unexpected reply to a write: {reply:?}"
        )));
    };
    let single = |response: Response| match response {
        Response::Rejected(error) => Err(ClusterError::Domain(error)),
        response => Ok((response, log_index)),
    };
    match (count, response) {
        (None, response) => Ok(vec![single(response)]),
        (Some(count), Response::Batch(responses)) if responses.len() == count => {
            Ok(responses.into_iter().map(single).collect())
        }
        // The whole batch refused (the leader found it malformed): each write is told why.
        (Some(_), Response::Rejected(error)) => Err(ClusterError::Domain(error)),
        (Some(count), response) => Err(ClusterError::internal(format!(
            "a batch of {count} writes was answered with {response:?}"
        ))),
    }
}

fn answer_all(batch: Vec<Pending>, error: &ClusterError) {
    for pending in batch {
        let _ = pending.reply.send(Err(error.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_core::settings::SettingsCommand;

    fn pending(key: &str, bytes: u64) -> (Pending, oneshot::Receiver<Outcome>) {
        Pending::new(
            BatchedWrite {
                command: Command::Settings(SettingsCommand::Set {
                    key: key.into(),
                    value: "v".into(),
                }),
                actor: None,
                idempotency: None,
            },
            bytes,
        )
    }

    fn keys(batch: &[Pending]) -> Vec<String> {
        batch
            .iter()
            .map(|pending| match &pending.write.command {
                Command::Settings(SettingsCommand::Set { key, .. }) => key.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_while_it_fits_one_entry() {
        let (sender, mut receiver) = mpsc::channel(16);
        let mut answers = Vec::new();
        for (key, bytes) in [("b", 100), ("c", MAX_COMMAND_WIRE_BYTES - 300), ("d", 500)] {
            let (pending, answer) = pending(key, bytes);
            answers.push(answer);
            sender.send(pending).await.unwrap();
        }
        let (first, _answer) = pending("a", 100);
        let (batch, rest) = gather(&mut receiver, first);
        // "d" would take the entry past its bound: it starts the next batch, in order.
        assert_eq!(keys(&batch), ["a", "b", "c"]);
        let rest = rest.unwrap();
        assert_eq!(keys(&[rest]), ["d"]);
        assert!(receiver.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_the_writes_one_entry_may() {
        let (sender, mut receiver) = mpsc::channel(MAX_BATCHED_WRITES + 8);
        let mut answers = Vec::new();
        for n in 0..MAX_BATCHED_WRITES + 5 {
            let (pending, answer) = pending(&format!("k{n}"), 10);
            answers.push(answer);
            sender.send(pending).await.unwrap();
        }
        let (first, _answer) = pending("first", 10);
        let (batch, rest) = gather(&mut receiver, first);
        assert_eq!(batch.len(), MAX_BATCHED_WRITES);
        assert!(rest.is_none());
        let second = receiver.try_recv().unwrap();
        let (next, _) = gather(&mut receiver, second);
        // The rest: the 1,029 queued less the 1,023 that joined the first.
        assert_eq!(next.len(), 6);
    }

    #[test]
    fn each_write_gets_its_own_answer_and_a_refused_one_its_own_error() {
        let reply = LeaderReply::Written {
            response: Response::Batch(vec![
                Response::None,
                Response::Rejected(trunkline_core::Error::invalid("key", "must not be empty")),
            ]),
            log_index: 42,
        };
        let outcomes = outcome(reply, Some(2)).unwrap();
        assert!(matches!(outcomes[0], Ok((Response::None, 42))));
        assert!(matches!(outcomes[1], Err(ClusterError::Domain(_))));

        // An answer that does not match the batch is an error for every write, not a guess.
        let short = LeaderReply::Written {
            response: Response::Batch(vec![Response::None]),
            log_index: 43,
        };
        assert!(matches!(
            outcome(short, Some(2)),
            Err(ClusterError::Internal(_))
        ));
    }
}
