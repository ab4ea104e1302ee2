//! `custody`: the command line for department IT, clerks and auditors.

use custody_cli::exit_codes_help;
use custody_cli::{doc, exit, gov, tx, watch};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use custody_node::home::{self, Home};

/// mimalloc, without transparent huge pages: the node allocates and frees
/// many small buffers per transaction (decoding, gossip, store reads). With
/// the system allocator it committed 6,100–6,400 tx/s under
/// `custody-harness bench load`, with mimalloc 6,700–7,000 (huge pages cost a
/// kernel page clear on every fresh allocation region and gave nothing back).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Custody keeps the chain of custody of government electronic archives.
///
/// Each department runs one node. Try a whole network on this machine with
/// `custody testnet init --dir /tmp/net` and `custody node start --home
/// /tmp/net/civil-affairs` (one per department); set up a real department's
/// node with `custody node init`.
#[derive(Parser)]
#[command(name = "custody", version, about, long_about, after_help = exit_codes_help!())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up, run and watch this department's node.
    #[command(subcommand)]
    #[command(after_help = exit_codes_help!())]
    Node(NodeCommand),
    /// Generate a whole local network (keys, genesis, configs) for trials and tests.
    #[command(subcommand)]
    #[command(after_help = exit_codes_help!())]
    Testnet(TestnetCommand),
    /// Sign and submit transactions to a node.
    #[command(subcommand)]
    #[command(after_help = exit_codes_help!())]
    Tx(tx::TxCommand),
    /// Governance: propose, approve and follow changes of the federation
    /// (departments joining or leaving, key rotations, chain parameters).
    #[command(subcommand)]
    #[command(after_help = exit_codes_help!())]
    Gov(gov::GovCommand),
    /// A department's members: change roles and clearance, show one.
    #[command(subcommand)]
    #[command(after_help = exit_codes_help!())]
    Member(gov::MemberCommand),
    /// Make and inspect member and department key files.
    #[command(after_help = exit_codes_help!())]
    Keys(custody_cli::keyfile::KeysArgs),
    /// Clerks' documents: register, offer, accept, grant, open, history.
    #[command(after_help = exit_codes_help!())]
    Doc(doc::DocArgs),
    /// Follow a department's actions and oversight alerts as blocks commit.
    Watch(watch::WatchArgs),
    /// Auditors: verify the chain, a document's history, proofs, fixity, reports.
    #[command(after_help = exit_codes_help!())]
    Audit(custody_cli::AuditArgs),
    /// Export a whole chain to one file, or import one into a new store.
    #[command(after_help = exit_codes_help!())]
    Chain(custody_cli::ChainArgs),
    /// The genesis ceremony: each department contributes its keys, one assembles, all check the hash.
    #[command(after_help = exit_codes_help!())]
    Genesis(custody_cli::GenesisArgs),
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Write a commented default configuration and fresh keys into HOME.
    ///
    /// Creates HOME/config.toml and HOME/keys/{validator,node}.key and
    /// prints the public keys to put in the genesis. Existing keys are never
    /// overwritten. The department's encryption key is not made here: the
    /// node never decrypts, and the key lives with the clerks, sealed
    /// (`custody keys new --kind department`). Put the chain's genesis at HOME/genesis.json before
    /// `custody node start`.
    #[command(
        after_help = "Example:\n  custody node init --home /srv/custody --department civil-affairs"
    )]
    Init {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// This node's department slug, as in the genesis.
        #[arg(long, default_value = "my-department")]
        department: String,
        /// Print the public keys as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the validator key a rotation will install, beside the current one.
    ///
    /// Writes HOME/keys/validator.next.key (never over an existing file) and
    /// prints the new validator key as `custody gov propose rotate-keys`
    /// takes it (the node and encryption keys stay as they are). A running
    /// node picks the new key up within 2 s (no restart). It then holds
    /// both keys and signs with whichever the validator set of each height
    /// names, so the chain does not pause at the handoff.
    ///
    /// Example:
    ///   custody node next-key --home /srv/custody
    ///   custody gov propose rotate-keys --department health --validator-key pub:… --key admin.key --wait
    NextKey {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// Print the keys as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the node until SIGINT or SIGTERM (logs on stderr; RUST_LOG filters).
    #[command(
        after_help = "Example:\n  custody node start --home /srv/custody\n  RUST_LOG=info,custody_node=debug custody node start --home /srv/custody --log-json 2>> node.log"
    )]
    Start {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// Log one JSON object per line instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Run the checks `node start` runs on the ledger store, without starting.
    ///
    /// Opens the store, checks that its head record, last block and last
    /// certificate agree and that the blocks below hash-link to the head,
    /// and that it is not behind the height the consensus state shows this
    /// node committed. Exits non-zero, naming the next step, when not.
    #[command(after_help = "Example:\n  custody node check --home /srv/custody --json")]
    Check {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// Print what was found as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a damaged ledger store from verified blocks, keeping the old one aside.
    ///
    /// The node must be stopped. The chain comes from other departments'
    /// nodes (--peer URL, their HTTP API; tried in order) or from an export
    /// file (--from-export FILE --genesis FILE). It is verified from this
    /// node's genesis (every certificate and signature, re-execution) and
    /// must reach the height the consensus state shows this node committed,
    /// before anything on disk changes. The old store is moved to
    /// DATA/ledger.damaged-<UTC time> (never deleted); the new one must pass
    /// `custody node check`.
    #[command(
        after_help = "Example:\n  custody node repair --home /srv/custody --peer http://10.0.0.2:26681 --peer http://10.0.0.3:26681\n  custody node repair --home /srv/custody --from-export chain.export --genesis genesis.json"
    )]
    Repair {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// Another department's node API to rebuild from (repeatable).
        #[arg(long = "peer", value_name = "URL", conflicts_with = "from_export")]
        peers: Vec<String>,
        /// Rebuild from this export file instead of from peers.
        #[arg(long, value_name = "FILE", requires = "genesis")]
        from_export: Option<PathBuf>,
        /// The genesis file the export must start from (with --from-export).
        #[arg(long, value_name = "FILE", requires = "from_export")]
        genesis: Option<PathBuf>,
        /// Verification threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Print what was recovered as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Back up a running node: its consensus state and its verified chain, in one file.
    ///
    /// Reads HOME's consensus state, then the chain from the node's HTTP API
    /// (the address in HOME's config, or --node) up to its height, verifies
    /// the chain, and writes FILE (never over an existing file). Blobs are
    /// not included: copy DATA/blobs alongside (docs/operations.md).
    #[command(
        after_help = "Example:\n  custody node backup --home /srv/custody --to /backups/custody-2026-12-04.backup"
    )]
    Backup {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// The backup file to write.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// The node's HTTP API, when not the address in HOME's config.
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        /// Verification threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Print the backup's manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a stopped node's ledger store from a backup, verifying everything first.
    ///
    /// Checks the file's framing and checksums, that it is this node's
    /// chain (genesis), the whole chain, and that it reaches the height this
    /// node's consensus state shows it committed, before writing anything.
    /// Refuses a non-empty store unless --replace, which moves it aside.
    #[command(
        after_help = "Example:\n  custody node restore --home /srv/custody --from /backups/custody-2026-12-04.backup --replace"
    )]
    Restore {
        /// The node's home directory.
        #[arg(long, env = "CUSTODY_HOME")]
        home: PathBuf,
        /// The backup file written by `custody node backup`.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Move an existing store aside (it is kept) and restore in its place.
        #[arg(long)]
        replace: bool,
        /// Verification threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Print what was restored as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a running node's height, peers and mempool.
    #[command(
        after_help = "Example:\n  custody node status --node http://127.0.0.1:26681\n  custody node status --json | jq .height"
    )]
    Status {
        /// The node's HTTP API.
        #[arg(long, env = "CUSTODY_NODE", default_value = "http://127.0.0.1:26680")]
        node: String,
        /// Print the full status as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TestnetCommand {
    /// Generate N departments' homes under DIR, each ready for `custody node start --home DIR/<dept>`.
    ///
    /// Each department gets validator, node and encryption keys, a first
    /// admin (DIR/<dept>/members/admin.key) and a clerk (members/clerk.key),
    /// all in one genesis. DIR/testnet.json lists the API URLs.
    #[command(
        after_help = "Example:\n  custody testnet init --dir /tmp/net\n  custody testnet init --dir /tmp/net --departments 7 --fast --json"
    )]
    Init(TestnetInitArgs),
}

#[derive(Args)]
struct TestnetInitArgs {
    /// How many departments (nodes); 4 tolerates one faulty node.
    #[arg(long, default_value_t = 4)]
    departments: usize,
    /// Directory to create the homes in (must be empty or absent).
    #[arg(long)]
    dir: PathBuf,
    /// First port; node i listens on BASE+2i (peers) and BASE+2i+1 (HTTP API).
    #[arg(long, default_value_t = 26600)]
    base_port: u16,
    /// Short consensus timeouts, for tests and benchmarks on one machine.
    #[arg(long)]
    fast: bool,
    /// The chain id written into the genesis.
    #[arg(long, default_value = "custody-testnet")]
    chain_id: String,
    /// Also make this many departments that are not in the genesis (homes,
    /// keys, configs and DIR/<dept>/contribution.json), for trying out
    /// `custody gov propose add-department`.
    #[arg(long, default_value_t = 0)]
    joining: usize,
    /// Print the manifest as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.exit.code())
        }
    }
}

/// Prints `report` as pretty JSON with `--json`, else as text by `text`.
fn print_report<T: serde::Serialize>(
    report: &T,
    json: bool,
    text: impl FnOnce(&T),
) -> Result<(), String> {
    if json {
        let rendered = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        println!("{rendered}");
    } else {
        text(report);
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))
}

fn run(cli: Cli) -> Result<(), exit::Failure> {
    match cli.command {
        Command::Node(NodeCommand::Init {
            home,
            department,
            json,
        }) => Ok(node_init(home, department, json)?),
        Command::Node(NodeCommand::NextKey { home, json }) => Ok(node_next_key(home, json)?),
        Command::Node(NodeCommand::Start { home, log_json }) => {
            Ok(custody_cli::node_process::run_node(home, log_json)?)
        }
        Command::Node(NodeCommand::Check { home, json }) => {
            let check = custody_node::node::check_home(&Home::new(home))
                .map_err(|error| error.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&check).map_err(|e| e.to_string())?
                );
            } else {
                println!("store          {}", check.store.display());
                println!(
                    "head           height {} (from the store's head record, matching its last block and certificate)",
                    check.height
                );
                println!("last block     {}", check.last_block_hash);
                println!(
                    "hash-linked    heights {} to {}",
                    check.linked_from, check.height
                );
                println!(
                    "committed      height {} (from the consensus state); the store is not behind it",
                    check.committed
                );
            }
            Ok(())
        }
        Command::Node(NodeCommand::Repair {
            home,
            peers,
            from_export,
            genesis,
            threads,
            json,
        }) => {
            use custody_cli::node_store::{repair, RepairSource};
            let source = match (from_export, genesis) {
                (Some(export), Some(genesis)) => RepairSource::Export { export, genesis },
                _ => RepairSource::Peers(peers),
            };
            let report = repair(&home, source, threads).map_err(|error| error.to_string())?;
            Ok(print_report(&report, json, |report| {
                println!("store          {} (rebuilt)", report.store.display());
                println!(
                    "recovered      heights 1 to {} ({} transactions), every certificate verified",
                    report.height, report.transactions
                );
                println!("last block     {}", report.last_block_hash);
                println!("source         {}", report.source);
                println!(
                    "committed      height {} (from the consensus state); the store is not behind it",
                    report.committed
                );
                match &report.damaged_store_kept_at {
                    Some(path) => println!("damaged store  kept at {}", path.display()),
                    None => println!("damaged store  none was there"),
                }
                for passed in &report.passed_over {
                    println!("passed over    {passed}");
                }
            })?)
        }
        Command::Node(NodeCommand::Backup {
            home,
            to,
            node,
            threads,
            json,
        }) => {
            let report = custody_cli::node_store::backup(&home, &to, node, threads)
                .map_err(|error| error.to_string())?;
            Ok(print_report(&report, json, |report| {
                println!(
                    "backup         {} ({} bytes)",
                    report.file.display(),
                    report.bytes
                );
                println!(
                    "chain          {} (genesis {}), heights 1 to {}, verified",
                    report.manifest.chain_id, report.manifest.genesis_hash, report.manifest.height
                );
                println!(
                    "consensus      state at committed height {}",
                    report.manifest.committed
                );
                println!("read from      {}", report.manifest.node);
            })?)
        }
        Command::Node(NodeCommand::Restore {
            home,
            from,
            replace,
            threads,
            json,
        }) => {
            let report = custody_cli::node_store::restore(&home, &from, replace, threads)
                .map_err(|error| error.to_string())?;
            Ok(print_report(&report, json, |report| {
                println!("store          {} (restored)", report.store.display());
                println!(
                    "restored       heights 1 to {} ({} transactions) from {}, every certificate verified",
                    report.height,
                    report.transactions,
                    report.from.display()
                );
                println!("last block     {}", report.last_block_hash);
                println!("consensus      {}", report.consensus_state);
                if let Some(path) = &report.previous_store_kept_at {
                    println!("previous store kept at {}", path.display());
                }
            })?)
        }
        Command::Node(NodeCommand::Status { node, json }) => {
            let runtime = runtime()?;
            Ok(runtime.block_on(async move {
                let client = custody_node::client::Client::new(node);
                let status = client.status().await.map_err(|error| error.to_string())?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?
                    );
                } else {
                    println!("department   {}", status.department);
                    println!(
                        "chain        {} (genesis {})",
                        status.chain_id, status.genesis_hash
                    );
                    println!("height       {} (round {})", status.height, status.round);
                    println!("last block   {}", status.last_block_hash);
                    println!(
                        "peers        {}{}",
                        status.peers.len(),
                        if status.syncing { " (syncing)" } else { "" }
                    );
                    println!(
                        "mempool      {} transactions, {} bytes",
                        status.mempool.transactions, status.mempool.bytes
                    );
                }
                Ok::<(), String>(())
            })?)
        }
        Command::Testnet(TestnetCommand::Init(args)) => {
            let manifest =
                custody_node::testnet::generate(&custody_node::testnet::TestnetOptions {
                    departments: args.departments,
                    dir: args.dir.clone(),
                    base_port: args.base_port,
                    fast: args.fast,
                    chain_id: args.chain_id,
                    joining: args.joining,
                    governors: false,
                })
                .map_err(|error| error.to_string())?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "testnet `{}` (genesis {}) in {}",
                    manifest.chain_id,
                    manifest.genesis_hash,
                    args.dir.display()
                );
                for node in &manifest.nodes {
                    println!(
                        "  {:<16} API {}  start: custody node start --home {}",
                        node.department,
                        node.api_url,
                        node.home.display()
                    );
                }
            }
            Ok(())
        }
        Command::Tx(command) => {
            let runtime = runtime()?;
            Ok(runtime.block_on(tx::run(command))?)
        }
        Command::Gov(command) => Ok(runtime()?.block_on(gov::run(command))?),
        Command::Member(command) => Ok(runtime()?.block_on(gov::run_member(command))?),
        Command::Keys(args) => Ok(custody_cli::keyfile::run_keys(args)?),
        Command::Doc(args) => Ok(runtime()?.block_on(doc::run(args))?),
        Command::Watch(args) => runtime()?.block_on(watch::run(args)).map_err(Into::into),
        Command::Audit(args) => Ok(custody_cli::run_audit(args)?),
        Command::Chain(args) => Ok(custody_cli::run_chain(args)?),
        Command::Genesis(args) => Ok(custody_cli::run_genesis(args)?),
    }
}

fn node_next_key(home_dir: PathBuf, json: bool) -> Result<(), String> {
    let home = Home::new(home_dir);
    let config = home.load_config().map_err(|error| error.to_string())?;
    let keys = home.keys_dir(&config);
    let next_path = keys.join(home::VALIDATOR_NEXT_KEY_FILE);
    let validator = home::generate_key_file(&next_path).map_err(|error| error.to_string())?;
    let validator_key = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&validator)
            .verifying_key()
            .to_bytes(),
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "file": next_path,
                "department": config.department,
                "validator_key": validator_key,
            })
        );
    } else {
        println!("wrote {}", next_path.display());
        println!("the running node holds it within 2 s (a stopped one loads it at start); then have one admin propose:");
        println!(
            "  custody gov propose rotate-keys --department {} --validator-key pub:{validator_key} --key ADMIN.key --wait",
            config.department
        );
    }
    Ok(())
}

fn node_init(home_dir: PathBuf, department: String, json: bool) -> Result<(), String> {
    let home = Home::new(home_dir);
    let config_path = home.config_path();
    if config_path.exists() {
        return Err(format!(
            "{} already exists; edit it instead of initialising again",
            config_path.display()
        ));
    }
    std::fs::create_dir_all(&home.root)
        .map_err(|error| format!("cannot create {}: {error}", home.root.display()))?;
    let text = custody_node::config::DEFAULT_CONFIG_TOML.replace(
        "department = \"my-department\"",
        &format!("department = {department:?}"),
    );
    custody_node::config::NodeConfig::from_toml(&text).map_err(|error| error.to_string())?;
    home::write_atomically(&config_path, text.as_bytes())
        .map_err(|error| format!("cannot write {}: {error}", config_path.display()))?;
    // The node signs and talks to its peers; it never decrypts. The
    // department's encryption key is made and kept by its clerks (sealed),
    // not on the node host.
    let keys = home.root.join("keys");
    let validator = home::generate_key_file(&keys.join(home::VALIDATOR_KEY_FILE))
        .map_err(|error| error.to_string())?;
    let node = home::generate_key_file(&keys.join(home::NODE_KEY_FILE))
        .map_err(|error| error.to_string())?;
    let validator_key = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&validator)
            .verifying_key()
            .to_bytes(),
    );
    let node_key = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&node)
            .verifying_key()
            .to_bytes(),
    );
    let peer_id = home::node_keypair(node).public().to_peer_id().to_string();
    let encryption_hint = "custody keys new --kind department --out department.key --passphrase-env CUSTODY_PASSPHRASE";
    if json {
        println!(
            "{}",
            serde_json::json!({
                "config": config_path,
                "validator_key": validator_key,
                "node_key": node_key,
                "peer_id": peer_id,
                "encryption_key": serde_json::Value::Null,
                "encryption_key_hint": format!("made on a clerk's machine, sealed, never on the node host: {encryption_hint}"),
            })
        );
    } else {
        println!("wrote {}", config_path.display());
        println!("node keys for the genesis ([departments.keys]):");
        println!("  validator_key  = \"{validator_key}\"");
        println!("  node_key       = \"{node_key}\"");
        println!("peer id for the other departments' [[network.peers]]: {peer_id}");
        println!(
            "the department's encryption key (encryption_key) is not made here: the node never \
             decrypts. A records officer makes it on their own machine, sealed with a passphrase, \
             and shares it with the department's clerks:"
        );
        println!("  {encryption_hint}");
        println!("  custody keys show department.key      # its public key, for the genesis");
        println!(
            "next: put the agreed genesis at {} and run `custody node start --home {}`",
            home.root.join("genesis.json").display(),
            home.root.display()
        );
    }
    Ok(())
}
