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
//! - identify and ping (a failed ping closes the connection, so that a cut
//!   link is noticed and redialed).
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

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt, StreamExt};
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, PublishError, ValidationMode};
use libp2p::identity::KeyType;
use libp2p::request_response::{
    self, InboundFailure, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, identify, noise, ping, tcp, yamux, StreamProtocol, Swarm,
    SwarmBuilder,
};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

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
/// Established connections per peer: two covers both sides dialing at once.
pub const CONNECTIONS_PER_PEER_MAX: u32 = 2;
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
/// a test in `proposals.rs`); a proposal carries its block, and one with a
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
    /// A ping unanswered for this long fails. libp2p's ping forgives the
    /// first failure and then negotiates a new stream (a fixed 10 s timeout),
    /// so a silent link is closed after about
    /// `ping_timeout_ms + ping_interval_ms + 10 s`; then the redial loop
    /// takes over.
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
            ping_interval_ms: 5_000,
            ping_timeout_ms: 10_000,
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
    /// A gossip message from another node. `from` is the signed author (not
    /// the relaying peer); it is always in the allowed set.
    Gossip {
        topic: GossipTopic,
        from: PeerId,
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
    /// The first connection to an allowed peer is up.
    PeerConnected(PeerId),
    /// The last connection to a peer is gone.
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
    Shutdown,
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

/// A fresh random ed25519 node key.
pub fn generate_node_key() -> Keypair {
    Keypair::generate_ed25519()
}

/// The node key for a 32-byte ed25519 secret (for instance the department's
/// validator key, so that its PeerId follows from its public key).
pub fn node_key_from_ed25519_secret(secret: [u8; 32]) -> Result<Keypair, NetworkError> {
    let mut secret = secret;
    Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|error| NetworkError::InvalidKey(error.to_string()))
}

/// The PeerId of the node whose ed25519 public key is `public`: what goes in
/// [`NetworkConfig::allowed`] and [`NetworkConfig::peers`] for that node.
pub fn peer_id_from_ed25519_public(public: [u8; 32]) -> Result<PeerId, NetworkError> {
    let public = libp2p::identity::ed25519::PublicKey::try_from_bytes(&public)
        .map_err(|error| NetworkError::InvalidKey(error.to_string()))?;
    Ok(libp2p::identity::PublicKey::from(public).to_peer_id())
}

/// The 32-byte ed25519 public key behind a PeerId, when the PeerId embeds
/// one (every ed25519 PeerId does).
pub fn ed25519_public_of_peer_id(peer: &PeerId) -> Option<[u8; 32]> {
    // Small keys are inlined with the identity multihash (code 0).
    if peer.as_ref().code() != 0 {
        return None;
    }
    let public = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    Some(public.try_into_ed25519().ok()?.to_bytes())
}

fn validate_limits(limits: &NetworkLimits) -> Result<(), NetworkError> {
    let caps = [
        ("gossip_message_bytes_max", limits.gossip_message_bytes_max),
        ("request_bytes_max", limits.request_bytes_max),
        ("response_bytes_max", limits.response_bytes_max),
    ];
    for (name, value) in caps {
        if value == 0 || value > FRAME_BYTES_CEILING {
            return Err(NetworkError::InvalidConfig(format!(
                "{name} is {value}; it must be between 1 and {FRAME_BYTES_CEILING} bytes"
            )));
        }
    }
    if limits.gossip_message_bytes_max > GOSSIP_MESSAGE_BYTES_CEILING {
        return Err(NetworkError::InvalidConfig(format!(
            "gossip_message_bytes_max is {}; it must be at most {GOSSIP_MESSAGE_BYTES_CEILING} bytes",
            limits.gossip_message_bytes_max
        )));
    }
    if limits.gossip_duplicate_cache_ms < GOSSIP_DUPLICATE_CACHE_MIN_MS {
        return Err(NetworkError::InvalidConfig(format!(
            "gossip_duplicate_cache_ms is {}; it must be at least {GOSSIP_DUPLICATE_CACHE_MIN_MS}",
            limits.gossip_duplicate_cache_ms
        )));
    }
    if limits.request_timeout_ms == 0 {
        return Err(NetworkError::InvalidConfig(
            "request_timeout_ms must be positive".to_string(),
        ));
    }
    if limits.ping_interval_ms == 0
        || limits.ping_timeout_ms == 0
        || limits.connection_timeout_ms == 0
    {
        return Err(NetworkError::InvalidConfig(
            "ping_interval_ms, ping_timeout_ms and connection_timeout_ms must be positive"
                .to_string(),
        ));
    }
    if limits.idle_connection_timeout_ms == 0 {
        return Err(NetworkError::InvalidConfig(
            "idle_connection_timeout_ms must be positive".to_string(),
        ));
    }
    if limits.redial_backoff_min_ms == 0
        || limits.redial_backoff_min_ms > limits.redial_backoff_max_ms
    {
        return Err(NetworkError::InvalidConfig(format!(
            "redial backoff must satisfy 0 < min ({}) <= max ({}) ms",
            limits.redial_backoff_min_ms, limits.redial_backoff_max_ms
        )));
    }
    Ok(())
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    // The gates come first so that they refuse a connection before any other
    // behaviour sees it.
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    connection_limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<FrameCodec>,
    blob: request_response::Behaviour<FrameCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

fn build_behaviour(
    key: &Keypair,
    allowed: &HashSet<PeerId>,
    limits: &NetworkLimits,
) -> Result<Behaviour, NetworkError> {
    let mut allowed_behaviour =
        allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
    for peer in allowed {
        allowed_behaviour.allow_peer(*peer);
    }

    let peer_count = u32::try_from(allowed.len()).unwrap_or(u32::MAX).max(1);
    let connection_limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(CONNECTIONS_PENDING_INCOMING_MAX))
            .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
            .with_max_established(Some(peer_count.saturating_mul(CONNECTIONS_PER_PEER_MAX))),
    );

    let gossipsub = gossipsub::Behaviour::new(
        MessageAuthenticity::Author(key.public().to_peer_id()),
        gossipsub_config(allowed.len(), limits)?,
    )
    .map_err(|reason| NetworkError::Gossipsub(reason.to_string()))?;

    let request_config = request_response::Config::default()
        .with_request_timeout(Duration::from_millis(limits.request_timeout_ms))
        .with_max_concurrent_streams(REQUEST_STREAMS_PER_CONNECTION_MAX);
    let codec = FrameCodec {
        request_bytes_max: limits.request_bytes_max,
        response_bytes_max: limits.response_bytes_max,
    };
    let sync = request_response::Behaviour::with_codec(
        codec,
        [(StreamProtocol::new(PROTOCOL_SYNC), ProtocolSupport::Full)],
        request_config.clone(),
    );
    let blob = request_response::Behaviour::with_codec(
        codec,
        [(StreamProtocol::new(PROTOCOL_BLOB), ProtocolSupport::Full)],
        request_config,
    );

    let identify = identify::Behaviour::new(identify::Config::new(
        IDENTIFY_PROTOCOL_VERSION.to_string(),
        key.public(),
    ));
    let ping = ping::Behaviour::new(
        ping::Config::new()
            .with_interval(Duration::from_millis(limits.ping_interval_ms))
            .with_timeout(Duration::from_millis(limits.ping_timeout_ms)),
    );

    Ok(Behaviour {
        allowed: allowed_behaviour,
        connection_limits,
        gossipsub,
        sync,
        blob,
        identify,
        ping,
    })
}

/// gossipsub tuned for a handful of known peers rather than a public mesh.
fn gossipsub_config(
    peer_count: usize,
    limits: &NetworkLimits,
) -> Result<gossipsub::Config, NetworkError> {
    // Mesh sized to the other members (n - 1), keeping gossipsub's rules:
    // mesh_outbound_min <= mesh_n_low <= mesh_n <= mesh_n_high and
    // 2 * mesh_outbound_min <= mesh_n.
    let mesh_n = peer_count.clamp(1, 12);
    let mesh_n_low = (mesh_n * 2 / 3).max(1);
    let mesh_n_high = mesh_n * 2;
    let mesh_outbound_min = mesh_n / 2;
    debug_assert!(mesh_outbound_min <= mesh_n_low);
    debug_assert!(mesh_n_low <= mesh_n);
    debug_assert!(mesh_n <= mesh_n_high);
    debug_assert!(2 * mesh_outbound_min <= mesh_n);

    gossipsub::ConfigBuilder::default()
        .mesh_n(mesh_n)
        .mesh_n_low(mesh_n_low)
        .mesh_n_high(mesh_n_high)
        .mesh_outbound_min(mesh_outbound_min)
        .gossip_lazy(mesh_n)
        .heartbeat_initial_delay(Duration::from_millis(GOSSIP_HEARTBEAT_INITIAL_DELAY_MS))
        .heartbeat_interval(Duration::from_millis(GOSSIP_HEARTBEAT_MS))
        .history_length(GOSSIP_HISTORY_HEARTBEATS)
        .duplicate_cache_time(Duration::from_millis(limits.gossip_duplicate_cache_ms))
        .flood_publish(true)
        // Author and sequence number present, no signature (see the module
        // documentation).
        .validation_mode(ValidationMode::Permissive)
        .message_id_fn(content_message_id)
        .max_transmit_size(GOSSIP_MESSAGE_BYTES_CEILING + GOSSIP_ENVELOPE_OVERHEAD_BYTES)
        // Every message is accepted or rejected by `on_gossipsub_event` before
        // gossipsub forwards it, so nothing over the cap or from outside the
        // allowed set is relayed.
        .validate_messages()
        .build()
        .map_err(|error| NetworkError::Gossipsub(error.to_string()))
}

/// Wraps a payload for the wire: a kind byte, then for a re-broadcast its
/// nonce, then the payload.
fn encode_gossip(rebroadcast_nonce: Option<u64>, payload: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(1 + GOSSIP_NONCE_BYTES + payload.len());
    match rebroadcast_nonce {
        None => data.push(GOSSIP_KIND_PLAIN),
        Some(nonce) => {
            data.push(GOSSIP_KIND_REBROADCAST);
            data.extend_from_slice(&nonce.to_be_bytes());
        }
    }
    data.extend_from_slice(payload);
    data
}

/// The payload inside a wire gossip message, or `None` if it is malformed.
fn decode_gossip(data: &[u8]) -> Option<&[u8]> {
    let (kind, rest) = data.split_first()?;
    match *kind {
        GOSSIP_KIND_PLAIN => Some(rest),
        GOSSIP_KIND_REBROADCAST => rest.get(GOSSIP_NONCE_BYTES..),
        _ => None,
    }
}

/// Message id = SHA-256 over (topic, wire data): the same bytes published
/// twice (or by two nodes) are one message; the same bytes on two topics are
/// two; a re-broadcast's nonce makes it a new message.
fn content_message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let topic = message.topic.as_str().as_bytes();
    let mut hasher = Sha256::new();
    hasher.update((topic.len() as u64).to_be_bytes());
    hasher.update(topic);
    hasher.update(&message.data);
    gossipsub::MessageId::new(&hasher.finalize())
}

/// One frame per request and per response: a u32 big-endian length, then
/// that many opaque bytes. The cap is checked before reading the body, so a
/// peer cannot make us buffer more than the cap.
#[derive(Debug, Clone, Copy)]
struct FrameCodec {
    request_bytes_max: usize,
    response_bytes_max: usize,
}

async fn read_frame<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; FRAME_LENGTH_PREFIX_BYTES];
    io.read_exact(&mut prefix).await?;
    let length = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if length > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes exceeds the cap of {max} bytes"),
        ));
    }
    let mut body = Vec::new();
    // `take` bounds the read; the buffer grows with what actually arrives.
    io.take(length as u64).read_to_end(&mut body).await?;
    if body.len() != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "frame announced {length} bytes but the stream ended after {}",
                body.len()
            ),
        ));
    }
    Ok(body)
}

async fn write_frame<T>(io: &mut T, bytes: &[u8], max: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|_| bytes.len() <= max)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes exceeds the cap of {max} bytes",
                    bytes.len()
                ),
            )
        })?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.request_bytes_max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.response_bytes_max).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request, self.request_bytes_max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, self.response_bytes_max).await
    }
}

/// Redial bookkeeping for one configured peer.
struct RedialState {
    /// Every configured address of the peer; a dial tries them all.
    addresses: Vec<Multiaddr>,
    backoff_ms: u64,
    next_attempt: Instant,
    established_at: Option<Instant>,
    attempts: u64,
}

/// The node's answer (or its absence) to one inbound request.
struct InboundReply {
    peer: PeerId,
    protocol: RequestProtocol,
    channel: ResponseChannel<Vec<u8>>,
    answer: Result<Vec<u8>, &'static str>,
}

type OutboundReply = oneshot::Sender<Result<Vec<u8>, NetworkError>>;

/// Owns the swarm; runs in its own task.
struct Driver {
    swarm: Swarm<Behaviour>,
    limits: NetworkLimits,
    allowed: HashSet<PeerId>,
    /// The member nodes this node dials (from [`NetworkConfig::peers`]):
    /// their transaction batches are delivered but not relayed.
    members: HashSet<PeerId>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    connection_events_overflow: VecDeque<NetworkEvent>,
    redial: HashMap<PeerId, RedialState>,
    outbound: HashMap<(RequestProtocol, OutboundRequestId), (PeerId, OutboundReply)>,
    inbound_replies: FuturesUnordered<BoxFuture<'static, InboundReply>>,
    jitter: std::collections::hash_map::RandomState,
    gossip_dropped: DropLog,
    requests_dropped: DropLog,
    refused_logged: DropLog,
    /// Last re-broadcast nonce; starts at a random value so that a restarted
    /// node does not repeat the ids of its previous run.
    rebroadcast_nonce: u64,
}

/// Counts drops and logs at most once per [`DROP_LOG_INTERVAL_MS`], so that a
/// flood does not turn into a flood of log lines.
#[derive(Default)]
struct DropLog {
    dropped_since_log: u64,
    last_log: Option<Instant>,
}

impl DropLog {
    /// Counts one drop; calls `log` with the number of drops since the last
    /// log line when it is time to log again.
    fn record(&mut self, log: impl FnOnce(u64)) {
        self.dropped_since_log += 1;
        let now = Instant::now();
        let due = self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= Duration::from_millis(DROP_LOG_INTERVAL_MS));
        if due {
            log(self.dropped_since_log);
            self.dropped_since_log = 0;
            self.last_log = Some(now);
        }
    }
}

impl Driver {
    /// Binds every listen address and returns the resolved addresses.
    async fn listen(&mut self, addresses: &[Multiaddr]) -> Result<Vec<Multiaddr>, NetworkError> {
        let mut waiting = HashMap::new();
        for address in addresses {
            let listener =
                self.swarm
                    .listen_on(address.clone())
                    .map_err(|error| NetworkError::Listen {
                        address: address.clone(),
                        reason: error.to_string(),
                    })?;
            waiting.insert(listener, address.clone());
        }
        let mut bound = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(LISTEN_WAIT_MS);
        while !waiting.is_empty() {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await;
            let Ok(event) = event else {
                let address = waiting
                    .values()
                    .next()
                    .cloned()
                    .unwrap_or_else(Multiaddr::empty);
                return Err(NetworkError::Listen {
                    address,
                    reason: format!("not bound after {LISTEN_WAIT_MS} ms"),
                });
            };
            match event {
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } => {
                    waiting.remove(&listener_id);
                    bound.push(address);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason,
                    ..
                } if waiting.contains_key(&listener_id) => {
                    let address = waiting
                        .remove(&listener_id)
                        .unwrap_or_else(Multiaddr::empty);
                    let reason = match reason {
                        Ok(()) => "listener closed".to_string(),
                        Err(error) => error.to_string(),
                    };
                    return Err(NetworkError::Listen { address, reason });
                }
                SwarmEvent::ListenerError { listener_id, error }
                    if waiting.contains_key(&listener_id) =>
                {
                    let address = waiting
                        .remove(&listener_id)
                        .unwrap_or_else(Multiaddr::empty);
                    return Err(NetworkError::Listen {
                        address,
                        reason: error.to_string(),
                    });
                }
                other => self.on_swarm_event(other),
            }
        }
        Ok(bound)
    }

    async fn run(mut self) {
        let mut redial_tick =
            tokio::time::interval(Duration::from_millis(REDIAL_CHECK_INTERVAL_MS));
        redial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A second sender so that waiting for room in the event channel does
        // not borrow `self`.
        let events = self.events.clone();
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) => {
                        tracing::info!("network shutting down on request");
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => {
                        tracing::info!("network shutting down: every handle was dropped");
                        break;
                    }
                },
                Some(reply) = self.inbound_replies.next(), if !self.inbound_replies.is_empty() => {
                    self.on_inbound_reply(reply);
                }
                permit = events.reserve(), if !self.connection_events_overflow.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(event) = self.connection_events_overflow.pop_front() {
                                permit.send(event);
                            }
                        }
                        Err(_) => self.connection_events_overflow.clear(),
                    }
                }
                _ = redial_tick.tick() => self.redial(),
            }
        }
        for (_, (_, reply)) in self.outbound.drain() {
            let _ = reply.send(Err(NetworkError::Stopped));
        }
        // Dropping the swarm closes every connection.
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish {
                topic,
                bytes,
                rebroadcast,
                reply,
            } => {
                let nonce = rebroadcast.then(|| {
                    self.rebroadcast_nonce = self.rebroadcast_nonce.wrapping_add(1);
                    self.rebroadcast_nonce
                });
                let data = encode_gossip(nonce, &bytes);
                let result = match self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic.ident(), data)
                {
                    Ok(_) | Err(PublishError::Duplicate) => Ok(()),
                    Err(PublishError::NoPeersSubscribedToTopic) => {
                        Err(NetworkError::NoPeersSubscribed { topic })
                    }
                    Err(PublishError::MessageTooLarge) => Err(NetworkError::PublishFailed {
                        topic,
                        reason: "message too large for the gossip envelope".to_string(),
                    }),
                    Err(error) => Err(NetworkError::PublishFailed {
                        topic,
                        reason: error.to_string(),
                    }),
                };
                let _ = reply.send(result);
            }
            Command::Request {
                peer,
                protocol,
                bytes,
                reply,
            } => {
                if self.outbound.len() >= OUTBOUND_REQUESTS_PENDING_MAX {
                    let _ = reply.send(Err(NetworkError::TooManyPendingRequests {
                        pending: self.outbound.len(),
                    }));
                    return;
                }
                if !self.allowed.contains(&peer) {
                    let _ = reply.send(Err(NetworkError::RequestFailed {
                        peer,
                        protocol,
                        reason: "peer is not in the allowed set".to_string(),
                    }));
                    return;
                }
                let behaviour = self.swarm.behaviour_mut();
                let id = match protocol {
                    RequestProtocol::Sync => behaviour.sync.send_request(&peer, bytes),
                    RequestProtocol::Blob => behaviour.blob.send_request(&peer, bytes),
                };
                self.outbound.insert((protocol, id), (peer, reply));
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Shutdown => {}
        }
    }

    fn on_inbound_reply(&mut self, reply: InboundReply) {
        let InboundReply {
            peer,
            protocol,
            channel,
            answer,
        } = reply;
        let bytes = match answer {
            Ok(bytes) => bytes,
            Err(reason) => {
                tracing::warn!(%peer, %protocol, reason, "inbound request not answered");
                return;
            }
        };
        let max = self.limits.response_bytes_max;
        if bytes.len() > max {
            // Dropping the channel fails the request on the caller's side.
            tracing::error!(
                %peer,
                %protocol,
                bytes = bytes.len(),
                max,
                "response exceeds the cap and was not sent; the caller must page"
            );
            return;
        }
        let behaviour = self.swarm.behaviour_mut();
        let sent = match protocol {
            RequestProtocol::Sync => behaviour.sync.send_response(channel, bytes),
            RequestProtocol::Blob => behaviour.blob.send_response(channel, bytes),
        };
        if sent.is_err() {
            tracing::debug!(%peer, %protocol, "response not sent: the request was already closed");
        }
    }

    fn emit_connection_event(&mut self, event: NetworkEvent) {
        if self.connection_events_overflow.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(event)) => {
                    self.connection_events_overflow.push_back(event);
                }
            }
        } else {
            self.connection_events_overflow.push_back(event);
        }
        if self.connection_events_overflow.len() > CONNECTION_EVENTS_OVERFLOW_MAX {
            let dropped = self.connection_events_overflow.pop_front();
            tracing::error!(
                ?dropped,
                "connection event dropped: the node is not reading events"
            );
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                tracing::debug!(peer = %peer_id, address = %endpoint_address(&endpoint), "connection established");
                if let Some(state) = self.redial.get_mut(&peer_id) {
                    if state.established_at.is_none() {
                        state.established_at = Some(Instant::now());
                    }
                }
                if num_established.get() == 1 {
                    tracing::info!(peer = %peer_id, "peer connected");
                    self.emit_connection_event(NetworkEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(
                    peer = %peer_id,
                    address = %endpoint_address(&endpoint),
                    cause = ?cause,
                    "connection closed"
                );
                if num_established == 0 {
                    tracing::info!(peer = %peer_id, "peer disconnected");
                    self.on_peer_lost(peer_id);
                    self.emit_connection_event(NetworkEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => match &error {
                ListenError::Denied { cause } => {
                    if cause
                        .downcast_ref::<allow_block_list::NotAllowed>()
                        .is_some()
                    {
                        self.refused_logged.record(|refused| {
                            tracing::warn!(
                                peer = ?peer_id,
                                address = %send_back_addr,
                                refused,
                                "refused connection from a peer outside the allowed set"
                            );
                        });
                    } else {
                        tracing::warn!(
                            peer = ?peer_id,
                            address = %send_back_addr,
                            reason = %cause,
                            "refused inbound connection"
                        );
                    }
                }
                other => {
                    tracing::debug!(peer = ?peer_id, address = %send_back_addr, error = %other, "inbound connection failed");
                }
            },
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                match &error {
                    DialError::Denied { cause } => {
                        tracing::warn!(peer = ?peer_id, reason = %cause, "outbound connection refused locally");
                    }
                    DialError::WrongPeerId { obtained, .. } => {
                        tracing::warn!(
                            expected = ?peer_id,
                            obtained = %obtained,
                            "dialed address answered with another identity"
                        );
                    }
                    other => {
                        tracing::debug!(peer = ?peer_id, error = %other, "dial failed");
                    }
                }
                if let Some(peer) = peer_id {
                    if !self.swarm.is_connected(&peer) {
                        if let Some(state) = self.redial.get(&peer) {
                            tracing::debug!(%peer, retry_in_ms = state.backoff_ms, "peer unreachable");
                        }
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                tracing::warn!(%address, "listen address expired");
            }
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => {
                tracing::error!(?addresses, ?reason, "listener closed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::error!(%error, "listener error");
            }
            _ => {}
        }
    }

    /// The last connection to `peer` closed: schedule a quick redial, unless
    /// the connection was short-lived, in which case keep backing off.
    fn on_peer_lost(&mut self, peer: PeerId) {
        let min = self.limits.redial_backoff_min_ms;
        let Some(state) = self.redial.get_mut(&peer) else {
            return;
        };
        let lifetime = state.established_at.take().map(|at| at.elapsed());
        if lifetime.is_some_and(|lived| lived >= Duration::from_millis(CONNECTION_STABLE_MS)) {
            state.backoff_ms = min;
        }
        // A member that closes every connection right after the handshake is
        // most likely refusing us: say so, once in a while, for the operator.
        if let Some(lived) = lifetime {
            let suspicious = lived < Duration::from_millis(CONNECTION_REFUSED_SUSPECT_MS);
            if suspicious && state.attempts.is_power_of_two() {
                tracing::warn!(
                    %peer,
                    lived_ms = lived.as_millis() as u64,
                    attempts = state.attempts,
                    "peer closed the connection right after the handshake; \
                     check that this node's PeerId is in that peer's allowed set"
                );
            }
        }
        state.next_attempt = Instant::now() + Duration::from_millis(state.backoff_ms);
    }

    /// Dials every configured peer that is not connected and whose backoff
    /// has elapsed; doubles its backoff (capped) each time.
    fn redial(&mut self) {
        let now = Instant::now();
        let min = self.limits.redial_backoff_min_ms;
        let max = self.limits.redial_backoff_max_ms;
        let mut to_dial = Vec::new();
        for (peer, state) in self.redial.iter_mut() {
            if self.swarm.is_connected(peer) {
                let stable = state.established_at.is_some_and(|at| {
                    now.duration_since(at) >= Duration::from_millis(CONNECTION_STABLE_MS)
                });
                if stable {
                    state.backoff_ms = min;
                }
                continue;
            }
            if now < state.next_attempt {
                continue;
            }
            state.attempts += 1;
            // Jitter up to a quarter of the backoff so that nodes restarted
            // together do not dial in lockstep.
            let jitter_ms =
                self.jitter.hash_one((peer, state.attempts)) % (state.backoff_ms / 4 + 1);
            state.next_attempt = now + Duration::from_millis(state.backoff_ms + jitter_ms);
            state.backoff_ms = state.backoff_ms.saturating_mul(2).min(max);
            to_dial.push((*peer, state.addresses.clone(), state.attempts));
        }
        for (peer, addresses, attempt) in to_dial {
            let opts = DialOpts::peer_id(peer)
                .addresses(addresses.clone())
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            match self.swarm.dial(opts) {
                Ok(()) => tracing::debug!(%peer, ?addresses, attempt, "dialing peer"),
                Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(error) => tracing::debug!(%peer, ?addresses, %error, "dial not started"),
            }
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(event) => self.on_gossipsub_event(event),
            BehaviourEvent::Sync(event) => {
                self.on_request_response_event(RequestProtocol::Sync, event)
            }
            BehaviourEvent::Blob(event) => {
                self.on_request_response_event(RequestProtocol::Blob, event)
            }
            BehaviourEvent::Identify(event) => {
                if let identify::Event::Received { peer_id, info, .. } = event {
                    tracing::debug!(
                        peer = %peer_id,
                        agent = %info.agent_version,
                        protocol_version = %info.protocol_version,
                        "identified peer"
                    );
                }
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result,
            }) => {
                if let Err(failure) = result {
                    // Ping no longer closes connections itself; do it so a
                    // dead link is replaced by the redial loop.
                    tracing::warn!(%peer, %failure, "ping failed; closing the connection");
                    self.swarm.close_connection(connection);
                }
            }
            BehaviourEvent::Allowed(never) => match never {},
            BehaviourEvent::ConnectionLimits(never) => match never {},
        }
    }

    /// Decides whether a gossip message is delivered and relayed: it must be
    /// on a known topic, within the configured cap and authored by an allowed
    /// peer. Returns its topic and author when it is.
    fn check_gossip(
        &self,
        via: PeerId,
        message: &gossipsub::Message,
    ) -> Option<(GossipTopic, PeerId)> {
        let Some(topic) = GossipTopic::from_hash(&message.topic) else {
            tracing::warn!(%via, topic = %message.topic, "gossip on an unknown topic rejected");
            return None;
        };
        // The author is claimed by the allowed peer that relayed the message.
        let Some(from) = message.source else {
            tracing::warn!(%via, %topic, "gossip without an author rejected");
            return None;
        };
        if !self.allowed.contains(&from) {
            tracing::warn!(author = %from, %via, %topic, "gossip authored outside the allowed set rejected");
            return None;
        }
        let Some(payload) = decode_gossip(&message.data) else {
            tracing::warn!(author = %from, %via, %topic, "malformed gossip envelope rejected");
            return None;
        };
        let max = self.limits.gossip_message_bytes_max;
        if payload.len() > max {
            tracing::warn!(
                author = %from,
                %via,
                %topic,
                bytes = payload.len(),
                max,
                "gossip over the configured cap rejected"
            );
            return None;
        }
        Some((topic, from))
    }

    fn on_gossipsub_event(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let verdict = self.check_gossip(propagation_source, &message);
                let acceptance = match verdict {
                    None => gossipsub::MessageAcceptance::Reject,
                    // Delivered here, not relayed (see the module notes).
                    Some((topic, from))
                        if self.members.contains(&from)
                            && (topic == GossipTopic::Tx
                                || message.data.len() > MEMBER_RELAY_BYTES_MAX) =>
                    {
                        gossipsub::MessageAcceptance::Ignore
                    }
                    Some(_) => gossipsub::MessageAcceptance::Accept,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                let Some((topic, from)) = verdict else {
                    return;
                };
                // `check_gossip` accepted the envelope, so this succeeds.
                let bytes = decode_gossip(&message.data)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                let length = bytes.len();
                match self
                    .events
                    .try_send(NetworkEvent::Gossip { topic, from, bytes })
                {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.gossip_dropped.record(|dropped| {
                            tracing::warn!(
                                %topic,
                                author = %from,
                                bytes = length,
                                dropped,
                                "event channel full; gossip dropped"
                            );
                        });
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        tracing::debug!(%topic, "no event receiver; gossip dropped");
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic, .. } => {
                tracing::debug!(peer = %peer_id, %topic, "peer subscribed");
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                tracing::debug!(peer = %peer_id, %topic, "peer unsubscribed");
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                tracing::warn!(peer = %peer_id, "peer does not speak gossipsub");
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                tracing::warn!(peer = %peer_id, ?failed_messages, "peer is slow; gossip to it was dropped");
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    fn on_request_response_event(
        &mut self,
        protocol: RequestProtocol,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_inbound_request(peer, protocol, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, reply)) = self.outbound.remove(&(protocol, request_id)) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %protocol, %error, "outbound request failed");
                if let Some((_, reply)) = self.outbound.remove(&(protocol, request_id)) {
                    let error = match error {
                        OutboundFailure::Timeout => NetworkError::RequestTimeout { peer, protocol },
                        other => NetworkError::RequestFailed {
                            peer,
                            protocol,
                            reason: other.to_string(),
                        },
                    };
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                InboundFailure::Io(error) => {
                    tracing::warn!(%peer, %protocol, %error, "inbound request refused");
                }
                other => {
                    tracing::debug!(%peer, %protocol, error = %other, "inbound request failed");
                }
            },
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_inbound_request(
        &mut self,
        peer: PeerId,
        protocol: RequestProtocol,
        bytes: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        // Dropping `channel` in the refusals below fails the request on the
        // caller's side, which may retry elsewhere.
        if self.inbound_replies.len() >= INBOUND_REQUESTS_PENDING_MAX {
            tracing::warn!(%peer, %protocol, "too many unanswered inbound requests; request dropped");
            return;
        }
        let (reply, answer) = oneshot::channel();
        let length = bytes.len();
        let event = NetworkEvent::InboundRequest {
            peer,
            protocol,
            bytes,
            reply,
        };
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.requests_dropped.record(|dropped| {
                    tracing::warn!(
                        %peer,
                        %protocol,
                        bytes = length,
                        dropped,
                        "event channel full; inbound request dropped"
                    );
                });
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(%peer, %protocol, "no event receiver; inbound request dropped");
                return;
            }
        }
        let timeout = Duration::from_millis(self.limits.request_timeout_ms);
        self.inbound_replies.push(
            async move {
                let answer = match tokio::time::timeout(timeout, answer).await {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(_)) => Err("the node dropped the reply"),
                    Err(_) => Err("the node did not answer in time"),
                };
                InboundReply {
                    peer,
                    protocol,
                    channel,
                    answer,
                }
            }
            .boxed(),
        );
    }
}

fn endpoint_address(endpoint: &ConnectedPoint) -> &Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address,
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    #[test]
    fn frame_round_trips() {
        let mut buffer = Cursor::new(Vec::new());
        block_on(write_frame(&mut buffer, b"hello", 16)).unwrap();
        assert_eq!(buffer.get_ref().len(), FRAME_LENGTH_PREFIX_BYTES + 5);
        buffer.set_position(0);
        assert_eq!(block_on(read_frame(&mut buffer, 16)).unwrap(), b"hello");
    }

    #[test]
    fn frame_over_the_cap_is_refused_before_reading_the_body() {
        let mut bytes = (1_000_000u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 8]);
        let error = block_on(read_frame(&mut Cursor::new(bytes), 1024)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn frame_over_the_cap_is_not_written() {
        let mut buffer = Cursor::new(Vec::new());
        let error = block_on(write_frame(&mut buffer, &[0u8; 17], 16)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(buffer.get_ref().is_empty());
    }

    #[test]
    fn truncated_frame_is_refused() {
        let mut bytes = 10u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"short");
        let error = block_on(read_frame(&mut Cursor::new(bytes), 1024)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        let error = block_on(read_frame(&mut Cursor::new(vec![0u8, 1]), 1024)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_reader() {
        // A small deterministic generator: enough to cover short, long,
        // truncated and oversized prefixes without a dev-dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2_000usize {
            let mut bytes = Vec::new();
            for _ in 0..(round % 64) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(state as u8);
            }
            let result = block_on(read_frame(&mut Cursor::new(bytes.clone()), 32));
            if let Ok(body) = result {
                assert!(body.len() <= 32);
                assert_eq!(&bytes[FRAME_LENGTH_PREFIX_BYTES..][..body.len()], &body[..]);
            }
        }
    }

    #[test]
    fn gossip_envelope_round_trips() {
        assert_eq!(
            decode_gossip(&encode_gossip(None, b"vote")),
            Some(&b"vote"[..])
        );
        assert_eq!(
            decode_gossip(&encode_gossip(Some(9), b"vote")),
            Some(&b"vote"[..])
        );
        assert_eq!(decode_gossip(&encode_gossip(None, b"")), Some(&b""[..]));
        assert_ne!(
            encode_gossip(Some(1), b"vote"),
            encode_gossip(Some(2), b"vote")
        );
    }

    #[test]
    fn malformed_gossip_envelopes_are_refused_without_a_panic() {
        assert_eq!(decode_gossip(&[]), None);
        assert_eq!(decode_gossip(&[GOSSIP_KIND_REBROADCAST, 1, 2, 3]), None);
        assert_eq!(decode_gossip(&[7, 1, 2, 3]), None);
        for length in 0..32 {
            for kind in 0..4u8 {
                let mut data = vec![kind];
                data.extend(std::iter::repeat_n(0xAB, length));
                let _ = decode_gossip(&data);
            }
        }
    }

    #[test]
    fn gossipsub_config_builds_for_small_and_large_memberships() {
        for peers in [0, 1, 2, 3, 4, 6, 9, 30, 100] {
            gossipsub_config(peers, &NetworkLimits::default()).unwrap();
        }
    }

    #[test]
    fn message_id_depends_on_topic_and_payload() {
        let message = |topic: &str, data: &[u8]| gossipsub::Message {
            source: None,
            data: data.to_vec(),
            sequence_number: Some(1),
            topic: gossipsub::TopicHash::from_raw(topic),
        };
        let a = content_message_id(&message(TOPIC_TX, b"x"));
        assert_eq!(a, content_message_id(&message(TOPIC_TX, b"x")));
        assert_ne!(a, content_message_id(&message(TOPIC_CONSENSUS, b"x")));
        assert_ne!(a, content_message_id(&message(TOPIC_TX, b"y")));
    }

    #[test]
    fn peer_ids_follow_from_ed25519_keys() {
        let secret = [7u8; 32];
        let key = node_key_from_ed25519_secret(secret).unwrap();
        let public = key.public().try_into_ed25519().unwrap().to_bytes();
        let peer = peer_id_from_ed25519_public(public).unwrap();
        assert_eq!(peer, key.public().to_peer_id());
        assert_eq!(ed25519_public_of_peer_id(&peer), Some(public));
        assert_eq!(
            node_key_from_ed25519_secret(secret)
                .unwrap()
                .public()
                .to_peer_id(),
            peer,
            "the same secret gives the same PeerId"
        );
        assert_ne!(generate_node_key().public().to_peer_id(), peer);
    }

    #[test]
    fn limits_are_validated() {
        assert!(validate_limits(&NetworkLimits::default()).is_ok());
        let zero_cap = NetworkLimits {
            request_bytes_max: 0,
            ..NetworkLimits::default()
        };
        assert!(validate_limits(&zero_cap).is_err());
        let inverted_backoff = NetworkLimits {
            redial_backoff_min_ms: 10,
            redial_backoff_max_ms: 5,
            ..NetworkLimits::default()
        };
        assert!(validate_limits(&inverted_backoff).is_err());
    }
}
