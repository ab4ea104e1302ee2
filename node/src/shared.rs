//! What the node's tasks share: the store (read by everyone, written only
//! by the driver), the mempool, metrics and the committed-height signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use custody_ledger::store::Store;
use tokio::sync::{mpsc, watch, Notify};

use crate::config::NodeConfig;
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use custody_consensus::core::ProposalKey;

/// Bound of the channel from the driver and the API to the network task.
pub const NETWORK_OUTBOX_MAX: usize = 4096;

/// Something for the network task to send.
#[derive(Debug)]
pub enum Outbound {
    /// A signed consensus message (gossip).
    Consensus(Vec<u8>),
    /// A batch of transactions (gossip).
    Transactions(Vec<u8>),
    /// A proposal others voted for that this node does not hold: ask the
    /// connected peers for it.
    FetchProposal(ProposalKey),
}

pub struct Shared {
    pub config: NodeConfig,
    pub chain_id: String,
    pub genesis_hash: String,
    pub peer_id: String,
    pub store: Store,
    pub mempool: Mutex<Mempool>,
    pub metrics: Metrics,
    /// Last committed height; changes after every commit.
    pub committed: watch::Sender<u64>,
    pub peers: Mutex<Vec<String>>,
    pub syncing: AtomicBool,
    /// Woken when something suggests this node is behind its peers.
    pub sync_wanted: Notify,
    pub outbound: mpsc::Sender<Outbound>,
    /// The blob store and blob fetch state (`blobs.rs`).
    pub blobs: crate::blobs::Blobs,
    /// What `/healthz` and `/readyz` look at (`health.rs`).
    pub health: crate::health::Health,
}

impl Shared {
    /// The mempool, even if a thread panicked while holding it: at worst
    /// its pending state is then off for the keys involved until a block
    /// touches them, refusing a transaction that would apply or admitting
    /// one the rules refuse when a proposal carries it.
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        match self.mempool.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn peers(&self) -> Vec<String> {
        match self.peers.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_peers(&self, peers: Vec<String>) {
        self.metrics
            .peers
            .store(peers.len() as u64, Ordering::Relaxed);
        match self.peers.lock() {
            Ok(mut guard) => *guard = peers,
            Err(poisoned) => *poisoned.into_inner() = peers,
        }
    }

    pub fn update_mempool_metrics(&self, txs: usize, bytes: usize) {
        self.metrics
            .mempool_txs
            .store(txs as u64, Ordering::Relaxed);
        self.metrics
            .mempool_bytes
            .store(bytes as u64, Ordering::Relaxed);
    }

    pub fn is_syncing(&self) -> bool {
        self.syncing.load(Ordering::Relaxed)
    }
}

pub type SharedRef = Arc<Shared>;

/// Milliseconds since the Unix epoch by the local clock, shifted by the
/// configured offset (zero except in clock-fault tests).
pub fn local_time_ms(offset_ms: i64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if offset_ms >= 0 {
        now.saturating_add(offset_ms as u64)
    } else {
        now.saturating_sub(offset_ms.unsigned_abs())
    }
}
