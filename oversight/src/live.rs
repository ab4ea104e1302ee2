//! The live path: blocks are fed one at a time as they commit, and each
//! step says which alerts are new or changed since the previous one.
//!
//! After every block the [`LiveDetector`] holds exactly the alerts the
//! batch run ([`Detector::alerts`]) gives for the same blocks, without
//! judging the whole history again: block times never go back, so an
//! alert of a day-keyed rule whose day ended long enough before the
//! previous block (three days, the widest time-zone offset, and the
//! rule's own look-ahead: the unused-grant window) is final and kept; only
//! later days are judged again, from indexes kept up to date event by
//! event. "Never read this kind of record before" and the bursts are
//! streams fed event by event whose settled results are final. A member
//! who has read moving department, or a block time going back, makes the
//! next step start again from the first event, as the batch run would.
//! What the live path adds is identity over time: each alert keeps a
//! sequence number, the height at which it was first raised and a
//! revision, so that a reader polling "since sequence N" or a webhook
//! sees each alert once when it is raised and again only when its content
//! changes (a day's bulk read grows as more reads of that day commit).
//!
//! An alert is the same alert from one step to the next when its rule,
//! member, department and first evidence transaction are the same: the
//! first read of a day, the first grant of a burst, the offer a burst of
//! reads came before.

use std::collections::{BTreeMap, BTreeSet};

use custody_ledger::block::Block;
use custody_ledger::genesis::Genesis;
use custody_ledger::types::{DepartmentId, DocumentId, Height, PublicKey, TxId};
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Rule};
use crate::detector::{sort_alerts, Detector, FeedError};
use crate::event::{events_of_block, Action, Event};
use crate::rules::{
    advance_stream, evaluate_cut, lookahead_ms, member_events, ClusterRule, ClusterStream, Context,
    Cut, Familiarity, Index, CUT_RULES,
};
use crate::stats::DAY_MS;
use crate::thresholds::Thresholds;

/// An alert as the live path keeps it.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct LiveAlert {
    /// Increases by one for every alert raised or changed: a reader that
    /// saw up to `seq` asks for what came after it.
    pub seq: u64,
    /// The committed height after which the alert was first raised.
    pub raised_height: Height,
    /// The committed height after which this revision was derived.
    pub updated_height: Height,
    /// 1 when raised, one more at every change.
    pub revision: u32,
    /// The departments it concerns: the one it names, and the registering
    /// and custodian departments of its documents.
    pub departments: Vec<DepartmentId>,
    #[serde(flatten)]
    pub alert: Alert,
}

impl LiveAlert {
    /// Whether the alert concerns `department`.
    pub fn concerns(&self, department: &DepartmentId) -> bool {
        self.departments.contains(department)
    }
}

/// What one step changed.
#[derive(Clone, Default, PartialEq, Debug)]
pub struct Step {
    /// Alerts raised for the first time, in the detector's order.
    pub raised: Vec<LiveAlert>,
    /// Alerts whose content changed (a new revision, a new `seq`).
    pub updated: Vec<LiveAlert>,
    /// Alerts the detector no longer raises (the history fed since made
    /// them ordinary), by the `seq` of their last revision.
    pub withdrawn: Vec<u64>,
    /// The `seq` of each revision an `updated` one replaces.
    pub replaced: Vec<u64>,
}

/// Identity of an alert across steps; the last part tells apart alerts
/// that agree on the rest.
type AlertKey = (
    Rule,
    Option<PublicKey>,
    Option<DepartmentId>,
    Option<TxId>,
    usize,
);

/// Where an open alert comes from, so that the next step knows whether it
/// can still change.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Anchor {
    /// A day-keyed rule's alert for this day.
    Day(Rule, i64),
    /// A stream's open cluster or an unfamiliar-records day not closed.
    Stream,
}

/// Whose events a cluster stream scans.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum StreamKey {
    Member(PublicKey),
    Document(usize),
}

/// The rules' state kept between steps.
#[derive(Clone, Debug, Default)]
struct Incremental {
    index: Index,
    familiarity: Familiarity,
    /// Where each cluster stream's open part starts.
    starts: BTreeMap<(ClusterRule, StreamKey), ClusterStream>,
    /// The streams with an open part.
    active: BTreeSet<(ClusterRule, StreamKey)>,
    /// Events taken in.
    fed: usize,
    /// Block times went back once: every step judges the whole history.
    unordered: bool,
}

/// The detector fed block by block, with the alerts' identities kept.
#[derive(Clone, Debug)]
pub struct LiveDetector {
    detector: Detector,
    state: Incremental,
    /// Every current alert, by a slot number that stays while the alert
    /// does.
    alerts: BTreeMap<u64, LiveAlert>,
    /// The alerts new events can still change, and why.
    open: BTreeMap<u64, Anchor>,
    /// Document → the slots of the alerts naming it.
    by_document: BTreeMap<DocumentId, BTreeSet<u64>>,
    next_slot: u64,
    next_seq: u64,
    height: Height,
}

/// Largest distance of any configured time zone from UTC, in ms.
fn widest_offset_ms(thresholds: &Thresholds) -> u64 {
    thresholds
        .departments
        .values()
        .chain(std::iter::once(&thresholds.working_hours))
        .map(|h| u64::from(h.utc_offset_minutes.unsigned_abs()) * 60_000)
        .max()
        .unwrap_or(0)
}

impl LiveDetector {
    /// A live detector with these thresholds (checked by the caller with
    /// [`Thresholds::check`]) that knows the genesis's departments.
    pub fn new(thresholds: Thresholds, genesis: &Genesis) -> LiveDetector {
        let mut detector = Detector::new(thresholds);
        detector.feed_genesis(genesis);
        LiveDetector::from_detector(detector)
    }

    /// A live detector continuing from `detector` (fed the genesis, and
    /// perhaps blocks: its alerts are raised on the first step).
    pub fn from_detector(detector: Detector) -> LiveDetector {
        LiveDetector {
            detector,
            state: Incremental::default(),
            alerts: BTreeMap::new(),
            open: BTreeMap::new(),
            by_document: BTreeMap::new(),
            next_slot: 0,
            next_seq: 1,
            height: Height(0),
        }
    }

    /// The height of the last block fed.
    pub fn height(&self) -> Height {
        self.height
    }

    /// The current alerts, in the detector's order (sorts them all: for
    /// start-up and tests; a step reports what changed).
    pub fn alerts(&self) -> Vec<LiveAlert> {
        let mut alerts: Vec<LiveAlert> = self.alerts.values().cloned().collect();
        sort_alerts(&mut alerts, |a| &a.alert);
        alerts
    }

    /// The current alerts, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &LiveAlert> {
        self.alerts.values()
    }

    /// How many alerts there are.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// How many alerts the next block can still change.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    /// The highest sequence number given so far (0 before any alert).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Feeds committed blocks in height order (several when the caller
    /// fell behind), judging after each one as if it came alone, so that
    /// sequence numbers do not depend on how blocks were grouped.
    pub fn feed_blocks<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = &'a Block>,
    ) -> Result<Step, FeedError> {
        let mut step = Step::default();
        for block in blocks {
            let next = self.feed_events(block.header.height, events_of_block(block))?;
            step.raised.extend(next.raised);
            step.updated.extend(next.updated);
            step.withdrawn.extend(next.withdrawn);
            step.replaced.extend(next.replaced);
        }
        Ok(step)
    }

    /// Feeds blocks a node committed before it started, judging each as
    /// it would have been judged live (so every alert gets the sequence
    /// number it had before the restart) and reporting nothing.
    pub fn absorb<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = &'a Block>,
    ) -> Result<(), FeedError> {
        for block in blocks {
            self.feed_events(block.header.height, events_of_block(block))?;
        }
        Ok(())
    }

    /// Feeds the events of the block at `height` (in chain order), then
    /// judges.
    pub fn feed_events(
        &mut self,
        height: Height,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<Step, FeedError> {
        let before = self.detector.events();
        self.detector.feed_all(events)?;
        self.height = self.height.max(height);
        if self.detector.events() == before {
            // Blocks without transactions change nothing the rules read
            // (the detector's input and its idea of "now", the last
            // event's time), so the alerts stay what they were.
            return Ok(Step::default());
        }
        Ok(self.judge())
    }

    /// Takes in the new events and re-judges what they can change.
    fn judge(&mut self) -> Step {
        let thresholds = self.detector.thresholds().clone();
        let (observed, documents) = self.detector.observed();
        let state = &mut self.state;
        let previous_end = state.index.end_ms;
        let first = state.fed == 0;
        let mut rebuild = state.unordered;
        let mut transferred: BTreeSet<DocumentId> = BTreeSet::new();
        for i in state.fed..observed.len() {
            let added = state.index.add(observed, i, &thresholds);
            if added.time_went_back {
                state.unordered = true;
            }
            rebuild |= added.time_went_back || added.department_moved;
            if let Action::Accept { document } = &observed[i].event.action {
                transferred.insert(document.clone());
            }
        }
        let mut new_from = state.fed;
        if rebuild {
            // Rare (a member who has read moved department, or block
            // times went back): start again from the first event.
            state.index = Index::build(observed, &thresholds);
            state.familiarity = Familiarity::default();
            state.starts.clear();
            state.active.clear();
            new_from = 0;
        }
        state.fed = observed.len();
        let c = Context::new(observed, documents, &thresholds, &state.index);

        // The alerts that become final, and those still open.
        let mut settled: Vec<Alert> = Vec::new();
        let mut open: Vec<(Anchor, Alert)> = Vec::new();
        for (i, o) in observed.iter().enumerate().skip(new_from) {
            state.familiarity.step(&c, i, &mut settled);
            let keys = match (&o.event.action, o.document) {
                (Action::Grant { .. }, _) => {
                    vec![(ClusterRule::GrantBurst, StreamKey::Member(o.event.actor))]
                }
                (Action::Denied { .. }, _) => {
                    vec![(
                        ClusterRule::DeniedAttempts,
                        StreamKey::Member(o.event.actor),
                    )]
                }
                (Action::Read { .. }, Some(d)) => {
                    vec![(ClusterRule::ManyDepartments, StreamKey::Document(d))]
                }
                _ => Vec::new(),
            };
            state.active.extend(keys);
        }
        let mut stream_settled = Vec::new();
        let mut stream_open = Vec::new();
        let mut closed = Vec::new();
        for key in &state.active {
            let (rule, who) = *key;
            let indices = match who {
                StreamKey::Member(m) => member_events(&state.index, rule, &m),
                StreamKey::Document(d) => state.index.reads_of_document(d),
            };
            let stream = state.starts.entry(*key).or_default();
            advance_stream(
                &c,
                rule,
                stream,
                indices,
                &mut stream_settled,
                &mut stream_open,
            );
            if stream.start >= indices.len() {
                closed.push(*key);
            }
        }
        for key in closed {
            state.active.remove(&key);
        }
        settled.extend(stream_settled);
        let mut pending = Vec::new();
        state.familiarity.pending(&c, &mut pending);
        open.extend(
            pending
                .into_iter()
                .chain(stream_open)
                .map(|a| (Anchor::Stream, a)),
        );

        // The day-keyed rules: keys a new event (at or after the previous
        // end) cannot reach are final.
        let offset = widest_offset_ms(&thresholds);
        let mut cuts: BTreeMap<Rule, Cut> = BTreeMap::new();
        for rule in CUT_RULES {
            let margin = lookahead_ms(&thresholds, rule) + 3 * DAY_MS as u64 + offset;
            let cut = if rebuild || first || previous_end < margin + offset + DAY_MS as u64 {
                Cut::ALL
            } else {
                let day = ((previous_end - margin) / DAY_MS as u64) as i64;
                let from_ms = (day as u64 * DAY_MS as u64).saturating_sub(offset + DAY_MS as u64);
                let from_index = observed.partition_point(|o| o.event.time.0 < from_ms);
                Cut {
                    day,
                    from_ms,
                    from_index,
                }
            };
            cuts.insert(rule, cut);
            let mut keyed = Vec::new();
            evaluate_cut(&c, rule, cut, &mut keyed);
            open.extend(
                keyed
                    .into_iter()
                    .map(|(day, a)| (Anchor::Day(rule, day), a)),
            );
        }

        // What the previous step left open and may now change.
        let candidates: Vec<u64> = if rebuild {
            self.open.clear();
            self.alerts.keys().copied().collect()
        } else {
            // An open alert whose day fell before its rule's cut is final
            // as it stands; the rest were derived again above.
            std::mem::take(&mut self.open)
                .into_iter()
                .filter(|(_, anchor)| match anchor {
                    Anchor::Day(rule, day) => cuts.get(rule).is_none_or(|c| *day >= c.day),
                    Anchor::Stream => true,
                })
                .map(|(slot, _)| slot)
                .collect()
        };
        let mut previous: BTreeMap<AlertKey, u64> = BTreeMap::new();
        {
            let mut sorted: Vec<(u64, &LiveAlert)> = candidates
                .iter()
                .filter_map(|s| self.alerts.get(s).map(|a| (*s, a)))
                .collect();
            sort_alerts(&mut sorted, |(_, a)| &a.alert);
            let mut seen = BTreeMap::new();
            for (slot, live) in sorted {
                previous.insert(key_of(&live.alert, &mut seen), slot);
            }
        }
        let mut derived: Vec<(Option<Anchor>, Alert)> = settled
            .into_iter()
            .map(|a| (None, a))
            .chain(open.into_iter().map(|(anchor, a)| (Some(anchor), a)))
            .collect();
        sort_alerts(&mut derived, |(_, a)| a);

        let mut step = Step::default();
        let mut seen = BTreeMap::new();
        let mut touched: BTreeSet<u64> = BTreeSet::new();
        for (anchor, alert) in derived {
            let key = key_of(&alert, &mut seen);
            let departments = self.detector.departments_concerned(&alert);
            let slot = match previous.remove(&key) {
                Some(slot) => {
                    let changed = self
                        .alerts
                        .get(&slot)
                        .is_none_or(|old| old.alert != alert || old.departments != departments);
                    if changed {
                        self.unindex(slot);
                        let seq = self.take_seq();
                        if let Some(old) = self.alerts.get_mut(&slot) {
                            step.replaced.push(old.seq);
                            old.seq = seq;
                            old.updated_height = self.height;
                            old.revision += 1;
                            old.departments = departments;
                            old.alert = alert;
                            step.updated.push(old.clone());
                        }
                        self.index(slot);
                    }
                    slot
                }
                None => {
                    let slot = self.next_slot;
                    self.next_slot += 1;
                    let live = LiveAlert {
                        seq: self.take_seq(),
                        raised_height: self.height,
                        updated_height: self.height,
                        revision: 1,
                        departments,
                        alert,
                    };
                    step.raised.push(live.clone());
                    self.alerts.insert(slot, live);
                    self.index(slot);
                    slot
                }
            };
            touched.insert(slot);
            if let Some(anchor) = anchor {
                self.open.insert(slot, anchor);
            }
        }
        for slot in previous.into_values() {
            self.unindex(slot);
            if let Some(old) = self.alerts.remove(&slot) {
                step.withdrawn.push(old.seq);
            }
        }
        step.withdrawn.sort_unstable();

        // A transfer changes the departments of alerts on its documents.
        if !rebuild {
            let mut slots: BTreeSet<u64> = BTreeSet::new();
            for d in &transferred {
                slots.extend(self.by_document.get(d).into_iter().flatten().copied());
            }
            for slot in slots {
                if touched.contains(&slot) {
                    continue;
                }
                let Some(old) = self.alerts.get(&slot) else {
                    continue;
                };
                let departments = self.detector.departments_concerned(&old.alert);
                if departments == old.departments {
                    continue;
                }
                let seq = self.take_seq();
                if let Some(old) = self.alerts.get_mut(&slot) {
                    step.replaced.push(old.seq);
                    old.seq = seq;
                    old.updated_height = self.height;
                    old.revision += 1;
                    old.departments = departments;
                    step.updated.push(old.clone());
                }
            }
        }
        step
    }

    fn index(&mut self, slot: u64) {
        if let Some(live) = self.alerts.get(&slot) {
            for d in &live.alert.documents {
                self.by_document.entry(d.clone()).or_default().insert(slot);
            }
        }
    }

    fn unindex(&mut self, slot: u64) {
        if let Some(live) = self.alerts.get(&slot) {
            for d in &live.alert.documents {
                if let Some(slots) = self.by_document.get_mut(d) {
                    slots.remove(&slot);
                    if slots.is_empty() {
                        self.by_document.remove(d);
                    }
                }
            }
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }
}

fn key_of(alert: &Alert, seen: &mut BTreeMap<AlertKey, usize>) -> AlertKey {
    let mut key = (
        alert.rule,
        alert.member,
        alert.department.clone(),
        alert.evidence.first().map(|e| e.tx),
        0,
    );
    let count = seen.entry(key.clone()).or_default();
    key.4 = *count;
    *count += 1;
    key
}
