//! Transactions waiting for a block.
//!
//! Bounded in count and bytes, deduplicated by transaction id, and kept
//! consistent with the committed state: a transaction enters only if it
//! applies on top of the committed state plus the nonces already pending
//! for its signer, and after each block the rest are checked again.
//! Signatures are checked before a transaction reaches the mempool (in
//! batches for gossip), so proposals built from it skip that work.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use custody_ledger::state::{Overlay, Signatures, StateView, TxRefusal};
use custody_ledger::store::Store;
use custody_ledger::tx::SignedTransaction;
use custody_ledger::types::{Timestamp, TxId};

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

/// A transaction waiting for a block.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: TxId,
    pub tx: SignedTransaction,
    pub size_bytes: usize,
    pub arrived: Instant,
}

pub struct Mempool {
    txs_max: usize,
    bytes_max: usize,
    store: &'static Store,
    /// The committed state with every waiting transaction applied in
    /// arrival order: a newcomer is checked against it, so its nonce must
    /// follow the signer's pending ones and its document rules see the
    /// pending events. Rebuilt after each commit. `None` only if the store
    /// could not be read, in which case nothing is admitted.
    pending_state: Option<Overlay<'static, Store>>,
    /// Arrival order: sequence number to transaction.
    entries: BTreeMap<u64, Pending>,
    by_id: HashMap<TxId, u64>,
    bytes: usize,
    next_sequence: u64,
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
    /// again by the node that first took it in.
    checked_in_proposal: HashSet<TxId>,
}

/// Committed ids remembered for [`Mempool::recently_committed`].
pub const RECENT_COMMITTED_MAX: usize = 100_000;

impl Mempool {
    /// `store` lives as long as the node (the caller leaks one handle).
    pub fn new(store: &'static Store, txs_max: usize, bytes_max: usize) -> Mempool {
        Mempool {
            txs_max,
            bytes_max,
            store,
            pending_state: Overlay::new(store).ok(),
            entries: BTreeMap::new(),
            by_id: HashMap::new(),
            bytes: 0,
            next_sequence: 0,
            to_gossip: VecDeque::new(),
            recent: HashSet::new(),
            recent_order: VecDeque::new(),
            checked_in_proposal: HashSet::new(),
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
        let mut next: HashMap<custody_ledger::types::PublicKey, u64> = HashMap::new();
        transactions
            .into_iter()
            .map(|tx| {
                let signer = tx.payload.signer;
                let expected = match next.get(&signer) {
                    Some(expected) => Some(*expected),
                    None => self
                        .pending_state
                        .as_ref()
                        .and_then(|state| state.nonce(&signer).ok())
                        .map(|nonce| nonce.0.saturating_add(1)),
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

    pub fn contains(&self, id: &TxId) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn get(&self, id: &TxId) -> Option<&Pending> {
        self.by_id
            .get(id)
            .and_then(|sequence| self.entries.get(sequence))
    }

    /// Admits a transaction whose signature the caller already verified.
    /// `gossip` says whether it should be passed on to the other nodes.
    pub fn admit(
        &mut self,
        tx: SignedTransaction,
        id: TxId,
        size_bytes: usize,
        now: Timestamp,
        gossip: bool,
    ) -> Result<(), AdmitError> {
        if self.by_id.contains_key(&id) {
            return Err(AdmitError::Duplicate(id));
        }
        if self.entries.len() >= self.txs_max || self.bytes + size_bytes > self.bytes_max {
            return Err(AdmitError::Full {
                txs: self.entries.len(),
                bytes: self.bytes,
            });
        }
        if self.pending_state.is_none() {
            self.pending_state = Overlay::new(self.store).ok();
        }
        let Some(state) = self.pending_state.as_mut() else {
            return Err(AdmitError::Refused(TxRefusal::Storage(
                custody_ledger::state::ViewError("the ledger store cannot be read".to_string()),
            )));
        };
        let height = state
            .chain()
            .map_err(|error| AdmitError::Refused(TxRefusal::Storage(error)))?
            .height
            .next();
        state
            .apply_identified(&tx, id, 0, height, now, Signatures::AlreadyVerified)
            .map_err(AdmitError::Refused)?;
        self.insert(tx, id, size_bytes, gossip);
        Ok(())
    }

    fn insert(&mut self, tx: SignedTransaction, id: TxId, size_bytes: usize, gossip: bool) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.bytes += size_bytes;
        self.by_id.insert(id, sequence);
        if gossip {
            self.to_gossip.push_back(id);
        }
        self.entries.insert(
            sequence,
            Pending {
                id,
                tx,
                size_bytes,
                arrived: Instant::now(),
            },
        );
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

    /// Takes up to `count_max` admitted transactions not yet gossiped.
    pub fn take_gossip(&mut self, count_max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < count_max {
            let Some(id) = self.to_gossip.pop_front() else {
                break;
            };
            if let Some(entry) = self.get(&id) {
                out.push(entry.tx.to_bytes());
            }
        }
        out
    }

    /// Drops a waiting transaction (it no longer applies).
    pub fn remove(&mut self, id: &TxId) {
        if let Some(sequence) = self.by_id.remove(id) {
            if let Some(entry) = self.entries.remove(&sequence) {
                self.bytes -= entry.size_bytes;
            }
        }
    }

    /// Removes transactions committed in a block and returns when each
    /// arrived (for the commit-latency metric); then checks every remaining
    /// transaction again, in arrival order, against the new committed
    /// state, dropping those that no longer apply. Returns the arrivals and
    /// how many were dropped.
    pub fn on_commit(&mut self, committed: &[TxId], now: Timestamp) -> (Vec<Instant>, usize) {
        let mut arrivals = Vec::new();
        self.checked_in_proposal.clear();
        for id in committed {
            self.remember_committed(*id);
            if let Some(sequence) = self.by_id.remove(id) {
                if let Some(entry) = self.entries.remove(&sequence) {
                    self.bytes -= entry.size_bytes;
                    arrivals.push(entry.arrived);
                }
            }
        }
        self.pending_state = Overlay::new(self.store).ok();
        let height = self
            .pending_state
            .as_ref()
            .and_then(|state| state.chain().ok())
            .map(|chain| chain.height.next());
        let old = std::mem::take(&mut self.entries);
        self.by_id.clear();
        self.bytes = 0;
        let mut dropped = 0;
        for (sequence, entry) in old {
            let applies = match (self.pending_state.as_mut(), height) {
                // Signatures and carried keys passed on admission.
                (Some(state), Some(height)) => state
                    .apply_identified(
                        &entry.tx,
                        entry.id,
                        0,
                        height,
                        now,
                        Signatures::AlreadyVerifiedWithKeys,
                    )
                    .is_ok(),
                // The store cannot be read: keep everything for later.
                _ => true,
            };
            if applies {
                self.bytes += entry.size_bytes;
                self.by_id.insert(entry.id, sequence);
                self.entries.insert(sequence, entry);
            } else {
                dropped += 1;
            }
        }
        let by_id = &self.by_id;
        self.to_gossip.retain(|id| by_id.contains_key(id));
        (arrivals, dropped)
    }
}

/// A stable machine-readable code for a refusal, from its variant name
/// (`WrongNonce` becomes `wrong_nonce`).
pub fn refusal_code(refusal: &TxRefusal) -> String {
    let debug = format!("{refusal:?}");
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut code = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if index > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_ledger::genesis::Genesis;
    use custody_ledger::records::{DepartmentKeys, NewDepartment, NewMember, Parameters};
    use custody_ledger::tx::TxBody;
    use custody_ledger::types::{Classification, DepartmentId, Nonce, PublicKey, Role};
    use ed25519_dalek::SigningKey;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: &'static Store,
        admin: SigningKey,
    }

    fn public(key: &SigningKey) -> PublicKey {
        PublicKey(key.verifying_key().to_bytes())
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin = SigningKey::from_bytes(&[7u8; 32]);
        let genesis = Genesis {
            format_version: custody_ledger::types::FORMAT_VERSION,
            chain_id: "mempool-test".to_string(),
            genesis_time: Timestamp(1_000),
            parameters: Parameters::default(),
            departments: vec![NewDepartment {
                id: DepartmentId::new("civil-affairs").expect("slug"),
                name: "Civil Affairs".to_string(),
                keys: DepartmentKeys {
                    validator_key: public(&SigningKey::from_bytes(&[1u8; 32])),
                    node_key: public(&SigningKey::from_bytes(&[2u8; 32])),
                    encryption_key: public(&SigningKey::from_bytes(&[3u8; 32])),
                },
                voting_power: 1,
                admins: vec![NewMember {
                    key: public(&admin),
                    name: "admin".to_string(),
                    roles: vec![Role::Admin],
                    clearance: Classification::Secret,
                }],
            }],
        };
        let store = Store::open_or_init(&dir.path().join("ledger"), &genesis).expect("store");
        Fixture {
            _dir: dir,
            store: Box::leak(Box::new(store)),
            admin,
        }
    }

    fn enroll(fixture: &Fixture, nonce: u64, seed: u8) -> SignedTransaction {
        SignedTransaction::sign(
            TxBody::EnrollMember {
                member: public(&SigningKey::from_bytes(&[seed; 32])),
                department: DepartmentId::new("civil-affairs").expect("slug"),
                name: format!("member {seed}"),
                roles: vec![Role::Clerk],
                clearance: Classification::Internal,
            },
            &fixture.admin,
            Nonce(nonce),
            "mempool-test",
        )
    }

    fn admit(mempool: &mut Mempool, tx: SignedTransaction) -> Result<(), AdmitError> {
        let id = tx.id();
        let size = tx.to_bytes().len();
        mempool.admit(tx, id, size, Timestamp(2_000), true)
    }

    #[test]
    fn pending_nonces_chain_and_a_gap_is_refused() {
        let fixture = fixture();
        let mut mempool = Mempool::new(fixture.store, 100, 1 << 20);
        admit(&mut mempool, enroll(&fixture, 1, 10)).expect("nonce 1");
        let gap = admit(&mut mempool, enroll(&fixture, 3, 11)).expect_err("nonce 3 refused");
        assert!(
            matches!(gap, AdmitError::Refused(TxRefusal::WrongNonce { .. })),
            "{gap}"
        );
        admit(&mut mempool, enroll(&fixture, 2, 12)).expect("nonce 2 follows the pending 1");
        assert_eq!(mempool.len(), 2);
    }

    #[test]
    fn duplicate_is_refused_and_counted_once() {
        let fixture = fixture();
        let mut mempool = Mempool::new(fixture.store, 100, 1 << 20);
        let tx = enroll(&fixture, 1, 10);
        admit(&mut mempool, tx.clone()).expect("first");
        assert!(matches!(
            admit(&mut mempool, tx),
            Err(AdmitError::Duplicate(_))
        ));
        assert_eq!(mempool.len(), 1);
    }

    #[test]
    fn pending_state_sees_earlier_pending_transactions() {
        let fixture = fixture();
        let mut mempool = Mempool::new(fixture.store, 100, 1 << 20);
        admit(&mut mempool, enroll(&fixture, 1, 10)).expect("first enrolment");
        // The same member again, with the next nonce: already enrolled in
        // the pending state.
        let again = admit(&mut mempool, enroll(&fixture, 2, 10)).expect_err("refused");
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
        let fixture = fixture();
        let mut by_count = Mempool::new(fixture.store, 1, 1 << 20);
        admit(&mut by_count, enroll(&fixture, 1, 10)).expect("first");
        assert!(matches!(
            admit(&mut by_count, enroll(&fixture, 2, 11)),
            Err(AdmitError::Full { .. })
        ));
        let mut by_bytes = Mempool::new(fixture.store, 100, 10);
        assert!(matches!(
            admit(&mut by_bytes, enroll(&fixture, 1, 10)),
            Err(AdmitError::Full { .. })
        ));
    }

    #[test]
    fn gossip_takes_each_admitted_transaction_once_in_order() {
        let fixture = fixture();
        let mut mempool = Mempool::new(fixture.store, 100, 1 << 20);
        let first = enroll(&fixture, 1, 10);
        let second = enroll(&fixture, 2, 11);
        admit(&mut mempool, first.clone()).expect("first");
        admit(&mut mempool, second.clone()).expect("second");
        assert_eq!(mempool.take_gossip(1), vec![first.to_bytes()]);
        assert_eq!(mempool.take_gossip(10), vec![second.to_bytes()]);
        assert!(mempool.take_gossip(10).is_empty());
    }

    #[test]
    fn recheck_after_commit_keeps_what_still_applies() {
        let fixture = fixture();
        let mut mempool = Mempool::new(fixture.store, 100, 1 << 20);
        admit(&mut mempool, enroll(&fixture, 1, 10)).expect("first");
        admit(&mut mempool, enroll(&fixture, 2, 11)).expect("second");
        // No block was committed: both still apply, none is dropped.
        let (arrivals, dropped) = mempool.on_commit(&[], Timestamp(3_000));
        assert!(arrivals.is_empty());
        assert_eq!(dropped, 0);
        assert_eq!(mempool.len(), 2);
        let (txs, ids) = mempool.candidates(10, 1 << 20);
        assert_eq!(txs.len(), 2);
        assert_eq!(ids, txs.iter().map(|tx| tx.id()).collect::<Vec<_>>());
        assert_eq!(mempool.candidates(1, 1 << 20).0.len(), 1);
    }

    #[test]
    fn gossip_of_a_transaction_checked_in_a_proposal_is_dropped_until_the_next_commit() {
        let fixture = fixture();
        let mut mempool = Mempool::new(fixture.store, 100, 1 << 20);
        let tx = enroll(&fixture, 1, 10);
        let id = tx.id();
        assert!(!mempool.already_seen(&id));
        mempool.note_checked_in_proposal([id]);
        assert!(mempool.already_seen(&id));
        assert!(!mempool.recently_committed(&id), "checked is not committed");
        // The block was not committed with it: after the next commit its
        // gossip is checked again.
        mempool.on_commit(&[], Timestamp(3_000));
        assert!(!mempool.already_seen(&id));
        mempool.on_commit(&[id], Timestamp(3_000));
        assert!(mempool.already_seen(&id) && mempool.recently_committed(&id));
    }

    #[test]
    fn a_gossiped_nonce_must_follow_the_pending_one_or_its_batch_predecessor() {
        let fixture = fixture();
        let mut mempool = Mempool::new(fixture.store, 100, 1 << 20);
        admit(&mut mempool, enroll(&fixture, 1, 10)).expect("nonce 1");
        let batch = [
            enroll(&fixture, 2, 11),
            enroll(&fixture, 3, 12),
            enroll(&fixture, 5, 13),
            enroll(&fixture, 4, 14),
        ];
        assert_eq!(
            mempool.nonces_follow(batch.iter()),
            vec![true, true, false, true]
        );
        assert_eq!(
            mempool.nonces_follow([enroll(&fixture, 1, 15)].iter()),
            vec![false],
            "a nonce already pending does not follow"
        );
    }

    #[test]
    fn refusal_codes_are_snake_case_variant_names() {
        assert_eq!(refusal_code(&TxRefusal::BadSignature), "bad_signature");
        assert_eq!(
            refusal_code(&TxRefusal::WrongNonce {
                expected: Nonce(1),
                found: Nonce(2)
            }),
            "wrong_nonce"
        );
    }
}
