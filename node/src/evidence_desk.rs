//! The evidence desk: what this node does when its consensus finds a
//! validator equivocating (two conflicting signed votes for one height,
//! round and kind). It puts the two votes on chain as a `submit-evidence`
//! transaction signed with the department's node key, once; the ledger
//! decides whether they prove anything (`docs/rules.md` §10), and every
//! node then holds the record.
//!
//! The local file `data/evidence.jsonl` is a cache, one JSON object per
//! line (keys and hashes in lowercase hex), fsynced before the transaction
//! is submitted: at start every cached equivocation the chain does not
//! record yet is submitted again, so a stop between detecting and
//! committing loses nothing. The chain, not the file, is the record: a
//! line that does not parse (an older layout) is skipped with a warning.
//!
//! Conflicting proposals are logged and kept in the cache but not
//! submitted: the chain records equivocating votes, and a validator that
//! proposes two blocks votes for both.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use custody_consensus::Equivocation;
use custody_ledger::evidence::SignedVote;
use custody_ledger::state::TxRefusal;
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{DepartmentId, Height, PublicKey, TxId};
use serde::{Deserialize, Serialize};

use crate::admission::{Admission, Incoming, Refusal, Source};
use crate::mempool::AdmitError;
use crate::store_reader::StoreReader;

/// The cache file, under the node's data folder.
pub const EVIDENCE_CACHE_FILE: &str = "evidence.jsonl";

/// Lines read back from the cache at start; an equivocating validator
/// adds at most one per height and kind, so this is far above any real
/// file, and bounds the memory of a damaged one.
pub const EVIDENCE_CACHE_LINES_MAX: usize = 100_000;

/// Attempts to find a free nonce when another transaction of the node key
/// (a read attestation) took the one just asked for.
const NONCE_ATTEMPTS_MAX: usize = 3;

/// One cached equivocation: a line of `evidence.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedEvidence {
    pub validator: PublicKey,
    pub height: Height,
    pub round: custody_ledger::types::Round,
    /// `prevote`, `precommit` or `proposal`.
    pub kind: String,
    /// The two votes (absent for a proposal).
    pub first: Option<SignedVote>,
    pub second: Option<SignedVote>,
    /// The transaction this node submitted, once it did.
    pub submitted_tx: Option<TxId>,
}

/// Why evidence could not be handed to the mempool.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("the node's store could not be read to find the node key's next nonce")]
    NoNonce,
    #[error("the evidence was not admitted: {0}")]
    NotAdmitted(String),
}

struct Inner {
    department: DepartmentId,
    chain_id: String,
    signer: ed25519_dalek::SigningKey,
    signer_public: PublicKey,
    cache_path: PathBuf,
    store: StoreReader,
    admission: Admission,
    /// (validator, height) pairs submitted by this process: one submission
    /// each (the chain keeps one record per pair).
    submitted: Mutex<HashSet<(PublicKey, Height)>>,
}

/// The handle the consensus driver holds. Built by the composition root.
#[derive(Clone)]
pub struct EvidenceDesk {
    inner: Arc<Inner>,
}

impl EvidenceDesk {
    /// A desk keeping its cache under `data_dir`, signing with the
    /// department's node key `node_secret`.
    pub fn new(
        data_dir: &Path,
        department: DepartmentId,
        chain_id: &str,
        node_secret: [u8; 32],
        store: StoreReader,
        admission: Admission,
    ) -> EvidenceDesk {
        let signer = ed25519_dalek::SigningKey::from_bytes(&node_secret);
        let signer_public = PublicKey(signer.verifying_key().to_bytes());
        EvidenceDesk {
            inner: Arc::new(Inner {
                department,
                chain_id: chain_id.to_string(),
                signer,
                signer_public,
                cache_path: data_dir.join(EVIDENCE_CACHE_FILE),
                store,
                admission,
                submitted: Mutex::new(HashSet::new()),
            }),
        }
    }

    fn submitted(&self) -> MutexGuard<'_, HashSet<(PublicKey, Height)>> {
        // A set of plain values: a panic elsewhere cannot leave it torn.
        match self.inner.submitted.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes an equivocation consensus found: caches it, and submits it
    /// unless the chain records evidence against that validator at that
    /// height already or this node submitted it before.
    pub fn take(&self, equivocation: &Equivocation) {
        let first = equivocation.first.as_signed_vote();
        let second = equivocation.second.as_signed_vote();
        let kind = match &first {
            Some(vote) => vote.kind.name().to_string(),
            None => "proposal".to_string(),
        };
        let mut cached = CachedEvidence {
            validator: equivocation.second.validator,
            height: equivocation.second.height(),
            round: equivocation.second.round(),
            kind,
            first,
            second,
            submitted_tx: None,
        };
        if let (Some(first), Some(second)) = (first, second) {
            match self.submit_once(first, second) {
                Ok(Some(tx)) => cached.submitted_tx = Some(tx),
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    %error,
                    validator = %cached.validator,
                    height = cached.height.0,
                    "equivocation evidence not submitted; it stays in the cache and is submitted \
                     again when the node starts"
                ),
            }
        }
        if let Err(error) = self.append(&cached) {
            tracing::error!(
                %error,
                path = %self.inner.cache_path.display(),
                "cannot write the equivocation evidence cache"
            );
        }
    }

    /// Submits every cached equivocation the chain does not record yet
    /// (blocking; run at start). Returns how many were submitted.
    pub fn resubmit_cached(&self) -> usize {
        let mut submitted = 0;
        for cached in self.read_cache() {
            let (Some(first), Some(second)) = (cached.first, cached.second) else {
                continue;
            };
            match self.submit_once(first, second) {
                Ok(Some(_)) => submitted += 1,
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    %error,
                    validator = %cached.validator,
                    height = cached.height.0,
                    "cached equivocation evidence not submitted again"
                ),
            }
        }
        if submitted > 0 {
            tracing::info!(
                submitted,
                "cached equivocation evidence not yet on chain submitted again"
            );
        }
        submitted
    }

    /// The cache's lines that parse, at most [`EVIDENCE_CACHE_LINES_MAX`].
    pub fn read_cache(&self) -> Vec<CachedEvidence> {
        let file = match std::fs::File::open(&self.inner.cache_path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(error) => {
                tracing::warn!(
                    %error,
                    path = %self.inner.cache_path.display(),
                    "cannot read the equivocation evidence cache"
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let mut skipped = 0usize;
        for line in io::BufReader::new(file)
            .lines()
            .take(EVIDENCE_CACHE_LINES_MAX)
        {
            match line
                .ok()
                .and_then(|line| serde_json::from_str::<CachedEvidence>(&line).ok())
            {
                Some(cached) => out.push(cached),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                path = %self.inner.cache_path.display(),
                "lines of the equivocation evidence cache that are not in its current layout \
                 were skipped (the chain is the record; the cache only resubmits)"
            );
        }
        out
    }

    fn append(&self, cached: &CachedEvidence) -> io::Result<()> {
        let line = serde_json::to_string(cached).map_err(io::Error::other)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.inner.cache_path)?;
        writeln!(file, "{line}")?;
        file.sync_all()
    }

    /// Submits the two votes unless the chain holds evidence against their
    /// validator at their height or this process submitted it already.
    /// `Ok(None)`: nothing to submit.
    fn submit_once(
        &self,
        first: SignedVote,
        second: SignedVote,
    ) -> Result<Option<TxId>, EvidenceError> {
        let pair = (first.validator, first.height);
        if self.submitted().contains(&pair) {
            return Ok(None);
        }
        match self.inner.store.evidence(&pair.0, pair.1) {
            Ok(Some(_)) => return Ok(None),
            Ok(None) => {}
            Err(error) => return Err(EvidenceError::NotAdmitted(error.to_string())),
        }
        let mut last = EvidenceError::NoNonce;
        for _ in 0..NONCE_ATTEMPTS_MAX {
            let nonce = self
                .inner
                .admission
                .next_nonce(&self.inner.signer_public)
                .ok_or(EvidenceError::NoNonce)?;
            let tx = SignedTransaction::sign(
                TxBody::SubmitEvidence {
                    reporter: self.inner.department.clone(),
                    first,
                    second,
                },
                &self.inner.signer,
                nonce,
                &self.inner.chain_id,
            );
            let mut results = self
                .inner
                .admission
                .admit(vec![Incoming::Decoded(Box::new(tx))], Source::Client);
            match results.pop() {
                Some(Ok(id)) => {
                    self.submitted().insert(pair);
                    tracing::info!(
                        tx = %id,
                        validator = %pair.0,
                        height = pair.1 .0,
                        "equivocation evidence submitted"
                    );
                    return Ok(Some(id));
                }
                Some(Err(error)) => {
                    // Another node's evidence for the pair is waiting or
                    // committed: the chain will hold the record.
                    if matches!(
                        error,
                        Refusal::Mempool(
                            _,
                            AdmitError::Refused(TxRefusal::EvidenceAlreadyRecorded { .. })
                        )
                    ) {
                        self.submitted().insert(pair);
                        tracing::info!(
                            validator = %pair.0,
                            height = pair.1 .0,
                            "equivocation evidence already on its way to the chain"
                        );
                        return Ok(None);
                    }
                    last = EvidenceError::NotAdmitted(error.to_string());
                }
                None => {
                    last = EvidenceError::NotAdmitted("admission gave no answer".to_string());
                }
            }
        }
        Err(last)
    }
}
