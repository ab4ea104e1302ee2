//! `custody gov …` (governance changes of the federation) and `custody
//! member …` (a department's own members), signed by an admin's key file.
//!
//! A change executes once the departments that approved it hold more than
//! 2/3 of the voting power; it is in force for the validator set and the
//! block limits from the height after the block that executed it
//! (`docs/rules.md` §4).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use custody_ledger::records::Parameters;
use custody_ledger::tx::{GovernanceChange, TxBody};
use custody_ledger::types::{DepartmentId, ProposalId};
use custody_node::api_types::ProposalResponse;
use custody_node::client::Client;

use crate::tx::{parse_clearance, parse_key, parse_roles, sign_and_submit, SignerArgs, SubmitArgs};

#[derive(Subcommand)]
pub enum GovCommand {
    /// Propose a change; your department's approval is counted at once.
    ///
    /// Example: custody gov propose remove-department --department finance --key admin.key --wait
    Propose {
        #[command(subcommand)]
        change: ChangeArgs,
    },
    /// Approve a pending change on behalf of your department.
    ///
    /// Example: custody gov approve 3f5e…c2 --key admin.key --wait
    Approve {
        /// The proposal's id (the id of the transaction that proposed it).
        proposal: String,
        #[command(flatten)]
        signer: SignerArgs,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// List proposals with their approvals against the threshold.
    ///
    /// Example: custody gov list --status pending
    List {
        /// pending, executed or all.
        #[arg(long, default_value = "pending")]
        status: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show one proposal: the change, who approved, what is still needed,
    /// and from which height it takes effect.
    #[command(
        after_help = "Example:\n  custody gov show 7f3c…(64 hex) --key admin.key\n  custody gov show 7f3c…(64 hex) --key admin.key --json"
    )]
    Show {
        /// The proposal's id.
        proposal: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand)]
pub enum ChangeArgs {
    /// Add a department from its genesis contribution file (`custody genesis
    /// contribute`): its keys, voting power and first admin.
    #[command(
        after_help = "Example:\n  custody gov propose add-department --contribution finance-contribution.json --key admin.key --wait"
    )]
    AddDepartment {
        /// The new department's contribution file (JSON).
        #[arg(long)]
        contribution: PathBuf,
        #[command(flatten)]
        signer: SignerArgs,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Remove a department (it must hold no document).
    #[command(
        after_help = "Example:\n  custody gov propose remove-department --department finance --key admin.key --wait"
    )]
    RemoveDepartment {
        /// The department's slug.
        #[arg(long)]
        department: String,
        #[command(flatten)]
        signer: SignerArgs,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Replace a department's validator, node and encryption keys (each a
    /// key file or `pub:<64 hex digits>`, as for `genesis contribute`; a
    /// key not given stays as the chain has it), or take them from a
    /// contribution file.
    ///
    /// Example: custody gov propose rotate-keys --department health --validator-key pub:3b6a…0c --key admin.key --wait
    RotateKeys {
        /// The department's slug.
        #[arg(long)]
        department: String,
        /// The new keys from a contribution file, instead of the three options below.
        #[arg(long, conflicts_with_all = ["validator_key", "node_key", "encryption_key"])]
        contribution: Option<PathBuf>,
        /// The new validator key (ed25519); by default the one in force.
        #[arg(long, value_name = "KEY")]
        validator_key: Option<String>,
        /// The new node identity key (ed25519); by default the one in force.
        #[arg(long, value_name = "KEY")]
        node_key: Option<String>,
        /// The new encryption key (X25519); by default the one in force.
        #[arg(long, value_name = "KEY")]
        encryption_key: Option<String>,
        #[command(flatten)]
        signer: SignerArgs,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Change chain parameters; those not given keep their current value.
    #[command(
        after_help = "Example:\n  custody gov propose parameters --offer-expiry-default-ms 1209600000 --key admin.key --wait"
    )]
    Parameters {
        /// Largest encoded block, in bytes.
        #[arg(long)]
        max_block_bytes: Option<u64>,
        /// Most transactions in one block.
        #[arg(long)]
        max_block_txs: Option<u32>,
        /// How far a block's time may be from a voter's clock, in ms.
        #[arg(long)]
        block_time_skew_ms: Option<u64>,
        /// Offer lifetime when an offer names no expiry, in ms.
        #[arg(long)]
        offer_expiry_default_ms: Option<u64>,
        #[command(flatten)]
        signer: SignerArgs,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

#[derive(Args)]
pub struct NodeArgs {
    /// The node's HTTP API.
    #[arg(long, env = "CUSTODY_NODE", default_value = "http://127.0.0.1:26680")]
    node: String,
    /// Your member key file (or an auditor's key named in the node's
    /// `api.auditor_keys`): the node shows proposals and members only to a
    /// signed caller.
    #[arg(long, env = "CUSTODY_MEMBER_KEY", value_name = "FILE")]
    key: Option<std::path::PathBuf>,
    /// Environment variable holding the key file's passphrase, if it is sealed.
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl NodeArgs {
    /// A client of the node, signing its reads with `--key` when given.
    fn client(&self) -> Result<Client, String> {
        let client = Client::new(self.node.clone());
        match &self.key {
            Some(path) => Ok(client.signed_by(crate::tx::read_signing_key(
                path,
                self.passphrase_env.as_deref(),
            )?)),
            None => Ok(client),
        }
    }
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Change a member's roles and clearance (signed by an admin of the
    /// member's department).
    ///
    /// Example: custody member update --key admin.key --member 9a…01 --role clerk --role auditor --clearance confidential
    Update {
        /// The member's ed25519 public key (64 hex digits).
        #[arg(long)]
        member: String,
        /// Roles after the change: admin, clerk, auditor (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Clearance after the change: public, internal, confidential, secret.
        #[arg(long)]
        clearance: String,
        #[command(flatten)]
        signer: SignerArgs,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Show a member: department, roles, clearance, status and nonce.
    #[command(
        after_help = "Example:\n  custody member show 3b6a…(64 hex) --key clerk.key\n  custody member show 3b6a…(64 hex) --key clerk.key --json"
    )]
    Show {
        /// The member's ed25519 public key (64 hex digits).
        member: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

fn parse_proposal(text: &str) -> Result<ProposalId, String> {
    custody_ledger::types::parse_hex::<32>(text)
        .map(ProposalId)
        .map_err(|error| {
            format!("`{text}` is not a proposal id (64 hex digits, as `custody gov list` shows): {error}")
        })
}

fn department(text: &str) -> Result<DepartmentId, String> {
    DepartmentId::new(text).map_err(|error| error.to_string())
}

pub async fn run(command: GovCommand) -> Result<(), String> {
    match command {
        GovCommand::Propose { change } => propose(change).await,
        GovCommand::Approve {
            proposal,
            signer,
            submit,
        } => {
            let proposal = parse_proposal(&proposal)?;
            let body = TxBody::ApproveChange { proposal };
            sign_and_submit(&signer, &submit, body).await?;
            if submit.waits() && !submit.prints_json() {
                print_after(&signer, &submit, &proposal).await;
            }
            Ok(())
        }
        GovCommand::List { status, node } => {
            if !matches!(status.as_str(), "pending" | "executed" | "all") {
                return Err(format!(
                    "--status `{status}` is not one of pending, executed, all"
                ));
            }
            let client = node.client()?;
            let proposals = client
                .proposals(&status)
                .await
                .map_err(|error| error.to_string())?;
            if node.json {
                return print_json(&proposals);
            }
            if proposals.is_empty() {
                println!("no {status} proposals");
            }
            for p in &proposals {
                println!("{}", summary_line(p));
            }
            Ok(())
        }
        GovCommand::Show { proposal, node } => {
            let id = parse_proposal(&proposal)?;
            let client = node.client()?;
            let answer = client
                .proposal(&id)
                .await
                .map_err(|error| error.to_string())?;
            if node.json {
                return print_json(&answer);
            }
            print!("{}", describe(&answer));
            Ok(())
        }
    }
}

async fn propose(change: ChangeArgs) -> Result<(), String> {
    let (change, signer, submit) = match change {
        ChangeArgs::AddDepartment {
            contribution,
            signer,
            submit,
        } => {
            let contribution = crate::audit::read_contribution(&contribution)
                .map_err(|error| error.to_string())?;
            (
                GovernanceChange::AddDepartment(contribution.department),
                signer,
                submit,
            )
        }
        ChangeArgs::RemoveDepartment {
            department: id,
            signer,
            submit,
        } => (
            GovernanceChange::RemoveDepartment {
                department: department(&id)?,
            },
            signer,
            submit,
        ),
        ChangeArgs::RotateKeys {
            department: id,
            contribution,
            validator_key,
            node_key,
            encryption_key,
            signer,
            submit,
        } => {
            let keys = match (contribution, validator_key, node_key, encryption_key) {
                (Some(path), _, _, _) => {
                    crate::audit::read_contribution(&path)
                        .map_err(|error| error.to_string())?
                        .department
                        .keys
                }
                (None, None, None, None) => {
                    return Err(
                        "give the new keys: --contribution FILE, or at least one of \
                         --validator-key, --node-key and --encryption-key (the others keep \
                         the keys in force)"
                            .to_string(),
                    )
                }
                (None, v, n, e) => {
                    // Keys not given stay as the chain has them now.
                    let client = Client::new(submit.node().to_string());
                    let current = client
                        .get_json(&format!("/v1/departments/{id}"))
                        .await
                        .map_err(|error| {
                            format!("cannot read department `{id}`'s keys in force: {error}")
                        })?;
                    let in_force = |name: &str| -> Result<String, String> {
                        current["keys"][name]
                            .as_str()
                            .map(|hex| format!("pub:{hex}"))
                            .ok_or_else(|| {
                                format!("the node did not give department `{id}`'s {name}")
                            })
                    };
                    let v = match v {
                        Some(v) => v,
                        None => in_force("validator_key")?,
                    };
                    let n = match n {
                        Some(n) => n,
                        None => in_force("node_key")?,
                    };
                    let e = match e {
                        Some(e) => e,
                        None => in_force("encryption_key")?,
                    };
                    crate::audit::department_keys(&v, &n, &e).map_err(|error| error.to_string())?
                }
            };
            (
                GovernanceChange::RotateDepartmentKeys {
                    department: department(&id)?,
                    keys,
                },
                signer,
                submit,
            )
        }
        ChangeArgs::Parameters {
            max_block_bytes,
            max_block_txs,
            block_time_skew_ms,
            offer_expiry_default_ms,
            signer,
            submit,
        } => {
            if max_block_bytes.is_none()
                && max_block_txs.is_none()
                && block_time_skew_ms.is_none()
                && offer_expiry_default_ms.is_none()
            {
                return Err("name at least one parameter to change (see --help)".to_string());
            }
            let client = Client::new(submit.node().to_string());
            let current = client
                .parameters()
                .await
                .map_err(|error| format!("cannot read the parameters in force: {error}"))?;
            let wanted = Parameters {
                max_block_bytes: max_block_bytes.unwrap_or(current.max_block_bytes),
                max_block_txs: max_block_txs.unwrap_or(current.max_block_txs),
                block_time_skew_ms: block_time_skew_ms.unwrap_or(current.block_time_skew_ms),
                offer_expiry_default_ms: offer_expiry_default_ms
                    .unwrap_or(current.offer_expiry_default_ms),
            };
            custody_ledger::genesis::check_parameters(&wanted).map_err(|field| {
                format!("`{field}` is out of range; the limits are in docs/rules.md §4")
            })?;
            (GovernanceChange::ChangeParameters(wanted), signer, submit)
        }
    };
    let tx_id = sign_and_submit(&signer, &submit, TxBody::ProposeChange { change }).await?;
    if let Some(id) = tx_id {
        let proposal = ProposalId(id.0);
        if !submit.prints_json() {
            println!(
                "proposal id {}; other departments approve it with `custody gov approve {}`",
                hex::encode(proposal.0),
                hex::encode(proposal.0)
            );
            if submit.waits() {
                print_after(&signer, &submit, &proposal).await;
            }
        }
    }
    Ok(())
}

/// After a committed proposal or approval: where the proposal stands.
async fn print_after(signer: &SignerArgs, submit: &SubmitArgs, proposal: &ProposalId) {
    let client = match signer.signing_key() {
        Ok(key) => Client::new(submit.node().to_string()).signed_by(key),
        Err(error) => {
            eprintln!("(cannot read the proposal back: {error})");
            return;
        }
    };
    match client.proposal(proposal).await {
        Ok(answer) => print!("{}", describe(&answer)),
        Err(error) => eprintln!("(cannot read the proposal back: {error})"),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|error| error.to_string())?;
    println!("{text}");
    Ok(())
}

fn change_summary(change: &GovernanceChange) -> String {
    match change {
        GovernanceChange::AddDepartment(nd) => format!(
            "add department `{}` ({}, voting power {})",
            nd.id, nd.name, nd.voting_power
        ),
        GovernanceChange::RemoveDepartment { department } => {
            format!("remove department `{department}`")
        }
        GovernanceChange::RotateDepartmentKeys { department, keys } => format!(
            "rotate the keys of `{department}` (new validator key {})",
            keys.validator_key
        ),
        GovernanceChange::ChangeParameters(p) => format!(
            "set parameters: max_block_bytes {}, max_block_txs {}, block_time_skew_ms {}, offer_expiry_default_ms {}",
            p.max_block_bytes, p.max_block_txs, p.block_time_skew_ms, p.offer_expiry_default_ms
        ),
    }
}

fn summary_line(p: &ProposalResponse) -> String {
    let standing = match p.effective_from {
        Some(from) => format!(
            "executed at {}, in force from {}",
            p.proposal.executed_at.map(|h| h.0).unwrap_or(0),
            from.0
        ),
        None => format!(
            "approved power {} of {} (needs {})",
            p.tally.approved_power, p.tally.total_power, p.power_needed
        ),
    };
    format!(
        "{}  {}  {}",
        hex::encode(p.proposal.id.0),
        change_summary(&p.proposal.change),
        standing
    )
}

fn describe(p: &ProposalResponse) -> String {
    let names = |ids: &[DepartmentId]| {
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut out = String::new();
    out.push_str(&format!("proposal     {}\n", hex::encode(p.proposal.id.0)));
    out.push_str(&format!(
        "change       {}\n",
        change_summary(&p.proposal.change)
    ));
    out.push_str(&format!(
        "proposed by  {} at height {}\n",
        p.proposal.proposed_by, p.proposal.proposed_at.0
    ));
    out.push_str(&format!("approved by  {}\n", names(&p.proposal.approvals)));
    out.push_str(&format!(
        "power        {} approved of {} in total; more than 2/3 needed, i.e. at least {}\n",
        p.tally.approved_power, p.tally.total_power, p.power_needed
    ));
    match (p.proposal.executed_at, p.effective_from) {
        (Some(at), Some(from)) => out.push_str(&format!(
            "status       executed in block {}; the validator set and block limits follow it from height {}\n",
            at.0, from.0
        )),
        _ => out.push_str(&format!(
            "status       pending (as of height {}); waiting for {}\n",
            p.as_of_height.0,
            names(&p.tally.waiting_for)
        )),
    }
    out
}

pub async fn run_member(command: MemberCommand) -> Result<(), String> {
    match command {
        MemberCommand::Update {
            member,
            roles,
            clearance,
            signer,
            submit,
        } => {
            let roles = parse_roles(&roles)?;
            let body = TxBody::UpdateMember {
                member: parse_key(&member)?,
                roles,
                clearance: parse_clearance(&clearance)?,
            };
            sign_and_submit(&signer, &submit, body).await?;
            Ok(())
        }
        MemberCommand::Show { member, node } => {
            let key = parse_key(&member)?;
            let client = node.client()?;
            let answer = client
                .get_json(&format!("/v1/members/{}", key.to_hex()))
                .await
                .map_err(|error| error.to_string())?;
            if node.json {
                return print_json(&answer);
            }
            let field = |name: &str| answer[name].to_string().trim_matches('"').to_string();
            println!("member     {}", key.to_hex());
            println!("name       {}", field("name"));
            println!("department {}", field("department"));
            println!("roles      {}", answer["roles"]);
            println!("clearance  {}", field("clearance"));
            println!("status     {}", answer["status"]);
            println!("nonce      {}", field("nonce"));
            Ok(())
        }
    }
}
