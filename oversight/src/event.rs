//! The detector's input: one committed action, reduced to what oversight
//! needs, with the place of its transaction on chain.
//!
//! Events come from committed blocks ([`events_of_block`]) or, in tests and
//! benchmarks, are produced directly. Actions the rules do not look at are
//! kept as [`Action::Other`] so that evidence can still point at them.

use custody_ledger::block::Block;
use custody_ledger::genesis::Genesis;
use custody_ledger::reads::ReadOutcome;
use custody_ledger::tx::{GovernanceChange, SignedTransaction, TxBody};
use custody_ledger::types::{
    Classification, DepartmentId, DocumentId, Height, PublicKey, Timestamp, TxId,
};
use serde::{Deserialize, Serialize};

/// One committed action.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Event {
    /// Block height of the transaction (0 for the genesis).
    pub height: Height,
    /// Position of the transaction in its block.
    pub index: u32,
    pub tx: TxId,
    /// Block time.
    pub time: Timestamp,
    /// The member who signed it.
    pub actor: PublicKey,
    pub action: Action,
}

/// What the member did.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A member joined a department (enrolment, or a department's admins
    /// at genesis or by governance).
    Enroll {
        member: PublicKey,
        department: DepartmentId,
    },
    Revoke {
        member: PublicKey,
    },
    Register {
        document: DocumentId,
        record_type: String,
        classification: Classification,
        department: DepartmentId,
    },
    /// A recorded read (`RecordAccess`).
    Read {
        document: DocumentId,
    },
    Grant {
        document: DocumentId,
        to: DepartmentId,
    },
    Offer {
        document: DocumentId,
        to: DepartmentId,
    },
    /// The offered department accepted: it becomes the custodian.
    Accept {
        document: DocumentId,
    },
    /// A refused read attempt, as the refusing node attested it on chain
    /// (`attest-read` with a `denied` outcome): the member whose signed
    /// request it carries tried to open `document` and was turned away for
    /// `reason` (the refusal's code).
    Denied {
        document: DocumentId,
        reason: String,
    },
    /// Anything else (governance, amendments, fixity checks, …).
    Other {
        kind: String,
    },
}

impl Action {
    /// Short kebab-case name, for evidence lines.
    pub fn kind(&self) -> &str {
        match self {
            Action::Enroll { .. } => "enroll-member",
            Action::Revoke { .. } => "revoke-member",
            Action::Register { .. } => "register",
            Action::Read { .. } => "record-access",
            Action::Grant { .. } => "grant-access",
            Action::Offer { .. } => "offer-transfer",
            Action::Accept { .. } => "accept-transfer",
            Action::Denied { .. } => "denied-access",
            Action::Other { kind } => kind,
        }
    }

    /// The document acted on, if any.
    pub fn document(&self) -> Option<&DocumentId> {
        match self {
            Action::Register { document, .. }
            | Action::Read { document }
            | Action::Grant { document, .. }
            | Action::Offer { document, .. }
            | Action::Accept { document }
            | Action::Denied { document, .. } => Some(document),
            _ => None,
        }
    }
}

/// The action of a transaction body.
pub fn action_of(body: &TxBody) -> Action {
    match body {
        TxBody::EnrollMember {
            member, department, ..
        } => Action::Enroll {
            member: *member,
            department: department.clone(),
        },
        TxBody::RevokeMember { member, .. } => Action::Revoke { member: *member },
        TxBody::Register {
            document,
            record_type,
            department,
            classification,
            ..
        }
        | TxBody::RegisterSealed {
            document,
            record_type,
            department,
            classification,
            ..
        } => Action::Register {
            document: document.clone(),
            record_type: record_type.clone(),
            classification: *classification,
            department: department.clone(),
        },
        TxBody::RecordAccess { document, .. } | TxBody::RecordAccessSealed { document, .. } => {
            Action::Read {
                document: document.clone(),
            }
        }
        TxBody::GrantAccess { document, to, .. } => Action::Grant {
            document: document.clone(),
            to: to.clone(),
        },
        TxBody::OfferTransfer { document, to, .. } => Action::Offer {
            document: document.clone(),
            to: to.clone(),
        },
        TxBody::AcceptTransfer { document, .. } => Action::Accept {
            document: document.clone(),
        },
        TxBody::AttestRead {
            outcome: ReadOutcome::Denied { request, code },
            ..
        } => Action::Denied {
            document: request.request.document.clone(),
            reason: code.clone(),
        },
        other => Action::Other {
            kind: other.kind().to_string(),
        },
    }
}

/// Who a transaction's event is about: its signer, except for a refused
/// read, which is the requesting member's act attested by the refusing
/// node (the member's own signed request, carried in the attestation,
/// names them).
pub fn actor_of(tx: &SignedTransaction) -> PublicKey {
    match &tx.payload.body {
        TxBody::AttestRead {
            outcome: ReadOutcome::Denied { request, .. },
            ..
        } => request.request.member,
        _ => tx.payload.signer,
    }
}

/// The events of one committed block, in transaction order. A proposal to
/// add a department enrols its admins at once: they can act only after it
/// executes, and the detector needs only their department.
pub fn events_of_block(block: &Block) -> Vec<Event> {
    let height = block.header.height;
    let time = block.header.time;
    let mut events = Vec::with_capacity(block.transactions.len());
    for (index, (tx, id)) in block.transactions.iter().zip(block.tx_ids()).enumerate() {
        let index = index as u32;
        if let TxBody::ProposeChange {
            change: GovernanceChange::AddDepartment(new),
        } = &tx.payload.body
        {
            for admin in &new.admins {
                events.push(Event {
                    height,
                    index,
                    tx: id,
                    time,
                    actor: tx.payload.signer,
                    action: Action::Enroll {
                        member: admin.key,
                        department: new.id.clone(),
                    },
                });
            }
            continue;
        }
        events.push(Event {
            height,
            index,
            tx: id,
            time,
            actor: actor_of(tx),
            action: action_of(&tx.payload.body),
        });
    }
    events
}

/// The genesis's admins as enrolment events at height 0 (with no
/// transaction: their tx id is all zeroes and never used as evidence).
pub fn events_of_genesis(genesis: &Genesis) -> Vec<Event> {
    let mut events = Vec::new();
    for department in &genesis.departments {
        for admin in &department.admins {
            events.push(Event {
                height: Height(0),
                index: 0,
                tx: TxId([0; 32]),
                time: genesis.genesis_time,
                actor: admin.key,
                action: Action::Enroll {
                    member: admin.key,
                    department: department.id.clone(),
                },
            });
        }
    }
    events
}
