//! Messages per committed height and commit latency of the Tendermint state
//! machine for n = 4, 16, 64 and 100 validators on a simulated network with
//! a fixed 50 ms link delay and no faults.
//!
//! ```sh
//! cargo run --release -p custody-consensus --example sim_report
//! ```
//!
//! The simulator is the one the seed tests use (`tests/simulator`).

#[path = "../tests/simulator/mod.rs"]
mod simulator;

use simulator::{SimConfig, Simulation};

const LINK_DELAY_MS: u64 = 50;

fn main() {
    println!(
        "link delay {LINK_DELAY_MS} ms, no faults, every honest validator commits every height"
    );
    println!(
        "| n | heights | messages per height | KiB per height | signed messages per height | commit latency (ms) | in link delays | wall time (s) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (n, heights) in [(4usize, 20u64), (16, 20), (64, 5), (100, 5)] {
        let started = std::time::Instant::now();
        let outcome = Simulation::new(SimConfig::benign(n, LINK_DELAY_MS, heights)).run();
        let wall_s = started.elapsed().as_secs_f64();
        assert!(
            outcome.violations.is_empty(),
            "n = {n}: {:?}",
            outcome.violations
        );
        let stats = &outcome.stats;
        let committed = stats.min_honest_height.max(1);
        let latencies = &stats.commit_latencies_ms;
        let latency_ms = latencies.iter().sum::<u64>() as f64 / latencies.len().max(1) as f64;
        println!(
            "| {n} | {committed} | {:.0} | {:.1} | {:.0} | {latency_ms:.0} | {:.2} | {wall_s:.1} |",
            stats.messages_sent as f64 / committed as f64,
            stats.message_bytes_sent as f64 / committed as f64 / 1024.0,
            stats.broadcasts as f64 / committed as f64,
            latency_ms / LINK_DELAY_MS as f64,
        );
    }
}
