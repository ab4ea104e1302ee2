//! The archive state's records: departments, members, documents, their
//! events, governance proposals, parameters and validator sets.

use serde::{Deserialize, Serialize};

use crate::encoding::{self, tags};
use crate::sealed::SealedText;
use crate::tx::{AmendReason, FixityResult, GovernanceChange};
use crate::types::{
    Classification, DepartmentId, DocumentId, EventHash, Fixity, Format, Hash32, Height,
    ProposalId, PublicKey, Retention, Role, Timestamp, TxId, WrappedKey,
};

/// Default of [`Parameters::max_block_bytes`].
pub const MAX_BLOCK_BYTES_DEFAULT: u64 = 4 * 1024 * 1024;
/// Default of [`Parameters::max_block_txs`].
pub const MAX_BLOCK_TXS_DEFAULT: u32 = 10_000;

// The default chain parameters pass `genesis::check_parameters`, and a
// default block has room for transactions besides its header and the
// previous block's certificate.
const _: () = assert!(MAX_BLOCK_BYTES_DEFAULT >= crate::genesis::MAX_BLOCK_BYTES_FLOOR);
const _: () = assert!(MAX_BLOCK_BYTES_DEFAULT <= encoding::DECODE_BYTES_MAX as u64);
const _: () = assert!(MAX_BLOCK_BYTES_DEFAULT > crate::block::BLOCK_OVERHEAD_BYTES);
const _: () = assert!(MAX_BLOCK_TXS_DEFAULT > 0);
const _: () = assert!(MAX_BLOCK_TXS_DEFAULT <= crate::genesis::MAX_BLOCK_TXS_CEILING);

/// Chain parameters, set in the genesis and changed by governance.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Parameters {
    /// Largest encoded block, in bytes.
    pub max_block_bytes: u64,
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// How far a block's time may be ahead of or behind a voter's clock.
    pub block_time_skew_ms: u64,
    /// Offer lifetime when the offer names no expiry.
    pub offer_expiry_default_ms: u64,
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            max_block_bytes: MAX_BLOCK_BYTES_DEFAULT,
            max_block_txs: MAX_BLOCK_TXS_DEFAULT,
            block_time_skew_ms: 10_000,
            offer_expiry_default_ms: 30 * 24 * 3600 * 1000,
        }
    }
}

/// A department's keys.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DepartmentKeys {
    /// ed25519 key that signs consensus votes.
    pub validator_key: PublicKey,
    /// libp2p ed25519 identity public key of the department's node.
    pub node_key: PublicKey,
    /// X25519 public key document keys are wrapped to.
    pub encryption_key: PublicKey,
}

/// A member enrolled together with a department (genesis or governance).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct NewMember {
    pub key: PublicKey,
    pub name: String,
    pub roles: Vec<Role>,
    pub clearance: Classification,
}

/// A department as added by genesis or governance.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct NewDepartment {
    pub id: DepartmentId,
    pub name: String,
    pub keys: DepartmentKeys,
    pub voting_power: u64,
    pub admins: Vec<NewMember>,
}

/// A department in the state.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Department {
    pub id: DepartmentId,
    pub name: String,
    pub keys: DepartmentKeys,
    pub voting_power: u64,
    /// Height from which this department is part of the federation.
    pub since: Height,
    /// Documents (not disposed of) of which it is the custodian. A
    /// department holding documents cannot be removed: they would be
    /// orphaned.
    pub documents_held: u64,
}

/// Whether a member may still sign.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberStatus {
    Active,
    Revoked { at: Height },
}

/// A member in the state.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Member {
    pub key: PublicKey,
    pub department: DepartmentId,
    pub name: String,
    pub roles: Vec<Role>,
    pub clearance: Classification,
    pub status: MemberStatus,
    pub enrolled_at: Height,
}

impl Member {
    /// Whether the member holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A pending transfer offer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Offer {
    pub to: DepartmentId,
    pub wrapped_key: WrappedKey,
    pub expires_at: Timestamp,
}

/// A read-access grant to a department other than the custodian.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Grant {
    pub department: DepartmentId,
    pub wrapped_key: WrappedKey,
    pub expires_at: Timestamp,
}

/// Where a document is in its lifecycle.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentStatus {
    Active,
    InTransfer(Offer),
    Disposed,
}

impl DocumentStatus {
    /// Short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            DocumentStatus::Active => "active",
            DocumentStatus::InTransfer(_) => "in-transfer",
            DocumentStatus::Disposed => "disposed",
        }
    }
}

/// Most read grants one document may carry at a time.
pub const GRANTS_PER_DOCUMENT_MAX: usize = 64;

/// An archive record as it stands.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Document {
    pub id: DocumentId,
    pub title: String,
    pub record_type: String,
    pub creating_department: DepartmentId,
    pub created: Timestamp,
    pub classification: Classification,
    pub retention: Retention,
    pub format: Format,
    pub plaintext: Fixity,
    pub ciphertext: Fixity,
    pub subject_tag: Option<Hash32>,
    pub custodian: DepartmentId,
    /// The data key wrapped to the custodian.
    pub custodian_key: WrappedKey,
    pub status: DocumentStatus,
    /// 1 at registration, +1 per amendment.
    pub version: u32,
    pub grants: Vec<Grant>,
    /// Number of events so far; the next event's sequence number.
    pub event_count: u64,
    /// Hash of the latest event.
    pub latest_event: EventHash,
    pub registered_at: Height,
}

impl Document {
    /// Whether the title is sealed: registered with `register-sealed` or
    /// amended with `amend-sealed`. The record then holds an empty title
    /// (a title in the clear is never empty) and the sealed title is the
    /// one of the latest `registered-sealed` or `amended-sealed` event.
    /// The record keeps its version 1 layout, so that the state digest of
    /// every chain without sealed kinds stays what it was.
    pub fn title_is_sealed(&self) -> bool {
        self.title.is_empty()
    }
}

/// What happened to a document.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Registered {
        classification: Classification,
        plaintext: Fixity,
        ciphertext: Fixity,
    },
    Offered {
        to: DepartmentId,
        expires_at: Timestamp,
    },
    Accepted {
        from: DepartmentId,
    },
    Rejected {
        reason: String,
    },
    Cancelled,
    Granted {
        to: DepartmentId,
        expires_at: Timestamp,
    },
    Revoked {
        from: DepartmentId,
    },
    Accessed {
        purpose: String,
        ciphertext_sha256: Hash32,
    },
    Amended {
        version: u32,
        reason: AmendReason,
        note: String,
        previous_plaintext: Fixity,
        previous_ciphertext: Fixity,
        plaintext: Fixity,
        ciphertext: Fixity,
    },
    FixityChecked {
        ciphertext_sha256: Hash32,
        result: FixityResult,
    },
    Disposed {
        reason: String,
    },
    // The events of the sealed kinds (transaction format version 4),
    // appended so that every earlier event keeps its bytes. A sealed
    // fixity check records `FixityChecked`: its note is not kept in the
    // event. The sealed title of a document is kept in the event that set
    // it (registration or amendment), not in the document's record.
    RegisteredSealed {
        classification: Classification,
        plaintext: Fixity,
        ciphertext: Fixity,
        title: SealedText,
    },
    RejectedSealed {
        reason: SealedText,
    },
    AccessedSealed {
        purpose: SealedText,
        ciphertext_sha256: Hash32,
    },
    AmendedSealed {
        version: u32,
        reason: AmendReason,
        note: SealedText,
        previous_plaintext: Fixity,
        previous_ciphertext: Fixity,
        plaintext: Fixity,
        ciphertext: Fixity,
        title: SealedText,
    },
    DisposedSealed {
        reason: SealedText,
    },
}

impl EventKind {
    /// The format version of an event of this kind: 1, or 4 for the events
    /// only the sealed kinds record.
    pub fn format_version(&self) -> u16 {
        match self {
            EventKind::RegisteredSealed { .. }
            | EventKind::RejectedSealed { .. }
            | EventKind::AccessedSealed { .. }
            | EventKind::AmendedSealed { .. }
            | EventKind::DisposedSealed { .. } => crate::tx::TX_FORMAT_VERSION_SEALED,
            _ => crate::types::FORMAT_VERSION,
        }
    }

    /// The version a registration or an amendment (in the clear or
    /// sealed) records, with its plaintext and ciphertext fixity.
    pub fn new_version(&self) -> Option<(u32, &Fixity, &Fixity)> {
        match self {
            EventKind::Registered {
                plaintext,
                ciphertext,
                ..
            }
            | EventKind::RegisteredSealed {
                plaintext,
                ciphertext,
                ..
            } => Some((1, plaintext, ciphertext)),
            EventKind::Amended {
                version,
                plaintext,
                ciphertext,
                ..
            }
            | EventKind::AmendedSealed {
                version,
                plaintext,
                ciphertext,
                ..
            } => Some((*version, plaintext, ciphertext)),
            _ => None,
        }
    }

    /// The sealed title this event sets, if it sets one.
    pub fn sealed_title(&self) -> Option<&SealedText> {
        match self {
            EventKind::RegisteredSealed { title, .. } | EventKind::AmendedSealed { title, .. } => {
                Some(title)
            }
            _ => None,
        }
    }
}

/// One event in a document's own hash chain.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DocumentEvent {
    pub format_version: u16,
    pub document: DocumentId,
    /// 0 for the registration, then +1 per event.
    pub sequence: u64,
    /// Hash of the previous event on this document (zero for the first).
    pub previous: EventHash,
    pub height: Height,
    pub time: Timestamp,
    pub tx: TxId,
    /// The member who signed, and their department.
    pub member: PublicKey,
    pub department: DepartmentId,
    pub kind: EventKind,
}

impl DocumentEvent {
    /// `SHA-256(tagged("custody/event/v1", postcard(event)))`.
    pub fn hash(&self) -> EventHash {
        encoding::hash_of(tags::EVENT, self).into()
    }
}

/// A governance proposal.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Proposal {
    pub id: ProposalId,
    pub change: GovernanceChange,
    pub proposed_by: DepartmentId,
    pub proposed_at: Height,
    /// Departments that approved, sorted, each once.
    pub approvals: Vec<DepartmentId>,
    /// Height at which it executed, once it has.
    pub executed_at: Option<Height>,
}

/// One validator: its ed25519 key and voting power (shared with
/// consensus, defined in `custody-format`).
pub use custody_format::types::Validator;

/// The validators in force at a height, sorted by key, keys distinct.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct ValidatorSet {
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    /// Build a set, sorting by key.
    pub fn new(mut validators: Vec<Validator>) -> Self {
        validators.sort_by_key(|v| v.key);
        ValidatorSet { validators }
    }

    /// Sum of voting power.
    pub fn total_power(&self) -> u128 {
        self.validators.iter().map(|v| u128::from(v.power)).sum()
    }

    /// Voting power of a key, if it is in the set.
    pub fn power_of(&self, key: &PublicKey) -> Option<u64> {
        self.validators
            .binary_search_by(|v| v.key.cmp(key))
            .ok()
            .map(|i| self.validators[i].power)
    }

    /// `SHA-256(tagged("custody/validator-set/v1", postcard(set)))`.
    pub fn hash(&self) -> Hash32 {
        encoding::hash_of(tags::VALIDATOR_SET, self)
    }

    /// Whether `signed` power is more than 2/3 of the total (`3s > 2t`).
    pub fn is_supermajority(&self, signed: u128) -> bool {
        custody_format::certificate::is_quorum(signed, self.total_power())
    }
}

impl custody_format::certificate::VotingPower for ValidatorSet {
    fn voting_power_of(&self, key: &PublicKey) -> Option<u64> {
        self.power_of(key)
    }

    fn voting_power_total(&self) -> u128 {
        self.total_power()
    }
}

/// Where a transaction sits in the chain.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TxLocation {
    pub height: Height,
    pub index: u32,
}
