//! The one way a transaction enters this node, whether a client submits it
//! through the API or a peer gossips it, and the way it leaves by gossip.
//!
//! [`Admission::admit`] takes transactions as they arrive (canonical bytes, or a
//! transaction decoded from JSON), and for each, once: hashes its bytes to
//! its id, drops what this node already knows, decodes it, checks its
//! signature (one ed25519 batch for all of them), runs the rules and admits
//! it to the mempool with its bytes and id kept together. The API and the
//! gossip handler differ only in [`Source`]: what a client submitted is
//! checked against the committed transactions and gossiped on; what a peer
//! gossiped is dropped unchecked when it is already known here or its nonce
//! cannot follow yet, and is not gossiped again.
//!
//! [`gossip_out`] passes admitted transactions to the network as the bytes
//! they arrived as: nothing is encoded again.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use custody_ledger::encoding::DecodeError;
use custody_ledger::store::StoreError;
use custody_ledger::tx::SignedTransaction;
use custody_ledger::types::{Nonce, Timestamp, TxId};

use tokio::sync::mpsc;

use crate::handles::{LocalClock, MempoolHandle, Outbound};
use crate::mempool::{AdmitError, Pending, PendingTx};
use crate::metrics::Metrics;
use crate::store_reader::StoreReader;

/// Where transactions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A client of this node's API: checked against the committed
    /// transactions, counted when refused, and gossiped once admitted.
    Client,
    /// A peer's gossip: dropped before any check when already seen here,
    /// and not gossiped again.
    Peer,
}

/// A transaction as it arrives.
#[derive(Debug)]
pub enum Incoming {
    /// Its canonical encoding (a binary API body, gossip).
    Encoded(Vec<u8>),
    /// Decoded from JSON: encoded here, once.
    Decoded(Box<SignedTransaction>),
}

/// Why a transaction was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not a canonically encoded transaction: {0}")]
    Malformed(DecodeError),
    #[error("transaction {0} is already committed")]
    AlreadyCommitted(TxId),
    #[error("transaction {0}: the signature does not match the signer's key and the transaction's content")]
    BadSignature(TxId),
    /// The mempool's answer (a transaction already waiting is
    /// [`AdmitError::Duplicate`]).
    #[error("{1}")]
    Mempool(TxId, AdmitError),
    #[error("the node's store could not be read: {1}")]
    Store(TxId, StoreError),
    /// Gossip already held, just committed or checked in a proposal here,
    /// or whose nonce cannot follow yet: dropped before its signature is
    /// checked (see `Mempool::nonces_follow`).
    #[error("transaction {0} is already known here or cannot follow yet")]
    Skipped(TxId),
}

/// One transaction on its way in: what is known of it so far.
struct Arrival {
    id: TxId,
    bytes: Vec<u8>,
    tx: Option<SignedTransaction>,
}

/// The way in: what admission reads (the committed state, the clock) and
/// writes (the mempool, the refusal count).
#[derive(Clone)]
pub struct Admission {
    store: StoreReader,
    mempool: MempoolHandle,
    metrics: Arc<Metrics>,
    clock: LocalClock,
}

impl Admission {
    pub fn new(
        store: StoreReader,
        mempool: MempoolHandle,
        metrics: Arc<Metrics>,
        clock: LocalClock,
    ) -> Admission {
        Admission {
            store,
            mempool,
            metrics,
            clock,
        }
    }

    /// Admits `incoming` (in order) from `source`; one result per
    /// transaction, in the same order: its id when it is waiting in the
    /// mempool now (also when it already was: see [`Refusal::Mempool`] for
    /// a duplicate).
    ///
    /// Blocking (store reads, signature checks): call it off the async
    /// runtime's threads.
    pub fn admit(&self, incoming: Vec<Incoming>, source: Source) -> Vec<Result<TxId, Refusal>> {
        admit(self, incoming, source)
    }

    /// The nonce the next transaction of `signer` must carry to be admitted
    /// here: its last nonce, waiting transactions counted, plus one; `None`
    /// if the store cannot be read. For the node's own signed
    /// transactions (read attestations), whose signer is this node alone.
    pub fn next_nonce(&self, signer: &custody_ledger::types::PublicKey) -> Option<Nonce> {
        self.mempool.lock().next_nonce(signer)
    }

    /// Takes a gossiped batch of transactions (the postcard encoding of a
    /// list of canonical transaction encodings) into the mempool.
    pub fn admit_gossiped(&self, batch: &[u8]) {
        admit_gossiped(self, batch)
    }
}

fn admit(
    admission: &Admission,
    incoming: Vec<Incoming>,
    source: Source,
) -> Vec<Result<TxId, Refusal>> {
    // Hash each encoding once: the id is the hash of these very bytes.
    let mut results: Vec<Result<Arrival, Refusal>> = incoming
        .into_iter()
        .map(|incoming| {
            Ok(match incoming {
                Incoming::Encoded(bytes) => Arrival {
                    id: SignedTransaction::id_of_encoded(&bytes),
                    bytes,
                    tx: None,
                },
                Incoming::Decoded(tx) => {
                    let bytes = tx.to_bytes();
                    Arrival {
                        id: SignedTransaction::id_of_encoded(&bytes),
                        bytes,
                        tx: Some(*tx),
                    }
                }
            })
        })
        .collect();
    // What this node already knows is dropped before it is decoded.
    {
        let mempool = admission.mempool.lock();
        for result in &mut results {
            let Ok(arrival) = result else { continue };
            let id = arrival.id;
            match source {
                Source::Peer if mempool.already_seen(&id) => *result = Err(Refusal::Skipped(id)),
                Source::Client if mempool.recently_committed(&id) => {
                    *result = Err(Refusal::AlreadyCommitted(id))
                }
                Source::Client if mempool.contains(&id) => {
                    *result = Err(Refusal::Mempool(id, AdmitError::Duplicate(id)))
                }
                _ => {}
            }
        }
    }
    for result in &mut results {
        let Ok(arrival) = result else { continue };
        if arrival.tx.is_none() {
            match SignedTransaction::from_bytes(&arrival.bytes) {
                Ok(tx) => arrival.tx = Some(tx),
                Err(error) => *result = Err(Refusal::Malformed(error)),
            }
        }
    }
    match source {
        Source::Peer => {
            let mempool = admission.mempool.lock();
            let follows = mempool.nonces_follow(results.iter().filter_map(|result| match result {
                Ok(Arrival { tx: Some(tx), .. }) => Some(tx),
                _ => None,
            }));
            let mut follows = follows.into_iter();
            for result in &mut results {
                let Ok(arrival) = result else { continue };
                if !follows.next().unwrap_or(true) {
                    *result = Err(Refusal::Skipped(arrival.id));
                }
            }
        }
        Source::Client => {
            for result in &mut results {
                let Ok(Arrival {
                    id, tx: Some(tx), ..
                }) = result
                else {
                    continue;
                };
                match committed(admission, tx, id) {
                    Ok(false) => {}
                    Ok(true) => *result = Err(Refusal::AlreadyCommitted(*id)),
                    Err(error) => *result = Err(Refusal::Store(*id, error)),
                }
            }
        }
    }
    // Every signature left, in one batch.
    let bad = custody_ledger::tx::verify_batch(results.iter().filter_map(|result| match result {
        Ok(Arrival { tx: Some(tx), .. }) => Some(tx),
        _ => None,
    }));
    if !bad.is_empty() {
        let mut index = 0usize;
        for result in &mut results {
            let Ok(arrival) = result else { continue };
            if bad.contains(&index) {
                *result = Err(Refusal::BadSignature(arrival.id));
            }
            index += 1;
        }
    }
    let now = Timestamp(admission.clock.now_ms());
    let gossip = source == Source::Client;
    let outcome: Vec<Result<TxId, Refusal>> = {
        let mut mempool = admission.mempool.lock();
        let outcome = results
            .into_iter()
            .map(|result| {
                let Arrival { id, bytes, tx } = result?;
                let Some(tx) = tx else {
                    // Decoded above, or refused there.
                    return Err(Refusal::Skipped(id));
                };
                mempool
                    .admit(PendingTx::new(tx, bytes, id), now, gossip)
                    .map(|()| id)
                    .map_err(|error| Refusal::Mempool(id, error))
            })
            .collect();
        admission
            .metrics
            .set_mempool_size(mempool.len(), mempool.bytes());
        outcome
    };
    if source == Source::Client {
        let refused = outcome
            .iter()
            .filter(|result| {
                matches!(
                    result,
                    Err(Refusal::BadSignature(_) | Refusal::Mempool(_, AdmitError::Refused(_)))
                )
            })
            .count();
        admission
            .metrics
            .refused_txs_total
            .fetch_add(refused as u64, Ordering::Relaxed);
    }
    outcome
}

/// Whether `tx` (with id `id`) is already committed. A nonce above the
/// signer's committed one cannot be, which spares the index lookup for
/// every new transaction.
fn committed(admission: &Admission, tx: &SignedTransaction, id: &TxId) -> Result<bool, StoreError> {
    if tx.payload.nonce > admission.store.nonce(&tx.payload.signer)? {
        return Ok(false);
    }
    admission.store.has_transaction(id)
}

fn admit_gossiped(admission: &Admission, batch: &[u8]) {
    let encoded: Vec<Vec<u8>> = match postcard::from_bytes(batch) {
        Ok(encoded) => encoded,
        Err(error) => {
            tracing::debug!(%error, "undecodable transaction batch dropped");
            return;
        }
    };
    let incoming = encoded.into_iter().map(Incoming::Encoded).collect();
    for result in admit(admission, incoming, Source::Peer) {
        match result {
            Ok(_)
            | Err(Refusal::Skipped(_))
            | Err(Refusal::Mempool(_, AdmitError::Duplicate(_))) => {}
            Err(error) => tracing::debug!(%error, "gossiped transaction not admitted"),
        }
    }
}

/// The gossip form of `transactions`: the postcard encoding of the list of
/// their canonical encodings, copied as they are.
pub fn gossip_batch(transactions: &[Pending]) -> Result<Vec<u8>, postcard::Error> {
    let encodings: Vec<&[u8]> = transactions
        .iter()
        .map(|pending| pending.bytes.as_slice())
        .collect();
    postcard::to_allocvec(&encodings)
}

/// Passes one batch of at most `batch_txs_max` admitted transactions to
/// the network; whether there was one (call again until there is none).
pub fn gossip_out(
    mempool: &MempoolHandle,
    outbound: &mpsc::Sender<Outbound>,
    batch_txs_max: usize,
) -> bool {
    let batch = mempool.lock().take_gossip(batch_txs_max);
    if batch.is_empty() {
        return false;
    }
    match gossip_batch(&batch) {
        Ok(bytes) => {
            if outbound.try_send(Outbound::Transactions(bytes)).is_err() {
                tracing::debug!("transaction gossip dropped (network busy)");
            }
            true
        }
        Err(error) => {
            tracing::error!(%error, "cannot encode transaction batch");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_ledger::testkit::{seed_key, Federation};
    use custody_ledger::tx::TxBody;
    use custody_ledger::types::{Classification, DepartmentId, PublicKey, Role};

    #[test]
    fn a_gossip_batch_decodes_as_the_list_of_its_transactions_encodings() {
        let federation = Federation::new(1, "admission-test");
        let admin = &federation.admins["civil-affairs"];
        let pending: Vec<Pending> = (1..=3)
            .map(|nonce| {
                let tx = admin.sign_with_nonce(
                    TxBody::EnrollMember {
                        member: PublicKey(
                            seed_key(&format!("m{nonce}")).verifying_key().to_bytes(),
                        ),
                        department: DepartmentId::new("civil-affairs").expect("slug"),
                        name: "member".to_string(),
                        roles: vec![Role::Clerk],
                        clearance: Classification::Internal,
                    },
                    nonce,
                );
                let bytes = tx.to_bytes();
                let id = SignedTransaction::id_of_encoded(&bytes);
                std::sync::Arc::new(PendingTx::new(tx, bytes, id))
            })
            .collect();
        let batch = gossip_batch(&pending).expect("encodes");
        let decoded: Vec<Vec<u8>> = postcard::from_bytes(&batch).expect("decodes");
        let expected: Vec<Vec<u8>> = pending.iter().map(|p| p.tx.to_bytes()).collect();
        assert_eq!(decoded, expected);
    }
}
