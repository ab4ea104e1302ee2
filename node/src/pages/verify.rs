//! `/auditor/verify`: an auditor uploads a chain export (and, if they wish,
//! the genesis they trust; by default this node's) and the node verifies
//! it from that genesis with the ledger's own verifier
//! (`custody_ledger::verify::verify_export`), then says whether the
//! export's last block is the block this node holds at that height.
//!
//! The form is a plain `multipart/form-data` form: no JavaScript. The
//! upload is held in memory while it is checked, so its size is bounded by
//! `pages.verify_upload_max_bytes` (a larger one gets a 413 page) and at
//! most [`VERIFICATIONS_AT_ONCE`] uploads are verified at a time.

use std::sync::Arc;

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use custody_ledger::store::StoreError;
use custody_ledger::types::{BlockHash, Hash32, Height};
use custody_ledger::verify::{self, ExportCheck, ExportReport, VerifyFailure, VerifyOptions};
use custody_ledger::Genesis;
use maud::{html, Markup};
use tokio::sync::Semaphore;

use super::auditor::{session_of, Frame};
use super::i18n::Text;
use super::{show_time, LangQuery};
use crate::api_state::{ApiSettings, ApiState};
use crate::handles::{ChainView, LocalClock};
use crate::page_sessions::PageSessions;

/// The page's path.
pub const VERIFY_PATH: &str = "/auditor/verify";

/// Uploads verified at the same time; one more waits its turn briefly,
/// then gets a "try again" page.
pub const VERIFICATIONS_AT_ONCE: usize = 2;

static VERIFYING: Semaphore = Semaphore::const_new(VERIFICATIONS_AT_ONCE);

/// The form field of the export file.
const EXPORT_FIELD: &str = "export";
/// The form field of the optional genesis file.
const GENESIS_FIELD: &str = "genesis";
/// Largest genesis file taken, in bytes.
const GENESIS_FILE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The route. It counts the upload's bytes itself (against
/// `pages.verify_upload_max_bytes`), so the API's body limit is lifted.
pub fn routes() -> Router<ApiState> {
    let methods = get(form).post(upload).layer(DefaultBodyLimit::disable());
    // The path by name: `tests/openapi.rs` finds the page routes so
    // (`VERIFY_PATH` is the same).
    Router::new().route("/auditor/verify", methods)
}

/// What was uploaded.
#[derive(Debug, Default)]
pub struct Upload {
    pub export: Vec<u8>,
    /// Empty when no genesis file was chosen.
    pub genesis: Vec<u8>,
}

/// Why an upload could not be taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload could not be read: {0}")]
    Unreadable(String),
}

impl UploadError {
    fn of(error: MultipartError, limit: u64) -> UploadError {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            UploadError::TooLarge { limit }
        } else {
            UploadError::Unreadable(error.body_text())
        }
    }
}

/// Bytes past the limit still read (and dropped) before the 413 page is
/// sent: a browser still sending when the answer comes sees a reset
/// connection instead of the page, so an upload a little over the limit is
/// read to its end. An upload further over is cut off.
fn drain_allowance(limit: u64) -> u64 {
    limit.min(16 * 1024 * 1024)
}

/// Reads the form's files, at most `limit` bytes in all; other fields are
/// skipped.
pub async fn read_upload(mut multipart: Multipart, limit: u64) -> Result<Upload, UploadError> {
    let mut upload = Upload::default();
    let mut total: u64 = 0;
    let cut_off = limit.saturating_add(drain_allowance(limit));
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|error| UploadError::of(error, limit))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let mut into = match name.as_str() {
            EXPORT_FIELD => Some(&mut upload.export),
            GENESIS_FIELD => Some(&mut upload.genesis),
            _ => None,
        };
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|error| UploadError::of(error, limit))?
        {
            total = total.saturating_add(chunk.len() as u64);
            if total > cut_off {
                return Err(UploadError::TooLarge { limit });
            }
            if total > limit {
                // Over: read on to the end (within the allowance), keep
                // nothing more.
                continue;
            }
            if let Some(into) = into.as_deref_mut() {
                into.extend_from_slice(&chunk);
            }
        }
    }
    if total > limit {
        return Err(UploadError::TooLarge { limit });
    }
    Ok(upload)
}

/// How the export's last block stands against this node's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgainstNode {
    /// This node holds the same block at that height.
    Same,
    /// This node holds another block at that height.
    Differs,
    /// This node has not reached that height; its own height.
    Behind(Height),
    /// The export is of another chain than this node's.
    OtherChain,
    /// This node's store could not be read.
    Unread,
}

/// What the page shows of one verification.
#[derive(Debug)]
pub struct Verdict {
    pub genesis_hash: Hash32,
    /// Whether the genesis was this node's (no genesis file uploaded).
    pub node_genesis: bool,
    pub result: Result<(ExportReport, AgainstNode), VerifyFailure>,
}

/// Verifies `export` against `genesis` and compares its last block with
/// `ours(height)`: this node's height and its block hash at `height`.
pub fn check_export(
    export: &[u8],
    genesis: &Genesis,
    node_genesis_hash: Hash32,
    options: VerifyOptions,
    ours: impl FnOnce(Height) -> Result<(Height, Option<BlockHash>), StoreError>,
) -> Result<(ExportReport, AgainstNode), VerifyFailure> {
    let report = verify::verify_export(genesis, export, options)?;
    let against = if report.genesis_hash != node_genesis_hash {
        AgainstNode::OtherChain
    } else {
        match ours(report.height) {
            Ok((_, Some(hash))) if hash == report.last_block_hash => AgainstNode::Same,
            Ok((_, Some(_))) => AgainstNode::Differs,
            Ok((height, None)) => AgainstNode::Behind(height),
            Err(error) => {
                tracing::error!(%error, "store read failed comparing an uploaded export");
                AgainstNode::Unread
            }
        }
    };
    Ok((report, against))
}

/// `GET /auditor/verify`: the upload form.
pub async fn form(
    State(sessions): State<PageSessions>,
    State(clock): State<LocalClock>,
    State(settings): State<Arc<ApiSettings>>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::of(&settings, &query, &headers);
    let Some((_, session)) = session_of(&sessions, &clock, &headers) else {
        return frame.login_needed(VERIFY_PATH);
    };
    let body = html! {
        (frame.who(&session))
        p { (frame.t(Text::VerifyIntro)) }
        (upload_form(&frame))
    };
    frame.answer(StatusCode::OK, VERIFY_PATH, Text::VerifyExport, body)
}

fn upload_form(frame: &Frame) -> Markup {
    html! {
        form method="post" action=(VERIFY_PATH) enctype="multipart/form-data" {
            label for="export" { (frame.t(Text::ExportFile)) }
            input type="file" id="export" name=(EXPORT_FIELD) required;
            label for="genesis" style="margin-top:0.75rem" { (frame.t(Text::GenesisFile)) }
            input type="file" id="genesis" name=(GENESIS_FIELD) accept=".json,.toml";
            br;
            button id="verify-export" type="submit" { (frame.t(Text::VerifyButton)) }
        }
    }
}

/// `POST /auditor/verify`: verifies the uploaded export and shows the
/// result.
pub async fn upload(
    State(sessions): State<PageSessions>,
    State(clock): State<LocalClock>,
    State(settings): State<Arc<ApiSettings>>,
    State(chain): State<ChainView>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let frame = Frame::of(&settings, &query, &headers);
    let Some((_, session)) = session_of(&sessions, &clock, &headers) else {
        return frame.login_needed(VERIFY_PATH);
    };
    let limit = settings.verify_upload_max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|declared| declared > limit.saturating_add(drain_allowance(limit))) {
        return too_large(&frame, limit);
    }
    let notice = |status: StatusCode, text: Text| {
        let body = html! {
            (frame.who(&session))
            p.notice id="upload-refused" { (frame.t(text)) }
            (upload_form(&frame))
        };
        frame.answer(status, VERIFY_PATH, Text::VerifyExport, body)
    };
    let Ok(multipart) = multipart else {
        return notice(StatusCode::BAD_REQUEST, Text::UploadUnreadable);
    };
    let upload = match read_upload(multipart, limit).await {
        Ok(upload) => upload,
        Err(UploadError::TooLarge { limit }) => return too_large(&frame, limit),
        Err(UploadError::Unreadable(reason)) => {
            tracing::info!(%reason, "an uploaded export could not be read");
            return notice(StatusCode::BAD_REQUEST, Text::UploadUnreadable);
        }
    };
    if upload.export.is_empty() {
        return notice(StatusCode::BAD_REQUEST, Text::NoExportChosen);
    }
    let uploaded_genesis = if upload.genesis.is_empty() {
        None
    } else {
        let parsed = (upload.genesis.len() <= GENESIS_FILE_BYTES_MAX)
            .then(|| std::str::from_utf8(&upload.genesis).ok())
            .flatten()
            .map(Genesis::from_text);
        match parsed {
            Some(Ok(genesis)) => Some(genesis),
            _ => return notice(StatusCode::BAD_REQUEST, Text::GenesisUnreadable),
        }
    };
    let Ok(_permit) = tokio::time::timeout(std::time::Duration::from_secs(5), VERIFYING.acquire())
        .await
        .map_err(|_| ())
        .and_then(|permit| permit.map_err(|_| ()))
    else {
        return notice(StatusCode::SERVICE_UNAVAILABLE, Text::VerifyBusy);
    };
    let store = chain.store().clone();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .div_ceil(2);
    let checked = tokio::task::spawn_blocking(move || {
        let node_genesis = store.genesis()?;
        let node_genesis_hash = node_genesis.hash();
        let node_genesis_used = uploaded_genesis.is_none();
        let genesis = uploaded_genesis.unwrap_or(node_genesis);
        let options = VerifyOptions {
            threads,
            ..VerifyOptions::default()
        };
        let result = check_export(
            &upload.export,
            &genesis,
            node_genesis_hash,
            options,
            |height| {
                let head = store.latest_height()?;
                let block = store.block(height)?.map(|block| block.hash());
                Ok((head, block))
            },
        );
        Ok::<_, StoreError>(Verdict {
            genesis_hash: genesis.hash(),
            node_genesis: node_genesis_used,
            result,
        })
    })
    .await;
    let verdict = match checked {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(error)) => return frame.store_error(VERIFY_PATH, &error),
        Err(error) => {
            return frame.store_error(
                VERIFY_PATH,
                &StoreError::Sled(format!("the verification stopped: {error}")),
            )
        }
    };
    let checked_at = show_time(
        custody_ledger::types::Timestamp(clock.now_ms()),
        &frame.zone,
    );
    let body = html! {
        (frame.who(&session))
        (verdict_markup(&frame, &verdict, &checked_at))
        h2 { (frame.t(Text::VerifyAnother)) }
        (upload_form(&frame))
    };
    frame.answer(StatusCode::OK, VERIFY_PATH, Text::VerifyExport, body)
}

/// 413: the limit, and the form again.
fn too_large(frame: &Frame, limit: u64) -> Response {
    let body = html! {
        p.notice id="upload-too-large" {
            (frame.t(Text::UploadTooLarge)) ": " span id="upload-limit" { (limit) }
            " (pages.verify_upload_max_bytes)"
        }
        p { a href=(VERIFY_PATH) { (frame.t(Text::Back)) } }
    };
    let mut response = frame.answer(
        StatusCode::PAYLOAD_TOO_LARGE,
        VERIFY_PATH,
        Text::VerifyExport,
        body,
    );
    // The rest of the body may still be on the wire.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn check_text(check: ExportCheck) -> Text {
    match check {
        ExportCheck::NotAnExport => Text::CheckNotAnExport,
        ExportCheck::Genesis => Text::CheckGenesis,
        ExportCheck::Framing => Text::CheckFraming,
        ExportCheck::Chain => Text::CheckChain,
        ExportCheck::Trailer => Text::CheckTrailer,
    }
}

/// The result: verified or not, against which genesis, the counts, where
/// the chain ends and how it stands against this node's; or where and why
/// it failed.
fn verdict_markup(frame: &Frame, verdict: &Verdict, checked_at: &str) -> Markup {
    let genesis_row = html! {
        tr {
            th { (frame.t(Text::AgainstGenesis)) }
            td {
                span.mono id="genesis-hash" { (verdict.genesis_hash.to_hex()) }
                " ("
                @if verdict.node_genesis { (frame.t(Text::NodeGenesis)) } @else { (frame.t(Text::UploadedGenesis)) }
                ")"
            }
        }
    };
    html! {
        @match &verdict.result {
            Ok((report, against)) => {
                p.ok { span id="verify-result" { (frame.t(Text::ExportVerified)) } " · " (frame.t(Text::ExportVerifiedDetail)) }
                table id="verify-report" {
                    (genesis_row)
                    tr { th { (frame.t(Text::ChainId)) } td.mono { (report.chain_id) } }
                    tr { th { (frame.t(Text::Blocks)) } td id="verify-blocks" { (report.blocks) } }
                    tr { th { (frame.t(Text::Transactions)) } td { (report.transactions) } }
                    tr { th { (frame.t(Text::Certificates)) } td { (report.certificates) } }
                    tr { th { (frame.t(Text::Signatures)) } td { (report.signatures) } }
                    tr { th { (frame.t(Text::FinalHeight)) } td id="verify-height" { (report.height.0) } }
                    tr { th { (frame.t(Text::LastBlock)) } td.mono { (report.last_block_hash.to_hex()) } }
                    tr { th { (frame.t(Text::LastBlockTime)) } td { (show_time(report.last_block_time, &frame.zone)) } }
                    tr { th { (frame.t(Text::StateRoot)) } td.mono id="verify-state-root" { (report.state_digest.to_hex()) } }
                    tr { th { (frame.t(Text::ExportHash)) } td.mono { (report.export_hash.to_hex()) } }
                    tr {
                        th { (frame.t(Text::ThisNodesChain)) }
                        td id="verify-against-node" { @match against {
                            AgainstNode::Same => span.ok { (frame.t(Text::SameAsNode)) },
                            AgainstNode::Differs => span.bad { (frame.t(Text::DiffersFromNode)) },
                            AgainstNode::Behind(height) => { (frame.t(Text::NodeBehind)) " " (height.0) },
                            AgainstNode::OtherChain => (frame.t(Text::OtherChain)),
                            AgainstNode::Unread => (frame.t(Text::NodeUnread)),
                        } }
                    }
                    tr { th { (frame.t(Text::CheckedAt)) } td { (checked_at) } }
                }
            },
            Err(failure) => {
                p.bad { span id="verify-result" { (frame.t(Text::ExportFailed)) } " · " (frame.t(Text::ExportFailedDetail)) }
                @if failure.check == ExportCheck::NotAnExport {
                    p.notice id="not-an-export" { (frame.t(Text::CheckNotAnExport)) }
                }
                table id="verify-failure" {
                    (genesis_row)
                    @if let Some(height) = failure.height {
                        tr { th { (frame.t(Text::FailedAt)) } td id="failed-height" { (height.0) } }
                    }
                    tr { th { (frame.t(Text::FailedCheck)) } td id="failed-check" { (frame.t(check_text(failure.check))) } }
                    tr { th { (frame.t(Text::Reason)) } td.mono id="failed-reason" { (failure.reason) } }
                    tr { th { (frame.t(Text::CheckedAt)) } td { (checked_at) } }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::i18n::Lang;
    use axum::body::Body;
    use axum::extract::FromRequest;
    use axum::http::Request;
    use custody_ledger::export::sample;

    fn frame(lang: Lang) -> Frame {
        Frame {
            lang,
            switched: false,
            zone: jiff::tz::TimeZone::get("Asia/Shanghai").expect("bundled zone"),
        }
    }

    fn sample_parts() -> (Vec<u8>, Genesis, Vec<BlockHash>) {
        let chain = sample::chain();
        let hashes = chain.blocks.iter().map(|(block, _)| block.hash()).collect();
        (sample::export_bytes(), chain.federation.genesis, hashes)
    }

    /// `ours` for a node holding `hashes` (heights 1, 2, ...).
    fn node_holding(
        hashes: &[BlockHash],
    ) -> impl FnOnce(Height) -> Result<(Height, Option<BlockHash>), StoreError> + '_ {
        move |height| {
            let index = usize::try_from(height.0).unwrap_or(usize::MAX);
            Ok((
                Height(hashes.len() as u64),
                index.checked_sub(1).and_then(|i| hashes.get(i)).copied(),
            ))
        }
    }

    fn render(verdict: &Verdict) -> String {
        verdict_markup(&frame(Lang::En), verdict, "2026-12-06 10:00:00 CST").into_string()
    }

    #[test]
    fn a_good_export_is_shown_verified_and_the_same_as_this_node() {
        let (export, genesis, hashes) = sample_parts();
        let result = check_export(
            &export,
            &genesis,
            genesis.hash(),
            VerifyOptions::default(),
            node_holding(&hashes),
        );
        let (report, against) = result.clone().expect("verifies");
        assert_eq!(against, AgainstNode::Same);
        assert_eq!(report.height, Height(hashes.len() as u64));
        let html = render(&Verdict {
            genesis_hash: genesis.hash(),
            node_genesis: true,
            result,
        });
        assert!(
            html.contains("<span id=\"verify-result\">verified</span>"),
            "{html}"
        );
        assert!(html.contains(&genesis.hash().to_hex()), "{html}");
        assert!(html.contains("the same block at this height"), "{html}");
        assert!(html.contains(&report.state_digest.to_hex()), "{html}");
    }

    #[test]
    fn a_good_export_beyond_this_node_says_how_far_the_node_is() {
        let (export, genesis, hashes) = sample_parts();
        let (_, against) = check_export(
            &export,
            &genesis,
            genesis.hash(),
            VerifyOptions::default(),
            node_holding(&hashes[..3]),
        )
        .expect("verifies");
        assert_eq!(against, AgainstNode::Behind(Height(3)));
    }

    #[test]
    fn a_tampered_export_is_shown_failed_with_the_height() {
        let (mut export, genesis, hashes) = sample_parts();
        let chain = sample::chain();
        let time = custody_ledger::encoding::encode(&chain.blocks[4].0.header.time);
        let mut reader = custody_ledger::export::ExportReader::new(&export[..]).expect("reader");
        let mut at = None;
        while let Some(entry) = reader.next_entry().expect("entry") {
            if entry.height == Height(5) {
                let inside = entry
                    .block
                    .windows(time.len())
                    .position(|w| w == time.as_slice())
                    .expect("the time in the block");
                at = Some(entry.block_offset as usize + inside);
            }
        }
        export[at.expect("block 5")] ^= 0x01;
        let result = check_export(
            &export,
            &genesis,
            genesis.hash(),
            VerifyOptions::default(),
            node_holding(&hashes),
        );
        assert_eq!(result.as_ref().expect_err("fails").height, Some(Height(5)));
        let html = render(&Verdict {
            genesis_hash: genesis.hash(),
            node_genesis: true,
            result,
        });
        assert!(
            html.contains("<span id=\"verify-result\">failed</span>"),
            "{html}"
        );
        assert!(html.contains("<td id=\"failed-height\">5</td>"), "{html}");
    }

    #[test]
    fn a_file_that_is_no_export_is_shown_as_not_a_chain_export() {
        let (_, genesis, hashes) = sample_parts();
        let result = check_export(
            b"%PDF-1.7 a scanned letter",
            &genesis,
            genesis.hash(),
            VerifyOptions::default(),
            node_holding(&hashes),
        );
        let html = render(&Verdict {
            genesis_hash: genesis.hash(),
            node_genesis: true,
            result,
        });
        assert!(html.contains("not-an-export"), "{html}");
        assert!(html.contains("This file is not a chain export."), "{html}");
    }

    fn multipart_request(export: &[u8]) -> Request<Body> {
        let boundary = "XyZboundary";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"export\"; filename=\"chain.export\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(export);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Request::builder()
            .method("POST")
            .uri(VERIFY_PATH)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .expect("request")
    }

    #[test]
    fn the_route_is_registered_at_the_page_path() {
        assert_eq!(VERIFY_PATH, "/auditor/verify");
    }

    #[tokio::test]
    async fn an_upload_within_the_limit_is_read_whole() {
        let export = vec![7u8; 10_000];
        let multipart = Multipart::from_request(multipart_request(&export), &())
            .await
            .expect("multipart");
        let upload = read_upload(multipart, 10_000).await.expect("read");
        assert_eq!(upload.export, export);
        assert!(upload.genesis.is_empty());
    }

    #[tokio::test]
    async fn an_upload_over_the_limit_is_refused_as_too_large() {
        let export = vec![7u8; 10_001];
        let multipart = Multipart::from_request(multipart_request(&export), &())
            .await
            .expect("multipart");
        let error = read_upload(multipart, 10_000).await.expect_err("too large");
        assert_eq!(error, UploadError::TooLarge { limit: 10_000 });
        let response = too_large(&frame(Lang::En), 10_000);
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
