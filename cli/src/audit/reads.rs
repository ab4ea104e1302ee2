//! Reads as the chain attests them: the account of `attest-read`
//! transactions checked against the access records (part of `custody audit
//! verify`), and `custody audit denials`, the refused reads by member,
//! offline.

use std::io::Write;

use clap::Args;
use custody_ledger::reads::{ReadAccount, ReadOutcome};
use custody_ledger::types::PublicKey;
use serde::Serialize;

use super::source::{load_chain, LoadedChain, SourceArgs};
use super::{show_progress, time, AuditError};

/// The account of every read of the verified chain `loaded`: its blocks
/// read again in height order. Fails when an attestation names an access
/// record that is not a committed record-access of that member for that
/// document, or when a record is attested served twice.
pub fn read_account(loaded: &LoadedChain) -> Result<ReadAccount, AuditError> {
    let mut account = ReadAccount::default();
    for height in 1..=loaded.report.height.0 {
        let block = loaded.block(height)?;
        account
            .add_block(&block)
            .map_err(|error| AuditError::Reads(error.to_string()))?;
    }
    Ok(account)
}

/// `custody audit denials`
#[derive(Args, Debug)]
pub struct DenialsArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Only this member's denials (their public key, 64 hex digits).
    #[arg(long, value_name = "KEY")]
    pub member: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One refused read: the member's own signed request, as the refusing
/// node attested it.
#[derive(Serialize, Debug)]
pub struct Denial {
    pub member: String,
    /// The member's department when the chain knows them.
    pub department: Option<String>,
    pub document: String,
    pub code: String,
    pub refused_by: String,
    pub height: u64,
    pub time: String,
    pub attestation_tx: String,
    pub access_tx: Option<String>,
    /// The member's signature over the request (hex): checked again here.
    pub request_signature: String,
    pub request_time: String,
}

#[derive(Serialize, Debug)]
struct DenialsReport {
    chain_id: String,
    genesis_hash: String,
    denials: Vec<Denial>,
}

pub(super) fn denials(
    args: DenialsArgs,
    zone: &crate::when::Zone,
    out: &mut dyn Write,
) -> Result<(), AuditError> {
    let member = match &args.member {
        Some(text) => Some(PublicKey::from_hex(text).map_err(|error| {
            AuditError::BadArgument(format!(
                "--member `{text}` is not a public key (64 hex digits): {error}"
            ))
        })?),
        None => None,
    };
    let loaded = load_chain(&args.source, show_progress())?;
    let account = read_account(&loaded)?;
    let mut denials = Vec::new();
    for read in &account.denied {
        let ReadOutcome::Denied { request, code } = &read.outcome else {
            continue;
        };
        if member.is_some_and(|m| m != request.request.member) {
            continue;
        }
        // The replay checked it; an auditor's copy of this tool checks it
        // again, since this is the evidence the listing rests on.
        if !request.verify_signature() {
            return Err(AuditError::Reads(format!(
                "denial {} carries a request whose signature does not verify",
                read.tx_id
            )));
        }
        denials.push(Denial {
            member: request.request.member.to_hex(),
            department: loaded
                .state
                .members
                .get(&request.request.member)
                .map(|m| m.department.to_string()),
            document: request.request.document.to_string(),
            code: code.clone(),
            refused_by: read.department.to_string(),
            height: read.height.0,
            time: time::shown(read.time.0, args.json, zone),
            attestation_tx: read.tx_id.to_hex(),
            access_tx: request.request.access_tx.map(|id| id.to_hex()),
            request_signature: hex::encode(request.signature.0),
            request_time: time::shown(request.request.time_ms, args.json, zone),
        });
    }
    let report = DenialsReport {
        chain_id: loaded.genesis.chain_id.clone(),
        genesis_hash: loaded.report.genesis_hash.to_hex(),
        denials,
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} refused read(s) on chain {} (each carries the member's own signed request)",
        report.denials.len(),
        report.chain_id
    )?;
    for d in &report.denials {
        writeln!(
            out,
            "  {} member {}{} asked for {}: refused `{}` by {}'s node (height {}, attestation {})",
            d.time,
            d.member,
            d.department
                .as_deref()
                .map(|dep| format!(" of {dep}"))
                .unwrap_or_default(),
            d.document,
            d.code,
            d.refused_by,
            d.height,
            d.attestation_tx
        )?;
    }
    Ok(())
}
