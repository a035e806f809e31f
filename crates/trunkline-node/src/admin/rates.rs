//! Rate decks: staged imports (stage chunks, commit, abort, list) and exports. An import is
//! a series of Raft entries under an import id and an owner token, applied whole at commit
//! (the core's `RoutingConfig`); an export is a stream task (`streams`).

use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use trunkline_api::v1 as proto;
use trunkline_core::{
    routing::{validate_name, RoutingCommand, RoutingResponse, MAX_ROWS_PER_CHUNK},
    Command, Error,
};

use super::{domain, AdminApi};
use crate::{convert, limits, streams};

impl AdminApi {
    pub(super) async fn stage_rates(
        &self,
        request: proto::StageRatesRequest,
    ) -> Result<proto::StageRatesResponse, Status> {
        if request.rates.len() > MAX_ROWS_PER_CHUNK {
            return Err(domain(Error::invalid(
                "rates",
                format!(
                    "{} rows in one chunk; the limit is {MAX_ROWS_PER_CHUNK}",
                    request.rates.len()
                ),
            )));
        }
        let (response, _) = self
            .routing_write(RoutingCommand::StageRates {
                import_id: request.import_id,
                owner: request.owner,
                carrier: request.carrier,
                first_line: request.first_line,
                rates: request
                    .rates
                    .into_iter()
                    .map(convert::rate_from_proto)
                    .collect(),
            })
            .await?;
        let staged_rows = match response {
            RoutingResponse::Staged { staged_rows } => staged_rows,
            _ => 0,
        };
        Ok(proto::StageRatesResponse { staged_rows })
    }

    pub(super) async fn commit_rates(
        &self,
        request: proto::CommitRatesRequest,
    ) -> Result<proto::CommitRatesResponse, Status> {
        let (response, applied_index) = self
            .routing_write(RoutingCommand::CommitRates {
                import_id: request.import_id,
                owner: request.owner,
                carrier: request.carrier,
                replace: request.replace,
                expected_rows: request.expected_rows,
            })
            .await?;
        let deck_rows = match response {
            RoutingResponse::Committed { deck_rows } => deck_rows,
            _ => 0,
        };
        Ok(proto::CommitRatesResponse {
            deck_rows,
            applied_index,
        })
    }

    pub(super) async fn abort_rates(
        &self,
        request: proto::AbortRatesRequest,
    ) -> Result<proto::AbortRatesResponse, Status> {
        let (response, applied_index) = self
            .routing_write(RoutingCommand::AbortRates {
                import_id: request.import_id,
                owner: request.owner,
            })
            .await?;
        let staged_rows = match response {
            RoutingResponse::Aborted { staged_rows } => staged_rows,
            _ => 0,
        };
        Ok(proto::AbortRatesResponse {
            staged_rows,
            applied_index,
        })
    }

    pub(super) async fn list_imports(
        &self,
        request: proto::ListImportsRequest,
    ) -> Result<proto::ListImportsResponse, Status> {
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        // Idle time at the log's time, so every node at one index gives one answer.
        let now_ms = applied.state.time_ms();
        let imports = applied
            .state
            .routing()
            .staged_imports()
            .map(|(import_id, staged)| proto::StagedImport {
                import_id: import_id.clone(),
                carrier: staged.carrier.clone(),
                staged_rows: staged.rows,
                started_ms: staged.started_ms,
                last_chunk_ms: staged.last_chunk_ms,
                idle_ms: staged.idle_ms(now_ms),
            })
            .collect();
        Ok(proto::ListImportsResponse {
            imports,
            read_state: Some(read_state.into()),
        })
    }

    pub(super) async fn export_rates(
        &self,
        request: proto::ExportRatesRequest,
    ) -> Result<ReceiverStream<Result<proto::ExportRatesChunk, Status>>, Status> {
        validate_name("carrier", &request.carrier).map_err(domain)?;
        let permit = self.export_slots.acquire()?;
        let (applied, _) = self.cluster.read(request.consistency.into()).await?;
        let routing = applied.state.routing();
        if routing.carrier(&request.carrier).is_none() {
            return Err(domain(Error::not_found("carrier", request.carrier)));
        }
        let receiver = streams::export_rates(
            self.cluster.reader.clone(),
            request.carrier.clone(),
            routing.deck(&request.carrier),
            permit,
            limits::EXPORT_CHANNEL_CHUNKS,
        );
        Ok(ReceiverStream::new(receiver))
    }

    /// Writes a rate import command and hands back the routing configuration's answer.
    async fn routing_write(
        &self,
        command: RoutingCommand,
    ) -> Result<(RoutingResponse, u64), Status> {
        let (response, log_index) = self.cluster.write(Command::Routing(command)).await?;
        match response {
            trunkline_core::Response::Routing(response) => Ok((response, log_index)),
            other => Err(Status::internal(format!(
                "unexpected response to a routing write: {other:?}"
            ))),
        }
    }
}
