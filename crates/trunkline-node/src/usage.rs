//! Admissions of calls of tenants with usage limits, and their ends, batched into few Raft
//! entries (group commit, as `registrar.rs` does for registrations).
//!
//! A limited tenant's call is admitted only by the replicated state (`trunkline_core::usage`),
//! so no limit is exceeded however many nodes route at once. One task per kind writes what has
//! queued while the previous write was in flight as one command of at most
//! [`MAX_PER_COMMAND`] calls: thousands of calls a second cost a few entries each round trip.
//! A node that can't write (no quorum) answers with the error, and the lookup refuses the call:
//! limits fail closed.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};
use trunkline_core::{
    usage::{Admission, Admitted, CallEnd, Ended, UsageCommand, UsageResponse, MAX_PER_COMMAND},
    Command, Response,
};

use crate::{cluster::Cluster, error::ClusterError};

/// Admissions or ends waiting for a write; beyond it new ones are refused as overload.
pub const QUEUE_CAPACITY: usize = 20_000;
/// Longest a lookup waits for its admission: a proxy's INVITE can't wait longer.
pub const ADMIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest an end report waits for its write.
pub const END_TIMEOUT: Duration = Duration::from_secs(10);

struct Job<I, O> {
    item: I,
    reply: oneshot::Sender<Result<O, ClusterError>>,
}

/// What a batch of one kind becomes in the log, and how its answers come back.
trait Kind: Send + 'static {
    type Item: Send + 'static;
    type Outcome: Send + 'static;
    const WHAT: &'static str;
    fn command(items: Vec<Self::Item>) -> UsageCommand;
    fn outcomes(response: UsageResponse) -> Option<Vec<Self::Outcome>>;
}

struct Admit;

impl Kind for Admit {
    type Item = Admission;
    type Outcome = Admitted;
    const WHAT: &'static str = "admissions";
    fn command(items: Vec<Admission>) -> UsageCommand {
        UsageCommand::Admit(items)
    }
    fn outcomes(response: UsageResponse) -> Option<Vec<Admitted>> {
        match response {
            UsageResponse::Admitted(outcomes) => Some(outcomes),
            UsageResponse::Ended(_) => None,
        }
    }
}

struct End;

impl Kind for End {
    type Item = CallEnd;
    type Outcome = Ended;
    const WHAT: &'static str = "call ends";
    fn command(items: Vec<CallEnd>) -> UsageCommand {
        UsageCommand::End(items)
    }
    fn outcomes(response: UsageResponse) -> Option<Vec<Ended>> {
        match response {
            UsageResponse::Ended(outcomes) => Some(outcomes),
            UsageResponse::Admitted(_) => None,
        }
    }
}

/// The queue of one kind and its writer task.
struct Queue<K: Kind> {
    sender: mpsc::Sender<Job<K::Item, K::Outcome>>,
}

impl<K: Kind> Queue<K> {
    fn start(cluster: Arc<Cluster>) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Job<K::Item, K::Outcome>>(QUEUE_CAPACITY);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_PER_COMMAND {
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

    async fn submit(&self, item: K::Item, timeout: Duration) -> Result<K::Outcome, ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .try_send(Job { item, reply })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => ClusterError::Unavailable(format!(
                    "this node has {QUEUE_CAPACITY} {} waiting to be written; retry shortly",
                    K::WHAT
                )),
                mpsc::error::TrySendError::Closed(_) => {
                    ClusterError::Unavailable("the node is shutting down".to_owned())
                }
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
}

async fn write<K: Kind>(cluster: &Cluster, batch: Vec<Job<K::Item, K::Outcome>>) {
    let (items, replies): (Vec<K::Item>, Vec<_>) =
        batch.into_iter().map(|job| (job.item, job.reply)).unzip();
    let written = cluster.write(Command::Usage(K::command(items))).await;
    let outcomes = match written {
        Ok((Response::Usage(response), _)) => K::outcomes(response)
            .filter(|outcomes| outcomes.len() == replies.len())
            .ok_or_else(|| ClusterError::internal(format!("unexpected reply to {}", K::WHAT))),
        Ok((Response::Rejected(error), _)) => Err(ClusterError::Domain(error)),
        Ok((other, _)) => Err(ClusterError::internal(format!(
            "unexpected reply to {}: {other:?}",
            K::WHAT
        ))),
        Err(error) => Err(error),
    };
    match outcomes {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// Admissions and ends of the calls of tenants with usage limits.
pub struct Admitter {
    admits: Queue<Admit>,
    ends: Queue<End>,
}

impl Admitter {
    /// Starts the two writer tasks; they end when the admitter is dropped.
    pub fn start(cluster: Arc<Cluster>) -> Arc<Admitter> {
        Arc::new(Admitter {
            admits: Queue::start(cluster.clone()),
            ends: Queue::start(cluster),
        })
    }

    /// Admits or refuses a call, once it is applied.
    pub async fn admit(&self, admission: Admission) -> Result<Admitted, ClusterError> {
        self.admits.submit(admission, ADMIT_TIMEOUT).await
    }

    /// Releases a call and books its usage, once it is applied.
    pub async fn end(&self, end: CallEnd) -> Result<Ended, ClusterError> {
        self.ends.submit(end, END_TIMEOUT).await
    }
}
