//! The audit log (`/audit`): newest first, filtered by model, actor, action and time, a
//! page at a time, under the status of the whole hash chain.

use axum::extract::{RawQuery, State};
use cairn_core::{AuditEntry, ModelVersionRef, VersionRef};
use cairn_registry::{AuditFilter, Registry};
use maud::{Markup, html};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::layout::{Section, frame, model_url, query_string, time, version_url};
use super::{Query, UiError, UiResult};
use crate::access::Caller;

const PAGE: u32 = 100;

/// A `YYYY-MM-DD` day as ms since the epoch (its start, UTC).
fn day_ms(field: &str, text: &str) -> UiResult<i64> {
    let format = format_description!("[year]-[month]-[day]");
    let day = Date::parse(text, &format).map_err(|_| {
        UiError::bad_request(format!("{field} {text:?} is not a date (YYYY-MM-DD)"))
    })?;
    let start: OffsetDateTime = day.midnight().assume_utc();
    Ok((start.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `GET /audit?model=&actor=&action=&from=&to=&before=`.
pub async fn page(
    State(r): State<Registry>,
    Caller(actor): Caller,
    RawQuery(raw): RawQuery,
) -> UiResult<Markup> {
    let query = Query::parse(raw.as_deref());
    let text = |name| query.get(name).unwrap_or_default();
    let filter = AuditFilter {
        model: query.get("model").map(str::to_owned),
        target: None,
        actor: query.get("actor").map(str::to_owned),
        action: query.get("action").map(str::to_owned),
        from_ms: query.get("from").map(|d| day_ms("from", d)).transpose()?,
        // Through the end of the day named.
        to_ms: query
            .get("to")
            .map(|d| day_ms("to", d).map(|ms| ms + 86_400_000))
            .transpose()?,
    };
    let before =
        match query.get("before") {
            None => None,
            Some(b) => Some(b.parse::<u64>().map_err(|_| {
                UiError::bad_request(format!("before {b:?} is not an entry number"))
            })?),
        };
    let entries = r.audit_page(&filter, before, PAGE).await?;
    let status = r.audit_status().await?;
    let older = (entries.len() == PAGE as usize).then(|| entries[entries.len() - 1].seq);
    let filters = [
        ("model", text("model")),
        ("actor", text("actor")),
        ("action", text("action")),
        ("from", text("from")),
        ("to", text("to")),
    ];
    let body = html! {
        p #chain {
            @match &status.broken {
                None => { span.status-ok { "✓ chain verified" } " — " (status.entries) " entries, head " code { (status.head.seq) ":" (status.head.hash.get(..16).unwrap_or(&status.head.hash)) } },
                Some(b) => { span.status-broken { "✗ chain broken" } " at entry " (b.seq) ": " (b.reason) },
            }
        }
        form.filters method="get" action="/audit" {
            label { "Model" input name="model" value=(text("model")); }
            label { "Actor" input name="actor" value=(text("actor")); }
            label { "Action" input name="action" value=(text("action")) placeholder="alias or alias.set"; }
            label { "From" input type="date" name="from" value=(text("from")); }
            label { "To" input type="date" name="to" value=(text("to")); }
            button type="submit" { "Filter" }
            a href="/audit" { "clear" }
        }
        (entries_table(&entries))
        nav.pager {
            @if before.is_some() { a href=(format!("/audit{}", query_string(&filters))) { "← newest" } }
            @if let Some(seq) = older {
                @let seq = seq.to_string();
                @let pairs: Vec<(&str, &str)> = filters.iter().copied().chain([("before", seq.as_str())]).collect();
                a rel="next" href=(format!("/audit{}", query_string(&pairs))) { "older →" }
            }
        }
    };
    Ok(frame(Section::Audit, "Audit log", Some(&actor), body))
}

/// What an entry is about, linked: a version, a model, or just its text.
fn target_link(e: &AuditEntry) -> Markup {
    if let Ok(ModelVersionRef {
        model,
        version: VersionRef::Number(n),
    }) = e.target.parse::<ModelVersionRef>()
    {
        return html! { a href=(version_url(model.as_str(), n)) { (e.target) } };
    }
    // The model itself, or one of its aliases (`NAME@ALIAS`): the model's page.
    if !e.model.is_empty()
        && (e.target == e.model || e.target.starts_with(&format!("{}@", e.model)))
    {
        return html! { a href=(model_url(&e.model)) { (e.target) } };
    }
    html! { (e.target) }
}

/// A compact rendering of a change's state (JSON, cut short).
fn state(value: &Option<serde_json::Value>) -> String {
    let text = value.as_ref().map(|v| v.to_string()).unwrap_or_default();
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(160).collect::<String>())
    } else {
        text
    }
}

/// Audit entries as a table (the log's page and a version's own entries).
pub fn entries_table(entries: &[AuditEntry]) -> Markup {
    html! {
        @if entries.is_empty() { p.muted { "No entries." } }
        @else {
            table #audit {
                thead { tr { th.num { "#" } th { "When" } th { "Actor" } th { "Action" } th { "Target" } th { "Before" } th { "After" } } }
                tbody { @for e in entries {
                    tr data-action=(e.action) {
                        td.num { (e.seq) }
                        td.muted { (time(e.at)) }
                        td.actor { (e.actor) }
                        td.action { code { (e.action) } }
                        td { (target_link(e)) }
                        td { code.muted { (state(&e.before)) } }
                        td { code { (state(&e.after)) } }
                    }
                } }
            }
        }
    }
}
