//! Committed test vectors: example structures with their canonical bytes,
//! hashes and signatures, made from fixed seed keys. The file never
//! changes; this test proves the code still produces exactly it, and that
//! every vector decodes, re-hashes and verifies. Regenerate (only for a new
//! format version, in a new file) with CUSTODY_WRITE_VECTORS=1.

use custody_ledger::block::{self, Block, Header};
use custody_ledger::certificate::CommitVote;
use custody_ledger::encoding::{self, tags};
use custody_ledger::genesis::Genesis;
use custody_ledger::merkle;
use custody_ledger::records::*;
use custody_ledger::testkit::{certify_with, seed_key};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::*;
use serde_json::{json, Value};

mod vector_files;
use vector_files::{assert_independent_check, assert_reproduced, hex_of as bytes, load};

fn vectors_path() -> String {
    vector_files::path("v1.json")
}

fn vectors_path_v2() -> String {
    vector_files::path("v2.json")
}

fn genesis() -> Genesis {
    let admin = seed_key("vectors/admin");
    let validator = seed_key("vectors/validator");
    Genesis {
        format_version: 1,
        chain_id: "custody-vectors".into(),
        genesis_time: Timestamp(1_767_225_600_000),
        parameters: Parameters::default(),
        departments: vec![NewDepartment {
            id: DepartmentId::new("civil-affairs").unwrap(),
            name: "Civil Affairs".into(),
            keys: DepartmentKeys {
                validator_key: encoding::public_key_of(&validator),
                node_key: encoding::public_key_of(&seed_key("vectors/node")),
                encryption_key: PublicKey(encoding::sha256(b"vectors/x25519").0),
            },
            voting_power: 1,
            admins: vec![NewMember {
                key: encoding::public_key_of(&admin),
                name: "First Admin".into(),
                roles: vec![Role::Admin],
                clearance: Classification::Secret,
            }],
        }],
    }
}

fn build() -> Value {
    let g = genesis();
    let admin = seed_key("vectors/admin");
    let clerk = seed_key("vectors/clerk");
    let validator = seed_key("vectors/validator");
    let chain_id = g.chain_id.as_str();

    let enroll = SignedTransaction::sign(
        TxBody::EnrollMember {
            member: encoding::public_key_of(&clerk),
            department: DepartmentId::new("civil-affairs").unwrap(),
            name: "Registry Clerk".into(),
            roles: vec![Role::Clerk],
            clearance: Classification::Confidential,
        },
        &admin,
        Nonce(1),
        chain_id,
    );
    let register = SignedTransaction::sign(
        TxBody::Register {
            document: DocumentId::new("civil-affairs/2026/000001").unwrap(),
            title: "Birth register 1950".into(),
            record_type: "register".into(),
            department: DepartmentId::new("civil-affairs").unwrap(),
            created: Timestamp(1_767_225_600_000),
            classification: Classification::Internal,
            retention: Retention::Years(30),
            format: Format {
                mime: "application/pdf".into(),
                pronom: Some("fmt/354".into()),
            },
            plaintext: Fixity {
                sha256: encoding::sha256(b"plaintext"),
                size_bytes: 9,
            },
            ciphertext: Fixity {
                sha256: encoding::sha256(b"ciphertext"),
                size_bytes: 10,
            },
            subject_tag: None,
            wrapped_key: WrappedKey(vec![0xaa; 8]),
        },
        &clerk,
        Nonce(1),
        chain_id,
    );
    let event = DocumentEvent {
        format_version: 1,
        document: DocumentId::new("civil-affairs/2026/000001").unwrap(),
        sequence: 0,
        previous: EventHash::ZERO,
        height: Height(1),
        time: Timestamp(1_767_225_601_000),
        tx: register.id(),
        member: encoding::public_key_of(&clerk),
        department: DepartmentId::new("civil-affairs").unwrap(),
        kind: EventKind::Registered {
            classification: Classification::Internal,
            plaintext: Fixity {
                sha256: encoding::sha256(b"plaintext"),
                size_bytes: 9,
            },
            ciphertext: Fixity {
                sha256: encoding::sha256(b"ciphertext"),
                size_bytes: 10,
            },
        },
    };

    let access = SignedTransaction::sign(
        TxBody::RecordAccess {
            document: DocumentId::new("civil-affairs/2026/000001").unwrap(),
            previous_event: event.hash(),
            purpose: "citizen request 42".into(),
            ciphertext_sha256: encoding::sha256(b"ciphertext"),
        },
        &clerk,
        Nonce(2),
        chain_id,
    );
    let txs = vec![enroll.clone(), register.clone(), access.clone()];
    let ids: Vec<TxId> = txs.iter().map(|t| t.id()).collect();
    let header = Header {
        format_version: 1,
        chain_id: chain_id.into(),
        height: Height(1),
        time: Timestamp(1_767_225_601_000),
        previous_block_hash: BlockHash(g.hash().0),
        tx_root: block::tx_root(&ids),
        proposer: encoding::public_key_of(&validator),
        validator_set_hash: g.validator_set().hash(),
        last_commit_hash: Hash32::ZERO,
    };
    let blk = Block {
        header: header.clone(),
        transactions: txs.clone(),
        last_commit: None,
    };
    let cert = certify_with(std::slice::from_ref(&validator), chain_id, &blk, Round(0));
    let vote = CommitVote::new(chain_id, Height(1), Round(0), blk.hash());
    let proof = merkle::prove(&ids, 2).unwrap();
    let keys = json!({
        "admin": {"seed_label": "vectors/admin", "secret_key": hex::encode(admin.to_bytes()), "public_key": encoding::public_key_of(&admin)},
        "clerk": {"seed_label": "vectors/clerk", "secret_key": hex::encode(clerk.to_bytes()), "public_key": encoding::public_key_of(&clerk)},
        "validator": {"seed_label": "vectors/validator", "secret_key": hex::encode(validator.to_bytes()), "public_key": encoding::public_key_of(&validator)},
    });
    let tx_vector = |name: &str, tx: &SignedTransaction| {
        json!({
            "name": name,
            "value": tx,
            "canonical_hex": hex::encode(tx.to_bytes()),
            "payload_hex": hex::encode(encoding::encode(&tx.payload)),
            "signing_bytes_hex": hex::encode(tx.signing_bytes()),
            "signing_tag": tags::TX_PAYLOAD,
            "signature": tx.signature,
            "id_tag": tags::TX_ID,
            "id": tx.id(),
        })
    };
    json!({
        "format_version": 1,
        "description": "Custody ledger format v1 test vectors. Keys are ed25519 secret keys (32-byte seeds) derived as SHA-256(\"custody-test-key/\" || seed_label). See docs/format.md.",
        "keys": keys,
        "genesis": {
            "value": g,
            "canonical_hex": hex::encode(g.to_bytes()),
            "tag": tags::GENESIS,
            "hash": g.hash(),
        },
        "validator_set": {
            "value": g.validator_set(),
            "canonical_hex": hex::encode(encoding::encode(&g.validator_set())),
            "tag": tags::VALIDATOR_SET,
            "hash": g.validator_set().hash(),
        },
        "transactions": [
            tx_vector("enroll-member", &enroll),
            tx_vector("register", &register),
            tx_vector("record-access", &access),
        ],
        "header": {
            "value": header,
            "canonical_hex": hex::encode(encoding::encode(&header)),
            "tag": tags::HEADER,
            "hash": header.hash(),
        },
        "block": {
            "canonical_hex": hex::encode(blk.to_bytes()),
            "hash": blk.hash(),
        },
        "commit_vote": {
            "value": {"chain_id": vote.chain_id, "height": vote.height, "round": vote.round, "block_hash": hex::encode(vote.block_hash)},
            "signing_bytes_hex": hex::encode(vote.signing_bytes()),
            "tag": tags::COMMIT_VOTE,
        },
        "certificate": {
            "value": cert,
            "canonical_hex": hex::encode(cert.to_bytes()),
            "tag": tags::CERTIFICATE,
            "hash": cert.hash(),
        },
        "merkle": {
            "leaves": ids,
            "leaf_hashes": ids.iter().map(|i| merkle::leaf_hash(&i.0)).collect::<Vec<_>>(),
            "root": block::tx_root(&ids),
            "proof_index": 2,
            "proof": proof,
        },
        "event": {
            "value": event,
            "canonical_hex": hex::encode(encoding::encode(&event)),
            "tag": tags::EVENT,
            "hash": event.hash(),
        },
    })
}

#[test]
fn committed_vectors_are_reproduced_exactly() {
    assert_reproduced(&vectors_path(), &build(), "CUSTODY_WRITE_VECTORS");
}

#[test]
fn committed_vectors_decode_rehash_and_verify() {
    let v = load(&vectors_path());
    // Genesis.
    let g = Genesis::from_bytes(&bytes(&v["genesis"]["canonical_hex"])).unwrap();
    assert_eq!(g.hash().to_hex(), v["genesis"]["hash"].as_str().unwrap());
    // Transactions: signature over the signing bytes, id over the whole.
    for t in v["transactions"].as_array().unwrap() {
        let tx = SignedTransaction::from_bytes(&bytes(&t["canonical_hex"])).unwrap();
        assert_eq!(tx.signing_bytes(), bytes(&t["signing_bytes_hex"]));
        assert!(tx.verify_signature());
        assert_eq!(tx.id().to_hex(), t["id"].as_str().unwrap());
        let sb = bytes(&t["signing_bytes_hex"]);
        assert_eq!(sb[0] as usize, tags::TX_PAYLOAD.len());
        assert_eq!(&sb[1..1 + sb[0] as usize], tags::TX_PAYLOAD.as_bytes());
    }
    // Block, header, certificate.
    let blk = Block::from_bytes(&bytes(&v["block"]["canonical_hex"])).unwrap();
    assert_eq!(
        encoding::encode(&blk.header),
        bytes(&v["header"]["canonical_hex"])
    );
    assert_eq!(blk.hash().to_hex(), v["header"]["hash"].as_str().unwrap());
    assert_eq!(blk.compute_tx_root(), blk.header.tx_root);
    let cert =
        custody_ledger::CommitCertificate::from_bytes(&bytes(&v["certificate"]["canonical_hex"]))
            .unwrap();
    cert.verify_commit_of(&g.chain_id, Height(1), &blk.hash(), &g.validator_set())
        .unwrap();
    assert_eq!(
        cert.vote_bytes(&g.chain_id),
        bytes(&v["commit_vote"]["signing_bytes_hex"])
    );
    // The block is a valid first block of this genesis.
    let state = custody_ledger::MemoryState::from_genesis(&g);
    let changes = custody_ledger::state::apply_block(&state, &blk).unwrap();
    assert_eq!(changes.events.len(), 2);
    // Merkle proof.
    let proof: merkle::InclusionProof =
        serde_json::from_value(v["merkle"]["proof"].clone()).unwrap();
    let leaf: TxId = serde_json::from_value(v["merkle"]["leaves"][2].clone()).unwrap();
    let root: Hash32 = serde_json::from_value(v["merkle"]["root"].clone()).unwrap();
    assert!(merkle::verify_inclusion(&root, &leaf.0, &proof));
    // Event.
    let e: DocumentEvent = encoding::decode(&bytes(&v["event"]["canonical_hex"])).unwrap();
    assert_eq!(e.hash().to_hex(), v["event"]["hash"].as_str().unwrap());
}

#[test]
fn genesis_toml_in_the_format_doc_is_the_vector_genesis() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/format.md"))
        .expect("docs/format.md is in the repository");
    let start = doc.find("```toml\n").expect("a TOML example") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("the example ends");
    let g = Genesis::from_toml_str(&doc[start..end]).unwrap();
    assert_eq!(g, genesis());
    let v = load(&vectors_path());
    assert_eq!(g.hash().to_hex(), v["genesis"]["hash"].as_str().unwrap());
    assert!(doc.contains(v["genesis"]["hash"].as_str().unwrap()));
    assert!(doc.contains(v["header"]["hash"].as_str().unwrap()));
    assert!(doc.contains(v["transactions"][0]["id"].as_str().unwrap()));
    assert!(doc.contains(v["merkle"]["root"].as_str().unwrap()));
}

/// The vectors also pass a check written in Python from docs/format.md
/// alone (`tests/vectors/independent_check.py`), when Python is installed.
#[test]
fn vectors_pass_the_independent_python_check() {
    assert_independent_check(&vectors_path());
}

// ---- Format version 2: `attest-read` (docs/format.md §3). ----

/// The v1 vector block, then a second block carrying one `attest-read` of
/// each outcome, signed by the department's node key (`vectors/node`).
fn build_v2() -> (Value, Block, Block) {
    let g = genesis();
    let v1 = build();
    let first = Block::from_bytes(&bytes(&v1["block"]["canonical_hex"])).unwrap();
    let node = seed_key("vectors/node");
    let clerk = seed_key("vectors/clerk");
    let validator = seed_key("vectors/validator");
    let chain_id = g.chain_id.as_str();
    let access = first.transactions[2].id();
    let document = DocumentId::new("civil-affairs/2026/000001").unwrap();
    let department = DepartmentId::new("civil-affairs").unwrap();
    let served = SignedTransaction::sign(
        TxBody::AttestRead {
            department: department.clone(),
            outcome: custody_ledger::reads::ReadOutcome::Served {
                access_tx: access,
                member: encoding::public_key_of(&clerk),
                document: document.clone(),
                ciphertext_sha256: encoding::sha256(b"ciphertext"),
                bytes: 10,
            },
        },
        &node,
        Nonce(1),
        chain_id,
    );
    let failed = SignedTransaction::sign(
        TxBody::AttestRead {
            department: department.clone(),
            outcome: custody_ledger::reads::ReadOutcome::Failed {
                access_tx: access,
                member: encoding::public_key_of(&clerk),
                document: document.clone(),
                bytes: 4,
                reason: "the connection closed after 4 of 10 bytes".into(),
            },
        },
        &node,
        Nonce(2),
        chain_id,
    );
    let request = custody_ledger::reads::SignedReadRequest::sign(
        custody_ledger::reads::ReadRequest {
            format_version: 1,
            chain_id: chain_id.into(),
            member: encoding::public_key_of(&clerk),
            document: document.clone(),
            ciphertext_sha256: encoding::sha256(b"ciphertext"),
            access_tx: Some(access),
            time_ms: 1_767_225_603_000,
            nonce: 7,
        },
        &clerk,
    );
    let denied = SignedTransaction::sign(
        TxBody::AttestRead {
            department,
            outcome: custody_ledger::reads::ReadOutcome::Denied {
                request,
                code: "read_access_already_used".into(),
            },
        },
        &node,
        Nonce(3),
        chain_id,
    );
    let txs = vec![served.clone(), failed.clone(), denied.clone()];
    let ids: Vec<TxId> = txs.iter().map(|t| t.id()).collect();
    let first_cert = certify_with(std::slice::from_ref(&validator), chain_id, &first, Round(0));
    let header = Header {
        format_version: 1,
        chain_id: chain_id.into(),
        height: Height(2),
        time: Timestamp(1_767_225_604_000),
        previous_block_hash: first.hash(),
        tx_root: block::tx_root(&ids),
        proposer: encoding::public_key_of(&validator),
        validator_set_hash: g.validator_set().hash(),
        last_commit_hash: first_cert.hash(),
    };
    let second = Block {
        header,
        transactions: txs,
        last_commit: Some(first_cert),
    };
    let tx_vector = |name: &str, tx: &SignedTransaction| {
        json!({
            "name": name,
            "value": tx,
            "canonical_hex": hex::encode(tx.to_bytes()),
            "payload_hex": hex::encode(encoding::encode(&tx.payload)),
            "signing_bytes_hex": hex::encode(tx.signing_bytes()),
            "signing_tag": tags::TX_PAYLOAD,
            "signature": tx.signature,
            "id_tag": tags::TX_ID,
            "id": tx.id(),
        })
    };
    let value = json!({
        "format_version": 2,
        "description": "Custody transaction format v2 test vectors: attest-read, signed by the department's node key (seed label vectors/node), in a block following the v1 vector block. Keys as in v1.json. See docs/format.md §3.",
        "node_key": {"seed_label": "vectors/node", "secret_key": hex::encode(node.to_bytes()), "public_key": encoding::public_key_of(&node)},
        "transactions": [
            tx_vector("attest-read-served", &served),
            tx_vector("attest-read-failed", &failed),
            tx_vector("attest-read-denied", &denied),
        ],
        "block": {
            "canonical_hex": hex::encode(second.to_bytes()),
            "hash": second.hash(),
        },
    });
    (value, first, second)
}

#[test]
fn committed_v2_vectors_are_reproduced_exactly() {
    let (built, _, _) = build_v2();
    assert_reproduced(&vectors_path_v2(), &built, "CUSTODY_WRITE_VECTORS_V2");
}

#[test]
fn committed_v2_vectors_decode_verify_and_apply_after_the_v1_block() {
    let v = load(&vectors_path_v2());
    for t in v["transactions"].as_array().unwrap() {
        let tx = SignedTransaction::from_bytes(&bytes(&t["canonical_hex"])).unwrap();
        assert_eq!(tx.payload.format_version, 2);
        assert!(tx.verify_signature());
        assert_eq!(tx.id().to_hex(), t["id"].as_str().unwrap());
    }
    let (_, first, _) = build_v2();
    let second = Block::from_bytes(&bytes(&v["block"]["canonical_hex"])).unwrap();
    let mut state = custody_ledger::MemoryState::from_genesis(&genesis());
    let changes = custody_ledger::state::apply_block(&state, &first).unwrap();
    state.apply(changes);
    let changes = custody_ledger::state::apply_block(&state, &second).unwrap();
    assert!(
        changes.events.is_empty(),
        "an attestation is no document event"
    );
    let mut account = custody_ledger::reads::ReadAccount::default();
    account.add_block(&first).unwrap();
    account.add_block(&second).unwrap();
    assert_eq!(
        (
            account.served.len(),
            account.failed.len(),
            account.denied.len()
        ),
        (1, 1, 1)
    );
}
