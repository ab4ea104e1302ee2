//! `custody-cli` as a library: the parts of the `custody` command line that
//! hold secrets.
//!
//! Owns envelope encryption of off-chain documents ([`envelope`]) and the
//! member and department key files ([`keyfile`]). It is the only place in
//! Custody that sees a document's plaintext or data key; nodes only ever
//! see ciphertext and wrapped keys.
//!
//! Must not depend on the other workspace crates, so that a verifier or
//! another client can reuse it alone. Formats are specified in
//! `docs/envelope.md`.

pub mod envelope;
pub mod keyfile;

pub use keyfile::{run_keys, KeysArgs};
