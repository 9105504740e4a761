//! The frame of every page (title, navigation, who is signed in) and the formatting and
//! links all pages share, so a version's URL or a size is written one way everywhere.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;
use time::macros::format_description;

use cairn_core::access::{Actor, Scope};
use cairn_core::auth::Role;

use super::assets;

/// What a path segment keeps unescaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What a query value keeps unescaped (`@` reads better in `v=model@3`).
const QUERY_VALUE: &AsciiSet = &SEGMENT.remove(b'@');

pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub fn query_value(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

pub fn model_url(model: &str) -> String {
    format!("/models/{}", segment(model))
}

pub fn version_url(model: &str, version: u64) -> String {
    format!("/models/{}/versions/{version}", segment(model))
}

pub fn run_url(run_id: &str) -> String {
    format!("/runs/{}", segment(run_id))
}

/// A query string from pairs, leaving out empty values.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", query_value(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub fn time(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

pub fn time_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(time)
        .unwrap_or_else(|_| ms.to_string())
}

pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A number as people read it: integers without a fraction, others to 6 significant
/// digits.
pub fn number(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.is_finite() {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        value.to_string()
    }
}

pub fn short_digest(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    format!("{algorithm}:{}", hex.chars().take(12).collect::<String>())
}

/// Which part of the site a page belongs to (its tab is marked).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Models,
    Audit,
    Experiments,
}

/// A whole page: `title` in the tab and the heading, `body` inside the frame.
/// `viewer` decides which tabs show: a part of the registry they may not read is not
/// offered (`None`: an error page, for someone unknown).
pub fn frame(section: Section, title: &str, viewer: Option<&Actor>, body: Markup) -> Markup {
    let tab = |s: Section, href: &str, label: &str| {
        html! { a href=(href) class=[(s == section).then_some("current")] { (label) } }
    };
    let may = |scope| viewer.is_some_and(|a| a.may(Role::Reader, scope));
    let user = viewer.map_or("", |a| a.name.as_str());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Cairn" }
                link rel="stylesheet" href=(assets::url("cairn.css"));
                link rel="stylesheet" href=(assets::url("uPlot.min.css"));
                script defer src=(assets::url("uPlot.iife.min.js")) {}
                script defer src=(assets::url("cairn.js")) {}
            }
            body {
                header.top {
                    a.brand href="/" { "Cairn" }
                    nav {
                        (tab(Section::Models, "/", "Models"))
                        @if may(Scope::AnyExperiment) { (tab(Section::Experiments, "/experiments", "Experiments")) }
                        @if may(Scope::Registry) { (tab(Section::Audit, "/audit", "Audit log")) }
                    }
                    span.user title="signed in as" { (user) }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// Links to the previous and next pages; `next` when another page exists.
pub fn pager(base: &str, pairs: &[(&str, &str)], page: u64, next: bool) -> Markup {
    let link = |page: u64| {
        let number = page.to_string();
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        all.push(("page", &number));
        format!("{base}{}", query_string(&all))
    };
    html! {
        nav.pager {
            @if page > 1 { a rel="prev" href=(link(page - 1)) { "← previous" } }
            span { "page " (page) }
            @if next { a rel="next" href=(link(page + 1)) { "next →" } }
        }
    }
}

/// A page for what went wrong, with its status: never a stack trace.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        p.error { (message) }
        p { a href="/" { "Back to the models" } }
    };
    let title = format!("{} {reason}", status.as_u16());
    let mut response = (status, frame(Section::Models, &title, None, body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
