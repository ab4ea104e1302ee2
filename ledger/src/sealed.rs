//! Sealed text: descriptive metadata (a title, a reason, a purpose, a note)
//! that travels on chain encrypted, so that no block, export or open API
//! answer holds it in the clear.
//!
//! The ledger knows only the shape of a sealed text and the bytes that bind
//! it to its document and field; it never holds a key and never opens one.
//! Sealing and opening (HKDF-SHA256 and XChaCha20-Poly1305) live in the
//! CLI's envelope module; the layout is specified in `docs/format.md`
//! ("Sealed text") and `docs/envelope.md` ("The metadata key").

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::types::DocumentId;

/// Bytes of the XChaCha20-Poly1305 nonce in front of a sealed text.
pub const SEALED_TEXT_NONCE_BYTES: usize = 24;
/// Bytes of the Poly1305 tag at the end of a sealed text.
pub const SEALED_TEXT_TAG_BYTES: usize = 16;
/// What sealing adds to a text: its nonce and its tag. An empty text seals
/// to exactly this many bytes, so nothing shorter is a sealed text.
pub const SEALED_TEXT_OVERHEAD_BYTES: usize = SEALED_TEXT_NONCE_BYTES + SEALED_TEXT_TAG_BYTES;

/// The field names a sealed text is bound to (in its associated data).
pub mod fields {
    /// A document's title (register, amend).
    pub const TITLE: &str = "title";
    /// Why an offer was rejected, or why a document was disposed of.
    pub const REASON: &str = "reason";
    /// Why a document was opened (record-access).
    pub const PURPOSE: &str = "purpose";
    /// The note of an amendment or of a fixity check.
    pub const NOTE: &str = "note";
}

/// An encrypted text: `nonce (24 bytes) || ciphertext || tag (16 bytes)`.
///
/// Encodes in postcard as a byte string (varint length, then the bytes),
/// and as one lowercase hex string in JSON.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SealedText(pub Vec<u8>);

impl SealedText {
    /// The nonce, if the text is long enough to hold one.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.0.get(..SEALED_TEXT_NONCE_BYTES)
    }

    /// The ciphertext with its tag, if the text is long enough to hold them.
    pub fn ciphertext_and_tag(&self) -> Option<&[u8]> {
        if self.0.len() < SEALED_TEXT_OVERHEAD_BYTES {
            return None;
        }
        self.0.get(SEALED_TEXT_NONCE_BYTES..)
    }

    /// Length of the plaintext it seals, if it is well formed.
    pub fn plaintext_len(&self) -> Option<usize> {
        self.0.len().checked_sub(SEALED_TEXT_OVERHEAD_BYTES)
    }

    /// Lowercase hex of the bytes, as shown in JSON.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl fmt::Debug for SealedText {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SealedText({})", self.to_hex())
    }
}

impl Serialize for SealedText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for SealedText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = SealedText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("sealed text bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SealedText, E> {
                if v.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(E::custom("hex must be lowercase"));
                }
                hex::decode(v).map(SealedText).map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<SealedText, E> {
                Ok(SealedText(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<SealedText, E> {
                Ok(SealedText(v))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_byte_buf(V)
        }
    }
}

/// The associated data a sealed text is encrypted under:
/// `tagged("custody/sealed-text/v1", document id || 0x00 || field)`, so
/// that a sealed text moved to another document or field no longer opens.
pub fn associated_data(document: &DocumentId, field: &str) -> Vec<u8> {
    custody_format::sealed_text_associated_data(document.as_str(), field)
}

/// The HKDF-SHA256 info that derives a document's metadata key from its
/// data key: `tagged("custody/metadata-key/v1", document id)`.
pub fn metadata_key_info(document: &DocumentId) -> Vec<u8> {
    custody_format::metadata_key_info(document.as_str())
}

/// A text that is either in the clear (format versions 1–3) or sealed
/// (format version 4): what the rules and the readers of a document see.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Text<'a> {
    Plain(&'a str),
    Sealed(&'a SealedText),
}
