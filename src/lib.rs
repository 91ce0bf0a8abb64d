//! `ocistore._core`: digests, resumable hashers and the blob store, for Python.
//!
//! The core builds and tests without Python; the `python` feature (on in maturin's builds) adds
//! the bindings, all in `py/`.
#![deny(unsafe_code)]

pub mod blocks;
pub mod descriptor;
pub mod digest;
pub mod error;
pub mod front;
pub mod grammar;
pub mod hashing;
pub mod layout;
pub mod linked;
pub mod listing;
pub mod manifest;
pub mod manifest_commit;
pub mod manifest_delete;
pub mod objstore;
#[cfg(feature = "python")]
mod py;
pub mod storage;
pub mod store;
pub mod tags;
