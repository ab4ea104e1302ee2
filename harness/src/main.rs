//! `custody-harness`: the demo, the container cluster's fault-test tools
//! and the benches, apart from the `custody` product binary.
//!
//! Everything here calls the `custody-cli` library (the clerk library,
//! governance, transactions, the auditor's commands) and the node's own
//! client, never the `custody` binary's printed output. The demo and the
//! load bench start their nodes from this binary (`node start`, the same
//! code as `custody node start`), so one `cargo run -p custody-harness`
//! builds everything they need.

mod bench;
mod cluster;
mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use custody_cli::exit_codes_help;

/// The node's allocator, as in the `custody` binary, so that nodes started
/// from this binary (demo, `bench load`) run as the product's do.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Custody's harness: a whole network on this machine, fault tests for a
/// container cluster, and benches.
#[derive(Parser)]
#[command(name = "custody-harness", version, about, long_about, after_help = exit_codes_help!())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run four departments on this machine: a day of archive work, then an audit of it.
    #[command(after_help = concat!(
        "Example:\n  custody-harness demo\n  custody-harness demo --short --exit-after-audit --dir /tmp/demo\n\n",
        exit_codes_help!()
    ))]
    Demo(demo::DemoArgs),
    /// Fault-test tools for a four-node container cluster (scripts/cluster-test.sh).
    #[command(subcommand)]
    #[command(after_help = exit_codes_help!())]
    Cluster(cluster::ClusterCommand),
    /// Measure the node.
    #[command(subcommand)]
    #[command(after_help = exit_codes_help!())]
    Bench(bench::BenchCommand),
    /// Run a node (what `custody node start` does): how the demo and the
    /// load bench start their nodes from this binary.
    #[command(subcommand, hide = true)]
    Node(NodeCommand),
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Run the node until SIGINT or SIGTERM (logs on stderr; RUST_LOG filters).
    Start {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// Log one JSON object per line instead of text.
        #[arg(long)]
        log_json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), custody_cli::exit::Failure> = match cli.command {
        Command::Demo(args) => demo::run(args).map_err(|error| error.to_string().into()),
        Command::Cluster(command) => cluster::run(command).map_err(Into::into),
        Command::Bench(command) => bench::run(command).map_err(Into::into),
        Command::Node(NodeCommand::Start { home, log_json }) => {
            custody_cli::node_process::run_node(home, log_json).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.exit.code())
        }
    }
}
