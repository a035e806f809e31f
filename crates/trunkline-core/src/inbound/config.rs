//! The replicated inbound configuration (DIDs, devices, tenant default plans) with the
//! registrations the edges report, and the commands that change them.
//!
//! Every command is checked in full before anything changes, so a refused command leaves the
//! configuration exactly as it was. The one exception is by design: a `Register` batch is
//! validated as a whole (a malformed update refuses the batch), but an update that the state
//! refuses (unknown device, too many bindings) is rejected alone and reported by its index, so
//! one deleted device does not make an edge lose a thousand refreshes.
//!
//! Two rules keep the call graph sound:
//! - no continuity loop: a DID may not, through the Number targets of its effective plan
//!   (its own, else its device's, else its tenant's default) and those of the DIDs they name,
//!   lead back to itself. Every change that could close a cycle (`PutDid`, `PutDevice`,
//!   `SetTenantContinuity`) is checked, and the error names the chain;
//! - a device that DIDs ring cannot be deleted (FAILED_PRECONDITION naming one DID): clearing
//!   the DIDs silently would send their calls straight to continuity without anyone asking.
//!
//! DID, device and edge puts take the routing configuration's [`PutMode`], checked first
//! (after the command's own validation): a create of an existing object is refused with
//! AlreadyExists, a replace of a missing one with NotFound, so `trunkctl ... add` can't
//! silently replace and `... update` can't bring back an object deleted under it.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Serialize};

use super::{
    model::{validate_aor, validate_name, validate_number},
    registrations::{RegisterError, RegistrationUpdate, Registrations},
    ContinuityPlan, Device, Did, Edge,
};
use crate::{routing::PutMode, Error};

/// DIDs in the configuration.
pub const MAX_DIDS: usize = 100_000;
/// Devices in the configuration.
pub const MAX_DEVICES: usize = 100_000;
/// Tenants with a default continuity plan.
pub const MAX_TENANT_PLANS: usize = 100_000;
/// Registration updates in one `Register` command: about 300 KiB of log entry at most, and
/// enough for an edge to batch thousands of refreshes a second in a few entries.
pub const MAX_UPDATES_PER_COMMAND: usize = 1_000;
/// Declared edges.
pub const MAX_EDGES: usize = 10_000;

// `#[serde(default)]` on the puts' `mode` reads a missing mode as Upsert where the encoding
// names fields. The log's bincode does not: a put written before `mode` existed does not
// decode into these variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum InboundCommand {
    /// Creates or replaces the DID with this number, as `mode` allows.
    PutDid {
        did: Did,
        #[serde(default)]
        mode: PutMode,
        /// The tenants of a tenant-limited caller: a DID that belongs to another when the
        /// change applies is refused, whatever the node that took the call saw.
        #[serde(default)]
        within: Option<Vec<String>>,
    },
    DeleteDid {
        number: String,
    },
    /// Creates or replaces the device with this AOR, as `mode` allows.
    PutDevice {
        device: Device,
        #[serde(default)]
        mode: PutMode,
        /// As for `PutDid`: a device of another tenant than these is refused at apply.
        #[serde(default)]
        within: Option<Vec<String>>,
    },
    DeleteDevice {
        aor: String,
    },
    /// Sets (or with `None` removes) the plan used by the tenant's DIDs that have none of
    /// their own and whose device has none.
    SetTenantContinuity {
        tenant: String,
        plan: Option<ContinuityPlan>,
    },
    /// Registrations, refreshes and unregistrations reported by edges, in order.
    Register {
        bindings: Vec<RegistrationUpdate>,
    },
    /// Declares (or replaces) an edge, as `mode` allows, so it is probed.
    PutEdge {
        edge: Edge,
        #[serde(default)]
        mode: PutMode,
    },
    DeleteEdge {
        name: String,
    },
    /// Drops every binding of `aor` through `edge`.
    UnregisterEdge {
        aor: String,
        edge: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InboundResponse {
    Put {
        replaced: bool,
    },
    Deleted,
    TenantContinuitySet,
    Registered {
        applied: u32,
        /// Updates the state refused, by their index in the command; the others were applied.
        rejected: Vec<RejectedUpdate>,
    },
    Unregistered {
        removed: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedUpdate {
    pub index: u32,
    pub error: Error,
}

impl InboundCommand {
    /// Checks the command on its own, before it is proposed. Apply checks it again.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            InboundCommand::PutDid { did, .. } => Ok(did.validate()?),
            InboundCommand::DeleteDid { number } => Ok(validate_number("number", number)?),
            InboundCommand::PutDevice { device, .. } => Ok(device.validate()?),
            InboundCommand::DeleteDevice { aor } => Ok(validate_aor("aor", aor)?),
            InboundCommand::SetTenantContinuity { tenant, plan } => {
                validate_name("tenant", tenant)?;
                if let Some(plan) = plan {
                    plan.validate()?;
                }
                Ok(())
            }
            InboundCommand::Register { bindings } => {
                if bindings.len() > MAX_UPDATES_PER_COMMAND {
                    return Err(Error::invalid(
                        "bindings",
                        format!(
                            "{} updates in one command; the limit is {MAX_UPDATES_PER_COMMAND}",
                            bindings.len()
                        ),
                    ));
                }
                for (index, update) in bindings.iter().enumerate() {
                    update.validate().map_err(|error| {
                        Error::invalid("bindings", format!("update {index}: {error}"))
                    })?;
                }
                Ok(())
            }
            InboundCommand::UnregisterEdge { aor, edge } => {
                validate_aor("aor", aor)?;
                Ok(validate_name("edge", edge)?)
            }
            InboundCommand::PutEdge { edge, .. } => Ok(edge.validate()?),
            InboundCommand::DeleteEdge { name } => Ok(validate_name("name", name)?),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundConfig {
    // Each part is shared until changed: the state machine's readers hold the previous
    // state, so a batch of registration refreshes copies the registrations, not the DIDs.
    /// By E.164 number with `+`.
    dids: Arc<BTreeMap<String, Did>>,
    /// By AOR.
    devices: Arc<BTreeMap<String, Device>>,
    /// Default continuity plan by tenant name (the routing `Tenant` is not changed for this).
    tenant_plans: Arc<BTreeMap<String, ContinuityPlan>>,
    registrations: Arc<Registrations>,
    /// Declared edges, by name.
    edges: Arc<BTreeMap<String, Edge>>,
}

/// A change not yet made, seen by the loop check as if it were.
#[derive(Clone, Copy, Default)]
struct Pending<'a> {
    did: Option<&'a Did>,
    device: Option<&'a Device>,
    /// A tenant and its new default plan (`None`: removed).
    tenant_plan: Option<(&'a str, Option<&'a ContinuityPlan>)>,
}

impl InboundConfig {
    pub fn did(&self, number: &str) -> Option<&Did> {
        self.dids.get(number)
    }

    /// DIDs in number order.
    pub fn dids(&self) -> impl Iterator<Item = &Did> {
        self.dids.values()
    }

    pub fn device(&self, aor: &str) -> Option<&Device> {
        self.devices.get(aor)
    }

    /// Devices in AOR order.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    pub fn tenant_plan(&self, tenant: &str) -> Option<&ContinuityPlan> {
        self.tenant_plans.get(tenant)
    }

    /// Why the routing tenant `tenant` can't be deleted: a DID, a device or a continuity plan
    /// of its still exists. `None` when nothing inbound uses it.
    pub fn tenant_in_use(&self, tenant: &str) -> Option<Error> {
        let user = self
            .dids
            .values()
            .find(|did| did.tenant == tenant)
            .map(|did| format!("DID {}", did.number))
            .or_else(|| {
                self.devices
                    .values()
                    .find(|device| device.tenant == tenant)
                    .map(|device| format!("device {}", device.aor))
            })
            .or_else(|| {
                self.tenant_plans
                    .contains_key(tenant)
                    .then(|| "its default continuity plan".to_owned())
            })?;
        Some(Error::FailedPrecondition(format!(
            "tenant {tenant:?} is still used by {user}: remove its inbound configuration first"
        )))
    }

    /// Drops the bindings expired at log time `now_ms` (the state machine calls it on ticks;
    /// commands do it themselves).
    pub fn expire(&mut self, now_ms: u64) {
        if self.registrations.expiry_due(now_ms) {
            Arc::make_mut(&mut self.registrations).expire(now_ms);
        }
    }

    pub fn edge(&self, name: &str) -> Option<&Edge> {
        self.edges.get(name)
    }

    /// Declared edges in name order.
    pub fn edges(&self) -> impl Iterator<Item = &Edge> {
        self.edges.values()
    }

    pub fn registrations(&self) -> &Registrations {
        &self.registrations
    }

    /// The plan a DID's calls follow: its own, else its device's, else its tenant's default.
    pub fn effective_plan<'a>(&'a self, did: &'a Did) -> Option<&'a ContinuityPlan> {
        self.effective_plan_with(Pending::default(), did)
    }

    /// Applies one command at log time `now_ms`. `tenant_exists` answers from the routing
    /// configuration, which owns tenants. Nothing changes when an error is returned; bindings
    /// expired at `now_ms` are reclaimed after a command succeeds.
    pub fn apply(
        &mut self,
        now_ms: u64,
        command: &InboundCommand,
        tenant_exists: impl Fn(&str) -> bool,
    ) -> Result<InboundResponse, Error> {
        command.validate()?;
        let response = match command {
            InboundCommand::PutDid { did, mode, within } => {
                let existing = self.dids.get(&did.number).map(|did| did.tenant.as_str());
                check_within(within.as_deref(), existing)?;
                self.put_did(did, *mode, &tenant_exists)?
            }
            InboundCommand::DeleteDid { number } => {
                if !self.dids.contains_key(number) {
                    return Err(Error::not_found("did", number.clone()));
                }
                Arc::make_mut(&mut self.dids).remove(number);
                InboundResponse::Deleted
            }
            InboundCommand::PutDevice {
                device,
                mode,
                within,
            } => {
                let existing = self.devices.get(&device.aor).map(|d| d.tenant.as_str());
                check_within(within.as_deref(), existing)?;
                self.put_device(device, *mode, &tenant_exists)?
            }
            InboundCommand::DeleteDevice { aor } => {
                if !self.devices.contains_key(aor) {
                    return Err(Error::not_found("device", aor.clone()));
                }
                if let Some(did) = self.dids_of_device(aor).next() {
                    return Err(Error::FailedPrecondition(format!(
                        "device {aor:?} is rung by DID {}: point the DID elsewhere or delete it \
                         first",
                        did.number
                    )));
                }
                Arc::make_mut(&mut self.devices).remove(aor);
                Arc::make_mut(&mut self.registrations).remove_aor(aor);
                InboundResponse::Deleted
            }
            InboundCommand::SetTenantContinuity { tenant, plan } => {
                self.set_tenant_plan(tenant, plan.as_ref(), &tenant_exists)?
            }
            InboundCommand::Register { bindings } => self.register(now_ms, bindings),
            InboundCommand::PutEdge { edge, mode } => {
                let replaced = self.edges.contains_key(&edge.name);
                mode.check("edge", &edge.name, replaced)?;
                if !replaced && self.edges.len() >= MAX_EDGES {
                    return Err(Error::LimitReached(format!(
                        "the cluster has {MAX_EDGES} edges, the most it can hold"
                    )));
                }
                Arc::make_mut(&mut self.edges).insert(edge.name.clone(), edge.clone());
                InboundResponse::Put { replaced }
            }
            InboundCommand::DeleteEdge { name } => {
                if !self.edges.contains_key(name) {
                    return Err(Error::not_found("edge", name.clone()));
                }
                Arc::make_mut(&mut self.edges).remove(name);
                InboundResponse::Deleted
            }
            InboundCommand::UnregisterEdge { aor, edge } => {
                let removed = if self
                    .registrations
                    .all(aor)
                    .iter()
                    .any(|binding| binding.edge == *edge)
                {
                    Arc::make_mut(&mut self.registrations).unregister_all(aor, edge)
                } else {
                    0
                };
                InboundResponse::Unregistered {
                    removed: u32::try_from(removed).unwrap_or(u32::MAX),
                }
            }
        };
        if self.registrations.expiry_due(now_ms) {
            Arc::make_mut(&mut self.registrations).expire(now_ms);
        }
        Ok(response)
    }

    fn put_did(
        &mut self,
        did: &Did,
        mode: PutMode,
        tenant_exists: &impl Fn(&str) -> bool,
    ) -> Result<InboundResponse, Error> {
        let replaced = self.dids.contains_key(&did.number);
        mode.check("did", &did.number, replaced)?;
        if !tenant_exists(&did.tenant) {
            return Err(Error::not_found("tenant", did.tenant.clone()));
        }
        if let Some(aor) = &did.device {
            let device = self
                .devices
                .get(aor)
                .ok_or_else(|| Error::not_found("device", aor.clone()))?;
            if device.tenant != did.tenant {
                return Err(Error::FailedPrecondition(format!(
                    "device {aor:?} belongs to tenant {:?}, not {:?}",
                    device.tenant, did.tenant
                )));
            }
        }
        if !replaced && self.dids.len() >= MAX_DIDS {
            return Err(Error::LimitReached(format!(
                "the configuration has {MAX_DIDS} DIDs, the most it may have"
            )));
        }
        let pending = Pending {
            did: Some(did),
            ..Pending::default()
        };
        self.check_no_loop(pending, [did.number.as_str()])?;
        Arc::make_mut(&mut self.dids).insert(did.number.clone(), did.clone());
        Ok(InboundResponse::Put { replaced })
    }

    fn put_device(
        &mut self,
        device: &Device,
        mode: PutMode,
        tenant_exists: &impl Fn(&str) -> bool,
    ) -> Result<InboundResponse, Error> {
        mode.check(
            "device",
            &device.aor,
            self.devices.contains_key(&device.aor),
        )?;
        if !tenant_exists(&device.tenant) {
            return Err(Error::not_found("tenant", device.tenant.clone()));
        }
        let replaced = match self.devices.get(&device.aor) {
            Some(existing) => {
                if existing.tenant != device.tenant {
                    if let Some(did) = self.dids_of_device(&device.aor).next() {
                        return Err(Error::FailedPrecondition(format!(
                            "device {:?} is rung by DID {} of tenant {:?}: it cannot move to \
                             tenant {:?} while DIDs ring it",
                            device.aor, did.number, existing.tenant, device.tenant
                        )));
                    }
                }
                true
            }
            None => {
                if self.devices.len() >= MAX_DEVICES {
                    return Err(Error::LimitReached(format!(
                        "the configuration has {MAX_DEVICES} devices, the most it may have"
                    )));
                }
                false
            }
        };
        let pending = Pending {
            device: Some(device),
            ..Pending::default()
        };
        let starts: Vec<&str> = self
            .dids_of_device(&device.aor)
            .map(|did| did.number.as_str())
            .collect();
        self.check_no_loop(pending, starts)?;
        Arc::make_mut(&mut self.devices).insert(device.aor.clone(), device.clone());
        Ok(InboundResponse::Put { replaced })
    }

    fn set_tenant_plan(
        &mut self,
        tenant: &str,
        plan: Option<&ContinuityPlan>,
        tenant_exists: &impl Fn(&str) -> bool,
    ) -> Result<InboundResponse, Error> {
        let Some(plan) = plan else {
            // Removing a plan cannot close a loop, and is allowed for a tenant that is gone.
            Arc::make_mut(&mut self.tenant_plans).remove(tenant);
            return Ok(InboundResponse::TenantContinuitySet);
        };
        if !tenant_exists(tenant) {
            return Err(Error::not_found("tenant", tenant));
        }
        if !self.tenant_plans.contains_key(tenant) && self.tenant_plans.len() >= MAX_TENANT_PLANS {
            return Err(Error::LimitReached(format!(
                "{MAX_TENANT_PLANS} tenants have a default continuity plan, the most allowed"
            )));
        }
        let pending = Pending {
            tenant_plan: Some((tenant, Some(plan))),
            ..Pending::default()
        };
        let starts: Vec<&str> = self
            .dids
            .values()
            .filter(|did| did.tenant == tenant)
            .map(|did| did.number.as_str())
            .collect();
        self.check_no_loop(pending, starts)?;
        Arc::make_mut(&mut self.tenant_plans).insert(tenant.to_owned(), plan.clone());
        Ok(InboundResponse::TenantContinuitySet)
    }

    fn register(&mut self, now_ms: u64, updates: &[RegistrationUpdate]) -> InboundResponse {
        let mut applied = 0_u32;
        let mut rejected = Vec::new();
        for (index, update) in updates.iter().enumerate() {
            // The index fits: the command holds at most MAX_UPDATES_PER_COMMAND updates.
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            // Unregistering needs no device: the binding may outlive a deleted device's entry
            // in the edge's view.
            if update.expires_in_ms != 0 && !self.devices.contains_key(&update.aor) {
                rejected.push(RejectedUpdate {
                    index,
                    error: Error::not_found("device", update.aor.clone()),
                });
                continue;
            }
            let result = Arc::make_mut(&mut self.registrations).register(
                &update.aor,
                &update.edge,
                &update.contact,
                update.expires_in_ms,
                &update.path,
                update.received.as_deref(),
                now_ms,
            );
            match result {
                Ok(()) => applied += 1,
                Err(error @ RegisterError::TooManyBindings { .. }) => {
                    rejected.push(RejectedUpdate {
                        index,
                        error: Error::LimitReached(error.to_string()),
                    });
                }
            }
        }
        InboundResponse::Registered { applied, rejected }
    }

    fn dids_of_device<'a>(&'a self, aor: &'a str) -> impl Iterator<Item = &'a Did> + 'a {
        self.dids
            .values()
            .filter(move |did| did.device.as_deref() == Some(aor))
    }

    fn did_with<'a>(&'a self, pending: Pending<'a>, number: &str) -> Option<&'a Did> {
        match pending.did {
            Some(did) if did.number == number => Some(did),
            _ => self.dids.get(number),
        }
    }

    fn effective_plan_with<'a>(
        &'a self,
        pending: Pending<'a>,
        did: &'a Did,
    ) -> Option<&'a ContinuityPlan> {
        if let Some(plan) = &did.continuity {
            return Some(plan);
        }
        if let Some(aor) = &did.device {
            let device = match pending.device {
                Some(device) if &device.aor == aor => Some(device),
                _ => self.devices.get(aor),
            };
            if let Some(plan) = device.and_then(|device| device.continuity.as_ref()) {
                return Some(plan);
            }
        }
        match pending.tenant_plan {
            Some((tenant, plan)) if tenant == did.tenant => plan,
            _ => self.tenant_plans.get(&did.tenant),
        }
    }

    /// Refuses the pending change if it would put any of `starts` (the DIDs whose effective
    /// plan it changes) on a continuity loop. The configuration has no loop before the change,
    /// so any loop after it goes through one of them. One depth-first search with shared marks,
    /// iterative so a long chain cannot overflow the stack.
    fn check_no_loop<'a>(
        &'a self,
        pending: Pending<'a>,
        starts: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Error> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            OnPath,
            Done,
        }
        let mut marks: BTreeMap<&'a str, Mark> = BTreeMap::new();
        let next_dids = |number: &'a str| -> Vec<&'a str> {
            self.did_with(pending, number)
                .and_then(|did| self.effective_plan_with(pending, did))
                .map(|plan| {
                    plan.numbers()
                        .filter(|target| self.did_with(pending, target).is_some())
                        .collect()
                })
                .unwrap_or_default()
        };
        for start in starts {
            if marks.contains_key(start) {
                continue;
            }
            marks.insert(start, Mark::OnPath);
            let mut path: Vec<(&'a str, Vec<&'a str>, usize)> = vec![(start, next_dids(start), 0)];
            while let Some((number, targets, next)) = path.last_mut() {
                let number = *number;
                let target = targets.get(*next).copied();
                *next += 1;
                let Some(target) = target else {
                    marks.insert(number, Mark::Done);
                    path.pop();
                    continue;
                };
                match marks.get(target) {
                    Some(Mark::Done) => {}
                    Some(Mark::OnPath) => {
                        let from = path
                            .iter()
                            .position(|(on_path, _, _)| *on_path == target)
                            .unwrap_or(0);
                        let mut chain: Vec<&str> =
                            path[from..].iter().map(|(number, _, _)| *number).collect();
                        chain.push(target);
                        return Err(Error::FailedPrecondition(format!(
                            "continuity loop: {}",
                            chain.join(" -> ")
                        )));
                    }
                    None => {
                        marks.insert(target, Mark::OnPath);
                        path.push((target, next_dids(target), 0));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Refuses a put by a caller limited to `within` of an object that belongs to another tenant
/// (`existing`); the message names neither tenant.
fn check_within(within: Option<&[String]>, existing: Option<&str>) -> Result<(), Error> {
    match (within, existing) {
        (Some(within), Some(owner)) if !within.iter().any(|tenant| tenant == owner) => Err(
            Error::PermissionDenied("permission denied: outside this token's tenants".into()),
        ),
        _ => Ok(()),
    }
}
