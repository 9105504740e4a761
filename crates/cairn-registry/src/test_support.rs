//! The conformance fixture: every store test runs twice, on SQLite and on PostgreSQL,
//! against real databases. [`conformance!`] turns a list of `async fn` tests into one
//! test per backend; [`registry`] opens a fresh registry on the backend the running test
//! was generated for.
//!
//! PostgreSQL tests run when `CAIRN_TEST_POSTGRES` names a server (the test command sets
//! it: CI runs every store test on both engines); without it they pass at once, saying
//! so, so that `cargo test` works on a machine without PostgreSQL. Each test gets its own
//! schema, dropped when the fixture is.

use std::path::Path;

use sqlx::Connection;

use crate::db::{Backend, DbLocation, DbOptions};
use crate::{BlobLocation, Registry};

tokio::task_local! {
    static BACKEND: Backend;
}

/// Runs a test body with `backend` as the one [`registry`] opens.
pub async fn on<F: Future<Output = ()>>(backend: Backend, test: F) {
    if matches!(backend, Backend::Postgres) && std::env::var_os(POSTGRES_VAR).is_none() {
        eprintln!("not run: set {POSTGRES_VAR} to a PostgreSQL URL to run this test on PostgreSQL");
        return;
    }
    BACKEND.scope(backend, test).await;
}

/// The PostgreSQL server the conformance tests create their schemas on.
const POSTGRES_VAR: &str = "CAIRN_TEST_POSTGRES";

fn postgres_url() -> String {
    std::env::var(POSTGRES_VAR).expect("checked by `on` before any PostgreSQL test runs")
}

/// A test's storage: a temporary directory (blobs, and the SQLite file) and, on
/// PostgreSQL, a schema of its own.
pub struct Fixture {
    dir: tempfile::TempDir,
    db: DbLocation,
    schema: Option<String>,
}

impl Fixture {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db(&self) -> &DbLocation {
        &self.db
    }

    /// Another registry on the same database and blobs, with its own connection pool:
    /// what a second server process sees.
    pub async fn open_again(&self) -> Registry {
        Registry::open(
            &self.db,
            &BlobLocation::Local(self.dir.path().to_path_buf()),
            &DbOptions::default(),
        )
        .await
        .expect("reopen the test registry")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        // Drop runs outside async code: a short-lived runtime on its own thread.
        let url = postgres_url();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut conn)
                .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop a test schema");
        }
    }
}

/// A fresh, empty registry on the current test's backend (SQLite outside [`on`]).
pub async fn registry() -> (Fixture, Registry) {
    let fixture = empty_storage().await;
    let registry = fixture.open_again().await;
    (fixture, registry)
}

/// The storage of `registry()` before any registry opened it: an empty database.
pub async fn empty_storage() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let backend = BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite);
    let (db, schema) = match backend {
        Backend::Sqlite => (DbLocation::Sqlite(dir.path().join("cairn.db")), None),
        Backend::Postgres => {
            let schema = format!("cairn_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&postgres_url())
                .await
                .expect("PostgreSQL for the conformance tests (CAIRN_TEST_POSTGRES)");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let url = format!("{}?options[search_path]={schema}", postgres_url());
            (DbLocation::Postgres(url), Some(schema))
        }
    };
    Fixture { dir, db, schema }
}

/// One `#[tokio::test]` per backend for each listed `async fn` of the calling module:
/// `on_sqlite::NAME` and `on_postgres::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::test_support::on($crate::Backend::Sqlite, super::$name()).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::test_support::on($crate::Backend::Postgres, super::$name()).await
                }
            )*
        }
    };
}
pub(crate) use conformance;
