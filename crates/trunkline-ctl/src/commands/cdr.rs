//! `trunkctl cdr list|export`: call detail records from a node's archive, streamed. `list`
//! prints a line per record (or a JSON object per line with `--output json`); `export` writes
//! CSV or JSON lines to a file or standard output as the records arrive, so an export of
//! millions of records needs no memory in proportion to its size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde::Serialize;
use tonic::Streaming;
use trunkline_client::{proto, Retry};
use trunkline_core::routing::{format_micros, format_unix_ms, parse_unix_ms};

use crate::{
    context::{Context, Failure},
    duration,
    output::{self, Format},
};

/// Records `list` shows when `--limit` is not given.
const DEFAULT_LIST_LIMIT: u64 = 100;

#[derive(clap::Args, Clone)]
pub struct Filters {
    /// Only records made from this time on: how long ago (90m, 7d) or an RFC 3339 time
    /// (2026-12-01T00:00:00Z).
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    since: Option<u64>,
    /// Only records made before this time (same forms as --since).
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    until: Option<u64>,
    #[arg(long)]
    tenant: Option<String>,
    /// answered, busy, no-answer, failed, blocked, refused, no-route, in-progress or
    /// unterminated.
    #[arg(long)]
    disposition: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    /// One JSON object per line.
    Jsonl,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Records, oldest first: `RECORDED CALL-ID TENANT EXT FROM TO CLASS DISPOSITION ...`.
    List {
        #[command(flatten)]
        filters: Filters,
        /// At most this many records (100 when not given; 0 for all).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Every matching record as CSV or JSON lines, streamed to a file or standard output.
    Export {
        #[command(flatten)]
        filters: Filters,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Write here instead of standard output (created, or replaced).
        #[arg(long, value_name = "FILE")]
        output_file: Option<PathBuf>,
    },
}

/// `--since`/`--until`: a duration ago, or an RFC 3339 time.
fn parse_when(text: &str) -> Result<u64, String> {
    if let Ok(ago) = duration::parse_ms(text) {
        return Ok(duration::now_unix_ms().saturating_sub(ago));
    }
    parse_unix_ms(text).map_err(|_| {
        format!(
            "{text:?} is neither a duration ago (90m, 7d) nor an RFC 3339 time \
             (2026-12-01T00:00:00Z)"
        )
    })
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::List { filters, limit } => {
            let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT);
            let mut stream = open(context, request(&filters, limit)).await?;
            let mut shown = 0u64;
            let mut coverage = None;
            while let Some(chunk) = next(&mut stream).await? {
                coverage = Some(chunk.complete_since_ms);
                for record in &chunk.records {
                    let row = Row::from(record);
                    output::emit_line(context.format, &row, Row::text)?;
                    shown += 1;
                }
            }
            warn_if_incomplete(&filters, coverage);
            if context.format == Format::Table && shown == limit && limit > 0 {
                output::note(&format!(
                    "showing the first {limit} records; --limit 0 for all, or `cdr export`"
                ));
            }
            Ok(())
        }
        Command::Export {
            filters,
            format,
            output_file,
        } => {
            let mut stream = open(context, request(&filters, 0)).await?;
            let sink: Box<dyn Write> = match &output_file {
                Some(path) => Box::new(File::create(path).map_err(|error| {
                    Failure::Usage(format!("--output-file {}: {error}", path.display()))
                })?),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut out = BufWriter::new(sink);
            if format == ExportFormat::Csv {
                writeln!(out, "{}", CSV_HEADER.join(","))?;
            }
            let mut written = 0u64;
            let mut coverage = None;
            while let Some(chunk) = next(&mut stream).await? {
                coverage = Some(chunk.complete_since_ms);
                for record in &chunk.records {
                    let row = Row::from(record);
                    match format {
                        ExportFormat::Csv => writeln!(out, "{}", row.csv())?,
                        ExportFormat::Jsonl => {
                            serde_json::to_writer(&mut out, &row).map_err(|error| {
                                Failure::Request(format!("can't encode JSON: {error}"))
                            })?;
                            writeln!(out)?;
                        }
                    }
                    written += 1;
                }
            }
            out.flush()?;
            warn_if_incomplete(&filters, coverage);
            if let Some(path) = output_file {
                output::note(&format!("{written} records written to {}", path.display()));
            }
            Ok(())
        }
    }
}

fn request(filters: &Filters, limit: u64) -> proto::ListCdrsRequest {
    proto::ListCdrsRequest {
        since_ms: filters.since.unwrap_or(0),
        until_ms: filters.until.unwrap_or(0),
        tenant: filters.tenant.clone().unwrap_or_default(),
        disposition: filters.disposition.clone().unwrap_or_default(),
        limit,
    }
}

/// Says so when the node's archive may lack records the listing asked for.
fn warn_if_incomplete(filters: &Filters, complete_since_ms: Option<u64>) {
    let Some(complete_since_ms) = complete_since_ms else {
        return;
    };
    if complete_since_ms > filters.since.unwrap_or(0) {
        output::warning(&format!(
            "the node that answered holds every record only from {} on (it caught up from a \
             snapshot); for older ones ask another node with --endpoint",
            format_unix_ms(complete_since_ms)
        ));
    }
}

async fn open(
    context: &Context,
    request: proto::ListCdrsRequest,
) -> Result<Streaming<proto::ListCdrsChunk>, Failure> {
    Ok(context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.list_cdrs(request).await },
        )
        .await?)
}

async fn next(
    stream: &mut Streaming<proto::ListCdrsChunk>,
) -> Result<Option<proto::ListCdrsChunk>, Failure> {
    stream.message().await.map_err(|status| {
        Failure::Request(format!(
            "the record stream failed: {}: {}",
            trunkline_client::code_name(status.code()),
            status.message()
        ))
    })
}

const CSV_HEADER: [&str; 21] = [
    "recorded",
    "call_id",
    "tenant",
    "extension",
    "source",
    "from",
    "dialled",
    "normalized",
    "destination_class",
    "node_id",
    "start",
    "answer",
    "end",
    "disposition",
    "reason",
    "sip_code",
    "legs",
    "billed_ms",
    "cost",
    "log_index",
    "duration_ms",
];

/// One record as trunkctl writes it: times in RFC 3339, money in units, legs in one field.
#[derive(Serialize)]
struct Row {
    recorded: String,
    call_id: String,
    tenant: String,
    extension: String,
    source: String,
    from: String,
    dialled: String,
    normalized: String,
    destination_class: String,
    node_id: u64,
    start: String,
    answer: String,
    end: String,
    disposition: String,
    reason: String,
    sip_code: u32,
    /// `carrier/gateway:code` (or `:timeout`), `;`-separated, in order.
    legs: String,
    billed_ms: u64,
    cost: String,
    log_index: u64,
    /// From start to end; 0 for a record with no end.
    duration_ms: u64,
}

fn time(unix_ms: u64) -> String {
    if unix_ms == 0 {
        String::new()
    } else {
        format_unix_ms(unix_ms)
    }
}

impl From<&proto::CallRecord> for Row {
    fn from(record: &proto::CallRecord) -> Row {
        let legs = record
            .legs
            .iter()
            .map(|leg| {
                let ending = if leg.transport_error.is_empty() {
                    leg.sip_code.to_string()
                } else {
                    leg.transport_error.clone()
                };
                format!("{}/{}:{ending}", leg.carrier, leg.gateway)
            })
            .collect::<Vec<_>>()
            .join(";");
        Row {
            recorded: time(record.recorded_ms),
            call_id: record.call_id.clone(),
            tenant: record.tenant.clone(),
            extension: record.extension.clone(),
            source: record.source.clone(),
            from: record.from.clone(),
            dialled: record.dialled.clone(),
            normalized: record.normalized.clone(),
            destination_class: record.destination_class.clone(),
            node_id: record.node_id,
            start: time(record.start_ms),
            answer: time(record.answer_ms),
            end: time(record.end_ms),
            disposition: record.disposition.clone(),
            reason: record.reason.clone(),
            sip_code: record.sip_code,
            legs,
            billed_ms: record.billed_ms,
            cost: format_micros(record.cost_micros),
            log_index: record.log_index,
            duration_ms: if record.end_ms == 0 {
                0
            } else {
                record.end_ms.saturating_sub(record.start_ms)
            },
        }
    }
}

impl Row {
    fn text(&self) -> String {
        let sip = if self.sip_code == 0 {
            String::new()
        } else {
            format!(" {}", self.sip_code)
        };
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.reason)
        };
        format!(
            "{}  {}  {}  {}  {} -> {}  {}  {}{sip}{reason}  billed {}ms cost {}  {}",
            self.recorded,
            self.call_id,
            self.tenant,
            if self.extension.is_empty() {
                "-"
            } else {
                &self.extension
            },
            if self.from.is_empty() {
                "-"
            } else {
                &self.from
            },
            self.dialled,
            if self.destination_class.is_empty() {
                "-"
            } else {
                &self.destination_class
            },
            self.disposition,
            self.billed_ms,
            self.cost,
            if self.legs.is_empty() {
                "no legs"
            } else {
                &self.legs
            },
        )
    }

    fn csv(&self) -> String {
        let fields = [
            csv_field(&self.recorded),
            csv_field(&self.call_id),
            csv_field(&self.tenant),
            csv_field(&self.extension),
            csv_field(&self.source),
            csv_field(&self.from),
            csv_field(&self.dialled),
            csv_field(&self.normalized),
            csv_field(&self.destination_class),
            self.node_id.to_string(),
            csv_field(&self.start),
            csv_field(&self.answer),
            csv_field(&self.end),
            csv_field(&self.disposition),
            csv_field(&self.reason),
            self.sip_code.to_string(),
            csv_field(&self.legs),
            self.billed_ms.to_string(),
            csv_field(&self.cost),
            self.log_index.to_string(),
            self.duration_ms.to_string(),
        ];
        fields.join(",")
    }
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, with quotes
/// doubled; and one starting with `=`, `-` or `@` is quoted against spreadsheets' formula
/// reading (Call-IDs and numbers come from callers; E.164's `+` is left alone).
fn csv_field(text: &str) -> String {
    let needs_quotes = text.contains([',', '"', '\n', '\r']) || text.starts_with(['=', '-', '@']);
    if needs_quotes {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("+12125550100"), "+12125550100");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("=cmd()"), "\"=cmd()\"");
    }

    #[test]
    fn when_reads_a_duration_ago_or_a_time() {
        // The clock moves while the flag is read: an hour before some time in between.
        let before = duration::now_unix_ms();
        let hour_ago = parse_when("1h").unwrap();
        let after = duration::now_unix_ms();
        assert!(
            (before - 3_600_000..=after - 3_600_000).contains(&hour_ago),
            "{before} {hour_ago} {after}"
        );
        assert_eq!(
            parse_when("2026-12-01T00:00:00Z").unwrap(),
            1_796_083_200_000
        );
        assert!(parse_when("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
