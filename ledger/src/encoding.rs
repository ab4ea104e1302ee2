//! The one canonical encoding: postcard, domain-separated by an ASCII tag.
//!
//! Everything that is hashed or signed goes through [`tagged`], [`hash_of`],
//! [`sign`] and [`verify`]; nothing in the crate hashes or signs ad hoc bytes.
//! Decoding is strict: trailing bytes are refused, and so is any input whose
//! re-encoding differs from the bytes given (overlong varints, for example),
//! so that one value has exactly one byte string.
//!
//! The encoding, hashing and signature primitives live in `custody-format`
//! (shared with consensus); this module re-exports them under the names the
//! ledger uses and adds the value-level signing helpers.

use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::types::{PublicKey, Signature};

/// Domain-separation tags: the one registry lives in the format crate.
pub use custody_format::tags;

/// `u8(len(tag)) || tag || body`.
pub use custody_format::tagged;

pub use custody_format::encoding::{
    decode, encode, encoded_size, hash_of, sha256, signing_bytes, DecodeError, DECODE_BYTES_MAX,
};
pub use custody_format::signature::public_key_of;

/// Check an ed25519 signature over bytes that were already tagged (the
/// rules transactions are held to, format v1).
pub use custody_format::signature::verify as verify_bytes;

/// Verify many `(key, message, signature)` triples at once with ed25519
/// batch verification, with the rules of [`verify_bytes`]. Returns `true`
/// only if every signature is valid. On `false` the caller finds the
/// culprit with [`verify_bytes`].
pub use custody_format::signature::verify_batch as verify_many;

/// ed25519 signature over `tagged(tag, postcard(value))`.
pub fn sign<T: Serialize + ?Sized>(key: &SigningKey, tag: &str, value: &T) -> Signature {
    custody_format::signature::sign(key, &signing_bytes(tag, value))
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
