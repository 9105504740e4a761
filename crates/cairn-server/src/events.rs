//! `GET /api/v1/events`: the registry's events as Server-Sent Events.
//!
//! Each event is sent with `id:` its number, `event:` its type and `data:` its JSON
//! (`cairn.event.v1`). A client that reconnects with `Last-Event-ID: N` (browsers' and
//! SSE libraries' own resumption) or `?since=N` gets every event after N and none
//! before: the numbers are the audit log's, gap-free and in commit order, so nothing is
//! missed or repeated across a reconnect. Events the caller may not read (another
//! model's, or registry-wide ones for a caller without a registry-wide role) are left
//! out. `?follow=false` ends the stream once it has caught up.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use cairn_core::ModelName;
use cairn_core::access::{Actor, Need, Scope, authorize};
use cairn_core::auth::Role;
use cairn_core::event::Event;
use cairn_registry::Registry;
use futures::Stream;

use crate::access::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::listen::Draining;

/// Events read per query.
const BATCH: u32 = 500;
/// One wait for the next change; the stream's keep-alive comments fill the silence.
const WAIT: Duration = Duration::from_secs(25);

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
    let reader = Reader {
        registry,
        actor,
        model: model.map(|m| m.to_string()),
        kinds,
        after,
        follow: q.follow.unwrap_or(true),
        pending: VecDeque::new(),
        draining: draining.map(|d| d.0),
    };
    let events = futures::stream::unfold(reader, |mut reader| async move {
        let event = reader.next().await?;
        let sse = SseEvent::default()
            .id(event.seq.to_string())
            .event(event.kind.clone())
            .json_data(&event)
            .unwrap_or_else(|_| SseEvent::default().comment("an event could not be encoded"));
        Some((Ok(sse), reader))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Where a stream is: the last event number read, and events read but not yet sent.
struct Reader {
    registry: Registry,
    actor: Actor,
    model: Option<String>,
    kinds: Vec<String>,
    after: u64,
    follow: bool,
    pending: VecDeque<Event>,
    draining: Option<Draining>,
}

impl Reader {
    /// The next event to send, waiting for one when caught up; `None` ends the stream
    /// (caught up without following, shutting down, or the store failing).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let batch = match self
                .registry
                .events_after(self.after, self.model.as_deref(), BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "reading events failed; ending the stream (the client resumes)");
                    return None;
                }
            };
            if let Some(last) = batch.last() {
                self.after = last.seq;
                self.pending.extend(
                    batch
                        .into_iter()
                        .filter(|e| e.is_of(&self.kinds) && e.visible_to(&self.actor)),
                );
                continue;
            }
            if !self.follow || self.shutting_down() {
                return None;
            }
            // Caught up: wait for the registry to move past the last event read. A
            // change of another model wakes this too; the next read then finds nothing
            // for this stream and waits again.
            let head = self.registry.audit_head().await.ok()?.seq;
            tokio::select! {
                changed = self.registry.wait_for_change(head, WAIT) => { changed.ok()?; }
                () = Draining::started(self.draining.as_ref()) => return None,
            }
        }
    }

    fn shutting_down(&self) -> bool {
        Draining::has_started(self.draining.as_ref())
    }
}
