//! Writes to the metadata store, one code path for both engines: a transaction
//! ([`WriteTx`]) or a statement on its own ([`MetadataStore::write`]), each statement a
//! [`Stmt`] with `$n` placeholders.
//!
//! On PostgreSQL a write runs on sqlx's pool. On SQLite every write runs on one
//! rusqlite connection, synchronously, on the task that holds it. SQLite takes one
//! writer at a time anyway, so one connection loses nothing, and it keeps its page
//! cache (in WAL mode a connection drops its cache whenever another one wrote). A
//! statement of a write takes microseconds; through sqlx, which Cairn used for SQLite
//! before, each statement, its rows and a ping went to the connection's own thread and
//! back, and on a small machine those switches cost more than the writes.
//!
//! The writer commits transactions that queue behind one another as one group
//! (`sqlite_writer`), and waits for another process's write lock without blocking.
//!
//! What runs in place occupies a runtime thread for as long as it runs: a registration
//! of thousands of files, or a `cairn copy`. WAL checkpoints, which SQLite would run at
//! a commit, run beside the writer instead (`checkpoint`).

use rusqlite::{Connection, ToSql};
use sqlx::{Any, AnyPool, Encode, Type};

use crate::db::sql::{Row, SqlBuilder};
use crate::db::sqlite_reads::rows;
use crate::db::sqlite_writer::SqliteTx;
use crate::db::{Backend, MetadataStore, outcome};
use crate::{Error, Result};

/// A write transaction. Dropped without [`WriteTx::commit`], it rolls back.
pub(crate) struct WriteTx {
    /// The engine it runs on, for SQL that differs between them.
    pub backend: Backend,
    inner: TxInner,
    /// What tells, should the answer to its `COMMIT` be lost, whether it committed
    /// (`outcome`): the audit entry it appended, or a mark of its own.
    mark: Option<CommitMark>,
}

/// How the outcome of a lost commit is learned (`outcome`).
#[derive(Debug, Clone)]
pub(crate) enum CommitMark {
    /// The transaction appended this audit entry.
    Audit(AuditMark),
    /// The transaction inserted this token into `commit_marks`.
    Token(String),
}

/// An audit entry a transaction wrote: its number and its hash, which no other entry
/// at that number can have.
#[derive(Debug, Clone)]
pub(crate) struct AuditMark {
    pub seq: i64,
    pub hash: String,
}

enum TxInner {
    /// A transaction of the writer's group (`sqlite_writer`).
    Sqlite(SqliteTx),
    /// A transaction on the pool, and the pool (to learn the outcome of a lost commit).
    Postgres(sqlx::Transaction<'static, Any>, AnyPool),
}

impl WriteTx {
    /// A statement of this transaction; `sql` numbers its placeholders `$1`, `$2`…
    pub fn query(&mut self, sql: &str) -> Stmt<'_> {
        let q = SqlBuilder::numbered(self.backend, sql);
        self.sql(q)
    }

    /// A statement of this transaction built with [`SqlBuilder`].
    pub fn sql(&mut self, q: SqlBuilder) -> Stmt<'_> {
        Stmt {
            target: Target::Tx(self),
            q,
        }
    }

    /// Records the audit entry this transaction appended (`audit::append`).
    pub fn mark_audit_entry(&mut self, mark: AuditMark) {
        self.mark = Some(CommitMark::Audit(mark));
    }

    /// Marks this transaction, which must not happen twice but appends no audit entry
    /// (creating a run, an experiment, a logged model): a row of its own in
    /// `commit_marks`, looked for should the answer to its `COMMIT` be lost. Nothing on
    /// SQLite, whose commits cannot lose their answer.
    pub async fn mark_commit(&mut self) -> Result<()> {
        if let TxInner::Postgres(..) = self.inner {
            let token = uuid::Uuid::new_v4().simple().to_string();
            self.query("INSERT INTO commit_marks (token, at) VALUES ($1, $2)")
                .bind(&token)
                .bind(crate::db::now_ms())
                .execute()
                .await?;
            self.mark = Some(CommitMark::Token(token));
        }
        Ok(())
    }

    /// Commits. On PostgreSQL an answer to `COMMIT` that never arrives (the connection
    /// lost) leaves the outcome open: it is learned from the database (`outcome`)
    /// before this returns — `Ok` if it committed, a transient error if provably not,
    /// [`Error::CommitUnknown`] if it cannot be learned. On SQLite a commit has no such
    /// third outcome: it runs in this process.
    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx, pool) => match tx.commit().await {
                Ok(()) => Ok(()),
                Err(lost @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) => {
                    outcome::learn(&pool, self.mark.as_ref(), lost).await
                }
                Err(e) => Err(e.into()),
            },
        }
    }
}

impl MetadataStore {
    /// Starts a write transaction (see [`WriteTx`]): on SQLite it holds the write lock
    /// from the start, so its reads are current and it never fails on a lock upgrade.
    pub(crate) async fn write_tx(&self) -> Result<WriteTx> {
        let inner = match self.sqlite_writer() {
            Some(writer) => TxInner::Sqlite(writer.begin().await?),
            None => TxInner::Postgres(self.pool().begin().await?, self.pool().clone()),
        };
        Ok(WriteTx {
            backend: self.backend(),
            inner,
            mark: None,
        })
    }

    /// One write statement, committed on its own; `sql` numbers its placeholders
    /// `$1`, `$2`…
    pub(crate) fn write(&self, sql: &str) -> Stmt<'_> {
        self.write_sql(SqlBuilder::numbered(self.backend(), sql))
    }

    /// One read statement; `sql` numbers its placeholders `$1`, `$2`…
    pub(crate) fn read(&self, sql: &str) -> Read<'_> {
        self.read_sql(SqlBuilder::numbered(self.backend(), sql))
    }

    /// One read statement built with [`SqlBuilder`].
    pub(crate) fn read_sql(&self, q: SqlBuilder) -> Read<'_> {
        Read(Stmt {
            target: Target::Read(self),
            q,
        })
    }

    /// One write statement built with [`SqlBuilder`], committed on its own.
    pub(crate) fn write_sql(&self, q: SqlBuilder) -> Stmt<'_> {
        Stmt {
            target: Target::Alone(self),
            q,
        }
    }
}

/// A write statement committed on its own (PostgreSQL) that failed: a lost connection
/// leaves open whether it committed, and nothing marks it — unlike a transaction's
/// `COMMIT` (`outcome`) — so it is not retried.
fn statement_alone_failed(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => Error::CommitUnknown(e.to_string()),
        e => e.into(),
    }
}

/// A read statement outside any transaction, with its values bound in placeholder
/// order: the one way the aggregates read, on either engine.
pub(crate) struct Read<'a>(Stmt<'a>);

impl Read<'_> {
    /// Binds the value of the next `$n`.
    pub fn bind<'t, T>(self, value: T) -> Self
    where
        T: Encode<'t, Any> + Type<Any> + ToSql + 't,
    {
        Self(self.0.bind(value))
    }

    pub async fn fetch_all<R: Row>(self) -> Result<Vec<R>> {
        self.0.fetch_all().await
    }

    pub async fn fetch_optional<R: Row>(self) -> Result<Option<R>> {
        self.0.fetch_optional().await
    }

    pub async fn fetch_one<R: Row>(self) -> Result<R> {
        self.0.fetch_one().await
    }

    pub async fn scalar_optional<T>(self) -> Result<Option<T>>
    where
        (T,): Row,
    {
        self.0.scalar_optional().await
    }

    pub async fn scalar_one<T>(self) -> Result<T>
    where
        (T,): Row,
    {
        self.0.scalar_one().await
    }

    pub async fn scalar_all<T>(self) -> Result<Vec<T>>
    where
        (T,): Row,
    {
        self.0.scalar_all().await
    }
}

/// One statement of a write, with its values bound in placeholder order.
pub(crate) struct Stmt<'a> {
    target: Target<'a>,
    q: SqlBuilder,
}

enum Target<'a> {
    Tx(&'a mut WriteTx),
    /// Committed on its own.
    Alone(&'a MetadataStore),
    /// A read outside any transaction: on SQLite a read-only connection
    /// (`MetadataStore::read_rows`), on PostgreSQL the pool.
    Read(&'a MetadataStore),
}

impl Stmt<'_> {
    /// Binds the value of the next `$n`.
    pub fn bind<'t, T>(mut self, value: T) -> Self
    where
        T: Encode<'t, Any> + Type<Any> + ToSql + 't,
    {
        self.q.bind(value);
        self
    }

    /// Runs the statement; returns the rows it changed.
    pub async fn execute(self) -> Result<u64> {
        let Self { target, mut q } = self;
        match target {
            Target::Tx(tx) => match &mut tx.inner {
                TxInner::Sqlite(tx) => Ok(sqlite_execute(tx.conn(), &q)?),
                TxInner::Postgres(pg, _) => Ok(q.build().execute(&mut **pg).await?.rows_affected()),
            },
            Target::Alone(store) => match store.sqlite_writer() {
                Some(writer) => writer.write_alone(|conn| sqlite_execute(conn, &q)).await,
                None => Ok(q
                    .build()
                    .execute(store.pool())
                    .await
                    .map_err(statement_alone_failed)?
                    .rows_affected()),
            },
            Target::Read(_) => unreachable!("a Read exposes no execute"),
        }
    }

    /// Every row the statement returns.
    pub async fn fetch_all<R: Row>(self) -> Result<Vec<R>> {
        let Self { target, mut q } = self;
        match target {
            Target::Tx(tx) => match &mut tx.inner {
                TxInner::Sqlite(tx) => Ok(rows(tx.conn(), &q)?),
                TxInner::Postgres(pg, _) => Ok(q.build_query_as().fetch_all(&mut **pg).await?),
            },
            Target::Alone(store) => match store.sqlite_writer() {
                Some(writer) => writer.write_alone(|conn| rows(conn, &q)).await,
                None => Ok(q
                    .build_query_as()
                    .fetch_all(store.pool())
                    .await
                    .map_err(statement_alone_failed)?),
            },
            Target::Read(store) => store.read_rows(q).await,
        }
    }

    /// The first row, if any.
    pub async fn fetch_optional<R: Row>(self) -> Result<Option<R>> {
        Ok(self.fetch_all::<R>().await?.into_iter().next())
    }

    /// The first row; no row is an error (a statement that always returns one).
    pub async fn fetch_one<R: Row>(self) -> Result<R> {
        self.fetch_optional()
            .await?
            .ok_or(Error::Database(sqlx::Error::RowNotFound))
    }

    /// The first column of the first row, if any.
    pub async fn scalar_optional<T>(self) -> Result<Option<T>>
    where
        (T,): Row,
    {
        Ok(self.fetch_optional::<(T,)>().await?.map(|(value,)| value))
    }

    /// The first column of the first row; no row is an error.
    pub async fn scalar_one<T>(self) -> Result<T>
    where
        (T,): Row,
    {
        Ok(self.fetch_one::<(T,)>().await?.0)
    }

    /// The first column of every row.
    pub async fn scalar_all<T>(self) -> Result<Vec<T>>
    where
        (T,): Row,
    {
        let rows = self.fetch_all::<(T,)>().await?;
        Ok(rows.into_iter().map(|(value,)| value).collect())
    }
}

/// Runs `q` on a SQLite connection, reading any rows it returns (an `INSERT …
/// RETURNING` run for its effect); returns the rows it changed.
fn sqlite_execute(conn: &Connection, q: &SqlBuilder) -> rusqlite::Result<u64> {
    let (sql, values) = q.sqlite_statement();
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values))?;
    while rows.next()?.is_some() {}
    Ok(conn.changes())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::Result;
    use crate::db::{DbLocation, DbOptions, MetadataStore};

    async fn store(dir: &tempfile::TempDir) -> MetadataStore {
        let location = DbLocation::Sqlite(dir.path().join("cairn.db"));
        MetadataStore::open(&location, &DbOptions::default())
            .await
            .expect("open the store")
    }

    async fn add_model(store: &MetadataStore, name: &str) -> Result<u64> {
        store
            .write(
                "INSERT INTO models (name, created_by, created_at, updated_at)
                 VALUES ($1, 't', 0, 0)",
            )
            .bind(name)
            .execute()
            .await
    }

    async fn models(store: &MetadataStore) -> Vec<String> {
        store
            .read("SELECT name FROM models ORDER BY name")
            .scalar_all()
            .await
            .expect("read the models")
    }

    /// Runs `write` while another process holds SQLite's write lock: it must not
    /// finish until the lock is released, nor block the runtime meanwhile.
    async fn waits_for_another_process<F>(dir: &tempfile::TempDir, write: F)
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let other = rusqlite::Connection::open(dir.path().join("cairn.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let write = tokio::spawn(write);
        let start = Instant::now();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the runtime was blocked for {:?}",
            start.elapsed()
        );
        assert!(
            !write.is_finished(),
            "wrote while another process held the lock"
        );
        other.execute_batch("COMMIT").unwrap();
        write.await.unwrap().unwrap();
    }

    /// The runtime has one thread: had a write slept in SQLite's busy handler while
    /// another process held the lock, this test's own task could not have run.
    #[tokio::test(flavor = "current_thread")]
    async fn writes_wait_for_another_process_without_blocking_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let alone = store.clone();
        waits_for_another_process(&dir, async move { add_model(&alone, "a").await.map(drop) })
            .await;
        let in_tx = store.clone();
        waits_for_another_process(&dir, async move {
            let mut tx = in_tx.write_tx().await?;
            tx.query("UPDATE models SET description = 'b' WHERE name = 'a'")
                .execute()
                .await?;
            tx.commit().await
        })
        .await;
        let description: String = store
            .read("SELECT description FROM models")
            .scalar_one()
            .await
            .unwrap();
        assert_eq!(description, "b");
    }

    #[tokio::test]
    async fn the_writer_has_the_store_settings() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let pragmas = store
            .sqlite_writer()
            .unwrap()
            .inspect(|conn| {
                ["journal_mode", "synchronous", "foreign_keys", "temp_store"].map(|name| {
                    conn.query_row(&format!("PRAGMA {name}"), [], |row| {
                        row.get::<_, rusqlite::types::Value>(0)
                    })
                    .map(|v| format!("{v:?}"))
                    .unwrap()
                })
            })
            .await;
        assert_eq!(
            pragmas,
            ["Text(\"wal\")", "Integer(1)", "Integer(1)", "Integer(2)"]
        );
    }

    #[tokio::test]
    async fn a_transaction_dropped_before_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut tx = store.write_tx().await.unwrap();
        tx.query(
            "INSERT INTO models (name, created_by, created_at, updated_at) VALUES ($1, 't', 0, 0)",
        )
        .bind("dropped")
        .execute()
        .await
        .unwrap();
        drop(tx);
        assert!(models(&store).await.is_empty());

        // The writer serves the next write; a failed statement is rolled back too.
        add_model(&store, "kept").await.unwrap();
        let duplicate = add_model(&store, "kept").await.unwrap_err();
        assert!(duplicate.is_unique_violation(), "{duplicate}");
        add_model(&store, "next").await.unwrap();
        assert_eq!(models(&store).await, ["kept", "next"]);
    }

    #[tokio::test]
    async fn rows_read_back_in_a_transaction_see_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut tx = store.write_tx().await.unwrap();
        let (id, name): (i64, String) = tx
            .query(
                "INSERT INTO models (name, created_by, created_at, updated_at)
                 VALUES ($2, 't', $1, $1) RETURNING id, name",
            )
            .bind(7_i64)
            .bind("m")
            .fetch_one()
            .await
            .unwrap();
        let created: i64 = tx
            .query("SELECT created_at FROM models WHERE id = $1")
            .bind(id)
            .scalar_one()
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!((name.as_str(), created), ("m", 7));
        assert_eq!(models(&store).await, ["m"]);
    }
}
