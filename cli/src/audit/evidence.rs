//! `custody audit evidence`: the equivocation evidence the chain records
//! (`submit-evidence`, `docs/rules.md` §10), each with the validator and
//! its department, the height and round, the two blocks its votes named
//! and the transaction and block that put it on chain.
//!
//! From an export or a store the chain is verified from its genesis first
//! (the replay checks every rule of the evidence) and the two votes are
//! checked again here. From a node (`--node URL`) the node's list is shown
//! with each record's two votes fetched and checked here under the chain's
//! id; that the validator was in the set at that height is then the node's
//! word, and `--export` on an export of that chain checks it offline.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use custody_ledger::evidence::{block_label, EvidenceRecord, SignedVote};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_node::api_types::{Page, StatusResponse, TransactionResponse};

use super::remote::{get, Signer};
use serde::Serialize;

use super::source::{load_chain, SourceArgs};
use super::{show_progress, AuditError};

/// How long one request to a node may take.
const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Pages of `GET /v1/evidence` read from a node at most.
const NODE_PAGES_MAX: usize = 1_000;

/// `custody audit evidence`
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    custody audit evidence --export chain.custody\n  \
    custody audit evidence --node http://127.0.0.1:8080 --json")]
pub struct EvidenceArgs {
    /// An export file written by `custody chain export` (verified first).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["store", "node"],
        required_unless_present_any = ["store", "node"]
    )]
    pub export: Option<PathBuf>,
    /// A node's ledger store directory (stopped node, or a copy).
    #[arg(long, value_name = "DIR", conflicts_with = "node")]
    pub store: Option<PathBuf>,
    /// A running node's API: its list, with each record's votes checked here.
    #[arg(long, value_name = "URL")]
    pub node: Option<String>,
    #[command(flatten)]
    pub reader: super::remote::ReaderKeyArgs,
    /// The genesis hash the auditor trusts (with --export or --store).
    #[arg(long, value_name = "HEX")]
    pub genesis_hash: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One evidence record as listed.
#[derive(Serialize, Debug)]
pub struct ListedEvidence {
    pub validator: String,
    pub department: Option<String>,
    pub height: u64,
    pub round: u64,
    pub kind: String,
    /// The blocks the two votes named (`nil` for a vote for nil).
    pub first_block: String,
    pub second_block: String,
    pub reported_by: String,
    pub tx: String,
    pub included_at: u64,
    /// Both vote signatures verified here under the chain's id.
    pub votes_checked: bool,
}

#[derive(Serialize, Debug)]
struct EvidenceReport {
    chain_id: String,
    /// `verified export`, `verified store` or `node` (its word).
    source: String,
    evidence: Vec<ListedEvidence>,
}

/// The two votes of a `submit-evidence` transaction, if it is one.
fn votes_of(tx: &SignedTransaction) -> Option<(SignedVote, SignedVote)> {
    match &tx.payload.body {
        TxBody::SubmitEvidence { first, second, .. } => Some((*first, *second)),
        _ => None,
    }
}

fn listed(record: &EvidenceRecord, votes_checked: bool) -> ListedEvidence {
    ListedEvidence {
        validator: record.validator.to_hex(),
        department: record.department.as_ref().map(|d| d.to_string()),
        height: record.height.0,
        round: record.round.0,
        kind: record.kind.name().to_string(),
        first_block: block_label(&record.first_block),
        second_block: block_label(&record.second_block),
        reported_by: record.reported_by.to_string(),
        tx: record.tx.to_hex(),
        included_at: record.included_at.0,
        votes_checked,
    }
}

/// Whether `tx` carries the two votes of `record`, each verifying under
/// `chain_id`.
fn votes_hold(tx: &SignedTransaction, record: &EvidenceRecord, chain_id: &str) -> bool {
    votes_of(tx).is_some_and(|(first, second)| {
        first.validator == record.validator
            && first.height == record.height
            && first.block_hash == record.first_block
            && second.block_hash == record.second_block
            && first.verify(chain_id)
            && second.verify(chain_id)
    })
}

pub(super) fn evidence(args: EvidenceArgs, out: &mut dyn Write) -> Result<(), AuditError> {
    let report = match &args.node {
        Some(node) => {
            let key = args.reader.signing_key()?;
            from_node(node, key.as_ref())?
        }
        None => from_chain(&args)?,
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} equivocation record(s) on chain {} ({})",
        report.evidence.len(),
        report.chain_id,
        report.source
    )?;
    for e in &report.evidence {
        writeln!(
            out,
            "  validator {}{} equivocated at height {} round {} ({}): blocks {} and {}",
            e.validator,
            e.department
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default(),
            e.height,
            e.round,
            e.kind,
            e.first_block,
            e.second_block
        )?;
        writeln!(
            out,
            "    reported by {} in transaction {} of block {}; votes {}",
            e.reported_by,
            e.tx,
            e.included_at,
            if e.votes_checked {
                "checked here"
            } else {
                "NOT verified"
            }
        )?;
    }
    Ok(())
}

fn from_chain(args: &EvidenceArgs) -> Result<EvidenceReport, AuditError> {
    let source = SourceArgs {
        export: args.export.clone(),
        store: args.store.clone(),
        genesis_hash: args.genesis_hash.clone(),
        threads: 0,
    };
    let loaded = load_chain(&source, show_progress())?;
    let chain_id = loaded.genesis.chain_id.clone();
    let mut evidence = Vec::new();
    for record in loaded.state.evidence.values() {
        // The replay checked the rules; the listing rests on the votes, so
        // this copy of the tool checks them again.
        let block = loaded.block(record.included_at.0)?;
        let holds = block
            .transactions
            .iter()
            .find(|tx| tx.id() == record.tx)
            .is_some_and(|tx| votes_hold(tx, record, &chain_id));
        if !holds {
            return Err(AuditError::BadArgument(format!(
                "evidence against {} at height {} names transaction {} in block {}, which does \
                 not carry two votes that verify",
                record.validator, record.height.0, record.tx, record.included_at.0
            )));
        }
        evidence.push(listed(record, true));
    }
    Ok(EvidenceReport {
        chain_id,
        source: if args.export.is_some() {
            "verified export".to_string()
        } else {
            "verified store".to_string()
        },
        evidence,
    })
}

fn node_error(url: &str, reason: impl std::fmt::Display) -> AuditError {
    AuditError::Node {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

fn from_node(
    node: &str,
    key: Option<&ed25519_dalek::SigningKey>,
) -> Result<EvidenceReport, AuditError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| node_error(node, e))?;
    runtime.block_on(fetch(node.trim_end_matches('/'), key))
}

async fn fetch(
    base: &str,
    key: Option<&ed25519_dalek::SigningKey>,
) -> Result<EvidenceReport, AuditError> {
    let client = custody_node::client::http_client(
        None,
        Some(std::time::Duration::from_millis(REQUEST_TIMEOUT_MS)),
    )
    .map_err(|e| node_error(base, e))?;
    let status: StatusResponse = get(&client, &format!("{base}/v1/status"), None).await?;
    let signer = key.map(|key| Signer {
        key,
        chain_id: status.chain_id.clone(),
    });
    let mut records: Vec<EvidenceRecord> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..NODE_PAGES_MAX {
        let url = match &cursor {
            Some(cursor) => format!("{base}/v1/evidence?cursor={cursor}"),
            None => format!("{base}/v1/evidence"),
        };
        let page: Page<EvidenceRecord> = get(&client, &url, None).await?;
        records.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let mut evidence = Vec::new();
    for record in &records {
        let url = format!("{base}/v1/transactions/{}", record.tx.to_hex());
        let answer: TransactionResponse = get(&client, &url, signer.as_ref()).await?;
        let holds = answer.status == "committed"
            && answer.transaction.id() == record.tx
            && votes_hold(&answer.transaction, record, &status.chain_id);
        evidence.push(listed(record, holds));
    }
    Ok(EvidenceReport {
        chain_id: status.chain_id,
        source: format!("node {base} (its word; verify an export offline)"),
        evidence,
    })
}
