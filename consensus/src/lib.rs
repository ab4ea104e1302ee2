//! # custody-consensus
//!
//! Decides the order of Custody's blocks among the departments' validators
//! with Tendermint (Buchman, Kwon, Milosevic, "The latest gossip on BFT
//! consensus", 2018, arXiv:1807.04938, Algorithm 1), written as a pure
//! state machine: [`Consensus::handle`] takes an [`Input`] (a signed message,
//! a timeout that fired, the node's proposal or verdict on a value, the
//! start of a height, news that the node holds work) and returns a
//! [`Step`]: the [`Action`]s to carry out in order (persist, broadcast,
//! schedule a timeout, ask for a value, ask for a verdict, commit, report
//! evidence) and what became of a message. With a heartbeat configured, a
//! new height waits for work before its first round, so an idle chain makes
//! one block per heartbeat rather than one a second.
//!
//! **Owns:** the protocol rules, message encoding and signing, and the
//! building of commit certificates. Heights, rounds, keys, the commit vote
//! and the certificate with its one `verify` are `custody-format`'s,
//! shared with the ledger and re-exported here.
//!
//! **Must not know about:** the ledger (the value is opaque bytes plus a
//! hash, judged by the node through [`Action::ValidateValue`]), networking,
//! storage, clocks or randomness. It does not depend on `custody-ledger`.
//!
//! **Invariants:**
//! - no two different values get a valid commit certificate at one height
//!   while at most f (by power, strictly less than a third) validators are
//!   Byzantine, under any message schedule;
//! - a validator never signs two different votes of one kind in one round,
//!   nor two proposals in one round, even across crashes, provided the node
//!   makes each [`Action::Persist`] durable before carrying out the actions
//!   after it;
//! - of the keys a node holds ([`Config::signing_keys`]), only one the
//!   height's validator set names ever signs at that height, so a rotated
//!   key stops signing exactly at the height the rotation takes effect;
//! - a message from a non-validator, for another chain, for a past height,
//!   with a bad signature or over the size limit changes nothing;
//! - every buffer is bounded (see the `*_MAX` constants).
//!
//! [`core::NodeCore`] wraps the machine with what a node decides around it
//! (timers, pacing, application calls, proposal hold and fetch, block sync
//! decisions), still with no I/O; the node's tokio task and the
//! deterministic simulator (`tests/simulator`) are two shells around it.

pub mod certificate;
pub mod core;
pub mod machine;
pub mod message;
pub mod types;

pub use certificate::{CertificateError, CommitCertificate, CommitSignature};
pub use machine::{
    Action, Config, Consensus, ConsensusError, Disposition, DropReason, Equivocation,
    FaultInjection, Input, PersistedState, RoundStep, Step, TimeoutConfig, TimeoutEvent,
    TimeoutStep,
};
pub use message::{
    canonical_bytes, commit_vote_signing_bytes, signing_bytes, tagged, CommitVote, DecodeError,
    Message, Proposal, SignatureBytes, SignedMessage, Vote, VoteKind,
};
pub use types::{
    BlockHash, Height, Round, Validator, ValidatorKey, ValidatorSet, ValidatorSetError, Value,
};
