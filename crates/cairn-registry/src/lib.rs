//! The Cairn registry service and its stores.
//!
//! - [`Registry`] (service.rs): validation, domain rules, write ordering.
//! - [`store::MetadataStore`]: models, versions, manifests, aliases in SQLite.
//! - [`blobs::BlobStore`]: content-addressed file contents through `object_store`.

mod audit;
pub mod blobs;
pub mod db;
mod error;
mod gc;
mod key_values;
mod lineage;
mod metric_writer;
mod read_cache;
mod search_sql;
mod service;
pub mod store;
pub mod tracking;

pub use blobs::BlobLocation;
pub use db::{Backend, DbLocation, DbOptions, now_ms};
pub use error::{Error, Missing, Refusal, Result};
pub use service::Registry;
pub use service::aliases::AliasTarget;
pub use service::sources::SourcedVersion;
pub use store::{FileList, VersionExtras, VersionOrigin};

#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod sources_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tracking_tests;
