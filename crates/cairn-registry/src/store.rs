//! The metadata store: models, versions, manifests, aliases and their history, in SQLite
//! (WAL; the embedded default) or PostgreSQL (many servers, one registry). One code path
//! serves both: runtime queries with `$n` placeholders and only integer, real and text
//! columns, so the SQL text is shared; where the engines differ (write locking, LIKE)
//! the store asks [`Backend`]. PostgreSQL runs them on sqlx's pool; SQLite runs writes
//! and most reads on rusqlite connections (`write`, `sqlite_reads`), the rest on sqlx.
//! Rows are private types mapped to `cairn_core` views here.
//!
//! Writes that read before they write lock what they read: on SQLite every write
//! transaction starts with `BEGIN IMMEDIATE` (the database's single write lock, taken up
//! front, so writers queue instead of failing on a lock upgrade); on PostgreSQL they take
//! the model row's lock first ([`lock_model`]), so version numbers and alias moves stay
//! serial per model across any number of servers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::model::AliasAction;
use cairn_core::search::{Comparison, EntityKind, Op, OrderBy};
use cairn_core::{
    AliasMove, AliasName, FileEntry, Model, ModelName, Sha256Digest, Version, VersionRef,
    api::NewVersion,
};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor};

use crate::audit::{self, Change};
use crate::checkpoint;
use crate::gc::claim_blobs;
use crate::lineage;
use crate::sql::{Row, SqlBuilder};
use crate::sqlite_reads::SqliteReads;
use crate::write::{SqliteWriter, WriteTx, open_sqlite_writer};
use serde_json::json;
use time::OffsetDateTime;

use crate::{Error, Result};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Rows per multi-row INSERT: 4 binds each stays under SQLite's variable limit and
/// PostgreSQL's 65,535 parameters.
const INSERT_CHUNK: usize = 1000;

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
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// PostgreSQL only: statements running longer are cancelled (`statement_timeout`).
    pub statement_timeout: Option<Duration>,
    /// How often a write that failed on a transient error (serialization failure,
    /// deadlock, lost connection) is retried.
    pub retries: u32,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: Some(Duration::from_secs(30)),
            retries: 3,
        }
    }
}

#[derive(Clone)]
pub struct MetadataStore {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: the one connection every write runs on (`write`).
    sqlite_writer: Option<SqliteWriter>,
    /// SQLite only: read-only connections for reads of several statements and for
    /// [`Self::read_rows`] (`sqlite_reads`).
    sqlite_reads: Option<Arc<SqliteReads>>,
    retries: u32,
}

#[derive(sqlx::FromRow)]
struct ModelRow {
    id: i64,
    name: String,
    description: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<&rusqlite::Row<'_>> for ModelRow {
    type Error = rusqlite::Error;

    /// A row of `id, name, description, created_by, created_at, updated_at`.
    fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            description: row.get(2)?,
            created_by: row.get(3)?,
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    id: i64,
    number: i64,
    digest: String,
    description: String,
    file_count: i64,
    size: i64,
    created_by: String,
    created_at: i64,
    source: String,
    run_id: String,
    run_link: String,
    logged_model_id: Option<String>,
    stage: String,
    updated_at: i64,
}

impl TryFrom<&rusqlite::Row<'_>> for VersionRow {
    type Error = rusqlite::Error;

    /// A row of [`VERSION_COLUMNS`], from its first column on.
    fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            number: row.get(1)?,
            digest: row.get(2)?,
            description: row.get(3)?,
            file_count: row.get(4)?,
            size: row.get(5)?,
            created_by: row.get(6)?,
            created_at: row.get(7)?,
            source: row.get(8)?,
            run_id: row.get(9)?,
            run_link: row.get(10)?,
            logged_model_id: row.get(11)?,
            stage: row.get(12)?,
            updated_at: row.get(13)?,
        })
    }
}

/// A version row with its model's name.
#[derive(sqlx::FromRow)]
struct NamedVersionRow {
    name: String,
    #[sqlx(flatten)]
    version: VersionRow,
}

/// One tag ('t'), param ('p'), metric ('m') or alias ('a') of a version: version id,
/// kind, key, text value, number value.
type DetailRow = (i64, String, String, Option<String>, Option<f64>);

/// What completes a version row: its tags, params, metrics and aliases.
#[derive(Default)]
struct VersionDetails {
    tags: BTreeMap<String, String>,
    params: BTreeMap<String, String>,
    metrics: BTreeMap<String, f64>,
    aliases: Vec<String>,
}

impl VersionDetails {
    /// Adds one detail row: `kind` 't' (tag), 'p' (param), 'm' (metric) or 'a' (alias).
    fn add(&mut self, kind: &str, key: String, text: Option<String>, number: Option<f64>) {
        match kind {
            "t" => {
                self.tags.insert(key, text.unwrap_or_default());
            }
            "p" => {
                self.params.insert(key, text.unwrap_or_default());
            }
            "m" => {
                self.metrics.insert(key, number.unwrap_or(f64::NAN));
            }
            _ => self.aliases.push(key),
        }
    }
}

/// A version row with one of its details (all `None` for a version without any).
#[derive(sqlx::FromRow)]
struct VersionDetailRow {
    #[sqlx(flatten)]
    version: VersionRow,
    detail_kind: Option<String>,
    detail_key: Option<String>,
    detail_text: Option<String>,
    detail_number: Option<f64>,
}

impl TryFrom<&rusqlite::Row<'_>> for VersionDetailRow {
    type Error = rusqlite::Error;

    /// A row of [`VERSION_COLUMNS`] then kind, key, text and number.
    fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            version: VersionRow::try_from(row)?,
            detail_kind: row.get(14)?,
            detail_key: row.get(15)?,
            detail_text: row.get(16)?,
            detail_number: row.get(17)?,
        })
    }
}

fn version_from_row(model: String, r: VersionRow, d: VersionDetails) -> Result<Version> {
    Ok(Version {
        model,
        version: r.number as u64,
        digest: parse_digest(&r.digest)?,
        description: r.description,
        file_count: r.file_count as u64,
        size: r.size as u64,
        files: None,
        aliases: d.aliases,
        metrics: d.metrics,
        params: d.params,
        tags: d.tags,
        created_by: r.created_by,
        created_at: time_of(r.created_at),
    })
}

/// Every column of [`VersionRow`], for queries over `versions v`.
const VERSION_COLUMNS: &str = "v.id, v.number, v.digest, v.description, v.file_count, v.size, \
     v.created_by, v.created_at, v.source, v.run_id, v.run_link, v.logged_model_id, v.stage, v.updated_at";

impl VersionRow {
    fn extras(&self) -> VersionExtras {
        VersionExtras {
            origin: VersionOrigin {
                source: self.source.clone(),
                run_id: self.run_id.clone(),
                run_link: self.run_link.clone(),
                logged_model_id: self.logged_model_id.clone(),
            },
            stage: self.stage.clone(),
            updated_at: self.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct MoveRow {
    alias: String,
    from_version: Option<i64>,
    to_version: Option<i64>,
    action: String,
    actor: String,
    at: i64,
    reason: Option<String>,
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

fn parse_digest(s: &str) -> Result<Sha256Digest> {
    Sha256Digest::from_str(s).map_err(|_| corrupt_row("digest"))
}

impl MoveRow {
    fn into_move(self) -> Result<AliasMove> {
        Ok(AliasMove {
            alias: self.alias,
            from: self.from_version.map(|n| n as u64),
            to: self.to_version.map(|n| n as u64),
            action: AliasAction::parse(&self.action).ok_or_else(|| corrupt_row("alias action"))?,
            actor: self.actor,
            at: time_of(self.at),
            reason: self.reason,
        })
    }
}

/// A version to insert, validated by the service.
pub(crate) struct VersionInsert<'a> {
    pub model: &'a ModelName,
    pub digest: Sha256Digest,
    pub new: &'a NewVersion,
    pub actor: &'a str,
    pub origin: &'a VersionOrigin,
}

/// Where a version came from, as MLflow records it: the artifact URI it was registered
/// from, the run that produced it, and the MLflow 3 logged model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionOrigin {
    pub source: String,
    pub run_id: String,
    pub run_link: String,
    pub logged_model_id: Option<String>,
}

/// The MLflow-only state of a version: its origin, legacy stage and update time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionExtras {
    pub origin: VersionOrigin,
    pub stage: String,
    pub updated_at: i64,
}

impl MetadataStore {
    /// Opens (creating a SQLite file if needed) the database and brings its schema up to
    /// date.
    pub async fn open(location: &DbLocation, options: &DbOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = location.backend();
        let pool_options = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        let pool = match location {
            DbLocation::Sqlite(path) => sqlite_pool(path, pool_options).await?,
            DbLocation::Postgres(url) => {
                // One direct connection first: a wrong address or password then fails
                // at once with the server's own reason, not as a pool timeout.
                use sqlx::Connection as _;
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
                let timeout_ms = options.statement_timeout.map_or(0, |t| t.as_millis());
                pool_options
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "SET statement_timeout = {timeout_ms}"
                            )))
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
        };
        let mut sqlite_reads = None;
        let mut sqlite_writer = None;
        match location {
            DbLocation::Sqlite(path) => {
                migrate_sqlite(&pool, path).await?;
                sqlite_reads = Some(SqliteReads::open(path.clone(), options.max_connections)?);
                let writer = open_sqlite_writer(path)?;
                checkpoint::start(path, Arc::downgrade(&writer))?;
                sqlite_writer = Some(writer);
            }
            // sqlx's migrator holds an advisory lock on PostgreSQL: servers starting
            // together migrate once.
            DbLocation::Postgres(_) => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self {
            pool,
            backend,
            sqlite_writer,
            sqlite_reads,
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

    /// The rows of one read statement. On SQLite it runs in place on a connection of
    /// [`SqliteReads`], where a statement on sqlx's pool costs three trips to the
    /// connection's thread (the statement, its rows, and the ping sqlx sends when the
    /// connection goes back to the pool). On PostgreSQL it runs on the pool.
    pub(crate) async fn read_rows<T: Row>(&self, mut q: SqlBuilder) -> Result<Vec<T>> {
        match &self.sqlite_reads {
            Some(reads) => {
                reads
                    .read_in_place(|conn| crate::sqlite_reads::rows(conn, &q))
                    .await
            }
            None => Ok(q.build_query_as().fetch_all(&self.pool).await?),
        }
    }

    /// SQLite's writer connection (`None` on PostgreSQL).
    pub(crate) fn sqlite_writer(&self) -> Option<&SqliteWriter> {
        self.sqlite_writer.as_ref()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The newest migration applied to this database.
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ---- models ----

    async fn model_row(&self, name: &ModelName) -> Result<ModelRow> {
        let mut q = SqlBuilder::new(
            self.backend,
            "SELECT id, name, description, created_by, created_at, updated_at FROM models WHERE name = ",
        );
        q.push_bind(name.as_str());
        self.read_rows(q)
            .await?
            .pop()
            .ok_or_else(|| Error::ModelNotFound(name.to_string()))
    }

    /// Creates a model; `ModelExists` if the name is taken.
    pub async fn create_model(
        &self,
        name: &ModelName,
        description: &str,
        tags: &BTreeMap<String, String>,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let id: Option<i64> = tx
            .query(
                "INSERT INTO models (name, description, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
            )
            .bind(name.as_str())
            .bind(description)
            .bind(actor)
            .bind(now)
            .scalar_optional()
            .await?;
        let id = id.ok_or_else(|| Error::ModelExists(name.to_string()))?;
        insert_key_values(&mut tx, "model_tags", "model_id", id, tags).await?;
        audit::append(
            &mut tx,
            Change {
                actor,
                action: "model.create".into(),
                model: name.as_str(),
                target: name.to_string(),
                before: None,
                after: Some(json!({ "description": description, "tags": tags })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_models(&self) -> Result<Vec<Model>> {
        let rows = sqlx::query_as::<_, ModelRow>(
            "SELECT id, name, description, created_by, created_at, updated_at FROM models ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        self.models_from_rows(rows, None).await
    }

    /// Models matching MLflow-style comparisons on `name` and `tags.KEY`, in `order`
    /// (then by name), from `offset`, at most `limit`: filtered, sorted and paged in SQL,
    /// so a search costs the page, not the registry.
    pub async fn search_models(
        &self,
        filter: &[Comparison],
        order: &[OrderBy],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Model>> {
        let mut q = SqlBuilder::new(
            self.backend,
            "SELECT m.id, m.name, m.description, m.created_by, m.created_at, m.updated_at FROM models m WHERE 1 = 1",
        );
        for c in filter {
            q.push(" AND ");
            push_model_condition(&mut q, self.backend, c)?;
        }
        push_order_and_page(
            &mut q,
            order,
            |key| match key {
                "name" => Some("m.name"),
                "timestamp" | "last_updated_timestamp" => Some("m.updated_at"),
                "creation_timestamp" => Some("m.created_at"),
                _ => None,
            },
            "m.name",
            offset,
            limit,
        )?;
        let rows: Vec<ModelRow> = q.build_query_as().fetch_all(&self.pool).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        self.models_from_rows(rows, Some(&ids)).await
    }

    /// `ModelNotFound` unless the model exists: one query.
    pub async fn model_exists(&self, name: &ModelName) -> Result<()> {
        self.model_row(name).await.map(|_| ())
    }

    pub async fn get_model(&self, name: &ModelName) -> Result<Model> {
        let row = self.model_row(name).await?;
        let id = row.id;
        let mut models = self.models_from_rows(vec![row], Some(&[id])).await?;
        Ok(models.remove(0))
    }

    /// Completes model rows with their tags, aliases and version counts: one query each,
    /// for the models `only` names or for all.
    async fn models_from_rows(
        &self,
        rows: Vec<ModelRow>,
        only: Option<&[i64]>,
    ) -> Result<Vec<Model>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let scoped = |sql: &str, column: &str| {
            let mut q = SqlBuilder::new(self.backend, sql);
            if let Some(ids) = only {
                q.push(format!(" WHERE {column} IN ("));
                let mut list = q.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                list.push_unseparated(")");
            }
            q
        };
        let tags: Vec<(i64, String, String)> = scoped(
            "SELECT t.model_id, t.key, t.value FROM model_tags t",
            "t.model_id",
        )
        .build_query_as()
        .fetch_all(&self.pool)
        .await?;
        let aliases: Vec<(i64, String, i64)> = scoped(
            "SELECT a.model_id, a.alias, v.number FROM aliases a JOIN versions v ON v.id = a.version_id",
            "a.model_id",
        )
        .build_query_as()
        .fetch_all(&self.pool)
        .await?;
        let counts: Vec<(i64, i64, i64)> = scoped(
            "SELECT v.model_id, COUNT(*), MAX(v.number) FROM versions v",
            "v.model_id",
        )
        .push(" GROUP BY v.model_id")
        .build_query_as()
        .fetch_all(&self.pool)
        .await?;

        let mut tags_by: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        for (id, k, v) in tags {
            tags_by.entry(id).or_default().insert(k, v);
        }
        let mut aliases_by: HashMap<i64, BTreeMap<String, u64>> = HashMap::new();
        for (id, alias, n) in aliases {
            aliases_by.entry(id).or_default().insert(alias, n as u64);
        }
        let counts_by: HashMap<i64, (i64, i64)> = counts
            .into_iter()
            .map(|(id, c, max)| (id, (c, max)))
            .collect();

        Ok(rows
            .into_iter()
            .map(|r| {
                let (count, latest) = counts_by.get(&r.id).copied().unwrap_or((0, 0));
                Model {
                    name: r.name,
                    description: r.description,
                    tags: tags_by.remove(&r.id).unwrap_or_default(),
                    aliases: aliases_by.remove(&r.id).unwrap_or_default(),
                    latest_version: (count > 0).then_some(latest as u64),
                    version_count: count as u64,
                    created_by: r.created_by,
                    created_at: time_of(r.created_at),
                    updated_at: time_of(r.updated_at),
                }
            })
            .collect())
    }

    pub async fn delete_model(&self, name: &ModelName, actor: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let versions: Vec<i64> = tx
            .query(
                "SELECT v.number FROM versions v JOIN models m ON m.id = v.model_id
             WHERE m.name = $1 ORDER BY v.number",
            )
            .bind(name.as_str())
            .scalar_all()
            .await?;
        // Aliases reference versions without cascading; drop them first.
        tx.query("DELETE FROM aliases WHERE model_id = (SELECT id FROM models WHERE name = $1)")
            .bind(name.as_str())
            .execute()
            .await?;
        let deleted = tx
            .query("DELETE FROM models WHERE name = $1")
            .bind(name.as_str())
            .execute()
            .await?;
        if deleted == 0 {
            return Err(Error::ModelNotFound(name.to_string()));
        }
        audit::append(
            &mut tx,
            Change {
                actor,
                action: "model.delete".into(),
                model: name.as_str(),
                target: name.to_string(),
                before: Some(json!({ "versions": versions })),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- versions ----

    /// Inserts a version, creating its model if needed, and returns its number. The
    /// number comes from the model's `next_version` counter, bumped in the same
    /// transaction: gap-free under concurrent writers and never reused after deletes.
    pub(crate) async fn insert_version(&self, v: VersionInsert<'_>) -> Result<u64> {
        self.with_retries(|| self.insert_version_once(&v)).await
    }

    async fn insert_version_once(&self, v: &VersionInsert<'_>) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let mut digests: Vec<Sha256Digest> = v
            .new
            .files
            .files()
            .iter()
            .map(|f| f.sha256)
            .chain(lineage::blobs(&v.new.lineage))
            .collect();
        digests.sort_unstable();
        digests.dedup();
        claim_blobs(&mut tx, &digests, None).await?;
        let now = now_ms();
        // Creates the model with its counter past version 1, or bumps the counter of
        // the existing one (locking its row until the transaction ends): one statement.
        let (model_id, number): (i64, i64) = tx
            .query(
                "INSERT INTO models (name, created_by, created_at, updated_at, next_version)
             VALUES ($1, $2, $3, $3, 2)
             ON CONFLICT (name) DO UPDATE
                SET next_version = models.next_version + 1, updated_at = excluded.updated_at
             RETURNING id, next_version - 1",
            )
            .bind(v.model.as_str())
            .bind(v.actor)
            .bind(now)
            .fetch_one()
            .await?;
        let files = v.new.files.files();
        let version_id: i64 = tx.query(
            "INSERT INTO versions (model_id, number, digest, description, file_count, size, created_by, created_at,
                                   updated_at, source, run_id, run_link, logged_model_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(model_id)
        .bind(number)
        .bind(v.digest.to_hex())
        .bind(&v.new.description)
        .bind(files.len() as i64)
        .bind(v.new.files.total_size() as i64)
        .bind(v.actor)
        .bind(now)
        .bind(&v.origin.source)
        .bind(&v.origin.run_id)
        .bind(&v.origin.run_link)
        .bind(&v.origin.logged_model_id)
        .scalar_one()
        .await?;

        for chunk in files.chunks(INSERT_CHUNK) {
            let mut q = SqlBuilder::new(
                tx.backend,
                "INSERT INTO version_files (version_id, path, size, sha256) ",
            );
            q.push_values(chunk, |mut row, f| {
                row.push_bind(version_id)
                    .push_bind(f.path.as_str())
                    .push_bind(f.size as i64)
                    .push_bind(f.sha256.to_hex());
            });
            tx.sql(q).execute().await?;
        }
        lineage::insert(&mut tx, version_id, &v.new.lineage).await?;
        insert_key_values(
            &mut tx,
            "version_tags",
            "version_id",
            version_id,
            &v.new.tags,
        )
        .await?;
        insert_key_values(
            &mut tx,
            "version_params",
            "version_id",
            version_id,
            &v.new.params,
        )
        .await?;
        for (k, value) in &v.new.metrics {
            tx.query("INSERT INTO version_metrics (version_id, key, value) VALUES ($1, $2, $3)")
                .bind(version_id)
                .bind(k)
                .bind(value)
                .execute()
                .await?;
        }
        audit::append(
            &mut tx,
            Change {
                actor: v.actor,
                action: "version.create".into(),
                model: v.model.as_str(),
                target: format!("{}@{number}", v.model),
                before: None,
                after: Some(json!({
                    "digest": v.digest.to_hex(),
                    "files": files.len(),
                    "size": v.new.files.total_size(),
                    "source": v.origin.source,
                    "run_id": v.origin.run_id,
                })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(number as u64)
    }

    /// The version `reference` names with its tags, params, metrics and aliases, in one
    /// query (a read's cost is mostly its round trips to the database); a second query
    /// only on a miss, to tell a missing model from a missing version.
    async fn resolve_version(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<(VersionRow, VersionDetails)> {
        const COLUMNS: &str = VERSION_COLUMNS;
        let target = match reference {
            VersionRef::Number(_) => format!(
                "SELECT {COLUMNS} FROM versions v JOIN models m ON m.id = v.model_id
                 WHERE m.name = $1 AND v.number = $2"
            ),
            VersionRef::Latest => format!(
                "SELECT {COLUMNS} FROM versions v JOIN models m ON m.id = v.model_id
                 WHERE m.name = $1 ORDER BY v.number DESC LIMIT 1"
            ),
            VersionRef::Alias(_) => format!(
                "SELECT {COLUMNS} FROM aliases a JOIN versions v ON v.id = a.version_id
                 JOIN models m ON m.id = a.model_id WHERE m.name = $1 AND a.alias = $2"
            ),
        };
        // The version row once per detail row (once if it has none).
        let sql = format!(
            "WITH target AS ({target})
             SELECT t.*, d.kind AS detail_kind, d.key AS detail_key, d.text AS detail_text,
                    d.number AS detail_number
             FROM target t LEFT JOIN (
               SELECT version_id, 't' AS kind, key, value AS text, CAST(NULL AS DOUBLE PRECISION) AS number
                 FROM version_tags WHERE version_id IN (SELECT id FROM target)
               UNION ALL SELECT version_id, 'p', key, value, NULL
                 FROM version_params WHERE version_id IN (SELECT id FROM target)
               UNION ALL SELECT version_id, 'm', key, NULL, value
                 FROM version_metrics WHERE version_id IN (SELECT id FROM target)
               UNION ALL SELECT version_id, 'a', alias, NULL, NULL
                 FROM aliases WHERE version_id IN (SELECT id FROM target)
             ) d ON d.version_id = t.id"
        );
        let mut query = SqlBuilder::numbered(self.backend, &sql);
        query.bind(model.as_str());
        match reference {
            VersionRef::Number(n) => query.bind(*n as i64),
            VersionRef::Latest => &mut query,
            VersionRef::Alias(alias) => query.bind(alias.as_str()),
        };
        let rows: Vec<VersionDetailRow> = self.read_rows(query).await?;
        let mut details = VersionDetails::default();
        let mut version = None;
        for row in rows {
            if let (Some(kind), Some(key)) = (row.detail_kind, row.detail_key) {
                details.add(&kind, key, row.detail_text, row.detail_number);
            }
            version.get_or_insert(row.version);
        }
        details.aliases.sort();
        if let Some(version) = version {
            return Ok((version, details));
        }
        self.model_row(model).await?;
        Err(match reference {
            VersionRef::Alias(alias) => Error::AliasNotFound {
                model: model.to_string(),
                alias: alias.to_string(),
            },
            _ => Error::VersionNotFound(format!("{model}@{reference}")),
        })
    }

    /// A version without its manifest (`files` is `None`).
    pub async fn get_version_summary(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<Version> {
        let (row, details) = self.resolve_version(model, reference).await?;
        version_from_row(model.to_string(), row, details)
    }

    /// A version without its manifest, and its MLflow-only state.
    pub async fn get_version_view(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<(Version, VersionExtras)> {
        let (row, details) = self.resolve_version(model, reference).await?;
        let extras = row.extras();
        Ok((version_from_row(model.to_string(), row, details)?, extras))
    }

    /// A version with its manifest.
    pub async fn get_version(&self, model: &ModelName, reference: &VersionRef) -> Result<Version> {
        let (row, details) = self.resolve_version(model, reference).await?;
        let version_id = row.id;
        let mut version = version_from_row(model.to_string(), row, details)?;
        let files: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT path, size, sha256 FROM version_files WHERE version_id = $1 ORDER BY path",
        )
        .bind(version_id)
        .fetch_all(&self.pool)
        .await?;
        version.files = Some(
            files
                .into_iter()
                .map(|(path, size, sha)| {
                    Ok(FileEntry {
                        path,
                        size: size as u64,
                        sha256: parse_digest(&sha)?,
                    })
                })
                .collect::<Result<_>>()?,
        );
        Ok(version)
    }

    /// The versions registered from each of the logged models `ids` (model name and
    /// number), oldest first. The reference is the version row's own `logged_model_id`,
    /// written in the version's transaction: nothing to keep in step elsewhere.
    pub async fn versions_from_logged_models(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<(String, u64)>>> {
        let mut out: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut q = SqlBuilder::new(
            self.backend,
            "SELECT v.logged_model_id, m.name, v.number FROM versions v
             JOIN models m ON m.id = v.model_id WHERE v.logged_model_id IN (",
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        list.push_unseparated(") ORDER BY v.id");
        let rows: Vec<(String, String, i64)> = self.read_rows(q).await?;
        for (id, model, number) in rows {
            out.entry(id).or_default().push((model, number as u64));
        }
        Ok(out)
    }

    pub async fn list_versions(&self, model: &ModelName) -> Result<Vec<Version>> {
        Ok(self
            .list_versions_view(model)
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .collect())
    }

    /// Every version of a model (without manifests) with its MLflow-only state.
    pub async fn list_versions_view(
        &self,
        model: &ModelName,
    ) -> Result<Vec<(Version, VersionExtras)>> {
        let model_id = self.model_row(model).await?.id;
        let rows = sqlx::query_as::<_, VersionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM versions v WHERE v.model_id = $1 ORDER BY v.number"
        )))
        .bind(model_id)
        .fetch_all(&self.pool)
        .await?;
        let extras: Vec<VersionExtras> = rows.iter().map(VersionRow::extras).collect();
        let versions = self.versions_from_rows(model, model_id, rows).await?;
        Ok(versions.into_iter().zip(extras).collect())
    }

    /// Versions matching MLflow-style comparisons (`name`, `run_id`, `source_path`,
    /// `version_number`, `tags.KEY`), in `order` (then name ascending, number
    /// descending), from `offset`, at most `limit`: filtered, sorted and paged in SQL.
    pub async fn search_versions(
        &self,
        filter: &[Comparison],
        order: &[OrderBy],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(Version, VersionExtras)>> {
        let mut q = SqlBuilder::new(
            self.backend,
            format!(
                "SELECT m.name, {VERSION_COLUMNS} FROM versions v JOIN models m ON m.id = v.model_id WHERE 1 = 1"
            ),
        );
        for c in filter {
            q.push(" AND ");
            push_version_condition(&mut q, self.backend, c)?;
        }
        push_order_and_page(
            &mut q,
            order,
            |key| match key {
                "name" => Some("m.name"),
                "version_number" => Some("v.number"),
                "creation_timestamp" => Some("v.created_at"),
                "last_updated_timestamp" => Some("v.updated_at"),
                _ => None,
            },
            "m.name ASC, v.number DESC",
            offset,
            limit,
        )?;
        let rows: Vec<NamedVersionRow> = q.build_query_as().fetch_all(&self.pool).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.version.id).collect();
        let mut details = self.version_details(&ids).await?;
        rows.into_iter()
            .map(|r| {
                let extras = r.version.extras();
                let model = r.name;
                let d = details.remove(&r.version.id).unwrap_or_default();
                Ok((version_from_row(model, r.version, d)?, extras))
            })
            .collect()
    }

    /// For each named model, its newest version in each MLflow stage, oldest first: what
    /// a registered model's `latest_versions` shows. Two queries for the whole page.
    pub async fn latest_versions_per_stage(
        &self,
        models: &[&str],
    ) -> Result<HashMap<String, Vec<(Version, VersionExtras)>>> {
        let mut out: HashMap<String, Vec<(Version, VersionExtras)>> = HashMap::new();
        if models.is_empty() {
            return Ok(out);
        }
        // Ids first: with a plain list of ids the planner reads the newest number per
        // (model, stage) from the indexes (a join with the names may scan every version).
        let mut q = SqlBuilder::new(self.backend, "SELECT id FROM models WHERE name IN (");
        let mut list = q.separated(", ");
        for name in models {
            list.push_bind(*name);
        }
        list.push_unseparated(")");
        let ids: Vec<i64> = q.build_query_scalar().fetch_all(&self.pool).await?;
        if ids.is_empty() {
            return Ok(out);
        }
        let mut q = SqlBuilder::new(
            self.backend,
            format!(
                "SELECT m.name, {VERSION_COLUMNS} FROM
               (SELECT s.model_id, MAX(s.number) AS number FROM versions s WHERE s.model_id IN ("
            ),
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        list.push_unseparated(
            ") GROUP BY s.model_id, s.stage) newest
             JOIN versions v ON v.model_id = newest.model_id AND v.number = newest.number
             JOIN models m ON m.id = v.model_id ORDER BY m.name, v.number",
        );
        let rows: Vec<NamedVersionRow> = q.build_query_as().fetch_all(&self.pool).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.version.id).collect();
        let mut details = self.version_details(&ids).await?;
        for r in rows {
            let extras = r.version.extras();
            let d = details.remove(&r.version.id).unwrap_or_default();
            let version = version_from_row(r.name.clone(), r.version, d)?;
            out.entry(r.name).or_default().push((version, extras));
        }
        Ok(out)
    }

    /// Tags, params, metrics and aliases of many versions: one query per chunk of ids.
    async fn version_details(&self, ids: &[i64]) -> Result<HashMap<i64, VersionDetails>> {
        /// Ids per query: well under both engines' bound-parameter limits.
        const IDS_PER_QUERY: usize = 5000;
        let mut out: HashMap<i64, VersionDetails> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            // One list of bound ids, used by all four branches.
            let mut q = SqlBuilder::new(self.backend, "WITH ids (id) AS (");
            q.push_values(chunk, |mut row, id| {
                row.push_bind(*id);
            });
            q.push(
                // Typed NULLs: PostgreSQL settles each column's type from the first branch.
                ") SELECT version_id, 't', key, value, CAST(NULL AS DOUBLE PRECISION) FROM version_tags WHERE version_id IN (SELECT id FROM ids)
                 UNION ALL SELECT version_id, 'p', key, value, NULL FROM version_params WHERE version_id IN (SELECT id FROM ids)
                 UNION ALL SELECT version_id, 'm', key, NULL, value FROM version_metrics WHERE version_id IN (SELECT id FROM ids)
                 UNION ALL SELECT version_id, 'a', alias, NULL, NULL FROM aliases WHERE version_id IN (SELECT id FROM ids)",
            );
            let rows: Vec<DetailRow> = q.build_query_as().fetch_all(&self.pool).await?;
            for (id, kind, key, text, number) in rows {
                out.entry(id).or_default().add(&kind, key, text, number);
            }
        }
        for d in out.values_mut() {
            d.aliases.sort();
        }
        Ok(out)
    }

    /// Completes all version rows of one model with aliases, metrics, params and tags.
    async fn versions_from_rows(
        &self,
        model: &ModelName,
        model_id: i64,
        rows: Vec<VersionRow>,
    ) -> Result<Vec<Version>> {
        let filter = "WHERE v.model_id = $1";
        let key_values = |table: &str| {
            sqlx::AssertSqlSafe(format!(
                "SELECT t.version_id, t.key, t.value FROM {table} t JOIN versions v ON v.id = t.version_id {filter}"
            ))
        };
        let tags: Vec<(i64, String, String)> = sqlx::query_as(key_values("version_tags"))
            .bind(model_id)
            .fetch_all(&self.pool)
            .await?;
        let params: Vec<(i64, String, String)> = sqlx::query_as(key_values("version_params"))
            .bind(model_id)
            .fetch_all(&self.pool)
            .await?;
        let metrics: Vec<(i64, String, f64)> = sqlx::query_as(key_values("version_metrics"))
            .bind(model_id)
            .fetch_all(&self.pool)
            .await?;
        let aliases: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT a.version_id, a.alias FROM aliases a JOIN versions v ON v.id = a.version_id {filter} ORDER BY a.alias"
        )))
        .bind(model_id)
        .fetch_all(&self.pool)
        .await?;

        let mut tags_by: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        for (id, k, v) in tags {
            tags_by.entry(id).or_default().insert(k, v);
        }
        let mut params_by: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        for (id, k, v) in params {
            params_by.entry(id).or_default().insert(k, v);
        }
        let mut metrics_by: HashMap<i64, BTreeMap<String, f64>> = HashMap::new();
        for (id, k, v) in metrics {
            metrics_by.entry(id).or_default().insert(k, v);
        }
        let mut aliases_by: HashMap<i64, Vec<String>> = HashMap::new();
        for (id, a) in aliases {
            aliases_by.entry(id).or_default().push(a);
        }
        rows.into_iter()
            .map(|r| {
                Ok(Version {
                    model: model.to_string(),
                    version: r.number as u64,
                    digest: parse_digest(&r.digest)?,
                    description: r.description,
                    file_count: r.file_count as u64,
                    size: r.size as u64,
                    files: None,
                    aliases: aliases_by.remove(&r.id).unwrap_or_default(),
                    metrics: metrics_by.remove(&r.id).unwrap_or_default(),
                    params: params_by.remove(&r.id).unwrap_or_default(),
                    tags: tags_by.remove(&r.id).unwrap_or_default(),
                    created_by: r.created_by,
                    created_at: time_of(r.created_at),
                })
            })
            .collect()
    }

    /// Deletes a version; aliases pointing at it are removed and the removal is recorded
    /// in their history.
    pub async fn delete_version(&self, model: &ModelName, number: u64, actor: &str) -> Result<()> {
        self.with_retries(|| self.delete_version_once(model, number, actor))
            .await
    }

    async fn delete_version_once(&self, model: &ModelName, number: u64, actor: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let model_id = lock_model(&mut tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let (version_id, digest): (i64, String) = tx
            .query("SELECT id, digest FROM versions WHERE model_id = $1 AND number = $2")
            .bind(model_id)
            .bind(number as i64)
            .fetch_optional()
            .await?
            .ok_or_else(|| Error::VersionNotFound(format!("{model}@{number}")))?;
        let now = now_ms();
        let aliases: Vec<String> = tx
            .query("SELECT alias FROM aliases WHERE version_id = $1 ORDER BY alias")
            .bind(version_id)
            .scalar_all()
            .await?;
        let removed_aliases = aliases.clone();
        for alias in aliases {
            tx.query("DELETE FROM aliases WHERE model_id = $1 AND alias = $2")
                .bind(model_id)
                .bind(&alias)
                .execute()
                .await?;
            record_move(
                &mut tx,
                model_id,
                &alias,
                Some(number as i64),
                None,
                AliasAction::VersionDeleted,
                actor,
                now,
                None,
            )
            .await?;
        }
        tx.query("DELETE FROM versions WHERE id = $1")
            .bind(version_id)
            .execute()
            .await?;
        tx.query("UPDATE models SET updated_at = $2 WHERE id = $1")
            .bind(model_id)
            .bind(now)
            .execute()
            .await?;
        audit::append(
            &mut tx,
            Change {
                actor,
                action: "version.delete".into(),
                model: model.as_str(),
                target: format!("{model}@{number}"),
                before: Some(json!({ "digest": digest, "aliases": removed_aliases })),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) a tag of a model (`number` `None`) or version.
    /// Writing what is already there changes nothing and records nothing.
    pub async fn set_tag(
        &self,
        model: &ModelName,
        number: Option<u64>,
        key: &str,
        value: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let model_id = lock_model(&mut tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let (table, owner_column, owner, what, target) = match number {
            Some(n) => (
                "version_tags",
                "version_id",
                version_in(&mut tx, model, model_id, n).await?,
                "version",
                format!("{model}@{n}"),
            ),
            None => (
                "model_tags",
                "model_id",
                model_id,
                "model",
                model.to_string(),
            ),
        };
        let old: Option<String> = tx
            .query(&format!(
                "SELECT value FROM {table} WHERE {owner_column} = $1 AND key = $2"
            ))
            .bind(owner)
            .bind(key)
            .scalar_optional()
            .await?;
        if old.as_deref() == value {
            return Ok(());
        }
        let sql = match value {
            Some(_) => format!(
                "INSERT INTO {table} ({owner_column}, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT ({owner_column}, key) DO UPDATE SET value = excluded.value"
            ),
            None => {
                format!("DELETE FROM {table} WHERE {owner_column} = $1 AND key = $2 AND $3 IS NULL")
            }
        };
        tx.query(&sql)
            .bind(owner)
            .bind(key)
            .bind(value)
            .execute()
            .await?;
        let verb = if value.is_some() { "set" } else { "delete" };
        audit::append(
            &mut tx,
            Change {
                actor,
                action: format!("{what}.tag.{verb}"),
                model: model.as_str(),
                target,
                before: old.map(|v| json!({ "key": key, "value": v })),
                after: value.map(|v| json!({ "key": key, "value": v })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets the description of a model (`number` `None`) or version.
    pub async fn set_description(
        &self,
        model: &ModelName,
        number: Option<u64>,
        description: &str,
        actor: &str,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let model_id = lock_model(&mut tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let (table, id, what, target) = match number {
            Some(n) => (
                "versions",
                version_in(&mut tx, model, model_id, n).await?,
                "version",
                format!("{model}@{n}"),
            ),
            None => ("models", model_id, "model", model.to_string()),
        };
        let old: String = tx
            .query(&format!("SELECT description FROM {table} WHERE id = $1"))
            .bind(id)
            .scalar_one()
            .await?;
        // No change, no write: every registry write is in the audit log, whose head
        // names the registry's state (cached reads rely on it).
        if old == description {
            return Ok(());
        }
        tx.query(&format!(
            "UPDATE {table} SET description = $2, updated_at = $3 WHERE id = $1"
        ))
        .bind(id)
        .bind(description)
        .bind(now)
        .execute()
        .await?;
        audit::append(
            &mut tx,
            Change {
                actor,
                action: format!("{what}.description"),
                model: model.as_str(),
                target,
                before: Some(json!({ "description": old })),
                after: Some(json!({ "description": description })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn rename_model(
        &self,
        model: &ModelName,
        new_name: &ModelName,
        actor: &str,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let id = lock_model(&mut tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let renamed = tx
            .query("UPDATE models SET name = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(new_name.as_str())
            .bind(now)
            .execute()
            .await;
        match renamed {
            Err(e) if e.is_unique_violation() => {
                return Err(Error::ModelExists(new_name.to_string()));
            }
            other => other?,
        };
        tx.query("UPDATE versions SET updated_at = $2 WHERE model_id = $1")
            .bind(id)
            .bind(now)
            .execute()
            .await?;
        audit::append(
            &mut tx,
            Change {
                actor,
                action: "model.rename".into(),
                model: new_name.as_str(),
                target: model.to_string(),
                before: Some(json!({ "name": model.as_str() })),
                after: Some(json!({ "name": new_name.as_str() })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves a version to an MLflow stage; with `archive_others`, versions in that stage
    /// move to Archived.
    pub async fn set_stage(
        &self,
        model: &ModelName,
        number: u64,
        stage: &str,
        archive_others: bool,
        actor: &str,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        // Serializes stage changes of one model, so "archive the others" sees them all.
        let model_id = lock_model(&mut tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let version_id = version_in(&mut tx, model, model_id, number).await?;
        let old: String = tx
            .query("SELECT stage FROM versions WHERE id = $1")
            .bind(version_id)
            .scalar_one()
            .await?;
        let mut archived: Vec<i64> = Vec::new();
        if archive_others && matches!(stage, "Staging" | "Production") {
            archived = tx
                .query(
                    "UPDATE versions SET stage = 'Archived', updated_at = $3
                 WHERE model_id = $1 AND stage = $2 AND id != $4 RETURNING number",
                )
                .bind(model_id)
                .bind(stage)
                .bind(now)
                .bind(version_id)
                .scalar_all()
                .await?;
            archived.sort_unstable();
        }
        tx.query("UPDATE versions SET stage = $2, updated_at = $3 WHERE id = $1")
            .bind(version_id)
            .bind(stage)
            .bind(now)
            .execute()
            .await?;
        tx.query("UPDATE models SET updated_at = $2 WHERE id = $1")
            .bind(model_id)
            .bind(now)
            .execute()
            .await?;
        audit::append(
            &mut tx,
            Change {
                actor,
                action: "version.stage".into(),
                model: model.as_str(),
                target: format!("{model}@{number}"),
                before: Some(json!({ "stage": old })),
                after: Some(json!({ "stage": stage, "archived": archived })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- aliases ----

    /// Points `alias` at `target` (or removes it when `None`) and records the move, in
    /// one transaction. Returns `None` when the alias already points there.
    pub async fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        target: AliasTarget,
        action: AliasAction,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        self.with_retries(|| self.move_alias_once(model, alias, target, action, actor, reason))
            .await
    }

    async fn move_alias_once(
        &self,
        model: &ModelName,
        alias: &AliasName,
        target: AliasTarget,
        action: AliasAction,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        let mut tx = self.write_tx().await?;
        let model_id = lock_model(&mut tx, model)
            .await?
            .ok_or_else(|| Error::ModelNotFound(model.to_string()))?;
        let current: Option<i64> = tx
            .query(
                "SELECT v.number FROM aliases a JOIN versions v ON v.id = a.version_id
             WHERE a.model_id = $1 AND a.alias = $2",
            )
            .bind(model_id)
            .bind(alias.as_str())
            .scalar_optional()
            .await?;

        let to = match target {
            AliasTarget::Version(n) => Some(n as i64),
            AliasTarget::Remove => {
                if current.is_none() {
                    return Err(Error::AliasNotFound {
                        model: model.to_string(),
                        alias: alias.to_string(),
                    });
                }
                None
            }
            AliasTarget::PreviousVersion => {
                let last: Option<(Option<i64>,)> = tx
                    .query(
                        "SELECT from_version FROM alias_moves WHERE model_id = $1 AND alias = $2
                     ORDER BY id DESC LIMIT 1",
                    )
                    .bind(model_id)
                    .bind(alias.as_str())
                    .fetch_optional()
                    .await?;
                match last {
                    None => {
                        return Err(Error::AliasNotFound {
                            model: model.to_string(),
                            alias: alias.to_string(),
                        });
                    }
                    Some((None,)) => {
                        return Err(Error::Conflict(format!(
                            "alias {alias:?} of model {model:?} has no earlier version to roll back to"
                        )));
                    }
                    Some((Some(previous),)) => Some(previous),
                }
            }
        };
        if to == current {
            return Ok(None);
        }

        let now = now_ms();
        match to {
            Some(number) => {
                let version_id: i64 = tx
                    .query("SELECT id FROM versions WHERE model_id = $1 AND number = $2")
                    .bind(model_id)
                    .bind(number)
                    .scalar_optional()
                    .await?
                    .ok_or_else(|| match target {
                        AliasTarget::PreviousVersion => Error::Conflict(format!(
                            "alias {alias:?} pointed at {model}@{number} before, which was deleted"
                        )),
                        _ => Error::VersionNotFound(format!("{model}@{number}")),
                    })?;
                tx.query(
                    "INSERT INTO aliases (model_id, alias, version_id) VALUES ($1, $2, $3)
                     ON CONFLICT (model_id, alias) DO UPDATE SET version_id = excluded.version_id",
                )
                .bind(model_id)
                .bind(alias.as_str())
                .bind(version_id)
                .execute()
                .await?;
            }
            None => {
                tx.query("DELETE FROM aliases WHERE model_id = $1 AND alias = $2")
                    .bind(model_id)
                    .bind(alias.as_str())
                    .execute()
                    .await?;
            }
        }
        record_move(
            &mut tx,
            model_id,
            alias.as_str(),
            current,
            to,
            action,
            actor,
            now,
            reason,
        )
        .await?;
        audit::append(
            &mut tx,
            Change {
                actor,
                action: format!("alias.{}", action.as_str()),
                model: model.as_str(),
                target: format!("{model}@{alias}"),
                before: current.map(|n| json!({ "version": n })),
                after: to.map(|n| json!({ "version": n, "reason": reason })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(AliasMove {
            alias: alias.to_string(),
            from: current.map(|n| n as u64),
            to: to.map(|n| n as u64),
            action,
            actor: actor.to_owned(),
            at: time_of(now),
            reason: reason.map(str::to_owned),
        }))
    }

    /// Every move of an alias, oldest first. `AliasNotFound` if it never existed.
    pub async fn alias_history(
        &self,
        model: &ModelName,
        alias: &AliasName,
    ) -> Result<Vec<AliasMove>> {
        let model_id = self.model_row(model).await?.id;
        let rows = sqlx::query_as::<_, MoveRow>(
            "SELECT alias, from_version, to_version, action, actor, at, reason FROM alias_moves
             WHERE model_id = $1 AND alias = $2 ORDER BY id",
        )
        .bind(model_id)
        .bind(alias.as_str())
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(Error::AliasNotFound {
                model: model.to_string(),
                alias: alias.to_string(),
            });
        }
        rows.into_iter().map(MoveRow::into_move).collect()
    }
}

/// Where an alias move goes.
#[derive(Debug, Clone, Copy)]
pub enum AliasTarget {
    Version(u64),
    /// Where the alias pointed before its last move (rollback).
    PreviousVersion,
    Remove,
}

#[allow(clippy::too_many_arguments)]
async fn record_move(
    tx: &mut WriteTx,
    model_id: i64,
    alias: &str,
    from: Option<i64>,
    to: Option<i64>,
    action: AliasAction,
    actor: &str,
    at: i64,
    reason: Option<&str>,
) -> Result<()> {
    tx.query(
        "INSERT INTO alias_moves (model_id, alias, from_version, to_version, action, actor, at, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(model_id)
    .bind(alias)
    .bind(from)
    .bind(to)
    .bind(action.as_str())
    .bind(actor)
    .bind(at)
    .bind(reason)
    .execute()
    .await?;
    Ok(())
}

async fn insert_key_values(
    tx: &mut WriteTx,
    table: &'static str,
    owner_column: &'static str,
    owner: i64,
    values: &BTreeMap<String, String>,
) -> Result<()> {
    let pairs: Vec<_> = values.iter().collect();
    for chunk in pairs.chunks(INSERT_CHUNK) {
        let mut q = SqlBuilder::new(
            tx.backend,
            format!("INSERT INTO {table} ({owner_column}, key, value) "),
        );
        q.push_values(chunk, |mut row, (k, v)| {
            row.push_bind(owner)
                .push_bind(k.as_str())
                .push_bind(v.as_str());
        });
        tx.sql(q).execute().await?;
    }
    Ok(())
}

/// A pool of connections to the SQLite file at `path`, created if missing.
async fn sqlite_pool(path: &Path, options: AnyPoolOptions) -> Result<AnyPool> {
    Ok(options
        // sqlx pings a connection each time the pool hands it out, to catch a lost
        // network peer; a SQLite connection has none, and the ping is one more round
        // trip to the connection's thread before every statement run on the pool.
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // In WAL mode NORMAL keeps every commit across a process crash; only an
                // OS crash can lose the last transactions, never corrupt the database.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 60000;",
                )
                .await?;
                Ok(())
            })
        })
        .connect(&sqlite_url(path))
        .await?)
}

/// The `sqlite://` URL sqlx's `Any` driver opens (created if missing), with the file
/// name percent-encoded by sqlx itself.
fn sqlite_url(path: &Path) -> String {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .to_url_lossy()
        .to_string()
}

/// SQLite gives sqlx's migrator no lock: two processes opening a fresh registry at once
/// would both create the tables. A lock file next to the database serializes them.
async fn migrate_sqlite(pool: &AnyPool, path: &Path) -> Result<()> {
    let lock_path = path.with_extension("db.migrate-lock");
    let lock = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    let migrated = SQLITE_MIGRATIONS.run(pool).await;
    drop(lock);
    Ok(migrated?)
}

/// A connection to `location` with the migrations applied up to, not including, the one
/// described as `description` (its file name without the number): for tests of what a
/// migration does to data written under the schema before it.
#[cfg(test)]
pub(crate) async fn connect_before_migration(
    location: &DbLocation,
    description: &str,
) -> sqlx::AnyConnection {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let (url, migrator) = match location {
        DbLocation::Sqlite(path) => (sqlite_url(path), &SQLITE_MIGRATIONS),
        DbLocation::Postgres(url) => (url.clone(), &POSTGRES_MIGRATIONS),
    };
    let version = migrator
        .iter()
        .find(|m| m.description == description)
        .unwrap_or_else(|| panic!("no migration {description:?}"))
        .version;
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    migrator.run_to(version - 1, &mut conn).await.unwrap();
    conn
}

/// Locks the model's row until the transaction ends and returns its id (`None` if
/// there is no such model). An UPDATE takes the row lock on every engine (SQLite has no
/// `FOR UPDATE`; its `BEGIN IMMEDIATE` already serializes writers): concurrent writers
/// to one model — on any server — queue here, so what they read next is current.
pub(crate) async fn lock_model(tx: &mut WriteTx, name: &ModelName) -> Result<Option<i64>> {
    tx.query("UPDATE models SET next_version = next_version WHERE name = $1 RETURNING id")
        .bind(name.as_str())
        .scalar_optional()
        .await
}

/// One MLflow registered-model filter comparison as SQL over `models m`.
fn push_model_condition(q: &mut SqlBuilder, backend: Backend, c: &Comparison) -> Result<()> {
    match (c.kind, c.key.as_str()) {
        (EntityKind::Attribute, "name") => match c.op {
            Op::IsNull => q.push("1 = 0"),
            Op::IsNotNull => q.push("1 = 1"),
            _ => {
                crate::tracking::push_string_comparison(
                    q, backend, "m.name", c.op, &c.value, "name",
                )?;
                q
            }
        },
        (EntityKind::Tag, key) => {
            push_tag_condition(q, backend, "model_tags t WHERE t.model_id = m.id", key, c)?;
            q
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "Invalid attribute key '{}' specified. Valid keys are '{{'name'}}'",
                c.key
            )));
        }
    };
    Ok(())
}

/// One MLflow model-version filter comparison as SQL over `versions v JOIN models m`.
fn push_version_condition(q: &mut SqlBuilder, backend: Backend, c: &Comparison) -> Result<()> {
    use cairn_core::search::Value;
    let string_column = match (c.kind, c.key.as_str()) {
        (EntityKind::Attribute, "name") => Some("m.name"),
        (EntityKind::Attribute, "run_id") => Some("v.run_id"),
        (EntityKind::Attribute, "source_path") => Some("v.source"),
        _ => None,
    };
    if let Some(column) = string_column {
        match c.op {
            Op::IsNull => q.push("1 = 0"),
            Op::IsNotNull => q.push("1 = 1"),
            _ => {
                crate::tracking::push_string_comparison(
                    q, backend, column, c.op, &c.value, &c.key,
                )?;
                q
            }
        };
        return Ok(());
    }
    match (c.kind, c.key.as_str()) {
        (EntityKind::Attribute, "version_number") => {
            let number = match &c.value {
                Value::Num(n) => Some(*n),
                Value::Str(s) => s.parse::<f64>().ok(),
                _ => None,
            };
            match (number, c.op) {
                (Some(n), Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) => {
                    q.push(format!("v.number {} ", c.op.sql())).push_bind(n);
                }
                // As MLflow: a version number compared with a non-number matches nothing.
                _ => {
                    q.push("1 = 0");
                }
            }
        }
        (EntityKind::Tag, key) => {
            push_tag_condition(
                q,
                backend,
                "version_tags t WHERE t.version_id = v.id",
                key,
                c,
            )?;
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "Invalid attribute key '{}' specified. Valid keys are '{{'name', 'run_id', 'source_path', 'version_number'}}'",
                c.key
            )));
        }
    }
    Ok(())
}

/// The id of version `number` of the (locked) model `model_id`.
async fn version_in(
    tx: &mut WriteTx,
    model: &ModelName,
    model_id: i64,
    number: u64,
) -> Result<i64> {
    tx.query("SELECT id FROM versions WHERE model_id = $1 AND number = $2")
        .bind(model_id)
        .bind(number as i64)
        .scalar_optional()
        .await?
        .ok_or_else(|| Error::VersionNotFound(format!("{model}@{number}")))
}

/// ` ORDER BY <clauses>, <tiebreak> LIMIT … OFFSET …` for a search: each clause's key
/// mapped to its column by `column_of` (unknown keys are refused).
fn push_order_and_page(
    q: &mut SqlBuilder,
    order: &[OrderBy],
    column_of: impl Fn(&str) -> Option<&'static str>,
    tiebreak: &str,
    offset: usize,
    limit: usize,
) -> Result<()> {
    q.push(" ORDER BY ");
    for o in order {
        let column = column_of(&o.key).ok_or_else(|| {
            Error::InvalidArgument(format!("Invalid order by key '{}' specified.", o.key))
        })?;
        q.push(format!(
            "{column} {}, ",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    q.push(tiebreak).push_limit(limit as u64, offset as u64);
    Ok(())
}

/// A `tags.KEY` comparison as an EXISTS over `tags` (the tag table joined to its owner,
/// `… t WHERE t.owner = outer.id`). A model or version without the tag matches no
/// comparison but IS NULL — except `!= 'true'` on `mlflow.prompt.is_prompt`, which
/// clients add to every search to hide prompts: it keeps everything not a prompt.
fn push_tag_condition(
    q: &mut SqlBuilder,
    backend: Backend,
    tags: &str,
    key: &str,
    c: &Comparison,
) -> Result<()> {
    let (exists, op) = match c.op {
        Op::Ne if key == "mlflow.prompt.is_prompt" => ("NOT EXISTS", Some(Op::Eq)),
        Op::IsNull => ("NOT EXISTS", None),
        Op::IsNotNull => ("EXISTS", None),
        op => ("EXISTS", Some(op)),
    };
    q.push(format!("{exists} (SELECT 1 FROM {tags} AND t.key = "))
        .push_bind(key.to_owned());
    if let Some(op) = op {
        q.push(" AND ");
        crate::tracking::push_string_comparison(q, backend, "t.value", op, &c.value, key)?;
    }
    q.push(")");
    Ok(())
}
