//! Planner statistics kept fresh on PostgreSQL. The planner picks a search's plan from
//! its estimate of how many rows a table holds and how they spread; a table loaded a
//! minute ago still carries the estimate of the empty one until autovacuum gets to it,
//! and a run search on 10,000 fresh runs then sorts them all for a page of 100 (a
//! tenth of its speed). The server looks every few seconds at the tables searches read
//! and analyzes those that changed by a tenth since their last analysis: what
//! autovacuum would do, on a shorter fuse. SQLite needs none of this: its searches
//! choose their plan themselves (`tracking::run_search`).

use super::{Backend, MetadataStore};
use crate::Result;

/// The tables whose statistics decide search plans.
const SEARCHED_TABLES: [&str; 7] = [
    "runs",
    "run_latest_metrics",
    "run_params",
    "run_tags",
    "versions",
    "version_tags",
    "models",
];

/// Rows that must change before a table is analyzed again, besides a tenth of its rows.
const CHANGED_ROWS_MIN: i64 = 500;

/// Any value, shared by every server of a registry: one of them analyzes at a time.
const ANALYZE_LOCK: i64 = 0x6361_6972_6e41_4e41;

impl MetadataStore {
    /// Analyzes the searched tables that changed enough since their last analysis (on
    /// PostgreSQL; nothing on SQLite); answers their names.
    pub(crate) async fn refresh_statistics(&self) -> Result<Vec<String>> {
        if self.backend() != Backend::Postgres {
            return Ok(Vec::new());
        }
        let searched = SEARCHED_TABLES
            .iter()
            .map(|t| format!("'{t}'::regclass"))
            .collect::<Vec<_>>()
            .join(", ");
        let tables: Vec<String> = self
            .read(&format!(
                "SELECT relname::text FROM pg_stat_user_tables
                 WHERE relid IN ({searched}) AND n_mod_since_analyze > $1 + n_live_tup / 10"
            ))
            .bind(CHANGED_ROWS_MIN)
            .scalar_all()
            .await?;
        if tables.is_empty() {
            return Ok(tables);
        }
        let mut tx = self.write_tx().await?;
        let ours: bool = tx
            .query("SELECT pg_try_advisory_xact_lock($1)")
            .bind(ANALYZE_LOCK)
            .scalar_one()
            .await?;
        if !ours {
            return Ok(Vec::new());
        }
        for table in &tables {
            // Names from the fixed list above, never from input.
            if SEARCHED_TABLES.contains(&table.as_str()) {
                tx.query(&format!("ANALYZE {table}")).execute().await?;
            }
        }
        tx.commit().await?;
        Ok(tables)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::test_support::{on, registry};

    /// A table loaded with runs is analyzed on the next look, once the load's counts
    /// reached the statistics (PostgreSQL reports them within a second or so), and not
    /// again until it changes by another tenth.
    async fn a_loaded_table_is_analyzed_once() {
        let (_dir, r) = registry().await;
        let t = r.tracking();
        for i in 0..700 {
            t.create_run(0, "u", i, None, &BTreeMap::new())
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let analyzed = loop {
            let tables = r.refresh_statistics().await.unwrap();
            if tables.iter().any(|t| t == "runs") || std::time::Instant::now() > deadline {
                break tables;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        assert!(analyzed.iter().any(|t| t == "runs"), "{analyzed:?}");
        let last: Option<String> = r
            .meta
            .read(
                "SELECT last_analyze::text FROM pg_stat_user_tables WHERE relid = 'runs'::regclass",
            )
            .scalar_one()
            .await
            .unwrap();
        assert!(last.is_some(), "runs has been analyzed");
        let again = r.refresh_statistics().await.unwrap();
        assert!(!again.iter().any(|t| t == "runs"), "{again:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_a_loaded_table_is_analyzed_once() {
        on(crate::Backend::Postgres, a_loaded_table_is_analyzed_once()).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_nothing_is_analyzed() {
        on(crate::Backend::Sqlite, async {
            let (_dir, r) = registry().await;
            assert!(r.refresh_statistics().await.unwrap().is_empty());
        })
        .await
    }
}
