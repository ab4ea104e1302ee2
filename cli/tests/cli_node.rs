//! The `custody` commands around a node: init, testnet init, tx signing to
//! a file and submitting it, status, and a clean stop on SIGTERM.

mod common;

use std::time::Duration;

use common::{custody, custody_env, wait_for, Testnet};

#[test]
fn node_init_writes_a_commented_config_and_keys_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let home_arg = home.to_str().expect("utf-8 path");
    let (ok, stdout, stderr) = custody(&[
        "node",
        "init",
        "--home",
        home_arg,
        "--department",
        "civil-affairs",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).expect("json output");
    assert_eq!(printed["validator_key"].as_str().map(str::len), Some(64));
    let text = std::fs::read_to_string(home.join("config.toml")).expect("config written");
    assert!(
        text.contains("# Custody node configuration."),
        "comments kept"
    );
    let config = custody_node::config::NodeConfig::from_toml(&text).expect("config parses");
    assert_eq!(config.department, "civil-affairs");
    for key in ["validator.key", "node.key"] {
        let path = home.join("keys").join(key);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("key written").permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{key} must be private");
    }
    let (ok, _, stderr) = custody(&["node", "init", "--home", home_arg]);
    assert!(!ok, "a second init must refuse");
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn node_init_leaves_no_decryption_key_on_the_node_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    let home_arg = home.to_str().expect("utf-8 path");
    let (ok, stdout, stderr) = custody(&["node", "init", "--home", home_arg, "--json"]);
    assert!(ok, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).expect("json output");
    assert!(
        printed["encryption_key"].is_null(),
        "node init must not make the department's decryption key: {printed}"
    );
    let left: Vec<String> = std::fs::read_dir(home.join("keys"))
        .expect("keys dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        !left.iter().any(|name| name.contains("encryption")),
        "the node host must hold no decryption key: {left:?}"
    );
}

#[test]
fn a_bare_department_key_sealed_for_the_clerks_keeps_its_public_key_and_needs_the_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bare = dir.path().join("encryption.key");
    let secret = [7u8; 32];
    std::fs::write(&bare, format!("{}\n", hex::encode(secret))).expect("write bare key");
    let sealed = dir.path().join("department.key");
    let sealed_arg = sealed.to_str().expect("utf-8 path");
    let (ok, stdout, stderr) = custody_env(
        &[
            "keys",
            "seal",
            "--kind",
            "department",
            "--from",
            bare.to_str().expect("utf-8 path"),
            "--out",
            sealed_arg,
            "--passphrase-env",
            "SEAL_TEST_PASSPHRASE",
            "--json",
        ],
        &[("SEAL_TEST_PASSPHRASE", "correct horse battery staple")],
    );
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("json output");
    let expected = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
    assert_eq!(summary["public_key"], hex::encode(expected.to_bytes()));
    assert_eq!(summary["passphrase_protected"], true);
    let text = std::fs::read_to_string(&sealed).expect("sealed file");
    assert!(
        !text.contains(&hex::encode(secret)),
        "the sealed file must not hold the bare secret"
    );
    // Without a passphrase nothing is sealed.
    let (ok, _, stderr) = custody(&[
        "keys",
        "seal",
        "--kind",
        "department",
        "--from",
        bare.to_str().expect("utf-8"),
        "--out",
        dir.path().join("other.key").to_str().expect("utf-8"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("passphrase"), "{stderr}");
}

#[test]
fn testnet_init_refuses_a_non_empty_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("something"), b"x").expect("write");
    let (ok, _, stderr) = custody(&[
        "testnet",
        "init",
        "--dir",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn help_names_every_command() {
    let (ok, stdout, _) = custody(&["--help"]);
    assert!(ok);
    for command in ["node", "testnet", "tx", "keys", "doc", "audit"] {
        assert!(
            stdout.contains(command),
            "--help lacks `{command}`:\n{stdout}"
        );
    }
}

#[test]
fn help_names_no_harness_command() {
    let (ok, stdout, _) = custody(&["--help"]);
    assert!(ok);
    for command in ["demo", "cluster", "bench"] {
        assert!(
            !stdout
                .lines()
                .any(|line| line.trim_start().starts_with(&format!("{command} "))),
            "--help names the harness's `{command}`:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_signed_to_a_file_is_submitted_and_committed_and_the_node_stops_cleanly() {
    let mut testnet = Testnet::init(1);
    testnet.start_all();
    let api = testnet.nodes[0].api_url.clone();
    let client = testnet.client(0);
    wait_for(
        &testnet,
        "the node to answer",
        Duration::from_secs(30),
        || async { client.status().await.map(|_| ()).map_err(|e| e.to_string()) },
    )
    .await;
    let admin = testnet.member_key("civil-affairs", "admin");
    let tx_file = testnet.dir.path().join("enroll.json");
    let member = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&custody_node::home::random_bytes::<32>())
            .verifying_key()
            .to_bytes(),
    );
    let (ok, stdout, stderr) = custody(&[
        "tx",
        "enroll-member",
        "--node",
        &api,
        "--key",
        admin.to_str().expect("utf-8"),
        "--member",
        &member,
        "--department",
        "civil-affairs",
        "--name",
        "A. Clerk",
        "--role",
        "clerk",
        "--output",
        tx_file.to_str().expect("utf-8"),
    ]);
    assert!(ok, "sign: {stdout}{stderr}");
    let (ok, stdout, stderr) = custody(&[
        "tx",
        "submit",
        tx_file.to_str().expect("utf-8"),
        "--node",
        &api,
        "--wait",
        "--json",
    ]);
    assert!(ok, "submit: {stdout}{stderr}");
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("json answer");
    assert_eq!(answer["status"], "committed", "{answer}");
    assert!(answer["inclusion"]["height"].as_u64().is_some(), "{answer}");
    let record = client
        .get_json(&format!("/v1/members/{member}"))
        .await
        .expect("member enrolled");
    assert_eq!(record["department"], "civil-affairs");

    let (ok, stdout, stderr) = custody(&["node", "status", "--node", &api, "--json"]);
    assert!(ok, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status json");
    assert!(status["height"].as_u64().unwrap_or(0) >= 1);

    // SIGTERM: the harness asserts a zero exit status.
    testnet.nodes[0].stop();
}
