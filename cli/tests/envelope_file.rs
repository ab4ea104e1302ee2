//! Whole-file encryption and decryption: nothing appears at the output
//! path unless the whole envelope authenticated and the fixity matched.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use custody_cli::envelope::{
    decrypt_file, encrypt_file, DataKey, EncryptOptions, EnvelopeError, ExpectedFixity,
};
use sha2::{Digest, Sha256};

fn entries(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn setup(size: usize) -> (tempfile::TempDir, Vec<u8>, DataKey) {
    let directory = tempfile::tempdir().unwrap();
    let document: Vec<u8> = (0..size).map(|index| (index % 253) as u8).collect();
    std::fs::write(directory.path().join("deed.pdf"), &document).unwrap();
    (directory, document, DataKey::generate().unwrap())
}

const OPTIONS: EncryptOptions = EncryptOptions { chunk_bytes: 1024 };

#[test]
fn file_round_trip_checks_fixity_and_writes_0600() {
    let (directory, document, data_key) = setup(10_000);
    let root = directory.path();
    let sealed = encrypt_file(
        &root.join("deed.pdf"),
        &root.join("deed.env"),
        &data_key,
        OPTIONS,
    )
    .unwrap();
    assert_eq!(
        sealed.plaintext.sha256,
        <[u8; 32]>::from(Sha256::digest(&document))
    );
    let envelope = std::fs::read(root.join("deed.env")).unwrap();
    assert_eq!(
        sealed.ciphertext.sha256,
        <[u8; 32]>::from(Sha256::digest(&envelope))
    );

    let expected = ExpectedFixity {
        plaintext: Some(sealed.plaintext),
        ciphertext: Some(sealed.ciphertext),
    };
    let opened = decrypt_file(
        &root.join("deed.env"),
        &root.join("out.pdf"),
        &data_key,
        expected,
    )
    .unwrap();
    assert_eq!(opened, sealed);
    assert_eq!(std::fs::read(root.join("out.pdf")).unwrap(), document);
    let mode = std::fs::metadata(root.join("out.pdf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(entries(root), ["deed.env", "deed.pdf", "out.pdf"]);
}

#[test]
fn tampered_envelope_leaves_no_output_file() {
    let (directory, _, data_key) = setup(10_000);
    let root = directory.path();
    encrypt_file(
        &root.join("deed.pdf"),
        &root.join("deed.env"),
        &data_key,
        OPTIONS,
    )
    .unwrap();
    let mut envelope = std::fs::read(root.join("deed.env")).unwrap();
    let last = envelope.len() - 1;
    envelope[last] ^= 1;
    std::fs::write(root.join("deed.env"), &envelope).unwrap();
    let error = decrypt_file(
        &root.join("deed.env"),
        &root.join("out.pdf"),
        &data_key,
        ExpectedFixity::default(),
    )
    .unwrap_err();
    assert!(
        matches!(error, EnvelopeError::ChunkNotAuthentic { chunk_index: 9 }),
        "{error}"
    );
    assert_eq!(entries(root), ["deed.env", "deed.pdf"]);
}

#[test]
fn fixity_mismatch_is_refused_and_keeps_the_previous_file() {
    let (directory, _, data_key) = setup(3_000);
    let root = directory.path();
    let sealed = encrypt_file(
        &root.join("deed.pdf"),
        &root.join("deed.env"),
        &data_key,
        OPTIONS,
    )
    .unwrap();
    std::fs::write(root.join("out.pdf"), b"previous").unwrap();
    let mut wrong = sealed.plaintext;
    wrong.sha256[0] ^= 1;
    let error = decrypt_file(
        &root.join("deed.env"),
        &root.join("out.pdf"),
        &data_key,
        ExpectedFixity {
            plaintext: Some(wrong),
            ciphertext: None,
        },
    )
    .unwrap_err();
    assert!(
        matches!(error, EnvelopeError::FixityMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("deed.env"), "{error}");
    assert_eq!(std::fs::read(root.join("out.pdf")).unwrap(), b"previous");
    assert_eq!(entries(root), ["deed.env", "deed.pdf", "out.pdf"]);
}

#[test]
fn missing_input_names_the_file() {
    let (directory, _, data_key) = setup(0);
    let root = directory.path();
    let error = encrypt_file(
        &root.join("absent.pdf"),
        &root.join("x.env"),
        &data_key,
        OPTIONS,
    )
    .unwrap_err();
    assert!(error.to_string().contains("absent.pdf"), "{error}");
    assert_eq!(entries(root), ["deed.pdf"]);
}
