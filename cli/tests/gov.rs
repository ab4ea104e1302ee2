//! `custody gov` and `custody member` against a running four-department
//! network: a change is proposed, approved department by department, and
//! executes exactly when more than 2/3 of the voting power approved.

mod common;

use std::time::Duration;

use common::{custody, wait_for, Testnet};
use custody_node::client::Client;

/// One network at a time keeps the timeouts meaningful on a small machine.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn started() -> Testnet {
    let mut testnet = Testnet::init(4);
    testnet.start_all();
    for index in 0..testnet.nodes.len() {
        let client = testnet.client(index);
        wait_for(
            &testnet,
            "every node to answer",
            Duration::from_secs(30),
            || {
                let client = client.clone();
                async move {
                    client
                        .status()
                        .await
                        .map(|_| ())
                        .map_err(|error| error.to_string())
                }
            },
        )
        .await;
    }
    testnet
}

fn admin(testnet: &Testnet, index: usize) -> String {
    testnet
        .member_key(&testnet.nodes[index].department, "admin")
        .display()
        .to_string()
}

/// Runs `custody ARGS… --node URL_OF(index)` and returns stdout, failing
/// the test with stderr when it does not succeed.
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
    assert!(ok, "custody {all:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn proposal_json(testnet: &Testnet, id: &str) -> serde_json::Value {
    let text = run_ok(testnet, 0, &["gov", "show", id, "--json"]);
    serde_json::from_str(&text).expect("gov show --json prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_executes_when_more_than_two_thirds_of_the_power_approved() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let testnet = started().await;
    let new_expiry = "86400000";

    let out = run_ok(
        &testnet,
        0,
        &[
            "gov",
            "propose",
            "parameters",
            "--offer-expiry-default-ms",
            new_expiry,
            "--key",
            &admin(&testnet, 0),
            "--wait",
        ],
    );
    let id = out
        .lines()
        .find_map(|line| line.strip_prefix("proposal id "))
        .and_then(|rest| rest.split(';').next())
        .expect("propose prints the proposal id")
        .to_string();

    let listed = run_ok(&testnet, 1, &["gov", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["status"], "pending");

    let total = proposal_json(&testnet, &id)["tally"]["total_power"]
        .as_u64()
        .expect("total power");
    // Every testnet department has voting power 1: after `index`
    // departments approved, `index` power is approved.
    for index in 1..testnet.nodes.len() {
        let shown = proposal_json(&testnet, &id);
        let approved = shown["tally"]["approved_power"].as_u64().expect("power");
        assert_eq!(approved, index as u64, "{shown}");
        if 3 * approved > 2 * total {
            break;
        }
        assert_eq!(shown["status"], "pending", "{shown}");
        assert!(shown.get("effective_from").is_none(), "{shown}");
        run_ok(
            &testnet,
            index,
            &[
                "gov",
                "approve",
                &id,
                "--key",
                &admin(&testnet, index),
                "--wait",
            ],
        );
    }

    let shown = proposal_json(&testnet, &id);
    assert_eq!(shown["status"], "executed", "{shown}");
    let executed_at = shown["proposal"]["executed_at"].as_u64().expect("height");
    assert_eq!(shown["effective_from"].as_u64(), Some(executed_at + 1));
    let parameters = Client::new(testnet.nodes[2].api_url.clone())
        .parameters()
        .await
        .expect("parameters");
    assert_eq!(
        parameters.offer_expiry_default_ms.to_string(),
        new_expiry,
        "the executed change is in force"
    );
    let text = run_ok(&testnet, 0, &["gov", "show", &id]);
    assert!(text.contains("executed in block"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_proposal_cannot_be_shown_or_approved() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let testnet = started().await;

    let unknown = "ab".repeat(32);
    let auditor = testnet.auditor_key_path();
    let mut args = vec!["gov", "show", unknown.as_str(), "--key"];
    args.push(auditor.to_str().expect("utf-8 path"));
    args.push("--node");
    args.push(&testnet.nodes[0].api_url);
    let (ok, _, stderr) = custody(&args);
    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");

    let key = admin(&testnet, 1);
    let mut args = vec!["gov", "approve", unknown.as_str(), "--key", &key, "--node"];
    args.push(&testnet.nodes[1].api_url);
    let (ok, _, stderr) = custody(&args);
    assert!(!ok, "approving an unknown proposal must fail");
    assert!(stderr.contains("unknown_proposal"), "{stderr}");

    let (ok, _, stderr) = custody(&["gov", "list", "--status", "lost"]);
    assert!(!ok);
    assert!(stderr.contains("pending, executed, all"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_changes_a_members_roles_and_clearance() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let testnet = started().await;
    let department = testnet.nodes[0].department.clone();
    let clerk_secret = custody_node::home::read_key_file(&testnet.member_key(&department, "clerk"))
        .expect("clerk key");
    let clerk = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&clerk_secret)
            .verifying_key()
            .to_bytes(),
    );

    run_ok(
        &testnet,
        0,
        &[
            "member",
            "update",
            "--member",
            &clerk,
            "--role",
            "clerk",
            "--role",
            "auditor",
            "--clearance",
            "confidential",
            "--key",
            &admin(&testnet, 0),
            "--wait",
        ],
    );
    let shown = run_ok(&testnet, 3, &["member", "show", &clerk, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["roles"], serde_json::json!(["clerk", "auditor"]));
    assert_eq!(shown["clearance"], "confidential");

    // An admin of another department may not.
    let key = admin(&testnet, 1);
    let mut args = vec![
        "member",
        "update",
        "--member",
        clerk.as_str(),
        "--role",
        "admin",
        "--clearance",
        "secret",
        "--key",
        &key,
        "--node",
    ];
    args.push(&testnet.nodes[1].api_url);
    let (ok, _, stderr) = custody(&args);
    assert!(!ok);
    assert!(stderr.contains("wrong_department"), "{stderr}");
}
