//! The export file: a whole chain in one self-describing, versioned file.
//!
//! An export carries the genesis bytes, then every block with its commit
//! certificate in height order, then a trailer with counts and a hash over
//! everything before it, so that it verifies standalone, offline, decades
//! later. Writing and reading are streamed: neither holds more than one
//! block in memory. The byte layout is specified in `docs/format.md`
//! ("Export file").
//!
//! ```text
//! magic          16 bytes  "CUSTODY-EXPORT\r\n"
//! version        u16 BE    1
//! genesis_len    u32 BE    then genesis_len bytes: postcard(Genesis)
//! block entry*   u8 0x42 ('B'), u64 BE height, u32 BE block_len, block
//!                bytes, u32 BE certificate_len, certificate bytes
//! trailer        u8 0x54 ('T'), u64 BE blocks, u64 BE transactions,
//!                u64 BE last height, 32 bytes last block hash,
//!                32 bytes export hash
//! ```
//!
//! The export hash is `SHA-256(tagged("custody/export/v1", every byte from
//! the magic up to and including the last block hash))`. The file ends right
//! after the trailer.
//!
//! Block and certificate bytes are copied exactly as the store holds them,
//! never re-encoded, so verification re-hashes what the node kept.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::block::Block;
use crate::encoding::{self, DecodeError};
use crate::genesis::{Genesis, GenesisError};
use crate::state::MemoryState;
use crate::store::{Store, StoreError};
use crate::types::{BlockHash, Hash32, Height};
use crate::verify::{self, BlockSource, Progress, VerifyError, VerifyOptions, VerifyReport};

/// First 16 bytes of every export file. The CR LF catches a file mangled
/// by a text-mode transfer, as in PNG's signature.
pub const EXPORT_MAGIC: &[u8; 16] = b"CUSTODY-EXPORT\r\n";
/// The export format version this code writes; it reads this one only.
pub const EXPORT_FORMAT_VERSION: u16 = 1;
/// Domain tag of the export hash.
pub const EXPORT_TAG: &str = custody_format::tags::EXPORT;
/// Largest genesis accepted, in bytes.
pub const GENESIS_BYTES_MAX: u32 = 16 * 1024 * 1024;
/// Largest block accepted, in bytes (the decoder's own limit).
pub const BLOCK_BYTES_MAX: u32 = encoding::DECODE_BYTES_MAX as u32;
/// Block bytes checked per verification chunk (see [`ExportFile::chunk_blocks`]).
pub const CHUNK_BYTES_TARGET: u64 = 2 * 1024 * 1024;
/// Largest certificate accepted, in bytes (100 validators take about 10 KB).
pub const CERTIFICATE_BYTES_MAX: u32 = 1024 * 1024;

// `BLOCK_BYTES_MAX` is the decoder's limit in a u32 length field: the cast
// must not cut it; the other entries must decode too.
const _: () = assert!(encoding::DECODE_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(GENESIS_BYTES_MAX as usize <= encoding::DECODE_BYTES_MAX);
const _: () = assert!(CERTIFICATE_BYTES_MAX as usize <= encoding::DECODE_BYTES_MAX);

const ENTRY_BLOCK: u8 = b'B';
const ENTRY_TRAILER: u8 = b'T';

/// Why an export could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("I/O error at byte {offset}: {source}")]
    Io { offset: u64, source: io::Error },
    #[error("not a Custody export file (magic bytes differ)")]
    BadMagic,
    #[error("export format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u16),
    #[error("file ends early at byte {offset}, inside {what}")]
    Truncated { offset: u64, what: &'static str },
    #[error("{what} at byte {offset} is {len} bytes, more than the limit of {max}")]
    TooLarge {
        offset: u64,
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("unknown entry kind 0x{kind:02x} at byte {offset}")]
    UnknownEntry { offset: u64, kind: u8 },
    #[error("block entry at byte {offset} is for height {found}, expected {expected}")]
    WrongHeight {
        offset: u64,
        expected: Height,
        found: Height,
    },
    #[error("genesis in the export is invalid: {0}")]
    Genesis(GenesisError),
    #[error("trailer counts {found} blocks, the file holds {counted}")]
    TrailerBlocks { counted: u64, found: u64 },
    #[error("trailer names last height {found}, the file ends at height {counted}")]
    TrailerHeight { counted: Height, found: Height },
    #[error("trailer counts {found} transactions, the blocks hold {counted}")]
    TrailerTransactions { counted: u64, found: u64 },
    #[error("trailer names last block {found}, the last block is {computed}")]
    TrailerLastBlock {
        computed: BlockHash,
        found: BlockHash,
    },
    #[error("export hash in the trailer is {found}, the bytes hash to {computed}")]
    ExportHash { computed: Hash32, found: Hash32 },
    #[error("{0} bytes after the trailer")]
    TrailingBytes(u64),
    #[error("block {height} to export does not decode: {error}")]
    BlockUndecodable { height: Height, error: DecodeError },
    #[error("block {height} is missing from the source")]
    MissingBlock { height: Height },
    #[error("certificate of block {height} is missing from the source")]
    MissingCertificate { height: Height },
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The trailer: what the writer counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub blocks: u64,
    pub transactions: u64,
    pub last_height: Height,
    pub last_block_hash: BlockHash,
    pub export_hash: Hash32,
}

/// Streams an export to any writer. Call [`ExportWriter::push`] for every
/// block in height order, then [`ExportWriter::finish`].
pub struct ExportWriter<W: Write> {
    out: W,
    hasher: Sha256,
    offset: u64,
    next_height: Height,
    blocks: u64,
    transactions: u64,
    last_block_hash: BlockHash,
}

fn io_at(offset: u64) -> impl FnOnce(io::Error) -> ExportError {
    move |source| ExportError::Io { offset, source }
}

impl<W: Write> ExportWriter<W> {
    /// Write the magic, the version and the genesis.
    pub fn new(out: W, genesis: &Genesis) -> Result<Self, ExportError> {
        let genesis_bytes = genesis.to_bytes();
        let mut hasher = Sha256::new();
        hasher.update(encoding::tagged(EXPORT_TAG, &[]));
        let mut writer = ExportWriter {
            out,
            hasher,
            offset: 0,
            next_height: Height(1),
            blocks: 0,
            transactions: 0,
            last_block_hash: BlockHash(genesis.hash().0),
        };
        writer.put(EXPORT_MAGIC)?;
        writer.put(&EXPORT_FORMAT_VERSION.to_be_bytes())?;
        writer.put(&(genesis_bytes.len() as u32).to_be_bytes())?;
        writer.put(&genesis_bytes)?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.out.write_all(bytes).map_err(io_at(self.offset))?;
        self.hasher.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Append the stored bytes of the next block and of its certificate.
    /// The block is decoded to learn its height, hash and transaction
    /// count; the bytes written are the ones given.
    pub fn push(&mut self, raw_block: &[u8], raw_certificate: &[u8]) -> Result<(), ExportError> {
        let height = self.next_height;
        let block: Block = encoding::decode(raw_block)
            .map_err(|error| ExportError::BlockUndecodable { height, error })?;
        if block.header.height != height {
            return Err(ExportError::WrongHeight {
                offset: self.offset,
                expected: height,
                found: block.header.height,
            });
        }
        self.put(&[ENTRY_BLOCK])?;
        self.put(&height.0.to_be_bytes())?;
        self.put(&(raw_block.len() as u32).to_be_bytes())?;
        self.put(raw_block)?;
        self.put(&(raw_certificate.len() as u32).to_be_bytes())?;
        self.put(raw_certificate)?;
        self.blocks += 1;
        self.transactions += block.transactions.len() as u64;
        self.last_block_hash = block.hash();
        self.next_height = height.next();
        Ok(())
    }

    /// Write the trailer, flush, and return it with the writer.
    pub fn finish(mut self) -> Result<(Trailer, W), ExportError> {
        let last_height = Height(self.next_height.0 - 1);
        self.put(&[ENTRY_TRAILER])?;
        self.put(&self.blocks.to_be_bytes())?;
        self.put(&self.transactions.to_be_bytes())?;
        self.put(&last_height.0.to_be_bytes())?;
        let last = self.last_block_hash;
        self.put(&last.0)?;
        let export_hash = Hash32(self.hasher.clone().finalize().into());
        self.out
            .write_all(&export_hash.0)
            .map_err(io_at(self.offset))?;
        self.out.flush().map_err(io_at(self.offset))?;
        let trailer = Trailer {
            blocks: self.blocks,
            transactions: self.transactions,
            last_height,
            last_block_hash: last,
            export_hash,
        };
        Ok((trailer, self.out))
    }
}

/// Export the whole chain of `store` (up to its latest height when called)
/// to `out`.
pub fn write_export<W: Write>(store: &Store, out: W) -> Result<Trailer, ExportError> {
    let genesis = store.genesis()?;
    let latest = store.latest_height()?;
    let blocks = (1..=latest.0).map(|h| {
        let height = Height(h);
        let block = store
            .raw_block(height)?
            .ok_or(ExportError::MissingBlock { height })?;
        let certificate = store
            .raw_certificate(height)?
            .ok_or(ExportError::MissingCertificate { height })?;
        Ok((block, certificate))
    });
    write_export_from(&genesis, blocks, out)
}

/// Export a genesis and `(block bytes, certificate bytes)` pairs given in
/// height order from 1.
pub fn write_export_from<W: Write>(
    genesis: &Genesis,
    blocks: impl IntoIterator<Item = Result<(Vec<u8>, Vec<u8>), ExportError>>,
    out: W,
) -> Result<Trailer, ExportError> {
    let mut writer = ExportWriter::new(out, genesis)?;
    for entry in blocks {
        let (block, certificate) = entry?;
        writer.push(&block, &certificate)?;
    }
    Ok(writer.finish()?.0)
}

/// Write an export of `store` to `path` atomically enough for an archive:
/// a temporary file beside it, flushed and synced, then renamed.
pub fn write_export_file(store: &Store, path: &Path) -> Result<Trailer, ExportError> {
    let temporary = path.with_extension("partial");
    let file = File::create(&temporary).map_err(io_at(0))?;
    let trailer = write_export(store, BufWriter::new(&file))?;
    file.sync_all().map_err(io_at(0))?;
    std::fs::rename(&temporary, path).map_err(io_at(0))?;
    Ok(trailer)
}

/// One block entry as read: the stored bytes, not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub height: Height,
    /// Byte offset of the block bytes in the file.
    pub block_offset: u64,
    pub block: Vec<u8>,
    /// Byte offset of the certificate bytes in the file.
    pub certificate_offset: u64,
    pub certificate: Vec<u8>,
}

/// Streams an export from any reader, checking its framing, its trailer
/// and its export hash. It does not check the chain itself: that is
/// [`verify_export`]'s job.
pub struct ExportReader<R: Read> {
    input: R,
    hasher: Sha256,
    offset: u64,
    genesis: Genesis,
    genesis_bytes: Vec<u8>,
    next_height: Height,
    blocks: u64,
    trailer: Option<Trailer>,
}

impl<R: Read> ExportReader<R> {
    /// Read and check the magic, the version and the genesis.
    pub fn new(input: R) -> Result<Self, ExportError> {
        let mut hasher = Sha256::new();
        hasher.update(encoding::tagged(EXPORT_TAG, &[]));
        let mut reader = ExportReader {
            input,
            hasher,
            offset: 0,
            genesis: placeholder_genesis(),
            genesis_bytes: Vec::new(),
            next_height: Height(1),
            blocks: 0,
            trailer: None,
        };
        let mut magic = [0u8; 16];
        reader.take(&mut magic, "the magic bytes")?;
        if &magic != EXPORT_MAGIC {
            return Err(ExportError::BadMagic);
        }
        let version = u16::from_be_bytes(reader.array("the format version")?);
        if version != EXPORT_FORMAT_VERSION {
            return Err(ExportError::UnsupportedVersion(version));
        }
        let genesis_bytes = reader.sized(GENESIS_BYTES_MAX, "the genesis")?;
        reader.genesis = Genesis::from_bytes(&genesis_bytes).map_err(ExportError::Genesis)?;
        reader.genesis_bytes = genesis_bytes;
        Ok(reader)
    }

    /// The genesis the export starts from (checked to decode and validate;
    /// whether it is *the* genesis is the auditor's to compare by hash).
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The genesis exactly as stored in the file.
    pub fn genesis_bytes(&self) -> &[u8] {
        &self.genesis_bytes
    }

    /// The trailer, once [`ExportReader::next_entry`] returned `None`.
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_ref()
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn take(&mut self, buffer: &mut [u8], what: &'static str) -> Result<(), ExportError> {
        let offset = self.offset;
        self.input.read_exact(buffer).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ExportError::Truncated { offset, what }
            } else {
                ExportError::Io { offset, source: e }
            }
        })?;
        self.hasher.update(&*buffer);
        self.offset += buffer.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ExportError> {
        let mut out = [0u8; N];
        self.take(&mut out, what)?;
        Ok(out)
    }

    /// A u32 BE length, then that many bytes (at most `max`). The buffer
    /// grows as bytes arrive, so a lying length cannot make it allocate
    /// more than the file holds.
    fn sized(&mut self, max: u32, what: &'static str) -> Result<Vec<u8>, ExportError> {
        let offset = self.offset;
        let len = u32::from_be_bytes(self.array(what)?);
        if len > max {
            return Err(ExportError::TooLarge {
                offset,
                what,
                len: u64::from(len),
                max: u64::from(max),
            });
        }
        let mut out = Vec::new();
        let start = self.offset;
        let got = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut out)
            .map_err(io_at(start))?;
        if got as u64 != u64::from(len) {
            return Err(ExportError::Truncated {
                offset: start + got as u64,
                what,
            });
        }
        self.hasher.update(&out);
        self.offset += u64::from(len);
        Ok(out)
    }

    /// The next block entry, or `None` after the trailer was read and
    /// checked (counts, export hash, nothing after it).
    pub fn next_entry(&mut self) -> Result<Option<RawEntry>, ExportError> {
        if self.trailer.is_some() {
            return Ok(None);
        }
        let entry_offset = self.offset;
        let [kind] = self.array::<1>("an entry kind")?;
        match kind {
            ENTRY_BLOCK => {
                let height = Height(u64::from_be_bytes(self.array("a block height")?));
                if height != self.next_height {
                    return Err(ExportError::WrongHeight {
                        offset: entry_offset,
                        expected: self.next_height,
                        found: height,
                    });
                }
                let block_offset = self.offset + 4;
                let block = self.sized(BLOCK_BYTES_MAX, "a block")?;
                let certificate_offset = self.offset + 4;
                let certificate = self.sized(CERTIFICATE_BYTES_MAX, "a certificate")?;
                self.next_height = height.next();
                self.blocks += 1;
                Ok(Some(RawEntry {
                    height,
                    block_offset,
                    block,
                    certificate_offset,
                    certificate,
                }))
            }
            ENTRY_TRAILER => {
                let blocks = u64::from_be_bytes(self.array("the trailer")?);
                let transactions = u64::from_be_bytes(self.array("the trailer")?);
                let last_height = Height(u64::from_be_bytes(self.array("the trailer")?));
                let last_block_hash = BlockHash(self.array("the trailer")?);
                let computed = Hash32(self.hasher.clone().finalize().into());
                let mut found = [0u8; 32];
                let offset = self.offset;
                self.input
                    .read_exact(&mut found)
                    .map_err(|_| ExportError::Truncated {
                        offset,
                        what: "the trailer",
                    })?;
                self.offset += 32;
                if blocks != self.blocks {
                    return Err(ExportError::TrailerBlocks {
                        counted: self.blocks,
                        found: blocks,
                    });
                }
                let counted = Height(self.next_height.0 - 1);
                if last_height != counted {
                    return Err(ExportError::TrailerHeight {
                        counted,
                        found: last_height,
                    });
                }
                let mut rest = Vec::new();
                let extra = (&mut self.input)
                    .take(1024)
                    .read_to_end(&mut rest)
                    .map_err(io_at(self.offset))?;
                if extra > 0 {
                    return Err(ExportError::TrailingBytes(extra as u64));
                }
                self.trailer = Some(Trailer {
                    blocks,
                    transactions,
                    last_height,
                    last_block_hash,
                    export_hash: Hash32(found),
                });
                if computed.0 != found {
                    return Err(ExportError::ExportHash {
                        computed,
                        found: Hash32(found),
                    });
                }
                Ok(None)
            }
            kind => Err(ExportError::UnknownEntry {
                offset: entry_offset,
                kind,
            }),
        }
    }
}

/// A genesis that is never used: the reader's field before the real one is
/// read (keeps the struct free of `Option` checks afterwards).
fn placeholder_genesis() -> Genesis {
    Genesis {
        format_version: 0,
        chain_id: String::new(),
        genesis_time: crate::types::Timestamp(0),
        parameters: crate::records::Parameters::default(),
        departments: Vec::new(),
    }
}

/// Where one block's bytes sit in an export file.
#[derive(Debug, Clone, Copy)]
struct Located {
    block_offset: u64,
    block_len: u32,
    certificate_offset: u64,
    certificate_len: u32,
}

/// What one sequential pass over an export found: its genesis, where each
/// block sits, its trailer, and a trailer problem (hash or counts) kept
/// rather than returned at once, so that verification can first name the
/// block that differs, which says more than "the hash differs".
struct ExportIndex {
    genesis: Genesis,
    index: Vec<Located>,
    trailer: Option<Trailer>,
    trailer_error: Option<ExportError>,
}

impl ExportIndex {
    /// One pass over `input`: framing errors are returned; a trailer
    /// mismatch is kept for [`ExportIndex::trailer_check`].
    fn read<R: Read>(input: R) -> Result<ExportIndex, ExportError> {
        let mut reader = ExportReader::new(input)?;
        let genesis = reader.genesis().clone();
        let mut index = Vec::new();
        let trailer_error = loop {
            match reader.next_entry() {
                Ok(Some(entry)) => index.push(Located {
                    block_offset: entry.block_offset,
                    block_len: entry.block.len() as u32,
                    certificate_offset: entry.certificate_offset,
                    certificate_len: entry.certificate.len() as u32,
                }),
                Ok(None) => break None,
                Err(
                    e @ (ExportError::ExportHash { .. }
                    | ExportError::TrailerBlocks { .. }
                    | ExportError::TrailerHeight { .. }),
                ) => break Some(e),
                Err(e) => return Err(e),
            }
        };
        let trailer = reader.trailer().copied();
        Ok(ExportIndex {
            genesis,
            index,
            trailer,
            trailer_error,
        })
    }

    fn block_count(&self) -> u64 {
        self.index.len() as u64
    }

    fn chunk_blocks(&self, threads: usize, max: usize) -> usize {
        let workers = threads.saturating_sub(1).max(1);
        let total: u64 = self.index.iter().map(|l| u64::from(l.block_len)).sum();
        let average = (total / self.block_count().max(1)).max(1);
        let by_bytes = (CHUNK_BYTES_TARGET / average).max(1) as usize;
        let chunk = by_bytes.max(workers).div_ceil(workers) * workers;
        chunk.min(max.max(workers))
    }

    fn trailer_check(&self, report: &VerifyReport) -> Result<(), ExportError> {
        if let Some(e) = &self.trailer_error {
            return Err(match e {
                ExportError::ExportHash { computed, found } => ExportError::ExportHash {
                    computed: *computed,
                    found: *found,
                },
                ExportError::TrailerBlocks { counted, found } => ExportError::TrailerBlocks {
                    counted: *counted,
                    found: *found,
                },
                ExportError::TrailerHeight { counted, found } => ExportError::TrailerHeight {
                    counted: *counted,
                    found: *found,
                },
                _ => ExportError::TrailingBytes(0),
            });
        }
        let Some(trailer) = &self.trailer else {
            return Err(ExportError::Truncated {
                offset: 0,
                what: "the trailer",
            });
        };
        if trailer.transactions != report.transactions {
            return Err(ExportError::TrailerTransactions {
                counted: report.transactions,
                found: trailer.transactions,
            });
        }
        if trailer.last_block_hash != report.last_block_hash {
            return Err(ExportError::TrailerLastBlock {
                computed: report.last_block_hash,
                found: trailer.last_block_hash,
            });
        }
        Ok(())
    }

    fn located(&self, height: Height) -> Option<&Located> {
        let index = usize::try_from(height.0.checked_sub(1)?).ok()?;
        self.index.get(index)
    }
}

/// An export file opened for random access by height, as a
/// [`BlockSource`]: one sequential pass checks the framing and records
/// where each block sits (24 bytes per block in memory), then blocks are
/// read with positioned reads from any thread.
pub struct ExportFile {
    file: File,
    indexed: ExportIndex,
}

impl ExportFile {
    /// Open and index an export. Framing errors are returned; a trailer
    /// mismatch is kept for [`ExportFile::trailer_check`].
    pub fn open(path: &Path) -> Result<ExportFile, ExportError> {
        let file = File::open(path).map_err(io_at(0))?;
        let indexed = ExportIndex::read(BufReader::with_capacity(1 << 20, &file))?;
        Ok(ExportFile { file, indexed })
    }

    /// The genesis in the file.
    pub fn genesis(&self) -> &Genesis {
        &self.indexed.genesis
    }

    /// The trailer (present even when its hash did not match).
    pub fn trailer(&self) -> Option<&Trailer> {
        self.indexed.trailer.as_ref()
    }

    /// Number of blocks in the file.
    pub fn block_count(&self) -> u64 {
        self.indexed.block_count()
    }

    /// Blocks per verification chunk for `threads` threads: about
    /// [`CHUNK_BYTES_TARGET`] of block bytes, at least one block per
    /// signature-checking thread and a multiple of their number, at most
    /// `max`. The verifier replays one chunk while the next is checked, so
    /// a chunk must be small next to the chain (a chain of large blocks in
    /// one chunk would not overlap at all) yet large enough to keep every
    /// checking thread busy.
    pub fn chunk_blocks(&self, threads: usize, max: usize) -> usize {
        self.indexed.chunk_blocks(threads, max)
    }

    /// Check the trailer against the file and a verified chain's report.
    pub fn trailer_check(&self, report: &VerifyReport) -> Result<(), ExportError> {
        self.indexed.trailer_check(report)
    }

    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let mut buffer = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buffer, offset)
            .map_err(|e| format!("export file read at byte {offset}: {e}"))?;
        Ok(buffer)
    }
}

impl BlockSource for ExportFile {
    fn latest_height(&self) -> Result<Height, String> {
        Ok(Height(self.indexed.block_count()))
    }
    fn raw_block(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        match self.indexed.located(height) {
            Some(l) => self.read_at(l.block_offset, l.block_len).map(Some),
            None => Ok(None),
        }
    }
    fn raw_certificate(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        match self.indexed.located(height) {
            Some(l) => self
                .read_at(l.certificate_offset, l.certificate_len)
                .map(Some),
            None => Ok(None),
        }
    }
}

/// An export held in memory (an upload), as a [`BlockSource`]: the same
/// one-pass check of the framing as [`ExportFile::open`], then blocks are
/// sliced out of the bytes by height.
pub struct ExportSlice<'a> {
    bytes: &'a [u8],
    indexed: ExportIndex,
}

impl<'a> ExportSlice<'a> {
    /// Index an export held in memory. Framing errors are returned; a
    /// trailer mismatch is kept for [`ExportSlice::trailer_check`].
    pub fn open(bytes: &'a [u8]) -> Result<ExportSlice<'a>, ExportError> {
        let indexed = ExportIndex::read(bytes)?;
        Ok(ExportSlice { bytes, indexed })
    }

    /// The genesis in the export.
    pub fn genesis(&self) -> &Genesis {
        &self.indexed.genesis
    }

    /// The trailer (present even when its hash did not match).
    pub fn trailer(&self) -> Option<&Trailer> {
        self.indexed.trailer.as_ref()
    }

    /// Number of blocks in the export.
    pub fn block_count(&self) -> u64 {
        self.indexed.block_count()
    }

    /// Check the trailer against the export and a verified chain's report.
    pub fn trailer_check(&self, report: &VerifyReport) -> Result<(), ExportError> {
        self.indexed.trailer_check(report)
    }

    fn slice(&self, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        usize::try_from(offset)
            .ok()
            .and_then(|start| self.bytes.get(start..start.checked_add(len as usize)?))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("export bytes end before byte {offset} + {len}"))
    }
}

impl BlockSource for ExportSlice<'_> {
    fn latest_height(&self) -> Result<Height, String> {
        Ok(Height(self.indexed.block_count()))
    }
    fn raw_block(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        match self.indexed.located(height) {
            Some(l) => self.slice(l.block_offset, l.block_len).map(Some),
            None => Ok(None),
        }
    }
    fn raw_certificate(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        match self.indexed.located(height) {
            Some(l) => self
                .slice(l.certificate_offset, l.certificate_len)
                .map(Some),
            None => Ok(None),
        }
    }
}

/// Why an export does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ExportVerifyError {
    #[error("export file: {0}")]
    File(#[from] ExportError),
    #[error("export holds genesis {found}, the auditor expected {expected}")]
    GenesisNotExpected { expected: Hash32, found: Hash32 },
    #[error("{0}")]
    Chain(#[from] VerifyError),
}

/// Verify an export end to end: framing, the chain from its genesis (hash
/// links, Merkle roots, every signature, every certificate against the set
/// in force, re-execution), then the trailer. With `expected_genesis`, the
/// export's genesis must hash to it.
pub fn verify_export(
    path: &Path,
    expected_genesis: Option<Hash32>,
    options: VerifyOptions,
    progress: impl FnMut(Progress),
) -> Result<(VerifyReport, MemoryState, ExportFile), ExportVerifyError> {
    let file = ExportFile::open(path)?;
    let (report, state) =
        verify_indexed(&file.indexed, &file, expected_genesis, options, progress)?;
    Ok((report, state, file))
}

/// [`verify_export`] for an export held in memory (an upload).
pub fn verify_export_bytes(
    bytes: &[u8],
    expected_genesis: Option<Hash32>,
    options: VerifyOptions,
    progress: impl FnMut(Progress),
) -> Result<(VerifyReport, MemoryState, ExportSlice<'_>), ExportVerifyError> {
    let slice = ExportSlice::open(bytes)?;
    let (report, state) =
        verify_indexed(&slice.indexed, &slice, expected_genesis, options, progress)?;
    Ok((report, state, slice))
}

/// The chain of an indexed export from its genesis, then its trailer.
fn verify_indexed(
    indexed: &ExportIndex,
    source: &dyn BlockSource,
    expected_genesis: Option<Hash32>,
    options: VerifyOptions,
    progress: impl FnMut(Progress),
) -> Result<(VerifyReport, MemoryState), ExportVerifyError> {
    let found = indexed.genesis.hash();
    if let Some(expected) = expected_genesis {
        if expected != found {
            return Err(ExportVerifyError::GenesisNotExpected { expected, found });
        }
    }
    let threads = if options.threads > 0 {
        options.threads
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    };
    let options = VerifyOptions {
        chunk_blocks: indexed.chunk_blocks(threads, options.chunk_blocks),
        ..options
    };
    let (report, state) = verify::verify_chain(&indexed.genesis, source, options, progress)?;
    indexed.trailer_check(&report)?;
    Ok((report, state))
}

/// Import a verified export into a fresh store at `dir`: every block is
/// re-applied through the state machine and committed with its certificate,
/// so the new store is exactly what a node would have built.
pub fn import_export(
    path: &Path,
    dir: &Path,
    options: VerifyOptions,
    progress: impl FnMut(Progress),
) -> Result<VerifyReport, ImportError> {
    let (report, _state, file) = verify_export(path, None, options, progress)?;
    import_verified(&file, &report, dir)?;
    Ok(report)
}

/// Writes an export that [`verify_export`] accepted (`report` is what it
/// returned for `file`) into a fresh store at `dir`, re-applying every block
/// through the state machine, and checks that the store's state digest is
/// the verified one. Refuses a `dir` that is not empty.
pub fn import_verified(
    file: &ExportFile,
    report: &VerifyReport,
    dir: &Path,
) -> Result<(), ImportError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| ImportError::Directory(e.to_string()))?
            .next()
            .is_some()
    {
        return Err(ImportError::NotEmpty(dir.display().to_string()));
    }
    let store = Store::open_or_init(dir, file.genesis())?;
    for h in 1..=report.height.0 {
        let height = Height(h);
        let raw_block = file
            .raw_block(height)
            .map_err(ImportError::Read)?
            .ok_or(ImportError::Read(format!("block {height} vanished")))?;
        let raw_certificate = file
            .raw_certificate(height)
            .map_err(ImportError::Read)?
            .ok_or(ImportError::Read(format!("certificate {height} vanished")))?;
        let block: Block = encoding::decode(&raw_block)
            .map_err(|e| ImportError::Read(format!("block {height}: {e}")))?;
        let certificate = crate::certificate::CommitCertificate::from_bytes(&raw_certificate)
            .map_err(|e| ImportError::Read(format!("certificate {height}: {e}")))?;
        let changes = crate::state::apply_block_with(
            &store,
            &block,
            crate::state::Signatures::AlreadyVerified,
        )
        .map_err(|e| ImportError::Read(format!("block {height} refused on import: {e}")))?;
        store.commit(&block, &certificate, &changes)?;
    }
    let digest = store.state_digest()?;
    if digest != report.state_digest {
        return Err(ImportError::StateDiffers {
            verified: report.state_digest,
            imported: digest,
        });
    }
    Ok(())
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Verify(#[from] ExportVerifyError),
    #[error("store directory {0} is not empty; import only into a fresh directory")]
    NotEmpty(String),
    #[error("cannot read the store directory: {0}")]
    Directory(String),
    #[error("{0}")]
    Read(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("imported store's state {imported} differs from the verified state {verified}")]
    StateDiffers { verified: Hash32, imported: Hash32 },
}

/// The small chain behind the committed export test vector
/// (`ledger/tests/vectors/export-v1.bin`), built from fixed seed keys: four
/// departments, clerks, documents registered, transferred, rejected,
/// granted, read, amended and fixity-checked, and a fifth department added
/// by governance so that proofs carry a validator-set change. Also used by
/// the CLI's tests. Keys derived from labels are for tests only (behind
/// the `testkit` feature).
#[cfg(feature = "testkit")]
pub mod sample {
    use crate::encoding::{self, public_key_of};
    use crate::records::{DepartmentKeys, NewDepartment, NewMember};
    use crate::testkit::{department, seed_key, Chain, Federation, Signer, GENESIS_TIME_MS};
    use crate::tx::{AmendReason, FixityResult, GovernanceChange, TxBody};
    use crate::types::{
        Classification, DocumentId, Fixity, Format, PublicKey, Retention, Role, Timestamp,
        WrappedKey,
    };

    /// Chain id of the sample chain.
    pub const CHAIN_ID: &str = "custody-export-v1";

    /// The plaintext of document `id` at `version`, as the sample registers it.
    pub fn plaintext(id: &str, version: u32) -> Vec<u8> {
        format!("Sample archive {id}, version {version}.\n").into_bytes()
    }

    /// The ciphertext stand-in of document `id` at `version`.
    pub fn ciphertext(id: &str, version: u32) -> Vec<u8> {
        format!("ciphertext of {id} v{version} -- not really encrypted\n").into_bytes()
    }

    fn fixity(bytes: &[u8]) -> Fixity {
        Fixity {
            sha256: encoding::sha256(bytes),
            size_bytes: bytes.len() as u64,
        }
    }

    fn doc(id: &str) -> DocumentId {
        match DocumentId::new(id) {
            Ok(d) => d,
            Err(e) => panic!("sample document id: {e}"),
        }
    }

    fn wrapped(label: &str) -> WrappedKey {
        WrappedKey(encoding::sha256(label.as_bytes()).0.repeat(2))
    }

    fn commit(chain: &mut Chain, txs: Vec<crate::tx::SignedTransaction>) {
        if let Err(e) = chain.commit(txs) {
            panic!("sample block refused: {e}");
        }
    }

    fn latest(chain: &Chain, id: &str) -> crate::types::EventHash {
        match chain.state.documents.get(&doc(id)) {
            Some(d) => d.latest_event,
            None => panic!("sample document {id} missing"),
        }
    }

    fn register(id: &str, dept: &str, classification: Classification) -> TxBody {
        TxBody::Register {
            document: doc(id),
            title: format!("Sample archive {id}"),
            record_type: "birth-certificate".to_string(),
            department: department(dept),
            created: Timestamp(GENESIS_TIME_MS),
            classification,
            retention: Retention::Years(30),
            format: Format {
                mime: "application/pdf".to_string(),
                pronom: Some("fmt/276".to_string()),
            },
            plaintext: fixity(&plaintext(id, 1)),
            ciphertext: fixity(&ciphertext(id, 1)),
            subject_tag: None,
            wrapped_key: wrapped(&format!("{id}/{dept}")),
        }
    }

    /// Build the sample chain.
    pub fn chain() -> Chain {
        let mut chain = Chain::from_federation(Federation::new(4, CHAIN_ID));
        let mut clerks: Vec<(String, Signer)> = Vec::new();
        let mut enrol = Vec::new();
        for slug in ["civil-affairs", "social-security", "health", "finance"] {
            let key = seed_key(&format!("{slug}/clerk"));
            let body = TxBody::EnrollMember {
                member: public_key_of(&key),
                department: department(slug),
                name: format!("{slug} clerk"),
                roles: vec![Role::Clerk, Role::Auditor],
                clearance: Classification::Secret,
            };
            enrol.push(chain.admin(slug).sign(body));
            clerks.push((slug.to_string(), Signer::new(key, CHAIN_ID)));
        }
        commit(&mut chain, enrol);
        let clerk = |slug: &str| -> Signer {
            match clerks.iter().find(|(s, _)| s == slug) {
                Some((_, s)) => s.clone(),
                None => panic!("no clerk for {slug}"),
            }
        };
        let mut ca = clerk("civil-affairs");
        let mut ss = clerk("social-security");
        let mut he = clerk("health");
        let mut fi = clerk("finance");

        // Registrations, several in one block.
        commit(
            &mut chain,
            vec![
                ca.sign(register(
                    "ca/2026/0001",
                    "civil-affairs",
                    Classification::Internal,
                )),
                ca.sign(register(
                    "ca/2026/0002",
                    "civil-affairs",
                    Classification::Confidential,
                )),
                ss.sign(register(
                    "ss/2026/0001",
                    "social-security",
                    Classification::Secret,
                )),
            ],
        );
        // A transfer offered and accepted.
        let offer = TxBody::OfferTransfer {
            document: doc("ca/2026/0001"),
            previous_event: latest(&chain, "ca/2026/0001"),
            to: department("social-security"),
            wrapped_key: wrapped("ca/2026/0001/social-security"),
            expires_at: None,
        };
        commit(&mut chain, vec![ca.sign(offer)]);
        let accept = TxBody::AcceptTransfer {
            document: doc("ca/2026/0001"),
            previous_event: latest(&chain, "ca/2026/0001"),
            ciphertext_sha256: encoding::sha256(&ciphertext("ca/2026/0001", 1)),
        };
        commit(&mut chain, vec![ss.sign(accept)]);
        // An offer rejected.
        let offer = TxBody::OfferTransfer {
            document: doc("ca/2026/0002"),
            previous_event: latest(&chain, "ca/2026/0002"),
            to: department("health"),
            wrapped_key: wrapped("ca/2026/0002/health"),
            expires_at: None,
        };
        commit(&mut chain, vec![ca.sign(offer)]);
        let reject = TxBody::RejectTransfer {
            document: doc("ca/2026/0002"),
            previous_event: latest(&chain, "ca/2026/0002"),
            reason: "not ours to keep".to_string(),
        };
        commit(&mut chain, vec![he.sign(reject)]);
        // A grant and two reads by the grantee, one by the custodian.
        let grant = TxBody::GrantAccess {
            document: doc("ca/2026/0001"),
            previous_event: latest(&chain, "ca/2026/0001"),
            to: department("finance"),
            wrapped_key: wrapped("ca/2026/0001/finance"),
            expires_at: Timestamp(GENESIS_TIME_MS + 365 * 24 * 3600 * 1000),
        };
        commit(&mut chain, vec![ss.sign(grant)]);
        for purpose in ["benefit claim 17", "benefit claim 17 follow-up"] {
            let read = TxBody::RecordAccess {
                document: doc("ca/2026/0001"),
                previous_event: latest(&chain, "ca/2026/0001"),
                purpose: purpose.to_string(),
                ciphertext_sha256: encoding::sha256(&ciphertext("ca/2026/0001", 1)),
            };
            commit(&mut chain, vec![fi.sign(read)]);
        }
        let read = TxBody::RecordAccess {
            document: doc("ss/2026/0001"),
            previous_event: latest(&chain, "ss/2026/0001"),
            purpose: "case review".to_string(),
            ciphertext_sha256: encoding::sha256(&ciphertext("ss/2026/0001", 1)),
        };
        commit(&mut chain, vec![ss.sign(read)]);
        // Governance: a fifth department joins (3 of 4 approve).
        let validator = seed_key("archives-bureau/validator");
        let admin = seed_key("archives-bureau/admin");
        let change = GovernanceChange::AddDepartment(NewDepartment {
            id: department("archives-bureau"),
            name: "Archives bureau".to_string(),
            keys: DepartmentKeys {
                validator_key: public_key_of(&validator),
                node_key: public_key_of(&seed_key("archives-bureau/node")),
                encryption_key: PublicKey(encoding::sha256(b"archives-bureau/x25519").0),
            },
            voting_power: 1,
            admins: vec![NewMember {
                key: public_key_of(&admin),
                name: "archives admin".to_string(),
                roles: vec![Role::Admin],
                clearance: Classification::Secret,
            }],
        });
        let propose = chain
            .admin("civil-affairs")
            .sign(TxBody::ProposeChange { change });
        let proposal = crate::types::ProposalId(propose.id().0);
        commit(&mut chain, vec![propose]);
        let approvals = vec![
            chain
                .admin("social-security")
                .sign(TxBody::ApproveChange { proposal }),
            chain
                .admin("health")
                .sign(TxBody::ApproveChange { proposal }),
        ];
        commit(&mut chain, approvals);
        // The new department's validator now signs certificates too.
        chain.federation.validators.push(validator);
        // After the change: an amendment and a fixity check.
        let amend = TxBody::Amend {
            document: doc("ca/2026/0001"),
            previous_event: latest(&chain, "ca/2026/0001"),
            reason: AmendReason::Correction,
            note: "typo in the surname".to_string(),
            format: Format {
                mime: "application/pdf".to_string(),
                pronom: Some("fmt/276".to_string()),
            },
            plaintext: fixity(&plaintext("ca/2026/0001", 2)),
            ciphertext: fixity(&ciphertext("ca/2026/0001", 2)),
            wrapped_key: wrapped("ca/2026/0001/v2"),
        };
        commit(&mut chain, vec![ss.sign(amend)]);
        let check = TxBody::RecordFixityCheck {
            document: doc("ca/2026/0001"),
            previous_event: latest(&chain, "ca/2026/0001"),
            ciphertext_sha256: encoding::sha256(&ciphertext("ca/2026/0001", 2)),
            result: FixityResult::Intact,
            note: "yearly check".to_string(),
        };
        commit(&mut chain, vec![ss.sign(check)]);
        chain
    }

    /// The sample chain as an export, in memory.
    pub fn export_bytes() -> Vec<u8> {
        let chain = chain();
        let blocks = chain
            .blocks
            .iter()
            .map(|(b, c)| Ok((b.to_bytes(), c.to_bytes())));
        let mut out = Vec::new();
        if let Err(e) = super::write_export_from(&chain.federation.genesis, blocks, &mut out) {
            panic!("sample export: {e}");
        }
        out
    }
}
