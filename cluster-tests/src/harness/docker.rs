//! The `docker` command line, and the resources of one run: its network and containers.
//!
//! Every network and container a run creates carries labels naming the run, the process
//! that made it and when, so that
//!
//! - the [`RunGuard`] removes exactly them when the run ends, also when a test panics (its
//!   `Drop` runs while unwinding) and when the test process gets SIGINT or SIGTERM
//!   ([`install_interrupt_cleanup`]);
//! - [`sweep_leftovers`] removes what an earlier run left behind when it was killed outright
//!   (SIGKILL, a machine reset): anything whose owner process is gone, or that is older than
//!   [`STALE_RUN_AGE`], but never a live run's resources.
//!
//! The harness drives Docker through its CLI rather than the Engine API: the CLI is what an
//! operator would use to reproduce a failure by hand, and it needs no extra dependencies.

use std::{
    collections::BTreeMap,
    io::Read,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex, Once, PoisonError, Weak},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{HarnessError, Result};

/// The program the harness runs for everything Docker.
pub const DOCKER_PROGRAM: &str = "docker";
/// Label on every network and container of a run; its value is the run id.
pub const RUN_LABEL: &str = "trunkline-chaos.run";
/// Label with the id of the process that created the resource.
pub const OWNER_PID_LABEL: &str = "trunkline-chaos.pid";
/// Label with the host name of the machine the owner process ran on: its pid means nothing
/// elsewhere.
pub const OWNER_HOST_LABEL: &str = "trunkline-chaos.host";
/// Label with the Unix time (seconds) the resource was created.
pub const CREATED_LABEL: &str = "trunkline-chaos.created";
/// Leftovers older than this are removed even when a process with the owner's pid is alive
/// (pids are reused); no run of these suites lasts nearly this long.
pub const STALE_RUN_AGE: Duration = Duration::from_secs(6 * 60 * 60);
/// Deadline of a quick command (inspect, kill, pause, network create, `iptables`).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of `docker stop`: the node's grace period and some.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// SIGTERM grace period given to `docker stop`, in seconds: the node drains and exits well
/// within it.
pub const STOP_GRACE_SECONDS: u32 = 15;
/// Deadline of `docker logs` of one container.
pub const LOGS_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at creating a network with a subnet nobody else holds.
pub const NETWORK_CREATE_ATTEMPTS: usize = 5;
/// How long to wait for a killed container to be seen as stopped.
pub const KILL_SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// How often state is polled while waiting for a container.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Most bytes of a command's stderr quoted in an error.
const MAX_ERROR_BYTES: usize = 4_000;

/// Runs `docker ARGS` with a deadline; returns its standard output.
pub async fn docker(args: &[&str]) -> Result<String> {
    docker_with_timeout(args, COMMAND_TIMEOUT).await
}

/// Runs `docker ARGS` with the given deadline; returns its standard output.
pub async fn docker_with_timeout(args: &[&str], timeout: Duration) -> Result<String> {
    run_program(DOCKER_PROGRAM, args, timeout).await
}

/// Runs a program with a deadline; returns its standard output, or an error quoting its
/// standard error. The child is killed when the deadline passes.
pub async fn run_program(program: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let command_line = command_line(program, args);
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(timeout, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => {
            return Err(HarnessError::Command {
                command: command_line,
                message: error.to_string(),
            })
        }
        Err(_) => {
            return Err(HarnessError::CommandTimeout {
                command: command_line,
                timeout,
            })
        }
    };
    finish(command_line, output)
}

/// [`run_program`] for places that can't await: `Drop`, the interrupt handler, the sweep.
pub fn run_program_blocking(program: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let output = output_blocking(program, args, timeout)?;
    finish(command_line(program, args), output)
}

/// Runs a program with a deadline, blocking, and returns what it printed whatever its exit
/// status; the child is killed when the deadline passes.
fn output_blocking(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<std::process::Output> {
    let command_line = command_line(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| HarnessError::Command {
            command: command_line.clone(),
            message: error.to_string(),
        })?;
    // Drain both pipes on their own threads, so a chatty child never blocks on a full pipe.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL_INTERVAL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::CommandTimeout {
                    command: command_line,
                    timeout,
                });
            }
            Err(error) => {
                return Err(HarnessError::Command {
                    command: command_line,
                    message: error.to_string(),
                })
            }
        }
    };
    let collect = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
        reader
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default()
    };
    Ok(std::process::Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn finish(command: String, output: std::process::Output) -> Result<String> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let mut message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if message.is_empty() {
        message = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    }
    if message.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" [...]");
    }
    Err(HarnessError::Command {
        command,
        message: format!("{} ({})", message, output.status),
    })
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks that the Docker daemon answers and that this process can drive network
/// namespaces; returns the daemon's version.
pub async fn check_available() -> Result<String> {
    let version = docker(&["version", "--format", "{{.Server.Version}}"])
        .await
        .map_err(|error| {
            HarnessError::DockerUnavailable(format!(
                "the chaos suite needs a running Docker daemon and the `docker` CLI ({error}); \
                 start Docker, or set TRUNKLINE_CHAOS=0 to skip the suite explicitly"
            ))
        })?;
    if !is_root() {
        return Err(HarnessError::DockerUnavailable(
            "the chaos suite enters the containers' network namespaces (nsenter, iptables) and \
             needs to run as root, or set TRUNKLINE_CHAOS=0 to skip the suite explicitly"
                .to_owned(),
        ));
    }
    for (tool, package) in [("nsenter", "util-linux"), ("iptables", "iptables")] {
        if which(tool).is_none() {
            return Err(HarnessError::DockerUnavailable(format!(
                "the chaos suite needs `{tool}` on the host (apt-get install {package}; \
                 .ci/run installs it), or set TRUNKLINE_CHAOS=0 to skip the suite explicitly"
            )));
        }
    }
    Ok(version.trim().to_owned())
}

/// Whether this process runs with effective user id 0 (read from `/proc`, no `unsafe`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|id| id == "0"))
        })
        .unwrap_or(false)
}

/// The full path of `program` on `PATH` (and the sbin folders, where iptables lives).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|folder| folder.join(program))
        .find(|candidate| candidate.is_file())
}

/// Unix time in seconds.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// The labels every resource of run `run_id` carries, as `--label` arguments.
pub fn run_labels(run_id: &str) -> Vec<String> {
    [
        (RUN_LABEL, run_id.to_owned()),
        (OWNER_PID_LABEL, std::process::id().to_string()),
        (OWNER_HOST_LABEL, host_name()),
        (CREATED_LABEL, unix_seconds().to_string()),
    ]
    .into_iter()
    .flat_map(|(key, value)| ["--label".to_owned(), format!("{key}={value}")])
    .collect()
}

/// The network a run created: an `--internal` bridge, so nothing on it reaches beyond the
/// host, with a subnet of its own so every node keeps its address across restarts.
#[derive(Clone, Debug)]
pub struct Network {
    pub name: String,
    pub subnet: String,
    /// The first address of the subnet.
    pub base: Ipv4Addr,
    /// The host's address on the bridge: nodes reach the harness's proxies there.
    pub gateway: Ipv4Addr,
}

impl Network {
    /// The address of the `index`-th container (1-based), clear of the gateway.
    pub fn address(&self, index: u64) -> Ipv4Addr {
        // Node ids are small (a run adds at most a handful of nodes), far below any subnet
        // Docker allocates (/20 at the smallest).
        let offset = 10u32.saturating_add(u32::try_from(index).unwrap_or(u32::MAX));
        Ipv4Addr::from(u32::from(self.base).saturating_add(offset))
    }
}

/// Creates `--internal` network `name` for run `run_id`. Docker only lets containers have
/// fixed addresses on a network whose subnet was given when it was made, so Docker is first
/// asked to choose a free subnet (it avoids the host's routes) and the network is then made
/// again with that subnet.
pub async fn create_network(name: &str, run_id: &str) -> Result<Network> {
    let labels = run_labels(run_id);
    let label_args: Vec<&str> = labels.iter().map(String::as_str).collect();
    let mut last_error = None;
    for _ in 0..NETWORK_CREATE_ATTEMPTS {
        let mut probe = vec!["network", "create", "--internal"];
        probe.extend(&label_args);
        probe.push(name);
        docker(&probe).await?;
        let config = docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
            name,
        ])
        .await;
        docker(&["network", "rm", name]).await?;
        let config = config?;
        let mut words = config.split_whitespace();
        let (Some(subnet), Some(gateway)) = (words.next(), words.next()) else {
            return Err(HarnessError::Setup(format!(
                "network {name}: Docker chose no IPv4 subnet ({config:?})"
            )));
        };
        let base = subnet
            .split_once('/')
            .and_then(|(address, _)| address.parse::<Ipv4Addr>().ok());
        let gateway_address = gateway.parse::<Ipv4Addr>().ok();
        let (Some(base), Some(gateway_address)) = (base, gateway_address) else {
            return Err(HarnessError::Setup(format!(
                "network {name}: can't read subnet {subnet:?} / gateway {gateway:?}"
            )));
        };
        let mut create = vec![
            "network",
            "create",
            "--internal",
            "--subnet",
            subnet,
            "--gateway",
            gateway,
        ];
        create.extend(&label_args);
        create.push(name);
        match docker(&create).await {
            Ok(_) => {
                return Ok(Network {
                    name: name.to_owned(),
                    subnet: subnet.to_owned(),
                    base,
                    gateway: gateway_address,
                })
            }
            // Another process took the subnet in between: ask again.
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        HarnessError::Setup(format!("network {name}: no subnet could be reserved"))
    }))
}

/// What to start a node container with.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub network: String,
    pub address: Ipv4Addr,
    pub env: Vec<(String, String)>,
    /// Host folders mounted read-only: (host path, path in the container).
    pub mounts: Vec<(std::path::PathBuf, String)>,
}

/// `docker run -d` of a container for run `run_id`; the image's entrypoint and command are
/// kept (`trunkline serve ...`), the node is configured through its environment.
pub async fn run_container(spec: &ContainerSpec, run_id: &str) -> Result<()> {
    let address = spec.address.to_string();
    let stop_grace = STOP_GRACE_SECONDS.to_string();
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        &spec.name,
        "--hostname",
        &spec.hostname,
        "--network",
        &spec.network,
        "--ip",
        &address,
        "--stop-timeout",
        &stop_grace,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(run_labels(run_id));
    for (key, value) in &spec.env {
        args.push("-e".to_owned());
        args.push(format!("{key}={value}"));
    }
    for (host, container) in &spec.mounts {
        args.push("--mount".to_owned());
        args.push(format!(
            "type=bind,source={},target={container},readonly",
            host.display()
        ));
    }
    args.push(spec.image.clone());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&args).await.map(drop)
}

/// The host pid of the container's main process (0 when it is not running).
pub async fn container_pid(name: &str) -> Result<u32> {
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", name]).await?;
    pid.trim()
        .parse()
        .map_err(|_| HarnessError::Setup(format!("container {name}: unreadable pid {pid:?}")))
}

/// Whether the container is running (paused counts as running).
pub async fn is_running(name: &str) -> Result<bool> {
    let running = docker(&["inspect", "-f", "{{.State.Running}}", name]).await?;
    Ok(running.trim() == "true")
}

/// kill -9 of the node process, and waits until Docker sees the container stopped.
pub async fn kill(name: &str) -> Result<()> {
    docker(&["kill", "--signal", "KILL", name]).await?;
    let deadline = Instant::now() + KILL_SETTLE_TIMEOUT;
    while is_running(name).await? {
        if Instant::now() > deadline {
            return Err(HarnessError::timeout(
                format!("container {name} stopping after kill -9"),
                KILL_SETTLE_TIMEOUT,
                "",
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Ok(())
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE_SECONDS`]: the node's graceful shutdown.
pub async fn stop(name: &str) -> Result<()> {
    let grace = STOP_GRACE_SECONDS.to_string();
    docker_with_timeout(&["stop", "--time", &grace, name], STOP_TIMEOUT)
        .await
        .map(drop)
}

pub async fn start(name: &str) -> Result<()> {
    docker(&["start", name]).await.map(drop)
}

/// Freezes every process of the container (cgroup freezer): connections stay open, nothing
/// answers.
pub async fn pause(name: &str) -> Result<()> {
    docker(&["pause", name]).await.map(drop)
}

pub async fn unpause(name: &str) -> Result<()> {
    docker(&["unpause", name]).await.map(drop)
}

/// The container's output (the node logs to stderr): both streams, stdout first.
pub async fn logs(name: &str) -> Result<String> {
    let mut command = tokio::process::Command::new(DOCKER_PROGRAM);
    command
        .args(["logs", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(LOGS_TIMEOUT, command.output())
        .await
        .map_err(|_| HarnessError::CommandTimeout {
            command: format!("docker logs {name}"),
            timeout: LOGS_TIMEOUT,
        })?
        .map_err(|error| HarnessError::io(format!("docker logs {name}"), error))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(text)
}

/// `iptables ARGS` inside the network namespace of the process `pid` (a container's), run
/// from the host so the image needs no tools.
pub async fn iptables_in(pid: u32, args: &[&str]) -> Result<String> {
    let pid = pid.to_string();
    // By full path: /usr/sbin is not on every PATH.
    let iptables = which("iptables")
        .map(|path| path.to_string_lossy().into_owned())
        .unwrap_or_else(|| "iptables".to_owned());
    let mut full = vec!["-t", &pid, "-n", &iptables, "-w", "10"];
    full.extend_from_slice(args);
    run_program("nsenter", &full, COMMAND_TIMEOUT).await
}

/// The networks and containers of one run, removed when the guard is dropped.
#[derive(Debug)]
pub struct RunGuard {
    resources: Arc<RunResources>,
}

#[derive(Debug)]
struct RunResources {
    run_id: String,
    /// Where container logs go when the run fails; `None`: nowhere.
    logs_dir: Mutex<Option<PathBuf>>,
    /// Set once removed, so the interrupt handler and `Drop` don't both do it.
    removed: Mutex<bool>,
    /// Set once the logs are saved, so a failing run saves them once.
    logs_saved: Mutex<bool>,
}

/// Live runs, for the interrupt handler.
static LIVE_RUNS: Mutex<Vec<Weak<RunResources>>> = Mutex::new(Vec::new());

impl RunGuard {
    /// A guard for run `run_id`; installs the interrupt handler on first use.
    pub fn new(run_id: &str) -> RunGuard {
        install_interrupt_cleanup();
        let resources = Arc::new(RunResources {
            run_id: run_id.to_owned(),
            logs_dir: Mutex::new(None),
            removed: Mutex::new(false),
            logs_saved: Mutex::new(false),
        });
        let mut live = LIVE_RUNS.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|run| run.strong_count() > 0);
        live.push(Arc::downgrade(&resources));
        RunGuard { resources }
    }

    pub fn run_id(&self) -> &str {
        &self.resources.run_id
    }

    /// Where every container's logs are written if the run fails (a panic while the guard
    /// is dropped, or [`RunGuard::save_logs_blocking`]).
    pub fn set_logs_dir(&self, folder: &Path) {
        *self
            .resources
            .logs_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(folder.to_owned());
    }

    /// Writes `docker logs` of every container of the run to the logs folder.
    pub fn save_logs_blocking(&self) {
        self.resources.save_logs();
    }

    /// Removes the run's containers (with their volumes) and networks now.
    pub fn remove_blocking(&self) {
        self.resources.remove();
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.resources.save_logs();
        }
        self.resources.remove();
    }
}

impl RunResources {
    fn label_filter(&self) -> String {
        format!("label={RUN_LABEL}={}", self.run_id)
    }

    fn containers(&self) -> Vec<String> {
        run_program_blocking(
            DOCKER_PROGRAM,
            &[
                "ps",
                "-a",
                "--filter",
                &self.label_filter(),
                "--format",
                "{{.Names}}",
            ],
            COMMAND_TIMEOUT,
        )
        .map(|names| names.lines().map(str::to_owned).collect())
        .unwrap_or_default()
    }

    fn save_logs(&self) {
        let mut saved = self
            .logs_saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *saved {
            return;
        }
        let Some(folder) = self
            .logs_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        let _ = std::fs::create_dir_all(&folder);
        for name in self.containers() {
            if let Ok(output) = output_blocking(DOCKER_PROGRAM, &["logs", &name], LOGS_TIMEOUT) {
                let mut text = output.stdout;
                text.extend_from_slice(&output.stderr);
                let _ = std::fs::write(folder.join(format!("{name}.log")), text);
            }
        }
        *saved = true;
    }

    fn remove(&self) {
        let mut removed = self.removed.lock().unwrap_or_else(PoisonError::into_inner);
        if *removed {
            return;
        }
        remove_by_filter(&self.label_filter());
        *removed = true;
    }
}

/// Removes every container (with its anonymous volumes) and then every network matching a
/// `docker ... --filter` expression. Best effort: what fails is left for the next sweep.
fn remove_by_filter(filter: &str) {
    let containers = run_program_blocking(
        DOCKER_PROGRAM,
        &["ps", "-aq", "--filter", filter],
        COMMAND_TIMEOUT,
    )
    .unwrap_or_default();
    let ids: Vec<&str> = containers.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(&ids);
        let _ = run_program_blocking(DOCKER_PROGRAM, &args, COMMAND_TIMEOUT);
    }
    let networks = run_program_blocking(
        DOCKER_PROGRAM,
        &["network", "ls", "-q", "--filter", filter],
        COMMAND_TIMEOUT,
    )
    .unwrap_or_default();
    for network in networks.split_whitespace() {
        let _ = run_program_blocking(DOCKER_PROGRAM, &["network", "rm", network], COMMAND_TIMEOUT);
    }
}

/// On SIGINT or SIGTERM, removes every live run's containers and networks, then exits
/// (status 130): an interrupted `cargo test` leaves nothing behind. Installed once.
pub fn install_interrupt_cleanup() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("chaos-interrupt".to_owned())
            .spawn(|| {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut interrupt), Ok(mut terminate)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        return;
                    };
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                    eprintln!("chaos: interrupted; removing this run's containers and networks");
                    let live: Vec<Arc<RunResources>> = LIVE_RUNS
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .iter()
                        .filter_map(Weak::upgrade)
                        .collect();
                    for run in live {
                        run.remove();
                    }
                    std::process::exit(130);
                });
            });
        if let Err(error) = spawned {
            eprintln!("chaos: can't watch for interrupts ({error}); an interrupted run leaves containers for the next run's sweep");
        }
    });
}

/// What [`sweep_leftovers`] removed.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Run ids whose resources were removed.
    pub runs: Vec<String>,
}

/// Removes networks and containers of earlier runs that can no longer be live: their owner
/// process (on this host) is gone, or they are older than [`STALE_RUN_AGE`]. Runs of live
/// processes, this one included, are left alone.
pub fn sweep_leftovers() -> Sweep {
    let format = format!(
        "{{{{.Label \"{RUN_LABEL}\"}}}} {{{{.Label \"{OWNER_PID_LABEL}\"}}}} {{{{.Label \"{OWNER_HOST_LABEL}\"}}}} {{{{.Label \"{CREATED_LABEL}\"}}}}"
    );
    let filter = format!("label={RUN_LABEL}");
    let mut runs: BTreeMap<String, bool> = BTreeMap::new();
    for listing in [
        run_program_blocking(
            DOCKER_PROGRAM,
            &["ps", "-a", "--filter", &filter, "--format", &format],
            COMMAND_TIMEOUT,
        ),
        run_program_blocking(
            DOCKER_PROGRAM,
            &["network", "ls", "--filter", &filter, "--format", &format],
            COMMAND_TIMEOUT,
        ),
    ] {
        for line in listing.unwrap_or_default().lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let [run_id, pid, host, created] = words.as_slice() else {
                continue;
            };
            let dead = is_leftover(pid, host, created);
            *runs.entry((*run_id).to_owned()).or_insert(dead) &= dead;
        }
    }
    let mut sweep = Sweep::default();
    for (run_id, dead) in runs {
        if dead {
            remove_by_filter(&format!("label={RUN_LABEL}={run_id}"));
            sweep.runs.push(run_id);
        }
    }
    sweep
}

fn is_leftover(pid: &str, host: &str, created: &str) -> bool {
    let age = created
        .parse::<u64>()
        .map(|created| unix_seconds().saturating_sub(created))
        .unwrap_or(u64::MAX);
    if age > STALE_RUN_AGE.as_secs() {
        return true;
    }
    if host != host_name() {
        // Another machine's run (a shared daemon): only its age can tell.
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return true;
    };
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_addresses_stay_clear_of_the_gateway() {
        let network = Network {
            name: "n".into(),
            subnet: "172.19.0.0/16".into(),
            base: Ipv4Addr::new(172, 19, 0, 0),
            gateway: Ipv4Addr::new(172, 19, 0, 1),
        };
        assert_eq!(network.address(1), Ipv4Addr::new(172, 19, 0, 11));
        assert_eq!(network.address(5), Ipv4Addr::new(172, 19, 0, 15));
    }

    #[test]
    fn a_live_run_of_this_host_is_not_a_leftover() {
        let me = std::process::id().to_string();
        let now = unix_seconds().to_string();
        assert!(!is_leftover(&me, &host_name(), &now));
        // No process has pid 0 in /proc.
        assert!(is_leftover("0", &host_name(), &now));
        assert!(!is_leftover("0", "another-host", &now));
        assert!(is_leftover(&me, &host_name(), "0"));
    }

    #[test]
    fn failing_commands_quote_their_error() {
        let error = run_program_blocking("sh", &["-c", "echo boom >&2; exit 3"], COMMAND_TIMEOUT)
            .unwrap_err();
        assert!(error.to_string().contains("boom"), "{error}");
        let error = run_program_blocking("sleep", &["5"], Duration::from_millis(100)).unwrap_err();
        assert!(
            matches!(error, HarnessError::CommandTimeout { .. }),
            "{error}"
        );
    }
}
