//! trunkctl's subcommands. Each kind of object (tenant, carrier, gateway, DID, device, edge)
//! is a module describing it once ([`kinds::Kind`]) with the flags of its `add` and `update`;
//! what every kind has (`show`, `list`, `remove`...) is written once in [`kinds`].

pub mod alerts;
pub mod audit;
pub mod backup;
pub mod carrier;
pub mod cdr;
pub mod certs;
mod check;
pub mod cluster;
pub mod config;
pub mod continuity;
pub mod device;
pub mod did;
pub mod doctor;
pub mod edge;
pub mod events;
pub mod gateway;
pub mod health;
pub mod keys;
mod kinds;
pub mod policy;
pub mod rates;
pub mod route;
pub mod tenant;
pub mod token;
pub mod usage;
mod view;

use crate::context::{Context, Failure};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Cluster membership and status.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// The replicated settings namespace.
    #[command(subcommand)]
    Config(config::Command),
    /// Customer accounts: dial plans, routing strategy, allowed carriers.
    #[command(subcommand)]
    Tenant(tenant::Command),
    /// Calling policies: which calls a tenant's users may make (fraud controls).
    #[command(subcommand)]
    Policy(policy::Command),
    /// Usage limits and usage now: calls at once, per second, hour and day, minutes, spend.
    #[command(subcommand)]
    Usage(usage::Command),
    /// Fraud alerts, the automatic actions in force, and the rules that raise them.
    #[command(subcommand)]
    Alerts(alerts::Command),
    /// Call detail records of every call attempt, blocked ones included: list or export.
    #[command(subcommand)]
    Cdr(cdr::Command),
    /// Providers that terminate calls.
    #[command(subcommand)]
    Carrier(carrier::Command),
    /// Carriers' SIP endpoints, their probe settings, and draining them for maintenance.
    #[command(subcommand)]
    Gateway(gateway::Command),
    /// Gateway and edge health: each up or down and why; `health policy` for the settings.
    Health(health::Args),
    /// The cluster's event log (gateway health changes); --follow to watch it.
    Events(events::Args),
    /// Carrier rate decks as CSV files.
    #[command(subcommand)]
    Rates(rates::Command),
    /// Public numbers: the device each rings and where calls go when it can't answer.
    #[command(subcommand)]
    Did(did::Command),
    /// Customers' phones (by address of record) and where they are registered.
    #[command(subcommand)]
    Device(device::Command),
    /// Edge proxies devices register through, probed like gateways.
    #[command(subcommand)]
    Edge(edge::Command),
    /// A tenant's default continuity plan, for calls that can't reach the device.
    #[command(subcommand)]
    Continuity(continuity::Command),
    /// Where a call would go, and why.
    #[command(subcommand)]
    Route(route::Command),
    /// Bearer tokens: who may use the cluster, and for what.
    #[command(subcommand)]
    Token(token::Command),
    /// The audit log: every admin change and refused call; `audit verify` checks its chain.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Print a shell completion script: `trunkctl completions bash > /etc/bash_completion.d/trunkctl`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or with --out-dir write one page per command there.
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Check the cluster end to end from every endpoint: reachable, one leader, lag, clock
    /// skew, gateways down, disk free, certificates expiring. Exit code 3 when one fails.
    Doctor(doctor::Args),
    /// Backups: `backup FILE` takes one from a node; `backup verify FILE` checks one.
    Backup(backup::Args),
    /// Encryption at rest: re-seal stored data with each node's newest key.
    #[command(subcommand)]
    Keys(keys::Command),
    /// TLS certificates: a cluster CA and certificates for nodes and clients (local files).
    #[command(subcommand)]
    Certs(certs::Command),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Cluster(command) => cluster::exec(command, context).await,
        Command::Config(command) => config::exec(command, context).await,
        Command::Tenant(command) => tenant::exec(command, context).await,
        Command::Policy(command) => policy::exec(command, context).await,
        Command::Usage(command) => usage::exec(command, context).await,
        Command::Cdr(command) => cdr::exec(command, context).await,
        Command::Alerts(command) => alerts::exec(command, context).await,
        Command::Carrier(command) => carrier::exec(command, context).await,
        Command::Gateway(command) => gateway::exec(command, context).await,
        Command::Health(args) => health::exec(args, context).await,
        Command::Events(args) => events::exec(args, context).await,
        Command::Rates(command) => rates::exec(command, context).await,
        Command::Did(command) => did::exec(command, context).await,
        Command::Device(command) => device::exec(command, context).await,
        Command::Edge(command) => edge::exec(command, context).await,
        Command::Continuity(command) => continuity::exec(command, context).await,
        Command::Route(command) => route::exec(command, context).await,
        Command::Token(command) => token::exec(command, context).await,
        Command::Audit(command) => audit::exec(command, context).await,
        Command::Keys(command) => keys::exec(command, context).await,
        Command::Backup(args) => backup::exec(args, context).await,
        Command::Doctor(args) => doctor::exec(args, context).await,
        // Answered in main before any connection is made.
        Command::Completions { .. } | Command::Man { .. } => Ok(()),
        Command::Certs(command) => certs::exec(command, context).await,
    }
}
