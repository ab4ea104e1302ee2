//! `custody-harness demo`: a four-department network on this machine, a day of
//! archive work, and an audit of all of it.
//!
//! Builds a testnet (the same generator as `custody testnet init`), starts
//! its four nodes as child processes of this binary, runs the scenario of
//! [`scenario`] through the clerks' own command code, audits the result
//! with the auditor's commands of [`custody_cli::audit`], then keeps the
//! network up until Ctrl-C. The nodes never outlive the demo: see
//! [`network`].

mod audit;
mod network;
mod samples;
mod scenario;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use custody_node::testnet::{self, TestnetOptions};

use network::Network;
use scenario::Scenario;

/// Departments in the demo: 3f + 1 with f = 1.
const DEPARTMENTS: usize = 4;
/// Sample archives per department in the full and the short scenario.
const SAMPLES_PER_DEPARTMENT_FULL: usize = 9;
const SAMPLES_PER_DEPARTMENT_SHORT: usize = 2;
/// How often the demo checks that its nodes are still alive while it
/// waits for Ctrl-C.
const WATCH_INTERVAL_MS: u64 = 500;

/// `custody-harness demo`
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to build the network (must be empty or absent); kept after
    /// the demo. Default: a temporary directory, removed on exit.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// A shorter scenario (each kind of event once or twice), for CI.
    #[arg(long)]
    pub short: bool,
    /// Stop the network and exit after the audit instead of waiting for Ctrl-C.
    #[arg(long)]
    pub exit_after_audit: bool,
    /// First port: node i listens on BASE+2i (peers) and BASE+2i+1 (HTTP API).
    #[arg(long, default_value_t = 26700)]
    pub base_port: u16,
    /// Log filter for the nodes' log files (RUST_LOG syntax).
    #[arg(long, default_value = "info")]
    pub node_log: String,
}

/// Why the demo stopped early. The nodes are stopped in every case.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("port {port} is in use; choose another range with --base-port (now {base_port})")]
    PortInUse { port: u16, base_port: u16 },
    #[error("cannot {action} {path}: {source}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find this program to start the nodes with: {0}")]
    CurrentExe(std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot generate the network: {0}")]
    Testnet(#[from] testnet::TestnetError),
    #[error("cannot start {department}'s node: {source}")]
    Spawn {
        department: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{department}'s node exited ({status}); the end of its log:\n{log}")]
    NodeExited {
        department: String,
        status: String,
        log: String,
    },
    #[error("the network was not ready within {seconds} s; last seen: {seen}")]
    NotHealthy { seconds: u64, seen: String },
    #[error("HTTP: {0}")]
    Http(String),
    #[error("step `{step}` failed: {source}")]
    Step {
        step: String,
        #[source]
        source: custody_cli::doc::DocError,
    },
    #[error("audit: {0}")]
    Audit(custody_cli::audit::AuditError),
    #[error("{0}")]
    Setup(String),
    #[error("interrupted")]
    Interrupted,
}

/// Prints a section heading.
pub(crate) fn section(title: &str) {
    println!();
    println!("== {title}");
}

/// Prints one step: who did it, and what happened, in plain words.
pub(crate) fn say(department: &str, person: &str, text: &str) {
    if person.is_empty() {
        println!("  [{department}] {text}");
    } else {
        println!("  [{department}] {person} {text}");
    }
}

/// Runs `custody-harness demo`.
pub fn run(args: DemoArgs) -> Result<(), DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: DemoArgs) -> Result<(), DemoError> {
    let started = Instant::now();
    // Listen for Ctrl-C and SIGTERM from the start, so that an interrupt
    // at any point stops the nodes instead of killing only the demo.
    let (trigger, mut shutdown) = custody_node::shutdown::shutdown_channel();
    tokio::spawn(async move {
        custody_node::shutdown::os_signal().await;
        trigger.trigger();
    });
    let executable = std::env::current_exe().map_err(DemoError::CurrentExe)?;
    let (temporary, dir) = match &args.dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("custody-demo-")
                .tempdir()
                .map_err(|source| DemoError::Io {
                    action: "create",
                    path: std::env::temp_dir(),
                    source,
                })?;
            let dir = temporary.path().to_owned();
            (Some(temporary), dir)
        }
    };
    network::check_ports_free(args.base_port, DEPARTMENTS)?;

    println!(
        "Custody demo: {DEPARTMENTS} departments keep their archives on one shared chain, on this machine."
    );
    section(&format!(
        "Department IT builds the network in {}",
        dir.display()
    ));
    let manifest = testnet::generate(&TestnetOptions {
        departments: DEPARTMENTS,
        dir: dir.clone(),
        base_port: args.base_port,
        fast: true,
        chain_id: "custody-demo".to_string(),
        joining: 0,
        governors: false,
    })?;
    println!(
        "  genesis {} (chain `{}`): each department's validator, node and encryption keys, and a first administrator",
        manifest.genesis_hash, manifest.chain_id
    );

    // Started here, on the main thread (see Network::start).
    let mut network = Network::start(&executable, &manifest, &args.node_log)?;
    let pids: Vec<serde_json::Value> = network
        .nodes
        .iter()
        .map(|node| {
            serde_json::json!({
                "department": node.department,
                "pid": node.pid,
                "api_url": node.api_url,
                "log": node.log_path,
            })
        })
        .collect();
    write_json(
        &dir.join("demo-nodes.json"),
        &serde_json::json!({ "nodes": pids }),
    )?;
    for node in &network.nodes {
        println!(
            "  started {:<16} node pid {:<7} API {}  log {}",
            node.department,
            node.pid,
            node.api_url,
            node.log_path.display()
        );
    }

    let result = tokio::select! {
        result = demo(&mut network, &dir, &args, &manifest) => result,
        _ = shutdown.wait() => Err(DemoError::Interrupted),
    };
    let result = match result {
        Ok(()) if !args.exit_after_audit => {
            section("The network keeps running");
            for node in &network.nodes {
                println!("  {:<16} {}", node.department, node.api_url);
            }
            println!(
                "  try: custody node status --node {}",
                network
                    .nodes
                    .first()
                    .map(|n| n.api_url.as_str())
                    .unwrap_or("")
            );
            println!(
                "  clerk keys are in {}/<department>/members; press Ctrl-C to stop everything",
                dir.display()
            );
            watch(&mut network, &mut shutdown).await
        }
        other => other,
    };

    section("Stopping the nodes");
    for (department, status) in network.stop(Duration::from_millis(network::STOP_GRACE_MS)) {
        match status {
            Some(status) => println!("  {department:<16} stopped ({status})"),
            None => println!("  {department:<16} did not stop in time and was killed"),
        }
    }
    drop(network);
    match (&result, temporary) {
        (Ok(()), Some(temporary)) => {
            let path = temporary.path().to_owned();
            drop(temporary);
            println!("  removed {}", path.display());
        }
        (Err(_), Some(temporary)) => {
            // Keep the logs of a failed run for whoever has to look at it.
            let kept = temporary.keep();
            eprintln!(
                "the network's directory is kept for inspection: {}",
                kept.display()
            );
        }
        (_, None) => println!("  the network's directory stays in {}", dir.display()),
    }
    if result.is_ok() {
        println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    }
    result
}

/// The part that can be interrupted: wait for the network, tell the story,
/// audit it.
async fn demo(
    network: &mut Network,
    dir: &std::path::Path,
    args: &DemoArgs,
    manifest: &testnet::TestnetManifest,
) -> Result<(), DemoError> {
    let waiting = Instant::now();
    let height = network.wait_healthy().await?;
    println!(
        "  all {} nodes connected and committing blocks (height {height}) after {:.1} s",
        network.nodes.len(),
        waiting.elapsed().as_secs_f64()
    );
    let api_urls: Vec<(String, String)> = network
        .nodes
        .iter()
        .map(|node| (node.department.clone(), node.api_url.clone()))
        .collect();
    let per_department = if args.short {
        SAMPLES_PER_DEPARTMENT_SHORT
    } else {
        SAMPLES_PER_DEPARTMENT_FULL
    };
    let mut scenario = Scenario::prepare(dir, &api_urls, per_department)?;
    write_json(
        &dir.join("demo-private-texts.json"),
        &scenario.private_texts(),
    )?;
    let story = Instant::now();
    scenario.run(args.short).await?;
    println!(
        "\n  {} steps committed in {:.1} s",
        scenario.outcome.steps,
        story.elapsed().as_secs_f64()
    );
    if let Some((department, status, log)) = network.exited_node() {
        return Err(DemoError::NodeExited {
            department,
            status: status.to_string(),
            log,
        });
    }

    // The auditor downloads the chain from the last department's node, one
    // that took part in no transfer it is asked about.
    let source = manifest
        .nodes
        .last()
        .ok_or_else(|| DemoError::Setup("the network has no nodes".to_string()))?;
    let summary = audit::run(dir, &source.api_url, &source.department, &scenario.outcome).await?;
    audit::print_summary(&summary);
    write_json(
        &dir.join("demo-summary.json"),
        &serde_json::to_value(&summary).map_err(|error| DemoError::Setup(error.to_string()))?,
    )?;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM, saying so if a node dies meanwhile.
async fn watch(
    network: &mut Network,
    shutdown: &mut custody_node::shutdown::Shutdown,
) -> Result<(), DemoError> {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(WATCH_INTERVAL_MS)) => {
                if let Some((department, status, log)) = network.exited_node() {
                    eprintln!("{department}'s node exited ({status}); the end of its log:\n{log}");
                }
            }
        }
    }
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> Result<(), DemoError> {
    let text =
        serde_json::to_vec_pretty(value).map_err(|error| DemoError::Setup(error.to_string()))?;
    std::fs::write(path, text).map_err(|source| DemoError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}
