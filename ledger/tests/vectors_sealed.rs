//! Committed test vectors of transaction format version 4, the sealed kinds
//! (`docs/format.md` §3, "Sealed text"; `docs/rules.md` §11): the metadata
//! keys of two data keys, sealed texts with their nonces and associated
//! data, the six sealed transactions, and the block after the v1 vector
//! block that applies five of them, made from the fixed seed keys of
//! `v1.json`. The sealing here is a few lines written from the docs, not
//! the CLI's envelope module (whose own test opens these vectors). The file
//! never changes once released; this test proves the code still produces
//! exactly it and that it decodes, verifies and applies. Regenerate (before
//! release only) with `CUSTODY_WRITE_VECTORS_SEALED=1 cargo test --release
//! -p custody-ledger --test vectors_sealed`.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use custody_ledger::block::{self, Block, Header};
use custody_ledger::encoding;
use custody_ledger::genesis::Genesis;
use custody_ledger::records::EventKind;
use custody_ledger::sealed::{self, fields, SealedText};
use custody_ledger::testkit::{certify_with, seed_key};
use custody_ledger::tx::{
    AmendReason, FixityResult, SignedTransaction, TxBody, TX_FORMAT_VERSION_SEALED,
};
use custody_ledger::types::*;
use custody_ledger::MemoryState;
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use serde_json::{json, Value};
use sha2::Sha256;

mod vector_files;
use vector_files::{assert_independent_check, assert_reproduced, hex_of, load, v1};

fn vectors_path() -> String {
    vector_files::path("v4.json")
}
const DOCUMENT: &str = "civil-affairs/2026/000002";
/// Block 2's time: 4 s after the genesis.
const BLOCK_TIME_MS: u64 = 1_767_225_604_000;

/// HKDF-SHA256(ikm = data key, no salt, info = tagged("custody/metadata-key/v1", id)).
fn metadata_key(data_key: &[u8; 32], document: &DocumentId) -> [u8; 32] {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, data_key)
        .expand(&sealed::metadata_key_info(document), &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

/// nonce || XChaCha20-Poly1305(metadata key, nonce, ad, text) || tag.
fn seal(key: &[u8; 32], nonce: [u8; 24], ad: &[u8], text: &str) -> SealedText {
    let mut body = text.as_bytes().to_vec();
    let tag = XChaCha20Poly1305::new(&Key::from(*key))
        .encrypt_inout_detached(&XNonce::from(nonce), ad, body.as_mut_slice().into())
        .expect("a short text seals");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    SealedText(out)
}

struct Sealing {
    vectors: Vec<Value>,
}

impl Sealing {
    /// Seals `text` as `field` under `key` with the nonce `[byte; 24]`, and
    /// records the vector.
    fn seal(
        &mut self,
        name: &str,
        version: u32,
        key: &[u8; 32],
        field: &str,
        text: &str,
    ) -> SealedText {
        let document = DocumentId::new(DOCUMENT).expect("id");
        let nonce = [self.vectors.len() as u8 + 1; 24];
        let ad = sealed::associated_data(&document, field);
        let sealed = seal(key, nonce, &ad, text);
        self.vectors.push(json!({
            "name": name,
            "version": version,
            "field": field,
            "plaintext": text,
            "nonce_hex": hex::encode(nonce),
            "associated_data_hex": hex::encode(&ad),
            "sealed_hex": sealed.to_hex(),
        }));
        sealed
    }
}

fn tx_vector(name: &str, applied: bool, tx: &SignedTransaction) -> Value {
    json!({
        "name": name,
        "applied": applied,
        "value": tx,
        "canonical_hex": hex::encode(tx.to_bytes()),
        "payload_hex": hex::encode(encoding::encode(&tx.payload)),
        "signing_bytes_hex": hex::encode(tx.signing_bytes()),
        "signature": tx.signature,
        "id": tx.id(),
    })
}

/// Block 2 holding `txs`, after `first`.
fn block_after(genesis: &Genesis, first: &Block, txs: Vec<SignedTransaction>) -> Block {
    let validator = seed_key("vectors/validator");
    let ids: Vec<TxId> = txs.iter().map(|t| t.id()).collect();
    let first_cert = certify_with(
        std::slice::from_ref(&validator),
        &genesis.chain_id,
        first,
        Round(0),
    );
    Block {
        header: Header {
            format_version: 1,
            chain_id: genesis.chain_id.clone(),
            height: Height(2),
            time: Timestamp(BLOCK_TIME_MS),
            previous_block_hash: first.hash(),
            tx_root: block::tx_root(&ids),
            proposer: encoding::public_key_of(&validator),
            validator_set_hash: genesis.validator_set().hash(),
            last_commit_hash: first_cert.hash(),
        },
        transactions: txs,
        last_commit: Some(first_cert),
    }
}

fn after_block_1(genesis: &Genesis, first: &Block) -> MemoryState {
    let mut state = MemoryState::from_genesis(genesis);
    state.apply(custody_ledger::state::apply_block(&state, first).expect("block 1 applies"));
    state
}

/// The document's latest event once `txs` applied in block 2: what the
/// next transaction names as its previous event.
fn latest_after(genesis: &Genesis, first: &Block, txs: &[SignedTransaction]) -> EventHash {
    let state = after_block_1(genesis, first);
    let trial = block_after(genesis, first, txs.to_vec());
    let changes = custody_ledger::state::apply_block(&state, &trial).expect("the trial applies");
    let document = DocumentId::new(DOCUMENT).expect("id");
    changes
        .documents
        .get(&document)
        .map(|d| d.latest_event)
        .expect("the document changed")
}

fn sign(body: TxBody, key: &SigningKey, nonce: u64, chain_id: &str) -> SignedTransaction {
    SignedTransaction::sign(body, key, Nonce(nonce), chain_id)
}

fn build() -> (Value, Block, Block) {
    let (genesis, first) = v1();
    let chain_id = genesis.chain_id.clone();
    let clerk = seed_key("vectors/clerk");
    let admin = seed_key("vectors/admin");
    let document = DocumentId::new(DOCUMENT).expect("id");
    let data_key_1 = [0x11u8; 32];
    let data_key_2 = [0x22u8; 32];
    let key_1 = metadata_key(&data_key_1, &document);
    let key_2 = metadata_key(&data_key_2, &document);
    let mut sealing = Sealing {
        vectors: Vec::new(),
    };
    let fixity = |label: &str, size: u64| Fixity {
        sha256: encoding::sha256(label.as_bytes()),
        size_bytes: size,
    };

    let title_1 = sealing.seal(
        "register-title",
        1,
        &key_1,
        fields::TITLE,
        "Birth register 1951, Dongcheng",
    );
    let register = sign(
        TxBody::RegisterSealed {
            document: document.clone(),
            title: title_1,
            record_type: "register".to_string(),
            department: DepartmentId::new("civil-affairs").expect("id"),
            created: Timestamp(1_767_225_600_000),
            classification: Classification::Internal,
            retention: Retention::Years(0),
            format: Format {
                mime: "application/pdf".to_string(),
                pronom: Some("fmt/354".to_string()),
            },
            plaintext: fixity("v4/plain/1", 1000),
            ciphertext: fixity("v4/cipher/1", 1040),
            subject_tag: Some(encoding::sha256(b"v4/subject")),
            wrapped_key: WrappedKey(vec![0xbb; 8]),
        },
        &clerk,
        3,
        &chain_id,
    );
    let mut txs = vec![register.clone()];

    let purpose = sealing.seal(
        "access-purpose",
        1,
        &key_1,
        fields::PURPOSE,
        "citizen request 421",
    );
    let access = sign(
        TxBody::RecordAccessSealed {
            document: document.clone(),
            previous_event: latest_after(&genesis, &first, &txs),
            purpose,
            ciphertext_sha256: fixity("v4/cipher/1", 1040).sha256,
        },
        &clerk,
        4,
        &chain_id,
    );
    txs.push(access.clone());

    let fixity_note = sealing.seal(
        "fixity-check-note",
        1,
        &key_1,
        fields::NOTE,
        "checked against the paper register",
    );
    let fixity_check = sign(
        TxBody::RecordFixityCheckSealed {
            document: document.clone(),
            previous_event: latest_after(&genesis, &first, &txs),
            ciphertext_sha256: fixity("v4/cipher/1", 1040).sha256,
            result: FixityResult::Intact,
            note: fixity_note,
        },
        &clerk,
        5,
        &chain_id,
    );
    txs.push(fixity_check.clone());

    let amend_note = sealing.seal(
        "amend-note",
        2,
        &key_2,
        fields::NOTE,
        "year of birth corrected",
    );
    let title_2 = sealing.seal(
        "amend-title",
        2,
        &key_2,
        fields::TITLE,
        "Birth register 1952, Dongcheng",
    );
    let amend = sign(
        TxBody::AmendSealed {
            document: document.clone(),
            previous_event: latest_after(&genesis, &first, &txs),
            reason: AmendReason::Correction,
            note: amend_note,
            title: title_2,
            format: Format {
                mime: "application/pdf".to_string(),
                pronom: Some("fmt/354".to_string()),
            },
            plaintext: fixity("v4/plain/2", 1001),
            ciphertext: fixity("v4/cipher/2", 1041),
            wrapped_key: WrappedKey(vec![0xcc; 8]),
        },
        &clerk,
        6,
        &chain_id,
    );
    txs.push(amend.clone());

    let dispose_reason = sealing.seal(
        "dispose-reason",
        2,
        &key_2,
        fields::REASON,
        "retention period elapsed",
    );
    let dispose = sign(
        TxBody::DisposeSealed {
            document: document.clone(),
            previous_event: latest_after(&genesis, &first, &txs),
            reason: dispose_reason,
        },
        &admin,
        2,
        &chain_id,
    );
    txs.push(dispose.clone());

    // A rejection needs an offer to a second department, which the vector
    // genesis does not have: this one is only encoded and signed.
    let reject_reason = sealing.seal(
        "reject-reason",
        1,
        &key_1,
        fields::REASON,
        "not ours to archive",
    );
    let reject = sign(
        TxBody::RejectTransferSealed {
            document: document.clone(),
            previous_event: latest_after(&genesis, &first, &txs[..1]),
            reason: reject_reason,
        },
        &clerk,
        7,
        &chain_id,
    );

    let second = block_after(&genesis, &first, txs);
    let mut state = after_block_1(&genesis, &first);
    state.apply(custody_ledger::state::apply_block(&state, &second).expect("block 2 applies"));
    let events: Vec<Value> = state
        .events
        .get(&document)
        .into_iter()
        .flatten()
        .map(|event| {
            json!({
                "value": event,
                "canonical_hex": hex::encode(encoding::encode(event)),
                "hash": event.hash(),
            })
        })
        .collect();
    let value = json!({
        "format_version": TX_FORMAT_VERSION_SEALED,
        "description": format!(
            "Custody transaction format v{TX_FORMAT_VERSION_SEALED} test vectors: the sealed kinds. \
             Metadata keys derived from two data keys of document {DOCUMENT}, the texts sealed \
             under them (nonce [i; 24] for the i-th text), the six sealed transactions, and block 2 \
             after the v1 vector block applying the five marked applied. The wrapped keys are \
             placeholders; wrapping has its own vectors (docs/envelope.md). Keys as in v1.json. \
             See docs/format.md §3 and docs/rules.md §11."
        ),
        "document": DOCUMENT,
        "metadata_keys": [
            {
                "version": 1,
                "data_key_hex": hex::encode(data_key_1),
                "info_hex": hex::encode(sealed::metadata_key_info(&document)),
                "metadata_key_hex": hex::encode(key_1),
            },
            {
                "version": 2,
                "data_key_hex": hex::encode(data_key_2),
                "info_hex": hex::encode(sealed::metadata_key_info(&document)),
                "metadata_key_hex": hex::encode(key_2),
            },
        ],
        "sealed_texts": sealing.vectors,
        "transactions": [
            tx_vector("register-sealed", true, &register),
            tx_vector("record-access-sealed", true, &access),
            tx_vector("record-fixity-check-sealed", true, &fixity_check),
            tx_vector("amend-sealed", true, &amend),
            tx_vector("dispose-sealed", true, &dispose),
            tx_vector("reject-transfer-sealed", false, &reject),
        ],
        "block": {
            "canonical_hex": hex::encode(second.to_bytes()),
            "hash": second.hash(),
        },
        "events": events,
        "state_digest": state.digest(),
    });
    (value, first, second)
}

#[test]
fn committed_sealed_vectors_are_reproduced_exactly() {
    let (built, _, _) = build();
    assert_reproduced(&vectors_path(), &built, "CUSTODY_WRITE_VECTORS_SEALED");
}

#[test]
fn committed_sealed_vectors_decode_verify_and_apply_after_the_v1_block() {
    let v = load(&vectors_path());
    let (genesis, first) = v1();
    for t in v["transactions"].as_array().expect("transactions") {
        let tx = SignedTransaction::from_bytes(&hex_of(&t["canonical_hex"])).expect("decodes");
        assert_eq!(tx.payload.format_version, TX_FORMAT_VERSION_SEALED);
        assert_eq!(tx.payload.body.format_version(), TX_FORMAT_VERSION_SEALED);
        assert!(tx.verify_signature(), "{}", t["name"]);
        assert_eq!(tx.id().to_hex(), t["id"].as_str().expect("id"));
    }
    let second = Block::from_bytes(&hex_of(&v["block"]["canonical_hex"])).expect("block 2");
    let mut state = after_block_1(&genesis, &first);
    state.apply(custody_ledger::state::apply_block(&state, &second).expect("block 2"));
    let document = DocumentId::new(DOCUMENT).expect("id");
    let doc = &state.documents[&document];
    assert!(doc.title_is_sealed());
    assert_eq!(doc.version, 2);
    let events = &state.events[&document];
    assert!(matches!(events[0].kind, EventKind::RegisteredSealed { .. }));
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(EventKind::DisposedSealed { .. })
    ));
    assert_eq!(
        state.digest().to_hex(),
        v["state_digest"].as_str().expect("digest")
    );
}

#[test]
fn committed_sealed_texts_open_with_their_metadata_keys() {
    let v = load(&vectors_path());
    let document = DocumentId::new(DOCUMENT).expect("id");
    for key in v["metadata_keys"].as_array().expect("keys") {
        let data_key: [u8; 32] = hex_of(&key["data_key_hex"]).try_into().expect("32 bytes");
        assert_eq!(
            hex::encode(metadata_key(&data_key, &document)),
            key["metadata_key_hex"].as_str().expect("hex")
        );
    }
    for s in v["sealed_texts"].as_array().expect("texts") {
        let version = s["version"].as_u64().expect("version") as usize;
        let key: [u8; 32] = hex_of(&v["metadata_keys"][version - 1]["metadata_key_hex"])
            .try_into()
            .expect("32 bytes");
        let sealed = hex_of(&s["sealed_hex"]);
        let (nonce, rest) = sealed.split_at(24);
        let (ciphertext, tag) = rest.split_at(rest.len() - 16);
        let mut body = ciphertext.to_vec();
        let nonce: [u8; 24] = nonce.try_into().expect("24 bytes");
        XChaCha20Poly1305::new(&Key::from(key))
            .decrypt_inout_detached(
                &XNonce::from(nonce),
                &hex_of(&s["associated_data_hex"]),
                body.as_mut_slice().into(),
                &Tag::try_from(tag).expect("16 bytes"),
            )
            .expect("the sealed text opens");
        assert_eq!(body, s["plaintext"].as_str().expect("text").as_bytes());
    }
}

/// The worked example opens with the Python decoder written from the
/// docs (`tests/vectors/independent_check.py`), when Python is installed.
#[test]
fn sealed_vectors_pass_the_independent_python_check() {
    assert_independent_check(&vectors_path());
}
