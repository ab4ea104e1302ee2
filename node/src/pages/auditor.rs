//! The auditors' read-only pages, behind a page session
//! (`page_sessions`): `custody audit login` asks the signed API for a
//! one-time link; `/auditor/login/{token}` trades it for an `HttpOnly`,
//! `SameSite=Strict` session cookie.
//!
//! - `/auditor`: chain status, validator health, recent blocks and their
//!   commit certificates;
//! - `/auditor/documents?id=...`: a document's history, each event's
//!   inclusion proof checked here against its block's transaction root;
//! - `/auditor/holdings`: documents held per department and the flows of
//!   documents between departments;
//! - `/auditor/alerts`: the oversight alerts;
//! - `/auditor/verify`: an uploaded export verified (`verify`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_ledger::flows::{FlowsRead, FLOWS_EVENTS_READ_MAX};
use custody_ledger::merkle::verify_inclusion;
use custody_ledger::records::DocumentEvent;
use custody_ledger::store::StoreError;
use custody_ledger::types::{DepartmentId, DocumentId, Height};
use maud::{html, Markup};
use serde::Deserialize;

use super::i18n::{cookie, Lang, Text};
use super::{language, page, respond, show_time, zone_name, LangQuery};
use crate::alert_desk::{AlertBook, AlertQuery, BookUnavailable};
use crate::api_state::ApiSettings;
use crate::handles::{ChainView, LocalClock};
use crate::health::Health;
use crate::page_sessions::{PageSession, PageSessions};
use custody_oversight::LiveAlert;

/// The session cookie; scoped to the auditor pages.
pub const SESSION_COOKIE: &str = "custody_auditor";

/// Blocks listed on the overview.
const RECENT_BLOCKS: u64 = 10;

/// Events of one document shown at most (each one's proof is checked).
const HISTORY_EVENTS_MAX: usize = 1_000;

/// The session of a request, if its cookie names a live one.
pub(super) fn session_of(
    sessions: &PageSessions,
    clock: &LocalClock,
    headers: &HeaderMap,
) -> Option<(String, PageSession)> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let session = sessions.session(token, clock.now_ms())?;
    Some((token.to_string(), session))
}

/// What an auditor page needs to render.
pub(super) struct Frame {
    pub(super) lang: Lang,
    pub(super) switched: bool,
    pub(super) zone: jiff::tz::TimeZone,
}

impl Frame {
    pub(super) fn of(settings: &ApiSettings, query: &LangQuery, headers: &HeaderMap) -> Frame {
        let (lang, switched) = language(query, headers);
        Frame {
            lang,
            switched,
            zone: settings.time_zone.clone(),
        }
    }

    pub(super) fn t(&self, text: Text) -> &'static str {
        self.lang.t(text)
    }

    pub(super) fn answer(
        &self,
        status: StatusCode,
        path: &str,
        title: Text,
        body: Markup,
    ) -> Response {
        let markup = page(self.lang, path, self.t(title), &zone_name(&self.zone), body);
        respond(status, self.lang, self.switched, markup)
    }

    /// 401: the login instructions.
    pub(super) fn login_needed(&self, path: &str) -> Response {
        let body = html! { p.notice id="login-needed" { (self.t(Text::LoginNeeded)) } };
        self.answer(StatusCode::UNAUTHORIZED, path, Text::AuditorTitle, body)
    }

    pub(super) fn store_error(&self, path: &str, error: &StoreError) -> Response {
        tracing::error!(%error, "store read failed for an auditor page");
        let body = html! { p.notice { (self.t(Text::StoreError)) } };
        self.answer(
            StatusCode::SERVICE_UNAVAILABLE,
            path,
            Text::AuditorTitle,
            body,
        )
    }

    pub(super) fn who(&self, session: &PageSession) -> Markup {
        html! {
            p {
                (self.t(Text::SignedInAs)) ": " code id="auditor-key" { (session.auditor) }
            }
            nav {
                a href="/auditor" { (self.t(Text::ChainStatus)) } " · "
                a href="/auditor/documents" { (self.t(Text::DocumentHistory)) } " · "
                a href="/auditor/holdings" { (self.t(Text::Holdings)) } " · "
                a href="/auditor/alerts" { (self.t(Text::Alerts)) } " · "
                a href="/auditor/verify" { (self.t(Text::VerifyExport)) }
            }
            form method="post" action="/auditor/logout" {
                button type="submit" { (self.t(Text::Logout)) }
            }
        }
    }
}

/// `GET /auditor/login/{token}`: opens the session of a one-time link and
/// sends the browser to `/auditor`.
pub async fn login(
    State(sessions): State<PageSessions>,
    State(clock): State<LocalClock>,
    State(settings): State<Arc<ApiSettings>>,
    Path(link): Path<String>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::of(&settings, &query, &headers);
    let now_ms = clock.now_ms();
    let opened = match sessions.open_link(&link, now_ms) {
        Ok(opened) => opened,
        Err(error) => {
            tracing::error!(%error, "auditor page session could not be opened");
            None
        }
    };
    let Some((token, session)) = opened else {
        let body = html! { p.notice id="link-invalid" { (frame.t(Text::LinkInvalid)) } };
        return frame.answer(StatusCode::NOT_FOUND, "/auditor", Text::AuditorTitle, body);
    };
    let max_age_s = session.expires_ms.saturating_sub(now_ms) / 1000;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/auditor; Max-Age={max_age_s}; HttpOnly; SameSite=Strict"
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/auditor")]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /auditor/logout`: ends the session and forgets the cookie.
pub async fn logout(
    State(sessions): State<PageSessions>,
    State(clock): State<LocalClock>,
    headers: HeaderMap,
) -> Response {
    if let Some((token, _)) = session_of(&sessions, &clock, &headers) {
        sessions.end(&token);
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/auditor; Max-Age=0; HttpOnly; SameSite=Strict");
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /auditor`: chain status, validators, recent blocks.
pub async fn overview(
    State(sessions): State<PageSessions>,
    State(clock): State<LocalClock>,
    State(settings): State<Arc<ApiSettings>>,
    State(chain): State<ChainView>,
    State(health): State<Arc<Health>>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::of(&settings, &query, &headers);
    let path = "/auditor";
    let Some((_, session)) = session_of(&sessions, &clock, &headers) else {
        return frame.login_needed(path);
    };
    let store = chain.store().clone();
    let read = tokio::task::spawn_blocking(move || {
        let head = store.chain_info()?;
        let mut blocks = Vec::new();
        let first = head.height.0.saturating_sub(RECENT_BLOCKS - 1).max(1);
        for height in (first..=head.height.0).rev() {
            if let Some(block) = store.block(Height(height))? {
                let certificate = store.certificate(Height(height))?;
                blocks.push((block, certificate));
            }
        }
        Ok::<_, StoreError>((head, blocks))
    })
    .await;
    let (head, blocks) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(error)) => return frame.store_error(path, &error),
        Err(error) => {
            return frame.store_error(
                path,
                &StoreError::Sled(format!("the read stopped: {error}")),
            )
        }
    };
    let validators = health.validators();
    let body = html! {
        (frame.who(&session))
        h2 { (frame.t(Text::ChainStatus)) }
        table {
            tr { th { (frame.t(Text::ChainId)) } td.mono { (chain.chain_id()) } }
            tr { th { (frame.t(Text::ThisNode)) } td { (settings.department) } }
            tr { th { (frame.t(Text::Height)) } td id="height" { (head.height.0) } }
            tr { th { (frame.t(Text::LastBlock)) } td.mono { (head.last_block_hash.to_hex()) } }
            tr { th { (frame.t(Text::LastBlockTime)) } td { (show_time(head.last_time, &frame.zone)) } }
        }
        h2 { (frame.t(Text::Validators)) }
        table {
            tr {
                th { (frame.t(Text::Validator)) }
                th { (frame.t(Text::Power)) }
                th { (frame.t(Text::SignedRecent)) }
                th { (frame.t(Text::LastHeard)) }
            }
            @for validator in &validators {
                tr {
                    td { (validator.validator) }
                    td { (validator.power) }
                    td { (validator.signed_recent) " / " (validator.recent_certificates) }
                    td { @match validator.last_heard_ms_ago {
                        Some(ms) => { (ms) " " (frame.t(Text::MsAgo)) },
                        None => (frame.t(Text::Never)),
                    } }
                }
            }
        }
        h2 { (frame.t(Text::RecentBlocks)) }
        table {
            tr {
                th { (frame.t(Text::Block)) }
                th { (frame.t(Text::Time)) }
                th { (frame.t(Text::Transactions)) }
                th { (frame.t(Text::Certificate)) }
            }
            @for (block, certificate) in &blocks {
                tr {
                    td { (block.header.height.0) br; span.mono { (short_hex(&block.hash().to_hex())) } }
                    td { (show_time(block.header.time, &frame.zone)) }
                    td { (block.transactions.len()) }
                    td { @match certificate {
                        Some(certificate) => {
                            (certificate.signatures.len()) " " (frame.t(Text::CertificateSigners)) " " (certificate.round.0)
                        },
                        None => (frame.t(Text::NoCertificate)),
                    } }
                }
            }
        }
    };
    frame.answer(StatusCode::OK, path, Text::AuditorTitle, body)
}

pub(super) fn short_hex(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

/// The document asked for on the history page.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    pub id: Option<String>,
    pub lang: Option<String>,
}

/// One event of a history, with whether its inclusion proof checked.
pub struct CheckedEvent {
    pub event: DocumentEvent,
    pub proof_checked: bool,
}

/// Whether `event`'s transaction is in its block: the inclusion proof is
/// built from the stored block and verified against the block header's
/// transaction root (`custody_ledger::merkle::verify_inclusion`).
fn check_event(
    store: &crate::store_reader::StoreReader,
    event: &DocumentEvent,
) -> Result<bool, StoreError> {
    let Some(stored) = store.transaction(&event.tx)? else {
        return Ok(false);
    };
    if stored.location.height != event.height {
        return Ok(false);
    }
    let Some(block) = store.block(stored.location.height)? else {
        return Ok(false);
    };
    let Ok(index) = usize::try_from(stored.location.index) else {
        return Ok(false);
    };
    let Some(proof) = block.inclusion_proof(index) else {
        return Ok(false);
    };
    Ok(verify_inclusion(
        &block.header.tx_root,
        event.tx.0.as_slice(),
        &proof,
    ))
}

/// A document's events, oldest first, each with its proof checked.
fn checked_history(
    store: &crate::store_reader::StoreReader,
    id: &DocumentId,
) -> Result<Vec<CheckedEvent>, StoreError> {
    let mut checked = Vec::new();
    let mut from = 0;
    loop {
        let page = store.document_history(id, from, 100)?;
        for event in page.items {
            let proof_checked = check_event(store, &event)?;
            checked.push(CheckedEvent {
                event,
                proof_checked,
            });
        }
        match page.next {
            Some(next) if checked.len() < HISTORY_EVENTS_MAX => from = next,
            _ => break,
        }
    }
    Ok(checked)
}

/// The kind of an event, as its name (`Registered`, `Accessed`...).
fn kind_name(event: &DocumentEvent) -> String {
    let debug = format!("{:?}", event.kind);
    debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `GET /auditor/documents?id=...`: a document's history, each event's
/// inclusion proof checked.
pub async fn history(
    State(sessions): State<PageSessions>,
    State(clock): State<LocalClock>,
    State(settings): State<Arc<ApiSettings>>,
    State(chain): State<ChainView>,
    Query(query): Query<HistoryQuery>,
    headers: HeaderMap,
) -> Response {
    let lang_query = LangQuery {
        lang: query.lang.clone(),
    };
    let frame = Frame::of(&settings, &lang_query, &headers);
    let typed = query.id.clone().unwrap_or_default();
    let path = if typed.is_empty() {
        "/auditor/documents".to_string()
    } else {
        format!("/auditor/documents?id={}", encode_query(&typed))
    };
    let Some((_, session)) = session_of(&sessions, &clock, &headers) else {
        return frame.login_needed(&path);
    };
    let search = html! {
        (frame.who(&session))
        form method="get" action="/auditor/documents" {
            label for="id" { (frame.t(Text::DocumentId)) }
            input type="text" id="id" name="id" value=(typed) required;
            br;
            button id="open-document" type="submit" { (frame.t(Text::Open)) }
        }
    };
    let Ok(id) = DocumentId::new(typed.trim()) else {
        let body = html! {
            (search)
            @if !typed.is_empty() { p.notice id="no-such-document" { (frame.t(Text::NoSuchDocument)) } }
        };
        return frame.answer(StatusCode::OK, &path, Text::DocumentHistory, body);
    };
    let store = chain.store().clone();
    let read = tokio::task::spawn_blocking(move || checked_history(&store, &id)).await;
    let events = match read {
        Ok(Ok(events)) => events,
        Ok(Err(error)) => return frame.store_error(&path, &error),
        Err(error) => {
            return frame.store_error(
                &path,
                &StoreError::Sled(format!("the read stopped: {error}")),
            );
        }
    };
    let all_checked = events.iter().all(|event| event.proof_checked);
    let body = html! {
        (search)
        @if events.is_empty() {
            p.notice id="no-such-document" { (frame.t(Text::NoSuchDocument)) }
        } @else {
            @if all_checked {
                p.ok id="all-proofs-checked" { (frame.t(Text::AllProofsChecked)) }
            } @else {
                p.bad id="some-proofs-failed" { (frame.t(Text::SomeProofsFailed)) }
            }
            table id="history" {
                tr {
                    th { "#" }
                    th { (frame.t(Text::Event)) }
                    th { (frame.t(Text::Time)) }
                    th { (frame.t(Text::Department)) }
                    th { (frame.t(Text::Member)) }
                    th { (frame.t(Text::Block)) }
                    th { (frame.t(Text::Proof)) }
                }
                @for checked in &events {
                    tr.event {
                        td { (checked.event.sequence) }
                        td { (kind_name(&checked.event)) }
                        td { (show_time(checked.event.time, &frame.zone)) }
                        td { (checked.event.department.as_str()) }
                        td.mono { (short_hex(&checked.event.member.to_hex())) }
                        td { (checked.event.height.0) }
                        @if checked.proof_checked {
                            td.proof.ok { (frame.t(Text::ProofChecked)) }
                        } @else {
                            td.proof.bad { (frame.t(Text::ProofFailed)) }
                        }
                    }
                }
            }
        }
    };
    frame.answer(StatusCode::OK, &path, Text::DocumentHistory, body)
}

/// `GET /auditor/holdings`: documents held per department, and the flows
/// of documents between departments (`custody_ledger::flows`).
pub async fn holdings(
    State(sessions): State<PageSessions>,
    State(clock): State<LocalClock>,
    State(settings): State<Arc<ApiSettings>>,
    State(chain): State<ChainView>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::of(&settings, &query, &headers);
    let path = "/auditor/holdings";
    let Some((_, session)) = session_of(&sessions, &clock, &headers) else {
        return frame.login_needed(path);
    };
    let store = chain.store().clone();
    let read = tokio::task::spawn_blocking(move || {
        let departments = store.departments()?;
        let flows = store.flows(FLOWS_EVENTS_READ_MAX)?;
        Ok::<_, StoreError>((departments, flows))
    })
    .await;
    let (departments, flows) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(error)) => return frame.store_error(path, &error),
        Err(error) => {
            return frame.store_error(
                path,
                &StoreError::Sled(format!("the read stopped: {error}")),
            )
        }
    };
    let names: BTreeMap<DepartmentId, String> = departments
        .iter()
        .map(|department| (department.id.clone(), department.name.clone()))
        .collect();
    let body = html! {
        (frame.who(&session))
        table id="holdings" {
            tr {
                th { (frame.t(Text::Department)) }
                th { (frame.t(Text::Name)) }
                th { (frame.t(Text::DocumentsHeld)) }
                th { (frame.t(Text::Power)) }
            }
            @for department in &departments {
                tr {
                    td { (department.id.as_str()) }
                    td { (department.name) }
                    td { (department.documents_held) }
                    td { (department.voting_power) }
                }
            }
        }
        (flows_markup(frame.lang, &flows, &names))
    };
    frame.answer(StatusCode::OK, path, Text::Holdings, body)
}

/// The flows between departments as a table, one row per (sender,
/// receiver) in department order, each department by its name and id (by
/// its id alone if it has left the federation); or the line that no
/// document has moved.
fn flows_markup(lang: Lang, read: &FlowsRead, names: &BTreeMap<DepartmentId, String>) -> Markup {
    let department = |id: &DepartmentId| match names.get(id) {
        Some(name) => format!("{name} ({id})"),
        None => id.to_string(),
    };
    html! {
        h2 { (lang.t(Text::Flows)) }
        p { (lang.t(Text::FlowsIntro)) }
        @if !read.complete {
            p.notice id="flows-partial" {
                (lang.t(Text::FlowsPartial)) ": " span id="flows-documents-counted" { (read.documents_counted) }
            }
        }
        @if read.flows.is_empty() {
            p.notice id="no-flows" { (lang.t(Text::NoFlows)) }
        } @else {
            table id="flows" {
                tr {
                    th { (lang.t(Text::FlowFrom)) }
                    th { (lang.t(Text::FlowTo)) }
                    th { (lang.t(Text::FlowHeld)) }
                    th { (lang.t(Text::FlowOffered)) }
                }
                @for ((from, to), flow) in &read.flows {
                    tr.flow {
                        td.from { (department(from)) }
                        td.to { (department(to)) }
                        td.held { (flow.held) }
                        td.offered { (flow.offered) }
                    }
                }
            }
        }
    }
}

/// Alerts shown at most on the alerts page (the newest).
const ALERTS_SHOWN_MAX: usize = 200;

/// `GET /auditor/alerts`: the oversight alerts the session's caller may
/// see (an auditor all of them; a member with the auditor role those
/// concerning its department, as on `/v1/alerts`), newest first.
pub async fn alerts(
    State(sessions): State<PageSessions>,
    State(clock): State<LocalClock>,
    State(settings): State<Arc<ApiSettings>>,
    State(book): State<AlertBook>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::of(&settings, &query, &headers);
    let path = "/auditor/alerts";
    let Some((_, session)) = session_of(&sessions, &clock, &headers) else {
        return frame.login_needed(path);
    };
    let every = AlertQuery {
        since_seq: 0,
        since_height: None,
        limit: usize::MAX,
    };
    let found = match book.page(&session.caller, every) {
        Ok(found) => found,
        Err(unavailable) => {
            let text = match unavailable {
                BookUnavailable::Starting => Text::AlertsStarting,
                BookUnavailable::Stopped(_) => Text::AlertsStopped,
            };
            let body = html! { (frame.who(&session)) p.notice id="alerts-unavailable" { (frame.t(text)) } };
            return frame.answer(StatusCode::SERVICE_UNAVAILABLE, path, Text::Alerts, body);
        }
    };
    let body = html! {
        (frame.who(&session))
        p { (frame.t(Text::AlertsIntro)) }
        (alerts_markup(frame.lang, &frame.zone, &found.alerts))
    };
    frame.answer(StatusCode::OK, path, Text::Alerts, body)
}

/// The newest of `alerts` (in sequence order), newest first, as a table;
/// or the notice that there are none.
fn alerts_markup(lang: Lang, zone: &jiff::tz::TimeZone, alerts: &[LiveAlert]) -> Markup {
    let newest: Vec<&LiveAlert> = alerts.iter().rev().take(ALERTS_SHOWN_MAX).collect();
    html! {
        @if newest.is_empty() {
            p.notice id="no-alerts" { (lang.t(Text::NoAlerts)) }
        } @else {
            p { (lang.t(Text::AlertsShown)) ": " span id="alert-count" { (newest.len()) } " / " (alerts.len()) }
            table id="alerts" {
                tr {
                    th { "#" }
                    th { (lang.t(Text::Rule)) }
                    th { (lang.t(Text::Time)) }
                    th { (lang.t(Text::Responsible)) }
                    th { (lang.t(Text::Department)) }
                    th { (lang.t(Text::Documents)) }
                    th { (lang.t(Text::Score)) }
                    th { (lang.t(Text::Explanation)) }
                }
                @for live in &newest {
                    tr.alert {
                        td { (live.seq) }
                        td.rule { (live.alert.rule.code()) }
                        td { (show_time(live.alert.first_time(), zone)) }
                        td.mono { @if let Some(member) = &live.alert.member { (short_hex(&member.to_hex())) } }
                        td { @if let Some(department) = &live.alert.department { (department.as_str()) } }
                        td {
                            @for document in &live.alert.documents {
                                a href={ "/auditor/documents?id=" (encode_query(document.as_str())) } { (document.as_str()) } " "
                            }
                        }
                        td { (format!("{:.1}", live.alert.score)) }
                        td.explanation { (live.alert.explanation) }
                    }
                }
            }
        }
    }
}

/// Percent-encodes a query value (document ids use `/` and `:`).
fn encode_query(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alerts_page_lists_the_newest_alert_first_with_its_rule_member_and_documents() {
        use custody_ledger::types::{DepartmentId, PublicKey, Timestamp, TxId};
        use custody_oversight::{Alert, Evidence, Rule};
        let alert = |seq: u64, document: &str| LiveAlert {
            seq,
            raised_height: Height(seq),
            updated_height: Height(seq),
            revision: 1,
            departments: vec![DepartmentId::new("archives").expect("slug")],
            alert: Alert {
                rule: Rule::BulkReads,
                member: Some(PublicKey([0xab; 32])),
                department: DepartmentId::new("archives").ok(),
                documents: vec![DocumentId::new(document).expect("id")],
                evidence: vec![Evidence {
                    height: Height(seq),
                    index: 0,
                    tx: TxId([1; 32]),
                    time: Timestamp(1_764_900_000_000),
                    kind: "record-access".to_string(),
                    document: DocumentId::new(document).ok(),
                }],
                evidence_total: 1,
                score: 3.5,
                explanation: "read 40 documents, 8 times the usual".to_string(),
            },
        };
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").expect("bundled zone");
        let html =
            alerts_markup(Lang::En, &zone, &[alert(1, "a/1"), alert(2, "a/2")]).into_string();
        let newer = html.find("a%2F2").expect("the newer alert's document");
        let older = html.find("a%2F1").expect("the older alert's document");
        assert!(newer < older, "newest first: {html}");
        assert!(html.contains(Rule::BulkReads.code()), "{html}");
        assert!(html.contains("abababab"), "the member's key: {html}");
        assert!(html.contains(">3.5<"), "the score: {html}");
        assert!(html.contains("8 times the usual"), "{html}");
        let none = alerts_markup(Lang::En, &zone, &[]).into_string();
        assert!(none.contains("no-alerts"), "{none}");
    }

    #[test]
    fn the_flows_table_names_each_department_and_counts_held_and_offered() {
        use custody_ledger::flows::{Flow, Flows};
        let id = |slug: &str| DepartmentId::new(slug).expect("slug");
        let names = BTreeMap::from([
            (id("civil-affairs"), "Civil Affairs Bureau".to_string()),
            (id("health"), "Health Commission".to_string()),
        ]);
        let read = FlowsRead {
            flows: Flows::from([
                (
                    (id("civil-affairs"), id("health")),
                    Flow {
                        held: 3,
                        offered: 1,
                    },
                ),
                (
                    (id("health"), id("dissolved")),
                    Flow {
                        held: 2,
                        offered: 0,
                    },
                ),
            ]),
            documents_counted: 7,
            complete: true,
        };
        let html = flows_markup(Lang::En, &read, &names).into_string();
        assert!(html.contains("Flows between departments"), "{html}");
        assert!(
            html.contains(
                "<td class=\"from\">Civil Affairs Bureau (civil-affairs)</td>\
                 <td class=\"to\">Health Commission (health)</td>\
                 <td class=\"held\">3</td><td class=\"offered\">1</td>"
            ),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"to\">dissolved</td>"),
            "a department that left is named by its id: {html}"
        );
        assert!(!html.contains("no-flows"), "{html}");
        assert!(!html.contains("flows-partial"), "{html}");
    }

    #[test]
    fn without_any_transfer_the_flows_say_no_document_has_moved() {
        let read = FlowsRead {
            flows: Default::default(),
            documents_counted: 4,
            complete: true,
        };
        let html = flows_markup(Lang::Zh, &read, &BTreeMap::new()).into_string();
        assert!(html.contains("部门间流转"), "{html}");
        assert!(html.contains("id=\"no-flows\""), "{html}");
        assert!(html.contains(Text::NoFlows.pair().1), "{html}");
        assert!(!html.contains("<table"), "{html}");
    }

    #[test]
    fn flows_counted_over_part_of_the_archive_say_how_many_documents() {
        let read = FlowsRead {
            flows: Default::default(),
            documents_counted: 1_200,
            complete: false,
        };
        let html = flows_markup(Lang::En, &read, &BTreeMap::new()).into_string();
        assert!(
            html.contains("<span id=\"flows-documents-counted\">1200</span>"),
            "{html}"
        );
    }

    #[test]
    fn document_ids_are_percent_encoded_in_links() {
        assert_eq!(encode_query("a/b:c d"), "a%2Fb%3Ac%20d");
    }
}
