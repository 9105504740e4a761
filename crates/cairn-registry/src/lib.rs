//! The Cairn registry service and its stores.
//!
//! - [`Registry`] (service.rs): validation, domain rules, write ordering.
//! - [`store::MetadataStore`]: models, versions, manifests, aliases in SQLite.
//! - [`blobs::BlobStore`]: content-addressed file contents through `object_store`.

pub mod blobs;
mod error;
mod service;
pub mod store;

pub use error::{Error, Result};
pub use service::Registry;

#[cfg(test)]
mod tests;
