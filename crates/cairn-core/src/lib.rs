//! Cairn's domain vocabulary, free of any I/O runtime: names, digests, manifests,
//! version references, the views the registry hands out, and the wire types of the
//! native API. Everything here is pure and synchronous so that every other crate
//! (registry service, server, CLI) can share it without pulling in tokio or sqlx.

pub mod access;
pub mod api;
pub mod auth;
pub mod backoff;
pub mod diff;
pub mod digest;
pub mod event;
pub mod lineage;
pub mod manifest;
pub mod model;
pub mod name;
pub mod policy;
pub mod reference;
pub mod search;
pub mod source;
pub mod tracking;
pub mod webhook;

pub use digest::{Sha256Digest, Sha256Hasher, hash_reader};
pub use manifest::{FileEntry, Manifest};
pub use model::{
    AliasMove, AuditEntry, AuditHead, AuditReport, Denial, Model, RecordProblem, VerifyProblem,
    VerifyReport, Version,
};
pub use name::{AliasName, MetaKey, ModelName};
pub use reference::{ModelVersionRef, VersionRef};

/// Why a piece of input was refused. Every variant's message names the offending
/// value and the rule it broke, so that it can be shown to a user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("invalid model name {0:?}: {1}")]
    ModelName(String, &'static str),
    #[error("invalid alias {0:?}: {1}")]
    Alias(String, &'static str),
    #[error("invalid key {0:?}: {1}")]
    Key(String, &'static str),
    #[error("invalid value for {0:?}: {1}")]
    Value(String, &'static str),
    #[error("invalid file path {0:?} in manifest: {1}")]
    Path(String, &'static str),
    #[error("invalid version reference {0:?}: {1}")]
    Reference(String, &'static str),
    #[error(
        "invalid digest {0:?}: expected 64 lowercase hex digits, optionally prefixed by \"sha256:\""
    )]
    Digest(String),
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// A webhook's name, URL, events or secret, with the whole message.
    #[error("{0}")]
    Webhook(String),
}
