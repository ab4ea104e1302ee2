//! HTTP routes for documents' blobs, and the signed read request.
//!
//! - `PUT /v1/blobs/{sha256}?size_bytes=N`: upload an envelope; streamed to
//!   disk while hashed, refused unless it hashes to `sha256` and is `N` bytes;
//! - `GET /v1/blobs/{sha256}`: whether this node holds a blob, and its size
//!   (presence only: it does not re-hash); `410 document_disposed` for a
//!   version of a disposed document;
//! - `POST /v1/blobs/fetch?document=ID`: fetch the document's blob from
//!   other nodes (over `/custody/blob/1`) unless this node holds an intact
//!   copy (re-hashed; a damaged copy is quarantined and replaced);
//! - `POST /v1/reads`: a member's signed [`ReadRequest`]; the answer is the
//!   ciphertext, streamed, when the ledger's read rule allows it (see
//!   [`authorize`]), with a version 2 envelope's shred share in the
//!   `x-custody-shred-share` header; what became of the request is attested on chain by
//!   this node (`read_desk`);
//! - `GET /v1/documents?custodian=&status=&classification=&subject_tag=&cursor=&limit=`:
//!   documents, filtered and paged (`subject_tag`: 64 hex digits, the tag
//!   `custody_ledger::subject` derives from a citizen's receipt code).
//!
//! Formats: `docs/format.md`, "Signed read request".

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use custody_ledger::records::Document;
use custody_ledger::types::{Classification, DepartmentId, DocumentId, Hash32, Role};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use std::sync::Arc;

use crate::api_error::ApiError;
use crate::api_schemas::{ApiPath, ApiQuery, ErrorResponse, RecordPage};
use crate::api_state::{ApiSettings, ApiState};
use crate::api_types::Page;
use crate::blob_fetch::{check_held_copy, ensure_blob, note_quarantined, BlobRoom, FetchError};
use crate::blobs::{BlobError, Blobs, Held, IO_BUFFER_BYTES};
use crate::handles::{ChainView, LocalClock};
use crate::read_desk::{short_reason, ReadDesk};
use custody_ledger::reads::ReadOutcome;
use custody_ledger::state::{ReadPermit, ReadRefusal};

pub use custody_ledger::reads::{
    ReadRequest, SignedReadRequest, READ_REQUEST_TAG, READ_REQUEST_VERSION,
};
/// Largest JSON body of `POST /v1/reads`.
pub const READ_REQUEST_BYTES_MAX: usize = 4 * 1024;
/// Chunks of an upload queued between the HTTP body and the disk writer.
pub const UPLOAD_CHUNKS_QUEUED_MAX: usize = 8;
/// Chunks of a download queued between the disk reader and the socket.
pub const DOWNLOAD_CHUNKS_QUEUED_MAX: usize = 4;
/// Documents looked at for one page of `GET /v1/documents`; a page with
/// few matches returns early with a cursor to continue from.
pub const DOCUMENTS_SCANNED_PER_PAGE_MAX: usize = 10_000;

/// Answer of upload and fetch.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BlobStatus {
    #[schema(value_type = String)]
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

/// The blob routes anyone may call: an upload carries its own signed
/// header and a read its signed read request.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        // Uploads are bounded by `blobs.blob_bytes_max` instead.
        .routes(routes!(upload).layer(DefaultBodyLimit::disable()))
        .routes(routes!(read))
}

/// The routes that answer records (a blob's status, a fetch, the document
/// list): `api::router` puts the caller check in front of them.
pub fn signed_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(blob_status))
        .routes(routes!(fetch))
        .routes(routes!(list))
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    /// The envelope's size in bytes, as signed.
    size_bytes: u64,
}

/// Streams the body to a temporary file through a bounded queue, hashing as
/// it goes; memory is a few body chunks whatever the blob's size.
#[utoipa::path(put, path = "/v1/blobs/{sha256}", tag = "documents",
    params(("sha256" = String, Path, description = "The envelope's SHA-256 (64 lowercase hex digits)."), UploadQuery),
    request_body(description = "The envelope's bytes.", content((Vec<u8> = "application/octet-stream"))),
    security(("upload_signature" = [])),
    responses(
        (status = 200, description = "This node already holds an intact copy.", body = BlobStatus),
        (status = 201, description = "Stored.", body = BlobStatus),
        (status = 400, description = "`bad_identifier`, `bad_query`, `bad_upload_signature` or `upload_interrupted`.", body = ErrorResponse),
        (status = 401, description = "`upload_not_signed`: no `x-custody-upload` header.", body = ErrorResponse),
        (status = 403, description = "`upload_refused`: the signature does not hold (wrong chain, other blob, stale time, not a clerk...).", body = ErrorResponse),
        (status = 413, description = "`blob_too_large` or `body_too_large`: over `blobs.blob_bytes_max`.", body = ErrorResponse),
        (status = 422, description = "`blob_mismatch`: the bytes do not hash to the SHA-256 or have another size; `share_mismatch`: the `x-custody-shred-share` header does not match the envelope's commitment.", body = ErrorResponse),
        (status = 507, description = "`blob_store_full`.", body = ErrorResponse),
    ))]
async fn upload(
    State(blobs): State<Arc<Blobs>>,
    State(room): State<BlobRoom>,
    State(gate): State<UploadGate>,
    ApiPath(sha256): ApiPath<String>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let sha256 = parse_sha256(&sha256)?;
    check_upload_signature(&gate, &blobs, &headers, &sha256, query.size_bytes)?;
    let share = shred_share_header(&headers)?;
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
            keep_share(&blobs, sha256, share).await?;
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
    keep_share(&blobs, sha256, share).await?;
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

/// The header that carries a version 2 envelope's shred share: on an
/// upload, from the clerk to the node; on a read, from the node to the
/// reader. It is never part of the envelope's bytes.
pub const SHRED_SHARE_HEADER: &str = "x-custody-shred-share";

/// The shred share an upload carries, if any.
fn shred_share_header(
    headers: &axum::http::HeaderMap,
) -> Result<Option<[u8; custody_format::SHRED_SHARE_BYTES]>, ApiError> {
    let Some(value) = headers.get(SHRED_SHARE_HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    crate::shares::parse_share(text)
        .map(Some)
        .map_err(|error| ApiError::bad_request("bad_shred_share", error.to_string()))
}

/// Checks an uploaded share against the commitment in the envelope now
/// held under `sha256`, and keeps it.
async fn keep_share(
    blobs: &Arc<Blobs>,
    sha256: [u8; 32],
    share: Option<[u8; custody_format::SHRED_SHARE_BYTES]>,
) -> Result<(), ApiError> {
    let Some(share) = share else {
        return Ok(());
    };
    let blobs = blobs.clone();
    let kept = tokio::task::spawn_blocking(move || blobs.keep_share(&sha256, &share))
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    match kept {
        Ok(()) => {
            tracing::info!(sha256 = %hex::encode(sha256), "shred share stored");
            Ok(())
        }
        Err(error @ crate::shares::ShareError::Io { .. }) => {
            Err(ApiError::internal(error.to_string()))
        }
        Err(error) => Err(ApiError::unprocessable("share_mismatch", error.to_string())),
    }
}

/// Whether this node holds a blob, and its size (presence only: it does not
/// re-hash).
#[utoipa::path(get, path = "/v1/blobs/{sha256}", tag = "documents",
    params(("sha256" = String, Path, description = "The envelope's SHA-256 (64 lowercase hex digits).")),
    responses(
        (status = 200, description = "The blob is here.", body = BlobStatus),
        (status = 400, description = "`bad_identifier`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: not on this node.", body = ErrorResponse),
        (status = 410, description = "`document_disposed`: the blob is a version of a disposed document, deleted on disposal.", body = ErrorResponse),
    ))]
async fn blob_status(
    State(blobs): State<Arc<Blobs>>,
    State(room): State<BlobRoom>,
    ApiPath(sha256): ApiPath<String>,
) -> Result<Json<BlobStatus>, ApiError> {
    let sha256 = parse_sha256(&sha256)?;
    let Some(size_bytes) = blobs.store.size_of(&sha256) else {
        return Err(missing_blob(&room, sha256).await);
    };
    Ok(Json(BlobStatus {
        sha256: Hash32(sha256),
        size_bytes,
        fetched_from: None,
        quarantined: None,
    }))
}

/// Why a blob is not here: `410 document_disposed` when the committed state
/// names it as a version of a disposed document and of no live one (the
/// deletion rule of `blob_disposal`), `404 not_found` otherwise. Only a
/// miss pays for the walk over the documents.
async fn missing_blob(room: &BlobRoom, sha256: [u8; 32]) -> ApiError {
    let store = room.store.clone();
    let names = tokio::task::spawn_blocking(move || store.ciphertext_names()).await;
    let disposed_by = match names {
        Ok(Ok(names)) => crate::blob_disposal::to_delete(&names)
            .into_iter()
            .find(|(name, _)| name.0 == sha256)
            .map(|(_, document)| document),
        Ok(Err(error)) => return store_error(error),
        Err(error) => return ApiError::internal(error.to_string()),
    };
    match disposed_by {
        Some(document) => ApiError::new(
            StatusCode::GONE,
            "document_disposed",
            format!(
                "blob {} is a version of document `{document}`, which was disposed: every node deleted it",
                hex::encode(sha256)
            ),
        ),
        None => ApiError::not_found(format!("blob {} is not on this node", hex::encode(sha256))),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FetchQuery {
    /// The document whose blob to fetch.
    document: String,
}

fn fetch_error(error: FetchError) -> ApiError {
    match error {
        FetchError::UnknownDocument(_) => ApiError::not_found(error.to_string()),
        FetchError::Disposed(_) => {
            ApiError::new(StatusCode::GONE, "document_disposed", error.to_string())
        }
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

/// Fetches the document's blob from other nodes unless this node holds an
/// intact copy (re-hashed; a damaged copy is quarantined and replaced).
#[utoipa::path(post, path = "/v1/blobs/fetch", tag = "documents", params(FetchQuery),
    responses(
        (status = 200, description = "This node holds an intact copy.", body = BlobStatus),
        (status = 400, description = "`bad_identifier` or `bad_query`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: the document is not registered.", body = ErrorResponse),
        (status = 502, description = "`blob_fetch_failed`: no peer could give an intact copy.", body = ErrorResponse),
        (status = 507, description = "`blob_store_full`.", body = ErrorResponse),
    ))]
async fn fetch(
    State(chain): State<ChainView>,
    State(room): State<BlobRoom>,
    ApiQuery(query): ApiQuery<FetchQuery>,
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

/// Checks that `signed` is an authentic, fresh request for this chain:
/// its format, chain, time (within `blobs.read_request_skew_ms` of this
/// node's clock) and signature. This is the request's authentication, not
/// a read rule: whether the member may read is the ledger's read rule
/// ([`ReadDesk::decide`]). A request failing here proves nothing about a
/// member, so it is refused without an attestation.
pub fn check_request(
    chain: &ChainView,
    blobs: &Blobs,
    clock: LocalClock,
    signed: &SignedReadRequest,
) -> Result<(), ApiError> {
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
    Ok(())
}

pub use crate::api_schemas::UPLOAD_HEADER;

/// What the upload's signature is checked against: the chain (its id and
/// members) and this node's clock.
#[derive(Clone)]
struct UploadGate {
    chain: ChainView,
    clock: LocalClock,
}

impl axum::extract::FromRef<crate::api_state::ApiState> for UploadGate {
    fn from_ref(state: &crate::api_state::ApiState) -> UploadGate {
        UploadGate {
            chain: state.chain.clone(),
            clock: state.clock,
        }
    }
}

/// Who may store a blob: an active member with the clerk role, whose
/// signature covers this chain, this SHA-256 and size, and a time within
/// `blobs.read_request_skew_ms` of this node's clock. `401` without a
/// signed upload, `403` with one that does not hold.
fn check_upload_signature(
    gate: &UploadGate,
    blobs: &Blobs,
    headers: &axum::http::HeaderMap,
    sha256: &[u8; 32],
    size_bytes: u64,
) -> Result<(), ApiError> {
    use custody_ledger::reads::{SignedBlobUpload, BLOB_UPLOAD_VERSION};
    let (chain, clock) = (&gate.chain, gate.clock);
    let refused = |message: String| ApiError::new(StatusCode::FORBIDDEN, "upload_refused", message);
    let Some(value) = headers.get(UPLOAD_HEADER) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "upload_not_signed",
            format!(
                "an upload must be signed by a clerk: send the `{UPLOAD_HEADER}` header (`custody doc register` does)"
            ),
        ));
    };
    let signed = value
        .to_str()
        .map_err(|_| "not text".to_string())
        .and_then(SignedBlobUpload::from_header)
        .map_err(|reason| {
            ApiError::bad_request(
                "bad_upload_signature",
                format!("the `{UPLOAD_HEADER}` header is not a signed upload: {reason}"),
            )
        })?;
    let upload = &signed.upload;
    if upload.format_version != BLOB_UPLOAD_VERSION {
        return Err(ApiError::bad_request(
            "bad_upload_signature",
            format!(
                "signed upload version {} is not supported (this node reads version {BLOB_UPLOAD_VERSION})",
                upload.format_version
            ),
        ));
    }
    if upload.chain_id != chain.chain_id() {
        return Err(refused(format!(
            "the upload is signed for chain `{}`, this node runs `{}`",
            upload.chain_id,
            chain.chain_id()
        )));
    }
    if upload.sha256.0 != *sha256 || upload.size_bytes != size_bytes {
        return Err(refused(
            "the signature covers another blob (SHA-256 or size differ from the request's)"
                .to_string(),
        ));
    }
    let skew_ms = blobs.store.config().read_request_skew_ms;
    let now_ms = clock.now_ms();
    if upload.time_ms.abs_diff(now_ms) > skew_ms {
        return Err(refused(format!(
            "the upload is stamped {} ms, {} ms away from this node's clock (at most {skew_ms} ms allowed); check the clock and sign again",
            upload.time_ms,
            upload.time_ms.abs_diff(now_ms)
        )));
    }
    if !signed.verify_signature() {
        return Err(refused(
            "the signature does not match the member's key and the upload".to_string(),
        ));
    }
    let member = chain
        .store()
        .member(&upload.member)
        .map_err(store_error)?
        .ok_or_else(|| refused(format!("member {} is not enrolled", upload.member)))?;
    if !matches!(member.status, custody_ledger::records::MemberStatus::Active) {
        return Err(refused(format!("member {} is revoked", upload.member)));
    }
    if !member.roles.contains(&Role::Clerk) {
        return Err(refused(format!(
            "member {} is not a clerk; only clerks store documents",
            upload.member
        )));
    }
    Ok(())
}

/// The read rule's refusal as the API's answer: `403` with the rule's own
/// code (`docs/rules.md` §9).
fn read_refusal(refusal: &ReadRefusal) -> ApiError {
    match refusal {
        ReadRefusal::Storage(_) => store_error(refusal),
        _ => ApiError::new(StatusCode::FORBIDDEN, refusal.code(), refusal.to_string()),
    }
}

/// Authenticates the request, asks the ledger's read rule, and claims the
/// access record for this download. A refusal of the rule is attested on
/// chain with the member's signed request. Blocking.
pub fn authorize(
    chain: &ChainView,
    blobs: &Blobs,
    desk: &ReadDesk,
    clock: LocalClock,
    signed: &SignedReadRequest,
) -> Result<ReadPermit, ApiError> {
    check_request(chain, blobs, clock, signed)?;
    let request = &signed.request;
    let permit = match desk.decide(chain.store(), request) {
        Ok(permit) => permit,
        Err(refusal) => {
            desk.attest_denied(signed, &refusal);
            return Err(read_refusal(&refusal));
        }
    };
    let now_ms = clock.now_ms();
    let skew_ms = blobs.store.config().read_request_skew_ms;
    let mut id = [0u8; 32];
    id.copy_from_slice(&custody_ledger::encoding::sha256(&signed.signature.0).0);
    if !blobs.remember_read(id, now_ms, request.time_ms.saturating_add(skew_ms)) {
        return Err(refused(
            "this read request was already used (replay); sign a fresh one".to_string(),
        ));
    }
    // Two requests on one record may pass the rule together; the claim is
    // atomic, so only one of them is served.
    match desk.claim(&permit.access_tx) {
        Ok(true) => Ok(permit),
        Ok(false) => {
            let refusal = ReadRefusal::AccessAlreadyUsed(permit.access_tx);
            desk.attest_denied(signed, &refusal);
            Err(read_refusal(&refusal))
        }
        Err(error) => Err(ApiError::internal(format!(
            "the node could not record that access {} is being served: {error}",
            permit.access_tx
        ))),
    }
}

/// What one download delivered; attested when the response body ends or
/// is dropped (the member's connection closed), whichever comes first.
struct Delivery {
    desk: ReadDesk,
    permit: Option<ReadPermit>,
    sent_bytes: u64,
    finished: bool,
    error: Option<String>,
}

impl Delivery {
    fn outcome(&mut self) -> Option<ReadOutcome> {
        let permit = self.permit.take()?;
        let size_bytes = permit.document.ciphertext.size_bytes;
        // Every byte handed to the connection is a read, whether or not the
        // body was polled once more to see its end.
        if self.error.is_none() && self.sent_bytes == size_bytes {
            return Some(ReadOutcome::Served {
                access_tx: permit.access_tx,
                member: permit.member.key,
                document: permit.document.id,
                ciphertext_sha256: permit.document.ciphertext.sha256,
                bytes: self.sent_bytes,
            });
        }
        let reason = match &self.error {
            Some(error) => format!("reading the blob failed: {error}"),
            None => format!(
                "the connection closed after {} of {size_bytes} bytes",
                self.sent_bytes
            ),
        };
        Some(ReadOutcome::Failed {
            access_tx: permit.access_tx,
            member: permit.member.key,
            document: permit.document.id,
            bytes: self.sent_bytes,
            reason: short_reason(&reason),
        })
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let Some(outcome) = self.outcome() else {
            return;
        };
        let desk = self.desk.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || desk.attest_logged(outcome));
            }
            Err(_) => desk.attest_logged(outcome),
        }
    }
}

/// Attests a download that failed before its first byte (the node's copy
/// missing or damaged) and gives the access record back.
fn failed_before_sending(desk: &ReadDesk, permit: &ReadPermit, reason: String) {
    if let Err(error) = desk.release(&permit.access_tx) {
        tracing::error!(access = %permit.access_tx, %error, "access record could not be released");
    }
    desk.attest_logged(ReadOutcome::Failed {
        access_tx: permit.access_tx,
        member: permit.member.key,
        document: permit.document.id.clone(),
        bytes: 0,
        reason: short_reason(&reason),
    });
}

/// A member's signed read request; the answer is the ciphertext, streamed,
/// when the ledger's read rule allows it, and what became of the request is
/// attested on chain by this node.
#[utoipa::path(post, path = "/v1/reads", tag = "documents",
    request_body(description = "A signed read request (docs/format.md, \"Signed read request\").", content((crate::api_schemas::LedgerRecord = "application/json"))),
    responses(
        (status = 200, description = "The ciphertext.", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "`bad_read_request`.", body = ErrorResponse),
        (status = 403, description = "`read_refused` or the read rule's code.", body = ErrorResponse),
        (status = 404, description = "`not_found`: the document or the member is unknown.", body = ErrorResponse),
        (status = 409, description = "`blob_not_here`, `share_not_here` or `blob_corrupt`: fetch, then ask again under the same access record.", body = ErrorResponse),
        (status = 413, description = "`body_too_large`: over 4 KiB.", body = ErrorResponse),
    ))]
async fn read(
    State(chain): State<ChainView>,
    State(blobs): State<Arc<Blobs>>,
    State(room): State<BlobRoom>,
    State(desk): State<ReadDesk>,
    State(clock): State<LocalClock>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })?;
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
    let permit = {
        let blobs = blobs.clone();
        let desk = desk.clone();
        tokio::task::spawn_blocking(move || authorize(&chain, &blobs, &desk, clock, &signed))
            .await
            .map_err(|error| ApiError::internal(error.to_string()))??
    };
    let document = permit.document.clone();
    let sha256 = document.ciphertext.sha256.0;
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
    };
    let checked = match checked {
        Ok(checked) => checked,
        Err(error) => {
            let message = format!("blob store I/O on {}: {error}", path.display());
            let (desk, permit) = (desk.clone(), permit.clone());
            let reason = message.clone();
            let _ =
                tokio::task::spawn_blocking(move || failed_before_sending(&desk, &permit, reason))
                    .await;
            return Err(ApiError::internal(message));
        }
    };
    let Some((file, found, found_bytes)) = checked else {
        let (desk, permit) = (desk.clone(), permit.clone());
        let _ = tokio::task::spawn_blocking(move || {
            failed_before_sending(
                &desk,
                &permit,
                "this node does not hold the blob yet".to_string(),
            )
        })
        .await;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "blob_not_here",
            format!(
                "this node does not hold the blob of document `{}` yet; fetch it with POST /v1/blobs/fetch?document={} and ask again under the same access record",
                document.id, document.id
            ),
        ));
    };
    if found != sha256 {
        drop(file);
        let quarantined = {
            let room = room.clone();
            let id = document.id.clone();
            tokio::task::spawn_blocking(move || check_held_copy(&room, &id, &sha256))
                .await
                .map_err(|error| ApiError::internal(error.to_string()))?
        };
        let moved = match &quarantined {
            Ok(Held::Quarantined(found)) => {
                format!("; it was moved to {}", found.path.display())
            }
            // Replaced between the two reads (a fetch finished): the
            // caller may simply ask again.
            Ok(Held::Intact { .. } | Held::Missing) | Err(_) => String::new(),
        };
        let message = format!(
            "this node's copy of document `{}` does not match its ciphertext fixity on chain (expected SHA-256 {} and {} bytes, found {} and {found_bytes} bytes): it was altered or damaged on disk{moved} and a fresh copy is being fetched from the other nodes; ask again shortly under the same access record",
            document.id,
            document.ciphertext.sha256,
            document.ciphertext.size_bytes,
            hex::encode(found)
        );
        let (desk, permit) = (desk.clone(), permit.clone());
        let reason = format!(
            "this node's copy does not match the ciphertext fixity (found SHA-256 {}, {found_bytes} bytes)",
            hex::encode(found)
        );
        let _ = tokio::task::spawn_blocking(move || failed_before_sending(&desk, &permit, reason))
            .await;
        quarantined.map_err(blob_error)?;
        return Err(ApiError::new(StatusCode::CONFLICT, "blob_corrupt", message));
    }
    // A version 2 envelope goes out with its shred share, on the same
    // terms; without the share here the reader could not open it.
    let share = {
        let blobs = blobs.clone();
        tokio::task::spawn_blocking(move || match blobs.share_commitment(&sha256) {
            Ok(Some(_)) => blobs.checked_share(&sha256).map(Some).ok_or(()),
            Ok(None) | Err(_) => Ok(None),
        })
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?
    };
    let Ok(share) = share else {
        let (desk, permit) = (desk.clone(), permit.clone());
        let _ = tokio::task::spawn_blocking(move || {
            failed_before_sending(
                &desk,
                &permit,
                "this node does not hold the shred share yet".to_string(),
            )
        })
        .await;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "share_not_here",
            format!(
                "this node does not hold the shred share of document `{}` yet; fetch it with POST /v1/blobs/fetch?document={} and ask again under the same access record",
                document.id, document.id
            ),
        ));
    };
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
    // The delivery travels with the body: it is attested served when the
    // body reached its end with every byte handed to the connection, and
    // failed when the body is dropped before (the connection closed) or a
    // read failed.
    let delivery = Delivery {
        desk,
        permit: Some(permit),
        sent_bytes: 0,
        finished: false,
        error: None,
    };
    let stream = futures::stream::unfold(
        (receiver, delivery),
        |(mut receiver, mut delivery)| async move {
            match receiver.recv().await {
                Some(Ok(chunk)) => {
                    delivery.sent_bytes += chunk.len() as u64;
                    Some((Ok(chunk), (receiver, delivery)))
                }
                Some(Err(error)) => {
                    delivery.error = Some(error.to_string());
                    Some((Err(error), (receiver, delivery)))
                }
                None => {
                    delivery.finished = true;
                    // Dropped here: attested now, before the body ends.
                    drop(delivery);
                    None
                }
            }
        },
    );
    tracing::info!(document = %document.id, size_bytes, shred_share = share.is_some(), "ciphertext served");
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size_bytes.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    if let Some(share) = share {
        if let Ok(value) = axum::http::HeaderValue::from_str(&hex::encode(share)) {
            response.headers_mut().insert(SHRED_SHARE_HEADER, value);
        }
    }
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only documents in this department's custody.
    custodian: Option<String>,
    /// `active`, `in-transfer` or `disposed`.
    status: Option<String>,
    /// `public`, `internal`, `confidential` or `secret`.
    classification: Option<String>,
    /// Only documents about one citizen: the hex chain tag of their receipt code.
    subject_tag: Option<String>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
    /// Documents on the page, at most `api.page_size_max`.
    limit: Option<u32>,
}

/// Documents, filtered and paged.
#[utoipa::path(get, path = "/v1/documents", tag = "documents", params(ListQuery),
    responses(
        (status = 200, description = "A page of documents.", body = RecordPage),
        (status = 400, description = "`bad_identifier`, `bad_filter`, `bad_cursor` or `bad_query`.", body = ErrorResponse),
    ))]
async fn list(
    State(chain): State<ChainView>,
    State(settings): State<Arc<ApiSettings>>,
    ApiQuery(query): ApiQuery<ListQuery>,
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
    let subject_tag = match query.subject_tag.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Hash32(
            custody_ledger::types::parse_hex::<32>(text).map_err(|error| {
                ApiError::bad_request(
                    "bad_filter",
                    format!("`{text}` is not a subject tag (64 hex digits): {error}"),
                )
            })?,
        )),
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
                && classification.is_none_or(|c| document.classification == c)
                && subject_tag
                    .as_ref()
                    .is_none_or(|tag| document.subject_tag.as_ref() == Some(tag));
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
    use custody_ledger::types::{PublicKey, TxId};

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
    use custody_ledger::types::{PublicKey, TxId};

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
