//! `loadgen pg`: the lookups `loadgen route` makes, done by PostgreSQL holding the same decks
//! (`loadgen load-decks --pg`): [`LPM_QUERY`] prepared once per connection, then run with the
//! `text[]` of every prefix of the number (Bind, Execute, Sync: one round trip), the carriers
//! ordered by price client-side. One query per connection at a time.

use std::sync::Arc;

use anyhow::Context;

use crate::loadgen::{
    cli::{self, NumbersArgs, RunArgs},
    decks::{prefixes_of, LPM_QUERY},
    driver::{CallError, Outcome, Request},
    histogram::Latencies,
    postgres::{text_array, PgConnection, TEXT_ARRAY_OID},
};

/// The prepared statement's name.
const STATEMENT: &str = "lpm";

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The PostgreSQL server, `HOST:PORT` (trust authentication).
    #[arg(long, value_parser = cli::address)]
    pub addr: String,
    #[arg(long, default_value = "postgres")]
    pub user: String,
    #[arg(long, default_value = "postgres")]
    pub db: String,
    #[command(flatten)]
    pub numbers: NumbersArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

struct PgLookup {
    connection: PgConnection,
    numbers: Arc<[String]>,
}

impl Request for PgLookup {
    async fn send(&mut self, index: u64) -> Result<Outcome, CallError> {
        let number = &self.numbers[(index % self.numbers.len() as u64) as usize];
        let prefixes = text_array(&prefixes_of(number.trim_start_matches('+')));
        let rows = self
            .connection
            .execute(STATEMENT, &[Some(prefixes.as_bytes())])
            .await
            .map_err(|error| CallError::new("postgres", error))?;
        // The carriers by price, as a router would order them: carrier, prefix, rate, fee.
        let mut priced: Vec<(u64, &str)> = rows
            .iter()
            .filter_map(|row| {
                let carrier = row.first()?.as_deref()?;
                let rate = row.get(2)?.as_deref()?.parse().ok()?;
                Some((rate, carrier))
            })
            .collect();
        if priced.len() != rows.len() {
            return Err(CallError::new("deck", "a row without carrier or rate"));
        }
        priced.sort_unstable();
        Ok(if priced.is_empty() {
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
        let mut connection = PgConnection::connect(&args.addr, &args.user, &args.db)
            .await
            .with_context(|| format!("can't connect to PostgreSQL at {}", args.addr))?;
        connection
            .prepare(STATEMENT, LPM_QUERY, &[TEXT_ARRAY_OID])
            .await
            .context("can't prepare the LPM query (has `loadgen load-decks --pg` run?)")?;
        workers.push(PgLookup {
            connection,
            numbers: numbers.clone(),
        });
    }
    super::run_anchor(&args.run, "postgres-lpm", &args.addr, latencies, workers).await
}
