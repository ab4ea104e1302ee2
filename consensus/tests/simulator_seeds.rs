//! The simulator's seed runs: safety and liveness on every seed, and proof
//! that the checks catch a broken protocol.
//!
//! `CUSTODY_SIM_SEEDS=N` runs N seeds instead of the CI default,
//! `CUSTODY_SIM_SEED=S` replays one seed and prints its scenario.

mod simulator;

use simulator::{replay_command, run_seeds, seeds_from_env, SimConfig};

/// Seeds run by CI (`cargo test -p custody-consensus --release`).
const CI_SEED_COUNT: u64 = 1000;

/// Simulator threads; CI machines have two cores.
const THREADS: usize = 2;

#[test]
fn every_seed_keeps_agreement_validity_certificates_and_liveness() {
    let seeds = seeds_from_env(CI_SEED_COUNT);
    if seeds.len() == 1 {
        println!("scenario: {:#?}", SimConfig::from_seed(seeds[0]));
    }
    let started = std::time::Instant::now();
    let trace =
        seeds.len() == 1 && std::env::var("CUSTODY_SIM_TRACE").is_ok_and(|value| value == "1");
    let (failures, totals) = run_seeds(&seeds, THREADS, |config| config.trace = trace);
    println!(
        "{} seeds in {:.1} s: {} events, {} messages, {} crashes, {} synced blocks, {} evidence, {} failing",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        totals.events,
        totals.messages_sent,
        totals.crashes,
        totals.syncs,
        totals.evidence,
        failures.len()
    );
    for (seed, outcome) in &failures {
        println!("seed {seed} failed ({:?}):", outcome.stats);
        for violation in &outcome.violations {
            println!("  {violation}");
        }
        println!("  replay: {}", replay_command(*seed));
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed; first: seed {}; replay with: {}",
        failures.len(),
        seeds.len(),
        failures[0].0,
        replay_command(failures[0].0)
    );
}

/// With a quorum of 2f instead of more than two thirds, two disjoint
/// "quorums" exist and the simulator must find two honest nodes committing
/// different blocks within the CI seed count.
#[test]
fn broken_quorum_of_two_f_is_caught_as_an_agreement_violation() {
    let seeds: Vec<u64> = (0..CI_SEED_COUNT).collect();
    let mut found = None;
    for chunk in seeds.chunks(50) {
        let (failures, _) = run_seeds(chunk, THREADS, |config| {
            config.fault_injection.quorum_of_two_f = true;
            // Certificates are too small by construction; only agreement
            // is the point here.
            config.check_certificates = false;
        });
        found = failures.into_iter().find(|(_, outcome)| {
            outcome
                .violations
                .iter()
                .any(|violation| matches!(violation, simulator::Violation::Agreement { .. }))
        });
        if found.is_some() {
            break;
        }
    }
    let (seed, outcome) =
        found.expect("the simulator did not catch a quorum of 2f within the CI seed count");
    println!(
        "quorum of 2f caught by seed {seed}: {}",
        outcome.violations[0]
    );
}
