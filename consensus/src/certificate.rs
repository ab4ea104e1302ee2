//! Commit certificates: the precommit signatures that prove a block was
//! committed, checkable by anyone holding the validator set.

use serde::{Deserialize, Serialize};

use crate::message::{commit_vote_signing_bytes, verify_signature, SignatureBytes};
use crate::types::{BlockHash, Height, Round, ValidatorKey, ValidatorSet};

/// One validator's precommit signature over the contract's `CommitVote`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSignature {
    /// The signer.
    pub validator: ValidatorKey,
    /// ed25519 signature over `tagged("custody/commit-vote/v1",
    /// postcard(CommitVote { chain_id, height, round, block_hash }))`.
    pub signature: SignatureBytes,
}

/// Proof that `block_hash` was committed at `height`: precommits from
/// validators holding more than 2/3 of the voting power in force at that
/// height, all for `(chain_id, height, round, block_hash)`.
///
/// Same serde shape as the contract (`Height`/`Round` serialise as `u64`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCertificate {
    /// Height of the committed block.
    pub height: Height,
    /// Round whose precommits committed it.
    pub round: Round,
    /// Hash of the committed block.
    pub block_hash: BlockHash,
    /// Signatures sorted by validator key, no duplicates.
    pub signatures: Vec<CommitSignature>,
}

/// Why a certificate does not prove a commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Signatures must be strictly increasing by validator key (this also
    /// rules out a validator counted twice).
    #[error("certificate signatures are not sorted by validator key or repeat validator {0:?}")]
    NotSortedOrDuplicate(ValidatorKey),
    /// A signer that is not in the validator set of that height.
    #[error("certificate signer {0:?} is not a validator at this height")]
    UnknownValidator(ValidatorKey),
    /// A signature that does not verify over the commit vote.
    #[error("signature of validator {0:?} does not verify over the commit vote")]
    BadSignature(ValidatorKey),
    /// Valid signatures, but not more than 2/3 of the power.
    #[error("signers hold voting power {signed} of {total}; more than two thirds is required")]
    NotEnoughPower {
        /// Power of the valid signers.
        signed: u64,
        /// Total power of the set.
        total: u64,
    },
}

impl CommitCertificate {
    /// Checks the certificate against the validator set in force at its
    /// height: distinct members, valid signatures over the contract's
    /// commit vote, and power strictly above two thirds.
    pub fn verify(
        &self,
        chain_id: &str,
        validators: &ValidatorSet,
    ) -> Result<(), CertificateError> {
        let signed_bytes =
            commit_vote_signing_bytes(chain_id, self.height, self.round, self.block_hash);
        let mut signed_power: u64 = 0;
        let mut previous: Option<ValidatorKey> = None;
        for entry in &self.signatures {
            if previous.is_some_and(|key| key >= entry.validator) {
                return Err(CertificateError::NotSortedOrDuplicate(entry.validator));
            }
            previous = Some(entry.validator);
            let power = validators
                .power_of(&entry.validator)
                .ok_or(CertificateError::UnknownValidator(entry.validator))?;
            if !verify_signature(&entry.validator, &signed_bytes, &entry.signature) {
                return Err(CertificateError::BadSignature(entry.validator));
            }
            // Bounded by the set's total, which is at most u64::MAX / 4.
            signed_power = signed_power.saturating_add(power);
        }
        if !validators.is_quorum(signed_power) {
            return Err(CertificateError::NotEnoughPower {
                signed: signed_power,
                total: validators.total_power(),
            });
        }
        Ok(())
    }
}
