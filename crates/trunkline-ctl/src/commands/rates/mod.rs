//! `trunkctl rates ...`: carrier rate decks as CSV files.
//!
//! The file format is the one `trunkline_core::routing::RateCsvReader` reads and
//! `RateCsvWriter` writes, so `rates export` output imports again unchanged.

mod abort;
mod export;
mod import;
mod imports;

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
