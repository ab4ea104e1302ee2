//! Serde for fixed-size byte arrays (keys, hashes, signatures, nonces):
//! lowercase hex in human-readable formats (JSON, TOML), and in binary
//! formats the layout serde's derive gives `[u8; N]` (a tuple of N bytes,
//! no length prefix), so a 32-byte hash encodes with postcard exactly as a
//! `[u8; 32]` field would. serde's own derive stops at 32 elements, hence
//! this module. Use it as `#[serde(with = "custody_format::fixed_bytes")]`.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer, const N: usize>(
    bytes: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        serializer.serialize_str(&hex::encode(bytes))
    } else {
        let mut tuple = serializer.serialize_tuple(N)?;
        for byte in bytes {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
    deserializer: D,
) -> Result<[u8; N], D::Error> {
    if deserializer.is_human_readable() {
        deserializer.deserialize_str(HexVisitor::<N>)
    } else {
        deserializer.deserialize_tuple(N, TupleVisitor::<N>)
    }
}

struct HexVisitor<const N: usize>;

impl<const N: usize> Visitor<'_> for HexVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "{} lowercase hex characters", 2 * N)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<[u8; N], E> {
        parse_hex::<N>(value).map_err(E::custom)
    }
}

struct TupleVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for TupleVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "{N} bytes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0u8; N];
        for (index, slot) in out.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(index, &self))?;
        }
        Ok(out)
    }
}

/// Parses exactly `2 * N` lowercase hex characters; one value has one
/// text form, as it has one byte form.
pub fn parse_hex<const N: usize>(value: &str) -> Result<[u8; N], String> {
    if value.len() != 2 * N {
        return Err(format!(
            "expected {} hex characters, found {}",
            2 * N,
            value.len()
        ));
    }
    if value.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("hex must be lowercase".to_string());
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(value, &mut out).map_err(|error| format!("invalid hex: {error}"))?;
    Ok(out)
}

/// Lowercase hex of any byte string (the text form [`serialize`] writes).
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The first four bytes in hex, for `Debug` output.
pub fn short_hex(bytes: &[u8]) -> String {
    hex::encode(&bytes[..bytes.len().min(4)])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Signature(#[serde(with = "super")] [u8; 64]);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Hash(#[serde(with = "super")] [u8; 32]);

    proptest! {
        #[test]
        fn binary_form_is_the_raw_bytes_and_round_trips(bytes in prop::array::uniform32(any::<u8>())) {
            let encoded = postcard::to_allocvec(&Hash(bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&encoded[..], &bytes[..]);
            let decoded: Hash = postcard::from_bytes(&encoded).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decoded, Hash(bytes));
        }

        #[test]
        fn text_form_is_lowercase_hex_and_round_trips(first in prop::array::uniform32(any::<u8>()), second in prop::array::uniform32(any::<u8>())) {
            let mut bytes = [0u8; 64];
            bytes[..32].copy_from_slice(&first);
            bytes[32..].copy_from_slice(&second);
            let json = serde_json::to_string(&Signature(bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(json.clone(), format!("\"{}\"", hex::encode(bytes)));
            let decoded: Signature = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decoded, Signature(bytes));
        }

        #[test]
        fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            let _ = postcard::from_bytes::<Signature>(&bytes);
        }
    }

    #[test]
    fn uppercase_hex_is_refused() {
        let upper = format!("\"{}\"", "AB".repeat(32));
        assert!(serde_json::from_str::<Hash>(&upper).is_err());
    }

    #[test]
    fn hex_of_the_wrong_length_is_refused() {
        let short = format!("\"{}\"", "ab".repeat(31));
        assert!(serde_json::from_str::<Hash>(&short).is_err());
    }

    #[test]
    fn too_few_bytes_are_refused() {
        assert!(postcard::from_bytes::<Hash>(&[0u8; 31]).is_err());
    }
}
