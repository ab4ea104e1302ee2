//! Envelope encryption of off-chain documents.
//!
//! A document version is encrypted under a fresh random 256-bit [`DataKey`]
//! with a chunked XChaCha20-Poly1305 stream ([`encrypt`], [`decrypt`]), and
//! the data key is wrapped to a department's X25519 public key ([`wrap`],
//! [`unwrap`]). A document's descriptive metadata is sealed under a
//! metadata key derived from its data key ([`MetadataKey`], [`seal`],
//! [`open_sealed`]). A version 2 envelope ([`encrypt_shredded`]) is
//! encrypted under a content key derived from the data key and a
//! [`ShredShare`] that the nodes keep and delete on disposal, so a disposed
//! document cannot be decrypted from anything left. The byte layouts are
//! specified in `docs/envelope.md`.
//!
//! Invariants:
//! - Plaintext and data keys live only in this process; nothing here touches
//!   the network or a node.
//! - [`decrypt`] writes only plaintext that has been authenticated, one chunk
//!   at a time; on error the output written so far must be discarded.
//! - Memory is bounded by one chunk (at most [`CHUNK_BYTES_MAX`] plus a tag),
//!   whatever the size of the document.

mod file;
mod sealed;
mod shred;
mod stream;
mod wrap;

pub use file::{decrypt_file, encrypt_file, ExpectedFixity};
pub use sealed::{
    open as open_sealed, seal, seal_with_nonce, MetadataKey, SealError, SEALED_NONCE_BYTES,
    SEALED_OVERHEAD_BYTES, SEALED_TAG_BYTES,
};
pub use shred::{content_key, ShredShare, SHARE_COMMITMENT_BYTES, SHRED_SHARE_BYTES};
pub use stream::{
    decrypt, decrypt_shredded, encrypt, encrypt_shredded, encrypt_shredded_with_nonce_prefix,
    encrypt_with, encrypt_with_nonce_prefix, share_commitment_of, EncryptOptions, EnvelopeError,
    EnvelopeHeader, EnvelopeSummary, Fixity, CHUNK_BYTES_DEFAULT, CHUNK_BYTES_MAX, CHUNK_BYTES_MIN,
    ENVELOPE_MAGIC, ENVELOPE_VERSION, ENVELOPE_VERSION_SHRED, HEADER_BYTES, NONCE_PREFIX_BYTES,
    SHRED_HEADER_BYTES, TAG_BYTES,
};
pub use wrap::{
    unwrap, wrap, wrap_with_ephemeral, DepartmentPublicKey, DepartmentSecretKey, WrapError,
    WrappedKey, WRAPPED_KEY_BYTES, WRAPPED_KEY_VERSION, WRAP_DOMAIN,
};

use zeroize::Zeroize;

/// Length of a data key in bytes (256 bits).
pub const DATA_KEY_BYTES: usize = 32;

/// The operating system's random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// Fills `bytes` from the operating system's random number generator.
pub(crate) fn random_bytes(bytes: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(bytes).map_err(|error| RandomError(error.to_string()))
}

/// The symmetric key that encrypts one document version.
///
/// Never leaves the clerk's process in clear: it travels only as a
/// [`WrappedKey`]. Its bytes are wiped when it is dropped.
pub struct DataKey([u8; DATA_KEY_BYTES]);

impl DataKey {
    /// A fresh random key; one per document version, never reused.
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes = [0u8; DATA_KEY_BYTES];
        random_bytes(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// A key from known bytes (test vectors, or a key just unwrapped).
    pub fn from_bytes(bytes: [u8; DATA_KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; DATA_KEY_BYTES] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DataKey(<secret>)")
    }
}

impl PartialEq for DataKey {
    /// Compares every byte, so the time taken does not depend on where the
    /// keys first differ.
    fn eq(&self, other: &Self) -> bool {
        let difference = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |accumulated, (left, right)| {
                accumulated | (left ^ right)
            });
        difference == 0
    }
}

impl Eq for DataKey {}
