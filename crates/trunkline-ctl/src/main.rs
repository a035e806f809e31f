//! `trunkctl`: the Trunkline admin CLI.
//!
//! Exit codes: 0 success; 1 the request failed (the message says why and what to do);
//! 2 a bad command line; 3 the request ran but its condition did not hold (a key not found,
//! a compare-and-set that did not match). Output to a closed pipe exits 0.

mod commands;
mod context;
mod duration;
mod output;
mod progress;

use std::{process::ExitCode, time::Duration};

use clap::{CommandFactory, Parser};

use crate::{
    context::{Context, Failure},
    output::Format,
};

#[derive(Parser)]
#[command(name = "trunkctl", version, about = "Administer a Trunkline cluster")]
struct Cli {
    /// Client addresses of the nodes (host:port, comma separated); the next is tried when one
    /// is down.
    #[arg(
        long,
        global = true,
        env = "TRUNKCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7400"
    )]
    endpoints: Vec<String>,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Deadline of each request, in milliseconds.
    #[arg(long, global = true, default_value_t = 15_000)]
    timeout_ms: u64,
    /// How long a write keeps trying while no node can take it (an election), in
    /// milliseconds; 0 tries each node once. Writes that change only what the command says
    /// carry an idempotency key, so one whose outcome was unknown is sent again too.
    #[arg(long, global = true, default_value_t = 5_000)]
    leader_wait_ms: u64,
    /// The bearer token to call with (`trunkctl token create` makes one).
    #[arg(long, global = true, env = "TRUNKLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the token (for `cluster init`: the node's bootstrap.token). Without
    /// --token or this, trunkctl uses trunkline-dev-data/admin.token when there is one.
    #[arg(
        long,
        global = true,
        env = "TRUNKLINE_TOKEN_FILE",
        conflicts_with = "token"
    )]
    token_file: Option<std::path::PathBuf>,
    /// The cluster CA (PEM) to verify nodes with: calls go over TLS. Without it trunkctl
    /// speaks plaintext, which only a node run --insecure (like `trunkline dev`) answers.
    #[arg(long, global = true, env = "TRUNKLINE_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// A client certificate (PEM) to show the nodes, with --key-file.
    #[arg(
        long,
        global = true,
        env = "TRUNKLINE_CERT_FILE",
        requires = "key_file"
    )]
    cert_file: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "TRUNKLINE_KEY_FILE",
        requires = "cert_file"
    )]
    key_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        commands::Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "trunkctl",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        commands::Command::Man { out_dir } => return man(out_dir.as_deref()),
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("trunkctl: can't start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let token = context::token(cli.token, cli.token_file)?;
        let tls = context::tls(cli.ca_file, cli.cert_file.zip(cli.key_file))?;
        let context = Context::new(&cli.endpoints, cli.output, cli.timeout_ms, token, tls)?
            .with_leader_wait(Duration::from_millis(cli.leader_wait_ms));
        commands::exec(cli.command, &context).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::ConditionFailed(message)) => {
            eprintln!("trunkctl: {message}");
            ExitCode::from(3)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("trunkctl: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Request(message)) => {
            eprintln!("trunkctl: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The man page on standard output, or one page per command written into `out_dir`.
fn man(out_dir: Option<&std::path::Path>) -> ExitCode {
    let written = match out_dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
            .map_err(|error| format!("can't write the man pages into {}: {error}", dir.display())),
        None => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(|error| format!("can't write the man page: {error}")),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("trunkctl: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
