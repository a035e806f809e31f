//! `trunkctl rates export --carrier C [--output-file F]`: write a carrier's deck as CSV.
//!
//! Streams the deck from the node into the writer chunk by chunk. With `--output-file` the
//! deck goes to a temporary file beside it that replaces the file only once complete, so a
//! failed export never leaves a truncated deck that looks whole.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;
use tonic::Streaming;
use trunkline_client::{code_name, proto, Retry};
use trunkline_core::routing::{RateCsvWriter, MAX_IMPORT_ROWS};

use crate::{
    commands::{check, config::ReadFlags},
    context::{Context, Failure},
    output,
};

/// Write buffer for the deck.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

#[derive(clap::Args)]
pub struct Args {
    /// The carrier whose deck to write.
    #[arg(long)]
    carrier: String,
    /// Write to this file (replaced once the export is complete) instead of standard output.
    #[arg(long, value_name = "FILE")]
    output_file: Option<PathBuf>,
    #[command(flatten)]
    read: ReadFlags,
}

#[derive(Serialize)]
struct Exported {
    carrier: String,
    file: String,
    rows: u64,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    check::check_name("--carrier", &args.carrier)?;
    if let Some(path) = &args.output_file {
        if path.file_name().is_none() || path.is_dir() {
            return Err(check::usage(
                "--output-file",
                format!("{} is a folder, not a file", path.display()),
            ));
        }
    }
    let request = proto::ExportRatesRequest {
        carrier: args.carrier.clone(),
        consistency: Some(args.read.into()),
    };
    let mut stream = context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.export_rates(request).await },
        )
        .await?;
    let Some(path) = args.output_file else {
        let stdout = std::io::stdout().lock();
        let (_rows, _stdout) = write_deck(
            &mut stream,
            BufWriter::with_capacity(WRITE_BUFFER_BYTES, stdout),
            None,
        )
        .await?;
        return Ok(());
    };
    let rows = write_file(&mut stream, &path).await?;
    let exported = Exported {
        carrier: args.carrier,
        file: path.display().to_string(),
        rows,
    };
    output::emit(context.format, &exported, |exported| {
        format!(
            "Exported {} rows of carrier {:?} to {}",
            exported.rows, exported.carrier, exported.file
        )
    })
}

/// Writes the deck to a temporary file beside `path`, then renames it over `path`.
async fn write_file(
    stream: &mut Streaming<proto::ExportRatesChunk>,
    path: &Path,
) -> Result<u64, Failure> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(
        ".{file_name}.partial-{:016x}",
        rand::random::<u64>()
    ));
    let file_failure = |action: &str, error: std::io::Error| {
        Failure::Request(format!("{}: can't {action}: {error}", path.display()))
    };
    let file = File::create(&partial).map_err(|error| file_failure("create", error))?;
    // A bar only when the rows go to a file: on standard output they would cross it.
    let progress = crate::progress::Progress::new(
        &format!("exporting to {}", path.display()),
        0,
        crate::progress::Unit::Items("rows"),
        false,
    );
    let result = write_deck(
        stream,
        BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
        Some(progress),
    )
    .await
    .and_then(|(rows, file)| {
        file.sync_all()
            .map_err(|error| file_failure("write", error))?;
        Ok(rows)
    })
    .and_then(|rows| {
        std::fs::rename(&partial, path).map_err(|error| file_failure("replace", error))?;
        Ok(rows)
    });
    if result.is_err() {
        // Best effort: the partial file is hidden and named as such if it stays.
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Writes the header and every row the node streams; returns the row count and the
/// underlying writer, flushed.
async fn write_deck<W: Write>(
    stream: &mut Streaming<proto::ExportRatesChunk>,
    writer: BufWriter<W>,
    mut progress: Option<crate::progress::Progress>,
) -> Result<(u64, W), Failure> {
    let mut deck = RateCsvWriter::new(writer)?;
    let mut rows = 0_u64;
    while let Some(chunk) = stream.message().await.map_err(|status| {
        Failure::Request(format!(
            "the export stopped after {rows} rows ({}): {}",
            code_name(status.code()),
            status.message()
        ))
    })? {
        for rate in chunk.rates {
            rows += 1;
            if rows > MAX_IMPORT_ROWS {
                return Err(Failure::Request(format!(
                    "the deck has more than {MAX_IMPORT_ROWS} rows, more than an import takes"
                )));
            }
            deck.write(&trunkline_api::convert::rate_from_proto(rate))?;
        }
        if let Some(progress) = progress.as_mut() {
            progress.set(rows);
        }
    }
    if let Some(progress) = &progress {
        progress.finish();
    }
    let writer = deck.finish()?;
    let writer = writer
        .into_inner()
        .map_err(|error| Failure::from(error.into_error()))?;
    Ok((rows, writer))
}
