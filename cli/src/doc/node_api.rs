//! The node's HTTP API as the clerk's commands use it: JSON reads, signed
//! transactions waited on until committed, streaming blob upload and the
//! signed ciphertext download.

use std::path::Path;
use std::time::Duration;

use custody_ledger::records::{Department, Document, DocumentEvent, Member};
use custody_ledger::tx::{SignedTransaction, TxBody};
use custody_ledger::types::{DepartmentId, DocumentId, Nonce};
use custody_node::api_documents::{BlobStatus, SignedReadRequest};
use custody_node::api_types::{Page, StatusResponse, SubmitResponse};
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt;

use super::DocError;

/// Bytes read from the envelope per upload chunk.
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;
/// Response chunks queued between the socket and the decrypting thread.
pub const DOWNLOAD_CHUNKS_QUEUED_MAX: usize = 8;
/// Connecting to the node must not take longer than this.
const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Times a transaction on a document is rebuilt after the node asked to
/// refresh and retry.
pub const TRANSIENT_RETRIES_MAX: u32 = 5;
/// Pause before such a retry.
const TRANSIENT_RETRY_PAUSE_MS: u64 = 200;
/// Short requests (reads, submits without waiting) time out after this.
const REQUEST_TIMEOUT_MS: u64 = 30_000;

pub struct NodeApi {
    /// The node client every caller of a node shares: its HTTP client,
    /// the signer of reads (`x-custody-auth`, the clerk's member key) and
    /// the node's chain id and clock, fetched once.
    client: custody_node::client::Client,
    /// The last member read, and the nonce its next transaction carries
    /// (the node's `next_nonce`, then counted here per admitted
    /// transaction), so that one command reads its member once.
    member: std::sync::Mutex<Option<(Member, u64)>>,
    /// Times a transaction on a document is rebuilt after the node asked
    /// to refresh and retry (at most [`TRANSIENT_RETRIES_MAX`]).
    transient_retries_max: u32,
}

/// A node client's failure as the document commands report it.
fn doc_error(error: custody_node::client::ClientError) -> DocError {
    match error {
        custody_node::client::ClientError::Refused { code, message, .. } => {
            DocError::Refused { code, message }
        }
        other => DocError::Node(other.to_string()),
    }
}

fn percent_encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl NodeApi {
    pub fn new(base: &str) -> Result<NodeApi, DocError> {
        // No overall timeout: uploads and downloads of large documents take
        // as long as they take; short calls set their own.
        let http = custody_node::client::http_client(
            Some(Duration::from_millis(CONNECT_TIMEOUT_MS)),
            None,
        )
        .map_err(|error| DocError::Node(format!("cannot build an HTTP client: {error}")))?;
        Ok(NodeApi {
            client: custody_node::client::Client::with_http(base, http),
            member: std::sync::Mutex::new(None),
            transient_retries_max: TRANSIENT_RETRIES_MAX,
        })
    }

    /// Rebuilds a refused transaction on a document at most `count` times
    /// (capped at [`TRANSIENT_RETRIES_MAX`]; 0: never, the refusal is the
    /// answer).
    pub fn with_transient_retries(mut self, count: u32) -> NodeApi {
        self.transient_retries_max = count.min(TRANSIENT_RETRIES_MAX);
        self
    }

    fn cached_member(&self) -> std::sync::MutexGuard<'_, Option<(Member, u64)>> {
        match self.member.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The node's chain id, read once.
    pub async fn chain_id(&self) -> Result<&str, DocError> {
        self.client.chain_id().await.map_err(doc_error)
    }

    /// Signs every read of records with `key` (the node answers records
    /// only to a member, a department's node or a configured auditor).
    pub fn signed_by(mut self, key: ed25519_dalek::SigningKey) -> NodeApi {
        self.client = self.client.signed_by(key);
        self
    }

    /// `request` with the caller's signature over `method path`, when this
    /// client has a key.
    async fn authorised(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, DocError> {
        self.client
            .authorised(request, method, &self.url(path))
            .await
            .map_err(doc_error)
    }

    /// The node's API address, as given (without a trailing `/`).
    pub fn base(&self) -> &str {
        self.client.base_url()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.client.base_url(), path)
    }

    async fn answer(
        &self,
        url: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, DocError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let (code, message) = custody_node::client::refusal_parts(&bytes);
        Err(DocError::Refused {
            code,
            message: message.unwrap_or_else(|| {
                format!("{status} from {url}: {}", String::from_utf8_lossy(&bytes))
            }),
        })
    }

    fn unreachable(&self, url: &str, error: reqwest::Error) -> DocError {
        DocError::Node(format!("cannot reach the node at {url}: {error}"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, DocError> {
        let url = self.url(path);
        let request = self
            .client
            .http()
            .get(&url)
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS));
        let response = self
            .authorised(request, "GET", path)
            .await?
            .send()
            .await
            .map_err(|error| self.unreachable(&url, error))?;
        let response = self.answer(&url, response).await?;
        response.json().await.map_err(|error| {
            DocError::Node(format!(
                "the node's answer from {url} could not be read: {error}"
            ))
        })
    }

    pub async fn status(&self) -> Result<StatusResponse, DocError> {
        self.get("/v1/status").await
    }

    /// The member record of `key` and the nonce its next transaction must
    /// carry, as the node's mempool counts it (waiting transactions
    /// included); read from the node once per command.
    pub async fn member(
        &self,
        key: &custody_ledger::types::PublicKey,
    ) -> Result<(Member, u64), DocError> {
        if let Some((member, next)) = self.cached_member().as_ref() {
            if member.key == *key {
                return Ok((member.clone(), *next));
            }
        }
        let value: serde_json::Value =
            self.get(&format!("/v1/members/{key}"))
                .await
                .map_err(|error| match error {
                    DocError::Refused { code, .. } if code == "not_found" => {
                        DocError::NotEnrolled(key.to_hex())
                    }
                    other => other,
                })?;
        let nonce = value["nonce"].as_u64().unwrap_or(0);
        // A node older than `next_nonce` answers the committed nonce only.
        let next = value["next_nonce"]
            .as_u64()
            .unwrap_or(nonce.saturating_add(1));
        let member: Member = serde_json::from_value(value).map_err(|error| {
            DocError::Node(format!(
                "the node's member record could not be read: {error}"
            ))
        })?;
        *self.cached_member() = Some((member.clone(), next));
        Ok((member, next))
    }

    /// The member record of `key` as the chain has it (revoked members
    /// included), or `None` when no member holds the key (a node's own
    /// attestation). Leaves the signer's cached record alone.
    pub async fn member_record(
        &self,
        key: &custody_ledger::types::PublicKey,
    ) -> Result<Option<Member>, DocError> {
        let answer: Result<serde_json::Value, DocError> =
            self.get(&format!("/v1/members/{key}")).await;
        match answer {
            Ok(value) => serde_json::from_value(value).map(Some).map_err(|error| {
                DocError::Node(format!(
                    "the node's member record could not be read: {error}"
                ))
            }),
            Err(DocError::Refused { code, .. }) if code == "not_found" => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Forgets the member read, so that the next transaction asks the node
    /// for its nonce again.
    fn forget_member(&self) {
        *self.cached_member() = None;
    }

    pub async fn department(&self, id: &DepartmentId) -> Result<Department, DocError> {
        self.get(&format!("/v1/departments/{id}"))
            .await
            .map_err(|error| match error {
                DocError::Refused { code, .. } if code == "not_found" => {
                    DocError::UnknownDepartment(id.to_string())
                }
                other => other,
            })
    }

    pub async fn document(&self, id: &DocumentId) -> Result<Document, DocError> {
        self.get(&format!("/v1/documents/{id}"))
            .await
            .map_err(|error| match error {
                DocError::Refused { code, .. } if code == "not_found" => {
                    DocError::UnknownDocument(id.to_string())
                }
                other => other,
            })
    }

    pub async fn history(
        &self,
        id: &DocumentId,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<DocumentEvent>, DocError> {
        let mut path = format!("/v1/documents/{id}/history?");
        if let Some(cursor) = cursor {
            path.push_str(&format!("cursor={}&", percent_encode_query(cursor)));
        }
        if let Some(limit) = limit {
            path.push_str(&format!("limit={limit}"));
        }
        self.get(&path).await
    }

    pub async fn list(
        &self,
        filters: &[(&str, Option<String>)],
    ) -> Result<Page<Document>, DocError> {
        let mut path = "/v1/documents?".to_string();
        for (name, value) in filters {
            if let Some(value) = value {
                path.push_str(&format!("{name}={}&", percent_encode_query(value)));
            }
        }
        self.get(&path).await
    }

    /// Signs and submits a transaction on `document_id`, built by `build`
    /// from the document as the node has it now, and waits until it is
    /// committed (see [`NodeApi::submit_on`]).
    pub async fn submit_on_document(
        &self,
        key: &ed25519_dalek::SigningKey,
        document_id: &DocumentId,
        wait: Duration,
        build: impl Fn(&Document) -> TxBody,
    ) -> Result<(Document, SubmitResponse), DocError> {
        let document = self.document(document_id).await?;
        self.submit_on(key, document, wait, build).await
    }

    /// Signs and submits a transaction built by `build` from `document` (as
    /// just read from the node), and waits until it is committed. The node
    /// answers a read and a commit only once its mempool agrees with its
    /// store, so a command that follows another builds on what admission
    /// checks. Another member's transaction on the same document landing in
    /// between still makes the node refuse with "refresh and retry"
    /// (`stale_previous_event`, `wrong_nonce`): then the document is read
    /// again and the transaction rebuilt, at most
    /// [`NodeApi::with_transient_retries`] times, each told on stderr.
    pub async fn submit_on(
        &self,
        key: &ed25519_dalek::SigningKey,
        document: Document,
        wait: Duration,
        build: impl Fn(&Document) -> TxBody,
    ) -> Result<(Document, SubmitResponse), DocError> {
        let mut attempt = 0;
        let mut document = document;
        loop {
            match self.submit_and_wait(key, build(&document), wait).await {
                Ok(answer) => return Ok((document, answer)),
                Err(DocError::TransactionRefused { code, message, .. })
                    if (code == "stale_previous_event" || code == "wrong_nonce")
                        && attempt < self.transient_retries_max =>
                {
                    attempt += 1;
                    eprintln!(
                        "retry {attempt} of {}: the node asked to refresh and retry ({code}: {message})",
                        self.transient_retries_max
                    );
                    tokio::time::sleep(Duration::from_millis(TRANSIENT_RETRY_PAUSE_MS)).await;
                    document = self.document(&document.id).await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Signs `body` as `key` with the next nonce and waits until it is
    /// committed (or `wait` runs out).
    pub async fn submit_and_wait(
        &self,
        key: &ed25519_dalek::SigningKey,
        body: TxBody,
        wait: Duration,
    ) -> Result<SubmitResponse, DocError> {
        let chain_id = self.chain_id().await?.to_string();
        let public = custody_ledger::encoding::public_key_of(key);
        let (_, next) = self.member(&public).await?;
        let kind = body.kind();
        let tx = SignedTransaction::sign(body, key, Nonce(next), &chain_id);
        let url = self.url(&format!(
            "/v1/transactions?wait=true&timeout_ms={}",
            wait.as_millis()
        ));
        let response = self
            .client
            .http()
            .post(&url)
            .header("content-type", "application/octet-stream")
            .body(tx.to_bytes())
            .timeout(wait + Duration::from_millis(REQUEST_TIMEOUT_MS))
            .send()
            .await
            .map_err(|error| self.unreachable(&url, error))?;
        let response = self.answer(&url, response).await.map_err(|error| {
            // Whatever the node refused, ask it for the nonce again.
            self.forget_member();
            match error {
                DocError::Refused { code, message } => DocError::TransactionRefused {
                    kind,
                    code,
                    message,
                },
                other => other,
            }
        })?;
        // Admitted: the nonce is taken, the next transaction carries the one after.
        if let Some((member, next)) = self.cached_member().as_mut() {
            if member.key == public {
                *next = next.saturating_add(1);
            }
        }
        let answer: SubmitResponse = response.json().await.map_err(|error| {
            DocError::Node(format!("the node's answer could not be read: {error}"))
        })?;
        if answer.inclusion.is_none() {
            return Err(DocError::NotCommitted {
                kind,
                tx: answer.tx_id.to_hex(),
                seconds: wait.as_secs(),
            });
        }
        Ok(answer)
    }

    /// Streams the envelope at `path` to the node's blob store.
    /// The upload is signed by `clerk`: the node stores blobs only for an
    /// active clerk of its chain.
    pub async fn upload(
        &self,
        path: &Path,
        sha256: &[u8; 32],
        size_bytes: u64,
        clerk: &ed25519_dalek::SigningKey,
        share: Option<&crate::envelope::ShredShare>,
        bar: ProgressBar,
    ) -> Result<BlobStatus, DocError> {
        let chain_id = self.chain_id().await?.to_string();
        let signed = custody_ledger::reads::SignedBlobUpload::sign(
            custody_ledger::reads::BlobUpload {
                format_version: custody_ledger::reads::BLOB_UPLOAD_VERSION,
                chain_id: chain_id.to_string(),
                member: custody_ledger::types::PublicKey(clerk.verifying_key().to_bytes()),
                sha256: custody_ledger::types::Hash32(*sha256),
                size_bytes,
                time_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|elapsed| elapsed.as_millis() as u64)
                    .unwrap_or(0),
            },
            clerk,
        );
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| DocError::Io {
                action: "open",
                path: path.to_owned(),
                source,
            })?;
        let stream = futures::stream::unfold((file, bar), |(mut file, bar)| async move {
            let mut buffer = vec![0u8; UPLOAD_CHUNK_BYTES];
            match file.read(&mut buffer).await {
                Ok(0) => {
                    bar.finish_and_clear();
                    None
                }
                Ok(read) => {
                    buffer.truncate(read);
                    bar.inc(read as u64);
                    Some((Ok::<Vec<u8>, std::io::Error>(buffer), (file, bar)))
                }
                Err(error) => Some((Err(error), (file, bar))),
            }
        });
        let url = self.url(&format!(
            "/v1/blobs/{}?size_bytes={size_bytes}",
            hex::encode(sha256)
        ));
        let mut request = self.client.http().put(&url);
        // The share travels beside the envelope, never inside it: a copy of
        // the envelope does not carry it.
        if let Some(share) = share {
            request = request.header(
                custody_node::api_documents::SHRED_SHARE_HEADER,
                hex::encode(share.as_bytes()),
            );
        }
        let response = request
            .header("content-type", "application/octet-stream")
            .header("content-length", size_bytes.to_string())
            .header("x-custody-upload", signed.to_header())
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|error| self.unreachable(&url, error))?;
        let response = self.answer(&url, response).await?;
        response.json().await.map_err(|error| {
            DocError::Node(format!("the node's answer could not be read: {error}"))
        })
    }

    /// Asks the node to fetch the document's blob from other nodes.
    pub async fn fetch(&self, document: &DocumentId) -> Result<BlobStatus, DocError> {
        let path = format!(
            "/v1/blobs/fetch?document={}",
            percent_encode_query(document.as_str())
        );
        let url = self.url(&path);
        let response = self
            .authorised(self.client.http().post(&url), "POST", &path)
            .await?
            .send()
            .await
            .map_err(|error| self.unreachable(&url, error))?;
        let response = self.answer(&url, response).await?;
        response.json().await.map_err(|error| {
            DocError::Node(format!("the node's answer could not be read: {error}"))
        })
    }

    /// Sends a signed read request and passes the ciphertext, chunk by
    /// chunk, into `sink` (a bounded queue to the decrypting thread); the
    /// shred share the node sends beside a version 2 envelope goes to
    /// `share_to` before the first chunk.
    pub async fn download(
        &self,
        request: &SignedReadRequest,
        sink: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
        share_to: Option<tokio::sync::oneshot::Sender<Option<crate::envelope::ShredShare>>>,
        bar: ProgressBar,
    ) -> Result<(), DocError> {
        let url = self.url("/v1/reads");
        let response = self
            .client
            .http()
            .post(&url)
            .json(request)
            .send()
            .await
            .map_err(|error| self.unreachable(&url, error))?;
        let response = self.answer(&url, response).await?;
        if let Some(share_to) = share_to {
            let share = match response
                .headers()
                .get(custody_node::api_documents::SHRED_SHARE_HEADER)
            {
                None => None,
                Some(value) => Some(
                    value
                        .to_str()
                        .ok()
                        .and_then(crate::envelope::ShredShare::from_hex)
                        .ok_or_else(|| {
                            DocError::Node(format!(
                                "the node's shred share header ({}) is not 64 hex digits",
                                custody_node::api_documents::SHRED_SHARE_HEADER
                            ))
                        })?,
                ),
            };
            // The decrypting thread may have stopped already; it says why.
            let _ = share_to.send(share);
        }
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let item = chunk.map(|bytes| bytes.to_vec()).map_err(|error| {
                std::io::Error::other(format!("the download was interrupted: {error}"))
            });
            let failed = item.is_err();
            if let Ok(bytes) = &item {
                bar.inc(bytes.len() as u64);
            }
            if sink.send(item).await.is_err() || failed {
                break;
            }
        }
        bar.finish_and_clear();
        Ok(())
    }
}

/// A `Read` over chunks arriving on a bounded queue, for the decrypting
/// thread.
pub struct ChannelReader {
    receiver: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    position: usize,
}

impl ChannelReader {
    pub fn new(receiver: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>) -> ChannelReader {
        ChannelReader {
            receiver,
            current: Vec::new(),
            position: 0,
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.position == self.current.len() {
            match self.receiver.blocking_recv() {
                None => return Ok(0),
                Some(Err(error)) => return Err(error),
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.position = 0;
                }
            }
        }
        let count = buffer.len().min(self.current.len() - self.position);
        buffer[..count].copy_from_slice(&self.current[self.position..self.position + count]);
        self.position += count;
        Ok(count)
    }
}
