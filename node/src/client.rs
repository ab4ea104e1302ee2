//! A client of a node's HTTP API, used by the `custody` CLI, the
//! multi-node tests and the harness (demo, cluster tools, load bench).
//!
//! The one place an HTTP client to a node is built ([`http_client`]) and a
//! request to a node is signed ([`auth_header`], [`signed`]); the CLI's
//! own request code (documents, audit downloads, the auditor's login)
//! comes here for both, and reads refusals with [`refusal_parts`].

use std::sync::Arc;
use std::time::Duration;

use custody_ledger::tx::SignedTransaction;
use custody_ledger::types::TxId;

use crate::api_types::{
    BatchResponse, BlockResponse, StatusResponse, SubmitResponse, TransactionResponse,
};

/// Why a request to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the node at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The node answered with an error: `code` is stable, `message` says why.
    #[error("the node refused the request ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the node's answer could not be read: {0}")]
    BadAnswer(String),
}

impl ClientError {
    /// The node's error code, when the node answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Reading the node's status (for its chain id and clock) takes at most this.
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Client {
    base_url: String,
    http: reqwest::Client,
    /// Who signs the reads that need a caller (`x-custody-auth`).
    signer: Option<Arc<ed25519_dalek::SigningKey>>,
    /// The node's chain id and how far its clock is from this machine's
    /// (milliseconds, node minus local), fetched once for signing.
    node_clock: Arc<tokio::sync::OnceCell<(String, i64)>>,
}

impl Client {
    /// `base_url` like `http://127.0.0.1:26680`.
    pub fn new(base_url: impl Into<String>) -> Client {
        let http = http_client(None, Some(Duration::from_secs(120)))
            .unwrap_or_else(|_| reqwest::Client::new());
        Client::with_http(base_url, http)
    }

    /// A client over `http` (built by [`http_client`] with the caller's
    /// timeouts: the CLI's document commands stream large bodies and set
    /// no overall timeout).
    pub fn with_http(base_url: impl Into<String>, http: reqwest::Client) -> Client {
        Client {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            http,
            signer: None,
            node_clock: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The HTTP client underneath, for requests this type has no method
    /// for (streamed uploads and downloads).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The node's chain id, read once from its status.
    pub async fn chain_id(&self) -> Result<&str, ClientError> {
        Ok(self.node_clock().await?.0.as_str())
    }

    /// `request` (`method url`) with the caller's `x-custody-auth` header,
    /// signed by the node's clock, when this client signs; unchanged when
    /// it does not.
    pub async fn authorised(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        Ok(match self.auth_header(method, url).await? {
            Some(auth) => request.header(custody_ledger::caller::API_AUTH_HEADER, auth),
            None => request,
        })
    }

    /// The node's chain id and how far its clock is from this machine's,
    /// read once from its status.
    async fn node_clock(&self) -> Result<&(String, i64), ClientError> {
        self.node_clock
            .get_or_try_init(|| async {
                let url = format!("{}/v1/status", self.base_url);
                let response = self.http.get(&url).timeout(STATUS_TIMEOUT).send().await;
                let status: StatusResponse = self.read(&url, response).await?;
                let offset_ms = if status.time_ms == 0 {
                    0
                } else {
                    status.time_ms as i64 - now_ms() as i64
                };
                Ok::<(String, i64), ClientError>((status.chain_id, offset_ms))
            })
            .await
    }

    /// This client, signing every read with `key`: a member's, a
    /// department node's, or an auditor's named in the node's
    /// `api.auditor_keys`. Routes that answer records refuse unsigned reads.
    pub fn signed_by(mut self, key: ed25519_dalek::SigningKey) -> Client {
        self.signer = Some(Arc::new(key));
        self
    }

    /// The `x-custody-auth` header for `GET path`, if this client signs.
    async fn auth_header(&self, method: &str, url: &str) -> Result<Option<String>, ClientError> {
        let Some(key) = &self.signer else {
            return Ok(None);
        };
        // A machine client signs by the node's clock: a node whose clock
        // is off (and that says so in its status) still answers it.
        let (chain_id, offset_ms) = self.node_clock().await?;
        Ok(Some(auth_header(
            key,
            chain_id,
            method,
            url,
            now_ms().saturating_add_signed(*offset_ms),
        )))
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ClientError> {
        let response = response.map_err(|error| ClientError::Unreachable {
            url: url.to_string(),
            message: error.to_string(),
        })?;
        let bytes = body_of(response).await?;
        serde_json::from_slice(&bytes).map_err(|error| ClientError::BadAnswer(error.to_string()))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (url, response) = self.send_get(path, None).await?;
        self.read(&url, Ok(response)).await
    }

    /// Submits canonical transaction bytes. With `wait`, the node answers
    /// once the transaction is committed (or the wait runs out).
    pub async fn submit_bytes(
        &self,
        bytes: Vec<u8>,
        wait: Option<Duration>,
    ) -> Result<SubmitResponse, ClientError> {
        self.post_transaction(bytes, "application/octet-stream", wait)
            .await
    }

    pub async fn submit(
        &self,
        transaction: &SignedTransaction,
        wait: Option<Duration>,
    ) -> Result<SubmitResponse, ClientError> {
        self.submit_bytes(transaction.to_bytes(), wait).await
    }

    /// Submits a transaction as JSON (the human-readable form).
    pub async fn submit_json(
        &self,
        json: Vec<u8>,
        wait: Option<Duration>,
    ) -> Result<SubmitResponse, ClientError> {
        self.post_transaction(json, "application/json", wait).await
    }

    /// POST /v1/transactions with a body in either accepted form.
    async fn post_transaction(
        &self,
        body: Vec<u8>,
        content_type: &'static str,
        wait: Option<Duration>,
    ) -> Result<SubmitResponse, ClientError> {
        let url = match wait {
            Some(wait) => format!(
                "{}/v1/transactions?wait=true&timeout_ms={}",
                self.base_url,
                wait.as_millis()
            ),
            None => format!("{}/v1/transactions", self.base_url),
        };
        let response = self
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await;
        self.read(&url, response).await
    }

    /// Submits many transactions in one request (`/v1/transactions/batch`);
    /// each gets its own result, in order.
    pub async fn submit_batch(
        &self,
        transactions: &[SignedTransaction],
    ) -> Result<BatchResponse, ClientError> {
        let encoded: Vec<Vec<u8>> = transactions.iter().map(|tx| tx.to_bytes()).collect();
        let body = postcard::to_allocvec(&encoded)
            .map_err(|error| ClientError::BadAnswer(error.to_string()))?;
        let url = format!("{}/v1/transactions/batch", self.base_url);
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await;
        self.read(&url, response).await
    }

    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        self.get("/v1/status").await
    }

    pub async fn block(&self, height: u64) -> Result<BlockResponse, ClientError> {
        self.get(&format!("/v1/blocks/{height}")).await
    }

    /// Block `height` as its canonical bytes (`Accept:
    /// application/octet-stream`), decoded here.
    pub async fn raw_block(
        &self,
        height: u64,
    ) -> Result<custody_ledger::block::Block, ClientError> {
        let (url, response) = self
            .send_get(
                &format!("/v1/blocks/{height}"),
                Some("application/octet-stream"),
            )
            .await?;
        let bytes = body_of(response).await?;
        custody_ledger::block::Block::from_bytes(&bytes)
            .map_err(|error| ClientError::BadAnswer(format!("{url}: {error}")))
    }

    /// Sends a GET for `path`, with an `Accept` header if given; answers
    /// the full URL and the response, whatever its status.
    async fn send_get(
        &self,
        path: &str,
        accept: Option<&str>,
    ) -> Result<(String, reqwest::Response), ClientError> {
        let url = format!("{}{}", self.base_url, path);
        let mut request = self.http.get(&url);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        if let Some(auth) = self.auth_header("GET", &url).await? {
            request = request.header(custody_ledger::caller::API_AUTH_HEADER, auth);
        }
        match request.send().await {
            Ok(response) => Ok((url, response)),
            Err(error) => Err(ClientError::Unreachable {
                url,
                message: error.to_string(),
            }),
        }
    }

    pub async fn transaction(&self, id: &TxId) -> Result<TransactionResponse, ClientError> {
        self.get(&format!("/v1/transactions/{}", id.to_hex())).await
    }

    /// Any JSON endpoint, e.g. `/v1/members/<key>`.
    /// Governance proposals: `status` is `pending`, `executed` or `all`.
    pub async fn proposals(
        &self,
        status: &str,
    ) -> Result<Vec<crate::api_types::ProposalResponse>, ClientError> {
        self.get(&format!("/v1/proposals?status={status}")).await
    }

    /// One governance proposal.
    pub async fn proposal(
        &self,
        id: &custody_ledger::types::ProposalId,
    ) -> Result<crate::api_types::ProposalResponse, ClientError> {
        self.get(&format!("/v1/proposals/{}", hex::encode(id.0)))
            .await
    }

    /// The chain parameters in force.
    pub async fn parameters(&self) -> Result<custody_ledger::records::Parameters, ClientError> {
        self.get("/v1/parameters").await
    }

    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.get(path).await
    }

    /// The raw `/metrics` text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let (_, response) = self.send_get("/metrics", None).await?;
        let bytes = body_of(response).await?;
        String::from_utf8(bytes)
            .map_err(|error| ClientError::BadAnswer(format!("/metrics is not text: {error}")))
    }
}

/// The path and query of `url` exactly as the HTTP client will send them
/// (after its normalisation), which is what a signed request must cover.
pub fn path_and_query_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// An HTTP client for a node's API: the one place one is built, for this
/// client, the CLI's commands and the harness alike, each giving only its
/// timeouts. `connect_timeout` bounds reaching the node; `timeout` bounds
/// a whole request (none for uploads and downloads of large documents,
/// which take as long as they take).
pub fn http_client(
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder().pool_max_idle_per_host(16);
    if let Some(connect_timeout) = connect_timeout {
        builder = builder.connect_timeout(connect_timeout);
    }
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    builder.build()
}

/// The `x-custody-auth` header value for `method url`, signed by `key` for
/// chain `chain_id` at `at_ms`: the one place a request to a node is
/// signed (this client, the CLI's commands and the harness all come here).
pub fn auth_header(
    key: &ed25519_dalek::SigningKey,
    chain_id: &str,
    method: &str,
    url: &str,
    at_ms: u64,
) -> String {
    custody_ledger::caller::api_auth_header(key, chain_id, method, &path_and_query_of(url), at_ms)
}

/// `request` (`method url`) with its `x-custody-auth` header: see
/// [`auth_header`].
pub fn signed(
    request: reqwest::RequestBuilder,
    key: &ed25519_dalek::SigningKey,
    chain_id: &str,
    method: &str,
    url: &str,
    at_ms: u64,
) -> reqwest::RequestBuilder {
    request.header(
        custody_ledger::caller::API_AUTH_HEADER,
        auth_header(key, chain_id, method, url, at_ms),
    )
}

/// This machine's clock, milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// The body of a successful answer, or the node's refusal (`{"error":
/// {"code", "message"}}`) as [`ClientError::Refused`].
async fn body_of(response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|error| ClientError::BadAnswer(error.to_string()))?;
    if status.is_success() {
        return Ok(bytes.to_vec());
    }
    let (code, message) = refusal_parts(&bytes);
    Err(ClientError::Refused {
        status: status.as_u16(),
        code,
        message: message.unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
    })
}

/// The stable code and the message of an API error body (`{"error":
/// {"code", "message"}}`); `unknown` and no message when the body is not one.
pub fn refusal_parts(body: &[u8]) -> (String, Option<String>) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = value["error"]["code"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    let message = value["error"]["message"].as_str().map(str::to_string);
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_body_gives_its_code_and_message() {
        let body = br#"{"error":{"code":"wrong_nonce","message":"expected nonce 4"}}"#;
        assert_eq!(
            refusal_parts(body),
            (
                "wrong_nonce".to_string(),
                Some("expected nonce 4".to_string())
            )
        );
    }

    #[test]
    fn a_body_that_is_not_a_refusal_gives_code_unknown() {
        assert_eq!(
            refusal_parts(b"<html>bad gateway</html>"),
            ("unknown".to_string(), None)
        );
    }

    #[test]
    fn an_http_client_is_built_with_and_without_timeouts() {
        assert!(http_client(None, None).is_ok());
        assert!(http_client(
            Some(Duration::from_millis(100)),
            Some(Duration::from_secs(1))
        )
        .is_ok());
    }

    #[test]
    fn a_signed_request_carries_the_auth_header_of_its_path_and_query() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let url = "http://127.0.0.1:26680/v1/documents?cursor=ab";
        let request = signed(
            reqwest::Client::new().get(url),
            &key,
            "custody-testnet",
            "GET",
            url,
            1_000,
        )
        .build()
        .unwrap();
        let expected = custody_ledger::caller::api_auth_header(
            &key,
            "custody-testnet",
            "GET",
            "/v1/documents?cursor=ab",
            1_000,
        );
        assert_eq!(
            request
                .headers()
                .get(custody_ledger::caller::API_AUTH_HEADER)
                .and_then(|value| value.to_str().ok()),
            Some(expected.as_str())
        );
    }

    #[test]
    fn the_base_url_loses_its_trailing_slash() {
        assert_eq!(
            Client::new("http://127.0.0.1:26680/").base_url(),
            "http://127.0.0.1:26680"
        );
    }
}
