//! Custody changing hands: an offer to another department, which it
//! accepts (after fetching, decrypting and checking the document) or
//! rejects, or which the sender cancels.

use custody_ledger::records::{Document, DocumentStatus, Offer};
use custody_ledger::sealed::fields;
use custody_ledger::tx::TxBody;
use custody_ledger::types::{DepartmentId, DocumentId, Hash32, Timestamp};
use serde::Serialize;

use super::files::download_and_decrypt;
use super::{
    checked_department_key, custodian_data_key, me, submit, unwrap_key, wrap_to, Committed,
    Context, DocError, NodeApi,
};
use crate::doc::sealed;

/// The purpose an offer's recipient records before downloading the
/// document to check it (`custody doc accept`).
pub const INSPECTION_PURPOSE: &str = "inspection before accepting custody";

/// What `offer` is asked to record.
#[derive(Clone)]
pub struct OfferRequest {
    pub document: DocumentId,
    /// The receiving department.
    pub to: DepartmentId,
    /// When the offer lapses (default: the chain's offer expiry).
    pub expires_at: Option<Timestamp>,
}

/// An offer recorded.
#[derive(Clone, Debug, Serialize)]
pub struct OfferOutcome {
    pub document: DocumentId,
    #[serde(skip)]
    pub to: DepartmentId,
    #[serde(flatten)]
    pub committed: Committed,
}

/// Offers a document the signer's department holds to `request.to`: the
/// data key is unwrapped with the clerk's department key and wrapped to the
/// receiving department's key as the chain records it.
pub async fn offer(
    api: &NodeApi,
    context: &Context,
    request: OfferRequest,
) -> Result<OfferOutcome, DocError> {
    let member = me(api, context).await?;
    let doc = api.document(&request.document).await?;
    let data_key = custodian_data_key(api, context, &doc, &member).await?;
    let wrapped_key = wrap_to(api, &doc.id, &data_key, &request.to).await?;
    let body = TxBody::OfferTransfer {
        document: doc.id.clone(),
        previous_event: doc.latest_event,
        to: request.to.clone(),
        wrapped_key,
        expires_at: request.expires_at,
    };
    let committed = submit(api, context, body).await?;
    Ok(OfferOutcome {
        document: doc.id,
        to: request.to,
        committed,
    })
}

/// A transfer accepted.
#[derive(Clone, Debug, Serialize)]
pub struct AcceptOutcome {
    pub document: DocumentId,
    /// The department that held it.
    #[serde(skip)]
    pub from: DepartmentId,
    /// The peer the node fetched the ciphertext from, when it just did.
    pub fetched_from: Option<String>,
    /// The plaintext's SHA-256, checked against the chain's fingerprint.
    pub plaintext_sha256: Hash32,
    /// The inspection read recorded before the download.
    #[serde(skip)]
    pub inspected: Committed,
    /// The acceptance.
    #[serde(flatten)]
    pub committed: Committed,
}

/// The pending offer of `doc`, or why there is none.
fn pending_offer(doc: &Document) -> Result<&Offer, DocError> {
    match &doc.status {
        DocumentStatus::InTransfer(offer) => Ok(offer),
        other => Err(DocError::Document {
            document: doc.id.to_string(),
            message: format!("it has no pending offer (status `{}`)", other.name()),
        }),
    }
}

/// Accepts a document offered to the signer's department: the node fetches
/// the ciphertext from a holder, the inspection read is recorded, the
/// document is downloaded, decrypted and both fixities checked (nothing is
/// written), and only then is custody accepted.
pub async fn accept(
    api: &NodeApi,
    context: &Context,
    document: &DocumentId,
) -> Result<AcceptOutcome, DocError> {
    let key = &context.member_key;
    let member = me(api, context).await?;
    let doc = api.document(document).await?;
    let offer = pending_offer(&doc)?;
    if offer.to != member.department {
        return Err(DocError::Document {
            document: doc.id.to_string(),
            message: format!(
                "it is offered to `{}`, not to your department `{}`",
                offer.to, member.department
            ),
        });
    }
    let secret = checked_department_key(api, context, &member.department).await?;
    let data_key = unwrap_key(&doc.id, &offer.wrapped_key, secret)?;
    let from = doc.custodian.clone();
    // The node fetches the blob from the sender's node (or another holder)
    // and checks its SHA-256; then this process checks it again, decrypts
    // it and checks the plaintext fixity before anything is signed.
    let fetched = api.fetch(&doc.id).await?;
    let inspection_purpose =
        sealed::seal_required(&data_key, &doc.id, fields::PURPOSE, INSPECTION_PURPOSE)?;
    // No ciphertext leaves a node without a committed access record: the
    // inspection is recorded first, as a record-access of the offer's
    // recipient while the offer is live.
    let (doc, inspected) = api
        .submit_on(key, doc.clone(), context.commit_wait, |doc| {
            TxBody::RecordAccessSealed {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                purpose: inspection_purpose.clone(),
                ciphertext_sha256: doc.ciphertext.sha256,
            }
        })
        .await?;
    let checked = download_and_decrypt(
        api,
        context,
        &doc,
        inspected.tx_id,
        data_key,
        std::io::sink(),
    )
    .await;
    let (summary, _) = checked.map_err(|error| DocError::Document {
        document: doc.id.to_string(),
        message: format!(
            "not accepted: {error}; reject it with `custody doc reject {} --reason ...`",
            doc.id
        ),
    })?;
    // The inspection record (and the node's attestation of the download)
    // moved the document's latest event: build on the document as it is.
    let (doc, answer) = api
        .submit_on_document(key, &doc.id, context.commit_wait, |doc| {
            TxBody::AcceptTransfer {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                ciphertext_sha256: Hash32(summary.ciphertext.sha256),
            }
        })
        .await?;
    Ok(AcceptOutcome {
        document: doc.id,
        from,
        fetched_from: fetched.fetched_from,
        plaintext_sha256: Hash32(summary.plaintext.sha256),
        inspected: Committed::of(&inspected),
        committed: Committed::of(&answer),
    })
}

/// An offer refused.
#[derive(Clone, Debug, Serialize)]
pub struct RejectOutcome {
    pub document: DocumentId,
    #[serde(flatten)]
    pub committed: Committed,
}

/// Refuses a document offered to the signer's department, with `reason`
/// sealed under the key the offer wraps to the receiving department (which
/// only it and the sender hold).
pub async fn reject(
    api: &NodeApi,
    context: &Context,
    document: &DocumentId,
    reason: &str,
) -> Result<RejectOutcome, DocError> {
    let doc = api.document(document).await?;
    let offer = pending_offer(&doc)?;
    let secret = checked_department_key(api, context, &offer.to).await?;
    let data_key = unwrap_key(&doc.id, &offer.wrapped_key, secret)?;
    let body = TxBody::RejectTransferSealed {
        document: doc.id.clone(),
        previous_event: doc.latest_event,
        reason: sealed::seal(&data_key, &doc.id, fields::REASON, reason)?,
    };
    let committed = submit(api, context, body).await?;
    Ok(RejectOutcome {
        document: doc.id,
        committed,
    })
}

/// An offer withdrawn.
#[derive(Clone, Debug, Serialize)]
pub struct CancelOutcome {
    pub document: DocumentId,
    #[serde(flatten)]
    pub committed: Committed,
}

/// Withdraws the signer's department's pending offer of `document`.
pub async fn cancel(
    api: &NodeApi,
    context: &Context,
    document: &DocumentId,
) -> Result<CancelOutcome, DocError> {
    let doc = api.document(document).await?;
    let body = TxBody::CancelTransfer {
        document: doc.id.clone(),
        previous_event: doc.latest_event,
    };
    let committed = submit(api, context, body).await?;
    Ok(CancelOutcome {
        document: doc.id,
        committed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_ledger::types::TxId;

    #[test]
    fn an_offer_prints_as_its_document_transaction_and_height() {
        let outcome = OfferOutcome {
            document: DocumentId::new("civil-affairs-1".to_string()).expect("document id"),
            to: DepartmentId::new("health".to_string()).expect("department id"),
            committed: Committed {
                tx_id: TxId([3; 32]),
                height: 7,
            },
        };
        assert_eq!(
            serde_json::to_value(&outcome).expect("json"),
            serde_json::json!({
                "document": "civil-affairs-1",
                "tx_id": hex::encode([3u8; 32]),
                "height": 7,
            })
        );
    }
}
