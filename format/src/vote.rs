//! A validator's signed vote (prevote or precommit) as bytes anyone can
//! check: the exact message consensus signs for each kind of vote, built
//! here once, so that the ledger checks the two votes of an equivocation
//! (`docs/format.md`, transaction format version 3) without knowing
//! consensus, and consensus signs through the same function.
//!
//! The signed bytes, for `chain_id`, `height`, `round` and the block voted
//! for (`None` is a vote for nil):
//!
//! - prevote: `tagged("custody/prevote/v1", postcard(chain_id, height,
//!   round, Option<block_hash>))`;
//! - precommit for a block: `tagged("custody/commit-vote/v1",
//!   postcard(CommitVote))` — the bytes a commit certificate's signatures
//!   cover;
//! - precommit for nil: `tagged("custody/precommit-nil/v1",
//!   postcard(chain_id, height, round))`.

use serde::{Deserialize, Serialize};

use crate::certificate::CommitVote;
use crate::encoding;
use crate::signature;
use crate::tags;
use crate::types::{BlockHash, Height, PublicKey, Round, Signature};

/// The two kinds of vote. Postcard index: 0 prevote, 1 precommit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoteKind {
    /// First voting step of a round.
    Prevote,
    /// Second voting step; a quorum of precommits for a block commits it.
    Precommit,
}

impl VoteKind {
    /// `prevote` or `precommit`, as in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            VoteKind::Prevote => "prevote",
            VoteKind::Precommit => "precommit",
        }
    }
}

#[derive(Serialize)]
struct PrevoteBody<'a> {
    chain_id: &'a str,
    height: Height,
    round: Round,
    block_hash: Option<BlockHash>,
}

#[derive(Serialize)]
struct NilPrecommitBody<'a> {
    chain_id: &'a str,
    height: Height,
    round: Round,
}

/// The exact bytes a validator signs for a vote of `kind` on chain
/// `chain_id` (see the module documentation).
pub fn vote_signing_bytes(
    kind: VoteKind,
    chain_id: &str,
    height: Height,
    round: Round,
    block_hash: Option<BlockHash>,
) -> Vec<u8> {
    match (kind, block_hash) {
        (VoteKind::Prevote, block_hash) => encoding::signing_bytes(
            tags::PREVOTE,
            &PrevoteBody {
                chain_id,
                height,
                round,
                block_hash,
            },
        ),
        (VoteKind::Precommit, Some(hash)) => {
            CommitVote::new(chain_id, height, round, hash).signing_bytes()
        }
        (VoteKind::Precommit, None) => encoding::signing_bytes(
            tags::PRECOMMIT_NIL,
            &NilPrecommitBody {
                chain_id,
                height,
                round,
            },
        ),
    }
}

/// One vote as its validator signed it. The chain id is not carried: it
/// is the chain's own, and a vote signed for another chain does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVote {
    pub kind: VoteKind,
    pub height: Height,
    pub round: Round,
    /// The block voted for; `None` is a vote for nil.
    pub block_hash: Option<BlockHash>,
    pub validator: PublicKey,
    /// ed25519 over [`vote_signing_bytes`].
    pub signature: Signature,
}

impl SignedVote {
    /// The bytes this vote's signature covers on chain `chain_id`.
    pub fn signing_bytes(&self, chain_id: &str) -> Vec<u8> {
        vote_signing_bytes(
            self.kind,
            chain_id,
            self.height,
            self.round,
            self.block_hash,
        )
    }

    /// Whether the signature holds under strict ed25519 (as consensus
    /// checks votes) for chain `chain_id`.
    pub fn verify(&self, chain_id: &str) -> bool {
        signature::verify_strict(
            &self.validator,
            &self.signing_bytes(chain_id),
            &self.signature,
        )
    }

    /// Signs a vote with `key` (tests, vectors and simulations).
    pub fn sign(
        key: &ed25519_dalek::SigningKey,
        chain_id: &str,
        kind: VoteKind,
        height: Height,
        round: Round,
        block_hash: Option<BlockHash>,
    ) -> SignedVote {
        let message = vote_signing_bytes(kind, chain_id, height, round, block_hash);
        SignedVote {
            kind,
            height,
            round,
            block_hash,
            validator: signature::public_key_of(key),
            signature: signature::sign(key, &message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// decode ∘ encode = identity for every vote, and the strict
        /// decoder never panics on random bytes.
        #[test]
        fn a_signed_vote_decodes_to_itself(
            precommit in any::<bool>(),
            height in any::<u64>(),
            round in any::<u64>(),
            block in proptest::option::of(any::<[u8; 32]>()),
            validator in any::<[u8; 32]>(),
            r in any::<[u8; 32]>(),
            s in any::<[u8; 32]>(),
        ) {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&r);
            signature[32..].copy_from_slice(&s);
            let vote = SignedVote {
                kind: if precommit { VoteKind::Precommit } else { VoteKind::Prevote },
                height: Height(height),
                round: Round(round),
                block_hash: block.map(BlockHash),
                validator: PublicKey(validator),
                signature: Signature(signature),
            };
            let bytes = encoding::encode(&vote);
            prop_assert_eq!(encoding::decode::<SignedVote>(&bytes), Ok(vote));
        }

        #[test]
        fn random_bytes_never_panic_the_vote_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = encoding::decode::<SignedVote>(&bytes);
        }
    }

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
    }

    #[test]
    fn a_signed_vote_verifies_for_its_chain_only() {
        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
            for block_hash in [None, Some(BlockHash([3; 32]))] {
                let vote = SignedVote::sign(&key(), "c", kind, Height(4), Round(1), block_hash);
                assert!(vote.verify("c"));
                assert!(!vote.verify("d"));
            }
        }
    }

    #[test]
    fn a_vote_for_a_block_differs_from_a_vote_for_nil() {
        let nil = vote_signing_bytes(VoteKind::Prevote, "c", Height(1), Round(0), None);
        let block = vote_signing_bytes(
            VoteKind::Prevote,
            "c",
            Height(1),
            Round(0),
            Some(BlockHash([0; 32])),
        );
        assert_ne!(nil, block);
    }

    #[test]
    fn a_precommit_for_a_block_is_signed_over_the_commit_vote() {
        let hash = BlockHash([9; 32]);
        assert_eq!(
            vote_signing_bytes(VoteKind::Precommit, "c", Height(2), Round(3), Some(hash)),
            CommitVote::new("c", Height(2), Round(3), hash).signing_bytes()
        );
    }

    #[test]
    fn signed_vote_round_trips_through_the_strict_decoder() {
        let vote = SignedVote::sign(
            &key(),
            "c",
            VoteKind::Precommit,
            Height(300),
            Round(2),
            Some(BlockHash([1; 32])),
        );
        let bytes = encoding::encode(&vote);
        assert_eq!(encoding::decode::<SignedVote>(&bytes), Ok(vote));
    }
}
