//! Property tests for the canonical encoding: decode ∘ encode = identity,
//! and arbitrary bytes never panic the decoder or the state machine.

use custody_consensus::{
    BlockHash, CommitCertificate, CommitSignature, Config, Consensus, DecodeError, Height, Input,
    Message, Proposal, Round, SignatureBytes, SignedMessage, Validator, ValidatorKey, ValidatorSet,
    Value, Vote,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const MESSAGE_BYTES_MAX: usize = 64 * 1024;

fn arb_hash() -> impl Strategy<Value = BlockHash> {
    any::<[u8; 32]>().prop_map(BlockHash)
}

fn arb_vote() -> impl Strategy<Value = Vote> {
    (any::<u64>(), any::<u64>(), proptest::option::of(arb_hash())).prop_map(
        |(height, round, block_hash)| Vote {
            height: Height(height),
            round: Round(round),
            block_hash,
        },
    )
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u8>(), 0..256),
            arb_hash()
        )
            .prop_map(
                |(height, round, valid_round, bytes, hash)| Message::Proposal(Proposal {
                    height: Height(height),
                    round: Round(round),
                    valid_round: valid_round.map(Round),
                    value: Value { bytes, hash },
                })
            ),
        arb_vote().prop_map(Message::Prevote),
        arb_vote().prop_map(Message::Precommit),
    ]
}

fn arb_signed() -> impl Strategy<Value = SignedMessage> {
    (
        "[a-z0-9-]{0,24}",
        arb_message(),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 64),
    )
        .prop_map(|(chain_id, message, validator, signature)| {
            let mut bytes = [0u8; 64];
            bytes.copy_from_slice(&signature);
            SignedMessage {
                chain_id,
                message,
                validator: ValidatorKey(validator),
                signature: SignatureBytes(bytes),
            }
        })
}

proptest! {
    #[test]
    fn signed_message_decode_of_encode_is_identity(message in arb_signed()) {
        let bytes = message.encode();
        prop_assert_eq!(bytes.len(), message.encoded_len());
        prop_assert_eq!(SignedMessage::decode(&bytes, MESSAGE_BYTES_MAX).unwrap(), message);
    }

    #[test]
    fn signed_message_with_trailing_bytes_is_refused(message in arb_signed(), extra in proptest::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = message.encode();
        bytes.extend_from_slice(&extra);
        prop_assert!(SignedMessage::decode(&bytes, MESSAGE_BYTES_MAX).is_err());
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SignedMessage::decode(&bytes, MESSAGE_BYTES_MAX);
    }

    #[test]
    fn certificate_decode_of_encode_is_identity(
        height in any::<u64>(),
        round in any::<u64>(),
        hash in arb_hash(),
        signers in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 64)), 0..8),
    ) {
        let certificate = CommitCertificate {
            height: Height(height),
            round: Round(round),
            block_hash: hash,
            signatures: signers
                .into_iter()
                .map(|(key, signature)| {
                    let mut bytes = [0u8; 64];
                    bytes.copy_from_slice(&signature);
                    CommitSignature { validator: ValidatorKey(key), signature: SignatureBytes(bytes) }
                })
                .collect(),
        };
        let bytes = postcard::to_allocvec(&certificate).unwrap();
        prop_assert_eq!(postcard::from_bytes::<CommitCertificate>(&bytes).unwrap(), certificate.clone());
        let json = serde_json::to_string(&certificate).unwrap();
        prop_assert_eq!(serde_json::from_str::<CommitCertificate>(&json).unwrap(), certificate);
    }

    /// Well-formed but hostile messages (random fields, wrong signatures)
    /// never panic the state machine.
    #[test]
    fn hostile_messages_never_panic_the_state_machine(messages in proptest::collection::vec(arb_signed(), 1..20)) {
        let keys: Vec<SigningKey> = (0..4).map(|index| SigningKey::from_bytes(&[index as u8 + 1; 32])).collect();
        let set = ValidatorSet::new(keys.iter().map(|key| Validator { key: ValidatorKey::from(&key.verifying_key()), power: 1 }).collect()).unwrap();
        let (mut machine, _) = Consensus::new(Config::new("custody-test", Some(keys[0].clone())), set, Height(1), None).unwrap();
        for mut message in messages {
            message.chain_id = "custody-test".to_owned();
            let _ = machine.handle(Input::Message(message));
        }
    }
}

#[test]
fn oversized_bytes_are_refused_before_parsing() {
    let bytes = vec![0u8; 100];
    assert_eq!(
        SignedMessage::decode(&bytes, 99),
        Err(DecodeError::TooLarge { len: 100, max: 99 })
    );
}

#[test]
fn overlong_varint_is_refused_as_not_canonical() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let message = SignedMessage::sign(
        "c",
        Message::Prevote(Vote {
            height: Height(1),
            round: Round(0),
            block_hash: None,
        }),
        &key,
    );
    let bytes = message.encode();
    // Layout: chain id length (1), "c", enum tag (2 = Prevote), height 1.
    assert_eq!(&bytes[..4], &[1, b'c', 1, 1]);
    let mut overlong = bytes[..3].to_vec();
    overlong.extend_from_slice(&[0x81, 0x00]); // 1 as a two-byte varint
    overlong.extend_from_slice(&bytes[4..]);
    assert!(SignedMessage::decode(&overlong, 1024).is_err());
}

#[test]
fn persisted_state_survives_a_postcard_round_trip() {
    let keys: Vec<SigningKey> = (0..4)
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
    // Find a validator that proposes height 1, round 0, and let it propose.
    let proposer = keys
        .iter()
        .position(|key| {
            ValidatorKey::from(&key.verifying_key()) == set.proposer(Height(1), Round(0)).key
        })
        .unwrap();
    let (mut machine, _) = Consensus::new(
        Config::new("custody-test", Some(keys[proposer].clone())),
        set.clone(),
        Height(1),
        None,
    )
    .unwrap();
    let actions = machine
        .handle(Input::ProposalValue {
            height: Height(1),
            round: Round(0),
            value: Value {
                bytes: vec![1, 2, 3],
                hash: BlockHash([9; 32]),
            },
        })
        .actions;
    let persisted = actions
        .iter()
        .rev()
        .find_map(|action| match action {
            custody_consensus::Action::Persist(state) => Some(state.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(persisted.own_messages.len(), 2, "proposal and prevote");
    let bytes = postcard::to_allocvec(&persisted).unwrap();
    let decoded: custody_consensus::PersistedState = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(decoded, persisted);
    let (restarted, _) = Consensus::new(
        Config::new("custody-test", Some(keys[proposer].clone())),
        set,
        Height(1),
        Some(decoded),
    )
    .unwrap();
    assert_eq!(restarted.persisted_state(), persisted);
}
