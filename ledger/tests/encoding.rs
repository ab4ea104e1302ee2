//! Canonical encoding: encode → decode → encode is the identity for every
//! type, random or mutated bytes never panic a decoder, and non-canonical
//! input is refused.

use custody_ledger::block::{Block, Header};
use custody_ledger::certificate::{CommitCertificate, CommitSignature, CommitVote};
use custody_ledger::encoding::{self, DecodeError};
use custody_ledger::genesis::Genesis;
use custody_ledger::merkle::InclusionProof;
use custody_ledger::records::*;
use custody_ledger::sealed::SealedText;
use custody_ledger::state::ChainInfo;
use custody_ledger::tx::*;
use custody_ledger::types::*;
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

fn hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}
fn key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}
fn sig() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature(s)
    })
}
fn event_hash() -> impl Strategy<Value = EventHash> {
    hash().prop_map(EventHash::from)
}
fn dept() -> impl Strategy<Value = DepartmentId> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?".prop_map(|s| DepartmentId::new(s).unwrap())
}
fn doc() -> impl Strategy<Value = DocumentId> {
    "[A-Za-z0-9._:/-]{1,40}".prop_map(|s| DocumentId::new(s).unwrap())
}
fn text() -> impl Strategy<Value = String> {
    ".{0,24}"
}
fn sealed_text() -> impl Strategy<Value = SealedText> {
    prop::collection::vec(any::<u8>(), 0..96).prop_map(SealedText)
}
fn ts() -> impl Strategy<Value = Timestamp> {
    any::<u64>().prop_map(Timestamp)
}
fn class() -> impl Strategy<Value = Classification> {
    prop_oneof![
        Just(Classification::Public),
        Just(Classification::Internal),
        Just(Classification::Confidential),
        Just(Classification::Secret)
    ]
}
fn roles() -> impl Strategy<Value = Vec<Role>> {
    prop::collection::vec(
        prop_oneof![Just(Role::Admin), Just(Role::Clerk), Just(Role::Auditor)],
        0..4,
    )
}
fn retention() -> impl Strategy<Value = Retention> {
    prop_oneof![
        any::<u16>().prop_map(Retention::Years),
        Just(Retention::Permanent)
    ]
}
fn fixity() -> impl Strategy<Value = Fixity> {
    (hash(), any::<u64>()).prop_map(|(sha256, size_bytes)| Fixity { sha256, size_bytes })
}
fn format() -> impl Strategy<Value = Format> {
    (text(), prop::option::of(text())).prop_map(|(mime, pronom)| Format { mime, pronom })
}
fn wrapped() -> impl Strategy<Value = WrappedKey> {
    prop::collection::vec(any::<u8>(), 0..80).prop_map(WrappedKey)
}
fn params() -> impl Strategy<Value = Parameters> {
    (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c, d)| Parameters {
        max_block_bytes: a,
        max_block_txs: b,
        block_time_skew_ms: c,
        offer_expiry_default_ms: d,
    })
}
fn dept_keys() -> impl Strategy<Value = DepartmentKeys> {
    (key(), key(), key()).prop_map(|(validator_key, node_key, encryption_key)| DepartmentKeys {
        validator_key,
        node_key,
        encryption_key,
    })
}
fn new_member() -> impl Strategy<Value = NewMember> {
    (key(), text(), roles(), class()).prop_map(|(key, name, roles, clearance)| NewMember {
        key,
        name,
        roles,
        clearance,
    })
}
fn new_dept() -> impl Strategy<Value = NewDepartment> {
    (
        dept(),
        text(),
        dept_keys(),
        any::<u64>(),
        prop::collection::vec(new_member(), 0..3),
    )
        .prop_map(|(id, name, keys, voting_power, admins)| NewDepartment {
            id,
            name,
            keys,
            voting_power,
            admins,
        })
}
fn change() -> impl Strategy<Value = GovernanceChange> {
    prop_oneof![
        new_dept().prop_map(GovernanceChange::AddDepartment),
        dept().prop_map(|department| GovernanceChange::RemoveDepartment { department }),
        (dept(), dept_keys()).prop_map(|(department, keys)| {
            GovernanceChange::RotateDepartmentKeys { department, keys }
        }),
        params().prop_map(GovernanceChange::ChangeParameters),
    ]
}

fn body() -> impl Strategy<Value = TxBody> {
    prop_oneof![
        (key(), dept(), text(), roles(), class()).prop_map(
            |(member, department, name, roles, clearance)| {
                TxBody::EnrollMember {
                    member,
                    department,
                    name,
                    roles,
                    clearance,
                }
            }
        ),
        (key(), roles(), class()).prop_map(|(member, roles, clearance)| TxBody::UpdateMember {
            member,
            roles,
            clearance
        }),
        (key(), text()).prop_map(|(member, reason)| TxBody::RevokeMember { member, reason }),
        change().prop_map(|change| TxBody::ProposeChange { change }),
        hash().prop_map(|h| TxBody::ApproveChange { proposal: h.into() }),
        (
            (doc(), text(), text(), dept(), ts(), class()),
            (
                retention(),
                format(),
                fixity(),
                fixity(),
                prop::option::of(hash()),
                wrapped()
            )
        )
            .prop_map(
                |(
                    (document, title, record_type, department, created, classification),
                    (retention, format, plaintext, ciphertext, subject_tag, wrapped_key),
                )| TxBody::Register {
                    document,
                    title,
                    record_type,
                    department,
                    created,
                    classification,
                    retention,
                    format,
                    plaintext,
                    ciphertext,
                    subject_tag,
                    wrapped_key
                }
            ),
        (
            doc(),
            event_hash(),
            dept(),
            wrapped(),
            prop::option::of(ts())
        )
            .prop_map(|(document, previous_event, to, wrapped_key, expires_at)| {
                TxBody::OfferTransfer {
                    document,
                    previous_event,
                    to,
                    wrapped_key,
                    expires_at,
                }
            }),
        (doc(), event_hash(), hash()).prop_map(|(document, previous_event, ciphertext_sha256)| {
            TxBody::AcceptTransfer {
                document,
                previous_event,
                ciphertext_sha256,
            }
        }),
        (doc(), event_hash(), text()).prop_map(|(document, previous_event, reason)| {
            TxBody::RejectTransfer {
                document,
                previous_event,
                reason,
            }
        }),
        (doc(), event_hash()).prop_map(|(document, previous_event)| TxBody::CancelTransfer {
            document,
            previous_event
        }),
        (doc(), event_hash(), dept(), wrapped(), ts()).prop_map(
            |(document, previous_event, to, wrapped_key, expires_at)| TxBody::GrantAccess {
                document,
                previous_event,
                to,
                wrapped_key,
                expires_at
            }
        ),
        (doc(), event_hash(), dept()).prop_map(|(document, previous_event, from)| {
            TxBody::RevokeAccess {
                document,
                previous_event,
                from,
            }
        }),
        (doc(), event_hash(), text(), hash()).prop_map(
            |(document, previous_event, purpose, ciphertext_sha256)| TxBody::RecordAccess {
                document,
                previous_event,
                purpose,
                ciphertext_sha256
            }
        ),
        (
            (
                doc(),
                event_hash(),
                prop_oneof![
                    Just(AmendReason::Correction),
                    Just(AmendReason::FormatMigration),
                    Just(AmendReason::Redaction)
                ],
                text()
            ),
            (format(), fixity(), fixity(), wrapped())
        )
            .prop_map(
                |(
                    (document, previous_event, reason, note),
                    (format, plaintext, ciphertext, wrapped_key),
                )| {
                    TxBody::Amend {
                        document,
                        previous_event,
                        reason,
                        note,
                        format,
                        plaintext,
                        ciphertext,
                        wrapped_key,
                    }
                }
            ),
        (
            doc(),
            event_hash(),
            hash(),
            prop_oneof![Just(FixityResult::Intact), Just(FixityResult::Mismatch)],
            text()
        )
            .prop_map(
                |(document, previous_event, ciphertext_sha256, result, note)| {
                    TxBody::RecordFixityCheck {
                        document,
                        previous_event,
                        ciphertext_sha256,
                        result,
                        note,
                    }
                }
            ),
        (doc(), event_hash(), text()).prop_map(|(document, previous_event, reason)| {
            TxBody::Dispose {
                document,
                previous_event,
                reason,
            }
        }),
    ]
}

/// The sealed kinds of format version 4.
fn sealed_body() -> impl Strategy<Value = TxBody> {
    prop_oneof![
        (
            (
                doc(),
                sealed_text(),
                text(),
                dept(),
                ts(),
                class(),
                retention()
            ),
            (
                format(),
                fixity(),
                fixity(),
                prop::option::of(hash()),
                wrapped()
            )
        )
            .prop_map(
                |(
                    (document, title, record_type, department, created, classification, retention),
                    (format, plaintext, ciphertext, subject_tag, wrapped_key),
                )| TxBody::RegisterSealed {
                    document,
                    title,
                    record_type,
                    department,
                    created,
                    classification,
                    retention,
                    format,
                    plaintext,
                    ciphertext,
                    subject_tag,
                    wrapped_key,
                }
            ),
        (doc(), event_hash(), sealed_text()).prop_map(|(document, previous_event, reason)| {
            TxBody::RejectTransferSealed {
                document,
                previous_event,
                reason,
            }
        }),
        (doc(), event_hash(), sealed_text(), hash()).prop_map(
            |(document, previous_event, purpose, ciphertext_sha256)| TxBody::RecordAccessSealed {
                document,
                previous_event,
                purpose,
                ciphertext_sha256
            }
        ),
        (
            (doc(), event_hash(), sealed_text(), sealed_text()),
            (format(), fixity(), fixity(), wrapped())
        )
            .prop_map(
                |(
                    (document, previous_event, note, title),
                    (format, plaintext, ciphertext, wrapped_key),
                )| TxBody::AmendSealed {
                    document,
                    previous_event,
                    reason: AmendReason::FormatMigration,
                    note,
                    title,
                    format,
                    plaintext,
                    ciphertext,
                    wrapped_key,
                }
            ),
        (doc(), event_hash(), hash(), sealed_text()).prop_map(
            |(document, previous_event, ciphertext_sha256, note)| {
                TxBody::RecordFixityCheckSealed {
                    document,
                    previous_event,
                    ciphertext_sha256,
                    result: FixityResult::Intact,
                    note,
                }
            }
        ),
        (doc(), event_hash(), sealed_text()).prop_map(|(document, previous_event, reason)| {
            TxBody::DisposeSealed {
                document,
                previous_event,
                reason,
            }
        }),
    ]
}

fn signed_tx() -> impl Strategy<Value = SignedTransaction> {
    (any::<u16>(), text(), key(), any::<u64>(), body(), sig()).prop_map(
        |(format_version, chain_id, signer, nonce, body, signature)| SignedTransaction {
            payload: TxPayload {
                format_version,
                chain_id,
                signer,
                nonce: Nonce(nonce),
                body,
            },
            signature,
        },
    )
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u16>(),
        text(),
        any::<u64>(),
        ts(),
        hash(),
        hash(),
        key(),
        hash(),
        hash(),
    )
        .prop_map(
            |(format_version, chain_id, h, time, prev, tx_root, proposer, vs, lc)| Header {
                format_version,
                chain_id,
                height: Height(h),
                time,
                previous_block_hash: prev.into(),
                tx_root,
                proposer,
                validator_set_hash: vs,
                last_commit_hash: lc,
            },
        )
}

fn certificate() -> impl Strategy<Value = CommitCertificate> {
    (
        any::<u64>(),
        any::<u64>(),
        hash(),
        prop::collection::vec((key(), sig()), 0..5),
    )
        .prop_map(|(h, r, bh, sigs)| CommitCertificate {
            height: Height(h),
            round: Round(r),
            block_hash: bh.into(),
            signatures: sigs
                .into_iter()
                .map(|(validator, signature)| CommitSignature {
                    validator,
                    signature,
                })
                .collect(),
        })
}

fn block() -> impl Strategy<Value = Block> {
    (
        header(),
        prop::collection::vec(signed_tx(), 0..4),
        prop::option::of(certificate()),
    )
        .prop_map(|(header, transactions, last_commit)| Block {
            header,
            transactions,
            last_commit,
        })
}

fn validator_set() -> impl Strategy<Value = ValidatorSet> {
    prop::collection::vec((key(), any::<u64>()), 0..5).prop_map(|v| ValidatorSet {
        validators: v
            .into_iter()
            .map(|(key, power)| Validator { key, power })
            .collect(),
    })
}

fn genesis() -> impl Strategy<Value = Genesis> {
    (
        any::<u16>(),
        text(),
        ts(),
        params(),
        prop::collection::vec(new_dept(), 0..3),
    )
        .prop_map(
            |(format_version, chain_id, genesis_time, parameters, departments)| Genesis {
                format_version,
                chain_id,
                genesis_time,
                parameters,
                departments,
            },
        )
}

fn event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        (class(), fixity(), fixity()).prop_map(|(classification, plaintext, ciphertext)| {
            EventKind::Registered {
                classification,
                plaintext,
                ciphertext,
            }
        }),
        (dept(), ts()).prop_map(|(to, expires_at)| EventKind::Offered { to, expires_at }),
        dept().prop_map(|from| EventKind::Accepted { from }),
        text().prop_map(|reason| EventKind::Rejected { reason }),
        Just(EventKind::Cancelled),
        (dept(), ts()).prop_map(|(to, expires_at)| EventKind::Granted { to, expires_at }),
        dept().prop_map(|from| EventKind::Revoked { from }),
        (text(), hash()).prop_map(|(purpose, ciphertext_sha256)| EventKind::Accessed {
            purpose,
            ciphertext_sha256
        }),
        (any::<u32>(), text(), fixity(), fixity()).prop_map(|(version, note, a, b)| {
            EventKind::Amended {
                version,
                reason: AmendReason::Correction,
                note,
                previous_plaintext: a,
                previous_ciphertext: b,
                plaintext: b,
                ciphertext: a,
            }
        }),
        hash().prop_map(|ciphertext_sha256| EventKind::FixityChecked {
            ciphertext_sha256,
            result: FixityResult::Mismatch
        }),
        text().prop_map(|reason| EventKind::Disposed { reason }),
        (class(), fixity(), fixity(), sealed_text()).prop_map(
            |(classification, plaintext, ciphertext, title)| EventKind::RegisteredSealed {
                classification,
                plaintext,
                ciphertext,
                title,
            }
        ),
        sealed_text().prop_map(|reason| EventKind::RejectedSealed { reason }),
        (sealed_text(), hash()).prop_map(|(purpose, ciphertext_sha256)| {
            EventKind::AccessedSealed {
                purpose,
                ciphertext_sha256,
            }
        }),
        (
            any::<u32>(),
            sealed_text(),
            fixity(),
            fixity(),
            sealed_text()
        )
            .prop_map(|(version, note, a, b, title)| EventKind::AmendedSealed {
                version,
                reason: AmendReason::Correction,
                note,
                previous_plaintext: a,
                previous_ciphertext: b,
                plaintext: b,
                ciphertext: a,
                title,
            }),
        sealed_text().prop_map(|reason| EventKind::DisposedSealed { reason }),
    ]
}

fn event() -> impl Strategy<Value = DocumentEvent> {
    (
        (
            any::<u16>(),
            doc(),
            any::<u64>(),
            event_hash(),
            any::<u64>(),
        ),
        (ts(), hash(), key(), dept(), event_kind()),
    )
        .prop_map(
            |(
                (format_version, document, sequence, previous, height),
                (time, tx, member, department, kind),
            )| {
                DocumentEvent {
                    format_version,
                    document,
                    sequence,
                    previous,
                    height: Height(height),
                    time,
                    tx: tx.into(),
                    member,
                    department,
                    kind,
                }
            },
        )
}

fn status() -> impl Strategy<Value = DocumentStatus> {
    prop_oneof![
        Just(DocumentStatus::Active),
        Just(DocumentStatus::Disposed),
        (dept(), wrapped(), ts()).prop_map(|(to, wrapped_key, expires_at)| {
            DocumentStatus::InTransfer(Offer {
                to,
                wrapped_key,
                expires_at,
            })
        }),
    ]
}

fn document() -> impl Strategy<Value = Document> {
    (
        (doc(), text(), text(), dept(), ts(), class(), retention()),
        (
            format(),
            fixity(),
            fixity(),
            prop::option::of(hash()),
            dept(),
            wrapped(),
            status(),
        ),
        (
            any::<u32>(),
            prop::collection::vec((dept(), wrapped(), ts()), 0..3),
            any::<u64>(),
            event_hash(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (id, title, record_type, creating_department, created, classification, retention),
                (format, plaintext, ciphertext, subject_tag, custodian, custodian_key, status),
                (version, grants, event_count, latest_event, registered_at),
            )| Document {
                id,
                title,
                record_type,
                creating_department,
                created,
                classification,
                retention,
                format,
                plaintext,
                ciphertext,
                subject_tag,
                custodian,
                custodian_key,
                status,
                version,
                grants: grants
                    .into_iter()
                    .map(|(department, wrapped_key, expires_at)| Grant {
                        department,
                        wrapped_key,
                        expires_at,
                    })
                    .collect(),
                event_count,
                latest_event,
                registered_at: Height(registered_at),
            },
        )
}

fn member() -> impl Strategy<Value = Member> {
    (
        key(),
        dept(),
        text(),
        roles(),
        class(),
        prop::option::of(any::<u64>()),
        any::<u64>(),
    )
        .prop_map(
            |(key, department, name, roles, clearance, revoked, enrolled)| Member {
                key,
                department,
                name,
                roles,
                clearance,
                status: match revoked {
                    Some(h) => MemberStatus::Revoked { at: Height(h) },
                    None => MemberStatus::Active,
                },
                enrolled_at: Height(enrolled),
            },
        )
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (
        hash(),
        change(),
        dept(),
        any::<u64>(),
        prop::collection::vec(dept(), 0..3),
        prop::option::of(any::<u64>()),
    )
        .prop_map(
            |(id, change, proposed_by, at, approvals, executed)| Proposal {
                id: id.into(),
                change,
                proposed_by,
                proposed_at: Height(at),
                approvals,
                executed_at: executed.map(Height),
            },
        )
}

fn department_record() -> impl Strategy<Value = Department> {
    (
        dept(),
        text(),
        dept_keys(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(id, name, keys, voting_power, since, documents_held)| Department {
                id,
                name,
                keys,
                voting_power,
                since: Height(since),
                documents_held,
            },
        )
}

fn chain_info() -> impl Strategy<Value = ChainInfo> {
    (
        text(),
        hash(),
        any::<u64>(),
        hash(),
        ts(),
        validator_set(),
        validator_set(),
    )
        .prop_map(
            |(chain_id, genesis_hash, h, last, last_time, a, b)| ChainInfo {
                chain_id,
                genesis_hash,
                height: Height(h),
                last_block_hash: last.into(),
                last_time,
                last_validator_set: a,
                validator_set: b,
            },
        )
}

fn vote() -> impl Strategy<Value = CommitVote> {
    (text(), any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(
        |(chain_id, height, round, block_hash)| CommitVote {
            chain_id,
            height: Height(height),
            round: Round(round),
            block_hash: BlockHash(block_hash),
        },
    )
}

fn proof() -> impl Strategy<Value = InclusionProof> {
    (
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(hash(), 0..6),
    )
        .prop_map(|(index, tree_size, path)| InclusionProof {
            index,
            tree_size,
            path,
        })
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = encoding::encode(value);
    let back: T = encoding::decode(&bytes).expect("canonical bytes decode");
    assert_eq!(&back, value);
    assert_eq!(encoding::encode(&back), bytes);
    // Trailing bytes are refused.
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        encoding::decode::<T>(&longer),
        Err(DecodeError::TrailingBytes(1))
    );
}

/// Decoding arbitrary bytes returns an error or a value whose encoding is
/// exactly those bytes; it never panics.
fn never_panics<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    if let Ok(value) = encoding::decode::<T>(bytes) {
        assert_eq!(encoding::encode(&value), bytes);
    }
}

/// Flip one byte of a valid encoding: the decoder must not panic.
fn mutated<T: Serialize + DeserializeOwned>(value: &T, position: usize, xor: u8) {
    let mut bytes = encoding::encode(value);
    if bytes.is_empty() {
        return;
    }
    let i = position % bytes.len();
    bytes[i] ^= xor.max(1);
    never_panics::<T>(&bytes);
    bytes.truncate(i);
    never_panics::<T>(&bytes);
}

macro_rules! round_trips {
    ($($name:ident: $strategy:expr, $ty:ty;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            $(
                #[test]
                fn $name(value in $strategy, position in any::<usize>(), xor in any::<u8>(),
                         random in prop::collection::vec(any::<u8>(), 0..256)) {
                    round_trip::<$ty>(&value);
                    mutated::<$ty>(&value, position, xor);
                    never_panics::<$ty>(&random);
                }
            )*
        }
    };
}

round_trips! {
    signed_transaction_round_trips: signed_tx(), SignedTransaction;
    tx_body_round_trips: body(), TxBody;
    sealed_tx_body_round_trips: sealed_body(), TxBody;
    header_round_trips: header(), Header;
    block_round_trips: block(), Block;
    certificate_round_trips: certificate(), CommitCertificate;
    commit_vote_round_trips: vote(), CommitVote;
    genesis_round_trips: genesis(), Genesis;
    validator_set_round_trips: validator_set(), ValidatorSet;
    document_event_round_trips: event(), DocumentEvent;
    document_round_trips: document(), Document;
    member_round_trips: member(), Member;
    department_round_trips: department_record(), Department;
    proposal_round_trips: proposal(), Proposal;
    chain_info_round_trips: chain_info(), ChainInfo;
    inclusion_proof_round_trips: proof(), InclusionProof;
    parameters_round_trips: params(), Parameters;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn json_round_trips_for_blocks_and_genesis(b in block(), g in genesis()) {
        let text = serde_json::to_string(&b).unwrap();
        prop_assert_eq!(serde_json::from_str::<Block>(&text).unwrap(), b);
        let text = serde_json::to_string(&g).unwrap();
        prop_assert_eq!(serde_json::from_str::<Genesis>(&text).unwrap(), g);
    }

    #[test]
    fn sealed_bodies_round_trip_through_json_with_sealed_text_as_hex(b in sealed_body()) {
        let text = serde_json::to_string(&b).unwrap();
        prop_assert_eq!(serde_json::from_str::<TxBody>(&text).unwrap(), b);
    }

    #[test]
    fn random_text_never_panics_the_genesis_parsers(text in ".{0,300}") {
        let _ = Genesis::from_toml_str(&text);
        let _ = Genesis::from_json_str(&text);
    }
}

#[test]
fn overlong_varint_is_refused_as_not_canonical() {
    // Nonce 1 as the two-byte varint 0x81 0x00 instead of 0x01.
    let tx = custody_ledger::testkit::Signer::new(custody_ledger::testkit::seed_key("a"), "c")
        .sign(TxBody::ApproveChange {
            proposal: ProposalId([0; 32]),
        });
    let bytes = encoding::encode(&tx);
    // format_version (1 byte: 0x01), chain id (len 0x01, 'c'), signer (32).
    let nonce_at = 1 + 2 + 32;
    assert_eq!(bytes[nonce_at], 0x01);
    let mut overlong = bytes[..nonce_at].to_vec();
    overlong.extend_from_slice(&[0x81, 0x00]);
    overlong.extend_from_slice(&bytes[nonce_at + 1..]);
    assert_eq!(
        encoding::decode::<SignedTransaction>(&overlong),
        Err(DecodeError::NotCanonical)
    );
}

#[test]
fn ids_with_bad_syntax_are_refused_when_decoded() {
    let bytes = encoding::encode(&"Not A Slug".to_string());
    assert!(encoding::decode::<DepartmentId>(&bytes).is_err());
    let bytes = encoding::encode(&"".to_string());
    assert!(encoding::decode::<DocumentId>(&bytes).is_err());
}

#[test]
fn hex_in_json_is_lowercase_and_uppercase_is_refused() {
    let h = Hash32([0xab; 32]);
    let text = serde_json::to_string(&h).unwrap();
    assert_eq!(text, format!("\"{}\"", "ab".repeat(32)));
    assert!(serde_json::from_str::<Hash32>(&text.to_uppercase()).is_err());
}

#[test]
fn classification_orders_public_internal_confidential_secret() {
    use Classification::*;
    assert!(Public < Internal && Internal < Confidential && Confidential < Secret);
}

#[test]
fn genesis_toml_round_trips_and_keeps_its_hash() {
    let g = custody_ledger::testkit::Federation::new(4, "custody-test").genesis;
    let text = g.to_toml_string().unwrap();
    let back = Genesis::from_toml_str(&text).unwrap();
    assert_eq!(back, g);
    assert_eq!(back.hash(), g.hash());
    let json = serde_json::to_string(&g).unwrap();
    assert_eq!(Genesis::from_json_str(&json).unwrap().hash(), g.hash());
}

#[test]
fn a_genesis_file_is_read_by_its_content_whatever_its_name() {
    let g = custody_ledger::testkit::Federation::new(2, "custody-test").genesis;
    let dir = tempfile::tempdir().unwrap();
    // The ceremony's TOML under the node's default name, and JSON under a
    // TOML name: both are the same genesis.
    let toml_as_json = dir.path().join("genesis.json");
    std::fs::write(&toml_as_json, g.to_toml_string().unwrap()).unwrap();
    let json_as_toml = dir.path().join("genesis.toml");
    std::fs::write(&json_as_toml, g.to_json_string().unwrap()).unwrap();
    assert_eq!(Genesis::load(&toml_as_json).unwrap().hash(), g.hash());
    assert_eq!(Genesis::load(&json_as_toml).unwrap().hash(), g.hash());
}

#[test]
fn genesis_with_broken_rules_is_refused_with_a_reason() {
    use custody_ledger::genesis::GenesisError;
    let mut g = custody_ledger::testkit::Federation::new(2, "custody-test").genesis;
    g.departments[1].id = g.departments[0].id.clone();
    let text = g.to_toml_string().unwrap();
    assert!(matches!(
        Genesis::from_toml_str(&text),
        Err(GenesisError::DuplicateDepartment(_))
    ));
    let mut g = custody_ledger::testkit::Federation::new(2, "custody-test").genesis;
    g.departments[0].admins.clear();
    assert!(matches!(g.validate(), Err(GenesisError::NoAdmin(_))));
    let mut g = custody_ledger::testkit::Federation::new(2, "custody-test").genesis;
    g.chain_id = "has space".into();
    assert!(matches!(g.validate(), Err(GenesisError::BadChainId)));
}

proptest! {
    /// The id computed from a transaction's canonical bytes is its id.
    #[test]
    fn the_id_read_with_the_bytes_is_the_transactions_id(tx in signed_tx()) {
        let (decoded, id) = SignedTransaction::from_bytes_with_id(&tx.to_bytes()).expect("decodes");
        prop_assert_eq!(&decoded, &tx);
        prop_assert_eq!(id, tx.id());
        prop_assert_eq!(SignedTransaction::id_of_encoded(&tx.to_bytes()), tx.id());
    }
}

#[test]
fn amend_reason_redaction_is_appended_so_earlier_reasons_keep_their_bytes() {
    let encoded = |reason: AmendReason| postcard::to_allocvec(&reason).expect("encodes");
    assert_eq!(encoded(AmendReason::Correction), vec![0]);
    assert_eq!(encoded(AmendReason::FormatMigration), vec![1]);
    assert_eq!(encoded(AmendReason::Redaction), vec![2]);
    assert_eq!(
        postcard::from_bytes::<AmendReason>(&[2]).expect("decodes"),
        AmendReason::Redaction
    );
    assert_eq!(
        serde_json::to_value(AmendReason::Redaction).expect("json"),
        serde_json::json!("redaction")
    );
    assert!(postcard::from_bytes::<AmendReason>(&[3]).is_err());
}
