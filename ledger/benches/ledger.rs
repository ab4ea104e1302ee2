//! Ledger throughput next to the machine's own limit, measured in the same
//! run: ed25519 batch verification rate.
//!
//! Run: `cargo bench -p custody-ledger --bench ledger`
//!
//! - `apply`: replay blocks of a realistic mix (register, offer, accept,
//!   grant, record access) through `apply_block` on the in-memory state,
//!   signatures included (one ed25519 batch per block).
//! - `verify_chain`: full chain verification from genesis over the same
//!   blocks (decode, re-hash, batch signatures across threads, certificates,
//!   replay).
//! - `ed25519_batch`: batch verification of 1024 signatures by distinct
//!   keys, the machine's limit for both.
//!
//! After criterion's reports, a summary prints each rate as a ratio of the
//! batch rate (single core) and of batch rate × cores.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use custody_ledger::block::Block;
use custody_ledger::certificate::CommitCertificate;
use custody_ledger::encoding;
use custody_ledger::state::{self, MemoryState};
use custody_ledger::testkit::{seed_key, Workload};
use custody_ledger::types::{PublicKey, Signature};
use custody_ledger::verify::{self, MemorySource, VerifyOptions};
use custody_ledger::Genesis;

const BLOCKS: usize = 40;
const TXS_PER_BLOCK: usize = 250;
const BATCH: usize = 1024;

struct Fixture {
    genesis: Genesis,
    blocks: Vec<(Block, CommitCertificate)>,
    transactions: u64,
    source: MemorySource,
    batch: Vec<(PublicKey, Vec<u8>, Signature)>,
}

fn fixture() -> Fixture {
    let mut w = Workload::new(4, 42);
    for _ in 0..BLOCKS {
        if let Err(e) = w.step(TXS_PER_BLOCK) {
            panic!("workload block refused: {e}");
        }
    }
    let blocks = w.chain.blocks.clone();
    let transactions = blocks
        .iter()
        .map(|(b, _)| b.transactions.len() as u64)
        .sum();
    let source = MemorySource::from_blocks(blocks.iter().map(|(b, c)| (b, c)));
    let batch = (0..BATCH)
        .map(|i| {
            let key = seed_key(&format!("bench/{i}"));
            let message = format!("custody bench message {i}").into_bytes();
            let signature = encoding::sign(&key, "custody/bench/v1", &message);
            (
                encoding::public_key_of(&key),
                encoding::signing_bytes("custody/bench/v1", &message),
                signature,
            )
        })
        .collect();
    Fixture {
        genesis: w.chain.federation.genesis.clone(),
        blocks,
        transactions,
        source,
        batch,
    }
}

fn batch_verify(f: &Fixture) {
    let items: Vec<(PublicKey, &[u8], Signature)> = f
        .batch
        .iter()
        .map(|(k, m, s)| (*k, m.as_slice(), *s))
        .collect();
    assert!(encoding::verify_many(black_box(&items)));
}

fn apply_all(f: &Fixture) -> MemoryState {
    let mut state = MemoryState::from_genesis(&f.genesis);
    for (block, _) in &f.blocks {
        match state::apply_block(&state, block) {
            Ok(changes) => state.apply(changes),
            Err(e) => panic!("replay refused: {e}"),
        }
    }
    state
}

fn replay_without_signatures(f: &Fixture) -> MemoryState {
    let mut state = MemoryState::from_genesis(&f.genesis);
    for (block, _) in &f.blocks {
        match state::apply_block_with(&state, block, state::Signatures::AlreadyVerified) {
            Ok(changes) => state.apply(changes),
            Err(e) => panic!("replay refused: {e}"),
        }
    }
    state
}

fn verify_all(f: &Fixture) {
    if let Err(e) = verify::verify_chain(&f.genesis, &f.source, VerifyOptions::default(), |_| {}) {
        panic!("verification failed: {e}");
    }
}

/// Best of `runs` timings of `work`, in seconds.
fn best_seconds(runs: usize, mut work: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn summary(f: &Fixture) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // Interleave the four measurements in rounds so that each sees the same
    // machine conditions (the development machine is shared), and keep the
    // best of each.
    let (mut batch, mut apply, mut verify, mut replay) =
        (f64::INFINITY, f64::INFINITY, f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        batch = batch.min(best_seconds(4, || batch_verify(f)));
        apply = apply.min(best_seconds(1, || drop(apply_all(f))));
        verify = verify.min(best_seconds(1, || verify_all(f)));
        replay = replay.min(best_seconds(1, || drop(replay_without_signatures(f))));
    }
    let batch_rate = BATCH as f64 / batch;
    let apply_rate = f.transactions as f64 / apply;
    let verify_rate = f.transactions as f64 / verify;
    let replay_rate = f.transactions as f64 / replay;
    let signatures_per_tx = {
        let (report, _) =
            verify::verify_chain(&f.genesis, &f.source, VerifyOptions::default(), |_| {})
                .unwrap_or_else(|e| panic!("{e}"));
        report.signatures as f64 / report.transactions as f64
    };
    println!();
    println!(
        "Ledger summary ({} blocks, {} transactions, {cores} cores)",
        f.blocks.len(),
        f.transactions
    );
    println!("  ed25519 batch verification: {batch_rate:>10.0} signatures/s (one core)");
    println!(
        "  apply (mix):                {apply_rate:>10.0} tx/s  = {:.2} x batch rate",
        apply_rate / batch_rate
    );
    println!(
        "  verify chain:               {verify_rate:>10.0} tx/s  = {:.2} x batch rate, {:.2} x batch rate x cores ({signatures_per_tx:.2} signatures per tx)",
        verify_rate / batch_rate,
        verify_rate / (batch_rate * cores as f64)
    );
    println!("  replay without signatures:  {replay_rate:>10.0} tx/s  (the rules alone, one core)");
}

fn main() {
    let f = fixture();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("ed25519_batch_1024", |b| b.iter(|| batch_verify(&f)));
    group.throughput(Throughput::Elements(f.transactions));
    group.bench_function("apply_mix", |b| b.iter(|| apply_all(&f)));
    group.bench_function("verify_chain", |b| b.iter(|| verify_all(&f)));
    group.finish();
    c.final_summary();

    // `cargo test --benches` runs each bench once as a smoke test; the
    // summary is for `cargo bench` only.
    if std::env::args().any(|a| a == "--bench") {
        summary(&f);
    }
}
