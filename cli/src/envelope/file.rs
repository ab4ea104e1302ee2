//! Whole-file encryption and decryption for the CLI: output goes to a
//! temporary file (mode 0600) beside the target and is renamed into place
//! only after the last chunk authenticated and the fixity matched, so a
//! failed or tampered decryption never leaves a partial document behind.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::stream::{
    decrypt, encrypt_with, EncryptOptions, EnvelopeError, EnvelopeSummary, Fixity,
};
use super::{random_bytes, DataKey};

/// I/O buffer on each side of a file pass; the chunk buffer is separate.
const FILE_BUFFER_BYTES: usize = 256 * 1024;

/// What a decrypted file must match, when known (from the chain).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpectedFixity {
    /// The document's fixity as registered.
    pub plaintext: Option<Fixity>,
    /// The blob address the envelope was fetched under.
    pub ciphertext: Option<Fixity>,
}

/// A temporary file that becomes `path` on [`PendingFile::commit`] and is
/// removed if dropped before.
struct PendingFile {
    temporary: PathBuf,
    path: PathBuf,
    file: Option<File>,
}

impl PendingFile {
    fn create(path: &Path) -> Result<Self, EnvelopeError> {
        let file_name = path.file_name().ok_or_else(|| EnvelopeError::File {
            action: "write",
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path has no file name",
            ),
        })?;
        let mut suffix = [0u8; 6];
        random_bytes(&mut suffix)?;
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(file_name);
        temporary_name.push(format!(".tmp-{}", hex::encode(suffix)));
        let temporary = directory_of(path).join(temporary_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|source| EnvelopeError::File {
                action: "create a temporary file for",
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            temporary,
            path: path.to_owned(),
            file: Some(file),
        })
    }

    fn file(&self) -> Result<&File, EnvelopeError> {
        self.file.as_ref().ok_or_else(|| EnvelopeError::File {
            action: "write",
            path: self.path.clone(),
            source: std::io::Error::other("the temporary file was already closed"),
        })
    }

    /// fsync, rename over the target, fsync the directory.
    fn commit(mut self) -> Result<(), EnvelopeError> {
        let path = self.path.clone();
        let failed = |action: &'static str| {
            let path = path.clone();
            move |source| EnvelopeError::File {
                action,
                path,
                source,
            }
        };
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(failed("fsync"))?;
        }
        std::fs::rename(&self.temporary, &self.path).map_err(failed("rename into place"))?;
        self.temporary = PathBuf::new();
        File::open(directory_of(&self.path))
            .and_then(|directory| directory.sync_all())
            .map_err(failed("fsync the directory of"))
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.temporary.as_os_str().is_empty() {
            // Best effort: the error being returned matters more.
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn open_input(path: &Path) -> Result<BufReader<File>, EnvelopeError> {
    let file = File::open(path).map_err(|source| EnvelopeError::File {
        action: "open",
        path: path.to_owned(),
        source,
    })?;
    Ok(BufReader::with_capacity(FILE_BUFFER_BYTES, file))
}

fn check_fixity(
    what: &'static str,
    expected: Option<Fixity>,
    found: Fixity,
    path: &Path,
) -> Result<(), EnvelopeError> {
    match expected {
        Some(expected) if expected != found => Err(EnvelopeError::FixityMismatch {
            what,
            path: path.to_owned(),
            expected_sha256_hex: hex::encode(expected.sha256),
            expected_size_bytes: expected.size_bytes,
            found_sha256_hex: hex::encode(found.sha256),
            found_size_bytes: found.size_bytes,
        }),
        _ => Ok(()),
    }
}

/// Encrypts the file at `plaintext_path` into a new envelope at
/// `envelope_path` (replaced if it exists), durably.
pub fn encrypt_file(
    plaintext_path: &Path,
    envelope_path: &Path,
    data_key: &DataKey,
    options: EncryptOptions,
) -> Result<EnvelopeSummary, EnvelopeError> {
    let input = open_input(plaintext_path)?;
    let pending = PendingFile::create(envelope_path)?;
    let summary = {
        let mut output = BufWriter::with_capacity(FILE_BUFFER_BYTES, pending.file()?);
        let summary = encrypt_with(input, &mut output, data_key, options)?;
        output.flush().map_err(EnvelopeError::Write)?;
        summary
    };
    pending.commit()?;
    Ok(summary)
}

/// Decrypts the envelope at `envelope_path` to `plaintext_path` (mode 0600,
/// replaced if it exists). Nothing appears at `plaintext_path` unless every
/// chunk authenticated and the fixity matches `expected`.
pub fn decrypt_file(
    envelope_path: &Path,
    plaintext_path: &Path,
    data_key: &DataKey,
    expected: ExpectedFixity,
) -> Result<EnvelopeSummary, EnvelopeError> {
    let input = open_input(envelope_path)?;
    let pending = PendingFile::create(plaintext_path)?;
    let summary = {
        let mut output = BufWriter::with_capacity(FILE_BUFFER_BYTES, pending.file()?);
        let summary = decrypt(input, &mut output, data_key)?;
        output.flush().map_err(EnvelopeError::Write)?;
        summary
    };
    check_fixity(
        "the envelope",
        expected.ciphertext,
        summary.ciphertext,
        envelope_path,
    )?;
    check_fixity(
        "the decrypted document",
        expected.plaintext,
        summary.plaintext,
        envelope_path,
    )?;
    pending.commit()?;
    Ok(summary)
}
