//! The gossip envelope (kind byte, optional re-broadcast nonce), content
//! message ids, and what happens to a gossip message when it arrives.

use libp2p::gossipsub;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::swarm_task::Driver;
use super::*;

/// Wraps a payload for the wire: a kind byte, then for a re-broadcast its
/// nonce, then the payload.
pub(super) fn encode_gossip(rebroadcast_nonce: Option<u64>, payload: &[u8]) -> Vec<u8> {
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
pub(super) fn decode_gossip(data: &[u8]) -> Option<&[u8]> {
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
pub(super) fn content_message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let topic = message.topic.as_str().as_bytes();
    let mut hasher = Sha256::new();
    hasher.update((topic.len() as u64).to_be_bytes());
    hasher.update(topic);
    hasher.update(&message.data);
    gossipsub::MessageId::new(&hasher.finalize())
}

impl Driver {
    /// Decides whether a gossip message is delivered and relayed: it must be
    /// on a known topic, within the configured cap and authored by an allowed
    /// peer. Returns its topic and author when it is.
    pub(super) fn check_gossip(
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

    pub(super) fn on_gossipsub_event(&mut self, event: gossipsub::Event) {
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
                match self.events.try_send(NetworkEvent::Gossip {
                    topic,
                    from,
                    via: propagation_source,
                    bytes,
                }) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_consensus::{BlockHash, Height, Message, Round, SignedMessage, Vote};
    use custody_ledger::genesis::CHAIN_ID_BYTES_MAX;

    use crate::network::{GOSSIP_NONCE_BYTES, MEMBER_RELAY_BYTES_MAX};

    #[test]
    fn every_vote_is_small_enough_to_be_relayed() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let chain_id = "c".repeat(CHAIN_ID_BYTES_MAX);
        let vote = Vote {
            height: Height(u64::MAX),
            round: Round(u64::MAX),
            block_hash: Some(BlockHash([0xFF; 32])),
        };
        for message in [Message::Prevote(vote), Message::Precommit(vote)] {
            let encoded = SignedMessage::sign(&chain_id, message, &key).encode();
            // The wire envelope of a re-broadcast: a kind byte and a nonce.
            let wire = 1 + GOSSIP_NONCE_BYTES + encoded.len();
            assert!(
                wire <= MEMBER_RELAY_BYTES_MAX,
                "a vote takes {wire} bytes on the wire"
            );
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
}
