//! Deterministic keys, a small federation and a block builder, for tests,
//! benches, examples and other crates' tests. Nothing here is used by the
//! ledger itself; keys derived from labels are for tests only.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;

use crate::block::Block;
use crate::certificate::{CommitCertificate, CommitSignature, CommitVote};
use crate::encoding;
use crate::genesis::Genesis;
use crate::records::{DepartmentKeys, NewDepartment, NewMember, Parameters};
use crate::state::{self, MemoryState, Refusal, StateChanges, StateView};
use crate::tx::{SignedTransaction, TxBody};
use crate::types::{
    Classification, DepartmentId, Height, Nonce, PublicKey, Role, Round, Timestamp, FORMAT_VERSION,
};

/// A signing key derived from a label: `SHA-256("custody-test-key/" || label)`.
pub fn seed_key(label: &str) -> SigningKey {
    let seed = encoding::sha256(format!("custody-test-key/{label}").as_bytes());
    SigningKey::from_bytes(&seed.0)
}

/// Department slugs used by the fixture, in order.
pub const DEPARTMENTS: [&str; 7] = [
    "civil-affairs",
    "social-security",
    "health",
    "finance",
    "public-security",
    "education",
    "service-centre",
];

/// Genesis time of the fixture: 2026-01-01T00:00:00Z.
pub const GENESIS_TIME_MS: u64 = 1_767_225_600_000;

/// A member's key and the next nonce it will use.
#[derive(Clone)]
pub struct Signer {
    pub key: SigningKey,
    pub next_nonce: u64,
    pub chain_id: String,
}

impl Signer {
    /// New signer whose first transaction has nonce 1.
    pub fn new(key: SigningKey, chain_id: &str) -> Self {
        Signer {
            key,
            next_nonce: 1,
            chain_id: chain_id.to_string(),
        }
    }
    /// The public key.
    pub fn public(&self) -> PublicKey {
        encoding::public_key_of(&self.key)
    }
    /// Sign `body` with the next nonce.
    pub fn sign(&mut self, body: TxBody) -> SignedTransaction {
        let tx = SignedTransaction::sign(body, &self.key, Nonce(self.next_nonce), &self.chain_id);
        self.next_nonce += 1;
        tx
    }
    /// Sign `body` with an explicit nonce, leaving the counter alone.
    pub fn sign_with_nonce(&self, body: TxBody, nonce: u64) -> SignedTransaction {
        SignedTransaction::sign(body, &self.key, Nonce(nonce), &self.chain_id)
    }
}

/// A federation of `n` departments with one validator and one admin each.
pub struct Federation {
    pub genesis: Genesis,
    pub validators: Vec<SigningKey>,
    /// Admin signer per department slug.
    pub admins: BTreeMap<String, Signer>,
}

impl Federation {
    /// Build a federation of `n` departments on chain `chain_id`: the
    /// slugs of [`DEPARTMENTS`] first, then `department-8`, `department-9`...
    pub fn new(n: usize, chain_id: &str) -> Self {
        let n = n.max(1);
        let slugs: Vec<String> = (0..n)
            .map(|i| match DEPARTMENTS.get(i) {
                Some(s) => s.to_string(),
                None => format!("department-{}", i + 1),
            })
            .collect();
        let mut departments = Vec::new();
        let mut validators = Vec::new();
        let mut admins = BTreeMap::new();
        for slug in &slugs {
            let validator = seed_key(&format!("{slug}/validator"));
            let admin = seed_key(&format!("{slug}/admin"));
            departments.push(NewDepartment {
                id: department(slug),
                name: slug.replace('-', " "),
                keys: DepartmentKeys {
                    validator_key: encoding::public_key_of(&validator),
                    node_key: encoding::public_key_of(&seed_key(&format!("{slug}/node"))),
                    encryption_key: PublicKey(
                        encoding::sha256(format!("{slug}/x25519").as_bytes()).0,
                    ),
                },
                voting_power: 1,
                admins: vec![NewMember {
                    key: encoding::public_key_of(&admin),
                    name: format!("{slug} admin"),
                    roles: vec![Role::Admin],
                    clearance: Classification::Secret,
                }],
            });
            validators.push(validator);
            admins.insert(slug.to_string(), Signer::new(admin, chain_id));
        }
        let genesis = Genesis {
            format_version: FORMAT_VERSION,
            chain_id: chain_id.to_string(),
            genesis_time: Timestamp(GENESIS_TIME_MS),
            parameters: Parameters::default(),
            departments,
        };
        Federation {
            genesis,
            validators,
            admins,
        }
    }

    /// Sign a certificate for `block` with every validator whose key is in
    /// `set_keys` (all of ours when `None`).
    pub fn certify(&self, block: &Block, round: Round) -> CommitCertificate {
        certify_with(&self.validators, &self.genesis.chain_id, block, round)
    }
}

/// Certificate for `block` signed by `validators`.
pub fn certify_with(
    validators: &[SigningKey],
    chain_id: &str,
    block: &Block,
    round: Round,
) -> CommitCertificate {
    let hash = block.hash();
    let vote = CommitVote::new(chain_id, block.header.height, round, hash);
    let signatures = validators
        .iter()
        .map(|k| CommitSignature {
            validator: encoding::public_key_of(k),
            signature: encoding::sign(k, encoding::tags::COMMIT_VOTE, &vote),
        })
        .collect();
    CommitCertificate::new(block.header.height, round, hash, signatures)
}

/// Department id from a slug known to be valid.
pub fn department(slug: &str) -> DepartmentId {
    match DepartmentId::new(slug) {
        Ok(id) => id,
        Err(e) => panic!("test department slug: {e}"),
    }
}

/// An in-memory chain that builds, certifies and applies blocks.
pub struct Chain {
    pub federation: Federation,
    pub state: MemoryState,
    pub last_certificate: Option<CommitCertificate>,
    /// Committed blocks with their certificates, in height order.
    pub blocks: Vec<(Block, CommitCertificate)>,
    /// Milliseconds between blocks.
    pub block_interval_ms: u64,
}

impl Chain {
    /// A fresh chain of `n` departments.
    pub fn new(n: usize) -> Self {
        Self::from_federation(Federation::new(n, "custody-test"))
    }

    /// A fresh chain from a federation (whose genesis may have been edited).
    pub fn from_federation(federation: Federation) -> Self {
        let state = MemoryState::from_genesis(&federation.genesis);
        Chain {
            federation,
            state,
            last_certificate: None,
            blocks: Vec::new(),
            block_interval_ms: 1000,
        }
    }

    /// Time the next block will carry.
    pub fn next_time(&self) -> Timestamp {
        let chain = self
            .state
            .chain
            .as_ref()
            .map(|c| c.last_time.0)
            .unwrap_or(0);
        Timestamp(chain + self.block_interval_ms)
    }

    /// Build the next block (not applied).
    pub fn build(&self, transactions: Vec<SignedTransaction>) -> Block {
        let proposer = encoding::public_key_of(&self.federation.validators[0]);
        match state::build_block(
            &self.state,
            transactions,
            self.next_time(),
            proposer,
            self.last_certificate.clone(),
        ) {
            Ok(block) => block,
            Err(e) => panic!("memory state cannot fail: {e}"),
        }
    }

    /// Apply `block`; on success certify and keep it.
    pub fn apply(&mut self, block: Block) -> Result<StateChanges, Refusal> {
        let changes = state::apply_block(&self.state, &block)?;
        let certificate = self.federation.certify(&block, Round(0));
        self.state.apply(changes.clone());
        self.last_certificate = Some(certificate.clone());
        self.blocks.push((block, certificate));
        Ok(changes)
    }

    /// Build and apply a block of these transactions.
    pub fn commit(
        &mut self,
        transactions: Vec<SignedTransaction>,
    ) -> Result<StateChanges, Refusal> {
        let block = self.build(transactions);
        self.apply(block)
    }

    /// Current height.
    pub fn height(&self) -> Height {
        self.state.chain().map(|c| c.height).unwrap_or(Height(0))
    }

    /// Admin signer of a department.
    pub fn admin(&mut self, slug: &str) -> &mut Signer {
        match self.federation.admins.get_mut(slug) {
            Some(s) => s,
            None => panic!("no admin for {slug}"),
        }
    }
}

/// Where a generated document is in its scripted lifecycle.
struct DocProgress {
    id: crate::types::DocumentId,
    stage: u8,
    custodian: usize,
    other: usize,
}

/// A realistic, deterministic workload: clerks of every department
/// register documents, offer them to another department, which accepts,
/// grants read access back, and both sides record reads. Each block
/// touches a document at most once, so every transaction names the
/// document's latest committed event.
pub struct Workload {
    pub chain: Chain,
    /// Clerks per department index.
    clerks: Vec<Vec<Signer>>,
    docs: std::collections::VecDeque<DocProgress>,
    next_doc: u64,
    rng: u64,
}

/// Clerks enrolled per department by [`Workload`].
pub const WORKLOAD_CLERKS_PER_DEPARTMENT: usize = 4;

impl Workload {
    /// `departments` departments; block 1 enrols the clerks.
    pub fn new(departments: usize, seed: u64) -> Self {
        let mut chain = Chain::new(departments.max(2));
        let chain_id = chain.federation.genesis.chain_id.clone();
        let slugs: Vec<String> = chain
            .federation
            .genesis
            .departments
            .iter()
            .map(|d| d.id.to_string())
            .collect();
        let mut clerks = Vec::new();
        let mut txs = Vec::new();
        for slug in &slugs {
            let mut these = Vec::new();
            for i in 0..WORKLOAD_CLERKS_PER_DEPARTMENT {
                let key = seed_key(&format!("{slug}/clerk-{i}"));
                let body = TxBody::EnrollMember {
                    member: encoding::public_key_of(&key),
                    department: department(slug),
                    name: format!("{slug} clerk {i}"),
                    roles: vec![Role::Clerk],
                    clearance: Classification::Secret,
                };
                txs.push(chain.admin(slug).sign(body));
                these.push(Signer::new(key, &chain_id));
            }
            clerks.push(these);
        }
        if let Err(e) = chain.commit(txs) {
            panic!("workload enrolment refused: {e}");
        }
        Workload {
            chain,
            clerks,
            docs: std::collections::VecDeque::new(),
            next_doc: 0,
            rng: seed | 1,
        }
    }

    fn random(&mut self, below: usize) -> usize {
        // xorshift64: deterministic and dependency-free.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % below as u64) as usize
    }

    fn clerk(&mut self, department: usize) -> &mut Signer {
        let i = self.random(WORKLOAD_CLERKS_PER_DEPARTMENT);
        &mut self.clerks[department][i]
    }

    /// The next block's transactions, about `n` of them.
    pub fn next_transactions(&mut self, n: usize) -> Vec<SignedTransaction> {
        use crate::types::{DocumentId, Fixity, Format, Retention, WrappedKey};
        let n = n.max(1);
        let departments = self.clerks.len();
        let time = self.chain.next_time();
        let mut txs = Vec::with_capacity(n);
        let registrations = (n / 5).max(1);
        let advance = n.saturating_sub(registrations).min(self.docs.len());
        let mut touched = Vec::with_capacity(advance);
        for _ in 0..advance {
            let Some(mut doc) = self.docs.pop_front() else {
                break;
            };
            let Some(state) = self.chain.state.documents.get(&doc.id).cloned() else {
                continue;
            };
            let previous_event = state.latest_event;
            let cipher = state.ciphertext.sha256;
            let (signer, body) = match doc.stage {
                0 => (
                    doc.custodian,
                    TxBody::OfferTransfer {
                        document: doc.id.clone(),
                        previous_event,
                        to: department(&self.slug(doc.other)),
                        wrapped_key: WrappedKey(vec![7; 80]),
                        expires_at: None,
                    },
                ),
                1 => (
                    doc.other,
                    TxBody::AcceptTransfer {
                        document: doc.id.clone(),
                        previous_event,
                        ciphertext_sha256: cipher,
                    },
                ),
                2 => (
                    doc.other,
                    TxBody::GrantAccess {
                        document: doc.id.clone(),
                        previous_event,
                        to: department(&self.slug(doc.custodian)),
                        wrapped_key: WrappedKey(vec![9; 80]),
                        expires_at: Timestamp(time.0 + 30 * 24 * 3600 * 1000),
                    },
                ),
                3 => (
                    doc.custodian,
                    TxBody::RecordAccess {
                        document: doc.id.clone(),
                        previous_event,
                        purpose: "verify a benefit claim".to_string(),
                        ciphertext_sha256: cipher,
                    },
                ),
                _ => (
                    doc.other,
                    TxBody::RecordAccess {
                        document: doc.id.clone(),
                        previous_event,
                        purpose: "answer a citizen request".to_string(),
                        ciphertext_sha256: cipher,
                    },
                ),
            };
            txs.push(self.clerk(signer).sign(body));
            doc.stage += 1;
            if doc.stage <= 4 {
                touched.push(doc);
            }
        }
        while txs.len() < n {
            let custodian = self.random(departments);
            let other = (custodian + 1 + self.random(departments - 1)) % departments;
            let number = self.next_doc;
            self.next_doc += 1;
            let slug = self.slug(custodian);
            let id = match DocumentId::new(format!("{slug}/2026/{number:08}")) {
                Ok(id) => id,
                Err(e) => panic!("generated document id: {e}"),
            };
            let body = TxBody::Register {
                document: id.clone(),
                title: format!("Household register extract {number}"),
                record_type: "household-register".to_string(),
                department: department(&slug),
                created: time,
                classification: Classification::Internal,
                retention: Retention::Years(30),
                format: Format {
                    mime: "application/pdf".to_string(),
                    pronom: Some("fmt/354".to_string()),
                },
                plaintext: Fixity {
                    sha256: encoding::sha256(id.as_str().as_bytes()),
                    size_bytes: 200_000 + number,
                },
                ciphertext: Fixity {
                    sha256: encoding::sha256(format!("{id}/cipher").as_bytes()),
                    size_bytes: 200_040 + number,
                },
                subject_tag: Some(encoding::sha256(format!("salt/{number}").as_bytes())),
                wrapped_key: WrappedKey(vec![5; 80]),
            };
            txs.push(self.clerk(custodian).sign(body));
            touched.push(DocProgress {
                id,
                stage: 0,
                custodian,
                other,
            });
        }
        // Documents wait one block between stages: the next stage names the
        // event this block creates.
        self.docs.extend(touched);
        txs
    }

    fn slug(&self, index: usize) -> String {
        self.chain.federation.genesis.departments[index]
            .id
            .to_string()
    }

    /// Generate, apply and keep the next block of about `n` transactions.
    pub fn step(&mut self, n: usize) -> Result<Block, Refusal> {
        let txs = self.next_transactions(n);
        let block = self.chain.build(txs);
        self.chain.apply(block.clone())?;
        Ok(block)
    }
}
