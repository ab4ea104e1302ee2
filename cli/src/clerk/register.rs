//! Registering a document: encrypted here, uploaded as ciphertext, and
//! recorded on chain with its title sealed.

use std::path::PathBuf;

use crate::envelope::{self, DepartmentPublicKey};
use custody_ledger::sealed::fields;
use custody_ledger::subject::ReceiptCode;
use custody_ledger::tx::TxBody;
use custody_ledger::types::{
    Classification, DocumentId, Format, Hash32, Retention, Timestamp, WrappedKey,
};
use serde::{Serialize, Serializer};

use super::files::{encrypt_and_upload, ledger_fixity};
use super::{me, submit, Committed, Context, DocError, NodeApi};
use crate::doc::{sealed, util};

/// What `register` is asked to record.
#[derive(Clone)]
pub struct RegisterRequest {
    /// The plaintext to register.
    pub file: PathBuf,
    pub title: String,
    pub record_type: String,
    pub classification: Classification,
    pub retention: Retention,
    pub format: Format,
    /// The document's id (default: `<department>-<random>`).
    pub id: Option<DocumentId>,
    /// The record's own creation time; retention runs from it.
    pub created: Timestamp,
    /// The receipt code of the citizen the record is about: only the tag
    /// derived from it goes on chain.
    pub subject: Option<ReceiptCode>,
    /// Directory for the temporary envelope (default: the system's).
    pub work_dir: Option<PathBuf>,
}

/// A document registered.
#[derive(Clone, Debug, Serialize)]
pub struct RegisterOutcome {
    pub document: DocumentId,
    /// The plaintext registered.
    #[serde(skip)]
    pub file: PathBuf,
    pub plaintext_sha256: Hash32,
    pub plaintext_bytes: u64,
    pub ciphertext_sha256: Hash32,
    pub ciphertext_bytes: u64,
    /// The citizen's receipt code, to hand to them (it is kept nowhere).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "receipt_code_text"
    )]
    pub receipt_code: Option<ReceiptCode>,
    #[serde(flatten)]
    pub committed: Committed,
}

fn receipt_code_text<S: Serializer>(
    code: &Option<ReceiptCode>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match code {
        Some(code) => serializer.serialize_str(&code.to_string()),
        None => serializer.serialize_none(),
    }
}

/// Encrypts `request.file` under a new data key, uploads the ciphertext to
/// the node and registers it (`register-sealed`: the title sealed under the
/// data key, the data key wrapped to the signer's department).
pub async fn register(
    api: &NodeApi,
    context: &Context,
    request: RegisterRequest,
) -> Result<RegisterOutcome, DocError> {
    let member = me(api, context).await?;
    let id = match request.id {
        Some(id) => id,
        None => DocumentId::new(util::new_document_id(member.department.as_str()))
            .map_err(|error| DocError::Usage(error.to_string()))?,
    };
    // A missing file is refused before anything is asked of the node.
    std::fs::metadata(&request.file).map_err(|source| DocError::Io {
        action: "read",
        path: request.file.clone(),
        source,
    })?;
    let own_key = api
        .department(&member.department)
        .await?
        .keys
        .encryption_key;

    let work_dir = request.work_dir.unwrap_or_else(std::env::temp_dir);
    let (summary, data_key) =
        encrypt_and_upload(api, context, &request.file, &work_dir, &id).await?;

    let wrapped = envelope::wrap(&data_key, &DepartmentPublicKey(own_key.0)).map_err(|error| {
        DocError::Document {
            document: id.to_string(),
            message: format!("cannot wrap the data key: {error}"),
        }
    })?;
    let plaintext = ledger_fixity(summary.plaintext);
    let ciphertext = ledger_fixity(summary.ciphertext);
    let body = TxBody::RegisterSealed {
        document: id.clone(),
        title: sealed::seal_required(&data_key, &id, fields::TITLE, &request.title)?,
        record_type: request.record_type,
        department: member.department.clone(),
        created: request.created,
        classification: request.classification,
        retention: request.retention,
        format: request.format,
        plaintext,
        ciphertext,
        subject_tag: request.subject.as_ref().map(ReceiptCode::subject_tag),
        wrapped_key: WrappedKey(wrapped.to_bytes().to_vec()),
    };
    let committed = submit(api, context, body).await?;
    Ok(RegisterOutcome {
        document: id,
        file: request.file,
        plaintext_sha256: plaintext.sha256,
        plaintext_bytes: plaintext.size_bytes,
        ciphertext_sha256: ciphertext.sha256,
        ciphertext_bytes: ciphertext.size_bytes,
        receipt_code: request.subject,
        committed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_ledger::subject::SubjectKey;
    use custody_ledger::types::TxId;

    fn outcome(receipt_code: Option<ReceiptCode>) -> RegisterOutcome {
        RegisterOutcome {
            document: DocumentId::new("civil-affairs-1".to_string()).expect("document id"),
            file: PathBuf::from("extract.pdf"),
            plaintext_sha256: Hash32([1; 32]),
            plaintext_bytes: 10,
            ciphertext_sha256: Hash32([2; 32]),
            ciphertext_bytes: 60,
            receipt_code,
            committed: Committed {
                tx_id: TxId([3; 32]),
                height: 7,
            },
        }
    }

    #[test]
    fn a_registration_prints_its_fingerprints_and_transaction_as_json_fields() {
        let value = serde_json::to_value(outcome(None)).expect("json");
        let mut names: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "ciphertext_bytes",
                "ciphertext_sha256",
                "document",
                "height",
                "plaintext_bytes",
                "plaintext_sha256",
                "tx_id"
            ]
        );
        assert_eq!(value["plaintext_sha256"], hex::encode([1u8; 32]));
        assert_eq!(value["height"], 7);
    }

    #[test]
    fn a_receipt_code_is_printed_as_the_citizen_reads_it() {
        let code = ReceiptCode::derive(&SubjectKey::from_bytes([9; 32]), "Zhang Wei 110101")
            .expect("receipt code");
        let value = serde_json::to_value(outcome(Some(code))).expect("json");
        assert_eq!(value["receipt_code"], code.to_string());
    }
}
