//! Self-contained proofs that a transaction is final, checked offline with
//! nothing but the genesis.
//!
//! A [`TxProof`] carries the transaction, its Merkle path, its block's
//! header and certificate, and the origin of the validator set that signed
//! that certificate: every executed governance change to the departments
//! since genesis, each as the proposing transaction and the transaction
//! that executed it, both with their own inclusion proof, header and
//! certificate. The checker starts from the genesis's departments, follows
//! the changes in height order, and checks every certificate against the
//! validator set it has derived for that height, and every header's
//! validator-set hash against the same set.
//!
//! The checker trusts what a certificate means under the BFT assumption
//! (more than 2/3 of the voting power in force was honest): that the
//! certified block applied under the rules. It does not recount approvals
//! or re-execute blocks; `audit verify` on an export does that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::block::Header;
use crate::certificate::{CertificateError, CommitCertificate};
use crate::encoding::{self, DecodeError};
use crate::genesis::Genesis;
use crate::merkle::{self, InclusionProof};
use crate::records::{TxLocation, Validator, ValidatorSet};
use crate::state::MemoryState;
use crate::tx::{GovernanceChange, SignedTransaction, TxBody};
use crate::types::{DepartmentId, Hash32, Height, PublicKey, TxId};
use crate::verify::BlockSource;

/// Version of the proof layout (`TxProof::format_version`).
pub const PROOF_FORMAT_VERSION: u16 = 1;
/// Largest proof file accepted, in bytes.
pub const PROOF_BYTES_MAX: usize = 16 * 1024 * 1024;
/// First 16 bytes of a proof file.
pub const PROOF_MAGIC: &[u8; 16] = b"CUSTODY-PROOF\r\n\0";
/// Domain tag of a proof file's checksum.
pub const PROOF_FILE_TAG: &str = custody_format::tags::PROOF_FILE;
/// Most governance links a proof may carry.
pub const GOVERNANCE_LINKS_MAX: usize = 10_000;

/// A transaction with everything needed to see it is in a final block.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IncludedTx {
    pub transaction: SignedTransaction,
    /// Path from the transaction id to `header.tx_root`.
    pub inclusion: InclusionProof,
    pub header: Header,
    /// Certificate that made the block final.
    pub certificate: CommitCertificate,
}

/// One executed change to the departments: the proposal, and the
/// transaction (an approval, or the proposal itself) that executed it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct GovernanceLink {
    pub proposal: IncludedTx,
    /// `None` when the proposal executed on its own (its proposer's
    /// department alone held more than 2/3 of the power).
    pub executed_by: Option<IncludedTx>,
}

/// A self-contained proof of one transaction.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TxProof {
    pub format_version: u16,
    pub genesis_hash: Hash32,
    /// The genesis's canonical bytes, so the proof also stands alone; the
    /// checker compares their hash with the genesis it is given.
    pub genesis: Vec<u8>,
    /// Executed department changes up to the transaction's height, in
    /// height order.
    pub governance: Vec<GovernanceLink>,
    pub target: IncludedTx,
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("proof file is {0} bytes, more than the limit")]
    TooLarge(usize),
    #[error("not a Custody proof file (magic bytes differ)")]
    BadMagic,
    #[error("proof file checksum differs: the file was damaged or edited")]
    Checksum,
    #[error("proof bytes do not decode: {0}")]
    Undecodable(DecodeError),
    #[error("proof format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u16),
    #[error("proof is for genesis {found}, the given genesis is {expected}")]
    WrongGenesis { expected: Hash32, found: Hash32 },
    #[error("genesis carried by the proof does not hash to its genesis hash")]
    GenesisBytes,
    #[error("proof carries {0} governance links, more than the limit")]
    TooManyLinks(usize),
    #[error("{what}: header is for chain `{found}`, not `{expected}`")]
    WrongChain {
        what: String,
        expected: String,
        found: String,
    },
    #[error(
        "{what}: transaction {tx} is not in block {height} (Merkle path does not lead to its root)"
    )]
    NotIncluded {
        what: String,
        tx: TxId,
        height: Height,
    },
    #[error("{what}: block {height} names validator set {found}, the set derived from genesis is {expected}")]
    ValidatorSetDiffers {
        what: String,
        height: Height,
        expected: Hash32,
        found: Hash32,
    },
    #[error("{what}: certificate of block {height} does not prove it final: {error}")]
    Certificate {
        what: String,
        height: Height,
        /// Boxed: certificate errors carry keys and power sums.
        error: Box<CertificateError>,
    },
    #[error("governance link #{index}: {reason}")]
    Governance { index: usize, reason: String },
}

/// What a checked proof shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofSummary {
    pub tx_id: TxId,
    pub height: Height,
    pub index: u64,
    pub block_hash: crate::types::BlockHash,
    pub time_ms: u64,
    pub kind: &'static str,
    pub signer: PublicKey,
    pub governance_links: usize,
    pub validators: usize,
}

impl TxProof {
    /// Canonical bytes (the proof file).
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decode a proof file, refusing non-canonical or oversized input.
    pub fn from_bytes(bytes: &[u8]) -> Result<TxProof, ProofError> {
        if bytes.len() > PROOF_BYTES_MAX {
            return Err(ProofError::TooLarge(bytes.len()));
        }
        encoding::decode(bytes).map_err(ProofError::Undecodable)
    }

    /// The proof file: magic, then the canonical bytes, then
    /// `SHA-256(tagged("custody/proof-file/v1", canonical bytes))`. The
    /// checksum tells damage in storage from a forged proof: a forger can
    /// recompute it, so [`TxProof::check`] never relies on it.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let body = self.to_bytes();
        let mut out = Vec::with_capacity(16 + body.len() + 32);
        out.extend_from_slice(PROOF_MAGIC);
        out.extend_from_slice(&body);
        out.extend_from_slice(&encoding::sha256(&encoding::tagged(PROOF_FILE_TAG, &body)).0);
        out
    }

    /// Read a proof file written by [`TxProof::to_file_bytes`].
    pub fn from_file_bytes(bytes: &[u8]) -> Result<TxProof, ProofError> {
        if bytes.len() > PROOF_BYTES_MAX {
            return Err(ProofError::TooLarge(bytes.len()));
        }
        if bytes.len() < 16 + 32 || &bytes[..16] != PROOF_MAGIC {
            return Err(ProofError::BadMagic);
        }
        let body = &bytes[16..bytes.len() - 32];
        let checksum = &bytes[bytes.len() - 32..];
        if encoding::sha256(&encoding::tagged(PROOF_FILE_TAG, body)).0 != checksum {
            return Err(ProofError::Checksum);
        }
        Self::from_bytes(body)
    }

    /// Check the proof against the auditor's own genesis.
    pub fn check(&self, genesis: &Genesis) -> Result<ProofSummary, ProofError> {
        if self.format_version != PROOF_FORMAT_VERSION {
            return Err(ProofError::UnsupportedVersion(self.format_version));
        }
        let expected = genesis.hash();
        if self.genesis_hash != expected {
            return Err(ProofError::WrongGenesis {
                expected,
                found: self.genesis_hash,
            });
        }
        if encoding::sha256(&encoding::tagged(encoding::tags::GENESIS, &self.genesis)) != expected {
            return Err(ProofError::GenesisBytes);
        }
        if self.governance.len() > GOVERNANCE_LINKS_MAX {
            return Err(ProofError::TooManyLinks(self.governance.len()));
        }
        let mut history = SetHistory::from_genesis(genesis);
        let chain_id = genesis.chain_id.as_str();
        for (index, link) in self.governance.iter().enumerate() {
            let what = format!("governance link #{index} proposal");
            check_included(&link.proposal, chain_id, &history, &what)?;
            let TxBody::ProposeChange { change } = &link.proposal.transaction.payload.body else {
                return Err(ProofError::Governance {
                    index,
                    reason: "the proposal transaction is not a change proposal".to_string(),
                });
            };
            let proposal_id = link.proposal.transaction.id();
            let executed_at = match &link.executed_by {
                None => link.proposal.header.height,
                Some(approval) => {
                    let what = format!("governance link #{index} approval");
                    check_included(approval, chain_id, &history, &what)?;
                    match &approval.transaction.payload.body {
                        TxBody::ApproveChange { proposal } if proposal.0 == proposal_id.0 => {}
                        _ => {
                            return Err(ProofError::Governance {
                                index,
                                reason: format!(
                                "the executing transaction does not approve proposal {proposal_id}"
                            ),
                            })
                        }
                    }
                    if approval.header.height < link.proposal.header.height {
                        return Err(ProofError::Governance {
                            index,
                            reason: "the approval is older than the proposal".to_string(),
                        });
                    }
                    approval.header.height
                }
            };
            history
                .apply(change, executed_at)
                .map_err(|reason| ProofError::Governance { index, reason })?;
        }
        check_included(&self.target, chain_id, &history, "transaction")?;
        let target = &self.target;
        let height = target.header.height;
        Ok(ProofSummary {
            tx_id: target.transaction.id(),
            height,
            index: target.inclusion.index,
            block_hash: target.header.hash(),
            time_ms: target.header.time.0,
            kind: target.transaction.payload.body.kind(),
            signer: target.transaction.payload.signer,
            governance_links: self.governance.len(),
            validators: history.set_at(height).validators.len(),
        })
    }
}

fn check_included(
    item: &IncludedTx,
    chain_id: &str,
    history: &SetHistory,
    what: &str,
) -> Result<(), ProofError> {
    let header = &item.header;
    if header.chain_id != chain_id {
        return Err(ProofError::WrongChain {
            what: what.to_string(),
            expected: chain_id.to_string(),
            found: header.chain_id.clone(),
        });
    }
    let id = item.transaction.id();
    if !merkle::verify_inclusion(&header.tx_root, &id.0, &item.inclusion) {
        return Err(ProofError::NotIncluded {
            what: what.to_string(),
            tx: id,
            height: header.height,
        });
    }
    let set = history.set_at(header.height);
    if header.validator_set_hash != set.hash() {
        return Err(ProofError::ValidatorSetDiffers {
            what: what.to_string(),
            height: header.height,
            expected: set.hash(),
            found: header.validator_set_hash,
        });
    }
    item.certificate
        .verify_commit_of(chain_id, header.height, &header.hash(), set)
        .map_err(|error| ProofError::Certificate {
            what: what.to_string(),
            height: header.height,
            error: Box::new(error),
        })
}

/// The departments' validator keys and the sets they define, followed from
/// genesis through executed changes.
struct SetHistory {
    departments: BTreeMap<DepartmentId, Validator>,
    /// The set in force from each height on (height 1: the genesis set).
    sets: BTreeMap<Height, ValidatorSet>,
    last_change: Height,
}

impl SetHistory {
    fn from_genesis(genesis: &Genesis) -> Self {
        let departments: BTreeMap<DepartmentId, Validator> = genesis
            .departments
            .iter()
            .map(|d| {
                (
                    d.id.clone(),
                    Validator {
                        key: d.keys.validator_key,
                        power: d.voting_power,
                    },
                )
            })
            .collect();
        let mut sets = BTreeMap::new();
        sets.insert(Height(1), genesis.validator_set());
        SetHistory {
            departments,
            sets,
            last_change: Height(0),
        }
    }

    fn set_at(&self, height: Height) -> &ValidatorSet {
        match self.sets.range(..=height).next_back() {
            Some((_, set)) => set,
            // Height 0 has no block; the genesis set is the nearest answer.
            None => &self.sets[&Height(1)],
        }
    }

    /// Apply a change executed in block `at`; the new set is in force from
    /// `at + 1`, as the state machine does it.
    fn apply(&mut self, change: &GovernanceChange, at: Height) -> Result<(), String> {
        if at < self.last_change {
            return Err("governance links are not in height order".to_string());
        }
        match change {
            GovernanceChange::AddDepartment(nd) => {
                if self.departments.contains_key(&nd.id) {
                    return Err(format!("department `{}` already exists", nd.id));
                }
                self.departments.insert(
                    nd.id.clone(),
                    Validator {
                        key: nd.keys.validator_key,
                        power: nd.voting_power,
                    },
                );
            }
            GovernanceChange::RemoveDepartment { department } => {
                if self.departments.remove(department).is_none() {
                    return Err(format!("department `{department}` does not exist"));
                }
            }
            GovernanceChange::RotateDepartmentKeys { department, keys } => {
                match self.departments.get_mut(department) {
                    Some(v) => v.key = keys.validator_key,
                    None => return Err(format!("department `{department}` does not exist")),
                }
            }
            GovernanceChange::ChangeParameters(_) => return Ok(()),
        }
        self.last_change = at;
        let set = ValidatorSet::new(self.departments.values().cloned().collect());
        self.sets.insert(at.next(), set);
        Ok(())
    }
}

/// Whether an executed governance change changes the departments (and so
/// possibly the validator set): the changes a proof must carry.
pub fn changes_departments(change: &GovernanceChange) -> bool {
    !matches!(change, GovernanceChange::ChangeParameters(_))
}

/// Why a proof could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError {
    #[error("transaction {0} is not on this chain")]
    UnknownTransaction(TxId),
    #[error("could not read block {height}: {reason}")]
    Read { height: Height, reason: String },
}

fn read_block(
    source: &dyn BlockSource,
    height: Height,
) -> Result<(crate::block::Block, CommitCertificate), ProveError> {
    let read = |reason: String| ProveError::Read { height, reason };
    let raw = source
        .raw_block(height)
        .map_err(read)?
        .ok_or_else(|| read("missing".to_string()))?;
    let block: crate::block::Block = encoding::decode(&raw).map_err(|e| read(e.to_string()))?;
    let raw = source
        .raw_certificate(height)
        .map_err(read)?
        .ok_or_else(|| read("certificate missing".to_string()))?;
    let certificate = CommitCertificate::from_bytes(&raw).map_err(|e| read(e.to_string()))?;
    Ok((block, certificate))
}

/// The transaction at `location` with its inclusion proof, header and
/// certificate.
pub fn included_tx(
    source: &dyn BlockSource,
    location: TxLocation,
) -> Result<IncludedTx, ProveError> {
    let (block, certificate) = read_block(source, location.height)?;
    let index = location.index as usize;
    let read = |reason: &str| ProveError::Read {
        height: location.height,
        reason: reason.to_string(),
    };
    let transaction = block
        .transactions
        .get(index)
        .cloned()
        .ok_or_else(|| read("transaction index out of range"))?;
    let inclusion = block
        .inclusion_proof(index)
        .ok_or_else(|| read("transaction index out of range"))?;
    Ok(IncludedTx {
        transaction,
        inclusion,
        header: block.header,
        certificate,
    })
}

/// Build the proof of transaction `tx` from a verified replay (`state`)
/// and the blocks it replayed (`source`).
pub fn build_tx_proof(
    genesis: &Genesis,
    state: &MemoryState,
    source: &dyn BlockSource,
    tx: &TxId,
) -> Result<TxProof, ProveError> {
    let location = *state
        .tx_locations
        .get(tx)
        .ok_or(ProveError::UnknownTransaction(*tx))?;
    let target = included_tx(source, location)?;
    let mut executed: Vec<(Height, u32, &crate::records::Proposal)> = Vec::new();
    for proposal in state.proposals.values() {
        let Some(at) = proposal.executed_at else {
            continue;
        };
        if at >= location.height || !changes_departments(&proposal.change) {
            continue;
        }
        let position = state
            .tx_locations
            .get(&TxId(proposal.id.0))
            .ok_or(ProveError::UnknownTransaction(TxId(proposal.id.0)))?;
        executed.push((at, position.index, proposal));
    }
    let mut links = Vec::new();
    for (at, _, proposal) in &executed {
        let proposal_location = state.tx_locations[&TxId(proposal.id.0)];
        let proposal_tx = included_tx(source, proposal_location)?;
        let executed_by = find_executing_approval(source, *at, proposal.id)?;
        let order = executed_by
            .as_ref()
            .map(|a| a.inclusion.index)
            .unwrap_or(proposal_tx.inclusion.index);
        links.push((
            *at,
            order,
            GovernanceLink {
                proposal: proposal_tx,
                executed_by,
            },
        ));
    }
    links.sort_by_key(|(at, order, _)| (*at, *order));
    Ok(TxProof {
        format_version: PROOF_FORMAT_VERSION,
        genesis_hash: genesis.hash(),
        genesis: genesis.to_bytes(),
        governance: links.into_iter().map(|(_, _, l)| l).collect(),
        target,
    })
}

/// The approval of `proposal` in block `height` that executed it: the
/// state machine refuses approvals of an executed proposal, so it is the
/// last approval of that proposal in the block. `None` when the block holds
/// no approval of it (the proposal executed itself).
fn find_executing_approval(
    source: &dyn BlockSource,
    height: Height,
    proposal: crate::types::ProposalId,
) -> Result<Option<IncludedTx>, ProveError> {
    let (block, _) = read_block(source, height)?;
    let index = block.transactions.iter().rposition(
        |t| matches!(&t.payload.body, TxBody::ApproveChange { proposal: p } if *p == proposal),
    );
    match index {
        Some(index) => included_tx(
            source,
            TxLocation {
                height,
                index: index as u32,
            },
        )
        .map(Some),
        None => Ok(None),
    }
}
