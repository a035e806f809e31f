//! Inbound configuration: DID, device and edge puts, tenants' default continuity plans, the
//! configuration list and a device's live bindings. Their deletes go through `DeleteObject`
//! (`routing`). The rules (references, put modes, no continuity loop) live in the core's
//! `InboundConfig`.

use tonic::Status;
use trunkline_api::v1 as proto;
use trunkline_core::{
    auth::{Principal, Scope},
    inbound::{validate_aor, InboundCommand},
    Command, Error,
};

use super::{domain, put_mode, AdminApi};
use crate::{
    auth::{require_tenant, sees, sees_all},
    convert,
};

impl AdminApi {
    pub(super) async fn put_did(
        &self,
        request: proto::PutDidRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::PutResponse, Status> {
        let did = convert::did_from_proto(request.did).map_err(domain)?;
        let current = self.cluster.reader.current();
        let replaced = current.state.inbound().did(&did.number);
        require_put(
            principal,
            &did.tenant,
            replaced.map(|did| did.tenant.as_str()),
        )?;
        self.put(Command::Inbound(InboundCommand::PutDid {
            did,
            mode: put_mode(request.mode)?,
            within: within(principal),
        }))
        .await
    }

    pub(super) async fn put_device(
        &self,
        request: proto::PutDeviceRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::PutResponse, Status> {
        let device = convert::device_from_proto(request.device).map_err(domain)?;
        let current = self.cluster.reader.current();
        let replaced = current.state.inbound().device(&device.aor);
        require_put(
            principal,
            &device.tenant,
            replaced.map(|device| device.tenant.as_str()),
        )?;
        self.put(Command::Inbound(InboundCommand::PutDevice {
            device,
            mode: put_mode(request.mode)?,
            within: within(principal),
        }))
        .await
    }

    pub(super) async fn set_tenant_continuity(
        &self,
        request: proto::SetTenantContinuityRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::PutResponse, Status> {
        require_tenant(principal, &request.tenant)?;
        let plan = convert::plan_from_proto(request.plan).map_err(domain)?;
        self.put(Command::Inbound(InboundCommand::SetTenantContinuity {
            tenant: request.tenant,
            plan,
        }))
        .await
    }

    pub(super) async fn put_edge(
        &self,
        request: proto::PutEdgeRequest,
    ) -> Result<proto::PutResponse, Status> {
        let edge = convert::edge_from_proto(request.edge).map_err(domain)?;
        self.put(Command::Inbound(InboundCommand::PutEdge {
            edge,
            mode: put_mode(request.mode)?,
        }))
        .await
    }

    pub(super) async fn list_inbound(
        &self,
        request: proto::ListInboundRequest,
        principal: &Option<Principal>,
    ) -> Result<proto::ListInboundResponse, Status> {
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let inbound = applied.state.inbound();
        let routing = applied.state.routing();
        // A caller limited to some tenants sees their DIDs, devices and plans, no edge.
        let edges = match sees_all(principal) {
            true => inbound.edges().map(convert::edge_to_proto).collect(),
            false => Vec::new(),
        };
        Ok(proto::ListInboundResponse {
            dids: inbound
                .dids()
                .filter(|did| sees(principal, &did.tenant))
                .map(convert::did_to_proto)
                .collect(),
            devices: inbound
                .devices()
                .filter(|device| sees(principal, &device.tenant))
                .map(convert::device_to_proto)
                .collect(),
            edges,
            tenant_plans: routing
                .tenants()
                .filter(|tenant| sees(principal, &tenant.name))
                .filter_map(|tenant| {
                    inbound
                        .tenant_plan(&tenant.name)
                        .map(|plan| proto::TenantContinuity {
                            tenant: tenant.name.clone(),
                            plan: Some(convert::plan_to_proto(plan)),
                        })
                })
                .collect(),
            read_state: Some(read_state.into()),
        })
    }

    pub(super) async fn list_bindings(
        &self,
        request: proto::ListBindingsRequest,
    ) -> Result<proto::ListBindingsResponse, Status> {
        validate_aor("aor", &request.aor).map_err(domain)?;
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let inbound = applied.state.inbound();
        if inbound.device(&request.aor).is_none() {
            return Err(domain(Error::not_found("device", request.aor)));
        }
        // Live at the log's time, so every node at one index gives one answer.
        let now_ms = applied.state.time_ms();
        Ok(proto::ListBindingsResponse {
            bindings: inbound
                .registrations()
                .live(&request.aor, now_ms)
                .into_iter()
                .map(convert::binding_to_proto)
                .collect(),
            now_ms,
            read_state: Some(read_state.into()),
        })
    }
}

/// A put of tenant data: the caller must hold the object's tenant, and the tenant of the
/// object it replaces if there is one, so no tenant takes another's object over.
/// The tenants a tenant-limited caller may touch, for the apply-time check of a put (the
/// handler's check saw this node's state, which may be behind the leader's).
fn within(principal: &Option<Principal>) -> Option<Vec<String>> {
    match principal.as_ref().map(|principal| &principal.scope) {
        Some(Scope::Tenants(tenants)) => Some(tenants.clone()),
        Some(Scope::All) | None => None,
    }
}

fn require_put(
    principal: &Option<Principal>,
    tenant: &str,
    replaced: Option<&str>,
) -> Result<(), Status> {
    require_tenant(principal, tenant)?;
    replaced.map_or(Ok(()), |replaced| require_tenant(principal, replaced))
}
