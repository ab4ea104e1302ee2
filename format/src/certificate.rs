//! Commit votes and commit certificates: what a validator signs when it
//! precommits a block, and the proof that a block is final. Consensus
//! builds certificates, the ledger stores and checks them, auditors check
//! them offline; all through the one [`CommitCertificate::verify`].

use serde::{Deserialize, Serialize};

use crate::encoding::{self, DecodeError};
use crate::signature;
use crate::tags;
use crate::types::{BlockHash, Hash32, Height, PublicKey, Round, Signature};

/// What a validator signs when it precommits a block
/// (`custody/commit-vote/v1`). Field order is the contract.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CommitVote {
    pub chain_id: String,
    pub height: Height,
    pub round: Round,
    pub block_hash: BlockHash,
}

impl CommitVote {
    /// The vote for `block_hash` at `(height, round)`.
    pub fn new(chain_id: &str, height: Height, round: Round, block_hash: BlockHash) -> Self {
        CommitVote {
            chain_id: chain_id.to_owned(),
            height,
            round,
            block_hash,
        }
    }

    /// `tagged("custody/commit-vote/v1", postcard(vote))`: the bytes every
    /// signature of a certificate covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        encoding::signing_bytes(tags::COMMIT_VOTE, self)
    }
}

/// One validator's precommit signature over the [`CommitVote`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CommitSignature {
    /// The signer.
    pub validator: PublicKey,
    /// ed25519 signature over [`CommitVote::signing_bytes`].
    pub signature: Signature,
}

/// Proof that `block_hash` was committed at `height`: precommits from
/// distinct validators holding more than 2/3 of the voting power in force
/// at that height, all for `(chain_id, height, round, block_hash)`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CommitCertificate {
    /// Height of the committed block.
    pub height: Height,
    /// Round whose precommits committed it.
    pub round: Round,
    /// Hash of the committed block.
    pub block_hash: BlockHash,
    /// Sorted by validator key, no duplicates.
    pub signatures: Vec<CommitSignature>,
}

/// The voting power of the validators in force at one height, as a
/// certificate needs it. Implemented by consensus's and the ledger's
/// validator sets.
pub trait VotingPower {
    /// The power of `key`, or `None` when it is not a validator.
    fn voting_power_of(&self, key: &PublicKey) -> Option<u64>;
    /// The sum of every validator's power.
    fn voting_power_total(&self) -> u128;
}

/// `signed` is more than two thirds of `total`: `3 * signed > 2 * total`.
pub fn is_quorum(signed: u128, total: u128) -> bool {
    signed.saturating_mul(3) > total.saturating_mul(2)
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
    /// Signatures must be strictly increasing by validator key (which also
    /// rules out a validator counted twice).
    #[error("signatures are not sorted by validator key or validator {0} signed twice")]
    NotSortedOrDuplicate(PublicKey),
    #[error("{0} is not a validator at this height")]
    UnknownValidator(PublicKey),
    #[error("signature of validator {0} is invalid")]
    BadSignature(PublicKey),
    /// The batch refused signatures that each verified alone: cannot
    /// happen with a correct ed25519 library; kept so it is never accepted.
    #[error("the signatures do not verify together")]
    BatchRefused,
    #[error("signers hold {signed} of {total} voting power, not more than 2/3")]
    InsufficientPower { signed: u128, total: u128 },
}

impl CommitCertificate {
    /// A certificate from votes, sorted by validator key, each validator
    /// once.
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

    /// The message every signature in this certificate covers.
    pub fn vote_bytes(&self, chain_id: &str) -> Vec<u8> {
        CommitVote::new(chain_id, self.height, self.round, self.block_hash).signing_bytes()
    }

    /// The one check of a certificate: distinct signers, each a validator
    /// of `validators` (the set in force at the certificate's height),
    /// holding more than 2/3 of the power, and every signature valid under
    /// strict ed25519 over the commit vote for `chain_id`.
    pub fn verify(
        &self,
        chain_id: &str,
        validators: &impl VotingPower,
    ) -> Result<(), CertificateError> {
        self.verify_signers(validators)?;
        self.verify_signatures(chain_id)
    }

    /// [`Self::verify`] for a certificate that must prove `block_hash` at
    /// `height`.
    pub fn verify_commit_of(
        &self,
        chain_id: &str,
        height: Height,
        block_hash: &BlockHash,
        validators: &impl VotingPower,
    ) -> Result<(), CertificateError> {
        self.verify_power(height, block_hash, validators)?;
        self.verify_signatures(chain_id)
    }

    /// Everything of [`Self::verify_commit_of`] but the signatures, for
    /// callers that checked those already (in a larger batch, or when the
    /// block was judged).
    pub fn verify_power(
        &self,
        height: Height,
        block_hash: &BlockHash,
        validators: &impl VotingPower,
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
        self.verify_signers(validators)
    }

    /// The signers are sorted and distinct, each a validator, and together
    /// hold more than 2/3 of the power. Signatures are not looked at.
    pub fn verify_signers(&self, validators: &impl VotingPower) -> Result<(), CertificateError> {
        if let Some(pair) = self
            .signatures
            .windows(2)
            .find(|w| w[0].validator >= w[1].validator)
        {
            return Err(CertificateError::NotSortedOrDuplicate(pair[1].validator));
        }
        let mut signed: u128 = 0;
        for entry in &self.signatures {
            let power = validators
                .voting_power_of(&entry.validator)
                .ok_or(CertificateError::UnknownValidator(entry.validator))?;
            signed += u128::from(power);
        }
        let total = validators.voting_power_total();
        if !is_quorum(signed, total) {
            return Err(CertificateError::InsufficientPower { signed, total });
        }
        Ok(())
    }

    /// Every signature is valid under strict ed25519 over the commit vote
    /// for `chain_id`: one strict batch; when it fails, each signature
    /// alone names the first culprit.
    pub fn verify_signatures(&self, chain_id: &str) -> Result<(), CertificateError> {
        let message = self.vote_bytes(chain_id);
        let items: Vec<(PublicKey, &[u8], Signature)> = self
            .signatures
            .iter()
            .map(|s| (s.validator, message.as_slice(), s.signature))
            .collect();
        if signature::verify_batch_strict(&items) {
            return Ok(());
        }
        for s in &self.signatures {
            if !signature::verify_strict(&s.validator, &message, &s.signature) {
                return Err(CertificateError::BadSignature(s.validator));
            }
        }
        Err(CertificateError::BatchRefused)
    }
}
