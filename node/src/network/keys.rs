//! The node key and PeerIds: ed25519 only, so that a department's PeerId
//! follows from its public key.

use super::{Keypair, NetworkError, PeerId};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
