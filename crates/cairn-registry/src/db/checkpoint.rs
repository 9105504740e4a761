//! SQLite's WAL checkpoints, off the write path.
//!
//! In WAL mode a commit appends the pages it changed to the log, and a checkpoint copies
//! them back into the database file. By default the connection that commits runs one
//! whenever the log has grown past 1,000 pages: on Cairn's writer (`write`) that would
//! be a runtime thread, and every writer waiting behind it, stalled for the length of a
//! checkpoint (copying pages and two fsyncs). Here a task of its own checkpoints instead,
//! on its own connection and a blocking thread: a passive checkpoint copies what readers
//! no longer need, beside the writer, without taking its lock. The writer keeps its own
//! checkpoints only as a safety net, far past where this task checkpoints
//! ([`WRITER_CHECKPOINT_PAGES`]). A page rewritten by many commits between two
//! checkpoints is copied once.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::Result;

/// Log pages past which the writer checkpoints itself: only when this task falls behind.
pub(crate) const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

/// The pause between two checkpoints while commits keep coming.
const BUSY_INTERVAL: Duration = Duration::from_millis(50);

/// The longest pause while nothing is committed (pauses double up to it).
const IDLE_INTERVAL: Duration = Duration::from_secs(1);

/// Starts checkpointing the database at `path` for as long as `writer` (the store's
/// writer connection) lives.
pub(crate) fn start<W: Send + Sync + 'static>(
    path: &std::path::Path,
    writer: Weak<W>,
) -> Result<()> {
    let conn = connect(path.to_path_buf())?;
    tokio::spawn(checkpoints(conn, writer));
    Ok(())
}

fn connect(path: PathBuf) -> Result<Connection> {
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

async fn checkpoints<W>(mut conn: Connection, writer: Weak<W>) {
    let mut pause = BUSY_INTERVAL;
    // Log pages seen at the last checkpoint: more now means something was committed.
    let mut seen = 0;
    loop {
        tokio::time::sleep(pause).await;
        if writer.strong_count() == 0 {
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            let outcome = checkpoint(&conn);
            (conn, outcome)
        })
        .await;
        let Ok((returned, outcome)) = done else {
            tracing::error!("the SQLite checkpoint task failed; the writer checkpoints alone");
            return;
        };
        conn = returned;
        pause = match outcome {
            // The log restarts from its first page once a checkpoint has copied all of
            // it: fewer pages than last time means new commits too.
            Ok(pages) if pages != seen => {
                seen = pages;
                BUSY_INTERVAL
            }
            Ok(_) => (pause * 2).min(IDLE_INTERVAL),
            Err(e) => {
                tracing::warn!(error = %e, "SQLite checkpoint failed; trying again later");
                IDLE_INTERVAL
            }
        };
    }
}

/// One passive checkpoint; returns the pages in the log.
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    // (busy, pages in the log, pages copied); busy means another checkpoint is running.
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::db::{DbLocation, DbOptions, MetadataStore};

    /// Commits change only the log; the database file grows when a checkpoint copies
    /// pages into it. The writer checkpoints itself only past thousands of pages, so
    /// here only the checkpoint task can.
    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.db");
        let store = MetadataStore::open(&DbLocation::Sqlite(path.clone()), &DbOptions::default())
            .await
            .unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = size();
        let mut tx = store.write_tx().await.unwrap();
        for i in 0..2000 {
            tx.query(
                "INSERT INTO models (name, description, created_by, created_at, updated_at)
                 VALUES ($1, $2, 't', 0, 0)",
            )
            .bind(format!("model-{i}"))
            .bind("x".repeat(200))
            .execute()
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() <= before + 100 * 4096 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            size() > before + 100 * 4096,
            "the database file stayed at {} bytes",
            size()
        );
    }
}
