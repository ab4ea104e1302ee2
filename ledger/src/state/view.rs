//! What the rules read (the committed state, through [`StateView`]) and
//! what they write ([`StateChanges`], gathered in an [`Overlay`]).

use super::*;

/// The chain's position: what the next block must extend.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct ChainInfo {
    pub chain_id: String,
    pub genesis_hash: Hash32,
    /// Last committed height (0 before the first block).
    pub height: Height,
    /// Hash of the last block (the genesis hash at height 0).
    pub last_block_hash: BlockHash,
    /// Time of the last block (the genesis time at height 0).
    pub last_time: Timestamp,
    /// Validator set in force at `height` (signs the last block's
    /// certificate; the genesis set at height 0).
    pub last_validator_set: ValidatorSet,
    /// Validator set in force at `height + 1`.
    pub validator_set: ValidatorSet,
}

/// A failure to read state (only the store can fail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state could not be read: {0}")]
pub struct ViewError(pub String);

/// Read access to the archive state as of the last committed block.
pub trait StateView {
    fn chain(&self) -> Result<ChainInfo, ViewError>;
    fn parameters(&self) -> Result<Parameters, ViewError>;
    fn department(&self, id: &DepartmentId) -> Result<Option<Department>, ViewError>;
    /// Every department, sorted by id (bounded by governance, not by users).
    fn departments(&self) -> Result<Vec<Department>, ViewError>;
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, ViewError>;
    /// Last nonce used by `signer` (0 if it never signed).
    fn nonce(&self, signer: &PublicKey) -> Result<Nonce, ViewError>;
    fn document(&self, id: &DocumentId) -> Result<Option<Document>, ViewError>;
    fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, ViewError>;
    /// The validator set in force at `height` (`None` before height 1);
    /// the history is never pruned.
    fn validator_set_at(&self, height: Height) -> Result<Option<ValidatorSet>, ViewError>;
    /// The evidence recorded against `validator` at `height`, if any.
    fn evidence(
        &self,
        validator: &PublicKey,
        height: Height,
    ) -> Result<Option<EvidenceRecord>, ViewError>;
}

/// Everything one block (or the genesis) changes, written by the store in
/// one atomic batch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StateChanges {
    pub chain: ChainInfo,
    pub parameters: Option<Parameters>,
    /// `None` removes the department.
    pub departments: BTreeMap<DepartmentId, Option<Department>>,
    pub members: BTreeMap<PublicKey, Member>,
    pub nonces: BTreeMap<PublicKey, Nonce>,
    pub documents: BTreeMap<DocumentId, Document>,
    pub proposals: BTreeMap<ProposalId, Proposal>,
    /// New document events, in order.
    pub events: Vec<DocumentEvent>,
    /// Where each of the block's transactions sits.
    pub tx_locations: Vec<(TxId, TxLocation)>,
    /// Set when the validator set in force from `chain.height + 1` differs
    /// from the one before.
    pub validator_set_changed: bool,
    /// Equivocation evidence recorded, by validator and height of the votes.
    pub evidence: BTreeMap<(PublicKey, Height), EvidenceRecord>,
}

impl StateChanges {
    pub(super) fn empty(chain: ChainInfo) -> Self {
        StateChanges {
            chain,
            parameters: None,
            departments: BTreeMap::new(),
            members: BTreeMap::new(),
            nonces: BTreeMap::new(),
            documents: BTreeMap::new(),
            proposals: BTreeMap::new(),
            events: Vec::new(),
            tx_locations: Vec::new(),
            validator_set_changed: false,
            evidence: BTreeMap::new(),
        }
    }
}

/// A view with pending changes layered on top: reads see the changes first.
pub struct Overlay<'a, V: StateView + ?Sized> {
    pub(super) base: &'a V,
    pub(super) changes: StateChanges,
}

impl<'a, V: StateView + ?Sized> Overlay<'a, V> {
    /// Start from `base` with no changes.
    pub fn new(base: &'a V) -> Result<Self, ViewError> {
        let chain = base.chain()?;
        Ok(Overlay {
            base,
            changes: StateChanges::empty(chain),
        })
    }

    /// Continue from `changes` made earlier on top of this same `base`
    /// (taken back with [`Overlay::into_changes`]): a holder that keeps
    /// pending changes across calls owns them, not a borrow of the base.
    pub fn resume(base: &'a V, changes: StateChanges) -> Self {
        Overlay { base, changes }
    }

    /// The changes made so far.
    pub fn into_changes(self) -> StateChanges {
        self.changes
    }

    /// The changes made so far, by reference.
    pub fn changes(&self) -> &StateChanges {
        &self.changes
    }

    /// Apply one transaction at `(height, time)`; on refusal nothing changes.
    pub fn apply_transaction(
        &mut self,
        tx: &SignedTransaction,
        index: u32,
        height: Height,
        time: Timestamp,
        signature_checked: bool,
    ) -> Result<(), TxRefusal> {
        let checks = if signature_checked {
            Signatures::AlreadyVerified
        } else {
            Signatures::Verify
        };
        self.apply_identified(tx, tx.id(), index, height, time, checks)
    }

    /// [`Overlay::apply_transaction`] with the transaction id already known
    /// and a choice of what is left to check besides the state rules.
    pub fn apply_identified(
        &mut self,
        tx: &SignedTransaction,
        tx_id: TxId,
        index: u32,
        height: Height,
        time: Timestamp,
        checks: Signatures,
    ) -> Result<(), TxRefusal> {
        let ctx = Context {
            height,
            time,
            tx_id,
            keys_checked: checks == Signatures::AlreadyVerifiedWithKeys,
        };
        // `apply_tx` checks every rule before its first write, so a refused
        // transaction leaves the overlay untouched without a copy.
        apply_tx(self, tx, &ctx, checks != Signatures::Verify)?;
        self.changes
            .tx_locations
            .push((ctx.tx_id, TxLocation { height, index }));
        Ok(())
    }
}

impl<V: StateView + ?Sized> StateView for Overlay<'_, V> {
    fn chain(&self) -> Result<ChainInfo, ViewError> {
        Ok(self.changes.chain.clone())
    }
    fn parameters(&self) -> Result<Parameters, ViewError> {
        match &self.changes.parameters {
            Some(p) => Ok(p.clone()),
            None => self.base.parameters(),
        }
    }
    fn department(&self, id: &DepartmentId) -> Result<Option<Department>, ViewError> {
        match self.changes.departments.get(id) {
            Some(d) => Ok(d.clone()),
            None => self.base.department(id),
        }
    }
    fn departments(&self) -> Result<Vec<Department>, ViewError> {
        let mut all: BTreeMap<DepartmentId, Department> = self
            .base
            .departments()?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        for (id, d) in &self.changes.departments {
            match d {
                Some(d) => {
                    all.insert(id.clone(), d.clone());
                }
                None => {
                    all.remove(id);
                }
            }
        }
        Ok(all.into_values().collect())
    }
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, ViewError> {
        match self.changes.members.get(key) {
            Some(m) => Ok(Some(m.clone())),
            None => self.base.member(key),
        }
    }
    fn nonce(&self, signer: &PublicKey) -> Result<Nonce, ViewError> {
        match self.changes.nonces.get(signer) {
            Some(n) => Ok(*n),
            None => self.base.nonce(signer),
        }
    }
    fn document(&self, id: &DocumentId) -> Result<Option<Document>, ViewError> {
        match self.changes.documents.get(id) {
            Some(d) => Ok(Some(d.clone())),
            None => self.base.document(id),
        }
    }
    fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, ViewError> {
        match self.changes.proposals.get(id) {
            Some(p) => Ok(Some(p.clone())),
            None => self.base.proposal(id),
        }
    }
    fn validator_set_at(&self, height: Height) -> Result<Option<ValidatorSet>, ViewError> {
        // A change made by this block takes effect after it: every height
        // up to the block's own reads the base's history.
        self.base.validator_set_at(height)
    }
    fn evidence(
        &self,
        validator: &PublicKey,
        height: Height,
    ) -> Result<Option<EvidenceRecord>, ViewError> {
        match self.changes.evidence.get(&(*validator, height)) {
            Some(e) => Ok(Some(e.clone())),
            None => self.base.evidence(validator, height),
        }
    }
}
