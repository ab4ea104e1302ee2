//! Wrapping a data key to a department's X25519 key: ephemeral-static
//! X25519, HKDF-SHA256, XChaCha20-Poly1305 (the shape of HPKE's base mode,
//! RFC 9180, with a fixed suite and no negotiation).

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::{random_bytes, DataKey, RandomError, DATA_KEY_BYTES};

/// The wrapped-key format version this code writes and reads.
pub const WRAPPED_KEY_VERSION: u8 = 1;
/// HKDF info string: separates this key derivation from every other use of
/// an X25519 shared secret.
pub const WRAP_DOMAIN: &[u8] = custody_format::tags::WRAPPED_KEY.as_bytes();
/// Encoded length: version (1), ephemeral public key (32), nonce (24),
/// ciphertext (32-byte key + 16-byte tag).
pub const WRAPPED_KEY_BYTES: usize = 1 + 32 + 24 + CIPHERTEXT_BYTES;
const CIPHERTEXT_BYTES: usize = DATA_KEY_BYTES + 16;

/// Why a data key could not be wrapped or unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("wrapped-key format version {found} is not supported (this build reads version {WRAPPED_KEY_VERSION})")]
    UnsupportedVersion { found: u8 },
    #[error("the department public key {public_key_hex} is a low-order point: the shared secret would be all zeros")]
    LowOrderRecipientKey { public_key_hex: String },
    #[error("the wrapped key's ephemeral public key is a low-order point: the shared secret would be all zeros")]
    LowOrderEphemeralKey,
    #[error("the wrapped data key does not open with this department key: it was wrapped to another department, or altered")]
    WrongKeyOrTampered,
    #[error("a wrapped key is {WRAPPED_KEY_BYTES} bytes, got {found_bytes}")]
    WrongLength { found_bytes: usize },
}

/// A department's X25519 encryption public key: data keys are wrapped to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DepartmentPublicKey(#[serde(with = "custody_format::fixed_bytes")] pub [u8; 32]);

impl DepartmentPublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A department's X25519 encryption secret key. Wiped when dropped.
#[derive(Clone)]
pub struct DepartmentSecretKey(StaticSecret);

impl DepartmentSecretKey {
    /// A fresh random key pair's secret half.
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        random_bytes(bytes.as_mut())?;
        Ok(Self::from_bytes(*bytes))
    }

    /// The secret from its 32 bytes (X25519 clamping is applied when used).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    /// The secret's 32 bytes, as stored in a key file.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    pub fn public_key(&self) -> DepartmentPublicKey {
        DepartmentPublicKey(PublicKey::from(&self.0).to_bytes())
    }
}

impl std::fmt::Debug for DepartmentSecretKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "DepartmentSecretKey(public {})",
            self.public_key().to_hex()
        )
    }
}

/// A data key wrapped to one department's public key. Travels on chain in
/// offer and grant transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    pub version: u8,
    #[serde(with = "custody_format::fixed_bytes")]
    pub ephemeral_public_key: [u8; 32],
    #[serde(with = "custody_format::fixed_bytes")]
    pub nonce: [u8; 24],
    #[serde(with = "custody_format::fixed_bytes")]
    pub ciphertext: [u8; CIPHERTEXT_BYTES],
}

impl WrappedKey {
    /// version || ephemeral public key || nonce || ciphertext; the same
    /// bytes as its postcard encoding.
    pub fn to_bytes(&self) -> [u8; WRAPPED_KEY_BYTES] {
        let mut bytes = [0u8; WRAPPED_KEY_BYTES];
        bytes[0] = self.version;
        bytes[1..33].copy_from_slice(&self.ephemeral_public_key);
        bytes[33..57].copy_from_slice(&self.nonce);
        bytes[57..].copy_from_slice(&self.ciphertext);
        bytes
    }

    /// Parses [`WrappedKey::to_bytes`] output; the version is checked by
    /// [`unwrap`], so that a future version can still be carried.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WrapError> {
        if bytes.len() != WRAPPED_KEY_BYTES {
            return Err(WrapError::WrongLength {
                found_bytes: bytes.len(),
            });
        }
        let mut wrapped = Self {
            version: bytes[0],
            ephemeral_public_key: [0u8; 32],
            nonce: [0u8; 24],
            ciphertext: [0u8; CIPHERTEXT_BYTES],
        };
        wrapped.ephemeral_public_key.copy_from_slice(&bytes[1..33]);
        wrapped.nonce.copy_from_slice(&bytes[33..57]);
        wrapped.ciphertext.copy_from_slice(&bytes[57..]);
        Ok(wrapped)
    }
}

/// The key-encryption key: HKDF-SHA256 with salt = ephemeral public key ||
/// recipient public key and info = [`WRAP_DOMAIN`], over the shared secret.
fn key_encryption_key(
    shared_secret: &[u8; 32],
    ephemeral_public_key: &[u8; 32],
    recipient_public_key: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral_public_key);
    salt[32..].copy_from_slice(recipient_public_key);
    let hkdf = Hkdf::<Sha256>::new(Some(&salt), shared_secret);
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so this
    // cannot fail whatever the input.
    hkdf.expand(WRAP_DOMAIN, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

/// Wraps `data_key` to the department whose public key is `recipient`, with
/// a fresh ephemeral key and nonce.
pub fn wrap(data_key: &DataKey, recipient: &DepartmentPublicKey) -> Result<WrappedKey, WrapError> {
    let mut ephemeral_secret = Zeroizing::new([0u8; 32]);
    random_bytes(ephemeral_secret.as_mut())?;
    let mut nonce = [0u8; 24];
    random_bytes(&mut nonce)?;
    wrap_with_ephemeral(data_key, recipient, *ephemeral_secret, nonce)
}

/// [`wrap`] with a caller-chosen ephemeral secret and nonce, for test
/// vectors only: reusing an ephemeral secret links the wrapped keys.
#[doc(hidden)]
pub fn wrap_with_ephemeral(
    data_key: &DataKey,
    recipient: &DepartmentPublicKey,
    ephemeral_secret: [u8; 32],
    nonce: [u8; 24],
) -> Result<WrappedKey, WrapError> {
    let ephemeral_secret = StaticSecret::from(ephemeral_secret);
    let ephemeral_public_key = PublicKey::from(&ephemeral_secret).to_bytes();
    let shared = ephemeral_secret.diffie_hellman(&PublicKey::from(recipient.0));
    if !shared.was_contributory() {
        return Err(WrapError::LowOrderRecipientKey {
            public_key_hex: recipient.to_hex(),
        });
    }
    let key = key_encryption_key(shared.as_bytes(), &ephemeral_public_key, &recipient.0);
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let mut ciphertext = [0u8; CIPHERTEXT_BYTES];
    ciphertext[..DATA_KEY_BYTES].copy_from_slice(data_key.as_bytes());
    let (body, tag_slot) = ciphertext.split_at_mut(DATA_KEY_BYTES);
    let tag = cipher
        .encrypt_inout_detached(&XNonce::from(nonce), &[WRAPPED_KEY_VERSION], body.into())
        .map_err(|_| WrapError::WrongKeyOrTampered)?;
    tag_slot.copy_from_slice(&tag);
    Ok(WrappedKey {
        version: WRAPPED_KEY_VERSION,
        ephemeral_public_key,
        nonce,
        ciphertext,
    })
}

/// Recovers the data key from `wrapped` with the department's secret key.
pub fn unwrap(wrapped: &WrappedKey, recipient: &DepartmentSecretKey) -> Result<DataKey, WrapError> {
    if wrapped.version != WRAPPED_KEY_VERSION {
        return Err(WrapError::UnsupportedVersion {
            found: wrapped.version,
        });
    }
    let shared = recipient
        .0
        .diffie_hellman(&PublicKey::from(wrapped.ephemeral_public_key));
    if !shared.was_contributory() {
        return Err(WrapError::LowOrderEphemeralKey);
    }
    let recipient_public_key = recipient.public_key();
    let key = key_encryption_key(
        shared.as_bytes(),
        &wrapped.ephemeral_public_key,
        &recipient_public_key.0,
    );
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let mut plaintext = Zeroizing::new([0u8; DATA_KEY_BYTES]);
    plaintext.copy_from_slice(&wrapped.ciphertext[..DATA_KEY_BYTES]);
    let tag = Tag::try_from(&wrapped.ciphertext[DATA_KEY_BYTES..])
        .map_err(|_| WrapError::WrongKeyOrTampered)?;
    cipher
        .decrypt_inout_detached(
            &XNonce::from(wrapped.nonce),
            &[WRAPPED_KEY_VERSION],
            plaintext.as_mut_slice().into(),
            &tag,
        )
        .map_err(|_| WrapError::WrongKeyOrTampered)?;
    Ok(DataKey::from_bytes(*plaintext))
}
