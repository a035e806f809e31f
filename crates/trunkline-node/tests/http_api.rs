//! The HTTP/1.1 JSON endpoint (docs/http-api.md) against a real node process: what a
//! Kamailio cfg does with `http_client` — route a call, report a failed leg and get the next
//! carrier, report the last and get the SIP code to send — on one kept-alive connection, and
//! every kind of bad input answered with a status, the field and a SIP code, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use support::{
    routing::{
        alpha_and_beta, gateway, import, put_carrier, put_tenant, try_put_gateway, unprobed,
    },
    *,
};
use trunkline_client::{proto, Client, Retry};

/// One kept-alive HTTP/1.1 connection, as Kamailio's `http_client` keeps one per process.
struct Http {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

struct Reply {
    status: u16,
    body: Value,
    headers: Vec<(String, String)>,
}

impl Http {
    fn connect(address: &str) -> Http {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Http {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = format!("{method} {target} HTTP/1.1\r\nHost: trunkline\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        self.writer.write_all(request.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        self.read_reply()
    }

    fn get(&mut self, target: &str) -> Reply {
        self.send("GET", target, &[], b"")
    }

    fn read_reply(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"))
            .parse()
            .unwrap();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                length = value.parse().unwrap();
            }
            headers.push((name, value));
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
        Reply {
            status,
            body,
            headers,
        }
    }
}

/// `application/x-www-form-urlencoded` escaping for a query value.
fn escape(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A one-node cluster with the HTTP listener, initialised, without tokens.
async fn started_http(root: &std::path::Path) -> (TestNode, Client) {
    started(root, &["--insecure", "--http-addr", "127.0.0.1:0"]).await
}

/// Tenant acme; carriers alpha and beta, each one unprobed gateway, both pricing "44", alpha
/// the cheaper; a DID whose device is not registered, diverting to a SIP URI.
async fn setup(client: &Client) -> u64 {
    alpha_and_beta(client).await;
    let device = proto::PutDeviceRequest {
        device: Some(proto::Device {
            aor: "sip:alice@acme.example".into(),
            tenant: "acme".into(),
            disabled: false,
            continuity: None,
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let device = device.clone();
            async move { admin.put_device(device).await }
        })
        .await
        .unwrap();
    let did = proto::PutDidRequest {
        did: Some(proto::Did {
            number: "+14155550100".into(),
            tenant: "acme".into(),
            device: "sip:alice@acme.example".into(),
            continuity: Some(proto::ContinuityPlan {
                targets: vec![proto::ContinuityTarget {
                    destination: Some(proto::continuity_target::Destination::SipUri(
                        "sip:reception@pbx.acme.example".into(),
                    )),
                    ring_timeout_ms: 15_000,
                }],
                triggers: None,
            }),
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let did = did.clone();
            async move { admin.put_did(did).await }
        })
        .await
        .unwrap()
        .applied_index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_routes_fails_over_and_stops_over_one_kept_alive_http_connection() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (node, client) = started_http(root.path()).await;
    let applied = setup(&client).await;
    let address = node
        .http_addr
        .clone()
        .expect("the node printed its http address");

    let http = tokio::task::spawn_blocking(move || {
        let mut http = Http::connect(&address);
        // The health check a proxy's balancer uses.
        let health = http.get("/health");
        assert_eq!(health.status, 200);
        assert_eq!(health.body["status"], "serving");

        // The call: two carriers in price order, as an rtjson serial document.
        let call_id = "a1b2c3@10.0.0.1";
        let first = http.get(&format!(
            "/v1/outbound?tenant=acme&call_id={}&to={}&from=%2B14155550100&min_applied_index={applied}",
            escape(call_id),
            escape("+442071234567")
        ));
        assert_eq!(first.status, 200, "{}", first.body);
        let body = &first.body;
        assert_eq!(body["version"], "1.0");
        assert_eq!(body["routing"], "serial");
        assert_eq!(body["action"], "route");
        assert_eq!(body["carrier"], "alpha");
        assert_eq!(body["gateway"], "alpha-1");
        assert_eq!(body["destination_class"], "international");
        let routes = body["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0]["uri"], "sip:+442071234567@192.0.2.10:5060");
        assert_eq!(routes[0]["dst_uri"], "sip:192.0.2.10:5060");
        assert_eq!(routes[1]["carrier"], "beta");
        assert!(routes[1]["uri"].as_str().unwrap().ends_with(";transport=tcp"));
        assert_eq!(routes[0]["fr_timer"], 3_000);
        assert_eq!(
            first.headers.iter().find(|(name, _)| name == "content-type").unwrap().1,
            "application/json"
        );
        let token = text(&body["route_token"]);
        assert!(!token.is_empty());

        // alpha refuses with 503: the report answers with beta, as a form body this time.
        let form = format!(
            "call_id={}&route_token={}&carrier=alpha&gateway=alpha-1&sip_code=503",
            escape(call_id),
            escape(&token)
        );
        let next = http.send(
            "POST",
            "/v1/leg",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        );
        assert_eq!(next.status, 200, "{}", next.body);
        assert_eq!(next.body["action"], "route");
        assert_eq!(next.body["carrier"], "beta");
        assert_eq!(next.body["routes"].as_array().unwrap().len(), 1);
        let token = text(&next.body["route_token"]);

        // beta gives up too, reported as JSON (what OpenSIPS rest_client sends): no carrier
        // is left, and the answer says which SIP code to send.
        let json = serde_json::json!({
            "call_id": call_id,
            "route_token": token,
            "carrier": "beta",
            "gateway": "beta-1",
            "sip_code": 502,
        });
        let stop = http.send(
            "POST",
            "/v1/leg",
            &[("Content-Type", "application/json")],
            json.to_string().as_bytes(),
        );
        assert_eq!(stop.status, 200, "{}", stop.body);
        assert_eq!(stop.body["action"], "stop");
        assert_eq!(stop.body["reason"], "no-more-routes");
        assert_eq!(stop.body["sip_code"], 503);

        // Inbound: the device never registered, so the continuity target comes first.
        let inbound = http.get("/v1/inbound?did=%2B14155550100&call_id=in-1");
        assert_eq!(inbound.status, 200, "{}", inbound.body);
        assert_eq!(inbound.body["kind"], "continuity");
        assert_eq!(inbound.body["skip_reason"], "not-registered");
        assert_eq!(inbound.body["routes"][0]["uri"], "sip:reception@pbx.acme.example");
        assert_eq!(inbound.body["routes"][0]["fr_inv_timer"], 15_000);

        // An edge reports the REGISTER, its Path as SIP writes it.
        let registered = http.get(&format!(
            "/v1/registration?edge=edge1&aor={}&contact={}&expires_s=300&path={}",
            escape("sip:alice@acme.example"),
            escape("sip:alice@10.0.0.5:5060"),
            escape("<sip:edge1.acme.example;lr>")
        ));
        assert_eq!(registered.status, 200, "{}", registered.body);
        let index = registered.body["applied_index"].as_u64().unwrap();
        let ringing = http.get(&format!(
            "/v1/inbound?did=%2B14155550100&call_id=in-2&min_applied_index={index}"
        ));
        assert_eq!(ringing.body["kind"], "device", "{}", ringing.body);
        assert_eq!(ringing.body["routing"], "parallel");
        assert_eq!(ringing.body["routes"][0]["uri"], "sip:alice@10.0.0.5:5060");
        assert_eq!(ringing.body["routes"][0]["dst_uri"], "sip:edge1.acme.example;lr");
        assert_eq!(ringing.body["routes"][0]["path"], "<sip:edge1.acme.example;lr>");
        // The device is busy: the plan's triggers don't divert a busy device, so the answer
        // is the stop with the device's own code, for the proxy to relay.
        let busy = http.get(&format!(
            "/v1/leg?call_id=in-2&route_token={}&sip_code=486",
            escape(&text(&ringing.body["route_token"]))
        ));
        assert_eq!(busy.status, 200, "{}", busy.body);
        assert_eq!(busy.body["action"], "stop", "{}", busy.body);
        assert_eq!(busy.body["reason"], "callee-answer");
        assert_eq!(busy.body["sip_code"], 486);
        http
    })
    .await
    .unwrap();
    drop(http);
    drop(node);
}

/// A proxy's call-end reporter sends what queued as one `/v1/call-ends` request: the node
/// answers each report as `/v1/call-end` would, in order, and writes the batch's records
/// together, in a few Raft entries (a request each would make an entry each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_call_ends_is_written_together_and_each_report_answered() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (node, client) = started_http(root.path()).await;
    let applied = setup(&client).await;
    let address = node.http_addr.clone().unwrap();
    const CALLS: usize = 20;

    tokio::task::spawn_blocking(move || {
        let mut http = Http::connect(&address);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut lines = Vec::new();
        let mut first_token = String::new();
        for call in 0..CALLS {
            let routed = http.get(&format!(
                "/v1/outbound?tenant=acme&call_id=batch-{call}&to=%2B442071234567&min_applied_index={applied}"
            ));
            assert_eq!(routed.status, 200, "{}", routed.body);
            let token = text(&routed.body["route_token"]);
            if call == 0 {
                first_token = token.clone();
            }
            lines.push(format!(
                "call_id=batch-{call}&route_token={}&answered=1&answer_time_ms={}&end_time_ms={}",
                escape(&token),
                now_ms + 1_000,
                now_ms + 61_000 + call as u64
            ));
        }
        // Two reports that can't be taken: a token of another call, an unknown parameter.
        lines.insert(
            5,
            format!("call_id=someone-else&route_token={}", escape(&first_token)),
        );
        lines.push("call_id=batch-x&tennant=acme".to_owned());

        let reply = http.send(
            "POST",
            "/v1/call-ends",
            &[("Content-Type", "text/plain")],
            lines.join("\r\n").as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["reports"], CALLS + 2, "{}", reply.body);
        assert_eq!(reply.body["ended"], CALLS, "{}", reply.body);
        assert_eq!(reply.body["failed"], 2, "{}", reply.body);
        let results = reply.body["results"].as_array().unwrap();
        assert_eq!(results.len(), CALLS + 2);
        for (index, result) in results.iter().enumerate() {
            assert_eq!(result["line"], index + 1, "{result}");
        }
        assert_eq!(results[0]["status"], 200, "{}", results[0]);
        assert_eq!(results[5]["status"], 400, "{}", results[5]);
        assert_eq!(results[5]["field"], "route_token", "{}", results[5]);
        assert_eq!(results[CALLS + 1]["status"], 400);
        assert_eq!(results[CALLS + 1]["field"], "tennant");

        // Sent again (a reporter whose answer was lost): duplicates, answered alike, and
        // as a JSON array this time.
        let again: Vec<Value> = (0..2)
            .map(|call| {
                serde_json::json!({
                    "call_id": format!("batch-{call}"),
                    "route_token": first_token,
                    "answered": false,
                })
            })
            .collect();
        let again = http.send(
            "POST",
            "/v1/call-ends",
            &[("Content-Type", "application/json")],
            Value::Array(again).to_string().as_bytes(),
        );
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.body["reports"], 2, "{}", again.body);
        assert_eq!(again.body["results"][1]["field"], "route_token", "{}", again.body);

        // The batch as a whole refused, naming what to fix.
        let query = http.send("POST", "/v1/call-ends?call_id=x", &[], lines[0].as_bytes());
        assert_eq!((query.status, text(&query.body["field"])), (400, "query".to_owned()));
        let empty = http.send("POST", "/v1/call-ends", &[], b"\n\n");
        assert_eq!((empty.status, text(&empty.body["field"])), (400, "body".to_owned()));
        assert!(text(&empty.body["message"]).contains("no report"), "{}", empty.body);
        let many = vec!["call_id=x"; 257].join("\n");
        let many = http.send("POST", "/v1/call-ends", &[], many.as_bytes());
        assert_eq!((many.status, text(&many.body["field"])), (400, "body".to_owned()));
        assert!(text(&many.body["message"]).contains("256"), "{}", many.body);
        let not_json = http.send(
            "POST",
            "/v1/call-ends",
            &[("Content-Type", "application/json")],
            b"{\"call_id\": 1}",
        );
        assert_eq!(not_json.status, 400, "{}", not_json.body);
        assert_eq!(not_json.body["sip_code"], 400);
        http
    })
    .await
    .unwrap();

    // Every routed call has its whole record, written in far fewer entries than reports.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let ended = loop {
        let (mut records, _) = call_records(&client).await;
        records.retain(|record| record.call_id.starts_with("batch-") && record.end_ms > 0);
        if records.len() >= CALLS || tokio::time::Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended.len(), CALLS, "{ended:?}");
    assert!(ended.iter().all(
        |record| record.disposition == "answered" && record.end_ms - record.answer_ms >= 60_000
    ));
    let mut entries: Vec<u64> = ended.iter().map(|record| record.log_index).collect();
    entries.sort_unstable();
    entries.dedup();
    assert!(
        entries.len() <= 3,
        "{CALLS} call ends in one request took {} Raft entries: {entries:?}",
        entries.len()
    );
    drop(node);
}

/// A proxy that asks once a call (`plan=1`): one leg per carrier, each with its carrier's
/// final codes, as words a cfg can pick; the failed legs reported in a `/v1/legs` batch reach
/// the gateway's breaker; the call's end names the legs tried, which the record keeps, and
/// the leg that answered prices the call. A leg the answer never offered is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_following_a_plan_asks_once_and_reports_its_legs_after() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (node, client) = started_http(root.path()).await;
    // alpha with two gateways; beta with one, marking 503 as the callee's final answer.
    put_carrier(&client, "alpha", vec![]).await;
    put_carrier(&client, "beta", vec![503]).await;
    // alpha-2 is alpha's second choice: it comes first only while alpha-1's breaker is open.
    for (name, carrier, uri, priority) in [
        ("alpha-1", "alpha", "sip:192.0.2.10:5060", 1),
        ("alpha-2", "alpha", "sip:192.0.2.11:5060", 2),
        ("beta-1", "beta", "sip:192.0.2.20:5060", 1),
    ] {
        let gateway = proto::Gateway {
            priority,
            ..unprobed(gateway(name, carrier, uri))
        };
        try_put_gateway(&client, gateway).await.unwrap();
    }
    import(&client, "alpha", &[("44", 1_000)]).await;
    import(&client, "beta", &[("44", 2_000)]).await;
    let applied = put_tenant(&client, "acme").await;
    let address = node.http_addr.clone().unwrap();

    tokio::task::spawn_blocking(move || {
        let mut http = Http::connect(&address);
        let ask = |http: &mut Http, call_id: &str, plan: bool| {
            http.get(&format!(
                "/v1/outbound?tenant=acme&call_id={call_id}&to=%2B442071234567&min_applied_index={applied}&plan={}",
                u8::from(plan)
            ))
        };
        // Without a plan every gateway is a route; with one, the first of each carrier.
        let whole = ask(&mut http, "whole-1", false);
        assert_eq!(whole.body["routes"].as_array().unwrap().len(), 3, "{}", whole.body);
        let planned = ask(&mut http, "plan-1", true);
        assert_eq!(planned.status, 200, "{}", planned.body);
        let body = &planned.body;
        let routes = body["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 2, "{body}");
        assert_eq!(routes[0]["carrier"], "alpha");
        assert_eq!(routes[1]["carrier"], "beta");
        assert_eq!(routes[1]["final_codes"], serde_json::json!([503]));
        let alpha_first = text(&routes[0]["gateway"]);
        assert_eq!(alpha_first, "alpha-1");
        // Each leg as a word, with the codes that move the call on from it (a pattern):
        // beta's 503 is the callee's answer, so it stops the call.
        assert_eq!(
            body["route_legs"],
            "alpha/alpha-1/^(408|5[0-9][0-9])$ beta/beta-1/^(408|5[1-9][0-9]|50[0-24-9])$"
        );
        assert_eq!(routes[1]["next_codes"], "^(408|5[1-9][0-9]|50[0-24-9])$");
        let token = text(&body["route_token"]);

        // The failed legs of five calls, sent after the fact in one batch: each is answered,
        // and the gateway's breaker counts them.
        let lines: Vec<String> = (0..5)
            .map(|call| {
                let routed = ask(&mut http, &format!("plan-fail-{call}"), true);
                format!(
                    "call_id=plan-fail-{call}&route_token={}&carrier=alpha&gateway={alpha_first}&sip_code=503&planned=1",
                    escape(&text(&routed.body["route_token"]))
                )
            })
            .collect();
        let reported = http.send("POST", "/v1/legs", &[], lines.join("\n").as_bytes());
        assert_eq!(reported.status, 200, "{}", reported.body);
        assert_eq!(reported.body["reports"], 5, "{}", reported.body);
        assert_eq!(reported.body["failed"], 0, "{}", reported.body);
        // Planned: checked and counted, with no next leg worked out and no token signed.
        let first = &reported.body["results"][0];
        assert_eq!(first["action"], "recorded", "{first}");
        assert!(first.get("route_token").is_none(), "{first}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Calls sampled as the breaker's trials still get the gateway: another Call-ID each.
        for attempt in 0.. {
            let again = ask(&mut http, &format!("plan-after-{attempt}"), true);
            let first = text(&again.body["routes"][0]["gateway"]);
            if first != alpha_first {
                assert_eq!(first, "alpha-2", "{}", again.body);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the batch's failures never opened {alpha_first}'s breaker"
            );
            std::thread::sleep(Duration::from_millis(50));
        }

        // The call's end: alpha failed, beta answered; the record keeps alpha's failure and
        // the call is priced at beta's rate.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let end = |http: &mut Http, legs: &[&str], answered: bool| {
            let legs: String = legs.iter().map(|leg| format!("&legs={}", escape(leg))).collect();
            http.get(&format!(
                "/v1/call-end?call_id=plan-1&route_token={}&answered={}&answer_time_ms={}&end_time_ms={}{legs}",
                escape(&token),
                u8::from(answered),
                now_ms,
                now_ms + 60_000
            ))
        };
        let alpha_leg = format!("alpha/{alpha_first}/503");
        for (legs, answered, why) in [
            (vec!["alpha/alpha-9/503", "beta/beta-1/200"], true, "not one this call"),
            (vec![alpha_leg.as_str(), "beta/beta-1/486"], true, "2xx is missing"),
            (vec!["beta/beta-1/200", alpha_leg.as_str()], true, "must be the last"),
            (vec![alpha_leg.as_str(), "beta/beta-1/180"], false, "not a final SIP code"),
        ] {
            let refused = end(&mut http, &legs, answered);
            assert_eq!(refused.status, 400, "{legs:?}: {}", refused.body);
            assert_eq!(refused.body["field"], "legs", "{}", refused.body);
            assert!(text(&refused.body["message"]).contains(why), "{}", refused.body);
        }
        let ended = end(&mut http, &[alpha_leg.as_str(), "beta/beta-1/200"], true);
        assert_eq!(ended.status, 200, "{}", ended.body);
        // A call routed without a plan has its legs in its token: none are taken here.
        let whole_token = text(&whole.body["route_token"]);
        let planless = http.get(&format!(
            "/v1/call-end?call_id=whole-1&route_token={}&answered=0&legs=alpha%2Falpha-1%2F503",
            escape(&whole_token)
        ));
        assert_eq!(planless.status, 400, "{}", planless.body);
        assert_eq!(planless.body["field"], "legs", "{}", planless.body);
        alpha_first
    })
    .await
    .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let record = loop {
        let (records, _) = call_records(&client).await;
        if let Some(record) = records
            .into_iter()
            .find(|record| record.call_id == "plan-1" && record.end_ms > 0)
        {
            break record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no record of plan-1's end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record.disposition, "answered", "{record:?}");
    assert_eq!(record.legs.len(), 1, "{record:?}");
    assert_eq!(
        (record.legs[0].carrier.as_str(), record.legs[0].sip_code),
        ("alpha", 503)
    );
    // 60 s at beta's 2,000 micros a minute, not alpha's 1,000.
    assert_eq!(record.cost_micros, 2_000, "{record:?}");
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_the_field_and_a_sip_code_never_a_panic() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let (node, client) = started_http(root.path()).await;
    setup(&client).await;
    let address = node.http_addr.clone().unwrap();

    tokio::task::spawn_blocking(move || {
        let mut http = Http::connect(&address);
        let expect = |reply: Reply, status: u16, field: Option<&str>, sip_code: u64| {
            assert_eq!(reply.status, status, "{}", reply.body);
            assert_eq!(reply.body["action"], "stop", "{}", reply.body);
            assert_eq!(reply.body["sip_code"], sip_code, "{}", reply.body);
            if let Some(field) = field {
                assert_eq!(reply.body["field"], field, "{}", reply.body);
            }
            reply.body
        };
        let missing = expect(
            http.get("/v1/outbound?tenant=acme&call_id=x"),
            400,
            Some("to"),
            400,
        );
        assert!(
            text(&missing["message"]).contains("is required"),
            "{missing}"
        );
        let unknown = expect(
            http.get("/v1/outbound?tenant=nobody&call_id=x&to=%2B442071234567"),
            404,
            None,
            403,
        );
        assert_eq!(unknown["reason"], "unknown-tenant");
        expect(
            http.get("/v1/outbound?tennant=acme&call_id=x&to=1"),
            400,
            Some("tennant"),
            400,
        );
        expect(
            http.get("/v1/outbound?tenant=acme&tenant=b&call_id=x&to=1"),
            400,
            Some("tenant"),
            400,
        );
        expect(
            http.get("/v1/outbound?tenant=acme&call_id=x&to=%2B44&media=telepathy"),
            400,
            Some("media"),
            400,
        );
        expect(
            http.get("/v1/outbound?tenant=acme&call_id=x&to=%ZZ"),
            400,
            Some("to"),
            400,
        );
        let number = expect(
            http.get("/v1/outbound?tenant=acme&call_id=x&to=12ab"),
            400,
            None,
            484,
        );
        assert_eq!(number["reason"], "invalid-number");
        // A forged token, a malformed code, a leg of an outbound call without its carrier.
        expect(
            http.get("/v1/leg?call_id=x&route_token=forged&carrier=alpha&sip_code=503"),
            400,
            Some("route_token"),
            400,
        );
        expect(
            http.get("/v1/leg?call_id=x&route_token=t&sip_code=5o3"),
            400,
            Some("sip_code"),
            400,
        );
        let routed = http.get("/v1/outbound?tenant=acme&call_id=y&to=%2B442071234567");
        let token = escape(&text(&routed.body["route_token"]));
        let no_carrier = expect(
            http.get(&format!(
                "/v1/leg?call_id=y&route_token={token}&sip_code=503"
            )),
            400,
            Some("carrier"),
            400,
        );
        assert!(text(&no_carrier["message"]).contains("is required"));
        expect(
            http.get(&format!(
                "/v1/leg?call_id=another&route_token={token}&carrier=alpha&sip_code=503"
            )),
            400,
            Some("route_token"),
            400,
        );
        expect(
            http.send(
                "POST",
                "/v1/outbound",
                &[("Content-Type", "application/json")],
                b"{not json",
            ),
            400,
            Some("body"),
            400,
        );
        expect(
            http.send(
                "POST",
                "/v1/outbound",
                &[("Content-Type", "text/xml")],
                b"<a/>",
            ),
            400,
            Some("content-type"),
            400,
        );
        expect(
            http.get("/v1/inbound?did=%2B19995550000&call_id=z"),
            404,
            None,
            404,
        );
        let method = expect(http.send("PUT", "/v1/outbound", &[], b""), 405, None, 500);
        assert_eq!(method["error"], "method_not_allowed");
        expect(http.get("/v1/admin/tokens"), 404, None, 500);
        // Still the same connection after every refusal: nothing above closed it.
        assert_eq!(http.get("/health").status, 200);

        // A body over the bound is refused whole.
        let oversized = vec![b'a'; 70 * 1024];
        let reply = http.send(
            "POST",
            "/v1/outbound",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &oversized,
        );
        assert_eq!(reply.status, 413, "{}", reply.body);
        // Headers over the bound close the connection with 431, and the node lives on.
        let mut fresh = Http::connect(&address);
        let huge = "x".repeat(20 * 1024);
        let mut request = format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {huge}\r\n\r\n");
        let _ = fresh.writer.write_all(request.as_bytes());
        let mut line = String::new();
        let _ = fresh.reader.read_line(&mut line);
        assert!(line.contains("431") || line.is_empty(), "{line:?}");
        request.clear();
        assert_eq!(Http::connect(&address).get("/health").status, 200);
    })
    .await
    .unwrap();
    assert!(node.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_endpoint_asks_for_the_same_tokens_as_grpc() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(
        root.path(),
        1,
        &["--insecure", "--require-auth", "--http-addr", "127.0.0.1:0"],
    );
    let bootstrap = std::fs::read_to_string(node.data_dir.join("bootstrap.token")).unwrap();
    let init = initialise(&authenticated(&node, bootstrap.trim())).await;
    let admin = authenticated(&node, &init.admin_token);
    wait_for_leader(&admin, Duration::from_secs(10)).await;
    setup(&admin).await;
    let create = |name: &'static str, tenant: &'static str| {
        let admin = &admin;
        async move {
            let request = proto::CreateTokenRequest {
                name: name.into(),
                role: "proxy".into(),
                tenants: vec![tenant.into()],
                ..Default::default()
            };
            admin
                .admin(Retry::NotSent, |mut client| {
                    let request = request.clone();
                    async move { client.create_token(request).await }
                })
                .await
                .unwrap()
                .token
        }
    };
    put_tenant(&admin, "globex").await;
    let proxy = create("acme-proxy", "acme").await;
    let other_tenant = create("globex-proxy", "globex").await;
    let address = node.http_addr.clone().unwrap();
    let call = "/v1/outbound?tenant=acme&call_id=c&to=%2B442071234567";

    tokio::task::spawn_blocking(move || {
        let mut http = Http::connect(&address);
        let anonymous = http.get(call);
        assert_eq!(anonymous.status, 401, "{}", anonymous.body);
        assert_eq!(anonymous.body["sip_code"], 403);
        let wrong = http.send(
            "GET",
            call,
            &[("Authorization", "Bearer tl1.nope.nope")],
            b"",
        );
        assert_eq!(wrong.status, 401);

        let bearer = format!("Bearer {proxy}");
        let routed = http.send("GET", call, &[("Authorization", &bearer)], b"");
        assert_eq!(routed.status, 200, "{}", routed.body);
        assert_eq!(routed.body["action"], "route");
        // What Kamailio's httpcon URL `http://trunkline:TOKEN@node` sends.
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("trunkline:{proxy}"))
        );
        let routed = http.send("GET", call, &[("Authorization", &basic)], b"");
        assert_eq!(routed.status, 200, "{}", routed.body);
        // A proxy of another tenant learns nothing of acme.
        let outside = http.send(
            "GET",
            call,
            &[("Authorization", &format!("Bearer {other_tenant}"))],
            b"",
        );
        assert_eq!(outside.status, 403, "{}", outside.body);
        assert_eq!(outside.body["sip_code"], 403);
        // Health needs no token: a balancer checks it.
        assert_eq!(http.get("/health").status, 200);
    })
    .await
    .unwrap();
    assert!(
        node.stop(),
        "the node stops cleanly with HTTP connections open"
    );
}

fn authenticated(node: &TestNode, token: &str) -> Client {
    node.client().with_token(token).unwrap()
}

/// One request over a stream and its answer: status and JSON body (the answer is read
/// whole: the node sends Content-Length).
async fn exchange<S>(stream: &mut S, target: &str) -> (u16, Value)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {target} HTTP/1.1\r\nHost: trunkline\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(read > 0, "the connection closed before a whole answer");
        received.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, serde_json::from_str(&body[..length]).unwrap());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_the_http_endpoint_serves_https_with_the_nodes_certificate_only() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(root.path(), 1, &["--http-addr", "127.0.0.1:0"]);
    let client = node.client();
    initialise(&client).await;
    wait_for_leader(&client, Duration::from_secs(10)).await;
    setup(&client).await;
    let address = node.http_addr.clone().unwrap();
    let pki = node.pki.clone().expect("a node with TLS");

    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    // Offered as curl and libcurl (Kamailio's http_client) offer them: the listener speaks
    // HTTP/1.1, so it must pick http/1.1, not h2 (it did, and the client then spoke HTTP/2
    // to an HTTP/1.1 server).
    let mut offering = (*client_tls(&pki)).clone();
    offering.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(offering))
        .connect(name, tcp)
        .await
        .expect("the HTTP listener speaks TLS with a certificate of the cluster's CA");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "the HTTP listener negotiates HTTP/1.1"
    );
    let (status, body) = exchange(&mut tls, "/health").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = exchange(
        &mut tls,
        "/v1/outbound?tenant=acme&call_id=tls-1&to=+442071234567",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["action"], "route");
    assert_eq!(body["carrier"], "alpha");

    // Plain HTTP to the TLS listener gets no HTTP answer: it is not a second, open door.
    let mut plain = tokio::net::TcpStream::connect(&address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: trunkline\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "a plaintext request was answered"
    );
}
