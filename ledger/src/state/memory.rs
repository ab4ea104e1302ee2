//! The genesis state, and the whole state in memory (verification and
//! tests) with its digest.

use super::*;

/// The state the genesis defines, as changes to an empty store.
pub fn genesis_changes(genesis: &Genesis) -> StateChanges {
    let set = genesis.validator_set();
    let genesis_hash = genesis.hash();
    let chain = ChainInfo {
        chain_id: genesis.chain_id.clone(),
        genesis_hash,
        height: Height(0),
        last_block_hash: BlockHash(genesis_hash.0),
        last_time: genesis.genesis_time,
        last_validator_set: set.clone(),
        validator_set: set,
    };
    let mut changes = StateChanges::empty(chain);
    changes.parameters = Some(genesis.parameters.clone());
    changes.validator_set_changed = true;
    for nd in &genesis.departments {
        changes.departments.insert(
            nd.id.clone(),
            Some(Department {
                id: nd.id.clone(),
                name: nd.name.clone(),
                keys: nd.keys.clone(),
                voting_power: nd.voting_power,
                since: Height(1),
                documents_held: 0,
            }),
        );
        for m in &nd.admins {
            changes.members.insert(
                m.key,
                Member {
                    key: m.key,
                    department: nd.id.clone(),
                    name: m.name.clone(),
                    roles: m.roles.clone(),
                    clearance: m.clearance,
                    status: MemberStatus::Active,
                    enrolled_at: Height(0),
                },
            );
        }
    }
    changes
}

/// The whole archive state in memory: used by verification and tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryState {
    pub chain: Option<ChainInfo>,
    pub parameters: Parameters,
    pub departments: BTreeMap<DepartmentId, Department>,
    pub members: BTreeMap<PublicKey, Member>,
    pub nonces: BTreeMap<PublicKey, Nonce>,
    pub documents: BTreeMap<DocumentId, Document>,
    pub proposals: BTreeMap<ProposalId, Proposal>,
    /// Events per document, in order.
    pub events: BTreeMap<DocumentId, Vec<DocumentEvent>>,
    pub tx_locations: BTreeMap<TxId, TxLocation>,
    /// Validator set history: the set in force from each height on.
    pub validator_sets: BTreeMap<Height, ValidatorSet>,
    /// Equivocation evidence, by validator and height of the votes.
    pub evidence: BTreeMap<(PublicKey, Height), EvidenceRecord>,
}

impl MemoryState {
    /// The state right after the genesis.
    pub fn from_genesis(genesis: &Genesis) -> Self {
        let mut state = MemoryState::default();
        state.apply(genesis_changes(genesis));
        state
    }

    /// Write changes.
    pub fn apply(&mut self, changes: StateChanges) {
        // Changes come from `apply_block` on this very state: one height on.
        debug_assert!(match &self.chain {
            Some(chain) => changes.chain.height == chain.height.next(),
            None => changes.chain.height == Height(0),
        });
        if let Some(p) = changes.parameters {
            self.parameters = p;
        }
        for (id, d) in changes.departments {
            match d {
                Some(d) => {
                    self.departments.insert(id, d);
                }
                None => {
                    self.departments.remove(&id);
                }
            }
        }
        self.members.extend(changes.members);
        self.nonces.extend(changes.nonces);
        self.documents.extend(changes.documents);
        self.proposals.extend(changes.proposals);
        for e in changes.events {
            self.events.entry(e.document.clone()).or_default().push(e);
        }
        self.tx_locations.extend(changes.tx_locations);
        self.evidence.extend(changes.evidence);
        if changes.validator_set_changed {
            self.validator_sets.insert(
                changes.chain.height.next(),
                changes.chain.validator_set.clone(),
            );
        }
        self.chain = Some(changes.chain);
    }

    /// Digest of the state, equal to the store's [`crate::store::Store::state_digest`]
    /// for the same state.
    pub fn digest(&self) -> Hash32 {
        let mut d = StateDigest::new();
        if let Some(chain) = &self.chain {
            d.entry(b"chain", &encoding::encode(chain));
        }
        d.entry(b"parameters", &encoding::encode(&self.parameters));
        for v in self.departments.values() {
            d.entry(b"department", &encoding::encode(v));
        }
        for v in self.members.values() {
            d.entry(b"member", &encoding::encode(v));
        }
        for (k, v) in &self.nonces {
            d.entry(b"nonce", &encoding::encode(&(k, v)));
        }
        for v in self.documents.values() {
            d.entry(b"document", &encoding::encode(v));
        }
        for v in self.proposals.values() {
            d.entry(b"proposal", &encoding::encode(v));
        }
        for events in self.events.values() {
            for e in events {
                d.entry(b"event", &encoding::encode(e));
            }
        }
        for (k, v) in &self.tx_locations {
            d.entry(b"tx", &encoding::encode(&(k, v)));
        }
        for (k, v) in &self.validator_sets {
            d.entry(b"validator-set", &encoding::encode(&(k, v)));
        }
        for v in self.evidence.values() {
            d.entry(b"evidence", &encoding::encode(v));
        }
        d.finish()
    }
}

/// Streaming digest over `(kind, value)` entries in a fixed order.
pub struct StateDigest(Sha256);

impl StateDigest {
    /// Start a digest.
    pub fn new() -> Self {
        let mut h = Sha256::new();
        h.update(encoding::tagged(tags::STATE, &[]));
        StateDigest(h)
    }
    /// Add one entry.
    pub fn entry(&mut self, kind: &[u8], value: &[u8]) {
        self.0.update((kind.len() as u64).to_be_bytes());
        self.0.update(kind);
        self.0.update((value.len() as u64).to_be_bytes());
        self.0.update(value);
    }
    /// The digest.
    pub fn finish(self) -> Hash32 {
        Hash32(self.0.finalize().into())
    }
}

impl Default for StateDigest {
    fn default() -> Self {
        Self::new()
    }
}

fn no_chain() -> ViewError {
    ViewError("state has no genesis".to_string())
}

impl StateView for MemoryState {
    fn chain(&self) -> Result<ChainInfo, ViewError> {
        self.chain.clone().ok_or_else(no_chain)
    }
    fn parameters(&self) -> Result<Parameters, ViewError> {
        Ok(self.parameters.clone())
    }
    fn department(&self, id: &DepartmentId) -> Result<Option<Department>, ViewError> {
        Ok(self.departments.get(id).cloned())
    }
    fn departments(&self) -> Result<Vec<Department>, ViewError> {
        Ok(self.departments.values().cloned().collect())
    }
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, ViewError> {
        Ok(self.members.get(key).cloned())
    }
    fn nonce(&self, signer: &PublicKey) -> Result<Nonce, ViewError> {
        Ok(self.nonces.get(signer).copied().unwrap_or_default())
    }
    fn document(&self, id: &DocumentId) -> Result<Option<Document>, ViewError> {
        Ok(self.documents.get(id).cloned())
    }
    fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, ViewError> {
        Ok(self.proposals.get(id).cloned())
    }
    fn validator_set_at(&self, height: Height) -> Result<Option<ValidatorSet>, ViewError> {
        Ok(self
            .validator_sets
            .range(..=height)
            .next_back()
            .map(|(_, set)| set.clone()))
    }
    fn evidence(
        &self,
        validator: &PublicKey,
        height: Height,
    ) -> Result<Option<EvidenceRecord>, ViewError> {
        Ok(self.evidence.get(&(*validator, height)).cloned())
    }
}
