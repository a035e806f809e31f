//! `loadgen`: Trunkline's routing and writes measured against stores that do the same work
//! (issue 15): RouteOutbound (unary gRPC or the RouteStream API, one node or spread over a
//! cluster) against Redis (an `MGET` of every prefix of the number) and PostgreSQL (a
//! prepared `DISTINCT ON` longest-prefix query) holding the same decks, and SetSetting
//! against etcd's Put, each a quorum write on three members.
//!
//! - `driver.rs`: one run — workers, closed or open loop (`schedule.rs`), warm-up, the
//!   measured window, latencies in HDR histograms (`histogram.rs`), server CPU and memory from
//!   `/proc` (`process.rs`), and the [`RunResult`] printed as one JSON line;
//! - `resp.rs`, `postgres.rs`, `etcd.rs`: the small clients of the anchors, hand-rolled (RESP2,
//!   the PostgreSQL v3 protocol, etcd's protobuf messages over raw gRPC) so the comparison adds
//!   no client library of its own cost;
//! - `decks.rs`: the decks exported from a node, their layouts in Redis and PostgreSQL, and
//!   the numbers every backend looks up;
//! - `commands/`: one file per subcommand; `cli.rs` the flags they share.
//!
//! The perf script (`perf/run.sh` in this crate) starts every server on loopback, loads the
//! decks, runs each pair and writes docs/performance.md; that page says what each number means.

pub mod cli;
pub mod commands;
pub mod decks;
pub mod driver;
pub mod etcd;
pub mod histogram;
pub mod postgres;
pub mod process;
pub mod resp;
pub mod schedule;

pub use driver::RunResult;

use cli::Command;

/// Runs a parsed, validated command line.
pub async fn exec(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Route(args) => commands::route::exec(args).await,
        Command::Redis(args) => commands::redis::exec(args).await,
        Command::Pg(args) => commands::pg::exec(args).await,
        Command::Write(args) => commands::write::exec(args).await,
        Command::LoadDecks(args) => commands::load_decks::exec(args).await,
        Command::Cluster(args) => commands::cluster::exec(args).await,
        Command::DeckMemory(args) => commands::deck_memory::exec(args).await,
        Command::Report(args) => commands::report::exec(args).await,
    }
}
