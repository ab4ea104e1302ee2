//! A deterministic simulator for the consensus state machine.
//!
//! One seed fixes everything: the fault script (partitions, crashes,
//! Byzantine validators, drop and duplication rates) and every random choice
//! of the network (delays, hence reordering). Events sit in one priority
//! queue ordered by (simulated time, sequence number); one event is handled
//! per step, and one seeded ChaCha RNG is the only source of randomness.
//!
//! Each simulated node runs the node core (`custody_consensus::core`), the
//! same code the real node runs, with a small application: the simulator
//! is only the shell, as the node's tokio task is. It carries out the
//! core's effects in order, keeps only what `Persist` and the
//! application's commits wrote across a crash, wakes the core when it
//! asks (after a random application delay when it has verdicts or a
//! proposal to give), and carries proposal fetches and block sync over the
//! same faulty network as everything else.
//!
//! Checked on every run: agreement, validity, certificate validity, that no
//! honest validator ever signs two conflicting messages (crash amnesia), that
//! evidence only ever names Byzantine validators, and liveness after the
//! global stabilisation time (GST: last heal, all crashed nodes back, no
//! more drops).
//!
//! With a heartbeat (validators wait for work at each new height), the
//! nodes also hold a small mempool of "work" (transactions) that arrives by
//! script and is gossiped over the same faulty network; blocks carry it.
//! Then also checked: no height commits unless some validator had work or
//! its heartbeat fired (an idle network commits only heartbeat blocks), no
//! work is committed twice, and work that reaches one honest node after GST
//! is committed by every honest node.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use custody_consensus::core::{
    Application, CoreConfig, Effect, Event as CoreEvent, Head, NodeCore, Origin, ProposalKey,
    Proposed, Stored, SyncedBlock, Verdict,
};
use custody_consensus::{
    BlockHash, CommitCertificate, Config, Consensus, FaultInjection, Height, Message,
    PersistedState, Proposal, SignedMessage, TimeoutConfig, Validator, ValidatorKey, ValidatorSet,
    Value, Vote,
};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Chain id used by every simulated validator.
pub const CHAIN_ID: &str = "custody-sim";

/// Blocks returned by one sync response.
const SYNC_BLOCKS_PER_RESPONSE_MAX: usize = 8;

/// A node asks a peer for blocks at most this often.
const SYNC_REQUEST_INTERVAL_MS: u64 = 200;

/// Hard stop on the number of events in one run (a run that needs more is
/// reported as a liveness failure rather than looping forever).
const EVENTS_PER_RUN_MAX: u64 = 3_000_000;

/// How a faulty validator misbehaves. Byzantine validators run the honest
/// state machine inside and tamper with what it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// Sends nothing at all.
    Silent,
    /// As proposer, sends one valid block to half the validators and a
    /// different valid block to the other half.
    EquivocatingProposer,
    /// Every vote goes out in two versions (block and nil, or two blocks),
    /// each to half the validators.
    DoubleVoter,
    /// Proposes invalid blocks and prevotes and precommits for them.
    InvalidValueVoter,
    /// Twins: two complete honest machines share the validator's key, one
    /// talking to the even-numbered nodes and one to the odd-numbered ones,
    /// so every proposal and vote may be equivocated by protocol-following
    /// code.
    Twin,
}

/// A network partition: from `start_ms` to `end_ms`, messages only flow
/// between nodes with the same group number.
#[derive(Clone, Debug)]
pub struct PartitionScript {
    pub start_ms: u64,
    pub end_ms: u64,
    pub groups: Vec<u8>,
}

/// A half-open link: from `start_ms` to `end_ms` every message to
/// (`inbound`) and/or from (`outbound`) `node` is lost, while both sides go
/// on as if connected (no one stops sending to it, nothing is re-sent but
/// by the protocol's own re-broadcast and sync), as a silently cut TCP
/// connection behaves until the peer is declared dead.
#[derive(Clone, Debug)]
pub struct HalfOpenScript {
    pub node: usize,
    pub start_ms: u64,
    pub end_ms: u64,
    pub inbound: bool,
    pub outbound: bool,
}

/// A transaction (`id`) submitted to `node` at `at_ms`; with `gossip` the
/// node sends it on to the others (once, over the faulty network),
/// otherwise only that node ever holds it. With `required`, liveness
/// demands that every honest node commits it (only for work that arrives
/// after GST where the protocol promises it: see `SimConfig::from_seed`).
#[derive(Clone, Debug)]
pub struct WorkScript {
    pub at_ms: u64,
    pub node: usize,
    pub id: u64,
    pub gossip: bool,
    pub required: bool,
}

/// Work ids carried by one block at most.
const WORK_PER_BLOCK_MAX: usize = 16;

/// A crash of an honest node at `at_ms`, restarted at `restart_ms` from its
/// persisted state and committed blocks only.
#[derive(Clone, Debug)]
pub struct CrashScript {
    pub node: usize,
    pub at_ms: u64,
    pub restart_ms: u64,
}

/// A change of the validator set between heights, as governance decides
/// it: new powers (a node going from 0 joins, one going to 0 leaves), and
/// maybe one validator's key replaced.
#[derive(Clone, Debug)]
pub struct SetChange {
    /// The first height the new set is in force at.
    pub height: u64,
    /// Each node's power from `height` on (0: not a validator).
    pub powers: Vec<u64>,
    /// A validator whose key this change replaces (with
    /// [`rotated_signing_key`]).
    pub rotation: Option<KeyRotation>,
}

/// A validator's key replaced at a set change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRotation {
    /// The node whose key is replaced.
    pub node: usize,
    /// The node lost its old key: it only ever holds the new one, so it
    /// observes until the change takes effect (its old key, named by the
    /// set until then, signs nothing). Otherwise it holds both from the
    /// start and switches at the change height.
    pub old_key_lost: bool,
}

/// Which kinds of validator-set change a scenario holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeKinds {
    /// A node with power 0 at height 1 becomes a validator.
    pub join: bool,
    /// A validator's power goes to 0.
    pub leave: bool,
    /// A validator holding its old and new key switches between them.
    pub rotation: bool,
    /// A validator that lost its old key signs once the new one is in force.
    pub lost_key: bool,
}

/// Everything a run does, derived from its seed (or written by hand).
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub n: usize,
    /// Behaviour of each node (index = node).
    pub behaviours: Vec<Behaviour>,
    /// Voting power of each node from height 1 (0: not a validator, an
    /// observer that follows the chain).
    pub powers: Vec<u64>,
    /// From a later height on, other powers and maybe a rotated key: the
    /// validator set changes between heights, as the ledger may decide.
    pub power_change: Option<SetChange>,
    /// Link delay drawn uniformly from this inclusive range, per message.
    pub link_delay_ms: (u64, u64),
    /// Delay of the application answering a proposal or validation request.
    pub app_delay_ms: (u64, u64),
    /// The proposer's block interval: after a commit it waits this long
    /// before proposing in round 0 (the node's `block_interval_ms`).
    pub commit_pause_ms: u64,
    /// Before GST: probability that a message is lost.
    pub drop_probability: f64,
    /// Probability that a message is delivered twice (whole run).
    pub duplicate_probability: f64,
    /// Before GST: probability that a node crashes in the middle of
    /// carrying out one batch of actions (it restarts 50–500 ms later).
    pub crash_mid_actions_probability: f64,
    pub partitions: Vec<PartitionScript>,
    pub half_open: Vec<HalfOpenScript>,
    pub crashes: Vec<CrashScript>,
    /// Transactions arriving at nodes. Only meaningful with
    /// `timeouts.heartbeat_ms` (without it every height starts at once).
    pub work: Vec<WorkScript>,
    /// Global stabilisation time: every fault has ended by then.
    pub gst_ms: u64,
    /// After GST, every honest node must commit this many more heights...
    pub heights_after_gst: u64,
    /// ...within this much simulated time.
    pub liveness_bound_ms: u64,
    pub timeouts: TimeoutConfig,
    pub fault_injection: FaultInjection,
    /// Check every commit's certificate (off only for the broken-quorum
    /// test, whose certificates are too small by construction).
    pub check_certificates: bool,
    /// Stop at this many committed heights even before GST (report mode).
    pub stop_at_height: Option<u64>,
    /// Print every event (set by `CUSTODY_SIM_TRACE=1` on a replay).
    pub trace: bool,
}

impl SimConfig {
    /// Timeouts tuned for 10–60 ms links.
    pub fn sim_timeouts() -> TimeoutConfig {
        TimeoutConfig {
            propose_ms: 400,
            propose_delta_ms: 100,
            prevote_ms: 200,
            prevote_delta_ms: 100,
            precommit_ms: 200,
            precommit_delta_ms: 100,
            rebroadcast_ms: 600,
            heartbeat_ms: None,
        }
    }

    /// A hostile scenario drawn from `seed`.
    ///
    /// Half-open links, the heartbeat and work are drawn from a second
    /// generator so that the faults drawn by the first stay what they were
    /// for each seed.
    pub fn from_seed(seed: u64) -> SimConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5eed_5eed_5eed);
        let n = match rng.random_range(0..10u32) {
            0..=4 => 4,
            5..=7 => 7,
            _ => 10,
        };
        let weighted = rng.random_bool(0.3);
        let draw_powers = |rng: &mut ChaCha8Rng| -> Vec<u64> {
            if weighted {
                (0..n).map(|_| rng.random_range(1..=3u64)).collect()
            } else {
                vec![1; n]
            }
        };
        let powers = draw_powers(&mut rng);
        let power_change = if rng.random_bool(0.3) {
            let mut next = draw_powers(&mut rng);
            if rng.random_bool(0.5) {
                // One validator leaves the set and only observes from then on.
                next[rng.random_range(0..n)] = 0;
            }
            Some(SetChange {
                height: rng.random_range(2..6u64),
                powers: next,
                rotation: None,
            })
        } else {
            None
        };
        // Byzantine validators: fewer than a third of the power in every set.
        let f = (n - 1) / 3;
        let byzantine_target = rng.random_range(0..=f);
        let mut behaviours = vec![Behaviour::Honest; n];
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut order, &mut rng);
        let mut byzantine: Vec<usize> = Vec::new();
        for &node in &order {
            if byzantine.len() == byzantine_target {
                break;
            }
            let fits = |powers: &Vec<u64>| {
                let total: u64 = powers.iter().sum();
                let faulty: u64 = byzantine.iter().map(|&b| powers[b]).sum::<u64>() + powers[node];
                3 * faulty < total
            };
            if fits(&powers)
                && power_change
                    .as_ref()
                    .is_none_or(|change| fits(&change.powers))
            {
                byzantine.push(node);
            }
        }
        for &node in &byzantine {
            behaviours[node] = match rng.random_range(0..5u32) {
                0 => Behaviour::Silent,
                1 => Behaviour::EquivocatingProposer,
                2 => Behaviour::DoubleVoter,
                3 => Behaviour::Twin,
                _ => Behaviour::InvalidValueVoter,
            };
        }
        let gst_ms = rng.random_range(1_500..4_000u64);
        let mut partitions = Vec::new();
        let partition_count = rng.random_range(0..=3u32);
        for _ in 0..partition_count {
            let start_ms = rng.random_range(0..gst_ms);
            let end_ms = (start_ms + rng.random_range(200..2_000u64)).min(gst_ms);
            let groups: Vec<u8> = if rng.random_bool(0.5) {
                // Isolate one node.
                let alone = rng.random_range(0..n);
                (0..n).map(|node| u8::from(node == alone)).collect()
            } else {
                (0..n).map(|_| rng.random_range(0..2u8)).collect()
            };
            partitions.push(PartitionScript {
                start_ms,
                end_ms,
                groups,
            });
        }
        let honest: Vec<usize> = (0..n)
            .filter(|&node| behaviours[node] == Behaviour::Honest)
            .collect();
        let mut crashes = Vec::new();
        let crash_count = rng.random_range(0..=2u32);
        for _ in 0..crash_count {
            let node = honest[rng.random_range(0..honest.len())];
            let at_ms = rng.random_range(0..gst_ms);
            let restart_ms = (at_ms + rng.random_range(50..1_500u64)).min(gst_ms);
            crashes.push(CrashScript {
                node,
                at_ms,
                restart_ms,
            });
        }
        let mut extra = ChaCha8Rng::seed_from_u64(seed ^ 0x1d1e_1d1e_1d1e_1d1e);
        let mut half_open = Vec::new();
        for _ in 0..extra.random_range(0..=2u32) {
            let start_ms = extra.random_range(0..gst_ms);
            let direction = extra.random_range(0..3u32);
            half_open.push(HalfOpenScript {
                node: extra.random_range(0..n),
                start_ms,
                end_ms: (start_ms + extra.random_range(300..3_000u64)).min(gst_ms),
                inbound: direction != 1,
                outbound: direction != 0,
            });
        }
        let mut timeouts = SimConfig::sim_timeouts();
        let mut work = Vec::new();
        if extra.random_bool(0.5) {
            timeouts.heartbeat_ms = Some(extra.random_range(1_000..4_000u64));
            // Bursts of work with idle spells between them, before GST.
            let mut at_ms = extra.random_range(0..1_000u64);
            while at_ms < gst_ms {
                for _ in 0..extra.random_range(1..=3u32) {
                    work.push(WorkScript {
                        at_ms: at_ms + extra.random_range(0..100u64),
                        node: extra.random_range(0..n),
                        id: work.len() as u64,
                        gossip: extra.random_bool(0.8),
                        required: false,
                    });
                }
                at_ms += extra.random_range(500..3_000u64);
            }
            // After GST, work every honest node must commit: one
            // transaction gossiped to all, and, when no validator is
            // Byzantine, one that only a single honest validator ever holds
            // (its nil prevote wakes the others; it proposes it within a
            // rotation). With a Byzantine validator the second is not
            // required: one that equivocates towards the holder can keep it
            // a height behind, so it misses its turns as proposer (found at
            // seeds 119, 483 and 936), and Tendermint does not promise that
            // a value only one validator holds is ever decided. Gossip is
            // what brings a transaction to every proposer.
            // The holder is a validator to the end (an observer never
            // proposes).
            let final_powers = power_change
                .as_ref()
                .map_or(&powers, |change| &change.powers);
            let proposers: Vec<usize> = honest
                .iter()
                .copied()
                .filter(|&node| final_powers[node] > 0)
                .collect();
            work.push(WorkScript {
                at_ms: gst_ms + extra.random_range(0..2_000u64),
                node: proposers[extra.random_range(0..proposers.len())],
                id: work.len() as u64,
                gossip: true,
                required: true,
            });
            if byzantine.is_empty() {
                work.push(WorkScript {
                    at_ms: gst_ms + extra.random_range(0..2_000u64),
                    node: proposers[extra.random_range(0..proposers.len())],
                    id: work.len() as u64,
                    gossip: false,
                    required: true,
                });
            }
        }
        let (powers, power_change) =
            draw_joins_and_rotations(seed, powers, power_change, &behaviours);
        SimConfig {
            seed,
            n,
            behaviours,
            powers,
            power_change,
            link_delay_ms: (5, rng.random_range(20..80u64)),
            app_delay_ms: (0, 10),
            commit_pause_ms: rng.random_range(50..200u64),
            drop_probability: [0.0, 0.05, 0.2, 0.4][rng.random_range(0..4usize)],
            duplicate_probability: [0.0, 0.05, 0.2][rng.random_range(0..3usize)],
            crash_mid_actions_probability: if rng.random_bool(0.3) { 0.002 } else { 0.0 },
            partitions,
            half_open,
            crashes,
            work,
            gst_ms,
            heights_after_gst: 3,
            liveness_bound_ms: 60_000,
            timeouts,
            fault_injection: FaultInjection::default(),
            check_certificates: true,
            stop_at_height: None,
            trace: false,
        }
    }

    /// The kinds of validator-set change this scenario holds.
    pub fn change_kinds(&self) -> ChangeKinds {
        let Some(change) = &self.power_change else {
            return ChangeKinds::default();
        };
        let pairs = || self.powers.iter().zip(&change.powers);
        ChangeKinds {
            join: pairs().any(|(before, after)| *before == 0 && *after > 0),
            leave: pairs().any(|(before, after)| *before > 0 && *after == 0),
            rotation: change
                .rotation
                .is_some_and(|rotation| !rotation.old_key_lost),
            lost_key: change
                .rotation
                .is_some_and(|rotation| rotation.old_key_lost),
        }
    }

    /// A fault-free run with a fixed link delay, for the report.
    pub fn benign(n: usize, link_delay_ms: u64, heights: u64) -> SimConfig {
        SimConfig {
            seed: 0,
            n,
            behaviours: vec![Behaviour::Honest; n],
            powers: vec![1; n],
            power_change: None,
            link_delay_ms: (link_delay_ms, link_delay_ms),
            app_delay_ms: (0, 0),
            commit_pause_ms: 0,
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            crash_mid_actions_probability: 0.0,
            partitions: Vec::new(),
            half_open: Vec::new(),
            crashes: Vec::new(),
            work: Vec::new(),
            gst_ms: 0,
            heights_after_gst: heights,
            liveness_bound_ms: 3_600_000,
            timeouts: TimeoutConfig {
                // Long enough that no timeout fires in a healthy round even
                // at n = 100, so the figures measure the protocol alone.
                propose_ms: 60_000,
                propose_delta_ms: 1_000,
                prevote_ms: 60_000,
                prevote_delta_ms: 1_000,
                precommit_ms: 60_000,
                precommit_delta_ms: 1_000,
                rebroadcast_ms: 60_000,
                heartbeat_ms: None,
            },
            fault_injection: FaultInjection::default(),
            check_certificates: true,
            stop_at_height: Some(heights),
            trace: false,
        }
    }
}

/// Adds a join and a key rotation to a drawn scenario, from a generator of
/// their own so that every other draw of the seed stays what it was. Only
/// honest validators join or rotate, and only where the Byzantine
/// validators (and a lost key, which signs nothing until the change) keep
/// less than a third of the power of every set. A seed without a power
/// change gets one (same powers) when it draws either.
fn draw_joins_and_rotations(
    seed: u64,
    mut powers: Vec<u64>,
    mut power_change: Option<SetChange>,
    behaviours: &[Behaviour],
) -> (Vec<u64>, Option<SetChange>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0c4a_0c4a_0c4a_0c4a);
    let n = powers.len();
    let wants_join = rng.random_bool(0.3);
    let wants_rotation = rng.random_bool(0.4);
    let wants_lost_key = rng.random_bool(0.5);
    let height = rng.random_range(2..6u64);
    let join_from = rng.random_range(0..n);
    let rotation_from = rng.random_range(0..n);
    if !wants_join && !wants_rotation {
        return (powers, power_change);
    }
    let mut change = power_change.take().unwrap_or(SetChange {
        height,
        powers: powers.clone(),
        rotation: None,
    });
    // Power of the Byzantine validators plus `silent` (a validator that
    // signs nothing at that height): strictly less than a third?
    let safe = |powers: &[u64], silent: Option<usize>| {
        let total: u64 = powers.iter().sum();
        let faulty: u64 = (0..n)
            .filter(|&node| behaviours[node] != Behaviour::Honest || Some(node) == silent)
            .map(|node| powers[node])
            .sum();
        total > 0 && 3 * faulty < total
    };
    let honest_validator = |node: usize, powers: &[u64], change: &SetChange| {
        behaviours[node] == Behaviour::Honest && powers[node] > 0 && change.powers[node] > 0
    };
    if wants_join {
        let joiner = (0..n).map(|offset| (join_from + offset) % n).find(|&node| {
            let mut before = powers.clone();
            before[node] = 0;
            honest_validator(node, &powers, &change) && safe(&before, None)
        });
        if let Some(node) = joiner {
            powers[node] = 0;
        }
    }
    if wants_rotation {
        let rotated = (0..n)
            .map(|offset| (rotation_from + offset) % n)
            .find(|&node| honest_validator(node, &powers, &change));
        if let Some(node) = rotated {
            change.rotation = Some(KeyRotation {
                node,
                old_key_lost: wants_lost_key && safe(&powers, Some(node)),
            });
        }
    }
    debug_assert!(safe(&powers, None) && safe(&change.powers, None));
    (powers, Some(change))
}

fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for index in (1..items.len()).rev() {
        let other = rng.random_range(0..=index);
        items.swap(index, other);
    }
}

/// A broken property, with enough context to understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    Agreement {
        height: u64,
        node: usize,
        first: String,
        second: String,
    },
    Validity {
        height: u64,
        node: usize,
        reason: String,
    },
    Certificate {
        height: u64,
        node: usize,
        reason: String,
    },
    HonestEquivocation {
        node: usize,
        height: u64,
        round: u64,
        kind: &'static str,
    },
    EvidenceAgainstHonest {
        node: usize,
    },
    /// An honest node signed with a key the set in force at the message's
    /// height does not name.
    KeyOutsideSet {
        node: usize,
        height: u64,
    },
    /// A height committed although no validator had work and no heartbeat
    /// fired: the wait for work was cut short.
    IdleBlock {
        height: u64,
        node: usize,
    },
    /// The same work committed at two heights.
    WorkTwice {
        id: u64,
        node: usize,
    },
    Liveness {
        reason: String,
    },
    /// The application failed locally (the node would stop).
    LocalFailure {
        node: usize,
        message: String,
    },
    /// The state machine or the simulator panicked.
    Panic {
        message: String,
    },
}

impl Violation {
    pub fn is_safety(&self) -> bool {
        !matches!(self, Violation::Liveness { .. })
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Agreement {
                height,
                node,
                first,
                second,
            } => write!(f, "agreement: node {node} committed {second} at height {height}, another honest node committed {first}"),
            Violation::Validity { height, node, reason } => {
                write!(f, "validity: node {node} at height {height}: {reason}")
            }
            Violation::Certificate { height, node, reason } => {
                write!(f, "certificate: node {node} at height {height}: {reason}")
            }
            Violation::HonestEquivocation {
                node,
                height,
                round,
                kind,
            } => write!(f, "honest node {node} signed two different {kind}s at height {height} round {round}"),
            Violation::EvidenceAgainstHonest { node } => write!(f, "evidence names honest node {node}"),
            Violation::KeyOutsideSet { node, height } => write!(f, "honest node {node} signed at height {height} with a key the set in force there does not name"),
            Violation::IdleBlock { height, node } => write!(f, "node {node} committed height {height}, which no work and no heartbeat started"),
            Violation::WorkTwice { id, node } => write!(f, "node {node} committed work {id} twice"),
            Violation::Liveness { reason } => write!(f, "liveness: {reason}"),
            Violation::LocalFailure { node, message } => {
                write!(f, "node {node}'s application failed: {message}")
            }
            Violation::Panic { message } => write!(f, "panic: {message}"),
        }
    }
}

/// Counters of one run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub events: u64,
    /// Broadcast actions carried out (by anyone).
    pub broadcasts: u64,
    /// Point-to-point copies put on the network (votes, proposals and sync).
    pub messages_sent: u64,
    pub messages_delivered: u64,
    /// Encoded bytes of the consensus messages put on the network.
    pub message_bytes_sent: u64,
    /// Highest height committed by every honest node.
    pub min_honest_height: u64,
    pub max_honest_height: u64,
    pub sim_time_ms: u64,
    /// Simulated ms from GST until every honest node reached the liveness
    /// target (the largest over seeds when aggregated).
    pub recovery_ms: u64,
    pub evidence: u64,
    pub crashes: u64,
    pub syncs: u64,
    /// Block sync answers received.
    pub sync_responses: u64,
    /// Proposals asked of peers, and answers received.
    pub proposal_fetches: u64,
    pub proposals_fetched: u64,
    /// Per honest node and height: simulated ms from starting the height to
    /// committing it through consensus (synced heights excluded).
    pub commit_latencies_ms: Vec<u64>,
    /// Per height: when the first honest node committed it, and whether
    /// the block carried work.
    pub first_commits: BTreeMap<u64, (u64, bool)>,
    /// Heights whose round 0 a heartbeat started.
    pub heartbeats: u64,
    /// Runs (seeds, when aggregated) whose validator-set change took
    /// effect: every honest node committed the change height, and the node
    /// that joined or whose key was rotated signed from that height on.
    pub joins: u64,
    pub leaves: u64,
    pub rotations: u64,
    pub lost_keys: u64,
}

impl Stats {
    /// Adds one run's counters to an aggregate of seeds.
    fn add_run(&mut self, run: &Stats) {
        self.events += run.events;
        self.messages_sent += run.messages_sent;
        self.crashes += run.crashes;
        self.syncs += run.syncs;
        self.proposal_fetches += run.proposal_fetches;
        self.proposals_fetched += run.proposals_fetched;
        self.evidence += run.evidence;
        self.max_honest_height += run.max_honest_height;
        self.recovery_ms = self.recovery_ms.max(run.recovery_ms);
        self.joins += run.joins;
        self.leaves += run.leaves;
        self.rotations += run.rotations;
        self.lost_keys += run.lost_keys;
    }
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub violations: Vec<Violation>,
    pub stats: Stats,
}

impl Outcome {
    pub fn first_safety_violation(&self) -> Option<&Violation> {
        self.violations
            .iter()
            .find(|violation| violation.is_safety())
    }
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        message: SignedMessage,
    },
    /// The node core asked to be woken at this time.
    Wake {
        node: usize,
        incarnation: u64,
        at_ms: u64,
    },
    Crash {
        node: usize,
        restart_ms: u64,
    },
    Restart {
        node: usize,
    },
    PartitionStart {
        groups: Vec<u8>,
    },
    PartitionEnd,
    HalfOpenStart {
        script: usize,
    },
    HalfOpenEnd {
        script: usize,
    },
    WorkArrives {
        node: usize,
        id: u64,
        gossip: bool,
        required: bool,
    },
    WorkGossip {
        to: usize,
        id: u64,
    },
    SyncRequest {
        to: usize,
        from: usize,
        from_height: Height,
    },
    SyncResponse {
        to: usize,
        blocks: Vec<SyncedBlock>,
    },
    ProposalRequest {
        to: usize,
        from: usize,
        key: ProposalKey,
    },
    ProposalAnswer {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    Gst,
}

struct Node<A: SimApplication> {
    /// The keys the node holds (its state machine's key ring).
    keys: Vec<SigningKey>,
    /// Every key that names this node in some set (a lost key included).
    identities: Vec<ValidatorKey>,
    behaviour: Behaviour,
    /// Volatile: the node core (with its state machine); `None` while down.
    core: Option<NodeCore<A>>,
    /// The application: its committed blocks are durable, its mempool is
    /// not.
    app: A,
    incarnation: u64,
    /// Durable: the last `Persist`.
    persisted: Option<PersistedState>,
    /// The earliest wake-up scheduled for the current incarnation.
    wake_at_ms: Option<u64>,
    height_started_ms: BTreeMap<Height, u64>,
}

/// What the simulator needs of an application beyond what the core asks:
/// work to hand it, its committed blocks to check and to serve to peers,
/// and a crash. Two implement it: [`SimApp`] here, and the ledger's
/// in-memory state (in the node's tests).
pub trait SimApplication: Application {
    /// The last committed height.
    fn committed_height(&self) -> Height;
    /// The committed block at `height` as the core saw it, with its
    /// certificate.
    fn committed_block(&self, height: Height) -> Option<(Value, CommitCertificate)>;
    /// Committed blocks from `from` on, at most `count_max`, as block sync
    /// sends them.
    fn sync_blocks(&self, from: Height, count_max: usize) -> Vec<SyncedBlock>;
    /// Whether work `id` is in a committed block.
    fn has_committed(&self, id: u64) -> bool;
    /// Work `id` arrives (a client's transaction, or gossip): whether it
    /// was taken into the mempool.
    fn admit(&mut self, id: u64) -> bool;
    /// The work ids a block carries.
    fn work_in(&self, value: &Value) -> Vec<u64>;
    /// Whether `value` is a valid block at `height` by the application's
    /// rules (checked on every honest commit).
    fn is_valid(&self, height: Height, value: &Value) -> bool;
    /// The process died: what is not durable is lost.
    fn crash(&mut self);
}

/// The simulated application: blocks are [`make_value_with_work`] values,
/// valid by [`value_is_valid`]; committed blocks with their certificates
/// are its durable ledger, and a small set of work ids its mempool.
pub struct SimApp {
    node: usize,
    /// An `InvalidValueVoter` proposes invalid blocks.
    proposes_valid: bool,
    proposals_made: u64,
    check_certificates: bool,
    validator_sets: Vec<(Height, ValidatorSet)>,
    /// Volatile: work waiting for a block (lost in a crash, as a real
    /// mempool is).
    mempool: BTreeSet<u64>,
    /// Durable: the node's ledger.
    committed: BTreeMap<Height, (Value, CommitCertificate)>,
    /// Durable (follows `committed`): work in committed blocks.
    committed_work: BTreeSet<u64>,
}

/// The sim application never fails locally.
#[derive(Debug)]
pub enum Never {}

impl fmt::Display for Never {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Never {}

impl SimApplication for SimApp {
    fn committed_height(&self) -> Height {
        self.height()
    }

    fn committed_block(&self, height: Height) -> Option<(Value, CommitCertificate)> {
        self.committed.get(&height).cloned()
    }

    fn sync_blocks(&self, from: Height, count_max: usize) -> Vec<SyncedBlock> {
        self.committed
            .range(from..)
            .take(count_max)
            .map(|(_, (value, certificate))| SyncedBlock {
                block: value.bytes.clone(),
                certificate: postcard::to_allocvec(certificate).expect("a certificate encodes"),
            })
            .collect()
    }

    fn has_committed(&self, id: u64) -> bool {
        self.committed_work.contains(&id)
    }

    fn admit(&mut self, id: u64) -> bool {
        !self.committed_work.contains(&id) && self.mempool.insert(id)
    }

    fn work_in(&self, value: &Value) -> Vec<u64> {
        work_of(value)
    }

    fn is_valid(&self, height: Height, value: &Value) -> bool {
        value_is_valid(height, value)
    }

    fn crash(&mut self) {
        self.mempool.clear();
    }
}

impl SimApp {
    fn height(&self) -> Height {
        self.committed
            .last_key_value()
            .map_or(Height(0), |(height, _)| *height)
    }

    fn validators_at(&self, height: Height) -> &ValidatorSet {
        validators_at(&self.validator_sets, height)
    }

    fn store(&mut self, height: Height, value: Value, certificate: CommitCertificate) -> Stored {
        let work = work_of(&value);
        for id in &work {
            self.mempool.remove(id);
            self.committed_work.insert(*id);
        }
        self.committed.insert(height, (value, certificate));
        Stored::Now {
            height,
            transactions: work.len(),
        }
    }
}

impl Application for SimApp {
    type Checked = ();
    type Error = Never;

    fn head(&mut self) -> Result<Head, Never> {
        let height = self.height();
        Ok(Head {
            height,
            next_validators: self.validators_at(height.next()).clone(),
        })
    }

    fn has_work(&self) -> bool {
        !self.mempool.is_empty()
    }

    fn propose(&mut self, height: Height, _now_ms: u64) -> Result<Proposed<()>, Never> {
        if height != self.height().next() {
            return Ok(Proposed::Behind);
        }
        self.proposals_made += 1;
        let work: Vec<u64> = self
            .mempool
            .iter()
            .copied()
            .take(WORK_PER_BLOCK_MAX)
            .collect();
        let value = make_value_with_work(
            height,
            self.node,
            self.proposals_made,
            self.proposes_valid,
            &work,
        );
        Ok(Proposed::Value(value, ()))
    }

    fn judge(&mut self, height: Height, value: &Value, _now_ms: u64) -> Result<Verdict<()>, Never> {
        Ok(if value_is_valid(height, value) {
            Verdict::Valid(())
        } else {
            Verdict::Invalid("not a valid sim block".to_owned())
        })
    }

    fn commit(
        &mut self,
        height: Height,
        value: &Value,
        _checked: Option<()>,
        certificate: &CommitCertificate,
        _now_ms: u64,
    ) -> Result<Stored, Never> {
        if height <= self.height() {
            return Ok(Stored::Already);
        }
        Ok(self.store(height, value.clone(), certificate.clone()))
    }

    fn apply_synced(
        &mut self,
        block: &[u8],
        certificate: &[u8],
        _now_ms: u64,
    ) -> Result<Stored, Never> {
        let Ok(certificate) = postcard::from_bytes::<CommitCertificate>(certificate) else {
            return Ok(Stored::Refused("certificate does not decode".to_owned()));
        };
        let value = Value {
            bytes: block.to_vec(),
            hash: BlockHash(Sha256::digest(block).into()),
        };
        let height = certificate.height;
        if height <= self.height() {
            return Ok(Stored::Already);
        }
        if height != self.height().next() {
            return Ok(Stored::Refused(format!("block {height} is not the next")));
        }
        if certificate.block_hash != value.hash {
            return Ok(Stored::Refused(
                "certificate is for another block".to_owned(),
            ));
        }
        if self.check_certificates {
            if let Err(error) = certificate.verify(CHAIN_ID, self.validators_at(height)) {
                return Ok(Stored::Refused(error.to_string()));
            }
        }
        Ok(self.store(height, value, certificate))
    }
}

/// The validator set in force at `height` in `sets` (ascending by the
/// height each takes effect at).
fn validators_at(sets: &[(Height, ValidatorSet)], height: Height) -> &ValidatorSet {
    sets.iter()
        .rev()
        .find(|(from, _)| *from <= height)
        .map_or(&sets[0].1, |(_, set)| set)
}

/// The simulated world.
pub struct Simulation<A: SimApplication = SimApp> {
    config: SimConfig,
    rng: ChaCha8Rng,
    now_ms: u64,
    sequence: u64,
    queue: BTreeMap<(u64, u64), Event>,
    /// Machines: one per validator, then the second machine of each twin.
    nodes: Vec<Node<A>>,
    /// For each machine, the validator (index below n) it speaks for.
    primary: Vec<usize>,
    /// Validator sets and the height each takes effect at, ascending.
    validator_sets: Vec<(Height, ValidatorSet)>,
    groups: Vec<u8>,
    /// Half-open scripts in force (indices into `config.half_open`).
    half_open_active: BTreeSet<usize>,
    /// Heights at which some machine ended its wait for work because of
    /// work or its heartbeat (not because another validator woke it).
    woken_for_a_reason: BTreeSet<Height>,
    /// Work marked `required` that has arrived: every honest node must
    /// commit it.
    work_required: BTreeSet<u64>,
    after_gst: bool,
    liveness_target: Option<u64>,
    /// Agreement reference: the first honest commit per height.
    decided: BTreeMap<Height, BlockHash>,
    /// Every value handed to a state machine as a proposal.
    proposed: BTreeSet<BlockHash>,
    /// What each honest validator signed per (height, round, kind).
    honest_signed: BTreeMap<(usize, u64, u64, u8), Message>,
    /// Honest nodes that signed something from the validator-set change on.
    signed_since_change: BTreeSet<usize>,
    violations: Vec<Violation>,
    stats: Stats,
}

/// The sim application's block: `"blk" || height || proposer || counter ||
/// valid flag`, hashed with SHA-256. A block with flag 0 is invalid.
pub fn make_value(height: Height, proposer: usize, counter: u64, valid: bool) -> Value {
    make_value_with_work(height, proposer, counter, valid, &[])
}

/// Bytes of a block before its work ids.
const VALUE_HEADER_BYTES: usize = 3 + 8 + 4 + 8 + 1;

/// [`make_value`] carrying `work` ids (8 bytes each) after the flag.
pub fn make_value_with_work(
    height: Height,
    proposer: usize,
    counter: u64,
    valid: bool,
    work: &[u64],
) -> Value {
    let mut bytes = b"blk".to_vec();
    bytes.extend_from_slice(&height.0.to_le_bytes());
    bytes.extend_from_slice(&(proposer as u32).to_le_bytes());
    bytes.extend_from_slice(&counter.to_le_bytes());
    bytes.push(u8::from(valid));
    for id in work {
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    let hash = BlockHash(Sha256::digest(&bytes).into());
    Value { bytes, hash }
}

/// The work ids a block carries.
pub fn work_of(value: &Value) -> Vec<u64> {
    value
        .bytes
        .get(VALUE_HEADER_BYTES..)
        .unwrap_or_default()
        .chunks_exact(8)
        .filter_map(|chunk| chunk.try_into().ok().map(u64::from_le_bytes))
        .collect()
}

/// The sim application's validity rule (what the node's ledger check does
/// for real blocks): hash matches the bytes, the block is for this height
/// and carries the valid flag.
pub fn value_is_valid(height: Height, value: &Value) -> bool {
    let hash: [u8; 32] = Sha256::digest(&value.bytes).into();
    hash == value.hash.0
        && value.bytes.len() >= VALUE_HEADER_BYTES
        && (value.bytes.len() - VALUE_HEADER_BYTES) % 8 == 0
        && value.bytes.len() <= VALUE_HEADER_BYTES + 8 * WORK_PER_BLOCK_MAX
        && value.bytes[..3] == *b"blk"
        && value.bytes[3..11] == height.0.to_le_bytes()
        && value.bytes[VALUE_HEADER_BYTES - 1] == 1
}

fn short(hash: &BlockHash) -> String {
    hash.0[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub fn signing_key(node: usize) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(node as u64 + 1).to_le_bytes());
    secret[8..16].copy_from_slice(b"sim-key!");
    SigningKey::from_bytes(&secret)
}

/// The key that replaces `node`'s key at a [`KeyRotation`].
pub fn rotated_signing_key(node: usize) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(node as u64 + 1).to_le_bytes());
    secret[8..16].copy_from_slice(b"sim-new!");
    SigningKey::from_bytes(&secret)
}

impl Simulation<SimApp> {
    /// A run of the simulated application.
    pub fn new(config: SimConfig) -> Simulation<SimApp> {
        let keys: Vec<SigningKey> = (0..config.n).map(signing_key).collect();
        let validator_sets = validator_sets_of(&config, &keys);
        let apps_config = config.clone();
        Simulation::with_apps(config, keys, |index| SimApp {
            node: index,
            proposes_valid: apps_config.behaviours[index] != Behaviour::InvalidValueVoter,
            proposals_made: 0,
            check_certificates: apps_config.check_certificates,
            validator_sets: validator_sets.clone(),
            mempool: BTreeSet::new(),
            committed: BTreeMap::new(),
            committed_work: BTreeSet::new(),
        })
    }
}

fn set_of_keys(keys: &[SigningKey], powers: &[u64]) -> ValidatorSet {
    ValidatorSet::new(
        keys.iter()
            .zip(powers)
            .filter(|(_, power)| **power > 0)
            .map(|(key, power)| Validator {
                key: ValidatorKey::from(&key.verifying_key()),
                power: *power,
            })
            .collect(),
    )
    .expect("simulated validator set is valid")
}

/// The keys node `index` holds: its own, and with a key rotation of its
/// own the new one too (only the new one when the old one was lost).
fn held_keys(config: &SimConfig, index: usize, key: SigningKey) -> Vec<SigningKey> {
    let rotation = config
        .power_change
        .as_ref()
        .and_then(|change| change.rotation)
        .filter(|rotation| rotation.node == index);
    match rotation {
        None => vec![key],
        Some(rotation) if rotation.old_key_lost => vec![rotated_signing_key(index)],
        Some(_) => vec![key, rotated_signing_key(index)],
    }
}

/// The validator sets of a scenario, from its powers.
pub fn validator_sets_of(config: &SimConfig, keys: &[SigningKey]) -> Vec<(Height, ValidatorSet)> {
    let mut validator_sets = vec![(Height(1), set_of_keys(keys, &config.powers))];
    if let Some(change) = &config.power_change {
        let mut keys = keys.to_vec();
        if let Some(rotation) = change.rotation {
            keys[rotation.node] = rotated_signing_key(rotation.node);
        }
        validator_sets.push((Height(change.height), set_of_keys(&keys, &change.powers)));
    }
    validator_sets
}

impl<A: SimApplication> Simulation<A> {
    /// A run in which validator `index` signs with `keys[index]` (and
    /// [`rotated_signing_key`] after a rotation of its key) and runs the
    /// application `make_app(index)` (called again for a twin).
    pub fn with_apps(
        config: SimConfig,
        keys: Vec<SigningKey>,
        mut make_app: impl FnMut(usize) -> A,
    ) -> Simulation<A> {
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let validator_sets = validator_sets_of(&config, &keys);
        let mut new_node = |index: usize, key: SigningKey| Node {
            identities: vec![
                ValidatorKey::from(&key.verifying_key()),
                ValidatorKey::from(&rotated_signing_key(index).verifying_key()),
            ],
            keys: held_keys(&config, index, key),
            behaviour: config.behaviours[index],
            core: None,
            app: make_app(index),
            incarnation: 0,
            persisted: None,
            wake_at_ms: None,
            height_started_ms: BTreeMap::new(),
        };
        let twins: Vec<(usize, SigningKey)> = keys
            .iter()
            .enumerate()
            .filter(|(index, _)| config.behaviours[*index] == Behaviour::Twin)
            .map(|(index, key)| (index, key.clone()))
            .collect();
        let mut nodes: Vec<Node<A>> = keys
            .into_iter()
            .enumerate()
            .map(|(index, key)| new_node(index, key))
            .collect();
        let mut primary: Vec<usize> = (0..config.n).collect();
        for (index, key) in twins {
            nodes.push(new_node(index, key));
            primary.push(index);
        }
        let n = config.n;
        Simulation {
            config,
            rng,
            now_ms: 0,
            sequence: 0,
            queue: BTreeMap::new(),
            nodes,
            primary,
            validator_sets,
            groups: vec![0; n],
            half_open_active: BTreeSet::new(),
            woken_for_a_reason: BTreeSet::new(),
            work_required: BTreeSet::new(),
            after_gst: false,
            liveness_target: None,
            decided: BTreeMap::new(),
            proposed: BTreeSet::new(),
            honest_signed: BTreeMap::new(),
            signed_since_change: BTreeSet::new(),
            violations: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The validator set in force at `height`.
    fn validators_at(&self, height: Height) -> &ValidatorSet {
        validators_at(&self.validator_sets, height)
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.sequence += 1;
        self.queue
            .insert((self.now_ms + delay_ms, self.sequence), event);
    }

    fn is_honest(&self, node: usize) -> bool {
        self.nodes[node].behaviour == Behaviour::Honest
    }

    fn node_config(&self, node: usize) -> Config {
        let mut config = Config::with_signing_keys(CHAIN_ID, self.nodes[node].keys.clone());
        config.timeouts = self.config.timeouts;
        config.fault_injection = self.config.fault_injection;
        config
    }

    /// Runs the whole scenario and returns what it found.
    pub fn run(mut self) -> Outcome {
        for node in 0..self.nodes.len() {
            self.boot(node);
        }
        for partition in self.config.partitions.clone() {
            self.schedule(
                partition.start_ms,
                Event::PartitionStart {
                    groups: partition.groups,
                },
            );
            self.schedule(partition.end_ms, Event::PartitionEnd);
        }
        for (script, half_open) in self.config.half_open.clone().into_iter().enumerate() {
            self.schedule(half_open.start_ms, Event::HalfOpenStart { script });
            self.schedule(half_open.end_ms, Event::HalfOpenEnd { script });
        }
        for work in self.config.work.clone() {
            self.schedule(
                work.at_ms,
                Event::WorkArrives {
                    node: work.node,
                    id: work.id,
                    gossip: work.gossip,
                    required: work.required,
                },
            );
        }
        for crash in self.config.crashes.clone() {
            self.schedule(
                crash.at_ms,
                Event::Crash {
                    node: crash.node,
                    restart_ms: crash.restart_ms,
                },
            );
        }
        if self.config.stop_at_height.is_none() {
            self.schedule(self.config.gst_ms, Event::Gst);
        }
        while let Some(((time_ms, _), event)) = self.queue.pop_first() {
            self.now_ms = time_ms;
            self.stats.events += 1;
            self.step(event);
            if self.finished() {
                break;
            }
            if self.stats.events >= EVENTS_PER_RUN_MAX {
                self.violations.push(Violation::Liveness {
                    reason: format!(
                        "event budget of {EVENTS_PER_RUN_MAX} exhausted at {} ms",
                        self.now_ms
                    ),
                });
                break;
            }
            if let Some(target) = self.liveness_target {
                if self.now_ms > self.config.gst_ms + self.config.liveness_bound_ms {
                    let heights: Vec<u64> = (0..self.config.n)
                        .filter(|&node| self.is_honest(node))
                        .map(|node| self.committed_height(node))
                        .collect();
                    let missing_work: Vec<(usize, Vec<u64>)> = (0..self.config.n)
                        .filter(|&node| self.is_honest(node))
                        .map(|node| {
                            let missing = self
                                .work_required
                                .iter()
                                .copied()
                                .filter(|id| !self.nodes[node].app.has_committed(*id))
                                .collect();
                            (node, missing)
                        })
                        .filter(|(_, missing): &(usize, Vec<u64>)| !missing.is_empty())
                        .collect();
                    self.violations.push(Violation::Liveness {
                        reason: format!(
                            "{} ms after GST honest nodes are at heights {heights:?}, target {target}; work not committed (node, ids): {missing_work:?}",
                            self.config.liveness_bound_ms
                        ),
                    });
                    break;
                }
            }
        }
        if self.queue.is_empty() && !self.finished() {
            self.violations.push(Violation::Liveness {
                reason: "no events left before the goal was reached".to_owned(),
            });
        }
        let honest_heights: Vec<u64> = (0..self.config.n)
            .filter(|&node| self.is_honest(node))
            .map(|node| self.committed_height(node))
            .collect();
        self.stats.min_honest_height = honest_heights.iter().copied().min().unwrap_or(0);
        self.stats.max_honest_height = honest_heights.iter().copied().max().unwrap_or(0);
        self.stats.sim_time_ms = self.now_ms;
        if self.liveness_target.is_some() && self.violations.is_empty() {
            self.stats.recovery_ms = self.now_ms.saturating_sub(self.config.gst_ms);
        }
        self.count_changes();
        Outcome {
            violations: self.violations,
            stats: self.stats,
        }
    }

    /// Counts the validator-set change as exercised when every honest node
    /// committed its height and the node it concerns signed under it.
    fn count_changes(&mut self) {
        let Some(change) = &self.config.power_change else {
            return;
        };
        if self.stats.min_honest_height < change.height {
            return;
        }
        let kinds = self.config.change_kinds();
        let joined = (0..self.config.n).any(|node| {
            self.config.powers[node] == 0
                && change.powers[node] > 0
                && self.signed_since_change.contains(&node)
        });
        let rotated = change
            .rotation
            .is_some_and(|rotation| self.signed_since_change.contains(&rotation.node));
        self.stats.joins = u64::from(kinds.join && joined);
        self.stats.leaves = u64::from(kinds.leave);
        self.stats.rotations = u64::from(kinds.rotation && rotated);
        self.stats.lost_keys = u64::from(kinds.lost_key && rotated);
    }

    fn finished(&self) -> bool {
        let honest = (0..self.config.n).filter(|&node| self.is_honest(node));
        if let Some(stop) = self.config.stop_at_height {
            let mut honest = honest;
            return honest.all(|node| self.committed_height(node) >= stop);
        }
        if !self.violations.is_empty() {
            return true;
        }
        match self.liveness_target {
            Some(target) => {
                let mut honest = honest;
                honest.all(|node| {
                    self.committed_height(node) >= target
                        && self
                            .work_required
                            .iter()
                            .all(|id| self.nodes[node].app.has_committed(*id))
                }) && self
                    .config
                    .work
                    .iter()
                    .all(|work| work.at_ms <= self.now_ms)
            }
            None => false,
        }
    }

    fn committed_height(&self, node: usize) -> u64 {
        self.nodes[node].app.committed_height().0
    }

    fn core_config(&self) -> CoreConfig {
        CoreConfig {
            block_interval_ms: self.config.commit_pause_ms,
            ..CoreConfig::default()
        }
    }

    /// Starts (or restarts) a node from what is durable: its committed
    /// blocks and its last persisted state.
    fn boot(&mut self, node: usize) {
        let height = Height(self.committed_height(node) + 1);
        let persisted = self.nodes[node].persisted.clone();
        let config = self.node_config(node);
        let (machine, actions) = Consensus::new(
            config,
            self.validators_at(height).clone(),
            height,
            persisted,
        )
        .expect("simulated node boots");
        let core_config = self.core_config();
        let now_ms = self.now_ms;
        let (core, effects) = match NodeCore::start(
            machine,
            actions,
            core_config,
            &mut self.nodes[node].app,
            now_ms,
        ) {
            Ok(started) => started,
            Err(error) => {
                self.violations.push(Violation::LocalFailure {
                    node,
                    message: error.to_string(),
                });
                return;
            }
        };
        self.nodes[node].core = Some(core);
        self.nodes[node].wake_at_ms = None;
        self.nodes[node]
            .height_started_ms
            .insert(height, self.now_ms);
        self.carry_out(node, effects);
    }

    fn trace(&self, event: &Event) {
        let describe = |message: &SignedMessage| match &message.message {
            Message::Proposal(p) => format!(
                "proposal h{} r{} {} vr{:?}",
                p.height,
                p.round,
                short(&p.value.hash),
                p.valid_round.map(|r| r.0)
            ),
            Message::Prevote(v) => format!(
                "prevote h{} r{} {:?}",
                v.height,
                v.round,
                v.block_hash.map(|h| short(&h))
            ),
            Message::Precommit(v) => format!(
                "precommit h{} r{} {:?}",
                v.height,
                v.round,
                v.block_hash.map(|h| short(&h))
            ),
        };
        let state = |node: usize| {
            self.nodes[node]
                .core
                .as_ref()
                .map_or("down".to_owned(), |core| {
                    let m = core.machine();
                    format!("h{} r{} {:?}", m.height(), m.round(), m.step())
                })
        };
        let line = match event {
            Event::Deliver { to, from, message } => {
                format!("{from}->{to} {} [{}]", describe(message), state(*to))
            }
            Event::Wake { node, .. } => format!("wake {node} [{}]", state(*node)),
            other => format!("{other:?}").chars().take(160).collect(),
        };
        println!("{:>7} {line}", self.now_ms);
    }

    fn step(&mut self, event: Event) {
        if self.config.trace {
            self.trace(&event);
        }
        match event {
            Event::Deliver { to, message, .. } => {
                self.stats.messages_delivered += 1;
                self.feed(to, CoreEvent::Message(message.encode()));
            }
            Event::Wake {
                node,
                incarnation,
                at_ms,
            } => {
                if self.nodes[node].incarnation == incarnation
                    && self.nodes[node].wake_at_ms == Some(at_ms)
                {
                    self.nodes[node].wake_at_ms = None;
                    self.feed(node, CoreEvent::Tick);
                }
            }
            Event::Crash { node, restart_ms } => self.crash(node, restart_ms),
            Event::Restart { node } => {
                if self.nodes[node].core.is_none() {
                    self.boot(node);
                }
            }
            Event::PartitionStart { groups } => {
                if !self.after_gst {
                    self.groups = groups;
                }
            }
            Event::PartitionEnd => self.groups = vec![0; self.config.n],
            Event::HalfOpenStart { script } => {
                if !self.after_gst {
                    self.half_open_active.insert(script);
                }
            }
            Event::HalfOpenEnd { script } => {
                self.half_open_active.remove(&script);
            }
            Event::WorkArrives {
                node,
                id,
                gossip,
                required,
            } => {
                // Work sent to a node that is down is refused (a real client
                // gets an error and tries again): not required then.
                let admitted = self.admit_work(node, id);
                if required && admitted {
                    self.work_required.insert(id);
                }
                if admitted && gossip {
                    for to in 0..self.nodes.len() {
                        if to != node {
                            self.send(node, to, Event::WorkGossip { to, id });
                        }
                    }
                }
            }
            Event::WorkGossip { to, id } => {
                self.admit_work(to, id);
            }
            Event::SyncRequest {
                to,
                from,
                from_height,
            } => {
                if self.nodes[to].core.is_none() {
                    return;
                }
                let blocks = self.nodes[to]
                    .app
                    .sync_blocks(from_height, SYNC_BLOCKS_PER_RESPONSE_MAX);
                if !blocks.is_empty() {
                    self.send(to, from, Event::SyncResponse { to: from, blocks });
                }
            }
            Event::SyncResponse { to, blocks } => {
                self.stats.sync_responses += 1;
                self.feed(to, CoreEvent::Synced(blocks));
            }
            Event::ProposalRequest { to, from, key } => {
                let held = self.nodes[to]
                    .core
                    .as_ref()
                    .and_then(|core| core.held_proposal(&key));
                if let Some(bytes) = held {
                    self.send(
                        to,
                        from,
                        Event::ProposalAnswer {
                            to: from,
                            from: to,
                            bytes: bytes.to_vec(),
                        },
                    );
                }
            }
            Event::ProposalAnswer { to, bytes, .. } => {
                self.stats.proposals_fetched += 1;
                self.feed(to, CoreEvent::Message(bytes));
            }
            Event::Gst => {
                self.after_gst = true;
                self.groups = vec![0; self.config.n];
                self.half_open_active.clear();
                for node in 0..self.nodes.len() {
                    if self.nodes[node].core.is_none() {
                        self.boot(node);
                    }
                }
                let max_height = (0..self.config.n)
                    .filter(|&node| self.is_honest(node))
                    .map(|node| self.committed_height(node))
                    .max()
                    .unwrap_or(0);
                self.liveness_target = Some(max_height + self.config.heights_after_gst);
            }
        }
    }

    fn crash(&mut self, node: usize, restart_ms: u64) {
        if self.nodes[node].core.is_none() || self.after_gst {
            return;
        }
        self.stats.crashes += 1;
        // Everything not persisted or committed is lost; pending timers and
        // wake-ups die with the process.
        self.nodes[node].core = None;
        self.nodes[node].app.crash();
        self.nodes[node].incarnation += 1;
        self.nodes[node].wake_at_ms = None;
        let delay = restart_ms.saturating_sub(self.now_ms).max(1);
        self.schedule(delay, Event::Restart { node });
    }

    /// Hands one event to a running node's core and carries out what it
    /// returns.
    fn feed(&mut self, node: usize, event: CoreEvent) {
        let now_ms = self.now_ms;
        let Node { core, app, .. } = &mut self.nodes[node];
        let Some(core) = core.as_mut() else {
            return;
        };
        match core.handle(event, app, now_ms) {
            Ok(effects) => self.carry_out(node, effects),
            // The node would stop: a failure of the run.
            Err(error) => self.violations.push(Violation::LocalFailure {
                node,
                message: error.to_string(),
            }),
        }
    }

    /// A transaction reaches `node`'s mempool (unless the node is down or
    /// already committed it). Returns whether it was taken. The node's
    /// core hears of it at once, as the real node's does within its work
    /// check interval.
    fn admit_work(&mut self, node: usize, id: u64) -> bool {
        if self.nodes[node].core.is_none() || !self.nodes[node].app.admit(id) {
            return false;
        }
        self.feed(node, CoreEvent::Tick);
        true
    }

    /// Carries out a core's effects in order, possibly crashing part-way
    /// (before GST), then schedules the core's next wake-up.
    fn carry_out(&mut self, node: usize, effects: Vec<Effect>) {
        let crash_after = if !self.after_gst
            && self.is_honest(node)
            && self.config.crash_mid_actions_probability > 0.0
            && !effects.is_empty()
            && self
                .rng
                .random_bool(self.config.crash_mid_actions_probability)
        {
            Some(self.rng.random_range(0..effects.len()))
        } else {
            None
        };
        for (index, effect) in effects.into_iter().enumerate() {
            if crash_after == Some(index) {
                let restart_ms = self.now_ms + self.rng.random_range(50..500u64);
                self.crash(node, restart_ms);
                return;
            }
            match effect {
                Effect::Persist(state) => self.nodes[node].persisted = Some(state),
                Effect::Broadcast { message, .. } => {
                    if let Message::Proposal(proposal) = &message.message {
                        self.proposed.insert(proposal.value.hash);
                    }
                    self.broadcast(node, message);
                }
                Effect::FetchProposal(key) => {
                    self.stats.proposal_fetches += 1;
                    for to in 0..self.nodes.len() {
                        if self.primary[to] != self.primary[node] {
                            self.send(
                                node,
                                to,
                                Event::ProposalRequest {
                                    to,
                                    from: node,
                                    key,
                                },
                            );
                        }
                    }
                }
                Effect::SyncWanted { from, hint } => {
                    let peer = hint
                        .and_then(|key| self.node_of(&key))
                        .filter(|peer| self.primary[*peer] != self.primary[node])
                        .unwrap_or_else(|| {
                            let others: Vec<usize> = (0..self.config.n)
                                .filter(|peer| *peer != self.primary[node])
                                .collect();
                            others[self.rng.random_range(0..others.len())]
                        });
                    self.send(
                        node,
                        peer,
                        Event::SyncRequest {
                            to: peer,
                            from: node,
                            from_height: from,
                        },
                    );
                }
                Effect::Committed { height, origin, .. } => {
                    if origin == Origin::Decided && self.is_honest(node) {
                        if let Some(started) = self.nodes[node].height_started_ms.get(&height) {
                            self.stats.commit_latencies_ms.push(self.now_ms - started);
                        }
                    }
                    self.record_commit(node, height, origin == Origin::Decided);
                }
                Effect::WaitEnded { height, heartbeat } => {
                    self.woken_for_a_reason.insert(height);
                    if heartbeat {
                        self.stats.heartbeats += 1;
                    }
                }
                Effect::Evidence(equivocation) => {
                    self.stats.evidence += 1;
                    let culprit = equivocation.second.validator;
                    if let Some(index) = self.node_of(&culprit) {
                        if self.is_honest(index) {
                            self.violations
                                .push(Violation::EvidenceAgainstHonest { node: index });
                        }
                    }
                }
                Effect::SyncDone(_)
                | Effect::Heard { .. }
                | Effect::NotProposing(_)
                | Effect::Refused { .. } => {}
            }
        }
        self.note_height_start(node);
        self.schedule_wake(node);
    }

    /// Remembers when a node's machine reached a new height (for commit
    /// latencies).
    fn note_height_start(&mut self, node: usize) {
        let Some(height) = self.nodes[node]
            .core
            .as_ref()
            .map(|core| core.machine().height())
        else {
            return;
        };
        let now_ms = self.now_ms;
        self.nodes[node]
            .height_started_ms
            .entry(height)
            .or_insert(now_ms);
    }

    /// Schedules the core's next wake-up if it is earlier than the one
    /// already scheduled. A wake that is due now is the application
    /// answering: it comes after the application's delay.
    fn schedule_wake(&mut self, node: usize) {
        let now_ms = self.now_ms;
        let Some(wake) = self.nodes[node]
            .core
            .as_ref()
            .and_then(|core| core.next_wake_ms(&self.nodes[node].app, now_ms))
        else {
            return;
        };
        let at_ms = if wake <= now_ms {
            now_ms + self.app_delay()
        } else {
            wake
        };
        if self.nodes[node]
            .wake_at_ms
            .is_some_and(|scheduled| scheduled <= at_ms)
        {
            return;
        }
        self.nodes[node].wake_at_ms = Some(at_ms);
        let incarnation = self.nodes[node].incarnation;
        self.schedule(
            at_ms - now_ms,
            Event::Wake {
                node,
                incarnation,
                at_ms,
            },
        );
    }

    fn node_of(&self, key: &ValidatorKey) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| node.identities.contains(key))
    }

    fn app_delay(&mut self) -> u64 {
        let (low, high) = self.config.app_delay_ms;
        self.rng.random_range(low..=high)
    }

    /// Checks a commit the node's application just stored: agreement,
    /// validity, the certificate, no idle block, no work twice (honest
    /// nodes only; a Byzantine node's ledger is its own business).
    fn record_commit(&mut self, node: usize, height: Height, through_consensus: bool) {
        if !through_consensus {
            self.stats.syncs += 1;
        }
        if !self.is_honest(node) {
            return;
        }
        let Some((value, certificate)) = self.nodes[node].app.committed_block(height) else {
            self.violations.push(Violation::Validity {
                height: height.0,
                node,
                reason: "the core reported a commit the application does not hold".to_owned(),
            });
            return;
        };
        let work = self.nodes[node].app.work_in(&value);
        if self.config.timeouts.waits_for_work() && !self.woken_for_a_reason.contains(&height) {
            self.violations.push(Violation::IdleBlock {
                height: height.0,
                node,
            });
        }
        let app = &self.nodes[node].app;
        let earlier_work = (1..height.0)
            .filter_map(|earlier| app.committed_block(Height(earlier)))
            .flat_map(|(value, _)| app.work_in(&value))
            .find(|id| work.contains(id));
        if let Some(id) = earlier_work {
            self.violations.push(Violation::WorkTwice { id, node });
        }
        self.stats
            .first_commits
            .entry(height.0)
            .or_insert((self.now_ms, !work.is_empty()));
        match self.decided.get(&height) {
            Some(first) if *first != value.hash => {
                self.violations.push(Violation::Agreement {
                    height: height.0,
                    node,
                    first: short(first),
                    second: short(&value.hash),
                });
            }
            Some(_) => {}
            None => {
                self.decided.insert(height, value.hash);
            }
        }
        if !self.proposed.contains(&value.hash) {
            self.violations.push(Violation::Validity {
                height: height.0,
                node,
                reason: format!("value {} was never proposed", short(&value.hash)),
            });
        }
        if !self.nodes[node].app.is_valid(height, &value) {
            self.violations.push(Violation::Validity {
                height: height.0,
                node,
                reason: format!("value {} is not valid", short(&value.hash)),
            });
        }
        if self.config.check_certificates {
            let problem = if certificate.height != height || certificate.block_hash != value.hash {
                Some("certificate is for another height or block".to_owned())
            } else {
                certificate
                    .verify(CHAIN_ID, self.validators_at(height))
                    .err()
                    .map(|error| error.to_string())
            };
            if let Some(reason) = problem {
                self.violations.push(Violation::Certificate {
                    height: height.0,
                    node,
                    reason,
                });
            }
        }
    }

    fn broadcast(&mut self, node: usize, message: SignedMessage) {
        self.stats.broadcasts += 1;
        match self.nodes[node].behaviour {
            Behaviour::Honest => {
                self.check_honest_signature(node, &message);
                self.send_to_all(node, &message, |_| true);
            }
            Behaviour::Silent => {}
            Behaviour::EquivocatingProposer => match &message.message {
                Message::Proposal(proposal) => {
                    let counter = self.now_ms * 1000 + 999;
                    let other = make_value(proposal.height, node, counter, true);
                    self.proposed.insert(other.hash);
                    let twin = SignedMessage::sign(
                        CHAIN_ID,
                        Message::Proposal(Proposal {
                            value: other,
                            ..proposal.clone()
                        }),
                        self.tamper_key(node, &message),
                    );
                    self.send_split(node, &message, &twin);
                }
                _ => self.send_to_all(node, &message, |_| true),
            },
            Behaviour::DoubleVoter => match message.message.as_vote() {
                Some((_, vote)) => {
                    let other_hash = match vote.block_hash {
                        Some(_) => None,
                        None => Some(make_value(vote.height, node, vote.round.0, true).hash),
                    };
                    let twin = self.resign_vote(node, &message, other_hash);
                    self.send_split(node, &message, &twin);
                }
                None => self.send_to_all(node, &message, |_| true),
            },
            Behaviour::Twin => {
                let is_primary = node < self.config.n;
                self.send_to_all(node, &message, |peer| (peer % 2 == 0) == is_primary);
            }
            Behaviour::InvalidValueVoter => match message.message.as_vote() {
                Some((_, vote)) => {
                    let invalid = make_value(vote.height, node, vote.round.0, false);
                    let forged = self.resign_vote(node, &message, Some(invalid.hash));
                    self.send_to_all(node, &forged, |_| true);
                }
                None => self.send_to_all(node, &message, |_| true),
            },
        }
    }

    /// The held key that signed `message`: a Byzantine node tampers with
    /// what its machine sent under the same key.
    fn tamper_key(&self, node: usize, message: &SignedMessage) -> &SigningKey {
        let keys = &self.nodes[node].keys;
        keys.iter()
            .find(|key| ValidatorKey::from(&key.verifying_key()) == message.validator)
            .unwrap_or(&keys[0])
    }

    fn resign_vote(
        &self,
        node: usize,
        message: &SignedMessage,
        block_hash: Option<BlockHash>,
    ) -> SignedMessage {
        let key = self.tamper_key(node, message);
        let message = &message.message;
        let changed = match message {
            Message::Prevote(vote) => Message::Prevote(Vote {
                block_hash,
                ..*vote
            }),
            Message::Precommit(vote) => Message::Precommit(Vote {
                block_hash,
                ..*vote
            }),
            Message::Proposal(_) => message.clone(),
        };
        SignedMessage::sign(CHAIN_ID, changed, key)
    }

    fn send_split(&mut self, node: usize, first: &SignedMessage, second: &SignedMessage) {
        let half = self.config.n / 2;
        self.send_to_all(node, first, |peer| peer < half);
        self.send_to_all(node, second, |peer| peer >= half);
    }

    /// An honest validator must never sign two different messages for one
    /// (height, round, kind): that is what crash safety promises.
    fn check_honest_signature(&mut self, node: usize, message: &SignedMessage) {
        let own = self.nodes[node]
            .keys
            .iter()
            .any(|key| ValidatorKey::from(&key.verifying_key()) == message.validator);
        if !own {
            return; // forwarded proof-of-lock votes are other validators' messages
        }
        // A key signs only at heights whose set names it: a rotated-out key
        // stops exactly at the change, a new one starts exactly there.
        if self
            .validators_at(message.height())
            .power_of(&message.validator)
            .is_none()
        {
            self.violations.push(Violation::KeyOutsideSet {
                node,
                height: message.height().0,
            });
        }
        if self
            .config
            .power_change
            .as_ref()
            .is_some_and(|change| message.height().0 >= change.height)
        {
            self.signed_since_change.insert(node);
        }
        let (kind, name) = match &message.message {
            Message::Proposal(_) => (0u8, "proposal"),
            Message::Prevote(_) => (1, "prevote"),
            Message::Precommit(_) => (2, "precommit"),
        };
        let slot = (node, message.height().0, message.round().0, kind);
        match self.honest_signed.get(&slot) {
            Some(previous) if *previous != message.message => {
                self.violations.push(Violation::HonestEquivocation {
                    node,
                    height: slot.1,
                    round: slot.2,
                    kind: name,
                });
            }
            Some(_) => {}
            None => {
                self.honest_signed.insert(slot, message.message.clone());
            }
        }
    }

    fn send_to_all(
        &mut self,
        from: usize,
        message: &SignedMessage,
        include: impl Fn(usize) -> bool,
    ) {
        for to in 0..self.nodes.len() {
            if self.primary[to] != self.primary[from] && include(to) {
                self.send(
                    from,
                    to,
                    Event::Deliver {
                        to,
                        from,
                        message: message.clone(),
                    },
                );
            }
        }
    }

    /// Puts one point-to-point message on the simulated network: it may be
    /// cut by a partition, dropped, delayed (hence reordered) or duplicated.
    fn send(&mut self, from: usize, to: usize, event: Event) {
        self.stats.messages_sent += 1;
        if let Event::Deliver { message, .. } = &event {
            self.stats.message_bytes_sent += message.encoded_len() as u64;
        }
        if self.groups[self.primary[from]] != self.groups[self.primary[to]] {
            return;
        }
        let cut = self.half_open_active.iter().any(|&script| {
            let link = &self.config.half_open[script];
            (link.inbound && self.primary[to] == link.node)
                || (link.outbound && self.primary[from] == link.node)
        });
        if cut {
            return;
        }
        if !self.after_gst
            && self.config.drop_probability > 0.0
            && self.rng.random_bool(self.config.drop_probability)
        {
            return;
        }
        let (low, high) = self.config.link_delay_ms;
        let delay = self.rng.random_range(low..=high);
        if self.config.duplicate_probability > 0.0
            && self.rng.random_bool(self.config.duplicate_probability)
        {
            let extra = self.rng.random_range(low..=high.saturating_mul(2));
            let copy = match &event {
                Event::Deliver { to, from, message } => Some(Event::Deliver {
                    to: *to,
                    from: *from,
                    message: message.clone(),
                }),
                _ => None,
            };
            if let Some(copy) = copy {
                self.schedule(extra, copy);
            }
        }
        self.schedule(delay, event);
    }
}

/// Runs one scenario, turning a panic into a violation so that the seed
/// is still reported.
pub fn run_config(config: SimConfig) -> Outcome {
    run_guarded(|| Simulation::new(config).run())
}

/// Runs `run`, turning a panic into a violation.
pub fn run_guarded(run: impl FnOnce() -> Outcome) -> Outcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned());
            Outcome {
                violations: vec![Violation::Panic { message }],
                stats: Stats::default(),
            }
        }
    }
}

/// Runs one seed and returns what it found.
pub fn run_seed(seed: u64) -> Outcome {
    run_config(SimConfig::from_seed(seed))
}

/// The command that replays one seed.
pub fn replay_command(seed: u64) -> String {
    format!("CUSTODY_SIM_SEED={seed} cargo test -p custody-consensus --release --test simulator_seeds -- --nocapture")
}

/// Seeds to run: `CUSTODY_SIM_SEED=S` replays one, `CUSTODY_SIM_SEEDS=N`
/// runs N, otherwise `default_count`.
pub fn seeds_from_env(default_count: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("CUSTODY_SIM_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("CUSTODY_SIM_SEEDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default_count);
    (0..count).collect()
}

/// Runs `seeds` on `threads` threads with `configure` applied to each
/// seed's scenario; returns the failing seeds with their outcomes, sorted.
pub fn run_seeds(
    seeds: &[u64],
    threads: usize,
    configure: impl Fn(&mut SimConfig) + Sync,
) -> (Vec<(u64, Outcome)>, Stats) {
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|thread| {
            seeds
                .iter()
                .copied()
                .skip(thread)
                .step_by(threads)
                .collect()
        })
        .collect();
    let results: Vec<(Vec<(u64, Outcome)>, Stats)> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let configure = &configure;
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    let mut total = Stats::default();
                    for &seed in chunk {
                        let mut config = SimConfig::from_seed(seed);
                        configure(&mut config);
                        let outcome = run_config(config);
                        total.add_run(&outcome.stats);
                        if !outcome.violations.is_empty() {
                            failures.push((seed, outcome));
                        }
                    }
                    (failures, total)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("simulator thread panicked"))
            .collect()
    });
    let mut failures = Vec::new();
    let mut total = Stats::default();
    for (chunk_failures, stats) in results {
        failures.extend(chunk_failures);
        total.add_run(&stats);
    }
    failures.sort_by_key(|(seed, _)| *seed);
    (failures, total)
}
