//! One test per rule of `submit-evidence` (`docs/rules.md` §10), named
//! after the rule, plus the record an accepted one makes.

mod common;

use common::*;
use custody_ledger::encoding;
use custody_ledger::evidence::{SignedVote, VoteKind};
use custody_ledger::state::TxRefusal;
use custody_ledger::testkit::{department, seed_key, Signer};
use custody_ledger::tx::{SignedTransaction, TxBody, TxPayload, TX_FORMAT_VERSION_EVIDENCE};
use custody_ledger::types::*;

const CHAIN: &str = "custody-test";

/// The node key of `slug` in the test federation.
fn node(slug: &str) -> Signer {
    Signer::new(seed_key(&format!("{slug}/node")), CHAIN)
}

/// `slug`'s validator key in the test federation.
fn validator(slug: &str) -> ed25519_dalek::SigningKey {
    seed_key(&format!("{slug}/validator"))
}

fn vote(
    key: &ed25519_dalek::SigningKey,
    kind: VoteKind,
    height: u64,
    round: u64,
    block: Option<u8>,
) -> SignedVote {
    SignedVote::sign(
        key,
        CHAIN,
        kind,
        Height(height),
        Round(round),
        block.map(|b| BlockHash([b; 32])),
    )
}

/// Health's validator prevoting blocks 1 and 2 at height 1, round 0.
fn equivocation() -> (SignedVote, SignedVote) {
    let key = validator("health");
    (
        vote(&key, VoteKind::Prevote, 1, 0, Some(1)),
        vote(&key, VoteKind::Prevote, 1, 0, Some(2)),
    )
}

fn body(reporter: &str, first: SignedVote, second: SignedVote) -> TxBody {
    TxBody::SubmitEvidence {
        reporter: department(reporter),
        first,
        second,
    }
}

fn refused(w: &mut World, signer: &Signer, body: TxBody) -> TxRefusal {
    w.refused_tx(signer.sign_with_nonce(body, signer.next_nonce))
}

#[test]
fn submit_evidence_records_two_conflicting_votes_of_one_validator() {
    let mut w = World::new();
    let (first, second) = equivocation();
    let mut reporter = node("civil-affairs");
    let tx = reporter.sign(body("civil-affairs", first, second));
    w.chain.commit(vec![tx.clone()]).expect("evidence applies");
    let key = encoding::public_key_of(&validator("health"));
    let record = w
        .chain
        .state
        .evidence
        .get(&(key, Height(1)))
        .cloned()
        .expect("recorded");
    assert_eq!(record.validator, key);
    assert_eq!(record.department, Some(department("health")));
    assert_eq!(record.round, Round(0));
    assert_eq!(record.kind, VoteKind::Prevote);
    assert_eq!(record.first_block, Some(BlockHash([1; 32])));
    assert_eq!(record.second_block, Some(BlockHash([2; 32])));
    assert_eq!(record.reported_by, department("civil-affairs"));
    assert_eq!(record.tx, tx.id());
    assert_eq!(record.included_at, w.chain.height());
}

#[test]
fn submit_evidence_counts_a_vote_for_nil_as_a_value() {
    let mut w = World::new();
    let key = validator("finance");
    let first = vote(&key, VoteKind::Precommit, 1, 2, None);
    let second = vote(&key, VoteKind::Precommit, 1, 2, Some(7));
    let mut reporter = node("health");
    let tx = reporter.sign(body("health", first, second));
    w.chain
        .commit(vec![tx])
        .expect("nil against a block applies");
    assert_eq!(w.chain.state.evidence.len(), 1);
}

#[test]
fn submit_evidence_is_refused_when_the_reporter_is_unknown() {
    let mut w = World::new();
    let (first, second) = equivocation();
    let r = refused(
        &mut w,
        &node("civil-affairs"),
        body("housing", first, second),
    );
    assert!(matches!(r, TxRefusal::UnknownDepartment(_)), "{r}");
    assert_eq!(r.code(), "unknown_department");
}

#[test]
fn submit_evidence_is_refused_when_the_signer_is_not_the_reporters_node() {
    let mut w = World::new();
    let (first, second) = equivocation();
    // Social security's node signs in civil affairs' name.
    let r = refused(
        &mut w,
        &node("social-security"),
        body("civil-affairs", first, second),
    );
    assert_eq!(r.code(), "evidence_reporter_not_its_node", "{r}");
    // A member is no node either.
    let clerk = w.signer("ca-clerk").clone();
    let (first, second) = equivocation();
    let r = refused(&mut w, &clerk, body("civil-affairs", first, second));
    assert_eq!(r.code(), "evidence_reporter_not_its_node", "{r}");
}

#[test]
fn submit_evidence_is_refused_when_two_validators_signed_the_votes() {
    let mut w = World::new();
    let first = vote(&validator("health"), VoteKind::Prevote, 1, 0, Some(1));
    let second = vote(&validator("finance"), VoteKind::Prevote, 1, 0, Some(2));
    let r = refused(
        &mut w,
        &node("civil-affairs"),
        body("civil-affairs", first, second),
    );
    assert_eq!(r.code(), "evidence_two_validators", "{r}");
}

#[test]
fn submit_evidence_is_refused_when_the_votes_are_not_for_one_height_round_and_kind() {
    let mut w = World::new();
    let key = validator("health");
    let base = vote(&key, VoteKind::Prevote, 1, 0, Some(1));
    for other in [
        vote(&key, VoteKind::Prevote, 2, 0, Some(2)),
        vote(&key, VoteKind::Prevote, 1, 1, Some(2)),
        vote(&key, VoteKind::Precommit, 1, 0, Some(2)),
    ] {
        let r = refused(
            &mut w,
            &node("civil-affairs"),
            body("civil-affairs", base, other),
        );
        assert_eq!(r.code(), "evidence_not_same_vote", "{r}");
    }
}

#[test]
fn submit_evidence_is_refused_when_both_votes_name_the_same_block() {
    let mut w = World::new();
    let key = validator("health");
    let first = vote(&key, VoteKind::Prevote, 1, 0, Some(1));
    let r = refused(
        &mut w,
        &node("civil-affairs"),
        body("civil-affairs", first, first),
    );
    assert_eq!(r.code(), "evidence_same_block", "{r}");
    let nil = vote(&key, VoteKind::Precommit, 1, 0, None);
    let r = refused(
        &mut w,
        &node("civil-affairs"),
        body("civil-affairs", nil, nil),
    );
    assert_eq!(r.code(), "evidence_same_block", "{r}");
}

#[test]
fn submit_evidence_is_refused_when_the_height_is_after_the_block() {
    let mut w = World::new();
    // The next block is at height 2; votes at height 3 are not cast yet.
    let key = validator("health");
    let first = vote(&key, VoteKind::Prevote, 3, 0, Some(1));
    let second = vote(&key, VoteKind::Prevote, 3, 0, Some(2));
    let r = refused(
        &mut w,
        &node("civil-affairs"),
        body("civil-affairs", first, second),
    );
    assert_eq!(r.code(), "evidence_height_in_future", "{r}");
}

#[test]
fn submit_evidence_is_refused_when_the_signer_was_not_a_validator_at_that_height() {
    let mut w = World::new();
    let stranger = seed_key("stranger/validator");
    let first = vote(&stranger, VoteKind::Prevote, 1, 0, Some(1));
    let second = vote(&stranger, VoteKind::Prevote, 1, 0, Some(2));
    let r = refused(
        &mut w,
        &node("civil-affairs"),
        body("civil-affairs", first, second),
    );
    assert_eq!(r.code(), "evidence_not_a_validator", "{r}");
}

#[test]
fn submit_evidence_is_refused_when_a_vote_signature_does_not_verify() {
    let mut w = World::new();
    let (first, mut second) = equivocation();
    second.signature.0[0] ^= 1;
    let r = refused(
        &mut w,
        &node("civil-affairs"),
        body("civil-affairs", first, second),
    );
    assert_eq!(r, TxRefusal::EvidenceBadSignature { which: "second" });
    assert_eq!(r.code(), "evidence_bad_signature");
    // Votes signed for another chain do not verify on this one.
    let key = validator("health");
    let other = |block| {
        SignedVote::sign(
            &key,
            "another-chain",
            VoteKind::Prevote,
            Height(1),
            Round(0),
            Some(BlockHash([block; 32])),
        )
    };
    let r = refused(
        &mut w,
        &node("civil-affairs"),
        body("civil-affairs", other(1), other(2)),
    );
    assert_eq!(r.code(), "evidence_bad_signature", "{r}");
}

#[test]
fn submit_evidence_is_refused_when_evidence_against_that_validator_and_height_is_recorded() {
    let mut w = World::new();
    let (first, second) = equivocation();
    let mut civil = node("civil-affairs");
    w.chain
        .commit(vec![civil.sign(body("civil-affairs", first, second))])
        .expect("first evidence applies");
    // Another node, another pair of votes at the same height: refused.
    let key = validator("health");
    let third = vote(&key, VoteKind::Precommit, 1, 1, Some(3));
    let fourth = vote(&key, VoteKind::Precommit, 1, 1, Some(4));
    let r = refused(&mut w, &node("finance"), body("finance", third, fourth));
    assert_eq!(r.code(), "evidence_already_recorded", "{r}");
}

#[test]
fn submit_evidence_is_refused_when_the_same_block_recorded_it_first() {
    let mut w = World::new();
    let (first, second) = equivocation();
    let a = node("civil-affairs").sign(body("civil-affairs", first, second));
    let b = node("finance").sign(body("finance", second, first));
    let block = w.chain.build(vec![a, b]);
    match w.chain.apply(block) {
        Err(custody_ledger::state::Refusal::Transaction { index, reason, .. }) => {
            assert_eq!(index, 1);
            assert_eq!(reason.code(), "evidence_already_recorded", "{reason}");
        }
        other => panic!("expected the second evidence refused, got {other:?}"),
    }
}

#[test]
fn submit_evidence_is_refused_when_its_payload_states_another_format_version() {
    let mut w = World::new();
    let (first, second) = equivocation();
    let signer = node("civil-affairs");
    let payload = TxPayload {
        format_version: 1,
        chain_id: CHAIN.to_string(),
        signer: signer.public(),
        nonce: Nonce(1),
        body: body("civil-affairs", first, second),
    };
    let signature = encoding::sign(&signer.key, encoding::tags::TX_PAYLOAD, &payload);
    let r = w.refused_tx(SignedTransaction { payload, signature });
    assert_eq!(
        r,
        TxRefusal::FormatVersionMismatch {
            kind: "submit-evidence",
            required: TX_FORMAT_VERSION_EVIDENCE,
            found: 1
        }
    );
}

#[test]
fn submit_evidence_of_an_earlier_height_is_recorded_later() {
    // The validator set of the votes' height decides (the history is never
    // pruned), so evidence may arrive blocks after the votes.
    let mut w = World::new();
    for _ in 0..3 {
        w.chain.commit(vec![]).expect("empty block");
    }
    let (first, second) = equivocation();
    let mut civil = node("civil-affairs");
    w.chain
        .commit(vec![civil.sign(body("civil-affairs", first, second))])
        .expect("evidence of an earlier height applies");
    let record = w
        .chain
        .state
        .evidence
        .values()
        .next()
        .cloned()
        .expect("one");
    assert_eq!(record.height, Height(1));
    assert_eq!(record.included_at, w.chain.height());
}
