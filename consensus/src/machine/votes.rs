//! Vote tallies: what was received in each round, and the power behind
//! each value. Pure bookkeeping; the rules that read it are in `rules`.

use std::collections::{BTreeMap, BTreeSet};

use crate::message::{Message, SignedMessage};
use crate::types::{BlockHash, ValidatorKey};

use super::{PROPOSALS_PER_ROUND_MAX, VOTES_PER_VALIDATOR_MAX};

/// The votes of one kind in one round. A validator's first vote comes
/// first; later ones conflict with it (equivocation).
#[derive(Clone, Debug, Default)]
pub(super) struct VoteSet {
    votes: BTreeMap<ValidatorKey, Vec<SignedMessage>>,
    power_by_value: BTreeMap<Option<BlockHash>, u64>,
    /// Power of the validators with any vote here, each counted once.
    pub(super) power_total: u64,
}

/// What became of one vote offered to a [`VoteSet`].
pub(super) enum Tally {
    /// The sender already voted for this value (perhaps under another
    /// valid signature: ed25519 signers may randomise); it does not count
    /// twice.
    Duplicate,
    /// The sender has `VOTES_PER_VALIDATOR_MAX` conflicting votes already;
    /// `first` is its first one, for the evidence.
    Full { first: SignedMessage },
    /// Counted. `first` is the sender's earlier, conflicting vote, if any.
    Added { first: Option<SignedMessage> },
}

impl VoteSet {
    pub(super) fn power_for(&self, value: Option<BlockHash>) -> u64 {
        self.power_by_value.get(&value).copied().unwrap_or(0)
    }

    pub(super) fn holds(&self, message: &SignedMessage) -> bool {
        self.votes
            .get(&message.validator)
            .is_some_and(|held| held.contains(message))
    }

    /// Every vote held, in validator order.
    pub(super) fn all(&self) -> impl Iterator<Item = &SignedMessage> {
        self.votes.values().flatten()
    }

    /// The votes held for `hash` (a block, not nil).
    pub(super) fn for_block(&self, hash: BlockHash) -> impl Iterator<Item = &SignedMessage> {
        self.all().filter(move |message| {
            message
                .message
                .as_vote()
                .is_some_and(|(_, vote)| vote.block_hash == Some(hash))
        })
    }

    /// Counts `message` (a vote for `block_hash` by a validator with
    /// `power`).
    pub(super) fn record(
        &mut self,
        message: &SignedMessage,
        block_hash: Option<BlockHash>,
        power: u64,
    ) -> Tally {
        let held = self.votes.entry(message.validator).or_default();
        let same_value = held.iter().any(|earlier| {
            earlier
                .message
                .as_vote()
                .is_some_and(|(_, earlier_vote)| earlier_vote.block_hash == block_hash)
        });
        if same_value {
            return Tally::Duplicate;
        }
        let first = held.first().cloned();
        if held.len() >= VOTES_PER_VALIDATOR_MAX {
            return match first {
                Some(first) => Tally::Full { first },
                // Unreachable with a positive bound (checked at compile
                // time); refusing is the safe answer either way.
                None => Tally::Duplicate,
            };
        }
        held.push(message.clone());
        // Like the paper, count messages: a validator adds its power once
        // to each value it voted for (an equivocator may thus count for two
        // values, which the quorum intersection argument already allows
        // for), and once to the total.
        *self.power_by_value.entry(block_hash).or_insert(0) += power;
        if first.is_none() {
            self.power_total += power;
        }
        Tally::Added { first }
    }
}

/// What became of one proposal offered to a [`RoundState`].
pub(super) enum ProposalTally {
    /// The round's first proposal.
    First,
    /// A second, conflicting one, kept: `first` is the earlier one.
    Conflicting { first: SignedMessage },
    /// More conflicting proposals than are kept: dropped.
    Full { first: SignedMessage },
}

/// Everything received for one round.
#[derive(Clone, Debug, Default)]
pub(super) struct RoundState {
    /// Proposals from the round's proposer, first one first.
    pub(super) proposals: Vec<SignedMessage>,
    pub(super) prevotes: VoteSet,
    pub(super) precommits: VoteSet,
    /// Validators with any message in this round (L55).
    senders: BTreeSet<ValidatorKey>,
    pub(super) senders_power: u64,
    /// L34 fired.
    pub(super) prevote_timeout_scheduled: bool,
    /// L47 fired.
    pub(super) precommit_timeout_scheduled: bool,
    /// L36 fired.
    pub(super) polka_handled: bool,
}

impl RoundState {
    /// Counts `validator` once among the round's senders (L55).
    pub(super) fn add_sender(&mut self, validator: ValidatorKey, power: u64) {
        if self.senders.insert(validator) {
            self.senders_power += power;
        }
    }

    /// Keeps `message`, a proposal from the round's proposer.
    pub(super) fn record_proposal(&mut self, message: &SignedMessage) -> ProposalTally {
        match self.proposals.first().cloned() {
            None => {
                self.proposals.push(message.clone());
                ProposalTally::First
            }
            Some(first) if self.proposals.len() >= PROPOSALS_PER_ROUND_MAX => {
                ProposalTally::Full { first }
            }
            Some(first) => {
                self.proposals.push(message.clone());
                ProposalTally::Conflicting { first }
            }
        }
    }

    /// True when exactly this signed message is already stored, so a
    /// re-broadcast or duplicate costs no signature check.
    pub(super) fn holds_identical(&self, message: &SignedMessage) -> bool {
        match &message.message {
            Message::Proposal(_) => self.proposals.iter().any(|held| held == message),
            Message::Prevote(_) => self.prevotes.holds(message),
            Message::Precommit(_) => self.precommits.holds(message),
        }
    }
}
