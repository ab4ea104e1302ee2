//! The node's shred-share store: the random half of each version 2
//! envelope's content key (`docs/envelope.md`, "Crypto-shredding"), kept
//! apart from the envelope so that a copy of the ciphertext (a backup of
//! the blob store, a clerk's download, a cache) never carries it.
//!
//! Layout under `<data>/shred-shares/`: `<64 hex>`, 32 bytes, named by the
//! SHA-256 of the envelope whose share it is; `*.tmp` files are writes in
//! progress (removed on open).
//!
//! Invariants:
//! - a share is stored only after it matched the commitment in the header
//!   of the envelope this node holds under that SHA-256 (the chain records
//!   that SHA-256, so the share is bound to the registered ciphertext);
//! - a share is written to a temporary file, fsynced and renamed, so a
//!   reader never sees half a share;
//! - once a disposal is committed, `blob_disposal` deletes the share beside
//!   the ciphertext, and nothing of a disposed document is served.

use std::io::Write;
use std::path::{Path, PathBuf};

use custody_format::{envelope_share_commitment, shred_share_commitment, SHRED_SHARE_BYTES};

/// Directory of the share store, beside `blobs/` under the data directory.
pub const SHARES_DIR: &str = "shred-shares";
/// Bytes of an envelope's start that hold its share commitment.
pub const ENVELOPE_HEADER_BYTES_MAX: u32 = 64;

/// Why a share could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("shred-share store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a shred share is {SHRED_SHARE_BYTES} bytes (64 hex digits); this one is not")]
    Malformed,
    #[error("blob {0} is not on this node: upload or fetch the envelope before its shred share")]
    BlobMissing(String),
    #[error("blob {0} is a version 1 envelope: it has no shred share")]
    NotShredded(String),
    #[error("the shred share does not match the commitment in the header of blob {blob} (expected {expected}, the share gives {found})")]
    Mismatch {
        blob: String,
        expected: String,
        found: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ShareError + '_ {
    move |source| ShareError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Parses 64 hex digits into a share.
pub fn parse_share(text: &str) -> Result<[u8; SHRED_SHARE_BYTES], ShareError> {
    let mut share = [0u8; SHRED_SHARE_BYTES];
    hex::decode_to_slice(text.trim(), &mut share).map_err(|_| ShareError::Malformed)?;
    Ok(share)
}

/// Checks `share` against the commitment in `envelope_start` (the first
/// bytes of the envelope `sha256`).
pub fn check_share(
    sha256: &[u8; 32],
    envelope_start: &[u8],
    share: &[u8; SHRED_SHARE_BYTES],
) -> Result<(), ShareError> {
    let expected = envelope_share_commitment(envelope_start)
        .ok_or_else(|| ShareError::NotShredded(hex::encode(sha256)))?;
    let found = shred_share_commitment(share);
    if found != expected {
        return Err(ShareError::Mismatch {
            blob: hex::encode(sha256),
            expected: hex::encode(expected),
            found: hex::encode(found),
        });
    }
    Ok(())
}

/// The store on disk.
pub struct ShareStore {
    root: PathBuf,
}

impl ShareStore {
    /// Opens (creating if needed) the store under `root`, removing
    /// unfinished writes.
    pub fn open(root: &Path) -> Result<ShareStore, ShareError> {
        std::fs::create_dir_all(root).map_err(io_error(root))?;
        for entry in std::fs::read_dir(root).map_err(io_error(root))?.flatten() {
            if entry.path().extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(ShareStore {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.root.join(hex::encode(sha256))
    }

    /// The share of envelope `sha256`, when held.
    pub fn get(&self, sha256: &[u8; 32]) -> Result<Option<[u8; SHRED_SHARE_BYTES]>, ShareError> {
        let path = self.path(sha256);
        match std::fs::read(&path) {
            Ok(bytes) => bytes
                .as_slice()
                .try_into()
                .map(Some)
                .map_err(|_| ShareError::Malformed),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(&path)(error)),
        }
    }

    /// Stores `share` for envelope `sha256` (temporary file, fsync, rename,
    /// fsync directory). The caller has checked it ([`check_share`]).
    pub fn put(
        &self,
        sha256: &[u8; 32],
        share: &[u8; SHRED_SHARE_BYTES],
    ) -> Result<(), ShareError> {
        let path = self.path(sha256);
        let temporary = self.root.join(format!("{}.tmp", hex::encode(sha256)));
        {
            let mut file = std::fs::File::create(&temporary).map_err(io_error(&temporary))?;
            file.write_all(share).map_err(io_error(&temporary))?;
            file.sync_all().map_err(io_error(&temporary))?;
        }
        std::fs::rename(&temporary, &path).map_err(io_error(&path))?;
        if let Ok(directory) = std::fs::File::open(&self.root) {
            let _ = directory.sync_all();
        }
        Ok(())
    }

    /// Deletes the share of envelope `sha256`; true when there was one.
    pub fn remove(&self, sha256: &[u8; 32]) -> Result<bool, ShareError> {
        let path = self.path(sha256);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error(&path)(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope_start(share: &[u8; 32]) -> Vec<u8> {
        let mut bytes = b"CUSTENV\0".to_vec();
        bytes.push(2);
        bytes.extend_from_slice(&[0u8; 23]);
        bytes.extend_from_slice(&shred_share_commitment(share));
        bytes
    }

    #[test]
    fn a_share_that_matches_the_commitment_is_accepted() {
        let share = [7u8; 32];
        assert!(check_share(&[1; 32], &envelope_start(&share), &share).is_ok());
    }

    #[test]
    fn a_tampered_share_is_refused_by_the_commitment_check() {
        let share = [7u8; 32];
        let mut tampered = share;
        tampered[3] ^= 1;
        assert!(matches!(
            check_share(&[1; 32], &envelope_start(&share), &tampered),
            Err(ShareError::Mismatch { .. })
        ));
    }

    #[test]
    fn a_version_1_envelope_takes_no_share() {
        let mut start = envelope_start(&[7; 32]);
        start[8] = 1;
        assert!(matches!(
            check_share(&[1; 32], &start, &[7; 32]),
            Err(ShareError::NotShredded(_))
        ));
    }

    #[test]
    fn a_stored_share_is_read_back_and_removed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = ShareStore::open(dir.path()).expect("open");
        assert_eq!(store.get(&[1; 32]).expect("get"), None);
        store.put(&[1; 32], &[9; 32]).expect("put");
        assert_eq!(store.get(&[1; 32]).expect("get"), Some([9; 32]));
        assert!(store.remove(&[1; 32]).expect("remove"));
        assert!(!store.remove(&[1; 32]).expect("remove again"));
        assert_eq!(store.get(&[1; 32]).expect("get"), None);
    }
}
