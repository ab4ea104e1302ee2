//! Small helpers of the document commands: key files, times, progress bars,
//! temporary files.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::envelope::DepartmentSecretKey;
use crate::keyfile::{KeyFile, Passphrase};
use crate::when::DayBound;
use custody_ledger::subject::{ReceiptCode, SubjectKey};
use custody_ledger::types::{Classification, Retention};
use indicatif::{ProgressBar, ProgressStyle};

use super::{CommonArgs, DocError};

/// The passphrase of `--passphrase-env` or `--passphrase-file`, if any.
pub fn passphrase(common: &CommonArgs) -> Result<Option<Passphrase>, DocError> {
    if let Some(name) = &common.passphrase_env {
        return Passphrase::from_env(name)
            .map(Some)
            .map_err(|error| DocError::Usage(error.to_string()));
    }
    match &common.passphrase_file {
        None => Ok(None),
        Some(path) => Passphrase::from_file(path)
            .map(Some)
            .map_err(|error| DocError::KeyFile {
                path: path.clone(),
                message: error.to_string(),
            }),
    }
}

/// Whether a key file is a JSON key file (`custody keys new`) rather than a
/// node-home key file (64 hex digits).
fn is_json_key_file(path: &Path) -> Result<bool, DocError> {
    let mut first = [0u8; 64];
    let read = File::open(path)
        .and_then(|mut file| file.read(&mut first))
        .map_err(|error| DocError::KeyFile {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
    Ok(first[..read]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{'))
}

/// The member signing key named by `--key`.
pub fn member_key(common: &CommonArgs) -> Result<ed25519_dalek::SigningKey, DocError> {
    let path = common.key.as_ref().ok_or(DocError::MissingKey {
        what: "your member key",
        flag: "--key",
        env: "CUSTODY_MEMBER_KEY",
    })?;
    secret_key(
        path,
        || passphrase(common),
        KeyFile::open_member,
        |secret| ed25519_dalek::SigningKey::from_bytes(&secret),
    )
}

/// The member signing key in the key file at `path` (a JSON key file of
/// `custody keys new`, opened with `passphrase` if it has one, or a
/// node-home key file of 64 hex digits); the passphrase is used only
/// by a JSON key file.
pub fn member_key_at(
    path: &Path,
    passphrase: Option<Passphrase>,
) -> Result<ed25519_dalek::SigningKey, DocError> {
    secret_key(
        path,
        || Ok(passphrase),
        KeyFile::open_member,
        |secret| ed25519_dalek::SigningKey::from_bytes(&secret),
    )
}

/// The department encryption key named by `--department-key`.
pub fn department_key(common: &CommonArgs) -> Result<DepartmentSecretKey, DocError> {
    let path = common.department_key.as_ref().ok_or(DocError::MissingKey {
        what: "your department's encryption key",
        flag: "--department-key",
        env: "CUSTODY_DEPARTMENT_KEY",
    })?;
    secret_key(
        path,
        || passphrase(common),
        KeyFile::open_department,
        DepartmentSecretKey::from_bytes,
    )
}

/// The department encryption key in the key file at `path` (as
/// [`member_key_at`] reads it).
pub fn department_key_at(
    path: &Path,
    passphrase: Option<Passphrase>,
) -> Result<DepartmentSecretKey, DocError> {
    secret_key(
        path,
        || Ok(passphrase),
        KeyFile::open_department,
        DepartmentSecretKey::from_bytes,
    )
}

/// The receipt code of `identity` under the subject key at `path`
/// (`--subject-key`: a key file of `custody keys new --kind subject`, or a
/// bare secret as `custody testnet init` writes it).
pub fn receipt_code(
    common: &CommonArgs,
    identity: &str,
    path: Option<&Path>,
) -> Result<ReceiptCode, DocError> {
    let path = path.ok_or(DocError::MissingKey {
        what: "the federation's subject key",
        flag: "--subject-key",
        env: "CUSTODY_SUBJECT_KEY",
    })?;
    let key = secret_key(
        path,
        || passphrase(common),
        KeyFile::open_subject,
        SubjectKey::from_bytes,
    )?;
    ReceiptCode::derive(&key, identity).map_err(|error| DocError::Usage(error.to_string()))
}

/// The receipt code of `identity` under the subject key file at `path`.
pub fn receipt_code_at(
    identity: &str,
    path: &Path,
    passphrase: Option<Passphrase>,
) -> Result<ReceiptCode, DocError> {
    let key = secret_key(
        path,
        || Ok(passphrase),
        KeyFile::open_subject,
        SubjectKey::from_bytes,
    )?;
    ReceiptCode::derive(&key, identity).map_err(|error| DocError::Usage(error.to_string()))
}

/// Reads the key at `path`: a JSON key file opened with `open` (and the
/// passphrase, if any), or a node-home key file of 64 hex digits.
fn secret_key<T>(
    path: &Path,
    passphrase: impl FnOnce() -> Result<Option<Passphrase>, DocError>,
    open: impl FnOnce(&KeyFile, Option<&Passphrase>) -> Result<T, crate::keyfile::KeyFileError>,
    from_raw: impl FnOnce([u8; 32]) -> T,
) -> Result<T, DocError> {
    let failed = |message: String| DocError::KeyFile {
        path: path.to_owned(),
        message,
    };
    if is_json_key_file(path)? {
        let file = KeyFile::read(path).map_err(|error| failed(error.to_string()))?;
        open(&file, passphrase()?.as_ref()).map_err(|error| failed(error.to_string()))
    } else {
        custody_node::home::read_key_file(path)
            .map(from_raw)
            .map_err(|error| failed(error.to_string()))
    }
}

pub fn parse_classification(text: &str) -> Result<Classification, DocError> {
    match text {
        "public" => Ok(Classification::Public),
        "internal" => Ok(Classification::Internal),
        "confidential" => Ok(Classification::Confidential),
        "secret" => Ok(Classification::Secret),
        other => Err(DocError::Usage(format!(
            "`{other}` is not a classification (public, internal, confidential or secret)"
        ))),
    }
}

pub fn parse_retention(text: &str) -> Result<Retention, DocError> {
    if text == "permanent" {
        return Ok(Retention::Permanent);
    }
    let years = text.trim_end_matches('y');
    years
        .parse::<u16>()
        .ok()
        .filter(|years| *years > 0)
        .map(Retention::Years)
        .ok_or_else(|| {
            DocError::Usage(format!(
                "`{text}` is not a retention (a number of years such as 10, or `permanent`)"
            ))
        })
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The instant `text` names, read in `--time-zone` (`crate::when`):
/// a date alone is the first (`DayBound::Start`) or last (`DayBound::End`)
/// millisecond of that day there.
pub fn parse_time(
    text: &str,
    now_ms: u64,
    common: &CommonArgs,
    bound: DayBound,
) -> Result<u64, DocError> {
    common
        .time_zone
        .parse(text, now_ms, bound)
        .map_err(|error| DocError::Usage(error.to_string()))
}

/// `2026-12-05 17:20:00 +08:00`: a time for people, in `--time-zone`.
pub fn format_time(ms: u64, common: &CommonArgs) -> String {
    common.time_zone.show(ms)
}

/// A progress bar shown only when standard output is a terminal and the
/// output is not JSON; otherwise a hidden one.
pub fn progress(total_bytes: u64, label: &str, json: bool) -> ProgressBar {
    if json || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar
}

/// A reader that advances a progress bar.
pub struct ProgressReader<R> {
    pub inner: R,
    pub bar: ProgressBar,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bar.inc(read as u64);
        Ok(read)
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // A failing OS random source makes the name predictable, not unsafe:
    // files are created with create_new.
    let _ = getrandom::fill(&mut buffer);
    hex::encode(buffer)
}

pub fn random_u64() -> u64 {
    let mut buffer = [0u8; 8];
    let _ = getrandom::fill(&mut buffer);
    u64::from_le_bytes(buffer)
}

pub fn new_document_id(department: &str) -> String {
    format!("{department}-{}", random_hex(8))
}

/// A file created 0600 that is removed when dropped, unless kept with
/// [`TempFile::persist`].
pub struct TempFile {
    pub path: PathBuf,
    keep: bool,
}

impl TempFile {
    /// Creates `.<prefix>-<random>` in `directory`.
    pub fn create(directory: &Path, prefix: &str) -> Result<(TempFile, File), DocError> {
        let path = directory.join(format!(".{prefix}.tmp-{}", random_hex(6)));
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| DocError::Io {
                action: "create",
                path: path.clone(),
                source,
            })?;
        Ok((TempFile { path, keep: false }, file))
    }

    /// fsyncs `file`, renames it to `target`, fsyncs the directory.
    pub fn persist(mut self, file: File, target: &Path) -> Result<(), DocError> {
        let failed = |action: &'static str| {
            let target = target.to_owned();
            move |source| DocError::Io {
                action,
                path: target,
                source,
            }
        };
        file.sync_all().map_err(failed("fsync"))?;
        drop(file);
        std::fs::rename(&self.path, target).map_err(failed("rename into place"))?;
        self.keep = true;
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        File::open(&directory)
            .and_then(|d| d.sync_all())
            .map_err(failed("fsync the directory of"))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
