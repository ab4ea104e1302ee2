//! The node core's application: the ledger's block decisions
//! (`chain::propose`, `chain::judge`, `chain::commit_certified`) over the
//! sled store and the mempool, plus what the node records after a commit
//! (mempool pruning, metrics, the committed-height signal).
//!
//! Every rule is the ledger's: this file only picks the candidates from
//! the mempool, maps the ledger's outcomes onto the core's
//! ([`Proposed`], [`Verdict`], [`Stored`]) and keeps local failures (the
//! store cannot be read or written) apart from blocks that are merely
//! wrong, which are verdicts.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use custody_consensus as consensus;
use custody_consensus::core::{Application, Head, Proposed, Stored, Verdict};
use custody_ledger::block::Block;
use custody_ledger::certificate::CommitCertificate;
use custody_ledger::chain::{
    self, BlockLimits, Candidate, CommitError, Committed, Judged, Judgement, Origin, ProposeError,
};
use custody_ledger::state::{ChainInfo, StateChanges, TxRefusal, ViewError};
use custody_ledger::store::{Store, StoreError};
use custody_ledger::types::{Height, PublicKey, Timestamp, TxId};
use tokio::sync::watch;

use crate::handles::{LocalClock, MempoolHandle};
use crate::metrics::Metrics;

/// A local failure of the application: the node stops.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot build a proposal: {0}")]
    Propose(ViewError),
    #[error("cannot judge a proposal: {0}")]
    Judge(ViewError),
    #[error("cannot commit: {0}")]
    Commit(CommitError),
    #[error("the decided block at height {height} cannot be applied: {reason}")]
    DecidedBlockRefused { height: u64, reason: String },
    #[error("validator set: {0}")]
    ValidatorSet(String),
}

/// The ledger's validator set as consensus holds it: the same validators
/// (one type, from `custody-format`), checked and sorted for the proposer
/// rotation.
pub fn consensus_validators(
    set: &custody_ledger::records::ValidatorSet,
) -> Result<consensus::ValidatorSet, AppError> {
    consensus::ValidatorSet::new(set.validators.clone())
        .map_err(|error| AppError::ValidatorSet(error.to_string()))
}

/// A block as the ledger checked it, with the state changes it makes.
pub type CheckedBlock = (Block, StateChanges);

/// Waiting transactions that no longer apply, with the reason.
pub type Dropped = Vec<(TxId, TxRefusal)>;

/// The ledger's answer to "propose a block" in the node core's terms: the
/// value with its checked block and changes, [`Proposed::Behind`] when the
/// store is behind the height (sync catches up), or [`Proposed::Nothing`]
/// with the reason; with it, the waiting transactions that no longer apply
/// (for the mempool to drop). A store that cannot be read is the caller's
/// local failure, never an outcome.
pub fn proposal_outcome(
    proposed: Result<chain::Proposed, ProposeError>,
) -> Result<(Proposed<CheckedBlock>, Dropped), ViewError> {
    match proposed {
        Ok(proposed) => {
            let value = consensus::Value {
                bytes: proposed.bytes,
                hash: proposed.hash,
            };
            Ok((
                Proposed::Value(value, (proposed.block, proposed.changes)),
                proposed.dropped,
            ))
        }
        Err(ProposeError::Storage(error)) => Err(error),
        Err(error) if error.node_is_behind() => Ok((Proposed::Behind, Vec::new())),
        Err(error) => Ok((Proposed::Nothing(error.to_string()), Vec::new())),
    }
}

/// The ledger's judgement of a proposed block in the node core's terms:
/// [`Verdict::Valid`] with the checked block and changes, [`Verdict::Behind`]
/// when this node's store is behind the proposal's height, or
/// [`Verdict::Invalid`] with the refusal's code and reason; with it, the ids
/// of the transactions whose signatures the judgement checked. A store that
/// cannot be read is the caller's local failure, never a vote.
pub fn judgement_outcome(
    judged: Result<Judged, Judgement>,
) -> Result<(Verdict<CheckedBlock>, Vec<TxId>), ViewError> {
    match judged {
        Ok(judged) => Ok((
            Verdict::Valid((judged.block, judged.changes)),
            judged.newly_checked_ids,
        )),
        Err(Judgement::Refused(refusal)) if refusal.node_is_behind() => {
            Ok((Verdict::Behind, Vec::new()))
        }
        Err(Judgement::Refused(refusal)) => Ok((
            Verdict::Invalid(format!("{}: {refusal}", refusal.code())),
            Vec::new(),
        )),
        Err(Judgement::Storage(error)) => Err(error),
    }
}

/// The ledger, the mempool and the node's records of commits. It holds
/// the node's only writable handle on the ledger store: every other part
/// reads through `handles::StoreReader`.
pub struct LedgerApp {
    store: Store,
    mempool: MempoolHandle,
    metrics: Arc<Metrics>,
    /// Moved to the committed height after every stored block.
    committed: watch::Sender<u64>,
    clock: LocalClock,
    /// The validator keys the node holds (current, and next ahead of a
    /// rotation): a block names as proposer the one in force.
    validator_keys: Vec<PublicKey>,
}

impl LedgerApp {
    pub fn new(
        store: Store,
        mempool: MempoolHandle,
        metrics: Arc<Metrics>,
        committed: watch::Sender<u64>,
        clock: LocalClock,
        validator_keys: Vec<PublicKey>,
    ) -> LedgerApp {
        LedgerApp {
            store,
            mempool,
            metrics,
            committed,
            clock,
            validator_keys,
        }
    }

    /// Holds one more validator key (installed while the node runs).
    pub fn hold_validator_key(&mut self, key: PublicKey) {
        if !self.validator_keys.contains(&key) {
            self.validator_keys.push(key);
        }
    }

    /// The committed chain's head, as stored.
    pub fn chain_info(&self) -> Result<ChainInfo, StoreError> {
        self.store.chain_info()
    }

    /// Block timestamps are wall-clock time (shifted only in clock-fault
    /// tests), not the core's monotonic clock.
    fn now(&self) -> Timestamp {
        Timestamp(self.clock.now_ms())
    }

    /// What follows every stored block, decided or synced: the mempool
    /// drops what the block carried, metrics and the committed-height
    /// signal move.
    fn after_commit(&self, block: &Block, changes: &StateChanges) {
        // The ids, in block order, as computed when the block was applied.
        let ids: Vec<_> = changes.tx_locations.iter().map(|(id, _)| *id).collect();
        let now = self.now();
        let (arrivals, dropped) = {
            let mut mempool = self.mempool.lock();
            let result = mempool.on_commit(block, changes, now);
            self.metrics
                .set_mempool_size(mempool.len(), mempool.bytes());
            result
        };
        if dropped > 0 {
            tracing::debug!(dropped, "transactions no longer valid left the mempool");
        }
        for arrived in arrivals {
            self.metrics
                .observe_commit_latency(arrived.elapsed().as_secs_f64());
        }
        let height = block.header.height.0;
        let metrics = &self.metrics;
        metrics.height.store(height, Ordering::Relaxed);
        metrics
            .committed_txs_total
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        if !changes.evidence.is_empty() {
            metrics
                .evidence_committed_total
                .fetch_add(changes.evidence.len() as u64, Ordering::Relaxed);
            for record in changes.evidence.values() {
                tracing::warn!(
                    validator = %record.validator,
                    department = record.department.as_ref().map(|d| d.to_string()).unwrap_or_default(),
                    height = record.height.0,
                    round = record.round.0,
                    tx = %record.tx,
                    "equivocation evidence committed"
                );
            }
        }
        self.committed.send_replace(height);
    }
}

impl Application for LedgerApp {
    type Checked = (Block, StateChanges);
    type Error = AppError;

    fn head(&mut self) -> Result<Head, AppError> {
        let chain = self.store.chain_info()?;
        Ok(Head {
            height: chain.height,
            next_validators: consensus_validators(&chain.validator_set)?,
        })
    }

    fn has_work(&self) -> bool {
        !self.mempool.lock().is_empty()
    }

    fn propose(
        &mut self,
        height: consensus::Height,
        _now_ms: u64,
    ) -> Result<Proposed<Self::Checked>, AppError> {
        let store = &self.store;
        let chain = store.chain_info()?;
        let limits = BlockLimits::of(&store.parameters()?);
        let candidates: Vec<Candidate> = {
            let mempool = self.mempool.lock();
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
        // The key the set in force names; the node only proposes when it
        // holds one, so the fallback is never signed for.
        let proposer = self
            .validator_keys
            .iter()
            .find(|key| {
                chain
                    .validator_set
                    .validators
                    .iter()
                    .any(|v| v.key == **key)
            })
            .or(self.validator_keys.first())
            .copied()
            .unwrap_or(PublicKey([0; 32]));
        let last_commit = if chain.height.0 == 0 {
            None
        } else {
            store.certificate(chain.height)?
        };
        let (proposed, dropped) = proposal_outcome(chain::propose(
            store,
            height,
            candidates,
            self.now(),
            proposer,
            last_commit,
            limits,
        ))
        .map_err(AppError::Propose)?;
        if !dropped.is_empty() {
            let mut mempool = self.mempool.lock();
            for (tx, reason) in &dropped {
                tracing::debug!(%tx, %reason, "waiting transaction no longer applies; dropped");
                mempool.remove(tx);
            }
        }
        Ok(proposed)
    }

    fn judge(
        &mut self,
        height: consensus::Height,
        value: &consensus::Value,
        _now_ms: u64,
    ) -> Result<Verdict<Self::Checked>, AppError> {
        let mempool = &self.mempool;
        // The mempool is locked per lookup, not across the whole judgement,
        // so that admissions do not wait for a block to be applied.
        let judged = chain::judge(
            &self.store,
            Height(height.0),
            value.hash,
            &value.bytes,
            self.now(),
            |id| mempool.lock().contains(id),
        );
        let (verdict, newly_checked_ids) = judgement_outcome(judged).map_err(AppError::Judge)?;
        if matches!(verdict, Verdict::Valid(_)) {
            mempool.lock().note_checked_in_proposal(newly_checked_ids);
        }
        Ok(verdict)
    }

    fn commit(
        &mut self,
        height: consensus::Height,
        value: &consensus::Value,
        checked: Option<Self::Checked>,
        certificate: &CommitCertificate,
        _now_ms: u64,
    ) -> Result<Stored, AppError> {
        let (block, judged) = match checked {
            Some((block, changes)) => (block, Some(changes)),
            None => {
                let block = Block::from_bytes(&value.bytes).map_err(|error| {
                    AppError::DecidedBlockRefused {
                        height: height.0,
                        reason: error.to_string(),
                    }
                })?;
                (block, None)
            }
        };
        // `block` was decoded from (or encoded as) these canonical bytes.
        match chain::commit_certified(
            &self.store,
            &block,
            &value.bytes,
            certificate,
            Origin::Decided { judged },
        ) {
            Ok(Committed::Stored(changes)) => {
                tracing::info!(
                    height = height.0,
                    round = certificate.round.0,
                    transactions = block.transactions.len(),
                    hash = %block.hash(),
                    "committed"
                );
                self.after_commit(&block, &changes);
                Ok(Stored::Now {
                    height,
                    transactions: block.transactions.len(),
                })
            }
            // Block sync was faster.
            Ok(Committed::AlreadyStored) => Ok(Stored::Already),
            Err(error) if error.is_local() => Err(AppError::Commit(error)),
            Err(error) => Err(AppError::DecidedBlockRefused {
                height: height.0,
                reason: error.to_string(),
            }),
        }
    }

    fn apply_synced(
        &mut self,
        block_bytes: &[u8],
        certificate_bytes: &[u8],
        _now_ms: u64,
    ) -> Result<Stored, AppError> {
        let block = match Block::from_bytes(block_bytes) {
            Ok(block) => block,
            Err(error) => return Ok(Stored::Refused(format!("block does not decode: {error}"))),
        };
        let height = block.header.height.0;
        let certificate = match CommitCertificate::from_bytes(certificate_bytes) {
            Ok(certificate) => certificate,
            Err(error) => {
                return Ok(Stored::Refused(format!(
                    "certificate of block {height} does not decode: {error}"
                )))
            }
        };
        match chain::commit_certified(
            &self.store,
            &block,
            block_bytes,
            &certificate,
            Origin::Synced,
        ) {
            Ok(Committed::Stored(changes)) => {
                self.metrics
                    .synced_blocks_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(height, "synced block committed");
                self.after_commit(&block, &changes);
                Ok(Stored::Now {
                    height: consensus::Height(height),
                    transactions: block.transactions.len(),
                })
            }
            Ok(Committed::AlreadyStored) => Ok(Stored::Already),
            Err(error) if error.is_local() => Err(AppError::Commit(error)),
            Err(error) => Ok(Stored::Refused(format!("block {height}: {error}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_while_proposing_is_a_local_failure_not_an_outcome() {
        let failed = proposal_outcome(Err(ProposeError::Storage(ViewError(
            "disk gone".to_string(),
        ))));
        assert_eq!(failed.err(), Some(ViewError("disk gone".to_string())));
    }

    #[test]
    fn a_store_failure_while_judging_is_a_local_failure_not_a_vote() {
        let failed = judgement_outcome(Err(Judgement::Storage(ViewError("disk gone".to_string()))));
        assert_eq!(failed.err(), Some(ViewError("disk gone".to_string())));
    }
}
