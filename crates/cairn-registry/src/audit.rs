//! The audit log: every registry mutation appends one entry — sequence number, time,
//! actor, action, target, state before and after — in the same transaction as the
//! mutation, so the log and the registry never disagree. Each entry's hash covers its
//! content and the previous entry's hash; [`MetadataStore::verify_audit`] recomputes
//! the chain and names the first entry that does not verify, so an edited, deleted,
//! inserted or reordered entry shows.
//!
//! Because nothing changes the registry without an entry, the head (number and hash)
//! also names the registry's state: `read_cache` serves a read again while it holds.
//! A write that would change nothing returns before writing, so it needs no entry.
//!
//! The hash of an entry is the hex SHA-256 of a JSON array, simple enough to recompute
//! with any tool (`before` and `after` as their stored JSON text, or null). Its shape
//! depends on the entry's format, stored with it, so that entries written before a new
//! format keep verifying:
//! - format 1: `[seq, at_ms, actor, action, model, target, before, after, prev_hash]`;
//! - format 2 (since authentication): `[2, seq, at_ms, actor, token, action, model,
//!   target, before, after, prev_hash]`, `token` being the id of the API token the
//!   change was made with, or null.

use cairn_core::Sha256Digest;
use cairn_core::access::Actor;
use cairn_core::model::{AliasAction, AuditBreak, AuditEntry, AuditHead, AuditReport};

use crate::db::sql::{Columns, Decode, DecodeError, SqlBuilder, decoded_row};
use crate::db::write::{AuditMark, WriteTx};
use crate::db::{Backend, MetadataStore, now_ms, time_of};
use crate::{Error, Result};

/// The previous hash of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a change did. Its text (`version.create`, `model.tag.set`, `alias.rollback`…) is
/// written here only: entries are hashed and read by people and tools, so a name never
/// changes once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    ModelCreate,
    ModelRename,
    ModelDelete,
    VersionCreate,
    VersionStage,
    VersionDelete,
    /// A tag of a model (`version` false) or version set or (`set` false) deleted.
    Tag {
        version: bool,
        set: bool,
    },
    /// A model's (`version` false) or version's description set.
    Description {
        version: bool,
    },
    Alias(AliasAction),
    AliasProtect,
    AliasUnprotect,
    BlobsCollect,
    TokenCreate,
    TokenRevoke,
    UserPassword,
    UserGrant,
    UserRevoke,
    UserDelete,
    PolicySet,
    PolicyDelete,
    VersionApprove,
    WebhookCreate,
    WebhookUpdate,
    WebhookDelete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        use AliasAction as A;
        match self {
            Self::ModelCreate => "model.create",
            Self::ModelRename => "model.rename",
            Self::ModelDelete => "model.delete",
            Self::VersionCreate => "version.create",
            Self::VersionStage => "version.stage",
            Self::VersionDelete => "version.delete",
            Self::Tag {
                version: false,
                set: true,
            } => "model.tag.set",
            Self::Tag {
                version: false,
                set: false,
            } => "model.tag.delete",
            Self::Tag {
                version: true,
                set: true,
            } => "version.tag.set",
            Self::Tag {
                version: true,
                set: false,
            } => "version.tag.delete",
            Self::Description { version: false } => "model.description",
            Self::Description { version: true } => "version.description",
            Self::TokenCreate => "token.create",
            Self::TokenRevoke => "token.revoke",
            Self::UserPassword => "user.password",
            Self::UserGrant => "user.grant",
            Self::UserRevoke => "user.revoke",
            Self::UserDelete => "user.delete",
            Self::Alias(A::Set) => "alias.set",
            Self::Alias(A::Rollback) => "alias.rollback",
            Self::Alias(A::Delete) => "alias.delete",
            Self::Alias(A::VersionDeleted) => "alias.version_deleted",
            Self::AliasProtect => "alias.protect",
            Self::AliasUnprotect => "alias.unprotect",
            Self::BlobsCollect => "blobs.collect",
            Self::PolicySet => "policy.set",
            Self::PolicyDelete => "policy.delete",
            Self::VersionApprove => "version.approve",
            Self::WebhookCreate => "webhook.create",
            Self::WebhookUpdate => "webhook.update",
            Self::WebhookDelete => "webhook.delete",
        }
    }
}

/// One mutation, as the log records it.
pub(crate) struct Change<'a> {
    pub actor: &'a Actor,
    pub action: Action,
    pub model: &'a str,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl<'a> Change<'a> {
    /// A change by `actor` of `target` (`NAME`, `NAME@N`, `NAME@ALIAS`, …) of model
    /// `model` (empty when it is of no model).
    pub fn new(
        actor: &'a Actor,
        action: Action,
        model: &'a str,
        target: impl Into<String>,
    ) -> Self {
        Self {
            actor,
            action,
            model,
            target: target.into(),
            before: None,
            after: None,
        }
    }

    /// What was there before (`None`: nothing).
    pub fn before(mut self, state: impl Into<Option<serde_json::Value>>) -> Self {
        self.before = state.into();
        self
    }

    /// What is there after (`None`: nothing).
    pub fn after(mut self, state: impl Into<Option<serde_json::Value>>) -> Self {
        self.after = state.into();
        self
    }

    /// Appends the change to the log inside `tx` (see [`append`]).
    pub async fn append(self, tx: &mut WriteTx) -> Result<()> {
        append(tx, self).await
    }
}

/// Appends `change` to the log inside `tx`. Call it last before committing: it locks
/// the log's head row until the transaction ends, which is what numbers entries
/// without gaps and keeps the chain linear across servers.
pub(crate) async fn append(tx: &mut WriteTx, change: Change<'_>) -> Result<()> {
    let (seq, prev): (i64, String) = tx
        .query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one()
        .await?;
    let at = now_ms();
    let before = change.before.map(|v| v.to_string());
    let after = change.after.map(|v| v.to_string());
    let hash = entry_hash(&Stored {
        format: FORMAT,
        seq,
        at,
        actor: change.actor.name.clone(),
        token: change.actor.token.clone(),
        action: change.action.as_str().to_owned(),
        model: change.model.to_owned(),
        target: change.target.clone(),
        before: before.clone(),
        after: after.clone(),
        prev_hash: prev.clone(),
        hash: String::new(),
    })
    .expect("the current format has a hash");
    // The entry, and the head moved to it. On PostgreSQL in one statement: the head's
    // row stays locked from the UPDATE above until COMMIT, and every audited write
    // waits for it, so each round trip saved while holding it is saved on all of them.
    let insert = "INSERT INTO audit_log (seq, at, actor, action, model, target, before, after,
                                         prev_hash, hash, format, token)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    let sql = match tx.backend {
        Backend::Postgres => {
            format!("WITH head AS (UPDATE audit_head SET hash = $10 WHERE id = 1) {insert}")
        }
        Backend::Sqlite => insert.to_owned(),
    };
    tx.query(&sql)
        .bind(seq)
        .bind(at)
        .bind(&change.actor.name)
        .bind(change.action.as_str())
        .bind(change.model)
        .bind(&change.target)
        .bind(&before)
        .bind(&after)
        .bind(&prev)
        .bind(&hash)
        .bind(FORMAT)
        .bind(&change.actor.token)
        .execute()
        .await?;
    if tx.backend == Backend::Sqlite {
        tx.query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute()
            .await?;
    }
    tx.mark_audit_entry(AuditMark { seq, hash });
    Ok(())
}

/// An audit row as stored: the columns of [`COLUMNS`], in its order.
struct Stored {
    format: i64,
    seq: i64,
    at: i64,
    actor: String,
    token: Option<String>,
    action: String,
    model: String,
    target: String,
    before: Option<String>,
    after: Option<String>,
    prev_hash: String,
    hash: String,
}

const COLUMNS: &str =
    "format, seq, at, actor, token, action, model, target, before, after, prev_hash, hash";

/// The format new entries are written in (see the module's documentation).
const FORMAT: i64 = 2;

impl Decode for Stored {
    fn decode(c: &mut Columns<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
            format: c.next()?,
            seq: c.next()?,
            at: c.next()?,
            actor: c.next()?,
            token: c.next()?,
            action: c.next()?,
            model: c.next()?,
            target: c.next()?,
            before: c.next()?,
            after: c.next()?,
            prev_hash: c.next()?,
            hash: c.next()?,
        })
    }
}
decoded_row!(Stored);

/// Entries read per round trip while the chain is recomputed: memory stays flat
/// whatever the log's length.
const VERIFY_BATCH: i64 = 1000;

/// The hash an entry must have, by its format; `None` for a format this build does not
/// know (an entry written by a newer Cairn, or a forged format).
fn entry_hash(e: &Stored) -> Option<String> {
    let canonical = match e.format {
        1 => serde_json::json!([
            e.seq,
            e.at,
            e.actor,
            e.action,
            e.model,
            e.target,
            e.before,
            e.after,
            e.prev_hash
        ]),
        2 => serde_json::json!([
            2,
            e.seq,
            e.at,
            e.actor,
            e.token,
            e.action,
            e.model,
            e.target,
            e.before,
            e.after,
            e.prev_hash
        ]),
        _ => return None,
    };
    Some(Sha256Digest::of(canonical.to_string().as_bytes()).to_hex())
}

impl Stored {
    fn into_entry(self) -> Result<AuditEntry> {
        let json = |text: Option<String>| {
            text.map(|t| {
                serde_json::from_str(&t).map_err(|_| {
                    Error::Database(sqlx::Error::Decode(
                        format!("audit entry {} holds invalid JSON", self.seq).into(),
                    ))
                })
            })
            .transpose()
        };
        Ok(AuditEntry {
            format: self.format as u32,
            seq: self.seq as u64,
            at: time_of(self.at),
            actor: self.actor.clone(),
            token: self.token.clone(),
            action: self.action.clone(),
            model: self.model.clone(),
            target: self.target.clone(),
            before: json(self.before.clone())?,
            after: json(self.after.clone())?,
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        })
    }
}

/// `text` matched literally inside a LIKE pattern (with `ESCAPE '\'`).
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Which audit entries a page shows; every field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub model: Option<String>,
    /// The entry's target exactly: `NAME@N` for a version's entries.
    pub target: Option<String>,
    pub actor: Option<String>,
    /// An action (`alias.set`) or a family of them (`alias`).
    pub action: Option<String>,
    /// From this time on (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Before this time (ms since the epoch).
    pub to_ms: Option<i64>,
}

/// The audit log's head: its last entry's number and hash.
const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

impl MetadataStore {
    /// Entries in order, optionally only those of one model and from a time on.
    pub async fn audit_log(
        &self,
        model: Option<&str>,
        since_ms: Option<i64>,
    ) -> Result<Vec<AuditEntry>> {
        let mut q = SqlBuilder::new(
            self.backend(),
            format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1"),
        );
        if let Some(model) = model {
            q.push(" AND model = ").push_bind(model.to_owned());
        }
        if let Some(since) = since_ms {
            q.push(" AND at >= ").push_bind(since);
        }
        q.push(" ORDER BY seq");
        let rows: Vec<Stored> = self.read_sql(q).fetch_all().await?;
        rows.into_iter().map(Stored::into_entry).collect()
    }

    /// At most `limit` entries after number `after`, in order, optionally of one model.
    pub async fn audit_after(
        &self,
        after: u64,
        model: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.audit_after_since(after, model, None, limit).await
    }

    /// [`Self::audit_after`], of entries from a time (ms) on.
    pub async fn audit_after_since(
        &self,
        after: u64,
        model: Option<&str>,
        since_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let mut q = SqlBuilder::new(
            self.backend(),
            format!("SELECT {COLUMNS} FROM audit_log WHERE seq > "),
        );
        q.push_bind(i64::try_from(after).unwrap_or(i64::MAX));
        if let Some(model) = model {
            q.push(" AND model = ").push_bind(model.to_owned());
        }
        if let Some(since) = since_ms {
            q.push(" AND at >= ").push_bind(since);
        }
        q.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        let rows: Vec<Stored> = self.read_sql(q).fetch_all().await?;
        rows.into_iter().map(Stored::into_entry).collect()
    }

    /// A page of entries matching `filter`, newest first, numbered below `before`
    /// when given: what a person browsing the log asks for.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let mut q = SqlBuilder::new(
            self.backend(),
            format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1"),
        );
        if let Some(before) = before {
            q.push(" AND seq < ")
                .push_bind(i64::try_from(before).unwrap_or(i64::MAX));
        }
        if let Some(model) = &filter.model {
            q.push(" AND model = ").push_bind(model.clone());
        }
        if let Some(target) = &filter.target {
            q.push(" AND target = ").push_bind(target.clone());
        }
        if let Some(actor) = &filter.actor {
            q.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(action) = &filter.action {
            // `alias` matches every `alias.*` action; a full name matches itself.
            q.push(" AND (action = ")
                .push_bind(action.clone())
                .push(" OR action LIKE ")
                .push_bind(format!("{}.%", like_literal(action)))
                .push(" ESCAPE '\\')");
        }
        if let Some(from) = filter.from_ms {
            q.push(" AND at >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            q.push(" AND at < ").push_bind(to);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows: Vec<Stored> = self.read_sql(q).fetch_all().await?;
        rows.into_iter().map(Stored::into_entry).collect()
    }

    /// The entries numbered `seqs`, in number order.
    pub(crate) async fn audit_numbered(&self, seqs: &[u64]) -> Result<Vec<AuditEntry>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = SqlBuilder::new(
            self.backend(),
            format!("SELECT {COLUMNS} FROM audit_log WHERE seq IN ("),
        );
        for (i, seq) in seqs.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push_bind(i64::try_from(*seq).unwrap_or(i64::MAX));
        }
        q.push(") ORDER BY seq");
        let rows: Vec<Stored> = self.read_sql(q).fetch_all().await?;
        rows.into_iter().map(Stored::into_entry).collect()
    }

    pub async fn audit_head(&self) -> Result<AuditHead> {
        let (seq, hash): (i64, String) = self.read(AUDIT_HEAD).fetch_one().await?;
        Ok(AuditHead {
            seq: seq as u64,
            hash,
        })
    }

    /// [`Self::audit_head`], read on `conn`, a PostgreSQL connection outside the pool
    /// (`MetadataStore::connect_alone`).
    pub(crate) async fn audit_head_on(conn: &mut sqlx::AnyConnection) -> Result<AuditHead> {
        let (seq, hash): (i64, String) = sqlx::query_as(AUDIT_HEAD).fetch_one(conn).await?;
        Ok(AuditHead {
            seq: seq as u64,
            hash,
        })
    }

    /// Recomputes the whole chain. With `exported`, also checks that the entry at its
    /// number still has its hash (nothing up to an exported head changed).
    pub async fn verify_audit(&self, exported: Option<&AuditHead>) -> Result<AuditReport> {
        let head = self.audit_head().await?;
        let batch_sql =
            format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        let mut rows = Vec::new().into_iter();
        let mut read_up_to = i64::MIN;
        let mut expected_seq: i64 = 1;
        let mut format_before = 1;
        let mut prev = GENESIS.to_owned();
        let mut entries = 0;
        let mut broken = None;
        let brk = |seq: i64, reason: String| {
            Some(AuditBreak {
                seq: seq.max(0) as u64,
                reason,
            })
        };
        loop {
            let Some(row) = rows.next() else {
                let batch: Vec<Stored> = self
                    .read(&batch_sql)
                    .bind(read_up_to)
                    .bind(VERIFY_BATCH)
                    .fetch_all()
                    .await?;
                let Some(last) = batch.last() else { break };
                read_up_to = last.seq;
                rows = batch.into_iter();
                continue;
            };
            entries += 1;
            if row.seq != expected_seq {
                broken = brk(
                    expected_seq,
                    format!(
                        "entry {expected_seq} is missing (the next entry is {})",
                        row.seq
                    ),
                );
                break;
            }
            // Formats only ever move forward: an older format after a newer one is an
            // entry rewritten to drop what the newer format records.
            if row.format < format_before {
                broken = brk(
                    row.seq,
                    format!(
                        "entry {} is in format {} after an entry in format {format_before}",
                        row.seq, row.format
                    ),
                );
                break;
            }
            format_before = row.format;
            if entry_hash(&row).as_deref() != Some(row.hash.as_str()) {
                broken = brk(
                    row.seq,
                    format!(
                        "entry {} was altered: its content does not hash to its recorded hash",
                        row.seq
                    ),
                );
                break;
            }
            if row.prev_hash != prev {
                broken = brk(
                    row.seq,
                    format!(
                        "entry {} does not follow entry {}: its previous hash differs",
                        row.seq,
                        row.seq - 1
                    ),
                );
                break;
            }
            if let Some(x) = exported
                && x.seq as i64 == row.seq
                && x.hash != row.hash
            {
                broken = brk(
                    row.seq,
                    format!("entry {} differs from the exported head", row.seq),
                );
                break;
            }
            prev = row.hash;
            expected_seq += 1;
        }
        let last = expected_seq - 1;
        if broken.is_none() {
            if head.seq as i64 > last {
                broken = brk(
                    last + 1,
                    format!(
                        "entries {} to {} are missing (the log's head records {})",
                        last + 1,
                        head.seq,
                        head.seq
                    ),
                );
            } else if head.seq as i64 != last || head.hash != prev {
                broken = brk(
                    last,
                    format!("entry {last} does not match the log's recorded head"),
                );
            } else if let Some(x) = exported
                && x.seq as i64 > last
            {
                broken = brk(
                    last + 1,
                    format!(
                        "the exported head is entry {}, but the log ends at {last}",
                        x.seq
                    ),
                );
            }
        }
        Ok(AuditReport {
            entries,
            head,
            broken,
        })
    }
}

#[cfg(test)]
mod action_tests {
    use super::{Action, AliasAction};

    /// Written entries are hashed with these names: they never change.
    #[test]
    fn action_names_are_stable() {
        let names: Vec<&str> = [
            Action::ModelCreate,
            Action::ModelRename,
            Action::ModelDelete,
            Action::VersionCreate,
            Action::VersionStage,
            Action::VersionDelete,
            Action::Tag {
                version: false,
                set: true,
            },
            Action::Tag {
                version: true,
                set: false,
            },
            Action::Description { version: true },
            Action::Alias(AliasAction::Rollback),
            Action::Alias(AliasAction::VersionDeleted),
            Action::BlobsCollect,
        ]
        .into_iter()
        .map(Action::as_str)
        .collect();
        assert_eq!(
            names,
            [
                "model.create",
                "model.rename",
                "model.delete",
                "version.create",
                "version.stage",
                "version.delete",
                "model.tag.set",
                "version.tag.delete",
                "version.description",
                "alias.rollback",
                "alias.version_deleted",
                "blobs.collect"
            ]
        );
    }

    /// Every action is an event type the webhooks and the stream know by name.
    #[test]
    fn every_action_is_a_documented_event_type() {
        use AliasAction as A;
        let every = [
            Action::ModelCreate,
            Action::ModelRename,
            Action::ModelDelete,
            Action::VersionCreate,
            Action::VersionStage,
            Action::VersionDelete,
            Action::AliasProtect,
            Action::AliasUnprotect,
            Action::BlobsCollect,
            Action::TokenCreate,
            Action::TokenRevoke,
            Action::UserPassword,
            Action::UserGrant,
            Action::UserRevoke,
            Action::UserDelete,
            Action::PolicySet,
            Action::PolicyDelete,
            Action::VersionApprove,
            Action::WebhookCreate,
            Action::WebhookUpdate,
            Action::WebhookDelete,
            Action::Description { version: false },
            Action::Description { version: true },
            Action::Alias(A::Set),
            Action::Alias(A::Rollback),
            Action::Alias(A::Delete),
            Action::Alias(A::VersionDeleted),
        ]
        .into_iter()
        .chain(
            [(false, false), (false, true), (true, false), (true, true)]
                .map(|(version, set)| Action::Tag { version, set }),
        );
        let mut seen = 0;
        for action in every {
            assert!(
                cairn_core::event::is_event_type(action.as_str()),
                "{} is not in cairn_core::event::TYPES",
                action.as_str()
            );
            seen += 1;
        }
        assert_eq!(seen, cairn_core::event::TYPES.len());
    }
}
