//! Call detail records: `ListCdrs` streams this node's archive (on disk, oldest first) in
//! chunks, read on a blocking thread as the client takes them, so a listing of millions of
//! records holds one chunk in memory, never the listing.

use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use trunkline_api::{convert, v1 as proto};
use trunkline_core::{cdr::Disposition, routing::validate_name, Error};

use super::AdminApi;
use crate::error::ClusterError;

/// Records in one chunk of a listing.
pub const CDR_CHUNK_RECORDS: usize = 500;
/// Chunks read ahead of a slow client.
const CHUNKS_AHEAD: usize = 2;

impl AdminApi {
    pub(super) async fn list_cdrs(
        &self,
        request: proto::ListCdrsRequest,
        principal: &Option<trunkline_core::auth::Principal>,
    ) -> Result<ReceiverStream<Result<proto::ListCdrsChunk, Status>>, Status> {
        let invalid = |error: Error| Status::from(ClusterError::Domain(error));
        if request.tenant.is_empty() {
            if !crate::auth::sees_all(principal) {
                return Err(invalid(Error::invalid(
                    "tenant",
                    "is required: this token sees only some tenants' records",
                )));
            }
        } else {
            validate_name("tenant", &request.tenant).map_err(|error| invalid(error.into()))?;
            crate::auth::require_tenant(principal, &request.tenant)?;
        }
        let disposition = if request.disposition.is_empty() {
            None
        } else {
            Some(Disposition::parse(&request.disposition).ok_or_else(|| {
                invalid(Error::invalid(
                    "disposition",
                    format!(
                        "{:?} is not a disposition; one of: {}",
                        request.disposition,
                        Disposition::ALL.map(Disposition::as_str).join(", ")
                    ),
                ))
            })?)
        };
        let until_ms = if request.until_ms == 0 {
            u64::MAX
        } else {
            request.until_ms
        };
        let limit = if request.limit == 0 {
            u64::MAX
        } else {
            request.limit
        };
        let permit = self.records_slots.acquire()?;
        let archive = self.cdr_archive.clone();
        // Cheap reads only here: counting the archive's keys would walk all of it.
        let complete_since_ms = archive
            .complete_since_ms()
            .map_err(|error| Status::internal(format!("the record archive: {error}")))?;
        let archived = self.cluster.reader.current().state.cdrs().archived();
        let (sender, receiver) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let tenant = request.tenant;
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            let header = |records| proto::ListCdrsChunk {
                records,
                complete_since_ms,
                archived,
            };
            let mut chunk = Vec::with_capacity(CDR_CHUNK_RECORDS);
            let mut sent = 0u64;
            for item in archive.scan(request.since_ms, until_ms) {
                if sent >= limit {
                    break;
                }
                let archived = match item {
                    Ok(archived) => archived,
                    Err(error) => {
                        let _ = sender.blocking_send(Err(Status::data_loss(format!(
                            "a record in this node's archive is unreadable ({error}): ask \
                             another node"
                        ))));
                        return;
                    }
                };
                let record = &archived.cdr;
                if (!tenant.is_empty() && record.tenant != tenant)
                    || disposition.is_some_and(|wanted| record.disposition != wanted)
                {
                    continue;
                }
                chunk.push(convert::cdr_to_proto(
                    record,
                    archived.recorded_ms,
                    archived.log_index,
                ));
                sent += 1;
                if chunk.len() == CDR_CHUNK_RECORDS {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CDR_CHUNK_RECORDS));
                    if sender.blocking_send(Ok(header(full))).is_err() {
                        return;
                    }
                }
            }
            // The last chunk goes even when empty: it carries the archive's coverage.
            let _ = sender.blocking_send(Ok(header(chunk)));
        });
        Ok(ReceiverStream::new(receiver))
    }
}
