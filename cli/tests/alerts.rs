//! Live oversight on a real four-node network: a clerk's bulk read outside
//! working hours is raised as an alert on every node within two blocks of
//! the reads, reaches `custody watch` of the owning department and the
//! department's webhook, is hidden from another department's member and
//! shown to an auditor, and is counted by rule in `/metrics`.
//!
//! The detector judges block times, which are the proposers' real clocks,
//! so the test cannot make it night. It makes "now" night instead: every
//! node reads a thresholds file (`oversight.thresholds`) that puts the
//! department in a time zone where the current UTC time is 02:00, with the
//! default working hours 08:00–18:00.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{get_json_as, wait_for, wait_until_committing, Testnet, BINARY};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{
    Classification, DepartmentId, DocumentId, EventHash, Fixity, Format, Hash32, Nonce, PublicKey,
    Retention, Timestamp, WrappedKey,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COMMIT_WAIT: Duration = Duration::from_secs(60);
/// More than `off_hours_reads.reads_min` (5).
const NIGHT_READS: usize = 6;
const MINUTES_PER_DAY: i64 = 24 * 60;

fn clerk_key(net: &Testnet, index: usize) -> ed25519_dalek::SigningKey {
    let node = &net.nodes[index];
    let secret = custody_node::home::read_key_file(&net.member_key(&node.department, "clerk"))
        .expect("clerk key");
    ed25519_dalek::SigningKey::from_bytes(&secret)
}

/// The UTC offset (minutes, within ±12 h) at which it is now about 02:00.
fn offset_where_it_is_two_in_the_morning() -> i64 {
    let now_minutes = (custody_node::testnet::now_ms() / 60_000) as i64 % MINUTES_PER_DAY;
    let mut offset = (2 * 60 - now_minutes).rem_euclid(MINUTES_PER_DAY);
    if offset >= MINUTES_PER_DAY / 2 {
        offset -= MINUTES_PER_DAY;
    }
    offset
}

/// A receiver of webhook POSTs: each body arrives on the channel.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind webhook receiver");
    let url = format!(
        "http://{}/custody-alerts",
        listener.local_addr().expect("address")
    );
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(read) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .and_then(|value| value.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    let body_start = head_end + 4;
                    if buffer.len() < body_start + length {
                        continue;
                    }
                    let body = String::from_utf8_lossy(&buffer[body_start..body_start + length])
                        .into_owned();
                    let _ = sender.send(body);
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, receiver)
}

/// Sets every node's oversight thresholds (night now in `department`'s
/// zone) and the webhook of node 0.
fn configure_oversight(net: &Testnet, department: &str, webhook_url: &str) {
    let offset = offset_where_it_is_two_in_the_morning();
    for (index, node) in net.nodes.iter().enumerate() {
        std::fs::write(
            node.home.join("oversight.toml"),
            format!(
                "[departments.{department}]\nstart_hour = 8\nend_hour = 18\nutc_offset_minutes = {offset}\n"
            ),
        )
        .expect("write thresholds");
        let path = node.home.join("config.toml");
        let text = std::fs::read_to_string(&path).expect("config");
        let mut config: toml::Table = text.parse().expect("config parses");
        let mut oversight = toml::Table::new();
        oversight.insert(
            "thresholds".to_string(),
            toml::Value::String("oversight.toml".to_string()),
        );
        if index == 0 {
            oversight.insert(
                "webhook_url".to_string(),
                toml::Value::String(webhook_url.to_string()),
            );
            oversight.insert("webhook_backoff_ms".to_string(), toml::Value::Integer(100));
        }
        config.insert("oversight".to_string(), toml::Value::Table(oversight));
        std::fs::write(&path, config.to_string()).expect("write config");
    }
}

/// Signs and submits `bodies` as one batch from `key`, with consecutive
/// nonces, and waits until node 0 committed the last of them; returns
/// the heights they were committed at.
async fn submit_all(
    net: &Testnet,
    key: &ed25519_dalek::SigningKey,
    bodies: Vec<TxBody>,
) -> Vec<u64> {
    let api = &net.nodes[0].api_url;
    let public = PublicKey(key.verifying_key().to_bytes());
    let member = net
        .get_json(&format!("{api}/v1/members/{public}"))
        .await
        .expect("member");
    let nonce = member["nonce"].as_u64().unwrap_or(0);
    let status = net.client(0).status().await.expect("status");
    let txs: Vec<SignedTransaction> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            SignedTransaction::sign(body, key, Nonce(nonce + 1 + i as u64), &status.chain_id)
        })
        .collect();
    let answer = net.client(0).submit_batch(&txs).await.expect("batch");
    let ids: Vec<String> = answer
        .results
        .iter()
        .map(|item| {
            assert!(item.error.is_none(), "refused: {item:?}");
            item.tx_id.expect("tx id").to_hex()
        })
        .collect();
    let mut heights = Vec::new();
    for id in ids {
        let url = format!("{api}/v1/transactions/{id}");
        let height = wait_for(net, "the transaction to commit", COMMIT_WAIT, || {
            let url = url.clone();
            async move {
                let tx = net.get_json(&url).await?;
                tx["inclusion"]["height"]
                    .as_u64()
                    .ok_or_else(|| tx.to_string())
            }
        })
        .await;
        heights.push(height);
    }
    heights
}

fn document_id(department: &str, i: usize) -> DocumentId {
    DocumentId::new(format!("{department}/2026/night-{i:04}")).expect("id")
}

fn registration(department: &str, i: usize, created: u64) -> TxBody {
    let id = document_id(department, i);
    TxBody::Register {
        document: id.clone(),
        title: format!("Household register {i}"),
        record_type: "household-register".into(),
        department: DepartmentId::new(department).expect("department"),
        created: Timestamp(created),
        classification: Classification::Internal,
        retention: Retention::Years(30),
        format: Format {
            mime: "application/pdf".into(),
            pronom: None,
        },
        plaintext: Fixity {
            sha256: custody_ledger::encoding::sha256(format!("plain {id}").as_bytes()),
            size_bytes: 1000,
        },
        ciphertext: Fixity {
            sha256: custody_ledger::encoding::sha256(format!("cipher {id}").as_bytes()),
            size_bytes: 1040,
        },
        subject_tag: None,
        wrapped_key: WrappedKey(vec![7; 64]),
    }
}

/// `custody watch --json` started as a process; its stdout lines arrive
/// on a channel.
struct Watch {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watch {
    fn start(node_url: &str, department: &str, key: &std::path::Path, from_height: u64) -> Watch {
        let mut child = Command::new(BINARY)
            .args([
                "watch",
                "--department",
                department,
                "--node",
                node_url,
                "--key",
            ])
            .arg(key)
            .args(["--from-height", &from_height.to_string()])
            .args(["--interval-ms", "200", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn custody watch");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Watch { child, lines }
    }

    /// Lines until one `check` accepts, or panics after `timeout` with
    /// what was seen.
    fn wait_line(
        &self,
        timeout: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let value: serde_json::Value =
                        serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
                    if check(&value) {
                        return value;
                    }
                    seen.push(line);
                }
                Err(_) => break,
            }
        }
        panic!(
            "custody watch printed no matching line in {timeout:?}; it printed:\n{}",
            seen.join("\n")
        );
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alert_of_rule<'a>(page: &'a serde_json::Value, rule: &str) -> Option<&'a serde_json::Value> {
    page["alerts"]
        .as_array()?
        .iter()
        .filter(|a| a["rule"] == rule)
        .max_by_key(|a| a["seq"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_bulk_read_raises_an_alert_on_every_node_within_two_blocks_and_reaches_watch_and_the_webhook(
) {
    let mut net = Testnet::init(4);
    let department = net.nodes[0].department.clone();
    let (webhook_url, mut webhook) = webhook_receiver().await;
    configure_oversight(&net, &department, &webhook_url);
    net.start_all();
    wait_until_committing(&net, COMMIT_WAIT).await;

    let clerk = clerk_key(&net, 0);
    let clerk_public = PublicKey(clerk.verifying_key().to_bytes()).to_hex();
    let now = custody_node::testnet::now_ms();
    let registrations = (0..NIGHT_READS)
        .map(|i| registration(&department, i, now - 86_400_000))
        .collect();
    submit_all(&net, &clerk, registrations).await;

    // The owning department's watch, started before the reads.
    let head = net.client(0).status().await.expect("status").height;
    let watch = Watch::start(
        &net.nodes[0].api_url,
        &department,
        &net.member_key(&department, "clerk"),
        head + 1,
    );

    let api = &net.nodes[0].api_url;
    let mut reads = Vec::new();
    for i in 0..NIGHT_READS {
        let id = document_id(&department, i);
        let doc = net
            .get_json(&format!("{api}/v1/documents/{id}"))
            .await
            .expect("document");
        reads.push(TxBody::RecordAccess {
            document: id,
            previous_event: EventHash::from_hex(doc["latest_event"].as_str().expect("event"))
                .expect("hex"),
            purpose: "night reading".into(),
            ciphertext_sha256: Hash32::from_hex(doc["ciphertext"]["sha256"].as_str().expect("sha"))
                .expect("hex"),
        });
    }
    let read_heights = submit_all(&net, &clerk, reads).await;
    let last_read_height = *read_heights.iter().max().expect("a read");

    let expected_documents: Vec<String> = (0..NIGHT_READS)
        .map(|i| document_id(&department, i).to_string())
        .collect();
    // Every node raises it, naming the member, the department and the
    // documents, within two blocks of the last read.
    let auditor = net.auditor_key();
    for node in net.nodes.iter().take(net.genesis_nodes) {
        let url = format!("{}/v1/alerts", node.api_url);
        let alert = wait_for(&net, "the night-read alert", COMMIT_WAIT, || {
            let url = url.clone();
            let auditor = auditor.clone();
            async move {
                let page = get_json_as(&url, &auditor).await?;
                match alert_of_rule(&page, "off-hours-reads") {
                    Some(alert)
                        if alert["evidence"].as_array().map(Vec::len) == Some(NIGHT_READS) =>
                    {
                        Ok(alert.clone())
                    }
                    _ => Err(page.to_string()),
                }
            }
        })
        .await;
        assert_eq!(alert["member"], clerk_public, "{alert}");
        assert_eq!(alert["department"], department, "{alert}");
        let documents: Vec<&str> = alert["documents"]
            .as_array()
            .expect("documents")
            .iter()
            .filter_map(|d| d.as_str())
            .collect();
        assert_eq!(documents, expected_documents, "{alert}");
        let derived = alert["updated_height"].as_u64().expect("height");
        assert!(
            derived >= last_read_height && derived <= last_read_height + 2,
            "{} derived the alert at height {derived}, the last read is at {last_read_height}: {alert}",
            node.department
        );
    }

    // The owning department's watch printed the reads and the alert.
    watch.wait_line(COMMIT_WAIT, |line| {
        line["type"] == "action" && line["kind"] == "record-access"
    });
    let printed = watch.wait_line(COMMIT_WAIT, |line| {
        line["type"] == "alert"
            && line["rule"] == "off-hours-reads"
            && line["evidence"].as_array().map(Vec::len) == Some(NIGHT_READS)
    });
    assert_eq!(printed["member"], clerk_public, "{printed}");

    // The webhook received it.
    let deadline = Instant::now() + COMMIT_WAIT;
    let mut bodies = Vec::new();
    let delivered = loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no webhook delivery of the alert; received: {bodies:?}"));
        let body = tokio::time::timeout(left, webhook.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no webhook delivery of the alert; received: {bodies:?}"));
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if value["alert"]["rule"] == "off-hours-reads" {
            break value;
        }
        bodies.push(body);
    };
    assert_eq!(delivered["department"], department, "{delivered}");
    assert_eq!(delivered["alert"]["member"], clerk_public, "{delivered}");

    // Another department's member does not see it; counted by rule.
    let other = &net.nodes[1];
    let other_key = clerk_key(&net, 1);
    let page = get_json_as(&format!("{}/v1/alerts", other.api_url), &other_key)
        .await
        .expect("alerts for another department");
    assert!(alert_of_rule(&page, "off-hours-reads").is_none(), "{page}");
    let metrics = net.client(0).metrics().await.expect("metrics");
    assert!(
        metrics.contains("custody_alerts_total{rule=\"off-hours-reads\"} 1"),
        "{metrics}"
    );

    // After a restart the node derives the same alert from its store.
    net.nodes[1].stop();
    net.nodes[1].start();
    let url = format!("{}/v1/alerts", net.nodes[1].api_url);
    let again = wait_for(&net, "the alert after a restart", COMMIT_WAIT, || {
        let url = url.clone();
        let auditor = auditor.clone();
        async move {
            let page = get_json_as(&url, &auditor).await?;
            alert_of_rule(&page, "off-hours-reads")
                .cloned()
                .ok_or_else(|| page.to_string())
        }
    })
    .await;
    assert_eq!(again["evidence"], delivered["alert"]["evidence"], "{again}");
    assert_eq!(
        again["updated_height"].as_u64(),
        Some(last_read_height),
        "{again}"
    );
}
