//! The HTTP API (axum), versioned under `/v1`.
//!
//! Every error is `{"error": {"code", "message"}}` with a stable code (see
//! `docs/operations.md`). Request bodies are limited to
//! `api.body_bytes_max`; list queries are paged with `page_size_max`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use custody_ledger::state::TxRefusal;
use custody_ledger::store::StoreError;
use custody_ledger::tx::SignedTransaction;
use custody_ledger::types::{BlockHash, DepartmentId, DocumentId, Height, PublicKey, TxId};
use serde::{Deserialize, Serialize};
use tower_http::timeout::TimeoutLayer;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admission::{Admission, Incoming, Refusal, Source};
use crate::api_error::ApiError;
use crate::api_schemas::{
    ApiPath, ApiQuery, Door, ErrorResponse, HealthzResponse, LedgerRecord, ReadinessResponse,
    RecordPage,
};
use crate::api_state::{ApiSettings, ApiState};
use crate::api_types::{
    BatchItem, BatchResponse, BlockResponse, Inclusion, MempoolStatus, Page, PeerDetail,
    StatusResponse, SubmitResponse, TransactionResponse,
};
use crate::handles::{ChainView, MempoolView, PeerView};
use crate::health::Health;
use crate::mempool::{AdmitError, DocumentHead};
use crate::metrics::Metrics;
use crate::store_reader::StoreReader;

/// The API's routes, in the groups that get the same layers. Each route is
/// registered with its description (`routes!`), one line per route, so the
/// OpenAPI description cannot miss one; `tests/openapi.rs` checks that no
/// route is added another way.
pub struct RouteGroups {
    /// Anyone may call; `api.request_timeout_ms`.
    pub open: OpenApiRouter<ApiState>,
    /// Routes that answer records (transactions, blocks, documents,
    /// members, proposals, alerts) admit only a signed caller (`api_auth`);
    /// `api.request_timeout_ms`.
    pub signed: OpenApiRouter<ApiState>,
    /// Blob transfers anyone may start (an upload and a read carry their
    /// own signatures); `api.transfer_timeout_ms`.
    pub transfers_open: OpenApiRouter<ApiState>,
    /// Blob routes behind the caller check; `api.transfer_timeout_ms`.
    pub transfers_signed: OpenApiRouter<ApiState>,
}

pub fn route_groups() -> RouteGroups {
    let open = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(status))
        .routes(routes!(submit))
        .routes(routes!(submit_batch))
        .routes(routes!(departments))
        .routes(routes!(department))
        .routes(routes!(evidence_list))
        .merge(crate::api_citizen::routes())
        .merge(crate::api_governance::routes());
    let signed = OpenApiRouter::new()
        .routes(routes!(transaction))
        .routes(routes!(block_by_height))
        .routes(routes!(block_by_hash))
        .routes(routes!(member))
        .merge(document_routes())
        .merge(crate::api_governance::signed_routes())
        .merge(crate::api_alerts::signed_routes())
        .merge(crate::api_page_login::signed_routes());
    RouteGroups {
        open,
        signed,
        transfers_open: crate::api_documents::routes(),
        transfers_signed: crate::api_documents::signed_routes(),
    }
}

/// `/v1/documents/{id}` and `/v1/documents/{id}/history`: document ids may
/// contain `/`, so one wildcard route serves both; utoipa cannot write a
/// wildcard, so the two are described by hand (`document`,
/// `document_history`). The one route registered outside `routes!`.
fn document_routes() -> OpenApiRouter<ApiState> {
    let mut router = OpenApiRouter::new().route("/v1/documents/{*id}", get(document_or_history));
    router.get_openapi_mut().paths.merge(
        utoipa::openapi::path::PathsBuilder::new()
            .path_from::<__path_document>()
            .path_from::<__path_document_history>()
            .build(),
    );
    router
}

/// The OpenAPI description of every route, as `GET /v1/openapi.json`
/// serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let groups = route_groups();
    let mut document = crate::api_schemas::frame();
    for (group, door) in [
        (groups.open, Door::Open),
        (groups.signed, Door::Signed),
        (groups.transfers_open, Door::Open),
        (groups.transfers_signed, Door::Signed),
    ] {
        let mut part = group.into_openapi();
        crate::api_schemas::add_shared_answers(&mut part, door);
        document.merge(part);
    }
    document
}

pub fn router(state: ApiState) -> Router {
    let settings = &state.settings;
    let body_limit = settings.api.body_bytes_max;
    let request_timeout = Duration::from_millis(settings.api.request_timeout_ms);
    let transfer_timeout = Duration::from_millis(settings.api.transfer_timeout_ms);
    let gate = state.auth_gate.clone();
    let signed = || middleware::from_fn_with_state(gate.clone(), crate::api_auth::require_caller);
    let groups = route_groups();
    let (open, _) = groups.open.split_for_parts();
    let (records, _) = groups.signed.split_for_parts();
    let (transfers_open, _) = groups.transfers_open.split_for_parts();
    let (transfers_signed, _) = groups.transfers_signed.split_for_parts();
    // The HTML pages (outside `/v1/`, kept out of the OpenAPI description)
    // share the open routes' layers: the citizen page spends the same
    // lookup budget as `POST /v1/citizen/records`.
    let open = open.merge(crate::pages::routes());
    Router::new()
        .merge(open.layer(crate::api_citizen::desk(&settings.api)))
        .merge(records.route_layer(signed()))
        .fallback(not_found)
        // `layer` wraps only the routes above: blob transfers get their own,
        // longer deadline below.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .merge(
            transfers_open
                // The export upload page: an upload and its verification
                // take the transfers' deadline.
                .merge(crate::pages::verify::routes())
                .merge(transfers_signed.route_layer(signed()))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    transfer_timeout,
                )),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.settings.clone(),
            refuse_declared_oversize,
        ))
        .with_state(state)
}

/// A declared body this many times over `api.body_bytes_max` is refused at
/// once, before a byte of it is read. A body only a little over the limit
/// goes the ordinary way (read up to the limit, then 413): answering while an
/// honest client is still sending makes the closing connection reset under
/// it, and the client then sees a broken connection instead of the 413.
const DECLARED_BODY_REFUSED_AT_ONCE_FACTOR: u64 = 8;

/// Refuses a request whose declared `Content-Length` is far over the body
/// limit before a byte of the body is read, on every route. Without this a
/// client that declares a huge body and never sends it holds the connection
/// open (and, with `Expect: 100-continue`, is even invited to send it). A
/// blob upload's limit is `blobs.blob_bytes_max` instead.
async fn refuse_declared_oversize(
    State(settings): State<Arc<ApiSettings>>,
    request: Request,
    next: Next,
) -> Response {
    let is_blob_upload =
        request.method() == Method::PUT && request.uri().path().starts_with("/v1/blobs/");
    let is_export_upload = request.method() == Method::POST
        && request.uri().path() == crate::pages::verify::VERIFY_PATH;
    let limit_bytes = if is_blob_upload {
        settings.blob_bytes_max
    } else if is_export_upload {
        // The page answers an oversized upload itself, with a page.
        u64::MAX / DECLARED_BODY_REFUSED_AT_ONCE_FACTOR
    } else {
        settings.api.body_bytes_max as u64
    };
    let declared_bytes = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match declared_bytes {
        Some(declared)
            if declared > limit_bytes.saturating_mul(DECLARED_BODY_REFUSED_AT_ONCE_FACTOR) =>
        {
            let mut response = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request declares a body of {declared} bytes; the limit is {limit_bytes} bytes"
                ),
            )
            .into_response();
            // The unread body is still on the wire: tell the client this
            // connection ends here, so that it does not send its next request
            // on a connection the server is about to close.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            response
        }
        _ => next.run(request).await,
    }
}

fn store_error(error: StoreError) -> ApiError {
    tracing::error!(%error, "store read failed");
    ApiError::internal(format!("the node's store could not be read: {error}"))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see docs/operations.md for the API")
}

/// Liveness: the consensus task runs (its loop turned recently) and the
/// store answers. A supervisor restarts a node that fails this.
#[utoipa::path(get, path = "/healthz", tag = "health", responses(
    (status = 200, description = "The node is alive.", body = HealthzResponse),
    (status = 503, description = "`consensus_stuck` or `store_unavailable`.", body = ErrorResponse),
))]
async fn healthz(
    State(health): State<Arc<Health>>,
    State(chain): State<ChainView>,
    State(settings): State<Arc<ApiSettings>>,
) -> Response {
    let driver_silent_ms = health.pulse.driver_silent_ms();
    if let Err(reason) = crate::health::liveness(driver_silent_ms, &settings.readiness) {
        return ApiError::unavailable("consensus_stuck", reason).into_response();
    }
    match chain.store().latest_height() {
        Ok(height) => Json(serde_json::json!({"status": "ok", "height": height.0})).into_response(),
        Err(error) => ApiError::unavailable("store_unavailable", error.to_string()).into_response(),
    }
}

/// Readiness: this node hears a quorum and the chain is not stalled while
/// there is work (`health::readiness`). A load balancer sends clients
/// elsewhere while it fails.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "The node is ready.", body = ReadinessResponse),
    (status = 503, description = "The node is not ready; `reasons` says why.", body = ReadinessResponse),
))]
async fn readyz(
    State(chain): State<ChainView>,
    State(peers): State<PeerView>,
    State(metrics): State<Arc<Metrics>>,
    State(health): State<Arc<Health>>,
    State(mempool): State<MempoolView>,
    State(settings): State<Arc<ApiSettings>>,
) -> Response {
    let facts = crate::health_watch::facts(chain.store(), &peers, &metrics, &health, &mempool);
    let verdict = match facts {
        Ok(facts) => crate::health::readiness(&facts, &settings.readiness),
        Err(error) => crate::health::Readiness {
            ready: false,
            reasons: vec![format!("the node's store could not be read: {error}")],
        },
    };
    let status = if verdict.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(verdict)).into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, description = "The metrics in Prometheus' text format.", body = String, content_type = "text/plain"),
))]
async fn metrics(
    State(metrics): State<Arc<Metrics>>,
    State(health): State<Arc<Health>>,
) -> Response {
    let mut text = metrics.render();
    let last_heard: Vec<(String, Option<u64>)> = health
        .validators()
        .into_iter()
        .map(|validator| (validator.validator, validator.last_heard_ms_ago))
        .collect();
    text.push_str(&crate::metrics::render_last_heard(&last_heard));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// This description of the API.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "health", responses(
    (status = 200, description = "The OpenAPI description of every route.", body = Object),
))]
async fn openapi_json() -> Response {
    openapi_answer()
}

/// The document `GET /v1/openapi.json` serves, built once.
fn served_document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| match openapi().to_pretty_json() {
        Ok(text) => text,
        Err(error) => {
            // Cannot happen for a document built from these types; answer
            // the error rather than panic.
            tracing::error!(%error, "the OpenAPI description could not be written");
            String::new()
        }
    })
}

/// `GET /v1/openapi.json`'s answer.
fn openapi_answer() -> Response {
    let document = served_document();
    if document.is_empty() {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the OpenAPI description could not be written; see the node's log",
        )
        .into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/json".to_string(),
        )],
        document,
    )
        .into_response()
}

/// `/v1/status`: the client's [`StatusResponse`] plus, per validator of the
/// set in force, its recent signatures and when it was last heard.
#[derive(Serialize, ToSchema)]
struct StatusWithValidators {
    #[serde(flatten)]
    status: StatusResponse,
    /// Per validator of the set in force: its recent signatures and when it
    /// was last heard.
    #[schema(value_type = Vec<Object>)]
    validators: Vec<crate::health::ValidatorActivity>,
}

/// The node's view of the chain, its peers and its mempool.
#[utoipa::path(get, path = "/v1/status", tag = "chain", responses(
    (status = 200, description = "The node's status.", body = StatusWithValidators),
))]
async fn status(
    State(chain): State<ChainView>,
    State(mempool): State<MempoolView>,
    State(peers): State<PeerView>,
    State(metrics): State<Arc<Metrics>>,
    State(health): State<Arc<Health>>,
    State(settings): State<Arc<ApiSettings>>,
    State(clock): State<crate::handles::LocalClock>,
) -> Result<Json<StatusWithValidators>, ApiError> {
    let head = chain.store().chain_info().map_err(store_error)?;
    let (transactions, bytes) = mempool.size();
    let (transactions, bytes) = (transactions as u64, bytes as u64);
    let status = StatusResponse {
        chain_id: chain.chain_id().to_string(),
        genesis_hash: chain.genesis_hash().to_string(),
        department: settings.department.clone(),
        peer_id: peers.own_peer_id().to_string(),
        height: head.height.0,
        last_block_hash: head.last_block_hash.to_hex(),
        last_block_time_ms: head.last_time.0,
        round: metrics.round.load(Ordering::Relaxed),
        peers: peers.connected(),
        mempool: MempoolStatus {
            transactions,
            bytes,
        },
        syncing: peers.is_syncing(),
        peer_details: peer_details(&peers, &metrics),
        time_ms: clock.now_ms(),
    };
    Ok(Json(StatusWithValidators {
        status,
        validators: health.validators(),
    }))
}

fn peer_details(peers: &PeerView, metrics: &Metrics) -> Vec<PeerDetail> {
    let connected = peers.connected();
    metrics
        .peer_consensus_ages(std::time::Instant::now())
        .into_iter()
        .map(|peer| PeerDetail {
            connected: connected.contains(&peer.peer_id),
            peer_id: peer.peer_id,
            department: peer.department,
            last_consensus_message_age_ms: peer.last_consensus_message_age_ms,
        })
        .collect()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SubmitQuery {
    /// Wait until the transaction is committed (or `timeout_ms` passes).
    #[serde(default)]
    wait: bool,
    /// How long to wait, at most `api.wait_ms_max`.
    timeout_ms: Option<u64>,
}

fn is_json_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

pub(crate) fn inclusion_of(store: &StoreReader, id: &TxId) -> Result<Option<Inclusion>, ApiError> {
    let Some(stored) = store.transaction(id).map_err(store_error)? else {
        return Ok(None);
    };
    let block = store
        .block(stored.location.height)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::internal("committed transaction's block is missing"))?;
    let proof = block
        .inclusion_proof(stored.location.index as usize)
        .ok_or_else(|| ApiError::internal("inclusion proof could not be built"))?;
    Ok(Some(Inclusion {
        height: stored.location.height,
        index: stored.location.index,
        block_hash: stored.block_hash,
        proof,
    }))
}

/// Submits one signed transaction: JSON, or its canonical encoding as
/// `application/octet-stream`.
#[utoipa::path(post, path = "/v1/transactions", tag = "chain", params(SubmitQuery),
    request_body(description = "A signed transaction.", content(
        (LedgerRecord = "application/json"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "Committed (with `wait`): where it sits, with its proof.", body = SubmitResponse),
        (status = 202, description = "Accepted into the mempool; not committed yet.", body = SubmitResponse),
        (status = 400, description = "`malformed_transaction`, `bad_signature`, `wrong_chain_id`...: not a transaction of this chain.", body = ErrorResponse),
        (status = 409, description = "`already_committed` or `already_pending`.", body = ErrorResponse),
        (status = 413, description = "`body_too_large`: over `api.body_bytes_max`.", body = ErrorResponse),
        (status = 422, description = "The transaction breaks a rule of the ledger; the code names it.", body = ErrorResponse),
        (status = 503, description = "`mempool_full`: retry later.", body = ErrorResponse),
    ))]
async fn submit(
    State(chain): State<ChainView>,
    State(admission): State<Admission>,
    State(settings): State<Arc<ApiSettings>>,
    ApiQuery(query): ApiQuery<SubmitQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "body_too_large",
                format!(
                    "the request body is larger than {} bytes",
                    settings.api.body_bytes_max
                ),
            )
        } else {
            ApiError::new(status, "bad_body", rejection.body_text())
        }
    })?;
    let incoming = if is_json_body(&headers) {
        Incoming::Decoded(serde_json::from_slice(&body).map_err(|error| {
            ApiError::bad_request(
                "malformed_transaction",
                format!("the body is not a JSON transaction: {error}"),
            )
        })?)
    } else {
        Incoming::Encoded(body.to_vec())
    };
    let mut committed = chain.committed();
    // Admit against a mempool that has caught up with the store, so that a
    // transaction built on what the store answered is checked against it.
    chain.settled(MEMPOOL_SETTLE_WAIT).await;
    let admitted = {
        let admission = admission.clone();
        tokio::task::spawn_blocking(move || admission.admit(vec![incoming], Source::Client).pop())
            .await
            .map_err(|error| ApiError::internal(error.to_string()))?
    };
    let id = match admitted {
        Some(Ok(id)) | Some(Err(Refusal::Mempool(id, AdmitError::Duplicate(_)))) => id,
        Some(Err(Refusal::AlreadyCommitted(id))) => {
            let height = inclusion_of(chain.store(), &id)?
                .map(|inclusion| format!(" at height {}", inclusion.height))
                .unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_committed",
                format!("transaction {id} is already committed{height}"),
            ));
        }
        Some(Err(refusal)) => return Err(refusal_error(refusal)),
        None => return Err(ApiError::internal("the transaction was lost on admission")),
    };
    if !query.wait {
        return Ok((
            StatusCode::ACCEPTED,
            Json(SubmitResponse {
                tx_id: id,
                status: "pending".to_string(),
                inclusion: None,
            }),
        )
            .into_response());
    }
    let wait_ms = query
        .timeout_ms
        .unwrap_or(settings.api.wait_ms_max)
        .min(settings.api.wait_ms_max);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    loop {
        if let Some(inclusion) = inclusion_of(chain.store(), &id)? {
            // Answer "committed" once the mempool has rebuilt past that
            // block: the caller's next transaction then finds this node's
            // reads and its admission in agreement.
            chain
                .settled_at(inclusion.height.0, MEMPOOL_SETTLE_WAIT)
                .await;
            return Ok(Json(SubmitResponse {
                tx_id: id,
                status: "committed".to_string(),
                inclusion: Some(inclusion),
            })
            .into_response());
        }
        match tokio::time::timeout_at(deadline, committed.changed()).await {
            Ok(Ok(())) => continue,
            _ => {
                return Ok((
                    StatusCode::ACCEPTED,
                    Json(SubmitResponse {
                        tx_id: id,
                        status: "pending".to_string(),
                        inclusion: None,
                    }),
                )
                    .into_response())
            }
        }
    }
}

/// Longest wait for the mempool to catch up with a block the store already
/// holds (it is rebuilt right after the store is written: milliseconds).
const MEMPOOL_SETTLE_WAIT: Duration = Duration::from_millis(2_000);

/// Most transactions in one batch submission.
pub const BATCH_TXS_MAX: usize = 1_000;

/// The error a refused admission gets (a transaction already waiting is
/// not an error: the caller treats [`AdmitError::Duplicate`] as pending).
fn refusal_error(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Malformed(error) => ApiError::bad_request(
            "malformed_transaction",
            format!("the body is not a canonically encoded transaction: {error}"),
        ),
        Refusal::AlreadyCommitted(id) => ApiError::new(
            StatusCode::CONFLICT,
            "already_committed",
            format!("transaction {id} is already committed"),
        ),
        Refusal::BadSignature(_) => ApiError::bad_request(
            "bad_signature",
            "signature does not match the signer's key and the transaction's content",
        ),
        Refusal::Store(_, error) => store_error(error),
        Refusal::Mempool(id, AdmitError::Duplicate(_)) | Refusal::Skipped(id) => ApiError::new(
            StatusCode::CONFLICT,
            "already_pending",
            format!("transaction {id} is already waiting for a block"),
        ),
        Refusal::Mempool(_, AdmitError::Full { .. }) => ApiError::unavailable(
            "mempool_full",
            "the node has too many transactions waiting; retry later",
        ),
        Refusal::Mempool(_, AdmitError::Refused(refusal)) => {
            // A transaction that is not this chain's, or not signed by
            // its signer, is a malformed request; the others broke a rule.
            let status = match refusal {
                TxRefusal::BadSignature | TxRefusal::WrongChainId { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError {
                status,
                code: refusal.code(),
                message: refusal.to_string(),
            }
        }
    }
}

/// `POST /v1/transactions/batch`: many transactions in one request, for
/// bulk registration. The body is a JSON array of transactions, or the
/// postcard encoding of a list of canonical transaction encodings. The
/// signatures are checked in one ed25519 batch; each transaction is then
/// admitted in order and gets its own result (a refusal does not stop the
/// ones after it, but a signer's later nonces will then be refused too).
#[utoipa::path(post, path = "/v1/transactions/batch", tag = "chain",
    request_body(description = "Signed transactions: a JSON array, or the postcard encoding of a list of canonical encodings.", content(
        (Vec<LedgerRecord> = "application/json"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "One result per transaction, in order.", body = BatchResponse),
        (status = 400, description = "`malformed_batch` or `batch_too_large`.", body = ErrorResponse),
        (status = 413, description = "`body_too_large_or_unreadable`: over `api.body_bytes_max`.", body = ErrorResponse),
    ))]
async fn submit_batch(
    State(admission): State<Admission>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchResponse>, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "body_too_large_or_unreadable",
            rejection.body_text(),
        )
    })?;
    let decoded: Vec<Result<Incoming, ApiError>> = if is_json_body(&headers) {
        let values: Vec<serde_json::Value> = serde_json::from_slice(&body).map_err(|error| {
            ApiError::bad_request(
                "malformed_batch",
                format!("the body is not a JSON array of transactions: {error}"),
            )
        })?;
        values
            .into_iter()
            .map(|value| {
                serde_json::from_value::<SignedTransaction>(value)
                    .map(|tx| Incoming::Decoded(Box::new(tx)))
                    .map_err(|error| {
                        ApiError::bad_request(
                            "malformed_transaction",
                            format!("not a JSON transaction: {error}"),
                        )
                    })
            })
            .collect()
    } else {
        let encoded: Vec<Vec<u8>> = postcard::from_bytes(&body).map_err(|error| {
            ApiError::bad_request(
                "malformed_batch",
                format!("the body is not a list of encoded transactions: {error}"),
            )
        })?;
        encoded
            .into_iter()
            .map(|bytes| Ok(Incoming::Encoded(bytes)))
            .collect()
    };
    if decoded.len() > BATCH_TXS_MAX {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!("a batch holds at most {BATCH_TXS_MAX} transactions"),
        ));
    }
    let results = {
        let admission = admission.clone();
        tokio::task::spawn_blocking(move || admit_batch(&admission, decoded))
            .await
            .map_err(|error| ApiError::internal(error.to_string()))?
    };
    Ok(Json(BatchResponse { results }))
}

/// Admits the readable transactions of a batch together and answers for
/// each of them, in order.
fn admit_batch(admission: &Admission, decoded: Vec<Result<Incoming, ApiError>>) -> Vec<BatchItem> {
    let mut unreadable = Vec::new();
    let mut incoming = Vec::new();
    for item in decoded {
        match item {
            Ok(item) => {
                unreadable.push(None);
                incoming.push(item);
            }
            Err(error) => unreadable.push(Some(error)),
        }
    }
    let mut admitted = admission.admit(incoming, Source::Client).into_iter();
    unreadable
        .into_iter()
        .map(|unreadable| match (unreadable, admitted.next()) {
            (Some(error), _) => BatchItem::refused(None, &error),
            (None, Some(Ok(id))) => BatchItem::pending(id),
            (None, Some(Err(Refusal::Mempool(id, AdmitError::Duplicate(_))))) => {
                BatchItem::pending(id)
            }
            (None, Some(Err(refusal))) => {
                let id = refused_id(&refusal);
                BatchItem::refused(id, &refusal_error(refusal))
            }
            (None, None) => BatchItem::refused(
                None,
                &ApiError::internal("the transaction was lost on admission"),
            ),
        })
        .collect()
}

/// The id of a refused transaction, when it is known.
fn refused_id(refusal: &Refusal) -> Option<TxId> {
    match refusal {
        Refusal::AlreadyCommitted(id)
        | Refusal::BadSignature(id)
        | Refusal::Skipped(id)
        | Refusal::Mempool(id, _)
        | Refusal::Store(id, _) => Some(*id),
        Refusal::Malformed(_) => None,
    }
}

fn parse_hash(text: &str, what: &str) -> Result<[u8; 32], ApiError> {
    custody_ledger::types::parse_hex::<32>(text).map_err(|error| {
        ApiError::bad_request(
            "bad_identifier",
            format!("`{text}` is not a {what} (64 lowercase hex digits): {error}"),
        )
    })
}

/// A transaction, committed (with its inclusion proof) or waiting.
#[utoipa::path(get, path = "/v1/transactions/{id}", tag = "chain",
    params(("id" = String, Path, description = "The transaction id (64 lowercase hex digits).")),
    responses(
        (status = 200, description = "The transaction.", body = TransactionResponse),
        (status = 400, description = "`bad_identifier`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: neither committed nor waiting here.", body = ErrorResponse),
    ))]
async fn transaction(
    State(chain): State<ChainView>,
    State(mempool): State<MempoolView>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TransactionResponse>, ApiError> {
    let id = TxId(parse_hash(&id, "transaction id")?);
    if let Some(stored) = chain.store().transaction(&id).map_err(store_error)? {
        let inclusion = inclusion_of(chain.store(), &id)?;
        return Ok(Json(TransactionResponse {
            tx_id: id,
            status: "committed".to_string(),
            transaction: stored.transaction,
            inclusion,
        }));
    }
    let pending = mempool.pending(&id);
    match pending {
        Some(transaction) => Ok(Json(TransactionResponse {
            tx_id: id,
            status: "pending".to_string(),
            transaction,
            inclusion: None,
        })),
        None => Err(ApiError::not_found(format!(
            "transaction {id} is neither committed nor waiting at this node"
        ))),
    }
}

fn block_response(store: &StoreReader, height: Height) -> Result<Json<BlockResponse>, ApiError> {
    let block = store
        .block(height)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {}", height.0)))?;
    let certificate = store.certificate(height).map_err(store_error)?;
    Ok(Json(BlockResponse {
        height,
        hash: block.hash(),
        block,
        certificate,
    }))
}

/// A block as JSON, or with `Accept: application/octet-stream` its
/// canonical bytes exactly as stored (what `docs/format.md` describes and
/// verification hashes), for tools that decode blocks themselves.
#[utoipa::path(get, path = "/v1/blocks/{height}", tag = "chain",
    params(("height" = String, Path, description = "The block height.")),
    responses(
        (status = 200, description = "The block, its hash and its certificate.", content(
            (BlockResponse = "application/json"),
            (Vec<u8> = "application/octet-stream"),
        )),
        (status = 400, description = "`bad_identifier`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: no block at that height.", body = ErrorResponse),
    ))]
async fn block_by_height(
    State(chain): State<ChainView>,
    headers: HeaderMap,
    ApiPath(height): ApiPath<String>,
) -> Result<Response, ApiError> {
    let height: u64 = height.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_identifier",
            format!("`{height}` is not a block height"),
        )
    })?;
    let wants_bytes = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/octet-stream"));
    if wants_bytes {
        let bytes = chain
            .store()
            .raw_block(Height(height))
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
        return Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response());
    }
    block_response(chain.store(), Height(height)).map(IntoResponse::into_response)
}

/// A block by its hash.
#[utoipa::path(get, path = "/v1/blocks/hash/{hash}", tag = "chain",
    params(("hash" = String, Path, description = "The block hash (64 lowercase hex digits).")),
    responses(
        (status = 200, description = "The block, its hash and its certificate.", body = BlockResponse),
        (status = 400, description = "`bad_identifier`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: no block with that hash.", body = ErrorResponse),
    ))]
async fn block_by_hash(
    State(chain): State<ChainView>,
    ApiPath(hash): ApiPath<String>,
) -> Result<Json<BlockResponse>, ApiError> {
    let hash = BlockHash(parse_hash(&hash, "block hash")?);
    let height = chain
        .store()
        .height_of(&hash)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no block with hash {hash}")))?;
    block_response(chain.store(), height)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
    /// Items on the page, at most `api.page_size_max`.
    limit: Option<u32>,
}

/// A registered document, with `head_event_pending`: what a new event must
/// name to be admitted here now (null while a transaction on the document
/// waits for a block).
#[utoipa::path(get, path = "/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "The document id (may contain `/`).")),
    responses(
        (status = 200, description = "The document.", body = LedgerRecord),
        (status = 400, description = "`bad_identifier`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: the document is not registered.", body = ErrorResponse),
    ))]
#[allow(dead_code)] // Describes `document_or_history`'s wildcard route.
fn document() {}

/// A document's events, oldest first, paged.
#[utoipa::path(get, path = "/v1/documents/{id}/history", tag = "documents",
    params(("id" = String, Path, description = "The document id (may contain `/`)."), PageQuery),
    responses(
        (status = 200, description = "A page of the document's events.", body = RecordPage),
        (status = 400, description = "`bad_identifier` or `bad_cursor`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: the document is not registered.", body = ErrorResponse),
    ))]
#[allow(dead_code)] // Describes `document_or_history`'s wildcard route.
fn document_history() {}

/// `/v1/documents/{id}` and `/v1/documents/{id}/history` (document ids may
/// contain `/`, so the route takes the rest of the path).
async fn document_or_history(
    State(chain): State<ChainView>,
    State(mempool): State<MempoolView>,
    State(settings): State<Arc<ApiSettings>>,
    ApiPath(rest): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    if let Some(id) = rest.strip_suffix("/history") {
        let id = DocumentId::new(id.to_string())
            .map_err(|error| ApiError::bad_request("bad_identifier", error.to_string()))?;
        let limit = page
            .limit
            .unwrap_or(settings.api.page_size_max)
            .clamp(1, settings.api.page_size_max) as usize;
        let from = match page.cursor.as_deref() {
            None | Some("") => 0,
            Some(cursor) => cursor.parse::<u64>().map_err(|_| {
                ApiError::bad_request("bad_cursor", format!("`{cursor}` is not a history cursor"))
            })?,
        };
        if chain.store().document(&id).map_err(store_error)?.is_none() {
            return Err(ApiError::not_found(format!(
                "document `{id}` is not registered"
            )));
        }
        let history = chain
            .store()
            .document_history(&id, from, limit)
            .map_err(store_error)?;
        return Ok(Json(Page {
            items: history.items,
            next_cursor: history.next.map(|next| next.to_string()),
        })
        .into_response());
    }
    let id = DocumentId::new(rest)
        .map_err(|error| ApiError::bad_request("bad_identifier", error.to_string()))?;
    chain.settled(MEMPOOL_SETTLE_WAIT).await;
    let document = chain
        .store()
        .document(&id)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("document `{id}` is not registered")))?;
    let mut value =
        serde_json::to_value(&document).map_err(|e| ApiError::internal(e.to_string()))?;
    // What a new event must name to be admitted here now (the mempool
    // decides); null while a transaction on the document waits for a block.
    value["head_event_pending"] = match mempool.document_head(&id) {
        DocumentHead::Settled(head) => serde_json::json!(head),
        _ => serde_json::Value::Null,
    };
    Ok(Json(value).into_response())
}

/// An enrolled member, with its `nonce` and the `next_nonce` its next
/// transaction must carry.
#[utoipa::path(get, path = "/v1/members/{key}", tag = "chain",
    params(("key" = String, Path, description = "The member's public key (64 lowercase hex digits).")),
    responses(
        (status = 200, description = "The member.", body = LedgerRecord),
        (status = 400, description = "`bad_identifier`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: not enrolled.", body = ErrorResponse),
    ))]
async fn member(
    State(chain): State<ChainView>,
    State(mempool): State<MempoolView>,
    ApiPath(key): ApiPath<String>,
) -> Result<Response, ApiError> {
    let key = PublicKey(parse_hash(&key, "member key")?);
    chain.settled(MEMPOOL_SETTLE_WAIT).await;
    let member = chain
        .store()
        .member(&key)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("member {key} is not enrolled")))?;
    let nonce = chain.store().nonce(&key).map_err(store_error)?;
    let mut value = serde_json::to_value(&member).map_err(|e| ApiError::internal(e.to_string()))?;
    value["nonce"] = serde_json::json!(nonce.0);
    // The nonce the member's next transaction must carry, its waiting
    // transactions counted (the mempool decides).
    value["next_nonce"] = serde_json::json!(mempool.next_nonce(&key).map(|next| next.0));
    Ok(Json(value).into_response())
}

/// A department of the federation.
#[utoipa::path(get, path = "/v1/departments/{id}", tag = "chain",
    params(("id" = String, Path, description = "The department id, e.g. `civil-affairs`.")),
    responses(
        (status = 200, description = "The department.", body = LedgerRecord),
        (status = 400, description = "`bad_identifier`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such department.", body = ErrorResponse),
    ))]
async fn department(
    State(chain): State<ChainView>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = DepartmentId::new(id)
        .map_err(|error| ApiError::bad_request("bad_identifier", error.to_string()))?;
    let department = chain
        .store()
        .department(&id)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("department `{id}` does not exist")))?;
    Ok(Json(department).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EvidenceQuery {
    /// `<validator hex>:<height>` of the last record of the page before.
    cursor: Option<String>,
    /// Records on the page, at most `api.page_size_max`.
    limit: Option<u32>,
}

/// `GET /v1/evidence?cursor=&limit=`: the equivocation evidence the chain
/// records, by validator key then height, paged.
#[utoipa::path(get, path = "/v1/evidence", tag = "chain", params(EvidenceQuery),
    responses(
        (status = 200, description = "A page of evidence records.", body = RecordPage),
        (status = 400, description = "`bad_cursor` or `bad_query`.", body = ErrorResponse),
    ))]
async fn evidence_list(
    State(chain): State<ChainView>,
    State(settings): State<Arc<ApiSettings>>,
    ApiQuery(query): ApiQuery<EvidenceQuery>,
) -> Result<Response, ApiError> {
    let after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => {
            let parsed = text.split_once(':').and_then(|(key, height)| {
                Some((
                    PublicKey::from_hex(key).ok()?,
                    Height(height.parse::<u64>().ok()?),
                ))
            });
            Some(parsed.ok_or_else(|| {
                ApiError::bad_request(
                    "bad_cursor",
                    format!("`{text}` is not an evidence cursor (`<validator hex>:<height>`)"),
                )
            })?)
        }
    };
    let limit = query
        .limit
        .unwrap_or(settings.api.page_size_max)
        .clamp(1, settings.api.page_size_max)
        .min(custody_ledger::store::PAGE_LIMIT_MAX as u32) as usize;
    let page = chain
        .store()
        .evidence_page(after, limit)
        .map_err(store_error)?;
    Ok(Json(Page {
        items: page.items,
        next_cursor: page
            .next
            .map(|(validator, height)| format!("{validator}:{}", height.0)),
    })
    .into_response())
}

/// Every department of the federation.
#[utoipa::path(get, path = "/v1/departments", tag = "chain", responses(
    (status = 200, description = "The departments.", body = Vec<LedgerRecord>),
))]
async fn departments(State(chain): State<ChainView>) -> Result<Response, ApiError> {
    let departments = chain.store().departments().map_err(store_error)?;
    Ok(Json(departments).into_response())
}
