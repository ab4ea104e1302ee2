//! Equivocation evidence as a record of the chain: two votes one validator
//! signed for one height, round and kind, naming different blocks. Any
//! department's node submits them (`submit-evidence`, transaction format
//! version [`crate::tx::TX_FORMAT_VERSION_EVIDENCE`], signed with its node
//! key); the rules (`docs/rules.md` §10) check both signatures under the
//! validator set in force at that height, and the chain keeps one
//! [`EvidenceRecord`] per validator and height.
//!
//! The votes' signed bytes are the format crate's
//! ([`custody_format::vote`]), the very bytes consensus signs, so the
//! ledger checks them without knowing consensus.

use serde::{Deserialize, Serialize};

pub use custody_format::vote::{vote_signing_bytes, SignedVote, VoteKind};

use crate::types::{BlockHash, DepartmentId, Height, PublicKey, Round, TxId};

/// What the chain records once a `submit-evidence` is committed. Field
/// order is part of the format (state digest, `docs/format.md` §9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// The validator key that signed both votes.
    pub validator: PublicKey,
    /// The department whose validator key it was when the evidence was
    /// committed (`None` when no department holds that key any more).
    pub department: Option<DepartmentId>,
    /// Height, round and kind of the two votes.
    pub height: Height,
    pub round: Round,
    pub kind: VoteKind,
    /// The block each vote named, in the transaction's order (`None`: nil).
    pub first_block: Option<BlockHash>,
    pub second_block: Option<BlockHash>,
    /// The department whose node submitted it.
    pub reported_by: DepartmentId,
    /// The `submit-evidence` transaction and the height of its block.
    pub tx: TxId,
    pub included_at: Height,
}

/// `hex` of a vote's block, or `nil`.
pub fn block_label(block: &Option<BlockHash>) -> String {
    match block {
        Some(hash) => hash.to_hex(),
        None => "nil".to_string(),
    }
}
