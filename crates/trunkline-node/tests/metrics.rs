//! Prometheus `/metrics` against a real node process: scraped over HTTP/1.1 and parsed as the
//! text format (every sample in a family announced by HELP and TYPE, names and labels by
//! Prometheus's rules, histograms cumulative), with the counts the node's work must move:
//! lookups routed and refused by reason, reroutes by SIP code, a breaker opening, Raft's
//! indexes and proposals, the store's disk use.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{
    routing::{alpha_and_beta, outbound, route_outbound},
    *,
};
use trunkline_client::{proto, Retry};

/// One parsed sample: its labels (sorted) and value.
type Samples = HashMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// A histogram bucket: its bound and cumulative count.
type Point = (f64, f64);

struct Scrape {
    samples: Samples,
    /// Every family announced, with its kind.
    families: HashMap<String, String>,
}

impl Scrape {
    /// The value of `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .get(name)?
            .iter()
            .find(|(have, _)| *have == wanted)
            .map(|(_, value)| *value)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }
}

fn http_get(address: &str, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: trunkline\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    // Bodies come whole or chunked; a metrics body is one chunk or plain.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the text format strictly enough to catch what Prometheus would refuse.
fn parse(text: &str) -> Scrape {
    let mut samples: Samples = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: Vec<String> = Vec::new();
    let mut finished_families: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split_whitespace().next().unwrap().to_owned();
            assert!(!helped.contains(&name), "HELP twice for {name}");
            if let Some(previous) = current.replace(name.clone()) {
                finished_families.push(previous);
            }
            helped.push(name);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap().to_owned();
            let kind = words.next().unwrap().to_owned();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind.as_str()),
                "{line}"
            );
            assert_eq!(
                current.as_deref(),
                Some(name.as_str()),
                "TYPE without HELP: {line}"
            );
            if kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "a counter's name ends in _total: {name}"
                );
            }
            types.insert(name, kind);
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        assert!(valid_name(name), "bad metric name {name:?}");
        let family = current
            .as_deref()
            .unwrap_or_else(|| panic!("sample before HELP: {line}"));
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("no TYPE for {family}"));
        let expected_names: Vec<String> = if kind == "histogram" {
            ["_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{family}{suffix}"))
                .collect()
        } else {
            vec![family.to_owned()]
        };
        assert!(
            expected_names.iter().any(|expected| expected == name),
            "sample {name} outside its family {family}"
        );
        let mut parsed = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (label, after) = rest.split_once("=\"").unwrap();
            assert!(
                valid_name(label) && !label.starts_with("__"),
                "bad label {label:?}"
            );
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                let (at, c) = chars.next().unwrap();
                match c {
                    '\\' => value.push(chars.next().unwrap().1),
                    '"' => break at,
                    other => value.push(other),
                }
            };
            assert!(
                parsed.insert(label.to_owned(), value).is_none(),
                "label twice in {line}"
            );
            rest = after[end + 1..].trim_start_matches(',');
        }
        samples
            .entry(name.to_owned())
            .or_default()
            .push((parsed, value));
    }
    assert!(!finished_families.contains(current.as_ref().unwrap()));
    // Histograms: buckets cumulative, +Inf equal to _count.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let buckets = samples
            .get(&format!("{family}_bucket"))
            .cloned()
            .unwrap_or_default();
        let mut by_series: BTreeMap<Vec<(String, String)>, Vec<Point>> = BTreeMap::new();
        for (labels, value) in buckets {
            let le = labels.get("le").unwrap().clone();
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            let rest: Vec<(String, String)> =
                labels.into_iter().filter(|(k, _)| k != "le").collect();
            by_series.entry(rest).or_default().push((bound, value));
        }
        for (labels, points) in by_series {
            assert!(points
                .windows(2)
                .all(|pair| pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1));
            let (last_bound, last) = *points.last().unwrap();
            assert!(last_bound.is_infinite());
            let labels: BTreeMap<String, String> = labels.into_iter().collect();
            let count = samples
                .get(&format!("{family}_count"))
                .and_then(|all| all.iter().find(|(have, _)| *have == labels))
                .map(|(_, value)| *value)
                .unwrap();
            assert_eq!(last, count, "{family} {labels:?}: +Inf bucket vs count");
        }
    }
    Scrape {
        samples,
        families: types,
    }
}

fn scrape(address: &str) -> Scrape {
    let (status, head, body) = http_get(address, "GET", "/metrics");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(&body)
}

async fn report_503(
    client: &trunkline_client::Client,
    call_id: &str,
    token: &str,
) -> proto::ReportLegResponse {
    let request = proto::ReportLegRequest {
        call_id: call_id.into(),
        route_token: token.into(),
        carrier: "alpha".into(),
        gateway: "alpha-1".into(),
        sip_code: 503,
        ..Default::default()
    };
    client
        .route(Retry::Idempotent, |mut route| {
            let request = request.clone();
            async move { route.report_leg(request).await }
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_the_node_did_in_the_prometheus_text_format() {
    let root = tempfile::tempdir().unwrap();
    let (node, client) = started(
        root.path(),
        &["--insecure", "--metrics-addr", "127.0.0.1:0"],
    )
    .await;
    let address = node.metrics_addr.clone().unwrap();
    let index = alpha_and_beta(&client).await;

    let before = scrape(&address);
    assert_eq!(before.get("trunkline_raft_is_leader", &[]), 1.0);
    assert_eq!(before.get("trunkline_raft_leader_id", &[]), 1.0);
    assert!(before.get("trunkline_raft_term", &[]) >= 1.0);
    assert!(before.get("trunkline_raft_applied_index", &[]) >= index as f64);
    assert!(before.get("trunkline_raft_committed_index", &[]) >= index as f64);
    assert_eq!(
        before.get("trunkline_raft_members", &[("role", "voter")]),
        1.0
    );
    assert!(before.get("trunkline_raft_proposals_total", &[]) >= 1.0);
    assert!(before.get("trunkline_raft_proposed_writes_total", &[]) >= 6.0);
    assert!(before.get("trunkline_raft_entries_applied_total", &[]) >= 1.0);
    assert!(before.get("trunkline_store_disk_used_bytes", &[]) > 0.0);
    assert!(before.get("trunkline_store_disk_free_bytes", &[]) > 0.0);
    assert_eq!(
        before.get("trunkline_store_disk_reserve_bytes", &[]),
        256.0 * 1024.0 * 1024.0
    );
    assert!(before.get("process_resident_memory_bytes", &[]) > 1e6);
    assert!(before.get("process_open_fds", &[]) > 3.0);
    assert_eq!(before.get("trunkline_calls_open", &[]), 0.0);
    assert_eq!(
        before.get("trunkline_config_objects", &[("kind", "gateway")]),
        2.0
    );
    assert_eq!(
        before.get(
            "trunkline_gateway_up",
            &[("carrier", "alpha"), ("gateway", "alpha-1")]
        ),
        1.0
    );
    assert_eq!(before.get("trunkline_breaker_openings_total", &[]), 0.0);
    let info = &before.samples["trunkline_node_info"][0].0;
    assert_eq!(info["node_id"], "1");
    assert_eq!(info["cluster"], CLUSTER_NAME);

    // Five calls whose first leg (alpha) fails with 503: each moves on to beta, and the fifth
    // opens alpha-1's breaker (five failures in a row, the default policy).
    for call in 0..5 {
        let call_id = format!("call-{call}");
        let routed = route_outbound(&client, outbound("acme", &call_id, "+442071838750", index))
            .await
            .unwrap();
        assert!(routed.refusal.is_none(), "{routed:?}");
        let next = report_503(&client, &call_id, &routed.route_token).await;
        assert!(
            matches!(
                next.outcome,
                Some(proto::report_leg_response::Outcome::Next(_))
            ),
            "{next:?}"
        );
    }
    // No carrier has a rate for France: refused, no route.
    let refused = route_outbound(&client, outbound("acme", "call-fr", "+33142278186", index))
        .await
        .unwrap();
    assert!(refused.refusal.is_some());
    // An unknown tenant is refused as an error status with its refusal word.
    route_outbound(
        &client,
        outbound("nobody", "call-x", "+442071838750", index),
    )
    .await
    .unwrap_err();
    // A bad request is an error.
    route_outbound(&client, outbound("acme", "", "+442071838750", index))
        .await
        .unwrap_err();

    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = scrape(&address);
        if after.get("trunkline_breaker_openings_total", &[]) >= 1.0 || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after.get("trunkline_breaker_openings_total", &[]), 1.0);
    assert_eq!(
        after.get(
            "trunkline_gateway_transitions_total",
            &[("to", "down"), ("source", "breaker")]
        ),
        1.0
    );
    assert_eq!(
        after.get(
            "trunkline_gateway_up",
            &[("carrier", "alpha"), ("gateway", "alpha-1")]
        ),
        0.0
    );
    assert_eq!(after.get("trunkline_gateways", &[("state", "down")]), 1.0);
    let count = |rpc: &str, outcome: &str| {
        after.get(
            "trunkline_route_request_duration_seconds_count",
            &[("rpc", rpc), ("outcome", outcome)],
        )
    };
    assert_eq!(count("route_outbound", "ok"), 5.0);
    assert_eq!(count("route_outbound", "refused"), 2.0);
    assert_eq!(count("route_outbound", "error"), 1.0);
    assert_eq!(count("report_leg", "ok"), 5.0);
    assert_eq!(
        after.get("trunkline_route_refusals_total", &[("reason", "no-route")]),
        1.0
    );
    assert_eq!(
        after.get(
            "trunkline_route_refusals_total",
            &[("reason", "unknown-tenant")]
        ),
        1.0
    );
    assert_eq!(
        after.get(
            "trunkline_route_refusals_total",
            &[("reason", "policy-premium")]
        ),
        0.0
    );
    assert_eq!(
        after.get("trunkline_reroutes_total", &[("sip_code", "503")]),
        5.0
    );
    assert_eq!(
        after.get("trunkline_leg_reports_total", &[("verdict", "next")]),
        5.0
    );
    // The breaker's opening was a write this node proposed as leader.
    assert!(
        after.get("trunkline_raft_proposed_writes_total", &[])
            > before.get("trunkline_raft_proposed_writes_total", &[])
    );
    assert!(
        after.get("trunkline_raft_applied_index", &[])
            > before.get("trunkline_raft_applied_index", &[])
    );

    // Every metric the shipped alert rules and dashboard use is one the node exports.
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/trunkline.json",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut used = 0;
        for (at, _) in text.match_indices("trunkline_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| after.families.get(*base).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(&name);
            assert!(
                after.families.contains_key(family),
                "{file} uses {name}, which the node does not export"
            );
            used += 1;
        }
        assert!(used > 10, "{file} uses {used} metrics");
    }

    // Only GET /metrics.
    let (status, _, _) = http_get(&address, "GET", "/other");
    assert_eq!(status, 404);
    let (status, _, _) = http_get(&address, "POST", "/metrics");
    assert_eq!(status, 405);
}
