//! Every read recorded, without exception, on a real two-node network: no
//! ciphertext without a committed access record, one record serves one
//! download, a failed download is not a read, and a refused read is
//! attested with the member's own signed request, visible to an auditor
//! offline.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{doc_ok, get_json, wait_for, wait_until_committing, Testnet, BINARY};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{DocumentId, EventHash, Hash32, Nonce, PublicKey, TxId};
use custody_node::api_documents::{ReadRequest, SignedReadRequest, READ_REQUEST_VERSION};

const COMMIT_WAIT: Duration = Duration::from_secs(60);

fn start_network() -> Testnet {
    let mut net = Testnet::init(2);
    net.start_all();
    net
}

fn register(net: &Testnet, index: usize, dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let bytes: Vec<u8> = (0..120_000u32).map(|i| (i * 31 + 7) as u8).collect();
    std::fs::write(&path, bytes).expect("write document");
    let value = doc_ok(
        net,
        index,
        &[
            "register",
            path.to_str().expect("utf-8 path"),
            "--title",
            name,
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

fn clerk_key(net: &Testnet, index: usize) -> ed25519_dalek::SigningKey {
    let node = &net.nodes[index];
    let secret = custody_node::home::read_key_file(&net.member_key(&node.department, "clerk"))
        .expect("clerk key");
    ed25519_dalek::SigningKey::from_bytes(&secret)
}

/// A fresh read request signed by department `index`'s clerk.
fn signed_read(
    net: &Testnet,
    index: usize,
    document: &str,
    ciphertext: Hash32,
    chain_id: &str,
    access_tx: Option<TxId>,
) -> SignedReadRequest {
    let key = clerk_key(net, index);
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
            time_ms: now_ms,
            nonce: now_ms ^ 0x5eed,
        },
        &key,
    )
}

async fn chain_id(net: &Testnet, index: usize) -> String {
    let status = get_json(&format!("{}/v1/status", net.nodes[index].api_url))
        .await
        .expect("status");
    status["chain_id"].as_str().expect("chain id").to_string()
}

async fn document(net: &Testnet, index: usize, id: &str) -> serde_json::Value {
    net.get_json(&format!("{}/v1/documents/{id}", net.nodes[index].api_url))
        .await
        .expect("document")
}

fn ciphertext_of(doc: &serde_json::Value) -> Hash32 {
    Hash32::from_hex(doc["ciphertext"]["sha256"].as_str().expect("sha")).expect("hex")
}

/// Records an access as department `index`'s clerk, without downloading.
async fn record_access(net: &Testnet, index: usize, id: &str, purpose: &str) -> TxId {
    let key = clerk_key(net, index);
    let public = PublicKey(key.verifying_key().to_bytes());
    let api = &net.nodes[index].api_url;
    let member = net
        .get_json(&format!("{api}/v1/members/{public}"))
        .await
        .expect("member");
    let nonce = member["nonce"].as_u64().unwrap_or(0);
    let doc = document(net, index, id).await;
    let latest =
        EventHash::from_hex(doc["latest_event"].as_str().expect("latest event")).expect("hex");
    let tx = SignedTransaction::sign(
        TxBody::RecordAccess {
            document: DocumentId::new(id.to_string()).expect("id"),
            previous_event: latest,
            purpose: purpose.to_string(),
            ciphertext_sha256: ciphertext_of(&doc),
        },
        &key,
        Nonce(nonce + 1),
        &chain_id(net, index).await,
    );
    let answer = custody_node::client::Client::new(api.clone())
        .submit(&tx, Some(COMMIT_WAIT))
        .await
        .expect("record-access committed");
    assert!(answer.inclusion.is_some(), "record-access not committed");
    answer.tx_id
}

async fn post_read(net: &Testnet, index: usize, request: &SignedReadRequest) -> (u16, Vec<u8>) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/reads", net.nodes[index].api_url))
        .json(request)
        .send()
        .await
        .expect("read request");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}

/// Exports the chain from node 0 and runs `custody audit ARGS --export
/// FILE --json` on it, offline.
fn audit_offline(net: &Testnet, args: &[&str]) -> Result<serde_json::Value, String> {
    let export: PathBuf = net.dir.path().join("audit-export.custody");
    let output = Command::new(BINARY)
        .args([
            "chain",
            "export",
            "--node",
            &net.nodes[0].api_url,
            "--genesis",
        ])
        .arg(net.dir.path().join("genesis.json"))
        .arg("--key")
        .arg(net.auditor_key_path())
        .arg("--to")
        .arg(&export)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let output = Command::new(BINARY)
        .arg("audit")
        .args(args)
        .arg("--export")
        .arg(&export)
        .arg("--json")
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}

/// Waits until the offline audit `args` gives an answer `check` accepts.
async fn wait_for_audit<F>(net: &Testnet, what: &str, args: &[&str], check: F) -> serde_json::Value
where
    F: Fn(&serde_json::Value) -> bool,
{
    let check = &check;
    wait_for(net, what, COMMIT_WAIT, || async move {
        let value = audit_offline(net, args)?;
        if check(&value) {
            Ok(value)
        } else {
            Err(value.to_string())
        }
    })
    .await
}

fn report_line<'a>(report: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    report["reads"]
        .as_array()?
        .iter()
        .find(|r| r["document"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_recipient_cannot_read_without_a_committed_access_record() {
    let net = start_network();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let (a, b) = (0, 1);
    let b_name = net.nodes[b].department.clone();
    let work = tempfile::tempdir().expect("tempdir");
    let id = register(&net, a, work.path(), "offered.pdf");
    doc_ok(&net, a, &["offer", &id, "--to", &b_name]);
    wait_for(&net, "B's node to see the offer", COMMIT_WAIT, || {
        let id = id.clone();
        let net = &net;
        async move {
            let doc = document(net, b, &id).await;
            if doc["status"].get("in-transfer").is_some() {
                Ok(())
            } else {
                Err(doc.to_string())
            }
        }
    })
    .await;
    // B's node holds the blob (custody replication), yet B's clerk gets no
    // ciphertext without a record.
    let fetch_url = format!("{}/v1/blobs/fetch?document={id}", net.nodes[b].api_url);
    let (auth_name, auth_value) = net.auth_header("POST", &fetch_url).await;
    let fetched = reqwest::Client::new()
        .post(fetch_url)
        .header(auth_name, auth_value)
        .send()
        .await
        .expect("fetch");
    assert_eq!(fetched.status().as_u16(), 200, "B's node could not fetch");
    let doc = document(&net, b, &id).await;
    let chain = chain_id(&net, b).await;
    let request = signed_read(&net, b, &id, ciphertext_of(&doc), &chain, None);
    let (status, body) = post_read(&net, b, &request).await;
    assert_eq!(status, 403, "ciphertext served without a record");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("read_access_not_committed"), "{body}");

    // Accepting records the inspection before the download.
    doc_ok(&net, b, &["accept", &id]);
    let history = net
        .get_json(&format!(
            "{}/v1/documents/{id}/history",
            net.nodes[b].api_url
        ))
        .await
        .expect("history");
    let kinds: Vec<String> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| match &e["kind"] {
            serde_json::Value::String(name) => name.clone(),
            serde_json::Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "registered-sealed",
            "offered",
            "accessed-sealed",
            "accepted"
        ],
        "{history}"
    );
    // The inspection's download is attested served.
    wait_for_audit(&net, "the inspection to be attested", &["report"], |r| {
        report_line(r, &id).is_some_and(|line| line["count"] == 1 && line["accesses"] == 1)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_access_record_serves_one_download() {
    let net = start_network();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let (a, b) = (0, 1);
    let work = tempfile::tempdir().expect("tempdir");
    let id = register(&net, a, work.path(), "once.pdf");
    let access = record_access(&net, a, &id, "certified copy").await;
    let doc = document(&net, a, &id).await;
    let chain = chain_id(&net, a).await;
    let size = doc["ciphertext"]["size_bytes"].as_u64().expect("size");
    let (status, body) = post_read(
        &net,
        a,
        &signed_read(&net, a, &id, ciphertext_of(&doc), &chain, Some(access)),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body.len() as u64, size);
    // A second, freshly signed request on the same record: refused by the
    // serving node, and by any other node.
    for node in [a, b] {
        let request = signed_read(&net, a, &id, ciphertext_of(&doc), &chain, Some(access));
        let (status, body) = post_read(&net, node, &request).await;
        assert_eq!(status, 403, "node {node} served a used record twice");
        let body = String::from_utf8_lossy(&body);
        let expected = if node == a {
            "read_access_already_used"
        } else {
            "read_served_by_another_department"
        };
        assert!(body.contains(expected), "node {node}: {body}");
    }
    // The record stays used after the serving node restarts.
    let mut net = net;
    net.nodes[a].stop();
    net.nodes[a].start();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let request = signed_read(&net, a, &id, ciphertext_of(&doc), &chain, Some(access));
    let (status, body) = post_read(&net, a, &request).await;
    assert_eq!(status, 403, "a used record served again after a restart");
    assert!(String::from_utf8_lossy(&body).contains("read_access_already_used"));
    let report = wait_for_audit(&net, "one served read", &["report"], |r| {
        report_line(r, &id).is_some_and(|line| line["count"] == 1)
    })
    .await;
    assert_eq!(report_line(&report, &id).expect("line")["accesses"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_download_is_not_counted_as_a_read() {
    let net = start_network();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let a = 0;
    let work = tempfile::tempdir().expect("tempdir");
    let id = register(&net, a, work.path(), "damaged.pdf");
    let doc = document(&net, a, &id).await;
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
    bytes[7] ^= 0x01;
    std::fs::write(&blob, &bytes).expect("damage the blob");

    let access = record_access(&net, a, &id, "citizen request").await;
    let chain = chain_id(&net, a).await;
    let request = signed_read(&net, a, &id, ciphertext_of(&doc), &chain, Some(access));
    let (status, body) = post_read(&net, a, &request).await;
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("blob_corrupt"));

    // The report counts no read of it, and lists the failed download apart.
    let report = wait_for_audit(&net, "the failed download attested", &["report"], |r| {
        r["failed_reads"]
            .as_array()
            .is_some_and(|failed| failed.iter().any(|f| f["document"] == id.as_str()))
    })
    .await;
    let line = report_line(&report, &id).expect("the access record is listed");
    assert_eq!(line["count"], 0, "a failed download counted as a read");
    assert_eq!(line["accesses"], 1);
    let failed = report["failed_reads"]
        .as_array()
        .expect("failed")
        .iter()
        .find(|f| f["document"] == id.as_str())
        .expect("failed read");
    assert_eq!(failed["access_tx"], access.to_hex());
    assert_eq!(failed["bytes"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_read_is_visible_to_an_auditor_offline() {
    let net = start_network();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let (a, b) = (0, 1);
    let work = tempfile::tempdir().expect("tempdir");
    let id = register(&net, a, work.path(), "private.pdf");
    let doc = document(&net, a, &id).await;
    let chain = chain_id(&net, b).await;
    // B holds no right on A's document: B's node refuses its clerk.
    let request = signed_read(&net, b, &id, ciphertext_of(&doc), &chain, None);
    let (status, body) = post_read(&net, b, &request).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));

    let member = PublicKey(clerk_key(&net, b).verifying_key().to_bytes()).to_hex();
    let denials = wait_for_audit(
        &net,
        "the denial to reach the chain",
        &["denials", "--member", &member],
        |d| d["denials"].as_array().is_some_and(|list| !list.is_empty()),
    )
    .await;
    let denial = &denials["denials"][0];
    assert_eq!(denial["member"], member.as_str());
    assert_eq!(denial["document"], id.as_str());
    assert_eq!(denial["code"], "read_access_not_committed");
    assert_eq!(denial["refused_by"], net.nodes[b].department.as_str());
    assert_eq!(
        denial["request_signature"],
        hex::encode(request.signature.0),
        "the denial does not carry the member's own signed request"
    );
    // Another member's filter lists nothing.
    let other = PublicKey(clerk_key(&net, a).verifying_key().to_bytes()).to_hex();
    let none = audit_offline(&net, &["denials", "--member", &other]).expect("denials");
    assert_eq!(none["denials"].as_array().map(Vec::len), Some(0), "{none}");
    // And the whole chain, attestations included, verifies offline.
    audit_offline(&net, &["verify"]).expect("audit verify");
}

/// Every route that answers records, with the status an unsigned caller,
/// a stranger, the auditor and a member each get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_members_blocks_and_blobs_answer_only_signed_members_nodes_and_auditors() {
    let net = start_network();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let work = tempfile::tempdir().expect("tempdir");
    let id = register(&net, 0, work.path(), "a confidential file");
    let doc = document(&net, 0, &id).await;
    let sha = ciphertext_of(&doc).to_hex();
    let clerk = clerk_key(&net, 0);
    let clerk_public = PublicKey(clerk.verifying_key().to_bytes());
    let api = net.nodes[0].api_url.clone();
    let guarded = [
        format!("{api}/v1/documents/{id}"),
        format!("{api}/v1/documents/{id}/history"),
        format!("{api}/v1/documents?classification=confidential"),
        format!("{api}/v1/members/{clerk_public}"),
        format!("{api}/v1/blocks/1"),
        format!("{api}/v1/proposals?status=all"),
        format!("{api}/v1/blobs/{sha}"),
    ];
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[0x5a; 32]);
    for url in &guarded {
        let (status, body) = common::get_signed(url, None).await.expect("answer");
        assert_eq!(status, 401, "{url} answered an unsigned caller: {body}");
        assert_eq!(body["error"]["code"], "not_authenticated", "{url}: {body}");
        assert!(
            !body.to_string().contains("a confidential file"),
            "{url} leaked the title to an unsigned caller: {body}"
        );

        let (status, body) = common::get_signed(url, Some(&stranger))
            .await
            .expect("answer");
        assert_eq!(status, 403, "{url} answered a stranger: {body}");
        assert_eq!(body["error"]["code"], "api_caller_unknown", "{url}: {body}");

        let (status, body) = common::get_signed(url, Some(&net.auditor_key()))
            .await
            .expect("answer");
        assert_eq!(status, 200, "{url} refused the auditor: {body}");
        let (status, body) = common::get_signed(url, Some(&clerk)).await.expect("answer");
        assert_eq!(status, 200, "{url} refused a member: {body}");
    }

    // A signature covers one method, path and query: replayed on another
    // request it opens nothing.
    let (name, value) = net.auth_header("GET", &guarded[0]).await;
    let response = reqwest::Client::new()
        .get(&guarded[2])
        .header(name, value)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 403);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "api_wrong_request", "{body}");

    // The documented open set stays open.
    for path in [
        "/v1/status",
        "/healthz",
        "/metrics",
        "/v1/departments",
        "/v1/parameters",
    ] {
        let (status, body) = common::get(&format!("{api}{path}")).await.expect("answer");
        assert_eq!(status, 200, "{path} is closed: {body}");
    }
    let (_, metrics) = common::get(&format!("{api}/metrics"))
        .await
        .expect("metrics");
    assert!(
        metrics.contains("custody_api_refused_total{code=\"not_authenticated\"}"),
        "{metrics}"
    );
}
