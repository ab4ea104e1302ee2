//! `custody audit report`: who held what for how long, who read what and
//! how often, over a height or date range, computed from the verified
//! replay's document events and the serving nodes' read attestations.
//!
//! A **read** is a `served` attestation: a node attests that it handed the
//! whole ciphertext to the member. Access records (`accessed` events) are
//! counted apart, and so are `failed` downloads (listed one by one) and
//! `denied` requests.

use std::collections::BTreeMap;
use std::io::Write;

use clap::Args;
use custody_ledger::block::Block;
use custody_ledger::encoding;
use custody_ledger::records::{DocumentEvent, EventKind};
use custody_ledger::types::Height;
use custody_node::client::now_ms;
use serde::Serialize;

use crate::when::DayBound;

use custody_ledger::reads::{AttestedRead, ReadOutcome};

use super::reads::read_account;
use super::source::{load_chain, LoadedChain, SourceArgs};
use super::{show_progress, time, AuditError};

/// `custody audit report`
#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// First height of the range (default 1).
    #[arg(long, conflicts_with_all = ["from_date", "to_date"])]
    pub from_height: Option<u64>,
    /// Last height of the range (default: the last block).
    #[arg(long, conflicts_with_all = ["from_date", "to_date"])]
    pub to_height: Option<u64>,
    /// Start of the range: a day YYYY-MM-DD (from its first moment in
    /// --time-zone) or a time with its offset (2026-01-01T00:00:00+08:00).
    #[arg(long, value_name = "DATE")]
    pub from_date: Option<String>,
    /// End of the range: a day YYYY-MM-DD (to its last moment in
    /// --time-zone, the day included) or a time with its offset.
    #[arg(long, value_name = "DATE")]
    pub to_date: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug, Clone)]
struct Holding {
    document: String,
    department: String,
    from: String,
    to: String,
    /// Whether the department still held it at the end of the range.
    ongoing: bool,
    duration_ms: u64,
}

#[derive(Serialize, Debug, Default, Clone)]
struct DepartmentLine {
    documents_held: usize,
    custody_ms: u64,
    /// Served downloads (`attest-read` `served`).
    reads: u64,
    documents_read: usize,
    /// Access records committed (`record-access`), served or not.
    accesses_recorded: u64,
    /// Downloads allowed but not completed (`attest-read` `failed`).
    reads_failed: u64,
    /// Requests the read rule refused (`attest-read` `denied`).
    reads_denied: u64,
    registered: u64,
    transfers_out: u64,
    transfers_in: u64,
    rejections: u64,
    grants_given: u64,
}

#[derive(Serialize, Debug)]
struct Read {
    department: String,
    member: String,
    /// The member's name, department and short key, from the chain.
    member_label: String,
    document: String,
    /// Served downloads.
    count: u64,
    /// Access records committed.
    accesses: u64,
    first: String,
    last: String,
    purposes: Vec<String>,
}

#[derive(Serialize, Debug)]
struct FailedRead {
    department: String,
    member: String,
    /// The member's name, department and short key, from the chain.
    member_label: String,
    document: String,
    access_tx: String,
    bytes: u64,
    reason: String,
    time: String,
}

#[derive(Serialize, Debug)]
struct Report {
    chain_id: String,
    genesis_hash: String,
    from_height: u64,
    to_height: u64,
    from: String,
    to: String,
    events: u64,
    holdings: Vec<Holding>,
    departments: BTreeMap<String, DepartmentLine>,
    reads: Vec<Read>,
    failed_reads: Vec<FailedRead>,
}

fn header_time(loaded: &LoadedChain, height: Height) -> Result<u64, AuditError> {
    let read = |reason: String| AuditError::Read {
        path: format!("block {height}"),
        reason,
    };
    let raw = loaded
        .source
        .raw_block(height)
        .map_err(read)?
        .ok_or_else(|| read("missing".to_string()))?;
    let block: Block = encoding::decode(&raw).map_err(|e| read(e.to_string()))?;
    Ok(block.header.time.0)
}

/// The range as times `[start, end]` in ms, and as heights.
fn range(
    args: &ReportArgs,
    zone: &crate::when::Zone,
    loaded: &LoadedChain,
) -> Result<(u64, u64, u64, u64), AuditError> {
    let last = loaded.report.height.0;
    let genesis_time = loaded.genesis.genesis_time.0;
    if args.from_date.is_some() || args.to_date.is_some() {
        let start = match &args.from_date {
            Some(d) => zone
                .parse(d, now_ms(), DayBound::Start)
                .map_err(|e| AuditError::BadArgument(e.to_string()))?,
            None => genesis_time,
        };
        let end = match &args.to_date {
            Some(d) => zone
                .parse(d, now_ms(), DayBound::End)
                .map_err(|e| AuditError::BadArgument(e.to_string()))?,
            None => u64::MAX,
        };
        if end < start {
            return Err(AuditError::BadArgument(
                "--to-date is before --from-date".into(),
            ));
        }
        return Ok((start, end, 1, last));
    }
    let from = args.from_height.unwrap_or(1).max(1);
    let to = args.to_height.unwrap_or(last).min(last);
    if to < from {
        return Err(AuditError::BadArgument(format!(
            "empty height range {from}..={to} (the chain has {last} blocks)"
        )));
    }
    let start = if from <= 1 {
        genesis_time
    } else {
        header_time(loaded, Height(from))?
    };
    let end = if to == 0 {
        genesis_time
    } else {
        header_time(loaded, Height(to))?
    };
    Ok((start, end, from, to))
}

pub(super) fn report(
    args: ReportArgs,
    zone: &crate::when::Zone,
    out: &mut dyn Write,
) -> Result<(), AuditError> {
    let loaded = load_chain(&args.source, show_progress())?;
    let names = crate::names::Names::new(&loaded.state);
    let (start, end, from_height, to_height) = range(&args, zone, &loaded)?;
    let shown = |ms: u64| time::shown(ms, args.json, zone);
    let by_height = args.from_date.is_none() && args.to_date.is_none();
    let in_range = |e: &DocumentEvent| {
        if by_height {
            (from_height..=to_height).contains(&e.height.0)
        } else {
            (start..=end).contains(&e.time.0)
        }
    };
    // End of the observed period: the range end, or the last block's time
    // when the range runs past the chain.
    let chain_end = loaded
        .state
        .chain
        .as_ref()
        .map(|c| c.last_time.0)
        .unwrap_or(start);
    let end_clip = end.min(chain_end.max(start));

    let mut holdings = Vec::new();
    let mut departments: BTreeMap<String, DepartmentLine> = BTreeMap::new();
    let mut reads: BTreeMap<(String, String, String), Read> = BTreeMap::new();
    let mut events = 0u64;
    for (document, doc_events) in &loaded.state.events {
        // Custody intervals over the whole history, clipped to the range.
        let mut holder: Option<(String, u64)> = None;
        let mut intervals: Vec<(String, u64, Option<u64>)> = Vec::new();
        for e in doc_events {
            match &e.kind {
                EventKind::Registered { .. } | EventKind::RegisteredSealed { .. } => {
                    holder = Some((e.department.to_string(), e.time.0));
                }
                EventKind::Accepted { .. } => {
                    if let Some((d, since)) = holder.take() {
                        intervals.push((d, since, Some(e.time.0)));
                    }
                    holder = Some((e.department.to_string(), e.time.0));
                }
                EventKind::Disposed { .. } | EventKind::DisposedSealed { .. } => {
                    if let Some((d, since)) = holder.take() {
                        intervals.push((d, since, Some(e.time.0)));
                    }
                }
                _ => {}
            }
            if !in_range(e) {
                continue;
            }
            events += 1;
            let line = departments.entry(e.department.to_string()).or_default();
            match &e.kind {
                EventKind::Registered { .. } | EventKind::RegisteredSealed { .. } => {
                    line.registered += 1
                }
                EventKind::Accepted { from } => {
                    line.transfers_in += 1;
                    departments
                        .entry(from.to_string())
                        .or_default()
                        .transfers_out += 1;
                }
                EventKind::Rejected { .. } | EventKind::RejectedSealed { .. } => {
                    line.rejections += 1
                }
                EventKind::Granted { .. } => line.grants_given += 1,
                EventKind::Accessed { .. } | EventKind::AccessedSealed { .. } => {
                    // A sealed purpose is reported as such: the report
                    // needs no key.
                    let purpose = match &e.kind {
                        EventKind::Accessed { purpose, .. } => purpose.clone(),
                        _ => crate::sealed_text::SEALED_PLACEHOLDER.to_string(),
                    };
                    line.accesses_recorded += 1;
                    let key = (
                        e.department.to_string(),
                        e.member.to_hex(),
                        document.to_string(),
                    );
                    let read = reads.entry(key).or_insert_with(|| Read {
                        department: e.department.to_string(),
                        member: e.member.to_hex(),
                        member_label: names.label(&e.member),
                        document: document.to_string(),
                        count: 0,
                        accesses: 0,
                        first: String::new(),
                        last: String::new(),
                        purposes: Vec::new(),
                    });
                    read.accesses += 1;
                    if !read.purposes.contains(&purpose) && read.purposes.len() < 16 {
                        read.purposes.push(purpose);
                    }
                }
                _ => {}
            }
        }
        if let Some((d, since)) = holder {
            intervals.push((d, since, None));
        }
        for (department, since, until) in intervals {
            let ongoing = until.is_none_or(|u| u > end_clip);
            let from = since.max(start);
            let to = until.unwrap_or(end_clip).min(end_clip);
            if since > end_clip || to < start || to < from {
                continue;
            }
            let line = departments.entry(department.clone()).or_default();
            line.custody_ms += to - from;
            holdings.push(Holding {
                document: document.to_string(),
                department,
                from: shown(from),
                to: shown(to),
                ongoing,
                duration_ms: to - from,
            });
        }
    }
    let account = read_account(&loaded)?;
    let attested_in_range = |read: &AttestedRead| {
        if by_height {
            (from_height..=to_height).contains(&read.height.0)
        } else {
            (start..=end).contains(&read.time.0)
        }
    };
    for served in account.served.iter().filter(|r| attested_in_range(r)) {
        let member_label = names.label(served.outcome.member());
        let member = served.outcome.member().to_hex();
        let document = served.outcome.document().to_string();
        let department = served.department.to_string();
        departments.entry(department.clone()).or_default().reads += 1;
        let when = shown(served.time.0);
        let read = reads
            .entry((department.clone(), member.clone(), document.clone()))
            .or_insert_with(|| Read {
                department,
                member,
                member_label,
                document,
                count: 0,
                accesses: 0,
                first: String::new(),
                last: String::new(),
                purposes: Vec::new(),
            });
        read.count += 1;
        if read.first.is_empty() {
            read.first = when.clone();
        }
        read.last = when;
    }
    let mut failed_reads = Vec::new();
    for failed in account.failed.iter().filter(|r| attested_in_range(r)) {
        let ReadOutcome::Failed {
            access_tx,
            member,
            document,
            bytes,
            reason,
        } = &failed.outcome
        else {
            continue;
        };
        departments
            .entry(failed.department.to_string())
            .or_default()
            .reads_failed += 1;
        failed_reads.push(FailedRead {
            department: failed.department.to_string(),
            member: member.to_hex(),
            member_label: names.label(member),
            document: document.to_string(),
            access_tx: access_tx.to_hex(),
            bytes: *bytes,
            reason: reason.clone(),
            time: shown(failed.time.0),
        });
    }
    for denied in account.denied.iter().filter(|r| attested_in_range(r)) {
        departments
            .entry(denied.department.to_string())
            .or_default()
            .reads_denied += 1;
    }
    for (name, line) in departments.iter_mut() {
        let held: std::collections::BTreeSet<&str> = holdings
            .iter()
            .filter(|h| &h.department == name)
            .map(|h| h.document.as_str())
            .collect();
        line.documents_held = held.len();
        let read: std::collections::BTreeSet<&str> = reads
            .values()
            .filter(|r| &r.department == name && r.count > 0)
            .map(|r| r.document.as_str())
            .collect();
        line.documents_read = read.len();
    }
    let mut reads: Vec<Read> = reads.into_values().collect();
    reads.sort_by(|a, b| b.count.cmp(&a.count).then(a.document.cmp(&b.document)));
    let report = Report {
        chain_id: loaded.genesis.chain_id.clone(),
        genesis_hash: loaded.report.genesis_hash.to_hex(),
        from_height,
        to_height,
        from: shown(start),
        to: shown(end_clip),
        events,
        holdings,
        departments,
        reads,
        failed_reads,
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "custody report for chain {} from {} to {} ({} events)",
        report.chain_id, report.from, report.to, report.events
    )?;
    writeln!(out, "\nby department:")?;
    for (name, l) in &report.departments {
        writeln!(
            out,
            "  {name}: held {} document(s) for {} in total; registered {}, received {}, sent {}, rejected {}, granted {}; {} read(s) served of {} document(s), {} access record(s), {} failed download(s), {} refused request(s)",
            l.documents_held,
            duration(l.custody_ms),
            l.registered,
            l.transfers_in,
            l.transfers_out,
            l.rejections,
            l.grants_given,
            l.reads,
            l.documents_read,
            l.accesses_recorded,
            l.reads_failed,
            l.reads_denied
        )?;
    }
    writeln!(out, "\nwho held what:")?;
    for h in &report.holdings {
        writeln!(
            out,
            "  {} held by {} from {} to {}{} ({})",
            h.document,
            h.department,
            h.from,
            h.to,
            if h.ongoing { " and still" } else { "" },
            duration(h.duration_ms)
        )?;
    }
    writeln!(
        out,
        "\nwho read what (reads = downloads a node attested served; most often first):"
    )?;
    for r in &report.reads {
        writeln!(
            out,
            "  {} read {} time(s) under {} access record(s) by {} (first {}, last {}) for: {}",
            r.document,
            r.count,
            r.accesses,
            r.member_label,
            if r.first.is_empty() { "-" } else { &r.first },
            if r.last.is_empty() { "-" } else { &r.last },
            r.purposes.join("; ")
        )?;
    }
    writeln!(out, "\nfailed downloads (not reads):")?;
    for f in &report.failed_reads {
        writeln!(
            out,
            "  {} {} by {} under {}: {} byte(s) sent; {}",
            f.time, f.document, f.member_label, f.access_tx, f.bytes, f.reason
        )?;
    }
    Ok(())
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min {} s", s % 60)
    }
}
