//! The chunked AEAD stream: a STREAM construction (Hoang, Reyhanitabar,
//! Rogaway and Vizár, "Online Authenticated-Encryption and its
//! Nonce-Reuse Misuse-Resistance", CRYPTO 2015, section 7) over
//! XChaCha20-Poly1305.
//!
//! Each chunk's 24-byte nonce is the file's random 19-byte prefix, the chunk
//! counter (u32, big-endian) and a last-chunk flag byte. Reordering or
//! swapping chunks changes their counters, dropping the end loses the chunk
//! flagged as last, and appending makes a flagged chunk non-final: each is
//! an authentication failure. The 32-byte header is the associated data of
//! every chunk, so no header field can be changed either.

use std::io::{ErrorKind, Read, Write};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::shred::{content_key, ShredShare, SHARE_COMMITMENT_BYTES};
use super::{random_bytes, DataKey, RandomError};

/// First eight bytes of every envelope: `CUSTENV` and a zero byte.
pub const ENVELOPE_MAGIC: [u8; 8] = *b"CUSTENV\0";
/// The envelope format version [`encrypt`] writes: the content key is the
/// data key itself. Still read, so every envelope written before version 2
/// opens.
pub const ENVELOPE_VERSION: u8 = 1;
/// The envelope format version [`encrypt_shredded`] writes: the content key
/// is derived from the data key and a shred share held by the nodes
/// (`docs/envelope.md`, "Crypto-shredding").
pub const ENVELOPE_VERSION_SHRED: u8 = 2;
/// Header length of version 1: magic (8), version (1), chunk size (4),
/// nonce prefix (19).
pub const HEADER_BYTES: usize = 32;
/// Header length of version 2: the 32 bytes of version 1 and the shred
/// share's commitment (32).
pub const SHRED_HEADER_BYTES: usize = HEADER_BYTES + SHARE_COMMITMENT_BYTES;
/// Random per-file part of every chunk nonce.
pub const NONCE_PREFIX_BYTES: usize = 19;
/// Poly1305 tag appended to every chunk.
pub const TAG_BYTES: usize = 16;
/// Plaintext bytes per chunk written by [`encrypt`].
pub const CHUNK_BYTES_DEFAULT: u32 = 64 * 1024;
/// Smallest chunk size accepted in a header.
pub const CHUNK_BYTES_MIN: u32 = 1;
/// Largest chunk size accepted in a header: the decoder allocates one chunk,
/// so this bounds the memory an untrusted envelope can make us use.
pub const CHUNK_BYTES_MAX: u32 = 4 * 1024 * 1024;

/// Why an envelope could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("reading the input failed: {0}")]
    Read(#[source] std::io::Error),
    #[error("writing the output failed: {0}")]
    Write(#[source] std::io::Error),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("chunk size {chunk_bytes} is outside the accepted range {CHUNK_BYTES_MIN}..={CHUNK_BYTES_MAX} bytes")]
    ChunkSizeOutOfRange { chunk_bytes: u32 },
    #[error(
        "the input ends after {found_bytes} bytes, inside the {HEADER_BYTES}-byte envelope header"
    )]
    HeaderTruncated { found_bytes: usize },
    #[error("not a Custody envelope: the first 8 bytes are {found_hex}, expected {expected_hex}", expected_hex = hex::encode(ENVELOPE_MAGIC))]
    BadMagic { found_hex: String },
    #[error("envelope format version {found} is not supported (this build reads versions {ENVELOPE_VERSION} and {ENVELOPE_VERSION_SHRED})")]
    UnsupportedVersion { found: u8 },
    #[error("the envelope is of format version {ENVELOPE_VERSION_SHRED}: it opens only with its document's shred share, which a node hands out with the ciphertext and deletes when the document is disposed of")]
    ShareMissing,
    #[error("the shred share does not match the commitment in the envelope's header (expected SHA-256 commitment {expected_hex}, the share gives {found_hex}): it belongs to another envelope or was altered")]
    ShareMismatch {
        expected_hex: String,
        found_hex: String,
    },
    #[error("chunk {chunk_index} of the envelope failed authentication: the data key is wrong, or the ciphertext was altered, truncated, reordered or extended")]
    ChunkNotAuthentic { chunk_index: u64 },
    #[error("the envelope ends after chunk {last_complete_chunk_index} with no final chunk: it was truncated")]
    MissingFinalChunk { last_complete_chunk_index: u64 },
    #[error("the envelope ends before its first chunk: it was truncated")]
    NoChunks,
    #[error("could not {action} {path}: {source}", path = path.display())]
    File {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} of {path} does not match the fixity on record: expected SHA-256 {expected_sha256_hex} and {expected_size_bytes} bytes, found {found_sha256_hex} and {found_size_bytes} bytes", path = path.display())]
    FixityMismatch {
        what: &'static str,
        path: std::path::PathBuf,
        expected_sha256_hex: String,
        expected_size_bytes: u64,
        found_sha256_hex: String,
        found_size_bytes: u64,
    },
    #[error(
        "the document needs more than 2^32 chunks of {chunk_bytes} bytes; use a larger chunk size"
    )]
    TooManyChunks { chunk_bytes: u32 },
}

/// SHA-256 and size of a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixity {
    pub sha256: [u8; 32],
    pub size_bytes: u64,
}

/// What one pass of [`encrypt`] or [`decrypt`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeSummary {
    /// Of the document itself: the fixity recorded on chain.
    pub plaintext: Fixity,
    /// Of the whole envelope, header included: the blob address.
    pub ciphertext: Fixity,
    /// Plaintext bytes per chunk, from the header.
    pub chunk_bytes: u32,
    /// Number of chunks, the final (possibly empty) chunk included.
    pub chunk_count: u64,
}

/// Options for [`encrypt_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncryptOptions {
    /// Plaintext bytes per chunk, within [`CHUNK_BYTES_MIN`]..=[`CHUNK_BYTES_MAX`].
    pub chunk_bytes: u32,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        Self {
            chunk_bytes: CHUNK_BYTES_DEFAULT,
        }
    }
}

/// The fixed-size header at the start of every envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    pub version: u8,
    pub chunk_bytes: u32,
    pub nonce_prefix: [u8; NONCE_PREFIX_BYTES],
}

impl EnvelopeHeader {
    /// The header's 32 bytes: magic, version, chunk size (u32 big-endian),
    /// nonce prefix.
    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[0..8].copy_from_slice(&ENVELOPE_MAGIC);
        bytes[8] = self.version;
        bytes[9..13].copy_from_slice(&self.chunk_bytes.to_be_bytes());
        bytes[13..32].copy_from_slice(&self.nonce_prefix);
        bytes
    }

    /// Parses and checks a header read from untrusted input.
    pub fn parse(bytes: &[u8; HEADER_BYTES]) -> Result<Self, EnvelopeError> {
        if bytes[0..8] != ENVELOPE_MAGIC {
            return Err(EnvelopeError::BadMagic {
                found_hex: hex::encode(&bytes[0..8]),
            });
        }
        let version = bytes[8];
        if version != ENVELOPE_VERSION && version != ENVELOPE_VERSION_SHRED {
            return Err(EnvelopeError::UnsupportedVersion { found: version });
        }
        let chunk_bytes = u32::from_be_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]);
        check_chunk_bytes(chunk_bytes)?;
        let mut nonce_prefix = [0u8; NONCE_PREFIX_BYTES];
        nonce_prefix.copy_from_slice(&bytes[13..32]);
        Ok(Self {
            version,
            chunk_bytes,
            nonce_prefix,
        })
    }
}

fn check_chunk_bytes(chunk_bytes: u32) -> Result<(), EnvelopeError> {
    if (CHUNK_BYTES_MIN..=CHUNK_BYTES_MAX).contains(&chunk_bytes) {
        Ok(())
    } else {
        Err(EnvelopeError::ChunkSizeOutOfRange { chunk_bytes })
    }
}

/// nonce = prefix (19 bytes) || counter (u32 big-endian) || flag (0x01 on
/// the last chunk, 0x00 otherwise).
fn chunk_nonce(prefix: &[u8; NONCE_PREFIX_BYTES], counter: u32, last: bool) -> XNonce {
    let mut nonce = [0u8; 24];
    nonce[0..NONCE_PREFIX_BYTES].copy_from_slice(prefix);
    nonce[19..23].copy_from_slice(&counter.to_be_bytes());
    nonce[23] = u8::from(last);
    XNonce::from(nonce)
}

/// Reads until `buffer` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buffer: &mut [u8]) -> Result<usize, EnvelopeError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return Err(EnvelopeError::Read(error)),
        }
    }
    Ok(filled)
}

/// Running SHA-256 and byte count.
struct FixityHasher {
    hasher: Sha256,
    size_bytes: u64,
}

impl FixityHasher {
    fn new() -> Self {
        Self {
            hasher: Sha256::new(),
            size_bytes: 0,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        // usize is at most 64 bits on every supported target.
        self.size_bytes += bytes.len() as u64;
    }

    fn finish(self) -> Fixity {
        Fixity {
            sha256: self.hasher.finalize().into(),
            size_bytes: self.size_bytes,
        }
    }
}

/// Encrypts `reader` into `writer` with 64 KiB chunks and a fresh random
/// nonce prefix, returning the fixity of the plaintext and of the envelope.
pub fn encrypt<R: Read, W: Write>(
    reader: R,
    writer: W,
    data_key: &DataKey,
) -> Result<EnvelopeSummary, EnvelopeError> {
    encrypt_with(reader, writer, data_key, EncryptOptions::default())
}

/// [`encrypt`] with a chosen chunk size.
pub fn encrypt_with<R: Read, W: Write>(
    reader: R,
    writer: W,
    data_key: &DataKey,
    options: EncryptOptions,
) -> Result<EnvelopeSummary, EnvelopeError> {
    let mut nonce_prefix = [0u8; NONCE_PREFIX_BYTES];
    random_bytes(&mut nonce_prefix)?;
    encrypt_with_nonce_prefix(reader, writer, data_key, options, nonce_prefix)
}

/// [`encrypt_with`] with a caller-chosen nonce prefix, for test vectors
/// only: encrypting two different documents under the same data key and
/// prefix destroys their confidentiality.
#[doc(hidden)]
pub fn encrypt_with_nonce_prefix<R: Read, W: Write>(
    mut reader: R,
    mut writer: W,
    data_key: &DataKey,
    options: EncryptOptions,
    nonce_prefix: [u8; NONCE_PREFIX_BYTES],
) -> Result<EnvelopeSummary, EnvelopeError> {
    check_chunk_bytes(options.chunk_bytes)?;
    let header = EnvelopeHeader {
        version: ENVELOPE_VERSION,
        chunk_bytes: options.chunk_bytes,
        nonce_prefix,
    };
    let header_bytes = header.to_bytes();
    encrypt_under(
        &mut reader,
        &mut writer,
        data_key,
        &header,
        &header_bytes,
        options,
    )
}

/// Encrypts `reader` into `writer` as a version 2 envelope of `document`:
/// the content key is derived from `data_key` and `share`, and the header
/// carries the share's commitment. Without the share, the data key alone
/// does not open it.
pub fn encrypt_shredded<R: Read, W: Write>(
    reader: R,
    writer: W,
    data_key: &DataKey,
    share: &ShredShare,
    document: &str,
    options: EncryptOptions,
) -> Result<EnvelopeSummary, EnvelopeError> {
    let mut nonce_prefix = [0u8; NONCE_PREFIX_BYTES];
    random_bytes(&mut nonce_prefix)?;
    encrypt_shredded_with_nonce_prefix(
        reader,
        writer,
        (data_key, share),
        document,
        options,
        nonce_prefix,
    )
}

/// [`encrypt_shredded`] with a caller-chosen nonce prefix, for test vectors
/// only (see [`encrypt_with_nonce_prefix`]).
#[doc(hidden)]
pub fn encrypt_shredded_with_nonce_prefix<R: Read, W: Write>(
    mut reader: R,
    mut writer: W,
    (data_key, share): (&DataKey, &ShredShare),
    document: &str,
    options: EncryptOptions,
    nonce_prefix: [u8; NONCE_PREFIX_BYTES],
) -> Result<EnvelopeSummary, EnvelopeError> {
    check_chunk_bytes(options.chunk_bytes)?;
    let header = EnvelopeHeader {
        version: ENVELOPE_VERSION_SHRED,
        chunk_bytes: options.chunk_bytes,
        nonce_prefix,
    };
    let mut header_bytes = [0u8; SHRED_HEADER_BYTES];
    header_bytes[..HEADER_BYTES].copy_from_slice(&header.to_bytes());
    header_bytes[HEADER_BYTES..].copy_from_slice(&share.commitment());
    let key = content_key(data_key, share, document);
    encrypt_under(
        &mut reader,
        &mut writer,
        &key,
        &header,
        &header_bytes,
        options,
    )
}

/// The chunk loop of every version: `header_bytes` (written first) is the
/// associated data of every chunk, `key` the content key.
fn encrypt_under<R: Read, W: Write>(
    reader: &mut R,
    writer: &mut W,
    key: &DataKey,
    header: &EnvelopeHeader,
    header_bytes: &[u8],
    options: EncryptOptions,
) -> Result<EnvelopeSummary, EnvelopeError> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key.as_bytes()));
    let mut plaintext_fixity = FixityHasher::new();
    let mut ciphertext_fixity = FixityHasher::new();

    writer
        .write_all(header_bytes)
        .map_err(EnvelopeError::Write)?;
    ciphertext_fixity.update(header_bytes);

    let chunk_bytes = options.chunk_bytes as usize;
    let mut buffer = Zeroizing::new(vec![0u8; chunk_bytes + TAG_BYTES]);
    let mut counter: u32 = 0;
    loop {
        let filled = read_full(reader, &mut buffer[..chunk_bytes])?;
        // The final chunk is the first one shorter than the chunk size (it
        // is empty when the document is empty or an exact multiple), so the
        // encoder never needs to look ahead and the decoder knows the final
        // chunk by its length.
        debug_assert!(filled <= chunk_bytes);
        let last = filled < chunk_bytes;
        plaintext_fixity.update(&buffer[..filled]);
        let nonce = chunk_nonce(&header.nonce_prefix, counter, last);
        let (body, tag_slot) = buffer.split_at_mut(filled);
        let tag = cipher
            .encrypt_inout_detached(&nonce, header_bytes, body.into())
            .map_err(|_| EnvelopeError::ChunkSizeOutOfRange {
                chunk_bytes: options.chunk_bytes,
            })?;
        tag_slot[..TAG_BYTES].copy_from_slice(&tag);
        let sealed = &buffer[..filled + TAG_BYTES];
        writer.write_all(sealed).map_err(EnvelopeError::Write)?;
        ciphertext_fixity.update(sealed);
        if last {
            break;
        }
        counter = counter.checked_add(1).ok_or(EnvelopeError::TooManyChunks {
            chunk_bytes: options.chunk_bytes,
        })?;
    }
    writer.flush().map_err(EnvelopeError::Write)?;
    Ok(EnvelopeSummary {
        plaintext: plaintext_fixity.finish(),
        ciphertext: ciphertext_fixity.finish(),
        chunk_bytes: options.chunk_bytes,
        chunk_count: u64::from(counter) + 1,
    })
}

/// Decrypts an envelope from `reader` into `writer`, one authenticated chunk
/// at a time, returning the fixity of the plaintext and of the envelope.
///
/// Only authenticated plaintext is written, but a later chunk may still
/// fail: on error, discard everything written (write to a temporary file and
/// rename it only on success).
///
/// A version 2 envelope is refused with [`EnvelopeError::ShareMissing`]:
/// open it with [`decrypt_shredded`].
pub fn decrypt<R: Read, W: Write>(
    reader: R,
    writer: W,
    data_key: &DataKey,
) -> Result<EnvelopeSummary, EnvelopeError> {
    decrypt_shredded(reader, writer, data_key, None, "")
}

/// Decrypts an envelope of either version: version 1 with `data_key`
/// alone, version 2 of `document` with the content key derived from
/// `data_key` and `share`, once the share matches the header's commitment.
/// Same output rules as [`decrypt`].
pub fn decrypt_shredded<R: Read, W: Write>(
    mut reader: R,
    mut writer: W,
    data_key: &DataKey,
    share: Option<&ShredShare>,
    document: &str,
) -> Result<EnvelopeSummary, EnvelopeError> {
    let mut first = [0u8; HEADER_BYTES];
    let found_bytes = read_full(&mut reader, &mut first)?;
    if found_bytes < HEADER_BYTES {
        return Err(EnvelopeError::HeaderTruncated { found_bytes });
    }
    let header = EnvelopeHeader::parse(&first)?;
    if header.version == ENVELOPE_VERSION {
        return decrypt_under(&mut reader, &mut writer, data_key, &header, &first);
    }
    let mut header_bytes = [0u8; SHRED_HEADER_BYTES];
    header_bytes[..HEADER_BYTES].copy_from_slice(&first);
    let found_bytes = read_full(&mut reader, &mut header_bytes[HEADER_BYTES..])?;
    if found_bytes < SHARE_COMMITMENT_BYTES {
        return Err(EnvelopeError::HeaderTruncated {
            found_bytes: HEADER_BYTES + found_bytes,
        });
    }
    let share = share.ok_or(EnvelopeError::ShareMissing)?;
    let expected = &header_bytes[HEADER_BYTES..];
    let found = share.commitment();
    if expected != found.as_slice() {
        return Err(EnvelopeError::ShareMismatch {
            expected_hex: hex::encode(expected),
            found_hex: hex::encode(found),
        });
    }
    let key = content_key(data_key, share, document);
    decrypt_under(&mut reader, &mut writer, &key, &header, &header_bytes)
}

/// The commitment to the shred share in a version 2 envelope's header, or
/// `None` for a version 1 envelope; `Err` when `bytes` is no envelope
/// header. `bytes` is the start of the envelope (at least
/// [`SHRED_HEADER_BYTES`] for version 2).
pub fn share_commitment_of(
    bytes: &[u8],
) -> Result<Option<[u8; SHARE_COMMITMENT_BYTES]>, EnvelopeError> {
    let first: &[u8; HEADER_BYTES] = bytes
        .get(..HEADER_BYTES)
        .and_then(|slice| slice.try_into().ok())
        .ok_or(EnvelopeError::HeaderTruncated {
            found_bytes: bytes.len(),
        })?;
    let header = EnvelopeHeader::parse(first)?;
    if header.version == ENVELOPE_VERSION {
        return Ok(None);
    }
    bytes
        .get(HEADER_BYTES..SHRED_HEADER_BYTES)
        .and_then(|slice| slice.try_into().ok())
        .map(Some)
        .ok_or(EnvelopeError::HeaderTruncated {
            found_bytes: bytes.len(),
        })
}

/// The chunk loop of every version, after the header (`header_bytes`, the
/// associated data of every chunk) was read and checked.
fn decrypt_under<R: Read, W: Write>(
    reader: &mut R,
    writer: &mut W,
    key: &DataKey,
    header: &EnvelopeHeader,
    header_bytes: &[u8],
) -> Result<EnvelopeSummary, EnvelopeError> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key.as_bytes()));
    let mut plaintext_fixity = FixityHasher::new();
    let mut ciphertext_fixity = FixityHasher::new();
    ciphertext_fixity.update(header_bytes);

    let sealed_chunk_bytes = header.chunk_bytes as usize + TAG_BYTES;
    let mut buffer = Zeroizing::new(vec![0u8; sealed_chunk_bytes]);
    let mut counter: u32 = 0;
    loop {
        let filled = read_full(reader, &mut buffer)?;
        let chunk_index = u64::from(counter);
        if filled == 0 {
            return Err(match counter {
                0 => EnvelopeError::NoChunks,
                _ => EnvelopeError::MissingFinalChunk {
                    last_complete_chunk_index: chunk_index - 1,
                },
            });
        }
        if filled < TAG_BYTES {
            return Err(EnvelopeError::ChunkNotAuthentic { chunk_index });
        }
        ciphertext_fixity.update(&buffer[..filled]);
        debug_assert!(filled <= sealed_chunk_bytes);
        let last = filled < sealed_chunk_bytes;
        let nonce = chunk_nonce(&header.nonce_prefix, counter, last);
        let (body, tag_bytes) = buffer[..filled].split_at_mut(filled - TAG_BYTES);
        let tag = Tag::try_from(&*tag_bytes)
            .map_err(|_| EnvelopeError::ChunkNotAuthentic { chunk_index })?;
        cipher
            .decrypt_inout_detached(&nonce, header_bytes, body.into(), &tag)
            .map_err(|_| EnvelopeError::ChunkNotAuthentic { chunk_index })?;
        plaintext_fixity.update(body);
        writer.write_all(body).map_err(EnvelopeError::Write)?;
        if last {
            break;
        }
        counter = counter.checked_add(1).ok_or(EnvelopeError::TooManyChunks {
            chunk_bytes: header.chunk_bytes,
        })?;
    }
    writer.flush().map_err(EnvelopeError::Write)?;
    Ok(EnvelopeSummary {
        plaintext: plaintext_fixity.finish(),
        ciphertext: ciphertext_fixity.finish(),
        chunk_bytes: header.chunk_bytes,
        chunk_count: u64::from(counter) + 1,
    })
}
