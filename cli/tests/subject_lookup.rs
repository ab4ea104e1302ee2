//! Subject tags on a running network: a clerk registers a record about a
//! citizen with `--subject`, the citizen looks it up on the open route
//! with the receipt code, and authorised departments filter by the tag.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{doc_ok, get_signed, wait_until_committing, Testnet};

const COMMIT_WAIT: Duration = Duration::from_secs(60);
const TITLE: &str = "Birth registration of the citizen";
const IDENTITY: &str = "Zhao Min 110101199003071234";

async fn start_network() -> Testnet {
    let mut net = Testnet::init(1);
    net.start_all();
    wait_until_committing(&net, COMMIT_WAIT).await;
    net
}

fn subject_key(net: &Testnet) -> PathBuf {
    net.nodes[0].home.join("members/subject.key")
}

/// Registers a small file, about `identity` when given; returns the
/// command's JSON answer.
fn register(net: &Testnet, name: &str, identity: Option<&str>) -> serde_json::Value {
    let file = net.dir.path().join(name);
    std::fs::write(&file, format!("record {name}")).expect("write document");
    let key = subject_key(net);
    let mut args = vec![
        "register",
        file.to_str().expect("utf-8 path"),
        "--title",
        TITLE,
        "--record-type",
        "birth-registration",
    ];
    if let Some(identity) = identity {
        args.extend([
            "--subject",
            identity,
            "--subject-key",
            key.to_str().expect("utf-8 path"),
        ]);
    }
    doc_ok(net, 0, &args)
}

fn receipt(net: &Testnet, identity: &str) -> String {
    let key = subject_key(net);
    let value = doc_ok(
        net,
        0,
        &[
            "receipt",
            "--subject",
            identity,
            "--subject-key",
            key.to_str().expect("utf-8 path"),
        ],
    );
    value["receipt_code"]
        .as_str()
        .expect("receipt code")
        .to_string()
}

/// `(status, Retry-After, body)` of a citizen lookup of `code`.
async fn lookup(net: &Testnet, code: &str) -> (u16, Option<String>, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/citizen/records", net.nodes[0].api_url))
        .json(&serde_json::json!({ "receipt_code": code }))
        .send()
        .await
        .expect("citizen lookup");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = response.text().await.expect("lookup body");
    (status, retry_after, body)
}

async fn lookup_ok(net: &Testnet, code: &str) -> serde_json::Value {
    let (status, _, body) = lookup(net, code).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("lookup answer is JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_code_finds_its_record_with_department_status_and_reads() {
    let net = start_network().await;
    let registered = register(&net, "birth.txt", Some(IDENTITY));
    let code = registered["receipt_code"]
        .as_str()
        .expect("register prints the receipt code")
        .to_string();
    assert_eq!(
        receipt(&net, IDENTITY),
        code,
        "receipt prints the same code"
    );

    let answer = lookup_ok(&net, &code).await;
    let records = answer["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{answer}");
    let department = net.nodes[0].department.as_str();
    assert_eq!(records[0]["department"], department, "{answer}");
    assert_eq!(records[0]["status"], "active", "{answer}");
    assert_eq!(records[0]["reads"], serde_json::json!([]), "{answer}");

    let id = registered["document"].as_str().expect("document id");
    let output = net.dir.path().join("opened.txt");
    doc_ok(
        &net,
        0,
        &[
            "open",
            id,
            "--purpose",
            "certificate requested by the citizen",
            "--output",
            output.to_str().expect("utf-8 path"),
        ],
    );
    // The same code typed as a citizen might: lower case, no dashes.
    let typed = code.replace('-', "").to_lowercase();
    let answer = lookup_ok(&net, &typed).await;
    assert_eq!(
        answer["records"][0]["reads"],
        serde_json::json!([{"department": department, "reads": 1}]),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_code_answers_an_empty_list_of_the_same_shape() {
    let net = start_network().await;
    let registered = register(&net, "birth.txt", Some(IDENTITY));
    let code = registered["receipt_code"].as_str().expect("receipt code");
    let other = receipt(&net, "Somebody Else 110101198501010000");
    assert_ne!(other, code);

    let found = lookup_ok(&net, code).await;
    let (status, _, body) = lookup(&net, &other).await;
    assert_eq!(status, 200, "{body}");
    let empty: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(empty, serde_json::json!({"records": []}));
    let keys = |value: &serde_json::Value| -> Vec<String> {
        value.as_object().expect("object").keys().cloned().collect()
    };
    assert_eq!(keys(&found), keys(&empty));

    let (status, _, body) = lookup(&net, "not a code").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_receipt_code"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subject_tag_filter_lists_only_that_tag_and_refuses_a_malformed_one() {
    let net = start_network().await;
    let about = register(&net, "one.txt", Some(IDENTITY));
    register(&net, "two.txt", Some("Somebody Else 110101198501010000"));
    register(&net, "three.txt", None);
    let key = subject_key(&net);
    let listed = doc_ok(
        &net,
        0,
        &[
            "list",
            "--subject",
            IDENTITY,
            "--subject-key",
            key.to_str().expect("utf-8 path"),
        ],
    );
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![about["document"].as_str().expect("id")],
        "{listed}"
    );

    let clerk =
        custody_node::home::read_key_file(&net.member_key(&net.nodes[0].department, "clerk"))
            .expect("clerk key");
    let clerk = ed25519_dalek::SigningKey::from_bytes(&clerk);
    let url = format!("{}/v1/documents?subject_tag=not-hex", net.nodes[0].api_url);
    let (status, body) = get_signed(&url, Some(&clerk)).await.expect("list");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_filter", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn citizen_lookups_beyond_the_burst_answer_429() {
    let net = start_network().await;
    let code = receipt(&net, IDENTITY);
    // `api.citizen_lookups_burst` is 10 by default.
    for attempt in 0..10 {
        let (status, _, body) = lookup(&net, &code).await;
        assert_eq!(status, 200, "lookup {attempt}: {body}");
    }
    let (status, retry_after, body) = lookup(&net, &code).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("rate_limited"), "{body}");
    let seconds: u64 = retry_after
        .expect("a Retry-After header")
        .parse()
        .expect("seconds");
    assert!(seconds >= 1);
    let (_, metrics) = common::get(&format!("{}/metrics", net.nodes[0].api_url))
        .await
        .expect("metrics");
    assert!(
        metrics.contains("custody_citizen_lookups_rate_limited_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_citizen_answer_never_holds_the_title_or_the_identity() {
    let net = start_network().await;
    let registered = register(&net, "birth.txt", Some(IDENTITY));
    let code = registered["receipt_code"].as_str().expect("receipt code");
    let (status, _, body) = lookup(&net, code).await;
    assert_eq!(status, 200, "{body}");
    let id = registered["document"].as_str().expect("document id");
    for secret in [
        TITLE,
        "Zhao Min",
        "110101199003071234",
        "birth-registration",
        id,
    ] {
        assert!(!body.contains(secret), "`{secret}` in the answer: {body}");
    }
}

#[test]
fn a_sealed_subject_key_from_keys_new_gives_receipt_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("subject.key");
    let key = key.to_str().expect("utf-8 path");
    let passphrase = [("SUBJECT_PASSPHRASE", "correct horse battery")];
    let (ok, stdout, stderr) = common::custody_env(
        &[
            "keys",
            "new",
            "--kind",
            "subject",
            "--out",
            key,
            "--passphrase-env",
            "SUBJECT_PASSPHRASE",
            "--json",
        ],
        &passphrase,
    );
    assert!(ok, "{stderr}");
    let made: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(made["kind"], "subject", "{made}");
    assert_eq!(made["passphrase_protected"], true, "{made}");

    let receipt = |identity: &str| {
        let (ok, stdout, stderr) = common::custody_env(
            &[
                "doc",
                "receipt",
                "--subject",
                identity,
                "--subject-key",
                key,
                "--passphrase-env",
                "SUBJECT_PASSPHRASE",
            ],
            &passphrase,
        );
        assert!(ok, "{stderr}");
        stdout.trim().to_string()
    };
    let code = receipt(IDENTITY);
    assert_eq!(code.split('-').count(), 8, "{code}");
    assert_eq!(receipt("  zhao   MIN 110101199003071234 "), code);

    let (ok, _, stderr) = common::custody_env(
        &[
            "doc",
            "receipt",
            "--subject",
            IDENTITY,
            "--subject-key",
            key,
        ],
        &[],
    );
    assert!(!ok, "a sealed key opened without its passphrase");
    assert!(stderr.contains("passphrase"), "{stderr}");
}
