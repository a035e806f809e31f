//! Registrations from edge proxies, batched into few Raft entries.
//!
//! Edges refresh registrations often (thousands a second across a carrier), and one Raft
//! entry per refresh would bound the rate by the log's round trip. Each `ReportRegistration`
//! is queued here; one task writes whatever has queued while the previous write was in flight
//! as a single `Register` command (group commit, at most
//! [`MAX_UPDATES_PER_COMMAND`] updates), then answers each request with the entry's index, or
//! with the error for its own update when the state refused just that one.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};
use trunkline_core::{
    inbound::{InboundCommand, InboundResponse, RegistrationUpdate, MAX_UPDATES_PER_COMMAND},
    Command, Response,
};

use crate::{cluster::Cluster, error::ClusterError};

/// Registrations waiting for a write; beyond it new ones are refused as overload.
pub const QUEUE_CAPACITY: usize = 20_000;
/// Longest a request waits for its batch to be written.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

struct Queued {
    update: RegistrationUpdate,
    reply: oneshot::Sender<Result<u64, ClusterError>>,
}

pub struct Registrar {
    queue: mpsc::Sender<Queued>,
}

impl Registrar {
    /// Starts the writer task; it ends when the registrar is dropped.
    pub fn start(cluster: Arc<Cluster>) -> Arc<Registrar> {
        let (queue, mut receiver) = mpsc::channel::<Queued>(QUEUE_CAPACITY);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_UPDATES_PER_COMMAND {
                    match receiver.try_recv() {
                        Ok(queued) => batch.push(queued),
                        Err(_) => break,
                    }
                }
                write(&cluster, batch).await;
            }
        });
        Arc::new(Registrar { queue })
    }

    /// Queues one update and waits until the batch holding it is applied.
    pub async fn report(&self, update: RegistrationUpdate) -> Result<u64, ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Queued { update, reply })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => ClusterError::Unavailable(format!(
                    "this node has {QUEUE_CAPACITY} registrations waiting to be written; retry \
                     shortly or report through another node"
                )),
                mpsc::error::TrySendError::Closed(_) => {
                    ClusterError::Unavailable("the node is shutting down".to_owned())
                }
            })?;
        match tokio::time::timeout(REPORT_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClusterError::Unavailable(
                "the node stopped before the registration was written".to_owned(),
            )),
            Err(_) => Err(ClusterError::DeadlineExceeded(format!(
                "the registration was not written within {REPORT_TIMEOUT:?}; it may or may not \
                 have been applied"
            ))),
        }
    }
}

async fn write(cluster: &Cluster, batch: Vec<Queued>) {
    let (updates, replies): (Vec<RegistrationUpdate>, Vec<_>) = batch
        .into_iter()
        .map(|queued| (queued.update, queued.reply))
        .unzip();
    let count = updates.len();
    let written = cluster
        .write(Command::Inbound(InboundCommand::Register {
            bindings: updates,
        }))
        .await;
    match written {
        Ok((Response::Inbound(InboundResponse::Registered { rejected, .. }), index)) => {
            let mut refused: Vec<Option<trunkline_core::Error>> = vec![None; count];
            for rejection in rejected {
                if let Some(slot) = usize::try_from(rejection.index)
                    .ok()
                    .and_then(|position| refused.get_mut(position))
                {
                    *slot = Some(rejection.error);
                }
            }
            for (reply, refusal) in replies.into_iter().zip(refused) {
                let _ = reply.send(match refusal {
                    Some(error) => Err(ClusterError::Domain(error)),
                    None => Ok(index),
                });
            }
        }
        Ok((other, _)) => {
            let error = ClusterError::internal(format!("unexpected reply to Register: {other:?}"));
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
