//! `cairn serve`: versions of ONNX models answered over HTTP in MLflow's scoring
//! protocol, loaded in-process through onnxruntime, swapped atomically when the alias
//! they follow moves. This crate knows nothing of the registry: the CLI fetches and
//! verifies a version's files and hands this crate a directory.

pub mod app;
pub mod deployment;
pub mod metrics;
pub mod model;
pub mod runtime;
pub mod scoring;
pub mod servable;
pub mod signature;
