//! ed25519 signing and verification, single and batched, in one place.
//!
//! Two strengths exist, and each caller names the one it needs:
//!
//! - [`verify`] / [`verify_batch`]: RFC 8032 as `ed25519-dalek`'s
//!   `verify` (canonical `s`, `R` recomputed and compared byte for byte).
//!   Transactions are checked this way since format v1.
//! - [`verify_strict`] / [`verify_batch_strict`]: additionally refuse weak
//!   (small-order) public keys and signatures whose `R` is a small-order
//!   point or not canonically encoded — `ed25519-dalek`'s `verify_strict`.
//!   Consensus messages and commit certificates are checked this way: such
//!   a signature can be valid for almost every message, so it must never
//!   count towards a quorum.
//!
//! [`verify_batch_strict`] reaches the strict rules at batch cost: the
//! checks `verify_strict` makes beyond `verify` look at bytes only (the
//! weak-key check is three point doublings on a key that is decompressed
//! anyway), so they run first, with no extra curve arithmetic, and one
//! `ed25519_dalek::verify_batch` follows. One difference is inherent to
//! every batch equation: a signature whose `R` carries a small-order
//! component (`R` neither small-order nor in the prime-order subgroup) is
//! refused by `verify_strict` always and by the batch with probability at
//! least 1/2. Only the holder of the signing key can make one, so it forges
//! nothing; each honest node builds certificates only from precommits it
//! checked with [`verify_strict`].

use std::collections::HashMap;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};

use crate::types::{PublicKey, Signature};

/// ed25519 signature over `message` (already tagged, see
/// [`crate::encoding::signing_bytes`]).
pub fn sign(key: &SigningKey, message: &[u8]) -> Signature {
    Signature(key.sign(message).to_bytes())
}

/// The public key of a signing key.
pub fn public_key_of(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

/// RFC 8032 verification as `ed25519-dalek`'s `verify`.
pub fn verify(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    let Ok(verifying_key) = VerifyingKey::from_bytes(&key.0) else {
        return false;
    };
    verifying_key
        .verify(message, &ed25519_dalek::Signature::from_bytes(&signature.0))
        .is_ok()
}

/// Strict verification: `ed25519-dalek`'s `verify_strict` (no weak keys,
/// no small-order `R`, canonical `s`).
pub fn verify_strict(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    let Ok(verifying_key) = VerifyingKey::from_bytes(&key.0) else {
        return false;
    };
    verify_strict_with(&verifying_key, message, signature)
}

/// [`verify_strict`] with the key already decompressed (callers that keep
/// one per validator).
pub fn verify_strict_with(key: &VerifyingKey, message: &[u8], signature: &Signature) -> bool {
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature.0))
        .is_ok()
}

/// The rules one signature of a batch is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// Those of [`verify`] (transactions).
    Plain,
    /// Those of [`verify_strict`] (consensus votes and certificates).
    Strict,
}

/// Many `(key, message, signature)` triples in one ed25519 batch, with the
/// rules of [`verify`]. `true` only if every signature is valid; on `false`
/// the caller names the culprit with [`verify`].
pub fn verify_batch(items: &[(PublicKey, &[u8], Signature)]) -> bool {
    batch(
        items
            .iter()
            .map(|&(key, message, signature)| (key, message, signature, Rules::Plain)),
    )
}

/// Many triples in one ed25519 batch, with the rules of [`verify_strict`]
/// (see the module documentation for the one inherent difference). On
/// `false` the caller names the culprit with [`verify_strict`].
pub fn verify_batch_strict(items: &[(PublicKey, &[u8], Signature)]) -> bool {
    batch(
        items
            .iter()
            .map(|&(key, message, signature)| (key, message, signature, Rules::Strict)),
    )
}

/// One batch over signatures held to different rules (chain verification
/// checks a block's transactions and certificates together).
pub fn verify_batch_mixed(items: &[(PublicKey, &[u8], Signature, Rules)]) -> bool {
    batch(items.iter().copied())
}

fn batch<'a>(
    items: impl ExactSizeIterator<Item = (PublicKey, &'a [u8], Signature, Rules)>,
) -> bool {
    let count = items.len();
    if count == 0 {
        return true;
    }
    let mut keys = Vec::with_capacity(count);
    let mut messages = Vec::with_capacity(count);
    let mut signatures = Vec::with_capacity(count);
    // Decompressing a key costs about as much as a third of a verification,
    // and a batch usually holds few distinct signers: decompress each once.
    let mut decompressed: HashMap<[u8; 32], VerifyingKey> = HashMap::new();
    for (key, message, signature, rules) in items {
        let verifying_key = match decompressed.get(&key.0) {
            Some(known) => *known,
            None => {
                let Ok(fresh) = VerifyingKey::from_bytes(&key.0) else {
                    return false;
                };
                decompressed.insert(key.0, fresh);
                fresh
            }
        };
        if rules == Rules::Strict && (verifying_key.is_weak() || !has_strict_form(&signature)) {
            return false;
        }
        keys.push(verifying_key);
        messages.push(message);
        signatures.push(ed25519_dalek::Signature::from_bytes(&signature.0));
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// The checks `verify_strict` makes on a signature beyond `verify`'s, on
/// its bytes alone: `s` is canonical (below the group order ℓ), and `R` is
/// canonically encoded and not one of the eight small-order points.
/// (Whether `R` is a curve point at all the batch equation decides.)
pub fn has_strict_form(signature: &Signature) -> bool {
    let (r, s) = signature.0.split_at(32);
    is_canonical_scalar(s) && is_canonical_y(r) && !is_small_order_encoding(r)
}

/// ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
const GROUP_ORDER_LE: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// `s < ℓ`, comparing little-endian from the most significant byte.
fn is_canonical_scalar(s: &[u8]) -> bool {
    for (byte, bound) in s.iter().rev().zip(GROUP_ORDER_LE.iter().rev()) {
        if byte != bound {
            return byte < bound;
        }
    }
    false
}

/// The y coordinate (the low 255 bits) is below p = 2^255 - 19. Only
/// y in p..2^255 are non-canonical: all bytes 0xff but the first (at least
/// 0xed) and the last (0x7f once the sign bit is masked).
fn is_canonical_y(point: &[u8]) -> bool {
    let top = point[31] & 0x7f;
    !(top == 0x7f && point[1..31].iter().all(|&b| b == 0xff) && point[0] >= 0xed)
}

/// The y coordinates of the eight small-order points of edwards25519
/// (identity: 1; order 2: p - 1; order 4: 0, twice; order 8: two values,
/// each twice), little-endian. The sign bit selects between ±x, so it is
/// masked before comparing. The test `small_order_table_names_all_eight_points`
/// checks the table against `ed25519-dalek`.
const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

fn is_small_order_encoding(point: &[u8]) -> bool {
    let mut y = [0u8; 32];
    y.copy_from_slice(point);
    y[31] &= 0x7f;
    SMALL_ORDER_Y.contains(&y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with_sign(y: &[u8; 32], negative: bool) -> [u8; 32] {
        let mut bytes = *y;
        if negative {
            bytes[31] |= 0x80;
        }
        bytes
    }

    /// The table is complete: its entries decompress to eight distinct
    /// points, all of small order, and edwards25519 has exactly eight.
    #[test]
    fn small_order_table_names_all_eight_points() {
        let mut points = std::collections::BTreeSet::new();
        for y in &SMALL_ORDER_Y {
            for negative in [false, true] {
                if let Ok(key) = VerifyingKey::from_bytes(&with_sign(y, negative)) {
                    assert!(key.is_weak(), "{} is not of small order", hex::encode(y));
                    // The canonical encoding names the point once.
                    points.insert(key.to_edwards().compress().to_bytes());
                }
            }
        }
        assert_eq!(points.len(), 8);
    }

    #[test]
    fn group_order_is_not_a_canonical_scalar() {
        assert!(!is_canonical_scalar(&GROUP_ORDER_LE));
        let mut below = GROUP_ORDER_LE;
        below[0] -= 1;
        assert!(is_canonical_scalar(&below));
        assert!(!is_canonical_scalar(&[0xff; 32]));
    }

    #[test]
    fn y_at_or_above_the_field_prime_is_not_canonical() {
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!is_canonical_y(&p));
        p[0] = 0xec;
        assert!(is_canonical_y(&p));
        p[31] = 0xff;
        p[0] = 0xee;
        assert!(!is_canonical_y(&p), "the sign bit is not part of y");
    }

    proptest! {
        /// Every honestly made signature has the strict form and passes both
        /// batches, alone and with others.
        #[test]
        fn honest_signatures_pass_the_strict_batch(seeds in prop::collection::vec(any::<[u8; 32]>(), 1..6), message in prop::collection::vec(any::<u8>(), 0..64)) {
            let items: Vec<(PublicKey, Vec<u8>, Signature)> = seeds
                .iter()
                .map(|seed| {
                    let key = SigningKey::from_bytes(seed);
                    (public_key_of(&key), message.clone(), sign(&key, &message))
                })
                .collect();
            let borrowed: Vec<(PublicKey, &[u8], Signature)> =
                items.iter().map(|(k, m, s)| (*k, m.as_slice(), *s)).collect();
            for (key, message, signature) in &borrowed {
                prop_assert!(has_strict_form(signature));
                prop_assert!(verify_strict(key, message, signature));
            }
            prop_assert!(verify_batch_strict(&borrowed));
            prop_assert!(verify_batch(&borrowed));
        }

        /// The strict batch agrees with `verify_strict` on random bytes.
        #[test]
        fn strict_batch_refuses_what_verify_strict_refuses(key in any::<[u8; 32]>(), r in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&r);
            signature[32..].copy_from_slice(&s);
            let item = (PublicKey(key), &b"message"[..], Signature(signature));
            prop_assert_eq!(verify_batch_strict(&[item]), verify_strict(&item.0, item.1, &item.2));
        }
    }
}
