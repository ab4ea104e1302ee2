//! The Tendermint state machine (Buchman, Kwon, Milosevic 2018,
//! arXiv:1807.04938, Algorithm 1). Line numbers in comments ("L22") refer
//! to Algorithm 1 of that paper.
//!
//! Inputs go in through [`Consensus::handle`], actions come out. The
//! machine owns no clock, socket, file or random number generator.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::certificate::{CommitCertificate, CommitSignature};
use crate::message::{Message, Proposal, SignedMessage, Vote, VoteKind};
use crate::types::{BlockHash, Height, Round, ValidatorKey, ValidatorSet, Value};

/// Default largest encoded consensus message (a proposal carries the
/// block, so this bounds the block size too).
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;

/// Heights ahead of the current one whose messages are kept until the
/// node starts that height (a node that commits a little later than its
/// peers must not lose their first votes of the next height).
pub const FUTURE_HEIGHTS_MAX: u64 = 2;

/// Messages kept for future heights, per sending validator.
pub const FUTURE_MESSAGES_PER_VALIDATOR_MAX: usize = 32;

/// Messages kept for future heights, all senders together.
pub const FUTURE_MESSAGES_MAX: usize = 4096;

/// Rounds ahead of the current one whose messages are stored; anything
/// further is dropped so a Byzantine validator cannot fill memory with
/// votes for far-away rounds. Honest validators move through rounds in
/// step (the f+1 rule pulls laggards forward), so they stay well inside.
pub const FUTURE_ROUNDS_MAX: u64 = 64;

/// Distinct votes of one kind kept per validator and round. One is
/// honest; an equivocator's second and third versions are kept (and
/// counted for their values, as the paper counts messages) so that a proof
/// of lock forwarded by a peer still counts after this node saw the other
/// version; beyond that they are dropped to bound memory.
pub const VOTES_PER_VALIDATOR_MAX: usize = 3;

/// Distinct proposals kept per round. One is honest; more come only from
/// an equivocating proposer, and a second one is kept so that a commit of
/// either can still be recognised (L49).
pub const PROPOSALS_PER_ROUND_MAX: usize = 2;

/// On each rebroadcast tick, own messages from the current round and this
/// many rounds before it are sent again.
pub const REBROADCAST_ROUNDS_BEHIND_MAX: u64 = 2;

/// Timeout durations. Each step's timeout is `base + delta * round`: it
/// grows linearly with the round, as the paper requires for liveness after
/// GST, and is back to `base` at round 0 of every new height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutConfig {
    /// Wait for the proposal, round 0.
    pub propose_ms: u64,
    /// Extra wait for the proposal per round.
    pub propose_delta_ms: u64,
    /// Wait after a quorum of mixed prevotes, round 0.
    pub prevote_ms: u64,
    /// Extra per round.
    pub prevote_delta_ms: u64,
    /// Wait after a quorum of mixed precommits, round 0.
    pub precommit_ms: u64,
    /// Extra per round.
    pub precommit_delta_ms: u64,
    /// Period of the re-broadcast of this validator's own messages.
    pub rebroadcast_ms: u64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            propose_ms: 3000,
            propose_delta_ms: 500,
            prevote_ms: 1000,
            prevote_delta_ms: 500,
            precommit_ms: 1000,
            precommit_delta_ms: 500,
            rebroadcast_ms: 2000,
        }
    }
}

impl TimeoutConfig {
    /// Duration of the timeout `step` in `round`.
    pub fn duration_ms(&self, step: TimeoutStep, round: Round) -> u64 {
        let (base, delta) = match step {
            TimeoutStep::Propose => (self.propose_ms, self.propose_delta_ms),
            TimeoutStep::Prevote => (self.prevote_ms, self.prevote_delta_ms),
            TimeoutStep::Precommit => (self.precommit_ms, self.precommit_delta_ms),
            TimeoutStep::Rebroadcast => return self.rebroadcast_ms,
        };
        base.saturating_add(delta.saturating_mul(round.0))
    }
}

/// Deliberately wrong rules, only for tests that prove the simulator can
/// catch a broken protocol. Never set outside tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultInjection {
    /// Use a quorum of 2f (f = floor((total - 1) / 3)) instead of more than
    /// two thirds.
    pub quorum_of_two_f: bool,
    /// Ignore `lockedValue`/`lockedRound` when prevoting (L22, L28).
    pub ignore_locks: bool,
}

/// Configuration of one state machine.
#[derive(Clone)]
pub struct Config {
    /// The chain id, covered by every signature.
    pub chain_id: String,
    /// This validator's signing key; `None` for an observer that follows
    /// and commits but never votes.
    pub signing_key: Option<SigningKey>,
    /// Timeout durations.
    pub timeouts: TimeoutConfig,
    /// Largest encoded message accepted or sent.
    pub message_bytes_max: usize,
    #[doc(hidden)]
    pub fault_injection: FaultInjection,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("chain_id", &self.chain_id)
            .field(
                "signing_key",
                &self
                    .signing_key
                    .as_ref()
                    .map(|key| ValidatorKey::from(&key.verifying_key())),
            )
            .field("timeouts", &self.timeouts)
            .field("message_bytes_max", &self.message_bytes_max)
            .finish()
    }
}

impl Config {
    /// A configuration with default timeouts and message size.
    pub fn new(chain_id: impl Into<String>, signing_key: Option<SigningKey>) -> Config {
        Config {
            chain_id: chain_id.into(),
            signing_key,
            timeouts: TimeoutConfig::default(),
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            fault_injection: FaultInjection::default(),
        }
    }
}

/// The step of a round (the paper's `step_p`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    /// Waiting for the round's proposal.
    Propose,
    /// Prevoted; waiting for prevotes.
    Prevote,
    /// Precommitted; waiting for precommits.
    Precommit,
}

/// Which timeout fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimeoutStep {
    /// `OnTimeoutPropose` (L57).
    Propose,
    /// `OnTimeoutPrevote` (L61).
    Prevote,
    /// `OnTimeoutPrecommit` (L65).
    Precommit,
    /// Periodic re-broadcast of own messages (not in the paper; its
    /// gossip assumption is what this provides).
    Rebroadcast,
}

/// A timeout the node schedules and feeds back as [`Input::Timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeoutEvent {
    /// Height it was scheduled at.
    pub height: Height,
    /// Round it was scheduled at.
    pub round: Round,
    /// Which timeout.
    pub step: TimeoutStep,
}

/// Everything that goes into the state machine.
#[derive(Clone, Debug)]
pub enum Input {
    /// A message from the network (including re-broadcasts and duplicates).
    Message(SignedMessage),
    /// A timeout scheduled by [`Action::ScheduleTimeout`] fired.
    Timeout(TimeoutEvent),
    /// The node's answer to [`Action::RequestProposal`].
    ProposalValue {
        /// Height of the request.
        height: Height,
        /// Round of the request.
        round: Round,
        /// The block to propose; trusted as valid (the node built it).
        value: Value,
    },
    /// The node's answer to [`Action::ValidateValue`]: whether the bytes
    /// decode to a block whose hash is `hash` and that applies.
    ValueVerdict {
        /// Height of the request.
        height: Height,
        /// Hash of the value that was checked.
        hash: BlockHash,
        /// The verdict.
        valid: bool,
    },
    /// Start `height` with the validator set in force there: after a
    /// [`Action::Commit`] (height + 1), or after the node synced committed
    /// blocks from peers (any later height).
    StartHeight {
        /// The height to start; ignored unless above the current one.
        height: Height,
        /// Validators in force at that height.
        validators: ValidatorSet,
    },
}

/// Two conflicting signed messages from one validator for the same
/// height, round and kind: proof of a Byzantine validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    /// The message received first.
    pub first: SignedMessage,
    /// The conflicting one.
    pub second: SignedMessage,
}

/// What the node must do, in the order given.
///
/// When the node feeds a new input while still carrying out a list (for
/// example it answers `ValidateValue` at once), the new list's actions go
/// after the rest of the current list, never before: each `Persist` holds
/// the whole state at its point, so a newer one must never be overwritten
/// by an older one.
// A handful of actions per input, each moved once: boxing the large
// variants would cost more than the unused bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Action {
    /// Write this state durably, replacing the previous one, before carrying
    /// out any later action. Always precedes the broadcast of an own vote or
    /// proposal that it covers.
    Persist(PersistedState),
    /// Send this message to every validator (gossip).
    Broadcast(SignedMessage),
    /// Feed `event` back as [`Input::Timeout`] after `duration_ms`.
    /// Timeouts are never cancelled; stale ones are ignored on arrival.
    ScheduleTimeout {
        /// What to feed back.
        event: TimeoutEvent,
        /// Delay in milliseconds.
        duration_ms: u64,
    },
    /// This validator proposes `(height, round)`: answer with
    /// [`Input::ProposalValue`].
    RequestProposal {
        /// Height to propose for.
        height: Height,
        /// Round to propose in.
        round: Round,
    },
    /// Check `value` (bytes decode to a block with this hash that applies
    /// on top of the chain at `height - 1`) and answer with
    /// [`Input::ValueVerdict`].
    ValidateValue {
        /// Height the value is proposed at.
        height: Height,
        /// The value to check.
        value: Value,
    },
    /// `value` is decided at `height`. Store it with its certificate, then
    /// send [`Input::StartHeight`] for `height + 1`.
    Commit {
        /// The decided height.
        height: Height,
        /// The decided value.
        value: Value,
        /// Precommits proving the decision.
        certificate: CommitCertificate,
    },
    /// A validator equivocated.
    Evidence(Equivocation),
}

/// What a validator must keep on disk so that, after a crash, it never
/// signs a message that conflicts with one it already signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Current height.
    pub height: Height,
    /// Current round (rounds only grow, and a validator only votes in its
    /// current round, so restoring it rules out voting in an earlier one).
    pub round: Round,
    /// Current step.
    pub step: Step,
    /// `lockedRound`/`lockedValue`.
    pub locked: Option<(Round, Value)>,
    /// `validRound`/`validValue`.
    pub valid: Option<(Round, Value)>,
    /// Every proposal and vote this validator signed at this height.
    pub own_messages: Vec<SignedMessage>,
    /// The prevotes (other validators' signed messages) for the valid value
    /// in the valid round: the proof of lock this validator must be able to
    /// show when it re-proposes the valid value. Without it a restarted
    /// validator could stay locked on a block whose polka nobody else saw,
    /// and with a Byzantine voter in that polka no round would ever commit.
    pub valid_proof: Vec<SignedMessage>,
}

/// Why a state machine could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// Height 0 does not exist; the first block has height 1.
    #[error("height 0 does not exist; the first block has height 1")]
    HeightZero,
    /// The persisted state belongs to a later height than the one asked to
    /// start: the node's store is behind its consensus state.
    #[error(
        "persisted consensus state is for height {persisted}, later than the start height {start}"
    )]
    PersistedStateAhead {
        /// Height in the persisted state.
        persisted: Height,
        /// Height requested.
        start: Height,
    },
    /// The persisted state holds a message not signed by this validator's key.
    #[error("persisted consensus state holds a message signed by another key")]
    PersistedStateForeign,
    /// The chain id is empty.
    #[error("the chain id is empty")]
    EmptyChainId,
}

/// Validity of a proposed value, as told by the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Pending,
    Valid,
    Invalid,
}

#[derive(Clone, Debug)]
struct ValueCheck {
    value: Value,
    verdict: Verdict,
}

/// The votes of one kind in one round. A validator's first vote comes
/// first; later ones conflict with it (equivocation).
#[derive(Clone, Debug, Default)]
struct VoteSet {
    votes: BTreeMap<ValidatorKey, Vec<SignedMessage>>,
    power_by_value: BTreeMap<Option<BlockHash>, u64>,
    power_total: u64,
}

impl VoteSet {
    fn power_for(&self, value: Option<BlockHash>) -> u64 {
        self.power_by_value.get(&value).copied().unwrap_or(0)
    }

    fn holds(&self, message: &SignedMessage) -> bool {
        self.votes
            .get(&message.validator)
            .is_some_and(|held| held.contains(message))
    }
}

/// Everything received for one round.
#[derive(Clone, Debug, Default)]
struct RoundState {
    /// Proposals from the round's proposer, first one first.
    proposals: Vec<SignedMessage>,
    prevotes: VoteSet,
    precommits: VoteSet,
    /// Validators with any message in this round (L55).
    senders: BTreeSet<ValidatorKey>,
    senders_power: u64,
    /// L34 fired.
    prevote_timeout_scheduled: bool,
    /// L47 fired.
    precommit_timeout_scheduled: bool,
    /// L36 fired.
    polka_handled: bool,
}

/// The outcome of receiving one message, for the node's logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Stored and acted upon.
    Accepted,
    /// Kept for a later height.
    Buffered,
    /// Already held; nothing changed.
    Duplicate,
    /// Refused; nothing changed.
    Dropped(DropReason),
}

/// Why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Larger than the configured maximum.
    TooLarge,
    /// For another chain.
    WrongChain,
    /// For a height already decided or passed.
    PastHeight,
    /// Too far ahead (height or round).
    TooFarAhead,
    /// The future-height buffer is full.
    BufferFull,
    /// Signer is not a validator at this height.
    NotValidator,
    /// Signature does not verify.
    BadSignature,
    /// A proposal not from the round's proposer.
    WrongProposer,
    /// A proposal whose valid round is not below its round.
    BadValidRound,
    /// More conflicting proposals than are kept.
    TooManyProposals,
    /// More conflicting votes from one validator than are kept.
    TooManyVotes,
}

/// The Tendermint state machine for one validator (or observer).
pub struct Consensus {
    config: Config,
    own_key: Option<ValidatorKey>,
    validators: ValidatorSet,
    /// Decompressed public keys of the current set: decompressing a key
    /// costs about as much as a third of a signature check.
    verifying_keys: BTreeMap<ValidatorKey, VerifyingKey>,
    height: Height,
    round: Round,
    step: Step,
    locked: Option<(Round, Value)>,
    valid: Option<(Round, Value)>,
    decision: Option<(Round, Value)>,
    rounds: BTreeMap<Round, RoundState>,
    values: BTreeMap<BlockHash, ValueCheck>,
    own_messages: Vec<SignedMessage>,
    awaiting_proposal: Option<Round>,
    evidence_reported: BTreeSet<(ValidatorKey, Round, u8)>,
    future: BTreeMap<Height, Vec<SignedMessage>>,
    future_count_by_sender: BTreeMap<ValidatorKey, usize>,
    future_count: usize,
    persist_dirty: bool,
    last_disposition: Disposition,
}

impl std::fmt::Debug for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consensus")
            .field("own_key", &self.own_key)
            .field("height", &self.height)
            .field("round", &self.round)
            .field("step", &self.step)
            .field("locked", &self.locked.as_ref().map(|(r, v)| (*r, v.hash)))
            .field("valid", &self.valid.as_ref().map(|(r, v)| (*r, v.hash)))
            .field("decided", &self.decision.is_some())
            .finish()
    }
}

impl Consensus {
    /// Builds the state machine at `height` with `validators`. With
    /// `persisted` from the same height (a restart), resumes from it and
    /// will never sign anything that conflicts with what it already
    /// signed; a persisted state from an earlier height is ignored.
    ///
    /// The returned actions start the height (timeouts, maybe a proposal
    /// request, re-broadcast of persisted own messages).
    pub fn new(
        config: Config,
        validators: ValidatorSet,
        height: Height,
        persisted: Option<PersistedState>,
    ) -> Result<(Consensus, Vec<Action>), ConsensusError> {
        if height.0 == 0 {
            return Err(ConsensusError::HeightZero);
        }
        if config.chain_id.is_empty() {
            return Err(ConsensusError::EmptyChainId);
        }
        let own_key = config
            .signing_key
            .as_ref()
            .map(|key| ValidatorKey::from(&key.verifying_key()));
        let verifying_keys = Self::decompress_keys(&validators);
        let mut machine = Consensus {
            config,
            own_key,
            validators,
            verifying_keys,
            height,
            round: Round(0),
            step: Step::Propose,
            locked: None,
            valid: None,
            decision: None,
            rounds: BTreeMap::new(),
            values: BTreeMap::new(),
            own_messages: Vec::new(),
            awaiting_proposal: None,
            evidence_reported: BTreeSet::new(),
            future: BTreeMap::new(),
            future_count_by_sender: BTreeMap::new(),
            future_count: 0,
            persist_dirty: false,
            last_disposition: Disposition::Accepted,
        };
        let mut out = Vec::new();
        match persisted {
            Some(state) if state.height > height => {
                return Err(ConsensusError::PersistedStateAhead {
                    persisted: state.height,
                    start: height,
                })
            }
            Some(state) if state.height == height => {
                if state
                    .own_messages
                    .iter()
                    .any(|message| Some(message.validator) != machine.own_key)
                {
                    return Err(ConsensusError::PersistedStateForeign);
                }
                machine.resume(state, &mut out);
            }
            _ => {
                machine.schedule_rebroadcast(&mut out);
                machine.start_round(Round(0), &mut out);
            }
        }
        machine.evaluate(&mut out);
        machine.flush_persist(&mut out);
        Ok((machine, out))
    }

    /// Feeds one input; returns the actions to carry out, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Message(message) => {
                self.last_disposition = self.on_message(message, true, &mut out);
            }
            Input::Timeout(event) => self.on_timeout(event, &mut out),
            Input::ProposalValue {
                height,
                round,
                value,
            } => self.on_proposal_value(height, round, value, &mut out),
            Input::ValueVerdict {
                height,
                hash,
                valid,
            } => self.on_verdict(height, hash, valid, &mut out),
            Input::StartHeight { height, validators } => {
                self.on_start_height(height, validators, &mut out)
            }
        }
        self.evaluate(&mut out);
        self.flush_persist(&mut out);
        out
    }

    /// What happened to the last [`Input::Message`].
    pub fn last_disposition(&self) -> Disposition {
        self.last_disposition
    }

    /// Current height.
    pub fn height(&self) -> Height {
        self.height
    }

    /// Current round.
    pub fn round(&self) -> Round {
        self.round
    }

    /// Current step.
    pub fn step(&self) -> Step {
        self.step
    }

    /// True once the current height is decided (until `StartHeight`).
    pub fn is_decided(&self) -> bool {
        self.decision.is_some()
    }

    /// The validator set of the current height.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.config.chain_id
    }

    /// The state that [`Action::Persist`] would write now.
    pub fn persisted_state(&self) -> PersistedState {
        PersistedState {
            height: self.height,
            round: self.round,
            step: self.step,
            locked: self.locked.clone(),
            valid: self.valid.clone(),
            own_messages: self.own_messages.clone(),
            valid_proof: self.valid_proof(),
        }
    }

    /// The prevotes held for the valid value in the valid round.
    fn valid_proof(&self) -> Vec<SignedMessage> {
        let Some((valid_round, value)) = &self.valid else {
            return Vec::new();
        };
        self.rounds
            .get(valid_round)
            .map(|round_state| {
                round_state
                    .prevotes
                    .votes
                    .values()
                    .flatten()
                    .filter(|vote| {
                        matches!(&vote.message, Message::Prevote(v) if v.block_hash == Some(value.hash))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    // ----- quorum arithmetic -------------------------------------------------

    fn is_quorum(&self, power: u64) -> bool {
        if self.config.fault_injection.quorum_of_two_f {
            let f = self.validators.total_power().saturating_sub(1) / 3;
            return power > 0 && power >= 2 * f;
        }
        self.validators.is_quorum(power)
    }

    fn is_one_third(&self, power: u64) -> bool {
        self.validators.is_one_third(power)
    }

    /// This validator's key when it is a member of the current set.
    fn voting_key(&self) -> Option<ValidatorKey> {
        self.own_key
            .filter(|key| self.validators.power_of(key).is_some())
    }

    // ----- inputs ------------------------------------------------------------

    fn on_message(
        &mut self,
        message: SignedMessage,
        check_signature: bool,
        out: &mut Vec<Action>,
    ) -> Disposition {
        if message.encoded_len() > self.config.message_bytes_max {
            return Disposition::Dropped(DropReason::TooLarge);
        }
        if message.chain_id != self.config.chain_id {
            return Disposition::Dropped(DropReason::WrongChain);
        }
        let height = message.height();
        if height < self.height || (height == self.height && self.decision.is_some()) {
            return Disposition::Dropped(DropReason::PastHeight);
        }
        if height > self.height {
            return self.buffer_future(message);
        }
        let Some(power) = self.validators.power_of(&message.validator) else {
            return Disposition::Dropped(DropReason::NotValidator);
        };
        let round = message.round();
        if round.0 > self.round.0.saturating_add(FUTURE_ROUNDS_MAX) {
            return Disposition::Dropped(DropReason::TooFarAhead);
        }
        if self.holds_identical(&message) {
            return Disposition::Duplicate;
        }
        if check_signature && !self.signature_ok(&message) {
            return Disposition::Dropped(DropReason::BadSignature);
        }
        match &message.message {
            Message::Proposal(proposal) => {
                if self.validators.proposer(height, round).key != message.validator {
                    return Disposition::Dropped(DropReason::WrongProposer);
                }
                if proposal
                    .valid_round
                    .is_some_and(|valid_round| valid_round >= round)
                {
                    return Disposition::Dropped(DropReason::BadValidRound);
                }
                let value = proposal.value.clone();
                let round_state = self.rounds.entry(round).or_default();
                if let Some(first) = round_state.proposals.first().cloned() {
                    if round_state.proposals.len() >= PROPOSALS_PER_ROUND_MAX {
                        self.report_equivocation(first, message, 0, out);
                        return Disposition::Dropped(DropReason::TooManyProposals);
                    }
                    round_state.proposals.push(message.clone());
                    self.report_equivocation(first, message.clone(), 0, out);
                } else {
                    round_state.proposals.push(message.clone());
                }
                Self::add_sender(
                    self.rounds.entry(round).or_default(),
                    message.validator,
                    power,
                );
                self.request_validation(value, out);
            }
            Message::Prevote(vote) | Message::Precommit(vote) => {
                let kind = match &message.message {
                    Message::Prevote(_) => VoteKind::Prevote,
                    _ => VoteKind::Precommit,
                };
                let block_hash = vote.block_hash;
                let tag = match kind {
                    VoteKind::Prevote => 1,
                    VoteKind::Precommit => 2,
                };
                let round_state = self.rounds.entry(round).or_default();
                let set = match kind {
                    VoteKind::Prevote => &mut round_state.prevotes,
                    VoteKind::Precommit => &mut round_state.precommits,
                };
                let held = set.votes.entry(message.validator).or_default();
                let same_value = held.iter().any(|earlier| {
                    earlier
                        .message
                        .as_vote()
                        .is_some_and(|(_, earlier_vote)| earlier_vote.block_hash == block_hash)
                });
                if same_value {
                    // Same vote under another valid signature (ed25519 signers
                    // may randomise): it must not count twice.
                    return Disposition::Duplicate;
                }
                let first = held.first().cloned();
                if held.len() >= VOTES_PER_VALIDATOR_MAX {
                    if let Some(first) = first {
                        self.report_equivocation(first, message, tag, out);
                    }
                    return Disposition::Dropped(DropReason::TooManyVotes);
                }
                held.push(message.clone());
                // Like the paper, count messages: a validator adds its power
                // once to each value it voted for (an equivocator may thus
                // count for two values, which the quorum intersection
                // argument already allows for), and once to the total.
                *set.power_by_value.entry(block_hash).or_insert(0) += power;
                if first.is_none() {
                    set.power_total += power;
                }
                Self::add_sender(round_state, message.validator, power);
                if let Some(first) = first {
                    self.report_equivocation(first, message, tag, out);
                }
            }
        }
        Disposition::Accepted
    }

    fn decompress_keys(validators: &ValidatorSet) -> BTreeMap<ValidatorKey, VerifyingKey> {
        validators
            .validators()
            .iter()
            .filter_map(|validator| {
                VerifyingKey::from_bytes(&validator.key.0)
                    .ok()
                    .map(|key| (validator.key, key))
            })
            .collect()
    }

    /// A key that does not decompress signs nothing valid.
    fn signature_ok(&self, message: &SignedMessage) -> bool {
        self.verifying_keys
            .get(&message.validator)
            .is_some_and(|key| message.verify_signature_with(key))
    }

    fn add_sender(round_state: &mut RoundState, validator: ValidatorKey, power: u64) {
        if round_state.senders.insert(validator) {
            round_state.senders_power += power;
        }
    }

    /// True when exactly this signed message is already stored, so a
    /// re-broadcast or duplicate costs no signature check.
    fn holds_identical(&self, message: &SignedMessage) -> bool {
        let Some(round_state) = self.rounds.get(&message.round()) else {
            return false;
        };
        match &message.message {
            Message::Proposal(_) => round_state.proposals.iter().any(|held| held == message),
            Message::Prevote(_) => round_state.prevotes.holds(message),
            Message::Precommit(_) => round_state.precommits.holds(message),
        }
    }

    fn report_equivocation(
        &mut self,
        first: SignedMessage,
        second: SignedMessage,
        kind_tag: u8,
        out: &mut Vec<Action>,
    ) {
        if self
            .evidence_reported
            .insert((second.validator, second.round(), kind_tag))
        {
            out.push(Action::Evidence(Equivocation { first, second }));
        }
    }

    fn buffer_future(&mut self, message: SignedMessage) -> Disposition {
        let height = message.height();
        if height.0 > self.height.0.saturating_add(FUTURE_HEIGHTS_MAX) {
            return Disposition::Dropped(DropReason::TooFarAhead);
        }
        // The set of a later height is not known yet; the current one is the
        // best guess, and membership is checked again when the height starts.
        if self.validators.power_of(&message.validator).is_none() {
            return Disposition::Dropped(DropReason::NotValidator);
        }
        let held = self
            .future
            .get(&height)
            .is_some_and(|list| list.contains(&message));
        if held {
            return Disposition::Duplicate;
        }
        let sender_count = self
            .future_count_by_sender
            .get(&message.validator)
            .copied()
            .unwrap_or(0);
        if self.future_count >= FUTURE_MESSAGES_MAX
            || sender_count >= FUTURE_MESSAGES_PER_VALIDATOR_MAX
        {
            return Disposition::Dropped(DropReason::BufferFull);
        }
        if !self.signature_ok(&message) {
            return Disposition::Dropped(DropReason::BadSignature);
        }
        self.future_count += 1;
        self.future_count_by_sender
            .insert(message.validator, sender_count + 1);
        self.future.entry(height).or_default().push(message);
        Disposition::Buffered
    }

    fn request_validation(&mut self, value: Value, out: &mut Vec<Action>) {
        match self.values.get(&value.hash) {
            None => {}
            // A value already judged invalid with other bytes under the same
            // hash: judge these bytes afresh.
            Some(check)
                if check.verdict == Verdict::Invalid && check.value.bytes != value.bytes => {}
            Some(_) => return,
        }
        out.push(Action::ValidateValue {
            height: self.height,
            value: value.clone(),
        });
        self.values.insert(
            value.hash,
            ValueCheck {
                value,
                verdict: Verdict::Pending,
            },
        );
    }

    /// `valid(v)`: `Some(true)`/`Some(false)` once the node answered for
    /// exactly these bytes, `None` while pending.
    fn validity(&self, value: &Value) -> Option<bool> {
        let check = self.values.get(&value.hash)?;
        if check.value.bytes != value.bytes {
            // Other bytes under the same hash: if those are valid (or being
            // judged), these cannot be the block with that hash.
            return match check.verdict {
                Verdict::Pending => None,
                _ => Some(false),
            };
        }
        match check.verdict {
            Verdict::Pending => None,
            Verdict::Valid => Some(true),
            Verdict::Invalid => Some(false),
        }
    }

    fn on_timeout(&mut self, event: TimeoutEvent, out: &mut Vec<Action>) {
        if event.height != self.height || self.decision.is_some() {
            return;
        }
        match event.step {
            TimeoutStep::Rebroadcast => {
                self.rebroadcast(out);
                self.schedule_rebroadcast(out);
            }
            // L57: OnTimeoutPropose(h, r): prevote nil.
            TimeoutStep::Propose => {
                if event.round == self.round && self.step == Step::Propose {
                    self.set_step(Step::Prevote);
                    self.cast_vote(VoteKind::Prevote, None, out);
                }
            }
            // L61: OnTimeoutPrevote(h, r): precommit nil.
            TimeoutStep::Prevote => {
                if event.round == self.round && self.step == Step::Prevote {
                    self.set_step(Step::Precommit);
                    self.cast_vote(VoteKind::Precommit, None, out);
                }
            }
            // L65: OnTimeoutPrecommit(h, r): StartRound(r + 1).
            TimeoutStep::Precommit => {
                if event.round == self.round {
                    self.start_round(self.round.next(), out);
                }
            }
        }
    }

    fn on_proposal_value(
        &mut self,
        height: Height,
        round: Round,
        value: Value,
        out: &mut Vec<Action>,
    ) {
        if height != self.height
            || round != self.round
            || self.step != Step::Propose
            || self.decision.is_some()
            || self.awaiting_proposal != Some(round)
        {
            return;
        }
        self.awaiting_proposal = None;
        // The node built this value itself: it is valid by construction.
        self.values.insert(
            value.hash,
            ValueCheck {
                value: value.clone(),
                verdict: Verdict::Valid,
            },
        );
        self.propose(value, None, out);
    }

    fn on_verdict(&mut self, height: Height, hash: BlockHash, valid: bool, out: &mut Vec<Action>) {
        let _ = out;
        if height != self.height {
            return;
        }
        if let Some(check) = self.values.get_mut(&hash) {
            if check.verdict == Verdict::Pending {
                check.verdict = if valid {
                    Verdict::Valid
                } else {
                    Verdict::Invalid
                };
            }
        }
    }

    fn on_start_height(&mut self, height: Height, validators: ValidatorSet, out: &mut Vec<Action>) {
        if height <= self.height {
            return;
        }
        self.verifying_keys = Self::decompress_keys(&validators);
        self.validators = validators;
        self.height = height;
        self.locked = None;
        self.valid = None;
        self.decision = None;
        self.rounds.clear();
        self.values.clear();
        self.own_messages.clear();
        self.awaiting_proposal = None;
        self.evidence_reported.clear();
        self.round = Round(0);
        self.step = Step::Propose;
        self.persist_dirty = true;
        self.schedule_rebroadcast(out);
        self.start_round(Round(0), out);
        // Replay what arrived early for this height; drop older buffers.
        let future = std::mem::take(&mut self.future);
        self.future_count = 0;
        self.future_count_by_sender.clear();
        for (buffered_height, messages) in future {
            if buffered_height < height {
                continue;
            }
            for message in messages {
                if buffered_height == height {
                    self.on_message(message, false, out);
                } else {
                    let sender = message.validator;
                    self.future_count += 1;
                    *self.future_count_by_sender.entry(sender).or_insert(0) += 1;
                    self.future
                        .entry(buffered_height)
                        .or_default()
                        .push(message);
                }
            }
        }
    }

    /// Restart from persisted state at the same height.
    fn resume(&mut self, state: PersistedState, out: &mut Vec<Action>) {
        self.round = state.round;
        self.step = state.step;
        self.locked = state.locked;
        self.valid = state.valid;
        // Locked and valid values were judged valid before the crash.
        for (_, value) in self.locked.iter().chain(self.valid.iter()) {
            self.values.insert(
                value.hash,
                ValueCheck {
                    value: value.clone(),
                    verdict: Verdict::Valid,
                },
            );
        }
        // The proof of the valid value comes back first (signatures checked
        // again: the file is outside this machine's control).
        for message in state.valid_proof {
            if message.height() == self.height {
                self.on_message(message, true, out);
            }
        }
        for message in state.own_messages {
            if let Message::Proposal(proposal) = &message.message {
                self.values.insert(
                    proposal.value.hash,
                    ValueCheck {
                        value: proposal.value.clone(),
                        verdict: Verdict::Valid,
                    },
                );
            }
            self.own_messages.push(message.clone());
            self.on_message(message, false, out);
        }
        self.persist_dirty = true;
        self.schedule_rebroadcast(out);
        // Resume the current step's timer: the paper's timers were lost in
        // the crash, and without one a validator restarted in the prevote or
        // precommit step could wait forever.
        let step = match self.step {
            Step::Propose => TimeoutStep::Propose,
            Step::Prevote => TimeoutStep::Prevote,
            Step::Precommit => TimeoutStep::Precommit,
        };
        self.schedule_timeout(step, out);
        if self.step == Step::Propose
            && self.is_own_proposer(self.round)
            && !self.has_own_proposal(self.round)
        {
            self.propose_or_request(out);
        }
        self.rebroadcast(out);
    }

    // ----- the rules ---------------------------------------------------------

    /// Applies the paper's `upon` rules until none fires.
    fn evaluate(&mut self, out: &mut Vec<Action>) {
        // Every rule firing changes a step, a round, a flag or the decision,
        // each of which can happen only finitely often per input.
        let mut firings_left: u32 =
            64 + 8 * u32::try_from(self.rounds.len()).unwrap_or(u32::MAX / 16);
        while self.decision.is_none() && firings_left > 0 {
            firings_left -= 1;
            if self.try_decide(out) || self.try_round_skip(out) || self.try_current_round(out) {
                continue;
            }
            break;
        }
        debug_assert!(firings_left > 0, "rule evaluation did not settle");
    }

    /// L49: a proposal and a quorum of precommits for it in any round.
    fn try_decide(&mut self, out: &mut Vec<Action>) -> bool {
        let mut decided: Option<(Round, Value)> = None;
        for (round, round_state) in &self.rounds {
            for proposal_message in &round_state.proposals {
                let Message::Proposal(proposal) = &proposal_message.message else {
                    continue;
                };
                let power = round_state.precommits.power_for(Some(proposal.value.hash));
                if self.is_quorum(power) && self.validity(&proposal.value) == Some(true) {
                    decided = Some((*round, proposal.value.clone()));
                    break;
                }
            }
            if decided.is_some() {
                break;
            }
        }
        let Some((round, value)) = decided else {
            return false;
        };
        let signatures = self
            .rounds
            .get(&round)
            .map(|round_state| {
                round_state
                    .precommits
                    .votes
                    .values()
                    .flatten()
                    .filter(|message| {
                        matches!(&message.message, Message::Precommit(vote) if vote.block_hash == Some(value.hash))
                    })
                    .map(|message| CommitSignature {
                        validator: message.validator,
                        signature: message.signature,
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let certificate = CommitCertificate {
            height: self.height,
            round,
            block_hash: value.hash,
            signatures,
        };
        self.decision = Some((round, value.clone()));
        out.push(Action::Commit {
            height: self.height,
            value,
            certificate,
        });
        true
    }

    /// L55: f+1 messages from a later round: jump to it.
    fn try_round_skip(&mut self, out: &mut Vec<Action>) -> bool {
        let target = self
            .rounds
            .range(self.round.next()..)
            .rev()
            .find(|(_, round_state)| self.is_one_third(round_state.senders_power))
            .map(|(round, _)| *round);
        match target {
            Some(round) => {
                self.start_round(round, out);
                true
            }
            None => false,
        }
    }

    /// L22, L28, L34, L36, L44, L47 for the current round.
    fn try_current_round(&mut self, out: &mut Vec<Action>) -> bool {
        let round = self.round;
        let step = self.step;
        let Some(round_state) = self.rounds.get(&round) else {
            return false;
        };

        if step == Step::Propose {
            if let Some(Message::Proposal(proposal)) =
                round_state.proposals.first().map(|m| &m.message)
            {
                if let Some(vote) = self.prevote_for_proposal(proposal) {
                    self.set_step(Step::Prevote);
                    self.cast_vote(VoteKind::Prevote, vote, out);
                    return true;
                }
            }
        }

        // L34: a quorum of prevotes of any kind: start the prevote timer.
        if step == Step::Prevote
            && !round_state.prevote_timeout_scheduled
            && self.is_quorum(round_state.prevotes.power_total)
        {
            self.round_mut(round).prevote_timeout_scheduled = true;
            self.schedule_timeout(TimeoutStep::Prevote, out);
            return true;
        }

        // L36: a proposal and a quorum of prevotes for it (a polka).
        if step >= Step::Prevote && !round_state.polka_handled {
            let polka = round_state
                .proposals
                .iter()
                .find_map(|message| match &message.message {
                    Message::Proposal(proposal)
                        if self.is_quorum(
                            round_state.prevotes.power_for(Some(proposal.value.hash)),
                        ) && self.validity(&proposal.value) == Some(true) =>
                    {
                        Some(proposal.value.clone())
                    }
                    _ => None,
                });
            if let Some(value) = polka {
                self.round_mut(round).polka_handled = true;
                if step == Step::Prevote {
                    self.locked = Some((round, value.clone()));
                    self.set_step(Step::Precommit);
                    self.cast_vote(VoteKind::Precommit, Some(value.hash), out);
                }
                self.valid = Some((round, value));
                self.persist_dirty = true;
                return true;
            }
        }

        // L44: a quorum of nil prevotes: precommit nil.
        if self.step == Step::Prevote {
            let nil_power = self
                .rounds
                .get(&round)
                .map_or(0, |round_state| round_state.prevotes.power_for(None));
            if self.is_quorum(nil_power) {
                self.set_step(Step::Precommit);
                self.cast_vote(VoteKind::Precommit, None, out);
                return true;
            }
        }

        // L47: a quorum of precommits of any kind: start the precommit timer.
        if let Some(round_state) = self.rounds.get(&round) {
            if !round_state.precommit_timeout_scheduled
                && self.is_quorum(round_state.precommits.power_total)
            {
                self.round_mut(round).precommit_timeout_scheduled = true;
                self.schedule_timeout(TimeoutStep::Precommit, out);
                return true;
            }
        }
        false
    }

    /// L22 and L28: what to prevote for the current round's proposal, or
    /// `None` when the rule cannot fire yet (verdict pending, or the proof
    /// of lock for `valid_round` not yet seen).
    fn prevote_for_proposal(&self, proposal: &Proposal) -> Option<Option<BlockHash>> {
        let validity = self.validity(&proposal.value)?;
        let hash = proposal.value.hash;
        let locked = if self.config.fault_injection.ignore_locks {
            &None
        } else {
            &self.locked
        };
        let locked_on_value = locked
            .as_ref()
            .is_some_and(|(_, locked_value)| locked_value == &proposal.value);
        match proposal.valid_round {
            // L22: a fresh proposal.
            None => {
                let acceptable = validity && (locked.is_none() || locked_on_value);
                Some(acceptable.then_some(hash))
            }
            // L28: a re-proposal with a proof of lock from `valid_round`.
            Some(valid_round) => {
                let polka = self.rounds.get(&valid_round).is_some_and(|round_state| {
                    self.is_quorum(round_state.prevotes.power_for(Some(hash)))
                });
                if !polka {
                    return None;
                }
                let lock_allows = match locked {
                    None => true,
                    Some((locked_round, _)) => *locked_round <= valid_round || locked_on_value,
                };
                Some((validity && lock_allows).then_some(hash))
            }
        }
    }

    fn round_mut(&mut self, round: Round) -> &mut RoundState {
        self.rounds.entry(round).or_default()
    }

    /// Called before the vote of the new step is cast, so that the state
    /// persisted with the vote already names the step it belongs to.
    fn set_step(&mut self, step: Step) {
        self.step = step;
        self.persist_dirty = true;
    }

    /// StartRound(round) (L11).
    fn start_round(&mut self, round: Round, out: &mut Vec<Action>) {
        debug_assert!(round >= self.round || self.rounds.is_empty() || round == Round(0));
        self.round = round;
        self.step = Step::Propose;
        self.awaiting_proposal = None;
        self.persist_dirty = true;
        // Scheduled for the proposer too (the paper does not): should the
        // node never answer the proposal request, the round still moves on.
        self.schedule_timeout(TimeoutStep::Propose, out);
        if self.is_own_proposer(round) {
            self.propose_or_request(out);
        }
    }

    fn is_own_proposer(&self, round: Round) -> bool {
        self.voting_key()
            .is_some_and(|key| self.validators.proposer(self.height, round).key == key)
    }

    fn has_own_proposal(&self, round: Round) -> bool {
        self.own_messages
            .iter()
            .any(|message| matches!(&message.message, Message::Proposal(p) if p.round == round))
    }

    /// L14–L19: re-propose `validValue` or ask the node for a new value.
    fn propose_or_request(&mut self, out: &mut Vec<Action>) {
        match self.valid.clone() {
            Some((valid_round, value)) => self.propose(value, Some(valid_round), out),
            None => {
                self.awaiting_proposal = Some(self.round);
                out.push(Action::RequestProposal {
                    height: self.height,
                    round: self.round,
                });
            }
        }
    }

    fn propose(&mut self, value: Value, valid_round: Option<Round>, out: &mut Vec<Action>) {
        if self.has_own_proposal(self.round) {
            return;
        }
        let Some(key) = self.config.signing_key.clone() else {
            return;
        };
        let message = SignedMessage::sign(
            &self.config.chain_id,
            Message::Proposal(Proposal {
                height: self.height,
                round: self.round,
                valid_round,
                value,
            }),
            &key,
        );
        if message.encoded_len() > self.config.message_bytes_max {
            // Peers would drop it; let the propose timeout move the round on.
            return;
        }
        self.emit_own(message, out);
        if let Some(valid_round) = valid_round {
            self.forward_proof_of_lock(valid_round, out);
        }
    }

    /// Sends the prevotes that justify re-proposing from `valid_round`, so
    /// that peers can apply L28 even if they missed them.
    fn forward_proof_of_lock(&self, valid_round: Round, out: &mut Vec<Action>) {
        let Some((_, value)) = &self.valid else {
            return;
        };
        if let Some(round_state) = self.rounds.get(&valid_round) {
            for vote in round_state.prevotes.votes.values().flatten() {
                if matches!(&vote.message, Message::Prevote(v) if v.block_hash == Some(value.hash))
                {
                    out.push(Action::Broadcast(vote.clone()));
                }
            }
        }
    }

    /// Signs and sends a vote in the current round. Never signs a second,
    /// different vote of the same kind in the same round: if one exists
    /// (restored after a crash) it is sent again instead.
    fn cast_vote(&mut self, kind: VoteKind, block_hash: Option<BlockHash>, out: &mut Vec<Action>) {
        let Some(key) = self.voting_key() else {
            return;
        };
        let round = self.round;
        let existing = self.own_messages.iter().find(|message| {
            message.round() == round
                && message
                    .message
                    .as_vote()
                    .is_some_and(|(existing_kind, _)| existing_kind == kind)
        });
        if let Some(existing) = existing {
            let existing = existing.clone();
            out.push(Action::Broadcast(existing));
            return;
        }
        let Some(signing_key) = self.config.signing_key.clone() else {
            return;
        };
        debug_assert_eq!(ValidatorKey::from(&signing_key.verifying_key()), key);
        let vote = Vote {
            height: self.height,
            round,
            block_hash,
        };
        let message = match kind {
            VoteKind::Prevote => Message::Prevote(vote),
            VoteKind::Precommit => Message::Precommit(vote),
        };
        let signed = SignedMessage::sign(&self.config.chain_id, message, &signing_key);
        self.emit_own(signed, out);
    }

    /// Records an own message, persists, then broadcasts it: the persist
    /// action always comes before the message can leave.
    fn emit_own(&mut self, message: SignedMessage, out: &mut Vec<Action>) {
        self.own_messages.push(message.clone());
        self.persist_dirty = true;
        self.on_message(message.clone(), false, out);
        self.flush_persist(out);
        out.push(Action::Broadcast(message));
    }

    fn flush_persist(&mut self, out: &mut Vec<Action>) {
        if self.persist_dirty && self.voting_key().is_some() {
            out.push(Action::Persist(self.persisted_state()));
        }
        self.persist_dirty = false;
    }

    fn schedule_timeout(&self, step: TimeoutStep, out: &mut Vec<Action>) {
        out.push(Action::ScheduleTimeout {
            event: TimeoutEvent {
                height: self.height,
                round: self.round,
                step,
            },
            duration_ms: self.config.timeouts.duration_ms(step, self.round),
        });
    }

    fn schedule_rebroadcast(&self, out: &mut Vec<Action>) {
        self.schedule_timeout(TimeoutStep::Rebroadcast, out);
    }

    /// Sends own messages of recent rounds again (and the proof of lock of
    /// an own re-proposal): the paper assumes every message eventually
    /// reaches everyone, which a lossy network only gives with retries.
    fn rebroadcast(&self, out: &mut Vec<Action>) {
        let oldest = Round(self.round.0.saturating_sub(REBROADCAST_ROUNDS_BEHIND_MAX));
        for message in &self.own_messages {
            if message.round() >= oldest {
                out.push(Action::Broadcast(message.clone()));
            }
            if let Message::Proposal(Proposal {
                round,
                valid_round: Some(valid_round),
                ..
            }) = &message.message
            {
                if *round == self.round {
                    self.forward_proof_of_lock(*valid_round, out);
                }
            }
        }
    }
}
