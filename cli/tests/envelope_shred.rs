//! Version 2 envelopes (crypto-shredding): the content key needs both the
//! data key and the shred share, a share is checked against the header's
//! commitment, and version 1 envelopes still open with the data key alone.

use custody_cli::envelope::{
    decrypt, decrypt_shredded, encrypt, encrypt_shredded, share_commitment_of, DataKey,
    EncryptOptions, EnvelopeError, ShredShare, ENVELOPE_VERSION_SHRED, HEADER_BYTES,
    SHRED_HEADER_BYTES, TAG_BYTES,
};
use proptest::prelude::*;

const DOCUMENT: &str = "ca/2026/0001";

fn seal(plaintext: &[u8], data_key: &DataKey, share: &ShredShare, chunk_bytes: u32) -> Vec<u8> {
    let mut envelope = Vec::new();
    encrypt_shredded(
        plaintext,
        &mut envelope,
        data_key,
        share,
        DOCUMENT,
        EncryptOptions { chunk_bytes },
    )
    .expect("encrypt");
    envelope
}

fn open(
    envelope: &[u8],
    data_key: &DataKey,
    share: Option<&ShredShare>,
    document: &str,
) -> Result<Vec<u8>, EnvelopeError> {
    let mut plaintext = Vec::new();
    decrypt_shredded(envelope, &mut plaintext, data_key, share, document)?;
    Ok(plaintext)
}

#[test]
fn a_version_2_envelope_opens_with_the_data_key_and_its_share() {
    let data_key = DataKey::from_bytes([1; 32]);
    let share = ShredShare::from_bytes([2; 32]);
    let envelope = seal(b"birth register, 1962", &data_key, &share, 8);
    assert_eq!(envelope[8], ENVELOPE_VERSION_SHRED);
    assert_eq!(
        &envelope[HEADER_BYTES..SHRED_HEADER_BYTES],
        share.commitment()
    );
    assert_eq!(
        share_commitment_of(&envelope).expect("a header"),
        Some(share.commitment())
    );
    let opened = open(&envelope, &data_key, Some(&share), DOCUMENT).expect("open");
    assert_eq!(opened, b"birth register, 1962");
}

#[test]
fn a_version_2_envelope_without_its_share_is_refused_as_share_missing() {
    let data_key = DataKey::from_bytes([1; 32]);
    let envelope = seal(b"deed", &data_key, &ShredShare::from_bytes([2; 32]), 8);
    assert!(matches!(
        open(&envelope, &data_key, None, DOCUMENT),
        Err(EnvelopeError::ShareMissing)
    ));
    let mut plaintext = Vec::new();
    assert!(matches!(
        decrypt(envelope.as_slice(), &mut plaintext, &data_key),
        Err(EnvelopeError::ShareMissing)
    ));
    assert!(plaintext.is_empty());
}

#[test]
fn a_tampered_share_is_refused_by_the_commitment_check() {
    let data_key = DataKey::from_bytes([1; 32]);
    let envelope = seal(b"deed", &data_key, &ShredShare::from_bytes([2; 32]), 8);
    let mut tampered = [2u8; 32];
    tampered[0] ^= 0x80;
    let error = open(
        &envelope,
        &data_key,
        Some(&ShredShare::from_bytes(tampered)),
        DOCUMENT,
    )
    .unwrap_err();
    assert!(
        matches!(error, EnvelopeError::ShareMismatch { .. }),
        "{error}"
    );
}

#[test]
fn a_changed_commitment_in_the_header_fails_authentication() {
    // Whoever rewrites the header's commitment to fit another share still
    // cannot open the envelope: the header is every chunk's associated data.
    let data_key = DataKey::from_bytes([1; 32]);
    let envelope = seal(b"deed", &data_key, &ShredShare::from_bytes([2; 32]), 8);
    let other = ShredShare::from_bytes([3; 32]);
    let mut forged = envelope.clone();
    forged[HEADER_BYTES..SHRED_HEADER_BYTES].copy_from_slice(&other.commitment());
    assert!(matches!(
        open(&forged, &data_key, Some(&other), DOCUMENT),
        Err(EnvelopeError::ChunkNotAuthentic { chunk_index: 0 })
    ));
}

#[test]
fn a_version_2_envelope_opens_only_under_its_own_document_id() {
    let data_key = DataKey::from_bytes([1; 32]);
    let share = ShredShare::from_bytes([2; 32]);
    let envelope = seal(b"deed", &data_key, &share, 8);
    assert!(matches!(
        open(&envelope, &data_key, Some(&share), "ca/2026/0002"),
        Err(EnvelopeError::ChunkNotAuthentic { chunk_index: 0 })
    ));
}

#[test]
fn a_version_1_envelope_still_opens_with_the_data_key_alone() {
    let data_key = DataKey::from_bytes([4; 32]);
    let mut envelope = Vec::new();
    encrypt(&b"old record"[..], &mut envelope, &data_key).expect("encrypt");
    assert_eq!(share_commitment_of(&envelope).expect("a header"), None);
    let opened = open(&envelope, &data_key, None, DOCUMENT).expect("open");
    assert_eq!(opened, b"old record");
    let share = ShredShare::from_bytes([5; 32]);
    let opened = open(&envelope, &data_key, Some(&share), DOCUMENT).expect("open");
    assert_eq!(opened, b"old record", "a share is ignored by version 1");
}

#[test]
fn a_version_2_header_cut_short_is_refused_as_truncated() {
    let data_key = DataKey::from_bytes([1; 32]);
    let share = ShredShare::from_bytes([2; 32]);
    let envelope = seal(b"deed", &data_key, &share, 8);
    assert!(matches!(
        open(&envelope[..40], &data_key, Some(&share), DOCUMENT),
        Err(EnvelopeError::HeaderTruncated { found_bytes: 40 })
    ));
}

proptest! {
    #[test]
    fn version_2_decrypt_of_encrypt_is_identity(
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        chunk_bytes in 1u32..64,
        key in any::<[u8; 32]>(),
        share in any::<[u8; 32]>(),
    ) {
        let data_key = DataKey::from_bytes(key);
        let share = ShredShare::from_bytes(share);
        let envelope = seal(&plaintext, &data_key, &share, chunk_bytes);
        let full_chunks = plaintext.len() / chunk_bytes as usize;
        prop_assert_eq!(envelope.len(), SHRED_HEADER_BYTES + plaintext.len() + (full_chunks + 1) * TAG_BYTES);
        let opened = open(&envelope, &data_key, Some(&share), DOCUMENT)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(opened, plaintext);
    }

    #[test]
    fn random_bytes_never_panic_the_version_2_decoder(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        if bytes.len() > 8 {
            bytes[..8].copy_from_slice(b"CUSTENV\0");
            bytes[8] = ENVELOPE_VERSION_SHRED;
        }
        let share = ShredShare::from_bytes([0; 32]);
        let _ = open(&bytes, &DataKey::from_bytes([0; 32]), Some(&share), DOCUMENT);
        let _ = share_commitment_of(&bytes);
    }
}
