//! The clerk library asks the node for what it needs once: its chain id
//! and the signer's member record (with the nonce) are read at most once
//! per node handle, however many steps and transactions follow.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Json;
use custody_cli::clerk::{self, Context, NodeApi, OfferRequest};
use custody_cli::envelope::{self, DataKey, DepartmentSecretKey};
use custody_ledger::merkle::InclusionProof;
use custody_ledger::records::{
    Department, DepartmentKeys, Document, DocumentStatus, Member, MemberStatus,
};
use custody_ledger::tx::SignedTransaction;
use custody_ledger::types::{
    BlockHash, Classification, DepartmentId, DocumentId, EventHash, Fixity, Format, Hash32, Height,
    PublicKey, Retention, Role, Timestamp, WrappedKey,
};
use custody_node::api_types::{Inclusion, MempoolStatus, StatusResponse, SubmitResponse};

const CHAIN_ID: &str = "custody-test";
const CUSTODIAN: &str = "civil-affairs";
const RECIPIENT: &str = "health";
const DOCUMENT: &str = "civil-affairs-0001";
/// The nonce the node says the signer's next transaction carries.
const NEXT_NONCE: u64 = 7;

/// What the stand-in node was asked.
#[derive(Default)]
struct Asked {
    status: AtomicUsize,
    members: AtomicUsize,
    /// The nonce of each transaction submitted, in order.
    nonces: Mutex<Vec<u64>>,
}

fn department(id: &str, encryption_key: PublicKey) -> Department {
    Department {
        id: DepartmentId::new(id.to_string()).expect("department id"),
        name: id.to_string(),
        keys: DepartmentKeys {
            validator_key: PublicKey([5; 32]),
            node_key: PublicKey([6; 32]),
            encryption_key,
        },
        voting_power: 1,
        since: Height(0),
        documents_held: 1,
    }
}

fn document(custodian_key: WrappedKey) -> Document {
    let fixity = Fixity {
        sha256: Hash32([8; 32]),
        size_bytes: 100,
    };
    Document {
        id: DocumentId::new(DOCUMENT.to_string()).expect("document id"),
        title: "Register extract".to_string(),
        record_type: "civil-register-extract".to_string(),
        creating_department: DepartmentId::new(CUSTODIAN.to_string()).expect("department id"),
        created: Timestamp(0),
        classification: Classification::Internal,
        retention: Retention::Permanent,
        format: Format {
            mime: "text/plain".to_string(),
            pronom: None,
        },
        plaintext: fixity,
        ciphertext: fixity,
        subject_tag: None,
        custodian: DepartmentId::new(CUSTODIAN.to_string()).expect("department id"),
        custodian_key,
        status: DocumentStatus::Active,
        version: 1,
        grants: Vec::new(),
        event_count: 1,
        latest_event: EventHash([4; 32]),
        registered_at: Height(1),
    }
}

/// A stand-in for the custodian's node: one document, two departments,
/// the clerk's member record, and every transaction committed at once.
async fn serve(
    asked: Arc<Asked>,
    member: Member,
    encryption_key: PublicKey,
    doc: Document,
) -> String {
    let status_asked = asked.clone();
    let member_asked = asked.clone();
    let app = axum::Router::new()
        .route(
            "/v1/status",
            get(move || {
                status_asked.status.fetch_add(1, Ordering::SeqCst);
                async move {
                    Json(StatusResponse {
                        chain_id: CHAIN_ID.to_string(),
                        genesis_hash: String::new(),
                        department: CUSTODIAN.to_string(),
                        peer_id: String::new(),
                        height: 1,
                        last_block_hash: String::new(),
                        last_block_time_ms: 0,
                        round: 0,
                        peers: Vec::new(),
                        mempool: MempoolStatus {
                            transactions: 0,
                            bytes: 0,
                        },
                        syncing: false,
                        peer_details: Vec::new(),
                        time_ms: 0,
                    })
                }
            }),
        )
        .route(
            "/v1/members/{key}",
            get(move || {
                member_asked.members.fetch_add(1, Ordering::SeqCst);
                let mut value = serde_json::to_value(&member).expect("member json");
                value["nonce"] = serde_json::json!(NEXT_NONCE - 1);
                value["next_nonce"] = serde_json::json!(NEXT_NONCE);
                async move { Json(value) }
            }),
        )
        .route(
            "/v1/departments/{id}",
            get(
                move |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    Json(department(&id, encryption_key))
                },
            ),
        )
        .route(
            "/v1/documents/{id}",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc) }
            }),
        )
        .route(
            "/v1/transactions",
            post(move |body: axum::body::Bytes| {
                let (tx, tx_id) =
                    SignedTransaction::from_bytes_with_id(&body).expect("a signed transaction");
                asked
                    .nonces
                    .lock()
                    .expect("nonces")
                    .push(tx.payload.nonce.0);
                async move {
                    Json(SubmitResponse {
                        tx_id,
                        status: "committed".to_string(),
                        inclusion: Some(Inclusion {
                            height: Height(2),
                            index: 0,
                            block_hash: BlockHash([0; 32]),
                            proof: InclusionProof {
                                index: 0,
                                tree_size: 1,
                                path: Vec::new(),
                            },
                        }),
                    })
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_handle_reads_the_chain_id_and_the_member_once_across_steps() {
    let member_key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let department_key = DepartmentSecretKey::from_bytes([2; 32]);
    let encryption_key = PublicKey(department_key.public_key().0);
    let wrapped = envelope::wrap(&DataKey::from_bytes([3; 32]), &department_key.public_key())
        .expect("wrap the data key");
    let doc = document(WrappedKey(wrapped.to_bytes().to_vec()));
    let member = Member {
        key: custody_ledger::encoding::public_key_of(&member_key),
        department: DepartmentId::new(CUSTODIAN.to_string()).expect("department id"),
        name: "Wang Fang".to_string(),
        roles: vec![Role::Clerk],
        clearance: Classification::Confidential,
        status: MemberStatus::Active,
        enrolled_at: Height(1),
    };
    let asked = Arc::new(Asked::default());
    let url = serve(asked.clone(), member, encryption_key, doc).await;

    let api = NodeApi::new(&url)
        .expect("node handle")
        .signed_by(member_key.clone());
    let context = Context::new(member_key, Duration::from_secs(5))
        .with_department_key(department_key, PathBuf::from("department.key"));
    let document = DocumentId::new(DOCUMENT.to_string()).expect("document id");
    let offered = clerk::offer(
        &api,
        &context,
        OfferRequest {
            document: document.clone(),
            to: DepartmentId::new(RECIPIENT.to_string()).expect("department id"),
            expires_at: None,
        },
    )
    .await
    .expect("offer");
    let cancelled = clerk::cancel(&api, &context, &document)
        .await
        .expect("cancel");

    assert_eq!(offered.committed.height, 2);
    assert_eq!(cancelled.committed.height, 2);
    assert_eq!(asked.status.load(Ordering::SeqCst), 1, "status read");
    assert_eq!(asked.members.load(Ordering::SeqCst), 1, "member read");
    assert_eq!(
        *asked.nonces.lock().expect("nonces"),
        [NEXT_NONCE, NEXT_NONCE + 1],
        "the second transaction carries the next nonce, counted here"
    );
}
