//! A running federation lives through its governance: a department voted
//! in starts its node from the genesis and signs; a validator key is
//! rotated without a pause, also when the old key is lost; a removed
//! department is cut off from the height its removal takes effect. Real
//! `custody` processes on loopback.

mod common;

use std::time::Duration;

use common::{custody, wait_for, Testnet};
use custody_ledger::types::PublicKey;
use custody_node::client::Client;

/// One network at a time keeps the timeouts meaningful on a small machine.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn started(n: usize, joining: usize) -> Testnet {
    let mut testnet = Testnet::init_joining(n, joining);
    testnet.start_all();
    for index in 0..n {
        wait_until_height(&testnet, index, 2).await;
    }
    testnet
}

fn client(testnet: &Testnet, index: usize) -> Client {
    testnet.client(index)
}

async fn height_of(testnet: &Testnet, index: usize) -> Result<u64, String> {
    client(testnet, index)
        .status()
        .await
        .map(|status| status.height)
        .map_err(|error| error.to_string())
}

async fn wait_until_height(testnet: &Testnet, index: usize, height: u64) {
    let what = format!(
        "{} to reach height {height}",
        testnet.nodes[index].department
    );
    wait_for(testnet, &what, Duration::from_secs(60), || async {
        let at = height_of(testnet, index).await?;
        if at >= height {
            Ok(())
        } else {
            Err(format!("at height {at}"))
        }
    })
    .await
}

fn admin(testnet: &Testnet, index: usize) -> String {
    testnet
        .member_key(&testnet.nodes[index].department, "admin")
        .display()
        .to_string()
}

/// Runs `custody ARGS… --node URL_OF(index)`; stdout, or the test fails.
/// Tries of `gov show` on a node that has not yet committed a proposal
/// (250 ms apart).
const PROPOSAL_REACHES_NODE_TRIES: usize = 120;

fn run_ok(testnet: &Testnet, index: usize, args: &[&str]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--node", &testnet.nodes[index].api_url]);
    // Reads of proposals and members are signed; read as the auditor
    // unless the command signs with its own key.
    let auditor = testnet.auditor_key_path();
    if !args.contains(&"--key") {
        all.extend(["--key", auditor.to_str().expect("utf-8 path")]);
    }
    let (ok, stdout, stderr) = custody(&all);
    assert!(
        ok,
        "custody {all:?} failed:\n{stdout}\n{stderr}\n{}",
        testnet.logs()
    );
    stdout
}

/// `change` proposed by `proposer`'s admin, then approved by each of
/// `approvers` until it executes; returns the height that executed it.
fn vote(testnet: &Testnet, proposer: usize, change: &[&str], approvers: &[usize]) -> u64 {
    let key = admin(testnet, proposer);
    let mut args = vec!["gov", "propose"];
    args.extend_from_slice(change);
    args.extend(["--key", &key, "--wait"]);
    let out = run_ok(testnet, proposer, &args);
    let id = out
        .lines()
        .find_map(|line| line.strip_prefix("proposal id "))
        .and_then(|rest| rest.split(';').next())
        .expect("propose prints the proposal id")
        .to_string();
    for &index in approvers {
        // The approver's node may be a block behind the proposer's.
        let auditor = testnet.auditor_key_path();
        let show = [
            "gov",
            "show",
            id.as_str(),
            "--json",
            "--key",
            auditor.to_str().expect("utf-8 path"),
            "--node",
            testnet.nodes[index].api_url.as_str(),
        ];
        for _ in 0..PROPOSAL_REACHES_NODE_TRIES {
            if custody(&show).0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let shown = run_ok(testnet, index, &["gov", "show", &id, "--json"]);
        let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
        if shown["status"] == "executed" {
            break;
        }
        run_ok(
            testnet,
            index,
            &[
                "gov",
                "approve",
                &id,
                "--key",
                &admin(testnet, index),
                "--wait",
            ],
        );
    }
    let shown = run_ok(testnet, proposer, &["gov", "show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["status"], "executed", "{shown}");
    shown["proposal"]["executed_at"]
        .as_u64()
        .expect("executed_at")
}

/// The validator keys that signed block `height`'s certificate, read from
/// node `index`.
async fn signers(testnet: &Testnet, index: usize, height: u64) -> Result<Vec<PublicKey>, String> {
    let block = client(testnet, index)
        .block(height)
        .await
        .map_err(|error| error.to_string())?;
    let certificate = block
        .certificate
        .ok_or_else(|| format!("block {height} has no certificate yet"))?;
    Ok(certificate
        .signatures
        .iter()
        .map(|signature| signature.validator)
        .collect())
}

/// Waits for a certificate of a block above `after` that `key` signed.
async fn wait_until_signed(testnet: &Testnet, index: usize, key: PublicKey, after: u64) -> u64 {
    let what = format!("a certificate above height {after} signed by {key}");
    wait_for(testnet, &what, Duration::from_secs(60), || async {
        let top = height_of(testnet, index).await?;
        for height in (after + 1)..=top {
            if signers(testnet, index, height).await?.contains(&key) {
                return Ok(height);
            }
        }
        Err(format!("none up to height {top}"))
    })
    .await
}

fn public_of(path: &std::path::Path) -> PublicKey {
    let secret = custody_node::home::read_key_file(path).expect("key file");
    PublicKey(
        ed25519_dalek::SigningKey::from_bytes(&secret)
            .verifying_key()
            .to_bytes(),
    )
}

/// `custody node next-key --json` for node `index`: the keys to propose.
fn next_key(testnet: &Testnet, index: usize) -> serde_json::Value {
    let home = testnet.nodes[index].home.display().to_string();
    let (ok, stdout, stderr) = custody(&["node", "next-key", "--home", &home, "--json"]);
    assert!(ok, "node next-key failed: {stderr}");
    serde_json::from_str(&stdout).expect("next-key --json prints JSON")
}

/// The rotation of the validator key alone: the node and encryption keys
/// stay as the chain has them.
fn rotate_args(department: &str, keys: &serde_json::Value) -> Vec<String> {
    vec![
        "rotate-keys".to_string(),
        "--department".to_string(),
        department.to_string(),
        "--validator-key".to_string(),
        format!("pub:{}", keys["validator_key"].as_str().expect("key")),
    ]
}

/// With `stopped` down, the others still commit: the quorum needs the
/// node whose keys the test changed.
async fn commits_without(testnet: &mut Testnet, stopped: usize, watcher: usize) {
    testnet.nodes[stopped].stop();
    let from = height_of(testnet, watcher).await.expect("height");
    wait_until_height(testnet, watcher, from + 3).await;
    testnet.nodes[stopped].start();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_voted_in_starts_from_the_genesis_syncs_and_signs_certificates() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = started(4, 1).await;
    let joining = 4;
    let contribution = testnet.nodes[joining].home.join("contribution.json");
    let contribution = contribution.display().to_string();
    let executed = vote(
        &testnet,
        0,
        &["add-department", "--contribution", &contribution],
        &[1, 2, 3],
    );

    // Its node starts from the genesis alone (its department is not in
    // it) and syncs, verifying the validator-set handoff on the way.
    testnet.nodes[joining].start();
    let key = public_of(&testnet.nodes[joining].home.join("keys/validator.key"));
    wait_until_height(&testnet, joining, executed + 1).await;
    let signed = wait_until_signed(&testnet, 0, key, executed).await;
    assert!(signed > executed);

    // Five validators: with one of the genesis nodes down, the four left
    // (the new one among them) hold more than 2/3 and go on.
    commits_without(&mut testnet, 3, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_validator_key_signs_from_the_effective_height_and_the_old_one_never_after() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = started(4, 0).await;
    let rotated = 2;
    let old = public_of(&testnet.nodes[rotated].home.join("keys/validator.key"));
    // The operator installs the next key and restarts the node, which then
    // holds both.
    let keys = next_key(&testnet, rotated);
    testnet.nodes[rotated].stop();
    testnet.nodes[rotated].start();
    let top = height_of(&testnet, 0).await.expect("height");
    wait_until_height(&testnet, rotated, top).await;
    let new = public_of(&testnet.nodes[rotated].home.join("keys/validator.next.key"));
    let department = testnet.nodes[rotated].department.clone();
    let args = rotate_args(&department, &keys);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let executed = vote(&testnet, rotated, &args, &[0, 1, 3]);

    let signed = wait_until_signed(&testnet, 0, new, executed).await;
    for height in 1..=signed {
        let keys = signers(&testnet, 0, height).await.expect("certificate");
        if height <= executed {
            assert!(
                !keys.contains(&new),
                "the new key signed height {height} ≤ {executed}"
            );
        } else {
            assert!(
                !keys.contains(&old),
                "the old key signed height {height} > {executed}"
            );
        }
    }
    // The quorum without node 3 needs the rotated node's new key.
    commits_without(&mut testnet, 3, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_validator_key_is_replaced_by_the_others_vote_and_the_node_resumes() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = started(4, 0).await;
    let lost = 1;
    testnet.nodes[lost].stop();
    std::fs::remove_file(testnet.nodes[lost].home.join("keys/validator.key")).expect("remove key");
    let keys = next_key(&testnet, lost);
    // It starts without a key of the set in force: it observes and syncs.
    testnet.nodes[lost].start();
    let department = testnet.nodes[lost].department.clone();
    let args = rotate_args(&department, &keys);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The other three vote the rotation; the department's own admin does not.
    let executed = vote(&testnet, 0, &args, &[2, 3]);
    let new = public_of(&testnet.nodes[lost].home.join("keys/validator.next.key"));
    wait_until_signed(&testnet, 0, new, executed).await;
    commits_without(&mut testnet, 3, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_department_is_disconnected_and_receives_no_block_after_the_effective_height() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = started(4, 0).await;
    let removed = 3;
    let department = testnet.nodes[removed].department.clone();
    let executed = vote(
        &testnet,
        0,
        &["remove-department", "--department", &department],
        &[1, 2],
    );
    // The others go on well past the removal...
    wait_until_height(&testnet, 0, executed + 8).await;
    // ...and the removed node got nothing past the block that removed it.
    let at = height_of(&testnet, removed)
        .await
        .expect("removed node answers");
    assert!(at <= executed, "removed at {executed}, yet it reached {at}");
    let removed_peer = client(&testnet, removed)
        .status()
        .await
        .expect("status")
        .peer_id;
    for index in 0..removed {
        let status = client(&testnet, index).status().await.expect("status");
        assert!(
            !status.peers.contains(&removed_peer),
            "{} is still connected to the removed node",
            testnet.nodes[index].department
        );
    }
    // A restart does not bring it back.
    testnet.nodes[removed].stop();
    testnet.nodes[removed].start();
    let top = height_of(&testnet, 0).await.expect("height");
    wait_until_height(&testnet, 0, top + 5).await;
    let at = wait_for(
        &testnet,
        "the removed node to answer",
        Duration::from_secs(30),
        || async { height_of(&testnet, removed).await },
    )
    .await;
    assert!(
        at <= executed,
        "after a restart the removed node reached {at}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_key_installed_while_the_node_runs_takes_over_without_a_restart() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut testnet = started(4, 0).await;
    let rotated = 1;
    // The operator writes the next key into the running node's home; the
    // node picks it up on its own (no restart).
    let keys = next_key(&testnet, rotated);
    let new = public_of(&testnet.nodes[rotated].home.join("keys/validator.next.key"));
    wait_for(
        &testnet,
        "the node to log the installed key",
        Duration::from_secs(20),
        || async {
            let log = std::fs::read_to_string(&testnet.nodes[rotated].log_path).unwrap_or_default();
            if log.contains("validator key installed while running") {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
    let department = testnet.nodes[rotated].department.clone();
    let args = rotate_args(&department, &keys);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let executed = vote(&testnet, 0, &args, &[2, 3]);
    wait_until_signed(&testnet, 0, new, executed).await;
    // The quorum without node 3 needs the rotated node's new key.
    commits_without(&mut testnet, 3, 0).await;
}
