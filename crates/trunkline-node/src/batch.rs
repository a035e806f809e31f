//! Group commit: many small writes of one kind (admissions, call ends, call records) become
//! one Raft entry each round trip.
//!
//! One task per [`Queue`] writes what queued while the previous write was in flight as one
//! command of at most [`Kind::MAX_PER_COMMAND`] items, and hands each item its own outcome.
//! The queue is bounded: past [`QUEUE_CAPACITY`] items waiting, new ones are refused at once
//! as overload. A node that can't write (no quorum) answers every item of the batch with the
//! error.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};
use trunkline_core::{Command, Response};

use crate::{cluster::Cluster, error::ClusterError};

/// Items of one kind waiting for a write; beyond it new ones are refused as overload.
pub const QUEUE_CAPACITY: usize = 20_000;

struct Job<I, O> {
    item: I,
    /// `None` for an item nobody waits for.
    reply: Option<oneshot::Sender<Result<O, ClusterError>>>,
}

/// What a batch of one kind becomes in the log, and how its answers come back.
pub trait Kind: Send + 'static {
    type Item: Send + 'static;
    type Outcome: Send + 'static;
    /// What the items are, in plural, for messages.
    const WHAT: &'static str;
    const MAX_PER_COMMAND: usize;
    fn command(items: Vec<Self::Item>) -> Command;
    /// One outcome per item, in order, from the response of the entry at `index`; `None` for
    /// a response of another kind.
    fn outcomes(response: Response, index: u64) -> Option<Vec<Self::Outcome>>;
}

/// The queue of one kind and its writer task, which ends when the queue is dropped.
pub struct Queue<K: Kind> {
    sender: mpsc::Sender<Job<K::Item, K::Outcome>>,
}

impl<K: Kind> Queue<K> {
    pub fn start(cluster: Arc<Cluster>) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Job<K::Item, K::Outcome>>(QUEUE_CAPACITY);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < K::MAX_PER_COMMAND {
                    match receiver.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                write::<K>(&cluster, batch).await;
            }
        });
        Queue { sender }
    }

    fn enqueue(&self, job: Job<K::Item, K::Outcome>) -> Result<(), ClusterError> {
        self.sender.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => ClusterError::Unavailable(format!(
                "this node has {QUEUE_CAPACITY} {} waiting to be written; retry shortly",
                K::WHAT
            )),
            mpsc::error::TrySendError::Closed(_) => {
                ClusterError::Unavailable("the node is shutting down".to_owned())
            }
        })
    }

    /// Queues `item` and waits (at most `timeout`) for its outcome once applied.
    pub async fn submit(
        &self,
        item: K::Item,
        timeout: Duration,
    ) -> Result<K::Outcome, ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job {
            item,
            reply: Some(reply),
        })?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClusterError::Unavailable(format!(
                "the node stopped before the {} were written",
                K::WHAT
            ))),
            Err(_) => Err(ClusterError::DeadlineExceeded(format!(
                "the {} were not written within {timeout:?}; they may or may not have been \
                 applied",
                K::WHAT
            ))),
        }
    }

    /// Queues `item` without waiting for it: refused only when the queue is full.
    pub fn push(&self, item: K::Item) -> Result<(), ClusterError> {
        self.enqueue(Job { item, reply: None })
    }
}

async fn write<K: Kind>(cluster: &Cluster, batch: Vec<Job<K::Item, K::Outcome>>) {
    let (items, replies): (Vec<K::Item>, Vec<_>) =
        batch.into_iter().map(|job| (job.item, job.reply)).unzip();
    let written = cluster.write(K::command(items)).await;
    let outcomes = match written {
        Ok((Response::Rejected(error), _)) => Err(ClusterError::Domain(error)),
        Ok((response, index)) => K::outcomes(response, index)
            .filter(|outcomes| outcomes.len() == replies.len())
            .ok_or_else(|| ClusterError::internal(format!("unexpected reply to {}", K::WHAT))),
        Err(error) => Err(error),
    };
    match outcomes {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(outcome));
                }
            }
        }
        Err(error) => {
            if replies.iter().any(Option::is_none) {
                tracing::warn!(%error, "{} not written", K::WHAT);
            }
            for reply in replies.into_iter().flatten() {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
