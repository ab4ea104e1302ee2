//! The serving side of a member's read: the node asks the ledger's read
//! rule ([`custody_ledger::state::check_read`]) whether a download may be
//! served, keeps which access records already served their one download,
//! and attests on chain what became of every read request it answered
//! (`attest-read`, signed with the department's node key).
//!
//! The node has no read rule of its own. What it keeps is a fact only it
//! knows: which access records it began to serve. Only the node of the
//! member's own department serves their reads (the rule says so), so that
//! fact lives in one place: one file per access record under
//! `data/reads/used/`, created with `create_new` (an atomic claim, so two
//! concurrent requests on one record cannot both pass) and synced before
//! the first byte of ciphertext leaves the node.
//!
//! Blob fetch between nodes (custody replication) is not a member's read
//! and does not come here: see `blob_fetch`.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use custody_ledger::reads::{ReadOutcome, ReadRequest, SignedReadRequest};
use custody_ledger::state::{check_read, CommittedAccess, ReadPermit, ReadQuestion, ReadRefusal};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{DepartmentId, PublicKey, TxId};

use crate::admission::{Admission, Incoming, Source};
use crate::store_reader::StoreReader;

/// Folder (under the node's data folder) of the access records that
/// served their download.
pub const USED_RECORDS_DIR: &str = "reads/used";

/// Folder (under the node's data folder) of the attestations signed but
/// not yet seen committed: each is kept, as its transaction's bytes, until
/// the chain holds it, and submitted again when the node starts, so that a
/// crash between serving and committing loses no read.
pub const PENDING_ATTESTATIONS_DIR: &str = "reads/attesting";

/// Pending attestations looked at per sweep (each sweep runs before a new
/// attestation is signed); the rest wait for the next one.
pub const PENDING_SWEEP_FILES_MAX: usize = 256;

/// Longest reason written in a failed-read attestation, in bytes (the
/// ledger's text limit is larger; a reason is one sentence).
pub const FAILED_REASON_BYTES_MAX: usize = 256;

/// Why an attestation could not be handed to the mempool.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("the node's store could not be read to find the node key's next nonce")]
    NoNonce,
    #[error("the read attestation was not admitted: {0}")]
    NotAdmitted(String),
    #[error("the read attestation could not be kept on disk until it is committed: {0}")]
    NotKept(String),
}

struct Inner {
    department: DepartmentId,
    chain_id: String,
    signer: ed25519_dalek::SigningKey,
    signer_public: PublicKey,
    used_dir: PathBuf,
    pending_dir: PathBuf,
    store: StoreReader,
    admission: Admission,
    /// One attestation at a time: each takes the next nonce of the node
    /// key, which only this node signs with.
    submitting: Mutex<()>,
}

/// The handle the API's read route holds. Built by the composition root.
#[derive(Clone)]
pub struct ReadDesk {
    inner: Arc<Inner>,
}

impl ReadDesk {
    /// Opens (creating it) the used-records folder under `data_dir`.
    /// `node_secret` is the department's node key (`keys/node.key`), which
    /// signs the attestations.
    pub fn open(
        data_dir: &Path,
        department: DepartmentId,
        chain_id: &str,
        node_secret: [u8; 32],
        store: StoreReader,
        admission: Admission,
    ) -> io::Result<ReadDesk> {
        let used_dir = data_dir.join(USED_RECORDS_DIR);
        std::fs::create_dir_all(&used_dir)?;
        let pending_dir = data_dir.join(PENDING_ATTESTATIONS_DIR);
        std::fs::create_dir_all(&pending_dir)?;
        let signer = ed25519_dalek::SigningKey::from_bytes(&node_secret);
        let signer_public = PublicKey(signer.verifying_key().to_bytes());
        Ok(ReadDesk {
            inner: Arc::new(Inner {
                department,
                chain_id: chain_id.to_string(),
                signer,
                signer_public,
                used_dir,
                pending_dir,
                store,
                admission,
                submitting: Mutex::new(()),
            }),
        })
    }

    /// Submits again every attestation signed before a stop and not
    /// committed since (the same bytes while their nonce is still free,
    /// signed again with the next nonce otherwise); forgets the committed
    /// ones. Returns how many were submitted. Blocking; run at start.
    pub fn resubmit_pending(&self) -> usize {
        let _turn = self.turn();
        let mut submitted = 0;
        for (path, tx) in self.pending(usize::MAX) {
            let id = tx.id();
            match self.inner.store.has_transaction(&id) {
                Ok(true) => {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, "pending read attestations not resubmitted");
                    return submitted;
                }
            }
            let TxBody::AttestRead { outcome, .. } = tx.payload.body.clone() else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let next = self.inner.admission.next_nonce(&self.inner.signer_public);
            let result = if next == Some(tx.payload.nonce) {
                self.admit(tx)
            } else {
                // Its nonce went to another transaction: sign it again.
                let _ = std::fs::remove_file(&path);
                self.sign_and_admit(outcome)
            };
            match result {
                Ok(_) => submitted += 1,
                Err(error) => tracing::error!(%error, "pending read attestation not resubmitted"),
            }
        }
        submitted
    }

    fn turn(&self) -> std::sync::MutexGuard<'_, ()> {
        match self.inner.submitting.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Up to `count_max` pending attestations, read back from disk; files
    /// that do not decode are removed (they were never admitted whole).
    fn pending(&self, count_max: usize) -> Vec<(PathBuf, SignedTransaction)> {
        let Ok(entries) = std::fs::read_dir(&self.inner.pending_dir) else {
            return Vec::new();
        };
        let mut pending = Vec::new();
        for entry in entries.flatten().take(count_max) {
            let path = entry.path();
            match std::fs::read(&path)
                .ok()
                .and_then(|bytes| SignedTransaction::from_bytes(&bytes).ok())
            {
                Some(tx) => pending.push((path, tx)),
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        pending.sort_by_key(|(_, tx)| tx.payload.nonce);
        pending
    }

    /// Forgets pending attestations the chain now holds.
    fn sweep_committed(&self) {
        for (path, tx) in self.pending(PENDING_SWEEP_FILES_MAX) {
            if matches!(self.inner.store.has_transaction(&tx.id()), Ok(true)) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    fn admit(&self, tx: SignedTransaction) -> Result<TxId, AttestError> {
        let mut results = self
            .inner
            .admission
            .admit(vec![Incoming::Decoded(Box::new(tx))], Source::Client);
        match results.pop() {
            Some(Ok(id)) => Ok(id),
            Some(Err(error)) => Err(AttestError::NotAdmitted(error.to_string())),
            None => Err(AttestError::NotAdmitted(
                "admission gave no answer".to_string(),
            )),
        }
    }

    /// Signs `outcome` with the next nonce, keeps it on disk until it is
    /// committed, and admits it. The caller holds the turn.
    fn sign_and_admit(&self, outcome: ReadOutcome) -> Result<TxId, AttestError> {
        let nonce = self
            .inner
            .admission
            .next_nonce(&self.inner.signer_public)
            .ok_or(AttestError::NoNonce)?;
        let tx = SignedTransaction::sign(
            TxBody::AttestRead {
                department: self.inner.department.clone(),
                outcome,
            },
            &self.inner.signer,
            nonce,
            &self.inner.chain_id,
        );
        let path = self.inner.pending_dir.join(tx.id().to_hex());
        crate::files::write_atomically(&path, &tx.to_bytes())
            .map_err(|error| AttestError::NotKept(error.to_string()))?;
        self.admit(tx)
    }

    /// The department this node serves reads for.
    pub fn department(&self) -> &DepartmentId {
        &self.inner.department
    }

    /// The node key's public half (what the chain holds as the
    /// department's `node_key`).
    pub fn node_key(&self) -> PublicKey {
        self.inner.signer_public
    }

    fn used_path(&self, access_tx: &TxId) -> PathBuf {
        self.inner.used_dir.join(hex::encode(access_tx.0))
    }

    /// Whether `access_tx` already served (or is serving) its download.
    pub fn is_used(&self, access_tx: &TxId) -> bool {
        self.used_path(access_tx).exists()
    }

    /// Claims `access_tx` for one download: `Ok(false)` when it was
    /// claimed before. The claim is on disk (file and folder synced) when
    /// this returns `Ok(true)`.
    pub fn claim(&self, access_tx: &TxId) -> io::Result<bool> {
        let path = self.used_path(access_tx);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => {
                file.sync_all()?;
                crate::files::sync_dir(&self.inner.used_dir)?;
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives back a claim when no byte of ciphertext was sent (the node's
    /// copy was missing or damaged): the member may ask again under the
    /// same record.
    pub fn release(&self, access_tx: &TxId) -> io::Result<()> {
        match std::fs::remove_file(self.used_path(access_tx)) {
            Ok(()) => crate::files::sync_dir(&self.inner.used_dir),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Runs the ledger's read rule for `request` against the committed
    /// state read through `store`, this node being the server.
    pub fn decide(
        &self,
        store: &StoreReader,
        request: &ReadRequest,
    ) -> Result<ReadPermit, ReadRefusal> {
        let storage = |error: custody_ledger::store::StoreError| {
            ReadRefusal::Storage(custody_ledger::state::ViewError(error.to_string()))
        };
        let access = match &request.access_tx {
            Some(id) => store
                .transaction(id)
                .map_err(storage)?
                .map(|stored| CommittedAccess {
                    tx_id: *id,
                    transaction: stored.transaction,
                    height: stored.location.height,
                }),
            None => None,
        };
        let access_used = request
            .access_tx
            .as_ref()
            .is_some_and(|id| self.is_used(id));
        check_read(
            store,
            &ReadQuestion {
                member: &request.member,
                document: &request.document,
                ciphertext_sha256: &request.ciphertext_sha256,
                access: access.as_ref(),
                serving_department: &self.inner.department,
                access_used,
            },
        )
    }

    /// Signs `outcome` with the node key and hands it to the mempool, to be
    /// gossiped and committed like any transaction. Blocking.
    pub fn attest(&self, outcome: ReadOutcome) -> Result<TxId, AttestError> {
        let _turn = self.turn();
        self.sweep_committed();
        self.sign_and_admit(outcome)
    }

    /// [`ReadDesk::attest`], logging the result: an attestation that could
    /// not be submitted is an error the operator must see, but the read's
    /// answer to the member does not wait for it.
    pub fn attest_logged(&self, outcome: ReadOutcome) {
        let kind = outcome.name();
        let document = outcome.document().to_string();
        match self.attest(outcome) {
            Ok(id) => tracing::info!(%document, kind, tx = %id, "read attested"),
            Err(error) => tracing::error!(%document, kind, %error, "read attestation lost"),
        }
    }

    /// Attests a refusal of the read rule, carrying the member's signed
    /// request.
    pub fn attest_denied(&self, request: &SignedReadRequest, refusal: &ReadRefusal) {
        if matches!(refusal, ReadRefusal::Storage(_)) {
            // The node could not read its own store: not the member's doing.
            return;
        }
        self.attest_logged(ReadOutcome::Denied {
            request: request.clone(),
            code: refusal.code().to_string(),
        });
    }
}

/// `reason` cut to [`FAILED_REASON_BYTES_MAX`] bytes on a character
/// boundary.
pub fn short_reason(reason: &str) -> String {
    if reason.len() <= FAILED_REASON_BYTES_MAX {
        return reason.to_string();
    }
    let mut end = FAILED_REASON_BYTES_MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}
