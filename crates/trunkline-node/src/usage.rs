//! Admissions of calls of tenants with usage limits, and their ends, batched into few Raft
//! entries (group commit, as `registrar.rs` does for registrations).
//!
//! A limited tenant's call is admitted only by the replicated state (`trunkline_core::usage`),
//! so no limit is exceeded however many nodes route at once. Admissions and ends are group
//! committed ([`crate::batch`]): thousands of calls a second cost a few entries each round
//! trip. A node that can't write (no quorum) answers with the error, and the lookup refuses the
//! call: limits fail closed.

use std::{sync::Arc, time::Duration};

use trunkline_core::{
    usage::{Admission, Admitted, CallEnd, Ended, UsageCommand, UsageResponse, MAX_PER_COMMAND},
    Command, Response,
};

use crate::{
    batch::{Kind, Queue},
    cluster::Cluster,
    error::ClusterError,
};

/// Longest a lookup waits for its admission: a proxy's INVITE can't wait longer.
pub const ADMIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest an end report waits for its write.
pub const END_TIMEOUT: Duration = Duration::from_secs(10);

struct Admit;

impl Kind for Admit {
    type Item = Admission;
    type Outcome = Admitted;
    const WHAT: &'static str = "admissions";
    const MAX_PER_COMMAND: usize = MAX_PER_COMMAND;
    fn command(items: Vec<Admission>) -> Command {
        Command::Usage(UsageCommand::Admit(items))
    }
    fn outcomes(response: Response, _index: u64) -> Option<Vec<Admitted>> {
        match response {
            Response::Usage(UsageResponse::Admitted(outcomes)) => Some(outcomes),
            _ => None,
        }
    }
}

struct End;

impl Kind for End {
    type Item = CallEnd;
    type Outcome = Ended;
    const WHAT: &'static str = "call ends";
    const MAX_PER_COMMAND: usize = MAX_PER_COMMAND;
    fn command(items: Vec<CallEnd>) -> Command {
        Command::Usage(UsageCommand::End(items))
    }
    fn outcomes(response: Response, _index: u64) -> Option<Vec<Ended>> {
        match response {
            Response::Usage(UsageResponse::Ended(outcomes)) => Some(outcomes),
            _ => None,
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
