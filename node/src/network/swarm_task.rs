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
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{allow_block_list, identify, ping, Swarm};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::behaviour::{Behaviour, BehaviourEvent};
use super::dial::RedialState;
use super::gossip::encode_gossip;
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
                _ = redial_tick.tick() => self.redial(),
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
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
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
}

pub(super) fn endpoint_address(endpoint: &ConnectedPoint) -> &Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address,
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
    }
}
