//! The worked example of `docs/envelope.md`: recomputed here from the
//! primitives alone, as an independent implementation would from the
//! document, compared with what the library writes, and checked to appear
//! in the document byte for byte. These values never change: data written
//! by version 1 must open with every later build.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use custody_cli::envelope::{
    decrypt, encrypt_with_nonce_prefix, unwrap, wrap_with_ephemeral, DataKey, DepartmentSecretKey,
    EncryptOptions,
};
use custody_cli::keyfile::{KeyFile, KeyKind, Passphrase, SealParams, SecretKey};
use sha2::{Digest, Sha256};

const DOCS: &str = include_str!("../../docs/envelope.md");

fn counting(start: u8) -> [u8; 32] {
    std::array::from_fn(|index| start.wrapping_add(index as u8))
}

fn data_key_bytes() -> [u8; 32] {
    counting(0x00)
}
fn nonce_prefix() -> [u8; 19] {
    std::array::from_fn(|index| 0xa0 + index as u8)
}
const PLAINTEXT: &[u8] = b"Deed of sale, parcel 1952/7.\nVault B.\n";
const CHUNK_BYTES: u32 = 16;
fn recipient_secret() -> [u8; 32] {
    counting(0x40)
}
fn ephemeral_secret() -> [u8; 32] {
    counting(0x60)
}
fn wrap_nonce() -> [u8; 24] {
    std::array::from_fn(|index| 0x80 + index as u8)
}
fn member_seed() -> [u8; 32] {
    counting(0xc0)
}
const PASSPHRASE: &str = "correct horse battery staple";
const EXAMPLE_PARAMS: SealParams = SealParams {
    memory_kib: 256,
    iterations: 2,
    parallelism: 1,
};
fn key_file_salt() -> Vec<u8> {
    (0xe0..=0xefu8).collect()
}
fn key_file_nonce() -> [u8; 24] {
    std::array::from_fn(|index| 0xf0u8.wrapping_add(index as u8))
}

fn aead_seal(key: &[u8; 32], nonce: [u8; 24], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let mut buffer = plaintext.to_vec();
    let tag = cipher
        .encrypt_inout_detached(&XNonce::from(nonce), aad, buffer.as_mut_slice().into())
        .unwrap();
    buffer.extend_from_slice(&tag);
    buffer
}

/// The envelope built by hand from the layout in the document.
fn independent_envelope() -> Vec<Vec<u8>> {
    let mut header = Vec::new();
    header.extend_from_slice(b"CUSTENV\0");
    header.push(1);
    header.extend_from_slice(&CHUNK_BYTES.to_be_bytes());
    header.extend_from_slice(&nonce_prefix());
    assert_eq!(header.len(), 32);
    let mut parts = vec![header.clone()];
    let chunks: Vec<&[u8]> = PLAINTEXT.chunks(CHUNK_BYTES as usize).collect();
    // 38 bytes: two full chunks and a final chunk of 6 bytes.
    assert_eq!(chunks.len(), 3);
    for (counter, chunk) in chunks.iter().enumerate() {
        let mut nonce = [0u8; 24];
        nonce[..19].copy_from_slice(&nonce_prefix());
        nonce[19..23].copy_from_slice(&(counter as u32).to_be_bytes());
        nonce[23] = u8::from(counter == chunks.len() - 1);
        parts.push(aead_seal(&data_key_bytes(), nonce, &header, chunk));
    }
    parts
}

fn assert_in_docs(label: &str, hex_text: &str) {
    assert!(
        DOCS.contains(hex_text),
        "docs/envelope.md does not show {label} as\n{hex_text}"
    );
}

#[test]
fn worked_example_envelope_matches_the_document() {
    let parts = independent_envelope();
    let expected: Vec<u8> = parts.concat();
    let mut written = Vec::new();
    let summary = encrypt_with_nonce_prefix(
        PLAINTEXT,
        &mut written,
        &DataKey::from_bytes(data_key_bytes()),
        EncryptOptions {
            chunk_bytes: CHUNK_BYTES,
        },
        nonce_prefix(),
    )
    .unwrap();
    assert_eq!(hex::encode(&written), hex::encode(&expected));
    for (index, part) in parts.iter().enumerate() {
        assert_in_docs(&format!("envelope part {index}"), &hex::encode(part));
    }
    assert_in_docs("plaintext", &hex::encode(PLAINTEXT));
    assert_in_docs("plaintext sha256", &hex::encode(Sha256::digest(PLAINTEXT)));
    assert_in_docs("envelope sha256", &hex::encode(Sha256::digest(&expected)));
    assert_eq!(summary.ciphertext.size_bytes, 32 + 38 + 3 * 16);
    let mut opened = Vec::new();
    decrypt(
        &written[..],
        &mut opened,
        &DataKey::from_bytes(data_key_bytes()),
    )
    .unwrap();
    assert_eq!(opened, PLAINTEXT);
}

#[test]
fn worked_example_wrapped_key_matches_the_document() {
    let recipient = DepartmentSecretKey::from_bytes(recipient_secret());
    let recipient_public =
        x25519_dalek::x25519(recipient_secret(), x25519_dalek::X25519_BASEPOINT_BYTES);
    assert_eq!(recipient.public_key().0, recipient_public);
    let ephemeral_public =
        x25519_dalek::x25519(ephemeral_secret(), x25519_dalek::X25519_BASEPOINT_BYTES);
    let shared = x25519_dalek::x25519(ephemeral_secret(), recipient_public);
    let mut salt = ephemeral_public.to_vec();
    salt.extend_from_slice(&recipient_public);
    let mut key_encryption_key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(&salt), &shared)
        .expand(b"custody/wrapped-key/v1", &mut key_encryption_key)
        .unwrap();
    let ciphertext = aead_seal(&key_encryption_key, wrap_nonce(), &[1], &data_key_bytes());
    let mut expected = vec![1u8];
    expected.extend_from_slice(&ephemeral_public);
    expected.extend_from_slice(&wrap_nonce());
    expected.extend_from_slice(&ciphertext);

    let wrapped = wrap_with_ephemeral(
        &DataKey::from_bytes(data_key_bytes()),
        &recipient.public_key(),
        ephemeral_secret(),
        wrap_nonce(),
    )
    .unwrap();
    assert_eq!(hex::encode(wrapped.to_bytes()), hex::encode(&expected));
    assert_eq!(
        unwrap(&wrapped, &recipient).unwrap().as_bytes(),
        &data_key_bytes()
    );

    for (label, bytes) in [
        ("recipient public key", &recipient_public[..]),
        ("ephemeral public key", &ephemeral_public[..]),
        ("shared secret", &shared[..]),
        ("key-encryption key", &key_encryption_key[..]),
        ("wrapped ciphertext", &ciphertext[..]),
        ("wrapped key", &expected[..]),
    ] {
        assert_in_docs(label, &hex::encode(bytes));
    }
}

#[test]
fn worked_example_key_file_matches_the_document() {
    let secret = SecretKey::Member(ed25519_dalek::SigningKey::from_bytes(&member_seed()));
    let public_key = secret.public_key();
    let passphrase = Passphrase::new(PASSPHRASE.as_bytes().to_vec()).unwrap();

    let mut sealing_key = [0u8; 32];
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(256, 2, 1, Some(32)).unwrap(),
    )
    .hash_password_into(PASSPHRASE.as_bytes(), &key_file_salt(), &mut sealing_key)
    .unwrap();
    let mut associated_data = vec![19u8];
    associated_data.extend_from_slice(b"custody/key-file/v1");
    associated_data.push(1); // member
    associated_data.extend_from_slice(&public_key);
    let ciphertext = aead_seal(
        &sealing_key,
        key_file_nonce(),
        &associated_data,
        &member_seed(),
    );

    let key_file = KeyFile::seal_with(
        &secret,
        Some((&passphrase, EXAMPLE_PARAMS)),
        key_file_salt(),
        key_file_nonce(),
    )
    .unwrap();
    let json = key_file.to_json().unwrap();
    assert!(json.contains(&hex::encode(&ciphertext)), "{json}");
    assert_in_docs("key file JSON", &json);
    assert_in_docs("sealing key", &hex::encode(sealing_key));
    assert_in_docs("associated data", &hex::encode(&associated_data));

    let parsed = KeyFile::parse(&json, "example").unwrap();
    assert_eq!(parsed.kind(), KeyKind::Member);
    let opened = parsed.open_member(Some(&passphrase)).unwrap();
    assert_eq!(opened.to_bytes(), member_seed());
}

/// Prints every value of the worked example (run with `--ignored
/// --nocapture` when writing the document).
#[test]
#[ignore]
fn print_worked_example() {
    for (index, part) in independent_envelope().iter().enumerate() {
        println!("envelope part {index}: {}", hex::encode(part));
    }
    let envelope = independent_envelope().concat();
    println!("plaintext: {}", hex::encode(PLAINTEXT));
    println!(
        "plaintext sha256: {}",
        hex::encode(Sha256::digest(PLAINTEXT))
    );
    println!(
        "envelope sha256: {} ({} bytes)",
        hex::encode(Sha256::digest(&envelope)),
        envelope.len()
    );
    let recipient_public =
        x25519_dalek::x25519(recipient_secret(), x25519_dalek::X25519_BASEPOINT_BYTES);
    let ephemeral_public =
        x25519_dalek::x25519(ephemeral_secret(), x25519_dalek::X25519_BASEPOINT_BYTES);
    let shared = x25519_dalek::x25519(ephemeral_secret(), recipient_public);
    let mut salt = ephemeral_public.to_vec();
    salt.extend_from_slice(&recipient_public);
    let mut key_encryption_key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(&salt), &shared)
        .expand(b"custody/wrapped-key/v1", &mut key_encryption_key)
        .unwrap();
    println!("recipient secret: {}", hex::encode(recipient_secret()));
    println!("recipient public: {}", hex::encode(recipient_public));
    println!("ephemeral secret: {}", hex::encode(ephemeral_secret()));
    println!("ephemeral public: {}", hex::encode(ephemeral_public));
    println!("shared: {}", hex::encode(shared));
    println!("kek: {}", hex::encode(key_encryption_key));
    let wrapped = wrap_with_ephemeral(
        &DataKey::from_bytes(data_key_bytes()),
        &DepartmentSecretKey::from_bytes(recipient_secret()).public_key(),
        ephemeral_secret(),
        wrap_nonce(),
    )
    .unwrap();
    println!("wrapped ciphertext: {}", hex::encode(wrapped.ciphertext));
    println!("wrapped key: {}", hex::encode(wrapped.to_bytes()));
    println!(
        "wrapped json: {}",
        serde_json::to_string_pretty(&wrapped).unwrap()
    );

    let secret = SecretKey::Member(ed25519_dalek::SigningKey::from_bytes(&member_seed()));
    println!("member seed: {}", hex::encode(member_seed()));
    println!("member public: {}", hex::encode(secret.public_key()));
    let mut sealing_key = [0u8; 32];
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(256, 2, 1, Some(32)).unwrap(),
    )
    .hash_password_into(PASSPHRASE.as_bytes(), &key_file_salt(), &mut sealing_key)
    .unwrap();
    println!("sealing key: {}", hex::encode(sealing_key));
    let mut associated_data = vec![19u8];
    associated_data.extend_from_slice(b"custody/key-file/v1");
    associated_data.push(1);
    associated_data.extend_from_slice(&secret.public_key());
    println!("associated data: {}", hex::encode(&associated_data));
    let passphrase = Passphrase::new(PASSPHRASE.as_bytes().to_vec()).unwrap();
    let key_file = KeyFile::seal_with(
        &secret,
        Some((&passphrase, EXAMPLE_PARAMS)),
        key_file_salt(),
        key_file_nonce(),
    )
    .unwrap();
    println!("key file:\n{}", key_file.to_json().unwrap());
    let plain = KeyFile::seal(
        &SecretKey::Department(DepartmentSecretKey::from_bytes(recipient_secret())),
        None,
    )
    .unwrap();
    println!("plain department key file:\n{}", plain.to_json().unwrap());
}
