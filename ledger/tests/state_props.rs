//! Property tests of state transitions: random sequences of actions by
//! random members, valid or not. Whatever happens: applying is
//! deterministic, a refused block changes nothing, every document's events
//! form one unbroken hash chain, and the store agrees with memory.

mod common;

use common::*;
use custody_ledger::state::{self, StateView};
use custody_ledger::testkit::department;
use custody_ledger::tx::{FixityResult, TxBody};
use custody_ledger::types::*;
use custody_ledger::verify;
use proptest::prelude::*;

const WHO: [&str; 10] = [
    "ca-clerk",
    "ca-low",
    "ss-clerk",
    "he-clerk",
    "he-auditor",
    "fi-clerk",
    "civil-affairs-admin",
    "health-admin",
    "social-security-admin",
    "finance-admin",
];
const DEPTS: [&str; 4] = ["civil-affairs", "social-security", "health", "finance"];
const DOCS: [&str; 4] = ["doc-a", "doc-b", "doc-c", "doc-d"];

#[derive(Debug, Clone)]
enum Action {
    Register(usize, usize, u8),
    Offer(usize, usize, usize),
    Accept(usize, usize),
    Reject(usize, usize),
    Cancel(usize, usize),
    Grant(usize, usize, usize),
    Revoke(usize, usize, usize),
    Access(usize, usize),
    Fixity(usize, usize),
    Dispose(usize, usize),
    Wait,
}

fn action() -> impl Strategy<Value = Action> {
    // Indices past WHO pick the member the action suits (the custodian's
    // clerk, the offer's recipient...), so that many actions apply.
    let w = 0..WHO.len() + 8;
    let d = 0..DOCS.len();
    let p = 0..DEPTS.len();
    prop_oneof![
        6 => (w.clone(), d.clone(), 0u8..4).prop_map(|(a, b, c)| Action::Register(a, b, c)),
        2 => (w.clone(), d.clone(), p.clone()).prop_map(|(a, b, c)| Action::Offer(a, b, c)),
        2 => (w.clone(), d.clone()).prop_map(|(a, b)| Action::Accept(a, b)),
        2 => (w.clone(), d.clone()).prop_map(|(a, b)| Action::Reject(a, b)),
        2 => (w.clone(), d.clone()).prop_map(|(a, b)| Action::Cancel(a, b)),
        2 => (w.clone(), d.clone(), p.clone()).prop_map(|(a, b, c)| Action::Grant(a, b, c)),
        2 => (w.clone(), d.clone(), p.clone()).prop_map(|(a, b, c)| Action::Revoke(a, b, c)),
        2 => (w.clone(), d.clone()).prop_map(|(a, b)| Action::Access(a, b)),
        2 => (w.clone(), d.clone()).prop_map(|(a, b)| Action::Fixity(a, b)),
        1 => (w.clone(), d.clone()).prop_map(|(a, b)| Action::Dispose(a, b)),
        1 => Just(Action::Wait),
    ]
}

fn latest(w: &World, doc: &str) -> EventHash {
    w.chain
        .state
        .documents
        .get(&doc_id(doc))
        .map(|d| d.latest_event)
        .unwrap_or(EventHash::ZERO)
}

fn cipher(w: &World, doc: &str) -> Hash32 {
    w.chain
        .state
        .documents
        .get(&doc_id(doc))
        .map(|d| d.ciphertext.sha256)
        .unwrap_or(Hash32::ZERO)
}

fn clerk_of(dept: &str) -> usize {
    let name = match dept {
        "civil-affairs" => "ca-clerk",
        "social-security" => "ss-clerk",
        "health" => "he-clerk",
        _ => "fi-clerk",
    };
    WHO.iter().position(|w| *w == name).unwrap()
}

fn admin_of(dept: &str) -> usize {
    let name = format!("{dept}-admin");
    WHO.iter().position(|w| *w == name).unwrap()
}

/// The signer an action suits in the current state.
fn suited(w: &World, a: &Action, doc: usize) -> usize {
    let Some(d) = w.chain.state.documents.get(&doc_id(DOCS[doc])) else {
        return clerk_of(DEPTS[doc % DEPTS.len()]);
    };
    let custodian = d.custodian.to_string();
    match a {
        Action::Accept(..) | Action::Reject(..) => match &d.status {
            custody_ledger::records::DocumentStatus::InTransfer(o) => clerk_of(o.to.as_str()),
            _ => clerk_of(&custodian),
        },
        Action::Dispose(..) => admin_of(&custodian),
        Action::Access(..) => match d.grants.first() {
            Some(g) if doc % 2 == 0 => clerk_of(g.department.as_str()),
            _ => clerk_of(&custodian),
        },
        _ => clerk_of(&custodian),
    }
}

fn body(w: &World, a: &Action) -> Option<(usize, TxBody)> {
    let (who, doc) = match a {
        Action::Register(who, doc, _)
        | Action::Offer(who, doc, _)
        | Action::Accept(who, doc)
        | Action::Reject(who, doc)
        | Action::Cancel(who, doc)
        | Action::Grant(who, doc, _)
        | Action::Revoke(who, doc, _)
        | Action::Access(who, doc)
        | Action::Fixity(who, doc)
        | Action::Dispose(who, doc) => (*who, *doc),
        Action::Wait => return None,
    };
    let who = if who >= WHO.len() {
        suited(w, a, doc)
    } else {
        who
    };
    let (_, body) = body_for(w, a, who)?;
    Some((who, body))
}

fn body_for(w: &World, a: &Action, who: usize) -> Option<(usize, TxBody)> {
    let a = &match a.clone() {
        Action::Register(_, d, c) => Action::Register(who, d, c),
        Action::Offer(_, d, t) => Action::Offer(who, d, t),
        Action::Accept(_, d) => Action::Accept(who, d),
        Action::Reject(_, d) => Action::Reject(who, d),
        Action::Cancel(_, d) => Action::Cancel(who, d),
        Action::Grant(_, d, t) => Action::Grant(who, d, t),
        Action::Revoke(_, d, t) => Action::Revoke(who, d, t),
        Action::Access(_, d) => Action::Access(who, d),
        Action::Fixity(_, d) => Action::Fixity(who, d),
        Action::Dispose(_, d) => Action::Dispose(who, d),
        Action::Wait => Action::Wait,
    };
    let class = |c: u8| match c {
        0 => Classification::Public,
        1 => Classification::Internal,
        2 => Classification::Confidential,
        _ => Classification::Secret,
    };
    Some(match a {
        Action::Register(who, doc, c) => {
            let dept = w.chain.state.members[&w.signers[WHO[*who]].public()]
                .department
                .to_string();
            (
                *who,
                w.register_body(DOCS[*doc], &dept, class(*c), Retention::Years(0)),
            )
        }
        Action::Offer(who, doc, to) => (
            *who,
            TxBody::OfferTransfer {
                document: doc_id(DOCS[*doc]),
                previous_event: latest(w, DOCS[*doc]),
                to: department(DEPTS[*to]),
                wrapped_key: wrapped("k"),
                expires_at: Some(Timestamp(w.time().0 + 3_000)),
            },
        ),
        Action::Accept(who, doc) => (
            *who,
            TxBody::AcceptTransfer {
                document: doc_id(DOCS[*doc]),
                previous_event: latest(w, DOCS[*doc]),
                ciphertext_sha256: cipher(w, DOCS[*doc]),
            },
        ),
        Action::Reject(who, doc) => (
            *who,
            TxBody::RejectTransfer {
                document: doc_id(DOCS[*doc]),
                previous_event: latest(w, DOCS[*doc]),
                reason: "no".into(),
            },
        ),
        Action::Cancel(who, doc) => (
            *who,
            TxBody::CancelTransfer {
                document: doc_id(DOCS[*doc]),
                previous_event: latest(w, DOCS[*doc]),
            },
        ),
        Action::Grant(who, doc, to) => (
            *who,
            TxBody::GrantAccess {
                document: doc_id(DOCS[*doc]),
                previous_event: latest(w, DOCS[*doc]),
                to: department(DEPTS[*to]),
                wrapped_key: wrapped("g"),
                expires_at: Timestamp(w.time().0 + 3_000),
            },
        ),
        Action::Revoke(who, doc, from) => (
            *who,
            TxBody::RevokeAccess {
                document: doc_id(DOCS[*doc]),
                previous_event: latest(w, DOCS[*doc]),
                from: department(DEPTS[*from]),
            },
        ),
        Action::Access(who, doc) => (
            *who,
            TxBody::RecordAccess {
                document: doc_id(DOCS[*doc]),
                previous_event: latest(w, DOCS[*doc]),
                purpose: "case".into(),
                ciphertext_sha256: cipher(w, DOCS[*doc]),
            },
        ),
        Action::Fixity(who, doc) => (
            *who,
            TxBody::RecordFixityCheck {
                document: doc_id(DOCS[*doc]),
                previous_event: latest(w, DOCS[*doc]),
                ciphertext_sha256: cipher(w, DOCS[*doc]),
                result: FixityResult::Intact,
                note: String::new(),
            },
        ),
        Action::Dispose(who, doc) => (
            *who,
            TxBody::Dispose {
                document: doc_id(DOCS[*doc]),
                previous_event: latest(w, DOCS[*doc]),
                reason: "done".into(),
            },
        ),
        Action::Wait => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_histories_keep_every_invariant(actions in prop::collection::vec(action(), 1..40)) {
        let mut w = World::new();
        let mut applied = 0;
        for a in &actions {
            let Some((who, body)) = body(&w, a) else {
                w.advance(2_000);
                continue;
            };
            let signer = w.signers[WHO[who]].clone();
            let tx = signer.sign_with_nonce(body, signer.next_nonce);
            let block = w.chain.build(vec![tx]);
            let before = w.chain.state.digest();
            let first = state::apply_block(&w.chain.state, &block);
            let second = state::apply_block(&w.chain.state, &block);
            prop_assert_eq!(&first, &second, "apply is deterministic");
            prop_assert_eq!(w.chain.state.digest(), before, "applying alone writes nothing");
            if first.is_ok() {
                w.chain.apply(block).unwrap();
                w.signer(WHO[who]).next_nonce += 1;
                applied += 1;
            }
        }
        // Every document's events form one chain ending at its latest event,
        // and its custodian is a department.
        for (id, doc) in &w.chain.state.documents {
            let events = &w.chain.state.events[id];
            verify::verify_document_history(id, events, &doc.latest_event).unwrap();
            prop_assert!(w.chain.state.department(&doc.custodian).unwrap().is_some());
            prop_assert!(doc.grants.iter().all(|g| g.department != doc.custodian));
        }
        // Each department's count of held documents is the number of
        // documents (not disposed of) in its custody.
        for (id, d) in &w.chain.state.departments {
            let held = w
                .chain
                .state
                .documents
                .values()
                .filter(|doc| doc.custodian == *id && doc.status != custody_ledger::records::DocumentStatus::Disposed)
                .count() as u64;
            prop_assert_eq!(d.documents_held, held);
        }
        // The whole chain verifies from genesis to the same state.
        let source = verify::MemorySource::from_blocks(w.chain.blocks.iter().map(|(b, c)| (b, c)));
        let (report, _) = verify::verify_chain(
            &w.chain.federation.genesis, &source, verify::VerifyOptions::default(), |_| {},
        ).unwrap();
        prop_assert_eq!(report.state_digest, w.chain.state.digest());
        // About one action in five applies (the rest are refused on purpose).
        let _ = applied;
    }
}
