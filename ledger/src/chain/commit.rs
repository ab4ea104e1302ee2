//! Committing a certified block: the one path by which a block enters the
//! store, whether this node's consensus decided it or a peer sent it while
//! the node was catching up.

use crate::block::Block;
use crate::certificate::{CertificateError, CommitCertificate};
use crate::state::{self, Refusal, Signatures, StateChanges, StateView, ViewError};
use crate::store::{Store, StoreError};
use crate::types::{BlockHash, Height};

/// Where a certified block comes from, which says what is left to check.
// Made once per committed block and moved once: boxing the changes would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Origin {
    /// Decided by this node's consensus, which checked each precommit's
    /// signature as it arrived: the certificate's signers and their power
    /// are checked again, not their signatures. `judged` holds the changes
    /// found when this node proposed or judged this very block on the
    /// current committed state, if it did; otherwise the block is applied
    /// here with every signature checked.
    Decided { judged: Option<StateChanges> },
    /// Sent by a peer: the certificate and the block are checked in full.
    Synced,
}

/// A certified block, once [`commit_certified`] returned.
#[derive(Debug)]
pub enum Committed {
    /// Written now, with the changes it made (the next height's validator
    /// set is `changes.chain.validator_set`).
    Stored(Box<StateChanges>),
    /// Already in the store: the other path (consensus or block sync) was
    /// faster.
    AlreadyStored,
}

/// Why a certified block was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("block {found} does not follow this node's last committed height {committed}")]
    NotNext { committed: Height, found: Height },
    #[error("certified block {certified} at height {height} is not the block committed here at that height")]
    ConflictsWithCommitted {
        height: Height,
        certified: BlockHash,
    },
    #[error("certificate does not prove the block: {0}")]
    Certificate(#[from] CertificateError),
    #[error("block refused: {0}")]
    Refused(Refusal),
    #[error("the ledger store cannot be read: {0}")]
    Storage(ViewError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl CommitError {
    /// Whether the failure is this node's own (its store), as opposed to a
    /// block or certificate that does not hold: a node must stop on the
    /// first, and may blame the peer that sent a synced block for the
    /// second.
    pub fn is_local(&self) -> bool {
        matches!(self, CommitError::Storage(_) | CommitError::Store(_))
    }
}

impl From<Refusal> for CommitError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Storage(error) => CommitError::Storage(error),
            refusal => CommitError::Refused(refusal),
        }
    }
}

/// Check `certificate` against the validator set in force at the block's
/// height, apply the block to the store's state (or take the changes
/// already found, see [`Origin::Decided`]) and commit block, certificate
/// and changes in one atomic batch, durable on return.
///
/// `bytes` are the block's canonical encoding (the bytes it was decoded
/// from, or encoded once by the proposer): they are stored as they are and
/// re-hashed to the certified hash before the write.
pub fn commit_certified(
    store: &Store,
    block: &Block,
    bytes: &[u8],
    certificate: &CommitCertificate,
    origin: Origin,
) -> Result<Committed, CommitError> {
    let chain = store.chain_info()?;
    let height = block.header.height;
    let hash = block.hash();
    if height <= chain.height {
        return match store.height_of(&hash)? {
            Some(stored) if stored == height => Ok(Committed::AlreadyStored),
            _ => Err(CommitError::ConflictsWithCommitted {
                height,
                certified: hash,
            }),
        };
    }
    if let Origin::Decided { .. } = origin {
        // Consensus starts a height only once its parent is committed, and
        // nothing but this function commits.
        debug_assert_eq!(
            height,
            chain.height.next(),
            "decided height = committed height + 1"
        );
    }
    let changes = certified_changes(store, block, certificate, origin)?;
    store.commit_encoded(block, bytes, certificate, &changes)?;
    Ok(Committed::Stored(Box::new(changes)))
}

/// Everything [`commit_certified`] checks before it writes, on any state
/// view: the block is the next one, the certificate proves it with the
/// validator set in force (and, for [`Origin::Synced`], its signatures
/// hold), and the block applies. Returns the changes to write. The store
/// path calls it; so can a state kept in memory (verification tools, the
/// consensus simulator running the ledger as its application).
pub fn certified_changes<V: StateView + ?Sized>(
    view: &V,
    block: &Block,
    certificate: &CommitCertificate,
    origin: Origin,
) -> Result<StateChanges, CommitError> {
    let chain = view.chain().map_err(CommitError::Storage)?;
    let height = block.header.height;
    let hash = block.hash();
    if height != chain.height.next() {
        return Err(CommitError::NotNext {
            committed: chain.height,
            found: height,
        });
    }
    certificate.verify_power(height, &hash, &chain.validator_set)?;
    let changes = match origin {
        Origin::Decided {
            judged: Some(changes),
        } => changes,
        Origin::Decided { judged: None } => {
            state::apply_block_with(view, block, Signatures::Verify)?
        }
        Origin::Synced => {
            certificate.verify_signatures(&chain.chain_id)?;
            state::apply_block_with(view, block, Signatures::Verify)?
        }
    };
    Ok(changes)
}
