//! The live path: blocks are fed one at a time as they commit, and each
//! step says which alerts are new or changed since the previous one.
//!
//! The detector's rules judge the whole history (a baseline needs the 30
//! days before a day; "never read this kind of record before" needs every
//! earlier read), so a live alert is not a different computation: after
//! every block the [`LiveDetector`] holds exactly the alerts the batch run
//! ([`Detector::alerts`]) gives for the same blocks, in the same order.
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

use std::collections::BTreeMap;

use custody_ledger::block::Block;
use custody_ledger::genesis::Genesis;
use custody_ledger::types::{DepartmentId, Height, PublicKey, TxId};
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Rule};
use crate::detector::{Detector, FeedError};
use crate::event::Event;
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

/// The detector fed block by block, with the alerts' identities kept.
#[derive(Clone, Debug)]
pub struct LiveDetector {
    detector: Detector,
    /// The current alerts, in the detector's order.
    current: Vec<LiveAlert>,
    next_seq: u64,
    height: Height,
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
            current: Vec::new(),
            next_seq: 1,
            height: Height(0),
        }
    }

    /// The height of the last block fed.
    pub fn height(&self) -> Height {
        self.height
    }

    /// The current alerts, in the detector's order.
    pub fn alerts(&self) -> &[LiveAlert] {
        &self.current
    }

    /// The highest sequence number given so far (0 before any alert).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Feeds committed blocks in height order (several when the caller
    /// fell behind), then judges once.
    pub fn feed_blocks<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = &'a Block>,
    ) -> Result<Step, FeedError> {
        let before = self.detector.events();
        self.absorb(blocks)?;
        Ok(self.judge_if_fed(before))
    }

    /// Feeds blocks a node committed before it started, without judging
    /// (call [`LiveDetector::settle`] once they are all in).
    pub fn absorb<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = &'a Block>,
    ) -> Result<(), FeedError> {
        for block in blocks {
            self.detector.feed_block(block)?;
            self.height = self.height.max(block.header.height);
        }
        Ok(())
    }

    /// Judges what was absorbed, once, reporting nothing as raised. Each
    /// alert's heights are those of its last evidence, the first block
    /// after which this revision could have been raised, so that a reader
    /// polling by height across a restart is not handed the whole history
    /// again.
    pub fn settle(&mut self) {
        self.judge();
        for live in &mut self.current {
            live.raised_height = live.alert.last_height();
            live.updated_height = live.alert.last_height();
        }
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
        Ok(self.judge_if_fed(before))
    }

    /// Judges when events came since the detector held `before` of them.
    /// Blocks without transactions change nothing the rules read (the
    /// detector's input and its idea of "now", the last event's time), so
    /// the alerts stay what they were.
    fn judge_if_fed(&mut self, before: usize) -> Step {
        if self.detector.events() == before {
            return Step::default();
        }
        self.judge()
    }

    /// Compares the detector's alerts with the current ones and moves on.
    fn judge(&mut self) -> Step {
        let mut previous: BTreeMap<AlertKey, LiveAlert> = BTreeMap::new();
        let mut seen: BTreeMap<AlertKey, usize> = BTreeMap::new();
        for live in std::mem::take(&mut self.current) {
            let key = key_of(&live.alert, &mut seen);
            previous.insert(key, live);
        }
        let mut seen: BTreeMap<AlertKey, usize> = BTreeMap::new();
        let mut step = Step::default();
        for alert in self.detector.alerts() {
            let key = key_of(&alert, &mut seen);
            let departments = self.detector.departments_concerned(&alert);
            let live = match previous.remove(&key) {
                Some(old) if old.alert == alert && old.departments == departments => old,
                Some(old) => {
                    let live = LiveAlert {
                        seq: self.take_seq(),
                        raised_height: old.raised_height,
                        updated_height: self.height,
                        revision: old.revision + 1,
                        departments,
                        alert,
                    };
                    step.updated.push(live.clone());
                    live
                }
                None => {
                    let live = LiveAlert {
                        seq: self.take_seq(),
                        raised_height: self.height,
                        updated_height: self.height,
                        revision: 1,
                        departments,
                        alert,
                    };
                    step.raised.push(live.clone());
                    live
                }
            };
            self.current.push(live);
        }
        step.withdrawn = previous.into_values().map(|old| old.seq).collect();
        step.withdrawn.sort_unstable();
        step
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
