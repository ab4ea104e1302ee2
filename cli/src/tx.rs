//! `custody tx …`: sign membership transactions with a member key file and
//! submit them, or submit an already signed transaction from a file.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{Classification, DepartmentId, Nonce, PublicKey, Role, TxId};
use custody_node::api_types::SubmitResponse;
use custody_node::client::Client;

#[derive(Subcommand)]
pub enum TxCommand {
    /// Submit a signed transaction from FILE (JSON, or the canonical binary encoding).
    #[command(
        after_help = "Example:\n  custody tx submit enroll.json --node http://127.0.0.1:26681 --wait"
    )]
    Submit {
        /// The transaction file.
        file: PathBuf,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Enroll a member in the signer's department (signed by one of its admins).
    #[command(
        after_help = "Example:\n  custody tx enroll-member --member 3b6a…(64 hex) --department civil-affairs --name \"Li Wei\" --role clerk --clearance confidential --key admin.key --wait"
    )]
    EnrollMember {
        /// The new member's ed25519 public key (64 hex digits).
        #[arg(long)]
        member: String,
        /// The member's department (the signer's own).
        #[arg(long)]
        department: String,
        /// The member's name, as it will appear in audits.
        #[arg(long)]
        name: String,
        /// Roles: admin, clerk, auditor (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Highest classification the member may handle: public, internal, confidential, secret.
        #[arg(long, default_value = "internal")]
        clearance: String,
        #[command(flatten)]
        signer: SignerArgs,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Revoke a member of the signer's department (signed by one of its admins).
    #[command(
        after_help = "Example:\n  custody tx revoke-member --member 3b6a…(64 hex) --reason \"left the department\" --key admin.key --wait"
    )]
    RevokeMember {
        /// The member's ed25519 public key (64 hex digits).
        #[arg(long)]
        member: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        signer: SignerArgs,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

#[derive(Args)]
pub struct SignerArgs {
    /// The signing member's key file: one made by `custody keys new --kind
    /// member`, or 64 hex digits (the ed25519 secret, as `testnet init` writes).
    #[arg(long)]
    key: PathBuf,
    /// Environment variable holding the key file's passphrase, if it is sealed.
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
    /// Nonce to use; by default the signer's committed nonce + 1, read from the node.
    #[arg(long)]
    nonce: Option<u64>,
    /// Write the signed transaction as JSON to this file instead of submitting it.
    #[arg(long)]
    output: Option<PathBuf>,
}

impl SignerArgs {
    /// The signing key, read from `--key` (unsealed with `--passphrase-env`).
    pub(crate) fn signing_key(&self) -> Result<ed25519_dalek::SigningKey, String> {
        read_signing_key(&self.key, self.passphrase_env.as_deref())
    }
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The node's HTTP API.
    #[arg(long, env = "CUSTODY_NODE", default_value = "http://127.0.0.1:26680")]
    node: String,
    /// Wait until the transaction is committed and print its height and inclusion proof.
    #[arg(long)]
    wait: bool,
    /// Longest wait, in seconds.
    #[arg(long, default_value_t = 30)]
    wait_seconds: u64,
    /// Print the node's answer as JSON.
    #[arg(long)]
    json: bool,
}

impl SubmitArgs {
    /// The node's HTTP API.
    pub fn node(&self) -> &str {
        &self.node
    }
    /// Whether to wait for the commit.
    pub fn waits(&self) -> bool {
        self.wait
    }
    /// Whether the node's answer is printed as JSON.
    pub fn prints_json(&self) -> bool {
        self.json
    }
}

pub(crate) fn parse_key(text: &str) -> Result<PublicKey, String> {
    PublicKey::from_hex(text).map_err(|error| format!("`{text}` is not a public key: {error}"))
}

/// Roles from `--role` arguments, in the order given.
pub(crate) fn parse_roles(texts: &[String]) -> Result<Vec<Role>, String> {
    texts.iter().map(|text| parse_role(text)).collect()
}

fn parse_role(text: &str) -> Result<Role, String> {
    match text {
        "admin" => Ok(Role::Admin),
        "clerk" => Ok(Role::Clerk),
        "auditor" => Ok(Role::Auditor),
        other => Err(format!("`{other}` is not a role (admin, clerk or auditor)")),
    }
}

pub(crate) fn parse_clearance(text: &str) -> Result<Classification, String> {
    match text {
        "public" => Ok(Classification::Public),
        "internal" => Ok(Classification::Internal),
        "confidential" => Ok(Classification::Confidential),
        "secret" => Ok(Classification::Secret),
        other => Err(format!(
            "`{other}` is not a classification (public, internal, confidential or secret)"
        )),
    }
}

pub use crate::keyfile::read_signing_key;

async fn sign(
    client: &Client,
    signer: &SignerArgs,
    body: TxBody,
) -> Result<SignedTransaction, String> {
    let key = read_signing_key(&signer.key, signer.passphrase_env.as_deref())?;
    let status = client.status().await.map_err(|error| error.to_string())?;
    let nonce = match signer.nonce {
        Some(nonce) => nonce,
        None => {
            let public = hex::encode(key.verifying_key().to_bytes());
            let member = client
                .clone()
                .signed_by(key.clone())
                .get_json(&format!("/v1/members/{public}"))
                .await
                .map_err(|error| format!("cannot read the signer's nonce: {error}"))?;
            member["nonce"].as_u64().unwrap_or(0) + 1
        }
    };
    Ok(SignedTransaction::sign(
        body,
        &key,
        Nonce(nonce),
        &status.chain_id,
    ))
}

fn print_answer(answer: &SubmitResponse, json: bool) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(answer).map_err(|error| error.to_string())?
        );
        return Ok(());
    }
    match &answer.inclusion {
        Some(inclusion) => println!(
            "committed {} at height {} (index {}, block {})",
            answer.tx_id, inclusion.height, inclusion.index, inclusion.block_hash
        ),
        None => println!("accepted {} (pending)", answer.tx_id),
    }
    Ok(())
}

async fn submit(client: &Client, tx: &SignedTransaction, args: &SubmitArgs) -> Result<(), String> {
    let wait = args.wait.then(|| Duration::from_secs(args.wait_seconds));
    let answer = client
        .submit(tx, wait)
        .await
        .map_err(|error| error.to_string())?;
    print_answer(&answer, args.json)
}

/// Signs `body` and submits it, or writes it to `--output`; the id of
/// the transaction submitted, `None` when it was only written.
pub(crate) async fn sign_and_submit(
    signer: &SignerArgs,
    args: &SubmitArgs,
    body: TxBody,
) -> Result<Option<TxId>, String> {
    let client = Client::new(args.node.clone());
    let tx = sign(&client, signer, body).await?;
    if let Some(output) = &signer.output {
        let json = serde_json::to_vec_pretty(&tx).map_err(|error| error.to_string())?;
        std::fs::write(output, json)
            .map_err(|error| format!("cannot write {}: {error}", output.display()))?;
        println!("wrote {} ({})", output.display(), tx.id());
        return Ok(None);
    }
    submit(&client, &tx, args).await?;
    Ok(Some(tx.id()))
}

pub async fn run(command: TxCommand) -> Result<(), String> {
    match command {
        TxCommand::Submit { file, submit } => {
            let bytes = std::fs::read(&file)
                .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
            let client = Client::new(submit.node.clone());
            let wait = submit
                .wait
                .then(|| Duration::from_secs(submit.wait_seconds));
            let is_json = bytes
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'{');
            let answer = if is_json {
                client.submit_json(bytes, wait).await
            } else {
                client.submit_bytes(bytes, wait).await
            }
            .map_err(|error| error.to_string())?;
            print_answer(&answer, submit.json)
        }
        TxCommand::EnrollMember {
            member,
            department,
            name,
            roles,
            clearance,
            signer,
            submit,
        } => {
            let roles = parse_roles(&roles)?;
            let body = TxBody::EnrollMember {
                member: parse_key(&member)?,
                department: DepartmentId::new(department).map_err(|error| error.to_string())?,
                name,
                roles,
                clearance: parse_clearance(&clearance)?,
            };
            sign_and_submit(&signer, &submit, body).await?;
            Ok(())
        }
        TxCommand::RevokeMember {
            member,
            reason,
            signer,
            submit,
        } => {
            let body = TxBody::RevokeMember {
                member: parse_key(&member)?,
                reason,
            };
            sign_and_submit(&signer, &submit, body).await?;
            Ok(())
        }
    }
}
