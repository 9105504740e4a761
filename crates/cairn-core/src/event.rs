//! Registry events: every change, as the audit entry that records it, in a stable,
//! versioned JSON shape (`cairn.event.v1`, documented in docs/EVENTS.md).
//!
//! The audit log is the one record of changes — an entry commits in the same
//! transaction as its change — so an event can neither be lost nor invented: event
//! `seq` is the audit entry's number (1, 2, 3… without gaps, in commit order), and its
//! `hash` ties it to the tamper-evident chain `cairn audit verify` checks.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::access::{Actor, Scope};
use crate::auth::Role;
use crate::model::AuditEntry;

/// The schema every event names, changed only with a new number.
pub const SCHEMA: &str = "cairn.event.v1";

/// Every event type (the audit log's action names; docs/EVENTS.md describes each).
pub const TYPES: &[&str] = &[
    "model.create",
    "model.rename",
    "model.delete",
    "model.description",
    "model.tag.set",
    "model.tag.delete",
    "version.create",
    "version.delete",
    "version.stage",
    "version.description",
    "version.tag.set",
    "version.tag.delete",
    "version.approve",
    "alias.set",
    "alias.rollback",
    "alias.delete",
    "alias.version_deleted",
    "alias.protect",
    "alias.unprotect",
    "policy.set",
    "policy.delete",
    "webhook.create",
    "webhook.update",
    "webhook.delete",
    "token.create",
    "token.revoke",
    "user.password",
    "user.grant",
    "user.revoke",
    "user.delete",
    "blobs.collect",
];

/// Whether `kind` is one of [`TYPES`].
pub fn is_event_type(kind: &str) -> bool {
    TYPES.contains(&kind)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// `cairn.event.v1`.
    pub schema: String,
    /// The audit entry's number: 1, 2, 3… with no gap, in commit order. A stream
    /// resumes after the last `seq` it saw.
    pub seq: u64,
    /// What happened: `model.create`, `version.create`, `alias.set`, `alias.rollback`,
    /// `version.tag.set`… (the audit log's action names, which never change).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who made the change.
    pub actor: String,
    /// The model concerned; absent for registry-wide changes (tokens, users, gc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// What changed: `NAME`, `NAME@N`, `NAME@ALIAS`, a tag key…
    pub target: String,
    /// The state before and after, as the audit entry records them.
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    /// The audit entry's hash (hex SHA-256).
    pub hash: String,
}

impl From<AuditEntry> for Event {
    fn from(entry: AuditEntry) -> Self {
        Self {
            schema: SCHEMA.to_owned(),
            seq: entry.seq,
            kind: entry.action,
            at: entry.at,
            actor: entry.actor,
            model: Some(entry.model).filter(|m| !m.is_empty()),
            target: entry.target,
            before: entry.before,
            after: entry.after,
            hash: entry.hash,
        }
    }
}

impl Event {
    /// Whether `actor` may see this event: a reader of its model, or of the whole
    /// registry for registry-wide changes.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        let scope = match &self.model {
            Some(model) => Scope::Model(model),
            None => Scope::Registry,
        };
        actor.may(Role::Reader, scope)
    }

    /// Whether the event is of one of `kinds` (exact names, or prefixes ending in `.*`
    /// such as `alias.*`); every event when `kinds` is empty.
    pub fn is_of(&self, kinds: &[String]) -> bool {
        kinds.is_empty()
            || kinds.iter().any(|k| match k.strip_suffix('*') {
                Some(prefix) => self.kind.starts_with(prefix),
                None => self.kind == *k,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str) -> Event {
        Event {
            schema: SCHEMA.into(),
            seq: 1,
            kind: kind.into(),
            at: OffsetDateTime::UNIX_EPOCH,
            actor: "ada".into(),
            model: Some("fraud".into()),
            target: "fraud@production".into(),
            before: None,
            after: None,
            hash: String::new(),
        }
    }

    #[test]
    fn kinds_match_exactly_or_by_prefix() {
        assert!(event("alias.set").is_of(&[]));
        assert!(event("alias.set").is_of(&["alias.*".into()]));
        assert!(event("alias.set").is_of(&["version.create".into(), "alias.set".into()]));
        assert!(!event("alias.set").is_of(&["alias.setx".into()]));
        assert!(!event("version.create").is_of(&["alias.*".into()]));
    }
}
