//! `loadgen route`: RouteOutbound lookups against one node or spread over a cluster, as a
//! SIP proxy sends them: tenant `demo` (what `trunkline dev` seeds), a new call id each, the
//! number as dialled, and not a dry run unless asked (a real lookup also writes the call's
//! record through Raft).
//!
//! `--target grpc`: unary calls, `--streams` of them in flight on each connection (HTTP/2
//! multiplexing). `--target stream`: `--streams` RouteStream calls on each connection, each
//! keeping `--window` lookups in flight and matching answers to them by id, as they may come
//! back in any order.

use std::{collections::HashMap, sync::Arc};

use anyhow::Context;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use trunkline_api::v1::{
    self as proto, route_service_client::RouteServiceClient, route_stream_request,
    route_stream_response,
};

use crate::loadgen::{
    cli::{self, NumbersArgs, RunArgs},
    driver::{self, CallError, Clock, Outcome, Request, RunShape, Tally, REQUEST_TIMEOUT},
    histogram::Latencies,
};

/// Lookups a stream keeps in flight unless `--window` says otherwise.
pub const DEFAULT_WINDOW: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Unary RouteOutbound calls.
    Grpc,
    /// RouteOutbound requests on RouteStream calls.
    Stream,
}

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The nodes' client addresses, `HOST:PORT,...`; connections are spread over them in turn.
    #[arg(long, required = true, value_delimiter = ',', value_parser = cli::address)]
    pub addrs: Vec<String>,
    #[arg(long, value_enum, default_value_t = Target::Grpc)]
    pub target: Target,
    /// Per connection: unary calls in flight (grpc), or RouteStream calls (stream).
    #[arg(long, default_value_t = 1, value_parser = cli::in_flight)]
    pub streams: usize,
    /// Lookups in flight on each RouteStream call (stream only; default 10).
    #[arg(long, value_parser = cli::in_flight)]
    pub window: Option<usize>,
    /// The tenant the lookups are for.
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// Ask for dry runs (no admission, no call record), as `trunkctl route test` does.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub numbers: NumbersArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

impl Args {
    pub fn validate(&self) -> Result<(), String> {
        super::check_addresses(&self.addrs)?;
        if self.window.is_some() && self.target != Target::Stream {
            return Err("--window applies only to --target stream".to_owned());
        }
        Ok(())
    }
}

/// What every lookup of a run shares.
struct Lookups {
    numbers: Arc<[String]>,
    tenant: String,
    /// Call ids are `<prefix>-<index>`: the prefix is new each run, so runs against the same
    /// cluster never repeat a call id.
    call_id_prefix: String,
    dry_run: bool,
}

impl Lookups {
    fn request(&self, index: u64) -> proto::RouteOutboundRequest {
        let number = &self.numbers[(index % self.numbers.len() as u64) as usize];
        proto::RouteOutboundRequest {
            tenant: self.tenant.clone(),
            call_id: format!("{}-{index}", self.call_id_prefix),
            to: number.clone(),
            dry_run: self.dry_run,
            ..Default::default()
        }
    }
}

fn outcome(answer: &proto::RouteOutboundResponse) -> Outcome {
    if answer.legs.is_empty() {
        Outcome::Empty
    } else {
        Outcome::Found
    }
}

/// One unary lookup at a time on a shared connection.
struct UnaryLookup {
    client: RouteServiceClient<Channel>,
    lookups: Arc<Lookups>,
}

impl Request for UnaryLookup {
    async fn send(&mut self, index: u64) -> Result<Outcome, CallError> {
        let answer = self
            .client
            .route_outbound(self.lookups.request(index))
            .await?
            .into_inner();
        Ok(outcome(&answer))
    }
}

pub async fn exec(args: Args) -> anyhow::Result<()> {
    let numbers = args.numbers.read()?;
    let latencies = Latencies::new()?;
    let channels = super::grpc_connections(&args.addrs, args.run.connections).await?;
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let lookups = Arc::new(Lookups {
        numbers: numbers.into(),
        tenant: args.tenant.clone(),
        call_id_prefix: format!("loadgen-{started_ms}"),
        dry_run: args.dry_run,
    });
    let window = args.window.unwrap_or(DEFAULT_WINDOW);
    let shape = RunShape {
        backend: match args.target {
            Target::Grpc => "trunkline-route",
            Target::Stream => "trunkline-stream",
        }
        .to_owned(),
        target: args.addrs.join(","),
        connections: args.run.connections,
        streams_per_connection: args.streams,
        window_per_stream: (args.target == Target::Stream).then_some(window),
    };
    let label = args.run.label(&shape);
    let plan = args.run.plan();
    let result = match args.target {
        Target::Grpc => {
            let workers = channels
                .iter()
                .flat_map(|channel| {
                    (0..args.streams).map(|_| UnaryLookup {
                        client: RouteServiceClient::new(channel.clone()),
                        lookups: lookups.clone(),
                    })
                })
                .collect();
            driver::run(
                &label,
                shape,
                plan,
                &args.run.server_pids,
                latencies,
                workers,
            )
            .await?
        }
        Target::Stream => {
            let clock = Arc::new(Clock::new(plan, Instant::now()));
            let mut tasks = tokio::task::JoinSet::new();
            for channel in &channels {
                for _ in 0..args.streams {
                    let stream = Stream {
                        client: RouteServiceClient::new(channel.clone()),
                        lookups: lookups.clone(),
                        window,
                    };
                    let tally = Tally::new(latencies.clone());
                    let clock = clock.clone();
                    tasks.spawn(async move { (stream.run(clock, tally).await, ()) });
                }
            }
            driver::collect(
                &label,
                shape,
                plan,
                &args.run.server_pids,
                latencies,
                clock,
                tasks,
            )
            .await?
        }
    };
    super::print(&result).context("can't print the result")
}

/// One RouteStream call keeping up to `window` lookups in flight.
struct Stream {
    client: RouteServiceClient<Channel>,
    lookups: Arc<Lookups>,
    window: usize,
}

impl Stream {
    fn request(&self, index: u64) -> proto::RouteStreamRequest {
        proto::RouteStreamRequest {
            id: index,
            request: Some(route_stream_request::Request::RouteOutbound(
                self.lookups.request(index),
            )),
        }
    }

    /// Sends requests as the clock hands them out while fewer than `window` are unanswered,
    /// and records each answer against its request by id, until the window ends and every
    /// answer is in (or the stream breaks: what it owed counts as errors).
    async fn run(mut self, clock: Arc<Clock>, mut tally: Tally) -> Tally {
        // The first request goes into the stream before the call opens, so a server that
        // waits for a first request before answering the call's headers gets one.
        let Some(first) = clock.claim() else {
            return tally;
        };
        tokio::time::sleep_until(first.due).await;
        let (sender, receiver) = mpsc::channel(self.window);
        let mut pending = HashMap::with_capacity(self.window);
        if sender.send(self.request(first.index)).await.is_err() {
            return tally;
        }
        pending.insert(first.index, first);
        let mut answers = match self
            .client
            .route_stream(ReceiverStream::new(receiver))
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) => {
                tally.record(&first, Instant::now(), Err(status.into()));
                return tally;
            }
        };
        let mut next = None;
        let mut window_over = false;
        loop {
            if next.is_none() && !window_over && pending.len() < self.window {
                next = clock.claim();
                window_over = next.is_none();
            }
            let Some(due) = next.map(|ticket: driver::Ticket| ticket.due) else {
                if pending.is_empty() {
                    break;
                }
                // Nothing more to send: wait for what is owed.
                let answer = tokio::time::timeout(REQUEST_TIMEOUT, answers.message()).await;
                if !receive(answer, &mut pending, &mut tally) {
                    break;
                }
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep_until(due) => {
                    let Some(ticket) = next.take() else { continue };
                    // The channel holds at most `window` requests and fewer are pending, so
                    // this never waits; it fails only when the call has ended.
                    if sender.send(self.request(ticket.index)).await.is_err() {
                        tally.record(&ticket, Instant::now(), Err(CallError::new("stream", "the call ended")));
                        break;
                    }
                    pending.insert(ticket.index, ticket);
                }
                answer = tokio::time::timeout(REQUEST_TIMEOUT, answers.message()), if !pending.is_empty() => {
                    if !receive(answer, &mut pending, &mut tally) {
                        break;
                    }
                }
            }
        }
        drop(sender);
        tally
    }
}

/// Records one answer from a stream; false when the stream is over (ended, broke or went
/// silent), every request still pending then counted as an error.
fn receive(
    answer: Result<
        Result<Option<proto::RouteStreamResponse>, tonic::Status>,
        tokio::time::error::Elapsed,
    >,
    pending: &mut HashMap<u64, driver::Ticket>,
    tally: &mut Tally,
) -> bool {
    let now = Instant::now();
    let failure = match answer {
        Ok(Ok(Some(answer))) => {
            let Some(ticket) = pending.remove(&answer.id) else {
                tally.error(CallError::new(
                    "stream",
                    format!("an answer to id {} never asked", answer.id),
                ));
                return true;
            };
            let result = match answer.response {
                Some(route_stream_response::Response::RouteOutbound(answer)) => {
                    Ok(outcome(&answer))
                }
                Some(route_stream_response::Response::Error(error)) => Err(CallError::new(
                    format!("{:?}", tonic::Code::from(error.code as i32)),
                    error.message,
                )),
                other => Err(CallError::new(
                    "stream",
                    format!("an unexpected answer {other:?}"),
                )),
            };
            tally.record(&ticket, now, result);
            return true;
        }
        Ok(Ok(None)) => CallError::new("stream", "the server ended the stream with answers owed"),
        Ok(Err(status)) => status.into(),
        Err(_) => CallError::new(
            "timeout",
            format!("no answer on the stream for {REQUEST_TIMEOUT:?}"),
        ),
    };
    for (_, ticket) in pending.drain() {
        tally.record(&ticket, now, Err(failure.clone()));
    }
    false
}
