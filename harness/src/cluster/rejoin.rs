//! `custody-harness cluster rejoin`: after a validator was cut off and restarted,
//! measures how long it takes for its signature to be back in the commit
//! certificates of the other nodes.
//!
//! A certificate holds the precommits its node had when the quorum was
//! reached, so a healthy validator whose vote happens to arrive last is
//! missing from some certificates. The tool therefore watches every given
//! node (the restarted one excluded: its own certificates always carry its
//! own vote) and counts the first certificate, on any of them, of a block
//! committed after the heal that carries the validator's signature.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use custody_ledger::types::PublicKey;

use custody_node::client::Client;

use super::{bounded, clients};

/// How often the nodes are asked for new blocks: bounds the error of the
/// measured time (one interval, plus one request).
const POLL_INTERVAL_MS: u64 = 100;

#[derive(Args)]
pub struct RejoinArgs {
    /// Directory `custody-harness cluster prepare` wrote (the genesis).
    #[arg(long)]
    net: PathBuf,
    /// Comma-separated API URLs of the nodes whose certificates are read
    /// (not the restarted node's).
    #[arg(long)]
    nodes: String,
    /// Department id of the restarted validator.
    #[arg(long)]
    department: String,
    /// The heal: when the restarted node was started again (Unix ms).
    #[arg(long)]
    heal_unix_ms: u64,
    /// The run fails when the signature is back later than this.
    #[arg(long, default_value_t = 5)]
    within_seconds: u64,
    /// Longest wait for the signature, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_seconds: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// The validator key of `department`: in the state at the head of the
/// first node that knows the department (governance may have added it or
/// rotated its keys since the genesis), else in the genesis.
async fn validator_key(args: &RejoinArgs, clients: &[Client]) -> Result<PublicKey, String> {
    for client in clients {
        let path = format!("/v1/departments/{}", args.department);
        if let Ok(department) = bounded(client.get_json(&path)).await {
            if let Some(key) = department["keys"]["validator_key"].as_str() {
                return PublicKey::from_hex(key).map_err(|error| {
                    format!(
                        "{} answered a validator key `{key}` that is not one: {error}",
                        client.base_url()
                    )
                });
            }
        }
    }
    let genesis = super::genesis(&args.net)?;
    genesis
        .departments
        .iter()
        .find(|department| department.id.as_str() == args.department)
        .map(|department| department.keys.validator_key)
        .ok_or_else(|| {
            format!(
                "department `{}` is not in the genesis of {}",
                args.department,
                args.net.display()
            )
        })
}

pub async fn run(args: RejoinArgs) -> Result<(), String> {
    let clients = clients(&args.nodes)?;
    let key = validator_key(&args, &clients).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_seconds);
    // Per node, the next height to read. Blocks already committed when the
    // tool starts were decided before the heal (or at most moments after)
    // and are read too: their time stamp tells.
    let mut next: HashMap<usize, u64> = HashMap::new();
    let mut read = 0u64;
    while Instant::now() < deadline {
        for (index, client) in clients.iter().enumerate() {
            let Ok(status) = bounded(client.status()).await else {
                continue;
            };
            let from = *next.entry(index).or_insert(status.height.max(1));
            for height in from..=status.height {
                let Ok(answer) = bounded(client.block(height)).await else {
                    break;
                };
                next.insert(index, height + 1);
                read += 1;
                if answer.block.header.time.0 < args.heal_unix_ms {
                    continue;
                }
                let signed = answer.certificate.as_ref().is_some_and(|certificate| {
                    certificate
                        .signatures
                        .iter()
                        .any(|signature| signature.validator == key)
                });
                if !signed {
                    continue;
                }
                let seconds = unix_ms().saturating_sub(args.heal_unix_ms) as f64 / 1000.0;
                println!(
                    "{}'s signature is back: certificate of height {height} at {}, {seconds:.1} s after the heal",
                    args.department,
                    client.base_url()
                );
                if seconds > args.within_seconds as f64 {
                    return Err(format!(
                        "{}'s signature came back {seconds:.1} s after the heal, later than {} s",
                        args.department, args.within_seconds
                    ));
                }
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
    Err(format!(
        "no certificate of a block committed after the heal carries {}'s signature within {} s ({read} blocks read)",
        args.department, args.timeout_seconds
    ))
}
