//! The Tendermint state machine (Buchman, Kwon, Milosevic 2018,
//! arXiv:1807.04938, Algorithm 1). Line numbers in comments ("L22") refer
//! to Algorithm 1 of that paper.
//!
//! Inputs go in through [`Consensus::handle`], a [`Step`] of actions comes
//! out. The machine owns no clock, socket, file or random number
//! generator.
//!
//! The rooms:
//! - `io`: configuration, inputs, actions, the step, the persisted state;
//! - `votes`: what was received per round and the power behind each value;
//! - `rules`: the paper's rules, each with its line number, and the
//!   machine's own timers (re-broadcast, the wait for work);
//! - `future`: messages for heights not started yet;
//! - this file: the machine's state, and how each input enters it.

mod future;
mod io;
mod rules;
mod votes;

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::message::{Message, SignedMessage, VoteKind};
use crate::types::{BlockHash, Height, Round, ValidatorKey, ValidatorSet, Value};

pub use io::{
    Action, Config, ConsensusError, Disposition, DropReason, Equivocation, FaultInjection, Input,
    PersistedState, RoundStep, Step, TimeoutConfig, TimeoutEvent, TimeoutStep,
};

use future::FutureBuffer;
use votes::{ProposalTally, RoundState, Tally};

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

/// Signing keys one node holds at most: the key in force, the next one
/// installed ahead of a rotation, and a few rotated out and not yet
/// dropped.
pub const SIGNING_KEYS_MAX: usize = 8;

/// On each rebroadcast tick, own messages from the current round and this
/// many rounds before it are sent again.
pub const REBROADCAST_ROUNDS_BEHIND_MAX: u64 = 2;

// Relations the code relies on, checked when it compiles.
// Evidence needs the first conflicting version kept next to the honest one.
const _: () = assert!(VOTES_PER_VALIDATOR_MAX >= 2);
// L49 must recognise a commit of either of an equivocator's two proposals.
const _: () = assert!(PROPOSALS_PER_ROUND_MAX >= 2);
// The per-sender bound only means something below the total.
const _: () = assert!(FUTURE_MESSAGES_PER_VALIDATOR_MAX <= FUTURE_MESSAGES_MAX);
// An honest validator sends a proposal, a prevote and a precommit per
// round: one round of each buffered height must fit its share.
const _: () = assert!(FUTURE_MESSAGES_PER_VALIDATOR_MAX as u64 >= 3 * FUTURE_HEIGHTS_MAX);
// The next height (the one a slow committer is about to start) is buffered.
const _: () = assert!(FUTURE_HEIGHTS_MAX >= 1);
// Re-broadcast rounds are rounds peers still store.
const _: () = assert!(REBROADCAST_ROUNDS_BEHIND_MAX < FUTURE_ROUNDS_MAX);
// A message of the largest size fits in memory many times over; a zero
// limit would refuse every proposal.
const _: () = assert!(MESSAGE_BYTES_MAX_DEFAULT > 0);

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

/// The Tendermint state machine for one validator (or observer).
pub struct Consensus {
    config: Config,
    /// Which of `config.signing_keys` signs at the current height: chosen
    /// anew at every height (see [`Consensus::choose_signing_key`]), so a
    /// rotated-out key stops signing exactly when the set stops naming it.
    own_key_index: Option<usize>,
    validators: ValidatorSet,
    /// Decompressed public keys of the current set: decompressing a key
    /// costs about as much as a third of a signature check.
    verifying_keys: BTreeMap<ValidatorKey, VerifyingKey>,
    height: Height,
    round: Round,
    step: RoundStep,
    locked: Option<(Round, Value)>,
    valid: Option<(Round, Value)>,
    decision: Option<(Round, Value)>,
    rounds: BTreeMap<Round, RoundState>,
    values: BTreeMap<BlockHash, ValueCheck>,
    own_messages: Vec<SignedMessage>,
    awaiting_proposal: Option<Round>,
    evidence_reported: BTreeSet<(ValidatorKey, Round, u8)>,
    future: FutureBuffer,
    persist_dirty: bool,
    /// At a new height, before round 0: waiting for work, another
    /// validator's message, or the heartbeat.
    waiting_for_work: bool,
}

impl std::fmt::Debug for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consensus")
            .field("own_key", &self.voting_key())
            .field("height", &self.height)
            .field("round", &self.round)
            .field("step", &self.step)
            .field("locked", &self.locked.as_ref().map(|(r, v)| (*r, v.hash)))
            .field("valid", &self.valid.as_ref().map(|(r, v)| (*r, v.hash)))
            .field("decided", &self.decision.is_some())
            .field("waiting_for_work", &self.waiting_for_work)
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
        if config.signing_keys.len() > SIGNING_KEYS_MAX {
            return Err(ConsensusError::TooManySigningKeys {
                count: config.signing_keys.len(),
                max: SIGNING_KEYS_MAX,
            });
        }
        for (index, key) in config.signing_keys.iter().enumerate() {
            if config.signing_keys[..index].contains(key) {
                return Err(ConsensusError::DuplicateSigningKey(held_key_of(key)));
            }
        }
        let verifying_keys = Self::decompress_keys(&validators);
        let mut machine = Consensus {
            config,
            own_key_index: None,
            validators,
            verifying_keys,
            height,
            round: Round(0),
            step: RoundStep::Propose,
            locked: None,
            valid: None,
            decision: None,
            rounds: BTreeMap::new(),
            values: BTreeMap::new(),
            own_messages: Vec::new(),
            awaiting_proposal: None,
            evidence_reported: BTreeSet::new(),
            future: FutureBuffer::default(),
            persist_dirty: false,
            waiting_for_work: false,
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
                // Own messages from before the restart: all signed by one
                // held key that this height's set names, which keeps signing
                // at this height whatever the ring's order is now.
                let mut signers = state.own_messages.iter().map(|message| message.validator);
                if let Some(signer) = signers.next() {
                    if signers.any(|other| other != signer) {
                        return Err(ConsensusError::PersistedStateForeign);
                    }
                    let index = machine
                        .config
                        .signing_keys
                        .iter()
                        .position(|key| held_key_of(key) == signer)
                        .filter(|_| machine.validators.power_of(&signer).is_some())
                        .ok_or(ConsensusError::PersistedStateForeign)?;
                    machine.own_key_index = Some(index);
                } else {
                    machine.own_key_index = machine.choose_signing_key();
                }
                if state.is_untouched() && machine.config.timeouts.waits_for_work() {
                    // Nothing happened at this height before the restart: wait
                    // for work again rather than wake the network with a block.
                    machine.persist_dirty = true;
                    machine.begin_height(&mut out);
                } else {
                    machine.resume(state, &mut out);
                }
            }
            _ => {
                machine.own_key_index = machine.choose_signing_key();
                machine.persist_dirty = true;
                machine.begin_height(&mut out);
            }
        }
        machine.evaluate(&mut out);
        machine.flush_persist(&mut out);
        Ok((machine, out))
    }

    /// Feeds one input; returns the actions to carry out, in order, and
    /// what became of a message.
    pub fn handle(&mut self, input: Input) -> Step {
        let mut out = Vec::new();
        let mut disposition = None;
        match input {
            Input::Message(message) => {
                disposition = Some(self.on_message(message, true, &mut out));
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
            } => self.on_verdict(height, hash, valid),
            Input::StartHeight { height, validators } => {
                self.on_start_height(height, validators, &mut out)
            }
            Input::WorkAvailable => self.end_wait(&mut out),
        }
        self.evaluate(&mut out);
        self.flush_persist(&mut out);
        Step {
            actions: out,
            disposition,
        }
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
    pub fn step(&self) -> RoundStep {
        self.step
    }

    /// True once the current height is decided (until `StartHeight`).
    pub fn is_decided(&self) -> bool {
        self.decision.is_some()
    }

    /// True at a new height while round 0 waits for work (see
    /// [`TimeoutConfig::heartbeat_ms`]): the node should send
    /// [`Input::WorkAvailable`] as soon as it holds transactions.
    pub fn is_waiting_for_work(&self) -> bool {
        self.waiting_for_work
    }

    /// The key this node signs with at the current height: the held key
    /// the height's validator set names. `None`: the node only observes
    /// this height.
    pub fn own_key(&self) -> Option<ValidatorKey> {
        self.voting_key()
    }

    /// The keys this node holds, in order of preference.
    pub fn held_keys(&self) -> Vec<ValidatorKey> {
        self.config.signing_keys.iter().map(held_key_of).collect()
    }

    /// Installs one more signing key at run time (the next key ahead of a
    /// rotation, so that no restart is needed when it takes effect). It is
    /// appended to the ring, so it never takes the place of a key already
    /// signing at the current height. When the node signs with no key at
    /// the current height and the set names this one, it takes part from
    /// now on (never having signed anything at this height, it cannot
    /// conflict with itself); otherwise from the first height whose set
    /// names it. Adding a key already held changes nothing.
    pub fn add_signing_key(&mut self, key: SigningKey) -> Result<Step, ConsensusError> {
        let mut out = Vec::new();
        if self.config.signing_keys.contains(&key) {
            return Ok(Step {
                actions: out,
                disposition: None,
            });
        }
        if self.config.signing_keys.len() >= SIGNING_KEYS_MAX {
            return Err(ConsensusError::TooManySigningKeys {
                count: self.config.signing_keys.len() + 1,
                max: SIGNING_KEYS_MAX,
            });
        }
        self.config.signing_keys.push(key);
        if self.own_key_index.is_none() && self.decision.is_none() {
            self.own_key_index = self.choose_signing_key();
            if self.own_key_index.is_some() {
                self.persist_dirty = true;
                if !self.waiting_for_work
                    && self.step == RoundStep::Propose
                    && self.is_own_proposer(self.round)
                    && !self.has_own_proposal(self.round)
                    && self.awaiting_proposal.is_none()
                {
                    self.propose_or_request(&mut out);
                }
                self.evaluate(&mut out);
            }
        }
        self.flush_persist(&mut out);
        Ok(Step {
            actions: out,
            disposition: None,
        })
    }

    /// The validator set of the current height.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// The largest encoded message accepted.
    pub fn message_bytes_max(&self) -> usize {
        self.config.message_bytes_max
    }

    /// The chain id messages are signed for.
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
                    .for_block(value.hash)
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

    /// The key that signs at the current height (a member of the current
    /// set, by [`Consensus::choose_signing_key`]).
    fn voting_key(&self) -> Option<ValidatorKey> {
        self.own_signing_key().map(held_key_of)
    }

    /// The signing key of [`Consensus::voting_key`].
    pub(super) fn own_signing_key(&self) -> Option<&SigningKey> {
        self.own_key_index
            .and_then(|index| self.config.signing_keys.get(index))
    }

    /// The first held key that the current set names: the one to sign with
    /// at this height. A key the set does not name never signs, so a
    /// rotated-out key stops at the height the rotation takes effect.
    fn choose_signing_key(&self) -> Option<usize> {
        if self.config.fault_injection.sign_with_first_held_key {
            return (!self.config.signing_keys.is_empty()).then_some(0);
        }
        self.config
            .signing_keys
            .iter()
            .position(|key| self.validators.power_of(&held_key_of(key)).is_some())
    }

    /// Whether `key` is one of the keys this node holds.
    fn holds_key(&self, key: &ValidatorKey) -> bool {
        self.config
            .signing_keys
            .iter()
            .any(|held| held_key_of(held) == *key)
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
        if self
            .rounds
            .get(&round)
            .is_some_and(|round_state| round_state.holds_identical(&message))
        {
            return Disposition::Duplicate;
        }
        if check_signature && !self.signature_ok(&message) {
            return Disposition::Dropped(DropReason::BadSignature);
        }
        let sender = message.validator;
        let disposition = match &message.message {
            Message::Proposal(proposal) => {
                if self.validators.proposer(height, round).key != sender {
                    return Disposition::Dropped(DropReason::WrongProposer);
                }
                if proposal
                    .valid_round
                    .is_some_and(|valid_round| valid_round >= round)
                {
                    return Disposition::Dropped(DropReason::BadValidRound);
                }
                let value = proposal.value.clone();
                let round_state = self.round_mut(round);
                match round_state.record_proposal(&message) {
                    ProposalTally::Full { first } => {
                        self.report_equivocation(first, message, 0, out);
                        return Disposition::Dropped(DropReason::TooManyProposals);
                    }
                    ProposalTally::Conflicting { first } => {
                        round_state.add_sender(sender, power);
                        self.report_equivocation(first, message, 0, out);
                    }
                    ProposalTally::First => round_state.add_sender(sender, power),
                }
                self.request_validation(value, out);
                Disposition::Accepted
            }
            Message::Prevote(vote) | Message::Precommit(vote) => {
                let (kind, tag) = match &message.message {
                    Message::Prevote(_) => (VoteKind::Prevote, 1),
                    _ => (VoteKind::Precommit, 2),
                };
                let block_hash = vote.block_hash;
                let round_state = self.round_mut(round);
                let set = match kind {
                    VoteKind::Prevote => &mut round_state.prevotes,
                    VoteKind::Precommit => &mut round_state.precommits,
                };
                match set.record(&message, block_hash, power) {
                    Tally::Duplicate => return Disposition::Duplicate,
                    Tally::Full { first } => {
                        self.report_equivocation(first, message, tag, out);
                        return Disposition::Dropped(DropReason::TooManyVotes);
                    }
                    Tally::Added { first } => {
                        round_state.add_sender(sender, power);
                        if let Some(first) = first {
                            self.report_equivocation(first, message, tag, out);
                        }
                    }
                }
                Disposition::Accepted
            }
        };
        // Another validator is working on this height: it found work (or
        // its heartbeat fired), so this one joins at once rather than let
        // the round go on without it.
        if self.waiting_for_work && !self.holds_key(&sender) {
            self.end_wait(out);
        }
        disposition
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

    fn round_mut(&mut self, round: Round) -> &mut RoundState {
        self.rounds.entry(round).or_default()
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
        if let Err(disposition) = self.future.admits(&message, self.height) {
            return disposition;
        }
        // The set of a later height is not known yet; the current one is the
        // best guess, and membership is checked again when the height starts.
        if self.validators.power_of(&message.validator).is_none() {
            return Disposition::Dropped(DropReason::NotValidator);
        }
        if !self.signature_ok(&message) {
            return Disposition::Dropped(DropReason::BadSignature);
        }
        self.future.insert(message);
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

    fn on_proposal_value(
        &mut self,
        height: Height,
        round: Round,
        value: Value,
        out: &mut Vec<Action>,
    ) {
        if height != self.height
            || round != self.round
            || self.step != RoundStep::Propose
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

    fn on_verdict(&mut self, height: Height, hash: BlockHash, valid: bool) {
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
        // `StartHeight` follows `Commit`: once this height is decided the
        // node stores the block and starts a later height. An earlier or
        // equal one then means the node lost track of its own chain.
        debug_assert!(
            self.decision.is_none() || height > self.height,
            "after the commit of height {} the node started height {height}",
            self.height
        );
        if height <= self.height {
            return;
        }
        self.verifying_keys = Self::decompress_keys(&validators);
        self.validators = validators;
        self.height = height;
        self.own_key_index = self.choose_signing_key();
        self.locked = None;
        self.valid = None;
        self.decision = None;
        self.rounds.clear();
        self.values.clear();
        self.own_messages.clear();
        self.awaiting_proposal = None;
        self.evidence_reported.clear();
        self.round = Round(0);
        self.step = RoundStep::Propose;
        self.waiting_for_work = false;
        self.persist_dirty = true;
        self.begin_height(out);
        // Replay what arrived early for this height; drop older buffers. A
        // replayed message from another validator ends a wait for work.
        for message in self.future.take(height) {
            let _ = self.on_message(message, false, out);
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
                let _ = self.on_message(message, true, out);
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
            let _ = self.on_message(message, false, out);
        }
        self.persist_dirty = true;
        self.schedule_rebroadcast(out);
        // Resume the current step's timer: the paper's timers were lost in
        // the crash, and without one a validator restarted in the prevote or
        // precommit step could wait forever.
        let step = match self.step {
            RoundStep::Propose => TimeoutStep::Propose,
            RoundStep::Prevote => TimeoutStep::Prevote,
            RoundStep::Precommit => TimeoutStep::Precommit,
        };
        self.schedule_timeout(step, out);
        if self.step == RoundStep::Propose
            && self.is_own_proposer(self.round)
            && !self.has_own_proposal(self.round)
        {
            self.propose_or_request(out);
        }
        self.rebroadcast(out);
    }
}

/// The validator key of a held signing key.
fn held_key_of(key: &SigningKey) -> ValidatorKey {
    ValidatorKey::from(&key.verifying_key())
}
