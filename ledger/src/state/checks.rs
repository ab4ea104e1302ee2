//! Checks shared by the rules of several transaction kinds.

use super::*;

pub(super) fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), TxRefusal> {
    if text.len() > max {
        return Err(TxRefusal::TextTooLong { field, max });
    }
    Ok(())
}

pub(super) fn check_required_text(
    field: &'static str,
    text: &str,
    max: usize,
) -> Result<(), TxRefusal> {
    if text.is_empty() {
        return Err(TxRefusal::EmptyField(field));
    }
    check_text(field, text, max)
}

/// A sealed text's shape: at least a nonce and a tag, and at most `max`
/// bytes of plaintext under them. Its content is for the key holders.
pub(super) fn check_sealed_text(
    field: &'static str,
    text: &SealedText,
    max: usize,
) -> Result<(), TxRefusal> {
    let Some(plaintext_len) = text.plaintext_len() else {
        return Err(TxRefusal::SealedTextMalformed {
            field,
            min: SEALED_TEXT_OVERHEAD_BYTES,
        });
    };
    if plaintext_len > max {
        return Err(TxRefusal::TextTooLong { field, max });
    }
    Ok(())
}

/// [`check_text`] or [`check_sealed_text`], as the text comes.
pub(super) fn check_any_text(field: &'static str, text: Text, max: usize) -> Result<(), TxRefusal> {
    match text {
        Text::Plain(text) => check_text(field, text, max),
        Text::Sealed(text) => check_sealed_text(field, text, max),
    }
}

/// [`check_required_text`] or [`check_sealed_text`]: whether a sealed text
/// is empty only its readers can tell.
pub(super) fn check_required_any_text(
    field: &'static str,
    text: Text,
    max: usize,
) -> Result<(), TxRefusal> {
    match text {
        Text::Plain(text) => check_required_text(field, text, max),
        Text::Sealed(text) => check_sealed_text(field, text, max),
    }
}

pub(super) fn check_format(format: &Format) -> Result<(), TxRefusal> {
    check_required_text("format.mime", &format.mime, LABEL_BYTES_MAX)?;
    if let Some(pronom) = &format.pronom {
        check_required_text("format.pronom", pronom, LABEL_BYTES_MAX)?;
    }
    Ok(())
}

pub(super) fn check_wrapped_key(key: &WrappedKey) -> Result<(), TxRefusal> {
    if key.0.is_empty() || key.0.len() > WRAPPED_KEY_BYTES_MAX {
        return Err(TxRefusal::WrappedKeyInvalid {
            max: WRAPPED_KEY_BYTES_MAX,
        });
    }
    Ok(())
}

pub(super) fn check_roles(roles: &[Role]) -> Result<(), TxRefusal> {
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

pub(super) fn check_member_key(key: &PublicKey) -> Result<(), TxRefusal> {
    match ed25519_dalek::VerifyingKey::from_bytes(&key.0) {
        Ok(k) if !k.is_weak() => Ok(()),
        _ => Err(TxRefusal::WeakKey(*key)),
    }
}

pub(super) fn require_role(member: &Member, role: Role) -> Result<(), TxRefusal> {
    if member.has_role(role) {
        Ok(())
    } else {
        Err(TxRefusal::MissingRole { needed: role })
    }
}

pub(super) fn require_department(member: &Member, needed: &DepartmentId) -> Result<(), TxRefusal> {
    if member.department == *needed {
        Ok(())
    } else {
        Err(TxRefusal::WrongDepartment {
            signer: member.department.clone(),
            needed: needed.clone(),
        })
    }
}

pub(super) fn require_clearance(
    member: &Member,
    classification: Classification,
) -> Result<(), TxRefusal> {
    if member.clearance >= classification {
        Ok(())
    } else {
        Err(TxRefusal::ClearanceTooLow {
            clearance: member.clearance,
            classification,
        })
    }
}

pub(super) fn require_custodian(member: &Member, doc: &Document) -> Result<(), TxRefusal> {
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
pub(super) fn live_offer(doc: &Document, time: Timestamp) -> Option<&Offer> {
    match &doc.status {
        DocumentStatus::InTransfer(offer) if time <= offer.expires_at => Some(offer),
        _ => None,
    }
}

pub(super) fn require_not_in_live_transfer(
    doc: &Document,
    time: Timestamp,
) -> Result<(), TxRefusal> {
    if live_offer(doc, time).is_some() {
        return Err(TxRefusal::DocumentInTransfer(doc.id.clone()));
    }
    Ok(())
}

pub(super) fn require_existing_department<V: StateView + ?Sized>(
    view: &V,
    id: &DepartmentId,
) -> Result<Department, TxRefusal> {
    view.department(id)?
        .ok_or_else(|| TxRefusal::UnknownDepartment(id.clone()))
}

pub(super) fn future_expiry(expires_at: Timestamp, time: Timestamp) -> Result<(), TxRefusal> {
    if expires_at <= time {
        return Err(TxRefusal::ExpiryNotInFuture {
            expires_at,
            block_time: time,
        });
    }
    Ok(())
}
