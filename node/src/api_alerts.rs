//! HTTP routes of live oversight, for signed callers only:
//!
//! - `GET /v1/alerts?since=SEQ&since_height=H&limit=N`: the alerts the
//!   node's detector holds (`alert_desk`), in sequence order. A member or a
//!   department's node sees the alerts concerning its department; an
//!   auditor sees all. Poll with `since` = the `last_seq` of the previous
//!   answer.
//! - `GET /v1/departments/{id}/activity?from_height=H&limit=N`: the
//!   committed actions in the department's name or on its documents, block
//!   by block from `from_height`, for `custody watch`. Only the
//!   department's own members and node, and auditors, may ask.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use custody_ledger::caller::Caller;
use custody_ledger::types::{DepartmentId, DocumentId, Height, PublicKey, Timestamp, TxId};
use custody_oversight::event::{action_of, actor_of};
use custody_oversight::Action;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::alert_desk::{AlertBook, AlertQuery, AlertsPage, BookUnavailable};
use crate::api_error::ApiError;
use crate::api_schemas::{ApiPath, ApiQuery, ErrorResponse};
use crate::api_state::{ApiSettings, ApiState};
use crate::handles::ChainView;

/// Blocks one activity page reads at most, whatever it finds in them.
pub const ACTIVITY_BLOCKS_PER_PAGE_MAX: u64 = 256;

pub fn signed_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(alerts))
        .routes(routes!(activity))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AlertsParams {
    /// Alerts after this sequence number (the `last_seq` of the previous
    /// answer).
    since: Option<u64>,
    /// Alerts raised at this height or later.
    since_height: Option<u64>,
    /// Alerts on the page, at most `api.page_size_max`.
    limit: Option<u32>,
}

/// The alerts the node's detector holds, in sequence order: a member or a
/// department's node sees its department's, an auditor all.
#[utoipa::path(get, path = "/v1/alerts", tag = "oversight", params(AlertsParams), responses(
    (status = 200, description = "A page of alerts.", body = Object),
    (status = 503, description = "`alerts_starting` or `alerts_stopped`.", body = ErrorResponse),
))]
async fn alerts(
    State(book): State<AlertBook>,
    State(settings): State<Arc<ApiSettings>>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<AlertsParams>,
) -> Result<Json<AlertsPage>, ApiError> {
    let page_max = settings.api.page_size_max;
    let query = AlertQuery {
        since_seq: params.since.unwrap_or(0),
        since_height: params.since_height,
        limit: params.limit.unwrap_or(page_max).clamp(1, page_max) as usize,
    };
    match book.page(&caller, query) {
        Ok(page) => Ok(Json(page)),
        Err(BookUnavailable::Starting) => Err(ApiError::unavailable(
            "alerts_starting",
            "the node is still deriving its alerts from the stored chain; ask again shortly",
        )),
        Err(BookUnavailable::Stopped(reason)) => Err(ApiError::unavailable(
            "alerts_stopped",
            format!("the node's alert desk stopped ({reason}); restart the node"),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ActivityParams {
    /// The first height to read (1 by default).
    from_height: Option<u64>,
    /// Actions on the page, at most `api.page_size_max`.
    limit: Option<u32>,
}

/// One committed action of a department's activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActivityItem {
    #[schema(value_type = u64)]
    pub height: Height,
    /// Position of the transaction in its block.
    pub index: u32,
    #[schema(value_type = String)]
    pub tx: TxId,
    /// Block time.
    #[schema(value_type = u64)]
    pub time: Timestamp,
    /// The transaction's kind (`record-access`, `offer-transfer`, …).
    pub kind: String,
    /// The member who acted (for a refused read, the member who asked).
    #[schema(value_type = String)]
    pub actor: PublicKey,
    /// Their department, when the actor is a member or a node.
    #[schema(value_type = Option<String>)]
    pub actor_department: Option<DepartmentId>,
    #[schema(value_type = Option<String>)]
    pub document: Option<DocumentId>,
    /// The department a grant or an offer is for, a member is enrolled
    /// in, or a document is registered by.
    #[schema(value_type = Option<String>)]
    pub to: Option<DepartmentId>,
}

/// A page of a department's activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActivityPage {
    #[schema(value_type = String)]
    pub department: DepartmentId,
    /// The committed head when the page was read.
    pub head: u64,
    /// Ask from this height next.
    pub next_height: u64,
    pub items: Vec<ActivityItem>,
}

/// The committed actions in a department's name or on its documents,
/// block by block from `from_height` (`custody watch`).
#[utoipa::path(get, path = "/v1/departments/{id}/activity", tag = "oversight",
    params(("id" = String, Path, description = "The department id."), ActivityParams),
    responses(
        (status = 200, description = "A page of the department's activity.", body = ActivityPage),
        (status = 400, description = "`bad_identifier` or `bad_query`.", body = ErrorResponse),
        (status = 403, description = "`not_your_department`: only its members and node, and auditors, may follow it.", body = ErrorResponse),
    ))]
async fn activity(
    State(chain): State<ChainView>,
    State(settings): State<Arc<ApiSettings>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ActivityParams>,
) -> Result<Json<ActivityPage>, ApiError> {
    let department = DepartmentId::new(id)
        .map_err(|error| ApiError::bad_request("bad_identifier", error.to_string()))?;
    if caller.department().is_some_and(|own| *own != department) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_your_department",
            format!(
                "only members and the node of `{department}`, and auditors, may follow its activity"
            ),
        ));
    }
    let page_max = settings.api.page_size_max;
    let limit = params.limit.unwrap_or(page_max).clamp(1, page_max) as usize;
    let from = params.from_height.unwrap_or(1).max(1);
    let page = tokio::task::spawn_blocking(move || activity_page(&chain, department, from, limit))
        .await
        .map_err(|error| ApiError::internal(error.to_string()))??;
    Ok(Json(page))
}

fn store_error(error: custody_ledger::store::StoreError) -> ApiError {
    tracing::error!(%error, "store read failed");
    ApiError::internal(format!("the node's store could not be read: {error}"))
}

/// Reads whole blocks from `from` until `limit` items are found, the head
/// is reached, or [`ACTIVITY_BLOCKS_PER_PAGE_MAX`] blocks were read.
fn activity_page(
    chain: &ChainView,
    department: DepartmentId,
    from: u64,
    limit: usize,
) -> Result<ActivityPage, ApiError> {
    let store = chain.store();
    let head = store.latest_height().map_err(store_error)?.0;
    let mut members: BTreeMap<PublicKey, Option<DepartmentId>> = BTreeMap::new();
    let mut documents: BTreeMap<DocumentId, bool> = BTreeMap::new();
    let nodes: BTreeMap<PublicKey, DepartmentId> = store
        .departments()
        .map_err(store_error)?
        .into_iter()
        .map(|d| (d.keys.node_key, d.id))
        .collect();
    let mut items = Vec::new();
    let mut height = from;
    while height <= head && height < from + ACTIVITY_BLOCKS_PER_PAGE_MAX && items.len() < limit {
        let Some(block) = store.block(Height(height)).map_err(store_error)? else {
            break;
        };
        for (index, (tx, id)) in block.transactions.iter().zip(block.tx_ids()).enumerate() {
            let actor = actor_of(tx);
            let actor_department = match members.get(&actor) {
                Some(known) => known.clone(),
                None => {
                    let found = match store.member(&actor).map_err(store_error)? {
                        Some(member) => Some(member.department),
                        None => nodes.get(&actor).cloned(),
                    };
                    members.insert(actor, found.clone());
                    found
                }
            };
            let action = action_of(&tx.payload.body);
            let document = action.document().cloned();
            let to = match &action {
                Action::Grant { to, .. } | Action::Offer { to, .. } => Some(to.clone()),
                Action::Enroll { department, .. } | Action::Register { department, .. } => {
                    Some(department.clone())
                }
                _ => None,
            };
            let on_ours = match &document {
                Some(document) => match documents.get(document) {
                    Some(ours) => *ours,
                    None => {
                        let ours =
                            store
                                .document(document)
                                .map_err(store_error)?
                                .is_some_and(|d| {
                                    d.creating_department == department || d.custodian == department
                                });
                        documents.insert(document.clone(), ours);
                        ours
                    }
                },
                None => false,
            };
            let ours = on_ours
                || actor_department.as_ref() == Some(&department)
                || to.as_ref() == Some(&department);
            if ours {
                items.push(ActivityItem {
                    height: Height(height),
                    index: index as u32,
                    tx: id,
                    time: block.header.time,
                    kind: tx.payload.body.kind().to_string(),
                    actor,
                    actor_department,
                    document,
                    to,
                });
            }
        }
        height += 1;
    }
    Ok(ActivityPage {
        department,
        head,
        next_height: height,
        items,
    })
}
