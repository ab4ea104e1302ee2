//! Every block decision a node makes, one call each: [`propose`] selects
//! and builds the next block, [`judge`] decides whether a proposed block
//! gets this validator's vote, and [`commit_certified`] writes a block that
//! holds a commit certificate, whether this node's consensus decided it or
//! a peer sent it while the node was catching up.
//!
//! The rules stay in `state` and the disk in `store`; this module puts the
//! steps of each decision in their one safe order, so that the node keeps
//! only shell work (mempool handles, metrics, logging, sync requests).
//!
//! Two kinds of failure are kept apart everywhere: a block that breaks a
//! rule is refused with a typed reason (a "no" vote, a peer's fault), while
//! a local store that cannot be read or written is an error the node must
//! stop on, never a vote.

mod commit;
mod judge;
mod propose;

pub use commit::{certified_changes, commit_certified, CommitError, Committed, Origin};
pub use judge::{judge, Judged, Judgement, ProposalRefusal};
pub use propose::{
    propose, BlockLimits, Candidate, ProposeError, Proposed, BLOCK_OVERHEAD_BYTES,
    PROPOSAL_REBUILDS_MAX,
};
