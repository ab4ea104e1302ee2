//! The auditor's, chain and genesis commands, driven through their clap
//! arguments exactly as the `custody` binary parses them.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use custody_cli::{AuditArgs, ChainArgs, GenesisArgs, KeysArgs};
use custody_ledger::export::sample;
use custody_ledger::store::Store;

/// The `custody` command line as main.rs wires it.
#[derive(Parser)]
#[command(name = "custody")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Audit(AuditArgs),
    Chain(ChainArgs),
    Genesis(GenesisArgs),
    Keys(KeysArgs),
}

/// Run a command line; `Ok(stdout)` or `Err(error message)`.
fn run(args: &[&str]) -> Result<String, String> {
    let cli = Cli::try_parse_from(std::iter::once("custody").chain(args.iter().copied()))
        .map_err(|e| format!("usage: {e}"))?;
    let mut out = Vec::new();
    let result = match cli.command {
        Command::Audit(a) => custody_cli::run_audit_to(a, &mut out).map_err(|e| e.to_string()),
        Command::Chain(a) => custody_cli::run_chain_to(a, &mut out).map_err(|e| e.to_string()),
        Command::Genesis(a) => custody_cli::run_genesis_to(a, &mut out).map_err(|e| e.to_string()),
        Command::Keys(a) => {
            custody_cli::keyfile::run_keys_to(a, &mut out).map_err(|e| e.to_string())
        }
    };
    result.map(|()| String::from_utf8(out).unwrap())
}

fn ok(args: &[&str]) -> String {
    match run(args) {
        Ok(out) => out,
        Err(e) => panic!("`custody {}` failed: {e}", args.join(" ")),
    }
}

fn fails(args: &[&str]) -> String {
    match run(args) {
        Ok(out) => panic!("`custody {}` succeeded: {out}", args.join(" ")),
        Err(e) => e,
    }
}


#[test]
fn print_doc_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("chain.export");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../ledger/tests/vectors/export-v1.bin"), &export).unwrap();
    let e = export.to_str().unwrap();
    println!("{}", ok(&["audit", "verify", "--export", e]));
    println!("{}", ok(&["audit", "history", "ca/2026/0001", "--export", e]));
    let p = dir.path().join("v2.pdf");
    std::fs::write(&p, sample::plaintext("ca/2026/0001", 2)).unwrap();
    println!("{}", ok(&["audit", "fixity", "ca/2026/0001", p.to_str().unwrap(), "--export", e]));
    println!("{}", ok(&["audit", "report", "--export", e]));
    let mut bytes = std::fs::read(&export).unwrap();
    let needle = b"benefit claim 17 follow-up";
    let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&export, &bytes).unwrap();
    println!("{}", fails(&["audit", "verify", "--export", e]));
}
