//! Crypto-shredding: the shred share and the content key of a version 2
//! envelope (`docs/envelope.md`, "Crypto-shredding").
//!
//! The content key that encrypts a version 2 envelope is
//! `HKDF-SHA256(ikm = data key || shred share, no salt, info =
//! tagged("custody/content-key/v1", document id))`. The data key is wrapped
//! on chain to every department that may read, for as long as the chain
//! lives; the shred share never goes on chain: the nodes keep it in a store
//! of their own, apart from the envelope, and delete it once the document's
//! disposal is committed. From then on neither half alone opens any copy of
//! the envelope, wherever it was kept.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroize;

use super::{random_bytes, DataKey, RandomError};

/// Length of a shred share in bytes.
pub const SHRED_SHARE_BYTES: usize = custody_format::SHRED_SHARE_BYTES;
/// Length of the share's commitment in a version 2 header.
pub const SHARE_COMMITMENT_BYTES: usize = custody_format::SHRED_SHARE_BYTES;

/// The random half of a version 2 envelope's content key, held by the
/// nodes and deleted on disposal. Its bytes are wiped when it is dropped.
pub struct ShredShare([u8; SHRED_SHARE_BYTES]);

impl ShredShare {
    /// A fresh random share; one per envelope, never reused.
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes = [0u8; SHRED_SHARE_BYTES];
        random_bytes(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// A share from known bytes (test vectors, or a share a node handed out).
    pub fn from_bytes(bytes: [u8; SHRED_SHARE_BYTES]) -> Self {
        Self(bytes)
    }

    /// A share from 64 hex digits (as a node's answer carries it).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; SHRED_SHARE_BYTES];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The raw share bytes.
    pub fn as_bytes(&self) -> &[u8; SHRED_SHARE_BYTES] {
        &self.0
    }

    /// `SHA-256(tagged("custody/shred-share/v1", share))`, the commitment a
    /// version 2 header carries.
    pub fn commitment(&self) -> [u8; SHARE_COMMITMENT_BYTES] {
        custody_format::shred_share_commitment(&self.0)
    }
}

impl Drop for ShredShare {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for ShredShare {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ShredShare(<secret>)")
    }
}

/// The content key of a version 2 envelope of `document`.
pub fn content_key(data_key: &DataKey, share: &ShredShare, document: &str) -> DataKey {
    let mut input = [0u8; 2 * SHRED_SHARE_BYTES];
    input[..SHRED_SHARE_BYTES].copy_from_slice(data_key.as_bytes());
    input[SHRED_SHARE_BYTES..].copy_from_slice(share.as_bytes());
    let hkdf = Hkdf::<Sha256>::new(None, &input);
    input.zeroize();
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so this
    // cannot fail whatever the input.
    if hkdf
        .expand(&custody_format::content_key_info(document), &mut key)
        .is_err()
    {
        unreachable!("32 bytes is a valid HKDF-SHA256 output length");
    }
    let derived = DataKey::from_bytes(key);
    key.zeroize();
    derived
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_key_differs_with_a_different_shred_share() {
        let data_key = DataKey::from_bytes([7; 32]);
        let one = content_key(&data_key, &ShredShare::from_bytes([1; 32]), "ca/2026/0001");
        let other = content_key(&data_key, &ShredShare::from_bytes([2; 32]), "ca/2026/0001");
        assert_ne!(one, other);
        assert_ne!(one, data_key, "the data key alone is not the content key");
    }

    #[test]
    fn the_content_key_differs_for_another_document() {
        let data_key = DataKey::from_bytes([7; 32]);
        let share = ShredShare::from_bytes([1; 32]);
        assert_ne!(
            content_key(&data_key, &share, "ca/2026/0001"),
            content_key(&data_key, &share, "ca/2026/0002")
        );
    }

    #[test]
    fn a_share_s_commitment_changes_with_any_bit_of_the_share() {
        let share = ShredShare::from_bytes([9; 32]);
        let mut altered = [9u8; 32];
        altered[31] ^= 1;
        assert_ne!(
            share.commitment(),
            ShredShare::from_bytes(altered).commitment()
        );
    }
}
