//! The auditor's, chain and genesis commands, driven through their clap
//! arguments exactly as the `custody` binary parses them.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use custody_cli::{AuditArgs, ChainArgs, GenesisArgs, KeysArgs};
use custody_ledger::export::sample;
use custody_ledger::store::Store;

/// The `custody` command line as main.rs wires it.
#[derive(Parser)]
#[command(name = "custody")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Audit(AuditArgs),
    Chain(ChainArgs),
    Genesis(GenesisArgs),
    Keys(KeysArgs),
}

/// Run a command line; `Ok(stdout)` or `Err(error message)`.
fn run(args: &[&str]) -> Result<String, String> {
    let cli = Cli::try_parse_from(std::iter::once("custody").chain(args.iter().copied()))
        .map_err(|e| format!("usage: {e}"))?;
    let mut out = Vec::new();
    let result = match cli.command {
        Command::Audit(a) => custody_cli::run_audit_to(a, &mut out).map_err(|e| e.to_string()),
        Command::Chain(a) => custody_cli::run_chain_to(a, &mut out).map_err(|e| e.to_string()),
        Command::Genesis(a) => custody_cli::run_genesis_to(a, &mut out).map_err(|e| e.to_string()),
        Command::Keys(a) => {
            custody_cli::keyfile::run_keys_to(a, &mut out).map_err(|e| e.to_string())
        }
    };
    result.map(|()| String::from_utf8(out).unwrap())
}

fn ok(args: &[&str]) -> String {
    match run(args) {
        Ok(out) => out,
        Err(e) => panic!("`custody {}` failed: {e}", args.join(" ")),
    }
}

fn fails(args: &[&str]) -> String {
    match run(args) {
        Ok(out) => panic!("`custody {}` succeeded: {out}", args.join(" ")),
        Err(e) => e,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    export: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("chain.export");
        std::fs::write(&export, sample::export_bytes()).unwrap();
        Fixture { dir, export }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn export(&self) -> &str {
        self.export.to_str().unwrap()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn verify_prints_a_summary_of_the_whole_chain() {
    let f = Fixture::new();
    let out = ok(&["audit", "verify", "--export", f.export()]);
    assert!(out.contains("chain verified from genesis"), "{out}");
    assert!(out.contains("heights         1 to 14 (14 blocks)"), "{out}");
    assert!(out.contains("transactions    20"), "{out}");
    assert!(out.contains("documents       3"), "{out}");
    assert!(out.contains("departments     5"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["audit", "verify", "--export", f.export(), "--json"])).unwrap();
    assert_eq!(json["transactions"], 20);
    assert_eq!(json["ok"], true);
}

#[test]
fn verify_names_height_transaction_and_reason_of_a_changed_byte() {
    let f = Fixture::new();
    let mut bytes = std::fs::read(&f.export).unwrap();
    let needle = b"benefit claim 17 follow-up";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&f.export, &bytes).unwrap();
    let e = fails(&["audit", "verify", "--export", f.export()]);
    assert!(e.contains("height 9"), "{e}");
    assert!(e.contains("transaction #0"), "{e}");
    assert!(e.contains("signature is invalid"), "{e}");
}

#[test]
fn verify_refuses_an_export_of_another_genesis_when_the_hash_is_pinned() {
    let f = Fixture::new();
    let other = "00".repeat(32);
    let e = fails(&[
        "audit",
        "verify",
        "--export",
        f.export(),
        "--genesis-hash",
        &other,
    ]);
    assert!(e.contains("expected"), "{e}");
}

#[test]
fn verify_with_blobs_rehashes_ciphertexts_and_names_a_changed_one() {
    let f = Fixture::new();
    let blobs = f.path("blobs");
    std::fs::create_dir(&blobs).unwrap();
    for (id, version) in [
        ("ca/2026/0001", 1),
        ("ca/2026/0001", 2),
        ("ca/2026/0002", 1),
    ] {
        let c = sample::ciphertext(id, version);
        let name = custody_ledger::encoding::sha256(&c).to_hex();
        std::fs::write(blobs.join(&name), &c).unwrap();
    }
    let out = ok(&[
        "audit",
        "verify",
        "--export",
        f.export(),
        "--blobs",
        s(&blobs),
    ]);
    assert!(
        out.contains("4 checked, 3 match, 1 missing, 0 differ"),
        "{out}"
    );
    // Damage one blob.
    let c = sample::ciphertext("ca/2026/0002", 1);
    let name = custody_ledger::encoding::sha256(&c).to_hex();
    std::fs::write(blobs.join(&name), b"damaged").unwrap();
    let e = fails(&[
        "audit",
        "verify",
        "--export",
        f.export(),
        "--blobs",
        s(&blobs),
    ]);
    assert!(e.contains("ca/2026/0002 version 1"), "{e}");
}

fn store_from_sample(dir: &Path) {
    let chain = sample::chain();
    let store = Store::open_or_init(dir, &chain.federation.genesis).unwrap();
    for (block, certificate) in &chain.blocks {
        let changes = custody_ledger::apply_block(&store, block).unwrap();
        store.commit(block, certificate, &changes).unwrap();
    }
}

#[test]
fn export_from_a_store_then_import_then_verify_round_trips() {
    let f = Fixture::new();
    let node = f.path("node");
    store_from_sample(&node);
    let export = f.path("from-store.export");
    let out = ok(&["chain", "export", "--store", s(&node), "--to", s(&export)]);
    assert!(out.contains("exported 14 blocks (20 transactions"), "{out}");
    assert_eq!(std::fs::read(&export).unwrap(), sample::export_bytes());
    let imported = f.path("imported");
    let out = ok(&[
        "chain",
        "import",
        "--from",
        s(&export),
        "--store",
        s(&imported),
    ]);
    assert!(out.contains("verified and imported 14 blocks"), "{out}");
    let out = ok(&["audit", "verify", "--store", s(&imported)]);
    assert!(out.contains("transactions    20"), "{out}");
}

#[test]
fn import_of_a_tampered_export_writes_nothing() {
    let f = Fixture::new();
    let mut bytes = std::fs::read(&f.export).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    std::fs::write(&f.export, &bytes).unwrap();
    let imported = f.path("imported");
    fails(&[
        "chain",
        "import",
        "--from",
        f.export(),
        "--store",
        s(&imported),
    ]);
    assert!(!imported.exists());
}

#[test]
fn history_lists_every_event_with_a_checked_proof() {
    let f = Fixture::new();
    let out = ok(&["audit", "history", "ca/2026/0001", "--export", f.export()]);
    for expected in [
        "#0 ",
        "registered (internal",
        "offered to social-security",
        "accepted from civil-affairs",
        "read access granted to finance",
        "opened for \"benefit claim 17\"",
        "amended to version 2",
        "fixity checked: Intact",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert_eq!(out.matches("proof checked").count(), 8, "{out}");
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "audit",
        "history",
        "ca/2026/0001",
        "--export",
        f.export(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 8);
    let e = fails(&["audit", "history", "no/such/doc", "--export", f.export()]);
    assert!(e.contains("not on this chain"), "{e}");
}

fn last_tx_id() -> String {
    let chain = sample::chain();
    chain.blocks.last().unwrap().0.transactions[0].id().to_hex()
}

fn write_genesis(f: &Fixture) -> PathBuf {
    let path = f.path("genesis.toml");
    let chain = sample::chain();
    std::fs::write(&path, chain.federation.genesis.to_toml_string().unwrap()).unwrap();
    path
}

#[test]
fn prove_writes_a_proof_that_checks_offline_and_fails_with_one_changed_byte() {
    let f = Fixture::new();
    let proof = f.path("tx.proof");
    let out = ok(&[
        "audit",
        "prove",
        &last_tx_id(),
        "--export",
        f.export(),
        "--out",
        s(&proof),
    ]);
    assert!(out.contains("1 governance link(s)"), "{out}");
    let genesis = write_genesis(&f);
    let out = ok(&["audit", "check-proof", s(&proof), "--genesis", s(&genesis)]);
    assert!(out.contains("proof holds"), "{out}");
    assert!(out.contains("record-fixity-check"), "{out}");
    let bytes = std::fs::read(&proof).unwrap();
    for at in [0, 20, bytes.len() / 2, bytes.len() - 40, bytes.len() - 1] {
        let mut changed = bytes.clone();
        changed[at] ^= 0x01;
        std::fs::write(&proof, &changed).unwrap();
        fails(&["audit", "check-proof", s(&proof), "--genesis", s(&genesis)]);
    }
}

/// The names the sample chain gives its members, by key.
fn member_labels() -> Vec<(String, String)> {
    let chain = sample::chain();
    let mut state = custody_ledger::MemoryState::from_genesis(&chain.federation.genesis);
    for (block, _) in &chain.blocks {
        let changes = custody_ledger::state::apply_block(&state, block).unwrap();
        state.apply(changes);
    }
    state
        .members
        .values()
        .map(|m| (m.name.clone(), m.department.to_string()))
        .collect()
}

#[test]
fn history_names_each_signer_by_member_name_and_department() {
    let f = Fixture::new();
    let out = ok(&["audit", "history", "ca/2026/0001", "--export", f.export()]);
    let labels = member_labels();
    for line in out.lines().filter(|l| l.starts_with('#')) {
        let by = line.rsplit(" by ").next().unwrap();
        assert!(
            labels
                .iter()
                .any(|(name, department)| by.starts_with(&format!("{name} ({department}) "))),
            "no member name and department in `{line}`"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "audit",
        "history",
        "ca/2026/0001",
        "--export",
        f.export(),
        "--json",
    ]))
    .unwrap();
    for entry in json.as_array().unwrap() {
        assert!(entry["by"]["name"].is_string(), "{entry}");
        assert_eq!(entry["by"]["department"], entry["event"]["department"]);
    }
}

#[test]
fn check_proof_says_what_the_transaction_says_and_names_the_signer_from_an_export() {
    let f = Fixture::new();
    let proof = f.path("tx.proof");
    ok(&[
        "audit",
        "prove",
        &last_tx_id(),
        "--export",
        f.export(),
        "--out",
        s(&proof),
    ]);
    let genesis = write_genesis(&f);
    let out = ok(&["audit", "check-proof", s(&proof), "--genesis", s(&genesis)]);
    assert!(
        out.contains("it says: record-fixity-check on document ca/2026/0001, result Intact"),
        "{out}"
    );
    let named = ok(&[
        "audit",
        "check-proof",
        s(&proof),
        "--genesis",
        s(&genesis),
        "--export",
        f.export(),
    ]);
    let labels = member_labels();
    assert!(
        labels
            .iter()
            .any(|(name, department)| named.contains(&format!("signed by {name} ({department}) "))),
        "{named}"
    );
}

#[test]
fn check_proof_against_another_genesis_fails() {
    let f = Fixture::new();
    let proof = f.path("tx.proof");
    ok(&[
        "audit",
        "prove",
        &last_tx_id(),
        "--export",
        f.export(),
        "--out",
        s(&proof),
    ]);
    let other = f.path("other.toml");
    let g = custody_ledger::testkit::Federation::new(4, "another-chain").genesis;
    std::fs::write(&other, g.to_toml_string().unwrap()).unwrap();
    let e = fails(&["audit", "check-proof", s(&proof), "--genesis", s(&other)]);
    assert!(e.contains("genesis"), "{e}");
}

#[test]
fn fixity_says_which_registered_version_a_file_is() {
    let f = Fixture::new();
    let current = f.path("v2.pdf");
    std::fs::write(&current, sample::plaintext("ca/2026/0001", 2)).unwrap();
    let out = ok(&[
        "audit",
        "fixity",
        "ca/2026/0001",
        s(&current),
        "--export",
        f.export(),
    ]);
    assert!(out.contains("registered current version (2)"), "{out}");
    let old = f.path("v1.pdf");
    std::fs::write(&old, sample::plaintext("ca/2026/0001", 1)).unwrap();
    let out = ok(&[
        "audit",
        "fixity",
        "ca/2026/0001",
        s(&old),
        "--export",
        f.export(),
    ]);
    assert!(out.contains("is version 1"), "{out}");
    let edited = f.path("edited.pdf");
    let mut bytes = sample::plaintext("ca/2026/0001", 2);
    bytes[0] ^= 1;
    std::fs::write(&edited, bytes).unwrap();
    let e = fails(&[
        "audit",
        "fixity",
        "ca/2026/0001",
        s(&edited),
        "--export",
        f.export(),
    ]);
    assert!(e.contains("does not match any registered version"), "{e}");
}

#[test]
fn report_counts_holdings_and_reads() {
    let f = Fixture::new();
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["audit", "report", "--export", f.export(), "--json"])).unwrap();
    let departments = &json["departments"];
    // The sample is a version 1 chain: two access records, and no node
    // attested serving them, so no read is counted.
    assert_eq!(departments["finance"]["accesses_recorded"], 2, "{json:#}");
    assert_eq!(departments["finance"]["reads"], 0, "{json:#}");
    assert_eq!(
        departments["social-security"]["transfers_in"], 1,
        "{json:#}"
    );
    assert_eq!(departments["civil-affairs"]["transfers_out"], 1, "{json:#}");
    assert_eq!(departments["health"]["rejections"], 1, "{json:#}");
    let reads = json["reads"].as_array().unwrap();
    assert_eq!(reads[0]["document"], "ca/2026/0001");
    assert_eq!(reads[0]["accesses"], 2);
    assert_eq!(reads[0]["count"], 0);
    // ca/2026/0001 was held by civil-affairs, then by social-security.
    let holdings = json["holdings"].as_array().unwrap();
    let held: Vec<(&str, bool)> = holdings
        .iter()
        .filter(|h| h["document"] == "ca/2026/0001")
        .map(|h| {
            (
                h["department"].as_str().unwrap(),
                h["ongoing"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        held,
        vec![("civil-affairs", false), ("social-security", true)]
    );
    // A height range that ends before the transfer sees only civil-affairs.
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "audit",
        "report",
        "--export",
        f.export(),
        "--to-height",
        "3",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        json["departments"]["finance"]["reads"]
            .as_u64()
            .unwrap_or(0),
        0
    );
    let text = ok(&[
        "audit",
        "report",
        "--export",
        f.export(),
        "--from-date",
        "2026-01-01",
        "--to-date",
        "2026-01-01",
    ]);
    assert!(text.contains("who read what"), "{text}");
}

#[test]
fn genesis_ceremony_contribute_assemble_hash() {
    let f = Fixture::new();
    let mut contributions = Vec::new();
    for (i, slug) in ["civil-affairs", "health", "finance", "social-security"]
        .iter()
        .enumerate()
    {
        // The admin key as a Custody key file, the others as the node's
        // hex secrets or as public keys.
        let admin = f.path(&format!("{slug}-admin.key"));
        ok(&["keys", "new", "--kind", "member", "--out", s(&admin)]);
        let encryption = f.path(&format!("{slug}-encryption.key"));
        ok(&[
            "keys",
            "new",
            "--kind",
            "department",
            "--out",
            s(&encryption),
        ]);
        let validator = f.path(&format!("{slug}-validator.key"));
        std::fs::write(&validator, format!("{}\n", hex_of(i as u8 + 1))).unwrap();
        let node_public = format!("pub:{}", hex_of(i as u8 + 100));
        let out = f.path(&format!("{slug}.contribution.json"));
        ok(&[
            "genesis",
            "contribute",
            "--department",
            slug,
            "--name",
            &format!("Department of {slug}"),
            "--validator-key",
            s(&validator),
            "--node-key",
            &node_public,
            "--encryption-key",
            s(&encryption),
            "--admin-key",
            s(&admin),
            "--out",
            s(&out),
        ]);
        contributions.push(out);
    }
    let genesis = f.path("genesis.toml");
    let mut args = vec![
        "genesis",
        "assemble",
        "--chain-id",
        "custody-province",
        "--genesis-date",
        "2026-12-01",
    ];
    let paths: Vec<String> = contributions.iter().map(|p| s(p).to_string()).collect();
    args.extend(paths.iter().map(|p| p.as_str()));
    args.extend(["--out", s(&genesis)]);
    let out = ok(&args);
    assert!(out.contains("4 departments"), "{out}");
    let printed = out
        .lines()
        .last()
        .unwrap()
        .trim_start_matches("genesis hash ")
        .to_string();
    let hash = ok(&["genesis", "hash", s(&genesis)]);
    assert_eq!(hash.trim(), printed);
    // Listing the contributions in another order gives the same genesis.
    let reversed = f.path("genesis-2.toml");
    let mut args = vec![
        "genesis",
        "assemble",
        "--chain-id",
        "custody-province",
        "--genesis-date",
        "2026-12-01",
    ];
    args.extend(paths.iter().rev().map(|p| p.as_str()));
    args.extend(["--out", s(&reversed)]);
    ok(&args);
    assert_eq!(ok(&["genesis", "hash", s(&reversed)]), hash);
    // The validator key is derived from the hex secret.
    let g = custody_ledger::Genesis::load(&genesis).unwrap();
    let secret: [u8; 32] = hex::decode(hex_of(1)).unwrap().try_into().unwrap();
    let public = ed25519_dalek::SigningKey::from_bytes(&secret)
        .verifying_key()
        .to_bytes();
    assert_eq!(g.departments[0].keys.validator_key.0, public);
    // A department contributing twice is refused.
    let mut args = vec![
        "genesis",
        "assemble",
        "--chain-id",
        "custody-province",
        "--genesis-date",
        "2026-12-01",
    ];
    args.extend([paths[0].as_str(), paths[0].as_str()]);
    let dup = f.path("dup.toml");
    args.extend(["--out", s(&dup)]);
    let e = fails(&args);
    assert!(e.contains("appears twice"), "{e}");
}

#[test]
fn the_ceremony_writes_the_genesis_file_a_node_reads() {
    let f = Fixture::new();
    let mut contributions = Vec::new();
    for (i, slug) in ["archives", "health"].iter().enumerate() {
        let admin = f.path(&format!("{slug}-admin.key"));
        ok(&["keys", "new", "--kind", "member", "--out", s(&admin)]);
        let validator = f.path(&format!("{slug}-validator.key"));
        std::fs::write(&validator, format!("{}\n", hex_of(i as u8 + 1))).unwrap();
        let out = f.path(&format!("{slug}.contribution.json"));
        ok(&[
            "genesis",
            "contribute",
            "--department",
            slug,
            "--name",
            slug,
            "--validator-key",
            s(&validator),
            "--node-key",
            &format!("pub:{}", hex_of(i as u8 + 50)),
            "--encryption-key",
            &format!("pub:{}", hex_of(i as u8 + 100)),
            "--admin-key",
            s(&admin),
            "--out",
            s(&out),
        ]);
        contributions.push(s(&out).to_string());
    }
    // No --out: the file is written where the command runs, under the name
    // a node's config reads by default, in a form the node parses.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_custody"));
    command
        .args([
            "genesis",
            "assemble",
            "--chain-id",
            "custody-ceremony",
            "--genesis-date",
            "2026-12-01",
        ])
        .args(&contributions)
        .current_dir(f.path(""));
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let default_name = custody_node::config::NodeConfig::default().paths.genesis;
    let written = f.path("").join(&default_name);
    let genesis = custody_ledger::Genesis::load(&written).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("genesis hash {}", genesis.hash())),
        "{stdout}"
    );
}

#[test]
fn contribute_refuses_a_key_of_the_wrong_kind() {
    let f = Fixture::new();
    let member = f.path("member.key");
    ok(&["keys", "new", "--kind", "member", "--out", s(&member)]);
    let e = fails(&[
        "genesis",
        "contribute",
        "--department",
        "health",
        "--name",
        "Health",
        "--validator-key",
        s(&member),
        "--node-key",
        s(&member),
        "--encryption-key",
        s(&member),
        "--admin-key",
        s(&member),
        "--out",
        s(&f.path("c.json")),
    ]);
    assert!(e.contains("encryption key"), "{e}");
}

fn hex_of(seed: u8) -> String {
    hex::encode(custody_ledger::encoding::sha256(&[seed]).0)
}

/// A stand-in for a node's HTTP API serving the sample chain.
fn serve_sample() -> (String, std::thread::JoinHandle<()>) {
    use axum::extract::Path as AxumPath;
    use axum::routing::get;
    use axum::Json;
    let chain = std::sync::Arc::new(sample::chain());
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let status_chain = chain.clone();
            let app = axum::Router::new()
                .route(
                    "/v1/status",
                    get(move || {
                        let c = status_chain.clone();
                        async move {
                            Json(serde_json::json!({
                                "chain_id": c.federation.genesis.chain_id,
                                "genesis_hash": c.federation.genesis.hash().to_hex(),
                                "height": c.blocks.len(),
                            }))
                        }
                    }),
                )
                .route(
                    "/v1/blocks/{height}",
                    get(move |AxumPath(h): AxumPath<usize>| {
                        let c = chain.clone();
                        async move {
                            let (block, certificate) = &c.blocks[h - 1];
                            Json(serde_json::json!({
                                "height": h,
                                "hash": block.hash(),
                                "block": block,
                                "certificate": certificate,
                            }))
                        }
                    }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            // Serve for the test's lifetime; the test process ends it.
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(60),
                axum::serve(listener, app),
            )
            .await;
        });
    });
    let address = rx.recv().unwrap();
    (format!("http://{address}"), handle)
}

#[test]
fn export_from_a_node_api_is_the_same_file() {
    let f = Fixture::new();
    let (url, _server) = serve_sample();
    let genesis = write_genesis(&f);
    let export = f.path("from-node.export");
    let out = ok(&[
        "chain",
        "export",
        "--node",
        &url,
        "--genesis",
        s(&genesis),
        "--to",
        s(&export),
    ]);
    assert!(out.contains("exported 14 blocks"), "{out}");
    assert_eq!(std::fs::read(&export).unwrap(), sample::export_bytes());
    let other = f.path("other.toml");
    let g = custody_ledger::testkit::Federation::new(4, "another-chain").genesis;
    std::fs::write(&other, g.to_toml_string().unwrap()).unwrap();
    let e = fails(&[
        "chain",
        "export",
        "--node",
        &url,
        "--genesis",
        s(&other),
        "--to",
        s(&export),
    ]);
    assert!(e.contains("runs genesis"), "{e}");
}
