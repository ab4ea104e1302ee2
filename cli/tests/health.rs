//! A node that never fails silently: readiness follows the quorum, a node
//! whose consensus state cannot be written exits non-zero, and the HTTP API
//! holds out against idle and slowloris connections under a file limit.
//!
//! Real `custody` processes on loopback, one network at a time (a lock).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{get, tail, wait_for, wait_readyz, OwnNode, Testnet};
use custody_node::client::Client;
use custody_node::config::NodeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The readiness requirement: `/readyz` fails within this of a quorum loss.
const QUORUM_LOSS_NOTICED_MS_MAX: u64 = 10_000;
/// Long enough for a fresh network to commit or a restarted node to rejoin.
const NETWORK_WAIT_MS: u64 = 60_000;
/// The header-read timeout given to the node under connection attack.
const ATTACKED_HEADER_READ_TIMEOUT_MS: u64 = 2_000;
const IDLE_CONNECTIONS: usize = 2_000;
const SLOWLORIS_CONNECTIONS: usize = 500;
/// The file limit of the node under attack.
const NODE_FILES_MAX: u64 = 1_024;
/// The test's own file limit: all its connections plus room.
const TEST_FILES_MAX: u64 = 8_192;
/// Bound on each TCP connect of the attack.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Pause between two bytes of a slowloris request head.
const SLOWLORIS_BYTE_INTERVAL_MS: u64 = 300;
/// Deadline for every attacking connection to be closed by the node.
const ATTACK_CLOSED_WAIT_MS: u64 = 20_000;
/// Bound on each honest request while under attack.
const HONEST_REQUEST_TIMEOUT_MS: u64 = common::REQUEST_TIMEOUT_MS;

fn client(testnet: &Testnet, index: usize) -> Client {
    testnet.client(index)
}

async fn height(testnet: &Testnet, index: usize) -> Result<u64, String> {
    client(testnet, index)
        .status()
        .await
        .map(|status| status.height)
        .map_err(|error| format!("{}: {error}", testnet.nodes[index].department))
}

async fn wait_height_at_least(testnet: &Testnet, index: usize, target: u64) -> u64 {
    wait_for(
        testnet,
        &format!("node {index} at height >= {target}"),
        Duration::from_millis(NETWORK_WAIT_MS),
        || async {
            let seen = height(testnet, index).await?;
            if seen >= target {
                Ok(seen)
            } else {
                Err(format!("height {seen}"))
            }
        },
    )
    .await
}

fn edit_config(home: &Path, edit: impl FnOnce(&mut NodeConfig)) {
    let path = home.join("config.toml");
    let mut config = NodeConfig::load(&path).expect("config loads");
    edit(&mut config);
    config.save(&path).expect("config saves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_within_ten_seconds_of_quorum_loss_and_recovers() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = Testnet::init(4);
    testnet.start_all();
    wait_readyz(
        &testnet,
        0,
        200,
        "node 0 ready",
        Duration::from_millis(NETWORK_WAIT_MS),
    )
    .await;

    testnet.nodes[2].stop();
    testnet.nodes[3].stop();
    let stopped_at = std::time::Instant::now();
    let body = wait_readyz(
        &testnet,
        0,
        503,
        "node 0 not ready after two of four nodes stopped",
        Duration::from_millis(QUORUM_LOSS_NOTICED_MS_MAX),
    )
    .await;
    eprintln!(
        "/readyz failed {} ms after the second node stopped: {body}",
        stopped_at.elapsed().as_millis()
    );
    let verdict: serde_json::Value = serde_json::from_str(&body).expect("readyz answers JSON");
    assert_eq!(verdict["ready"], false, "{body}");
    let reasons = verdict["reasons"].to_string();
    assert!(reasons.contains("2/4 voting power"), "{body}");
    // Alive all the same: liveness is not readiness.
    let (status, body) = get(&format!("{}/healthz", testnet.nodes[0].api_url))
        .await
        .expect("healthz answers");
    assert_eq!(status, 200, "{body}");

    testnet.nodes[2].start();
    testnet.nodes[3].start();
    let restarted_at = std::time::Instant::now();
    wait_readyz(
        &testnet,
        0,
        200,
        "node 0 ready again after the two nodes restarted",
        Duration::from_millis(NETWORK_WAIT_MS),
    )
    .await;
    eprintln!(
        "/readyz ready again {} ms after the two nodes restarted",
        restarted_at.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_consensus_state_cannot_be_written_exits_non_zero() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = Testnet::init(4);
    for index in 1..4 {
        testnet.nodes[index].start();
    }
    let home = testnet.nodes[0].home.clone();
    let mut node = OwnNode::start(&home, &testnet.nodes[0].log_path, None);
    wait_height_at_least(&testnet, 0, 2).await;

    // The consensus state is written to `consensus.state.tmp`, then renamed:
    // a directory in that place makes every write fail (permissions would
    // not: the tests may run as root).
    let temporary = home.join("data").join("consensus.state.tmp");
    wait_for(
        &testnet,
        "a directory in place of the temporary state file",
        Duration::from_millis(NETWORK_WAIT_MS),
        || async { std::fs::create_dir(&temporary).map_err(|error| error.to_string()) },
    )
    .await;

    let status = wait_for(
        &testnet,
        "node 0 exits",
        Duration::from_millis(NETWORK_WAIT_MS),
        || {
            let exited = node.exit_status();
            async move { exited.ok_or_else(|| "still running".to_string()) }
        },
    )
    .await;
    let log = node.log();
    assert!(
        !status.success(),
        "exited with {status}; log:\n{}",
        tail(&node.log_path, 20)
    );
    assert!(
        log.contains("cannot persist consensus state"),
        "the log does not say why; log:\n{}",
        tail(&node.log_path, 20)
    );
    assert!(
        get(&format!("{}/healthz", testnet.nodes[0].api_url))
            .await
            .is_err(),
        "the exited node's API still answers"
    );
}

/// Raises this process's soft file limit to `wanted` (or the hard limit).
fn raise_own_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = (wanted as libc::rlim_t).min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Reads until the node closes the connection (EOF or reset); counts it.
async fn count_when_closed(mut stream: TcpStream, closed: Arc<AtomicUsize>) {
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    closed.fetch_add(1, Ordering::Relaxed);
}

/// Sends a request head one byte at a time, never finishing it; counts
/// the connection when the node closes it.
async fn slowloris(mut stream: TcpStream, closed: Arc<AtomicUsize>) {
    let head = b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut buffer = [0u8; 1024];
    for byte in head.iter().cycle() {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        // Reading with a short bound notices a close between two bytes.
        match tokio::time::timeout(
            Duration::from_millis(SLOWLORIS_BYTE_INTERVAL_MS),
            stream.read(&mut buffer),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    closed.fetch_add(1, Ordering::Relaxed);
}

async fn connect(address: std::net::SocketAddr) -> Option<TcpStream> {
    match tokio::time::timeout(
        Duration::from_millis(CONNECT_TIMEOUT_MS),
        TcpStream::connect(address),
    )
    .await
    {
        Ok(Ok(stream)) => Some(stream),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_survives_idle_and_slowloris_connections_under_a_file_limit() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    raise_own_file_limit(TEST_FILES_MAX);
    let mut testnet = Testnet::init(4);
    let home = testnet.nodes[0].home.clone();
    edit_config(&home, |config| {
        config.api.header_read_timeout_ms = ATTACKED_HEADER_READ_TIMEOUT_MS;
    });
    let api_address = NodeConfig::load(&home.join("config.toml"))
        .expect("config loads")
        .api
        .listen;
    for index in 1..4 {
        testnet.nodes[index].start();
    }
    let mut node = OwnNode::start(&home, &testnet.nodes[0].log_path, Some(NODE_FILES_MAX));
    let before = wait_height_at_least(&testnet, 0, 2).await;

    let idle_closed = Arc::new(AtomicUsize::new(0));
    let slow_closed = Arc::new(AtomicUsize::new(0));
    let mut idle_opened = 0usize;
    let mut slow_opened = 0usize;
    let attack_started = std::time::Instant::now();
    let mut attack = tokio::task::JoinSet::new();
    for _ in 0..IDLE_CONNECTIONS {
        if let Some(stream) = connect(api_address).await {
            idle_opened += 1;
            attack.spawn(count_when_closed(stream, idle_closed.clone()));
        }
    }
    for _ in 0..SLOWLORIS_CONNECTIONS {
        if let Some(stream) = connect(api_address).await {
            slow_opened += 1;
            attack.spawn(slowloris(stream, slow_closed.clone()));
        }
    }
    eprintln!("opened {idle_opened} idle and {slow_opened} slowloris connections");

    // Honest requests get through (retrying while the cap is full) and the
    // network keeps committing, at this node too.
    let status_url = format!("{}/v1/status", testnet.nodes[0].api_url);
    let after = wait_for(
        &testnet,
        "a GET /v1/status answered by the attacked node at a higher height",
        Duration::from_millis(NETWORK_WAIT_MS),
        || async {
            let (status, body) = get(&status_url).await?;
            if status != 200 {
                return Err(format!("{status} {body}"));
            }
            let parsed: serde_json::Value =
                serde_json::from_str(&body).map_err(|error| error.to_string())?;
            let height = parsed["height"].as_u64().unwrap_or(0);
            if height > before {
                Ok(height)
            } else {
                Err(format!("height {height}, was {before}"))
            }
        },
    )
    .await;
    eprintln!("height {before} before the attack, {after} during it");

    // Every attacking connection is closed by the node's own limits.
    let closed_all = {
        let idle_closed = idle_closed.clone();
        let slow_closed = slow_closed.clone();
        move || {
            let idle = idle_closed.load(Ordering::Relaxed);
            let slow = slow_closed.load(Ordering::Relaxed);
            (idle, slow)
        }
    };
    wait_for(
        &testnet,
        "the node closed every idle and slowloris connection",
        Duration::from_millis(ATTACK_CLOSED_WAIT_MS),
        || async {
            let (idle, slow) = closed_all();
            if idle == idle_opened && slow == slow_opened {
                Ok(())
            } else {
                Err(format!(
                    "closed {idle}/{idle_opened} idle and {slow}/{slow_opened} slowloris"
                ))
            }
        },
    )
    .await;
    attack.abort_all();
    let (idle, slow) = closed_all();
    eprintln!(
        "the node closed {idle}/{idle_opened} idle and {slow}/{slow_opened} slowloris connections within {} ms of the first",
        attack_started.elapsed().as_millis()
    );

    assert!(
        node.exit_status().is_none(),
        "the attacked node exited; log:\n{}",
        tail(&node.log_path, 30)
    );
    let (status, body) = get(&format!("{}/healthz", testnet.nodes[0].api_url))
        .await
        .expect("healthz answers after the attack");
    assert_eq!(status, 200, "{body}");

    // A kept-alive connection left idle after an answer is closed too (the
    // header-read timer starts again when the connection goes idle).
    let mut kept = connect(api_address).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("send request");
    let kept_closed = Arc::new(AtomicUsize::new(0));
    tokio::spawn(count_when_closed(kept, kept_closed.clone()));
    wait_for(
        &testnet,
        "the node closed a kept-alive connection left idle",
        Duration::from_millis(ATTACK_CLOSED_WAIT_MS),
        || {
            let closed = kept_closed.load(Ordering::Relaxed);
            async move {
                if closed == 1 {
                    Ok(())
                } else {
                    Err("still open".to_string())
                }
            }
        },
    )
    .await;

    // A body declared far over the limit is refused before it is sent, on
    // every route (here one that is not a transaction route).
    let mut stream = connect(api_address).await.expect("connect");
    stream
        .write_all(
            b"POST /v1/reads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
        )
        .await
        .expect("send head");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !answer.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = tokio::time::timeout(
            Duration::from_millis(HONEST_REQUEST_TIMEOUT_MS),
            stream.read(&mut buffer),
        )
        .await
        .expect("answered without the body")
        .expect("read answer");
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// How long an idle network is watched for blocks.
const IDLE_WATCH_MS: u64 = 60_000;
/// A transaction sent to an idle network is committed within this.
const IDLE_TRANSACTION_COMMIT_MS_MAX: u64 = 15_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_network_commits_no_block_for_a_minute_and_a_transaction_at_once() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = Testnet::init(4);
    // `testnet --fast` keeps trial networks ticking; this one has the
    // default configuration's wait for work and hourly heartbeat.
    for node in &testnet.nodes {
        edit_config(&node.home, |config| {
            config.consensus.heartbeat_interval_ms = 3_600_000;
        });
    }
    testnet.start_all();
    let readyz = format!("{}/readyz", testnet.nodes[0].api_url);
    wait_readyz(
        &testnet,
        0,
        200,
        "node 0 ready on the idle network",
        Duration::from_millis(NETWORK_WAIT_MS),
    )
    .await;
    // The watch window is the measurement, not a synchronisation.
    tokio::time::sleep(Duration::from_millis(IDLE_WATCH_MS)).await;
    for index in 0..testnet.nodes.len() {
        let seen = height(&testnet, index).await.expect("status answers");
        assert_eq!(seen, 0, "node {index} committed {seen} blocks with no work");
    }
    let (status, body) = get(&readyz).await.expect("readyz answers");
    assert_eq!(status, 200, "an idle network is ready: {body}");

    let member = "21313738b3c04e38743b922826846fa2b6e8c0d1a2d3db48412e0e0d00554239";
    let admin = testnet.member_key(&testnet.nodes[0].department, "admin");
    let (ok, out, err) = common::custody(&[
        "tx",
        "enroll-member",
        "--member",
        member,
        "--department",
        &testnet.nodes[0].department,
        "--name",
        "Idle network clerk",
        "--role",
        "clerk",
        "--key",
        admin.to_str().expect("utf-8 path"),
        "--node",
        &testnet.nodes[0].api_url,
    ]);
    assert!(ok, "enroll-member failed: {out}{err}");
    wait_for(
        &testnet,
        "the transaction committed at height 1 on every node",
        Duration::from_millis(IDLE_TRANSACTION_COMMIT_MS_MAX),
        || async {
            for index in 0..testnet.nodes.len() {
                let seen = height(&testnet, index).await?;
                if seen < 1 {
                    return Err(format!("node {index} at height {seen}"));
                }
            }
            Ok(())
        },
    )
    .await;
}
