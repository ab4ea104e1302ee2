//! The genesis ceremony: each department writes a contribution file with
//! its public keys, one person assembles them into `genesis.toml`, and every
//! department checks the assembled file's hash before starting its node.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use custody_ledger::genesis::Genesis;
use custody_ledger::records::{DepartmentKeys, NewDepartment, NewMember, Parameters};
use custody_ledger::types::{
    Classification, DepartmentId, PublicKey, Role, Timestamp, FORMAT_VERSION,
};

use super::{read_file_limited, write_file, AuditError};
use crate::keyfile::{KeyFile, KeyKind};

pub use custody_ledger::genesis::{Contribution, CONTRIBUTION_FORMAT, CONTRIBUTION_VERSION};
/// A contribution is a few hundred bytes; anything larger is not one.
const CONTRIBUTION_BYTES_MAX: u64 = 64 * 1024;

/// `custody genesis …`
#[derive(Args, Debug)]
pub struct GenesisArgs {
    #[command(subcommand)]
    pub command: GenesisCommand,
}

/// Building a genesis together.
#[derive(Subcommand, Debug)]
pub enum GenesisCommand {
    /// Write this department's public-key contribution file.
    ///
    /// Each key argument is a Custody key file (`custody keys new`), a node
    /// key file of 64 hex digits holding a secret (the public key is
    /// derived), or `pub:<64 hex digits>` giving the public key itself.
    #[command(
        after_help = "Example:\n  custody genesis contribute --department civil-affairs --name \"Civil Affairs\" --validator-key keys/validator.key --node-key keys/node.key --encryption-key department.key --admin-key admin.key --out civil-affairs.json"
    )]
    Contribute(ContributeArgs),
    /// Assemble contributions into a genesis file.
    #[command(
        after_help = "Example:\n  custody genesis assemble --chain-id custody-province-2026 --genesis-date 2026-01-01 civil-affairs.json health.json finance.json social-security.json --out genesis.json --json"
    )]
    Assemble(AssembleArgs),
    /// Print a genesis file's hash, the chain's root of trust: every
    /// department compares it before starting its node.
    #[command(
        after_help = "Example:\n  custody genesis hash genesis.json\n  custody genesis hash genesis.json --json"
    )]
    Hash {
        /// The genesis file (TOML, or JSON if it ends in .json).
        genesis: PathBuf,
        /// Print the hash and the chain id as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `custody genesis contribute`
#[derive(Args, Debug)]
pub struct ContributeArgs {
    /// The department's slug, e.g. `civil-affairs`.
    #[arg(long)]
    pub department: String,
    /// The department's display name.
    #[arg(long)]
    pub name: String,
    /// The validator's ed25519 key (signs consensus votes).
    #[arg(long, value_name = "KEY")]
    pub validator_key: String,
    /// The node's libp2p ed25519 identity key.
    #[arg(long, value_name = "KEY")]
    pub node_key: String,
    /// The department's X25519 encryption key.
    #[arg(long, value_name = "KEY")]
    pub encryption_key: String,
    /// The first admin's ed25519 member key.
    #[arg(long, value_name = "KEY")]
    pub admin_key: String,
    /// The first admin's name.
    #[arg(long, default_value = "administrator")]
    pub admin_name: String,
    /// Voting power of this department's validator.
    #[arg(long, default_value_t = 1)]
    pub voting_power: u64,
    /// Where to write the contribution (JSON).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custody genesis assemble`
#[derive(Args, Debug)]
pub struct AssembleArgs {
    /// The chain id, e.g. `custody-province-2026`.
    #[arg(long)]
    pub chain_id: String,
    /// Genesis time: a day YYYY-MM-DD (its first moment in --time-zone) or
    /// a time with its offset (2026-12-01T00:00:00+08:00); agree on it, and
    /// on the zone, beforehand: it is part of the genesis hash.
    #[arg(long, value_name = "DATE")]
    pub genesis_date: String,
    /// The time zone a --genesis-date day is read in (an IANA name).
    #[arg(
        long,
        env = crate::when::TIME_ZONE_ENV,
        default_value = crate::when::DEFAULT_TIME_ZONE,
        value_parser = crate::when::Zone::parse_arg,
        value_name = "ZONE"
    )]
    pub time_zone: crate::when::Zone,
    /// Contribution files, one per department.
    #[arg(required = true)]
    pub contributions: Vec<PathBuf>,
    /// Where to write the genesis: JSON when the name ends in `.json`, TOML
    /// otherwise. The default is the file a node reads (`paths.genesis` in
    /// its config): copy it to each node's home as it is.
    #[arg(long, value_name = "FILE", default_value = "genesis.json")]
    pub out: PathBuf,
    /// Print what was written, with the genesis hash, as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `custody genesis …`, printing to stdout.
pub fn run_genesis(args: GenesisArgs) -> Result<(), AuditError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_genesis_to(args, &mut out)
}

/// Which curve a key argument is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Curve {
    Ed25519,
    X25519,
}

/// A public key from a key argument (see `genesis contribute --help`).
fn public_key(argument: &str, curve: Curve, what: &str) -> Result<PublicKey, AuditError> {
    let bad = |reason: String| AuditError::Key(format!("{what} `{argument}`: {reason}"));
    if let Some(hex) = argument.strip_prefix("pub:") {
        return PublicKey::from_hex(hex).map_err(bad);
    }
    let path = Path::new(argument);
    let bytes = read_file_limited(path, 64 * 1024)?;
    let text = String::from_utf8(bytes).map_err(|_| bad("not a key file".to_string()))?;
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let file = KeyFile::parse(&text, argument).map_err(|e| bad(e.to_string()))?;
        let expected = match curve {
            Curve::Ed25519 => KeyKind::Member,
            Curve::X25519 => KeyKind::Department,
        };
        if file.kind() != expected {
            return Err(bad(format!(
                "holds a {} key, a {} key is needed",
                file.kind(),
                expected
            )));
        }
        return Ok(PublicKey(file.public_key()));
    }
    // A node key file: 64 hex digits of a secret.
    let secret: [u8; 32] = custody_ledger::types::parse_hex::<32>(trimmed).map_err(bad)?;
    Ok(PublicKey(match curve {
        Curve::Ed25519 => ed25519_dalek::SigningKey::from_bytes(&secret)
            .verifying_key()
            .to_bytes(),
        Curve::X25519 => {
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes()
        }
    }))
}

/// A department's three public keys from key arguments (see `genesis
/// contribute --help`).
pub fn department_keys(
    validator_key: &str,
    node_key: &str,
    encryption_key: &str,
) -> Result<DepartmentKeys, AuditError> {
    Ok(DepartmentKeys {
        validator_key: public_key(validator_key, Curve::Ed25519, "validator key")?,
        node_key: public_key(node_key, Curve::Ed25519, "node key")?,
        encryption_key: public_key(encryption_key, Curve::X25519, "encryption key")?,
    })
}

/// Reads and checks a department's contribution file (`genesis contribute`).
pub fn read_contribution(path: &Path) -> Result<Contribution, AuditError> {
    let bytes = read_file_limited(path, CONTRIBUTION_BYTES_MAX)?;
    let bad = |reason: String| AuditError::Read {
        path: path.display().to_string(),
        reason,
    };
    let c: Contribution = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if c.format != CONTRIBUTION_FORMAT {
        return Err(bad(format!(
            "not a genesis contribution (format `{}`)",
            c.format
        )));
    }
    if c.version != CONTRIBUTION_VERSION {
        return Err(bad(format!(
            "contribution version {} is not supported (this build reads 1)",
            c.version
        )));
    }
    Ok(c)
}

/// Run `custody genesis …`, printing to `out`.
pub fn run_genesis_to(args: GenesisArgs, out: &mut dyn Write) -> Result<(), AuditError> {
    match args.command {
        GenesisCommand::Contribute(a) => {
            let id = DepartmentId::new(a.department.clone())
                .map_err(|e| AuditError::BadArgument(e.to_string()))?;
            if a.voting_power == 0 {
                return Err(AuditError::BadArgument(
                    "--voting-power must be at least 1".into(),
                ));
            }
            let contribution = Contribution {
                format: CONTRIBUTION_FORMAT.to_string(),
                version: CONTRIBUTION_VERSION,
                department: NewDepartment {
                    id,
                    name: a.name.clone(),
                    keys: DepartmentKeys {
                        validator_key: public_key(
                            &a.validator_key,
                            Curve::Ed25519,
                            "validator key",
                        )?,
                        node_key: public_key(&a.node_key, Curve::Ed25519, "node key")?,
                        encryption_key: public_key(
                            &a.encryption_key,
                            Curve::X25519,
                            "encryption key",
                        )?,
                    },
                    voting_power: a.voting_power,
                    admins: vec![NewMember {
                        key: public_key(&a.admin_key, Curve::Ed25519, "admin key")?,
                        name: a.admin_name.clone(),
                        roles: vec![Role::Admin],
                        clearance: Classification::Secret,
                    }],
                },
            };
            let mut json = serde_json::to_string_pretty(&contribution)?;
            json.push('\n');
            write_file(&a.out, json.as_bytes())?;
            if a.json {
                let value = serde_json::json!({
                    "department": a.department,
                    "file": a.out,
                });
                serde_json::to_writer_pretty(&mut *out, &value)?;
                writeln!(out)?;
                return Ok(());
            }
            writeln!(
                out,
                "contribution of `{}` written to {}; send it to whoever assembles the genesis",
                a.department,
                a.out.display()
            )?;
        }
        GenesisCommand::Assemble(a) => {
            let mut departments = Vec::new();
            for path in &a.contributions {
                departments.push(read_contribution(path)?.department);
            }
            // Sorted by id so that the same contributions always give the
            // same genesis, whatever order they were listed in.
            departments.sort_by(|x, y| x.id.cmp(&y.id));
            if a.genesis_date.trim_start().starts_with('+') {
                return Err(AuditError::BadArgument(format!(
                    "--genesis-date {} counts from now, so no two departments would assemble the same genesis: give a day such as 2026-12-01",
                    a.genesis_date
                )));
            }
            let time = a
                .time_zone
                .parse(&a.genesis_date, 0, crate::when::DayBound::Start)
                .map_err(|e| AuditError::BadArgument(e.to_string()))?;
            let genesis = Genesis {
                format_version: FORMAT_VERSION,
                chain_id: a.chain_id.clone(),
                genesis_time: Timestamp(time),
                parameters: Parameters::default(),
                departments,
            };
            genesis.validate()?;
            let mut text = if a.out.extension().is_some_and(|e| e == "json") {
                genesis.to_json_string()?
            } else {
                genesis.to_toml_string()?
            };
            if !text.ends_with('\n') {
                text.push('\n');
            }
            // What is written must read back as the same genesis.
            let again = Genesis::from_text(&text)?;
            if again.hash() != genesis.hash() {
                return Err(AuditError::BadArgument(
                    "the genesis does not survive being written and read back".into(),
                ));
            }
            write_file(&a.out, text.as_bytes())?;
            if a.json {
                let value = serde_json::json!({
                    "chain_id": genesis.chain_id,
                    "departments": genesis.departments.len(),
                    "file": a.out,
                    "genesis_hash": genesis.hash().to_string(),
                });
                serde_json::to_writer_pretty(&mut *out, &value)?;
                writeln!(out)?;
                return Ok(());
            }
            writeln!(
                out,
                "genesis of chain `{}` with {} departments written to {}",
                genesis.chain_id,
                genesis.departments.len(),
                a.out.display()
            )?;
            writeln!(out, "genesis hash {}", genesis.hash())?;
        }
        GenesisCommand::Hash { genesis, json } => {
            let g = Genesis::load(&genesis)?;
            if json {
                let value = serde_json::json!({
                    "chain_id": g.chain_id,
                    "genesis_hash": g.hash().to_string(),
                });
                serde_json::to_writer_pretty(&mut *out, &value)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", g.hash())?;
            }
        }
    }
    Ok(())
}
