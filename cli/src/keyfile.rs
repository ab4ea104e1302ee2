//! Key files: a member's ed25519 signing key, a department's X25519
//! encryption key or the federation's subject key, as a small JSON document, optionally sealed with a
//! passphrase (Argon2id + XChaCha20-Poly1305). Layout in `docs/envelope.md`.
//!
//! Invariants:
//! - A key file is written with mode 0600, atomically (temporary file in the
//!   same directory, fsync, rename, fsync of the directory), and an existing
//!   file is never replaced unless asked.
//! - A key file readable or writable by group or others is refused before
//!   its contents are looked at.
//! - The public key recorded in a file is checked against the secret every
//!   time the secret is opened.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use custody_ledger::subject::SubjectKey;

use crate::envelope::{random_bytes, DepartmentSecretKey, RandomError};

/// The `format` field of every key file.
pub const KEY_FILE_FORMAT: &str = "custody-key-file";
/// The key-file format version this code writes and reads.
pub const KEY_FILE_VERSION: u32 = 1;
/// Tag of the associated data that binds a sealed secret to its file.
pub const KEY_FILE_TAG: &str = custody_format::tags::KEY_FILE;
/// A key file is a few hundred bytes; anything larger is not one.
pub const KEY_FILE_BYTES_MAX: u64 = 64 * 1024;
/// Argon2id salt length written.
pub const SALT_BYTES: usize = 16;
/// Largest Argon2id memory cost accepted when reading (1 GiB), so that a
/// hostile file cannot make the CLI allocate without bound.
pub const KDF_MEMORY_KIB_MAX: u32 = 1024 * 1024;
/// Largest Argon2id iteration count accepted when reading.
pub const KDF_ITERATIONS_MAX: u32 = 64;
/// Largest Argon2id parallelism accepted when reading.
pub const KDF_PARALLELISM_MAX: u32 = 16;
/// Argon2 version 1.3, the only one written or read.
const ARGON2_VERSION_NUMBER: u32 = 0x13;
const SECRET_BYTES: usize = 32;
const SEALED_BYTES: usize = SECRET_BYTES + 16;

/// What a key file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// A member's ed25519 signing key (32-byte seed).
    Member,
    /// A department's X25519 encryption key pair (32-byte secret).
    Department,
    /// The federation's subject key (32-byte secret), from which clerks
    /// derive citizens' receipt codes; its file records a fingerprint in
    /// place of a public key.
    Subject,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Member => "member",
            KeyKind::Department => "department",
            KeyKind::Subject => "subject",
        }
    }

    /// The byte that stands for the kind in a sealed secret's associated data.
    fn code(self) -> u8 {
        match self {
            KeyKind::Member => 1,
            KeyKind::Department => 2,
            KeyKind::Subject => 3,
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Why a key file could not be written, read or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path} has mode {mode:04o}, so group or others may read or change it; a key file must be 0600 (run `chmod 600 {path}` if it was not exposed, otherwise make a new key)", path = path.display())]
    PermissiveMode { path: PathBuf, mode: u32 },
    #[error("{path} is not a regular file", path = path.display())]
    NotRegularFile { path: PathBuf },
    #[error("{path} is larger than {KEY_FILE_BYTES_MAX} bytes, so it is not a key file", path = path.display())]
    TooLarge { path: PathBuf },
    #[error("{path} already exists; refusing to replace a key file (pass --force to replace it)", path = path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{source_name} is not a valid key file: {reason}")]
    Malformed { source_name: String, reason: String },
    #[error("{source_name} is a {found} key file, but a {expected} key is needed here")]
    WrongKind {
        source_name: String,
        expected: KeyKind,
        found: KeyKind,
    },
    #[error("key file {source_name} is protected by a passphrase; give it with --passphrase-env VAR or --passphrase-file FILE")]
    PassphraseRequired { source_name: String },
    #[error("the passphrase does not open key file {source_name}: the passphrase is wrong, or the file was altered")]
    WrongPassphrase { source_name: String },
    #[error("key file {source_name} records public key {recorded_hex}, but its secret gives {derived_hex}: the file was altered")]
    PublicKeyMismatch {
        source_name: String,
        recorded_hex: String,
        derived_hex: String,
    },
    #[error("key file {source_name} has unusable Argon2id parameters: {reason}")]
    KdfParameters { source_name: String, reason: String },
    #[error("environment variable {name} holding the passphrase is not set or not valid UTF-8")]
    PassphraseEnvMissing { name: String },
    #[error("the passphrase is empty")]
    PassphraseEmpty,
    #[error("{path} does not hold 64 hex digits (a bare 32-byte secret, as a node home keeps it)", path = path.display())]
    BareSecretMalformed { path: PathBuf },
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A passphrase; wiped when dropped.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// A passphrase from its bytes; refuses an empty one.
    pub fn new(bytes: Vec<u8>) -> Result<Self, KeyFileError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.is_empty() {
            return Err(KeyFileError::PassphraseEmpty);
        }
        Ok(Self(bytes))
    }

    /// Reads the passphrase from the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Self, KeyFileError> {
        let value = std::env::var(name).map_err(|_| KeyFileError::PassphraseEnvMissing {
            name: name.to_owned(),
        })?;
        Self::new(value.into_bytes())
    }

    /// Reads the passphrase from a file, without one trailing newline.
    pub fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|source| KeyFileError::Io {
            action: "read the passphrase file",
            path: path.to_owned(),
            source,
        })?);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Self::new(std::mem::take(&mut *bytes))
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Passphrase(<secret>)")
    }
}

/// Argon2id cost parameters, recorded in every sealed key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl SealParams {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106 section 4's second recommended
    /// option with one lane, about a quarter of a second on this hardware.
    pub const DEFAULT: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    fn argon2(&self, source_name: &str) -> Result<Argon2<'static>, KeyFileError> {
        let out_of_range = |reason: String| KeyFileError::KdfParameters {
            source_name: source_name.to_owned(),
            reason,
        };
        if self.memory_kib > KDF_MEMORY_KIB_MAX {
            return Err(out_of_range(format!(
                "memory {} KiB is above the limit of {KDF_MEMORY_KIB_MAX} KiB",
                self.memory_kib
            )));
        }
        if self.iterations > KDF_ITERATIONS_MAX {
            return Err(out_of_range(format!(
                "{} iterations is above the limit of {KDF_ITERATIONS_MAX}",
                self.iterations
            )));
        }
        if self.parallelism > KDF_PARALLELISM_MAX {
            return Err(out_of_range(format!(
                "parallelism {} is above the limit of {KDF_PARALLELISM_MAX}",
                self.parallelism
            )));
        }
        let params = Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(SECRET_BYTES),
        )
        .map_err(|error| out_of_range(error.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for SealParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An opened secret key.
pub enum SecretKey {
    Member(SigningKey),
    Department(DepartmentSecretKey),
    Subject(Zeroizing<[u8; SECRET_BYTES]>),
}

impl SecretKey {
    /// A fresh random key of the given kind.
    pub fn generate(kind: KeyKind) -> Result<Self, KeyFileError> {
        let mut seed = Zeroizing::new([0u8; SECRET_BYTES]);
        random_bytes(seed.as_mut())?;
        Ok(Self::from_secret_bytes(kind, &seed))
    }

    fn from_secret_bytes(kind: KeyKind, bytes: &[u8; SECRET_BYTES]) -> Self {
        match kind {
            KeyKind::Member => SecretKey::Member(SigningKey::from_bytes(bytes)),
            KeyKind::Department => SecretKey::Department(DepartmentSecretKey::from_bytes(*bytes)),
            KeyKind::Subject => SecretKey::Subject(Zeroizing::new(*bytes)),
        }
    }

    pub fn kind(&self) -> KeyKind {
        match self {
            SecretKey::Member(_) => KeyKind::Member,
            SecretKey::Department(_) => KeyKind::Department,
            SecretKey::Subject(_) => KeyKind::Subject,
        }
    }

    /// The ed25519 verifying key (member), X25519 public key (department)
    /// or fingerprint (subject).
    pub fn public_key(&self) -> [u8; 32] {
        match self {
            SecretKey::Member(signing_key) => signing_key.verifying_key().to_bytes(),
            SecretKey::Department(secret) => secret.public_key().0,
            SecretKey::Subject(secret) => subject_key(secret).fingerprint().0,
        }
    }

    fn secret_bytes(&self) -> Zeroizing<[u8; SECRET_BYTES]> {
        match self {
            SecretKey::Member(signing_key) => Zeroizing::new(signing_key.to_bytes()),
            SecretKey::Department(secret) => secret.to_bytes(),
            SecretKey::Subject(secret) => secret.clone(),
        }
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "SecretKey({}, public {})",
            self.kind(),
            hex::encode(self.public_key())
        )
    }
}

// The JSON document on disk. Kept private: the public API is `KeyFile`.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileDocument {
    format: String,
    version: u32,
    kind: KeyKind,
    public_key: String,
    secret: SecretDocument,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "protection", rename_all = "kebab-case", deny_unknown_fields)]
enum SecretDocument {
    None {
        key: String,
    },
    Passphrase {
        kdf: KdfDocument,
        cipher: String,
        nonce: String,
        ciphertext: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfDocument {
    algorithm: String,
    version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

const KDF_ALGORITHM: &str = "argon2id";
const CIPHER_NAME: &str = "xchacha20poly1305";

/// How the secret is stored in a parsed key file.
enum StoredSecret {
    Plain(Zeroizing<[u8; SECRET_BYTES]>),
    Sealed {
        params: SealParams,
        salt: Vec<u8>,
        nonce: [u8; 24],
        ciphertext: [u8; SEALED_BYTES],
    },
}

/// A parsed key file; the secret is opened with [`KeyFile::open`].
pub struct KeyFile {
    source_name: String,
    kind: KeyKind,
    public_key: [u8; 32],
    secret: StoredSecret,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeyFile")
            .field("source_name", &self.source_name)
            .field("kind", &self.kind)
            .field("public_key", &hex::encode(self.public_key))
            .field("passphrase_protected", &self.is_passphrase_protected())
            .finish()
    }
}

/// associated data = tagged(KEY_FILE_TAG, kind code || public key), with
/// tagged(tag, body) = u8(len(tag)) || tag || body as everywhere in Custody.
fn sealing_associated_data(kind: KeyKind, public_key: &[u8; 32]) -> Vec<u8> {
    let mut data = Vec::with_capacity(1 + KEY_FILE_TAG.len() + 1 + 32);
    // The tag is a short constant, so its length fits in one byte.
    data.push(KEY_FILE_TAG.len() as u8);
    data.extend_from_slice(KEY_FILE_TAG.as_bytes());
    data.push(kind.code());
    data.extend_from_slice(public_key);
    data
}

fn derive_sealing_key(
    params: &SealParams,
    passphrase: &Passphrase,
    salt: &[u8],
    source_name: &str,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let argon2 = params.argon2(source_name)?;
    let mut key = Zeroizing::new([0u8; 32]);
    argon2
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|error| KeyFileError::KdfParameters {
            source_name: source_name.to_owned(),
            reason: error.to_string(),
        })?;
    Ok(key)
}

fn decode_hex_array<const N: usize>(
    text: &str,
    field: &str,
    source_name: &str,
) -> Result<[u8; N], KeyFileError> {
    let malformed = |reason: String| KeyFileError::Malformed {
        source_name: source_name.to_owned(),
        reason,
    };
    let bytes = hex::decode(text)
        .map_err(|error| malformed(format!("field `{field}` is not hex: {error}")))?;
    let length = bytes.len();
    bytes
        .try_into()
        .map_err(|_| malformed(format!("field `{field}` must be {N} bytes, found {length}")))
}

impl KeyFile {
    /// Builds the key file for `secret`, sealed with `passphrase` when given.
    pub fn seal(
        secret: &SecretKey,
        passphrase: Option<(&Passphrase, SealParams)>,
    ) -> Result<Self, KeyFileError> {
        let mut salt = vec![0u8; SALT_BYTES];
        let mut nonce = [0u8; 24];
        random_bytes(&mut salt)?;
        random_bytes(&mut nonce)?;
        Self::seal_with(secret, passphrase, salt, nonce)
    }

    /// [`KeyFile::seal`] with a caller-chosen salt and nonce, for test
    /// vectors only.
    #[doc(hidden)]
    pub fn seal_with(
        secret: &SecretKey,
        passphrase: Option<(&Passphrase, SealParams)>,
        salt: Vec<u8>,
        nonce: [u8; 24],
    ) -> Result<Self, KeyFileError> {
        let source_name = "new key".to_owned();
        let kind = secret.kind();
        let public_key = secret.public_key();
        let stored = match passphrase {
            None => StoredSecret::Plain(secret.secret_bytes()),
            Some((passphrase, params)) => {
                let key = derive_sealing_key(&params, passphrase, &salt, &source_name)?;
                let cipher = XChaCha20Poly1305::new(&Key::from(*key));
                let mut ciphertext = [0u8; SEALED_BYTES];
                ciphertext[..SECRET_BYTES].copy_from_slice(secret.secret_bytes().as_ref());
                let (body, tag_slot) = ciphertext.split_at_mut(SECRET_BYTES);
                let tag = cipher
                    .encrypt_inout_detached(
                        &XNonce::from(nonce),
                        &sealing_associated_data(kind, &public_key),
                        body.into(),
                    )
                    .map_err(|_| KeyFileError::WrongPassphrase {
                        source_name: source_name.clone(),
                    })?;
                tag_slot.copy_from_slice(&tag);
                StoredSecret::Sealed {
                    params,
                    salt,
                    nonce,
                    ciphertext,
                }
            }
        };
        Ok(Self {
            source_name,
            kind,
            public_key,
            secret: stored,
        })
    }

    /// The JSON text of the file (pretty-printed, with a final newline).
    pub fn to_json(&self) -> Result<String, KeyFileError> {
        let secret = match &self.secret {
            StoredSecret::Plain(bytes) => SecretDocument::None {
                key: hex::encode(bytes.as_ref()),
            },
            StoredSecret::Sealed {
                params,
                salt,
                nonce,
                ciphertext,
            } => SecretDocument::Passphrase {
                kdf: KdfDocument {
                    algorithm: KDF_ALGORITHM.to_owned(),
                    version: ARGON2_VERSION_NUMBER,
                    memory_kib: params.memory_kib,
                    iterations: params.iterations,
                    parallelism: params.parallelism,
                    salt: hex::encode(salt),
                },
                cipher: CIPHER_NAME.to_owned(),
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(ciphertext),
            },
        };
        let document = KeyFileDocument {
            format: KEY_FILE_FORMAT.to_owned(),
            version: KEY_FILE_VERSION,
            kind: self.kind,
            public_key: hex::encode(self.public_key),
            secret,
        };
        let encoded =
            serde_json::to_string_pretty(&document).map_err(|error| KeyFileError::Malformed {
                source_name: self.source_name.clone(),
                reason: format!("could not encode as JSON: {error}"),
            });
        // Plain secrets pass through this String: wipe the document's copy.
        if let SecretDocument::None { mut key } = document.secret {
            zeroize::Zeroize::zeroize(&mut key);
        }
        let mut text = encoded?;
        text.push('\n');
        Ok(text)
    }

    /// Parses key-file JSON; `source_name` names it in error messages.
    pub fn parse(json: &str, source_name: &str) -> Result<Self, KeyFileError> {
        let malformed = |reason: String| KeyFileError::Malformed {
            source_name: source_name.to_owned(),
            reason,
        };
        let document: KeyFileDocument =
            serde_json::from_str(json).map_err(|error| malformed(error.to_string()))?;
        if document.format != KEY_FILE_FORMAT {
            return Err(malformed(format!(
                "field `format` is {:?}, expected {KEY_FILE_FORMAT:?}",
                document.format
            )));
        }
        if document.version != KEY_FILE_VERSION {
            return Err(malformed(format!(
                "key-file version {} is not supported (this build reads version {KEY_FILE_VERSION})",
                document.version
            )));
        }
        let public_key = decode_hex_array::<32>(&document.public_key, "public_key", source_name)?;
        let secret = match document.secret {
            SecretDocument::None { key } => {
                let key = Zeroizing::new(key);
                let bytes = Zeroizing::new(decode_hex_array::<SECRET_BYTES>(
                    &key,
                    "secret.key",
                    source_name,
                )?);
                StoredSecret::Plain(bytes)
            }
            SecretDocument::Passphrase {
                kdf,
                cipher,
                nonce,
                ciphertext,
            } => {
                if kdf.algorithm != KDF_ALGORITHM || kdf.version != ARGON2_VERSION_NUMBER {
                    return Err(malformed(format!(
                        "key derivation {} version {} is not supported (expected {KDF_ALGORITHM} version {ARGON2_VERSION_NUMBER})",
                        kdf.algorithm, kdf.version
                    )));
                }
                if cipher != CIPHER_NAME {
                    return Err(malformed(format!(
                        "cipher {cipher:?} is not supported (expected {CIPHER_NAME:?})"
                    )));
                }
                let salt = hex::decode(&kdf.salt).map_err(|error| {
                    malformed(format!("field `secret.kdf.salt` is not hex: {error}"))
                })?;
                StoredSecret::Sealed {
                    params: SealParams {
                        memory_kib: kdf.memory_kib,
                        iterations: kdf.iterations,
                        parallelism: kdf.parallelism,
                    },
                    salt,
                    nonce: decode_hex_array::<24>(&nonce, "secret.nonce", source_name)?,
                    ciphertext: decode_hex_array::<SEALED_BYTES>(
                        &ciphertext,
                        "secret.ciphertext",
                        source_name,
                    )?,
                }
            }
        };
        let key_file = Self {
            source_name: source_name.to_owned(),
            kind: document.kind,
            public_key,
            secret,
        };
        // A plain secret is checked against its public key at once, so that
        // `keys show` never prints a public key the secret does not match.
        if let StoredSecret::Plain(bytes) = &key_file.secret {
            key_file.check_public_key(&SecretKey::from_secret_bytes(key_file.kind, bytes))?;
        }
        Ok(key_file)
    }

    /// Reads and parses a key file, refusing one that group or others may
    /// read or write.
    pub fn read(path: &Path) -> Result<Self, KeyFileError> {
        let io_error = |action: &'static str| {
            move |source| KeyFileError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        let file = File::open(path).map_err(io_error("open key file"))?;
        // The checks use the open file's metadata, not the path's, so the
        // file checked is the file read.
        let metadata = file.metadata().map_err(io_error("inspect key file"))?;
        if !metadata.is_file() {
            return Err(KeyFileError::NotRegularFile {
                path: path.to_owned(),
            });
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::PermissiveMode {
                path: path.to_owned(),
                mode,
            });
        }
        if metadata.len() > KEY_FILE_BYTES_MAX {
            return Err(KeyFileError::TooLarge {
                path: path.to_owned(),
            });
        }
        let mut text = Zeroizing::new(String::new());
        file.take(KEY_FILE_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .map_err(io_error("read key file"))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Writes the key file to `path` with mode 0600, atomically. Refuses to
    /// replace an existing file unless `replace` is true.
    pub fn write(&self, path: &Path, replace: bool) -> Result<(), KeyFileError> {
        let text = Zeroizing::new(self.to_json()?);
        write_private_file_atomically(path, text.as_bytes(), replace)
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The public key as recorded in the file.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    pub fn is_passphrase_protected(&self) -> bool {
        matches!(self.secret, StoredSecret::Sealed { .. })
    }

    /// Argon2id parameters of a passphrase-protected file.
    pub fn seal_params(&self) -> Option<SealParams> {
        match &self.secret {
            StoredSecret::Plain(_) => None,
            StoredSecret::Sealed { params, .. } => Some(*params),
        }
    }

    /// Opens the secret. `passphrase` is needed for a protected file and
    /// ignored for a plain one.
    pub fn open(&self, passphrase: Option<&Passphrase>) -> Result<SecretKey, KeyFileError> {
        let secret = match &self.secret {
            StoredSecret::Plain(bytes) => SecretKey::from_secret_bytes(self.kind, bytes),
            StoredSecret::Sealed {
                params,
                salt,
                nonce,
                ciphertext,
            } => {
                let passphrase = passphrase.ok_or_else(|| KeyFileError::PassphraseRequired {
                    source_name: self.source_name.clone(),
                })?;
                let key = derive_sealing_key(params, passphrase, salt, &self.source_name)?;
                let cipher = XChaCha20Poly1305::new(&Key::from(*key));
                let wrong_passphrase = || KeyFileError::WrongPassphrase {
                    source_name: self.source_name.clone(),
                };
                let mut plaintext = Zeroizing::new([0u8; SECRET_BYTES]);
                plaintext.copy_from_slice(&ciphertext[..SECRET_BYTES]);
                let tag =
                    Tag::try_from(&ciphertext[SECRET_BYTES..]).map_err(|_| wrong_passphrase())?;
                cipher
                    .decrypt_inout_detached(
                        &XNonce::from(*nonce),
                        &sealing_associated_data(self.kind, &self.public_key),
                        plaintext.as_mut_slice().into(),
                        &tag,
                    )
                    .map_err(|_| wrong_passphrase())?;
                SecretKey::from_secret_bytes(self.kind, &plaintext)
            }
        };
        self.check_public_key(&secret)?;
        Ok(secret)
    }

    /// Opens a member signing key; refuses a department key file.
    pub fn open_member(&self, passphrase: Option<&Passphrase>) -> Result<SigningKey, KeyFileError> {
        match self.open_kind(KeyKind::Member, passphrase)? {
            SecretKey::Member(signing_key) => Ok(signing_key),
            _ => Err(self.wrong_kind(KeyKind::Member)),
        }
    }

    /// Opens a department encryption key; refuses a member key file.
    pub fn open_department(
        &self,
        passphrase: Option<&Passphrase>,
    ) -> Result<DepartmentSecretKey, KeyFileError> {
        match self.open_kind(KeyKind::Department, passphrase)? {
            SecretKey::Department(secret) => Ok(secret),
            _ => Err(self.wrong_kind(KeyKind::Department)),
        }
    }

    /// Opens the federation's subject key; refuses any other key file.
    pub fn open_subject(
        &self,
        passphrase: Option<&Passphrase>,
    ) -> Result<SubjectKey, KeyFileError> {
        match self.open_kind(KeyKind::Subject, passphrase)? {
            SecretKey::Subject(secret) => Ok(subject_key(&secret)),
            _ => Err(self.wrong_kind(KeyKind::Subject)),
        }
    }

    fn open_kind(
        &self,
        expected: KeyKind,
        passphrase: Option<&Passphrase>,
    ) -> Result<SecretKey, KeyFileError> {
        if self.kind != expected {
            return Err(self.wrong_kind(expected));
        }
        self.open(passphrase)
    }

    fn wrong_kind(&self, expected: KeyKind) -> KeyFileError {
        KeyFileError::WrongKind {
            source_name: self.source_name.clone(),
            expected,
            found: self.kind,
        }
    }

    fn check_public_key(&self, secret: &SecretKey) -> Result<(), KeyFileError> {
        let derived = secret.public_key();
        if derived != self.public_key {
            return Err(KeyFileError::PublicKeyMismatch {
                source_name: self.source_name.clone(),
                recorded_hex: hex::encode(self.public_key),
                derived_hex: hex::encode(derived),
            });
        }
        Ok(())
    }
}

/// Reads the member signing key at `path`.
pub fn read_member_key(
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<SigningKey, KeyFileError> {
    KeyFile::read(path)?.open_member(passphrase)
}

/// The subject key of a secret's bytes.
fn subject_key(secret: &[u8; SECRET_BYTES]) -> SubjectKey {
    SubjectKey::from_bytes(*secret)
}

/// Reads the department encryption key at `path`.
pub fn read_department_key(
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<DepartmentSecretKey, KeyFileError> {
    KeyFile::read(path)?.open_department(passphrase)
}

/// Writes `contents` to `path` with mode 0600: temporary file in the same
/// directory (created 0600, so the secret is never readable by others even
/// for a moment), fsync, rename over `path`, fsync of the directory.
pub fn write_private_file_atomically(
    path: &Path,
    contents: &[u8],
    replace: bool,
) -> Result<(), KeyFileError> {
    let io_error = |action: &'static str, error_path: &Path| {
        let error_path = error_path.to_owned();
        move |source| KeyFileError::Io {
            action,
            path: error_path,
            source,
        }
    };
    let file_name = path.file_name().ok_or_else(|| KeyFileError::Io {
        action: "write key file",
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ),
    })?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    // Checked before and not atomically with the rename: this guards a
    // clerk against overwriting a key by mistake, not against a race.
    if !replace && path.symlink_metadata().is_ok() {
        return Err(KeyFileError::AlreadyExists {
            path: path.to_owned(),
        });
    }
    let mut suffix = [0u8; 6];
    random_bytes(&mut suffix)?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let temporary = directory.join(temporary_name);

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io_error("create temporary key file", &temporary))?;
        // The umask can only clear bits, but say 0600 explicitly anyway.
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(io_error("set permissions on", &temporary))?;
        file.write_all(contents)
            .map_err(io_error("write temporary key file", &temporary))?;
        file.sync_all()
            .map_err(io_error("fsync temporary key file", &temporary))?;
        drop(file);
        std::fs::rename(&temporary, path).map_err(io_error("rename into place", path))?;
        File::open(&directory)
            .and_then(|directory_file| directory_file.sync_all())
            .map_err(io_error("fsync directory", &directory))
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist, and the original
        // error is the one worth reporting.
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

// ---------------------------------------------------------------------------
// `custody keys …`

/// `custody keys`: make and inspect key files.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make a new key and write it to a key file with mode 0600.
    #[command(
        after_help = "Example:\n  custody keys new --kind member --out clerk.key --passphrase-env CUSTODY_PASSPHRASE\n  custody keys new --kind department --out department.key --passphrase-file passphrase.txt --json"
    )]
    New(KeysNewArgs),
    /// Print the public key recorded in a key file.
    #[command(
        after_help = "Example:\n  custody keys show clerk.key\n  custody keys show department.key --json"
    )]
    Show(KeysShowArgs),
    /// Seal a bare secret (64 hex digits, as a node home or a trial network
    /// keeps it) into a passphrase-protected key file.
    ///
    /// This is how a department moves its encryption key off the node host:
    /// seal it for the clerks, check the public key, then delete the bare
    /// file (docs/operations.md, "Move the department's key off the node
    /// host").
    ///
    /// Example: CUSTODY_PASSPHRASE=… custody keys seal --kind department --from /srv/custody/keys/encryption.key --out department.key --passphrase-env CUSTODY_PASSPHRASE
    Seal(KeysSealArgs),
}

#[derive(Debug, clap::Args)]
pub struct KeysSealArgs {
    /// `member`: an ed25519 signing key; `department`: an X25519 encryption key.
    #[arg(long, value_enum)]
    pub kind: KeyKind,
    /// The bare secret: a file of 64 hex digits.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Where to write the sealed key file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The passphrase, from this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "passphrase_file",
        required_unless_present = "passphrase_file"
    )]
    pub passphrase_env: Option<String>,
    /// The passphrase, from this file (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Replace FILE if it already exists.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct KeysNewArgs {
    /// `member`: an ed25519 signing key; `department`: an X25519 encryption
    /// key pair; `subject`: the federation's subject key, which clerks hold
    /// to give citizens receipt codes (make it once, share it with every
    /// department's clerks, never with a node host).
    #[arg(long, value_enum)]
    pub kind: KeyKind,
    /// Where to write the key file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Seal the key with the passphrase in this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file")]
    pub passphrase_env: Option<String>,
    /// Seal the key with the passphrase in this file (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Replace FILE if it already exists.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct KeysShowArgs {
    /// The key file to read.
    pub file: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Why `custody keys …` failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysCommandError {
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("could not write to standard output: {0}")]
    Output(#[source] std::io::Error),
    #[error("could not print the result as JSON (is the path valid UTF-8?): {0}")]
    Json(#[source] serde_json::Error),
}

/// What `keys new` and `keys show` print with `--json`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyFileSummary {
    pub file: PathBuf,
    pub kind: KeyKind,
    pub public_key: String,
    pub passphrase_protected: bool,
}

/// A bare 32-byte secret from a file of 64 hex digits.
fn read_bare_secret(path: &Path) -> Result<Zeroizing<[u8; SECRET_BYTES]>, KeyFileError> {
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            })?,
        );
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    hex::decode_to_slice(text.trim(), secret.as_mut()).map_err(|_| {
        KeyFileError::BareSecretMalformed {
            path: path.to_path_buf(),
        }
    })?;
    Ok(secret)
}

/// Runs `custody keys …`, printing to standard output.
pub fn run_keys(args: KeysArgs) -> Result<(), KeysCommandError> {
    let stdout = std::io::stdout();
    let mut output = stdout.lock();
    run_keys_to(args, &mut output)
}

/// [`run_keys`] printing to `output`.
pub fn run_keys_to<W: Write>(args: KeysArgs, output: &mut W) -> Result<(), KeysCommandError> {
    let (summary, json, verb) = match args.command {
        KeysCommand::New(new) => {
            let passphrase = match (&new.passphrase_env, &new.passphrase_file) {
                (Some(name), _) => Some(Passphrase::from_env(name)?),
                (None, Some(path)) => Some(Passphrase::from_file(path)?),
                (None, None) => None,
            };
            let secret = SecretKey::generate(new.kind)?;
            let key_file = KeyFile::seal(
                &secret,
                passphrase
                    .as_ref()
                    .map(|passphrase| (passphrase, SealParams::DEFAULT)),
            )?;
            key_file.write(&new.out, new.force)?;
            let summary = KeyFileSummary {
                file: new.out,
                kind: key_file.kind(),
                public_key: hex::encode(key_file.public_key()),
                passphrase_protected: key_file.is_passphrase_protected(),
            };
            (summary, new.json, "wrote")
        }
        KeysCommand::Seal(seal) => {
            let passphrase = match (&seal.passphrase_env, &seal.passphrase_file) {
                (Some(name), _) => Passphrase::from_env(name)?,
                (None, Some(path)) => Passphrase::from_file(path)?,
                (None, None) => {
                    return Err(KeyFileError::PassphraseRequired {
                        source_name: seal.out.display().to_string(),
                    }
                    .into())
                }
            };
            let secret = read_bare_secret(&seal.from)?;
            let secret = SecretKey::from_secret_bytes(seal.kind, &secret);
            let key_file = KeyFile::seal(&secret, Some((&passphrase, SealParams::DEFAULT)))?;
            key_file.write(&seal.out, seal.force)?;
            let summary = KeyFileSummary {
                file: seal.out,
                kind: key_file.kind(),
                public_key: hex::encode(key_file.public_key()),
                passphrase_protected: key_file.is_passphrase_protected(),
            };
            (summary, seal.json, "sealed")
        }
        KeysCommand::Show(show) => {
            let key_file = KeyFile::read(&show.file)?;
            let summary = KeyFileSummary {
                file: show.file,
                kind: key_file.kind(),
                public_key: hex::encode(key_file.public_key()),
                passphrase_protected: key_file.is_passphrase_protected(),
            };
            (summary, show.json, "key file")
        }
    };
    let text = if json {
        serde_json::to_string(&summary).map_err(KeysCommandError::Json)?
    } else {
        format!(
            "{verb} {}\nkind: {}\n{}: {}\npassphrase: {}",
            summary.file.display(),
            summary.kind,
            // A subject key has no public half; its file names it by a
            // fingerprint that reveals nothing of it.
            if summary.kind == KeyKind::Subject {
                "fingerprint"
            } else {
                "public key"
            },
            summary.public_key,
            if summary.passphrase_protected {
                "yes (argon2id)"
            } else {
                "none"
            }
        )
    };
    writeln!(output, "{text}").map_err(KeysCommandError::Output)
}

/// Reads a member key file: the JSON key file of `custody keys`, or a bare
/// hex secret.
pub fn read_signing_key(
    path: &std::path::Path,
    passphrase_env: Option<&str>,
) -> Result<ed25519_dalek::SigningKey, String> {
    let text =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let is_json = text
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if is_json {
        let passphrase = match passphrase_env {
            Some(name) => Some(Passphrase::from_env(name).map_err(|error| error.to_string())?),
            None => None,
        };
        return read_member_key(path, passphrase.as_ref()).map_err(|error| error.to_string());
    }
    let secret = custody_node::home::read_key_file(path).map_err(|error| error.to_string())?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&secret))
}
