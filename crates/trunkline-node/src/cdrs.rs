//! Call detail records on a node: made from a lookup's outcome or a call's end (and the route
//! token, which carries everything the lookup knew and every leg tried), and group committed
//! ([`crate::batch`]) into the replicated log, [`MAX_PER_COMMAND`] to an entry.
//!
//! A lookup never waits for its record: it is queued ([`Recorder::note`]) and the answer goes
//! out. Its record is lost only if this node dies within the batching window (at most
//! 50 ms: records nobody waits for linger that long for company), or, past
//! [`QUEUE_CAPACITY`](crate::batch::QUEUE_CAPACITY) records waiting, when the queue is full
//! (counted in [`Recorder::dropped`], logged). An end is acknowledged to the proxy only after its
//! record is applied ([`Recorder::record`]): losing any node afterwards loses nothing, and the
//! end alone makes a whole record of a routed call.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};
use std::time::Duration;

use trunkline_api::v1 as proto;
use trunkline_core::{
    cdr::{bill, Cdr, CdrCommand, CdrResponse, Disposition, Recorded, MAX_PER_COMMAND},
    routing::{classify, normalize, DestinationClass},
    Command, Response,
};

use crate::{
    batch::{Kind, Queue},
    cluster::Cluster,
    error::ClusterError,
    route_token::RouteToken,
    routing_view::RoutingView,
};

/// Longest an end report waits for its record to be applied.
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(10);

struct Record;

impl Kind for Record {
    type Item = Cdr;
    type Outcome = Recorded;
    const WHAT: &'static str = "call records";
    const MAX_PER_COMMAND: usize = MAX_PER_COMMAND;
    /// A lookup's record (nobody waits for it) waits up to this long for others: at a few
    /// hundred calls a second spread over the nodes, one entry per 50 ms per node instead of
    /// one per call or two, each replicated and flushed on every node. What it costs: a node
    /// that dies loses the lookups' records of its last 50 ms (an end's record is never
    /// lost: its report waits for it, and ends the lingering).
    const LINGER: Duration = Duration::from_millis(50);
    /// A call-end batch's reports are queued one by one as the request's task reaches each
    /// (a few µs apart): without the window the writer takes the first alone and the rest as
    /// a second entry. What it costs: an end's write waits this much longer.
    const COMPANY: Duration = Duration::from_millis(1);
    fn command(records: Vec<Cdr>) -> Command {
        Command::Cdr(CdrCommand::Record(records))
    }
    fn outcomes(response: Response, _index: u64) -> Option<Vec<Recorded>> {
        match response {
            Response::Cdr(CdrResponse::Recorded(outcomes)) => Some(outcomes),
            _ => None,
        }
    }
}

/// This node's writer of call records.
pub struct Recorder {
    queue: Queue<Record>,
    dropped: AtomicU64,
}

impl Recorder {
    /// Starts the writer task; it ends when the recorder is dropped.
    pub fn start(cluster: Arc<Cluster>) -> Arc<Recorder> {
        Arc::new(Recorder {
            queue: Queue::start(cluster),
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues a lookup's record without waiting for it.
    pub fn note(&self, record: Cdr) {
        // A record the state would refuse would fail its whole batch: it is dropped here.
        if let Err(error) = record.validate() {
            tracing::warn!(%error, call = %record.call_id, "a call record was invalid and dropped");
            return;
        }
        if let Err(error) = self.queue.push(record) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(%error, dropped, "a lookup's call record was dropped");
            }
        }
    }

    /// Writes a call's record and waits until it is applied.
    pub async fn record(&self, record: Cdr) -> Result<Recorded, ClusterError> {
        record
            .validate()
            .map_err(|error| ClusterError::Domain(error.into()))?;
        self.queue.submit(record, RECORD_TIMEOUT).await
    }

    /// Lookup records this node dropped because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// How a lookup ended, for its record.
pub struct LookupEnding<'a> {
    pub normalized: &'a str,
    pub class: Option<DestinationClass>,
    /// `None` for a routed call.
    pub refusal: Option<&'a proto::Refusal>,
    pub now_ms: u64,
}

/// The record of a lookup: in progress when routed, final when refused.
pub fn lookup_record(call_id: &str, token: &RouteToken, ending: &LookupEnding<'_>) -> Cdr {
    let (disposition, reason, sip_code) = match ending.refusal {
        None => (Disposition::InProgress, String::new(), 0),
        Some(refusal) => {
            let reason = trunkline_api::convert::refusal_reason_name(refusal.reason);
            let disposition = if reason.starts_with("policy-") {
                Disposition::Blocked
            } else if reason.starts_with("limit-") {
                Disposition::Refused
            } else {
                Disposition::NoRoute
            };
            let reason = if refusal.scope.is_empty() {
                reason
            } else {
                format!("{reason} ({})", refusal.scope)
            };
            (
                disposition,
                reason,
                u16::try_from(refusal.sip_code).unwrap_or(0),
            )
        }
    };
    Cdr {
        normalized: ending.normalized.to_owned(),
        class: ending.class,
        start_ms: ending.now_ms,
        disposition,
        reason,
        sip_code,
        ..from_token(call_id, token)
    }
}

/// What the proxy reported at a call's end, checked.
pub struct CallEnding {
    pub answered: bool,
    pub answer_ms: Option<u64>,
    pub end_ms: u64,
}

/// The whole record of a routed call, from its latest token and its end: every leg the token
/// recorded, the ending read from the last leg, and the talk time billed at the price of the
/// leg offered last.
pub fn end_record(view: &RoutingView, call_id: &str, token: &RouteToken, end: &CallEnding) -> Cdr {
    let last_code = token.legs.last().map(|leg| leg.sip_code);
    let disposition = Disposition::of_end(end.answered, last_code);
    let talk_ms = end
        .answer_ms
        .map_or(0, |answer| end.end_ms.saturating_sub(answer));
    let (billed_ms, cost_micros) = match (&token.offered, end.answered) {
        (Some(offered), true) => bill(
            talk_ms,
            offered.rate_micros_per_minute,
            offered.connect_fee_micros,
        ),
        _ => (0, 0),
    };
    // The number as routed, with the tenant's dial plan now (the dialled number is kept as it
    // was whatever happens).
    let routed = view
        .applied
        .state
        .routing()
        .tenant(&token.tenant)
        .and_then(|tenant| {
            let normalized = normalize(&token.dialled, &tenant.dial_plan).ok()?;
            let class = classify(&normalized, &tenant.dial_plan, &view.high_risk);
            Some((normalized.to_string(), class))
        });
    let (normalized, class) = routed.map_or((String::new(), None), |(n, c)| (n, Some(c)));
    Cdr {
        normalized,
        class,
        answer_ms: end.answer_ms.filter(|_| end.answered),
        end_ms: Some(end.end_ms),
        disposition,
        sip_code: if end.answered {
            0
        } else {
            last_code.unwrap_or(0)
        },
        legs: token.legs.clone(),
        billed_ms,
        cost_micros,
        ..from_token(call_id, token)
    }
}

/// What every record of a call takes from its token; the rest is the lookup's or the end's.
fn from_token(call_id: &str, token: &RouteToken) -> Cdr {
    Cdr {
        call_id: call_id.to_owned(),
        tenant: token.tenant.clone(),
        extension: token.extension.clone(),
        source: token.source,
        from: token.from.clone(),
        dialled: token.dialled.clone(),
        normalized: String::new(),
        class: None,
        node: token.node,
        start_ms: token.issued_ms,
        answer_ms: None,
        end_ms: None,
        disposition: Disposition::InProgress,
        reason: String::new(),
        sip_code: 0,
        legs: Vec::new(),
        billed_ms: 0,
        cost_micros: 0,
    }
}
