//! Governance: proposing and approving a change of the federation, which
//! executes once departments with more than 2/3 of the voting power
//! approved it.

use super::*;

/// Where a proposal stands against the threshold: the voting power of the
/// departments that approved it, out of the power of all departments now.
/// Approvals of departments removed since count for nothing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    /// Power of the existing departments that approved (a sum of `u64`
    /// powers, so never overflowing).
    pub approved_power: u128,
    /// Power of all existing departments.
    pub total_power: u128,
    /// Existing departments that have not approved, by id.
    pub waiting_for: Vec<DepartmentId>,
}

impl Tally {
    /// The tally of `proposal` among `departments` (the departments in the
    /// state it is counted in).
    pub fn of(proposal: &Proposal, departments: &[Department]) -> Tally {
        let mut tally = Tally {
            approved_power: 0,
            total_power: 0,
            waiting_for: Vec::new(),
        };
        for d in departments {
            tally.total_power += u128::from(d.voting_power);
            if proposal.approvals.contains(&d.id) {
                tally.approved_power += u128::from(d.voting_power);
            } else {
                tally.waiting_for.push(d.id.clone());
            }
        }
        tally.waiting_for.sort();
        tally
    }

    /// Whether the approvals hold more than 2/3 of the power: the change
    /// then executes (`docs/rules.md` §4).
    pub fn passes(&self) -> bool {
        3 * self.approved_power > 2 * self.total_power
    }

    /// The least approved power that passes: `floor(2 × total / 3) + 1`.
    pub fn power_needed(&self) -> u128 {
        2 * self.total_power / 3 + 1
    }
}

pub(super) fn propose_change<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<(), TxRefusal> {
    let TxBody::ProposeChange { change } = body else {
        unreachable!("dispatched on the transaction kind");
    };
    require_role(signer, Role::Admin)?;
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
    Ok(())
}

pub(super) fn approve_change<V: StateView + ?Sized>(
    overlay: &mut Overlay<'_, V>,
    signer: &Member,
    ctx: &Context,
    body: &TxBody,
) -> Result<(), TxRefusal> {
    let TxBody::ApproveChange { proposal } = body else {
        unreachable!("dispatched on the transaction kind");
    };
    require_role(signer, Role::Admin)?;
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
    Ok(())
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
    if !Tally::of(&proposal, &departments).passes() {
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
