//! Kill -9 test: a child process commits blocks in a loop and prints each
//! height after `commit` returns; it is killed with SIGKILL at random
//! moments. After every kill the store must open, the whole chain must
//! verify, and every printed height must be there.
//!
//! Iterations: 50, or `CUSTODY_CRASH_ITERATIONS`. Seed: the clock, or
//! `CUSTODY_CRASH_SEED` to replay a run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use custody_ledger::store::{Store, StoreError};
use custody_ledger::types::Height;
use custody_ledger::verify::{self, VerifyOptions};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn committed_blocks_survive_sigkill_and_the_chain_verifies() {
    let iterations = env_u64("CUSTODY_CRASH_ITERATIONS").unwrap_or(50);
    let seed = env_u64("CUSTODY_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("crash test: {iterations} iterations, CUSTODY_CRASH_SEED={seed}");
    let mut rng = seed | 1;
    let mut random = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let dir = tempfile::tempdir().unwrap();
    let mut highest_printed = 0u64;
    for iteration in 0..iterations {
        let mut child = Command::new(env!("CARGO_BIN_EXE_custody-ledger-crash-writer"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("crash writer starts");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut heights = Vec::new();
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            // A line without its newline was cut by the kill: not counted.
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line.ends_with('\n') {
                    if let Ok(h) = line.trim().parse::<u64>() {
                        heights.push(h);
                    }
                }
                line.clear();
            }
            heights
        });
        // A random moment: sometimes during start-up, mostly mid-stream.
        std::thread::sleep(Duration::from_millis(5 + random(120)));
        child.kill().expect("SIGKILL delivered");
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "iteration {iteration}: the writer was killed"
        );
        let printed = reader.join().unwrap();
        if let Some(&last) = printed.last() {
            highest_printed = highest_printed.max(last);
        }

        let store = match Store::open(dir.path()) {
            Ok(store) => store,
            // Killed while writing the genesis: nothing was committed, and
            // the next writer initialises the store (`open_or_init`).
            Err(StoreError::NotInitialized) if highest_printed == 0 => continue,
            Err(e) => panic!(
                "iteration {iteration} (seed {seed}): store does not open after SIGKILL: {e}"
            ),
        };
        let latest = store.latest_height().unwrap();
        assert!(
            latest.0 >= highest_printed,
            "iteration {iteration} (seed {seed}): height {highest_printed} was printed as committed, the store has {latest}"
        );
        for h in &printed {
            assert!(
                store.block(Height(*h)).unwrap().is_some(),
                "block {h} is missing"
            );
            assert!(
                store.certificate(Height(*h)).unwrap().is_some(),
                "certificate {h} is missing"
            );
        }
        let report = verify::verify_store(&store, None, VerifyOptions::default(), |_| {})
            .unwrap_or_else(|e| {
                panic!("iteration {iteration} (seed {seed}): chain does not verify: {e}")
            });
        assert_eq!(report.height, latest);
        drop(store);
    }
    println!(
        "crash test: {iterations} kills, chain at height {highest_printed} or more, all verified"
    );
    assert!(
        highest_printed > 0,
        "the writer committed at least one block"
    );
}
