//! A small federation with members and documents, for the rule tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use custody_ledger::records::Document;
use custody_ledger::state::{Refusal, TxRefusal};
use custody_ledger::testkit::{department, seed_key, Chain, Federation, Signer};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::*;

pub struct World {
    pub chain: Chain,
    pub signers: BTreeMap<String, Signer>,
}

pub fn fixity(label: &str, size: u64) -> Fixity {
    Fixity {
        sha256: custody_ledger::encoding::sha256(label.as_bytes()),
        size_bytes: size,
    }
}

pub fn wrapped(label: &str) -> WrappedKey {
    WrappedKey(
        custody_ledger::encoding::sha256(label.as_bytes())
            .0
            .repeat(2),
    )
}

pub fn doc_id(s: &str) -> DocumentId {
    DocumentId::new(s).unwrap()
}

impl World {
    /// Four departments; members: `<dept>-admin` (secret), and
    /// `ca-clerk` (confidential), `ca-low` (clerk, internal),
    /// `ss-clerk`, `he-clerk` (secret), `he-auditor` (auditor, secret),
    /// `fi-clerk` (secret).
    pub fn new() -> World {
        Self::from_federation(Federation::new(4, "custody-test"))
    }

    pub fn from_federation(federation: Federation) -> World {
        let chain = Chain::from_federation(federation);
        let mut signers = BTreeMap::new();
        for (slug, s) in &chain.federation.admins {
            signers.insert(format!("{slug}-admin"), s.clone());
        }
        let mut world = World { chain, signers };
        let enroll = [
            (
                "ca-clerk",
                "civil-affairs",
                vec![Role::Clerk],
                Classification::Confidential,
            ),
            (
                "ca-low",
                "civil-affairs",
                vec![Role::Clerk],
                Classification::Internal,
            ),
            (
                "ss-clerk",
                "social-security",
                vec![Role::Clerk],
                Classification::Secret,
            ),
            (
                "he-clerk",
                "health",
                vec![Role::Clerk],
                Classification::Secret,
            ),
            (
                "he-auditor",
                "health",
                vec![Role::Auditor],
                Classification::Secret,
            ),
            (
                "fi-clerk",
                "finance",
                vec![Role::Clerk],
                Classification::Secret,
            ),
        ];
        let mut txs = Vec::new();
        for (name, dept, roles, clearance) in enroll {
            if !world.chain.federation.admins.contains_key(dept) {
                continue;
            }
            let key = seed_key(name);
            let body = TxBody::EnrollMember {
                member: custody_ledger::encoding::public_key_of(&key),
                department: department(dept),
                name: name.to_string(),
                roles,
                clearance,
            };
            txs.push(world.signer(&format!("{dept}-admin")).sign(body));
            world
                .signers
                .insert(name.to_string(), Signer::new(key, "custody-test"));
        }
        world.chain.commit(txs).expect("enrolment block applies");
        world
    }

    pub fn signer(&mut self, name: &str) -> &mut Signer {
        self.signers
            .get_mut(name)
            .unwrap_or_else(|| panic!("no signer {name}"))
    }

    /// Sign with the next nonce and commit in a block of its own.
    pub fn ok(&mut self, who: &str, body: TxBody) -> SignedTransaction {
        let tx = self.signer(who).sign(body);
        if let Err(e) = self.chain.commit(vec![tx.clone()]) {
            panic!("expected {who}'s transaction to apply, got: {e}");
        }
        tx
    }

    /// Sign with the next nonce without advancing it; expect a refusal.
    pub fn refused(&mut self, who: &str, body: TxBody) -> TxRefusal {
        let signer = self.signer(who).clone();
        let tx = signer.sign_with_nonce(body, signer.next_nonce);
        self.refused_tx(tx)
    }

    pub fn refused_tx(&mut self, tx: SignedTransaction) -> TxRefusal {
        let block = self.chain.build(vec![tx]);
        match self.chain.apply(block) {
            Err(Refusal::Transaction { reason, index, .. }) => {
                assert_eq!(index, 0);
                reason
            }
            Err(other) => panic!("expected a transaction refusal, got {other}"),
            Ok(_) => panic!("expected a refusal, but the transaction applied"),
        }
    }

    pub fn doc(&self, id: &str) -> Document {
        self.chain
            .state
            .documents
            .get(&doc_id(id))
            .cloned()
            .expect("document exists")
    }

    pub fn latest(&self, id: &str) -> EventHash {
        self.doc(id).latest_event
    }

    pub fn time(&self) -> Timestamp {
        self.chain.next_time()
    }

    pub fn register_body(
        &self,
        id: &str,
        dept: &str,
        classification: Classification,
        retention: Retention,
    ) -> TxBody {
        TxBody::Register {
            document: doc_id(id),
            title: format!("File {id}"),
            record_type: "birth-certificate".to_string(),
            department: department(dept),
            created: Timestamp(custody_ledger::testkit::GENESIS_TIME_MS),
            classification,
            retention,
            format: Format {
                mime: "application/pdf".to_string(),
                pronom: Some("fmt/276".to_string()),
            },
            plaintext: fixity(&format!("{id}/plain"), 1000),
            ciphertext: fixity(&format!("{id}/cipher"), 1040),
            subject_tag: None,
            wrapped_key: wrapped(&format!("{id}/{dept}")),
        }
    }

    /// `ca-clerk` registers an internal document `id` kept 10 years.
    pub fn register(&mut self, id: &str) {
        let body = self.register_body(
            id,
            "civil-affairs",
            Classification::Internal,
            Retention::Years(10),
        );
        self.ok("ca-clerk", body);
    }

    pub fn offer_body(&self, id: &str, to: &str, expires_at: Option<Timestamp>) -> TxBody {
        TxBody::OfferTransfer {
            document: doc_id(id),
            previous_event: self.latest(id),
            to: department(to),
            wrapped_key: wrapped(&format!("{id}/{to}")),
            expires_at,
        }
    }

    pub fn accept_body(&self, id: &str) -> TxBody {
        TxBody::AcceptTransfer {
            document: doc_id(id),
            previous_event: self.latest(id),
            ciphertext_sha256: self.doc(id).ciphertext.sha256,
        }
    }

    pub fn grant_body(&self, id: &str, to: &str, expires_at: Timestamp) -> TxBody {
        TxBody::GrantAccess {
            document: doc_id(id),
            previous_event: self.latest(id),
            to: department(to),
            wrapped_key: wrapped(&format!("{id}/{to}/grant")),
            expires_at,
        }
    }

    pub fn access_body(&self, id: &str, purpose: &str) -> TxBody {
        TxBody::RecordAccess {
            document: doc_id(id),
            previous_event: self.latest(id),
            purpose: purpose.to_string(),
            ciphertext_sha256: self.doc(id).ciphertext.sha256,
        }
    }

    pub fn dispose_body(&self, id: &str) -> TxBody {
        TxBody::Dispose {
            document: doc_id(id),
            previous_event: self.latest(id),
            reason: "retention elapsed".to_string(),
        }
    }

    /// Let block time advance by committing an empty block after `ms`.
    pub fn advance(&mut self, ms: u64) {
        let saved = self.chain.block_interval_ms;
        self.chain.block_interval_ms = ms;
        self.chain.commit(vec![]).expect("empty block applies");
        self.chain.block_interval_ms = saved;
    }
}
