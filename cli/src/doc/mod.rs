//! `custody doc …`: the clerk's document workflow on the command line.
//!
//! Every command talks to the clerk's own department node over its HTTP
//! API. The steps that record something (register, offer, accept, …) are
//! the [`crate::clerk`] library's functions: a command here parses its
//! arguments, calls one and prints its outcome in words or as JSON. The
//! reads (show, history, list, receipt) are here whole.

pub mod node_api;
mod ops;
pub(crate) mod sealed;
pub mod util;

use std::path::PathBuf;

use clap::{Args, Subcommand};

pub use ops::run;

/// `custody doc …`
#[derive(Args)]
pub struct DocArgs {
    #[command(subcommand)]
    pub command: DocCommand,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What every document command may need.
#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Your department node's HTTP API.
    #[arg(
        long,
        global = true,
        env = "CUSTODY_NODE",
        default_value = "http://127.0.0.1:26680"
    )]
    pub node: String,
    /// Your member key file (signs transactions and read requests).
    #[arg(long, global = true, env = "CUSTODY_MEMBER_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Your department's encryption key file (unwraps data keys).
    #[arg(
        long,
        global = true,
        env = "CUSTODY_DEPARTMENT_KEY",
        value_name = "FILE"
    )]
    pub department_key: Option<PathBuf>,
    /// Passphrase for passphrase-protected key files, read from this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Passphrase for passphrase-protected key files, from this
    /// environment variable (as `custody keys` and `custody audit` take it).
    #[arg(
        long,
        global = true,
        value_name = "VAR",
        conflicts_with = "passphrase_file"
    )]
    pub passphrase_env: Option<String>,
    /// Longest wait for a transaction to commit, in seconds.
    #[arg(long, global = true, default_value_t = 60)]
    pub wait_seconds: u64,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Times a transaction on a document is rebuilt when the node asks to
    /// refresh and retry (another member's event landed first); 0: never.
    #[arg(
        long,
        global = true,
        env = "CUSTODY_TRANSIENT_RETRIES",
        default_value_t = 5,
        value_name = "COUNT"
    )]
    pub transient_retries: u32,
    /// Your department's time zone (an IANA name): dates you type are read
    /// in it (`--until 2026-12-31` ends at the end of that day there) and
    /// times are shown in it with their offset; --json stays in UTC.
    #[arg(
        long,
        global = true,
        env = "CUSTODY_TIME_ZONE",
        default_value = crate::when::DEFAULT_TIME_ZONE,
        value_parser = crate::when::Zone::parse_arg,
        value_name = "ZONE"
    )]
    pub time_zone: crate::when::Zone,
}

#[derive(Subcommand)]
pub enum DocCommand {
    /// Encrypt FILE, upload it to your node and register it on chain.
    #[command(
        after_help = "Example:\n  custody doc register birth-1984-0042.pdf --title \"Birth certificate 1984/0042\" --record-type birth-certificate --classification confidential --retention 30 --format application/pdf --key clerk.key --department-key department.key\n  custody doc register birth-1984-0042.pdf --title \"Birth certificate 1984/0042\" --record-type birth-certificate --created 1984-03-02 --time-zone Asia/Shanghai --key clerk.key --department-key department.key   # made on 2 March 1984, Beijing time"
    )]
    Register(RegisterArgs),
    /// Offer a document you hold to another department (wraps its key to them).
    #[command(
        after_help = "Example:\n  custody doc offer civil-affairs-5f2c --to social-security --until +14d --key clerk.key --department-key department.key\n  custody doc offer civil-affairs-5f2c --to social-security --until 2026-12-31 --time-zone Asia/Shanghai --key clerk.key --department-key department.key   # lapses at 2026-12-31 23:59:59.999 +08:00"
    )]
    Offer {
        /// The document id.
        document: String,
        /// The receiving department's id.
        #[arg(long)]
        to: String,
        /// When the offer lapses: a date YYYY-MM-DD (lapses at the end of that
        /// day in --time-zone), YYYY-MM-DDTHH:MM in --time-zone, a time with
        /// its offset (2026-12-31T17:00:00+08:00), +N{s,m,h,d} or ms since the
        /// epoch (default: the chain's offer expiry).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Fetch an offered document, check its fixity, and accept custody.
    #[command(
        after_help = "Example:\n  custody doc accept civil-affairs-5f2c --key clerk.key --department-key department.key"
    )]
    Accept { document: String },
    /// Refuse an offered document.
    #[command(
        after_help = "Example:\n  custody doc reject civil-affairs-5f2c --reason \"fixity does not match\" --key clerk.key"
    )]
    Reject {
        document: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your department's pending offer.
    #[command(after_help = "Example:\n  custody doc cancel civil-affairs-5f2c --key clerk.key")]
    Cancel { document: String },
    /// Let another department read a document you hold, until a date.
    #[command(
        after_help = "Example:\n  custody doc grant civil-affairs-5f2c --to health --until 2027-06-30 --key clerk.key --department-key department.key   # to the end of 2027-06-30, Beijing time\n  custody doc grant civil-affairs-5f2c --to health --until 2027-06-30T12:00:00Z --key clerk.key --department-key department.key   # an offset is taken as given"
    )]
    Grant {
        document: String,
        /// The department to grant read access to.
        #[arg(long)]
        to: String,
        /// When the grant ends: a date YYYY-MM-DD (the grant lasts to the end
        /// of that day in --time-zone, the day included), YYYY-MM-DDTHH:MM in
        /// --time-zone, a time with its offset (2026-12-31T17:00:00+08:00),
        /// +N{s,m,h,d} or ms since the epoch.
        #[arg(long, default_value = "+30d", value_name = "TIME")]
        until: String,
    },
    /// Withdraw a department's read grant.
    #[command(
        after_help = "Example:\n  custody doc revoke civil-affairs-5f2c --from health --key clerk.key"
    )]
    Revoke {
        document: String,
        /// The department whose grant ends.
        #[arg(long)]
        from: String,
    },
    /// Record a read on chain, then download, decrypt and check the document.
    #[command(
        after_help = "Example:\n  custody doc open civil-affairs-5f2c --output extract.pdf --purpose \"benefit claim 17\" --key clerk.key --department-key department.key"
    )]
    Open {
        document: String,
        /// Where to write the document (written only if its fixity matches).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Why you read it; recorded on chain.
        #[arg(long)]
        purpose: String,
    },
    /// Record a new version of a document your department holds.
    ///
    /// FILE is encrypted under a new data key, uploaded, and recorded as an
    /// amendment (`amend-sealed`): the note and the title are sealed under
    /// the new version's key. The earlier version stays on chain and on the
    /// nodes, under its own key.
    #[command(after_help = "Example:
  custody doc amend civil-affairs-5f2c --file corrected.pdf --reason correction --note \"date of the ceremony was 21 March, not 12 March\" --key clerk.key --department-key department.key")]
    Amend(AmendArgs),
    /// Read a document's ciphertext back, compare it with the chain and record the check.
    ///
    /// The read is recorded on chain first (the read rule wants it), then
    /// the node serves the current version's ciphertext, which is hashed
    /// here and compared with the chain's fingerprint (SHA-256 and size).
    /// The result is recorded as a fixity check either way; a mismatch exits
    /// with code 3. Your department must be the custodian.
    #[command(after_help = "Example:
  custody doc fixity civil-affairs-5f2c --key clerk.key --department-key department.key")]
    Fixity {
        document: String,
        /// Note recorded (sealed) with the check (default: the fingerprints compared).
        #[arg(long)]
        note: Option<String>,
    },
    /// Dispose of a document whose retention has elapsed.
    ///
    /// Signed by an administrator of the custodian department (--key
    /// admin.key, with the department key). A disposal carries one sealed
    /// text: AUTHORITY and REASON are recorded together in it, as
    /// "REASON (authority: AUTHORITY)". The chain refuses it before the
    /// retention has elapsed or for a permanent record (exit code 5). Once
    /// committed, every node deletes the document's ciphertexts, current and
    /// earlier versions; the wrapped data keys stay on chain.
    #[command(after_help = "Example:
  custody doc dispose civil-affairs-1990-17 --authority \"Records committee decision 2026/14\" --reason \"retention of 30 years elapsed\" --key admin.key --department-key department.key")]
    Dispose {
        document: String,
        /// Who decided the disposal (a decision, a schedule, an office).
        #[arg(long)]
        authority: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
    /// Show a document's record.
    #[command(
        after_help = "Example:\n  custody doc show civil-affairs-5f2c --key clerk.key\n  custody doc show civil-affairs-5f2c --key clerk.key --json"
    )]
    Show { document: String },
    /// List a document's events in order (paged).
    #[command(
        after_help = "Example:\n  custody doc history civil-affairs-5f2c --key clerk.key --all\n  custody doc history civil-affairs-5f2c --key clerk.key --limit 50 --json"
    )]
    History {
        document: String,
        /// Events per page (the node caps it).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue from this cursor (printed after a page).
        #[arg(long)]
        cursor: Option<String>,
        /// Follow the cursors to the last event (one page in memory at a time).
        #[arg(long)]
        all: bool,
    },
    /// Print a citizen's receipt code again (the code `register --subject`
    /// printed), from their identity and the subject key.
    #[command(
        after_help = "Example:\n  custody doc receipt --subject \"Zhang Wei 110101198001011234\" --subject-key subject.key"
    )]
    Receipt {
        /// The citizen's identity, as the department files it.
        #[arg(long)]
        subject: String,
        /// The federation's subject key file.
        #[arg(long, env = "CUSTODY_SUBJECT_KEY", value_name = "FILE")]
        subject_key: Option<PathBuf>,
    },
    /// List documents, optionally filtered (paged).
    #[command(
        after_help = "Example:\n  custody doc list --custodian civil-affairs --status in-transfer --key clerk.key\n  custody doc list --subject \"Zhang Wei 110101198001011234\" --subject-key subject.key --key clerk.key"
    )]
    List {
        /// Only documents held by this department.
        #[arg(long)]
        custodian: Option<String>,
        /// Only documents in this status: active, in-transfer, disposed.
        #[arg(long)]
        status: Option<String>,
        /// Only documents of this classification.
        #[arg(long)]
        classification: Option<String>,
        /// Only documents about this citizen (their identity, as the
        /// department files it; needs --subject-key).
        #[arg(long)]
        subject: Option<String>,
        /// The federation's subject key file.
        #[arg(long, env = "CUSTODY_SUBJECT_KEY", value_name = "FILE")]
        subject_key: Option<PathBuf>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
}

#[derive(Args)]
pub struct RegisterArgs {
    /// The file to register.
    pub file: PathBuf,
    /// Title of the record.
    #[arg(long)]
    pub title: String,
    /// Record type, e.g. `birth-certificate`.
    #[arg(long)]
    pub record_type: String,
    /// public, internal, confidential or secret.
    #[arg(long, default_value = "internal")]
    pub classification: String,
    /// Retention: a number of years, or `permanent`.
    #[arg(long, default_value = "permanent")]
    pub retention: String,
    /// MIME type of the file.
    #[arg(long = "format", default_value = "application/octet-stream")]
    pub mime: String,
    /// PRONOM format id, e.g. fmt/276.
    #[arg(long)]
    pub pronom: Option<String>,
    /// Document id (default: `<department>-<random>`).
    #[arg(long)]
    pub id: Option<String>,
    /// Directory for the temporary envelope (default: the system's).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The record's own creation date: YYYY-MM-DD (the start of that day in
    /// --time-zone), YYYY-MM-DDTHH:MM[:SS] in --time-zone, or a time with its
    /// offset such as 1984-03-02T09:00:00+08:00 (default: now). Retention
    /// runs from it; a future date is refused.
    #[arg(long, value_name = "DATE")]
    pub created: Option<String>,
    /// The citizen the record is about, as the department files them (a
    /// name and an identity number). Never sent: the record carries only a
    /// tag derived from it with the subject key, and the citizen's receipt
    /// code is printed for them.
    #[arg(long)]
    pub subject: Option<String>,
    /// The federation's subject key file (needed with --subject).
    #[arg(long, env = "CUSTODY_SUBJECT_KEY", value_name = "FILE")]
    pub subject_key: Option<PathBuf>,
}

/// `custody doc amend …`
#[derive(Args)]
pub struct AmendArgs {
    /// The document id.
    pub document: String,
    /// The new version's file.
    #[arg(long)]
    pub file: PathBuf,
    /// Why the document changes.
    #[arg(long, value_enum)]
    pub reason: AmendReasonArg,
    /// What changed and why; recorded sealed.
    #[arg(long, default_value = "")]
    pub note: String,
    /// The new version's title (default: the current one).
    #[arg(long)]
    pub title: Option<String>,
    /// MIME type of the new version (default: the current one).
    #[arg(long = "format")]
    pub mime: Option<String>,
    /// PRONOM format id of the new version (with --format).
    #[arg(long, requires = "mime")]
    pub pronom: Option<String>,
    /// Directory for the temporary envelope (default: the system's).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// The amendment reasons, as the chain names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AmendReasonArg {
    Correction,
    FormatMigration,
    Redaction,
}

impl From<AmendReasonArg> for custody_ledger::tx::AmendReason {
    fn from(reason: AmendReasonArg) -> Self {
        match reason {
            AmendReasonArg::Correction => custody_ledger::tx::AmendReason::Correction,
            AmendReasonArg::FormatMigration => custody_ledger::tx::AmendReason::FormatMigration,
            AmendReasonArg::Redaction => custody_ledger::tx::AmendReason::Redaction,
        }
    }
}

/// Why a document command failed; each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("{0}")]
    Node(String),
    #[error("the node refused ({code}): {message}")]
    Refused { code: String, message: String },
    #[error("the node refused the {kind} transaction ({code}): {message}")]
    TransactionRefused {
        kind: &'static str,
        code: String,
        message: String,
    },
    #[error("the {kind} transaction {tx} was not committed within {seconds} s; check it later with `custody tx` or the node's /v1/transactions/{tx}")]
    NotCommitted {
        kind: &'static str,
        tx: String,
        seconds: u64,
    },
    #[error("this command needs {what}: pass {flag} FILE (or set {env})")]
    MissingKey {
        what: &'static str,
        flag: &'static str,
        env: &'static str,
    },
    #[error("key file {path}: {message}", path = path.display())]
    KeyFile { path: PathBuf, message: String },
    #[error("member key {0} is not enrolled on this chain")]
    NotEnrolled(String),
    #[error("department `{0}` does not exist on this chain")]
    UnknownDepartment(String),
    #[error("document `{0}` is not registered on this chain")]
    UnknownDocument(String),
    #[error("{0}")]
    Usage(String),
    #[error("document `{document}`: {message}")]
    Document { document: String, message: String },
    #[error("cannot {action} {path}: {source}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("document `{document}`: {source}")]
    Envelope {
        document: String,
        #[source]
        source: Box<crate::envelope::EnvelopeError>,
    },
    #[error("could not print the result: {0}")]
    Output(String),
    #[error("document `{document}`: the ciphertext read back (SHA-256 {found}) does not match the chain's fingerprint (SHA-256 {expected}); the mismatch is recorded by transaction {tx}")]
    FixityMismatch {
        document: String,
        expected: String,
        found: String,
        tx: String,
    },
}
