//! The API's OpenAPI description (`GET /v1/openapi.json`): the schemas of
//! the answers that are not records of the ledger, the extractors that make
//! axum's own refusals answer in the API's JSON error shape, and the
//! answers every operation of a group shares (the caller check's, a store
//! failure's), added to each operation by its group so that none can forget
//! them.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;

use serde::de::DeserializeOwned;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
    Response as Answer,
};
use utoipa::{PartialSchema, ToSchema};

use crate::api_error::ApiError;

/// The header of a signed upload (`SignedBlobUpload::to_header`).
pub const UPLOAD_HEADER: &str = "x-custody-upload";

/// The security scheme of the signed routes: a request signed by a member,
/// a department's node or an auditor, in the `x-custody-auth` header.
pub const CALLER_AUTH_SCHEME: &str = "caller_signature";
/// The security scheme of a blob upload: a clerk's signature over the
/// blob's SHA-256 and size, in the `x-custody-upload` header.
pub const UPLOAD_AUTH_SCHEME: &str = "upload_signature";

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes `ApiError`'s body; never built.
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

/// A stable, machine-readable code (clients match on it) and a message for
/// the person reading it.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes `ApiError`'s body; never built.
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// A record of the ledger in its JSON form (`docs/format.md`): a block, a
/// transaction, a document, a member, a department, a proposal...
pub struct LedgerRecord;

impl PartialSchema for LedgerRecord {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .description(Some(
                "A record of the ledger in its JSON form, as docs/format.md describes it.",
            ))
            .into()
    }
}

impl ToSchema for LedgerRecord {}

/// Answer of `GET /healthz`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the handler's JSON; never built.
pub struct HealthzResponse {
    /// Always `ok`.
    pub status: String,
    /// Height of the last committed block.
    pub height: u64,
}

/// Answer of `GET /readyz`, ready or not.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes `health::Readiness`; never built.
pub struct ReadinessResponse {
    pub ready: bool,
    /// Why the node is not ready; empty when it is.
    pub reasons: Vec<String>,
}

/// `Query<T>` whose refusal is the API's JSON error (`400 bad_query`)
/// instead of axum's plain text.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(
        "bad_query",
        format!(
            "the query string could not be read: {}",
            rejection.body_text()
        ),
    )
}

/// `Path<T>` whose refusal is the API's JSON error (`400 bad_identifier`)
/// instead of axum's plain text.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_error(rejection)),
        }
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    if rejection.status().is_client_error() {
        ApiError::bad_request(
            "bad_identifier",
            format!("the path could not be read: {}", rejection.body_text()),
        )
    } else {
        // A route whose parameters do not fit its handler: the node's bug.
        ApiError::internal(rejection.body_text())
    }
}

/// Where each route's answers are written: the groups of `api::route_groups`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// Anyone may call.
    Open,
    /// Behind the caller check (`api_auth::require_caller`).
    Signed,
}

/// The description's frame: its title, version and security schemes.
pub fn frame() -> OpenApi {
    let components = ComponentsBuilder::new()
        .schema_from::<ErrorResponse>()
        .schema_from::<ErrorDetail>()
        .schema_from::<LedgerRecord>()
        .security_scheme(
            CALLER_AUTH_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                custody_ledger::caller::API_AUTH_HEADER,
                "A signed API request (`custody_ledger::caller::SignedApiRequest`) of a member, a department's node or an auditor, over the chain id, the method, the path and query, and the time; the custody CLI signs with --key.",
            ))),
        )
        .security_scheme(
            UPLOAD_AUTH_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                UPLOAD_HEADER,
                "A clerk's signature over the chain id, the blob's SHA-256 and size, and the time (`custody doc register` sends it).",
            ))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Custody node HTTP API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The HTTP API of a Custody node. Every error answers `{\"error\": {\"code\", \"message\"}}` with a stable code; docs/operations.md lists them.",
                ))
                .build(),
        )
        .components(Some(components))
        .build()
}

/// Adds to every operation of `openapi` the answers its group shares: a
/// store failure (500), a request over its deadline (408), an unreadable
/// parameter (400) or a path that names nothing (404) where it takes
/// parameters, an oversize body (413) where it takes one, and for the
/// signed group the caller check's answers (400, 401, 403) and its
/// security requirement.
pub fn add_shared_answers(openapi: &mut OpenApi, door: Door) {
    for item in openapi.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            add_operation_answers(operation, door);
        }
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn add_operation_answers(operation: &mut Operation, door: Door) {
    let takes_parameters = operation
        .parameters
        .as_ref()
        .is_some_and(|parameters| !parameters.is_empty());
    let takes_path_parameters = operation.parameters.as_ref().is_some_and(|parameters| {
        parameters.iter().any(|parameter| {
            matches!(
                parameter.parameter_in,
                utoipa::openapi::path::ParameterIn::Path
            )
        })
    });
    let takes_body = operation.request_body.is_some();
    let responses = &mut operation.responses.responses;
    // A status the route already describes keeps its answer, with the
    // shared reason added to its description.
    let mut add = |status: &str, answer: RefOr<Answer>| match responses.get_mut(status) {
        Some(RefOr::T(known)) => {
            if let RefOr::T(shared) = answer {
                known.description = format!("{} Or: {}", known.description, shared.description);
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            responses.insert(status.to_string(), answer);
        }
    };
    add(
        "500",
        error_answer("`internal`: the node's store could not be read, or the node failed."),
    );
    add(
        "408",
        RefOr::T(Answer::new(
            "The request took longer than `api.request_timeout_ms` (blob transfers: `api.transfer_timeout_ms`); the body is empty.",
        )),
    );
    if takes_parameters || takes_body {
        add(
            "400",
            error_answer("`bad_query`, `bad_identifier` or another code: a parameter or the body could not be read."),
        );
    }
    if takes_path_parameters {
        add(
            "404",
            error_answer("`not_found`: nothing answers to this path."),
        );
    }
    if takes_body {
        add(
            "413",
            error_answer("`body_too_large`: the body is over the route's limit."),
        );
    }
    if door == Door::Signed {
        add(
            "400",
            error_answer(
                "`bad_api_signature`: the `x-custody-auth` header is not a signed API request.",
            ),
        );
        add(
            "401",
            error_answer("`not_authenticated`: the request carries no `x-custody-auth` header."),
        );
        add(
            "403",
            error_answer("The caller check refused the signed request (its code says why: unknown caller, wrong chain, stale time, bad signature...)."),
        );
        operation
            .security
            .get_or_insert_with(Vec::new)
            .push(SecurityRequirement::new(
                CALLER_AUTH_SCHEME,
                Vec::<String>::new(),
            ));
    }
}

/// A page of ledger records, with the cursor of the next page.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes `api_types::Page` of records; never built.
pub struct RecordPage {
    #[schema(value_type = Vec<LedgerRecord>)]
    pub items: Vec<()>,
    /// Pass as `?cursor=` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// An error answer in the API's JSON error shape.
pub fn error_answer(description: &str) -> RefOr<Answer> {
    let mut answer = Answer::new(description);
    answer.content.insert(
        "application/json".to_string(),
        Content::new(Some(Ref::from_schema_name("ErrorResponse"))),
    );
    RefOr::T(answer)
}
