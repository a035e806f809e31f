//! Writing routing configuration through the admin API, for the tests that need carriers,
//! decks, gateways and tenants around what they test.

use trunkline_client::{proto, Client, ClientError, Retry};

/// A carrier that sends numbers with '+', with these codes final.
pub async fn put_carrier(client: &Client, name: &str, final_codes: Vec<u32>) -> u64 {
    put_carrier_with(client, name, &[], final_codes)
        .await
        .applied_index
}

/// A carrier that sends numbers with '+', with these capabilities and final codes; the
/// put's answer (its warnings too).
pub async fn put_carrier_with(
    client: &Client,
    name: &str,
    capabilities: &[&str],
    final_codes: Vec<u32>,
) -> proto::PutResponse {
    let request = proto::PutCarrierRequest {
        carrier: Some(proto::Carrier {
            name: name.into(),
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            translation: Some(proto::Translation {
                strip_digits: 0,
                tech_prefix: String::new(),
                plus: true,
            }),
            final_codes,
            disabled: false,
        }),
        mode: proto::PutMode::Create.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_carrier(request).await }
        })
        .await
        .unwrap()
}

/// A tenant with the default (NANP) dial plan and least-cost routing.
pub async fn put_tenant(client: &Client, name: &str) -> u64 {
    let request = proto::PutTenantRequest {
        tenant: Some(proto::Tenant {
            name: name.into(),
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
        .unwrap()
        .applied_index
}

/// A gateway of weight 1 and priority 1 at `uri`; change fields before putting it.
pub fn gateway(name: &str, carrier: &str, uri: &str) -> proto::Gateway {
    proto::Gateway {
        name: name.into(),
        carrier: carrier.into(),
        uri: uri.into(),
        priority: 1,
        weight: 1,
        ..Default::default()
    }
}

/// Probing off, for gateways at addresses nobody answers.
pub fn unprobed(mut gateway: proto::Gateway) -> proto::Gateway {
    gateway.probe = Some(proto::ProbeOverrides {
        disabled: true,
        ..Default::default()
    });
    gateway
}

pub async fn try_put_gateway(
    client: &Client,
    gateway: proto::Gateway,
) -> Result<proto::PutResponse, ClientError> {
    let request = proto::PutGatewayRequest {
        gateway: Some(gateway),
        mode: proto::PutMode::Create.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_gateway(request).await }
        })
        .await
}

/// The owner token the tests' imports are staged under.
pub const OWNER: &str = "0123456789abcdef0123456789abcdef";

/// Replaces `carrier`'s deck with `rows` (prefix, micros per minute) in one import.
pub async fn import(client: &Client, carrier: &str, rows: &[(&str, u64)]) -> u64 {
    let priced: Vec<(&str, u64, u64)> = rows
        .iter()
        .map(|(prefix, rate)| (*prefix, *rate, 0))
        .collect();
    import_priced(client, carrier, &priced).await
}

/// Replaces `carrier`'s deck with `rows` (prefix, micros per minute, connect fee in micros).
pub async fn import_priced(client: &Client, carrier: &str, rows: &[(&str, u64, u64)]) -> u64 {
    let import_id = format!("test-{carrier}");
    let rates: Vec<proto::Rate> = rows
        .iter()
        .map(|(prefix, rate, fee)| proto::Rate {
            prefix: prefix.to_string(),
            rate_micros_per_minute: *rate,
            connect_fee_micros: *fee,
            ..Default::default()
        })
        .collect();
    stage(client, carrier, &import_id, rates, 2).await;
    commit(client, carrier, &import_id, rows.len() as u64).await
}

/// Stages one chunk of an import, its first row on `first_line`.
pub async fn stage(
    client: &Client,
    carrier: &str,
    import_id: &str,
    rates: Vec<proto::Rate>,
    first_line: u64,
) {
    let stage = proto::StageRatesRequest {
        carrier: carrier.into(),
        import_id: import_id.into(),
        owner: OWNER.into(),
        rates,
        first_line,
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let stage = stage.clone();
            async move { admin.stage_rates(stage).await }
        })
        .await
        .unwrap();
}

/// Commits an import of `rows` rows as `carrier`'s whole deck; the commit's log index.
pub async fn commit(client: &Client, carrier: &str, import_id: &str, rows: u64) -> u64 {
    let commit = proto::CommitRatesRequest {
        carrier: carrier.into(),
        import_id: import_id.into(),
        owner: OWNER.into(),
        replace: true,
        expected_rows: rows,
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let commit = commit.clone();
            async move { admin.commit_rates(commit).await }
        })
        .await
        .unwrap()
        .applied_index
}

/// When the tests' answered calls were answered (unix ms).
pub const ANSWER_MS: u64 = 1_796_040_000_000;

/// RouteOutbound as a SIP proxy sends it: `to` for `tenant`, from a fixed caller, at
/// `min_applied_index` or later.
pub fn outbound(
    tenant: &str,
    call_id: &str,
    to: &str,
    min_applied_index: u64,
) -> proto::RouteOutboundRequest {
    proto::RouteOutboundRequest {
        tenant: tenant.into(),
        call_id: call_id.into(),
        to: to.into(),
        from: "+12125550100".into(),
        min_applied_index,
        ..Default::default()
    }
}

pub async fn route_outbound(
    client: &Client,
    request: proto::RouteOutboundRequest,
) -> Result<proto::RouteOutboundResponse, ClientError> {
    client
        .route(Retry::NotSent, |mut route| {
            let request = request.clone();
            async move { route.route_outbound(request).await }
        })
        .await
}

/// Reports a call's end: answered at [`ANSWER_MS`] for `talk_ms` when given, else not
/// answered.
pub async fn report_call_end(
    client: &Client,
    call_id: &str,
    token: &str,
    talk_ms: Option<u64>,
) -> Result<proto::ReportCallEndResponse, ClientError> {
    let request = proto::ReportCallEndRequest {
        call_id: call_id.into(),
        route_token: token.into(),
        answered: talk_ms.is_some(),
        answer_time_ms: talk_ms.map_or(0, |_| ANSWER_MS),
        end_time_ms: ANSWER_MS + talk_ms.unwrap_or(0),
        legs: Vec::new(),
    };
    client
        .route(Retry::NotSent, |mut route| {
            let request = request.clone();
            async move { route.report_call_end(request).await }
        })
        .await
}

/// Tenant acme; carriers alpha and beta, each one unprobed gateway (alpha-1 on UDP, beta-1 on
/// TCP port 5080), both pricing "44", alpha the cheaper. The index of the last write.
pub async fn alpha_and_beta(client: &Client) -> u64 {
    put_carrier(client, "alpha", vec![]).await;
    put_carrier(client, "beta", vec![]).await;
    for (name, carrier, uri) in [
        ("alpha-1", "alpha", "sip:192.0.2.10:5060"),
        ("beta-1", "beta", "sip:192.0.2.20:5080;transport=tcp"),
    ] {
        try_put_gateway(client, unprobed(gateway(name, carrier, uri)))
            .await
            .unwrap();
    }
    import(client, "alpha", &[("44", 1_000)]).await;
    import(client, "beta", &[("44", 2_000)]).await;
    put_tenant(client, "acme").await
}
