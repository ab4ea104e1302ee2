//! Where an audit reads the chain from, and the verified replay every
//! audit command starts with.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use custody_ledger::export;
use custody_ledger::state::MemoryState;
use custody_ledger::store::Store;
use custody_ledger::types::Hash32;
use custody_ledger::verify::{self, BlockSource, Failure, Progress, VerifyOptions, VerifyReport};
use custody_ledger::Genesis;
use indicatif::{ProgressBar, ProgressStyle};

use super::AuditError;

/// The chain to read: an export file or a node's store directory.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// An export file written by `custody chain export`.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "store",
        required_unless_present = "store"
    )]
    pub export: Option<PathBuf>,
    /// A node's ledger store directory (the node must be stopped, or give a
    /// copy: the store is opened for reading and locked).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// The genesis hash the auditor trusts (64 hex digits); the chain must
    /// start from it. Without it, the hash is printed for comparison.
    #[arg(long, value_name = "HEX")]
    pub genesis_hash: Option<String>,
    /// Verification threads (0: one signature-checking thread per core,
    /// plus the thread that replays the blocks in order).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// A chain verified from its genesis, with the state its replay built and
/// the blocks it read.
pub struct LoadedChain {
    pub genesis: Genesis,
    pub report: VerifyReport,
    pub state: MemoryState,
    pub source: Box<dyn BlockSource>,
    pub elapsed: Duration,
    /// Where the head height the verification ran to came from.
    pub head_source: String,
}

impl LoadedChain {
    /// Block `height` of the verified chain, decoded.
    pub fn block(&self, height: u64) -> Result<custody_ledger::block::Block, AuditError> {
        let read = |reason: String| AuditError::Read {
            path: format!("block {height}"),
            reason,
        };
        let raw = self
            .source
            .raw_block(custody_ledger::types::Height(height))
            .map_err(read)?
            .ok_or_else(|| read("missing".to_string()))?;
        custody_ledger::encoding::decode(&raw).map_err(|e| read(e.to_string()))
    }
}

fn progress_bar(enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] height {pos}/{len} {msg} ({eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn on_progress(bar: &ProgressBar) -> impl FnMut(Progress) + '_ {
    move |p: Progress| {
        if p.height.0 == 1 || p.height.0 % 64 == 0 || p.height == p.latest {
            bar.set_length(p.latest.0);
            bar.set_position(p.height.0);
            bar.set_message(format!("{} transactions", p.transactions));
        }
    }
}

/// The ledger's verifier keeps one thread for the in-order replay and
/// checks signatures on the others. Signature checks are most of the work,
/// so by default every core checks signatures and the replay thread shares
/// a core with them.
pub(crate) fn verify_threads(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        + 1
}

/// Verify the chain named by `args` from its genesis and keep the replayed
/// state. Draws a progress bar on stderr when `progress` is set.
pub fn load_chain(args: &SourceArgs, progress: bool) -> Result<LoadedChain, AuditError> {
    let expected = match &args.genesis_hash {
        Some(hex) => Some(
            Hash32::from_hex(hex)
                .map_err(|e| AuditError::BadArgument(format!("--genesis-hash: {e}")))?,
        ),
        None => None,
    };
    let options = VerifyOptions {
        threads: verify_threads(args.threads),
        ..VerifyOptions::default()
    };
    let bar = progress_bar(progress);
    let started = Instant::now();
    let loaded = match (&args.export, &args.store) {
        (Some(path), _) => {
            let (report, state, file) =
                export::verify_export(path, expected, options, on_progress(&bar))?;
            LoadedChain {
                genesis: file.genesis().clone(),
                report,
                state,
                source: Box::new(file) as Box<dyn BlockSource>,
                elapsed: started.elapsed(),
                head_source: "the export file's last block".to_string(),
            }
        }
        (None, Some(dir)) => {
            // Opening checks that the head record, the last block and the
            // last certificate agree (a store that disagrees is refused
            // here, saying so); the replay then reads every block up to
            // that head, and no block lies beyond it.
            // A node's store (HOME/data/ledger) has the node's consensus
            // state beside it, which shows how far the node committed: a
            // store behind it lost blocks, even if what is left holds
            // together.
            let state_path = dir
                .parent()
                .map(|data| data.join("consensus.state"))
                .filter(|path| path.exists());
            let committed =
                match &state_path {
                    Some(path) => custody_node::consensus_state::committed_high_water(path)
                        .map_err(|error| AuditError::Read {
                            path: path.display().to_string(),
                            reason: error.message,
                        })?,
                    None => None,
                };
            let store = match Store::open(dir) {
                Err(custody_ledger::store::StoreError::NotInitialized)
                    if committed.is_some_and(|committed| committed > 0) =>
                {
                    return Err(AuditError::StoreBehind {
                        store: dir.display().to_string(),
                        state: state_path
                            .as_ref()
                            .map(|path| path.display().to_string())
                            .unwrap_or_default(),
                        found: 0,
                        committed: committed.unwrap_or(0),
                    });
                }
                opened => opened?,
            };
            let head = store.check_head()?;
            if let (Some(path), Some(committed)) = (&state_path, committed) {
                if head.height.0 < committed {
                    return Err(AuditError::StoreBehind {
                        store: dir.display().to_string(),
                        state: path.display().to_string(),
                        found: head.height.0,
                        committed,
                    });
                }
            }
            let compared = match (&state_path, committed) {
                (Some(path), Some(committed)) => format!(
                    "; not behind the height {committed} the node's consensus state {} shows committed",
                    path.display()
                ),
                _ => "; no consensus state beside the store to compare it with".to_string(),
            };
            let genesis = store.genesis()?;
            if let Some(expected) = expected {
                if genesis.hash() != expected {
                    return Err(AuditError::GenesisNotExpected {
                        expected,
                        found: genesis.hash(),
                    });
                }
            }
            // Store blocks have no index of sizes; a small chunk keeps the
            // replay overlapping the signature checks for large blocks.
            let options = VerifyOptions {
                chunk_blocks: 2 * options.threads,
                ..options
            };
            let (report, state) =
                verify::verify_chain(&genesis, &store, options, on_progress(&bar))
                    .map_err(AuditError::StoreVerify)?;
            // The store's own state must be the one the replay computed.
            let stored = store.state_digest()?;
            if stored != report.state_digest {
                return Err(AuditError::StoreVerify(verify::VerifyError {
                    height: report.height,
                    transaction: None,
                    failure: Box::new(Failure::StateMismatch {
                        computed: report.state_digest,
                        stored,
                    }),
                }));
            }
            LoadedChain {
                genesis,
                report,
                state,
                source: Box::new(store),
                elapsed: started.elapsed(),
                head_source: format!(
                    "height {} from {}{compared}",
                    head.height,
                    custody_ledger::store::HeadCheck::SOURCE
                ),
            }
        }
        (None, None) => {
            return Err(AuditError::BadArgument(
                "give --export FILE or --store DIR".to_string(),
            ))
        }
    };
    bar.finish_and_clear();
    Ok(loaded)
}
