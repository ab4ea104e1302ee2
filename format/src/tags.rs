//! Every domain-separation tag and protocol name Custody writes, in one
//! place. The `/v1` suffix is the structure's format version: a new layout
//! gets a new tag, and an old tag is never reused.
//!
//! [`ALL`] lists them; a test checks that they are distinct and well
//! formed, so two structures can never hash or sign to the same bytes.

/// Signature over a transaction's payload (everything but the signature).
pub const TX_PAYLOAD: &str = "custody/tx/v1";
/// Transaction id: hash of the whole signed transaction.
pub const TX_ID: &str = "custody/tx-id/v1";
/// Block hash: hash of the block header.
pub const HEADER: &str = "custody/header/v1";
/// A validator's precommit for a block, the unit of a commit certificate;
/// signed by consensus and checked by the ledger over the same bytes.
pub const COMMIT_VOTE: &str = "custody/commit-vote/v1";
/// Hash of a commit certificate (named by the next block's header).
pub const CERTIFICATE: &str = "custody/certificate/v1";
/// Hash of the genesis: the chain's root of trust.
pub const GENESIS: &str = "custody/genesis/v1";
/// Hash of a validator set (named by every header).
pub const VALIDATOR_SET: &str = "custody/validator-set/v1";
/// Hash of one document event (each document's own hash chain).
pub const EVENT: &str = "custody/event/v1";
/// Hash of the archive state, used to compare two executions.
pub const STATE: &str = "custody/state/v1";
/// A consensus proposal's signed bytes.
pub const PROPOSAL: &str = "custody/proposal/v1";
/// A prevote's signed bytes (for a block or nil).
pub const PREVOTE: &str = "custody/prevote/v1";
/// A precommit for nil (a precommit for a block is a [`COMMIT_VOTE`]).
pub const PRECOMMIT_NIL: &str = "custody/precommit-nil/v1";
/// The header of a chain export file.
pub const EXPORT: &str = "custody/export/v1";
/// The header of an inclusion-proof file.
pub const PROOF_FILE: &str = "custody/proof-file/v1";
/// A member's signed request to read a document's ciphertext.
pub const READ_REQUEST: &str = "custody/read-request/v1";
/// A member's signed upload of a ciphertext to a node's blob store.
pub const BLOB_UPLOAD: &str = "custody/blob-upload/v1";
/// A caller's signed request to read from a node's API.
pub const API_REQUEST: &str = "custody/api-request/v1";
/// HKDF domain of a data key wrapped to a department's X25519 key.
pub const WRAPPED_KEY: &str = "custody/wrapped-key/v1";
/// The header of a key file.
pub const KEY_FILE: &str = "custody/key-file/v1";
/// HKDF info of a document's metadata key, derived from its data key
/// (followed by the document id).
pub const METADATA_KEY: &str = "custody/metadata-key/v1";
/// Associated data of a sealed text: binds it to one document and field.
pub const SEALED_TEXT: &str = "custody/sealed-text/v1";
/// HKDF info of a citizen's receipt code, derived from the federation's
/// subject key (followed by the normalised identity).
pub const SUBJECT_RECEIPT: &str = "custody/subject-receipt/v1";
/// Hash of a receipt code into the subject tag a document record carries.
pub const SUBJECT_TAG: &str = "custody/subject-tag/v1";
/// Hash of a subject key into the fingerprint its key file records (a
/// subject key has no public half).
pub const SUBJECT_KEY_ID: &str = "custody/subject-key-id/v1";
/// HKDF info of a version 2 envelope's content key, derived from the data
/// key and the shred share (followed by the document id).
pub const CONTENT_KEY: &str = "custody/content-key/v1";
/// Hash of a shred share into the commitment a version 2 envelope's header
/// carries.
pub const SHRED_SHARE: &str = "custody/shred-share/v1";

/// Every tag above, for the checks that they are distinct.
pub const ALL: &[&str] = &[
    TX_PAYLOAD,
    TX_ID,
    HEADER,
    COMMIT_VOTE,
    CERTIFICATE,
    GENESIS,
    VALIDATOR_SET,
    EVENT,
    STATE,
    PROPOSAL,
    PREVOTE,
    PRECOMMIT_NIL,
    EXPORT,
    PROOF_FILE,
    READ_REQUEST,
    BLOB_UPLOAD,
    API_REQUEST,
    WRAPPED_KEY,
    KEY_FILE,
    METADATA_KEY,
    SEALED_TEXT,
    SUBJECT_RECEIPT,
    SUBJECT_TAG,
    SUBJECT_KEY_ID,
    CONTENT_KEY,
    SHRED_SHARE,
];

/// ASCII, at most 255 bytes (its length is one byte in [`crate::tagged`]),
/// under `custody/` and ending in a version `/vN`.
pub fn is_well_formed(tag: &str) -> bool {
    let versioned = tag.rsplit_once("/v").is_some_and(|(_, version)| {
        !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())
    });
    tag.is_ascii() && tag.len() <= usize::from(u8::MAX) && tag.starts_with("custody/") && versioned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_tag_is_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for tag in ALL {
            assert!(seen.insert(*tag), "tag {tag} is registered twice");
        }
    }

    #[test]
    fn every_domain_tag_is_well_formed() {
        for tag in ALL {
            assert!(is_well_formed(tag), "tag {tag} is not well formed");
        }
    }

    #[test]
    fn a_tag_without_a_version_is_not_well_formed() {
        assert!(!is_well_formed("custody/tx"));
        assert!(!is_well_formed("other/tx/v1"));
        assert!(!is_well_formed("custody/tx/v"));
    }

    /// Released tags never change: archives signed under them must verify
    /// for decades. This list is the contract; editing it is a format break.
    #[test]
    fn released_tags_keep_their_bytes() {
        assert_eq!(TX_PAYLOAD, "custody/tx/v1");
        assert_eq!(TX_ID, "custody/tx-id/v1");
        assert_eq!(HEADER, "custody/header/v1");
        assert_eq!(COMMIT_VOTE, "custody/commit-vote/v1");
        assert_eq!(CERTIFICATE, "custody/certificate/v1");
        assert_eq!(GENESIS, "custody/genesis/v1");
        assert_eq!(VALIDATOR_SET, "custody/validator-set/v1");
        assert_eq!(EVENT, "custody/event/v1");
        assert_eq!(STATE, "custody/state/v1");
        assert_eq!(PROPOSAL, "custody/proposal/v1");
        assert_eq!(PREVOTE, "custody/prevote/v1");
        assert_eq!(PRECOMMIT_NIL, "custody/precommit-nil/v1");
        assert_eq!(EXPORT, "custody/export/v1");
        assert_eq!(PROOF_FILE, "custody/proof-file/v1");
        assert_eq!(READ_REQUEST, "custody/read-request/v1");
        assert_eq!(WRAPPED_KEY, "custody/wrapped-key/v1");
        assert_eq!(KEY_FILE, "custody/key-file/v1");
        assert_eq!(METADATA_KEY, "custody/metadata-key/v1");
        assert_eq!(SEALED_TEXT, "custody/sealed-text/v1");
        assert_eq!(SUBJECT_RECEIPT, "custody/subject-receipt/v1");
        assert_eq!(SUBJECT_TAG, "custody/subject-tag/v1");
        assert_eq!(SUBJECT_KEY_ID, "custody/subject-key-id/v1");
    }
}
