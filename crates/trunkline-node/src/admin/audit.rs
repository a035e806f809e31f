//! The audit log, streamed oldest first with optional filters (entries are made by the state
//! machine, `trunkline_core::audit`, from the changes and refusals the auth layer records); and
//! re-sealing this node's data folder with its newest key, with progress.

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
}
