//! The blob scrub: every `blobs.scrub_interval_ms` the node re-hashes the
//! blobs it holds, at most `blobs.scrub_bytes_per_pass_max` bytes per pass,
//! so that a blob damaged on disk is found before anyone asks for it.
//!
//! A pass walks the committed documents in id order from where the last
//! pass stopped, and re-hashes the current ciphertext of each document
//! whose blob is here. A copy that no longer matches is quarantined,
//! counted in `custody_blobs_corrupt_total`, and fetched again from the
//! other nodes (`blob_fetch::check_held_copy`). Walking documents rather
//! than files is what makes the re-fetch possible: a peer serves a blob
//! only as some document's ciphertext. A file that is no document's
//! current ciphertext is still re-hashed whenever it is read or served.
//!
//! After each pass, the orphan collection: a blob whose file is older than
//! `blobs.orphan_after_ms` and that no committed transaction names (as a
//! document's ciphertext, current or earlier: `Store::named_ciphertexts`)
//! is an upload whose registration never came, and is deleted; counted in
//! `custody_blobs_orphans_collected_total`. A disposed document's
//! ciphertexts are not orphans: the disposal sweep that follows
//! (`blob_disposal.rs`) deletes them and counts them as disposed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use custody_ledger::records::DocumentStatus;
use custody_ledger::store::StoreError;
use custody_ledger::types::DocumentId;

use crate::blob_fetch::{check_held_copy, BlobRoom};
use crate::blobs::Held;
use crate::shutdown::Shutdown;

/// Documents read from the store at a time.
pub const SCRUB_DOCUMENTS_PER_PAGE: usize = 256;
/// Most documents one pass looks at, held here or not: bounds the store
/// reads of a pass on a node that holds the blobs of few of many documents.
pub const SCRUB_DOCUMENTS_PER_PASS_MAX: usize = 100_000;

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubPass {
    pub documents_seen: u64,
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    pub quarantined: u64,
    /// The last document looked at, where the next pass goes on; `None`
    /// when this pass reached the last document (the next starts over).
    pub resume_after: Option<DocumentId>,
}

/// One bounded pass, starting after `after` (blocking: it reads blobs).
pub fn scrub_pass(room: &BlobRoom, after: Option<DocumentId>) -> Result<ScrubPass, StoreError> {
    let bytes_max = room.blobs.store.config().scrub_bytes_per_pass_max;
    let mut pass = ScrubPass::default();
    let mut cursor = after;
    loop {
        let page = room
            .store
            .documents(cursor.as_ref(), SCRUB_DOCUMENTS_PER_PAGE)?;
        for document in &page.items {
            pass.documents_seen += 1;
            cursor = Some(document.id.clone());
            let sha256 = document.ciphertext.sha256.0;
            // A disposed document's blob is deleted, not checked.
            let disposed = document.status == DocumentStatus::Disposed;
            if !disposed && room.blobs.store.size_of(&sha256).is_some() {
                match check_held_copy(room, &document.id, &sha256) {
                    Ok(Held::Intact { size_bytes }) => {
                        pass.blobs_checked += 1;
                        pass.bytes_checked += size_bytes;
                        room.metrics
                            .blobs_scrubbed_total
                            .fetch_add(1, Ordering::Relaxed);
                        room.metrics
                            .blobs_scrubbed_bytes_total
                            .fetch_add(size_bytes, Ordering::Relaxed);
                    }
                    Ok(Held::Quarantined(found)) => {
                        pass.blobs_checked += 1;
                        pass.bytes_checked += found.found_bytes;
                        pass.quarantined += 1;
                        room.metrics
                            .blobs_scrubbed_total
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    // Removed since the listing (a quarantine by a read).
                    Ok(Held::Missing) => {}
                    Err(error) => {
                        tracing::warn!(document = %document.id, %error, "scrub could not read a blob");
                    }
                }
            }
            if pass.bytes_checked >= bytes_max
                || pass.documents_seen >= SCRUB_DOCUMENTS_PER_PASS_MAX as u64
            {
                pass.resume_after = cursor;
                return Ok(pass);
            }
        }
        if page.next.is_none() {
            pass.resume_after = None;
            return Ok(pass);
        }
    }
}

/// What one orphan collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrphanPass {
    /// Blobs old enough to be looked at.
    pub candidates: u64,
    pub collected: u64,
    pub collected_bytes: u64,
}

/// Deletes the blobs written before `cutoff` that no committed transaction
/// names (blocking: it walks the store and the blob directories).
pub fn collect_orphans(
    room: &BlobRoom,
    cutoff: std::time::SystemTime,
) -> Result<OrphanPass, StoreError> {
    let store = &room.blobs.store;
    let candidates = store.blobs_written_before(cutoff);
    let mut pass = OrphanPass {
        candidates: candidates.len() as u64,
        ..OrphanPass::default()
    };
    if candidates.is_empty() {
        return Ok(pass);
    }
    let names = room.store.ciphertext_names()?;
    for (sha256, _) in candidates {
        let sha256_named = custody_ledger::types::Hash32(sha256);
        // A disposed document's blob is not an orphan: the disposal sweep
        // deletes it and counts it as disposed.
        if names.live.contains(&sha256_named) || names.disposed.contains_key(&sha256_named) {
            continue;
        }
        match store.remove_orphan(&sha256) {
            Ok(size_bytes) => {
                pass.collected += 1;
                pass.collected_bytes += size_bytes;
                room.metrics
                    .blobs_orphans_collected_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    blob = %hex::encode(sha256),
                    size_bytes,
                    "removed an uploaded blob that no committed transaction names"
                );
            }
            Err(error) => tracing::warn!(%error, "could not remove an orphan blob"),
        }
    }
    Ok(pass)
}

/// Runs a pass every `blobs.scrub_interval_ms` until `stop` fires. The
/// first pass waits one interval, so that a restart does not start with a
/// burst of disk reads.
pub async fn run(room: BlobRoom, mut stop: Shutdown) {
    let interval = Duration::from_millis(room.blobs.store.config().scrub_interval_ms);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resume_after: Option<DocumentId> = None;
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            _ = ticker.tick() => {
                let scrub_room = room.clone();
                let after = resume_after.take();
                match tokio::task::spawn_blocking(move || scrub_pass(&scrub_room, after)).await {
                    Ok(Ok(pass)) => {
                        if pass.quarantined > 0 {
                            tracing::warn!(?pass, "blob scrub quarantined damaged blobs");
                        } else {
                            tracing::debug!(?pass, "blob scrub pass");
                        }
                        resume_after = pass.resume_after;
                    }
                    Ok(Err(error)) => tracing::warn!(%error, "blob scrub could not read the store"),
                    Err(error) => tracing::warn!(%error, "blob scrub pass failed"),
                }
                let orphan_after = Duration::from_millis(room.blobs.store.config().orphan_after_ms);
                let cutoff = std::time::SystemTime::now()
                    .checked_sub(orphan_after)
                    .unwrap_or(std::time::UNIX_EPOCH);
                let orphan_room = room.clone();
                match tokio::task::spawn_blocking(move || collect_orphans(&orphan_room, cutoff)).await {
                    Ok(Ok(pass)) => tracing::debug!(?pass, "orphan blob collection"),
                    Ok(Err(error)) => tracing::warn!(%error, "orphan collection could not read the store"),
                    Err(error) => tracing::warn!(%error, "orphan collection failed"),
                }
                // A disposed document's blob whose deletion failed, or that
                // came back (an upload of the same bytes), goes here.
                let disposal_room = room.clone();
                match tokio::task::spawn_blocking(move || crate::blob_disposal::sweep(&disposal_room)).await {
                    Ok(Ok(pass)) => tracing::debug!(?pass, "disposal sweep after the scrub"),
                    Ok(Err(error)) => tracing::warn!(%error, "disposal sweep could not read the store"),
                    Err(error) => tracing::warn!(%error, "disposal sweep failed"),
                }
            }
        }
    }
}
