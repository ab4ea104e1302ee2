//! A damaged store is detected, never trusted: a committed chain of
//! `BLOCKS` blocks, then seeded single-bit flips across the store's files,
//! truncations and deleted files. For each, `custody node check` (the
//! checks `node start` runs) and `custody audit verify --store` either
//! succeed on a store that still holds every committed block, byte for
//! byte, or fail with an error naming the store and the next step; neither
//! ever panics, dies by a signal or succeeds on a shorter chain.
//!
//! Prints the damage table kept in docs/reliability.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use custody_ledger::state;
use custody_ledger::store::Store;
use custody_ledger::testkit::Workload;
use custody_ledger::types::Height;
use rand::{Rng, SeedableRng};

const BINARY: &str = env!("CARGO_BIN_EXE_custody");

/// Workload steps; the workload's setup block comes first, so the
/// undamaged store holds one more block than this.
const BLOCKS: u64 = 1_000;
/// Transactions per block.
const TXS_PER_BLOCK: usize = 1;
/// Seeded single-bit flips.
const FLIPS: usize = 200;
const SEED: u64 = 13;

/// A node home holding the chain: config, genesis, data/ledger and the
/// consensus state naming the height after the last block (as a node that
/// committed it leaves it).
struct Pristine {
    _dir: tempfile::TempDir,
    home: PathBuf,
    /// Each block's and certificate's stored bytes, by height.
    blocks: Vec<(Vec<u8>, Vec<u8>)>,
    /// The committed height.
    height: u64,
}

fn pristine() -> Pristine {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    let data = home.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let mut workload = Workload::new(4, SEED);
    for _ in 0..BLOCKS {
        workload
            .step(TXS_PER_BLOCK)
            .expect("workload block applies");
    }
    let height = workload.chain.height().0;
    assert!(height >= BLOCKS);
    let genesis = &workload.chain.federation.genesis;
    let department = genesis.departments[0].id.to_string();
    let config = custody_node::config::DEFAULT_CONFIG_TOML.replace(
        "department = \"my-department\"",
        &format!("department = {department:?}"),
    );
    std::fs::write(home.join("config.toml"), config).expect("config");
    std::fs::write(
        home.join("genesis.json"),
        serde_json::to_string(genesis).expect("genesis json"),
    )
    .expect("genesis");
    let mut blocks = Vec::new();
    {
        let store = Store::open_or_init(&data.join("ledger"), genesis).expect("store");
        for (block, certificate) in &workload.chain.blocks {
            let changes = state::apply_block(&store, block).expect("block applies");
            store
                .commit(block, certificate, &changes)
                .expect("block commits");
        }
        for at in 1..=height {
            blocks.push((
                store.raw_block(Height(at)).expect("read").expect("block"),
                store
                    .raw_certificate(Height(at))
                    .expect("read")
                    .expect("certificate"),
            ));
        }
    }
    let state = custody_consensus::PersistedState {
        height: custody_consensus::Height(height + 1),
        round: custody_consensus::Round(0),
        step: custody_consensus::RoundStep::Propose,
        locked: None,
        valid: None,
        own_messages: Vec::new(),
        valid_proof: Vec::new(),
    };
    std::fs::write(
        data.join("consensus.state"),
        custody_node::consensus_state::encode(state).expect("state encodes"),
    )
    .expect("state");
    Pristine {
        _dir: dir,
        home,
        blocks,
        height,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

/// The store's files with their sizes, in name order.
fn store_files(ledger: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut dirs = vec![ledger.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_type().expect("type").is_dir() {
                dirs.push(path);
            } else {
                let size = entry.metadata().expect("metadata").len();
                out.push((
                    path.strip_prefix(ledger).expect("inside").to_path_buf(),
                    size,
                ));
            }
        }
    }
    out.sort();
    out
}

#[derive(Clone, Debug)]
enum Damage {
    Flip { file: PathBuf, offset: u64, bit: u8 },
    Truncate { file: PathBuf, to: u64 },
    Delete { file: PathBuf },
}

impl Damage {
    fn kind(&self) -> &'static str {
        match self {
            Damage::Flip { .. } => "single-bit flip",
            Damage::Truncate { .. } => "truncation",
            Damage::Delete { .. } => "deleted file",
        }
    }

    fn apply(&self, ledger: &Path) {
        match self {
            Damage::Flip { file, offset, bit } => {
                let path = ledger.join(file);
                let mut bytes = std::fs::read(&path).expect("read for flip");
                bytes[*offset as usize] ^= 1 << bit;
                std::fs::write(&path, bytes).expect("write flip");
            }
            Damage::Truncate { file, to } => {
                let handle = std::fs::OpenOptions::new()
                    .write(true)
                    .open(ledger.join(file))
                    .expect("open for truncation");
                handle.set_len(*to).expect("truncate");
            }
            Damage::Delete { file } => std::fs::remove_file(ledger.join(file)).expect("delete"),
        }
    }
}

/// Flips spread over the files in proportion to their size (every file
/// gets at least one), truncations of the largest file and of each other
/// file, and each file deleted.
fn damages(files: &[(PathBuf, u64)]) -> Vec<Damage> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    let mut out = Vec::new();
    for (file, size) in files.iter().filter(|(_, size)| *size > 0) {
        out.push(Damage::Flip {
            file: file.clone(),
            offset: rng.random_range(0..*size),
            bit: rng.random_range(0..8),
        });
    }
    while out.len() < FLIPS {
        let mut at = rng.random_range(0..total);
        for (file, size) in files {
            if at < *size {
                out.push(Damage::Flip {
                    file: file.clone(),
                    offset: at,
                    bit: rng.random_range(0..8),
                });
                break;
            }
            at -= size;
        }
    }
    for (file, size) in files.iter().filter(|(_, size)| *size > 0) {
        for to in [
            0,
            size / 2,
            size.saturating_sub(1),
            size.min(&1024).to_owned(),
        ] {
            if to < *size {
                out.push(Damage::Truncate {
                    file: file.clone(),
                    to,
                });
            }
        }
        out.push(Damage::Delete { file: file.clone() });
    }
    out
}

/// How one command ended on one damaged store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Exit 0, on a store holding every committed block.
    FullChain,
    /// Non-zero exit with an error naming the store and the next step.
    Refused,
    /// `node check` only: exit 0 at the full height, with a damaged block
    /// or certificate below the tail the start check links (see
    /// `HEAD_CHECK_TAIL_BLOCKS`); `audit verify --store` must refuse it.
    DamagedBelowTail,
}

/// Runs `custody ARGS`; panics (fails the test) on a signal, a panic
/// (exit 101), an error without the next step, or success on a store that
/// does not hold the full chain.
fn run(args: &[&str], damage: &Damage, expect_height: impl Fn(&str) -> bool) -> Outcome {
    let output = Command::new(BINARY)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run custody");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let Some(code) = output.status.code() else {
        panic!(
            "`custody {}` died by a signal after {damage:?}: {stderr}",
            args.join(" ")
        );
    };
    assert_ne!(
        code,
        101,
        "`custody {}` panicked after {damage:?}: {stderr}",
        args.join(" ")
    );
    if code == 0 {
        assert!(
            expect_height(&stdout),
            "`custody {}` succeeded without the full chain after {damage:?}: {stdout}",
            args.join(" ")
        );
        return Outcome::FullChain;
    }
    assert!(
        stderr.contains("next step:") || stderr.contains("is in use"),
        "`custody {}` failed without naming the next step after {damage:?}: {stderr}",
        args.join(" ")
    );
    Outcome::Refused
}

fn json_u64(stdout: &str, field: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(stdout).ok()?;
    value.get(field)?.as_u64()
}

/// Every committed block and certificate, byte for byte; or the first
/// that differs.
fn holds_every_block(ledger: &Path, pristine: &Pristine) -> Result<(), String> {
    let store = Store::open(ledger).map_err(|error| error.to_string())?;
    for height in 1..=pristine.height {
        let (block, certificate) = &pristine.blocks[(height - 1) as usize];
        if store.raw_block(Height(height)).ok().flatten().as_ref() != Some(block) {
            return Err(format!("block {height} differs"));
        }
        if store
            .raw_certificate(Height(height))
            .ok()
            .flatten()
            .as_ref()
            != Some(certificate)
        {
            return Err(format!("certificate {height} differs"));
        }
    }
    Ok(())
}

#[test]
fn a_damaged_store_is_refused_or_still_holds_every_committed_block() {
    let started = std::time::Instant::now();
    let pristine = pristine();
    let ledger_of = |home: &Path| home.join("data").join("ledger");
    let files = store_files(&ledger_of(&pristine.home));
    let cases = damages(&files);
    assert!(
        cases
            .iter()
            .filter(|d| matches!(d, Damage::Flip { .. }))
            .count()
            >= FLIPS
    );
    let work = tempfile::tempdir().expect("work dir");
    // (damage kind, command, outcome) -> count
    let mut table: BTreeMap<(&'static str, &'static str, Outcome), usize> = BTreeMap::new();
    for (index, damage) in cases.iter().enumerate() {
        let home = work.path().join(format!("case-{index}"));
        copy_dir(&pristine.home, &home);
        let ledger = ledger_of(&home);
        damage.apply(&ledger);
        let home_arg = home.to_string_lossy().to_string();
        let ledger_arg = ledger.to_string_lossy().to_string();
        let check = run(
            &["node", "check", "--home", &home_arg, "--json"],
            damage,
            |out| json_u64(out, "height") == Some(pristine.height),
        );
        let mut check = check;
        if check == Outcome::FullChain && holds_every_block(&ledger, &pristine).is_err() {
            check = Outcome::DamagedBelowTail;
        }
        *table
            .entry((damage.kind(), "node check", check))
            .or_default() += 1;
        let verify = run(
            &["audit", "verify", "--store", &ledger_arg, "--json"],
            damage,
            |out| json_u64(out, "blocks") == Some(pristine.height),
        );
        *table
            .entry((damage.kind(), "audit verify", verify))
            .or_default() += 1;
        std::fs::remove_dir_all(&home).expect("remove case");
    }
    println!(
        "store damage: {} cases on a {}-block store ({} files, {} bytes), {:.1} s",
        cases.len(),
        pristine.height,
        files.len(),
        files.iter().map(|(_, size)| size).sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
    println!("| damage | command | outcome | cases |");
    println!("| --- | --- | --- | --- |");
    for ((kind, command, outcome), count) in &table {
        let outcome = match outcome {
            Outcome::FullChain => "succeeded, every block intact",
            Outcome::Refused => "refused, naming the next step",
            Outcome::DamagedBelowTail => {
                "succeeded at the full height, a block below the checked tail damaged"
            }
        };
        println!("| {kind} | {command} | {outcome} | {count} |");
    }
}
