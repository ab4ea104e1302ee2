//! The clerk's document workflow on a real four-node network: `custody doc`
//! commands against `custody node` processes on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{doc_as, doc_ok, doc_with_key, get_json, wait_for, wait_until_committing, Testnet};
use custody_ledger::types::{DocumentId, Hash32, PublicKey, TxId};
use custody_node::api_documents::{ReadRequest, SignedReadRequest, READ_REQUEST_VERSION};

const COMMIT_WAIT: Duration = Duration::from_secs(60);

/// A small fetch range so that a one-megabyte document crosses the network
/// in many `/custody/blob/1` requests.
const TEST_FETCH_RANGE_BYTES: usize = 65_536;

fn start_network() -> Testnet {
    let mut net = Testnet::init(4);
    for node in &net.nodes {
        let path = node.home.join("config.toml");
        let text = std::fs::read_to_string(&path).expect("config");
        assert!(text.contains("fetch_range_bytes = 4194304"), "{text}");
        let text = text.replace(
            "fetch_range_bytes = 4194304",
            &format!("fetch_range_bytes = {TEST_FETCH_RANGE_BYTES}"),
        );
        std::fs::write(&path, text).expect("write config");
    }
    net.start_all();
    net
}

fn write_document(dir: &Path, name: &str, size: usize) -> (PathBuf, Vec<u8>) {
    let mut bytes = Vec::with_capacity(size);
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ size as u64;
    while bytes.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(size);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("write document");
    (path, bytes)
}

fn register(net: &Testnet, index: usize, file: &Path, title: &str) -> String {
    let value = doc_ok(
        net,
        index,
        &[
            "register",
            file.to_str().expect("utf-8 path"),
            "--title",
            title,
            "--record-type",
            "civil-register-extract",
            "--classification",
            "confidential",
            "--retention",
            "30",
            "--format",
            "application/pdf",
        ],
    );
    value["document"].as_str().expect("document id").to_string()
}

/// Waits until node `index` sees document `id` in a state `check` accepts
/// (a clerk's node may be a block behind the node that committed).
async fn wait_for_document<F>(net: &Testnet, index: usize, id: &str, what: &str, check: F)
where
    F: Fn(&serde_json::Value) -> bool,
{
    let url = format!("{}/v1/documents/{id}", net.nodes[index].api_url);
    let check = &check;
    wait_for(net, what, COMMIT_WAIT, || {
        let url = url.clone();
        async move {
            let doc = net.get_json(&url).await?;
            if check(&doc) {
                Ok(())
            } else {
                Err(doc.to_string())
            }
        }
    })
    .await;
}

/// The kinds of a document's events on one node, in order.
async fn event_kinds(
    net: &Testnet,
    api_url: &str,
    document: &str,
) -> Result<Vec<(String, String)>, String> {
    let page = net
        .get_json(&format!("{api_url}/v1/documents/{document}/history"))
        .await?;
    Ok(page["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .map(|event| {
            let kind = match &event["kind"] {
                serde_json::Value::String(name) => name.clone(),
                serde_json::Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
                _ => String::new(),
            };
            (kind, event["department"].as_str().unwrap_or("").to_string())
        })
        .collect())
}

fn signed_read(
    net: &Testnet,
    index: usize,
    document: &str,
    ciphertext: Hash32,
    chain_id: &str,
) -> SignedReadRequest {
    signed_read_with(net, index, document, ciphertext, chain_id, None, 0)
}

/// A read request signed by department `index`'s clerk, naming `access_tx`,
/// stamped `age_ms` in the past.
fn signed_read_with(
    net: &Testnet,
    index: usize,
    document: &str,
    ciphertext: Hash32,
    chain_id: &str,
    access_tx: Option<TxId>,
    age_ms: u64,
) -> SignedReadRequest {
    let node = &net.nodes[index];
    let secret = custody_node::home::read_key_file(&net.member_key(&node.department, "clerk"))
        .expect("clerk key");
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    SignedReadRequest::sign(
        ReadRequest {
            format_version: READ_REQUEST_VERSION,
            chain_id: chain_id.to_string(),
            member: PublicKey(key.verifying_key().to_bytes()),
            document: DocumentId::new(document.to_string()).expect("id"),
            ciphertext_sha256: ciphertext,
            access_tx,
            time_ms: now_ms - age_ms,
            nonce: now_ms ^ age_ms,
        },
        &key,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_moves_from_a_to_b_and_is_read_by_c_only_under_a_grant() {
    let net = start_network();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let (a, b, c) = (0, 1, 2);
    let b_name = net.nodes[b].department.clone();
    let c_name = net.nodes[c].department.clone();
    let work = tempfile::tempdir().expect("tempdir");
    let (file, original) = write_document(work.path(), "extract.pdf", 1_000_003);

    // A registers and offers to B.
    let id = register(&net, a, &file, "Extract of the civil register");
    doc_ok(&net, a, &["offer", &id, "--to", &b_name]);

    // B's node fetches the blob from A's node; B checks fixity and accepts.
    wait_for_document(&net, b, &id, "B's node to see the offer", |doc| {
        doc["status"].get("in-transfer").is_some()
    })
    .await;
    let accepted = doc_ok(&net, b, &["accept", &id]);
    assert!(accepted["fetched_from"].is_string(), "{accepted}");

    // Custody shows B on every node.
    for node in &net.nodes {
        let url = format!("{}/v1/documents/{id}", node.api_url);
        let shared = &net;
        wait_for(&net, "custody to show B", COMMIT_WAIT, || {
            let url = url.clone();
            let b_name = b_name.clone();
            async move {
                let doc = shared.get_json(&url).await?;
                if doc["custodian"] == b_name.as_str() && doc["status"] == "active" {
                    Ok(())
                } else {
                    Err(doc.to_string())
                }
            }
        })
        .await;
    }

    // B, the custodian, reads it.
    let b_out = work.path().join("b-copy.pdf");
    let b_opened = doc_ok(
        &net,
        b,
        &[
            "open",
            &id,
            "-o",
            b_out.to_str().expect("utf-8"),
            "--purpose",
            "intake check",
        ],
    );
    assert_eq!(std::fs::read(&b_out).expect("b copy"), original);

    // C cannot open it: refused, and nothing is served.
    let c_out = work.path().join("c-copy.pdf");
    let (ok, _, stderr) = doc_as(
        &net,
        c,
        &[
            "open",
            &id,
            "-o",
            c_out.to_str().expect("utf-8"),
            "--purpose",
            "curiosity",
        ],
    );
    assert!(!ok, "C opened a document it holds no grant for");
    assert!(
        stderr.contains(&id) && stderr.contains("holds no grant"),
        "{stderr}"
    );
    assert!(!c_out.exists());
    let doc = net
        .get_json(&format!("{}/v1/documents/{id}", net.nodes[c].api_url))
        .await
        .expect("doc");
    let ciphertext =
        Hash32::from_hex(doc["ciphertext"]["sha256"].as_str().expect("sha")).expect("hex");
    let status = get_json(&format!("{}/v1/status", net.nodes[c].api_url))
        .await
        .expect("status");
    let chain_id = status["chain_id"].as_str().expect("chain id").to_string();
    let http = reqwest::Client::new();
    for target in [b, c] {
        let response = http
            .post(format!("{}/v1/reads", net.nodes[target].api_url))
            .json(&signed_read(&net, c, &id, ciphertext, &chain_id))
            .send()
            .await
            .expect("read request");
        assert_eq!(
            response.status().as_u16(),
            403,
            "C's read was not refused by node {target}"
        );
        let body = response.bytes().await.expect("body");
        assert!(body.len() < 2048, "a refusal carried {} bytes", body.len());
    }
    let fetch_url = format!("{}/v1/blobs/fetch?document={id}", net.nodes[c].api_url);
    let (auth_name, auth_value) = net.auth_header("POST", &fetch_url).await;
    let fetch = http
        .post(fetch_url)
        .header(auth_name, auth_value)
        .send()
        .await
        .expect("fetch");
    assert_eq!(
        fetch.status().as_u16(),
        502,
        "C's node got the blob without a grant"
    );
    let refusal = fetch.text().await.expect("text");
    assert!(refusal.contains("neither custodian"), "{refusal}");

    // B's record-access served its one download (`doc open`): a fresh
    // signed read naming it is refused; the same request again is a
    // replay, and a stale one is refused.
    let access_tx = TxId::from_hex(b_opened["tx_id"].as_str().expect("tx id")).expect("hex");
    let request = signed_read_with(&net, b, &id, ciphertext, &chain_id, Some(access_tx), 0);
    let reads_url = format!("{}/v1/reads", net.nodes[b].api_url);
    let used = http
        .post(&reads_url)
        .json(&request)
        .send()
        .await
        .expect("read");
    assert_eq!(used.status().as_u16(), 403);
    let used = used.text().await.expect("text");
    assert!(used.contains("read_access_already_used"), "{used}");
    let replay = http
        .post(&reads_url)
        .json(&request)
        .send()
        .await
        .expect("read");
    assert_eq!(replay.status().as_u16(), 403);
    let replay = replay.text().await.expect("text");
    // Refused by the rule (the record is used) before the replay check.
    assert!(
        replay.contains("replay") || replay.contains("read_access_already_used"),
        "{replay}"
    );
    let stale = signed_read_with(
        &net,
        b,
        &id,
        ciphertext,
        &chain_id,
        Some(access_tx),
        600_000,
    );
    let stale = http
        .post(&reads_url)
        .json(&stale)
        .send()
        .await
        .expect("read");
    assert_eq!(stale.status().as_u16(), 403);
    let stale = stale.text().await.expect("text");
    assert!(stale.contains("clock"), "{stale}");

    // B grants C; C opens it and gets the original bytes.
    doc_ok(&net, b, &["grant", &id, "--to", &c_name, "--until", "+1h"]);
    wait_for_document(&net, c, &id, "C's node to see the grant", |doc| {
        doc["grants"]
            .as_array()
            .is_some_and(|grants| !grants.is_empty())
    })
    .await;
    let opened = doc_ok(
        &net,
        c,
        &[
            "open",
            &id,
            "-o",
            c_out.to_str().expect("utf-8"),
            "--purpose",
            "benefit claim 2026-118",
        ],
    );
    assert_eq!(opened["plaintext_bytes"], original.len());
    assert_eq!(std::fs::read(&c_out).expect("c copy"), original);

    // The history on every node lists every event in order, each read
    // included; `custody doc` seals the title and the purposes.
    let a_name = net.nodes[a].department.clone();
    let expected: Vec<(String, String)> = [
        ("registered-sealed", &a_name),
        ("offered", &a_name),
        ("accessed-sealed", &b_name),
        ("accepted", &b_name),
        ("accessed-sealed", &b_name),
        ("granted", &b_name),
        ("accessed-sealed", &c_name),
    ]
    .iter()
    .map(|(kind, department)| (kind.to_string(), department.to_string()))
    .collect();
    let shared = &net;
    for node in &net.nodes {
        let api_url = node.api_url.clone();
        wait_for(&net, "the full history on every node", COMMIT_WAIT, || {
            let api_url = api_url.clone();
            let id = id.clone();
            let expected = expected.clone();
            async move {
                let kinds = event_kinds(shared, &api_url, &id).await?;
                if kinds == expected {
                    Ok(())
                } else {
                    Err(format!("{kinds:?}"))
                }
            }
        })
        .await;
    }
    let (ok, history, stderr) = doc_as(&net, c, &["history", &id]);
    assert!(ok, "{stderr}");
    assert_eq!(
        history["items"].as_array().map(Vec::len),
        Some(7),
        "{history}"
    );
    let (ok, first_page, stderr) = doc_as(&net, a, &["history", &id, "--limit", "4"]);
    assert!(ok, "{stderr}");
    assert_eq!(first_page["items"].as_array().map(Vec::len), Some(4));
    let cursor = first_page["next_cursor"]
        .as_str()
        .expect("a cursor after 4 of 7");
    let (ok, second_page, stderr) = doc_as(&net, a, &["history", &id, "--cursor", cursor]);
    assert!(ok, "{stderr}");
    assert_eq!(second_page["items"].as_array().map(Vec::len), Some(3));
    assert!(second_page["next_cursor"].is_null());
    // The title travels sealed: the custodian's department key opens it, a
    // department given no key to the document sees it sealed; the node's
    // answer holds it only sealed.
    let (ok, shown, stderr) = doc_as(&net, b, &["show", &id]);
    assert!(ok, "{stderr}");
    assert_eq!(shown["title"], "", "{shown}");
    assert_eq!(shown["title_opened"], "Extract of the civil register");
    let outsider = 3;
    let (ok, shown, stderr) = doc_as(&net, outsider, &["show", &id]);
    assert!(ok, "{stderr}");
    assert!(shown["title_opened"].is_null(), "{shown}");
    assert!(shown["sealed_title"].is_string(), "{shown}");
    let document = net
        .get_json(&format!(
            "{}/v1/documents/{id}",
            net.nodes[outsider].api_url
        ))
        .await
        .expect("the document");
    assert!(
        !document
            .to_string()
            .contains("Extract of the civil register"),
        "{document}"
    );
    // The history in words opens each sealed purpose for a department that
    // holds the key, and shows it sealed to one that does not.
    let history_text = |index: usize| {
        let node = &net.nodes[index];
        let output = std::process::Command::new(common::BINARY)
            .args(["doc", "history", &id, "--node", &node.api_url, "--key"])
            .arg(net.member_key(&node.department, "clerk"))
            .arg("--department-key")
            .arg(node.home.join("members/department.key"))
            .output()
            .expect("run custody doc history");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let custodian_view = history_text(b);
    assert!(
        custodian_view.contains("read: benefit claim 2026-118"),
        "{custodian_view}"
    );
    let outsider_view = history_text(outsider);
    assert!(outsider_view.contains("read: (sealed)"), "{outsider_view}");
    assert!(!outsider_view.contains("benefit claim"), "{outsider_view}");
    let (ok, list, stderr) = doc_as(&net, a, &["list", "--custodian", &b_name]);
    assert!(ok, "{stderr}");
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|d| d["id"] == id.as_str()),
        "{list}"
    );
}

/// A member's secret key from the testnet's `members/ROLE.key`.
fn member_secret(net: &Testnet, index: usize, role: &str) -> ed25519_dalek::SigningKey {
    let path = net.member_key(&net.nodes[index].department, role);
    let secret = custody_node::home::read_key_file(&path).expect("member key");
    ed25519_dalek::SigningKey::from_bytes(&secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_not_signed_by_an_active_clerk_is_refused_and_stores_nothing() {
    let net = start_network();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let body = b"an arbitrary blob".to_vec();
    let sha256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&body).into();
    let url = format!(
        "{}/v1/blobs/{}?size_bytes={}",
        net.nodes[0].api_url,
        hex::encode(sha256),
        body.len()
    );
    let http = reqwest::Client::new();
    // No signature: 401.
    let unsigned = http
        .put(&url)
        .body(body.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(unsigned.status().as_u16(), 401);
    assert!(unsigned
        .text()
        .await
        .expect("text")
        .contains("upload_not_signed"));
    // Signed by an admin, who is not a clerk: 403.
    let admin = member_secret(&net, 0, "admin");
    let by_admin = http
        .put(&url)
        .header(
            "x-custody-upload",
            common::signed_upload(&net, 0, &admin, sha256, body.len() as u64).await,
        )
        .body(body.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(by_admin.status().as_u16(), 403);
    // A clerk's signature over another blob does not cover this one.
    let clerk = member_secret(&net, 0, "clerk");
    let other = http
        .put(&url)
        .header(
            "x-custody-upload",
            common::signed_upload(&net, 0, &clerk, [9; 32], body.len() as u64).await,
        )
        .body(body.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(other.status().as_u16(), 403);
    let (auth_name, auth_value) = net.auth_header("GET", &url).await;
    let held = http
        .get(&url)
        .header(auth_name, auth_value)
        .send()
        .await
        .expect("status");
    assert_eq!(held.status().as_u16(), 404, "nothing was stored");
    // The clerk's own signature stores it.
    let stored = http
        .put(&url)
        .header(
            "x-custody-upload",
            common::signed_upload(&net, 0, &clerk, sha256, body.len() as u64).await,
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    assert!(
        stored.status().is_success(),
        "{}",
        stored.text().await.expect("text")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blob_wrong_key_and_expired_grant_are_refused_and_fetch_falls_back_to_a_good_copy()
{
    let net = start_network();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let (a, b, c) = (0, 1, 2);
    let b_name = net.nodes[b].department.clone();
    let c_name = net.nodes[c].department.clone();
    let work = tempfile::tempdir().expect("tempdir");

    // An upload whose bytes do not hash to its announced address is refused,
    // and so is one larger than blobs.blob_bytes_max, before any byte is read.
    let http = reqwest::Client::new();
    let clerk = member_secret(&net, a, "clerk");
    let wrong = http
        .put(format!(
            "{}/v1/blobs/{}?size_bytes=5",
            net.nodes[a].api_url,
            "ab".repeat(32)
        ))
        .header(
            "x-custody-upload",
            common::signed_upload(&net, a, &clerk, [0xab; 32], 5).await,
        )
        .body("hello")
        .send()
        .await
        .expect("upload");
    assert_eq!(wrong.status().as_u16(), 422);
    assert!(wrong.text().await.expect("text").contains("blob_mismatch"));
    let huge = http
        .put(format!(
            "{}/v1/blobs/{}?size_bytes={}",
            net.nodes[a].api_url,
            "cd".repeat(32),
            1u64 << 40
        ))
        .header(
            "x-custody-upload",
            common::signed_upload(&net, a, &clerk, [0xcd; 32], 1u64 << 40).await,
        )
        .body("x")
        .send()
        .await
        .expect("upload");
    assert_eq!(huge.status().as_u16(), 413);

    // A wrong department key is refused before anything is recorded.
    let (file, _) = write_document(work.path(), "minutes.pdf", 200_000);
    let id = register(&net, a, &file, "Minutes");
    let out = work.path().join("out.pdf");
    let b_key = net.nodes[b].home.join("members/department.key");
    let (ok, _, stderr) = doc_with_key(
        &net,
        a,
        &b_key,
        &[
            "open",
            &id,
            "-o",
            out.to_str().expect("utf-8"),
            "--purpose",
            "audit",
        ],
    );
    assert!(!ok, "opened with another department's key");
    assert!(stderr.contains("not department"), "{stderr}");
    assert!(!out.exists());
    let kinds = event_kinds(&net, &net.nodes[a].api_url, &id)
        .await
        .expect("history");
    assert_eq!(kinds.len(), 1, "a refused open left an event: {kinds:?}");

    // An expired grant is refused.
    doc_ok(&net, a, &["grant", &id, "--to", &c_name, "--until", "+3s"]);
    let grant_end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
        + 3_000;
    let status_url = format!("{}/v1/status", net.nodes[c].api_url);
    wait_for(
        &net,
        "block time to pass the grant's end",
        COMMIT_WAIT,
        || {
            let status_url = status_url.clone();
            async move {
                let status = get_json(&status_url).await?;
                let time = status["last_block_time_ms"].as_u64().unwrap_or(0);
                if time > grant_end + 500 {
                    Ok(())
                } else {
                    Err(format!("block time {time}"))
                }
            }
        },
    )
    .await;
    let (ok, _, stderr) = doc_as(
        &net,
        c,
        &[
            "open",
            &id,
            "-o",
            out.to_str().expect("utf-8"),
            "--purpose",
            "late",
        ],
    );
    assert!(!ok, "an expired grant still opened the document");
    assert!(
        stderr.contains("record-access") || stderr.contains("grant"),
        "{stderr}"
    );
    assert!(!out.exists());

    // A tampered blob (one byte changed on A's disk) is refused on open,
    // naming the document, and moved to quarantine: it is never sent to
    // another node either.
    let (file, _) = write_document(work.path(), "deed.pdf", 300_000);
    let id = register(&net, a, &file, "Deed");
    let doc = net
        .get_json(&format!("{}/v1/documents/{id}", net.nodes[a].api_url))
        .await
        .expect("doc");
    let sha = doc["ciphertext"]["sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    let blob = net.nodes[a]
        .home
        .join("data/blobs")
        .join(&sha[..2])
        .join(&sha);
    let mut bytes = std::fs::read(&blob).expect("blob on A's disk");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&blob, &bytes).expect("tamper");

    let (ok, _, stderr) = doc_as(
        &net,
        a,
        &[
            "open",
            &id,
            "-o",
            out.to_str().expect("utf-8"),
            "--purpose",
            "check",
        ],
    );
    assert!(!ok, "a tampered blob was opened");
    assert!(
        stderr.contains(&id) && stderr.contains("does not match"),
        "{stderr}"
    );
    assert!(!out.exists());

    doc_ok(&net, a, &["offer", &id, "--to", &b_name]);
    wait_for_document(&net, b, &id, "B's node to see the offer", |doc| {
        doc["status"].get("in-transfer").is_some()
    })
    .await;
    let (ok, _, stderr) = doc_as(&net, b, &["accept", &id]);
    assert!(!ok, "a tampered blob was accepted");
    assert!(
        stderr.contains(&id) && stderr.contains("could not be fetched"),
        "{stderr}"
    );
    let doc = net
        .get_json(&format!("{}/v1/documents/{id}", net.nodes[b].api_url))
        .await
        .expect("doc");
    assert_eq!(doc["custodian"], net.nodes[a].department.as_str());
    assert!(!net.nodes[b]
        .home
        .join("data/blobs")
        .join(&sha[..2])
        .join(&sha)
        .exists());

    // A fetch that one node refuses (its copy is damaged) tries the next: a
    // grantee's node that fetched a good copy earlier serves it after A's
    // copy is altered, and B accepts.
    let (file, original) = write_document(work.path(), "will.pdf", 250_000);
    let id = register(&net, a, &file, "Will");
    doc_ok(&net, a, &["grant", &id, "--to", &c_name, "--until", "+1h"]);
    wait_for_document(&net, c, &id, "C's node to see the grant", |doc| {
        doc["grants"]
            .as_array()
            .is_some_and(|grants| !grants.is_empty())
    })
    .await;
    let c_copy = work.path().join("will-c.pdf");
    doc_ok(
        &net,
        c,
        &[
            "open",
            &id,
            "-o",
            c_copy.to_str().expect("utf-8"),
            "--purpose",
            "probate",
        ],
    );
    assert_eq!(std::fs::read(&c_copy).expect("c copy"), original);
    let doc = net
        .get_json(&format!("{}/v1/documents/{id}", net.nodes[a].api_url))
        .await
        .expect("doc");
    let sha = doc["ciphertext"]["sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    let blob = net.nodes[a]
        .home
        .join("data/blobs")
        .join(&sha[..2])
        .join(&sha);
    let mut bytes = std::fs::read(&blob).expect("blob on A's disk");
    bytes[0] ^= 0x80;
    std::fs::write(&blob, &bytes).expect("tamper");
    doc_ok(&net, a, &["offer", &id, "--to", &b_name]);
    wait_for_document(&net, b, &id, "B's node to see the offer", |doc| {
        doc["status"].get("in-transfer").is_some()
    })
    .await;
    let accepted = doc_ok(&net, b, &["accept", &id]);
    let c_peer = get_json(&format!("{}/v1/status", net.nodes[c].api_url))
        .await
        .expect("status")["peer_id"]
        .clone();
    assert_eq!(accepted["fetched_from"], c_peer, "{accepted}");
}
