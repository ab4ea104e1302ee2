//! The libp2p behaviours and their configuration: the allowed-set gate,
//! connection limits, gossipsub tuned for a handful of members,
//! request-response, identify and ping.

use std::collections::HashSet;
use std::time::Duration;

use libp2p::gossipsub::{self, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{allow_block_list, connection_limits, identify, ping, StreamProtocol};

use super::codec::FrameCodec;
use super::gossip::content_message_id;
use super::*;

pub(super) fn validate_limits(limits: &NetworkLimits) -> Result<(), NetworkError> {
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
pub(super) struct Behaviour {
    // The gates come first so that they refuse a connection before any other
    // behaviour sees it.
    pub(super) allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub(super) connection_limits: connection_limits::Behaviour,
    pub(super) gossipsub: gossipsub::Behaviour,
    pub(super) sync: request_response::Behaviour<FrameCodec>,
    pub(super) blob: request_response::Behaviour<FrameCodec>,
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
}

pub(super) fn build_behaviour(
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
pub(super) fn gossipsub_config(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossipsub_config_builds_for_small_and_large_memberships() {
        for peers in [0, 1, 2, 3, 4, 6, 9, 30, 100] {
            gossipsub_config(peers, &NetworkLimits::default()).unwrap();
        }
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
