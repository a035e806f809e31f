//! Who may do what. Every client RPC is in one table ([`RPCS`]) with what it needs; roles
//! ([`Role`]) grant reads or writes of areas ([`Area`]); a token or certificate names a role
//! and, for the `proxy` and `tenant` roles, the tenants it is limited to ([`Scope`]). The node
//! checks the table in one layer before any handler runs and refuses what is not in it;
//! handlers check the tenant of the object a request touches against the caller's scope.
//!
//! Tokens ([`tokens`]) are kept in replicated state as hashes only; [`guard`] bounds failed
//! attempts per source and per token.

pub mod guard;
pub mod tokens;

use serde::{Deserialize, Serialize};

/// A set of permissions, named on a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Everything, tokens and cluster membership included.
    Admin,
    /// Routing, carriers, rates, health, DIDs, devices, edges and continuity; reads of the
    /// cluster and settings; route lookups (`route test`).
    Operator,
    /// Reads of everything; no change, no call routing.
    Auditor,
    /// A SIP proxy: the route service only, for its tenants.
    Proxy,
    /// A customer: its own tenant's policy, DIDs, devices and continuity targets.
    Tenant,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Operator,
        Role::Auditor,
        Role::Proxy,
        Role::Tenant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Proxy => "proxy",
            Role::Tenant => "tenant",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// Whether the role may `access` the `area`, for the tenants of its scope.
    pub fn allows(self, area: Area, access: Access) -> bool {
        use Access::Read;
        use Area::*;
        match self {
            Role::Admin => true,
            Role::Operator => match area {
                Routing | Policy | Rates | Health | Numbers | Edges | Calls => true,
                Cluster | Settings | Records => access == Read,
                Tokens | Audit => false,
            },
            Role::Auditor => access == Read && area != Calls,
            Role::Proxy => area == Calls,
            Role::Tenant => match area {
                Routing | Records => access == Read,
                Numbers | Policy => true,
                _ => false,
            },
        }
    }

    /// Whether a token of this role is limited to the tenants it lists.
    pub fn is_tenant_scoped(self) -> bool {
        matches!(self, Role::Proxy | Role::Tenant)
    }
}

/// What an RPC is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Area {
    /// Membership and status.
    Cluster,
    /// The settings namespace.
    Settings,
    /// Tokens: who may use the cluster.
    Tokens,
    /// Tenants, carriers and gateways.
    Routing,
    /// A tenant's calling policy: which calls its users may make. A tenant-scoped token may
    /// change its own tenant's (the customer's choice, like its DIDs); what the cluster does
    /// on its own against fraud (alert actions) is the operator's alone.
    Policy,
    /// Rate decks.
    Rates,
    /// Gateway health, its policy and the event log.
    Health,
    /// DIDs, devices, their registrations and continuity plans: each belongs to a tenant.
    Numbers,
    /// Edge proxies.
    Edges,
    /// Routing calls: the route service.
    Calls,
    /// The audit log.
    Audit,
    /// Call detail records: a tenant's own, for a tenant token.
    Records,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
}

/// What one RPC needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the gRPC health check, which load balancers call without credentials.
    Nothing,
    /// The node's bootstrap secret, or an admin: `InitCluster` on a node with no cluster yet.
    Bootstrap,
    /// Any valid credential (server reflection: the schema, no data).
    Authenticated,
    /// A role that allows `access` to `area`.
    Permission(Area, Access),
    /// A permission that depends on the request (`DeleteObject`: the kind deleted); the layer
    /// checks the credential, the handler checks [`Role::allows`] for the kind.
    InHandler,
}

/// The client RPCs, `Service/Method` as in the gRPC path, and what each needs. A path that is
/// not here is refused to everyone: a new RPC is unusable until it is added.
pub const RPCS: &[(&str, Need)] = {
    use Access::{Read, Write};
    use Area::*;
    use Need::*;
    &[
        ("grpc.health.v1.Health/Check", Nothing),
        ("grpc.health.v1.Health/Watch", Nothing),
        (
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            Authenticated,
        ),
        (
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            Authenticated,
        ),
        ("trunkline.v1.AdminService/InitCluster", Bootstrap),
        (
            "trunkline.v1.AdminService/JoinCluster",
            Permission(Cluster, Write),
        ),
        (
            "trunkline.v1.AdminService/PromoteMember",
            Permission(Cluster, Write),
        ),
        (
            "trunkline.v1.AdminService/RemoveMember",
            Permission(Cluster, Write),
        ),
        (
            "trunkline.v1.AdminService/ClusterStatus",
            Permission(Cluster, Read),
        ),
        (
            "trunkline.v1.AdminService/ListMembers",
            Permission(Cluster, Read),
        ),
        (
            "trunkline.v1.AdminService/GetSetting",
            Permission(Settings, Read),
        ),
        (
            "trunkline.v1.AdminService/ListSettings",
            Permission(Settings, Read),
        ),
        (
            "trunkline.v1.AdminService/SetSetting",
            Permission(Settings, Write),
        ),
        (
            "trunkline.v1.AdminService/DeleteSetting",
            Permission(Settings, Write),
        ),
        (
            "trunkline.v1.AdminService/CompareAndSetSetting",
            Permission(Settings, Write),
        ),
        (
            "trunkline.v1.AdminService/PutTenant",
            Permission(Routing, Write),
        ),
        (
            "trunkline.v1.AdminService/PutCarrier",
            Permission(Routing, Write),
        ),
        (
            "trunkline.v1.AdminService/PutGateway",
            Permission(Routing, Write),
        ),
        (
            "trunkline.v1.AdminService/SetCallingPolicy",
            Permission(Policy, Write),
        ),
        (
            "trunkline.v1.AdminService/GetUsage",
            Permission(Policy, Read),
        ),
        (
            "trunkline.v1.AdminService/ListCdrs",
            Permission(Records, Read),
        ),
        (
            "trunkline.v1.AdminService/ListAlerts",
            Permission(Policy, Read),
        ),
        // What the cluster does on its own against fraud is the operator's: tenant tokens
        // are refused these (they are not tenant-checked).
        (
            "trunkline.v1.AdminService/AcknowledgeAlert",
            Permission(Policy, Write),
        ),
        (
            "trunkline.v1.AdminService/UnblockTenant",
            Permission(Policy, Write),
        ),
        (
            "trunkline.v1.AdminService/GetAlertPolicy",
            Permission(Policy, Read),
        ),
        (
            "trunkline.v1.AdminService/SetAlertRule",
            Permission(Policy, Write),
        ),
        ("trunkline.v1.AdminService/DeleteObject", InHandler),
        (
            "trunkline.v1.AdminService/ListRouting",
            Permission(Routing, Read),
        ),
        (
            "trunkline.v1.AdminService/DrainGateway",
            Permission(Routing, Write),
        ),
        (
            "trunkline.v1.AdminService/StageRates",
            Permission(Rates, Write),
        ),
        (
            "trunkline.v1.AdminService/CommitRates",
            Permission(Rates, Write),
        ),
        (
            "trunkline.v1.AdminService/AbortRates",
            Permission(Rates, Write),
        ),
        (
            "trunkline.v1.AdminService/ListImports",
            Permission(Rates, Read),
        ),
        (
            "trunkline.v1.AdminService/ExportRates",
            Permission(Rates, Read),
        ),
        (
            "trunkline.v1.AdminService/GetHealthPolicy",
            Permission(Health, Read),
        ),
        (
            "trunkline.v1.AdminService/SetHealthPolicy",
            Permission(Health, Write),
        ),
        (
            "trunkline.v1.AdminService/ListHealth",
            Permission(Health, Read),
        ),
        (
            "trunkline.v1.AdminService/WatchEvents",
            Permission(Health, Read),
        ),
        (
            "trunkline.v1.AdminService/PutDid",
            Permission(Numbers, Write),
        ),
        (
            "trunkline.v1.AdminService/PutDevice",
            Permission(Numbers, Write),
        ),
        (
            "trunkline.v1.AdminService/SetTenantContinuity",
            Permission(Numbers, Write),
        ),
        (
            "trunkline.v1.AdminService/ListInbound",
            Permission(Numbers, Read),
        ),
        (
            "trunkline.v1.AdminService/ListBindings",
            Permission(Numbers, Read),
        ),
        (
            "trunkline.v1.AdminService/PutEdge",
            Permission(Edges, Write),
        ),
        (
            "trunkline.v1.AdminService/CreateToken",
            Permission(Tokens, Write),
        ),
        (
            "trunkline.v1.AdminService/ListTokens",
            Permission(Tokens, Read),
        ),
        (
            "trunkline.v1.AdminService/RevokeToken",
            Permission(Tokens, Write),
        ),
        (
            "trunkline.v1.AdminService/ListAudit",
            Permission(Audit, Read),
        ),
        (
            "trunkline.v1.AdminService/RotateKeys",
            Permission(Cluster, Write),
        ),
        // Everything, secrets included (token records, the route token key): admins only.
        (
            "trunkline.v1.AdminService/Backup",
            Permission(Cluster, Write),
        ),
        (
            "trunkline.v1.RouteService/RouteOutbound",
            Permission(Calls, Write),
        ),
        (
            "trunkline.v1.RouteService/ReportLeg",
            Permission(Calls, Write),
        ),
        (
            "trunkline.v1.RouteService/ReportRegistration",
            Permission(Calls, Write),
        ),
        (
            "trunkline.v1.RouteService/RouteInbound",
            Permission(Calls, Write),
        ),
        (
            "trunkline.v1.RouteService/ReportCallEnd",
            Permission(Calls, Write),
        ),
        // Each request on the stream is checked by its own RPC's handler.
        (
            "trunkline.v1.RouteService/RouteStream",
            Permission(Calls, Write),
        ),
    ]
};

/// The RPCs whose handlers check the tenant of what they touch against the caller's scope.
/// A caller limited to some tenants (a `proxy` or `tenant` token) is refused every other RPC,
/// whatever its role allows, so a handler that does not check never serves one.
pub const TENANT_CHECKED: &[&str] = &[
    "trunkline.v1.AdminService/ListRouting",
    "trunkline.v1.AdminService/ListInbound",
    "trunkline.v1.AdminService/PutDid",
    "trunkline.v1.AdminService/PutDevice",
    "trunkline.v1.AdminService/SetTenantContinuity",
    "trunkline.v1.AdminService/SetCallingPolicy",
    "trunkline.v1.AdminService/GetUsage",
    "trunkline.v1.AdminService/ListCdrs",
    "trunkline.v1.AdminService/ListAlerts",
    "trunkline.v1.AdminService/DeleteObject",
    "trunkline.v1.RouteService/RouteOutbound",
    "trunkline.v1.RouteService/ReportLeg",
    "trunkline.v1.RouteService/ReportRegistration",
    "trunkline.v1.RouteService/RouteInbound",
    "trunkline.v1.RouteService/ReportCallEnd",
    "trunkline.v1.RouteService/RouteStream",
];

/// What the RPC at gRPC `path` (`/package.Service/Method`) needs; `None`: it is not in the
/// table and is refused.
pub fn need(path: &str) -> Option<Need> {
    let method = path.strip_prefix('/')?;
    RPCS.iter()
        .find(|(name, _)| *name == method)
        .map(|(_, need)| *need)
}

/// Which tenants a credential may touch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// Every tenant (admin, operator, auditor; a proxy of every tenant).
    All,
    /// Only these.
    Tenants(Vec<String>),
}

impl Scope {
    pub fn covers(&self, tenant: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenants(tenants) => tenants.iter().any(|own| own == tenant),
        }
    }
}

/// Who is calling, once authenticated: what the audit log records and handlers check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's id; empty for the bootstrap secret (which is no token).
    pub token_id: String,
    /// The token's name.
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

impl Principal {
    pub fn allows(&self, area: Area, access: Access) -> bool {
        self.role.allows(area, access)
    }

    pub fn covers(&self, tenant: &str) -> bool {
        self.scope.covers(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_one_entry() {
        let mut names: Vec<&str> = RPCS.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "an RPC is in the table twice");
        assert_eq!(
            need("/trunkline.v1.AdminService/PutTenant"),
            Some(Need::Permission(Area::Routing, Access::Write))
        );
        assert_eq!(need("/trunkline.v1.AdminService/Unknown"), None);
        assert_eq!(need("trunkline.v1.AdminService/PutTenant"), None);
    }

    #[test]
    fn only_admin_manages_tokens_and_membership() {
        for role in Role::ALL {
            assert_eq!(
                role.allows(Area::Tokens, Access::Write),
                role == Role::Admin,
                "{role:?}"
            );
            assert_eq!(
                role.allows(Area::Cluster, Access::Write),
                role == Role::Admin,
                "{role:?}"
            );
        }
    }

    #[test]
    fn auditor_reads_everything_and_changes_nothing() {
        use Area::*;
        for area in [
            Cluster, Settings, Tokens, Routing, Rates, Health, Numbers, Edges, Records,
        ] {
            assert!(Role::Auditor.allows(area, Access::Read), "{area:?}");
            assert!(!Role::Auditor.allows(area, Access::Write), "{area:?}");
        }
        assert!(!Role::Auditor.allows(Calls, Access::Write));
    }

    #[test]
    fn proxy_only_routes_calls() {
        use Area::*;
        for area in [
            Cluster, Settings, Tokens, Routing, Rates, Health, Numbers, Edges, Records,
        ] {
            for access in [Access::Read, Access::Write] {
                assert!(!Role::Proxy.allows(area, access), "{area:?} {access:?}");
            }
        }
        assert!(Role::Proxy.allows(Calls, Access::Write));
    }

    #[test]
    fn scopes_cover_their_tenants_only() {
        let scope = Scope::Tenants(vec!["a".into()]);
        assert!(scope.covers("a"));
        assert!(!scope.covers("b"));
        assert!(Scope::All.covers("b"));
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert_eq!(Role::parse("root"), None);
    }
}
