//! Decoded committed records kept in memory in front of the store.
//!
//! Every transaction is checked several times on a node (on admission, in
//! the proposal or its validation, after each block for those still
//! waiting), and each check reads the signer's member record, department
//! and nonce. Reading and decoding them from sled each time cost more than
//! the signature check itself, so the store keeps the records it has read,
//! and the store's one writer, [`crate::store::Store::commit`], writes every
//! change through to this cache in the same critical section in which it
//! applies the batch.
//!
//! A reader that missed reads sled without holding the lock, then inserts
//! what it read only if no commit happened in between (the generation is
//! unchanged): otherwise it might put back a value the commit had just
//! replaced. Each map is bounded; a full map is emptied and refills from
//! what is read next.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::records::{Department, Document, Member, Parameters};
use crate::state::{ChainInfo, StateChanges};
use crate::types::{DepartmentId, DocumentId, Nonce, PublicKey};

/// Entries kept per kind of record before the map is emptied.
pub const READ_CACHE_ENTRIES_MAX: usize = 200_000;

/// Records read from, or written to, the committed state.
#[derive(Default)]
pub struct ReadCache {
    /// Bumped by every write; see the module documentation.
    generation: u64,
    pub chain: Option<ChainInfo>,
    pub parameters: Option<Parameters>,
    pub members: HashMap<PublicKey, Option<Member>>,
    pub departments: HashMap<DepartmentId, Option<Department>>,
    pub nonces: HashMap<PublicKey, Nonce>,
    pub documents: HashMap<DocumentId, Option<Document>>,
    /// The key of every enrolled member (members are never deleted), read
    /// once when the store opens: a key not in it is not a member, with no
    /// read of sled, which is what every enrolment asks of a new key.
    /// `None` until loaded, or after [`Self::invalidate`].
    pub member_keys: Option<HashSet<PublicKey>>,
}

/// Inserts into a bounded map, emptying it first when it is full.
pub fn insert_bounded<K: Eq + Hash, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= READ_CACHE_ENTRIES_MAX && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

impl ReadCache {
    /// The generation a reader notes before reading sled.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether nothing was written since `generation` was noted.
    pub fn unchanged_since(&self, generation: u64) -> bool {
        self.generation == generation
    }

    /// Forgets everything (after a write that bypasses [`Self::apply`]).
    pub fn invalidate(&mut self) {
        *self = ReadCache {
            generation: self.generation + 1,
            ..ReadCache::default()
        };
    }

    /// What is known of the member with `key` without reading sled:
    /// `Some(None)` if it is certainly not a member.
    pub fn member(&self, key: &PublicKey) -> Option<Option<Member>> {
        if let Some(found) = self.members.get(key) {
            return Some(found.clone());
        }
        match &self.member_keys {
            Some(keys) if !keys.contains(key) => Some(None),
            _ => None,
        }
    }

    /// Writes a committed block's changes through.
    pub fn apply(&mut self, changes: &StateChanges) {
        self.generation += 1;
        self.chain = Some(changes.chain.clone());
        if let Some(parameters) = &changes.parameters {
            self.parameters = Some(parameters.clone());
        }
        for (id, department) in &changes.departments {
            insert_bounded(&mut self.departments, id.clone(), department.clone());
        }
        for (key, member) in &changes.members {
            insert_bounded(&mut self.members, *key, Some(member.clone()));
            if let Some(keys) = &mut self.member_keys {
                keys.insert(*key);
            }
        }
        for (key, nonce) in &changes.nonces {
            insert_bounded(&mut self.nonces, *key, *nonce);
        }
        for (id, document) in &changes.documents {
            insert_bounded(&mut self.documents, id.clone(), Some(document.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_is_emptied_before_a_new_key_goes_in() {
        let mut map = HashMap::new();
        for index in 0..READ_CACHE_ENTRIES_MAX as u64 {
            insert_bounded(&mut map, index, ());
        }
        // An existing key does not empty it.
        insert_bounded(&mut map, 0, ());
        assert_eq!(map.len(), READ_CACHE_ENTRIES_MAX);
        insert_bounded(&mut map, u64::MAX, ());
        assert_eq!(map.len(), 1);
        assert!(map.contains_key(&u64::MAX));
    }

    #[test]
    fn a_key_outside_the_loaded_member_keys_is_no_member() {
        let mut cache = ReadCache::default();
        let stranger = PublicKey([9; 32]);
        assert_eq!(cache.member(&stranger), None, "unknown before loading");
        cache.member_keys = Some(HashSet::new());
        assert_eq!(cache.member(&stranger), Some(None));
        cache.invalidate();
        assert_eq!(cache.member(&stranger), None, "unknown after invalidation");
    }

    #[test]
    fn every_write_moves_the_generation_on() {
        let mut cache = ReadCache::default();
        let noted = cache.generation();
        assert!(cache.unchanged_since(noted));
        cache.invalidate();
        assert!(!cache.unchanged_since(noted));
    }
}
