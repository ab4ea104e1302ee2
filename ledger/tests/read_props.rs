//! Property test of read accounting over random read sequences: members
//! of several departments ask for documents under new, reused, foreign or
//! missing access records, at their own node or another department's, some
//! copies damaged. A serving node is modelled as the node's read path does
//! it (`node/src/api_documents.rs`): the ledger's read rule decides, a
//! used-record set claims, a damaged copy gives the claim back, and every
//! outcome is attested by the serving department's node key and committed.
//! Whatever happens, the ciphertext downloads that succeeded equal the
//! committed `served` attestations, per member and document; no record
//! serves twice; every refusal is a committed denial.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use custody_ledger::reads::{ReadAccount, ReadOutcome, ReadRequest, SignedReadRequest};
use custody_ledger::state::{check_read, CommittedAccess, ReadQuestion};
use custody_ledger::testkit::{department, seed_key, Signer};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::*;
use proptest::prelude::*;

const READERS: [&str; 5] = ["ca-clerk", "ca-low", "ss-clerk", "he-clerk", "fi-clerk"];
const DEPTS: [&str; 4] = ["civil-affairs", "social-security", "health", "finance"];
const DOCS: [&str; 3] = ["doc-a", "doc-b", "doc-c"];

#[derive(Debug, Clone, Copy)]
enum Record {
    /// Record a new access first (committed if the ledger allows it).
    New,
    /// Name the member's last record on this document.
    Reuse,
    /// Name another member's last record.
    Foreign,
    /// Name none.
    Missing,
}

#[derive(Debug, Clone)]
struct Read {
    reader: usize,
    doc: usize,
    record: Record,
    /// Ask another department's node instead of the reader's own.
    elsewhere: bool,
    /// The serving node's copy is damaged.
    damaged: bool,
}

fn read() -> impl Strategy<Value = Read> {
    let record = prop_oneof![
        5 => Just(Record::New),
        3 => Just(Record::Reuse),
        1 => Just(Record::Foreign),
        1 => Just(Record::Missing),
    ];
    (
        0..READERS.len(),
        0..DOCS.len(),
        record,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(reader, doc, record, elsewhere, damaged)| Read {
            reader,
            doc,
            record,
            elsewhere,
            damaged,
        })
}

struct Node {
    signer: Signer,
    used: BTreeSet<TxId>,
}

fn department_of(w: &World, reader: &str) -> String {
    w.chain.state.members[&w.signers[reader].public()]
        .department
        .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn successful_downloads_equal_committed_served_records(reads in prop::collection::vec(read(), 1..40)) {
        let mut w = World::new();
        // doc-a internal and doc-b confidential, kept by civil affairs,
        // doc-b granted to social security; doc-c secret, kept by health
        // and offered to finance (whose clerk may inspect it).
        for (id, who, dept, class) in [
            ("doc-a", "ca-clerk", "civil-affairs", Classification::Internal),
            ("doc-b", "ca-clerk", "civil-affairs", Classification::Confidential),
            ("doc-c", "he-clerk", "health", Classification::Secret),
        ] {
            let body = w.register_body(id, dept, class, Retention::Years(10));
            w.ok(who, body);
        }
        let until = Timestamp(w.time().0 + 10_000_000);
        let grant = w.grant_body("doc-b", "social-security", until);
        w.ok("ca-clerk", grant);
        let offer = w.offer_body("doc-c", "finance", Some(until));
        w.ok("he-clerk", offer);

        let mut nodes: BTreeMap<String, Node> = DEPTS
            .iter()
            .map(|slug| {
                (
                    slug.to_string(),
                    Node {
                        signer: Signer::new(seed_key(&format!("{slug}/node")), "custody-test"),
                        used: BTreeSet::new(),
                    },
                )
            })
            .collect();
        let mut account = ReadAccount::default();
        for (block, _) in &w.chain.blocks {
            account.add_block(block).expect("setup blocks add up");
        }
        let mut last_record: BTreeMap<(usize, usize), TxId> = BTreeMap::new();
        let mut downloads: BTreeMap<(PublicKey, DocumentId), u64> = BTreeMap::new();
        let mut refusals = 0usize;
        let mut request_nonce = 0u64;

        for r in &reads {
            let reader = READERS[r.reader];
            let id = DOCS[r.doc];
            let member = w.signers[reader].public();
            let own = department_of(&w, reader);
            let serving = if r.elsewhere {
                DEPTS.iter().find(|d| **d != own).expect("another department").to_string()
            } else {
                own.clone()
            };
            let access_tx = match r.record {
                Record::New => {
                    let body = w.access_body(id, "case file");
                    let signer = w.signer(reader).clone();
                    let tx = signer.sign_with_nonce(body, signer.next_nonce);
                    let block = w.chain.build(vec![tx.clone()]);
                    match w.chain.apply(block.clone()) {
                        Ok(_) => {
                            w.signer(reader).next_nonce += 1;
                            account.add_block(&block).expect("blocks add up");
                            last_record.insert((r.reader, r.doc), tx.id());
                            Some(tx.id())
                        }
                        // No right to record: the request names nothing.
                        Err(_) => None,
                    }
                }
                Record::Reuse => last_record.get(&(r.reader, r.doc)).copied(),
                Record::Foreign => last_record
                    .iter()
                    .find(|((who, doc), _)| *who != r.reader && *doc == r.doc)
                    .map(|(_, id)| *id),
                Record::Missing => None,
            };
            let committed = access_tx.and_then(|tx_id| {
                w.chain.state.tx_locations.get(&tx_id).map(|location| {
                    let (block, _) = &w.chain.blocks[location.height.0 as usize - 1];
                    CommittedAccess {
                        tx_id,
                        transaction: block.transactions[location.index as usize].clone(),
                        height: location.height,
                    }
                })
            });
            let document = doc_id(id);
            let doc = w.doc(id);
            let node = nodes.get_mut(&serving).expect("node");
            let decision = check_read(
                &w.chain.state,
                &ReadQuestion {
                    member: &member,
                    document: &document,
                    ciphertext_sha256: &doc.ciphertext.sha256,
                    access: committed.as_ref(),
                    serving_department: &department(&serving),
                    access_used: access_tx.is_some_and(|tx| node.used.contains(&tx)),
                },
            );
            let outcome = match decision {
                Ok(permit) => {
                    prop_assert!(node.used.insert(permit.access_tx), "claimed twice");
                    if r.damaged {
                        node.used.remove(&permit.access_tx);
                        ReadOutcome::Failed {
                            access_tx: permit.access_tx,
                            member,
                            document: document.clone(),
                            bytes: 0,
                            reason: "this node's copy does not match the ciphertext fixity".into(),
                        }
                    } else {
                        *downloads.entry((member, document.clone())).or_default() += 1;
                        ReadOutcome::Served {
                            access_tx: permit.access_tx,
                            member,
                            document: document.clone(),
                            ciphertext_sha256: doc.ciphertext.sha256,
                            bytes: doc.ciphertext.size_bytes,
                        }
                    }
                }
                Err(refusal) => {
                    refusals += 1;
                    request_nonce += 1;
                    let key = seed_key(reader);
                    ReadOutcome::Denied {
                        request: SignedReadRequest::sign(
                            ReadRequest {
                                format_version: 1,
                                chain_id: "custody-test".into(),
                                member,
                                document: document.clone(),
                                ciphertext_sha256: doc.ciphertext.sha256,
                                access_tx,
                                time_ms: w.time().0,
                                nonce: request_nonce,
                            },
                            &key,
                        ),
                        code: refusal.code().to_string(),
                    }
                }
            };
            let attestation: SignedTransaction = node.signer.sign(TxBody::AttestRead {
                department: department(&serving),
                outcome,
            });
            let block = w.chain.build(vec![attestation]);
            prop_assert!(
                w.chain.apply(block.clone()).is_ok(),
                "an honest node's attestation was refused"
            );
            prop_assert!(account.add_block(&block).is_ok(), "attestations do not add up");
        }

        let mut served: BTreeMap<(PublicKey, DocumentId), u64> = BTreeMap::new();
        for read in &account.served {
            *served
                .entry((*read.outcome.member(), read.outcome.document().clone()))
                .or_default() += 1;
        }
        prop_assert_eq!(&served, &downloads);
        prop_assert_eq!(account.denied.len(), refusals);
        let records: BTreeSet<&TxId> = account
            .served
            .iter()
            .filter_map(|read| read.outcome.access_tx())
            .collect();
        prop_assert_eq!(records.len(), account.served.len(), "a record served twice");
    }
}
