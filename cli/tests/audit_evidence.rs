//! `custody audit evidence` and `custody audit verify` on exports that
//! hold equivocation evidence, built offline from the ledger's test kit:
//! one test per thing the commands promise, named after it.

mod common;

use std::path::Path;

use common::custody;
use custody_ledger::evidence::{SignedVote, VoteKind};
use custody_ledger::export::ExportWriter;
use custody_ledger::testkit::{department, seed_key, Chain, Signer};
use custody_ledger::tx::TxBody;
use custody_ledger::types::{BlockHash, Height, Round};

const CHAIN: &str = "custody-test";

fn evidence_tx(
    reporter: &str,
    nonce: u64,
    height: u64,
    forged: bool,
) -> custody_ledger::SignedTransaction {
    let key = seed_key("health/validator");
    let vote = |block: u8| {
        SignedVote::sign(
            &key,
            CHAIN,
            VoteKind::Prevote,
            Height(height),
            Round(0),
            Some(BlockHash([block; 32])),
        )
    };
    let mut second = vote(2);
    if forged {
        second.signature.0[5] ^= 0x40;
    }
    Signer::new(seed_key(&format!("{reporter}/node")), CHAIN).sign_with_nonce(
        TxBody::SubmitEvidence {
            reporter: department(reporter),
            first: vote(1),
            second,
        },
        nonce,
    )
}

fn write_export(chain: &Chain, path: &Path) {
    let file = std::fs::File::create(path).expect("create export");
    let mut writer = ExportWriter::new(file, &chain.federation.genesis).expect("export writer");
    for (block, certificate) in &chain.blocks {
        writer
            .push(&block.to_bytes(), &certificate.to_bytes())
            .expect("push block");
    }
    writer.finish().expect("finish export");
}

/// A four-department chain: an empty block, then civil affairs' node
/// reporting health's validator's two prevotes at height 1.
fn chain_with_evidence() -> Chain {
    let mut chain = Chain::new(4);
    chain.commit(vec![]).expect("block 1");
    chain
        .commit(vec![evidence_tx("civil-affairs", 1, 1, false)])
        .expect("evidence applies");
    chain
}

#[test]
fn audit_evidence_lists_validator_department_height_round_blocks_and_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("chain.custody");
    let chain = chain_with_evidence();
    write_export(&chain, &export);
    let (ok, stdout, stderr) = custody(&[
        "audit",
        "evidence",
        "--export",
        export.to_str().expect("path"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let items = listed["evidence"].as_array().expect("evidence array");
    assert_eq!(items.len(), 1, "{listed}");
    let e = &items[0];
    let validator = custody_ledger::encoding::public_key_of(&seed_key("health/validator"));
    assert_eq!(e["validator"].as_str(), Some(validator.to_hex().as_str()));
    assert_eq!(e["department"].as_str(), Some("health"));
    assert_eq!(e["height"].as_u64(), Some(1));
    assert_eq!(e["round"].as_u64(), Some(0));
    assert_eq!(e["kind"].as_str(), Some("prevote"));
    assert_eq!(
        e["first_block"].as_str(),
        Some(hex::encode([1u8; 32]).as_str())
    );
    assert_eq!(
        e["second_block"].as_str(),
        Some(hex::encode([2u8; 32]).as_str())
    );
    assert_eq!(e["reported_by"].as_str(), Some("civil-affairs"));
    assert_eq!(e["included_at"].as_u64(), Some(2));
    let tx = chain.blocks[1].0.transactions[0].id();
    assert_eq!(e["tx"].as_str(), Some(tx.to_hex().as_str()));
    assert_eq!(e["votes_checked"], serde_json::Value::Bool(true));
    assert_eq!(listed["source"].as_str(), Some("verified export"));

    // The text form says the same for a reader.
    let (ok, text, stderr) = custody(&[
        "audit",
        "evidence",
        "--export",
        export.to_str().expect("path"),
    ]);
    assert!(ok, "{stderr}");
    assert!(text.contains("1 equivocation record(s)"), "{text}");
    assert!(text.contains("(health)"), "{text}");
    assert!(text.contains(&tx.to_hex()), "{text}");
}

#[test]
fn audit_evidence_lists_nothing_on_a_chain_without_equivocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("chain.custody");
    let mut chain = Chain::new(4);
    chain.commit(vec![]).expect("block 1");
    write_export(&chain, &export);
    let (ok, stdout, stderr) = custody(&[
        "audit",
        "evidence",
        "--export",
        export.to_str().expect("path"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(listed["evidence"].as_array().map(Vec::len), Some(0));
}

#[test]
fn audit_verify_counts_the_evidence_it_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("chain.custody");
    write_export(&chain_with_evidence(), &export);
    let (ok, stdout, stderr) = custody(&[
        "audit",
        "verify",
        "--export",
        export.to_str().expect("path"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(summary["evidence"].as_u64(), Some(1), "{summary}");
}

#[test]
fn audit_verify_refuses_an_export_whose_evidence_carries_a_forged_vote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("chain.custody");
    let mut chain = Chain::new(4);
    chain.commit(vec![]).expect("block 1");
    // The forged block is certified as if the validators had voted for it:
    // only the replay of its rules can find it.
    let block = chain.build(vec![evidence_tx("civil-affairs", 1, 1, true)]);
    let certificate = chain.federation.certify(&block, Round(0));
    chain.blocks.push((block, certificate));
    write_export(&chain, &export);
    for command in ["verify", "evidence"] {
        let (ok, _, stderr) =
            custody(&["audit", command, "--export", export.to_str().expect("path")]);
        assert!(!ok, "audit {command} accepted a forged vote");
        assert!(
            stderr.contains("second vote's signature does not verify"),
            "audit {command}: {stderr}"
        );
    }
}
