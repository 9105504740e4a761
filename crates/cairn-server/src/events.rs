//! `GET /api/v1/events`: the registry's events as Server-Sent Events.
//!
//! Each event is sent with `id:` its number, `event:` its type and `data:` its JSON
//! (`cairn.event.v1`). A client that reconnects with `Last-Event-ID: N` (browsers' and
//! SSE libraries' own resumption) or `?since=N` gets every event after N and none
//! before: the numbers are the audit log's, gap-free and in commit order, so nothing is
//! missed or repeated across a reconnect. Events the caller may not read (another
//! model's, or registry-wide ones for a caller without a registry-wide role) are left
//! out. `?follow=false` ends the stream once it has caught up.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use cairn_core::ModelName;
use cairn_core::access::{Need, Scope, authorize};
use cairn_core::auth::Role;
use cairn_core::event::Event;
use cairn_registry::Registry;
use futures::{Stream, StreamExt};

use crate::access::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::listen::Draining;

/// Parameters of `GET /api/v1/events`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Only this model's events.
    model: Option<String>,
    /// Only events of these types, comma-separated: exact (`alias.set`) or by prefix
    /// (`alias.*`).
    #[serde(rename = "type")]
    kinds: Option<String>,
    /// Start after this event number (default: now). `Last-Event-ID` takes precedence.
    since: Option<u64>,
    /// `false`: end the stream once every event so far was sent (default `true`).
    follow: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, description = "Server-Sent Events: `id` the event number, `event` its type, `data` the event (cairn.event.v1)", body = Event, content_type = "text/event-stream")))]
pub async fn stream(
    State(registry): State<Registry>,
    Caller(actor): Caller,
    draining: Option<axum::Extension<Draining>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let model = q.model.as_deref().map(ModelName::new).transpose()?;
    if let Some(model) = &model {
        authorize(
            &actor,
            Need::new(Role::Reader, Scope::Model(model.as_str())),
        )
        .map_err(cairn_registry::Error::from)?;
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = match resume.or(q.since) {
        Some(after) => after,
        None => registry.audit_head().await?.seq,
    };
    let kinds: Vec<String> = q
        .kinds
        .iter()
        .flat_map(|k| k.split(','))
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    let draining = draining.map(|d| d.0);
    let events = registry
        .events(
            after,
            model.map(|m| m.to_string()),
            q.follow.unwrap_or(true),
        )
        // A stream ends when the server starts shutting down (the client resumes).
        .take_until(async move { Draining::started(draining.as_ref()).await })
        // …and when the store fails a read: the client resumes after its last id.
        .scan((), |(), read| {
            futures::future::ready(
                read.inspect_err(
                    |e| tracing::warn!(error = %e, "reading events failed; ending the stream"),
                )
                .ok(),
            )
        })
        .filter(move |event| {
            futures::future::ready(event.is_of(&kinds) && event.visible_to(&actor))
        })
        .map(|event| {
            Ok(SseEvent::default()
                .id(event.seq.to_string())
                .event(event.kind.clone())
                .json_data(&event)
                .unwrap_or_else(|_| SseEvent::default().comment("an event could not be encoded")))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
