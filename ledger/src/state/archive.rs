//! Archive records: registering a document, then every transaction on an
//! existing one (transfer, access, amendment, fixity, disposal), one
//! function per kind.

use super::*;

pub(super) fn register<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<(), TxRefusal> {
    let (TxBody::Register {
        document,
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
        ..
    }
    | TxBody::RegisterSealed {
        document,
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
        ..
    }) = body
    else {
        unreachable!("dispatched on the transaction kind");
    };
    let title = match body {
        TxBody::Register { title, .. } => Text::Plain(title),
        TxBody::RegisterSealed { title, .. } => Text::Sealed(title),
        _ => unreachable!("dispatched on the transaction kind"),
    };
    require_role(signer, Role::Clerk)?;
    require_department(signer, department)?;
    require_clearance(signer, *classification)?;
    check_required_any_text(fields::TITLE, title, TEXT_BYTES_MAX)?;
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
        title: match title {
            Text::Plain(title) => title.to_string(),
            Text::Sealed(_) => String::new(),
        },
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
    let kind = match title {
        Text::Plain(_) => EventKind::Registered {
            classification: *classification,
            plaintext: *plaintext,
            ciphertext: *ciphertext,
        },
        Text::Sealed(title) => EventKind::RegisteredSealed {
            classification: *classification,
            plaintext: *plaintext,
            ciphertext: *ciphertext,
            title: title.clone(),
        },
    };
    adjust_held(overlay, department, 1)?;
    record_event(overlay, &mut doc, signer, ctx, kind);
    Ok(())
}

/// The rules every transaction on an existing document follows, then its
/// kind's own.
pub(super) fn apply_to_document<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<(), TxRefusal> {
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
    require_clearance(signer, doc.classification)?;
    let custodian_before = doc.custodian.clone();
    let kind = apply_document_tx(overlay, body, &mut doc, signer, ctx)?;
    // Keep each department's count of held documents; these are the
    // only writes before the event, and they cannot fail.
    if doc.status == DocumentStatus::Disposed {
        adjust_held(overlay, &custodian_before, -1)?;
    } else if doc.custodian != custodian_before {
        adjust_held(overlay, &custodian_before, -1)?;
        adjust_held(overlay, &doc.custodian, 1)?;
    }
    record_event(overlay, &mut doc, signer, ctx, kind);
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
        }
        | TxBody::RejectTransferSealed {
            document,
            previous_event,
            ..
        }
        | TxBody::RecordAccessSealed {
            document,
            previous_event,
            ..
        }
        | TxBody::AmendSealed {
            document,
            previous_event,
            ..
        }
        | TxBody::RecordFixityCheckSealed {
            document,
            previous_event,
            ..
        }
        | TxBody::DisposeSealed {
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
        | TxBody::Register { .. }
        | TxBody::RegisterSealed { .. }
        | TxBody::AttestRead { .. }
        | TxBody::SubmitEvidence { .. } => unreachable!("not a document transaction"),
    }
}

fn apply_document_tx<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    body: &TxBody,
    doc: &mut Document,
    signer: &Member,
    ctx: &Context,
) -> Result<EventKind, TxRefusal> {
    match body {
        TxBody::OfferTransfer { .. } => offer_transfer(overlay, doc, signer, ctx, body),
        TxBody::AcceptTransfer { .. } => accept_transfer(doc, signer, ctx, body),
        TxBody::RejectTransfer { .. } | TxBody::RejectTransferSealed { .. } => {
            reject_transfer(doc, signer, body)
        }
        TxBody::CancelTransfer { .. } => cancel_transfer(doc, signer, body),
        TxBody::GrantAccess { .. } => grant_access(overlay, doc, signer, ctx, body),
        TxBody::RevokeAccess { .. } => revoke_access(doc, signer, body),
        TxBody::RecordAccess { .. } | TxBody::RecordAccessSealed { .. } => {
            record_access(doc, signer, ctx, body)
        }
        TxBody::Amend { .. } | TxBody::AmendSealed { .. } => amend(doc, signer, ctx, body),
        TxBody::RecordFixityCheck { .. } | TxBody::RecordFixityCheckSealed { .. } => {
            record_fixity_check(doc, signer, body)
        }
        TxBody::Dispose { .. } | TxBody::DisposeSealed { .. } => dispose(doc, signer, ctx, body),
        TxBody::EnrollMember { .. }
        | TxBody::UpdateMember { .. }
        | TxBody::RevokeMember { .. }
        | TxBody::ProposeChange { .. }
        | TxBody::ApproveChange { .. }
        | TxBody::Register { .. }
        | TxBody::RegisterSealed { .. }
        | TxBody::AttestRead { .. }
        | TxBody::SubmitEvidence { .. } => unreachable!("not a document transaction"),
    }
}

pub(super) fn offer_transfer<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    doc: &mut Document,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let TxBody::OfferTransfer {
        to,
        wrapped_key,
        expires_at,
        ..
    } = body
    else {
        unreachable!("dispatched on the transaction kind");
    };
    let time = ctx.time;
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
    Ok(EventKind::Offered {
        to: to.clone(),
        expires_at,
    })
}

pub(super) fn accept_transfer(
    doc: &mut Document,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let TxBody::AcceptTransfer {
        ciphertext_sha256, ..
    } = body
    else {
        unreachable!("dispatched on the transaction kind");
    };
    let time = ctx.time;
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
    Ok(EventKind::Accepted { from })
}

pub(super) fn reject_transfer(
    doc: &mut Document,
    signer: &Member,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let reason = match body {
        TxBody::RejectTransfer { reason, .. } => Text::Plain(reason),
        TxBody::RejectTransferSealed { reason, .. } => Text::Sealed(reason),
        _ => unreachable!("dispatched on the transaction kind"),
    };
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
    check_any_text(fields::REASON, reason, TEXT_BYTES_MAX)?;
    doc.status = DocumentStatus::Active;
    Ok(match reason {
        Text::Plain(reason) => EventKind::Rejected {
            reason: reason.to_string(),
        },
        Text::Sealed(reason) => EventKind::RejectedSealed {
            reason: reason.clone(),
        },
    })
}

pub(super) fn cancel_transfer(
    doc: &mut Document,
    signer: &Member,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let TxBody::CancelTransfer { .. } = body else {
        unreachable!("dispatched on the transaction kind");
    };
    require_role(signer, Role::Clerk)?;
    require_custodian(signer, doc)?;
    if !matches!(doc.status, DocumentStatus::InTransfer(_)) {
        return Err(TxRefusal::NoPendingOffer(doc.id.clone()));
    }
    doc.status = DocumentStatus::Active;
    Ok(EventKind::Cancelled)
}

pub(super) fn grant_access<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    doc: &mut Document,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let TxBody::GrantAccess {
        to,
        wrapped_key,
        expires_at,
        ..
    } = body
    else {
        unreachable!("dispatched on the transaction kind");
    };
    let time = ctx.time;
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
    Ok(EventKind::Granted {
        to: to.clone(),
        expires_at: *expires_at,
    })
}

pub(super) fn revoke_access(
    doc: &mut Document,
    signer: &Member,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let TxBody::RevokeAccess { from, .. } = body else {
        unreachable!("dispatched on the transaction kind");
    };
    require_role(signer, Role::Clerk)?;
    require_custodian(signer, doc)?;
    let before = doc.grants.len();
    doc.grants.retain(|g| g.department != *from);
    if doc.grants.len() == before {
        return Err(TxRefusal::NoSuchGrant(from.clone()));
    }
    Ok(EventKind::Revoked { from: from.clone() })
}

pub(super) fn record_access(
    doc: &mut Document,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let (purpose, ciphertext_sha256) = match body {
        TxBody::RecordAccess {
            purpose,
            ciphertext_sha256,
            ..
        } => (Text::Plain(purpose), ciphertext_sha256),
        TxBody::RecordAccessSealed {
            purpose,
            ciphertext_sha256,
            ..
        } => (Text::Sealed(purpose), ciphertext_sha256),
        _ => unreachable!("dispatched on the transaction kind"),
    };
    let time = ctx.time;
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
    check_required_any_text(fields::PURPOSE, purpose, TEXT_BYTES_MAX)?;
    if *ciphertext_sha256 != doc.ciphertext.sha256 {
        return Err(TxRefusal::CiphertextMismatch {
            named: *ciphertext_sha256,
            current: doc.ciphertext.sha256,
        });
    }
    Ok(match purpose {
        Text::Plain(purpose) => EventKind::Accessed {
            purpose: purpose.to_string(),
            ciphertext_sha256: *ciphertext_sha256,
        },
        Text::Sealed(purpose) => EventKind::AccessedSealed {
            purpose: purpose.clone(),
            ciphertext_sha256: *ciphertext_sha256,
        },
    })
}

pub(super) fn amend(
    doc: &mut Document,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let (TxBody::Amend {
        reason,
        format,
        plaintext,
        ciphertext,
        wrapped_key,
        ..
    }
    | TxBody::AmendSealed {
        reason,
        format,
        plaintext,
        ciphertext,
        wrapped_key,
        ..
    }) = body
    else {
        unreachable!("dispatched on the transaction kind");
    };
    let (note, title) = match body {
        TxBody::Amend { note, .. } => (Text::Plain(note), None),
        TxBody::AmendSealed { note, title, .. } => (Text::Sealed(note), Some(title)),
        _ => unreachable!("dispatched on the transaction kind"),
    };
    let time = ctx.time;
    require_role(signer, Role::Clerk)?;
    require_custodian(signer, doc)?;
    require_not_in_live_transfer(doc, time)?;
    check_any_text(fields::NOTE, note, TEXT_BYTES_MAX)?;
    match title {
        Some(title) => check_sealed_text(fields::TITLE, title, TEXT_BYTES_MAX)?,
        // The new version has a new data key: a title sealed under the old
        // one would no longer open for those given only the new key.
        None if doc.title_is_sealed() => {
            return Err(TxRefusal::SealedTitleNeedsSealedAmend(doc.id.clone()))
        }
        None => {}
    }
    check_format(format)?;
    check_wrapped_key(wrapped_key)?;
    let previous_plaintext = doc.plaintext;
    let previous_ciphertext = doc.ciphertext;
    doc.version = doc.version.saturating_add(1);
    doc.format = format.clone();
    doc.plaintext = *plaintext;
    doc.ciphertext = *ciphertext;
    doc.custodian_key = wrapped_key.clone();
    if title.is_some() {
        doc.title = String::new();
    }
    // A lapsed offer or old grants wrap the previous version's key.
    doc.status = DocumentStatus::Active;
    doc.grants.clear();
    Ok(match (note, title) {
        (Text::Plain(note), _) => EventKind::Amended {
            version: doc.version,
            reason: *reason,
            note: note.to_string(),
            previous_plaintext,
            previous_ciphertext,
            plaintext: *plaintext,
            ciphertext: *ciphertext,
        },
        (Text::Sealed(note), Some(title)) => EventKind::AmendedSealed {
            version: doc.version,
            reason: *reason,
            note: note.clone(),
            previous_plaintext,
            previous_ciphertext,
            plaintext: *plaintext,
            ciphertext: *ciphertext,
            title: title.clone(),
        },
        (Text::Sealed(_), None) => unreachable!("an amend-sealed carries a sealed title"),
    })
}

pub(super) fn record_fixity_check(
    doc: &mut Document,
    signer: &Member,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let (ciphertext_sha256, result, note) = match body {
        TxBody::RecordFixityCheck {
            ciphertext_sha256,
            result,
            note,
            ..
        } => (ciphertext_sha256, result, Text::Plain(note)),
        TxBody::RecordFixityCheckSealed {
            ciphertext_sha256,
            result,
            note,
            ..
        } => (ciphertext_sha256, result, Text::Sealed(note)),
        _ => unreachable!("dispatched on the transaction kind"),
    };
    if signer.has_role(Role::Auditor) {
        // Auditors check documents of any department.
    } else if signer.has_role(Role::Clerk) {
        require_custodian(signer, doc)?;
    } else {
        return Err(TxRefusal::NeitherClerkNorAuditor);
    }
    check_any_text(fields::NOTE, note, TEXT_BYTES_MAX)?;
    if *ciphertext_sha256 != doc.ciphertext.sha256 {
        return Err(TxRefusal::CiphertextMismatch {
            named: *ciphertext_sha256,
            current: doc.ciphertext.sha256,
        });
    }
    Ok(EventKind::FixityChecked {
        ciphertext_sha256: *ciphertext_sha256,
        result: *result,
    })
}

pub(super) fn dispose(
    doc: &mut Document,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<EventKind, TxRefusal> {
    let reason = match body {
        TxBody::Dispose { reason, .. } => Text::Plain(reason),
        TxBody::DisposeSealed { reason, .. } => Text::Sealed(reason),
        _ => unreachable!("dispatched on the transaction kind"),
    };
    let time = ctx.time;
    require_role(signer, Role::Admin)?;
    require_custodian(signer, doc)?;
    require_not_in_live_transfer(doc, time)?;
    check_required_any_text(fields::REASON, reason, TEXT_BYTES_MAX)?;
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
    Ok(match reason {
        Text::Plain(reason) => EventKind::Disposed {
            reason: reason.to_string(),
        },
        Text::Sealed(reason) => EventKind::DisposedSealed {
            reason: reason.clone(),
        },
    })
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
        format_version: kind.format_version(),
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
