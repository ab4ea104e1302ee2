//! Department IT's store commands: `custody node repair`, `node backup` and
//! `node restore`.
//!
//! None of them believes what it reads: a chain comes in only as an export
//! that verifies from the home's own genesis (every hash link, signature
//! and certificate, re-execution and the state digest,
//! `custody_ledger::export::verify_export`), and is written only through
//! `import_verified`, which re-applies every block. A store that is
//! replaced is moved aside, never deleted. The result must pass the same
//! check `node start` runs (`custody_node::node::check_home`), including
//! the consensus state's high-water mark.
//!
//! Backup file (`custody-node-backup/v1`), all integers little-endian:
//! `CSTDYBK1` (8 bytes), manifest length (u32) and manifest (JSON,
//! [`BackupManifest`]), consensus state length (u64) and the consensus
//! state file's bytes, then the export file's bytes to the end (their
//! length and SHA-256 are in the manifest).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use custody_ledger::export::{self, ExportFile, ImportError};
use custody_ledger::store::Store;
use custody_ledger::verify::{VerifyOptions, VerifyReport};
use custody_ledger::Genesis;
use custody_node::home::Home;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First bytes of a backup file.
pub const BACKUP_MAGIC: &[u8; 8] = b"CSTDYBK1";
/// Format version written in the manifest.
pub const BACKUP_FORMAT_VERSION: u32 = 1;
/// Largest manifest accepted (a few hundred bytes are written).
pub const BACKUP_MANIFEST_BYTES_MAX: u32 = 64 * 1024;
/// Largest consensus state accepted from a backup (the state holds a few
/// blocks at most; the node's own limit on a block is far below this).
pub const BACKUP_CONSENSUS_STATE_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Why a repair, backup or restore stopped. Nothing was changed on disk
/// unless the message says so.
#[derive(Debug, thiserror::Error)]
pub enum StoreCommandError {
    #[error("{0}")]
    Home(String),
    #[error(
        "the ledger store at {0} is in use (is the node running?); stop the node first: \
         repair and restore work on a stopped node"
    )]
    NodeRunning(PathBuf),
    #[error(
        "no peer to repair from: give --peer URL (the HTTP API of another department's node, \
         e.g. http://10.0.0.2:26680; repeat for more), or --from-export FILE --genesis FILE"
    )]
    NoPeers,
    #[error("the given genesis {given} is not this node's genesis {home} ({path})")]
    GenesisMismatch {
        given: String,
        home: String,
        path: PathBuf,
    },
    #[error("no peer gave a verified chain at or above height {committed} (what this node committed): {attempts}")]
    AllPeersFailed { committed: u64, attempts: String },
    #[error("the export {path} does not verify: {reason}")]
    ExportInvalid { path: PathBuf, reason: String },
    #[error(
        "the chain in {source_name} ends at height {found}, below height {committed} that this \
         node committed (consensus state {state}); use a newer export or another peer"
    )]
    Behind {
        source_name: String,
        found: u64,
        committed: u64,
        state: PathBuf,
    },
    #[error("cannot move {from} aside to {to}: {reason}; nothing was changed")]
    MoveAside {
        from: PathBuf,
        to: PathBuf,
        reason: String,
    },
    #[error("importing the verified chain into {path} failed: {source}{aside}")]
    Import {
        path: PathBuf,
        aside: String,
        #[source]
        source: Box<ImportError>,
    },
    #[error("the rebuilt store at {path} does not pass the start check: {reason}{aside}")]
    CheckFailed {
        path: PathBuf,
        aside: String,
        reason: String,
    },
    #[error("{path} already exists; choose another file (a backup is never overwritten)")]
    TargetExists { path: PathBuf },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("the node at {url} could not be backed up: {reason}")]
    Node { url: String, reason: String },
    #[error("{path} is not a Custody node backup: {reason}")]
    NotABackup { path: PathBuf, reason: String },
    #[error(
        "the ledger store at {0} is not empty; restore refuses to overwrite it. Give --replace to \
         move it aside (it is kept) and restore in its place"
    )]
    TargetNotEmpty(PathBuf),
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreCommandError + '_ {
    move |error| StoreCommandError::Read {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreCommandError + '_ {
    move |error| StoreCommandError::Write {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-12-03T14-05-09Z`: a UTC time usable in a file name.
fn stamp() -> String {
    let text = crate::audit::format_ms(now_ms());
    let seconds = text.get(..19).unwrap_or(&text).replace(':', "-");
    format!("{seconds}Z")
}

/// What a home holds that these commands need.
struct HomeParts {
    home: Home,
    genesis: Genesis,
    ledger: PathBuf,
    data: PathBuf,
    state: PathBuf,
    /// The highest height the consensus state shows this node committed.
    committed: u64,
    api_url: String,
    /// The node's own key (a department node's), which signs the block
    /// reads of a repair or backup from a running node; none when the home
    /// holds no readable node key.
    node_key: Option<ed25519_dalek::SigningKey>,
}

fn load_home(root: &Path) -> Result<HomeParts, StoreCommandError> {
    let home = Home::new(root);
    let config = home
        .load_config()
        .map_err(|error| StoreCommandError::Home(error.to_string()))?;
    let genesis_path = home.genesis_path(&config);
    let genesis = Genesis::load(&genesis_path).map_err(|error| {
        StoreCommandError::Home(format!("genesis {}: {error}", genesis_path.display()))
    })?;
    let state = home.consensus_state_path(&config);
    let committed = custody_node::consensus_state::committed_high_water(&state)
        .map_err(|error| StoreCommandError::Home(error.to_string()))?
        .unwrap_or(0);
    let listen = config.api.listen;
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        listen.ip().to_string()
    };
    let node_key = custody_node::home::read_key_file(
        &home
            .keys_dir(&config)
            .join(custody_node::home::NODE_KEY_FILE),
    )
    .ok()
    .map(|secret| ed25519_dalek::SigningKey::from_bytes(&secret));
    Ok(HomeParts {
        node_key,
        ledger: home.ledger_dir(&config),
        data: home.data_dir(&config),
        state,
        committed,
        genesis,
        api_url: format!("http://{host}:{}", listen.port()),
        home,
    })
}

/// Refuses to work on a store a running process holds, without opening
/// it (see `Store::in_use`).
fn refuse_if_in_use(ledger: &Path) -> Result<(), StoreCommandError> {
    match Store::in_use(ledger) {
        Ok(false) => Ok(()),
        Ok(true) => Err(StoreCommandError::NodeRunning(ledger.to_path_buf())),
        Err(error) => Err(StoreCommandError::Home(error.to_string())),
    }
}

fn is_empty_dir(path: &Path) -> Result<bool, StoreCommandError> {
    if !path.exists() {
        return Ok(true);
    }
    Ok(std::fs::read_dir(path)
        .map_err(read_error(path))?
        .next()
        .is_none())
}

/// Moves `ledger` to `<ledger>.<label>-<UTC time>` beside it; `None` when
/// there was nothing to move.
fn move_aside(ledger: &Path, label: &str) -> Result<Option<PathBuf>, StoreCommandError> {
    if !ledger.exists() {
        return Ok(None);
    }
    let name = ledger
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ledger".to_string());
    let mut target = ledger.with_file_name(format!("{name}.{label}-{}", stamp()));
    let mut attempt = 1;
    while target.exists() {
        attempt += 1;
        target = ledger.with_file_name(format!("{name}.{label}-{}-{attempt}", stamp()));
    }
    std::fs::rename(ledger, &target).map_err(|error| StoreCommandError::MoveAside {
        from: ledger.to_path_buf(),
        to: target.clone(),
        reason: error.to_string(),
    })?;
    Ok(Some(target))
}

fn aside_note(aside: &Option<PathBuf>) -> String {
    match aside {
        Some(path) => format!(" (the previous store is kept at {})", path.display()),
        None => String::new(),
    }
}

fn verify(
    path: &Path,
    genesis: &Genesis,
    threads: usize,
) -> Result<(VerifyReport, ExportFile), StoreCommandError> {
    let options = VerifyOptions {
        threads: crate::audit::verify_thread_count(threads),
        ..VerifyOptions::default()
    };
    let (report, _state, file) = export::verify_export(path, Some(genesis.hash()), options, |_| {})
        .map_err(|error| StoreCommandError::ExportInvalid {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    Ok((report, file))
}

/// Imports a verified export into `ledger` (moved aside first when it
/// exists), then runs the start check.
fn rebuild(
    parts: &HomeParts,
    file: &ExportFile,
    report: &VerifyReport,
    label: &str,
) -> Result<(Option<PathBuf>, custody_node::node::StartCheck), StoreCommandError> {
    let aside = move_aside(&parts.ledger, label)?;
    export::import_verified(file, report, &parts.ledger).map_err(|source| {
        StoreCommandError::Import {
            path: parts.ledger.clone(),
            aside: aside_note(&aside),
            source: Box::new(source),
        }
    })?;
    let check = custody_node::node::check_home(&parts.home).map_err(|error| {
        StoreCommandError::CheckFailed {
            path: parts.ledger.clone(),
            aside: aside_note(&aside),
            reason: error.to_string(),
        }
    })?;
    Ok((aside, check))
}

/// What `custody node repair` did.
#[derive(Clone, Debug, Serialize)]
pub struct RepairReport {
    pub store: PathBuf,
    /// Where the damaged store was moved (`None`: there was none).
    pub damaged_store_kept_at: Option<PathBuf>,
    /// The peer URL or export file the chain came from.
    pub source: String,
    /// Heights recovered: 1 to `height`, every certificate verified.
    pub height: u64,
    pub last_block_hash: String,
    pub transactions: u64,
    /// The highest height the consensus state shows this node committed.
    pub committed: u64,
    /// Peers tried before the one used, and why they were passed over.
    pub passed_over: Vec<String>,
}

/// Where the chain for a repair comes from.
pub enum RepairSource {
    /// HTTP API URLs of other departments' nodes, tried in order.
    Peers(Vec<String>),
    /// A `custody chain export` file and the genesis the operator trusts.
    Export { export: PathBuf, genesis: PathBuf },
}

/// `custody node repair`: rebuild the ledger store of the stopped node at
/// `home` from verified blocks, keeping the old store aside.
pub fn repair(
    home: &Path,
    source: RepairSource,
    threads: usize,
) -> Result<RepairReport, StoreCommandError> {
    let parts = load_home(home)?;
    refuse_if_in_use(&parts.ledger)?;
    let behind = |source_name: String, found: u64| StoreCommandError::Behind {
        source_name,
        found,
        committed: parts.committed,
        state: parts.state.clone(),
    };
    let mut passed_over = Vec::new();
    // The verified chain, the file it is in, its source, and a download to
    // remove afterwards.
    let (report, file, source_name, download) = match source {
        RepairSource::Export { export, genesis } => {
            let given = Genesis::load(&genesis).map_err(|error| {
                StoreCommandError::Home(format!("genesis {}: {error}", genesis.display()))
            })?;
            if given.hash() != parts.genesis.hash() {
                return Err(StoreCommandError::GenesisMismatch {
                    given: given.hash().to_hex(),
                    home: parts.genesis.hash().to_hex(),
                    path: genesis,
                });
            }
            let (report, file) = verify(&export, &given, threads)?;
            if report.height.0 < parts.committed {
                return Err(behind(export.display().to_string(), report.height.0));
            }
            (report, file, export.display().to_string(), None)
        }
        RepairSource::Peers(peers) => {
            if peers.is_empty() {
                return Err(StoreCommandError::NoPeers);
            }
            std::fs::create_dir_all(&parts.data).map_err(write_error(&parts.data))?;
            let download = parts.data.join(format!("repair-{}.export", now_ms()));
            let mut found = None;
            for peer in &peers {
                let attempt = crate::audit::export_node_chain(
                    peer,
                    &parts.genesis,
                    &download,
                    parts.node_key.as_ref(),
                )
                .map_err(|error| error.to_string())
                .and_then(|_| verify(&download, &parts.genesis, threads).map_err(|e| e.to_string()))
                .and_then(|(report, file)| {
                    if report.height.0 < parts.committed {
                        Err(behind(peer.clone(), report.height.0).to_string())
                    } else {
                        Ok((report, file))
                    }
                });
                match attempt {
                    Ok((report, file)) => {
                        found = Some((report, file, peer.clone()));
                        break;
                    }
                    Err(reason) => {
                        passed_over.push(format!("{peer}: {reason}"));
                        let _ = std::fs::remove_file(&download);
                        let _ = std::fs::remove_file(download.with_extension("partial"));
                    }
                }
            }
            let Some((report, file, peer)) = found else {
                return Err(StoreCommandError::AllPeersFailed {
                    committed: parts.committed,
                    attempts: passed_over.join("; "),
                });
            };
            (report, file, peer, Some(download))
        }
    };
    let rebuilt = rebuild(&parts, &file, &report, "damaged");
    drop(file);
    if let Some(download) = download {
        let _ = std::fs::remove_file(download);
    }
    let (aside, check) = rebuilt?;
    Ok(RepairReport {
        store: parts.ledger.clone(),
        damaged_store_kept_at: aside,
        source: source_name,
        height: report.height.0,
        last_block_hash: check.last_block_hash,
        transactions: report.transactions,
        committed: check.committed,
        passed_over,
    })
}

/// The manifest at the head of a backup file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupManifest {
    pub format: String,
    pub format_version: u32,
    pub chain_id: String,
    pub genesis_hash: String,
    /// The node the chain was read from.
    pub node: String,
    /// The export holds heights 1 to `height`.
    pub height: u64,
    /// The consensus state's high-water mark when it was read (at most
    /// `height`: the state was read first).
    pub committed: u64,
    pub created_unix_ms: u64,
    pub export_bytes: u64,
    pub export_sha256: String,
}

/// What `custody node backup` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    pub file: PathBuf,
    pub bytes: u64,
    pub manifest: BackupManifest,
}

fn file_sha256(path: &Path) -> Result<(String, u64), StoreCommandError> {
    let file = File::open(path).map_err(read_error(path))?;
    let mut reader = BufReader::new(file);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut length = 0u64;
    loop {
        let read = reader.read(&mut buffer).map_err(read_error(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        length += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), length))
}

/// `custody node backup`: while the node at `home` runs, reads its
/// consensus state, then the chain its API serves up to its height,
/// verifies that chain, and writes both to `to`.
pub fn backup(
    home: &Path,
    to: &Path,
    node: Option<String>,
    threads: usize,
) -> Result<BackupReport, StoreCommandError> {
    let parts = load_home(home)?;
    if to.exists() {
        return Err(StoreCommandError::TargetExists {
            path: to.to_path_buf(),
        });
    }
    let url = node.unwrap_or_else(|| parts.api_url.clone());
    // The consensus state first: the node moves it past a height only after
    // the block is in its store, so the chain read next reaches at least
    // its high-water mark.
    let state_bytes = match std::fs::read(&parts.state) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(read_error(&parts.state)(error)),
    };
    let committed = if state_bytes.is_empty() {
        0
    } else {
        custody_node::consensus_state::decode(&state_bytes)
            .map_err(|reason| StoreCommandError::Read {
                path: parts.state.clone(),
                reason,
            })?
            .height
            .0
            .saturating_sub(1)
    };
    let export_path = to.with_extension("export-partial");
    let result = (|| {
        crate::audit::export_node_chain(
            &url,
            &parts.genesis,
            &export_path,
            parts.node_key.as_ref(),
        )
        .map_err(|error| StoreCommandError::Node {
            url: url.clone(),
            reason: error.to_string(),
        })?;
        let (report, _file) = verify(&export_path, &parts.genesis, threads)?;
        if report.height.0 < committed {
            return Err(StoreCommandError::Behind {
                source_name: url.clone(),
                found: report.height.0,
                committed,
                state: parts.state.clone(),
            });
        }
        let (export_sha256, export_bytes) = file_sha256(&export_path)?;
        let manifest = BackupManifest {
            format: "custody-node-backup".to_string(),
            format_version: BACKUP_FORMAT_VERSION,
            chain_id: parts.genesis.chain_id.clone(),
            genesis_hash: parts.genesis.hash().to_hex(),
            node: url.clone(),
            height: report.height.0,
            committed,
            created_unix_ms: now_ms(),
            export_bytes,
            export_sha256,
        };
        let bytes = write_backup(to, &manifest, &state_bytes, &export_path)?;
        Ok(BackupReport {
            file: to.to_path_buf(),
            bytes,
            manifest,
        })
    })();
    let _ = std::fs::remove_file(&export_path);
    let _ = std::fs::remove_file(export_path.with_extension("partial"));
    if result.is_err() {
        let _ = std::fs::remove_file(to.with_extension("partial"));
    }
    result
}

fn write_backup(
    to: &Path,
    manifest: &BackupManifest,
    state: &[u8],
    export_path: &Path,
) -> Result<u64, StoreCommandError> {
    let partial = to.with_extension("partial");
    let manifest_bytes =
        serde_json::to_vec(manifest).map_err(|error| StoreCommandError::Write {
            path: to.to_path_buf(),
            reason: error.to_string(),
        })?;
    let file = File::create(&partial).map_err(write_error(&partial))?;
    let mut out = BufWriter::new(&file);
    let mut write = |bytes: &[u8]| out.write_all(bytes).map_err(write_error(&partial));
    write(BACKUP_MAGIC)?;
    write(&(manifest_bytes.len() as u32).to_le_bytes())?;
    write(&manifest_bytes)?;
    write(&(state.len() as u64).to_le_bytes())?;
    write(state)?;
    let mut export = File::open(export_path).map_err(read_error(export_path))?;
    std::io::copy(&mut export, &mut out).map_err(write_error(&partial))?;
    out.flush().map_err(write_error(&partial))?;
    drop(out);
    file.sync_all().map_err(write_error(&partial))?;
    let bytes = file.metadata().map_err(write_error(&partial))?.len();
    std::fs::rename(&partial, to).map_err(write_error(to))?;
    Ok(bytes)
}

/// A backup file read back: its manifest and consensus state, with its
/// export copied out to `export` (checked against the manifest's length and
/// SHA-256).
struct OpenedBackup {
    manifest: BackupManifest,
    state: Vec<u8>,
}

fn open_backup(from: &Path, export_to: &Path) -> Result<OpenedBackup, StoreCommandError> {
    let not_backup = |reason: String| StoreCommandError::NotABackup {
        path: from.to_path_buf(),
        reason,
    };
    let file = File::open(from).map_err(read_error(from))?;
    let mut input = BufReader::new(file);
    let mut magic = [0u8; 8];
    input
        .read_exact(&mut magic)
        .map_err(|_| not_backup("it is shorter than the header".to_string()))?;
    if &magic != BACKUP_MAGIC {
        return Err(not_backup("it does not start with CSTDYBK1".to_string()));
    }
    let mut length = [0u8; 4];
    input
        .read_exact(&mut length)
        .map_err(|_| not_backup("the manifest length is cut off".to_string()))?;
    let manifest_length = u32::from_le_bytes(length);
    if manifest_length > BACKUP_MANIFEST_BYTES_MAX {
        return Err(not_backup(format!(
            "its manifest claims {manifest_length} bytes (at most {BACKUP_MANIFEST_BYTES_MAX})"
        )));
    }
    let mut manifest_bytes = vec![0u8; manifest_length as usize];
    input
        .read_exact(&mut manifest_bytes)
        .map_err(|_| not_backup("the manifest is cut off".to_string()))?;
    let manifest: BackupManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|error| not_backup(format!("its manifest does not parse: {error}")))?;
    if manifest.format != "custody-node-backup" || manifest.format_version != BACKUP_FORMAT_VERSION
    {
        return Err(not_backup(format!(
            "format {} version {} is not custody-node-backup version {BACKUP_FORMAT_VERSION}",
            manifest.format, manifest.format_version
        )));
    }
    let mut length = [0u8; 8];
    input
        .read_exact(&mut length)
        .map_err(|_| not_backup("the consensus state length is cut off".to_string()))?;
    let state_length = u64::from_le_bytes(length);
    if state_length > BACKUP_CONSENSUS_STATE_BYTES_MAX {
        return Err(not_backup(format!(
            "its consensus state claims {state_length} bytes (at most {BACKUP_CONSENSUS_STATE_BYTES_MAX})"
        )));
    }
    let mut state = vec![0u8; state_length as usize];
    input
        .read_exact(&mut state)
        .map_err(|_| not_backup("the consensus state is cut off".to_string()))?;
    let export = File::create(export_to).map_err(write_error(export_to))?;
    let mut out = BufWriter::new(export);
    std::io::copy(&mut input, &mut out).map_err(write_error(export_to))?;
    out.flush().map_err(write_error(export_to))?;
    drop(out);
    let (sha256, bytes) = file_sha256(export_to)?;
    if bytes != manifest.export_bytes || sha256 != manifest.export_sha256 {
        return Err(not_backup(format!(
            "its chain is {bytes} bytes with SHA-256 {sha256}, the manifest says {} bytes with {}: the file was cut or altered",
            manifest.export_bytes, manifest.export_sha256
        )));
    }
    Ok(OpenedBackup { manifest, state })
}

/// What `custody node restore` did.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    pub store: PathBuf,
    pub from: PathBuf,
    pub height: u64,
    pub last_block_hash: String,
    pub transactions: u64,
    /// Where the store that was there was moved (`--replace`).
    pub previous_store_kept_at: Option<PathBuf>,
    /// "written from the backup" or "kept (this node's own, newer record)".
    pub consensus_state: String,
    pub committed: u64,
}

/// `custody node restore`: verifies the backup `from` completely (framing,
/// checksums, genesis, the whole chain, the consensus state and that the
/// chain reaches what this node committed) before writing anything, then
/// imports it into the stopped node's store.
pub fn restore(
    home: &Path,
    from: &Path,
    replace: bool,
    threads: usize,
) -> Result<RestoreReport, StoreCommandError> {
    let parts = load_home(home)?;
    refuse_if_in_use(&parts.ledger)?;
    if !replace && !is_empty_dir(&parts.ledger)? {
        return Err(StoreCommandError::TargetNotEmpty(parts.ledger.clone()));
    }
    std::fs::create_dir_all(&parts.data).map_err(write_error(&parts.data))?;
    let export_path = parts.data.join(format!("restore-{}.export", now_ms()));
    let result = restore_verified(&parts, from, &export_path, threads);
    let _ = std::fs::remove_file(&export_path);
    result
}

fn restore_verified(
    parts: &HomeParts,
    from: &Path,
    export_path: &Path,
    threads: usize,
) -> Result<RestoreReport, StoreCommandError> {
    let opened = open_backup(from, export_path)?;
    if opened.manifest.genesis_hash != parts.genesis.hash().to_hex() {
        return Err(StoreCommandError::GenesisMismatch {
            given: opened.manifest.genesis_hash.clone(),
            home: parts.genesis.hash().to_hex(),
            path: from.to_path_buf(),
        });
    }
    let (report, file) = verify(export_path, &parts.genesis, threads)?;
    if report.height.0 != opened.manifest.height {
        return Err(StoreCommandError::NotABackup {
            path: from.to_path_buf(),
            reason: format!(
                "its chain ends at height {}, its manifest says {}",
                report.height.0, opened.manifest.height
            ),
        });
    }
    let backup_committed = if opened.state.is_empty() {
        0
    } else {
        custody_node::consensus_state::decode(&opened.state)
            .map_err(|reason| StoreCommandError::NotABackup {
                path: from.to_path_buf(),
                reason: format!("its consensus state does not decode: {reason}"),
            })?
            .height
            .0
            .saturating_sub(1)
    };
    if backup_committed > report.height.0 {
        return Err(StoreCommandError::NotABackup {
            path: from.to_path_buf(),
            reason: format!(
                "its consensus state is past height {backup_committed}, its chain ends at {}",
                report.height.0
            ),
        });
    }
    // This node's own consensus state, when it has one, is the newer record
    // of what it committed and voted: a backup below it would roll the node
    // back, and it is never replaced by an older one.
    let own_state = parts.state.exists();
    if report.height.0 < parts.committed {
        return Err(StoreCommandError::Behind {
            source_name: from.display().to_string(),
            found: report.height.0,
            committed: parts.committed,
            state: parts.state.clone(),
        });
    }
    // Everything is verified: from here on the disk changes.
    let aside = move_aside(&parts.ledger, "replaced")?;
    export::import_verified(&file, &report, &parts.ledger).map_err(|source| {
        StoreCommandError::Import {
            path: parts.ledger.clone(),
            aside: aside_note(&aside),
            source: Box::new(source),
        }
    })?;
    let consensus_state = if own_state || opened.state.is_empty() {
        "kept (this node's own record)".to_string()
    } else {
        custody_node::files::write_atomically(&parts.state, &opened.state)
            .map_err(write_error(&parts.state))?;
        "written from the backup".to_string()
    };
    let check = custody_node::node::check_home(&parts.home).map_err(|error| {
        StoreCommandError::CheckFailed {
            path: parts.ledger.clone(),
            aside: aside_note(&aside),
            reason: error.to_string(),
        }
    })?;
    Ok(RestoreReport {
        store: parts.ledger.clone(),
        from: from.to_path_buf(),
        height: report.height.0,
        last_block_hash: check.last_block_hash,
        transactions: report.transactions,
        previous_store_kept_at: aside,
        consensus_state,
        committed: check.committed,
    })
}
