//! The demo's audit: an auditor who trusts only the genesis exports the
//! chain from one running node over its HTTP API and verifies the export
//! with the auditor's own commands (`custody chain export`, `custody audit
//! …`, called as library functions), then follows one document's
//! history, checks a proof of one transaction offline and asks whether
//! files in hand are registered versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use custody_cli::audit::{
    AuditArgs, AuditCommand, ChainArgs, ChainCommand, CheckProofArgs, FixityArgs, HistoryArgs,
    ProveArgs, SourceArgs, VerifyArgs,
};
use custody_ledger::records::EventKind;
use custody_ledger::Genesis;
use serde::Serialize;

use super::scenario::Outcome;
use super::{say, section, DemoError};

/// What the audit found, as printed at the end and written to
/// `DIR/demo-summary.json`.
#[derive(Serialize, Default)]
pub struct AuditSummary {
    pub verified: bool,
    pub genesis_hash: String,
    pub blocks: u64,
    pub transactions: u64,
    pub signatures: u64,
    pub documents: usize,
    pub departments: usize,
    pub members: usize,
    /// Document events on chain by kind (registered, offered, …).
    pub events: BTreeMap<String, u64>,
    pub proof_checked: bool,
    pub fixity_checked: bool,
    pub export_file: PathBuf,
    pub export_bytes: u64,
}

fn event_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Registered { .. } | EventKind::RegisteredSealed { .. } => "registered",
        EventKind::Offered { .. } => "offered",
        EventKind::Accepted { .. } => "accepted",
        EventKind::Rejected { .. } | EventKind::RejectedSealed { .. } => "rejected",
        EventKind::Cancelled => "cancelled",
        EventKind::Granted { .. } => "granted",
        EventKind::Revoked { .. } => "revoked",
        EventKind::Accessed { .. } | EventKind::AccessedSealed { .. } => "read",
        EventKind::Amended { .. } | EventKind::AmendedSealed { .. } => "amended",
        EventKind::FixityChecked { .. } => "fixity-checked",
        EventKind::Disposed { .. } | EventKind::DisposedSealed { .. } => "disposed",
    }
}

/// Runs one `custody audit …` command and prints its output indented.
fn audit(command: AuditCommand) -> Result<String, DemoError> {
    let mut out = Vec::new();
    let result = custody_cli::audit::run_audit_to(
        AuditArgs {
            command,
            time_zone: custody_cli::when::Zone::default(),
        },
        &mut out,
    );
    let text = String::from_utf8_lossy(&out).into_owned();
    print_indented(&text);
    result.map_err(DemoError::Audit)?;
    Ok(text)
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("      {line}");
    }
}

fn source(export: &Path, genesis_hash: &str) -> SourceArgs {
    SourceArgs {
        export: Some(export.to_owned()),
        store: None,
        genesis_hash: Some(genesis_hash.to_string()),
        threads: 0,
    }
}

/// The whole audit. `api_url` is the node the chain is downloaded from.
pub async fn run(
    dir: &Path,
    api_url: &str,
    department: &str,
    outcome: &Outcome,
) -> Result<AuditSummary, DemoError> {
    section("Audit: verify everything from the genesis, trusting no node");
    let genesis_path = dir.join("genesis.json");
    let genesis = Genesis::load(&genesis_path).map_err(|error| {
        DemoError::Setup(format!("cannot load {}: {error}", genesis_path.display()))
    })?;
    let genesis_hash = genesis.hash().to_hex();
    let audit_dir = dir.join("audit");
    std::fs::create_dir_all(&audit_dir).map_err(|source| DemoError::Io {
        action: "create",
        path: audit_dir.clone(),
        source,
    })?;
    let export = audit_dir.join("chain.export");
    let auditor_key = dir.join(custody_node::testnet::TESTNET_AUDITOR_KEY_FILE);
    say(
        "auditor",
        "",
        &format!(
            "custody chain export --node {api_url} --genesis {} --key {} --to {}  (every block and certificate, from {department}'s node, read as the auditor its api.auditor_keys names)",
            genesis_path.display(),
            auditor_key.display(),
            export.display()
        ),
    );
    let command = ChainCommand::Export {
        store: None,
        node: Some(api_url.to_string()),
        genesis: Some(genesis_path.clone()),
        reader: custody_cli::audit::ReaderKeyArgs {
            key: Some(auditor_key),
            passphrase_env: None,
        },
        to: export.clone(),
        json: false,
    };
    // The export command runs its own small runtime: give it a thread
    // outside this one.
    let (text, result) = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let result = custody_cli::audit::run_chain_to(ChainArgs { command }, &mut out);
        (String::from_utf8_lossy(&out).into_owned(), result)
    })
    .await
    .map_err(|error| DemoError::Setup(format!("the export stopped: {error}")))?;
    print_indented(&text);
    result.map_err(DemoError::Audit)?;
    let bytes = std::fs::metadata(&export).map(|m| m.len()).unwrap_or(0);

    say(
        "auditor",
        "",
        &format!(
            "custody audit verify --export {} --genesis-hash {genesis_hash}",
            export.display()
        ),
    );
    audit(AuditCommand::Verify(VerifyArgs {
        source: source(&export, &genesis_hash),
        blobs: None,
        json: false,
    }))?;
    // The verified replay's state, to count the events it holds.
    let loaded = custody_cli::audit::load_chain(&source(&export, &genesis_hash), false)
        .map_err(DemoError::Audit)?;
    let mut events: BTreeMap<String, u64> = BTreeMap::new();
    for event in loaded.state.events.values().flatten() {
        *events
            .entry(event_name(&event.kind).to_string())
            .or_default() += 1;
    }
    let mut summary = AuditSummary {
        verified: true,
        genesis_hash: genesis_hash.clone(),
        blocks: loaded.report.blocks,
        transactions: loaded.report.transactions,
        signatures: loaded.report.signatures,
        documents: loaded.state.documents.len(),
        departments: loaded.state.departments.len(),
        members: loaded.state.members.len(),
        events,
        export_file: export.clone(),
        export_bytes: bytes,
        ..AuditSummary::default()
    };

    if let Some(document) = &outcome.amended {
        say(
            "auditor",
            "",
            &format!("custody audit history {document}: every event with its inclusion proof and certificate; the title, purposes and notes stay sealed to an auditor who holds no department key"),
        );
        audit(AuditCommand::History(HistoryArgs {
            document: document.clone(),
            source: source(&export, &genesis_hash),
            department_key: None,
            department_key_passphrase_env: None,
            json: false,
        }))?;
    }

    if let Some((document, tx)) = &outcome.transferred {
        let proof = audit_dir.join(format!("{document}-accepted.proof"));
        say(
            "auditor",
            "",
            &format!(
                "custody audit prove {tx} --out {}  (the acceptance of {document})",
                proof.display()
            ),
        );
        audit(AuditCommand::Prove(ProveArgs {
            tx: tx.clone(),
            source: source(&export, &genesis_hash),
            out: proof.clone(),
            json: false,
        }))?;
        say(
            "auditor",
            "",
            &format!(
                "custody audit check-proof {} --genesis {} --export {}  (offline: the proof and the genesis prove; the export only names the signer)",
                proof.display(),
                genesis_path.display(),
                export.display()
            ),
        );
        audit(AuditCommand::CheckProof(CheckProofArgs {
            proof,
            genesis: genesis_path.clone(),
            export: Some(export.clone()),
            department_key: None,
            department_key_passphrase_env: None,
            json: false,
        }))?;
        summary.proof_checked = true;
    }

    for (document, file) in [&outcome.checked_copy, &outcome.old_copy]
        .into_iter()
        .flatten()
    {
        say(
            "auditor",
            "",
            &format!("custody audit fixity {document} {}", file.display()),
        );
        audit(AuditCommand::Fixity(FixityArgs {
            document: document.clone(),
            file: file.clone(),
            source: source(&export, &genesis_hash),
            json: false,
        }))?;
        summary.fixity_checked = true;
    }
    Ok(summary)
}

/// Prints the audit summary in plain words, and one line a script can read.
pub fn print_summary(summary: &AuditSummary) {
    section("Audit summary");
    println!(
        "  chain        verified from genesis {} ({} blocks, {} transactions, {} signatures)",
        summary.genesis_hash, summary.blocks, summary.transactions, summary.signatures
    );
    println!(
        "  holdings     {} documents, {} departments, {} members",
        summary.documents, summary.departments, summary.members
    );
    let events: Vec<String> = summary
        .events
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    println!("  events       {}", events.join(", "));
    println!(
        "  proof        {}",
        if summary.proof_checked {
            "checked offline against the genesis"
        } else {
            "not checked"
        }
    );
    println!(
        "  fixity       {}",
        if summary.fixity_checked {
            "files in hand matched their registered versions"
        } else {
            "not checked"
        }
    );
    let machine: Vec<String> = summary
        .events
        .iter()
        .map(|(kind, count)| format!("{kind}={count}"))
        .collect();
    println!(
        "audit: chain verified blocks={} transactions={} events: {}",
        summary.blocks,
        summary.transactions,
        machine.join(" ")
    );
}
