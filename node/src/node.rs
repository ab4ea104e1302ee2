//! Starting and stopping a whole node: load the home, open the store,
//! start the network, the API, gossip and sync tasks, and run the driver
//! until shutdown.

use std::sync::Arc;
use std::time::Duration;

use custody_ledger::genesis::Genesis;
use custody_ledger::store::Store;
use custody_ledger::types::{DepartmentId, PublicKey};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::admission::Admission;
use crate::api_state::{ApiSettings, ApiState};
use crate::app::LedgerApp;
use crate::config::ConfigError;
use crate::driver::{Driver, DriverError, DriverLinks, DRIVER_INBOX_MAX};
use crate::handles::{ChainView, LocalClock, MempoolHandle, Peers, SyncWanted, NETWORK_OUTBOX_MAX};
use crate::health::Health;
use crate::home::{self, Home, KeyFileError};
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use crate::net_glue::NetGlue;
use crate::shutdown::Shutdown;
use crate::store_reader::StoreReader;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("ledger store: {0}")]
    Store(#[from] custody_ledger::store::StoreError),
    #[error("department `{0}` (from config.toml) is not a valid department id (lowercase letters, digits and `-`)")]
    BadDepartmentName(String),
    #[error("cannot listen for the HTTP API on {address}: {source}")]
    ApiListen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("network: {0}")]
    Network(String),
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("the {task} task stopped: {reason}")]
    TaskFailed { task: &'static str, reason: String },
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
    #[error("{source}\n(this node's home: {home})")]
    StoreRefused {
        home: std::path::PathBuf,
        source: custody_ledger::store::StoreError,
    },
    #[error(
        "the ledger store at {store} is behind what this node committed: its head is height \
         {found}, but the consensus state {state} shows height {committed} was committed. The \
         store was rolled back or truncated and is not used (home {home}); {hint}",
        hint = custody_ledger::store::REPAIR_HINT
    )]
    StoreBehind {
        store: std::path::PathBuf,
        state: std::path::PathBuf,
        home: std::path::PathBuf,
        found: u64,
        committed: u64,
    },
    #[error(transparent)]
    AlertDesk(#[from] crate::alert_desk::AlertDeskError),
    #[error(transparent)]
    HighWater(#[from] crate::consensus_state::HighWaterError),
    #[error("the record of served reads under {path} could not be opened: {source}")]
    ReadDesk {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Runs the node in `home` until `shutdown` fires or a fatal error occurs.
///
/// This is the composition root: it builds every handle the tasks share
/// (`handles.rs`) and gives each task only the ones it uses. The ledger
/// store is opened here and handed writable to the driver's application
/// alone; every other task reads it through a `StoreReader`.
pub async fn run(home: Home, shutdown: Shutdown) -> Result<(), NodeError> {
    let config = home.load_config()?;
    let genesis_path = home.genesis_path(&config);
    let genesis = Genesis::load(&genesis_path)
        .map_err(|error| NodeError::Genesis(format!("{}: {error}", genesis_path.display())))?;
    let keys = home.keys_dir(&config);
    let bare_decryption_key = keys.join(home::ENCRYPTION_KEY_FILE);
    if bare_decryption_key.exists() {
        tracing::warn!(
            file = %bare_decryption_key.display(),
            "the department's decryption key is on the node host: whoever runs this host can \
             open every document the department holds. The node never uses it. Seal it for the \
             clerks (`custody keys seal --kind department --from FILE --out department.key \
             --passphrase-env VAR`) and delete it here (docs/operations.md, \"Move the \
             department's key off the node host\")"
        );
    }
    let validator_keys = home::read_validator_keys(&keys)?;
    let node_secret = home::read_key_file(&keys.join(home::NODE_KEY_FILE))?;
    let department_id = DepartmentId::new(config.department.clone())
        .map_err(|_| NodeError::BadDepartmentName(config.department.clone()))?;
    let keypair = home::node_keypair(node_secret);
    let peer_id = keypair.public().to_peer_id();
    let held_keys: Vec<PublicKey> = validator_keys
        .iter()
        .map(|key| PublicKey(key.verifying_key().to_bytes()))
        .collect();

    let store = open_checked_store(&home, &config, &genesis)?;
    let height = store.latest_height()?;
    // The node trusts the genesis plus the verified chain: its department
    // and keys are checked against the state at the head, not the genesis.
    check_department_at_head(&store, &department_id, &held_keys, &keypair)?;
    tracing::info!(
        department = %config.department,
        chain = %genesis.chain_id,
        genesis = %genesis.hash(),
        height = height.0,
        %peer_id,
        validator_keys = held_keys.len(),
        "node starting"
    );

    let blobs = Arc::new(crate::blobs::Blobs::open(
        &home.data_dir(&config).join("blobs"),
        &home.data_dir(&config).join(crate::shares::SHARES_DIR),
        config.blobs.clone(),
    )?);
    let (outbound_sender, outbound_receiver) = mpsc::channel(NETWORK_OUTBOX_MAX);
    let (committed_sender, committed_receiver) = watch::channel(height.0);
    // Readers share the store's handle (sled handles are shared, cheap
    // clones) without its writes.
    let reader = StoreReader::new(store.clone());
    let chain = ChainView::new(
        reader.clone(),
        committed_receiver,
        &genesis.chain_id,
        &genesis.hash().to_hex(),
    );
    let mempool = MempoolHandle::new(Mempool::new(
        reader.clone(),
        config.mempool.txs_max,
        config.mempool.bytes_max,
    ));
    let metrics = Arc::new(Metrics::default());
    let blob_room = crate::blob_fetch::BlobRoom {
        store: reader.clone(),
        blobs: blobs.clone(),
        metrics: metrics.clone(),
    };
    let health = Arc::new(Health::new(held_keys.clone()));
    let clock = LocalClock::new(config.consensus.clock_offset_ms);
    let peers = Peers::new(peer_id.to_string());
    let sync_wanted = SyncWanted::default();
    let admission = Admission::new(reader.clone(), mempool.clone(), metrics.clone(), clock);
    let read_desk = crate::read_desk::ReadDesk::open(
        &home.data_dir(&config),
        department_id.clone(),
        &genesis.chain_id,
        node_secret,
        reader.clone(),
        admission.clone(),
    )
    .map_err(|source| NodeError::ReadDesk {
        path: home.data_dir(&config),
        source,
    })?;
    read_desk.resubmit_pending();
    let evidence_desk = crate::evidence_desk::EvidenceDesk::new(
        &home.data_dir(&config),
        department_id.clone(),
        &genesis.chain_id,
        node_secret,
        reader.clone(),
        admission.clone(),
    );
    evidence_desk.resubmit_cached();

    let thresholds = crate::alert_desk::load_thresholds(
        config
            .oversight
            .thresholds
            .as_ref()
            .map(|path| home.resolve(path))
            .as_deref(),
    )?;
    let alert_book = crate::alert_desk::AlertBook::default();

    let (driver_sender, driver_receiver) = mpsc::channel(DRIVER_INBOX_MAX);
    let key_watch = (held_keys.clone(), driver_sender.clone());
    let app = LedgerApp::new(
        store,
        mempool.clone(),
        metrics.clone(),
        committed_sender,
        clock,
        held_keys,
    );
    let (driver, first_effects) = Driver::start(
        app,
        DriverLinks {
            outbound: outbound_sender.clone(),
            sync_wanted: sync_wanted.clone(),
            health: health.clone(),
            metrics: metrics.clone(),
            evidence: evidence_desk,
        },
        &config.consensus,
        &genesis.chain_id,
        validator_keys,
        home.consensus_state_path(&config),
    )?;

    // The node's own stop signal: fired by the operator's shutdown or by
    // the first essential task that ends, so that the others stop too.
    let (stop_all, stop) = crate::shutdown::shutdown_channel();
    let stop_all = Arc::new(stop_all);
    {
        let stop_all = stop_all.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            stop_all.trigger();
        });
    }

    let network_task = crate::net_glue::start(
        NetGlue {
            store: reader.clone(),
            peers: peers.clone(),
            sync_wanted,
            metrics: metrics.clone(),
            blobs: blobs.clone(),
            blob_room: blob_room.clone(),
            admission: admission.clone(),
            network: config.network.clone(),
            sync: config.sync.clone(),
        },
        keypair,
        chain.committed(),
        outbound_receiver,
        driver_sender,
        stop.clone(),
    )
    .await
    .map_err(NodeError::Network)?;

    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| NodeError::ApiListen {
            address: config.api.listen,
            source,
        })?;
    tracing::info!(address = %config.api.listen, "HTTP API listening");
    let auth_gate = crate::api_auth::AuthGate {
        chain: chain.clone(),
        clock,
        auditor_keys: Arc::new(config.api.auditor_keys().map_err(NodeError::Config)?),
        skew_ms: config.api.request_skew_ms,
        metrics: metrics.clone(),
    };
    let router = crate::api::router(ApiState {
        chain: chain.clone(),
        admission,
        mempool: mempool.view(),
        peers: peers.view(),
        metrics: metrics.clone(),
        health: health.clone(),
        blobs,
        blob_room: blob_room.clone(),
        clock,
        settings: Arc::new(ApiSettings {
            department: config.department.clone(),
            api: config.api.clone(),
            readiness: config.readiness.clone(),
            blob_bytes_max: config.blobs.blob_bytes_max,
            time_zone: config.pages.time_zone().map_err(NodeError::Config)?,
            verify_upload_max_bytes: config.pages.verify_upload_max_bytes,
        }),
        read_desk,
        auth_gate,
        alert_book: alert_book.clone(),
        page_sessions: crate::page_sessions::PageSessions::new(&config.pages),
    });
    let api_task = tokio::spawn(crate::api_server::serve(
        listener,
        router,
        config.api.clone(),
        metrics.clone(),
        stop.clone(),
    ));

    let gossip_task = {
        let batch_txs_max = config.mempool.gossip_batch_txs_max;
        let interval = Duration::from_millis(config.mempool.gossip_interval_ms);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.wait() => break,
                    _ = ticker.tick() => {
                        while crate::admission::gossip_out(&mempool, &outbound_sender, batch_txs_max) {}
                    }
                }
            }
        })
    };

    // Not essential: a desk that stops says so at GET /v1/alerts.
    tokio::spawn(
        crate::alert_desk::AlertDesk {
            chain: chain.clone(),
            genesis: genesis.clone(),
            thresholds,
            department: department_id.clone(),
            book: alert_book,
            metrics: metrics.clone(),
            config: config.oversight.clone(),
        }
        .run(stop.clone()),
    );
    // Not essential: a disposed document's blob that stays is deleted by
    // the next scrub pass, and no node serves it meanwhile.
    tokio::spawn(crate::blob_disposal::run(
        blob_room.clone(),
        chain.clone(),
        stop.clone(),
    ));
    let activity_task = tokio::spawn(crate::health_watch::watch_activity(
        chain,
        metrics,
        health,
        stop.clone(),
    ));
    // Not essential: a node that stopped watching its keys still works.
    tokio::spawn(crate::key_watch::run(
        keys.clone(),
        key_watch.0,
        key_watch.1,
        stop.clone(),
    ));
    let driver_task = tokio::spawn(driver.run(first_effects, driver_receiver, stop.clone()));
    // Not an essential task: a node whose scrub stopped still does its job,
    // and the scrub ends with the others on the stop signal.
    tokio::spawn(crate::blob_scrub::run(blob_room, stop.clone()));

    let mut tasks = Tasks {
        driver: Some(driver_task),
        network: Some(network_task),
        api: Some(api_task),
        gossip: Some(gossip_task),
        activity: Some(activity_task),
    };
    let first = tasks.first_to_end().await;
    let result = if shutdown.is_triggered() {
        // Asked to stop: every task ends, and only a failure matters.
        match first {
            TaskEnd::Failed { task, reason } => Err(NodeError::TaskFailed { task, reason }),
            TaskEnd::Stopped { .. } => Ok(()),
        }
    } else {
        // No task ends on its own while the node runs: whichever did, the
        // node cannot go on. Exiting (non-zero) lets the supervisor restart
        // it rather than leave a process that answers but does not work.
        let (task, reason) = match first {
            TaskEnd::Failed { task, reason } => (task, reason),
            TaskEnd::Stopped { task } => (task, "it ended unexpectedly".to_string()),
        };
        tracing::error!(task, %reason, "an essential task stopped; the node stops");
        Err(NodeError::TaskFailed { task, reason })
    };
    stop_all.trigger();
    let rest = tasks
        .finish(Duration::from_millis(TASKS_STOP_WAIT_MS_MAX))
        .await;
    tracing::info!("node stopped");
    match (result, rest) {
        (Err(error), _) => Err(error),
        (Ok(()), Some(TaskEnd::Failed { task, reason })) => {
            Err(NodeError::TaskFailed { task, reason })
        }
        (Ok(()), _) => Ok(()),
    }
}

/// Checks this node's department and keys against the committed state at
/// the head (the genesis for a fresh store, then every change governance
/// made). A department not in the state yet (added by a vote this store
/// has not synced) starts as an observer: it syncs, verifying each
/// validator-set handoff, and signs from the height at which the state
/// names one of its keys. Keys the state does not name are reported, not
/// refused: a rotation voted by the others names the new key later.
fn check_department_at_head(
    store: &Store,
    department: &DepartmentId,
    held_keys: &[PublicKey],
    keypair: &libp2p::identity::Keypair,
) -> Result<(), NodeError> {
    let height = store.latest_height()?.0;
    let Some(record) = store.department(department)? else {
        tracing::warn!(
            %department,
            height,
            "department is not in the committed state at this height (not added yet, or removed): \
             the node syncs as an observer and signs once a committed change adds the department \
             with one of its keys; the other nodes accept its connections only from then on"
        );
        return Ok(());
    };
    if !held_keys.contains(&record.keys.validator_key) {
        tracing::warn!(
            %department,
            height,
            expected = %record.keys.validator_key,
            "none of this node's validator keys is the department's validator key at the head: \
             the node observes (it syncs and serves) until a committed rotation names one of its \
             keys; if the key was lost, see docs/operations.md, \"A lost validator key\""
        );
    }
    let node_public = keypair
        .public()
        .try_into_ed25519()
        .map(|key| PublicKey(key.to_bytes()))
        .ok();
    if node_public != Some(record.keys.node_key) {
        tracing::warn!(
            %department,
            height,
            expected = %record.keys.node_key,
            "keys/node.key is not the department's node key at the head: the other nodes refuse \
             this node's connections until a committed rotation names it"
        );
    }
    Ok(())
}

/// The start check: opens the ledger store (which checks its head, see
/// `Store::check_head`) and refuses it when it is damaged or behind the
/// height the consensus state file shows this node committed. A store is
/// only initialised from the genesis when the node never committed
/// anything: one that went missing is refused, not started over.
pub fn open_checked_store(
    home: &Home,
    config: &crate::config::NodeConfig,
    genesis: &Genesis,
) -> Result<Store, NodeError> {
    use custody_ledger::store::StoreError;
    let path = home.ledger_dir(config);
    let state = home.consensus_state_path(config);
    let committed = crate::consensus_state::committed_high_water(&state)?.unwrap_or(0);
    let behind = |found: u64| NodeError::StoreBehind {
        store: path.clone(),
        state: state.clone(),
        home: home.root.clone(),
        found,
        committed,
    };
    let refused = |source: StoreError| match source {
        source if source.is_damage() => NodeError::StoreRefused {
            home: home.root.clone(),
            source,
        },
        source => NodeError::Store(source),
    };
    let store = if committed == 0 {
        Store::open_or_init(&path, genesis).map_err(refused)?
    } else {
        let store = match Store::open(&path) {
            Ok(store) => store,
            Err(StoreError::NotInitialized) => return Err(behind(0)),
            Err(error) => return Err(refused(error)),
        };
        let stored = store.genesis().map_err(refused)?.hash();
        if stored != genesis.hash() {
            return Err(NodeError::Store(StoreError::GenesisMismatch {
                stored,
                given: genesis.hash(),
            }));
        }
        store
    };
    let found = store.latest_height().map_err(refused)?.0;
    if found < committed {
        return Err(behind(found));
    }
    Ok(store)
}

/// What the start check found (`custody node check`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct StartCheck {
    pub store: std::path::PathBuf,
    /// The store's head height.
    pub height: u64,
    pub last_block_hash: String,
    /// The highest height the consensus state shows this node committed.
    pub committed: u64,
    /// Lowest height whose hash link to the head was checked.
    pub linked_from: u64,
}

/// Runs the checks `node start` runs on the store, without starting.
pub fn check_home(home: &Home) -> Result<StartCheck, NodeError> {
    let config = home.load_config()?;
    let genesis_path = home.genesis_path(&config);
    let genesis = Genesis::load(&genesis_path)
        .map_err(|error| NodeError::Genesis(format!("{}: {error}", genesis_path.display())))?;
    let store = open_checked_store(home, &config, &genesis)?;
    let head = store.check_head()?;
    let committed =
        crate::consensus_state::committed_high_water(&home.consensus_state_path(&config))?
            .unwrap_or(0);
    Ok(StartCheck {
        store: store.path().to_path_buf(),
        height: head.height.0,
        last_block_hash: head.hash.to_hex(),
        committed,
        linked_from: head.linked_from.0,
    })
}

/// After the node is asked to stop (or a task failed), the other tasks get
/// this long to finish; then they are aborted.
const TASKS_STOP_WAIT_MS_MAX: u64 = 10_000;

/// How an essential task ended.
enum TaskEnd {
    /// It returned normally (on shutdown, or unexpectedly).
    Stopped { task: &'static str },
    /// It returned an error or panicked.
    Failed { task: &'static str, reason: String },
}

/// The essential tasks of a running node; each is `None` once it ended.
struct Tasks {
    driver: Option<JoinHandle<Result<(), DriverError>>>,
    network: Option<JoinHandle<()>>,
    api: Option<JoinHandle<()>>,
    gossip: Option<JoinHandle<()>>,
    activity: Option<JoinHandle<Result<(), custody_ledger::store::StoreError>>>,
}

fn ended<E: std::fmt::Display>(
    task: &'static str,
    joined: Result<Result<(), E>, tokio::task::JoinError>,
) -> TaskEnd {
    match joined {
        Ok(Ok(())) => TaskEnd::Stopped { task },
        Ok(Err(error)) => TaskEnd::Failed {
            task,
            reason: error.to_string(),
        },
        Err(error) if error.is_panic() => TaskEnd::Failed {
            task,
            reason: "it panicked (see the log above)".to_string(),
        },
        Err(_) => TaskEnd::Stopped { task },
    }
}

fn unit(
    joined: Result<(), tokio::task::JoinError>,
) -> Result<Result<(), String>, tokio::task::JoinError> {
    joined.map(Ok)
}

/// Waits for one task of `slot`, or forever when it already ended.
async fn join_slot<T>(slot: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match slot {
        Some(handle) => {
            let joined = handle.await;
            *slot = None;
            joined
        }
        None => std::future::pending().await,
    }
}

impl Tasks {
    /// The first task to end, and how.
    async fn first_to_end(&mut self) -> TaskEnd {
        tokio::select! {
            joined = join_slot(&mut self.driver) => ended("consensus", joined),
            joined = join_slot(&mut self.network) => ended("network", unit(joined)),
            joined = join_slot(&mut self.api) => ended("HTTP API", unit(joined)),
            joined = join_slot(&mut self.gossip) => ended("gossip", unit(joined)),
            joined = join_slot(&mut self.activity) => ended("validator activity", joined),
        }
    }

    fn remaining(&self) -> usize {
        [
            self.driver.is_some(),
            self.network.is_some(),
            self.api.is_some(),
            self.gossip.is_some(),
            self.activity.is_some(),
        ]
        .iter()
        .filter(|running| **running)
        .count()
    }

    /// Waits up to `wait` for the remaining tasks, then aborts what is
    /// left. Returns the first failure among them, if any.
    async fn finish(&mut self, wait: Duration) -> Option<TaskEnd> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut failure = None;
        while self.remaining() > 0 {
            match tokio::time::timeout_at(deadline, self.first_to_end()).await {
                Ok(TaskEnd::Failed { task, reason }) => {
                    tracing::error!(task, %reason, "task failed while the node stopped");
                    failure.get_or_insert(TaskEnd::Failed { task, reason });
                }
                Ok(TaskEnd::Stopped { .. }) => {}
                Err(_) => {
                    tracing::warn!("tasks still running at the stop deadline are aborted");
                    self.abort_all();
                    break;
                }
            }
        }
        failure
    }

    fn abort_all(&mut self) {
        for handle in [
            self.driver.take().map(|h| h.abort_handle()),
            self.network.take().map(|h| h.abort_handle()),
            self.api.take().map(|h| h.abort_handle()),
            self.gossip.take().map(|h| h.abort_handle()),
            self.activity.take().map(|h| h.abort_handle()),
        ]
        .into_iter()
        .flatten()
        {
            handle.abort();
        }
    }
}
