//! `custody node repair`, `node backup` and `node restore` on real
//! `custody node` processes: a damaged store is rebuilt from the
//! federation or a verified export and the damaged copy kept aside; a
//! running node is backed up, and a restore verifies everything before it
//! writes anything and never overwrites a store silently.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{custody, wait_for, Testnet};

const COMMIT_WAIT: Duration = Duration::from_secs(60);

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

async fn height_of(api_url: &str) -> Result<u64, String> {
    let status: serde_json::Value = reqwest::get(format!("{api_url}/v1/status"))
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    status["height"]
        .as_u64()
        .ok_or_else(|| format!("no height in {status}"))
}

/// Waits until node `index` is at `height` or above.
async fn wait_for_height(net: &Testnet, index: usize, height: u64) {
    let api = net.nodes[index].api_url.clone();
    wait_for(
        net,
        &format!("node {index} at height {height}"),
        COMMIT_WAIT,
        || {
            let api = api.clone();
            async move {
                let found = height_of(&api).await?;
                if found >= height {
                    Ok(())
                } else {
                    Err(format!("height {found}"))
                }
            }
        },
    )
    .await;
}

/// A running four-node network whose node 0 committed `height` blocks.
async fn network_at(height: u64) -> Testnet {
    let mut net = Testnet::init(4);
    net.start_all();
    wait_for_height(&net, 0, height).await;
    net
}

/// `custody node check --home HOME --json`: the committed height and the
/// store's head, or the error.
fn node_check(home: &Path) -> Result<serde_json::Value, String> {
    let (ok, stdout, stderr) = custody(&["node", "check", "--home", s(home), "--json"]);
    if ok {
        Ok(serde_json::from_str(&stdout).expect("check json"))
    } else {
        Err(stderr)
    }
}

fn ledger(home: &Path) -> PathBuf {
    home.join("data/ledger")
}

/// Overwrites the store's main file with zeros (its length kept), as a
/// failed disk returns it; returns the damaged bytes.
fn damage(home: &Path) -> Vec<u8> {
    let path = ledger(home).join("db");
    let length = std::fs::metadata(&path).expect("store file").len();
    let bytes = vec![0u8; length as usize];
    std::fs::write(&path, &bytes).expect("damage the store");
    bytes
}

/// Directories beside the ledger whose names start with `ledger.`.
fn kept_aside(home: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(home.join("data"))
        .expect("data dir")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("ledger."))
        })
        .collect();
    found.sort();
    found
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_rebuilds_a_damaged_store_from_a_peer_and_keeps_the_damaged_copy() {
    let mut net = network_at(4).await;
    let home = net.nodes[3].home.clone();

    // A running node is not repaired under its feet.
    let (ok, _, stderr) = custody(&[
        "node",
        "repair",
        "--home",
        s(&home),
        "--peer",
        &net.nodes[0].api_url,
    ]);
    assert!(!ok, "repair ran on a running node");
    assert!(stderr.contains("in use"), "{stderr}");

    net.nodes[3].stop();
    let committed = node_check(&home).expect("intact store passes")["committed"]
        .as_u64()
        .expect("committed");
    let damaged = damage(&home);
    let refused = node_check(&home).expect_err("the damaged store is refused");
    assert!(refused.contains("custody node repair"), "{refused}");

    let (ok, stdout, stderr) = custody(&[
        "node",
        "repair",
        "--home",
        s(&home),
        "--peer",
        "http://127.0.0.1:9", // nobody listens there: passed over
        "--peer",
        &net.nodes[0].api_url,
        "--json",
    ]);
    assert!(ok, "repair failed: {stderr}\n{}", net.logs());
    let report = json(&stdout);
    assert!(
        report["height"].as_u64().expect("height") >= committed,
        "{report}"
    );
    assert_eq!(report["source"], net.nodes[0].api_url.as_str(), "{report}");
    assert_eq!(
        report["passed_over"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let kept = PathBuf::from(report["damaged_store_kept_at"].as_str().expect("kept at"));
    assert_eq!(kept_aside(&home), vec![kept.clone()]);
    assert_eq!(std::fs::read(kept.join("db")).expect("kept copy"), damaged);
    let check = node_check(&home).expect("the repaired store passes the start check");
    assert_eq!(check["height"], report["height"]);

    // Restarted, it rejoins and follows the chain.
    let target = height_of(&net.nodes[0].api_url).await.expect("height") + 2;
    net.nodes[3].start();
    wait_for_height(&net, 3, target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_from_an_export_refuses_one_below_what_the_node_committed() {
    let mut net = network_at(2).await;
    let home = net.nodes[2].home.clone();
    let work = tempfile::tempdir().expect("tempdir");
    let genesis = home.join("genesis.json");
    let api0 = net.nodes[0].api_url.clone();
    let auditor = net.auditor_key_path();
    let export = |name: &str| {
        let to = work.path().join(name);
        let (ok, _, stderr) = custody(&[
            "chain",
            "export",
            "--node",
            &api0,
            "--genesis",
            s(&genesis),
            "--key",
            s(&auditor),
            "--to",
            s(&to),
        ]);
        assert!(ok, "export failed: {stderr}");
        to
    };
    let old = export("old.export");
    let old_height = height_of(&net.nodes[0].api_url).await.expect("height");
    wait_for_height(&net, 2, old_height + 3).await;
    net.nodes[2].stop();
    let committed = node_check(&home).expect("intact")["committed"]
        .as_u64()
        .expect("committed");
    assert!(committed > old_height);
    damage(&home);

    let (ok, _, stderr) = custody(&[
        "node",
        "repair",
        "--home",
        s(&home),
        "--from-export",
        s(&old),
        "--genesis",
        s(&genesis),
    ]);
    assert!(!ok, "an export behind the node was accepted");
    assert!(stderr.contains("below height"), "{stderr}");
    assert!(
        kept_aside(&home).is_empty(),
        "nothing may change on a refusal"
    );

    let fresh = export("fresh.export");
    let (ok, stdout, stderr) = custody(&[
        "node",
        "repair",
        "--home",
        s(&home),
        "--from-export",
        s(&fresh),
        "--genesis",
        s(&genesis),
        "--json",
    ]);
    assert!(ok, "repair from a fresh export failed: {stderr}");
    let report = json(&stdout);
    assert!(report["height"].as_u64().expect("height") >= committed);
    assert_eq!(kept_aside(&home).len(), 1);
    node_check(&home).expect("the repaired store passes the start check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_is_backed_up_and_restored_into_an_empty_store() {
    let mut net = network_at(3).await;
    let home = net.nodes[1].home.clone();
    let work = tempfile::tempdir().expect("tempdir");
    let backup = work.path().join("node.backup");
    let (ok, stdout, stderr) = custody(&[
        "node",
        "backup",
        "--home",
        s(&home),
        "--to",
        s(&backup),
        "--node",
        &net.nodes[1].api_url,
        "--json",
    ]);
    assert!(
        ok,
        "backup of a running node failed: {stderr}\n{}",
        net.logs()
    );
    let written = json(&stdout);
    let backed_up = written["manifest"]["height"].as_u64().expect("height");
    assert!(
        backed_up
            >= written["manifest"]["committed"]
                .as_u64()
                .expect("committed")
    );

    // A backup is never written over.
    let (ok, _, stderr) = custody(&["node", "backup", "--home", s(&home), "--to", s(&backup)]);
    assert!(!ok);
    assert!(stderr.contains("already exists"), "{stderr}");

    // The node loses its store and its consensus state (a new disk).
    net.nodes[1].stop();
    std::fs::remove_dir_all(ledger(&home)).expect("remove store");
    std::fs::remove_file(home.join("data/consensus.state")).expect("remove state");
    let (ok, stdout, stderr) = custody(&[
        "node",
        "restore",
        "--home",
        s(&home),
        "--from",
        s(&backup),
        "--json",
    ]);
    assert!(ok, "restore failed: {stderr}");
    let restored = json(&stdout);
    assert_eq!(restored["height"].as_u64(), Some(backed_up));
    assert_eq!(restored["consensus_state"], "written from the backup");
    node_check(&home).expect("the restored store passes the start check");

    let target = height_of(&net.nodes[0].api_url).await.expect("height") + 2;
    net.nodes[1].start();
    wait_for_height(&net, 1, target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_verifies_everything_before_writing_and_never_overwrites_a_store() {
    let mut net = network_at(3).await;
    let home = net.nodes[2].home.clone();
    let work = tempfile::tempdir().expect("tempdir");
    let backup = work.path().join("node.backup");
    let (ok, _, stderr) = custody(&[
        "node",
        "backup",
        "--home",
        s(&home),
        "--to",
        s(&backup),
        "--node",
        &net.nodes[2].api_url,
    ]);
    assert!(ok, "backup failed: {stderr}");
    net.nodes[2].stop();
    let before = node_check(&home).expect("intact");

    // Into a store that holds a chain: refused, unless told to replace.
    let (ok, _, stderr) = custody(&["node", "restore", "--home", s(&home), "--from", s(&backup)]);
    assert!(!ok, "a store was overwritten");
    assert!(stderr.contains("--replace"), "{stderr}");
    assert!(kept_aside(&home).is_empty());

    // A backup with one flipped bit in its chain: refused before anything
    // is written, even with --replace.
    let mut bytes = std::fs::read(&backup).expect("backup");
    let last = bytes.len() - 200;
    bytes[last] ^= 0x01;
    let altered = work.path().join("altered.backup");
    std::fs::write(&altered, &bytes).expect("write altered");
    let (ok, _, stderr) = custody(&[
        "node",
        "restore",
        "--home",
        s(&home),
        "--from",
        s(&altered),
        "--replace",
    ]);
    assert!(!ok, "an altered backup was restored");
    assert!(stderr.contains("cut or altered"), "{stderr}");
    assert!(
        kept_aside(&home).is_empty(),
        "nothing may change on a refusal"
    );
    assert_eq!(
        node_check(&home).expect("untouched")["height"],
        before["height"]
    );

    // With --replace the store that was there is moved aside and kept.
    let (ok, stdout, stderr) = custody(&[
        "node",
        "restore",
        "--home",
        s(&home),
        "--from",
        s(&backup),
        "--replace",
        "--json",
    ]);
    assert!(ok, "restore --replace failed: {stderr}");
    let restored = json(&stdout);
    let kept = PathBuf::from(restored["previous_store_kept_at"].as_str().expect("kept"));
    assert_eq!(kept_aside(&home), vec![kept]);
    assert_eq!(restored["consensus_state"], "kept (this node's own record)");
    node_check(&home).expect("the restored store passes the start check");
}
