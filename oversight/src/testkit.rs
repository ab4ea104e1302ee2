//! A labelled workload for the benchmark and tests: four departments of
//! members with habits (working hours, usual record types, daily volumes
//! with a weekly rhythm) over simulated months, with anomalies of every
//! rule's kind injected at known places, and decoys crafted to look like
//! them while staying normal (just under a threshold, or spread out).
//!
//! Everything follows from the seed (splitmix64, no other randomness), so
//! a figure in `docs/performance.md` is one command to reproduce. Events
//! are produced at the detector's input level, not as signed transactions.

use std::collections::{BTreeMap, BTreeSet};

use custody_ledger::types::{
    Classification, DepartmentId, DocumentId, Height, PublicKey, Timestamp, TxId,
};

use crate::alert::{Alert, Rule};
use crate::event::{Action, Event};

/// Local midnight (UTC+8) of Monday 2026-01-05, the first simulated day.
pub const FIRST_DAY_MS: u64 = 1_767_225_600_000 + 4 * 86_400_000 - 8 * 3_600_000;
const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;
const MINUTE_MS: u64 = 60_000;
/// Members per department.
pub const MEMBERS_PER_DEPARTMENT: usize = 10;
/// Transactions per simulated block.
const EVENTS_PER_BLOCK: usize = 20;
/// Documents each department holds before the first day.
const DOCUMENTS_PER_DEPARTMENT: usize = 1500;
/// First day anomalies may be injected: baselines and warm-ups are learnt.
const INJECT_FROM_DAY: u64 = 35;
/// Draws of a (member, day) for one injection before it is left out.
const PLACEMENT_DRAWS_MAX: u32 = 10_000;

const DEPARTMENTS: [(&str, [&str; 3]); 4] = [
    (
        "civil-affairs",
        ["birth-certificate", "marriage-record", "household-register"],
    ),
    (
        "social-security",
        ["pension-file", "benefit-claim", "employment-record"],
    ),
    (
        "health",
        ["patient-record", "vaccination-record", "death-certificate"],
    ),
    ("finance", ["tax-record", "payroll", "procurement-file"]),
];
/// Read volume by weekday, Monday first (weekends are off).
const WEEKDAY_FACTOR: [f64; 5] = [1.2, 1.0, 1.0, 1.0, 0.8];

/// What an injected stretch of events is.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// The rule it is made to trigger (or, for a decoy, to resemble).
    pub rule: Rule,
    /// A decoy: normal behaviour that looks like the rule's kind.
    pub benign: bool,
    pub member: PublicKey,
    pub note: String,
}

/// An event and the label of the injection it belongs to, if any.
#[derive(Clone, Debug)]
pub struct LabelledEvent {
    pub event: Event,
    pub label: Option<usize>,
}

/// The generated workload.
pub struct Workload {
    /// In chain order.
    pub events: Vec<LabelledEvent>,
    pub labels: Vec<Label>,
    pub days: u64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, from: u64, to: u64) -> u64 {
        from + self.below(to - from + 1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

struct Member {
    key: PublicKey,
    department: usize,
    usual: Vec<usize>,
    unusual: usize,
    clearance: Classification,
    daily_mean: f64,
    start_minute: u64,
    end_minute: u64,
    liaison: bool,
    revoked_on: Option<u64>,
}

struct Document {
    id: DocumentId,
    record_type: usize,
    classification: Classification,
}

struct Generator {
    rng: Rng,
    members: Vec<Member>,
    documents: Vec<Document>,
    /// (custodian department, record type) → documents.
    pools: BTreeMap<(usize, usize), Vec<usize>>,
    raw: Vec<(u64, PublicKey, Action, Option<usize>)>,
    labels: Vec<Label>,
    /// (member, day) pairs kept free of ordinary offers and injections.
    busy: BTreeSet<(usize, u64)>,
}

fn department_id(d: usize) -> DepartmentId {
    match DepartmentId::new(DEPARTMENTS[d].0) {
        Ok(id) => id,
        Err(e) => panic!("workload department id: {e}"),
    }
}

impl Generator {
    fn key_of(m: usize) -> PublicKey {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(m as u64 + 1).to_be_bytes());
        bytes[31] = 0x4d;
        PublicKey(bytes)
    }

    fn admin(&self, department: usize) -> PublicKey {
        self.members[department * MEMBERS_PER_DEPARTMENT].key
    }

    fn push(&mut self, time: u64, actor: PublicKey, action: Action, label: Option<usize>) {
        self.raw.push((time, actor, action, label));
    }

    fn register(&mut self, time: u64, department: usize) {
        let record_type = self.rng.below(3) as usize;
        let p = self.rng.unit();
        let classification = if p < 0.2 {
            Classification::Public
        } else if p < 0.7 {
            Classification::Internal
        } else if p < 0.95 {
            Classification::Confidential
        } else {
            Classification::Secret
        };
        let index = self.documents.len();
        let id = match DocumentId::new(format!("{}/{index:06}", DEPARTMENTS[department].0)) {
            Ok(id) => id,
            Err(e) => panic!("workload document id: {e}"),
        };
        self.documents.push(Document {
            id: id.clone(),
            record_type,
            classification,
        });
        self.pools
            .entry((department, record_type))
            .or_default()
            .push(index);
        let actor = self.members[department * MEMBERS_PER_DEPARTMENT + 1].key;
        self.push(
            time,
            actor,
            Action::Register {
                document: id,
                record_type: DEPARTMENTS[department].1[record_type].to_string(),
                classification,
                department: department_id(department),
            },
            None,
        );
    }

    /// A document of `department` of `record_type` the member may read.
    fn pick(
        &mut self,
        department: usize,
        record_type: usize,
        clearance: Classification,
    ) -> Option<usize> {
        let pool = self.pools.get(&(department, record_type))?;
        if pool.is_empty() {
            return None;
        }
        for _ in 0..8 {
            let d = pool[self.rng.below(pool.len() as u64) as usize];
            if self.documents[d].classification <= clearance {
                return Some(d);
            }
        }
        None
    }

    fn read(&mut self, time: u64, member: usize, document: usize, label: Option<usize>) {
        let action = Action::Read {
            document: self.documents[document].id.clone(),
        };
        let key = self.members[member].key;
        self.push(time, key, action, label);
    }

    /// A usual read by `member` at `time`; returns the document read.
    fn usual_read(&mut self, time: u64, member: usize, label: Option<usize>) -> Option<usize> {
        let m = &self.members[member];
        let (department, clearance) = (m.department, m.clearance);
        let record_type = m.usual[self.rng.below(m.usual.len() as u64) as usize];
        let document = self.pick(department, record_type, clearance)?;
        self.read(time, member, document, label);
        Some(document)
    }

    fn working_time(&mut self, day: u64, member: usize) -> u64 {
        let m = &self.members[member];
        let (start, end) = (m.start_minute, m.end_minute);
        FIRST_DAY_MS + day * DAY_MS + self.rng.range(start, end) * MINUTE_MS
    }

    fn grant(
        &mut self,
        time: u64,
        member: usize,
        document: usize,
        to: usize,
        label: Option<usize>,
    ) {
        let action = Action::Grant {
            document: self.documents[document].id.clone(),
            to: department_id(to),
        };
        let key = self.members[member].key;
        self.push(time, key, action, label);
    }

    fn liaison_of(&mut self, department: usize) -> usize {
        department * MEMBERS_PER_DEPARTMENT + 8 + self.rng.below(2) as usize
    }

    fn label(&mut self, rule: Rule, benign: bool, member: usize, note: String) -> Option<usize> {
        self.labels.push(Label {
            rule,
            benign,
            member: self.members[member].key,
            note,
        });
        Some(self.labels.len() - 1)
    }

    fn typical(&self, member: usize) -> f64 {
        self.members[member].daily_mean
    }
}

/// Generate `days` days of work (at least 60) from `seed`.
pub fn generate(seed: u64, days: u64) -> Workload {
    let days = days.max(60);
    let mut g = Generator {
        rng: Rng(seed),
        members: Vec::new(),
        documents: Vec::new(),
        pools: BTreeMap::new(),
        raw: Vec::new(),
        labels: Vec::new(),
        busy: BTreeSet::new(),
    };
    // Members and their habits.
    for department in 0..DEPARTMENTS.len() {
        for i in 0..MEMBERS_PER_DEPARTMENT {
            let index = g.members.len();
            let unusual = g.rng.below(3) as usize;
            let usual: Vec<usize> = (0..3).filter(|t| *t != unusual).collect();
            let clearance = match g.rng.below(3) {
                0 => Classification::Internal,
                1 => Classification::Confidential,
                _ => Classification::Secret,
            };
            let member = Member {
                key: Generator::key_of(index),
                department,
                usual,
                unusual,
                clearance,
                daily_mean: g.rng.range(12, 40) as f64,
                start_minute: 8 * 60 + g.rng.range(0, 90),
                end_minute: 16 * 60 + 30 + g.rng.range(0, 75),
                liaison: i >= 8,
                revoked_on: None,
            };
            g.members.push(member);
        }
    }
    let before = FIRST_DAY_MS - 2 * DAY_MS;
    for m in 0..g.members.len() {
        let department = g.members[m].department;
        let admin = g.admin(department);
        let key = g.members[m].key;
        g.push(
            before,
            admin,
            Action::Enroll {
                member: key,
                department: department_id(department),
            },
            None,
        );
    }
    for department in 0..DEPARTMENTS.len() {
        for _ in 0..DOCUMENTS_PER_DEPARTMENT {
            g.register(before + HOUR_MS, department);
        }
    }

    // The injection schedule: for each rule, anomalies and decoys on
    // working days after the warm-up, each on its own member and day.
    let mut schedule: BTreeMap<u64, Vec<(usize, Rule, bool)>> = BTreeMap::new();
    let ordinary: Vec<usize> = (0..g.members.len())
        .filter(|m| m % MEMBERS_PER_DEPARTMENT >= 2 && !g.members[*m].liaison)
        .collect();
    let mut revocable: Vec<usize> = ordinary.clone();
    // A member's unusual record type stops being unusual once read, so
    // each member carries at most one injection or decoy of that kind.
    let mut unacquainted: Vec<usize> = ordinary.clone();
    for rule in Rule::ALL {
        for (count, benign) in [(8, false), (4, true)] {
            for _ in 0..count {
                // A short history has fewer free member-days than there are
                // injections: after this many draws the injection is left
                // out (and so is its label) rather than searched for forever.
                for _ in 0..PLACEMENT_DRAWS_MAX {
                    let day = g.rng.range(INJECT_FROM_DAY, days - 20);
                    if day % 7 >= 5 {
                        continue;
                    }
                    let member = if rule == Rule::ReadsBeforeRevocation {
                        if revocable.is_empty() {
                            break;
                        }
                        revocable.remove(g.rng.below(revocable.len() as u64) as usize)
                    } else if rule == Rule::UnfamiliarRecords {
                        if unacquainted.is_empty() {
                            break;
                        }
                        unacquainted.remove(g.rng.below(unacquainted.len() as u64) as usize)
                    } else {
                        ordinary[g.rng.below(ordinary.len() as u64) as usize]
                    };
                    if g.busy.contains(&(member, day))
                        || g.busy.contains(&(member, day + 1))
                        || g.busy.contains(&(member, day.saturating_sub(1)))
                        || g.members[member].revoked_on.is_some_and(|r| r <= day + 1)
                    {
                        continue;
                    }
                    if rule == Rule::ReadsBeforeRevocation {
                        if (day..days).any(|d| g.busy.contains(&(member, d))) {
                            continue;
                        }
                        g.members[member].revoked_on = Some(day);
                    }
                    g.busy.insert((member, day));
                    schedule
                        .entry(day)
                        .or_default()
                        .push((member, rule, benign));
                    break;
                }
            }
        }
    }

    for day in 0..days {
        let weekday = day % 7;
        if weekday >= 5 {
            continue;
        }
        let factor = WEEKDAY_FACTOR[weekday as usize];
        let injections = schedule.get(&day).cloned().unwrap_or_default();
        for department in 0..DEPARTMENTS.len() {
            for _ in 0..3 {
                let t = FIRST_DAY_MS + day * DAY_MS + g.rng.range(9 * 60, 16 * 60) * MINUTE_MS;
                g.register(t, department);
            }
        }
        // Ordinary reading.
        for m in 0..g.members.len() {
            if g.members[m].revoked_on.is_some_and(|r| r < day) {
                continue;
            }
            let revoked_today = g.members[m].revoked_on == Some(day);
            let mean = g.typical(m) * factor * (0.8 + 0.4 * g.rng.unit());
            let n = mean.round() as u64;
            for _ in 0..n {
                let t = g.working_time(day, m);
                if revoked_today && t >= FIRST_DAY_MS + day * DAY_MS + 15 * HOUR_MS {
                    continue;
                }
                g.usual_read(t, m, None);
            }
            // Ordinary overtime: a read or two just after six.
            if g.rng.chance(0.05) {
                for _ in 0..g.rng.range(1, 2) {
                    let t =
                        FIRST_DAY_MS + day * DAY_MS + (18 * 60 + g.rng.range(0, 50)) * MINUTE_MS;
                    g.usual_read(t, m, None);
                }
            }
            // An ordinary refusal now and then.
            if g.rng.chance(0.03) {
                let t = g.working_time(day, m);
                let d = g.rng.below(g.documents.len() as u64) as usize;
                let key = g.members[m].key;
                let action = Action::Denied {
                    document: g.documents[d].id.clone(),
                    reason: "department is neither custodian nor grantee".into(),
                };
                g.push(t, key, action, None);
            }
        }
        // Ordinary grants, used by the receiving department's liaison.
        for department in 0..DEPARTMENTS.len() {
            for _ in 0..2 {
                let m = department * MEMBERS_PER_DEPARTMENT + 2 + g.rng.below(6) as usize;
                if g.members[m].revoked_on.is_some_and(|r| r <= day) || g.busy.contains(&(m, day)) {
                    continue;
                }
                let to = (department + 1 + g.rng.below(3) as usize) % DEPARTMENTS.len();
                let record_type = g.rng.below(3) as usize;
                let Some(document) = g.pick(department, record_type, Classification::Secret) else {
                    continue;
                };
                let t = g.working_time(day, m);
                g.grant(t, m, document, to, None);
                if g.rng.chance(0.96) {
                    let reader = g.liaison_of(to);
                    let later = t + g.rng.range(1, 3) * DAY_MS;
                    g.read(later, reader, document, None);
                }
            }
        }
        // Ordinary transfers, accepted the next day.
        if day % 2 == 0 {
            for department in 0..DEPARTMENTS.len() {
                let m = department * MEMBERS_PER_DEPARTMENT + 2 + g.rng.below(6) as usize;
                if g.members[m].revoked_on.is_some_and(|r| r <= day + 1)
                    || g.busy.contains(&(m, day))
                    || g.busy.contains(&(m, day + 1))
                {
                    continue;
                }
                let to = (department + 1 + g.rng.below(3) as usize) % DEPARTMENTS.len();
                let t = g.working_time(day, m);
                let read_first = g.rng.chance(0.5);
                let document = if read_first {
                    g.usual_read(t - 30 * MINUTE_MS, m, None)
                } else {
                    let record_type = g.members[m].usual[0];
                    g.pick(department, record_type, Classification::Secret)
                };
                if let Some(document) = document {
                    transfer(&mut g, t, m, document, to, None);
                }
            }
        }
        for (member, rule, benign) in injections {
            inject(&mut g, day, member, rule, benign);
        }
    }

    let mut raw = std::mem::take(&mut g.raw);
    raw.sort_by_key(|(t, _, _, _)| *t);
    let events = raw
        .into_iter()
        .enumerate()
        .map(|(i, (time, actor, action, label))| LabelledEvent {
            event: Event {
                height: Height((i / EVENTS_PER_BLOCK) as u64 + 1),
                index: (i % EVENTS_PER_BLOCK) as u32,
                tx: TxId(custody_ledger::encoding::sha256(&(i as u64).to_be_bytes()).0),
                time: Timestamp(time),
                actor,
                action,
            },
            label,
        })
        .collect();
    Workload {
        events,
        labels: g.labels,
        days,
    }
}

/// Offer `document` to `to` and have it accepted the next day, moving it
/// between the departments' pools.
fn transfer(
    g: &mut Generator,
    time: u64,
    member: usize,
    document: usize,
    to: usize,
    label: Option<usize>,
) {
    let from = g.members[member].department;
    let key = g.members[member].key;
    let id = g.documents[document].id.clone();
    g.push(
        time,
        key,
        Action::Offer {
            document: id.clone(),
            to: department_id(to),
        },
        label,
    );
    let receiver = g.admin(to);
    g.push(
        time + DAY_MS,
        receiver,
        Action::Accept { document: id },
        None,
    );
    let record_type = g.documents[document].record_type;
    if let Some(pool) = g.pools.get_mut(&(from, record_type)) {
        pool.retain(|d| *d != document);
    }
    g.pools.entry((to, record_type)).or_default().push(document);
}

fn inject(g: &mut Generator, day: u64, member: usize, rule: Rule, benign: bool) {
    let midnight = FIRST_DAY_MS + day * DAY_MS;
    let typical = g.typical(member) * WEEKDAY_FACTOR[(day % 7) as usize];
    let department = g.members[member].department;
    let note = format!("day {day}");
    let label = g.label(rule, benign, member, note);
    match rule {
        Rule::BulkReads => {
            let extra = if benign {
                0.8
            } else {
                3.5 + g.rng.unit() * 3.0
            };
            for _ in 0..(typical * extra).round() as u64 {
                let t = g.working_time(day, member);
                g.usual_read(t, member, label);
            }
        }
        Rule::OffHoursReads => {
            let (n, from, to) = if benign {
                (g.rng.range(3, 4), 18 * 60, 19 * 60 + 30)
            } else {
                (g.rng.range(6, 20), 60, 4 * 60)
            };
            for _ in 0..n {
                let t = midnight + g.rng.range(from, to) * MINUTE_MS;
                g.usual_read(t, member, label);
            }
        }
        Rule::UnfamiliarRecords => {
            let n = if benign {
                g.rng.range(1, 2)
            } else {
                g.rng.range(4, 8)
            };
            let (record_type, clearance) = (g.members[member].unusual, g.members[member].clearance);
            for _ in 0..n {
                if let Some(document) = g.pick(department, record_type, clearance) {
                    let t = g.working_time(day, member);
                    g.read(t, member, document, label);
                }
            }
        }
        Rule::ReadsBeforeTransfer => {
            let extra = if benign {
                0.3
            } else {
                1.6 + g.rng.unit() * 0.3
            };
            let mut last = None;
            for _ in 0..(typical * extra).round() as u64 {
                let t = midnight + g.rng.range(8 * 60 + 30, 11 * 60) * MINUTE_MS;
                last = g.usual_read(t, member, label).or(last);
            }
            if let Some(document) = last {
                let to = (department + 1 + g.rng.below(3) as usize) % DEPARTMENTS.len();
                transfer(
                    g,
                    midnight + (11 * 60 + 30) * MINUTE_MS,
                    member,
                    document,
                    to,
                    label,
                );
            }
        }
        Rule::ReadsBeforeRevocation => {
            let extra = if benign {
                0.0
            } else {
                1.5 + g.rng.unit() * 0.3
            };
            for _ in 0..(typical * extra).round() as u64 {
                let t = midnight + g.rng.range(8 * 60 + 30, 14 * 60 + 30) * MINUTE_MS;
                g.usual_read(t, member, label);
            }
            let admin = g.admin(department);
            let key = g.members[member].key;
            g.push(
                midnight + 15 * HOUR_MS,
                admin,
                Action::Revoke { member: key },
                label,
            );
        }
        Rule::GrantBurst => {
            let (n, span) = if benign {
                (g.rng.range(6, 8), 50)
            } else {
                (g.rng.range(12, 25), 40)
            };
            let start = midnight + g.rng.range(9 * 60, 15 * 60) * MINUTE_MS;
            for _ in 0..n {
                let to = (department + 1 + g.rng.below(3) as usize) % DEPARTMENTS.len();
                let record_type = g.rng.below(3) as usize;
                let Some(document) = g.pick(department, record_type, Classification::Secret) else {
                    continue;
                };
                let t = start + g.rng.below(span) * MINUTE_MS;
                g.grant(t, member, document, to, label);
                let reader = g.liaison_of(to);
                let later = t + g.rng.range(1, 5) * DAY_MS;
                g.read(later, reader, document, None);
            }
        }
        Rule::UnusedGrants => {
            let n = if benign { 2 } else { g.rng.range(3, 6) };
            let to = (department + 1 + g.rng.below(3) as usize) % DEPARTMENTS.len();
            for _ in 0..n {
                let record_type = g.rng.below(3) as usize;
                let Some(document) = g.pick(department, record_type, Classification::Secret) else {
                    continue;
                };
                let t = g.working_time(day, member);
                g.grant(t, member, document, to, label);
            }
        }
        Rule::ManyDepartments => {
            let record_type = g.members[member].usual[0];
            let Some(document) = g.pick(department, record_type, Classification::Secret) else {
                return;
            };
            let others = if benign {
                2
            } else {
                g.rng.range(2, 3) as usize
            };
            let start = midnight + 9 * HOUR_MS;
            g.read(start, member, document, label);
            for k in 0..others {
                let to = (department + 1 + k) % DEPARTMENTS.len();
                let reader = g.liaison_of(to);
                // The decoy spreads the same reads over several days.
                let t = if benign {
                    start + (k as u64 + 1) * (DAY_MS + 2 * HOUR_MS)
                } else {
                    start + g.rng.range(30, 360) * MINUTE_MS
                };
                g.read(t, reader, document, label);
            }
        }
        Rule::DeniedAttempts => {
            let (n, span) = if benign {
                (g.rng.range(3, 4), 60)
            } else {
                (g.rng.range(6, 12), 30)
            };
            let start = midnight + g.rng.range(9 * 60, 15 * 60) * MINUTE_MS;
            for _ in 0..n {
                let d = g.rng.below(g.documents.len() as u64) as usize;
                let key = g.members[member].key;
                let action = Action::Denied {
                    document: g.documents[d].id.clone(),
                    reason: "department is neither custodian nor grantee".into(),
                };
                let t = start + g.rng.below(span) * MINUTE_MS;
                g.push(t, key, action, label);
            }
        }
    }
}

/// Precision and recall of one rule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleScore {
    pub alerts: usize,
    /// Alerts whose evidence holds events injected for this rule.
    pub correct: usize,
    /// Alerts whose evidence holds events injected for another rule only.
    pub on_other_injections: usize,
    /// Injected anomalies of this rule, and how many an alert of this rule
    /// found.
    pub injected: usize,
    pub found: usize,
    /// Decoys of this rule's kind, and how many raised any alert.
    pub decoys: usize,
    pub decoys_flagged: usize,
}

impl RuleScore {
    pub fn precision(&self) -> f64 {
        if self.alerts == 0 {
            1.0
        } else {
            self.correct as f64 / self.alerts as f64
        }
    }
    pub fn recall(&self) -> f64 {
        if self.injected == 0 {
            1.0
        } else {
            self.found as f64 / self.injected as f64
        }
    }
}

/// The detector's alerts scored against the workload's labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    pub rules: BTreeMap<Rule, RuleScore>,
    pub overall: RuleScore,
    /// Events not injected, and how many of them are evidence of an alert
    /// that touches no injected anomaly (a false alarm).
    pub normal_events: usize,
    pub normal_events_in_false_alerts: usize,
    pub false_alerts: usize,
}

impl Score {
    /// False-positive rate on normal traffic: the share of ordinary events
    /// that a false alarm points at.
    pub fn false_positive_rate(&self) -> f64 {
        self.normal_events_in_false_alerts as f64 / self.normal_events.max(1) as f64
    }
}

/// Score `alerts` against `workload`'s labels.
pub fn score(workload: &Workload, alerts: &[Alert]) -> Score {
    let label_of: BTreeMap<TxId, usize> = workload
        .events
        .iter()
        .filter_map(|e| e.label.map(|l| (e.event.tx, l)))
        .collect();
    let normal: BTreeSet<TxId> = workload
        .events
        .iter()
        .filter(|e| e.label.is_none())
        .map(|e| e.event.tx)
        .collect();
    let mut score = Score {
        normal_events: normal.len(),
        ..Score::default()
    };
    for rule in Rule::ALL {
        score.rules.insert(rule, RuleScore::default());
    }
    let mut found: BTreeSet<usize> = BTreeSet::new();
    let mut flagged: BTreeSet<usize> = BTreeSet::new();
    let mut normal_flagged: BTreeSet<TxId> = BTreeSet::new();
    for alert in alerts {
        let touched: BTreeSet<usize> = alert
            .evidence
            .iter()
            .filter_map(|e| label_of.get(&e.tx).copied())
            .collect();
        let injected: Vec<usize> = touched
            .iter()
            .copied()
            .filter(|l| !workload.labels[*l].benign)
            .collect();
        flagged.extend(touched.iter().copied());
        let s = score.rules.entry(alert.rule).or_default();
        s.alerts += 1;
        let same: Vec<usize> = injected
            .iter()
            .copied()
            .filter(|l| workload.labels[*l].rule == alert.rule)
            .collect();
        if !same.is_empty() {
            s.correct += 1;
            found.extend(same);
        } else if !injected.is_empty() {
            s.on_other_injections += 1;
        } else {
            score.false_alerts += 1;
            normal_flagged.extend(
                alert
                    .evidence
                    .iter()
                    .filter(|e| normal.contains(&e.tx))
                    .map(|e| e.tx),
            );
        }
    }
    score.normal_events_in_false_alerts = normal_flagged.len();
    for (l, label) in workload.labels.iter().enumerate() {
        let s = score.rules.entry(label.rule).or_default();
        if label.benign {
            s.decoys += 1;
            if flagged.contains(&l) {
                s.decoys_flagged += 1;
            }
        } else {
            s.injected += 1;
            if found.contains(&l) {
                s.found += 1;
            }
        }
    }
    let mut overall = RuleScore::default();
    for s in score.rules.values() {
        overall.alerts += s.alerts;
        overall.correct += s.correct;
        overall.on_other_injections += s.on_other_injections;
        overall.injected += s.injected;
        overall.found += s.found;
        overall.decoys += s.decoys;
        overall.decoys_flagged += s.decoys_flagged;
    }
    score.overall = overall;
    score
}
