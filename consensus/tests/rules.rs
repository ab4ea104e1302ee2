//! One test per protocol rule, named after the rule. Line numbers refer to
//! Algorithm 1 of Buchman, Kwon, Milosevic 2018 (arXiv:1807.04938).

use custody_consensus::{
    commit_vote_signing_bytes, Action, BlockHash, CertificateError, CommitCertificate,
    CommitSignature, Config, Consensus, ConsensusError, Disposition, DropReason, Height, Input,
    Message, Proposal, Round, RoundStep, SignatureBytes, SignedMessage, TimeoutEvent, TimeoutStep,
    Validator, ValidatorKey, ValidatorSet, Value, Vote,
};
use ed25519_dalek::{Signature, SigningKey, Verifier};

const CHAIN: &str = "custody-test";

/// Heartbeat of the validators that wait for work.
const HEARTBEAT_MS: u64 = 60_000;

struct Fixture {
    keys: Vec<SigningKey>,
    set: ValidatorSet,
}

impl Fixture {
    fn new(n: usize) -> Fixture {
        let keys: Vec<SigningKey> = (0..n)
            .map(|index| SigningKey::from_bytes(&[index as u8 + 1; 32]))
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|key| Validator {
                    key: ValidatorKey::from(&key.verifying_key()),
                    power: 1,
                })
                .collect(),
        )
        .unwrap();
        Fixture { keys, set }
    }

    fn index_of(&self, key: ValidatorKey) -> usize {
        self.keys
            .iter()
            .position(|signing| ValidatorKey::from(&signing.verifying_key()) == key)
            .unwrap()
    }

    fn proposer(&self, height: u64, round: u64) -> usize {
        self.index_of(self.set.proposer(Height(height), Round(round)).key)
    }

    /// A validator that is not the proposer of (height, round).
    fn non_proposer(&self, height: u64, round: u64) -> usize {
        (self.proposer(height, round) + 1) % self.keys.len()
    }

    fn config(&self, index: usize) -> Config {
        Config::new(CHAIN, Some(self.keys[index].clone()))
    }

    /// A validator that waits for work at each new height, at most
    /// `HEARTBEAT_MS`.
    fn config_waiting(&self, index: usize) -> Config {
        let mut config = self.config(index);
        config.timeouts.heartbeat_ms = Some(HEARTBEAT_MS);
        config
    }

    fn start_waiting(&self, index: usize, height: u64) -> (Consensus, Vec<Action>) {
        Consensus::new(
            self.config_waiting(index),
            self.set.clone(),
            Height(height),
            None,
        )
        .unwrap()
    }

    fn start(&self, index: usize, height: u64) -> (Consensus, Vec<Action>) {
        Consensus::new(self.config(index), self.set.clone(), Height(height), None).unwrap()
    }

    fn sign(&self, index: usize, message: Message) -> SignedMessage {
        SignedMessage::sign(CHAIN, message, &self.keys[index])
    }

    fn proposal(
        &self,
        height: u64,
        round: u64,
        value: &Value,
        valid_round: Option<u64>,
    ) -> SignedMessage {
        self.sign(
            self.proposer(height, round),
            Message::Proposal(Proposal {
                height: Height(height),
                round: Round(round),
                valid_round: valid_round.map(Round),
                value: value.clone(),
            }),
        )
    }

    fn prevote(
        &self,
        index: usize,
        height: u64,
        round: u64,
        value: Option<&Value>,
    ) -> SignedMessage {
        self.sign(index, Message::Prevote(vote(height, round, value)))
    }

    fn precommit(
        &self,
        index: usize,
        height: u64,
        round: u64,
        value: Option<&Value>,
    ) -> SignedMessage {
        self.sign(index, Message::Precommit(vote(height, round, value)))
    }

    /// With four validators, the proposer of round 3 proposes none of
    /// rounds 0, 1 and 2 of height 1: a bystander for multi-round tests.
    fn bystander(&self) -> usize {
        assert_eq!(self.keys.len(), 4);
        self.proposer(1, 3)
    }

    /// Indices other than `me`, first `count` of them.
    fn others(&self, me: usize, count: usize) -> Vec<usize> {
        (0..self.keys.len())
            .filter(|&index| index != me)
            .take(count)
            .collect()
    }
}

fn vote(height: u64, round: u64, value: Option<&Value>) -> Vote {
    Vote {
        height: Height(height),
        round: Round(round),
        block_hash: value.map(|value| value.hash),
    }
}

fn value(tag: u8) -> Value {
    Value {
        bytes: vec![tag; 16],
        hash: BlockHash([tag; 32]),
    }
}

fn feed(machine: &mut Consensus, message: SignedMessage) -> Vec<Action> {
    machine.handle(Input::Message(message)).actions
}

/// Feeds `message` and returns what became of it.
fn disposition(machine: &mut Consensus, message: SignedMessage) -> Option<Disposition> {
    machine.handle(Input::Message(message)).disposition
}

fn verdict(machine: &mut Consensus, height: u64, value: &Value, valid: bool) -> Vec<Action> {
    machine
        .handle(Input::ValueVerdict {
            height: Height(height),
            hash: value.hash,
            valid,
        })
        .actions
}

fn timeout(machine: &mut Consensus, height: u64, round: u64, step: TimeoutStep) -> Vec<Action> {
    machine
        .handle(Input::Timeout(TimeoutEvent {
            height: Height(height),
            round: Round(round),
            step,
        }))
        .actions
}

/// Own messages broadcast in `actions` (signed by `key`).
fn own_broadcasts(actions: &[Action], fixture: &Fixture, index: usize) -> Vec<Message> {
    let key = ValidatorKey::from(&fixture.keys[index].verifying_key());
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Broadcast(message) if message.validator == key => Some(message.message.clone()),
            _ => None,
        })
        .collect()
}

fn scheduled(actions: &[Action]) -> Vec<(TimeoutEvent, u64)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::ScheduleTimeout { event, duration_ms } => Some((*event, *duration_ms)),
            _ => None,
        })
        .collect()
}

/// Brings a non-proposer of (1, 0) to the prevote step having prevoted
/// for `proposed`.
fn prevoted_for(fixture: &Fixture, proposed: &Value) -> (Consensus, usize) {
    let me = fixture.bystander();
    let (mut machine, _) = fixture.start(me, 1);
    feed(&mut machine, fixture.proposal(1, 0, proposed, None));
    let actions = verdict(&mut machine, 1, proposed, true);
    assert_eq!(
        own_broadcasts(&actions, fixture, me),
        vec![Message::Prevote(vote(1, 0, Some(proposed)))]
    );
    (machine, me)
}

#[test]
fn proposer_requests_a_value_at_round_start_when_it_has_no_valid_value() {
    let fixture = Fixture::new(4);
    let (_, actions) = fixture.start(fixture.proposer(1, 0), 1);
    assert!(actions.iter().any(|action| matches!(
        action,
        Action::RequestProposal {
            height: Height(1),
            round: Round(0)
        }
    )));
}

#[test]
fn proposer_signs_the_node_value_and_prevotes_for_it() {
    let fixture = Fixture::new(4);
    let me = fixture.proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let actions = machine
        .handle(Input::ProposalValue {
            height: Height(1),
            round: Round(0),
            value: value(7),
        })
        .actions;
    let sent = own_broadcasts(&actions, &fixture, me);
    assert!(
        matches!(&sent[0], Message::Proposal(p) if p.value == value(7) && p.valid_round.is_none())
    );
    assert_eq!(sent[1], Message::Prevote(vote(1, 0, Some(&value(7)))));
}

#[test]
fn proposal_is_validated_by_the_node_before_any_prevote() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let actions = feed(&mut machine, fixture.proposal(1, 0, &value(7), None));
    assert!(actions
        .iter()
        .any(|action| matches!(action, Action::ValidateValue { height: Height(1), value: v } if *v == value(7))));
    assert!(own_broadcasts(&actions, &fixture, me).is_empty());
    assert_eq!(machine.step(), RoundStep::Propose);
}

#[test]
fn fresh_proposal_judged_valid_gets_a_prevote_for_it() {
    let fixture = Fixture::new(4);
    let (machine, _) = prevoted_for(&fixture, &value(7));
    assert_eq!(machine.step(), RoundStep::Prevote);
}

#[test]
fn fresh_proposal_judged_invalid_gets_a_nil_prevote() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    feed(&mut machine, fixture.proposal(1, 0, &value(7), None));
    let actions = verdict(&mut machine, 1, &value(7), false);
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Prevote(vote(1, 0, None))]
    );
}

/// Locks `me` on `locked` in round 0, then moves it to round 1.
fn locked_in_round_zero(fixture: &Fixture, locked: &Value) -> (Consensus, usize) {
    let (mut machine, me) = prevoted_for(fixture, locked);
    let mut actions = Vec::new();
    for index in fixture.others(me, 2) {
        actions.extend(feed(
            &mut machine,
            fixture.prevote(index, 1, 0, Some(locked)),
        ));
    }
    assert!(
        own_broadcasts(&actions, fixture, me).contains(&Message::Precommit(vote(
            1,
            0,
            Some(locked)
        )))
    );
    assert_eq!(
        machine
            .persisted_state()
            .locked
            .map(|(round, v)| (round, v.hash)),
        Some((Round(0), locked.hash))
    );
    timeout(&mut machine, 1, 0, TimeoutStep::Precommit);
    assert_eq!(machine.round(), Round(1));
    (machine, me)
}

#[test]
fn locked_validator_prevotes_nil_for_a_different_fresh_proposal() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = locked_in_round_zero(&fixture, &value(7));
    feed(&mut machine, fixture.proposal(1, 1, &value(8), None));
    let actions = verdict(&mut machine, 1, &value(8), true);
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Prevote(vote(1, 1, None))]
    );
}

#[test]
fn locked_validator_prevotes_for_its_locked_value_when_proposed_again() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = locked_in_round_zero(&fixture, &value(7));
    let actions = feed(&mut machine, fixture.proposal(1, 1, &value(7), None));
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Prevote(vote(1, 1, Some(&value(7))))]
    );
}

#[test]
fn reproposal_with_a_proof_of_lock_from_a_later_round_than_the_lock_unlocks() {
    // L28: locked on 7 in round 0; a polka for 8 in round 1 and a
    // re-proposal of 8 with valid round 1 in round 2 get a prevote for 8.
    let fixture = Fixture::new(4);
    let (mut machine, me) = locked_in_round_zero(&fixture, &value(7));
    for index in fixture.others(me, 3) {
        feed(&mut machine, fixture.prevote(index, 1, 1, Some(&value(8))));
    }
    timeout(&mut machine, 1, 1, TimeoutStep::Propose);
    timeout(&mut machine, 1, 1, TimeoutStep::Prevote);
    timeout(&mut machine, 1, 1, TimeoutStep::Precommit);
    assert_eq!(machine.round(), Round(2));
    feed(&mut machine, fixture.proposal(1, 2, &value(8), Some(1)));
    let actions = verdict(&mut machine, 1, &value(8), true);
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Prevote(vote(1, 2, Some(&value(8))))]
    );
}

#[test]
fn reproposal_without_its_proof_of_lock_waits() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 1);
    let (mut machine, _) = fixture.start(me, 1);
    timeout(&mut machine, 1, 0, TimeoutStep::Propose);
    timeout(&mut machine, 1, 0, TimeoutStep::Precommit);
    feed(&mut machine, fixture.proposal(1, 1, &value(8), Some(0)));
    let actions = verdict(&mut machine, 1, &value(8), true);
    assert!(own_broadcasts(&actions, &fixture, me).is_empty());
    assert_eq!(machine.step(), RoundStep::Propose);
}

#[test]
fn quorum_of_mixed_prevotes_schedules_the_prevote_timeout() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = prevoted_for(&fixture, &value(7));
    let others = fixture.others(me, 2);
    let mut actions = feed(&mut machine, fixture.prevote(others[0], 1, 0, None));
    actions.extend(feed(
        &mut machine,
        fixture.prevote(others[1], 1, 0, Some(&value(9))),
    ));
    assert!(scheduled(&actions)
        .iter()
        .any(|(event, _)| event.step == TimeoutStep::Prevote && event.round == Round(0)));
    assert_eq!(machine.step(), RoundStep::Prevote);
}

#[test]
fn polka_locks_the_value_and_precommits_it() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = prevoted_for(&fixture, &value(7));
    let mut actions = Vec::new();
    for index in fixture.others(me, 2) {
        actions.extend(feed(
            &mut machine,
            fixture.prevote(index, 1, 0, Some(&value(7))),
        ));
    }
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Precommit(vote(1, 0, Some(&value(7))))]
    );
    let persisted = machine.persisted_state();
    assert_eq!(
        persisted.locked.map(|(round, v)| (round, v.hash)),
        Some((Round(0), value(7).hash))
    );
    assert_eq!(
        persisted.valid.map(|(round, v)| (round, v.hash)),
        Some((Round(0), value(7).hash))
    );
}

#[test]
fn polka_seen_after_precommitting_nil_updates_the_valid_value_but_not_the_lock() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = prevoted_for(&fixture, &value(7));
    timeout(&mut machine, 1, 0, TimeoutStep::Prevote);
    assert_eq!(machine.step(), RoundStep::Precommit);
    let mut actions = Vec::new();
    for index in fixture.others(me, 2) {
        actions.extend(feed(
            &mut machine,
            fixture.prevote(index, 1, 0, Some(&value(7))),
        ));
    }
    assert!(own_broadcasts(&actions, &fixture, me).is_empty());
    let persisted = machine.persisted_state();
    assert!(persisted.locked.is_none());
    assert_eq!(
        persisted.valid.map(|(round, v)| (round, v.hash)),
        Some((Round(0), value(7).hash))
    );
}

#[test]
fn quorum_of_nil_prevotes_gets_a_nil_precommit() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = prevoted_for(&fixture, &value(7));
    let mut actions = Vec::new();
    for index in fixture.others(me, 3) {
        actions.extend(feed(&mut machine, fixture.prevote(index, 1, 0, None)));
    }
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Precommit(vote(1, 0, None))]
    );
}

#[test]
fn quorum_of_mixed_precommits_schedules_the_precommit_timeout() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let others = fixture.others(me, 3);
    let mut actions = feed(&mut machine, fixture.precommit(others[0], 1, 0, None));
    actions.extend(feed(
        &mut machine,
        fixture.precommit(others[1], 1, 0, Some(&value(5))),
    ));
    actions.extend(feed(&mut machine, fixture.precommit(others[2], 1, 0, None)));
    assert!(scheduled(&actions)
        .iter()
        .any(|(event, _)| event.step == TimeoutStep::Precommit && event.round == Round(0)));
}

#[test]
fn quorum_of_precommits_with_the_proposal_commits_with_a_valid_certificate() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    for index in fixture.others(me, 3) {
        feed(
            &mut machine,
            fixture.precommit(index, 1, 0, Some(&value(7))),
        );
    }
    assert!(!machine.is_decided(), "no commit without the proposal");
    feed(&mut machine, fixture.proposal(1, 0, &value(7), None));
    assert!(
        !machine.is_decided(),
        "no commit before the value is judged valid"
    );
    let actions = verdict(&mut machine, 1, &value(7), true);
    let (height, committed, certificate) = actions
        .iter()
        .find_map(|action| match action {
            Action::Commit {
                height,
                value,
                certificate,
            } => Some((*height, value.clone(), certificate.clone())),
            _ => None,
        })
        .expect("commit");
    assert_eq!(height, Height(1));
    assert_eq!(committed, value(7));
    assert_eq!(certificate.signatures.len(), 3);
    certificate.verify(CHAIN, &fixture.set).unwrap();
    assert!(machine.is_decided());
}

#[test]
fn commit_in_an_earlier_round_is_recognised_after_moving_on() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    feed(&mut machine, fixture.proposal(1, 0, &value(7), None));
    verdict(&mut machine, 1, &value(7), false);
    timeout(&mut machine, 1, 0, TimeoutStep::Prevote);
    timeout(&mut machine, 1, 0, TimeoutStep::Precommit);
    assert_eq!(machine.round(), Round(1));
    let mut actions = Vec::new();
    for index in fixture.others(me, 3) {
        actions.extend(feed(
            &mut machine,
            fixture.precommit(index, 1, 0, Some(&value(7))),
        ));
    }
    // Judged invalid: never committed, whatever the precommits say.
    assert!(!actions
        .iter()
        .any(|action| matches!(action, Action::Commit { .. })));
}

#[test]
fn one_third_of_power_in_a_later_round_skips_to_it() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let others = fixture.others(me, 2);
    feed(&mut machine, fixture.prevote(others[0], 1, 5, None));
    assert_eq!(
        machine.round(),
        Round(0),
        "one validator of four is not more than a third"
    );
    feed(&mut machine, fixture.precommit(others[1], 1, 5, None));
    assert_eq!(machine.round(), Round(5));
}

#[test]
fn propose_timeout_prevotes_nil() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let actions = timeout(&mut machine, 1, 0, TimeoutStep::Propose);
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Prevote(vote(1, 0, None))]
    );
}

#[test]
fn prevote_timeout_precommits_nil() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = prevoted_for(&fixture, &value(7));
    let actions = timeout(&mut machine, 1, 0, TimeoutStep::Prevote);
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Precommit(vote(1, 0, None))]
    );
}

#[test]
fn precommit_timeout_starts_the_next_round() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    timeout(&mut machine, 1, 0, TimeoutStep::Precommit);
    assert_eq!(
        (machine.round(), machine.step()),
        (Round(1), RoundStep::Propose)
    );
}

#[test]
fn stale_timeouts_are_ignored() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    timeout(&mut machine, 1, 0, TimeoutStep::Precommit);
    let actions = timeout(&mut machine, 1, 0, TimeoutStep::Propose);
    assert!(own_broadcasts(&actions, &fixture, me).is_empty());
    assert_eq!(machine.step(), RoundStep::Propose);
}

#[test]
fn timeouts_grow_linearly_with_the_round_and_reset_at_a_new_height() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let mut config = fixture.config(me);
    config.timeouts.propose_ms = 1000;
    config.timeouts.propose_delta_ms = 250;
    let (mut machine, actions) =
        Consensus::new(config, fixture.set.clone(), Height(1), None).unwrap();
    let propose = |actions: &[Action]| {
        scheduled(actions)
            .into_iter()
            .find(|(event, _)| event.step == TimeoutStep::Propose)
            .map(|(_, duration)| duration)
    };
    assert_eq!(propose(&actions), Some(1000));
    let actions = timeout(&mut machine, 1, 0, TimeoutStep::Precommit);
    assert_eq!(propose(&actions), Some(1250));
    let actions = timeout(&mut machine, 1, 1, TimeoutStep::Precommit);
    assert_eq!(propose(&actions), Some(1500));
    let actions = machine
        .handle(Input::StartHeight {
            height: Height(2),
            validators: fixture.set.clone(),
        })
        .actions;
    assert_eq!(propose(&actions), Some(1000));
}

fn assert_dropped(machine: &mut Consensus, message: SignedMessage, reason: DropReason) {
    let before = format!("{:?}", machine.persisted_state());
    let step = machine.handle(Input::Message(message));
    assert!(step.actions.is_empty(), "{:?}", step.actions);
    assert_eq!(step.disposition, Some(Disposition::Dropped(reason)));
    assert_eq!(format!("{:?}", machine.persisted_state()), before);
}

#[test]
fn message_from_a_non_validator_is_dropped_without_state_change() {
    let fixture = Fixture::new(4);
    let (mut machine, _) = fixture.start(fixture.non_proposer(1, 0), 1);
    let outsider = SigningKey::from_bytes(&[99; 32]);
    let message = SignedMessage::sign(CHAIN, Message::Prevote(vote(1, 0, None)), &outsider);
    assert_dropped(&mut machine, message, DropReason::NotValidator);
}

#[test]
fn message_with_a_bad_signature_is_dropped_without_state_change() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let mut message = fixture.prevote(fixture.others(me, 1)[0], 1, 0, None);
    message.signature.0[0] ^= 1;
    assert_dropped(&mut machine, message, DropReason::BadSignature);
}

#[test]
fn message_for_another_chain_is_dropped_without_state_change() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let other = fixture.others(me, 1)[0];
    let message = SignedMessage::sign(
        "other-chain",
        Message::Prevote(vote(1, 0, None)),
        &fixture.keys[other],
    );
    assert_dropped(&mut machine, message, DropReason::WrongChain);
}

#[test]
fn message_for_a_past_height_is_dropped_without_state_change() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(3, 0);
    let (mut machine, _) = fixture.start(me, 3);
    let message = fixture.prevote(fixture.others(me, 1)[0], 2, 0, None);
    assert_dropped(&mut machine, message, DropReason::PastHeight);
}

#[test]
fn oversized_message_is_dropped_without_state_change() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let mut config = fixture.config(me);
    config.message_bytes_max = 512;
    let (mut machine, _) = Consensus::new(config, fixture.set.clone(), Height(1), None).unwrap();
    let big = Value {
        bytes: vec![1; 1024],
        hash: BlockHash([1; 32]),
    };
    assert_dropped(
        &mut machine,
        fixture.proposal(1, 0, &big, None),
        DropReason::TooLarge,
    );
}

#[test]
fn proposal_from_a_validator_that_is_not_the_proposer_is_dropped() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let impostor = (0..4)
        .find(|&index| index != me && index != fixture.proposer(1, 0))
        .unwrap();
    let message = fixture.sign(
        impostor,
        Message::Proposal(Proposal {
            height: Height(1),
            round: Round(0),
            valid_round: None,
            value: value(7),
        }),
    );
    assert_dropped(&mut machine, message, DropReason::WrongProposer);
}

#[test]
fn conflicting_votes_from_one_validator_are_reported_as_evidence() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let other = fixture.others(me, 1)[0];
    assert!(feed(&mut machine, fixture.prevote(other, 1, 0, None)).is_empty());
    let actions = feed(&mut machine, fixture.prevote(other, 1, 0, Some(&value(3))));
    let evidence: Vec<_> = actions
        .iter()
        .filter_map(|action| match action {
            Action::Evidence(equivocation) => Some(equivocation.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    assert_eq!(
        evidence[0].first.message,
        Message::Prevote(vote(1, 0, None))
    );
    assert_eq!(
        evidence[0].second.message,
        Message::Prevote(vote(1, 0, Some(&value(3))))
    );
}

#[test]
fn conflicting_proposals_are_reported_as_evidence() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    feed(&mut machine, fixture.proposal(1, 0, &value(7), None));
    let actions = feed(&mut machine, fixture.proposal(1, 0, &value(8), None));
    assert!(actions
        .iter()
        .any(|action| matches!(action, Action::Evidence(_))));
}

#[test]
fn duplicate_message_changes_nothing() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let message = fixture.prevote(fixture.others(me, 1)[0], 1, 0, None);
    feed(&mut machine, message.clone());
    let step = machine.handle(Input::Message(message));
    assert!(step.actions.is_empty());
    assert_eq!(step.disposition, Some(Disposition::Duplicate));
}

#[test]
fn persist_comes_before_every_own_broadcast() {
    let fixture = Fixture::new(4);
    let me = fixture.proposer(1, 0);
    let (mut machine, mut actions) = fixture.start(me, 1);
    actions.extend(
        machine
            .handle(Input::ProposalValue {
                height: Height(1),
                round: Round(0),
                value: value(7),
            })
            .actions,
    );
    for index in fixture.others(me, 3) {
        actions.extend(feed(
            &mut machine,
            fixture.prevote(index, 1, 0, Some(&value(7))),
        ));
    }
    let key = ValidatorKey::from(&fixture.keys[me].verifying_key());
    let mut own_seen = 0;
    for (position, action) in actions.iter().enumerate() {
        if let Action::Broadcast(message) = action {
            if message.validator != key {
                continue;
            }
            own_seen += 1;
            let persisted_before =
                actions[..position]
                    .iter()
                    .rev()
                    .find_map(|earlier| match earlier {
                        Action::Persist(state) => Some(state),
                        _ => None,
                    });
            let persisted = persisted_before.expect("a persist precedes the broadcast");
            assert!(
                persisted.own_messages.contains(message),
                "the persisted state covers the message"
            );
        }
    }
    assert_eq!(own_seen, 3, "proposal, prevote and precommit");
}

#[test]
fn restart_from_persisted_state_never_signs_a_conflicting_vote() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = prevoted_for(&fixture, &value(7));
    for index in fixture.others(me, 2) {
        feed(&mut machine, fixture.prevote(index, 1, 0, Some(&value(7))));
    }
    let persisted = machine.persisted_state();
    drop(machine);
    let (mut restarted, actions) = Consensus::new(
        fixture.config(me),
        fixture.set.clone(),
        Height(1),
        Some(persisted),
    )
    .unwrap();
    assert_eq!(restarted.step(), RoundStep::Precommit);
    let sent = own_broadcasts(&actions, &fixture, me);
    assert!(
        sent.contains(&Message::Prevote(vote(1, 0, Some(&value(7))))),
        "own votes are sent again"
    );
    assert!(sent.contains(&Message::Precommit(vote(1, 0, Some(&value(7))))));
    // The same inputs again, and inputs that would make a fresh machine vote
    // nil: nothing new is signed for round 0.
    let mut later = Vec::new();
    later.extend(timeout(&mut restarted, 1, 0, TimeoutStep::Propose));
    later.extend(timeout(&mut restarted, 1, 0, TimeoutStep::Prevote));
    for index in fixture.others(me, 3) {
        later.extend(feed(&mut restarted, fixture.prevote(index, 1, 0, None)));
    }
    for message in own_broadcasts(&later, &fixture, me) {
        assert!(
            message == Message::Prevote(vote(1, 0, Some(&value(7))))
                || message == Message::Precommit(vote(1, 0, Some(&value(7))))
                || message.round() > Round(0),
            "conflicting {message:?}"
        );
    }
    // And it is still locked.
    assert_eq!(
        restarted.persisted_state().locked.map(|(r, v)| (r, v.hash)),
        Some((Round(0), value(7).hash))
    );
}

#[test]
fn restart_keeps_the_proof_of_lock_of_its_valid_value() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = prevoted_for(&fixture, &value(7));
    for index in fixture.others(me, 2) {
        feed(&mut machine, fixture.prevote(index, 1, 0, Some(&value(7))));
    }
    let persisted = machine.persisted_state();
    assert_eq!(
        persisted.valid_proof.len(),
        3,
        "own prevote and the two others"
    );
    drop(machine);
    let (mut restarted, _) = Consensus::new(
        fixture.config(me),
        fixture.set.clone(),
        Height(1),
        Some(persisted),
    )
    .unwrap();
    // Run rounds until this validator proposes: it re-proposes 7 and sends
    // the three prevotes of round 0 with it, although its memory was lost.
    let mut actions = Vec::new();
    while fixture.proposer(1, restarted.round().0) != me {
        let round = restarted.round().0;
        actions = timeout(&mut restarted, 1, round, TimeoutStep::Precommit);
    }
    let forwarded = actions
        .iter()
        .filter(|action| matches!(action, Action::Broadcast(m) if matches!(m.message, Message::Prevote(v) if v.round == Round(0))))
        .count();
    assert_eq!(forwarded, 3);
}

#[test]
fn persisted_state_from_a_later_height_is_refused() {
    let fixture = Fixture::new(4);
    let (machine, _) = fixture.start(0, 5);
    let persisted = machine.persisted_state();
    let error = Consensus::new(
        fixture.config(0),
        fixture.set.clone(),
        Height(4),
        Some(persisted),
    )
    .unwrap_err();
    assert_eq!(
        error,
        ConsensusError::PersistedStateAhead {
            persisted: Height(5),
            start: Height(4)
        }
    );
}

#[test]
fn messages_for_the_next_height_are_buffered_and_replayed_when_it_starts() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(2, 0);
    let (mut machine, _) = fixture.start(me, 1);
    for index in fixture.others(me, 2) {
        assert_eq!(
            disposition(&mut machine, fixture.prevote(index, 2, 3, None)),
            Some(Disposition::Buffered)
        );
    }
    assert_eq!(machine.round(), Round(0));
    let _ = machine.handle(Input::StartHeight {
        height: Height(2),
        validators: fixture.set.clone(),
    });
    // Two of four in round 3 is more than a third: the replayed votes
    // pull the machine to round 3.
    assert_eq!((machine.height(), machine.round()), (Height(2), Round(3)));
}

#[test]
fn messages_far_ahead_are_dropped() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let other = fixture.others(me, 1)[0];
    assert_dropped(
        &mut machine,
        fixture.prevote(other, 9, 0, None),
        DropReason::TooFarAhead,
    );
    assert_dropped(
        &mut machine,
        fixture.prevote(other, 1, 1000, None),
        DropReason::TooFarAhead,
    );
}

#[test]
fn rebroadcast_timeout_sends_own_votes_again_and_reschedules() {
    let fixture = Fixture::new(4);
    let (mut machine, me) = prevoted_for(&fixture, &value(7));
    let actions = timeout(&mut machine, 1, 0, TimeoutStep::Rebroadcast);
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Prevote(vote(1, 0, Some(&value(7))))]
    );
    assert!(scheduled(&actions)
        .iter()
        .any(|(event, _)| event.step == TimeoutStep::Rebroadcast));
}

#[test]
fn reproposal_forwards_its_proof_of_lock() {
    // A proposer that saw a polka for 7 in round 0 re-proposes it later
    // with valid round 0 and sends the polka's prevotes along.
    let fixture = Fixture::new(4);
    let (mut machine, me) = prevoted_for(&fixture, &value(7));
    for index in fixture.others(me, 2) {
        feed(&mut machine, fixture.prevote(index, 1, 0, Some(&value(7))));
    }
    let mut actions = Vec::new();
    while fixture.proposer(1, machine.round().0) != me {
        let round = machine.round().0;
        actions = timeout(&mut machine, 1, round, TimeoutStep::Precommit);
    }
    let proposal = actions.iter().find_map(|action| match action {
        Action::Broadcast(SignedMessage {
            message: Message::Proposal(proposal),
            ..
        }) => Some(proposal.clone()),
        _ => None,
    });
    let proposal = proposal.expect("re-proposal");
    assert_eq!(
        (proposal.value.clone(), proposal.valid_round),
        (value(7), Some(Round(0)))
    );
    let forwarded = actions
        .iter()
        .filter(|action| matches!(action, Action::Broadcast(m) if matches!(m.message, Message::Prevote(v) if v.round == Round(0))))
        .count();
    assert_eq!(forwarded, 3);
}

#[test]
fn observer_commits_without_voting() {
    let fixture = Fixture::new(4);
    let config = Config::new(CHAIN, None);
    let (mut machine, _) = Consensus::new(config, fixture.set.clone(), Height(1), None).unwrap();
    feed(&mut machine, fixture.proposal(1, 0, &value(7), None));
    verdict(&mut machine, 1, &value(7), true);
    let mut actions = Vec::new();
    for index in 0..3 {
        actions.extend(feed(
            &mut machine,
            fixture.precommit(index, 1, 0, Some(&value(7))),
        ));
    }
    assert!(actions
        .iter()
        .any(|action| matches!(action, Action::Commit { .. })));
    assert!(!actions
        .iter()
        .any(|action| matches!(action, Action::Broadcast(_) | Action::Persist(_))));
}

#[test]
fn precommit_for_a_block_is_signed_over_the_contract_commit_vote_bytes() {
    let fixture = Fixture::new(4);
    let message = fixture.precommit(0, 12, 3, Some(&value(0xab)));
    // tagged("custody/commit-vote/v1", postcard(CommitVote)) written out by
    // hand: tag length, tag, chain id (varint length + bytes), height and
    // round as varints, then the 32 hash bytes with no length prefix.
    let mut expected = vec![22u8];
    expected.extend_from_slice(b"custody/commit-vote/v1");
    expected.push(CHAIN.len() as u8);
    expected.extend_from_slice(CHAIN.as_bytes());
    expected.push(12);
    expected.push(3);
    expected.extend_from_slice(&[0xab; 32]);
    assert_eq!(
        commit_vote_signing_bytes(CHAIN, Height(12), Round(3), BlockHash([0xab; 32])),
        expected
    );
    let signature = Signature::from_bytes(&message.signature.0);
    fixture.keys[0]
        .verifying_key()
        .verify(&expected, &signature)
        .unwrap();
}

fn certificate_for(fixture: &Fixture, signers: &[usize]) -> CommitCertificate {
    let mut signatures: Vec<CommitSignature> = signers
        .iter()
        .map(|&index| {
            let message = fixture.precommit(index, 1, 0, Some(&value(7)));
            CommitSignature {
                validator: message.validator,
                signature: message.signature,
            }
        })
        .collect();
    signatures.sort_by_key(|entry| entry.validator);
    CommitCertificate {
        height: Height(1),
        round: Round(0),
        block_hash: value(7).hash,
        signatures,
    }
}

#[test]
fn certificate_with_more_than_two_thirds_of_power_verifies() {
    let fixture = Fixture::new(4);
    certificate_for(&fixture, &[0, 1, 2])
        .verify(CHAIN, &fixture.set)
        .unwrap();
}

#[test]
fn certificate_with_two_thirds_or_less_is_refused() {
    let fixture = Fixture::new(4);
    let error = certificate_for(&fixture, &[0, 1])
        .verify(CHAIN, &fixture.set)
        .unwrap_err();
    assert_eq!(
        error,
        CertificateError::InsufficientPower {
            signed: 2,
            total: 4
        }
    );
}

#[test]
fn certificate_with_a_repeated_signer_is_refused() {
    let fixture = Fixture::new(4);
    let mut certificate = certificate_for(&fixture, &[0, 1]);
    let repeated = certificate.signatures[1];
    certificate.signatures.push(repeated);
    assert!(matches!(
        certificate.verify(CHAIN, &fixture.set),
        Err(CertificateError::NotSortedOrDuplicate(_))
    ));
}

#[test]
fn certificate_with_a_bad_signature_or_outsider_is_refused() {
    let fixture = Fixture::new(4);
    let mut certificate = certificate_for(&fixture, &[0, 1, 2]);
    certificate.signatures[0].signature = SignatureBytes([0; 64]);
    assert!(matches!(
        certificate.verify(CHAIN, &fixture.set),
        Err(CertificateError::BadSignature(_))
    ));
    let small = ValidatorSet::new(fixture.set.validators()[..2].to_vec()).unwrap();
    assert!(matches!(
        certificate_for(&fixture, &[0, 1, 2]).verify(CHAIN, &small),
        Err(CertificateError::UnknownValidator(_))
    ));
    assert!(matches!(
        certificate_for(&fixture, &[0, 1, 2]).verify("other-chain", &fixture.set),
        Err(CertificateError::BadSignature(_))
    ));
}

#[test]
fn quorum_is_strictly_more_than_two_thirds_of_power() {
    let set = ValidatorSet::new(vec![
        Validator {
            key: ValidatorKey([1; 32]),
            power: 2,
        },
        Validator {
            key: ValidatorKey([2; 32]),
            power: 1,
        },
    ])
    .unwrap();
    assert!(!set.is_quorum(2), "exactly two thirds is not a quorum");
    assert!(set.is_quorum(3));
    assert!(!set.is_one_third(1));
    assert!(set.is_one_third(2));
}

#[test]
fn validator_set_refuses_duplicates_zero_power_and_emptiness() {
    let validator = Validator {
        key: ValidatorKey([1; 32]),
        power: 1,
    };
    assert!(ValidatorSet::new(vec![]).is_err());
    assert!(ValidatorSet::new(vec![validator, validator]).is_err());
    assert!(ValidatorSet::new(vec![Validator {
        power: 0,
        ..validator
    }])
    .is_err());
}

#[test]
fn proposers_rotate_in_proportion_to_power() {
    let fixture = Fixture::new(4);
    let proposers: Vec<usize> = (0..8).map(|round| fixture.proposer(1, round)).collect();
    for index in 0..4 {
        assert_eq!(proposers.iter().filter(|&&p| p == index).count(), 2);
    }
}

// ----- the wait for work (no empty blocks when idle) ------------------------

fn requests_proposal(actions: &[Action], height: u64) -> bool {
    actions.iter().any(|action| {
        matches!(action, Action::RequestProposal { height: h, round: Round(0) } if *h == Height(height))
    })
}

fn schedules(actions: &[Action], step: TimeoutStep) -> Option<u64> {
    scheduled(actions)
        .into_iter()
        .find(|(event, _)| event.step == step)
        .map(|(_, duration)| duration)
}

#[test]
fn a_new_height_waits_for_work_when_a_heartbeat_is_configured() {
    let fixture = Fixture::new(4);
    let (machine, actions) = fixture.start_waiting(fixture.proposer(1, 0), 1);
    assert!(machine.is_waiting_for_work());
    assert!(!requests_proposal(&actions, 1), "{actions:?}");
    assert_eq!(schedules(&actions, TimeoutStep::Propose), None);
    assert_eq!(
        schedules(&actions, TimeoutStep::Heartbeat),
        Some(HEARTBEAT_MS)
    );
}

#[test]
fn without_a_heartbeat_a_new_height_starts_round_zero_at_once() {
    let fixture = Fixture::new(4);
    let me = fixture.proposer(2, 0);
    let (mut machine, _) = fixture.start(me, 1);
    let actions = machine
        .handle(Input::StartHeight {
            height: Height(2),
            validators: fixture.set.clone(),
        })
        .actions;
    assert!(!machine.is_waiting_for_work());
    assert!(requests_proposal(&actions, 2));
    assert_eq!(schedules(&actions, TimeoutStep::Heartbeat), None);
}

#[test]
fn work_available_starts_the_round_at_once() {
    let fixture = Fixture::new(4);
    let (mut proposer, _) = fixture.start_waiting(fixture.proposer(1, 0), 1);
    let actions = proposer.handle(Input::WorkAvailable).actions;
    assert!(!proposer.is_waiting_for_work());
    assert!(requests_proposal(&actions, 1));
    assert_eq!(schedules(&actions, TimeoutStep::Propose), Some(3000));

    let (mut other, _) = fixture.start_waiting(fixture.non_proposer(1, 0), 1);
    let actions = other.handle(Input::WorkAvailable).actions;
    assert!(!other.is_waiting_for_work());
    assert_eq!(schedules(&actions, TimeoutStep::Propose), Some(3000));
}

#[test]
fn work_available_changes_nothing_once_the_round_has_started() {
    let fixture = Fixture::new(4);
    let (mut machine, _) = fixture.start_waiting(fixture.proposer(1, 0), 1);
    let _ = machine.handle(Input::WorkAvailable);
    let step = machine.handle(Input::WorkAvailable);
    assert!(step.actions.is_empty(), "{:?}", step.actions);
    assert_eq!(step.disposition, None);
}

#[test]
fn the_heartbeat_starts_the_round_without_work() {
    let fixture = Fixture::new(4);
    let (mut machine, _) = fixture.start_waiting(fixture.proposer(1, 0), 1);
    // A heartbeat of another height is stale.
    assert!(timeout(&mut machine, 2, 0, TimeoutStep::Heartbeat).is_empty());
    assert!(machine.is_waiting_for_work());
    let actions = timeout(&mut machine, 1, 0, TimeoutStep::Heartbeat);
    assert!(!machine.is_waiting_for_work());
    assert!(requests_proposal(&actions, 1));
}

#[test]
fn a_round_timeout_before_round_zero_neither_votes_nor_ends_the_wait() {
    let fixture = Fixture::new(4);
    let (mut machine, _) = fixture.start_waiting(fixture.non_proposer(1, 0), 1);
    for step in [
        TimeoutStep::Propose,
        TimeoutStep::Prevote,
        TimeoutStep::Precommit,
        TimeoutStep::Rebroadcast,
    ] {
        let actions = timeout(&mut machine, 1, 0, step);
        assert!(actions.is_empty(), "{step:?}: {actions:?}");
    }
    assert!(machine.is_waiting_for_work());
    assert_eq!(
        (machine.round(), machine.step()),
        (Round(0), RoundStep::Propose)
    );
}

#[test]
fn a_vote_for_the_height_wakes_a_waiting_validator() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start_waiting(me, 1);
    let voter = fixture.others(me, 1)[0];
    let step = machine.handle(Input::Message(fixture.prevote(voter, 1, 0, None)));
    assert_eq!(step.disposition, Some(Disposition::Accepted));
    assert!(!machine.is_waiting_for_work());
    assert_eq!(schedules(&step.actions, TimeoutStep::Propose), Some(3000));
}

#[test]
fn a_proposal_for_the_height_wakes_a_waiting_validator_which_then_prevotes_for_it() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start_waiting(me, 1);
    feed(&mut machine, fixture.proposal(1, 0, &value(7), None));
    assert!(!machine.is_waiting_for_work());
    let actions = verdict(&mut machine, 1, &value(7), true);
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Prevote(vote(1, 0, Some(&value(7))))]
    );
}

#[test]
fn a_badly_signed_or_foreign_message_does_not_wake_a_waiting_validator() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start_waiting(me, 1);
    let outsider = SigningKey::from_bytes(&[99; 32]);
    let foreign = SignedMessage::sign(CHAIN, Message::Prevote(vote(1, 0, None)), &outsider);
    let _ = machine.handle(Input::Message(foreign));
    let mut forged = fixture.prevote(fixture.others(me, 1)[0], 1, 0, None);
    forged.signature = fixture.prevote(me, 1, 0, None).signature;
    let step = machine.handle(Input::Message(forged));
    assert_eq!(
        step.disposition,
        Some(Disposition::Dropped(DropReason::BadSignature))
    );
    assert!(machine.is_waiting_for_work());
}

#[test]
fn a_vote_for_the_next_height_wakes_a_waiting_validator_when_that_height_starts() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(2, 0);
    let (mut machine, _) = fixture.start_waiting(me, 1);
    let voter = fixture.others(me, 1)[0];
    assert_eq!(
        disposition(&mut machine, fixture.prevote(voter, 2, 0, None)),
        Some(Disposition::Buffered)
    );
    assert!(
        machine.is_waiting_for_work(),
        "a later height's vote does not wake this one"
    );
    let _ = machine.handle(Input::StartHeight {
        height: Height(2),
        validators: fixture.set.clone(),
    });
    assert!(!machine.is_waiting_for_work());
}

#[test]
fn a_restart_with_nothing_done_at_the_height_waits_again() {
    let fixture = Fixture::new(4);
    let me = fixture.proposer(1, 0);
    let (machine, _) = fixture.start_waiting(me, 1);
    let persisted = machine.persisted_state();
    let (restarted, actions) = Consensus::new(
        fixture.config_waiting(me),
        fixture.set.clone(),
        Height(1),
        Some(persisted),
    )
    .unwrap();
    assert!(restarted.is_waiting_for_work());
    assert!(!requests_proposal(&actions, 1));
}

#[test]
fn a_restart_after_voting_resumes_the_round_instead_of_waiting() {
    let fixture = Fixture::new(4);
    let me = fixture.non_proposer(1, 0);
    let (mut machine, _) = fixture.start_waiting(me, 1);
    let _ = machine.handle(Input::WorkAvailable);
    timeout(&mut machine, 1, 0, TimeoutStep::Propose);
    let persisted = machine.persisted_state();
    let (restarted, actions) = Consensus::new(
        fixture.config_waiting(me),
        fixture.set.clone(),
        Height(1),
        Some(persisted),
    )
    .unwrap();
    assert!(!restarted.is_waiting_for_work());
    assert_eq!(
        own_broadcasts(&actions, &fixture, me),
        vec![Message::Prevote(vote(1, 0, None))]
    );
}

// ----- never two own votes of one kind in one round --------------------------

/// A state whose step was written behind its votes (as an older version,
/// or a hand-edited file, could leave it): the prevote rules fire again,
/// and the machine must send its existing vote rather than sign another.
#[test]
fn machine_never_signs_two_prevotes_in_one_round() {
    let fixture = Fixture::new(4);
    let me = fixture.bystander();
    let (mut machine, _) = fixture.start(me, 1);
    timeout(&mut machine, 1, 0, TimeoutStep::Propose);
    let mut persisted = machine.persisted_state();
    assert_eq!(persisted.own_messages.len(), 1, "the nil prevote");
    persisted.step = RoundStep::Propose;
    let (mut restarted, mut actions) = Consensus::new(
        fixture.config(me),
        fixture.set.clone(),
        Height(1),
        Some(persisted),
    )
    .unwrap();
    actions.extend(feed(
        &mut restarted,
        fixture.proposal(1, 0, &value(7), None),
    ));
    actions.extend(verdict(&mut restarted, 1, &value(7), true));
    actions.extend(timeout(&mut restarted, 1, 0, TimeoutStep::Propose));
    let prevotes: Vec<Message> = own_broadcasts(&actions, &fixture, me)
        .into_iter()
        .filter(|message| matches!(message, Message::Prevote(_)))
        .collect();
    assert!(!prevotes.is_empty());
    assert!(
        prevotes
            .iter()
            .all(|message| *message == Message::Prevote(vote(1, 0, None))),
        "only the original nil prevote is ever sent: {prevotes:?}"
    );
}

#[test]
fn machine_never_signs_two_precommits_in_one_round() {
    let fixture = Fixture::new(4);
    let me = fixture.bystander();
    let (mut machine, _) = fixture.start(me, 1);
    timeout(&mut machine, 1, 0, TimeoutStep::Propose);
    timeout(&mut machine, 1, 0, TimeoutStep::Prevote);
    assert_eq!(machine.step(), RoundStep::Precommit);
    let mut persisted = machine.persisted_state();
    persisted.step = RoundStep::Prevote;
    let (mut restarted, mut actions) = Consensus::new(
        fixture.config(me),
        fixture.set.clone(),
        Height(1),
        Some(persisted),
    )
    .unwrap();
    // A polka for block 7 in round 0 would make a validator in the prevote
    // step lock on it and precommit it (L36).
    actions.extend(feed(
        &mut restarted,
        fixture.proposal(1, 0, &value(7), None),
    ));
    actions.extend(verdict(&mut restarted, 1, &value(7), true));
    for index in fixture.others(me, 3) {
        actions.extend(feed(
            &mut restarted,
            fixture.prevote(index, 1, 0, Some(&value(7))),
        ));
    }
    let precommits: Vec<Message> = own_broadcasts(&actions, &fixture, me)
        .into_iter()
        .filter(|message| matches!(message, Message::Precommit(_)))
        .collect();
    assert!(!precommits.is_empty());
    assert!(
        precommits
            .iter()
            .all(|message| *message == Message::Precommit(vote(1, 0, None))),
        "only the original nil precommit is ever sent: {precommits:?}"
    );
}

// ----- key ring: a validator's key rotated by the validator set -----------------

/// Validator `rotated` of a four-validator fixture has its key replaced by
/// `new_key` from height 2 on: `before` is the set of height 1, `after`
/// the set from height 2. The rotated validator proposes none of round 0
/// of height 2, so its votes there answer other validators' proposals.
struct Rotation {
    fixture: Fixture,
    rotated: usize,
    new_key: SigningKey,
    after: ValidatorSet,
}

impl Rotation {
    fn new() -> Rotation {
        let fixture = Fixture::new(4);
        let new_key = SigningKey::from_bytes(&[0xA7; 32]);
        let new = ValidatorKey::from(&new_key.verifying_key());
        let (rotated, after) = (0..4)
            .map(|rotated| {
                let after = ValidatorSet::new(
                    fixture
                        .keys
                        .iter()
                        .enumerate()
                        .map(|(index, key)| Validator {
                            key: if index == rotated {
                                new
                            } else {
                                ValidatorKey::from(&key.verifying_key())
                            },
                            power: 1,
                        })
                        .collect(),
                )
                .unwrap();
                (rotated, after)
            })
            .find(|(_, after)| after.proposer(Height(2), Round(0)).key != new)
            .unwrap();
        Rotation {
            fixture,
            rotated,
            new_key,
            after,
        }
    }

    fn old_key(&self) -> SigningKey {
        self.fixture.keys[self.rotated].clone()
    }

    fn old_public(&self) -> ValidatorKey {
        ValidatorKey::from(&self.old_key().verifying_key())
    }

    fn new_public(&self) -> ValidatorKey {
        ValidatorKey::from(&self.new_key.verifying_key())
    }

    /// The key of validator `index` in the set from height 2.
    fn signer_after(&self, index: usize) -> SigningKey {
        if index == self.rotated {
            self.new_key.clone()
        } else {
            self.fixture.keys[index].clone()
        }
    }

    /// Validators other than the rotated one, first `count` of them.
    fn others(&self, count: usize) -> Vec<usize> {
        self.fixture.others(self.rotated, count)
    }

    fn sign_after(&self, index: usize, message: Message) -> SignedMessage {
        SignedMessage::sign(CHAIN, message, &self.signer_after(index))
    }

    /// The proposal of (2, 0) for `value`, by its proposer in `after`.
    fn proposal_at_2(&self, value: &Value) -> SignedMessage {
        let proposer = self.after.proposer(Height(2), Round(0)).key;
        let index = (0..4)
            .find(|&index| {
                ValidatorKey::from(&self.signer_after(index).verifying_key()) == proposer
            })
            .unwrap();
        self.sign_after(
            index,
            Message::Proposal(Proposal {
                height: Height(2),
                round: Round(0),
                valid_round: None,
                value: value.clone(),
            }),
        )
    }
}

/// The signers of the messages broadcast in `actions`.
fn broadcast_signers(actions: &[Action]) -> Vec<ValidatorKey> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Broadcast(message) => Some(message.validator),
            _ => None,
        })
        .collect()
}

fn start_height(machine: &mut Consensus, height: u64, validators: &ValidatorSet) -> Vec<Action> {
    machine
        .handle(Input::StartHeight {
            height: Height(height),
            validators: validators.clone(),
        })
        .actions
}

#[test]
fn a_validator_signs_with_the_key_in_the_set_at_each_height() {
    let rotation = Rotation::new();
    // The ring's order does not matter: the set decides.
    for ring in [
        vec![rotation.old_key(), rotation.new_key.clone()],
        vec![rotation.new_key.clone(), rotation.old_key()],
    ] {
        let config = Config::with_signing_keys(CHAIN, ring);
        let (mut machine, _) =
            Consensus::new(config, rotation.fixture.set.clone(), Height(1), None).unwrap();
        assert_eq!(machine.own_key(), Some(rotation.old_public()));
        let actions = timeout(&mut machine, 1, 0, TimeoutStep::Propose);
        assert_eq!(broadcast_signers(&actions), vec![rotation.old_public()]);
        start_height(&mut machine, 2, &rotation.after);
        assert_eq!(machine.own_key(), Some(rotation.new_public()));
        let actions = timeout(&mut machine, 2, 0, TimeoutStep::Propose);
        assert_eq!(broadcast_signers(&actions), vec![rotation.new_public()]);
        assert!(machine
            .persisted_state()
            .own_messages
            .iter()
            .all(|message| message.validator == rotation.new_public()));
    }
}

#[test]
fn a_rotated_out_key_never_signs_after_the_effective_height() {
    let rotation = Rotation::new();
    // The old key first: preference never overrides the set.
    let config =
        Config::with_signing_keys(CHAIN, vec![rotation.old_key(), rotation.new_key.clone()]);
    let (mut machine, _) =
        Consensus::new(config, rotation.fixture.set.clone(), Height(1), None).unwrap();
    // At height 1 a vote of the old key counts.
    let other = rotation.others(1)[0];
    assert_eq!(
        disposition(&mut machine, rotation.fixture.prevote(other, 1, 0, None)),
        Some(Disposition::Accepted)
    );
    let mut actions = start_height(&mut machine, 2, &rotation.after);
    // From height 2 on it counts for nothing, even signed by this node.
    let stale = SignedMessage::sign(
        CHAIN,
        Message::Prevote(vote(2, 0, None)),
        &rotation.old_key(),
    );
    assert_eq!(
        disposition(&mut machine, stale),
        Some(Disposition::Dropped(DropReason::NotValidator))
    );
    // A whole height: proposal, polka, precommits, commit.
    actions.extend(feed(&mut machine, rotation.proposal_at_2(&value(7))));
    actions.extend(verdict(&mut machine, 2, &value(7), true));
    for index in rotation.others(2) {
        actions.extend(feed(
            &mut machine,
            rotation.sign_after(index, Message::Prevote(vote(2, 0, Some(&value(7))))),
        ));
    }
    for index in rotation.others(2) {
        actions.extend(feed(
            &mut machine,
            rotation.sign_after(index, Message::Precommit(vote(2, 0, Some(&value(7))))),
        ));
    }
    let signers = broadcast_signers(&actions);
    assert!(!signers.is_empty());
    assert!(
        signers
            .iter()
            .all(|signer| *signer != rotation.old_public()),
        "the rotated-out key signed at height 2"
    );
    let certificate = actions
        .iter()
        .find_map(|action| match action {
            Action::Commit { certificate, .. } => Some(certificate.clone()),
            _ => None,
        })
        .expect("height 2 commits");
    certificate.verify(CHAIN, &rotation.after).unwrap();
    assert!(certificate
        .signatures
        .iter()
        .any(|signature| signature.validator == rotation.new_public()));
}

#[test]
fn a_node_whose_keys_are_all_out_of_the_set_only_observes() {
    let rotation = Rotation::new();
    let stranger = SigningKey::from_bytes(&[0x5A; 32]);
    let config = Config::with_signing_keys(CHAIN, vec![rotation.old_key(), stranger]);
    let (mut machine, mut actions) =
        Consensus::new(config, rotation.after.clone(), Height(2), None).unwrap();
    assert_eq!(machine.own_key(), None);
    actions.extend(timeout(&mut machine, 2, 0, TimeoutStep::Propose));
    actions.extend(feed(&mut machine, rotation.proposal_at_2(&value(7))));
    actions.extend(verdict(&mut machine, 2, &value(7), true));
    for index in rotation.others(3) {
        actions.extend(feed(
            &mut machine,
            rotation.sign_after(index, Message::Precommit(vote(2, 0, Some(&value(7))))),
        ));
    }
    assert!(actions
        .iter()
        .any(|action| matches!(action, Action::Commit { .. })));
    assert!(!actions
        .iter()
        .any(|action| matches!(action, Action::Broadcast(_) | Action::Persist(_))));
}

#[test]
fn a_restart_resumes_with_the_held_key_that_signed_at_the_height() {
    let rotation = Rotation::new();
    let config = Config::new(CHAIN, Some(rotation.new_key.clone()));
    let (mut machine, _) = Consensus::new(config, rotation.after.clone(), Height(2), None).unwrap();
    let _ = timeout(&mut machine, 2, 0, TimeoutStep::Propose);
    let persisted = machine.persisted_state();
    // Restarted holding both keys, the old one first: the persisted vote of
    // the new key is its own, and the new key goes on signing.
    let config =
        Config::with_signing_keys(CHAIN, vec![rotation.old_key(), rotation.new_key.clone()]);
    let (mut restarted, actions) =
        Consensus::new(config, rotation.after.clone(), Height(2), Some(persisted)).unwrap();
    assert_eq!(restarted.own_key(), Some(rotation.new_public()));
    let resent = broadcast_signers(&actions);
    assert!(!resent.is_empty());
    assert!(resent.iter().all(|signer| *signer == rotation.new_public()));
    let actions = timeout(&mut restarted, 2, 0, TimeoutStep::Prevote);
    assert_eq!(broadcast_signers(&actions), vec![rotation.new_public()]);
}

#[test]
fn a_persisted_vote_of_a_key_the_set_does_not_name_is_refused_on_restart() {
    let rotation = Rotation::new();
    // Height 2 started by mistake with the set of height 1: the old key
    // voted there.
    let config = Config::new(CHAIN, Some(rotation.old_key()));
    let (mut machine, _) = Consensus::new(
        config.clone(),
        rotation.fixture.set.clone(),
        Height(2),
        None,
    )
    .unwrap();
    let _ = timeout(&mut machine, 2, 0, TimeoutStep::Propose);
    let persisted = machine.persisted_state();
    assert!(!persisted.own_messages.is_empty());
    let error =
        Consensus::new(config, rotation.after.clone(), Height(2), Some(persisted)).unwrap_err();
    assert_eq!(error, ConsensusError::PersistedStateForeign);
}

#[test]
fn a_key_installed_at_run_time_signs_once_the_set_names_it() {
    let rotation = Rotation::new();
    // Installed ahead of the rotation: the old key signs to the end of
    // height 1, the new one from height 2.
    let config = Config::new(CHAIN, Some(rotation.old_key()));
    let (mut machine, _) =
        Consensus::new(config, rotation.fixture.set.clone(), Height(1), None).unwrap();
    let step = machine.add_signing_key(rotation.new_key.clone()).unwrap();
    assert!(broadcast_signers(&step.actions).is_empty());
    assert_eq!(machine.own_key(), Some(rotation.old_public()));
    start_height(&mut machine, 2, &rotation.after);
    assert_eq!(machine.own_key(), Some(rotation.new_public()));
    // The old key lost: an observer at height 2 until the new key is
    // installed, then a validator at once.
    let config = Config::new(CHAIN, None);
    let (mut machine, _) = Consensus::new(config, rotation.after.clone(), Height(2), None).unwrap();
    assert_eq!(machine.own_key(), None);
    assert!(broadcast_signers(&timeout(&mut machine, 2, 0, TimeoutStep::Propose)).is_empty());
    let step = machine.add_signing_key(rotation.new_key.clone()).unwrap();
    assert!(step
        .actions
        .iter()
        .any(|action| matches!(action, Action::Persist(_))));
    assert_eq!(machine.own_key(), Some(rotation.new_public()));
    let actions = timeout(&mut machine, 2, 0, TimeoutStep::Prevote);
    assert_eq!(broadcast_signers(&actions), vec![rotation.new_public()]);
}

#[test]
fn a_key_ring_refuses_a_repeated_key_and_more_keys_than_it_holds() {
    let fixture = Fixture::new(4);
    let repeated = Config::with_signing_keys(CHAIN, vec![fixture.keys[0].clone(); 2]);
    assert_eq!(
        Consensus::new(repeated, fixture.set.clone(), Height(1), None).unwrap_err(),
        ConsensusError::DuplicateSigningKey(ValidatorKey::from(&fixture.keys[0].verifying_key()))
    );
    let max = custody_consensus::machine::SIGNING_KEYS_MAX;
    let many: Vec<SigningKey> = (0..=max)
        .map(|index| SigningKey::from_bytes(&[0x80 + index as u8; 32]))
        .collect();
    let too_many = Config::with_signing_keys(CHAIN, many.clone());
    assert_eq!(
        Consensus::new(too_many, fixture.set.clone(), Height(1), None).unwrap_err(),
        ConsensusError::TooManySigningKeys {
            count: max + 1,
            max
        }
    );
    let full = Config::with_signing_keys(CHAIN, many[..max].to_vec());
    let (mut machine, _) = Consensus::new(full, fixture.set.clone(), Height(1), None).unwrap();
    assert!(
        machine.add_signing_key(many[0].clone()).is_ok(),
        "a held key again changes nothing"
    );
    assert!(machine.add_signing_key(many[max].clone()).is_err());
}
