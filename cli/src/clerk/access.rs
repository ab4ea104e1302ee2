//! Reading: grants of read access to other departments, their revocation,
//! and opening a document (the read recorded on chain first).

use std::io::BufWriter;
use std::path::PathBuf;

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
use crate::doc::util::TempFile;

/// What `grant` is asked to record.
#[derive(Clone)]
pub struct GrantRequest {
    pub document: DocumentId,
    /// The department that may read.
    pub to: DepartmentId,
    /// When the grant ends.
    pub expires_at: Timestamp,
}

/// A grant recorded.
#[derive(Clone, Debug, Serialize)]
pub struct GrantOutcome {
    pub document: DocumentId,
    #[serde(skip)]
    pub to: DepartmentId,
    #[serde(skip)]
    pub expires_at: Timestamp,
    #[serde(flatten)]
    pub committed: Committed,
}

/// Lets `request.to` read a document the signer's department holds, until
/// `request.expires_at`: the data key wrapped to its key.
pub async fn grant(
    api: &NodeApi,
    context: &Context,
    request: GrantRequest,
) -> Result<GrantOutcome, DocError> {
    let member = me(api, context).await?;
    let doc = api.document(&request.document).await?;
    let data_key = custodian_data_key(api, context, &doc, &member).await?;
    let wrapped_key = wrap_to(api, &doc.id, &data_key, &request.to).await?;
    let body = TxBody::GrantAccess {
        document: doc.id.clone(),
        previous_event: doc.latest_event,
        to: request.to.clone(),
        wrapped_key,
        expires_at: request.expires_at,
    };
    let committed = submit(api, context, body).await?;
    Ok(GrantOutcome {
        document: doc.id,
        to: request.to,
        expires_at: request.expires_at,
        committed,
    })
}

/// A grant withdrawn.
#[derive(Clone, Debug, Serialize)]
pub struct RevokeOutcome {
    pub document: DocumentId,
    #[serde(skip)]
    pub from: DepartmentId,
    #[serde(flatten)]
    pub committed: Committed,
}

/// Ends `from`'s read grant on `document`.
pub async fn revoke(
    api: &NodeApi,
    context: &Context,
    document: &DocumentId,
    from: &DepartmentId,
) -> Result<RevokeOutcome, DocError> {
    let doc = api.document(document).await?;
    let body = TxBody::RevokeAccess {
        document: doc.id.clone(),
        previous_event: doc.latest_event,
        from: from.clone(),
    };
    let committed = submit(api, context, body).await?;
    Ok(RevokeOutcome {
        document: doc.id,
        from: from.clone(),
        committed,
    })
}

/// A document read and written out.
#[derive(Clone, Debug, Serialize)]
pub struct OpenOutcome {
    pub document: DocumentId,
    /// Where the plaintext was written.
    pub output: PathBuf,
    pub plaintext_sha256: Hash32,
    pub plaintext_bytes: u64,
    /// The access record the read was made under.
    #[serde(flatten)]
    pub committed: Committed,
}

/// Records a read of `document` for `purpose` (sealed), then downloads,
/// decrypts and checks it, and writes it to `output` only if both
/// fixities match. The signer's department must be the custodian or hold
/// a grant.
pub async fn open(
    api: &NodeApi,
    context: &Context,
    document: &DocumentId,
    output: PathBuf,
    purpose: &str,
) -> Result<OpenOutcome, DocError> {
    let member = me(api, context).await?;
    let doc = api.document(document).await?;
    let wrapped = if doc.custodian == member.department {
        doc.custodian_key.clone()
    } else if let Some(grant) = doc
        .grants
        .iter()
        .find(|g| g.department == member.department)
    {
        grant.wrapped_key.clone()
    } else {
        return Err(DocError::Document {
            document: doc.id.to_string(),
            message: format!(
                "your department `{}` is not its custodian (`{}` is) and holds no grant; ask the custodian for `custody doc grant`",
                member.department, doc.custodian
            ),
        });
    };
    // Unwrap before recording the read, so that a wrong key file costs
    // nothing on chain.
    let secret = checked_department_key(api, context, &member.department).await?;
    let data_key = unwrap_key(&doc.id, &wrapped, secret)?;
    let purpose = sealed::seal_required(&data_key, &doc.id, fields::PURPOSE, purpose)?;
    let (doc, recorded) = api
        .submit_on(&context.member_key, doc, context.commit_wait, |doc| {
            TxBody::RecordAccessSealed {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                purpose: purpose.clone(),
                ciphertext_sha256: doc.ciphertext.sha256,
            }
        })
        .await?;
    api.fetch(&doc.id).await?;
    let directory = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let (temporary, file) = TempFile::create(&directory, "custody-open")?;
    let writer = BufWriter::with_capacity(256 * 1024, file);
    let (summary, writer) =
        download_and_decrypt(api, context, &doc, recorded.tx_id, data_key, writer).await?;
    let file = writer.into_inner().map_err(|error| DocError::Io {
        action: "write",
        path: output.clone(),
        source: error.into_error(),
    })?;
    temporary.persist(file, &output)?;
    Ok(OpenOutcome {
        document: doc.id,
        output,
        plaintext_sha256: Hash32(summary.plaintext.sha256),
        plaintext_bytes: summary.plaintext.size_bytes,
        committed: Committed::of(&recorded),
    })
}
