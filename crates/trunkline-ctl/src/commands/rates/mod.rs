//! `trunkctl rates ...`: carrier rate decks as CSV files.
//!
//! The file format is the one `trunkline_core::routing::RateCsvReader` reads and
//! `RateCsvWriter` writes, so `rates export` output imports again unchanged.

mod export;
mod import;

use serde::Serialize;
use trunkline_client::{proto, Retry};
use trunkline_core::{
    routing::{format_unix_ms, RoutingCommand},
    Error, FieldError,
};

use crate::{
    commands::{check, config::ReadFlags},
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Load a carrier's deck from a CSV file: checked whole first, then applied at once.
    Import(import::Args),
    /// Write a carrier's deck as CSV.
    Export(export::Args),
    /// List the imports staged now (id, carrier, rows, idle time).
    ///
    /// Times are the log's; an import idle for a minute may be evicted by a new import when
    /// all staging slots are taken. Owner tokens are never shown.
    Imports {
        #[command(flatten)]
        read: ReadFlags,
    },
    /// Drop a staged import now, with the owner token `rates import` printed.
    ///
    /// An import nobody aborts still frees its slot: a new import may evict it once it has
    /// been idle for a minute, and it expires after 30 minutes.
    Abort {
        /// The import id `rates import` printed (`rates imports` lists them).
        import: String,
        /// The import's owner token, printed by `rates import` beside the id.
        #[arg(long)]
        owner: String,
    },
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Import(args) => import::exec(args, context).await,
        Command::Export(args) => export::exec(args, context).await,
        Command::Imports { read } => imports(context, read).await,
        Command::Abort { import, owner } => abort(context, import, owner).await,
    }
}

/// `rates imports`: the imports staged now, with how long each has been idle.
async fn imports(context: &Context, read: ReadFlags) -> Result<(), Failure> {
    let request = proto::ListImportsRequest {
        consistency: Some(read.into()),
    };
    let response = context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.list_imports(request).await },
        )
        .await?;
    #[derive(Serialize)]
    struct Import {
        import_id: String,
        carrier: String,
        staged_rows: u64,
        started_ms: u64,
        last_chunk_ms: u64,
        idle_ms: u64,
    }
    let imports: Vec<Import> = response
        .imports
        .into_iter()
        .map(|import| Import {
            import_id: import.import_id,
            carrier: import.carrier,
            staged_rows: import.staged_rows,
            started_ms: import.started_ms,
            last_chunk_ms: import.last_chunk_ms,
            idle_ms: import.idle_ms,
        })
        .collect();
    output::emit(context.format, &imports, |imports| {
        if imports.is_empty() {
            return "No imports are staged.".to_owned();
        }
        output::columns(
            imports,
            &[
                ("IMPORT", &|import| import.import_id.clone()),
                ("CARRIER", &|import| import.carrier.clone()),
                ("ROWS", &|import| import.staged_rows.to_string()),
                ("STARTED", &|import| format_unix_ms(import.started_ms)),
                ("LAST CHUNK", &|import| format_unix_ms(import.last_chunk_ms)),
                ("IDLE", &|import| duration::format_age(import.idle_ms)),
            ],
        )
    })
}

/// `rates abort IMPORT --owner TOKEN`: drops a staged import now and frees its slot. Only the
/// client that started an import holds its owner token; `rates import` prints both on
/// standard error when it starts, so an operator can abort an import whose client hung.
async fn abort(context: &Context, import_id: String, owner: String) -> Result<(), Failure> {
    let command = RoutingCommand::AbortRates {
        import_id: import_id.clone(),
        owner: owner.clone(),
    };
    command.validate().map_err(|error| match error {
        Error::InvalidField { field, reason } => {
            check::field_failure("IMPORT", "")(FieldError::new(field, reason))
        }
        other => Failure::Usage(other.to_string()),
    })?;
    let request = proto::AbortRatesRequest {
        import_id: import_id.clone(),
        owner,
    };
    let response = context
        .admin(Retry::NotSent, request, |mut admin, request| async move {
            admin.abort_rates(request).await
        })
        .await?;
    #[derive(Serialize)]
    struct Aborted {
        import_id: String,
        staged_rows: u64,
        applied_index: u64,
    }
    let aborted = Aborted {
        import_id,
        staged_rows: response.staged_rows,
        applied_index: response.applied_index,
    };
    output::emit(context.format, &aborted, |aborted| {
        format!(
            "Aborted import {} ({} staged rows dropped; log index {})",
            aborted.import_id, aborted.staged_rows, aborted.applied_index
        )
    })
}
