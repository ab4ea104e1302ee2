//! Chain verification from genesis.
//!
//! Re-reads every stored byte, re-hashes it, checks hash links, Merkle
//! roots, every signature (batched, across threads) and every certificate
//! against the validator set in force at its height, and re-executes every
//! block from the genesis state. Nothing stored is trusted: not an index,
//! not a header field, not the stored state. A failure names the height,
//! the transaction when there is one, and the reason.

use std::fmt;

use crate::block::Block;
use crate::certificate::{CertificateError, CommitCertificate};
use crate::encoding::{self, DecodeError};
use crate::genesis::Genesis;
use crate::state::{self, MemoryState, Refusal, Signatures, StateView};
use crate::store::Store;
use crate::types::{BlockHash, Hash32, Height, PublicKey, Signature, Timestamp, TxId};
use custody_format::signature::{self, Rules};

/// Where verification reads blocks from: a store, an export, a peer.
pub trait BlockSource: Sync {
    /// Highest height available.
    fn latest_height(&self) -> Result<Height, String>;
    /// Stored bytes of block `height`.
    fn raw_block(&self, height: Height) -> Result<Option<Vec<u8>>, String>;
    /// Stored bytes of the certificate of block `height`.
    fn raw_certificate(&self, height: Height) -> Result<Option<Vec<u8>>, String>;
}

impl BlockSource for Store {
    fn latest_height(&self) -> Result<Height, String> {
        Store::latest_height(self).map_err(|e| e.to_string())
    }
    fn raw_block(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        Store::raw_block(self, height).map_err(|e| e.to_string())
    }
    fn raw_certificate(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        Store::raw_certificate(self, height).map_err(|e| e.to_string())
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("could not read: {0}")]
    Source(String),
    #[error("block is missing")]
    MissingBlock,
    #[error("certificate is missing")]
    MissingCertificate,
    #[error("stored block bytes do not decode: {0}")]
    BlockUndecodable(DecodeError),
    #[error("stored certificate bytes do not decode: {0}")]
    CertificateUndecodable(DecodeError),
    #[error("transaction signature is invalid")]
    BadTransactionSignature,
    #[error("signature of validator {validator} in the {which} certificate is invalid")]
    BadCertificateSignature {
        which: &'static str,
        validator: PublicKey,
    },
    #[error("the block's signatures each verify alone but not together")]
    SignatureBatchRefused,
    #[error("block refused on replay: {0}")]
    Refused(Refusal),
    #[error("stored certificate does not prove this block: {0}")]
    Certificate(CertificateError),
    #[error("replayed state {computed} differs from the stored state {stored}")]
    StateMismatch { computed: Hash32, stored: Hash32 },
    #[error("store was initialised with genesis {stored}, not {given}")]
    GenesisMismatch { stored: Hash32, given: Hash32 },
}

/// A verification failure: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    pub height: Height,
    /// Index and id of the transaction at fault, when one is.
    pub transaction: Option<(usize, TxId)>,
    /// Boxed: failures are rare and carry a whole refusal.
    pub failure: Box<Failure>,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "height {}", self.height)?;
        if let Some((index, id)) = &self.transaction {
            write!(f, ", transaction #{index} ({id})")?;
        }
        write!(f, ": {}", self.failure)
    }
}

impl std::error::Error for VerifyError {}

/// Progress reported after each verified block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub height: Height,
    pub latest: Height,
    pub transactions: u64,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub genesis_hash: Hash32,
    pub height: Height,
    pub last_block_hash: BlockHash,
    pub blocks: u64,
    pub transactions: u64,
    pub signatures: u64,
    pub state_digest: Hash32,
}

/// How to verify.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Threads for decoding and signature checks (0: one per core).
    pub threads: usize,
    /// Blocks read and checked in parallel per step; replay of one step
    /// overlaps the checks of the next two.
    pub chunk_blocks: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            threads: 0,
            chunk_blocks: 8,
        }
    }
}

struct Checked {
    block: Block,
    certificate: CommitCertificate,
    signatures: u64,
}

fn at(height: Height, failure: Failure) -> VerifyError {
    VerifyError {
        height,
        transaction: None,
        failure: Box::new(failure),
    }
}

/// Read, decode and check every signature of one block (no state needed).
fn decode_and_check_signatures(
    source: &dyn BlockSource,
    chain_id: &str,
    height: Height,
) -> Result<Checked, VerifyError> {
    let raw_block = source
        .raw_block(height)
        .map_err(|e| at(height, Failure::Source(e)))?
        .ok_or_else(|| at(height, Failure::MissingBlock))?;
    let raw_cert = source
        .raw_certificate(height)
        .map_err(|e| at(height, Failure::Source(e)))?
        .ok_or_else(|| at(height, Failure::MissingCertificate))?;
    let block: Block =
        encoding::decode(&raw_block).map_err(|e| at(height, Failure::BlockUndecodable(e)))?;
    let certificate: CommitCertificate =
        encoding::decode(&raw_cert).map_err(|e| at(height, Failure::CertificateUndecodable(e)))?;

    let tx_messages: Vec<Vec<u8>> = block
        .transactions
        .iter()
        .map(|t| t.signing_bytes())
        .collect();
    let cert_message = certificate.vote_bytes(chain_id);
    let last_message = block.last_commit.as_ref().map(|c| c.vote_bytes(chain_id));
    // Transactions under the plain rules, certificates under the strict
    // ones (as `CommitCertificate::verify`), in one batch.
    let mut items: Vec<(PublicKey, &[u8], Signature, Rules)> = Vec::new();
    for (t, m) in block.transactions.iter().zip(&tx_messages) {
        items.push((t.payload.signer, m, t.signature, Rules::Plain));
    }
    for s in &certificate.signatures {
        items.push((s.validator, &cert_message, s.signature, Rules::Strict));
    }
    if let (Some(c), Some(m)) = (&block.last_commit, &last_message) {
        for s in &c.signatures {
            items.push((s.validator, m, s.signature, Rules::Strict));
        }
    }
    let signatures = items.len() as u64;
    if !signature::verify_batch_mixed(&items) {
        // Name the first culprit, in block order.
        for (index, (t, m)) in block.transactions.iter().zip(&tx_messages).enumerate() {
            if !encoding::verify_bytes(&t.payload.signer, m, &t.signature) {
                return Err(VerifyError {
                    height,
                    transaction: Some((index, t.id())),
                    failure: Box::new(Failure::BadTransactionSignature),
                });
            }
        }
        if let (Some(c), Some(m)) = (&block.last_commit, &last_message) {
            for s in &c.signatures {
                if !signature::verify_strict(&s.validator, m, &s.signature) {
                    return Err(at(
                        height,
                        Failure::BadCertificateSignature {
                            which: "previous block's",
                            validator: s.validator,
                        },
                    ));
                }
            }
        }
        for s in &certificate.signatures {
            if !signature::verify_strict(&s.validator, &cert_message, &s.signature) {
                return Err(at(
                    height,
                    Failure::BadCertificateSignature {
                        which: "stored",
                        validator: s.validator,
                    },
                ));
            }
        }
        // Each verified alone but the batch refused them: never accepted.
        return Err(at(height, Failure::SignatureBatchRefused));
    }
    Ok(Checked {
        block,
        certificate,
        signatures,
    })
}

fn thread_count(options: &VerifyOptions) -> usize {
    if options.threads > 0 {
        options.threads
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Decode and check the signatures of `heights` on `workers` threads, each
/// taking every `workers`-th block so that the work is spread evenly.
fn check_chunk(
    source: &dyn BlockSource,
    chain_id: &str,
    heights: &[Height],
    workers: usize,
) -> Vec<Result<Checked, VerifyError>> {
    if workers <= 1 {
        return heights
            .iter()
            .map(|h| decode_and_check_signatures(source, chain_id, *h))
            .collect();
    }
    let mut results: Vec<Option<Result<Checked, VerifyError>>> =
        (0..heights.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|t| {
                scope.spawn(move || {
                    heights
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(workers)
                        .map(|(i, h)| (i, decode_and_check_signatures(source, chain_id, *h)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, r) in done {
                        results[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results
        .into_iter()
        .zip(heights)
        .map(|(r, h)| r.unwrap_or_else(|| Err(at(*h, Failure::Source("block not read".into())))))
        .collect()
}

/// Chunks of checked blocks handed from the checking threads to the replay.
type CheckedChunk = Vec<(Height, Result<Checked, VerifyError>)>;

/// Verify the chain in `source` from `genesis`, returning the report and
/// the replayed state. `progress` is called after each block.
///
/// Pipelined: while this thread replays one chunk of blocks in order, the
/// other threads decode the next chunks and batch-verify their signatures,
/// so replay and signature checks overlap.
pub fn verify_chain(
    genesis: &Genesis,
    source: &dyn BlockSource,
    options: VerifyOptions,
    mut progress: impl FnMut(Progress),
) -> Result<(VerifyReport, MemoryState), VerifyError> {
    let latest = source
        .latest_height()
        .map_err(|e| at(Height(0), Failure::Source(e)))?;
    let mut state = MemoryState::from_genesis(genesis);
    let chain_id = genesis.chain_id.clone();
    let threads = thread_count(&options).max(1);
    // Signature checks dominate (replay alone runs several times faster),
    // so every core checks signatures and the replay thread takes what
    // time is left between chunks.
    let workers = threads;
    let chunk = options.chunk_blocks.max(1) as u64;
    let mut transactions = 0u64;
    let mut signatures = 0u64;
    std::thread::scope(|scope| -> Result<(), VerifyError> {
        // At most two chunks wait checked: bounded memory.
        let (sender, receiver) = std::sync::mpsc::sync_channel::<CheckedChunk>(2);
        let chain_id = chain_id.as_str();
        scope.spawn(move || {
            let mut next = 1u64;
            while next <= latest.0 {
                let end = next.saturating_add(chunk - 1).min(latest.0);
                let heights: Vec<Height> = (next..=end).map(Height).collect();
                let results = check_chunk(source, chain_id, &heights, workers);
                let checked = heights.into_iter().zip(results).collect();
                if sender.send(checked).is_err() {
                    // The replay stopped at a failure: nothing more to do.
                    return;
                }
                next = end + 1;
            }
        });
        // Replay in order; the first failure in height order wins.
        for checked_chunk in receiver {
            for (height, result) in checked_chunk {
                let checked = result?;
                let chain = state
                    .chain()
                    .map_err(|e| at(height, Failure::Source(e.to_string())))?;
                let changes =
                    state::apply_block_with(&state, &checked.block, Signatures::AlreadyVerified)
                        .map_err(|refusal| {
                            let transaction = match &refusal {
                                Refusal::Transaction { index, tx_id, .. } => Some((*index, *tx_id)),
                                _ => None,
                            };
                            VerifyError {
                                height,
                                transaction,
                                failure: Box::new(Failure::Refused(refusal)),
                            }
                        })?;
                // The stored certificate must prove this very block under
                // the validator set in force at its height.
                checked
                    .certificate
                    .verify_power(height, &checked.block.hash(), &chain.validator_set)
                    .map_err(|e| at(height, Failure::Certificate(e)))?;
                transactions += checked.block.transactions.len() as u64;
                signatures += checked.signatures;
                state.apply(changes);
                progress(Progress {
                    height,
                    latest,
                    transactions,
                });
            }
        }
        Ok(())
    })?;
    let chain = state
        .chain()
        .map_err(|e| at(latest, Failure::Source(e.to_string())))?;
    if chain.height != latest {
        return Err(at(
            chain.height.next(),
            Failure::Source("verification stopped before the latest height".into()),
        ));
    }
    let report = VerifyReport {
        genesis_hash: genesis.hash(),
        height: chain.height,
        last_block_hash: chain.last_block_hash,
        blocks: chain.height.0,
        transactions,
        signatures,
        state_digest: state.digest(),
    };
    Ok((report, state))
}

/// Verify a store: its chain from `genesis` (or from the genesis stored in
/// it), and that the state it holds is the state the replay computes.
pub fn verify_store(
    store: &Store,
    genesis: Option<&Genesis>,
    options: VerifyOptions,
    progress: impl FnMut(Progress),
) -> Result<VerifyReport, VerifyError> {
    let stored_genesis = store
        .genesis()
        .map_err(|e| at(Height(0), Failure::Source(e.to_string())))?;
    if let Some(given) = genesis {
        if given.hash() != stored_genesis.hash() {
            return Err(at(
                Height(0),
                Failure::GenesisMismatch {
                    stored: stored_genesis.hash(),
                    given: given.hash(),
                },
            ));
        }
    }
    let (report, _state) = verify_chain(&stored_genesis, store, options, progress)?;
    let stored = store
        .state_digest()
        .map_err(|e| at(report.height, Failure::Source(e.to_string())))?;
    if stored != report.state_digest {
        return Err(at(
            report.height,
            Failure::StateMismatch {
                computed: report.state_digest,
                stored,
            },
        ));
    }
    Ok(report)
}

/// What a verified export holds: the counts its verification checked and
/// where its chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub chain_id: String,
    /// The genesis the chain was verified from.
    pub genesis_hash: Hash32,
    pub blocks: u64,
    pub transactions: u64,
    /// Commit certificates checked: one per block.
    pub certificates: u64,
    /// Transaction and certificate signatures checked.
    pub signatures: u64,
    /// The last height of the export.
    pub height: Height,
    pub last_block_hash: BlockHash,
    /// The last block's time (the genesis time for an export of no block).
    pub last_block_time: Timestamp,
    /// The digest of the state the replay built at the last height.
    pub state_digest: Hash32,
    /// The export hash its trailer carries (checked against its bytes).
    pub export_hash: Hash32,
}

/// Which check an export failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportCheck {
    /// The bytes are not a chain export at all (magic bytes, format
    /// version, an unreadable genesis).
    NotAnExport,
    /// The export starts from another genesis than the one trusted.
    Genesis,
    /// The entries are cut short or out of order.
    Framing,
    /// A block or its certificate does not verify.
    Chain,
    /// The trailer's counts or export hash disagree with the bytes.
    Trailer,
}

/// Why an export does not verify: the height when one is at fault, which
/// check failed, and the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct VerifyFailure {
    pub height: Option<Height>,
    pub check: ExportCheck,
    pub reason: String,
}

/// Verify a chain export held in memory against the genesis the caller
/// trusts: the framing, the export's genesis (it must be `genesis`), every
/// block from it (hash links, Merkle roots, every signature, every
/// certificate against the validator set in force, re-execution), then the
/// trailer's counts and export hash. Reads nothing but `bytes`, prints
/// nothing.
pub fn verify_export(
    genesis: &Genesis,
    bytes: &[u8],
    options: VerifyOptions,
) -> Result<ExportReport, VerifyFailure> {
    use crate::export::{self, ExportError, ExportVerifyError};
    let trusted = genesis.hash();
    match export::verify_export_bytes(bytes, Some(trusted), options, |_| {}) {
        Ok((report, state, slice)) => Ok(ExportReport {
            chain_id: slice.genesis().chain_id.clone(),
            genesis_hash: report.genesis_hash,
            blocks: report.blocks,
            transactions: report.transactions,
            certificates: report.blocks,
            signatures: report.signatures,
            height: report.height,
            last_block_hash: report.last_block_hash,
            last_block_time: state
                .chain()
                .map(|chain| chain.last_time)
                .unwrap_or(slice.genesis().genesis_time),
            state_digest: report.state_digest,
            export_hash: slice
                .trailer()
                .map(|trailer| trailer.export_hash)
                .unwrap_or_default(),
        }),
        Err(ExportVerifyError::Chain(error)) => Err(VerifyFailure {
            height: Some(error.height),
            check: ExportCheck::Chain,
            reason: error.to_string(),
        }),
        Err(error @ ExportVerifyError::GenesisNotExpected { .. }) => Err(VerifyFailure {
            height: None,
            check: ExportCheck::Genesis,
            reason: error.to_string(),
        }),
        Err(ExportVerifyError::File(error)) => {
            let check = match &error {
                ExportError::BadMagic
                | ExportError::UnsupportedVersion(_)
                | ExportError::Genesis(_) => ExportCheck::NotAnExport,
                ExportError::Truncated { what, .. } if header_part(what) => {
                    ExportCheck::NotAnExport
                }
                ExportError::ExportHash { .. }
                | ExportError::TrailerBlocks { .. }
                | ExportError::TrailerHeight { .. }
                | ExportError::TrailerTransactions { .. }
                | ExportError::TrailerLastBlock { .. }
                | ExportError::TrailingBytes(_) => ExportCheck::Trailer,
                _ => ExportCheck::Framing,
            };
            let height = match check {
                ExportCheck::Framing => Some(failing_entry(bytes)),
                _ => None,
            };
            Err(VerifyFailure {
                height,
                check,
                reason: error.to_string(),
            })
        }
    }
}

/// Whether a cut-short `what` lies before the first block: then the bytes
/// are not recognisably an export.
fn header_part(what: &str) -> bool {
    matches!(
        what,
        "the magic bytes" | "the format version" | "the genesis"
    )
}

/// The height of the block entry an export's framing breaks at: the one
/// after the last entry that reads whole.
fn failing_entry(bytes: &[u8]) -> Height {
    let mut height = Height(1);
    if let Ok(mut reader) = crate::export::ExportReader::new(bytes) {
        while let Ok(Some(entry)) = reader.next_entry() {
            height = entry.height.next();
        }
    }
    height
}

/// Blocks and certificates held in memory as their canonical bytes (an
/// export being checked, a bench, a test).
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    /// `(block bytes, certificate bytes)` for heights 1, 2, ...
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl MemorySource {
    /// From decoded blocks and certificates, in height order.
    pub fn from_blocks<'a>(
        blocks: impl IntoIterator<Item = (&'a Block, &'a CommitCertificate)>,
    ) -> Self {
        MemorySource {
            entries: blocks
                .into_iter()
                .map(|(b, c)| (b.to_bytes(), c.to_bytes()))
                .collect(),
        }
    }
}

impl BlockSource for MemorySource {
    fn latest_height(&self) -> Result<Height, String> {
        Ok(Height(self.entries.len() as u64))
    }
    fn raw_block(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        Ok(self.entry(height).map(|e| e.0.clone()))
    }
    fn raw_certificate(&self, height: Height) -> Result<Option<Vec<u8>>, String> {
        Ok(self.entry(height).map(|e| e.1.clone()))
    }
}

impl MemorySource {
    fn entry(&self, height: Height) -> Option<&(Vec<u8>, Vec<u8>)> {
        let index = usize::try_from(height.0.checked_sub(1)?).ok()?;
        self.entries.get(index)
    }
}

/// Why a document's event list is not an unbroken hash chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("event {index} is for document `{found}`, not `{expected}`")]
    WrongDocument {
        index: usize,
        expected: crate::types::DocumentId,
        found: crate::types::DocumentId,
    },
    #[error("event {index} has sequence number {found}, expected {expected}")]
    WrongSequence {
        index: usize,
        expected: u64,
        found: u64,
    },
    #[error(
        "event {index} names previous event {found}, but the event before hashes to {expected}"
    )]
    BrokenLink {
        index: usize,
        expected: crate::types::EventHash,
        found: crate::types::EventHash,
    },
    #[error("the last event hashes to {found}, but the document names {expected} as its latest")]
    WrongLatest {
        expected: crate::types::EventHash,
        found: crate::types::EventHash,
    },
}

/// Check that `events` (a document's whole history, oldest first, e.g. all
/// pages of `Store::document_history`) form one unbroken hash chain ending
/// at `latest` (the document's `latest_event`). This checks the chain of
/// events only; that each event came from a committed transaction is shown
/// by verifying the chain and looking the transactions up.
pub fn verify_document_history(
    document: &crate::types::DocumentId,
    events: &[crate::records::DocumentEvent],
    latest: &crate::types::EventHash,
) -> Result<(), HistoryError> {
    let mut previous = crate::types::EventHash::ZERO;
    for (index, event) in events.iter().enumerate() {
        if event.document != *document {
            return Err(HistoryError::WrongDocument {
                index,
                expected: document.clone(),
                found: event.document.clone(),
            });
        }
        if event.sequence != index as u64 {
            return Err(HistoryError::WrongSequence {
                index,
                expected: index as u64,
                found: event.sequence,
            });
        }
        if event.previous != previous {
            return Err(HistoryError::BrokenLink {
                index,
                expected: previous,
                found: event.previous,
            });
        }
        previous = event.hash();
    }
    if previous != *latest {
        return Err(HistoryError::WrongLatest {
            expected: *latest,
            found: previous,
        });
    }
    Ok(())
}
