//! The ledger store, read-only: the handle every part of the node but the
//! application reads the committed state through. It offers the store's
//! reads and none of its writes, so that a signature holding it says the
//! function cannot write the ledger; only `app::LedgerApp`, owned by the
//! driver, holds the writable `Store`.

use custody_ledger::block::Block;
use custody_ledger::certificate::CommitCertificate;
use custody_ledger::evidence::EvidenceRecord;
use custody_ledger::records::{
    Department, Document, DocumentEvent, Member, Parameters, Proposal, ValidatorSet,
};
use custody_ledger::state::{ChainInfo, StateView, ViewError};
use custody_ledger::store::{Page, Store, StoreError, StoredTransaction};
use custody_ledger::types::{
    BlockHash, DepartmentId, DocumentId, Hash32, Height, Nonce, ProposalId, PublicKey, TxId,
};

/// The ledger store, read-only: it offers the store's reads and none of
/// its writes. (sled handles are shared, cheap clones.)
#[derive(Clone)]
pub struct StoreReader {
    store: Store,
}

impl StoreReader {
    pub fn new(store: Store) -> StoreReader {
        StoreReader { store }
    }

    /// What a citizen may see of the records tagged `tag`
    /// ([`custody_ledger::subject::citizen_view`]).
    pub fn citizen_view(
        &self,
        tag: &Hash32,
    ) -> Result<Vec<custody_ledger::subject::CitizenRecord>, StoreError> {
        custody_ledger::subject::citizen_view(&self.store, tag)
    }

    /// The flows of documents between departments, reading at most
    /// `events_read_max` events ([`custody_ledger::flows::flows_in_store`]).
    pub fn flows(
        &self,
        events_read_max: u64,
    ) -> Result<custody_ledger::flows::FlowsRead, StoreError> {
        custody_ledger::flows::flows_in_store(&self.store, events_read_max)
    }

    /// The genesis the store was initialised with.
    pub fn genesis(&self) -> Result<custody_ledger::Genesis, StoreError> {
        self.store.genesis()
    }

    pub fn chain_info(&self) -> Result<ChainInfo, StoreError> {
        self.store.chain_info()
    }

    pub fn latest_height(&self) -> Result<Height, StoreError> {
        self.store.latest_height()
    }

    pub fn parameters(&self) -> Result<Parameters, StoreError> {
        self.store.parameters()
    }

    pub fn raw_block(&self, height: Height) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.raw_block(height)
    }

    pub fn raw_certificate(&self, height: Height) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.raw_certificate(height)
    }

    pub fn block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        self.store.block(height)
    }

    pub fn height_of(&self, hash: &BlockHash) -> Result<Option<Height>, StoreError> {
        self.store.height_of(hash)
    }

    pub fn certificate(&self, height: Height) -> Result<Option<CommitCertificate>, StoreError> {
        self.store.certificate(height)
    }

    pub fn has_transaction(&self, id: &TxId) -> Result<bool, StoreError> {
        self.store.has_transaction(id)
    }

    pub fn transaction(&self, id: &TxId) -> Result<Option<StoredTransaction>, StoreError> {
        self.store.transaction(id)
    }

    pub fn document(&self, id: &DocumentId) -> Result<Option<Document>, StoreError> {
        self.store.document(id)
    }

    pub fn document_history(
        &self,
        id: &DocumentId,
        from: u64,
        limit: usize,
    ) -> Result<Page<DocumentEvent, u64>, StoreError> {
        self.store.document_history(id, from, limit)
    }

    /// Documents in id order, starting after `after`.
    pub fn documents(
        &self,
        after: Option<&DocumentId>,
        limit: usize,
    ) -> Result<Page<Document, DocumentId>, StoreError> {
        self.store.documents(after, limit)
    }

    /// Every ciphertext a committed transaction names
    /// (`Store::named_ciphertexts`).
    pub fn named_ciphertexts(
        &self,
    ) -> Result<std::collections::HashSet<custody_ledger::types::Hash32>, StoreError> {
        self.store.named_ciphertexts()
    }

    /// Every ciphertext committed transactions name, kept or disposed
    /// (`Store::ciphertext_names`).
    pub fn ciphertext_names(&self) -> Result<custody_ledger::store::CiphertextNames, StoreError> {
        self.store.ciphertext_names()
    }

    pub fn member(&self, key: &PublicKey) -> Result<Option<Member>, StoreError> {
        self.store.member(key)
    }

    pub fn department(&self, id: &DepartmentId) -> Result<Option<Department>, StoreError> {
        self.store.department(id)
    }

    pub fn departments(&self) -> Result<Vec<Department>, StoreError> {
        self.store.departments()
    }

    pub fn nonce(&self, signer: &PublicKey) -> Result<Nonce, StoreError> {
        self.store.nonce(signer)
    }

    pub fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, StoreError> {
        self.store.proposal(id)
    }

    /// Every governance proposal, executed or not, by id.
    pub fn proposals(&self) -> Result<Vec<Proposal>, StoreError> {
        self.store.proposals()
    }

    /// The equivocation evidence recorded against `validator` at `height`.
    pub fn evidence(
        &self,
        validator: &PublicKey,
        height: Height,
    ) -> Result<Option<EvidenceRecord>, StoreError> {
        self.store.evidence(validator, height)
    }

    /// Recorded equivocation evidence in (validator, height) order.
    pub fn evidence_page(
        &self,
        after: Option<(PublicKey, Height)>,
        limit: usize,
    ) -> Result<Page<EvidenceRecord, (PublicKey, Height)>, StoreError> {
        self.store.evidence_page(after, limit)
    }
}

/// The rules read the committed state through this (the mempool's
/// pending state sits on top of it).
impl StateView for StoreReader {
    fn chain(&self) -> Result<ChainInfo, ViewError> {
        StateView::chain(&self.store)
    }
    fn parameters(&self) -> Result<Parameters, ViewError> {
        StateView::parameters(&self.store)
    }
    fn department(&self, id: &DepartmentId) -> Result<Option<Department>, ViewError> {
        StateView::department(&self.store, id)
    }
    fn departments(&self) -> Result<Vec<Department>, ViewError> {
        StateView::departments(&self.store)
    }
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, ViewError> {
        StateView::member(&self.store, key)
    }
    fn nonce(&self, signer: &PublicKey) -> Result<Nonce, ViewError> {
        StateView::nonce(&self.store, signer)
    }
    fn document(&self, id: &DocumentId) -> Result<Option<Document>, ViewError> {
        StateView::document(&self.store, id)
    }
    fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, ViewError> {
        StateView::proposal(&self.store, id)
    }
    fn validator_set_at(&self, height: Height) -> Result<Option<ValidatorSet>, ViewError> {
        StateView::validator_set_at(&self.store, height)
    }
    fn evidence(
        &self,
        validator: &PublicKey,
        height: Height,
    ) -> Result<Option<EvidenceRecord>, ViewError> {
        StateView::evidence(&self.store, validator, height)
    }
}
