//! Members and departments by name, as the chain records them, for what
//! people read: histories, reports and proof checks show "Name
//! (department) 1a2b3c4d" beside the key instead of the key alone.

use std::collections::BTreeMap;

use custody_ledger::records::{Department, Member};
use custody_ledger::tx::TxBody;
use custody_ledger::types::{DepartmentId, PublicKey};
use custody_ledger::MemoryState;

/// How many hex digits of a key are shown beside a name.
pub const KEY_SHORT_HEX_DIGITS: usize = 8;

/// Who a key belongs to, from the chain's member and department records.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    members: &'a BTreeMap<PublicKey, Member>,
    departments: &'a BTreeMap<DepartmentId, Department>,
}

/// The signer of something, as far as the chain knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Who {
    /// The member's name, or "node of <department>" for a node key.
    pub name: Option<String>,
    pub department: Option<String>,
    pub key: String,
}

impl Who {
    /// "Name (department) 1a2b3c4d", or the whole key when the chain does
    /// not know it.
    pub fn label(&self) -> String {
        match (&self.name, &self.department) {
            (Some(name), Some(department)) => {
                format!("{name} ({department}) {}", short(&self.key))
            }
            _ => format!("unknown key {}", self.key),
        }
    }
}

fn short(hex: &str) -> &str {
    hex.get(..KEY_SHORT_HEX_DIGITS).unwrap_or(hex)
}

impl<'a> Names<'a> {
    pub fn new(state: &'a MemoryState) -> Names<'a> {
        Names {
            members: &state.members,
            departments: &state.departments,
        }
    }

    /// Who holds `key`: a member (enrolled at any time, revoked or not) or
    /// a department's node.
    pub fn who(&self, key: &PublicKey) -> Who {
        if let Some(member) = self.members.get(key) {
            return Who {
                name: Some(member.name.clone()),
                department: Some(member.department.to_string()),
                key: key.to_hex(),
            };
        }
        let node = self.departments.values().find(|d| d.keys.node_key == *key);
        Who {
            name: node.map(|d| format!("node of {}", d.name)),
            department: node.map(|d| d.id.to_string()),
            key: key.to_hex(),
        }
    }

    /// `who(key).label()`.
    pub fn label(&self, key: &PublicKey) -> String {
        self.who(key).label()
    }

    /// The department's name as the chain records it, or its id.
    pub fn department(&self, id: &DepartmentId) -> String {
        self.departments
            .get(id)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

/// What a transaction says, in plain words: its kind, the document and
/// the fields in the clear; a free text as `text` gives it (opened by the
/// caller), or "(sealed)" when it is sealed and was not opened.
pub fn what_it_says(body: &TxBody, text: Option<&str>) -> String {
    let sealed = crate::sealed_text::SEALED_PLACEHOLDER;
    let free = |label: &str, plain: Option<&str>| -> String {
        match text.or(plain) {
            Some(t) => format!(", {label} \"{t}\""),
            None => format!(", {label} {sealed}"),
        }
    };
    let on = body
        .document()
        .map(|d| format!(" on document {d}"))
        .unwrap_or_default();
    let detail = match body {
        TxBody::OfferTransfer { to, .. } => format!(", to {to}"),
        TxBody::GrantAccess { to, expires_at, .. } => {
            format!(", to {to} until {}", crate::audit::format_ms(expires_at.0))
        }
        TxBody::RevokeAccess { from, .. } => format!(", from {from}"),
        TxBody::Register { classification, .. } | TxBody::RegisterSealed { classification, .. } => {
            format!(", classification {classification}")
        }
        TxBody::RecordAccess { purpose, .. } => free("purpose", Some(purpose)),
        TxBody::RecordAccessSealed { .. } => free("purpose", None),
        TxBody::RejectTransfer { reason, .. } | TxBody::Dispose { reason, .. } => {
            free("reason", Some(reason))
        }
        TxBody::RejectTransferSealed { .. } | TxBody::DisposeSealed { .. } => free("reason", None),
        TxBody::Amend { reason, note, .. } => {
            format!(", reason {reason:?}{}", free("note", Some(note)))
        }
        TxBody::AmendSealed { reason, .. } => format!(", reason {reason:?}{}", free("note", None)),
        TxBody::RecordFixityCheck { result, .. }
        | TxBody::RecordFixityCheckSealed { result, .. } => format!(", result {result:?}"),
        TxBody::EnrollMember {
            name, department, ..
        } => {
            format!(", member \"{name}\" of {department}")
        }
        TxBody::AttestRead {
            department,
            outcome,
        } => {
            format!(", by the node of {department}: {}", outcome.name())
        }
        _ => String::new(),
    };
    format!("{}{on}{detail}", body.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_ledger::testkit::{seed_key, Federation};

    #[test]
    fn a_member_is_shown_by_name_department_and_short_key() {
        let federation = Federation::new(2, "names-test");
        let state = MemoryState::from_genesis(&federation.genesis);
        let names = Names::new(&state);
        let (key, member) = state.members.iter().next().expect("a genesis member");
        let label = names.label(key);
        assert!(label.starts_with(&member.name), "{label}");
        assert!(
            label.contains(&format!("({})", member.department)),
            "{label}"
        );
        assert!(
            label.ends_with(&key.to_hex()[..KEY_SHORT_HEX_DIGITS]),
            "{label}"
        );
    }

    #[test]
    fn a_key_the_chain_does_not_know_is_shown_whole() {
        let federation = Federation::new(1, "names-test");
        let state = MemoryState::from_genesis(&federation.genesis);
        let stranger = custody_ledger::encoding::public_key_of(&seed_key("names/stranger"));
        let label = Names::new(&state).label(&stranger);
        assert_eq!(label, format!("unknown key {}", stranger.to_hex()));
    }
}
