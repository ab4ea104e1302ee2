//! `/citizen`: a citizen enters the receipt code a clerk handed them and
//! sees, per record, the department holding it (or that held it last),
//! since when, its status, the departments that held it, and the reads
//! per department; never a title, a name or content.
//!
//! The lookup is the open API's (`api_citizen::records_of`), on the same
//! budget (`api_citizen::spend_budget`). A code that is not a code at all
//! answers exactly as a code that names nothing: "nothing found".

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use custody_ledger::subject::{CitizenRecord, CitizenStatus, ReceiptCode};
use maud::{html, Markup};
use serde::Deserialize;

use super::i18n::{Lang, Text};
use super::{language, page, respond, show_time, zone_name, LangQuery};
use crate::api_citizen::{records_of, spend_budget, CitizenDesk};
use crate::api_state::{ApiSettings, ApiState};
use crate::handles::ChainView;
use crate::metrics::Metrics;

/// The form's one field.
#[derive(Debug, Deserialize)]
pub struct CitizenForm {
    pub receipt_code: String,
}

fn form_markup(lang: Lang, code: &str) -> Markup {
    html! {
        p { (lang.t(Text::CitizenIntro)) }
        form method="post" action="/citizen" {
            label for="receipt_code" { (lang.t(Text::ReceiptCode)) }
            input type="text" id="receipt_code" name="receipt_code" value=(code)
                autocomplete="off" autocapitalize="characters" spellcheck="false" required;
            br;
            button id="look-up" type="submit" { (lang.t(Text::LookUp)) }
        }
    }
}

fn status_text(status: &CitizenStatus) -> Text {
    match status {
        CitizenStatus::Active => Text::StatusActive,
        CitizenStatus::InTransfer => Text::StatusInTransfer,
        CitizenStatus::Disposed => Text::StatusDisposed,
    }
}

fn status_class(status: &CitizenStatus) -> &'static str {
    match status {
        CitizenStatus::Active => "active",
        CitizenStatus::InTransfer => "in-transfer",
        CitizenStatus::Disposed => "disposed",
    }
}

/// The records of a lookup, as the citizen reads them.
pub fn records_markup(lang: Lang, records: &[CitizenRecord], zone: &jiff::tz::TimeZone) -> Markup {
    html! {
        @if records.is_empty() {
            p.notice id="nothing-found" { (lang.t(Text::NothingFound)) }
        } @else {
            h2 { (lang.t(Text::RecordsFound)) ": " span id="record-count" { (records.len()) } }
            @for (index, record) in records.iter().enumerate() {
                section.record data-status=(status_class(&record.status)) {
                    h3 { (lang.t(Text::Record)) " " (index + 1) }
                    table {
                        tr {
                            th { @if matches!(record.status, CitizenStatus::Disposed) {
                                (lang.t(Text::HeldLastBy))
                            } @else { (lang.t(Text::HeldBy)) } }
                            td.department { (record.department.as_str()) }
                        }
                        tr { th { (lang.t(Text::Since)) } td { (show_time(record.since, zone)) } }
                        tr {
                            th { (lang.t(Text::Status)) }
                            td.status { (lang.t(status_text(&record.status))) }
                        }
                    }
                    h4 { (lang.t(Text::CustodyHistory)) }
                    table {
                        tr {
                            th { (lang.t(Text::Department)) }
                            th { (lang.t(Text::Since)) }
                            th { (lang.t(Text::Until)) }
                        }
                        @for period in &record.custody {
                            tr {
                                td.custodian { (period.department.as_str()) }
                                td { (show_time(period.since, zone)) }
                                td { @match period.until {
                                    Some(until) => (show_time(until, zone)),
                                    None => (lang.t(Text::Now)),
                                } }
                            }
                        }
                    }
                    h4 { (lang.t(Text::Reads)) }
                    @if record.reads.is_empty() {
                        p { (lang.t(Text::NoReads)) }
                    } @else {
                        table {
                            tr { th { (lang.t(Text::Department)) } th { (lang.t(Text::Count)) } }
                            @for read in &record.reads {
                                tr { td.reader { (read.department.as_str()) } td.reads { (read.reads) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /citizen`: the form.
pub async fn form(
    State(settings): State<Arc<ApiSettings>>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (lang, switched) = language(&query, &headers);
    let zone = zone_name(&settings.time_zone);
    let markup = page(
        lang,
        "/citizen",
        lang.t(Text::CitizenTitle),
        &zone,
        form_markup(lang, ""),
    );
    respond(StatusCode::OK, lang, switched, markup)
}

/// `POST /citizen`: the lookup, on the open API's budget.
pub async fn lookup(
    State(state): State<ApiState>,
    Extension(desk): Extension<CitizenDesk>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
    form: Result<Form<CitizenForm>, FormRejection>,
) -> Response {
    let (chain, settings, metrics): (&ChainView, &ApiSettings, &Metrics) =
        (&state.chain, &state.settings, &state.metrics);
    let (lang, switched) = language(&query, &headers);
    let zone = &settings.time_zone;
    let title = lang.t(Text::CitizenTitle);
    let frame = |status: StatusCode, code: &str, result: Markup| {
        let body = html! { (form_markup(lang, code)) (result) };
        respond(
            status,
            lang,
            switched,
            page(lang, "/citizen", title, &zone_name(zone), body),
        )
    };
    // The budget is spent before the code is looked at, as on the API.
    let peer = peer.map(|Extension(ConnectInfo(peer))| peer);
    if spend_budget(&desk, metrics, peer, &headers).is_err() {
        let notice = html! { p.notice id="rate-limited" { (lang.t(Text::RateLimited)) } };
        return frame(StatusCode::TOO_MANY_REQUESTS, "", notice);
    }
    let typed = form.map(|Form(form)| form.receipt_code).unwrap_or_default();
    let shown = typed.chars().take(64).collect::<String>();
    let Ok(code) = typed.trim().parse::<ReceiptCode>() else {
        return frame(StatusCode::OK, &shown, records_markup(lang, &[], zone));
    };
    match records_of(chain, &code).await {
        Ok(records) => {
            metrics
                .citizen_lookups_total
                .fetch_add(1, Ordering::Relaxed);
            frame(StatusCode::OK, &shown, records_markup(lang, &records, zone))
        }
        Err(_) => {
            let notice = html! { p.notice { (lang.t(Text::StoreError)) } };
            frame(StatusCode::SERVICE_UNAVAILABLE, &shown, notice)
        }
    }
}
