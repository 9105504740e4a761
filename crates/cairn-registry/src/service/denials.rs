//! The security log of refused requests: what the servers record (at a bounded rate,
//! see the server's access module) and `cairn audit denied` reads. Apart from the audit
//! log on purpose: refusals change nothing, and anonymous traffic must not move the
//! chain that names the registry's state.

use cairn_core::Denial;

use super::Registry;
use crate::Result;
use crate::db::sql::{Columns, Decode, DecodeError, SqlBuilder, decoded_row};
use crate::db::{now_ms, time_of};

/// Longest path or reason kept, in bytes: a hostile request must not fill the log.
const TEXT_MAX: usize = 512;

struct DenialRow {
    at: i64,
    principal: Option<String>,
    token: Option<String>,
    method: String,
    path: String,
    status: i64,
    reason: String,
}

impl Decode for DenialRow {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
            at: c.next()?,
            principal: c.next()?,
            token: c.next()?,
            method: c.next()?,
            path: c.next()?,
            status: c.next()?,
            reason: c.next()?,
        })
    }
}
decoded_row!(DenialRow);

/// `text` cut to at most [`TEXT_MAX`] bytes, on a character boundary.
fn bounded(text: &str) -> &str {
    let mut end = text.len().min(TEXT_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Registry {
    /// Appends refused requests to the security log, in one statement. Their `at` is
    /// ignored: the time of recording is kept.
    pub async fn record_denials(&self, denials: &[Denial]) -> Result<()> {
        if denials.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            "INSERT INTO access_denials (at, principal, token, method, path, status, reason) ",
        );
        q.push_values(denials, |mut row, d| {
            row.push_bind(now)
                .push_bind(d.user.as_deref().map(bounded).map(str::to_owned))
                .push_bind(d.token.as_deref().map(bounded).map(str::to_owned))
                .push_bind(bounded(&d.method).to_owned())
                .push_bind(bounded(&d.path).to_owned())
                .push_bind(i64::from(d.status))
                .push_bind(bounded(&d.reason).to_owned());
        });
        let mut tx = self.meta.write_tx().await?;
        tx.sql(q).execute().await?;
        tx.commit().await
    }

    /// The newest `limit` refused requests, oldest first.
    pub async fn denials(&self, limit: u32) -> Result<Vec<Denial>> {
        let rows: Vec<DenialRow> = self
            .meta
            .read(
                "SELECT at, principal, token, method, path, status, reason FROM (
                     SELECT * FROM access_denials ORDER BY id DESC LIMIT $1
                 ) newest ORDER BY id",
            )
            .bind(i64::from(limit))
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Denial {
                at: time_of(r.at),
                user: r.principal,
                token: r.token,
                method: r.method,
                path: r.path,
                status: u16::try_from(r.status).unwrap_or(0),
                reason: r.reason,
            })
            .collect())
    }
}
