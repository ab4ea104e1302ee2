//! `custody`: the command line for department IT, clerks and auditors.

use clap::Parser;

/// Custody keeps the chain of custody of government electronic archives.
#[derive(Parser)]
#[command(name = "custody", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
