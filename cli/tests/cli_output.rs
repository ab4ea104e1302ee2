//! What `custody` prints for people and for scripts: every command's help
//! shows an example, the data commands answer `--json`, and logs that go to
//! a file carry no colour escapes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{wait_until_committing, Testnet, BINARY};

/// The committed export test vector: a small, valid chain.
fn export_vector() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ledger/tests/vectors/export-v1.bin")
}

fn help_of(path: &[String]) -> String {
    let output = Command::new(BINARY)
        .args(path)
        .arg("--help")
        .output()
        .expect("run custody --help");
    assert!(output.status.success(), "custody {path:?} --help failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The subcommands a help text lists under "Commands:" (`help` left out).
fn subcommands_of(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Every command path from the top, leaves and groups, with its help text.
fn every_command() -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut work: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = work.pop() {
        let help = help_of(&path);
        for name in subcommands_of(&help) {
            let mut child = path.clone();
            child.push(name);
            work.push(child);
        }
        out.push((path, help));
    }
    out
}

#[test]
fn every_command_help_shows_an_example() {
    let commands = every_command();
    let leaves: Vec<&(Vec<String>, String)> = commands
        .iter()
        .filter(|(_, help)| subcommands_of(help).is_empty())
        .collect();
    assert!(leaves.len() > 40, "found only {} commands", leaves.len());
    let without: Vec<String> = leaves
        .iter()
        .filter(|(_, help)| !help.contains("Example"))
        .map(|(path, _)| path.join(" "))
        .collect();
    assert!(without.is_empty(), "no example in --help of: {without:?}");
}

#[test]
fn every_top_level_help_lists_the_exit_codes() {
    let root = help_of(&[]);
    let mut paths = vec![Vec::new()];
    paths.extend(subcommands_of(&root).into_iter().map(|name| vec![name]));
    for path in paths {
        let help = help_of(&path);
        assert!(
            help.contains("Exit codes:") && help.contains("3  verification failed"),
            "custody {path:?} --help does not list the exit codes:\n{help}"
        );
    }
}

/// Runs `custody ARGS` and parses its standard output as JSON.
fn json_of(args: &[&str]) -> serde_json::Value {
    let output = Command::new(BINARY)
        .args(args)
        .output()
        .expect("run custody");
    assert!(
        output.status.success(),
        "custody {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "custody {args:?} printed no JSON ({error}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn chain_import_export_and_audit_prove_answer_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vector = export_vector();
    let store = dir.path().join("ledger");
    let imported = json_of(&[
        "chain",
        "import",
        "--from",
        text(&vector),
        "--store",
        text(&store),
        "--json",
    ]);
    assert_eq!(imported["blocks"].as_u64(), Some(14), "{imported}");
    let again = dir.path().join("again.export");
    let exported = json_of(&[
        "chain",
        "export",
        "--store",
        text(&store),
        "--to",
        text(&again),
        "--json",
    ]);
    assert_eq!(exported["blocks"], imported["blocks"], "{exported}");
    assert_eq!(
        exported["last_block_hash"], imported["last_block_hash"],
        "{exported}"
    );
    let history = json_of(&[
        "audit",
        "history",
        "ca/2026/0001",
        "--export",
        text(&vector),
        "--json",
    ]);
    let tx = history[0]["event"]["tx"].as_str().expect("an event's tx");
    let proof = dir.path().join("registration.proof");
    let proved = json_of(&[
        "audit",
        "prove",
        tx,
        "--export",
        text(&vector),
        "--out",
        text(&proof),
        "--json",
    ]);
    assert_eq!(proved["tx_id"].as_str(), Some(tx), "{proved}");
    assert!(proof.exists(), "no proof file written");
}

#[test]
fn genesis_contribute_assemble_and_hash_answer_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let member = dir.path().join("admin.key");
    let department = dir.path().join("department.key");
    let member_key = json_of(&[
        "keys",
        "new",
        "--kind",
        "member",
        "--out",
        text(&member),
        "--json",
    ]);
    let department_key = json_of(&[
        "keys",
        "new",
        "--kind",
        "department",
        "--out",
        text(&department),
        "--json",
    ]);
    let ed25519 = format!("pub:{}", member_key["public_key"].as_str().expect("key"));
    let x25519 = format!(
        "pub:{}",
        department_key["public_key"].as_str().expect("key")
    );
    let contribution = dir.path().join("civil-affairs.json");
    let contributed = json_of(&[
        "genesis",
        "contribute",
        "--department",
        "civil-affairs",
        "--name",
        "Civil Affairs",
        "--validator-key",
        &ed25519,
        "--node-key",
        &ed25519,
        "--encryption-key",
        &x25519,
        "--admin-key",
        &ed25519,
        "--out",
        text(&contribution),
        "--json",
    ]);
    assert_eq!(contributed["department"].as_str(), Some("civil-affairs"));
    let genesis = dir.path().join("genesis.json");
    let assembled = json_of(&[
        "genesis",
        "assemble",
        "--chain-id",
        "custody-json-test",
        "--genesis-date",
        "2026-01-01",
        text(&contribution),
        "--out",
        text(&genesis),
        "--json",
    ]);
    let hashed = json_of(&["genesis", "hash", text(&genesis), "--json"]);
    assert_eq!(
        hashed["genesis_hash"], assembled["genesis_hash"],
        "{hashed}"
    );
    assert_eq!(hashed["chain_id"].as_str(), Some("custody-json-test"));
}

#[tokio::test(flavor = "multi_thread")]
async fn node_logs_redirected_to_a_file_carry_no_colour_escapes() {
    let mut net = Testnet::init(4);
    net.start_all();
    wait_until_committing(&net, Duration::from_secs(60)).await;
    for node in &net.nodes {
        let log = std::fs::read_to_string(&node.log_path).expect("read the node's log");
        assert!(!log.is_empty(), "{} logged nothing", node.department);
        assert!(
            !log.contains("\x1b["),
            "{}'s log carries colour escapes:\n{}",
            node.department,
            log.lines().take(5).collect::<Vec<_>>().join("\n")
        );
    }
}

#[test]
fn doc_opens_a_sealed_key_with_the_passphrase_env_its_error_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sealed = dir.path().join("clerk.key");
    let made = Command::new(BINARY)
        .args(["keys", "new", "--kind", "member", "--out", text(&sealed)])
        .args(["--passphrase-env", "CLERK_PASSPHRASE"])
        .env("CLERK_PASSPHRASE", "correct horse battery staple")
        .output()
        .expect("run custody keys new");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let register = |passphrase: Option<&str>| {
        let mut command = Command::new(BINARY);
        command
            .args(["doc", "register", "extract.pdf", "--title", "Extract"])
            .args(["--record-type", "civil-register-extract"])
            .args(["--node", "http://127.0.0.1:9", "--key", text(&sealed)])
            .env_remove("CLERK_PASSPHRASE");
        if let Some(passphrase) = passphrase {
            command
                .args(["--passphrase-env", "CLERK_PASSPHRASE"])
                .env("CLERK_PASSPHRASE", passphrase);
        }
        let output = command.output().expect("run custody doc register");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // Without it, the error names the flag.
    let (_, stderr) = register(None);
    assert!(stderr.contains("--passphrase-env"), "{stderr}");
    // With it, the key opens and the command gets as far as the node
    // (none listens there: the I/O or network code).
    let (code, stderr) = register(Some("correct horse battery staple"));
    assert_eq!(code, Some(6), "{stderr}");
}
