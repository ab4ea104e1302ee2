//! `custody audit anomalies`: the oversight detector over a verified chain.
//!
//! The chain is verified from its genesis first (as every audit command
//! does), then its blocks are fed in height order to
//! [`custody_oversight::Detector`]; the alerts are printed as text or JSON,
//! and with `--proofs DIR` every evidence transaction's inclusion proof is
//! written there, to be checked offline with `custody audit check-proof`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use custody_ledger::types::Height;
use custody_oversight::{Alert, Detector, Thresholds};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::source::{load_chain, SourceArgs};
use super::{read_file_limited, show_progress, write_file, AuditError};

/// Largest thresholds file accepted, in bytes.
const THRESHOLDS_BYTES_MAX: u64 = 1024 * 1024;
/// Evidence lines printed per alert in the text output (JSON lists all).
const TEXT_EVIDENCE_LINES_MAX: usize = 10;

/// `custody audit anomalies`
#[derive(Args, Debug)]
pub struct AnomaliesArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Report only alerts with evidence at or above this height (the
    /// baselines still learn from the whole chain).
    #[arg(long)]
    pub from_height: Option<u64>,
    /// Thresholds file (TOML, or JSON if it ends in .json); missing values
    /// take their defaults (see docs/audit.md).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Write the inclusion proof of every evidence transaction to this
    /// directory, as `alert-<n>-<tx id>.proof`.
    #[arg(long, value_name = "DIR")]
    pub proofs: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct AnomalyReport<'a> {
    chain_id: String,
    genesis_hash: String,
    from_height: u64,
    to_height: u64,
    events: usize,
    alerts: &'a [Alert],
}

fn load_thresholds(path: &std::path::Path) -> Result<Thresholds, AuditError> {
    let bytes = read_file_limited(path, THRESHOLDS_BYTES_MAX)?;
    let bad = |reason: String| {
        AuditError::BadArgument(format!("thresholds file {}: {reason}", path.display()))
    };
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    let thresholds = Thresholds::parse(&text, json).map_err(|e| bad(e.to_string()))?;
    Ok(thresholds)
}

fn progress_bar(enabled: bool, blocks: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(blocks);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] detecting, block {pos}/{len}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub(super) fn anomalies(
    args: AnomaliesArgs,
    zone: &crate::when::Zone,
    out: &mut dyn Write,
) -> Result<(), AuditError> {
    let thresholds = match &args.thresholds {
        Some(path) => load_thresholds(path)?,
        None => Thresholds::default(),
    };
    let loaded = load_chain(&args.source, show_progress())?;
    let last = loaded.report.height.0;
    let mut detector = Detector::new(thresholds);
    detector.feed_genesis(&loaded.genesis);
    let bar = progress_bar(show_progress(), last);
    for height in 1..=last {
        let block = loaded.block(height)?;
        detector.feed_block(&block).map_err(|e| AuditError::Read {
            path: format!("block {height}"),
            reason: e.to_string(),
        })?;
        if height % 64 == 0 || height == last {
            bar.set_position(height);
        }
    }
    bar.finish_and_clear();
    let from_height = args.from_height.unwrap_or(1).max(1);
    let alerts = detector.alerts_from(Height(from_height));
    if let Some(dir) = &args.proofs {
        std::fs::create_dir_all(dir).map_err(|e| AuditError::Write {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        for (n, alert) in alerts.iter().enumerate() {
            let proofs = custody_oversight::proofs::alert_proofs(
                alert,
                &loaded.genesis,
                &loaded.state,
                loaded.source.as_ref(),
            )?;
            for (proof, evidence) in proofs.iter().zip(&alert.evidence) {
                let path = dir.join(format!("alert-{}-{}.proof", n + 1, evidence.tx.to_hex()));
                write_file(&path, &proof.to_file_bytes())?;
            }
        }
    }
    let report = AnomalyReport {
        chain_id: loaded.genesis.chain_id.clone(),
        genesis_hash: loaded.report.genesis_hash.to_hex(),
        from_height,
        to_height: last,
        events: detector.events(),
        alerts: &alerts,
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "anomalies on chain {} at heights {}..={} ({} events): {} alert(s)",
        report.chain_id,
        from_height,
        last,
        report.events,
        alerts.len()
    )?;
    for (n, alert) in alerts.iter().enumerate() {
        writeln!(
            out,
            "\n[{}] {} (score {:.1})",
            n + 1,
            alert.rule,
            alert.score
        )?;
        writeln!(
            out,
            "    member {} of {}",
            alert
                .member
                .map(|m| m.to_hex())
                .unwrap_or_else(|| "(none)".into()),
            alert
                .department
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "(unknown department)".into())
        )?;
        writeln!(out, "    {}", alert.explanation)?;
        let documents: Vec<String> = alert.documents.iter().map(|d| d.to_string()).collect();
        writeln!(out, "    documents: {}", documents.join(", "))?;
        writeln!(
            out,
            "    evidence ({} transaction(s)):",
            alert.evidence_total
        )?;
        for e in alert.evidence.iter().take(TEXT_EVIDENCE_LINES_MAX) {
            writeln!(
                out,
                "      tx {} at height {} #{}, {} {}{}",
                e.tx.to_hex(),
                e.height,
                e.index,
                zone.show(e.time.0),
                e.kind,
                e.document
                    .as_ref()
                    .map(|d| format!(" of {d}"))
                    .unwrap_or_default()
            )?;
        }
        if alert.evidence_total > TEXT_EVIDENCE_LINES_MAX {
            writeln!(
                out,
                "      … and {} more (all of them with --json)",
                alert.evidence_total - TEXT_EVIDENCE_LINES_MAX
            )?;
        }
    }
    Ok(())
}
