//! Starting and stopping a whole node: load the home, open the store,
//! start the network, the API, gossip and sync tasks, and run the driver
//! until shutdown.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custody_ledger::genesis::Genesis;
use custody_ledger::store::Store;
use custody_ledger::tx::SignedTransaction;
use custody_ledger::types::{DepartmentId, PublicKey, Timestamp, TxId};
use tokio::sync::{mpsc, watch, Notify};

use crate::config::ConfigError;
use crate::driver::{Driver, DriverError, DriverInput, DRIVER_INBOX_MAX};
use crate::home::{self, Home, KeyFileError};
use crate::mempool::{AdmitError, Mempool};
use crate::metrics::Metrics;
use crate::shared::{local_time_ms, Shared, SharedRef, NETWORK_OUTBOX_MAX};
use crate::shutdown::Shutdown;

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
    #[error("department `{0}` (from config.toml) is not in the genesis")]
    UnknownDepartment(String),
    #[error("keys/validator.key does not match department `{department}`'s validator key in the genesis")]
    ValidatorKeyMismatch { department: String },
    #[error("cannot listen for the HTTP API on {address}: {source}")]
    ApiListen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("network: {0}")]
    Network(String),
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
}

/// Runs the node in `home` until `shutdown` fires or a fatal error occurs.
pub async fn run(home: Home, shutdown: Shutdown) -> Result<(), NodeError> {
    let config = home.load_config()?;
    let genesis_path = home.genesis_path(&config);
    let genesis = Genesis::load(&genesis_path)
        .map_err(|error| NodeError::Genesis(format!("{}: {error}", genesis_path.display())))?;
    let keys = home.keys_dir(&config);
    let validator_secret = home::read_key_file(&keys.join(home::VALIDATOR_KEY_FILE))?;
    let node_secret = home::read_key_file(&keys.join(home::NODE_KEY_FILE))?;
    let signing_key = ed25519_dalek::SigningKey::from_bytes(&validator_secret);
    let department_id = DepartmentId::new(config.department.clone())
        .map_err(|_| NodeError::UnknownDepartment(config.department.clone()))?;
    let department = genesis
        .departments
        .iter()
        .find(|d| d.id == department_id)
        .ok_or_else(|| NodeError::UnknownDepartment(config.department.clone()))?;
    if department.keys.validator_key != PublicKey(signing_key.verifying_key().to_bytes()) {
        return Err(NodeError::ValidatorKeyMismatch {
            department: config.department.clone(),
        });
    }
    let keypair = home::node_keypair(node_secret);
    let peer_id = keypair.public().to_peer_id();

    let store = Store::open_or_init(&home.ledger_dir(&config), &genesis)?;
    let height = store.latest_height()?;
    tracing::info!(
        department = %config.department,
        chain = %genesis.chain_id,
        genesis = %genesis.hash(),
        height = height.0,
        %peer_id,
        "node starting"
    );

    // The mempool keeps an overlay on the store for the node's lifetime;
    // one handle (a few reference counts) is leaked for it, once.
    let mempool_store: &'static Store = Box::leak(Box::new(store.clone()));
    let blobs =
        crate::blobs::Blobs::open(&home.data_dir(&config).join("blobs"), config.blobs.clone())?;
    let (outbound_sender, outbound_receiver) = mpsc::channel(NETWORK_OUTBOX_MAX);
    let (committed, _) = watch::channel(height.0);
    let shared: SharedRef = Arc::new(Shared {
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash().to_hex(),
        peer_id: peer_id.to_string(),
        store,
        mempool: Mutex::new(Mempool::new(
            mempool_store,
            config.mempool.txs_max,
            config.mempool.bytes_max,
        )),
        metrics: Metrics::default(),
        committed,
        peers: Mutex::new(Vec::new()),
        syncing: AtomicBool::new(false),
        sync_wanted: Notify::new(),
        outbound: outbound_sender,
        blobs,
        proposals: Mutex::new(Default::default()),
        config,
    });

    let (driver_sender, driver_receiver) = mpsc::channel(DRIVER_INBOX_MAX);
    let (driver, first_actions) = Driver::start(
        shared.clone(),
        signing_key,
        home.consensus_state_path(&shared.config),
    )?;

    let network_task = crate::net_glue::start(
        shared.clone(),
        keypair,
        &genesis,
        outbound_receiver,
        driver_sender,
        shutdown.clone(),
    )
    .await
    .map_err(NodeError::Network)?;

    let listener = tokio::net::TcpListener::bind(shared.config.api.listen)
        .await
        .map_err(|source| NodeError::ApiListen {
            address: shared.config.api.listen,
            source,
        })?;
    tracing::info!(address = %shared.config.api.listen, "HTTP API listening");
    let api_task = {
        let router = crate::api::router(shared.clone());
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.wait().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "HTTP API stopped");
            }
        })
    };

    let gossip_task = {
        let shared = shared.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(
                shared.config.mempool.gossip_interval_ms,
            ));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.wait() => break,
                    _ = ticker.tick() => {
                        while crate::api::gossip_batch(&shared) {}
                    }
                }
            }
        })
    };

    let result = driver.run(first_actions, driver_receiver, shutdown).await;
    if let Err(error) = &result {
        tracing::error!(%error, "consensus driver stopped");
    }
    let _ = api_task.await;
    let _ = gossip_task.await;
    network_task.abort();
    let _ = network_task.await;
    tracing::info!("node stopped");
    result.map_err(NodeError::from)
}

/// Takes a gossiped batch of transactions into the mempool: decode, check
/// all signatures in one batch, then admit each (without gossiping again).
pub fn admit_gossiped(shared: &SharedRef, batch: &[u8]) {
    let encoded: Vec<Vec<u8>> = match postcard::from_bytes(batch) {
        Ok(encoded) => encoded,
        Err(error) => {
            tracing::debug!(%error, "undecodable transaction batch dropped");
            return;
        }
    };
    // Skip what we already hold, just committed or checked in a proposal
    // before decoding it or paying for its signature (anything committed
    // earlier is refused by its nonce). Gossip usually arrives after the
    // proposal that carries the same transactions.
    let unseen_bytes: Vec<(&Vec<u8>, TxId)> = {
        let mempool = shared.mempool();
        encoded
            .iter()
            .map(|bytes| (bytes, SignedTransaction::id_of_encoded(bytes)))
            .filter(|(_, id)| !mempool.already_seen(id))
            .collect()
    };
    let mut unseen = Vec::with_capacity(unseen_bytes.len());
    for (bytes, id) in unseen_bytes {
        match SignedTransaction::from_bytes(bytes) {
            Ok(tx) => unseen.push((tx, bytes.len(), id)),
            Err(error) => tracing::debug!(%error, "undecodable gossiped transaction dropped"),
        }
    }
    let fresh: Vec<_> = {
        let mempool = shared.mempool();
        let follows = mempool.nonces_follow(unseen.iter().map(|(tx, _, _)| tx));
        unseen
            .into_iter()
            .zip(follows)
            .filter_map(|(item, follows)| follows.then_some(item))
            .collect()
    };
    if fresh.is_empty() {
        return;
    }
    let (txs, sizes_and_ids): (Vec<SignedTransaction>, Vec<(usize, TxId)>) = fresh
        .into_iter()
        .map(|(tx, size, id)| (tx, (size, id)))
        .unzip();
    let bad = custody_ledger::tx::verify_batch(&txs);
    let now = Timestamp(local_time_ms(shared.config.consensus.clock_offset_ms));
    let mut mempool = shared.mempool();
    for (index, (tx, (size, id))) in txs.into_iter().zip(sizes_and_ids).enumerate() {
        if bad.contains(&index) {
            tracing::debug!(tx = %id, "badly signed gossiped transaction dropped");
            continue;
        }
        match mempool.admit(tx, id, size, now, false) {
            Ok(()) | Err(AdmitError::Duplicate(_)) => {}
            Err(error) => tracing::debug!(tx = %id, %error, "gossiped transaction not admitted"),
        }
    }
    shared.update_mempool_metrics(mempool.len(), mempool.bytes());
}

/// Feeds driver input from outside (network glue).
pub type DriverSender = mpsc::Sender<DriverInput>;
