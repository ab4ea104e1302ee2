//! Transactions waiting for a block.
//!
//! Bounded in count and bytes, deduplicated by transaction id, and kept
//! consistent with the committed state: a transaction enters only if it
//! applies on top of the committed state plus the nonces already pending
//! for its signer, and after each block the rest are checked again.
//! Signatures are checked before a transaction reaches the mempool (in
//! batches for gossip), so proposals built from it skip that work.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use custody_ledger::state::{check_transaction, StateView, TxRefusal};
use custody_ledger::tx::SignedTransaction;
use custody_ledger::types::{Nonce, PublicKey, Timestamp, TxId};

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
    /// Arrival order: sequence number to transaction.
    entries: BTreeMap<u64, Pending>,
    by_id: HashMap<TxId, u64>,
    /// Highest nonce waiting per signer.
    pending_nonce: HashMap<PublicKey, Nonce>,
    bytes: usize,
    next_sequence: u64,
    /// Admitted here and not yet gossiped.
    to_gossip: VecDeque<TxId>,
}

impl Mempool {
    pub fn new(txs_max: usize, bytes_max: usize) -> Mempool {
        Mempool {
            txs_max,
            bytes_max,
            entries: BTreeMap::new(),
            by_id: HashMap::new(),
            pending_nonce: HashMap::new(),
            bytes: 0,
            next_sequence: 0,
            to_gossip: VecDeque::new(),
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
    pub fn admit<V: StateView + ?Sized>(
        &mut self,
        view: &V,
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
        let pending = self.pending_nonce.get(&tx.payload.signer).copied();
        check_transaction(view, &tx, pending, now).map_err(AdmitError::Refused)?;
        self.insert(tx, id, size_bytes, gossip);
        Ok(())
    }

    fn insert(&mut self, tx: SignedTransaction, id: TxId, size_bytes: usize, gossip: bool) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.pending_nonce
            .insert(tx.payload.signer, tx.payload.nonce);
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

    /// Up to `count_max` transactions in arrival order, for a proposal.
    pub fn candidates(&self, count_max: usize, bytes_max: usize) -> Vec<SignedTransaction> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for entry in self.entries.values() {
            if out.len() >= count_max || bytes + entry.size_bytes > bytes_max {
                break;
            }
            bytes += entry.size_bytes;
            out.push(entry.tx.clone());
        }
        out
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

    /// Removes transactions committed in a block and returns when each
    /// arrived (for the commit-latency metric); then checks every remaining
    /// transaction again against the new committed state, dropping those
    /// that no longer apply.
    pub fn on_commit<V: StateView + ?Sized>(
        &mut self,
        view: &V,
        committed: &[TxId],
        now: Timestamp,
    ) -> (Vec<Instant>, usize) {
        let mut arrivals = Vec::new();
        for id in committed {
            if let Some(sequence) = self.by_id.remove(id) {
                if let Some(entry) = self.entries.remove(&sequence) {
                    self.bytes -= entry.size_bytes;
                    arrivals.push(entry.arrived);
                }
            }
        }
        let old = std::mem::take(&mut self.entries);
        self.by_id.clear();
        self.pending_nonce.clear();
        self.bytes = 0;
        let mut dropped = 0;
        for (sequence, entry) in old {
            let pending = self.pending_nonce.get(&entry.tx.payload.signer).copied();
            match check_transaction(view, &entry.tx, pending, now) {
                Ok(()) => {
                    self.pending_nonce
                        .insert(entry.tx.payload.signer, entry.tx.payload.nonce);
                    self.bytes += entry.size_bytes;
                    self.by_id.insert(entry.id, sequence);
                    self.entries.insert(sequence, entry);
                }
                Err(_) => dropped += 1,
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
