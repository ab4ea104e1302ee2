//! Commit certificates: the precommit signatures that prove a block was
//! committed, checkable by anyone holding the validator set. Defined once
//! in `custody-format` with the one `CommitCertificate::verify` the ledger
//! uses too; [`crate::ValidatorSet`] supplies the voting power.

pub use custody_format::certificate::{CertificateError, CommitCertificate, CommitSignature};
