//! Subject tags: how a citizen finds the records kept about them while the
//! chain never holds their identity.
//!
//! A clerk holds the federation's **subject key** (32 bytes, the same in
//! every department, never on a node host). From it and a citizen's
//! identity the clerk derives the citizen's **receipt code**, hands it to
//! the citizen, and records on the document only the **subject tag**, a
//! hash of the code:
//!
//! ```text
//! code = HKDF-SHA256(ikm = subject key, salt = none,
//!                    info = tagged("custody/subject-receipt/v1", normalised identity))[..20]
//! tag  = SHA-256(tagged("custody/subject-tag/v1", code))
//! ```
//!
//! A node given a code computes the tag and answers the [`CitizenRecord`]s
//! that carry it; without the subject key, neither the tag nor the code
//! leads back to the identity, and a code cannot be guessed (160 bits).
//! Layout and a worked example: `docs/envelope.md`, "Receipt codes and
//! subject tags".
//!
//! Must not know about: HTTP, rate limits, key files. The derivations and
//! [`citizen_record`] are pure; [`citizen_view`] only reads the store.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::encoding::{self, tags};
use crate::records::{Document, DocumentEvent, DocumentStatus, EventKind};
use crate::store::{Store, StoreError, PAGE_LIMIT_MAX};
use crate::types::{DepartmentId, Hash32, Timestamp};

/// Length of a subject key.
pub const SUBJECT_KEY_BYTES: usize = 32;
/// Length of a receipt code: 160 bits, beyond guessing.
pub const RECEIPT_CODE_BYTES: usize = 20;
/// Crockford base32 symbols of a receipt code (5 bits each, no padding).
pub const RECEIPT_CODE_SYMBOLS: usize = RECEIPT_CODE_BYTES * 8 / 5;
/// Symbols between two dashes when a code is printed.
pub const RECEIPT_CODE_GROUP_SYMBOLS: usize = 4;
/// Longest identity accepted, in bytes after normalisation.
pub const IDENTITY_BYTES_MAX: usize = 256;
/// Longest text [`ReceiptCode::from_str`] looks at, in bytes: a printed
/// code with generous room for spaces.
pub const RECEIPT_CODE_TEXT_BYTES_MAX: usize = 128;
/// Most records one citizen view lists; a subject with more is told the
/// first ones in registration order.
pub const CITIZEN_RECORDS_MAX: usize = 256;

// Whole bytes map to whole symbols, so no padding is ever needed.
const _: () = assert!(RECEIPT_CODE_BYTES * 8 % 5 == 0);

/// Crockford's base32 alphabet: digits and upper-case letters without
/// I, L, O and U.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The federation's subject key. Its bytes never leave the clerk's
/// machine; `Debug` does not show them.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey([u8; SUBJECT_KEY_BYTES]);

impl SubjectKey {
    pub fn from_bytes(bytes: [u8; SUBJECT_KEY_BYTES]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; SUBJECT_KEY_BYTES] {
        &self.0
    }

    /// `SHA-256(tagged("custody/subject-key-id/v1", key))`: names the key
    /// (a key file records it) without revealing it, so that two clerks can
    /// check that they hold the same key.
    pub fn fingerprint(&self) -> Hash32 {
        encoding::sha256(&encoding::tagged(tags::SUBJECT_KEY_ID, &self.0))
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SubjectKey(fingerprint {})", self.fingerprint())
    }
}

/// Why an identity cannot be given a receipt code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the subject's identity is empty; give the name or number the department files the citizen under")]
    Empty,
    #[error("the subject's identity is {bytes} bytes; the limit is {IDENTITY_BYTES_MAX} bytes")]
    TooLong { bytes: usize },
}

/// The identity as the receipt code is derived from it: runs of white
/// space made one space, no leading or trailing space, lower case. So
/// "Zhang  Wei" and "zhang wei " give one code.
pub fn normalise_identity(identity: &str) -> Result<String, IdentityError> {
    let normalised = identity
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if normalised.is_empty() {
        return Err(IdentityError::Empty);
    }
    if normalised.len() > IDENTITY_BYTES_MAX {
        return Err(IdentityError::TooLong {
            bytes: normalised.len(),
        });
    }
    Ok(normalised)
}

/// A citizen's receipt code: the secret they present to see their records.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiptCode([u8; RECEIPT_CODE_BYTES]);

/// Why a text is not a receipt code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptCodeError {
    #[error("a receipt code has {RECEIPT_CODE_SYMBOLS} letters and digits (dashes and spaces aside); this one has {found}")]
    Length { found: usize },
    #[error("`{character}` (position {position}) is not in a receipt code; codes use the digits and the letters A-Z except U")]
    Character { character: char, position: usize },
    #[error("a receipt code is at most {RECEIPT_CODE_TEXT_BYTES_MAX} bytes of text")]
    TooLong,
}

impl ReceiptCode {
    /// The code of `identity` under `key`.
    pub fn derive(key: &SubjectKey, identity: &str) -> Result<ReceiptCode, IdentityError> {
        let identity = normalise_identity(identity)?;
        let info = encoding::tagged(tags::SUBJECT_RECEIPT, identity.as_bytes());
        let mut code = [0u8; RECEIPT_CODE_BYTES];
        Hkdf::<Sha256>::new(None, key.as_bytes())
            .expand(&info, &mut code)
            // 20 bytes is far below HKDF-SHA256's 8160-byte output limit,
            // so this cannot fail whatever the input.
            .expect("20 bytes is a valid HKDF-SHA256 output length");
        Ok(ReceiptCode(code))
    }

    pub fn from_bytes(bytes: [u8; RECEIPT_CODE_BYTES]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; RECEIPT_CODE_BYTES] {
        &self.0
    }

    /// `SHA-256(tagged("custody/subject-tag/v1", code))`: what a document
    /// record carries as its `subject_tag`.
    pub fn subject_tag(&self) -> Hash32 {
        encoding::sha256(&encoding::tagged(tags::SUBJECT_TAG, &self.0))
    }

    /// The 32 Crockford base32 symbols, without dashes.
    fn symbols(&self) -> [u8; RECEIPT_CODE_SYMBOLS] {
        let mut symbols = [0u8; RECEIPT_CODE_SYMBOLS];
        let mut buffer: u32 = 0;
        let mut bits = 0u32;
        let mut next = 0usize;
        for byte in self.0 {
            buffer = (buffer << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                symbols[next] = CROCKFORD[((buffer >> bits) & 0x1f) as usize];
                next += 1;
            }
            buffer &= (1 << bits) - 1;
        }
        debug_assert_eq!(next, RECEIPT_CODE_SYMBOLS);
        debug_assert_eq!(bits, 0);
        symbols
    }
}

/// The value of one Crockford symbol, with its decoding rules: lower case
/// is upper case, `O` is zero, `I` and `L` are one.
fn symbol_value(character: char) -> Option<u8> {
    let upper = character.to_ascii_uppercase();
    let upper = match upper {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    CROCKFORD
        .iter()
        .position(|symbol| char::from(*symbol) == upper)
        .and_then(|value| u8::try_from(value).ok())
}

/// Groups of four symbols joined by dashes: `XXXX-XXXX-…` (eight groups).
impl fmt::Display for ReceiptCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, group) in self
            .symbols()
            .chunks(RECEIPT_CODE_GROUP_SYMBOLS)
            .enumerate()
        {
            if index > 0 {
                formatter.write_str("-")?;
            }
            for symbol in group {
                write!(formatter, "{}", char::from(*symbol))?;
            }
        }
        Ok(())
    }
}

/// The code is a secret: `Debug` shows only that there is one.
impl fmt::Debug for ReceiptCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("ReceiptCode(<secret>)")
    }
}

/// Accepts what a citizen types: any case, dashes and spaces anywhere or
/// nowhere, and `O`/`I`/`L` for `0`/`1`/`1`, as Crockford decodes.
impl FromStr for ReceiptCode {
    type Err = ReceiptCodeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > RECEIPT_CODE_TEXT_BYTES_MAX {
            return Err(ReceiptCodeError::TooLong);
        }
        let mut values = Vec::with_capacity(RECEIPT_CODE_SYMBOLS);
        for (position, character) in text.chars().enumerate() {
            if character == '-' || character.is_whitespace() {
                continue;
            }
            let value = symbol_value(character).ok_or(ReceiptCodeError::Character {
                character,
                position,
            })?;
            values.push(value);
        }
        if values.len() != RECEIPT_CODE_SYMBOLS {
            return Err(ReceiptCodeError::Length {
                found: values.len(),
            });
        }
        let mut code = [0u8; RECEIPT_CODE_BYTES];
        let mut buffer: u32 = 0;
        let mut bits = 0u32;
        let mut next = 0usize;
        for value in values {
            buffer = (buffer << 5) | u32::from(value);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                code[next] = ((buffer >> bits) & 0xff) as u8;
                next += 1;
                buffer &= (1 << bits) - 1;
            }
        }
        debug_assert_eq!(next, RECEIPT_CODE_BYTES);
        Ok(ReceiptCode(code))
    }
}

/// A record's status, as the citizen is told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CitizenStatus {
    Active,
    InTransfer,
    Disposed,
}

/// A time one department held the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyPeriod {
    pub department: DepartmentId,
    /// Block time it took custody (registration or accepted transfer).
    pub since: Timestamp,
    /// Block time it handed the record on or disposed of it; none while it
    /// holds it.
    pub until: Option<Timestamp>,
}

/// How many times one department recorded a read of the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadCount {
    pub department: DepartmentId,
    pub reads: u64,
}

/// What a citizen is told about one record kept about them: who holds it
/// (or held it last), since when, its status, who held it before, and who
/// read it how many times. Never its id, title, type, classification or
/// content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenRecord {
    /// The department holding the record, or the last one that held it.
    pub department: DepartmentId,
    /// Since when that department holds (or held) it.
    pub since: Timestamp,
    pub status: CitizenStatus,
    /// Every department that held it, oldest first.
    pub custody: Vec<CustodyPeriod>,
    /// Reads per reading department (each record-access on chain, the
    /// entry a department must make before it may download the record),
    /// in department order.
    pub reads: Vec<ReadCount>,
}

/// Folds a document's events, oldest first, into its [`CitizenRecord`];
/// one event at a time, so a long history is never held whole.
#[derive(Default)]
pub struct CitizenRecordBuilder {
    custody: Vec<CustodyPeriod>,
    reads: BTreeMap<DepartmentId, u64>,
}

impl CitizenRecordBuilder {
    pub fn add(&mut self, event: &DocumentEvent) {
        match &event.kind {
            EventKind::Registered { .. } | EventKind::RegisteredSealed { .. } => {
                self.take_custody(event);
            }
            EventKind::Accepted { .. } => {
                self.end_custody(event.time);
                self.take_custody(event);
            }
            EventKind::Disposed { .. } | EventKind::DisposedSealed { .. } => {
                self.end_custody(event.time);
            }
            EventKind::Accessed { .. } | EventKind::AccessedSealed { .. } => {
                let count = self.reads.entry(event.department.clone()).or_insert(0);
                *count = count.saturating_add(1);
            }
            _ => {}
        }
    }

    fn take_custody(&mut self, event: &DocumentEvent) {
        self.custody.push(CustodyPeriod {
            department: event.department.clone(),
            since: event.time,
            until: None,
        });
    }

    fn end_custody(&mut self, time: Timestamp) {
        if let Some(last) = self.custody.last_mut() {
            last.until.get_or_insert(time);
        }
    }

    /// The record, with `document` as it stands now.
    pub fn finish(self, document: &Document) -> CitizenRecord {
        let status = match document.status {
            DocumentStatus::Active => CitizenStatus::Active,
            DocumentStatus::InTransfer(_) => CitizenStatus::InTransfer,
            DocumentStatus::Disposed => CitizenStatus::Disposed,
        };
        // The custodian's period is the last one; a history that names no
        // taking of custody (not one the rules write) falls back to the
        // record's registration.
        let since = self
            .custody
            .last()
            .filter(|period| period.department == document.custodian)
            .map(|period| period.since)
            .unwrap_or(document.created);
        CitizenRecord {
            department: document.custodian.clone(),
            since,
            status,
            custody: self.custody,
            reads: self
                .reads
                .into_iter()
                .map(|(department, reads)| ReadCount { department, reads })
                .collect(),
        }
    }
}

/// [`CitizenRecord`] of `document` from its events, oldest first.
pub fn citizen_record<'a>(
    document: &Document,
    events: impl IntoIterator<Item = &'a DocumentEvent>,
) -> CitizenRecord {
    let mut builder = CitizenRecordBuilder::default();
    for event in events {
        builder.add(event);
    }
    builder.finish(document)
}

/// Every record whose subject tag is `tag` (at most
/// [`CITIZEN_RECORDS_MAX`]), oldest custody first. An unknown tag answers
/// an empty list, the same as a tag with no records.
///
/// Reads the store's index by subject tag, so the cost follows the
/// subject's own records, not the size of the archive.
pub fn citizen_view(store: &Store, tag: &Hash32) -> Result<Vec<CitizenRecord>, StoreError> {
    let mut records = store
        .documents_with_subject(tag, CITIZEN_RECORDS_MAX)?
        .iter()
        .map(|document| record_from_store(store, document))
        .collect::<Result<Vec<_>, _>>()?;
    records.sort_by_key(|record: &CitizenRecord| {
        record
            .custody
            .first()
            .map(|period| period.since)
            .unwrap_or(record.since)
    });
    Ok(records)
}

fn record_from_store(store: &Store, document: &Document) -> Result<CitizenRecord, StoreError> {
    let mut builder = CitizenRecordBuilder::default();
    let mut from = 0;
    loop {
        let page = store.document_history(&document.id, from, PAGE_LIMIT_MAX)?;
        for event in &page.items {
            builder.add(event);
        }
        match page.next {
            Some(next) => from = next,
            None => break,
        }
    }
    Ok(builder.finish(document))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn example_key() -> SubjectKey {
        let mut bytes = [0u8; SUBJECT_KEY_BYTES];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = index as u8;
        }
        SubjectKey::from_bytes(bytes)
    }

    const EXAMPLE_IDENTITY: &str = "Zhang Wei 110101198001011234";

    #[test]
    fn receipt_code_is_the_worked_example_of_the_envelope_document() {
        let code = ReceiptCode::derive(&example_key(), EXAMPLE_IDENTITY).expect("identity");
        let printed = code.to_string();
        let tag = code.subject_tag().to_string();
        assert_eq!(printed, EXAMPLE_CODE);
        assert_eq!(tag, EXAMPLE_TAG);
        let document = include_str!("../../docs/envelope.md");
        assert!(
            document.contains(EXAMPLE_CODE),
            "docs/envelope.md lacks {EXAMPLE_CODE}"
        );
        assert!(
            document.contains(EXAMPLE_TAG),
            "docs/envelope.md lacks {EXAMPLE_TAG}"
        );
    }

    const EXAMPLE_CODE: &str = "Y0YT-FSZM-3R6D-RXXB-C0PN-XFA9-A2F9-RK3E";
    const EXAMPLE_TAG: &str = "dfdf047f4d801bcb60fa9124e675395d78704726d23840d73081532336e9f9d4";

    #[test]
    fn identity_is_normalised_before_derivation() {
        let key = example_key();
        let one = ReceiptCode::derive(&key, "Zhang Wei").expect("identity");
        let other = ReceiptCode::derive(&key, "  zhang\t WEI ").expect("identity");
        assert_eq!(one, other);
    }

    #[test]
    fn different_identities_give_different_codes() {
        let key = example_key();
        let one = ReceiptCode::derive(&key, "Zhang Wei").expect("identity");
        let other = ReceiptCode::derive(&key, "Zhang Wen").expect("identity");
        assert_ne!(one, other);
    }

    #[test]
    fn different_subject_keys_give_different_codes() {
        let other_key = SubjectKey::from_bytes([7; SUBJECT_KEY_BYTES]);
        let one = ReceiptCode::derive(&example_key(), "Zhang Wei").expect("identity");
        let other = ReceiptCode::derive(&other_key, "Zhang Wei").expect("identity");
        assert_ne!(one, other);
    }

    #[test]
    fn empty_identity_is_refused() {
        assert_eq!(
            ReceiptCode::derive(&example_key(), " \t "),
            Err(IdentityError::Empty)
        );
    }

    #[test]
    fn overlong_identity_is_refused() {
        let long = "x".repeat(IDENTITY_BYTES_MAX + 1);
        assert_eq!(
            ReceiptCode::derive(&example_key(), &long),
            Err(IdentityError::TooLong {
                bytes: IDENTITY_BYTES_MAX + 1
            })
        );
    }

    #[test]
    fn printed_code_is_eight_groups_of_four() {
        let printed = ReceiptCode::from_bytes([0xff; RECEIPT_CODE_BYTES]).to_string();
        let groups: Vec<&str> = printed.split('-').collect();
        assert_eq!(groups.len(), 8, "{printed}");
        assert!(groups.iter().all(|group| group.len() == 4), "{printed}");
        assert_eq!(printed, "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ");
    }

    #[test]
    fn parse_accepts_lower_case_and_missing_dashes() {
        let code = ReceiptCode::derive(&example_key(), "Zhang Wei").expect("identity");
        let typed = code.to_string().replace('-', "").to_lowercase();
        assert_eq!(typed.parse::<ReceiptCode>(), Ok(code));
    }

    #[test]
    fn parse_reads_o_as_zero_and_i_l_as_one() {
        let zeros_and_ones = "0000-1111-0000-1111-0000-1111-0000-1111";
        let confused = "OOoo-IiLl-0o0O-1lI1-oooo-LLLL-0000-iiii";
        assert_eq!(
            confused.parse::<ReceiptCode>(),
            zeros_and_ones.parse::<ReceiptCode>()
        );
        assert!(confused.parse::<ReceiptCode>().is_ok());
    }

    #[test]
    fn parse_refuses_a_symbol_outside_the_alphabet() {
        let text = "U000-0000-0000-0000-0000-0000-0000-0000";
        assert_eq!(
            text.parse::<ReceiptCode>(),
            Err(ReceiptCodeError::Character {
                character: 'U',
                position: 0
            })
        );
    }

    #[test]
    fn parse_refuses_a_code_of_the_wrong_length() {
        assert_eq!(
            "0000-0000".parse::<ReceiptCode>(),
            Err(ReceiptCodeError::Length { found: 8 })
        );
        assert_eq!(
            "0".repeat(RECEIPT_CODE_SYMBOLS + 1).parse::<ReceiptCode>(),
            Err(ReceiptCodeError::Length {
                found: RECEIPT_CODE_SYMBOLS + 1
            })
        );
    }

    #[test]
    fn parse_refuses_overlong_text_before_reading_it() {
        let text = " ".repeat(RECEIPT_CODE_TEXT_BYTES_MAX + 1);
        assert_eq!(text.parse::<ReceiptCode>(), Err(ReceiptCodeError::TooLong));
    }

    #[test]
    fn debug_does_not_show_the_code_or_the_key() {
        let code = ReceiptCode::derive(&example_key(), "Zhang Wei").expect("identity");
        let printed = code.to_string();
        assert!(!format!("{code:?}").contains(&printed[..4]));
        let key = format!("{:?}", example_key());
        assert!(!key.contains(&hex::encode(example_key().as_bytes())));
    }

    fn department(slug: &str) -> DepartmentId {
        DepartmentId::new(slug.to_string()).expect("department id")
    }

    fn sample_document(custodian: &str, status: DocumentStatus) -> Document {
        use crate::types::{
            Classification, DocumentId, EventHash, Fixity, Format, Height, Retention, WrappedKey,
        };
        Document {
            id: DocumentId::new("civil-affairs-1".to_string()).expect("document id"),
            title: "Birth certificate of a citizen".to_string(),
            record_type: "birth-certificate".to_string(),
            creating_department: department("civil-affairs"),
            created: Timestamp(1_000),
            classification: Classification::Confidential,
            retention: Retention::Years(30),
            format: Format {
                mime: "application/pdf".to_string(),
                pronom: None,
            },
            plaintext: Fixity {
                sha256: Hash32([1; 32]),
                size_bytes: 10,
            },
            ciphertext: Fixity {
                sha256: Hash32([2; 32]),
                size_bytes: 50,
            },
            subject_tag: Some(Hash32([3; 32])),
            custodian: department(custodian),
            custodian_key: WrappedKey(vec![4; 80]),
            status,
            version: 1,
            grants: Vec::new(),
            event_count: 0,
            latest_event: EventHash::from(Hash32::ZERO),
            registered_at: Height(1),
        }
    }

    fn event(sequence: u64, time: u64, by: &str, kind: EventKind) -> DocumentEvent {
        use crate::types::{DocumentId, EventHash, Height, PublicKey, TxId};
        DocumentEvent {
            format_version: 1,
            document: DocumentId::new("civil-affairs-1".to_string()).expect("document id"),
            sequence,
            previous: EventHash::from(Hash32::ZERO),
            height: Height(sequence + 1),
            time: Timestamp(time),
            tx: TxId::from(Hash32([9; 32])),
            member: PublicKey([8; 32]),
            department: department(by),
            kind,
        }
    }

    fn registered(time: u64) -> DocumentEvent {
        use crate::types::Fixity;
        let fixity = Fixity {
            sha256: Hash32([1; 32]),
            size_bytes: 10,
        };
        event(
            0,
            time,
            "civil-affairs",
            EventKind::Registered {
                classification: crate::types::Classification::Confidential,
                plaintext: fixity,
                ciphertext: fixity,
            },
        )
    }

    fn accessed(sequence: u64, by: &str) -> DocumentEvent {
        event(
            sequence,
            5_000 + sequence,
            by,
            EventKind::Accessed {
                purpose: "benefit claim of the citizen".to_string(),
                ciphertext_sha256: Hash32([2; 32]),
            },
        )
    }

    #[test]
    fn citizen_record_names_the_holder_since_registration() {
        let document = sample_document("civil-affairs", DocumentStatus::Active);
        let record = citizen_record(&document, &[registered(2_000)]);
        assert_eq!(record.department, department("civil-affairs"));
        assert_eq!(record.since, Timestamp(2_000));
        assert_eq!(record.status, CitizenStatus::Active);
        assert_eq!(record.custody.len(), 1);
        assert_eq!(record.custody[0].until, None);
    }

    #[test]
    fn citizen_record_counts_reads_per_reading_department() {
        let document = sample_document("civil-affairs", DocumentStatus::Active);
        let events = [
            registered(2_000),
            accessed(1, "health"),
            accessed(2, "civil-affairs"),
            accessed(3, "health"),
        ];
        let record = citizen_record(&document, &events);
        assert_eq!(
            record.reads,
            vec![
                ReadCount {
                    department: department("civil-affairs"),
                    reads: 1
                },
                ReadCount {
                    department: department("health"),
                    reads: 2
                },
            ]
        );
    }

    #[test]
    fn citizen_record_follows_an_accepted_transfer() {
        let document = sample_document("social-security", DocumentStatus::Active);
        let events = [
            registered(2_000),
            event(
                1,
                3_000,
                "social-security",
                EventKind::Accepted {
                    from: department("civil-affairs"),
                },
            ),
        ];
        let record = citizen_record(&document, &events);
        assert_eq!(record.department, department("social-security"));
        assert_eq!(record.since, Timestamp(3_000));
        assert_eq!(
            record.custody,
            vec![
                CustodyPeriod {
                    department: department("civil-affairs"),
                    since: Timestamp(2_000),
                    until: Some(Timestamp(3_000)),
                },
                CustodyPeriod {
                    department: department("social-security"),
                    since: Timestamp(3_000),
                    until: None,
                },
            ]
        );
    }

    #[test]
    fn citizen_record_of_a_disposed_document_says_until_when_it_was_held() {
        let document = sample_document("civil-affairs", DocumentStatus::Disposed);
        let events = [
            registered(2_000),
            event(
                1,
                4_000,
                "civil-affairs",
                EventKind::Disposed {
                    reason: "retention ended".to_string(),
                },
            ),
        ];
        let record = citizen_record(&document, &events);
        assert_eq!(record.status, CitizenStatus::Disposed);
        assert_eq!(record.since, Timestamp(2_000));
        assert_eq!(record.custody[0].until, Some(Timestamp(4_000)));
    }

    #[test]
    fn citizen_record_of_an_offered_document_is_in_transfer() {
        use crate::records::Offer;
        use crate::types::WrappedKey;
        let document = sample_document(
            "civil-affairs",
            DocumentStatus::InTransfer(Offer {
                to: department("health"),
                wrapped_key: WrappedKey(vec![1; 80]),
                expires_at: Timestamp(9_000),
            }),
        );
        let record = citizen_record(&document, &[registered(2_000)]);
        assert_eq!(record.status, CitizenStatus::InTransfer);
        assert_eq!(record.department, department("civil-affairs"));
    }

    #[test]
    fn citizen_record_never_carries_title_type_or_purpose() {
        let document = sample_document("civil-affairs", DocumentStatus::Active);
        let events = [registered(2_000), accessed(1, "health")];
        let json = serde_json::to_string(&citizen_record(&document, &events)).expect("json");
        for secret in [
            document.title.as_str(),
            document.record_type.as_str(),
            document.id.as_str(),
            "benefit claim",
            "confidential",
        ] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
    }

    proptest! {
        #[test]
        fn parse_of_print_is_the_code(bytes in any::<[u8; RECEIPT_CODE_BYTES]>()) {
            let code = ReceiptCode::from_bytes(bytes);
            prop_assert_eq!(code.to_string().parse::<ReceiptCode>(), Ok(code));
        }
    }
}
