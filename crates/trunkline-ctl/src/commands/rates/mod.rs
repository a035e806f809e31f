//! `trunkctl rates ...`: carrier rate decks as CSV files.
//!
//! The file format is the one `trunkline_core::routing::RateCsvReader` reads and
//! `RateCsvWriter` writes, so `rates export` output imports again unchanged.

mod abort;
mod export;
mod import;
mod imports;

use trunkline_client::proto;
use trunkline_core::routing::Rate;

use crate::context::{Context, Failure};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Load a carrier's deck from a CSV file: checked whole first, then applied at once.
    Import(import::Args),
    /// Write a carrier's deck as CSV.
    Export(export::Args),
    /// List the imports staged now (id, carrier, rows, idle time).
    Imports(imports::Args),
    /// Drop a staged import now, with the owner token `rates import` printed.
    Abort(abort::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Import(args) => import::exec(args, context).await,
        Command::Export(args) => export::exec(args, context).await,
        Command::Imports(args) => imports::exec(args, context).await,
        Command::Abort(args) => abort::exec(args, context).await,
    }
}

/// On the wire a 0 date means "always" / "never ends".
fn rate_to_proto(rate: Rate) -> proto::Rate {
    proto::Rate {
        prefix: rate.prefix,
        rate_micros_per_minute: rate.rate_micros_per_minute,
        connect_fee_micros: rate.connect_fee_micros,
        description: rate.description,
        effective_from_ms: rate.effective_from_ms.unwrap_or(0),
        effective_until_ms: rate.effective_until_ms.unwrap_or(0),
    }
}

fn rate_from_proto(rate: proto::Rate) -> Rate {
    Rate {
        prefix: rate.prefix,
        rate_micros_per_minute: rate.rate_micros_per_minute,
        connect_fee_micros: rate.connect_fee_micros,
        description: rate.description,
        effective_from_ms: (rate.effective_from_ms != 0).then_some(rate.effective_from_ms),
        effective_until_ms: (rate.effective_until_ms != 0).then_some(rate.effective_until_ms),
    }
}
