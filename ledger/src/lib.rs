//! custody-ledger: the archive ledger of Custody.
//!
//! Owns the types of every identity, record and transaction, the RFC 6962
//! Merkle tree over a block's transactions, the genesis, the archive state
//! machine, the sled store and chain verification. The canonical encoding
//! (postcard, domain-separated by a type tag) with its hashing and signing,
//! the types shared with consensus and the commit certificate with its one
//! check are `custody-format`'s, re-exported here.
//!
//! Must not know about: networking, consensus internals, clocks, HTTP or
//! encryption of document content. The state machine is pure: time arrives
//! as block time, state arrives through [`state::StateView`].
//!
//! Invariants:
//! - Everything hashed or signed goes through [`encoding`]; decoding refuses
//!   trailing bytes and non-canonical input.
//! - `apply_block` is deterministic: the same state and block give the same
//!   changes on every machine.
//! - sled is used only in [`store`]; a commit is one atomic batch, flushed
//!   before it returns.

pub mod block;
pub mod caller;
pub mod certificate;
pub mod chain;
pub mod encoding;
pub mod evidence;
pub mod export;
pub mod flows;
pub mod genesis;
pub mod merkle;
pub mod proof;
pub mod read_cache;
pub mod reads;
pub mod records;
pub mod sealed;
pub mod state;
pub mod store;
pub mod subject;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tx;
pub mod types;
pub mod verify;

pub use block::{Block, Header};
pub use certificate::{CommitCertificate, CommitSignature, CommitVote};
pub use genesis::Genesis;
pub use state::{
    apply_block, check_transaction, MemoryState, Refusal, StateChanges, StateView, TxRefusal,
};
pub use store::Store;
pub use tx::{SignedTransaction, TxBody};
