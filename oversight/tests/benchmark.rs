//! The labelled workload: large enough, reproducible, and scored.

use custody_oversight::testkit::{generate, score};
use custody_oversight::{Detector, Thresholds};

#[test]
fn the_workload_is_reproducible_and_holds_every_kind_of_anomaly() {
    let a = generate(7, 150);
    let b = generate(7, 150);
    assert!(a.events.len() >= 100_000, "{} events", a.events.len());
    assert_eq!(a.events.len(), b.events.len());
    assert!(a
        .events
        .iter()
        .zip(&b.events)
        .all(|(x, y)| x.event == y.event));
    let mut detector = Detector::new(Thresholds::default());
    detector
        .feed_all(a.events.iter().map(|e| e.event.clone()))
        .unwrap();
    let alerts = detector.alerts();
    let s = score(&a, &alerts);
    for (rule, r) in &s.rules {
        eprintln!(
            "{rule}: alerts {} correct {} other {} injected {} found {} decoys {} flagged {}",
            r.alerts,
            r.correct,
            r.on_other_injections,
            r.injected,
            r.found,
            r.decoys,
            r.decoys_flagged
        );
        assert!(r.injected > 0, "{rule}");
    }
    eprintln!(
        "false alerts {} fp rate {}",
        s.false_alerts,
        s.false_positive_rate()
    );
    assert!(s.overall.precision() >= 0.9, "{:?}", s.overall);
    assert!(s.overall.recall() >= 0.95, "{:?}", s.overall);
}

/// Which injections the alerts that are not correct point at, for the
/// notes in `docs/performance.md` (run with `--nocapture`).
#[test]
fn alerts_off_their_own_rule_are_listed() {
    let w = generate(2026, 150);
    let mut detector = Detector::new(Thresholds::default());
    detector
        .feed_all(w.events.iter().map(|e| e.event.clone()))
        .unwrap();
    let label_of: std::collections::BTreeMap<_, _> = w
        .events
        .iter()
        .filter_map(|e| e.label.map(|l| (e.event.tx, l)))
        .collect();
    for alert in detector.alerts() {
        let touched: std::collections::BTreeSet<usize> = alert
            .evidence
            .iter()
            .filter_map(|e| label_of.get(&e.tx).copied())
            .collect();
        let own = touched
            .iter()
            .any(|l| w.labels[*l].rule == alert.rule && !w.labels[*l].benign);
        if !own {
            let labels: Vec<String> = touched
                .iter()
                .map(|l| format!("{} benign={}", w.labels[*l].rule, w.labels[*l].benign))
                .collect();
            eprintln!("{}: {:?} — {}", alert.rule, labels, alert.explanation);
        }
    }
}

#[test]
fn a_history_too_short_for_every_injection_holds_those_that_fit() {
    // 60 days leave five days for injections: fewer free member-days than
    // the 12 injections and decoys of each rule need.
    let w = generate(17, 60);
    let full = custody_oversight::Rule::ALL.len() * 12;
    assert!(!w.labels.is_empty());
    assert!(
        w.labels.len() < full,
        "{} labels of {full}: the short history was expected to drop some",
        w.labels.len()
    );
}
