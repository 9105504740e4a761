//! `cairn copy`: one registry into another — SQLite + local disk to PostgreSQL + S3 and
//! back — without losing a version.
//!
//! Blobs go first, each re-hashed on arrival (a corrupt source blob stops the copy),
//! and are made durable; then every metadata table is copied row for row, keeping ids,
//! in one transaction on the target, so a reader of the target sees all of the copy or
//! none of it, and never a version whose bytes are missing. Rows are upserted by primary
//! key and only rows that differ are written: a second copy of an unchanged source
//! changes nothing. A copy adds and updates; it never deletes from the target. A target
//! that grew its own history (another model under the same name, another version under
//! the same number, its own audit entries) is refused, not merged. The audit log is
//! copied entry for entry, so the target's chain verifies and its head equals the
//! source's.

use std::collections::BTreeMap;

use cairn_core::Sha256Digest;
use futures::{StreamExt, TryStreamExt};

use crate::db::Backend;
use crate::db::sql::{Cell, Columns, Decode, DecodeError, SqlBuilder, decoded_row};
use crate::db::write::WriteTx;
use crate::gc::claim_blobs;
use crate::{Error, Registry, Result};

/// Each table in foreign-key order with its primary key (`run_metrics` is keyed by all
/// of its columns: a value is new unless an identical one exists). `run_latest_metrics`
/// is not copied (the target's trigger derives it from `run_metrics`), nor are uploads
/// in flight.
const TABLES: &[(&str, &[&str])] = &[
    ("principals", &["name"]),
    ("tokens", &["id"]),
    ("grants", &["principal", "resource"]),
    ("models", &["id"]),
    ("model_tags", &["model_id", "key"]),
    ("versions", &["id"]),
    ("version_files", &["version_id", "path"]),
    ("version_tags", &["version_id", "key"]),
    ("version_metrics", &["version_id", "key"]),
    ("version_params", &["version_id", "key"]),
    ("version_code", &["version_id"]),
    ("version_inputs", &["version_id", "kind", "path", "digest"]),
    (
        "version_parents",
        &["version_id", "parent_model", "parent_version"],
    ),
    ("version_environment", &["version_id", "path"]),
    ("aliases", &["model_id", "alias"]),
    ("alias_moves", &["id"]),
    ("protected_aliases", &["model_id", "alias"]),
    ("alias_policies", &["models", "alias"]),
    ("version_approvals", &["version_id", "alias", "actor"]),
    ("experiments", &["id"]),
    ("experiment_tags", &["experiment_id", "key"]),
    ("runs", &["id"]),
    ("run_params", &["run_id", "key"]),
    ("run_tags", &["run_id", "key"]),
    (
        "run_metrics",
        &["run_id", "key", "timestamp", "step", "value", "is_nan"],
    ),
    ("run_inputs", &["run_id", "name", "digest"]),
    ("logged_models", &["id"]),
    ("logged_model_tags", &["model_id", "key"]),
    ("logged_model_params", &["model_id", "key"]),
    (
        "logged_model_metrics",
        &["model_id", "key", "timestamp", "step", "run_id"],
    ),
    ("run_outputs", &["run_id", "model_id"]),
    ("run_model_inputs", &["run_id", "model_id"]),
    ("artifacts", &["path"]),
    ("audit_log", &["seq"]),
    ("audit_head", &["id"]),
];

/// Tables `copy` leaves out, each for a reason: the schema's own bookkeeping
/// (`_sqlx_migrations`), what the target derives (`run_latest_metrics`), uploads in
/// flight, each registry's own garbage-collection state (its tombstones describe its
/// own blob store), its own security log of refused requests, the idempotency keys of
/// requests it answered and the marks of its commits, and its webhooks (their
/// secrets are encrypted under the source registry's key; their deliveries are the
/// source's log). A test checks that every table of the schema is in one list
/// or the other.
#[cfg(test)]
const NOT_COPIED: &[&str] = &[
    "_sqlx_migrations",
    "run_latest_metrics",
    "artifact_uploads",
    "artifact_upload_parts",
    "blob_tombstones",
    "gc_state",
    "access_denials",
    "webhooks",
    "webhook_deliveries",
    "webhook_delivered",
    "idempotency_keys",
    "commit_marks",
];

/// Columns that never change once a row with a generated id exists. The same id with
/// other values here means the target made its own row under that id: the registries
/// diverged. (Every other table is keyed by these ids, by random ids or by paths.)
fn identity_columns(table: &str) -> &'static [&'static str] {
    match table {
        "models" => &["created_at", "created_by"],
        "versions" => &["model_id", "number", "digest", "created_at"],
        "alias_moves" => &["model_id", "alias", "at"],
        "experiments" => &["creation_time"],
        "audit_log" => &["hash"],
        _ => &[],
    }
}

/// Experiment 0, "Default", is created by every registry's first migration: the same
/// experiment everywhere, whatever its creation time.
const DEFAULT_EXPERIMENT: i64 = 0;

/// Tables whose `id` PostgreSQL generates: their sequences move past copied ids.
const GENERATED_IDS: &[&str] = &["models", "versions", "alias_moves", "experiments"];

/// Bound values per INSERT: under SQLite's 32,766 and PostgreSQL's 65,535.
const BINDS_PER_INSERT: usize = 30_000;
/// Rows read from the source per round trip (a few in tests, so that they page through
/// every table).
const COPY_PAGE: u64 = if cfg!(test) { 3 } else { 5_000 };
/// Blobs copied at once.
const BLOB_CONCURRENCY: usize = 4;

/// What a copy wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Blobs the target lacked, now copied and verified.
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Rows inserted or changed, per table (tables with none are left out).
    pub rows: BTreeMap<&'static str, u64>,
}

impl CopyReport {
    pub fn is_empty(&self) -> bool {
        self.blobs == 0 && self.rows.is_empty()
    }
}

/// A target row's id and identity columns, as `check_identity` selects them.
struct IdentityRow {
    id: i64,
    cells: Vec<Cell>,
}

impl Decode for IdentityRow {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        let id = c.next()?;
        let cells = (1..c.count())
            .map(|_| c.next_cell())
            .collect::<std::result::Result<_, _>>()?;
        Ok(Self { id, cells })
    }
}
decoded_row!(IdentityRow);

/// A row of any table: its column names and values.
struct GenericRow {
    columns: Vec<String>,
    cells: Vec<Cell>,
}

impl Decode for GenericRow {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        let columns = (0..c.count()).map(|i| c.name(i)).collect();
        let cells = (0..c.count())
            .map(|_| c.next_cell())
            .collect::<std::result::Result<_, _>>()?;
        Ok(Self { columns, cells })
    }
}
decoded_row!(GenericRow);

impl Registry {
    /// Copies this registry into `target` (see the module documentation).
    pub async fn copy_into(&self, target: &Registry) -> Result<CopyReport> {
        let mut report = CopyReport::default();
        let epoch = target.meta.gc_epoch().await?;
        let digests = self.copy_blobs(target, &mut report).await?;

        let mut tx = target.meta.write_tx().await?;
        // Fenced against a collection on the target; a blob it had collected is stored
        // again now.
        claim_blobs(&mut tx, &digests, Some(epoch)).await?;
        for (table, key) in TABLES {
            let written = copy_table(self, &mut tx, table, key).await?;
            if written > 0 {
                report.rows.insert(table, written);
            }
        }
        if target.meta.backend() == Backend::Postgres {
            for table in GENERATED_IDS {
                tx.query(&format!(
                    // The next generated id follows the largest in the table (1 if none).
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(m, 1), m >= 1)
                     FROM (SELECT COALESCE(MAX(id), 0) AS m FROM {table}) AS current_max"
                ))
                .execute()
                .await?;
            }
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Copies the blobs the target lacks; returns every blob the source references.
    async fn copy_blobs(
        &self,
        target: &Registry,
        report: &mut CopyReport,
    ) -> Result<Vec<Sha256Digest>> {
        let referenced: Vec<(String, i64)> = self
            .meta
            .read(
                "SELECT sha256, size FROM version_files UNION SELECT sha256, size FROM version_environment
                 UNION SELECT sha256, size FROM artifacts",
            )
            .fetch_all()
            .await?;
        let mut sizes = BTreeMap::new();
        for (hex, size) in referenced {
            let digest: Sha256Digest = hex.parse().map_err(|_| {
                Error::Database(sqlx::Error::Decode(
                    format!("unreadable digest {hex:?} in the source").into(),
                ))
            })?;
            sizes.insert(digest, size as u64);
        }
        let digests: Vec<Sha256Digest> = sizes.keys().copied().collect();
        let missing = target.missing_blobs(&digests).await?;
        let copied: Vec<u64> = futures::stream::iter(missing.clone())
            .map(|digest| async move {
                let read = self
                    .blobs
                    .read(&digest)
                    .await?
                    .ok_or(Error::BlobNotFound(digest))?;
                // put_stream re-hashes every byte: a corrupt source blob fails the copy.
                target.blobs.put_stream(&digest, read.stream).await
            })
            .buffer_unordered(BLOB_CONCURRENCY)
            .try_collect()
            .await?;
        // Every blob the copied rows reference, not only the copied ones: one the target
        // held already may be a staged upload nothing has synced yet, and a registration
        // counts a referenced blob as durable (`MetadataStore::recorded_sizes`).
        target.blobs.make_durable(&digests).await?;
        report.blobs = copied.len() as u64;
        report.blob_bytes = copied.iter().sum();
        Ok(digests)
    }
}

/// Copies one table's rows into the target transaction, a page at a time in key order
/// (memory stays within a page whatever the table's size); returns how many it wrote.
async fn copy_table(source: &Registry, tx: &mut WriteTx, table: &str, key: &[&str]) -> Result<u64> {
    let mut written = 0;
    // The key of the last row read: the next page starts after it.
    let mut after: Option<Vec<Cell>> = None;
    loop {
        let mut q = SqlBuilder::new(source.meta.backend(), format!("SELECT * FROM {table}"));
        if let Some(last) = &after {
            q.push(format!(" WHERE ({}) > (", key.join(", ")));
            let mut values = q.separated(", ");
            for cell in last {
                match cell {
                    Cell::Int(v) => values.push_bind(*v),
                    Cell::Real(v) => values.push_bind(*v),
                    Cell::Text(v) => values.push_bind(v.clone()),
                };
            }
            values.push_unseparated(")");
        }
        q.push(format!(" ORDER BY {}", key.join(", ")));
        q.push_limit(COPY_PAGE, 0);
        let rows: Vec<GenericRow> = source.meta.read_sql(q).fetch_all().await?;
        let Some(last) = rows.last() else {
            break;
        };
        let columns = last.columns.clone();
        let key_at: Vec<usize> = key
            .iter()
            .map(|k| {
                columns
                    .iter()
                    .position(|c| c == k)
                    .expect("a table's key columns are its columns")
            })
            .collect();
        after = Some(key_at.iter().map(|&i| last.cells[i].clone()).collect());
        let full = rows.len() as u64 == COPY_PAGE;
        let per_insert = (BINDS_PER_INSERT / columns.len()).max(1);
        let mut cells: Vec<Vec<Cell>> = rows.into_iter().map(|r| r.cells).collect();
        while !cells.is_empty() {
            let rest = cells.split_off(per_insert.min(cells.len()));
            written += write_rows(
                tx,
                table,
                key,
                &columns,
                std::mem::replace(&mut cells, rest),
            )
            .await?;
        }
        if !full {
            break;
        }
    }
    Ok(written)
}

async fn write_rows(
    tx: &mut WriteTx,
    table: &str,
    key: &[&str],
    columns: &[String],
    rows: Vec<Vec<Cell>>,
) -> Result<u64> {
    check_identity(tx, table, key, columns, &rows).await?;
    let list = columns.join(", ");
    let mut q = SqlBuilder::new(tx.backend, format!("INSERT INTO {table} ({list}) "));
    q.push_values(rows, |mut row, cells| {
        for c in cells {
            match c {
                Cell::Int(v) => row.push_bind(v),
                Cell::Real(v) => row.push_bind(v),
                Cell::Text(v) => row.push_bind(v),
            };
        }
    });
    let others: Vec<&String> = columns
        .iter()
        .filter(|c| !key.contains(&c.as_str()))
        .collect();
    q.push(format!(" ON CONFLICT ({}) ", key.join(", ")));
    if others.is_empty() {
        q.push("DO NOTHING");
    } else {
        let set: Vec<String> = others
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let differs: Vec<String> = others
            .iter()
            .map(|c| format!("{table}.{c} IS DISTINCT FROM excluded.{c}"))
            .collect();
        q.push(format!(
            "DO UPDATE SET {} WHERE {}",
            set.join(", "),
            differs.join(" OR ")
        ));
    }
    match tx.sql(q).execute().await {
        Err(e) if e.is_unique_violation() => Err(diverged(table, &e.to_string())),
        written => written,
    }
}

fn diverged(table: &str, detail: &str) -> Error {
    Error::Conflict(format!(
        "the target registry has its own history that differs from the source ({table}: {detail}); \
         copy adds and updates rows but does not merge diverged registries"
    ))
}

/// Refuses rows whose id the target already uses for a different row.
async fn check_identity(
    tx: &mut WriteTx,
    table: &str,
    key: &[&str],
    columns: &[String],
    rows: &[Vec<Cell>],
) -> Result<()> {
    let identity = identity_columns(table);
    if identity.is_empty() {
        return Ok(());
    }
    let position = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .expect("identity columns are columns of their table")
    };
    let [id_column] = key else {
        unreachable!("identity checks are for tables keyed by one column")
    };
    let id_at = position(id_column);
    let identity_at: Vec<usize> = identity.iter().map(|c| position(c)).collect();
    let mut by_id = std::collections::HashMap::new();
    for row in rows {
        if let Cell::Int(Some(id)) = row[id_at]
            && !(table == "experiments" && id == DEFAULT_EXPERIMENT)
        {
            by_id.insert(
                id,
                identity_at
                    .iter()
                    .map(|&i| row[i].clone())
                    .collect::<Vec<_>>(),
            );
        }
    }
    if by_id.is_empty() {
        return Ok(());
    }
    let mut q = SqlBuilder::new(
        tx.backend,
        format!(
            "SELECT {id_column}, {} FROM {table} WHERE {id_column} IN (",
            identity.join(", ")
        ),
    );
    let mut ids = q.separated(", ");
    for id in by_id.keys() {
        ids.push_bind(*id);
    }
    ids.push_unseparated(")");
    let existing: Vec<IdentityRow> = tx.sql(q).fetch_all().await?;
    for IdentityRow { id, cells: theirs } in existing {
        if by_id.get(&id) != Some(&theirs) {
            return Err(diverged(
                table,
                &format!("id {id} is a different row in the target"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{NOT_COPIED, TABLES};
    use crate::db::Backend;
    use crate::test_support::{conformance, registry};

    /// A table added by a migration must be copied, or listed with its reason.
    async fn every_table_is_copied_or_left_out_on_purpose() {
        let (_dir, r) = registry().await;
        let sql = match r.meta.backend() {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
            Backend::Postgres => {
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            }
        };
        let mut schema: Vec<String> = r.meta.read(sql).scalar_all().await.unwrap();
        schema.sort();
        let mut listed: Vec<String> = TABLES
            .iter()
            .map(|(t, _)| *t)
            .chain(NOT_COPIED.iter().copied())
            .map(str::to_owned)
            .collect();
        listed.sort();
        assert_eq!(schema, listed);
    }

    conformance!(every_table_is_copied_or_left_out_on_purpose);
}
