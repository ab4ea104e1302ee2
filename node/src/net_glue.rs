//! Wiring between the network task and the rest of the node, and block
//! sync.
//!
//! - gossip in: consensus messages go to the driver, transaction batches to
//!   the mempool (signatures checked in one batch);
//! - gossip out: what the driver and the mempool hand to [`Outbound`];
//! - `/custody/sync/1` requests are answered from the store, and from the
//!   proposals the node core holds for a peer that missed one;
//! - a proposal the driver saw votes for but does not hold is asked of the
//!   connected peers, one after the other, and handed to the driver;
//! - the sync loop asks peers for their height every `status_interval_ms`
//!   (and at once when the driver sees a later height), and fetches the
//!   missing blocks with certificates in batches of `batch_blocks_max`,
//!   which the driver verifies and commits.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use custody_ledger::types::Height;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::admission::Admission;
use crate::blobs::Blobs;
use crate::config::{NetworkConfig as NetworkSettings, SyncConfig};
use crate::driver::DriverInput;
use crate::handles::{Outbound, Peers, SyncWanted};
use crate::metrics::Metrics;
use crate::network::{
    Members, Network, NetworkConfig, NetworkError, NetworkEvent, NetworkHandle, NetworkLimits,
    RequestProtocol,
};
use crate::shutdown::Shutdown;
use crate::store_reader::StoreReader;
use custody_consensus::core::ProposalKey;

/// A block-sync request.
#[derive(Debug, Serialize, Deserialize)]
pub enum SyncRequest {
    /// "What is your last committed height?"
    Status,
    /// Blocks `from..from+count` with their certificates.
    Blocks { from: u64, count: u32 },
    /// The signed proposal of this height and round for this block hash.
    Proposal(ProposalKey),
}

/// A block-sync answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum SyncResponse {
    Status {
        height: u64,
    },
    /// Canonical block bytes and certificate bytes, in height order.
    Blocks(Vec<(Vec<u8>, Vec<u8>)>),
    Refused(String),
    /// The signed consensus message's bytes, as gossiped.
    Proposal(Vec<u8>),
}

/// What the network glue reads and writes, besides the swarm and the
/// driver's inbox.
pub struct NetGlue {
    /// Answers block-sync and blob requests, and tells how far sync must go.
    pub store: StoreReader,
    /// The connected peers and the sync flag (this task writes them).
    pub peers: Peers,
    pub sync_wanted: SyncWanted,
    pub metrics: Arc<Metrics>,
    /// Blob requests are answered from it; it learns the network handle.
    pub blobs: Arc<Blobs>,
    /// Blob requests are answered through it (checked before served).
    pub blob_room: crate::blob_fetch::BlobRoom,
    /// Gossiped transactions go in through it.
    pub admission: Admission,
    pub network: NetworkSettings,
    pub sync: SyncConfig,
}

pub async fn start(
    glue: NetGlue,
    keypair: libp2p::identity::Keypair,
    mut committed: watch::Receiver<u64>,
    mut outbound: mpsc::Receiver<Outbound>,
    driver: mpsc::Sender<DriverInput>,
    shutdown: Shutdown,
) -> Result<JoinHandle<()>, String> {
    let glue = Arc::new(glue);
    committed.borrow_and_update();
    let members = members_in_state(&glue)?;
    let listen: Vec<Multiaddr> = glue
        .network
        .listen
        .iter()
        .filter_map(|address| address.parse().ok())
        .collect();
    let limits = NetworkLimits {
        redial_backoff_max_ms: glue.network.redial_backoff_ms_max,
        ping_interval_ms: glue.network.ping_interval_ms,
        ping_timeout_ms: glue.network.ping_timeout_ms,
        request_timeout_ms: glue.sync.timeout_ms,
        ..NetworkLimits::default()
    };
    let (handle, mut events, join) = Network::start(NetworkConfig {
        node_key: keypair,
        listen,
        peers: members.dial.clone(),
        allowed: members.allowed.clone(),
        limits,
    })
    .await
    .map_err(|error| error.to_string())?;
    let _ = glue.blobs.network.set(handle.clone());

    let task = tokio::spawn({
        let glue = glue.clone();
        let handle = handle.clone();
        let mut stop = shutdown.clone();
        async move {
            let sync_task = tokio::spawn(sync_loop(
                glue.store.clone(),
                glue.peers.clone(),
                glue.sync_wanted.clone(),
                glue.sync.clone(),
                handle.clone(),
                driver.clone(),
                shutdown.clone(),
            ));
            let mut connected: Vec<PeerId> = Vec::new();
            let mut members = members;
            loop {
                tokio::select! {
                    _ = stop.wait() => break,
                    changed = committed.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        committed.borrow_and_update();
                        follow_members(&glue, &handle, &mut members).await;
                    }
                    message = outbound.recv() => {
                        let Some(message) = message else { break };
                        // A commit that changed the departments is applied to
                        // the transport before anything of the next height
                        // goes out: the application moves `committed` before
                        // the driver hands over the next height's messages.
                        if committed.has_changed().unwrap_or(false) {
                            committed.borrow_and_update();
                            follow_members(&glue, &handle, &mut members).await;
                        }
                        let result = match message {
                            // Every consensus message goes out under a fresh gossip id: the state
                            // machine re-sends its own votes periodically, and identical bytes
                            // would be swallowed by gossipsub as duplicates, so a peer that was
                            // away when a vote first went out would never receive it.
                            Outbound::Consensus(bytes) => handle.rebroadcast_consensus(bytes).await,
                            Outbound::Transactions(bytes) => handle.publish_transactions(bytes).await,
                            Outbound::FetchProposal(key) => {
                                tokio::spawn(fetch_proposal(
                                    glue.metrics.clone(),
                                    handle.clone(),
                                    driver.clone(),
                                    key,
                                ));
                                Ok(())
                            }
                        };
                        match result {
                            Ok(()) | Err(NetworkError::NoPeersSubscribed { .. }) => {}
                            Err(error) => tracing::debug!(%error, "publish failed"),
                        }
                    }
                    event = events.recv() => {
                        let Some(event) = event else { break };
                        on_event(&glue, &driver, &mut connected, event);
                    }
                }
            }
            sync_task.abort();
            handle.shutdown().await;
            let _ = join.await;
        }
    });
    Ok(task)
}

/// Who may connect, from the committed state: the node keys of the
/// departments in the state at the head (the genesis ones at height 0, then
/// as governance adds, rotates and removes them) and the configured
/// observers; the member nodes to dial are the configured peers among them.
/// No department is allowed for having been in the genesis.
fn members_in_state(glue: &NetGlue) -> Result<Members, String> {
    let departments = glue
        .store
        .departments()
        .map_err(|error| format!("cannot read the departments from the store: {error}"))?;
    let mut allowed: HashSet<PeerId> = HashSet::new();
    let mut labelled = Vec::new();
    for department in &departments {
        match crate::network::peer_id_from_ed25519_public(department.keys.node_key.0) {
            Ok(peer) => {
                allowed.insert(peer);
                if peer.to_string() != glue.peers.own_peer_id() {
                    labelled.push((peer, department.id.to_string()));
                }
            }
            Err(error) => tracing::warn!(
                department = %department.id,
                %error,
                "department's node key is not a valid ed25519 key; its node cannot connect"
            ),
        }
    }
    glue.metrics.set_peer_departments(labelled);
    for observer in &glue.network.observers {
        if let Ok(peer) = observer.parse::<PeerId>() {
            allowed.insert(peer);
        }
    }
    let mut dial = Vec::new();
    for peer in &glue.network.peers {
        let (Ok(id), Ok(address)) = (
            peer.peer_id.parse::<PeerId>(),
            peer.address.parse::<Multiaddr>(),
        ) else {
            continue;
        };
        if allowed.contains(&id) {
            dial.push((id, address));
        } else {
            tracing::info!(peer = %id, "configured peer is not a member node of the chain at this height; not dialing it (it is dialed once a committed change adds its department)");
        }
    }
    Ok(Members { allowed, dial })
}

/// After a commit: applies a change of the departments to the transport.
async fn follow_members(glue: &NetGlue, handle: &NetworkHandle, current: &mut Members) {
    let next = match members_in_state(glue) {
        Ok(next) => next,
        Err(error) => {
            tracing::warn!(%error, "cannot follow the departments after a commit; the allowed set stays as it was");
            return;
        }
    };
    if next == *current {
        return;
    }
    match handle.set_members(next.clone()).await {
        Ok(changed) => {
            let height = glue.store.latest_height().map(|h| h.0).unwrap_or_default();
            for peer in &changed.removed {
                tracing::info!(%peer, height, "department removed by a committed change: its node is disconnected and refused");
            }
            for peer in &changed.added {
                tracing::info!(%peer, height, "department added by a committed change: its node is allowed");
            }
            glue.metrics
                .transport_members_changes
                .fetch_add(1, Ordering::Relaxed);
            *current = next;
        }
        Err(error) => tracing::warn!(%error, "cannot update the allowed set"),
    }
}

fn on_event(
    glue: &Arc<NetGlue>,
    driver: &mpsc::Sender<DriverInput>,
    connected: &mut Vec<PeerId>,
    event: NetworkEvent,
) {
    match event {
        NetworkEvent::Gossip {
            topic, bytes, via, ..
        } => match topic {
            crate::network::GossipTopic::Consensus => {
                glue.metrics
                    .consensus_message_from(via, std::time::Instant::now());
                if driver.try_send(DriverInput::Consensus(bytes)).is_err() {
                    tracing::debug!(
                        "driver busy; consensus message dropped (it will be re-broadcast)"
                    );
                }
            }
            crate::network::GossipTopic::Tx => {
                let admission = glue.admission.clone();
                tokio::task::spawn_blocking(move || admission.admit_gossiped(&bytes));
            }
        },
        NetworkEvent::InboundRequest {
            protocol,
            bytes,
            reply,
            peer,
        } => {
            if protocol == RequestProtocol::Sync {
                if let Ok(SyncRequest::Proposal(key)) = postcard::from_bytes(&bytes) {
                    let driver = driver.clone();
                    tokio::spawn(async move {
                        let answer = match held_proposal(&driver, key).await {
                            Some(bytes) => SyncResponse::Proposal(bytes.to_vec()),
                            None => SyncResponse::Refused("proposal not held".to_string()),
                        };
                        let _ = reply.send(postcard::to_allocvec(&answer).unwrap_or_default());
                    });
                    return;
                }
            }
            let glue = glue.clone();
            tokio::task::spawn_blocking(move || {
                let encoded = match protocol {
                    RequestProtocol::Sync => postcard::to_allocvec(&serve_sync(
                        &glue.store,
                        glue.sync.batch_blocks_max,
                        &bytes,
                    ))
                    .unwrap_or_default(),
                    RequestProtocol::Blob => {
                        crate::blob_fetch::serve(&glue.blob_room, &peer, &bytes)
                    }
                };
                tracing::trace!(%peer, %protocol, "answered a request");
                let _ = reply.send(encoded);
            });
        }
        NetworkEvent::PeerConnected(peer) => {
            tracing::info!(%peer, "peer connected");
            if !connected.contains(&peer) {
                connected.push(peer);
            }
            set_connected(glue, connected);
            glue.sync_wanted.wake();
        }
        NetworkEvent::PeerDisconnected(peer) => {
            tracing::info!(%peer, "peer disconnected");
            connected.retain(|p| *p != peer);
            set_connected(glue, connected);
        }
    }
}

fn set_connected(glue: &NetGlue, connected: &[PeerId]) {
    glue.metrics
        .peers
        .store(connected.len() as u64, Ordering::Relaxed);
    glue.peers
        .set_connected(connected.iter().map(|p| p.to_string()).collect());
}

/// Leaves room in a sync response for framing.
const SYNC_RESPONSE_MARGIN_BYTES: usize = 64 * 1024;

fn serve_sync(store: &StoreReader, batch_blocks_max: u32, bytes: &[u8]) -> SyncResponse {
    let request: SyncRequest = match postcard::from_bytes(bytes) {
        Ok(request) => request,
        Err(error) => return SyncResponse::Refused(format!("undecodable request: {error}")),
    };
    match request {
        SyncRequest::Status => match store.latest_height() {
            Ok(height) => SyncResponse::Status { height: height.0 },
            Err(error) => SyncResponse::Refused(error.to_string()),
        },
        SyncRequest::Blocks { from, count } => {
            let count = count.min(batch_blocks_max);
            let budget = NetworkLimits::default()
                .response_bytes_max
                .saturating_sub(SYNC_RESPONSE_MARGIN_BYTES);
            let mut used = 0usize;
            let mut blocks = Vec::new();
            for height in from..from.saturating_add(u64::from(count)) {
                let block = store.raw_block(Height(height));
                let certificate = store.raw_certificate(Height(height));
                match (block, certificate) {
                    (Ok(Some(block)), Ok(Some(certificate))) => {
                        let size = block.len() + certificate.len();
                        if !blocks.is_empty() && used + size > budget {
                            break;
                        }
                        used += size;
                        blocks.push((block, certificate));
                    }
                    _ => break,
                }
            }
            SyncResponse::Blocks(blocks)
        }
        // Answered from the driver's core, before this point.
        SyncRequest::Proposal(_) => SyncResponse::Refused("proposal not held".to_string()),
    }
}

/// The bytes of proposal `key` if the node core holds it (asked of the
/// driver, which owns the core).
async fn held_proposal(
    driver: &mpsc::Sender<DriverInput>,
    key: ProposalKey,
) -> Option<std::sync::Arc<Vec<u8>>> {
    let (reply, answer) = oneshot::channel();
    driver
        .send(DriverInput::HeldProposal { key, reply })
        .await
        .ok()?;
    answer.await.ok().flatten()
}

/// How long a wanted proposal is given to arrive by gossip before peers are
/// asked for it: votes for it usually follow it closely.
const PROPOSAL_FETCH_DELAY_MS: u64 = 100;

/// How long one peer is given to answer a proposal fetch before the next
/// is asked: a peer behind a cut link may still count as connected until
/// ping notices.
const PROPOSAL_FETCH_PEER_TIMEOUT_MS: u64 = 2_000;

/// Asks the connected peers, one after the other, for proposal `key`, and
/// hands the first answer to the driver (whose state machine checks its
/// signature like any gossiped message).
async fn fetch_proposal(
    metrics: Arc<Metrics>,
    handle: NetworkHandle,
    driver: mpsc::Sender<DriverInput>,
    key: ProposalKey,
) {
    tokio::time::sleep(Duration::from_millis(PROPOSAL_FETCH_DELAY_MS)).await;
    if held_proposal(&driver, key).await.is_some() {
        return;
    }
    let Ok(peers) = handle.connected_peers().await else {
        return;
    };
    let request = SyncRequest::Proposal(key);
    let per_peer = Duration::from_millis(PROPOSAL_FETCH_PEER_TIMEOUT_MS);
    for peer in peers {
        let answer = tokio::time::timeout(per_peer, ask(&handle, peer, &request))
            .await
            .unwrap_or_else(|_| Err("no answer in time".to_string()));
        match answer {
            Ok(SyncResponse::Proposal(bytes)) => {
                metrics
                    .fetched_proposals_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(%peer, height = key.height, round = key.round, "fetched a proposal that did not arrive by gossip");
                let _ = driver.send(DriverInput::Consensus(bytes)).await;
                return;
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%peer, %error, "proposal fetch failed"),
        }
    }
    tracing::debug!(
        height = key.height,
        round = key.round,
        "no connected peer holds a wanted proposal"
    );
}

async fn ask(
    handle: &NetworkHandle,
    peer: PeerId,
    request: &SyncRequest,
) -> Result<SyncResponse, String> {
    let bytes = postcard::to_allocvec(request).map_err(|error| error.to_string())?;
    let answer = handle
        .request(peer, RequestProtocol::Sync, bytes)
        .await
        .map_err(|error| error.to_string())?;
    postcard::from_bytes(&answer).map_err(|error| format!("undecodable answer: {error}"))
}

async fn sync_loop(
    store: StoreReader,
    peer_state: Peers,
    sync_wanted: SyncWanted,
    config: SyncConfig,
    handle: NetworkHandle,
    driver: mpsc::Sender<DriverInput>,
    mut shutdown: Shutdown,
) {
    let interval = Duration::from_millis(config.status_interval_ms);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = sync_wanted.woken() => {}
        }
        let peers = match handle.connected_peers().await {
            Ok(peers) => peers,
            Err(_) => return,
        };
        // Ask everyone for their height; follow the highest.
        let mut best: Option<(PeerId, u64)> = None;
        for peer in peers {
            if let Ok(SyncResponse::Status { height }) =
                ask(&handle, peer, &SyncRequest::Status).await
            {
                if best.is_none_or(|(_, h)| height > h) {
                    best = Some((peer, height));
                }
            }
        }
        let Some((peer, peer_height)) = best else {
            continue;
        };
        while let Ok(ours) = store.latest_height() {
            let ours = ours.0;
            if peer_height <= ours {
                break;
            }
            peer_state.set_syncing(true);
            let request = SyncRequest::Blocks {
                from: ours + 1,
                count: config.batch_blocks_max,
            };
            let blocks = match ask(&handle, peer, &request).await {
                Ok(SyncResponse::Blocks(blocks)) if !blocks.is_empty() => blocks,
                Ok(_) => break,
                Err(error) => {
                    tracing::debug!(%peer, %error, "sync request failed");
                    break;
                }
            };
            tracing::info!(%peer, from = ours + 1, count = blocks.len(), peer_height, "syncing blocks");
            let (done, applied) = oneshot::channel();
            if driver
                .send(DriverInput::Synced { blocks, done })
                .await
                .is_err()
            {
                return;
            }
            match applied.await {
                Ok(Ok(height)) if height > ours => {}
                Ok(Ok(_)) => break,
                Ok(Err(error)) => {
                    tracing::warn!(%peer, %error, "blocks from peer refused");
                    break;
                }
                Err(_) => return,
            }
        }
        peer_state.set_syncing(false);
    }
}
