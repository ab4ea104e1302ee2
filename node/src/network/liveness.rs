//! Which connections are alive, kept by the node rather than read from the
//! swarm.
//!
//! The swarm counts a connection as established until its close has
//! finished, and closing a connection over a link that silently drops
//! packets can take as long as TCP's retransmissions (tens of seconds):
//! the close has to write into a send buffer the peer no longer drains.
//! Meanwhile the peer's new process dials in, and for gossipsub that new
//! connection is a second one to a known peer: it does not send its
//! subscriptions on it, and it shares one send queue between the dead
//! connection and the new one. The restarted peer then never learns that
//! this node is subscribed, and publishes nothing to it.
//!
//! So the node keeps its own table and its own rules:
//! - a connection with no ping answered for `ping_interval_ms +
//!   ping_timeout_ms` is closed ([`Connections::silent`]) and stops counting
//!   at once, whether or not its close finishes soon;
//! - a peer is up while it has a connection that is not closing, and only
//!   up peers are reported connected, redialed as lost, or asked for blocks;
//! - newest connection wins: a new connection to a peer that still holds an
//!   older live one (not a simultaneous dial, which is
//!   [`CONNECTIONS_SIMULTANEOUS_MS`] apart at most) means the peer lost the
//!   older one, so every connection to the peer is closed and redialed, and
//!   gossipsub starts afresh on both sides ([`Established::superseded`]).

use std::collections::HashMap;
use std::time::Duration;

use libp2p::swarm::ConnectionId;
use libp2p::PeerId;
use tokio::time::Instant;

/// Two connections to one peer established at most this far apart are a
/// simultaneous dial (both sides dialing at once), not a replacement: both
/// are kept. A peer dials only when it has no connection to us, so a
/// second connection arriving later means the first one is dead on its
/// side.
pub const CONNECTIONS_SIMULTANEOUS_MS: u64 = 2_000;

/// One connection to a peer.
#[derive(Debug, Clone)]
struct Link {
    id: ConnectionId,
    established_at: Instant,
    /// Establishment or the last answered ping, whichever is later.
    answered_at: Instant,
    /// The node asked the swarm to close it; it no longer counts.
    closing: bool,
}

/// What a new connection changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Established {
    /// The peer had no live connection before: it is up now.
    pub(super) became_up: bool,
    /// The peer still held an older live connection: every connection to
    /// it (the new one too) must be closed so that it reconnects afresh.
    pub(super) superseded: bool,
}

/// Every connection to every peer, as the node sees them.
#[derive(Debug, Default)]
pub(super) struct Connections {
    by_peer: HashMap<PeerId, Vec<Link>>,
}

impl Connections {
    /// Whether `peer` has a connection that is not closing.
    pub(super) fn is_up(&self, peer: &PeerId) -> bool {
        self.by_peer
            .get(peer)
            .is_some_and(|links| links.iter().any(|link| !link.closing))
    }

    /// Every peer that is up.
    pub(super) fn up_peers(&self) -> Vec<PeerId> {
        self.by_peer
            .iter()
            .filter(|(_, links)| links.iter().any(|link| !link.closing))
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// When the newest live connection to `peer` was established.
    pub(super) fn up_since(&self, peer: &PeerId) -> Option<Instant> {
        self.by_peer
            .get(peer)?
            .iter()
            .filter(|link| !link.closing)
            .map(|link| link.established_at)
            .max()
    }

    /// Records a new connection and says what it changes.
    pub(super) fn established(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        now: Instant,
    ) -> Established {
        let links = self.by_peer.entry(peer).or_default();
        let simultaneous = Duration::from_millis(CONNECTIONS_SIMULTANEOUS_MS);
        let live_before = links.iter().filter(|link| !link.closing).count();
        let superseded = links
            .iter()
            .any(|link| !link.closing && now.duration_since(link.established_at) > simultaneous);
        links.push(Link {
            id,
            established_at: now,
            answered_at: now,
            closing: false,
        });
        Established {
            became_up: live_before == 0,
            superseded,
        }
    }

    /// A ping over connection `id` was answered.
    pub(super) fn ping_answered(&mut self, peer: &PeerId, id: ConnectionId, now: Instant) {
        if let Some(link) = self
            .by_peer
            .get_mut(peer)
            .and_then(|links| links.iter_mut().find(|link| link.id == id))
        {
            link.answered_at = link.answered_at.max(now);
        }
    }

    /// Live connections with no ping answered for longer than `silence`.
    pub(super) fn silent(&self, now: Instant, silence: Duration) -> Vec<(PeerId, ConnectionId)> {
        self.by_peer
            .iter()
            .flat_map(|(peer, links)| {
                links
                    .iter()
                    .filter(move |link| {
                        !link.closing && now.duration_since(link.answered_at) > silence
                    })
                    .map(move |link| (*peer, link.id))
            })
            .collect()
    }

    /// Marks connection `id` as closing. Returns whether this took the
    /// peer's last live connection (the peer went down).
    pub(super) fn closing(&mut self, peer: &PeerId, id: ConnectionId) -> bool {
        let was_up = self.is_up(peer);
        if let Some(link) = self
            .by_peer
            .get_mut(peer)
            .and_then(|links| links.iter_mut().find(|link| link.id == id))
        {
            link.closing = true;
        }
        was_up && !self.is_up(peer)
    }

    /// Marks every connection to `peer` as closing. Returns whether the
    /// peer was up.
    pub(super) fn all_closing(&mut self, peer: &PeerId) -> bool {
        let was_up = self.is_up(peer);
        if let Some(links) = self.by_peer.get_mut(peer) {
            for link in links {
                link.closing = true;
            }
        }
        was_up
    }

    /// Forgets connection `id`, which the swarm has closed. Returns whether
    /// the peer went down with it (it was its last live connection).
    pub(super) fn closed(&mut self, peer: &PeerId, id: ConnectionId) -> bool {
        let was_up = self.is_up(peer);
        if let Some(links) = self.by_peer.get_mut(peer) {
            links.retain(|link| link.id != id);
            if links.is_empty() {
                self.by_peer.remove(peer);
            }
        }
        was_up && !self.is_up(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    #[test]
    fn first_connection_brings_a_peer_up() {
        let mut connections = Connections::default();
        let peer = peer();
        let now = Instant::now();
        let change = connections.established(peer, ConnectionId::new_unchecked(1), now);
        assert_eq!(
            change,
            Established {
                became_up: true,
                superseded: false
            }
        );
        assert!(connections.is_up(&peer));
        assert_eq!(connections.up_peers(), vec![peer]);
    }

    #[test]
    fn simultaneous_connections_are_both_kept() {
        let mut connections = Connections::default();
        let peer = peer();
        let now = Instant::now();
        connections.established(peer, ConnectionId::new_unchecked(1), now);
        let later = now + Duration::from_millis(CONNECTIONS_SIMULTANEOUS_MS);
        let change = connections.established(peer, ConnectionId::new_unchecked(2), later);
        assert_eq!(change, Established::default());
    }

    #[test]
    fn newest_connection_supersedes_an_older_live_one() {
        let mut connections = Connections::default();
        let peer = peer();
        let now = Instant::now();
        connections.established(peer, ConnectionId::new_unchecked(1), now);
        let later = now + Duration::from_millis(CONNECTIONS_SIMULTANEOUS_MS + 1);
        let change = connections.established(peer, ConnectionId::new_unchecked(2), later);
        assert!(change.superseded);
        assert!(!change.became_up);
    }

    #[test]
    fn connection_after_a_closing_one_is_not_a_replacement() {
        let mut connections = Connections::default();
        let peer = peer();
        let now = Instant::now();
        let old = ConnectionId::new_unchecked(1);
        connections.established(peer, old, now);
        assert!(connections.closing(&peer, old), "its only connection");
        assert!(!connections.is_up(&peer));
        let later = now + Duration::from_secs(30);
        let change = connections.established(peer, ConnectionId::new_unchecked(2), later);
        assert_eq!(
            change,
            Established {
                became_up: true,
                superseded: false
            }
        );
        assert!(!connections.closed(&peer, old), "the new one is live");
        assert!(connections.is_up(&peer));
    }

    #[test]
    fn connection_without_a_ping_answer_for_the_silence_bound_is_silent() {
        let mut connections = Connections::default();
        let peer = peer();
        let now = Instant::now();
        let id = ConnectionId::new_unchecked(1);
        connections.established(peer, id, now);
        let silence = Duration::from_millis(5_000);
        connections.ping_answered(&peer, id, now + Duration::from_millis(1_000));
        assert!(connections
            .silent(now + Duration::from_millis(6_000), silence)
            .is_empty());
        assert_eq!(
            connections.silent(now + Duration::from_millis(6_001), silence),
            vec![(peer, id)]
        );
        connections.closing(&peer, id);
        assert!(
            connections
                .silent(now + Duration::from_secs(60), silence)
                .is_empty(),
            "a closing connection is not closed twice"
        );
    }

    #[test]
    fn peer_is_down_once_its_last_live_connection_is_closing() {
        let mut connections = Connections::default();
        let peer = peer();
        let now = Instant::now();
        connections.established(peer, ConnectionId::new_unchecked(1), now);
        connections.established(peer, ConnectionId::new_unchecked(2), now);
        assert!(!connections.closing(&peer, ConnectionId::new_unchecked(1)));
        assert!(connections.closing(&peer, ConnectionId::new_unchecked(2)));
        assert!(connections.up_peers().is_empty());
        assert!(
            !connections.closed(&peer, ConnectionId::new_unchecked(2)),
            "it was down already"
        );
        assert!(!connections.all_closing(&peer));
    }
}
