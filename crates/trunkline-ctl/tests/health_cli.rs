//! trunkctl's gateway health commands as an operator uses them: the real binary against a
//! real node started in this process, probing real SIP responders on 127.0.0.1. The health
//! policy shown and changed one setting at a time, probe overrides on gateways, `health`
//! listing gateways as they go down, and `events` printing the transitions, afterwards and
//! as they happen, across a broken connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    io::{BufRead, BufReader},
    net::{Shutdown, TcpListener, TcpStream},
    process::{Child, Stdio},
    sync::{
        mpsc::{self, Receiver, RecvTimeoutError},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use support::{check, closed_port, json, start_node, trunkctl, trunkctl_with, Node};
use trunkline_node::sip_responder::{Behaviour, SipResponder};

/// Longest wait for a gateway to change state or an event to show: probes run every 200 ms
/// in these tests, so this is generous even on a loaded machine.
const HEALTH_WAIT: Duration = Duration::from_secs(20);
/// Pause between two polls of `trunkctl health`.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Probe overrides that make a gateway change state within a second.
const FAST_PROBES: &[&str] = &[
    "--probe-interval",
    "200ms",
    "--probe-timeout",
    "100ms",
    "--down-after",
    "2",
    "--up-after",
    "1",
];

/// The VALUE column of a `health policy show` or `gateway show` row.
fn value_of(table: &str, name: &str) -> String {
    table
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            rest.starts_with("  ").then(|| {
                rest.split("  ")
                    .map(str::trim)
                    .find(|cell| !cell.is_empty())
                    .unwrap_or_default()
                    .to_owned()
            })
        })
        .unwrap_or_else(|| panic!("no {name:?} row in:\n{table}"))
}

/// The line of a table or event list that mentions `gateway` as a whole word.
fn line_of<'a>(text: &'a str, gateway: &str) -> &'a str {
    text.lines()
        .find(|line| line.split_whitespace().any(|word| word == gateway))
        .unwrap_or_else(|| panic!("no line for {gateway} in:\n{text}"))
}

/// Runs `trunkctl args` until its standard output satisfies `done`; fails with `what` and
/// the last output after [`HEALTH_WAIT`].
fn wait_until(node: &Node, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + HEALTH_WAIT;
    loop {
        let stdout = check(trunkctl(node, args), 0, &[], &[]);
        if done(&stdout) {
            return stdout;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {HEALTH_WAIT:?}; last `trunkctl {}`:\n{stdout}",
            args.join(" ")
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A runtime that hosts the SIP responders standing in for gateways.
fn responders_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn add_gateway(node: &Node, name: &str, uri: &str, extra: &[&str]) {
    let mut args = vec!["gateway", "add", name, "--carrier", "acme", "--uri", uri];
    args.extend_from_slice(extra);
    check(trunkctl(node, &args), 0, &["created"], &[]);
}

/// `trunkctl events --follow` running as a child process, its output read line by line.
struct Follower {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every line read so far, for failure messages and duplicate checks.
    seen_stdout: Vec<String>,
    seen_stderr: Vec<String>,
}

impl Follower {
    fn start(endpoints: &str, args: &[&str]) -> Follower {
        let mut child = support::trunkctl_command()
            .args(["--endpoints", endpoints, "events", "--follow"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = |pipe: Box<dyn std::io::Read + Send>| {
            let (sender, receiver) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    if sender.send(line).is_err() {
                        return;
                    }
                }
            });
            receiver
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Follower {
            child,
            stdout,
            stderr,
            seen_stdout: Vec::new(),
            seen_stderr: Vec::new(),
        }
    }

    /// Waits for a standard output line holding every needle and returns it.
    fn expect_stdout(&mut self, needles: &[&str]) -> String {
        self.expect(true, needles)
    }

    /// Waits for a standard error line holding every needle and returns it.
    fn expect_stderr(&mut self, needles: &[&str]) -> String {
        self.expect(false, needles)
    }

    fn expect(&mut self, stdout: bool, needles: &[&str]) -> String {
        let deadline = Instant::now() + HEALTH_WAIT;
        loop {
            // Keep collecting the other stream too, for the failure message.
            while let Ok(line) = self.stderr.try_recv() {
                self.seen_stderr.push(line.clone());
                if !stdout && needles.iter().all(|needle| line.contains(needle)) {
                    return line;
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let wait = remaining.min(POLL_INTERVAL);
            match self.stdout.recv_timeout(wait) {
                Ok(line) => {
                    self.seen_stdout.push(line.clone());
                    if stdout && needles.iter().all(|needle| line.contains(needle)) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) if !remaining.is_zero() => {}
                Err(error) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "no {} line with {needles:?} within {HEALTH_WAIT:?} ({error:?}, exit \
                         {status:?})\nstdout:\n{}\nstderr:\n{}",
                        if stdout { "stdout" } else { "stderr" },
                        self.seen_stdout.join("\n"),
                        self.seen_stderr.join("\n"),
                    );
                }
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay between trunkctl and the node whose connections the test can cut, as a
/// failing network or load balancer would.
struct Relay {
    addr: String,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let kept = connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut list = kept.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                drop(list);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, connections }
    }

    /// Cuts every connection made so far; new ones are relayed again.
    fn cut(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn health_usage_mistakes_exit_2_before_anything_is_sent() {
    // No node runs at this address: each mistake must be found before any I/O (a request
    // would fail with exit code 1 instead).
    let dead = closed_port();
    let run = |args: &[&str]| trunkctl_with(&dead, args);
    for (args, needle) in [
        (&["health", "policy", "set"][..], "nothing to change"),
        (
            &["health", "policy", "set", "--interval", "10ms"],
            "--interval: interval_ms must be from 100",
        ),
        (
            &["health", "policy", "set", "--alive-codes", "408"],
            "--alive-codes: alive code 408 must be",
        ),
        (
            &["health", "policy", "set", "--interval", "2x"],
            "'2x' for '--interval <DURATION>'",
        ),
        (
            &[
                "health",
                "policy",
                "set",
                "--interval",
                "1s",
                "--timeout",
                "2s",
            ],
            "--timeout: timeout_ms must be at most interval_ms",
        ),
        (
            &["health", "policy", "set", "--breaker-ratio", "101"],
            "--breaker-ratio: failure_ratio_percent must be from 1 to 100",
        ),
        (
            &["health", "policy", "set", "--max-transitions", "1"],
            "--max-transitions: max_transitions must be from 2",
        ),
        (&["health", "--carrier", "a b"], "--carrier: \"a b\""),
        (&["health", "--carrier", "acme", "policy", "show"], "policy"),
        (
            &["events", "--recent", "5000"],
            "--recent: must be at most 1000",
        ),
        (&["events", "--after", "5", "--recent", "3"], "--recent"),
        (&["events", "--after", "0"], "--after: must be a positive"),
        (
            &[
                "gateway",
                "add",
                "gw1",
                "--carrier",
                "acme",
                "--uri",
                "sip:gw.example.net",
                "--probe-interval",
                "10ms",
            ],
            "--probe-interval: interval_ms must be from 100",
        ),
        (
            &[
                "gateway",
                "add",
                "gw1",
                "--carrier",
                "acme",
                "--uri",
                "sip:gw.example.net",
                "--alive-codes",
                "200,408",
            ],
            "--alive-codes: alive code 408",
        ),
        (
            &[
                "gateway",
                "add",
                "gw1",
                "--carrier",
                "acme",
                "--uri",
                "sip:gw.example.net",
                "--probe",
                "maybe",
            ],
            "'maybe' for '--probe <on|off>'",
        ),
        (
            &["gateway", "update", "gw1", "--probe-timeout", "50ms"],
            "--probe-timeout: timeout_ms must be from 100",
        ),
        (
            &["gateway", "update", "gw1", "--alive-codes", "70000"],
            "--alive-codes: \"70000\" is not a SIP code",
        ),
        (
            &["gateway", "update", "gw1", "--down-after", "0"],
            "--down-after: down_after must be from 1",
        ),
    ] {
        check(run(args), 2, &[], &[needle]);
    }
}

#[test]
fn the_policy_shows_its_defaults_and_set_changes_only_the_settings_given() {
    let node = start_node();
    let defaults = check(
        trunkctl(&node, &["health", "policy", "show"]),
        0,
        &["SETTING", "VALUE", "MEANING"],
        &[],
    );
    for (setting, value) in [
        ("interval", "2s"),
        ("timeout", "1s"),
        ("down-after", "3"),
        ("up-after", "2"),
        ("alive-codes", "200"),
        ("breaker-failures", "5"),
        ("breaker-window", "30s"),
        ("breaker-min-samples", "20"),
        ("breaker-ratio", "50%"),
        ("cool-down", "30s"),
        ("breaker-probe-successes", "2"),
        ("breaker-trial-after", "5s"),
        ("breaker-trial-one-in", "20"),
        ("max-transitions", "6"),
        ("flapping-window", "1m"),
    ] {
        assert_eq!(value_of(&defaults, setting), value, "{setting}");
    }
    let shown = |node: &Node| {
        json(&check(
            trunkctl(node, &["-o", "json", "health", "policy", "show"]),
            0,
            &[],
            &[],
        ))["policy"]
            .clone()
    };
    let mut expected = serde_json::json!({
        "probe": {
            "interval_ms": 2000, "timeout_ms": 1000, "down_after": 3, "up_after": 2,
            "alive_codes": [200],
        },
        "breaker": {
            "consecutive_failures_to_open": 5, "window_ms": 30000, "min_samples": 20,
            "failure_ratio_percent": 50, "cool_down_ms": 30000, "probe_successes_to_close": 2,
            "trial_after_ms": 5000, "trial_one_in": 20,
        },
        "flapping": { "max_transitions": 6, "window_ms": 60000 },
    });
    assert_eq!(shown(&node), expected);

    check(
        trunkctl(
            &node,
            &[
                "health",
                "policy",
                "set",
                "--interval",
                "5s",
                "--alive-codes",
                "404,200",
                "--breaker-ratio",
                "25",
                "--cool-down",
                "1m",
                "--flapping-window",
                "90000",
            ],
        ),
        0,
        &[
            "Health policy updated (log index",
            "interval 2s -> 5s",
            "alive-codes 200 -> 200,404",
            "breaker-ratio 50% -> 25%",
            "cool-down 30s -> 1m",
            "flapping-window 1m -> 90s",
        ],
        &[],
    );
    expected["probe"]["interval_ms"] = 5000.into();
    expected["probe"]["alive_codes"] = serde_json::json!([200, 404]);
    expected["breaker"]["failure_ratio_percent"] = 25.into();
    expected["breaker"]["cool_down_ms"] = 60000.into();
    expected["flapping"]["window_ms"] = 90000.into();
    assert_eq!(shown(&node), expected, "only the settings given changed");
    let table = check(trunkctl(&node, &["health", "policy", "show"]), 0, &[], &[]);
    assert_eq!(value_of(&table, "interval"), "5s");
    assert_eq!(value_of(&table, "timeout"), "1s");
    assert_eq!(value_of(&table, "alive-codes"), "200,404");

    // Mistakes name the flag and field, exit 2 and change nothing.
    for (args, needle) in [
        (
            &["--interval", "10ms"][..],
            "--interval: interval_ms must be from 100",
        ),
        (&["--alive-codes", "408"], "--alive-codes: alive code 408"),
        // Fine alone, but not with the policy's 5s interval.
        (
            &["--timeout", "6s"],
            "--timeout: timeout_ms must be from 100 to interval_ms",
        ),
        (&["--breaker-min-samples", "0"], "--breaker-min-samples: "),
    ] {
        let mut command = vec!["health", "policy", "set"];
        command.extend_from_slice(args);
        check(trunkctl(&node, &command), 2, &[], &[needle]);
    }
    assert_eq!(shown(&node), expected, "a refused change changed nothing");

    let updated = json(&check(
        trunkctl(
            &node,
            &[
                "-o",
                "json",
                "health",
                "policy",
                "set",
                "--timeout",
                "4s",
                "--down-after",
                "3",
            ],
        ),
        0,
        &[],
        &[],
    ));
    assert_eq!(
        updated["changed"],
        serde_json::json!([{ "setting": "timeout", "from": "1s", "to": "4s" }]),
        "a value given equal to the current one is not a change"
    );
    assert!(updated["applied_index"].as_u64().unwrap() > 0);
    assert_eq!(updated["policy"]["probe"]["timeout_ms"], 4000);
}

#[test]
fn gateways_take_probe_overrides_show_them_keep_them_and_reset_them() {
    let node = start_node();
    check(trunkctl(&node, &["carrier", "add", "acme"]), 0, &[], &[]);
    add_gateway(
        &node,
        "gw1",
        "sip:gw1.acme.example",
        &[
            "--probe-interval",
            "5s",
            "--probe-timeout",
            "500ms",
            "--alive-codes",
            "404,200",
        ],
    );
    let table = check(trunkctl(&node, &["gateway", "show", "gw1"]), 0, &[], &[]);
    assert_eq!(value_of(&table, "probe"), "on");
    assert_eq!(value_of(&table, "probe interval"), "5s");
    assert_eq!(value_of(&table, "probe timeout"), "500ms");
    assert_eq!(value_of(&table, "probe alive codes"), "200,404");
    assert!(!table.contains("probe down after"), "{table}");
    let probe = |node: &Node| {
        json(&check(
            trunkctl(node, &["-o", "json", "gateway", "show", "gw1"]),
            0,
            &[],
            &[],
        ))["probe"]
            .clone()
    };
    assert_eq!(
        probe(&node),
        serde_json::json!({
            "disabled": false, "interval_ms": 5000, "timeout_ms": 500, "down_after": null,
            "up_after": null, "alive_codes": [200, 404],
        })
    );

    // An update changes the overrides given and keeps the others.
    check(
        trunkctl(
            &node,
            &[
                "gateway",
                "update",
                "gw1",
                "--down-after",
                "5",
                "--probe",
                "off",
            ],
        ),
        0,
        &["Gateway \"gw1\" updated"],
        &[],
    );
    let changed = probe(&node);
    assert_eq!(changed["disabled"], true);
    assert_eq!(changed["down_after"], 5);
    assert_eq!(changed["interval_ms"], 5000, "kept");
    assert_eq!(
        changed["alive_codes"],
        serde_json::json!([200, 404]),
        "kept"
    );
    let table = check(trunkctl(&node, &["gateway", "show", "gw1"]), 0, &[], &[]);
    assert!(value_of(&table, "probe").starts_with("off"), "{table}");
    assert_eq!(value_of(&table, "probe down after"), "5");

    // A timeout beyond the kept interval is refused and changes nothing.
    check(
        trunkctl(
            &node,
            &["gateway", "update", "gw1", "--probe-timeout", "10s"],
        ),
        2,
        &[],
        &["--probe-timeout: timeout_ms must be at most interval_ms"],
    );
    assert_eq!(probe(&node), changed);

    // '' gives the alive codes back to the cluster.
    check(
        trunkctl(&node, &["gateway", "update", "gw1", "--alive-codes", ""]),
        0,
        &["updated"],
        &[],
    );
    assert_eq!(probe(&node)["alive_codes"], serde_json::json!([]));

    check(
        trunkctl(&node, &["gateway", "update", "gw1", "--probe-defaults"]),
        0,
        &["updated"],
        &[],
    );
    assert_eq!(probe(&node), serde_json::Value::Null);
    let table = check(trunkctl(&node, &["gateway", "show", "gw1"]), 0, &[], &[]);
    assert_eq!(value_of(&table, "probe"), "on (cluster policy)");

    // --probe-defaults first, then the overrides given with it.
    check(
        trunkctl(
            &node,
            &[
                "gateway",
                "update",
                "gw1",
                "--down-after",
                "4",
                "--probe-defaults",
                "--probe-interval",
                "3s",
            ],
        ),
        0,
        &["updated"],
        &[],
    );
    assert_eq!(
        probe(&node),
        serde_json::json!({
            "disabled": false, "interval_ms": 3000, "timeout_ms": null, "down_after": 4,
            "up_after": null, "alive_codes": [],
        })
    );
    // The other fields were left alone by all of it.
    check(
        trunkctl(&node, &["gateway", "list"]),
        0,
        &["gw1", "sip:gw1.acme.example", "enabled"],
        &[],
    );
}

#[test]
fn health_and_events_show_gateways_going_down_and_back_as_it_happens() {
    let node = start_node();
    let runtime = responders_runtime();
    let alive = runtime
        .block_on(SipResponder::start_udp(Behaviour::Reply(200)))
        .unwrap();
    let silent = runtime
        .block_on(SipResponder::start_udp(Behaviour::Silent))
        .unwrap();
    check(trunkctl(&node, &["carrier", "add", "acme"]), 0, &[], &[]);
    add_gateway(&node, "gw-alive", &alive.uri(), FAST_PROBES);
    add_gateway(&node, "gw-silent", &silent.uri(), FAST_PROBES);
    add_gateway(
        &node,
        "gw-off",
        "sip:gw-off.acme.example",
        &["--probe", "off"],
    );
    check(
        trunkctl(&node, &["gateway", "drain", "gw-off"]),
        0,
        &[],
        &[],
    );

    let table = wait_until(&node, &["health"], "gw-silent went down", |table| {
        table
            .lines()
            .any(|line| line.contains("gw-silent") && line.contains("down"))
    });
    for header in [
        "GATEWAY", "CARRIER", "STATE", "SINCE", "WHY", "RTT", "LAST", "PROBER",
    ] {
        assert!(table.contains(header), "{header} missing:\n{table}");
    }
    let line = line_of(&table, "gw-silent");
    for needle in [
        "acme",
        "down",
        "ago",
        "2 consecutive timeouts (probe)",
        "timeout",
        "node 1",
    ] {
        assert!(line.contains(needle), "{needle:?} not in {line:?}");
    }
    // The responding gateway: up, never changed, with a round trip and a 200 once probed.
    let table = wait_until(&node, &["health"], "gw-alive was probed", |table| {
        line_of(table, "gw-alive").contains(" ms ")
    });
    let line = line_of(&table, "gw-alive");
    let cells: Vec<&str> = line
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells[..5], ["gw-alive", "acme", "up", "-", "-"], "{line}");
    assert_eq!(cells[6..], ["200", "node 1"], "{line}");
    let line = line_of(&table, "gw-off");
    assert!(line.contains("drained") && line.ends_with("off"), "{line}");
    assert!(
        !line.contains("up"),
        "a drained gateway shows as drained: {line}"
    );

    let list = json(&check(
        trunkctl(&node, &["-o", "json", "health", "--carrier", "acme"]),
        0,
        &[],
        &[],
    ));
    let gateway = |name: &str| {
        list["gateways"]
            .as_array()
            .unwrap()
            .iter()
            .find(|gateway| gateway["gateway"] == name)
            .unwrap_or_else(|| panic!("{name} not in {list}"))
            .clone()
    };
    let down = gateway("gw-silent");
    assert_eq!(down["state"], "down");
    assert_eq!(down["source"], "probe");
    assert_eq!(down["prober_node"], 1);
    assert_eq!(down["reason"], "2 consecutive timeouts");
    assert!(down["since_ms"].as_u64().unwrap() > 0);
    let up = gateway("gw-alive");
    assert_eq!(up["state"], "up");
    assert_eq!(up["last_result"], "200");
    assert!(up["last_round_trip_ms"].is_u64(), "{up}");
    assert_eq!(gateway("gw-off")["probing_disabled"], true);
    assert_eq!(gateway("gw-off")["drained"], true);
    assert_eq!(list["unreachable_probers"], serde_json::json!([]));
    check(
        trunkctl(&node, &["health", "--carrier", "nobody"]),
        3,
        &[],
        &["carrier \"nobody\" not found"],
    );

    // The transition is in the event log, afterwards.
    let events = check(trunkctl(&node, &["events", "--recent", "10"]), 0, &[], &[]);
    let line = line_of(&events, "gw-silent");
    assert!(
        line.contains(" #")
            && line.contains("gateway gw-silent (carrier acme) up -> down: 2 consecutive timeouts [probe, node 1]"),
        "{events}"
    );
    let time = line.split_whitespace().next().unwrap();
    assert!(
        time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "not RFC 3339 UTC: {time}"
    );
    let events = check(
        trunkctl(&node, &["-o", "json", "events", "--recent", "10"]),
        0,
        &[],
        &[],
    );
    let event = events
        .lines()
        .map(json)
        .find(|event| event["gateway"] == "gw-silent")
        .unwrap_or_else(|| panic!("no gw-silent event in {events}"));
    assert_eq!(event["type"], "gateway_health");
    assert_eq!(event["from"], "up");
    assert_eq!(event["to"], "down");
    assert_eq!(event["carrier"], "acme");
    assert_eq!(event["missed_before"], false);
    let index = event["index"].as_u64().unwrap();
    assert!(index > 0);
    let after = index.to_string();
    assert!(
        !check(trunkctl(&node, &["events", "--after", &after]), 0, &[], &[])
            .contains("gw-silent (carrier acme) up -> down"),
        "--after skips the event it names"
    );

    // A closed output pipe is not an error, following or not.
    for args in [&["events"][..], &["events", "--follow"]] {
        let mut child = support::trunkctl_command()
            .args(["--endpoints", &node.api_addr])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Following: the backlog first, then each transition as it happens.
    let mut follower = Follower::start(&node.api_addr, &[]);
    follower.expect_stdout(&["gateway gw-silent (carrier acme) up -> down"]);
    alive.set(Behaviour::Silent);
    follower.expect_stdout(&[
        // The round trip, if any, is the last reply's.
        "gateway gw-alive (carrier acme) up -> down: 2 consecutive timeouts [probe, node 1",
    ]);
    silent.set(Behaviour::Reply(200));
    let line = follower.expect_stdout(&["gateway gw-silent (carrier acme) down -> up: 200 x1"]);
    assert!(line.contains("rtt ") && line.contains(" ms]"), "{line}");
    drop(follower);
    wait_until(&node, &["health"], "gw-silent came back up", |table| {
        let line = line_of(table, "gw-silent");
        line.contains(" up ") && line.contains("200 x1 after down (probe)")
    });
}

#[test]
fn a_followed_event_stream_resumes_after_its_connection_breaks() {
    let node = start_node();
    let runtime = responders_runtime();
    let responder = runtime
        .block_on(SipResponder::start_udp(Behaviour::Silent))
        .unwrap();
    check(trunkctl(&node, &["carrier", "add", "acme"]), 0, &[], &[]);
    add_gateway(&node, "gw1", &responder.uri(), FAST_PROBES);
    let relay = Relay::start(node.api_addr.clone());
    let mut follower = Follower::start(&relay.addr, &[]);
    follower.expect_stdout(&["gateway gw1 (carrier acme) up -> down"]);

    relay.cut();
    follower.expect_stderr(&["trunkctl: note: the event stream broke", "reconnecting"]);
    follower.expect_stderr(&["trunkctl: note: reconnected; resuming after #"]);
    responder.set(Behaviour::Reply(200));
    follower.expect_stdout(&["gateway gw1 (carrier acme) down -> up"]);
    let downs = follower
        .seen_stdout
        .iter()
        .filter(|line| line.contains("up -> down"))
        .count();
    assert_eq!(
        downs, 1,
        "the resumed stream repeated an event: {:?}",
        follower.seen_stdout
    );
}
