//! The archive state machine: pure, deterministic, no I/O.
//!
//! `apply_block(view, block)` checks a block against the state it reads
//! through [`StateView`] and returns the [`StateChanges`] it makes, or a
//! [`Refusal`] naming the transaction and the rule it breaks. The same rules
//! run against the in-memory [`MemoryState`] (tests, verification) and the
//! sled store. Time is always block time.
//!
//! One file per concern: `view` (what the rules read and write), `refusal`
//! (why something is refused, with stable codes), `checks` (shared checks),
//! one rule function per transaction kind in `membership`, `governance` and
//! `archive`, `apply` (blocks) and `memory` (the genesis and the in-memory
//! state).

mod apply;
mod archive;
mod checks;
mod evidence;
mod governance;
mod membership;
mod memory;
mod reads;
mod refusal;
mod view;

pub use apply::{
    apply_block, apply_block_identified, apply_block_with, build_block, build_block_identified,
    check_transaction, select_transactions, Selection, Signatures,
};
pub use checks::check_carried_keys;
pub use governance::Tally;
pub use memory::{genesis_changes, MemoryState, StateDigest};
pub use reads::{check_read, department_may_hold, CommittedAccess, ReadPermit, ReadQuestion};
pub use refusal::{HeaderRefusal, ReadRefusal, Refusal, TxRefusal};
pub use view::{ChainInfo, Overlay, StateChanges, StateView, ViewError};

// The rule files import this module's names with `use super::*`: they
// share one vocabulary of records, types and checks.
use checks::*;

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::block::Block;
use crate::certificate::CertificateError;
use crate::encoding::{self, tags};
use crate::evidence::{EvidenceRecord, SignedVote};
use crate::genesis::{self, Genesis};
use crate::records::{
    Department, Document, DocumentEvent, DocumentStatus, EventKind, Grant, Member, MemberStatus,
    NewDepartment, Offer, Parameters, Proposal, TxLocation, Validator, ValidatorSet,
    GRANTS_PER_DOCUMENT_MAX,
};
use crate::sealed::{fields, SealedText, Text, SEALED_TEXT_OVERHEAD_BYTES};
use crate::tx::{GovernanceChange, SignedTransaction, TxBody, LABEL_BYTES_MAX, TEXT_BYTES_MAX};
use crate::types::{
    BlockHash, Classification, DepartmentId, DocumentId, EventHash, Format, Hash32, Height, Nonce,
    ProposalId, PublicKey, Retention, Role, Timestamp, TxId, WrappedKey, FORMAT_VERSION,
    WRAPPED_KEY_BYTES_MAX, YEAR_MS,
};

/// Where and when a transaction is applied.
struct Context {
    height: Height,
    time: Timestamp,
    tx_id: TxId,
    /// The public keys the transaction carries were already found valid
    /// (see [`Signatures::AlreadyVerifiedWithKeys`]).
    keys_checked: bool,
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
    if !crate::tx::TX_FORMAT_VERSIONS.contains(&payload.format_version) {
        return Err(TxRefusal::UnsupportedFormatVersion(payload.format_version));
    }
    if payload.format_version != payload.body.format_version() {
        return Err(TxRefusal::FormatVersionMismatch {
            kind: payload.body.kind(),
            required: payload.body.format_version(),
            found: payload.format_version,
        });
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
    // A node's attestation is signed by the department's node key, which
    // is no member: its own rules say who may sign it.
    if let TxBody::AttestRead {
        department,
        outcome,
    } = &payload.body
    {
        reads::attest_read(overlay, &payload.signer, department, outcome)?;
        overlay.changes.nonces.insert(payload.signer, payload.nonce);
        return Ok(());
    }
    if let TxBody::SubmitEvidence {
        reporter,
        first,
        second,
    } = &payload.body
    {
        evidence::submit_evidence(overlay, &payload.signer, ctx, reporter, first, second)?;
        overlay.changes.nonces.insert(payload.signer, payload.nonce);
        return Ok(());
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

    let body = &payload.body;
    match body {
        TxBody::EnrollMember { .. } => membership::enroll_member(overlay, &signer, ctx, body)?,
        TxBody::UpdateMember { .. } => membership::update_member(overlay, &signer, body)?,
        TxBody::RevokeMember { .. } => membership::revoke_member(overlay, &signer, ctx, body)?,
        TxBody::ProposeChange { .. } => governance::propose_change(overlay, &signer, ctx, body)?,
        TxBody::ApproveChange { .. } => governance::approve_change(overlay, &signer, ctx, body)?,
        TxBody::Register { .. } | TxBody::RegisterSealed { .. } => {
            archive::register(overlay, &signer, ctx, body)?
        }
        TxBody::OfferTransfer { .. }
        | TxBody::AcceptTransfer { .. }
        | TxBody::RejectTransfer { .. }
        | TxBody::CancelTransfer { .. }
        | TxBody::GrantAccess { .. }
        | TxBody::RevokeAccess { .. }
        | TxBody::RecordAccess { .. }
        | TxBody::Amend { .. }
        | TxBody::RecordFixityCheck { .. }
        | TxBody::Dispose { .. }
        | TxBody::RejectTransferSealed { .. }
        | TxBody::RecordAccessSealed { .. }
        | TxBody::AmendSealed { .. }
        | TxBody::RecordFixityCheckSealed { .. }
        | TxBody::DisposeSealed { .. } => archive::apply_to_document(overlay, &signer, ctx, body)?,
        TxBody::AttestRead { .. } | TxBody::SubmitEvidence { .. } => {
            unreachable!("node-signed kinds returned above")
        }
    }
    overlay.changes.nonces.insert(payload.signer, payload.nonce);
    Ok(())
}
