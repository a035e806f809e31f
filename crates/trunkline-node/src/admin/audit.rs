//! The audit log, streamed oldest first with optional filters (entries are made by the state
//! machine, `trunkline_core::audit`, from the changes and refusals the auth layer records); and
//! re-sealing this node's data folder with its newest key, with progress; and backups of the
//! applied state, sealed with that key.

use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use trunkline_api::v1 as proto;

use super::AdminApi;
use crate::streams;

impl AdminApi {
    pub(super) async fn list_audit(
        &self,
        request: proto::ListAuditRequest,
    ) -> Result<ReceiverStream<Result<proto::AuditEntry, Status>>, Status> {
        let permit = self.audit_slots.acquire()?;
        // Wait for the freshness asked for; the stream then reads the published state.
        self.cluster.read(request.consistency.into()).await?;
        let proto::ListAuditRequest {
            since_ms,
            actor,
            object,
            ..
        } = request;
        let keep = move |entry: &trunkline_core::audit::AuditEntry| {
            entry.time_ms >= since_ms
                && (actor.is_empty() || entry.actor == actor)
                && (object.is_empty() || entry.object.contains(&object))
        };
        let receiver = streams::list_audit(self.cluster.reader.clone(), keep, permit);
        Ok(ReceiverStream::new(receiver))
    }

    pub(super) async fn rotate_keys(
        &self,
        _request: proto::RotateKeysRequest,
    ) -> Result<ReceiverStream<Result<proto::RotateKeysProgress, Status>>, Status> {
        let permit = self.resealing.clone().try_acquire_owned().map_err(|_| {
            Status::failed_precondition("keys are being rotated on this node already")
        })?;
        let resealer = self.resealer.clone();
        let key_id = resealer.key_id().unwrap_or(0);
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = permit;
            let message =
                |progress: trunkline_store::ResealProgress, done: bool| proto::RotateKeysProgress {
                    total: progress.total,
                    examined: progress.examined,
                    resealed: progress.resealed,
                    done,
                    key_id,
                };
            // Progress is best effort: a slow reader misses reports, never stalls the work.
            let result = resealer.reseal(|progress| {
                let _ = sender.try_send(Ok(message(progress, false)));
            });
            let last = match result {
                Ok(progress) => Ok(message(progress, true)),
                Err(error) => Err(Status::failed_precondition(error.to_string())),
            };
            let _ = sender.blocking_send(last);
        });
        Ok(ReceiverStream::new(receiver))
    }

    pub(super) async fn backup(
        &self,
        _request: proto::BackupRequest,
    ) -> Result<ReceiverStream<Result<proto::BackupChunk, Status>>, Status> {
        let permit = self.backing_up.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(
                "a backup of this node is being taken already; try again when it ends",
            )
        })?;
        let applied = self.cluster.reader.current();
        let index = applied.last_applied.map_or(0, |log_id| log_id.index);
        let identity = trunkline_store::Identity {
            cluster_name: self.cluster.cluster_name.clone(),
            node_id: self.cluster.node_id,
        };
        let keys = self.resealer.keys();
        // Encoded (and sealed) off the runtime's threads; the state's Arc is dropped there,
        // before the first byte is sent.
        let file = tokio::task::spawn_blocking(move || {
            trunkline_store::backup::encode(
                &applied,
                &identity,
                crate::cluster::now_ms(),
                keys.as_deref(),
            )
        })
        .await
        .map_err(|error| Status::internal(format!("the backup task failed: {error}")))?
        .map_err(|error| Status::internal(format!("can't make the backup: {error}")))?;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let _one_at_a_time = permit;
            let total_bytes = file.len() as u64;
            for (number, data) in file.chunks(BACKUP_CHUNK_BYTES).enumerate() {
                let first = number == 0;
                let chunk = proto::BackupChunk {
                    total_bytes: if first { total_bytes } else { 0 },
                    index: if first { index } else { 0 },
                    data: data.to_vec(),
                };
                if sender.send(Ok(chunk)).await.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(ReceiverStream::new(receiver))
    }
}

/// Bytes of a backup per streamed chunk.
const BACKUP_CHUNK_BYTES: usize = 1024 * 1024;
