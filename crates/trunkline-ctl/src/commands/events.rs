//! `trunkctl events [--follow] [--after INDEX] [--recent N]`: the cluster's event log (gateway
//! health changes), one line per event, or one JSON object per line with `-o json`.
//!
//! Events carry the log index of the entry that made them, the same on every node, so a
//! stream that breaks is resumed after the last index printed, on whichever endpoint answers
//! (the client fails over), without repeating or skipping events the nodes still hold. With
//! `--follow` a stream that ends (the node stopping) is resumed the same way. Reconnecting is
//! bounded: [`RECONNECT_ATTEMPTS`] tries in a row, backing off from
//! [`FIRST_RECONNECT_DELAY`] to [`MAX_RECONNECT_DELAY`]. The first request is not retried
//! beyond the client's own failover: if no node answers it, the endpoints are likely wrong.

use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Streaming};
use trunkline_client::{proto, ClientError, Retry};
use trunkline_core::events::{EVENT_LOG_CAPACITY, MAX_RECENT_EVENTS};

use crate::{
    commands::{check, view},
    context::{Context, Failure},
    output,
};

/// Reconnections tried in a row before giving up.
const RECONNECT_ATTEMPTS: u32 = 10;
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(200);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// A stream that delivered an event or stayed open this long was a working connection: the
/// reconnection attempts start over after it breaks.
const STREAM_WORKED_AFTER: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Args {
    /// Keep printing events as they happen, until interrupted (Ctrl-C).
    #[arg(long)]
    follow: bool,
    /// Start after this log index (the `#INDEX` of the last event you saw).
    #[arg(long, value_name = "INDEX", conflicts_with = "recent")]
    after: Option<u64>,
    /// First print up to this many of the latest events (0: only new ones, with --follow).
    #[arg(long, value_name = "N", default_value_t = 20)]
    recent: u32,
}

/// Where the next request starts.
#[derive(Clone, Copy)]
struct Position {
    /// The last index printed (or given with --after).
    after_index: u64,
    /// Latest events to send first; only until an event has been printed.
    recent: u32,
}

/// How a stream stopped, when it did not fail on our side.
enum StreamEnd {
    /// The node ended it: the backlog is done, or (following) the node is stopping.
    Closed,
    /// The connection broke or the node failed mid-stream.
    Broken(String),
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    if args.recent > MAX_RECENT_EVENTS {
        return Err(check::usage(
            "--recent",
            format!("must be at most {MAX_RECENT_EVENTS}"),
        ));
    }
    if args.after == Some(0) {
        return Err(check::usage(
            "--after",
            "must be a positive log index; leave it out to start from the latest events",
        ));
    }
    let mut position = Position {
        after_index: args.after.unwrap_or(0),
        recent: if args.after.is_some() { 0 } else { args.recent },
    };
    let mut stream = open(context, position, args.follow).await?;
    let mut failed_attempts = 0;
    loop {
        let opened = Instant::now();
        let before = position.after_index;
        let end = print_stream(&mut stream, &mut position, context).await?;
        let why = match end {
            StreamEnd::Closed if !args.follow => return Ok(()),
            StreamEnd::Closed => "the node closed the event stream (it may be stopping)".to_owned(),
            StreamEnd::Broken(error) => format!("the event stream broke ({error})"),
        };
        // A stream that ends at once without an event counts as a failed attempt, so a node
        // that accepts and drops every stream can't keep trunkctl reconnecting forever.
        if position.after_index != before || opened.elapsed() >= STREAM_WORKED_AFTER {
            failed_attempts = 0;
        } else {
            failed_attempts += 1;
        }
        let resume = |words: &str| match position.after_index {
            0 => String::new(),
            index => format!("{words} #{index}"),
        };
        output::note(&format!(
            "{why}; reconnecting{}",
            resume(" to resume after")
        ));
        stream = reconnect(context, position, args.follow, &mut failed_attempts, why).await?;
        output::note(&format!("reconnected{}", resume("; resuming after")));
    }
}

async fn open(
    context: &Context,
    position: Position,
    follow: bool,
) -> Result<Streaming<proto::Event>, ClientError> {
    let request = proto::WatchEventsRequest {
        after_index: position.after_index,
        recent: position.recent,
        follow,
    };
    context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.watch_events(request).await },
        )
        .await
}

/// Prints events until the stream stops; fails only when the output does.
async fn print_stream(
    stream: &mut Streaming<proto::Event>,
    position: &mut Position,
    context: &Context,
) -> Result<StreamEnd, Failure> {
    loop {
        let event = match stream.message().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(StreamEnd::Closed),
            Err(status) => {
                return Ok(StreamEnd::Broken(format!(
                    "{}: {}",
                    trunkline_client::code_name(status.code()),
                    status.message()
                )))
            }
        };
        // A node may resend what another already sent if its log is behind: skip it.
        if event.index <= position.after_index {
            continue;
        }
        if event.missed_before {
            output::warning(&format!(
                "events before #{} were dropped by the node (it keeps the latest \
                 {EVENT_LOG_CAPACITY}); some changes are missing",
                event.index
            ));
        }
        position.after_index = event.index;
        position.recent = 0;
        output::emit_line(context.format, &view::Event::from(&event), view::event_line)?;
    }
}

/// Opens the stream again after `position`, backing off between attempts; the attempts
/// already failed in a row are in `failed_attempts`, and `problem` is why the last ended.
async fn reconnect(
    context: &Context,
    position: Position,
    follow: bool,
    failed_attempts: &mut u32,
    mut problem: String,
) -> Result<Streaming<proto::Event>, Failure> {
    loop {
        if *failed_attempts >= RECONNECT_ATTEMPTS {
            return Err(lost(position, follow, *failed_attempts, &problem));
        }
        tokio::time::sleep(reconnect_delay(*failed_attempts)).await;
        match open(context, position, follow).await {
            Ok(stream) => return Ok(stream),
            Err(error) => {
                *failed_attempts += 1;
                let retry = worth_retrying(&error);
                problem = match Failure::from(error) {
                    Failure::Request(message) => message,
                    other => format!("{other:?}"),
                };
                if !retry {
                    return Err(lost(position, follow, *failed_attempts, &problem));
                }
            }
        }
    }
}

/// The failure when reconnecting gave up, with how to resume by hand.
fn lost(position: Position, follow: bool, attempts: u32, problem: &str) -> Failure {
    let follow = if follow { " --follow" } else { "" };
    let resume = match position.after_index {
        0 => String::new(),
        index => format!("; resume with `trunkctl events{follow} --after {index}`"),
    };
    Failure::Request(format!(
        "lost the event stream and could not reconnect in {attempts} attempts{resume}\n\
         The last attempt: {problem}"
    ))
}

/// The pause before a reconnection attempt after `failed_attempts` failed ones: doubling from
/// [`FIRST_RECONNECT_DELAY`] up to [`MAX_RECONNECT_DELAY`].
fn reconnect_delay(failed_attempts: u32) -> Duration {
    FIRST_RECONNECT_DELAY
        .saturating_mul(1_u32 << failed_attempts.min(16))
        .min(MAX_RECONNECT_DELAY)
}

/// Whether another attempt may succeed: no node answered, or the one that did is stopping,
/// busy or cut off. A refusal of the request itself will not change.
fn worth_retrying(error: &ClientError) -> bool {
    match error {
        ClientError::Unreachable { .. } => true,
        ClientError::Status { status, .. } => matches!(
            status.code(),
            Code::Unavailable
                | Code::Unknown
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Internal
        ),
        ClientError::NoEndpoints | ClientError::BadEndpoint { .. } | ClientError::BadToken => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnection_backs_off_from_a_fifth_of_a_second_to_two_seconds() {
        let delays: Vec<u128> = (0..RECONNECT_ATTEMPTS)
            .map(|attempt| reconnect_delay(attempt).as_millis())
            .collect();
        assert_eq!(
            delays,
            [200, 400, 800, 1_600, 2_000, 2_000, 2_000, 2_000, 2_000, 2_000]
        );
        assert_eq!(reconnect_delay(u32::MAX), MAX_RECONNECT_DELAY);
    }
}
