//! The exit codes of `custody`, and which error means which: the one place
//! they are defined, so that a script can tell a tampered chain from a
//! missing file (listed in every top-level `--help` and in docs/audit.md).

use crate::audit::AuditError;
use crate::keyfile::{KeyFileError, KeysCommandError};
use custody_ledger::export::{ExportError, ExportVerifyError, ImportError};

use crate::doc::DocError;

/// What a command's failure was, as its exit code says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Anything not named below.
    Failure,
    /// The command line is wrong (clap uses 2 for its own usage errors).
    Usage,
    /// A chain, export, proof or file is not what it claims: a hash, a
    /// signature, a certificate or a fixity does not match.
    Verification,
    /// What was asked for is not there: a document, a department, a
    /// member, a transaction.
    NotFound,
    /// The chain's rules refused it: the node refused the transaction or
    /// the request (wrong role, stale event, no grant...).
    Refused,
    /// A file could not be read or written, or the node could not be
    /// reached or did not answer in time.
    Unavailable,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Verification => 3,
            Exit::NotFound => 4,
            Exit::Refused => 5,
            Exit::Unavailable => 6,
        }
    }
}

/// The exit codes, as every top-level `--help` ends (a macro, so that
/// `concat!` can join it to a command's examples).
#[macro_export]
macro_rules! exit_codes_help {
    () => {
        "Exit codes:
  0  success
  1  any other failure
  2  usage: the command line is wrong
  3  verification failed: a chain, export, proof or file is not what it claims
  4  not found: no such document, department, member or transaction
  5  refused by the chain: the node refused the transaction or request
  6  I/O or network: a file cannot be read or written, or the node cannot be reached"
    };
}

/// A failed command: what to print, and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit: Exit,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            exit: Exit::Failure,
        }
    }
}

impl From<DocError> for Failure {
    fn from(error: DocError) -> Failure {
        let exit = match &error {
            DocError::Refused { code, .. } | DocError::TransactionRefused { code, .. }
                if code == "not_found" =>
            {
                Exit::NotFound
            }
            DocError::Refused { .. } | DocError::TransactionRefused { .. } => Exit::Refused,
            DocError::NotEnrolled(_)
            | DocError::UnknownDepartment(_)
            | DocError::UnknownDocument(_) => Exit::NotFound,
            DocError::MissingKey { .. } | DocError::Usage(_) => Exit::Usage,
            DocError::Node(_)
            | DocError::NotCommitted { .. }
            | DocError::Io { .. }
            | DocError::Output(_) => Exit::Unavailable,
            DocError::KeyFile { .. } => Exit::Failure,
            DocError::Envelope { source, .. } => envelope_exit(source),
            DocError::Document { .. } => Exit::Failure,
            DocError::FixityMismatch { .. } => Exit::Verification,
        };
        Failure {
            message: error.to_string(),
            exit,
        }
    }
}

fn envelope_exit(error: &crate::envelope::EnvelopeError) -> Exit {
    use crate::envelope::EnvelopeError;
    match error {
        EnvelopeError::Read(_) | EnvelopeError::Write(_) | EnvelopeError::File { .. } => {
            Exit::Unavailable
        }
        EnvelopeError::Random(_) | EnvelopeError::ChunkSizeOutOfRange { .. } => Exit::Failure,
        _ => Exit::Verification,
    }
}

fn export_exit(error: &ExportError) -> Exit {
    match error {
        ExportError::Io { .. } => Exit::Unavailable,
        _ => Exit::Verification,
    }
}

impl From<AuditError> for Failure {
    fn from(error: AuditError) -> Failure {
        let exit = match &error {
            AuditError::Verify(_)
            | AuditError::StoreVerify(_)
            | AuditError::StoreBehind { .. }
            | AuditError::GenesisNotExpected { .. }
            | AuditError::Genesis(_)
            | AuditError::Proof(_)
            | AuditError::Reads(_)
            | AuditError::FixityMismatch { .. }
            | AuditError::BlobMismatch { .. } => Exit::Verification,
            AuditError::Export(error) => export_exit(error),
            AuditError::Import(ImportError::Verify(ExportVerifyError::File(error))) => {
                export_exit(error)
            }
            AuditError::Import(ImportError::Verify(_) | ImportError::StateDiffers { .. }) => {
                Exit::Verification
            }
            AuditError::Import(_) | AuditError::Store(_) => Exit::Unavailable,
            AuditError::Prove(_) | AuditError::UnknownDocument(_) => Exit::NotFound,
            AuditError::Read { .. }
            | AuditError::Write { .. }
            | AuditError::Output(_)
            | AuditError::Node { .. } => Exit::Unavailable,
            AuditError::BadArgument(_) => Exit::Usage,
            AuditError::Json(_) | AuditError::Key(_) => Exit::Failure,
        };
        Failure {
            message: error.to_string(),
            exit,
        }
    }
}

impl From<KeysCommandError> for Failure {
    fn from(error: KeysCommandError) -> Failure {
        let exit = match &error {
            KeysCommandError::KeyFile(KeyFileError::Io { .. }) | KeysCommandError::Output(_) => {
                Exit::Unavailable
            }
            KeysCommandError::KeyFile(
                KeyFileError::WrongPassphrase { .. } | KeyFileError::PublicKeyMismatch { .. },
            ) => Exit::Verification,
            KeysCommandError::KeyFile(
                KeyFileError::PassphraseRequired { .. }
                | KeyFileError::PassphraseEnvMissing { .. }
                | KeyFileError::PassphraseEmpty,
            ) => Exit::Usage,
            _ => Exit::Failure,
        };
        Failure {
            message: error.to_string(),
            exit,
        }
    }
}
