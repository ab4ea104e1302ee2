//! Membership: enrolling, updating and revoking a member, by an admin of
//! the member's department.

use super::*;

pub(super) fn enroll_member<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<(), TxRefusal> {
    let TxBody::EnrollMember {
        member,
        department,
        name,
        roles,
        clearance,
    } = body
    else {
        unreachable!("dispatched on the transaction kind");
    };
    require_role(signer, Role::Admin)?;
    require_department(signer, department)?;
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
    Ok(())
}

pub(super) fn update_member<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    signer: &Member,
    body: &TxBody,
) -> Result<(), TxRefusal> {
    let TxBody::UpdateMember {
        member,
        roles,
        clearance,
    } = body
    else {
        unreachable!("dispatched on the transaction kind");
    };
    require_role(signer, Role::Admin)?;
    let mut target = overlay
        .member(member)?
        .ok_or(TxRefusal::UnknownMember(*member))?;
    require_department(signer, &target.department)?;
    if let MemberStatus::Revoked { .. } = target.status {
        return Err(TxRefusal::MemberRevoked(*member));
    }
    check_roles(roles)?;
    target.roles = roles.clone();
    target.clearance = *clearance;
    overlay.changes.members.insert(*member, target);
    Ok(())
}

pub(super) fn revoke_member<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<(), TxRefusal> {
    let TxBody::RevokeMember { member, reason } = body else {
        unreachable!("dispatched on the transaction kind");
    };
    require_role(signer, Role::Admin)?;
    let mut target = overlay
        .member(member)?
        .ok_or(TxRefusal::UnknownMember(*member))?;
    require_department(signer, &target.department)?;
    if let MemberStatus::Revoked { .. } = target.status {
        return Err(TxRefusal::MemberRevoked(*member));
    }
    check_text("reason", reason, TEXT_BYTES_MAX)?;
    target.status = MemberStatus::Revoked { at: ctx.height };
    overlay.changes.members.insert(*member, target);
    Ok(())
}
