//! Why a block or a transaction is refused: one variant per rule, each
//! with a stable code.

use super::*;

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
    #[error("a `{kind}` transaction is format version {required}, but the payload states version {found}")]
    FormatVersionMismatch {
        kind: &'static str,
        required: u16,
        found: u16,
    },
    #[error("the signer is not the node key of department `{0}`; only a department's node attests its reads")]
    NotTheDepartmentsNode(DepartmentId),
    #[error("member {member} belongs to `{member_department}`; only that department's node serves their reads")]
    ReadOfAnotherDepartment {
        member: PublicKey,
        member_department: DepartmentId,
    },
    #[error("the denied read request's signature does not match its member's key and content")]
    DeniedRequestUnsigned,
    #[error("the signer is not the node key of department `{0}`; only a department's node submits evidence in its name")]
    EvidenceReporterNotItsNode(DepartmentId),
    #[error("the two votes are signed by two validators ({first} and {second}); evidence is two votes of one validator")]
    EvidenceTwoValidators { first: PublicKey, second: PublicKey },
    #[error("the two votes are not for one height, round and kind ({first} and {second}); they do not conflict")]
    EvidenceNotSameVote { first: String, second: String },
    #[error("both votes name the same block ({0}); they do not conflict")]
    EvidenceSameBlock(String),
    #[error("the votes are for height {height}, after this block's height {block_height}")]
    EvidenceHeightInFuture {
        height: Height,
        block_height: Height,
    },
    #[error("{validator} was not a validator at height {height}; its votes there prove nothing")]
    EvidenceNotAValidator {
        validator: PublicKey,
        height: Height,
    },
    #[error(
        "the {which} vote's signature does not verify under its validator's key for this chain"
    )]
    EvidenceBadSignature { which: &'static str },
    #[error(
        "evidence against this validator at height {height} is already recorded (transaction {tx})"
    )]
    EvidenceAlreadyRecorded { height: Height, tx: TxId },
    #[error("sealed field `{field}` is shorter than {min} bytes (a 24-byte nonce and a 16-byte tag): it is not a sealed text")]
    SealedTextMalformed { field: &'static str, min: usize },
    #[error("the title of document `{0}` is sealed under its current data key: amend it with amend-sealed, which seals the title again under the new version's key")]
    SealedTitleNeedsSealedAmend(DocumentId),
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
            TxRefusal::FormatVersionMismatch { .. } => "format_version_mismatch",
            TxRefusal::NotTheDepartmentsNode(..) => "not_the_departments_node",
            TxRefusal::ReadOfAnotherDepartment { .. } => "read_of_another_department",
            TxRefusal::DeniedRequestUnsigned => "denied_request_unsigned",
            TxRefusal::EvidenceReporterNotItsNode(..) => "evidence_reporter_not_its_node",
            TxRefusal::EvidenceTwoValidators { .. } => "evidence_two_validators",
            TxRefusal::EvidenceNotSameVote { .. } => "evidence_not_same_vote",
            TxRefusal::EvidenceSameBlock(..) => "evidence_same_block",
            TxRefusal::EvidenceHeightInFuture { .. } => "evidence_height_in_future",
            TxRefusal::EvidenceNotAValidator { .. } => "evidence_not_a_validator",
            TxRefusal::EvidenceBadSignature { .. } => "evidence_bad_signature",
            TxRefusal::EvidenceAlreadyRecorded { .. } => "evidence_already_recorded",
            TxRefusal::SealedTextMalformed { .. } => "sealed_text_malformed",
            TxRefusal::SealedTitleNeedsSealedAmend(..) => "sealed_title_needs_sealed_amend",
            TxRefusal::Storage(..) => "storage",
        }
    }
}

/// Why a member's read of a document's ciphertext is refused (the read
/// rule, [`super::check_read`]); one variant per rule, in the order the
/// rule checks them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadRefusal {
    #[error("member {0} is not enrolled")]
    MemberUnknown(PublicKey),
    #[error("member {0} is revoked and can no longer read")]
    MemberRevoked(PublicKey),
    #[error("document `{0}` is not registered")]
    DocumentUnknown(DocumentId),
    #[error("document `{0}` was disposed of; its ciphertext is no longer served")]
    DocumentDisposed(DocumentId),
    #[error("clearance `{clearance}` is below the document's classification `{classification}`")]
    ClearanceTooLow {
        clearance: Classification,
        classification: Classification,
    },
    #[error("{named} is not the current ciphertext of the document (it is {current}); refresh and ask again")]
    CiphertextNotCurrent { named: Hash32, current: Hash32 },
    #[error("no committed record-access is named (or the one named is not committed here yet); record the access first (`custody doc open`) and wait for it to commit")]
    AccessNotCommitted,
    #[error("transaction {0} is not a record-access")]
    AccessNotRecordAccess(TxId),
    #[error("record-access {0} was signed by another member")]
    AccessOfAnotherMember(TxId),
    #[error("record-access {0} is for another document or another version of it")]
    AccessForAnotherDocument(TxId),
    #[error("only the node of the member's department `{member_department}` serves their reads; this is `{serving}`'s node")]
    ServedByAnotherDepartment {
        member_department: DepartmentId,
        serving: DepartmentId,
    },
    #[error("department `{0}` is not the custodian, holds no unexpired grant and is not the recipient of a live offer")]
    NoReadRight(DepartmentId),
    #[error("record-access {0} already served its one download; record a new access")]
    AccessAlreadyUsed(TxId),
    #[error("{0}")]
    Storage(ViewError),
}

impl ReadRefusal {
    /// A stable machine-readable code, one per variant: it is written in
    /// read denials on chain, so it never changes.
    pub fn code(&self) -> &'static str {
        match self {
            ReadRefusal::MemberUnknown(..) => "read_member_unknown",
            ReadRefusal::MemberRevoked(..) => "read_member_revoked",
            ReadRefusal::DocumentUnknown(..) => "read_document_unknown",
            ReadRefusal::DocumentDisposed(..) => "read_document_disposed",
            ReadRefusal::ClearanceTooLow { .. } => "read_clearance_too_low",
            ReadRefusal::CiphertextNotCurrent { .. } => "read_ciphertext_not_current",
            ReadRefusal::AccessNotCommitted => "read_access_not_committed",
            ReadRefusal::AccessNotRecordAccess(..) => "read_access_not_record_access",
            ReadRefusal::AccessOfAnotherMember(..) => "read_access_of_another_member",
            ReadRefusal::AccessForAnotherDocument(..) => "read_access_for_another_document",
            ReadRefusal::ServedByAnotherDepartment { .. } => "read_served_by_another_department",
            ReadRefusal::NoReadRight(..) => "read_no_read_right",
            ReadRefusal::AccessAlreadyUsed(..) => "read_access_already_used",
            ReadRefusal::Storage(..) => "read_storage",
        }
    }
}

impl From<ViewError> for ReadRefusal {
    fn from(e: ViewError) -> Self {
        ReadRefusal::Storage(e)
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
