//! Blob fetch between nodes over `/custody/blob/1` (request-response).
//!
//! A node that lacks the ciphertext of a document asks other member nodes
//! for it in ranges of `blobs.fetch_range_bytes`, appends each range to a
//! partial file, and on the last range checks the SHA-256 against the
//! document's ciphertext fixity on chain. A peer that fails (timeout,
//! refusal, short answer) is left for the next one, which resumes at the
//! partial file's length; bytes that hash wrong are thrown away and the
//! next peer starts from zero. Wire format: `docs/format.md`, "Blob fetch".
//!
//! A node serves a range only to the node of a department entitled to the
//! document: its custodian, the recipient of a live offer, or the holder of
//! an unexpired grant (block time). Nothing of a disposed document is
//! fetched or served (`blob_disposal.rs` deletes it).
//!
//! A held copy is re-hashed before it counts: before the first range is
//! served to a peer, before `ensure_blob` answers that the blob is here,
//! and by the scrub (`blob_scrub.rs`). A copy that no longer matches is
//! quarantined ([`BlobStore::quarantine`](crate::blobs::BlobStore::quarantine)),
//! counted in `custody_blobs_corrupt_total`, and fetched again.

use custody_ledger::records::{Document, DocumentStatus};
use custody_ledger::state::department_may_hold;
use custody_ledger::types::{DepartmentId, DocumentId, Hash32, Timestamp};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::blobs::{BlobError, Held, Quarantined};
use crate::network::RequestProtocol;
use std::sync::Arc;

use crate::blobs::Blobs;
use crate::metrics::Metrics;
use crate::store_reader::StoreReader;

/// What blob fetch, serving and the integrity checks work with: the ledger
/// (read-only: who may have a document's blob), the blob store, and the
/// metrics they count damaged and re-fetched copies in. Cheap to clone.
#[derive(Clone)]
pub struct BlobRoom {
    pub store: StoreReader,
    pub blobs: Arc<Blobs>,
    pub metrics: Arc<Metrics>,
}

/// A range request for part of a document's blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRequest {
    /// Format version of this message (1).
    pub version: u8,
    pub document: DocumentId,
    /// The blob's SHA-256 (the document's ciphertext fixity).
    pub sha256: Hash32,
    pub offset: u64,
    pub length: u32,
}

/// The answer to a [`BlobRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobResponse {
    /// `bytes` start at the requested offset; fewer than asked only at the
    /// end of the blob. `total_bytes` is the blob's length.
    Range { total_bytes: u64, bytes: Vec<u8> },
    /// The node will not or cannot serve it; `reason` says why.
    Refused { reason: String },
    /// The shred share of the blob (a request of version
    /// [`SHARE_REQUEST_VERSION`]); the asking node checks it against the
    /// commitment in the envelope's header before it keeps it.
    Share {
        share: [u8; custody_format::SHRED_SHARE_BYTES],
    },
}

pub const BLOB_PROTOCOL_VERSION: u8 = 1;
/// A [`BlobRequest`] of this version asks for the blob's shred share, not a
/// range (`offset` and `length` are zero), on the same terms as a range.
pub const SHARE_REQUEST_VERSION: u8 = 2;

/// Why a fetch failed; every message names the document.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("document `{0}` is not registered on this node's chain")]
    UnknownDocument(DocumentId),
    #[error("document `{0}` was disposed of: its ciphertext is deleted from every node and is not served")]
    Disposed(DocumentId),
    #[error("this node's network is not running")]
    NoNetwork,
    #[error("no connected node could be asked for the blob of document `{0}`")]
    NoPeers(DocumentId),
    #[error("the blob of document `{document}` could not be fetched from any node: {attempts}")]
    AllPeersFailed {
        document: DocumentId,
        attempts: String,
    },
    #[error("the blob of document `{document}` cannot be stored here: {source}")]
    Store {
        document: DocumentId,
        #[source]
        source: BlobError,
    },
    #[error("the node's store could not be read: {0}")]
    Ledger(String),
    #[error(
        "this node's copy of document `{document}` does not match its ciphertext fixity on chain \
         (damaged on disk); it was moved to {} and a good copy could not be fetched: {source}",
        quarantined.display()
    )]
    DamagedNotReplaced {
        document: DocumentId,
        quarantined: std::path::PathBuf,
        #[source]
        source: Box<FetchError>,
    },
}

/// Which department runs the node with `peer`'s identity.
pub fn department_of_peer(room: &BlobRoom, peer: &PeerId) -> Option<DepartmentId> {
    let departments = room.store.departments().ok()?;
    departments
        .into_iter()
        .find(|department| {
            crate::network::peer_id_from_ed25519_public(department.keys.node_key.0)
                .ok()
                .as_ref()
                == Some(peer)
        })
        .map(|department| department.id)
}

fn peer_of_department(room: &BlobRoom, department: &DepartmentId) -> Option<PeerId> {
    let department = room.store.department(department).ok()??;
    crate::network::peer_id_from_ed25519_public(department.keys.node_key.0).ok()
}

/// Logs and counts a blob found damaged and quarantined.
pub fn note_quarantined(room: &BlobRoom, document: Option<&DocumentId>, found: &Quarantined) {
    room.metrics
        .blobs_corrupt_total
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::error!(
        document = %document.map(|d| d.to_string()).unwrap_or_default(),
        expected = %hex::encode(found.expected),
        found = %hex::encode(found.found),
        found_bytes = found.found_bytes,
        quarantined_to = %found.path.display(),
        "a held blob no longer matches its SHA-256; moved to quarantine"
    );
}

/// Starts fetching a fresh copy of `document`'s blob from other nodes, in
/// the background (a read or a peer's request that found the copy damaged
/// does not wait for it). Needs a tokio runtime; without one the next
/// fetch, read or scrub pass does it.
pub fn spawn_refetch(room: &BlobRoom, document: DocumentId) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let room = room.clone();
    runtime.spawn(async move {
        match ensure_blob(&room, &document).await {
            Ok(fetched) => {
                if fetched.from.is_some() && fetched.quarantined.is_none() {
                    room.metrics
                        .blobs_refetched_total
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::info!(%document, from = ?fetched.from, "quarantined blob fetched again")
            }
            Err(error) => {
                tracing::warn!(%document, %error, "quarantined blob could not be fetched again yet")
            }
        }
    });
}

/// Re-hashes the held blob `sha256` of `document` (blocking). A damaged
/// copy is quarantined, counted, and a fresh copy fetched in the
/// background.
pub fn check_held_copy(
    room: &BlobRoom,
    document: &DocumentId,
    sha256: &[u8; 32],
) -> Result<Held, BlobError> {
    let held = room.blobs.store.check_held(sha256)?;
    if let Held::Quarantined(found) = &held {
        note_quarantined(room, Some(document), found);
        spawn_refetch(room, document.clone());
    }
    Ok(held)
}

/// Answers one `/custody/blob/1` request from `peer` (blocking: disk reads).
pub fn serve(room: &BlobRoom, peer: &PeerId, bytes: &[u8]) -> Vec<u8> {
    let answer = answer(room, peer, bytes);
    if let BlobResponse::Refused { reason } = &answer {
        tracing::info!(%peer, %reason, "blob request refused");
    }
    postcard::to_allocvec(&answer).unwrap_or_default()
}

fn answer(room: &BlobRoom, peer: &PeerId, bytes: &[u8]) -> BlobResponse {
    let refused = |reason: String| BlobResponse::Refused { reason };
    let request: BlobRequest = match postcard::from_bytes(bytes) {
        Ok(request) => request,
        Err(error) => return refused(format!("undecodable blob request: {error}")),
    };
    if request.version != BLOB_PROTOCOL_VERSION && request.version != SHARE_REQUEST_VERSION {
        return refused(format!(
            "blob protocol version {} is not supported (this node speaks {BLOB_PROTOCOL_VERSION} and {SHARE_REQUEST_VERSION})",
            request.version
        ));
    }
    let document = match room.store.document(&request.document) {
        Ok(Some(document)) => document,
        Ok(None) => return refused(format!("document `{}` is not registered", request.document)),
        Err(error) => return refused(format!("store unavailable: {error}")),
    };
    if document.status == DocumentStatus::Disposed {
        return refused(FetchError::Disposed(request.document).to_string());
    }
    if document.ciphertext.sha256 != request.sha256 {
        return refused(format!(
            "{} is not the current ciphertext of document `{}`",
            request.sha256, request.document
        ));
    }
    let Some(department) = department_of_peer(room, peer) else {
        return refused(format!("peer {peer} is not a department's node"));
    };
    let time_ms = match room.store.chain_info() {
        Ok(chain) => chain.last_time.0,
        Err(error) => return refused(format!("store unavailable: {error}")),
    };
    // Custody replication between nodes, not a member's read: the ledger
    // says which departments' nodes may hold a copy.
    if !department_may_hold(&document, &department, Timestamp(time_ms)) {
        return refused(format!(
            "department `{department}` is neither custodian, offer recipient nor grantee of document `{}`",
            request.document
        ));
    }
    if request.version == SHARE_REQUEST_VERSION {
        return match room.blobs.checked_share(&request.sha256.0) {
            Some(share) => BlobResponse::Share { share },
            None => refused(format!(
                "this node holds no shred share of document `{}`",
                request.document
            )),
        };
    }
    // The whole copy is re-hashed before its first range leaves: a damaged
    // copy is never sent. Later ranges are not re-hashed (that would read
    // the blob once per range); the fetching node checks the whole blob
    // against the chain before it keeps it.
    if request.offset == 0 {
        match check_held_copy(room, &request.document, &request.sha256.0) {
            Ok(Held::Intact { .. }) => {}
            Ok(Held::Missing) => {
                return refused(BlobError::Missing(request.sha256.to_string()).to_string())
            }
            Ok(Held::Quarantined(_)) => {
                return refused(format!(
                    "this node's copy of document `{}` no longer matches its ciphertext fixity; it was quarantined and is being fetched again",
                    request.document
                ))
            }
            Err(error) => return refused(error.to_string()),
        }
    }
    let length = request
        .length
        .min(room.blobs.store.config().fetch_range_bytes);
    match room
        .blobs
        .store
        .read_range(&request.sha256.0, request.offset, length)
    {
        Ok((total_bytes, bytes)) => BlobResponse::Range { total_bytes, bytes },
        Err(error) => refused(error.to_string()),
    }
}

/// What a successful fetch did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fetched {
    pub size_bytes: u64,
    /// The peer the last bytes came from (None when the blob was here).
    pub from: Option<String>,
    /// Where a damaged copy found here was moved before the fetch.
    pub quarantined: Option<std::path::PathBuf>,
}

/// Makes sure this node holds the blob of `document_id` and, for a version
/// 2 envelope, its shred share, fetching either from other nodes if needed.
pub async fn ensure_blob(room: &BlobRoom, document_id: &DocumentId) -> Result<Fetched, FetchError> {
    let fetched = ensure_envelope(room, document_id).await?;
    ensure_share(room, document_id).await?;
    Ok(fetched)
}

/// Makes sure this node holds the shred share of `document_id`'s held
/// envelope when it is of version 2, asking the nodes that may hold the
/// document; each share received is checked against the envelope's
/// commitment before it is kept.
async fn ensure_share(room: &BlobRoom, document_id: &DocumentId) -> Result<(), FetchError> {
    let document = room
        .store
        .document(document_id)
        .map_err(|error| FetchError::Ledger(error.to_string()))?
        .ok_or_else(|| FetchError::UnknownDocument(document_id.clone()))?;
    let sha256 = document.ciphertext.sha256.0;
    let needed = {
        let room = room.clone();
        tokio::task::spawn_blocking(move || -> Result<bool, BlobError> {
            Ok(room.blobs.share_commitment(&sha256)?.is_some()
                && room.blobs.checked_share(&sha256).is_none())
        })
        .await
        .map_err(|error| FetchError::Ledger(error.to_string()))?
        .map_err(|source| FetchError::Store {
            document: document_id.clone(),
            source,
        })?
    };
    if !needed {
        return Ok(());
    }
    let network = room.blobs.network.get().ok_or(FetchError::NoNetwork)?;
    let candidates = candidates(room, network, &document).await?;
    let document = &document;
    let (peer, ()) = first_answer(document_id, &candidates, 1, "shred share", |peer| {
        share_from(room, network, peer, document)
    })
    .await?;
    tracing::info!(document = %document_id, %peer, "shred share fetched");
    Ok(())
}

/// Asks each of `candidates` in turn, for at most `rounds` rounds, until
/// one answers; each failure is logged and kept for the error that names
/// every attempt when none answers.
async fn first_answer<T, F, Fut>(
    document_id: &DocumentId,
    candidates: &[PeerId],
    rounds: u32,
    what: &str,
    mut ask: F,
) -> Result<(PeerId, T), FetchError>
where
    F: FnMut(PeerId) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut attempts: Vec<String> = Vec::new();
    for _round in 0..rounds {
        for peer in candidates {
            match ask(*peer).await {
                Ok(answer) => return Ok((*peer, answer)),
                Err(reason) => {
                    tracing::warn!(document = %document_id, %peer, %reason, what, "fetch from peer failed");
                    attempts.push(format!("{peer}: {reason}"));
                }
            }
        }
    }
    Err(FetchError::AllPeersFailed {
        document: document_id.clone(),
        attempts: attempts.join("; "),
    })
}

/// Asks one peer for the shred share of `document`'s envelope and keeps it
/// if it matches the envelope's commitment.
async fn share_from(
    room: &BlobRoom,
    network: &crate::network::NetworkHandle,
    peer: PeerId,
    document: &Document,
) -> Result<(), String> {
    let request = BlobRequest {
        version: SHARE_REQUEST_VERSION,
        document: document.id.clone(),
        sha256: document.ciphertext.sha256,
        offset: 0,
        length: 0,
    };
    let bytes = postcard::to_allocvec(&request).map_err(|error| error.to_string())?;
    let answer = network
        .request(peer, RequestProtocol::Blob, bytes)
        .await
        .map_err(|error| error.to_string())?;
    let answer: BlobResponse = postcard::from_bytes(&answer)
        .map_err(|error| format!("undecodable blob answer: {error}"))?;
    match answer {
        BlobResponse::Refused { reason } => Err(format!("refused: {reason}")),
        BlobResponse::Range { .. } => Err("answered a range, not a shred share".to_string()),
        BlobResponse::Share { share } => {
            let room = room.clone();
            let sha256 = document.ciphertext.sha256.0;
            tokio::task::spawn_blocking(move || room.blobs.keep_share(&sha256, &share))
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| error.to_string())
        }
    }
}

/// The connected nodes to ask for `document`'s blob or share, best first:
/// the custodian's node (it must hold them), then the nodes of departments
/// that may have fetched them, then everyone else.
async fn candidates(
    room: &BlobRoom,
    network: &crate::network::NetworkHandle,
    document: &Document,
) -> Result<Vec<PeerId>, FetchError> {
    let connected = network
        .connected_peers()
        .await
        .map_err(|_| FetchError::NoNetwork)?;
    let mut candidates: Vec<PeerId> = Vec::new();
    let mut push = |peer: Option<PeerId>| {
        if let Some(peer) = peer {
            if connected.contains(&peer) && !candidates.contains(&peer) {
                candidates.push(peer);
            }
        }
    };
    push(peer_of_department(room, &document.custodian));
    push(peer_of_department(room, &document.creating_department));
    for grant in &document.grants {
        push(peer_of_department(room, &grant.department));
    }
    for peer in &connected {
        push(Some(*peer));
    }
    if candidates.is_empty() {
        return Err(FetchError::NoPeers(document.id.clone()));
    }
    Ok(candidates)
}

/// Makes sure this node holds the blob of `document_id`, fetching it from
/// other nodes if needed.
async fn ensure_envelope(room: &BlobRoom, document_id: &DocumentId) -> Result<Fetched, FetchError> {
    let document = room
        .store
        .document(document_id)
        .map_err(|error| FetchError::Ledger(error.to_string()))?
        .ok_or_else(|| FetchError::UnknownDocument(document_id.clone()))?;
    if document.status == DocumentStatus::Disposed {
        return Err(FetchError::Disposed(document_id.clone()));
    }
    let sha256 = document.ciphertext.sha256.0;
    let store_error = |source: BlobError| FetchError::Store {
        document: document_id.clone(),
        source,
    };
    // A held copy counts only if it still hashes to its name: a damaged one
    // is quarantined here and replaced by the fetch below.
    let held = {
        let room = room.clone();
        tokio::task::spawn_blocking(move || room.blobs.store.check_held(&sha256))
            .await
            .map_err(|error| FetchError::Ledger(error.to_string()))?
            .map_err(store_error)?
    };
    let quarantined = match held {
        Held::Intact { size_bytes } => {
            return Ok(Fetched {
                size_bytes,
                from: None,
                quarantined: None,
            })
        }
        Held::Missing => None,
        Held::Quarantined(found) => {
            note_quarantined(room, Some(document_id), &found);
            Some(found.path)
        }
    };
    fetch_missing(room, &document, quarantined.clone())
        .await
        .map_err(|source| match quarantined {
            Some(path) => FetchError::DamagedNotReplaced {
                document: document_id.clone(),
                quarantined: path,
                source: Box::new(source),
            },
            None => source,
        })
}

/// Fetches the blob of `document`, which this node does not hold (any more:
/// `quarantined` says where a damaged copy went), from other nodes.
async fn fetch_missing(
    room: &BlobRoom,
    document: &Document,
    quarantined: Option<std::path::PathBuf>,
) -> Result<Fetched, FetchError> {
    let document_id = &document.id;
    let sha256 = document.ciphertext.sha256.0;
    let store_error = |source: BlobError| FetchError::Store {
        document: document_id.clone(),
        source,
    };
    let _one_at_a_time = room.blobs.fetching.lock().await;
    // A fetch that held the lock before us may have brought the blob; what
    // it published was checked against the hash on the way in.
    if let Some(size_bytes) = room.blobs.store.size_of(&sha256) {
        return Ok(Fetched {
            size_bytes,
            from: None,
            quarantined,
        });
    }
    room.blobs
        .store
        .check_room(document.ciphertext.size_bytes)
        .map_err(store_error)?;
    let network = room.blobs.network.get().ok_or(FetchError::NoNetwork)?;
    let candidates = candidates(room, network, document).await?;
    let rounds = room.blobs.store.config().fetch_rounds_max;
    let (peer, size_bytes) = first_answer(document_id, &candidates, rounds, "blob", |peer| {
        fetch_from(room, network, peer, document)
    })
    .await?;
    tracing::info!(document = %document_id, %peer, size_bytes, "blob fetched");
    if quarantined.is_some() {
        room.metrics
            .blobs_refetched_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(Fetched {
        size_bytes,
        from: Some(peer.to_string()),
        quarantined,
    })
}

/// Fetches the rest of the blob from one peer, resuming the partial file.
async fn fetch_from(
    room: &BlobRoom,
    network: &crate::network::NetworkHandle,
    peer: PeerId,
    document: &Document,
) -> Result<u64, String> {
    let sha256 = document.ciphertext.sha256.0;
    let expected_bytes = document.ciphertext.size_bytes;
    let store = &room.blobs.store;
    let mut partial = {
        let room = room.clone();
        tokio::task::spawn_blocking(move || room.blobs.store.resume_partial(&sha256))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| error.to_string())?
    };
    if partial.length > expected_bytes {
        store.discard_partial(&sha256);
        return Err("a partial download was longer than the blob; discarded".to_string());
    }
    let range_bytes = store.config().fetch_range_bytes;
    while partial.length < expected_bytes {
        let request = BlobRequest {
            version: BLOB_PROTOCOL_VERSION,
            document: document.id.clone(),
            sha256: document.ciphertext.sha256,
            offset: partial.length,
            length: range_bytes,
        };
        let bytes = postcard::to_allocvec(&request).map_err(|error| error.to_string())?;
        let answer = network
            .request(peer, RequestProtocol::Blob, bytes)
            .await
            .map_err(|error| error.to_string())?;
        let answer: BlobResponse = postcard::from_bytes(&answer)
            .map_err(|error| format!("undecodable blob answer: {error}"))?;
        match answer {
            BlobResponse::Refused { reason } => return Err(format!("refused: {reason}")),
            BlobResponse::Share { .. } => {
                return Err("answered a shred share, not a range".to_string())
            }
            BlobResponse::Range { total_bytes, bytes } => {
                if total_bytes != expected_bytes {
                    return Err(format!(
                        "the peer's copy is {total_bytes} bytes, the chain records {expected_bytes}"
                    ));
                }
                let remaining = expected_bytes - partial.length;
                if bytes.is_empty() || bytes.len() as u64 > remaining.min(u64::from(range_bytes)) {
                    return Err(format!(
                        "answer of {} bytes at offset {} does not fit the blob",
                        bytes.len(),
                        partial.length
                    ));
                }
                partial.append(&bytes).map_err(|error| error.to_string())?;
            }
        }
    }
    let room = room.clone();
    let result = tokio::task::spawn_blocking(move || partial.finish(&room.blobs.store, &sha256))
        .await
        .map_err(|error| error.to_string())?;
    result.map_err(|error| match error {
        BlobError::Mismatch { expected, found, .. } => format!(
            "the bytes received for document `{}` do not match its ciphertext fixity on chain (expected SHA-256 {expected}, received {found}): the sending node's copy is corrupt or was altered",
            document.id
        ),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_messages_round_trip_through_postcard() {
        let request = BlobRequest {
            version: BLOB_PROTOCOL_VERSION,
            document: DocumentId::new("civil-affairs-0001").expect("id"),
            sha256: Hash32([7; 32]),
            offset: 4 << 20,
            length: 65_536,
        };
        let bytes = postcard::to_allocvec(&request).expect("encode");
        assert_eq!(
            postcard::from_bytes::<BlobRequest>(&bytes).expect("decode"),
            request
        );
        for response in [
            BlobResponse::Range {
                total_bytes: 10,
                bytes: vec![1, 2, 3],
            },
            BlobResponse::Refused {
                reason: "no".to_string(),
            },
        ] {
            let bytes = postcard::to_allocvec(&response).expect("encode");
            assert_eq!(
                postcard::from_bytes::<BlobResponse>(&bytes).expect("decode"),
                response
            );
        }
    }

    #[tokio::test]
    async fn the_first_peer_that_answers_is_kept_after_the_failed_ones() {
        let document = DocumentId::new("civil-affairs-0001").expect("id");
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let mut asked = Vec::new();
        let (peer, answer) = first_answer(&document, &peers, 2, "blob", |peer| {
            asked.push(peer);
            let answers = peer == peers[2];
            async move {
                if answers {
                    Ok(7u64)
                } else {
                    Err("refused: no".to_string())
                }
            }
        })
        .await
        .expect("the third peer answers");
        assert_eq!((peer, answer), (peers[2], 7));
        assert_eq!(asked, peers);
    }

    #[tokio::test]
    async fn when_no_peer_answers_every_attempt_of_every_round_is_named() {
        let document = DocumentId::new("civil-affairs-0001").expect("id");
        let peers: Vec<PeerId> = (0..2).map(|_| PeerId::random()).collect();
        let result = first_answer(&document, &peers, 2, "blob", |_| async {
            Err::<(), _>("timed out".to_string())
        })
        .await;
        let Err(FetchError::AllPeersFailed { attempts, .. }) = result else {
            panic!("expected every peer to fail, got {result:?}");
        };
        assert_eq!(attempts.matches("timed out").count(), 4);
        for peer in &peers {
            assert_eq!(attempts.matches(&peer.to_string()).count(), 2);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_blob_decoders() {
        // xorshift: deterministic, no dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for length in 0..2_000usize {
            let mut bytes = Vec::with_capacity(length % 97);
            for _ in 0..length % 97 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(state as u8);
            }
            let _ = postcard::from_bytes::<BlobRequest>(&bytes);
            let _ = postcard::from_bytes::<BlobResponse>(&bytes);
        }
    }
}
