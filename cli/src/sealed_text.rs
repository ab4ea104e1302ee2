//! Opening a document's sealed texts (format version 4) for a reader who
//! holds a department key: the clerk's `custody doc show` and `history`, and
//! the auditor's `custody audit history`.
//!
//! A sealed text opens under the metadata key of the data key it was
//! sealed with (`docs/envelope.md`, "The metadata key"); a reader whose
//! department key unwraps none of the document's wrapped keys sees
//! "(sealed)". Nothing here is needed to verify a chain.

use crate::envelope::{self, DataKey, DepartmentSecretKey, MetadataKey};
use custody_ledger::records::{Document, DocumentStatus, EventKind};
use custody_ledger::sealed::{fields, SealedText, Text};
use custody_ledger::tx::TxBody;
use custody_ledger::types::{DocumentId, WrappedKey};

/// What is shown for a sealed text the keys at hand do not open.
pub const SEALED_PLACEHOLDER: &str = "(sealed)";

/// The metadata keys a reader holds for one document, and the opening of
/// its sealed texts with them.
pub struct Opener {
    document: DocumentId,
    keys: Vec<MetadataKey>,
}

impl Opener {
    /// An opener with the metadata keys of `data_keys`.
    pub fn new(document: &DocumentId, data_keys: &[DataKey]) -> Self {
        Opener {
            document: document.clone(),
            keys: data_keys
                .iter()
                .map(|data_key| MetadataKey::derive(data_key, document.as_str()))
                .collect(),
        }
    }

    /// The data keys `secret` unwraps among `wrapped` (each wrapped to some
    /// department: only those wrapped to the secret's department open).
    pub fn from_wrapped<'a>(
        document: &DocumentId,
        wrapped: impl IntoIterator<Item = &'a WrappedKey>,
        secret: Option<&DepartmentSecretKey>,
    ) -> Self {
        let Some(secret) = secret else {
            return Opener::new(document, &[]);
        };
        let data_keys: Vec<DataKey> = wrapped
            .into_iter()
            .filter_map(|wrapped| envelope::WrappedKey::from_bytes(&wrapped.0).ok())
            .filter_map(|wrapped| envelope::unwrap(&wrapped, secret).ok())
            .collect();
        Opener::new(document, &data_keys)
    }

    /// An opener with every data key of `doc` as it stands that `secret`
    /// unwraps: the custodian's, a grant's, a pending offer's.
    pub fn for_document(doc: &Document, secret: Option<&DepartmentSecretKey>) -> Self {
        let mut wrapped: Vec<&WrappedKey> = vec![&doc.custodian_key];
        wrapped.extend(doc.grants.iter().map(|grant| &grant.wrapped_key));
        if let DocumentStatus::InTransfer(offer) = &doc.status {
            wrapped.push(&offer.wrapped_key);
        }
        Opener::from_wrapped(&doc.id, wrapped, secret)
    }

    /// The sealed text opened, if one of the keys opens it.
    pub fn open(&self, field: &str, sealed: &SealedText) -> Option<String> {
        self.keys.iter().find_map(|key| {
            envelope::open_sealed(key, self.document.as_str(), field, &sealed.0).ok()
        })
    }

    /// A document's title as a reader sees it. `sealed_title` is the title
    /// of the document's latest `registered-sealed` or `amended-sealed`
    /// event, for a document whose title is sealed.
    pub fn title(&self, doc: &Document, sealed_title: Option<&SealedText>) -> String {
        match sealed_title {
            Some(sealed) if doc.title_is_sealed() => self.show(fields::TITLE, Text::Sealed(sealed)),
            _ if doc.title_is_sealed() => SEALED_PLACEHOLDER.to_string(),
            _ => doc.title.clone(),
        }
    }

    /// A text as a reader sees it: in the clear, opened, or "(sealed)".
    pub fn show(&self, field: &str, text: Text) -> String {
        match text {
            Text::Plain(text) => text.to_string(),
            Text::Sealed(sealed) => self
                .open(field, sealed)
                .unwrap_or_else(|| SEALED_PLACEHOLDER.to_string()),
        }
    }

    /// The free text an event carries, as a reader sees it, if it carries
    /// one.
    pub fn event_text(&self, kind: &EventKind) -> Option<String> {
        let text = match kind {
            EventKind::Rejected { reason } | EventKind::Disposed { reason } => {
                (fields::REASON, Text::Plain(reason))
            }
            EventKind::RejectedSealed { reason } | EventKind::DisposedSealed { reason } => {
                (fields::REASON, Text::Sealed(reason))
            }
            EventKind::Accessed { purpose, .. } => (fields::PURPOSE, Text::Plain(purpose)),
            EventKind::AccessedSealed { purpose, .. } => (fields::PURPOSE, Text::Sealed(purpose)),
            EventKind::Amended { note, .. } => (fields::NOTE, Text::Plain(note)),
            EventKind::AmendedSealed { note, .. } => (fields::NOTE, Text::Sealed(note)),
            _ => return None,
        };
        Some(self.show(text.0, text.1))
    }

    /// The free text a transaction carries (a reason, a purpose, a note),
    /// as a reader sees it, if it carries one.
    pub fn body_text(&self, body: &TxBody) -> Option<String> {
        let text = match body {
            TxBody::RejectTransfer { reason, .. } | TxBody::Dispose { reason, .. } => {
                (fields::REASON, Text::Plain(reason))
            }
            TxBody::RejectTransferSealed { reason, .. } | TxBody::DisposeSealed { reason, .. } => {
                (fields::REASON, Text::Sealed(reason))
            }
            TxBody::RecordAccess { purpose, .. } => (fields::PURPOSE, Text::Plain(purpose)),
            TxBody::RecordAccessSealed { purpose, .. } => (fields::PURPOSE, Text::Sealed(purpose)),
            TxBody::Amend { note, .. } | TxBody::RecordFixityCheck { note, .. } => {
                (fields::NOTE, Text::Plain(note))
            }
            TxBody::AmendSealed { note, .. } | TxBody::RecordFixityCheckSealed { note, .. } => {
                (fields::NOTE, Text::Sealed(note))
            }
            _ => return None,
        };
        Some(self.show(text.0, text.1))
    }
}

/// The data key a transaction wraps to some department, if it wraps one:
/// a registration's, an amendment's, an offer's, a grant's. An auditor
/// holding a department key opens with these every text sealed under a key
/// that department was ever given.
pub fn wrapped_key_of(body: &TxBody) -> Option<&WrappedKey> {
    match body {
        TxBody::Register { wrapped_key, .. }
        | TxBody::RegisterSealed { wrapped_key, .. }
        | TxBody::OfferTransfer { wrapped_key, .. }
        | TxBody::GrantAccess { wrapped_key, .. }
        | TxBody::Amend { wrapped_key, .. }
        | TxBody::AmendSealed { wrapped_key, .. } => Some(wrapped_key),
        _ => None,
    }
}

/// Reads a department encryption key file: the JSON key file of `custody
/// keys` (its passphrase from the environment variable `passphrase_env`, if
/// sealed), or a node home's bare hex key.
pub fn read_department_key(
    path: &std::path::Path,
    passphrase_env: Option<&str>,
) -> Result<DepartmentSecretKey, String> {
    let text =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let is_json = text
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if is_json {
        let passphrase = match passphrase_env {
            Some(name) => Some(
                crate::keyfile::Passphrase::from_env(name).map_err(|error| error.to_string())?,
            ),
            None => None,
        };
        return crate::keyfile::read_department_key(path, passphrase.as_ref())
            .map_err(|error| error.to_string());
    }
    let secret = custody_node::home::read_key_file(path).map_err(|error| error.to_string())?;
    Ok(DepartmentSecretKey::from_bytes(secret))
}
