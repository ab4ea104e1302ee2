//! HTTP routes for governance proposals, with where each stands against
//! the threshold:
//!
//! - `GET /v1/proposals?status=pending|executed|all`: every proposal, newest
//!   first;
//! - `GET /v1/proposals/{id}`: one proposal;
//! - `GET /v1/parameters`: the chain parameters in force.
//!
//! The tally is the ledger's ([`Tally`]): the same count the state machine
//! makes when an approval arrives.

use axum::extract::State;
use axum::Json;
use custody_ledger::records::{Department, Parameters};
use custody_ledger::store::StoreError;
use custody_ledger::types::{Height, ProposalId};

pub use crate::api_types::ProposalResponse;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_error::ApiError;
use crate::api_schemas::{ApiPath, ApiQuery, ErrorResponse, LedgerRecord};
use crate::api_state::ApiState;
use crate::handles::ChainView;

/// Times the routes re-read when a commit lands between their reads.
const CONSISTENT_READ_TRIES_MAX: usize = 4;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `pending`, `executed` or `all` (the default).
    status: Option<String>,
}

/// Open to anyone: the chain parameters in force.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(parameters))
}

/// For signed callers only: proposals name members and departments.
pub fn signed_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
}

/// The chain parameters in force.
#[utoipa::path(get, path = "/v1/parameters", tag = "governance", responses(
    (status = 200, description = "The parameters.", body = LedgerRecord),
))]
async fn parameters(State(chain): State<ChainView>) -> Result<Json<Parameters>, ApiError> {
    Ok(Json(chain.store().parameters().map_err(store_error)?))
}

fn store_error(error: StoreError) -> ApiError {
    tracing::error!(%error, "store read failed");
    ApiError::internal(format!("the node's store could not be read: {error}"))
}

/// Reads `what` and the departments at one committed height.
fn at_one_height<T>(
    chain: &ChainView,
    what: impl Fn() -> Result<T, StoreError>,
) -> Result<(T, Vec<Department>, Height), ApiError> {
    for _ in 0..CONSISTENT_READ_TRIES_MAX {
        let before = chain.store().latest_height().map_err(store_error)?;
        let value = what().map_err(store_error)?;
        let departments = chain.store().departments().map_err(store_error)?;
        if chain.store().latest_height().map_err(store_error)? == before {
            return Ok((value, departments, before));
        }
    }
    Err(ApiError::unavailable(
        "busy",
        "the chain moved during every read; retry",
    ))
}

/// Every proposal, newest first, with its tally.
#[utoipa::path(get, path = "/v1/proposals", tag = "governance", params(ListQuery), responses(
    (status = 200, description = "The proposals.", body = Vec<ProposalResponse>),
    (status = 400, description = "`bad_query`: not a status.", body = ErrorResponse),
    (status = 503, description = "`busy`: the chain moved during every read; retry.", body = ErrorResponse),
))]
async fn list(
    State(chain): State<ChainView>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<ProposalResponse>>, ApiError> {
    let wanted = query.status.as_deref().unwrap_or("all");
    if !matches!(wanted, "pending" | "executed" | "all") {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("status `{wanted}` is not one of pending, executed, all"),
        ));
    }
    let (proposals, departments, height) = at_one_height(&chain, || chain.store().proposals())?;
    let mut answers: Vec<ProposalResponse> = proposals
        .into_iter()
        .map(|p| ProposalResponse::of(p, &departments, height))
        .filter(|p| wanted == "all" || p.status == wanted)
        .collect();
    answers.sort_by(|a, b| {
        b.proposal
            .proposed_at
            .cmp(&a.proposal.proposed_at)
            .then_with(|| a.proposal.id.0.cmp(&b.proposal.id.0))
    });
    Ok(Json(answers))
}

/// One proposal, with its tally.
#[utoipa::path(get, path = "/v1/proposals/{id}", tag = "governance",
    params(("id" = String, Path, description = "The proposal id: the id of the transaction that proposed it (64 lowercase hex digits).")),
    responses(
        (status = 200, description = "The proposal.", body = ProposalResponse),
        (status = 400, description = "`bad_identifier`.", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such proposal.", body = ErrorResponse),
        (status = 503, description = "`busy`: the chain moved during every read; retry.", body = ErrorResponse),
    ))]
async fn show(
    State(chain): State<ChainView>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProposalResponse>, ApiError> {
    let id = custody_ledger::types::parse_hex::<32>(&id).map_err(|error| {
        ApiError::bad_request(
            "bad_identifier",
            format!("`{id}` is not a proposal id (64 lowercase hex digits): {error}"),
        )
    })?;
    let id = ProposalId(id);
    let (proposal, departments, height) = at_one_height(&chain, || chain.store().proposal(&id))?;
    let proposal = proposal.ok_or_else(|| {
        ApiError::not_found(format!(
            "proposal {} does not exist (a proposal's id is the id of the transaction that proposed it)",
            hex::encode(id.0)
        ))
    })?;
    Ok(Json(ProposalResponse::of(proposal, &departments, height)))
}
