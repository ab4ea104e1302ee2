//! What the HTTP API's handlers may use: the handles the composition root
//! hands to the API, each extractable on its own (`State<ChainView>`,
//! `State<Admission>`...), so that a handler's signature tells what it
//! touches. None of them can write the ledger store.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::admission::Admission;
use crate::blobs::Blobs;
use crate::config::{ApiConfig, ReadinessConfig};
use crate::handles::{ChainView, LocalClock, MempoolView, PeerView};
use crate::health::Health;
use crate::metrics::Metrics;

/// The parts of the node's configuration the API reads.
pub struct ApiSettings {
    /// This node's department (`/v1/status`).
    pub department: String,
    pub api: ApiConfig,
    pub readiness: ReadinessConfig,
    /// The body limit of a blob upload (`blobs.blob_bytes_max`).
    pub blob_bytes_max: u64,
    /// The department's time zone, for the HTML pages (`pages.time_zone`).
    pub time_zone: jiff::tz::TimeZone,
    /// The largest export `/auditor/verify` takes
    /// (`pages.verify_upload_max_bytes`).
    pub verify_upload_max_bytes: u64,
}

/// Every handle the API holds.
#[derive(Clone)]
pub struct ApiState {
    pub chain: ChainView,
    pub admission: Admission,
    /// Read for `/v1/status`, pending transactions and readiness.
    pub mempool: MempoolView,
    pub peers: PeerView,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub blobs: Arc<Blobs>,
    /// Blob fetch and the integrity checks (the ledger, the blobs, metrics).
    pub blob_room: crate::blob_fetch::BlobRoom,
    pub clock: LocalClock,
    pub settings: Arc<ApiSettings>,
    /// The read rule's caller: claims access records, attests reads.
    pub read_desk: crate::read_desk::ReadDesk,
    /// The door of every route that answers records: who may call.
    pub auth_gate: crate::api_auth::AuthGate,
    /// The live oversight alerts (`alert_desk`).
    pub alert_book: crate::alert_desk::AlertBook,
    /// Auditors' login links and sessions on the HTML pages.
    pub page_sessions: crate::page_sessions::PageSessions,
}

macro_rules! substate {
    ($($field:ident: $handle:ty),* $(,)?) => {
        $(impl FromRef<ApiState> for $handle {
            fn from_ref(state: &ApiState) -> $handle {
                state.$field.clone()
            }
        })*
    };
}

substate!(
    chain: ChainView,
    admission: Admission,
    mempool: MempoolView,
    peers: PeerView,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    blobs: Arc<Blobs>,
    blob_room: crate::blob_fetch::BlobRoom,
    clock: LocalClock,
    settings: Arc<ApiSettings>,
    read_desk: crate::read_desk::ReadDesk,
    auth_gate: crate::api_auth::AuthGate,
    alert_book: crate::alert_desk::AlertBook,
    page_sessions: crate::page_sessions::PageSessions,
);
