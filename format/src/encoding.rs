//! The one canonical encoding: postcard, domain-separated by an ASCII tag.
//!
//! Everything that is hashed or signed goes through [`signing_bytes`] and
//! [`hash_of`]. Decoding is strict: trailing bytes are refused, and so is
//! any input whose re-encoding differs from the bytes given (overlong
//! varints, for example), so that one value has exactly one byte string.

use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};

use crate::types::Hash32;

/// Largest byte string [`decode`] accepts. A block is the largest
/// structure; its own limit (`max_block_bytes`) is far smaller.
pub const DECODE_BYTES_MAX: usize = 64 * 1024 * 1024;

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

/// Canonical postcard bytes of a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // postcard's only failure modes are a full fixed buffer (we grow a Vec)
    // and a serializer error from a custom impl; Custody's never fail, so
    // an error here is a programming bug, not input.
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

/// The bytes a signature or hash covers: `tagged(tag, postcard(value))`.
pub fn signing_bytes<T: Serialize + ?Sized>(tag: &str, value: &T) -> Vec<u8> {
    crate::tagged(tag, &encode(value))
}

/// SHA-256 of arbitrary bytes (used for the Merkle tree and fixity only).
pub fn sha256(bytes: &[u8]) -> Hash32 {
    Hash32(Sha256::digest(bytes).into())
}

/// `SHA-256(tagged(tag, postcard(value)))`.
pub fn hash_of<T: Serialize + ?Sized>(tag: &str, value: &T) -> Hash32 {
    sha256(&signing_bytes(tag, value))
}
