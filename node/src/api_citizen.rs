//! The citizen's page: `POST /v1/citizen/records`, open to anyone.
//!
//! The body is `{"receipt_code": "XXXX-XXXX-…"}`, the code a clerk handed
//! the citizen at registration (`custody doc register --subject`). The node
//! hashes the code into its subject tag (`custody_ledger::subject`) and
//! answers `{"records": [...]}`: for each record with that tag, the
//! department holding it (or the last one that held it), since when, its
//! status, the departments that held it, and how many reads each
//! department recorded. Never a document id, title, type or content; the
//! node never learns the citizen's identity.
//!
//! A code that names no record answers `{"records": []}`, exactly as a
//! code of a citizen with no records would: the answer says nothing about
//! other codes. A text that is not a code at all is a 400
//! `bad_receipt_code`. Each client has a budget of lookups
//! (`citizen_limit`); beyond it, 429 `rate_limited` with `Retry-After`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use custody_ledger::subject::{CitizenRecord, ReceiptCode};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_error::ApiError;
use crate::api_schemas::ErrorResponse;
use crate::api_state::ApiState;
use crate::citizen_limit::{CitizenLimit, Client, Decision};
use crate::config::ApiConfig;
use crate::handles::ChainView;
use crate::metrics::Metrics;

/// Largest body of a citizen lookup: a receipt code in a small JSON
/// object needs well under this.
pub const CITIZEN_LOOKUP_BYTES_MAX: usize = 1024;

/// What the citizen sends.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CitizenLookup {
    pub receipt_code: String,
}

/// What the citizen is told: the same shape whether the code found
/// records or not.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CitizenAnswer {
    /// Per record: the holding department, since when, its status
    /// (`active`, `in-transfer`, `disposed`), every department that held
    /// it, and reads per reading department. Never a title or content.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<CitizenRecord>,
}

/// The lookup budget and how to tell clients apart, shared by the route.
#[derive(Clone)]
pub struct CitizenDesk {
    limit: Arc<CitizenLimit>,
    client_from_forwarded_for: bool,
    /// Origin of the monotonic milliseconds the budget counts in.
    started: Instant,
}

/// The open route (`POST /v1/citizen/records`); it needs the layer
/// [`desk`] gives, which holds its budget. Its body limit is its own: the
/// handler refuses more than [`CITIZEN_LOOKUP_BYTES_MAX`].
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(lookup))
}

/// The lookup budget of this node, from the configuration, as the layer
/// the route reads it from.
pub fn desk(api: &ApiConfig) -> Extension<CitizenDesk> {
    Extension(CitizenDesk {
        limit: Arc::new(CitizenLimit::from_config(api)),
        client_from_forwarded_for: api.citizen_client_from_forwarded_for,
        started: Instant::now(),
    })
}

/// The client a request counts against: the connection's peer, or behind
/// a trusted proxy the last address of `X-Forwarded-For`. A request with
/// neither (only in tests without a socket) counts against one shared
/// client.
fn client_of(desk: &CitizenDesk, peer: Option<SocketAddr>, headers: &HeaderMap) -> Client {
    let forwarded = desk
        .client_from_forwarded_for
        .then(|| headers.get_all("x-forwarded-for").iter().next_back())
        .flatten()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    let address = forwarded
        .or(peer.map(|peer| peer.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    Client::of(address)
}

#[utoipa::path(post, path = "/v1/citizen/records", tag = "citizen",
    request_body(content = CitizenLookup, description = "The citizen's receipt code."),
    responses(
        (status = 200, description = "The records the code's tag is on (an empty list for a code that tags nothing: the same shape, no hint).", body = CitizenAnswer),
        (status = 400, description = "`bad_request` or `bad_receipt_code`: not a receipt code.", body = ErrorResponse),
        (status = 413, description = "`body_too_large`: a lookup is at most 1024 bytes.", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: this address spent its lookup budget; see `Retry-After`.", body = ErrorResponse),
    ))]
async fn lookup(
    State(chain): State<ChainView>,
    State(metrics): State<Arc<Metrics>>,
    Extension(desk): Extension<CitizenDesk>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // The budget is spent before the body is looked at: malformed
    // requests cost as much as real ones.
    if let Err(limited) = spend_budget(
        &desk,
        &metrics,
        peer.map(|Extension(ConnectInfo(peer))| peer),
        &headers,
    ) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many lookups from this address; try again in {} s",
                limited.retry_after_seconds
            ),
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&limited.retry_after_seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    match answer(&chain, body).await {
        Ok(answer) => {
            metrics
                .citizen_lookups_total
                .fetch_add(1, Ordering::Relaxed);
            Json(answer).into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// A client over its lookup budget: it may look up again after this
/// many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_seconds: u64,
}

/// Takes one lookup from the budget of the client of a request (the
/// connection's `peer`, or the forwarded address behind a trusted proxy):
/// the route and the citizen page spend the same budget.
pub fn spend_budget(
    desk: &CitizenDesk,
    metrics: &Metrics,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<(), Limited> {
    let client = client_of(desk, peer, headers);
    let now_ms = u64::try_from(desk.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match desk.limit.check(client, now_ms) {
        Decision::Allowed => Ok(()),
        Decision::Limited {
            retry_after_seconds,
        } => {
            metrics
                .citizen_lookups_rate_limited_total
                .fetch_add(1, Ordering::Relaxed);
            Err(Limited {
                retry_after_seconds,
            })
        }
    }
}

/// The records a receipt code's tag is on, read off the async workers
/// (the view scans the archive's records).
pub async fn records_of(
    chain: &ChainView,
    code: &ReceiptCode,
) -> Result<Vec<CitizenRecord>, ApiError> {
    let tag = code.subject_tag();
    let store = chain.store().clone();
    // The view reads the store (sled may block): off the async workers.
    tokio::task::spawn_blocking(move || store.citizen_view(&tag))
        .await
        .map_err(|error| ApiError::internal(format!("the lookup stopped: {error}")))?
        .map_err(|error| {
            tracing::error!(%error, "store read failed");
            ApiError::internal(format!("the node's store could not be read: {error}"))
        })
}

async fn answer(
    chain: &ChainView,
    body: Result<Bytes, BytesRejection>,
) -> Result<CitizenAnswer, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "body_too_large",
            format!(
                "a citizen lookup is at most {CITIZEN_LOOKUP_BYTES_MAX} bytes: {}",
                rejection.body_text()
            ),
        )
    })?;
    if body.len() > CITIZEN_LOOKUP_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a citizen lookup is at most {CITIZEN_LOOKUP_BYTES_MAX} bytes"),
        ));
    }
    let lookup: CitizenLookup = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            "bad_request",
            format!("the body must be {{\"receipt_code\": \"...\"}}: {error}"),
        )
    })?;
    let code: ReceiptCode = lookup.receipt_code.parse().map_err(
        |error: custody_ledger::subject::ReceiptCodeError| {
            ApiError::bad_request("bad_receipt_code", error.to_string())
        },
    )?;
    let records = records_of(chain, &code).await?;
    Ok(CitizenAnswer { records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk(forwarded: bool) -> CitizenDesk {
        CitizenDesk {
            limit: Arc::new(CitizenLimit::new(1, 1, 10)),
            client_from_forwarded_for: forwarded,
            started: Instant::now(),
        }
    }

    fn forwarded_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.4"),
        );
        headers
    }

    #[test]
    fn forwarded_for_is_ignored_unless_configured() {
        let peer: SocketAddr = "192.0.2.1:5000".parse().expect("address");
        let client = client_of(&desk(false), Some(peer), &forwarded_headers());
        assert_eq!(client, Client::of(peer.ip()));
    }

    #[test]
    fn behind_a_proxy_the_client_is_the_last_forwarded_address() {
        let peer: SocketAddr = "192.0.2.1:5000".parse().expect("address");
        let client = client_of(&desk(true), Some(peer), &forwarded_headers());
        let expected: IpAddr = "198.51.100.4".parse().expect("address");
        assert_eq!(client, Client::of(expected));
    }
}
