//! `trunkctl audit list|verify`: the cluster's audit log — every admin change and every
//! refused or failed call, with who, from where, what and how it ended — printed as it
//! streams in, and the check that its hash chain is unbroken.

use serde::Serialize;
use tonic::Streaming;
use trunkline_api::convert::audit_from_proto;
use trunkline_client::{proto, Retry};
use trunkline_core::{audit::AuditEntry, routing::format_unix_ms};

use crate::{
    commands::config::ReadFlags,
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// The entries kept, oldest first: `TIME #SEQ ACTOR SOURCE RPC OBJECT RESULT`.
    List {
        /// Only entries from this long ago on (1h, 7d).
        #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
        since: Option<u64>,
        /// Only what this token (by name) did; `-` for calls without a valid token.
        #[arg(long)]
        actor: Option<String>,
        /// Only entries whose object contains this (`tenant acme`, `did +1415`).
        #[arg(long)]
        object: Option<String>,
        #[command(flatten)]
        read: ReadFlags,
    },
    /// Check every entry's hash and its link to the one before: a changed, removed or
    /// reordered entry fails (exit code 3).
    Verify(#[command(flatten)] ReadFlags),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::List {
            since,
            actor,
            object,
            read,
        } => {
            let since_ms = since.map_or(0, |ago| duration::now_unix_ms().saturating_sub(ago));
            let request = proto::ListAuditRequest {
                since_ms,
                actor: actor.unwrap_or_default(),
                object: object.unwrap_or_default(),
                consistency: Some(read.into()),
            };
            let mut stream = open(context, request).await?;
            while let Some(entry) = next(&mut stream).await? {
                let line = Line::from(&entry);
                output::emit_line(context.format, &line, Line::text)?;
            }
            Ok(())
        }
        Command::Verify(read) => {
            let request = proto::ListAuditRequest {
                consistency: Some(read.into()),
                ..Default::default()
            };
            let mut stream = open(context, request).await?;
            let mut entries = Vec::new();
            while let Some(entry) = next(&mut stream).await? {
                entries.push(entry);
            }
            #[derive(Serialize)]
            struct Verified {
                entries: u64,
                first_seq: Option<u64>,
                last_seq: Option<u64>,
            }
            let entries_checked = trunkline_core::audit::verify(&entries).map_err(|broken| {
                Failure::ConditionFailed(format!("the audit log is broken: {broken}"))
            })?;
            let verified = Verified {
                entries: entries_checked,
                first_seq: entries.first().map(|entry| entry.seq),
                last_seq: entries.last().map(|entry| entry.seq),
            };
            output::emit(context.format, &verified, |verified| {
                match verified.first_seq {
                    None => "The audit log is empty.".to_owned(),
                    Some(first) => format!(
                        "The audit log is intact: {} entries, #{first} to #{}{}.",
                        verified.entries,
                        verified.last_seq.unwrap_or(first),
                        if first > 1 {
                            " (older ones were dropped by retention; the chain starts at the first kept)"
                        } else {
                            ""
                        }
                    ),
                }
            })
        }
    }
}

async fn open(
    context: &Context,
    request: proto::ListAuditRequest,
) -> Result<Streaming<proto::AuditEntry>, Failure> {
    Ok(context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.list_audit(request).await },
        )
        .await?)
}

async fn next(stream: &mut Streaming<proto::AuditEntry>) -> Result<Option<AuditEntry>, Failure> {
    let Some(entry) = stream.message().await.map_err(|status| {
        Failure::Request(format!(
            "the audit stream failed: {}: {}",
            trunkline_client::code_name(status.code()),
            status.message()
        ))
    })?
    else {
        return Ok(None);
    };
    audit_from_proto(entry).map(Some).map_err(|error| {
        Failure::Request(format!("the node sent a malformed audit entry: {error}"))
    })
}

/// One entry as printed.
#[derive(Serialize)]
struct Line {
    seq: u64,
    index: u64,
    time: String,
    actor: String,
    source: String,
    rpc: String,
    object: String,
    result: String,
}

impl Line {
    fn from(entry: &AuditEntry) -> Line {
        Line {
            seq: entry.seq,
            index: entry.index,
            time: format_unix_ms(entry.time_ms),
            actor: entry.actor.clone(),
            source: entry.source.clone(),
            rpc: entry.rpc.clone(),
            object: entry.object.clone(),
            result: entry.result.clone(),
        }
    }

    fn text(&self) -> String {
        format!(
            "{} #{} {} from {} {} {}: {}",
            self.time, self.seq, self.actor, self.source, self.rpc, self.object, self.result
        )
    }
}
