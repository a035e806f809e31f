//! Group commit: many small writes of one kind (admissions, call ends, call records) become
//! one Raft entry each round trip.
//!
//! One task per [`Queue`] writes what queued while the previous write was in flight as one
//! command of at most [`Kind::MAX_PER_COMMAND`] items, and hands each item its own outcome.
//! A kind whose items nobody waits for may also *linger* ([`Kind::LINGER`]): a batch of
//! such items waits that long for company before it is written, so a steady trickle (a
//! lookup's call record per call, spread over the nodes) becomes a few entries a second
//! instead of one per item, each replicated and flushed on every node. An item somebody waits
//! for ends the lingering; a kind may then still wait a moment for the rest of a burst
//! ([`Kind::COMPANY`]): a batch request's reports are queued one by one, and the writer would
//! otherwise take the first alone and the rest as a second entry.
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
    /// How long a batch of items nobody waits for waits for more before it is written.
    const LINGER: Duration = Duration::ZERO;
    /// How long a batch somebody waits for still takes what else arrives before it is
    /// written: a burst queued together (the reports of one batch request) becomes one entry.
    const COMPANY: Duration = Duration::ZERO;
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
        let waits = Waits {
            linger: K::LINGER,
            company: K::COMPANY,
        };
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let batch = gather(&mut receiver, first, K::MAX_PER_COMMAND, waits).await;
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

/// How long a batch waits for more items ([`Kind::LINGER`], [`Kind::COMPANY`]).
#[derive(Clone, Copy)]
struct Waits {
    linger: Duration,
    company: Duration,
}

/// The batch that starts with `first`: whatever else is queued, up to `max` items; while
/// nobody waits for any of them, whatever arrives within `linger` of now, until one arrives
/// that somebody waits for; then whatever arrives within `company`.
async fn gather<I, O>(
    receiver: &mut mpsc::Receiver<Job<I, O>>,
    first: Job<I, O>,
    max: usize,
    waits: Waits,
) -> Vec<Job<I, O>> {
    let mut batch = vec![first];
    while batch.len() < max {
        match receiver.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    let waited_for = |batch: &[Job<I, O>]| batch.iter().any(|job| job.reply.is_some());
    if !waits.linger.is_zero() && !waited_for(&batch) {
        let deadline = tokio::time::Instant::now() + waits.linger;
        loop {
            if batch.len() >= max {
                return batch;
            }
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(job)) => {
                    let waited_for = job.reply.is_some();
                    batch.push(job);
                    if waited_for {
                        break;
                    }
                }
                // Nobody waits for this batch: it has waited long enough.
                Ok(None) | Err(_) => return batch,
            }
        }
    }
    if !waits.company.is_zero() && waited_for(&batch) {
        let deadline = tokio::time::Instant::now() + waits.company;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(job)) => batch.push(job),
                Ok(None) | Err(_) => break,
            }
        }
    }
    batch
}

async fn write<K: Kind>(cluster: &Cluster, batch: Vec<Job<K::Item, K::Outcome>>) {
    let (items, replies): (Vec<K::Item>, Vec<_>) =
        batch.into_iter().map(|job| (job.item, job.reply)).unzip();
    // Already a batch of its kind: proposed at once, not queued behind other writes.
    let written = cluster.write_alone(K::command(items)).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(item: u32) -> Job<u32, ()> {
        Job { item, reply: None }
    }

    fn waited_job(item: u32) -> Job<u32, ()> {
        let (reply, answer) = oneshot::channel();
        // The answer is never read here: dropping its receiver is harmless.
        drop(answer);
        Job {
            item,
            reply: Some(reply),
        }
    }

    fn lingering(linger: Duration) -> Waits {
        Waits {
            linger,
            company: Duration::ZERO,
        }
    }

    /// [`gather`] that must end long before its hour-long windows would: `why` it must.
    async fn gather_soon(
        receiver: &mut mpsc::Receiver<Job<u32, ()>>,
        first: Job<u32, ()>,
        max: usize,
        waits: Waits,
        why: &str,
    ) -> Vec<Job<u32, ()>> {
        tokio::time::timeout(Duration::from_secs(30), gather(receiver, first, max, waits))
            .await
            .expect(why)
    }

    #[tokio::test]
    async fn a_waited_for_batch_takes_the_rest_of_its_burst_within_the_company_window() {
        let (sender, mut receiver) = mpsc::channel(16);
        let waits = Waits {
            linger: Duration::ZERO,
            company: Duration::from_millis(200),
        };
        // The rest of a burst, queued just after the writer took its first item.
        let burst = sender.clone();
        let producer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            for item in 2..5 {
                let _ = burst.send(waited_job(item)).await;
            }
        });
        let batch = gather(&mut receiver, waited_job(1), 10, waits).await;
        producer.await.unwrap();
        assert_eq!(
            batch.iter().map(|job| job.item).collect::<Vec<_>>(),
            [1, 2, 3, 4],
            "one batch for the burst"
        );

        // Without the window, the first item goes alone.
        let burst = sender.clone();
        let producer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = burst.send(waited_job(6)).await;
        });
        let batch = gather(&mut receiver, waited_job(5), 10, lingering(Duration::ZERO)).await;
        assert_eq!(batch.iter().map(|job| job.item).collect::<Vec<_>>(), [5]);
        producer.await.unwrap();
        let _ = receiver.try_recv();

        // A batch nobody waits for is not held by the window once its linger is over.
        let batch = gather_soon(
            &mut receiver,
            job(7),
            10,
            Waits {
                linger: Duration::from_millis(10),
                company: Duration::from_secs(3_600),
            },
            "the linger ends a batch nobody waits for",
        )
        .await;
        assert_eq!(batch.iter().map(|job| job.item).collect::<Vec<_>>(), [7]);
    }

    #[tokio::test]
    async fn items_nobody_waits_for_linger_for_company_and_others_do_not() {
        let (sender, mut receiver) = mpsc::channel(16);
        let late = sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = late.send(job(2)).await;
        });
        let batch = gather(&mut receiver, job(1), 10, lingering(Duration::from_secs(1))).await;
        // Without lingering the batch would be [1]: 2 came 50 ms later.
        assert!(batch.len() >= 2, "{} items", batch.len());

        // Without a linger, only what is queued now.
        sender.send(job(3)).await.unwrap();
        let late = sender.clone();
        let straggler = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = late.send(job(4)).await;
        });
        let batch = gather(&mut receiver, job(5), 10, lingering(Duration::ZERO)).await;
        assert_eq!(batch.iter().map(|job| job.item).collect::<Vec<_>>(), [5, 3]);
        straggler.await.unwrap();
        let _ = receiver.try_recv();

        // An item somebody waits for ends the lingering at once: with an hour's linger, the
        // batch still comes back as soon as it arrives.
        let waiter = sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (reply, _answer) = oneshot::channel();
            let _ = waiter
                .send(Job {
                    item: 6,
                    reply: Some(reply),
                })
                .await;
        });
        let batch = gather_soon(
            &mut receiver,
            job(7),
            10,
            lingering(Duration::from_secs(3_600)),
            "an item somebody waits for ends the lingering",
        )
        .await;
        assert_eq!(batch.iter().map(|job| job.item).collect::<Vec<_>>(), [7, 6]);

        // A full batch is written without waiting.
        for item in 10..20 {
            sender.send(job(item)).await.unwrap();
        }
        let batch = gather_soon(
            &mut receiver,
            job(9),
            4,
            lingering(Duration::from_secs(3_600)),
            "a full batch does not linger",
        )
        .await;
        assert_eq!(batch.len(), 4);
    }
}
