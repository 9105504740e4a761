//! The engine layer: opening a SQLite file (WAL; the embedded default) or a PostgreSQL
//! database (many servers, one registry), migrating its schema, and running statements on
//! it. One code path serves both: runtime queries with `$n` placeholders and only
//! integer, real and text columns, so the SQL text is shared; where the engines differ
//! (write locking, LIKE) callers ask [`Backend`]. PostgreSQL runs statements on sqlx's
//! pool; SQLite runs every statement on rusqlite connections (`write`, `sqlite_reads`;
//! migrations in `sqlite_migrate`). Nothing here knows models, runs or any other
//! aggregate: they live above, in `store`, `tracking`, `lineage`, `audit` and `gc`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor};
use time::OffsetDateTime;

use crate::{Error, Result};

pub(crate) mod checkpoint;
pub(crate) mod outcome;
pub(crate) mod sql;
mod sqlite_migrate;
pub(crate) mod sqlite_reads;
pub(crate) mod sqlite_writer;
mod statistics;
pub(crate) mod write;

use sql::{Row, SqlBuilder};
use sqlite_reads::SqliteReads;
use sqlite_writer::SqliteWriter;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the metadata lives: a SQLite file or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DbLocation {
    /// `postgres://…` / `postgresql://…`, `sqlite://PATH`, or a plain file path.
    pub fn parse(s: &str) -> Result<Self> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else if let Some(path) = s.strip_prefix("sqlite://") {
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if s.contains("://") {
            Err(Error::InvalidArgument(format!(
                "unsupported database {s:?}: use postgres://…, sqlite://PATH or a file path"
            )))
        } else {
            Ok(Self::Sqlite(PathBuf::from(s)))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

impl std::fmt::Display for DbLocation {
    /// The location without credentials, for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    let _ = u.set_password(None);
                    write!(f, "{u}")
                }
                Err(_) => f.write_str("postgres://…"),
            },
        }
    }
}

/// Connection-pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections this process opens.
    pub max_connections: u32,
    /// How long a request waits for a connection before failing — with a database that
    /// cannot be reached, how soon it answers 503 (`database_unavailable`).
    pub acquire_timeout: Duration,
    /// PostgreSQL only: statements running longer are cancelled (`statement_timeout`).
    pub statement_timeout: Option<Duration>,
    /// How often a write is run again after a failure that provably left nothing
    /// committed (serialization failure, deadlock, a connection lost before `COMMIT`
    /// was sent; [`Error::is_transient`]). A lost `COMMIT` is never retried blindly.
    pub retries: u32,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_millis(1500),
            statement_timeout: Some(Duration::from_secs(30)),
            retries: 3,
        }
    }
}

#[derive(Clone)]
pub struct MetadataStore {
    /// PostgreSQL only: sqlx's pool. SQLite runs on rusqlite (`sqlite_writer`,
    /// `sqlite_reads`).
    pool: Option<AnyPool>,
    backend: Backend,
    /// SQLite only: the one connection every write runs on (`write`).
    sqlite_writer: Option<SqliteWriter>,
    /// SQLite only: read-only connections for reads of several statements and for
    /// [`Self::read_rows`] (`sqlite_reads`).
    sqlite_reads: Option<Arc<SqliteReads>>,
    /// PostgreSQL only: what each connection sets first (`set_up_session`), kept for
    /// the connections outside the pool (`connect_alone`).
    statement_timeout: Option<Duration>,
    retries: u32,
}

/// A connection pool's state, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub open: u32,
    pub idle: u32,
}

/// Now, in milliseconds since the Unix epoch: how every stored time is kept.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn time_of(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn corrupt_row(what: &str) -> Error {
    Error::Database(sqlx::Error::Decode(
        format!("unreadable {what} in the metadata store").into(),
    ))
}

impl MetadataStore {
    /// Opens (creating a SQLite file if needed) the database and brings its schema up to
    /// date.
    pub async fn open(location: &DbLocation, options: &DbOptions) -> Result<Self> {
        let (pool, sqlite_writer, sqlite_reads) = match location {
            DbLocation::Sqlite(path) => {
                migrate_sqlite(path).await?;
                let reads = SqliteReads::open(path.clone(), options.max_connections)?;
                let writer = SqliteWriter::open(path)?;
                checkpoint::start(path, writer.liveness())?;
                (None, Some(writer), Some(reads))
            }
            DbLocation::Postgres(url) => {
                let pool = postgres_pool(location, url, options).await?;
                (Some(pool), None, None)
            }
        };
        Ok(Self {
            pool,
            backend: location.backend(),
            sqlite_writer,
            sqlite_reads,
            statement_timeout: options.statement_timeout,
            retries: options.retries,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// How often a write failing on a transient error is retried.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Runs a write transaction again when it failed on a transient error
    /// ([`Error::is_transient`]), up to the configured number of retries, backing off
    /// a little more each time.
    pub(crate) async fn with_retries<T, F, Fut>(&self, mut write: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match write().await {
                Err(e) if e.is_transient() && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "transient database error; retrying");
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                done => return done,
            }
        }
    }

    /// The SQLite readers (`None` on PostgreSQL).
    pub(crate) fn sqlite_reads(&self) -> Option<&Arc<SqliteReads>> {
        self.sqlite_reads.as_ref()
    }

    /// The rows of one read statement (callers use [`Self::read`]). On SQLite it runs in
    /// place on a connection of [`SqliteReads`]: no thread handoff at all. On PostgreSQL
    /// it runs on the pool.
    pub(crate) async fn read_rows<T: Row>(&self, mut q: SqlBuilder) -> Result<Vec<T>> {
        match &self.sqlite_reads {
            Some(reads) => {
                reads
                    .read_in_place(|conn| crate::db::sqlite_reads::rows(conn, &q))
                    .await
            }
            None => Ok(q.build_query_as().fetch_all(self.pool()).await?),
        }
    }

    /// SQLite's writer connection (`None` on PostgreSQL).
    pub(crate) fn sqlite_writer(&self) -> Option<&SqliteWriter> {
        self.sqlite_writer.as_ref()
    }

    /// A PostgreSQL connection of its own, outside the pool, set up as the pool's are:
    /// for a task that runs one short statement after another, which through the pool
    /// would cost three round trips each (sqlx pings a connection when it hands it out
    /// and again when it takes it back). Gives up after the acquire timeout, as the pool
    /// does.
    pub(crate) async fn connect_alone(&self) -> Result<AnyConnection> {
        use sqlx::ConnectOptions as _;
        let pool = self.pool();
        let options = pool.connect_options();
        let connect = async {
            let mut conn = options.connect().await?;
            set_up_session(&mut conn, self.statement_timeout).await?;
            Ok::<_, sqlx::Error>(conn)
        };
        tokio::time::timeout(pool.options().get_acquire_timeout(), connect)
            .await
            .map_err(|_| Error::Database(sqlx::Error::PoolTimedOut))?
            .map_err(Error::from)
    }

    /// sqlx's pool, which only PostgreSQL has: callers reach it in the branches where
    /// no SQLite connection exists.
    pub(crate) fn pool(&self) -> &AnyPool {
        self.pool
            .as_ref()
            .expect("the pool of a PostgreSQL store (SQLite runs on rusqlite)")
    }

    /// The newest migration applied to this database.
    pub async fn schema_version(&self) -> Result<i64> {
        self.read("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .scalar_one()
            .await
    }

    /// The connections open now and how many of them are idle: sqlx's pool on
    /// PostgreSQL; on SQLite the reader connections (the one writer apart).
    pub fn pool_stats(&self) -> PoolStats {
        if let Some(pool) = &self.pool {
            return PoolStats {
                open: pool.size(),
                idle: pool.num_idle() as u32,
            };
        }
        match &self.sqlite_reads {
            Some(reads) => reads.stats(),
            None => PoolStats::default(),
        }
    }

    pub async fn ping(&self) -> Result<()> {
        self.read("SELECT 1").scalar_one::<i64>().await.map(drop)
    }
}

/// sqlx's pool on PostgreSQL, its schema brought up to date.
async fn postgres_pool(location: &DbLocation, url: &str, options: &DbOptions) -> Result<AnyPool> {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    // One direct connection first: a wrong address or password then fails at once with
    // the server's own reason, not as a pool timeout.
    tokio::time::timeout(options.acquire_timeout, AnyConnection::connect(url))
        .await
        .map_err(|_| {
            Error::Database(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer from {location} within {:?}",
                    options.acquire_timeout
                ),
            )))
        })??
        .close()
        .await?;
    let statement_timeout = options.statement_timeout;
    let pool = AnyPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .after_connect(move |conn, _| Box::pin(set_up_session(conn, statement_timeout)))
        .connect(url)
        .await?;
    // sqlx's migrator holds an advisory lock on PostgreSQL: servers starting together
    // migrate once.
    POSTGRES_MIGRATIONS.run(&pool).await?;
    Ok(pool)
}

/// What every PostgreSQL connection of this process runs first, in the pool or not.
async fn set_up_session(
    conn: &mut AnyConnection,
    statement_timeout: Option<Duration>,
) -> sqlx::Result<()> {
    let timeout_ms = statement_timeout.map_or(0, |t| t.as_millis());
    conn.execute(sqlx::AssertSqlSafe(format!(
        "SET statement_timeout = {timeout_ms}"
    )))
    .await?;
    Ok(())
}

/// Brings a SQLite file's schema up to date (`sqlite_migrate`, on rusqlite). SQLite has
/// no advisory lock: two processes opening a fresh registry at once would both create
/// the tables, so a lock file next to the database serializes them.
async fn migrate_sqlite(path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_extension("db.migrate-lock"))?;
        lock.lock()?;
        // Creates the file if missing; WAL mode is a property of the file, kept from here.
        let mut conn = rusqlite::Connection::open(&path)?;
        conn.busy_timeout(MIGRATION_BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // As the writer's (`sqlite_writer`): no fsync per commit. Each migration and its
        // bookkeeping row commit together; an OS crash can only undo the last ones,
        // which the next open runs again. A fresh registry commits twice per migration:
        // with an fsync each, creating one took 28 ms instead of 16 (a first push into
        // a new registry pays it).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        sqlite_migrate::run(&mut conn, &SQLITE_MIGRATIONS, None)
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

/// How long a migration waits for another process's write to the database.
const MIGRATION_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Brings `location` up to, not including, the migration described as `description`
/// (its file name without the number) and runs `sql` there: for tests of what a
/// migration does to data written under the schema before it.
#[cfg(test)]
pub(crate) async fn seed_before_migration(location: &DbLocation, description: &str, sql: &str) {
    let migrator = match location {
        DbLocation::Sqlite(_) => &SQLITE_MIGRATIONS,
        DbLocation::Postgres(_) => &POSTGRES_MIGRATIONS,
    };
    let version = migrator
        .iter()
        .find(|m| m.description == description)
        .unwrap_or_else(|| panic!("no migration {description:?}"))
        .version;
    match location {
        DbLocation::Sqlite(path) => {
            let mut conn = rusqlite::Connection::open(path).unwrap();
            sqlite_migrate::run(&mut conn, migrator, Some(version - 1)).unwrap();
            conn.execute_batch(sql).unwrap();
        }
        DbLocation::Postgres(url) => {
            use sqlx::Connection as _;
            sqlx::any::install_default_drivers();
            let mut conn = AnyConnection::connect(url).await.unwrap();
            migrator.run_to(version - 1, &mut conn).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}
