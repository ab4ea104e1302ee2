//! `custody-cli` as a library: the parts of the `custody` command line that
//! hold secrets.
//!
//! Owns envelope encryption of off-chain documents ([`envelope`]) and the
//! member and department key files ([`keyfile`]). It is the only place in
//! Custody that sees a document's plaintext or data key; nodes only ever
//! see ciphertext and wrapped keys.
//!
//! Also owns the auditor's commands, chain export and import and the
//! genesis ceremony ([`audit`]), which read the ledger crate, and the
//! node store's repair, backup and restore ([`node_store`]), and the
//! opening of a document's sealed texts for a reader who holds a department
//! key ([`sealed_text`]).
//!
//! The clerk library ([`clerk`]: register, offer, accept, reject, cancel,
//! grant, revoke, open, amend, fixity, dispose, each with a typed outcome;
//! [`doc`] is the `custody doc` commands over it), governance and
//! members ([`gov`]), signed transactions ([`tx`]), the department's live
//! feed ([`watch`]) and the exit codes ([`exit`]) are here too, so that
//! the `custody` binary is clap and printing over them, and the harness
//! (`custody-harness`: demo, cluster fault tests, benches) calls the same
//! library.
//!
//! `envelope` and `keyfile` must not depend on the other workspace crates,
//! so that a verifier or another client can reuse them alone. Formats are
//! specified in `docs/envelope.md` and `docs/format.md`.

#[macro_use]
pub mod exit;
pub mod audit;
pub mod clerk;
pub mod doc;
pub mod envelope;
pub mod gov;
pub mod keyfile;
pub mod names;
pub mod node_process;
pub mod node_store;
pub mod sealed_text;
pub mod tx;
pub mod watch;
pub mod when;

pub use audit::{
    run_audit, run_audit_to, run_chain, run_chain_to, run_genesis, run_genesis_to, AuditArgs,
    AuditError, ChainArgs, GenesisArgs,
};
pub use keyfile::{run_keys, KeysArgs};
