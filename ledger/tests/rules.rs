//! One test per rule the state machine enforces, named after the rule.

mod common;

use common::*;
use custody_ledger::block::{check_block_time, BlockTimeError};
use custody_ledger::certificate::CertificateError;
use custody_ledger::encoding;
use custody_ledger::records::{
    DepartmentKeys, DocumentStatus, EventKind, NewDepartment, NewMember, Parameters,
};
use custody_ledger::state::{self, HeaderRefusal, Refusal, StateView, TxRefusal};
use custody_ledger::testkit::{certify_with, department, seed_key, Federation, Signer};
use custody_ledger::tx::{
    AmendReason, FixityResult, GovernanceChange, SignedTransaction, TxBody, TxPayload,
    TEXT_BYTES_MAX,
};
use custody_ledger::types::*;

const DAY_MS: u64 = 24 * 3600 * 1000;

fn enroll_body(member: PublicKey, dept: &str, roles: Vec<Role>) -> TxBody {
    TxBody::EnrollMember {
        member,
        department: department(dept),
        name: "New Member".to_string(),
        roles,
        clearance: Classification::Internal,
    }
}

fn fresh_key(label: &str) -> PublicKey {
    encoding::public_key_of(&seed_key(label))
}

fn new_department(slug: &str, validator_label: &str) -> NewDepartment {
    NewDepartment {
        id: department(slug),
        name: "Housing".to_string(),
        keys: DepartmentKeys {
            validator_key: fresh_key(validator_label),
            node_key: fresh_key(&format!("{slug}/node")),
            encryption_key: fresh_key(&format!("{slug}/x25519")),
        },
        voting_power: 1,
        admins: vec![NewMember {
            key: fresh_key(&format!("{slug}/admin")),
            name: "Housing admin".to_string(),
            roles: vec![Role::Admin],
            clearance: Classification::Secret,
        }],
    }
}

// ---------------------------------------------------------------- signer

#[test]
fn transaction_is_refused_when_format_version_is_unknown() {
    let mut w = World::new();
    let signer = w.signer("ca-clerk").clone();
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    // The version after the newest this build reads.
    let unknown = custody_ledger::tx::TX_FORMAT_VERSIONS
        .iter()
        .max()
        .copied()
        .unwrap_or(1)
        + 1;
    let payload = TxPayload {
        format_version: unknown,
        chain_id: "custody-test".to_string(),
        signer: signer.public(),
        nonce: Nonce(1),
        body: body.clone(),
    };
    let signature = encoding::sign(&signer.key, encoding::tags::TX_PAYLOAD, &payload);
    let r = w.refused_tx(SignedTransaction { payload, signature });
    assert_eq!(r, TxRefusal::UnsupportedFormatVersion(unknown));
    // Version 2 exists, but a version 1 kind does not travel in it.
    let payload = TxPayload {
        format_version: 2,
        chain_id: "custody-test".to_string(),
        signer: signer.public(),
        nonce: Nonce(1),
        body,
    };
    let signature = encoding::sign(&signer.key, encoding::tags::TX_PAYLOAD, &payload);
    let r = w.refused_tx(SignedTransaction { payload, signature });
    assert_eq!(
        r,
        TxRefusal::FormatVersionMismatch {
            kind: "register",
            required: 1,
            found: 2
        }
    );
}

#[test]
fn transaction_is_refused_when_chain_id_differs() {
    let mut w = World::new();
    let mut signer = w.signer("ca-clerk").clone();
    signer.chain_id = "another-chain".to_string();
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    let r = w.refused_tx(signer.sign(body));
    assert!(matches!(r, TxRefusal::WrongChainId { .. }), "{r}");
}

#[test]
fn transaction_is_refused_when_signature_is_bad() {
    let mut w = World::new();
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    let mut tx = w.signer("ca-clerk").clone().sign(body);
    tx.signature.0[10] ^= 1;
    assert_eq!(w.refused_tx(tx), TxRefusal::BadSignature);
}

#[test]
fn transaction_is_refused_when_nonce_is_not_the_next() {
    let mut w = World::new();
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    let replay = w.ok("ca-clerk", body);
    let r = w.refused_tx(replay);
    assert_eq!(
        r,
        TxRefusal::WrongNonce {
            expected: Nonce(2),
            found: Nonce(1)
        }
    );
}

#[test]
fn transaction_is_refused_when_signer_is_not_a_member() {
    let mut w = World::new();
    let stranger = Signer::new(seed_key("stranger"), "custody-test");
    w.signers.insert("stranger".into(), stranger);
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    assert!(matches!(
        w.refused("stranger", body),
        TxRefusal::UnknownSigner(_)
    ));
}

#[test]
fn transaction_is_refused_when_signer_was_revoked() {
    let mut w = World::new();
    let member = w.signer("ca-clerk").public();
    w.ok(
        "civil-affairs-admin",
        TxBody::RevokeMember {
            member,
            reason: "left the department".into(),
        },
    );
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    assert!(matches!(
        w.refused("ca-clerk", body),
        TxRefusal::SignerRevoked(_)
    ));
}

#[test]
fn transaction_is_refused_when_signers_department_was_removed() {
    let mut w = World::new();
    let change = GovernanceChange::RemoveDepartment {
        department: department("finance"),
    };
    w.ok("civil-affairs-admin", TxBody::ProposeChange { change });
    let id = *w.chain.state.proposals.keys().next().unwrap();
    w.ok("health-admin", TxBody::ApproveChange { proposal: id });
    w.ok(
        "social-security-admin",
        TxBody::ApproveChange { proposal: id },
    );
    let body = TxBody::RecordFixityCheck {
        document: doc_id("none"),
        previous_event: EventHash::ZERO,
        ciphertext_sha256: Hash32::ZERO,
        result: FixityResult::Intact,
        note: String::new(),
    };
    assert_eq!(
        w.refused("fi-clerk", body),
        TxRefusal::SignerDepartmentRemoved(department("finance"))
    );
}

// ------------------------------------------------------------ membership

#[test]
fn enroll_is_refused_when_signer_is_not_admin() {
    let mut w = World::new();
    let body = enroll_body(fresh_key("new"), "civil-affairs", vec![Role::Clerk]);
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::MissingRole {
            needed: Role::Admin
        }
    );
}

#[test]
fn enroll_is_refused_for_another_department() {
    let mut w = World::new();
    let body = enroll_body(fresh_key("new"), "health", vec![Role::Clerk]);
    assert!(matches!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::WrongDepartment { .. }
    ));
}

#[test]
fn enroll_is_refused_when_key_is_already_enrolled() {
    let mut w = World::new();
    let existing = w.signer("he-clerk").public();
    let body = enroll_body(existing, "civil-affairs", vec![Role::Clerk]);
    assert_eq!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::MemberAlreadyEnrolled(existing)
    );
}

#[test]
fn enroll_is_refused_when_roles_are_empty_or_repeated() {
    let mut w = World::new();
    let body = enroll_body(fresh_key("new"), "civil-affairs", vec![]);
    assert_eq!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::InvalidRoles
    );
    let body = enroll_body(
        fresh_key("new"),
        "civil-affairs",
        vec![Role::Clerk, Role::Clerk],
    );
    assert_eq!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::InvalidRoles
    );
}

#[test]
fn enroll_is_refused_for_a_weak_key() {
    let mut w = World::new();
    // The identity point: a small-order key that verifies forged signatures.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let body = enroll_body(PublicKey(weak), "civil-affairs", vec![Role::Clerk]);
    assert_eq!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::WeakKey(PublicKey(weak))
    );
}

#[test]
fn required_text_is_refused_when_empty() {
    let mut w = World::new();
    let body = TxBody::EnrollMember {
        member: fresh_key("new"),
        department: department("civil-affairs"),
        name: String::new(),
        roles: vec![Role::Clerk],
        clearance: Classification::Public,
    };
    assert_eq!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::EmptyField("name")
    );
}

#[test]
fn text_longer_than_the_limit_is_refused() {
    let mut w = World::new();
    let mut body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    if let TxBody::Register { title, .. } = &mut body {
        *title = "x".repeat(TEXT_BYTES_MAX + 1);
    }
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::TextTooLong {
            field: "title",
            max: TEXT_BYTES_MAX
        }
    );
}

#[test]
fn update_is_refused_for_an_unknown_member() {
    let mut w = World::new();
    let body = TxBody::UpdateMember {
        member: fresh_key("nobody"),
        roles: vec![Role::Clerk],
        clearance: Classification::Public,
    };
    assert!(matches!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::UnknownMember(_)
    ));
}

#[test]
fn update_is_refused_for_a_revoked_member() {
    let mut w = World::new();
    let member = w.signer("ca-low").public();
    let revoke = TxBody::RevokeMember {
        member,
        reason: "moved".into(),
    };
    w.ok("civil-affairs-admin", revoke.clone());
    let body = TxBody::UpdateMember {
        member,
        roles: vec![Role::Clerk],
        clearance: Classification::Secret,
    };
    assert_eq!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::MemberRevoked(member)
    );
    assert_eq!(
        w.refused("civil-affairs-admin", revoke),
        TxRefusal::MemberRevoked(member)
    );
}

#[test]
fn update_changes_roles_and_clearance() {
    let mut w = World::new();
    let member = w.signer("ca-low").public();
    w.ok(
        "civil-affairs-admin",
        TxBody::UpdateMember {
            member,
            roles: vec![Role::Clerk, Role::Auditor],
            clearance: Classification::Secret,
        },
    );
    let m = w.chain.state.members.get(&member).unwrap();
    assert_eq!(m.clearance, Classification::Secret);
    assert!(m.has_role(Role::Auditor));
}

// ------------------------------------------------------------ governance

#[test]
fn proposal_is_refused_when_signer_is_not_admin() {
    let mut w = World::new();
    let change = GovernanceChange::ChangeParameters(Parameters::default());
    assert_eq!(
        w.refused("ca-clerk", TxBody::ProposeChange { change }),
        TxRefusal::MissingRole {
            needed: Role::Admin
        }
    );
}

#[test]
fn add_department_is_refused_when_it_exists() {
    let mut w = World::new();
    let change = GovernanceChange::AddDepartment(new_department("health", "v-new"));
    assert_eq!(
        w.refused("civil-affairs-admin", TxBody::ProposeChange { change }),
        TxRefusal::DepartmentExists(department("health"))
    );
}

#[test]
fn add_department_is_refused_when_validator_key_is_in_use() {
    let mut w = World::new();
    let mut nd = new_department("housing", "v-new");
    nd.keys.validator_key = encoding::public_key_of(&w.chain.federation.validators[1]);
    let change = GovernanceChange::AddDepartment(nd);
    assert!(matches!(
        w.refused("civil-affairs-admin", TxBody::ProposeChange { change }),
        TxRefusal::ValidatorKeyInUse(_)
    ));
}

#[test]
fn add_department_is_refused_with_a_weak_validator_key() {
    let mut w = World::new();
    let mut nd = new_department("housing", "v-new");
    let mut weak = [0u8; 32];
    weak[0] = 1;
    nd.keys.validator_key = PublicKey(weak);
    let change = GovernanceChange::AddDepartment(nd);
    assert_eq!(
        w.refused("civil-affairs-admin", TxBody::ProposeChange { change }),
        TxRefusal::WeakKey(PublicKey(weak))
    );
}

#[test]
fn add_department_is_refused_with_zero_voting_power() {
    let mut w = World::new();
    let mut nd = new_department("housing", "v-new");
    nd.voting_power = 0;
    let change = GovernanceChange::AddDepartment(nd);
    assert_eq!(
        w.refused("civil-affairs-admin", TxBody::ProposeChange { change }),
        TxRefusal::ZeroVotingPower
    );
}

#[test]
fn add_department_is_refused_without_an_admin() {
    let mut w = World::new();
    let mut nd = new_department("housing", "v-new");
    nd.admins[0].roles = vec![Role::Clerk];
    let change = GovernanceChange::AddDepartment(nd);
    assert_eq!(
        w.refused("civil-affairs-admin", TxBody::ProposeChange { change }),
        TxRefusal::NoAdmin
    );
}

#[test]
fn removing_a_department_that_holds_documents_is_refused() {
    let mut w = World::new();
    w.register("d1");
    let remove = GovernanceChange::RemoveDepartment {
        department: department("civil-affairs"),
    };
    assert_eq!(
        w.refused(
            "health-admin",
            TxBody::ProposeChange {
                change: remove.clone()
            }
        ),
        TxRefusal::DepartmentHoldsDocuments {
            department: department("civil-affairs"),
            count: 1
        }
    );
    // Once the document moved to health, civil affairs holds none.
    w.ok("ca-clerk", w.offer_body("d1", "health", None));
    w.ok("he-clerk", w.accept_body("d1"));
    let held = |w: &World, d: &str| w.chain.state.departments[&department(d)].documents_held;
    assert_eq!((held(&w, "civil-affairs"), held(&w, "health")), (0, 1));
    w.ok("health-admin", TxBody::ProposeChange { change: remove });
}

#[test]
fn removing_the_last_department_is_refused() {
    let mut w = World::from_federation(Federation::new(1, "custody-test"));
    let change = GovernanceChange::RemoveDepartment {
        department: department("civil-affairs"),
    };
    assert_eq!(
        w.refused("civil-affairs-admin", TxBody::ProposeChange { change }),
        TxRefusal::LastDepartment
    );
}

#[test]
fn parameter_change_is_refused_when_out_of_range() {
    let mut w = World::new();
    let change = GovernanceChange::ChangeParameters(Parameters {
        max_block_txs: 0,
        ..Parameters::default()
    });
    assert_eq!(
        w.refused("civil-affairs-admin", TxBody::ProposeChange { change }),
        TxRefusal::BadParameter("max_block_txs")
    );
}

#[test]
fn approval_is_refused_for_an_unknown_proposal() {
    let mut w = World::new();
    let proposal = ProposalId([7; 32]);
    assert_eq!(
        w.refused("health-admin", TxBody::ApproveChange { proposal }),
        TxRefusal::UnknownProposal(proposal)
    );
}

#[test]
fn approval_is_refused_when_department_already_approved() {
    let mut w = World::new();
    let change = GovernanceChange::ChangeParameters(Parameters::default());
    w.ok("civil-affairs-admin", TxBody::ProposeChange { change });
    let proposal = *w.chain.state.proposals.keys().next().unwrap();
    assert_eq!(
        w.refused("civil-affairs-admin", TxBody::ApproveChange { proposal }),
        TxRefusal::AlreadyApproved(department("civil-affairs"))
    );
}

#[test]
fn approval_is_refused_when_proposal_already_executed() {
    let mut w = World::new();
    let change = GovernanceChange::ChangeParameters(Parameters::default());
    w.ok("civil-affairs-admin", TxBody::ProposeChange { change });
    let proposal = *w.chain.state.proposals.keys().next().unwrap();
    w.ok("health-admin", TxBody::ApproveChange { proposal });
    w.ok("finance-admin", TxBody::ApproveChange { proposal });
    assert_eq!(
        w.refused("social-security-admin", TxBody::ApproveChange { proposal }),
        TxRefusal::ProposalAlreadyExecuted(proposal)
    );
}

#[test]
fn change_executes_only_with_more_than_two_thirds_of_voting_power() {
    let mut w = World::new();
    let change = GovernanceChange::AddDepartment(new_department("housing", "v-housing"));
    w.ok("civil-affairs-admin", TxBody::ProposeChange { change });
    let proposal = *w.chain.state.proposals.keys().next().unwrap();
    w.ok("health-admin", TxBody::ApproveChange { proposal });
    // 2 of 4 is not more than 2/3.
    let housing = department("housing");
    assert!(!w.chain.state.departments.contains_key(&housing));
    let set_before = w.chain.state.chain().unwrap().validator_set.clone();
    w.ok("finance-admin", TxBody::ApproveChange { proposal });
    // 3 of 4 is: executed at this height, in force from the next.
    let executed_at = w.chain.height();
    assert!(w.chain.state.departments.contains_key(&housing));
    let chain = w.chain.state.chain().unwrap();
    assert_eq!(chain.last_validator_set, set_before);
    assert_eq!(chain.validator_set.validators.len(), 5);
    assert_eq!(
        w.chain.state.validator_sets.get(&executed_at.next()),
        Some(&chain.validator_set)
    );
    // The next block must name the new set, and its certificate for the
    // block that executed the change is checked against the old set.
    w.chain.commit(vec![]).unwrap();
    let header = &w.chain.blocks.last().unwrap().0.header;
    assert_eq!(header.validator_set_hash, chain.validator_set.hash());
    // The new department's admin can sign from now on.
    assert!(w
        .chain
        .state
        .members
        .contains_key(&fresh_key("housing/admin")));
}

#[test]
fn rotating_keys_changes_the_validator_set_from_the_next_height() {
    let mut w = World::new();
    let keys = DepartmentKeys {
        validator_key: fresh_key("finance/validator-2"),
        node_key: fresh_key("finance/node-2"),
        encryption_key: fresh_key("finance/x25519-2"),
    };
    let change = GovernanceChange::RotateDepartmentKeys {
        department: department("finance"),
        keys: keys.clone(),
    };
    w.ok("finance-admin", TxBody::ProposeChange { change });
    let proposal = *w.chain.state.proposals.keys().next().unwrap();
    w.ok("health-admin", TxBody::ApproveChange { proposal });
    w.ok("civil-affairs-admin", TxBody::ApproveChange { proposal });
    let set = w.chain.state.chain().unwrap().validator_set;
    assert!(set.power_of(&keys.validator_key).is_some());
}

// --------------------------------------------------------------- archive

#[test]
fn register_is_refused_when_signer_is_not_clerk() {
    let mut w = World::new();
    let body = w.register_body("d1", "health", Classification::Public, Retention::Years(1));
    assert_eq!(
        w.refused("he-auditor", body),
        TxRefusal::MissingRole {
            needed: Role::Clerk
        }
    );
}

#[test]
fn register_is_refused_for_another_department() {
    let mut w = World::new();
    let body = w.register_body("d1", "health", Classification::Public, Retention::Years(1));
    assert!(matches!(
        w.refused("ca-clerk", body),
        TxRefusal::WrongDepartment { .. }
    ));
}

#[test]
fn register_is_refused_when_clearance_is_below_classification() {
    let mut w = World::new();
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Confidential,
        Retention::Years(1),
    );
    assert_eq!(
        w.refused("ca-low", body),
        TxRefusal::ClearanceTooLow {
            clearance: Classification::Internal,
            classification: Classification::Confidential
        }
    );
}

#[test]
fn register_is_refused_when_creation_date_is_after_block_time() {
    let mut w = World::new();
    let mut body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    let future = Timestamp(w.time().0 + 1);
    if let TxBody::Register { created, .. } = &mut body {
        *created = future;
    }
    assert!(matches!(
        w.refused("ca-clerk", body),
        TxRefusal::CreatedInFuture { .. }
    ));
}

#[test]
fn register_is_refused_when_document_exists() {
    let mut w = World::new();
    w.register("d1");
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::DocumentAlreadyRegistered(doc_id("d1"))
    );
}

#[test]
fn wrapped_key_is_refused_when_empty_or_too_long() {
    let mut w = World::new();
    for bad in [vec![], vec![1u8; WRAPPED_KEY_BYTES_MAX + 1]] {
        let mut body = w.register_body(
            "d1",
            "civil-affairs",
            Classification::Public,
            Retention::Years(1),
        );
        if let TxBody::Register { wrapped_key, .. } = &mut body {
            *wrapped_key = WrappedKey(bad);
        }
        assert!(matches!(
            w.refused("ca-clerk", body),
            TxRefusal::WrappedKeyInvalid { .. }
        ));
    }
}

#[test]
fn document_transaction_is_refused_for_an_unknown_document() {
    let mut w = World::new();
    let body = TxBody::CancelTransfer {
        document: doc_id("missing"),
        previous_event: EventHash::ZERO,
    };
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::UnknownDocument(doc_id("missing"))
    );
}

#[test]
fn document_transaction_is_refused_when_previous_event_is_stale() {
    let mut w = World::new();
    w.register("d1");
    let stale = w.latest("d1");
    w.ok("ca-clerk", w.access_body("d1", "answer a citizen request"));
    let body = TxBody::RecordAccess {
        document: doc_id("d1"),
        previous_event: stale,
        purpose: "again".into(),
        ciphertext_sha256: w.doc("d1").ciphertext.sha256,
    };
    assert!(matches!(
        w.refused("ca-clerk", body),
        TxRefusal::StalePreviousEvent { .. }
    ));
}

#[test]
fn document_transaction_is_refused_after_disposal() {
    let mut w = World::new();
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Years(0),
    );
    w.ok("ca-clerk", body);
    w.ok("civil-affairs-admin", w.dispose_body("d1"));
    assert_eq!(w.doc("d1").status, DocumentStatus::Disposed);
    let body = w.access_body("d1", "look");
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::DocumentDisposed(doc_id("d1"))
    );
}

#[test]
fn document_transaction_is_refused_when_clearance_is_below_classification() {
    let mut w = World::new();
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Confidential,
        Retention::Years(1),
    );
    w.ok("ca-clerk", body);
    let body = w.access_body("d1", "look");
    assert!(matches!(
        w.refused("ca-low", body),
        TxRefusal::ClearanceTooLow { .. }
    ));
}

#[test]
fn offer_is_refused_when_document_is_in_transfer() {
    let mut w = World::new();
    w.register("d1");
    w.ok("ca-clerk", w.offer_body("d1", "health", None));
    let body = w.offer_body("d1", "finance", None);
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::DocumentInTransfer(doc_id("d1"))
    );
}

#[test]
fn offer_is_refused_when_signer_is_not_custodian() {
    let mut w = World::new();
    w.register("d1");
    let body = w.offer_body("d1", "finance", None);
    assert!(matches!(
        w.refused("he-clerk", body),
        TxRefusal::NotCustodian { .. }
    ));
}

#[test]
fn offer_is_refused_to_the_custodian_itself() {
    let mut w = World::new();
    w.register("d1");
    let body = w.offer_body("d1", "civil-affairs", None);
    assert_eq!(w.refused("ca-clerk", body), TxRefusal::OfferToSelf);
}

#[test]
fn offer_is_refused_to_an_unknown_department() {
    let mut w = World::new();
    w.register("d1");
    let body = w.offer_body("d1", "housing", None);
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::UnknownDepartment(department("housing"))
    );
}

#[test]
fn offer_is_refused_when_expiry_is_not_in_the_future() {
    let mut w = World::new();
    w.register("d1");
    let now = w.time();
    let body = w.offer_body("d1", "health", Some(now));
    assert!(matches!(
        w.refused("ca-clerk", body),
        TxRefusal::ExpiryNotInFuture { .. }
    ));
}

#[test]
fn accept_is_refused_without_a_pending_offer() {
    let mut w = World::new();
    w.register("d1");
    let body = w.accept_body("d1");
    assert_eq!(
        w.refused("he-clerk", body),
        TxRefusal::NoPendingOffer(doc_id("d1"))
    );
}

#[test]
fn accept_is_refused_by_a_department_the_offer_is_not_for() {
    let mut w = World::new();
    w.register("d1");
    w.ok("ca-clerk", w.offer_body("d1", "health", None));
    let body = w.accept_body("d1");
    assert!(matches!(
        w.refused("fi-clerk", body),
        TxRefusal::NotOfferRecipient { .. }
    ));
}

#[test]
fn accept_is_refused_after_the_offer_expired() {
    let mut w = World::new();
    w.register("d1");
    let expires = Timestamp(w.time().0 + 5_000);
    w.ok("ca-clerk", w.offer_body("d1", "health", Some(expires)));
    w.advance(10_000);
    let body = w.accept_body("d1");
    assert!(matches!(
        w.refused("he-clerk", body),
        TxRefusal::OfferExpired { .. }
    ));
    // A lapsed offer no longer blocks a new one.
    w.ok("ca-clerk", w.offer_body("d1", "finance", None));
}

#[test]
fn accept_is_refused_when_checked_fixity_differs() {
    let mut w = World::new();
    w.register("d1");
    w.ok("ca-clerk", w.offer_body("d1", "health", None));
    let body = TxBody::AcceptTransfer {
        document: doc_id("d1"),
        previous_event: w.latest("d1"),
        ciphertext_sha256: Hash32([9; 32]),
    };
    assert!(matches!(
        w.refused("he-clerk", body),
        TxRefusal::FixityMismatch { .. }
    ));
}

#[test]
fn grant_is_refused_to_the_custodian() {
    let mut w = World::new();
    w.register("d1");
    let body = w.grant_body("d1", "civil-affairs", Timestamp(w.time().0 + DAY_MS));
    assert_eq!(w.refused("ca-clerk", body), TxRefusal::GrantToCustodian);
}

#[test]
fn grant_is_refused_beyond_the_grant_limit() {
    let max = custody_ledger::records::GRANTS_PER_DOCUMENT_MAX;
    let n = max + 2;
    let mut w = World::from_federation(Federation::new(n, "custody-test"));
    w.register("d1");
    let expires = Timestamp(w.time().0 + 365 * DAY_MS);
    let slugs: Vec<String> = w
        .chain
        .federation
        .genesis
        .departments
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    // Departments 1..=max get a grant; the next one is one too many.
    for slug in &slugs[1..=max] {
        let body = w.grant_body("d1", slug, expires);
        w.ok("ca-clerk", body);
    }
    let body = w.grant_body("d1", &slugs[max + 1], expires);
    assert_eq!(w.refused("ca-clerk", body), TxRefusal::TooManyGrants(max));
}

#[test]
fn revoke_access_is_refused_when_there_is_no_grant() {
    let mut w = World::new();
    w.register("d1");
    let body = TxBody::RevokeAccess {
        document: doc_id("d1"),
        previous_event: w.latest("d1"),
        from: department("health"),
    };
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::NoSuchGrant(department("health"))
    );
}

#[test]
fn access_is_refused_without_custody_or_grant() {
    let mut w = World::new();
    w.register("d1");
    let body = w.access_body("d1", "curiosity");
    assert_eq!(
        w.refused("he-clerk", body),
        TxRefusal::NoAccessRight(department("health"))
    );
}

#[test]
fn access_is_allowed_to_the_recipient_of_a_live_offer_only() {
    let mut w = World::new();
    w.register("d1");
    let expires = Timestamp(w.time().0 + 5_000);
    w.ok("ca-clerk", w.offer_body("d1", "health", Some(expires)));
    // The receiving department opens it to check it before accepting...
    w.ok("he-clerk", w.access_body("d1", "check before accepting"));
    // ...but not once the offer lapsed.
    w.advance(10_000);
    let body = w.access_body("d1", "too late");
    assert_eq!(
        w.refused("he-clerk", body),
        TxRefusal::NoAccessRight(department("health"))
    );
}

#[test]
fn access_is_refused_when_the_grant_expired() {
    let mut w = World::new();
    w.register("d1");
    let expires = Timestamp(w.time().0 + 5_000);
    w.ok("ca-clerk", w.grant_body("d1", "health", expires));
    w.ok("he-clerk", w.access_body("d1", "case 12"));
    w.advance(10_000);
    let body = w.access_body("d1", "case 12 again");
    assert_eq!(
        w.refused("he-clerk", body),
        TxRefusal::NoAccessRight(department("health"))
    );
}

#[test]
fn access_is_refused_after_the_grant_is_revoked() {
    let mut w = World::new();
    w.register("d1");
    w.ok(
        "ca-clerk",
        w.grant_body("d1", "health", Timestamp(w.time().0 + DAY_MS)),
    );
    let revoke = TxBody::RevokeAccess {
        document: doc_id("d1"),
        previous_event: w.latest("d1"),
        from: department("health"),
    };
    w.ok("ca-clerk", revoke);
    let body = w.access_body("d1", "case 12");
    assert_eq!(
        w.refused("he-clerk", body),
        TxRefusal::NoAccessRight(department("health"))
    );
}

#[test]
fn access_is_refused_when_ciphertext_hash_differs() {
    let mut w = World::new();
    w.register("d1");
    let body = TxBody::RecordAccess {
        document: doc_id("d1"),
        previous_event: w.latest("d1"),
        purpose: "check".into(),
        ciphertext_sha256: Hash32([3; 32]),
    };
    assert!(matches!(
        w.refused("ca-clerk", body),
        TxRefusal::CiphertextMismatch { .. }
    ));
}

#[test]
fn access_is_refused_without_a_purpose() {
    let mut w = World::new();
    w.register("d1");
    let body = w.access_body("d1", "");
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::EmptyField("purpose")
    );
}

#[test]
fn fixity_check_is_refused_for_a_member_neither_clerk_nor_auditor() {
    let mut w = World::new();
    w.register("d1");
    let body = TxBody::RecordFixityCheck {
        document: doc_id("d1"),
        previous_event: w.latest("d1"),
        ciphertext_sha256: w.doc("d1").ciphertext.sha256,
        result: FixityResult::Intact,
        note: String::new(),
    };
    assert_eq!(
        w.refused("civil-affairs-admin", body.clone()),
        TxRefusal::NeitherClerkNorAuditor
    );
    // An auditor of any department may record one.
    w.ok("he-auditor", body);
}

#[test]
fn dispose_is_refused_for_permanent_retention() {
    let mut w = World::new();
    let body = w.register_body(
        "d1",
        "civil-affairs",
        Classification::Public,
        Retention::Permanent,
    );
    w.ok("ca-clerk", body);
    let body = w.dispose_body("d1");
    assert_eq!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::RetentionPermanent
    );
}

#[test]
fn dispose_is_refused_before_the_retention_period_elapsed() {
    let mut w = World::new();
    w.register("d1");
    let body = w.dispose_body("d1");
    assert!(matches!(
        w.refused("civil-affairs-admin", body),
        TxRefusal::RetentionNotElapsed { .. }
    ));
}

#[test]
fn dispose_is_refused_when_signer_is_not_admin() {
    let mut w = World::new();
    w.register("d1");
    let body = w.dispose_body("d1");
    assert_eq!(
        w.refused("ca-clerk", body),
        TxRefusal::MissingRole {
            needed: Role::Admin
        }
    );
}

// ------------------------------------------------------------- lifecycle

#[test]
fn every_document_event_links_to_the_previous_event() {
    let mut w = World::new();
    w.register("d1");
    w.ok("ca-clerk", w.offer_body("d1", "health", None));
    w.ok("he-clerk", w.accept_body("d1"));
    w.ok(
        "he-clerk",
        w.grant_body("d1", "finance", Timestamp(w.time().0 + DAY_MS)),
    );
    w.ok("fi-clerk", w.access_body("d1", "benefit claim 77"));
    let amend = TxBody::Amend {
        document: doc_id("d1"),
        previous_event: w.latest("d1"),
        reason: AmendReason::FormatMigration,
        note: "PDF/A".into(),
        format: Format {
            mime: "application/pdf".into(),
            pronom: Some("fmt/354".into()),
        },
        plaintext: fixity("d1/v2/plain", 900),
        ciphertext: fixity("d1/v2/cipher", 940),
        wrapped_key: wrapped("d1/v2"),
    };
    w.ok("he-clerk", amend);
    let events = &w.chain.state.events[&doc_id("d1")];
    assert_eq!(events.len(), 6);
    let mut previous = EventHash::ZERO;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.sequence, i as u64);
        assert_eq!(e.previous, previous);
        previous = e.hash();
    }
    let doc = w.doc("d1");
    assert_eq!(doc.latest_event, previous);
    assert_eq!(doc.custodian, department("health"));
    assert_eq!(doc.version, 2);
    // Amendment clears grants: finance's key wrapped the old version.
    assert!(doc.grants.is_empty());
}

#[test]
fn access_event_names_member_department_purpose_and_ciphertext() {
    let mut w = World::new();
    w.register("d1");
    w.ok(
        "ca-clerk",
        w.grant_body("d1", "health", Timestamp(w.time().0 + DAY_MS)),
    );
    w.ok("he-clerk", w.access_body("d1", "medical file review"));
    let e = w.chain.state.events[&doc_id("d1")].last().unwrap().clone();
    assert_eq!(e.member, w.signer("he-clerk").public());
    assert_eq!(e.department, department("health"));
    assert_eq!(
        e.kind,
        EventKind::Accessed {
            purpose: "medical file review".into(),
            ciphertext_sha256: w.doc("d1").ciphertext.sha256
        }
    );
}

#[test]
fn reject_and_cancel_return_the_document_to_active() {
    let mut w = World::new();
    w.register("d1");
    w.ok("ca-clerk", w.offer_body("d1", "health", None));
    let reject = TxBody::RejectTransfer {
        document: doc_id("d1"),
        previous_event: w.latest("d1"),
        reason: "not ours".into(),
    };
    w.ok("he-clerk", reject);
    assert_eq!(w.doc("d1").status, DocumentStatus::Active);
    w.ok("ca-clerk", w.offer_body("d1", "finance", None));
    let cancel = TxBody::CancelTransfer {
        document: doc_id("d1"),
        previous_event: w.latest("d1"),
    };
    w.ok("ca-clerk", cancel);
    assert_eq!(w.doc("d1").status, DocumentStatus::Active);
    assert_eq!(w.doc("d1").custodian, department("civil-affairs"));
}

#[test]
fn check_transaction_accepts_the_nonce_after_pending_ones() {
    let w = World::new();
    let signer = w.signers["ca-clerk"].clone();
    let body = w.register_body(
        "d9",
        "civil-affairs",
        Classification::Public,
        Retention::Years(1),
    );
    let tx2 = signer.sign_with_nonce(body.clone(), 2);
    let now = w.time();
    assert!(matches!(
        state::check_transaction(&w.chain.state, &tx2, None, now),
        Err(TxRefusal::WrongNonce { .. })
    ));
    assert_eq!(
        state::check_transaction(&w.chain.state, &tx2, Some(Nonce(1)), now),
        Ok(())
    );
    let tx1 = signer.sign_with_nonce(body, 1);
    assert_eq!(
        state::check_transaction(&w.chain.state, &tx1, None, now),
        Ok(())
    );
}

#[test]
fn select_transactions_keeps_the_valid_and_names_the_refused() {
    let mut w = World::new();
    w.register("d1");
    let latest = w.latest("d1");
    let sha = w.doc("d1").ciphertext.sha256;
    let access = |purpose: &str| TxBody::RecordAccess {
        document: doc_id("d1"),
        previous_event: latest,
        purpose: purpose.into(),
        ciphertext_sha256: sha,
    };
    let a = w.signer("ca-clerk").sign(access("one"));
    // The second names the same previous event: stale once the first applies.
    let b = w.signer("ca-clerk").sign(access("two"));
    let time = w.time();
    let (accepted, refused) =
        state::select_transactions(&w.chain.state, vec![a.clone(), b], time).unwrap();
    assert_eq!(accepted, vec![a]);
    assert_eq!(refused.len(), 1);
    assert!(matches!(refused[0].1, TxRefusal::StalePreviousEvent { .. }));
    w.chain.commit(accepted).unwrap();
}

// ---------------------------------------------------------------- blocks

fn header_refusal(w: &mut World, edit: impl FnOnce(&mut custody_ledger::Block)) -> HeaderRefusal {
    let mut block = w.chain.build(vec![]);
    edit(&mut block);
    match state::apply_block(&w.chain.state, &block) {
        Err(Refusal::Header(h)) => h,
        other => panic!("expected a header refusal, got {other:?}"),
    }
}

#[test]
fn block_is_refused_when_format_version_is_unknown() {
    let mut w = World::new();
    let r = header_refusal(&mut w, |b| b.header.format_version = 9);
    assert_eq!(r, HeaderRefusal::UnsupportedFormatVersion(9));
}

#[test]
fn block_is_refused_for_another_chain() {
    let mut w = World::new();
    let r = header_refusal(&mut w, |b| b.header.chain_id = "other".into());
    assert!(matches!(r, HeaderRefusal::WrongChainId { .. }));
}

#[test]
fn block_is_refused_at_the_wrong_height() {
    let mut w = World::new();
    let r = header_refusal(&mut w, |b| b.header.height = Height(7));
    assert!(matches!(r, HeaderRefusal::WrongHeight { .. }));
}

#[test]
fn block_is_refused_when_previous_hash_differs() {
    let mut w = World::new();
    let r = header_refusal(&mut w, |b| {
        b.header.previous_block_hash = BlockHash([1; 32])
    });
    assert!(matches!(r, HeaderRefusal::WrongPreviousHash { .. }));
}

#[test]
fn block_is_refused_when_time_is_not_after_the_parent() {
    let mut w = World::new();
    let parent = w.chain.state.chain().unwrap().last_time;
    let r = header_refusal(&mut w, |b| b.header.time = parent);
    assert!(matches!(r, HeaderRefusal::TimeNotAfterParent { .. }));
}

#[test]
fn block_time_is_refused_outside_the_skew_of_the_local_clock() {
    let parent = Timestamp(1_000);
    assert_eq!(
        check_block_time(parent, Timestamp(2_000), Timestamp(2_500), 1_000),
        Ok(())
    );
    assert!(matches!(
        check_block_time(parent, Timestamp(5_000), Timestamp(2_500), 1_000),
        Err(BlockTimeError::OutsideSkew { .. })
    ));
    assert!(matches!(
        check_block_time(parent, Timestamp(1_000), Timestamp(1_000), 1_000),
        Err(BlockTimeError::NotAfterParent { .. })
    ));
}

#[test]
fn block_is_refused_with_too_many_transactions() {
    let mut f = Federation::new(4, "custody-test");
    f.genesis.parameters.max_block_txs = 1;
    let mut chain = custody_ledger::testkit::Chain::from_federation(f);
    let a = chain.admin("civil-affairs").sign(enroll_body(
        fresh_key("a"),
        "civil-affairs",
        vec![Role::Clerk],
    ));
    let b = chain.admin("civil-affairs").sign(enroll_body(
        fresh_key("b"),
        "civil-affairs",
        vec![Role::Clerk],
    ));
    let block = chain.build(vec![a, b]);
    assert!(matches!(
        state::apply_block(&chain.state, &block),
        Err(Refusal::Header(HeaderRefusal::TooManyTransactions {
            count: 2,
            max: 1
        }))
    ));
}

#[test]
fn block_is_refused_when_larger_than_the_byte_limit() {
    let mut f = Federation::new(4, "custody-test");
    f.genesis.parameters.max_block_bytes = 1024;
    let mut chain = custody_ledger::testkit::Chain::from_federation(f);
    let txs: Vec<_> = (0..10)
        .map(|i| {
            chain.admin("civil-affairs").sign(enroll_body(
                fresh_key(&format!("m{i}")),
                "civil-affairs",
                vec![Role::Clerk],
            ))
        })
        .collect();
    let block = chain.build(txs);
    assert!(matches!(
        state::apply_block(&chain.state, &block),
        Err(Refusal::Header(HeaderRefusal::TooLarge { .. }))
    ));
}

#[test]
fn block_is_refused_when_the_transaction_root_differs() {
    let mut w = World::new();
    let r = header_refusal(&mut w, |b| b.header.tx_root = Hash32([5; 32]));
    assert_eq!(r, HeaderRefusal::TxRootMismatch);
}

#[test]
fn block_is_refused_when_the_validator_set_hash_differs() {
    let mut w = World::new();
    let r = header_refusal(&mut w, |b| b.header.validator_set_hash = Hash32([5; 32]));
    assert!(matches!(r, HeaderRefusal::ValidatorSetMismatch { .. }));
}

#[test]
fn block_is_refused_when_the_proposer_is_not_a_validator() {
    let mut w = World::new();
    let r = header_refusal(&mut w, |b| b.header.proposer = fresh_key("nobody"));
    assert!(matches!(r, HeaderRefusal::ProposerNotValidator(_)));
}

#[test]
fn first_block_is_refused_with_a_last_commit() {
    let chain = custody_ledger::testkit::Chain::new(4);
    let mut block = chain.build(vec![]);
    block.last_commit = Some(certify_with(
        &chain.federation.validators,
        "custody-test",
        &block,
        Round(0),
    ));
    assert_eq!(
        state::apply_block(&chain.state, &block),
        Err(Refusal::Header(HeaderRefusal::UnexpectedLastCommit))
    );
}

#[test]
fn block_is_refused_without_a_last_commit() {
    let mut w = World::new();
    let r = header_refusal(&mut w, |b| b.last_commit = None);
    assert_eq!(r, HeaderRefusal::MissingLastCommit);
}

#[test]
fn block_is_refused_when_the_last_commit_hash_differs() {
    let mut w = World::new();
    let r = header_refusal(&mut w, |b| b.header.last_commit_hash = Hash32([4; 32]));
    assert_eq!(r, HeaderRefusal::LastCommitHashMismatch);
}

fn with_last_commit(
    w: &mut World,
    edit: impl FnOnce(&mut custody_ledger::CommitCertificate),
) -> HeaderRefusal {
    let mut cert = w.chain.last_certificate.clone().unwrap();
    edit(&mut cert);
    header_refusal(w, |b| {
        b.header.last_commit_hash = cert.hash();
        b.last_commit = Some(cert);
    })
}

#[test]
fn block_is_refused_when_the_last_commit_lacks_two_thirds_of_the_power() {
    let mut w = World::new();
    // 2 of 4 signatures: not more than 2/3.
    let r = with_last_commit(&mut w, |c| c.signatures.truncate(2));
    assert!(matches!(
        r,
        HeaderRefusal::LastCommitInvalid(CertificateError::InsufficientPower { .. })
    ));
}

#[test]
fn block_is_refused_when_a_last_commit_signature_is_bad() {
    let mut w = World::new();
    let r = with_last_commit(&mut w, |c| c.signatures[0].signature.0[3] ^= 1);
    assert!(matches!(
        r,
        HeaderRefusal::LastCommitInvalid(CertificateError::BadSignature(_))
    ));
}

#[test]
fn block_is_refused_when_the_last_commit_has_a_stranger_or_duplicate() {
    let mut w = World::new();
    let r = with_last_commit(&mut w, |c| {
        let first = c.signatures[0];
        c.signatures.insert(0, first);
    });
    assert!(matches!(
        r,
        HeaderRefusal::LastCommitInvalid(CertificateError::NotSortedOrDuplicate(_))
    ));
    let r = with_last_commit(&mut w, |c| c.signatures[0].validator = PublicKey([0; 32]));
    assert!(matches!(
        r,
        HeaderRefusal::LastCommitInvalid(CertificateError::UnknownValidator(_))
    ));
}

#[test]
fn block_is_refused_when_the_last_commit_is_for_another_block() {
    let mut w = World::new();
    let r = with_last_commit(&mut w, |c| c.block_hash = BlockHash([8; 32]));
    assert!(matches!(
        r,
        HeaderRefusal::LastCommitInvalid(CertificateError::WrongBlock { .. })
    ));
}
