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

/// Length of a shred share, and of its commitment, in bytes.
pub const SHRED_SHARE_BYTES: usize = 32;

/// The commitment to a shred share that a version 2 envelope's header
/// carries: `SHA-256(tagged("custody/shred-share/v1", share))`. The node
/// checks a share it is given or fetches against it; the envelope's
/// SHA-256, which the chain records, covers it.
pub fn shred_share_commitment(share: &[u8; SHRED_SHARE_BYTES]) -> [u8; SHRED_SHARE_BYTES] {
    use sha2::Digest;
    sha2::Sha256::digest(tagged(tags::SHRED_SHARE, share)).into()
}

/// The HKDF-SHA256 info that derives a version 2 envelope's content key:
/// `tagged("custody/content-key/v1", document id)`.
pub fn content_key_info(document_id: &str) -> Vec<u8> {
    tagged(tags::CONTENT_KEY, document_id.as_bytes())
}

/// The share commitment in the first bytes of an envelope: `Some` for a
/// version 2 envelope (magic `CUSTENV\0`, version byte 2 at offset 8, the
/// commitment at offsets 32..64), `None` for any other bytes.
pub fn envelope_share_commitment(envelope_start: &[u8]) -> Option<[u8; SHRED_SHARE_BYTES]> {
    const MAGIC: &[u8; 8] = b"CUSTENV\0";
    const VERSION_SHRED: u8 = 2;
    const COMMITMENT_OFFSET: usize = 32;
    if envelope_start.get(..8)? != MAGIC || *envelope_start.get(8)? != VERSION_SHRED {
        return None;
    }
    envelope_start
        .get(COMMITMENT_OFFSET..COMMITMENT_OFFSET + SHRED_SHARE_BYTES)?
        .try_into()
        .ok()
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
