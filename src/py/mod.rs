//! The Python-facing classes of `ocistore._core`.

pub mod digest;
pub mod front;
pub mod fs;
pub mod grammar;
pub mod layout;
pub mod objstore;
pub mod reader;
pub mod store;
pub mod writer;
