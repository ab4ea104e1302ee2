//! The envelope stream and key wrapping: one test per rule, then properties.

use custody_cli::envelope::{
    decrypt, encrypt, encrypt_with, encrypt_with_nonce_prefix, unwrap, wrap, wrap_with_ephemeral,
    DataKey, DepartmentPublicKey, DepartmentSecretKey, EncryptOptions, EnvelopeError,
    EnvelopeSummary, WrapError, WrappedKey, CHUNK_BYTES_DEFAULT, CHUNK_BYTES_MAX, HEADER_BYTES,
    TAG_BYTES, WRAPPED_KEY_BYTES,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const SMALL_CHUNK: u32 = 16;

fn key(byte: u8) -> DataKey {
    DataKey::from_bytes([byte; 32])
}

fn document(size: usize) -> Vec<u8> {
    (0..size).map(|index| (index * 7 % 251) as u8).collect()
}

fn seal(plaintext: &[u8], data_key: &DataKey, chunk_bytes: u32) -> (Vec<u8>, EnvelopeSummary) {
    let mut envelope = Vec::new();
    let summary = encrypt_with(
        plaintext,
        &mut envelope,
        data_key,
        EncryptOptions { chunk_bytes },
    )
    .unwrap();
    (envelope, summary)
}

fn open(envelope: &[u8], data_key: &DataKey) -> Result<(Vec<u8>, EnvelopeSummary), EnvelopeError> {
    let mut plaintext = Vec::new();
    let summary = decrypt(envelope, &mut plaintext, data_key)?;
    Ok((plaintext, summary))
}

/// Byte offset of chunk `index` in an envelope with `chunk_bytes` chunks.
fn chunk_offset(index: usize, chunk_bytes: u32) -> usize {
    HEADER_BYTES + index * (chunk_bytes as usize + TAG_BYTES)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[test]
fn round_trip_returns_the_document_and_matching_fixity() {
    let data_key = DataKey::generate().unwrap();
    let plaintext = document(200_000);
    let mut envelope = Vec::new();
    let sealed = encrypt(&plaintext[..], &mut envelope, &data_key).unwrap();
    let (opened, summary) = open(&envelope, &data_key).unwrap();
    assert_eq!(opened, plaintext);
    assert_eq!(summary, sealed);
    assert_eq!(sealed.chunk_bytes, CHUNK_BYTES_DEFAULT);
    assert_eq!(sealed.chunk_count, 4);
    assert_eq!(sealed.plaintext.sha256, sha256(&plaintext));
    assert_eq!(sealed.plaintext.size_bytes, 200_000);
    assert_eq!(sealed.ciphertext.sha256, sha256(&envelope));
    assert_eq!(sealed.ciphertext.size_bytes, envelope.len() as u64);
}

#[test]
fn empty_document_round_trips_as_one_empty_final_chunk() {
    let data_key = key(1);
    let (envelope, summary) = seal(b"", &data_key, SMALL_CHUNK);
    assert_eq!(envelope.len(), HEADER_BYTES + TAG_BYTES);
    assert_eq!(summary.chunk_count, 1);
    let (opened, _) = open(&envelope, &data_key).unwrap();
    assert!(opened.is_empty());
    assert_eq!(summary.plaintext.sha256, sha256(b""));
}

#[test]
fn exact_multiple_of_chunk_size_round_trips_with_an_empty_final_chunk() {
    let data_key = key(2);
    let plaintext = document(3 * SMALL_CHUNK as usize);
    let (envelope, summary) = seal(&plaintext, &data_key, SMALL_CHUNK);
    assert_eq!(summary.chunk_count, 4);
    assert_eq!(
        envelope.len(),
        HEADER_BYTES + plaintext.len() + 4 * TAG_BYTES
    );
    assert_eq!(open(&envelope, &data_key).unwrap().0, plaintext);
}

#[test]
fn two_encryptions_of_one_document_differ() {
    let data_key = key(3);
    let (first, _) = seal(b"same document", &data_key, SMALL_CHUNK);
    let (second, _) = seal(b"same document", &data_key, SMALL_CHUNK);
    assert_ne!(first, second);
}

#[test]
fn tamper_of_any_byte_is_refused_and_names_the_chunk() {
    let data_key = key(4);
    let plaintext = document(40); // chunks of 16, 16 and a final 8
    let (envelope, _) = seal(&plaintext, &data_key, SMALL_CHUNK);
    for position in 0..envelope.len() {
        for flip in [0x01u8, 0x80] {
            let mut tampered = envelope.clone();
            tampered[position] ^= flip;
            let error = open(&tampered, &data_key).expect_err("tampered envelope was accepted");
            if position >= HEADER_BYTES {
                let chunk_index =
                    ((position - HEADER_BYTES) / (SMALL_CHUNK as usize + TAG_BYTES)) as u64;
                assert!(
                    matches!(error, EnvelopeError::ChunkNotAuthentic { chunk_index: found } if found == chunk_index),
                    "byte {position}: {error}"
                );
            }
        }
    }
}

#[test]
fn tampered_chunk_writes_no_plaintext_of_that_chunk() {
    let data_key = key(5);
    let plaintext = document(100);
    let (mut envelope, _) = seal(&plaintext, &data_key, SMALL_CHUNK);
    envelope[chunk_offset(2, SMALL_CHUNK) + 3] ^= 0xff;
    let mut output = Vec::new();
    let error = decrypt(&envelope[..], &mut output, &data_key).unwrap_err();
    assert!(matches!(
        error,
        EnvelopeError::ChunkNotAuthentic { chunk_index: 2 }
    ));
    assert_eq!(output, plaintext[..2 * SMALL_CHUNK as usize]);
    assert!(error.to_string().contains("chunk 2"), "{error}");
}

#[test]
fn truncation_at_any_length_is_refused() {
    let data_key = key(6);
    let (envelope, _) = seal(&document(40), &data_key, SMALL_CHUNK);
    for length in 0..envelope.len() {
        assert!(
            open(&envelope[..length], &data_key).is_err(),
            "envelope truncated to {length} bytes was accepted"
        );
    }
}

#[test]
fn truncation_at_a_chunk_boundary_is_refused_as_missing_final_chunk() {
    let data_key = key(7);
    let (envelope, _) = seal(&document(40), &data_key, SMALL_CHUNK);
    let error = open(&envelope[..chunk_offset(2, SMALL_CHUNK)], &data_key).unwrap_err();
    assert!(
        matches!(
            error,
            EnvelopeError::MissingFinalChunk {
                last_complete_chunk_index: 1
            }
        ),
        "{error}"
    );
    let error = open(&envelope[..HEADER_BYTES], &data_key).unwrap_err();
    assert!(matches!(error, EnvelopeError::NoChunks), "{error}");
}

#[test]
fn chunk_reorder_is_refused() {
    let data_key = key(8);
    let (envelope, _) = seal(&document(40), &data_key, SMALL_CHUNK);
    let first = chunk_offset(0, SMALL_CHUNK)..chunk_offset(1, SMALL_CHUNK);
    let second = chunk_offset(1, SMALL_CHUNK)..chunk_offset(2, SMALL_CHUNK);
    let mut reordered = envelope[..HEADER_BYTES].to_vec();
    reordered.extend_from_slice(&envelope[second]);
    reordered.extend_from_slice(&envelope[first]);
    reordered.extend_from_slice(&envelope[chunk_offset(2, SMALL_CHUNK)..]);
    assert_eq!(reordered.len(), envelope.len());
    let error = open(&reordered, &data_key).unwrap_err();
    assert!(
        matches!(error, EnvelopeError::ChunkNotAuthentic { chunk_index: 0 }),
        "{error}"
    );
}

#[test]
fn chunk_from_another_envelope_under_the_same_key_is_refused() {
    let data_key = key(9);
    let (first, _) = seal(&document(40), &data_key, SMALL_CHUNK);
    let (second, _) = seal(&document(40), &data_key, SMALL_CHUNK);
    let mut spliced = first.clone();
    let chunk = chunk_offset(1, SMALL_CHUNK)..chunk_offset(2, SMALL_CHUNK);
    spliced[chunk.clone()].copy_from_slice(&second[chunk]);
    let error = open(&spliced, &data_key).unwrap_err();
    assert!(
        matches!(error, EnvelopeError::ChunkNotAuthentic { chunk_index: 1 }),
        "{error}"
    );
}

#[test]
fn appended_bytes_are_refused() {
    let data_key = key(10);
    let (envelope, _) = seal(&document(40), &data_key, SMALL_CHUNK);
    for extra in [1usize, 15, 16, 17, 32, 100] {
        let mut extended = envelope.clone();
        extended.extend(std::iter::repeat_n(0u8, extra));
        assert!(
            open(&extended, &data_key).is_err(),
            "{extra} appended bytes accepted"
        );
    }
    // A whole chunk of the same envelope appended after the final one.
    let mut extended = envelope.clone();
    extended
        .extend_from_slice(&envelope[chunk_offset(0, SMALL_CHUNK)..chunk_offset(1, SMALL_CHUNK)]);
    assert!(open(&extended, &data_key).is_err());
}

#[test]
fn dropping_the_final_chunk_is_refused() {
    let data_key = key(11);
    let (envelope, _) = seal(&document(3 * SMALL_CHUNK as usize), &data_key, SMALL_CHUNK);
    // The final chunk is the empty one; without it the envelope ends on a
    // chunk boundary.
    let error = open(&envelope[..envelope.len() - TAG_BYTES], &data_key).unwrap_err();
    assert!(
        matches!(
            error,
            EnvelopeError::MissingFinalChunk {
                last_complete_chunk_index: 2
            }
        ),
        "{error}"
    );
}

#[test]
fn wrong_data_key_is_refused_at_chunk_zero() {
    let (envelope, _) = seal(&document(40), &key(12), SMALL_CHUNK);
    let error = open(&envelope, &key(13)).unwrap_err();
    assert!(
        matches!(error, EnvelopeError::ChunkNotAuthentic { chunk_index: 0 }),
        "{error}"
    );
}

#[test]
fn header_errors_say_what_is_wrong() {
    let data_key = key(14);
    let (envelope, _) = seal(&document(40), &data_key, SMALL_CHUNK);
    let mut bad_magic = envelope.clone();
    bad_magic[0] = b'X';
    assert!(matches!(
        open(&bad_magic, &data_key),
        Err(EnvelopeError::BadMagic { .. })
    ));
    // Versions 1 and 2 are read; 9 is no version.
    let mut bad_version = envelope.clone();
    bad_version[8] = 9;
    assert!(matches!(
        open(&bad_version, &data_key),
        Err(EnvelopeError::UnsupportedVersion { found: 9 })
    ));
    let mut huge_chunks = envelope.clone();
    huge_chunks[9..13].copy_from_slice(&(CHUNK_BYTES_MAX + 1).to_be_bytes());
    assert!(matches!(
        open(&huge_chunks, &data_key),
        Err(EnvelopeError::ChunkSizeOutOfRange { .. })
    ));
    assert!(matches!(
        open(&envelope[..10], &data_key),
        Err(EnvelopeError::HeaderTruncated { found_bytes: 10 })
    ));
}

#[test]
fn chunk_size_outside_the_range_is_refused_on_encrypt() {
    for chunk_bytes in [0, CHUNK_BYTES_MAX + 1] {
        let result = encrypt_with(
            &b"x"[..],
            Vec::new(),
            &key(15),
            EncryptOptions { chunk_bytes },
        );
        assert!(matches!(
            result,
            Err(EnvelopeError::ChunkSizeOutOfRange { .. })
        ));
    }
}

#[test]
fn data_keys_are_fresh() {
    assert_ne!(DataKey::generate().unwrap(), DataKey::generate().unwrap());
    assert_eq!(format!("{:?}", key(1)), "DataKey(<secret>)");
}

// --- key wrapping ---------------------------------------------------------

fn department(byte: u8) -> DepartmentSecretKey {
    DepartmentSecretKey::from_bytes([byte; 32])
}

#[test]
fn wrapped_key_unwraps_with_the_department_key() {
    let data_key = DataKey::generate().unwrap();
    let secret = DepartmentSecretKey::generate().unwrap();
    let wrapped = wrap(&data_key, &secret.public_key()).unwrap();
    assert_eq!(unwrap(&wrapped, &secret).unwrap(), data_key);
}

#[test]
fn unwrap_with_another_department_key_is_refused() {
    let wrapped = wrap(&key(1), &department(1).public_key()).unwrap();
    assert!(matches!(
        unwrap(&wrapped, &department(2)),
        Err(WrapError::WrongKeyOrTampered)
    ));
}

#[test]
fn tamper_of_any_wrapped_key_byte_is_refused() {
    let secret = department(3);
    let wrapped = wrap(&key(2), &secret.public_key()).unwrap();
    let bytes = wrapped.to_bytes();
    for position in 0..bytes.len() {
        let mut tampered = bytes;
        tampered[position] ^= 0x01;
        let tampered = WrappedKey::from_bytes(&tampered).unwrap();
        assert!(
            unwrap(&tampered, &secret).is_err(),
            "byte {position} tamper accepted"
        );
    }
}

/// Curve25519 points of small order (from the x25519 test vectors of
/// Bernstein's and libsodium's blocklists): the shared secret is all zeros.
const LOW_ORDER_POINTS: [[u8; 32]; 3] = [
    [0; 32],
    {
        let mut point = [0u8; 32];
        point[0] = 1;
        point
    },
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
];

#[test]
fn wrapping_to_a_low_order_public_key_is_refused() {
    for point in LOW_ORDER_POINTS {
        let result = wrap(&key(3), &DepartmentPublicKey(point));
        assert!(
            matches!(result, Err(WrapError::LowOrderRecipientKey { .. })),
            "{point:02x?}"
        );
    }
}

#[test]
fn unwrapping_with_a_low_order_ephemeral_key_is_refused() {
    let secret = department(4);
    let mut wrapped = wrap(&key(4), &secret.public_key()).unwrap();
    for point in LOW_ORDER_POINTS {
        wrapped.ephemeral_public_key = point;
        assert!(matches!(
            unwrap(&wrapped, &secret),
            Err(WrapError::LowOrderEphemeralKey)
        ));
    }
}

#[test]
fn wrapped_key_of_an_unknown_version_is_refused() {
    let secret = department(5);
    let mut wrapped = wrap(&key(5), &secret.public_key()).unwrap();
    wrapped.version = 2;
    assert!(matches!(
        unwrap(&wrapped, &secret),
        Err(WrapError::UnsupportedVersion { found: 2 })
    ));
}

#[test]
fn wrapped_key_postcard_encoding_is_its_byte_layout_and_json_is_hex() {
    let secret = department(6);
    let wrapped = wrap_with_ephemeral(&key(6), &secret.public_key(), [7; 32], [8; 24]).unwrap();
    let postcard_bytes = postcard::to_allocvec(&wrapped).unwrap();
    assert_eq!(postcard_bytes, wrapped.to_bytes());
    assert_eq!(postcard_bytes.len(), WRAPPED_KEY_BYTES);
    assert_eq!(
        postcard::from_bytes::<WrappedKey>(&postcard_bytes).unwrap(),
        wrapped
    );
    assert_eq!(WrappedKey::from_bytes(&postcard_bytes).unwrap(), wrapped);

    let json = serde_json::to_value(&wrapped).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["nonce"], "08".repeat(24));
    assert_eq!(json["ephemeral_public_key"].as_str().unwrap().len(), 64);
    let back: WrappedKey = serde_json::from_value(json).unwrap();
    assert_eq!(back, wrapped);
    let public_json = serde_json::to_string(&secret.public_key()).unwrap();
    assert_eq!(public_json, format!("\"{}\"", secret.public_key().to_hex()));
}

#[test]
fn wrapped_key_of_the_wrong_length_is_refused() {
    assert!(matches!(
        WrappedKey::from_bytes(&[1u8; 104]),
        Err(WrapError::WrongLength { found_bytes: 104 })
    ));
    assert!(serde_json::from_str::<WrappedKey>(
        r#"{"version":1,"ephemeral_public_key":"00","nonce":"00","ciphertext":"00"}"#
    )
    .is_err());
}

// --- properties -------------------------------------------------------------

/// A reader that hands out its bytes in small pieces of varying size and
/// is interrupted now and then, as pipes and sockets do.
struct TrickleReader<'a> {
    bytes: &'a [u8],
    piece_sizes: Vec<usize>,
    step: usize,
}

impl std::io::Read for TrickleReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        self.step += 1;
        let piece = self.piece_sizes[self.step % self.piece_sizes.len()];
        if piece == 0 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let length = piece.min(buffer.len()).min(self.bytes.len());
        buffer[..length].copy_from_slice(&self.bytes[..length]);
        self.bytes = &self.bytes[length..];
        Ok(length)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_document_round_trips_with_any_chunk_size(
        plaintext in proptest::collection::vec(any::<u8>(), 0..20_000),
        chunk_bytes in 1u32..=4096,
        key_bytes in any::<[u8; 32]>(),
    ) {
        let data_key = DataKey::from_bytes(key_bytes);
        let (envelope, sealed) = seal(&plaintext, &data_key, chunk_bytes);
        let full_chunks = plaintext.len() / chunk_bytes as usize;
        prop_assert_eq!(envelope.len(), HEADER_BYTES + plaintext.len() + (full_chunks + 1) * TAG_BYTES);
        prop_assert_eq!(sealed.chunk_count, full_chunks as u64 + 1);
        let (opened, summary) = open(&envelope, &data_key).unwrap();
        prop_assert_eq!(opened, plaintext);
        prop_assert_eq!(summary, sealed);
    }

    #[test]
    fn short_and_interrupted_reads_give_the_same_envelope_and_document(
        plaintext in proptest::collection::vec(any::<u8>(), 0..5_000),
        chunk_bytes in 1u32..=512,
        piece_sizes in proptest::collection::vec(0usize..=70, 1..8),
    ) {
        prop_assume!(piece_sizes.iter().any(|&size| size > 0));
        let data_key = key(4);
        let prefix = [9u8; 19];
        let options = EncryptOptions { chunk_bytes };
        let mut whole = Vec::new();
        encrypt_with_nonce_prefix(&plaintext[..], &mut whole, &data_key, options, prefix).unwrap();
        let mut trickled = Vec::new();
        let reader = TrickleReader { bytes: &plaintext, piece_sizes: piece_sizes.clone(), step: 0 };
        encrypt_with_nonce_prefix(reader, &mut trickled, &data_key, options, prefix).unwrap();
        prop_assert_eq!(&trickled, &whole);
        let mut opened = Vec::new();
        let reader = TrickleReader { bytes: &whole, piece_sizes, step: 0 };
        decrypt(reader, &mut opened, &data_key).unwrap();
        prop_assert_eq!(opened, plaintext);
    }

    #[test]
    fn random_bytes_to_the_decoder_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2_000),
    ) {
        let _ = open(&bytes, &key(1));
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic_and_never_decrypt(
        chunk_bytes in 1u32..=64,
        body in proptest::collection::vec(any::<u8>(), 0..2_000),
    ) {
        let (envelope, _) = seal(b"", &key(2), chunk_bytes);
        let mut forged = envelope[..HEADER_BYTES].to_vec();
        forged.extend_from_slice(&body);
        prop_assert!(open(&forged, &key(2)).is_err());
    }

    #[test]
    fn any_single_byte_change_is_refused(
        plaintext in proptest::collection::vec(any::<u8>(), 0..600),
        chunk_bytes in 1u32..=128,
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let data_key = key(3);
        let (mut envelope, _) = seal(&plaintext, &data_key, chunk_bytes);
        let position = position.index(envelope.len());
        envelope[position] ^= flip;
        prop_assert!(open(&envelope, &data_key).is_err());
    }

    #[test]
    fn random_wrapped_keys_never_panic(bytes in proptest::collection::vec(any::<u8>(), WRAPPED_KEY_BYTES)) {
        let wrapped = WrappedKey::from_bytes(&bytes).unwrap();
        prop_assert!(unwrap(&wrapped, &department(9)).is_err());
    }

    #[test]
    fn any_data_key_round_trips_through_wrapping(
        key_bytes in any::<[u8; 32]>(),
        secret_bytes in any::<[u8; 32]>(),
    ) {
        let secret = DepartmentSecretKey::from_bytes(secret_bytes);
        let wrapped = wrap(&DataKey::from_bytes(key_bytes), &secret.public_key()).unwrap();
        let unwrapped = unwrap(&wrapped, &secret).unwrap();
        prop_assert_eq!(unwrapped.as_bytes(), &key_bytes);
    }
}
