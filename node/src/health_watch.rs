//! The running node's side of health (`health.rs` holds the state and the
//! rules): gathering the readiness facts, and following the committed
//! certificates for the signatures per validator.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use custody_ledger::store::StoreError;
use custody_ledger::types::{Height, PublicKey};

use crate::handles::{ChainView, MempoolView, PeerView};
use crate::health::*;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store_reader::StoreReader;

/// Gathers the readiness facts from the running node.
pub fn facts(
    store: &StoreReader,
    peers: &PeerView,
    metrics: &Metrics,
    health: &Health,
    mempool: &MempoolView,
) -> Result<ReadinessFacts, StoreError> {
    let chain = store.chain_info()?;
    // Validator keys of the departments whose nodes are connected now.
    let connected_peers: std::collections::HashSet<String> =
        peers.connected().into_iter().collect();
    let mut connected_keys = std::collections::HashSet::new();
    for peer in metrics.peer_consensus_ages(Instant::now()) {
        let Some(department) = peer.department else {
            continue;
        };
        if !connected_peers.contains(&peer.peer_id) {
            continue;
        }
        let Ok(id) = custody_ledger::types::DepartmentId::new(department) else {
            continue;
        };
        if let Some(department) = store.department(&id)? {
            connected_keys.insert(department.keys.validator_key);
        }
    }
    let validators = chain
        .validator_set
        .validators
        .iter()
        .map(|validator| HeardValidator {
            power: validator.power,
            silent_ms: health.pulse.silent_ms(&validator.key),
            is_self: health.is_own_key(&validator.key),
            connected: connected_keys.contains(&validator.key),
        })
        .collect();
    Ok(ReadinessFacts {
        validators,
        since_advance_ms: health.since_advance_ms(),
        waiting_transactions: mempool.size().0 as u64,
        driver_silent_ms: health.pulse.driver_silent_ms(),
        idle: health.pulse.is_idle(),
    })
}

/// The signers of the latest certificates, oldest first.
struct RecentSigners {
    certificates: VecDeque<(Height, Vec<PublicKey>)>,
}

impl RecentSigners {
    /// Loads certificates up to `height`, keeping the latest
    /// [`SIGNED_RECENT_CERTIFICATES`].
    fn catch_up(&mut self, store: &StoreReader, height: u64) -> Result<(), StoreError> {
        let loaded = self.certificates.back().map(|(h, _)| h.0).unwrap_or(0);
        let from = loaded
            .saturating_add(1)
            .max(height.saturating_sub(SIGNED_RECENT_CERTIFICATES - 1))
            .max(1);
        for at in from..=height {
            let Some(certificate) = store.certificate(Height(at))? else {
                continue;
            };
            let signers = certificate
                .signatures
                .iter()
                .map(|signature| signature.validator)
                .collect();
            self.certificates.push_back((Height(at), signers));
            if self.certificates.len() as u64 > SIGNED_RECENT_CERTIFICATES {
                self.certificates.pop_front();
            }
        }
        Ok(())
    }

    fn count(&self, key: &PublicKey) -> u64 {
        self.certificates
            .iter()
            .filter(|(_, signers)| signers.contains(key))
            .count() as u64
    }
}

/// Keeps the per-validator signature counts up to date: after every commit
/// (a change of the `committed` watch), reads the new certificates from the
/// store. Ends on shutdown; a store that cannot be read ends it with the
/// error (the node then stops: its store is failing).
pub async fn watch_activity(
    chain: ChainView,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut stop: Shutdown,
) -> Result<(), StoreError> {
    let mut committed = chain.committed();
    let mut recent = RecentSigners {
        certificates: VecDeque::new(),
    };
    loop {
        let height = *committed.borrow_and_update();
        refresh(chain.store(), &metrics, &health, &mut recent, height)?;
        tokio::select! {
            _ = stop.wait() => return Ok(()),
            changed = committed.changed() => {
                // The sender lives in the driver's application: it is
                // gone only when the driver ended, and the node with it.
                if changed.is_err() {
                    return Ok(());
                }
                lock(&health.activity).advanced_at = Instant::now();
            }
        }
    }
}

fn refresh(
    store: &StoreReader,
    metrics: &Metrics,
    health: &Health,
    recent: &mut RecentSigners,
    height: u64,
) -> Result<(), StoreError> {
    recent.catch_up(store, height)?;
    let chain = store.chain_info()?;
    let departments = store.departments()?;
    let validators: Vec<ValidatorSigned> = chain
        .validator_set
        .validators
        .iter()
        .map(|validator| ValidatorSigned {
            key: validator.key,
            label: departments
                .iter()
                .find(|d| d.keys.validator_key == validator.key)
                .map(|d| d.id.to_string())
                .unwrap_or_else(|| validator.key.to_hex()),
            power: validator.power,
            signed: recent.count(&validator.key),
        })
        .collect();
    metrics.set_validators_signed_recent(
        validators
            .iter()
            .map(|v| (v.label.clone(), v.signed))
            .collect(),
    );
    let mut activity = lock(&health.activity);
    activity.validators = validators;
    activity.certificates = recent.certificates.len() as u64;
    Ok(())
}
