//! Who sees which live alert (`GET /v1/alerts` answers from the alert
//! book), and the alert counters by rule.

use custody_ledger::caller::Caller;
use custody_ledger::types::{
    Classification, DepartmentId, DocumentId, Height, PublicKey, Role, Timestamp, TxId,
};
use custody_node::alert_desk::{AlertBook, AlertQuery};
use custody_node::metrics::Metrics;
use custody_oversight::{Action, Detector, Event, LiveDetector, Thresholds};

const NIGHT_MS: u64 = 1_767_225_600_000 + 18 * 3_600_000 + 30 * 60_000;

fn department(slug: &str) -> DepartmentId {
    DepartmentId::new(slug).unwrap()
}

/// A clerk of civil affairs reads six of its documents at 02:30 in
/// UTC+8; one block per event.
fn night_reads() -> LiveDetector {
    let clerk = PublicKey([1; 32]);
    let mut events = vec![Action::Enroll {
        member: clerk,
        department: department("civil-affairs"),
    }];
    for i in 0..6 {
        events.push(Action::Register {
            document: DocumentId::new(format!("ca/{i}")).unwrap(),
            record_type: "household-register".into(),
            classification: Classification::Internal,
            department: department("civil-affairs"),
        });
    }
    for i in 0..6 {
        events.push(Action::Read {
            document: DocumentId::new(format!("ca/{i}")).unwrap(),
        });
    }
    let mut live = LiveDetector::from_detector(Detector::new(Thresholds::default()));
    for (i, action) in events.into_iter().enumerate() {
        let height = Height(i as u64 + 1);
        let event = Event {
            height,
            index: 0,
            tx: TxId([i as u8; 32]),
            time: Timestamp(NIGHT_MS + i as u64 * 60_000),
            actor: clerk,
            action,
        };
        live.feed_events(height, [event]).unwrap();
    }
    assert_eq!(live.alerts().len(), 1, "{:?}", live.alerts());
    live
}

fn all() -> AlertQuery {
    AlertQuery {
        since_seq: 0,
        since_height: None,
        limit: 100,
    }
}

#[test]
fn an_alert_is_shown_to_its_departments_members_and_node_and_to_auditors_only() {
    let book = AlertBook::default();
    book.publish(&night_reads());
    let member = |slug: &str| Caller::Member {
        key: PublicKey([9; 32]),
        department: department(slug),
        roles: vec![Role::Clerk],
    };
    let seen = |caller: &Caller| book.page(caller, all()).unwrap().alerts.len();
    assert_eq!(seen(&member("civil-affairs")), 1);
    assert_eq!(
        seen(&Caller::Node {
            key: PublicKey([8; 32]),
            department: department("civil-affairs"),
        }),
        1
    );
    assert_eq!(
        seen(&Caller::Auditor {
            key: PublicKey([7; 32])
        }),
        1
    );
    assert_eq!(seen(&member("health")), 0, "another department's member");
    assert_eq!(
        seen(&Caller::Node {
            key: PublicKey([6; 32]),
            department: department("health"),
        }),
        0,
        "another department's node"
    );
}

#[test]
fn alerts_are_polled_by_sequence_and_by_height() {
    let book = AlertBook::default();
    let live = night_reads();
    book.publish(&live);
    let auditor = Caller::Auditor {
        key: PublicKey([7; 32]),
    };
    let page = book.page(&auditor, all()).unwrap();
    let seq = page.alerts[0].seq;
    assert_eq!(page.last_seq, live.last_seq());
    let after = AlertQuery {
        since_seq: seq,
        ..all()
    };
    assert!(book.page(&auditor, after).unwrap().alerts.is_empty());
    let height = page.alerts[0].updated_height.0;
    let before = AlertQuery {
        since_height: Some(height - 1),
        ..all()
    };
    assert_eq!(book.page(&auditor, before).unwrap().alerts.len(), 1);
    let later = AlertQuery {
        since_height: Some(height),
        ..all()
    };
    assert!(book.page(&auditor, later).unwrap().alerts.is_empty());
}

#[test]
fn alerts_are_counted_by_rule_in_the_metrics() {
    let metrics = Metrics::default();
    for rule in custody_oversight::Rule::ALL {
        metrics.note_alerts(rule.code(), 0);
    }
    for alert in night_reads().alerts() {
        metrics.note_alerts(alert.alert.rule.code(), 1);
    }
    let text = metrics.render();
    assert!(
        text.contains("custody_alerts_total{rule=\"off-hours-reads\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("custody_alerts_total{rule=\"bulk-reads\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("custody_alert_webhook_failures_total 0"),
        "{text}"
    );
}

fn payload() -> custody_node::alert_desk::WebhookPayload {
    custody_node::alert_desk::WebhookPayload {
        chain_id: "custody-test".into(),
        department: department("civil-affairs"),
        change: custody_node::alert_desk::AlertChange::Raised,
        alert: night_reads().alerts()[0].clone(),
    }
}

fn webhook_config() -> custody_node::config::OversightConfig {
    custody_node::config::OversightConfig {
        webhook_attempts_max: 3,
        webhook_backoff_ms: 1,
        ..Default::default()
    }
}

/// Waits (with a deadline) until `check` holds.
async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_webhook_delivery_that_fails_every_attempt_is_counted_and_the_next_is_tried() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = std::sync::Arc::new(Metrics::default());
    let (_trigger, stop) = custody_node::shutdown::shutdown_channel();
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(custody_node::alert_desk::deliver_webhook(
        format!("http://127.0.0.1:{port}/alerts"),
        receiver,
        webhook_config(),
        metrics.clone(),
        stop,
    ));
    sender.send(payload()).await.unwrap();
    sender.send(payload()).await.unwrap();
    let failures = || {
        metrics
            .alert_webhook_failures_total
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    wait_until("two failed deliveries", || failures() == 2).await;
    assert_eq!(
        metrics
            .alert_webhook_deliveries_total
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_webhook_delivery_is_retried_until_the_receiver_accepts_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let requests = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 65536];
                let _ = socket.read(&mut buffer).await;
                // The first attempt is refused, the second accepted.
                let n = requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer: &[u8] = if n == 0 {
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                };
                let _ = socket.write_all(answer).await;
            }
        });
    }
    let metrics = std::sync::Arc::new(Metrics::default());
    let (_trigger, stop) = custody_node::shutdown::shutdown_channel();
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(custody_node::alert_desk::deliver_webhook(
        url,
        receiver,
        webhook_config(),
        metrics.clone(),
        stop,
    ));
    sender.send(payload()).await.unwrap();
    let deliveries = || {
        metrics
            .alert_webhook_deliveries_total
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    wait_until("the delivery", || deliveries() == 1).await;
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(
        metrics
            .alert_webhook_failures_total
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}
