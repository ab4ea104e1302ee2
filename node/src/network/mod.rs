//! The node's peer-to-peer network: the only module that touches libp2p.
//!
//! One tokio task owns the [`Swarm`]; the rest of the node talks to it through
//! a cloneable [`NetworkHandle`] (commands in) and a bounded
//! [`mpsc::Receiver<NetworkEvent>`] (events out). The module moves opaque
//! bytes: it knows nothing about transactions, blocks or consensus messages.
//!
//! What it provides:
//! - TCP + Noise + Yamux transport.
//! - gossipsub on two topics, [`GossipTopic::Tx`] (`custody/tx/1`) and
//!   [`GossipTopic::Consensus`] (`custody/consensus/1`), with signed messages
//!   checked strictly and content-hash message ids. On the wire a payload is
//!   preceded by one kind byte ([`GOSSIP_KIND_PLAIN`]) or, for a
//!   re-broadcast, a kind byte and an 8-byte nonce
//!   ([`GOSSIP_KIND_REBROADCAST`]), so that a re-broadcast is a new message
//!   while a plain re-publish of identical bytes is a duplicate.
//! - request-response on two protocols, [`RequestProtocol::Sync`]
//!   (`/custody/sync/1`) and [`RequestProtocol::Blob`] (`/custody/blob/1`),
//!   each a single length-prefixed frame of opaque bytes with explicit caps.
//! - identify and ping. A connection that answers no ping for
//!   [`NetworkLimits::ping_interval_ms`] + [`NetworkLimits::ping_timeout_ms`]
//!   is closed and stops counting at once, so that a silently cut link is
//!   noticed in seconds and redialed.
//! - Newest connection wins: a peer that connects again while this node
//!   still holds an older connection to it lost that connection, and every
//!   connection to it is closed and redialed, so that gossipsub (which
//!   announces subscriptions on a peer's first connection only, and shares
//!   one send queue among a peer's connections) starts afresh on both
//!   sides. A member whose gossip subscriptions have not arrived
//!   [`SUBSCRIPTIONS_WAIT_MS`] after it connected is reconnected too. See
//!   `liveness.rs` and `docs/reliability.md`.
//!
//! Invariants:
//! - Only peers in [`NetworkConfig::allowed`] ever hold an established
//!   connection: everyone else is refused right after the Noise handshake.
//! - Every queue is bounded (the `*_MAX` constants below and
//!   [`NetworkLimits`]); the swarm task never blocks on the node: when the
//!   event channel is full, gossip and inbound requests are dropped with a
//!   warning.
//! - Gossip is delivered and relayed only when it came over a connection
//!   from an allowed peer, names an allowed author and its payload is within
//!   the configured cap. gossipsub's own message signatures are off: every
//!   connection is already Noise-authenticated and allow-listed, and every
//!   payload (a transaction, a consensus message) carries its signer's
//!   signature, checked where it is used. Signing each message again cost a
//!   SHA-512 pass and an ed25519 check on every copy of every message (three
//!   copies of each reach a node in a four-node mesh), about 5 % of a node's
//!   CPU under load. The author named in a message is therefore a claim by
//!   an allowed peer, used for logs only.
//! - A transaction batch authored by a member node (one this node dials),
//!   or any gossip of a member over [`MEMBER_RELAY_BYTES_MAX`] (a proposal
//!   with its block), is delivered but not relayed: members flood-publish
//!   to every member they are connected to, so in the usual full mesh each
//!   relay was a duplicate, and two of the three copies of each batch and
//!   each proposal reaching a member of a four-node network were relays. A
//!   member cut off from the author gets the transactions in the author's
//!   proposals, and a missing proposal from a peer that voted for it (the
//!   node asks over `/custody/sync/1`). Gossip from observers is relayed,
//!   and so are votes: those are small and must reach every member even
//!   across a missing link.
//! - No frame from a peer is trusted: oversized or malformed frames are
//!   refused with a log line, never a panic.

mod behaviour;
mod codec;
mod dial;
mod gossip;
mod keys;
mod liveness;
mod requests;
mod swarm_task;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::identity::KeyType;
use libp2p::{noise, tcp, yamux, SwarmBuilder};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use behaviour::{build_behaviour, validate_limits};
use dial::RedialState;
use swarm_task::{Driver, DropLog};

// The rest of the node names peers, addresses and the node key through these
// re-exports, so that libp2p stays a dependency of this module alone.
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};

/// gossipsub topic for batches of transactions.
pub const TOPIC_TX: &str = "custody/tx/1";
/// gossipsub topic for consensus messages.
pub const TOPIC_CONSENSUS: &str = "custody/consensus/1";
/// request-response protocol for block sync.
pub const PROTOCOL_SYNC: &str = "/custody/sync/1";
/// request-response protocol for blob fetch.
pub const PROTOCOL_BLOB: &str = "/custody/blob/1";
/// identify protocol version string; peers with another one are still
/// accepted (the allowed set is the gate), it only shows up in logs.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/custody/1.0.0";

/// Events waiting for the node in the event channel.
pub const EVENTS_PENDING_MAX: usize = 1024;
/// Connection events (connected/disconnected) kept aside while the event
/// channel is full. They are not dropped like gossip, because the node keeps
/// peer state from them; past this many the oldest is dropped with an error log.
pub const CONNECTION_EVENTS_OVERFLOW_MAX: usize = 1024;
/// Commands waiting for the swarm task.
pub const COMMANDS_PENDING_MAX: usize = 256;
/// Inbound requests handed to the node and not yet answered.
pub const INBOUND_REQUESTS_PENDING_MAX: usize = 128;
/// Outbound requests sent and not yet answered.
pub const OUTBOUND_REQUESTS_PENDING_MAX: usize = 256;
/// Concurrent request-response streams per connection and protocol.
pub const REQUEST_STREAMS_PER_CONNECTION_MAX: usize = 32;
/// Established connections per peer: two cover both sides dialing at once,
/// and two more let a restarted peer in while the two it lost still count
/// (a connection counts until its close has finished, which over a silently
/// cut link can take long). With two, a restarted peer was refused until
/// ping noticed the dead connections.
pub const CONNECTIONS_PER_PEER_MAX: u32 = 4;
/// Inbound connections still in the handshake. Bounds the work a stranger can
/// cause before the allowed-set check refuses it.
pub const CONNECTIONS_PENDING_INCOMING_MAX: u32 = 16;
/// Hard ceiling on any configured frame or message cap.
pub const FRAME_BYTES_CEILING: usize = 256 * 1024 * 1024;
/// Bytes of the request-response frame length prefix (u32, big endian).
pub const FRAME_LENGTH_PREFIX_BYTES: usize = 4;
/// Largest gossip payload any node may configure. The gossipsub frame limit
/// is derived from this constant, not from the configured cap, so that it is
/// the same on every node: a gossipsub receiver that refuses a frame closes
/// its inbound stream, and the sender then keeps writing into that dead stream
/// until the connection is replaced. The configured cap is enforced above
/// the framing (on publish, and on delivery with a `Reject`).
pub const GOSSIP_MESSAGE_BYTES_CEILING: usize = 16 * 1024 * 1024;
/// First byte of a gossip payload on the wire: a plain publish. Its message
/// id is the content hash, so identical bytes published again (by anyone)
/// within the duplicate window are one message.
pub const GOSSIP_KIND_PLAIN: u8 = 0;
/// First byte of a gossip payload on the wire: a re-broadcast, followed by
/// [`GOSSIP_NONCE_BYTES`] of nonce that make its message id new, so that it
/// is delivered again even to peers that saw the same bytes before.
pub const GOSSIP_KIND_REBROADCAST: u8 = 1;
/// Nonce length in a re-broadcast.
pub const GOSSIP_NONCE_BYTES: usize = 8;
/// Room for the gossipsub envelope (protobuf framing, topic, signature, key,
/// piggybacked control messages) above the largest payload.
pub const GOSSIP_ENVELOPE_OVERHEAD_BYTES: usize = 64 * 1024;
/// gossipsub heartbeat; the initial delay is short so a fresh network forms
/// its topic view quickly.
pub const GOSSIP_HEARTBEAT_MS: u64 = 700;
/// Delay before the first gossipsub heartbeat (default is 5 s).
pub const GOSSIP_HEARTBEAT_INITIAL_DELAY_MS: u64 = 100;
/// Heartbeats for which gossipsub keeps a message to answer IWANT requests
/// (its default).
pub const GOSSIP_HISTORY_HEARTBEATS: usize = 5;
/// Gossip of a member larger than this (wire bytes) is not relayed. Every
/// vote fits (at most about 230 bytes with the longest chain id, checked by
/// a test in `gossip.rs`); a proposal carries its block, and one with a
/// transaction or a commit certificate in it does not.
pub const MEMBER_RELAY_BYTES_MAX: usize = 512;

/// Shortest allowed duplicate window: longer than a message stays
/// retrievable through IHAVE/IWANT (history × heartbeat = 3.5 s), so that a
/// message is never fetched again by a node that already forgot seeing it.
pub const GOSSIP_DUPLICATE_CACHE_MIN_MS: u64 = 4_000;
/// How often the redial loop looks at configured peers.
pub const REDIAL_CHECK_INTERVAL_MS: u64 = 100;
/// A connection that stayed up this long resets the redial backoff; shorter
/// ones (a peer that accepts then drops us) keep backing off.
pub const CONNECTION_STABLE_MS: u64 = 5_000;
/// A connection to a configured peer that closes sooner than this after the
/// handshake is reported as a probable refusal by that peer.
pub const CONNECTION_REFUSED_SUSPECT_MS: u64 = 1_000;
/// At most one "dropped" log line per this interval and kind.
pub const DROP_LOG_INTERVAL_MS: u64 = 1_000;
/// Extra time the handle waits beyond the request timeout before giving up
/// on the swarm task itself.
pub const REQUEST_TIMEOUT_MARGIN_MS: u64 = 2_000;
/// How long `start` waits for every listen address to be bound.
pub const LISTEN_WAIT_MS: u64 = 5_000;
/// A member connected this long without its subscription to the consensus
/// topic having arrived is reconnected: gossipsub sends subscriptions on a
/// peer's first connection only, so a peer that accepted our new connection
/// while it still held the old one never sends them, and this node would
/// then publish nothing to it. They arrive within a round trip normally.
pub const SUBSCRIPTIONS_WAIT_MS: u64 = 2_000;

/// Size and time limits. Gossip and request caps must agree on every node:
/// a message larger than the receiver's cap is dropped by the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkLimits {
    /// Largest gossip payload published or delivered; at most
    /// [`GOSSIP_MESSAGE_BYTES_CEILING`]. Larger inbound messages are
    /// rejected (not delivered, not relayed).
    pub gossip_message_bytes_max: usize,
    /// Largest request body sent or accepted (both protocols).
    pub request_bytes_max: usize,
    /// Largest response body sent or accepted (both protocols). Larger
    /// answers must be paged by the caller.
    pub response_bytes_max: usize,
    /// How long an outbound request waits for its response, and how long the
    /// node has to answer an inbound one.
    pub request_timeout_ms: u64,
    /// How long a published or received gossip message id is remembered.
    /// Within this window identical bytes on the same topic are one message:
    /// publishing them again succeeds without sending anything. gossipsub
    /// forgets old ids only when a new message comes or goes, so on a quiet
    /// network the window can last much longer: re-broadcasts must use
    /// [`NetworkHandle::rebroadcast_consensus`]. At least
    /// [`GOSSIP_DUPLICATE_CACHE_MIN_MS`]; must agree on every node.
    pub gossip_duplicate_cache_ms: u64,
    /// How long a connection with no open stream is kept (long: members stay
    /// connected).
    pub idle_connection_timeout_ms: u64,
    /// First redial delay after a configured peer is lost or a dial fails.
    pub redial_backoff_min_ms: u64,
    /// Largest redial delay; the delay doubles after each failure up to this.
    pub redial_backoff_max_ms: u64,
    /// Longest a dial may take, TCP connect plus Noise and Yamux handshakes.
    pub connection_timeout_ms: u64,
    /// How often each connection is pinged. A silent link (a partition that
    /// drops packets rather than resetting) is only noticed through ping.
    pub ping_interval_ms: u64,
    /// A ping unanswered for this long fails. A connection that answered
    /// no ping for `ping_interval_ms + ping_timeout_ms` is closed by the
    /// node and the peer stops counting as connected; then the redial loop
    /// takes over. (libp2p's ping alone forgives the first failure and then
    /// negotiates a new stream with a fixed 10 s timeout: 26–30 s with the
    /// former 5 s / 10 s settings.)
    pub ping_timeout_ms: u64,
}

impl Default for NetworkLimits {
    fn default() -> Self {
        Self {
            gossip_message_bytes_max: 4 * 1024 * 1024,
            request_bytes_max: 1024 * 1024,
            response_bytes_max: 16 * 1024 * 1024,
            request_timeout_ms: 10_000,
            // gossipsub's default is 60 s, which would swallow a minute of
            // consensus re-broadcasts.
            gossip_duplicate_cache_ms: 5_000,
            idle_connection_timeout_ms: 3_600_000,
            redial_backoff_min_ms: 250,
            redial_backoff_max_ms: 30_000,
            connection_timeout_ms: 10_000,
            // A silent link is noticed within 5 s; the pings cost a few
            // bytes a second per connection.
            ping_interval_ms: 1_000,
            ping_timeout_ms: 4_000,
        }
    }
}

/// Everything the network needs to start.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// This node's identity; must be ed25519. Its PeerId is what other nodes
    /// put in their allowed set.
    pub node_key: Keypair,
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/4100`. Port 0 picks an
    /// ephemeral port; see [`NetworkHandle::listen_addrs`].
    pub listen: Vec<Multiaddr>,
    /// Member nodes to dial and keep dialing. An entry for this node itself
    /// is ignored, so every node may be given the same member list.
    pub peers: Vec<(PeerId, Multiaddr)>,
    /// Peers allowed to connect: member nodes and observers. Every PeerId in
    /// `peers` must be here too. This node's own PeerId is ignored.
    pub allowed: HashSet<PeerId>,
    /// Size and time limits.
    pub limits: NetworkLimits,
}

/// The two gossip topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GossipTopic {
    /// Batches of transactions (`custody/tx/1`).
    Tx,
    /// Consensus messages (`custody/consensus/1`).
    Consensus,
}

impl GossipTopic {
    /// The topic's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            GossipTopic::Tx => TOPIC_TX,
            GossipTopic::Consensus => TOPIC_CONSENSUS,
        }
    }

    fn ident(self) -> IdentTopic {
        IdentTopic::new(self.name())
    }

    fn from_hash(hash: &gossipsub::TopicHash) -> Option<Self> {
        [GossipTopic::Tx, GossipTopic::Consensus]
            .into_iter()
            .find(|topic| topic.ident().hash() == *hash)
    }
}

impl fmt::Display for GossipTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two request-response protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestProtocol {
    /// Block sync (`/custody/sync/1`).
    Sync,
    /// Blob fetch (`/custody/blob/1`).
    Blob,
}

impl RequestProtocol {
    /// The protocol's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            RequestProtocol::Sync => PROTOCOL_SYNC,
            RequestProtocol::Blob => PROTOCOL_BLOB,
        }
    }
}

impl fmt::Display for RequestProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossip message from another node. `from` is the author named in
    /// the message (a claim, see the module notes); `via` is the connected
    /// peer it came from (its propagation source). Both are in the allowed
    /// set.
    Gossip {
        topic: GossipTopic,
        from: PeerId,
        via: PeerId,
        bytes: Vec<u8>,
    },
    /// A request from a peer. Answer through `reply` within the request
    /// timeout with at most `response_bytes_max` bytes; dropping `reply`
    /// makes the request fail on the caller's side.
    InboundRequest {
        peer: PeerId,
        protocol: RequestProtocol,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// An allowed peer that had no live connection has one now.
    PeerConnected(PeerId),
    /// A peer's last live connection is gone or being closed (a connection
    /// being closed no longer counts, however long its close takes).
    PeerDisconnected(PeerId),
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid ed25519 key: {0}")]
    InvalidKey(String),
    #[error("the node key must be ed25519, not {0:?}")]
    NodeKeyNotEd25519(KeyType),
    #[error("could not build the libp2p transport: {0}")]
    Transport(String),
    #[error("could not build the gossipsub behaviour: {0}")]
    Gossipsub(String),
    #[error("could not listen on {address}: {reason}")]
    Listen { address: Multiaddr, reason: String },
    #[error("no peer is subscribed to topic {topic} yet (safe to ignore or retry)")]
    NoPeersSubscribed { topic: GossipTopic },
    #[error("gossip message of {bytes} bytes exceeds the cap of {max} bytes")]
    MessageTooLarge { bytes: usize, max: usize },
    #[error("request of {bytes} bytes exceeds the cap of {max} bytes")]
    RequestTooLarge { bytes: usize, max: usize },
    #[error("publishing on {topic} failed: {reason}")]
    PublishFailed { topic: GossipTopic, reason: String },
    #[error("{protocol} request to {peer} failed: {reason}")]
    RequestFailed {
        peer: PeerId,
        protocol: RequestProtocol,
        reason: String,
    },
    #[error("{protocol} request to {peer} timed out")]
    RequestTimeout {
        peer: PeerId,
        protocol: RequestProtocol,
    },
    #[error("{pending} requests are already waiting for a response")]
    TooManyPendingRequests { pending: usize },
    #[error("the network task has stopped")]
    Stopped,
}

/// Commands from handles to the swarm task.
enum Command {
    Publish {
        topic: GossipTopic,
        bytes: Vec<u8>,
        rebroadcast: bool,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Request {
        peer: PeerId,
        protocol: RequestProtocol,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    SetMembers {
        members: Members,
        reply: oneshot::Sender<MembersChanged>,
    },
    Shutdown,
}

/// Who may hold a connection from now on, as the committed state says:
/// the allowed set (member nodes and observers) and the member nodes to
/// keep dialed, each with its configured addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    pub allowed: HashSet<PeerId>,
    pub dial: Vec<(PeerId, Multiaddr)>,
}

/// What a [`NetworkHandle::set_members`] call changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembersChanged {
    /// Peers no longer allowed: their connections are closed and any new
    /// one is refused.
    pub removed: Vec<PeerId>,
    /// Peers allowed from now on.
    pub added: Vec<PeerId>,
}

/// A cheap, cloneable way to talk to the swarm task.
#[derive(Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
    listen_addrs: Arc<[Multiaddr]>,
    limits: NetworkLimits,
}

impl fmt::Debug for NetworkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkHandle")
            .field("local_peer_id", &self.local_peer_id)
            .field("listen_addrs", &self.listen_addrs)
            .finish_non_exhaustive()
    }
}

impl NetworkHandle {
    /// This node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses bound at start (ephemeral ports resolved).
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// The limits the network runs with.
    pub fn limits(&self) -> NetworkLimits {
        self.limits
    }

    /// Gossips a batch of transactions. Publishing bytes identical to a
    /// recent message is a success that sends nothing (see
    /// [`NetworkLimits::gossip_duplicate_cache_ms`]); use
    /// [`Self::rebroadcast`] to send them again.
    pub async fn publish_transactions(&self, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.publish(GossipTopic::Tx, bytes).await
    }

    /// Gossips a consensus message. Same rules as [`Self::publish_transactions`].
    pub async fn publish_consensus(&self, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.publish(GossipTopic::Consensus, bytes).await
    }

    /// Gossips on a topic. [`NetworkError::NoPeersSubscribed`] means nobody
    /// would receive it now; the caller may ignore it.
    pub async fn publish(&self, topic: GossipTopic, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.publish_with(topic, bytes, false).await
    }

    /// Sends a consensus message again, even if identical bytes went out
    /// moments ago: unlike [`Self::publish_consensus`] it is never swallowed
    /// as a duplicate, and every peer receives it again (so the receiving
    /// side must treat repeated messages as harmless). Use it for the
    /// periodic re-broadcast of votes that Tendermint's liveness needs.
    pub async fn rebroadcast_consensus(&self, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.publish_with(GossipTopic::Consensus, bytes, true).await
    }

    /// [`Self::rebroadcast_consensus`] for any topic.
    pub async fn rebroadcast(
        &self,
        topic: GossipTopic,
        bytes: Vec<u8>,
    ) -> Result<(), NetworkError> {
        self.publish_with(topic, bytes, true).await
    }

    async fn publish_with(
        &self,
        topic: GossipTopic,
        bytes: Vec<u8>,
        rebroadcast: bool,
    ) -> Result<(), NetworkError> {
        let max = self.limits.gossip_message_bytes_max;
        if bytes.len() > max {
            return Err(NetworkError::MessageTooLarge {
                bytes: bytes.len(),
                max,
            });
        }
        let (reply, response) = oneshot::channel();
        self.send(Command::Publish {
            topic,
            bytes,
            rebroadcast,
            reply,
        })
        .await?;
        response.await.map_err(|_| NetworkError::Stopped)?
    }

    /// Sends a request and waits for the response (at most
    /// `request_timeout_ms`). Dials the peer if it is not connected and its
    /// address is known.
    pub async fn request(
        &self,
        peer: PeerId,
        protocol: RequestProtocol,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, NetworkError> {
        let max = self.limits.request_bytes_max;
        if bytes.len() > max {
            return Err(NetworkError::RequestTooLarge {
                bytes: bytes.len(),
                max,
            });
        }
        let (reply, response) = oneshot::channel();
        self.send(Command::Request {
            peer,
            protocol,
            bytes,
            reply,
        })
        .await?;
        // The swarm enforces the request timeout itself; this outer one only
        // guards against a stalled swarm task.
        let wait =
            Duration::from_millis(self.limits.request_timeout_ms + REQUEST_TIMEOUT_MARGIN_MS);
        match tokio::time::timeout(wait, response).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NetworkError::Stopped),
            Err(_) => Err(NetworkError::RequestTimeout { peer, protocol }),
        }
    }

    /// Peers with at least one established connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetworkError> {
        let (reply, response) = oneshot::channel();
        self.send(Command::ConnectedPeers { reply }).await?;
        response.await.map_err(|_| NetworkError::Stopped)
    }

    /// Replaces the allowed set and the member nodes to dial. Connections
    /// of peers that are no longer allowed are closed at once (and a new one
    /// is refused by the allowed-set gate); added members are dialed. Every
    /// command queued before this one (a publish, say) is carried out under
    /// the old set, every later one under the new.
    pub async fn set_members(&self, members: Members) -> Result<MembersChanged, NetworkError> {
        let (reply, response) = oneshot::channel();
        self.send(Command::SetMembers { members, reply }).await?;
        response.await.map_err(|_| NetworkError::Stopped)
    }

    /// Asks the swarm task to close every connection and stop. Await the
    /// `JoinHandle` returned by [`Network::start`] to know it has. Calling it
    /// on a stopped network does nothing.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }

    async fn send(&self, command: Command) -> Result<(), NetworkError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NetworkError::Stopped)
    }
}

/// Entry point: builds the swarm and spawns the task that owns it.
pub struct Network;

impl Network {
    /// Validates the configuration, builds the swarm, binds every listen
    /// address, starts dialing the configured peers and spawns the swarm task.
    /// Must be called inside a tokio runtime.
    ///
    /// The task stops on [`NetworkHandle::shutdown`] or when every handle is
    /// dropped.
    pub async fn start(
        config: NetworkConfig,
    ) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>, JoinHandle<()>), NetworkError> {
        let key_type = config.node_key.key_type();
        if key_type != KeyType::Ed25519 {
            return Err(NetworkError::NodeKeyNotEd25519(key_type));
        }
        let local_peer_id = config.node_key.public().to_peer_id();
        validate_limits(&config.limits)?;
        let mut allowed = config.allowed.clone();
        allowed.remove(&local_peer_id);
        let peers: Vec<(PeerId, Multiaddr)> = config
            .peers
            .iter()
            .filter(|(peer, _)| *peer != local_peer_id)
            .cloned()
            .collect();
        if let Some((peer, _)) = peers.iter().find(|(peer, _)| !allowed.contains(peer)) {
            return Err(NetworkError::InvalidConfig(format!(
                "peer {peer} is listed in peers but not in allowed"
            )));
        }

        let limits = config.limits;
        let behaviour = build_behaviour(&config.node_key, &allowed, &limits)?;
        let idle = Duration::from_millis(limits.idle_connection_timeout_ms);
        let mut swarm = SwarmBuilder::with_existing_identity(config.node_key.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|error| NetworkError::Transport(error.to_string()))?
            .with_behaviour(|_| behaviour)
            .map_err(|error| NetworkError::Transport(error.to_string()))?
            .with_swarm_config(|swarm_config| swarm_config.with_idle_connection_timeout(idle))
            .with_connection_timeout(Duration::from_millis(limits.connection_timeout_ms))
            .build();

        for topic in [GossipTopic::Tx, GossipTopic::Consensus] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&topic.ident())
                .map_err(|error| NetworkError::Gossipsub(error.to_string()))?;
        }
        // Explicit peers on both sides: gossipsub then always sends to them
        // and keeps them out of mesh scoring, which suits a fixed membership.
        for peer in &allowed {
            swarm.behaviour_mut().gossipsub.add_explicit_peer(peer);
        }
        for (peer, address) in &peers {
            swarm.add_peer_address(*peer, address.clone());
        }

        let (commands_tx, commands_rx) = mpsc::channel(COMMANDS_PENDING_MAX);
        let (events_tx, events_rx) = mpsc::channel(EVENTS_PENDING_MAX);
        let now = Instant::now();
        let mut redial: HashMap<PeerId, RedialState> = HashMap::new();
        for (peer, address) in &peers {
            let state = redial.entry(*peer).or_insert_with(|| RedialState {
                addresses: Vec::new(),
                backoff_ms: limits.redial_backoff_min_ms,
                next_attempt: now,
                established_at: None,
                attempts: 0,
            });
            if !state.addresses.contains(address) {
                state.addresses.push(address.clone());
            }
        }
        let mut driver = Driver {
            swarm,
            limits,
            allowed,
            members: peers.iter().map(|(peer, _)| *peer).collect(),
            commands: commands_rx,
            events: events_tx,
            connection_events_overflow: VecDeque::new(),
            redial,
            outbound: HashMap::new(),
            inbound_replies: FuturesUnordered::new(),
            jitter: std::collections::hash_map::RandomState::new(),
            gossip_dropped: DropLog::default(),
            requests_dropped: DropLog::default(),
            refused_logged: DropLog::default(),
            rebroadcast_nonce: std::collections::hash_map::RandomState::new()
                .hash_one(std::time::SystemTime::now()),
            connections: liveness::Connections::default(),
        };
        let listen_addrs = driver.listen(&config.listen).await?;
        tracing::info!(
            peer_id = %local_peer_id,
            listen = ?listen_addrs,
            peers = driver.redial.len(),
            allowed = driver.allowed.len(),
            "network started"
        );
        let join = tokio::spawn(driver.run());
        let handle = NetworkHandle {
            commands: commands_tx,
            local_peer_id,
            listen_addrs: listen_addrs.into(),
            limits,
        };
        Ok((handle, events_rx, join))
    }
}

pub use keys::{
    ed25519_public_of_peer_id, generate_node_key, node_key_from_ed25519_secret,
    peer_id_from_ed25519_public,
};
