//! The three consensus messages, their canonical encoding and their
//! signatures.
//!
//! Every byte that is signed goes through [`signing_bytes`], which builds
//! `tagged(tag, postcard(body))` as the contract prescribes. A precommit for
//! a block is signed over the contract's `CommitVote` so that the ledger can
//! check a certificate without this crate.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::types::{BlockHash, Height, Round, ValidatorKey, Value};

/// Tag of a proposal's signed bytes.
pub const TAG_PROPOSAL: &str = custody_format::tags::PROPOSAL;
/// Tag of a prevote's signed bytes (for a block or nil).
pub const TAG_PREVOTE: &str = custody_format::tags::PREVOTE;
/// Tag of a precommit for a block: the contract's commit vote.
pub const TAG_COMMIT_VOTE: &str = custody_format::tags::COMMIT_VOTE;
/// Tag of a precommit for nil.
pub const TAG_PRECOMMIT_NIL: &str = custody_format::tags::PRECOMMIT_NIL;

/// `tagged(tag, body) = u8(len(tag)) || tag || body`: the contract's
/// domain separation, used for every signature in this crate.
pub use custody_format::tagged;

/// The canonical encoding (postcard) of anything this crate hashes, signs
/// or sends.
///
/// Serialising into a `Vec` can only fail for sequences of unknown length
/// or a failing custom `Serialize`; none of this crate's types has either.
/// Should it ever happen, the empty result makes the signature or message
/// unverifiable, which is refused downstream, rather than panicking.
pub fn canonical_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match postcard::to_allocvec(value) {
        Ok(bytes) => bytes,
        Err(error) => {
            debug_assert!(false, "postcard cannot fail on consensus types: {error}");
            Vec::new()
        }
    }
}

/// The structure a precommit for a block is signed over: the format's
/// `CommitVote`, the bytes a certificate's signatures cover.
pub use custody_format::certificate::CommitVote;

/// An ed25519 signature (64 bytes): the format's `Signature`.
pub use custody_format::types::Signature as SignatureBytes;

/// A proposal: the proposer of `(height, round)` offers `value`.
/// `valid_round` is the paper's `validRound` (`None` is the paper's -1): the
/// round in which the proposer saw a quorum of prevotes for this value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Height being decided.
    pub height: Height,
    /// Round of the proposal.
    pub round: Round,
    /// Round of the proof of lock the proposer re-proposes from, if any.
    pub valid_round: Option<Round>,
    /// The proposed value.
    pub value: Value,
}

/// A prevote or precommit; `block_hash = None` is a vote for nil.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// Height being decided.
    pub height: Height,
    /// Round of the vote.
    pub round: Round,
    /// The block voted for, or `None` for nil.
    pub block_hash: Option<BlockHash>,
}

/// The two kinds of vote: the format's, which also builds their signed
/// bytes.
pub use custody_format::vote::VoteKind;

/// A consensus message before signing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// `⟨PROPOSAL, h, r, v, vr⟩`.
    Proposal(Proposal),
    /// `⟨PREVOTE, h, r, id(v)⟩`.
    Prevote(Vote),
    /// `⟨PRECOMMIT, h, r, id(v)⟩`.
    Precommit(Vote),
}

impl Message {
    /// Height the message is about.
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(proposal) => proposal.height,
            Message::Prevote(vote) | Message::Precommit(vote) => vote.height,
        }
    }

    /// Round the message is about.
    pub fn round(&self) -> Round {
        match self {
            Message::Proposal(proposal) => proposal.round,
            Message::Prevote(vote) | Message::Precommit(vote) => vote.round,
        }
    }

    /// The vote and its kind, if this is a vote.
    pub fn as_vote(&self) -> Option<(VoteKind, &Vote)> {
        match self {
            Message::Proposal(_) => None,
            Message::Prevote(vote) => Some((VoteKind::Prevote, vote)),
            Message::Precommit(vote) => Some((VoteKind::Precommit, vote)),
        }
    }
}

#[derive(Serialize)]
struct ProposalBody<'a> {
    chain_id: &'a str,
    height: u64,
    round: u64,
    valid_round: Option<u64>,
    value: &'a Value,
}

/// The exact bytes a validator signs for `message` on chain `chain_id`.
///
/// - proposal: `tagged("custody/proposal/v1", postcard(chain_id, height,
///   round, valid_round, value))` (the value's bytes are covered, so a
///   relay cannot swap them under a valid signature);
/// - prevote and precommit: the format's
///   [`custody_format::vote::vote_signing_bytes`] (a precommit for a block
///   is signed over the contract's `CommitVote`), so that the ledger checks
///   the votes of an equivocation over the very same bytes.
pub fn signing_bytes(chain_id: &str, message: &Message) -> Vec<u8> {
    match message {
        Message::Proposal(proposal) => tagged(
            TAG_PROPOSAL,
            &canonical_bytes(&ProposalBody {
                chain_id,
                height: proposal.height.0,
                round: proposal.round.0,
                valid_round: proposal.valid_round.map(|round| round.0),
                value: &proposal.value,
            }),
        ),
        Message::Prevote(vote) => custody_format::vote::vote_signing_bytes(
            VoteKind::Prevote,
            chain_id,
            vote.height,
            vote.round,
            vote.block_hash,
        ),
        Message::Precommit(vote) => custody_format::vote::vote_signing_bytes(
            VoteKind::Precommit,
            chain_id,
            vote.height,
            vote.round,
            vote.block_hash,
        ),
    }
}

/// The bytes of the contract's commit vote: what a certificate's
/// signatures are over.
pub fn commit_vote_signing_bytes(
    chain_id: &str,
    height: Height,
    round: Round,
    block_hash: BlockHash,
) -> Vec<u8> {
    CommitVote::new(chain_id, height, round, block_hash).signing_bytes()
}

/// Checks an ed25519 signature with the strict rules (no malleable or
/// small-order forms), the only verification this crate uses.
pub fn verify_signature(key: &ValidatorKey, bytes: &[u8], signature: &SignatureBytes) -> bool {
    custody_format::signature::verify_strict(key, bytes, signature)
}

/// Why bytes from the network are not a consensus message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than the configured maximum; refused before parsing.
    #[error("message is {len} bytes, more than the maximum of {max}")]
    TooLarge {
        /// Length received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a postcard encoding of a signed message.
    #[error("message bytes are malformed: {0}")]
    Malformed(String),
    /// A valid message followed by extra bytes.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
    /// Decodes, but re-encoding gives different bytes (e.g. an overlong
    /// integer), so it is not the one canonical form.
    #[error("message bytes are not in canonical form")]
    NotCanonical,
}

/// A message with its chain id, signer and signature: what travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    /// The chain the message belongs to (also covered by the signature).
    pub chain_id: String,
    /// The message.
    pub message: Message,
    /// The signer's public key.
    pub validator: ValidatorKey,
    /// Signature over [`signing_bytes`]`(chain_id, message)`.
    pub signature: SignatureBytes,
}

impl SignedMessage {
    /// Signs `message` for `chain_id` with `key`.
    pub fn sign(chain_id: &str, message: Message, key: &SigningKey) -> SignedMessage {
        let signature = key.sign(&signing_bytes(chain_id, &message));
        SignedMessage {
            chain_id: chain_id.to_owned(),
            message,
            validator: ValidatorKey::from(&key.verifying_key()),
            signature: SignatureBytes(signature.to_bytes()),
        }
    }

    /// True when the signature is valid for the signer named inside.
    /// (Membership in a validator set is the caller's concern.)
    pub fn verify_signature(&self) -> bool {
        verify_signature(
            &self.validator,
            &signing_bytes(&self.chain_id, &self.message),
            &self.signature,
        )
    }

    /// Like [`SignedMessage::verify_signature`] with the signer's key
    /// already decompressed (the state machine keeps one per validator).
    pub fn verify_signature_with(&self, key: &VerifyingKey) -> bool {
        custody_format::signature::verify_strict_with(
            key,
            &signing_bytes(&self.chain_id, &self.message),
            &self.signature,
        )
    }

    /// This message as the format's signed vote (what an equivocation
    /// record on chain carries), if it is a vote. The chain id stays
    /// behind: the vote verifies only under its own chain's id.
    pub fn as_signed_vote(&self) -> Option<custody_format::vote::SignedVote> {
        let (kind, vote) = self.message.as_vote()?;
        Some(custody_format::vote::SignedVote {
            kind,
            height: vote.height,
            round: vote.round,
            block_hash: vote.block_hash,
            validator: self.validator,
            signature: self.signature,
        })
    }

    /// The canonical wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        canonical_bytes(self)
    }

    /// Length of the canonical encoding, computed without allocating it.
    pub fn encoded_len(&self) -> usize {
        postcard::serialize_with_flavor::<Self, postcard::ser_flavors::Size, usize>(
            self,
            postcard::ser_flavors::Size::default(),
        )
        .unwrap_or(usize::MAX)
    }

    /// Decodes wire bytes, refusing anything longer than `max_bytes`,
    /// trailing bytes and non-canonical encodings. The signature is not
    /// checked here; the state machine does that.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<SignedMessage, DecodeError> {
        if bytes.len() > max_bytes {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: max_bytes,
            });
        }
        let (message, rest) = postcard::take_from_bytes::<SignedMessage>(bytes)
            .map_err(|error| DecodeError::Malformed(error.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        if message.encode() != bytes {
            return Err(DecodeError::NotCanonical);
        }
        Ok(message)
    }

    /// Height the message is about (lets the node notice a peer that is
    /// ahead or behind without decoding further).
    pub fn height(&self) -> Height {
        self.message.height()
    }

    /// Round the message is about.
    pub fn round(&self) -> Round {
        self.message.round()
    }
}
