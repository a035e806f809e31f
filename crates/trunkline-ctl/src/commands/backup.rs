//! `trunkctl backup FILE` and `trunkctl backup verify FILE`: a node's applied state saved to
//! a file (streamed from the first endpoint that answers, written beside FILE, checked, then
//! renamed into place, so FILE is either a whole, checked backup or absent), and the check of
//! a file's framing, SHA-256 and header (the core's reader: trunkctl knows no store). The
//! state itself is decoded, and opened with the key when sealed, by `trunkline restore`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use trunkline_client::{proto, Retry};
use trunkline_core::backup::{self, BackupHeader};

use crate::{
    context::{Context, Failure},
    output,
    progress::{Progress, Unit},
};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Where to write the backup; must not exist yet.
    file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check a backup file: its framing, its SHA-256 over every byte, and its header (what
    /// it holds). Exit code 3 when it is not usable.
    Verify { file: PathBuf },
}

/// What a backup holds, as printed after taking or verifying one.
#[derive(Serialize)]
struct Summary {
    file: String,
    bytes: u64,
    #[serde(flatten)]
    header: BackupHeader,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    match (args.command, args.file) {
        (Some(Command::Verify { file }), _) => verify(&file, context),
        (None, Some(file)) => take(&file, context).await,
        (None, None) => Err(Failure::Usage(
            "give the file to write (`trunkctl backup FILE`) or `trunkctl backup verify FILE`"
                .to_owned(),
        )),
    }
}

async fn take(file: &Path, context: &Context) -> Result<(), Failure> {
    if file.exists() {
        return Err(Failure::Usage(format!(
            "{} exists; a backup never overwrites a file: give a new name",
            file.display()
        )));
    }
    let partial = partial_path(file);
    let mut stream = context
        .client
        .admin(Retry::NotSent, |mut admin| async move {
            admin.backup(proto::BackupRequest {}).await
        })
        .await?;
    let mut bytes = Vec::new();
    let mut total = 0u64;
    let mut progress = Progress::new("backup", 0, Unit::Bytes, true);
    while let Some(chunk) = stream.message().await.map_err(|status| {
        Failure::Request(format!(
            "the backup stream broke: {}: {}; nothing was written, run it again",
            trunkline_client::code_name(status.code()),
            status.message()
        ))
    })? {
        if chunk.total_bytes > 0 {
            total = chunk.total_bytes;
            progress.set_total(total);
        }
        bytes.extend_from_slice(&chunk.data);
        progress.set(bytes.len() as u64);
    }
    progress.finish();
    if bytes.len() as u64 != total {
        return Err(Failure::Request(format!(
            "the node sent {} of the backup's {total} bytes; nothing was written, run it again",
            bytes.len()
        )));
    }
    let checked = backup::check(&bytes).map_err(|error| {
        Failure::Request(format!(
            "the backup received is not usable ({error}); nothing was written, run it again"
        ))
    })?;
    let summary = Summary {
        file: file.display().to_string(),
        bytes: bytes.len() as u64,
        header: checked.header.clone(),
    };
    write_whole(&partial, &bytes).map_err(|error| {
        let _ = std::fs::remove_file(&partial);
        Failure::Request(format!("can't write {}: {error}", partial.display()))
    })?;
    std::fs::rename(&partial, file).map_err(|error| {
        let _ = std::fs::remove_file(&partial);
        Failure::Request(format!(
            "can't rename {} to {}: {error}",
            partial.display(),
            file.display()
        ))
    })?;
    print(context, &summary, "backup written")
}

fn verify(file: &Path, context: &Context) -> Result<(), Failure> {
    let bytes = std::fs::read(file)
        .map_err(|error| Failure::Usage(format!("can't read {}: {error}", file.display())))?;
    let checked = backup::check(&bytes)
        .map_err(|error| Failure::ConditionFailed(format!("{}: {error}", file.display())))?;
    let summary = Summary {
        file: file.display().to_string(),
        bytes: bytes.len() as u64,
        header: checked.header,
    };
    print(context, &summary, "backup verified")
}

fn print(context: &Context, summary: &Summary, what: &str) -> Result<(), Failure> {
    output::emit(context.format, summary, |summary| {
        let header = &summary.header;
        let mut text = format!(
            "{what}: {} ({} bytes), cluster {:?} node {}, log index {} (term {}), taken at {} ms{}\n",
            summary.file,
            summary.bytes,
            header.cluster_name,
            header.node_id,
            header.index,
            header.term,
            header.taken_ms,
            match header.sealed_with {
                Some(id) => format!(", sealed with key {id}"),
                None => String::new(),
            }
        );
        let contents = &header.contents;
        {
            text.push_str(&format!(
                "  {} settings, {} tenants, {} carriers, {} gateways, {} rate rows, {} DIDs, {} devices, {} edges\n",
                contents.settings,
                contents.tenants,
                contents.carriers,
                contents.gateways,
                contents.rate_rows,
                contents.dids,
                contents.devices,
                contents.edges
            ));
        }
        text
    })
}

/// `FILE.partial`, beside the file.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Writes and syncs `bytes`, refusing to replace a file already there.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
