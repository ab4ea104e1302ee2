//! The node's home directory and its key files.
//!
//! ```text
//! HOME/
//!   config.toml          the node's configuration (see `config`)
//!   genesis.json         the chain's genesis, identical on every node
//!   keys/validator.key   ed25519 secret that signs votes
//!   keys/node.key        ed25519 secret of the libp2p identity
//!   (no decryption key: the department's X25519 key lives with its clerks,
//!   sealed; a node that finds keys/encryption.key warns at start)
//!   data/ledger/         the ledger store
//!   data/consensus.state the consensus state persisted before sending
//! ```
//!
//! A key file holds the 32-byte secret as 64 lowercase hex digits and a
//! newline, and is written with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, NodeConfig};

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} does not hold 64 hex digits (a 32-byte secret)")]
    Malformed { path: PathBuf },
    #[error("key file {path} already exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
    #[error(
        "no validator key in {dir}: neither validator.key nor validator.next.key exists; \
         restore the key from the department's backup, or make a new one with \
         `custody node keys next` and have the departments vote its rotation"
    )]
    NoValidatorKey { dir: PathBuf },
}

/// The files of one node.
#[derive(Clone, Debug)]
pub struct Home {
    pub root: PathBuf,
}

pub const CONFIG_FILE: &str = "config.toml";
pub const VALIDATOR_KEY_FILE: &str = "validator.key";
/// A validator key installed ahead of a rotation: the node holds it beside
/// `validator.key` and signs with whichever of the two the validator set
/// of each height names (see `docs/operations.md`, "Rotate a department's
/// keys").
pub const VALIDATOR_NEXT_KEY_FILE: &str = "validator.next.key";
pub const NODE_KEY_FILE: &str = "node.key";
/// Where older versions left the department's bare decryption key; a node
/// that finds it warns (it never reads it).
pub const ENCRYPTION_KEY_FILE: &str = "encryption.key";
/// Where a trial network (`custody testnet init`) keeps the department's
/// bare decryption key for its clerks: beside the member keys, outside the
/// node's `keys/`.
pub const TRIAL_DEPARTMENT_KEY_FILE: &str = "members/department.key";

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    pub fn load_config(&self) -> Result<NodeConfig, ConfigError> {
        NodeConfig::load(&self.config_path())
    }

    /// A path from the configuration, resolved against the home.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        }
    }

    pub fn genesis_path(&self, config: &NodeConfig) -> PathBuf {
        self.resolve(&config.paths.genesis)
    }

    pub fn keys_dir(&self, config: &NodeConfig) -> PathBuf {
        self.resolve(&config.paths.keys)
    }

    pub fn data_dir(&self, config: &NodeConfig) -> PathBuf {
        self.resolve(&config.paths.data)
    }

    pub fn ledger_dir(&self, config: &NodeConfig) -> PathBuf {
        self.data_dir(config).join("ledger")
    }

    pub fn consensus_state_path(&self, config: &NodeConfig) -> PathBuf {
        self.data_dir(config).join("consensus.state")
    }
}

/// Fills a buffer from the operating system's entropy source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS entropy source failing is not something a node can work around.
    if let Err(error) = getrandom::fill(&mut bytes) {
        panic!("operating system entropy source failed: {error}");
    }
    bytes
}

/// Writes a fresh 32-byte secret to `path` (refusing to overwrite one).
pub fn generate_key_file(path: &Path) -> Result<[u8; 32], KeyFileError> {
    if path.exists() {
        return Err(KeyFileError::Exists {
            path: path.to_path_buf(),
        });
    }
    let secret = random_bytes::<32>();
    write_key_file(path, &secret)?;
    Ok(secret)
}

pub fn write_key_file(path: &Path, secret: &[u8; 32]) -> Result<(), KeyFileError> {
    let text = format!("{}\n", hex::encode(secret));
    write_private(path, text.as_bytes()).map_err(|source| KeyFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

pub fn read_key_file(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = hex::decode(text.trim()).map_err(|_| KeyFileError::Malformed {
        path: path.to_path_buf(),
    })?;
    bytes.try_into().map_err(|_| KeyFileError::Malformed {
        path: path.to_path_buf(),
    })
}

/// The validator keys this node holds, in the order it prefers them:
/// `validator.key`, then `validator.next.key`. Either may be missing (a
/// lost key is replaced by a new one before the rotation that names it),
/// not both.
pub fn read_validator_keys(
    keys_dir: &Path,
) -> Result<Vec<ed25519_dalek::SigningKey>, KeyFileError> {
    let mut keys = Vec::new();
    for name in [VALIDATOR_KEY_FILE, VALIDATOR_NEXT_KEY_FILE] {
        let path = keys_dir.join(name);
        if !path.exists() {
            continue;
        }
        let secret = read_key_file(&path)?;
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        if !keys
            .iter()
            .any(|held: &ed25519_dalek::SigningKey| held.verifying_key() == key.verifying_key())
        {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(KeyFileError::NoValidatorKey {
            dir: keys_dir.to_path_buf(),
        });
    }
    Ok(keys)
}

/// The libp2p identity held in a node key file.
pub fn node_keypair(secret: [u8; 32]) -> libp2p::identity::Keypair {
    let mut secret = secret;
    match libp2p::identity::Keypair::ed25519_from_bytes(&mut secret) {
        Ok(keypair) => keypair,
        // Any 32 bytes are a valid ed25519 seed; this cannot fail.
        Err(error) => unreachable!("32-byte ed25519 seed refused: {error}"),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

pub use crate::files::write_atomically;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys").join("k.key");
        let secret = generate_key_file(&path).expect("generate");
        assert_eq!(read_key_file(&path).expect("read"), secret);
        assert!(matches!(
            generate_key_file(&path),
            Err(KeyFileError::Exists { .. })
        ));
    }

    #[test]
    fn malformed_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not hex").expect("write");
        assert!(matches!(
            read_key_file(&path),
            Err(KeyFileError::Malformed { .. })
        ));
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        write_atomically(&path, b"one").expect("first");
        write_atomically(&path, b"two").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
    }
}
