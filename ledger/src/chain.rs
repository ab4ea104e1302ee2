//! Glue for the node: judge a certified block against the store and commit
//! it. The rules stay in `state` and the disk in `store`; this only puts
//! the three steps in their one safe order.

use crate::block::Block;
use crate::certificate::{CertificateError, CommitCertificate};
use crate::state::{self, Refusal, StateChanges};
use crate::store::{Store, StoreError};

/// Why a certified block was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("certificate does not prove the block: {0}")]
    Certificate(#[from] CertificateError),
    #[error("block refused: {0}")]
    Refused(#[from] Refusal),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Check `certificate` against the validator set in force at the block's
/// height, apply the block to the store's state and commit all three
/// atomically (durable on return). Used after consensus decides and when
/// catching up from a peer; returns the changes (the next height's
/// validator set is `changes.chain.validator_set`).
pub fn commit_certified(
    store: &Store,
    block: &Block,
    certificate: &CommitCertificate,
) -> Result<StateChanges, CommitError> {
    let chain = store.chain_info()?;
    certificate.verify(
        &chain.chain_id,
        block.header.height,
        &block.hash(),
        &chain.validator_set,
    )?;
    let changes = state::apply_block(store, block)?;
    store.commit(block, certificate, &changes)?;
    Ok(changes)
}
