//! The JSON bodies of the HTTP API, shared by the server and the client.

use custody_ledger::block::Block;
use custody_ledger::certificate::CommitCertificate;
use custody_ledger::merkle::InclusionProof;
use custody_ledger::tx::SignedTransaction;
use custody_ledger::types::{BlockHash, Height, TxId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Answer to `POST /v1/transactions`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    #[schema(value_type = String)]
    pub tx_id: TxId,
    /// `pending` (accepted into the mempool) or `committed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<Inclusion>,
}

/// Where a committed transaction sits, with the proof that it is there.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Inclusion {
    #[schema(value_type = u64)]
    pub height: Height,
    pub index: u32,
    #[schema(value_type = String)]
    pub block_hash: BlockHash,
    /// Proves the transaction id against the block header's `tx_root`.
    #[schema(value_type = Object)]
    pub proof: InclusionProof,
}

/// Answer to `GET /v1/transactions/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TransactionResponse {
    #[schema(value_type = String)]
    pub tx_id: TxId,
    /// `pending` or `committed`.
    pub status: String,
    #[schema(value_type = crate::api_schemas::LedgerRecord)]
    pub transaction: SignedTransaction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<Inclusion>,
}

/// Answer to `GET /v1/blocks/{height}` and `/v1/blocks/hash/{hash}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockResponse {
    #[schema(value_type = u64)]
    pub height: Height,
    #[schema(value_type = String)]
    pub hash: BlockHash,
    #[schema(value_type = crate::api_schemas::LedgerRecord)]
    pub block: Block,
    /// The certificate that made this block final.
    #[schema(value_type = Option<crate::api_schemas::LedgerRecord>)]
    pub certificate: Option<CommitCertificate>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct MempoolStatus {
    pub transactions: u64,
    pub bytes: u64,
}

/// Answer to `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    pub chain_id: String,
    pub genesis_hash: String,
    pub department: String,
    pub peer_id: String,
    /// Height of the last committed block (0 before the first).
    pub height: u64,
    pub last_block_hash: String,
    pub last_block_time_ms: u64,
    /// Consensus round at the height being decided.
    pub round: u64,
    /// Connected member nodes.
    pub peers: Vec<String>,
    pub mempool: MempoolStatus,
    /// Whether this node is catching up from its peers.
    pub syncing: bool,
    /// Every other member node: connected or not, and how long ago its last
    /// consensus message arrived. A connected peer whose age keeps growing
    /// is connected in name only.
    #[serde(default)]
    pub peer_details: Vec<PeerDetail>,
    /// This node's clock (milliseconds since the Unix epoch) when it
    /// answered: a signed API request's time must be within
    /// `api.request_skew_ms` of it.
    #[serde(default)]
    pub time_ms: u64,
}

/// One other member node in `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PeerDetail {
    pub peer_id: String,
    /// Its department, when this node knows it (from the genesis or the
    /// committed state).
    pub department: Option<String>,
    pub connected: bool,
    /// Milliseconds since a consensus message last arrived from it (as the
    /// gossip propagation source); `null` if none since this node started.
    pub last_consensus_message_age_ms: Option<u64>,
}

/// A page of a list, with the cursor for the next page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The error part of an answer: a stable code and a message.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// One transaction's result in a batch submission.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    /// Absent only when the transaction could not be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tx_id: Option<TxId>,
    /// `pending` or `refused`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl BatchItem {
    pub fn pending(tx_id: TxId) -> BatchItem {
        BatchItem {
            tx_id: Some(tx_id),
            status: "pending".to_string(),
            error: None,
        }
    }

    pub fn refused(tx_id: Option<TxId>, error: &crate::api_error::ApiError) -> BatchItem {
        BatchItem {
            tx_id,
            status: "refused".to_string(),
            error: Some(ErrorBody {
                code: error.code.to_string(),
                message: error.message.clone(),
            }),
        }
    }
}

/// Answer to `POST /v1/transactions/batch`, one result per transaction in order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    pub results: Vec<BatchItem>,
}

/// A proposal, its tally and when it takes effect.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProposalResponse {
    #[schema(value_type = crate::api_schemas::LedgerRecord)]
    pub proposal: custody_ledger::records::Proposal,
    /// `pending` or `executed`.
    pub status: String,
    /// The approvals counted among the departments at `as_of_height`.
    #[schema(value_type = Object)]
    pub tally: custody_ledger::state::Tally,
    /// The least approved power that executes the change.
    pub power_needed: u128,
    /// For an executed change: the first height whose validator set and
    /// block limits follow it (`executed_at + 1`; `docs/rules.md` §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub effective_from: Option<Height>,
    /// The committed height the answer was read at.
    #[schema(value_type = u64)]
    pub as_of_height: Height,
}

impl ProposalResponse {
    pub fn of(
        proposal: custody_ledger::records::Proposal,
        departments: &[custody_ledger::records::Department],
        height: Height,
    ) -> Self {
        let tally = custody_ledger::state::Tally::of(&proposal, departments);
        ProposalResponse {
            status: match proposal.executed_at {
                Some(_) => "executed",
                None => "pending",
            }
            .to_string(),
            power_needed: tally.power_needed(),
            effective_from: proposal.executed_at.map(Height::next),
            as_of_height: height,
            tally,
            proposal,
        }
    }
}
