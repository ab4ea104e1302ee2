//! Transactions: every membership, governance and archive action.
//!
//! A transaction is `(format version, chain id, signer, nonce, body)` signed
//! by exactly one member with ed25519 over `tagged("custody/tx/v1",
//! postcard(payload))`. Its id is `SHA-256(tagged("custody/tx-id/v1",
//! postcard(signed transaction)))`.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::encoding::{self, tags, DecodeError};
use crate::evidence::SignedVote;
use crate::reads::ReadOutcome;
use crate::records::{DepartmentKeys, NewDepartment, Parameters};
use crate::sealed::SealedText;
use crate::types::{
    Classification, DepartmentId, DocumentId, EventHash, Fixity, Format, Hash32, Nonce, ProposalId,
    PublicKey, Retention, Role, Signature, Timestamp, TxId, WrappedKey, FORMAT_VERSION,
};

/// Longest free-text field (titles, reasons, purposes, names), in bytes.
pub const TEXT_BYTES_MAX: usize = 1024;
/// Longest short label (record type, MIME type, PRONOM id), in bytes.
pub const LABEL_BYTES_MAX: usize = 128;

// A label is a short text: the two limits must not cross.
const _: () = assert!(LABEL_BYTES_MAX <= TEXT_BYTES_MAX);

/// Why a document was amended. New reasons are appended: a variant's
/// index is its encoding, so every earlier amendment keeps its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AmendReason {
    Correction,
    FormatMigration,
    /// Parts of the record withheld from the new version (the earlier
    /// version stays as it was, under its own data key).
    Redaction,
}

/// Outcome of a fixity check.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixityResult {
    Intact,
    Mismatch,
}

/// A change to the federation, executed once departments holding more than
/// 2/3 of the voting power approved it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GovernanceChange {
    AddDepartment(NewDepartment),
    RemoveDepartment {
        department: DepartmentId,
    },
    RotateDepartmentKeys {
        department: DepartmentId,
        keys: DepartmentKeys,
    },
    ChangeParameters(Parameters),
}

/// The action a transaction performs. Field order is part of the format.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxBody {
    // Membership: signed by an admin of the member's department.
    EnrollMember {
        member: PublicKey,
        department: DepartmentId,
        name: String,
        roles: Vec<Role>,
        clearance: Classification,
    },
    UpdateMember {
        member: PublicKey,
        roles: Vec<Role>,
        clearance: Classification,
    },
    RevokeMember {
        member: PublicKey,
        reason: String,
    },
    // Governance: signed by department admins.
    ProposeChange {
        change: GovernanceChange,
    },
    ApproveChange {
        proposal: ProposalId,
    },
    // Archive lifecycle.
    Register {
        document: DocumentId,
        title: String,
        record_type: String,
        department: DepartmentId,
        created: Timestamp,
        classification: Classification,
        retention: Retention,
        format: Format,
        plaintext: Fixity,
        ciphertext: Fixity,
        subject_tag: Option<Hash32>,
        wrapped_key: WrappedKey,
    },
    OfferTransfer {
        document: DocumentId,
        previous_event: EventHash,
        to: DepartmentId,
        wrapped_key: WrappedKey,
        /// Block time after which the offer lapses; `None` uses the
        /// `offer_expiry_default_ms` parameter from the offer's block time.
        expires_at: Option<Timestamp>,
    },
    AcceptTransfer {
        document: DocumentId,
        previous_event: EventHash,
        /// The ciphertext SHA-256 the receiver checked the blob against.
        ciphertext_sha256: Hash32,
    },
    RejectTransfer {
        document: DocumentId,
        previous_event: EventHash,
        reason: String,
    },
    CancelTransfer {
        document: DocumentId,
        previous_event: EventHash,
    },
    GrantAccess {
        document: DocumentId,
        previous_event: EventHash,
        to: DepartmentId,
        wrapped_key: WrappedKey,
        expires_at: Timestamp,
    },
    RevokeAccess {
        document: DocumentId,
        previous_event: EventHash,
        from: DepartmentId,
    },
    RecordAccess {
        document: DocumentId,
        previous_event: EventHash,
        purpose: String,
        /// The ciphertext SHA-256 that will be served.
        ciphertext_sha256: Hash32,
    },
    Amend {
        document: DocumentId,
        previous_event: EventHash,
        reason: AmendReason,
        note: String,
        format: Format,
        plaintext: Fixity,
        ciphertext: Fixity,
        wrapped_key: WrappedKey,
    },
    RecordFixityCheck {
        document: DocumentId,
        previous_event: EventHash,
        ciphertext_sha256: Hash32,
        result: FixityResult,
        note: String,
    },
    Dispose {
        document: DocumentId,
        previous_event: EventHash,
        reason: String,
    },
    // Format version 2. Signed by a department's node key (its libp2p
    // identity, `DepartmentKeys::node_key`), not by a member: what that
    // node did with one read request.
    AttestRead {
        department: DepartmentId,
        outcome: ReadOutcome,
    },
    // Format version TX_FORMAT_VERSION_EVIDENCE. Signed by the reporting
    // department's node key: two votes one validator signed for one
    // height, round and kind, naming different blocks.
    SubmitEvidence {
        reporter: DepartmentId,
        first: SignedVote,
        second: SignedVote,
    },
    // Format version TX_FORMAT_VERSION_SEALED: the sealed counterparts of
    // the kinds that carry free text about a document. Each free-text
    // field is a `SealedText` under the document's metadata key (see
    // `crate::sealed`); every other field is as in its version 1 kind.
    RegisterSealed {
        document: DocumentId,
        title: SealedText,
        record_type: String,
        department: DepartmentId,
        created: Timestamp,
        classification: Classification,
        retention: Retention,
        format: Format,
        plaintext: Fixity,
        ciphertext: Fixity,
        subject_tag: Option<Hash32>,
        wrapped_key: WrappedKey,
    },
    RejectTransferSealed {
        document: DocumentId,
        previous_event: EventHash,
        reason: SealedText,
    },
    RecordAccessSealed {
        document: DocumentId,
        previous_event: EventHash,
        purpose: SealedText,
        ciphertext_sha256: Hash32,
    },
    /// A new version under a new data key: the title is sealed again under
    /// the new version's metadata key.
    AmendSealed {
        document: DocumentId,
        previous_event: EventHash,
        reason: AmendReason,
        note: SealedText,
        title: SealedText,
        format: Format,
        plaintext: Fixity,
        ciphertext: Fixity,
        wrapped_key: WrappedKey,
    },
    RecordFixityCheckSealed {
        document: DocumentId,
        previous_event: EventHash,
        ciphertext_sha256: Hash32,
        result: FixityResult,
        note: SealedText,
    },
    DisposeSealed {
        document: DocumentId,
        previous_event: EventHash,
        reason: SealedText,
    },
}

impl TxBody {
    /// Short kebab-case name of the kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::EnrollMember { .. } => "enroll-member",
            TxBody::UpdateMember { .. } => "update-member",
            TxBody::RevokeMember { .. } => "revoke-member",
            TxBody::ProposeChange { .. } => "propose-change",
            TxBody::ApproveChange { .. } => "approve-change",
            TxBody::Register { .. } => "register",
            TxBody::OfferTransfer { .. } => "offer-transfer",
            TxBody::AcceptTransfer { .. } => "accept-transfer",
            TxBody::RejectTransfer { .. } => "reject-transfer",
            TxBody::CancelTransfer { .. } => "cancel-transfer",
            TxBody::GrantAccess { .. } => "grant-access",
            TxBody::RevokeAccess { .. } => "revoke-access",
            TxBody::RecordAccess { .. } => "record-access",
            TxBody::Amend { .. } => "amend",
            TxBody::RecordFixityCheck { .. } => "record-fixity-check",
            TxBody::Dispose { .. } => "dispose",
            TxBody::AttestRead { .. } => "attest-read",
            TxBody::SubmitEvidence { .. } => "submit-evidence",
            TxBody::RegisterSealed { .. } => "register-sealed",
            TxBody::RejectTransferSealed { .. } => "reject-transfer-sealed",
            TxBody::RecordAccessSealed { .. } => "record-access-sealed",
            TxBody::AmendSealed { .. } => "amend-sealed",
            TxBody::RecordFixityCheckSealed { .. } => "record-fixity-check-sealed",
            TxBody::DisposeSealed { .. } => "dispose-sealed",
        }
    }

    /// The document this transaction acts on, if any.
    pub fn document(&self) -> Option<&DocumentId> {
        match self {
            TxBody::Register { document, .. }
            | TxBody::OfferTransfer { document, .. }
            | TxBody::AcceptTransfer { document, .. }
            | TxBody::RejectTransfer { document, .. }
            | TxBody::CancelTransfer { document, .. }
            | TxBody::GrantAccess { document, .. }
            | TxBody::RevokeAccess { document, .. }
            | TxBody::RecordAccess { document, .. }
            | TxBody::Amend { document, .. }
            | TxBody::RecordFixityCheck { document, .. }
            | TxBody::Dispose { document, .. }
            | TxBody::RegisterSealed { document, .. }
            | TxBody::RejectTransferSealed { document, .. }
            | TxBody::RecordAccessSealed { document, .. }
            | TxBody::AmendSealed { document, .. }
            | TxBody::RecordFixityCheckSealed { document, .. }
            | TxBody::DisposeSealed { document, .. } => Some(document),
            TxBody::AttestRead { outcome, .. } => Some(outcome.document()),
            _ => None,
        }
    }

    /// The transaction format version a payload carrying this body must
    /// state: 1 for every kind of version 1, and for each later kind the
    /// version that added it. A version 1 chain therefore keeps its exact
    /// bytes.
    pub fn format_version(&self) -> u16 {
        match self {
            TxBody::AttestRead { .. } => TX_FORMAT_VERSION_2,
            TxBody::SubmitEvidence { .. } => TX_FORMAT_VERSION_EVIDENCE,
            TxBody::RegisterSealed { .. }
            | TxBody::RejectTransferSealed { .. }
            | TxBody::RecordAccessSealed { .. }
            | TxBody::AmendSealed { .. }
            | TxBody::RecordFixityCheckSealed { .. }
            | TxBody::DisposeSealed { .. } => TX_FORMAT_VERSION_SEALED,
            _ => FORMAT_VERSION,
        }
    }

    /// Whether this kind is signed by a department's node key rather than
    /// by a member.
    pub fn signed_by_node(&self) -> bool {
        matches!(
            self,
            TxBody::AttestRead { .. } | TxBody::SubmitEvidence { .. }
        )
    }
}

/// Transaction format version 2: version 1 plus `attest-read`.
pub const TX_FORMAT_VERSION_2: u16 = 2;
/// The transaction format version that adds `submit-evidence`. Every use
/// names this constant, so that renumbering it is a one-line change.
pub const TX_FORMAT_VERSION_EVIDENCE: u16 = 3;
/// The transaction format version that adds the sealed kinds
/// (`register-sealed` and the others whose free text is encrypted).
pub const TX_FORMAT_VERSION_SEALED: u16 = 4;

/// Every transaction format version this build reads.
pub const TX_FORMAT_VERSIONS: &[u16] = &[
    FORMAT_VERSION,
    TX_FORMAT_VERSION_2,
    TX_FORMAT_VERSION_EVIDENCE,
    TX_FORMAT_VERSION_SEALED,
];

/// Everything a signer signs.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TxPayload {
    pub format_version: u16,
    pub chain_id: String,
    pub signer: PublicKey,
    pub nonce: Nonce,
    pub body: TxBody,
}

/// A transaction with its signature.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SignedTransaction {
    pub payload: TxPayload,
    pub signature: Signature,
}

impl SignedTransaction {
    /// Sign `body` as the member holding `key`.
    pub fn sign(body: TxBody, key: &SigningKey, nonce: Nonce, chain_id: &str) -> Self {
        let payload = TxPayload {
            format_version: body.format_version(),
            chain_id: chain_id.to_string(),
            signer: encoding::public_key_of(key),
            nonce,
            body,
        };
        let signature = encoding::sign(key, tags::TX_PAYLOAD, &payload);
        SignedTransaction { payload, signature }
    }

    /// The transaction id.
    pub fn id(&self) -> TxId {
        Self::id_of_encoded(&self.to_bytes())
    }

    /// The bytes the signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        encoding::signing_bytes(tags::TX_PAYLOAD, &self.payload)
    }

    /// Check this transaction's signature alone.
    pub fn verify_signature(&self) -> bool {
        encoding::verify_bytes(&self.payload.signer, &self.signing_bytes(), &self.signature)
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decode canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes)
    }

    /// Decode canonical bytes and compute the transaction's id from them:
    /// the id hashes exactly these bytes, which decoding proved canonical,
    /// so the transaction is not encoded again.
    pub fn from_bytes_with_id(bytes: &[u8]) -> Result<(Self, TxId), DecodeError> {
        let tx = Self::from_bytes(bytes)?;
        Ok((tx, Self::id_of_encoded(bytes)))
    }

    /// The id of the transaction whose canonical encoding is `bytes`,
    /// without decoding them. Bytes that are not a canonical encoding give
    /// an id no transaction has (it would take a SHA-256 collision), so a
    /// match against a known id identifies that very transaction: what a
    /// node uses to skip gossip it already holds before decoding it.
    pub fn id_of_encoded(bytes: &[u8]) -> TxId {
        encoding::sha256(&encoding::tagged(tags::TX_ID, bytes)).into()
    }
}

/// Verify many transactions' signatures with one ed25519 batch. Returns the
/// indices of the transactions whose signature is invalid (empty when all
/// are valid). The batch is tried first; only when it fails is each
/// signature checked alone to name the culprits. Takes references, so that
/// a caller checking some transactions of a block or a request need not
/// copy them.
pub fn verify_batch<'a>(
    transactions: impl IntoIterator<Item = &'a SignedTransaction>,
) -> Vec<usize> {
    let transactions: Vec<&SignedTransaction> = transactions.into_iter().collect();
    let messages: Vec<Vec<u8>> = transactions.iter().map(|t| t.signing_bytes()).collect();
    let items: Vec<(PublicKey, &[u8], Signature)> = transactions
        .iter()
        .zip(&messages)
        .map(|(t, m)| (t.payload.signer, m.as_slice(), t.signature))
        .collect();
    if encoding::verify_many(&items) {
        return Vec::new();
    }
    let bad: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (key, message, signature))| !encoding::verify_bytes(key, message, signature))
        .map(|(index, _)| index)
        .collect();
    bad
}
