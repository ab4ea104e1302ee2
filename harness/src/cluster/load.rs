//! `custody-harness cluster load`: steady signed load through several nodes.
//!
//! One worker per signer (a department's first admin enrolling fresh
//! clerks). Each transaction is submitted with `?wait=true` to the next
//! node in turn; when a node is down, cut off or answers `pending`, the
//! very same signed bytes go to the next node, so a nonce is never used
//! twice for different content. Every answer `committed` (or
//! `already_committed` for a resubmission) is appended to the acked file
//! as `tx_id<TAB>node<TAB>height`, flushed before the next transaction.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use custody_node::client::{Client, ClientError};

use super::{bounded, clients};

/// How long a node may hold one submission before the worker tries the next node.
const SUBMIT_WAIT_MS: u64 = 4_000;
/// Pause after a node failed to answer, so a dead node is not hammered.
const RETRY_PAUSE_MS: u64 = 250;

#[derive(Args)]
pub struct LoadArgs {
    /// Directory `custody-harness cluster prepare` wrote (keys, genesis).
    #[arg(long)]
    net: PathBuf,
    /// Comma-separated node API URLs to submit through.
    #[arg(long)]
    nodes: String,
    /// Departments whose first admins sign the load, comma-separated.
    #[arg(long)]
    signers: String,
    /// File the acknowledged-committed transactions are appended to.
    #[arg(long)]
    acked: PathBuf,
    /// The load stops when this file appears.
    #[arg(long)]
    stop_file: PathBuf,
    /// The load stops after this many seconds in any case.
    #[arg(long, default_value_t = 600)]
    seconds_max: u64,
}

struct Shared {
    clients: Vec<Client>,
    chain_id: String,
    acked: Mutex<std::fs::File>,
    stop: AtomicBool,
    acknowledged: AtomicU64,
    retries: AtomicU64,
}

pub async fn run(args: LoadArgs) -> Result<(), String> {
    let clients = clients(&args.nodes)?;
    let chain_id = super::chain_id(&args.net)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.acked)
        .map_err(|error| format!("cannot open {}: {error}", args.acked.display()))?;
    let shared = Arc::new(Shared {
        clients,
        chain_id,
        acked: Mutex::new(file),
        stop: AtomicBool::new(false),
        acknowledged: AtomicU64::new(0),
        retries: AtomicU64::new(0),
    });
    let mut workers = tokio::task::JoinSet::new();
    for (index, department) in args
        .signers
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .enumerate()
    {
        let key = super::admin_key(&args.net, department)?;
        let shared = shared.clone();
        let department = department.to_string();
        workers.spawn(async move { worker(index, key, department, shared).await });
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds_max);
    let mut last_report = Instant::now();
    while Instant::now() < deadline && !args.stop_file.exists() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if last_report.elapsed() >= Duration::from_secs(15) {
            last_report = Instant::now();
            eprintln!(
                "load: {} acknowledged, {} retries after {:.0} s",
                shared.acknowledged.load(Ordering::Relaxed),
                shared.retries.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            );
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    while let Some(result) = workers.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(error),
            Err(error) => failures.push(error.to_string()),
        }
    }
    eprintln!(
        "load: stopped after {:.0} s; {} acknowledged, {} retries",
        started.elapsed().as_secs_f64(),
        shared.acknowledged.load(Ordering::Relaxed),
        shared.retries.load(Ordering::Relaxed)
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

async fn worker(
    index: usize,
    key: ed25519_dalek::SigningKey,
    department: String,
    shared: Arc<Shared>,
) -> Result<(), String> {
    let count = shared.clients.len();
    let mut target = index % count;
    // The committed nonce, read once at the start (retrying while no node
    // answers yet); from then on the worker is the signer's only user.
    let mut nonce = loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match super::committed_nonce(&shared.clients, &key).await {
            Ok(nonce) => break nonce + 1,
            Err(_) => tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await,
        }
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let tx = super::enroll(&key, &department, nonce, &shared.chain_id)?;
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let node = target % count;
            target += 1;
            let client = &shared.clients[node];
            let answer =
                bounded(client.submit(&tx, Some(Duration::from_millis(SUBMIT_WAIT_MS)))).await;
            let height = match answer {
                Ok(answer) if answer.status == "committed" => {
                    Some(answer.inclusion.map(|i| i.height.0).unwrap_or(0))
                }
                Err(ClientError::Refused { code, .. }) if code == "already_committed" => Some(0),
                Ok(_) | Err(_) => None,
            };
            match height {
                Some(height) => {
                    let line = format!("{}\t{node}\t{height}\n", tx.id().to_hex());
                    let mut file = match shared.acked.lock() {
                        Ok(file) => file,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    file.write_all(line.as_bytes())
                        .and_then(|()| file.flush())
                        .map_err(|error| format!("cannot write the acked file: {error}"))?;
                    shared.acknowledged.fetch_add(1, Ordering::Relaxed);
                    nonce += 1;
                    break;
                }
                None => {
                    shared.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
                }
            }
        }
    }
    Ok(())
}
