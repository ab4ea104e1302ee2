//! The worked example of `docs/envelope.md`, section 4a (envelope format
//! version 2): the share commitment, the content key and the envelope,
//! recomputed here from the primitives alone as an independent
//! implementation would, compared with what the library writes, and
//! checked to appear in the document byte for byte. These values never
//! change: data written by version 2 must open with every later build.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use custody_cli::envelope::{
    decrypt_shredded, encrypt_shredded_with_nonce_prefix, DataKey, EncryptOptions, ShredShare,
};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

const DOCS: &str = include_str!("../../docs/envelope.md");

/// The same data key, nonce prefix, plaintext and chunk size as the
/// version 1 example (section 4), and a share counting from 0x20.
fn data_key_bytes() -> [u8; 32] {
    std::array::from_fn(|index| index as u8)
}
fn share_bytes() -> [u8; 32] {
    std::array::from_fn(|index| 0x20 + index as u8)
}
fn nonce_prefix() -> [u8; 19] {
    std::array::from_fn(|index| 0xa0 + index as u8)
}
const PLAINTEXT: &[u8] = b"Deed of sale, parcel 1952/7.\nVault B.\n";
const CHUNK_BYTES: u32 = 16;
const DOCUMENT: &str = "ca/2026/0001";

/// `u8(len(tag)) || tag || body`.
fn tagged(tag: &str, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag.len() as u8];
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(body);
    out
}

fn independent_commitment() -> [u8; 32] {
    Sha256::digest(tagged("custody/shred-share/v1", &share_bytes())).into()
}

fn independent_content_key() -> [u8; 32] {
    let mut ikm = data_key_bytes().to_vec();
    ikm.extend_from_slice(&share_bytes());
    let hkdf = Hkdf::<Sha256>::new(None, &ikm);
    let mut key = [0u8; 32];
    hkdf.expand(
        &tagged("custody/content-key/v1", DOCUMENT.as_bytes()),
        &mut key,
    )
    .expect("32 bytes");
    key
}

fn independent_envelope() -> Vec<u8> {
    let mut header = b"CUSTENV\0".to_vec();
    header.push(2);
    header.extend_from_slice(&CHUNK_BYTES.to_be_bytes());
    header.extend_from_slice(&nonce_prefix());
    header.extend_from_slice(&independent_commitment());
    assert_eq!(header.len(), 64);
    let cipher = XChaCha20Poly1305::new(&Key::from(independent_content_key()));
    let chunks: Vec<&[u8]> = PLAINTEXT.chunks(CHUNK_BYTES as usize).collect();
    assert_eq!(chunks.len(), 3, "38 bytes: two full chunks and 6 bytes");
    let mut envelope = header.clone();
    for (counter, chunk) in chunks.iter().enumerate() {
        let mut nonce = [0u8; 24];
        nonce[..19].copy_from_slice(&nonce_prefix());
        nonce[19..23].copy_from_slice(&(counter as u32).to_be_bytes());
        nonce[23] = u8::from(counter == chunks.len() - 1);
        let mut buffer = chunk.to_vec();
        let tag = cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &header, buffer.as_mut_slice().into())
            .expect("seal");
        buffer.extend_from_slice(&tag);
        envelope.extend_from_slice(&buffer);
    }
    envelope
}

fn library_envelope() -> Vec<u8> {
    let mut envelope = Vec::new();
    encrypt_shredded_with_nonce_prefix(
        PLAINTEXT,
        &mut envelope,
        (
            &DataKey::from_bytes(data_key_bytes()),
            &ShredShare::from_bytes(share_bytes()),
        ),
        DOCUMENT,
        EncryptOptions {
            chunk_bytes: CHUNK_BYTES,
        },
        nonce_prefix(),
    )
    .expect("encrypt");
    envelope
}

/// Whether the document shows `bytes` in hex, allowing line breaks and
/// spaces between groups.
fn documented(bytes: &[u8]) -> bool {
    let squeezed: String = DOCS.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    squeezed.contains(&hex::encode(bytes))
}

#[test]
fn the_version_2_library_envelope_is_the_one_built_from_the_layout() {
    assert_eq!(
        hex::encode(library_envelope()),
        hex::encode(independent_envelope())
    );
}

#[test]
fn the_version_2_example_opens_with_its_share() {
    let mut plaintext = Vec::new();
    decrypt_shredded(
        independent_envelope().as_slice(),
        &mut plaintext,
        &DataKey::from_bytes(data_key_bytes()),
        Some(&ShredShare::from_bytes(share_bytes())),
        DOCUMENT,
    )
    .expect("open");
    assert_eq!(plaintext, PLAINTEXT);
}

#[test]
fn the_version_2_example_values_appear_in_the_document() {
    let commitment = independent_commitment();
    let content_key = independent_content_key();
    let envelope = independent_envelope();
    let sha256: [u8; 32] = Sha256::digest(&envelope).into();
    for (what, bytes) in [
        ("commitment", commitment.to_vec()),
        ("content key", content_key.to_vec()),
        ("envelope", envelope.clone()),
        ("envelope SHA-256", sha256.to_vec()),
    ] {
        assert!(
            documented(&bytes),
            "docs/envelope.md section 4a lacks the {what}: {}",
            hex::encode(&bytes)
        );
    }
}
