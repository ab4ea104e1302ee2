//! Commit certificates: precommit signatures of validators holding more
//! than 2/3 of the voting power, over `(chain id, height, round, block
//! hash)`. The signed structure is shared byte-for-byte with consensus.

use serde::{Deserialize, Serialize};

use crate::encoding::{self, tags, DecodeError};
use crate::records::ValidatorSet;
use crate::types::{BlockHash, Hash32, Height, PublicKey, Round, Signature};

/// What a validator signs when it precommits a block
/// (`custody/commit-vote/v1`). Field order is fixed by the cross-crate
/// contract.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CommitVote {
    pub chain_id: String,
    pub height: u64,
    pub round: u64,
    pub block_hash: [u8; 32],
}

/// One validator's precommit signature.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CommitSignature {
    pub validator: PublicKey,
    pub signature: Signature,
}

/// Proof that a block is final. Same serde shape as consensus's.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CommitCertificate {
    pub height: Height,
    pub round: Round,
    pub block_hash: BlockHash,
    /// Sorted by validator key, no duplicates.
    pub signatures: Vec<CommitSignature>,
}

/// Why a certificate does not prove finality.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate is for height {found}, expected {expected}")]
    WrongHeight { expected: Height, found: Height },
    #[error("certificate is for block {found}, expected {expected}")]
    WrongBlock {
        expected: BlockHash,
        found: BlockHash,
    },
    #[error("signatures are not sorted by validator key or a validator signed twice")]
    NotSortedOrDuplicate,
    #[error("{0} is not a validator at this height")]
    UnknownValidator(PublicKey),
    #[error("signature of validator {0} is invalid")]
    BadSignature(PublicKey),
    #[error("signers hold {signed} of {total} voting power, not more than 2/3")]
    InsufficientPower { signed: u128, total: u128 },
}

impl CommitVote {
    /// The vote for `block_hash` at `(height, round)`.
    pub fn new(chain_id: &str, height: Height, round: Round, block_hash: BlockHash) -> Self {
        CommitVote {
            chain_id: chain_id.to_string(),
            height: height.0,
            round: round.0,
            block_hash: block_hash.0,
        }
    }

    /// `tagged("custody/commit-vote/v1", postcard(vote))`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        encoding::signing_bytes(tags::COMMIT_VOTE, self)
    }
}

impl CommitCertificate {
    /// `SHA-256(tagged("custody/certificate/v1", postcard(certificate)))`.
    pub fn hash(&self) -> Hash32 {
        encoding::hash_of(tags::CERTIFICATE, self)
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decode canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes)
    }

    /// Build a certificate from votes, sorting them by validator key.
    pub fn new(
        height: Height,
        round: Round,
        block_hash: BlockHash,
        mut signatures: Vec<CommitSignature>,
    ) -> Self {
        signatures.sort_by_key(|s| s.validator);
        signatures.dedup_by(|a, b| a.validator == b.validator);
        debug_assert!(signatures
            .windows(2)
            .all(|w| w[0].validator < w[1].validator));
        CommitCertificate {
            height,
            round,
            block_hash,
            signatures,
        }
    }

    /// Check that this certificate proves `block_hash` final at `height`
    /// under `validators` (the set in force at that height).
    pub fn verify(
        &self,
        chain_id: &str,
        height: Height,
        block_hash: &BlockHash,
        validators: &ValidatorSet,
    ) -> Result<(), CertificateError> {
        self.verify_power(height, block_hash, validators)?;
        self.verify_signatures(chain_id)
    }

    /// The message every signature in this certificate covers.
    pub fn vote_bytes(&self, chain_id: &str) -> Vec<u8> {
        CommitVote::new(chain_id, self.height, self.round, self.block_hash).signing_bytes()
    }

    /// Check the signatures alone (one ed25519 batch).
    pub fn verify_signatures(&self, chain_id: &str) -> Result<(), CertificateError> {
        let message = self.vote_bytes(chain_id);
        let items: Vec<(PublicKey, &[u8], Signature)> = self
            .signatures
            .iter()
            .map(|s| (s.validator, message.as_slice(), s.signature))
            .collect();
        if !encoding::verify_many(&items) {
            for s in &self.signatures {
                if !encoding::verify_bytes(&s.validator, &message, &s.signature) {
                    return Err(CertificateError::BadSignature(s.validator));
                }
            }
        }
        Ok(())
    }

    /// Check everything but the signatures: height, block, order, that each
    /// signer is a validator and that they hold more than 2/3 of the power.
    pub fn verify_power(
        &self,
        height: Height,
        block_hash: &BlockHash,
        validators: &ValidatorSet,
    ) -> Result<(), CertificateError> {
        if self.height != height {
            return Err(CertificateError::WrongHeight {
                expected: height,
                found: self.height,
            });
        }
        if self.block_hash != *block_hash {
            return Err(CertificateError::WrongBlock {
                expected: *block_hash,
                found: self.block_hash,
            });
        }
        if self
            .signatures
            .windows(2)
            .any(|w| w[0].validator >= w[1].validator)
        {
            return Err(CertificateError::NotSortedOrDuplicate);
        }
        let mut signed: u128 = 0;
        for s in &self.signatures {
            let power = validators
                .power_of(&s.validator)
                .ok_or(CertificateError::UnknownValidator(s.validator))?;
            signed += u128::from(power);
        }
        if !validators.is_supermajority(signed) {
            return Err(CertificateError::InsufficientPower {
                signed,
                total: validators.total_power(),
            });
        }
        Ok(())
    }
}
