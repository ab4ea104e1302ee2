//! A Byzantine validator equivocates on a real network, and the chain
//! keeps the proof: four departments' nodes plus a twin of one of them (a
//! second node holding the same validator key). Where the twins disagree
//! (each proposes its own block when their department proposes, and
//! prevotes it), the validator has signed two conflicting votes; the
//! honest nodes' evidence desks put them on chain, every honest node holds
//! the record, `custody audit verify` checks it offline on an export and
//! `custody audit evidence` lists it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Generous: equivocation needs the twin's department to propose while
/// both twins are in the round, which happens every few heights.
const EVIDENCE_WAIT: Duration = Duration::from_secs(240);
const START_WAIT: Duration = Duration::from_secs(90);

/// The twin's department (index into the genesis nodes).
const TWIN_OF: usize = 3;

fn validator_key_hex(net: &Testnet, index: usize) -> String {
    let secret =
        custody_node::home::read_key_file(&net.nodes[index].home.join("keys/validator.key"))
            .expect("validator key");
    hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&secret)
            .verifying_key()
            .to_bytes(),
    )
}

/// The evidence a node lists against `validator`, or what it answered.
async fn evidence_against(api_url: &str, validator: &str) -> Result<serde_json::Value, String> {
    let page = get_json(&format!("{api_url}/v1/evidence")).await?;
    let items = page["items"].as_array().cloned().unwrap_or_default();
    items
        .into_iter()
        .find(|item| item["validator"].as_str() == Some(validator))
        .ok_or_else(|| format!("no evidence against {validator} yet: {page}"))
}

async fn metric(api_url: &str, name: &str) -> Result<u64, String> {
    let (status, body) = get(&format!("{api_url}/metrics")).await?;
    if status != 200 {
        return Err(format!("{status} {body}"));
    }
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} "))?.trim().parse().ok())
        .ok_or_else(|| format!("no {name} in the metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twin_validators_equivocation_is_committed_on_every_honest_node() {
    let mut net = Testnet::init(4);
    let twin = net.add_twin(TWIN_OF);
    let validator = validator_key_hex(&net, TWIN_OF);
    net.start_all();
    // The honest network runs first; then the twin joins, syncs and signs.
    for index in 0..net.genesis_nodes {
        let url = format!("{}/v1/status", net.nodes[index].api_url);
        wait_for(
            &net,
            "every genesis node to commit a block",
            START_WAIT,
            || {
                let url = url.clone();
                async move {
                    let status = get_json(&url).await?;
                    match status["height"].as_u64() {
                        Some(height) if height >= 1 => Ok(()),
                        _ => Err(status.to_string()),
                    }
                }
            },
        )
        .await;
    }
    net.nodes[twin].start();

    let honest: Vec<usize> = (0..net.genesis_nodes).filter(|i| *i != TWIN_OF).collect();
    let mut records = Vec::new();
    for &index in &honest {
        let api_url = net.nodes[index].api_url.clone();
        let record = wait_for(
            &net,
            &format!(
                "{} to hold evidence against the twin's validator {validator}",
                net.nodes[index].department
            ),
            EVIDENCE_WAIT,
            || {
                let api_url = api_url.clone();
                let validator = validator.clone();
                async move { evidence_against(&api_url, &validator).await }
            },
        )
        .await;
        records.push(record);
    }
    // The record is the chain's: every honest node holds the same one.
    let record = records[0].clone();
    for &index in &honest {
        let api_url = net.nodes[index].api_url.clone();
        let expected = record.clone();
        wait_for(
            &net,
            "every honest node to hold the same record",
            START_WAIT,
            || {
                let api_url = api_url.clone();
                let expected = expected.clone();
                async move {
                    let page = get_json(&format!("{api_url}/v1/evidence")).await?;
                    let items = page["items"].as_array().cloned().unwrap_or_default();
                    if items.contains(&expected) {
                        Ok(())
                    } else {
                        Err(page.to_string())
                    }
                }
            },
        )
        .await;
    }
    let record = &record;
    eprintln!("evidence on chain: {record}");
    assert_eq!(
        record["department"].as_str(),
        Some(net.nodes[TWIN_OF].department.as_str()),
        "{record}"
    );
    assert_ne!(record["first_block"], record["second_block"], "{record}");

    // The metric moved on the honest nodes (they were running when it
    // committed).
    for &index in &honest {
        let api_url = net.nodes[index].api_url.clone();
        wait_for(
            &net,
            "custody_evidence_committed_total ≥ 1",
            START_WAIT,
            || {
                let api_url = api_url.clone();
                async move {
                    match metric(&api_url, "custody_evidence_committed_total").await? {
                        0 => Err("0".to_string()),
                        n => Ok(n),
                    }
                }
            },
        )
        .await;
    }

    // The twin leaves; the record stays on chain.
    net.nodes[twin].kill();
    let tx = record["tx"].as_str().expect("tx").to_string();
    let height = record["height"].as_u64().expect("height");

    // Offline: an export of the chain verifies, evidence included.
    let export = net.dir.path().join("equivocation.custody");
    let (ok, _, stderr) = custody(&[
        "chain",
        "export",
        "--node",
        &net.nodes[honest[0]].api_url,
        "--genesis",
        net.dir.path().join("genesis.json").to_str().expect("path"),
        "--key",
        net.auditor_key_path().to_str().expect("path"),
        "--to",
        export.to_str().expect("path"),
    ]);
    assert!(ok, "chain export failed: {stderr}");
    let (ok, stdout, stderr) = custody(&[
        "audit",
        "verify",
        "--export",
        export.to_str().expect("path"),
        "--json",
    ]);
    assert!(ok, "audit verify failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("verify JSON");
    assert!(
        summary["evidence"].as_u64().unwrap_or(0) >= 1,
        "audit verify counts no evidence: {summary}"
    );

    // `custody audit evidence` lists it, offline and from a node.
    let (ok, stdout, stderr) = custody(&[
        "audit",
        "evidence",
        "--export",
        export.to_str().expect("path"),
        "--json",
    ]);
    assert!(ok, "audit evidence --export failed: {stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).expect("evidence JSON");
    let found = listed["evidence"]
        .as_array()
        .expect("evidence list")
        .iter()
        .find(|e| e["tx"].as_str() == Some(tx.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("audit evidence does not list {tx}: {listed}"));
    assert_eq!(found["validator"].as_str(), Some(validator.as_str()));
    assert_eq!(found["height"].as_u64(), Some(height));
    assert_eq!(found["votes_checked"], serde_json::Value::Bool(true));

    let output = Command::new(BINARY)
        .args(["audit", "evidence", "--node", &net.nodes[honest[1]].api_url])
        .arg("--key")
        .arg(net.auditor_key_path())
        .output()
        .expect("run custody audit evidence --node");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "audit evidence --node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains(&validator), "{text}");
    assert!(text.contains("votes checked here"), "{text}");
}
