//! One test per rule, named after it, on small scripted histories; and the
//! property that the detector's alerts do not depend on how its input was
//! chunked.

use custody_ledger::types::{
    Classification, DepartmentId, DocumentId, Height, PublicKey, Timestamp, TxId,
};
use custody_oversight::{Action, Alert, Detector, Event, Rule, Thresholds};
use proptest::prelude::*;

/// 2026-01-05 00:00 in UTC+8 (a Monday), in ms.
const MONDAY_LOCAL_MIDNIGHT_MS: u64 = 1_767_225_600_000 + 4 * 86_400_000 - 8 * 3_600_000;
const DAY_MS: u64 = 86_400_000;

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}
fn dept(s: &str) -> DepartmentId {
    DepartmentId::new(s).unwrap()
}
fn doc(s: &str) -> DocumentId {
    DocumentId::new(s).unwrap()
}
/// Local time (UTC+8) on day `day` after the Monday.
fn at(day: u64, hour: u64, minute: u64) -> u64 {
    MONDAY_LOCAL_MIDNIGHT_MS + day * DAY_MS + hour * 3_600_000 + minute * 60_000
}

const CLERK: u8 = 1;
const OTHER: u8 = 2;
const HEALTH: u8 = 3;
const FINANCE: u8 = 4;
const SOCIAL: u8 = 5;

/// A scripted history: actions at times, made into chain-ordered events.
struct Script {
    actions: Vec<(u64, PublicKey, Action)>,
}

impl Script {
    /// Five members in four departments, and 400 documents of civil
    /// affairs: 300 birth certificates (internal), 100 court files (secret).
    fn new() -> Script {
        let mut s = Script {
            actions: Vec::new(),
        };
        let start = MONDAY_LOCAL_MIDNIGHT_MS - 30 * DAY_MS;
        for (member, d) in [
            (CLERK, "civil-affairs"),
            (OTHER, "civil-affairs"),
            (HEALTH, "health"),
            (FINANCE, "finance"),
            (SOCIAL, "social-security"),
        ] {
            s.push(
                start,
                OTHER,
                Action::Enroll {
                    member: key(member),
                    department: dept(d),
                },
            );
        }
        for i in 0..400 {
            let (record_type, classification) = if i < 300 {
                ("birth-certificate", Classification::Internal)
            } else {
                ("court-file", Classification::Secret)
            };
            s.push(
                start + 1,
                OTHER,
                Action::Register {
                    document: doc(&format!("ca/{i}")),
                    record_type: record_type.to_string(),
                    classification,
                    department: dept("civil-affairs"),
                },
            );
        }
        s
    }
    fn push(&mut self, time: u64, actor: u8, action: Action) {
        self.actions.push((time, key(actor), action));
    }
    fn read(&mut self, time: u64, actor: u8, document: usize) {
        self.push(
            time,
            actor,
            Action::Read {
                document: doc(&format!("ca/{document}")),
            },
        );
    }
    /// `per_day` reads of birth certificates on each working day of
    /// `weeks` weeks, every five minutes from 09:00.
    fn habit(&mut self, actor: u8, weeks: u64, per_day: u64) {
        for day in 0..weeks * 7 {
            if day % 7 >= 5 {
                continue;
            }
            for r in 0..per_day {
                self.read(
                    at(day, 9, 0) + r * 300_000,
                    actor,
                    ((day * 7 + r) % 300) as usize,
                );
            }
        }
    }
    fn events(&self) -> Vec<Event> {
        let mut actions = self.actions.clone();
        actions.sort_by_key(|(t, _, _)| *t);
        actions
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
            .collect()
    }
    fn alerts(&self) -> Vec<Alert> {
        detect(&self.events(), Thresholds::default())
    }
}

fn detect(events: &[Event], thresholds: Thresholds) -> Vec<Alert> {
    let mut detector = Detector::new(thresholds);
    detector.feed_all(events.iter().cloned()).unwrap();
    detector.alerts()
}

fn of(alerts: &[Alert], rule: Rule) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.rule == rule).collect()
}

#[test]
fn bulk_reads_beyond_the_members_baseline_raise_an_alert() {
    let mut s = Script::new();
    s.habit(CLERK, 4, 20);
    for r in 0..80 {
        s.read(at(28, 9, 0) + r * 60_000, CLERK, r as usize);
    }
    let alerts = s.alerts();
    let bulk = of(&alerts, Rule::BulkReads);
    assert_eq!(bulk.len(), 1, "{alerts:#?}");
    let a = bulk[0];
    assert_eq!(a.member, Some(key(CLERK)));
    assert_eq!(a.department, Some(dept("civil-affairs")));
    assert_eq!(a.evidence.len(), 80);
    assert_eq!(a.documents.len(), 80);
    assert_eq!(a.score, 4.0);
    assert!(
        a.explanation.contains("read 80 documents on 2026-02-02, 4.0 times their daily median of 20.0 over the last 30 days"),
        "{}",
        a.explanation
    );
}

#[test]
fn reads_within_the_members_baseline_raise_nothing() {
    let mut s = Script::new();
    s.habit(CLERK, 4, 20);
    for r in 0..45 {
        s.read(at(28, 9, 0) + r * 60_000, CLERK, r as usize);
    }
    assert!(of(&s.alerts(), Rule::BulkReads).is_empty());
}

#[test]
fn bulk_reads_of_a_new_member_are_judged_against_the_departments_baseline() {
    let mut s = Script::new();
    s.habit(OTHER, 4, 10);
    for r in 0..60 {
        s.read(at(28, 9, 0) + r * 60_000, CLERK, r as usize);
    }
    let alerts = s.alerts();
    let bulk = of(&alerts, Rule::BulkReads);
    assert_eq!(bulk.len(), 1, "{alerts:#?}");
    assert!(bulk[0]
        .explanation
        .contains("department's median member-day of 10.0"));
}

#[test]
fn reads_outside_working_hours_raise_an_alert() {
    let mut s = Script::new();
    for r in 0..6 {
        s.read(at(3, 2, 10 + r), CLERK, r as usize);
    }
    let alerts = s.alerts();
    let night = of(&alerts, Rule::OffHoursReads);
    assert_eq!(night.len(), 1, "{alerts:#?}");
    assert_eq!(night[0].member, Some(key(CLERK)));
    assert_eq!(night[0].department, Some(dept("civil-affairs")));
    assert_eq!(night[0].documents.len(), 6);
    assert!(night[0]
        .explanation
        .contains("from 2026-01-08 02:10 UTC+8 to 2026-01-08 02:15 UTC+8"));
}

#[test]
fn reads_inside_working_hours_raise_nothing() {
    let mut s = Script::new();
    for r in 0..40 {
        s.read(at(3, 8, r), CLERK, r as usize);
        s.read(at(3, 17, 10 + r), CLERK, r as usize);
    }
    // A few minutes of overtime stay below the threshold.
    for r in 0..4 {
        s.read(at(3, 18, r), CLERK, r as usize);
    }
    assert!(of(&s.alerts(), Rule::OffHoursReads).is_empty());
}

#[test]
fn working_hours_follow_each_departments_configured_zone() {
    let mut s = Script::new();
    // 02:00 in UTC+8 is 19:00 the day before in UTC+1.
    for r in 0..6 {
        s.read(at(3, 2, r), CLERK, r as usize);
    }
    let mut thresholds = Thresholds::default();
    thresholds.departments.insert(
        "civil-affairs".into(),
        custody_oversight::WorkingHours {
            start_hour: 8,
            end_hour: 20,
            utc_offset_minutes: 60,
        },
    );
    assert!(of(&detect(&s.events(), thresholds), Rule::OffHoursReads).is_empty());
}

#[test]
fn reads_of_record_types_the_member_never_handled_raise_an_alert() {
    let mut s = Script::new();
    s.habit(CLERK, 3, 10);
    for r in 0..4 {
        s.read(at(22, 10, r), CLERK, 300 + r as usize);
    }
    let alerts = s.alerts();
    let unfamiliar = of(&alerts, Rule::UnfamiliarRecords);
    assert_eq!(unfamiliar.len(), 1, "{alerts:#?}");
    assert_eq!(unfamiliar[0].documents.len(), 4);
    assert!(unfamiliar[0]
        .explanation
        .contains("record type `court-file`"));
    assert!(unfamiliar[0]
        .explanation
        .contains("classification `secret`"));
}

#[test]
fn unfamiliar_reads_during_the_warm_up_raise_nothing() {
    let mut s = Script::new();
    s.habit(CLERK, 1, 10);
    for r in 0..4 {
        s.read(at(8, 10, r), CLERK, 300 + r as usize);
    }
    assert!(of(&s.alerts(), Rule::UnfamiliarRecords).is_empty());
}

fn offer(s: &mut Script, time: u64, actor: u8, document: usize, to: &str) {
    s.push(
        time,
        actor,
        Action::Offer {
            document: doc(&format!("ca/{document}")),
            to: dept(to),
        },
    );
}

#[test]
fn reads_just_before_a_transfer_away_raise_an_alert() {
    let mut s = Script::new();
    s.habit(CLERK, 4, 10);
    for r in 0..30 {
        s.read(at(28, 9, 0) + r * 60_000, CLERK, 100 + r as usize);
    }
    offer(&mut s, at(28, 11, 0), CLERK, 100, "health");
    let alerts = s.alerts();
    let before = of(&alerts, Rule::ReadsBeforeTransfer);
    assert_eq!(before.len(), 1, "{alerts:#?}");
    assert_eq!(before[0].documents, vec![doc("ca/100")]);
    assert_eq!(before[0].member, Some(key(CLERK)));
    assert_eq!(before[0].evidence_total, 31);
    assert!(before[0]
        .explanation
        .contains("3.0 times their daily median of 10.0"));
}

#[test]
fn a_transfer_after_ordinary_reading_raises_nothing() {
    let mut s = Script::new();
    s.habit(CLERK, 5, 10);
    offer(
        &mut s,
        at(30, 11, 0),
        CLERK,
        210, // read first on day 30
        "health",
    );
    assert!(of(&s.alerts(), Rule::ReadsBeforeTransfer).is_empty());
}

#[test]
fn reads_just_before_the_members_revocation_raise_an_alert() {
    let mut s = Script::new();
    s.habit(CLERK, 4, 10);
    for r in 0..25 {
        s.read(at(28, 9, 0) + r * 60_000, CLERK, 100 + r as usize);
    }
    s.push(at(28, 16, 0), OTHER, Action::Revoke { member: key(CLERK) });
    let alerts = s.alerts();
    let before = of(&alerts, Rule::ReadsBeforeRevocation);
    assert_eq!(before.len(), 1, "{alerts:#?}");
    assert_eq!(before[0].member, Some(key(CLERK)));
    assert_eq!(before[0].evidence.last().unwrap().kind, "revoke-member");
}

#[test]
fn a_revocation_after_ordinary_reading_raises_nothing() {
    let mut s = Script::new();
    s.habit(CLERK, 4, 10);
    s.push(at(25, 16, 0), OTHER, Action::Revoke { member: key(CLERK) });
    assert!(of(&s.alerts(), Rule::ReadsBeforeRevocation).is_empty());
}

fn grant(s: &mut Script, time: u64, actor: u8, document: usize, to: &str) {
    s.push(
        time,
        actor,
        Action::Grant {
            document: doc(&format!("ca/{document}")),
            to: dept(to),
        },
    );
}

#[test]
fn bursts_of_grants_raise_an_alert() {
    let mut s = Script::new();
    for r in 0..12 {
        grant(&mut s, at(2, 10, 2 * r), CLERK, r as usize, "finance");
        s.read(at(3, 10, r), FINANCE, r as usize);
    }
    let alerts = s.alerts();
    let burst = of(&alerts, Rule::GrantBurst);
    assert_eq!(burst.len(), 1, "{alerts:#?}");
    assert_eq!(burst[0].evidence.len(), 12);
    assert!(of(&alerts, Rule::UnusedGrants).is_empty());
}

#[test]
fn grants_spread_over_the_day_raise_nothing() {
    let mut s = Script::new();
    for r in 0..12 {
        grant(&mut s, at(2, 8, 40 * r), CLERK, r as usize, "finance");
        s.read(at(3, 10, r), FINANCE, r as usize);
    }
    assert!(of(&s.alerts(), Rule::GrantBurst).is_empty());
}

#[test]
fn grants_to_a_department_that_then_reads_nothing_raise_an_alert() {
    let mut s = Script::new();
    for r in 0..3 {
        grant(&mut s, at(2, 10, r), CLERK, r as usize, "finance");
    }
    // The chain goes on past the window.
    s.read(at(20, 10, 0), OTHER, 200);
    let alerts = s.alerts();
    let unused = of(&alerts, Rule::UnusedGrants);
    assert_eq!(unused.len(), 1, "{alerts:#?}");
    assert_eq!(unused[0].documents.len(), 3);
    assert!(unused[0]
        .explanation
        .contains("finance read none of them within 14 days"));
}

#[test]
fn grants_still_inside_their_window_or_used_raise_nothing() {
    let mut s = Script::new();
    for r in 0..3 {
        grant(&mut s, at(2, 10, r), CLERK, r as usize, "finance");
    }
    s.read(at(10, 10, 0), OTHER, 200);
    assert!(of(&s.alerts(), Rule::UnusedGrants).is_empty());
    for r in 0..3 {
        s.read(at(5, 10, r), FINANCE, r as usize);
    }
    s.read(at(20, 10, 0), OTHER, 200);
    assert!(of(&s.alerts(), Rule::UnusedGrants).is_empty());
}

#[test]
fn documents_read_by_many_departments_in_a_short_window_raise_an_alert() {
    let mut s = Script::new();
    s.read(at(4, 9, 0), CLERK, 7);
    s.read(at(4, 11, 0), HEALTH, 7);
    s.read(at(4, 15, 0), FINANCE, 7);
    let alerts = s.alerts();
    let many = of(&alerts, Rule::ManyDepartments);
    assert_eq!(many.len(), 1, "{alerts:#?}");
    assert_eq!(many[0].documents, vec![doc("ca/7")]);
    assert_eq!(many[0].department, Some(dept("civil-affairs")));
    assert_eq!(many[0].member, Some(key(FINANCE)));
}

#[test]
fn documents_read_by_many_departments_over_days_raise_nothing() {
    let mut s = Script::new();
    s.read(at(4, 9, 0), CLERK, 7);
    s.read(at(5, 11, 0), HEALTH, 7);
    s.read(at(6, 15, 0), FINANCE, 7);
    assert!(of(&s.alerts(), Rule::ManyDepartments).is_empty());
}

fn denied(s: &mut Script, time: u64, actor: u8, document: usize) {
    s.push(
        time,
        actor,
        Action::Denied {
            document: doc(&format!("ca/{document}")),
            reason: "department is neither custodian nor grantee".into(),
        },
    );
}

#[test]
fn repeated_denied_attempts_raise_an_alert() {
    let mut s = Script::new();
    for r in 0..6 {
        denied(&mut s, at(4, 10, 3 * r), HEALTH, r as usize);
    }
    let alerts = s.alerts();
    let refused = of(&alerts, Rule::DeniedAttempts);
    assert_eq!(refused.len(), 1, "{alerts:#?}");
    assert_eq!(refused[0].member, Some(key(HEALTH)));
    assert_eq!(refused[0].department, Some(dept("health")));
    assert_eq!(refused[0].documents.len(), 6);
}

#[test]
fn occasional_denied_attempts_raise_nothing() {
    let mut s = Script::new();
    for r in 0..6 {
        denied(&mut s, at(4, 8 + r, 0), HEALTH, r as usize);
    }
    assert!(of(&s.alerts(), Rule::DeniedAttempts).is_empty());
}

#[test]
fn thresholds_load_from_toml_with_defaults_and_refuse_unknown_fields() {
    let t: Thresholds = toml::from_str(
        "[bulk_reads]\nreads_min = 25\n[departments.health]\nstart_hour = 7\nend_hour = 19\nutc_offset_minutes = 480\n",
    )
    .unwrap();
    assert_eq!(t.bulk_reads.reads_min, 25);
    assert_eq!(t.bulk_reads.window_days, 30);
    assert_eq!(t.hours("health").start_hour, 7);
    assert_eq!(t.hours("finance").start_hour, 8);
    t.check().unwrap();
    assert!(toml::from_str::<Thresholds>("[bulk_reads]\nreads_minimum = 25\n").is_err());
    let mut bad = Thresholds::default();
    bad.working_hours.end_hour = 7;
    assert!(bad.check().is_err());
}

#[test]
fn events_out_of_chain_order_are_refused() {
    let events = Script::new().events();
    let mut detector = Detector::new(Thresholds::default());
    detector.feed(events[5].clone()).unwrap();
    assert!(detector.feed(events[4].clone()).is_err());
}

/// A random history over a few members, documents and days.
fn history() -> impl Strategy<Value = Vec<Event>> {
    let action = (0u8..6, 1u8..6, 0usize..12, 0u8..4);
    proptest::collection::vec((0u64..20 * 24 * 60, action), 1..400).prop_map(|mut items| {
        items.sort_by_key(|(minute, _)| *minute);
        let departments = ["civil-affairs", "health", "finance", "social-security"];
        let mut s = Script::new();
        for (minute, (kind, actor, document, to)) in items {
            let time = MONDAY_LOCAL_MIDNIGHT_MS + minute * 60_000;
            let to = departments[to as usize];
            match kind {
                0..=2 => s.read(time, actor, 295 + document),
                3 => grant(&mut s, time, actor, 295 + document, to),
                4 => offer(&mut s, time, actor, 295 + document, to),
                _ => denied(&mut s, time, actor, document),
            }
        }
        let mut events = s.events();
        // Several transactions per block.
        for (i, e) in events.iter_mut().enumerate() {
            e.height = Height(i as u64 / 7 + 1);
            e.index = (i % 7) as u32;
        }
        events
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn alerts_do_not_depend_on_how_the_input_is_chunked(
        events in history(),
        cuts in proptest::collection::vec(1usize..60, 1..20),
    ) {
        let mut thresholds = Thresholds::default();
        thresholds.bulk_reads.reads_min = 3;
        thresholds.bulk_reads.history_days_min = 2;
        thresholds.reads_before_transfer.reads_min = 2;
        thresholds.grant_burst.count_min = 3;
        thresholds.unused_grants.window_days = 2;
        thresholds.unfamiliar_records.warmup_actions = 3;
        thresholds.unfamiliar_records.warmup_days = 1;
        let all_at_once = detect(&events, thresholds.clone());
        let mut detector = Detector::new(thresholds);
        let mut rest = events.as_slice();
        let mut cuts = cuts.into_iter().cycle();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(1).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            detector.feed_all(chunk.iter().cloned()).unwrap();
            // Asking in between changes nothing.
            let _ = detector.alerts();
            rest = tail;
        }
        prop_assert_eq!(detector.alerts(), all_at_once);
    }
}

#[test]
fn a_denied_read_attested_on_chain_is_the_requesting_members_denied_attempt() {
    use custody_ledger::reads::{ReadOutcome, ReadRequest, SignedReadRequest};
    use custody_ledger::tx::{SignedTransaction, TxBody};
    use custody_ledger::types::{Hash32, Nonce};
    let member = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let node = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let request = SignedReadRequest::sign(
        ReadRequest {
            format_version: custody_ledger::reads::READ_REQUEST_VERSION,
            chain_id: "oversight-test".to_string(),
            member: PublicKey(member.verifying_key().to_bytes()),
            document: doc("D-1"),
            ciphertext_sha256: Hash32([0; 32]),
            access_tx: None,
            time_ms: 0,
            nonce: 1,
        },
        &member,
    );
    let tx = SignedTransaction::sign(
        TxBody::AttestRead {
            department: dept("civil-affairs"),
            outcome: ReadOutcome::Denied {
                request,
                code: "read_access_not_committed".to_string(),
            },
        },
        &node,
        Nonce(1),
        "oversight-test",
    );
    assert_eq!(
        custody_oversight::event::actor_of(&tx),
        PublicKey(member.verifying_key().to_bytes()),
        "the member who asked, not the node that attested"
    );
    match custody_oversight::event::action_of(&tx.payload.body) {
        Action::Denied { document, reason } => {
            assert_eq!(document, doc("D-1"));
            assert_eq!(reason, "read_access_not_committed");
        }
        other => panic!("a denied read must be a denied attempt, got {other:?}"),
    }
}

fn small_thresholds() -> Thresholds {
    let mut thresholds = Thresholds::default();
    thresholds.bulk_reads.reads_min = 3;
    thresholds.bulk_reads.history_days_min = 2;
    thresholds.reads_before_transfer.reads_min = 2;
    thresholds.grant_burst.count_min = 3;
    thresholds.unused_grants.window_days = 2;
    thresholds.unfamiliar_records.warmup_actions = 3;
    thresholds.unfamiliar_records.warmup_days = 1;
    thresholds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// The live path (one block at a time, as a node commits them) holds
    /// after every block exactly the alerts the batch run gives for the
    /// same blocks, and reports each alert as raised once.
    #[test]
    fn live_alerts_after_every_block_are_the_batch_run_alerts(events in history()) {
        let thresholds = small_thresholds();
        let mut live = custody_oversight::LiveDetector::from_detector(Detector::new(thresholds.clone()));
        let mut raised = std::collections::BTreeSet::new();
        let mut last_seq = 0;
        let mut fed = 0;
        while fed < events.len() {
            let height = events[fed].height;
            let block_end = fed + events[fed..].iter().take_while(|e| e.height == height).count();
            let step = live.feed_events(height, events[fed..block_end].iter().cloned()).unwrap();
            fed = block_end;
            let batch = detect(&events[..fed], thresholds.clone());
            let incremental: Vec<Alert> = live.alerts().iter().map(|a| a.alert.clone()).collect();
            prop_assert_eq!(incremental, batch);
            for a in step.raised.iter().chain(step.updated.iter()) {
                prop_assert!(a.seq > last_seq, "sequence numbers only grow");
                prop_assert_eq!(a.updated_height, height);
            }
            for a in &step.raised {
                prop_assert!(raised.insert(a.seq));
                prop_assert_eq!(a.raised_height, height);
            }
            last_seq = live.last_seq();
        }
    }
}

#[test]
fn a_live_alert_is_raised_once_and_updated_as_its_day_grows() {
    let mut s = Script::new();
    for i in 0..7 {
        s.read(at(1, 2, i), CLERK, i as usize);
    }
    let mut live =
        custody_oversight::LiveDetector::from_detector(Detector::new(Thresholds::default()));
    let mut raised = Vec::new();
    let mut updated = Vec::new();
    let mut read_heights = Vec::new();
    for event in s.events() {
        let height = event.height;
        if matches!(event.action, Action::Read { .. }) {
            read_heights.push(height);
        }
        let step = live.feed_events(height, [event]).unwrap();
        let night = |a: &custody_oversight::LiveAlert| a.alert.rule == Rule::OffHoursReads;
        raised.extend(step.raised.into_iter().filter(night));
        updated.extend(step.updated.into_iter().filter(night));
    }
    // Raised by the fifth night read (`reads_min`), then one revision per
    // further read, keeping its first height and taking a new sequence
    // number each time.
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].raised_height, read_heights[4]);
    assert_eq!(raised[0].revision, 1);
    assert_eq!(updated.len(), 2, "{updated:?}");
    for (n, revision) in updated.iter().enumerate() {
        assert_eq!(revision.raised_height, read_heights[4]);
        assert_eq!(revision.updated_height, read_heights[5 + n]);
        assert_eq!(revision.revision, 2 + n as u32);
        assert!(revision.seq > raised[0].seq);
    }
    let current: Vec<_> = live
        .alerts()
        .into_iter()
        .filter(|a| a.alert.rule == Rule::OffHoursReads)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].alert.evidence.len(), 7);
    assert_eq!(current[0].departments, vec![dept("civil-affairs")]);
}
