//! One error type for the core (`py/errors.rs` maps it onto the Python exception tree), and the
//! registry API's error codes the core answers with.

use std::io;
use std::path::Path;

use http::StatusCode;

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
    /// Another request holds the upload (`BlobBackend::claim`); `size` is what it has so far.
    #[error("upload {id} is in use by another request")]
    BlobUploadInUse { id: String, size: u64 },
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

/// An OCI Distribution error code (`errors[].code` in an error body) that the core answers with:
/// the native front writes them, and the Python bindings check the classes of `ocistore.errors`
/// the core raises against them (`_core.error_classes`), so the two sides cannot drift apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestInvalid,
    SizeInvalid,
    Unavailable,
    Unknown,
}

impl ErrorCode {
    /// What a request whose body broke off before its end (a half-close before
    /// `Content-Length`, a chunk cut short) is refused as: a client error, by what the body
    /// was — a manifest, or else part of an upload. The front and the application both answer
    /// so (`_core.broken_body_code`).
    pub fn for_broken_body(path: &str) -> ErrorCode {
        if path.contains("/manifests/") {
            ErrorCode::ManifestInvalid
        } else {
            ErrorCode::BlobUploadInvalid
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unavailable => "UNAVAILABLE",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The status an answer with this code has, unless the answer says otherwise (a stalled
    /// request body is `UNKNOWN` with 408, as the application answers it).
    pub const fn status(self) -> StatusCode {
        match self {
            Self::BlobUnknown | Self::BlobUploadUnknown => StatusCode::NOT_FOUND,
            Self::BlobUploadInvalid
            | Self::DigestInvalid
            | Self::ManifestInvalid
            | Self::SizeInvalid => StatusCode::BAD_REQUEST,
            // distribution's 503 is for its own storage; here only the front answers it, when it
            // cannot reach the application behind it: a gateway's failure.
            Self::Unavailable => StatusCode::BAD_GATEWAY,
            Self::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
