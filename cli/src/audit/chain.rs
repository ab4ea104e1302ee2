//! `custody chain export` and `custody chain import`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use custody_ledger::export;
use custody_ledger::store::Store;
use custody_ledger::verify::VerifyOptions;

use super::{show_progress, AuditError};

/// `custody chain …`
#[derive(Args, Debug)]
pub struct ChainArgs {
    #[command(subcommand)]
    pub command: ChainCommand,
}

/// Moving a whole chain in and out of a node.
#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Write the whole chain (genesis, blocks, certificates) to one export
    /// file, from a node's store directory (stop the node first, or give a
    /// copy of the directory) or from a running node's HTTP API.
    #[command(
        after_help = "Example:\n  custody chain export --store /srv/custody/data/ledger --to chain.export\n  custody chain export --node http://127.0.0.1:26681 --genesis genesis.json --key auditor.key --to chain.export --json"
    )]
    Export {
        /// The node's ledger store directory.
        #[arg(
            long,
            value_name = "DIR",
            conflicts_with = "node",
            required_unless_present = "node"
        )]
        store: Option<PathBuf>,
        /// A node's HTTP API, e.g. `http://127.0.0.1:26601`; needs `--genesis`.
        #[arg(long, value_name = "URL", requires = "genesis")]
        node: Option<String>,
        /// The chain's genesis file, with `--node` (the API serves blocks,
        /// not the genesis); its hash must be the node's.
        #[arg(long, value_name = "FILE")]
        genesis: Option<PathBuf>,
        #[command(flatten)]
        reader: super::remote::ReaderKeyArgs,
        /// The export file to write (replaced atomically).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Print what was exported as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify an export completely, then build a fresh store from it so a
    /// new node can start from there.
    #[command(
        after_help = "Example:\n  custody chain import --from chain.export --store /srv/new-node/data/ledger --json"
    )]
    Import {
        /// The export file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The new store directory (must not exist or be empty).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// Verification threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Print what was imported as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run `custody chain …`, printing to stdout.
pub fn run_chain(args: ChainArgs) -> Result<(), AuditError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_chain_to(args, &mut out)
}

/// Run `custody chain …`, printing to `out`.
pub fn run_chain_to(args: ChainArgs, out: &mut dyn Write) -> Result<(), AuditError> {
    match args.command {
        ChainCommand::Export {
            store,
            node,
            genesis,
            reader,
            to,
            json,
        } => {
            let (trailer, genesis_hash) = match (store, node, genesis) {
                (Some(store), _, _) => {
                    let store = Store::open(&store)?;
                    let trailer = export::write_export_file(&store, &to)?;
                    (trailer, store.genesis()?.hash())
                }
                (None, Some(node), Some(genesis)) => {
                    let genesis = custody_ledger::Genesis::load(&genesis)?;
                    let key = reader.signing_key()?;
                    let trailer =
                        super::remote::export_from_node(&node, &genesis, &to, key.as_ref())?;
                    (trailer, genesis.hash())
                }
                _ => {
                    return Err(AuditError::BadArgument(
                        "give --store DIR, or --node URL with --genesis FILE".into(),
                    ))
                }
            };
            if json {
                let value = serde_json::json!({
                    "file": to,
                    "blocks": trailer.blocks,
                    "transactions": trailer.transactions,
                    "last_height": trailer.last_height.0,
                    "genesis_hash": genesis_hash.to_string(),
                    "last_block_hash": trailer.last_block_hash.to_string(),
                    "export_hash": trailer.export_hash.to_string(),
                });
                serde_json::to_writer_pretty(&mut *out, &value)?;
                writeln!(out)?;
                return Ok(());
            }
            writeln!(
                out,
                "exported {} blocks ({} transactions, heights 1 to {}) to {}",
                trailer.blocks,
                trailer.transactions,
                trailer.last_height,
                to.display()
            )?;
            writeln!(out, "  genesis      {genesis_hash}")?;
            writeln!(out, "  last block   {}", trailer.last_block_hash)?;
            writeln!(out, "  export hash  {}", trailer.export_hash)?;
        }
        ChainCommand::Import {
            from,
            store,
            threads,
            json,
        } => {
            let bar = if show_progress() {
                indicatif::ProgressBar::new(0)
            } else {
                indicatif::ProgressBar::hidden()
            };
            let options = VerifyOptions {
                threads: super::source::verify_threads(threads),
                ..VerifyOptions::default()
            };
            let report = export::import_export(&from, &store, options, |p| {
                if p.height.0 % 64 == 0 || p.height == p.latest {
                    bar.set_length(p.latest.0);
                    bar.set_position(p.height.0);
                }
            })?;
            bar.finish_and_clear();
            if json {
                let value = serde_json::json!({
                    "store": store,
                    "blocks": report.blocks,
                    "transactions": report.transactions,
                    "genesis_hash": report.genesis_hash.to_string(),
                    "last_block_hash": report.last_block_hash.to_string(),
                    "state_digest": report.state_digest.to_string(),
                });
                serde_json::to_writer_pretty(&mut *out, &value)?;
                writeln!(out)?;
                return Ok(());
            }
            writeln!(
                out,
                "verified and imported {} blocks ({} transactions) into {}",
                report.blocks,
                report.transactions,
                store.display()
            )?;
            writeln!(out, "  genesis      {}", report.genesis_hash)?;
            writeln!(out, "  last block   {}", report.last_block_hash)?;
            writeln!(out, "  state digest {}", report.state_digest)?;
        }
    }
    Ok(())
}
