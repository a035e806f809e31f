//! `trunkctl rates imports`: the rate imports staged now, with how long each has been idle.
//!
//! Times are the log's. An import idle for a minute may be evicted by a new import when all
//! staging slots are taken; owner tokens are never shown.

use serde::Serialize;
use trunkline_client::{proto, Retry};
use trunkline_core::routing::format_unix_ms;

use crate::{
    commands::config::ReadFlags,
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    read: ReadFlags,
}

#[derive(Serialize)]
struct Import {
    import_id: String,
    carrier: String,
    staged_rows: u64,
    started_ms: u64,
    last_chunk_ms: u64,
    idle_ms: u64,
}

impl From<proto::StagedImport> for Import {
    fn from(import: proto::StagedImport) -> Self {
        Import {
            import_id: import.import_id,
            carrier: import.carrier,
            staged_rows: import.staged_rows,
            started_ms: import.started_ms,
            last_chunk_ms: import.last_chunk_ms,
            idle_ms: import.idle_ms,
        }
    }
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    let request = proto::ListImportsRequest {
        consistency: Some(args.read.into()),
    };
    let response = context
        .client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.list_imports(request).await
        })
        .await?;
    let imports: Vec<Import> = response.imports.into_iter().map(Import::from).collect();
    output::emit(context.format, &imports, |imports| table(imports))
}

fn table(imports: &[Import]) -> String {
    if imports.is_empty() {
        return "No imports are staged.".to_owned();
    }
    let rows: Vec<Vec<String>> = imports
        .iter()
        .map(|import| {
            vec![
                import.import_id.clone(),
                import.carrier.clone(),
                import.staged_rows.to_string(),
                format_unix_ms(import.started_ms),
                format_unix_ms(import.last_chunk_ms),
                duration::format_age(import.idle_ms),
            ]
        })
        .collect();
    output::table(
        &["IMPORT", "CARRIER", "ROWS", "STARTED", "LAST CHUNK", "IDLE"],
        &rows,
    )
}
