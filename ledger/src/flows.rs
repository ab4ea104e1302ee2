//! Flows between departments: how many documents moved from one
//! department to another, and how many are offered and not yet accepted.
//!
//! A document record names only its custodian and, while it is offered,
//! the offer; where it was before is in its events. So a completed
//! transfer is an `accepted` event (from the department the event names to
//! the department of the clerk who accepted), and a pending offer is a
//! record in transfer (from its custodian to the offer's recipient).
//!
//! Must not know about: HTTP or how the counts are shown. [`flows`] and
//! [`FlowsBuilder`] are pure; [`flows_in_store`] only reads the store, in
//! pages, and stops at a named number of events.

use std::collections::BTreeMap;

use crate::records::{Document, DocumentEvent, DocumentStatus, EventKind};
use crate::store::{Store, StoreError, PAGE_LIMIT_MAX};
use crate::types::DepartmentId;

/// Transfers from one department to another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Transfers completed: offered by the sender and accepted by the
    /// receiver. A document that went there and back counts once each way.
    pub held: u64,
    /// Offers pending: documents the sender offered and the receiver has
    /// neither accepted nor rejected, nor the sender cancelled. An offer
    /// past its expiry still counts while the record says the document is
    /// in transfer (until it is rejected, cancelled or offered anew).
    pub offered: u64,
}

/// Flows keyed by (sender, receiver), in department order.
pub type Flows = BTreeMap<(DepartmentId, DepartmentId), Flow>;

/// Folds documents and their events into [`Flows`], one at a time, so
/// that no archive and no long history is ever held whole.
#[derive(Debug, Default)]
pub struct FlowsBuilder {
    flows: Flows,
}

impl FlowsBuilder {
    /// Counts `event` if it completes a transfer; any other event counts
    /// nothing.
    pub fn add_event(&mut self, event: &DocumentEvent) {
        if let EventKind::Accepted { from } = &event.kind {
            let flow = self
                .flows
                .entry((from.clone(), event.department.clone()))
                .or_default();
            flow.held = flow.held.saturating_add(1);
        }
    }

    /// Counts `document`'s pending offer, if it has one. Its completed
    /// transfers are in its events ([`FlowsBuilder::add_event`]).
    pub fn add_document(&mut self, document: &Document) {
        if let DocumentStatus::InTransfer(offer) = &document.status {
            let flow = self
                .flows
                .entry((document.custodian.clone(), offer.to.clone()))
                .or_default();
            flow.offered = flow.offered.saturating_add(1);
        }
    }

    pub fn finish(self) -> Flows {
        self.flows
    }
}

/// The flows between departments of `documents`, each given with its
/// events (in any order; only `accepted` events count):
///
/// - every completed transfer of a document from department A to B counts
///   one in `held` of (A, B): the document moved and B accepted it;
/// - a document in transfer, offered by its custodian A to B, counts one in
///   `offered` of (A, B).
///
/// A pair with neither is absent, so a federation where no document was
/// ever offered has no flows. Pure: the same documents give the same flows.
pub fn flows<'a, Events>(documents: impl IntoIterator<Item = (&'a Document, Events)>) -> Flows
where
    Events: IntoIterator<Item = &'a DocumentEvent>,
{
    let mut builder = FlowsBuilder::default();
    for (document, events) in documents {
        builder.add_document(document);
        for event in events {
            builder.add_event(event);
        }
    }
    builder.finish()
}

/// Documents read from the store per page by [`flows_in_store`].
pub const FLOWS_DOCUMENTS_PAGE: usize = 500;

/// Most events [`flows_in_store`] reads for one answer on the auditor's
/// holdings page: every document's history is read, so the cost follows
/// the archive's size; this bounds one page view to a few seconds.
pub const FLOWS_EVENTS_READ_MAX: u64 = 2_000_000;

/// What [`flows_in_store`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowsRead {
    pub flows: Flows,
    /// Documents counted, from the first in id order.
    pub documents_counted: u64,
    /// Whether every document was counted; false when reading them all
    /// would have read more than the limit of events.
    pub complete: bool,
}

/// The [`flows`] of every document in the store, read in pages of
/// [`FLOWS_DOCUMENTS_PAGE`] documents in id order, with each document's
/// history up to the record's own event count (so an event committed while
/// the store is read does not count a document's offer twice, once
/// pending and once accepted).
///
/// Stops before the document whose history would take the events read
/// past `events_read_max`, and says so in [`FlowsRead::complete`]. A
/// document with one event (its registration) never moved, so its history
/// is not read.
pub fn flows_in_store(store: &Store, events_read_max: u64) -> Result<FlowsRead, StoreError> {
    let mut builder = FlowsBuilder::default();
    let mut events_read: u64 = 0;
    let mut documents_counted: u64 = 0;
    let mut after = None;
    loop {
        let page = store.documents(after.as_ref(), FLOWS_DOCUMENTS_PAGE)?;
        for document in &page.items {
            if document.event_count > 1 {
                let events_after = events_read.saturating_add(document.event_count);
                if events_after > events_read_max {
                    return Ok(FlowsRead {
                        flows: builder.finish(),
                        documents_counted,
                        complete: false,
                    });
                }
                events_read = events_after;
                add_history(store, document, &mut builder)?;
            }
            builder.add_document(document);
            documents_counted += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(FlowsRead {
        flows: builder.finish(),
        documents_counted,
        complete: true,
    })
}

/// Adds `document`'s events with a sequence below its event count.
fn add_history(
    store: &Store,
    document: &Document,
    builder: &mut FlowsBuilder,
) -> Result<(), StoreError> {
    let mut from: u64 = 0;
    while from < document.event_count {
        let remaining = document.event_count - from;
        let limit = usize::try_from(remaining).map_or(PAGE_LIMIT_MAX, |n| n.min(PAGE_LIMIT_MAX));
        let page = store.document_history(&document.id, from, limit)?;
        for event in &page.items {
            builder.add_event(event);
        }
        match page.next {
            // A history shorter than the record's count ends here; the
            // store's own checks are not this reader's to make.
            Some(next) if next > from => from = next,
            _ => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Offer;
    use crate::types::{
        Classification, DocumentId, EventHash, Fixity, Format, Hash32, Height, PublicKey,
        Retention, Timestamp, TxId, WrappedKey,
    };

    fn department(slug: &str) -> DepartmentId {
        DepartmentId::new(slug.to_string()).expect("department id")
    }

    fn document(id: &str, custodian: &str, status: DocumentStatus) -> Document {
        let fixity = Fixity {
            sha256: Hash32([1; 32]),
            size_bytes: 10,
        };
        Document {
            id: DocumentId::new(id.to_string()).expect("document id"),
            title: "Household register extract".to_string(),
            record_type: "household-register".to_string(),
            creating_department: department("civil-affairs"),
            created: Timestamp(1_000),
            classification: Classification::Internal,
            retention: Retention::Years(30),
            format: Format {
                mime: "application/pdf".to_string(),
                pronom: None,
            },
            plaintext: fixity,
            ciphertext: fixity,
            subject_tag: None,
            custodian: department(custodian),
            custodian_key: WrappedKey(vec![4; 80]),
            status,
            version: 1,
            grants: Vec::new(),
            event_count: 0,
            latest_event: EventHash::from(Hash32::ZERO),
            registered_at: Height(1),
        }
    }

    fn offered_to(to: &str) -> DocumentStatus {
        DocumentStatus::InTransfer(Offer {
            to: department(to),
            wrapped_key: WrappedKey(vec![7; 80]),
            expires_at: Timestamp(90_000),
        })
    }

    fn event(sequence: u64, by: &str, kind: EventKind) -> DocumentEvent {
        DocumentEvent {
            format_version: 1,
            document: DocumentId::new("civil-affairs-1".to_string()).expect("document id"),
            sequence,
            previous: EventHash::from(Hash32::ZERO),
            height: Height(sequence + 1),
            time: Timestamp(2_000 + sequence),
            tx: TxId::from(Hash32([9; 32])),
            member: PublicKey([8; 32]),
            department: department(by),
            kind,
        }
    }

    fn registered() -> DocumentEvent {
        let fixity = Fixity {
            sha256: Hash32([1; 32]),
            size_bytes: 10,
        };
        event(
            0,
            "civil-affairs",
            EventKind::Registered {
                classification: Classification::Internal,
                plaintext: fixity,
                ciphertext: fixity,
            },
        )
    }

    fn offer(sequence: u64, from: &str, to: &str) -> DocumentEvent {
        event(
            sequence,
            from,
            EventKind::Offered {
                to: department(to),
                expires_at: Timestamp(90_000),
            },
        )
    }

    fn accept(sequence: u64, from: &str, by: &str) -> DocumentEvent {
        event(
            sequence,
            by,
            EventKind::Accepted {
                from: department(from),
            },
        )
    }

    fn pair(from: &str, to: &str) -> (DepartmentId, DepartmentId) {
        (department(from), department(to))
    }

    #[test]
    fn an_accepted_transfer_counts_as_a_flow_from_the_sender_to_the_receiver() {
        let moved = document("civil-affairs-1", "health", DocumentStatus::Active);
        let history = [
            registered(),
            offer(1, "civil-affairs", "health"),
            accept(2, "civil-affairs", "health"),
        ];
        let found = flows([(&moved, &history)]);
        assert_eq!(
            found,
            Flows::from([(
                pair("civil-affairs", "health"),
                Flow {
                    held: 1,
                    offered: 0
                }
            )])
        );
    }

    #[test]
    fn a_pending_offer_counts_as_offered_not_held() {
        let pending = document("civil-affairs-1", "civil-affairs", offered_to("health"));
        let history = [registered(), offer(1, "civil-affairs", "health")];
        let found = flows([(&pending, &history)]);
        assert_eq!(
            found,
            Flows::from([(
                pair("civil-affairs", "health"),
                Flow {
                    held: 0,
                    offered: 1
                }
            )])
        );
    }

    #[test]
    fn a_document_never_transferred_makes_no_flow() {
        let kept = document("civil-affairs-1", "civil-affairs", DocumentStatus::Active);
        let disposed = document("civil-affairs-2", "civil-affairs", DocumentStatus::Disposed);
        let history = [registered()];
        assert!(flows([(&kept, &history), (&disposed, &history)]).is_empty());
    }

    #[test]
    fn a_rejected_or_cancelled_offer_makes_no_flow() {
        let kept = document("civil-affairs-1", "civil-affairs", DocumentStatus::Active);
        let history = [
            registered(),
            offer(1, "civil-affairs", "health"),
            event(
                2,
                "health",
                EventKind::Rejected {
                    reason: "not ours to keep".to_string(),
                },
            ),
            offer(3, "civil-affairs", "health"),
            event(4, "civil-affairs", EventKind::Cancelled),
        ];
        assert!(flows([(&kept, &history)]).is_empty());
    }

    #[test]
    fn every_leg_of_a_journey_counts_in_its_own_direction() {
        // civil-affairs -> health -> civil-affairs, then offered to health
        // again.
        let travelled = document("civil-affairs-1", "civil-affairs", offered_to("health"));
        let history = [
            registered(),
            offer(1, "civil-affairs", "health"),
            accept(2, "civil-affairs", "health"),
            offer(3, "health", "civil-affairs"),
            accept(4, "health", "civil-affairs"),
            offer(5, "civil-affairs", "health"),
        ];
        let found = flows([(&travelled, &history)]);
        assert_eq!(
            found,
            Flows::from([
                (
                    pair("civil-affairs", "health"),
                    Flow {
                        held: 1,
                        offered: 1
                    }
                ),
                (
                    pair("health", "civil-affairs"),
                    Flow {
                        held: 1,
                        offered: 0
                    }
                ),
            ])
        );
    }

    #[test]
    fn flows_of_several_documents_add_up_per_pair() {
        let first = document("civil-affairs-1", "health", DocumentStatus::Active);
        let second = document("civil-affairs-2", "health", DocumentStatus::Active);
        let third = document("civil-affairs-3", "civil-affairs", offered_to("health"));
        let moved = [registered(), accept(1, "civil-affairs", "health")];
        let found = flows([
            (&first, &moved[..]),
            (&second, &moved[..]),
            (&third, &[][..]),
        ]);
        assert_eq!(
            found.get(&pair("civil-affairs", "health")),
            Some(&Flow {
                held: 2,
                offered: 1
            })
        );
        assert_eq!(found.len(), 1);
    }

    mod in_store {
        use super::super::*;
        use crate::state;
        use crate::testkit::Workload;

        /// A store holding a workload's chain after `blocks` blocks: its
        /// documents are registered, offered, accepted and read, a block
        /// apart, so the last blocks leave offers pending.
        fn workload_store(blocks: usize) -> (tempfile::TempDir, Store, Workload) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut workload = Workload::new(3, 17);
            for _ in 0..blocks {
                workload.step(20).expect("workload block");
            }
            let store =
                Store::open_or_init(dir.path(), &workload.chain.federation.genesis).expect("store");
            for (block, certificate) in &workload.chain.blocks {
                let changes = state::apply_block(&store, block).expect("apply");
                store.commit(block, certificate, &changes).expect("commit");
            }
            (dir, store, workload)
        }

        fn expected(workload: &Workload) -> Flows {
            let state = &workload.chain.state;
            flows(state.documents.values().map(|document| {
                let events = state
                    .events
                    .get(&document.id)
                    .map_or(&[][..], Vec::as_slice);
                (document, events)
            }))
        }

        #[test]
        fn flows_read_from_the_store_are_the_flows_of_every_document_history() {
            let (_dir, store, workload) = workload_store(6);
            let read = flows_in_store(&store, FLOWS_EVENTS_READ_MAX).expect("read the flows");
            let want = expected(&workload);
            assert!(read.complete);
            assert_eq!(
                read.documents_counted,
                workload.chain.state.documents.len() as u64
            );
            assert!(
                want.values().any(|flow| flow.held > 0),
                "the workload accepts transfers: {want:?}"
            );
            assert!(
                want.values().any(|flow| flow.offered > 0),
                "the workload leaves offers pending: {want:?}"
            );
            assert_eq!(read.flows, want);
        }

        #[test]
        fn reading_stops_before_the_event_limit_and_says_the_count_is_partial() {
            let (_dir, store, workload) = workload_store(6);
            let documents = workload.chain.state.documents.len() as u64;
            let read = flows_in_store(&store, 5).expect("read the flows");
            assert!(!read.complete);
            assert!(
                read.documents_counted < documents,
                "{} of {documents}",
                read.documents_counted
            );
        }
    }
}
