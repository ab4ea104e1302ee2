//! `audit verify` on an export of at least a million transactions, next to
//! the machine's own limit measured in the same run.
//!
//! Run: `cargo bench -p custody-ledger --bench audit_verify`
//! (set `CUSTODY_AUDIT_BENCH_TXS` for another size; `cargo test` runs this
//! target without `--bench` and it then returns at once).
//!
//! 1. Generates a chain with fixed seed keys: four departments, 2,000
//!    clerks, then blocks of 5,000 transactions (one in five registers a
//!    document, the rest record reads of earlier documents by clerks of
//!    the custodian). Bodies are built in order against the state;
//!    signatures are made on every core; each block is applied without
//!    re-checking signatures, certified by the four validators and
//!    streamed into an export file, so memory holds one block at a time
//!    plus the archive state.
//! 2. Measures the machine's ed25519 batch-verification rate on one core
//!    (batches of 64 signatures by distinct keys, for about 3 s).
//! 3. Verifies the export exactly as `custody audit verify --export` does
//!    (framing, trailer and export hash, hash links, Merkle roots, every
//!    signature batch-verified, every certificate, full replay) and prints
//!    tx/s beside batch rate × cores, as a ratio.

use std::io::BufWriter;
use std::time::{Duration, Instant};

use custody_ledger::encoding::{self, public_key_of};
use custody_ledger::export::{self, ExportWriter};
use custody_ledger::state::{self, MemoryState, Signatures};
use custody_ledger::testkit::{certify_with, department, seed_key, Federation};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{
    Classification, DocumentId, Fixity, Format, Nonce, PublicKey, Retention, Role, Round,
    Signature, Timestamp, WrappedKey,
};
use custody_ledger::verify::VerifyOptions;
use ed25519_dalek::SigningKey;

const DEPARTMENTS: usize = 4;
const CLERKS_PER_DEPARTMENT: usize = 500;
const BLOCK_TXS: usize = 5_000;
const CHAIN_ID: &str = "custody-audit-bench";
const BATCH: usize = 64;

struct Clerk {
    key: SigningKey,
    public: PublicKey,
    department: usize,
    next_nonce: u64,
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Sign `(body, key index, nonce)` triples on every core, keeping order.
fn sign_all(unsigned: Vec<(TxBody, usize, u64)>, keys: &[SigningKey]) -> Vec<SignedTransaction> {
    let threads = cores();
    let per = unsigned.len().div_ceil(threads).max(1);
    let mut out = Vec::with_capacity(unsigned.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = unsigned
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(body, k, nonce)| {
                            SignedTransaction::sign(
                                body.clone(),
                                &keys[*k],
                                Nonce(*nonce),
                                CHAIN_ID,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
    });
    out
}

struct Generated {
    transactions: u64,
    blocks: u64,
    bytes: u64,
    elapsed: Duration,
}

fn generate(path: &std::path::Path, target_txs: u64) -> Generated {
    let started = Instant::now();
    let federation = Federation::new(DEPARTMENTS, CHAIN_ID);
    let genesis = federation.genesis.clone();
    let validators = federation.validators.clone();
    let mut state = MemoryState::from_genesis(&genesis);
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ExportWriter::new(BufWriter::with_capacity(1 << 20, file), &genesis).unwrap();
    let slugs: Vec<String> = genesis
        .departments
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    // Signing keys: admins first, then clerks.
    let mut keys: Vec<SigningKey> = slugs
        .iter()
        .map(|s| seed_key(&format!("{s}/admin")))
        .collect();
    let mut admin_nonce = [1u64; DEPARTMENTS];
    let mut clerks: Vec<Clerk> = Vec::new();
    for (d, _) in slugs.iter().enumerate() {
        for i in 0..CLERKS_PER_DEPARTMENT {
            let key = seed_key(&format!("{}/bench-clerk-{i}", slugs[d]));
            clerks.push(Clerk {
                public: public_key_of(&key),
                key,
                department: d,
                next_nonce: 1,
            });
        }
    }
    keys.extend(clerks.iter().map(|c| c.key.clone()));
    let mut last_certificate = None;
    let mut transactions = 0u64;
    let mut blocks = 0u64;
    // Documents by custodian department, as (id, index in `docs`).
    let mut docs: Vec<(DocumentId, usize)> = Vec::new();
    let mut next_doc = 0u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move |below: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % below as u64) as usize
    };
    let mut time = genesis.genesis_time.0;
    let mut cursor = 0usize;
    while transactions < target_txs {
        time += 1000;
        let mut unsigned: Vec<(TxBody, usize, u64)> = Vec::with_capacity(BLOCK_TXS);
        if blocks == 0 {
            for (i, c) in clerks.iter().enumerate() {
                let d = c.department;
                unsigned.push((
                    TxBody::EnrollMember {
                        member: c.public,
                        department: department(&slugs[d]),
                        name: format!("clerk {i}"),
                        roles: vec![Role::Clerk],
                        clearance: Classification::Secret,
                    },
                    d,
                    admin_nonce[d],
                ));
                admin_nonce[d] += 1;
            }
        } else {
            // Reads of distinct documents (a document at most once per
            // block, so each names its latest committed event), then
            // registrations to fill the block.
            let reads = if docs.len() >= 2 * BLOCK_TXS {
                BLOCK_TXS * 4 / 5
            } else {
                0
            };
            for _ in 0..reads {
                let (id, custodian) = docs[cursor % docs.len()].clone();
                cursor += 1;
                let Some(document) = state.documents.get(&id) else {
                    continue;
                };
                let k = custodian * CLERKS_PER_DEPARTMENT + random(CLERKS_PER_DEPARTMENT);
                let clerk = &mut clerks[k];
                unsigned.push((
                    TxBody::RecordAccess {
                        document: id,
                        previous_event: document.latest_event,
                        purpose: "verify a benefit claim".to_string(),
                        ciphertext_sha256: document.ciphertext.sha256,
                    },
                    DEPARTMENTS + k,
                    clerk.next_nonce,
                ));
                clerk.next_nonce += 1;
            }
            while unsigned.len() < BLOCK_TXS {
                let custodian = random(DEPARTMENTS);
                let number = next_doc;
                next_doc += 1;
                let id = DocumentId::new(format!("{}/2026/{number:09}", slugs[custodian])).unwrap();
                let k = custodian * CLERKS_PER_DEPARTMENT + random(CLERKS_PER_DEPARTMENT);
                let clerk = &mut clerks[k];
                unsigned.push((
                    TxBody::Register {
                        document: id.clone(),
                        title: format!("Household register extract {number}"),
                        record_type: "household-register".to_string(),
                        department: department(&slugs[custodian]),
                        created: Timestamp(time),
                        classification: Classification::Internal,
                        retention: Retention::Years(30),
                        format: Format {
                            mime: "application/pdf".to_string(),
                            pronom: Some("fmt/354".to_string()),
                        },
                        plaintext: Fixity {
                            sha256: encoding::sha256(id.as_str().as_bytes()),
                            size_bytes: 200_000 + number,
                        },
                        ciphertext: Fixity {
                            sha256: encoding::sha256(format!("{id}/cipher").as_bytes()),
                            size_bytes: 200_040 + number,
                        },
                        subject_tag: None,
                        wrapped_key: WrappedKey(vec![5; 80]),
                    },
                    DEPARTMENTS + k,
                    clerk.next_nonce,
                ));
                clerk.next_nonce += 1;
                docs.push((id, custodian));
            }
        }
        let txs = sign_all(unsigned, &keys);
        let block = state::build_block(
            &state,
            txs,
            Timestamp(time),
            public_key_of(&validators[0]),
            last_certificate.take(),
        )
        .unwrap();
        let changes = match state::apply_block_with(&state, &block, Signatures::AlreadyVerified) {
            Ok(c) => c,
            Err(e) => panic!("generated block {} refused: {e}", blocks + 1),
        };
        state.apply(changes);
        let certificate = certify_with(&validators, CHAIN_ID, &block, Round(0));
        writer
            .push(&block.to_bytes(), &certificate.to_bytes())
            .unwrap();
        transactions += block.transactions.len() as u64;
        blocks += 1;
        last_certificate = Some(certificate);
        if blocks % 20 == 0 {
            eprintln!(
                "generated {blocks} blocks, {transactions} transactions ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let (trailer, _) = writer.finish().unwrap();
    assert_eq!(trailer.transactions, transactions);
    Generated {
        transactions,
        blocks,
        bytes: std::fs::metadata(path).unwrap().len(),
        elapsed: started.elapsed(),
    }
}

/// ed25519 batch verification rate (signatures per second) of `threads`
/// threads running at once, summed.
fn batch_rate(threads: usize) -> f64 {
    let rates: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(batch_rate_one)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    rates.iter().sum()
}

/// One thread's ed25519 batch verification rate (signatures per second).
fn batch_rate_one() -> f64 {
    let items: Vec<(PublicKey, Vec<u8>, Signature)> = (0..BATCH)
        .map(|i| {
            let key = seed_key(&format!("audit-bench/{i}"));
            let message = format!("custody audit bench message {i}").into_bytes();
            let signature = Signature(ed25519_dalek::Signer::sign(&key, &message).to_bytes());
            (public_key_of(&key), message, signature)
        })
        .collect();
    let borrowed: Vec<(PublicKey, &[u8], Signature)> = items
        .iter()
        .map(|(k, m, s)| (*k, m.as_slice(), *s))
        .collect();
    let started = Instant::now();
    let mut verified = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        assert!(encoding::verify_many(std::hint::black_box(&borrowed)));
        verified += BATCH as u64;
    }
    verified as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("audit_verify: run with `cargo bench -p custody-ledger --bench audit_verify`");
        return;
    }
    let target: u64 = std::env::var("CUSTODY_AUDIT_BENCH_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.export");
    let generated = generate(&path, target);
    println!(
        "export: {} transactions in {} blocks, {:.1} MB, generated in {:.1} s",
        generated.transactions,
        generated.blocks,
        generated.bytes as f64 / 1e6,
        generated.elapsed.as_secs_f64()
    );
    let cores = cores();
    let rate = batch_rate(1);
    let parallel_rate = batch_rate(cores);
    // As `custody audit verify` runs it: one checking thread per core plus
    // the replay thread (see cli/src/audit/source.rs).
    let options = VerifyOptions {
        threads: cores + 1,
        ..VerifyOptions::default()
    };
    let started = Instant::now();
    let (report, state, _) = export::verify_export(&path, None, options, |_| {}).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.transactions, generated.transactions);
    let tx_rate = report.transactions as f64 / seconds;
    let limit = rate * cores as f64;
    println!(
        "audit verify: {} transactions, {} signatures, {} documents in {:.1} s = {:.0} tx/s",
        report.transactions,
        report.signatures,
        state.documents.len(),
        seconds,
        tx_rate
    );
    println!(
        "ed25519 batch verification: {:.0} signatures/s per core x {} cores = {:.0}/s",
        rate, cores, limit
    );
    println!(
        "ed25519 batch verification on {cores} threads at once: {:.0}/s",
        parallel_rate
    );
    println!(
        "ratio (tx/s over batch rate x cores): {:.2} (target 0.6)",
        tx_rate / limit
    );
    println!(
        "ratio (tx/s over the {cores}-thread batch rate): {:.2}",
        tx_rate / parallel_rate
    );
    breakdown(&path, report.transactions, cores);
}

/// Where the time goes, one thread each: reading and decoding every block,
/// batch-verifying every signature, and replaying every block through the
/// state machine. With perfect overlap the verifier's bound is
/// `min(cores / (decode + signatures + replay), 1 / replay)` transactions
/// per second (per-transaction times).
fn breakdown(path: &std::path::Path, transactions: u64, cores: usize) {
    use custody_ledger::block::Block;
    use custody_ledger::types::Height;
    use custody_ledger::verify::BlockSource;
    let file = export::ExportFile::open(path).unwrap();
    let latest = file.latest_height().unwrap().0;
    let block_at = |h: u64| -> Block {
        encoding::decode(&file.raw_block(Height(h)).unwrap().unwrap()).unwrap()
    };
    let started = Instant::now();
    for h in 1..=latest {
        std::hint::black_box(block_at(h));
    }
    let decode = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for h in 1..=latest {
        assert!(custody_ledger::tx::verify_batch(&block_at(h).transactions).is_empty());
    }
    let signatures = (started.elapsed().as_secs_f64() - decode).max(0.0);
    let mut state = MemoryState::from_genesis(file.genesis());
    let started = Instant::now();
    for h in 1..=latest {
        let changes =
            state::apply_block_with(&state, &block_at(h), Signatures::AlreadyVerified).unwrap();
        state.apply(changes);
    }
    let replay = (started.elapsed().as_secs_f64() - decode).max(1e-9);
    let n = transactions as f64;
    // Decoding and signatures run on the checking threads, replay on its own.
    let bound = (cores as f64 / ((decode + signatures + replay) / n)).min(n / replay);
    println!(
        "one thread: read + decode {decode:.1} s ({:.0} tx/s); batch-verify signatures {signatures:.1} s ({:.0} tx/s); replay {replay:.1} s ({:.0} tx/s)",
        n / decode,
        n / signatures,
        n / replay,
    );
    println!("bound with perfect overlap on {cores} cores: {bound:.0} tx/s");
}
