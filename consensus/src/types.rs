//! Plain data types shared by every part of the crate: heights, rounds,
//! keys, values and the validator set.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Heights, rounds, block hashes, keys and validators are shared with the
/// ledger byte for byte, and defined once in `custody-format`. A
/// validator's identity is its ed25519 public key: `ValidatorKey` is the
/// format's `PublicKey` under the name consensus gives it.
pub use custody_format::types::{BlockHash, Height, PublicKey as ValidatorKey, Round, Validator};

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

impl custody_format::certificate::VotingPower for ValidatorSet {
    fn voting_power_of(&self, key: &ValidatorKey) -> Option<u64> {
        self.power_of(key)
    }

    fn voting_power_total(&self) -> u128 {
        u128::from(self.total_power)
    }
}
