//! Cost of checking one commit certificate, as every node does for each
//! synced block and each proposal's previous certificate, and as an
//! auditor does for every block.
//!
//! `cargo bench --bench certificate` (from the workspace root). For each
//! number of signers it measures:
//!
//! - `verify`: `CommitCertificate::verify`, the one check (signers, power,
//!   then one strict ed25519 batch);
//! - `plain_batch`: the same signatures through the plain batch that
//!   certificates were checked with before strictness (no weak-key or
//!   small-order checks): the cost to match;
//! - `strict_one_by_one`: `verify_strict` on each signature in turn, the
//!   strict check without a batch;
//! - `strict_prechecks`: only what the strict batch adds to the plain one
//!   (the weak-key check on each decompressed key, the byte checks of each
//!   signature), so that the difference between the first two is seen
//!   apart from the noise of a loaded machine.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use custody_format::certificate::{CommitCertificate, CommitSignature, CommitVote, VotingPower};
use custody_format::signature;
use custody_format::{BlockHash, Height, PublicKey, Round, Signature, Validator};
use ed25519_dalek::SigningKey;

const CHAIN: &str = "custody-bench";

struct Set(Vec<Validator>);

impl VotingPower for Set {
    fn voting_power_of(&self, key: &PublicKey) -> Option<u64> {
        self.0
            .binary_search_by(|v| v.key.cmp(key))
            .ok()
            .map(|index| self.0[index].power)
    }
    fn voting_power_total(&self) -> u128 {
        self.0.iter().map(|v| u128::from(v.power)).sum()
    }
}

fn fixture(validators: usize) -> (Set, CommitCertificate) {
    let keys: Vec<SigningKey> = (0..validators as u64)
        .map(|index| {
            SigningKey::from_bytes(&custody_format::encoding::sha256(&index.to_le_bytes()).0)
        })
        .collect();
    let mut set: Vec<Validator> = keys
        .iter()
        .map(|key| Validator {
            key: signature::public_key_of(key),
            power: 1,
        })
        .collect();
    set.sort_by_key(|v| v.key);
    let block_hash = BlockHash([0x5a; 32]);
    let vote = CommitVote::new(CHAIN, Height(1000), Round(0), block_hash).signing_bytes();
    let certificate = CommitCertificate::new(
        Height(1000),
        Round(0),
        block_hash,
        keys.iter()
            .map(|key| CommitSignature {
                validator: signature::public_key_of(key),
                signature: signature::sign(key, &vote),
            })
            .collect(),
    );
    (Set(set), certificate)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("certificate");
    for signers in [4usize, 7, 16] {
        let (set, certificate) = fixture(signers);
        certificate
            .verify(CHAIN, &set)
            .expect("the fixture certificate verifies");
        group.bench_with_input(BenchmarkId::new("verify", signers), &signers, |b, _| {
            b.iter(|| black_box(&certificate).verify(CHAIN, black_box(&set)))
        });
        group.bench_with_input(
            BenchmarkId::new("plain_batch", signers),
            &signers,
            |b, _| {
                b.iter(|| {
                    let message = black_box(&certificate).vote_bytes(CHAIN);
                    let items: Vec<(PublicKey, &[u8], Signature)> = certificate
                        .signatures
                        .iter()
                        .map(|s| (s.validator, message.as_slice(), s.signature))
                        .collect();
                    assert!(signature::verify_batch(&items));
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("strict_one_by_one", signers),
            &signers,
            |b, _| {
                b.iter(|| {
                    let message = black_box(&certificate).vote_bytes(CHAIN);
                    for s in &certificate.signatures {
                        assert!(signature::verify_strict(
                            &s.validator,
                            &message,
                            &s.signature
                        ));
                    }
                })
            },
        );
        let decompressed: Vec<ed25519_dalek::VerifyingKey> = certificate
            .signatures
            .iter()
            .map(|s| ed25519_dalek::VerifyingKey::from_bytes(&s.validator.0))
            .collect::<Result<_, _>>()
            .expect("fixture keys decompress");
        group.bench_with_input(
            BenchmarkId::new("strict_prechecks", signers),
            &signers,
            |b, _| {
                b.iter(|| {
                    for (key, s) in decompressed.iter().zip(&black_box(&certificate).signatures) {
                        assert!(!key.is_weak() && signature::has_strict_form(&s.signature));
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
