//! The auditor's commands (`custody audit …`), chain export and import
//! (`custody chain …`) and the genesis ceremony (`custody genesis …`).
//!
//! Every audit command starts by verifying the chain it reads from its
//! genesis (an export file or a node's store), so that nothing it prints
//! rests on a node's word: history, proofs, fixity answers and reports are
//! all computed from the replayed state. The commands are exposed as clap
//! argument structs and `run_*` functions for the `custody` binary to wire.

mod anomalies;
mod chain;
mod evidence;
mod genesis;
mod login;
mod reads;
mod remote;
mod report;
mod source;
mod time;

pub use time::format_ms;

/// Verification threads for `requested` (0: one per core, plus the replay).
pub fn verify_thread_count(requested: usize) -> usize {
    source::verify_threads(requested)
}

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use custody_ledger::export::{ExportError, ExportVerifyError, ImportError};
use custody_ledger::proof::{self, ProofError, ProveError, TxProof};
use custody_ledger::types::{DocumentId, Hash32, TxId};
use custody_ledger::verify::VerifyError;
use custody_ledger::Genesis;
use serde::Serialize;

pub use anomalies::AnomaliesArgs;
pub use chain::{run_chain, run_chain_to, ChainArgs, ChainCommand};
pub use evidence::{EvidenceArgs, ListedEvidence};
pub use genesis::{
    department_keys, read_contribution, run_genesis, run_genesis_to, Contribution, GenesisArgs,
    GenesisCommand,
};
pub use login::LoginArgs;
pub use reads::{read_account, Denial, DenialsArgs};
pub use remote::ReaderKeyArgs;
pub use report::ReportArgs;
pub use source::{load_chain, LoadedChain, SourceArgs};

/// Why an audit, chain or genesis command failed. Each message names what
/// the reader must look at.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("chain verification failed at {0}")]
    Verify(VerifyError),
    #[error(
        "the chain in the ledger store failed verification at {0}; {hint}",
        hint = custody_ledger::store::REPAIR_HINT
    )]
    StoreVerify(VerifyError),
    #[error("export: {0}")]
    Export(#[from] ExportError),
    #[error("import: {0}")]
    Import(#[from] ImportError),
    #[error("store: {0}")]
    Store(#[from] custody_ledger::store::StoreError),
    #[error(
        "the ledger store at {store} is behind what its node committed: its head is height \
         {found}, but the consensus state {state} beside it shows height {committed} was \
         committed. The store was rolled back or truncated; {hint}",
        hint = custody_ledger::store::REPAIR_HINT
    )]
    StoreBehind {
        store: String,
        state: String,
        found: u64,
        committed: u64,
    },
    #[error("export holds genesis {found}, the auditor expected {expected}")]
    GenesisNotExpected { expected: Hash32, found: Hash32 },
    #[error("genesis: {0}")]
    Genesis(#[from] custody_ledger::genesis::GenesisError),
    /// Boxed: a proof error carries a whole certificate error.
    #[error("proof: {0}")]
    Proof(Box<ProofError>),
    #[error("cannot build the proof: {0}")]
    Prove(#[from] ProveError),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("{0}")]
    BadArgument(String),
    #[error("the chain's read attestations do not add up: {0}")]
    Reads(String),
    #[error("document `{0}` is not on this chain")]
    UnknownDocument(String),
    #[error("the file does not match any registered version of `{document}`: it is {size} bytes with SHA-256 {sha256}")]
    FixityMismatch {
        document: String,
        sha256: Hash32,
        size: u64,
    },
    #[error("{mismatched} blob(s) do not match their fingerprint on chain; first: {first}")]
    BlobMismatch { mismatched: u64, first: String },
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
    #[error("JSON output: {0}")]
    Json(#[from] serde_json::Error),
    #[error("key: {0}")]
    Key(String),
    #[error("node {url}: {reason}")]
    Node { url: String, reason: String },
}

impl From<ProofError> for AuditError {
    fn from(e: ProofError) -> Self {
        AuditError::Proof(Box::new(e))
    }
}

impl From<ExportVerifyError> for AuditError {
    fn from(e: ExportVerifyError) -> Self {
        match e {
            ExportVerifyError::File(e) => AuditError::Export(e),
            ExportVerifyError::GenesisNotExpected { expected, found } => {
                AuditError::GenesisNotExpected { expected, found }
            }
            ExportVerifyError::Chain(e) => AuditError::Verify(e),
        }
    }
}

/// `custody audit …`
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
    /// The time zone times are printed in, and dates given without an
    /// offset are read in (an IANA name). `--json` output stays RFC 3339
    /// UTC.
    #[arg(
        long,
        global = true,
        env = crate::when::TIME_ZONE_ENV,
        default_value = crate::when::DEFAULT_TIME_ZONE,
        value_parser = crate::when::Zone::parse_arg,
        value_name = "ZONE"
    )]
    pub time_zone: crate::when::Zone,
}

/// The auditor's commands.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify the whole chain from its genesis: hash links, Merkle roots,
    /// every certificate against the validator set in force, every
    /// signature, and re-execution of every transaction.
    #[command(
        after_help = "Example:\n  custody audit verify --export chain.export --genesis-hash 9c1e…(64 hex)\n  custody audit verify --store /srv/custody/data/ledger --blobs /srv/custody/data/blobs --json"
    )]
    Verify(VerifyArgs),
    /// A document's full custody and access history, each event with its
    /// inclusion proof and its block's certificate.
    #[command(
        after_help = "Example:\n  custody audit history civil-affairs-5f2c --export chain.export --genesis-hash 9c1e…(64 hex)"
    )]
    History(HistoryArgs),
    /// Write a self-contained proof that a transaction is final.
    #[command(
        after_help = "Example:\n  custody audit prove d90e…(64 hex) --export chain.export --out d90e.proof\n  custody audit prove d90e…(64 hex) --export chain.export --out d90e.proof --json"
    )]
    Prove(ProveArgs),
    /// Check a proof file offline against the genesis.
    #[command(
        after_help = "Example:\n  custody audit check-proof d90e.proof --genesis genesis.json"
    )]
    CheckProof(CheckProofArgs),
    /// Say whether a file in hand is a registered version of a document.
    #[command(
        after_help = "Example:\n  custody audit fixity civil-affairs-5f2c extract.pdf --export chain.export"
    )]
    Fixity(FixityArgs),
    /// Who held what for how long, who read what and how often.
    #[command(
        after_help = "Example:\n  custody audit report --export chain.export --json > report.json"
    )]
    Report(ReportArgs),
    /// Unusual behaviour (bulk reads, reads at night, unfamiliar records,
    /// reads before a transfer or a revocation, grant bursts, unused
    /// grants, documents read by many departments, denied attempts), each
    /// alert with the member, department, documents and evidence.
    #[command(
        after_help = "Example:\n  custody audit anomalies --export chain.export\n  custody audit anomalies --export chain.export --json"
    )]
    Anomalies(AnomaliesArgs),
    /// Refused reads, by member: each carries the member's own signed read
    /// request, as the refusing node attested it on chain.
    #[command(after_help = "Example:\n  custody audit denials --export chain.export --json")]
    Denials(DenialsArgs),
    /// Equivocation evidence on chain: each validator that signed two
    /// conflicting votes, its department, the height, round and the two
    /// blocks, and the transaction and block that recorded it.
    Evidence(EvidenceArgs),
    /// Open the node's auditor pages in a browser: signs a request for a
    /// one-time link and prints it.
    #[command(
        after_help = "Example:\n  custody audit login --node http://127.0.0.1:26680 --key auditor.key"
    )]
    Login(LoginArgs),
}

/// `custody audit verify`
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Also re-hash every stored ciphertext in this blob directory against
    /// its fingerprint on chain (files named by the ciphertext's SHA-256 in
    /// hex, directly in DIR or under DIR/<first two hex digits>/).
    #[arg(long, value_name = "DIR")]
    pub blobs: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custody audit history`
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Document id.
    pub document: String,
    #[command(flatten)]
    pub source: SourceArgs,
    /// A department's encryption key file: the sealed title, reasons,
    /// purposes and notes sealed under any key that department was given
    /// are shown in the clear. Verification needs no key.
    #[arg(long, value_name = "FILE")]
    pub department_key: Option<PathBuf>,
    /// Environment variable holding `--department-key`'s passphrase, if it
    /// is sealed.
    #[arg(long, value_name = "VAR", requires = "department_key")]
    pub department_key_passphrase_env: Option<String>,
    /// Print JSON, with every proof and certificate in full.
    #[arg(long)]
    pub json: bool,
}

/// `custody audit prove`
#[derive(Args, Debug)]
pub struct ProveArgs {
    /// Transaction id (64 hex digits).
    pub tx: String,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where to write the proof.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print what was proved as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custody audit check-proof`
#[derive(Args, Debug)]
pub struct CheckProofArgs {
    /// The proof file written by `custody audit prove`.
    pub proof: PathBuf,
    /// The genesis file (TOML, or JSON if it ends in .json) the auditor
    /// trusts; the proof must lead back to it.
    #[arg(long, value_name = "GENESIS")]
    pub genesis: PathBuf,
    /// An export of the same chain, to name the signer (member, department)
    /// and open a sealed text with --department-key. The proof alone is
    /// what proves; the export only adds names.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// A department secret key file: with --export, opens the proved
    /// transaction's sealed text (purpose, reason, note) when the chain
    /// wrapped the document's key to that department.
    #[arg(long, value_name = "FILE", requires = "export")]
    pub department_key: Option<PathBuf>,
    /// The environment variable holding the department key's passphrase.
    #[arg(long, value_name = "VAR", requires = "department_key")]
    pub department_key_passphrase_env: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custody audit fixity`
#[derive(Args, Debug)]
pub struct FixityArgs {
    /// Document id.
    pub document: String,
    /// The plaintext file in hand.
    pub file: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `custody audit …`, printing to stdout.
pub fn run_audit(args: AuditArgs) -> Result<(), AuditError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_audit_to(args, &mut out)
}

/// Run `custody audit …`, printing to `out` (progress goes to stderr when
/// it is a terminal).
pub fn run_audit_to(args: AuditArgs, out: &mut dyn Write) -> Result<(), AuditError> {
    let zone = &args.time_zone;
    match args.command {
        AuditCommand::Verify(a) => verify(a, out),
        AuditCommand::History(a) => history(a, zone, out),
        AuditCommand::Prove(a) => prove(a, out),
        AuditCommand::CheckProof(a) => check_proof(a, zone, out),
        AuditCommand::Fixity(a) => fixity(a, out),
        AuditCommand::Report(a) => report::report(a, zone, out),
        AuditCommand::Anomalies(a) => anomalies::anomalies(a, zone, out),
        AuditCommand::Denials(a) => reads::denials(a, zone, out),
        AuditCommand::Evidence(a) => evidence::evidence(a, out),
        AuditCommand::Login(a) => login::login(a, out),
    }
}

/// Whether to draw progress bars.
pub(crate) fn show_progress() -> bool {
    std::io::stderr().is_terminal()
}

#[derive(Serialize)]
struct VerifySummary {
    ok: bool,
    chain_id: String,
    genesis_hash: String,
    heights: String,
    /// Where the head height came from.
    head_source: String,
    last_block_hash: String,
    blocks: u64,
    transactions: u64,
    signatures: u64,
    documents: usize,
    departments: usize,
    members: usize,
    state_digest: String,
    seconds: f64,
    transactions_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    blobs: Option<BlobSummary>,
    /// `attest-read` outcomes on the chain.
    reads_served: usize,
    reads_failed: usize,
    reads_denied: usize,
    /// Equivocation records, each re-checked by the replay (votes' signatures
    /// under the validator set of their height).
    evidence: usize,
}

#[derive(Serialize, Default)]
struct BlobSummary {
    checked: u64,
    matched: u64,
    missing: u64,
    mismatched: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing_examples: Vec<String>,
}

fn verify(args: VerifyArgs, out: &mut dyn Write) -> Result<(), AuditError> {
    let loaded = load_chain(&args.source, show_progress())?;
    let report = &loaded.report;
    let seconds = loaded.elapsed.as_secs_f64();
    let blobs = match &args.blobs {
        Some(dir) => Some(check_blobs(&loaded, dir)?),
        None => None,
    };
    // What the state machine cannot see: every served or failed read names
    // a committed access record of that member, and no record served twice.
    let reads = read_account(&loaded)?;
    let summary = VerifySummary {
        ok: true,
        chain_id: loaded.genesis.chain_id.clone(),
        genesis_hash: report.genesis_hash.to_hex(),
        heights: format!("1..={}", report.height),
        head_source: loaded.head_source.clone(),
        last_block_hash: report.last_block_hash.to_hex(),
        blocks: report.blocks,
        transactions: report.transactions,
        signatures: report.signatures,
        documents: loaded.state.documents.len(),
        departments: loaded.state.departments.len(),
        members: loaded.state.members.len(),
        state_digest: report.state_digest.to_hex(),
        seconds,
        transactions_per_second: report.transactions as f64 / seconds.max(1e-9),
        blobs,
        reads_served: reads.served.len(),
        reads_failed: reads.failed.len(),
        reads_denied: reads.denied.len(),
        evidence: loaded.state.evidence.len(),
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &summary)?;
        writeln!(out)?;
    } else {
        writeln!(out, "chain verified from genesis")?;
        writeln!(out, "  chain id        {}", summary.chain_id)?;
        writeln!(out, "  genesis         {}", summary.genesis_hash)?;
        writeln!(
            out,
            "  heights         1 to {} ({} blocks)",
            report.height, report.blocks
        )?;
        writeln!(out, "  head            {}", summary.head_source)?;
        writeln!(out, "  last block      {}", summary.last_block_hash)?;
        writeln!(out, "  transactions    {}", summary.transactions)?;
        writeln!(out, "  signatures      {}", summary.signatures)?;
        writeln!(out, "  documents       {}", summary.documents)?;
        writeln!(out, "  departments     {}", summary.departments)?;
        writeln!(out, "  members         {}", summary.members)?;
        writeln!(out, "  state digest    {}", summary.state_digest)?;
        writeln!(
            out,
            "  reads           {} served, {} failed, {} denied (attested by the serving nodes)",
            summary.reads_served, summary.reads_failed, summary.reads_denied
        )?;
        writeln!(
            out,
            "  evidence        {} equivocation record(s), votes checked (`custody audit evidence` lists them)",
            summary.evidence
        )?;
        writeln!(
            out,
            "  time taken      {:.2} s ({:.0} transactions/s)",
            seconds, summary.transactions_per_second
        )?;
        if let Some(b) = &summary.blobs {
            writeln!(
                out,
                "  blobs           {} checked, {} match, {} missing, {} differ",
                b.checked, b.matched, b.missing, b.mismatched
            )?;
            for m in &b.missing_examples {
                writeln!(out, "    missing {m}")?;
            }
        }
    }
    if let Some(b) = &summary.blobs {
        if b.mismatched > 0 {
            return Err(AuditError::BlobMismatch {
                mismatched: b.mismatched,
                first: loaded_first_mismatch(&loaded, args.blobs.as_deref()),
            });
        }
    }
    Ok(())
}

/// Every ciphertext fingerprint on chain: each document's current version
/// and the versions its amendments replaced.
fn ciphertexts(loaded: &LoadedChain) -> Vec<(String, u32, custody_ledger::types::Fixity)> {
    let mut out = Vec::new();
    for (id, events) in &loaded.state.events {
        for e in events {
            if let Some((version, _, ciphertext)) = e.kind.new_version() {
                out.push((id.to_string(), version, *ciphertext));
            }
        }
    }
    out
}

fn blob_path(dir: &Path, sha256: &Hash32) -> Option<PathBuf> {
    let name = sha256.to_hex();
    let flat = dir.join(&name);
    if flat.is_file() {
        return Some(flat);
    }
    let nested = dir.join(&name[..2]).join(&name);
    nested.is_file().then_some(nested)
}

/// SHA-256 and size of a file, streamed.
pub(crate) fn hash_file(path: &Path) -> Result<(Hash32, u64), AuditError> {
    use sha2::{Digest, Sha256};
    let read = |e: std::io::Error| AuditError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(read)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((Hash32(hasher.finalize().into()), size))
}

fn check_blobs(loaded: &LoadedChain, dir: &Path) -> Result<BlobSummary, AuditError> {
    let mut summary = BlobSummary::default();
    for (document, version, fixity) in ciphertexts(loaded) {
        summary.checked += 1;
        match blob_path(dir, &fixity.sha256) {
            None => {
                summary.missing += 1;
                if summary.missing_examples.len() < 10 {
                    summary
                        .missing_examples
                        .push(format!("{document} version {version} ({})", fixity.sha256));
                }
            }
            Some(path) => {
                let (sha256, size) = hash_file(&path)?;
                if sha256 == fixity.sha256 && size == fixity.size_bytes {
                    summary.matched += 1;
                } else {
                    summary.mismatched += 1;
                }
            }
        }
    }
    Ok(summary)
}

fn loaded_first_mismatch(loaded: &LoadedChain, dir: Option<&Path>) -> String {
    let Some(dir) = dir else {
        return String::new();
    };
    for (document, version, fixity) in ciphertexts(loaded) {
        if let Some(path) = blob_path(dir, &fixity.sha256) {
            if let Ok((sha256, size)) = hash_file(&path) {
                if sha256 != fixity.sha256 || size != fixity.size_bytes {
                    return format!(
                        "{document} version {version}: blob {} is {size} bytes with SHA-256 {sha256}, the chain says {} bytes with SHA-256 {}",
                        path.display(),
                        fixity.size_bytes,
                        fixity.sha256
                    );
                }
            }
        }
    }
    String::new()
}

fn document_id(value: &str) -> Result<DocumentId, AuditError> {
    DocumentId::new(value).map_err(|e| AuditError::BadArgument(e.to_string()))
}

#[derive(Serialize)]
struct HistoryEntry {
    event: custody_ledger::records::DocumentEvent,
    /// The signer by name and department, as the chain records them.
    by: crate::names::Who,
    event_hash: String,
    time: String,
    block_hash: String,
    proof_checked: bool,
    certificate_signers: usize,
    included: proof::IncludedTx,
}

fn history(
    args: HistoryArgs,
    zone: &crate::when::Zone,
    out: &mut dyn Write,
) -> Result<(), AuditError> {
    let id = document_id(&args.document)?;
    let loaded = load_chain(&args.source, show_progress())?;
    let events = loaded
        .state
        .events
        .get(&id)
        .ok_or_else(|| AuditError::UnknownDocument(id.to_string()))?;
    let names = crate::names::Names::new(&loaded.state);
    let mut entries = Vec::new();
    for event in events {
        let location = *loaded
            .state
            .tx_locations
            .get(&event.tx)
            .ok_or(AuditError::Prove(ProveError::UnknownTransaction(event.tx)))?;
        let included = proof::included_tx(loaded.source.as_ref(), location)?;
        let proof_checked = custody_ledger::merkle::verify_inclusion(
            &included.header.tx_root,
            &event.tx.0,
            &included.inclusion,
        ) && included.certificate.block_hash == included.header.hash();
        entries.push(HistoryEntry {
            by: names.who(&event.member),
            event_hash: event.hash().to_hex(),
            time: time::shown(event.time.0, args.json, zone),
            block_hash: included.header.hash().to_hex(),
            proof_checked,
            certificate_signers: included.certificate.signatures.len(),
            event: event.clone(),
            included,
        });
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &entries)?;
        writeln!(out)?;
        return Ok(());
    }
    let secret = args
        .department_key
        .as_ref()
        .map(|path| {
            crate::sealed_text::read_department_key(
                path,
                args.department_key_passphrase_env.as_deref(),
            )
            .map_err(AuditError::BadArgument)
        })
        .transpose()?;
    let opener = crate::sealed_text::Opener::from_wrapped(
        &id,
        entries.iter().filter_map(|e| {
            crate::sealed_text::wrapped_key_of(&e.included.transaction.payload.body)
        }),
        secret.as_ref(),
    );
    let sealed_title = entries
        .iter()
        .filter_map(|e| e.event.kind.sealed_title())
        .next_back();
    let document = loaded.state.documents.get(&id);
    if let Some(d) = document {
        writeln!(
            out,
            "{} \"{}\" ({}, {}), version {}, custodian {}, status {}",
            d.id,
            opener.title(d, sealed_title),
            d.record_type,
            d.classification,
            d.version,
            d.custodian,
            d.status.name()
        )?;
    }
    for e in &entries {
        let ev = &e.event;
        writeln!(
            out,
            "#{} {} height {} {} by {}",
            ev.sequence,
            e.time,
            ev.height,
            describe(&ev.kind, &opener, zone),
            e.by.label()
        )?;
        writeln!(
            out,
            "    tx {} leaf {} of {}, {} path hashes, block {}, certificate by {} validators, round {}: {}",
            ev.tx,
            e.included.inclusion.index,
            e.included.inclusion.tree_size,
            e.included.inclusion.path.len(),
            e.block_hash,
            e.certificate_signers,
            e.included.certificate.round,
            if e.proof_checked { "proof checked" } else { "PROOF DOES NOT CHECK" }
        )?;
        writeln!(
            out,
            "    event hash {} (previous {})",
            e.event_hash, ev.previous
        )?;
    }
    Ok(())
}

/// One line for an event, in plain words.
pub(crate) fn describe(
    kind: &custody_ledger::records::EventKind,
    opener: &crate::sealed_text::Opener,
    zone: &crate::when::Zone,
) -> String {
    use custody_ledger::records::EventKind as K;
    let text = || opener.event_text(kind).unwrap_or_default();
    match kind {
        K::Registered {
            classification,
            plaintext,
            ..
        }
        | K::RegisteredSealed {
            classification,
            plaintext,
            ..
        } => format!(
            "registered ({classification}, {} bytes, SHA-256 {})",
            plaintext.size_bytes, plaintext.sha256
        ),
        K::Offered { to, .. } => format!("offered to {to}"),
        K::Accepted { from } => format!("accepted from {from}"),
        K::Rejected { .. } | K::RejectedSealed { .. } => format!("rejected: {}", text()),
        K::Cancelled => "offer cancelled".to_string(),
        K::Granted { to, expires_at } => {
            format!(
                "read access granted to {to} until {}",
                zone.show(expires_at.0)
            )
        }
        K::Revoked { from } => format!("read access revoked from {from}"),
        K::Accessed { .. } | K::AccessedSealed { .. } => format!("opened for \"{}\"", text()),
        K::Amended {
            version, reason, ..
        }
        | K::AmendedSealed {
            version, reason, ..
        } => match text() {
            note if note.is_empty() => format!("amended to version {version} ({reason:?})"),
            note => format!("amended to version {version} ({reason:?}): {note}"),
        },
        K::FixityChecked { result, .. } => format!("fixity checked: {result:?}"),
        K::Disposed { .. } | K::DisposedSealed { .. } => format!("disposed: {}", text()),
    }
}

fn prove(args: ProveArgs, out: &mut dyn Write) -> Result<(), AuditError> {
    let tx = TxId::from_hex(&args.tx)
        .map_err(|e| AuditError::BadArgument(format!("transaction id: {e}")))?;
    let loaded = load_chain(&args.source, show_progress())?;
    let built = proof::build_tx_proof(&loaded.genesis, &loaded.state, loaded.source.as_ref(), &tx)?;
    // Never hand out a proof that does not check.
    let summary = built.check(&loaded.genesis)?;
    let bytes = built.to_file_bytes();
    write_file(&args.out, &bytes)?;
    if args.json {
        let value = serde_json::json!({
            "tx_id": summary.tx_id.to_string(),
            "height": summary.height.0,
            "governance_links": summary.governance_links,
            "bytes": bytes.len(),
            "file": args.out,
        });
        serde_json::to_writer_pretty(&mut *out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "proof of {} (height {}, {} governance link(s), {} bytes) written to {}",
        summary.tx_id,
        summary.height,
        summary.governance_links,
        bytes.len(),
        args.out.display()
    )?;
    Ok(())
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    std::fs::write(path, bytes).map_err(|e| AuditError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn read_file_limited(path: &Path, max: u64) -> Result<Vec<u8>, AuditError> {
    let read = |reason: String| AuditError::Read {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| read(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read(e.to_string()))?;
    if bytes.len() as u64 > max {
        return Err(read(format!("larger than the limit of {max} bytes")));
    }
    Ok(bytes)
}

#[derive(Serialize)]
struct CheckedProof {
    ok: bool,
    tx_id: String,
    kind: &'static str,
    signer: String,
    /// The signer by name and department, when an export was given.
    signer_who: Option<crate::names::Who>,
    /// What the proved transaction says, in plain words.
    says: String,
    height: u64,
    index: u64,
    block_hash: String,
    time: String,
    governance_links: usize,
    validators: usize,
    genesis_hash: String,
}

fn check_proof(
    args: CheckProofArgs,
    zone: &crate::when::Zone,
    out: &mut dyn Write,
) -> Result<(), AuditError> {
    let genesis = Genesis::load(&args.genesis)?;
    let bytes = read_file_limited(&args.proof, proof::PROOF_BYTES_MAX as u64)?;
    let proof = TxProof::from_file_bytes(&bytes)?;
    let s = proof.check(&genesis)?;
    let body = &proof.target.transaction.payload.body;
    let (signer_who, text) = match &args.export {
        Some(export) => {
            let source = SourceArgs {
                export: Some(export.clone()),
                store: None,
                genesis_hash: Some(genesis.hash().to_hex()),
                threads: 0,
            };
            let loaded = load_chain(&source, show_progress())?;
            let who = crate::names::Names::new(&loaded.state).who(&s.signer);
            let text = sealed_text_of_proved(&args, &loaded, body)?;
            (Some(who), text)
        }
        None => (None, None),
    };
    let checked = CheckedProof {
        ok: true,
        tx_id: s.tx_id.to_hex(),
        kind: s.kind,
        signer: s.signer.to_hex(),
        signer_who,
        says: crate::names::what_it_says(body, text.as_deref()),
        height: s.height.0,
        index: s.index,
        block_hash: s.block_hash.to_hex(),
        time: time::shown(s.time_ms, args.json, zone),
        governance_links: s.governance_links,
        validators: s.validators,
        genesis_hash: genesis.hash().to_hex(),
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &checked)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "proof holds: transaction {} ({}, signed by {}) is final in block {} at height {}, {}",
            checked.tx_id,
            checked.kind,
            checked
                .signer_who
                .as_ref()
                .map(|w| w.label())
                .unwrap_or_else(|| checked.signer.clone()),
            checked.block_hash,
            checked.height,
            checked.time
        )?;
        writeln!(out, "  it says: {}", checked.says)?;
        writeln!(
            out,
            "  certified by {} validators' set derived from genesis {} through {} governance change(s)",
            checked.validators, checked.genesis_hash, checked.governance_links
        )?;
    }
    Ok(())
}

/// The proved transaction's sealed text opened with the department key,
/// when one was given and the chain wrapped the document's key to it.
fn sealed_text_of_proved(
    args: &CheckProofArgs,
    loaded: &LoadedChain,
    body: &custody_ledger::tx::TxBody,
) -> Result<Option<String>, AuditError> {
    let (Some(path), Some(document)) = (&args.department_key, body.document()) else {
        return Ok(None);
    };
    let secret = crate::sealed_text::read_department_key(
        path,
        args.department_key_passphrase_env.as_deref(),
    )
    .map_err(AuditError::BadArgument)?;
    let mut wrapped = Vec::new();
    for event in loaded.state.events.get(document).into_iter().flatten() {
        let Some(location) = loaded.state.tx_locations.get(&event.tx) else {
            continue;
        };
        let included = proof::included_tx(loaded.source.as_ref(), *location)?;
        if let Some(key) = crate::sealed_text::wrapped_key_of(&included.transaction.payload.body) {
            wrapped.push(key.clone());
        }
    }
    let opener = crate::sealed_text::Opener::from_wrapped(document, wrapped.iter(), Some(&secret));
    Ok(opener.body_text(body))
}

#[derive(Serialize)]
struct FixityAnswer {
    document: String,
    file_sha256: String,
    file_size_bytes: u64,
    matches_version: Option<u32>,
    current_version: u32,
    is_current: bool,
}

fn fixity(args: FixityArgs, out: &mut dyn Write) -> Result<(), AuditError> {
    let id = document_id(&args.document)?;
    let (sha256, size) = hash_file(&args.file)?;
    let loaded = load_chain(&args.source, show_progress())?;
    let document = loaded
        .state
        .documents
        .get(&id)
        .ok_or_else(|| AuditError::UnknownDocument(id.to_string()))?;
    let mut versions = Vec::new();
    for e in loaded.state.events.get(&id).into_iter().flatten() {
        if let Some((version, plaintext, _)) = e.kind.new_version() {
            versions.push((version, *plaintext));
        }
    }
    let matched = versions
        .iter()
        .rev()
        .find(|(_, f)| f.sha256 == sha256 && f.size_bytes == size)
        .map(|(v, _)| *v);
    let answer = FixityAnswer {
        document: id.to_string(),
        file_sha256: sha256.to_hex(),
        file_size_bytes: size,
        matches_version: matched,
        current_version: document.version,
        is_current: matched == Some(document.version),
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &answer)?;
        writeln!(out)?;
    }
    match matched {
        Some(v) => {
            if !args.json {
                if v == document.version {
                    writeln!(
                        out,
                        "{} is the registered current version ({v}) of {id}: {size} bytes, SHA-256 {sha256}",
                        args.file.display()
                    )?;
                } else {
                    writeln!(
                        out,
                        "{} is version {v} of {id}, which was since amended; the current version is {}",
                        args.file.display(),
                        document.version
                    )?;
                }
            }
            Ok(())
        }
        None => Err(AuditError::FixityMismatch {
            document: id.to_string(),
            sha256,
            size,
        }),
    }
}

/// Writes the chain `node` (an HTTP API URL) serves, block by block up to
/// its height, into an export at `to`, refusing a node on another genesis.
/// Nothing the node sends is trusted: verify the file before using it.
/// Block reads are signed by `key` (a department node's, a member's or a
/// configured auditor's).
pub fn export_node_chain(
    node: &str,
    genesis: &custody_ledger::Genesis,
    to: &std::path::Path,
    key: Option<&ed25519_dalek::SigningKey>,
) -> Result<custody_ledger::export::Trailer, AuditError> {
    remote::export_from_node(node, genesis, to, key)
}
