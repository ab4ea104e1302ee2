//! Sealing a document's descriptive text before it goes on chain, and
//! opening what the chain holds sealed, for the clerk's commands.
//!
//! A text is sealed under the metadata key of the data key the clerk
//! already holds for the step (`docs/envelope.md`, "The metadata key"). A
//! sealed text opens for whoever can unwrap one of the document's wrapped
//! keys with their department key ([`crate::sealed_text::Opener`]);
//! everyone else sees "(sealed)".

use crate::envelope::{self, DataKey, MetadataKey};
use custody_ledger::sealed::SealedText;
use custody_ledger::types::DocumentId;

use super::node_api::NodeApi;
use super::DocError;

/// Seals `text` as `field` of `document` under `data_key`'s metadata key.
pub fn seal(
    data_key: &DataKey,
    document: &DocumentId,
    field: &'static str,
    text: &str,
) -> Result<SealedText, DocError> {
    let key = MetadataKey::derive(data_key, document.as_str());
    envelope::seal(&key, document.as_str(), field, text)
        .map(SealedText)
        .map_err(|error| DocError::Document {
            document: document.to_string(),
            message: format!("cannot seal the {field}: {error}"),
        })
}

/// [`seal`] for a field the rules want non-empty: an empty text is refused
/// here, since once sealed no node can tell.
pub fn seal_required(
    data_key: &DataKey,
    document: &DocumentId,
    field: &'static str,
    text: &str,
) -> Result<SealedText, DocError> {
    if text.trim().is_empty() {
        return Err(DocError::Usage(format!("the {field} must not be empty")));
    }
    seal(data_key, document, field, text)
}

/// The sealed title of a document whose title is sealed: the one its latest
/// `registered-sealed` or `amended-sealed` event carries. Reads the history
/// a page at a time.
pub async fn latest_sealed_title(
    api: &NodeApi,
    document: &DocumentId,
) -> Result<Option<SealedText>, DocError> {
    let mut title = None;
    let mut cursor: Option<String> = None;
    loop {
        let page = api.history(document, cursor.as_deref(), None).await?;
        for event in &page.items {
            if let Some(sealed) = event.kind.sealed_title() {
                title = Some(sealed.clone());
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(title),
        }
    }
}
