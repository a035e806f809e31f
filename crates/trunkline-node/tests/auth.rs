//! Authentication and authorisation on a real node started with `--require-auth`: the
//! bootstrap secret initialises the cluster once, every client RPC is walked for every role
//! with its own tenant and another, listings are narrowed to a tenant's own objects, and
//! failed authentication says only "unauthenticated", locks a token and limits a source.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::time::Duration;

use support::{routing::put_tenant, serial, wait_for_leader, TestNode};
use tonic::Code;
use trunkline_client::{proto, Client, ClientError, Retry};

const OWN: &str = "own";
const OTHER: &str = "other";

fn did_of(tenant: &str) -> &'static str {
    if tenant == OWN {
        "+14155550101"
    } else {
        "+14155550102"
    }
}

fn device_of(tenant: &str) -> String {
    format!("sip:alice@{tenant}.example")
}

fn code<T>(result: Result<T, ClientError>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(ClientError::Status { status, .. }) => status.code(),
        Err(error) => panic!("no node answered: {error}"),
    }
}

fn status<T: std::fmt::Debug>(result: Result<T, ClientError>) -> tonic::Status {
    match result.unwrap_err() {
        ClientError::Status { status, .. } => status,
        error => panic!("no node answered: {error}"),
    }
}

macro_rules! admin {
    ($client:expr, $method:ident, $request:expr) => {{
        let request = $request;
        $client
            .admin(Retry::NotSent, |mut admin| {
                let request = request.clone();
                async move { admin.$method(request).await }
            })
            .await
    }};
}

macro_rules! route {
    ($client:expr, $method:ident, $request:expr) => {{
        let request = $request;
        $client
            .route(Retry::NotSent, |mut route| {
                let request = request.clone();
                async move { route.$method(request).await }
            })
            .await
    }};
}

fn with_token(node: &TestNode, token: &str) -> Client {
    node.client().with_token(token).unwrap()
}

async fn init(node: &TestNode) -> String {
    let bootstrap = std::fs::read_to_string(node.data_dir.join("bootstrap.token")).unwrap();
    let response = admin!(
        with_token(node, &bootstrap),
        init_cluster,
        proto::InitClusterRequest {}
    )
    .unwrap();
    assert!(response.admin_token.starts_with("tl1."), "{response:?}");
    response.admin_token
}

async fn create_token(admin: &Client, name: &str, role: &str, tenants: &[&str]) -> String {
    admin!(
        admin,
        create_token,
        proto::CreateTokenRequest {
            name: name.into(),
            role: role.into(),
            tenants: tenants.iter().map(|tenant| tenant.to_string()).collect(),
            ..Default::default()
        }
    )
    .unwrap()
    .token
}

/// Puts (creates or replaces) the DID and device of `tenant`, so every call finds them.
async fn restore_numbers(admin: &Client, tenant: &str) {
    admin!(
        admin,
        put_device,
        proto::PutDeviceRequest {
            device: Some(proto::Device {
                aor: device_of(tenant),
                tenant: tenant.into(),
                ..Default::default()
            }),
            mode: proto::PutMode::Unspecified.into(),
        }
    )
    .unwrap();
    admin!(
        admin,
        put_did,
        proto::PutDidRequest {
            did: Some(proto::Did {
                number: did_of(tenant).into(),
                tenant: tenant.into(),
                device: device_of(tenant),
                continuity: None,
            }),
            mode: proto::PutMode::Unspecified.into(),
        }
    )
    .unwrap();
}

/// Calls `rpc` about `tenant`'s objects (where it has any) and returns the answer's code.
async fn call(client: &Client, admin: &Client, rpc: &str, tenant: &str) -> Code {
    let did = did_of(tenant).to_owned();
    let device = device_of(tenant);
    match rpc {
        "InitCluster" => code(admin!(client, init_cluster, proto::InitClusterRequest {})),
        "JoinCluster" => code(admin!(
            client,
            join_cluster,
            proto::JoinClusterRequest::default()
        )),
        "PromoteMember" => code(admin!(
            client,
            promote_member,
            proto::PromoteMemberRequest::default()
        )),
        "RemoveMember" => code(admin!(
            client,
            remove_member,
            proto::RemoveMemberRequest::default()
        )),
        "ClusterStatus" => code(admin!(
            client,
            cluster_status,
            proto::ClusterStatusRequest::default()
        )),
        "ListMembers" => code(admin!(
            client,
            list_members,
            proto::ListMembersRequest::default()
        )),
        "GetSetting" => code(admin!(
            client,
            get_setting,
            proto::GetSettingRequest {
                key: "k".into(),
                consistency: None
            }
        )),
        "ListSettings" => code(admin!(
            client,
            list_settings,
            proto::ListSettingsRequest::default()
        )),
        "SetSetting" => code(admin!(
            client,
            set_setting,
            proto::SetSettingRequest {
                key: "k".into(),
                value: "v".into()
            }
        )),
        "DeleteSetting" => code(admin!(
            client,
            delete_setting,
            proto::DeleteSettingRequest { key: "k".into() }
        )),
        "CompareAndSetSetting" => code(admin!(
            client,
            compare_and_set_setting,
            proto::CompareAndSetSettingRequest {
                key: "k".into(),
                expected: None,
                value: Some("v".into())
            }
        )),
        "PutTenant" => code(admin!(
            client,
            put_tenant,
            proto::PutTenantRequest::default()
        )),
        "PutCarrier" => code(admin!(
            client,
            put_carrier,
            proto::PutCarrierRequest::default()
        )),
        "PutGateway" => code(admin!(
            client,
            put_gateway,
            proto::PutGatewayRequest::default()
        )),
        "SetCallingPolicy" => code(admin!(
            client,
            set_calling_policy,
            proto::SetCallingPolicyRequest {
                tenant: tenant.into(),
                scope: "tenant".into(),
                rules: None,
            }
        )),
        "DeleteObject" => code(admin!(
            client,
            delete_object,
            proto::DeleteObjectRequest {
                kind: proto::ObjectKind::Did.into(),
                name: did
            }
        )),
        "ListRouting" => code(admin!(
            client,
            list_routing,
            proto::ListRoutingRequest::default()
        )),
        "DrainGateway" => code(admin!(
            client,
            drain_gateway,
            proto::DrainGatewayRequest {
                gateway: "nope".into(),
                drained: true
            }
        )),
        "StageRates" => code(admin!(
            client,
            stage_rates,
            proto::StageRatesRequest::default()
        )),
        "CommitRates" => code(admin!(
            client,
            commit_rates,
            proto::CommitRatesRequest::default()
        )),
        "AbortRates" => code(admin!(
            client,
            abort_rates,
            proto::AbortRatesRequest::default()
        )),
        "ListImports" => code(admin!(
            client,
            list_imports,
            proto::ListImportsRequest::default()
        )),
        "ExportRates" => code(admin!(
            client,
            export_rates,
            proto::ExportRatesRequest::default()
        )),
        "GetHealthPolicy" => code(admin!(
            client,
            get_health_policy,
            proto::GetHealthPolicyRequest::default()
        )),
        "SetHealthPolicy" => code(admin!(
            client,
            set_health_policy,
            proto::SetHealthPolicyRequest::default()
        )),
        "ListHealth" => code(admin!(
            client,
            list_health,
            proto::ListHealthRequest::default()
        )),
        "WatchEvents" => code(admin!(
            client,
            watch_events,
            proto::WatchEventsRequest::default()
        )),
        "PutDid" => code(admin!(
            client,
            put_did,
            proto::PutDidRequest {
                did: Some(proto::Did {
                    number: did,
                    tenant: tenant.into(),
                    device,
                    continuity: None
                }),
                mode: proto::PutMode::Create.into()
            }
        )),
        "PutDevice" => code(admin!(
            client,
            put_device,
            proto::PutDeviceRequest {
                device: Some(proto::Device {
                    aor: device,
                    tenant: tenant.into(),
                    ..Default::default()
                }),
                mode: proto::PutMode::Create.into()
            }
        )),
        "SetTenantContinuity" => code(admin!(
            client,
            set_tenant_continuity,
            proto::SetTenantContinuityRequest {
                tenant: tenant.into(),
                plan: None
            }
        )),
        "ListInbound" => code(admin!(
            client,
            list_inbound,
            proto::ListInboundRequest::default()
        )),
        "ListBindings" => code(admin!(
            client,
            list_bindings,
            proto::ListBindingsRequest {
                aor: device,
                consistency: None
            }
        )),
        "PutEdge" => code(admin!(client, put_edge, proto::PutEdgeRequest::default())),
        "CreateToken" => code(admin!(
            client,
            create_token,
            proto::CreateTokenRequest {
                name: "x".into(),
                role: "nope".into(),
                ..Default::default()
            }
        )),
        "ListTokens" => code(admin!(
            client,
            list_tokens,
            proto::ListTokensRequest::default()
        )),
        "RevokeToken" => code(admin!(
            client,
            revoke_token,
            proto::RevokeTokenRequest {
                token: "nope".into()
            }
        )),
        // The node has no keys: an allowed call fails after it starts (FAILED_PRECONDITION
        // in the stream), a refused one at once.
        "RotateKeys" => code(admin!(
            client,
            rotate_keys,
            proto::RotateKeysRequest::default()
        )),
        "Backup" => code(admin!(client, backup, proto::BackupRequest::default())),
        "ListAudit" => code(admin!(
            client,
            list_audit,
            proto::ListAuditRequest::default()
        )),
        // The stream opens for whoever may route calls; each request on it is then checked
        // as its own RPC: a refusal comes back as the answer's error.
        "RouteStream" => {
            let request = proto::RouteStreamRequest {
                id: 7,
                request: Some(proto::route_stream_request::Request::RouteOutbound(
                    proto::RouteOutboundRequest {
                        tenant: tenant.into(),
                        call_id: "call-1".into(),
                        to: "+14155550199".into(),
                        ..Default::default()
                    },
                )),
            };
            let answer = client
                .route(Retry::NotSent, |mut route| {
                    let request = request.clone();
                    async move {
                        let mut answers = route
                            .route_stream(tokio_stream::iter([request]))
                            .await?
                            .into_inner();
                        Ok(tonic::Response::new(answers.message().await?))
                    }
                })
                .await;
            match answer {
                Ok(Some(answer)) => {
                    assert_eq!(answer.id, 7);
                    match answer.response {
                        Some(proto::route_stream_response::Response::Error(error)) => {
                            Code::from_i32(i32::try_from(error.code).unwrap())
                        }
                        Some(_) => Code::Ok,
                        None => panic!("an answer with nothing in it"),
                    }
                }
                Ok(None) => panic!("the stream ended without an answer"),
                Err(error) => code::<()>(Err(error)),
            }
        }
        "RouteOutbound" => code(route!(
            client,
            route_outbound,
            proto::RouteOutboundRequest {
                tenant: tenant.into(),
                call_id: "call-1".into(),
                to: "+14155550199".into(),
                ..Default::default()
            }
        )),
        "ReportLeg" => {
            // A real token of a call to the tenant's DID, issued to the admin: the device
            // registered, so the call rings it.
            let registered = route!(
                admin,
                report_registration,
                proto::ReportRegistrationRequest {
                    edge: "edge-1".into(),
                    aor: device.clone(),
                    contact: "sip:alice@192.0.2.10:5060".into(),
                    expires_s: 3_600,
                    ..Default::default()
                }
            )
            .unwrap();
            let routed = route!(
                admin,
                route_inbound,
                proto::RouteInboundRequest {
                    did: did.clone(),
                    call_id: "call-2".into(),
                    min_applied_index: registered.applied_index,
                    ..Default::default()
                }
            )
            .unwrap();
            code(route!(
                client,
                report_leg,
                proto::ReportLegRequest {
                    call_id: "call-2".into(),
                    route_token: routed.route_token,
                    sip_code: 486,
                    ..Default::default()
                }
            ))
        }
        "ReportRegistration" => code(route!(
            client,
            report_registration,
            proto::ReportRegistrationRequest {
                edge: "edge-1".into(),
                aor: device,
                contact: "sip:alice@192.0.2.10:5060".into(),
                expires_s: 60,
                ..Default::default()
            }
        )),
        "ReportCallEnd" => {
            // A real token of a call of the tenant, issued to the admin (no carrier takes it,
            // which does not matter for its end).
            let routed = route!(
                admin,
                route_outbound,
                proto::RouteOutboundRequest {
                    tenant: tenant.into(),
                    call_id: "call-3".into(),
                    to: "4155550100".into(),
                    ..Default::default()
                }
            )
            .unwrap();
            code(route!(
                client,
                report_call_end,
                proto::ReportCallEndRequest {
                    call_id: "call-3".into(),
                    route_token: routed.route_token,
                    ..Default::default()
                }
            ))
        }
        "GetUsage" => code(admin!(
            client,
            get_usage,
            proto::GetUsageRequest {
                tenant: tenant.into(),
                consistency: None,
            }
        )),
        "ListCdrs" => code(admin!(
            client,
            list_cdrs,
            proto::ListCdrsRequest {
                tenant: tenant.into(),
                ..Default::default()
            }
        )),
        "ListAlerts" => code(admin!(
            client,
            list_alerts,
            proto::ListAlertsRequest {
                tenant: tenant.into(),
                ..Default::default()
            }
        )),
        // No such alert: allowed callers get NOT_FOUND.
        "AcknowledgeAlert" => code(admin!(
            client,
            acknowledge_alert,
            proto::AcknowledgeAlertRequest { id: 9_999 }
        )),
        "UnblockTenant" => code(admin!(
            client,
            unblock_tenant,
            proto::UnblockTenantRequest {
                tenant: tenant.into()
            }
        )),
        "GetAlertPolicy" => code(admin!(
            client,
            get_alert_policy,
            proto::GetAlertPolicyRequest::default()
        )),
        // No settings: allowed callers get INVALID_ARGUMENT, nothing changes.
        "SetAlertRule" => code(admin!(
            client,
            set_alert_rule,
            proto::SetAlertRuleRequest::default()
        )),
        "RouteInbound" => code(route!(
            client,
            route_inbound,
            proto::RouteInboundRequest {
                did,
                call_id: "call-1".into(),
                ..Default::default()
            }
        )),
        other => panic!("the walk has no call for {other}: add one"),
    }
}

/// Who may call what, written out for each RPC: one letter per role, in the order admin,
/// operator, auditor, proxy (for tenant "own"), tenant ("own"). `y` allowed whatever the
/// tenant, `o` allowed for the token's own tenant only, `n` refused.
const EXPECTED: &[(&str, &str)] = &[
    ("InitCluster", "ynnnn"),
    ("JoinCluster", "ynnnn"),
    ("PromoteMember", "ynnnn"),
    ("RemoveMember", "ynnnn"),
    ("ClusterStatus", "yyynn"),
    ("ListMembers", "yyynn"),
    ("GetSetting", "yyynn"),
    ("ListSettings", "yyynn"),
    ("SetSetting", "ynnnn"),
    ("DeleteSetting", "ynnnn"),
    ("CompareAndSetSetting", "ynnnn"),
    ("PutTenant", "yynnn"),
    ("PutCarrier", "yynnn"),
    ("PutGateway", "yynnn"),
    ("SetCallingPolicy", "yynno"),
    ("GetUsage", "yyyno"),
    ("ListCdrs", "yyyno"),
    ("ListAlerts", "yyyno"),
    ("AcknowledgeAlert", "yynnn"),
    ("UnblockTenant", "yynnn"),
    ("GetAlertPolicy", "yyynn"),
    ("SetAlertRule", "yynnn"),
    ("DeleteObject", "yynno"),
    ("ListRouting", "yyyny"),
    ("DrainGateway", "yynnn"),
    ("StageRates", "yynnn"),
    ("CommitRates", "yynnn"),
    ("AbortRates", "yynnn"),
    ("ListImports", "yyynn"),
    ("ExportRates", "yyynn"),
    ("GetHealthPolicy", "yyynn"),
    ("SetHealthPolicy", "yynnn"),
    ("ListHealth", "yyynn"),
    ("WatchEvents", "yyynn"),
    ("PutDid", "yynno"),
    ("PutDevice", "yynno"),
    ("SetTenantContinuity", "yynno"),
    ("ListInbound", "yyyny"),
    ("ListBindings", "yyynn"),
    ("PutEdge", "yynnn"),
    ("CreateToken", "ynnnn"),
    ("ListTokens", "ynynn"),
    ("RevokeToken", "ynnnn"),
    ("ListAudit", "ynynn"),
    ("RotateKeys", "ynnnn"),
    ("Backup", "ynnnn"),
    ("RouteOutbound", "yynon"),
    ("ReportLeg", "yynon"),
    ("ReportRegistration", "yynon"),
    ("RouteInbound", "yynon"),
    ("ReportCallEnd", "yynon"),
    ("RouteStream", "yynon"),
];

/// Every `rpc Name(` of the client services, read from the contract itself.
fn contract_rpcs() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/trunkline/v1");
    let mut rpcs = Vec::new();
    for file in ["admin.proto", "route.proto"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut service = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.trim_end_matches(" {").trim().to_owned();
            }
            if let Some(rest) = line.strip_prefix("rpc ") {
                let name = rest.split('(').next().unwrap().trim().to_owned();
                rpcs.push((service.clone(), name));
            }
        }
    }
    rpcs
}

#[test]
fn every_rpc_of_the_contract_is_in_the_table_and_the_walk() {
    let rpcs = contract_rpcs();
    assert!(rpcs.len() > 30, "{rpcs:?}");
    for (service, name) in &rpcs {
        let path = format!("/trunkline.v1.{service}/{name}");
        assert!(
            trunkline_core::auth::need(&path).is_some(),
            "{path} has no entry in trunkline_core::auth::RPCS: every call to it is refused"
        );
        assert!(
            EXPECTED.iter().any(|(rpc, _)| rpc == name),
            "{name} is not walked by this test: add what each role may do"
        );
    }
    assert_eq!(
        EXPECTED.len(),
        rpcs.len(),
        "the walk names an RPC the contract lacks"
    );
}

#[tokio::test]
async fn every_rpc_for_every_role_with_its_own_tenant_and_another() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(root.path(), 1, &["--require-auth"]);
    let admin_token = init(&node).await;
    let admin = with_token(&node, &admin_token);
    wait_for_leader(&admin, Duration::from_secs(10)).await;
    put_tenant(&admin, OWN).await;
    put_tenant(&admin, OTHER).await;
    for tenant in [OWN, OTHER] {
        restore_numbers(&admin, tenant).await;
    }
    let tokens = [
        ("admin", admin_token.clone()),
        (
            "operator",
            create_token(&admin, "ops", "operator", &[]).await,
        ),
        (
            "auditor",
            create_token(&admin, "audit", "auditor", &[]).await,
        ),
        ("proxy", create_token(&admin, "sbc", "proxy", &[OWN]).await),
        (
            "tenant",
            create_token(&admin, "customer", "tenant", &[OWN]).await,
        ),
    ];
    let mut wrong = Vec::new();
    for (rpc, letters) in EXPECTED {
        for ((role, token), letter) in tokens.iter().zip(letters.chars()) {
            let client = with_token(&node, token);
            for tenant in [OWN, OTHER] {
                restore_numbers(&admin, tenant).await;
                let allowed = letter == 'y' || (letter == 'o' && tenant == OWN);
                let answer = call(&client, &admin, rpc, tenant).await;
                let refused = answer == Code::PermissionDenied;
                if answer == Code::Unauthenticated || refused == allowed {
                    wrong.push(format!(
                        "{rpc} as {role} for tenant {tenant}: {answer:?}, expected {}",
                        if allowed {
                            "allowed"
                        } else {
                            "PERMISSION_DENIED"
                        }
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Listings show a tenant token its own tenant's objects and nothing of the other's.
    let customer = with_token(&node, &tokens[4].1);
    let inbound = admin!(customer, list_inbound, proto::ListInboundRequest::default()).unwrap();
    let numbers: Vec<&str> = inbound.dids.iter().map(|did| did.number.as_str()).collect();
    assert_eq!(numbers, [did_of(OWN)]);
    assert!(inbound.devices.iter().all(|device| device.tenant == OWN));
    assert!(inbound.edges.is_empty());
    let routing = admin!(customer, list_routing, proto::ListRoutingRequest::default()).unwrap();
    let tenants: Vec<&str> = routing.tenants.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tenants, [OWN]);
    let everything = admin!(admin, list_inbound, proto::ListInboundRequest::default()).unwrap();
    assert_eq!(everything.dids.len(), 2);

    // A tenant token can't take another tenant's DID over by writing it as its own.
    let takeover = admin!(
        customer,
        put_did,
        proto::PutDidRequest {
            did: Some(proto::Did {
                number: did_of(OTHER).into(),
                tenant: OWN.into(),
                device: device_of(OWN),
                continuity: None,
            }),
            mode: proto::PutMode::Unspecified.into(),
        }
    );
    assert_eq!(code(takeover), Code::PermissionDenied);
}

#[tokio::test]
async fn failed_authentication_says_only_unauthenticated_and_is_bounded() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    // Plaintext on loopback: the lockout is seen from a second source address (127.0.0.2),
    // which the test's TLS connector does not bind.
    let node = TestNode::start(root.path(), 1, &["--require-auth", "--insecure"]);

    // Before init: no call but the health check and InitCluster with the bootstrap secret.
    let anonymous = node.client();
    let refused = status(admin!(
        anonymous,
        init_cluster,
        proto::InitClusterRequest {}
    ));
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.message(), "unauthenticated");
    let admin_token = init(&node).await;
    let admin = with_token(&node, &admin_token);
    wait_for_leader(&admin, Duration::from_secs(10)).await;
    // The bootstrap secret is spent once the cluster has a token.
    let bootstrap = std::fs::read_to_string(node.data_dir.join("bootstrap.token")).unwrap();
    let again = status(admin!(
        with_token(&node, &bootstrap),
        cluster_status,
        proto::ClusterStatusRequest::default()
    ));
    assert_eq!(again.code(), Code::Unauthenticated);

    let ops = create_token(&admin, "ops", "operator", &[]).await;
    let expiring = admin!(
        admin,
        create_token,
        proto::CreateTokenRequest {
            name: "short".into(),
            role: "auditor".into(),
            expires_in_ms: 1,
            ..Default::default()
        }
    )
    .unwrap()
    .token;
    let revoked = create_token(&admin, "gone", "auditor", &[]).await;
    admin!(
        admin,
        revoke_token,
        proto::RevokeTokenRequest {
            token: "gone".into()
        }
    )
    .unwrap();
    let listed = admin!(admin, list_tokens, proto::ListTokensRequest::default()).unwrap();
    let gone = listed
        .tokens
        .iter()
        .find(|token| token.name == "gone")
        .unwrap();
    assert!(gone.revoked_ms > 0, "{gone:?}");
    assert!(listed
        .tokens
        .iter()
        .all(|token| !format!("{token:?}").contains("tl1.")));
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Wrong in every way, answered alike.
    let mut wrong_secret = ops.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == '0' { '1' } else { '0' });
    let mut unknown_id = ops.clone();
    unknown_id.replace_range(4..6, if &ops[4..6] == "00" { "11" } else { "00" });
    let oversized = format!("{ops}{}", "a".repeat(4_000));
    let status_of = |token: &str| {
        let client = node.client().with_token(token).unwrap();
        async move {
            status(admin!(
                client,
                cluster_status,
                proto::ClusterStatusRequest::default()
            ))
        }
    };
    for token in [
        "not-a-token",
        wrong_secret.as_str(),
        unknown_id.as_str(),
        oversized.as_str(),
        expiring.as_str(),
        revoked.as_str(),
    ] {
        let refused = status_of(token).await;
        assert_eq!(refused.code(), Code::Unauthenticated, "{token}");
        assert_eq!(refused.message(), "unauthenticated", "{token}");
    }
    // No token at all.
    let refused = status(admin!(
        anonymous,
        cluster_status,
        proto::ClusterStatusRequest::default()
    ));
    assert_eq!(refused.message(), "unauthenticated");

    // Nine failures so far from this address. The right secret for ops works and starts its
    // count again; ten wrong ones in a row then lock it, and the right one is refused.
    let ops_client = with_token(&node, &ops);
    assert_eq!(
        code(admin!(
            ops_client,
            cluster_status,
            proto::ClusterStatusRequest::default()
        )),
        Code::Ok
    );
    for _ in 0..10 {
        status_of(&wrong_secret).await;
    }
    let locked = status(admin!(
        ops_client,
        cluster_status,
        proto::ClusterStatusRequest::default()
    ));
    assert_eq!(locked.code(), Code::Unauthenticated);
    assert_eq!(locked.message(), "unauthenticated");
    // That was the twentieth failure from this address in a minute: now nothing from it is
    // let in, the admin token included.
    let limited = status(admin!(
        admin,
        cluster_status,
        proto::ClusterStatusRequest::default()
    ));
    assert_eq!(limited.code(), Code::Unauthenticated);
    let log = node.log();
    assert!(log.contains("a token was locked"), "{log}");
    assert!(log.contains("a source address is refused"), "{log}");

    // Another address still gets in, and sees both raised as security alerts on the event
    // stream (written with the next audit entry, about a second later).
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.api_addr))
        .unwrap()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .connect()
        .await
        .unwrap();
    let mut elsewhere = proto::admin_service_client::AdminServiceClient::with_interceptor(
        channel,
        trunkline_client::Bearer::new(&admin_token).unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let alerts = loop {
        let mut stream = elsewhere
            .watch_events(proto::WatchEventsRequest {
                recent: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut alerts = Vec::new();
        while let Some(event) = stream.message().await.unwrap() {
            if let Some(proto::event::Kind::SecurityAlert(alert)) = event.kind {
                alerts.push(alert);
            }
        }
        if alerts.len() >= 2 || std::time::Instant::now() > deadline {
            break alerts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        alerts
            .iter()
            .any(|alert| alert.what.contains("locked") && alert.source == "127.0.0.1"),
        "{alerts:?}"
    );
    assert!(
        alerts
            .iter()
            .any(|alert| alert.what.contains("127.0.0.1 refused")),
        "{alerts:?}"
    );
    // The health check never needs a credential.
    let channel = node.channel().await;
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(
        health.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// Every audit entry, read back through the wire and checked as trunkctl checks them.
async fn audit_entries(client: &Client) -> Vec<trunkline_core::audit::AuditEntry> {
    let mut stream = admin!(client, list_audit, proto::ListAuditRequest::default()).unwrap();
    let mut entries = Vec::new();
    while let Some(entry) = stream.message().await.unwrap() {
        entries.push(trunkline_api::convert::audit_from_proto(entry).unwrap());
    }
    entries
}

#[tokio::test]
async fn the_audit_log_records_changes_and_refusals_with_who_and_how() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(root.path(), 1, &["--require-auth"]);
    let admin_token = init(&node).await;
    let admin = with_token(&node, &admin_token);
    wait_for_leader(&admin, Duration::from_secs(10)).await;
    put_tenant(&admin, OWN).await;
    put_tenant(&admin, OTHER).await;
    let customer = with_token(
        &node,
        &create_token(&admin, "customer", "tenant", &[OWN]).await,
    );
    let auditor = with_token(&node, &create_token(&admin, "audit", "auditor", &[]).await);
    let ops = with_token(&node, &create_token(&admin, "ops", "operator", &[]).await);

    // Refused by the layer, by a handler, and failed authentication.
    let denied = admin!(
        ops,
        set_setting,
        proto::SetSettingRequest {
            key: "k".into(),
            value: "v".into()
        }
    );
    assert_eq!(code(denied), Code::PermissionDenied);
    let outside = admin!(
        customer,
        set_tenant_continuity,
        proto::SetTenantContinuityRequest {
            tenant: OTHER.into(),
            plan: None
        }
    );
    assert_eq!(code(outside), Code::PermissionDenied);
    let anonymous = admin!(
        node.client(),
        list_routing,
        proto::ListRoutingRequest::default()
    );
    assert_eq!(code(anonymous), Code::Unauthenticated);
    // A change that the state machine rejects is recorded with why.
    let rejected = admin!(
        admin,
        put_tenant,
        proto::PutTenantRequest {
            tenant: Some(proto::Tenant {
                name: OWN.into(),
                ..Default::default()
            }),
            mode: proto::PutMode::Create.into()
        }
    );
    assert_eq!(code(rejected), Code::AlreadyExists);

    // Refusals are written about once a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let entries = audit_entries(&auditor).await;
        if entries
            .iter()
            .any(|entry| entry.result == "unauthenticated")
            || std::time::Instant::now() > deadline
        {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let find = |actor: &str, object: &str| {
        entries
            .iter()
            .find(|entry| entry.actor == actor && entry.object.starts_with(object))
            .unwrap_or_else(|| panic!("no entry of {actor} on {object}: {entries:#?}"))
    };
    let created = find("initial-admin", "tenant own");
    assert_eq!(created.result, "ok");
    assert_eq!(created.rpc, "trunkline.v1.AdminService/PutTenant");
    assert_eq!(created.source, "127.0.0.1");
    assert!(entries.iter().any(|entry| entry.actor == "initial-admin"
        && entry.object == "tenant own"
        && entry.result.starts_with("rejected")));
    assert!(find("initial-admin", "token customer").result == "ok");
    let layer_refusal = entries
        .iter()
        .find(|entry| entry.actor == "ops" && entry.rpc.ends_with("/SetSetting"))
        .unwrap_or_else(|| panic!("{entries:#?}"));
    assert!(
        layer_refusal.result.contains("permission denied"),
        "{layer_refusal:?}"
    );
    assert!(entries
        .iter()
        .any(|entry| entry.actor == "customer" && entry.rpc.ends_with("/SetTenantContinuity")));
    let failed = entries
        .iter()
        .find(|entry| entry.result == "unauthenticated")
        .unwrap_or_else(|| panic!("{entries:#?}"));
    assert_eq!(failed.actor, "-");
    assert!(failed.rpc.ends_with("/ListRouting"));
    // The chain is whole, and a change anywhere in it is found.
    assert_eq!(
        trunkline_core::audit::verify(&entries),
        Ok(entries.len() as u64)
    );
    let mut tampered = entries.clone();
    tampered[1].actor = "someone".into();
    assert!(trunkline_core::audit::verify(&tampered).is_err());

    // Filters.
    let mut stream = admin!(
        auditor,
        list_audit,
        proto::ListAuditRequest {
            actor: "customer".into(),
            ..Default::default()
        }
    )
    .unwrap();
    let mut only = Vec::new();
    while let Some(entry) = stream.message().await.unwrap() {
        only.push(entry);
    }
    assert!(!only.is_empty());
    assert!(only.iter().all(|entry| entry.actor == "customer"));
}

#[tokio::test]
async fn a_client_certificate_bound_to_a_token_stands_for_it_until_revoked() {
    use trunkline_tls::ca;
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(root.path(), 1, &["--require-auth"]);
    let admin = with_token(&node, &init(&node).await);
    wait_for_leader(&admin, Duration::from_secs(10)).await;
    // The spent bootstrap secret does not stay on disk.
    let bootstrap = node.data_dir.join("bootstrap.token");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bootstrap.exists() {
        assert!(std::time::Instant::now() < deadline, "{}", node.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pki = node.pki.clone().unwrap();
    let authority = ca::Issued::read(&pki, "ca").unwrap();
    let issue_client = |authority: &ca::Issued| {
        let subject = ca::Subject::Client {
            name: "audit-box".into(),
        };
        ca::issue(
            authority,
            support::CLUSTER_NAME,
            &subject,
            ca::DEFAULT_VALIDITY,
        )
        .unwrap()
    };
    let (cert, key) = issue_client(&authority)
        .write(&pki, "audit-box", false)
        .unwrap();
    let tls =
        trunkline_tls::client_config_from_files(&pki.join("ca.pem"), Some((&cert, &key))).unwrap();
    let with_certificate = Client::new([node.api_addr.clone()])
        .unwrap()
        .with_tls(std::sync::Arc::new(tls));
    let status_with_certificate = || async {
        code(admin!(
            with_certificate,
            cluster_status,
            proto::ClusterStatusRequest::default()
        ))
    };

    // A certificate of the cluster CA is not a credential by itself.
    assert_eq!(status_with_certificate().await, Code::Unauthenticated);

    // Bound to an auditor token: no secret is made, and the certificate alone reads.
    let der = trunkline_tls::read_certificates("cert", &cert).unwrap()[0].to_vec();
    let created = admin!(
        admin,
        create_token,
        proto::CreateTokenRequest {
            name: "box".into(),
            role: "auditor".into(),
            certificate: der,
            ..Default::default()
        }
    )
    .unwrap();
    assert!(created.token.is_empty(), "{created:?}");
    assert_eq!(status_with_certificate().await, Code::Ok);
    // ...as an auditor: it may not change anything.
    let write = put_tenant_with(&with_certificate, "acme").await;
    assert_eq!(write, Code::PermissionDenied);

    // A certificate the nodes would refuse can't be bound: another CA's, or no certificate.
    let foreign = issue_client(&ca::new_ca(support::CLUSTER_NAME).unwrap());
    let foreign_der = {
        use trunkline_tls::rustls::pki_types::{pem::PemObject, CertificateDer};
        CertificateDer::from_pem_slice(foreign.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    };
    for (what, certificate) in [("another CA's", foreign_der), ("garbage", vec![0x30, 1, 2])] {
        let refused = status(admin!(
            admin,
            create_token,
            proto::CreateTokenRequest {
                name: "stranger".into(),
                role: "admin".into(),
                certificate,
                ..Default::default()
            }
        ));
        assert_eq!(refused.code(), Code::InvalidArgument, "{what}: {refused:?}");
        assert!(
            refused.message().contains("certificate"),
            "{what}: {refused:?}"
        );
    }

    // An event stream it follows ends when the token is revoked, not when it is closed.
    let mut following = admin!(
        with_certificate,
        watch_events,
        proto::WatchEventsRequest {
            follow: true,
            ..Default::default()
        }
    )
    .unwrap();

    // Revoked: the certificate is nobody again, on the same connection.
    admin!(
        admin,
        revoke_token,
        proto::RevokeTokenRequest {
            token: "box".into()
        }
    )
    .unwrap();
    assert_eq!(status_with_certificate().await, Code::Unauthenticated);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match following.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without saying why"),
                Err(status) => break status,
            }
        }
    })
    .await
    .expect("the stream of a revoked token is still open");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
}

/// PutTenant of `name` by `client`: the code it got.
async fn put_tenant_with(client: &Client, name: &str) -> Code {
    code(admin!(
        client,
        put_tenant,
        proto::PutTenantRequest {
            tenant: Some(proto::Tenant {
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    ))
}
