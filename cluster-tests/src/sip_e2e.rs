//! End-to-end SIP tests of the Kamailio integration (issue 14): a three-node cluster of real
//! `trunkline` processes on loopback, Kamailio running `deploy/kamailio/kamailio.cfg`, carriers
//! and callers played by sipp. What `tests/kamailio.rs` and `deploy/kamailio/bench.sh` share.
//!
//! Everything listens on 127.0.0.1 on ports chosen free at run time, lives in a temporary
//! folder, and is killed when its value drops, so a failed assertion leaves no process behind.
//! Kamailio and sipp come from the system (`.ci/run` installs them); a missing one fails the
//! test with that message instead of skipping it.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{TcpStream, UdpSocket},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::harness::image::trunkline_binary;

pub const KAMAILIO_PROGRAM: &str = "kamailio";
pub const SIPP_PROGRAM: &str = "sipp";
/// The Kamailio modules the deployed cfg loads beyond the core package.
pub const KAMAILIO_MODULES_DIR: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules";
pub const KAMAILIO_EXTRA_MODULES: [&str; 3] = ["http_client.so", "rtjson.so", "json.so"];
/// Environment variable naming the `trunkctl` binary (default: next to `trunkline`).
pub const TRUNKCTL_ENV: &str = "TRUNKCTL_BIN";
/// Nodes of the test cluster.
pub const NODES: usize = 3;
/// What the cluster routes: an outbound number, and the DID of the inbound tests.
pub const OUTBOUND_NUMBER: &str = "+442071234567";
pub const CALLER_NUMBER: &str = "+14155550111";
pub const DID: &str = "+14155550100";
pub const DEVICE: &str = "sip:alice@acme.example";
pub const TENANT: &str = "acme";
/// How long a leg may go without any reply before Kamailio moves on (rtjson `fr_timer`,
/// from the nodes' `answers.leg_reply_timeout_ms`): short, so a silent gateway costs the
/// calls caught before its probes take it down one second each, not three.
pub const LEG_REPLY_TIMEOUT_MS: u64 = 1_000;
/// Deadline of anything the harness waits for (a node starting, a gateway going down).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one trunkctl command.
const TRUNKCTL_TIMEOUT_MS: &str = "10000";
/// Pause between two polls of something awaited.
const POLL: Duration = Duration::from_millis(50);

/// Fails (panics) with how to get them when kamailio, its modules or sipp are missing: a
/// silently skipped test would read as a pass.
pub fn require_tools() {
    let mut missing = Vec::new();
    for program in [KAMAILIO_PROGRAM, SIPP_PROGRAM] {
        if find_program(program).is_none() {
            missing.push(program.to_owned());
        }
    }
    for module in KAMAILIO_EXTRA_MODULES {
        let path = Path::new(KAMAILIO_MODULES_DIR).join(module);
        if !path.is_file() {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "the Kamailio end-to-end tests need {}: `bash .ci/run` installs them (Debian packages \
         kamailio kamailio-utils-modules kamailio-json-modules sip-tester)",
        missing.join(", ")
    );
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The repository's root (this crate is `cluster-tests/` in it).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `deploy/kamailio/`: the cfg under test and the sipp scenarios.
pub fn kamailio_dir() -> PathBuf {
    repository_root().join("deploy").join("kamailio")
}

/// A port free on 127.0.0.1 for UDP now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("no free UDP port on 127.0.0.1: {error}"))
}

/// The api, peer and http addresses a node's banner names, once it has printed them all.
fn printed_addresses(log: &std::path::Path) -> Option<[String; 3]> {
    let text = std::fs::read_to_string(log).ok()?;
    let address = |name: &str| {
        text.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name)).then(|| words.next().map(str::to_owned))?
        })
    };
    Some([address("api")?, address("peer")?, address("http")?])
}

/// A child process in a process group of its own, killed with the whole group when dropped
/// (Kamailio forks its workers; killing only the parent would leave them running).
pub struct Process {
    pub name: String,
    child: Child,
    /// Where its standard output and error go, shown when a test fails.
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, command: &mut Command, log: PathBuf) -> Process {
        let file = std::fs::File::create(&log)
            .unwrap_or_else(|error| panic!("can't create {}: {error}", log.display()));
        let error_file = file
            .try_clone()
            .unwrap_or_else(|error| panic!("can't share {}: {error}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(error_file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("can't start {name} ({command:?}): {error}"));
        Process {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a name `kill` knows: STOP, CONT, KILL, TERM) to the process's group.
    pub fn signal(&self, signal: &str) {
        let group = format!("-{}", self.pid());
        let status = Command::new("kill")
            .args([&format!("-{signal}"), "--", &group])
            .status()
            .unwrap_or_else(|error| panic!("can't run kill: {error}"));
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the group at once and reaps the process.
    pub fn kill(&mut self) {
        if self.running() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.pid())])
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Waits for it to exit by itself, up to `timeout`; kills it after that.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        self.kill();
        None
    }

    /// The last `lines` lines of its output, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `check` until it gives a value or `timeout` passes; the panic names `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_explained(what, timeout, check, String::new)
}

/// [`wait_for`], with what `explain` says (logs, say) in the panic.
pub fn wait_explained<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    explain: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}\n{}",
            explain()
        );
        std::thread::sleep(POLL);
    }
}

/// A GET to `address` over plain HTTP/1.1: the status and the body, or `None` when the
/// connection failed.
pub fn http_get(address: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// One `trunkline serve` process and its addresses.
pub struct Node {
    pub id: u64,
    pub api_addr: String,
    pub peer_addr: String,
    pub http_addr: String,
    pub data_dir: PathBuf,
    pub process: Process,
    /// False once the test killed it: trunkctl is pointed at the others.
    pub alive: bool,
}

/// A three-node cluster of real `trunkline` processes on loopback (`--insecure`), formed as
/// the README says (init one node, join and promote the others), with a proxy token for
/// Kamailio.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub admin_token: String,
    pub proxy_token: String,
    trunkctl: PathBuf,
    pub dir: PathBuf,
}

impl Cluster {
    /// Starts and forms the cluster in `dir`.
    pub fn start(dir: &Path) -> Cluster {
        let trunkline = trunkline_binary().unwrap_or_else(|error| panic!("{error}"));
        let trunkctl = std::env::var_os(TRUNKCTL_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| trunkline.with_file_name("trunkctl"));
        assert!(
            trunkctl.is_file(),
            "{} does not exist: build it with `cargo build --bin trunkctl` (or run `cargo test \
             --workspace`, which builds it), or set {TRUNKCTL_ENV}",
            trunkctl.display()
        );
        // The leg timers rtjson applies come from the node's file configuration.
        let config = dir.join("trunkline.toml");
        std::fs::write(
            &config,
            format!("[answers]\nleg_reply_timeout_ms = {LEG_REPLY_TIMEOUT_MS}\n"),
        )
        .unwrap_or_else(|error| panic!("can't write the node configuration: {error}"));
        let nodes = (1..=NODES as u64)
            .map(|id| {
                let data_dir = dir.join(format!("node-{id}"));
                // Port 0: the node binds what is free and prints it (a port picked here and
                // released could be taken by any outgoing connection before the node binds
                // it: seen in CI as a node that never joined).
                let any_port = "127.0.0.1:0";
                let mut command = Command::new(&trunkline);
                command
                    .arg("serve")
                    .arg("--config")
                    .arg(&config)
                    .args(["--node-id", &id.to_string(), "--cluster-name", "kamailio"])
                    .arg("--data-dir")
                    .arg(&data_dir)
                    .args(["--api-addr", any_port, "--peer-addr", any_port])
                    .args(["--http-addr", any_port, "--probe-addr", any_port])
                    .args(["--insecure", "--log-level", "warn"])
                    .env_remove("TRUNKLINE_TOKEN");
                let log = dir.join(format!("node-{id}.log"));
                let process =
                    Process::spawn(&format!("trunkline node {id}"), &mut command, log.clone());
                let [api_addr, peer_addr, http_addr] = wait_explained(
                    &format!("node {id} printing the addresses it listens on"),
                    SETUP_TIMEOUT,
                    || printed_addresses(&log),
                    || std::fs::read_to_string(&log).unwrap_or_default(),
                );
                Node {
                    id,
                    api_addr,
                    peer_addr,
                    http_addr,
                    data_dir,
                    process,
                    alive: true,
                }
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            admin_token: String::new(),
            proxy_token: String::new(),
            trunkctl,
            dir: dir.to_path_buf(),
        };
        cluster.form();
        cluster
    }

    fn form(&mut self) {
        let bootstrap = self.nodes[0].data_dir.join("bootstrap.token");
        wait_explained(
            "node 1 writing its bootstrap.token",
            SETUP_TIMEOUT,
            || bootstrap.is_file().then_some(()),
            || self.logs(),
        );
        let first = self.nodes[0].api_addr.clone();
        let init = self.trunkctl_raw(
            &first,
            None,
            &[
                "--token-file",
                &bootstrap.display().to_string(),
                "-o",
                "json",
                "cluster",
                "init",
            ],
        );
        self.admin_token = json_field(&self.check(init, "cluster init"), "admin_token");
        for index in 1..self.nodes.len() {
            let (id, peer, api) = {
                let node = &self.nodes[index];
                (
                    node.id.to_string(),
                    node.peer_addr.clone(),
                    node.api_addr.clone(),
                )
            };
            // The joining node may still be starting: retry until it answers the leader.
            wait_explained(
                &format!("node {id} joining"),
                SETUP_TIMEOUT,
                || {
                    let output = self.trunkctl_raw(
                        &first,
                        Some(&self.admin_token),
                        &[
                            "cluster",
                            "join",
                            "--node-id",
                            &id,
                            "--peer-addr",
                            &peer,
                            "--api-addr",
                            &api,
                        ],
                    );
                    output.status.success().then_some(())
                },
                || self.logs(),
            );
            // Promotion waits for the learner's first replicated entries.
            wait_explained(
                &format!("node {id} promoted"),
                SETUP_TIMEOUT,
                || {
                    let output = self.trunkctl_raw(
                        &first,
                        Some(&self.admin_token),
                        &["cluster", "promote", &id],
                    );
                    output.status.success().then_some(())
                },
                || self.logs(),
            );
        }
        let created = self.trunkctl(&[
            "-o",
            "json",
            "token",
            "create",
            "--role",
            "proxy",
            "--all-tenants",
            "--name",
            "kamailio",
        ]);
        self.proxy_token = json_field(&created, "token");
        for node in &self.nodes {
            wait_for(
                &format!("node {} serving on {}", node.id, node.http_addr),
                SETUP_TIMEOUT,
                || http_get(&node.http_addr, "/health", None).filter(|(status, _)| *status == 200),
            );
        }
    }

    /// The `--endpoints` list of every node.
    pub fn endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(|node| node.api_addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn trunkctl_raw(&self, endpoints: &str, token: Option<&str>, args: &[&str]) -> Output {
        let mut command = Command::new(&self.trunkctl);
        command
            .args([
                "--endpoints",
                endpoints,
                "--timeout-ms",
                TRUNKCTL_TIMEOUT_MS,
            ])
            .args(args)
            .env_remove("TRUNKLINE_TOKEN_FILE")
            .env_remove("TRUNKCTL_ENDPOINTS")
            .env_remove("TRUNKLINE_CA_FILE");
        match token {
            Some(token) => command.env("TRUNKLINE_TOKEN", token),
            None => command.env_remove("TRUNKLINE_TOKEN"),
        };
        command
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|error| panic!("can't run {}: {error}", self.trunkctl.display()))
    }

    fn check(&self, output: Output, what: &str) -> String {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "trunkctl {what} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs trunkctl as the admin against every live node; panics with its output when it
    /// fails. Returns its standard output.
    pub fn trunkctl(&self, args: &[&str]) -> String {
        let endpoints = self
            .nodes
            .iter()
            .filter(|node| node.alive)
            .map(|node| node.api_addr.clone())
            .collect::<Vec<_>>()
            .join(",");
        let output = self.trunkctl_raw(&endpoints, Some(&self.admin_token), args);
        self.check(output, &args.join(" "))
    }

    /// The index (into `nodes`) of the leader, as the live nodes see it.
    pub fn leader(&self) -> usize {
        wait_for("a leader", SETUP_TIMEOUT, || {
            let status = self.trunkctl(&["-o", "json", "cluster", "status"]);
            let value: serde_json::Value = serde_json::from_str(&status).ok()?;
            let leader = find_u64(&value, "leader_id")?;
            self.nodes.iter().position(|node| node.id == leader)
        })
    }

    /// SIGKILLs node `index`.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].process.kill();
        self.nodes[index].alive = false;
    }

    /// Logs of every node, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("--- {}:\n{}", node.process.name, node.process.log_tail(20)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A string field of trunkctl's JSON output.
fn json_field(stdout: &str, field: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|error| panic!("trunkctl printed no JSON ({error}): {stdout}"));
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field:?} in {stdout}"))
        .to_owned()
}

/// The first number named `key` anywhere in `value`.
fn find_u64(value: &serde_json::Value, key: &str) -> Option<u64> {
    match value {
        serde_json::Value::Object(map) => map
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .filter(|id| *id != 0)
            .or_else(|| map.values().find_map(|inner| find_u64(inner, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|inner| find_u64(inner, key)),
        _ => None,
    }
}

/// The two carriers of the outbound tests (alpha cheaper, so tried first), their gateways
/// at `alpha_port` and `bravo_port`, the probe policy, and the inbound DID whose device
/// never registers, with its continuity targets (`continuity`, as `--continuity` takes it).
pub fn configure(cluster: &Cluster, alpha_port: u16, bravo_port: u16, continuity: &str) {
    cluster.trunkctl(&["tenant", "add", TENANT]);
    for (carrier, port, rate) in [
        ("alpha", alpha_port, "0.0100"),
        ("bravo", bravo_port, "0.0200"),
    ] {
        cluster.trunkctl(&["carrier", "add", carrier, "--plus"]);
        cluster.trunkctl(&[
            "gateway",
            "add",
            &format!("{carrier}-1"),
            "--carrier",
            carrier,
            "--uri",
            &format!("sip:127.0.0.1:{port}"),
        ]);
        let deck = cluster.dir.join(format!("{carrier}.csv"));
        std::fs::write(&deck, format!("prefix,rate\n44,{rate}\n1,{rate}\n"))
            .unwrap_or_else(|error| panic!("can't write a rate deck: {error}"));
        cluster.trunkctl(&[
            "rates",
            "import",
            &deck.display().to_string(),
            "--carrier",
            carrier,
            "--replace",
        ]);
    }
    // Probes every 500 ms, down after two misses: a silent gateway is out of every answer
    // about a second after it stops replying.
    cluster.trunkctl(&[
        "health",
        "policy",
        "set",
        "--interval",
        "500ms",
        "--timeout",
        "300ms",
        "--down-after",
        "2",
        "--up-after",
        "2",
    ]);
    cluster.trunkctl(&["device", "add", DEVICE, "--tenant", TENANT]);
    cluster.trunkctl(&[
        "did",
        "add",
        DID,
        "--tenant",
        TENANT,
        "--device",
        DEVICE,
        "--continuity",
        continuity,
        "--server-errors",
        "on",
    ]);
}

/// Waits until every node answers an outbound lookup with both carriers (the configuration
/// applied everywhere and both gateways up), so a test's first call sees what it expects.
pub fn wait_routable(cluster: &Cluster) {
    for node in &cluster.nodes {
        wait_for(
            &format!("node {} offering both carriers", node.id),
            SETUP_TIMEOUT,
            || {
                let path = format!(
                    "/v1/outbound?tenant={TENANT}&call_id=ready-{}&to=%2B{}&dry_run=1",
                    node.id,
                    &OUTBOUND_NUMBER[1..]
                );
                let (status, body) = http_get(&node.http_addr, &path, Some(&cluster.proxy_token))?;
                (status == 200 && body.contains("alpha-1") && body.contains("bravo-1"))
                    .then_some(())
            },
        );
    }
}

/// What the Kamailio under test is told with `-A`.
pub struct KamailioOptions {
    /// HTTP addresses of the nodes, in order (tl1, tl2, ...).
    pub nodes: Vec<String>,
    pub token: String,
    pub tenant: String,
    /// `FAILSAFE_URI`: relay to it when no node answers (else reply 503).
    pub failsafe_uri: Option<String>,
    /// Further defines, each passed as one `-A` (`NAME="value"`, say `VOICEMAIL_HOST`).
    pub defines: Vec<String>,
}

/// Kamailio running `deploy/kamailio/kamailio.cfg` in the foreground, its pid file and
/// runtime folder in `dir`.
pub struct Kamailio {
    pub process: Process,
    /// Where customers' calls go (LISTEN).
    pub port: u16,
    /// Where carriers' calls to DIDs go (CARRIER_LISTEN).
    pub carrier_port: u16,
}

impl Kamailio {
    pub fn start(dir: &Path, name: &str, options: &KamailioOptions) -> Kamailio {
        let runtime = dir.join(format!("{name}-run"));
        std::fs::create_dir_all(&runtime)
            .unwrap_or_else(|error| panic!("can't make Kamailio's runtime folder: {error}"));
        let port = free_udp_port();
        let carrier_port = free_udp_port();
        let mut command = Command::new(KAMAILIO_PROGRAM);
        command
            .args(["-DD", "-E", "-f"])
            .arg(kamailio_dir().join("kamailio.cfg"))
            .arg("-P")
            .arg(runtime.join("kamailio.pid"))
            .arg("-Y")
            .arg(&runtime)
            .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
            .args([
                "-A",
                &format!("CARRIER_LISTEN=udp:127.0.0.1:{carrier_port}"),
            ])
            .args(["-A", &format!("CARRIER_PORT={carrier_port}")])
            .args(["-A", &format!("TL_TENANT=\"{}\"", options.tenant)]);
        for (index, address) in options.nodes.iter().enumerate() {
            command.args([
                "-A",
                &format!(
                    "TL_NODE{n}=\"tl{n}=>http://kamailio:{}@{address}\"",
                    options.token,
                    n = index + 1
                ),
            ]);
        }
        if let Some(uri) = &options.failsafe_uri {
            command.args(["-A", &format!("FAILSAFE_URI=\"{uri}\"")]);
        }
        for define in &options.defines {
            command.args(["-A", define]);
        }
        let mut process = Process::spawn(
            &format!("kamailio {name}"),
            &mut command,
            dir.join(format!("{name}.log")),
        );
        let started = Instant::now();
        while sip_options_ping(port).is_none() {
            assert!(
                process.running() && started.elapsed() < SETUP_TIMEOUT,
                "kamailio did not answer OPTIONS on port {port}:\n{}",
                process.log_tail(40)
            );
            std::thread::sleep(POLL);
        }
        Kamailio {
            process,
            port,
            carrier_port,
        }
    }

    /// Its log from byte `from` on (what it wrote since a [`Kamailio::log_len`]).
    pub fn log_since(&self, from: u64) -> String {
        let text = std::fs::read(&self.process.log).unwrap_or_default();
        let start = (from as usize).min(text.len());
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.process.log)
            .map(|metadata| metadata.len())
            .unwrap_or(0)
    }
}

/// Sends an OPTIONS to 127.0.0.1:`port` and returns the status line of the answer.
pub fn sip_options_ping(port: u16) -> Option<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    let local = socket.local_addr().ok()?;
    let request = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-ping-{nonce}\r\n\
         From: <sip:ping@{local}>;tag=ping\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: ping-{nonce}@{local}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        nonce = Instant::now().elapsed().as_nanos() ^ u128::from(local.port())
    );
    socket
        .send_to(request.as_bytes(), ("127.0.0.1", port))
        .ok()?;
    let mut buffer = [0u8; 2048];
    let (length, _) = socket.recv_from(&mut buffer).ok()?;
    let answer = String::from_utf8_lossy(&buffer[..length]).into_owned();
    let status = answer.lines().next()?.to_owned();
    status.starts_with("SIP/2.0 200").then_some(status)
}

/// A sipp UAS: a carrier's gateway (or a continuity target) at 127.0.0.1:`port`, answering
/// OPTIONS probes (`-aa`) and every INVITE as its scenario says; its statistics dumped
/// every second.
pub struct SippServer {
    pub process: Process,
    pub port: u16,
    stats: PathBuf,
}

/// The scenarios in `deploy/kamailio/sipp/`.
pub const ANSWER_SCENARIO: &str = "answer.xml";
pub const REFUSE_503_SCENARIO: &str = "refuse503.xml";
/// A gateway whose callee is busy: 486 to every call.
pub const BUSY_486_SCENARIO: &str = "busy486.xml";
pub const CALLER_SCENARIO: &str = "caller.xml";
pub const CALLER_REFUSED_SCENARIO: &str = "caller_refused.xml";
/// A caller expecting 500: the cluster's stop once every carrier refused the call.
pub const CALLER_FAILED_SCENARIO: &str = "caller_failed.xml";
/// A caller expecting 486: the callee's answer, which ends the call on the first carrier.
pub const CALLER_BUSY_SCENARIO: &str = "caller_busy.xml";
/// A slow gateway: rings, then takes a CANCEL (200, and 487 to the INVITE) or, without one
/// within 3 s, answers.
pub const RING_LONG_SCENARIO: &str = "ring_long.xml";
/// A caller that cancels its call at the 180 and expects the 487.
pub const CALLER_CANCEL_SCENARIO: &str = "caller_cancel.xml";
/// A device that registers and answers the call that follows (with [`ANSWER_SCENARIO`] as
/// its out-of-call scenario: see [`Caller::phone`]).
pub const PHONE_SCENARIO: &str = "phone.xml";

pub fn scenario(name: &str) -> PathBuf {
    kamailio_dir().join("sipp").join(name)
}

impl SippServer {
    pub fn start(dir: &Path, name: &str, scenario_name: &str) -> SippServer {
        let port = free_udp_port();
        // Its own folder: sipp names the counts file after the scenario and its pid there.
        let run_dir = dir.join(name);
        std::fs::create_dir_all(&run_dir)
            .unwrap_or_else(|error| panic!("can't make a sipp server's folder: {error}"));
        let mut command = Command::new(SIPP_PROGRAM);
        command
            .arg("-sf")
            .arg(scenario(scenario_name))
            .args(["-aa", "-i", "127.0.0.1", "-p", &port.to_string()])
            // Message counts, not call counts: with -aa every OPTIONS probe is a "call" too.
            .args(["-nostdin", "-trace_counts", "-fd", "1"])
            .args(["-trace_err", "-error_file"])
            .arg(run_dir.join("errors.log"))
            .current_dir(&run_dir);
        let process = Process::spawn(
            &format!("sipp {name}"),
            &mut command,
            run_dir.join("sipp.log"),
        );
        let stats = wait_for(
            &format!("sipp {name} writing its message counts"),
            SETUP_TIMEOUT,
            || {
                std::fs::read_dir(&run_dir)
                    .ok()?
                    .flatten()
                    .find_map(|entry| {
                        let path = entry.path();
                        path.to_string_lossy()
                            .ends_with("_counts.csv")
                            .then_some(path)
                    })
            },
        );
        SippServer {
            process,
            port,
            stats,
        }
    }

    /// INVITEs it has received so far, retransmissions aside (its counts, at most a second
    /// old).
    pub fn calls_received(&self) -> u64 {
        read_stats(&self.stats)
            .and_then(|counts| {
                counts
                    .iter()
                    .find(|(name, _)| name.ends_with("_INVITE_Recv"))
                    .map(|(_, count)| *count)
            })
            .unwrap_or(0)
    }

    /// Waits until it has received at least `count` INVITEs.
    pub fn wait_calls(&self, count: u64) -> u64 {
        wait_for(
            &format!("{} receiving {count} calls", self.process.name),
            // sipp writes its counts once a second; a loaded CI machine needed more than 10 s.
            SETUP_TIMEOUT,
            || {
                let received = self.calls_received();
                (received >= count).then_some(received)
            },
        )
    }
}

/// The last line of a sipp statistics or counts file (`-trace_stat`, `-trace_counts`), column
/// by column (numbers only).
pub fn read_stats(path: &Path) -> Option<HashMap<String, u64>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header = lines.next()?;
    let last = lines.next_back()?;
    Some(
        header
            .split(';')
            .zip(last.split(';'))
            .filter_map(|(name, value)| Some((name.to_owned(), value.trim().parse().ok()?)))
            .collect(),
    )
}

/// How a run of the sipp caller went.
#[derive(Debug, Clone)]
pub struct CallerReport {
    pub exit_code: Option<i32>,
    pub successful: u64,
    pub failed: u64,
    /// Each successful call's response time (INVITE to the awaited final answer), ms.
    pub response_times_ms: Vec<u64>,
    /// sipp's screen at the end and its error log, for failure messages.
    pub screen: String,
}

impl CallerReport {
    pub fn max_response_ms(&self) -> u64 {
        self.response_times_ms.iter().copied().max().unwrap_or(0)
    }

    pub fn percentile_ms(&self, percent: usize) -> u64 {
        let mut sorted = self.response_times_ms.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0;
        }
        sorted[((sorted.len() - 1) * percent) / 100]
    }
}

/// A sipp caller run: `calls` calls at `rate` a second to 127.0.0.1:`port`, dialling
/// `number` from [`CALLER_NUMBER`] with `scenario_name`.
pub struct Caller {
    pub process: Process,
    /// The UDP port it sends from (and, for a phone, takes calls on).
    pub local_port: u16,
    dir: PathBuf,
    stats: PathBuf,
    screen: PathBuf,
    calls: u64,
    rate: u64,
}

impl Caller {
    pub fn start(
        dir: &Path,
        name: &str,
        scenario_name: &str,
        port: u16,
        number: &str,
        calls: u64,
        rate: u64,
    ) -> Caller {
        Self::launch(dir, name, scenario_name, port, number, (calls, rate), &[])
    }

    /// [`Caller::start`] with at most one call at a time (`-l 1`): each call starts once the
    /// one before it has ended, at most `rate` a second.
    pub fn one_at_a_time(
        dir: &Path,
        name: &str,
        scenario_name: &str,
        port: u16,
        number: &str,
        calls: u64,
        rate: u64,
    ) -> Caller {
        Self::launch(
            dir,
            name,
            scenario_name,
            port,
            number,
            (calls, rate),
            &["-l", "1"],
        )
    }

    /// A registered device: [`PHONE_SCENARIO`] registers `aor` (without `sip:`) through
    /// Kamailio's customer socket `port`, and the inbound call that follows, which has a
    /// Call-ID of its own, is answered by [`ANSWER_SCENARIO`] as sipp's out-of-call scenario,
    /// on the same socket (where the device registered from).
    pub fn phone(dir: &Path, name: &str, port: u16, aor: &str) -> Caller {
        let answer = scenario(ANSWER_SCENARIO).display().to_string();
        Self::launch(
            dir,
            name,
            PHONE_SCENARIO,
            port,
            aor,
            (1, 1),
            &["-oocsf", &answer],
        )
    }

    fn launch(
        dir: &Path,
        name: &str,
        scenario_name: &str,
        port: u16,
        number: &str,
        (calls, rate): (u64, u64),
        extra: &[&str],
    ) -> Caller {
        let local_port = free_udp_port();
        let run_dir = dir.join(name);
        std::fs::create_dir_all(&run_dir)
            .unwrap_or_else(|error| panic!("can't make the caller's folder: {error}"));
        let stats = run_dir.join("stats.csv");
        let screen = run_dir.join("screen.txt");
        let mut command = Command::new(SIPP_PROGRAM);
        command
            .arg("-sf")
            .arg(scenario(scenario_name))
            .args(["-s", number, "-key", "caller", CALLER_NUMBER])
            .args(["-i", "127.0.0.1", "-p", &local_port.to_string()])
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .args(["-m", &calls.to_string(), "-r", &rate.to_string()])
            // A call lasts a few seconds at most; 30 s would be a hang, not a slow call.
            .args(["-timeout", "60s", "-recv_timeout", "30s"])
            .args(["-nostdin", "-trace_stat", "-fd", "1", "-stf"])
            .arg(&stats)
            .args(["-trace_screen", "-screen_file"])
            .arg(&screen)
            .args(["-trace_rtt", "-rtt_freq", "1"])
            .args(["-trace_err", "-error_file"])
            .arg(run_dir.join("errors.log"))
            .current_dir(&run_dir);
        let process = Process::spawn(
            &format!("sipp caller {name}"),
            &mut command,
            run_dir.join("sipp.log"),
        );
        Caller {
            process,
            local_port,
            dir: run_dir,
            stats,
            screen,
            calls,
            rate,
        }
    }

    /// Waits for the run to end and reads its statistics.
    pub fn finish(mut self) -> CallerReport {
        let budget = Duration::from_secs(self.calls / self.rate.max(1) + 45);
        let status = self.process.wait(budget);
        let stats = read_stats(&self.stats).unwrap_or_default();
        let mut response_times_ms = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.to_string_lossy().ends_with("_rtt.csv") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    response_times_ms.extend(text.lines().skip(1).filter_map(|line| {
                        line.split(';')
                            .nth(1)?
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .map(|ms| ms as u64)
                    }));
                }
            }
        }
        let screen = format!(
            "{}\nerrors:\n{}",
            std::fs::read_to_string(&self.screen).unwrap_or_default(),
            tail(&self.dir.join("errors.log"), 20)
        );
        CallerReport {
            exit_code: status.and_then(|status| status.code()),
            successful: stats.get("SuccessfulCall(C)").copied().unwrap_or(0),
            failed: stats.get("FailedCall(C)").copied().unwrap_or(0),
            response_times_ms,
            screen,
        }
    }
}

/// Runs a caller to the end.
pub fn call(
    dir: &Path,
    name: &str,
    scenario_name: &str,
    port: u16,
    number: &str,
    calls: u64,
    rate: u64,
) -> CallerReport {
    Caller::start(dir, name, scenario_name, port, number, calls, rate).finish()
}
