//! Multi-process test harness: real `custody` processes on loopback.
//!
//! A [`Testnet`] runs `custody testnet init` into a temporary directory on
//! free ports, starts and stops nodes from the built binary, and kills every
//! process it started when dropped, so a failing test leaves nothing
//! running. Waiting is always for a condition with a deadline; on timeout
//! the last thing seen and the tail of every node's log are printed.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_custody");

pub struct NodeProcess {
    pub department: String,
    pub home: PathBuf,
    pub api_url: String,
    pub log_path: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl NodeProcess {
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn start(&mut self) {
        assert!(!self.is_running(), "{} is already running", self.department);
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open node log");
        let log_err = log.try_clone().expect("clone log handle");
        let child = Command::new(BINARY)
            .args(["node", "start", "--home"])
            .arg(&self.home)
            .env(
                "RUST_LOG",
                std::env::var("CUSTODY_TEST_LOG").unwrap_or_else(|_| "info".to_string()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("spawn custody node");
        self.child = Some(child);
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL after the deadline).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "TERM");
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(
                            status.success(),
                            "{} exited with {status} after SIGTERM; log:\n{}",
                            self.department,
                            tail(&self.log_path, 30)
                        );
                        return;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "{} did not stop within 15 s of SIGTERM; log:\n{}",
                            self.department,
                            tail(&self.log_path, 30)
                        );
                    }
                }
            }
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

pub struct Testnet {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeProcess>,
    /// The first `genesis_nodes` of `nodes` are the genesis departments'.
    pub genesis_nodes: usize,
}

/// A base port such that BASE..BASE+2n are all free on loopback now.
fn free_base_port(count: u16) -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let mut candidate = 20_000 + (seed % 20_000) as u16;
    for _ in 0..200 {
        let all_free = (0..count).all(|offset| {
            TcpListener::bind(("127.0.0.1", candidate + offset)).is_ok()
                && TcpListener::bind(("0.0.0.0", candidate + offset)).is_ok()
        });
        if all_free {
            return candidate;
        }
        candidate = 20_000 + (candidate + 97 - 20_000) % 40_000;
    }
    panic!("no free range of {count} ports found on loopback");
}

impl Testnet {
    /// Generates an `n`-department network (not started).
    pub fn init(n: usize) -> Testnet {
        Testnet::init_joining(n, 0)
    }

    /// Generates an `n`-department network and `joining` more departments
    /// that are not in the genesis (not started); their nodes come last in
    /// `nodes`, and each home holds `contribution.json` for `add-department`.
    pub fn init_joining(n: usize, joining: usize) -> Testnet {
        let dir = tempfile::tempdir().expect("tempdir");
        let base_port = free_base_port(2 * (n + joining) as u16);
        let output = Command::new(BINARY)
            .args(["testnet", "init", "--fast", "--departments"])
            .arg(n.to_string())
            .arg("--joining")
            .arg(joining.to_string())
            .arg("--dir")
            .arg(dir.path())
            .arg("--base-port")
            .arg(base_port.to_string())
            .output()
            .expect("run custody testnet init");
        assert!(
            output.status.success(),
            "testnet init failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("testnet.json")).expect("testnet.json"),
        )
        .expect("testnet.json parses");
        let mut nodes = Vec::new();
        let joining_entries = manifest["joining"].as_array().cloned().unwrap_or_default();
        let entries = manifest["nodes"].as_array().expect("nodes array");
        for entry in entries.iter().chain(joining_entries.iter()) {
            let department = entry["department"]
                .as_str()
                .expect("department")
                .to_string();
            let home = dir.path().join(&department);
            nodes.push(NodeProcess {
                log_path: dir.path().join(format!("{department}.log")),
                api_url: entry["api_url"].as_str().expect("api_url").to_string(),
                department,
                home,
                child: None,
                starts: 0,
            });
        }
        Testnet {
            dir,
            nodes,
            genesis_nodes: n,
        }
    }

    /// Starts the nodes of the genesis departments.
    pub fn start_all(&mut self) {
        for node in self.nodes.iter_mut().take(self.genesis_nodes) {
            node.start();
        }
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!(
                "----- {} ({}) -----\n{}\n",
                node.department,
                node.log_path.display(),
                tail(&node.log_path, 25)
            ));
        }
        out
    }

    /// The key file of the auditor every node's `api.auditor_keys` names.
    pub fn auditor_key_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(custody_node::testnet::TESTNET_AUDITOR_KEY_FILE)
    }

    /// The auditor every node's `api.auditor_keys` names.
    pub fn auditor_key(&self) -> ed25519_dalek::SigningKey {
        let secret = custody_node::home::read_key_file(&self.auditor_key_path())
            .expect("the testnet's auditor key");
        ed25519_dalek::SigningKey::from_bytes(&secret)
    }

    /// A client of node `index` that signs its reads as the auditor.
    pub fn client(&self, index: usize) -> custody_node::client::Client {
        custody_node::client::Client::new(self.nodes[index].api_url.clone())
            .signed_by(self.auditor_key())
    }

    /// [`get_json`], signed as the auditor: for the routes that answer
    /// records only to a signed caller.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        get_json_as(url, &self.auditor_key()).await
    }

    /// The `x-custody-auth` header for `method url`, signed as the auditor.
    pub async fn auth_header(&self, method: &str, url: &str) -> (&'static str, String) {
        auth_header_as(method, url, &self.auditor_key())
            .await
            .expect("a signed header")
    }

    /// Adds a twin of node `index` (not started): a second node holding the
    /// same validator key, with a node key of its own, on the next two
    /// ports after the network's. Every genesis node is told to accept it
    /// as an observer (its node key is no department's), so its votes
    /// reach everyone: the department's validator then signs twice in
    /// rounds where the two disagree (as when it proposes: each twin
    /// proposes its own block and prevotes it). Returns the twin's index
    /// in `nodes`. Call before the nodes start (observers are read at
    /// start).
    pub fn add_twin(&mut self, index: usize) -> usize {
        let original = &self.nodes[index];
        let department = original.department.clone();
        let twin_name = format!("{department}-twin");
        let twin_home = self.dir.path().join(&twin_name);
        let keys = twin_home.join("keys");
        std::fs::create_dir_all(&keys).expect("twin keys folder");
        std::fs::copy(
            original.home.join("keys/validator.key"),
            keys.join("validator.key"),
        )
        .expect("copy the validator key");
        std::fs::copy(
            original.home.join("genesis.json"),
            twin_home.join("genesis.json"),
        )
        .expect("copy the genesis");
        let mut seed = [0u8; 32];
        seed[..twin_name.len().min(32)]
            .copy_from_slice(&twin_name.as_bytes()[..twin_name.len().min(32)]);
        seed[31] ^= 0x5a;
        custody_node::home::write_key_file(&keys.join("node.key"), &seed)
            .expect("write the twin's node key");
        let node_public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let twin_peer = custody_node::network::peer_id_from_ed25519_public(node_public)
            .expect("twin peer id")
            .to_string();

        // Ports: the network's are base..base+2n; the twin takes the next two.
        let top_port = self
            .nodes
            .iter()
            .filter_map(|node| node.api_url.rsplit(':').next()?.parse::<u16>().ok())
            .max()
            .expect("an api port");
        let (p2p_port, api_port) = (top_port + 1, top_port + 2);
        for port in [p2p_port, api_port] {
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} for the twin is taken"
            );
        }

        let config_text =
            std::fs::read_to_string(original.home.join("config.toml")).expect("config");
        let mut config: toml::Table = config_text.parse().expect("config parses");
        // The original's own listen address becomes one of the twin's peers.
        let original_listen = config["network"]["listen"][0]
            .as_str()
            .expect("listen address")
            .to_string();
        let original_key = custody_node::home::read_key_file(&original.home.join("keys/node.key"))
            .expect("original node key");
        let original_public = ed25519_dalek::SigningKey::from_bytes(&original_key)
            .verifying_key()
            .to_bytes();
        let original_peer = custody_node::network::peer_id_from_ed25519_public(original_public)
            .expect("original peer id")
            .to_string();
        {
            let network = config["network"].as_table_mut().expect("network table");
            network.insert(
                "listen".to_string(),
                toml::Value::Array(vec![toml::Value::String(format!(
                    "/ip4/127.0.0.1/tcp/{p2p_port}"
                ))]),
            );
            let peers = network["peers"].as_array_mut().expect("peers");
            let mut entry = toml::Table::new();
            entry.insert("peer_id".to_string(), toml::Value::String(original_peer));
            entry.insert("address".to_string(), toml::Value::String(original_listen));
            peers.push(toml::Value::Table(entry));
        }
        config["api"].as_table_mut().expect("api table").insert(
            "listen".to_string(),
            toml::Value::String(format!("127.0.0.1:{api_port}")),
        );
        std::fs::write(twin_home.join("config.toml"), config.to_string()).expect("twin config");

        for node in self.nodes.iter().take(self.genesis_nodes) {
            let path = node.home.join("config.toml");
            let text = std::fs::read_to_string(&path).expect("config");
            let mut config: toml::Table = text.parse().expect("config parses");
            let network = config["network"].as_table_mut().expect("network table");
            let mut observers = network
                .get("observers")
                .and_then(|o| o.as_array().cloned())
                .unwrap_or_default();
            observers.push(toml::Value::String(twin_peer.clone()));
            network.insert("observers".to_string(), toml::Value::Array(observers));
            std::fs::write(&path, config.to_string()).expect("write config");
        }

        self.nodes.push(NodeProcess {
            log_path: self.dir.path().join(format!("{twin_name}.log")),
            api_url: format!("http://127.0.0.1:{api_port}"),
            department: twin_name,
            home: twin_home,
            child: None,
            starts: 0,
        });
        self.nodes.len() - 1
    }

    /// The member key file of a department's first admin or clerk.
    pub fn member_key(&self, department: &str, role: &str) -> PathBuf {
        self.dir
            .path()
            .join(department)
            .join("members")
            .join(format!("{role}.key"))
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if std::thread::panicking() {
            eprintln!("node logs at failure:\n{}", self.logs());
            if std::env::var_os("CUSTODY_TEST_KEEP").is_some() {
                let kept = self.dir.path().to_path_buf();
                eprintln!("keeping {}", kept.display());
                std::mem::forget(std::mem::replace(
                    &mut self.dir,
                    tempfile::tempdir().expect("tempdir"),
                ));
            }
        }
    }
}

/// Polls `check` until it returns `Ok`, or panics after `timeout` with the
/// last thing it reported and the node logs.
pub async fn wait_for<T, F, Fut>(
    testnet: &Testnet,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("(never checked)");
    while Instant::now() < deadline {
        match check().await {
            Ok(value) => return value,
            Err(seen) => last = seen,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out after {timeout:?} waiting for {what}; last seen: {last}\n{}",
        testnet.logs()
    );
}

/// Runs the `custody` binary and returns (success, stdout, stderr).
pub fn custody(args: &[&str]) -> (bool, String, String) {
    custody_env(args, &[])
}

/// [`custody`] with environment variables set for the process.
pub fn custody_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run custody");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A node process a test starts itself, outside a [`Testnet`]'s control
/// (to set its file limit, or to see its exit status); killed when dropped.
pub struct OwnNode {
    child: Option<Child>,
    pub log_path: PathBuf,
}

impl OwnNode {
    /// Starts `custody node start --home HOME`, logging to `log_path`,
    /// with at most `files_max` open files when given.
    pub fn start(home: &Path, log_path: &Path, files_max: Option<u64>) -> OwnNode {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("open node log");
        let log_err = log.try_clone().expect("clone log handle");
        let mut command = match files_max {
            // `exec` keeps the node the shell's process: its pid, signals
            // and exit status are the node's.
            Some(files_max) => {
                let mut command = Command::new("bash");
                command
                    .arg("-c")
                    .arg(format!(
                        "ulimit -n {files_max} && exec \"$0\" node start --home \"$1\""
                    ))
                    .arg(BINARY)
                    .arg(home);
                command
            }
            None => {
                let mut command = Command::new(BINARY);
                command.args(["node", "start", "--home"]).arg(home);
                command
            }
        };
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("spawn custody node");
        OwnNode {
            child: Some(child),
            log_path: log_path.to_path_buf(),
        }
    }

    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for OwnNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Bound on each request of [`get`].
pub const REQUEST_TIMEOUT_MS: u64 = 2_000;

/// `(status code, body)` of a GET on a fresh connection.
pub async fn get(url: &str) -> Result<(u16, String), String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
        .build()
        .map_err(|error| error.to_string())?;
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|error| error.to_string())?;
    Ok((status, body))
}

/// Waits until `/readyz` of node `index` answers `status`, and returns its
/// body; panics after `timeout` with the last answer seen and the logs.
pub async fn wait_readyz(
    testnet: &Testnet,
    index: usize,
    status: u16,
    what: &str,
    timeout: Duration,
) -> String {
    let readyz = format!("{}/readyz", testnet.nodes[index].api_url);
    wait_for(testnet, what, timeout, || async {
        match get(&readyz).await? {
            (seen, body) if seen == status => Ok(body),
            (seen, body) => Err(format!("{seen} {body}")),
        }
    })
    .await
}

/// GETs `url` and returns its JSON body, or the body as text when the node
/// answered with an error status.
pub async fn get_json(url: &str) -> Result<serde_json::Value, String> {
    let response = reqwest::get(url).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let value: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(value)
    } else {
        Err(value.to_string())
    }
}

/// GETs `url` signed by `key` (the `x-custody-auth` header) and returns
/// its JSON body, or the body as text when the node refused.
pub async fn get_json_as(
    url: &str,
    key: &ed25519_dalek::SigningKey,
) -> Result<serde_json::Value, String> {
    let (status, value) = get_signed(url, Some(key)).await?;
    if (200..300).contains(&status) {
        Ok(value)
    } else {
        Err(value.to_string())
    }
}

/// The `x-custody-auth` header for `method url` signed by `key`, on the
/// chain the node at `url` runs.
pub async fn auth_header_as(
    method: &str,
    url: &str,
    key: &ed25519_dalek::SigningKey,
) -> Result<(&'static str, String), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let status_url = format!("{}/v1/status", parsed.origin().ascii_serialization());
    let chain_id = get_json(&status_url).await?["chain_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let header = custody_ledger::caller::api_auth_header(
        key,
        &chain_id,
        method,
        &custody_node::client::path_and_query_of(url),
        custody_node::testnet::now_ms(),
    );
    Ok((custody_ledger::caller::API_AUTH_HEADER, header))
}

/// `(status, JSON body)` of a GET of `url`, signed by `key` when given.
pub async fn get_signed(
    url: &str,
    key: Option<&ed25519_dalek::SigningKey>,
) -> Result<(u16, serde_json::Value), String> {
    let http = reqwest::Client::new();
    let mut request = http.get(url);
    if let Some(key) = key {
        let (name, value) = auth_header_as("GET", url, key).await?;
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let value: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    Ok((status, value))
}

/// Waits until every genesis node has committed a block and sees the other
/// genesis nodes.
pub async fn wait_until_committing(net: &Testnet, timeout: Duration) {
    let others = net.genesis_nodes.saturating_sub(1);
    for node in net.nodes.iter().take(net.genesis_nodes) {
        let url = format!("{}/v1/status", node.api_url);
        wait_for(net, "every node to commit a block", timeout, || {
            let url = url.clone();
            async move {
                let status = get_json(&url).await?;
                if status["height"].as_u64().unwrap_or(0) >= 1
                    && status["peers"].as_array().map(Vec::len) == Some(others)
                {
                    Ok(())
                } else {
                    Err(status.to_string())
                }
            }
        })
        .await;
    }
}

/// Runs `custody doc ARGS --json` as department `index`'s clerk, with the
/// trial network's department key.
pub fn doc_as(net: &Testnet, index: usize, args: &[&str]) -> (bool, serde_json::Value, String) {
    doc_with_key(
        net,
        index,
        &net.nodes[index].home.join("members/department.key"),
        args,
    )
}

/// [`doc_as`] with another department key file.
pub fn doc_with_key(
    net: &Testnet,
    index: usize,
    department_key: &Path,
    args: &[&str],
) -> (bool, serde_json::Value, String) {
    let node = &net.nodes[index];
    let output = Command::new(BINARY)
        .arg("doc")
        .args(args)
        .arg("--json")
        .arg("--node")
        .arg(&node.api_url)
        .arg("--key")
        .arg(net.member_key(&node.department, "clerk"))
        .arg("--department-key")
        .arg(department_key)
        .output()
        .expect("run custody doc");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let value = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (output.status.success(), value, stderr)
}

/// [`doc_as`], failing the test (with every node's log) unless it succeeds.
pub fn doc_ok(net: &Testnet, index: usize, args: &[&str]) -> serde_json::Value {
    let (ok, value, stderr) = doc_as(net, index, args);
    assert!(ok, "custody doc {args:?} failed: {stderr}\n{}", net.logs());
    value
}

/// The `x-custody-upload` header of `key` storing `sha256` of `size_bytes`
/// on node `index`.
pub async fn signed_upload(
    net: &Testnet,
    index: usize,
    key: &ed25519_dalek::SigningKey,
    sha256: [u8; 32],
    size_bytes: u64,
) -> String {
    use custody_ledger::reads::{BlobUpload, SignedBlobUpload, BLOB_UPLOAD_VERSION};
    let status = custody_node::client::Client::new(net.nodes[index].api_url.clone())
        .status()
        .await
        .expect("status");
    let time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    SignedBlobUpload::sign(
        BlobUpload {
            format_version: BLOB_UPLOAD_VERSION,
            chain_id: status.chain_id,
            member: custody_ledger::types::PublicKey(key.verifying_key().to_bytes()),
            sha256: custody_ledger::types::Hash32(sha256),
            size_bytes,
            time_ms,
        },
        key,
    )
    .to_header()
}
