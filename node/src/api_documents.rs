//! HTTP routes for documents' blobs, and the signed read request.
//!
//! - `PUT /v1/blobs/{sha256}?size_bytes=N`: upload an envelope; streamed to
//!   disk while hashed, refused unless it hashes to `sha256` and is `N` bytes;
//! - `GET /v1/blobs/{sha256}`: whether this node holds a blob, and its size
//!   (presence only: it does not re-hash);
//! - `POST /v1/blobs/fetch?document=ID`: fetch the document's blob from
//!   other nodes (over `/custody/blob/1`) unless this node holds an intact
//!   copy (re-hashed; a damaged copy is quarantined and replaced);
//! - `POST /v1/reads`: a member's signed [`ReadRequest`]; the answer is the
//!   ciphertext, streamed, when the member may read it (see [`authorize`]);
//! - `GET /v1/documents?custodian=&status=&classification=&cursor=&limit=`:
//!   documents, filtered and paged.
//!
//! Formats: `docs/format.md`, "Signed read request".

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use custody_ledger::records::{Document, DocumentStatus};
use custody_ledger::tx::TxBody;
use custody_ledger::types::{
    Classification, DepartmentId, DocumentId, Hash32, PublicKey, Role, Signature, TxId,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::api_error::ApiError;
use crate::api_state::{ApiSettings, ApiState};
use crate::api_types::Page;
use crate::blob_fetch::{
    check_held_copy, department_entitled, ensure_blob, note_quarantined, BlobRoom, FetchError,
};
use crate::blobs::{BlobError, Blobs, Held, IO_BUFFER_BYTES};
use crate::handles::{ChainView, LocalClock};

/// Domain tag of a signed read request.
pub const READ_REQUEST_TAG: &str = custody_format::tags::READ_REQUEST;
/// Format version of [`ReadRequest`].
pub const READ_REQUEST_VERSION: u16 = 1;
/// Largest JSON body of `POST /v1/reads`.
pub const READ_REQUEST_BYTES_MAX: usize = 4 * 1024;
/// Chunks of an upload queued between the HTTP body and the disk writer.
pub const UPLOAD_CHUNKS_QUEUED_MAX: usize = 8;
/// Chunks of a download queued between the disk reader and the socket.
pub const DOWNLOAD_CHUNKS_QUEUED_MAX: usize = 4;
/// Documents looked at for one page of `GET /v1/documents`; a page with
/// few matches returns early with a cursor to continue from.
pub const DOCUMENTS_SCANNED_PER_PAGE_MAX: usize = 10_000;

/// What a member signs to download a document's ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub format_version: u16,
    pub chain_id: String,
    /// The member asking (their ed25519 key).
    pub member: PublicKey,
    pub document: DocumentId,
    /// The ciphertext the member expects (the document's current fixity).
    pub ciphertext_sha256: Hash32,
    /// The member's committed record-access transaction for this document.
    /// `None` only for a clerk of a live offer's recipient checking fixity
    /// before accepting (the accept event then records the check).
    pub access_tx: Option<TxId>,
    /// The member's clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Random; makes every request distinct.
    pub nonce: u64,
}

/// A [`ReadRequest`] with the member's ed25519 signature over
/// `tagged("custody/read-request/v1", postcard(request))`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReadRequest {
    pub request: ReadRequest,
    pub signature: Signature,
}

impl SignedReadRequest {
    pub fn sign(request: ReadRequest, key: &ed25519_dalek::SigningKey) -> SignedReadRequest {
        let signature = custody_ledger::encoding::sign(key, READ_REQUEST_TAG, &request);
        SignedReadRequest { request, signature }
    }

    pub fn verify_signature(&self) -> bool {
        custody_ledger::encoding::verify(
            &self.request.member,
            READ_REQUEST_TAG,
            &self.request,
            &self.signature,
        )
    }
}

/// Answer of upload and fetch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlobStatus {
    pub sha256: Hash32,
    pub size_bytes: u64,
    /// The peer it was fetched from, when it was just fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_from: Option<String>,
    /// Where this node's damaged copy was moved before a fresh one was
    /// fetched, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
}

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/v1/blobs/{sha256}",
            put(upload)
                .get(blob_status)
                // Uploads are bounded by `blobs.blob_bytes_max` instead.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/blobs/fetch", post(fetch))
        .route("/v1/reads", post(read))
        .route("/v1/documents", get(list))
}

fn parse_sha256(text: &str) -> Result<[u8; 32], ApiError> {
    custody_ledger::types::parse_hex::<32>(text).map_err(|error| {
        ApiError::bad_request(
            "bad_identifier",
            format!("`{text}` is not a SHA-256 (64 lowercase hex digits): {error}"),
        )
    })
}

fn blob_error(error: BlobError) -> ApiError {
    match error {
        BlobError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "blob_too_large",
            error.to_string(),
        ),
        BlobError::StoreFull { .. } => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "blob_store_full",
            error.to_string(),
        ),
        BlobError::Mismatch { .. } => ApiError::unprocessable("blob_mismatch", error.to_string()),
        BlobError::Missing(_) => ApiError::not_found(error.to_string()),
        BlobError::Io { .. } => ApiError::internal(error.to_string()),
    }
}

fn store_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("the node's store could not be read: {error}"))
}

#[derive(Deserialize)]
struct UploadQuery {
    size_bytes: u64,
}

/// Streams the body to a temporary file through a bounded queue, hashing as
/// it goes; memory is a few body chunks whatever the blob's size.
async fn upload(
    State(blobs): State<Arc<Blobs>>,
    State(room): State<BlobRoom>,
    Path(sha256): Path<String>,
    Query(query): Query<UploadQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let sha256 = parse_sha256(&sha256)?;
    // A held copy answers the upload only if it still hashes to its name;
    // a damaged one is quarantined and replaced by the upload.
    let held = {
        let blobs = blobs.clone();
        tokio::task::spawn_blocking(move || blobs.store.check_held(&sha256))
            .await
            .map_err(|error| ApiError::internal(error.to_string()))?
            .map_err(blob_error)?
    };
    match held {
        Held::Intact { size_bytes } => {
            return Ok(Json(BlobStatus {
                sha256: Hash32(sha256),
                size_bytes,
                fetched_from: None,
                quarantined: None,
            })
            .into_response());
        }
        Held::Quarantined(found) => note_quarantined(&room, None, &found),
        Held::Missing => {}
    }
    blobs
        .store
        .check_room(query.size_bytes)
        .map_err(blob_error)?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(UPLOAD_CHUNKS_QUEUED_MAX);
    let writer = {
        let blobs = blobs.clone();
        let size_bytes = query.size_bytes;
        tokio::task::spawn_blocking(move || {
            let mut writer = blobs.store.begin(sha256, size_bytes)?;
            while let Some(chunk) = receiver.blocking_recv() {
                writer.write(&chunk)?;
            }
            writer.finish()
        })
    };
    let mut stream = body.into_data_stream();
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                if sender.send(chunk).await.is_err() {
                    // The writer stopped (size exceeded or disk error); its
                    // result says why.
                    break;
                }
            }
            Err(error) => {
                failed = Some(error.to_string());
                break;
            }
        }
    }
    drop(sender);
    let written = writer
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    if let Some(error) = failed {
        return Err(ApiError::bad_request(
            "upload_interrupted",
            format!("the upload was interrupted: {error}"),
        ));
    }
    let size_bytes = written.map_err(blob_error)?;
    tracing::info!(sha256 = %hex::encode(sha256), size_bytes, "blob stored");
    Ok((
        StatusCode::CREATED,
        Json(BlobStatus {
            sha256: Hash32(sha256),
            size_bytes,
            fetched_from: None,
            quarantined: None,
        }),
    )
        .into_response())
}

async fn blob_status(
    State(blobs): State<Arc<Blobs>>,
    Path(sha256): Path<String>,
) -> Result<Json<BlobStatus>, ApiError> {
    let sha256 = parse_sha256(&sha256)?;
    let size_bytes = blobs.store.size_of(&sha256).ok_or_else(|| {
        ApiError::not_found(format!("blob {} is not on this node", hex::encode(sha256)))
    })?;
    Ok(Json(BlobStatus {
        sha256: Hash32(sha256),
        size_bytes,
        fetched_from: None,
        quarantined: None,
    }))
}

#[derive(Deserialize)]
struct FetchQuery {
    document: String,
}

fn fetch_error(error: FetchError) -> ApiError {
    match error {
        FetchError::UnknownDocument(_) => ApiError::not_found(error.to_string()),
        FetchError::Store { .. } => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "blob_store_full",
            error.to_string(),
        ),
        FetchError::Ledger(_) => ApiError::internal(error.to_string()),
        FetchError::NoNetwork
        | FetchError::NoPeers(_)
        | FetchError::AllPeersFailed { .. }
        | FetchError::DamagedNotReplaced { .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "blob_fetch_failed",
            error.to_string(),
        ),
    }
}

async fn fetch(
    State(chain): State<ChainView>,
    State(room): State<BlobRoom>,
    Query(query): Query<FetchQuery>,
) -> Result<Json<BlobStatus>, ApiError> {
    let document = DocumentId::new(query.document)
        .map_err(|error| ApiError::bad_request("bad_identifier", error.to_string()))?;
    let sha256 = chain
        .store()
        .document(&document)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("document `{document}` is not registered")))?
        .ciphertext
        .sha256;
    let fetched = ensure_blob(&room, &document).await.map_err(fetch_error)?;
    Ok(Json(BlobStatus {
        sha256,
        size_bytes: fetched.size_bytes,
        fetched_from: fetched.from,
        quarantined: fetched.quarantined.map(|path| path.display().to_string()),
    }))
}

fn refused(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "read_refused", message)
}

/// Decides whether the signed request's member may receive the document's
/// ciphertext now. The rules, in order: the request is for this chain, its
/// time is within `blobs.read_request_skew_ms` of this node's clock, the
/// signature is the member's, the member is enrolled and active with
/// clearance for the document, the ciphertext named is the current one; then
/// either (a) `access_tx` is the member's committed record-access for this
/// document and ciphertext, at most `blobs.access_window_ms` old (block
/// time), and the member's department is custodian or holds an unexpired
/// grant at the last block's time, or (b) there is no `access_tx`, the
/// member is a clerk and their department is the recipient of a live offer.
/// The replay check comes last, so that a refused request can be fixed and
/// sent again.
pub fn authorize(
    chain: &ChainView,
    blobs: &Blobs,
    clock: LocalClock,
    signed: &SignedReadRequest,
) -> Result<Document, ApiError> {
    let request = &signed.request;
    if request.format_version != READ_REQUEST_VERSION {
        return Err(ApiError::bad_request(
            "bad_read_request",
            format!(
                "read request version {} is not supported (this node reads version {READ_REQUEST_VERSION})",
                request.format_version
            ),
        ));
    }
    if request.chain_id != chain.chain_id() {
        return Err(refused(format!(
            "the request is for chain `{}`, this node runs `{}`",
            request.chain_id,
            chain.chain_id()
        )));
    }
    let now_ms = clock.now_ms();
    let skew_ms = blobs.store.config().read_request_skew_ms;
    if request.time_ms.abs_diff(now_ms) > skew_ms {
        return Err(refused(format!(
            "the request is stamped {} ms, {} ms away from this node's clock (at most {skew_ms} ms allowed); check the clock and sign a fresh request",
            request.time_ms,
            request.time_ms.abs_diff(now_ms)
        )));
    }
    if !signed.verify_signature() {
        return Err(refused(
            "the signature does not match the member's key and the request".to_string(),
        ));
    }
    let member = chain
        .store()
        .member(&request.member)
        .map_err(store_error)?
        .ok_or_else(|| refused(format!("member {} is not enrolled", request.member)))?;
    if !matches!(member.status, custody_ledger::records::MemberStatus::Active) {
        return Err(refused(format!("member {} is revoked", request.member)));
    }
    let document = chain
        .store()
        .document(&request.document)
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::not_found(format!("document `{}` is not registered", request.document))
        })?;
    if member.clearance < document.classification {
        return Err(refused(format!(
            "clearance `{}` is below document `{}`'s classification `{}`",
            classification_name(member.clearance),
            document.id,
            classification_name(document.classification)
        )));
    }
    if document.ciphertext.sha256 != request.ciphertext_sha256 {
        return Err(refused(format!(
            "{} is not the current ciphertext of document `{}` (it is {})",
            request.ciphertext_sha256, document.id, document.ciphertext.sha256
        )));
    }
    if matches!(document.status, DocumentStatus::Disposed) {
        return Err(refused(format!("document `{}` was disposed", document.id)));
    }
    let block_time_ms = chain.store().chain_info().map_err(store_error)?.last_time.0;
    let department = &member.department;
    match &request.access_tx {
        Some(access_tx) => {
            let stored = chain.store()
                .transaction(access_tx)
                .map_err(store_error)?
                .ok_or_else(|| {
                    refused(format!(
                        "record-access {access_tx} is not committed on this node (yet); the ciphertext is served only after the read is on the chain"
                    ))
                })?;
            let payload = &stored.transaction.payload;
            let TxBody::RecordAccess {
                document: accessed,
                ciphertext_sha256,
                ..
            } = &payload.body
            else {
                return Err(refused(format!(
                    "transaction {access_tx} is a {}, not a record-access",
                    payload.body.kind()
                )));
            };
            if payload.signer != request.member
                || *accessed != document.id
                || *ciphertext_sha256 != document.ciphertext.sha256
            {
                return Err(refused(format!(
                    "record-access {access_tx} was not signed by this member for this document and ciphertext"
                )));
            }
            let accessed_at = chain
                .store()
                .block(stored.location.height)
                .map_err(store_error)?
                .map(|block| block.header.time.0)
                .unwrap_or(0);
            let window_ms = blobs.store.config().access_window_ms;
            if block_time_ms.saturating_sub(accessed_at) > window_ms {
                return Err(refused(format!(
                    "record-access {access_tx} is older than {window_ms} ms (block time); record a new access"
                )));
            }
            let custodian = document.custodian == *department;
            let grantee = document.grants.iter().any(|grant| {
                grant.department == *department && block_time_ms <= grant.expires_at.0
            });
            if !custodian && !grantee {
                return Err(refused(format!(
                    "department `{department}` is not the custodian of document `{}` and holds no unexpired grant",
                    document.id
                )));
            }
        }
        None => {
            let recipient = matches!(&document.status,
                DocumentStatus::InTransfer(offer) if offer.to == *department && block_time_ms <= offer.expires_at.0);
            if !recipient || !member.has_role(Role::Clerk) {
                return Err(refused(format!(
                    "without a committed record-access, only a clerk of a department with a live offer of document `{}` may download it; record the access first (`custody doc open`)",
                    document.id
                )));
            }
        }
    }
    debug_assert!(department_entitled(&document, department, block_time_ms));
    let mut id = [0u8; 32];
    id.copy_from_slice(&custody_ledger::encoding::sha256(&signed.signature.0).0);
    if !blobs.remember_read(id, now_ms, request.time_ms.saturating_add(skew_ms)) {
        return Err(refused(
            "this read request was already used (replay); sign a fresh one".to_string(),
        ));
    }
    Ok(document)
}

fn classification_name(classification: Classification) -> &'static str {
    match classification {
        Classification::Public => "public",
        Classification::Internal => "internal",
        Classification::Confidential => "confidential",
        Classification::Secret => "secret",
    }
}

async fn read(
    State(chain): State<ChainView>,
    State(blobs): State<Arc<Blobs>>,
    State(room): State<BlobRoom>,
    State(clock): State<LocalClock>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() > READ_REQUEST_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a read request is at most {READ_REQUEST_BYTES_MAX} bytes"),
        ));
    }
    let signed: SignedReadRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            "bad_read_request",
            format!("the body is not a JSON signed read request: {error}"),
        )
    })?;
    let document = {
        let blobs = blobs.clone();
        tokio::task::spawn_blocking(move || authorize(&chain, &blobs, clock, &signed))
            .await
            .map_err(|error| ApiError::internal(error.to_string()))??
    };
    let sha256 = document.ciphertext.sha256.0;
    let not_here = |document: &DocumentId| {
        ApiError::new(
            StatusCode::CONFLICT,
            "blob_not_here",
            format!(
                "this node does not hold the blob of document `{document}` yet; fetch it with POST /v1/blobs/fetch?document={document}"
            ),
        )
    };
    // Re-hash before serving, through the handle the bytes are then served
    // from: a blob altered on disk is quarantined, fetched again, and
    // refused with the document's name rather than handed out as if it
    // were the record.
    let path = blobs.store.path(&sha256);
    let checked = {
        let opened = path.clone();
        tokio::task::spawn_blocking(
            move || -> std::io::Result<Option<(std::fs::File, [u8; 32], u64)>> {
                use std::io::{Seek, SeekFrom};
                let mut file = match std::fs::File::open(&opened) {
                    Ok(file) => file,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(error) => return Err(error),
                };
                let (found, found_bytes) = crate::blobs::hash_reader(&mut file)?;
                file.seek(SeekFrom::Start(0))?;
                Ok(Some((file, found, found_bytes)))
            },
        )
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?
        .map_err(|error| {
            ApiError::internal(format!("blob store I/O on {}: {error}", path.display()))
        })?
    };
    let Some((file, found, found_bytes)) = checked else {
        return Err(not_here(&document.id));
    };
    if found != sha256 {
        drop(file);
        let quarantined = {
            let room = room.clone();
            let id = document.id.clone();
            tokio::task::spawn_blocking(move || check_held_copy(&room, &id, &sha256))
                .await
                .map_err(|error| ApiError::internal(error.to_string()))?
                .map_err(blob_error)?
        };
        let moved = match quarantined {
            Held::Quarantined(found) => format!("; it was moved to {}", found.path.display()),
            // Replaced between the two reads (a fetch finished): the
            // caller may simply ask again.
            Held::Intact { .. } | Held::Missing => String::new(),
        };
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "blob_corrupt",
            format!(
                "this node's copy of document `{}` does not match its ciphertext fixity on chain (expected SHA-256 {} and {} bytes, found {} and {found_bytes} bytes): it was altered or damaged on disk{moved} and a fresh copy is being fetched from the other nodes; ask again shortly",
                document.id,
                document.ciphertext.sha256,
                document.ciphertext.size_bytes,
                hex::encode(found)
            ),
        ));
    }
    let size_bytes = document.ciphertext.size_bytes;
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(DOWNLOAD_CHUNKS_QUEUED_MAX);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = file;
        loop {
            let mut buffer = vec![0u8; IO_BUFFER_BYTES];
            match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    buffer.truncate(read);
                    if sender.blocking_send(Ok(Bytes::from(buffer))).is_err() {
                        break;
                    }
                }
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    break;
                }
            }
        }
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    tracing::info!(document = %document.id, size_bytes, "ciphertext served");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size_bytes.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    custodian: Option<String>,
    status: Option<String>,
    classification: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(chain): State<ChainView>,
    State(settings): State<Arc<ApiSettings>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<Document>>, ApiError> {
    let custodian = match query.custodian.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            DepartmentId::new(text.to_string())
                .map_err(|error| ApiError::bad_request("bad_identifier", error.to_string()))?,
        ),
    };
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text @ ("active" | "in-transfer" | "disposed")) => Some(text.to_string()),
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_filter",
                format!("`{other}` is not a status (active, in-transfer or disposed)"),
            ))
        }
    };
    let classification = match query.classification.as_deref() {
        None | Some("") => None,
        Some("public") => Some(Classification::Public),
        Some("internal") => Some(Classification::Internal),
        Some("confidential") => Some(Classification::Confidential),
        Some("secret") => Some(Classification::Secret),
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_filter",
                format!(
                    "`{other}` is not a classification (public, internal, confidential or secret)"
                ),
            ))
        }
    };
    let mut after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(DocumentId::new(text.to_string()).map_err(|_| {
            ApiError::bad_request("bad_cursor", format!("`{text}` is not a list cursor"))
        })?),
    };
    let limit = query
        .limit
        .unwrap_or(settings.api.page_size_max)
        .clamp(1, settings.api.page_size_max) as usize;
    let mut items = Vec::new();
    let mut scanned = 0usize;
    let mut next_cursor = None;
    loop {
        let page = chain
            .store()
            .documents(after.as_ref(), limit)
            .map_err(store_error)?;
        let fetched = page.items.len();
        for document in page.items {
            scanned += 1;
            after = Some(document.id.clone());
            let keep = custodian.as_ref().is_none_or(|c| document.custodian == *c)
                && status
                    .as_deref()
                    .is_none_or(|s| document.status.name() == s)
                && classification.is_none_or(|c| document.classification == c);
            if keep {
                items.push(document);
                if items.len() == limit {
                    break;
                }
            }
        }
        let more = page.next.is_some() || (fetched == limit && items.len() == limit);
        if items.len() == limit || scanned >= DOCUMENTS_SCANNED_PER_PAGE_MAX {
            if more || page.next.is_some() {
                next_cursor = after.as_ref().map(|id| id.to_string());
            }
            break;
        }
        if page.next.is_none() {
            break;
        }
    }
    Ok(Json(Page { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(member: PublicKey) -> ReadRequest {
        ReadRequest {
            format_version: READ_REQUEST_VERSION,
            chain_id: "custody-testnet".to_string(),
            member,
            document: DocumentId::new("civil-affairs-0001").expect("id"),
            ciphertext_sha256: Hash32([3; 32]),
            access_tx: Some(TxId([4; 32])),
            time_ms: 1_795_671_000_000,
            nonce: 7,
        }
    }

    #[test]
    fn signed_read_request_verifies_and_any_change_breaks_it() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let member = PublicKey(key.verifying_key().to_bytes());
        let signed = SignedReadRequest::sign(request(member), &key);
        assert!(signed.verify_signature());
        let json = serde_json::to_string(&signed).expect("json");
        let parsed: SignedReadRequest = serde_json::from_str(&json).expect("parse");
        assert!(parsed.verify_signature());
        let mut changed = signed.clone();
        changed.request.access_tx = None;
        assert!(!changed.verify_signature());
        let mut changed = signed.clone();
        changed.request.time_ms += 1;
        assert!(!changed.verify_signature());
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let mut impostor = SignedReadRequest::sign(request(member), &other);
        impostor.request.member = member;
        assert!(!impostor.verify_signature());
    }
}

#[cfg(test)]
mod vector {
    use super::*;

    /// The worked example of docs/format.md §11. A committed vector: it must
    /// never change for format version 1.
    #[test]
    fn read_request_vector_is_stable() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let request = ReadRequest {
            format_version: READ_REQUEST_VERSION,
            chain_id: "custody-testnet".to_string(),
            member: PublicKey(key.verifying_key().to_bytes()),
            document: DocumentId::new("civil-affairs-0001").expect("id"),
            ciphertext_sha256: Hash32([3; 32]),
            access_tx: Some(TxId([4; 32])),
            time_ms: 1_795_671_000_000,
            nonce: 7,
        };
        let body = custody_ledger::encoding::encode(&request);
        let signed = SignedReadRequest::sign(request, &key);
        assert_eq!(
            hex::encode(&body),
            concat!(
                "01",
                "0f",
                "637573746f64792d746573746e6574",
                "fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618",
                "12",
                "636976696c2d616666616972732d30303031",
                "0303030303030303030303030303030303030303030303030303030303030303",
                "01",
                "0404040404040404040404040404040404040404040404040404040404040404",
                "c087d4b2a134",
                "07",
            )
        );
        assert_eq!(
            hex::encode(signed.signature.0),
            "91b5d37363a56dcc619584cdf94493a96185afe53533f5e7890747cea3140c97f38cef53c03d0a2d8fc1b2a6281086318658c8960daded9e6a70c1d553e65003"
        );
    }
}
