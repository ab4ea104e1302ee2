//! `custody` exits with a code that tells what went wrong (see the
//! "Exit codes" of every top-level `--help` and docs/audit.md): one test
//! per code, from the built binary.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{doc_ok, wait_until_committing, Testnet, BINARY};

const VERIFICATION: i32 = 3;
const NOT_FOUND: i32 = 4;
const REFUSED: i32 = 5;
const IO_OR_NETWORK: i32 = 6;
const USAGE: i32 = 2;

/// The committed export test vector: a small, valid chain.
fn export_vector() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ledger/tests/vectors/export-v1.bin")
}

/// Runs `custody ARGS`; returns its exit code and stderr.
fn exit_code(args: &[&str]) -> (i32, String) {
    let output = Command::new(BINARY)
        .args(args)
        .output()
        .expect("run custody");
    (
        output.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_untouched_export_verifies_with_exit_code_zero() {
    let vector = export_vector();
    let (code, stderr) = exit_code(&[
        "audit",
        "verify",
        "--export",
        vector.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_tampered_export_exits_with_the_verification_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(export_vector()).expect("read the export vector");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let tampered = dir.path().join("tampered.export");
    std::fs::write(&tampered, &bytes).expect("write the tampered export");
    let (code, stderr) = exit_code(&[
        "audit",
        "verify",
        "--export",
        tampered.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, VERIFICATION, "{stderr}");
}

#[test]
fn a_missing_file_exits_with_the_io_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such.export");
    let (code, stderr) = exit_code(&[
        "audit",
        "verify",
        "--export",
        missing.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, IO_OR_NETWORK, "{stderr}");
}

#[test]
fn an_unreachable_node_exits_with_the_io_code() {
    // Port 9 (discard) on loopback: nothing listens there in a test run.
    let (code, stderr) = exit_code(&[
        "doc",
        "show",
        "some-document",
        "--node",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code, IO_OR_NETWORK, "{stderr}");
}

#[test]
fn an_unknown_document_exits_with_the_not_found_code() {
    let vector = export_vector();
    let (code, stderr) = exit_code(&[
        "audit",
        "history",
        "no-such-document",
        "--export",
        vector.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, NOT_FOUND, "{stderr}");
}

#[test]
fn a_wrong_command_line_exits_with_the_usage_code() {
    let (code, stderr) = exit_code(&["audit", "verify", "--no-such-flag"]);
    assert_eq!(code, USAGE, "{stderr}");
}

#[test]
fn a_command_missing_its_key_exits_with_the_usage_code() {
    let output = Command::new(BINARY)
        .args([
            "doc",
            "register",
            "extract.pdf",
            "--title",
            "Register extract",
            "--record-type",
            "civil-register-extract",
            "--node",
            "http://127.0.0.1:9",
        ])
        .env_remove("CUSTODY_MEMBER_KEY")
        .output()
        .expect("run custody doc register");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(USAGE), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_the_chain_refuses_exits_with_the_refused_code() {
    let mut net = Testnet::init(4);
    net.start_all();
    wait_until_committing(&net, Duration::from_secs(60)).await;
    let file = net.dir.path().join("extract.txt");
    std::fs::write(&file, b"civil register extract").expect("write document");
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
    let id = registered["document"].as_str().expect("document id");
    // No grant to revoke: the chain's rules refuse it.
    let node = &net.nodes[0];
    let other = &net.nodes[1].department;
    let output = Command::new(BINARY)
        .args(["doc", "revoke", id, "--from", other])
        .arg("--node")
        .arg(&node.api_url)
        .arg("--key")
        .arg(net.member_key(&node.department, "clerk"))
        .output()
        .expect("run custody doc revoke");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(REFUSED), "{stderr}");
}
