//! The one certificate check, as consensus and the ledger both call it:
//! signers sorted and distinct, each a validator, more than 2/3 of the
//! power, every signature valid under strict ed25519.

use custody_format::certificate::{
    CertificateError, CommitCertificate, CommitSignature, CommitVote, VotingPower,
};
use custody_format::signature;
use custody_format::{BlockHash, Height, PublicKey, Round, Signature, Validator};
use ed25519_dalek::SigningKey;

const CHAIN: &str = "custody-test";

/// A validator set as plain sorted pairs: the trait is all a certificate
/// needs.
struct Pairs(Vec<Validator>);

impl VotingPower for Pairs {
    fn voting_power_of(&self, key: &PublicKey) -> Option<u64> {
        self.0.iter().find(|v| v.key == *key).map(|v| v.power)
    }
    fn voting_power_total(&self) -> u128 {
        self.0.iter().map(|v| u128::from(v.power)).sum()
    }
}

fn keys(count: u8) -> Vec<SigningKey> {
    (1..=count)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect()
}

fn certificate(signers: &[SigningKey], block_hash: BlockHash) -> CommitCertificate {
    let vote = CommitVote::new(CHAIN, Height(5), Round(1), block_hash).signing_bytes();
    CommitCertificate::new(
        Height(5),
        Round(1),
        block_hash,
        signers
            .iter()
            .map(|key| CommitSignature {
                validator: signature::public_key_of(key),
                signature: signature::sign(key, &vote),
            })
            .collect(),
    )
}

fn equal_power(keys: &[SigningKey]) -> Pairs {
    Pairs(
        keys.iter()
            .map(|key| Validator {
                key: signature::public_key_of(key),
                power: 1,
            })
            .collect(),
    )
}

#[test]
fn certificate_with_more_than_two_thirds_of_power_verifies() {
    let keys = keys(4);
    let set = equal_power(&keys);
    certificate(&keys[..3], BlockHash([9; 32]))
        .verify(CHAIN, &set)
        .unwrap();
}

/// A weak (small-order) key signs "almost every message": `verify`
/// accepts such a signature (and a certificate check that falls back to
/// `verify` when its batch fails did too), but strict ed25519 refuses it,
/// and so must a certificate, even when the weak key is a validator of the
/// set.
#[test]
fn certificate_refuses_a_signature_that_only_non_strict_ed25519_accepts() {
    // An order-8 point as the public key, the identity as R, s = 0:
    // valid under `verify` exactly when 8 divides H(R || A || M), which
    // one block hash in eight gives.
    let mut weak = [0u8; 32];
    weak.copy_from_slice(
        &hex::decode("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05").unwrap(),
    );
    let weak = PublicKey(weak);
    let mut forged = [0u8; 64];
    forged[0] = 1;
    let forged = Signature(forged);
    let block_hash = (0..=255u8)
        .map(|byte| BlockHash([byte; 32]))
        .find(|hash| {
            let vote = CommitVote::new(CHAIN, Height(5), Round(1), *hash).signing_bytes();
            signature::verify(&weak, &vote, &forged)
        })
        .expect("one hash in eight makes the forged signature valid under verify");
    let vote = CommitVote::new(CHAIN, Height(5), Round(1), block_hash).signing_bytes();
    assert!(!signature::verify_strict(&weak, &vote, &forged));

    let honest = keys(1);
    let set = Pairs(vec![
        Validator {
            key: weak,
            power: 3,
        },
        Validator {
            key: signature::public_key_of(&honest[0]),
            power: 1,
        },
    ]);
    let certificate = CommitCertificate::new(
        Height(5),
        Round(1),
        block_hash,
        vec![CommitSignature {
            validator: weak,
            signature: forged,
        }],
    );
    assert_eq!(
        certificate.verify(CHAIN, &set),
        Err(CertificateError::BadSignature(weak))
    );
}

#[test]
fn certificate_refuses_a_signature_with_a_non_canonical_s() {
    let keys = keys(4);
    let set = equal_power(&keys);
    let mut certificate = certificate(&keys[..3], BlockHash([9; 32]));
    // s + ℓ: the same scalar modulo ℓ, a second encoding of one signature.
    let order: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let entry = &mut certificate.signatures[1];
    let mut carry = 0u16;
    for (byte, add) in entry.signature.0[32..].iter_mut().zip(order) {
        let sum = u16::from(*byte) + u16::from(add) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    let culprit = entry.validator;
    assert_eq!(
        certificate.verify(CHAIN, &set),
        Err(CertificateError::BadSignature(culprit))
    );
}

#[test]
fn certificate_with_two_thirds_or_less_is_refused() {
    let keys = keys(3);
    let set = equal_power(&keys);
    assert_eq!(
        certificate(&keys[..2], BlockHash([9; 32])).verify(CHAIN, &set),
        Err(CertificateError::InsufficientPower {
            signed: 2,
            total: 3
        })
    );
}

#[test]
fn certificate_for_another_block_or_height_is_refused() {
    let keys = keys(4);
    let set = equal_power(&keys);
    let certificate = certificate(&keys, BlockHash([9; 32]));
    assert!(matches!(
        certificate.verify_commit_of(CHAIN, Height(5), &BlockHash([8; 32]), &set),
        Err(CertificateError::WrongBlock { .. })
    ));
    assert!(matches!(
        certificate.verify_commit_of(CHAIN, Height(6), &BlockHash([9; 32]), &set),
        Err(CertificateError::WrongHeight { .. })
    ));
    certificate
        .verify_commit_of(CHAIN, Height(5), &BlockHash([9; 32]), &set)
        .unwrap();
}
