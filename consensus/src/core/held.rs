//! Proposals this node holds for the height being decided, so that a peer
//! that missed one can fetch it.
//!
//! Members do not relay each other's large gossip (proposals carry whole
//! blocks, and in a full mesh every relay is a duplicate). A member cut off
//! from the proposer still learns of the proposal from the votes of those
//! that have it, and asks them for it ([`Effect::FetchProposal`]). The core
//! holds its own proposals and every proposal its state machine accepted
//! for validation (signed by the round's proposer), for the current height
//! only, and the shell answers peers from [`NodeCore::held_proposal`].
//!
//! [`Effect::FetchProposal`]: super::Effect::FetchProposal
//! [`NodeCore::held_proposal`]: super::NodeCore::held_proposal

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Proposals held at most, across the rounds of one height. One per round
/// is honest; the oldest round goes first when the table is full.
pub const HELD_PROPOSALS_MAX: usize = 8;

/// Which proposal: height, round and the proposed block's hash. Also what
/// a peer asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProposalKey {
    pub height: u64,
    pub round: u64,
    pub hash: [u8; 32],
}

/// The held proposals, as the signed consensus messages' bytes.
#[derive(Debug, Default)]
pub struct HeldProposals {
    height: u64,
    held: Vec<(ProposalKey, Arc<Vec<u8>>)>,
}

impl HeldProposals {
    /// Holds `bytes` as the proposal `key`. A later height drops what was
    /// held for earlier ones; an earlier height than the one held is
    /// ignored.
    pub fn hold(&mut self, key: ProposalKey, bytes: Arc<Vec<u8>>) {
        if key.height < self.height {
            return;
        }
        if key.height > self.height {
            self.height = key.height;
            self.held.clear();
        }
        if self.holds(&key) {
            return;
        }
        if self.held.len() >= HELD_PROPOSALS_MAX {
            if let Some(oldest) = self
                .held
                .iter()
                .enumerate()
                .min_by_key(|(_, (held, _))| held.round)
                .map(|(index, _)| index)
            {
                self.held.swap_remove(oldest);
            }
        }
        self.held.push((key, bytes));
    }

    /// The bytes of proposal `key`, if held.
    pub fn get(&self, key: &ProposalKey) -> Option<Arc<Vec<u8>>> {
        self.held
            .iter()
            .find(|(held, _)| held == key)
            .map(|(_, bytes)| bytes.clone())
    }

    /// Whether proposal `key` is held.
    pub fn holds(&self, key: &ProposalKey) -> bool {
        self.get(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(height: u64, round: u64, tag: u8) -> ProposalKey {
        ProposalKey {
            height,
            round,
            hash: [tag; 32],
        }
    }

    fn bytes(tag: u8) -> Arc<Vec<u8>> {
        Arc::new(vec![tag; 4])
    }

    #[test]
    fn a_held_proposal_is_found_by_height_round_and_hash() {
        let mut held = HeldProposals::default();
        held.hold(key(5, 0, 1), bytes(1));
        assert_eq!(held.get(&key(5, 0, 1)), Some(bytes(1)));
        assert!(held.get(&key(5, 0, 2)).is_none());
        assert!(held.get(&key(5, 1, 1)).is_none());
        assert!(held.get(&key(6, 0, 1)).is_none());
    }

    #[test]
    fn a_later_height_drops_the_proposals_of_earlier_ones() {
        let mut held = HeldProposals::default();
        held.hold(key(5, 0, 1), bytes(1));
        held.hold(key(6, 0, 2), bytes(2));
        assert!(!held.holds(&key(5, 0, 1)));
        assert!(held.holds(&key(6, 0, 2)));
        // A late proposal of an earlier height is not taken back in.
        held.hold(key(5, 1, 3), bytes(3));
        assert!(!held.holds(&key(5, 1, 3)));
    }

    #[test]
    fn a_full_table_gives_up_its_oldest_round() {
        let mut held = HeldProposals::default();
        for round in 0..HELD_PROPOSALS_MAX as u64 {
            held.hold(key(1, round + 1, round as u8), bytes(0));
        }
        held.hold(key(1, 100, 0xEE), bytes(0));
        assert!(held.holds(&key(1, 100, 0xEE)));
        assert!(!held.holds(&key(1, 1, 0)));
        assert!(held.holds(&key(1, 2, 1)));
        assert_eq!(held.held.len(), HELD_PROPOSALS_MAX);
    }
}
