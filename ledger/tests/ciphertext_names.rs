//! Which ciphertexts the store says committed transactions name
//! (`Store::named_ciphertexts`, `Store::ciphertext_names`): what the nodes
//! keep, and what they delete after a disposal.

mod common;

use common::*;
use custody_ledger::sealed::{SealedText, SEALED_TEXT_OVERHEAD_BYTES};
use custody_ledger::state;
use custody_ledger::store::Store;
use custody_ledger::tx::{AmendReason, TxBody};
use custody_ledger::types::*;

fn sealed(plaintext_len: usize, fill: u8) -> SealedText {
    SealedText(vec![fill; plaintext_len + SEALED_TEXT_OVERHEAD_BYTES])
}

/// The world's chain committed into a fresh store.
fn stored(w: &World) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_or_init(dir.path(), &w.chain.federation.genesis).expect("store");
    for (block, certificate) in &w.chain.blocks {
        let changes = state::apply_block(&store, block).expect("the block applies");
        store
            .commit(block, certificate, &changes)
            .expect("the block commits");
    }
    (dir, store)
}

fn amend_body(w: &World, id: &str, version: u32, sealed_kind: bool) -> TxBody {
    let format = Format {
        mime: "application/pdf".to_string(),
        pronom: None,
    };
    let plaintext = fixity(&format!("{id}/plain/{version}"), 900);
    let ciphertext = fixity(&format!("{id}/cipher/{version}"), 940);
    let wrapped_key = wrapped(&format!("{id}/v{version}"));
    if sealed_kind {
        TxBody::AmendSealed {
            document: doc_id(id),
            previous_event: w.latest(id),
            reason: AmendReason::Redaction,
            note: sealed(8, 1),
            title: sealed(12, 2),
            format,
            plaintext,
            ciphertext,
            wrapped_key,
        }
    } else {
        TxBody::Amend {
            document: doc_id(id),
            previous_event: w.latest(id),
            reason: AmendReason::Correction,
            note: "typo".to_string(),
            format,
            plaintext,
            ciphertext,
            wrapped_key,
        }
    }
}

fn register_disposable(w: &mut World, id: &str) {
    let body = w.register_body(
        id,
        "civil-affairs",
        Classification::Internal,
        Retention::Years(0),
    );
    w.ok("ca-clerk", body);
}

#[test]
fn an_amended_document_names_every_version_s_ciphertext_in_the_clear_and_sealed() {
    let mut w = World::new();
    w.register("d1");
    let first = w.doc("d1").ciphertext.sha256;
    w.ok("ca-clerk", amend_body(&w, "d1", 2, false));
    let second = w.doc("d1").ciphertext.sha256;
    // A sealed amendment records `amended-sealed`: its earlier version is
    // named as well as an `amended` one's.
    w.ok("ca-clerk", amend_body(&w, "d1", 3, true));
    let third = w.doc("d1").ciphertext.sha256;
    let (_dir, store) = stored(&w);
    let named = store.named_ciphertexts().expect("names");
    for sha256 in [first, second, third] {
        assert!(named.contains(&sha256), "{sha256} is not named");
    }
    assert_eq!(named.len(), 3);
}

#[test]
fn a_disposed_document_s_ciphertexts_are_named_as_disposed_not_as_kept() {
    let mut w = World::new();
    register_disposable(&mut w, "d1");
    let first = w.doc("d1").ciphertext.sha256;
    w.ok("ca-clerk", amend_body(&w, "d1", 2, true));
    let second = w.doc("d1").ciphertext.sha256;
    w.ok("civil-affairs-admin", w.dispose_body("d1"));
    w.register("d2");
    let kept = w.doc("d2").ciphertext.sha256;
    let (_dir, store) = stored(&w);
    let names = store.ciphertext_names().expect("names");
    assert_eq!(
        names.live,
        std::collections::HashSet::from([kept]),
        "only the live document's ciphertext is kept"
    );
    assert_eq!(names.disposed.get(&first), Some(&doc_id("d1")));
    assert_eq!(names.disposed.get(&second), Some(&doc_id("d1")));
    assert_eq!(names.disposed.len(), 2);
    assert_eq!(
        store.named_ciphertexts().expect("names"),
        names.live,
        "named_ciphertexts is the kept set"
    );
}
