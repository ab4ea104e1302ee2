//! custody-format: the byte-level contract that the ledger and consensus
//! share, and the lowest crate of the workspace.
//!
//! Owns: the one registry of domain-separation tags ([`tags`]), the tagged
//! byte string every hash and signature covers ([`tagged`]), the one
//! canonical encoding with its strict decoder and tagged hashing
//! ([`encoding`]), ed25519 signing and verification, single and batched,
//! plain and strict ([`signature`]), the serde form of fixed-size byte
//! arrays ([`fixed_bytes`]: lowercase hex in JSON and TOML, raw bytes with
//! no length prefix in postcard), the types consensus and the ledger both
//! speak ([`types`]: `Height`, `Round`, `Hash32`, `BlockHash`, `PublicKey`,
//! `Signature`, `Validator`), and the commit vote and certificate with the
//! one certificate check ([`certificate`]), and the bytes a prevote or
//! precommit is signed over, with the signed vote an equivocation is
//! proved by ([`vote`]).
//!
//! Must not know about: transactions, blocks, consensus rules, storage,
//! networking. It depends on serde, postcard, sha2 and ed25519-dalek.
//!
//! Invariants: every tag is distinct, ASCII, at most 255 bytes and starts
//! with `custody/` (checked by this crate's tests); a tag never changes once
//! released (a new layout gets a new tag), so archives written today verify
//! with every later version. A value has one byte string: the decoder
//! refuses every other.

pub mod certificate;
pub mod encoding;
pub mod fixed_bytes;
pub mod signature;
pub mod tags;
pub mod types;
pub mod vote;

pub use certificate::{
    CertificateError, CommitCertificate, CommitSignature, CommitVote, VotingPower,
};
pub use types::{BlockHash, Hash32, Height, PublicKey, Round, Signature, Validator};
pub use vote::{SignedVote, VoteKind};

/// The bytes that bind a sealed text to one document and one field: its
/// associated data, `tagged("custody/sealed-text/v1", document id || 0x00
/// || field)`. A document id never holds a zero byte, so the split is
/// unambiguous. Shared by the ledger (which names it) and the CLI's
/// envelope module (which seals and opens).
pub fn sealed_text_associated_data(document_id: &str, field: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(document_id.len() + 1 + field.len());
    body.extend_from_slice(document_id.as_bytes());
    body.push(0);
    body.extend_from_slice(field.as_bytes());
    tagged(tags::SEALED_TEXT, &body)
}

/// The HKDF-SHA256 info that derives a document's metadata key from its
/// data key: `tagged("custody/metadata-key/v1", document id)`.
pub fn metadata_key_info(document_id: &str) -> Vec<u8> {
    tagged(tags::METADATA_KEY, document_id.as_bytes())
}

/// `tagged(tag, body) = u8(len(tag)) || tag || body`: the domain
/// separation in front of everything Custody hashes or signs
/// (`docs/format.md`).
pub fn tagged(tag: &str, body: &[u8]) -> Vec<u8> {
    debug_assert!(tags::is_well_formed(tag), "tag {tag:?} is not well formed");
    let mut out = Vec::with_capacity(1 + tag.len() + body.len());
    // Tags are at most 255 bytes (checked by the registry's tests).
    out.push(u8::try_from(tag.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_bytes_are_length_tag_then_body() {
        let bytes = tagged(tags::TX_ID, b"ab");
        assert_eq!(bytes[0] as usize, tags::TX_ID.len());
        assert_eq!(&bytes[1..1 + tags::TX_ID.len()], tags::TX_ID.as_bytes());
        assert_eq!(&bytes[1 + tags::TX_ID.len()..], b"ab");
    }
}
