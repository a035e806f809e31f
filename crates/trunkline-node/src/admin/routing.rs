//! Outbound routing configuration: tenant, carrier and gateway puts, draining a gateway,
//! listing it all, and `DeleteObject`, which deletes an object of any kind (the inbound
//! DIDs, devices and edges too, so every kind is deleted one way). The rules (references,
//! put modes, what a delete must leave consistent) live in the core's `RoutingConfig`,
//! `InboundConfig` and `State`.

use tonic::Status;
use trunkline_api::v1 as proto;
use trunkline_core::{
    auth::{Access, Area, Principal},
    inbound::{validate_aor, validate_number, InboundCommand},
    routing::{ObjectKind, RoutingCommand},
    Command, Error,
};

use super::{domain, put_mode, required, AdminApi};
use crate::{
    auth::{require, require_owner, sees, sees_all},
    convert,
};

impl AdminApi {
    pub(super) async fn put_tenant(
        &self,
        request: proto::PutTenantRequest,
    ) -> Result<proto::PutResponse, Status> {
        let tenant =
            convert::tenant_from_proto(required("tenant", request.tenant)?).map_err(domain)?;
        self.put(Command::Routing(RoutingCommand::PutTenant {
            tenant: Box::new(tenant),
            mode: put_mode(request.mode)?,
        }))
        .await
    }

    pub(super) async fn put_carrier(
        &self,
        request: proto::PutCarrierRequest,
    ) -> Result<proto::PutResponse, Status> {
        let carrier =
            convert::carrier_from_proto(required("carrier", request.carrier)?).map_err(domain)?;
        self.put(Command::Routing(RoutingCommand::PutCarrier {
            carrier,
            mode: put_mode(request.mode)?,
        }))
        .await
    }

    pub(super) async fn set_calling_policy(
        &self,
        request: proto::SetCallingPolicyRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::PutResponse, Status> {
        crate::auth::require_tenant(principal, &request.tenant)?;
        let scope = convert::scope_from_text("scope", &request.scope).map_err(domain)?;
        let rules = request
            .rules
            .map(convert::rules_from_proto)
            .transpose()
            .map_err(|error| domain(error.within("rules")))?;
        let command = Command::Routing(RoutingCommand::SetPolicy {
            tenant: request.tenant,
            scope,
            rules,
        });
        command.validate().map_err(domain)?;
        self.put(command).await
    }

    /// A tenant's usage now against its limits; windows are judged at this node's clock, the
    /// counts are the replicated ones (as fresh as the read consistency asks).
    pub(super) async fn get_usage(
        &self,
        request: proto::GetUsageRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::GetUsageResponse, Status> {
        trunkline_core::routing::validate_name("tenant", &request.tenant).map_err(domain)?;
        crate::auth::require_tenant(principal, &request.tenant)?;
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let state = &applied.state;
        let tenant = state
            .routing()
            .tenant(&request.tenant)
            .ok_or_else(|| domain(Error::not_found("tenant", request.tenant.clone())))?;
        let now_ms = crate::cluster::now_ms().max(state.time_ms());
        let usage = state.usage().tenant(&request.tenant);
        let mut extensions: Vec<proto::ExtensionUsage> = usage
            .map(|usage| {
                usage
                    .extensions
                    .iter()
                    .map(|(extension, counters)| proto::ExtensionUsage {
                        extension: extension.clone(),
                        counters: Some(convert::usage_to_proto(&counters.at(now_ms))),
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The busiest first, and a bounded answer.
        extensions.sort_by_key(|extension| {
            std::cmp::Reverse(extension.counters.as_ref().map_or(0, |c| c.active_calls))
        });
        extensions.truncate(crate::limits::MAX_USAGE_EXTENSIONS);
        Ok(proto::GetUsageResponse {
            tenant: request.tenant.clone(),
            limits: convert::limits_to_proto(&tenant.limits),
            counters: Some(convert::usage_to_proto(
                &usage
                    .map(|usage| usage.tenant.at(now_ms))
                    .unwrap_or_default(),
            )),
            extensions,
            read_state: Some(read_state.into()),
        })
    }

    pub(super) async fn put_gateway(
        &self,
        request: proto::PutGatewayRequest,
    ) -> Result<proto::PutResponse, Status> {
        let gateway =
            convert::gateway_from_proto(required("gateway", request.gateway)?).map_err(domain)?;
        self.put(Command::Routing(RoutingCommand::PutGateway {
            gateway,
            mode: put_mode(request.mode)?,
        }))
        .await
    }

    pub(super) async fn delete_object(
        &self,
        request: proto::DeleteObjectRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::DeleteObjectResponse, Status> {
        let command = delete_command(request.kind, request.name)?;
        self.authorize_delete(&command, principal)?;
        let (_, applied_index) = self.cluster.write(command).await?;
        Ok(proto::DeleteObjectResponse { applied_index })
    }

    pub(super) async fn list_routing(
        &self,
        request: proto::ListRoutingRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::ListRoutingResponse, Status> {
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let routing = applied.state.routing();
        let tenants = routing
            .tenants()
            .filter(|tenant| sees(principal, &tenant.name))
            .map(convert::tenant_to_proto)
            .collect();
        // A caller limited to some tenants sees their policies, not the carriers.
        if !sees_all(principal) {
            return Ok(proto::ListRoutingResponse {
                tenants,
                read_state: Some(read_state.into()),
                ..Default::default()
            });
        }
        Ok(proto::ListRoutingResponse {
            tenants,
            carriers: routing.carriers().map(convert::carrier_to_proto).collect(),
            gateways: routing
                .gateways()
                .map(|gateway| {
                    convert::gateway_to_proto(gateway, routing.is_drained(&gateway.name))
                })
                .collect(),
            deck_rows: routing
                .decks()
                .map(|(carrier, deck)| (carrier.clone(), deck.len() as u64))
                .collect(),
            read_state: Some(read_state.into()),
        })
    }

    /// What deleting needs depends on the kind deleted; a DID or a device also on its tenant.
    fn authorize_delete(
        &self,
        command: &Command,
        principal: &Option<Principal>,
    ) -> Result<(), Status> {
        let state = self.cluster.reader.current();
        let inbound = state.state.inbound();
        let (area, tenant) = match command {
            Command::Inbound(InboundCommand::DeleteDid { number }) => (
                Area::Numbers,
                inbound.did(number).map(|did| did.tenant.clone()),
            ),
            Command::Inbound(InboundCommand::DeleteDevice { aor }) => (
                Area::Numbers,
                inbound.device(aor).map(|device| device.tenant.clone()),
            ),
            Command::Inbound(_) => (Area::Edges, None),
            _ => (Area::Routing, None),
        };
        require(principal, area, Access::Write)?;
        require_owner(principal, tenant.as_deref())
    }

    pub(super) async fn drain_gateway(
        &self,
        request: proto::DrainGatewayRequest,
    ) -> Result<proto::PutResponse, Status> {
        self.put(Command::Routing(RoutingCommand::SetDrained {
            gateway: request.gateway,
            drained: request.drained,
        }))
        .await
    }
}

/// The command that deletes the `kind` object whose key is `name`: a routing delete, or the
/// inbound one for a DID (by number), a device (by AOR) or an edge. The key is checked here
/// so an error names the wire's field, `name`.
fn delete_command(kind: i32, name: String) -> Result<Command, Status> {
    let inbound = match proto::ObjectKind::try_from(kind) {
        Ok(proto::ObjectKind::Tenant) => return Ok(routing_delete(ObjectKind::Tenant, name)),
        Ok(proto::ObjectKind::Carrier) => return Ok(routing_delete(ObjectKind::Carrier, name)),
        Ok(proto::ObjectKind::Gateway) => return Ok(routing_delete(ObjectKind::Gateway, name)),
        Ok(proto::ObjectKind::Did) => {
            validate_number("name", &name).map_err(domain)?;
            InboundCommand::DeleteDid { number: name }
        }
        Ok(proto::ObjectKind::Device) => {
            validate_aor("name", &name).map_err(domain)?;
            InboundCommand::DeleteDevice { aor: name }
        }
        Ok(proto::ObjectKind::Edge) => InboundCommand::DeleteEdge { name },
        Ok(proto::ObjectKind::Unspecified) | Err(_) => {
            return Err(domain(Error::invalid(
                "kind",
                "must be tenant, carrier, gateway, did, device or edge",
            )))
        }
    };
    Ok(Command::Inbound(inbound))
}

fn routing_delete(kind: ObjectKind, name: String) -> Command {
    Command::Routing(RoutingCommand::Delete { kind, name })
}
