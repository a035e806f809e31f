//! Calling policies and emergency routing through a real node: SetCallingPolicy scopes,
//! refusals a proxy can act on, emergency calls through every block to emergency-capable
//! carriers as dialled, and the configuration warning for a tenant without one. Who may set a
//! policy is in `auth.rs`'s walk of every RPC.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use support::{
    routing::{gateway, import, put_carrier_with, try_put_gateway, unprobed},
    *,
};
use trunkline_client::{proto, Client, ClientError, Retry};

async fn put_carrier(client: &Client, name: &str, capabilities: &[&str]) -> proto::PutResponse {
    put_carrier_with(client, name, capabilities, vec![]).await
}

async fn put_tenant(client: &Client, name: &str) -> proto::PutResponse {
    let request = proto::PutTenantRequest {
        tenant: Some(proto::Tenant {
            name: name.into(),
            dial_plan: Some(proto::DialPlan {
                country_code: "1".into(),
                home_area_code: "212".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_tenant(request).await }
        })
        .await
        .unwrap()
}

async fn set_policy(
    client: &Client,
    tenant: &str,
    scope: &str,
    rules: Option<proto::PolicyRules>,
) -> Result<proto::PutResponse, ClientError> {
    let request = proto::SetCallingPolicyRequest {
        tenant: tenant.into(),
        scope: scope.into(),
        rules,
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.set_calling_policy(request).await }
        })
        .await
}

struct Call<'a> {
    to: &'a str,
    from: &'a str,
    source: proto::CallSource,
}

fn call(to: &str) -> Call<'_> {
    Call {
        to,
        from: "+12125550100",
        source: proto::CallSource::Phone,
    }
}

async fn route(
    client: &Client,
    call: &Call<'_>,
    min_applied_index: u64,
) -> proto::RouteOutboundResponse {
    let request = proto::RouteOutboundRequest {
        tenant: "acme".into(),
        call_id: format!("{}-{}@proxy", call.to, call.from),
        from: call.from.into(),
        to: call.to.into(),
        explain: true,
        min_applied_index,
        source: call.source.into(),
        ..Default::default()
    };
    client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.route_outbound(request).await }
        })
        .await
        .unwrap()
}

/// `(reason, sip code, scope)` of a refusal, or `None` with the carriers of the legs.
fn outcome(answer: &proto::RouteOutboundResponse) -> Result<Vec<String>, (i32, u32, String)> {
    match &answer.refusal {
        Some(refusal) => Err((refusal.reason, refusal.sip_code, refusal.scope.clone())),
        None => Ok(answer.legs.iter().map(|leg| leg.carrier.clone()).collect()),
    }
}

fn refusal(
    reason: proto::RefusalReason,
    sip_code: u32,
    scope: &str,
) -> Result<Vec<String>, (i32, u32, String)> {
    Err((reason as i32, sip_code, scope.to_owned()))
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_block_by_scope_and_emergency_calls_always_reach_an_emergency_carrier() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let client = cluster.get(1).client();

    // A tenant before any emergency-capable carrier exists: warned at write time.
    put_carrier(&client, "cheap", &[]).await;
    let written = put_tenant(&client, "acme").await;
    assert!(
        written
            .warnings
            .iter()
            .any(|warning| warning.contains("no emergency-capable carrier")),
        "{:?}",
        written.warnings
    );
    let mut cheap = unprobed(gateway("cheap-1", "cheap", "sip:cheap-1.example.net"));
    cheap.weight = 1;
    try_put_gateway(&client, cheap).await.unwrap();
    import(
        &client,
        "cheap",
        &[("1", 1_000), ("44", 2_000), ("1900", 90_000)],
    )
    .await;
    let answer = route(&client, &call("911"), 0).await;
    assert_eq!(
        outcome(&answer),
        refusal(proto::RefusalReason::NoRoute, 503, "")
    );
    assert!(answer
        .warnings
        .iter()
        .any(|w| w.contains("no emergency-capable carrier")));

    // An emergency-capable carrier: 911 and 933 go to it, as dialled, without a deck row.
    put_carrier(&client, "psap", &["emergency"]).await;
    try_put_gateway(
        &client,
        unprobed(gateway("psap-1", "psap", "sip:psap-1.example.net")),
    )
    .await
    .unwrap();
    let rewritten = put_tenant(&client, "acme").await;
    assert!(rewritten.warnings.is_empty(), "{:?}", rewritten.warnings);

    // Block everything there is to block, at every scope.
    let everything = proto::PolicyRules {
        disabled: Some(true),
        block_international: Some(true),
        block_long_distance: Some(true),
        block_premium: Some(true),
        blocked_prefixes: Some(proto::CodeList {
            codes: vec!["1".into(), "9".into(), "911".into()],
        }),
        allowed_hours: Some("sun 03:00-03:01".into()),
        time_zone: "America/New_York".into(),
        ..Default::default()
    };
    for scope in [
        "tenant",
        "source:phone",
        "source:voicemail",
        "extension:2001",
    ] {
        set_policy(&client, "acme", scope, Some(everything.clone()))
            .await
            .unwrap();
    }
    let mut last = 0;
    for to in ["911", "933"] {
        for (from, source) in [
            ("+12125550100", proto::CallSource::Phone),
            ("2001", proto::CallSource::Voicemail),
        ] {
            let answer = route(&client, &Call { to, from, source }, last).await;
            assert_eq!(
                outcome(&answer),
                Ok(vec!["psap".to_owned()]),
                "{to} from {from}"
            );
            assert_eq!(answer.legs[0].dial_string, to);
            assert_eq!(
                answer.destination_class,
                proto::DestinationClass::Emergency as i32
            );
            last = answer.read_state.unwrap().applied_index;
        }
    }
    // The same policy refuses everything else, naming the narrowest scope.
    assert_eq!(
        outcome(&route(&client, &call("4155550100"), last).await),
        refusal(proto::RefusalReason::PolicyDisabled, 403, "source:phone")
    );

    // Back to a plain policy, scope by scope.
    for scope in ["source:phone", "source:voicemail", "extension:2001"] {
        set_policy(&client, "acme", scope, None).await.unwrap();
    }
    let plain = proto::PolicyRules {
        block_international: Some(true),
        block_premium: Some(true),
        refusal_sip_code: Some(603),
        ..Default::default()
    };
    let applied = set_policy(&client, "acme", "tenant", Some(plain))
        .await
        .unwrap()
        .applied_index;
    assert_eq!(
        outcome(&route(&client, &call("9005551234"), applied).await),
        refusal(proto::RefusalReason::PolicyPremium, 603, "tenant")
    );
    assert_eq!(
        outcome(&route(&client, &call("011442071234567"), applied).await),
        refusal(proto::RefusalReason::PolicyInternational, 603, "tenant")
    );
    assert_eq!(
        outcome(&route(&client, &call("4155550100"), applied).await),
        Ok(vec!["cheap".to_owned()])
    );
    // Extension 2001 may call abroad: its scope lifts the tenant's block.
    let lifted = set_policy(
        &client,
        "acme",
        "extension:2001",
        Some(proto::PolicyRules {
            block_international: Some(false),
            ..Default::default()
        }),
    )
    .await
    .unwrap()
    .applied_index;
    let from_2001 = Call {
        from: "2001",
        ..call("011442071234567")
    };
    assert_eq!(
        outcome(&route(&client, &from_2001, lifted).await),
        Ok(vec!["cheap".to_owned()])
    );
    assert_eq!(
        outcome(&route(&client, &call("011442071234567"), lifted).await),
        refusal(proto::RefusalReason::PolicyInternational, 603, "tenant")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_policies_are_refused_naming_the_field() {
    let _serial = serial();
    let cluster = TestCluster::start(1, FAST_RAFT).await;
    let client = cluster.get(1).client();
    put_tenant(&client, "acme").await;

    let invalid = |error: ClientError| {
        let status = error.status().cloned().unwrap();
        (status.code(), status.message().to_owned())
    };
    for (scope, rules, needle) in [
        (
            "tenant",
            proto::PolicyRules {
                allowed_hours: Some("weekdays 9-5".into()),
                ..Default::default()
            },
            "rules.allowed_hours",
        ),
        (
            "tenant",
            proto::PolicyRules {
                allowed_hours: Some("mon 08:00-09:00".into()),
                time_zone: "Mars/Olympus".into(),
                ..Default::default()
            },
            "rules.time_zone",
        ),
        (
            "extension:2001",
            proto::PolicyRules {
                refusal_sip_code: Some(99_999),
                ..Default::default()
            },
            "rules.refusal_sip_code",
        ),
        ("source:fax", proto::PolicyRules::default(), "scope"),
        ("everyone", proto::PolicyRules::default(), "scope"),
    ] {
        let (code, message) = invalid(
            set_policy(&client, "acme", scope, Some(rules))
                .await
                .unwrap_err(),
        );
        assert_eq!(code, tonic::Code::InvalidArgument, "{message}");
        assert!(message.contains(needle), "{needle}: {message}");
    }
    // A contradiction across scopes is refused when it would apply.
    set_policy(
        &client,
        "acme",
        "tenant",
        Some(proto::PolicyRules {
            block_international: Some(true),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let (code, message) = invalid(
        set_policy(
            &client,
            "acme",
            "extension:2001",
            Some(proto::PolicyRules {
                allowed_countries: Some(proto::CodeList {
                    codes: vec!["44".into()],
                }),
                ..Default::default()
            }),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::InvalidArgument, "{message}");
    assert!(message.contains("policy.block_international"), "{message}");
    // Long distance needs a home area: the tenant has 212, a tenant without one is refused.
    let request = proto::PutTenantRequest {
        tenant: Some(proto::Tenant {
            name: "nohome".into(),
            ..Default::default()
        }),
        mode: proto::PutMode::Create.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_tenant(request).await }
        })
        .await
        .unwrap();
    let (code, message) = invalid(
        set_policy(
            &client,
            "nohome",
            "tenant",
            Some(proto::PolicyRules {
                block_long_distance: Some(true),
                ..Default::default()
            }),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::InvalidArgument, "{message}");
    assert!(message.contains("home_area_code"), "{message}");
    // An unknown tenant.
    let error = set_policy(&client, "nobody", "tenant", None)
        .await
        .unwrap_err();
    assert_eq!(error.status().unwrap().code(), tonic::Code::NotFound);
}
