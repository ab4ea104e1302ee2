//! Keeping configured peers connected: redial with backoff and jitter.

use std::hash::BuildHasher;
use std::time::Duration;

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::DialError;
use tokio::time::Instant;

use super::swarm_task::Driver;
use super::*;

/// Redial bookkeeping for one configured peer.
pub(super) struct RedialState {
    /// Every configured address of the peer; a dial tries them all.
    pub(super) addresses: Vec<Multiaddr>,
    pub(super) backoff_ms: u64,
    pub(super) next_attempt: Instant,
    pub(super) established_at: Option<Instant>,
    pub(super) attempts: u64,
}

impl Driver {
    /// The last connection to `peer` closed: schedule a quick redial, unless
    /// the connection was short-lived, in which case keep backing off.
    pub(super) fn on_peer_lost(&mut self, peer: PeerId) {
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
    pub(super) fn redial(&mut self) {
        let now = Instant::now();
        let min = self.limits.redial_backoff_min_ms;
        let max = self.limits.redial_backoff_max_ms;
        let mut to_dial = Vec::new();
        for (peer, state) in self.redial.iter_mut() {
            if self.connections.is_up(peer) {
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
                // Not `DisconnectedAndNotDialing`: a connection being closed
                // still counts for the swarm until its close finishes, which
                // over a silently cut link can take long.
                .condition(PeerCondition::NotDialing)
                .build();
            match self.swarm.dial(opts) {
                Ok(()) => tracing::debug!(%peer, ?addresses, attempt, "dialing peer"),
                Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(error) => tracing::debug!(%peer, ?addresses, %error, "dial not started"),
            }
        }
    }
}
