//! The clerk library: every step of a document's custody as an async
//! function over the node's API, each returning a typed outcome.
//!
//! [`register`], [`offer`], [`accept`], [`reject`], [`cancel`], [`grant`],
//! [`revoke`], [`open`], [`amend`], [`fixity`] and [`dispose`] each take the
//! node ([`NodeApi`]), the acting clerk ([`Context`]: keys, commit wait,
//! progress bars) and typed inputs, and return what happened: the document,
//! the committed transaction and its height, fingerprints, files written.
//! They print nothing; `custody doc …` parses its arguments, calls them and
//! prints the outcome in words or as JSON, and `custody-harness demo` tells
//! the same outcomes in its story.
//!
//! Plaintext and data keys exist only in this process: a document is
//! encrypted here, the node stores and moves only ciphertext, and data keys
//! travel on chain only wrapped to a department's X25519 key.

mod access;
mod files;
mod lifecycle;
mod register;
mod transfer;

use std::path::PathBuf;
use std::time::Duration;

use crate::envelope::{self, DataKey, DepartmentPublicKey, DepartmentSecretKey};
use custody_ledger::records::{Document, Member};
use custody_ledger::types::{DepartmentId, DocumentId, TxId, WrappedKey};
use custody_node::api_types::SubmitResponse;
use serde::Serialize;

pub use crate::doc::node_api::NodeApi;
pub use crate::doc::DocError;
pub use access::{grant, open, revoke, GrantOutcome, GrantRequest, OpenOutcome, RevokeOutcome};
pub use lifecycle::{
    amend, disposal_text, dispose, fixity, reason_name, AmendOutcome, AmendRequest, DisposeOutcome,
    FixityOutcome, FIXITY_PURPOSE,
};
pub use register::{register, RegisterOutcome, RegisterRequest};
pub use transfer::{
    accept, cancel, offer, reject, AcceptOutcome, CancelOutcome, OfferOutcome, OfferRequest,
    RejectOutcome, INSPECTION_PURPOSE,
};

/// The clerk who acts: the keys they hold, how long they wait for a
/// transaction to commit, and whether progress bars are drawn.
pub struct Context {
    /// Signs transactions, uploads and read requests.
    pub member_key: ed25519_dalek::SigningKey,
    /// Unwraps data keys; `None` when none was given, and a step that needs
    /// it says so ([`DocError::MissingKey`]).
    pub department_key: Option<DepartmentKey>,
    /// Longest wait for one transaction to commit.
    pub commit_wait: Duration,
    /// Draw progress bars for encryption, uploads and downloads (on
    /// standard error, and only when standard output is a terminal).
    pub show_progress: bool,
}

/// A department's encryption key and the file it was read from (named
/// when the chain records another key for the department).
pub struct DepartmentKey {
    pub secret: DepartmentSecretKey,
    pub path: PathBuf,
}

impl Context {
    /// A clerk signing with `member_key`, waiting `commit_wait` for each
    /// commit, with no department key and no progress bars.
    pub fn new(member_key: ed25519_dalek::SigningKey, commit_wait: Duration) -> Context {
        Context {
            member_key,
            department_key: None,
            commit_wait,
            show_progress: false,
        }
    }

    /// The same clerk holding `department_key`, read from `path`.
    pub fn with_department_key(mut self, secret: DepartmentSecretKey, path: PathBuf) -> Context {
        self.department_key = Some(DepartmentKey { secret, path });
        self
    }

    /// A progress bar of `total_bytes` labelled `label`, hidden unless
    /// asked for.
    fn progress(&self, total_bytes: u64, label: &str) -> indicatif::ProgressBar {
        crate::doc::util::progress(total_bytes, label, !self.show_progress)
    }
}

/// Where a committed transaction landed.
#[derive(Clone, Debug, Serialize)]
pub struct Committed {
    pub tx_id: TxId,
    pub height: u64,
}

impl Committed {
    fn of(answer: &SubmitResponse) -> Committed {
        Committed {
            tx_id: answer.tx_id,
            height: answer.inclusion.as_ref().map(|i| i.height.0).unwrap_or(0),
        }
    }
}

/// The signer's member record, as the chain has it (read once per
/// [`NodeApi`], with the nonce the next transaction carries).
async fn me(api: &NodeApi, context: &Context) -> Result<Member, DocError> {
    let public = custody_ledger::encoding::public_key_of(&context.member_key);
    let (member, _) = api.member(&public).await?;
    Ok(member)
}

/// The clerk's department key, checked against the key the chain records
/// for `department`, so that a wrong key file is refused with a reason.
async fn checked_department_key<'a>(
    api: &NodeApi,
    context: &'a Context,
    department: &DepartmentId,
) -> Result<&'a DepartmentSecretKey, DocError> {
    let key = context
        .department_key
        .as_ref()
        .ok_or(DocError::MissingKey {
            what: "your department's encryption key",
            flag: "--department-key",
            env: "CUSTODY_DEPARTMENT_KEY",
        })?;
    let on_chain = api.department(department).await?.keys.encryption_key;
    let public = key.secret.public_key();
    if public.0 != on_chain.0 {
        return Err(DocError::KeyFile {
            path: key.path.clone(),
            message: format!(
                "this is not department `{department}`'s encryption key: its public key is {}, the chain records {}",
                hex::encode(public.0),
                on_chain
            ),
        });
    }
    Ok(&key.secret)
}

fn unwrap_key(
    document: &DocumentId,
    wrapped: &WrappedKey,
    secret: &DepartmentSecretKey,
) -> Result<DataKey, DocError> {
    let failed = |message: String| DocError::Document {
        document: document.to_string(),
        message,
    };
    let wrapped = envelope::WrappedKey::from_bytes(&wrapped.0).map_err(|error| {
        failed(format!(
            "the wrapped data key on chain is malformed: {error}"
        ))
    })?;
    envelope::unwrap(&wrapped, secret).map_err(|error| {
        failed(format!(
            "the department key cannot unwrap the data key (wrong key, or the wrapped key was altered): {error}"
        ))
    })
}

/// `data_key` wrapped to `department`'s encryption key as the chain has it.
async fn wrap_to(
    api: &NodeApi,
    document: &DocumentId,
    data_key: &DataKey,
    department: &DepartmentId,
) -> Result<WrappedKey, DocError> {
    let recipient = api.department(department).await?.keys.encryption_key;
    let wrapped = envelope::wrap(data_key, &DepartmentPublicKey(recipient.0)).map_err(|error| {
        DocError::Document {
            document: document.to_string(),
            message: format!("cannot wrap the data key to `{department}`: {error}"),
        }
    })?;
    Ok(WrappedKey(wrapped.to_bytes().to_vec()))
}

/// The data key of a document the signer's department holds as custodian.
async fn custodian_data_key(
    api: &NodeApi,
    context: &Context,
    doc: &Document,
    member: &Member,
) -> Result<DataKey, DocError> {
    if doc.custodian != member.department {
        return Err(DocError::Document {
            document: doc.id.to_string(),
            message: format!(
                "your department `{}` is not its custodian (`{}` is)",
                member.department, doc.custodian
            ),
        });
    }
    let secret = checked_department_key(api, context, &member.department).await?;
    unwrap_key(&doc.id, &doc.custodian_key, secret)
}

/// Signs `body` (built from the document as the step just read it),
/// submits it and waits until it is committed.
async fn submit(
    api: &NodeApi,
    context: &Context,
    body: custody_ledger::tx::TxBody,
) -> Result<Committed, DocError> {
    let answer = api
        .submit_and_wait(&context.member_key, body, context.commit_wait)
        .await?;
    Ok(Committed::of(&answer))
}
