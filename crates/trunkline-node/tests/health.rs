//! Gateway health across three real processes, with real SIP responders as gateways: a silent
//! gateway is skipped on every node within interval × down-threshold + 200 ms, comes back
//! only after the up-threshold, probing moves when its node dies, the breaker opens on 503s
//! reported by the proxies, a half-open breaker lets sampled calls try the gateway and a
//! working trial closes it before the cool-down, a drained gateway keeps being probed, and a
//! flapping gateway writes at most its budget of transitions.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use support::{
    routing::{gateway, import, put_carrier, put_tenant, try_put_gateway, unprobed},
    *,
};
use tonic::Code;
use trunkline_client::{proto, Client, ClientError, Retry};
use trunkline_node::sip_responder::{Behaviour, SipResponder};

const INTERVAL_MS: u64 = 600;
const TIMEOUT_MS: u64 = 100;
const DOWN_AFTER: u32 = 3;
const UP_AFTER: u32 = 2;
const COOL_DOWN_MS: u64 = 1_000;

/// Three voters with fast Raft, probes from loopback and a short liveness timeout.
async fn cluster() -> TestCluster {
    let mut extra: Vec<&str> = FAST_RAFT.to_vec();
    extra.extend([
        "--probe-addr",
        "127.0.0.1:0",
        "--peer-liveness-timeout-ms",
        "300",
    ]);
    TestCluster::start(3, &extra).await
}

fn policy(max_transitions: u32) -> proto::HealthPolicy {
    proto::HealthPolicy {
        probe: Some(proto::ProbePolicy {
            interval_ms: INTERVAL_MS,
            timeout_ms: TIMEOUT_MS,
            down_after: DOWN_AFTER,
            up_after: UP_AFTER,
            alive_codes: vec![200],
        }),
        breaker: Some(proto::BreakerPolicy {
            consecutive_failures_to_open: 3,
            window_ms: 10_000,
            min_samples: 20,
            failure_ratio_percent: 50,
            cool_down_ms: COOL_DOWN_MS,
            probe_successes_to_close: 2,
            // Trials off: these tests watch a breaker-held gateway stay skipped.
            trial_after_ms: 0,
            trial_one_in: 0,
        }),
        flapping: Some(proto::FlappingPolicy {
            max_transitions,
            window_ms: 60_000,
        }),
    }
}

async fn set_policy(client: &Client, policy: proto::HealthPolicy) -> u64 {
    let request = proto::SetHealthPolicyRequest {
        policy: Some(policy),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.set_health_policy(request).await }
        })
        .await
        .unwrap()
        .applied_index
}

/// Tenant `acme` with carriers alpha (cheaper) and beta, one gateway each, both pricing "1".
async fn routing(client: &Client, alpha_uri: &str, beta_uri: &str) -> u64 {
    for (carrier, rate) in [("alpha", 1_000), ("beta", 2_000)] {
        put_carrier(client, carrier, vec![]).await;
        import(client, carrier, &[("1", rate)]).await;
    }
    for (name, carrier, uri) in [("gw-a", "alpha", alpha_uri), ("gw-b", "beta", beta_uri)] {
        try_put_gateway(client, gateway(name, carrier, uri))
            .await
            .unwrap();
    }
    put_tenant(client, "acme").await
}

async fn route(client: &Client, call_id: &str) -> proto::RouteOutboundResponse {
    try_route(client, call_id).await.unwrap()
}

async fn try_route(
    client: &Client,
    call_id: &str,
) -> Result<proto::RouteOutboundResponse, ClientError> {
    let request = proto::RouteOutboundRequest {
        tenant: "acme".into(),
        call_id: call_id.into(),
        to: "+14155550123".into(),
        explain: true,
        ..Default::default()
    };
    client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.route_outbound(request).await }
        })
        .await
}

fn gateways(response: &proto::RouteOutboundResponse) -> Vec<String> {
    response
        .legs
        .iter()
        .map(|leg| leg.gateway.clone())
        .collect()
}

/// Polls lookups on every listed node until `gateway` is offered (or not) by all of them;
/// returns when that first held.
async fn wait_until_offered_everywhere(
    cluster: &TestCluster,
    nodes: &[u64],
    gateway: &str,
    offered: bool,
    within: Duration,
) -> Instant {
    let clients: Vec<Client> = nodes.iter().map(|id| cluster.get(*id).client()).collect();
    let deadline = Instant::now() + within;
    let mut call = 0;
    loop {
        let mut all = true;
        for client in &clients {
            call += 1;
            // A follower that has not applied the tenant yet answers NOT_FOUND: not yet.
            let legs = match try_route(client, &format!("poll-{call}")).await {
                Ok(response) => gateways(&response),
                Err(error)
                    if error.status().map(|status| status.code()) == Some(Code::NotFound) =>
                {
                    all = false;
                    break;
                }
                Err(error) => panic!("route failed: {error}"),
            };
            if legs.iter().any(|leg| leg == gateway) != offered {
                all = false;
                break;
            }
        }
        if all {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{gateway} still {} on some node after {within:?}\n{}",
            if offered { "skipped" } else { "offered" },
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn list_health(client: &Client) -> proto::ListHealthResponse {
    client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.list_health(proto::ListHealthRequest::default()).await
        })
        .await
        .unwrap()
}

fn line<'a>(health: &'a proto::ListHealthResponse, gateway: &str) -> &'a proto::GatewayHealth {
    health
        .gateways
        .iter()
        .find(|line| line.gateway == gateway)
        .unwrap_or_else(|| panic!("{gateway} not in {health:?}"))
}

/// Every event the node still holds, oldest first.
async fn events(client: &Client) -> Vec<proto::Event> {
    let mut stream = client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .watch_events(proto::WatchEventsRequest {
                    after_index: 0,
                    recent: 1000,
                    follow: false,
                })
                .await
        })
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push(event);
    }
    events
}

fn health_change(event: &proto::Event) -> &proto::GatewayHealthChange {
    match &event.kind {
        Some(proto::event::Kind::GatewayHealth(change)) => change,
        other => panic!("not a health change: {other:?}"),
    }
}

fn sources_after(responder: &SipResponder, after: Instant) -> Vec<(Instant, SocketAddr)> {
    responder
        .received()
        .into_iter()
        .filter(|received| received.at.into_std() > after)
        .map(|received| (received.at.into_std(), received.from))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_gateway_is_skipped_everywhere_comes_back_after_the_threshold_and_probing_moves_on(
) {
    let _serial = serial();
    let alpha = SipResponder::start_udp(Behaviour::Reply(200))
        .await
        .unwrap();
    let beta = SipResponder::start_udp(Behaviour::Reply(200))
        .await
        .unwrap();
    let mut cluster = cluster().await;
    let client = cluster.client();
    set_policy(&client, policy(6)).await;
    routing(&client, &alpha.uri(), &beta.uri()).await;
    wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-a", true, Duration::from_secs(10))
        .await;
    // Probing is shared: one node probes each gateway, and everyone agrees which.
    tokio::time::sleep(Duration::from_millis(2 * INTERVAL_MS)).await;
    let mut probers = Vec::new();
    for node in [1, 2, 3] {
        let health = list_health(&cluster.get(node).client()).await;
        probers.push(line(&health, "gw-a").prober_node);
    }
    assert!(probers[0] != 0, "{probers:?}");
    assert!(
        probers.iter().all(|prober| *prober == probers[0]),
        "{probers:?}"
    );
    let health = list_health(&client).await;
    let window_start = Instant::now();
    tokio::time::sleep(Duration::from_millis(3 * INTERVAL_MS)).await;
    let probes = sources_after(&alpha, window_start);
    let sources: std::collections::BTreeSet<SocketAddr> =
        probes.iter().map(|(_, from)| *from).collect();
    assert_eq!(sources.len(), 1, "one prober, not three: {probes:?}");
    assert!(
        (2..=5).contains(&probes.len()),
        "about one probe per interval, got {} in {} ms",
        probes.len(),
        3 * INTERVAL_MS
    );
    assert_eq!(line(&health, "gw-a").last_result, "200");
    assert!(line(&health, "gw-a").last_round_trip_ms.is_some());

    // Silence: skipped by every node within interval × down-threshold + 200 ms of the last reply.
    let silenced = Instant::now();
    alpha.set(Behaviour::Silent);
    let last_reply = alpha
        .received()
        .into_iter()
        .map(|received| received.at.into_std())
        .filter(|at| *at <= silenced)
        .max()
        .unwrap();
    let skipped =
        wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-a", false, Duration::from_secs(10))
            .await;
    let took = skipped.duration_since(last_reply);
    let bound = Duration::from_millis(INTERVAL_MS * u64::from(DOWN_AFTER) + 200);
    println!("silent gateway skipped on all nodes {took:?} after its last reply (bound {bound:?})");
    assert!(took <= bound, "took {took:?}, bound {bound:?}");
    let health = list_health(&client).await;
    let gw_a = line(&health, "gw-a");
    assert_eq!(gw_a.state, proto::GatewayState::Down as i32);
    assert_eq!(gw_a.reason, "3 consecutive timeouts");
    assert_eq!(gw_a.source, proto::HealthSource::Probe as i32);
    // The explanation says why.
    let explained = route(&client, "explain-down").await;
    assert!(
        explained
            .explanation
            .iter()
            .any(|candidate| candidate.gateway == "gw-a" && candidate.reason.contains("down")),
        "{:?}",
        explained.explanation
    );

    // Back only after UP_AFTER alive replies, not after the first.
    let answering = Instant::now();
    alpha.set(Behaviour::Reply(200));
    let back =
        wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-a", true, Duration::from_secs(10))
            .await;
    let replied = sources_after(&alpha, answering)
        .into_iter()
        .filter(|(at, _)| *at < back)
        .count();
    println!(
        "gateway back after {replied} alive probes, {:?}",
        back.duration_since(answering)
    );
    assert!(
        replied >= UP_AFTER as usize,
        "offered again after {replied} alive probes; the threshold is {UP_AFTER}"
    );

    // Kill the node probing gw-b: another takes over within one interval.
    let health = list_health(&client).await;
    let prober = line(&health, "gw-b").prober_node;
    let before = sources_after(&beta, answering);
    let old_source = before.last().unwrap().1;
    let killed = Instant::now();
    cluster.node(prober).kill();
    let survivors: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != prober).collect();
    let deadline = killed + Duration::from_secs(10);
    let takeover = loop {
        if let Some((at, _)) = sources_after(&beta, killed)
            .into_iter()
            .find(|(_, from)| *from != old_source)
        {
            break at;
        }
        assert!(Instant::now() < deadline, "nobody took over probing gw-b");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = takeover.duration_since(killed);
    println!("probing of gw-b taken over {took:?} after its prober was killed");
    assert!(
        took <= Duration::from_millis(INTERVAL_MS),
        "took {took:?}, longer than one interval"
    );
    let survivor = cluster.get(survivors[0]).client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = list_health(&survivor).await;
        let gw_b = line(&health, "gw-b");
        if gw_b.prober_node != prober && gw_b.prober_node != 0 {
            assert_eq!(
                gw_b.state,
                proto::GatewayState::Up as i32,
                "no spurious down"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ListHealth still names node {prober}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the transitions were recorded as events, with the observing node.
    let events = events(&survivor).await;
    let changes: Vec<(String, i32, i32)> = events
        .iter()
        .map(health_change)
        .map(|change| (change.gateway.clone(), change.from, change.to))
        .collect();
    let (up, down) = (
        proto::GatewayState::Up as i32,
        proto::GatewayState::Down as i32,
    );
    assert_eq!(
        changes,
        vec![("gw-a".to_owned(), up, down), ("gw-a".to_owned(), down, up)],
        "{events:?}"
    );
    assert!(health_change(&events[0]).observer_node != 0);
    // Down by timeouts has no round trip (regression: it showed the last reply's); up has one.
    assert_eq!(health_change(&events[0]).round_trip_ms, None);
    assert!(health_change(&events[1]).round_trip_ms.is_some());
}

/// Two gateways answering everything (gw-a the cheaper) on a 3-node cluster with the test's
/// health policy, gw-a offered on every node.
async fn two_answering_gateways() -> (SipResponder, SipResponder, TestCluster) {
    let alpha = SipResponder::start_udp(Behaviour::Reply(200))
        .await
        .unwrap();
    let beta = SipResponder::start_udp(Behaviour::Reply(200))
        .await
        .unwrap();
    let cluster = cluster().await;
    let client = cluster.client();
    set_policy(&client, policy(6)).await;
    routing(&client, &alpha.uri(), &beta.uri()).await;
    wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-a", true, Duration::from_secs(10))
        .await;
    (alpha, beta, cluster)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_opens_on_reported_503s_on_every_node_and_drained_gateways_stay_probed() {
    let _serial = serial();
    let (_alpha, beta, cluster) = two_answering_gateways().await;
    let client = cluster.client();

    // Follow the event stream on node 3 from now on.
    let mut admin =
        proto::admin_service_client::AdminServiceClient::new(cluster.get(3).channel().await);
    let mut stream = admin
        .watch_events(proto::WatchEventsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Calls through gw-a fail with 503 (OPTIONS still answer 200): reported via node 1.
    let reporter = cluster.get(1).client();
    for call in 0..3 {
        let call_id = format!("call-503-{call}");
        let routed = route(&reporter, &call_id).await;
        let leg = routed.legs.first().unwrap();
        assert_eq!(leg.gateway, "gw-a", "cheapest first");
        let request = proto::ReportLegRequest {
            call_id: call_id.clone(),
            route_token: routed.route_token.clone(),
            carrier: leg.carrier.clone(),
            gateway: leg.gateway.clone(),
            sip_code: 503,
            ..Default::default()
        };
        reporter
            .route(Retry::Idempotent, |mut route| {
                let request = request.clone();
                async move { route.report_leg(request).await }
            })
            .await
            .unwrap();
    }
    wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-a", false, Duration::from_secs(5))
        .await;
    let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the breaker opening is streamed")
        .unwrap()
        .unwrap();
    let change = health_change(&event);
    assert_eq!(change.gateway, "gw-a");
    assert_eq!(change.carrier, "alpha");
    assert_eq!(change.to, proto::GatewayState::Down as i32);
    assert_eq!(change.source, proto::HealthSource::Breaker as i32);
    assert_eq!(change.observer_node, 1, "node 1 received the reports");
    assert!(change.reason.contains("503"), "{}", change.reason);
    let opened = Instant::now();

    // After the cool-down the probes (still 200) close it, and the stream says so.
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the breaker closing is streamed")
        .unwrap()
        .unwrap();
    let change = health_change(&event);
    assert_eq!(change.to, proto::GatewayState::Up as i32);
    assert_eq!(change.source, proto::HealthSource::Breaker as i32);
    assert!(
        opened.elapsed() >= Duration::from_millis(COOL_DOWN_MS / 2),
        "closed before the cool-down"
    );
    wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-a", true, Duration::from_secs(5)).await;

    // Drain gw-b: skipped everywhere, probes continue, health itself unchanged.
    let request = proto::DrainGatewayRequest {
        gateway: "gw-b".into(),
        drained: true,
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.drain_gateway(request).await }
        })
        .await
        .unwrap();
    wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-b", false, Duration::from_secs(5))
        .await;
    let drained = Instant::now();
    tokio::time::sleep(Duration::from_millis(3 * INTERVAL_MS)).await;
    let probes = sources_after(&beta, drained).len();
    assert!(probes >= 2, "only {probes} probes while drained");
    let health = list_health(&client).await;
    let gw_b = line(&health, "gw-b");
    assert!(gw_b.drained);
    assert_eq!(gw_b.state, proto::GatewayState::Up as i32);
    assert_eq!(gw_b.last_result, "200");

    // A gateway nobody probes: the breaker opens it, and after the cool-down it is let back
    // so calls can decide (nothing else ever would).
    try_put_gateway(&client, unprobed(gateway("gw-c", "beta", "sip:192.0.2.1")))
        .await
        .unwrap();
    wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-c", true, Duration::from_secs(5)).await;
    for call in 0..3 {
        let call_id = format!("call-gw-c-{call}");
        let routed = route(&reporter, &call_id).await;
        let request = proto::ReportLegRequest {
            call_id,
            route_token: routed.route_token.clone(),
            carrier: "beta".into(),
            gateway: "gw-c".into(),
            transport_error: proto::TransportError::Refused.into(),
            ..Default::default()
        };
        reporter
            .route(Retry::Idempotent, |mut route| {
                let request = request.clone();
                async move { route.report_leg(request).await }
            })
            .await
            .unwrap();
    }
    let opened =
        wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-c", false, Duration::from_secs(5))
            .await;
    let back =
        wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-c", true, Duration::from_secs(10))
            .await;
    assert!(back.duration_since(opened) >= Duration::from_millis(COOL_DOWN_MS / 2));
    let health = list_health(&client).await;
    let gw_c = line(&health, "gw-c");
    assert!(gw_c.probing_disabled);
    assert!(gw_c.reason.contains("not probed"), "{}", gw_c.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flapping_tcp_gateway_writes_at_most_its_budget_and_refused_connections_count() {
    let _serial = serial();
    let flapping = SipResponder::start_tcp(Behaviour::Reply(200))
        .await
        .unwrap();
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let cluster = cluster().await;
    let client = cluster.client();
    const BUDGET: u32 = 4;
    let mut fast = policy(BUDGET);
    if let Some(probe) = fast.probe.as_mut() {
        probe.interval_ms = 200;
        probe.down_after = 1;
        probe.up_after = 1;
    }
    set_policy(&client, fast).await;
    routing(
        &client,
        &flapping.uri(),
        &format!("sip:{refused};transport=tcp"),
    )
    .await;

    // The closed TCP port: connection refused is a failure, so gw-b goes down.
    wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-b", false, Duration::from_secs(5))
        .await;
    let health = list_health(&client).await;
    let gw_b = line(&health, "gw-b");
    assert!(
        gw_b.reason.contains("connection refused"),
        "{}",
        gw_b.reason
    );

    // gw-a answers, then goes silent, then answers... every probe or two, for 6 s.
    let started = Instant::now();
    let mut silent = false;
    while started.elapsed() < Duration::from_secs(6) {
        silent = !silent;
        flapping.set(if silent {
            Behaviour::Silent
        } else {
            Behaviour::Reply(200)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    flapping.set(Behaviour::Reply(200));
    let events = events(&client).await;
    let flaps: Vec<&proto::GatewayHealthChange> = events
        .iter()
        .map(health_change)
        .filter(|change| change.gateway == "gw-a")
        .collect();
    println!(
        "a gateway flapping for 6 s wrote {} transitions",
        flaps.len()
    );
    assert!(
        flaps.len() <= BUDGET as usize,
        "{} transitions, budget {BUDGET}: {flaps:?}",
        flaps.len()
    );
    assert!(flaps.len() >= 2, "it did flap: {flaps:?}");
    let last = flaps.last().unwrap();
    assert_eq!(
        last.source,
        proto::HealthSource::Flapping as i32,
        "{flaps:?}"
    );
    assert_eq!(last.to, proto::GatewayState::Down as i32);
    // Held down while it keeps answering: stable for less than the window.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let health = list_health(&client).await;
    assert_eq!(
        line(&health, "gw-a").state,
        proto::GatewayState::Down as i32
    );
    assert!(!gateways(&route(&client, "held-down").await).contains(&"gw-a".to_owned()));
}

/// Reports one failed leg of a new call through gw-a with `sip_code`, as the gateway's reply
/// or (with `proxy_timeout`) as the proxy's own timer.
async fn report_failed_leg(client: &Client, call_id: &str, sip_code: u32, proxy_timeout: bool) {
    report_failed_leg_of(client, "gw-a", call_id, sip_code, proxy_timeout).await;
}

/// [`report_failed_leg`] through `gateway`, the first leg offered.
async fn report_failed_leg_of(
    client: &Client,
    gateway: &str,
    call_id: &str,
    sip_code: u32,
    proxy_timeout: bool,
) {
    let routed = route(client, call_id).await;
    assert_eq!(routed.legs.first().unwrap().gateway, gateway, "{routed:?}");
    report_first_leg(client, call_id, &routed, sip_code, proxy_timeout).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxys_own_timeouts_never_open_a_healthy_gateways_breaker() {
    let _serial = serial();
    let (_alpha, _beta, cluster) = two_answering_gateways().await;

    // The proxy is overloaded: its own timers end ten legs in a row through a gateway that
    // answers (the breaker opens on 3 failures in a row).
    let reporter = cluster.get(1).client();
    for call in 0..10 {
        report_failed_leg(&reporter, &format!("local-{call}"), 408, true).await;
    }
    let marker = set(&reporter, "test/marker", "after the local timeouts")
        .await
        .unwrap()
        .applied_index;
    // The same code as the gateway's own reply is evidence: three open the breaker.
    for call in 0..3 {
        report_failed_leg(&reporter, &format!("remote-{call}"), 408, false).await;
    }
    wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-a", false, Duration::from_secs(5))
        .await;
    let downs: Vec<u64> = events(&reporter)
        .await
        .iter()
        .filter(|event| {
            matches!(&event.kind, Some(proto::event::Kind::GatewayHealth(change))
                if change.gateway == "gw-a" && change.to == proto::GatewayState::Down as i32)
        })
        .map(|event| event.index)
        .collect();
    assert_eq!(downs.len(), 1, "one opening: {downs:?}");
    assert!(
        downs[0] > marker,
        "the breaker opened on the proxy's own timeouts (event {} before the marker {marker})",
        downs[0]
    );

    // The other gateway's breaker opens too: with nothing else left, both are offered
    // (degraded) rather than every call refused by breakers alone.
    for call in 0..3 {
        report_failed_leg_of(&reporter, "gw-b", &format!("b-{call}"), 503, false).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let routed = route(&reporter, "after-both").await;
        if routed.degraded {
            let mut offered = gateways(&routed);
            offered.sort();
            assert_eq!(offered, ["gw-a", "gw-b"], "{routed:?}");
            assert!(routed.refusal.is_none());
            assert!(
                routed
                    .warnings
                    .iter()
                    .any(|warning| warning.starts_with("degraded")),
                "{routed:?}"
            );
            break;
        }
        assert_eq!(gateways(&routed), ["gw-b"], "{routed:?}");
        assert!(Instant::now() < deadline, "never degraded: {routed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// gw-a's line in ListHealth, asked of `client`.
async fn gw_a_health(client: &Client) -> proto::GatewayHealth {
    line(&list_health(client).await, "gw-a").clone()
}

/// Polls ListHealth on `client` until gw-a is in `state`.
async fn wait_for_gw_a(
    client: &Client,
    state: proto::GatewayState,
    within: Duration,
) -> proto::GatewayHealth {
    let deadline = Instant::now() + within;
    loop {
        let health = gw_a_health(client).await;
        if health.state == state as i32 {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "gw-a not {state:?} after {within:?}: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reports the first leg of `routed` (call `call_id`) ended with `sip_code`, as the gateway's
/// reply or (with `proxy_timeout`) as the proxy's own timer.
async fn report_first_leg(
    client: &Client,
    call_id: &str,
    routed: &proto::RouteOutboundResponse,
    sip_code: u32,
    proxy_timeout: bool,
) {
    let leg = routed.legs.first().unwrap();
    let request = proto::ReportLegRequest {
        call_id: call_id.into(),
        route_token: routed.route_token.clone(),
        carrier: leg.carrier.clone(),
        gateway: leg.gateway.clone(),
        sip_code,
        proxy_timeout,
        ..Default::default()
    };
    client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.report_leg(request).await }
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_open_breaker_lets_sampled_calls_try_the_gateway_and_a_working_trial_closes_it_early(
) {
    let _serial = serial();
    let (_alpha, _beta, cluster) = two_answering_gateways().await;
    let client = cluster.client();
    // A cool-down far longer than the test: only a trial can bring gw-a back in time (its
    // probes wait the cool-down out). Half the calls are trials, from 200 ms after opening.
    let mut trial_policy = policy(6);
    if let Some(breaker) = trial_policy.breaker.as_mut() {
        breaker.cool_down_ms = 600_000;
        breaker.trial_after_ms = 200;
        breaker.trial_one_in = 2;
    }
    set_policy(&client, trial_policy).await;

    // Calls through gw-a fail with 503, reported to node 1: its breaker opens.
    let opener = cluster.get(1).client();
    for call in 0..3 {
        report_failed_leg(&opener, &format!("fail-{call}"), 503, false).await;
    }
    let opened = wait_for_gw_a(&opener, proto::GatewayState::Down, Duration::from_secs(5)).await;
    assert_eq!(opened.source, proto::HealthSource::Breaker as i32);

    // Half-open: node 2 offers gw-a, first as the cheapest, to sampled calls only, and names
    // it a trial; node 3 answers the same calls the same way.
    let asker = cluster.get(2).client();
    let other = cluster.get(3).client();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut trials: Vec<(String, proto::RouteOutboundResponse)> = Vec::new();
    let mut skipped = 0;
    let mut call = 0;
    while trials.len() < 2 || skipped == 0 {
        assert!(
            Instant::now() < deadline,
            "{} trials and {skipped} calls skipping gw-a by the deadline\n{}",
            trials.len(),
            cluster.logs()
        );
        call += 1;
        let call_id = format!("half-open-{call}");
        let routed = route(&asker, &call_id).await;
        let offered = gateways(&routed);
        if offered.first().map(String::as_str) != Some("gw-a") {
            assert_eq!(offered, ["gw-b"], "{routed:?}");
            skipped += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let line = routed
            .explanation
            .iter()
            .find(|line| line.gateway == "gw-a")
            .unwrap();
        assert!(line.kept && line.rank == 1, "{line:?}");
        assert!(line.reason.contains("breaker trial"), "{line:?}");
        assert!(!routed.degraded, "{routed:?}");
        assert_eq!(
            gateways(&route(&other, &call_id).await),
            offered,
            "{call_id}"
        );
        trials.push((call_id, routed));
    }
    assert_eq!(
        gw_a_health(&client).await.state,
        proto::GatewayState::Down as i32,
        "nothing brought gw-a back yet"
    );

    // A failed trial keeps it down; an answered one, reported to node 3, closes it long
    // before the cool-down would end.
    let (failed_id, failed) = &trials[0];
    report_first_leg(&other, failed_id, failed, 503, false).await;
    let (answered_id, answered) = &trials[1];
    report_first_leg(&other, answered_id, answered, 200, false).await;
    // Node 3 proposes the closing; its own ListHealth and events show it once applied.
    let back = wait_for_gw_a(&other, proto::GatewayState::Up, Duration::from_secs(10)).await;
    assert_eq!(back.source, proto::HealthSource::Breaker as i32);
    assert_eq!(back.observer_node, 3, "node 3 received the trial's report");
    assert_eq!(
        back.reason, "breaker closed: a trial call through it ended 200",
        "the answered trial closed it, not the failed one"
    );
    let changes: Vec<(i32, String)> = events(&other)
        .await
        .iter()
        .filter_map(|event| match &event.kind {
            Some(proto::event::Kind::GatewayHealth(change)) if change.gateway == "gw-a" => {
                Some((change.to, change.reason.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 2, "one opening, one closing: {changes:?}");
    wait_until_offered_everywhere(&cluster, &[1, 2, 3], "gw-a", true, Duration::from_secs(5)).await;
}
