//! The node's blob store: encrypted document envelopes on disk, addressed
//! by the SHA-256 of their bytes (the ciphertext fixity on chain).
//!
//! Layout under `<data>/blobs/`:
//! - `<aa>/<64 hex>`: a complete blob, its name its SHA-256;
//! - `tmp/`: uploads in progress (removed on failure or restart);
//! - `partial/<64 hex>`: a fetch from peers in progress, kept across
//!   failures so that the next attempt resumes where this one stopped;
//! - `quarantine/<64 hex>.<unix ms>`: a blob whose bytes stopped matching
//!   its name, moved out of the way (never deleted: it is evidence, and
//!   the only copy if every other node lost theirs; only the disposal of
//!   its document deletes it, `blob_disposal.rs`).
//!
//! Invariants:
//! - a file appears under its hash only after its bytes were hashed, found
//!   equal to the name, and fsynced (temp file, fsync, rename, fsync dir);
//! - one blob is at most `blob_bytes_max`, the store at most
//!   `total_bytes_max`; both are checked before a byte is written, and an
//!   upload reserves its announced size in one atomic step, so parallel
//!   uploads cannot pass the limit together;
//! - memory per transfer is one buffer of at most [`IO_BUFFER_BYTES`],
//!   whatever the size of the blob;
//! - a blob is re-hashed before it is served (a read, the first range of a
//!   fetch by a peer) or reported held, and by the periodic scrub
//!   (`blob_scrub.rs`); one that does not match is quarantined.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::network::NetworkHandle;

/// Where blobs that no longer match their hash are moved, under the root.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Buffer used when hashing or copying a blob.
pub const IO_BUFFER_BYTES: usize = 256 * 1024;
pub use crate::config::FETCH_RANGE_BYTES_CEILING;
/// Signed read requests remembered for replay protection. When full, new
/// requests are refused until old ones age out of the freshness window.
pub const READ_REQUESTS_REMEMBERED_MAX: usize = 100_000;

pub use crate::config::BlobConfig;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a blob of {size_bytes} bytes exceeds this node's limit of {max_bytes} bytes (blobs.blob_bytes_max)")]
    TooLarge { size_bytes: u64, max_bytes: u64 },
    #[error("the blob store is full: {used_bytes} bytes used, {size_bytes} more would exceed blobs.total_bytes_max = {max_bytes}")]
    StoreFull {
        used_bytes: u64,
        size_bytes: u64,
        max_bytes: u64,
    },
    #[error("the bytes received ({found_bytes} bytes, SHA-256 {found}) do not match the announced blob ({expected_bytes} bytes, SHA-256 {expected})")]
    Mismatch {
        expected: String,
        expected_bytes: u64,
        found: String,
        found_bytes: u64,
    },
    #[error("blob {0} is not on this node")]
    Missing(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What [`BlobStore::remove_every_copy`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemovedCopies {
    /// The complete blob's size, when it was here.
    pub blob_bytes: Option<u64>,
    /// Whether a fetch in progress was thrown away.
    pub partial: bool,
    /// Damaged copies deleted from quarantine.
    pub quarantined: u64,
}

impl RemovedCopies {
    pub fn is_empty(&self) -> bool {
        self.blob_bytes.is_none() && !self.partial && self.quarantined == 0
    }
}

/// The store on disk.
pub struct BlobStore {
    root: PathBuf,
    config: BlobConfig,
    used_bytes: AtomicU64,
    /// Bytes promised to uploads in progress: an upload reserves its
    /// announced size before its first byte is written, so that parallel
    /// uploads cannot together pass `total_bytes_max`.
    reserved_bytes: AtomicU64,
}

impl BlobStore {
    /// Opens (creating if needed) the store under `root`, clearing
    /// unfinished uploads and counting the bytes in use.
    pub fn open(root: &Path, config: BlobConfig) -> Result<BlobStore, BlobError> {
        for directory in [
            root.to_path_buf(),
            root.join("tmp"),
            root.join("partial"),
            root.join(QUARANTINE_DIR),
        ] {
            std::fs::create_dir_all(&directory).map_err(io_error(&directory))?;
        }
        let tmp = root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(io_error(&tmp))?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let mut used = 0u64;
        for directory in std::fs::read_dir(root).map_err(io_error(root))?.flatten() {
            let name = directory.file_name();
            if name.len() != 2 {
                continue;
            }
            if let Ok(files) = std::fs::read_dir(directory.path()) {
                for file in files.flatten() {
                    used += file.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
        Ok(BlobStore {
            root: root.to_path_buf(),
            config,
            used_bytes: AtomicU64::new(used),
            reserved_bytes: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &BlobConfig {
        &self.config
    }

    /// Where the complete blob `sha256` lives.
    pub fn path(&self, sha256: &[u8; 32]) -> PathBuf {
        let name = hex::encode(sha256);
        self.root.join(&name[..2]).join(name)
    }

    fn partial_path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.root.join("partial").join(hex::encode(sha256))
    }

    /// Size of the blob if this node holds it.
    pub fn size_of(&self, sha256: &[u8; 32]) -> Option<u64> {
        std::fs::metadata(self.path(sha256)).ok().map(|m| m.len())
    }

    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// Bytes held, plus those reserved by uploads in progress.
    fn committed_bytes(&self) -> u64 {
        self.used_bytes()
            .saturating_add(self.reserved_bytes.load(Ordering::SeqCst))
    }

    /// Checks a blob of `size_bytes` may be stored (counting the room
    /// uploads in progress have reserved).
    pub fn check_room(&self, size_bytes: u64) -> Result<(), BlobError> {
        if size_bytes > self.config.blob_bytes_max {
            return Err(BlobError::TooLarge {
                size_bytes,
                max_bytes: self.config.blob_bytes_max,
            });
        }
        let committed = self.committed_bytes();
        if committed.saturating_add(size_bytes) > self.config.total_bytes_max {
            return Err(BlobError::StoreFull {
                used_bytes: committed,
                size_bytes,
                max_bytes: self.config.total_bytes_max,
            });
        }
        Ok(())
    }

    /// Reserves room for a blob of `size_bytes` in one atomic step: of any
    /// number of parallel reservations, only those that fit together under
    /// `total_bytes_max` succeed. Bytes are only ever added to
    /// `used_bytes` by a publish that held a reservation for them (or by a
    /// fetch, which runs one at a time), so held plus reserved never
    /// passes the limit.
    fn reserve(&self, size_bytes: u64) -> Result<(), BlobError> {
        if size_bytes > self.config.blob_bytes_max {
            return Err(BlobError::TooLarge {
                size_bytes,
                max_bytes: self.config.blob_bytes_max,
            });
        }
        let max = self.config.total_bytes_max;
        self.reserved_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |reserved| {
                let after = reserved.checked_add(size_bytes)?;
                (self.used_bytes().saturating_add(after) <= max).then_some(after)
            })
            .map(|_| ())
            .map_err(|reserved| BlobError::StoreFull {
                used_bytes: self.used_bytes().saturating_add(reserved),
                size_bytes,
                max_bytes: max,
            })
    }

    /// Gives back a reservation.
    fn release(&self, size_bytes: u64) {
        let _ = self
            .reserved_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |reserved| {
                Some(reserved.saturating_sub(size_bytes))
            });
    }

    /// Starts writing a blob that must hash to `sha256` and be `size_bytes`
    /// long.
    pub fn begin(&self, sha256: [u8; 32], size_bytes: u64) -> Result<BlobWriter<'_>, BlobError> {
        self.reserve(size_bytes)?;
        // From here on the writer gives the reservation back when it ends,
        // whether it is published or dropped.
        let reservation = Reservation {
            store: self,
            size_bytes,
        };
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|error| BlobError::Io {
            path: self.root.clone(),
            source: std::io::Error::other(error.to_string()),
        })?;
        let temporary =
            self.root
                .join("tmp")
                .join(format!("{}.{}", hex::encode(sha256), hex::encode(suffix)));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(io_error(&temporary))?;
        Ok(BlobWriter {
            store: self,
            _reservation: reservation,
            temporary,
            file: Some(file),
            hasher: Sha256::new(),
            written: 0,
            sha256,
            size_bytes,
        })
    }

    /// Reads `length` bytes at `offset` (fewer at the end of the blob).
    pub fn read_range(
        &self,
        sha256: &[u8; 32],
        offset: u64,
        length: u32,
    ) -> Result<(u64, Vec<u8>), BlobError> {
        let path = self.path(sha256);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(hex::encode(sha256)))
            }
            Err(error) => return Err(io_error(&path)(error)),
        };
        let total = file.metadata().map_err(io_error(&path))?.len();
        let start = offset.min(total);
        let wanted = (total - start).min(u64::from(length)) as usize;
        file.seek(SeekFrom::Start(start)).map_err(io_error(&path))?;
        let mut bytes = vec![0u8; wanted];
        file.read_exact(&mut bytes).map_err(io_error(&path))?;
        Ok((total, bytes))
    }

    /// Re-hashes the stored blob; `Ok(None)` when it is intact, `Ok(Some(found))`
    /// with the hash and size found when its bytes changed on disk.
    pub fn verify(&self, sha256: &[u8; 32]) -> Result<Option<([u8; 32], u64)>, BlobError> {
        let path = self.path(sha256);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(hex::encode(sha256)))
            }
            Err(error) => return Err(io_error(&path)(error)),
        };
        let (found, size) = hash_reader(file).map_err(io_error(&path))?;
        Ok((found != *sha256).then_some((found, size)))
    }

    /// Re-hashes the held blob `sha256` and, when its bytes no longer match,
    /// moves it to quarantine. Blocking: it reads the whole file.
    pub fn check_held(&self, sha256: &[u8; 32]) -> Result<Held, BlobError> {
        match self.verify(sha256) {
            Ok(None) => Ok(Held::Intact {
                size_bytes: self.size_of(sha256).unwrap_or(0),
            }),
            Ok(Some((found, found_bytes))) => {
                let quarantined = self.quarantine(sha256)?;
                Ok(Held::Quarantined(Quarantined {
                    expected: *sha256,
                    found,
                    found_bytes,
                    path: quarantined,
                }))
            }
            Err(BlobError::Missing(_)) => Ok(Held::Missing),
            Err(error) => Err(error),
        }
    }

    /// The complete blobs whose files were last written before `cutoff`,
    /// with their sizes: the candidates of an orphan collection.
    pub fn blobs_written_before(&self, cutoff: std::time::SystemTime) -> Vec<([u8; 32], u64)> {
        let mut found = Vec::new();
        let Ok(directories) = std::fs::read_dir(&self.root) else {
            return found;
        };
        for directory in directories.flatten() {
            if directory.file_name().len() != 2 {
                continue;
            }
            let Ok(files) = std::fs::read_dir(directory.path()) else {
                continue;
            };
            for file in files.flatten() {
                let Ok(metadata) = file.metadata() else {
                    continue;
                };
                let old = metadata.modified().is_ok_and(|written| written < cutoff);
                let name = file.file_name();
                let sha256 = name
                    .to_str()
                    .and_then(|text| custody_ledger::types::parse_hex::<32>(text).ok());
                if let (true, Some(sha256)) = (old, sha256) {
                    found.push((sha256, metadata.len()));
                }
            }
        }
        found
    }

    /// Deletes the blob `sha256` (an orphan: no committed transaction names
    /// it) and gives its bytes back to the store's room.
    pub fn remove_orphan(&self, sha256: &[u8; 32]) -> Result<u64, BlobError> {
        let path = self.path(sha256);
        let size = std::fs::metadata(&path).map_err(io_error(&path))?.len();
        std::fs::remove_file(&path).map_err(io_error(&path))?;
        self.used_bytes.fetch_sub(
            size.min(self.used_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(size)
    }

    /// Deletes every copy of the blob `sha256` this store has: the
    /// complete blob, a fetch in progress, and damaged copies kept in
    /// quarantine (the ciphertext of a disposed document is not kept, not
    /// even as evidence). Gives the complete blob's bytes back to the
    /// store's room.
    pub fn remove_every_copy(&self, sha256: &[u8; 32]) -> Result<RemovedCopies, BlobError> {
        let mut removed = RemovedCopies::default();
        let path = self.path(sha256);
        match std::fs::metadata(&path) {
            Ok(metadata) => {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
                self.used_bytes.fetch_sub(
                    metadata.len().min(self.used_bytes.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                removed.blob_bytes = Some(metadata.len());
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&path)(error)),
        }
        let partial = self.partial_path(sha256);
        match std::fs::remove_file(&partial) {
            Ok(()) => removed.partial = true,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&partial)(error)),
        }
        let quarantine = self.root.join(QUARANTINE_DIR);
        let prefix = format!("{}.", hex::encode(sha256));
        if let Ok(entries) = std::fs::read_dir(&quarantine) {
            for entry in entries.flatten() {
                let is_copy = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with(&prefix));
                if is_copy {
                    let copy = entry.path();
                    std::fs::remove_file(&copy).map_err(io_error(&copy))?;
                    removed.quarantined += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Moves the blob `sha256` to `quarantine/<hex>.<unix ms>` (never
    /// deletes it) and returns where it went. Its bytes stop counting
    /// against `total_bytes_max`, so that a fresh copy can be fetched.
    pub fn quarantine(&self, sha256: &[u8; 32]) -> Result<PathBuf, BlobError> {
        let from = self.path(sha256);
        let size = std::fs::metadata(&from).map_err(io_error(&from))?.len();
        let directory = self.root.join(QUARANTINE_DIR);
        std::fs::create_dir_all(&directory).map_err(io_error(&directory))?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let mut target = directory.join(format!("{}.{now_ms}", hex::encode(sha256)));
        let mut attempt = 0u32;
        while target.exists() {
            attempt += 1;
            target = directory.join(format!("{}.{now_ms}.{attempt}", hex::encode(sha256)));
        }
        std::fs::rename(&from, &target).map_err(io_error(&target))?;
        File::open(&directory)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&directory))?;
        self.used_bytes.fetch_sub(
            size.min(self.used_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(target)
    }

    /// The resumable state of a fetch of `sha256`: its partial file opened
    /// for appending, the hash of what it holds, and its length.
    pub fn resume_partial(&self, sha256: &[u8; 32]) -> Result<PartialBlob, BlobError> {
        let path = self.partial_path(sha256);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; IO_BUFFER_BYTES];
        let mut length = 0u64;
        loop {
            let read = file.read(&mut buffer).map_err(io_error(&path))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            length += read as u64;
        }
        Ok(PartialBlob {
            path,
            file,
            hasher,
            length,
        })
    }

    /// Throws away a fetch in progress (its bytes were wrong).
    pub fn discard_partial(&self, sha256: &[u8; 32]) {
        let _ = std::fs::remove_file(self.partial_path(sha256));
    }

    /// Moves a completed, verified partial file into place.
    fn publish(&self, file: &File, from: &Path, sha256: &[u8; 32]) -> Result<u64, BlobError> {
        file.sync_all().map_err(io_error(from))?;
        let size = file.metadata().map_err(io_error(from))?.len();
        let target = self.path(sha256);
        let directory = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        std::fs::create_dir_all(&directory).map_err(io_error(&directory))?;
        let existed = target.exists();
        std::fs::rename(from, &target).map_err(io_error(&target))?;
        File::open(&directory)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&directory))?;
        if !existed {
            self.used_bytes.fetch_add(size, Ordering::Relaxed);
        }
        Ok(size)
    }
}

/// What [`BlobStore::check_held`] found.
#[derive(Debug)]
pub enum Held {
    /// The blob is here and hashes to its name.
    Intact { size_bytes: u64 },
    /// The blob is not here.
    Missing,
    /// The blob was here but its bytes changed; it was moved to quarantine.
    Quarantined(Quarantined),
}

/// A blob moved to quarantine.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub expected: [u8; 32],
    pub found: [u8; 32],
    pub found_bytes: u64,
    /// Where the damaged file is now.
    pub path: PathBuf,
}

/// Hashes everything `reader` yields with a fixed buffer.
pub fn hash_reader<R: Read>(mut reader: R) -> std::io::Result<([u8; 32], u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; IO_BUFFER_BYTES];
    let mut size = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hasher.finalize().into(), size))
}

/// Room reserved in the store for an upload, given back when dropped
/// (after the blob was published, or when the upload failed).
struct Reservation<'a> {
    store: &'a BlobStore,
    size_bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.store.release(self.size_bytes);
    }
}

/// An upload in progress; dropped without [`BlobWriter::finish`] it leaves
/// nothing behind and gives back the room it reserved.
pub struct BlobWriter<'a> {
    store: &'a BlobStore,
    /// Held for the writer's life; given back when it ends.
    _reservation: Reservation<'a>,
    temporary: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    written: u64,
    sha256: [u8; 32],
    size_bytes: u64,
}

impl BlobWriter<'_> {
    /// Appends bytes, refusing more than the announced size.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        let after = self.written.saturating_add(bytes.len() as u64);
        if after > self.size_bytes {
            return Err(BlobError::Mismatch {
                expected: hex::encode(self.sha256),
                expected_bytes: self.size_bytes,
                found: "(longer than announced)".to_string(),
                found_bytes: after,
            });
        }
        let Some(file) = self.file.as_mut() else {
            return Err(BlobError::Missing(hex::encode(self.sha256)));
        };
        file.write_all(bytes).map_err(io_error(&self.temporary))?;
        self.hasher.update(bytes);
        self.written = after;
        Ok(())
    }

    /// Checks the hash and size, then makes the blob durable under its name.
    pub fn finish(mut self) -> Result<u64, BlobError> {
        let found: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if found != self.sha256 || self.written != self.size_bytes {
            return Err(BlobError::Mismatch {
                expected: hex::encode(self.sha256),
                expected_bytes: self.size_bytes,
                found: hex::encode(found),
                found_bytes: self.written,
            });
        }
        let Some(file) = self.file.take() else {
            return Err(BlobError::Missing(hex::encode(self.sha256)));
        };
        let size = self.store.publish(&file, &self.temporary, &self.sha256)?;
        self.temporary = PathBuf::new();
        Ok(size)
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        if !self.temporary.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// A fetch in progress, resumable after a failure.
pub struct PartialBlob {
    path: PathBuf,
    file: File,
    hasher: Sha256,
    pub length: u64,
}

impl PartialBlob {
    /// Appends a received range.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        self.file
            .seek(SeekFrom::End(0))
            .map_err(io_error(&self.path))?;
        self.file.write_all(bytes).map_err(io_error(&self.path))?;
        self.hasher.update(bytes);
        self.length += bytes.len() as u64;
        Ok(())
    }

    /// Verifies the whole blob and moves it into the store. On a mismatch
    /// the partial file is removed: its bytes cannot be trusted.
    pub fn finish(self, store: &BlobStore, sha256: &[u8; 32]) -> Result<u64, BlobError> {
        let found: [u8; 32] = self.hasher.finalize().into();
        if found != *sha256 {
            let _ = std::fs::remove_file(&self.path);
            return Err(BlobError::Mismatch {
                expected: hex::encode(sha256),
                expected_bytes: self.length,
                found: hex::encode(found),
                found_bytes: self.length,
            });
        }
        store.publish(&self.file, &self.path, sha256)
    }
}

/// Everything blob-related the node shares between its tasks.
pub struct Blobs {
    pub store: BlobStore,
    /// The shred shares of version 2 envelopes, apart from the envelopes.
    pub shares: crate::shares::ShareStore,
    /// Set by the network glue once the swarm runs.
    pub network: OnceLock<NetworkHandle>,
    /// Held while a fetch runs: one fetch at a time per node, so that two
    /// fetches never race on one partial file and fetching never takes more
    /// than one range of memory and one peer request at a time.
    pub fetching: tokio::sync::Mutex<()>,
    /// Read requests seen, by signature hash, with the time they stop being
    /// fresh (milliseconds): a replayed request is refused.
    pub seen_reads: Mutex<HashMap<[u8; 32], u64>>,
}

impl Blobs {
    /// Opens the blob store under `root` and the share store under
    /// `shares_root` (a directory of its own, so that a backup or copy of
    /// the blobs does not carry the shares).
    pub fn open(root: &Path, shares_root: &Path, config: BlobConfig) -> Result<Blobs, BlobError> {
        let shares =
            crate::shares::ShareStore::open(shares_root).map_err(|error| BlobError::Io {
                path: shares_root.to_path_buf(),
                source: std::io::Error::other(error.to_string()),
            })?;
        Ok(Blobs {
            store: BlobStore::open(root, config)?,
            shares,
            network: OnceLock::new(),
            fetching: tokio::sync::Mutex::new(()),
            seen_reads: Mutex::new(HashMap::new()),
        })
    }

    /// Checks `share` against the commitment in the header of the envelope
    /// `sha256` this node holds, and keeps it (blocking: file I/O).
    pub fn keep_share(
        &self,
        sha256: &[u8; 32],
        share: &[u8; custody_format::SHRED_SHARE_BYTES],
    ) -> Result<(), crate::shares::ShareError> {
        let (_, start) = self
            .store
            .read_range(sha256, 0, crate::shares::ENVELOPE_HEADER_BYTES_MAX)
            .map_err(|error| match error {
                BlobError::Missing(blob) => crate::shares::ShareError::BlobMissing(blob),
                other => crate::shares::ShareError::Io {
                    path: self.store.path(sha256),
                    source: std::io::Error::other(other.to_string()),
                },
            })?;
        crate::shares::check_share(sha256, &start, share)?;
        self.shares.put(sha256, share)
    }

    /// The commitment in the header of the held envelope `sha256`: `None`
    /// for a version 1 envelope (blocking: reads 64 bytes).
    pub fn share_commitment(
        &self,
        sha256: &[u8; 32],
    ) -> Result<Option<[u8; custody_format::SHRED_SHARE_BYTES]>, BlobError> {
        let (_, start) =
            self.store
                .read_range(sha256, 0, crate::shares::ENVELOPE_HEADER_BYTES_MAX)?;
        Ok(custody_format::envelope_share_commitment(&start))
    }

    /// The share of the held envelope `sha256` when this node holds one
    /// that matches the envelope's commitment (blocking).
    pub fn checked_share(
        &self,
        sha256: &[u8; 32],
    ) -> Option<[u8; custody_format::SHRED_SHARE_BYTES]> {
        let share = self.shares.get(sha256).ok()??;
        let (_, start) = self
            .store
            .read_range(sha256, 0, crate::shares::ENVELOPE_HEADER_BYTES_MAX)
            .ok()?;
        crate::shares::check_share(sha256, &start, &share).ok()?;
        Some(share)
    }

    /// Remembers a read request until `fresh_until_ms`; false if it was seen
    /// before (a replay) or the memory is full of fresh requests.
    pub fn remember_read(&self, id: [u8; 32], now_ms: u64, fresh_until_ms: u64) -> bool {
        let mut seen = match self.seen_reads.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if seen.contains_key(&id) {
            return false;
        }
        if seen.len() >= READ_REQUESTS_REMEMBERED_MAX {
            seen.retain(|_, until| *until >= now_ms);
            if seen.len() >= READ_REQUESTS_REMEMBERED_MAX {
                return false;
            }
        }
        seen.insert(id, fresh_until_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[test]
    fn upload_with_matching_hash_is_stored_under_its_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), BlobConfig::default()).expect("open");
        let data = b"sealed envelope bytes".repeat(1000);
        let mut writer = store.begin(sha(&data), data.len() as u64).expect("begin");
        for chunk in data.chunks(777) {
            writer.write(chunk).expect("write");
        }
        writer.finish().expect("finish");
        assert_eq!(store.size_of(&sha(&data)), Some(data.len() as u64));
        assert_eq!(store.verify(&sha(&data)).expect("verify"), None);
        let (total, range) = store.read_range(&sha(&data), 10, 5).expect("range");
        assert_eq!(total, data.len() as u64);
        assert_eq!(range, data[10..15]);
    }

    #[test]
    fn upload_with_wrong_hash_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), BlobConfig::default()).expect("open");
        let mut writer = store.begin(sha(b"other"), 5).expect("begin");
        writer.write(b"hello").expect("write");
        assert!(matches!(writer.finish(), Err(BlobError::Mismatch { .. })));
        assert_eq!(store.size_of(&sha(b"other")), None);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn upload_larger_than_the_limit_is_refused_before_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = BlobConfig {
            blob_bytes_max: 10,
            total_bytes_max: 20,
            ..BlobConfig::default()
        };
        let store = BlobStore::open(dir.path(), config).expect("open");
        assert!(matches!(
            store.begin(sha(b"x"), 11),
            Err(BlobError::TooLarge { .. })
        ));
    }

    #[test]
    fn parallel_uploads_never_exceed_the_store_quota() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = BlobConfig {
            blob_bytes_max: 30,
            total_bytes_max: 100,
            ..BlobConfig::default()
        };
        let store = BlobStore::open(dir.path(), config).expect("open");
        const UPLOADS: usize = 12;
        // Every upload has begun (or been refused) before any finishes.
        let all_begun = std::sync::Barrier::new(UPLOADS);
        let stored: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..UPLOADS)
                .map(|i| {
                    let store = &store;
                    let all_begun = &all_begun;
                    scope.spawn(move || {
                        let data = vec![i as u8; 30];
                        let writer = store.begin(sha(&data), 30);
                        all_begun.wait();
                        let Ok(mut writer) = writer else {
                            return false;
                        };
                        writer.write(&data).expect("write");
                        writer.finish().is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("upload thread"))
                .collect()
        });
        let count = stored.iter().filter(|ok| **ok).count();
        assert_eq!(count, 3, "three blobs of 30 bytes fit in 100");
        assert_eq!(store.used_bytes(), 90);
        // The refused and finished uploads gave their room back.
        assert!(store.begin(sha(b"more"), 10).is_ok());
        assert!(matches!(
            store.begin(sha(b"too much"), 11),
            Err(BlobError::StoreFull { .. })
        ));
    }

    #[test]
    fn tampered_blob_fails_verification() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), BlobConfig::default()).expect("open");
        let data = b"abcdef".to_vec();
        let mut writer = store.begin(sha(&data), 6).expect("begin");
        writer.write(&data).expect("write");
        writer.finish().expect("finish");
        std::fs::write(store.path(&sha(&data)), b"abcdeF").expect("tamper");
        assert!(store.verify(&sha(&data)).expect("verify").is_some());
    }

    #[test]
    fn a_blob_that_no_longer_matches_its_hash_is_quarantined_not_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), BlobConfig::default()).expect("open");
        let data = b"abcdef".to_vec();
        let mut writer = store.begin(sha(&data), 6).expect("begin");
        writer.write(&data).expect("write");
        writer.finish().expect("finish");
        std::fs::write(store.path(&sha(&data)), b"abcdeF").expect("tamper");
        let Held::Quarantined(quarantined) = store.check_held(&sha(&data)).expect("check") else {
            panic!("the altered blob was not quarantined");
        };
        assert_eq!(store.size_of(&sha(&data)), None);
        assert_eq!(store.used_bytes(), 0);
        assert!(quarantined
            .path
            .starts_with(dir.path().join(QUARANTINE_DIR)));
        assert_eq!(std::fs::read(&quarantined.path).expect("kept"), b"abcdeF");
        assert!(matches!(
            store.check_held(&sha(&data)).expect("check"),
            Held::Missing
        ));
    }

    #[test]
    fn partial_fetch_resumes_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path(), BlobConfig::default()).expect("open");
        let data = b"0123456789".repeat(10);
        let hash = sha(&data);
        let mut partial = store.resume_partial(&hash).expect("partial");
        partial.append(&data[..33]).expect("append");
        drop(partial);
        let mut partial = store.resume_partial(&hash).expect("resume");
        assert_eq!(partial.length, 33);
        partial.append(&data[33..]).expect("append");
        partial.finish(&store, &hash).expect("finish");
        assert_eq!(store.verify(&hash).expect("verify"), None);
    }

    #[test]
    fn replayed_read_request_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(
            &dir.path().join("blobs"),
            &dir.path().join("shred-shares"),
            BlobConfig::default(),
        )
        .expect("open");
        assert!(blobs.remember_read([1; 32], 0, 100));
        assert!(!blobs.remember_read([1; 32], 50, 150));
    }
}
