//! The outcome of a PostgreSQL transaction whose `COMMIT` was sent but never answered
//! (the connection was lost: the database crashed, restarted or was cut off). It may
//! have committed or not, and retrying blindly would do a committed write twice — a
//! second version, a second alias move, a second run. A transaction leaves a mark to
//! tell: the audit entry it appended (every audited change), whose number and hash no
//! other transaction can write, or a token of its own in `commit_marks` (runs,
//! experiments, logged models). Once the database answers again, the mark is looked
//! for in a way that waits for the lost transaction if its backend still runs — under
//! the audit head's row lock, which it holds; by inserting the same token, which
//! blocks on its uncommitted row — so the answer is final: there, it committed;
//! absent, it did not and can be run again.

use std::time::{Duration, Instant};

use sqlx::AnyPool;

use super::write::{AuditMark, CommitMark};
use super::{MetadataStore, now_ms};
use crate::{Error, Result};

/// How long the outcome of a lost commit is sought before giving up on it. Long enough
/// for a database restart, which is what usually loses a commit's answer.
const LEARN_WINDOW: Duration = Duration::from_secs(20);

/// The pause between two tries to ask the database.
const LEARN_PAUSE: Duration = Duration::from_millis(250);

/// `Ok` when the transaction that wrote `mark` committed; `lost` (a transient error,
/// retried by `MetadataStore::with_retries`) when it provably did not;
/// [`Error::CommitUnknown`] when that cannot be learned in [`LEARN_WINDOW`] or the
/// transaction left no mark.
pub(crate) async fn learn(
    pool: &AnyPool,
    mark: Option<&CommitMark>,
    lost: sqlx::Error,
) -> Result<()> {
    let Some(mark) = mark else {
        return Err(Error::CommitUnknown(lost.to_string()));
    };
    let deadline = Instant::now() + LEARN_WINDOW;
    loop {
        let found = match mark {
            CommitMark::Audit(entry) => audit_entry_committed(pool, entry).await,
            CommitMark::Token(token) => token_committed(pool, token).await,
        };
        match found {
            Ok(true) => {
                tracing::warn!(?mark, error = %lost, "a commit's answer was lost; it had committed");
                return Ok(());
            }
            Ok(false) => {
                tracing::warn!(?mark, error = %lost, "a commit's answer was lost; it had not committed");
                return Err(Error::Database(lost));
            }
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "learning a lost commit's outcome; the database does not answer yet");
                tokio::time::sleep(LEARN_PAUSE).await;
            }
            Err(e) => {
                tracing::error!(?mark, error = %e, "the outcome of a lost commit could not be learned");
                return Err(Error::CommitUnknown(lost.to_string()));
            }
        }
    }
}

/// Whether the audit log holds `mark`, read once every transaction that still holds
/// the audit head has ended.
async fn audit_entry_committed(
    pool: &AnyPool,
    mark: &AuditMark,
) -> std::result::Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut *tx)
        .await?;
    let hash: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
        .bind(mark.seq)
        .fetch_optional(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(hash.as_deref() == Some(mark.hash.as_str()))
}

/// Whether `token` is in `commit_marks`: inserting it again waits for a transaction
/// still holding it uncommitted, then finds it (committed) or not (rolled back). The
/// probe's own row is rolled back.
async fn token_committed(pool: &AnyPool, token: &str) -> std::result::Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO commit_marks (token, at) VALUES ($1, $2) ON CONFLICT (token) DO NOTHING",
    )
    .bind(token)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.rollback().await?;
    Ok(inserted == 0)
}

/// How long a commit mark is kept: far longer than any lost commit takes to learn.
const MARKS_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

impl MetadataStore {
    /// Forgets commit marks older than a day; answers how many.
    pub(crate) async fn forget_commit_marks(&self) -> Result<u64> {
        self.write("DELETE FROM commit_marks WHERE at < $1")
            .bind(now_ms() - MARKS_KEPT_MS)
            .execute()
            .await
    }
}
