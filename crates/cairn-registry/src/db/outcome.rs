//! The outcome of a PostgreSQL transaction whose `COMMIT` was sent but never answered
//! (the connection was lost: the database crashed, restarted or was cut off). It may
//! have committed or not, and retrying blindly would do a committed write twice — a
//! second version, a second alias move. Every audited change leaves a mark: the audit
//! entry it appended, whose number and hash no other transaction can write. Once the
//! database answers again, the entry is looked up under the audit head's row lock —
//! which the lost transaction holds for as long as its backend still runs — so the
//! answer is final: there, it committed; absent, it did not and can be run again.

use std::time::{Duration, Instant};

use sqlx::AnyPool;

use super::write::AuditMark;
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
    mark: Option<&AuditMark>,
    lost: sqlx::Error,
) -> Result<()> {
    let Some(mark) = mark else {
        return Err(Error::CommitUnknown(lost.to_string()));
    };
    let deadline = Instant::now() + LEARN_WINDOW;
    loop {
        match committed(pool, mark).await {
            Ok(true) => {
                tracing::warn!(seq = mark.seq, error = %lost, "a commit's answer was lost; it had committed");
                return Ok(());
            }
            Ok(false) => {
                tracing::warn!(seq = mark.seq, error = %lost, "a commit's answer was lost; it had not committed");
                return Err(Error::Database(lost));
            }
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "learning a lost commit's outcome; the database does not answer yet");
                tokio::time::sleep(LEARN_PAUSE).await;
            }
            Err(e) => {
                tracing::error!(seq = mark.seq, error = %e, "the outcome of a lost commit could not be learned");
                return Err(Error::CommitUnknown(lost.to_string()));
            }
        }
    }
}

/// Whether the audit log holds `mark`, read once every transaction that still holds
/// the audit head has ended.
async fn committed(pool: &AnyPool, mark: &AuditMark) -> std::result::Result<bool, sqlx::Error> {
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
