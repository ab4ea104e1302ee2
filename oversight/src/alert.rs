//! What the detector reports.

use std::fmt;

use custody_ledger::types::{DepartmentId, DocumentId, Height, PublicKey, Timestamp, TxId};
use serde::{Deserialize, Serialize};

/// The rules, in the order alerts are listed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    BulkReads,
    OffHoursReads,
    UnfamiliarRecords,
    ReadsBeforeTransfer,
    ReadsBeforeRevocation,
    GrantBurst,
    UnusedGrants,
    ManyDepartments,
    DeniedAttempts,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 9] = [
        Rule::BulkReads,
        Rule::OffHoursReads,
        Rule::UnfamiliarRecords,
        Rule::ReadsBeforeTransfer,
        Rule::ReadsBeforeRevocation,
        Rule::GrantBurst,
        Rule::UnusedGrants,
        Rule::ManyDepartments,
        Rule::DeniedAttempts,
    ];

    /// The stable kebab-case name (also the JSON name).
    pub fn code(self) -> &'static str {
        match self {
            Rule::BulkReads => "bulk-reads",
            Rule::OffHoursReads => "off-hours-reads",
            Rule::UnfamiliarRecords => "unfamiliar-records",
            Rule::ReadsBeforeTransfer => "reads-before-transfer",
            Rule::ReadsBeforeRevocation => "reads-before-revocation",
            Rule::GrantBurst => "grant-burst",
            Rule::UnusedGrants => "unused-grants",
            Rule::ManyDepartments => "many-departments",
            Rule::DeniedAttempts => "denied-attempts",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One transaction an alert rests on.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct Evidence {
    pub height: Height,
    pub index: u32,
    pub tx: TxId,
    pub time: Timestamp,
    pub kind: String,
    pub document: Option<DocumentId>,
}

/// An alert: who did what, why it is unusual, and the transactions that
/// show it.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Alert {
    pub rule: Rule,
    /// The member responsible.
    pub member: Option<PublicKey>,
    /// Their department (for `many-departments`: the custodian).
    pub department: Option<DepartmentId>,
    /// Documents concerned, sorted.
    pub documents: Vec<DocumentId>,
    /// Evidence in chain order, at most `evidence_per_alert_max` of it.
    pub evidence: Vec<Evidence>,
    /// Evidence transactions in all (more than listed when cut).
    pub evidence_total: usize,
    /// How far beyond normal, in the rule's own unit (see `explanation`).
    pub score: f64,
    pub explanation: String,
}

impl Alert {
    /// Time of the first evidence.
    pub fn first_time(&self) -> Timestamp {
        self.evidence.first().map(|e| e.time).unwrap_or_default()
    }

    /// Height of the last evidence: the alert can be raised once this
    /// block is committed.
    pub fn last_height(&self) -> Height {
        self.evidence.last().map(|e| e.height).unwrap_or_default()
    }
}
