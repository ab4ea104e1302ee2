//! Newtypes for every identity and value that must not be mixed up.
//!
//! 32- and 64-byte values serialize as lowercase hex strings in
//! human-readable formats (JSON, TOML) and as fixed-length raw bytes (no
//! length prefix) in postcard, exactly like `[u8; N]`.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Current format version written into every structure this crate owns.
pub const FORMAT_VERSION: u16 = 1;

pub use custody_format::fixed_bytes::parse_hex;
/// The types shared with consensus, defined once in `custody-format`.
pub use custody_format::types::{BlockHash, Hash32, Height, PublicKey, Round, Signature};

custody_format::hash_type!(
    /// Hash of a signed transaction (`custody/tx-id/v1`).
    TxId
);
custody_format::hash_type!(
    /// Hash of a document event (`custody/event/v1`).
    EventHash
);
custody_format::hash_type!(
    /// Governance proposal id: the id of the transaction that proposed it.
    ProposalId
);

impl EventHash {
    /// All zeroes: the previous-event hash named by a document's first event.
    pub const ZERO: EventHash = EventHash([0; 32]);
}

macro_rules! number_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

number_newtype!(
    /// Per-signer transaction counter; a signer's first transaction has nonce 1.
    Nonce
);
number_newtype!(
    /// Milliseconds since the Unix epoch (UTC), always block time on chain.
    Timestamp
);

/// Error for identifiers that do not follow their syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("department id `{0}` must be 1 to 64 characters of a-z, 0-9 and '-', not starting or ending with '-'")]
    Department(String),
    #[error("document id `{0}` must be 1 to 128 characters of A-Z, a-z, 0-9 and - _ . / :")]
    Document(String),
}

/// Department slug, e.g. `civil-affairs`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DepartmentId(String);

/// Longest department slug, in bytes.
pub const DEPARTMENT_ID_BYTES_MAX: usize = 64;
/// Longest document id, in bytes.
pub const DOCUMENT_ID_BYTES_MAX: usize = 128;

impl DepartmentId {
    /// Validate a slug.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= DEPARTMENT_ID_BYTES_MAX
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if ok {
            Ok(Self(value))
        } else {
            Err(IdError::Department(value))
        }
    }
    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for DepartmentId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(value)
    }
}
impl From<DepartmentId> for String {
    fn from(id: DepartmentId) -> String {
        id.0
    }
}
impl fmt::Display for DepartmentId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Archive reference chosen by the registering department, e.g.
/// `civil-affairs/2026/000123`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocumentId(String);

impl DocumentId {
    /// Validate a document id.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= DOCUMENT_ID_BYTES_MAX
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b));
        if ok {
            Ok(Self(value))
        } else {
            Err(IdError::Document(value))
        }
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for DocumentId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(value)
    }
}
impl From<DocumentId> for String {
    fn from(id: DocumentId) -> String {
        id.0
    }
}
impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sensitivity of a document and clearance of a member. The derive order is
/// the rule: `public < internal < confidential < secret`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Classification {
    Public,
    Internal,
    Confidential,
    Secret,
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Secret => "secret",
        })
    }
}

/// What a member may do.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    Clerk,
    Auditor,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Clerk => "clerk",
            Role::Auditor => "auditor",
        })
    }
}

/// How long a document must be kept before it may be disposed of.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retention {
    /// Whole years counted from the document's creation date; a year is
    /// [`YEAR_MS`] milliseconds (the mean Gregorian year).
    Years(u16),
    /// Never disposable.
    Permanent,
}

/// Length of a retention year in milliseconds: 365.2425 days.
pub const YEAR_MS: u64 = 31_556_952_000;

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Retention::Years(years) => write!(f, "{years} years"),
            Retention::Permanent => f.write_str("permanent"),
        }
    }
}

/// Fingerprint of a byte string: SHA-256 and size in bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Fixity {
    pub sha256: Hash32,
    pub size_bytes: u64,
}

/// File format of the plaintext.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Format {
    /// MIME type, e.g. `application/pdf`.
    pub mime: String,
    /// PRONOM format id, e.g. `fmt/276`.
    pub pronom: Option<String>,
}

/// A data key wrapped to one department's X25519 key (opaque to the
/// ledger). Hex in JSON/TOML; in postcard a varint length then the bytes.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct WrappedKey(pub Vec<u8>);

impl Serialize for WrappedKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for WrappedKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = WrappedKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("wrapped key bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WrappedKey, E> {
                if v.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(E::custom("hex must be lowercase"));
                }
                hex::decode(v).map(WrappedKey).map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<WrappedKey, E> {
                Ok(WrappedKey(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<WrappedKey, E> {
                Ok(WrappedKey(v))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_byte_buf(V)
        }
    }
}

/// Longest wrapped key, in bytes.
pub const WRAPPED_KEY_BYTES_MAX: usize = 512;
