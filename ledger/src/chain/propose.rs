//! Proposing: select the waiting transactions that apply, in order, and
//! build the next block from them.

use crate::block::Block;
use crate::certificate::CommitCertificate;
use crate::records::Parameters;
use crate::state::{
    apply_block_identified, build_block_identified, Overlay, Refusal, Signatures, StateChanges,
    StateView, TxRefusal, ViewError,
};
use crate::tx::SignedTransaction;
use crate::types::{BlockHash, Height, PublicKey, Timestamp, TxId};

pub use crate::block::BLOCK_OVERHEAD_BYTES;

/// How many times a proposal is rebuilt after dropping a transaction that
/// no longer applies, before falling back to checking each one. Each
/// rebuild applies the whole block again; the fallback applies each
/// transaction once and the block once more.
pub const PROPOSAL_REBUILDS_MAX: usize = 8;

/// A transaction offered for the next block, with what the mempool already
/// knows of it, kept together so that nothing is computed twice: its id
/// (the hash of its canonical bytes) and its encoded size.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub tx: SignedTransaction,
    pub id: TxId,
    pub size_bytes: usize,
}

/// How much of a block the transactions may take: the chain parameters
/// less room for the header and the previous block's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLimits {
    pub txs_max: usize,
    pub tx_bytes_max: usize,
}

impl BlockLimits {
    /// The limits under `parameters` (the committed chain parameters).
    pub fn of(parameters: &Parameters) -> BlockLimits {
        BlockLimits {
            txs_max: parameters.max_block_txs as usize,
            tx_bytes_max: parameters
                .max_block_bytes
                .saturating_sub(BLOCK_OVERHEAD_BYTES) as usize,
        }
    }
}

/// A block ready to be proposed, with the changes it makes (kept so that
/// committing it does not apply it again) and the candidates left out
/// because they no longer apply: the caller removes those from its mempool.
#[derive(Debug)]
pub struct Proposed {
    pub block: Block,
    pub hash: BlockHash,
    /// The block's canonical bytes, encoded once.
    pub bytes: Vec<u8>,
    pub changes: StateChanges,
    pub dropped: Vec<(TxId, TxRefusal)>,
}

/// Why no block was proposed.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The store is not at the height before the one to propose for. When
    /// [`ProposeError::node_is_behind`], the node should catch up by sync.
    #[error(
        "this node has committed height {committed}; it cannot propose a block for height {height}"
    )]
    HeightNotNext { committed: Height, height: Height },
    /// Even a block of the transactions that apply one by one (or an empty
    /// one) is refused: the header this node builds breaks a rule, which
    /// is a defect, not a transaction's fault.
    #[error("this node cannot build a valid block: {0}")]
    OwnBlockRefused(Refusal),
    /// The local store cannot be read: the node must stop.
    #[error("the ledger store cannot be read while building a proposal: {0}")]
    Storage(ViewError),
}

impl ProposeError {
    /// Whether the chain here is short of the proposal's parent, so that
    /// the node should ask its peers for the missing blocks.
    pub fn node_is_behind(&self) -> bool {
        matches!(self, ProposeError::HeightNotNext { committed, height } if committed.next() < *height)
    }
}

impl From<ViewError> for ProposeError {
    fn from(error: ViewError) -> Self {
        ProposeError::Storage(error)
    }
}

/// Select and build the block for `height` on top of `view`.
///
/// `candidates` come in the order they should be proposed; their
/// signatures and the keys they carry were checked when the node took them
/// in (see [`Signatures::AlreadyVerifiedWithKeys`]), so only the rules that
/// read state run here. Those beyond `limits` are left for a later block.
/// The block time is the proposer's clock `local_now`, or just after the
/// parent's time when that clock is behind it (a block's time must follow
/// its parent's).
///
/// The waiting transactions usually apply whole (each applied on committed
/// state when it was admitted); one that conflicts with an earlier one in
/// the block is dropped and the block rebuilt, up to
/// [`PROPOSAL_REBUILDS_MAX`] times, after which each candidate is tried
/// once in order. A storage failure is returned as
/// [`ProposeError::Storage`], never as a dropped transaction.
pub fn propose<V: StateView + ?Sized>(
    view: &V,
    height: Height,
    candidates: Vec<Candidate>,
    local_now: Timestamp,
    proposer: PublicKey,
    last_commit: Option<CommitCertificate>,
    limits: BlockLimits,
) -> Result<Proposed, ProposeError> {
    let chain = view.chain()?;
    if chain.height.next() != height {
        return Err(ProposeError::HeightNotNext {
            committed: chain.height,
            height,
        });
    }
    let time = Timestamp(local_now.0.max(chain.last_time.0.saturating_add(1)));
    let (mut transactions, mut ids) = within_limits(candidates, limits);
    let mut dropped = Vec::new();
    for _ in 0..PROPOSAL_REBUILDS_MAX {
        let empty = transactions.is_empty();
        let block = build_block_identified(
            view,
            transactions,
            &ids,
            time,
            proposer,
            last_commit.clone(),
        )?;
        match apply_block_identified(view, &block, &ids, Signatures::AlreadyVerifiedWithKeys) {
            Ok(changes) => return Ok(proposed(block, changes, dropped)),
            Err(Refusal::Transaction {
                index,
                tx_id,
                reason,
            }) => {
                transactions = block.transactions;
                transactions.remove(index);
                ids.remove(index);
                dropped.push((tx_id, reason));
            }
            Err(Refusal::Storage(error)) => return Err(ProposeError::Storage(error)),
            Err(refusal @ Refusal::Header(_)) if empty => {
                return Err(ProposeError::OwnBlockRefused(refusal))
            }
            Err(Refusal::Header(_)) => {
                // A header rule the transactions can break (their count or
                // size): propose none this time; they stay waiting.
                transactions = Vec::new();
                ids.clear();
            }
        }
    }
    // Many conflicts: try each transaction once on top of the ones kept.
    let mut overlay = Overlay::new(view)?;
    let mut kept = Vec::with_capacity(transactions.len());
    let mut kept_ids = Vec::with_capacity(ids.len());
    for (tx, id) in transactions.into_iter().zip(ids) {
        let index = kept.len() as u32;
        match overlay.apply_identified(
            &tx,
            id,
            index,
            height,
            time,
            Signatures::AlreadyVerifiedWithKeys,
        ) {
            Ok(()) => {
                kept.push(tx);
                kept_ids.push(id);
            }
            Err(TxRefusal::Storage(error)) => return Err(ProposeError::Storage(error)),
            Err(reason) => dropped.push((id, reason)),
        }
    }
    drop(overlay);
    let block = build_block_identified(view, kept, &kept_ids, time, proposer, last_commit)?;
    match apply_block_identified(view, &block, &kept_ids, Signatures::AlreadyVerifiedWithKeys) {
        Ok(changes) => Ok(proposed(block, changes, dropped)),
        Err(Refusal::Storage(error)) => Err(ProposeError::Storage(error)),
        Err(refusal) => Err(ProposeError::OwnBlockRefused(refusal)),
    }
}

/// The candidates, in order, up to the first that would pass a limit.
fn within_limits(
    candidates: Vec<Candidate>,
    limits: BlockLimits,
) -> (Vec<SignedTransaction>, Vec<TxId>) {
    let mut transactions = Vec::with_capacity(candidates.len().min(limits.txs_max));
    let mut ids = Vec::with_capacity(transactions.capacity());
    let mut bytes = 0usize;
    for candidate in candidates {
        if transactions.len() >= limits.txs_max
            || bytes.saturating_add(candidate.size_bytes) > limits.tx_bytes_max
        {
            break;
        }
        debug_assert_eq!(
            candidate.id,
            candidate.tx.id(),
            "a candidate's id is its own"
        );
        bytes += candidate.size_bytes;
        transactions.push(candidate.tx);
        ids.push(candidate.id);
    }
    (transactions, ids)
}

fn proposed(block: Block, changes: StateChanges, dropped: Vec<(TxId, TxRefusal)>) -> Proposed {
    let hash = block.hash();
    debug_assert_eq!(changes.chain.last_block_hash, hash);
    Proposed {
        bytes: block.to_bytes(),
        hash,
        block,
        changes,
        dropped,
    }
}
