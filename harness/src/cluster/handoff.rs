//! Tools for the governance fault of `scripts/cluster-test.sh`, where a
//! department joins, one rotates its keys and one leaves under load.
//!
//! - `pauses` reads every block from a height on and fails when two
//!   consecutive blocks are further apart (block time) than a bound: the
//!   chain must not pause at a validator-set handoff.
//! - `removed` checks that a removed department's node is cut off: it got
//!   no block after the one that removed it, and the other nodes closed
//!   their connections to it by the next height.

use std::time::{Duration, Instant};

use clap::Args;

use super::{bounded, clients};

/// How often the nodes are polled while watching a removal.
const POLL_INTERVAL_MS: u64 = 100;

#[derive(Args)]
pub struct PausesArgs {
    /// The node whose blocks are read (API URL).
    #[arg(long)]
    node: String,
    /// First height to read.
    #[arg(long)]
    from_height: u64,
    /// The run fails when two consecutive blocks are further apart than this.
    #[arg(long, default_value_t = 5_000)]
    max_gap_ms: u64,
}

/// Reads blocks `from_height..=head` and reports the longest gap.
pub async fn pauses(args: PausesArgs) -> Result<(), String> {
    let clients = clients(&args.node)?;
    let client = &clients[0];
    let head = bounded(client.status())
        .await
        .map_err(|error| format!("{}: {error}", client.base_url()))?
        .height;
    let from = args.from_height.max(1);
    if head <= from {
        return Err(format!(
            "the node is at height {head}: no block after {from} to measure"
        ));
    }
    let mut previous: Option<(u64, u64)> = None;
    let mut longest = (0u64, from);
    for height in from..=head {
        let block = bounded(client.block(height))
            .await
            .map_err(|error| format!("block {height}: {error}"))?;
        let time = block.block.header.time.0;
        if let Some((_, before)) = previous {
            let gap = time.saturating_sub(before);
            if gap > longest.0 {
                longest = (gap, height);
            }
        }
        previous = Some((height, time));
    }
    println!(
        "blocks {from}..{head}: longest gap between consecutive blocks {} ms (before height {})",
        longest.0, longest.1
    );
    if longest.0 > args.max_gap_ms {
        return Err(format!(
            "the chain paused {} ms before height {}, longer than {} ms",
            longest.0, longest.1, args.max_gap_ms
        ));
    }
    Ok(())
}

#[derive(Args)]
pub struct RemovedArgs {
    /// The removed department's node (API URL).
    #[arg(long)]
    removed: String,
    /// The other nodes (comma-separated API URLs).
    #[arg(long)]
    nodes: String,
    /// The height of the block that executed the removal.
    #[arg(long)]
    executed: u64,
    /// How many blocks past the removal the others must commit while the
    /// removed node is watched.
    #[arg(long, default_value_t = 10)]
    blocks_after: u64,
    /// Longest wait, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_seconds: u64,
}

/// Watches the others commit `blocks_after` blocks past the removal; fails
/// if the removed node gets a block past it, or if one of the others still
/// holds a connection to it once that node committed height `executed + 2`
/// (its connections must be closed when `executed` commits, before
/// anything of `executed + 1` goes out; one more block allows for the poll).
pub async fn removed(args: RemovedArgs) -> Result<(), String> {
    let others = clients(&args.nodes)?;
    let removed = &clients(&args.removed)?[0];
    let removed_peer = bounded(removed.status())
        .await
        .map_err(|error| format!("the removed node {}: {error}", removed.base_url()))?
        .peer_id;
    let target = args.executed + args.blocks_after;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let mut done = vec![false; others.len()];
    let mut disconnected_by: Vec<Option<u64>> = vec![None; others.len()];
    loop {
        if let Ok(status) = bounded(removed.status()).await {
            if status.height > args.executed {
                return Err(format!(
                    "the removed node reached height {} after its removal at {}",
                    status.height, args.executed
                ));
            }
        }
        for (index, client) in others.iter().enumerate() {
            let Ok(status) = bounded(client.status()).await else {
                continue;
            };
            let connected = status.peers.contains(&removed_peer);
            if connected && status.height >= args.executed + 2 {
                return Err(format!(
                    "{} is still connected to the removed node at height {} (removal executed at {})",
                    client.base_url(),
                    status.height,
                    args.executed
                ));
            }
            if !connected && disconnected_by[index].is_none() {
                disconnected_by[index] = Some(status.height);
            }
            done[index] = status.height >= target;
        }
        if done.iter().all(|&d| d) {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the other nodes did not reach height {target} within {} s",
                args.timeout_seconds
            ));
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
    let final_height = bounded(removed.status())
        .await
        .map(|status| status.height)
        .unwrap_or(0);
    if final_height > args.executed {
        return Err(format!(
            "the removed node reached height {final_height} after its removal at {}",
            args.executed
        ));
    }
    println!(
        "removed at height {}: the removed node stayed at {final_height} while the others reached {target}; seen disconnected at heights {}",
        args.executed,
        disconnected_by
            .iter()
            .map(|h| h.map_or("-".to_string(), |h| h.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
