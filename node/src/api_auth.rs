//! The API's door for reads: every route that answers document metadata,
//! history, members, blocks or blobs admits only a signed caller (a
//! member, a department's node, or an auditor in `api.auditor_keys`),
//! by the ledger's rule (`custody_ledger::caller::admit`). The admitted
//! [`Caller`] rides on the request for the handler.
//!
//! `401 not_authenticated` without the `x-custody-auth` header, `400
//! bad_api_signature` when it is not a signed request, `403` with the
//! rule's code when it does not hold.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custody_ledger::caller::{
    admit, Caller, CallerDirectory, CallerRefusal, Expected, SignedApiRequest, API_AUTH_HEADER,
};
use custody_ledger::records::Member;
use custody_ledger::types::{DepartmentId, PublicKey};

use crate::api_error::ApiError;
use crate::handles::{ChainView, LocalClock};
use crate::metrics::Metrics;

/// What the door checks a caller against.
#[derive(Clone)]
pub struct AuthGate {
    pub chain: ChainView,
    pub clock: LocalClock,
    pub auditor_keys: Arc<Vec<PublicKey>>,
    pub skew_ms: u64,
    pub metrics: Arc<Metrics>,
}

struct Directory<'a>(&'a ChainView);

impl CallerDirectory for Directory<'_> {
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, String> {
        self.0
            .store()
            .member(key)
            .map_err(|error| error.to_string())
    }

    fn department_of_node(&self, key: &PublicKey) -> Result<Option<DepartmentId>, String> {
        let departments = self
            .0
            .store()
            .departments()
            .map_err(|error| error.to_string())?;
        Ok(departments
            .into_iter()
            .find(|department| department.keys.node_key == *key)
            .map(|department| department.id))
    }
}

impl AuthGate {
    /// The caller of a request with these headers, method and path.
    pub fn caller(
        &self,
        headers: &axum::http::HeaderMap,
        method: &str,
        path_and_query: &str,
    ) -> Result<Caller, ApiError> {
        let Some(value) = headers.get(API_AUTH_HEADER) else {
            self.metrics.note_api_refused("not_authenticated");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "not_authenticated",
                format!(
                    "this route answers only a member, a department's node or an auditor: sign the request and send it in the `{API_AUTH_HEADER}` header (the custody CLI does so with --key)"
                ),
            ));
        };
        let signed = value
            .to_str()
            .map_err(|_| "not text".to_string())
            .and_then(SignedApiRequest::from_header)
            .map_err(|reason| {
                self.metrics.note_api_refused("bad_api_signature");
                ApiError::bad_request(
                    "bad_api_signature",
                    format!("the `{API_AUTH_HEADER}` header is not a signed API request: {reason}"),
                )
            })?;
        let expected = Expected {
            chain_id: self.chain.chain_id(),
            method,
            path_and_query,
            now_ms: self.clock.now_ms(),
            skew_ms: self.skew_ms,
        };
        admit(
            &signed,
            &expected,
            &self.auditor_keys,
            &Directory(&self.chain),
        )
        .map_err(|refusal| {
            self.metrics.note_api_refused(refusal.code());
            match refusal {
                CallerRefusal::Lookup(message) => {
                    ApiError::internal(format!("the node's store could not be read: {message}"))
                }
                refusal => {
                    ApiError::new(StatusCode::FORBIDDEN, refusal.code(), refusal.to_string())
                }
            }
        })
    }
}

/// Middleware: admits the request's caller or answers the refusal; the
/// admitted [`Caller`] is put in the request's extensions.
pub async fn require_caller(
    State(gate): State<AuthGate>,
    mut request: Request,
    next: Next,
) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|value| value.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    let method = request.method().as_str().to_string();
    match gate.caller(request.headers(), &method, &path_and_query) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}
