//! The replicated inbound configuration: puts and deletes, loop refusal, batches of
//! registrations, and that a refused command changes nothing.

use super::*;
use crate::{
    health::ProbeOverrides,
    inbound::{Edge, InboundResponse, RejectedUpdate, MAX_UPDATES_PER_COMMAND},
    routing::PutMode,
    Error,
};

const ALICE: &str = "sip:alice@example.com";

/// Applies `command` to `config`, checks that it is refused with an error whose message
/// contains `expected`, and that nothing changed.
fn check_refused(config: &InboundConfig, command: InboundCommand, expected: &str) -> Error {
    let mut after = config.clone();
    let error = after.apply(5_000, &command, tenants).unwrap_err();
    assert!(
        error.to_string().contains(expected),
        "{error} lacks {expected:?}"
    );
    assert_eq!(
        &after, config,
        "a refused command changed the configuration"
    );
    error
}

#[test]
fn puts_and_deletes() {
    let mut config = config_with(&[(1, put_device(device(ALICE, None)))]);
    let response = config
        .apply(2, &put_did(did("+14155550100", Some(ALICE), None)), tenants)
        .unwrap();
    assert_eq!(response, InboundResponse::Put { replaced: false });
    let response = config
        .apply(
            3,
            &put_did(did("+14155550100", None, Some(plan(vec![voicemail()])))),
            tenants,
        )
        .unwrap();
    assert_eq!(response, InboundResponse::Put { replaced: true });
    config
        .apply(
            4,
            &InboundCommand::DeleteDid {
                number: "+14155550100".to_owned(),
            },
            tenants,
        )
        .unwrap();
    assert!(config.did("+14155550100").is_none());
    let error = config
        .apply(
            5,
            &InboundCommand::DeleteDid {
                number: "+14155550100".to_owned(),
            },
            tenants,
        )
        .unwrap_err();
    assert_eq!(error, Error::not_found("did", "+14155550100"));
}

#[test]
fn references_are_checked() {
    let config = config_with(&[(1, put_device(device(ALICE, None)))]);
    check_refused(
        &config,
        put_did(did("+14155550100", Some("sip:bob@example.com"), None)),
        "device \"sip:bob@example.com\" not found",
    );
    let mut foreign = did("+14155550100", None, None);
    foreign.tenant = "initech".to_owned();
    check_refused(&config, put_did(foreign), "tenant \"initech\" not found");
    let mut other_tenant = did("+14155550100", Some(ALICE), None);
    other_tenant.tenant = "globex".to_owned();
    check_refused(&config, put_did(other_tenant), "belongs to tenant \"acme\"");
}

#[test]
fn a_device_rung_by_a_did_cannot_be_deleted_or_moved() {
    let config = config_with(&[
        (1, put_device(device(ALICE, None))),
        (2, put_did(did("+14155550100", Some(ALICE), None))),
        (
            3,
            InboundCommand::Register {
                bindings: vec![update(ALICE, "edge-a", "sip:a@10.0.0.1", 60_000)],
            },
        ),
    ]);
    check_refused(
        &config,
        InboundCommand::DeleteDevice {
            aor: ALICE.to_owned(),
        },
        "rung by DID +14155550100",
    );
    let mut moved = device(ALICE, None);
    moved.tenant = "globex".to_owned();
    check_refused(&config, put_device(moved), "rung by DID +14155550100");

    let mut config = config;
    config
        .apply(
            4,
            &InboundCommand::DeleteDid {
                number: "+14155550100".to_owned(),
            },
            tenants,
        )
        .unwrap();
    config
        .apply(
            5,
            &InboundCommand::DeleteDevice {
                aor: ALICE.to_owned(),
            },
            tenants,
        )
        .unwrap();
    assert!(config.device(ALICE).is_none());
    assert!(
        config.registrations().all(ALICE).is_empty(),
        "a deleted device keeps no bindings"
    );
}

#[test]
fn a_direct_self_target_is_refused() {
    let config = InboundConfig::default();
    let error = check_refused(
        &config,
        put_did(did(
            "+14155550100",
            None,
            Some(plan(vec![number_target("+14155550100")])),
        )),
        "+14155550100 -> +14155550100",
    );
    assert_eq!(error.to_string(), "continuity.targets: continuity loop: +14155550100 -> +14155550100 (a DID cannot forward to itself)");
}

#[test]
fn a_three_did_cycle_is_refused_naming_the_chain() {
    let config = config_with(&[
        (
            1,
            put_did(did(
                "+14155550100",
                None,
                Some(plan(vec![number_target("+12125550100")])),
            )),
        ),
        (
            2,
            put_did(did(
                "+12125550100",
                None,
                Some(plan(vec![number_target("+13125550100")])),
            )),
        ),
    ]);
    let closing = put_did(did(
        "+13125550100",
        None,
        Some(plan(vec![voicemail(), number_target("+14155550100")])),
    ));
    let error = check_refused(&config, closing, "continuity loop");
    assert_eq!(
        error,
        Error::FailedPrecondition(
            "continuity loop: +13125550100 -> +14155550100 -> +12125550100 -> +13125550100"
                .to_owned()
        )
    );
    // A chain that does not come back is fine.
    config_with(&[
        (
            1,
            put_did(did(
                "+14155550100",
                None,
                Some(plan(vec![number_target("+12125550100")])),
            )),
        ),
        (
            2,
            put_did(did(
                "+12125550100",
                None,
                Some(plan(vec![number_target("+13125550100")])),
            )),
        ),
        (
            3,
            put_did(did(
                "+13125550100",
                None,
                Some(plan(vec![voicemail(), number_target("+19999999999")])),
            )),
        ),
    ]);
}

#[test]
fn a_cycle_closed_by_a_tenant_default_is_refused() {
    // +1415 forwards to +1212; +1212 has no plan of its own and no device plan, so it would
    // use the tenant default, which must not point back at +1415.
    let config = config_with(&[
        (1, put_device(device(ALICE, None))),
        (
            2,
            put_did(did(
                "+14155550100",
                None,
                Some(plan(vec![number_target("+12125550100")])),
            )),
        ),
        (3, put_did(did("+12125550100", Some(ALICE), None))),
    ]);
    let error = check_refused(
        &config,
        InboundCommand::SetTenantContinuity {
            tenant: TENANT.to_owned(),
            plan: Some(plan(vec![number_target("+14155550100")])),
        },
        "continuity loop",
    );
    assert!(
        error
            .to_string()
            .contains("+12125550100 -> +14155550100 -> +12125550100")
            || error
                .to_string()
                .contains("+14155550100 -> +12125550100 -> +14155550100"),
        "{error}"
    );
    // Another tenant's default is unaffected.
    config_with(&[(
        1,
        InboundCommand::SetTenantContinuity {
            tenant: "globex".to_owned(),
            plan: Some(plan(vec![number_target("+14155550100")])),
        },
    )]);
}

#[test]
fn a_cycle_closed_by_a_device_plan_is_refused() {
    let config = config_with(&[
        (1, put_device(device(ALICE, None))),
        (2, put_did(did("+14155550100", Some(ALICE), None))),
    ]);
    check_refused(
        &config,
        put_device(device(
            ALICE,
            Some(plan(vec![number_target("+14155550100")])),
        )),
        "continuity loop: +14155550100 -> +14155550100",
    );
}

#[test]
fn register_batches_apply_known_devices_and_report_the_rest() {
    let mut config = config_with(&[(1, put_device(device(ALICE, None)))]);
    let response = config
        .apply(
            1_000,
            &InboundCommand::Register {
                bindings: vec![
                    update(ALICE, "edge-a", "sip:a@10.0.0.1", 60_000),
                    update("sip:ghost@example.com", "edge-a", "sip:g@10.0.0.2", 60_000),
                    update(ALICE, "edge-b", "sip:a@10.0.0.1", 60_000),
                ],
            },
            tenants,
        )
        .unwrap();
    assert_eq!(
        response,
        InboundResponse::Registered {
            applied: 2,
            rejected: vec![RejectedUpdate {
                index: 1,
                error: Error::not_found("device", "sip:ghost@example.com")
            }],
        }
    );
    assert_eq!(config.registrations().live(ALICE, 1_000).len(), 2);
    let response = config
        .apply(
            2_000,
            &InboundCommand::UnregisterEdge {
                aor: ALICE.to_owned(),
                edge: "edge-b".to_owned(),
            },
            tenants,
        )
        .unwrap();
    assert_eq!(response, InboundResponse::Unregistered { removed: 1 });
    // Apply reclaims expired bindings with log time.
    config
        .apply(
            61_000,
            &InboundCommand::Register { bindings: vec![] },
            tenants,
        )
        .unwrap();
    assert!(config.registrations().all(ALICE).is_empty());
}

#[test]
fn a_malformed_update_refuses_the_whole_batch() {
    let config = config_with(&[(1, put_device(device(ALICE, None)))]);
    check_refused(
        &config,
        InboundCommand::Register {
            bindings: vec![
                update(ALICE, "edge-a", "sip:a@10.0.0.1", 60_000),
                update(ALICE, "edge-a", "sip:a@10.0.0.1", 500),
            ],
        },
        "bindings: update 1: expires_in_ms",
    );
    check_refused(
        &config,
        InboundCommand::Register {
            bindings: vec![update(ALICE, "edge a", "sip:a@10.0.0.1", 60_000)],
        },
        "update 0: edge",
    );
    check_refused(
        &config,
        InboundCommand::Register {
            bindings: vec![
                update(ALICE, "edge-a", "sip:a@10.0.0.1", 60_000);
                MAX_UPDATES_PER_COMMAND + 1
            ],
        },
        "the limit is 1000",
    );
    check_refused(
        &config,
        InboundCommand::Register {
            bindings: vec![update(
                ALICE,
                "edge-a",
                "sip:a@10.0.0.1",
                24 * 3_600_000 + 1,
            )],
        },
        "expires_in_ms",
    );
}

#[test]
fn refused_commands_change_nothing() {
    let config = config_with(&[
        (1, put_device(device(ALICE, Some(plan(vec![voicemail()]))))),
        (2, put_did(did("+14155550100", Some(ALICE), None))),
        (
            3,
            put_did(did(
                "+12125550100",
                None,
                Some(plan(vec![number_target("+14155550100")])),
            )),
        ),
        (
            4,
            InboundCommand::SetTenantContinuity {
                tenant: TENANT.to_owned(),
                plan: Some(plan(vec![voicemail()])),
            },
        ),
        (
            5,
            InboundCommand::Register {
                bindings: vec![update(ALICE, "edge-a", "sip:a@10.0.0.1", 3_600_000)],
            },
        ),
    ]);
    check_refused(
        &config,
        put_did(did("+13125550100", Some("sip:nobody@example.com"), None)),
        "not found",
    );
    check_refused(
        &config,
        put_device(device(
            ALICE,
            Some(plan(vec![number_target("+12125550100")])),
        )),
        "continuity loop",
    );
    check_refused(
        &config,
        InboundCommand::DeleteDevice {
            aor: ALICE.to_owned(),
        },
        "rung by DID",
    );
    check_refused(
        &config,
        InboundCommand::DeleteDevice {
            aor: "sip:bob@example.com".to_owned(),
        },
        "not found",
    );
    check_refused(
        &config,
        InboundCommand::SetTenantContinuity {
            tenant: "initech".to_owned(),
            plan: Some(plan(vec![])),
        },
        "not found",
    );
}

fn edge(name: &str) -> Edge {
    Edge {
        name: name.to_owned(),
        uri: "sip:edge.example.net".parse().unwrap(),
        enabled: true,
        probe: ProbeOverrides::default(),
    }
}

/// Applies a put to `config` and checks what it gives: `Ok(replaced)`, or the error with
/// nothing changed.
fn check_put(config: &InboundConfig, command: InboundCommand, expected: Result<bool, Error>) {
    let mut after = config.clone();
    let actual = after
        .apply(5_000, &command, tenants)
        .map(|response| response == InboundResponse::Put { replaced: true });
    assert_eq!(actual, expected, "{command:?}");
    if actual.is_err() {
        assert_eq!(&after, config, "a refused put changed the configuration");
    }
}

#[test]
fn put_modes_create_only_new_and_replace_only_existing_objects() {
    const NUMBER: &str = "+14155550100";
    let config = config_with(&[
        (1, put_device(device(ALICE, None))),
        (2, put_did(did(NUMBER, Some(ALICE), None))),
        (
            3,
            InboundCommand::PutEdge {
                edge: edge("edge-a"),
                mode: PutMode::Upsert,
            },
        ),
    ]);
    let exists = |kind: &str, name: &str| Error::AlreadyExists {
        kind: kind.to_owned(),
        name: name.to_owned(),
    };
    // A put of the `kind` object keyed `key`.
    let put_of_kind = |kind: &str, key: &str, mode: PutMode| match kind {
        "did" => InboundCommand::PutDid {
            did: did(key, None, None),
            mode,
            within: None,
        },
        "device" => InboundCommand::PutDevice {
            device: device(key, None),
            mode,
            within: None,
        },
        _ => InboundCommand::PutEdge {
            edge: edge(key),
            mode,
        },
    };
    for (kind, existing, missing) in [
        ("did", NUMBER, "+14155550199"),
        ("device", ALICE, "sip:bob@example.com"),
        ("edge", "edge-a", "edge-b"),
    ] {
        let put = |key, mode| put_of_kind(kind, key, mode);
        check_put(&config, put(missing, PutMode::Create), Ok(false));
        check_put(
            &config,
            put(existing, PutMode::Create),
            Err(exists(kind, existing)),
        );
        check_put(&config, put(existing, PutMode::Replace), Ok(true));
        check_put(
            &config,
            put(missing, PutMode::Replace),
            Err(Error::not_found(kind, missing)),
        );
        check_put(&config, put(existing, PutMode::Upsert), Ok(true));
        check_put(&config, put(missing, PutMode::Upsert), Ok(false));
    }
}

#[test]
fn a_put_mode_is_checked_before_what_the_object_refers_to() {
    // `trunkctl did add` of an existing number says it exists, whatever else is wrong.
    let config = config_with(&[(1, put_did(did("+14155550100", None, None)))]);
    let mut foreign = did("+14155550100", Some("sip:nobody@example.com"), None);
    foreign.tenant = "initech".to_owned();
    check_put(
        &config,
        InboundCommand::PutDid {
            did: foreign.clone(),
            mode: PutMode::Create,
            within: None,
        },
        Err(Error::AlreadyExists {
            kind: "did".to_owned(),
            name: "+14155550100".to_owned(),
        }),
    );
    foreign.number = "+14155550199".to_owned();
    check_put(
        &config,
        InboundCommand::PutDid {
            did: foreign,
            mode: PutMode::Replace,
            within: None,
        },
        Err(Error::not_found("did", "+14155550199")),
    );
}

#[test]
fn a_tenant_limited_put_of_another_tenants_object_is_refused_when_it_applies() {
    const NUMBER: &str = "+14155550100";
    // Issue 12's PutDid race: a tenant token's put was checked against the state of the node
    // that took the call; a DID that another tenant created meanwhile (already on the leader)
    // was then overwritten. The owner is checked again where the change applies.
    let config = config_with(&[
        (1, put_device(device(ALICE, None))),
        (2, put_did(did(NUMBER, None, None))),
    ]);
    let limited = |tenant: &str| Some(vec![tenant.to_owned()]);
    let mut taken = did(NUMBER, None, None);
    taken.tenant = "initech".to_owned();
    check_put(
        &config,
        InboundCommand::PutDid {
            did: taken,
            mode: PutMode::Upsert,
            within: limited("initech"),
        },
        Err(Error::PermissionDenied(
            "permission denied: outside this token's tenants".into(),
        )),
    );
    let mut moved = device(ALICE, None);
    moved.tenant = "initech".to_owned();
    check_put(
        &config,
        InboundCommand::PutDevice {
            device: moved,
            mode: PutMode::Upsert,
            within: limited("initech"),
        },
        Err(Error::PermissionDenied(
            "permission denied: outside this token's tenants".into(),
        )),
    );
    // Its own objects, and new ones, it may put; an unlimited caller may put anything.
    check_put(
        &config,
        InboundCommand::PutDid {
            did: did(NUMBER, None, None),
            mode: PutMode::Upsert,
            within: limited(TENANT),
        },
        Ok(true),
    );
    check_put(
        &config,
        InboundCommand::PutDid {
            did: did("+14155550199", None, None),
            mode: PutMode::Upsert,
            within: limited(TENANT),
        },
        Ok(false),
    );
}
