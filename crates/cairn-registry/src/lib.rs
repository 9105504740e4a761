//! The Cairn registry service and its stores.
//!
//! - [`Registry`] (service.rs): validation, domain rules, write ordering.
//! - [`store::MetadataStore`]: models, versions, manifests, aliases in SQLite.
//! - [`blobs::BlobStore`]: content-addressed file contents through `object_store`.

mod audit;
pub mod blobs;
mod checkpoint;
pub mod copy;
mod error;
mod gc;
mod lineage;
mod metric_writer;
mod read_cache;
mod service;
mod sql;
mod sqlite_reads;
pub mod store;
pub mod tracking;
mod verify;
mod write;

pub use blobs::BlobLocation;
pub use error::{Error, Result};
pub use service::Registry;
pub use store::{Backend, DbLocation, DbOptions, VersionExtras, VersionOrigin, now_ms};

#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tracking_tests;
