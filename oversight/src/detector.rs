//! The detector: feed committed events in chain order, ask for alerts.
//!
//! The detector keeps what the rules need (every member's department, every
//! document's record type, classification and custodian, and the events
//! themselves) and evaluates every rule over the whole history when asked,
//! so the alerts depend only on the events fed, never on how they were
//! chunked or when `alerts` was called.

use std::collections::BTreeMap;

use custody_ledger::block::Block;
use custody_ledger::genesis::Genesis;
use custody_ledger::types::{Classification, DepartmentId, DocumentId, Height, PublicKey};

use crate::alert::Alert;
use crate::event::{events_of_block, events_of_genesis, Action, Event};
use crate::rules;
use crate::thresholds::Thresholds;

/// What the chain says about a document, as far as oversight cares.
#[derive(Clone, Debug)]
pub(crate) struct DocumentInfo {
    pub record_type: String,
    pub classification: Classification,
    /// The department that registered it.
    pub department: DepartmentId,
}

/// An event with the context it happened in.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    pub event: Event,
    /// The actor's department when the event was committed.
    pub department: Option<DepartmentId>,
    /// The document's custodian just before the event.
    pub custodian: Option<DepartmentId>,
    /// Index into the detector's documents.
    pub document: Option<usize>,
}

/// The detector.
#[derive(Clone, Debug)]
pub struct Detector {
    thresholds: Thresholds,
    members: BTreeMap<PublicKey, DepartmentId>,
    document_index: BTreeMap<DocumentId, usize>,
    documents: Vec<DocumentInfo>,
    custodians: Vec<Option<DepartmentId>>,
    /// Pending transfer offers: document index → receiving department.
    offers: BTreeMap<usize, DepartmentId>,
    observed: Vec<Observed>,
    last: Option<(Height, u32)>,
}

/// Why an event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("event at height {height} index {index} comes after height {last_height} index {last_index}: events must be fed in chain order")]
    OutOfOrder {
        height: Height,
        index: u32,
        last_height: Height,
        last_index: u32,
    },
}

impl Detector {
    /// A detector with these thresholds (checked by the caller with
    /// [`Thresholds::check`]).
    pub fn new(thresholds: Thresholds) -> Detector {
        Detector {
            thresholds,
            members: BTreeMap::new(),
            document_index: BTreeMap::new(),
            documents: Vec::new(),
            custodians: Vec::new(),
            offers: BTreeMap::new(),
            observed: Vec::new(),
            last: None,
        }
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Number of events fed.
    pub fn events(&self) -> usize {
        self.observed.len()
    }

    /// Feed the genesis's departments and admins.
    pub fn feed_genesis(&mut self, genesis: &Genesis) {
        for event in events_of_genesis(genesis) {
            self.feed_unchecked(event);
        }
    }

    /// Feed one committed block.
    pub fn feed_block(&mut self, block: &Block) -> Result<(), FeedError> {
        self.feed_all(events_of_block(block))
    }

    /// Feed events in chain order.
    pub fn feed_all(&mut self, events: impl IntoIterator<Item = Event>) -> Result<(), FeedError> {
        for event in events {
            self.feed(event)?;
        }
        Ok(())
    }

    /// Feed one event. Events must come in chain order (height, then index;
    /// several events may share one transaction).
    pub fn feed(&mut self, event: Event) -> Result<(), FeedError> {
        let at = (event.height, event.index);
        if let Some(last) = self.last {
            if at < last {
                return Err(FeedError::OutOfOrder {
                    height: event.height,
                    index: event.index,
                    last_height: last.0,
                    last_index: last.1,
                });
            }
        }
        self.feed_unchecked(event);
        Ok(())
    }

    fn feed_unchecked(&mut self, event: Event) {
        self.last = Some((event.height, event.index));
        let department = self.members.get(&event.actor).cloned();
        let document = event
            .action
            .document()
            .and_then(|d| self.document_index.get(d).copied());
        let custodian = document.and_then(|i| self.custodians[i].clone());
        let mut document = document;
        match &event.action {
            Action::Enroll { member, department } => {
                self.members.insert(*member, department.clone());
            }
            Action::Register {
                document: id,
                record_type,
                classification,
                department,
            } if document.is_none() => {
                let index = self.documents.len();
                self.documents.push(DocumentInfo {
                    record_type: record_type.clone(),
                    classification: *classification,
                    department: department.clone(),
                });
                self.custodians.push(Some(department.clone()));
                self.document_index.insert(id.clone(), index);
                document = Some(index);
            }
            Action::Offer { to, .. } => {
                if let Some(i) = document {
                    self.offers.insert(i, to.clone());
                }
            }
            Action::Accept { .. } => {
                if let Some(i) = document {
                    if let Some(to) = self.offers.remove(&i) {
                        self.custodians[i] = Some(to);
                    }
                }
            }
            _ => {}
        }
        self.observed.push(Observed {
            event,
            department,
            custodian,
            document,
        });
    }

    /// Every alert the events fed so far raise, in a fixed order.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut alerts = rules::evaluate(&self.observed, &self.documents, &self.thresholds);
        sort_alerts(&mut alerts, |a| a);
        alerts
    }

    /// What the rules read: the events with their context, and the
    /// documents.
    pub(crate) fn observed(&self) -> (&[Observed], &[DocumentInfo]) {
        (&self.observed, &self.documents)
    }

    /// The departments an alert concerns: the department it names, and
    /// the registering and current custodian department of each of its
    /// documents, sorted, each once.
    pub fn departments_concerned(&self, alert: &Alert) -> Vec<DepartmentId> {
        let mut departments: Vec<DepartmentId> = alert.department.iter().cloned().collect();
        for document in &alert.documents {
            if let Some(&i) = self.document_index.get(document) {
                departments.push(self.documents[i].department.clone());
                departments.extend(self.custodians[i].iter().cloned());
            }
        }
        departments.sort();
        departments.dedup();
        departments
    }

    /// The alerts with evidence at or above `height` (the baselines still
    /// learn from the whole history fed).
    pub fn alerts_from(&self, height: Height) -> Vec<Alert> {
        let mut alerts = self.alerts();
        alerts.retain(|a| a.last_height() >= height);
        alerts
    }
}

/// Sorts alerts in the detector's order: by first evidence, rule, member,
/// department, documents and explanation.
pub(crate) fn sort_alerts<T>(alerts: &mut [T], alert: impl Fn(&T) -> &Alert) {
    alerts.sort_by(|a, b| {
        let (a, b) = (alert(a), alert(b));
        let key = |x: &Alert| {
            (
                x.evidence.first().map(|e| (e.height, e.index)),
                x.rule,
                x.member,
                x.department.clone(),
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.documents.cmp(&b.documents))
            .then_with(|| a.explanation.cmp(&b.explanation))
    });
}
