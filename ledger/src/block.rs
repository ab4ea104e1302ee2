//! Blocks: a header, the transactions, and the commit certificate of the
//! previous block. The block hash is the header hash.

use serde::{Deserialize, Serialize};

use crate::certificate::CommitCertificate;
use crate::encoding::{self, tags, DecodeError};
use crate::merkle;
use crate::tx::SignedTransaction;
use crate::types::{BlockHash, Hash32, Height, PublicKey, Timestamp, TxId};

/// Room a block keeps for its header and the previous block's certificate:
/// the transactions of a proposal take at most the chain's
/// `max_block_bytes` less this. A header is under 400 bytes and a
/// certificate about 100 bytes per validator, so this leaves room for
/// hundreds of validators.
pub const BLOCK_OVERHEAD_BYTES: u64 = 64 * 1024;

/// Block header. Field order is part of the format.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Header {
    pub format_version: u16,
    pub chain_id: String,
    pub height: Height,
    /// Proposer's clock, milliseconds since the Unix epoch.
    pub time: Timestamp,
    /// Hash of block `height - 1`; for height 1, the genesis hash.
    pub previous_block_hash: BlockHash,
    /// RFC 6962 Merkle root over the transaction ids, in block order.
    pub tx_root: Hash32,
    /// Validator key of the proposer.
    pub proposer: PublicKey,
    /// Hash of the validator set in force at this height.
    pub validator_set_hash: Hash32,
    /// Hash of `last_commit` (all zeroes at height 1).
    pub last_commit_hash: Hash32,
}

impl Header {
    /// The block hash: `SHA-256(tagged("custody/header/v1", postcard(header)))`.
    pub fn hash(&self) -> BlockHash {
        encoding::hash_of(tags::HEADER, self).into()
    }
}

/// A block.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Block {
    pub header: Header,
    pub transactions: Vec<SignedTransaction>,
    /// Certificate for block `height - 1`; `None` only at height 1.
    pub last_commit: Option<CommitCertificate>,
}

impl Block {
    /// The block hash (header hash).
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// Transaction ids in block order.
    pub fn tx_ids(&self) -> Vec<TxId> {
        self.transactions.iter().map(|t| t.id()).collect()
    }

    /// Merkle root of these transactions (what `header.tx_root` must be).
    pub fn compute_tx_root(&self) -> Hash32 {
        tx_root(&self.tx_ids())
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decode canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes)
    }

    /// Proof that transaction `index` is in this block.
    pub fn inclusion_proof(&self, index: usize) -> Option<merkle::InclusionProof> {
        let ids = self.tx_ids();
        merkle::prove(&ids, index)
    }
}

/// Merkle root over transaction ids.
pub fn tx_root(ids: &[TxId]) -> Hash32 {
    let leaves: Vec<&[u8]> = ids.iter().map(|id| id.0.as_slice()).collect();
    merkle::root(&leaves)
}

/// Why a proposed block time is refused by a voter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockTimeError {
    #[error("block time {time} ms is not after its parent's time {parent} ms")]
    NotAfterParent { time: Timestamp, parent: Timestamp },
    #[error("block time {time} ms is more than {skew_ms} ms away from the local clock {local} ms")]
    OutsideSkew {
        time: Timestamp,
        local: Timestamp,
        skew_ms: u64,
    },
}

/// The block time rule: strictly after the parent's time and within
/// `skew_ms` of the voter's own clock `local_now` (passed in, never read
/// here). Replaying the chain checks only the first half, since a past
/// voter's clock cannot be known.
pub fn check_block_time(
    parent: Timestamp,
    time: Timestamp,
    local_now: Timestamp,
    skew_ms: u64,
) -> Result<(), BlockTimeError> {
    if time <= parent {
        return Err(BlockTimeError::NotAfterParent { time, parent });
    }
    if time.0.abs_diff(local_now.0) > skew_ms {
        return Err(BlockTimeError::OutsideSkew {
            time,
            local: local_now,
            skew_ms,
        });
    }
    Ok(())
}
