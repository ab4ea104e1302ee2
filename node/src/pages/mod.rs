//! The node's HTML pages, for citizens and auditors: server-rendered
//! (maud), working without JavaScript, readable on a phone, in Chinese and
//! English (`i18n`), with times in the department's time zone
//! (`pages.time_zone`).
//!
//! - `/`: what the pages are;
//! - `/citizen`: the citizen's lookup by receipt code (`citizen`);
//! - `/auditor...`: the auditors' read-only pages, behind a session that
//!   `custody audit login` opens (`auditor`, `page_sessions`); among them
//!   `/auditor/verify`, which verifies an uploaded chain export (`verify`,
//!   routed with the blob transfers' longer deadline by `api::router`).
//!
//! They live outside `/v1/` and are deliberately not in the OpenAPI
//! description: they are pages, not API.

pub mod auditor;
pub mod citizen;
pub mod i18n;
pub mod verify;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custody_ledger::types::Timestamp;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::api_state::{ApiSettings, ApiState};
use i18n::{Lang, Text, LANG_COOKIE};

/// Every page route, by path: kept out of the OpenAPI description
/// (`tests/openapi.rs` names them).
pub const PAGE_PATHS: [&str; 9] = [
    "/",
    "/citizen",
    "/auditor",
    "/auditor/login/{token}",
    "/auditor/logout",
    "/auditor/documents",
    "/auditor/holdings",
    "/auditor/alerts",
    verify::VERIFY_PATH,
];

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(home))
        .route("/citizen", get(citizen::form).post(citizen::lookup))
        .route("/auditor", get(auditor::overview))
        .route("/auditor/login/{token}", get(auditor::login))
        .route("/auditor/logout", post(auditor::logout))
        .route("/auditor/documents", get(auditor::history))
        .route("/auditor/holdings", get(auditor::holdings))
        .route("/auditor/alerts", get(auditor::alerts))
}

/// The `?lang=` switch every page takes.
#[derive(Debug, Default, Deserialize)]
pub struct LangQuery {
    pub lang: Option<String>,
}

/// The language of a request, and whether the switch was used (then the
/// answer sets the cookie).
pub fn language(query: &LangQuery, headers: &HeaderMap) -> (Lang, bool) {
    let lang = i18n::negotiate(query.lang.as_deref(), headers);
    let switched = query.lang.as_deref().and_then(Lang::from_tag).is_some();
    (lang, switched)
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:0;line-height:1.5;color:#1b1b1b;background:#f7f7f5}
header,main,footer{max-width:52rem;margin:0 auto;padding:0.75rem 1rem}
header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;border-bottom:3px solid #9b1c1c;background:#fff}
header a{color:#9b1c1c;text-decoration:none;font-weight:600}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.5rem}
form{margin:1rem 0}label{display:block;font-weight:600;margin-bottom:0.25rem}
input[type=text]{font-size:1.1rem;padding:0.5rem;width:100%;max-width:28rem;box-sizing:border-box;font-family:monospace}
button{font-size:1rem;padding:0.5rem 1.2rem;margin-top:0.5rem;background:#9b1c1c;color:#fff;border:0;border-radius:4px}
table{border-collapse:collapse;width:100%;margin:0.5rem 0;background:#fff;font-size:0.95rem}
th,td{border:1px solid #ddd;padding:0.35rem 0.5rem;text-align:left;vertical-align:top}
section.record{background:#fff;border:1px solid #ddd;border-radius:6px;padding:0.5rem 1rem;margin:1rem 0}
.notice{background:#fff8e1;border-left:4px solid #c99700;padding:0.5rem 1rem}
.ok{color:#1e6b2e;font-weight:600}.bad{color:#9b1c1c;font-weight:700}
code,.mono{font-family:monospace;word-break:break-all}
footer{color:#666;font-size:0.85rem}
";

/// A time on chain as the department reads it, e.g. `2026-12-05 17:30:00
/// CST`; the raw milliseconds if the time cannot be shown.
pub fn show_time(time: Timestamp, zone: &jiff::tz::TimeZone) -> String {
    i64::try_from(time.0)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|at| {
            at.to_zoned_datetime(zone.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_else(|| format!("{} ms", time.0))
}

/// The frame of every page: title, language switch, body, time zone.
pub fn page(lang: Lang, path: &str, title: &str, zone: &str, body: Markup) -> Markup {
    let other = lang.other();
    let separator = if path.contains('?') { '&' } else { '?' };
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t(Text::SiteTitle)) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { (lang.t(Text::SiteTitle)) }
                    a id="lang-switch" lang=(other.tag()) hreflang=(other.tag())
                        href={ (path) (separator) "lang=" (other.tag()) } {
                        (lang.t(Text::SwitchLanguage))
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer { (lang.t(Text::TimesIn)) ": " (zone) }
            }
        }
    }
}

/// An HTML answer; with the switch used, the language is remembered.
pub fn respond(status: StatusCode, lang: Lang, switched: bool, markup: Markup) -> Response {
    let mut response = (status, maud_html(markup)).into_response();
    if switched {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            lang.tag()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

fn maud_html(markup: Markup) -> Response {
    let mut response = markup.into_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The time zone's name for the footer.
pub fn zone_name(zone: &jiff::tz::TimeZone) -> String {
    zone.iana_name().unwrap_or("UTC").to_string()
}

async fn home(
    State(settings): State<Arc<ApiSettings>>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (lang, switched) = language(&query, &headers);
    let body = html! {
        p { (lang.t(Text::HomeIntro)) }
        ul {
            li { a href="/citizen" { (lang.t(Text::CitizenLink)) } }
            li { a href="/auditor" { (lang.t(Text::AuditorLink)) } }
        }
    };
    let zone = zone_name(&settings.time_zone);
    respond(
        StatusCode::OK,
        lang,
        switched,
        page(lang, "/", lang.t(Text::SiteTitle), &zone, body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_the_configured_time_zone() {
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").expect("bundled zone");
        // 2026-12-31T00:00:00Z is 08:00 in Beijing.
        let shown = show_time(Timestamp(1_798_675_200_000), &zone);
        assert!(shown.starts_with("2026-12-31 08:00:00"), "{shown}");
    }

    #[test]
    fn every_page_offers_the_other_language() {
        let markup = page(Lang::En, "/citizen", "t", "Asia/Shanghai", html! {}).into_string();
        assert!(markup.contains("href=\"/citizen?lang=zh-CN\""), "{markup}");
        assert!(markup.contains("中文"));
    }
}
