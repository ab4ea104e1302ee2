//! One test per rule of the node core (`custody_consensus::core`), named
//! after the rule. The core runs validator 0 of four; the others are
//! played by hand, and the application is a stand-in that records what it
//! was asked.

use custody_consensus::core::{
    Application, CoreConfig, Effect, Event, Head, NodeCore, ProposalKey, Proposed, Stored,
    SyncedBlock, Verdict, PROPOSAL_FETCHES_MAX,
};
use custody_consensus::{
    BlockHash, CommitCertificate, Config, Consensus, Height, Message, Proposal, Round,
    SignedMessage, Validator, ValidatorKey, ValidatorSet, Value, Vote,
};
use ed25519_dalek::SigningKey;

const CHAIN: &str = "custody-core-test";

#[derive(Debug)]
struct Broken;

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the store cannot be read")
    }
}

impl std::error::Error for Broken {}

/// A stand-in application: blocks are any bytes, valid unless they start
/// with 0; it records the calls made.
struct TestApp {
    set: ValidatorSet,
    height: u64,
    work: bool,
    broken: bool,
    proposals: u64,
    judged: Vec<BlockHash>,
    /// For each commit: whether the core handed back what checking found.
    commits_with_checked: Vec<bool>,
}

impl TestApp {
    fn new(set: ValidatorSet) -> TestApp {
        TestApp {
            set,
            height: 0,
            work: true,
            broken: false,
            proposals: 0,
            judged: Vec::new(),
            commits_with_checked: Vec::new(),
        }
    }
}

impl Application for TestApp {
    type Checked = BlockHash;
    type Error = Broken;

    fn head(&mut self) -> Result<Head, Broken> {
        Ok(Head {
            height: Height(self.height),
            next_validators: self.set.clone(),
        })
    }

    fn has_work(&self) -> bool {
        self.work
    }

    fn propose(&mut self, height: Height, _now_ms: u64) -> Result<Proposed<BlockHash>, Broken> {
        self.proposals += 1;
        let value = value(height.0 as u8 + 100);
        Ok(Proposed::Value(value.clone(), value.hash))
    }

    fn judge(
        &mut self,
        _height: Height,
        value: &Value,
        _now_ms: u64,
    ) -> Result<Verdict<BlockHash>, Broken> {
        if self.broken {
            return Err(Broken);
        }
        self.judged.push(value.hash);
        Ok(if value.bytes.first() == Some(&0) {
            Verdict::Invalid("starts with 0".to_owned())
        } else {
            Verdict::Valid(value.hash)
        })
    }

    fn commit(
        &mut self,
        height: Height,
        _value: &Value,
        checked: Option<BlockHash>,
        _certificate: &CommitCertificate,
        _now_ms: u64,
    ) -> Result<Stored, Broken> {
        self.commits_with_checked.push(checked.is_some());
        self.height = height.0;
        Ok(Stored::Now {
            height,
            transactions: 0,
        })
    }

    fn apply_synced(
        &mut self,
        block: &[u8],
        _certificate: &[u8],
        _now_ms: u64,
    ) -> Result<Stored, Broken> {
        let height = u64::from(block.first().copied().unwrap_or(0));
        if height != self.height + 1 {
            return Ok(Stored::Refused(format!("block {height} is not the next")));
        }
        self.height = height;
        Ok(Stored::Now {
            height: Height(height),
            transactions: 0,
        })
    }
}

struct Fixture {
    keys: Vec<SigningKey>,
    set: ValidatorSet,
}

fn value(tag: u8) -> Value {
    Value {
        bytes: vec![tag; 16],
        hash: BlockHash([tag; 32]),
    }
}

impl Fixture {
    fn new() -> Fixture {
        let keys: Vec<SigningKey> = (0..4)
            .map(|index| SigningKey::from_bytes(&[index as u8 + 7; 32]))
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|key| Validator {
                    key: ValidatorKey::from(&key.verifying_key()),
                    power: 1,
                })
                .collect(),
        )
        .expect("four validators");
        Fixture { keys, set }
    }

    fn key(&self, index: usize) -> ValidatorKey {
        ValidatorKey::from(&self.keys[index].verifying_key())
    }

    fn index_of(&self, key: ValidatorKey) -> usize {
        (0..4)
            .find(|index| self.key(*index) == key)
            .expect("a validator")
    }

    fn proposer(&self, height: u64, round: u64) -> usize {
        self.index_of(self.set.proposer(Height(height), Round(round)).key)
    }

    /// The core of validator `me` at height 1, started at time 0.
    fn core(&self, me: usize, config: CoreConfig) -> (NodeCore<TestApp>, TestApp, Vec<Effect>) {
        let mut app = TestApp::new(self.set.clone());
        let (machine, actions) = Consensus::new(
            Config::new(CHAIN, Some(self.keys[me].clone())),
            self.set.clone(),
            Height(1),
            None,
        )
        .expect("machine starts");
        let (core, effects) =
            NodeCore::start(machine, actions, config, &mut app, 0).expect("core starts");
        (core, app, effects)
    }

    fn sign(&self, index: usize, message: Message) -> Vec<u8> {
        SignedMessage::sign(CHAIN, message, &self.keys[index]).encode()
    }

    fn proposal(&self, height: u64, round: u64, value: &Value) -> Vec<u8> {
        self.sign(
            self.proposer(height, round),
            Message::Proposal(Proposal {
                height: Height(height),
                round: Round(round),
                valid_round: None,
                value: value.clone(),
            }),
        )
    }

    fn vote(&self, index: usize, height: u64, round: u64, value: &Value, pre: bool) -> Vec<u8> {
        let vote = Vote {
            height: Height(height),
            round: Round(round),
            block_hash: Some(value.hash),
        };
        self.sign(
            index,
            if pre {
                Message::Prevote(vote)
            } else {
                Message::Precommit(vote)
            },
        )
    }
}

/// A validator that proposes none of the first rounds of height 1.
fn non_proposer(fixture: &Fixture) -> usize {
    (0..4)
        .find(|index| *index != fixture.proposer(1, 0) && *index != fixture.proposer(1, 1))
        .expect("a bystander")
}

fn fetches(effects: &[Effect]) -> Vec<ProposalKey> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::FetchProposal(key) => Some(*key),
            _ => None,
        })
        .collect()
}

fn sync_wanted(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|effect| matches!(effect, Effect::SyncWanted { .. }))
        .count()
}

fn tick(core: &mut NodeCore<TestApp>, app: &mut TestApp, now_ms: u64) -> Vec<Effect> {
    core.handle(Event::Tick, app, now_ms).expect("tick")
}

/// Hands the core one encoded message at `now_ms`.
fn deliver(
    core: &mut NodeCore<TestApp>,
    app: &mut TestApp,
    message: Vec<u8>,
    now_ms: u64,
) -> Vec<Effect> {
    core.handle(Event::Message(message), app, now_ms)
        .expect("message")
}

#[test]
fn a_round_zero_proposal_waits_for_the_block_interval_after_the_last_commit() {
    let fixture = Fixture::new();
    let me = fixture.proposer(1, 0);
    let config = CoreConfig {
        block_interval_ms: 500,
        ..CoreConfig::default()
    };
    let (mut core, mut app, _) = fixture.core(me, config);
    tick(&mut core, &mut app, 100);
    assert_eq!(app.proposals, 0, "no proposal before the interval");
    assert_eq!(core.next_wake_ms(&app, 100), Some(500));
    let effects = tick(&mut core, &mut app, 500);
    assert_eq!(app.proposals, 1);
    assert!(effects.iter().any(|effect| matches!(
        effect,
        Effect::Broadcast { message, .. } if matches!(message.message, Message::Proposal(_))
    )));
}

#[test]
fn an_own_proposal_is_held_for_peers_and_not_judged_again() {
    let fixture = Fixture::new();
    let me = fixture.proposer(1, 0);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let effects = tick(&mut core, &mut app, 1);
    let key = effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Broadcast { message, .. } => match &message.message {
                Message::Proposal(p) => Some(ProposalKey {
                    height: p.height.0,
                    round: p.round.0,
                    hash: p.value.hash.0,
                }),
                _ => None,
            },
            _ => None,
        })
        .expect("own proposal broadcast");
    assert!(core.held_proposal(&key).is_some());
    assert!(app.judged.is_empty(), "the core trusts its own block");
}

#[test]
fn a_verdict_is_given_at_the_next_tick_not_inside_the_message() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let proposed = value(5);
    deliver(&mut core, &mut app, fixture.proposal(1, 0, &proposed), 10);
    assert!(app.judged.is_empty());
    assert_eq!(
        core.next_wake_ms(&app, 10),
        Some(10),
        "a verdict is due now"
    );
    tick(&mut core, &mut app, 12);
    assert_eq!(app.judged, vec![proposed.hash]);
}

#[test]
fn a_proposal_taken_for_validation_is_held_for_peers() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let proposed = value(5);
    deliver(&mut core, &mut app, fixture.proposal(1, 0, &proposed), 10);
    let key = ProposalKey {
        height: 1,
        round: 0,
        hash: proposed.hash.0,
    };
    assert_eq!(
        core.held_proposal(&key).map(|bytes| bytes.to_vec()),
        Some(fixture.proposal(1, 0, &proposed))
    );
}

#[test]
fn a_block_judged_at_this_height_is_handed_back_at_commit() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let proposed = value(5);
    deliver(&mut core, &mut app, fixture.proposal(1, 0, &proposed), 10);
    tick(&mut core, &mut app, 11);
    for index in (0..4).filter(|index| *index != me) {
        for pre in [true, false] {
            deliver(
                &mut core,
                &mut app,
                fixture.vote(index, 1, 0, &proposed, pre),
                20,
            );
        }
    }
    assert_eq!(app.commits_with_checked, vec![true]);
    assert_eq!(app.judged.len(), 1, "judged once");
    assert_eq!(core.machine().height(), Height(2));
}

#[test]
fn a_vote_for_a_proposal_not_held_asks_peers_for_it_once_per_retry_interval() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let config = CoreConfig {
        proposal_fetch_retry_ms: 1_000,
        ..CoreConfig::default()
    };
    let (mut core, mut app, _) = fixture.core(me, config);
    let missing = value(9);
    let voter = (0..4)
        .find(|index| *index != me)
        .expect("another validator");
    let other = (0..4)
        .find(|index| *index != me && *index != voter)
        .expect("a third validator");
    let first = deliver(
        &mut core,
        &mut app,
        fixture.vote(voter, 1, 0, &missing, true),
        100,
    );
    assert_eq!(
        fetches(&first),
        vec![ProposalKey {
            height: 1,
            round: 0,
            hash: missing.hash.0
        }]
    );
    let again = deliver(
        &mut core,
        &mut app,
        fixture.vote(other, 1, 0, &missing, true),
        600,
    );
    assert!(fetches(&again).is_empty(), "asked again too soon");
    let later = deliver(
        &mut core,
        &mut app,
        fixture.vote(voter, 1, 0, &missing, false),
        1_200,
    );
    assert_eq!(fetches(&later).len(), 1, "asked again after the interval");
}

#[test]
fn proposal_fetches_at_one_height_are_bounded() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let voter = (0..4)
        .find(|index| *index != me)
        .expect("another validator");
    let mut asked = 0;
    for round in 0..(PROPOSAL_FETCHES_MAX as u64 + 10) {
        let made_up = value((round % 200) as u8 + 1);
        let effects = deliver(
            &mut core,
            &mut app,
            fixture.vote(voter, 1, round, &made_up, true),
            10,
        );
        asked += fetches(&effects).len();
    }
    assert!(asked <= PROPOSAL_FETCHES_MAX, "{asked} fetches");
}

#[test]
fn a_message_from_a_later_height_asks_for_sync_at_most_once_per_interval() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let config = CoreConfig {
        sync_want_interval_ms: 200,
        ..CoreConfig::default()
    };
    let (mut core, mut app, _) = fixture.core(me, config);
    let later = value(7);
    let voter = (0..4)
        .find(|index| *index != me)
        .expect("another validator");
    let mut wanted = 0;
    for now_ms in [10, 50, 150] {
        let effects = deliver(
            &mut core,
            &mut app,
            fixture.vote(voter, 5, 0, &later, true),
            now_ms,
        );
        wanted += sync_wanted(&effects);
    }
    assert_eq!(wanted, 1);
    let effects = deliver(
        &mut core,
        &mut app,
        fixture.vote(voter, 5, 0, &later, false),
        260,
    );
    assert_eq!(sync_wanted(&effects), 1);
}

#[test]
fn synced_blocks_move_the_machine_to_the_height_after_them() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let blocks = (1..=3u8)
        .map(|height| SyncedBlock {
            block: vec![height],
            certificate: Vec::new(),
        })
        .collect();
    let effects = core
        .handle(Event::Synced(blocks), &mut app, 10)
        .expect("synced");
    assert_eq!(core.machine().height(), Height(4));
    assert!(effects
        .iter()
        .any(|effect| matches!(effect, Effect::SyncDone(Ok(Height(3))))));
}

#[test]
fn a_synced_block_the_application_refuses_is_reported_and_stops_the_batch() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let blocks = [1u8, 3, 4]
        .into_iter()
        .map(|height| SyncedBlock {
            block: vec![height],
            certificate: Vec::new(),
        })
        .collect();
    let effects = core
        .handle(Event::Synced(blocks), &mut app, 10)
        .expect("synced");
    assert_eq!(app.height, 1, "block 4 was not tried after 3 was refused");
    assert_eq!(core.machine().height(), Height(2));
    assert!(effects
        .iter()
        .any(|effect| matches!(effect, Effect::SyncDone(Err(_)))));
}

#[test]
fn an_application_failure_stops_the_core_and_is_never_a_vote() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    app.broken = true;
    deliver(&mut core, &mut app, fixture.proposal(1, 0, &value(5)), 10);
    let result = core.handle(Event::Tick, &mut app, 11);
    assert!(result.is_err());
}

#[test]
fn an_invalid_block_gets_a_nil_prevote_and_is_reported() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let invalid = value(0);
    deliver(&mut core, &mut app, fixture.proposal(1, 0, &invalid), 10);
    let effects = tick(&mut core, &mut app, 11);
    assert!(effects
        .iter()
        .any(|effect| matches!(effect, Effect::Refused { .. })));
    let prevote = effects.iter().find_map(|effect| match effect {
        Effect::Broadcast { message, .. } => match &message.message {
            Message::Prevote(vote) => Some(vote.block_hash),
            _ => None,
        },
        _ => None,
    });
    assert_eq!(prevote, Some(None), "a nil prevote");
}

#[test]
fn timers_are_the_cores_and_fire_at_their_time() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let propose_ms = custody_consensus::TimeoutConfig::default().propose_ms;
    let nil_prevote = |effects: &[Effect]| {
        effects.iter().any(|effect| {
            matches!(
                effect,
                Effect::Broadcast { message, .. }
                    if matches!(message.message, Message::Prevote(Vote { block_hash: None, .. }))
            )
        })
    };
    assert!(core
        .next_wake_ms(&app, 0)
        .is_some_and(|wake| wake <= propose_ms));
    let before = tick(&mut core, &mut app, propose_ms - 1);
    assert!(!nil_prevote(&before), "the propose timeout fired early");
    let at = tick(&mut core, &mut app, propose_ms);
    assert!(nil_prevote(&at), "the propose timeout did not fire");
}

#[test]
fn a_key_installed_at_run_time_signs_from_the_height_whose_set_names_it() {
    let fixture = Fixture::new();
    let me = non_proposer(&fixture);
    let (mut core, mut app, _) = fixture.core(me, CoreConfig::default());
    let new_key = SigningKey::from_bytes(&[0xC3; 32]);
    let new = ValidatorKey::from(&new_key.verifying_key());
    let effects = core
        .add_signing_key(new_key, &mut app, 5)
        .expect("application")
        .expect("the ring takes the key");
    assert!(
        !effects
            .iter()
            .any(|effect| matches!(effect, Effect::Broadcast { .. })),
        "the old key still signs at height 1"
    );
    assert_eq!(core.machine().own_key(), Some(fixture.key(me)));
    // Governance rotated the key from height 4 on; the node syncs to it.
    app.set = ValidatorSet::new(
        (0..4)
            .map(|index| Validator {
                key: if index == me { new } else { fixture.key(index) },
                power: 1,
            })
            .collect(),
    )
    .expect("four validators");
    let blocks = (1..=3u8)
        .map(|height| SyncedBlock {
            block: vec![height],
            certificate: Vec::new(),
        })
        .collect();
    core.handle(Event::Synced(blocks), &mut app, 10)
        .expect("synced");
    assert_eq!(core.machine().height(), Height(4));
    assert_eq!(core.machine().own_key(), Some(new));
    let mut effects = tick(&mut core, &mut app, 10_000);
    effects.extend(tick(&mut core, &mut app, 20_000));
    let signers: Vec<ValidatorKey> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Broadcast { message, .. } => Some(message.validator),
            _ => None,
        })
        .collect();
    assert!(!signers.is_empty());
    assert!(signers.iter().all(|signer| *signer == new), "{signers:?}");
}
