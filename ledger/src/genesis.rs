//! The genesis: chain id, first departments with their keys and admins, and
//! parameters. Written by hand as TOML (or JSON); its canonical hash
//! `SHA-256(tagged("custody/genesis/v1", postcard(genesis)))` is the chain's
//! root of trust and the `previous_block_hash` of block 1.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::encoding::{self, tags, DecodeError};
use crate::records::{NewDepartment, Parameters, Validator, ValidatorSet};
use crate::types::{Hash32, Role, Timestamp, FORMAT_VERSION};

/// Longest chain id, in bytes.
pub const CHAIN_ID_BYTES_MAX: usize = 64;

/// The genesis file.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Genesis {
    pub format_version: u16,
    pub chain_id: String,
    pub genesis_time: Timestamp,
    pub parameters: Parameters,
    pub departments: Vec<NewDepartment>,
}

/// Why a genesis cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("genesis TOML is invalid: {0}")]
    Toml(String),
    #[error("genesis JSON is invalid: {0}")]
    Json(String),
    #[error("genesis bytes are invalid: {0}")]
    Decode(#[from] DecodeError),
    #[error("genesis format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u16),
    #[error("chain id must be 1 to 64 printable ASCII characters without spaces")]
    BadChainId,
    #[error("genesis must name at least one department")]
    NoDepartments,
    #[error("department `{0}` appears twice")]
    DuplicateDepartment(String),
    #[error("validator key {0} is used by two departments")]
    DuplicateValidatorKey(String),
    #[error("key {0} is not a valid full-order ed25519 public key")]
    WeakKey(String),
    #[error("member key {0} appears twice")]
    DuplicateMember(String),
    #[error("department `{0}` has voting power 0; every department needs at least 1")]
    ZeroVotingPower(String),
    #[error("department `{0}` has no admin; at least one member with the `admin` role is needed")]
    NoAdmin(String),
    #[error("parameter `{0}` is out of range")]
    BadParameter(&'static str),
    #[error("text field `{0}` is longer than allowed")]
    TooLong(&'static str),
}

/// Smallest `max_block_bytes` the chain parameters may set.
pub const MAX_BLOCK_BYTES_FLOOR: u64 = 1024;
/// Largest `max_block_txs` the chain parameters may set.
pub const MAX_BLOCK_TXS_CEILING: u32 = 100_000;

// A block of the largest size the parameters allow still decodes.
const _: () = assert!(MAX_BLOCK_BYTES_FLOOR <= encoding::DECODE_BYTES_MAX as u64);

/// Check parameters for sanity (also used when governance changes them).
pub fn check_parameters(p: &Parameters) -> Result<(), &'static str> {
    if p.max_block_bytes < MAX_BLOCK_BYTES_FLOOR
        || p.max_block_bytes > encoding::DECODE_BYTES_MAX as u64
    {
        return Err("max_block_bytes");
    }
    if p.max_block_txs == 0 || p.max_block_txs > MAX_BLOCK_TXS_CEILING {
        return Err("max_block_txs");
    }
    if p.block_time_skew_ms == 0 {
        return Err("block_time_skew_ms");
    }
    if p.offer_expiry_default_ms == 0 {
        return Err("offer_expiry_default_ms");
    }
    Ok(())
}

impl Genesis {
    /// Parse TOML and validate.
    pub fn from_toml_str(text: &str) -> Result<Self, GenesisError> {
        let genesis: Genesis =
            toml::from_str(text).map_err(|e| GenesisError::Toml(e.to_string()))?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Parse JSON and validate.
    pub fn from_json_str(text: &str) -> Result<Self, GenesisError> {
        let genesis: Genesis =
            serde_json::from_str(text).map_err(|e| GenesisError::Json(e.to_string()))?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Read a genesis file, JSON or TOML by its content (JSON starts with
    /// `{`), whatever the file is called: the ceremony's output works
    /// wherever the node's configuration points.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_text(&text)
    }

    /// Parse genesis text, JSON or TOML by its content, and validate.
    pub fn from_text(text: &str) -> Result<Self, GenesisError> {
        if text.trim_start().starts_with('{') {
            Self::from_json_str(text)
        } else {
            Self::from_toml_str(text)
        }
    }

    /// Pretty JSON text, the form `custody genesis assemble` writes by
    /// default and a node reads from `genesis.json`.
    pub fn to_json_string(&self) -> Result<String, GenesisError> {
        serde_json::to_string_pretty(self).map_err(|e| GenesisError::Json(e.to_string()))
    }

    /// Human-editable TOML text.
    pub fn to_toml_string(&self) -> Result<String, GenesisError> {
        toml::to_string_pretty(self).map_err(|e| GenesisError::Toml(e.to_string()))
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decode canonical bytes and validate.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GenesisError> {
        let genesis: Genesis = encoding::decode(bytes)?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// The chain's root of trust.
    pub fn hash(&self) -> Hash32 {
        encoding::hash_of(tags::GENESIS, self)
    }

    /// The validator set in force at height 1.
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet::new(
            self.departments
                .iter()
                .map(|d| Validator {
                    key: d.keys.validator_key,
                    power: d.voting_power,
                })
                .collect(),
        )
    }

    /// Check every rule a genesis must follow.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.format_version != FORMAT_VERSION {
            return Err(GenesisError::UnsupportedVersion(self.format_version));
        }
        if !valid_chain_id(&self.chain_id) {
            return Err(GenesisError::BadChainId);
        }
        check_parameters(&self.parameters).map_err(GenesisError::BadParameter)?;
        if self.departments.is_empty() {
            return Err(GenesisError::NoDepartments);
        }
        let mut ids = BTreeSet::new();
        let mut validators = BTreeSet::new();
        let mut members = BTreeSet::new();
        for d in &self.departments {
            if !ids.insert(d.id.clone()) {
                return Err(GenesisError::DuplicateDepartment(d.id.to_string()));
            }
            if !validators.insert(d.keys.validator_key) {
                return Err(GenesisError::DuplicateValidatorKey(
                    d.keys.validator_key.to_hex(),
                ));
            }
            if d.voting_power == 0 {
                return Err(GenesisError::ZeroVotingPower(d.id.to_string()));
            }
            check_strong_key(&d.keys.validator_key)?;
            if d.name.len() > crate::tx::TEXT_BYTES_MAX {
                return Err(GenesisError::TooLong("departments.name"));
            }
            if !d.admins.iter().any(|m| m.roles.contains(&Role::Admin)) {
                return Err(GenesisError::NoAdmin(d.id.to_string()));
            }
            for m in &d.admins {
                check_strong_key(&m.key)?;
                if !members.insert(m.key) {
                    return Err(GenesisError::DuplicateMember(m.key.to_hex()));
                }
                if m.name.len() > crate::tx::TEXT_BYTES_MAX {
                    return Err(GenesisError::TooLong("departments.admins.name"));
                }
            }
        }
        Ok(())
    }
}

fn check_strong_key(key: &crate::types::PublicKey) -> Result<(), GenesisError> {
    match ed25519_dalek::VerifyingKey::from_bytes(&key.0) {
        Ok(k) if !k.is_weak() => Ok(()),
        _ => Err(GenesisError::WeakKey(key.to_hex())),
    }
}

/// 1 to 64 printable ASCII characters, no spaces.
pub fn valid_chain_id(chain_id: &str) -> bool {
    !chain_id.is_empty()
        && chain_id.len() <= CHAIN_ID_BYTES_MAX
        && chain_id.bytes().all(|b| b.is_ascii_graphic())
}

/// The `format` field of a genesis contribution file.
pub const CONTRIBUTION_FORMAT: &str = "custody-genesis-contribution";
/// The contribution format version written and read.
pub const CONTRIBUTION_VERSION: u32 = 1;

/// One department's public keys and first admins, as it hands them to the
/// genesis ceremony (`custody genesis contribute`) or to a federation that
/// votes it in (`custody gov propose add-department --contribution`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub format: String,
    pub version: u32,
    pub department: NewDepartment,
}

impl Contribution {
    pub fn new(department: NewDepartment) -> Contribution {
        Contribution {
            format: CONTRIBUTION_FORMAT.to_string(),
            version: CONTRIBUTION_VERSION,
            department,
        }
    }
}
