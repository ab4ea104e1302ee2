//! A record's lifecycle after registration: a new version (`amend`), a
//! recorded fixity check (`fixity`) and disposal after retention
//! (`dispose`).

use std::path::PathBuf;

use crate::doc::node_api::DOWNLOAD_CHUNKS_QUEUED_MAX;
use crate::doc::sealed;
use crate::envelope::{self, DepartmentPublicKey};
use crate::sealed_text::Opener;
use custody_ledger::records::Document;
use custody_ledger::sealed::fields;
use custody_ledger::tx::{AmendReason, FixityResult, TxBody};
use custody_ledger::types::{DocumentId, Fixity, Format, Hash32, WrappedKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::files::{encrypt_and_upload, ledger_fixity, read_request};
use super::{custodian_data_key, me, Committed, Context, DocError, NodeApi};

/// The purpose a fixity check's read is recorded with.
pub const FIXITY_PURPOSE: &str = "fixity check";

/// The amendment reason as the chain names it (`docs/format.md`).
pub fn reason_name(reason: AmendReason) -> &'static str {
    match reason {
        AmendReason::Correction => "correction",
        AmendReason::FormatMigration => "format-migration",
        AmendReason::Redaction => "redaction",
    }
}

/// What `amend` is asked to record.
#[derive(Clone)]
pub struct AmendRequest {
    pub document: DocumentId,
    /// The new version's plaintext.
    pub file: PathBuf,
    pub reason: AmendReason,
    /// Why, sealed on chain (may be empty).
    pub note: String,
    /// The new version's title (default: the current one).
    pub title: Option<String>,
    /// The new version's format (default: the current one).
    pub format: Option<Format>,
    /// Directory for the temporary envelope (default: the system's).
    pub work_dir: Option<PathBuf>,
}

/// A new version recorded.
#[derive(Clone, Debug, Serialize)]
pub struct AmendOutcome {
    pub document: DocumentId,
    /// The new version's number, and the one it replaces.
    pub version: u32,
    pub previous_version: u32,
    pub reason: &'static str,
    pub plaintext: Fixity,
    pub ciphertext: Fixity,
    #[serde(flatten)]
    pub committed: Committed,
}

/// Encrypts `request.file` under a new data key, uploads it, and records
/// it as the document's next version (`amend-sealed`: the note and the
/// title sealed under the new version's key). The signer's department
/// must be the custodian.
pub async fn amend(
    api: &NodeApi,
    context: &Context,
    request: AmendRequest,
) -> Result<AmendOutcome, DocError> {
    let key = &context.member_key;
    let member = me(api, context).await?;
    let doc = api.document(&request.document).await?;
    // The current key proves custody and the department key file before
    // anything is uploaded, and opens a sealed title to carry it over.
    let current_key = custodian_data_key(api, context, &doc, &member).await?;
    let title = match request.title {
        Some(title) => title,
        None => current_title(api, &doc, &current_key).await?,
    };
    let format = request.format.unwrap_or_else(|| doc.format.clone());
    let own_key = api
        .department(&member.department)
        .await?
        .keys
        .encryption_key;
    let work_dir = request.work_dir.unwrap_or_else(std::env::temp_dir);
    let (summary, data_key) =
        encrypt_and_upload(api, context, &request.file, &work_dir, &doc.id).await?;
    let wrapped = envelope::wrap(&data_key, &DepartmentPublicKey(own_key.0)).map_err(|error| {
        DocError::Document {
            document: doc.id.to_string(),
            message: format!("cannot wrap the new data key: {error}"),
        }
    })?;
    let wrapped_key = WrappedKey(wrapped.to_bytes().to_vec());
    let note = sealed::seal(&data_key, &doc.id, fields::NOTE, &request.note)?;
    let title = sealed::seal_required(&data_key, &doc.id, fields::TITLE, &title)?;
    let plaintext = ledger_fixity(summary.plaintext);
    let ciphertext = ledger_fixity(summary.ciphertext);
    let reason = request.reason;
    let (before, answer) = api
        .submit_on_document(key, &doc.id, context.commit_wait, |doc| {
            TxBody::AmendSealed {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                reason,
                note: note.clone(),
                title: title.clone(),
                format: format.clone(),
                plaintext,
                ciphertext,
                wrapped_key: wrapped_key.clone(),
            }
        })
        .await?;
    Ok(AmendOutcome {
        document: before.id.clone(),
        version: before.version.saturating_add(1),
        previous_version: before.version,
        reason: reason_name(reason),
        plaintext,
        ciphertext,
        committed: Committed::of(&answer),
    })
}

/// The document's title as it stands, opened with its current data key
/// when it is sealed.
async fn current_title(
    api: &NodeApi,
    doc: &Document,
    data_key: &envelope::DataKey,
) -> Result<String, DocError> {
    if !doc.title_is_sealed() {
        return Ok(doc.title.clone());
    }
    let cannot = |why: &str| DocError::Document {
        document: doc.id.to_string(),
        message: format!("{why}; give the new version's title with --title"),
    };
    let sealed_title = sealed::latest_sealed_title(api, &doc.id)
        .await?
        .ok_or_else(|| cannot("its sealed title is not in its history"))?;
    Opener::new(&doc.id, std::slice::from_ref(data_key))
        .open(fields::TITLE, &sealed_title)
        .ok_or_else(|| cannot("its sealed title does not open with the current data key"))
}

/// A fixity check read back and recorded.
#[derive(Clone, Debug, Serialize)]
pub struct FixityOutcome {
    pub document: DocumentId,
    /// `intact` when the ciphertext read back matches the chain's
    /// fingerprint (SHA-256 and size), `mismatch` otherwise.
    pub result: FixityResult,
    /// The chain's fingerprint of the current version's ciphertext.
    pub expected: Fixity,
    /// What was read back.
    pub found: Fixity,
    /// The access record the read was made under.
    pub read: Committed,
    /// The fixity-check record.
    #[serde(flatten)]
    pub committed: Committed,
}

/// Reads the current version's ciphertext back from the node (recording
/// the read first, as the read rule wants), hashes it, compares it with
/// the chain's fingerprint and records a fixity check with the result. A
/// mismatch is an `Ok` outcome with `result: mismatch`: the check is on
/// chain either way. The signer's department must be the custodian.
pub async fn fixity(
    api: &NodeApi,
    context: &Context,
    document: &DocumentId,
    note: Option<&str>,
) -> Result<FixityOutcome, DocError> {
    let key = &context.member_key;
    let member = me(api, context).await?;
    let doc = api.document(document).await?;
    let data_key = custodian_data_key(api, context, &doc, &member).await?;
    let purpose = sealed::seal_required(&data_key, &doc.id, fields::PURPOSE, FIXITY_PURPOSE)?;
    let (doc, recorded) = api
        .submit_on(key, doc, context.commit_wait, |doc| {
            TxBody::RecordAccessSealed {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                purpose: purpose.clone(),
                ciphertext_sha256: doc.ciphertext.sha256,
            }
        })
        .await?;
    api.fetch(&doc.id).await?;
    let request = read_request(api, key, &doc, recorded.tx_id).await?;
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(DOWNLOAD_CHUNKS_QUEUED_MAX);
    let bar = context.progress(doc.ciphertext.size_bytes, "read back");
    let read_from = PathBuf::from(format!("{}/v1/reads ({})", api.base(), doc.id));
    let hashing = async move {
        let mut hasher = Sha256::new();
        let mut size_bytes = 0u64;
        while let Some(chunk) = receiver.recv().await {
            let chunk: Vec<u8> = chunk.map_err(|source| DocError::Io {
                action: "read back",
                path: read_from.clone(),
                source,
            })?;
            size_bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok::<_, DocError>(Fixity {
            sha256: Hash32(hasher.finalize().into()),
            size_bytes,
        })
    };
    let (downloaded, found) = tokio::join!(api.download(&request, sender, None, bar), hashing);
    downloaded?;
    let found = found?;
    let expected = doc.ciphertext;
    let result = if found == expected {
        FixityResult::Intact
    } else {
        FixityResult::Mismatch
    };
    let note = match note {
        Some(note) => note.to_string(),
        None if result == FixityResult::Intact => format!(
            "ciphertext read back: SHA-256 {} ({} bytes), as the chain records",
            found.sha256, found.size_bytes
        ),
        None => format!(
            "ciphertext read back: SHA-256 {} ({} bytes); the chain records {} ({} bytes)",
            found.sha256, found.size_bytes, expected.sha256, expected.size_bytes
        ),
    };
    let note = sealed::seal(&data_key, &doc.id, fields::NOTE, &note)?;
    // The check names the fingerprint it compared with: a new version
    // committed meanwhile makes the chain refuse it, not record it
    // against the wrong version.
    let (_, answer) = api
        .submit_on_document(key, &doc.id, context.commit_wait, |doc| {
            TxBody::RecordFixityCheckSealed {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                ciphertext_sha256: expected.sha256,
                result,
                note: note.clone(),
            }
        })
        .await?;
    Ok(FixityOutcome {
        document: doc.id.clone(),
        result,
        expected,
        found,
        read: Committed::of(&recorded),
        committed: Committed::of(&answer),
    })
}

/// A disposal recorded.
#[derive(Clone, Debug, Serialize)]
pub struct DisposeOutcome {
    pub document: DocumentId,
    /// The sealed reason text as recorded: the reason and the authority.
    pub recorded_reason: String,
    #[serde(flatten)]
    pub committed: Committed,
}

/// The one sealed text a disposal carries: the reason and the authority
/// that decided it.
pub fn disposal_text(authority: &str, reason: &str) -> String {
    format!("{reason} (authority: {authority})")
}

/// Disposes of `document` once its retention has elapsed: signed by an
/// administrator of the custodian department, the reason and authority
/// sealed under the current data key. The chain refuses it before the
/// retention ends (`retention_not_elapsed`) or for a permanent record.
/// After the commit every node deletes the document's ciphertexts.
pub async fn dispose(
    api: &NodeApi,
    context: &Context,
    document: &DocumentId,
    authority: &str,
    reason: &str,
) -> Result<DisposeOutcome, DocError> {
    if authority.trim().is_empty() {
        return Err(DocError::Usage(
            "--authority must name who decided the disposal".to_string(),
        ));
    }
    if reason.trim().is_empty() {
        return Err(DocError::Usage("--reason must not be empty".to_string()));
    }
    let key = &context.member_key;
    let member = me(api, context).await?;
    let doc = api.document(document).await?;
    let data_key = custodian_data_key(api, context, &doc, &member).await?;
    let text = disposal_text(authority, reason);
    let sealed_reason = sealed::seal_required(&data_key, &doc.id, fields::REASON, &text)?;
    let (doc, answer) = api
        .submit_on_document(key, &doc.id, context.commit_wait, |doc| {
            TxBody::DisposeSealed {
                document: doc.id.clone(),
                previous_event: doc.latest_event,
                reason: sealed_reason.clone(),
            }
        })
        .await?;
    Ok(DisposeOutcome {
        document: doc.id.clone(),
        recorded_reason: text,
        committed: Committed::of(&answer),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_are_the_chain_s_names() {
        for reason in [
            AmendReason::Correction,
            AmendReason::FormatMigration,
            AmendReason::Redaction,
        ] {
            assert_eq!(
                serde_json::to_value(reason).expect("json"),
                serde_json::json!(reason_name(reason))
            );
        }
    }

    #[test]
    fn disposal_text_carries_the_reason_and_the_authority() {
        let text = disposal_text("Records committee decision 2026/14", "retention elapsed");
        assert!(
            text.contains("Records committee decision 2026/14"),
            "{text}"
        );
        assert!(text.contains("retention elapsed"), "{text}");
    }
}
