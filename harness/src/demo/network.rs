//! The demo's four node processes: started from this same binary, watched,
//! and always stopped.
//!
//! Every node runs in one process group of its own (so that a Ctrl-C in
//! the terminal reaches only the demo, which then stops the nodes in
//! order), and asks the kernel to kill it if the demo dies without
//! cleaning up (`PR_SET_PDEATHSIG`). Dropping a [`Network`] stops every
//! node: SIGTERM to the group, then SIGKILL after a deadline, then reaping,
//! so that nothing outlives the demo whichever way it ends.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use custody_node::api_types::StatusResponse;
use custody_node::testnet::TestnetManifest;

use super::DemoError;

/// How long the nodes get to stop after SIGTERM before they are killed.
pub const STOP_GRACE_MS: u64 = 15_000;
/// Longest wait for the network to connect and commit its first block.
pub const HEALTHY_TIMEOUT_MS: u64 = 120_000;
/// Pause between health polls.
const POLL_INTERVAL_MS: u64 = 200;
/// Lines of a node's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;

/// One running node.
pub struct NodeChild {
    pub department: String,
    pub api_url: String,
    pub log_path: PathBuf,
    pub pid: u32,
    child: Child,
    exited: Option<ExitStatus>,
}

/// The demo's nodes. Dropping it stops them all.
pub struct Network {
    pub nodes: Vec<NodeChild>,
    /// The process group all nodes run in (the first node's pid). Signals
    /// go to each node by pid, never to the group: once its leader is
    /// reaped, a group id could name someone else's processes.
    process_group: Option<i32>,
    stopped: bool,
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n")
}

/// Refuses to start when a port the testnet would use is taken, so that
/// the failure names the port instead of a node dying later.
pub fn check_ports_free(base_port: u16, departments: usize) -> Result<(), DemoError> {
    for offset in 0..(2 * departments) {
        let port = base_port.saturating_add(offset as u16);
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(DemoError::PortInUse { port, base_port });
        }
    }
    Ok(())
}

fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a positive pid of a child this process has not
    // reaped yet (so the pid cannot have been reused) only sends a signal.
    unsafe {
        libc::kill(pid, signal);
    }
}

impl Network {
    /// Starts `custody node start --home …` for every node of the
    /// manifest. Must be called from the main thread: the kernel's
    /// parent-death signal fires when the *thread* that forked exits.
    pub fn start(
        executable: &Path,
        manifest: &TestnetManifest,
        log_filter: &str,
    ) -> Result<Network, DemoError> {
        let mut network = Network {
            nodes: Vec::new(),
            process_group: None,
            stopped: false,
        };
        let parent = std::process::id() as i32;
        for node in &manifest.nodes {
            let log_path = node.home.join("node.log");
            let io_error = |source| DemoError::Io {
                action: "create",
                path: log_path.clone(),
                source,
            };
            let log = File::create(&log_path).map_err(io_error)?;
            let log_err = log.try_clone().map_err(io_error)?;
            let mut command = Command::new(executable);
            command
                .args(["node", "start", "--home"])
                .arg(&node.home)
                .env("RUST_LOG", log_filter)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .process_group(network.process_group.unwrap_or(0));
            // SAFETY: the closure runs in the forked child before exec and
            // calls only async-signal-safe functions (prctl, getppid, _exit).
            unsafe {
                command.pre_exec(move || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    // The demo died between fork and prctl: do not outlive it.
                    if libc::getppid() != parent {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
            let child = command.spawn().map_err(|source| DemoError::Spawn {
                department: node.department.clone(),
                source,
            })?;
            let pid = child.id();
            if network.process_group.is_none() {
                network.process_group = Some(pid as i32);
            }
            network.nodes.push(NodeChild {
                department: node.department.clone(),
                api_url: node.api_url.clone(),
                log_path,
                pid,
                child,
                exited: None,
            });
        }
        Ok(network)
    }

    /// The first node that has exited on its own, if any.
    pub fn exited_node(&mut self) -> Option<(String, ExitStatus, String)> {
        for node in &mut self.nodes {
            if node.exited.is_none() {
                if let Ok(Some(status)) = node.child.try_wait() {
                    node.exited = Some(status);
                    return Some((node.department.clone(), status, log_tail(&node.log_path)));
                }
            }
        }
        None
    }

    /// Waits until every node answers its status, sees all the others and
    /// has committed a block.
    pub async fn wait_healthy(&mut self) -> Result<u64, DemoError> {
        let http = custody_node::client::http_client(None, Some(Duration::from_secs(5)))
            .map_err(|error| DemoError::Http(error.to_string()))?;
        let peers_wanted = self.nodes.len().saturating_sub(1);
        let deadline = Instant::now() + Duration::from_millis(HEALTHY_TIMEOUT_MS);
        let mut seen: Vec<String> = Vec::new();
        loop {
            if let Some((department, status, log)) = self.exited_node() {
                return Err(DemoError::NodeExited {
                    department,
                    status: status.to_string(),
                    log,
                });
            }
            seen.clear();
            let mut height_min = u64::MAX;
            for node in &self.nodes {
                let url = format!("{}/v1/status", node.api_url);
                let answer = match http.get(&url).send().await {
                    Ok(response) => response.json::<StatusResponse>().await.ok(),
                    Err(_) => None,
                };
                match answer {
                    Some(status) => {
                        seen.push(format!(
                            "{}: height {}, {} peers",
                            node.department,
                            status.height,
                            status.peers.len()
                        ));
                        if status.peers.len() >= peers_wanted {
                            height_min = height_min.min(status.height);
                        } else {
                            height_min = 0;
                        }
                    }
                    None => {
                        seen.push(format!("{}: not answering yet", node.department));
                        height_min = 0;
                    }
                }
            }
            if height_min >= 1 && height_min != u64::MAX {
                return Ok(height_min);
            }
            if Instant::now() >= deadline {
                return Err(DemoError::NotHealthy {
                    seconds: HEALTHY_TIMEOUT_MS / 1000,
                    seen: seen.join("; "),
                });
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
    }

    /// Stops every node: SIGTERM, then SIGKILL after `grace`; reaps them
    /// all. Returns each node's exit status (None if it had to be killed).
    pub fn stop(&mut self, grace: Duration) -> Vec<(String, Option<ExitStatus>)> {
        if self.stopped {
            return Vec::new();
        }
        self.stopped = true;
        for node in &mut self.nodes {
            if node.exited.is_none() {
                if let Ok(Some(status)) = node.child.try_wait() {
                    node.exited = Some(status);
                } else {
                    send_signal(node.pid as i32, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + grace;
        let mut results = Vec::new();
        for node in &mut self.nodes {
            let status = loop {
                if let Some(status) = node.exited {
                    break Some(status);
                }
                match node.child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = node.child.kill();
                        let _ = node.child.wait();
                        break None;
                    }
                }
            };
            node.exited = status;
            results.push((node.department.clone(), status));
        }
        results
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.stop(Duration::from_millis(STOP_GRACE_MS));
    }
}
