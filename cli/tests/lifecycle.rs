//! A record's lifecycle from the clerk's command line, on a real
//! four-node network: `custody doc amend`, `custody doc fixity` and
//! `custody doc dispose`, and what a committed disposal does on every node.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{custody, doc_ok, wait_for, wait_until_committing, Testnet, BINARY};

const COMMIT_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for every node to delete a disposed document's blob.
const DELETION_WAIT: Duration = Duration::from_secs(30);

/// `custody doc ARGS --json` on node `index`, signed by the department's
/// member `role` (`clerk` or `admin`): (exit code, JSON, stderr).
fn doc_signed(
    net: &Testnet,
    index: usize,
    role: &str,
    args: &[&str],
) -> (i32, serde_json::Value, String) {
    let node = &net.nodes[index];
    let output = Command::new(BINARY)
        .arg("doc")
        .args(args)
        .arg("--json")
        .arg("--node")
        .arg(&node.api_url)
        .arg("--key")
        .arg(net.member_key(&node.department, role))
        .arg("--department-key")
        .arg(node.home.join("members/department.key"))
        .output()
        .expect("run custody doc");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let value = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        output.status.code().unwrap_or(-1),
        value,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

async fn started() -> Testnet {
    let mut net = Testnet::init(4);
    net.start_all();
    wait_until_committing(&net, COMMIT_WAIT).await;
    net
}

/// Registers `content` at node 0 as civil affairs' clerk; extra arguments
/// (`--created`, `--retention`) follow. Returns the registration's JSON.
fn register(net: &Testnet, name: &str, content: &[u8], extra: &[&str]) -> serde_json::Value {
    let file = net.dir.path().join(name);
    std::fs::write(&file, content).expect("write document");
    let mut args = vec![
        "register",
        path_text(&file),
        "--title",
        "Land register extract",
        "--record-type",
        "land-register",
    ];
    args.extend_from_slice(extra);
    doc_ok(net, 0, &args)
}

fn document_of(value: &serde_json::Value) -> String {
    value["document"]
        .as_str()
        .expect("a document id in the answer")
        .to_string()
}

/// Every file under `root` whose name starts with `sha256_hex` (a blob,
/// a fetch in progress, a quarantined copy).
fn copies_under(root: &Path, sha256_hex: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(sha256_hex))
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn an_amended_document_opens_at_its_new_version_and_its_history_names_the_reason() {
    let net = started().await;
    let id = document_of(&register(&net, "extract-v1.txt", b"parcel 17: 420 m2", &[]));
    let corrected = net.dir.path().join("extract-v2.txt");
    std::fs::write(&corrected, b"parcel 17: 402 m2").expect("write new version");
    let amended = doc_ok(
        &net,
        0,
        &[
            "amend",
            &id,
            "--file",
            path_text(&corrected),
            "--reason",
            "correction",
            "--note",
            "area transposed",
        ],
    );
    assert_eq!(amended["version"].as_u64(), Some(2), "{amended}");
    assert_eq!(amended["reason"], "correction", "{amended}");

    let opened = net.dir.path().join("opened.txt");
    doc_ok(
        &net,
        0,
        &[
            "open",
            &id,
            "--output",
            path_text(&opened),
            "--purpose",
            "check the correction",
        ],
    );
    assert_eq!(
        std::fs::read(&opened).expect("opened file"),
        b"parcel 17: 402 m2"
    );

    let history = doc_ok(&net, 0, &["history", &id]);
    let reasons: Vec<&serde_json::Value> = history["items"]
        .as_array()
        .expect("history items")
        .iter()
        .filter_map(|event| {
            event["kind"]["amended-sealed"]["reason"]
                .as_str()
                .map(|_| event)
        })
        .collect();
    assert_eq!(reasons.len(), 1, "{history}");
    assert_eq!(
        reasons[0]["kind"]["amended-sealed"]["reason"], "correction",
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixity_check_of_an_intact_document_is_recorded_as_intact() {
    let net = started().await;
    let id = document_of(&register(&net, "deed.txt", b"deed of sale, 2003", &[]));
    let checked = doc_ok(&net, 0, &["fixity", &id]);
    assert_eq!(checked["result"], "intact", "{checked}");
    assert_eq!(checked["found"], checked["expected"], "{checked}");
    let history = doc_ok(&net, 0, &["history", &id]);
    let recorded: Vec<&serde_json::Value> = history["items"]
        .as_array()
        .expect("history items")
        .iter()
        .filter(|event| event["kind"].get("fixity-checked").is_some())
        .collect();
    assert_eq!(recorded.len(), 1, "{history}");
    assert_eq!(
        recorded[0]["kind"]["fixity-checked"]["result"], "intact",
        "{history}"
    );
    // The read came first, as the read rule wants.
    assert!(
        history["items"]
            .as_array()
            .expect("history items")
            .iter()
            .any(|event| event["kind"].get("accessed-sealed").is_some()),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disposal_before_the_retention_has_elapsed_is_refused_by_the_chain_with_exit_code_5() {
    let net = started().await;
    let id = document_of(&register(
        &net,
        "recent.txt",
        b"permit 2026/88",
        &["--retention", "10"],
    ));
    let (code, _, stderr) = doc_signed(
        &net,
        0,
        "admin",
        &[
            "dispose",
            &id,
            "--authority",
            "records committee",
            "--reason",
            "too early",
        ],
    );
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("retention"), "{stderr}");
    let shown = doc_ok(&net, 0, &["show", &id]);
    assert_eq!(shown["status"], "active", "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_committed_disposal_deletes_every_version_s_ciphertext_on_every_node() {
    let net = started().await;
    let registered = register(
        &net,
        "ledger-1990.txt",
        b"land register, 1990",
        &["--retention", "10", "--created", "1990-03-01"],
    );
    let id = document_of(&registered);
    let first = registered["ciphertext_sha256"]
        .as_str()
        .expect("ciphertext SHA-256")
        .to_string();
    let corrected = net.dir.path().join("ledger-1990-v2.txt");
    std::fs::write(&corrected, b"land register, 1990 (redacted)").expect("write new version");
    let amended = doc_ok(
        &net,
        0,
        &[
            "amend",
            &id,
            "--file",
            path_text(&corrected),
            "--reason",
            "redaction",
        ],
    );
    let second = amended["ciphertext"]["sha256"]
        .as_str()
        .expect("new ciphertext SHA-256")
        .to_string();
    // Social security reads it, so that its node holds a copy too.
    doc_ok(
        &net,
        0,
        &[
            "grant",
            &id,
            "--to",
            &net.nodes[1].department,
            "--until",
            "+1d",
        ],
    );
    let opened = net.dir.path().join("read-by-social-security.txt");
    doc_ok(
        &net,
        1,
        &[
            "open",
            &id,
            "--output",
            path_text(&opened),
            "--purpose",
            "pension file",
        ],
    );
    assert!(
        !copies_under(&net.nodes[1].home, &second).is_empty(),
        "social security's node holds no copy to delete"
    );

    let (code, disposed, stderr) = doc_signed(
        &net,
        0,
        "admin",
        &[
            "dispose",
            &id,
            "--authority",
            "records committee decision 2026/14",
            "--reason",
            "retention of 10 years elapsed",
        ],
    );
    assert_eq!(code, 0, "{stderr}\n{}", net.logs());
    assert!(disposed["height"].as_u64().is_some(), "{disposed}");

    for (index, node) in net.nodes.iter().enumerate() {
        let home = node.home.clone();
        let (first, second) = (first.clone(), second.clone());
        wait_for(
            &net,
            &format!("node {index} to delete the disposed ciphertexts"),
            DELETION_WAIT,
            || {
                let left: Vec<PathBuf> = copies_under(&home, &first)
                    .into_iter()
                    .chain(copies_under(&home, &second))
                    .collect();
                async move {
                    if left.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("{left:?}"))
                    }
                }
            },
        )
        .await;
    }
    let metrics = common::get(&format!("{}/metrics", net.nodes[0].api_url))
        .await
        .expect("metrics");
    assert!(
        metrics.1.contains("custody_blobs_disposed_total 2"),
        "civil affairs' node counts both versions:\n{}",
        metrics.1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_of_a_disposed_document_answers_410_and_the_audit_still_verifies() {
    let net = started().await;
    let id = document_of(&register(
        &net,
        "ledger-1985.txt",
        b"land register, 1985",
        &["--retention", "5", "--created", "1985-01-01"],
    ));
    let (code, _, stderr) = doc_signed(
        &net,
        0,
        "admin",
        &[
            "dispose",
            &id,
            "--authority",
            "records schedule 4.2",
            "--reason",
            "retention of 5 years elapsed",
        ],
    );
    assert_eq!(code, 0, "{stderr}\n{}", net.logs());

    let url = format!("{}/v1/blobs/fetch?document={id}", net.nodes[0].api_url);
    let clerk = {
        let secret =
            custody_node::home::read_key_file(&net.member_key(&net.nodes[0].department, "clerk"))
                .expect("clerk key");
        ed25519_dalek::SigningKey::from_bytes(&secret)
    };
    let (header, value) = common::auth_header_as("POST", &url, &clerk)
        .await
        .expect("signed header");
    let response = reqwest::Client::new()
        .post(&url)
        .header(header, value)
        .send()
        .await
        .expect("fetch request");
    assert_eq!(response.status().as_u16(), 410);
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "document_disposed", "{body}");

    let export = net.dir.path().join("after-disposal.custody");
    let (ok, _, stderr) = custody(&[
        "chain",
        "export",
        "--node",
        &net.nodes[0].api_url,
        "--genesis",
        path_text(&net.dir.path().join("genesis.json")),
        "--key",
        path_text(&net.auditor_key_path()),
        "--to",
        path_text(&export),
    ]);
    assert!(ok, "chain export failed: {stderr}");
    let (ok, _, stderr) = custody(&["audit", "verify", "--export", path_text(&export)]);
    assert!(ok, "audit verify failed after a disposal: {stderr}");
    let (ok, stdout, stderr) = custody(&["audit", "history", &id, "--export", path_text(&export)]);
    assert!(ok, "audit history failed: {stderr}");
    assert!(
        stdout.lines().any(|line| line.contains("disposed")),
        "no disposal in the history:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_status_request_for_a_disposed_blob_answers_410_document_disposed() {
    let net = started().await;
    let registered = register(
        &net,
        "ledger-1980.txt",
        b"land register, 1980",
        &["--retention", "5", "--created", "1980-01-01"],
    );
    let id = document_of(&registered);
    let sha256 = registered["ciphertext_sha256"]
        .as_str()
        .expect("ciphertext SHA-256")
        .to_string();
    let clerk = {
        let secret =
            custody_node::home::read_key_file(&net.member_key(&net.nodes[0].department, "clerk"))
                .expect("clerk key");
        ed25519_dalek::SigningKey::from_bytes(&secret)
    };
    let url = format!("{}/v1/blobs/{sha256}", net.nodes[0].api_url);
    let (status, body) = common::get_signed(&url, Some(&clerk))
        .await
        .expect("blob status");
    assert_eq!(status, 200, "the blob is held before the disposal: {body}");

    let (code, _, stderr) = doc_signed(
        &net,
        0,
        "admin",
        &[
            "dispose",
            &id,
            "--authority",
            "records schedule 4.2",
            "--reason",
            "retention of 5 years elapsed",
        ],
    );
    assert_eq!(code, 0, "{stderr}\n{}", net.logs());
    let home = net.nodes[0].home.clone();
    let held = sha256.clone();
    wait_for(&net, "node 0 to delete the blob", DELETION_WAIT, || {
        let left = copies_under(&home, &held);
        async move {
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        }
    })
    .await;
    let (status, body) = common::get_signed(&url, Some(&clerk))
        .await
        .expect("blob status");
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "document_disposed", "{body}");
    let unknown = format!("{}/v1/blobs/{}", net.nodes[0].api_url, "ab".repeat(32));
    let (status, _) = common::get_signed(&unknown, Some(&clerk))
        .await
        .expect("blob status");
    assert_eq!(status, 404, "a blob no document names is still 404");
}

#[tokio::test(flavor = "multi_thread")]
async fn doc_history_names_each_signer_by_member_name_and_department() {
    let net = started().await;
    let id = document_of(&register(&net, "deed.txt", b"deed of sale", &[]));
    let clerk = {
        let secret =
            custody_node::home::read_key_file(&net.member_key(&net.nodes[0].department, "clerk"))
                .expect("clerk key");
        ed25519_dalek::SigningKey::from_bytes(&secret)
    };
    let clerk_hex = hex::encode(clerk.verifying_key().to_bytes());
    let (status, member) = common::get_signed(
        &format!("{}/v1/members/{clerk_hex}", net.nodes[0].api_url),
        Some(&clerk),
    )
    .await
    .expect("member record");
    assert_eq!(status, 200, "{member}");
    let name = member["name"]
        .as_str()
        .expect("the clerk's name")
        .to_string();

    let history = doc_ok(&net, 0, &["history", &id]);
    let by = &history["items"][0]["by"];
    assert_eq!(by["name"], name.as_str(), "{history}");
    assert_eq!(
        by["department"],
        net.nodes[0].department.as_str(),
        "{history}"
    );
    assert_eq!(by["key"], clerk_hex.as_str(), "{history}");

    let node = &net.nodes[0];
    let output = Command::new(BINARY)
        .args(["doc", "history", &id, "--node", &node.api_url, "--key"])
        .arg(net.member_key(&node.department, "clerk"))
        .arg("--department-key")
        .arg(node.home.join("members/department.key"))
        .output()
        .expect("run custody doc history");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = format!("by {name} ({}) {}", node.department, &clerk_hex[..8]);
    assert!(
        text.lines()
            .any(|line| line.contains("registered") && line.contains(&expected)),
        "no `{expected}` beside the registration:\n{text}"
    );
}

/// The department secret in a testnet key file (a bare secret or a
/// Custody key file without a passphrase).
fn department_secret(path: &Path) -> custody_cli::envelope::DepartmentSecretKey {
    match custody_node::home::read_key_file(path) {
        Ok(secret) => custody_cli::envelope::DepartmentSecretKey::from_bytes(secret),
        Err(_) => custody_cli::keyfile::read_department_key(path, None).expect("department key"),
    }
}

/// The data key of document `id` as the chain has it wrapped to its
/// custodian (node 0's department), unwrapped with that department's key
/// file.
async fn chain_data_key(
    net: &Testnet,
    id: &str,
    clerk: &ed25519_dalek::SigningKey,
) -> custody_cli::envelope::DataKey {
    let url = format!("{}/v1/documents/{id}", net.nodes[0].api_url);
    let (status, record) = common::get_signed(&url, Some(clerk))
        .await
        .expect("document record");
    assert_eq!(status, 200, "{record}");
    let document: custody_ledger::records::Document =
        serde_json::from_value(record).expect("a document record");
    let wrapped = custody_cli::envelope::WrappedKey::from_bytes(&document.custodian_key.0)
        .expect("wrapped key");
    let secret = department_secret(&net.nodes[0].home.join("members/department.key"));
    custody_cli::envelope::unwrap(&wrapped, &secret).expect("the department key unwraps")
}

/// The only file named `sha256_hex` under `root`'s share store.
fn share_file_under(root: &Path, sha256_hex: &str) -> Option<PathBuf> {
    copies_under(root, sha256_hex)
        .into_iter()
        .find(|path| path.parent().and_then(Path::file_name) == Some("shred-shares".as_ref()))
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_committed_disposal_a_saved_copy_of_the_ciphertext_cannot_be_decrypted_with_anything_left(
) {
    use custody_cli::envelope::{decrypt_shredded, EnvelopeError, ShredShare};
    let net = started().await;
    let content = b"adoption file, 1991";
    let registered = register(
        &net,
        "adoption-1991.txt",
        content,
        &["--retention", "10", "--created", "1991-05-02"],
    );
    let id = document_of(&registered);
    let sha256 = registered["ciphertext_sha256"]
        .as_str()
        .expect("ciphertext SHA-256")
        .to_string();
    // Social security reads it, so that its node fetches the envelope and
    // its share too.
    doc_ok(
        &net,
        0,
        &[
            "grant",
            &id,
            "--to",
            &net.nodes[1].department,
            "--until",
            "+1d",
        ],
    );
    let opened = net.dir.path().join("adoption-read.txt");
    doc_ok(
        &net,
        1,
        &[
            "open",
            &id,
            "--output",
            path_text(&opened),
            "--purpose",
            "pension file",
        ],
    );
    assert_eq!(std::fs::read(&opened).expect("opened"), content);
    for index in [0, 1] {
        assert!(
            share_file_under(&net.nodes[index].home, &sha256).is_some(),
            "node {index} holds no shred share before the disposal"
        );
    }

    // A copy of the ciphertext saved before the disposal (a backup, a
    // download): it opens with the data key and the share, so the failure
    // below is the share's absence and nothing else.
    let blob = copies_under(&net.nodes[0].home, &sha256)
        .into_iter()
        .find(|path| path.parent().and_then(Path::file_name) != Some("shred-shares".as_ref()))
        .expect("node 0's blob");
    let saved = std::fs::read(&blob).expect("read the blob");
    let share_file = share_file_under(&net.nodes[0].home, &sha256).expect("share file");
    let share_bytes: [u8; 32] = std::fs::read(&share_file)
        .expect("read the share")
        .try_into()
        .expect("32 bytes");
    let clerk = {
        let secret =
            custody_node::home::read_key_file(&net.member_key(&net.nodes[0].department, "clerk"))
                .expect("clerk key");
        ed25519_dalek::SigningKey::from_bytes(&secret)
    };
    let mut plaintext = Vec::new();
    decrypt_shredded(
        saved.as_slice(),
        &mut plaintext,
        &chain_data_key(&net, &id, &clerk).await,
        Some(&ShredShare::from_bytes(share_bytes)),
        &id,
    )
    .expect("the copy opens while the share exists");
    assert_eq!(plaintext, content);

    let (code, _, stderr) = doc_signed(
        &net,
        0,
        "admin",
        &[
            "dispose",
            &id,
            "--authority",
            "records committee decision 2026/20",
            "--reason",
            "retention of 10 years elapsed",
        ],
    );
    assert_eq!(code, 0, "{stderr}\n{}", net.logs());
    for (index, node) in net.nodes.iter().enumerate() {
        let home = node.home.clone();
        let sha256 = sha256.clone();
        wait_for(
            &net,
            &format!("node {index} to delete the ciphertext and its shred share"),
            DELETION_WAIT,
            || {
                let left = copies_under(&home, &sha256);
                async move {
                    if left.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("{left:?}"))
                    }
                }
            },
        )
        .await;
    }
    let metrics = common::get(&format!("{}/metrics", net.nodes[1].api_url))
        .await
        .expect("metrics");
    assert!(
        metrics.1.contains("custody_shred_shares_disposed_total 1"),
        "social security's node counts the deleted share:\n{}",
        metrics.1
    );

    // Everything left: the chain's wrapped key (still there), every
    // department's key file, the clerk's files. The data key still
    // unwraps; the copy still does not open.
    let data_key = chain_data_key(&net, &id, &clerk).await;
    let mut plaintext = Vec::new();
    let error = decrypt_shredded(saved.as_slice(), &mut plaintext, &data_key, None, &id)
        .expect_err("the copy must not open after the disposal");
    assert!(matches!(error, EnvelopeError::ShareMissing), "{error}");
    assert!(plaintext.is_empty());
    // Nor with the data key in the share's place, nor with any department
    // secret or the clerk's key as a share: the commitment refuses each.
    let mut candidates: Vec<[u8; 32]> = vec![*data_key.as_bytes(), [0; 32]];
    for node in &net.nodes {
        candidates.push(
            custody_node::home::read_key_file(&node.home.join("members/department.key"))
                .unwrap_or([0; 32]),
        );
    }
    candidates.push(clerk.to_bytes());
    for candidate in candidates {
        let error = decrypt_shredded(
            saved.as_slice(),
            &mut plaintext,
            &data_key,
            Some(&ShredShare::from_bytes(candidate)),
            &id,
        )
        .expect_err("no key left is the share");
        assert!(
            matches!(error, EnvelopeError::ShareMismatch { .. }),
            "{error}"
        );
    }
    // And no node hands the share (or the ciphertext) out any more.
    let url = format!("{}/v1/blobs/fetch?document={id}", net.nodes[1].api_url);
    let (header, value) = common::auth_header_as("POST", &url, &clerk)
        .await
        .expect("signed header");
    let response = reqwest::Client::new()
        .post(&url)
        .header(header, value)
        .send()
        .await
        .expect("fetch request");
    assert_eq!(response.status().as_u16(), 410);
}
