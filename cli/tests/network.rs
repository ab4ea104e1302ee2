//! Four `custody` processes on loopback: ordering, fault tolerance,
//! catch-up, crash safety, peer admission and transaction refusal.
//!
//! The networks run one at a time (a lock) so that timeouts stay
//! meaningful on a small machine.

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use common::{wait_for, Testnet};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{Classification, DepartmentId, Nonce, PublicKey, Role, TxId};
use custody_node::client::Client;

/// Each test has its own runtime; tokio's mutex works across runtimes and
/// is not poisoned by a failing test.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CHAIN_ID: &str = "custody-testnet";

fn admin_key(testnet: &Testnet, index: usize) -> ed25519_dalek::SigningKey {
    let path = testnet.member_key(&testnet.nodes[index].department, "admin");
    let secret = custody_node::home::read_key_file(&path).expect("admin key");
    ed25519_dalek::SigningKey::from_bytes(&secret)
}

fn fresh_public_key() -> PublicKey {
    let secret = custody_node::home::random_bytes::<32>();
    PublicKey(
        ed25519_dalek::SigningKey::from_bytes(&secret)
            .verifying_key()
            .to_bytes(),
    )
}

/// An admin of `department` enrolling a fresh clerk.
fn enroll(
    key: &ed25519_dalek::SigningKey,
    department: &str,
    nonce: u64,
) -> (SignedTransaction, PublicKey) {
    let member = fresh_public_key();
    let body = TxBody::EnrollMember {
        member,
        department: DepartmentId::new(department.to_string()).expect("slug"),
        name: format!("clerk {nonce}"),
        roles: vec![Role::Clerk],
        clearance: Classification::Internal,
    };
    (
        SignedTransaction::sign(body, key, Nonce(nonce), CHAIN_ID),
        member,
    )
}

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

async fn wait_all_at_least(testnet: &Testnet, nodes: &[usize], target: u64, timeout: Duration) {
    wait_for(
        testnet,
        &format!("nodes {nodes:?} at height >= {target}"),
        timeout,
        || async {
            let mut seen = Vec::new();
            for &index in nodes {
                seen.push(height(testnet, index).await?);
            }
            if seen.iter().all(|h| *h >= target) {
                Ok(())
            } else {
                Err(format!("heights {seen:?}"))
            }
        },
    )
    .await
}

async fn block_hash(testnet: &Testnet, index: usize, height: u64) -> Result<String, String> {
    client(testnet, index)
        .block(height)
        .await
        .map(|block| block.hash.to_hex())
        .map_err(|error| error.to_string())
}

async fn committed_everywhere(
    testnet: &Testnet,
    nodes: &[usize],
    ids: &[TxId],
) -> Result<(), String> {
    for &index in nodes {
        let client = client(testnet, index);
        for id in ids {
            match client.transaction(id).await {
                Ok(answer) if answer.status == "committed" => {}
                Ok(answer) => {
                    return Err(format!(
                        "{id} is {} at {}",
                        answer.status, testnet.nodes[index].department
                    ))
                }
                Err(error) => {
                    return Err(format!(
                        "{id} at {}: {error}",
                        testnet.nodes[index].department
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Every node's blocks 1..=height have the same hashes.
async fn assert_same_chain(testnet: &Testnet, nodes: &[usize], up_to: u64) {
    for height in 1..=up_to {
        let mut hashes = BTreeSet::new();
        for &index in nodes {
            let hash = block_hash(testnet, index, height)
                .await
                .unwrap_or_else(|error| panic!("block {height} at node {index}: {error}"));
            hashes.insert(hash);
        }
        assert_eq!(
            hashes.len(),
            1,
            "nodes disagree on block {height}: {hashes:?}\n{}",
            testnet.logs()
        );
        // The canonical bytes (`Accept: application/octet-stream`) are the
        // block the JSON form names.
        let raw = client(testnet, nodes[0])
            .raw_block(height)
            .await
            .unwrap_or_else(|error| panic!("raw block {height}: {error}"));
        assert!(hashes.contains(&raw.hash().to_hex()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_submitted_to_different_nodes_commit_in_the_same_order_everywhere() {
    let _serial = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = Testnet::init(4);
    testnet.start_all();
    wait_all_at_least(&testnet, &[0, 1, 2, 3], 1, Duration::from_secs(30)).await;

    let mut ids = Vec::new();
    for round in 1..=10u64 {
        for index in 0..4 {
            let key = admin_key(&testnet, index);
            let (tx, _) = enroll(&key, &testnet.nodes[index].department, round);
            let answer = client(&testnet, index)
                .submit(&tx, None)
                .await
                .unwrap_or_else(|error| panic!("submit to node {index}: {error}"));
            assert_eq!(answer.tx_id, tx.id());
            ids.push(tx.id());
        }
    }
    wait_for(
        &testnet,
        "all 40 transactions committed on all four nodes",
        Duration::from_secs(60),
        || committed_everywhere(&testnet, &[0, 1, 2, 3], &ids),
    )
    .await;
    let mut heights = Vec::new();
    for index in 0..4 {
        heights.push(height(&testnet, index).await.expect("height"));
    }
    let common_height = heights.iter().copied().min().expect("four heights");
    assert_same_chain(&testnet, &[0, 1, 2, 3], common_height).await;
    // Same order: each transaction sits at the same (height, index) everywhere.
    for id in &ids {
        let mut places = BTreeSet::new();
        for index in 0..4 {
            let answer = client(&testnet, index).transaction(id).await.expect("tx");
            let inclusion = answer.inclusion.expect("inclusion");
            places.insert((inclusion.height.0, inclusion.index));
        }
        assert_eq!(places.len(), 1, "{id} sits at different places: {places:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_keep_committing_without_the_fourth_which_catches_up_after_restart() {
    let _serial = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = Testnet::init(4);
    testnet.start_all();
    wait_all_at_least(&testnet, &[0, 1, 2, 3], 2, Duration::from_secs(30)).await;

    testnet.nodes[3].stop();
    let stopped_at = height(&testnet, 0).await.expect("height");
    let key = admin_key(&testnet, 0);
    let mut ids = Vec::new();
    for nonce in 1..=5u64 {
        let (tx, _) = enroll(&key, &testnet.nodes[0].department, nonce);
        let answer = client(&testnet, 0)
            .submit(&tx, Some(Duration::from_secs(30)))
            .await
            .expect("submit with wait");
        assert_eq!(answer.status, "committed", "{answer:?}");
        ids.push(tx.id());
    }
    wait_all_at_least(
        &testnet,
        &[0, 1, 2],
        stopped_at + 5,
        Duration::from_secs(60),
    )
    .await;

    testnet.nodes[3].start();
    let target = height(&testnet, 0).await.expect("height");
    wait_all_at_least(&testnet, &[3], target, Duration::from_secs(60)).await;
    committed_everywhere(&testnet, &[3], &ids)
        .await
        .unwrap_or_else(|error| panic!("restarted node misses a transaction: {error}"));
    assert_same_chain(&testnet, &[0, 3], target).await;
    // And it takes part again: the network goes on with all four.
    wait_all_at_least(&testnet, &[0, 1, 2, 3], target + 3, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_load_restarts_intact_and_no_committed_transaction_is_lost() {
    let _serial = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = Testnet::init(4);
    testnet.start_all();
    wait_all_at_least(&testnet, &[0, 1, 2, 3], 1, Duration::from_secs(30)).await;

    // One client per department, each signing as its admin, each waiting for
    // commit; the ids acknowledged as committed are collected.
    let acknowledged = std::sync::Arc::new(Mutex::new(Vec::<TxId>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for index in 0..4 {
        let key = admin_key(&testnet, index);
        let department = testnet.nodes[index].department.clone();
        let client = client(&testnet, index);
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut nonce = 1u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (tx, _) = enroll(&key, &department, nonce);
                match client.submit(&tx, Some(Duration::from_secs(10))).await {
                    Ok(answer) if answer.status == "committed" => {
                        acknowledged.lock().expect("lock").push(tx.id());
                        nonce += 1;
                    }
                    Ok(_) => nonce += 1,
                    // The killed node's client: stop.
                    Err(custody_node::client::ClientError::Unreachable { .. }) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    testnet.nodes[3].kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    let ids = acknowledged.lock().expect("lock").clone();
    assert!(ids.len() >= 4, "too little load got through: {}", ids.len());

    testnet.nodes[3].start();
    let target = height(&testnet, 0).await.expect("height");
    wait_all_at_least(&testnet, &[3], target, Duration::from_secs(60)).await;
    wait_for(
        &testnet,
        "every acknowledged transaction on every node",
        Duration::from_secs(30),
        || committed_everywhere(&testnet, &[0, 1, 2, 3], &ids),
    )
    .await;
    assert_same_chain(&testnet, &[0, 1, 2, 3], target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_with_an_unknown_key_is_refused() {
    let _serial = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = Testnet::init(4);
    // Started first, so that the stranger's free ports cannot be theirs.
    testnet.start_all();
    // A stranger: a node of another chain, told to dial civil-affairs.
    let mut stranger = Testnet::init(1);
    let stranger_config = stranger.nodes[0].home.join("config.toml");
    let mut config =
        custody_node::config::NodeConfig::load(&stranger_config).expect("stranger config");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(testnet.dir.path().join("testnet.json")).expect("manifest"),
    )
    .expect("json");
    let target_peer = manifest["nodes"][0]["peer_id"].as_str().expect("peer id");
    config.network.peers.push(custody_node::config::PeerConfig {
        peer_id: target_peer.to_string(),
        address: manifest["nodes"][0]["p2p_address"]
            .as_str()
            .expect("address")
            .to_string(),
    });
    config.save(&stranger_config).expect("save");
    stranger.start_all();
    wait_all_at_least(&testnet, &[0, 1, 2, 3], 2, Duration::from_secs(30)).await;
    // The stranger's API may still be starting on a loaded machine.
    let stranger_api = Client::new(stranger.nodes[0].api_url.clone());
    let stranger_id = wait_for(
        &stranger,
        "the stranger's API to answer",
        Duration::from_secs(30),
        || async {
            stranger_api
                .status()
                .await
                .map_err(|error| error.to_string())
        },
    )
    .await
    .peer_id;
    // Give the stranger several redial rounds (its backoff is 1 s at most).
    for _ in 0..8 {
        let status = client(&testnet, 0).status().await.expect("status");
        assert!(
            !status.peers.contains(&stranger_id),
            "the stranger was admitted as a peer: {:?}",
            status.peers
        );
        assert_eq!(status.peers.len(), 3, "peers: {:?}", status.peers);
        let stranger_status = Client::new(stranger.nodes[0].api_url.clone())
            .status()
            .await
            .expect("stranger status");
        assert!(
            stranger_status.peers.is_empty(),
            "the stranger holds a connection: {:?}",
            stranger_status.peers
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_badly_signed_replayed_and_rule_breaking_transactions_get_4xx_and_change_nothing()
{
    let _serial = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = Testnet::init(4);
    testnet.start_all();
    wait_all_at_least(&testnet, &[0, 1, 2, 3], 1, Duration::from_secs(30)).await;
    let node = client(&testnet, 0);
    let department = testnet.nodes[0].department.clone();
    let admin = admin_key(&testnet, 0);
    let admin_public = hex::encode(admin.verifying_key().to_bytes());

    // Malformed bytes.
    let error = node
        .submit_bytes(b"not a transaction".to_vec(), None)
        .await
        .expect_err("malformed refused");
    assert_refused(&error, 400, "malformed_transaction");

    // Bad signature.
    let (mut tx, member) = enroll(&admin, &department, 1);
    tx.signature.0[0] ^= 1;
    let error = node
        .submit(&tx, None)
        .await
        .expect_err("bad signature refused");
    assert_refused(&error, 400, "bad_signature");

    // A valid one commits.
    let (tx, _) = enroll(&admin, &department, 1);
    let answer = node
        .submit(&tx, Some(Duration::from_secs(30)))
        .await
        .expect("valid transaction");
    assert_eq!(answer.status, "committed");

    // Replayed nonce (a different body with the same nonce).
    let (replay, replay_member) = enroll(&admin, &department, 1);
    let error = node
        .submit(&replay, None)
        .await
        .expect_err("replay refused");
    assert_refused(&error, 422, "wrong_nonce");
    // The very same transaction again.
    let error = node
        .submit(&tx, None)
        .await
        .expect_err("resubmission refused");
    assert_refused(&error, 409, "already_committed");

    // Breaking a rule: a clerk may not enroll members.
    let clerk_path = testnet.member_key(&department, "clerk");
    let clerk = ed25519_dalek::SigningKey::from_bytes(
        &custody_node::home::read_key_file(&clerk_path).expect("clerk key"),
    );
    let (by_clerk, clerk_member) = enroll(&clerk, &department, 1);
    let error = node
        .submit(&by_clerk, None)
        .await
        .expect_err("clerk refused");
    assert_refused(&error, 422, "missing_role");

    // Nothing changed: none of the refused members exists, the admin's
    // nonce moved only for the valid transaction, the mempool is empty.
    for key in [member, replay_member, clerk_member] {
        let error = node
            .get_json(&format!("/v1/members/{}", key.to_hex()))
            .await
            .expect_err("member absent");
        assert_refused(&error, 404, "not_found");
    }
    let admin_record = node
        .get_json(&format!("/v1/members/{admin_public}"))
        .await
        .expect("admin");
    assert_eq!(admin_record["nonce"], 1);
    let status = node.status().await.expect("status");
    assert_eq!(status.mempool.transactions, 0);

    // Oversized body (last: the server closes that connection unread).
    let error = client(&testnet, 0)
        .submit_bytes(vec![0u8; 2 << 20], None)
        .await
        .expect_err("oversized refused");
    assert_refused(&error, 413, "body_too_large");
    let after = client(&testnet, 0).status().await.expect("status");
    assert_eq!(after.mempool.transactions, 0);
}

fn assert_refused(error: &custody_node::client::ClientError, status: u16, code: &str) {
    match error {
        custody_node::client::ClientError::Refused {
            status: got_status,
            code: got_code,
            message,
        } => {
            assert_eq!(
                (*got_status, got_code.as_str()),
                (status, code),
                "message: {message}"
            );
            assert!(!message.is_empty());
        }
        other => panic!("expected a {status} {code} refusal, got {other}"),
    }
}
