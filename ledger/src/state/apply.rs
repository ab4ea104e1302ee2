//! Blocks: the header rules, applying a block, checking one transaction
//! for the mempool, selecting and building.

use super::*;

fn check_header(
    params: &Parameters,
    chain: &ChainInfo,
    block: &Block,
    ids: &[TxId],
    signatures: Signatures,
) -> Result<(), HeaderRefusal> {
    let h = &block.header;
    if h.format_version != FORMAT_VERSION {
        return Err(HeaderRefusal::UnsupportedFormatVersion(h.format_version));
    }
    if h.chain_id != chain.chain_id {
        return Err(HeaderRefusal::WrongChainId {
            expected: chain.chain_id.clone(),
            found: h.chain_id.clone(),
        });
    }
    let expected_height = chain.height.next();
    if h.height != expected_height {
        return Err(HeaderRefusal::WrongHeight {
            expected: expected_height,
            found: h.height,
        });
    }
    if h.previous_block_hash != chain.last_block_hash {
        return Err(HeaderRefusal::WrongPreviousHash {
            expected: chain.last_block_hash,
            found: h.previous_block_hash,
        });
    }
    if h.time <= chain.last_time {
        return Err(HeaderRefusal::TimeNotAfterParent {
            time: h.time,
            parent: chain.last_time,
        });
    }
    if block.transactions.len() > params.max_block_txs as usize {
        return Err(HeaderRefusal::TooManyTransactions {
            count: block.transactions.len(),
            max: params.max_block_txs,
        });
    }
    let size = encoding::encoded_size(block) as u64;
    if size > params.max_block_bytes {
        return Err(HeaderRefusal::TooLarge {
            size,
            max: params.max_block_bytes,
        });
    }
    if crate::block::tx_root(ids) != h.tx_root {
        return Err(HeaderRefusal::TxRootMismatch);
    }
    let set_hash = chain.validator_set.hash();
    if h.validator_set_hash != set_hash {
        return Err(HeaderRefusal::ValidatorSetMismatch {
            expected: set_hash,
            found: h.validator_set_hash,
        });
    }
    if chain.validator_set.power_of(&h.proposer).is_none() {
        return Err(HeaderRefusal::ProposerNotValidator(h.proposer));
    }
    match (&block.last_commit, chain.height) {
        (None, Height(0)) => {
            if h.last_commit_hash != Hash32::ZERO {
                return Err(HeaderRefusal::LastCommitHashMismatch);
            }
        }
        (Some(_), Height(0)) => return Err(HeaderRefusal::UnexpectedLastCommit),
        (None, _) => return Err(HeaderRefusal::MissingLastCommit),
        (Some(cert), last) => {
            if cert.hash() != h.last_commit_hash {
                return Err(HeaderRefusal::LastCommitHashMismatch);
            }
            cert.verify_power(last, &chain.last_block_hash, &chain.last_validator_set)
                .map_err(HeaderRefusal::LastCommitInvalid)?;
            if signatures == Signatures::Verify {
                cert.verify_signatures(&chain.chain_id)
                    .map_err(HeaderRefusal::LastCommitInvalid)?;
            }
        }
    }
    Ok(())
}

/// Whether the caller already checked the signatures of the transactions
/// and of the previous block's certificate (chain verification batches them
/// across threads before replaying).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signatures {
    /// Check them here, with one ed25519 batch for the block.
    Verify,
    /// Already checked by the caller.
    AlreadyVerified,
    /// The signatures, and the public keys the transactions carry (a
    /// member's key being enrolled), were checked when this node first took
    /// the transactions in: only the rules that read state run. A key check
    /// is a point decompression, about as costly as a signature check, and a
    /// waiting transaction is checked again on every block.
    AlreadyVerifiedWithKeys,
}

/// Apply a block to the state `view`: check the header, the previous
/// block's certificate, every signature and every rule, and return what
/// changes. Deterministic: no clock, no randomness, no I/O but `view`.
pub fn apply_block<V: StateView + ?Sized>(
    view: &V,
    block: &Block,
) -> Result<StateChanges, Refusal> {
    apply_block_with(view, block, Signatures::Verify)
}

/// [`apply_block`] with a choice about signature checking.
pub fn apply_block_with<V: StateView + ?Sized>(
    view: &V,
    block: &Block,
    signatures: Signatures,
) -> Result<StateChanges, Refusal> {
    // Each id is computed once: for the Merkle root, the events and the index.
    apply_block_identified(view, block, &block.tx_ids(), signatures)
}

/// [`apply_block_with`] for a caller that already computed the ids of the
/// block's transactions (`block.tx_ids()`, in order); the header's Merkle
/// root is checked against them.
pub fn apply_block_identified<V: StateView + ?Sized>(
    view: &V,
    block: &Block,
    ids: &[TxId],
    signatures: Signatures,
) -> Result<StateChanges, Refusal> {
    if ids.len() != block.transactions.len() {
        return Err(Refusal::Header(HeaderRefusal::TxRootMismatch));
    }
    let chain = view.chain()?;
    let params = view.parameters()?;
    check_header(&params, &chain, block, ids, signatures).map_err(Refusal::Header)?;
    if signatures == Signatures::Verify {
        if let Some(&index) = crate::tx::verify_batch(&block.transactions).first() {
            return Err(Refusal::Transaction {
                index,
                tx_id: ids[index],
                reason: TxRefusal::BadSignature,
            });
        }
    }
    // Checked just above, in one batch.
    let checks = match signatures {
        Signatures::Verify => Signatures::AlreadyVerified,
        other => other,
    };
    let mut overlay = Overlay::new(view)?;
    let height = block.header.height;
    let time = block.header.time;
    for (index, (tx, tx_id)) in block.transactions.iter().zip(ids).enumerate() {
        overlay
            .apply_identified(tx, *tx_id, index as u32, height, time, checks)
            .map_err(|reason| match reason {
                TxRefusal::Storage(e) => Refusal::Storage(e),
                reason => Refusal::Transaction {
                    index,
                    tx_id: *tx_id,
                    reason,
                },
            })?;
    }
    let departments = overlay.departments()?;
    let mut changes = overlay.into_changes();
    let next_set = validator_set_of(&departments);
    changes.validator_set_changed = next_set != chain.validator_set;
    changes.chain = ChainInfo {
        chain_id: chain.chain_id.clone(),
        genesis_hash: chain.genesis_hash,
        height,
        last_block_hash: block.hash(),
        last_time: time,
        last_validator_set: chain.validator_set.clone(),
        validator_set: next_set,
    };
    Ok(changes)
}

/// Check one transaction for the mempool against committed state, as if it
/// were the next block's only transaction at `block_time`. `pending_nonce`
/// is the highest nonce of this signer already waiting in the mempool; the
/// transaction must then carry the one after it. Document rules are checked
/// against committed state only.
pub fn check_transaction<V: StateView + ?Sized>(
    view: &V,
    tx: &SignedTransaction,
    pending_nonce: Option<Nonce>,
    block_time: Timestamp,
) -> Result<(), TxRefusal> {
    let mut overlay = Overlay::new(view)?;
    if let Some(pending) = pending_nonce {
        let committed = view.nonce(&tx.payload.signer)?;
        if pending > committed {
            overlay.changes.nonces.insert(tx.payload.signer, pending);
        }
    }
    let height = overlay.changes.chain.height.next();
    overlay.apply_transaction(tx, 0, height, block_time, false)
}

/// Transactions chosen for a block, and those refused with their reasons.
pub type Selection = (Vec<SignedTransaction>, Vec<(SignedTransaction, TxRefusal)>);

/// Pick, in order, the candidates that apply on top of `view` at
/// `(height, time)` within the block limits; return them and the refused
/// ones with their reasons. A proposer builds its block from the first list.
pub fn select_transactions<V: StateView + ?Sized>(
    view: &V,
    candidates: Vec<SignedTransaction>,
    time: Timestamp,
) -> Result<Selection, ViewError> {
    let params = view.parameters()?;
    let mut overlay = Overlay::new(view)?;
    let height = overlay.changes.chain.height.next();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut bytes_left = params
        .max_block_bytes
        .saturating_sub(crate::block::BLOCK_OVERHEAD_BYTES);
    for tx in candidates {
        if accepted.len() >= params.max_block_txs as usize {
            break;
        }
        let size = encoding::encoded_size(&tx) as u64;
        if size > bytes_left {
            continue;
        }
        let bad = !tx.verify_signature();
        let result = if bad {
            Err(TxRefusal::BadSignature)
        } else {
            overlay.apply_transaction(&tx, accepted.len() as u32, height, time, true)
        };
        match result {
            Ok(()) => {
                bytes_left -= size;
                accepted.push(tx);
            }
            Err(reason) => refused.push((tx, reason)),
        }
    }
    Ok((accepted, refused))
}

/// Build the next block from already-selected transactions.
pub fn build_block<V: StateView + ?Sized>(
    view: &V,
    transactions: Vec<SignedTransaction>,
    time: Timestamp,
    proposer: PublicKey,
    last_commit: Option<crate::certificate::CommitCertificate>,
) -> Result<Block, ViewError> {
    let ids: Vec<TxId> = transactions.iter().map(|t| t.id()).collect();
    build_block_identified(view, transactions, &ids, time, proposer, last_commit)
}

/// [`build_block`] for a caller that knows the transactions' ids (in order).
pub fn build_block_identified<V: StateView + ?Sized>(
    view: &V,
    transactions: Vec<SignedTransaction>,
    ids: &[TxId],
    time: Timestamp,
    proposer: PublicKey,
    last_commit: Option<crate::certificate::CommitCertificate>,
) -> Result<Block, ViewError> {
    let chain = view.chain()?;
    let header = crate::block::Header {
        format_version: FORMAT_VERSION,
        chain_id: chain.chain_id.clone(),
        height: chain.height.next(),
        time,
        previous_block_hash: chain.last_block_hash,
        tx_root: crate::block::tx_root(ids),
        proposer,
        validator_set_hash: chain.validator_set.hash(),
        last_commit_hash: last_commit
            .as_ref()
            .map(|c| c.hash())
            .unwrap_or(Hash32::ZERO),
    };
    Ok(Block {
        header,
        transactions,
        last_commit,
    })
}
