//! Waiting for the registry to change — what a serving process following an alias, a
//! client long-polling a server, or an event stream blocks on — and reading the events
//! since a point.
//!
//! Every change appends to the audit log in its own transaction, so the audit head
//! moves exactly when the registry's state does — whichever process or server wrote
//! it. One poller per `Registry` reads the head (one row) every [`POLL`] while anyone
//! waits and stops when nobody does; every waiter shares its reads, so a server holding
//! a thousand long-polls still asks the database five times a second.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::AuditHead;
use cairn_core::event::Event;
use tokio::sync::watch;

use crate::Result;
use crate::db::MetadataStore;

use super::Registry;

/// How often the shared poller reads the audit head while someone waits: a change is
/// seen within this (plus the reader's own round trip).
pub const POLL: Duration = Duration::from_millis(200);

/// Audit entries read per query by an event stream.
const EVENT_BATCH: u32 = 500;
/// One wait of a caught-up event stream, renewed while it lasts.
const EVENT_WAIT: Duration = Duration::from_secs(25);

/// The longest a caller may wait in one call.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct ChangeWatch {
    head: Option<watch::Sender<Option<AuditHead>>>,
    polling: bool,
}

pub(crate) type SharedChangeWatch = Arc<Mutex<ChangeWatch>>;

impl Registry {
    /// Waits until the audit head's sequence number passes `after`, or `wait` (at most
    /// [`MAX_WAIT`]) passes; answers the head then (unchanged on a timeout, or lower if
    /// the database went back, restored from a backup). Passes, not differs: the
    /// shared poller's last read may be older than an `after` the caller has just read
    /// itself, and a loop that reads the head and waits would then never wait while
    /// the registry is being written.
    pub async fn wait_for_change(&self, after: u64, wait: Duration) -> Result<AuditHead> {
        let mut head = self.subscribe_changes();
        let changed = tokio::time::timeout(
            wait.min(MAX_WAIT),
            head.wait_for(|h| h.as_ref().is_some_and(|h| h.seq > after)),
        )
        .await
        // The watch's guard is released here, before anything else is awaited.
        .ok()
        .and_then(|seen| seen.ok().and_then(|h| h.clone()));
        if let Some(seen) = changed {
            return Ok(seen);
        }
        self.audit_head().await
    }

    /// Events after number `after` (of one model, if given), in order: those there are
    /// now, then — with `follow` — each new one as it commits. Read in batches; when
    /// caught up it waits on the audit head (any change wakes it, and the next read
    /// finds what, if anything, is for this stream). A read that fails ends the stream
    /// with the error: the caller resumes after the last event it got.
    pub fn events(
        &self,
        after: u64,
        model: Option<String>,
        follow: bool,
    ) -> futures::stream::BoxStream<'static, Result<Event>> {
        use futures::StreamExt;
        // (registry, last number read, events read but not yet handed out)
        let state = (self.clone(), after, VecDeque::<Event>::new());
        futures::stream::try_unfold(state, move |(registry, mut after, mut pending)| {
            let model = model.clone();
            async move {
                loop {
                    if let Some(event) = pending.pop_front() {
                        return Ok(Some((event, (registry, after, pending))));
                    }
                    let entries = registry
                        .meta
                        .audit_after(after, model.as_deref(), EVENT_BATCH)
                        .await?;
                    if let Some(last) = entries.last() {
                        after = last.seq;
                        pending.extend(entries.into_iter().map(Event::from));
                        continue;
                    }
                    if !follow {
                        return Ok(None);
                    }
                    let head = registry.audit_head().await?.seq;
                    registry.wait_for_change(head, EVENT_WAIT).await?;
                }
            }
        })
        .boxed()
    }

    /// A receiver of the head, starting the poller when it is not running.
    fn subscribe_changes(&self) -> watch::Receiver<Option<AuditHead>> {
        let mut state = self.changes.lock().expect("change watch lock");
        let sender = state
            .head
            .get_or_insert_with(|| watch::channel(None).0)
            .clone();
        let receiver = sender.subscribe();
        if !state.polling {
            state.polling = true;
            tokio::spawn(poll(self.meta.clone(), self.changes.clone(), sender));
        }
        receiver
    }
}

/// Reads the head every [`POLL`] until nobody waits. The flag is cleared under the same
/// lock a new waiter takes to subscribe, so a waiter never finds a poller that is
/// about to stop.
async fn poll(
    meta: MetadataStore,
    watch: SharedChangeWatch,
    sender: watch::Sender<Option<AuditHead>>,
) {
    loop {
        {
            let mut state = watch.lock().expect("change watch lock");
            if sender.receiver_count() == 0 {
                // What it saw grows stale once nobody polls: the next waiter starts
                // from a fresh read, never from this.
                sender.send_replace(None);
                state.polling = false;
                return;
            }
        }
        match meta.audit_head().await {
            Ok(head) => {
                sender.send_if_modified(|seen| {
                    let modified = seen.as_ref() != Some(&head);
                    *seen = Some(head);
                    modified
                });
            }
            Err(e) => tracing::warn!(error = %e, "reading the audit head for waiters failed"),
        }
        tokio::time::sleep(POLL).await;
    }
}
