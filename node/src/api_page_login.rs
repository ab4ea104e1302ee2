//! The auditor's way onto the HTML pages: `POST /v1/auditor/page-login`,
//! signed like every record route (`custody audit login` does it). An
//! auditor named in `api.auditor_keys`, or a member holding the auditor
//! role, receives a one-time link (`/auditor/login/{token}`) that opens a
//! page session in a browser (`page_sessions`). Anyone else: 403
//! `not_an_auditor`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use custody_ledger::caller::Caller;
use custody_ledger::types::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_error::ApiError;
use crate::api_schemas::ErrorResponse;
use crate::api_state::ApiState;
use crate::handles::LocalClock;
use crate::page_sessions::PageSessions;

pub fn signed_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(page_login))
}

/// A one-time login link for the auditor pages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PageLogin {
    /// Path on this node to open in a browser, once.
    pub link: String,
    /// Milliseconds since the epoch after which the link opens nothing.
    pub expires_ms: u64,
}

/// The key of an auditor caller, as the pages name it.
fn auditor_of(caller: &Caller) -> Option<String> {
    match caller {
        Caller::Auditor { key } => Some(key.to_hex()),
        Caller::Member { key, roles, .. } if roles.contains(&Role::Auditor) => Some(key.to_hex()),
        _ => None,
    }
}

/// A one-time link that opens an auditor's session on the HTML pages.
#[utoipa::path(post, path = "/v1/auditor/page-login", tag = "auditor", responses(
    (status = 200, description = "The one-time link.", body = PageLogin),
    (status = 403, description = "`not_an_auditor`: only an auditor may open the auditor pages.", body = ErrorResponse),
))]
async fn page_login(
    State(sessions): State<PageSessions>,
    State(clock): State<LocalClock>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<PageLogin>, ApiError> {
    let auditor = auditor_of(&caller).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "not_an_auditor",
            "the auditor pages open only to a key in api.auditor_keys or a member with the auditor role",
        )
    })?;
    let (token, expires_ms) = sessions
        .issue_link(&auditor, caller.clone(), clock.now_ms())
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(Json(PageLogin {
        link: format!("/auditor/login/{token}"),
        expires_ms,
    }))
}
