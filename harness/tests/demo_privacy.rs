//! What the demo puts on chain about its documents travels sealed: the
//! auditor's export of its chain holds none of its titles, none of the
//! names of the people its records are about, and none of the reasons,
//! purposes and notes it records, as plaintext bytes; and the export still
//! verifies offline, with no key.

use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

/// The `custody audit` part of the `custody` command line.
#[derive(Parser)]
#[command(name = "custody")]
struct AuditCli {
    #[command(subcommand)]
    command: AuditOnly,
}

#[derive(Subcommand)]
enum AuditOnly {
    Audit(custody_cli::AuditArgs),
}

const BINARY: &str = env!("CARGO_BIN_EXE_custody-harness");
/// The whole short demo, including starting four nodes on a busy machine.
const DEMO_TIMEOUT_MS: u64 = 600_000;

/// A base port such that BASE..BASE+8 are free on loopback now.
fn free_base_port() -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let mut candidate = 20_000 + (seed % 20_000) as u16;
    for _ in 0..200 {
        if (0..8).all(|offset| TcpListener::bind(("127.0.0.1", candidate + offset)).is_ok()) {
            return candidate;
        }
        candidate = 20_000 + (candidate + 97 - 20_000) % 40_000;
    }
    panic!("no free range of 8 ports found on loopback");
}

/// Kills the demo if the test ends early.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn output(root: &Path) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        std::fs::read_to_string(root.join("demo.out")).unwrap_or_default(),
        std::fs::read_to_string(root.join("demo.err")).unwrap_or_default()
    )
}

fn strings(value: &serde_json::Value, key: &str) -> Vec<String> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is a list in {value}"))
        .iter()
        .map(|item| item.as_str().expect("a string").to_string())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[test]
fn demo_export_holds_no_title_subject_or_purpose_in_the_clear() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("net");
    let child = Command::new(BINARY)
        .args(["demo", "--short", "--exit-after-audit", "--dir"])
        .arg(&dir)
        .arg("--base-port")
        .arg(free_base_port().to_string())
        .stdin(Stdio::null())
        .stdout(File::create(root.path().join("demo.out")).expect("create demo.out"))
        .stderr(File::create(root.path().join("demo.err")).expect("create demo.err"))
        .spawn()
        .expect("start custody-harness demo");
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_millis(DEMO_TIMEOUT_MS);
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not finish within {} s\n{}",
            DEMO_TIMEOUT_MS / 1000,
            output(root.path())
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "custody-harness demo failed ({status})\n{}",
        output(root.path())
    );

    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("demo-summary.json")).expect("demo-summary.json"),
    )
    .expect("the summary parses");
    let export = summary["export_file"].as_str().expect("export_file");
    let genesis_hash = summary["genesis_hash"].as_str().expect("genesis_hash");
    let bytes = std::fs::read(export).expect("read the export");

    // The demo's own list of what it keeps private.
    let private: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("demo-private-texts.json"))
            .expect("demo-private-texts.json"),
    )
    .expect("the private texts parse");
    let titles = strings(&private, "titles");
    let subjects = strings(&private, "subjects");
    let texts = strings(&private, "texts");
    assert!(
        titles.len() >= 8,
        "the short demo registers at least 8 samples: {titles:?}"
    );
    assert!(!subjects.is_empty() && !texts.is_empty(), "{private}");

    // The search does find what is meant to be in the clear: the
    // documents' ids and record types.
    assert!(
        contains(&bytes, b"civil-affairs-2026-0001"),
        "the export names the first document's id"
    );
    assert!(contains(&bytes, b"birth-registration"));

    let found: Vec<&String> = titles
        .iter()
        .chain(&subjects)
        .chain(&texts)
        .filter(|text| contains(&bytes, text.as_bytes()))
        .collect();
    assert!(
        found.is_empty(),
        "the export {export} holds in the clear: {found:?}"
    );

    // The auditor's `custody audit verify`, through the same library the
    // `custody` binary calls.
    let cli = AuditCli::try_parse_from([
        "custody",
        "audit",
        "verify",
        "--export",
        export,
        "--genesis-hash",
        genesis_hash,
    ])
    .unwrap();
    let AuditOnly::Audit(args) = cli.command;
    let mut printed = Vec::new();
    let verified = custody_cli::run_audit_to(args, &mut printed);
    assert!(
        verified.is_ok(),
        "custody audit verify failed on the export: {verified:?}\n{}",
        String::from_utf8_lossy(&printed)
    );
}
