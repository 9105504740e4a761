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
//!
//! As one read runs at a time, the reads keep one connection of their own, outside
//! the pool: through the pool a read would cost three round trips, as sqlx pings a
//! connection when it hands it out and again when it takes it back.

use std::sync::{Arc, Mutex};

use cairn_core::model::AuditHead;
use sqlx::AnyConnection;
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
    /// The connection the reads run on, between reads; opened at the first read, and
    /// again after one failed.
    connection: Mutex<Option<AnyConnection>>,
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
                connection: Mutex::default(),
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
        let head = read_on_own_connection(&shared, &meta).await;
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

/// The head, read on the reads' own connection; `None` if that failed. The connection
/// is then dropped (the next read opens another), and whoever waited reads for
/// themselves through the pool, which reconnects or tells them why it cannot.
async fn read_on_own_connection(shared: &Shared, meta: &MetadataStore) -> Option<AuditHead> {
    let kept = shared.connection.lock().expect("head reads lock").take();
    let mut conn = match kept {
        Some(conn) => conn,
        None => meta.connect_alone().await.ok()?,
    };
    // A connection whose peer went silent would otherwise hold every waiter; the pool
    // bounds its waits the same way.
    let limit = meta.pool().options().get_acquire_timeout();
    let head = tokio::time::timeout(limit, MetadataStore::audit_head_on(&mut conn))
        .await
        .ok()?
        .ok()?;
    *shared.connection.lock().expect("head reads lock") = Some(conn);
    Some(head)
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

    /// The backend process of the connection the reads keep, if they keep one.
    async fn own_connection_pid(reads: &HeadReads) -> Option<i32> {
        let mut conn = reads.shared.connection.lock().unwrap().take()?;
        let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .expect("the kept connection answers");
        *reads.shared.connection.lock().unwrap() = Some(conn);
        Some(pid)
    }

    /// The reads' own connection is lost (PostgreSQL ends its backend, as at a restart
    /// or an administrator's `pg_terminate_backend`): the next request still gets the
    /// current head, and the reads connect again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_head_read_outlives_the_loss_of_its_connection() {
        crate::test_support::on(crate::Backend::Postgres, async {
            let (_fixture, r) = registry().await;
            let reads = HeadReads::new();
            reads.fresh(&r.meta).await.expect("a head");
            let lost = own_connection_pid(&reads).await.expect("a connection kept");
            let ended: bool = r
                .meta
                .read("SELECT pg_terminate_backend($1)")
                .bind(lost)
                .scalar_one()
                .await
                .expect("terminated");
            assert!(ended);
            let actor = Actor::unrestricted("tester");
            let model = CreateModel {
                name: "after-the-loss".into(),
                description: String::new(),
                tags: Default::default(),
            };
            r.create_model(&actor, &model).await.expect("a change");
            let committed = r.audit_head().await.expect("the head");
            let seen = reads
                .fresh(&r.meta)
                .await
                .expect("a head despite the lost connection");
            assert_eq!(seen, committed);
            assert_eq!(reads.fresh(&r.meta).await.expect("a head"), committed);
            let again = own_connection_pid(&reads).await.expect("connected again");
            assert_ne!(again, lost);
        })
        .await
    }

    conformance!(a_shared_head_read_sees_every_change_made_before_it_was_asked_for);
}
