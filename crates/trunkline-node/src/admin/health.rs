//! Gateway health: the cluster's health policy, `ListHealth` and the `WatchEvents` stream.
//! The health lines (with probers and their live probe results) come from the
//! [`HealthMonitor`](crate::health::HealthMonitor); the stream is a task in `streams`.

use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use trunkline_api::v1 as proto;
use trunkline_core::{
    auth::Principal, health::HealthCommand, routing::validate_name, Command, Error,
};

use super::{domain, AdminApi};
use crate::{
    convert, limits,
    streams::{self, WatchRequest},
};

impl AdminApi {
    pub(super) async fn get_health_policy(
        &self,
        request: proto::GetHealthPolicyRequest,
    ) -> Result<proto::GetHealthPolicyResponse, Status> {
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        Ok(proto::GetHealthPolicyResponse {
            policy: Some(convert::health_policy_to_proto(
                applied.state.health().policy(),
            )),
            read_state: Some(read_state.into()),
        })
    }

    pub(super) async fn set_health_policy(
        &self,
        request: proto::SetHealthPolicyRequest,
    ) -> Result<proto::SetHealthPolicyResponse, Status> {
        let policy = convert::health_policy_from_proto(request.policy).map_err(domain)?;
        let (_, applied_index) = self
            .cluster
            .write(Command::Health(HealthCommand::SetPolicy(policy)))
            .await?;
        Ok(proto::SetHealthPolicyResponse { applied_index })
    }

    pub(super) async fn list_health(
        &self,
        request: proto::ListHealthRequest,
    ) -> Result<proto::ListHealthResponse, Status> {
        let carrier = (!request.carrier.is_empty()).then_some(request.carrier.as_str());
        if let Some(carrier) = carrier {
            validate_name("carrier", carrier).map_err(domain)?;
        }
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        if let Some(carrier) = carrier {
            if applied.state.routing().carrier(carrier).is_none() {
                return Err(domain(Error::not_found("carrier", carrier)));
            }
        }
        let health = self.health.health_lines(&applied.state, carrier).await;
        Ok(proto::ListHealthResponse {
            gateways: health.lines,
            read_state: Some(read_state.into()),
            unreachable_probers: health.unreachable_probers,
        })
    }

    pub(super) async fn watch_events(
        &self,
        request: proto::WatchEventsRequest,
        principal: &Option<Principal>,
    ) -> Result<ReceiverStream<Result<proto::Event, Status>>, Status> {
        if request.recent > limits::MAX_RECENT_EVENTS {
            return Err(domain(Error::invalid(
                "recent",
                format!("must be at most {}", limits::MAX_RECENT_EVENTS),
            )));
        }
        let permit = self.watch_slots.acquire()?;
        let receiver = streams::watch_events(
            self.cluster.reader.clone(),
            WatchRequest {
                after_index: request.after_index,
                recent: request.recent,
                follow: request.follow,
            },
            principal
                .as_ref()
                .map(|principal| principal.token_id.clone())
                .filter(|id| !id.is_empty()),
            self.stopping.clone(),
            permit,
            limits::EVENT_CHANNEL_EVENTS,
        );
        Ok(ReceiverStream::new(receiver))
    }
}
