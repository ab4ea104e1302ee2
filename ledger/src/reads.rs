//! What a read of a document's ciphertext is made of, outside the state
//! machine: the member's signed read request, and the outcome a serving
//! node attests on chain (`attest-read`, transaction format version 2).
//!
//! The rule deciding whether a read may be served is
//! [`crate::state::check_read`]; formats are in `docs/format.md` §12 and
//! §13, the rule in `docs/rules.md` §9.

use serde::{Deserialize, Serialize};

use crate::encoding::{self, tags};
use crate::types::{DocumentId, Hash32, PublicKey, Signature, TxId};

/// Domain tag of a signed read request.
pub const READ_REQUEST_TAG: &str = tags::READ_REQUEST;
/// Format version of [`ReadRequest`].
pub const READ_REQUEST_VERSION: u16 = 1;

/// What a member signs to download a document's ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub format_version: u16,
    pub chain_id: String,
    /// The member asking (their ed25519 key).
    pub member: PublicKey,
    pub document: DocumentId,
    /// The ciphertext the member expects (the document's current fixity).
    pub ciphertext_sha256: Hash32,
    /// The member's committed record-access transaction for this document.
    /// The field stays optional so that version 1 requests keep their
    /// encoding, but a request without one is always refused
    /// (`read_access_not_committed`).
    pub access_tx: Option<TxId>,
    /// The member's clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Random; makes every request distinct.
    pub nonce: u64,
}

/// A [`ReadRequest`] with the member's ed25519 signature over
/// `tagged("custody/read-request/v1", postcard(request))`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReadRequest {
    pub request: ReadRequest,
    pub signature: Signature,
}

impl SignedReadRequest {
    pub fn sign(request: ReadRequest, key: &ed25519_dalek::SigningKey) -> SignedReadRequest {
        let signature = encoding::sign(key, READ_REQUEST_TAG, &request);
        SignedReadRequest { request, signature }
    }

    pub fn verify_signature(&self) -> bool {
        encoding::verify(
            &self.request.member,
            READ_REQUEST_TAG,
            &self.request,
            &self.signature,
        )
    }
}

/// What became of one read request at the node that answered it, as that
/// node attests it on chain. Field order is part of the format.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadOutcome {
    /// Every byte of the ciphertext was handed to the member's connection.
    /// This, and only this, is a read.
    Served {
        access_tx: TxId,
        member: PublicKey,
        document: DocumentId,
        ciphertext_sha256: Hash32,
        bytes: u64,
    },
    /// The read was allowed but the member did not get the whole
    /// ciphertext: `bytes` were sent before it failed (0 when the node's
    /// copy was missing or damaged, in which case the access record stays
    /// usable).
    Failed {
        access_tx: TxId,
        member: PublicKey,
        document: DocumentId,
        bytes: u64,
        reason: String,
    },
    /// The read rule refused the request; `request` carries the member's
    /// own signature, so the refusal is attributable offline, and `code`
    /// is the refusal's code (`docs/rules.md` §9).
    Denied {
        request: SignedReadRequest,
        code: String,
    },
}

impl ReadOutcome {
    /// Short kebab-case name, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            ReadOutcome::Served { .. } => "served",
            ReadOutcome::Failed { .. } => "failed",
            ReadOutcome::Denied { .. } => "denied",
        }
    }

    /// The member whose read this is.
    pub fn member(&self) -> &PublicKey {
        match self {
            ReadOutcome::Served { member, .. } | ReadOutcome::Failed { member, .. } => member,
            ReadOutcome::Denied { request, .. } => &request.request.member,
        }
    }

    /// The document read (or asked for).
    pub fn document(&self) -> &DocumentId {
        match self {
            ReadOutcome::Served { document, .. } | ReadOutcome::Failed { document, .. } => document,
            ReadOutcome::Denied { request, .. } => &request.request.document,
        }
    }

    /// The access record named, if any.
    pub fn access_tx(&self) -> Option<&TxId> {
        match self {
            ReadOutcome::Served { access_tx, .. } | ReadOutcome::Failed { access_tx, .. } => {
                Some(access_tx)
            }
            ReadOutcome::Denied { request, .. } => request.request.access_tx.as_ref(),
        }
    }
}

/// One committed `attest-read`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestedRead {
    pub height: crate::types::Height,
    pub time: crate::types::Timestamp,
    pub tx_id: TxId,
    /// The serving department (its node signed it).
    pub department: crate::types::DepartmentId,
    pub outcome: ReadOutcome,
}

/// A committed record-access, as the account of reads needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedAccess {
    pub member: PublicKey,
    pub document: DocumentId,
    pub height: crate::types::Height,
}

/// Why a chain's read attestations do not add up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadAccountError {
    #[error("height {height}: attestation {tx} names access record {access}, which is not a record-access committed before it")]
    UnknownAccess {
        height: crate::types::Height,
        tx: TxId,
        access: TxId,
    },
    #[error("height {height}: attestation {tx} names access record {access}, which another member recorded or which is for another document")]
    AccessMismatch {
        height: crate::types::Height,
        tx: TxId,
        access: TxId,
    },
    #[error("height {height}: attestation {tx} says access record {access} served a second download (the first was attested by {first})")]
    ServedTwice {
        height: crate::types::Height,
        tx: TxId,
        access: TxId,
        first: TxId,
    },
}

/// Every read of a chain, from its attestations, checked against its
/// access records: what `custody audit verify` checks and `custody audit
/// report` and `custody audit denials` count. Built block by block, in
/// height order.
#[derive(Clone, Debug, Default)]
pub struct ReadAccount {
    pub accesses: std::collections::BTreeMap<TxId, RecordedAccess>,
    pub served: Vec<AttestedRead>,
    pub failed: Vec<AttestedRead>,
    pub denied: Vec<AttestedRead>,
    served_by_access: std::collections::BTreeMap<TxId, TxId>,
}

impl ReadAccount {
    /// Adds the block's record-access transactions and attestations.
    pub fn add_block(&mut self, block: &crate::block::Block) -> Result<(), ReadAccountError> {
        use crate::tx::TxBody;
        let height = block.header.height;
        for tx in &block.transactions {
            match &tx.payload.body {
                TxBody::RecordAccess { document, .. }
                | TxBody::RecordAccessSealed { document, .. } => {
                    self.accesses.insert(
                        tx.id(),
                        RecordedAccess {
                            member: tx.payload.signer,
                            document: document.clone(),
                            height,
                        },
                    );
                }
                TxBody::AttestRead {
                    department,
                    outcome,
                } => {
                    let tx_id = tx.id();
                    if let ReadOutcome::Served { access_tx, .. }
                    | ReadOutcome::Failed { access_tx, .. } = outcome
                    {
                        let access = self.accesses.get(access_tx).ok_or(
                            ReadAccountError::UnknownAccess {
                                height,
                                tx: tx_id,
                                access: *access_tx,
                            },
                        )?;
                        if access.member != *outcome.member()
                            || access.document != *outcome.document()
                        {
                            return Err(ReadAccountError::AccessMismatch {
                                height,
                                tx: tx_id,
                                access: *access_tx,
                            });
                        }
                    }
                    let read = AttestedRead {
                        height,
                        time: block.header.time,
                        tx_id,
                        department: department.clone(),
                        outcome: outcome.clone(),
                    };
                    match outcome {
                        ReadOutcome::Served { access_tx, .. } => {
                            if let Some(first) = self.served_by_access.get(access_tx) {
                                return Err(ReadAccountError::ServedTwice {
                                    height,
                                    tx: tx_id,
                                    access: *access_tx,
                                    first: *first,
                                });
                            }
                            self.served_by_access.insert(*access_tx, tx_id);
                            self.served.push(read);
                        }
                        ReadOutcome::Failed { .. } => self.failed.push(read),
                        ReadOutcome::Denied { .. } => self.denied.push(read),
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Domain tag of a signed blob upload.
pub const BLOB_UPLOAD_TAG: &str = tags::BLOB_UPLOAD;
/// Format version of [`BlobUpload`].
pub const BLOB_UPLOAD_VERSION: u16 = 1;

/// What a member signs to store a ciphertext on a node (`PUT
/// /v1/blobs/{sha256}`): which bytes, how many, on which chain, when.
/// Sent as the `x-custody-upload` header, hex of `postcard(SignedBlobUpload)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobUpload {
    pub format_version: u16,
    pub chain_id: String,
    /// The member uploading (their ed25519 key).
    pub member: PublicKey,
    /// The ciphertext's SHA-256, as in the URL.
    pub sha256: Hash32,
    /// Its size, as in the URL's `size_bytes`.
    pub size_bytes: u64,
    /// The member's clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// A [`BlobUpload`] with the member's ed25519 signature over
/// `tagged("custody/blob-upload/v1", postcard(upload))`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBlobUpload {
    pub upload: BlobUpload,
    pub signature: Signature,
}

impl SignedBlobUpload {
    pub fn sign(upload: BlobUpload, key: &ed25519_dalek::SigningKey) -> SignedBlobUpload {
        let signature = encoding::sign(key, BLOB_UPLOAD_TAG, &upload);
        SignedBlobUpload { upload, signature }
    }

    pub fn verify_signature(&self) -> bool {
        encoding::verify(
            &self.upload.member,
            BLOB_UPLOAD_TAG,
            &self.upload,
            &self.signature,
        )
    }

    /// The header value: hex of the canonical encoding.
    pub fn to_header(&self) -> String {
        hex::encode(encoding::encode(self))
    }

    /// Parses a header value written by [`Self::to_header`].
    pub fn from_header(value: &str) -> Result<SignedBlobUpload, String> {
        let bytes = hex::decode(value.trim()).map_err(|_| "not hex".to_string())?;
        encoding::decode(&bytes).map_err(|error| error.to_string())
    }
}
