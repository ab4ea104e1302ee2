//! `custody audit login --node URL --key auditor.key`: opens the auditor
//! pages of a node in a browser. A browser cannot sign requests, so this
//! signs one (`POST /v1/auditor/page-login`) and prints the one-time link
//! the node answers; opening it starts a page session.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::AuditError;

/// How long one request may take.
const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// `custody audit login`
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The node's HTTP API, e.g. http://127.0.0.1:26680.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// An auditor's key named in the node's `api.auditor_keys`, or the key
    /// of a member holding the auditor role.
    #[arg(long, value_name = "FILE", env = "CUSTODY_AUDITOR_KEY")]
    pub key: PathBuf,
    /// Environment variable holding `--key`'s passphrase, if it is sealed.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Print the link as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Deserialize)]
struct Status {
    chain_id: String,
}

#[derive(Deserialize)]
struct PageLogin {
    link: String,
    expires_ms: u64,
}

#[derive(Serialize)]
struct Printed {
    url: String,
    expires_ms: u64,
}

fn node_error(url: &str, reason: impl std::fmt::Display) -> AuditError {
    AuditError::Node {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

async fn refusal(url: &str, response: reqwest::Response) -> AuditError {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    let (code, message) = custody_node::client::refusal_parts(&body);
    node_error(
        url,
        format!("HTTP {status} {code}: {}", message.unwrap_or_default()),
    )
}

async fn ask(base: &str, key: &ed25519_dalek::SigningKey) -> Result<PageLogin, AuditError> {
    let client = custody_node::client::http_client(
        None,
        Some(std::time::Duration::from_millis(REQUEST_TIMEOUT_MS)),
    )
    .map_err(|e| node_error(base, e))?;
    let status_url = format!("{base}/v1/status");
    let response = client
        .get(&status_url)
        .send()
        .await
        .map_err(|e| node_error(&status_url, e))?;
    if !response.status().is_success() {
        return Err(refusal(&status_url, response).await);
    }
    let status: Status = response
        .json()
        .await
        .map_err(|e| node_error(&status_url, e))?;
    let url = format!("{base}/v1/auditor/page-login");
    let response = custody_node::client::signed(
        client.post(&url),
        key,
        &status.chain_id,
        "POST",
        &url,
        custody_node::client::now_ms(),
    )
    .send()
    .await
    .map_err(|e| node_error(&url, e))?;
    if !response.status().is_success() {
        return Err(refusal(&url, response).await);
    }
    response.json().await.map_err(|e| node_error(&url, e))
}

/// Asks the node for a one-time link to its auditor pages and prints it.
pub fn login(args: LoginArgs, out: &mut dyn Write) -> Result<(), AuditError> {
    let key = crate::keyfile::read_signing_key(&args.key, args.passphrase_env.as_deref())
        .map_err(AuditError::BadArgument)?;
    let base = args.node.trim_end_matches('/').to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| node_error(&base, e))?;
    let answer = runtime.block_on(ask(&base, &key))?;
    let printed = Printed {
        url: format!("{base}{}", answer.link),
        expires_ms: answer.expires_ms,
    };
    if args.json {
        serde_json::to_string(&printed)
            .map_err(|e| node_error(&base, e))
            .and_then(|text| writeln!(out, "{text}").map_err(|e| node_error(&base, e)))
    } else {
        let minutes = answer
            .expires_ms
            .saturating_sub(custody_node::client::now_ms())
            .div_ceil(60_000);
        writeln!(
            out,
            "Open this link in a browser within {minutes} min (it works once):\n{}",
            printed.url
        )
        .map_err(|e| node_error(&base, e))
    }
}
