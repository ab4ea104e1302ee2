//! The sled store: the only module that knows sled.
//!
//! One sled tree holds everything under one-byte key prefixes, so that a
//! block, its certificate, its state changes and its indexes are written by
//! one atomic `apply_batch` and flushed to disk before [`Store::commit`]
//! returns. Values are the canonical postcard bytes of the ledger types;
//! blocks and certificates are kept exactly as they will be re-hashed by
//! verification.
//!
//! Key layout (heights and sequence numbers are 8-byte big-endian so that
//! byte order is numeric order):
//!
//! | prefix | key | value |
//! | --- | --- | --- |
//! | `G` | — | genesis |
//! | `I` | — | [`ChainInfo`] |
//! | `P` | — | [`Parameters`] |
//! | `B` | height | block |
//! | `C` | height | commit certificate of that block |
//! | `H` | block hash | height |
//! | `T` | tx id | [`TxLocation`] |
//! | `D` | department id | [`Department`] |
//! | `M` | member key | [`Member`] |
//! | `N` | signer key | last nonce (u64 big-endian) |
//! | `O` | document id | [`Document`] |
//! | `E` | document id, 0x00, sequence | [`DocumentEvent`] |
//! | `R` | proposal id | [`Proposal`] |
//! | `V` | height | [`ValidatorSet`] in force from that height |
//! | `Q` | validator key, height | [`EvidenceRecord`] (equivocation evidence) |
//! | `S` | subject tag, document id | — (index: the documents of a subject) |
//! | `J` | — | — (marks the `S` index as built for every stored document) |

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{de::DeserializeOwned, Serialize};

use crate::block::Block;
use crate::certificate::CommitCertificate;
use crate::encoding::{self, DecodeError};
use crate::evidence::EvidenceRecord;
use crate::genesis::{Genesis, GenesisError};
use crate::read_cache::{insert_bounded, ReadCache};
use crate::records::{
    Department, Document, DocumentEvent, DocumentStatus, EventKind, Member, Parameters, Proposal,
    TxLocation, ValidatorSet,
};
use crate::state::{self, ChainInfo, StateChanges, StateDigest, StateView, ViewError};
use crate::tx::SignedTransaction;
use crate::types::{
    BlockHash, DepartmentId, DocumentId, Hash32, Height, Nonce, ProposalId, PublicKey, TxId,
};

/// Largest page any list query returns.
pub const PAGE_LIMIT_MAX: usize = 1000;

// A page must hold at least one item, or paging never advances; and a
// page limit travels as a u32 in queries.
const _: () = assert!(PAGE_LIMIT_MAX > 0);
const _: () = assert!(PAGE_LIMIT_MAX <= u32::MAX as usize);

const GENESIS: &[u8] = b"G";
const CHAIN: &[u8] = b"I";
const PARAMETERS: &[u8] = b"P";
const BLOCK: u8 = b'B';
const CERTIFICATE: u8 = b'C';
const BLOCK_HASH: u8 = b'H';
const TX: u8 = b'T';
const DEPARTMENT: u8 = b'D';
const MEMBER: u8 = b'M';
const NONCE: u8 = b'N';
const DOCUMENT: u8 = b'O';
const EVENT: u8 = b'E';
const PROPOSAL: u8 = b'R';
const VALIDATOR_SET: u8 = b'V';
const EVIDENCE: u8 = b'Q';
const SUBJECT: u8 = b'S';
const SUBJECT_INDEX_BUILT: &[u8] = b"J";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(String),
    #[error("stored {what} at key {key} is corrupt: {error}")]
    Corrupt {
        what: &'static str,
        key: String,
        error: DecodeError,
    },
    #[error("the store at this path holds no chain; initialise it with a genesis")]
    NotInitialized,
    #[error("the store holds chain with genesis {stored}, not the given genesis {given}")]
    GenesisMismatch { stored: Hash32, given: Hash32 },
    #[error("stored genesis is invalid: {0}")]
    Genesis(#[from] GenesisError),
    #[error("block height {found} is not the next height {expected}")]
    NotNextBlock { expected: Height, found: Height },
    #[error("block's previous hash {found} is not the last block {expected}")]
    WrongParent {
        expected: BlockHash,
        found: BlockHash,
    },
    #[error("certificate is for height {height} block {hash}, not the block being committed")]
    CertificateMismatch { height: Height, hash: BlockHash },
    #[error("state changes are for height {found}, not the block's height {expected}")]
    ChangesMismatch { expected: Height, found: Height },
    #[error("the bytes given for block {height} are not that block's encoding")]
    BytesMismatch { height: Height },
    #[error("page limit {0} is out of range 1..={PAGE_LIMIT_MAX}")]
    BadPageLimit(usize),
    #[error(
        "the ledger store at {path} is in use by another process (a running node?); \
         stop that process, or work on a copy of the directory"
    )]
    Locked { path: PathBuf },
    #[error(
        "the ledger store at {path} is damaged and is not used: {detail}; \
         {REPAIR_HINT}"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the ledger store at {path} disagrees with itself and is not used: {detail}; \
         {REPAIR_HINT}"
    )]
    HeadMismatch { path: PathBuf, detail: String },
}

/// The next step named by every error about a damaged store.
pub const REPAIR_HINT: &str = "next step: stop the node and rebuild the store with \
     `custody node repair --home HOME --peer URL` (or `--from-export FILE --genesis FILE`), \
     which keeps the damaged store aside and imports only verified blocks, then run \
     `custody node check --home HOME` (docs/operations.md, \"A damaged or rolled-back store\")";

impl StoreError {
    /// True when the error says the store's files cannot be trusted (as
    /// opposed to a wrong argument, a lock held or a refused commit).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(_)
                | StoreError::Corrupt { .. }
                | StoreError::Damaged { .. }
                | StoreError::HeadMismatch { .. }
                | StoreError::Genesis(_)
        )
    }
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "the storage engine panicked".to_string()
    }
}

/// Runs `f`, turning a panic of the storage engine (which it raises on
/// some damaged files instead of returning an error) into
/// [`StoreError::Damaged`] naming `path`.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(StoreError::Damaged {
            path: path.to_path_buf(),
            detail: format!(
                "the storage engine failed reading it ({})",
                panic_message(payload.as_ref())
            ),
        }),
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e.to_string())
    }
}

/// A committed transaction with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTransaction {
    pub transaction: SignedTransaction,
    pub location: TxLocation,
    pub block_hash: BlockHash,
}

/// The ciphertexts committed transactions name (`Store::ciphertext_names`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiphertextNames {
    /// Named by a document that is not disposed: kept.
    pub live: std::collections::HashSet<Hash32>,
    /// Named by a disposed document (the first such document, in id
    /// order), and maybe also by a live one.
    pub disposed: std::collections::BTreeMap<Hash32, DocumentId>,
}

/// One page of a list; pass `next` back as the cursor for the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

/// The ledger's durable store. Clones share the database and the cache of
/// decoded records (`read_cache.rs`).
#[derive(Clone)]
pub struct Store {
    path: Arc<PathBuf>,
    db: sled::Db,
    tree: sled::Tree,
    cache: Arc<Mutex<ReadCache>>,
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn height_key(prefix: u8, height: Height) -> Vec<u8> {
    key(prefix, &height.0.to_be_bytes())
}

fn evidence_key(validator: &PublicKey, height: Height) -> Vec<u8> {
    let mut k = key(EVIDENCE, &validator.0);
    k.extend_from_slice(&height.0.to_be_bytes());
    k
}

fn subject_key(tag: &Hash32, document: &DocumentId) -> Vec<u8> {
    let mut k = key(SUBJECT, &tag.0);
    k.extend_from_slice(document.as_str().as_bytes());
    k
}

fn event_key(document: &DocumentId, sequence: u64) -> Vec<u8> {
    let mut k = event_prefix(document);
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

fn event_prefix(document: &DocumentId) -> Vec<u8> {
    // Document ids never contain 0x00, so the separator keeps one
    // document's events apart from another whose id extends this one.
    let mut k = key(EVENT, document.as_str().as_bytes());
    k.push(0);
    k
}

fn decode_at<T: Serialize + DeserializeOwned>(
    what: &'static str,
    k: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    encoding::decode(bytes).map_err(|error| StoreError::Corrupt {
        what,
        key: hex::encode(k),
        error,
    })
}

fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 || limit > PAGE_LIMIT_MAX {
        return Err(StoreError::BadPageLimit(limit));
    }
    Ok(())
}

/// Longest wait for the store's file lock at open (see `open_raw`).
const STORE_LOCK_WAIT_MS_MAX: u64 = 3_000;
/// Pause between two attempts to take the lock.
const STORE_LOCK_RETRY_MS: u64 = 25;
const _: () = assert!(STORE_LOCK_RETRY_MS < STORE_LOCK_WAIT_MS_MAX);

/// Blocks below the head whose hash links (and certificates' block
/// hashes) are checked at every open. The head block's certificate is
/// checked against the validator set, and each block's header names its
/// parent's hash, so damage anywhere in this tail breaks a link and is
/// found. 64 blocks keep an open of a store of full blocks (a few hundred
/// KiB each) to a few tens of MiB of reading; the whole chain is checked by
/// `custody audit verify --store`.
pub const HEAD_CHECK_TAIL_BLOCKS: u64 = 64;
const _: () = assert!(HEAD_CHECK_TAIL_BLOCKS >= 2);

/// What [`Store::check_head`] found: the head and how far down it was
/// checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadCheck {
    /// The height the head record (`I`) names, which the last stored block
    /// and certificate agree with.
    pub height: Height,
    /// That block's hash.
    pub hash: BlockHash,
    /// Lowest height whose link to the head was checked (the head itself
    /// at height 0 or 1).
    pub linked_from: Height,
}

impl HeadCheck {
    /// Where the head height came from, for reports.
    pub const SOURCE: &'static str = "the store's head record, matching its last block and \
         last certificate (certificate checked against the validator set)";
}

/// An open-time failure named as the store's: engine errors and undecodable
/// records mean the files cannot be trusted.
fn at_open(path: &Path, error: StoreError) -> StoreError {
    match error {
        StoreError::Sled(detail) => StoreError::Damaged {
            path: path.to_path_buf(),
            detail,
        },
        error @ (StoreError::Corrupt { .. } | StoreError::Genesis(_)) => StoreError::Damaged {
            path: path.to_path_buf(),
            detail: error.to_string(),
        },
        other => other,
    }
}

impl Store {
    /// Open an existing store, checking its head (see
    /// [`Store::check_head`]).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        guarded(path, || {
            let store = Self::open_raw(path)?;
            if store.read(GENESIS)?.is_none() {
                if store.tree.is_empty() {
                    return Err(StoreError::NotInitialized);
                }
                return Err(StoreError::Damaged {
                    path: path.to_path_buf(),
                    detail: "its genesis record is missing while it holds other records"
                        .to_string(),
                });
            }
            store.genesis()?;
            store.load_member_keys()?;
            store.check_head()?;
            store.build_subject_index()?;
            Ok(store)
        })
        .map_err(|error| at_open(path, error))
    }

    /// Open the store at `path`, writing the genesis state if it is new, or
    /// checking that it holds the chain of this genesis (and that its head
    /// holds together, [`Store::check_head`]) if not.
    pub fn open_or_init(path: &Path, genesis: &Genesis) -> Result<Store, StoreError> {
        guarded(path, || {
            let store = Self::open_raw(path)?;
            match store.read(GENESIS)? {
                Some(bytes) => {
                    let stored = Genesis::from_bytes(&bytes)?;
                    if stored.hash() != genesis.hash() {
                        return Err(StoreError::GenesisMismatch {
                            stored: stored.hash(),
                            given: genesis.hash(),
                        });
                    }
                    store.check_head()?;
                    store.build_subject_index()?;
                }
                // Only an empty store is new: one that lost its genesis
                // record is damaged, and initialising it again would start
                // the chain over on top of what is left.
                None if !store.tree.is_empty() => {
                    return Err(StoreError::Damaged {
                        path: path.to_path_buf(),
                        detail: "its genesis record is missing while it holds other records"
                            .to_string(),
                    });
                }
                None => {
                    let mut batch = sled::Batch::default();
                    store.write_changes(&mut batch, &state::genesis_changes(genesis));
                    batch.insert(GENESIS, genesis.to_bytes());
                    batch.insert(SUBJECT_INDEX_BUILT, &[][..]);
                    store.tree.apply_batch(batch)?;
                    store.cache().invalidate();
                    store.db.flush()?;
                }
            }
            store.load_member_keys()?;
            Ok(store)
        })
        .map_err(|error| at_open(path, error))
    }

    /// The directory this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One record, with a panic of the engine turned into an error.
    fn read(&self, k: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        guarded(&self.path, || Ok(self.tree.get(k)?))
    }

    /// The height of the last record under a height-keyed `prefix`.
    fn last_height_under(&self, prefix: u8) -> Result<Option<Height>, StoreError> {
        guarded(&self.path, || {
            match self.tree.scan_prefix([prefix]).next_back() {
                None => Ok(None),
                Some(entry) => {
                    let (k, _) = entry?;
                    let array: [u8; 8] = k
                        .get(1..)
                        .and_then(|rest| rest.try_into().ok())
                        .ok_or_else(|| StoreError::Corrupt {
                            what: "height key",
                            key: hex::encode(&k),
                            error: DecodeError::Malformed("not 8 bytes".to_string()),
                        })?;
                    Ok(Some(Height(u64::from_be_bytes(array))))
                }
            }
        })
    }

    fn head_mismatch(&self, detail: String) -> StoreError {
        StoreError::HeadMismatch {
            path: self.path.to_path_buf(),
            detail,
        }
    }

    /// Checks that the head record (`I`), the last stored block and the
    /// last stored certificate name the same height and block; that the
    /// certificate proves that block under the validator set in force at
    /// its height; and that the [`HEAD_CHECK_TAIL_BLOCKS`] blocks below it
    /// hash-link up to it, each with a certificate for its own hash.
    ///
    /// The validator set is read from the store: this finds damage and
    /// rollback, not a store forged with keys of its own (a verification
    /// from the genesis, `custody audit verify`, finds that).
    pub fn check_head(&self) -> Result<HeadCheck, StoreError> {
        let chain = self.chain_info()?;
        let height = chain.height;
        let last_block = self.last_height_under(BLOCK)?;
        let last_certificate = self.last_height_under(CERTIFICATE)?;
        let named = |h: Option<Height>| h.map_or("none".to_string(), |h| h.0.to_string());
        let expected = (height.0 > 0).then_some(height);
        if last_block != expected || last_certificate != expected {
            return Err(self.head_mismatch(format!(
                "its head record names height {}, its last block is at height {} and its last \
                 certificate at height {}",
                height.0,
                named(last_block),
                named(last_certificate)
            )));
        }
        if height.0 == 0 {
            return Ok(HeadCheck {
                height,
                hash: chain.last_block_hash,
                linked_from: height,
            });
        }
        let head = self.checked_block(height)?;
        let hash = head.hash();
        if hash != chain.last_block_hash {
            return Err(self.head_mismatch(format!(
                "its head record names block {} at height {}, but the block stored there is {hash}",
                chain.last_block_hash, height.0
            )));
        }
        let certificate = self.checked_certificate(height)?;
        match self.validator_set_at(height)? {
            Some(set) if set == chain.last_validator_set => {}
            _ => {
                return Err(self.head_mismatch(format!(
                    "the validator set recorded for height {} is not the one its head record names",
                    height.0
                )))
            }
        }
        certificate
            .verify_commit_of(&chain.chain_id, height, &hash, &chain.last_validator_set)
            .map_err(|error| {
                self.head_mismatch(format!(
                    "the certificate of head block {} does not prove it: {error}",
                    height.0
                ))
            })?;
        let lowest = Height(height.0.saturating_sub(HEAD_CHECK_TAIL_BLOCKS - 1).max(1));
        let mut child = head;
        let mut at = height;
        while at > lowest {
            let below = Height(at.0 - 1);
            let block = self.checked_block(below)?;
            let below_hash = block.hash();
            if child.header.previous_block_hash != below_hash {
                return Err(self.head_mismatch(format!(
                    "block {} does not link to the block stored at height {} (its parent is {}, \
                     the stored block is {below_hash})",
                    at.0, below.0, child.header.previous_block_hash
                )));
            }
            let certificate = self.checked_certificate(below)?;
            if certificate.block_hash != below_hash || certificate.height != below {
                return Err(self.head_mismatch(format!(
                    "the certificate stored at height {} is not for the block stored there",
                    below.0
                )));
            }
            child = block;
            at = below;
        }
        if at == Height(1)
            && child.header.previous_block_hash != BlockHash::from(chain.genesis_hash)
        {
            return Err(self.head_mismatch("block 1 does not link to the genesis".to_string()));
        }
        Ok(HeadCheck {
            height,
            hash,
            linked_from: at,
        })
    }

    /// Block `height`, which must be stored and decode.
    fn checked_block(&self, height: Height) -> Result<Block, StoreError> {
        self.block(height)?.ok_or_else(|| {
            self.head_mismatch(format!("block {} is missing below its head", height.0))
        })
    }

    /// Certificate of block `height`, which must be stored and decode.
    fn checked_certificate(&self, height: Height) -> Result<CommitCertificate, StoreError> {
        self.certificate(height)?.ok_or_else(|| {
            self.head_mismatch(format!("the certificate of block {} is missing", height.0))
        })
    }

    /// Reads every member key into the cache (see `read_cache.rs`).
    fn load_member_keys(&self) -> Result<(), StoreError> {
        let mut keys = std::collections::HashSet::new();
        for entry in self.tree.scan_prefix([MEMBER]) {
            let (k, _) = entry?;
            let bytes: [u8; 32] = k
                .get(1..)
                .and_then(|rest| rest.try_into().ok())
                .ok_or_else(|| StoreError::Corrupt {
                    what: "member key",
                    key: hex::encode(&k),
                    error: DecodeError::Malformed("not 32 bytes".to_string()),
                })?;
            keys.insert(PublicKey(bytes));
        }
        self.cache().member_keys = Some(keys);
        Ok(())
    }

    /// Whether a running process (a node) holds the store at `path`,
    /// found without opening it: opening lets the engine recover, and so
    /// rewrite, a damaged log, and a store that is to be kept aside as it
    /// was must not be touched. Waits, as opening does, up to
    /// `STORE_LOCK_WAIT_MS_MAX` for a lock that is being released.
    pub fn in_use(path: &Path) -> Result<bool, StoreError> {
        use std::os::unix::io::AsRawFd;
        // The engine's lock: an exclusive flock on its main file.
        let file = path.join("db");
        let handle = match std::fs::File::open(&file) {
            Ok(handle) => handle,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => {
                return Err(StoreError::Damaged {
                    path: path.to_path_buf(),
                    detail: format!("cannot open {}: {error}", file.display()),
                })
            }
        };
        let waited = std::time::Instant::now();
        loop {
            // SAFETY: flock on a descriptor this function owns; no memory is
            // shared with the call.
            let locked = unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if locked == 0 {
                // SAFETY: as above.
                unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_UN) };
                return Ok(false);
            }
            if waited.elapsed() >= std::time::Duration::from_millis(STORE_LOCK_WAIT_MS_MAX) {
                return Ok(true);
            }
            std::thread::sleep(std::time::Duration::from_millis(STORE_LOCK_RETRY_MS));
        }
    }

    fn open_raw(path: &Path) -> Result<Store, StoreError> {
        // The engine releases its file lock from a background thread after
        // the last handle is dropped, so a store closed a moment ago (by
        // this process, or by a command that just exited) can still be
        // locked: wait a bounded time for it. A store that another running
        // process holds stays refused, after the wait.
        let waited = std::time::Instant::now();
        let db = loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(error))
                    if error.to_string().contains("could not acquire lock") =>
                {
                    if waited.elapsed() >= std::time::Duration::from_millis(STORE_LOCK_WAIT_MS_MAX)
                    {
                        return Err(StoreError::Locked {
                            path: path.to_path_buf(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(STORE_LOCK_RETRY_MS));
                }
                Err(error) => return Err(error.into()),
            }
        };
        let tree = db.open_tree("custody")?;
        let store = Store {
            path: Arc::new(path.to_path_buf()),
            db,
            tree,
            cache: Arc::new(Mutex::new(ReadCache::default())),
        };
        Ok(store)
    }

    /// Indexes by subject tag the documents of a store written before the
    /// index existed: once, in one batch, then marked as done. Commits
    /// keep it from then on ([`Store::write_changes`]).
    fn build_subject_index(&self) -> Result<(), StoreError> {
        if self.tree.contains_key(SUBJECT_INDEX_BUILT)? {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for entry in self.tree.scan_prefix([DOCUMENT]) {
            let (k, v) = entry?;
            let document: Document = decode_at("document", &k, &v)?;
            if let Some(tag) = &document.subject_tag {
                batch.insert(subject_key(tag, &document.id), &[][..]);
            }
        }
        batch.insert(SUBJECT_INDEX_BUILT, &[][..]);
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn cache(&self) -> MutexGuard<'_, ReadCache> {
        match self.cache.lock() {
            Ok(guard) => guard,
            // The cache is only ever left whole (each update is a few
            // inserts that cannot panic half-way), but start afresh anyway.
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                guard.invalidate();
                guard
            }
        }
    }

    /// A record from the cache, or read with `load` and kept unless a
    /// commit happened meanwhile.
    fn cached<T: Clone>(
        &self,
        hit: impl FnOnce(&ReadCache) -> Option<T>,
        load: impl FnOnce() -> Result<T, StoreError>,
        keep: impl FnOnce(&mut ReadCache, T),
    ) -> Result<T, StoreError> {
        let generation = {
            let cache = self.cache();
            if let Some(found) = hit(&cache) {
                return Ok(found);
            }
            cache.generation()
        };
        let value = load()?;
        let mut cache = self.cache();
        if cache.unchanged_since(generation) {
            keep(&mut cache, value.clone());
        }
        Ok(value)
    }

    fn get<T: Serialize + DeserializeOwned>(
        &self,
        what: &'static str,
        k: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.read(k)? {
            Some(bytes) => decode_at(what, k, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The genesis this store was initialised with.
    pub fn genesis(&self) -> Result<Genesis, StoreError> {
        let bytes = self.read(GENESIS)?.ok_or(StoreError::NotInitialized)?;
        Ok(Genesis::from_bytes(&bytes)?)
    }

    /// Where the chain stands.
    pub fn chain_info(&self) -> Result<ChainInfo, StoreError> {
        self.cached(
            |cache| cache.chain.clone(),
            || {
                self.get("chain info", CHAIN)?
                    .ok_or(StoreError::NotInitialized)
            },
            |cache, chain| cache.chain = Some(chain),
        )
    }

    /// Last committed height (0 before the first block).
    pub fn latest_height(&self) -> Result<Height, StoreError> {
        Ok(self.chain_info()?.height)
    }

    /// Write a block, its certificate and the changes it makes (from
    /// [`state::apply_block`]) in one atomic batch, flushed to disk before
    /// returning. The caller has checked the certificate; this checks that
    /// the three belong together and extend the stored chain.
    pub fn commit(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        changes: &StateChanges,
    ) -> Result<(), StoreError> {
        self.commit_encoded(block, &block.to_bytes(), certificate, changes)
    }

    /// [`Store::commit`] for a caller that decoded `block` from
    /// `block_bytes` (canonical decoding, as a validated proposal was), which
    /// are stored without encoding the block again. Bytes that do not start
    /// with the block's header are refused.
    pub fn commit_encoded(
        &self,
        block: &Block,
        block_bytes: &[u8],
        certificate: &CommitCertificate,
        changes: &StateChanges,
    ) -> Result<(), StoreError> {
        let chain = self.chain_info()?;
        let height = block.header.height;
        if height != chain.height.next() {
            return Err(StoreError::NotNextBlock {
                expected: chain.height.next(),
                found: height,
            });
        }
        if block.header.previous_block_hash != chain.last_block_hash {
            return Err(StoreError::WrongParent {
                expected: chain.last_block_hash,
                found: block.header.previous_block_hash,
            });
        }
        let hash = block.hash();
        if certificate.height != height || certificate.block_hash != hash {
            return Err(StoreError::CertificateMismatch {
                height: certificate.height,
                hash: certificate.block_hash,
            });
        }
        if changes.chain.height != height || changes.chain.last_block_hash != hash {
            return Err(StoreError::ChangesMismatch {
                expected: height,
                found: changes.chain.height,
            });
        }
        // The bytes must start with this header's encoding (the header
        // commits to the transactions and the previous certificate); a full
        // comparison would cost the encoding this function exists to spare.
        let header_bytes = encoding::encode(&block.header);
        if !block_bytes.starts_with(&header_bytes) {
            return Err(StoreError::BytesMismatch { height });
        }
        // What is written is what verification will re-hash: a block whose
        // stored bytes do not hash to its certificate would make the chain
        // unverifiable from here on, so stop before writing it.
        let written_hash = BlockHash::from(encoding::sha256(&encoding::tagged(
            encoding::tags::HEADER,
            &block_bytes[..header_bytes.len()],
        )));
        assert_eq!(
            written_hash, certificate.block_hash,
            "the bytes written for block {height} re-hash to its certified hash"
        );
        let mut batch = sled::Batch::default();
        batch.insert(height_key(BLOCK, height), block_bytes);
        batch.insert(height_key(CERTIFICATE, height), certificate.to_bytes());
        batch.insert(key(BLOCK_HASH, &hash.0), &height.0.to_be_bytes()[..]);
        self.write_changes(&mut batch, changes);
        {
            // Readers wait while the batch goes in, so that none sees the
            // cache and sled disagree.
            let mut cache = self.cache();
            if let Err(error) = self.tree.apply_batch(batch) {
                cache.invalidate();
                return Err(error.into());
            }
            cache.apply(changes);
        }
        // Durable before returning: a block whose commit returned survives
        // SIGKILL (checked by the crash test).
        self.db.flush()?;
        Ok(())
    }

    fn write_changes(&self, batch: &mut sled::Batch, changes: &StateChanges) {
        batch.insert(CHAIN, encoding::encode(&changes.chain));
        if let Some(p) = &changes.parameters {
            batch.insert(PARAMETERS, encoding::encode(p));
        }
        for (id, d) in &changes.departments {
            let k = key(DEPARTMENT, id.as_str().as_bytes());
            match d {
                Some(d) => batch.insert(k, encoding::encode(d)),
                None => batch.remove(k),
            }
        }
        for (k, m) in &changes.members {
            batch.insert(key(MEMBER, &k.0), encoding::encode(m));
        }
        for (k, n) in &changes.nonces {
            batch.insert(key(NONCE, &k.0), &n.0.to_be_bytes()[..]);
        }
        for (id, d) in &changes.documents {
            batch.insert(key(DOCUMENT, id.as_str().as_bytes()), encoding::encode(d));
            if let Some(tag) = &d.subject_tag {
                batch.insert(subject_key(tag, id), &[][..]);
            }
        }
        for e in &changes.events {
            batch.insert(event_key(&e.document, e.sequence), encoding::encode(e));
        }
        for (id, p) in &changes.proposals {
            batch.insert(key(PROPOSAL, &id.0), encoding::encode(p));
        }
        for (id, loc) in &changes.tx_locations {
            batch.insert(key(TX, &id.0), encoding::encode(loc));
        }
        if changes.validator_set_changed {
            batch.insert(
                height_key(VALIDATOR_SET, changes.chain.height.next()),
                encoding::encode(&changes.chain.validator_set),
            );
        }
        for ((validator, height), record) in &changes.evidence {
            batch.insert(evidence_key(validator, *height), encoding::encode(record));
        }
    }

    /// The stored bytes of block `height`.
    pub fn raw_block(&self, height: Height) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(&height_key(BLOCK, height))?.map(|v| v.to_vec()))
    }

    /// The stored bytes of block `height`'s certificate.
    pub fn raw_certificate(&self, height: Height) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .read(&height_key(CERTIFICATE, height))?
            .map(|v| v.to_vec()))
    }

    /// Replace the stored bytes of a block, bypassing every check. For
    /// repair tools and tamper tests only: verification will notice.
    pub fn overwrite_raw_block(&self, height: Height, bytes: &[u8]) -> Result<(), StoreError> {
        self.tree.insert(height_key(BLOCK, height), bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// Replace the stored head record, bypassing every check. For tamper
    /// tests only.
    pub fn overwrite_raw_chain_info_for_tests(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.tree.insert(CHAIN, bytes)?;
        self.cache().invalidate();
        self.db.flush()?;
        Ok(())
    }

    /// Replace the stored bytes of a certificate, bypassing every check.
    /// For repair tools and tamper tests only.
    pub fn overwrite_raw_certificate(
        &self,
        height: Height,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.tree.insert(height_key(CERTIFICATE, height), bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// Block at `height`.
    pub fn block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        self.get("block", &height_key(BLOCK, height))
    }

    /// Block with header hash `hash`.
    pub fn block_by_hash(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        match self.height_of(hash)? {
            Some(h) => self.block(h),
            None => Ok(None),
        }
    }

    /// Height of the block with hash `hash`.
    pub fn height_of(&self, hash: &BlockHash) -> Result<Option<Height>, StoreError> {
        let k = key(BLOCK_HASH, &hash.0);
        match self.read(&k)? {
            Some(bytes) => {
                let array: [u8; 8] =
                    bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                        what: "block hash index",
                        key: hex::encode(&k),
                        error: DecodeError::Malformed("not 8 bytes".to_string()),
                    })?;
                Ok(Some(Height(u64::from_be_bytes(array))))
            }
            None => Ok(None),
        }
    }

    /// Commit certificate stored with block `height`.
    pub fn certificate(&self, height: Height) -> Result<Option<CommitCertificate>, StoreError> {
        self.get("certificate", &height_key(CERTIFICATE, height))
    }

    /// Whether a transaction with this id is committed (one index lookup,
    /// without reading its block).
    pub fn has_transaction(&self, id: &TxId) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(key(TX, &id.0))?)
    }

    /// Committed transaction by id, with its block and position.
    pub fn transaction(&self, id: &TxId) -> Result<Option<StoredTransaction>, StoreError> {
        let Some(location) = self.get::<TxLocation>("tx location", &key(TX, &id.0))? else {
            return Ok(None);
        };
        let Some(block) = self.block(location.height)? else {
            return Ok(None);
        };
        let Some(transaction) = block.transactions.get(location.index as usize).cloned() else {
            return Ok(None);
        };
        Ok(Some(StoredTransaction {
            transaction,
            location,
            block_hash: block.hash(),
        }))
    }

    /// Document by id.
    pub fn document(&self, id: &DocumentId) -> Result<Option<Document>, StoreError> {
        self.cached(
            |cache| cache.documents.get(id).cloned(),
            || self.get("document", &key(DOCUMENT, id.as_str().as_bytes())),
            |cache, document| insert_bounded(&mut cache.documents, id.clone(), document),
        )
    }

    /// A document's events in order, starting at sequence `from` (0 for the
    /// first page), at most `limit` of them.
    pub fn document_history(
        &self,
        id: &DocumentId,
        from: u64,
        limit: usize,
    ) -> Result<Page<DocumentEvent, u64>, StoreError> {
        check_limit(limit)?;
        let prefix = event_prefix(id);
        let mut items = Vec::new();
        let mut next = None;
        for entry in self.tree.range(event_key(id, from)..) {
            let (k, v) = entry?;
            if !k.starts_with(&prefix) {
                break;
            }
            let event: DocumentEvent = decode_at("event", &k, &v)?;
            if items.len() == limit {
                next = Some(event.sequence);
                break;
            }
            items.push(event);
        }
        Ok(Page { items, next })
    }

    /// Documents in id order, starting after `after`.
    pub fn documents(
        &self,
        after: Option<&DocumentId>,
        limit: usize,
    ) -> Result<Page<Document, DocumentId>, StoreError> {
        check_limit(limit)?;
        let start = match after {
            Some(id) => {
                let mut k = key(DOCUMENT, id.as_str().as_bytes());
                k.push(0);
                k
            }
            None => vec![DOCUMENT],
        };
        let mut items: Vec<Document> = Vec::new();
        let mut next = None;
        for entry in self.tree.range(start..) {
            let (k, v) = entry?;
            if k.first() != Some(&DOCUMENT) {
                break;
            }
            if items.len() == limit {
                next = items.last().map(|d| d.id.clone());
                break;
            }
            items.push(decode_at("document", &k, &v)?);
        }
        Ok(Page { items, next })
    }

    /// The documents whose subject tag is `tag`, in id order, at most
    /// `limit` of them: read through the `S` index, so the cost follows
    /// the subject's documents, not the archive's size.
    pub fn documents_with_subject(
        &self,
        tag: &Hash32,
        limit: usize,
    ) -> Result<Vec<Document>, StoreError> {
        let mut documents = Vec::new();
        for entry in self.tree.scan_prefix(key(SUBJECT, &tag.0)) {
            if documents.len() == limit {
                break;
            }
            let (k, _) = entry?;
            let corrupt = |message: &str| StoreError::Corrupt {
                what: "subject index key",
                key: hex::encode(&k),
                error: DecodeError::Malformed(message.to_string()),
            };
            let id = std::str::from_utf8(&k[1 + tag.0.len()..])
                .map_err(|_| corrupt("document id is not UTF-8"))
                .and_then(|id| {
                    DocumentId::new(id.to_string()).map_err(|_| corrupt("not a document id"))
                })?;
            let document = self
                .document(&id)?
                .ok_or_else(|| corrupt("indexes a document the store does not hold"))?;
            documents.push(document);
        }
        Ok(documents)
    }

    /// Every ciphertext SHA-256 a committed transaction names for a
    /// document that is not disposed: each such document's current
    /// ciphertext and, for an amended one (in the clear or sealed), those
    /// of its earlier versions. A blob outside this set is either an upload
    /// whose registration never came or the ciphertext of a disposed
    /// document; neither is kept.
    pub fn named_ciphertexts(&self) -> Result<std::collections::HashSet<Hash32>, StoreError> {
        Ok(self.ciphertext_names()?.live)
    }

    /// Every ciphertext SHA-256 committed transactions name, split by
    /// whether its document is disposed (one walk over the documents).
    pub fn ciphertext_names(&self) -> Result<CiphertextNames, StoreError> {
        const PAGE: usize = PAGE_LIMIT_MAX;
        let mut names = CiphertextNames::default();
        let mut after: Option<DocumentId> = None;
        loop {
            let page = self.documents(after.as_ref(), PAGE)?;
            for document in &page.items {
                let ciphertexts = self.document_ciphertexts(document)?;
                if document.status == DocumentStatus::Disposed {
                    for sha256 in ciphertexts {
                        names.disposed.entry(sha256).or_insert(document.id.clone());
                    }
                } else {
                    names.live.extend(ciphertexts);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(names),
            }
        }
    }

    /// The ciphertexts of every version of `document`: the current one
    /// and, when it was amended, each earlier version's (from the
    /// `amended` and `amended-sealed` events of its history).
    pub fn document_ciphertexts(&self, document: &Document) -> Result<Vec<Hash32>, StoreError> {
        const PAGE: usize = PAGE_LIMIT_MAX;
        let mut ciphertexts = vec![document.ciphertext.sha256];
        if document.version <= 1 {
            return Ok(ciphertexts);
        }
        let mut from = 0;
        loop {
            let events = self.document_history(&document.id, from, PAGE)?;
            for event in &events.items {
                if let EventKind::Amended {
                    previous_ciphertext,
                    ciphertext,
                    ..
                }
                | EventKind::AmendedSealed {
                    previous_ciphertext,
                    ciphertext,
                    ..
                } = &event.kind
                {
                    for sha256 in [previous_ciphertext.sha256, ciphertext.sha256] {
                        if !ciphertexts.contains(&sha256) {
                            ciphertexts.push(sha256);
                        }
                    }
                }
            }
            match events.next {
                Some(next) => from = next,
                None => return Ok(ciphertexts),
            }
        }
    }

    /// Members in key order, starting after `after`.
    pub fn members(
        &self,
        after: Option<&PublicKey>,
        limit: usize,
    ) -> Result<Page<Member, PublicKey>, StoreError> {
        check_limit(limit)?;
        let start = match after {
            Some(k) => {
                let mut k = key(MEMBER, &k.0);
                k.push(0);
                k
            }
            None => vec![MEMBER],
        };
        let mut items: Vec<Member> = Vec::new();
        let mut next = None;
        for entry in self.tree.range(start..) {
            let (k, v) = entry?;
            if k.first() != Some(&MEMBER) {
                break;
            }
            if items.len() == limit {
                next = items.last().map(|m| m.key);
                break;
            }
            items.push(decode_at("member", &k, &v)?);
        }
        Ok(Page { items, next })
    }

    /// Member by key.
    pub fn member(&self, key_: &PublicKey) -> Result<Option<Member>, StoreError> {
        self.cached(
            |cache| cache.member(key_),
            || self.get("member", &key(MEMBER, &key_.0)),
            |cache, member| insert_bounded(&mut cache.members, *key_, member),
        )
    }

    /// Department by id.
    pub fn department(&self, id: &DepartmentId) -> Result<Option<Department>, StoreError> {
        self.cached(
            |cache| cache.departments.get(id).cloned(),
            || self.get("department", &key(DEPARTMENT, id.as_str().as_bytes())),
            |cache, department| insert_bounded(&mut cache.departments, id.clone(), department),
        )
    }

    /// Every department, in id order.
    pub fn departments(&self) -> Result<Vec<Department>, StoreError> {
        self.scan("department", DEPARTMENT)
    }

    fn scan<T: Serialize + DeserializeOwned>(
        &self,
        what: &'static str,
        prefix: u8,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for entry in self.tree.scan_prefix([prefix]) {
            let (k, v) = entry?;
            out.push(decode_at(what, &k, &v)?);
        }
        Ok(out)
    }

    /// Every governance proposal, executed or not, by id.
    pub fn proposals(&self) -> Result<Vec<Proposal>, StoreError> {
        self.scan("proposal", PROPOSAL)
    }

    /// Governance proposal by id.
    pub fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, StoreError> {
        self.get("proposal", &key(PROPOSAL, &id.0))
    }

    /// Current parameters.
    pub fn parameters(&self) -> Result<Parameters, StoreError> {
        self.cached(
            |cache| cache.parameters.clone(),
            || {
                self.get("parameters", PARAMETERS)?
                    .ok_or(StoreError::NotInitialized)
            },
            |cache, parameters| cache.parameters = Some(parameters),
        )
    }

    /// Last nonce used by `signer`.
    pub fn nonce(&self, signer: &PublicKey) -> Result<Nonce, StoreError> {
        self.cached(
            |cache| cache.nonces.get(signer).copied(),
            || self.stored_nonce(signer),
            |cache, nonce| insert_bounded(&mut cache.nonces, *signer, nonce),
        )
    }

    fn stored_nonce(&self, signer: &PublicKey) -> Result<Nonce, StoreError> {
        let k = key(NONCE, &signer.0);
        match self.read(&k)? {
            Some(bytes) => {
                let array: [u8; 8] =
                    bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                        what: "nonce",
                        key: hex::encode(&k),
                        error: DecodeError::Malformed("not 8 bytes".to_string()),
                    })?;
                Ok(Nonce(u64::from_be_bytes(array)))
            }
            None => Ok(Nonce(0)),
        }
    }

    /// The validator set in force at `height` (the history is never pruned).
    pub fn validator_set_at(&self, height: Height) -> Result<Option<ValidatorSet>, StoreError> {
        let end = height_key(VALIDATOR_SET, height);
        match self.tree.range(vec![VALIDATOR_SET]..=end).next_back() {
            Some(entry) => {
                let (k, v) = entry?;
                decode_at("validator set", &k, &v).map(Some)
            }
            None => Ok(None),
        }
    }

    /// The equivocation evidence recorded against `validator` at `height`.
    pub fn evidence(
        &self,
        validator: &PublicKey,
        height: Height,
    ) -> Result<Option<EvidenceRecord>, StoreError> {
        self.get("evidence", &evidence_key(validator, height))
    }

    /// Recorded equivocation evidence in (validator, height) order,
    /// starting after `after`.
    pub fn evidence_page(
        &self,
        after: Option<(PublicKey, Height)>,
        limit: usize,
    ) -> Result<Page<EvidenceRecord, (PublicKey, Height)>, StoreError> {
        check_limit(limit)?;
        let start = match after {
            Some((validator, height)) => {
                let mut k = evidence_key(&validator, height);
                k.push(0);
                k
            }
            None => vec![EVIDENCE],
        };
        let mut items: Vec<EvidenceRecord> = Vec::new();
        let mut next = None;
        for entry in self.tree.range(start..) {
            let (k, v) = entry?;
            if k.first() != Some(&EVIDENCE) {
                break;
            }
            if items.len() == limit {
                next = items.last().map(|e| (e.validator, e.height));
                break;
            }
            items.push(decode_at("evidence", &k, &v)?);
        }
        Ok(Page { items, next })
    }

    /// How many equivocation records the chain holds.
    pub fn evidence_count(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        for entry in self.tree.scan_prefix([EVIDENCE]) {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    /// Digest of the whole archive state, equal to
    /// [`state::MemoryState::digest`] of the same state.
    pub fn state_digest(&self) -> Result<Hash32, StoreError> {
        guarded(&self.path, || self.state_digest_unguarded())
    }

    fn state_digest_unguarded(&self) -> Result<Hash32, StoreError> {
        let mut d = StateDigest::new();
        d.entry(b"chain", &encoding::encode(&self.chain_info()?));
        d.entry(b"parameters", &encoding::encode(&self.parameters()?));
        let mut raw = |kind: &[u8], prefix: u8| -> Result<(), StoreError> {
            for entry in self.tree.scan_prefix([prefix]) {
                let (_, v) = entry?;
                d.entry(kind, &v);
            }
            Ok(())
        };
        raw(b"department", DEPARTMENT)?;
        raw(b"member", MEMBER)?;
        for entry in self.tree.scan_prefix([NONCE]) {
            let (k, v) = entry?;
            let signer = PublicKey(k[1..].try_into().map_err(|_| StoreError::Corrupt {
                what: "nonce key",
                key: hex::encode(&k),
                error: DecodeError::Malformed("not 32 bytes".to_string()),
            })?);
            let nonce = Nonce(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                StoreError::Corrupt {
                    what: "nonce",
                    key: hex::encode(&k),
                    error: DecodeError::Malformed("not 8 bytes".to_string()),
                }
            })?));
            d.entry(b"nonce", &encoding::encode(&(signer, nonce)));
        }
        let mut raw = |kind: &[u8], prefix: u8| -> Result<(), StoreError> {
            for entry in self.tree.scan_prefix([prefix]) {
                let (_, v) = entry?;
                d.entry(kind, &v);
            }
            Ok(())
        };
        raw(b"document", DOCUMENT)?;
        raw(b"proposal", PROPOSAL)?;
        raw(b"event", EVENT)?;
        for entry in self.tree.scan_prefix([TX]) {
            let (k, v) = entry?;
            let id = TxId(k[1..].try_into().map_err(|_| StoreError::Corrupt {
                what: "tx key",
                key: hex::encode(&k),
                error: DecodeError::Malformed("not 32 bytes".to_string()),
            })?);
            let loc: TxLocation = decode_at("tx location", &k, &v)?;
            d.entry(b"tx", &encoding::encode(&(id, loc)));
        }
        for entry in self.tree.scan_prefix([VALIDATOR_SET]) {
            let (k, v) = entry?;
            let height = Height(u64::from_be_bytes(k[1..].try_into().map_err(|_| {
                StoreError::Corrupt {
                    what: "validator set key",
                    key: hex::encode(&k),
                    error: DecodeError::Malformed("not 8 bytes".to_string()),
                }
            })?));
            let set: ValidatorSet = decode_at("validator set", &k, &v)?;
            d.entry(b"validator-set", &encoding::encode(&(height, set)));
        }
        for entry in self.tree.scan_prefix([EVIDENCE]) {
            let (_, v) = entry?;
            d.entry(b"evidence", &v);
        }
        Ok(d.finish())
    }
}

fn view_error(e: StoreError) -> ViewError {
    ViewError(e.to_string())
}

impl StateView for Store {
    fn chain(&self) -> Result<ChainInfo, ViewError> {
        self.chain_info().map_err(view_error)
    }
    fn parameters(&self) -> Result<Parameters, ViewError> {
        Store::parameters(self).map_err(view_error)
    }
    fn department(&self, id: &DepartmentId) -> Result<Option<Department>, ViewError> {
        Store::department(self, id).map_err(view_error)
    }
    fn departments(&self) -> Result<Vec<Department>, ViewError> {
        Store::departments(self).map_err(view_error)
    }
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, ViewError> {
        Store::member(self, key).map_err(view_error)
    }
    fn nonce(&self, signer: &PublicKey) -> Result<Nonce, ViewError> {
        Store::nonce(self, signer).map_err(view_error)
    }
    fn document(&self, id: &DocumentId) -> Result<Option<Document>, ViewError> {
        Store::document(self, id).map_err(view_error)
    }
    fn proposal(&self, id: &ProposalId) -> Result<Option<Proposal>, ViewError> {
        Store::proposal(self, id).map_err(view_error)
    }
    fn validator_set_at(&self, height: Height) -> Result<Option<ValidatorSet>, ViewError> {
        Store::validator_set_at(self, height).map_err(view_error)
    }
    fn evidence(
        &self,
        validator: &PublicKey,
        height: Height,
    ) -> Result<Option<EvidenceRecord>, ViewError> {
        Store::evidence(self, validator, height).map_err(view_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Workload;

    #[test]
    fn a_store_written_before_the_subject_index_is_indexed_when_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = Workload::new(4, 9);
        for _ in 0..4 {
            w.step(12).expect("workload block");
        }
        {
            let store =
                Store::open_or_init(dir.path(), &w.chain.federation.genesis).expect("store");
            for (block, cert) in &w.chain.blocks {
                let changes = state::apply_block(&store, block).expect("apply");
                store.commit(block, cert, &changes).expect("commit");
            }
            // As a store written before the index existed: no `S` entries
            // and no `J` mark.
            let mut batch = sled::Batch::default();
            for entry in store.tree.scan_prefix([SUBJECT]) {
                let (k, _) = entry.expect("scan");
                batch.remove(k);
            }
            batch.remove(SUBJECT_INDEX_BUILT);
            store.tree.apply_batch(batch).expect("strip the index");
            store.db.flush().expect("flush");
        }
        let store = Store::open(dir.path()).expect("reopen");
        let mut tagged = 0;
        for document in w.chain.state.documents.values() {
            if let Some(tag) = &document.subject_tag {
                tagged += 1;
                let found = store
                    .documents_with_subject(tag, PAGE_LIMIT_MAX)
                    .expect("read the index");
                assert_eq!(found, vec![document.clone()]);
            }
        }
        assert!(tagged > 0, "the workload tags its documents");
    }
}
