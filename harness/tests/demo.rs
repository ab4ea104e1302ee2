//! `custody-harness demo`, the README's main command, run as a user runs it.
//!
//! The short scenario must run to completion, its audit must verify the
//! chain and find every kind of event the scenario makes, and no node the
//! demo started may outlive it — whether it ends normally, is interrupted
//! with SIGTERM, or is killed with SIGKILL.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_custody-harness");
/// The whole short demo, including starting four nodes on a busy machine.
const DEMO_TIMEOUT_MS: u64 = 600_000;
/// How long processes get to disappear after the demo is gone.
const GONE_TIMEOUT_MS: u64 = 20_000;

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

struct DemoRun {
    dir: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    child: Child,
}

impl DemoRun {
    fn start(root: &Path, extra: &[&str]) -> DemoRun {
        let dir = root.join("net");
        let stdout_path = root.join("demo.out");
        let stderr_path = root.join("demo.err");
        let child = Command::new(BINARY)
            .arg("demo")
            .args(extra)
            .arg("--dir")
            .arg(&dir)
            .arg("--base-port")
            .arg(free_base_port().to_string())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create demo.out"))
            .stderr(File::create(&stderr_path).expect("create demo.err"))
            .spawn()
            .expect("start custody-harness demo");
        DemoRun {
            dir,
            stdout_path,
            stderr_path,
            child,
        }
    }

    fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }

    fn wait(&mut self, timeout_ms: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "custody-harness demo did not finish within {} s\n{}",
                    timeout_ms / 1000,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node pids the demo wrote, once it has started them.
    fn wait_for_node_pids(&mut self) -> Vec<u32> {
        let path = self.dir.join("demo-nodes.json");
        let deadline = Instant::now() + Duration::from_millis(DEMO_TIMEOUT_MS);
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                    return node_pids(&value);
                }
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "the demo exited ({status}) before starting its nodes\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the demo started no nodes in time\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

impl Drop for DemoRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_pids(value: &serde_json::Value) -> Vec<u32> {
    value["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .map(|node| node["pid"].as_u64().expect("pid") as u32)
        .collect()
}

/// Whether `pid` is a live (not zombie) process started from this demo's
/// directory. A reused pid belongs to something else and does not count.
fn is_demo_node_alive(pid: u32, dir: &Path) -> bool {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(_) => return false,
    };
    // The state letter follows the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z') | Some('X')) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    cmdline.contains(&*dir.to_string_lossy())
}

fn assert_nodes_gone(pids: &[u32], dir: &Path, context: &str) {
    let deadline = Instant::now() + Duration::from_millis(GONE_TIMEOUT_MS);
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|pid| is_demo_node_alive(*pid, dir))
            .collect();
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node processes {alive:?} still run {} s after the demo {context}",
            GONE_TIMEOUT_MS / 1000
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn short_demo_runs_audits_a_verified_chain_and_leaves_no_process() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut run = DemoRun::start(root.path(), &["--short", "--exit-after-audit"]);
    let pids = run.wait_for_node_pids();
    assert_eq!(pids.len(), 4, "four nodes\n{}", run.output());
    let status = run.wait(DEMO_TIMEOUT_MS);
    let output = run.output();
    assert!(
        status.success(),
        "custody-harness demo failed ({status})\n{output}"
    );

    // The audit line names a verified chain and counts every kind of event.
    let stdout = std::fs::read_to_string(&run.stdout_path).expect("demo.out");
    let line = stdout
        .lines()
        .find(|line| line.starts_with("audit: chain verified"))
        .unwrap_or_else(|| panic!("no audit summary line\n{output}"));
    for kind in [
        "registered",
        "offered",
        "accepted",
        "rejected",
        "granted",
        "read",
        "amended",
        "fixity-checked",
    ] {
        let count = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix(&format!("{kind}=")))
            .and_then(|count| count.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(
            count >= 1,
            "no `{kind}` event in the audit: {line}\n{output}"
        );
    }

    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.dir.join("demo-summary.json")).expect("demo-summary.json"),
    )
    .expect("summary parses");
    assert_eq!(summary["verified"], true, "{summary}");
    assert_eq!(summary["proof_checked"], true, "{summary}");
    assert_eq!(summary["fixity_checked"], true, "{summary}");
    assert!(
        summary["events"]["registered"].as_u64().unwrap_or(0) >= 8,
        "{summary}"
    );
    assert_eq!(summary["departments"], 4, "{summary}");

    assert_nodes_gone(&pids, &run.dir, "exited");
}

#[test]
fn interrupted_demo_stops_every_node() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut run = DemoRun::start(root.path(), &["--short"]);
    let pids = run.wait_for_node_pids();
    run.signal(libc::SIGTERM);
    let status = run.wait(DEMO_TIMEOUT_MS);
    assert!(
        !status.success(),
        "an interrupted demo reports failure\n{}",
        run.output()
    );
    assert!(
        run.output().contains("interrupted"),
        "the demo says it was interrupted\n{}",
        run.output()
    );
    assert_nodes_gone(&pids, &run.dir, "was interrupted");
}

#[test]
fn killed_demo_takes_its_nodes_with_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut run = DemoRun::start(root.path(), &["--short"]);
    let pids = run.wait_for_node_pids();
    run.signal(libc::SIGKILL);
    let _ = run.wait(DEMO_TIMEOUT_MS);
    assert_nodes_gone(&pids, &run.dir, "was killed with SIGKILL");
}
