//! A whole local network in one directory: what `custody testnet init`
//! writes, and what the multi-node tests and `custody-harness bench load` start.
//!
//! ```text
//! DIR/testnet.json              departments, API URLs, peer ids (for scripts)
//! DIR/genesis.json              the shared genesis
//! DIR/<dept>/config.toml        node config, ports BASE+2i (p2p) and BASE+2i+1 (API)
//! DIR/<dept>/genesis.json       copy of the genesis
//! DIR/<dept>/keys/*.key         validator and node secrets
//! DIR/<dept>/members/department.key  the department's decryption key (bare:
//!                               a trial network; a real one seals it)
//! DIR/<dept>/members/admin.key  the department's first admin (member key)
//! DIR/<dept>/members/clerk.key  a clerk of the department (member key)
//! DIR/<dept>/members/subject.key  the federation's subject key (bare; the
//!                               same in every department, so that a
//!                               citizen has one receipt code everywhere)
//! DIR/auditor.key               an auditor every node's `api.auditor_keys`
//!                               names: reads the whole chain through the API
//! ```

use std::path::{Path, PathBuf};

use custody_ledger::genesis::Genesis;
use custody_ledger::records::{DepartmentKeys, NewDepartment, NewMember, Parameters};
use custody_ledger::types::{Classification, DepartmentId, PublicKey, Role, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::{NodeConfig, PeerConfig};
use crate::home::{self, Home, KeyFileError};

/// Department slugs used for the first testnet nodes, in order.
const DEPARTMENT_NAMES: [(&str, &str); 6] = [
    ("civil-affairs", "Civil Affairs Bureau"),
    ("social-security", "Social Security Bureau"),
    ("health", "Health Commission"),
    ("public-security", "Public Security Bureau"),
    ("finance", "Finance Bureau"),
    ("service-centre", "Convenience Service Centre"),
];

/// The subject key's file under a department's `members/` directory.
pub const SUBJECT_KEY_FILE: &str = "subject.key";

/// Most departments a generated testnet may have.
pub const TESTNET_DEPARTMENTS_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    #[error("a testnet needs between 1 and {TESTNET_DEPARTMENTS_MAX} departments, not {0}")]
    DepartmentCount(usize),
    #[error("base port {base} leaves no room for {count} nodes (two ports each)")]
    PortRange { base: u16, count: usize },
    #[error("{0} already exists; choose an empty directory")]
    NotEmpty(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("the generated genesis is invalid: {0}")]
    Genesis(String),
}

#[derive(Clone, Debug)]
pub struct TestnetOptions {
    pub departments: usize,
    pub dir: PathBuf,
    pub base_port: u16,
    /// Short timeouts, for tests and benchmarks on one machine.
    pub fast: bool,
    pub chain_id: String,
    /// Departments made beside the genesis ones but left out of the
    /// genesis: homes, keys and configs (their peers list every node) and
    /// `contribution.json`, the department as `add-department` takes it,
    /// for a federation that votes them in later. The genesis nodes list
    /// them as peers too: they dial them once a committed change adds them.
    pub joining: usize,
    /// A second admin per department (`members/governor.key`), so that
    /// governance can be signed while a load keeps the first admin's
    /// nonces busy.
    pub governors: bool,
}

/// What `testnet.json` lists for each node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestnetNode {
    pub department: String,
    pub home: PathBuf,
    pub api_url: String,
    pub p2p_address: String,
    pub peer_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestnetManifest {
    pub chain_id: String,
    pub genesis_hash: String,
    pub nodes: Vec<TestnetNode>,
    /// The departments left out of the genesis (see
    /// [`TestnetOptions::joining`]).
    #[serde(default)]
    pub joining: Vec<TestnetNode>,
}

fn department_slug(index: usize) -> (String, String) {
    match DEPARTMENT_NAMES.get(index) {
        Some((slug, name)) => (slug.to_string(), name.to_string()),
        None => (
            format!("department-{}", index + 1),
            format!("Department {}", index + 1),
        ),
    }
}

fn ed25519_public(secret: &[u8; 32]) -> PublicKey {
    PublicKey(
        ed25519_dalek::SigningKey::from_bytes(secret)
            .verifying_key()
            .to_bytes(),
    )
}

fn x25519_public(secret: &[u8; 32]) -> PublicKey {
    let secret = x25519_dalek::StaticSecret::from(*secret);
    PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TestnetError> {
    home::write_atomically(path, bytes).map_err(|source| TestnetError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The auditor's key file in a testnet directory.
pub const TESTNET_AUDITOR_KEY_FILE: &str = "auditor.key";

/// Milliseconds since the Unix epoch by the local clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Generates the whole network. Refuses to touch a non-empty directory.
pub fn generate(options: &TestnetOptions) -> Result<TestnetManifest, TestnetError> {
    let in_genesis = options.departments;
    let count = options.departments + options.joining;
    if in_genesis == 0 || count > TESTNET_DEPARTMENTS_MAX {
        return Err(TestnetError::DepartmentCount(count));
    }
    if usize::from(options.base_port) + 2 * count > usize::from(u16::MAX) {
        return Err(TestnetError::PortRange {
            base: options.base_port,
            count,
        });
    }
    if options
        .dir
        .read_dir()
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false)
    {
        return Err(TestnetError::NotEmpty(options.dir.clone()));
    }

    struct Generated {
        slug: String,
        home: Home,
        node_secret: [u8; 32],
        p2p_port: u16,
        api_port: u16,
    }
    let mut generated = Vec::new();
    let mut departments = Vec::new();
    let mut subject_key: Option<[u8; 32]> = None;
    for index in 0..count {
        let (slug, name) = department_slug(index);
        let home = Home::new(options.dir.join(&slug));
        let keys = home.root.join("keys");
        let validator = home::generate_key_file(&keys.join(home::VALIDATOR_KEY_FILE))?;
        let node = home::generate_key_file(&keys.join(home::NODE_KEY_FILE))?;
        let encryption = home::generate_key_file(&home.root.join(home::TRIAL_DEPARTMENT_KEY_FILE))?;
        let members = home.root.join("members");
        let admin = home::generate_key_file(&members.join("admin.key"))?;
        let clerk = home::generate_key_file(&members.join("clerk.key"))?;
        let subject_path = members.join(SUBJECT_KEY_FILE);
        match subject_key {
            Some(secret) => home::write_key_file(&subject_path, &secret)?,
            None => subject_key = Some(home::generate_key_file(&subject_path)?),
        }
        let governor = if options.governors {
            Some(home::generate_key_file(&members.join("governor.key"))?)
        } else {
            None
        };
        let id = DepartmentId::new(slug.clone())
            .map_err(|error| TestnetError::Genesis(error.to_string()))?;
        departments.push(NewDepartment {
            id,
            name: name.clone(),
            keys: DepartmentKeys {
                validator_key: ed25519_public(&validator),
                node_key: ed25519_public(&node),
                encryption_key: x25519_public(&encryption),
            },
            voting_power: 1,
            admins: vec![
                NewMember {
                    key: ed25519_public(&admin),
                    name: format!("{name} administrator"),
                    roles: vec![Role::Admin],
                    clearance: Classification::Secret,
                },
                NewMember {
                    key: ed25519_public(&clerk),
                    name: format!("{name} clerk"),
                    roles: vec![Role::Clerk],
                    clearance: Classification::Confidential,
                },
            ]
            .into_iter()
            .chain(governor.map(|governor| NewMember {
                key: ed25519_public(&governor),
                name: format!("{name} governance admin"),
                roles: vec![Role::Admin],
                clearance: Classification::Secret,
            }))
            .collect(),
        });
        let port = options.base_port + 2 * index as u16;
        generated.push(Generated {
            slug,
            home,
            node_secret: node,
            p2p_port: port,
            api_port: port + 1,
        });
    }

    let genesis = Genesis {
        format_version: custody_ledger::types::FORMAT_VERSION,
        chain_id: options.chain_id.clone(),
        genesis_time: Timestamp(now_ms()),
        parameters: Parameters::default(),
        departments: departments[..in_genesis].to_vec(),
    };
    genesis
        .validate()
        .map_err(|error| TestnetError::Genesis(error.to_string()))?;
    let genesis_json = serde_json::to_vec_pretty(&genesis)
        .map_err(|error| TestnetError::Genesis(error.to_string()))?;
    write_file(&options.dir.join("genesis.json"), &genesis_json)?;

    let peers: Vec<(String, PeerConfig)> = generated
        .iter()
        .map(|node| {
            let peer_id = home::node_keypair(node.node_secret)
                .public()
                .to_peer_id()
                .to_string();
            (
                node.slug.clone(),
                PeerConfig {
                    peer_id,
                    address: format!("/ip4/127.0.0.1/tcp/{}", node.p2p_port),
                },
            )
        })
        .collect();

    let auditor = home::generate_key_file(&options.dir.join(TESTNET_AUDITOR_KEY_FILE))?;
    let auditor_key = ed25519_public(&auditor).to_hex();
    let mut nodes = Vec::new();
    let mut joining = Vec::new();
    for (index, node) in generated.iter().enumerate() {
        let mut config = NodeConfig {
            department: node.slug.clone(),
            ..NodeConfig::default()
        };
        config.network.listen = vec![format!("/ip4/127.0.0.1/tcp/{}", node.p2p_port)];
        config.network.peers = peers
            .iter()
            .filter(|(slug, _)| *slug != node.slug)
            .map(|(_, peer)| peer.clone())
            .collect();
        config.api.listen = std::net::SocketAddr::from(([127, 0, 0, 1], node.api_port));
        config.api.auditor_keys = vec![auditor_key.clone()];
        if options.fast {
            config.consensus.timeout_propose_ms = 1_000;
            config.consensus.timeout_prevote_ms = 300;
            config.consensus.timeout_precommit_ms = 300;
            config.consensus.timeout_delta_ms = 200;
            config.consensus.block_interval_ms = 50;
            config.consensus.empty_block_interval_ms = 300;
            // Trial networks and tests show progress without load: they
            // keep an empty block every `empty_block_interval_ms` instead of
            // waiting for work (the default config waits, with an hourly
            // heartbeat; see docs/consensus.md, "Idle heights").
            config.consensus.heartbeat_interval_ms = 0;
            config.consensus.rebroadcast_interval_ms = 300;
            config.network.redial_backoff_ms_max = 1_000;
            config.sync.status_interval_ms = 500;
            config.sync.timeout_ms = 3_000;
        }
        config.save(&node.home.config_path())?;
        write_file(&node.home.root.join("genesis.json"), &genesis_json)?;
        let self_peer = peers
            .iter()
            .find(|(slug, _)| *slug == node.slug)
            .map(|(_, peer)| peer.clone());
        let (peer_id, p2p_address) = match self_peer {
            Some(peer) => (peer.peer_id, peer.address),
            None => (String::new(), String::new()),
        };
        let entry = TestnetNode {
            department: node.slug.clone(),
            home: node.home.root.clone(),
            api_url: format!("http://127.0.0.1:{}", node.api_port),
            p2p_address,
            peer_id,
        };
        if index < in_genesis {
            nodes.push(entry);
        } else {
            let contribution =
                custody_ledger::genesis::Contribution::new(departments[index].clone());
            let contribution = serde_json::to_vec_pretty(&contribution)
                .map_err(|error| TestnetError::Genesis(error.to_string()))?;
            write_file(&node.home.root.join("contribution.json"), &contribution)?;
            joining.push(entry);
        }
    }
    let manifest = TestnetManifest {
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash().to_hex(),
        nodes,
        joining,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|error| TestnetError::Genesis(error.to_string()))?;
    write_file(&options.dir.join("testnet.json"), &manifest_json)?;
    Ok(manifest)
}
