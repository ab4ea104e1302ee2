//! The block decisions of `chain`: propose, judge and commit_certified, one
//! test per rule, and the property that a proposal is accepted by any view
//! of the same state.

mod common;

use common::World;
use custody_ledger::block::{Block, BlockTimeError};
use custody_ledger::certificate::CertificateError;
use custody_ledger::chain::{
    commit_certified, judge, propose, BlockLimits, Candidate, CommitError, Committed, Judged,
    Judgement, Origin, ProposalRefusal, ProposeError,
};
use custody_ledger::encoding;
use custody_ledger::records::{Department, Document, Member, Parameters, Proposal};
use custody_ledger::state::{
    ChainInfo, HeaderRefusal, MemoryState, Refusal, StateView, TxRefusal, ViewError,
};
use custody_ledger::store::Store;
use custody_ledger::testkit::{certify_with, Workload};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::*;
use proptest::prelude::*;

fn candidate(tx: &SignedTransaction) -> Candidate {
    Candidate {
        tx: tx.clone(),
        id: tx.id(),
        size_bytes: encoding::encoded_size(tx),
    }
}

fn limits() -> BlockLimits {
    BlockLimits::of(&Parameters::default())
}

/// A world at height 1 and the next block built from `txs`, with the
/// block's bytes.
fn proposal(txs: Vec<SignedTransaction>) -> (World, Block, Vec<u8>) {
    let w = World::new();
    let block = w.chain.build(txs);
    let bytes = block.to_bytes();
    (w, block, bytes)
}

/// Judge `bytes` as the proposal `(height, hash)` on `view` at the block's
/// own time, with no transaction known beforehand.
fn judge_at<V: StateView + ?Sized>(
    view: &V,
    height: Height,
    hash: BlockHash,
    bytes: &[u8],
    now: Timestamp,
) -> Result<Judged, Judgement> {
    judge(view, height, hash, bytes, now, |_| false)
}

fn refusal_of(result: Result<Judged, Judgement>) -> ProposalRefusal {
    match result {
        Err(Judgement::Refused(refusal)) => *refusal,
        Err(Judgement::Storage(error)) => panic!("expected a refusal, got a store error: {error}"),
        Ok(_) => panic!("expected a refusal, but the block was accepted"),
    }
}

fn register(w: &mut World, id: &str) -> SignedTransaction {
    let body = w.register_body(
        id,
        "civil-affairs",
        Classification::Internal,
        Retention::Years(10),
    );
    w.signer("ca-clerk").sign(body)
}

#[test]
fn judge_accepts_a_valid_block_and_names_the_transactions_it_checked() {
    let mut w = World::new();
    let a = register(&mut w, "doc-a");
    let b = register(&mut w, "doc-b");
    let block = w.chain.build(vec![a.clone(), b.clone()]);
    let known = a.id();
    let judged = judge(
        &w.chain.state,
        block.header.height,
        block.hash(),
        &block.to_bytes(),
        block.header.time,
        |id| *id == known,
    )
    .expect("a valid block is accepted");
    assert_eq!(judged.block, block);
    assert_eq!(judged.newly_checked_ids, vec![b.id()]);
    assert_eq!(judged.changes.chain.height, block.header.height);
}

#[test]
fn judge_refuses_an_undecodable_block() {
    let (w, block, _) = proposal(vec![]);
    let refusal = refusal_of(judge_at(
        &w.chain.state,
        block.header.height,
        block.hash(),
        b"not a block",
        block.header.time,
    ));
    assert!(
        matches!(refusal, ProposalRefusal::Undecodable(_)),
        "{refusal}"
    );
}

#[test]
fn judge_refuses_a_block_whose_hash_differs_from_the_proposal() {
    let (w, block, bytes) = proposal(vec![]);
    let refusal = refusal_of(judge_at(
        &w.chain.state,
        block.header.height,
        BlockHash([7; 32]),
        &bytes,
        block.header.time,
    ));
    assert_eq!(
        refusal,
        ProposalRefusal::HashDiffers {
            proposed: BlockHash([7; 32]),
            computed: block.hash()
        }
    );
}

#[test]
fn judge_refuses_a_block_whose_height_differs_from_the_proposal() {
    let (w, block, bytes) = proposal(vec![]);
    let refusal = refusal_of(judge_at(
        &w.chain.state,
        block.header.height.next(),
        block.hash(),
        &bytes,
        block.header.time,
    ));
    assert!(
        matches!(refusal, ProposalRefusal::HeightDiffers { .. }),
        "{refusal}"
    );
}

#[test]
fn judge_refuses_a_block_whose_parent_is_not_committed_and_says_the_node_is_behind() {
    let (w, block, bytes) = proposal(vec![]);
    // A node that has committed nothing yet: height 2 is two ahead of it.
    let behind = MemoryState::from_genesis(&w.chain.federation.genesis);
    let refusal = refusal_of(judge_at(
        &behind,
        block.header.height,
        block.hash(),
        &bytes,
        block.header.time,
    ));
    assert_eq!(
        refusal,
        ProposalRefusal::ParentNotCommitted {
            committed: Height(0),
            height: block.header.height
        }
    );
    assert!(refusal.node_is_behind());
}

#[test]
fn judge_refuses_a_block_whose_time_is_outside_the_skew_of_the_local_clock() {
    let (w, block, bytes) = proposal(vec![]);
    let skew_ms = Parameters::default().block_time_skew_ms;
    let local_now = Timestamp(block.header.time.0 + skew_ms + 1);
    let refusal = refusal_of(judge_at(
        &w.chain.state,
        block.header.height,
        block.hash(),
        &bytes,
        local_now,
    ));
    assert!(
        matches!(
            refusal,
            ProposalRefusal::BlockTimeRefused(BlockTimeError::OutsideSkew { .. })
        ),
        "{refusal}"
    );
}

#[test]
fn judge_refuses_a_block_whose_previous_certificate_is_badly_signed() {
    let (w, mut block, _) = proposal(vec![]);
    let certificate = block.last_commit.as_mut().expect("height 2 carries one");
    certificate.signatures[0].signature.0[0] ^= 1;
    // The block hash is the header's, which the signature bytes do not
    // change: only the signature check can catch this.
    let refusal = refusal_of(judge_at(
        &w.chain.state,
        block.header.height,
        block.hash(),
        &block.to_bytes(),
        block.header.time,
    ));
    assert!(
        matches!(
            refusal,
            ProposalRefusal::PreviousCertificateBadlySigned(CertificateError::BadSignature(_))
        ),
        "{refusal}"
    );
}

#[test]
fn judge_refuses_a_block_holding_a_badly_signed_transaction() {
    let mut w = World::new();
    let good = register(&mut w, "doc-a");
    let mut bad = register(&mut w, "doc-b");
    bad.signature.0[0] ^= 1;
    let block = w.chain.build(vec![good, bad.clone()]);
    let refusal = refusal_of(judge_at(
        &w.chain.state,
        block.header.height,
        block.hash(),
        &block.to_bytes(),
        block.header.time,
    ));
    assert_eq!(
        refusal,
        ProposalRefusal::BadlySignedTransaction {
            index: 1,
            tx_id: bad.id()
        }
    );
}

#[test]
fn judge_does_not_check_again_the_signature_of_a_transaction_this_node_checked() {
    // A transaction taken into the mempool was checked there; a proposal
    // holding it is not checked again (the same bytes have the same id).
    let mut w = World::new();
    let mut tx = register(&mut w, "doc-a");
    tx.signature.0[0] ^= 1;
    let block = w.chain.build(vec![tx.clone()]);
    let known = tx.id();
    let judged = judge(
        &w.chain.state,
        block.header.height,
        block.hash(),
        &block.to_bytes(),
        block.header.time,
        |id| *id == known,
    )
    .expect("no signature is checked twice");
    assert!(judged.newly_checked_ids.is_empty());
}

#[test]
fn judge_refuses_a_block_holding_a_transaction_that_carries_an_invalid_key() {
    let mut w = World::new();
    // The identity point: a valid encoding, but of small order.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let tx = w.signer("civil-affairs-admin").sign(TxBody::EnrollMember {
        member: PublicKey(weak),
        department: custody_ledger::testkit::department("civil-affairs"),
        name: "weak".to_string(),
        roles: vec![Role::Clerk],
        clearance: Classification::Internal,
    });
    let block = w.chain.build(vec![tx.clone()]);
    let refusal = refusal_of(judge_at(
        &w.chain.state,
        block.header.height,
        block.hash(),
        &block.to_bytes(),
        block.header.time,
    ));
    assert_eq!(
        refusal,
        ProposalRefusal::InvalidCarriedKey {
            index: 0,
            tx_id: tx.id(),
            reason: TxRefusal::WeakKey(PublicKey(weak))
        }
    );
}

#[test]
fn judge_refuses_a_block_the_rules_refuse() {
    let mut w = World::new();
    let signer = w.signer("ca-clerk").clone();
    let body = w.register_body(
        "doc-a",
        "civil-affairs",
        Classification::Internal,
        Retention::Years(10),
    );
    let tx = signer.sign_with_nonce(body, signer.next_nonce + 1);
    let block = w.chain.build(vec![tx]);
    let refusal = refusal_of(judge_at(
        &w.chain.state,
        block.header.height,
        block.hash(),
        &block.to_bytes(),
        block.header.time,
    ));
    assert!(
        matches!(
            refusal,
            ProposalRefusal::BlockRefused(Refusal::Transaction {
                reason: TxRefusal::WrongNonce { .. },
                ..
            })
        ),
        "{refusal}"
    );
}

/// A view whose chain position reads, but whose records do not: a disk
/// that fails in the middle of judging.
struct FailingView<'a>(&'a MemoryState);

fn failure() -> ViewError {
    ViewError("input/output error".to_string())
}

impl StateView for FailingView<'_> {
    fn chain(&self) -> Result<ChainInfo, ViewError> {
        self.0.chain()
    }
    fn parameters(&self) -> Result<Parameters, ViewError> {
        self.0.parameters()
    }
    fn department(&self, _: &DepartmentId) -> Result<Option<Department>, ViewError> {
        Err(failure())
    }
    fn departments(&self) -> Result<Vec<Department>, ViewError> {
        Err(failure())
    }
    fn member(&self, _: &PublicKey) -> Result<Option<Member>, ViewError> {
        Err(failure())
    }
    fn nonce(&self, _: &PublicKey) -> Result<Nonce, ViewError> {
        Err(failure())
    }
    fn document(&self, _: &DocumentId) -> Result<Option<Document>, ViewError> {
        Err(failure())
    }
    fn proposal(&self, _: &ProposalId) -> Result<Option<Proposal>, ViewError> {
        Err(failure())
    }
    fn validator_set_at(
        &self,
        _: Height,
    ) -> Result<Option<custody_ledger::records::ValidatorSet>, ViewError> {
        Err(failure())
    }
    fn evidence(
        &self,
        _: &PublicKey,
        _: Height,
    ) -> Result<Option<custody_ledger::evidence::EvidenceRecord>, ViewError> {
        Err(failure())
    }
}

#[test]
fn judge_reports_a_store_failure_as_an_error_not_a_refusal() {
    let mut w = World::new();
    let tx = register(&mut w, "doc-a");
    let block = w.chain.build(vec![tx]);
    let result = judge_at(
        &FailingView(&w.chain.state),
        block.header.height,
        block.hash(),
        &block.to_bytes(),
        block.header.time,
    );
    match result {
        Err(Judgement::Storage(error)) => assert_eq!(error, failure()),
        Err(Judgement::Refused(refusal)) => panic!("a store failure became a refusal: {refusal}"),
        Ok(_) => panic!("a store failure was accepted"),
    }
}

#[test]
fn propose_drops_a_transaction_that_no_longer_applies() {
    let mut w = World::new();
    let signer = w.signer("ca-clerk").clone();
    let first = signer.sign_with_nonce(
        w.register_body(
            "doc-a",
            "civil-affairs",
            Classification::Internal,
            Retention::Years(10),
        ),
        signer.next_nonce,
    );
    // Each applies on committed state; after the first, the second's nonce
    // is taken.
    let second = signer.sign_with_nonce(
        w.register_body(
            "doc-b",
            "civil-affairs",
            Classification::Internal,
            Retention::Years(10),
        ),
        signer.next_nonce,
    );
    let state = &w.chain.state;
    let height = state.chain().unwrap().height.next();
    let proposed = propose(
        state,
        height,
        vec![candidate(&first), candidate(&second)],
        w.time(),
        w.chain.federation.genesis.departments[0].keys.validator_key,
        w.chain.last_certificate.clone(),
        limits(),
    )
    .expect("a block is proposed");
    assert_eq!(proposed.block.transactions, vec![first]);
    assert_eq!(proposed.dropped.len(), 1);
    assert_eq!(proposed.dropped[0].0, second.id());
    assert!(
        matches!(proposed.dropped[0].1, TxRefusal::WrongNonce { .. }),
        "{}",
        proposed.dropped[0].1
    );
    assert_eq!(proposed.bytes, proposed.block.to_bytes());
    assert_eq!(proposed.hash, proposed.block.hash());
}

#[test]
fn propose_keeps_to_the_block_limits() {
    let mut w = World::new();
    let txs: Vec<_> = (0..3)
        .map(|i| register(&mut w, &format!("doc-{i}")))
        .collect();
    let state = &w.chain.state;
    let limits = BlockLimits {
        txs_max: 2,
        ..limits()
    };
    let proposed = propose(
        state,
        state.chain().unwrap().height.next(),
        txs.iter().map(candidate).collect(),
        w.time(),
        w.chain.federation.genesis.departments[0].keys.validator_key,
        w.chain.last_certificate.clone(),
        limits,
    )
    .expect("a block is proposed");
    assert_eq!(proposed.block.transactions, txs[..2].to_vec());
    assert!(
        proposed.dropped.is_empty(),
        "the third waits; it is not dropped"
    );
}

#[test]
fn propose_for_a_height_whose_parent_is_not_committed_says_the_node_is_behind() {
    let w = World::new();
    let state = &w.chain.state;
    let height = state.chain().unwrap().height.next().next();
    let error = propose(
        state,
        height,
        vec![],
        w.time(),
        w.chain.federation.genesis.departments[0].keys.validator_key,
        w.chain.last_certificate.clone(),
        limits(),
    )
    .expect_err("no block for a later height");
    assert!(error.node_is_behind(), "{error}");
}

#[test]
fn propose_takes_a_block_time_after_the_parent_when_the_clock_is_behind() {
    let w = World::new();
    let state = &w.chain.state;
    let parent = state.chain().unwrap().last_time;
    let proposed = propose(
        state,
        state.chain().unwrap().height.next(),
        vec![],
        Timestamp(parent.0 - 5_000),
        w.chain.federation.genesis.departments[0].keys.validator_key,
        w.chain.last_certificate.clone(),
        limits(),
    )
    .expect("a block is proposed");
    assert_eq!(proposed.block.header.time, Timestamp(parent.0 + 1));
}

/// A store holding the workload's chain, committed through
/// `commit_certified` as blocks from a peer would be.
fn store_of(w: &Workload) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
    for (block, certificate) in &w.chain.blocks {
        let committed = commit_certified(
            &store,
            block,
            &block.to_bytes(),
            certificate,
            Origin::Synced,
        );
        assert!(matches!(committed, Ok(Committed::Stored(_))));
    }
    (dir, store)
}

#[test]
fn commit_certified_refuses_a_certificate_below_two_thirds() {
    let mut w = Workload::new(4, 3);
    w.step(5).unwrap();
    let (block, _) = w.chain.blocks[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
    let chain_id = w.chain.federation.genesis.chain_id.clone();
    let validators = &w.chain.federation.validators;
    // Two of four is not more than 2/3.
    let short = certify_with(&validators[..2], &chain_id, &block, Round(0));
    let result = commit_certified(&store, &block, &block.to_bytes(), &short, Origin::Synced);
    assert!(
        matches!(
            result,
            Err(CommitError::Certificate(
                CertificateError::InsufficientPower { .. }
            ))
        ),
        "{result:?}"
    );
    assert!(!result.unwrap_err().is_local());
    assert_eq!(store.latest_height().unwrap(), Height(0));
    // Three of four is.
    let enough = certify_with(&validators[..3], &chain_id, &block, Round(0));
    let result = commit_certified(&store, &block, &block.to_bytes(), &enough, Origin::Synced);
    assert!(matches!(result, Ok(Committed::Stored(_))), "{result:?}");
    assert_eq!(store.latest_height().unwrap(), Height(1));
}

#[test]
fn commit_certified_refuses_a_synced_certificate_badly_signed() {
    let mut w = Workload::new(4, 3);
    w.step(5).unwrap();
    let (block, mut certificate) = w.chain.blocks[0].clone();
    certificate.signatures[0].signature.0[0] ^= 1;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
    let result = commit_certified(
        &store,
        &block,
        &block.to_bytes(),
        &certificate,
        Origin::Synced,
    );
    assert!(
        matches!(
            result,
            Err(CommitError::Certificate(CertificateError::BadSignature(_)))
        ),
        "{result:?}"
    );
    assert_eq!(store.latest_height().unwrap(), Height(0));
}

#[test]
fn commit_certified_refuses_a_block_that_does_not_follow_the_committed_chain() {
    let mut w = Workload::new(4, 3);
    w.step(5).unwrap();
    w.step(5).unwrap();
    let (block, certificate) = w.chain.blocks[1].clone();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
    let result = commit_certified(
        &store,
        &block,
        &block.to_bytes(),
        &certificate,
        Origin::Synced,
    );
    assert!(
        matches!(
            result,
            Err(CommitError::NotNext {
                committed: Height(0),
                found: Height(2)
            })
        ),
        "{result:?}"
    );
}

#[test]
fn commit_certified_refuses_a_certified_block_conflicting_with_the_committed_one() {
    let mut w = Workload::new(4, 3);
    w.step(5).unwrap();
    let (_dir, store) = store_of(&w);
    // Another block for height 1, certified by every validator.
    let other = {
        let fresh = Workload::new(4, 3);
        let mut block = fresh.chain.blocks[0].0.clone();
        block.header.time = Timestamp(block.header.time.0 + 1);
        block
    };
    let certificate = w.chain.federation.certify(&other, Round(1));
    let result = commit_certified(
        &store,
        &other,
        &other.to_bytes(),
        &certificate,
        Origin::Synced,
    );
    assert!(
        matches!(result, Err(CommitError::ConflictsWithCommitted { .. })),
        "{result:?}"
    );
}

#[test]
fn commit_certified_commits_a_decided_block_with_the_changes_found_when_judging_it() {
    let mut w = Workload::new(4, 5);
    w.step(10).unwrap();
    let (_dir, store) = store_of(&w);
    let block = w.step(10).unwrap();
    let (_, certificate) = w.chain.blocks.last().cloned().unwrap();
    let bytes = block.to_bytes();
    let judged = judge(
        &store,
        block.header.height,
        block.hash(),
        &bytes,
        block.header.time,
        |_| false,
    )
    .expect("the block is accepted");
    let committed = commit_certified(
        &store,
        &judged.block,
        &bytes,
        &certificate,
        Origin::Decided {
            judged: Some(judged.changes),
        },
    );
    assert!(
        matches!(committed, Ok(Committed::Stored(_))),
        "{committed:?}"
    );
    assert_eq!(store.state_digest().unwrap(), w.chain.state.digest());
    assert_eq!(store.raw_block(block.header.height).unwrap(), Some(bytes));
}

#[test]
fn commit_certified_refuses_a_decided_block_the_rules_refuse() {
    let mut w = World::new();
    let signer = w.signer("ca-clerk").clone();
    let body = w.register_body(
        "doc-a",
        "civil-affairs",
        Classification::Internal,
        Retention::Years(10),
    );
    let bad = signer.sign_with_nonce(body, signer.next_nonce + 1);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
    for (block, certificate) in &w.chain.blocks {
        let committed = commit_certified(
            &store,
            block,
            &block.to_bytes(),
            certificate,
            Origin::Synced,
        );
        assert!(matches!(committed, Ok(Committed::Stored(_))));
    }
    let block = w.chain.build(vec![bad]);
    let certificate = w.chain.federation.certify(&block, Round(0));
    let result = commit_certified(
        &store,
        &block,
        &block.to_bytes(),
        &certificate,
        Origin::Decided { judged: None },
    );
    assert!(
        matches!(
            result,
            Err(CommitError::Refused(Refusal::Transaction { .. }))
        ),
        "{result:?}"
    );
}

#[test]
fn block_header_refusal_is_named_in_a_judged_refusal_code() {
    // Codes name the check, not the reason inside it: a header refusal
    // carried in a block refusal keeps its own code one level down.
    let refusal = ProposalRefusal::BlockRefused(Refusal::Header(HeaderRefusal::TxRootMismatch));
    assert_eq!(refusal.code(), "block_refused");
    let ProposalRefusal::BlockRefused(inner) = &refusal else {
        unreachable!()
    };
    assert_eq!(inner.code(), "header");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// What one validator proposes, any other validator holding the same
    /// committed state accepts, with the same changes: here the proposer
    /// reads an in-memory state and the voter a sled store.
    #[test]
    fn a_proposal_is_accepted_by_another_view_of_the_same_state(
        seed in 0u64..1_000,
        blocks_before in 0usize..3,
        count in 0usize..40,
        duplicate in proptest::option::of(0usize..40),
    ) {
        let mut w = Workload::new(4, seed);
        for _ in 0..blocks_before {
            w.step(10).unwrap();
        }
        let (_dir, store) = store_of(&w);
        let mut txs = w.next_transactions(count);
        // The same transaction twice: the second no longer applies.
        if let Some(index) = duplicate.filter(|index| *index < txs.len()) {
            let again = txs[index].clone();
            txs.push(again);
        }
        let state = &w.chain.state;
        let chain = state.chain().unwrap();
        let proposed = propose(
            state,
            chain.height.next(),
            txs.iter().map(candidate).collect(),
            w.chain.next_time(),
            w.chain.federation.genesis.departments[1].keys.validator_key,
            w.chain.last_certificate.clone(),
            limits(),
        ).unwrap();
        prop_assert_eq!(proposed.block.transactions.len() + proposed.dropped.len(), txs.len());
        let judged = judge(
            &store,
            proposed.block.header.height,
            proposed.hash,
            &proposed.bytes,
            proposed.block.header.time,
            |_| false,
        );
        let judged = match judged {
            Ok(judged) => judged,
            Err(error) => return Err(TestCaseError::fail(format!("refused: {error}"))),
        };
        prop_assert_eq!(&judged.changes, &proposed.changes);
        prop_assert_eq!(judged.newly_checked_ids, proposed.block.tx_ids());
    }
}

/// One value of every variant of each refusal enum.
fn every_tx_refusal() -> Vec<TxRefusal> {
    let key = PublicKey([3; 32]);
    let dept = custody_ledger::testkit::department("civil-affairs");
    let doc = DocumentId::new("doc-a").unwrap();
    let time = Timestamp(1);
    let hash = Hash32([1; 32]);
    let event = EventHash([2; 32]);
    vec![
        TxRefusal::UnsupportedFormatVersion(2),
        TxRefusal::WrongChainId {
            expected: "a".into(),
            found: "b".into(),
        },
        TxRefusal::BadSignature,
        TxRefusal::WrongNonce {
            expected: Nonce(1),
            found: Nonce(2),
        },
        TxRefusal::UnknownSigner(key),
        TxRefusal::SignerRevoked(key),
        TxRefusal::SignerDepartmentRemoved(dept.clone()),
        TxRefusal::MissingRole {
            needed: Role::Admin,
        },
        TxRefusal::NeitherClerkNorAuditor,
        TxRefusal::WrongDepartment {
            signer: dept.clone(),
            needed: dept.clone(),
        },
        TxRefusal::ClearanceTooLow {
            clearance: Classification::Public,
            classification: Classification::Secret,
        },
        TxRefusal::TextTooLong {
            field: "title",
            max: 1,
        },
        TxRefusal::EmptyField("title"),
        TxRefusal::InvalidRoles,
        TxRefusal::WeakKey(key),
        TxRefusal::UnknownDepartment(dept.clone()),
        TxRefusal::UnknownMember(key),
        TxRefusal::MemberAlreadyEnrolled(key),
        TxRefusal::MemberRevoked(key),
        TxRefusal::DepartmentExists(dept.clone()),
        TxRefusal::ValidatorKeyInUse(key),
        TxRefusal::ZeroVotingPower,
        TxRefusal::NoAdmin,
        TxRefusal::DepartmentHoldsDocuments {
            department: dept.clone(),
            count: 1,
        },
        TxRefusal::LastDepartment,
        TxRefusal::BadParameter("max_block_txs"),
        TxRefusal::UnknownProposal(ProposalId([4; 32])),
        TxRefusal::ProposalAlreadyExecuted(ProposalId([4; 32])),
        TxRefusal::AlreadyApproved(dept.clone()),
        TxRefusal::CreatedInFuture {
            created: time,
            block_time: time,
        },
        TxRefusal::DocumentAlreadyRegistered(doc.clone()),
        TxRefusal::UnknownDocument(doc.clone()),
        TxRefusal::StalePreviousEvent {
            named: event,
            latest: event,
        },
        TxRefusal::DocumentDisposed(doc.clone()),
        TxRefusal::DocumentInTransfer(doc.clone()),
        TxRefusal::NotCustodian {
            signer: dept.clone(),
            custodian: dept.clone(),
        },
        TxRefusal::OfferToSelf,
        TxRefusal::NoPendingOffer(doc.clone()),
        TxRefusal::NotOfferRecipient {
            to: dept.clone(),
            signer: dept.clone(),
        },
        TxRefusal::OfferExpired {
            expired_at: time,
            block_time: time,
        },
        TxRefusal::ExpiryNotInFuture {
            expires_at: time,
            block_time: time,
        },
        TxRefusal::FixityMismatch {
            checked: hash,
            recorded: hash,
        },
        TxRefusal::GrantToCustodian,
        TxRefusal::TooManyGrants(64),
        TxRefusal::NoSuchGrant(dept.clone()),
        TxRefusal::NoAccessRight(dept),
        TxRefusal::CiphertextMismatch {
            named: hash,
            current: hash,
        },
        TxRefusal::WrappedKeyInvalid { max: 512 },
        TxRefusal::RetentionPermanent,
        TxRefusal::RetentionNotElapsed {
            until: time,
            block_time: time,
        },
        TxRefusal::Storage(failure()),
    ]
}

fn every_header_refusal() -> Vec<HeaderRefusal> {
    let hash = Hash32([1; 32]);
    let block = BlockHash([2; 32]);
    vec![
        HeaderRefusal::UnsupportedFormatVersion(2),
        HeaderRefusal::WrongChainId {
            expected: "a".into(),
            found: "b".into(),
        },
        HeaderRefusal::WrongHeight {
            expected: Height(1),
            found: Height(2),
        },
        HeaderRefusal::WrongPreviousHash {
            expected: block,
            found: block,
        },
        HeaderRefusal::TimeNotAfterParent {
            time: Timestamp(1),
            parent: Timestamp(1),
        },
        HeaderRefusal::TooManyTransactions { count: 2, max: 1 },
        HeaderRefusal::TooLarge { size: 2, max: 1 },
        HeaderRefusal::TxRootMismatch,
        HeaderRefusal::ValidatorSetMismatch {
            expected: hash,
            found: hash,
        },
        HeaderRefusal::ProposerNotValidator(PublicKey([3; 32])),
        HeaderRefusal::UnexpectedLastCommit,
        HeaderRefusal::MissingLastCommit,
        HeaderRefusal::LastCommitHashMismatch,
        HeaderRefusal::LastCommitInvalid(CertificateError::NotSortedOrDuplicate(PublicKey(
            [3; 32],
        ))),
    ]
}

fn every_refusal() -> Vec<Refusal> {
    vec![
        Refusal::Header(HeaderRefusal::TxRootMismatch),
        Refusal::Transaction {
            index: 0,
            tx_id: TxId([5; 32]),
            reason: TxRefusal::BadSignature,
        },
        Refusal::Storage(failure()),
    ]
}

fn every_proposal_refusal() -> Vec<ProposalRefusal> {
    vec![
        ProposalRefusal::Undecodable(encoding::DecodeError::NotCanonical),
        ProposalRefusal::HashDiffers {
            proposed: BlockHash([1; 32]),
            computed: BlockHash([2; 32]),
        },
        ProposalRefusal::HeightDiffers {
            proposed: Height(1),
            found: Height(2),
        },
        ProposalRefusal::ParentNotCommitted {
            committed: Height(0),
            height: Height(2),
        },
        ProposalRefusal::BlockTimeRefused(BlockTimeError::NotAfterParent {
            time: Timestamp(1),
            parent: Timestamp(1),
        }),
        ProposalRefusal::PreviousCertificateBadlySigned(CertificateError::BadSignature(PublicKey(
            [3; 32],
        ))),
        ProposalRefusal::BadlySignedTransaction {
            index: 0,
            tx_id: TxId([5; 32]),
        },
        ProposalRefusal::InvalidCarriedKey {
            index: 0,
            tx_id: TxId([5; 32]),
            reason: TxRefusal::WeakKey(PublicKey([3; 32])),
        },
        ProposalRefusal::BlockRefused(Refusal::Header(HeaderRefusal::TxRootMismatch)),
    ]
}

/// The code the API derived from `Debug` output before codes were
/// explicit: the variant name in snake_case.
fn debug_derived_code(debug: &str) -> String {
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut code = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if index > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

fn assert_distinct_snake_case(enum_name: &str, codes: &[&'static str]) {
    let mut seen = std::collections::BTreeSet::new();
    for code in codes {
        let snake = !code.is_empty()
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && !code.ends_with('_')
            && !code.contains("__")
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        assert!(snake, "{enum_name} code `{code}` is not snake_case");
        assert!(
            seen.insert(*code),
            "{enum_name} code `{code}` is used twice"
        );
    }
}

#[test]
fn refusal_codes_are_distinct_and_snake_case() {
    let tx: Vec<_> = every_tx_refusal().iter().map(TxRefusal::code).collect();
    let header: Vec<_> = every_header_refusal()
        .iter()
        .map(HeaderRefusal::code)
        .collect();
    let block: Vec<_> = every_refusal().iter().map(Refusal::code).collect();
    let proposal: Vec<_> = every_proposal_refusal()
        .iter()
        .map(ProposalRefusal::code)
        .collect();
    assert_distinct_snake_case("TxRefusal", &tx);
    assert_distinct_snake_case("HeaderRefusal", &header);
    assert_distinct_snake_case("Refusal", &block);
    assert_distinct_snake_case("ProposalRefusal", &proposal);
    // Every variant is listed above (the enums' variant counts).
    assert_eq!(tx.len(), 51);
    assert_eq!(header.len(), 14);
    assert_eq!(block.len(), 3);
    assert_eq!(proposal.len(), 9);
}

#[test]
fn refusal_codes_are_the_ones_clients_already_match_on() {
    for refusal in every_tx_refusal() {
        assert_eq!(refusal.code(), debug_derived_code(&format!("{refusal:?}")));
    }
    for refusal in every_header_refusal() {
        assert_eq!(refusal.code(), debug_derived_code(&format!("{refusal:?}")));
    }
    for refusal in every_refusal() {
        assert_eq!(refusal.code(), debug_derived_code(&format!("{refusal:?}")));
    }
    for refusal in every_proposal_refusal() {
        assert_eq!(refusal.code(), debug_derived_code(&format!("{refusal:?}")));
    }
}

#[test]
fn only_a_store_failure_is_a_local_commit_failure() {
    let refused = CommitError::Refused(Refusal::Header(HeaderRefusal::TxRootMismatch));
    assert!(!refused.is_local());
    assert!(CommitError::Storage(failure()).is_local());
}

#[test]
fn a_node_that_already_committed_the_height_is_not_behind() {
    let error = ProposeError::HeightNotNext {
        committed: Height(3),
        height: Height(3),
    };
    assert!(!error.node_is_behind());
}
