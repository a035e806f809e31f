//! `trunkctl rates abort IMPORT --owner TOKEN`: drop a staged import now and free its slot.
//!
//! Only the client that started an import holds its owner token; `rates import` prints both
//! on standard error when it starts, so an operator can abort an import whose client hung.
//! An import nobody aborts still frees its slot: a new import may evict it once it has been
//! idle for a minute, and it expires after 30 minutes.

use serde::Serialize;
use trunkline_client::{proto, Retry};
use trunkline_core::routing::RoutingCommand;

use crate::{
    commands::check,
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// The import id `rates import` printed (`rates imports` lists them).
    import: String,
    /// The import's owner token, printed by `rates import` beside the id.
    #[arg(long)]
    owner: String,
}

#[derive(Serialize)]
struct Aborted {
    import_id: String,
    staged_rows: u64,
    applied_index: u64,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    let command = RoutingCommand::AbortRates {
        import_id: args.import.clone(),
        owner: args.owner.clone(),
    };
    command.validate().map_err(|error| match error {
        trunkline_core::Error::InvalidField { field, reason } => {
            let flag = if field == "owner" {
                "--owner"
            } else {
                "IMPORT"
            };
            check::usage(flag, reason)
        }
        other => Failure::Usage(other.to_string()),
    })?;
    let request = proto::AbortRatesRequest {
        import_id: args.import,
        owner: args.owner,
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.abort_rates(request).await }
        })
        .await?;
    let aborted = Aborted {
        import_id: request.import_id,
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
