//! A blob whose bytes change on disk is never served, never reported held,
//! is quarantined (kept, not deleted), counted in
//! `custody_blobs_corrupt_total`, and fetched again from the other nodes,
//! on real `custody node` processes.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{doc_as, doc_ok, wait_for, wait_until_committing, Testnet};

const COMMIT_WAIT: Duration = Duration::from_secs(60);
/// A short scrub interval, so that the scrub runs within the test.
const TEST_SCRUB_INTERVAL_MS: u64 = 300;

fn start_network(scrub_interval_ms: Option<u64>) -> Testnet {
    let mut net = Testnet::init(4);
    if let Some(interval) = scrub_interval_ms {
        for node in &net.nodes {
            let path = node.home.join("config.toml");
            let text = std::fs::read_to_string(&path).expect("config");
            assert!(text.contains("scrub_interval_ms = 3600000"), "{text}");
            let text = text.replace(
                "scrub_interval_ms = 3600000",
                &format!("scrub_interval_ms = {interval}"),
            );
            std::fs::write(&path, text).expect("write config");
        }
    }
    net.start_all();
    net
}

/// Registers a document of `size` bytes at node `index`; returns its id and
/// the hex SHA-256 of its ciphertext (its blob's name).
async fn register(net: &Testnet, index: usize, dir: &Path, title: &str) -> (String, String) {
    let path = dir.join(format!("{title}.pdf"));
    std::fs::write(&path, title.repeat(20_000)).expect("write document");
    let value = doc_ok(
        net,
        index,
        &[
            "register",
            path.to_str().expect("utf-8 path"),
            "--title",
            title,
            "--record-type",
            "civil-register-extract",
            "--classification",
            "internal",
            "--retention",
            "30",
            "--format",
            "application/pdf",
        ],
    );
    let id = value["document"].as_str().expect("document id").to_string();
    let url = format!("{}/v1/documents/{id}", net.nodes[index].api_url);
    let document = net.get_json(&url).await.expect("document");
    let sha256 = document["ciphertext"]["sha256"]
        .as_str()
        .expect("ciphertext sha256")
        .to_string();
    (id, sha256)
}

fn blob_path(net: &Testnet, index: usize, sha256: &str) -> PathBuf {
    net.nodes[index]
        .home
        .join("data/blobs")
        .join(&sha256[..2])
        .join(sha256)
}

fn quarantined_files(net: &Testnet, index: usize, sha256: &str) -> Vec<PathBuf> {
    let directory = net.nodes[index].home.join("data/blobs/quarantine");
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with(sha256))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Flips one bit in the middle of a held blob; returns the damaged bytes.
fn flip_a_bit(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("held blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(path, &bytes).expect("damage the blob");
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn metric(api_url: &str, name: &str) -> Result<u64, String> {
    let text = reqwest::get(format!("{api_url}/metrics"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        })
        .ok_or_else(|| format!("no {name} in /metrics"))
}

async fn post_fetch(net: &Testnet, api_url: &str, document: &str) -> (u16, serde_json::Value) {
    let url = format!("{api_url}/v1/blobs/fetch?document={document}");
    let (name, value) = net.auth_header("POST", &url).await;
    let response = reqwest::Client::new()
        .post(url)
        .header(name, value)
        .send()
        .await
        .expect("fetch request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Document `id`, registered at node `from`, offered to node `to`'s
/// department, and its blob fetched by node `to`: two nodes hold it.
async fn offer_and_fetch(net: &Testnet, from: usize, to: usize, id: &str) {
    let to_name = net.nodes[to].department.clone();
    doc_ok(net, from, &["offer", id, "--to", &to_name]);
    let url = format!("{}/v1/documents/{id}", net.nodes[to].api_url);
    wait_for(net, "the offer to reach the receiver", COMMIT_WAIT, || {
        let url = url.clone();
        async move {
            let document = net.get_json(&url).await?;
            if document["status"].get("in-transfer").is_some() {
                Ok(())
            } else {
                Err(document.to_string())
            }
        }
    })
    .await;
    let (status, answer) = post_fetch(net, &net.nodes[to].api_url, id).await;
    assert_eq!(status, 200, "{answer}\n{}", net.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_flipped_on_disk_is_quarantined_and_fetched_again_by_the_scrub() {
    let net = start_network(Some(TEST_SCRUB_INTERVAL_MS));
    wait_until_committing(&net, COMMIT_WAIT).await;
    let work = tempfile::tempdir().expect("tempdir");
    let (a, b) = (0, 1);
    let (id, sha256) = register(&net, a, work.path(), "scrubbed").await;
    offer_and_fetch(&net, a, b, &id).await;
    let path = blob_path(&net, a, &sha256);
    let intact = std::fs::read(&path).expect("held blob");
    let damaged = flip_a_bit(&path);

    // No request names the document: the scrub alone finds the damage,
    // quarantines the copy and fetches a fresh one from B's node.
    let api = net.nodes[a].api_url.clone();
    wait_for(
        &net,
        "the scrub to replace the damaged blob",
        COMMIT_WAIT,
        || {
            let api = api.clone();
            let path = path.clone();
            let sha256 = sha256.clone();
            async move {
                let refetched = metric(&api, "custody_blobs_refetched_total").await?;
                let held = std::fs::read(&path).unwrap_or_default();
                if refetched >= 1 && sha256_hex(&held) == sha256 {
                    Ok(())
                } else {
                    Err(format!(
                        "refetched {refetched}, held copy hashes to {}",
                        sha256_hex(&held)
                    ))
                }
            }
        },
    )
    .await;
    assert_eq!(std::fs::read(&path).expect("fresh copy"), intact);
    assert_eq!(
        metric(&api, "custody_blobs_corrupt_total")
            .await
            .expect("metric"),
        1
    );
    assert!(
        metric(&api, "custody_blobs_scrubbed_total")
            .await
            .expect("metric")
            >= 1
    );
    let kept = quarantined_files(&net, a, &sha256);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).expect("quarantined copy"), damaged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_blob_is_never_served_nor_reported_held() {
    // The scrub stays at its default hour: each path below must find the
    // damage by itself.
    let net = start_network(None);
    wait_until_committing(&net, COMMIT_WAIT).await;
    let work = tempfile::tempdir().expect("tempdir");
    let (a, b) = (0, 1);
    let api = net.nodes[a].api_url.clone();

    // A clerk's open of a damaged copy fails and writes nothing; the copy
    // is kept aside.
    let (read_id, read_sha) = register(&net, a, work.path(), "read").await;
    flip_a_bit(&blob_path(&net, a, &read_sha));
    let out = work.path().join("opened.pdf");
    let (ok, _, stderr) = doc_as(
        &net,
        a,
        &[
            "open",
            &read_id,
            "-o",
            out.to_str().expect("utf-8"),
            "--purpose",
            "integrity check",
        ],
    );
    assert!(!ok, "a damaged blob was opened");
    assert!(stderr.contains(&read_id), "{stderr}");
    assert!(!out.exists() || std::fs::read(&out).map(|b| b.is_empty()).unwrap_or(true));
    assert_eq!(quarantined_files(&net, a, &read_sha).len(), 1);

    // POST /v1/blobs/fetch does not answer "held" for a damaged copy: it
    // quarantines it and tries the other nodes (none holds this one).
    let (held_id, held_sha) = register(&net, a, work.path(), "held").await;
    flip_a_bit(&blob_path(&net, a, &held_sha));
    let (status, answer) = post_fetch(&net, &api, &held_id).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "blob_fetch_failed", "{answer}");
    assert!(!blob_path(&net, a, &held_sha).exists());
    assert_eq!(quarantined_files(&net, a, &held_sha).len(), 1);

    // A peer's fetch of a damaged copy gets nothing: the serving node
    // re-hashes before the first range leaves.
    let (peer_id, peer_sha) = register(&net, a, work.path(), "peer").await;
    let b_name = net.nodes[b].department.clone();
    doc_ok(&net, a, &["offer", &peer_id, "--to", &b_name]);
    let url = format!("{}/v1/documents/{peer_id}", net.nodes[b].api_url);
    let shared = &net;
    wait_for(&net, "the offer to reach B", COMMIT_WAIT, || {
        let url = url.clone();
        async move {
            let document = shared.get_json(&url).await?;
            if document["status"].get("in-transfer").is_some() {
                Ok(())
            } else {
                Err(document.to_string())
            }
        }
    })
    .await;
    flip_a_bit(&blob_path(&net, a, &peer_sha));
    let (status, answer) = post_fetch(&net, &net.nodes[b].api_url, &peer_id).await;
    assert_eq!(status, 502, "{answer}");
    assert!(!blob_path(&net, b, &peer_sha).exists());
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("quarantined"),
        "{answer}"
    );
    assert_eq!(quarantined_files(&net, a, &peer_sha).len(), 1);

    assert_eq!(
        metric(&api, "custody_blobs_corrupt_total")
            .await
            .expect("metric"),
        3
    );
}

/// A short bound after which an unnamed upload is an orphan.
const TEST_ORPHAN_AFTER_MS: u64 = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_no_committed_transaction_names_is_collected_after_the_bound_and_named_blobs_stay(
) {
    let mut net = Testnet::init(2);
    for node in &net.nodes {
        let path = node.home.join("config.toml");
        let text = std::fs::read_to_string(&path).expect("config");
        assert!(text.contains("orphan_after_ms = 86400000"), "{text}");
        let text = text
            .replace(
                "scrub_interval_ms = 3600000",
                &format!("scrub_interval_ms = {TEST_SCRUB_INTERVAL_MS}"),
            )
            .replace(
                "orphan_after_ms = 86400000",
                &format!("orphan_after_ms = {TEST_ORPHAN_AFTER_MS}"),
            );
        std::fs::write(&path, text).expect("write config");
    }
    net.start_all();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let work = tempfile::tempdir().expect("tempdir");
    let (_, named_sha) = register(&net, 0, work.path(), "named").await;

    // A clerk uploads a blob and never registers it.
    let clerk_file = net.member_key(&net.nodes[0].department, "clerk");
    let clerk = ed25519_dalek::SigningKey::from_bytes(
        &custody_node::home::read_key_file(&clerk_file).expect("clerk key"),
    );
    let body: Vec<u8> = (0..50_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let orphan_sha = sha256_hex(&body);
    let mut sha_bytes = [0u8; 32];
    sha_bytes.copy_from_slice(&hex::decode(&orphan_sha).expect("hex"));
    let response = reqwest::Client::new()
        .put(format!(
            "{}/v1/blobs/{orphan_sha}?size_bytes={}",
            net.nodes[0].api_url,
            body.len()
        ))
        .header(
            "x-custody-upload",
            common::signed_upload(&net, 0, &clerk, sha_bytes, body.len() as u64).await,
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    assert!(
        response.status().is_success(),
        "upload: {}",
        response.status()
    );
    assert!(blob_path(&net, 0, &orphan_sha).exists());

    let api = net.nodes[0].api_url.clone();
    wait_for(&net, "the orphan to be collected", COMMIT_WAIT, || {
        let api = api.clone();
        async move {
            let collected = metric(&api, "custody_blobs_orphans_collected_total").await?;
            if collected >= 1 {
                Ok(())
            } else {
                Err(format!("{collected} collected"))
            }
        }
    })
    .await;
    assert!(
        !blob_path(&net, 0, &orphan_sha).exists(),
        "the orphan upload is still on disk"
    );
    assert!(
        blob_path(&net, 0, &named_sha).exists(),
        "the registered document's blob was collected"
    );
}
