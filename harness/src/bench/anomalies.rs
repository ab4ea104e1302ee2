//! `custody bench anomalies`: the oversight detector against a labelled
//! workload, and its speed beside the ledger's replay speed.
//!
//! 1. Generates the labelled workload of `custody_oversight::testkit` (four
//!    departments, months of work, injected anomalies and decoys) from a
//!    fixed seed, runs the detector over it and prints precision and recall
//!    per rule and overall, the decoys flagged and the false-positive rate
//!    on normal traffic.
//! 2. Times the detector over that stream on one core (events per second).
//! 3. Builds a chain of real signed transactions with the ledger's test
//!    workload (signing is not timed), then on one core times (a) the
//!    ledger replay of those blocks: ed25519 batch verification of every
//!    transaction plus `apply_block` into a fresh in-memory state, and
//!    (b) the detector over the same blocks (transaction ids, event
//!    extraction and every rule); prints both rates and their ratio.
//! 4. Feeds the labelled stream block by block to the live detector (as a
//!    node does) and prints its cost per block over the first and the
//!    last tenth of the blocks, beside the batch detector's cost of
//!    re-judging the whole history at those lengths (`live_cost`).

use std::time::Instant;

use clap::Args;
use custody_ledger::state::{apply_block, MemoryState};
use custody_ledger::testkit::Workload;
use custody_ledger::tx::verify_batch;
use custody_oversight::testkit::{generate, score, RuleScore};
use custody_oversight::{Detector, Rule, Thresholds};
use serde::Serialize;

/// `custody bench anomalies`
#[derive(Args, Clone, Debug)]
pub struct AnomalyOptions {
    /// Seed of the labelled workload.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Simulated days (at least 60).
    #[arg(long, default_value_t = 150)]
    pub days: u64,
    /// Real signed transactions replayed for the comparison.
    #[arg(long, default_value_t = 20_000)]
    pub replay_txs: usize,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct RuleLine {
    rule: Rule,
    alerts: usize,
    correct: usize,
    on_other_injections: usize,
    injected: usize,
    found: usize,
    decoys: usize,
    decoys_flagged: usize,
    precision: f64,
    recall: f64,
}

impl RuleLine {
    fn of(rule: Rule, s: &RuleScore) -> RuleLine {
        RuleLine {
            rule,
            alerts: s.alerts,
            correct: s.correct,
            on_other_injections: s.on_other_injections,
            injected: s.injected,
            found: s.found,
            decoys: s.decoys,
            decoys_flagged: s.decoys_flagged,
            precision: s.precision(),
            recall: s.recall(),
        }
    }
}

#[derive(Serialize)]
struct Figures {
    seed: u64,
    days: u64,
    events: usize,
    labels: usize,
    rules: Vec<RuleLine>,
    overall: RuleLine,
    false_alerts: usize,
    normal_events: usize,
    normal_events_in_false_alerts: usize,
    false_positive_rate: f64,
    detector_events_per_second: f64,
    replay_transactions: usize,
    replay_transactions_per_second: f64,
    detector_on_replayed_transactions_per_second: f64,
    detector_to_replay_ratio: f64,
    live: super::live_cost::LiveCost,
}

pub fn run(options: AnomalyOptions) -> Result<(), String> {
    let workload = generate(options.seed, options.days);
    let events: Vec<_> = workload.events.iter().map(|e| e.event.clone()).collect();
    let started = Instant::now();
    let mut detector = Detector::new(Thresholds::default());
    detector
        .feed_all(events.iter().cloned())
        .map_err(|e| e.to_string())?;
    let alerts = detector.alerts();
    let detect_seconds = started.elapsed().as_secs_f64();
    let scored = score(&workload, &alerts);

    // Real transactions: build (signing untimed), then replay and detect.
    let mut chain = Workload::new(4, options.seed);
    let mut built = 0;
    while built < options.replay_txs {
        let block = chain
            .step(200)
            .map_err(|e| format!("workload block refused: {e}"))?;
        built += block.transactions.len();
    }
    let genesis = chain.chain.federation.genesis.clone();
    let blocks: Vec<_> = chain.chain.blocks.iter().map(|(b, _)| b.clone()).collect();
    let transactions: usize = blocks.iter().map(|b| b.transactions.len()).sum();
    let started = Instant::now();
    let mut state = MemoryState::from_genesis(&genesis);
    for block in &blocks {
        if !verify_batch(&block.transactions).is_empty() {
            return Err(format!("block {} has a bad signature", block.header.height));
        }
        let changes = apply_block(&state, block)
            .map_err(|e| format!("replay of block {} refused: {e}", block.header.height))?;
        state.apply(changes);
    }
    let replay_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut on_chain = Detector::new(Thresholds::default());
    on_chain.feed_genesis(&genesis);
    for block in &blocks {
        on_chain.feed_block(block).map_err(|e| e.to_string())?;
    }
    let chain_alerts = on_chain.alerts().len();
    let detect_chain_seconds = started.elapsed().as_secs_f64();

    let live = super::live_cost::measure(&events, &Thresholds::default())?;
    let replay_rate = transactions as f64 / replay_seconds.max(1e-9);
    let detect_chain_rate = transactions as f64 / detect_chain_seconds.max(1e-9);
    let figures = Figures {
        seed: options.seed,
        days: workload.days,
        events: events.len(),
        labels: workload.labels.len(),
        rules: scored
            .rules
            .iter()
            .map(|(rule, s)| RuleLine::of(*rule, s))
            .collect(),
        overall: RuleLine::of(Rule::BulkReads, &scored.overall),
        false_alerts: scored.false_alerts,
        normal_events: scored.normal_events,
        normal_events_in_false_alerts: scored.normal_events_in_false_alerts,
        false_positive_rate: scored.false_positive_rate(),
        detector_events_per_second: events.len() as f64 / detect_seconds.max(1e-9),
        replay_transactions: transactions,
        replay_transactions_per_second: replay_rate,
        detector_on_replayed_transactions_per_second: detect_chain_rate,
        detector_to_replay_ratio: detect_chain_rate / replay_rate,
        live,
    };
    if options.json {
        let text = serde_json::to_string_pretty(&figures).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "labelled workload: seed {}, {} days, {} events, {} injected stretches ({} alerts raised)",
        figures.seed,
        figures.days,
        figures.events,
        figures.labels,
        alerts.len()
    );
    println!(
        "  {:<24} {:>6} {:>7} {:>6} {:>8} {:>5} {:>6} {:>7} {:>9} {:>6}",
        "rule",
        "alerts",
        "correct",
        "other",
        "injected",
        "found",
        "decoys",
        "flagged",
        "precision",
        "recall"
    );
    for line in figures
        .rules
        .iter()
        .chain(std::iter::once(&figures.overall))
    {
        let name = if std::ptr::eq(line, &figures.overall) {
            "overall".to_string()
        } else {
            line.rule.to_string()
        };
        println!(
            "  {:<24} {:>6} {:>7} {:>6} {:>8} {:>5} {:>6} {:>7} {:>9.3} {:>6.3}",
            name,
            line.alerts,
            line.correct,
            line.on_other_injections,
            line.injected,
            line.found,
            line.decoys,
            line.decoys_flagged,
            line.precision,
            line.recall
        );
    }
    println!(
        "  false alerts {} ; false-positive rate on normal traffic {:.6} ({} of {} normal events are evidence of a false alert)",
        figures.false_alerts,
        figures.false_positive_rate,
        figures.normal_events_in_false_alerts,
        figures.normal_events
    );
    println!(
        "detector on the labelled stream: {:.0} events/s (one core)",
        figures.detector_events_per_second
    );
    println!(
        "ledger replay of {} signed transactions (batch signature check + apply_block, one core): {:.0} tx/s",
        transactions, replay_rate
    );
    println!(
        "detector on the same blocks (tx ids, events, all rules; {} alerts): {:.0} tx/s; ratio detector/replay {:.1}",
        chain_alerts, detect_chain_rate, figures.detector_to_replay_ratio
    );
    let live = &figures.live;
    println!(
        "live detector, block by block ({} blocks, {} events, {} alerts): µs per block mean / p99 / max",
        live.blocks, live.events, live.alerts
    );
    for (name, cost, batch) in [
        ("first 10%", &live.first_tenth, live.batch_at_first_tenth_us),
        ("last 10%", &live.last_tenth, live.batch_at_end_us),
    ] {
        println!(
            "  {name:<9} {:>9.0} / {:>9.0} / {:>9.0}   (batch re-judging the history at that length: {batch:.0} µs per block)",
            cost.mean_us, cost.p99_us, cost.max_us
        );
    }
    let by_tenth: Vec<String> = live
        .mean_us_by_tenth
        .iter()
        .map(|us| format!("{us:.0}"))
        .collect();
    println!(
        "  mean µs per block in each tenth of the history: {}",
        by_tenth.join(" ")
    );
    println!(
        "  at {:.0} tx/s replay a block of 200 transactions takes {:.0} µs",
        replay_rate,
        200.0 / replay_rate.max(1e-9) * 1e6
    );
    Ok(())
}
