//! Inclusion proofs for an alert's evidence, built with the ledger's own
//! proof machinery from a verified replay and the blocks it read, so that
//! an auditor checks every transaction an alert rests on offline, with
//! nothing but the genesis (`custody audit check-proof`).

use custody_ledger::genesis::Genesis;
use custody_ledger::proof::{build_tx_proof, ProveError, TxProof};
use custody_ledger::state::MemoryState;
use custody_ledger::verify::BlockSource;

use crate::alert::Alert;

/// One proof per listed evidence transaction, in the alert's order.
pub fn alert_proofs(
    alert: &Alert,
    genesis: &Genesis,
    state: &MemoryState,
    source: &dyn BlockSource,
) -> Result<Vec<TxProof>, ProveError> {
    alert
        .evidence
        .iter()
        .map(|e| build_tx_proof(genesis, state, source, &e.tx))
        .collect()
}
