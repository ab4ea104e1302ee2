//! A clerk's commands one after another on a real four-node network: each
//! builds on what the node answers, with no "refresh and retry".

mod common;

use std::process::Command;
use std::time::Duration;

use common::{doc_ok, wait_until_committing, Testnet, BINARY};

const COMMIT_WAIT: Duration = Duration::from_secs(60);

/// Back-to-back commands in the test below.
const COMMANDS: usize = 50;

#[tokio::test(flavor = "multi_thread")]
async fn fifty_back_to_back_commands_by_one_clerk_on_one_document_need_no_retry() {
    let mut net = Testnet::init(4);
    net.start_all();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let file = net.dir.path().join("extract.txt");
    std::fs::write(&file, b"civil register extract, page 1").expect("write document");
    let registered = doc_ok(
        &net,
        0,
        &[
            "register",
            file.to_str().expect("utf-8 path"),
            "--title",
            "Register extract",
            "--record-type",
            "civil-register-extract",
        ],
    );
    let id = registered["document"]
        .as_str()
        .expect("document id")
        .to_string();
    let node = &net.nodes[0];
    let output = net.dir.path().join("opened.txt");
    for command in 0..COMMANDS {
        let purpose = format!("back-to-back read {command}");
        // Retries disabled: any "refresh and retry" from the node fails the command.
        let run = Command::new(BINARY)
            .args(["doc", "open", &id, "--purpose", &purpose, "--json"])
            .arg("--output")
            .arg(&output)
            .arg("--node")
            .arg(&node.api_url)
            .arg("--key")
            .arg(net.member_key(&node.department, "clerk"))
            .arg("--department-key")
            .arg(node.home.join("members/department.key"))
            .env("CUSTODY_TRANSIENT_RETRIES", "0")
            .output()
            .expect("run custody doc open");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            run.status.success(),
            "command {command} was refused: {stderr}\n{}",
            net.logs()
        );
        assert!(
            !stderr.contains("retry"),
            "command {command} retried: {stderr}"
        );
    }
    // Every read is on chain, in order after the registration.
    let shown = doc_ok(&net, 0, &["show", &id]);
    assert_eq!(
        shown["event_count"].as_u64(),
        Some(1 + COMMANDS as u64),
        "{shown}"
    );
}

fn member_secret(net: &Testnet, index: usize, role: &str) -> ed25519_dalek::SigningKey {
    let path = net.member_key(&net.nodes[index].department, role);
    let secret = custody_node::home::read_key_file(&path).expect("member key");
    ed25519_dalek::SigningKey::from_bytes(&secret)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_created_long_ago_is_disposed_once_its_retention_has_elapsed() {
    use custody_ledger::tx::{SignedTransaction, TxBody};
    use custody_ledger::types::{DocumentId, EventHash, Nonce};

    let mut net = Testnet::init(4);
    net.start_all();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let file = net.dir.path().join("ledger-1990.txt");
    std::fs::write(&file, b"land register, 1990").expect("write document");
    let registered = doc_ok(
        &net,
        0,
        &[
            "register",
            file.to_str().expect("utf-8 path"),
            "--title",
            "Land register 1990",
            "--record-type",
            "land-register",
            "--retention",
            "10",
            "--created",
            "1990-03-01",
        ],
    );
    let id = registered["document"].as_str().expect("document id");
    let shown = doc_ok(&net, 0, &["show", id]);
    // The start of 1990-03-01 in the default zone, Asia/Shanghai
    // (1990-02-28T16:00:00Z), in milliseconds since 1970.
    assert_eq!(shown["created"].as_u64(), Some(636_220_800_000), "{shown}");
    // Ten years from 1990 have passed: its department's admin disposes of it.
    let admin = member_secret(&net, 0, "admin");
    let url = format!(
        "{}/v1/members/{}",
        net.nodes[0].api_url,
        hex::encode(admin.verifying_key().to_bytes())
    );
    let member = common::get_json_as(&url, &admin)
        .await
        .expect("admin record");
    let next = member["next_nonce"].as_u64().expect("next_nonce");
    let latest: EventHash =
        serde_json::from_value(shown["latest_event"].clone()).expect("latest event");
    let status = net.client(0).status().await.expect("status");
    let dispose = SignedTransaction::sign(
        TxBody::Dispose {
            document: DocumentId::new(id.to_string()).expect("document id"),
            previous_event: latest,
            reason: "retention of 10 years elapsed".to_string(),
        },
        &admin,
        Nonce(next),
        &status.chain_id,
    );
    let answer = net
        .client(0)
        .submit(&dispose, Some(COMMIT_WAIT))
        .await
        .expect("the node takes the disposal");
    assert!(answer.inclusion.is_some(), "not committed: {answer:?}");
    let shown = doc_ok(&net, 0, &["show", id]);
    assert_eq!(shown["status"].as_str(), Some("disposed"), "{shown}");
}

#[test]
fn a_record_created_in_the_future_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("clerk.key");
    std::fs::write(&key, hex::encode([7u8; 32])).expect("write key");
    let output = Command::new(BINARY)
        .args(["doc", "register", "extract.pdf", "--title", "Extract"])
        .args(["--record-type", "civil-register-extract"])
        .args(["--created", "2999-01-01", "--node", "http://127.0.0.1:9"])
        .arg("--key")
        .arg(&key)
        .output()
        .expect("run custody doc register");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A usage error, before the node is asked anything.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in the future"), "{stderr}");
}
