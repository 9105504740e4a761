//! Reads of the audit head shared by the requests that need one at the same moment.
//!
//! A cached answer (`read_cache`) is served only after a read of the audit head shows
//! the registry unchanged. On PostgreSQL that read is a round trip, and a fleet polling
//! `models:/NAME@ALIAS` asks for it with every request: the round trips, not the
//! answers, become the cost. Requests that arrive together share one read instead —
//! but never one that began before they asked: a request that finds a read in flight
//! waits for the next one, which starts once that one ends. Every request so gets a
//! head read after it arrived, as if it had read alone (a change committed before the
//! request, on any server, is seen), and however many requests wait, at most one read
//! runs and one more is due. On SQLite the head is read in place in microseconds,
//! with nothing worth sharing: each request reads its own.

use std::sync::{Arc, Mutex};

use cairn_core::model::AuditHead;
use tokio::sync::watch;

use crate::Result;
use crate::db::{Backend, MetadataStore};

/// The shared reads of one registry's audit head.
#[derive(Clone)]
pub(crate) struct HeadReads {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Reads made, for the tests.
    #[cfg(test)]
    reads: std::sync::atomic::AtomicU64,
    /// The last read done: its number, and the head (`None`: it failed, and whoever
    /// waited on it reads for itself, to get the error).
    done: watch::Sender<(u64, Option<AuditHead>)>,
}

#[derive(Default)]
struct State {
    /// The number of the last read started.
    started: u64,
    /// A read is in flight.
    running: bool,
    /// A request waits for a read after the one in flight.
    another: bool,
}

impl HeadReads {
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::default(),
                #[cfg(test)]
                reads: Default::default(),
                done: watch::channel((0, None)).0,
            }),
        }
    }

    /// The audit head, read after this call began.
    pub(crate) async fn fresh(&self, meta: &MetadataStore) -> Result<AuditHead> {
        if meta.backend() == Backend::Sqlite {
            return meta.audit_head().await;
        }
        let mut done = self.shared.done.subscribe();
        let wanted = {
            let mut state = self.shared.state.lock().expect("head reads lock");
            if state.running {
                state.another = true;
                state.started + 1
            } else {
                state.running = true;
                state.started += 1;
                tokio::spawn(read_while_wanted(Arc::clone(&self.shared), meta.clone()));
                state.started
            }
        };
        let head = done
            .wait_for(|(read, _)| *read >= wanted)
            .await
            .ok()
            .and_then(|got| got.1.clone());
        match head {
            Some(head) => Ok(head),
            None => meta.audit_head().await,
        }
    }
}

/// Reads the head, publishes it, and reads again while a request waits for a newer read.
async fn read_while_wanted(shared: Arc<Shared>, meta: MetadataStore) {
    loop {
        let number = shared.state.lock().expect("head reads lock").started;
        let head = meta.audit_head().await.ok();
        #[cfg(test)]
        shared
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        shared.done.send_replace((number, head));
        let mut state = shared.state.lock().expect("head reads lock");
        if !state.another {
            state.running = false;
            return;
        }
        state.another = false;
        state.started += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use cairn_core::access::Actor;
    use cairn_core::api::CreateModel;

    use super::HeadReads;
    use crate::test_support::{conformance, registry};

    /// Requests that keep a read in flight at every moment, while another server
    /// writes: each answer must still show every change committed before it was asked
    /// for, and the requests must have shared reads.
    async fn a_shared_head_read_sees_every_change_made_before_it_was_asked_for() {
        let (fixture, r1) = registry().await;
        let r2 = fixture.open_again().await;
        let reads = HeadReads::new();
        let stop = Arc::new(AtomicBool::new(false));
        let pollers: Vec<_> = (0..6)
            .map(|_| {
                let (reads, meta, stop) = (reads.clone(), r1.meta.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut asked = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        reads.fresh(&meta).await.expect("a head");
                        asked += 1;
                    }
                    asked
                })
            })
            .collect();
        let actor = Actor::unrestricted("tester");
        for i in 0..40 {
            let model = CreateModel {
                name: format!("m{i}"),
                description: String::new(),
                tags: Default::default(),
            };
            r2.create_model(&actor, &model).await.expect("a change");
            let committed = r2.audit_head().await.expect("the head");
            let seen = reads.fresh(&r1.meta).await.expect("a head");
            assert_eq!(seen, committed, "change {i} is seen by a request after it");
        }
        stop.store(true, Ordering::SeqCst);
        let mut asked = 40;
        for poller in pollers {
            asked += poller.await.expect("a poller");
        }
        let made = reads.shared.reads.load(Ordering::SeqCst);
        assert!(
            made < asked,
            "{asked} requests made {made} reads: concurrent requests share them"
        );
    }

    conformance!(a_shared_head_read_sees_every_change_made_before_it_was_asked_for);
}
