//! Registrations from edge proxies, batched into few Raft entries.
//!
//! Edges refresh registrations often (thousands a second across a carrier), and one Raft
//! entry per refresh would bound the rate by the log's round trip. Each `ReportRegistration`
//! is queued here; one task writes whatever has queued while the previous write was in flight
//! as a single `Register` command (group commit, at most
//! [`MAX_UPDATES_PER_COMMAND`] updates), then answers each request with the entry's index, or
//! with the error for its own update when the state refused just that one.

use std::{sync::Arc, time::Duration};

use trunkline_core::{
    inbound::{InboundCommand, InboundResponse, RegistrationUpdate, MAX_UPDATES_PER_COMMAND},
    Command, Error, Response,
};

use crate::{
    batch::{Kind, Queue},
    cluster::Cluster,
    error::ClusterError,
};

/// Longest a request waits for its batch to be written.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

struct Register;

impl Kind for Register {
    type Item = RegistrationUpdate;
    /// The entry's index, or why the state refused this one update.
    type Outcome = Result<u64, Error>;
    const WHAT: &'static str = "registrations";
    const MAX_PER_COMMAND: usize = MAX_UPDATES_PER_COMMAND;
    fn command(bindings: Vec<RegistrationUpdate>) -> Command {
        Command::Inbound(InboundCommand::Register { bindings })
    }
    fn outcomes(response: Response, index: u64) -> Option<Vec<Result<u64, Error>>> {
        let Response::Inbound(InboundResponse::Registered { applied, rejected }) = response else {
            return None;
        };
        let count = usize::try_from(applied).ok()?.checked_add(rejected.len())?;
        let mut outcomes: Vec<Result<u64, Error>> = vec![Ok(index); count];
        for rejection in rejected {
            if let Some(slot) = usize::try_from(rejection.index)
                .ok()
                .and_then(|position| outcomes.get_mut(position))
            {
                *slot = Err(rejection.error);
            }
        }
        Some(outcomes)
    }
}

pub struct Registrar {
    queue: Queue<Register>,
}

impl Registrar {
    /// Starts the writer task; it ends when the registrar is dropped.
    pub fn start(cluster: Arc<Cluster>) -> Arc<Registrar> {
        Arc::new(Registrar {
            queue: Queue::start(cluster),
        })
    }

    /// Queues one update and waits until the batch holding it is applied.
    pub async fn report(&self, update: RegistrationUpdate) -> Result<u64, ClusterError> {
        self.queue
            .submit(update, REPORT_TIMEOUT)
            .await?
            .map_err(ClusterError::Domain)
    }
}
