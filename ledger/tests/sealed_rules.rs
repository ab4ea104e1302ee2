//! The sealed kinds (transaction format version 4, `docs/rules.md` §11):
//! one test per rule, and the effects each kind has on the document and
//! its history. The ledger checks shapes only, so the sealed texts here
//! are bytes of the right length, not real ciphertext.

mod common;

use common::*;
use custody_ledger::encoding;
use custody_ledger::records::{DocumentEvent, EventKind};
use custody_ledger::sealed::{SealedText, SEALED_TEXT_OVERHEAD_BYTES};
use custody_ledger::testkit::department;
use custody_ledger::tx::{
    AmendReason, FixityResult, SignedTransaction, TxBody, TEXT_BYTES_MAX, TX_FORMAT_VERSION_SEALED,
};
use custody_ledger::types::*;

/// A well-formed sealed text standing for `plaintext_len` bytes.
fn sealed(plaintext_len: usize, fill: u8) -> SealedText {
    SealedText(vec![fill; plaintext_len + SEALED_TEXT_OVERHEAD_BYTES])
}

fn register_sealed_body(w: &World, id: &str, title: SealedText) -> TxBody {
    let TxBody::Register {
        document,
        record_type,
        department,
        created,
        classification,
        retention,
        format,
        plaintext,
        ciphertext,
        subject_tag,
        wrapped_key,
        ..
    } = w.register_body(
        id,
        "civil-affairs",
        Classification::Internal,
        Retention::Years(10),
    )
    else {
        unreachable!("register_body builds a register");
    };
    TxBody::RegisterSealed {
        document,
        title,
        record_type,
        department,
        created,
        classification,
        retention,
        format,
        plaintext,
        ciphertext,
        subject_tag,
        wrapped_key,
    }
}

fn register_sealed(w: &mut World, id: &str) {
    let body = register_sealed_body(w, id, sealed(20, 7));
    w.ok("ca-clerk", body);
}

fn amend_sealed_body(w: &World, id: &str, note: SealedText, title: SealedText) -> TxBody {
    TxBody::AmendSealed {
        document: doc_id(id),
        previous_event: w.latest(id),
        reason: AmendReason::Correction,
        note,
        title,
        format: Format {
            mime: "application/pdf".to_string(),
            pronom: None,
        },
        plaintext: fixity(&format!("{id}/plain/2"), 1001),
        ciphertext: fixity(&format!("{id}/cipher/2"), 1041),
        wrapped_key: wrapped(&format!("{id}/v2")),
    }
}

fn last_event(w: &World, id: &str) -> DocumentEvent {
    w.chain.state.events[&doc_id(id)]
        .last()
        .cloned()
        .expect("the document has events")
}

#[test]
fn sealed_register_keeps_the_title_sealed_and_none_in_the_clear() {
    let mut w = World::new();
    let title = sealed(30, 9);
    let body = register_sealed_body(&w, "D1", title.clone());
    let tx = w.ok("ca-clerk", body);
    assert_eq!(tx.payload.format_version, TX_FORMAT_VERSION_SEALED);
    let doc = w.doc("D1");
    assert_eq!(doc.title, "");
    assert!(doc.title_is_sealed());
    let event = last_event(&w, "D1");
    assert_eq!(event.kind.sealed_title(), Some(&title));
    assert!(matches!(event.kind, EventKind::RegisteredSealed { .. }));
    assert_eq!(event.format_version, TX_FORMAT_VERSION_SEALED);
}

#[test]
fn sealed_text_is_refused_when_shorter_than_a_nonce_and_a_tag() {
    let mut w = World::new();
    let short = SealedText(vec![1; SEALED_TEXT_OVERHEAD_BYTES - 1]);
    let body = register_sealed_body(&w, "D1", short);
    assert_eq!(w.refused("ca-clerk", body).code(), "sealed_text_malformed");
}

#[test]
fn sealed_text_is_refused_when_its_plaintext_is_longer_than_the_text_limit() {
    let mut w = World::new();
    let body = register_sealed_body(&w, "D1", sealed(TEXT_BYTES_MAX + 1, 1));
    assert_eq!(w.refused("ca-clerk", body).code(), "text_too_long");
    // The longest one allowed applies.
    let body = register_sealed_body(&w, "D1", sealed(TEXT_BYTES_MAX, 1));
    w.ok("ca-clerk", body);
}

#[test]
fn sealed_kind_is_refused_when_its_payload_states_format_version_1() {
    let mut w = World::new();
    let body = register_sealed_body(&w, "D1", sealed(10, 1));
    let signer = w.signer("ca-clerk").clone();
    let mut payload = signer.sign_with_nonce(body, signer.next_nonce).payload;
    // Signed afresh so that only the version is wrong.
    payload.format_version = FORMAT_VERSION;
    let signature = encoding::sign(&signer.key, encoding::tags::TX_PAYLOAD, &payload);
    let refusal = w.refused_tx(SignedTransaction { payload, signature });
    assert_eq!(refusal.code(), "format_version_mismatch");
}

#[test]
fn amend_is_refused_when_the_title_is_sealed() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    let body = TxBody::Amend {
        document: doc_id("D1"),
        previous_event: w.latest("D1"),
        reason: AmendReason::Correction,
        note: String::new(),
        format: Format {
            mime: "application/pdf".to_string(),
            pronom: None,
        },
        plaintext: fixity("D1/plain/2", 1001),
        ciphertext: fixity("D1/cipher/2", 1041),
        wrapped_key: wrapped("D1/v2"),
    };
    assert_eq!(
        w.refused("ca-clerk", body).code(),
        "sealed_title_needs_sealed_amend"
    );
}

#[test]
fn amend_sealed_seals_the_title_again_under_the_new_version() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    let new_title = sealed(25, 3);
    let note = sealed(12, 4);
    let body = amend_sealed_body(&w, "D1", note.clone(), new_title.clone());
    w.ok("ca-clerk", body);
    let doc = w.doc("D1");
    assert_eq!(doc.version, 2);
    assert!(doc.title_is_sealed());
    assert_eq!(doc.custodian_key, wrapped("D1/v2"));
    let event = last_event(&w, "D1");
    assert_eq!(event.format_version, TX_FORMAT_VERSION_SEALED);
    assert_eq!(event.kind.sealed_title(), Some(&new_title));
    let EventKind::AmendedSealed {
        version,
        note: recorded,
        ..
    } = event.kind
    else {
        panic!("expected amended-sealed, got {:?}", event.kind);
    };
    assert_eq!(version, 2);
    assert_eq!(recorded, note);
}

#[test]
fn amend_sealed_seals_a_title_that_was_in_the_clear() {
    let mut w = World::new();
    w.register("D1");
    assert!(!w.doc("D1").title_is_sealed());
    let body = amend_sealed_body(&w, "D1", sealed(0, 4), sealed(8, 3));
    w.ok("ca-clerk", body);
    assert!(w.doc("D1").title_is_sealed());
}

#[test]
fn amend_sealed_is_refused_when_its_title_is_malformed() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    let body = amend_sealed_body(&w, "D1", sealed(0, 4), SealedText(vec![0; 3]));
    assert_eq!(w.refused("ca-clerk", body).code(), "sealed_text_malformed");
}

#[test]
fn reject_sealed_records_the_sealed_reason() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    let body = w.offer_body("D1", "social-security", None);
    w.ok("ca-clerk", body);
    let reason = sealed(40, 5);
    let body = TxBody::RejectTransferSealed {
        document: doc_id("D1"),
        previous_event: w.latest("D1"),
        reason: reason.clone(),
    };
    w.ok("ss-clerk", body);
    assert_eq!(w.doc("D1").custodian, department("civil-affairs"));
    assert_eq!(
        last_event(&w, "D1").kind,
        EventKind::RejectedSealed { reason }
    );
}

#[test]
fn record_access_sealed_records_the_sealed_purpose() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    let purpose = sealed(33, 6);
    let ciphertext_sha256 = w.doc("D1").ciphertext.sha256;
    let body = TxBody::RecordAccessSealed {
        document: doc_id("D1"),
        previous_event: w.latest("D1"),
        purpose: purpose.clone(),
        ciphertext_sha256,
    };
    w.ok("ca-clerk", body);
    assert_eq!(
        last_event(&w, "D1").kind,
        EventKind::AccessedSealed {
            purpose,
            ciphertext_sha256
        }
    );
}

#[test]
fn record_access_sealed_is_refused_without_an_access_right() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    let body = TxBody::RecordAccessSealed {
        document: doc_id("D1"),
        previous_event: w.latest("D1"),
        purpose: sealed(10, 6),
        ciphertext_sha256: w.doc("D1").ciphertext.sha256,
    };
    assert_eq!(w.refused("ss-clerk", body).code(), "no_access_right");
}

#[test]
fn record_fixity_check_sealed_records_a_fixity_check() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    let ciphertext_sha256 = w.doc("D1").ciphertext.sha256;
    let body = TxBody::RecordFixityCheckSealed {
        document: doc_id("D1"),
        previous_event: w.latest("D1"),
        ciphertext_sha256,
        result: FixityResult::Intact,
        note: sealed(15, 2),
    };
    w.ok("ca-clerk", body);
    assert_eq!(
        last_event(&w, "D1").kind,
        EventKind::FixityChecked {
            ciphertext_sha256,
            result: FixityResult::Intact
        }
    );
}

#[test]
fn dispose_sealed_records_the_sealed_reason() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    w.advance(11 * YEAR_MS);
    let reason = sealed(17, 8);
    let body = TxBody::DisposeSealed {
        document: doc_id("D1"),
        previous_event: w.latest("D1"),
        reason: reason.clone(),
    };
    w.ok("civil-affairs-admin", body);
    assert_eq!(
        last_event(&w, "D1").kind,
        EventKind::DisposedSealed { reason }
    );
}

#[test]
fn dispose_sealed_is_refused_when_its_reason_is_malformed() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    w.advance(11 * YEAR_MS);
    let body = TxBody::DisposeSealed {
        document: doc_id("D1"),
        previous_event: w.latest("D1"),
        reason: SealedText(Vec::new()),
    };
    assert_eq!(
        w.refused("civil-affairs-admin", body).code(),
        "sealed_text_malformed"
    );
}

#[test]
fn amend_sealed_records_a_redaction_as_its_reason() {
    let mut w = World::new();
    register_sealed(&mut w, "D1");
    let TxBody::AmendSealed {
        document,
        previous_event,
        note,
        title,
        format,
        plaintext,
        ciphertext,
        wrapped_key,
        ..
    } = amend_sealed_body(&w, "D1", sealed(10, 4), sealed(20, 3))
    else {
        unreachable!("amend_sealed_body builds an amend-sealed");
    };
    w.ok(
        "ca-clerk",
        TxBody::AmendSealed {
            document,
            previous_event,
            reason: AmendReason::Redaction,
            note,
            title,
            format,
            plaintext,
            ciphertext,
            wrapped_key,
        },
    );
    assert_eq!(w.doc("D1").version, 2);
    let EventKind::AmendedSealed { reason, .. } = last_event(&w, "D1").kind else {
        panic!("expected amended-sealed");
    };
    assert_eq!(reason, AmendReason::Redaction);
}
