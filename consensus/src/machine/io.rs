//! What goes in and what comes out: the machine's configuration, its
//! inputs, the actions it asks of the node, the [`Step`] that carries them,
//! and the state a validator keeps on disk.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::certificate::CommitCertificate;
use crate::message::SignedMessage;
use crate::types::{BlockHash, Height, Round, ValidatorKey, ValidatorSet, Value};

use super::MESSAGE_BYTES_MAX_DEFAULT;

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
    /// `None` (or `Some(0)`): every height starts round 0 at once, so an
    /// idle network commits empty blocks back to back. `Some(ms)`: at each
    /// new height the machine waits until there is work
    /// ([`Input::WorkAvailable`]), another validator's proposal or vote for
    /// the height arrives, or `ms` pass (a heartbeat block), whichever
    /// comes first; like CometBFT's `create_empty_blocks = false` with
    /// `create_empty_blocks_interval`.
    pub heartbeat_ms: Option<u64>,
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
            heartbeat_ms: None,
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
            TimeoutStep::Heartbeat => return self.heartbeat_ms.unwrap_or(0),
        };
        base.saturating_add(delta.saturating_mul(round.0))
    }

    /// True when a new height waits for work (see `heartbeat_ms`).
    pub fn waits_for_work(&self) -> bool {
        self.heartbeat_ms.is_some_and(|ms| ms > 0)
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
    /// Start every height at once even with a heartbeat configured (the
    /// wait for work forgotten).
    pub never_wait_for_work: bool,
    /// Sign with the first held key at every height, whether or not the
    /// height's validator set names it (a rotated-out key kept in use).
    pub sign_with_first_held_key: bool,
}

/// Configuration of one state machine.
#[derive(Clone)]
pub struct Config {
    /// The chain id, covered by every signature.
    pub chain_id: String,
    /// The keys this node holds, in order of preference, at most
    /// [`SIGNING_KEYS_MAX`](super::SIGNING_KEYS_MAX). At each height the
    /// machine signs with the first of them that the height's validator
    /// set names, and with none when the set names none (it observes that
    /// height: follows and commits, never votes). Holding the old and the
    /// new key across a key rotation is how a validator switches exactly
    /// at the height the rotation takes effect. Empty for an observer.
    pub signing_keys: Vec<SigningKey>,
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
                "signing_keys",
                &self
                    .signing_keys
                    .iter()
                    .map(|key| ValidatorKey::from(&key.verifying_key()))
                    .collect::<Vec<_>>(),
            )
            .field("timeouts", &self.timeouts)
            .field("message_bytes_max", &self.message_bytes_max)
            .finish()
    }
}

impl Config {
    /// A configuration with default timeouts and message size, for a node
    /// holding one key (`None`: an observer).
    pub fn new(chain_id: impl Into<String>, signing_key: Option<SigningKey>) -> Config {
        Config::with_signing_keys(chain_id, signing_key.into_iter().collect())
    }

    /// A configuration with default timeouts and message size, for a node
    /// holding several keys (in order of preference; see
    /// [`Config::signing_keys`]).
    pub fn with_signing_keys(chain_id: impl Into<String>, signing_keys: Vec<SigningKey>) -> Config {
        Config {
            chain_id: chain_id.into(),
            signing_keys,
            timeouts: TimeoutConfig::default(),
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            fault_injection: FaultInjection::default(),
        }
    }
}

/// The step of a round (the paper's `step_p`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RoundStep {
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
    /// The longest wait for work at a new height (not in the paper): when
    /// it fires the height starts anyway, and the block it commits is a
    /// heartbeat.
    Heartbeat,
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
    /// The node holds transactions waiting for a block. Ends the wait for
    /// work at the current height (see [`TimeoutConfig::heartbeat_ms`]);
    /// changes nothing otherwise, so the node may send it as often as it
    /// likes.
    WorkAvailable,
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

/// The outcome of one input: the actions to carry out, in order, and for
/// an [`Input::Message`] what became of the message.
///
/// Dropping a step unread would lose a `Persist` or a vote, hence
/// `must_use`.
#[must_use = "the actions of a step must be carried out, in order"]
#[derive(Clone, Debug)]
pub struct Step {
    /// What the node must do, in the order given.
    pub actions: Vec<Action>,
    /// `Some` for an [`Input::Message`]: accepted, buffered, duplicate or
    /// dropped (and why). `None` for every other input.
    pub disposition: Option<Disposition>,
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
    pub step: RoundStep,
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

impl PersistedState {
    /// True when nothing happened at this height yet: round 0, propose
    /// step, nothing signed, locked or valid. Such a state is what a
    /// height starts with, so restoring it is the same as starting afresh.
    pub fn is_untouched(&self) -> bool {
        self.round == Round(0)
            && self.step == RoundStep::Propose
            && self.locked.is_none()
            && self.valid.is_none()
            && self.own_messages.is_empty()
            && self.valid_proof.is_empty()
    }
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
    /// The persisted state holds a message not signed by one key this node
    /// holds and the height's validator set names (or messages signed by
    /// two different keys).
    #[error(
        "persisted consensus state holds a message signed by a key this node does not hold \
         or that is not a validator at the persisted height"
    )]
    PersistedStateForeign,
    /// The chain id is empty.
    #[error("the chain id is empty")]
    EmptyChainId,
    /// More signing keys than the key ring holds.
    #[error(
        "{count} signing keys given; a node holds at most {max} (drop keys rotated out long ago)"
    )]
    TooManySigningKeys {
        /// Number of keys given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same signing key given twice.
    #[error("signing key {0:?} is given more than once")]
    DuplicateSigningKey(ValidatorKey),
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
