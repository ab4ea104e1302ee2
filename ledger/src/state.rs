//! The archive state machine: pure, deterministic, no I/O.
//!
//! `apply_block(view, block)` checks a block against the state it reads
//! through [`StateView`] and returns the [`StateChanges`] it makes, or a
//! [`Refusal`] naming the transaction and the rule it breaks. The same rules
//! run against the in-memory [`MemoryState`] (tests, verification) and the
//! sled store. Time is always block time.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::block::Block;
use crate::certificate::CertificateError;
use crate::encoding::{self, tags};
use crate::genesis::{self, Genesis};
use crate::records::{
    Department, Document, DocumentEvent, DocumentStatus, EventKind, Grant, Member, MemberStatus,
    NewDepartment, Offer, Parameters, Proposal, TxLocation, Validator, ValidatorSet,
    GRANTS_PER_DOCUMENT_MAX,
};
use crate::tx::{GovernanceChange, SignedTransaction, TxBody, LABEL_BYTES_MAX, TEXT_BYTES_MAX};
use crate::types::{
    BlockHash, Classification, DepartmentId, DocumentId, EventHash, Format, Hash32, Height, Nonce,
    ProposalId, PublicKey, Retention, Role, Timestamp, TxId, WrappedKey, FORMAT_VERSION,
    WRAPPED_KEY_BYTES_MAX, YEAR_MS,
};

/// The chain's position: what the next block must extend.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct ChainInfo {
    pub chain_id: String,
    pub genesis_hash: Hash32,
    /// Last committed height (0 before the first block).
    pub height: Height,
    /// Hash of the last block (the genesis hash at height 0).
    pub last_block_hash: BlockHash,
    /// Time of the last block (the genesis time at height 0).
    pub last_time: Timestamp,
    /// Validator set in force at `height` (signs the last block's
    /// certificate; the genesis set at height 0).
    pub last_validator_set: ValidatorSet,
    /// Validator set in force at `height + 1`.
    pub validator_set: ValidatorSet,
}

/// A failure to read state (only the store can fail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state could not be read: {0}")]
pub struct ViewError(pub String);

/// Read access to the archive state as of the last committed block.
pub trait StateView {
    fn chain(&self) -> Result<ChainInfo, ViewError>;
    fn parameters(&self) -> Result<Parameters, ViewError>;
    fn department(&self, id: &DepartmentId) -> Result<Option<Department>, ViewError>;
    /// Every department, sorted by id (bounded by governance, not by users).
    fn departments(&self) -> Result<Vec<Department>, ViewError>;
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, ViewError>;
    /// Last nonce used by `signer` (0 if it never signed).
    fn nonce(&self, signer: &PublicKey) -> Result<Nonce, ViewError>;
    fn document(&self, id: &DocumentId) -> Result<Option<Document>, ViewError>;
    fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, ViewError>;
}

/// Everything one block (or the genesis) changes, written by the store in
/// one atomic batch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StateChanges {
    pub chain: ChainInfo,
    pub parameters: Option<Parameters>,
    /// `None` removes the department.
    pub departments: BTreeMap<DepartmentId, Option<Department>>,
    pub members: BTreeMap<PublicKey, Member>,
    pub nonces: BTreeMap<PublicKey, Nonce>,
    pub documents: BTreeMap<DocumentId, Document>,
    pub proposals: BTreeMap<ProposalId, Proposal>,
    /// New document events, in order.
    pub events: Vec<DocumentEvent>,
    /// Where each of the block's transactions sits.
    pub tx_locations: Vec<(TxId, TxLocation)>,
    /// Set when the validator set in force from `chain.height + 1` differs
    /// from the one before.
    pub validator_set_changed: bool,
}

impl StateChanges {
    fn empty(chain: ChainInfo) -> Self {
        StateChanges {
            chain,
            parameters: None,
            departments: BTreeMap::new(),
            members: BTreeMap::new(),
            nonces: BTreeMap::new(),
            documents: BTreeMap::new(),
            proposals: BTreeMap::new(),
            events: Vec::new(),
            tx_locations: Vec::new(),
            validator_set_changed: false,
        }
    }
}

/// Rules a block header and its certificate must follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderRefusal {
    #[error("block format version {0} is not supported (this build reads version 1)")]
    UnsupportedFormatVersion(u16),
    #[error("block is for chain `{found}`, this chain is `{expected}`")]
    WrongChainId { expected: String, found: String },
    #[error("block height is {found}, the next height is {expected}")]
    WrongHeight { expected: Height, found: Height },
    #[error("block names previous block {found}, the last block is {expected}")]
    WrongPreviousHash {
        expected: BlockHash,
        found: BlockHash,
    },
    #[error("block time {time} ms is not after the previous block's time {parent} ms")]
    TimeNotAfterParent { time: Timestamp, parent: Timestamp },
    #[error("block has {count} transactions, the limit is {max}")]
    TooManyTransactions { count: usize, max: u32 },
    #[error("block is {size} bytes, the limit is {max}")]
    TooLarge { size: u64, max: u64 },
    #[error("transaction Merkle root in the header does not match the transactions")]
    TxRootMismatch,
    #[error("header names validator set {found}, the set in force is {expected}")]
    ValidatorSetMismatch { expected: Hash32, found: Hash32 },
    #[error("proposer {0} is not a validator at this height")]
    ProposerNotValidator(PublicKey),
    #[error("block at height 1 must not carry a previous commit certificate")]
    UnexpectedLastCommit,
    #[error("block carries no commit certificate for the previous block")]
    MissingLastCommit,
    #[error("header's last-commit hash does not match the certificate carried")]
    LastCommitHashMismatch,
    #[error("certificate for the previous block is invalid: {0}")]
    LastCommitInvalid(CertificateError),
}

impl HeaderRefusal {
    /// A stable machine-readable code, one per variant (the snake_case
    /// variant name): clients match on it, so it never changes.
    pub fn code(&self) -> &'static str {
        match self {
            HeaderRefusal::UnsupportedFormatVersion(..) => "unsupported_format_version",
            HeaderRefusal::WrongChainId { .. } => "wrong_chain_id",
            HeaderRefusal::WrongHeight { .. } => "wrong_height",
            HeaderRefusal::WrongPreviousHash { .. } => "wrong_previous_hash",
            HeaderRefusal::TimeNotAfterParent { .. } => "time_not_after_parent",
            HeaderRefusal::TooManyTransactions { .. } => "too_many_transactions",
            HeaderRefusal::TooLarge { .. } => "too_large",
            HeaderRefusal::TxRootMismatch => "tx_root_mismatch",
            HeaderRefusal::ValidatorSetMismatch { .. } => "validator_set_mismatch",
            HeaderRefusal::ProposerNotValidator(..) => "proposer_not_validator",
            HeaderRefusal::UnexpectedLastCommit => "unexpected_last_commit",
            HeaderRefusal::MissingLastCommit => "missing_last_commit",
            HeaderRefusal::LastCommitHashMismatch => "last_commit_hash_mismatch",
            HeaderRefusal::LastCommitInvalid(..) => "last_commit_invalid",
        }
    }
}

/// Rules a transaction must follow; one variant per rule, each message
/// written for the clerk who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxRefusal {
    #[error("transaction format version {0} is not supported (this build reads version 1)")]
    UnsupportedFormatVersion(u16),
    #[error("transaction is for chain `{found}`, this chain is `{expected}`")]
    WrongChainId { expected: String, found: String },
    #[error("signature does not match the signer's key and the transaction's content")]
    BadSignature,
    #[error("nonce is {found}, the signer's next nonce is {expected}")]
    WrongNonce { expected: Nonce, found: Nonce },
    #[error("signer {0} is not an enrolled member")]
    UnknownSigner(PublicKey),
    #[error("signer {0} was revoked and can no longer sign")]
    SignerRevoked(PublicKey),
    #[error("signer's department `{0}` is no longer part of the federation")]
    SignerDepartmentRemoved(DepartmentId),
    #[error("this action needs the `{needed}` role, which the signer does not have")]
    MissingRole { needed: Role },
    #[error("this action needs the `clerk` or `auditor` role")]
    NeitherClerkNorAuditor,
    #[error("the signer belongs to `{signer}`, but this action is for department `{needed}`")]
    WrongDepartment {
        signer: DepartmentId,
        needed: DepartmentId,
    },
    #[error("clearance `{clearance}` is below the document's classification `{classification}`")]
    ClearanceTooLow {
        clearance: Classification,
        classification: Classification,
    },
    #[error("field `{field}` is longer than {max} bytes")]
    TextTooLong { field: &'static str, max: usize },
    #[error("field `{0}` must not be empty")]
    EmptyField(&'static str),
    #[error("a member needs at least one role, each listed once")]
    InvalidRoles,
    #[error("key {0} is a weak (small-order) ed25519 key and cannot be enrolled")]
    WeakKey(PublicKey),
    #[error("department `{0}` does not exist")]
    UnknownDepartment(DepartmentId),
    #[error("member {0} is not enrolled")]
    UnknownMember(PublicKey),
    #[error("key {0} is already enrolled (keys are never reused, even after revocation)")]
    MemberAlreadyEnrolled(PublicKey),
    #[error("member {0} is revoked")]
    MemberRevoked(PublicKey),
    #[error("department `{0}` already exists")]
    DepartmentExists(DepartmentId),
    #[error("validator key {0} is already used by another department")]
    ValidatorKeyInUse(PublicKey),
    #[error("a department needs voting power of at least 1")]
    ZeroVotingPower,
    #[error("a new department needs at least one admin")]
    NoAdmin,
    #[error("department `{department}` still holds {count} documents; transfer or dispose of them first")]
    DepartmentHoldsDocuments {
        department: DepartmentId,
        count: u64,
    },
    #[error("the last department cannot be removed")]
    LastDepartment,
    #[error("parameter `{0}` is out of range")]
    BadParameter(&'static str),
    #[error("proposal {0} does not exist")]
    UnknownProposal(ProposalId),
    #[error("proposal {0} was already executed")]
    ProposalAlreadyExecuted(ProposalId),
    #[error("department `{0}` already approved this proposal")]
    AlreadyApproved(DepartmentId),
    #[error("creation date {created} ms is after block time {block_time} ms")]
    CreatedInFuture {
        created: Timestamp,
        block_time: Timestamp,
    },
    #[error("document `{0}` is already registered")]
    DocumentAlreadyRegistered(DocumentId),
    #[error("document `{0}` is not registered")]
    UnknownDocument(DocumentId),
    #[error("the transaction names previous event {named}, but the document's latest event is {latest}; refresh and retry")]
    StalePreviousEvent { named: EventHash, latest: EventHash },
    #[error("document `{0}` was disposed of; nothing more can be done with it")]
    DocumentDisposed(DocumentId),
    #[error("document `{0}` is being transferred; accept, reject or cancel the offer first")]
    DocumentInTransfer(DocumentId),
    #[error("the signer's department `{signer}` is not the document's custodian `{custodian}`")]
    NotCustodian {
        signer: DepartmentId,
        custodian: DepartmentId,
    },
    #[error("a document cannot be offered to its own custodian")]
    OfferToSelf,
    #[error("document `{0}` has no pending transfer offer")]
    NoPendingOffer(DocumentId),
    #[error("the offer is addressed to `{to}`, not to the signer's department `{signer}`")]
    NotOfferRecipient {
        to: DepartmentId,
        signer: DepartmentId,
    },
    #[error("the offer expired at {expired_at} ms; block time is {block_time} ms")]
    OfferExpired {
        expired_at: Timestamp,
        block_time: Timestamp,
    },
    #[error("expiry {expires_at} ms is not after block time {block_time} ms")]
    ExpiryNotInFuture {
        expires_at: Timestamp,
        block_time: Timestamp,
    },
    #[error("the checked ciphertext hash {checked} differs from the recorded {recorded}")]
    FixityMismatch { checked: Hash32, recorded: Hash32 },
    #[error("the custodian already has access; grant to another department")]
    GrantToCustodian,
    #[error("document already has {0} grants, the most allowed")]
    TooManyGrants(usize),
    #[error("department `{0}` has no grant on this document")]
    NoSuchGrant(DepartmentId),
    #[error(
        "department `{0}` is not the custodian, holds no unexpired grant and has no pending offer"
    )]
    NoAccessRight(DepartmentId),
    #[error("ciphertext hash {named} is not the document's current ciphertext {current}")]
    CiphertextMismatch { named: Hash32, current: Hash32 },
    #[error("wrapped key must be 1 to {max} bytes")]
    WrappedKeyInvalid { max: usize },
    #[error("document is kept permanently and cannot be disposed of")]
    RetentionPermanent,
    #[error("retention period runs until {until} ms; block time is {block_time} ms")]
    RetentionNotElapsed {
        until: Timestamp,
        block_time: Timestamp,
    },
    #[error("{0}")]
    Storage(ViewError),
}

impl TxRefusal {
    /// A stable machine-readable code, one per variant (the snake_case
    /// variant name): clients match on it, so it never changes.
    pub fn code(&self) -> &'static str {
        match self {
            TxRefusal::UnsupportedFormatVersion(..) => "unsupported_format_version",
            TxRefusal::WrongChainId { .. } => "wrong_chain_id",
            TxRefusal::BadSignature => "bad_signature",
            TxRefusal::WrongNonce { .. } => "wrong_nonce",
            TxRefusal::UnknownSigner(..) => "unknown_signer",
            TxRefusal::SignerRevoked(..) => "signer_revoked",
            TxRefusal::SignerDepartmentRemoved(..) => "signer_department_removed",
            TxRefusal::MissingRole { .. } => "missing_role",
            TxRefusal::NeitherClerkNorAuditor => "neither_clerk_nor_auditor",
            TxRefusal::WrongDepartment { .. } => "wrong_department",
            TxRefusal::ClearanceTooLow { .. } => "clearance_too_low",
            TxRefusal::TextTooLong { .. } => "text_too_long",
            TxRefusal::EmptyField(..) => "empty_field",
            TxRefusal::InvalidRoles => "invalid_roles",
            TxRefusal::WeakKey(..) => "weak_key",
            TxRefusal::UnknownDepartment(..) => "unknown_department",
            TxRefusal::UnknownMember(..) => "unknown_member",
            TxRefusal::MemberAlreadyEnrolled(..) => "member_already_enrolled",
            TxRefusal::MemberRevoked(..) => "member_revoked",
            TxRefusal::DepartmentExists(..) => "department_exists",
            TxRefusal::ValidatorKeyInUse(..) => "validator_key_in_use",
            TxRefusal::ZeroVotingPower => "zero_voting_power",
            TxRefusal::NoAdmin => "no_admin",
            TxRefusal::DepartmentHoldsDocuments { .. } => "department_holds_documents",
            TxRefusal::LastDepartment => "last_department",
            TxRefusal::BadParameter(..) => "bad_parameter",
            TxRefusal::UnknownProposal(..) => "unknown_proposal",
            TxRefusal::ProposalAlreadyExecuted(..) => "proposal_already_executed",
            TxRefusal::AlreadyApproved(..) => "already_approved",
            TxRefusal::CreatedInFuture { .. } => "created_in_future",
            TxRefusal::DocumentAlreadyRegistered(..) => "document_already_registered",
            TxRefusal::UnknownDocument(..) => "unknown_document",
            TxRefusal::StalePreviousEvent { .. } => "stale_previous_event",
            TxRefusal::DocumentDisposed(..) => "document_disposed",
            TxRefusal::DocumentInTransfer(..) => "document_in_transfer",
            TxRefusal::NotCustodian { .. } => "not_custodian",
            TxRefusal::OfferToSelf => "offer_to_self",
            TxRefusal::NoPendingOffer(..) => "no_pending_offer",
            TxRefusal::NotOfferRecipient { .. } => "not_offer_recipient",
            TxRefusal::OfferExpired { .. } => "offer_expired",
            TxRefusal::ExpiryNotInFuture { .. } => "expiry_not_in_future",
            TxRefusal::FixityMismatch { .. } => "fixity_mismatch",
            TxRefusal::GrantToCustodian => "grant_to_custodian",
            TxRefusal::TooManyGrants(..) => "too_many_grants",
            TxRefusal::NoSuchGrant(..) => "no_such_grant",
            TxRefusal::NoAccessRight(..) => "no_access_right",
            TxRefusal::CiphertextMismatch { .. } => "ciphertext_mismatch",
            TxRefusal::WrappedKeyInvalid { .. } => "wrapped_key_invalid",
            TxRefusal::RetentionPermanent => "retention_permanent",
            TxRefusal::RetentionNotElapsed { .. } => "retention_not_elapsed",
            TxRefusal::Storage(..) => "storage",
        }
    }
}

/// Why a block is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("block header refused: {0}")]
    Header(HeaderRefusal),
    #[error("transaction #{index} ({tx_id}) refused: {reason}")]
    Transaction {
        index: usize,
        tx_id: TxId,
        reason: TxRefusal,
    },
    #[error("{0}")]
    Storage(ViewError),
}

impl Refusal {
    /// A stable machine-readable code, one per variant (the snake_case
    /// variant name): clients match on it, so it never changes.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Header(..) => "header",
            Refusal::Transaction { .. } => "transaction",
            Refusal::Storage(..) => "storage",
        }
    }
}

impl From<ViewError> for TxRefusal {
    fn from(e: ViewError) -> Self {
        TxRefusal::Storage(e)
    }
}
impl From<ViewError> for Refusal {
    fn from(e: ViewError) -> Self {
        Refusal::Storage(e)
    }
}

/// A view with pending changes layered on top: reads see the changes first.
pub struct Overlay<'a, V: StateView + ?Sized> {
    base: &'a V,
    changes: StateChanges,
}

impl<'a, V: StateView + ?Sized> Overlay<'a, V> {
    /// Start from `base` with no changes.
    pub fn new(base: &'a V) -> Result<Self, ViewError> {
        let chain = base.chain()?;
        Ok(Overlay {
            base,
            changes: StateChanges::empty(chain),
        })
    }

    /// The changes made so far.
    pub fn into_changes(self) -> StateChanges {
        self.changes
    }

    /// The changes made so far, by reference.
    pub fn changes(&self) -> &StateChanges {
        &self.changes
    }

    /// Apply one transaction at `(height, time)`; on refusal nothing changes.
    pub fn apply_transaction(
        &mut self,
        tx: &SignedTransaction,
        index: u32,
        height: Height,
        time: Timestamp,
        signature_checked: bool,
    ) -> Result<(), TxRefusal> {
        let checks = if signature_checked {
            Signatures::AlreadyVerified
        } else {
            Signatures::Verify
        };
        self.apply_identified(tx, tx.id(), index, height, time, checks)
    }

    /// [`Overlay::apply_transaction`] with the transaction id already known
    /// and a choice of what is left to check besides the state rules.
    pub fn apply_identified(
        &mut self,
        tx: &SignedTransaction,
        tx_id: TxId,
        index: u32,
        height: Height,
        time: Timestamp,
        checks: Signatures,
    ) -> Result<(), TxRefusal> {
        let ctx = Context {
            height,
            time,
            tx_id,
            keys_checked: checks == Signatures::AlreadyVerifiedWithKeys,
        };
        // `apply_tx` checks every rule before its first write, so a refused
        // transaction leaves the overlay untouched without a copy.
        apply_tx(self, tx, &ctx, checks != Signatures::Verify)?;
        self.changes
            .tx_locations
            .push((ctx.tx_id, TxLocation { height, index }));
        Ok(())
    }
}

impl<V: StateView + ?Sized> StateView for Overlay<'_, V> {
    fn chain(&self) -> Result<ChainInfo, ViewError> {
        Ok(self.changes.chain.clone())
    }
    fn parameters(&self) -> Result<Parameters, ViewError> {
        match &self.changes.parameters {
            Some(p) => Ok(p.clone()),
            None => self.base.parameters(),
        }
    }
    fn department(&self, id: &DepartmentId) -> Result<Option<Department>, ViewError> {
        match self.changes.departments.get(id) {
            Some(d) => Ok(d.clone()),
            None => self.base.department(id),
        }
    }
    fn departments(&self) -> Result<Vec<Department>, ViewError> {
        let mut all: BTreeMap<DepartmentId, Department> = self
            .base
            .departments()?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        for (id, d) in &self.changes.departments {
            match d {
                Some(d) => {
                    all.insert(id.clone(), d.clone());
                }
                None => {
                    all.remove(id);
                }
            }
        }
        Ok(all.into_values().collect())
    }
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, ViewError> {
        match self.changes.members.get(key) {
            Some(m) => Ok(Some(m.clone())),
            None => self.base.member(key),
        }
    }
    fn nonce(&self, signer: &PublicKey) -> Result<Nonce, ViewError> {
        match self.changes.nonces.get(signer) {
            Some(n) => Ok(*n),
            None => self.base.nonce(signer),
        }
    }
    fn document(&self, id: &DocumentId) -> Result<Option<Document>, ViewError> {
        match self.changes.documents.get(id) {
            Some(d) => Ok(Some(d.clone())),
            None => self.base.document(id),
        }
    }
    fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, ViewError> {
        match self.changes.proposals.get(id) {
            Some(p) => Ok(Some(p.clone())),
            None => self.base.proposal(id),
        }
    }
}

struct Context {
    height: Height,
    time: Timestamp,
    tx_id: TxId,
    /// The public keys the transaction carries were already found valid
    /// (see [`Signatures::AlreadyVerifiedWithKeys`]).
    keys_checked: bool,
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), TxRefusal> {
    if text.len() > max {
        return Err(TxRefusal::TextTooLong { field, max });
    }
    Ok(())
}

fn check_required_text(field: &'static str, text: &str, max: usize) -> Result<(), TxRefusal> {
    if text.is_empty() {
        return Err(TxRefusal::EmptyField(field));
    }
    check_text(field, text, max)
}

fn check_format(format: &Format) -> Result<(), TxRefusal> {
    check_required_text("format.mime", &format.mime, LABEL_BYTES_MAX)?;
    if let Some(pronom) = &format.pronom {
        check_required_text("format.pronom", pronom, LABEL_BYTES_MAX)?;
    }
    Ok(())
}

fn check_wrapped_key(key: &WrappedKey) -> Result<(), TxRefusal> {
    if key.0.is_empty() || key.0.len() > WRAPPED_KEY_BYTES_MAX {
        return Err(TxRefusal::WrappedKeyInvalid {
            max: WRAPPED_KEY_BYTES_MAX,
        });
    }
    Ok(())
}

fn check_roles(roles: &[Role]) -> Result<(), TxRefusal> {
    let mut sorted = roles.to_vec();
    sorted.sort();
    sorted.dedup();
    if roles.is_empty() || sorted.len() != roles.len() {
        return Err(TxRefusal::InvalidRoles);
    }
    Ok(())
}

/// Member and validator keys must be valid ed25519 points of full order:
/// small-order keys verify forged signatures, and are where batch and
/// single verification can disagree.
/// Checks the public keys a transaction carries for others to use (the key
/// of a member being enrolled), without any state: what
/// [`Signatures::AlreadyVerifiedWithKeys`] lets the state rules skip.
pub fn check_carried_keys(tx: &SignedTransaction) -> Result<(), TxRefusal> {
    match &tx.payload.body {
        TxBody::EnrollMember { member, .. } => check_member_key(member),
        _ => Ok(()),
    }
}

fn check_member_key(key: &PublicKey) -> Result<(), TxRefusal> {
    match ed25519_dalek::VerifyingKey::from_bytes(&key.0) {
        Ok(k) if !k.is_weak() => Ok(()),
        _ => Err(TxRefusal::WeakKey(*key)),
    }
}

fn require_role(member: &Member, role: Role) -> Result<(), TxRefusal> {
    if member.has_role(role) {
        Ok(())
    } else {
        Err(TxRefusal::MissingRole { needed: role })
    }
}

fn require_department(member: &Member, needed: &DepartmentId) -> Result<(), TxRefusal> {
    if member.department == *needed {
        Ok(())
    } else {
        Err(TxRefusal::WrongDepartment {
            signer: member.department.clone(),
            needed: needed.clone(),
        })
    }
}

fn require_clearance(member: &Member, classification: Classification) -> Result<(), TxRefusal> {
    if member.clearance >= classification {
        Ok(())
    } else {
        Err(TxRefusal::ClearanceTooLow {
            clearance: member.clearance,
            classification,
        })
    }
}

fn require_custodian(member: &Member, doc: &Document) -> Result<(), TxRefusal> {
    if member.department == doc.custodian {
        Ok(())
    } else {
        Err(TxRefusal::NotCustodian {
            signer: member.department.clone(),
            custodian: doc.custodian.clone(),
        })
    }
}

/// The offer still pending and unexpired at `time`, if any.
fn live_offer(doc: &Document, time: Timestamp) -> Option<&Offer> {
    match &doc.status {
        DocumentStatus::InTransfer(offer) if time <= offer.expires_at => Some(offer),
        _ => None,
    }
}

fn require_not_in_live_transfer(doc: &Document, time: Timestamp) -> Result<(), TxRefusal> {
    if live_offer(doc, time).is_some() {
        return Err(TxRefusal::DocumentInTransfer(doc.id.clone()));
    }
    Ok(())
}

fn require_existing_department<V: StateView + ?Sized>(
    view: &V,
    id: &DepartmentId,
) -> Result<Department, TxRefusal> {
    view.department(id)?
        .ok_or_else(|| TxRefusal::UnknownDepartment(id.clone()))
}

fn future_expiry(expires_at: Timestamp, time: Timestamp) -> Result<(), TxRefusal> {
    if expires_at <= time {
        return Err(TxRefusal::ExpiryNotInFuture {
            expires_at,
            block_time: time,
        });
    }
    Ok(())
}

/// The validator set the departments define.
pub fn validator_set_of(departments: &[Department]) -> ValidatorSet {
    ValidatorSet::new(
        departments
            .iter()
            .map(|d| Validator {
                key: d.keys.validator_key,
                power: d.voting_power,
            })
            .collect(),
    )
}

fn apply_tx<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    tx: &SignedTransaction,
    ctx: &Context,
    signature_checked: bool,
) -> Result<(), TxRefusal> {
    let payload = &tx.payload;
    if payload.format_version != FORMAT_VERSION {
        return Err(TxRefusal::UnsupportedFormatVersion(payload.format_version));
    }
    let chain_id = overlay.changes.chain.chain_id.clone();
    if payload.chain_id != chain_id {
        return Err(TxRefusal::WrongChainId {
            expected: chain_id,
            found: payload.chain_id.clone(),
        });
    }
    if !signature_checked && !tx.verify_signature() {
        return Err(TxRefusal::BadSignature);
    }
    let expected = Nonce(overlay.nonce(&payload.signer)?.0.saturating_add(1));
    if payload.nonce != expected {
        return Err(TxRefusal::WrongNonce {
            expected,
            found: payload.nonce,
        });
    }
    let signer = overlay
        .member(&payload.signer)?
        .ok_or(TxRefusal::UnknownSigner(payload.signer))?;
    if let MemberStatus::Revoked { .. } = signer.status {
        return Err(TxRefusal::SignerRevoked(payload.signer));
    }
    if overlay.department(&signer.department)?.is_none() {
        return Err(TxRefusal::SignerDepartmentRemoved(
            signer.department.clone(),
        ));
    }

    match &payload.body {
        TxBody::EnrollMember {
            member,
            department,
            name,
            roles,
            clearance,
        } => {
            require_role(&signer, Role::Admin)?;
            require_department(&signer, department)?;
            require_existing_department(overlay, department)?;
            check_required_text("name", name, TEXT_BYTES_MAX)?;
            check_roles(roles)?;
            if !ctx.keys_checked {
                check_member_key(member)?;
            }
            if overlay.member(member)?.is_some() {
                return Err(TxRefusal::MemberAlreadyEnrolled(*member));
            }
            overlay.changes.members.insert(
                *member,
                Member {
                    key: *member,
                    department: department.clone(),
                    name: name.clone(),
                    roles: roles.clone(),
                    clearance: *clearance,
                    status: MemberStatus::Active,
                    enrolled_at: ctx.height,
                },
            );
        }
        TxBody::UpdateMember {
            member,
            roles,
            clearance,
        } => {
            require_role(&signer, Role::Admin)?;
            let mut target = overlay
                .member(member)?
                .ok_or(TxRefusal::UnknownMember(*member))?;
            require_department(&signer, &target.department)?;
            if let MemberStatus::Revoked { .. } = target.status {
                return Err(TxRefusal::MemberRevoked(*member));
            }
            check_roles(roles)?;
            target.roles = roles.clone();
            target.clearance = *clearance;
            overlay.changes.members.insert(*member, target);
        }
        TxBody::RevokeMember { member, reason } => {
            require_role(&signer, Role::Admin)?;
            let mut target = overlay
                .member(member)?
                .ok_or(TxRefusal::UnknownMember(*member))?;
            require_department(&signer, &target.department)?;
            if let MemberStatus::Revoked { .. } = target.status {
                return Err(TxRefusal::MemberRevoked(*member));
            }
            check_text("reason", reason, TEXT_BYTES_MAX)?;
            target.status = MemberStatus::Revoked { at: ctx.height };
            overlay.changes.members.insert(*member, target);
        }
        TxBody::ProposeChange { change } => {
            require_role(&signer, Role::Admin)?;
            check_change(overlay, change)?;
            let id = ProposalId(ctx.tx_id.0);
            let proposal = Proposal {
                id,
                change: change.clone(),
                proposed_by: signer.department.clone(),
                proposed_at: ctx.height,
                approvals: vec![signer.department.clone()],
                executed_at: None,
            };
            maybe_execute(overlay, proposal, ctx)?;
        }
        TxBody::ApproveChange { proposal } => {
            require_role(&signer, Role::Admin)?;
            let mut p = overlay
                .proposal(proposal)?
                .ok_or(TxRefusal::UnknownProposal(*proposal))?;
            if p.executed_at.is_some() {
                return Err(TxRefusal::ProposalAlreadyExecuted(*proposal));
            }
            if p.approvals.contains(&signer.department) {
                return Err(TxRefusal::AlreadyApproved(signer.department.clone()));
            }
            p.approvals.push(signer.department.clone());
            p.approvals.sort();
            maybe_execute(overlay, p, ctx)?;
        }
        TxBody::Register {
            document,
            title,
            record_type,
            department,
            created,
            classification,
            retention,
            format,
            plaintext,
            ciphertext,
            subject_tag,
            wrapped_key,
        } => {
            require_role(&signer, Role::Clerk)?;
            require_department(&signer, department)?;
            require_clearance(&signer, *classification)?;
            check_required_text("title", title, TEXT_BYTES_MAX)?;
            check_required_text("record_type", record_type, LABEL_BYTES_MAX)?;
            check_format(format)?;
            check_wrapped_key(wrapped_key)?;
            // Retention counts from the creation date: a future date would
            // let a document outlive its retention period.
            if *created > ctx.time {
                return Err(TxRefusal::CreatedInFuture {
                    created: *created,
                    block_time: ctx.time,
                });
            }
            if overlay.document(document)?.is_some() {
                return Err(TxRefusal::DocumentAlreadyRegistered(document.clone()));
            }
            let mut doc = Document {
                id: document.clone(),
                title: title.clone(),
                record_type: record_type.clone(),
                creating_department: department.clone(),
                created: *created,
                classification: *classification,
                retention: *retention,
                format: format.clone(),
                plaintext: *plaintext,
                ciphertext: *ciphertext,
                subject_tag: *subject_tag,
                custodian: department.clone(),
                custodian_key: wrapped_key.clone(),
                status: DocumentStatus::Active,
                version: 1,
                grants: Vec::new(),
                event_count: 0,
                latest_event: EventHash::ZERO,
                registered_at: ctx.height,
            };
            let kind = EventKind::Registered {
                classification: *classification,
                plaintext: *plaintext,
                ciphertext: *ciphertext,
            };
            adjust_held(overlay, department, 1)?;
            record_event(overlay, &mut doc, &signer, ctx, kind);
        }
        body => {
            // Every other body acts on an existing document.
            let (document, previous_event) = document_and_previous(body);
            let mut doc = overlay
                .document(document)?
                .ok_or_else(|| TxRefusal::UnknownDocument(document.clone()))?;
            if doc.status == DocumentStatus::Disposed {
                return Err(TxRefusal::DocumentDisposed(doc.id.clone()));
            }
            if *previous_event != doc.latest_event {
                return Err(TxRefusal::StalePreviousEvent {
                    named: *previous_event,
                    latest: doc.latest_event,
                });
            }
            require_clearance(&signer, doc.classification)?;
            let custodian_before = doc.custodian.clone();
            let kind = apply_document_tx(overlay, body, &mut doc, &signer, ctx)?;
            // Keep each department's count of held documents; these are the
            // only writes before the event, and they cannot fail.
            if doc.status == DocumentStatus::Disposed {
                adjust_held(overlay, &custodian_before, -1)?;
            } else if doc.custodian != custodian_before {
                adjust_held(overlay, &custodian_before, -1)?;
                adjust_held(overlay, &doc.custodian, 1)?;
            }
            record_event(overlay, &mut doc, &signer, ctx, kind);
        }
    }
    overlay.changes.nonces.insert(payload.signer, payload.nonce);
    Ok(())
}

fn document_and_previous(body: &TxBody) -> (&DocumentId, &EventHash) {
    match body {
        TxBody::OfferTransfer {
            document,
            previous_event,
            ..
        }
        | TxBody::AcceptTransfer {
            document,
            previous_event,
            ..
        }
        | TxBody::RejectTransfer {
            document,
            previous_event,
            ..
        }
        | TxBody::CancelTransfer {
            document,
            previous_event,
        }
        | TxBody::GrantAccess {
            document,
            previous_event,
            ..
        }
        | TxBody::RevokeAccess {
            document,
            previous_event,
            ..
        }
        | TxBody::RecordAccess {
            document,
            previous_event,
            ..
        }
        | TxBody::Amend {
            document,
            previous_event,
            ..
        }
        | TxBody::RecordFixityCheck {
            document,
            previous_event,
            ..
        }
        | TxBody::Dispose {
            document,
            previous_event,
            ..
        } => (document, previous_event),
        // Only document bodies reach here (see the caller's match).
        TxBody::EnrollMember { .. }
        | TxBody::UpdateMember { .. }
        | TxBody::RevokeMember { .. }
        | TxBody::ProposeChange { .. }
        | TxBody::ApproveChange { .. }
        | TxBody::Register { .. } => unreachable!("not a document transaction"),
    }
}

fn apply_document_tx<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    body: &TxBody,
    doc: &mut Document,
    signer: &Member,
    ctx: &Context,
) -> Result<EventKind, TxRefusal> {
    let time = ctx.time;
    let kind = match body {
        TxBody::OfferTransfer {
            to,
            wrapped_key,
            expires_at,
            ..
        } => {
            require_role(signer, Role::Clerk)?;
            require_custodian(signer, doc)?;
            require_not_in_live_transfer(doc, time)?;
            if *to == doc.custodian {
                return Err(TxRefusal::OfferToSelf);
            }
            require_existing_department(overlay, to)?;
            check_wrapped_key(wrapped_key)?;
            let default_ms = overlay.parameters()?.offer_expiry_default_ms;
            let expires_at = expires_at.unwrap_or(Timestamp(time.0.saturating_add(default_ms)));
            future_expiry(expires_at, time)?;
            doc.status = DocumentStatus::InTransfer(Offer {
                to: to.clone(),
                wrapped_key: wrapped_key.clone(),
                expires_at,
            });
            EventKind::Offered {
                to: to.clone(),
                expires_at,
            }
        }
        TxBody::AcceptTransfer {
            ciphertext_sha256, ..
        } => {
            require_role(signer, Role::Clerk)?;
            let DocumentStatus::InTransfer(offer) = doc.status.clone() else {
                return Err(TxRefusal::NoPendingOffer(doc.id.clone()));
            };
            if offer.to != signer.department {
                return Err(TxRefusal::NotOfferRecipient {
                    to: offer.to,
                    signer: signer.department.clone(),
                });
            }
            if time > offer.expires_at {
                return Err(TxRefusal::OfferExpired {
                    expired_at: offer.expires_at,
                    block_time: time,
                });
            }
            if *ciphertext_sha256 != doc.ciphertext.sha256 {
                return Err(TxRefusal::FixityMismatch {
                    checked: *ciphertext_sha256,
                    recorded: doc.ciphertext.sha256,
                });
            }
            let from = std::mem::replace(&mut doc.custodian, offer.to.clone());
            doc.custodian_key = offer.wrapped_key;
            doc.status = DocumentStatus::Active;
            // Grants were the previous custodian's decisions; the new
            // custodian grants afresh.
            doc.grants.clear();
            EventKind::Accepted { from }
        }
        TxBody::RejectTransfer { reason, .. } => {
            require_role(signer, Role::Clerk)?;
            let DocumentStatus::InTransfer(offer) = doc.status.clone() else {
                return Err(TxRefusal::NoPendingOffer(doc.id.clone()));
            };
            if offer.to != signer.department {
                return Err(TxRefusal::NotOfferRecipient {
                    to: offer.to,
                    signer: signer.department.clone(),
                });
            }
            check_text("reason", reason, TEXT_BYTES_MAX)?;
            doc.status = DocumentStatus::Active;
            EventKind::Rejected {
                reason: reason.clone(),
            }
        }
        TxBody::CancelTransfer { .. } => {
            require_role(signer, Role::Clerk)?;
            require_custodian(signer, doc)?;
            if !matches!(doc.status, DocumentStatus::InTransfer(_)) {
                return Err(TxRefusal::NoPendingOffer(doc.id.clone()));
            }
            doc.status = DocumentStatus::Active;
            EventKind::Cancelled
        }
        TxBody::GrantAccess {
            to,
            wrapped_key,
            expires_at,
            ..
        } => {
            require_role(signer, Role::Clerk)?;
            require_custodian(signer, doc)?;
            require_not_in_live_transfer(doc, time)?;
            if *to == doc.custodian {
                return Err(TxRefusal::GrantToCustodian);
            }
            require_existing_department(overlay, to)?;
            check_wrapped_key(wrapped_key)?;
            future_expiry(*expires_at, time)?;
            doc.grants.retain(|g| g.department != *to);
            if doc.grants.len() >= GRANTS_PER_DOCUMENT_MAX {
                return Err(TxRefusal::TooManyGrants(doc.grants.len()));
            }
            doc.grants.push(Grant {
                department: to.clone(),
                wrapped_key: wrapped_key.clone(),
                expires_at: *expires_at,
            });
            doc.grants.sort_by(|a, b| a.department.cmp(&b.department));
            EventKind::Granted {
                to: to.clone(),
                expires_at: *expires_at,
            }
        }
        TxBody::RevokeAccess { from, .. } => {
            require_role(signer, Role::Clerk)?;
            require_custodian(signer, doc)?;
            let before = doc.grants.len();
            doc.grants.retain(|g| g.department != *from);
            if doc.grants.len() == before {
                return Err(TxRefusal::NoSuchGrant(from.clone()));
            }
            EventKind::Revoked { from: from.clone() }
        }
        TxBody::RecordAccess {
            purpose,
            ciphertext_sha256,
            ..
        } => {
            let department = &signer.department;
            let custodian = *department == doc.custodian;
            let grantee = doc
                .grants
                .iter()
                .any(|g| g.department == *department && time <= g.expires_at);
            // A department offered the document opens it to check it before
            // accepting; the offer carries the key wrapped to it.
            let recipient = live_offer(doc, time).is_some_and(|o| o.to == *department);
            if !custodian && !grantee && !recipient {
                return Err(TxRefusal::NoAccessRight(department.clone()));
            }
            check_required_text("purpose", purpose, TEXT_BYTES_MAX)?;
            if *ciphertext_sha256 != doc.ciphertext.sha256 {
                return Err(TxRefusal::CiphertextMismatch {
                    named: *ciphertext_sha256,
                    current: doc.ciphertext.sha256,
                });
            }
            EventKind::Accessed {
                purpose: purpose.clone(),
                ciphertext_sha256: *ciphertext_sha256,
            }
        }
        TxBody::Amend {
            reason,
            note,
            format,
            plaintext,
            ciphertext,
            wrapped_key,
            ..
        } => {
            require_role(signer, Role::Clerk)?;
            require_custodian(signer, doc)?;
            require_not_in_live_transfer(doc, time)?;
            check_text("note", note, TEXT_BYTES_MAX)?;
            check_format(format)?;
            check_wrapped_key(wrapped_key)?;
            let previous_plaintext = doc.plaintext;
            let previous_ciphertext = doc.ciphertext;
            doc.version = doc.version.saturating_add(1);
            doc.format = format.clone();
            doc.plaintext = *plaintext;
            doc.ciphertext = *ciphertext;
            doc.custodian_key = wrapped_key.clone();
            // A lapsed offer or old grants wrap the previous version's key.
            doc.status = DocumentStatus::Active;
            doc.grants.clear();
            EventKind::Amended {
                version: doc.version,
                reason: *reason,
                note: note.clone(),
                previous_plaintext,
                previous_ciphertext,
                plaintext: *plaintext,
                ciphertext: *ciphertext,
            }
        }
        TxBody::RecordFixityCheck {
            ciphertext_sha256,
            result,
            note,
            ..
        } => {
            if signer.has_role(Role::Auditor) {
                // Auditors check documents of any department.
            } else if signer.has_role(Role::Clerk) {
                require_custodian(signer, doc)?;
            } else {
                return Err(TxRefusal::NeitherClerkNorAuditor);
            }
            check_text("note", note, TEXT_BYTES_MAX)?;
            if *ciphertext_sha256 != doc.ciphertext.sha256 {
                return Err(TxRefusal::CiphertextMismatch {
                    named: *ciphertext_sha256,
                    current: doc.ciphertext.sha256,
                });
            }
            EventKind::FixityChecked {
                ciphertext_sha256: *ciphertext_sha256,
                result: *result,
            }
        }
        TxBody::Dispose { reason, .. } => {
            require_role(signer, Role::Admin)?;
            require_custodian(signer, doc)?;
            require_not_in_live_transfer(doc, time)?;
            check_required_text("reason", reason, TEXT_BYTES_MAX)?;
            let until = match doc.retention {
                Retention::Permanent => return Err(TxRefusal::RetentionPermanent),
                Retention::Years(years) => {
                    Timestamp(doc.created.0.saturating_add(u64::from(years) * YEAR_MS))
                }
            };
            if time < until {
                return Err(TxRefusal::RetentionNotElapsed {
                    until,
                    block_time: time,
                });
            }
            doc.status = DocumentStatus::Disposed;
            doc.grants.clear();
            EventKind::Disposed {
                reason: reason.clone(),
            }
        }
        TxBody::EnrollMember { .. }
        | TxBody::UpdateMember { .. }
        | TxBody::RevokeMember { .. }
        | TxBody::ProposeChange { .. }
        | TxBody::ApproveChange { .. }
        | TxBody::Register { .. } => unreachable!("not a document transaction"),
    };
    Ok(kind)
}

/// Add `delta` to a department's count of held documents (a removed
/// department keeps no count).
fn adjust_held<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    department: &DepartmentId,
    delta: i64,
) -> Result<(), TxRefusal> {
    if let Some(mut d) = overlay.department(department)? {
        d.documents_held = d.documents_held.saturating_add_signed(delta);
        overlay
            .changes
            .departments
            .insert(department.clone(), Some(d));
    }
    Ok(())
}

fn record_event<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    doc: &mut Document,
    signer: &Member,
    ctx: &Context,
    kind: EventKind,
) {
    let event = DocumentEvent {
        format_version: FORMAT_VERSION,
        document: doc.id.clone(),
        sequence: doc.event_count,
        previous: doc.latest_event,
        height: ctx.height,
        time: ctx.time,
        tx: ctx.tx_id,
        member: signer.key,
        department: signer.department.clone(),
        kind,
    };
    doc.latest_event = event.hash();
    doc.event_count += 1;
    overlay.changes.events.push(event);
    overlay
        .changes
        .documents
        .insert(doc.id.clone(), doc.clone());
}

fn check_new_department<V: StateView + ?Sized>(
    view: &V,
    nd: &NewDepartment,
) -> Result<(), TxRefusal> {
    if view.department(&nd.id)?.is_some() {
        return Err(TxRefusal::DepartmentExists(nd.id.clone()));
    }
    check_required_text("department.name", &nd.name, TEXT_BYTES_MAX)?;
    if nd.voting_power == 0 {
        return Err(TxRefusal::ZeroVotingPower);
    }
    check_member_key(&nd.keys.validator_key)?;
    if view
        .departments()?
        .iter()
        .any(|d| d.keys.validator_key == nd.keys.validator_key)
    {
        return Err(TxRefusal::ValidatorKeyInUse(nd.keys.validator_key));
    }
    if !nd.admins.iter().any(|m| m.roles.contains(&Role::Admin)) {
        return Err(TxRefusal::NoAdmin);
    }
    let mut seen = Vec::new();
    for m in &nd.admins {
        check_required_text("admin.name", &m.name, TEXT_BYTES_MAX)?;
        check_roles(&m.roles)?;
        check_member_key(&m.key)?;
        if seen.contains(&m.key) || view.member(&m.key)?.is_some() {
            return Err(TxRefusal::MemberAlreadyEnrolled(m.key));
        }
        seen.push(m.key);
    }
    Ok(())
}

fn check_change<V: StateView + ?Sized>(
    view: &V,
    change: &GovernanceChange,
) -> Result<(), TxRefusal> {
    match change {
        GovernanceChange::AddDepartment(nd) => check_new_department(view, nd),
        GovernanceChange::RemoveDepartment { department } => {
            let d = require_existing_department(view, department)?;
            if d.documents_held > 0 {
                return Err(TxRefusal::DepartmentHoldsDocuments {
                    department: department.clone(),
                    count: d.documents_held,
                });
            }
            if view.departments()?.len() <= 1 {
                return Err(TxRefusal::LastDepartment);
            }
            Ok(())
        }
        GovernanceChange::RotateDepartmentKeys { department, keys } => {
            require_existing_department(view, department)?;
            check_member_key(&keys.validator_key)?;
            if view
                .departments()?
                .iter()
                .any(|d| d.id != *department && d.keys.validator_key == keys.validator_key)
            {
                return Err(TxRefusal::ValidatorKeyInUse(keys.validator_key));
            }
            Ok(())
        }
        GovernanceChange::ChangeParameters(p) => {
            genesis::check_parameters(p).map_err(TxRefusal::BadParameter)
        }
    }
}

/// Record `proposal` and execute it if the departments that approved it
/// hold more than 2/3 of the current voting power. The change is checked
/// again before any write, since the state may have moved since it was
/// proposed.
fn maybe_execute<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    mut proposal: Proposal,
    ctx: &Context,
) -> Result<(), TxRefusal> {
    let departments = overlay.departments()?;
    let total: u128 = departments.iter().map(|d| u128::from(d.voting_power)).sum();
    let approved: u128 = departments
        .iter()
        .filter(|d| proposal.approvals.contains(&d.id))
        .map(|d| u128::from(d.voting_power))
        .sum();
    if 3 * approved <= 2 * total {
        overlay.changes.proposals.insert(proposal.id, proposal);
        return Ok(());
    }
    check_change(overlay, &proposal.change)?;
    match &proposal.change {
        GovernanceChange::AddDepartment(nd) => {
            overlay.changes.departments.insert(
                nd.id.clone(),
                Some(Department {
                    id: nd.id.clone(),
                    name: nd.name.clone(),
                    keys: nd.keys.clone(),
                    voting_power: nd.voting_power,
                    since: ctx.height.next(),
                    documents_held: 0,
                }),
            );
            for m in &nd.admins {
                overlay.changes.members.insert(
                    m.key,
                    Member {
                        key: m.key,
                        department: nd.id.clone(),
                        name: m.name.clone(),
                        roles: m.roles.clone(),
                        clearance: m.clearance,
                        status: MemberStatus::Active,
                        enrolled_at: ctx.height,
                    },
                );
            }
        }
        GovernanceChange::RemoveDepartment { department } => {
            overlay.changes.departments.insert(department.clone(), None);
        }
        GovernanceChange::RotateDepartmentKeys { department, keys } => {
            let mut d = require_existing_department(overlay, department)?;
            d.keys = keys.clone();
            overlay
                .changes
                .departments
                .insert(department.clone(), Some(d));
        }
        GovernanceChange::ChangeParameters(p) => {
            overlay.changes.parameters = Some(p.clone());
        }
    }
    proposal.executed_at = Some(ctx.height);
    overlay.changes.proposals.insert(proposal.id, proposal);
    Ok(())
}

fn check_header(
    params: &Parameters,
    chain: &ChainInfo,
    block: &Block,
    ids: &[TxId],
    signatures: Signatures,
) -> Result<(), HeaderRefusal> {
    let h = &block.header;
    if h.format_version != FORMAT_VERSION {
        return Err(HeaderRefusal::UnsupportedFormatVersion(h.format_version));
    }
    if h.chain_id != chain.chain_id {
        return Err(HeaderRefusal::WrongChainId {
            expected: chain.chain_id.clone(),
            found: h.chain_id.clone(),
        });
    }
    let expected_height = chain.height.next();
    if h.height != expected_height {
        return Err(HeaderRefusal::WrongHeight {
            expected: expected_height,
            found: h.height,
        });
    }
    if h.previous_block_hash != chain.last_block_hash {
        return Err(HeaderRefusal::WrongPreviousHash {
            expected: chain.last_block_hash,
            found: h.previous_block_hash,
        });
    }
    if h.time <= chain.last_time {
        return Err(HeaderRefusal::TimeNotAfterParent {
            time: h.time,
            parent: chain.last_time,
        });
    }
    if block.transactions.len() > params.max_block_txs as usize {
        return Err(HeaderRefusal::TooManyTransactions {
            count: block.transactions.len(),
            max: params.max_block_txs,
        });
    }
    let size = encoding::encoded_size(block) as u64;
    if size > params.max_block_bytes {
        return Err(HeaderRefusal::TooLarge {
            size,
            max: params.max_block_bytes,
        });
    }
    if crate::block::tx_root(ids) != h.tx_root {
        return Err(HeaderRefusal::TxRootMismatch);
    }
    let set_hash = chain.validator_set.hash();
    if h.validator_set_hash != set_hash {
        return Err(HeaderRefusal::ValidatorSetMismatch {
            expected: set_hash,
            found: h.validator_set_hash,
        });
    }
    if chain.validator_set.power_of(&h.proposer).is_none() {
        return Err(HeaderRefusal::ProposerNotValidator(h.proposer));
    }
    match (&block.last_commit, chain.height) {
        (None, Height(0)) => {
            if h.last_commit_hash != Hash32::ZERO {
                return Err(HeaderRefusal::LastCommitHashMismatch);
            }
        }
        (Some(_), Height(0)) => return Err(HeaderRefusal::UnexpectedLastCommit),
        (None, _) => return Err(HeaderRefusal::MissingLastCommit),
        (Some(cert), last) => {
            if cert.hash() != h.last_commit_hash {
                return Err(HeaderRefusal::LastCommitHashMismatch);
            }
            cert.verify_power(last, &chain.last_block_hash, &chain.last_validator_set)
                .map_err(HeaderRefusal::LastCommitInvalid)?;
            if signatures == Signatures::Verify {
                cert.verify_signatures(&chain.chain_id)
                    .map_err(HeaderRefusal::LastCommitInvalid)?;
            }
        }
    }
    Ok(())
}

/// Whether the caller already checked the signatures of the transactions
/// and of the previous block's certificate (chain verification batches them
/// across threads before replaying).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signatures {
    /// Check them here, with one ed25519 batch for the block.
    Verify,
    /// Already checked by the caller.
    AlreadyVerified,
    /// The signatures, and the public keys the transactions carry (a
    /// member's key being enrolled), were checked when this node first took
    /// the transactions in: only the rules that read state run. A key check
    /// is a point decompression, about as costly as a signature check, and a
    /// waiting transaction is checked again on every block.
    AlreadyVerifiedWithKeys,
}

/// Apply a block to the state `view`: check the header, the previous
/// block's certificate, every signature and every rule, and return what
/// changes. Deterministic: no clock, no randomness, no I/O but `view`.
pub fn apply_block<V: StateView + ?Sized>(
    view: &V,
    block: &Block,
) -> Result<StateChanges, Refusal> {
    apply_block_with(view, block, Signatures::Verify)
}

/// [`apply_block`] with a choice about signature checking.
pub fn apply_block_with<V: StateView + ?Sized>(
    view: &V,
    block: &Block,
    signatures: Signatures,
) -> Result<StateChanges, Refusal> {
    // Each id is computed once: for the Merkle root, the events and the index.
    apply_block_identified(view, block, &block.tx_ids(), signatures)
}

/// [`apply_block_with`] for a caller that already computed the ids of the
/// block's transactions (`block.tx_ids()`, in order); the header's Merkle
/// root is checked against them.
pub fn apply_block_identified<V: StateView + ?Sized>(
    view: &V,
    block: &Block,
    ids: &[TxId],
    signatures: Signatures,
) -> Result<StateChanges, Refusal> {
    if ids.len() != block.transactions.len() {
        return Err(Refusal::Header(HeaderRefusal::TxRootMismatch));
    }
    let chain = view.chain()?;
    let params = view.parameters()?;
    check_header(&params, &chain, block, ids, signatures).map_err(Refusal::Header)?;
    if signatures == Signatures::Verify {
        if let Some(&index) = crate::tx::verify_batch(&block.transactions).first() {
            return Err(Refusal::Transaction {
                index,
                tx_id: ids[index],
                reason: TxRefusal::BadSignature,
            });
        }
    }
    // Checked just above, in one batch.
    let checks = match signatures {
        Signatures::Verify => Signatures::AlreadyVerified,
        other => other,
    };
    let mut overlay = Overlay::new(view)?;
    let height = block.header.height;
    let time = block.header.time;
    for (index, (tx, tx_id)) in block.transactions.iter().zip(ids).enumerate() {
        overlay
            .apply_identified(tx, *tx_id, index as u32, height, time, checks)
            .map_err(|reason| match reason {
                TxRefusal::Storage(e) => Refusal::Storage(e),
                reason => Refusal::Transaction {
                    index,
                    tx_id: *tx_id,
                    reason,
                },
            })?;
    }
    let departments = overlay.departments()?;
    let mut changes = overlay.into_changes();
    let next_set = validator_set_of(&departments);
    changes.validator_set_changed = next_set != chain.validator_set;
    changes.chain = ChainInfo {
        chain_id: chain.chain_id.clone(),
        genesis_hash: chain.genesis_hash,
        height,
        last_block_hash: block.hash(),
        last_time: time,
        last_validator_set: chain.validator_set.clone(),
        validator_set: next_set,
    };
    Ok(changes)
}

/// Check one transaction for the mempool against committed state, as if it
/// were the next block's only transaction at `block_time`. `pending_nonce`
/// is the highest nonce of this signer already waiting in the mempool; the
/// transaction must then carry the one after it. Document rules are checked
/// against committed state only.
pub fn check_transaction<V: StateView + ?Sized>(
    view: &V,
    tx: &SignedTransaction,
    pending_nonce: Option<Nonce>,
    block_time: Timestamp,
) -> Result<(), TxRefusal> {
    let mut overlay = Overlay::new(view)?;
    if let Some(pending) = pending_nonce {
        let committed = view.nonce(&tx.payload.signer)?;
        if pending > committed {
            overlay.changes.nonces.insert(tx.payload.signer, pending);
        }
    }
    let height = overlay.changes.chain.height.next();
    overlay.apply_transaction(tx, 0, height, block_time, false)
}

/// Transactions chosen for a block, and those refused with their reasons.
pub type Selection = (Vec<SignedTransaction>, Vec<(SignedTransaction, TxRefusal)>);

/// Pick, in order, the candidates that apply on top of `view` at
/// `(height, time)` within the block limits; return them and the refused
/// ones with their reasons. A proposer builds its block from the first list.
pub fn select_transactions<V: StateView + ?Sized>(
    view: &V,
    candidates: Vec<SignedTransaction>,
    time: Timestamp,
) -> Result<Selection, ViewError> {
    let params = view.parameters()?;
    let mut overlay = Overlay::new(view)?;
    let height = overlay.changes.chain.height.next();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut bytes_left = params
        .max_block_bytes
        .saturating_sub(crate::block::BLOCK_OVERHEAD_BYTES);
    for tx in candidates {
        if accepted.len() >= params.max_block_txs as usize {
            break;
        }
        let size = encoding::encoded_size(&tx) as u64;
        if size > bytes_left {
            continue;
        }
        let bad = !tx.verify_signature();
        let result = if bad {
            Err(TxRefusal::BadSignature)
        } else {
            overlay.apply_transaction(&tx, accepted.len() as u32, height, time, true)
        };
        match result {
            Ok(()) => {
                bytes_left -= size;
                accepted.push(tx);
            }
            Err(reason) => refused.push((tx, reason)),
        }
    }
    Ok((accepted, refused))
}

/// Build the next block from already-selected transactions.
pub fn build_block<V: StateView + ?Sized>(
    view: &V,
    transactions: Vec<SignedTransaction>,
    time: Timestamp,
    proposer: PublicKey,
    last_commit: Option<crate::certificate::CommitCertificate>,
) -> Result<Block, ViewError> {
    let ids: Vec<TxId> = transactions.iter().map(|t| t.id()).collect();
    build_block_identified(view, transactions, &ids, time, proposer, last_commit)
}

/// [`build_block`] for a caller that knows the transactions' ids (in order).
pub fn build_block_identified<V: StateView + ?Sized>(
    view: &V,
    transactions: Vec<SignedTransaction>,
    ids: &[TxId],
    time: Timestamp,
    proposer: PublicKey,
    last_commit: Option<crate::certificate::CommitCertificate>,
) -> Result<Block, ViewError> {
    let chain = view.chain()?;
    let header = crate::block::Header {
        format_version: FORMAT_VERSION,
        chain_id: chain.chain_id.clone(),
        height: chain.height.next(),
        time,
        previous_block_hash: chain.last_block_hash,
        tx_root: crate::block::tx_root(ids),
        proposer,
        validator_set_hash: chain.validator_set.hash(),
        last_commit_hash: last_commit
            .as_ref()
            .map(|c| c.hash())
            .unwrap_or(Hash32::ZERO),
    };
    Ok(Block {
        header,
        transactions,
        last_commit,
    })
}

/// The state the genesis defines, as changes to an empty store.
pub fn genesis_changes(genesis: &Genesis) -> StateChanges {
    let set = genesis.validator_set();
    let genesis_hash = genesis.hash();
    let chain = ChainInfo {
        chain_id: genesis.chain_id.clone(),
        genesis_hash,
        height: Height(0),
        last_block_hash: BlockHash(genesis_hash.0),
        last_time: genesis.genesis_time,
        last_validator_set: set.clone(),
        validator_set: set,
    };
    let mut changes = StateChanges::empty(chain);
    changes.parameters = Some(genesis.parameters.clone());
    changes.validator_set_changed = true;
    for nd in &genesis.departments {
        changes.departments.insert(
            nd.id.clone(),
            Some(Department {
                id: nd.id.clone(),
                name: nd.name.clone(),
                keys: nd.keys.clone(),
                voting_power: nd.voting_power,
                since: Height(1),
                documents_held: 0,
            }),
        );
        for m in &nd.admins {
            changes.members.insert(
                m.key,
                Member {
                    key: m.key,
                    department: nd.id.clone(),
                    name: m.name.clone(),
                    roles: m.roles.clone(),
                    clearance: m.clearance,
                    status: MemberStatus::Active,
                    enrolled_at: Height(0),
                },
            );
        }
    }
    changes
}

/// The whole archive state in memory: used by verification and tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryState {
    pub chain: Option<ChainInfo>,
    pub parameters: Parameters,
    pub departments: BTreeMap<DepartmentId, Department>,
    pub members: BTreeMap<PublicKey, Member>,
    pub nonces: BTreeMap<PublicKey, Nonce>,
    pub documents: BTreeMap<DocumentId, Document>,
    pub proposals: BTreeMap<ProposalId, Proposal>,
    /// Events per document, in order.
    pub events: BTreeMap<DocumentId, Vec<DocumentEvent>>,
    pub tx_locations: BTreeMap<TxId, TxLocation>,
    /// Validator set history: the set in force from each height on.
    pub validator_sets: BTreeMap<Height, ValidatorSet>,
}

impl MemoryState {
    /// The state right after the genesis.
    pub fn from_genesis(genesis: &Genesis) -> Self {
        let mut state = MemoryState::default();
        state.apply(genesis_changes(genesis));
        state
    }

    /// Write changes.
    pub fn apply(&mut self, changes: StateChanges) {
        // Changes come from `apply_block` on this very state: one height on.
        debug_assert!(match &self.chain {
            Some(chain) => changes.chain.height == chain.height.next(),
            None => changes.chain.height == Height(0),
        });
        if let Some(p) = changes.parameters {
            self.parameters = p;
        }
        for (id, d) in changes.departments {
            match d {
                Some(d) => {
                    self.departments.insert(id, d);
                }
                None => {
                    self.departments.remove(&id);
                }
            }
        }
        self.members.extend(changes.members);
        self.nonces.extend(changes.nonces);
        self.documents.extend(changes.documents);
        self.proposals.extend(changes.proposals);
        for e in changes.events {
            self.events.entry(e.document.clone()).or_default().push(e);
        }
        self.tx_locations.extend(changes.tx_locations);
        if changes.validator_set_changed {
            self.validator_sets.insert(
                changes.chain.height.next(),
                changes.chain.validator_set.clone(),
            );
        }
        self.chain = Some(changes.chain);
    }

    /// Digest of the state, equal to the store's [`crate::store::Store::state_digest`]
    /// for the same state.
    pub fn digest(&self) -> Hash32 {
        let mut d = StateDigest::new();
        if let Some(chain) = &self.chain {
            d.entry(b"chain", &encoding::encode(chain));
        }
        d.entry(b"parameters", &encoding::encode(&self.parameters));
        for v in self.departments.values() {
            d.entry(b"department", &encoding::encode(v));
        }
        for v in self.members.values() {
            d.entry(b"member", &encoding::encode(v));
        }
        for (k, v) in &self.nonces {
            d.entry(b"nonce", &encoding::encode(&(k, v)));
        }
        for v in self.documents.values() {
            d.entry(b"document", &encoding::encode(v));
        }
        for v in self.proposals.values() {
            d.entry(b"proposal", &encoding::encode(v));
        }
        for events in self.events.values() {
            for e in events {
                d.entry(b"event", &encoding::encode(e));
            }
        }
        for (k, v) in &self.tx_locations {
            d.entry(b"tx", &encoding::encode(&(k, v)));
        }
        for (k, v) in &self.validator_sets {
            d.entry(b"validator-set", &encoding::encode(&(k, v)));
        }
        d.finish()
    }
}

/// Streaming digest over `(kind, value)` entries in a fixed order.
pub struct StateDigest(Sha256);

impl StateDigest {
    /// Start a digest.
    pub fn new() -> Self {
        let mut h = Sha256::new();
        h.update(encoding::tagged(tags::STATE, &[]));
        StateDigest(h)
    }
    /// Add one entry.
    pub fn entry(&mut self, kind: &[u8], value: &[u8]) {
        self.0.update((kind.len() as u64).to_be_bytes());
        self.0.update(kind);
        self.0.update((value.len() as u64).to_be_bytes());
        self.0.update(value);
    }
    /// The digest.
    pub fn finish(self) -> Hash32 {
        Hash32(self.0.finalize().into())
    }
}

impl Default for StateDigest {
    fn default() -> Self {
        Self::new()
    }
}

fn no_chain() -> ViewError {
    ViewError("state has no genesis".to_string())
}

impl StateView for MemoryState {
    fn chain(&self) -> Result<ChainInfo, ViewError> {
        self.chain.clone().ok_or_else(no_chain)
    }
    fn parameters(&self) -> Result<Parameters, ViewError> {
        Ok(self.parameters.clone())
    }
    fn department(&self, id: &DepartmentId) -> Result<Option<Department>, ViewError> {
        Ok(self.departments.get(id).cloned())
    }
    fn departments(&self) -> Result<Vec<Department>, ViewError> {
        Ok(self.departments.values().cloned().collect())
    }
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, ViewError> {
        Ok(self.members.get(key).cloned())
    }
    fn nonce(&self, signer: &PublicKey) -> Result<Nonce, ViewError> {
        Ok(self.nonces.get(signer).copied().unwrap_or_default())
    }
    fn document(&self, id: &DocumentId) -> Result<Option<Document>, ViewError> {
        Ok(self.documents.get(id).cloned())
    }
    fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, ViewError> {
        Ok(self.proposals.get(id).cloned())
    }
}
