//! Blobs and registry metadata on an S3 bucket, an Azure container or a GCS bucket (through
//! `object_store`), in the key layout of distribution's S3 driver:
//! `<rootdirectory>/docker/registry/v2/...`.

pub mod blobs;
pub mod client;
pub mod config;
pub mod gc;
pub mod gcs;
pub mod keys;
pub mod links;
pub mod runtime;
pub mod state;
pub mod upload;

pub use blobs::ObjectBlobs;
pub use client::Remote;
pub use config::{AzureConfig, S3Config};
pub use gcs::GcsConfig;
