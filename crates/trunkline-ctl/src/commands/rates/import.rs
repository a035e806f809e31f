//! `trunkctl rates import FILE.csv --carrier C [--replace]`: load a rate deck.
//!
//! Two passes over the file, so that a deck of millions of rows never sits in memory:
//!
//! 1. check every row with `RateCsvReader` before anything is sent; any bad row is printed
//!    as `FILE:LINE: column: message` and the command exits 2 with nothing sent;
//! 2. read it again and stage it in chunks of at most [`ROWS_PER_CHUNK`] rows under a random
//!    import id and a random owner token (128 bits; the node lets only that token add to,
//!    commit or abort the import), then commit with the number of rows sent. Both are printed
//!    on standard error before the first chunk, with the `rates abort` command that drops
//!    the import, so an operator can free its slot if this client hangs. The node swaps the deck in at
//!    commit, so the old deck serves until then, and an import that fails half-way changes
//!    nothing (the staged rows expire on the node).
//!
//! A file that changes between the passes (a bad row appears, or the row count differs) is
//! not committed. Progress goes to standard error when it is a terminal.

use std::{
    fs::File,
    io::{BufReader, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;
use trunkline_client::{proto, Retry};
use trunkline_core::routing::{RateCsvError, RateCsvReader, MAX_ROWS_PER_CHUNK};

use crate::{
    commands::check,
    context::{Context, Failure},
    output,
    progress::{Progress, Unit},
};

/// Rows in one StageRates request: the most the node accepts.
const ROWS_PER_CHUNK: usize = MAX_ROWS_PER_CHUNK;
/// Bad rows printed before the rest are only counted.
const MAX_REPORTED_ERRORS: usize = 20;
/// Rows checked between two progress updates of the first pass.
const CHECK_PROGRESS_EVERY_ROWS: u64 = 100_000;
/// Read buffer for the deck file.
const READ_BUFFER_BYTES: usize = 256 * 1024;

#[derive(clap::Args)]
pub struct Args {
    /// CSV with a header naming its columns: prefix and rate (required), connect_fee,
    /// description, effective_from, effective_until.
    file: PathBuf,
    /// The carrier whose deck this is.
    #[arg(long)]
    carrier: String,
    /// Make the file the whole deck: rows not in it are removed. Without it, rows are merged
    /// in by prefix.
    #[arg(long)]
    replace: bool,
}

#[derive(Serialize)]
struct Imported {
    carrier: String,
    file: String,
    rows: u64,
    replace: bool,
    deck_rows: u64,
    applied_index: u64,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    check::check_name("--carrier", &args.carrier)?;
    let file_name = args.file.display().to_string();
    let rows = check_file(&args.file, &file_name)?;
    if rows == 0 {
        return Err(Failure::Usage(format!(
            "{file_name}: no rows under the header; nothing to import"
        )));
    }

    let import_id = format!("{:032x}", rand::random::<u128>());
    let owner = format!("{:032x}", rand::random::<u128>());
    output::note(&format!(
        "import {import_id} started; to drop it: trunkctl rates abort {import_id} --owner {owner}"
    ));
    let import = Import {
        id: &import_id,
        owner: &owner,
    };
    let mut progress = Progress::new(
        &format!("sending {file_name}"),
        rows,
        Unit::Items("rows"),
        false,
    );
    let sent = send_file(context, &args, &file_name, import, &mut progress).await;
    progress.finish();
    let sent = sent?;
    if sent != rows {
        return Err(Failure::Request(format!(
            "{file_name} changed while it was imported ({rows} rows checked, {sent} read to \
             send); nothing was applied"
        )));
    }

    let request = proto::CommitRatesRequest {
        carrier: args.carrier.clone(),
        import_id,
        owner,
        replace: args.replace,
        expected_rows: rows,
    };
    let response = context
        .admin(Retry::NotSent, request, |mut admin, request| async move {
            admin.commit_rates(request).await
        })
        .await?;
    let imported = Imported {
        carrier: args.carrier,
        file: file_name,
        rows,
        replace: args.replace,
        deck_rows: response.deck_rows,
        applied_index: response.applied_index,
    };
    output::emit(context.format, &imported, |imported| {
        format!(
            "Imported {} rows from {} into carrier {:?} ({}); the deck has {} rows (log index {})",
            imported.rows,
            imported.file,
            imported.carrier,
            if imported.replace {
                "replacing the deck"
            } else {
                "merged by prefix"
            },
            imported.deck_rows,
            imported.applied_index
        )
    })
}

/// The import being sent: its id and owner token.
#[derive(Clone, Copy)]
struct Import<'a> {
    id: &'a str,
    owner: &'a str,
}

/// The second pass: stages the file in chunks; returns the number of rows sent.
async fn send_file(
    context: &Context,
    args: &Args,
    file_name: &str,
    import: Import<'_>,
    progress: &mut Progress,
) -> Result<u64, Failure> {
    let mut reader = open(&args.file, file_name).map_err(|failure| match failure {
        Failure::Usage(message) => Failure::Request(message),
        other => other,
    })?;
    let mut chunk = Vec::with_capacity(ROWS_PER_CHUNK);
    let mut first_line = 0;
    let mut sent = 0_u64;
    loop {
        let row = reader.next();
        if chunk.len() == ROWS_PER_CHUNK || (row.is_none() && !chunk.is_empty()) {
            let rates = std::mem::replace(&mut chunk, Vec::with_capacity(ROWS_PER_CHUNK));
            sent += rates.len() as u64;
            stage(context, &args.carrier, import, rates, first_line).await?;
            progress.set(sent);
        }
        match row {
            None => return Ok(sent),
            Some(Err(error)) => {
                return Err(Failure::Request(format!(
                    "{file_name} changed while it was imported ({}); nothing was applied",
                    located(file_name, &error)
                )))
            }
            Some(Ok((line, rate))) => {
                if chunk.is_empty() {
                    first_line = line;
                }
                chunk.push(trunkline_api::convert::rate_to_proto(rate));
            }
        }
    }
}

fn open(path: &Path, file_name: &str) -> Result<RateCsvReader<BufReader<File>>, Failure> {
    let file = File::open(path)
        .map_err(|error| Failure::Usage(format!("{file_name}: can't open: {error}")))?;
    RateCsvReader::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
        .map_err(|error| Failure::Usage(located(file_name, &error)))
}

/// `FILE:LINE: column: message`.
fn located(file_name: &str, error: &RateCsvError) -> String {
    format!("{file_name}:{}: {error}", error.line())
}

/// The first pass: every row checked, every bad one reported. Returns the number of rows.
fn check_file(path: &Path, file_name: &str) -> Result<u64, Failure> {
    let reader = open(path, file_name)?;
    let mut progress = Progress::new(
        &format!("checking {file_name}"),
        0,
        Unit::Items("rows"),
        false,
    );
    let mut rows = 0_u64;
    let mut next_progress_at = CHECK_PROGRESS_EVERY_ROWS;
    let mut bad_rows = 0_usize;
    let mut stderr = std::io::stderr();
    for row in reader {
        match row {
            Ok(_) => {
                rows += 1;
                if rows == next_progress_at {
                    progress.set(rows);
                    next_progress_at += CHECK_PROGRESS_EVERY_ROWS;
                }
            }
            Err(error) => {
                bad_rows += 1;
                if bad_rows <= MAX_REPORTED_ERRORS {
                    // Nothing better to do when standard error itself fails.
                    progress.suspend(|| writeln!(stderr, "{}", located(file_name, &error)).ok());
                }
            }
        }
    }
    progress.finish();
    if bad_rows > MAX_REPORTED_ERRORS {
        let _ = writeln!(
            stderr,
            "{file_name}: {} more bad rows not shown",
            bad_rows - MAX_REPORTED_ERRORS
        );
    }
    if bad_rows > 0 {
        return Err(Failure::Usage(format!(
            "{file_name}: {bad_rows} bad row{}; nothing was sent",
            if bad_rows == 1 { "" } else { "s" }
        )));
    }
    Ok(rows)
}

async fn stage(
    context: &Context,
    carrier: &str,
    import: Import<'_>,
    rates: Vec<proto::Rate>,
    first_line: u64,
) -> Result<(), Failure> {
    let request = proto::StageRatesRequest {
        carrier: carrier.to_owned(),
        import_id: import.id.to_owned(),
        rates,
        first_line,
        owner: import.owner.to_owned(),
    };
    context
        .admin(Retry::NotSent, request, |mut admin, request| async move {
            admin.stage_rates(request).await
        })
        .await
        .map_err(|error| {
            Failure::Request(format!(
                "{error}\nNothing was applied: staged rows are dropped by the node unless committed."
            ))
        })?;
    Ok(())
}
