//! SQLite migrations on rusqlite, the driver every other SQLite statement runs on.
//!
//! The migrations are the ones `sqlx::migrate!` embeds (files, versions, checksums), and
//! the bookkeeping is sqlx's own: the `_sqlx_migrations` table with the same columns and
//! rules (each migration and its row in one transaction; a failed one leaves the database
//! dirty; a changed file or an applied migration this build does not know is refused).
//! So a registry created by any earlier build opens unchanged, and sqlx's migrator would
//! read this one's bookkeeping as its own.

use std::collections::HashMap;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use sqlx::migrate::{MigrateError, Migrator};

use crate::Result;

const TABLE: &str = "_sqlx_migrations";

/// Brings the database behind `conn` up to date with `migrator`'s migrations (with
/// `target`, up to that version only).
pub(crate) fn run(conn: &mut Connection, migrator: &Migrator, target: Option<i64>) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        )"
    ))?;
    let dirty: Option<i64> = conn
        .query_row(
            &format!("SELECT version FROM {TABLE} WHERE success = false ORDER BY version LIMIT 1"),
            [],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(version) = dirty {
        return Err(MigrateError::Dirty(version).into());
    }
    let applied: HashMap<i64, Vec<u8>> = conn
        .prepare(&format!(
            "SELECT version, checksum FROM {TABLE} ORDER BY version"
        ))?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // An applied migration this build does not have: a newer build wrote this database.
    if let Some(version) = applied
        .keys()
        .find(|v| !migrator.iter().any(|m| m.version == **v))
    {
        return Err(MigrateError::VersionMissing(*version).into());
    }
    for migration in migrator.iter() {
        if target.is_some_and(|target| migration.version > target) {
            break;
        }
        if migration.migration_type.is_down_migration() {
            continue;
        }
        if let Some(checksum) = applied.get(&migration.version) {
            if checksum.as_slice() != &*migration.checksum {
                return Err(MigrateError::VersionMismatch(migration.version).into());
            }
            continue;
        }
        let started = Instant::now();
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql.as_str())?;
        tx.execute(
            &format!(
                "INSERT INTO {TABLE} (version, description, success, checksum, execution_time)
                 VALUES (?1, ?2, TRUE, ?3, -1)"
            ),
            params![
                migration.version,
                &*migration.description,
                &*migration.checksum
            ],
        )?;
        tx.commit()?;
        conn.execute(
            &format!("UPDATE {TABLE} SET execution_time = ?1 WHERE version = ?2"),
            params![started.elapsed().as_nanos() as i64, migration.version],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::db::{DbLocation, DbOptions, MetadataStore, SQLITE_MIGRATIONS};

    async fn migrations_table(path: &std::path::Path) -> Vec<(i64, Vec<u8>)> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// A registry made by the build of 458684e (sqlx's SQLite migrator, migrations 1 to
    /// 10; two versions of `fixture`, `production` moved twice: `cairn push` and
    /// `cairn promote` of that build, then checkpointed into one file) opens and
    /// migrates here, its bookkeeping continued, its rows and audit chain intact.
    #[tokio::test]
    async fn opens_a_registry_an_earlier_build_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.db");
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/registry-458684e.db"),
            &path,
        )
        .unwrap();
        let before = migrations_table(&path).await;
        assert_eq!(before.len(), 10);
        let store = MetadataStore::open(&DbLocation::Sqlite(path.clone()), &DbOptions::default())
            .await
            .unwrap();
        let applied = migrations_table(&path).await;
        let expected: Vec<(i64, Vec<u8>)> = SQLITE_MIGRATIONS
            .iter()
            .map(|m| (m.version, m.checksum.to_vec()))
            .collect();
        assert_eq!(applied, expected, "sqlx's rows kept, the new ones alike");
        let model = cairn_core::ModelName::new("fixture").unwrap();
        let versions = store.list_versions(&model).await.unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[1].aliases, ["production"]);
        assert!(store.verify_audit(None).await.unwrap().ok());
    }

    /// A changed migration file, or a database a newer build migrated, is refused.
    #[tokio::test]
    async fn refuses_changed_and_unknown_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.db");
        let location = DbLocation::Sqlite(path.clone());
        MetadataStore::open(&location, &DbOptions::default())
            .await
            .unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1",
            [],
        )
        .unwrap();
        let err = MetadataStore::open(&location, &DbOptions::default())
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("was previously applied but has been modified"),
            "{err}"
        );

        let checksum = SQLITE_MIGRATIONS.iter().next().unwrap().checksum.to_vec();
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = ?1 WHERE version = 1",
            [checksum],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'from the future', TRUE, x'00', 0)",
            [],
        )
        .unwrap();
        let err = MetadataStore::open(&location, &DbOptions::default())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("9999"), "{err}");
    }
}
