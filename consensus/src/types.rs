//! Plain data types shared by every part of the crate: heights, rounds,
//! keys, values and the validator set.

use std::fmt;

use serde::{Deserialize, Serialize};

use custody_format::fixed_bytes as bytes_serde;

/// A block height. The first block has height 1.
///
/// Serialises exactly like the bare `u64` (serde newtype), so certificates
/// keep the contract's byte layout.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Height(pub u64);

impl Height {
    /// The height after this one.
    #[must_use]
    pub fn next(self) -> Height {
        Height(self.0.saturating_add(1))
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A round inside one height. Rounds start at 0 and only grow.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Round(pub u64);

impl Round {
    /// The round after this one.
    #[must_use]
    pub fn next(self) -> Round {
        Round(self.0.saturating_add(1))
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The 32-byte identifier of a value (for Custody: the ledger's block
/// header hash). The consensus never computes it; it only compares it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockHash(#[serde(with = "bytes_serde")] pub [u8; 32]);

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({})", bytes_serde::short_hex(&self.0))
    }
}

/// A validator's ed25519 public key, which is also its identity.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ValidatorKey(#[serde(with = "bytes_serde")] pub [u8; 32]);

impl fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValidatorKey({})", bytes_serde::short_hex(&self.0))
    }
}

impl From<&ed25519_dalek::VerifyingKey> for ValidatorKey {
    fn from(key: &ed25519_dalek::VerifyingKey) -> Self {
        ValidatorKey(key.to_bytes())
    }
}

/// The value being agreed on: opaque bytes plus the hash the proposer
/// claims for them. Whether the hash really belongs to the bytes is
/// decided by the application (the `ValidateValue` action), never here.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// The encoded block.
    pub bytes: Vec<u8>,
    /// The block's hash as claimed by its proposer.
    pub hash: BlockHash,
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("hash", &self.hash)
            .field("bytes_len", &self.bytes.len())
            .finish()
    }
}

/// One validator: its key and its voting power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// The ed25519 public key the validator signs votes with.
    pub key: ValidatorKey,
    /// Voting power, at least 1.
    pub power: u64,
}

/// The largest total voting power accepted, so that `3 * power` can never
/// overflow anywhere in the quorum arithmetic.
pub const VALIDATOR_SET_POWER_TOTAL_MAX: u64 = u64::MAX / 4;

/// The largest number of validators in one set. Bounds every per-validator
/// table in the state machine.
pub const VALIDATOR_SET_SIZE_MAX: usize = 1024;

/// Why a list of validators is not a usable validator set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    /// No validators at all.
    #[error("the validator set is empty")]
    Empty,
    /// More validators than the state machine's tables are sized for.
    #[error("the validator set has {count} validators; at most {max} are supported")]
    TooMany {
        /// Number of validators given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A key that appears twice.
    #[error("validator {0:?} appears more than once")]
    Duplicate(ValidatorKey),
    /// A validator whose power is 0 would count for nothing and is refused.
    #[error("validator {0:?} has voting power 0")]
    ZeroPower(ValidatorKey),
    /// The total voting power is too large for the quorum arithmetic.
    #[error("total voting power exceeds {max}")]
    PowerTooLarge {
        /// The limit.
        max: u64,
    },
}

/// The validators in force at one height, sorted by key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    #[serde(skip)]
    total_power: u64,
}

impl<'de> Deserialize<'de> for ValidatorSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            validators: Vec<Validator>,
        }
        let raw = Raw::deserialize(deserializer)?;
        ValidatorSet::new(raw.validators).map_err(serde::de::Error::custom)
    }
}

impl ValidatorSet {
    /// Builds a set, sorting by key and checking that keys are distinct,
    /// powers positive and the total bounded.
    pub fn new(mut validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if validators.len() > VALIDATOR_SET_SIZE_MAX {
            return Err(ValidatorSetError::TooMany {
                count: validators.len(),
                max: VALIDATOR_SET_SIZE_MAX,
            });
        }
        validators.sort_by_key(|validator| validator.key);
        let mut total_power: u64 = 0;
        for (index, validator) in validators.iter().enumerate() {
            if index > 0 && validators[index - 1].key == validator.key {
                return Err(ValidatorSetError::Duplicate(validator.key));
            }
            if validator.power == 0 {
                return Err(ValidatorSetError::ZeroPower(validator.key));
            }
            total_power = total_power
                .checked_add(validator.power)
                .filter(|total| *total <= VALIDATOR_SET_POWER_TOTAL_MAX)
                .ok_or(ValidatorSetError::PowerTooLarge {
                    max: VALIDATOR_SET_POWER_TOTAL_MAX,
                })?;
        }
        Ok(ValidatorSet {
            validators,
            total_power,
        })
    }

    /// Validators sorted by key.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Never true for a constructed set; present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// Sum of all voting powers.
    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// Position of `key` in the sorted set.
    pub fn index_of(&self, key: &ValidatorKey) -> Option<usize> {
        self.validators.binary_search_by(|v| v.key.cmp(key)).ok()
    }

    /// Voting power of `key`, or `None` when it is not a member.
    pub fn power_of(&self, key: &ValidatorKey) -> Option<u64> {
        self.index_of(key).map(|index| self.validators[index].power)
    }

    /// True when `power` is more than two thirds of the total: the quorum
    /// (the paper's 2f + 1). Integer rule: `3 * power > 2 * total`.
    pub fn is_quorum(&self, power: u64) -> bool {
        3 * u128::from(power) > 2 * u128::from(self.total_power)
    }

    /// True when `power` is more than one third of the total: at least one
    /// honest validator is among them (the paper's f + 1).
    pub fn is_one_third(&self, power: u64) -> bool {
        3 * u128::from(power) > u128::from(self.total_power)
    }

    /// The proposer of `(height, round)`: weighted round robin over the
    /// sorted set: every validator proposes in proportion to its power (a
    /// validator with power `k` holds `k` consecutive slots; with equal
    /// powers consecutive rounds have different proposers).
    pub fn proposer(&self, height: Height, round: Round) -> &Validator {
        let slot =
            (u128::from(height.0) + u128::from(round.0)) % u128::from(self.total_power.max(1));
        let mut cumulative: u128 = 0;
        for validator in &self.validators {
            cumulative += u128::from(validator.power);
            if slot < cumulative {
                return validator;
            }
        }
        // Unreachable for a constructed set: `slot < total_power`.
        &self.validators[self.validators.len() - 1]
    }
}
