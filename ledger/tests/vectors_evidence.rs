//! Committed test vectors of the transaction format version that adds
//! `submit-evidence` (`docs/format.md` §3, "Equivocation evidence"): the
//! votes' signing bytes, two transactions and the block after the v1
//! vector block that carries them, made from the fixed seed keys of
//! `v1.json`. The file never changes once released; this test proves the
//! code still produces exactly it and that it decodes, verifies and
//! applies. Everything version-specific comes from
//! `TX_FORMAT_VERSION_EVIDENCE`: should that number change before release,
//! regenerate with `CUSTODY_WRITE_VECTORS_EVIDENCE=1 cargo test --release
//! -p custody-ledger --test vectors_evidence`.

use custody_ledger::block::{self, Block, Header};
use custody_ledger::encoding;
use custody_ledger::evidence::{vote_signing_bytes, SignedVote, VoteKind};
use custody_ledger::testkit::{certify_with, seed_key};
use custody_ledger::tx::{SignedTransaction, TxBody, TX_FORMAT_VERSION_EVIDENCE};
use custody_ledger::types::*;
use custody_ledger::MemoryState;
use serde_json::{json, Value};

mod vector_files;
use vector_files::{assert_reproduced, hex_of, load, v1};

fn vectors_path() -> String {
    vector_files::path("evidence.json")
}

fn vote_vector(name: &str, vote: &SignedVote, chain_id: &str) -> Value {
    json!({
        "name": name,
        "value": vote,
        "canonical_hex": hex::encode(encoding::encode(vote)),
        "signing_bytes_hex": hex::encode(vote_signing_bytes(
            vote.kind, chain_id, vote.height, vote.round, vote.block_hash
        )),
    })
}

/// Block 2 after the v1 block: two `submit-evidence` of the vector
/// validator (`vectors/validator`), reported by civil-affairs' node
/// (`vectors/node`): prevotes at height 1 round 0 for block 1 and for nil,
/// and precommits at height 2 round 1 for two blocks.
fn build() -> (Value, Block, Block) {
    let (genesis, first) = v1();
    let chain_id = genesis.chain_id.clone();
    let node = seed_key("vectors/node");
    let validator = seed_key("vectors/validator");
    let reporter = DepartmentId::new("civil-affairs").expect("id");
    let prevote_block = SignedVote::sign(
        &validator,
        &chain_id,
        VoteKind::Prevote,
        Height(1),
        Round(0),
        Some(first.hash()),
    );
    let prevote_nil = SignedVote::sign(
        &validator,
        &chain_id,
        VoteKind::Prevote,
        Height(1),
        Round(0),
        None,
    );
    let precommit_a = SignedVote::sign(
        &validator,
        &chain_id,
        VoteKind::Precommit,
        Height(2),
        Round(1),
        Some(BlockHash(encoding::sha256(b"block a").0)),
    );
    let precommit_b = SignedVote::sign(
        &validator,
        &chain_id,
        VoteKind::Precommit,
        Height(2),
        Round(1),
        Some(BlockHash(encoding::sha256(b"block b").0)),
    );
    let prevotes = SignedTransaction::sign(
        TxBody::SubmitEvidence {
            reporter: reporter.clone(),
            first: prevote_block,
            second: prevote_nil,
        },
        &node,
        Nonce(1),
        &chain_id,
    );
    let precommits = SignedTransaction::sign(
        TxBody::SubmitEvidence {
            reporter,
            first: precommit_a,
            second: precommit_b,
        },
        &node,
        Nonce(2),
        &chain_id,
    );
    let txs = vec![prevotes.clone(), precommits.clone()];
    let ids: Vec<TxId> = txs.iter().map(|t| t.id()).collect();
    let first_cert = certify_with(
        std::slice::from_ref(&validator),
        &chain_id,
        &first,
        Round(0),
    );
    let header = Header {
        format_version: 1,
        chain_id: chain_id.clone(),
        height: Height(2),
        time: Timestamp(1_767_225_604_000),
        previous_block_hash: first.hash(),
        tx_root: block::tx_root(&ids),
        proposer: encoding::public_key_of(&validator),
        validator_set_hash: genesis.validator_set().hash(),
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
            "signature": tx.signature,
            "id": tx.id(),
        })
    };
    let mut state = MemoryState::from_genesis(&genesis);
    state.apply(custody_ledger::state::apply_block(&state, &first).expect("block 1 applies"));
    state.apply(custody_ledger::state::apply_block(&state, &second).expect("block 2 applies"));
    let records: Vec<Value> = state.evidence.values().map(|r| json!(r)).collect();
    let value = json!({
        "format_version": TX_FORMAT_VERSION_EVIDENCE,
        "description": format!(
            "Custody transaction format v{TX_FORMAT_VERSION_EVIDENCE} test vectors: submit-evidence, \
             signed by the department's node key (seed label vectors/node), carrying two votes of \
             the vector validator (vectors/validator), in a block following the v1 vector block. \
             Keys as in v1.json. See docs/format.md §3 and docs/rules.md §10."
        ),
        "node_key": {
            "seed_label": "vectors/node",
            "secret_key": hex::encode(node.to_bytes()),
            "public_key": encoding::public_key_of(&node),
        },
        "votes": [
            vote_vector("prevote-block", &prevote_block, &chain_id),
            vote_vector("prevote-nil", &prevote_nil, &chain_id),
            vote_vector("precommit-a", &precommit_a, &chain_id),
            vote_vector("precommit-b", &precommit_b, &chain_id),
        ],
        "transactions": [
            tx_vector("submit-evidence-prevotes", &prevotes),
            tx_vector("submit-evidence-precommits", &precommits),
        ],
        "block": {
            "canonical_hex": hex::encode(second.to_bytes()),
            "hash": second.hash(),
        },
        "records": records,
        "state_digest": state.digest(),
    });
    (value, first, second)
}

#[test]
fn committed_evidence_vectors_are_reproduced_exactly() {
    let (built, _, _) = build();
    assert_reproduced(&vectors_path(), &built, "CUSTODY_WRITE_VECTORS_EVIDENCE");
}

#[test]
fn committed_evidence_vectors_decode_verify_and_apply_after_the_v1_block() {
    let v = load(&vectors_path());
    let (genesis, first) = v1();
    for vote in v["votes"].as_array().expect("votes") {
        let decoded: SignedVote =
            encoding::decode(&hex_of(&vote["canonical_hex"])).expect("a vote decodes");
        let message = hex_of(&vote["signing_bytes_hex"]);
        assert_eq!(message, decoded.signing_bytes(&genesis.chain_id));
        assert!(decoded.verify(&genesis.chain_id), "{}", vote["name"]);
    }
    for t in v["transactions"].as_array().expect("transactions") {
        let tx = SignedTransaction::from_bytes(&hex_of(&t["canonical_hex"])).expect("decodes");
        assert_eq!(tx.payload.format_version, TX_FORMAT_VERSION_EVIDENCE);
        assert!(tx.verify_signature());
        assert_eq!(tx.id().to_hex(), t["id"].as_str().expect("id"));
    }
    let second = Block::from_bytes(&hex_of(&v["block"]["canonical_hex"])).expect("block 2");
    let mut state = MemoryState::from_genesis(&genesis);
    state.apply(custody_ledger::state::apply_block(&state, &first).expect("block 1"));
    let changes = custody_ledger::state::apply_block(&state, &second).expect("block 2");
    assert_eq!(changes.evidence.len(), 2, "one record per height");
    state.apply(changes);
    assert_eq!(
        state.digest().to_hex(),
        v["state_digest"].as_str().expect("digest")
    );
}
