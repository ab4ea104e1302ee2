//! The one canonical encoding: postcard, domain-separated by an ASCII tag.
//!
//! Everything that is hashed or signed goes through [`tagged`], [`hash_of`],
//! [`sign`] and [`verify`]; nothing in the crate hashes or signs ad hoc bytes.
//! Decoding is strict: trailing bytes are refused, and so is any input whose
//! re-encoding differs from the bytes given (overlong varints, for example),
//! so that one value has exactly one byte string.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};

use crate::types::{Hash32, PublicKey, Signature};

/// Largest byte string any decoder in this crate accepts. A block is the
/// largest structure; its own limit (`max_block_bytes`) is far smaller.
pub const DECODE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Domain-separation tags: the one registry lives in the format crate.
pub use custody_format::tags;

/// Why bytes could not be turned into a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed bytes: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    #[error("bytes are not in canonical form (re-encoding differs)")]
    NotCanonical,
}

/// Why a value could not be encoded (only a failing custom serializer can do
/// this; every type in this crate encodes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value could not be encoded: {0}")]
pub struct EncodeError(pub String);

/// Canonical postcard bytes of a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // postcard's only failure modes are a full fixed buffer (we grow a Vec)
    // and a serializer error from a custom impl; ours never fail, so an error
    // here is a programming bug, not input.
    match postcard::to_allocvec(value) {
        Ok(bytes) => bytes,
        Err(error) => panic!("canonical encoding failed for an in-memory value: {error}"),
    }
}

/// Length of [`encode`]`(value)` without building it.
pub fn encoded_size<T: Serialize + ?Sized>(value: &T) -> usize {
    match postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default()) {
        Ok(size) => size,
        Err(error) => panic!("canonical encoding failed for an in-memory value: {error}"),
    }
}

/// Decode canonical postcard bytes, refusing trailing bytes and any input
/// whose re-encoding is not identical.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > DECODE_BYTES_MAX {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: DECODE_BYTES_MAX,
        });
    }
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    let again = postcard::to_allocvec(&value).map_err(|_| DecodeError::NotCanonical)?;
    if again != bytes {
        return Err(DecodeError::NotCanonical);
    }
    Ok(value)
}

/// `u8(len(tag)) || tag || body`.
pub use custody_format::tagged;

/// The bytes a signature or hash covers: `tagged(tag, postcard(value))`.
pub fn signing_bytes<T: Serialize + ?Sized>(tag: &str, value: &T) -> Vec<u8> {
    tagged(tag, &encode(value))
}

/// SHA-256 of arbitrary bytes (used for the Merkle tree and fixity only).
pub fn sha256(bytes: &[u8]) -> Hash32 {
    Hash32(Sha256::digest(bytes).into())
}

/// `SHA-256(tagged(tag, postcard(value)))`.
pub fn hash_of<T: Serialize + ?Sized>(tag: &str, value: &T) -> Hash32 {
    sha256(&signing_bytes(tag, value))
}

/// ed25519 signature over `tagged(tag, postcard(value))`.
pub fn sign<T: Serialize + ?Sized>(key: &SigningKey, tag: &str, value: &T) -> Signature {
    Signature(key.sign(&signing_bytes(tag, value)).to_bytes())
}

/// Check an ed25519 signature over `tagged(tag, postcard(value))`.
pub fn verify<T: Serialize + ?Sized>(
    key: &PublicKey,
    tag: &str,
    value: &T,
    signature: &Signature,
) -> bool {
    verify_bytes(key, &signing_bytes(tag, value), signature)
}

/// Check an ed25519 signature over bytes that were already tagged.
pub fn verify_bytes(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    let Ok(verifying_key) = VerifyingKey::from_bytes(&key.0) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    verifying_key.verify(message, &signature).is_ok()
}

/// Verify many `(key, message, signature)` triples at once with ed25519
/// batch verification. Returns `true` only if every signature is valid. On
/// `false` the caller finds the culprit with [`verify_bytes`].
pub fn verify_many(items: &[(PublicKey, &[u8], Signature)]) -> bool {
    if items.is_empty() {
        return true;
    }
    let mut keys = Vec::with_capacity(items.len());
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    // Decompressing a key costs about as much as a third of a verification,
    // and a batch usually holds few distinct signers: decompress each once.
    let mut decompressed: std::collections::HashMap<[u8; 32], VerifyingKey> =
        std::collections::HashMap::new();
    for (key, message, signature) in items {
        let verifying_key = match decompressed.get(&key.0) {
            Some(k) => *k,
            None => {
                let Ok(k) = VerifyingKey::from_bytes(&key.0) else {
                    return false;
                };
                decompressed.insert(key.0, k);
                k
            }
        };
        keys.push(verifying_key);
        messages.push(*message);
        signatures.push(ed25519_dalek::Signature::from_bytes(&signature.0));
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// The public key of a signing key, in this crate's type.
pub fn public_key_of(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}
