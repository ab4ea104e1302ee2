//! custody-format: the byte-level contract that the ledger and consensus
//! share, and the lowest crate of the workspace.
//!
//! Owns: the one registry of domain-separation tags ([`tags`]), the tagged
//! byte string every hash and signature covers ([`tagged`]), and the serde
//! form of fixed-size byte arrays ([`fixed_bytes`]: lowercase hex in JSON
//! and TOML, raw bytes with no length prefix in postcard).
//!
//! Must not know about: transactions, blocks, consensus rounds, storage,
//! networking. It depends on serde and hex only.
//!
//! Invariants: every tag is distinct, ASCII, at most 255 bytes and starts
//! with `custody/` (checked by this crate's tests); a tag never changes once
//! released (a new layout gets a new tag), so archives written today verify
//! with every later version.

pub mod fixed_bytes;
pub mod tags;

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
