//! Sealed text: a document's descriptive metadata (title, reasons,
//! purposes, notes) encrypted under its metadata key, so that it travels on
//! chain without being readable by any node or auditor.
//!
//! The metadata key is HKDF-SHA256 of the document version's data key
//! (no salt, info `tagged("custody/metadata-key/v1", document id)`); a text
//! is XChaCha20-Poly1305 under it with a fresh 24-byte nonce and the
//! associated data `tagged("custody/sealed-text/v1", document id || 0x00 ||
//! field)`. Sealed bytes: `nonce || ciphertext || tag`. Whoever can unwrap
//! the data key can open the text; nobody else. Layout in
//! `docs/envelope.md` ("The metadata key").

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{random_bytes, DataKey, RandomError};

/// Bytes of the nonce in front of a sealed text.
pub const SEALED_NONCE_BYTES: usize = 24;
/// Bytes of the tag at the end of a sealed text.
pub const SEALED_TAG_BYTES: usize = 16;
/// What sealing adds to a text.
pub const SEALED_OVERHEAD_BYTES: usize = SEALED_NONCE_BYTES + SEALED_TAG_BYTES;

/// Why a text could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("a sealed text is at least {SEALED_OVERHEAD_BYTES} bytes (nonce and tag), got {found_bytes}")]
    TooShort { found_bytes: usize },
    #[error("the sealed text does not open with this key: it was sealed under another document version's key, for another document or field, or altered")]
    WrongKeyOrTampered,
    #[error("the sealed text opened but is not UTF-8 text")]
    NotText,
    #[error("the text of {found_bytes} bytes is too long to seal")]
    TooLong { found_bytes: usize },
}

/// The key a document version's metadata is sealed under, derived from its
/// data key. Wiped when dropped.
pub struct MetadataKey(Zeroizing<[u8; 32]>);

impl MetadataKey {
    /// HKDF-SHA256(ikm = data key, no salt, info =
    /// `tagged("custody/metadata-key/v1", document id)`), 32 bytes.
    pub fn derive(data_key: &DataKey, document_id: &str) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, data_key.as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so
        // this cannot fail whatever the input.
        hkdf.expand(
            &custody_format::metadata_key_info(document_id),
            key.as_mut(),
        )
        .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(key)
    }

    /// The raw key bytes (test vectors).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.0))
    }
}

impl std::fmt::Debug for MetadataKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("MetadataKey(<secret>)")
    }
}

/// Seals `text` as field `field` of document `document_id`, with a fresh
/// random nonce.
pub fn seal(
    key: &MetadataKey,
    document_id: &str,
    field: &str,
    text: &str,
) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; SEALED_NONCE_BYTES];
    random_bytes(&mut nonce)?;
    seal_with_nonce(key, document_id, field, text, nonce)
}

/// [`seal`] with a caller-chosen nonce, for test vectors only: a nonce must
/// never be used twice under one key.
#[doc(hidden)]
pub fn seal_with_nonce(
    key: &MetadataKey,
    document_id: &str,
    field: &str,
    text: &str,
    nonce: [u8; SEALED_NONCE_BYTES],
) -> Result<Vec<u8>, SealError> {
    let associated_data = custody_format::sealed_text_associated_data(document_id, field);
    let mut body = text.as_bytes().to_vec();
    // XChaCha20-Poly1305 refuses only messages beyond 2^38 bytes.
    let tag = key
        .cipher()
        .encrypt_inout_detached(
            &XNonce::from(nonce),
            &associated_data,
            body.as_mut_slice().into(),
        )
        .map_err(|_| SealError::TooLong {
            found_bytes: text.len(),
        })?;
    let mut sealed = Vec::with_capacity(SEALED_OVERHEAD_BYTES + body.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&body);
    sealed.extend_from_slice(&tag);
    Ok(sealed)
}

/// Opens a sealed text of field `field` of document `document_id`.
pub fn open(
    key: &MetadataKey,
    document_id: &str,
    field: &str,
    sealed: &[u8],
) -> Result<String, SealError> {
    if sealed.len() < SEALED_OVERHEAD_BYTES {
        return Err(SealError::TooShort {
            found_bytes: sealed.len(),
        });
    }
    let (nonce, rest) = sealed.split_at(SEALED_NONCE_BYTES);
    let (ciphertext, tag) = rest.split_at(rest.len() - SEALED_TAG_BYTES);
    let nonce: [u8; SEALED_NONCE_BYTES] = nonce
        .try_into()
        .map_err(|_| SealError::WrongKeyOrTampered)?;
    let tag = Tag::try_from(tag).map_err(|_| SealError::WrongKeyOrTampered)?;
    let associated_data = custody_format::sealed_text_associated_data(document_id, field);
    let mut body = Zeroizing::new(ciphertext.to_vec());
    key.cipher()
        .decrypt_inout_detached(
            &XNonce::from(nonce),
            &associated_data,
            body.as_mut_slice().into(),
            &tag,
        )
        .map_err(|_| SealError::WrongKeyOrTampered)?;
    String::from_utf8(body.to_vec()).map_err(|_| SealError::NotText)
}
