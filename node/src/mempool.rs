//! Transactions waiting for a block.
//!
//! Bounded in count and bytes, deduplicated by transaction id, and kept
//! consistent with the committed state: a transaction enters only if it
//! applies on top of the committed state plus the transactions already
//! waiting (arrival order). Each waiting transaction is one shared entry
//! ([`PendingTx`]) holding the transaction, its canonical bytes, its id and
//! its size, so that nothing about it is encoded or hashed again on its way
//! to gossip and to a block.
//!
//! The rules run for a transaction once on admission. After a block, a
//! waiting transaction is checked again only when the block changed state
//! it reads (its signer's nonce or member record, the member it enrolls,
//! updates or revokes, its document) in a way its own check did not
//! already assume; everything else keeps its earlier verdict. Signatures
//! and carried keys are checked before a transaction reaches the mempool
//! (in batches, see `admission.rs`), so proposals built from it skip that
//! work.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::store_reader::StoreReader;
use custody_ledger::block::Block;
use custody_ledger::state::{Overlay, Signatures, StateChanges, StateView, TxRefusal, ViewError};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{DocumentId, Nonce, PublicKey, Timestamp, TxId};

/// Why a transaction was not taken into the mempool.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitError {
    #[error("transaction {0} is already waiting for a block")]
    Duplicate(TxId),
    #[error("the mempool is full ({txs} transactions, {bytes} bytes); retry later")]
    Full { txs: usize, bytes: usize },
    #[error("{0}")]
    Refused(TxRefusal),
}

/// The part of the state a transaction's rules read or write, besides what
/// only governance changes (departments, parameters, proposals).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum StateKey {
    /// A member's nonce and record.
    Member(PublicKey),
    Document(DocumentId),
    /// The evidence record of a validator at a height (one per pair).
    Evidence(PublicKey, custody_ledger::types::Height),
}

/// What a transaction reads and writes, computed once on arrival.
#[derive(Clone, Debug)]
struct Footprint {
    keys: Vec<StateKey>,
    /// A governance transaction reads and writes departments, members and
    /// parameters at large: any block or re-check near one re-checks all.
    governance: bool,
}

fn footprint(tx: &SignedTransaction) -> Footprint {
    let mut keys = vec![StateKey::Member(tx.payload.signer)];
    let body = &tx.payload.body;
    match body {
        TxBody::EnrollMember { member, .. }
        | TxBody::UpdateMember { member, .. }
        | TxBody::RevokeMember { member, .. } => keys.push(StateKey::Member(*member)),
        _ => {}
    }
    if let Some(document) = body.document() {
        keys.push(StateKey::Document(document.clone()));
    }
    if let TxBody::SubmitEvidence { first, .. } = body {
        keys.push(StateKey::Evidence(first.validator, first.height));
    }
    Footprint {
        keys,
        governance: matches!(
            body,
            TxBody::ProposeChange { .. } | TxBody::ApproveChange { .. }
        ),
    }
}

/// What a new event on a document must name (see
/// [`Mempool::document_head`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentHead {
    /// No transaction waits on it: its committed latest event.
    Settled(custody_ledger::types::EventHash),
    /// A transaction waits on it: the head is known once that commits.
    Waiting,
    /// Not registered, committed or waiting.
    Unregistered,
    /// The store cannot be read.
    Unknown,
}

/// A transaction waiting for a block: everything known about it, kept
/// together and shared (`Arc`) with whoever it is handed to.
#[derive(Debug)]
pub struct PendingTx {
    pub id: TxId,
    pub tx: SignedTransaction,
    /// Its canonical encoding, as received (or encoded once on arrival
    /// from JSON): what gossip sends and what `id` hashes.
    pub bytes: Vec<u8>,
    /// `bytes.len()`.
    pub size_bytes: usize,
    pub arrived: Instant,
    footprint: Footprint,
}

impl PendingTx {
    /// A transaction with its canonical bytes and the id hashed from them.
    pub fn new(tx: SignedTransaction, bytes: Vec<u8>, id: TxId) -> PendingTx {
        let footprint = footprint(&tx);
        PendingTx {
            id,
            size_bytes: bytes.len(),
            tx,
            bytes,
            arrived: Instant::now(),
            footprint,
        }
    }
}

/// A waiting transaction as handed out.
pub type Pending = Arc<PendingTx>;

pub struct Mempool {
    txs_max: usize,
    bytes_max: usize,
    store: StoreReader,
    /// What the waiting transactions change on top of the committed state,
    /// in arrival order: a newcomer is checked against the committed state
    /// with these changes laid over it, so its nonce must follow the
    /// signer's pending ones and its document rules see the pending events.
    /// `None` only if the store could not be read, in which case nothing is
    /// admitted.
    pending_changes: Option<StateChanges>,
    /// Arrival order: sequence number to transaction.
    entries: BTreeMap<u64, Pending>,
    by_id: HashMap<TxId, u64>,
    bytes: usize,
    next_sequence: u64,
    /// Waiting governance transactions (see [`Footprint::governance`]).
    governance_waiting: usize,
    /// How many times the rules ran for a transaction here, on admission or
    /// on a re-check after a block.
    rule_checks: u64,
    /// Admitted here and not yet gossiped.
    to_gossip: VecDeque<TxId>,
    /// Ids committed in recent blocks, oldest first, so that gossip arriving
    /// after its block is dropped before its signatures are checked.
    recent: HashSet<TxId>,
    recent_order: VecDeque<TxId>,
    /// Ids whose signatures and keys were checked in a proposal at the
    /// current height without being in this mempool (gossip is often
    /// slower than the proposal): their gossip is dropped unchecked.
    /// Emptied at each commit; what was not committed then is proposed
    /// again by the node that first took it in. Bounded by what one
    /// height's proposals carry (`HELD_PROPOSALS_MAX` blocks).
    checked_in_proposal: HashSet<TxId>,
    /// Keys of waiting transactions removed since the last block (their
    /// changes are still in the pending state): what reads them is checked
    /// again after the next block. Bounded by the transactions removed.
    stale_keys: HashSet<StateKey>,
}

/// Committed ids remembered for [`Mempool::recently_committed`].
pub const RECENT_COMMITTED_MAX: usize = 100_000;

impl Mempool {
    /// A mempool over the committed state in `store` (a handle of the
    /// node's store: sled handles are shared, cheap clones).
    pub fn new(store: StoreReader, txs_max: usize, bytes_max: usize) -> Mempool {
        let pending_changes = fresh_changes(&store);
        Mempool {
            txs_max,
            bytes_max,
            store,
            pending_changes,
            entries: BTreeMap::new(),
            by_id: HashMap::new(),
            bytes: 0,
            next_sequence: 0,
            governance_waiting: 0,
            rule_checks: 0,
            to_gossip: VecDeque::new(),
            recent: HashSet::new(),
            recent_order: VecDeque::new(),
            checked_in_proposal: HashSet::new(),
            stale_keys: HashSet::new(),
        }
    }

    /// For each transaction of a gossiped batch (in order), whether its
    /// nonce can follow: the signer's pending nonce, then the batch's own
    /// earlier ones, plus one. The others would be refused for their nonce
    /// on admission (typically their predecessors sit in a proposal not yet
    /// committed here); dropping them before their signatures are checked
    /// leaves them to be checked once, in that proposal or the next.
    pub fn nonces_follow<'a>(
        &self,
        transactions: impl IntoIterator<Item = &'a SignedTransaction>,
    ) -> Vec<bool> {
        let mut next: HashMap<PublicKey, u64> = HashMap::new();
        transactions
            .into_iter()
            .map(|tx| {
                let signer = tx.payload.signer;
                let expected = match next.get(&signer) {
                    Some(expected) => Some(*expected),
                    None => self
                        .pending_nonce(&signer)
                        .map(|nonce| nonce.saturating_add(1)),
                };
                // Without a readable state, let admission decide.
                let Some(expected) = expected else {
                    return true;
                };
                if tx.payload.nonce.0 == expected {
                    next.insert(signer, expected.saturating_add(1));
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    /// The nonce `signer`'s next transaction must carry: the last one,
    /// waiting transactions counted, plus one; `None` if the store cannot
    /// be read.
    pub fn next_nonce(&self, signer: &PublicKey) -> Option<Nonce> {
        let last = match self
            .pending_changes
            .as_ref()
            .and_then(|changes| changes.nonces.get(signer))
        {
            Some(nonce) => nonce.0,
            None => StateView::nonce(&self.store, signer).ok()?.0,
        };
        Some(Nonce(last.saturating_add(1)))
    }

    /// What a new event on `document` must name as its previous event, as
    /// admission here will check it: the committed head when no waiting
    /// transaction touches the document, else [`DocumentHead::Waiting`]: a
    /// waiting event's hash depends on the height and time of the block
    /// that will carry it, so nothing can be built on it until it commits.
    /// Read once the mempool has caught up with the store
    /// (`ChainView::settled`), else a just-committed event still counts as
    /// waiting.
    pub fn document_head(&self, document: &DocumentId) -> DocumentHead {
        let Some(changes) = self.pending_changes.as_ref() else {
            return DocumentHead::Unknown;
        };
        if changes.documents.contains_key(document) {
            return DocumentHead::Waiting;
        }
        match StateView::document(&self.store, document) {
            Ok(Some(found)) => DocumentHead::Settled(found.latest_event),
            Ok(None) => DocumentHead::Unregistered,
            Err(_) => DocumentHead::Unknown,
        }
    }

    /// The last nonce of `signer` with the waiting transactions counted;
    /// `None` if the store cannot be read.
    fn pending_nonce(&self, signer: &PublicKey) -> Option<u64> {
        let changes = self.pending_changes.as_ref()?;
        match changes.nonces.get(signer) {
            Some(nonce) => Some(nonce.0),
            None => StateView::nonce(&self.store, signer)
                .ok()
                .map(|nonce| nonce.0),
        }
    }

    /// Notes transactions checked while validating a proposal (see
    /// `checked_in_proposal`).
    pub fn note_checked_in_proposal(&mut self, ids: impl IntoIterator<Item = TxId>) {
        self.checked_in_proposal.extend(ids);
    }

    /// Whether gossip of `id` can be dropped without checking it: it is
    /// waiting here, was just committed, or sits in a proposal already
    /// checked at this height.
    pub fn already_seen(&self, id: &TxId) -> bool {
        self.by_id.contains_key(id)
            || self.recent.contains(id)
            || self.checked_in_proposal.contains(id)
    }

    /// Whether `id` was committed in one of the last blocks (up to
    /// [`RECENT_COMMITTED_MAX`] transactions). `false` does not mean it was
    /// never committed: its nonce is then refused on admission.
    pub fn recently_committed(&self, id: &TxId) -> bool {
        self.recent.contains(id)
    }

    fn remember_committed(&mut self, id: TxId) {
        if self.recent.insert(id) {
            self.recent_order.push_back(id);
        }
        while self.recent_order.len() > RECENT_COMMITTED_MAX {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many times the rules ran for a transaction here: once per
    /// admission, plus once per re-check after a block changed what it
    /// reads.
    pub fn rule_checks(&self) -> u64 {
        self.rule_checks
    }

    pub fn contains(&self, id: &TxId) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn get(&self, id: &TxId) -> Option<&Pending> {
        self.by_id
            .get(id)
            .and_then(|sequence| self.entries.get(sequence))
    }

    /// Admits a transaction whose signature (and carried keys) the caller
    /// already verified: the rules run once, against the committed state
    /// with the waiting transactions laid over it. `gossip` says whether it
    /// should be passed on to the other nodes.
    pub fn admit(
        &mut self,
        pending: PendingTx,
        now: Timestamp,
        gossip: bool,
    ) -> Result<(), AdmitError> {
        if self.by_id.contains_key(&pending.id) {
            return Err(AdmitError::Duplicate(pending.id));
        }
        if self.entries.len() >= self.txs_max || self.bytes + pending.size_bytes > self.bytes_max {
            return Err(AdmitError::Full {
                txs: self.entries.len(),
                bytes: self.bytes,
            });
        }
        if self.pending_changes.is_none() {
            self.pending_changes = fresh_changes(&self.store);
        }
        self.check(&pending, now, Signatures::AlreadyVerified)
            .map_err(AdmitError::Refused)?;
        self.insert(Arc::new(pending), gossip);
        Ok(())
    }

    /// Runs the rules for `pending` on top of the pending changes, which
    /// take its changes if it applies.
    fn check(
        &mut self,
        pending: &PendingTx,
        now: Timestamp,
        signatures: Signatures,
    ) -> Result<(), TxRefusal> {
        let Some(changes) = self.pending_changes.take() else {
            return Err(TxRefusal::Storage(ViewError(
                "the ledger store cannot be read".to_string(),
            )));
        };
        self.rule_checks += 1;
        let mut overlay = Overlay::resume(&self.store, changes);
        let height = overlay.changes().chain.height.next();
        let result = overlay.apply_identified(&pending.tx, pending.id, 0, height, now, signatures);
        let mut changes = overlay.into_changes();
        // Nothing reads these back; they would only grow.
        changes.events.clear();
        changes.tx_locations.clear();
        self.pending_changes = Some(changes);
        result
    }

    fn insert(&mut self, pending: Pending, gossip: bool) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.bytes += pending.size_bytes;
        self.by_id.insert(pending.id, sequence);
        if pending.footprint.governance {
            self.governance_waiting += 1;
        }
        if gossip {
            self.to_gossip.push_back(pending.id);
        }
        self.entries.insert(sequence, pending);
    }

    /// Takes entry `sequence` out.
    fn take(&mut self, sequence: u64) -> Option<Pending> {
        let entry = self.entries.remove(&sequence)?;
        self.by_id.remove(&entry.id);
        self.bytes -= entry.size_bytes;
        if entry.footprint.governance {
            self.governance_waiting -= 1;
        }
        Some(entry)
    }

    /// Up to `count_max` transactions in arrival order, for a proposal,
    /// with their ids.
    pub fn candidates(
        &self,
        count_max: usize,
        bytes_max: usize,
    ) -> (Vec<SignedTransaction>, Vec<TxId>) {
        let mut out = Vec::new();
        let mut ids = Vec::new();
        let mut bytes = 0usize;
        for entry in self.entries.values() {
            if out.len() >= count_max || bytes + entry.size_bytes > bytes_max {
                break;
            }
            bytes += entry.size_bytes;
            out.push(entry.tx.clone());
            ids.push(entry.id);
        }
        (out, ids)
    }

    /// Takes up to `count_max` admitted transactions not yet gossiped; their
    /// bytes are sent as they are.
    pub fn take_gossip(&mut self, count_max: usize) -> Vec<Pending> {
        let mut out = Vec::new();
        while out.len() < count_max {
            let Some(id) = self.to_gossip.pop_front() else {
                break;
            };
            if let Some(entry) = self.get(&id) {
                out.push(entry.clone());
            }
        }
        out
    }

    /// Drops a waiting transaction (it no longer applies). Its changes stay
    /// in the pending state until the next block, after which what reads
    /// its keys is checked again.
    pub fn remove(&mut self, id: &TxId) {
        if let Some(sequence) = self.by_id.get(id).copied() {
            if let Some(entry) = self.take(sequence) {
                self.stale_keys.extend(entry.footprint.keys.iter().cloned());
            }
        }
    }

    /// After a block (`changes` are what it changed): removes its
    /// transactions and re-checks the waiting transactions whose earlier
    /// check the block may have made wrong, dropping those that no longer
    /// apply. Returns when each committed transaction arrived here (for the
    /// commit-latency metric) and how many waiting ones were dropped.
    ///
    /// A state key (a member's nonce and record) the block
    /// changed keeps the earlier checks of the transactions that read it
    /// when the block's transactions on that key are exactly the first ones
    /// waiting here on it, in arrival order: the waiting ones after them
    /// were checked on top of just those changes. Otherwise every waiting
    /// transaction that reads the key, and everything sharing a key with
    /// those, is checked again in arrival order. A document the block
    /// touched is always checked again: its events' hashes cover the block's
    /// height and time, which admission only guessed. Governance (a block that
    /// changes proposals, parameters or the validator set, or a governance
    /// transaction waiting here) re-checks everything.
    pub fn on_commit(
        &mut self,
        block: &Block,
        changes: &StateChanges,
        now: Timestamp,
    ) -> (Vec<Instant>, usize) {
        self.checked_in_proposal.clear();
        let committed: Vec<TxId> = changes.tx_locations.iter().map(|(id, _)| *id).collect();
        let governance = !changes.proposals.is_empty()
            || changes.parameters.is_some()
            || changes.validator_set_changed
            || self.governance_waiting > 0
            || block.transactions.iter().any(|tx| footprint(tx).governance);
        // Per key the block changed: the arrival numbers here of the block's
        // transactions on it (`None` for one that did not wait here).
        let mut block_keys: HashMap<StateKey, Vec<Option<u64>>> = HashMap::new();
        if !governance {
            for (tx, id) in block.transactions.iter().zip(&committed) {
                let sequence = self.by_id.get(id).copied();
                let keys = match sequence.and_then(|s| self.entries.get(&s)) {
                    Some(entry) => entry.footprint.keys.clone(),
                    None => footprint(tx).keys,
                };
                for key in keys {
                    block_keys.entry(key).or_default().push(sequence);
                }
            }
        }
        // The first transactions waiting on each of those keys, as many as
        // the block has there, before the committed ones leave.
        let mut first_waiting: HashMap<&StateKey, Vec<u64>> = HashMap::new();
        if !block_keys.is_empty() {
            for (sequence, entry) in &self.entries {
                for key in &entry.footprint.keys {
                    if let Some((key, in_block)) = block_keys.get_key_value(key) {
                        let first = first_waiting.entry(key).or_default();
                        if first.len() < in_block.len() {
                            first.push(*sequence);
                        }
                    }
                }
            }
        }
        let mut dirty: HashSet<StateKey> = std::mem::take(&mut self.stale_keys);
        let mut settled: Vec<StateKey> = Vec::new();
        for (key, in_block) in &block_keys {
            // A document event's hash covers the height and time of its
            // block, which admission here only guessed: what waits on a
            // document the block touched is checked again on the real
            // events, and the guessed ones are forgotten.
            if matches!(key, StateKey::Document(_)) {
                dirty.insert(key.clone());
                continue;
            }
            let mut in_block: Vec<u64> =
                match in_block.iter().copied().collect::<Option<Vec<u64>>>() {
                    Some(sequences) => sequences,
                    None => {
                        dirty.insert(key.clone());
                        continue;
                    }
                };
            in_block.sort_unstable();
            let expected = first_waiting.get(key).map(Vec::as_slice).unwrap_or(&[]);
            if in_block == expected {
                settled.push(key.clone());
            } else {
                dirty.insert(key.clone());
            }
        }
        drop(first_waiting);
        let mut arrivals = Vec::new();
        for id in &committed {
            self.remember_committed(*id);
            if let Some(sequence) = self.by_id.get(id).copied() {
                if let Some(entry) = self.take(sequence) {
                    arrivals.push(entry.arrived);
                }
            }
        }
        let chain = match self.store.chain_info() {
            Ok(chain) => chain,
            Err(error) => {
                // Keep everything for later; nothing is admitted until the
                // store answers again.
                tracing::warn!(%error, "the ledger store cannot be read; the mempool waits");
                self.pending_changes = None;
                self.retain_gossip();
                return (arrivals, 0);
            }
        };
        let dropped = match self.pending_changes.take() {
            Some(mut pending) if !governance => {
                pending.chain = chain;
                self.pending_changes = Some(pending);
                self.recheck_touched(dirty, settled, now)
            }
            _ => self.recheck_all(now),
        };
        self.retain_gossip();
        (arrivals, dropped)
    }

    /// Re-checks the waiting transactions on `dirty` keys and everything
    /// that shares a key with them; forgets the pending changes on
    /// `settled` keys no waiting transaction reads any more (the committed
    /// state has them now). Returns how many were dropped.
    fn recheck_touched(
        &mut self,
        mut dirty: HashSet<StateKey>,
        settled: Vec<StateKey>,
        now: Timestamp,
    ) -> usize {
        let mut waiting_on: HashMap<&StateKey, Vec<u64>> = HashMap::new();
        for (sequence, entry) in &self.entries {
            for key in &entry.footprint.keys {
                waiting_on.entry(key).or_default().push(*sequence);
            }
        }
        // Close over shared keys: a re-checked transaction's changes may
        // differ, so whatever reads its keys is re-checked too.
        let mut touched: std::collections::BTreeSet<u64> = Default::default();
        let mut work: Vec<StateKey> = dirty.iter().cloned().collect();
        while let Some(key) = work.pop() {
            let Some(sequences) = waiting_on.get(&key) else {
                continue;
            };
            for sequence in sequences {
                if !touched.insert(*sequence) {
                    continue;
                }
                if let Some(entry) = self.entries.get(sequence) {
                    for other in &entry.footprint.keys {
                        if dirty.insert(other.clone()) {
                            work.push(other.clone());
                        }
                    }
                }
            }
        }
        let forget: Vec<StateKey> = settled
            .into_iter()
            .filter(|key| !waiting_on.contains_key(key))
            .chain(dirty)
            .collect();
        drop(waiting_on);
        if let Some(pending) = self.pending_changes.as_mut() {
            for key in &forget {
                match key {
                    StateKey::Member(member) => {
                        pending.nonces.remove(member);
                        pending.members.remove(member);
                    }
                    StateKey::Document(document) => {
                        pending.documents.remove(document);
                    }
                    StateKey::Evidence(validator, height) => {
                        pending.evidence.remove(&(*validator, *height));
                    }
                }
            }
        }
        let mut dropped = 0;
        for sequence in touched {
            let Some(entry) = self.entries.get(&sequence).cloned() else {
                continue;
            };
            if self.recheck(&entry, now) {
                self.take(sequence);
                dropped += 1;
            }
        }
        dropped
    }

    /// Checks every waiting transaction again, in arrival order, against
    /// the committed state. Returns how many were dropped.
    fn recheck_all(&mut self, now: Timestamp) -> usize {
        self.pending_changes = fresh_changes(&self.store);
        if self.pending_changes.is_none() {
            // The store cannot be read: keep everything for later.
            return 0;
        }
        let entries: Vec<(u64, Pending)> = self
            .entries
            .iter()
            .map(|(sequence, entry)| (*sequence, entry.clone()))
            .collect();
        let mut dropped = 0;
        for (sequence, entry) in entries {
            if self.recheck(&entry, now) {
                self.take(sequence);
                dropped += 1;
            }
        }
        dropped
    }

    /// Checks a waiting transaction again; whether it no longer applies (a
    /// store that cannot be read keeps it for later).
    fn recheck(&mut self, entry: &PendingTx, now: Timestamp) -> bool {
        // Signatures and carried keys passed on admission.
        match self.check(entry, now, Signatures::AlreadyVerifiedWithKeys) {
            Ok(()) | Err(TxRefusal::Storage(_)) => false,
            Err(_) => true,
        }
    }

    fn retain_gossip(&mut self) {
        let by_id = &self.by_id;
        self.to_gossip.retain(|id| by_id.contains_key(id));
    }
}

/// No pending changes on top of the committed state in `store`; `None` if
/// it cannot be read.
fn fresh_changes(store: &StoreReader) -> Option<StateChanges> {
    Overlay::new(store).ok().map(Overlay::into_changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_ledger::chain::{self, Committed, Origin};
    use custody_ledger::state;
    use custody_ledger::store::Store;
    use custody_ledger::testkit::{seed_key, Federation, Signer};
    use custody_ledger::types::{Classification, DepartmentId, Round};
    use proptest::prelude::*;

    const FIRST: &str = "civil-affairs";
    const SECOND: &str = "social-security";

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        federation: Federation,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let federation = Federation::new(2, "mempool-test");
        let store =
            Store::open_or_init(&dir.path().join("ledger"), &federation.genesis).expect("store");
        Fixture {
            _dir: dir,
            store,
            federation,
        }
    }

    impl Fixture {
        fn mempool(&self, txs_max: usize, bytes_max: usize) -> Mempool {
            Mempool::new(StoreReader::new(self.store.clone()), txs_max, bytes_max)
        }

        fn admin(&self, slug: &str) -> Signer {
            self.federation.admins[slug].clone()
        }

        /// Commits a block of `transactions` (certified by every validator).
        fn commit(&self, transactions: Vec<SignedTransaction>) -> (Block, StateChanges) {
            let chain = self.store.chain_info().expect("chain");
            let last_commit = if chain.height.0 == 0 {
                None
            } else {
                self.store.certificate(chain.height).expect("certificate")
            };
            let proposer = PublicKey(self.federation.validators[0].verifying_key().to_bytes());
            let block = state::build_block(
                &self.store,
                transactions,
                Timestamp(chain.last_time.0 + 1_000),
                proposer,
                last_commit,
            )
            .expect("build");
            let certificate = self.federation.certify(&block, Round(0));
            match chain::commit_certified(
                &self.store,
                &block,
                &block.to_bytes(),
                &certificate,
                Origin::Synced,
            ) {
                Ok(Committed::Stored(changes)) => (block, *changes),
                other => panic!("block not committed: {other:?}"),
            }
        }

        fn now(&self) -> Timestamp {
            Timestamp(self.store.chain_info().expect("chain").last_time.0 + 500)
        }
    }

    /// `admin` (of department `slug`) enrolls the member made from `seed`.
    fn enroll(admin: &Signer, slug: &str, nonce: u64, seed: &str) -> SignedTransaction {
        admin.sign_with_nonce(
            TxBody::EnrollMember {
                member: PublicKey(seed_key(seed).verifying_key().to_bytes()),
                department: DepartmentId::new(slug).expect("slug"),
                name: format!("member {seed}"),
                roles: vec![custody_ledger::types::Role::Clerk],
                clearance: Classification::Internal,
            },
            nonce,
        )
    }

    fn pending(tx: SignedTransaction) -> PendingTx {
        let bytes = tx.to_bytes();
        let id = SignedTransaction::id_of_encoded(&bytes);
        PendingTx::new(tx, bytes, id)
    }

    fn admit(mempool: &mut Mempool, tx: SignedTransaction) -> Result<(), AdmitError> {
        mempool.admit(pending(tx), Timestamp(u64::MAX / 2), true)
    }

    fn ids(mempool: &Mempool) -> Vec<TxId> {
        mempool.entries.values().map(|entry| entry.id).collect()
    }

    #[test]
    fn pending_nonces_chain_and_a_gap_is_refused() {
        let f = fixture();
        let admin = f.admin(FIRST);
        let mut mempool = f.mempool(100, 1 << 20);
        admit(&mut mempool, enroll(&admin, FIRST, 1, "a")).expect("nonce 1");
        let gap = admit(&mut mempool, enroll(&admin, FIRST, 3, "b")).expect_err("nonce 3 refused");
        assert!(
            matches!(gap, AdmitError::Refused(TxRefusal::WrongNonce { .. })),
            "{gap}"
        );
        admit(&mut mempool, enroll(&admin, FIRST, 2, "c")).expect("nonce 2 follows the pending 1");
        assert_eq!(mempool.len(), 2);
    }

    #[test]
    fn a_duplicate_is_refused_and_counted_once() {
        let f = fixture();
        let mut mempool = f.mempool(100, 1 << 20);
        let tx = enroll(&f.admin(FIRST), FIRST, 1, "a");
        admit(&mut mempool, tx.clone()).expect("first");
        assert!(matches!(
            admit(&mut mempool, tx),
            Err(AdmitError::Duplicate(_))
        ));
        assert_eq!(mempool.len(), 1);
    }

    #[test]
    fn a_newcomer_is_checked_against_the_waiting_transactions_changes() {
        let f = fixture();
        let admin = f.admin(FIRST);
        let mut mempool = f.mempool(100, 1 << 20);
        admit(&mut mempool, enroll(&admin, FIRST, 1, "a")).expect("first enrolment");
        // The same member again, with the next nonce: already enrolled in
        // the pending state.
        let again = admit(&mut mempool, enroll(&admin, FIRST, 2, "a")).expect_err("refused");
        assert!(
            matches!(
                again,
                AdmitError::Refused(TxRefusal::MemberAlreadyEnrolled(_))
            ),
            "{again}"
        );
    }

    #[test]
    fn count_and_byte_bounds_hold() {
        let f = fixture();
        let admin = f.admin(FIRST);
        let mut by_count = f.mempool(1, 1 << 20);
        admit(&mut by_count, enroll(&admin, FIRST, 1, "a")).expect("first");
        assert!(matches!(
            admit(&mut by_count, enroll(&admin, FIRST, 2, "b")),
            Err(AdmitError::Full { .. })
        ));
        let mut by_bytes = f.mempool(100, 10);
        assert!(matches!(
            admit(&mut by_bytes, enroll(&admin, FIRST, 1, "a")),
            Err(AdmitError::Full { .. })
        ));
    }

    #[test]
    fn gossip_takes_each_admitted_transaction_once_in_order_with_its_bytes() {
        let f = fixture();
        let admin = f.admin(FIRST);
        let mut mempool = f.mempool(100, 1 << 20);
        let first = enroll(&admin, FIRST, 1, "a");
        let second = enroll(&admin, FIRST, 2, "b");
        admit(&mut mempool, first.clone()).expect("first");
        admit(&mut mempool, second.clone()).expect("second");
        let taken = mempool.take_gossip(1);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].bytes, first.to_bytes());
        let taken = mempool.take_gossip(10);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].bytes, second.to_bytes());
        assert!(mempool.take_gossip(10).is_empty());
    }

    #[test]
    fn a_transaction_built_on_a_guessed_event_leaves_once_the_block_commits_the_real_one() {
        use custody_ledger::types::{Fixity, Format, Hash32, Retention, WrappedKey};
        let f = fixture();
        let admin = f.admin(FIRST);
        f.commit(vec![
            enroll(&admin, FIRST, 1, "a"),
            enroll(&admin, FIRST, 2, "b"),
        ]);
        let a = Signer::new(seed_key("a"), "mempool-test");
        let b = Signer::new(seed_key("b"), "mempool-test");
        let document = DocumentId::new("ca/0001").expect("document id");
        let fixity = Fixity {
            sha256: Hash32([1; 32]),
            size_bytes: 1,
        };
        f.commit(vec![a.sign_with_nonce(
            TxBody::Register {
                document: document.clone(),
                title: "Register extract".to_string(),
                record_type: "extract".to_string(),
                department: DepartmentId::new(FIRST).expect("slug"),
                created: Timestamp(0),
                classification: Classification::Internal,
                retention: Retention::Permanent,
                format: Format {
                    mime: "application/pdf".to_string(),
                    pronom: None,
                },
                plaintext: fixity,
                ciphertext: fixity,
                subject_tag: None,
                wrapped_key: WrappedKey(vec![7; 64]),
            },
            1,
        )]);
        let head = |store: &Store| {
            StateView::document(store, &document)
                .expect("store read")
                .expect("registered")
                .latest_event
        };
        let read = |signer: &Signer, nonce: u64, previous| {
            signer.sign_with_nonce(
                TxBody::RecordAccess {
                    document: document.clone(),
                    previous_event: previous,
                    purpose: "check".to_string(),
                    ciphertext_sha256: fixity.sha256,
                },
                nonce,
            )
        };
        let mut mempool = f.mempool(100, 1 << 20);
        let first = read(&a, 2, head(&f.store));
        admit(&mut mempool, first.clone()).expect("first read");
        assert_eq!(mempool.document_head(&document), DocumentHead::Waiting);
        let guessed = mempool
            .pending_changes
            .as_ref()
            .and_then(|changes| changes.documents.get(&document))
            .map(|pending| pending.latest_event)
            .expect("the first read's guessed event");
        admit(&mut mempool, read(&b, 1, guessed)).expect("built on the guess");
        let (block, changes) = f.commit(vec![first]);
        let (_, dropped) = mempool.on_commit(&block, &changes, f.now());
        let real = head(&f.store);
        assert_ne!(
            real, guessed,
            "the block's height and time differ from the guess"
        );
        assert_eq!(dropped, 1, "the read built on the guess can never apply");
        assert!(ids(&mempool).is_empty());
        assert_eq!(
            mempool.document_head(&document),
            DocumentHead::Settled(real)
        );
        admit(&mut mempool, read(&b, 1, real)).expect("built on the committed event");
    }

    #[test]
    fn a_waiting_transaction_not_touched_by_a_block_is_not_checked_again() {
        let f = fixture();
        let mut mempool = f.mempool(100, 1 << 20);
        let waiting = enroll(&f.admin(FIRST), FIRST, 1, "a");
        admit(&mut mempool, waiting.clone()).expect("admitted");
        let checks = mempool.rule_checks();
        // Another department's admin enrolls someone else, through another
        // node: the block touches neither the waiting signer nor its member.
        let (block, changes) = f.commit(vec![enroll(&f.admin(SECOND), SECOND, 1, "b")]);
        let (arrivals, dropped) = mempool.on_commit(&block, &changes, f.now());
        assert!(arrivals.is_empty());
        assert_eq!(dropped, 0);
        assert_eq!(mempool.rule_checks(), checks, "no rule ran again");
        assert_eq!(ids(&mempool), vec![waiting.id()]);
        // Its earlier check stands: it still goes into the next block.
        f.commit(mempool.candidates(10, 1 << 20).0);
    }

    #[test]
    fn waiting_transactions_after_their_signers_committed_ones_are_not_checked_again() {
        let f = fixture();
        let admin = f.admin(FIRST);
        let mut mempool = f.mempool(100, 1 << 20);
        let txs: Vec<_> = (1..=3)
            .map(|nonce| enroll(&admin, FIRST, nonce, &format!("m{nonce}")))
            .collect();
        for tx in &txs {
            admit(&mut mempool, tx.clone()).expect("admitted");
        }
        let checks = mempool.rule_checks();
        let (block, changes) = f.commit(txs[..2].to_vec());
        let (arrivals, dropped) = mempool.on_commit(&block, &changes, f.now());
        assert_eq!((arrivals.len(), dropped), (2, 0));
        assert_eq!(mempool.rule_checks(), checks, "no rule ran again");
        assert_eq!(ids(&mempool), vec![txs[2].id()]);
        // The pending nonce still follows the committed ones.
        admit(&mut mempool, enroll(&admin, FIRST, 4, "m4")).expect("nonce 4 follows");
    }

    #[test]
    fn a_waiting_transaction_whose_nonce_was_taken_by_a_block_leaves() {
        let f = fixture();
        let admin = f.admin(FIRST);
        let mut mempool = f.mempool(100, 1 << 20);
        admit(&mut mempool, enroll(&admin, FIRST, 1, "a")).expect("admitted");
        // Another transaction of the same signer with the same nonce,
        // committed through another node.
        let (block, changes) = f.commit(vec![enroll(&admin, FIRST, 1, "b")]);
        let (_, dropped) = mempool.on_commit(&block, &changes, f.now());
        assert_eq!(dropped, 1);
        assert!(mempool.is_empty());
        admit(&mut mempool, enroll(&admin, FIRST, 2, "c")).expect("nonce 2 follows the block");
    }

    #[test]
    fn a_waiting_transaction_whose_member_a_block_enrolled_leaves() {
        let f = fixture();
        let mut mempool = f.mempool(100, 1 << 20);
        admit(&mut mempool, enroll(&f.admin(FIRST), FIRST, 1, "a")).expect("admitted");
        // The other department enrolled the same member first.
        let (block, changes) = f.commit(vec![enroll(&f.admin(SECOND), SECOND, 1, "a")]);
        let (_, dropped) = mempool.on_commit(&block, &changes, f.now());
        assert_eq!(dropped, 1);
        assert!(mempool.is_empty());
    }

    #[test]
    fn a_transaction_removed_from_the_mempool_leaves_no_pending_change_after_the_next_block() {
        let f = fixture();
        let admin = f.admin(FIRST);
        let mut mempool = f.mempool(100, 1 << 20);
        let removed = enroll(&admin, FIRST, 1, "a");
        admit(&mut mempool, removed.clone()).expect("admitted");
        mempool.remove(&removed.id());
        let (block, changes) = f.commit(Vec::new());
        mempool.on_commit(&block, &changes, f.now());
        // Neither its nonce nor its member is taken any more.
        admit(&mut mempool, removed).expect("admitted again");
    }

    #[test]
    fn gossip_of_a_transaction_checked_in_a_proposal_is_dropped_until_the_next_commit() {
        let f = fixture();
        let mut mempool = f.mempool(100, 1 << 20);
        let tx = enroll(&f.admin(FIRST), FIRST, 1, "a");
        let id = tx.id();
        assert!(!mempool.already_seen(&id));
        mempool.note_checked_in_proposal([id]);
        assert!(mempool.already_seen(&id));
        assert!(!mempool.recently_committed(&id), "checked is not committed");
        // The block was not committed with it: after the next commit its
        // gossip is checked again.
        let (block, changes) = f.commit(Vec::new());
        mempool.on_commit(&block, &changes, f.now());
        assert!(!mempool.already_seen(&id));
        let (block, changes) = f.commit(vec![tx]);
        mempool.on_commit(&block, &changes, f.now());
        assert!(mempool.already_seen(&id) && mempool.recently_committed(&id));
    }

    #[test]
    fn a_gossiped_nonce_must_follow_the_pending_one_or_its_batch_predecessor() {
        let f = fixture();
        let admin = f.admin(FIRST);
        let mut mempool = f.mempool(100, 1 << 20);
        admit(&mut mempool, enroll(&admin, FIRST, 1, "a")).expect("nonce 1");
        let batch = [
            enroll(&admin, FIRST, 2, "b"),
            enroll(&admin, FIRST, 3, "c"),
            enroll(&admin, FIRST, 5, "d"),
            enroll(&admin, FIRST, 4, "e"),
        ];
        assert_eq!(
            mempool.nonces_follow(batch.iter()),
            vec![true, true, false, true]
        );
        assert_eq!(
            mempool.nonces_follow([enroll(&admin, FIRST, 1, "f")].iter()),
            vec![false],
            "a nonce already pending does not follow"
        );
    }

    /// One step of the property test below.
    #[derive(Clone, Debug)]
    enum Step {
        /// Admin `admin` (0 or 1) submits its next nonce (or `nonce_skew`
        /// off it), enrolling member `member` of a small pool.
        Submit {
            admin: usize,
            member: u8,
            nonce_skew: i8,
        },
        /// A block with the first `waiting` waiting transactions, each
        /// kept only if `keep` says so, plus `foreign` transactions from
        /// another node.
        Block {
            waiting: usize,
            keep: Vec<bool>,
            foreign: Vec<(usize, u8)>,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0usize..2, 0u8..6, prop_oneof![4 => Just(0i8), 1 => -1i8..=1])
                .prop_map(|(admin, member, nonce_skew)| Step::Submit { admin, member, nonce_skew }),
            1 => (0usize..6, proptest::collection::vec(any::<bool>(), 6), proptest::collection::vec((0usize..2, 0u8..6), 0..2))
                .prop_map(|(waiting, keep, foreign)| Step::Block { waiting, keep, foreign }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// After every block, the transactions still waiting are exactly
        /// those that a check of every one of them, in arrival order, on
        /// the new committed state would keep.
        #[test]
        fn after_a_block_the_waiting_transactions_are_those_a_full_recheck_keeps(
            steps in proptest::collection::vec(step(), 1..24)
        ) {
            let f = fixture();
            let slugs = [FIRST, SECOND];
            let mut mempool = f.mempool(1_000, 1 << 22);
            for step in steps {
                match step {
                    Step::Submit { admin, member, nonce_skew } => {
                        let signer = f.admin(slugs[admin]);
                        let key = PublicKey(signer.key.verifying_key().to_bytes());
                        let next = mempool.pending_nonce(&key).expect("nonce") + 1;
                        let nonce = next.saturating_add_signed(i64::from(nonce_skew)).max(1);
                        let tx = enroll(&signer, slugs[admin], nonce, &format!("pool-{member}"));
                        let _ = mempool.admit(pending(tx), f.now(), true);
                    }
                    Step::Block { waiting, keep, foreign } => {
                        // What the block may carry must apply on the
                        // committed state: check it as a proposer would.
                        let mut candidates: Vec<SignedTransaction> = mempool
                            .entries
                            .values()
                            .take(waiting)
                            .zip(&keep)
                            .filter(|(_, keep)| **keep)
                            .map(|(entry, _)| entry.tx.clone())
                            .collect();
                        for (admin, member) in foreign {
                            let signer = f.admin(slugs[admin]);
                            let key = PublicKey(signer.key.verifying_key().to_bytes());
                            let committed = StateView::nonce(&f.store, &key).expect("nonce").0;
                            candidates.push(enroll(&signer, slugs[admin], committed + 1, &format!("pool-{member}")));
                        }
                        let (chosen, _) = state::select_transactions(&f.store, candidates, f.now())
                            .expect("select");
                        let before: Vec<Pending> = mempool.entries.values().cloned().collect();
                        let (block, changes) = f.commit(chosen);
                        mempool.on_commit(&block, &changes, f.now());
                        let committed: HashSet<TxId> =
                            changes.tx_locations.iter().map(|(id, _)| *id).collect();
                        let mut full = f.mempool(1_000, 1 << 22);
                        for entry in before.iter().filter(|entry| !committed.contains(&entry.id)) {
                            let _ = full.admit(pending(entry.tx.clone()), f.now(), false);
                        }
                        prop_assert_eq!(ids(&mempool), ids(&full));
                    }
                }
            }
        }
    }
}
