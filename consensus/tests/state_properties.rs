//! Property tests of state transitions: random sequences of correctly
//! signed messages, timeouts, verdicts, proposal values, new heights and
//! news of work, fed to one validator (half of the time one that waits for
//! work at each new height). Whatever the sequence, the machine never panics,
//! never signs two different messages for one (height, round, kind), and
//! always persists a state covering an own message before sending it.

use std::collections::BTreeMap;

use custody_consensus::{
    Action, BlockHash, Config, Consensus, Height, Input, Message, PersistedState, Proposal, Round,
    SignedMessage, TimeoutEvent, TimeoutStep, Validator, ValidatorKey, ValidatorSet, Value, Vote,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const CHAIN: &str = "custody-test";

#[derive(Clone, Debug)]
enum Step {
    Proposal {
        signer: usize,
        height: u64,
        round: u64,
        value: u8,
        valid_round: Option<u64>,
    },
    Prevote {
        signer: usize,
        height: u64,
        round: u64,
        value: Option<u8>,
    },
    Precommit {
        signer: usize,
        height: u64,
        round: u64,
        value: Option<u8>,
    },
    Timeout {
        height: u64,
        round: u64,
        step: u8,
    },
    Verdict {
        height: u64,
        value: u8,
        valid: bool,
    },
    ProposalValue {
        height: u64,
        round: u64,
        value: u8,
    },
    StartHeight {
        height: u64,
    },
    WorkAvailable,
    Restart,
}

fn arb_step() -> impl Strategy<Value = Step> {
    let signer = 0..4usize;
    let height = 1..4u64;
    let round = 0..4u64;
    let value = 0..3u8;
    prop_oneof![
        (
            signer.clone(),
            height.clone(),
            round.clone(),
            value.clone(),
            proptest::option::of(0..3u64)
        )
            .prop_map(
                |(signer, height, round, value, valid_round)| Step::Proposal {
                    signer,
                    height,
                    round,
                    value,
                    valid_round
                }
            ),
        (
            signer.clone(),
            height.clone(),
            round.clone(),
            proptest::option::of(value.clone())
        )
            .prop_map(|(signer, height, round, value)| Step::Prevote {
                signer,
                height,
                round,
                value
            }),
        (
            signer,
            height.clone(),
            round.clone(),
            proptest::option::of(value.clone())
        )
            .prop_map(|(signer, height, round, value)| Step::Precommit {
                signer,
                height,
                round,
                value
            }),
        (height.clone(), round.clone(), 0..5u8).prop_map(|(height, round, step)| Step::Timeout {
            height,
            round,
            step
        }),
        (height.clone(), value.clone(), any::<bool>()).prop_map(|(height, value, valid)| {
            Step::Verdict {
                height,
                value,
                valid,
            }
        }),
        (height.clone(), round, value).prop_map(|(height, round, value)| Step::ProposalValue {
            height,
            round,
            value
        }),
        height.prop_map(|height| Step::StartHeight { height }),
        Just(Step::WorkAvailable),
        Just(Step::Restart),
    ]
}

fn value(height: u64, tag: u8) -> Value {
    let mut hash = [tag; 32];
    hash[0] = height as u8;
    Value {
        bytes: vec![tag, height as u8],
        hash: BlockHash(hash),
    }
}

fn vote(height: u64, round: u64, tag: Option<u8>) -> Vote {
    Vote {
        height: Height(height),
        round: Round(round),
        block_hash: tag.map(|tag| value(height, tag).hash),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_never_make_a_validator_sign_conflicting_messages(
        steps in proptest::collection::vec(arb_step(), 1..120),
        waits_for_work in any::<bool>(),
    ) {
        let keys: Vec<SigningKey> = (0..4).map(|index| SigningKey::from_bytes(&[index as u8 + 1; 32])).collect();
        let set = ValidatorSet::new(
            keys.iter().map(|key| Validator { key: ValidatorKey::from(&key.verifying_key()), power: 1 }).collect(),
        ).unwrap();
        let me = 0usize;
        let my_key = ValidatorKey::from(&keys[me].verifying_key());
        // Half of the runs wait for work at each new height.
        let config = || {
            let mut config = Config::new(CHAIN, Some(keys[me].clone()));
            config.timeouts.heartbeat_ms = waits_for_work.then_some(60_000);
            config
        };
        let mut durable: Option<PersistedState> = None;
        let mut height_committed = 0u64;
        let (mut machine, mut actions) = Consensus::new(config(), set.clone(), Height(1), None).unwrap();
        let mut signed: BTreeMap<(u64, u64, u8), Message> = BTreeMap::new();
        for step in steps {
            // Carry out the previous actions like a node would.
            for action in std::mem::take(&mut actions) {
                match action {
                    Action::Persist(state) => durable = Some(state),
                    Action::Broadcast(message) if message.validator == my_key => {
                        let persisted = durable.as_ref().expect("persisted before sending");
                        prop_assert!(persisted.own_messages.contains(&message), "persist covers the message");
                        let kind = match message.message {
                            Message::Proposal(_) => 0,
                            Message::Prevote(_) => 1,
                            Message::Precommit(_) => 2,
                        };
                        let slot = (message.height().0, message.round().0, kind);
                        if let Some(earlier) = signed.get(&slot) {
                            prop_assert_eq!(earlier, &message.message, "conflicting own message");
                        } else {
                            signed.insert(slot, message.message.clone());
                        }
                    }
                    Action::Commit { height, certificate, .. } => {
                        prop_assert!(certificate.verify(CHAIN, &set).is_ok());
                        height_committed = height_committed.max(height.0);
                    }
                    _ => {}
                }
            }
            let input = match step {
                Step::Proposal { signer, height, round, value: tag, valid_round } => Some(Input::Message(SignedMessage::sign(
                    CHAIN,
                    Message::Proposal(Proposal {
                        height: Height(height),
                        round: Round(round),
                        valid_round: valid_round.map(Round),
                        value: value(height, tag),
                    }),
                    &keys[signer],
                ))),
                Step::Prevote { signer, height, round, value } => Some(Input::Message(SignedMessage::sign(
                    CHAIN, Message::Prevote(vote(height, round, value)), &keys[signer]))),
                Step::Precommit { signer, height, round, value } => Some(Input::Message(SignedMessage::sign(
                    CHAIN, Message::Precommit(vote(height, round, value)), &keys[signer]))),
                Step::Timeout { height, round, step } => Some(Input::Timeout(TimeoutEvent {
                    height: Height(height),
                    round: Round(round),
                    step: [TimeoutStep::Propose, TimeoutStep::Prevote, TimeoutStep::Precommit, TimeoutStep::Rebroadcast, TimeoutStep::Heartbeat][usize::from(step)],
                })),
                Step::Verdict { height, value: tag, valid } => Some(Input::ValueVerdict {
                    height: Height(height), hash: value(height, tag).hash, valid }),
                Step::ProposalValue { height, round, value: tag } => Some(Input::ProposalValue {
                    height: Height(height), round: Round(round), value: value(height, tag) }),
                // The node's contract: after a commit, a later height.
                Step::StartHeight { height } if machine.is_decided() && height <= machine.height().0 => None,
                Step::StartHeight { height } => Some(Input::StartHeight { height: Height(height), validators: set.clone() }),
                Step::WorkAvailable => Some(Input::WorkAvailable),
                Step::Restart => {
                    // Crash: only the durable state survives.
                    let start = Height(height_committed.max(machine.height().0 - 1) + 1).max(machine.height());
                    let (restarted, boot) = Consensus::new(config(), set.clone(), start, durable.clone()).unwrap();
                    machine = restarted;
                    actions = boot;
                    None
                }
            };
            if let Some(input) = input {
                actions = machine.handle(input).actions;
            }
        }
    }
}
