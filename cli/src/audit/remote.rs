//! `custody chain export --node URL`: the same export, fetched block by
//! block from a node's HTTP API (`GET /v1/status`, `GET /v1/blocks/{h}`).
//! Nothing the node says is trusted: the export is verified like any other.

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

async fn get<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, AuditError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| node_error(url, e))?;
    if !response.status().is_success() {
        return Err(node_error(url, format!("HTTP {}", response.status())));
    }
    response.json::<T>().await.map_err(|e| node_error(url, e))
}

/// Export the chain a node serves, up to its height when asked, to `to`.
pub(crate) fn export_from_node(
    node: &str,
    genesis: &Genesis,
    to: &Path,
) -> Result<Trailer, AuditError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| node_error(node, e))?;
    runtime.block_on(fetch(node.trim_end_matches('/'), genesis, to))
}

async fn fetch(base: &str, genesis: &Genesis, to: &Path) -> Result<Trailer, AuditError> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(REQUEST_TIMEOUT_MS))
        .build()
        .map_err(|e| node_error(base, e))?;
    let status: Status = get(&client, &format!("{base}/v1/status")).await?;
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
        let response: BlockResponse = get(&client, &url).await?;
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
