//! The live path against the batch run: after every block the live
//! detector holds exactly the alerts [`Detector::alerts`] gives for the
//! same events, with the departments they concern; transfers revise the
//! alerts on their documents; a replay gives every alert the same
//! sequence number.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use custody_ledger::types::{
    Classification, DepartmentId, DocumentId, Height, PublicKey, Timestamp, TxId,
};
use custody_oversight::testkit::{self, Workload, FIRST_DAY_MS};
use custody_oversight::{Action, Detector, Event, LiveAlert, LiveDetector, Rule, Thresholds};
use proptest::prelude::*;

const DAY_MS: u64 = 86_400_000;

/// One generated workload shared by every case (generating it is the
/// slow part).
fn workload() -> &'static Workload {
    static WORKLOAD: OnceLock<Workload> = OnceLock::new();
    WORKLOAD.get_or_init(|| testkit::generate(7, 150))
}

/// Thresholds with short windows, so that a few days of history already
/// have alerts that are final and alerts that are still open.
fn short_thresholds() -> Thresholds {
    let mut t = Thresholds::default();
    t.bulk_reads.window_days = 4;
    t.bulk_reads.history_days_min = 2;
    t.bulk_reads.reads_min = 10;
    t.unused_grants.window_days = 2;
    t.unused_grants.grants_min = 2;
    t.unfamiliar_records.warmup_days = 2;
    t.unfamiliar_records.warmup_actions = 10;
    t.unfamiliar_records.reads_min = 2;
    t.reads_before_transfer.reads_min = 5;
    t.reads_before_revocation.reads_min = 5;
    t.many_departments.departments_min = 2;
    t.grant_burst.count_min = 3;
    t.denied_attempts.count_min = 2;
    t
}

/// The workload's set-up (enrolments and registrations), then `days` days
/// from `first_day` of the actors in `members` (a bit for each of the
/// first 28 actors seen in those days), cut
/// into blocks of the given sizes (0: an empty block), renumbered.
fn chain(first_day: u64, days: u64, members: u64, sizes: &[usize]) -> Vec<Vec<Event>> {
    let from = FIRST_DAY_MS + first_day * DAY_MS;
    let to = from + days * DAY_MS;
    let mut actors: Vec<PublicKey> = Vec::new();
    let events: Vec<Event> = workload()
        .events
        .iter()
        .map(|l| &l.event)
        .filter(|e| {
            if e.time.0 < FIRST_DAY_MS {
                return true;
            }
            if e.time.0 < from || e.time.0 >= to {
                return false;
            }
            let n = match actors.iter().position(|a| *a == e.actor) {
                Some(n) => n,
                None => {
                    actors.push(e.actor);
                    actors.len() - 1
                }
            };
            n < 28 && members & (1 << n) != 0
        })
        .cloned()
        .collect();
    let setup = events
        .iter()
        .take_while(|e| e.time.0 < FIRST_DAY_MS)
        .count();
    let mut blocks = vec![events[..setup].to_vec()];
    let mut rest = &events[setup..];
    let sizes: Vec<usize> = if sizes.iter().all(|s| *s == 0) {
        vec![1]
    } else {
        sizes.to_vec()
    };
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).min(rest.len());
        blocks.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    for (h, block) in blocks.iter_mut().enumerate() {
        for (i, e) in block.iter_mut().enumerate() {
            e.height = Height(h as u64 + 1);
            e.index = i as u32;
        }
    }
    blocks
}

/// What the batch run gives, with the departments each alert concerns.
fn batch(
    events: &[Event],
    thresholds: &Thresholds,
) -> Vec<(custody_oversight::Alert, Vec<DepartmentId>)> {
    let mut detector = Detector::new(thresholds.clone());
    detector.feed_all(events.iter().cloned()).unwrap();
    detector
        .alerts()
        .into_iter()
        .map(|a| {
            let d = detector.departments_concerned(&a);
            (a, d)
        })
        .collect()
}

fn live_view(live: &LiveDetector) -> Vec<(custody_oversight::Alert, Vec<DepartmentId>)> {
    live.alerts()
        .into_iter()
        .map(|a| (a.alert, a.departments))
        .collect()
}

/// Feeds `blocks` one at a time, checking against the batch run after
/// each; gives every alert revision seen, in order.
fn run_checked(
    blocks: &[Vec<Event>],
    thresholds: &Thresholds,
) -> Result<LiveDetector, TestCaseError> {
    let mut live = LiveDetector::from_detector(Detector::new(thresholds.clone()));
    let mut fed: Vec<Event> = Vec::new();
    let mut seqs = BTreeSet::new();
    for (h, block) in blocks.iter().enumerate() {
        let step = live
            .feed_events(Height(h as u64 + 1), block.iter().cloned())
            .unwrap();
        fed.extend(block.iter().cloned());
        for a in step.raised.iter().chain(&step.updated) {
            prop_assert!(seqs.insert(a.seq), "a sequence number is given once");
        }
        prop_assert_eq!(step.replaced.len(), step.updated.len());
        let expected = batch(&fed, thresholds);
        let got = live_view(&live);
        prop_assert_eq!(got.len(), expected.len(), "after block {}", h + 1);
        for (g, e) in got.iter().zip(&expected) {
            prop_assert_eq!(g, e, "after block {}", h + 1);
        }
    }
    Ok(live)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(14))]
    /// After every block (random sizes, empty blocks among them, with the
    /// workload's transfers, revocations and injected anomalies) the live
    /// alerts are the batch run's: rule, member, department, documents,
    /// evidence, score, explanation and departments concerned.
    #[test]
    fn live_alerts_equal_batch_alerts_after_every_block(
        first_day in 25u64..140,
        days in 3u64..7,
        members in any::<u64>(),
        sizes in prop::collection::vec(prop_oneof![Just(0usize), 1usize..8, 8usize..60], 1..12),
    ) {
        let blocks = chain(first_day, days, members | 1, &sizes);
        run_checked(&blocks, &short_thresholds())?;
    }
}

#[test]
fn live_alerts_equal_batch_alerts_with_the_default_thresholds() {
    let blocks = chain(30, 8, 0x5555_5555_5555_5555, &[40, 0, 3, 90]);
    run_checked(&blocks, &Thresholds::default()).unwrap();
}

#[test]
fn replaying_the_chain_from_scratch_gives_every_alert_the_same_seq() {
    let thresholds = short_thresholds();
    let blocks = chain(40, 6, u64::MAX, &[25, 0, 7]);
    let run = |blocks: &[Vec<Event>]| {
        let mut live = LiveDetector::from_detector(Detector::new(thresholds.clone()));
        for (h, block) in blocks.iter().enumerate() {
            live.feed_events(Height(h as u64 + 1), block.iter().cloned())
                .unwrap();
        }
        live.alerts()
    };
    let before = run(&blocks);
    let after = run(&blocks);
    assert!(before.len() > 3, "{}", before.len());
    assert!(before.iter().any(|a| a.revision > 1));
    let seqs = |alerts: &[LiveAlert]| -> Vec<(u64, u32, Rule)> {
        alerts
            .iter()
            .map(|a| (a.seq, a.revision, a.alert.rule))
            .collect()
    };
    assert_eq!(seqs(&before), seqs(&after));
    assert_eq!(before, after);
}

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

fn document(n: usize) -> DocumentId {
    DocumentId::new(format!("ca/{n}")).unwrap()
}

fn department(s: &str) -> DepartmentId {
    DepartmentId::new(s).unwrap()
}

#[test]
fn a_transfer_revises_the_departments_of_an_alert_on_its_document() {
    // Local midnight (UTC+8) of a Monday.
    let monday = FIRST_DAY_MS;
    let mut actions: Vec<(u64, PublicKey, Action)> = Vec::new();
    for (member, d) in [(1, "civil-affairs"), (2, "civil-affairs"), (3, "health")] {
        actions.push((
            monday - 2 * DAY_MS,
            key(2),
            Action::Enroll {
                member: key(member),
                department: department(d),
            },
        ));
    }
    for n in 0..10 {
        actions.push((
            monday - DAY_MS,
            key(2),
            Action::Register {
                document: document(n),
                record_type: "birth-certificate".to_string(),
                classification: Classification::Internal,
                department: department("civil-affairs"),
            },
        ));
    }
    // Six reads at night: an off-hours alert naming ca/0 … ca/5.
    for n in 0..6 {
        actions.push((
            monday + 22 * 3_600_000 + n as u64 * 60_000,
            key(1),
            Action::Read {
                document: document(n),
            },
        ));
    }
    // Days later, ca/0 goes to health.
    let offer_at = monday + 6 * DAY_MS + 10 * 3_600_000;
    actions.push((
        offer_at,
        key(2),
        Action::Offer {
            document: document(0),
            to: department("health"),
        },
    ));
    actions.push((
        offer_at + 3_600_000,
        key(3),
        Action::Accept {
            document: document(0),
        },
    ));
    let events: Vec<Event> = actions
        .into_iter()
        .enumerate()
        .map(|(i, (time, actor, action))| Event {
            height: Height(i as u64 + 1),
            index: 0,
            tx: TxId(custody_ledger::encoding::sha256(&(i as u64).to_be_bytes()).0),
            time: Timestamp(time),
            actor,
            action,
        })
        .collect();
    let mut live = LiveDetector::from_detector(Detector::new(Thresholds::default()));
    let mut last = None;
    for e in &events {
        let step = live.feed_events(e.height, [e.clone()]).unwrap();
        if matches!(e.action, Action::Offer { .. }) {
            let night: Vec<LiveAlert> = live
                .alerts()
                .into_iter()
                .filter(|a| a.alert.rule == Rule::OffHoursReads)
                .collect();
            assert_eq!(night.len(), 1);
            assert_eq!(night[0].departments, vec![department("civil-affairs")]);
            last = Some(night[0].clone());
        }
        if matches!(e.action, Action::Accept { .. }) {
            let before = last.clone().unwrap();
            assert_eq!(step.updated.len(), 1, "{step:?}");
            let after = &step.updated[0];
            assert_eq!(after.alert, before.alert);
            assert_eq!(
                after.departments,
                vec![department("civil-affairs"), department("health")]
            );
            assert_eq!(after.revision, before.revision + 1);
            assert!(after.seq > before.seq);
            assert_eq!(step.replaced, vec![before.seq]);
            assert_eq!(after.raised_height, before.raised_height);
            assert_eq!(after.updated_height, e.height);
        }
    }
    let batch = batch(&events, &Thresholds::default());
    assert_eq!(live_view(&live), batch);
}
