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
