//! The audit log, streamed oldest first with optional filters; entries are made by the state
//! machine (`trunkline_core::audit`) from the changes and refusals the auth layer records.

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
}
