//! The node's configuration file (`config.toml` in the node's home).
//!
//! Every limit the node enforces is named here with its unit, so that
//! department IT can see and change it in one place. `custody node init`
//! writes [`DEFAULT_CONFIG_TOML`], which documents each field; the tests
//! check that this text parses to [`NodeConfig::default`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use custody_ledger::types::PublicKey;
use serde::{Deserialize, Serialize};

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the configuration file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid TOML for a Custody node: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot encode the configuration: {0}")]
    Encode(String),
    #[error("configuration value `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// A node's whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The department this node belongs to (its slug in the genesis).
    pub department: String,
    #[serde(default)]
    pub paths: PathsConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub mempool: MempoolConfig,
    #[serde(default)]
    pub consensus: ConsensusConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub blobs: BlobConfig,
    #[serde(default)]
    pub readiness: ReadinessConfig,
    #[serde(default)]
    pub oversight: OversightConfig,
    #[serde(default)]
    pub pages: PagesConfig,
}

/// Where the node keeps its files. Relative paths are relative to the home.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    pub genesis: PathBuf,
    pub data: PathBuf,
    pub keys: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            genesis: PathBuf::from("genesis.json"),
            data: PathBuf::from("data"),
            keys: PathBuf::from("keys"),
        }
    }
}

/// One other node to dial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's libp2p identity (base58 `12D3KooW...`).
    pub peer_id: String,
    /// A multiaddress to dial, e.g. `/ip4/10.0.0.2/tcp/26600`.
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Multiaddresses to listen on for other nodes.
    pub listen: Vec<String>,
    /// Nodes to dial and keep connected to.
    pub peers: Vec<PeerConfig>,
    /// Peer ids of observers (non-validator nodes) allowed to connect.
    pub observers: Vec<String>,
    /// Longest wait between two redials of a lost peer.
    pub redial_backoff_ms_max: u64,
    /// How often each connection to a peer is pinged (default 1000).
    pub ping_interval_ms: u64,
    /// A ping unanswered this long fails (default 4000). A connection that
    /// answered no ping for `ping_interval_ms + ping_timeout_ms` is closed
    /// and its peer redialed: a silently cut link is noticed in 5 s.
    pub ping_timeout_ms: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            listen: vec!["/ip4/0.0.0.0/tcp/26600".to_string()],
            peers: Vec::new(),
            observers: Vec::new(),
            redial_backoff_ms_max: 10_000,
            ping_interval_ms: 1_000,
            ping_timeout_ms: 4_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the HTTP API. Loopback by default: put a reverse proxy
    /// with TLS in front of it to serve other machines.
    pub listen: SocketAddr,
    /// Largest request body accepted.
    pub body_bytes_max: usize,
    /// Longest `?wait=true` a client may ask for.
    pub wait_ms_max: u64,
    /// Largest page of a history query.
    pub page_size_max: u32,
    /// Most HTTP connections open at once; a connection beyond this is
    /// closed as soon as it is accepted. Keep it well below the process's
    /// file limit (`ulimit -n`): the store, the consensus state and the peer
    /// connections need file handles too.
    pub connections_max: usize,
    /// Longest a connection may take to send a complete request head. The
    /// same timer runs while a kept-alive connection waits for its next
    /// request, so this also closes idle keep-alive connections.
    pub header_read_timeout_ms: u64,
    /// Whether a connection may stay open for further requests at all
    /// (HTTP keep-alive); idle ones are closed after `header_read_timeout_ms`.
    pub keep_alive: bool,
    /// Longest a request may take, body included, until its answer starts
    /// (408 after that). Must exceed `wait_ms_max`.
    pub request_timeout_ms: u64,
    /// The same for blob uploads, blob fetches and document reads, whose
    /// bodies may be gigabytes.
    pub transfer_timeout_ms: u64,
    /// Auditors allowed to read the chain and every department's records
    /// through this API (hex ed25519 public keys). Members and department
    /// nodes need no entry: the chain names them.
    pub auditor_keys: Vec<String>,
    /// How far a signed API request's time may be from this node's clock.
    pub request_skew_ms: u64,
    /// Citizen lookups (`POST /v1/citizen/records`) one client may make in
    /// a burst, before `citizen_lookups_per_minute` paces it.
    pub citizen_lookups_burst: u32,
    /// Citizen lookups one client may make per minute, after its burst.
    pub citizen_lookups_per_minute: u32,
    /// Most clients whose lookup budget is remembered at once; beyond it
    /// the longest-idle client is forgotten.
    pub citizen_clients_tracked_max: usize,
    /// Take the client of a citizen lookup from the last address of
    /// `X-Forwarded-For` instead of the connection's peer. Only behind a
    /// reverse proxy that sets that header: a client reaching the node
    /// directly could otherwise name any address it likes.
    pub citizen_client_from_forwarded_for: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 26680)),
            body_bytes_max: 1 << 20,
            wait_ms_max: 60_000,
            page_size_max: 100,
            connections_max: 512,
            header_read_timeout_ms: 10_000,
            keep_alive: true,
            request_timeout_ms: 70_000,
            transfer_timeout_ms: 3_600_000,
            auditor_keys: Vec::new(),
            request_skew_ms: 60_000,
            citizen_lookups_burst: 10,
            citizen_lookups_per_minute: 10,
            citizen_clients_tracked_max: 10_000,
            citizen_client_from_forwarded_for: false,
        }
    }
}

impl ApiConfig {
    /// The auditors' keys, parsed.
    pub fn auditor_keys(&self) -> Result<Vec<PublicKey>, ConfigError> {
        self.auditor_keys
            .iter()
            .map(|text| {
                PublicKey::from_hex(text.trim()).map_err(|error| ConfigError::Invalid {
                    field: "api.auditor_keys",
                    reason: format!(
                        "`{text}` is not an ed25519 public key (64 hex digits): {error}"
                    ),
                })
            })
            .collect()
    }
}

/// When the node tells its supervisor and load balancer it is alive
/// (`/healthz`) and able to serve writes (`/readyz`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadinessConfig {
    /// A validator counts as heard while its last valid consensus message
    /// is at most this old. Not ready when the heard validators (this one
    /// included) hold two thirds of the voting power or less.
    pub quorum_silence_ms_max: u64,
    /// Not ready when no block was committed for this long while
    /// transactions wait in the mempool.
    pub stall_ms_max: u64,
    /// `/healthz` fails (and `/readyz` too) when the consensus task has not
    /// turned its loop for this long: it is stuck.
    pub driver_silence_ms_max: u64,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        ReadinessConfig {
            quorum_silence_ms_max: 5_000,
            stall_ms_max: 30_000,
            driver_silence_ms_max: 20_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    /// Most transactions waiting at once.
    pub txs_max: usize,
    /// Most encoded bytes waiting at once.
    pub bytes_max: usize,
    /// Most transactions in one gossip message.
    pub gossip_batch_txs_max: usize,
    /// How often pending transactions are gossiped.
    pub gossip_interval_ms: u64,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            txs_max: 20_000,
            bytes_max: 64 << 20,
            gossip_batch_txs_max: 256,
            gossip_interval_ms: 50,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusConfig {
    /// Round-0 timeouts; each later round adds `timeout_delta_ms`.
    pub timeout_propose_ms: u64,
    pub timeout_prevote_ms: u64,
    pub timeout_precommit_ms: u64,
    pub timeout_delta_ms: u64,
    /// Pause after a commit before proposing the next height, so that a
    /// block gathers transactions instead of carrying one each.
    pub block_interval_ms: u64,
    /// With an empty mempool, how long a proposer waits after a commit
    /// before proposing an empty block (must stay below
    /// `timeout_propose_ms`). With `heartbeat_interval_ms` above 0 a height
    /// only starts when there is work (or at the heartbeat), so this only
    /// gives transactions still being gossiped a moment to arrive.
    pub empty_block_interval_ms: u64,
    /// With no transactions anywhere, the longest time between two blocks:
    /// each new height waits until a node holds transactions or another
    /// validator starts the height, and after this long commits an empty
    /// "heartbeat" block so that liveness stays visible. 0 turns the wait
    /// off: an empty block about every `empty_block_interval_ms`.
    /// Default one hour (see docs/consensus.md, "Idle heights").
    pub heartbeat_interval_ms: u64,
    /// Added to the local clock when stamping or checking block times.
    /// Zero in production; fault tests set it to skew one node's clock.
    /// (How far a block time may differ from the clock is the chain
    /// parameter `block_time_skew_ms` in the genesis.)
    pub clock_offset_ms: i64,
    /// How often the latest own votes are re-broadcast while a height is
    /// undecided (Tendermint needs every vote to reach everyone eventually).
    pub rebroadcast_interval_ms: u64,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            timeout_propose_ms: 3_000,
            timeout_prevote_ms: 1_000,
            timeout_precommit_ms: 1_000,
            timeout_delta_ms: 500,
            block_interval_ms: 200,
            empty_block_interval_ms: 1_000,
            heartbeat_interval_ms: 3_600_000,
            clock_offset_ms: 0,
            rebroadcast_interval_ms: 1_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Most blocks asked for in one sync request.
    pub batch_blocks_max: u32,
    /// How long to wait for one sync answer.
    pub timeout_ms: u64,
    /// How often peers are asked for their height.
    pub status_interval_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            batch_blocks_max: 64,
            timeout_ms: 10_000,
            status_interval_ms: 2_000,
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            department: "my-department".to_string(),
            paths: PathsConfig::default(),
            network: NetworkConfig::default(),
            api: ApiConfig::default(),
            mempool: MempoolConfig::default(),
            consensus: ConsensusConfig::default(),
            sync: SyncConfig::default(),
            blobs: BlobConfig::default(),
            readiness: ReadinessConfig::default(),
            oversight: OversightConfig::default(),
            pages: PagesConfig::default(),
        }
    }
}

/// The HTML pages for citizens and auditors (`pages`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    /// The department's time zone (an IANA name): every time on the pages
    /// is shown in it.
    pub time_zone: String,
    /// How long an auditor's page session lasts after login.
    pub session_ttl_ms: u64,
    /// How long a one-time login link may wait before it is opened.
    pub login_link_ttl_ms: u64,
    /// Most auditor sessions (and, separately, unopened login links) held
    /// at once; beyond it the oldest is dropped.
    pub sessions_max: usize,
    /// Largest chain export an auditor may upload to `/auditor/verify`, in
    /// bytes (the upload is held in memory while it is verified).
    pub verify_upload_max_bytes: u64,
}

impl Default for PagesConfig {
    fn default() -> Self {
        PagesConfig {
            time_zone: "Asia/Shanghai".to_string(),
            session_ttl_ms: 8 * 3_600_000,
            login_link_ttl_ms: 300_000,
            sessions_max: 1_000,
            verify_upload_max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl PagesConfig {
    /// The configured time zone, from the bundled tz database.
    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone, ConfigError> {
        jiff::tz::TimeZone::get(self.time_zone.trim()).map_err(|error| ConfigError::Invalid {
            field: "pages.time_zone",
            reason: format!(
                "`{}` is not a time zone name such as Asia/Shanghai: {error}",
                self.time_zone
            ),
        })
    }
}

/// The live oversight alerts (`alert_desk`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OversightConfig {
    /// Thresholds file (TOML, or JSON when it ends in `.json`), relative to
    /// the home; `None`: the defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<PathBuf>,
    /// Where each new or changed alert concerning this node's department
    /// is POSTed as JSON; `None`: nowhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Attempts per delivery.
    pub webhook_attempts_max: u32,
    /// Wait before the first retry; doubles at each retry.
    pub webhook_backoff_ms: u64,
    /// Longest one attempt may take.
    pub webhook_timeout_ms: u64,
    /// Alerts waiting for delivery at most.
    pub webhook_queue_max: usize,
}

impl Default for OversightConfig {
    fn default() -> Self {
        OversightConfig {
            thresholds: None,
            webhook_url: None,
            webhook_attempts_max: 5,
            webhook_backoff_ms: 500,
            webhook_timeout_ms: 5_000,
            webhook_queue_max: 1_000,
        }
    }
}

/// The file `custody node init` writes: the defaults, each explained.
pub const DEFAULT_CONFIG_TOML: &str = r#"# Custody node configuration.
#
# Relative paths are relative to the directory holding this file (the
# node's home). Durations are in milliseconds, sizes in bytes.

# This node's department: its slug as written in the genesis.
department = "my-department"

[paths]
# The chain's genesis file, identical on every node. Its hash is the
# chain's root of trust: compare it with the other departments' before start.
genesis = "genesis.json"
# Ledger store, consensus state and blobs. Back it up with
# `custody node backup` (the node may run; docs/operations.md, section 5);
# never copy it between nodes.
data = "data"
# validator.key and node.key (keep them private, mode 0600); never the
# department's decryption key, which lives with its clerks.
keys = "keys"

[network]
# Where other departments' nodes connect to this one.
listen = ["/ip4/0.0.0.0/tcp/26600"]
# Peers not named here (nor validators in the genesis, nor observers below)
# are refused after the handshake.
observers = []
# Longest pause between two attempts to redial a lost peer.
redial_backoff_ms_max = 10000
# Each connection is pinged this often; one that answers no ping for
# ping_interval_ms + ping_timeout_ms is closed and redialed.
ping_interval_ms = 1000
ping_timeout_ms = 4000
# The other nodes, one [[network.peers]] table each:
# [[network.peers]]
# peer_id = "12D3KooW..."
# address = "/ip4/10.0.0.2/tcp/26600"

[api]
# The HTTP API for clerks, auditors and monitoring. Loopback by default;
# put a TLS reverse proxy in front of it to serve other machines.
listen = "127.0.0.1:26680"
# Larger request bodies are refused with 413.
body_bytes_max = 1048576
# Longest a client may wait for its transaction to commit (?wait=true).
wait_ms_max = 60000
# Largest page of a history query.
page_size_max = 100
# Most HTTP connections open at once; more are closed as soon as accepted.
# Keep it well below the process's file limit (ulimit -n).
connections_max = 512
# A connection must send a complete request head within this; the same
# timer closes a kept-alive connection that waits this long for its next
# request.
header_read_timeout_ms = 10000
# Allow several requests on one connection (HTTP keep-alive).
keep_alive = true
# Longest a request may take until its answer starts (then 408). Must be
# greater than wait_ms_max.
request_timeout_ms = 70000
# The same for blob uploads, blob fetches and document reads.
transfer_timeout_ms = 3600000
# Every read of documents, members, blocks or blobs must be signed by a
# member, a department's node, or an auditor listed here (hex ed25519
# public keys, as `custody keys show` prints them).
auditor_keys = []
# A signed request's time may be this far from this node's clock.
request_skew_ms = 60000
# The open citizen lookup (POST /v1/citizen/records): per client, a burst
# of this many lookups, then this many per minute (429 beyond).
citizen_lookups_burst = 10
citizen_lookups_per_minute = 10
# Most clients whose lookup budget is remembered at once.
citizen_clients_tracked_max = 10000
# Behind a reverse proxy, take the client from X-Forwarded-For (its last
# address). Never set it when clients reach the node directly.
citizen_client_from_forwarded_for = false

[mempool]
# Transactions waiting for a block; beyond either bound, new ones get 503.
txs_max = 20000
bytes_max = 67108864
# Transactions are gossiped to the other nodes in batches.
gossip_batch_txs_max = 256
gossip_interval_ms = 50

[consensus]
# Tendermint round timeouts for round 0; each later round waits
# timeout_delta_ms longer.
timeout_propose_ms = 3000
timeout_prevote_ms = 1000
timeout_precommit_ms = 1000
timeout_delta_ms = 500
# Pause after a commit before the next proposal, so blocks fill up.
block_interval_ms = 200
# With nothing to commit, pause this long before proposing an empty block
# (keep it below timeout_propose_ms).
empty_block_interval_ms = 1000
# With no transactions, a new height waits until there are some (or another
# validator starts it); after this long an empty heartbeat block is
# committed anyway. An idle chain thus grows by one block an hour, not one a
# second. 0: no waiting, an empty block every empty_block_interval_ms.
heartbeat_interval_ms = 3600000
# Added to the local clock for block times. Leave at 0. (How far a block's
# time may differ from this node's clock is the genesis parameter
# block_time_skew_ms.)
clock_offset_ms = 0
# How often this node's latest votes are sent again while a height is open.
rebroadcast_interval_ms = 1000

[sync]
# A node that is behind fetches blocks and certificates in batches.
batch_blocks_max = 64
timeout_ms = 10000
# How often peers are asked for their height.
status_interval_ms = 2000

[blobs]
# Encrypted documents (blobs) kept by this node under <data>/blobs.
# Largest single blob, and most bytes all blobs together may use.
blob_bytes_max = 4294967296
total_bytes_max = 274877906944
# Blobs are fetched from other nodes in ranges of this many bytes
# (at most 8388608).
fetch_range_bytes = 4194304
# Passes over the peers a fetch makes before it gives up.
fetch_rounds_max = 2
# A clerk's signed read request must be stamped within this of our clock.
read_request_skew_ms = 60000
# A committed record-access allows downloads for this long (block time).
access_window_ms = 600000
# Every scrub_interval_ms the node re-hashes held blobs, at most
# scrub_bytes_per_pass_max bytes per pass (the next pass goes on from
# there). A blob that no longer matches its hash is moved to
# <data>/blobs/quarantine/ and fetched again from other nodes.
scrub_interval_ms = 3600000
scrub_bytes_per_pass_max = 1073741824
# After each scrub pass, a blob no committed transaction names whose file
# is older than this is removed (an upload whose registration never came).
orphan_after_ms = 86400000

[readiness]
# /readyz fails when the validators heard from within quorum_silence_ms_max
# (this one included) hold two thirds of the voting power or less,
quorum_silence_ms_max = 5000
# or when no block was committed for stall_ms_max while transactions wait.
stall_ms_max = 30000
# /healthz (and /readyz) fail when the consensus task has not turned its
# loop for this long.
driver_silence_ms_max = 20000

[oversight]
# The node runs the oversight detector (docs/audit.md, section 5) on every
# committed block and answers its alerts at GET /v1/alerts.
# A thresholds file, as `custody audit anomalies --thresholds` takes it
# (TOML, or JSON if it ends in .json); relative to this home. Without it
# the defaults apply. Every node should use the same file.
# thresholds = "oversight.toml"
# Each new or changed alert concerning this node's department is POSTed
# as JSON to this URL (docs/operations.md, "Alerts").
# webhook_url = "http://alerts.example.internal/custody"
# A delivery is tried this many times, waiting webhook_backoff_ms, then
# twice as long each time; each attempt may take webhook_timeout_ms.
webhook_attempts_max = 5
webhook_backoff_ms = 500
webhook_timeout_ms = 5000
# Alerts waiting for delivery; beyond this the newest is dropped (logged
# and counted as a failure), so a dead receiver never holds memory.
webhook_queue_max = 1000
"#;

impl NodeConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = NodeConfig::from_toml(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and checks configuration text.
    pub fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: PathBuf::new(),
            message: error.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// The configuration as TOML (without the comments of the default file).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|error| ConfigError::Encode(error.to_string()))
    }

    /// Writes the configuration to `path` (through a temporary file, so a
    /// crash never leaves half a file).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = self.to_toml()?;
        crate::files::write_atomically(path, text.as_bytes()).map_err(|source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Refuses values that would make the node misbehave.
    pub fn check(&self) -> Result<(), ConfigError> {
        fn positive(field: &'static str, value: u64) -> Result<(), ConfigError> {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    reason: "must be greater than zero".to_string(),
                });
            }
            Ok(())
        }
        if self.department.is_empty() {
            return Err(ConfigError::Invalid {
                field: "department",
                reason: "must name this node's department".to_string(),
            });
        }
        positive("api.body_bytes_max", self.api.body_bytes_max as u64)?;
        self.pages.time_zone()?;
        positive("pages.session_ttl_ms", self.pages.session_ttl_ms)?;
        positive("pages.login_link_ttl_ms", self.pages.login_link_ttl_ms)?;
        positive("pages.sessions_max", self.pages.sessions_max as u64)?;
        positive(
            "pages.verify_upload_max_bytes",
            self.pages.verify_upload_max_bytes,
        )?;
        positive(
            "oversight.webhook_attempts_max",
            u64::from(self.oversight.webhook_attempts_max),
        )?;
        positive(
            "oversight.webhook_timeout_ms",
            self.oversight.webhook_timeout_ms,
        )?;
        positive(
            "oversight.webhook_queue_max",
            self.oversight.webhook_queue_max as u64,
        )?;
        if let Some(url) = &self.oversight.webhook_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    field: "oversight.webhook_url",
                    reason: format!("`{url}` is not an http:// or https:// URL"),
                });
            }
        }
        positive("api.page_size_max", u64::from(self.api.page_size_max))?;
        positive("api.connections_max", self.api.connections_max as u64)?;
        positive(
            "api.header_read_timeout_ms",
            self.api.header_read_timeout_ms,
        )?;
        positive("api.transfer_timeout_ms", self.api.transfer_timeout_ms)?;
        positive("api.request_skew_ms", self.api.request_skew_ms)?;
        positive(
            "api.citizen_lookups_burst",
            u64::from(self.api.citizen_lookups_burst),
        )?;
        positive(
            "api.citizen_lookups_per_minute",
            u64::from(self.api.citizen_lookups_per_minute),
        )?;
        positive(
            "api.citizen_clients_tracked_max",
            self.api.citizen_clients_tracked_max as u64,
        )?;
        self.api.auditor_keys()?;
        if self.api.request_timeout_ms <= self.api.wait_ms_max {
            return Err(ConfigError::Invalid {
                field: "api.request_timeout_ms",
                reason: format!(
                    "must be greater than api.wait_ms_max ({} ms), or a client waiting for its commit is cut off",
                    self.api.wait_ms_max
                ),
            });
        }
        positive(
            "readiness.quorum_silence_ms_max",
            self.readiness.quorum_silence_ms_max,
        )?;
        positive("readiness.stall_ms_max", self.readiness.stall_ms_max)?;
        positive(
            "readiness.driver_silence_ms_max",
            self.readiness.driver_silence_ms_max,
        )?;
        positive("mempool.txs_max", self.mempool.txs_max as u64)?;
        positive("mempool.bytes_max", self.mempool.bytes_max as u64)?;
        positive(
            "mempool.gossip_batch_txs_max",
            self.mempool.gossip_batch_txs_max as u64,
        )?;
        positive(
            "mempool.gossip_interval_ms",
            self.mempool.gossip_interval_ms,
        )?;
        positive(
            "consensus.timeout_propose_ms",
            self.consensus.timeout_propose_ms,
        )?;
        positive(
            "consensus.timeout_prevote_ms",
            self.consensus.timeout_prevote_ms,
        )?;
        positive(
            "consensus.timeout_precommit_ms",
            self.consensus.timeout_precommit_ms,
        )?;
        positive(
            "consensus.rebroadcast_interval_ms",
            self.consensus.rebroadcast_interval_ms,
        )?;
        positive(
            "sync.batch_blocks_max",
            u64::from(self.sync.batch_blocks_max),
        )?;
        positive("sync.timeout_ms", self.sync.timeout_ms)?;
        positive("sync.status_interval_ms", self.sync.status_interval_ms)?;
        self.blobs.check()?;
        for address in &self.network.listen {
            if address.parse::<libp2p::Multiaddr>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "network.listen",
                    reason: format!("`{address}` is not a multiaddress"),
                });
            }
        }
        for peer in &self.network.peers {
            if peer.peer_id.parse::<libp2p::PeerId>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "network.peers.peer_id",
                    reason: format!("`{}` is not a libp2p peer id", peer.peer_id),
                });
            }
            if peer.address.parse::<libp2p::Multiaddr>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "network.peers.address",
                    reason: format!("`{}` is not a multiaddress", peer.address),
                });
            }
        }
        for observer in &self.network.observers {
            if observer.parse::<libp2p::PeerId>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "network.observers",
                    reason: format!("`{observer}` is not a libp2p peer id"),
                });
            }
        }
        Ok(())
    }
}

/// Ceiling of `blobs.fetch_range_bytes`: one range travels in one
/// request-response frame, whose cap is 16 MiB.
pub const FETCH_RANGE_BYTES_CEILING: u32 = 8 * 1024 * 1024;

/// `[blobs]` in config.toml.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobConfig {
    /// Largest single blob (an encrypted document), in bytes.
    pub blob_bytes_max: u64,
    /// Most bytes all blobs together may take on disk.
    pub total_bytes_max: u64,
    /// Bytes asked for in one `/custody/blob/1` range request.
    pub fetch_range_bytes: u32,
    /// How many passes over the peers a fetch makes before giving up.
    pub fetch_rounds_max: u32,
    /// How far a signed read request's time may be from this node's clock.
    pub read_request_skew_ms: u64,
    /// How long after its block a record-access lets its member download
    /// the ciphertext (block time).
    pub access_window_ms: u64,
    /// How often the scrub re-hashes held blobs (one pass per interval).
    pub scrub_interval_ms: u64,
    /// Most bytes one scrub pass re-hashes; the next pass goes on where
    /// this one stopped, so the whole store is covered over several passes.
    pub scrub_bytes_per_pass_max: u64,
    /// An uploaded blob that no committed transaction names (as a
    /// document's ciphertext, current or earlier) is removed by the scrub
    /// once its file is this old: an upload whose registration never came.
    pub orphan_after_ms: u64,
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            blob_bytes_max: 4 << 30,
            total_bytes_max: 256 << 30,
            fetch_range_bytes: 4 << 20,
            fetch_rounds_max: 2,
            read_request_skew_ms: 60_000,
            access_window_ms: 600_000,
            scrub_interval_ms: 3_600_000,
            scrub_bytes_per_pass_max: 1 << 30,
            orphan_after_ms: 86_400_000,
        }
    }
}

impl BlobConfig {
    /// Refuses values that would make the store misbehave.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.to_string(),
        };
        if self.blob_bytes_max == 0 {
            return Err(invalid("blobs.blob_bytes_max", "must be greater than zero"));
        }
        if self.total_bytes_max < self.blob_bytes_max {
            return Err(invalid(
                "blobs.total_bytes_max",
                "must be at least blobs.blob_bytes_max",
            ));
        }
        if self.fetch_range_bytes == 0 || self.fetch_range_bytes > FETCH_RANGE_BYTES_CEILING {
            return Err(invalid(
                "blobs.fetch_range_bytes",
                "must be between 1 and 8388608",
            ));
        }
        if self.fetch_rounds_max == 0 {
            return Err(invalid(
                "blobs.fetch_rounds_max",
                "must be greater than zero",
            ));
        }
        if self.read_request_skew_ms == 0 {
            return Err(invalid(
                "blobs.read_request_skew_ms",
                "must be greater than zero",
            ));
        }
        if self.scrub_interval_ms == 0 {
            return Err(invalid(
                "blobs.scrub_interval_ms",
                "must be greater than zero",
            ));
        }
        if self.scrub_bytes_per_pass_max == 0 {
            return Err(invalid(
                "blobs.scrub_bytes_per_pass_max",
                "must be greater than zero",
            ));
        }
        if self.orphan_after_ms == 0 {
            return Err(invalid(
                "blobs.orphan_after_ms",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_parses_to_the_default_config() {
        let parsed = NodeConfig::from_toml(DEFAULT_CONFIG_TOML).expect("default parses");
        assert_eq!(parsed, NodeConfig::default());
    }

    #[test]
    fn config_round_trips_through_toml() {
        let mut config = NodeConfig::default();
        config.network.peers.push(PeerConfig {
            peer_id: "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".to_string(),
            address: "/ip4/127.0.0.1/tcp/1".to_string(),
        });
        let text = config.to_toml().expect("encodes");
        assert_eq!(NodeConfig::from_toml(&text).expect("parses"), config);
    }

    #[test]
    fn unknown_field_is_refused() {
        let text = format!("{DEFAULT_CONFIG_TOML}\n[extra]\nx = 1\n");
        assert!(NodeConfig::from_toml(&text).is_err());
    }

    #[test]
    fn a_request_timeout_not_above_the_commit_wait_is_refused() {
        let text =
            DEFAULT_CONFIG_TOML.replace("request_timeout_ms = 70000", "request_timeout_ms = 60000");
        let error = NodeConfig::from_toml(&text).expect_err("refused");
        assert!(
            error.to_string().contains("api.request_timeout_ms"),
            "{error}"
        );
    }

    #[test]
    fn zero_limit_is_refused() {
        let text = DEFAULT_CONFIG_TOML.replace("txs_max = 20000", "txs_max = 0");
        let error = NodeConfig::from_toml(&text).expect_err("zero refused");
        assert!(error.to_string().contains("mempool.txs_max"), "{error}");
    }
}
