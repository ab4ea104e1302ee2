//! The rules. The batch run ([`evaluate`]) judges the whole observed
//! history; the live path runs the same code on the days a new block can
//! still change ([`Cut`]) and feeds the stream rules ([`Familiarity`],
//! [`advance_stream`]) one event at a time. Everything iterated for output is a
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

/// Indexes over the history that several rules share. Built in one pass
/// for the batch run ([`Index::build`]), or kept up to date event by event
/// by the live path ([`Index::add`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    /// Each member's reads, in chain order.
    reads_by_member: BTreeMap<PublicKey, Vec<usize>>,
    /// Each member's reads per local day of their department.
    daily: BTreeMap<PublicKey, BTreeMap<i64, u32>>,
    /// Each department's member-day read counts per local day, by member.
    department_daily: BTreeMap<DepartmentId, BTreeMap<i64, BTreeMap<PublicKey, u32>>>,
    /// Each member's latest department.
    member_department: BTreeMap<PublicKey, DepartmentId>,
    /// Each document's reads, in chain order.
    reads_by_document: BTreeMap<usize, Vec<usize>>,
    /// Each member's grants, in chain order.
    pub(crate) grants_by_member: BTreeMap<PublicKey, Vec<usize>>,
    /// Each member's refused reads, in chain order.
    pub(crate) denied_by_member: BTreeMap<PublicKey, Vec<usize>>,
    /// Time of the last event: what "has had time to happen" is measured to.
    pub(crate) end_ms: u64,
}

/// What [`Index::add`] noticed that the live path must know.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Added {
    /// A member who had read before got another latest department: every
    /// baseline and alert that names their department may change.
    pub department_moved: bool,
    /// The event is older than one fed before it.
    pub time_went_back: bool,
}

impl Index {
    /// The indexes of the whole history, as the batch run builds them.
    pub(crate) fn build(observed: &[Observed], thresholds: &Thresholds) -> Index {
        let mut index = Index::default();
        for (i, o) in observed.iter().enumerate() {
            index.add_without_departments(i, o, thresholds);
        }
        for (member, days) in &index.daily {
            let Some(department) = index.member_department.get(member) else {
                continue;
            };
            let by_day = index
                .department_daily
                .entry(department.clone())
                .or_default();
            for (day, count) in days {
                by_day.entry(*day).or_default().insert(*member, *count);
            }
        }
        index
    }

    /// Adds `observed[i]`, keeping the department counts up to date. Gives
    /// the same indexes as [`Index::build`] as long as no member who has
    /// read changes department and time never goes back (the result says
    /// when either happened).
    pub(crate) fn add(
        &mut self,
        observed: &[Observed],
        i: usize,
        thresholds: &Thresholds,
    ) -> Added {
        let o = &observed[i];
        let mut added = Added {
            time_went_back: o.event.time.0 < self.end_ms,
            ..Added::default()
        };
        if let Some(d) = &o.department {
            if self.member_department.get(&o.event.actor) != Some(d)
                && self.daily.contains_key(&o.event.actor)
            {
                added.department_moved = true;
            }
        }
        self.add_without_departments(i, o, thresholds);
        if let Action::Read { .. } = o.event.action {
            if let Some(department) = self.member_department.get(&o.event.actor) {
                let day = stats::local_day(
                    o.event.time.0,
                    &hours_for(thresholds, o.department.as_ref()),
                );
                *self
                    .department_daily
                    .entry(department.clone())
                    .or_default()
                    .entry(day)
                    .or_default()
                    .entry(o.event.actor)
                    .or_default() += 1;
            }
        }
        added
    }

    fn add_without_departments(&mut self, i: usize, o: &Observed, thresholds: &Thresholds) {
        self.end_ms = self.end_ms.max(o.event.time.0);
        if let Some(d) = &o.department {
            self.member_department.insert(o.event.actor, d.clone());
        }
        match o.event.action {
            Action::Read { .. } => {
                self.reads_by_member
                    .entry(o.event.actor)
                    .or_default()
                    .push(i);
                let day = stats::local_day(
                    o.event.time.0,
                    &hours_for(thresholds, o.department.as_ref()),
                );
                *self
                    .daily
                    .entry(o.event.actor)
                    .or_default()
                    .entry(day)
                    .or_default() += 1;
                if let Some(document) = o.document {
                    self.reads_by_document.entry(document).or_default().push(i);
                }
            }
            Action::Grant { .. } => self
                .grants_by_member
                .entry(o.event.actor)
                .or_default()
                .push(i),
            Action::Denied { .. } => self
                .denied_by_member
                .entry(o.event.actor)
                .or_default()
                .push(i),
            _ => {}
        }
    }

    /// Each document's reads, for the live path's per-document streams.
    pub(crate) fn reads_of_document(&self, document: usize) -> &[usize] {
        self.reads_by_document
            .get(&document)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

fn hours_for(thresholds: &Thresholds, department: Option<&DepartmentId>) -> WorkingHours {
    match department {
        Some(d) => thresholds.hours(d.as_str()),
        None => thresholds.working_hours,
    }
}

/// Which part of the history a rule judges: the batch run judges all of
/// it; the live path only the alerts that new events can still change.
/// An alert is keyed by a local day (or, for revocations, the day of the
/// revocation); keys before `day` are left out, and events before
/// `from_ms` (all of which belong to days before `day`) are not scanned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Cut {
    pub day: i64,
    pub from_ms: u64,
    /// The first event at or after `from_ms`.
    pub from_index: usize,
}

impl Cut {
    pub(crate) const ALL: Cut = Cut {
        day: i64::MIN,
        from_ms: 0,
        from_index: 0,
    };

    fn is_all(&self) -> bool {
        *self == Cut::ALL
    }
}

/// What the rules read.
pub(crate) struct Context<'a> {
    observed: &'a [Observed],
    documents: &'a [DocumentInfo],
    thresholds: &'a Thresholds,
    index: &'a Index,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        observed: &'a [Observed],
        documents: &'a [DocumentInfo],
        thresholds: &'a Thresholds,
        index: &'a Index,
    ) -> Self {
        Context {
            observed,
            documents,
            thresholds,
            index,
        }
    }

    fn hours(&self, department: Option<&DepartmentId>) -> WorkingHours {
        hours_for(self.thresholds, department)
    }

    fn hours_of(&self, o: &Observed) -> WorkingHours {
        self.hours(o.department.as_ref())
    }

    /// The member's baseline of daily reads over the window before `day`
    /// (days with at least one read).
    fn member_baseline(&self, member: &PublicKey, day: i64) -> Option<Baseline> {
        let window = i64::from(self.thresholds.bulk_reads.window_days);
        let days = self.index.daily.get(member)?;
        let values: Vec<f64> = days
            .range(day - window..day)
            .map(|(_, c)| f64::from(*c))
            .collect();
        Baseline::of(&values)
    }

    /// The department's baseline of member-days over the window before `day`.
    fn department_baseline(&self, department: &DepartmentId, day: i64) -> Option<Baseline> {
        let window = i64::from(self.thresholds.bulk_reads.window_days);
        let days = self.index.department_daily.get(department)?;
        let values: Vec<f64> = days
            .range(day - window..day)
            .flat_map(|(_, counts)| counts.values().map(|c| f64::from(*c)))
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
                let department = self.index.member_department.get(member)?;
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
        let Some(reads) = self.index.reads_by_member.get(member) else {
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

/// An alert with the day it is keyed by (see [`Cut`]).
pub(crate) type Keyed = (i64, Alert);

/// The rules whose alerts are keyed by a day, judged from a [`Cut`]; the
/// others (unfamiliar records and the bursts) are judged as streams.
pub(crate) const CUT_RULES: [Rule; 5] = [
    Rule::BulkReads,
    Rule::OffHoursReads,
    Rule::ReadsBeforeTransfer,
    Rule::ReadsBeforeRevocation,
    Rule::UnusedGrants,
];

/// Run every rule.
pub(crate) fn evaluate(
    observed: &[Observed],
    documents: &[DocumentInfo],
    thresholds: &Thresholds,
) -> Vec<Alert> {
    let index = Index::build(observed, thresholds);
    let context = Context::new(observed, documents, thresholds, &index);
    let mut keyed = Vec::new();
    for rule in CUT_RULES {
        evaluate_cut(&context, rule, Cut::ALL, &mut keyed);
    }
    let mut alerts: Vec<Alert> = keyed.into_iter().map(|(_, a)| a).collect();
    unfamiliar_records(&context, &mut alerts);
    grant_burst(&context, &mut alerts);
    many_departments(&context, &mut alerts);
    denied_attempts(&context, &mut alerts);
    alerts
}

/// Run one of [`CUT_RULES`] over the keys from `cut` on.
pub(crate) fn evaluate_cut(c: &Context, rule: Rule, cut: Cut, alerts: &mut Vec<Keyed>) {
    match rule {
        Rule::BulkReads => bulk_reads(c, cut, alerts),
        Rule::OffHoursReads => off_hours_reads(c, cut, alerts),
        Rule::ReadsBeforeTransfer => reads_before_transfer(c, cut, alerts),
        Rule::ReadsBeforeRevocation => reads_before_revocation(c, cut, alerts),
        Rule::UnusedGrants => unused_grants(c, cut, alerts),
        _ => {}
    }
}

/// How long after its key day new events can still change a
/// [`CUT_RULES`] alert: until the grant's window has passed for unused
/// grants, the day itself for the others.
pub(crate) fn lookahead_ms(thresholds: &Thresholds, rule: Rule) -> u64 {
    match rule {
        Rule::UnusedGrants => u64::from(thresholds.unused_grants.window_days) * DAY_MS as u64,
        _ => 0,
    }
}

/// The first of `reads` (observed indices in chain order) at or after
/// the cut.
fn from_cut(reads: &[usize], cut: Cut) -> &[usize] {
    if cut.is_all() {
        return reads;
    }
    &reads[reads.partition_point(|i| *i < cut.from_index)..]
}

fn bulk_reads(c: &Context, cut: Cut, alerts: &mut Vec<Keyed>) {
    let t = &c.thresholds.bulk_reads;
    for (member, days) in &c.index.daily {
        let department = c.index.member_department.get(member);
        for (&day, &count) in days.range(cut.day..) {
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
            let indices: Vec<usize> = from_cut(&c.index.reads_by_member[member], cut)
                .iter()
                .copied()
                .filter(|i| stats::local_day(c.observed[*i].event.time.0, &hours) == day)
                .collect();
            alerts.push((
                day,
                c.alert(
                    Rule::BulkReads,
                    Some(*member),
                    department.cloned(),
                    indices,
                    score,
                    explanation,
                ),
            ));
        }
    }
}

fn off_hours_reads(c: &Context, cut: Cut, alerts: &mut Vec<Keyed>) {
    let min = c.thresholds.off_hours_reads.reads_min as usize;
    for (member, reads) in &c.index.reads_by_member {
        let mut by_day: BTreeMap<(i64, Option<&DepartmentId>), Vec<usize>> = BTreeMap::new();
        for &i in from_cut(reads, cut) {
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
            if indices.len() < min || day < cut.day {
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
            alerts.push((
                day,
                c.alert(
                    Rule::OffHoursReads,
                    Some(*member),
                    department.cloned(),
                    indices,
                    score,
                    explanation,
                ),
            ));
        }
    }
}

/// What a member has handled so far.
#[derive(Clone, Debug, Default)]
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

impl Familiar {
    /// The alert for the current day, if it has enough unfamiliar reads.
    fn alert(&self, c: &Context, member: &PublicKey) -> Option<Alert> {
        let t = &c.thresholds.unfamiliar_records;
        if self.novel.len() < t.reads_min as usize {
            return None;
        }
        let reasons: BTreeSet<&str> = self.novel.iter().map(|(_, r)| r.as_str()).collect();
        let known: Vec<&str> = self.types.iter().map(|s| s.as_str()).collect();
        let explanation = format!(
            "member {member} ({}) read {} documents on {} of kinds they had never handled in {} earlier reads and registrations: {}; before that day they had handled record types {} up to classification {}",
            department_name(self.department.as_ref()),
            self.novel.len(),
            self.day.map(stats::format_day).unwrap_or_default(),
            self.actions,
            reasons.into_iter().collect::<Vec<_>>().join(", "),
            known.join(", "),
            self.classification.map(|c| c.to_string()).unwrap_or_default(),
        );
        let score = self.novel.len() as f64;
        Some(c.alert(
            Rule::UnfamiliarRecords,
            Some(*member),
            self.department.clone(),
            self.novel.iter().map(|(i, _)| *i).collect(),
            score,
            explanation,
        ))
    }

    /// Closes the current day: its alert, then what it taught.
    fn flush(&mut self, c: &Context, member: &PublicKey, alerts: &mut Vec<Alert>) {
        alerts.extend(self.alert(c, member));
        self.novel.clear();
        for (record_type, classification) in self.today.drain(..) {
            self.actions += 1;
            self.types.insert(record_type);
            self.classification = self.classification.max(Some(classification));
        }
    }
}

/// The unfamiliar-records rule as a stream: every member's record of what
/// they handled, fed one event at a time. A day's alert is final once the
/// member acts on a later day; the current days' alerts are
/// [`Familiarity::pending`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Familiarity {
    members: BTreeMap<PublicKey, Familiar>,
}

impl Familiarity {
    /// Feeds `c.observed[i]`; alerts of days it closes go to `alerts`.
    pub(crate) fn step(&mut self, c: &Context, i: usize, alerts: &mut Vec<Alert>) {
        let t = &c.thresholds.unfamiliar_records;
        let o = &c.observed[i];
        let is_read = match &o.event.action {
            Action::Read { .. } => true,
            Action::Register { .. } => false,
            _ => return,
        };
        let Some(document) = o.document else {
            return;
        };
        let info = &c.documents[document];
        let hours = c.hours_of(o);
        let day = stats::local_day(o.event.time.0, &hours);
        let f = self.members.entry(o.event.actor).or_default();
        if f.day != Some(day) {
            f.flush(c, &o.event.actor, alerts);
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

    /// The alerts of every member's current day, as closing it now would
    /// give them.
    pub(crate) fn pending(&self, c: &Context, alerts: &mut Vec<Alert>) {
        for (member, f) in &self.members {
            alerts.extend(f.alert(c, member));
        }
    }
}

fn unfamiliar_records(c: &Context, alerts: &mut Vec<Alert>) {
    let mut familiarity = Familiarity::default();
    for i in 0..c.observed.len() {
        familiarity.step(c, i, alerts);
    }
    familiarity.pending(c, alerts);
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

fn reads_before_transfer(c: &Context, cut: Cut, alerts: &mut Vec<Keyed>) {
    let t = &c.thresholds.reads_before_transfer;
    // (reader, local day) → (department, offers, reads, typical, whose)
    type Group = (DepartmentId, Vec<usize>, BTreeSet<usize>, f64, &'static str);
    let mut groups: BTreeMap<(PublicKey, i64), Group> = BTreeMap::new();
    for (i, o) in c.observed.iter().enumerate().skip(cut.from_index) {
        let Action::Offer { .. } = o.event.action else {
            continue;
        };
        let (Some(document), Some(from)) = (o.document, o.custodian.as_ref()) else {
            continue;
        };
        let time = o.event.time.0;
        let window_start = time.saturating_sub(u64::from(t.window_hours) * HOUR_MS);
        let mut document_reads = c.index.reads_of_document(document);
        if !cut.is_all() {
            // The live path feeds events in time order (it rebuilds
            // when they are not), so the window is a suffix.
            let start =
                document_reads.partition_point(|r| c.observed[*r].event.time.0 < window_start);
            document_reads = &document_reads[start..];
        }
        let readers: BTreeSet<PublicKey> = document_reads
            .iter()
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
        if day < cut.day {
            continue;
        }
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
        alerts.push((day, alert));
    }
}

fn reads_before_revocation(c: &Context, cut: Cut, alerts: &mut Vec<Keyed>) {
    let t = &c.thresholds.reads_before_revocation;
    for (i, o) in c.observed.iter().enumerate().skip(cut.from_index) {
        let Action::Revoke { member } = &o.event.action else {
            continue;
        };
        let department = c.index.member_department.get(member);
        let hours = c.hours(department);
        let time = o.event.time.0;
        let day = stats::local_day(time, &hours);
        if day < cut.day {
            continue;
        }
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
        alerts.push((
            day,
            c.alert(
                Rule::ReadsBeforeRevocation,
                Some(*member),
                department.cloned(),
                indices,
                ratio,
                explanation,
            ),
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
    let scan = scan_clusters(c, indices, window_ms, accept, None);
    let mut found = scan.settled;
    found.extend(scan.open);
    found
}

/// What [`scan_clusters`] found.
pub(crate) struct Scan {
    /// Clusters no later event can change.
    pub settled: Vec<Vec<usize>>,
    /// How many of the indices lie before the first start whose decision
    /// a later event can still change: the next scan resumes there.
    pub settled_len: usize,
    /// The clusters after that point, as the history stands.
    pub open: Vec<Vec<usize>>,
}

/// The scan of [`clusters`]. With `end_ms` (the time of the last event,
/// which later events cannot precede), a decision whose window closed by
/// then is settled; the scan from any settled start gives the same
/// clusters from there on as the scan from the first.
fn scan_clusters(
    c: &Context,
    indices: &[usize],
    window_ms: u64,
    accept: impl Fn(&[usize]) -> bool,
    end_ms: Option<u64>,
) -> Scan {
    let mut scan = Scan {
        settled: Vec::new(),
        settled_len: 0,
        open: Vec::new(),
    };
    let mut settling = true;
    let mut start = 0;
    let mut end = 0;
    while start < indices.len() {
        let limit = c.observed[indices[start]].event.time.0 + window_ms;
        settling = settling && end_ms.is_some_and(|end_ms| limit <= end_ms);
        end = end.max(start);
        while end < indices.len() && c.observed[indices[end]].event.time.0 < limit {
            end += 1;
        }
        let accepted = accept(&indices[start..end]);
        if accepted {
            let cluster = indices[start..end].to_vec();
            if settling {
                scan.settled.push(cluster);
            } else {
                scan.open.push(cluster);
            }
            start = end;
        } else {
            start += 1;
        }
        if settling {
            scan.settled_len = start;
        }
    }
    scan
}

/// A stream of clusters over one member's or one document's events: the
/// events from `start` on are still open.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClusterStream {
    pub start: usize,
}

/// Which cluster rule a stream belongs to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum ClusterRule {
    GrantBurst,
    DeniedAttempts,
    ManyDepartments,
}

/// The events of a member (bursts) whose clusters a rule looks for.
pub(crate) fn member_events<'a>(
    index: &'a Index,
    rule: ClusterRule,
    member: &PublicKey,
) -> &'a [usize] {
    let lists = match rule {
        ClusterRule::GrantBurst => &index.grants_by_member,
        _ => &index.denied_by_member,
    };
    lists.get(member).map(Vec::as_slice).unwrap_or_default()
}

/// Advances a stream over `indices` (its whole list): alerts of clusters
/// that became final go to `settled`, those still open to `open`.
pub(crate) fn advance_stream(
    c: &Context,
    rule: ClusterRule,
    stream: &mut ClusterStream,
    indices: &[usize],
    settled: &mut Vec<Alert>,
    open: &mut Vec<Alert>,
) {
    let tail = &indices[stream.start.min(indices.len())..];
    let end_ms = Some(c.index.end_ms);
    let scan = match rule {
        ClusterRule::GrantBurst | ClusterRule::DeniedAttempts => {
            let (_, t, _) = burst_rule(c, rule);
            let window_ms = u64::from(t.window_minutes) * MINUTE_MS;
            scan_clusters(
                c,
                tail,
                window_ms,
                |s| s.len() >= t.count_min as usize,
                end_ms,
            )
        }
        ClusterRule::ManyDepartments => {
            let t = &c.thresholds.many_departments;
            let window_ms = u64::from(t.window_hours) * HOUR_MS;
            let min = t.departments_min as usize;
            scan_clusters(
                c,
                tail,
                window_ms,
                |s| distinct_departments(c, s) >= min,
                end_ms,
            )
        }
    };
    stream.start += scan.settled_len;
    for (clusters, out) in [(scan.settled, settled), (scan.open, open)] {
        for cluster in clusters {
            out.push(match rule {
                ClusterRule::ManyDepartments => many_alert(c, &cluster),
                _ => burst_alert(c, rule, cluster),
            });
        }
    }
}

fn burst_rule<'a>(c: &Context<'a>, rule: ClusterRule) -> (Rule, &'a Burst, &'static str) {
    match rule {
        ClusterRule::GrantBurst => (
            Rule::GrantBurst,
            &c.thresholds.grant_burst,
            "granted read access",
        ),
        _ => (
            Rule::DeniedAttempts,
            &c.thresholds.denied_attempts,
            "was refused a read",
        ),
    }
}

fn burst_alert(c: &Context, rule: ClusterRule, cluster: Vec<usize>) -> Alert {
    let (rule, t, what) = burst_rule(c, rule);
    let first = &c.observed[cluster[0]];
    let last = &c.observed[cluster[cluster.len() - 1]];
    let member = first.event.actor;
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
    c.alert(rule, Some(member), department, cluster, score, explanation)
}

fn bursts_of(c: &Context, rule: ClusterRule, alerts: &mut Vec<Alert>) {
    let (_, t, _) = burst_rule(c, rule);
    let lists = match rule {
        ClusterRule::GrantBurst => &c.index.grants_by_member,
        _ => &c.index.denied_by_member,
    };
    let window_ms = u64::from(t.window_minutes) * MINUTE_MS;
    for indices in lists.values() {
        for cluster in clusters(c, indices, window_ms, |s| s.len() >= t.count_min as usize) {
            alerts.push(burst_alert(c, rule, cluster));
        }
    }
}

fn grant_burst(c: &Context, alerts: &mut Vec<Alert>) {
    bursts_of(c, ClusterRule::GrantBurst, alerts);
}

fn denied_attempts(c: &Context, alerts: &mut Vec<Alert>) {
    bursts_of(c, ClusterRule::DeniedAttempts, alerts);
}

fn unused_grants(c: &Context, cut: Cut, alerts: &mut Vec<Keyed>) {
    let t = &c.thresholds.unused_grants;
    let window_ms = u64::from(t.window_days) * DAY_MS as u64;
    let mut groups: BTreeMap<(PublicKey, DepartmentId, i64), Vec<usize>> = BTreeMap::new();
    for (i, o) in c.observed.iter().enumerate().skip(cut.from_index) {
        let Action::Grant { to, .. } = &o.event.action else {
            continue;
        };
        let Some(document) = o.document else {
            continue;
        };
        let time = o.event.time.0;
        // A grant younger than the window may still be used.
        if c.index.end_ms < time + window_ms {
            continue;
        }
        let mut document_reads = c.index.reads_of_document(document);
        if !cut.is_all() {
            let start = document_reads.partition_point(|r| c.observed[*r].event.time.0 < time);
            document_reads = &document_reads[start..];
        }
        let used = document_reads.iter().map(|r| &c.observed[*r]).any(|r| {
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
        if indices.len() < t.grants_min as usize || day < cut.day {
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
        alerts.push((
            day,
            c.alert(
                Rule::UnusedGrants,
                Some(member),
                department,
                indices,
                score,
                explanation,
            ),
        ));
    }
}

fn distinct_departments(c: &Context, s: &[usize]) -> usize {
    s.iter()
        .filter_map(|i| c.observed[*i].department.as_ref())
        .collect::<BTreeSet<_>>()
        .len()
}

fn many_departments(c: &Context, alerts: &mut Vec<Alert>) {
    let t = &c.thresholds.many_departments;
    let window_ms = u64::from(t.window_hours) * HOUR_MS;
    let min = t.departments_min as usize;
    for reads in c.index.reads_by_document.values() {
        for cluster in clusters(c, reads, window_ms, |s| distinct_departments(c, s) >= min) {
            alerts.push(many_alert(c, &cluster));
        }
    }
}

fn many_alert(c: &Context, cluster: &[usize]) -> Alert {
    let t = &c.thresholds.many_departments;
    let min = t.departments_min as usize;
    // The read that brought the count to the threshold.
    let mut seen = BTreeSet::new();
    let mut crossing = cluster[0];
    for &i in cluster {
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
    c.alert(
        Rule::ManyDepartments,
        Some(o.event.actor),
        custodian,
        cluster.to_vec(),
        score,
        explanation,
    )
}
