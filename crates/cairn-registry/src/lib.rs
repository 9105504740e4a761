//! The Cairn registry service and its stores, in three layers (docs/ARCHITECTURE.md):
//!
//! - [`Registry`] (`service`): validation, domain rules, write ordering; the tracking
//!   service ([`tracking::Tracking`]) beside it.
//! - the aggregates (`store`, `tracking`, `lineage`, `audit`, `gc`) on the engine layer
//!   ([`db::MetadataStore`]: SQLite or PostgreSQL);
//! - [`blobs::BlobStore`]: content-addressed file contents through `object_store`.

mod audit;
pub mod blobs;
pub mod db;
mod error;
mod gc;
mod head_reads;
mod idempotency;
mod key_values;
mod lineage;
mod metric_writer;
mod read_cache;
mod search_sql;
mod service;
pub mod store;
pub mod tracking;
pub mod webhooks;

pub use audit::AuditFilter;
pub use blobs::{BlobLocation, StagedBlob};
pub use db::{Backend, DbLocation, DbOptions, now_ms};
pub use error::{Error, Missing, Refusal, Result};
pub use service::Registry;
pub use service::aliases::AliasTarget;
pub use service::sources::SourcedVersion;
pub use service::tokens::NewToken;
pub use service::users::GrantOn;
pub use store::{FileList, VersionExtras, VersionOrigin, VersionSort};

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod browse_tests;
#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod idempotency_tests;
#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod sources_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tokens_tests;
#[cfg(test)]
mod tracking_tests;
#[cfg(test)]
mod webhook_tests;
