//! `loadgen`: the load generator comparing Trunkline with Redis, PostgreSQL and etcd doing
//! the same work. The subcommands and what they measure: `loadgen --help` and the library's
//! `loadgen` module; the script that runs them all: `crates/trunkline-bench/perf/run.sh`.
//!
//! Exit codes: 0 measured (or help printed), 1 a run or its setup failed, 2 bad arguments.

use std::process::ExitCode;

use clap::Parser;
use trunkline_bench::loadgen::{self, cli::Cli};

/// Runtime threads: the servers measured share the machine's two cores.
const WORKER_THREADS: usize = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version print to stdout and exit 0; mistakes exit 2.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Err(message) = cli.validate() {
        eprintln!("loadgen: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadgen: can't start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(loadgen::exec(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            ExitCode::from(1)
        }
    }
}
