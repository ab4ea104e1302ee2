//! `custody-harness cluster check` and `custody-harness cluster frozen`.
//!
//! `check` runs after a fault has been healed. It waits until every node
//! answers and holds a block committed after the heal (heights advance
//! again, and the slowest node has caught up), then reads every block of
//! every node and checks:
//!
//! - forks: at every height, every node has the same block hash;
//! - chain: each node's chain verifies from the genesis with the ledger's
//!   `verify_chain` (hash links, Merkle roots, every signature, every
//!   certificate against the validator set in force, full replay);
//! - lost: every transaction the load recorded as committed before the
//!   check started is in every node's chain.
//!
//! It prints one table row and appends it to `--table`; any violation
//! makes it exit non-zero.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use custody_ledger::block::Block;
use custody_ledger::certificate::CommitCertificate;
use custody_ledger::types::{BlockHash, Height};
use custody_ledger::verify::{verify_chain, BlockSource, VerifyOptions};
use custody_node::client::Client;

use super::{bounded, clients};

#[derive(Args)]
pub struct CheckArgs {
    /// Directory `custody-harness cluster prepare` wrote (the genesis).
    #[arg(long)]
    net: PathBuf,
    /// Comma-separated API URLs of every node that must converge.
    #[arg(long)]
    nodes: String,
    /// The load's acked file.
    #[arg(long)]
    acked: PathBuf,
    /// Name of the fault just healed (the table's first column).
    #[arg(long)]
    fault: String,
    /// Markdown table file the row is appended to.
    #[arg(long)]
    table: PathBuf,
    /// Longest wait for convergence, in seconds.
    #[arg(long, default_value_t = 90)]
    timeout_seconds: u64,
}

#[derive(Args)]
pub struct FrozenArgs {
    /// Comma-separated API URLs of every node.
    #[arg(long)]
    nodes: String,
    /// Time allowed for a block already being decided to finish.
    #[arg(long, default_value_t = 3)]
    settle_seconds: u64,
    /// How long no node may commit.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
}

/// Blocks and certificates one node served, as canonical bytes, so the
/// ledger's verifier re-checks them exactly as it checks a store.
struct Fetched {
    blocks: BTreeMap<u64, (Vec<u8>, Option<Vec<u8>>)>,
}

impl BlockSource for Fetched {
    fn latest_height(&self) -> Result<Height, String> {
        Ok(Height(self.blocks.keys().next_back().copied().unwrap_or(0)))
    }
    fn raw_block(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        Ok(self.blocks.get(&height.0).map(|(block, _)| block.clone()))
    }
    fn raw_certificate(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .blocks
            .get(&height.0)
            .and_then(|(_, cert)| cert.clone()))
    }
}

/// One node's chain as read: canonical bytes, block hashes, decoded blocks.
type Chain = (Fetched, Vec<BlockHash>, Vec<Block>);

/// Every node's height, or which one did not answer.
async fn heights(clients: &[Client]) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for client in clients {
        let status = bounded(client.status())
            .await
            .map_err(|error| format!("{}: {error}", client.base_url()))?;
        out.push(status.height);
    }
    Ok(out)
}

/// Reads blocks 1..=up_to from one node.
async fn fetch_chain(client: &Client, up_to: u64) -> Result<Chain, String> {
    let mut blocks = BTreeMap::new();
    let mut hashes = Vec::new();
    let mut decoded = Vec::new();
    for height in 1..=up_to {
        let mut attempt = 0;
        let answer = loop {
            match bounded(client.block(height)).await {
                Ok(answer) => break answer,
                Err(error) if attempt >= 3 => {
                    return Err(format!("{} block {height}: {error}", client.base_url()))
                }
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        };
        let certificate: Option<CommitCertificate> = answer.certificate;
        blocks.insert(
            height,
            (
                answer.block.to_bytes(),
                certificate.as_ref().map(CommitCertificate::to_bytes),
            ),
        );
        hashes.push(answer.hash);
        decoded.push(answer.block);
    }
    Ok((Fetched { blocks }, hashes, decoded))
}

fn read_acked(path: &PathBuf) -> Result<Vec<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    Ok(text
        .lines()
        .filter_map(|line| line.split('\t').next())
        .filter(|id| id.len() == 64)
        .map(str::to_string)
        .collect())
}

pub async fn run(args: CheckArgs) -> Result<(), String> {
    let clients = clients(&args.nodes)?;
    let genesis = super::genesis(&args.net)?;
    let started = Instant::now();
    let acked = read_acked(&args.acked)?;
    let deadline = started + Duration::from_secs(args.timeout_seconds);

    // Convergence: every node answers and holds a block committed after
    // the heal (one above the highest height any node had when we began).
    let mut target: Option<u64> = None;
    let mut last_seen = String::from("(no answer yet)");
    let recovered = loop {
        if Instant::now() >= deadline {
            break None;
        }
        if target.is_none() {
            // The highest height among the nodes that answer right now.
            let mut highest = None;
            for client in &clients {
                if let Ok(status) = bounded(client.status()).await {
                    highest = Some(highest.unwrap_or(0).max(status.height));
                }
            }
            target = highest.map(|h| h + 1);
        }
        match (target, heights(&clients).await) {
            (Some(target), Ok(seen)) if seen.iter().all(|h| *h >= target) => {
                break Some((started.elapsed(), seen));
            }
            (_, Ok(seen)) => last_seen = format!("heights {seen:?}, waiting for {target:?}"),
            (_, Err(error)) => last_seen = error,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Not recovered is a failure (liveness), but safety is still checked on
    // whatever the nodes hold, when they all answer.
    let mut problems = Vec::new();
    let (recovered_text, seen) = match recovered {
        Some((recover_time, seen)) => (format!("{:.1} s", recover_time.as_secs_f64()), seen),
        None => {
            problems.push(format!(
                "the nodes did not converge within {} s; last seen: {last_seen}",
                args.timeout_seconds
            ));
            let text = format!("not recovered in {} s", args.timeout_seconds);
            match heights(&clients).await {
                Ok(seen) => (text, seen),
                Err(error) => {
                    let row = format!(
                        "| {} | {text} | {} | - | - | - | - |",
                        args.fault,
                        acked.len()
                    );
                    append(&args.table, &row)?;
                    println!("{row}");
                    return Err(format!("{}: {}; {error}", args.fault, problems.join("; ")));
                }
            }
        }
    };
    let common = seen.iter().copied().min().unwrap_or(0);

    // Read every node's chain up to the common height, concurrently.
    let mut tasks = tokio::task::JoinSet::new();
    for (index, client) in clients.iter().cloned().enumerate() {
        tasks.spawn(async move { (index, fetch_chain(&client, common).await) });
    }
    let mut chains: Vec<Option<Chain>> = (0..clients.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined.map_err(|error| error.to_string())?;
        chains[index] = Some(result?);
    }
    let chains: Vec<Chain> = chains.into_iter().flatten().collect();

    // Forks: heights at which the nodes hold different blocks.
    let mut forks = 0u64;
    for height in 0..common as usize {
        let distinct: HashSet<&BlockHash> = chains.iter().map(|(_, h, _)| &h[height]).collect();
        if distinct.len() > 1 {
            forks += 1;
            problems.push(format!("fork at height {}: {distinct:?}", height + 1));
        }
    }
    // Each node's chain verifies from the genesis.
    let mut verified = 0usize;
    for (index, (fetched, hashes, _)) in chains.iter().enumerate() {
        match verify_chain(&genesis, fetched, VerifyOptions::default(), |_| {}) {
            Ok((report, _)) if Some(&report.last_block_hash) == hashes.last() || common == 0 => {
                verified += 1
            }
            Ok((report, _)) => problems.push(format!(
                "{}: verified chain ends at {} but the node served {:?}",
                clients[index].base_url(),
                report.last_block_hash,
                hashes.last()
            )),
            Err(error) => problems.push(format!(
                "{}: chain does not verify: {error:?}",
                clients[index].base_url()
            )),
        }
    }
    // Acknowledged transactions present on every node.
    let mut lost = 0u64;
    let mut found = 0u64;
    let per_node: Vec<HashSet<String>> = chains
        .iter()
        .map(|(_, _, blocks)| {
            blocks
                .iter()
                .flat_map(|block| block.transactions.iter().map(|tx| tx.id().to_hex()))
                .collect()
        })
        .collect();
    for id in &acked {
        let missing: Vec<&str> = per_node
            .iter()
            .enumerate()
            .filter(|(_, ids)| !ids.contains(id))
            .map(|(index, _)| clients[index].base_url())
            .collect();
        if missing.is_empty() {
            found += 1;
        } else {
            lost += 1;
            if lost <= 5 {
                problems.push(format!("acknowledged {id} is missing at {missing:?}"));
            }
        }
    }
    let row = format!(
        "| {} | {} | {} | {} | {} | {} | {} ({}/{} chains verify) |",
        args.fault,
        recovered_text,
        acked.len(),
        found,
        forks,
        lost,
        common,
        verified,
        clients.len()
    );
    append(&args.table, &row)?;
    println!("{row}");
    if verified != clients.len() {
        problems.push(format!("{verified} of {} chains verify", clients.len()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", args.fault, problems.join("; ")))
    }
}

fn append(path: &PathBuf, row: &str) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    writeln!(file, "{row}").map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// The highest height any answering node reports.
async fn highest(clients: &[Client]) -> Option<u64> {
    let mut highest = None;
    for client in clients {
        if let Ok(status) = bounded(client.status()).await {
            highest = Some(highest.unwrap_or(0).max(status.height));
        }
    }
    highest
}

pub async fn frozen(args: FrozenArgs) -> Result<(), String> {
    let clients = clients(&args.nodes)?;
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    let before = highest(&clients)
        .await
        .ok_or("no node answered before the frozen period")?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let after = highest(&clients)
        .await
        .ok_or("no node answered after the frozen period")?;
    if after > before {
        return Err(format!(
            "a block was committed without a quorum: highest height went from {before} to {after} in {} s",
            args.seconds
        ));
    }
    println!(
        "no commit for {} s without a quorum (highest height stayed {before})",
        args.seconds
    );
    Ok(())
}
