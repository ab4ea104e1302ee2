//! The one read rule (who may download a document's ciphertext, under
//! which access record, from which node) and the rules of `attest-read`,
//! the serving node's signed account of what became of a read request.
//! `docs/rules.md` §9.

use super::*;

use crate::reads::ReadOutcome;

/// A record-access transaction as committed: the transaction and where.
#[derive(Clone, Debug)]
pub struct CommittedAccess {
    pub tx_id: TxId,
    pub transaction: SignedTransaction,
    pub height: Height,
}

/// One download asked for: everything the read rule decides on besides
/// the state.
#[derive(Clone, Debug)]
pub struct ReadQuestion<'a> {
    /// The member asking (the read request's signer).
    pub member: &'a PublicKey,
    pub document: &'a DocumentId,
    /// The ciphertext the member expects.
    pub ciphertext_sha256: &'a Hash32,
    /// The access record the request names, as committed at the head;
    /// `None` when it names none or the one named is not committed.
    pub access: Option<&'a CommittedAccess>,
    /// The department whose node would serve the ciphertext.
    pub serving_department: &'a DepartmentId,
    /// Whether the serving node already served a download under this
    /// access record (the node keeps that, see `docs/rules.md` §9).
    pub access_used: bool,
}

/// A read the rule allows: the records it was decided on.
#[derive(Clone, Debug)]
pub struct ReadPermit {
    pub member: Member,
    pub document: Document,
    pub access_tx: TxId,
}

/// Decides whether `question` may be served given the state at the head
/// (time = the head block's time). The checks, in order, each with its
/// refusal: the member is enrolled and active; the document is registered
/// and not disposed; the member's clearance covers it; the ciphertext
/// named is the current one; the access record is a committed
/// record-access signed by this member for this document and ciphertext;
/// the serving node is the member's own department's; the member's
/// department is the custodian, an unexpired grantee or the recipient of
/// a live offer (an inspection before accepting); the record has not
/// served a download yet.
pub fn check_read<V: StateView + ?Sized>(
    view: &V,
    question: &ReadQuestion<'_>,
) -> Result<ReadPermit, ReadRefusal> {
    let member = view
        .member(question.member)?
        .ok_or(ReadRefusal::MemberUnknown(*question.member))?;
    if let MemberStatus::Revoked { .. } = member.status {
        return Err(ReadRefusal::MemberRevoked(member.key));
    }
    let document = view
        .document(question.document)?
        .ok_or_else(|| ReadRefusal::DocumentUnknown(question.document.clone()))?;
    if matches!(document.status, DocumentStatus::Disposed) {
        return Err(ReadRefusal::DocumentDisposed(document.id));
    }
    if member.clearance < document.classification {
        return Err(ReadRefusal::ClearanceTooLow {
            clearance: member.clearance,
            classification: document.classification,
        });
    }
    if *question.ciphertext_sha256 != document.ciphertext.sha256 {
        return Err(ReadRefusal::CiphertextNotCurrent {
            named: *question.ciphertext_sha256,
            current: document.ciphertext.sha256,
        });
    }
    let access = question.access.ok_or(ReadRefusal::AccessNotCommitted)?;
    let payload = &access.transaction.payload;
    let (TxBody::RecordAccess {
        document: accessed,
        ciphertext_sha256,
        ..
    }
    | TxBody::RecordAccessSealed {
        document: accessed,
        ciphertext_sha256,
        ..
    }) = &payload.body
    else {
        return Err(ReadRefusal::AccessNotRecordAccess(access.tx_id));
    };
    if payload.signer != member.key {
        return Err(ReadRefusal::AccessOfAnotherMember(access.tx_id));
    }
    if *accessed != document.id || *ciphertext_sha256 != document.ciphertext.sha256 {
        return Err(ReadRefusal::AccessForAnotherDocument(access.tx_id));
    }
    if *question.serving_department != member.department {
        return Err(ReadRefusal::ServedByAnotherDepartment {
            member_department: member.department.clone(),
            serving: question.serving_department.clone(),
        });
    }
    let time = view.chain()?.last_time;
    let department = &member.department;
    let custodian = document.custodian == *department;
    let grantee = document
        .grants
        .iter()
        .any(|g| g.department == *department && time <= g.expires_at);
    let recipient = live_offer(&document, time).is_some_and(|o| o.to == *department);
    if !custodian && !grantee && !recipient {
        return Err(ReadRefusal::NoReadRight(department.clone()));
    }
    if question.access_used {
        return Err(ReadRefusal::AccessAlreadyUsed(access.tx_id));
    }
    Ok(ReadPermit {
        access_tx: access.tx_id,
        member,
        document,
    })
}

/// The rules of `attest-read` (the nonce was checked by the caller): the
/// signer is the named department's node key; a served or failed read is
/// one of that department's members' reads of a registered document; a
/// denial carries a read request its member signed, for this chain.
pub(super) fn attest_read<V: StateView + ?Sized>(
    overlay: &Overlay<'_, V>,
    signer: &PublicKey,
    department: &DepartmentId,
    outcome: &ReadOutcome,
) -> Result<(), TxRefusal> {
    let found = overlay
        .department(department)?
        .ok_or_else(|| TxRefusal::UnknownDepartment(department.clone()))?;
    if found.keys.node_key != *signer {
        return Err(TxRefusal::NotTheDepartmentsNode(department.clone()));
    }
    match outcome {
        ReadOutcome::Served {
            member, document, ..
        }
        | ReadOutcome::Failed {
            member, document, ..
        } => {
            let reader = overlay
                .member(member)?
                .ok_or(TxRefusal::UnknownMember(*member))?;
            if reader.department != *department {
                return Err(TxRefusal::ReadOfAnotherDepartment {
                    member: *member,
                    member_department: reader.department,
                });
            }
            if overlay.document(document)?.is_none() {
                return Err(TxRefusal::UnknownDocument(document.clone()));
            }
            if let ReadOutcome::Failed { reason, .. } = outcome {
                check_required_text("reason", reason, TEXT_BYTES_MAX)?;
            }
        }
        ReadOutcome::Denied { request, code } => {
            if !request.verify_signature() {
                return Err(TxRefusal::DeniedRequestUnsigned);
            }
            let chain_id = &overlay.changes.chain.chain_id;
            if request.request.chain_id != *chain_id {
                return Err(TxRefusal::WrongChainId {
                    expected: chain_id.clone(),
                    found: request.request.chain_id.clone(),
                });
            }
            check_required_text("code", code, LABEL_BYTES_MAX)?;
        }
    }
    Ok(())
}

/// Whether the node of `department` may hold a copy of `document`'s
/// ciphertext at block time `time` (fetch it from another node): the
/// custodian, the recipient of a live offer, or an unexpired grantee. This
/// is custody replication between nodes, not a member's read: a node that
/// holds a copy hands it to no member except under [`check_read`].
pub fn department_may_hold(
    document: &Document,
    department: &DepartmentId,
    time: Timestamp,
) -> bool {
    document.custodian == *department
        || live_offer(document, time).is_some_and(|o| o.to == *department)
        || document
            .grants
            .iter()
            .any(|g| g.department == *department && time <= g.expires_at)
}
