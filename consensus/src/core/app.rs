//! What the node core asks of the application (for Custody: the ledger and
//! the mempool; in the simulator: a small stand-in or the ledger's
//! in-memory state).
//!
//! Every call is synchronous and does its own durable writes: when
//! [`Application::commit`] returns `Ok`, the block is stored. An `Err` is a
//! local failure (the store cannot be read or written) and stops the node;
//! a block that is merely wrong is a verdict, never an error.

use crate::types::{Height, ValidatorSet, Value};
use crate::CommitCertificate;

/// The committed head as the application sees it.
#[derive(Clone, Debug)]
pub struct Head {
    /// The last committed height (0 before the first block).
    pub height: Height,
    /// The validators in force at `height + 1`.
    pub next_validators: ValidatorSet,
}

/// The application's answer to "build a block at this height".
#[derive(Debug)]
pub enum Proposed<C> {
    /// A block to propose, and what checking it produced (kept for commit,
    /// so the node's own block is not checked again).
    Value(Value, C),
    /// This node is behind the height asked for: it cannot propose, and
    /// wants block sync.
    Behind,
    /// Nothing can be proposed now (the reason is for the log).
    Nothing(String),
}

/// The application's verdict on a proposed block.
#[derive(Debug)]
pub enum Verdict<C> {
    /// The block applies; what checking it produced is kept for commit.
    Valid(C),
    /// The block does not apply (the reason is for the log).
    Invalid(String),
    /// The block is for a height this node has not reached: a "no" vote,
    /// and block sync is wanted.
    Behind,
}

/// What became of a decided or synced block.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Written now.
    Now {
        /// The block's height.
        height: Height,
        /// Transactions the block carried.
        transactions: usize,
    },
    /// It was already stored (block sync was faster than consensus).
    Already,
    /// A synced block or its certificate is wrong: the peer's fault,
    /// nothing was written. Never returned for a decided block.
    Refused(String),
}

/// The application the node core drives.
pub trait Application {
    /// What checking a block produced (for Custody: the decoded block and
    /// its state changes), handed back at commit so that a block is
    /// checked once per node.
    type Checked;
    /// A local failure: the node stops.
    type Error: std::error::Error;

    /// The committed head.
    fn head(&mut self) -> Result<Head, Self::Error>;

    /// Whether transactions are waiting for a block.
    fn has_work(&self) -> bool;

    /// Builds a block at `height` from the waiting transactions.
    fn propose(
        &mut self,
        height: Height,
        now_ms: u64,
    ) -> Result<Proposed<Self::Checked>, Self::Error>;

    /// Judges a block proposed at `height`.
    fn judge(
        &mut self,
        height: Height,
        value: &Value,
        now_ms: u64,
    ) -> Result<Verdict<Self::Checked>, Self::Error>;

    /// Stores the decided `value` at `height` with its certificate.
    /// `checked` is what judging or proposing it produced, if this node
    /// did either. A decided block that does not apply is a local failure
    /// (the node's state disagrees with a quorum's): `Err`.
    fn commit(
        &mut self,
        height: Height,
        value: &Value,
        checked: Option<Self::Checked>,
        certificate: &CommitCertificate,
        now_ms: u64,
    ) -> Result<Stored, Self::Error>;

    /// Checks and stores a block fetched from a peer with its certificate
    /// (both as received).
    fn apply_synced(
        &mut self,
        block: &[u8],
        certificate: &[u8],
        now_ms: u64,
    ) -> Result<Stored, Self::Error>;
}
