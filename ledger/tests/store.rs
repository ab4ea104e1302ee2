//! The sled store: atomic commit, queries, paging, reopen, and chain
//! verification over stored bytes, including tamper detection.

use custody_ledger::block::Block;
use custody_ledger::certificate::CommitCertificate;
use custody_ledger::encoding;
use custody_ledger::state::{self, StateView};
use custody_ledger::store::{Store, StoreError, PAGE_LIMIT_MAX};
use custody_ledger::testkit::{Federation, Workload};
use custody_ledger::types::*;
use custody_ledger::verify::{self, Failure, MemorySource, VerifyOptions};

/// A workload chain of `blocks` blocks committed into a fresh store, each
/// block applied against the store itself.
fn stored_chain(blocks: usize, txs: usize) -> (tempfile::TempDir, Store, Workload) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Workload::new(4, 7);
    for _ in 0..blocks {
        w.step(txs).unwrap();
    }
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
    for (block, cert) in &w.chain.blocks {
        let changes = state::apply_block(&store, block).unwrap();
        store.commit(block, cert, &changes).unwrap();
    }
    (dir, store, w)
}

#[test]
fn store_holds_what_was_committed_and_matches_memory_state() {
    let (_dir, store, w) = stored_chain(12, 20);
    let height = w.chain.height();
    assert_eq!(store.latest_height().unwrap(), height);
    assert_eq!(store.state_digest().unwrap(), w.chain.state.digest());
    let (block, cert) = &w.chain.blocks[5];
    assert_eq!(
        store.block(block.header.height).unwrap().as_ref(),
        Some(block)
    );
    assert_eq!(
        store.block_by_hash(&block.hash()).unwrap().as_ref(),
        Some(block)
    );
    assert_eq!(
        store.certificate(block.header.height).unwrap().as_ref(),
        Some(cert)
    );
    let tx = &block.transactions[3];
    let found = store.transaction(&tx.id()).unwrap().unwrap();
    assert_eq!(&found.transaction, tx);
    assert_eq!(found.location.height, block.header.height);
    assert_eq!(found.location.index, 3);
    assert_eq!(found.block_hash, block.hash());
    // Merkle proof of that transaction against the header.
    let proof = block.inclusion_proof(3).unwrap();
    assert!(custody_ledger::merkle::verify_inclusion(
        &block.header.tx_root,
        &tx.id().0,
        &proof
    ));
}

#[test]
fn store_answers_member_department_document_and_validator_queries() {
    let (_dir, store, w) = stored_chain(6, 10);
    let departments = store.departments().unwrap();
    assert_eq!(departments.len(), 4);
    let dept = &departments[0];
    assert_eq!(store.department(&dept.id).unwrap().as_ref(), Some(dept));
    let admin = w.chain.federation.genesis.departments[0].admins[0].key;
    assert_eq!(store.member(&admin).unwrap().unwrap().key, admin);
    let (id, doc) = w.chain.state.documents.iter().next().unwrap();
    assert_eq!(store.document(id).unwrap().as_ref(), Some(doc));
    let set = w.chain.federation.genesis.validator_set();
    assert_eq!(
        store.validator_set_at(Height(1)).unwrap(),
        Some(set.clone())
    );
    assert_eq!(store.validator_set_at(Height(6)).unwrap(), Some(set));
    assert_eq!(store.genesis().unwrap(), w.chain.federation.genesis);
}

#[test]
fn document_history_is_paged_in_order() {
    let (_dir, store, w) = stored_chain(8, 15);
    let (id, doc) = w
        .chain
        .state
        .documents
        .iter()
        .max_by_key(|(_, d)| d.event_count)
        .unwrap();
    assert!(
        doc.event_count >= 4,
        "a document went through several stages"
    );
    let mut all = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store.document_history(id, cursor, 2).unwrap();
        assert!(page.items.len() <= 2);
        all.extend(page.items);
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(all, w.chain.state.events[id]);
    verify::verify_document_history(id, &all, &doc.latest_event).unwrap();
    let mut edited = all.clone();
    edited[1].time = Timestamp(edited[1].time.0 + 1);
    assert!(matches!(
        verify::verify_document_history(id, &edited, &doc.latest_event),
        Err(verify::HistoryError::BrokenLink { index: 2, .. })
    ));
    assert!(matches!(
        store.document_history(id, 0, PAGE_LIMIT_MAX + 1),
        Err(StoreError::BadPageLimit(_))
    ));
    // Documents and members are paged too.
    let first = store.documents(None, 3).unwrap();
    assert_eq!(first.items.len(), 3);
    let second = store.documents(first.next.as_ref(), 3).unwrap();
    assert!(second.items[0].id > first.items[2].id);
    let members = store.members(None, 5).unwrap();
    assert_eq!(members.items.len(), 5);
    let more = store.members(members.next.as_ref(), 5).unwrap();
    assert!(more.items[0].key > members.items[4].key);
}

#[test]
fn store_reopens_with_everything_and_refuses_another_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Workload::new(4, 3);
    {
        let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
        for _ in 0..3 {
            w.step(10).unwrap();
        }
        for (block, cert) in &w.chain.blocks {
            let changes = state::apply_block(&store, block).unwrap();
            store.commit(block, cert, &changes).unwrap();
        }
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.latest_height().unwrap(), w.chain.height());
    assert_eq!(store.state_digest().unwrap(), w.chain.state.digest());
    drop(store);
    let other = Federation::new(3, "another-chain").genesis;
    assert!(matches!(
        Store::open_or_init(dir.path(), &other),
        Err(StoreError::GenesisMismatch { .. })
    ));
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open(empty.path()),
        Err(StoreError::NotInitialized)
    ));
}

/// The engine (sled 0.34) releases its file lock from its own I/O threads
/// a moment after the last handle is dropped (sled issues #1234, #1289):
/// a store reopened at once in the same process, as
/// `store_reopens_with_everything_and_refuses_another_genesis` does twice,
/// raced that release and failed on a loaded machine. `Store::open` waits
/// up to 3 s for the lock; this reopens many times in a row.
#[test]
fn a_store_reopens_at_once_after_it_is_closed() {
    let (dir, store, w) = stored_chain(3, 5);
    drop(store);
    for _ in 0..20 {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.latest_height().unwrap(), w.chain.height());
    }
}

#[test]
fn a_store_whose_head_record_is_behind_its_blocks_is_refused() {
    let (dir, store, w) = stored_chain(4, 5);
    // Put back the head record of an earlier height: the blocks go on.
    let mut earlier = w.chain.state.chain.clone().unwrap();
    earlier.height = Height(2);
    earlier.last_block_hash = w.chain.blocks[1].0.hash();
    store
        .overwrite_raw_chain_info_for_tests(&encoding::encode(&earlier))
        .unwrap();
    drop(store);
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::HeadMismatch { .. })
    ));
}

#[test]
fn commit_refuses_a_block_that_does_not_extend_the_chain() {
    let (_dir, store, mut w) = stored_chain(2, 5);
    let block = w.step(5).unwrap();
    let cert = w.chain.blocks.last().unwrap().1.clone();
    let changes = state::apply_block(&store, &block).unwrap();
    // Certificate of another block.
    let wrong_cert = w.chain.blocks[0].1.clone();
    assert!(matches!(
        store.commit(&block, &wrong_cert, &changes),
        Err(StoreError::CertificateMismatch { .. })
    ));
    store.commit(&block, &cert, &changes).unwrap();
    // The same block again.
    assert!(matches!(
        store.commit(&block, &cert, &changes),
        Err(StoreError::NotNextBlock { .. })
    ));
}

#[test]
fn stored_chain_verifies_from_genesis_with_progress() {
    let (_dir, store, w) = stored_chain(10, 20);
    let mut seen = Vec::new();
    let report = verify::verify_store(
        &store,
        Some(&w.chain.federation.genesis),
        VerifyOptions::default(),
        |p| seen.push(p.height),
    )
    .unwrap();
    assert_eq!(report.height, w.chain.height());
    assert_eq!(seen, (1..=report.height.0).map(Height).collect::<Vec<_>>());
    assert_eq!(report.state_digest, w.chain.state.digest());
    // Also single-threaded with tiny chunks: same answer.
    let options = VerifyOptions {
        threads: 1,
        chunk_blocks: 1,
    };
    let again = verify::verify_store(&store, None, options, |_| {}).unwrap();
    assert_eq!(again, report);
}

#[test]
fn verification_follows_validator_set_changes() {
    use custody_ledger::records::{DepartmentKeys, NewDepartment, NewMember};
    use custody_ledger::testkit::{seed_key, Chain};
    use custody_ledger::tx::{GovernanceChange, TxBody};
    let mut chain = Chain::new(4);
    let v5 = seed_key("housing/validator");
    let nd = NewDepartment {
        id: DepartmentId::new("housing").unwrap(),
        name: "Housing".into(),
        keys: DepartmentKeys {
            validator_key: encoding::public_key_of(&v5),
            node_key: PublicKey([1; 32]),
            encryption_key: PublicKey([2; 32]),
        },
        voting_power: 2,
        admins: vec![NewMember {
            key: encoding::public_key_of(&seed_key("housing/admin")),
            name: "admin".into(),
            roles: vec![Role::Admin],
            clearance: Classification::Secret,
        }],
    };
    let propose = chain.admin("civil-affairs").sign(TxBody::ProposeChange {
        change: GovernanceChange::AddDepartment(nd),
    });
    let proposal = ProposalId(propose.id().0);
    let a1 = chain
        .admin("health")
        .sign(TxBody::ApproveChange { proposal });
    let a2 = chain
        .admin("finance")
        .sign(TxBody::ApproveChange { proposal });
    chain.commit(vec![propose, a1, a2]).unwrap();
    // From the next height the new validator (power 2 of 6) signs too.
    chain.federation.validators.push(v5);
    for _ in 0..3 {
        chain.commit(vec![]).unwrap();
    }
    let source = MemorySource::from_blocks(chain.blocks.iter().map(|(b, c)| (b, c)));
    let (report, _) = verify::verify_chain(
        &chain.federation.genesis,
        &source,
        VerifyOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.height, Height(4));
    // A certificate at height 2 signed only by the old four (power 4 of 6 =
    // 2/3, not more) fails against the new set.
    let mut short = source.clone();
    let old: Vec<_> = chain.federation.validators[..3].to_vec();
    let (b2, _) = &chain.blocks[1];
    let cert = custody_ledger::testkit::certify_with(&old, "custody-test", b2, Round(0));
    short.entries[1].1 = cert.to_bytes();
    let err = verify::verify_chain(
        &chain.federation.genesis,
        &short,
        VerifyOptions::default(),
        |_| {},
    )
    .unwrap_err();
    assert_eq!(err.height, Height(2));
    assert!(matches!(*err.failure, Failure::Certificate(_)), "{err}");
}

// ---------------------------------------------------------------- tamper

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

fn tampered(store: &Store, genesis: &custody_ledger::Genesis) -> verify::VerifyError {
    verify::verify_store(store, Some(genesis), VerifyOptions::default(), |_| {}).unwrap_err()
}

#[test]
fn tampered_transaction_byte_fails_verification_naming_height_and_transaction() {
    let (_dir, store, w) = stored_chain(6, 10);
    let height = Height(4);
    let block: Block = store.block(height).unwrap().unwrap();
    let tx = &block.transactions[2];
    let mut bytes = store.raw_block(height).unwrap().unwrap();
    // One byte inside the transaction's signer key.
    let at = find(&bytes, &encoding::encode(tx)) + 10;
    bytes[at] ^= 0x01;
    store.overwrite_raw_block(height, &bytes).unwrap();
    let err = tampered(&store, &w.chain.federation.genesis);
    assert_eq!(err.height, height, "{err}");
    assert_eq!(err.transaction.map(|t| t.0), Some(2), "{err}");
    assert!(
        err.to_string().contains("height 4, transaction #2"),
        "{err}"
    );
}

#[test]
fn tampered_transaction_signature_fails_verification_naming_the_transaction() {
    let (_dir, store, w) = stored_chain(6, 10);
    let height = Height(3);
    let block: Block = store.block(height).unwrap().unwrap();
    let tx = &block.transactions[5];
    let mut bytes = store.raw_block(height).unwrap().unwrap();
    let at = find(&bytes, &tx.signature.0);
    bytes[at + 7] ^= 0x40;
    store.overwrite_raw_block(height, &bytes).unwrap();
    let err = tampered(&store, &w.chain.federation.genesis);
    assert_eq!(
        (err.height, err.transaction.map(|t| t.0)),
        (height, Some(5)),
        "{err}"
    );
    assert_eq!(*err.failure, Failure::BadTransactionSignature);
}

#[test]
fn tampered_header_byte_fails_verification_naming_the_height() {
    let (_dir, store, w) = stored_chain(6, 10);
    let height = Height(5);
    let block: Block = store.block(height).unwrap().unwrap();
    let mut bytes = store.raw_block(height).unwrap().unwrap();
    // One byte of the header's time: the block hash changes, so its
    // certificate no longer proves it.
    let at = find(&bytes, &encoding::encode(&block.header.time));
    bytes[at] ^= 0x01;
    store.overwrite_raw_block(height, &bytes).unwrap();
    let err = tampered(&store, &w.chain.federation.genesis);
    assert_eq!(err.height, height, "{err}");
}

#[test]
fn tampered_certificate_byte_fails_verification_naming_the_height() {
    let (_dir, store, w) = stored_chain(6, 10);
    let height = Height(2);
    let mut bytes = store.raw_certificate(height).unwrap().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    store.overwrite_raw_certificate(height, &bytes).unwrap();
    let err = tampered(&store, &w.chain.federation.genesis);
    assert_eq!(err.height, height, "{err}");
    assert!(
        matches!(*err.failure, Failure::BadCertificateSignature { .. }),
        "{err}"
    );
}

#[test]
fn truncated_block_fails_verification_as_undecodable() {
    let (_dir, store, w) = stored_chain(4, 5);
    let height = Height(3);
    let bytes = store.raw_block(height).unwrap().unwrap();
    store
        .overwrite_raw_block(height, &bytes[..bytes.len() - 3])
        .unwrap();
    let err = tampered(&store, &w.chain.federation.genesis);
    assert_eq!(err.height, height);
    assert!(
        matches!(*err.failure, Failure::BlockUndecodable(_)),
        "{err}"
    );
}

#[test]
fn every_single_byte_change_in_a_block_is_detected() {
    let (_dir, store, w) = stored_chain(3, 3);
    let height = Height(2);
    let original = store.raw_block(height).unwrap().unwrap();
    let genesis = &w.chain.federation.genesis;
    let source = MemorySource {
        entries: w
            .chain
            .blocks
            .iter()
            .map(|(b, c)| (b.to_bytes(), c.to_bytes()))
            .collect(),
    };
    for i in 0..original.len() {
        let mut s = source.clone();
        s.entries[1].0[i] ^= 0x01;
        let result = verify::verify_chain(genesis, &s, VerifyOptions::default(), |_| {});
        let err = result
            .err()
            .unwrap_or_else(|| panic!("flip at byte {i} went unnoticed"));
        assert!(err.height <= Height(3), "{err}");
    }
    let _ =
        CommitCertificate::from_bytes(&store.raw_certificate(height).unwrap().unwrap()).unwrap();
    assert_eq!(store.chain().unwrap().height, w.chain.height());
}

#[test]
fn commit_certified_checks_the_certificate_then_commits() {
    use custody_ledger::chain::{commit_certified, CommitError, Committed, Origin};
    let dir = tempfile::tempdir().unwrap();
    let mut w = Workload::new(4, 11);
    w.step(10).unwrap();
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
    let (b1, c1) = w.chain.blocks[0].clone();
    let (b2, c2) = w.chain.blocks[1].clone();
    let commit = |block: &Block, certificate: &CommitCertificate| {
        commit_certified(
            &store,
            block,
            &block.to_bytes(),
            certificate,
            Origin::Synced,
        )
    };
    // A certificate for another block is refused and nothing is written.
    assert!(matches!(commit(&b1, &c2), Err(CommitError::Certificate(_))));
    assert_eq!(store.latest_height().unwrap(), Height(0));
    assert!(matches!(commit(&b1, &c1), Ok(Committed::Stored(_))));
    assert!(matches!(commit(&b2, &c2), Ok(Committed::Stored(_))));
    // The same block again (block sync and consensus racing) is no error.
    assert!(matches!(commit(&b1, &c1), Ok(Committed::AlreadyStored)));
    assert_eq!(store.state_digest().unwrap(), w.chain.state.digest());
}

/// The store keeps decoded records in memory (`read_cache.rs`); reading
/// every record before each commit fills that cache with values the commit
/// then replaces, and every later read must still see the committed state.
#[test]
fn reads_through_the_cache_see_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Workload::new(4, 11);
    for _ in 0..10 {
        w.step(25).unwrap();
    }
    let last = &w.chain.state;
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
    let read_everything = |store: &Store| {
        for key in last.members.keys() {
            store.member(key).unwrap();
            store.nonce(key).unwrap();
        }
        for id in last.documents.keys() {
            store.document(id).unwrap();
        }
        for id in last.departments.keys() {
            store.department(id).unwrap();
        }
        store.chain_info().unwrap();
        store.parameters().unwrap();
    };
    for (block, cert) in &w.chain.blocks {
        read_everything(&store);
        let changes = state::apply_block(&store, block).unwrap();
        store.commit(block, cert, &changes).unwrap();
    }
    let check = |store: &Store| {
        for (key, member) in &last.members {
            assert_eq!(store.member(key).unwrap().as_ref(), Some(member));
            assert_eq!(store.nonce(key).unwrap(), last.nonce(key).unwrap());
        }
        for (id, document) in &last.documents {
            assert_eq!(store.document(id).unwrap().as_ref(), Some(document));
        }
        for (id, department) in &last.departments {
            assert_eq!(store.department(id).unwrap().as_ref(), Some(department));
        }
        assert_eq!(store.chain_info().unwrap(), last.chain().unwrap());
        assert_eq!(store.parameters().unwrap(), last.parameters);
        assert_eq!(
            store.member(&PublicKey([0xab; 32])).unwrap(),
            None,
            "a key never enrolled is no member"
        );
    };
    check(&store);
    drop(store);
    // Reopened, with nothing cached, the store agrees.
    let reopened = Store::open(dir.path()).unwrap();
    check(&reopened);
}

/// What `Signatures::AlreadyVerifiedWithKeys` lets the state rules skip is
/// checked on its own by `check_carried_keys`: an enrolment of a key that is
/// not a valid point is refused there, and by the full rules.
#[test]
fn a_carried_key_that_is_not_a_valid_point_is_refused() {
    use custody_ledger::state::{check_carried_keys, TxRefusal};
    use custody_ledger::tx::TxBody;
    let mut w = Workload::new(4, 3);
    w.step(1).unwrap();
    // y = 2 is not the y-coordinate of any curve point.
    let mut invalid = [0u8; 32];
    invalid[0] = 2;
    let slug = w
        .chain
        .federation
        .admins
        .keys()
        .next()
        .cloned()
        .expect("a department");
    let department = custody_ledger::testkit::department(&slug);
    let signer = w.chain.admin(&slug);
    let tx = signer.sign(TxBody::EnrollMember {
        member: PublicKey(invalid),
        department,
        name: "nobody".to_string(),
        roles: vec![Role::Clerk],
        clearance: Classification::Internal,
    });
    assert!(matches!(
        check_carried_keys(&tx),
        Err(TxRefusal::WeakKey(_))
    ));
    let refused =
        custody_ledger::state::check_transaction(&w.chain.state, &tx, None, w.chain.next_time());
    assert!(matches!(refused, Err(TxRefusal::WeakKey(_))), "{refused:?}");
}

#[test]
fn bytes_of_another_block_are_refused_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Workload::new(4, 5);
    w.step(3).unwrap();
    w.step(3).unwrap();
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).unwrap();
    let (first, first_cert) = &w.chain.blocks[0];
    let (second, _) = &w.chain.blocks[1];
    let changes = state::apply_block(&store, first).unwrap();
    assert!(matches!(
        store.commit_encoded(first, &second.to_bytes(), first_cert, &changes),
        Err(StoreError::BytesMismatch { .. })
    ));
    assert_eq!(store.latest_height().unwrap(), Height(0), "nothing written");
    store
        .commit_encoded(first, &first.to_bytes(), first_cert, &changes)
        .unwrap();
    assert_eq!(store.raw_block(Height(1)).unwrap(), Some(first.to_bytes()));
}

#[test]
fn the_documents_of_a_subject_are_read_through_the_subject_index_and_only_they() {
    let (_dir, store, w) = stored_chain(6, 15);
    let tagged: Vec<_> = w
        .chain
        .state
        .documents
        .values()
        .filter(|d| d.subject_tag.is_some())
        .collect();
    assert!(tagged.len() >= 3, "the workload tags its documents");
    for document in tagged {
        let Some(tag) = &document.subject_tag else {
            continue;
        };
        let found = store.documents_with_subject(tag, PAGE_LIMIT_MAX).unwrap();
        let ids: Vec<_> = found.iter().map(|d| d.id.clone()).collect();
        assert_eq!(ids, vec![document.id.clone()]);
        assert_eq!(&found[0], document);
    }
    let unknown = Hash32([0x5a; 32]);
    assert!(store
        .documents_with_subject(&unknown, PAGE_LIMIT_MAX)
        .unwrap()
        .is_empty());
}
