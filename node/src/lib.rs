//! custody-node: the shell around the pure parts.
//!
//! Owns every piece of I/O a department's node does: the libp2p swarm
//! (`network`, the only module that touches libp2p's swarm), the mempool,
//! the consensus driver (timers, persistence, proposals, validation,
//! commits), block sync, and the HTTP API. It holds no protocol logic: the
//! rules of archive transactions live in `custody-ledger`, the rules of
//! agreement in `custody-consensus`.
//!
//! Invariants:
//! - one task owns the consensus state machine and carries out its actions
//!   in order; a persist action is durable before the next action runs;
//! - a block is acknowledged as committed only after the ledger store has
//!   written it and its certificate durably;
//! - input from peers, files and clients is checked and refused with a
//!   typed error, never trusted or unwrapped.

pub mod admission;
pub mod alert_desk;
pub mod api;
pub mod api_alerts;
pub mod api_auth;
pub mod api_citizen;
pub mod api_documents;
pub mod api_error;
pub mod api_governance;
pub mod api_page_login;
pub mod api_schemas;
pub mod api_server;
pub mod api_state;
pub mod api_types;
pub mod app;
pub mod blob_disposal;
pub mod blob_fetch;
pub mod blob_scrub;
pub mod blobs;
pub mod citizen_limit;
pub mod client;
pub mod config;
pub mod consensus_state;
pub mod driver;
pub mod evidence_desk;
pub mod files;
pub mod handles;
pub mod health;
pub mod health_watch;
pub mod home;
pub mod key_watch;
pub mod mempool;
pub mod metrics;
pub mod net_glue;
pub mod network;
pub mod node;
pub mod page_sessions;
pub mod pages;
pub mod read_desk;
pub mod shares;
pub mod shutdown;
pub mod store_reader;
pub mod testnet;
