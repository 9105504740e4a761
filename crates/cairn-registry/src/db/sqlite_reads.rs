//! SQLite reads, on a small pool of read-only rusqlite connections.
//!
//! No thread of the connection's own (sqlx, which Cairn used for SQLite before, hands
//! every statement and result row to one through channels: two thread switches or more
//! per statement, on a small machine more than the statements cost; profiles in
//! docs/BENCHMARKS.md). A read of one statement (`MetadataStore::read`, every
//! aggregate's reads) runs in place on the calling task: no handoff at all. A read made
//! of several statements runs inside one read transaction, so its statements see one
//! snapshot of the database; a small one (a run, a page of a few hundred runs) runs in
//! place too, a large one inside `block_in_place`, which hands the runtime worker's
//! other tasks to another thread while it reads ([`ReadSize`]).
//!
//! In place, the memory a read allocates for its rows is used and freed on the thread
//! that allocated it: the answer is written there. Read on a blocking thread, the rows
//! are freed by a runtime worker, and every allocation then reuses memory another core
//! touched last; with the two thread switches of the handoff, a page of 100 runs with
//! their details cost 40% more CPU (docs/BENCHMARKS.md).
//!
//! The connections are `query_only`: writes go to the store's one writer connection
//! (`write`). WAL mode lets these readers run while a write is in progress.
//!
//! The connections of reads of several statements map the database file into memory
//! (`PRAGMA mmap_size`), those of single statements do not. A page of runs with their
//! details walks hundreds of B-tree pages; mapped, SQLite reads them where the kernel
//! keeps the file instead of copying each into the connection's own page cache
//! (runs/search +15%, docs/BENCHMARKS.md). A connection that maps the file unmaps it at
//! the first read after any commit, and maps it again: a lookup by key touches a few
//! pages, and paid that on every read under a stream of writes (model-versions/create
//! −16% with every reader mapped). A database file that shrinks or fails to read under
//! a mapping is a fault (SIGBUS) rather than an error; SQLite's WAL mode already needs
//! the file on a local disk, which holds it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::Result;
use crate::db::sql::SqlBuilder;

/// How long a reader waits for a lock (only a checkpoint truncating the WAL or a
/// schema change takes one a reader must wait for).
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Prepared statements kept per connection: a search's statements vary with the
/// length of its `IN` lists, so a few per shape.
const STATEMENT_CACHE: usize = 64;

/// How much of the database file a connection of reads of several statements maps:
/// far more than a registry's metadata holds (a million runs with their details take a
/// few hundred MiB), address space a 64-bit process does not miss; SQLite reads any
/// part beyond it as usual.
const MAPPED_BYTES: i64 = 1 << 30;

/// How much a read of several statements reads, which decides how it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadSize {
    /// Little enough to read in place: a runtime worker is held for about a
    /// millisecond at most ([`ReadSize::of_runs`]).
    Small,
    /// More, or an amount no one can bound beforehand (a filter tested run by run): the
    /// worker's other tasks move to another thread while it reads.
    Large,
}

impl ReadSize {
    /// Runs with their details up to which a read is small: a page of 100 takes about
    /// 0.4 ms of CPU on the development machine.
    const SMALL_RUNS: usize = 250;

    /// The size of a read of runs with their details that reads `runs` runs (those an
    /// OFFSET skips included).
    pub(crate) fn of_runs(runs: usize) -> Self {
        if runs <= Self::SMALL_RUNS {
            ReadSize::Small
        } else {
            ReadSize::Large
        }
    }
}

/// What a connection serves, which decides whether it maps the database file (see the
/// module's documentation).
#[derive(Clone, Copy)]
enum Serves {
    /// Reads of one statement, in place.
    Lookups,
    /// Reads of several statements, on one snapshot.
    Snapshots,
}

pub(crate) struct SqliteReads {
    path: PathBuf,
    /// At most `connections` reads run at once, each on a connection kept warm (its
    /// page cache and prepared statements) between reads; each kind of connection is
    /// kept apart, so up to twice that many stay open.
    permits: Arc<Semaphore>,
    connections: usize,
    /// Connections not in use, of single-statement reads; a read that finds none opens
    /// one.
    idle: Mutex<Vec<Connection>>,
    /// The same, of reads of several statements (mapping the file).
    idle_mapped: Mutex<Vec<Connection>>,
}

impl SqliteReads {
    /// At most `connections` readers of the database at `path`, which must exist (the
    /// store has migrated it). Opens one at once, so a path that cannot be read fails
    /// here.
    pub fn open(path: PathBuf, connections: u32) -> Result<Arc<Self>> {
        let first = connect(&path, Serves::Lookups)?;
        Ok(Arc::new(Self {
            path,
            permits: Arc::new(Semaphore::new(connections.max(1) as usize)),
            connections: connections.max(1) as usize,
            idle: Mutex::new(vec![first]),
            idle_mapped: Mutex::new(Vec::new()),
        }))
    }

    /// Runs `read` in a read transaction (one snapshot for all its statements), on the
    /// calling task's thread: a small read in place, a large one after handing the
    /// runtime worker's other tasks to another thread (`block_in_place`; a blocking
    /// thread on a single-threaded runtime, where that cannot be done).
    pub async fn read<T, F>(self: &Arc<Self>, size: ReadSize, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let flavor = tokio::runtime::Handle::current().runtime_flavor();
        match (size, flavor) {
            (ReadSize::Small, _) => {
                let _permit = permit;
                self.read_snapshot(read)
            }
            (ReadSize::Large, tokio::runtime::RuntimeFlavor::MultiThread) => {
                let _permit = permit;
                tokio::task::block_in_place(|| self.read_snapshot(read))
            }
            (ReadSize::Large, _) => {
                let this = Arc::clone(self);
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    this.read_snapshot(read)
                })
                .await
                .map_err(|e| std::io::Error::other(format!("SQLite read task failed: {e}")))?
            }
        }
    }

    /// Runs `read`, a single statement (its own snapshot, no transaction needed), on
    /// the calling task: a lookup by key takes microseconds, less than the handoff to a
    /// blocking thread and back.
    pub async fn read_in_place<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let conn = self.connection(Serves::Lookups)?;
        let outcome = read(&conn);
        self.give_back(conn, Serves::Lookups, outcome.is_ok());
        outcome.map_err(crate::Error::from)
    }

    /// Connections reading now and kept idle.
    pub fn stats(&self) -> super::PoolStats {
        let idle = self
            .idle_of(Serves::Lookups)
            .lock()
            .expect("reader pool lock")
            .len()
            + self
                .idle_of(Serves::Snapshots)
                .lock()
                .expect("reader pool lock")
                .len();
        let reading = self.connections - self.permits.available_permits();
        super::PoolStats {
            open: (idle + reading) as u32,
            idle: idle as u32,
        }
    }

    fn idle_of(&self, serves: Serves) -> &Mutex<Vec<Connection>> {
        match serves {
            Serves::Lookups => &self.idle,
            Serves::Snapshots => &self.idle_mapped,
        }
    }

    /// An idle connection of the kind `serves` needs, or a new one.
    fn connection(&self, serves: Serves) -> Result<Connection> {
        let pooled = self.idle_of(serves).lock().expect("reader pool lock").pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => connect(&self.path, serves),
        }
    }

    /// Puts a connection back in the pool, unless its read failed (an error may leave
    /// it in an unknown state).
    fn give_back(&self, conn: Connection, serves: Serves, healthy: bool) {
        if healthy {
            self.idle_of(serves)
                .lock()
                .expect("reader pool lock")
                .push(conn);
        }
    }

    fn read_snapshot<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.connection(Serves::Snapshots)?;
        // BEGIN and COMMIT from the statement cache (rusqlite's `Transaction` parses
        // them anew each time). Should `read` fail, the connection is closed below,
        // which ends the transaction.
        let outcome = (|| -> rusqlite::Result<T> {
            conn.prepare_cached("BEGIN")?.execute([])?;
            let value = read(&conn)?;
            conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(value)
        })();
        self.give_back(conn, Serves::Snapshots, outcome.is_ok());
        outcome.map_err(crate::Error::from)
    }
}

fn connect(path: &std::path::Path, serves: Serves) -> Result<Connection> {
    // No SQLite mutex: a connection is used by one thread at a time, which the pool
    // guarantees.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    if let Serves::Snapshots = serves {
        conn.pragma_update(None, "mmap_size", MAPPED_BYTES)?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The rows of `query`, each converted by `TryFrom<&Row>` (tuples of column types have
/// it).
pub(crate) fn rows<T>(conn: &Connection, query: &SqlBuilder) -> rusqlite::Result<Vec<T>>
where
    T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>,
{
    let (sql, values) = query.sqlite_statement();
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query(rusqlite::params_from_iter(values))?;
    rows.mapped(|row| T::try_from(row)).collect()
}

#[cfg(test)]
mod tests {
    use super::ReadSize;
    use crate::db::{DbLocation, DbOptions, MetadataStore};

    async fn store(dir: &tempfile::TempDir) -> MetadataStore {
        let options = DbOptions {
            max_connections: 2,
            ..DbOptions::default()
        };
        MetadataStore::open(&DbLocation::Sqlite(dir.path().join("cairn.db")), &options)
            .await
            .expect("open the store")
    }

    async fn add_model(store: &MetadataStore, name: &str) {
        store
            .write("INSERT INTO models (name, created_by, created_at, updated_at) VALUES ($1, 't', 0, 0)")
            .bind(name)
            .execute()
            .await
            .expect("insert a model");
    }

    fn count_models(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
        conn.query_row("SELECT count(*) FROM models", [], |row| row.get(0))
    }

    #[tokio::test]
    async fn readers_see_committed_writes_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let reads = store.sqlite_reads().expect("SQLite has readers");
        add_model(&store, "a").await;
        assert_eq!(reads.read(ReadSize::Large, count_models).await.unwrap(), 1);
        let refused = reads
            .read(ReadSize::Small, |conn| {
                conn.execute("DELETE FROM models", [])
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "internal");
        assert_eq!(reads.read(ReadSize::Large, count_models).await.unwrap(), 1);
    }

    /// Reads of several statements map the file; lookups by key do not (each would
    /// map it again after every commit).
    #[tokio::test]
    async fn only_reads_of_several_statements_map_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let reads = store.sqlite_reads().unwrap();
        let mapped = |conn: &rusqlite::Connection| {
            conn.query_row("PRAGMA mmap_size", [], |row| row.get::<_, i64>(0))
        };
        assert_eq!(
            reads.read(ReadSize::Large, mapped).await.unwrap(),
            super::MAPPED_BYTES
        );
        assert_eq!(
            reads.read(ReadSize::Small, mapped).await.unwrap(),
            super::MAPPED_BYTES
        );
        assert_eq!(reads.read_in_place(mapped).await.unwrap(), 0);
        // A mapped reader sees what was committed after it mapped the file.
        add_model(&store, "a").await;
        assert_eq!(reads.read(ReadSize::Large, count_models).await.unwrap(), 1);
        add_model(&store, "b").await;
        assert_eq!(reads.read(ReadSize::Large, count_models).await.unwrap(), 2);
        assert_eq!(reads.stats().open, 2);
    }

    /// A small read runs in place. A large one runs on the calling task's thread too,
    /// but the runtime worker's other tasks go on meanwhile: here the read waits for one
    /// of them, on a runtime of one worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn large_reads_leave_the_runtime_serving() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let reads = store.sqlite_reads().unwrap();
        add_model(&store, "a").await;
        let here = std::thread::current().id();
        let small = reads
            .read(ReadSize::Small, |conn| {
                Ok((std::thread::current().id(), count_models(conn)?))
            })
            .await
            .unwrap();
        assert_eq!(small, (here, 1));
        let (sent, received) = std::sync::mpsc::channel();
        tokio::spawn(async move { sent.send(()).unwrap() });
        let large = reads
            .read(ReadSize::Large, move |conn| {
                let other_task_ran = received
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .is_ok();
                Ok((other_task_ran, count_models(conn)?))
            })
            .await
            .unwrap();
        assert_eq!(large, (true, 1));
        assert_eq!(ReadSize::of_runs(101), ReadSize::Small);
        assert_eq!(ReadSize::of_runs(1001), ReadSize::Large);
    }

    #[tokio::test]
    async fn a_failed_read_leaves_the_pool_serving() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let reads = store.sqlite_reads().unwrap();
        let failed = reads
            .read(ReadSize::Small, |conn| {
                conn.query_row("SELECT x FROM no_such_table", [], |row| {
                    row.get::<_, i64>(0)
                })
            })
            .await
            .unwrap_err();
        assert!(failed.to_string().contains("no_such_table"), "{failed}");
        // More reads at once than the pool has connections: they wait their turn.
        let counts =
            futures::future::join_all((0..6).map(|_| reads.read(ReadSize::Large, count_models)))
                .await;
        assert!(counts.into_iter().all(|n| n.unwrap() == 0));
    }

    /// Paged reads (searches) run as prepared, from the statement cache: with its
    /// LIMIT bound, SQLite would parse and plan the statement again at every run.
    #[tokio::test]
    async fn a_paged_read_is_planned_once() {
        use crate::db::Backend;
        use crate::db::sql::SqlBuilder;
        use rusqlite::StatementStatus;

        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        add_model(&store, "a").await;
        add_model(&store, "b").await;
        let page = |limit_bound: bool, after: &str| {
            let mut q = SqlBuilder::new(Backend::Sqlite, "SELECT name FROM models WHERE name > ");
            q.push_bind(after.to_owned()).push(" ORDER BY name");
            match limit_bound {
                true => q.push(" LIMIT ").push_bind(10_i64),
                false => q.push_limit(10, 0),
            };
            q
        };
        let reads = store.sqlite_reads().unwrap();
        let plannings = |limit_bound: bool| {
            reads.read(ReadSize::Large, move |conn| {
                let mut names = Vec::new();
                for after in ["", "a", ""] {
                    names.push(super::rows::<(String,)>(conn, &page(limit_bound, after))?.len());
                }
                assert_eq!(names, [2, 1, 2]);
                let statement = conn.prepare_cached(page(limit_bound, "").sqlite_statement().0)?;
                Ok(statement.get_status(StatementStatus::RePrepare))
            })
        };
        assert_eq!(plannings(false).await.unwrap(), 0);
        // What the test would see without `push_limit`.
        assert!(plannings(true).await.unwrap() >= 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_statements_of_one_read_see_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        add_model(&store, "a").await;
        let writer = store.clone();
        let runtime = tokio::runtime::Handle::current();
        let (before, after) = store
            .sqlite_reads()
            .unwrap()
            // Large: the read waits for a write, which must not hold the runtime's worker.
            .read(ReadSize::Large, move |conn| {
                let before = count_models(conn)?;
                // A write commits between the read's two statements.
                runtime.block_on(add_model(&writer, "b"));
                Ok((before, count_models(conn)?))
            })
            .await
            .unwrap();
        assert_eq!((before, after), (1, 1));
        let reads = store.sqlite_reads().unwrap();
        assert_eq!(reads.read(ReadSize::Large, count_models).await.unwrap(), 2);
    }
}
