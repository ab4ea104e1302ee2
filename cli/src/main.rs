//! `custody`: the command line for department IT, clerks and auditors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Custody keeps the chain of custody of government electronic archives.
///
/// Each department runs one node. Start with `custody testnet init` to try
/// a local network, or `custody node init` to set up a department's node.
#[derive(Parser)]
#[command(name = "custody", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up, run and watch this department's node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Generate a whole local network (keys, genesis, configs) for trials and tests.
    #[command(subcommand)]
    Testnet(TestnetCommand),
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Write a commented default configuration and fresh keys into HOME.
    ///
    /// Creates HOME/config.toml and HOME/keys/{validator,node,encryption}.key.
    /// Existing keys are never overwritten. Put the chain's genesis at
    /// HOME/genesis.json before `custody node start`.
    Init {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// This node's department slug, as in the genesis.
        #[arg(long)]
        department: Option<String>,
    },
    /// Run the node until SIGINT or SIGTERM.
    Start {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// Log one JSON object per line instead of text.
        #[arg(long)]
        log_json: bool,
    },
}

#[derive(Subcommand)]
enum TestnetCommand {
    /// Generate N departments' homes under DIR, ready for `custody node start --home DIR/<dept>`.
    Init(TestnetInitArgs),
}

#[derive(Args)]
struct TestnetInitArgs {
    /// How many departments (nodes); 4 tolerates one faulty node.
    #[arg(long, default_value_t = 4)]
    departments: usize,
    /// Directory to create the homes in.
    #[arg(long)]
    dir: PathBuf,
    /// First port; node i listens on BASE+2i (peers) and BASE+2i+1 (HTTP API).
    #[arg(long, default_value_t = 26600)]
    base_port: u16,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Node(NodeCommand::Init { home, department }) => {
            let _ = (home, department);
            Err("not yet".to_string())
        }
        Command::Node(NodeCommand::Start { home, log_json }) => {
            let _ = (home, log_json);
            Err("not yet".to_string())
        }
        Command::Testnet(TestnetCommand::Init(args)) => {
            let _ = args;
            Err("not yet".to_string())
        }
    }
}
