//! One error type for the core (`py/errors.rs` maps it onto the Python exception tree).

use std::io;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid digest {input:?}: {reason}")]
    DigestInvalidFormat { input: String, reason: String },
    #[error(
        "unsupported digest algorithm {algorithm:?} in {input:?} (supported: sha256, sha512, blake3)"
    )]
    DigestUnsupported { input: String, algorithm: String },
    #[error(
        "invalid digest {input:?}: {algorithm} needs {expected} lowercase hex characters, got {actual}"
    )]
    DigestInvalidLength {
        input: String,
        algorithm: String,
        expected: usize,
        actual: usize,
    },
    #[error("blob unknown to registry: {digest}")]
    BlobUnknown { digest: String },
    #[error(
        "provided digest did not match uploaded content: expected {expected}, computed {actual}"
    )]
    BlobInvalidDigest { expected: String, actual: String },
    #[error("blob length mismatch: expected {expected} bytes, uploaded {actual}")]
    BlobInvalidLength { expected: u64, actual: u64 },
    #[error("blob upload unknown: {id}")]
    BlobUploadUnknown { id: String },
    #[error("blob upload {id} is unusable: {reason}")]
    BlobUploadInvalid { id: String, reason: String },
    #[error("invalid hash state: {0}")]
    HashState(String),
    #[error("{0}")]
    Value(String),
    /// A request to the object store failed (absent objects are mapped to the `*Unknown`
    /// errors where the caller asked for a blob or an upload).
    #[error("object store {operation} of {key:?} failed: {source}")]
    ObjectStore {
        operation: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Attaches what was being done, and to which path, to an I/O error.
pub trait IoContext<T> {
    fn at(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            context: format!("{what} {}", path.display()),
            source,
        })
    }
}
