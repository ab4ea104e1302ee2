//! The narrow handles the node's tasks receive, in place of one object
//! shared by all: each task is handed only what it uses, so that its
//! signature tells what it may touch. The composition root (`node.rs`)
//! builds every handle; nothing else does.
//!
//! - `store_reader::StoreReader`: the ledger store, read-only. Only the
//!   node core's application (`app::LedgerApp`, owned by the driver) holds
//!   the writable store.
//! - [`ChainView`]: a `StoreReader`, the committed-height signal and the
//!   chain's identity, for the API and the tasks that follow the chain.
//! - [`MempoolHandle`]: the mempool, for admission, the application and
//!   the API's reads.
//! - [`Peers`], written by the network glue, and [`PeerView`], read by the
//!   API and readiness: the connected peers and whether block sync runs.
//! - [`SyncWanted`]: wakes block sync (the driver when it is behind, the
//!   network glue when a peer connects).
//! - [`LocalClock`]: the wall clock with the configured offset.
//! - [`Outbound`]: what the driver and gossip hand to the network task,
//!   through an `mpsc::Sender<Outbound>` of [`NETWORK_OUTBOX_MAX`].
//!
//! Metrics (`metrics::Metrics`), health (`health::Health`) and the blob
//! store (`blobs::Blobs`) are handed out as `Arc`s of their own types.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use custody_consensus::core::ProposalKey;
use custody_ledger::tx::SignedTransaction;
use tokio::sync::{watch, Notify};

use crate::mempool::Mempool;
use crate::store_reader::StoreReader;

/// Bound of the channel from the driver and gossip to the network task.
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

/// The committed chain as its readers see it: the store read-only, the
/// committed height as it moves, and which chain this is.
#[derive(Clone)]
pub struct ChainView {
    store: StoreReader,
    committed: watch::Receiver<u64>,
    chain_id: Arc<str>,
    genesis_hash: Arc<str>,
}

impl ChainView {
    /// `committed` is the receiving side of the signal the application
    /// moves after every commit.
    pub fn new(
        store: StoreReader,
        committed: watch::Receiver<u64>,
        chain_id: &str,
        genesis_hash: &str,
    ) -> ChainView {
        ChainView {
            store,
            committed,
            chain_id: Arc::from(chain_id),
            genesis_hash: Arc::from(genesis_hash),
        }
    }

    pub fn store(&self) -> &StoreReader {
        &self.store
    }

    /// The committed height, waking on every commit from now on (the
    /// current value counts as seen).
    pub fn committed(&self) -> watch::Receiver<u64> {
        let mut receiver = self.committed.clone();
        receiver.borrow_and_update();
        receiver
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// Waits until the application has finished with every block the store
    /// holds now (the mempool has dropped and re-checked what they carried),
    /// for at most `wait`; whether it has. The store is written before the
    /// mempool is rebuilt: in between, the mempool still counts a
    /// just-committed transaction as waiting, with an event hash of its own
    /// guess (block height and time unknown), and refuses a transaction
    /// built on the committed document as `stale_previous_event`.
    pub async fn settled(&self, wait: std::time::Duration) -> bool {
        let stored = match self.store.chain_info() {
            Ok(chain) => chain.height.0,
            // The caller's own read of the store reports the failure.
            Err(_) => return true,
        };
        self.settled_at(stored, wait).await
    }

    /// Waits until the application has finished with height `height`, for
    /// at most `wait`; whether it has.
    pub async fn settled_at(&self, height: u64, wait: std::time::Duration) -> bool {
        let mut receiver = self.committed.clone();
        let reached = tokio::time::timeout(wait, async {
            receiver.wait_for(|done| *done >= height).await.is_ok()
        })
        .await;
        matches!(reached, Ok(true))
    }

    /// The genesis hash, hex.
    pub fn genesis_hash(&self) -> &str {
        &self.genesis_hash
    }
}

/// The mempool, locked per use.
#[derive(Clone)]
pub struct MempoolHandle {
    mempool: Arc<Mutex<Mempool>>,
}

impl MempoolHandle {
    pub fn new(mempool: Mempool) -> MempoolHandle {
        MempoolHandle {
            mempool: Arc::new(Mutex::new(mempool)),
        }
    }

    /// The mempool, even if a thread panicked while holding it: at worst
    /// its pending state is then off for the keys involved until a block
    /// touches them, refusing a transaction that would apply or admitting
    /// one the rules refuse when a proposal carries it.
    pub fn lock(&self) -> MutexGuard<'_, Mempool> {
        match self.mempool.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The mempool, read-only: how much waits, and one waiting transaction.
/// What the API and readiness hold; admission and the application hold
/// the [`MempoolHandle`] that can change it.
#[derive(Clone)]
pub struct MempoolView {
    mempool: MempoolHandle,
}

impl MempoolView {
    /// Transactions waiting, and their bytes.
    pub fn size(&self) -> (usize, usize) {
        let mempool = self.mempool.lock();
        (mempool.len(), mempool.bytes())
    }

    /// A waiting transaction.
    pub fn pending(&self, id: &custody_ledger::types::TxId) -> Option<SignedTransaction> {
        self.mempool.lock().get(id).map(|entry| entry.tx.clone())
    }

    /// The nonce `signer`'s next transaction must carry, waiting
    /// transactions counted (see [`Mempool::next_nonce`]).
    pub fn next_nonce(
        &self,
        signer: &custody_ledger::types::PublicKey,
    ) -> Option<custody_ledger::types::Nonce> {
        self.mempool.lock().next_nonce(signer)
    }

    /// What a new event on `document` must name (see
    /// [`Mempool::document_head`]).
    pub fn document_head(
        &self,
        document: &custody_ledger::types::DocumentId,
    ) -> crate::mempool::DocumentHead {
        self.mempool.lock().document_head(document)
    }
}

impl MempoolHandle {
    /// The read-only view of this mempool.
    pub fn view(&self) -> MempoolView {
        MempoolView {
            mempool: self.clone(),
        }
    }
}

struct PeerState {
    /// This node's own libp2p identity.
    own_peer_id: String,
    connected: Mutex<Vec<String>>,
    syncing: AtomicBool,
}

/// The connected peers and the sync flag, as the network glue keeps them.
#[derive(Clone)]
pub struct Peers {
    state: Arc<PeerState>,
}

impl Peers {
    pub fn new(own_peer_id: String) -> Peers {
        Peers {
            state: Arc::new(PeerState {
                own_peer_id,
                connected: Mutex::new(Vec::new()),
                syncing: AtomicBool::new(false),
            }),
        }
    }

    /// The read side, for the API and readiness.
    pub fn view(&self) -> PeerView {
        PeerView {
            state: self.state.clone(),
        }
    }

    pub fn own_peer_id(&self) -> &str {
        &self.state.own_peer_id
    }

    pub fn set_connected(&self, peers: Vec<String>) {
        match self.state.connected.lock() {
            Ok(mut guard) => *guard = peers,
            Err(poisoned) => *poisoned.into_inner() = peers,
        }
    }

    pub fn set_syncing(&self, syncing: bool) {
        self.state.syncing.store(syncing, Ordering::Relaxed);
    }
}

/// The connected peers and the sync flag, read-only.
#[derive(Clone)]
pub struct PeerView {
    state: Arc<PeerState>,
}

impl PeerView {
    pub fn own_peer_id(&self) -> &str {
        &self.state.own_peer_id
    }

    pub fn connected(&self) -> Vec<String> {
        match self.state.connected.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn is_syncing(&self) -> bool {
        self.state.syncing.load(Ordering::Relaxed)
    }
}

/// Wakes block sync: something suggests this node is behind its peers.
#[derive(Clone, Default)]
pub struct SyncWanted {
    notify: Arc<Notify>,
}

impl SyncWanted {
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Returns when woken (a wake while nobody waits is kept for the next
    /// wait).
    pub async fn woken(&self) {
        self.notify.notified().await
    }
}

/// The local wall clock, shifted by the configured offset (zero except in
/// clock-fault tests).
#[derive(Clone, Copy, Debug)]
pub struct LocalClock {
    offset_ms: i64,
}

impl LocalClock {
    pub fn new(offset_ms: i64) -> LocalClock {
        LocalClock { offset_ms }
    }

    /// Milliseconds since the Unix epoch by this clock.
    pub fn now_ms(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if self.offset_ms >= 0 {
            now.saturating_add(self.offset_ms as u64)
        } else {
            now.saturating_sub(self.offset_ms.unsigned_abs())
        }
    }
}
