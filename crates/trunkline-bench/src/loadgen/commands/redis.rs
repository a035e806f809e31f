//! `loadgen redis`: the lookups `loadgen route` makes, done by a Redis client holding the
//! same decks (`loadgen load-decks --redis`): one `MGET` of the keys of every prefix of the
//! number, then the longest prefix per carrier and the carriers by price, client-side. One
//! request per connection at a time, no pipelining: what a routing process asking Redis per
//! call would do.

use std::sync::Arc;

use anyhow::Context;

use crate::loadgen::{
    cli::{self, NumbersArgs, RunArgs},
    decks::{longest_per_carrier, prefixes_of, REDIS_KEY_PREFIX},
    driver::{CallError, Outcome, Request},
    histogram::Latencies,
    resp::RedisConnection,
};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The Redis server, `HOST:PORT`.
    #[arg(long, value_parser = cli::address)]
    pub addr: String,
    #[command(flatten)]
    pub numbers: NumbersArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

struct RedisLookup {
    connection: RedisConnection,
    numbers: Arc<[String]>,
}

impl Request for RedisLookup {
    async fn send(&mut self, index: u64) -> Result<Outcome, CallError> {
        let number = &self.numbers[(index % self.numbers.len() as u64) as usize];
        let digits = number.trim_start_matches('+');
        let keys: Vec<String> = prefixes_of(digits)
            .into_iter()
            .map(|prefix| format!("{REDIS_KEY_PREFIX}{prefix}"))
            .collect();
        let hits = self
            .connection
            .mget(&keys)
            .await
            .map_err(|error| CallError::new("redis", error))?;
        let matches = longest_per_carrier(&hits).map_err(|error| CallError::new("deck", error))?;
        Ok(if matches.is_empty() {
            Outcome::Empty
        } else {
            Outcome::Found
        })
    }
}

pub async fn exec(args: Args) -> anyhow::Result<()> {
    let numbers: Arc<[String]> = args.numbers.read()?.into();
    let latencies = Latencies::new()?;
    let mut workers = Vec::with_capacity(args.run.connections);
    for _ in 0..args.run.connections {
        let connection = RedisConnection::connect(&args.addr)
            .await
            .with_context(|| format!("can't connect to Redis at {}", args.addr))?;
        workers.push(RedisLookup {
            connection,
            numbers: numbers.clone(),
        });
    }
    super::run_anchor(&args.run, "redis-lpm", &args.addr, latencies, workers).await
}
