//! Judging: whether a proposed block gets this validator's vote.

use crate::block::{check_block_time, Block, BlockTimeError};
use crate::certificate::CertificateError;
use crate::encoding::DecodeError;
use crate::state::{
    apply_block_identified, check_carried_keys, Refusal, Signatures, StateChanges, StateView,
    TxRefusal, ViewError,
};
use crate::types::{BlockHash, Height, Timestamp, TxId};

/// Why a proposed block does not get this validator's vote: one variant per
/// check, in the order they are made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalRefusal {
    #[error("proposed block does not decode: {0}")]
    Undecodable(DecodeError),
    #[error("proposed block's header hash {computed} differs from the proposal's hash {proposed}")]
    HashDiffers {
        proposed: BlockHash,
        computed: BlockHash,
    },
    #[error("proposed block is for height {found}, the proposal for height {proposed}")]
    HeightDiffers { proposed: Height, found: Height },
    /// The parent of the proposed block is not this node's last committed
    /// block: see [`ProposalRefusal::node_is_behind`].
    #[error("this node has committed height {committed}, so it cannot judge a block for height {height}")]
    ParentNotCommitted { committed: Height, height: Height },
    #[error("proposed block's time refused: {0}")]
    BlockTimeRefused(BlockTimeError),
    #[error("proposed block's certificate for the previous block is badly signed: {0}")]
    PreviousCertificateBadlySigned(CertificateError),
    #[error("proposed block's transaction #{index} ({tx_id}) is badly signed")]
    BadlySignedTransaction { index: usize, tx_id: TxId },
    #[error("proposed block's transaction #{index} ({tx_id}) carries an invalid key: {reason}")]
    InvalidCarriedKey {
        index: usize,
        tx_id: TxId,
        reason: TxRefusal,
    },
    #[error("proposed block refused: {0}")]
    BlockRefused(Refusal),
}

impl ProposalRefusal {
    /// Whether the refusal only says that this node has not yet committed
    /// the proposed block's parent: the node should catch up by sync.
    pub fn node_is_behind(&self) -> bool {
        matches!(self, ProposalRefusal::ParentNotCommitted { committed, height } if committed.next() < *height)
    }

    /// A stable machine-readable code, one per variant.
    pub fn code(&self) -> &'static str {
        match self {
            ProposalRefusal::Undecodable(_) => "undecodable",
            ProposalRefusal::HashDiffers { .. } => "hash_differs",
            ProposalRefusal::HeightDiffers { .. } => "height_differs",
            ProposalRefusal::ParentNotCommitted { .. } => "parent_not_committed",
            ProposalRefusal::BlockTimeRefused(_) => "block_time_refused",
            ProposalRefusal::PreviousCertificateBadlySigned(_) => {
                "previous_certificate_badly_signed"
            }
            ProposalRefusal::BadlySignedTransaction { .. } => "badly_signed_transaction",
            ProposalRefusal::InvalidCarriedKey { .. } => "invalid_carried_key",
            ProposalRefusal::BlockRefused(_) => "block_refused",
        }
    }
}

/// The outcome of [`judge`] when the block does not get the vote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Judgement {
    /// The block breaks a rule: vote against it. Boxed so that the
    /// accepting path does not carry the refusal's size.
    #[error("{0}")]
    Refused(Box<ProposalRefusal>),
    /// The local store cannot be read: this says nothing about the block,
    /// and the node must stop rather than vote.
    #[error("the ledger store cannot be read while judging a proposal: {0}")]
    Storage(ViewError),
}

impl From<ViewError> for Judgement {
    fn from(error: ViewError) -> Self {
        Judgement::Storage(error)
    }
}

impl From<ProposalRefusal> for Judgement {
    fn from(refusal: ProposalRefusal) -> Self {
        Judgement::Refused(Box::new(refusal))
    }
}

/// A block that gets the vote, with the changes it makes (kept so that
/// committing it does not apply it again).
#[derive(Debug)]
pub struct Judged {
    pub block: Block,
    pub changes: StateChanges,
    /// Ids of the transactions whose signatures and carried keys were
    /// checked here because `already_checked` did not know them: the caller
    /// notes them so that their gossip is not checked again.
    pub newly_checked_ids: Vec<TxId>,
}

/// Judge the proposal `(height, value_hash, value_bytes)` against the
/// committed state `view`, with this validator's clock `local_now`.
///
/// `already_checked` names the transactions whose signatures and carried
/// keys this node checked when it took them in (its mempool): those are not
/// checked again, so a transaction is signature-checked once per node. The
/// others are checked here, the signatures in one batch.
///
/// A block breaking any rule is [`Judgement::Refused`]; a store that cannot
/// be read is [`Judgement::Storage`], which the caller must treat as fatal.
pub fn judge<V: StateView + ?Sized>(
    view: &V,
    height: Height,
    value_hash: BlockHash,
    value_bytes: &[u8],
    local_now: Timestamp,
    already_checked: impl Fn(&TxId) -> bool,
) -> Result<Judged, Judgement> {
    let block = Block::from_bytes(value_bytes).map_err(ProposalRefusal::Undecodable)?;
    let computed = block.hash();
    if computed != value_hash {
        return Err(ProposalRefusal::HashDiffers {
            proposed: value_hash,
            computed,
        }
        .into());
    }
    if block.header.height != height {
        return Err(ProposalRefusal::HeightDiffers {
            proposed: height,
            found: block.header.height,
        }
        .into());
    }
    let chain = view.chain()?;
    let parameters = view.parameters()?;
    if chain.height.next() != height {
        return Err(ProposalRefusal::ParentNotCommitted {
            committed: chain.height,
            height,
        }
        .into());
    }
    // The voter's own clock bounds the proposer's; replay checks only the
    // parent half of this rule (in `apply_block`).
    check_block_time(
        chain.last_time,
        block.header.time,
        local_now,
        parameters.block_time_skew_ms,
    )
    .map_err(ProposalRefusal::BlockTimeRefused)?;
    // The previous block's certificate becomes part of the chain: its
    // signatures must hold for anyone verifying it later. The rules below
    // check its signers' power, not its signatures.
    if let Some(last_commit) = &block.last_commit {
        last_commit
            .verify_signatures(&chain.chain_id)
            .map_err(ProposalRefusal::PreviousCertificateBadlySigned)?;
    }
    let ids = block.tx_ids();
    let unknown: Vec<usize> = (0..ids.len())
        .filter(|&index| !already_checked(&ids[index]))
        .collect();
    let bad = crate::tx::verify_batch(unknown.iter().map(|&index| &block.transactions[index]));
    if let Some(&position) = bad.first() {
        let index = unknown[position];
        return Err(ProposalRefusal::BadlySignedTransaction {
            index,
            tx_id: ids[index],
        }
        .into());
    }
    for &index in &unknown {
        if let Err(reason) = check_carried_keys(&block.transactions[index]) {
            return Err(ProposalRefusal::InvalidCarriedKey {
                index,
                tx_id: ids[index],
                reason,
            }
            .into());
        }
    }
    match apply_block_identified(view, &block, &ids, Signatures::AlreadyVerifiedWithKeys) {
        Ok(changes) => Ok(Judged {
            block,
            changes,
            newly_checked_ids: unknown.into_iter().map(|index| ids[index]).collect(),
        }),
        Err(Refusal::Storage(error)) => Err(Judgement::Storage(error)),
        Err(refusal) => Err(ProposalRefusal::BlockRefused(refusal).into()),
    }
}
