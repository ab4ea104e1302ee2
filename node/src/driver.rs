//! The consensus driver: the one task that owns the Tendermint state
//! machine and carries out its actions in the order given.
//!
//! - `Persist` is written durably (temporary file, fsync, rename, fsync of
//!   the directory) before the next action runs, so a restarted validator
//!   never signs against its own earlier vote.
//! - `Broadcast` goes to gossip; `ScheduleTimeout` to a timer heap.
//! - `RequestProposal` asks the ledger to build a block from the mempool
//!   (`chain::propose`), after `block_interval_ms` so blocks fill up.
//! - `ValidateValue` asks the ledger to judge the block (`chain::judge`);
//!   a refusal is a "no" vote, a store that cannot be read ends the driver.
//! - `Commit` has the ledger write block + certificate + state changes in
//!   one atomic, flushed batch (`chain::commit_certified`), prunes and
//!   re-checks the mempool, then starts the next height with the validator
//!   set in force there.
//!
//! The driver is also the store's only writer: blocks fetched by block
//! sync are committed here too, by the same `chain::commit_certified`.
//! Every block decision is the ledger's; the driver keeps the mempool,
//! metrics, logging and sync requests.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_consensus as consensus;
use custody_consensus::{Action, Consensus, Input, Message, SignedMessage, TimeoutEvent};
use custody_ledger::block::Block;
use custody_ledger::certificate::{CommitCertificate, CommitSignature};
use custody_ledger::chain::{
    self, BlockLimits, Candidate, CommitError, Committed, Judgement, Origin, ProposeError,
};
use custody_ledger::state::{StateChanges, ViewError};
use custody_ledger::store::StoreError;
use custody_ledger::types::{BlockHash, Height, PublicKey, Round, Signature, Timestamp};
use tokio::sync::{mpsc, oneshot};

use crate::home::write_atomically;
use crate::proposals::{ProposalKey, HELD_PROPOSALS_MAX};
use crate::shared::{local_time_ms, Outbound, SharedRef};
use crate::shutdown::Shutdown;

/// Bound of the driver's input channel.
pub const DRIVER_INBOX_MAX: usize = 8192;

/// While the state machine waits for work, the mempool is looked at this
/// often (admission does not notify the driver); the delay it adds to the
/// first transaction after an idle spell is well below `block_interval_ms`.
const WORK_CHECK_INTERVAL_MS: u64 = 50;

/// A proposal fetch that found nobody holding it may be asked again after
/// this long (on the next vote for it).
const PROPOSAL_FETCH_RETRY_MS: u64 = 1_000;

/// Distinct proposals asked for at one height, at most: votes are checked
/// by the state machine after this point, so a peer sending made-up votes
/// must not be able to grow the table.
const PROPOSAL_FETCHES_MAX: usize = 4 * HELD_PROPOSALS_MAX;

/// Proposals received (signatures not yet checked) kept until the state
/// machine asks for their validation, which may come later, when a
/// proposal for the next height was buffered until this one committed.
const RECEIVED_PROPOSALS_MAX: usize = 2 * HELD_PROPOSALS_MAX;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot persist consensus state to {path}: {source}")]
    Persist {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read persisted consensus state {path}: {message}")]
    LoadPersisted { path: PathBuf, message: String },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("consensus: {0}")]
    Consensus(#[from] consensus::ConsensusError),
    #[error("the decided block at height {height} cannot be applied: {reason}")]
    DecidedBlockRefused { height: u64, reason: String },
    #[error("cannot build a proposal: {0}")]
    Propose(ViewError),
    #[error("cannot judge a proposal: {0}")]
    Judge(ViewError),
    #[error("cannot commit: {0}")]
    Commit(CommitError),
    #[error("validator set: {0}")]
    ValidatorSet(String),
}

/// What other tasks feed into the driver.
pub enum DriverInput {
    /// A consensus message from gossip.
    Consensus(Vec<u8>),
    /// Blocks with certificates fetched by sync, in height order. The
    /// driver answers with its committed height after applying them.
    Synced {
        blocks: Vec<(Vec<u8>, Vec<u8>)>,
        done: oneshot::Sender<Result<u64, String>>,
    },
}

pub struct Driver {
    shared: SharedRef,
    consensus: Consensus,
    validator_key: PublicKey,
    state_path: PathBuf,
    timers: BinaryHeap<Reverse<(Instant, u64, TimeoutEvent)>>,
    timer_sequence: u64,
    pending_proposal: Option<(consensus::Height, consensus::Round)>,
    last_commit_at: Instant,
    /// Blocks checked at the current height: hash to block and changes.
    verified: HashMap<[u8; 32], (Block, StateChanges)>,
    message_bytes_max: usize,
    /// Proposals asked of peers at the current height, and when; emptied at
    /// each commit.
    fetches: HashMap<ProposalKey, Instant>,
    /// The latest proposals received, as their bytes: those the state
    /// machine takes for validation are held for peers.
    received_proposals: VecDeque<(ProposalKey, Arc<Vec<u8>>)>,
}

fn proposal_key(
    height: consensus::Height,
    round: consensus::Round,
    hash: consensus::BlockHash,
) -> ProposalKey {
    ProposalKey {
        height: height.0,
        round: round.0,
        hash: hash.0,
    }
}

/// The ledger's validator set in the consensus crate's form.
pub fn consensus_validators(
    set: &custody_ledger::records::ValidatorSet,
) -> Result<consensus::ValidatorSet, DriverError> {
    consensus::ValidatorSet::new(
        set.validators
            .iter()
            .map(|v| consensus::Validator {
                key: consensus::ValidatorKey(v.key.0),
                power: v.power,
            })
            .collect(),
    )
    .map_err(|error| DriverError::ValidatorSet(error.to_string()))
}

/// The consensus certificate in the ledger's form (same fields).
pub fn ledger_certificate(certificate: &consensus::CommitCertificate) -> CommitCertificate {
    CommitCertificate::new(
        Height(certificate.height.0),
        Round(certificate.round.0),
        BlockHash(certificate.block_hash.0),
        certificate
            .signatures
            .iter()
            .map(|s| CommitSignature {
                validator: PublicKey(s.validator.0),
                signature: Signature(s.signature.0),
            })
            .collect(),
    )
}

impl Driver {
    /// Builds the state machine at the height after the store's last block,
    /// resuming from the persisted state if it is for that height.
    pub fn start(
        shared: SharedRef,
        signing_key: ed25519_dalek::SigningKey,
        state_path: PathBuf,
    ) -> Result<(Driver, Vec<Action>), DriverError> {
        let chain = shared.store.chain_info()?;
        let persisted = match std::fs::read(&state_path) {
            Ok(bytes) => Some(crate::consensus_state::decode(&bytes).map_err(|message| {
                DriverError::LoadPersisted {
                    path: state_path.clone(),
                    message,
                }
            })?),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(DriverError::LoadPersisted {
                    path: state_path.clone(),
                    message: error.to_string(),
                })
            }
        };
        let height = consensus::Height(chain.height.0 + 1);
        let persisted = persisted.filter(|state| state.height == height);
        let validator_key = PublicKey(signing_key.verifying_key().to_bytes());
        let config = &shared.config.consensus;
        let mut machine_config = consensus::Config::new(shared.chain_id.clone(), Some(signing_key));
        machine_config.timeouts = consensus::TimeoutConfig {
            propose_ms: config.timeout_propose_ms,
            propose_delta_ms: config.timeout_delta_ms,
            prevote_ms: config.timeout_prevote_ms,
            prevote_delta_ms: config.timeout_delta_ms,
            precommit_ms: config.timeout_precommit_ms,
            precommit_delta_ms: config.timeout_delta_ms,
            rebroadcast_ms: config.rebroadcast_interval_ms,
            // 0 turns the wait for work off (a block about every
            // `empty_block_interval_ms`, as before).
            heartbeat_ms: (config.heartbeat_interval_ms > 0)
                .then_some(config.heartbeat_interval_ms),
        };
        let message_bytes_max = machine_config.message_bytes_max;
        let validators = consensus_validators(&chain.validator_set)?;
        let (machine, actions) = Consensus::new(machine_config, validators, height, persisted)?;
        shared
            .metrics
            .height
            .store(chain.height.0, Ordering::Relaxed);
        Ok((
            Driver {
                shared,
                consensus: machine,
                validator_key,
                state_path,
                timers: BinaryHeap::new(),
                timer_sequence: 0,
                pending_proposal: None,
                last_commit_at: Instant::now(),
                verified: HashMap::new(),
                message_bytes_max,
                fetches: HashMap::new(),
                received_proposals: VecDeque::new(),
            },
            actions,
        ))
    }

    /// Runs until shutdown or a fatal error (a write that cannot be made
    /// durable, or a decided block that cannot be stored).
    pub async fn run(
        mut self,
        first_actions: Vec<Action>,
        mut inbox: mpsc::Receiver<DriverInput>,
        mut shutdown: Shutdown,
    ) -> Result<(), DriverError> {
        self.execute(first_actions)?;
        let far_future = Duration::from_secs(3600);
        loop {
            let next_timer = self
                .timers
                .peek()
                .map(|Reverse((at, _, _))| *at)
                .unwrap_or_else(|| Instant::now() + far_future);
            let proposal_check = if self.pending_proposal.is_some() {
                Instant::now() + Duration::from_millis(10)
            } else if self.consensus.is_waiting_for_work() {
                Instant::now() + Duration::from_millis(WORK_CHECK_INTERVAL_MS)
            } else {
                Instant::now() + far_future
            };
            tokio::select! {
                biased;
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep_until(next_timer.into()) => {
                    let now = Instant::now();
                    while let Some(Reverse((at, _, event))) = self.timers.peek().copied() {
                        if at > now {
                            break;
                        }
                        self.timers.pop();
                        let actions = self.consensus.handle(Input::Timeout(event)).actions;
                        self.execute(actions)?;
                    }
                }
                _ = tokio::time::sleep_until(proposal_check.into()) => {
                    self.maybe_propose()?;
                }
                input = inbox.recv() => {
                    let Some(input) = input else { return Ok(()) };
                    self.on_input(input)?;
                }
            }
            self.shared
                .metrics
                .round
                .store(self.consensus.round().0, Ordering::Relaxed);
            self.shared
                .health
                .pulse
                .driver_turned(self.consensus.is_waiting_for_work());
        }
    }

    fn on_input(&mut self, input: DriverInput) -> Result<(), DriverError> {
        match input {
            DriverInput::Consensus(bytes) => {
                let message = match SignedMessage::decode(&bytes, self.message_bytes_max) {
                    Ok(message) => message,
                    Err(error) => {
                        tracing::debug!(%error, "undecodable consensus message dropped");
                        return Ok(());
                    }
                };
                if message.height() > self.consensus.height() {
                    // A peer is deciding a later height: we missed a commit.
                    self.shared.sync_wanted.notify_one();
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
                let step = self.consensus.handle(Input::Message(message));
                // Readiness counts the validators heard from (`health.rs`).
                if let Some(disposition) = step.disposition {
                    self.shared.health.pulse.on_message(signer, disposition);
                }
                let actions = step.actions;
                if let Some(key) = voted {
                    self.fetch_if_missing(key);
                }
                self.execute(actions)
            }
            DriverInput::Synced { blocks, done } => {
                let result = self.apply_synced(blocks);
                let answer = match &result {
                    Ok(height) => Ok(*height),
                    Err(error) => Err(error.to_string()),
                };
                let _ = done.send(answer);
                match result {
                    Ok(_) => Ok(()),
                    // A bad block from a peer is the peer's fault, not ours.
                    Err(SyncApplyError::Peer(message)) => {
                        tracing::warn!(%message, "synced block refused");
                        Ok(())
                    }
                    Err(SyncApplyError::Local(error)) => Err(error),
                }
            }
        }
    }

    fn execute(&mut self, actions: Vec<Action>) -> Result<(), DriverError> {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Persist(state) => {
                    let bytes = crate::consensus_state::encode(state).map_err(|error| {
                        DriverError::Persist {
                            path: self.state_path.clone(),
                            source: std::io::Error::other(error.to_string()),
                        }
                    })?;
                    write_atomically(&self.state_path, &bytes).map_err(|source| {
                        DriverError::Persist {
                            path: self.state_path.clone(),
                            source,
                        }
                    })?;
                }
                Action::Broadcast(message) => {
                    let bytes = message.encode();
                    if let Message::Proposal(p) = &message.message {
                        self.shared.held_proposals().hold(
                            proposal_key(p.height, p.round, p.value.hash),
                            Arc::new(bytes.clone()),
                        );
                    }
                    if let Err(error) = self.shared.outbound.try_send(Outbound::Consensus(bytes)) {
                        // Votes are re-broadcast periodically; a dropped one is resent.
                        tracing::debug!(%error, "consensus broadcast dropped (network busy)");
                    }
                }
                Action::ScheduleTimeout { event, duration_ms } => {
                    self.timer_sequence += 1;
                    let at = Instant::now() + Duration::from_millis(duration_ms);
                    self.timers.push(Reverse((at, self.timer_sequence, event)));
                }
                Action::RequestProposal { height, round } => {
                    self.pending_proposal = Some((height, round));
                    if let Some(actions) = self.try_propose(false)? {
                        queue.extend(actions);
                    }
                }
                Action::ValidateValue { height, value } => {
                    // The state machine took the proposal (signed by the
                    // round's proposer): hold it for peers that missed it.
                    for (key, bytes) in &self.received_proposals {
                        if key.height == height.0 && key.hash == value.hash.0 {
                            self.shared.held_proposals().hold(*key, bytes.clone());
                        }
                    }
                    let valid = self.validate(height, &value)?;
                    let actions = self
                        .consensus
                        .handle(Input::ValueVerdict {
                            height,
                            hash: value.hash,
                            valid,
                        })
                        .actions;
                    queue.extend(actions);
                }
                Action::Commit {
                    height,
                    value,
                    certificate,
                } => {
                    self.commit_decided(height, value, &certificate)?;
                    let chain = self.shared.store.chain_info()?;
                    let validators = consensus_validators(&chain.validator_set)?;
                    let actions = self
                        .consensus
                        .handle(Input::StartHeight {
                            height: consensus::Height(chain.height.0 + 1),
                            validators,
                        })
                        .actions;
                    queue.extend(actions);
                }
                Action::Evidence(evidence) => {
                    self.keep_evidence(&evidence);
                    tracing::warn!(
                        validator = %hex::encode(evidence.first.validator.0),
                        height = evidence.first.height().0,
                        round = evidence.first.round().0,
                        "validator equivocated: two conflicting signed messages"
                    );
                }
            }
        }
        Ok(())
    }

    /// Asks the peers for proposal `key` when a vote names it at the
    /// current height and it is not held: its proposer may be cut off from
    /// this node, and members do not relay each other's proposals.
    fn fetch_if_missing(&mut self, key: ProposalKey) {
        if key.height != self.consensus.height().0 || self.shared.held_proposals().holds(&key) {
            return;
        }
        let now = Instant::now();
        match self.fetches.get(&key) {
            Some(at)
                if now.duration_since(*at) < Duration::from_millis(PROPOSAL_FETCH_RETRY_MS) =>
            {
                return
            }
            None if self.fetches.len() >= PROPOSAL_FETCHES_MAX => return,
            _ => {}
        }
        self.fetches.insert(key, now);
        if let Err(error) = self.shared.outbound.try_send(Outbound::FetchProposal(key)) {
            tracing::debug!(%error, "proposal fetch dropped (network busy)");
        }
    }

    /// Appends proof of equivocation to `data/evidence.jsonl` (one JSON
    /// object per line, fsynced), for the departments to act on.
    fn keep_evidence(&self, evidence: &consensus::Equivocation) {
        use std::io::Write;
        let path = self.state_path.with_file_name("evidence.jsonl");
        let written = serde_json::to_string(evidence)
            .map_err(std::io::Error::other)
            .and_then(|line| {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                writeln!(file, "{line}")?;
                file.sync_all()
            });
        if let Err(error) = written {
            tracing::error!(%error, path = %path.display(), "cannot record equivocation evidence");
        }
    }

    fn maybe_propose(&mut self) -> Result<(), DriverError> {
        // With a heartbeat configured the state machine waits at each new
        // height until there is work: tell it once the mempool holds some.
        if self.consensus.is_waiting_for_work() && !self.shared.mempool().is_empty() {
            let actions = self.consensus.handle(Input::WorkAvailable).actions;
            self.execute(actions)?;
        }
        if let Some(actions) = self.try_propose(false)? {
            self.execute(actions)?;
        }
        Ok(())
    }

    /// Proposes if a proposal is wanted and the block interval has passed
    /// (or the mempool has waited long enough, so empty chains still tick).
    fn try_propose(&mut self, force: bool) -> Result<Option<Vec<Action>>, DriverError> {
        let Some((height, round)) = self.pending_proposal else {
            return Ok(None);
        };
        if height != self.consensus.height() || round != self.consensus.round() {
            self.pending_proposal = None;
            return Ok(None);
        }
        let config = &self.shared.config.consensus;
        let since_commit = self.last_commit_at.elapsed();
        let interval = Duration::from_millis(config.block_interval_ms);
        let empty_interval = Duration::from_millis(config.empty_block_interval_ms);
        let has_transactions = !self.shared.mempool().is_empty();
        let ready = force
            || round.0 > 0
            || (since_commit >= interval && (has_transactions || since_commit >= empty_interval));
        if !ready {
            return Ok(None);
        }
        self.pending_proposal = None;
        let Some(value) = self.build_proposal(height)? else {
            return Ok(None);
        };
        Ok(Some(
            self.consensus
                .handle(Input::ProposalValue {
                    height,
                    round,
                    value,
                })
                .actions,
        ))
    }

    fn now(&self) -> Timestamp {
        Timestamp(local_time_ms(self.shared.config.consensus.clock_offset_ms))
    }

    /// Asks the ledger for a block at `height` from the waiting
    /// transactions; `None` when this node cannot propose now (it is
    /// behind, and sync is asked for, or its own block would be refused).
    fn build_proposal(
        &mut self,
        height: consensus::Height,
    ) -> Result<Option<consensus::Value>, DriverError> {
        let store = &self.shared.store;
        let chain = store.chain_info()?;
        let limits = BlockLimits::of(&store.parameters()?);
        let candidates: Vec<Candidate> = {
            let mempool = self.shared.mempool();
            let (transactions, ids) = mempool.candidates(limits.txs_max, limits.tx_bytes_max);
            transactions
                .into_iter()
                .zip(ids)
                .filter_map(|(tx, id)| {
                    let size_bytes = mempool.get(&id)?.size_bytes;
                    Some(Candidate { tx, id, size_bytes })
                })
                .collect()
        };
        let last_commit = if chain.height.0 == 0 {
            None
        } else {
            store.certificate(chain.height)?
        };
        let proposed = match chain::propose(
            store,
            Height(height.0),
            candidates,
            self.now(),
            self.validator_key,
            last_commit,
            limits,
        ) {
            Ok(proposed) => proposed,
            Err(ProposeError::Storage(error)) => return Err(DriverError::Propose(error)),
            Err(error) if error.node_is_behind() => {
                tracing::debug!(%error, "not proposing: this node is behind");
                self.shared.sync_wanted.notify_one();
                return Ok(None);
            }
            Err(error) => {
                tracing::error!(%error, "not proposing");
                return Ok(None);
            }
        };
        if !proposed.dropped.is_empty() {
            let mut mempool = self.shared.mempool();
            for (tx, reason) in &proposed.dropped {
                tracing::debug!(%tx, %reason, "waiting transaction no longer applies; dropped");
                mempool.remove(tx);
            }
        }
        let value = consensus::Value {
            bytes: proposed.bytes,
            hash: consensus::BlockHash(proposed.hash.0),
        };
        self.verified
            .insert(proposed.hash.0, (proposed.block, proposed.changes));
        Ok(Some(value))
    }

    /// Whether a proposed value is a block this validator can vote for. A
    /// store that cannot be read is an error, never a "no" vote.
    fn validate(
        &mut self,
        height: consensus::Height,
        value: &consensus::Value,
    ) -> Result<bool, DriverError> {
        if self.verified.contains_key(&value.hash.0) {
            return Ok(true);
        }
        let shared = &self.shared;
        // The mempool is locked per lookup, not across the whole judgement,
        // so that admissions do not wait for a block to be applied.
        let judged = chain::judge(
            &shared.store,
            Height(height.0),
            BlockHash(value.hash.0),
            &value.bytes,
            self.now(),
            |id| shared.mempool().contains(id),
        );
        match judged {
            Ok(judged) => {
                self.shared
                    .mempool()
                    .note_checked_in_proposal(judged.newly_checked_ids);
                self.verified
                    .insert(value.hash.0, (judged.block, judged.changes));
                Ok(true)
            }
            Err(Judgement::Refused(refusal)) if refusal.node_is_behind() => {
                tracing::debug!(%refusal, "proposal for a later height; asking for sync");
                self.shared.sync_wanted.notify_one();
                Ok(false)
            }
            Err(Judgement::Refused(refusal)) => {
                tracing::warn!(code = refusal.code(), %refusal, "proposed block refused");
                Ok(false)
            }
            Err(Judgement::Storage(error)) => Err(DriverError::Judge(error)),
        }
    }

    fn commit_decided(
        &mut self,
        height: consensus::Height,
        value: consensus::Value,
        certificate: &consensus::CommitCertificate,
    ) -> Result<(), DriverError> {
        let (block, judged) = match self.verified.remove(&value.hash.0) {
            Some((block, changes)) => (block, Some(changes)),
            None => {
                let block = Block::from_bytes(&value.bytes).map_err(|error| {
                    DriverError::DecidedBlockRefused {
                        height: height.0,
                        reason: error.to_string(),
                    }
                })?;
                (block, None)
            }
        };
        let certificate = ledger_certificate(certificate);
        // `block` was decoded from (or encoded as) these canonical bytes.
        let committed = chain::commit_certified(
            &self.shared.store,
            &block,
            &value.bytes,
            &certificate,
            Origin::Decided { judged },
        );
        match committed {
            Ok(Committed::Stored(changes)) => {
                tracing::info!(
                    height = height.0,
                    round = certificate.round.0,
                    transactions = block.transactions.len(),
                    hash = %block.hash(),
                    "committed"
                );
                self.after_commit(&block, &changes);
                Ok(())
            }
            // Block sync was faster.
            Ok(Committed::AlreadyStored) => Ok(()),
            Err(error) if error.is_local() => Err(DriverError::Commit(error)),
            Err(error) => Err(DriverError::DecidedBlockRefused {
                height: height.0,
                reason: error.to_string(),
            }),
        }
    }

    fn after_commit(&mut self, block: &Block, changes: &StateChanges) {
        // The ids, in block order, as computed when the block was applied.
        let ids: Vec<_> = changes.tx_locations.iter().map(|(id, _)| *id).collect();
        let now = self.now();
        let (arrivals, dropped) = {
            let mut mempool = self.shared.mempool();
            let result = mempool.on_commit(block, changes, now);
            self.shared
                .update_mempool_metrics(mempool.len(), mempool.bytes());
            result
        };
        if dropped > 0 {
            tracing::debug!(dropped, "transactions no longer valid left the mempool");
        }
        for arrived in arrivals {
            self.shared
                .metrics
                .observe_commit_latency(arrived.elapsed().as_secs_f64());
        }
        let height = block.header.height.0;
        let metrics = &self.shared.metrics;
        metrics.height.store(height, Ordering::Relaxed);
        metrics
            .committed_txs_total
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        self.shared.committed.send_replace(height);
        self.verified.clear();
        self.fetches.clear();
        self.last_commit_at = Instant::now();
    }

    /// Commits blocks fetched from a peer (the ledger checks each one and
    /// its certificate), then moves consensus to the height after the last
    /// one.
    fn apply_synced(&mut self, blocks: Vec<(Vec<u8>, Vec<u8>)>) -> Result<u64, SyncApplyError> {
        let store = self.shared.store.clone();
        let mut applied = 0u64;
        for (block_bytes, certificate_bytes) in blocks {
            let block = Block::from_bytes(&block_bytes)
                .map_err(|error| SyncApplyError::Peer(format!("block does not decode: {error}")))?;
            let height = block.header.height.0;
            let certificate =
                CommitCertificate::from_bytes(&certificate_bytes).map_err(|error| {
                    SyncApplyError::Peer(format!(
                        "certificate of block {height} does not decode: {error}"
                    ))
                })?;
            match chain::commit_certified(
                &store,
                &block,
                &block_bytes,
                &certificate,
                Origin::Synced,
            ) {
                Ok(Committed::Stored(changes)) => {
                    applied += 1;
                    self.shared
                        .metrics
                        .synced_blocks_total
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(height, "synced block committed");
                    self.after_commit(&block, &changes);
                }
                Ok(Committed::AlreadyStored) => {}
                Err(error) if error.is_local() => {
                    return Err(SyncApplyError::Local(DriverError::Commit(error)))
                }
                Err(error) => return Err(SyncApplyError::Peer(format!("block {height}: {error}"))),
            }
        }
        let chain = store.chain_info().map_err(SyncApplyError::local)?;
        if applied > 0 && chain.height.0 + 1 > self.consensus.height().0 {
            let validators =
                consensus_validators(&chain.validator_set).map_err(SyncApplyError::Local)?;
            let actions = self
                .consensus
                .handle(Input::StartHeight {
                    height: consensus::Height(chain.height.0 + 1),
                    validators,
                })
                .actions;
            self.execute(actions).map_err(SyncApplyError::Local)?;
        }
        Ok(chain.height.0)
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncApplyError {
    #[error("{0}")]
    Peer(String),
    #[error("{0}")]
    Local(DriverError),
}

impl SyncApplyError {
    fn local(error: StoreError) -> SyncApplyError {
        SyncApplyError::Local(DriverError::Store(error))
    }
}
