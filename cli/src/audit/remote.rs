//! `custody chain export --node URL`: the same export, fetched block by
//! block from a node's HTTP API (`GET /v1/status`, `GET /v1/blocks/{h}`).
//! Nothing the node says is trusted: the export is verified like any other.
//! The node serves blocks only to a signed caller: an auditor named in its
//! `api.auditor_keys`, a member, or a department's node.

use std::io::BufWriter;
use std::path::Path;

use custody_ledger::block::Block;
use custody_ledger::certificate::CommitCertificate;
use custody_ledger::export::{ExportWriter, Trailer};
use custody_ledger::Genesis;
use serde::Deserialize;

use super::AuditError;

/// How long one request may take.
const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// The fields of `GET /v1/status` this needs.
#[derive(Deserialize)]
struct Status {
    chain_id: String,
    genesis_hash: String,
    height: u64,
}

/// The fields of `GET /v1/blocks/{height}` this needs.
#[derive(Deserialize)]
struct BlockResponse {
    block: Block,
    certificate: Option<CommitCertificate>,
}

fn node_error(url: &str, reason: impl std::fmt::Display) -> AuditError {
    AuditError::Node {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// `--key` and `--passphrase-env` of the commands that read records from a
/// node (`chain export --node`, `audit evidence --node`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ReaderKeyArgs {
    /// With `--node`: the key that signs the reads, an auditor's named in
    /// the node's `api.auditor_keys` or a member's.
    #[arg(
        long,
        value_name = "FILE",
        env = "CUSTODY_AUDITOR_KEY",
        requires = "node"
    )]
    pub key: Option<std::path::PathBuf>,
    /// Environment variable holding `--key`'s passphrase, if it is sealed.
    #[arg(long, value_name = "VAR", requires = "key")]
    pub passphrase_env: Option<String>,
}

impl ReaderKeyArgs {
    /// The signing key, when `--key` is given.
    pub fn signing_key(&self) -> Result<Option<ed25519_dalek::SigningKey>, AuditError> {
        self.key
            .as_ref()
            .map(|path| {
                crate::keyfile::read_signing_key(path, self.passphrase_env.as_deref())
                    .map_err(AuditError::BadArgument)
            })
            .transpose()
    }
}

/// Who signs the reads of records, on which chain.
pub(crate) struct Signer<'a> {
    pub key: &'a ed25519_dalek::SigningKey,
    pub chain_id: String,
}

/// GETs `url` as JSON, signed (`x-custody-auth`) when a signer is given.
pub(crate) async fn get<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    signer: Option<&Signer<'_>>,
) -> Result<T, AuditError> {
    let mut request = client.get(url);
    if let Some(signer) = signer {
        request = custody_node::client::signed(
            request,
            signer.key,
            &signer.chain_id,
            "GET",
            url,
            custody_node::client::now_ms(),
        );
    }
    let response = request.send().await.map_err(|e| node_error(url, e))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let (code, message) = custody_node::client::refusal_parts(&body);
        let hint = if status.as_u16() == 401 {
            " (give --key: an auditor key named in the node's api.auditor_keys, or a member key)"
        } else {
            ""
        };
        return Err(node_error(
            url,
            format!(
                "HTTP {status} {code}: {}{hint}",
                message.unwrap_or_default()
            ),
        ));
    }
    response.json::<T>().await.map_err(|e| node_error(url, e))
}

/// Export the chain a node serves, up to its height when asked, to `to`.
/// Block reads are signed by `key` when given.
pub(crate) fn export_from_node(
    node: &str,
    genesis: &Genesis,
    to: &Path,
    key: Option<&ed25519_dalek::SigningKey>,
) -> Result<Trailer, AuditError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| node_error(node, e))?;
    runtime.block_on(fetch(node.trim_end_matches('/'), genesis, to, key))
}

async fn fetch(
    base: &str,
    genesis: &Genesis,
    to: &Path,
    key: Option<&ed25519_dalek::SigningKey>,
) -> Result<Trailer, AuditError> {
    let client = custody_node::client::http_client(
        None,
        Some(std::time::Duration::from_millis(REQUEST_TIMEOUT_MS)),
    )
    .map_err(|e| node_error(base, e))?;
    let status: Status = get(&client, &format!("{base}/v1/status"), None).await?;
    let signer = key.map(|key| Signer {
        key,
        chain_id: status.chain_id.clone(),
    });
    if status.genesis_hash != genesis.hash().to_hex() {
        return Err(node_error(
            base,
            format!(
                "the node runs genesis {}, the given genesis is {}",
                status.genesis_hash,
                genesis.hash()
            ),
        ));
    }
    let write = |e: std::io::Error| AuditError::Write {
        path: to.display().to_string(),
        reason: e.to_string(),
    };
    let temporary = to.with_extension("partial");
    let file = std::fs::File::create(&temporary).map_err(write)?;
    let mut writer = ExportWriter::new(BufWriter::new(&file), genesis)?;
    for height in 1..=status.height {
        let url = format!("{base}/v1/blocks/{height}");
        let response: BlockResponse = get(&client, &url, signer.as_ref()).await?;
        let certificate = response
            .certificate
            .ok_or_else(|| node_error(&url, "the node has no certificate for this block"))?;
        writer.push(&response.block.to_bytes(), &certificate.to_bytes())?;
    }
    let (trailer, _) = writer.finish()?;
    file.sync_all().map_err(write)?;
    std::fs::rename(&temporary, to).map_err(write)?;
    Ok(trailer)
}
