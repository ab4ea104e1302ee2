//! Sealed text (`docs/envelope.md`, "The metadata key"): what is sealed
//! opens with the same data key, document and field, and with nothing
//! else; one flipped byte anywhere is refused.

use custody_cli::envelope::{
    open_sealed, seal, DataKey, MetadataKey, SealError, SEALED_OVERHEAD_BYTES,
};
use proptest::prelude::*;

const DOCUMENT: &str = "civil-affairs/2026/000123";

fn key(byte: u8) -> MetadataKey {
    MetadataKey::derive(&DataKey::from_bytes([byte; 32]), DOCUMENT)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sealing_round_trips(text in ".{0,200}", byte in any::<u8>()) {
        let key = key(byte);
        let sealed = seal(&key, DOCUMENT, "title", &text).unwrap();
        prop_assert_eq!(sealed.len(), text.len() + SEALED_OVERHEAD_BYTES);
        prop_assert_eq!(open_sealed(&key, DOCUMENT, "title", &sealed).unwrap(), text);
    }

    #[test]
    fn sealed_text_with_a_flipped_byte_does_not_open(
        text in ".{0,64}",
        position in any::<usize>(),
        xor in 1u8..,
    ) {
        let key = key(7);
        let mut sealed = seal(&key, DOCUMENT, "purpose", &text).unwrap();
        let index = position % sealed.len();
        sealed[index] ^= xor;
        prop_assert!(matches!(
            open_sealed(&key, DOCUMENT, "purpose", &sealed),
            Err(SealError::WrongKeyOrTampered)
        ));
    }
}

#[test]
fn sealed_text_does_not_open_under_another_document_id() {
    let data_key = DataKey::from_bytes([3; 32]);
    let sealed = seal(
        &MetadataKey::derive(&data_key, DOCUMENT),
        DOCUMENT,
        "title",
        "Birth registration, Zhao Min",
    )
    .unwrap();
    let other = "civil-affairs/2026/000124";
    // Neither with the other document's metadata key, nor with this
    // document's key but the other document's associated data.
    let other_key = MetadataKey::derive(&data_key, other);
    assert!(open_sealed(&other_key, other, "title", &sealed).is_err());
    assert!(open_sealed(
        &MetadataKey::derive(&data_key, DOCUMENT),
        other,
        "title",
        &sealed
    )
    .is_err());
}

#[test]
fn sealed_text_does_not_open_as_another_field() {
    let key = key(4);
    let sealed = seal(&key, DOCUMENT, "reason", "not ours to archive").unwrap();
    assert!(matches!(
        open_sealed(&key, DOCUMENT, "purpose", &sealed),
        Err(SealError::WrongKeyOrTampered)
    ));
    assert_eq!(
        open_sealed(&key, DOCUMENT, "reason", &sealed).unwrap(),
        "not ours to archive"
    );
}

#[test]
fn sealed_text_does_not_open_under_another_versions_data_key() {
    let sealed = seal(&key(5), DOCUMENT, "title", "Residence permit").unwrap();
    assert!(matches!(
        open_sealed(&key(6), DOCUMENT, "title", &sealed),
        Err(SealError::WrongKeyOrTampered)
    ));
}

#[test]
fn sealed_text_shorter_than_a_nonce_and_a_tag_is_refused() {
    let short = vec![0u8; SEALED_OVERHEAD_BYTES - 1];
    assert!(matches!(
        open_sealed(&key(1), DOCUMENT, "title", &short),
        Err(SealError::TooShort { found_bytes }) if found_bytes == SEALED_OVERHEAD_BYTES - 1
    ));
}

#[test]
fn sealing_the_same_text_twice_gives_different_bytes() {
    let key = key(2);
    let first = seal(&key, DOCUMENT, "title", "Vaccination record").unwrap();
    let second = seal(&key, DOCUMENT, "title", "Vaccination record").unwrap();
    assert_ne!(first, second, "each seal draws a fresh nonce");
}

/// The committed sealed-text vectors (`ledger/tests/vectors/v4.json`,
/// made by the ledger's own few lines from the docs) open with this module.
#[test]
fn the_committed_sealed_text_vectors_open() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ledger/tests/vectors/v4.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("v4.json is committed"))
            .expect("v4.json parses");
    let document = v["document"].as_str().expect("document");
    let hex_of =
        |value: &serde_json::Value| hex::decode(value.as_str().expect("hex")).expect("hex");
    let texts = v["sealed_texts"].as_array().expect("sealed texts");
    assert!(!texts.is_empty());
    for text in texts {
        let version = text["version"].as_u64().expect("version") as usize;
        let data_key: [u8; 32] = hex_of(&v["metadata_keys"][version - 1]["data_key_hex"])
            .try_into()
            .expect("32 bytes");
        let key = MetadataKey::derive(&DataKey::from_bytes(data_key), document);
        assert_eq!(
            hex::encode(key.as_bytes()),
            v["metadata_keys"][version - 1]["metadata_key_hex"]
                .as_str()
                .expect("hex")
        );
        let field = text["field"].as_str().expect("field");
        let opened = open_sealed(&key, document, field, &hex_of(&text["sealed_hex"]))
            .expect("the vector opens");
        assert_eq!(opened, text["plaintext"].as_str().expect("plaintext"));
    }
}

/// The worked example of `docs/envelope.md` ("The metadata key and sealed
/// text") is what this code computes, byte for byte.
#[test]
fn the_worked_example_of_a_sealed_title_is_the_codes() {
    let docs = include_str!("../../docs/envelope.md");
    let data_key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let nonce: [u8; 24] = std::array::from_fn(|i| 0x90 + i as u8);
    let document = "civil-affairs/2026/000123";
    let key = MetadataKey::derive(&DataKey::from_bytes(data_key), document);
    let sealed = custody_cli::envelope::seal_with_nonce(
        &key,
        document,
        "title",
        "Deed of sale, parcel 1952/7",
        nonce,
    )
    .unwrap();
    assert_eq!(sealed.len(), 27 + SEALED_OVERHEAD_BYTES);
    let (nonce_part, rest) = sealed.split_at(24);
    let (ciphertext, tag) = rest.split_at(rest.len() - 16);
    for (label, bytes) in [
        ("metadata key", key.as_bytes().as_slice()),
        ("nonce", nonce_part),
        ("ciphertext", ciphertext),
        ("tag", tag),
    ] {
        let hex_text = hex::encode(bytes);
        assert!(
            docs.contains(&hex_text),
            "docs/envelope.md does not show the {label} as {hex_text}"
        );
    }
}
