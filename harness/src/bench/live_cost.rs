//! The live detector's cost per block over a long history: what a node
//! pays after each committed block, early in the chain and late in it,
//! beside what re-judging the whole history (the batch detector) costs at
//! the same lengths.

use std::time::Instant;

use custody_ledger::types::Height;
use custody_oversight::{Detector, Event, LiveDetector, Thresholds};
use serde::Serialize;

/// Microseconds per block over a stretch of blocks.
#[derive(Clone, Debug, Serialize)]
pub struct BlockCost {
    pub blocks: usize,
    pub mean_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl BlockCost {
    fn of(micros: &[f64]) -> BlockCost {
        let mut sorted = micros.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let at = |q: f64| {
            if n == 0 {
                0.0
            } else {
                sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
            }
        };
        BlockCost {
            blocks: n,
            mean_us: sorted.iter().sum::<f64>() / n.max(1) as f64,
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }
}

/// The live path over a whole history, one block at a time.
#[derive(Clone, Debug, Serialize)]
pub struct LiveCost {
    pub blocks: usize,
    pub events: usize,
    pub alerts: usize,
    /// Over the first tenth of the blocks.
    pub first_tenth: BlockCost,
    /// Over the last tenth.
    pub last_tenth: BlockCost,
    /// The batch detector judging the whole history once, at the end of
    /// the first tenth and at the end: what a block would cost if every
    /// block re-judged everything.
    pub batch_at_first_tenth_us: f64,
    pub batch_at_end_us: f64,
    /// Mean µs per block over each tenth of the blocks in turn: whether
    /// the cost settles or keeps growing with the history.
    pub mean_us_by_tenth: Vec<f64>,
}

/// Feeds `events` (in chain order, grouped into blocks by height) to a
/// live detector, timing every block.
pub fn measure(events: &[Event], thresholds: &Thresholds) -> Result<LiveCost, String> {
    let mut blocks: Vec<&[Event]> = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let height = events[start].height;
        let len = events[start..]
            .iter()
            .take_while(|e| e.height == height)
            .count();
        blocks.push(&events[start..start + len]);
        start += len;
    }
    let tenth = (blocks.len() / 10).max(1);
    let mut live = LiveDetector::from_detector(Detector::new(thresholds.clone()));
    let mut micros = Vec::with_capacity(blocks.len());
    let mut batch_at_first_tenth_us = 0.0;
    let mut fed = 0;
    for (n, block) in blocks.iter().enumerate() {
        let height = block.first().map(|e| e.height).unwrap_or(Height(0));
        let started = Instant::now();
        live.feed_events(height, block.iter().cloned())
            .map_err(|e| e.to_string())?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        fed += block.len();
        if n + 1 == tenth {
            batch_at_first_tenth_us = batch_micros(&events[..fed], thresholds)?;
        }
    }
    let n = micros.len();
    Ok(LiveCost {
        blocks: n,
        events: events.len(),
        alerts: live.len(),
        first_tenth: BlockCost::of(&micros[..tenth.min(n)]),
        last_tenth: BlockCost::of(&micros[n.saturating_sub(tenth)..]),
        batch_at_first_tenth_us,
        batch_at_end_us: batch_micros(events, thresholds)?,
        mean_us_by_tenth: micros
            .chunks(tenth)
            .take(10)
            .map(|chunk| BlockCost::of(chunk).mean_us)
            .collect(),
    })
}

fn batch_micros(events: &[Event], thresholds: &Thresholds) -> Result<f64, String> {
    let mut detector = Detector::new(thresholds.clone());
    detector
        .feed_all(events.iter().cloned())
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let alerts = detector.alerts();
    let micros = started.elapsed().as_secs_f64() * 1e6;
    std::hint::black_box(alerts);
    Ok(micros)
}
