//! The consensus simulator running the node core with the ledger as its
//! application: the ledger's in-memory state, its `chain::propose`,
//! `chain::judge` and `chain::certified_changes` (the checks of the
//! store's `commit_certified`), over the same faulty network, crashes and
//! Byzantine validators as the consensus crate's own seeds. Work is real
//! ledger transactions (an administrator enrolling a member), and every
//! honest commit is checked for agreement, validity, its certificate, idle
//! blocks and liveness after the network heals.
//!
//! `CUSTODY_LEDGER_SIM_SEEDS=N` runs N seeds (default below),
//! `CUSTODY_SIM_SEED=S` one.

#[path = "../../consensus/tests/simulator/mod.rs"]
mod simulator;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use custody_consensus as consensus;
use custody_consensus::core::{Application, Head, Proposed, Stored, SyncedBlock, Verdict};
use custody_ledger::block::Block;
use custody_ledger::certificate::CommitCertificate;
use custody_ledger::chain::{self, BlockLimits, Candidate, Origin};
use custody_ledger::encoding;
use custody_ledger::records::NewMember;
use custody_ledger::state::{MemoryState, StateChanges, StateView};
use custody_ledger::testkit::{seed_key, Federation, Signer, GENESIS_TIME_MS};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{
    Classification, DepartmentId, Height, PublicKey, Role, Timestamp, TxId,
};
use custody_node::app::{consensus_validators, judgement_outcome, proposal_outcome};
use simulator::{Behaviour, Outcome, SimApplication, SimConfig, Simulation, CHAIN_ID};

/// Seeds run in CI (each block a real ledger block).
const CI_SEED_COUNT: u64 = 1_000;

/// Members who submit work: work `id` is signed by `id % WORKERS` with
/// nonce `id / WORKERS + 1`, so that work ids up to `WORKERS` never wait
/// for another's nonce.
const WORKERS: u64 = 64;

/// A local failure of the in-memory ledger (the store's would stop a node).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LocalFailure(String);

fn local(error: impl std::fmt::Display) -> LocalFailure {
    LocalFailure(error.to_string())
}

/// What every node of a run shares: the federation's genesis and the
/// work signers.
struct World {
    federation: Federation,
    workers: Vec<(Signer, DepartmentId)>,
}

impl World {
    fn new(n: usize) -> World {
        let mut federation = Federation::new(n, CHAIN_ID);
        let mut workers = Vec::new();
        for index in 0..WORKERS {
            let key = seed_key(&format!("worker/{index}"));
            let department = &mut federation.genesis.departments[index as usize % n];
            department.admins.push(NewMember {
                key: encoding::public_key_of(&key),
                name: format!("worker {index}"),
                roles: vec![Role::Admin],
                clearance: Classification::Internal,
            });
            workers.push((Signer::new(key, CHAIN_ID), department.id.clone()));
        }
        World {
            federation,
            workers,
        }
    }

    /// The transaction of work `id`.
    fn work(&self, id: u64) -> SignedTransaction {
        let (signer, department) = &self.workers[(id % WORKERS) as usize];
        signer.sign_with_nonce(
            TxBody::EnrollMember {
                member: encoding::public_key_of(&seed_key(&format!("member/{id}"))),
                department: department.clone(),
                name: format!("work {id}"),
                roles: vec![Role::Clerk],
                clearance: Classification::Internal,
            },
            id / WORKERS + 1,
        )
    }
}

/// The work id a transaction carries, if it is one.
fn work_id(tx: &SignedTransaction) -> Option<u64> {
    match &tx.payload.body {
        TxBody::EnrollMember { name, .. } => name.strip_prefix("work ")?.parse().ok(),
        _ => None,
    }
}

/// One node's ledger, in memory: the committed state and blocks are its
/// durable part, the mempool is lost in a crash.
struct LedgerSimApp {
    world: Arc<World>,
    validator: PublicKey,
    state: MemoryState,
    /// Committed blocks: bytes and certificate, by height.
    blocks: BTreeMap<u64, (Vec<u8>, CommitCertificate)>,
    committed_work: BTreeSet<u64>,
    mempool: BTreeMap<u64, (SignedTransaction, TxId)>,
}

impl LedgerSimApp {
    fn new(world: Arc<World>, node: usize) -> LedgerSimApp {
        let state = MemoryState::from_genesis(&world.federation.genesis);
        let validator = encoding::public_key_of(&world.federation.validators[node]);
        LedgerSimApp {
            world,
            validator,
            state,
            blocks: BTreeMap::new(),
            committed_work: BTreeSet::new(),
            mempool: BTreeMap::new(),
        }
    }

    /// Block time: the simulated clock after the genesis.
    fn time(now_ms: u64) -> Timestamp {
        Timestamp(GENESIS_TIME_MS + 1_000 + now_ms)
    }

    fn store(
        &mut self,
        block: &Block,
        bytes: Vec<u8>,
        certificate: CommitCertificate,
        changes: StateChanges,
    ) -> Stored {
        self.state.apply(changes);
        for tx in &block.transactions {
            if let Some(id) = work_id(tx) {
                self.mempool.remove(&id);
                self.committed_work.insert(id);
            }
        }
        let height = block.header.height.0;
        self.blocks.insert(height, (bytes, certificate));
        Stored::Now {
            height: consensus::Height(height),
            transactions: block.transactions.len(),
        }
    }

    fn head_height(&self) -> Result<Height, LocalFailure> {
        Ok(self.state.chain().map_err(local)?.height)
    }
}

impl Application for LedgerSimApp {
    type Checked = (Block, StateChanges);
    type Error = LocalFailure;

    fn head(&mut self) -> Result<Head, LocalFailure> {
        let chain = self.state.chain().map_err(local)?;
        Ok(Head {
            height: chain.height,
            next_validators: consensus_validators(&chain.validator_set).map_err(local)?,
        })
    }

    fn has_work(&self) -> bool {
        !self.mempool.is_empty()
    }

    fn propose(
        &mut self,
        height: consensus::Height,
        now_ms: u64,
    ) -> Result<Proposed<Self::Checked>, LocalFailure> {
        let limits = BlockLimits::of(&self.state.parameters().map_err(local)?);
        let candidates = self
            .mempool
            .values()
            .map(|(tx, id)| Candidate {
                tx: tx.clone(),
                id: *id,
                size_bytes: tx.to_bytes().len(),
            })
            .collect();
        let committed = self.head_height()?;
        let last_commit = self
            .blocks
            .get(&committed.0)
            .map(|(_, certificate)| certificate.clone());
        let (proposed, _dropped) = proposal_outcome(chain::propose(
            &self.state,
            height,
            candidates,
            Self::time(now_ms),
            self.validator,
            last_commit,
            limits,
        ))
        .map_err(local)?;
        Ok(proposed)
    }

    fn judge(
        &mut self,
        height: consensus::Height,
        value: &consensus::Value,
        now_ms: u64,
    ) -> Result<Verdict<Self::Checked>, LocalFailure> {
        let (verdict, _newly_checked) = judgement_outcome(chain::judge(
            &self.state,
            height,
            value.hash,
            &value.bytes,
            Self::time(now_ms),
            |_| false,
        ))
        .map_err(local)?;
        Ok(verdict)
    }

    fn commit(
        &mut self,
        height: consensus::Height,
        value: &consensus::Value,
        checked: Option<Self::Checked>,
        certificate: &CommitCertificate,
        _now_ms: u64,
    ) -> Result<Stored, LocalFailure> {
        if height <= self.head_height()? {
            return Ok(Stored::Already);
        }
        let (block, judged) = match checked {
            Some((block, changes)) => (block, Some(changes)),
            None => (Block::from_bytes(&value.bytes).map_err(local)?, None),
        };
        let certificate = certificate.clone();
        // A decided block that does not apply is a local failure.
        let changes = chain::certified_changes(
            &self.state,
            &block,
            &certificate,
            Origin::Decided { judged },
        )
        .map_err(local)?;
        Ok(self.store(&block, value.bytes.clone(), certificate, changes))
    }

    fn apply_synced(
        &mut self,
        block_bytes: &[u8],
        certificate_bytes: &[u8],
        _now_ms: u64,
    ) -> Result<Stored, LocalFailure> {
        let Ok(block) = Block::from_bytes(block_bytes) else {
            return Ok(Stored::Refused("block does not decode".to_owned()));
        };
        let Ok(certificate) = CommitCertificate::from_bytes(certificate_bytes) else {
            return Ok(Stored::Refused("certificate does not decode".to_owned()));
        };
        if block.header.height <= self.head_height()? {
            return Ok(Stored::Already);
        }
        match chain::certified_changes(&self.state, &block, &certificate, Origin::Synced) {
            Ok(changes) => Ok(self.store(&block, block_bytes.to_vec(), certificate, changes)),
            Err(error) if error.is_local() => Err(local(error)),
            Err(error) => Ok(Stored::Refused(error.to_string())),
        }
    }
}

impl SimApplication for LedgerSimApp {
    fn committed_height(&self) -> consensus::Height {
        consensus::Height(
            self.blocks
                .last_key_value()
                .map_or(0, |(height, _)| *height),
        )
    }

    fn committed_block(
        &self,
        height: consensus::Height,
    ) -> Option<(consensus::Value, consensus::CommitCertificate)> {
        let (bytes, certificate) = self.blocks.get(&height.0)?;
        let block = Block::from_bytes(bytes).ok()?;
        Some((
            consensus::Value {
                bytes: bytes.clone(),
                hash: block.hash(),
            },
            certificate.clone(),
        ))
    }

    fn sync_blocks(&self, from: consensus::Height, count_max: usize) -> Vec<SyncedBlock> {
        self.blocks
            .range(from.0..)
            .take(count_max)
            .map(|(_, (bytes, certificate))| SyncedBlock {
                block: bytes.clone(),
                certificate: certificate.to_bytes(),
            })
            .collect()
    }

    fn has_committed(&self, id: u64) -> bool {
        self.committed_work.contains(&id)
    }

    fn admit(&mut self, id: u64) -> bool {
        if self.committed_work.contains(&id) || self.mempool.contains_key(&id) {
            return false;
        }
        let tx = self.world.work(id);
        if !tx.verify_signature() {
            return false;
        }
        let tx_id = tx.id();
        self.mempool.insert(id, (tx, tx_id));
        true
    }

    fn work_in(&self, value: &consensus::Value) -> Vec<u64> {
        Block::from_bytes(&value.bytes)
            .map(|block| block.transactions.iter().filter_map(work_id).collect())
            .unwrap_or_default()
    }

    fn is_valid(&self, height: consensus::Height, value: &consensus::Value) -> bool {
        Block::from_bytes(&value.bytes)
            .is_ok_and(|block| block.header.height.0 == height.0 && block.hash().0 == value.hash.0)
    }

    fn crash(&mut self) {
        self.mempool.clear();
    }
}

/// One seed's scenario with the ledger as every node's application: the
/// federation's departments all vote with power 1 (the ledger's validator
/// set is its own; changing it is governance, not a script).
fn run_ledger_seed(seed: u64) -> Outcome {
    let mut config = SimConfig::from_seed(seed);
    config.powers = vec![1; config.n];
    config.power_change = None;
    let world = Arc::new(World::new(config.n));
    let keys = world.federation.validators.clone();
    simulator::run_guarded(move || {
        Simulation::with_apps(config, keys, |node| LedgerSimApp::new(world.clone(), node)).run()
    })
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("CUSTODY_SIM_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("CUSTODY_LEDGER_SIM_SEEDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(CI_SEED_COUNT);
    (0..count).collect()
}

#[test]
fn the_node_core_with_the_ledger_keeps_agreement_validity_and_liveness_across_seeds() {
    let seeds = seeds();
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let failures: Vec<(u64, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let mine: Vec<u64> = seeds
                    .iter()
                    .copied()
                    .skip(thread)
                    .step_by(threads)
                    .collect();
                scope.spawn(move || {
                    mine.into_iter()
                        .map(|seed| (seed, run_ledger_seed(seed)))
                        .filter(|(_, outcome)| !outcome.violations.is_empty())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    });
    println!(
        "{} ledger seeds in {:.1} s, {} failing",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    for (seed, outcome) in &failures {
        println!("seed {seed}:");
        for violation in &outcome.violations {
            println!("  {violation}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed; replay one with CUSTODY_SIM_SEED=S cargo test --release -p custody-node --test core_simulation -- --nocapture",
        failures.len(),
        seeds.len()
    );
}

#[test]
fn a_byzantine_proposer_of_ledger_blocks_is_outvoted_and_the_chain_goes_on() {
    let mut config = SimConfig::benign(4, 20, 6);
    config.behaviours[1] = Behaviour::EquivocatingProposer;
    config.check_certificates = true;
    let world = Arc::new(World::new(4));
    let keys = world.federation.validators.clone();
    let outcome = simulator::run_guarded(move || {
        Simulation::with_apps(config, keys, |node| LedgerSimApp::new(world.clone(), node)).run()
    });
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.stats.min_honest_height >= 6);
}
