//! The types that consensus and the ledger share: heights, rounds, the
//! 32-byte hashes, ed25519 public keys and signatures, and a validator with
//! its voting power. Defined once here; both crates re-export them.
//!
//! Byte forms (the contract, `docs/format.md`): `Height` and `Round`
//! encode exactly as a bare `u64` (a postcard varint; a number in JSON);
//! fixed-size byte values encode as raw bytes with no length prefix in
//! postcard and as lowercase hex in JSON and TOML ([`crate::fixed_bytes`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a newtype over `[u8; N]` with the contract's serde form (raw
/// bytes in postcard, lowercase hex in JSON/TOML), `to_hex`/`from_hex`,
/// `as_bytes`, `Default` (all zeroes), and `Debug`/`Display` in hex. Used
/// by this crate for its own types and by the ledger for its hash kinds,
/// so that the form is written once.
#[macro_export]
macro_rules! fixed_bytes_type {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl Default for $name {
            fn default() -> Self {
                Self([0u8; $len])
            }
        }
        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        impl $name {
            /// Lowercase hex form.
            pub fn to_hex(&self) -> String {
                $crate::fixed_bytes::to_hex(&self.0)
            }
            /// Parse the lowercase hex form.
            pub fn from_hex(value: &str) -> Result<Self, String> {
                $crate::fixed_bytes::parse_hex::<$len>(value).map(Self)
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::fixed_bytes::serialize(&self.0, s)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::fixed_bytes::deserialize::<D, $len>(d).map(Self)
            }
        }
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

/// Defines a 32-byte hash kind: a [`fixed_bytes_type!`] that converts to
/// and from the plain [`Hash32`] digest it was computed as.
#[macro_export]
macro_rules! hash_type {
    ($(#[$meta:meta])* $name:ident) => {
        $crate::fixed_bytes_type!($(#[$meta])* $name, 32);
        impl From<$crate::Hash32> for $name {
            fn from(h: $crate::Hash32) -> Self {
                Self(h.0)
            }
        }
        impl From<$name> for $crate::Hash32 {
            fn from(h: $name) -> Self {
                $crate::Hash32(h.0)
            }
        }
    };
}

fixed_bytes_type!(
    /// A SHA-256 digest.
    Hash32,
    32
);

impl Hash32 {
    /// All zeroes: "no previous" (first event of a document, first block's
    /// last-commit hash).
    pub const ZERO: Hash32 = Hash32([0; 32]);
}

hash_type!(
    /// Hash of a block header (`custody/header/v1`): what consensus agrees
    /// on and a certificate names. Consensus never computes it; it only
    /// compares it.
    BlockHash
);

fixed_bytes_type!(
    /// An ed25519 public key (members, validators, libp2p node identities)
    /// or an X25519 public key (department encryption keys). A validator's
    /// key is also its identity in consensus.
    PublicKey,
    32
);

impl From<&ed25519_dalek::VerifyingKey> for PublicKey {
    fn from(key: &ed25519_dalek::VerifyingKey) -> Self {
        PublicKey(key.to_bytes())
    }
}

fixed_bytes_type!(
    /// An ed25519 signature: `R` (32 bytes) then `s` (32 bytes).
    Signature,
    64
);

/// A block height. The genesis is height 0; the first block is height 1.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
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

/// A consensus round inside one height. Rounds start at 0 and only grow.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
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

/// One validator: the ed25519 key it signs votes with, and its voting
/// power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// The key, which is also the validator's identity.
    pub key: PublicKey,
    /// Voting power (the ledger and consensus both refuse 0).
    pub power: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `Height` and `Round` are bare `u64`s on the wire: a type change
        /// here must not move a byte of any certificate or vote.
        #[test]
        fn height_and_round_encode_as_a_bare_u64(value in any::<u64>()) {
            let bare = postcard::to_allocvec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let height = postcard::to_allocvec(&Height(value)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let round = postcard::to_allocvec(&Round(value)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&height, &bare);
            prop_assert_eq!(&round, &bare);
            prop_assert_eq!(serde_json::to_string(&Height(value)).map_err(|e| TestCaseError::fail(e.to_string()))?, value.to_string());
        }

        /// A hash or key encodes as `[u8; 32]` would in postcard.
        #[test]
        fn block_hash_and_key_encode_as_a_plain_array(bytes in any::<[u8; 32]>()) {
            let plain = postcard::to_allocvec(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&postcard::to_allocvec(&BlockHash(bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?, &plain);
            prop_assert_eq!(&postcard::to_allocvec(&PublicKey(bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?, &plain);
        }
    }
}
