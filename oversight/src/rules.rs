//! The rules. Each reads the whole observed history and returns its
//! alerts; [`evaluate`] runs them all. Everything iterated for output is a
//! `BTreeMap` or a vector in chain order, so the result is the same on
//! every machine.

use std::collections::{BTreeMap, BTreeSet};

use custody_ledger::types::{Classification, DepartmentId, DocumentId, PublicKey};

use crate::alert::{Alert, Evidence, Rule};
use crate::detector::{DocumentInfo, Observed};
use crate::event::Action;
use crate::stats::{self, Baseline, DAY_MS};
use crate::thresholds::{Burst, ReadsBeforeExit, Thresholds, WorkingHours};

const HOUR_MS: u64 = 3_600_000;
const MINUTE_MS: u64 = 60_000;

/// Indexes over the history that several rules share.
struct Context<'a> {
    observed: &'a [Observed],
    documents: &'a [DocumentInfo],
    thresholds: &'a Thresholds,
    /// Each member's reads, in chain order.
    reads_by_member: BTreeMap<PublicKey, Vec<usize>>,
    /// Each member's reads per local day of their department.
    daily: BTreeMap<PublicKey, BTreeMap<i64, u32>>,
    /// Each department's member-day read counts per local day.
    department_daily: BTreeMap<DepartmentId, BTreeMap<i64, Vec<u32>>>,
    /// Each member's latest department.
    member_department: BTreeMap<PublicKey, DepartmentId>,
    /// Each document's reads, in chain order.
    reads_by_document: BTreeMap<usize, Vec<usize>>,
    /// Time of the last event: what "has had time to happen" is measured to.
    end_ms: u64,
}

impl<'a> Context<'a> {
    fn new(
        observed: &'a [Observed],
        documents: &'a [DocumentInfo],
        thresholds: &'a Thresholds,
    ) -> Self {
        let mut context = Context {
            observed,
            documents,
            thresholds,
            reads_by_member: BTreeMap::new(),
            daily: BTreeMap::new(),
            department_daily: BTreeMap::new(),
            member_department: BTreeMap::new(),
            reads_by_document: BTreeMap::new(),
            end_ms: observed.iter().map(|o| o.event.time.0).max().unwrap_or(0),
        };
        for (i, o) in observed.iter().enumerate() {
            if let Some(d) = &o.department {
                context.member_department.insert(o.event.actor, d.clone());
            }
            if let Action::Read { .. } = o.event.action {
                context
                    .reads_by_member
                    .entry(o.event.actor)
                    .or_default()
                    .push(i);
                let day = stats::local_day(o.event.time.0, &context.hours_of(o));
                *context
                    .daily
                    .entry(o.event.actor)
                    .or_default()
                    .entry(day)
                    .or_default() += 1;
                if let Some(document) = o.document {
                    context
                        .reads_by_document
                        .entry(document)
                        .or_default()
                        .push(i);
                }
            }
        }
        for (member, days) in &context.daily {
            let Some(department) = context.member_department.get(member) else {
                continue;
            };
            let by_day = context
                .department_daily
                .entry(department.clone())
                .or_default();
            for (day, count) in days {
                by_day.entry(*day).or_default().push(*count);
            }
        }
        context
    }

    fn hours(&self, department: Option<&DepartmentId>) -> WorkingHours {
        match department {
            Some(d) => self.thresholds.hours(d.as_str()),
            None => self.thresholds.working_hours,
        }
    }

    fn hours_of(&self, o: &Observed) -> WorkingHours {
        self.hours(o.department.as_ref())
    }

    /// The member's baseline of daily reads over the window before `day`
    /// (days with at least one read).
    fn member_baseline(&self, member: &PublicKey, day: i64) -> Option<Baseline> {
        let window = i64::from(self.thresholds.bulk_reads.window_days);
        let days = self.daily.get(member)?;
        let values: Vec<f64> = days
            .range(day - window..day)
            .map(|(_, c)| f64::from(*c))
            .collect();
        Baseline::of(&values)
    }

    /// The department's baseline of member-days over the window before `day`.
    fn department_baseline(&self, department: &DepartmentId, day: i64) -> Option<Baseline> {
        let window = i64::from(self.thresholds.bulk_reads.window_days);
        let days = self.department_daily.get(department)?;
        let values: Vec<f64> = days
            .range(day - window..day)
            .flat_map(|(_, counts)| counts.iter().map(|c| f64::from(*c)))
            .collect();
        Baseline::of(&values)
    }

    /// The typical daily reads of `member` before `day`: their own median
    /// when they have enough history, else their department's.
    fn typical_day(&self, member: &PublicKey, day: i64) -> Option<(f64, &'static str)> {
        let own = self.member_baseline(member, day);
        match own {
            Some(b) if b.days >= self.thresholds.bulk_reads.history_days_min as usize => {
                Some((b.median, "their"))
            }
            _ => {
                let department = self.member_department.get(member)?;
                self.department_baseline(department, day)
                    .map(|b| (b.median, "their department's"))
            }
        }
    }

    /// Evidence lines for these events, in chain order, cut at the limit.
    fn evidence(&self, mut indices: Vec<usize>) -> (Vec<Evidence>, usize) {
        indices.sort_unstable();
        indices.dedup_by_key(|i| self.observed[*i].event.tx);
        let total = indices.len();
        let max = self.thresholds.evidence_per_alert_max as usize;
        let evidence = indices
            .into_iter()
            .take(max)
            .map(|i| {
                let e = &self.observed[i].event;
                Evidence {
                    height: e.height,
                    index: e.index,
                    tx: e.tx,
                    time: e.time,
                    kind: e.action.kind().to_string(),
                    document: e.action.document().cloned(),
                }
            })
            .collect();
        (evidence, total)
    }

    fn documents_of(&self, indices: &[usize]) -> Vec<DocumentId> {
        let set: BTreeSet<DocumentId> = indices
            .iter()
            .filter_map(|i| self.observed[*i].event.action.document().cloned())
            .collect();
        set.into_iter().collect()
    }

    /// The member's reads with time in `[from, to]`.
    fn reads_between(&self, member: &PublicKey, from: u64, to: u64) -> Vec<usize> {
        let Some(reads) = self.reads_by_member.get(member) else {
            return Vec::new();
        };
        let start = reads.partition_point(|i| self.observed[*i].event.time.0 < from);
        let end = reads.partition_point(|i| self.observed[*i].event.time.0 <= to);
        reads[start..end].to_vec()
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        rule: Rule,
        member: Option<PublicKey>,
        department: Option<DepartmentId>,
        indices: Vec<usize>,
        score: f64,
        explanation: String,
    ) -> Alert {
        let documents = self.documents_of(&indices);
        let (evidence, evidence_total) = self.evidence(indices);
        Alert {
            rule,
            member,
            department,
            documents,
            evidence,
            evidence_total,
            score,
            explanation,
        }
    }
}

fn department_name(d: Option<&DepartmentId>) -> String {
    d.map(|d| d.to_string())
        .unwrap_or_else(|| "an unknown department".to_string())
}

/// Run every rule.
pub(crate) fn evaluate(
    observed: &[Observed],
    documents: &[DocumentInfo],
    thresholds: &Thresholds,
) -> Vec<Alert> {
    let context = Context::new(observed, documents, thresholds);
    let mut alerts = Vec::new();
    bulk_reads(&context, &mut alerts);
    off_hours_reads(&context, &mut alerts);
    unfamiliar_records(&context, &mut alerts);
    reads_before_transfer(&context, &mut alerts);
    reads_before_revocation(&context, &mut alerts);
    grant_burst(&context, &mut alerts);
    unused_grants(&context, &mut alerts);
    many_departments(&context, &mut alerts);
    denied_attempts(&context, &mut alerts);
    alerts
}

fn bulk_reads(c: &Context, alerts: &mut Vec<Alert>) {
    let t = &c.thresholds.bulk_reads;
    for (member, days) in &c.daily {
        let department = c.member_department.get(member);
        for (&day, &count) in days {
            if count < t.reads_min {
                continue;
            }
            let count_f = f64::from(count);
            let own = c.member_baseline(member, day);
            let department_baseline = department.and_then(|d| c.department_baseline(d, day));
            let department_text = department_baseline
                .map(|b| format!("; the department's median member-day was {:.1}", b.median))
                .unwrap_or_default();
            let (score, explanation) = match own {
                Some(b) if b.days >= t.history_days_min as usize => {
                    let ratio = count_f / b.median.max(1.0);
                    let z = b.robust_z(count_f);
                    if ratio < t.member_ratio_min || z < t.robust_z_min {
                        continue;
                    }
                    (
                        ratio,
                        format!(
                            "member {member} ({}) read {count} documents on {}, {ratio:.1} times their daily median of {:.1} over the last {} days ({} days with reads, {z:.1} robust deviations above it){department_text}",
                            department_name(department),
                            stats::format_day(day),
                            b.median,
                            t.window_days,
                            b.days,
                        ),
                    )
                }
                _ => {
                    let Some(b) = department_baseline else {
                        continue;
                    };
                    let ratio = count_f / b.median.max(1.0);
                    if ratio < t.department_ratio_min {
                        continue;
                    }
                    (
                        ratio,
                        format!(
                            "member {member} ({}) read {count} documents on {}, {ratio:.1} times the department's median member-day of {:.1} over the last {} days (the member has too little history of their own: {} days with reads)",
                            department_name(department),
                            stats::format_day(day),
                            b.median,
                            t.window_days,
                            own.map(|b| b.days).unwrap_or(0),
                        ),
                    )
                }
            };
            let hours = c.hours(department);
            let indices: Vec<usize> = c.reads_by_member[member]
                .iter()
                .copied()
                .filter(|i| stats::local_day(c.observed[*i].event.time.0, &hours) == day)
                .collect();
            alerts.push(c.alert(
                Rule::BulkReads,
                Some(*member),
                department.cloned(),
                indices,
                score,
                explanation,
            ));
        }
    }
}

fn off_hours_reads(c: &Context, alerts: &mut Vec<Alert>) {
    let min = c.thresholds.off_hours_reads.reads_min as usize;
    for (member, reads) in &c.reads_by_member {
        let mut by_day: BTreeMap<(i64, Option<&DepartmentId>), Vec<usize>> = BTreeMap::new();
        for &i in reads {
            let o = &c.observed[i];
            let hours = c.hours_of(o);
            if !stats::within_hours(o.event.time.0, &hours) {
                by_day
                    .entry((
                        stats::local_day(o.event.time.0, &hours),
                        o.department.as_ref(),
                    ))
                    .or_default()
                    .push(i);
            }
        }
        for ((day, department), indices) in by_day {
            if indices.len() < min {
                continue;
            }
            let hours = c.hours(department);
            let first = c.observed[indices[0]].event.time.0;
            let last = c.observed[indices[indices.len() - 1]].event.time.0;
            let explanation = format!(
                "member {member} ({}) read {} documents outside the department's working hours ({:02}:00–{:02}:00) on {}, from {} to {}; {min} such reads in a day raise an alert",
                department_name(department),
                indices.len(),
                hours.start_hour,
                hours.end_hour,
                stats::format_day(day),
                stats::format_local(first, &hours),
                stats::format_local(last, &hours),
            );
            let score = indices.len() as f64;
            alerts.push(c.alert(
                Rule::OffHoursReads,
                Some(*member),
                department.cloned(),
                indices,
                score,
                explanation,
            ));
        }
    }
}

/// What a member has handled so far.
#[derive(Default)]
struct Familiar {
    first_ms: Option<u64>,
    actions: u64,
    types: BTreeSet<String>,
    classification: Option<Classification>,
    day: Option<i64>,
    /// Reads and registrations of the current day, folded in at its end.
    today: Vec<(String, Classification)>,
    /// Unfamiliar reads of the current day, with what made them so.
    novel: Vec<(usize, String)>,
    department: Option<DepartmentId>,
}

fn unfamiliar_records(c: &Context, alerts: &mut Vec<Alert>) {
    let t = &c.thresholds.unfamiliar_records;
    let mut members: BTreeMap<PublicKey, Familiar> = BTreeMap::new();
    let flush = |member: &PublicKey, f: &mut Familiar, alerts: &mut Vec<Alert>| {
        if f.novel.len() >= t.reads_min as usize {
            let novel = std::mem::take(&mut f.novel);
            let reasons: BTreeSet<&str> = novel.iter().map(|(_, r)| r.as_str()).collect();
            let known: Vec<&str> = f.types.iter().map(|s| s.as_str()).collect();
            let explanation = format!(
                "member {member} ({}) read {} documents on {} of kinds they had never handled in {} earlier reads and registrations: {}; before that day they had handled record types {} up to classification {}",
                department_name(f.department.as_ref()),
                novel.len(),
                f.day.map(stats::format_day).unwrap_or_default(),
                f.actions,
                reasons.into_iter().collect::<Vec<_>>().join(", "),
                known.join(", "),
                f.classification.map(|c| c.to_string()).unwrap_or_default(),
            );
            let score = novel.len() as f64;
            alerts.push(c.alert(
                Rule::UnfamiliarRecords,
                Some(*member),
                f.department.clone(),
                novel.into_iter().map(|(i, _)| i).collect(),
                score,
                explanation,
            ));
        }
        f.novel.clear();
        for (record_type, classification) in f.today.drain(..) {
            f.actions += 1;
            f.types.insert(record_type);
            f.classification = f.classification.max(Some(classification));
        }
    };
    for (i, o) in c.observed.iter().enumerate() {
        let is_read = match &o.event.action {
            Action::Read { .. } => true,
            Action::Register { .. } => false,
            _ => continue,
        };
        let Some(document) = o.document else {
            continue;
        };
        let info = &c.documents[document];
        let hours = c.hours_of(o);
        let day = stats::local_day(o.event.time.0, &hours);
        let f = members.entry(o.event.actor).or_default();
        if f.day != Some(day) {
            flush(&o.event.actor, f, alerts);
            f.day = Some(day);
        }
        f.department = o.department.clone();
        let first = *f.first_ms.get_or_insert(o.event.time.0);
        let warmed = o.event.time.0.saturating_sub(first)
            >= u64::from(t.warmup_days) * DAY_MS as u64
            && f.actions >= u64::from(t.warmup_actions);
        if is_read && warmed {
            let mut reasons = Vec::new();
            if !f.types.contains(&info.record_type) {
                reasons.push(format!("record type `{}`", info.record_type));
            }
            if f.classification
                .is_some_and(|max| info.classification > max)
            {
                reasons.push(format!("classification `{}`", info.classification));
            }
            if !reasons.is_empty() {
                f.novel.push((i, reasons.join(" and ")));
            }
        }
        f.today
            .push((info.record_type.clone(), info.classification));
    }
    for (member, f) in members.iter_mut() {
        flush(member, f, alerts);
    }
}

/// Reads by `member` in the window before `time_ms`, if they are a burst
/// against the member's typical day: `(reads, typical, whose)`.
fn burst_before(
    c: &Context,
    t: &ReadsBeforeExit,
    member: &PublicKey,
    time_ms: u64,
    hours: &WorkingHours,
) -> Option<(Vec<usize>, f64, &'static str)> {
    let from = time_ms.saturating_sub(u64::from(t.window_hours) * HOUR_MS);
    let reads = c.reads_between(member, from, time_ms);
    if reads.len() < t.reads_min as usize {
        return None;
    }
    let day = stats::local_day(time_ms, hours);
    let (typical, whose) = c.typical_day(member, day)?;
    if (reads.len() as f64) < t.member_ratio_min * typical.max(1.0) {
        return None;
    }
    Some((reads, typical, whose))
}

fn reads_before_transfer(c: &Context, alerts: &mut Vec<Alert>) {
    let t = &c.thresholds.reads_before_transfer;
    // (reader, local day) → (department, offers, reads, typical, whose)
    type Group = (DepartmentId, Vec<usize>, BTreeSet<usize>, f64, &'static str);
    let mut groups: BTreeMap<(PublicKey, i64), Group> = BTreeMap::new();
    for (i, o) in c.observed.iter().enumerate() {
        let Action::Offer { .. } = o.event.action else {
            continue;
        };
        let (Some(document), Some(from)) = (o.document, o.custodian.as_ref()) else {
            continue;
        };
        let time = o.event.time.0;
        let window_start = time.saturating_sub(u64::from(t.window_hours) * HOUR_MS);
        let readers: BTreeSet<PublicKey> = c
            .reads_by_document
            .get(&document)
            .into_iter()
            .flatten()
            .map(|r| &c.observed[*r])
            .filter(|r| {
                r.event.time.0 >= window_start
                    && r.event.time.0 <= time
                    && r.department.as_ref() == Some(from)
            })
            .map(|r| r.event.actor)
            .collect();
        let hours = c.hours(Some(from));
        for reader in readers {
            let Some((reads, typical, whose)) = burst_before(c, t, &reader, time, &hours) else {
                continue;
            };
            let day = stats::local_day(time, &hours);
            let group = groups
                .entry((reader, day))
                .or_insert_with(|| (from.clone(), Vec::new(), BTreeSet::new(), typical, whose));
            group.1.push(i);
            group.2.extend(reads);
        }
    }
    for ((member, day), (department, offers, reads, typical, whose)) in groups {
        let offered: BTreeSet<String> = offers
            .iter()
            .filter_map(|i| c.observed[*i].event.action.document())
            .map(|d| d.to_string())
            .collect();
        let to: BTreeSet<String> = offers
            .iter()
            .filter_map(|i| match &c.observed[*i].event.action {
                Action::Offer { to, .. } => Some(to.to_string()),
                _ => None,
            })
            .collect();
        let ratio = reads.len() as f64 / typical.max(1.0);
        let explanation = format!(
            "member {member} ({department}) read {} documents in the {} hours before {} offered {} away to {} on {}, {ratio:.1} times {whose} daily median of {typical:.1}",
            reads.len(),
            t.window_hours,
            department,
            offered.into_iter().collect::<Vec<_>>().join(", "),
            to.into_iter().collect::<Vec<_>>().join(", "),
            stats::format_day(day),
        );
        let mut indices: Vec<usize> = reads.into_iter().collect();
        indices.extend(offers);
        let mut alert = c.alert(
            Rule::ReadsBeforeTransfer,
            Some(member),
            Some(department),
            indices,
            ratio,
            explanation,
        );
        // The documents are the ones sent away; the reads are the evidence.
        alert.documents = alert
            .evidence
            .iter()
            .filter(|e| e.kind == "offer-transfer")
            .filter_map(|e| e.document.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        alerts.push(alert);
    }
}

fn reads_before_revocation(c: &Context, alerts: &mut Vec<Alert>) {
    let t = &c.thresholds.reads_before_revocation;
    for (i, o) in c.observed.iter().enumerate() {
        let Action::Revoke { member } = &o.event.action else {
            continue;
        };
        let department = c.member_department.get(member);
        let hours = c.hours(department);
        let time = o.event.time.0;
        let Some((reads, typical, whose)) = burst_before(c, t, member, time, &hours) else {
            continue;
        };
        let ratio = reads.len() as f64 / typical.max(1.0);
        let explanation = format!(
            "member {member} ({}) read {} documents in the {} hours before their revocation at {}, {ratio:.1} times {whose} daily median of {typical:.1}",
            department_name(department),
            reads.len(),
            t.window_hours,
            stats::format_local(time, &hours),
        );
        let mut indices = reads;
        indices.push(i);
        alerts.push(c.alert(
            Rule::ReadsBeforeRevocation,
            Some(*member),
            department.cloned(),
            indices,
            ratio,
            explanation,
        ));
    }
}

/// Split `indices` (in time order) into clusters: from each start, the
/// events within `window_ms`; a cluster `accept`ed is reported and the scan
/// resumes after it, otherwise the start moves by one.
fn clusters(
    c: &Context,
    indices: &[usize],
    window_ms: u64,
    accept: impl Fn(&[usize]) -> bool,
) -> Vec<Vec<usize>> {
    let mut found = Vec::new();
    let mut start = 0;
    let mut end = 0;
    while start < indices.len() {
        let limit = c.observed[indices[start]].event.time.0 + window_ms;
        end = end.max(start);
        while end < indices.len() && c.observed[indices[end]].event.time.0 < limit {
            end += 1;
        }
        if accept(&indices[start..end]) {
            found.push(indices[start..end].to_vec());
            start = end;
        } else {
            start += 1;
        }
    }
    found
}

fn bursts_of(
    c: &Context,
    rule: Rule,
    t: &Burst,
    pick: impl Fn(&Action) -> bool,
    what: &str,
    alerts: &mut Vec<Alert>,
) {
    let mut by_member: BTreeMap<PublicKey, Vec<usize>> = BTreeMap::new();
    for (i, o) in c.observed.iter().enumerate() {
        if pick(&o.event.action) {
            by_member.entry(o.event.actor).or_default().push(i);
        }
    }
    let window_ms = u64::from(t.window_minutes) * MINUTE_MS;
    for (member, indices) in by_member {
        for cluster in clusters(c, &indices, window_ms, |s| s.len() >= t.count_min as usize) {
            let first = &c.observed[cluster[0]];
            let last = &c.observed[cluster[cluster.len() - 1]];
            let department = first.department.clone();
            let hours = c.hours(department.as_ref());
            let targets: BTreeSet<String> = cluster
                .iter()
                .filter_map(|i| match &c.observed[*i].event.action {
                    Action::Grant { to, .. } => Some(to.to_string()),
                    Action::Denied { reason, .. } => Some(reason.clone()),
                    _ => None,
                })
                .collect();
            let explanation = format!(
                "member {member} ({}) {what} {} times within {} minutes, from {} to {} ({}); {} in {} minutes raise an alert",
                department_name(department.as_ref()),
                cluster.len(),
                t.window_minutes,
                stats::format_local(first.event.time.0, &hours),
                stats::format_local(last.event.time.0, &hours),
                targets.into_iter().collect::<Vec<_>>().join(", "),
                t.count_min,
                t.window_minutes,
            );
            let score = cluster.len() as f64;
            alerts.push(c.alert(rule, Some(member), department, cluster, score, explanation));
        }
    }
}

fn grant_burst(c: &Context, alerts: &mut Vec<Alert>) {
    bursts_of(
        c,
        Rule::GrantBurst,
        &c.thresholds.grant_burst,
        |a| matches!(a, Action::Grant { .. }),
        "granted read access",
        alerts,
    );
}

fn denied_attempts(c: &Context, alerts: &mut Vec<Alert>) {
    bursts_of(
        c,
        Rule::DeniedAttempts,
        &c.thresholds.denied_attempts,
        |a| matches!(a, Action::Denied { .. }),
        "was refused a read",
        alerts,
    );
}

fn unused_grants(c: &Context, alerts: &mut Vec<Alert>) {
    let t = &c.thresholds.unused_grants;
    let window_ms = u64::from(t.window_days) * DAY_MS as u64;
    let mut groups: BTreeMap<(PublicKey, DepartmentId, i64), Vec<usize>> = BTreeMap::new();
    for (i, o) in c.observed.iter().enumerate() {
        let Action::Grant { to, .. } = &o.event.action else {
            continue;
        };
        let Some(document) = o.document else {
            continue;
        };
        let time = o.event.time.0;
        // A grant younger than the window may still be used.
        if c.end_ms < time + window_ms {
            continue;
        }
        let used = c
            .reads_by_document
            .get(&document)
            .into_iter()
            .flatten()
            .map(|r| &c.observed[*r])
            .any(|r| {
                r.event.time.0 >= time
                    && r.event.time.0 <= time + window_ms
                    && r.department.as_ref() == Some(to)
            });
        if !used {
            let day = stats::local_day(time, &c.hours_of(o));
            groups
                .entry((o.event.actor, to.clone(), day))
                .or_default()
                .push(i);
        }
    }
    for ((member, to, day), indices) in groups {
        if indices.len() < t.grants_min as usize {
            continue;
        }
        let department = c.observed[indices[0]].department.clone();
        let explanation = format!(
            "member {member} ({}) granted {to} read access to {} documents on {}, and {to} read none of them within {} days; {} unused grants in a day raise an alert",
            department_name(department.as_ref()),
            indices.len(),
            stats::format_day(day),
            t.window_days,
            t.grants_min,
        );
        let score = indices.len() as f64;
        alerts.push(c.alert(
            Rule::UnusedGrants,
            Some(member),
            department,
            indices,
            score,
            explanation,
        ));
    }
}

fn many_departments(c: &Context, alerts: &mut Vec<Alert>) {
    let t = &c.thresholds.many_departments;
    let window_ms = u64::from(t.window_hours) * HOUR_MS;
    let min = t.departments_min as usize;
    let distinct = |s: &[usize]| {
        s.iter()
            .filter_map(|i| c.observed[*i].department.as_ref())
            .collect::<BTreeSet<_>>()
            .len()
    };
    for reads in c.reads_by_document.values() {
        for cluster in clusters(c, reads, window_ms, |s| distinct(s) >= min) {
            // The read that brought the count to the threshold.
            let mut seen = BTreeSet::new();
            let mut crossing = cluster[0];
            for &i in &cluster {
                if let Some(d) = &c.observed[i].department {
                    seen.insert(d);
                }
                if seen.len() >= min {
                    crossing = i;
                    break;
                }
            }
            let o = &c.observed[crossing];
            let custodian = o.custodian.clone();
            let departments: Vec<String> = cluster
                .iter()
                .filter_map(|i| c.observed[*i].department.as_ref())
                .map(|d| d.to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let document = o
                .event
                .action
                .document()
                .map(|d| d.to_string())
                .unwrap_or_default();
            let hours = c.hours(custodian.as_ref());
            let first = c.observed[cluster[0]].event.time.0;
            let last = c.observed[cluster[cluster.len() - 1]].event.time.0;
            let explanation = format!(
                "document {document} (custodian {}) was read by {} departments ({}) within {} hours, from {} to {}; member {} of {} made it {min}; {min} departments in {} hours raise an alert",
                department_name(custodian.as_ref()),
                departments.len(),
                departments.join(", "),
                t.window_hours,
                stats::format_local(first, &hours),
                stats::format_local(last, &hours),
                o.event.actor,
                department_name(o.department.as_ref()),
                t.window_hours,
            );
            let score = departments.len() as f64;
            alerts.push(c.alert(
                Rule::ManyDepartments,
                Some(o.event.actor),
                custodian,
                cluster,
                score,
                explanation,
            ));
        }
    }
}
