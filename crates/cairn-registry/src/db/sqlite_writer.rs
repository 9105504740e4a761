//! SQLite's one writer connection of this process, and its group commit.
//!
//! Why group: a commit in WAL mode appends every page its transaction changed to the
//! log and moves the log's index, after which every reader drops its page cache.
//! Transactions queued behind one another (registrations, run writes) change the same
//! few pages — a table's last leaf, an index's, the audit chain's tail — so committed
//! together, those pages reach the log once per group instead of once per transaction,
//! and readers reload once per group (docs/BENCHMARKS.md, "group commit").
//!
//! How: the first transaction of a group begins a SQLite transaction; one that ends
//! while other tasks wait for the writer leaves it open for the next and waits for the
//! group's `COMMIT`. Each later one runs in a savepoint of it. The transaction that
//! finds nobody waiting (or the group full, or old) commits the group and tells the
//! others. Nothing is answered before its group committed, so a caller sees exactly
//! what it would see of a transaction of its own: a transaction that fails rolls back
//! (to its savepoint) and commits the rest of the group before its caller goes on —
//! what it saw of the others is then in the database; a `COMMIT` that fails fails every
//! transaction of the group, and none of them is left in the database. (The first
//! needs no savepoint: when it fails there is nothing else to keep, and a savepoint
//! costs a copy of each page it changes.)
//!
//! The connection never sleeps in SQLite's busy handler, which would block a runtime
//! thread: its busy timeout is zero, and when another process holds the write lock,
//! `BEGIN IMMEDIATE` (the lock, taken up front) is retried after an async pause
//! (refused as busy, it changed nothing). Once the lock is held, a WAL database has
//! nothing left to wait for.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::Result;
use crate::db::checkpoint::WRITER_CHECKPOINT_PAGES;

/// How long a write waits for another process to release SQLite's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest pause between two tries at SQLite's write lock.
const BUSY_PAUSE_MAX: Duration = Duration::from_millis(20);

/// Prepared statements kept on the writer: metric inserts vary with the batch's rows.
const STATEMENT_CACHE: usize = 64;

/// At most this many transactions wait in one group: under a steady queue a group
/// would otherwise never end, and its first transaction would wait for all of them.
const GROUP_MAX: usize = 16;

/// A group older than this commits at its next transaction's end, queue or not.
const GROUP_AGE_MAX: Duration = Duration::from_millis(5);

/// The savepoint each transaction of a group runs in.
const SAVEPOINT: &str = "SAVEPOINT cairn_tx";
const RELEASE: &str = "RELEASE cairn_tx";
const ROLLBACK_TO: &str = "ROLLBACK TO cairn_tx";

/// SQLite's one writer connection of this process (module comment).
#[derive(Clone)]
pub(crate) struct SqliteWriter(Arc<Shared>);

pub(crate) struct Shared {
    held: Arc<Mutex<Held>>,
    /// Tasks waiting for the writer: while there are some, a transaction that ends
    /// leaves the group open for them.
    waiting: AtomicUsize,
}

struct Held {
    conn: Connection,
    /// The transactions that ended in the open group, waiting for its `COMMIT`.
    group: Vec<oneshot::Sender<std::result::Result<(), GroupFailed>>>,
    /// When the open SQLite transaction began.
    group_began: Instant,
}

/// Why a group's `COMMIT` failed, for each of its transactions.
#[derive(Clone)]
struct GroupFailed(Option<rusqlite::ffi::Error>, String);

impl From<GroupFailed> for crate::Error {
    fn from(GroupFailed(code, message): GroupFailed) -> Self {
        let code = code.unwrap_or(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR));
        rusqlite::Error::SqliteFailure(code, Some(message)).into()
    }
}

impl From<&rusqlite::Error> for GroupFailed {
    fn from(e: &rusqlite::Error) -> Self {
        let code = match e {
            rusqlite::Error::SqliteFailure(code, _) => Some(*code),
            _ => None,
        };
        Self(code, format!("the group commit of this write failed: {e}"))
    }
}

impl SqliteWriter {
    /// Opens the writer of the SQLite database at `path` (migrated already).
    pub fn open(path: &Path) -> Result<Self> {
        // No SQLite mutex: the async mutex around it gives the connection to one task
        // at a time.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // In WAL mode NORMAL keeps every commit across a process crash; only an OS
        // crash can lose the last transactions, never corrupt the database. A
        // statement inside a transaction keeps a journal of the pages it changes (to
        // undo itself alone should it fail); in memory, not in a temporary file once
        // it passes 64 KiB.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;",
        )?;
        // Checkpoints run beside the writer (`checkpoint`); its own are a safety net.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self(Arc::new(Shared {
            held: Arc::new(Mutex::new(Held {
                conn,
                group: Vec::new(),
                group_began: Instant::now(),
            })),
            waiting: AtomicUsize::new(0),
        })))
    }

    /// What the checkpoint task watches: it stops once the writer is gone.
    pub fn liveness(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.0)
    }

    /// Starts a transaction, holding SQLite's write lock: it joins the open group, or
    /// begins one (`BEGIN IMMEDIATE`, waiting without blocking while another process
    /// holds the lock).
    pub async fn begin(&self) -> Result<SqliteTx> {
        let mut tx = self.turn().await;
        let held = tx.held.as_mut().expect("held until the end");
        if held.conn.is_autocommit() {
            when_not_busy(&mut held.conn, |conn| {
                conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])
            })
            .await?;
            held.group_began = Instant::now();
            tx.role = Role::First;
        } else {
            tx.join_group()?;
        }
        Ok(tx)
    }

    /// Runs `statement`, one statement committed on its own: alone when no group is
    /// open — SQLite then commits it itself, without the journal of the pages it
    /// changes that a statement inside a transaction keeps (a metric batch changes
    /// many) — or as a transaction of the open group.
    pub async fn write_alone<T>(
        &self,
        mut statement: impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut tx = self.turn().await;
        let held = tx.held.as_mut().expect("held until the end");
        if held.conn.is_autocommit() {
            return when_not_busy(&mut held.conn, statement).await;
        }
        tx.join_group()?;
        let value = statement(tx.conn())?;
        tx.commit().await?;
        Ok(value)
    }

    /// The writer, once it is this task's turn; a transaction not started yet, which
    /// from here on settles the group should its task be cancelled (`Drop`).
    async fn turn(&self) -> SqliteTx {
        let queued = Queued::new(&self.0);
        let held = Arc::clone(&self.0.held).lock_owned().await;
        queued.served();
        SqliteTx {
            held: Some(held),
            shared: Arc::clone(&self.0),
            role: Role::Starting,
        }
    }

    /// Runs `look` on the connection, for tests of its settings.
    #[cfg(test)]
    pub async fn inspect<T>(&self, look: impl FnOnce(&Connection) -> T) -> T {
        look(&self.0.held.lock().await.conn)
    }
}

/// A task waiting for the writer; counted from before it asks for the lock until it
/// holds it or gives up.
struct Queued<'a> {
    shared: &'a Arc<Shared>,
    served: bool,
}

impl<'a> Queued<'a> {
    fn new(shared: &'a Arc<Shared>) -> Self {
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        Self {
            shared,
            served: false,
        }
    }

    fn served(mut self) {
        self.served = true;
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let left = self.shared.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
        // A task cancelled while it waited: a group left open for it must still be
        // committed, by whoever is left.
        if !self.served
            && left == 0
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let held = Arc::clone(&self.shared.held);
            runtime.spawn(async move {
                let mut held = held.lock_owned().await;
                if !held.group.is_empty() {
                    let _ = commit_group(&mut held);
                }
            });
        }
    }
}

/// A transaction on the writer (module comment). Dropped without
/// [`SqliteTx::commit`], it rolls back; the group keeps the rest.
pub(crate) struct SqliteTx {
    /// The writer, until the transaction ends.
    held: Option<OwnedMutexGuard<Held>>,
    shared: Arc<Shared>,
    role: Role,
}

/// What a transaction is of its group.
#[derive(PartialEq)]
enum Role {
    /// Not started yet (or its start failed): nothing of it to undo.
    Starting,
    /// It began the SQLite transaction, which holds nothing else while it runs.
    First,
    /// It runs in a savepoint of the group's open transaction.
    Member,
}

impl SqliteTx {
    pub fn conn(&self) -> &Connection {
        &self.held.as_ref().expect("held until the end").conn
    }

    /// Starts this transaction in a savepoint of the open group.
    fn join_group(&mut self) -> Result<()> {
        self.conn().prepare_cached(SAVEPOINT)?.execute([])?;
        self.role = Role::Member;
        Ok(())
    }

    /// Commits: at once when no other task waits for the writer, or with the group
    /// it leaves open for them. Returns once it is in the database.
    pub async fn commit(mut self) -> Result<()> {
        let mut held = self.held.take().expect("held until the end");
        if held.conn.is_autocommit() {
            // SQLite rolled it back itself (an I/O error, a full disk): nothing to
            // commit, and a group must not stand for it (`Drop` tells the group).
            self.held = Some(held);
            return Err(GroupFailed(None, "SQLite rolled back this write".into()).into());
        }
        if self.role == Role::Member
            && let Err(e) = held
                .conn
                .prepare_cached(RELEASE)
                .and_then(|mut s| s.execute([]))
        {
            self.held = Some(held);
            return Err(e.into());
        }
        let group_can_wait = self.shared.waiting.load(Ordering::SeqCst) > 0
            && held.group.len() < GROUP_MAX
            && held.group_began.elapsed() < GROUP_AGE_MAX;
        if !group_can_wait {
            return commit_group(&mut held).map_err(Into::into);
        }
        let (told, outcome) = oneshot::channel();
        held.group.push(told);
        drop(held);
        match outcome.await {
            Ok(committed) => committed.map_err(Into::into),
            // Only a writer closed with its group open drops the group untold; closing
            // the connection rolled the group's transaction back.
            Err(_) => {
                Err(GroupFailed(None, "the group commit of this write was lost".into()).into())
            }
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        if self.role == Role::First {
            // The group holds nothing else yet.
            if !held.conn.is_autocommit()
                && let Err(e) = held.conn.execute_batch("ROLLBACK")
            {
                tracing::error!(error = %e, "rolling back a SQLite write failed");
            }
            return;
        }
        if self.role == Role::Member
            && !held.conn.is_autocommit()
            && let Err(e) = held
                .conn
                .execute_batch(&format!("{ROLLBACK_TO}; {RELEASE}"))
        {
            tracing::error!(error = %e, "rolling back a SQLite write failed");
            // The group cannot be kept apart from what this transaction changed.
            rollback_group(held, &e);
            return;
        }
        if held.conn.is_autocommit() {
            // SQLite ended the whole transaction itself (an I/O error, a full disk):
            // the group's transactions went with it.
            tell(
                held,
                Err(GroupFailed(
                    None,
                    "SQLite rolled back the group of this write".into(),
                )),
            );
        } else if held.group.is_empty() {
            if let Err(e) = held.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "ending an empty SQLite transaction failed");
            }
        } else if self.role == Role::Member || self.shared.waiting.load(Ordering::SeqCst) == 0 {
            // A member that failed commits the group before its caller goes on: what
            // it saw of the group (a row its insert collided with, which the caller
            // may now read on another connection) must be in the database, as it
            // would be had the group's transactions committed one by one.
            let _ = commit_group(held);
        }
    }
}

/// Commits the open SQLite transaction and tells its group how it went. A failed
/// `COMMIT` (a deferred constraint, a full disk) rolls it all back.
fn commit_group(held: &mut Held) -> std::result::Result<(), rusqlite::Error> {
    match held
        .conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
    {
        Ok(_) => {
            tell(held, Ok(()));
            Ok(())
        }
        Err(e) => {
            rollback_group(held, &e);
            Err(e)
        }
    }
}

fn rollback_group(held: &mut Held, cause: &rusqlite::Error) {
    if !held.conn.is_autocommit()
        && let Err(e) = held.conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %e, "rolling back a SQLite group failed");
    }
    tell(held, Err(GroupFailed::from(cause)));
}

fn tell(held: &mut Held, outcome: std::result::Result<(), GroupFailed>) {
    for member in held.group.drain(..) {
        // A member whose task is gone has nobody to tell.
        let _ = member.send(outcome.clone());
    }
}

/// Runs `step` on the writer, which this task holds, and again after a pause for as
/// long as another process holds SQLite's write lock (up to [`BUSY_TIMEOUT`]). A step
/// refused as busy changed nothing.
async fn when_not_busy<T>(
    // `&mut`: a shared reference to a connection cannot be held across an await, as
    // the connection is not `Sync`.
    conn: &mut Connection,
    mut step: impl FnMut(&Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match step(conn) {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(BUSY_PAUSE_MAX);
            }
            done => return Ok(done?),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Queued, SqliteWriter};
    use crate::db::{DbLocation, DbOptions, MetadataStore};

    async fn writer(dir: &tempfile::TempDir) -> SqliteWriter {
        let location = DbLocation::Sqlite(dir.path().join("cairn.db"));
        let store = MetadataStore::open(&location, &DbOptions::default())
            .await
            .expect("open the store");
        store.sqlite_writer().expect("a SQLite store").clone()
    }

    /// The models another connection sees committed.
    fn committed(dir: &tempfile::TempDir) -> Vec<String> {
        committed_in(dir.path())
    }

    fn committed_in(dir: &std::path::Path) -> Vec<String> {
        let conn = rusqlite::Connection::open(dir.join("cairn.db")).unwrap();
        let mut names = conn
            .prepare("SELECT name FROM models ORDER BY name")
            .unwrap();
        names
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn add_model(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<usize> {
        conn.execute(
            "INSERT INTO models (name, created_by, created_at, updated_at) VALUES (?1, 't', 0, 0)",
            [name],
        )
    }

    /// Starts a task that writes one model as a transaction of its own.
    fn write_model(
        writer: &SqliteWriter,
        name: &'static str,
    ) -> tokio::task::JoinHandle<crate::Result<()>> {
        let writer = writer.clone();
        tokio::spawn(async move {
            let tx = writer.begin().await?;
            add_model(tx.conn(), name)?;
            tx.commit().await
        })
    }

    async fn until_waiting(writer: &SqliteWriter, tasks: usize) {
        while writer.0.waiting.load(std::sync::atomic::Ordering::SeqCst) < tasks {
            tokio::task::yield_now().await;
        }
    }

    /// One runtime thread: a transaction that committed alone would return before the
    /// tasks queued behind it had run at all.
    #[tokio::test(flavor = "current_thread")]
    async fn transactions_that_queue_commit_as_one_group() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let first = writer.begin().await.unwrap();
        add_model(first.conn(), "a").unwrap();
        let alone = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write_alone(|conn| add_model(conn, "c"))
                    .await
                    .map(drop)
            })
        };
        let queued = [write_model(&writer, "b"), alone];
        until_waiting(&writer, 2).await;

        first.commit().await.unwrap();
        assert_eq!(committed(&dir), ["a", "b", "c"]);
        for task in queued {
            task.await.unwrap().unwrap();
        }
        // The group is over: the next write commits alone.
        write_model(&writer, "d").await.unwrap().unwrap();
        assert_eq!(committed(&dir), ["a", "b", "c", "d"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_transaction_leaves_the_rest_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let first = writer.begin().await.unwrap();
        add_model(first.conn(), "a").unwrap();
        let failing = {
            let (writer, dir) = (writer.clone(), dir.path().to_owned());
            tokio::spawn(async move {
                let tx = writer.begin().await.unwrap();
                add_model(tx.conn(), "b").unwrap();
                // The name the first transaction took: dropped without a commit.
                add_model(tx.conn(), "a").unwrap_err();
                drop(tx);
                // What it collided with is committed for its caller to read.
                committed_in(&dir)
            })
        };
        let last = write_model(&writer, "c");
        until_waiting(&writer, 2).await;

        first.commit().await.unwrap();
        assert_eq!(failing.await.unwrap(), ["a"]);
        last.await.unwrap().unwrap();
        assert_eq!(committed(&dir), ["a", "c"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_group_left_for_a_task_that_gave_up_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let first = writer.begin().await.unwrap();
        add_model(first.conn(), "a").unwrap();
        // A task waiting for the writer, which the first transaction leaves its group
        // open for, and which then gives up (its request cancelled) without a turn.
        let queued = Queued::new(&writer.0);
        let commit = tokio::spawn(first.commit());
        let joined = async {
            while writer.0.held.lock().await.group.is_empty() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), joined)
            .await
            .expect("the transaction did not wait for a group");
        assert!(
            committed(&dir).is_empty(),
            "the group committed before it was over"
        );
        drop(queued);
        tokio::time::timeout(Duration::from_secs(5), commit)
            .await
            .expect("the group was never committed")
            .unwrap()
            .unwrap();
        assert_eq!(committed(&dir), ["a"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_group_commit_fails_every_transaction_of_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        // A deferred constraint is checked at COMMIT, the group's.
        let setup = writer.begin().await.unwrap();
        setup
            .conn()
            .execute_batch(
                "CREATE TABLE parents (id INTEGER PRIMARY KEY);
                 CREATE TABLE children (parent INTEGER REFERENCES parents (id)
                     DEFERRABLE INITIALLY DEFERRED);",
            )
            .unwrap();
        setup.commit().await.unwrap();

        let first = writer.begin().await.unwrap();
        add_model(first.conn(), "a").unwrap();
        let orphan = {
            let writer = writer.clone();
            tokio::spawn(async move {
                let tx = writer.begin().await?;
                tx.conn().execute("INSERT INTO children VALUES (7)", [])?;
                tx.commit().await
            })
        };
        until_waiting(&writer, 1).await;

        let failed = first.commit().await.unwrap_err();
        assert!(failed.to_string().contains("FOREIGN KEY"), "{failed}");
        let failed = orphan.await.unwrap().unwrap_err();
        assert!(failed.to_string().contains("FOREIGN KEY"), "{failed}");
        assert!(committed(&dir).is_empty());
        // The writer goes on.
        write_model(&writer, "next").await.unwrap().unwrap();
        assert_eq!(committed(&dir), ["next"]);
    }
}
