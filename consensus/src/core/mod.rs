//! # The node core
//!
//! Everything a validator's node decides around the consensus state
//! machine, as a state machine of its own with no I/O: the shell (the
//! node's tokio task, or the simulator) hands it [`Event`]s with the time,
//! carries out the [`Effect`]s it returns in order, and wakes it again at
//! [`NodeCore::next_wake_ms`]. The core owns:
//!
//! - **the timers** the state machine schedules (a bounded heap; the shell
//!   only sleeps until the next wake);
//! - **pacing**: when a requested proposal is built (`block_interval_ms`
//!   after the last commit so blocks fill up, at once in later rounds),
//!   and telling a machine that waits for work that work arrived;
//! - **the application calls**: build a block and judge one (both at the
//!   next [`Event::Tick`], so a simulator can delay them), commit a
//!   decided or synced block, then start the next height with the
//!   validators the application says are in force there;
//! - **the checked-block cache**: a block proposed or judged here is not
//!   checked again at commit;
//! - **proposal hold and fetch** ([`held`]): proposals this node made or
//!   accepted for validation are held for peers; a vote for a proposal not
//!   held at the current height asks peers for it, at most once per
//!   [`CoreConfig::proposal_fetch_retry_ms`];
//! - **block sync decisions**: a message from a later height, or a block
//!   this node cannot propose or judge because it is behind, asks for sync
//!   (at most once per [`CoreConfig::sync_want_interval_ms`]); synced
//!   blocks are applied in order and move the machine to the height after
//!   them.
//!
//! The core caches nothing about the node's own key: which held key signs
//! is the state machine's choice, made anew at every height (see
//! [`crate::Config::signing_keys`]).
//!
//! **Must not know about:** the ledger's rules (only through
//! [`Application`]), sockets, files, clocks or randomness.

pub mod app;
pub mod held;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use ed25519_dalek::SigningKey;

use crate::machine::{
    Action, Consensus, ConsensusError, Disposition, Equivocation, Input, PersistedState,
    TimeoutEvent, TimeoutStep,
};
use crate::message::{Message, SignedMessage};
use crate::types::{BlockHash, Height, Round, ValidatorKey, Value};
use crate::CommitCertificate;

pub use app::{Application, Head, Proposed, Stored, Verdict};
pub use held::{HeldProposals, ProposalKey, HELD_PROPOSALS_MAX};

/// Distinct proposals asked for at one height, at most: votes are checked
/// by the state machine after this point, so a peer sending made-up votes
/// must not be able to grow the table.
pub const PROPOSAL_FETCHES_MAX: usize = 4 * HELD_PROPOSALS_MAX;

/// Proposals received (signatures not yet checked) kept until the state
/// machine asks for their validation, which may come later, when a
/// proposal for the next height was buffered until this one committed.
pub const RECEIVED_PROPOSALS_MAX: usize = 2 * HELD_PROPOSALS_MAX;

/// Checked blocks kept at one height (one per round is honest).
pub const CHECKED_BLOCKS_MAX: usize = 2 * HELD_PROPOSALS_MAX;

/// Judgements waiting for the next tick. The machine asks for one verdict
/// per distinct proposed value, and bounds those per height itself; this
/// is a second fence.
pub const JUDGEMENTS_WAITING_MAX: usize = 4 * HELD_PROPOSALS_MAX;

/// Timers pending at most. The machine schedules a handful per round;
/// timers of past heights are dropped at each new height.
pub const TIMERS_MAX: usize = 4_096;

/// While the state machine waits for work, the application is asked this
/// often whether work arrived (admission does not notify the core); the
/// delay it adds to the first transaction after an idle spell is well
/// below a block interval.
pub const WORK_CHECK_INTERVAL_MS: u64 = 50;

const _: () = assert!(RECEIVED_PROPOSALS_MAX >= HELD_PROPOSALS_MAX);
const _: () = assert!(PROPOSAL_FETCHES_MAX >= HELD_PROPOSALS_MAX);

/// The core's own settings (the machine's are in [`crate::Config`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// A round-0 proposal is built no sooner than this after the last
    /// commit, so that transactions gather into blocks.
    pub block_interval_ms: u64,
    /// With no transactions waiting, a round-0 proposal waits this long
    /// after the last commit (only matters without a heartbeat: a machine
    /// that waits for work asks for a proposal only once there is some).
    pub empty_block_interval_ms: u64,
    /// A proposal asked of peers may be asked again after this long.
    pub proposal_fetch_retry_ms: u64,
    /// Block sync is asked for at most this often.
    pub sync_want_interval_ms: u64,
}

impl Default for CoreConfig {
    fn default() -> CoreConfig {
        CoreConfig {
            block_interval_ms: 0,
            empty_block_interval_ms: 0,
            proposal_fetch_retry_ms: 1_000,
            sync_want_interval_ms: 200,
        }
    }
}

/// What the shell hands the core.
#[derive(Clone, Debug)]
pub enum Event {
    /// A signed consensus message as received (proposal fetch answers
    /// included).
    Message(Vec<u8>),
    /// Time passed: fire due timers, look for work, answer the machine's
    /// requests. Send it at [`NodeCore::next_wake_ms`] (sooner is
    /// harmless).
    Tick,
    /// Blocks with their certificates fetched from a peer, in height order.
    Synced(Vec<SyncedBlock>),
}

/// One block fetched by block sync, as received.
#[derive(Clone, Debug)]
pub struct SyncedBlock {
    /// The block's canonical bytes.
    pub block: Vec<u8>,
    /// Its commit certificate's bytes.
    pub certificate: Vec<u8>,
}

/// How a block came to be committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Decided by this node's state machine.
    Decided,
    /// Fetched from a peer by block sync.
    Synced,
}

/// What the shell must do, in the order given.
// A handful of effects per event, each moved once.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Effect {
    /// Write this state durably, replacing the previous one, before
    /// carrying out any later effect.
    Persist(PersistedState),
    /// Send this message to every validator: `bytes` is its encoding.
    Broadcast {
        /// The message (a simulator may tamper with it).
        message: SignedMessage,
        /// `message.encode()`, computed once.
        bytes: Arc<Vec<u8>>,
    },
    /// Ask the connected peers for this proposal; their answer comes back
    /// as an [`Event::Message`].
    FetchProposal(ProposalKey),
    /// This node is behind: fetch committed blocks from a peer (`hint`: a
    /// validator seen at a later height) and hand them back as
    /// [`Event::Synced`].
    SyncWanted {
        /// The first height wanted.
        from: Height,
        /// Who was seen ahead, if known.
        hint: Option<ValidatorKey>,
    },
    /// A block was stored.
    Committed {
        /// Its height.
        height: Height,
        /// Its hash (decided blocks only; synced ones are known to the
        /// application).
        hash: Option<BlockHash>,
        /// Decided here or synced.
        origin: Origin,
        /// Transactions it carried.
        transactions: usize,
    },
    /// The answer to an [`Event::Synced`]: the committed height after it,
    /// or why the peer's blocks were refused.
    SyncDone(Result<Height, String>),
    /// What became of a message from `signer` (readiness counts who was
    /// heard).
    Heard {
        /// The message's signer.
        signer: ValidatorKey,
        /// Accepted, buffered, duplicate or dropped.
        disposition: Disposition,
    },
    /// The machine stopped waiting for work at `height`: work arrived, or
    /// (`heartbeat`) the heartbeat fired. Another validator's message for
    /// the height also ends the wait, without this effect.
    WaitEnded {
        /// The height whose first round starts.
        height: Height,
        /// Whether the heartbeat ended the wait (the block may be empty).
        heartbeat: bool,
    },
    /// A validator equivocated.
    Evidence(Equivocation),
    /// The application could not build a block (for the log).
    NotProposing(String),
    /// A proposed block was refused (for the log).
    Refused {
        /// The height it was proposed at.
        height: Height,
        /// Why.
        reason: String,
    },
}

/// A timer: when it fires, a sequence number for a stable order, and what
/// it feeds back.
type Timer = Reverse<(u64, u64, TimeoutEvent)>;

/// The node core: the consensus machine and everything the node decides
/// around it.
pub struct NodeCore<A: Application> {
    machine: Consensus,
    config: CoreConfig,
    timers: BinaryHeap<Timer>,
    timer_sequence: u64,
    /// A proposal the machine asked for and the core has not built yet.
    pending_proposal: Option<(Height, Round)>,
    /// Verdicts the machine asked for, answered at the next tick.
    judgements: VecDeque<(Height, Value)>,
    last_commit_ms: u64,
    /// Blocks checked at the current height, by hash.
    checked: HashMap<BlockHash, A::Checked>,
    /// Proposals asked of peers at the current height, and when.
    fetches: HashMap<ProposalKey, u64>,
    /// The latest proposals received, as their bytes: those the state
    /// machine takes for validation are held for peers.
    received_proposals: VecDeque<(ProposalKey, Arc<Vec<u8>>)>,
    held: HeldProposals,
    last_sync_want_ms: Option<u64>,
    effects: Vec<Effect>,
}

fn proposal_key(height: Height, round: Round, hash: BlockHash) -> ProposalKey {
    ProposalKey {
        height: height.0,
        round: round.0,
        hash: hash.0,
    }
}

impl<A: Application> NodeCore<A> {
    /// Wraps `machine` (built by the shell at the height after the
    /// application's head, resumed from its persisted state) and carries
    /// out the actions it returned when built.
    pub fn start(
        machine: Consensus,
        first_actions: Vec<Action>,
        config: CoreConfig,
        app: &mut A,
        now_ms: u64,
    ) -> Result<(NodeCore<A>, Vec<Effect>), A::Error> {
        let mut core = NodeCore {
            machine,
            config,
            timers: BinaryHeap::new(),
            timer_sequence: 0,
            pending_proposal: None,
            judgements: VecDeque::new(),
            last_commit_ms: now_ms,
            checked: HashMap::new(),
            fetches: HashMap::new(),
            received_proposals: VecDeque::new(),
            held: HeldProposals::default(),
            last_sync_want_ms: None,
            effects: Vec::new(),
        };
        core.execute(first_actions, app, now_ms)?;
        core.advance(app, now_ms, false)?;
        let effects = std::mem::take(&mut core.effects);
        Ok((core, effects))
    }

    /// The state machine, read-only (height, round, waiting for work).
    pub fn machine(&self) -> &Consensus {
        &self.machine
    }

    /// Installs one more signing key in the state machine's key ring (the
    /// next key ahead of a rotation; see [`Consensus::add_signing_key`]),
    /// and carries out what the machine does with it. The outer `Err` is
    /// the application's local failure (the node must stop); the inner one
    /// says why the ring refused the key (nothing changed).
    pub fn add_signing_key(
        &mut self,
        key: SigningKey,
        app: &mut A,
        now_ms: u64,
    ) -> Result<Result<Vec<Effect>, ConsensusError>, A::Error> {
        debug_assert!(self.effects.is_empty());
        let step = match self.machine.add_signing_key(key) {
            Ok(step) => step,
            Err(error) => return Ok(Err(error)),
        };
        let result = self
            .execute(step.actions, app, now_ms)
            .and_then(|()| self.advance(app, now_ms, false));
        let effects = std::mem::take(&mut self.effects);
        result.map(|()| Ok(effects))
    }

    /// The bytes of proposal `key`, if this node holds it (to answer a
    /// peer's fetch).
    pub fn held_proposal(&self, key: &ProposalKey) -> Option<Arc<Vec<u8>>> {
        self.held.get(key)
    }

    /// When the core next wants an [`Event::Tick`]: the earliest timer, a
    /// verdict or proposal to give, or the next look for work. `None`:
    /// only another event can wake it. A wake at or before `now_ms` means
    /// "tick now".
    pub fn next_wake_ms(&self, app: &A, now_ms: u64) -> Option<u64> {
        let mut wake = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let mut sooner = |at: u64| wake = Some(wake.map_or(at, |current| current.min(at)));
        if !self.judgements.is_empty() {
            sooner(now_ms);
        }
        if let Some((_, round)) = self.pending_proposal {
            if round.0 > 0 {
                sooner(now_ms);
            } else {
                let interval_over = self
                    .last_commit_ms
                    .saturating_add(self.config.block_interval_ms);
                let due = if app.has_work() {
                    interval_over
                } else {
                    // Due when the empty-block wait is over, or sooner if
                    // work arrives: look again shortly.
                    let empty_over = self
                        .last_commit_ms
                        .saturating_add(self.config.empty_block_interval_ms)
                        .max(interval_over);
                    empty_over.min(
                        now_ms
                            .saturating_add(WORK_CHECK_INTERVAL_MS)
                            .max(interval_over),
                    )
                };
                sooner(due);
            }
        }
        if self.machine.is_waiting_for_work() {
            sooner(now_ms.saturating_add(WORK_CHECK_INTERVAL_MS));
        }
        wake
    }

    /// Handles one event at local time `now_ms`; returns the effects to
    /// carry out in order. An `Err` is the application's local failure:
    /// the node must stop.
    pub fn handle(
        &mut self,
        event: Event,
        app: &mut A,
        now_ms: u64,
    ) -> Result<Vec<Effect>, A::Error> {
        debug_assert!(self.effects.is_empty());
        let tick = matches!(event, Event::Tick);
        let result = match event {
            Event::Message(bytes) => self.on_message(bytes, app, now_ms),
            Event::Tick => Ok(()),
            Event::Synced(blocks) => self.on_synced(blocks, app, now_ms),
        }
        .and_then(|()| self.advance(app, now_ms, tick));
        let effects = std::mem::take(&mut self.effects);
        result.map(|()| effects)
    }

    fn on_message(&mut self, bytes: Vec<u8>, app: &mut A, now_ms: u64) -> Result<(), A::Error> {
        let Ok(message) = SignedMessage::decode(&bytes, self.machine.message_bytes_max()) else {
            return Ok(());
        };
        if message.height() > self.machine.height() {
            // A peer is deciding a later height: this node missed a commit.
            self.want_sync(Some(message.validator), now_ms);
        }
        let voted = match &message.message {
            Message::Proposal(p) => {
                if self.received_proposals.len() >= RECEIVED_PROPOSALS_MAX {
                    self.received_proposals.pop_front();
                }
                let key = proposal_key(p.height, p.round, p.value.hash);
                self.received_proposals.push_back((key, Arc::new(bytes)));
                None
            }
            Message::Prevote(v) | Message::Precommit(v) => v
                .block_hash
                .map(|hash| proposal_key(v.height, v.round, hash)),
        };
        let signer = message.validator;
        let step = self.machine.handle(Input::Message(message));
        if let Some(disposition) = step.disposition {
            self.effects.push(Effect::Heard {
                signer,
                disposition,
            });
        }
        if let Some(key) = voted {
            self.fetch_if_missing(key, now_ms);
        }
        self.execute(step.actions, app, now_ms)
    }

    /// Fires due timers and tells a waiting machine about work; on a tick
    /// (`answer`) also gives the verdicts asked for and builds a due
    /// proposal. Verdicts and proposals wait for a tick so that a shell can
    /// model the application's delay (the simulator does; the node ticks
    /// at once).
    fn advance(&mut self, app: &mut A, now_ms: u64, answer: bool) -> Result<(), A::Error> {
        while let Some(Reverse((at, _, event))) = self.timers.peek().copied() {
            if at > now_ms {
                break;
            }
            self.timers.pop();
            let heartbeat = event.step == TimeoutStep::Heartbeat;
            let actions = self.handle_waking(Input::Timeout(event), heartbeat);
            self.execute(actions, app, now_ms)?;
        }
        if self.machine.is_waiting_for_work() && app.has_work() {
            let actions = self.handle_waking(Input::WorkAvailable, false);
            self.execute(actions, app, now_ms)?;
        }
        if !answer {
            return Ok(());
        }
        // Each verdict may start a new round or height (and ask for more):
        // bounded by the queue's limit per pass.
        for _ in 0..JUDGEMENTS_WAITING_MAX {
            let Some((height, value)) = self.judgements.pop_front() else {
                break;
            };
            if height != self.machine.height() {
                continue;
            }
            let valid = self.judge(height, &value, app, now_ms)?;
            let actions = self
                .machine
                .handle(Input::ValueVerdict {
                    height,
                    hash: value.hash,
                    valid,
                })
                .actions;
            self.execute(actions, app, now_ms)?;
        }
        self.try_propose(app, now_ms)
    }

    /// Feeds the machine an input that may end its wait for work, and
    /// reports when it did.
    fn handle_waking(&mut self, input: Input, heartbeat: bool) -> Vec<Action> {
        let height = self.machine.height();
        let was_waiting = self.machine.is_waiting_for_work();
        let actions = self.machine.handle(input).actions;
        if was_waiting && !self.machine.is_waiting_for_work() && self.machine.height() == height {
            self.effects.push(Effect::WaitEnded { height, heartbeat });
        }
        actions
    }

    /// Carries out the machine's actions in order: those for the shell
    /// become effects, the rest are the core's.
    fn execute(&mut self, actions: Vec<Action>, app: &mut A, now_ms: u64) -> Result<(), A::Error> {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Persist(state) => self.effects.push(Effect::Persist(state)),
                Action::Broadcast(message) => {
                    let bytes = Arc::new(message.encode());
                    if let Message::Proposal(p) = &message.message {
                        self.held
                            .hold(proposal_key(p.height, p.round, p.value.hash), bytes.clone());
                    }
                    self.effects.push(Effect::Broadcast { message, bytes });
                }
                Action::ScheduleTimeout { event, duration_ms } => {
                    self.schedule(event, now_ms.saturating_add(duration_ms));
                }
                Action::RequestProposal { height, round } => {
                    self.pending_proposal = Some((height, round));
                }
                Action::ValidateValue { height, value } => {
                    // The machine took the proposal (signed by the round's
                    // proposer): hold it for peers that missed it.
                    for (key, bytes) in &self.received_proposals {
                        if key.height == height.0 && key.hash == value.hash.0 {
                            self.held.hold(*key, bytes.clone());
                        }
                    }
                    if self.judgements.len() < JUDGEMENTS_WAITING_MAX {
                        self.judgements.push_back((height, value));
                    } else {
                        // Cannot happen while the machine bounds its values
                        // per height; a verdict never given is a round
                        // that times out, never a wrong vote.
                        debug_assert!(false, "judgement queue full");
                    }
                }
                Action::Commit {
                    height,
                    value,
                    certificate,
                } => {
                    let actions = self.commit_decided(height, value, &certificate, app, now_ms)?;
                    queue.extend(actions);
                }
                Action::Evidence(evidence) => self.effects.push(Effect::Evidence(evidence)),
            }
        }
        Ok(())
    }

    fn schedule(&mut self, event: TimeoutEvent, at_ms: u64) {
        if self.timers.len() >= TIMERS_MAX {
            // Keep the machine's current height's timers; older ones are
            // ignored by the machine anyway.
            let height = self.machine.height();
            self.timers
                .retain(|Reverse((_, _, pending))| pending.height >= height);
        }
        if self.timers.len() >= TIMERS_MAX {
            debug_assert!(false, "timer heap full at one height");
            return;
        }
        self.timer_sequence += 1;
        self.timers
            .push(Reverse((at_ms, self.timer_sequence, event)));
    }

    /// Whether a proposed block is one this validator can vote for.
    fn judge(
        &mut self,
        height: Height,
        value: &Value,
        app: &mut A,
        now_ms: u64,
    ) -> Result<bool, A::Error> {
        if self.checked.contains_key(&value.hash) {
            return Ok(true);
        }
        match app.judge(height, value, now_ms)? {
            Verdict::Valid(checked) => {
                if self.checked.len() < CHECKED_BLOCKS_MAX {
                    self.checked.insert(value.hash, checked);
                }
                Ok(true)
            }
            Verdict::Invalid(reason) => {
                self.effects.push(Effect::Refused { height, reason });
                Ok(false)
            }
            Verdict::Behind => {
                self.want_sync(None, now_ms);
                Ok(false)
            }
        }
    }

    /// Builds the requested proposal once it is due: at once in a later
    /// round; in round 0 once `block_interval_ms` has passed since the last
    /// commit and work waits (or `empty_block_interval_ms` has passed).
    fn try_propose(&mut self, app: &mut A, now_ms: u64) -> Result<(), A::Error> {
        let Some((height, round)) = self.pending_proposal else {
            return Ok(());
        };
        if height != self.machine.height() || round != self.machine.round() {
            self.pending_proposal = None;
            return Ok(());
        }
        let since_commit_ms = now_ms.saturating_sub(self.last_commit_ms);
        let due = round.0 > 0
            || (since_commit_ms >= self.config.block_interval_ms
                && (since_commit_ms >= self.config.empty_block_interval_ms || app.has_work()));
        if !due {
            return Ok(());
        }
        self.pending_proposal = None;
        let value = match app.propose(height, now_ms)? {
            Proposed::Value(value, checked) => {
                if self.checked.len() < CHECKED_BLOCKS_MAX {
                    self.checked.insert(value.hash, checked);
                }
                value
            }
            Proposed::Behind => {
                self.want_sync(None, now_ms);
                return Ok(());
            }
            Proposed::Nothing(reason) => {
                self.effects.push(Effect::NotProposing(reason));
                return Ok(());
            }
        };
        let actions = self
            .machine
            .handle(Input::ProposalValue {
                height,
                round,
                value,
            })
            .actions;
        self.execute(actions, app, now_ms)
    }

    /// Stores the decided block; returns the machine's actions for the
    /// next height.
    fn commit_decided(
        &mut self,
        height: Height,
        value: Value,
        certificate: &CommitCertificate,
        app: &mut A,
        now_ms: u64,
    ) -> Result<Vec<Action>, A::Error> {
        let checked = self.checked.remove(&value.hash);
        let stored = app.commit(height, &value, checked, certificate, now_ms)?;
        if let Stored::Now { transactions, .. } = stored {
            self.effects.push(Effect::Committed {
                height,
                hash: Some(value.hash),
                origin: Origin::Decided,
                transactions,
            });
        }
        self.after_commit(now_ms);
        self.start_after_head(app)
    }

    /// Starts the height after the application's head, if the machine is
    /// not there yet.
    fn start_after_head(&mut self, app: &mut A) -> Result<Vec<Action>, A::Error> {
        let head = app.head()?;
        let next = head.height.next();
        if next <= self.machine.height() {
            return Ok(Vec::new());
        }
        // Timers of earlier heights would be ignored by the machine.
        self.timers
            .retain(|Reverse((_, _, pending))| pending.height >= next);
        Ok(self
            .machine
            .handle(Input::StartHeight {
                height: next,
                validators: head.next_validators,
            })
            .actions)
    }

    fn after_commit(&mut self, now_ms: u64) {
        self.checked.clear();
        self.fetches.clear();
        self.judgements.clear();
        self.last_commit_ms = now_ms;
    }

    fn on_synced(
        &mut self,
        blocks: Vec<SyncedBlock>,
        app: &mut A,
        now_ms: u64,
    ) -> Result<(), A::Error> {
        let mut refused = None;
        let mut stored_any = false;
        for block in blocks {
            match app.apply_synced(&block.block, &block.certificate, now_ms)? {
                Stored::Now {
                    height,
                    transactions,
                } => {
                    stored_any = true;
                    self.effects.push(Effect::Committed {
                        height,
                        hash: None,
                        origin: Origin::Synced,
                        transactions,
                    });
                }
                Stored::Already => {}
                Stored::Refused(reason) => {
                    refused = Some(reason);
                    break;
                }
            }
        }
        if stored_any {
            self.after_commit(now_ms);
            let actions = self.start_after_head(app)?;
            self.execute(actions, app, now_ms)?;
        }
        let answer = match refused {
            Some(reason) => Err(reason),
            None => Ok(app.head()?.height),
        };
        self.effects.push(Effect::SyncDone(answer));
        Ok(())
    }

    /// Asks the peers for proposal `key` when a vote names it at the
    /// current height and it is not held: its proposer may be cut off from
    /// this node, and members do not relay each other's proposals.
    fn fetch_if_missing(&mut self, key: ProposalKey, now_ms: u64) {
        if key.height != self.machine.height().0 || self.held.holds(&key) {
            return;
        }
        match self.fetches.get(&key) {
            Some(at) if now_ms.saturating_sub(*at) < self.config.proposal_fetch_retry_ms => return,
            None if self.fetches.len() >= PROPOSAL_FETCHES_MAX => return,
            _ => {}
        }
        self.fetches.insert(key, now_ms);
        self.effects.push(Effect::FetchProposal(key));
    }

    fn want_sync(&mut self, hint: Option<ValidatorKey>, now_ms: u64) {
        let due = self
            .last_sync_want_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= self.config.sync_want_interval_ms);
        if !due {
            return;
        }
        self.last_sync_want_ms = Some(now_ms);
        self.effects.push(Effect::SyncWanted {
            from: self.machine.height(),
            hint,
        });
    }
}
