//! `custody-harness cluster …`: the tools behind `scripts/cluster-test.sh`, which
//! runs four nodes as containers and injects network and process faults.
//!
//! - `prepare` generates keys, genesis and configs (through the testnet
//!   generator) with the container addresses of `docker-compose.yml`.
//! - `load` drives a steady load of signed transactions through several
//!   nodes' APIs and appends every transaction a node acknowledged as
//!   committed to a file.
//! - `check` waits for the nodes to converge after a fault and checks the
//!   invariants: same block at every height on every node, every
//!   acknowledged transaction on every node, every node's chain verifies
//!   from the genesis, heights advance.
//! - `frozen` checks that no block is committed while no quorum exists.
//! - `rejoin` measures how soon a restarted validator's signature is back
//!   in the other nodes' commit certificates.
//! - `pauses` and `removed` check a governance handoff: no pause at a
//!   validator-set change, and a removed department cut off (`handoff.rs`).
//! - `flood` and `bad-input` send hostile input to one node and check that
//!   it refuses it clearly and keeps answering.
//!
//! The tools only talk to the URLs they are given (the script passes the
//! nodes' APIs published on 127.0.0.1), and every loop is bounded in time.

mod bad_input;
mod check;
mod handoff;
mod load;
mod prepare;
mod rejoin;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{Classification, DepartmentId, Nonce, PublicKey, Role};
use custody_node::client::{Client, ClientError};

/// Longest any single request to a node may take: a node cut off from the
/// network can leave a connection hanging, and the tools must move on.
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 8_000;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Generate four departments' homes for containers on SUBNET.0/24.
    #[command(
        after_help = "Example:\n  custody-harness cluster prepare --dir /tmp/cluster/net --subnet 172.28.0 --joining 1"
    )]
    Prepare(prepare::PrepareArgs),
    /// Drive signed load through several nodes, recording acknowledged commits.
    #[command(
        after_help = "Example:\n  (as scripts/cluster-test.sh runs it) custody-harness cluster load --net /tmp/cluster/net --nodes URL,URL,URL,URL --signers civil-affairs,health --acked acked.txt --stop-file stop"
    )]
    Load(load::LoadArgs),
    /// Wait for convergence after a fault and check every invariant.
    #[command(
        after_help = "Example:\n  (as scripts/cluster-test.sh runs it) custody-harness cluster check --net /tmp/cluster/net --nodes URL,URL,URL,URL --acked acked.txt --fault partition --table results.md"
    )]
    Check(check::CheckArgs),
    /// Check that no node commits a block for a while (no quorum).
    #[command(
        after_help = "Example:\n  custody-harness cluster frozen --nodes URL,URL,URL,URL --settle-seconds 4 --seconds 5"
    )]
    Frozen(check::FrozenArgs),
    /// Wait for a restarted validator's signature in the others' certificates.
    #[command(
        after_help = "Example:\n  (as scripts/cluster-test.sh runs it) custody-harness cluster rejoin --net /tmp/cluster/net --nodes URL,URL,URL --department health --heal-unix-ms 1764800000000"
    )]
    Rejoin(rejoin::RejoinArgs),
    /// Fail when consecutive blocks from a height on are further apart than a bound.
    #[command(
        after_help = "Example:\n  custody-harness cluster pauses --node URL --from-height 120 --max-gap-ms 5000"
    )]
    Pauses(handoff::PausesArgs),
    /// Check that a removed department's node is cut off from the next height.
    #[command(
        after_help = "Example:\n  (as scripts/cluster-test.sh runs it) custody-harness cluster removed --removed URL --nodes URL,URL,URL,URL --executed 240"
    )]
    Removed(handoff::RemovedArgs),
    /// Flood one node with valid transactions past its mempool limit.
    #[command(
        after_help = "Example:\n  (as scripts/cluster-test.sh runs it) custody-harness cluster flood --net /tmp/cluster/net --node URL --signer finance --report flood.json"
    )]
    Flood(bad_input::FloodArgs),
    /// Send malformed, oversized, replayed and random input to one node.
    #[command(
        after_help = "Example:\n  (as scripts/cluster-test.sh runs it) custody-harness cluster bad-input --net /tmp/cluster/net --node URL --p2p /ip4/172.28.0.10/tcp/26600 --signer civil-affairs --acked acked.txt --report bad-input.json"
    )]
    BadInput(bad_input::BadInputArgs),
}

pub fn run(command: ClusterCommand) -> Result<(), String> {
    match command {
        ClusterCommand::Prepare(args) => prepare::run(args),
        other => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|error| format!("cannot start the async runtime: {error}"))?;
            runtime.block_on(async move {
                match other {
                    ClusterCommand::Load(args) => load::run(args).await,
                    ClusterCommand::Check(args) => check::run(args).await,
                    ClusterCommand::Frozen(args) => check::frozen(args).await,
                    ClusterCommand::Rejoin(args) => rejoin::run(args).await,
                    ClusterCommand::Pauses(args) => handoff::pauses(args).await,
                    ClusterCommand::Removed(args) => handoff::removed(args).await,
                    ClusterCommand::Flood(args) => bad_input::flood(args).await,
                    ClusterCommand::BadInput(args) => bad_input::run(args).await,
                    ClusterCommand::Prepare(_) => Ok(()),
                }
            })
        }
    }
}

/// A client of `url` that signs its reads with the key file named by
/// `CUSTODY_AUDITOR_KEY` (an auditor every node's `api.auditor_keys`
/// names), when set: blocks, members and transactions answer only signed
/// callers.
pub fn client(url: &str) -> Result<Client, String> {
    let client = Client::new(url.to_string());
    match std::env::var_os("CUSTODY_AUDITOR_KEY") {
        Some(path) => Ok(client.signed_by(custody_cli::tx::read_signing_key(
            std::path::Path::new(&path),
            None,
        )?)),
        None => Ok(client),
    }
}

/// Splits `--nodes http://a,http://b` into clients (see [`client`]).
pub fn clients(nodes: &str) -> Result<Vec<Client>, String> {
    let clients: Vec<Client> = nodes
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(client)
        .collect::<Result<_, _>>()?;
    if clients.is_empty() {
        return Err("--nodes names no node".to_string());
    }
    Ok(clients)
}

/// Runs one request with [`REQUEST_TIMEOUT_MS_MAX`].
pub async fn bounded<T>(
    request: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS_MAX), request).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Unreachable {
            url: String::new(),
            message: format!("no answer within {REQUEST_TIMEOUT_MS_MAX} ms"),
        }),
    }
}

pub fn chain_id(net: &Path) -> Result<String, String> {
    Ok(genesis(net)?.chain_id)
}

pub fn genesis(net: &Path) -> Result<custody_ledger::genesis::Genesis, String> {
    let path = net.join("genesis.json");
    let bytes =
        std::fs::read(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| format!("{} is not a genesis: {error}", path.display()))
}

/// A department's first admin's signing key.
pub fn admin_key(net: &Path, department: &str) -> Result<ed25519_dalek::SigningKey, String> {
    let path: PathBuf = net.join(department).join("members").join("admin.key");
    custody_cli::tx::read_signing_key(&path, None)
}

/// The committed nonce of `key`, from the first node that answers.
pub async fn committed_nonce(
    clients: &[Client],
    key: &ed25519_dalek::SigningKey,
) -> Result<u64, String> {
    let public = hex::encode(key.verifying_key().to_bytes());
    let mut last = String::new();
    for client in clients {
        match bounded(client.get_json(&format!("/v1/members/{public}"))).await {
            Ok(member) => return Ok(member["nonce"].as_u64().unwrap_or(0)),
            Err(error) => last = error.to_string(),
        }
    }
    Err(format!("no node told the nonce of {public}: {last}"))
}

/// An admin of `department` enrolling a fresh clerk: the load's transaction.
pub fn enroll(
    key: &ed25519_dalek::SigningKey,
    department: &str,
    nonce: u64,
    chain_id: &str,
) -> Result<SignedTransaction, String> {
    let secret = custody_node::home::random_bytes::<32>();
    let member = PublicKey(
        ed25519_dalek::SigningKey::from_bytes(&secret)
            .verifying_key()
            .to_bytes(),
    );
    let body = TxBody::EnrollMember {
        member,
        department: DepartmentId::new(department.to_string()).map_err(|e| e.to_string())?,
        name: format!("load clerk {nonce}"),
        roles: vec![Role::Clerk],
        clearance: Classification::Internal,
    };
    Ok(SignedTransaction::sign(body, key, Nonce(nonce), chain_id))
}
