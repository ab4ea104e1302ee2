//! Disposal deletes: once a disposal is committed, this node deletes the
//! disposed document's ciphertexts, its current version's and every
//! earlier version's, from its blob store (the complete blob, a fetch in
//! progress, and damaged copies in quarantine), counts each in
//! `custody_blobs_disposed_total` and logs it.
//!
//! The rule ([`to_delete`]): a blob is deleted when a disposed document
//! names it as one of its versions and no document that is not disposed
//! names it too. The names come from the committed state
//! (`Store::ciphertext_names`), never from the block that disposed, so a
//! sweep finds every disposal whenever it was committed.
//!
//! When it runs: once at start (disposals committed while the node was
//! down, or while it synced), after every commit whose block holds a
//! disposal, and after each blob scrub pass (`blob_scrub.rs`), which
//! retries a deletion that failed.
//!
//! Beside each ciphertext it deletes the envelope's shred share (the
//! share store, `shares.rs`), counted in
//! `custody_shred_shares_disposed_total`. The data key stays wrapped on
//! chain, but a version 2 envelope's content key needs the share too: once
//! every node deleted it, a copy of the ciphertext kept elsewhere cannot
//! be decrypted with anything left (`docs/envelope.md`,
//! "Crypto-shredding"; what a backup holds: `docs/operations.md`,
//! "Disposal"). A version 1 envelope has no share: its copies still open
//! with a department key.
//!
//! After deletion a fetch of the document's blob, or its status, answers
//! `410 document_disposed` (`blob_fetch::ensure_blob`,
//! `api_documents`), and this node serves no range and no share of it to
//! a peer.

use std::sync::atomic::Ordering;

use custody_ledger::store::{CiphertextNames, StoreError};
use custody_ledger::tx::TxBody;
use custody_ledger::types::{DocumentId, Hash32, Height};

use crate::blob_fetch::BlobRoom;
use crate::blobs::BlobStore;
use crate::handles::ChainView;
use crate::metrics::Metrics;
use crate::shares::ShareStore;
use crate::shutdown::Shutdown;
use crate::store_reader::StoreReader;

/// The blobs the deletion rule deletes, each with the disposed document
/// that names it: those named by a disposed document and by no live one.
pub fn to_delete(names: &CiphertextNames) -> Vec<(Hash32, DocumentId)> {
    names
        .disposed
        .iter()
        .filter(|(sha256, _)| !names.live.contains(sha256))
        .map(|(sha256, document)| (*sha256, document.clone()))
        .collect()
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DisposalPass {
    /// Complete blobs deleted, and their bytes.
    pub deleted: u64,
    pub deleted_bytes: u64,
    /// Fetches in progress and quarantined copies deleted.
    pub other_copies: u64,
    /// Blobs that could not be deleted (retried by the next sweep).
    pub failed: u64,
    /// Shred shares deleted.
    pub shares_deleted: u64,
}

/// Deletes, from `blobs`, every copy of each blob [`to_delete`] names
/// (blocking: file I/O). A blob this node never held costs a `stat`.
pub fn delete_disposed(
    names: &CiphertextNames,
    blobs: &BlobStore,
    shares: &ShareStore,
    metrics: &Metrics,
) -> DisposalPass {
    let mut pass = DisposalPass::default();
    for (sha256, document) in to_delete(names) {
        // The share first: once it is gone, the ciphertext no longer opens,
        // whatever becomes of the file.
        match shares.remove(&sha256.0) {
            Ok(false) => {}
            Ok(true) => {
                pass.shares_deleted += 1;
                metrics
                    .shred_shares_disposed_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(%document, blob = %sha256, "deleted the shred share of a disposed document");
            }
            Err(error) => {
                pass.failed += 1;
                tracing::warn!(%document, blob = %sha256, %error, "could not delete the shred share of a disposed document; the next sweep tries again");
            }
        }
        match blobs.remove_every_copy(&sha256.0) {
            Ok(removed) if removed.is_empty() => {}
            Ok(removed) => {
                if let Some(size_bytes) = removed.blob_bytes {
                    pass.deleted += 1;
                    pass.deleted_bytes += size_bytes;
                    metrics.blobs_disposed_total.fetch_add(1, Ordering::Relaxed);
                }
                pass.other_copies += removed.quarantined + u64::from(removed.partial);
                tracing::info!(
                    %document,
                    blob = %sha256,
                    size_bytes = removed.blob_bytes.unwrap_or(0),
                    partial = removed.partial,
                    quarantined = removed.quarantined,
                    "deleted the ciphertext of a disposed document"
                );
            }
            Err(error) => {
                pass.failed += 1;
                tracing::warn!(%document, blob = %sha256, %error, "could not delete the ciphertext of a disposed document; the next sweep tries again");
            }
        }
    }
    pass
}

/// One sweep over the committed state (blocking: it walks the store's
/// documents and the blob directories).
pub fn sweep(room: &BlobRoom) -> Result<DisposalPass, StoreError> {
    let names = room.store.ciphertext_names()?;
    Ok(delete_disposed(
        &names,
        &room.blobs.store,
        &room.blobs.shares,
        &room.metrics,
    ))
}

/// Whether a block holds a disposal.
fn disposes(body: &TxBody) -> bool {
    matches!(body, TxBody::Dispose { .. } | TxBody::DisposeSealed { .. })
}

/// Whether any block in `(after, up_to]` holds a disposal. A block that
/// cannot be read counts as one: a needless sweep costs a walk, a missed
/// one leaves a disposed ciphertext until the next scrub.
fn disposal_committed(store: &StoreReader, after: u64, up_to: u64) -> bool {
    (after.saturating_add(1)..=up_to).any(|height| match store.block(Height(height)) {
        Ok(Some(block)) => block
            .transactions
            .iter()
            .any(|tx| disposes(&tx.payload.body)),
        Ok(None) | Err(_) => true,
    })
}

async fn sweep_in_background(room: &BlobRoom, why: &'static str) {
    let sweep_room = room.clone();
    match tokio::task::spawn_blocking(move || sweep(&sweep_room)).await {
        Ok(Ok(pass)) if pass == DisposalPass::default() => {
            tracing::debug!(why, "disposal sweep: nothing to delete")
        }
        Ok(Ok(pass)) => tracing::info!(why, ?pass, "disposal sweep"),
        Ok(Err(error)) => tracing::warn!(why, %error, "disposal sweep could not read the store"),
        Err(error) => tracing::warn!(why, %error, "disposal sweep failed"),
    }
}

/// Sweeps once at start, then after every commit that holds a disposal,
/// until `stop` fires.
pub async fn run(room: BlobRoom, chain: ChainView, mut stop: Shutdown) {
    let mut committed = chain.committed();
    let mut seen = *committed.borrow_and_update();
    sweep_in_background(&room, "start").await;
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            changed = committed.changed() => {
                if changed.is_err() {
                    break;
                }
                let height = *committed.borrow_and_update();
                if height <= seen {
                    continue;
                }
                let store = chain.store().clone();
                let after = seen;
                let found = tokio::task::spawn_blocking(move || disposal_committed(&store, after, height))
                    .await
                    .unwrap_or(true);
                seen = height;
                if found {
                    sweep_in_background(&room, "commit").await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::BlobConfig;
    use std::collections::{BTreeMap, HashSet};

    fn hash(byte: u8) -> Hash32 {
        Hash32([byte; 32])
    }

    fn document(id: &str) -> DocumentId {
        DocumentId::new(id).expect("document id")
    }

    fn names(live: &[u8], disposed: &[(u8, &str)]) -> CiphertextNames {
        CiphertextNames {
            live: live.iter().map(|b| hash(*b)).collect::<HashSet<_>>(),
            disposed: disposed
                .iter()
                .map(|(b, id)| (hash(*b), document(id)))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// A blob store holding a blob of each of `contents`, keyed by hash.
    fn store_with(contents: &[&[u8]]) -> (tempfile::TempDir, BlobStore, Vec<[u8; 32]>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), BlobConfig::default()).expect("blob store");
        let mut hashes = Vec::new();
        for bytes in contents {
            let sha256 = custody_ledger::encoding::sha256(bytes).0;
            let mut writer = store.begin(sha256, bytes.len() as u64).expect("begin");
            writer.write(bytes).expect("write");
            writer.finish().expect("finish");
            hashes.push(sha256);
        }
        (dir, store, hashes)
    }

    fn shares_in(dir: &tempfile::TempDir) -> ShareStore {
        ShareStore::open(&dir.path().join(crate::shares::SHARES_DIR)).expect("share store")
    }

    #[test]
    fn the_shred_share_of_a_disposed_document_is_deleted_and_counted() {
        let (dir, store, hashes) = store_with(&[b"version 1", b"kept"]);
        let shares = shares_in(&dir);
        shares
            .put(&hashes[0], &[1; 32])
            .expect("share of the disposed");
        shares.put(&hashes[1], &[2; 32]).expect("share of the live");
        let names = CiphertextNames {
            live: HashSet::from([Hash32(hashes[1])]),
            disposed: BTreeMap::from([(Hash32(hashes[0]), document("d-old"))]),
        };
        let metrics = Metrics::default();
        let pass = delete_disposed(&names, &store, &shares, &metrics);
        assert_eq!(pass.shares_deleted, 1, "{pass:?}");
        assert_eq!(
            metrics.shred_shares_disposed_total.load(Ordering::Relaxed),
            1
        );
        assert_eq!(shares.get(&hashes[0]).expect("read"), None);
        assert_eq!(
            shares.get(&hashes[1]).expect("read"),
            Some([2; 32]),
            "the live document's share is kept"
        );
    }

    #[test]
    fn a_blob_only_a_disposed_document_names_is_deleted() {
        let rule = to_delete(&names(&[1], &[(2, "d-old"), (3, "d-old")]));
        assert_eq!(
            rule,
            vec![(hash(2), document("d-old")), (hash(3), document("d-old"))]
        );
    }

    #[test]
    fn a_blob_a_live_document_also_names_is_kept() {
        let rule = to_delete(&names(&[2], &[(2, "d-old")]));
        assert!(rule.is_empty(), "{rule:?}");
    }

    #[test]
    fn every_version_of_a_disposed_document_is_deleted_and_counted_once() {
        let (_dir, store, hashes) = store_with(&[b"version 1", b"version 2", b"kept"]);
        let names = CiphertextNames {
            live: HashSet::from([Hash32(hashes[2])]),
            disposed: BTreeMap::from([
                (Hash32(hashes[0]), document("d-old")),
                (Hash32(hashes[1]), document("d-old")),
            ]),
        };
        let metrics = Metrics::default();
        let shares = shares_in(&_dir);
        let pass = delete_disposed(&names, &store, &shares, &metrics);
        assert_eq!(pass.deleted, 2, "{pass:?}");
        assert_eq!(metrics.blobs_disposed_total.load(Ordering::Relaxed), 2);
        assert_eq!(store.size_of(&hashes[0]), None);
        assert_eq!(store.size_of(&hashes[1]), None);
        assert!(store.size_of(&hashes[2]).is_some(), "the live blob is kept");
        // A second sweep finds nothing left to delete and counts nothing.
        let again = delete_disposed(&names, &store, &shares, &metrics);
        assert_eq!(again, DisposalPass::default());
        assert_eq!(metrics.blobs_disposed_total.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_quarantined_copy_of_a_disposed_document_is_deleted_too() {
        let (dir, store, hashes) = store_with(&[b"version 1"]);
        store.quarantine(&hashes[0]).expect("quarantine");
        let names = CiphertextNames {
            live: HashSet::new(),
            disposed: BTreeMap::from([(Hash32(hashes[0]), document("d-old"))]),
        };
        let pass = delete_disposed(&names, &store, &shares_in(&dir), &Metrics::default());
        assert_eq!(pass.other_copies, 1, "{pass:?}");
        let left = std::fs::read_dir(dir.path().join(crate::blobs::QUARANTINE_DIR))
            .expect("quarantine directory")
            .count();
        assert_eq!(left, 0);
    }
}
