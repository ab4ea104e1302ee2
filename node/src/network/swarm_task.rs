//! The task that owns the swarm: its loop, commands from handles, and
//! swarm events.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::PublishError;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::{ConnectionId, DialError, ListenError, SwarmEvent};
use libp2p::{allow_block_list, identify, ping, Swarm};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::behaviour::{Behaviour, BehaviourEvent};
use super::dial::RedialState;
use super::gossip::encode_gossip;
use super::liveness::Connections;
use super::requests::{InboundReply, OutboundReply};
use super::*;

/// Owns the swarm; runs in its own task.
pub(super) struct Driver {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) limits: NetworkLimits,
    pub(super) allowed: HashSet<PeerId>,
    /// The member nodes this node dials (from [`NetworkConfig::peers`]):
    /// their transaction batches are delivered but not relayed.
    pub(super) members: HashSet<PeerId>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) events: mpsc::Sender<NetworkEvent>,
    pub(super) connection_events_overflow: VecDeque<NetworkEvent>,
    pub(super) redial: HashMap<PeerId, RedialState>,
    pub(super) outbound: HashMap<(RequestProtocol, OutboundRequestId), (PeerId, OutboundReply)>,
    pub(super) inbound_replies: FuturesUnordered<BoxFuture<'static, InboundReply>>,
    pub(super) jitter: std::collections::hash_map::RandomState,
    pub(super) gossip_dropped: DropLog,
    pub(super) requests_dropped: DropLog,
    pub(super) refused_logged: DropLog,
    /// Last re-broadcast nonce; starts at a random value so that a restarted
    /// node does not repeat the ids of its previous run.
    pub(super) rebroadcast_nonce: u64,
    /// Which connections count (see `liveness.rs`): the node's own view,
    /// ahead of the swarm's when a close takes long.
    pub(super) connections: Connections,
}

/// Counts drops and logs at most once per [`DROP_LOG_INTERVAL_MS`], so that a
/// flood does not turn into a flood of log lines.
#[derive(Default)]
pub(super) struct DropLog {
    pub(super) dropped_since_log: u64,
    pub(super) last_log: Option<Instant>,
}

impl DropLog {
    /// Counts one drop; calls `log` with the number of drops since the last
    /// log line when it is time to log again.
    pub(super) fn record(&mut self, log: impl FnOnce(u64)) {
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
    pub(super) async fn listen(
        &mut self,
        addresses: &[Multiaddr],
    ) -> Result<Vec<Multiaddr>, NetworkError> {
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

    pub(super) async fn run(mut self) {
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
                _ = redial_tick.tick() => {
                    self.close_silent_connections();
                    self.reconnect_unsubscribed_members();
                    self.redial();
                }
            }
        }
        for (_, (_, reply)) in self.outbound.drain() {
            let _ = reply.send(Err(NetworkError::Stopped));
        }
        // Dropping the swarm closes every connection.
    }

    pub(super) fn on_command(&mut self, command: Command) {
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
                let _ = reply.send(self.connections.up_peers());
            }
            Command::SetMembers { members, reply } => {
                let _ = reply.send(self.set_members(members));
            }
            Command::Shutdown => {}
        }
    }

    pub(super) fn emit_connection_event(&mut self, event: NetworkEvent) {
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

    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                tracing::debug!(peer = %peer_id, address = %endpoint_address(&endpoint), "connection established");
                if let Some(state) = self.redial.get_mut(&peer_id) {
                    if state.established_at.is_none() {
                        state.established_at = Some(Instant::now());
                    }
                }
                let change = self
                    .connections
                    .established(peer_id, connection_id, Instant::now());
                if change.became_up {
                    tracing::info!(peer = %peer_id, "peer connected");
                    self.emit_connection_event(NetworkEvent::PeerConnected(peer_id));
                }
                if change.superseded {
                    // Newest connection wins (see `liveness.rs`): the peer
                    // dialed again, so it lost the older connection; close
                    // them all so that both sides' gossipsub start afresh
                    // on the next one.
                    tracing::warn!(
                        peer = %peer_id,
                        "peer connected again while an older connection still stood; \
                         closing every connection to it and redialing"
                    );
                    self.disconnect_peer(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                endpoint,
                cause,
                ..
            } => {
                tracing::debug!(
                    peer = %peer_id,
                    address = %endpoint_address(&endpoint),
                    cause = ?cause,
                    "connection closed"
                );
                if self.connections.closed(&peer_id, connection_id) {
                    self.peer_down(peer_id);
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
                    if !self.connections.is_up(&peer) {
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

    pub(super) fn on_behaviour_event(&mut self, event: BehaviourEvent) {
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
            }) => match result {
                Ok(_) => self
                    .connections
                    .ping_answered(&peer, connection, Instant::now()),
                Err(failure) => {
                    // Ping no longer closes connections itself; do it so a
                    // dead link is replaced by the redial loop.
                    tracing::warn!(%peer, %failure, "ping failed; closing the connection");
                    self.close_connection(peer, connection);
                }
            },
            BehaviourEvent::Allowed(never) => match never {},
            BehaviourEvent::ConnectionLimits(never) => match never {},
        }
    }

    /// Closes one connection; the peer stops counting at once when it was
    /// its last live one, even if the close itself takes long.
    pub(super) fn close_connection(&mut self, peer: PeerId, connection: ConnectionId) {
        self.swarm.close_connection(connection);
        if self.connections.closing(&peer, connection) {
            self.peer_down(peer);
        }
    }

    /// Closes every connection to `peer` and lets the redial loop connect
    /// it again.
    pub(super) fn disconnect_peer(&mut self, peer: PeerId) {
        let _ = self.swarm.disconnect_peer_id(peer);
        if self.connections.all_closing(&peer) {
            self.peer_down(peer);
        }
    }

    /// The peer's last live connection is gone or closing.
    fn peer_down(&mut self, peer: PeerId) {
        tracing::info!(%peer, "peer disconnected");
        self.on_peer_lost(peer);
        self.emit_connection_event(NetworkEvent::PeerDisconnected(peer));
    }

    /// Closes every live connection that answered no ping for
    /// `ping_interval_ms + ping_timeout_ms`: the link is silently cut.
    /// libp2p's ping would notice too, but only after a second failure and
    /// a stream negotiation with its own 10 s timeout.
    fn close_silent_connections(&mut self) {
        let silence =
            Duration::from_millis(self.limits.ping_interval_ms + self.limits.ping_timeout_ms);
        for (peer, connection) in self.connections.silent(Instant::now(), silence) {
            tracing::warn!(
                %peer,
                silence_ms = silence.as_millis() as u64,
                "no ping answered on a connection; closing it"
            );
            self.close_connection(peer, connection);
        }
    }

    /// gossipsub sends its subscriptions only on the first connection to a
    /// peer. A member that has been up for [`SUBSCRIPTIONS_WAIT_MS`] and
    /// whose subscription to the consensus topic never arrived still held
    /// an old connection to this node when it accepted the new one, and
    /// will never send them: this node would publish nothing to it.
    /// Reconnecting makes it send them.
    /// Makes `members` the allowed set and the dial list (see
    /// [`NetworkHandle::set_members`]).
    fn set_members(&mut self, members: Members) -> MembersChanged {
        let local = *self.swarm.local_peer_id();
        let mut allowed = members.allowed;
        allowed.remove(&local);
        let mut removed: Vec<PeerId> = self.allowed.difference(&allowed).copied().collect();
        let mut added: Vec<PeerId> = allowed.difference(&self.allowed).copied().collect();
        removed.sort();
        added.sort();
        for peer in &removed {
            let behaviour = self.swarm.behaviour_mut();
            // Closes every connection of the peer and refuses new ones.
            behaviour.allowed.disallow_peer(*peer);
            behaviour.gossipsub.remove_explicit_peer(peer);
            self.redial.remove(peer);
            self.members.remove(peer);
            let _ = self.swarm.disconnect_peer_id(*peer);
            tracing::info!(%peer, "peer is no longer a member of the chain; its connections are closed");
        }
        for peer in &added {
            let behaviour = self.swarm.behaviour_mut();
            behaviour.allowed.allow_peer(*peer);
            behaviour.gossipsub.add_explicit_peer(peer);
            tracing::info!(%peer, "peer is a member of the chain from now on");
        }
        self.allowed = allowed;
        let now = Instant::now();
        for (peer, address) in members.dial {
            if peer == local || !self.allowed.contains(&peer) {
                continue;
            }
            self.members.insert(peer);
            self.swarm.add_peer_address(peer, address.clone());
            let state = self.redial.entry(peer).or_insert_with(|| RedialState {
                addresses: Vec::new(),
                backoff_ms: self.limits.redial_backoff_min_ms,
                next_attempt: now,
                established_at: None,
                attempts: 0,
            });
            if !state.addresses.contains(&address) {
                state.addresses.push(address);
            }
        }
        MembersChanged { removed, added }
    }

    fn reconnect_unsubscribed_members(&mut self) {
        let now = Instant::now();
        let wait = Duration::from_millis(SUBSCRIPTIONS_WAIT_MS);
        let consensus = GossipTopic::Consensus.ident().hash();
        let subscribed: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&consensus))
            .map(|(peer, _)| *peer)
            .collect();
        let silent: Vec<PeerId> = self
            .members
            .iter()
            .filter(|peer| !subscribed.contains(peer))
            .filter(|peer| {
                self.connections
                    .up_since(peer)
                    .is_some_and(|since| now.duration_since(since) > wait)
            })
            .copied()
            .collect();
        for peer in silent {
            tracing::warn!(
                %peer,
                wait_ms = SUBSCRIPTIONS_WAIT_MS,
                "connected member sent no gossip subscription; reconnecting it"
            );
            self.disconnect_peer(peer);
        }
    }
}

pub(super) fn endpoint_address(endpoint: &ConnectedPoint) -> &Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address,
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
    }
}
