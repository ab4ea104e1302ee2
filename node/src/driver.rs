//! The consensus driver: the tokio shell around the node core
//! (`custody_consensus::core`), the one task that owns it.
//!
//! The core decides; this shell only carries out its effects, in order,
//! and wakes it:
//! - `Persist` is written durably (temporary file, fsync, rename, fsync of
//!   the directory) before the next effect, so a restarted validator never
//!   signs against its own earlier vote;
//! - `Broadcast` and `FetchProposal` go to the network task, `SyncWanted`
//!   wakes block sync, `Heard` feeds readiness, `Evidence` goes to the evidence desk
//!   (`evidence_desk.rs`), which puts it on chain;
//! - the core is woken at the time it asks for (its timers, pacing, the
//!   look for work), and hands held proposals to peers through
//!   [`DriverInput::HeldProposal`].
//!
//! The application the core calls is [`LedgerApp`]: every block decision
//! is the ledger's. The driver owns it, and with it the only writable
//! handle on the ledger store: decided and synced blocks are committed by
//! the same `chain::commit_certified`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_consensus as consensus;
use custody_consensus::core::{CoreConfig, Effect, Event, NodeCore, ProposalKey, SyncedBlock};
use custody_consensus::Consensus;
use tokio::sync::{mpsc, oneshot};

use crate::app::{consensus_validators, AppError, LedgerApp};
use crate::config::ConsensusConfig;
use crate::evidence_desk::EvidenceDesk;
use crate::handles::{Outbound, SyncWanted};
use crate::health::Health;
use crate::home::write_atomically;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Bound of the driver's input channel.
pub const DRIVER_INBOX_MAX: usize = 8192;

/// The longest the driver sleeps when the core asks for nothing: it wakes
/// anyway to show readiness that it runs.
const IDLE_WAKE_MS_MAX: u64 = 1_000;

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
    Store(#[from] custody_ledger::store::StoreError),
    #[error("consensus: {0}")]
    Consensus(#[from] consensus::ConsensusError),
    #[error(transparent)]
    App(#[from] AppError),
}

/// What other tasks feed into the driver.
pub enum DriverInput {
    /// A consensus message from gossip or a proposal fetch.
    Consensus(Vec<u8>),
    /// Blocks with certificates fetched by sync, in height order. The
    /// driver answers with its committed height after applying them.
    Synced {
        blocks: Vec<(Vec<u8>, Vec<u8>)>,
        done: oneshot::Sender<Result<u64, String>>,
    },
    /// A peer asks for a proposal: the bytes, if the core holds it.
    HeldProposal {
        key: ProposalKey,
        reply: oneshot::Sender<Option<Arc<Vec<u8>>>>,
    },
    /// The operator installed a validator key (`keys/validator.next.key`)
    /// while the node runs: it is held from now on and signs from the
    /// first height whose validator set names it.
    AddSigningKey(ed25519_dalek::SigningKey),
}

/// Where the driver's effects go, besides its application.
pub struct DriverLinks {
    /// Consensus messages and proposal fetches, to the network task.
    pub outbound: mpsc::Sender<Outbound>,
    /// Woken when the core sees this node behind.
    pub sync_wanted: SyncWanted,
    /// The core's pulse, for liveness and readiness.
    pub health: Arc<Health>,
    /// Height and round.
    pub metrics: Arc<Metrics>,
    /// Where equivocation consensus finds goes: to the chain.
    pub evidence: EvidenceDesk,
}

pub struct Driver {
    links: DriverLinks,
    core: NodeCore<LedgerApp>,
    app: LedgerApp,
    state_path: PathBuf,
    /// The core's clock: milliseconds since this instant (monotonic).
    origin: Instant,
    /// Where the answer to the `Synced` input being handled goes.
    sync_reply: Option<oneshot::Sender<Result<u64, String>>>,
}

impl Driver {
    /// Builds the state machine at the height after the store's last block,
    /// resuming from the persisted state if it is for that height, and the
    /// core around it, with `app` as its application. The node holds
    /// `signing_keys` (its current validator key and, ahead of a rotation,
    /// the next one). Returns the first effects to carry out.
    pub fn start(
        mut app: LedgerApp,
        links: DriverLinks,
        config: &ConsensusConfig,
        chain_id: &str,
        signing_keys: Vec<ed25519_dalek::SigningKey>,
        state_path: PathBuf,
    ) -> Result<(Driver, Vec<Effect>), DriverError> {
        let chain = app.chain_info()?;
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
        let height = chain.height.next();
        let persisted = persisted.filter(|state| state.height == height);
        let mut machine_config =
            consensus::Config::with_signing_keys(chain_id.to_string(), signing_keys);
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
        let core_config = CoreConfig {
            block_interval_ms: config.block_interval_ms,
            empty_block_interval_ms: config.empty_block_interval_ms,
            ..CoreConfig::default()
        };
        let validators = consensus_validators(&chain.validator_set)?;
        let (machine, actions) = Consensus::new(machine_config, validators, height, persisted)?;
        links
            .metrics
            .height
            .store(chain.height.0, Ordering::Relaxed);
        let (core, effects) = NodeCore::start(machine, actions, core_config, &mut app, 0)?;
        Ok((
            Driver {
                links,
                core,
                app,
                state_path,
                origin: Instant::now(),
                sync_reply: None,
            },
            effects,
        ))
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Runs until shutdown or a fatal error (a write that cannot be made
    /// durable, or a store that cannot be read or written).
    pub async fn run(
        mut self,
        first_effects: Vec<Effect>,
        mut inbox: mpsc::Receiver<DriverInput>,
        mut shutdown: Shutdown,
    ) -> Result<(), DriverError> {
        self.carry_out(first_effects)?;
        loop {
            let now_ms = self.now_ms();
            let wake_ms = self
                .core
                .next_wake_ms(&self.app, now_ms)
                .unwrap_or(u64::MAX)
                .min(now_ms.saturating_add(IDLE_WAKE_MS_MAX));
            let wake_at = self.origin + Duration::from_millis(wake_ms);
            // Biased: shutdown, then the core's wake (a due verdict or
            // timer is never starved by a busy inbox), then the inbox.
            let event = tokio::select! {
                biased;
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep_until(wake_at.into()) => Some(Event::Tick),
                input = inbox.recv() => match input {
                    None => return Ok(()),
                    Some(DriverInput::Consensus(bytes)) => Some(Event::Message(bytes)),
                    Some(DriverInput::Synced { blocks, done }) => {
                        self.sync_reply = Some(done);
                        Some(Event::Synced(
                            blocks
                                .into_iter()
                                .map(|(block, certificate)| SyncedBlock { block, certificate })
                                .collect(),
                        ))
                    }
                    Some(DriverInput::HeldProposal { key, reply }) => {
                        let _ = reply.send(self.core.held_proposal(&key));
                        None
                    }
                    Some(DriverInput::AddSigningKey(key)) => {
                        let public = custody_ledger::types::PublicKey(key.verifying_key().to_bytes());
                        let now_ms = self.now_ms();
                        match self.core.add_signing_key(key, &mut self.app, now_ms)? {
                            Ok(effects) => {
                                self.app.hold_validator_key(public);
                                self.links.health.hold_key(public);
                                tracing::info!(key = %public, "validator key installed while running; it signs from the first height whose validator set names it");
                                self.carry_out(effects)?;
                            }
                            Err(error) => tracing::warn!(key = %public, %error, "validator key not installed"),
                        }
                        None
                    }
                },
            };
            if let Some(event) = event {
                let now_ms = self.now_ms();
                let effects = self.core.handle(event, &mut self.app, now_ms)?;
                self.carry_out(effects)?;
            }
            let machine = self.core.machine();
            self.links
                .metrics
                .round
                .store(machine.round().0, Ordering::Relaxed);
            self.links
                .health
                .pulse
                .driver_turned(machine.is_waiting_for_work());
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect>) -> Result<(), DriverError> {
        for effect in effects {
            match effect {
                Effect::Persist(state) => {
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
                Effect::Broadcast { bytes, .. } => {
                    let bytes = Arc::unwrap_or_clone(bytes);
                    if let Err(error) = self.links.outbound.try_send(Outbound::Consensus(bytes)) {
                        // Votes are re-broadcast periodically; a dropped one is resent.
                        tracing::debug!(%error, "consensus broadcast dropped (network busy)");
                    }
                }
                Effect::FetchProposal(key) => {
                    if let Err(error) = self.links.outbound.try_send(Outbound::FetchProposal(key)) {
                        tracing::debug!(%error, "proposal fetch dropped (network busy)");
                    }
                }
                Effect::SyncWanted { from, .. } => {
                    tracing::debug!(from = from.0, "behind the network; asking for sync");
                    self.links.sync_wanted.wake();
                }
                Effect::Committed { .. } => {
                    // The application logged it and moved the metrics.
                }
                Effect::SyncDone(answer) => {
                    if let Err(message) = &answer {
                        // A bad block from a peer is the peer's fault, not ours.
                        tracing::warn!(%message, "synced block refused");
                    }
                    if let Some(reply) = self.sync_reply.take() {
                        let _ = reply.send(answer.map(|height| height.0));
                    }
                }
                Effect::Heard {
                    signer,
                    disposition,
                } => self.links.health.pulse.on_message(signer, disposition),
                Effect::WaitEnded { height, heartbeat } => {
                    if heartbeat {
                        tracing::info!(
                            height = height.0,
                            "heartbeat: starting a height with no work"
                        );
                    }
                }
                Effect::Evidence(evidence) => {
                    tracing::warn!(
                        validator = %hex::encode(evidence.first.validator.0),
                        height = evidence.first.height().0,
                        round = evidence.first.round().0,
                        "validator equivocated: two conflicting signed messages"
                    );
                    self.links.evidence.take(&evidence);
                }
                Effect::NotProposing(reason) => tracing::error!(%reason, "not proposing"),
                Effect::Refused { height, reason } => {
                    tracing::warn!(height = height.0, %reason, "proposed block refused");
                }
            }
        }
        Ok(())
    }
}
