//! custody-oversight: finds abnormal behaviour in the committed history of
//! a Custody chain and names the party responsible.
//!
//! Owns the detector's input type ([`Event`], taken from committed blocks or
//! produced directly), the rules with their configurable [`Thresholds`], the
//! per-member statistical baselines learned from the chain's own history,
//! and the [`Alert`]s with their evidence (transaction ids at block heights,
//! from which [`proofs::alert_proofs`] builds the ledger's inclusion proofs).
//!
//! Must not know about: networking, storage engines, clocks, randomness or
//! any I/O. The caller feeds events; time is block time.
//!
//! Invariants:
//! - Pure and reproducible: the same events give the same alerts, in the
//!   same order, on every machine, however the input is chunked (every map
//!   iterated for output is ordered; alerts are sorted before they leave).
//! - Every alert names its rule, the member and department responsible, the
//!   documents, and the transactions that are its evidence, and explains
//!   its score in plain words.

pub mod alert;
pub mod detector;
pub mod event;
pub mod live;
pub mod proofs;
mod rules;
pub mod stats;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod thresholds;

pub use alert::{Alert, Evidence, Rule};
pub use detector::Detector;
pub use event::{events_of_block, Action, Event};
pub use live::{LiveAlert, LiveDetector, Step};
pub use thresholds::{Thresholds, ThresholdsError, WorkingHours};
