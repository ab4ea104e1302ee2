//! `custody-harness bench load`: a local four-node network under signed load.
//!
//! 1. Measures the machine's limit first, in the same run: the ed25519
//!    batch-verification rate of one core on real transactions, times the
//!    cores, divided by the four nodes (each node checks every transaction).
//!    The rate is measured again once the nodes have stopped, and the ratio
//!    uses the mean of the two: on a shared virtual machine one core's rate
//!    was seen to drift by a third within half a minute, so a single
//!    reading taken before the run can be far from the speed during it.
//! 2. Generates a four-department network with `testnet::generate` (the
//!    code behind `custody testnet init`) and starts one `custody node
//!    start` process per department; they are killed when the bench ends.
//! 3. Enrolls one admin per client. Each client's `EnrollMember`
//!    transactions are signed before the clock starts, on all cores, enough
//!    for half the machine limit (more are signed on the fly if a client
//!    runs out): clients stand for clerks on other machines, so their
//!    signing must not take CPU from the nodes being measured. Each client
//!    task then submits to "its" node without waiting, keeping at most a
//!    window of transactions in flight. A watcher follows node 0's
//!    committed blocks and records when each transaction was committed.
//! 4. Prints committed tx/s over the measured window, p50/p99
//!    submit-to-commit latency, the limit and the ratio.
//! 5. Reads each node process's own CPU time (`/proc/PID/stat`) at the
//!    start and end of the measured window and prints the nodes' CPU
//!    microseconds per committed transaction per node, and the same less
//!    the verification cost measured in step 1: the part of a node's work
//!    per transaction that is not signature checking.
//!
//! With `--rate`, the clients offer a fixed total rate instead of keeping
//! their window full, so latency can be read below saturation (for
//! instance at half the saturating throughput).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{Classification, DepartmentId, Nonce, PublicKey, Role, TxId};
use custody_node::client::{Client, ClientError};
use custody_node::testnet::{generate, TestnetOptions};

mod anomalies;
mod live_cost;

/// Nodes in the bench network.
const BENCH_NODES: usize = 4;
/// Transactions per batch when measuring the verification rate.
const VERIFY_BATCH_TXS: usize = 256;
/// How long the verification rate is measured.
const VERIFY_MEASURE_MS: u64 = 1_500;
/// How often the watcher asks node 0 for new blocks.
const WATCH_INTERVAL_MS: u64 = 20;
/// The transactions signed in advance cover this share of the machine
/// limit for the whole run.
const PRESIGNED_SHARE_OF_LIMIT: f64 = 0.5;
/// Warm-up before the measured window.
const WARMUP_SECONDS: u64 = 2;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Start a local four-node network, drive it with signed transactions
    /// from several clients for a fixed time, and print committed tx/s,
    /// submit-to-commit latency, the nodes' CPU per transaction and the
    /// machine's limit measured in the same run.
    ///
    /// Examples:
    ///   custody-harness bench load                      # saturating load, 20 s
    ///   custody-harness bench load --rate 3000 --json   # latency at 3,000 tx/s offered
    ///   custody-harness bench load --node-binary old/custody   # the same bench against another build
    Load(LoadOptions),
    /// Score the oversight detector on a labelled workload (precision and
    /// recall per rule, false-positive rate) and time it beside the
    /// ledger's replay of real transactions.
    ///
    /// Example:
    ///   custody-harness bench anomalies --seed 2026 --days 150
    Anomalies(anomalies::AnomalyOptions),
}

/// How `custody-harness bench load` drives the network. The defaults are the
/// settings `docs/performance.md` reports.
#[derive(Args, Clone, Debug)]
pub struct LoadOptions {
    /// How long to drive load, in seconds (after a short warm-up).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Concurrent client tasks (each signs as its own member).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Transactions per request: 1 posts each to `/v1/transactions`,
    /// more posts them together to `/v1/transactions/batch`.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Transactions one client may have submitted and not yet seen
    /// committed; submissions pause when it is reached.
    #[arg(long, default_value_t = 1000)]
    pub window: u64,
    /// `consensus.block_interval_ms` of the bench nodes: the pause after a
    /// commit before the next proposal. Under steady load the mempool
    /// already holds more than a block, so the default proposes at once.
    #[arg(long, default_value_t = 0)]
    pub block_interval_ms: u64,
    /// Offer this many transactions per second in total (spread evenly
    /// over the clients) instead of as many as the window allows; the
    /// window still caps what is in flight. Use it to measure latency
    /// below saturation, e.g. at half the throughput of a run without it.
    #[arg(long, value_name = "TX_PER_S")]
    pub rate: Option<f64>,
    /// Run the nodes from this binary (a `custody` build, or anything with
    /// `node start --home`) instead of this one, to
    /// compare two builds under the same bench on the same machine.
    #[arg(long, value_name = "PATH")]
    pub node_binary: Option<PathBuf>,
    /// Keep the network's directory (logs, stores) at this path.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: BenchCommand) -> Result<(), String> {
    match command {
        BenchCommand::Anomalies(options) => anomalies::run(options),
        BenchCommand::Load(options) => {
            let options = LoadOptions {
                clients: options.clients.max(1),
                batch: options.batch.max(1),
                window: options.window.max(1),
                ..options
            };
            let limit = measure_limit()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(load(options, limit))
        }
    }
}

#[derive(Clone, Copy)]
struct Limit {
    verify_per_core_per_second: f64,
    cores: usize,
}

impl Limit {
    /// Every node checks every transaction.
    fn tx_per_second(&self) -> f64 {
        self.verify_per_core_per_second * self.cores as f64 / BENCH_NODES as f64
    }

    fn mean(&self, other: &Limit) -> Limit {
        Limit {
            verify_per_core_per_second: (self.verify_per_core_per_second
                + other.verify_per_core_per_second)
                / 2.0,
            cores: self.cores,
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn sample_transactions(count: usize) -> Vec<SignedTransaction> {
    let key = ed25519_dalek::SigningKey::from_bytes(&custody_node::home::random_bytes::<32>());
    (0..count)
        .map(|index| {
            let (tx, _) = enroll(&key, "civil-affairs", index as u64 + 1, "custody-bench");
            tx
        })
        .collect()
}

fn measure_limit() -> Result<Limit, String> {
    let transactions = sample_transactions(VERIFY_BATCH_TXS);
    if !custody_ledger::tx::verify_batch(&transactions).is_empty() {
        return Err("the sample transactions do not verify".to_string());
    }
    let started = Instant::now();
    let mut verified = 0u64;
    while started.elapsed() < Duration::from_millis(VERIFY_MEASURE_MS) {
        let bad = custody_ledger::tx::verify_batch(&transactions);
        debug_assert!(bad.is_empty());
        verified += transactions.len() as u64;
    }
    Ok(Limit {
        verify_per_core_per_second: verified as f64 / started.elapsed().as_secs_f64(),
        cores: cores(),
    })
}

fn enroll(
    key: &ed25519_dalek::SigningKey,
    department: &str,
    nonce: u64,
    chain_id: &str,
) -> (SignedTransaction, PublicKey) {
    let member_secret = custody_node::home::random_bytes::<32>();
    let member = PublicKey(
        ed25519_dalek::SigningKey::from_bytes(&member_secret)
            .verifying_key()
            .to_bytes(),
    );
    let department = DepartmentId::new(department.to_string())
        .unwrap_or_else(|_| unreachable!("bench department slugs are valid"));
    let body = TxBody::EnrollMember {
        member,
        department,
        name: format!("bench member {nonce}"),
        roles: vec![Role::Clerk],
        clearance: Classification::Internal,
    };
    (
        SignedTransaction::sign(body, key, Nonce(nonce), chain_id),
        member,
    )
}

/// Signs `per_client` transactions (nonces 1..=per_client) for every
/// client, the clients shared out over all cores.
fn presign(
    signers: &[(ed25519_dalek::SigningKey, String, usize)],
    per_client: u64,
    chain_id: &str,
) -> Vec<Vec<SignedTransaction>> {
    let clients_per_thread = signers.len().div_ceil(cores()).max(1);
    std::thread::scope(|scope| {
        let threads: Vec<_> = signers
            .chunks(clients_per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(key, department, _)| {
                            (1..=per_client)
                                .map(|nonce| enroll(key, department, nonce, chain_id).0)
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

struct Nodes {
    children: Vec<Child>,
}

impl Nodes {
    /// User plus system CPU time of all node processes so far, in seconds,
    /// from the kernel's own accounting of each process.
    fn cpu_seconds(&self) -> Result<f64, String> {
        self.children
            .iter()
            .map(|child| process_cpu_seconds(child.id()))
            .sum()
    }
}

/// User plus system CPU time of a running process, from `/proc/PID/stat`.
fn process_cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read a node's CPU time from {path}: {error}"))?;
    let ticks = cpu_ticks_of_stat(&stat).map_err(|error| format!("{path}: {error}"))?;
    // SAFETY: sysconf only reads a system constant.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        return Err("the system's clock tick rate is unknown".to_string());
    }
    Ok(ticks as f64 / ticks_per_second as f64)
}

/// utime + stime (fields 14 and 15, in clock ticks) of a `/proc/PID/stat`
/// line. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn cpu_ticks_of_stat(stat: &str) -> Result<u64, String> {
    let (_, after_name) = stat
        .rsplit_once(')')
        .ok_or_else(|| "no command name in parentheses".to_string())?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3 (the state): utime is at 11, stime at 12.
    let field = |index: usize| -> Result<u64, String> {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
            .ok_or_else(|| format!("field {} is missing or not a number", index + 3))
    };
    Ok(field(11)? + field(12)?)
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_base_port(count: u16) -> Result<u16, String> {
    let mut candidate = 40_000 + (std::process::id() % 10_000) as u16;
    for _ in 0..200 {
        if (0..count).all(|offset| TcpListener::bind(("127.0.0.1", candidate + offset)).is_ok()) {
            return Ok(candidate);
        }
        candidate = 40_000 + (candidate - 40_000 + 101) % 20_000;
    }
    Err("no free range of ports on loopback".to_string())
}

fn start_nodes(dir: &Path, homes: &[PathBuf], binary: Option<&Path>) -> Result<Nodes, String> {
    let exe = match binary {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe().map_err(|error| error.to_string())?,
    };
    let mut nodes = Nodes {
        children: Vec::new(),
    };
    for home in homes {
        let name = home
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = std::fs::File::create(dir.join(format!("{name}.log")))
            .map_err(|error| error.to_string())?;
        let log_err = log.try_clone().map_err(|error| error.to_string())?;
        let child = Command::new(&exe)
            .args(["node", "start", "--home"])
            .arg(home)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_string()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|error| format!("cannot start a node from {}: {error}", exe.display()))?;
        nodes.children.push(child);
    }
    Ok(nodes)
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("timed out waiting for {what}"))
}

#[derive(Default)]
struct Record {
    submitted: HashMap<TxId, Instant>,
    /// (commit time, submit-to-commit latency) of bench transactions.
    committed: Vec<(Instant, Duration)>,
    /// (commit time, transactions in the block) for every block seen.
    blocks: Vec<(Instant, usize)>,
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn load(options: LoadOptions, limit: Limit) -> Result<(), String> {
    let LoadOptions {
        seconds,
        clients: client_count,
        batch: batch_txs,
        window,
        block_interval_ms,
        rate,
        node_binary,
        keep,
        json,
    } = options;
    if let Some(rate) = rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "--rate must be a positive number of transactions per second, not {rate}"
            ));
        }
    }
    // Each client offers an equal share of the total rate.
    let rate_per_client = rate.map(|rate| rate / client_count as f64);
    let temporary = tempfile::tempdir().map_err(|error| error.to_string())?;
    let dir = match &keep {
        Some(path) => path.clone(),
        None => temporary.path().to_path_buf(),
    };
    let base_port = free_base_port(2 * BENCH_NODES as u16)?;
    let chain_id = "custody-bench".to_string();
    let manifest = generate(&TestnetOptions {
        departments: BENCH_NODES,
        dir: dir.clone(),
        base_port,
        fast: true,
        chain_id: chain_id.clone(),
        joining: 0,
        governors: false,
    })
    .map_err(|error| error.to_string())?;
    let homes: Vec<PathBuf> = manifest.nodes.iter().map(|n| n.home.clone()).collect();
    // Under load, a longer pause after each commit gathers bigger blocks,
    // spreading each block's fixed cost (votes, fsyncs) over more
    // transactions.
    for home in &homes {
        let path = home.join("config.toml");
        let mut config =
            custody_node::config::NodeConfig::load(&path).map_err(|e| e.to_string())?;
        config.consensus.block_interval_ms = block_interval_ms;
        config.save(&path).map_err(|e| e.to_string())?;
    }
    let nodes = start_nodes(&dir, &homes, node_binary.as_deref())?;
    let auditor = custody_cli::tx::read_signing_key(
        &dir.join(custody_node::testnet::TESTNET_AUDITOR_KEY_FILE),
        None,
    )?;
    let clients: Vec<Client> = manifest
        .nodes
        .iter()
        .map(|n| Client::new(n.api_url.clone()).signed_by(auditor.clone()))
        .collect();
    wait_until(
        "all four nodes to commit a block",
        Duration::from_secs(60),
        || {
            let clients = clients.clone();
            async move {
                for client in &clients {
                    match client.status().await {
                        Ok(status) if status.height >= 1 => {}
                        _ => return false,
                    }
                }
                true
            }
        },
    )
    .await?;

    // One fresh admin per client, enrolled by its department's first admin.
    let mut signers = Vec::new();
    let mut admin_nonces = [0u64; BENCH_NODES];
    let mut setup = Vec::new();
    for index in 0..client_count {
        let node = index % BENCH_NODES;
        let department = manifest.nodes[node].department.clone();
        let admin_path = dir.join(&department).join("members").join("admin.key");
        let admin = ed25519_dalek::SigningKey::from_bytes(
            &custody_node::home::read_key_file(&admin_path).map_err(|error| error.to_string())?,
        );
        let signer =
            ed25519_dalek::SigningKey::from_bytes(&custody_node::home::random_bytes::<32>());
        admin_nonces[node] += 1;
        let body = TxBody::EnrollMember {
            member: PublicKey(signer.verifying_key().to_bytes()),
            department: DepartmentId::new(department.clone()).map_err(|e| e.to_string())?,
            name: format!("bench client {index}"),
            roles: vec![Role::Admin],
            clearance: Classification::Secret,
        };
        setup.push((
            node,
            SignedTransaction::sign(body, &admin, Nonce(admin_nonces[node]), &chain_id),
        ));
        signers.push((signer, department, node));
    }
    for (node, tx) in &setup {
        clients[*node]
            .submit(tx, None)
            .await
            .map_err(|error| format!("setup: {error}"))?;
    }
    for (node, tx) in &setup {
        let wait = clients[*node]
            .submit(tx, Some(Duration::from_secs(30)))
            .await;
        match wait {
            Ok(_) => {}
            Err(ClientError::Refused { code, .. }) if code == "already_committed" => {}
            Err(error) => return Err(format!("setup: {error}")),
        }
    }

    // With an offered rate, that rate is all the clients will send.
    let offered = rate.unwrap_or(limit.tx_per_second() * PRESIGNED_SHARE_OF_LIMIT);
    let per_client =
        ((offered * (seconds + WARMUP_SECONDS) as f64) / client_count as f64).ceil() as u64;
    let signing_started = Instant::now();
    let pools = presign(&signers, per_client, &chain_id);
    let signing_seconds = signing_started.elapsed().as_secs_f64();
    let signed_live = Arc::new(AtomicU64::new(0));

    let record = Arc::new(Mutex::new(Record::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let committed_by_client: Arc<Vec<AtomicU64>> =
        Arc::new((0..client_count).map(|_| AtomicU64::new(0)).collect());
    let owner: Arc<Mutex<HashMap<TxId, usize>>> = Arc::new(Mutex::new(HashMap::new()));

    // The watcher: follows node 0's blocks and stamps commit times.
    let watcher = {
        let client = clients[0].clone();
        let record = record.clone();
        let stop = stop.clone();
        let owner = owner.clone();
        let committed_by_client = committed_by_client.clone();
        tokio::spawn(async move {
            let mut next = match client.status().await {
                Ok(status) => status.height + 1,
                Err(_) => 1,
            };
            while !stop.load(Ordering::Relaxed) {
                let height = match client.status().await {
                    Ok(status) => status.height,
                    Err(_) => break,
                };
                while next <= height {
                    // Canonical bytes, decoded here: the node only reads them.
                    let Ok(block) = client.raw_block(next).await else {
                        break;
                    };
                    let now = Instant::now();
                    let ids: Vec<TxId> = block.tx_ids();
                    let mut record = lock(&record);
                    record.blocks.push((now, ids.len()));
                    let owners = lock(&owner);
                    for id in ids {
                        if let Some(submitted) = record.submitted.remove(&id) {
                            record.committed.push((now, now - submitted));
                        }
                        if let Some(client_index) = owners.get(&id) {
                            committed_by_client[*client_index].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    next += 1;
                }
                tokio::time::sleep(Duration::from_millis(WATCH_INTERVAL_MS)).await;
            }
        })
    };

    let started = Instant::now();
    let warmup = Duration::from_secs(WARMUP_SECONDS);
    let total = warmup + Duration::from_secs(seconds);
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (index, ((signer, department, node), pool)) in signers.into_iter().zip(pools).enumerate() {
        let client = clients[node].clone();
        let signed_live = signed_live.clone();
        let record = record.clone();
        let stop = stop.clone();
        let owner = owner.clone();
        let committed_by_client = committed_by_client.clone();
        let chain_id = chain_id.clone();
        let refused = refused.clone();
        tasks.push(tokio::spawn(async move {
            let mut queue: std::collections::VecDeque<SignedTransaction> = pool.into();
            let mut next_nonce = per_client + 1;
            let mut submitted = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let committed = committed_by_client[index].load(Ordering::Relaxed);
                let mut room = window.saturating_sub(submitted.saturating_sub(committed));
                if let Some(rate) = rate_per_client {
                    let due = (rate * started.elapsed().as_secs_f64()) as u64;
                    room = room.min(due.saturating_sub(submitted));
                }
                if room == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let count = room.min(batch_txs) as usize;
                let mut batch: Vec<SignedTransaction> = Vec::with_capacity(count);
                while batch.len() < count {
                    match queue.pop_front() {
                        Some(tx) => batch.push(tx),
                        None => {
                            batch.push(enroll(&signer, &department, next_nonce, &chain_id).0);
                            next_nonce += 1;
                            signed_live.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let at = Instant::now();
                let answer = if batch.len() == 1 {
                    client.submit(&batch[0], None).await.map(|_| {
                        custody_node::api_types::BatchResponse {
                            results: vec![custody_node::api_types::BatchItem::pending(
                                batch[0].id(),
                            )],
                        }
                    })
                } else {
                    client.submit_batch(&batch).await
                };
                match answer {
                    Ok(answer) => {
                        // Admission stops at the first refusal: the signer's
                        // later nonces cannot follow a missing one.
                        let accepted = answer
                            .results
                            .iter()
                            .take_while(|item| item.status == "pending")
                            .count();
                        {
                            let mut record = lock(&record);
                            let mut owner = lock(&owner);
                            for tx in &batch[..accepted] {
                                let id = tx.id();
                                record.submitted.insert(id, at);
                                owner.insert(id, index);
                            }
                        }
                        submitted += accepted as u64;
                        // The rest go again, in nonce order.
                        for tx in batch[accepted..].iter().rev() {
                            queue.push_front(tx.clone());
                        }
                        if accepted < batch.len() {
                            let full = answer.results[accepted]
                                .error
                                .as_ref()
                                .is_some_and(|error| error.code == "mempool_full");
                            if !full {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    Err(error) => {
                        for tx in batch.into_iter().rev() {
                            queue.push_front(tx);
                        }
                        let full = matches!(&error, ClientError::Refused { code, .. } if code == "mempool_full");
                        if !full {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(warmup).await;
    let cpu_at_window_start = nodes.cpu_seconds()?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu_at_window_end = nodes.cpu_seconds()?;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let _ = watcher.await;
    drop(nodes);
    let limit_after = measure_limit()?;
    let mean = limit.mean(&limit_after);

    let window_start = started + warmup;
    let window_end = started + total;
    let record = lock(&record);
    let in_window = |at: &Instant| *at >= window_start && *at <= window_end;
    let committed_in_window: usize = record
        .blocks
        .iter()
        .filter(|(at, _)| in_window(at))
        .map(|(_, count)| *count)
        .sum();
    let tx_per_second = committed_in_window as f64 / seconds.max(1) as f64;
    let mut latencies: Vec<Duration> = record
        .committed
        .iter()
        .filter(|(at, _)| in_window(at))
        .map(|(_, latency)| *latency)
        .collect();
    latencies.sort();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let ratio = tx_per_second / mean.tx_per_second();
    let blocks_in_window = record.blocks.iter().filter(|(at, _)| in_window(at)).count();
    let node_cpu_seconds = cpu_at_window_end - cpu_at_window_start;
    // Every node handles every committed transaction.
    let cpu_us_per_tx_per_node =
        node_cpu_seconds * 1e6 / (committed_in_window.max(1) as f64 * BENCH_NODES as f64);
    let verify_us_per_tx = 1e6 / mean.verify_per_core_per_second;
    let cpu_us_per_tx_per_node_less_verify = cpu_us_per_tx_per_node - verify_us_per_tx;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "seconds": seconds,
                "clients": client_count,
                "batch": batch_txs,
                "window": window,
                "block_interval_ms": block_interval_ms,
                "offered_tx_per_second": rate,
                "node_binary": node_binary.as_ref().map(|path| path.display().to_string()),
                "node_cpu_seconds": node_cpu_seconds,
                "node_cpu_us_per_tx_per_node": cpu_us_per_tx_per_node,
                "verify_us_per_tx": verify_us_per_tx,
                "node_cpu_us_per_tx_per_node_less_verify": cpu_us_per_tx_per_node_less_verify,
                "committed_transactions": committed_in_window,
                "blocks": blocks_in_window,
                "committed_tx_per_second": tx_per_second,
                "latency_p50_ms": p50.as_secs_f64() * 1e3,
                "latency_p99_ms": p99.as_secs_f64() * 1e3,
                "verify_per_core_per_second": mean.verify_per_core_per_second,
                "cores": mean.cores,
                "limit_tx_per_second": mean.tx_per_second(),
                "limit_before_tx_per_second": limit.tx_per_second(),
                "limit_after_tx_per_second": limit_after.tx_per_second(),
                "ratio": ratio,
                "refused_submissions": refused.load(Ordering::Relaxed),
                "presigned_transactions": per_client * client_count as u64,
                "presign_seconds": signing_seconds,
                "signed_during_run": signed_live.load(Ordering::Relaxed),
            })
        );
    } else {
        println!("custody-harness bench load: 4 nodes, {client_count} clients, {batch_txs} tx per request, window {window}, block interval {block_interval_ms} ms, {seconds} s measured (after {WARMUP_SECONDS} s warm-up)");
        println!(
            "  committed        {committed_in_window} transactions in {blocks_in_window} blocks"
        );
        match rate {
            Some(rate) => {
                println!("  throughput       {tx_per_second:.0} tx/s (offered {rate:.0} tx/s)")
            }
            None => println!("  throughput       {tx_per_second:.0} tx/s"),
        }
        println!(
            "  latency          p50 {:.0} ms, p99 {:.0} ms (submit to commit seen at node 0)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        println!(
            "  machine limit    {:.0} tx/s = {:.0} ed25519 verifications/s/core (batch) x {} cores / {BENCH_NODES} nodes",
            mean.tx_per_second(), mean.verify_per_core_per_second, mean.cores
        );
        println!(
            "                   (mean of {:.0} tx/s measured before the run and {:.0} after it)",
            limit.tx_per_second(),
            limit_after.tx_per_second()
        );
        println!("  ratio            {ratio:.3}");
        println!(
            "  node CPU         {cpu_us_per_tx_per_node:.1} µs per committed transaction per node ({node_cpu_seconds:.1} CPU-s of the {BENCH_NODES} node processes in the window)"
        );
        println!(
            "                   {cpu_us_per_tx_per_node_less_verify:.1} µs less the measured verification cost ({verify_us_per_tx:.1} µs per signature)"
        );
        println!(
            "  signing          {} transactions signed in advance ({signing_seconds:.1} s), {} during the run",
            per_client * client_count as u64,
            signed_live.load(Ordering::Relaxed)
        );
        let refused = refused.load(Ordering::Relaxed);
        if refused > 0 {
            println!("  refused          {refused} submissions");
        }
    }
    if let Some(path) = keep {
        println!("  network kept in  {}", path.display());
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (custody (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 170 30 0 0 20 0 9 0";
        assert_eq!(cpu_ticks_of_stat(stat), Ok(200));
    }

    #[test]
    fn a_truncated_stat_line_is_an_error_not_a_panic() {
        assert!(cpu_ticks_of_stat("4242 (custody) S 1 2").is_err());
        assert!(cpu_ticks_of_stat("garbage").is_err());
    }

    #[test]
    fn a_process_that_is_gone_is_an_error_not_a_panic() {
        assert!(process_cpu_seconds(u32::MAX).is_err());
    }
}
