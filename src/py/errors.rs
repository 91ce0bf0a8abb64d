//! `StoreError` into Python: the exception tree that `ocistore/errors.py` defines (the tree lives
//! in Python so that the registry services and the HTTP layer raise the very same classes).

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

use crate::error::StoreError;

static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn raise(py: Python<'_>, class: &str, message: String, detail: Bound<'_, PyDict>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = ERRORS_MODULE.get_or_try_init(py, || {
            PyModule::import(py, "ocistore.errors").map(Bound::unbind)
        })?;
        let cls = module.bind(py).getattr(class)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("detail", detail)?;
        let instance = cls.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(instance))
    };
    build().unwrap_or_else(|err| err)
}

impl From<StoreError> for PyErr {
    fn from(err: StoreError) -> PyErr {
        Python::attach(|py| {
            let message = err.to_string();
            let detail = PyDict::new(py);
            let class = match &err {
                StoreError::DigestInvalidFormat { input, .. } => {
                    let _ = detail.set_item("digest", input);
                    "ErrDigestInvalidFormat"
                }
                StoreError::DigestUnsupported { input, .. } => {
                    let _ = detail.set_item("digest", input);
                    "ErrDigestUnsupported"
                }
                StoreError::DigestInvalidLength { input, .. } => {
                    let _ = detail.set_item("digest", input);
                    "ErrDigestInvalidLength"
                }
                StoreError::BlobUnknown { digest } => {
                    let _ = detail.set_item("digest", digest);
                    "ErrBlobUnknown"
                }
                StoreError::BlobInvalidDigest { expected, actual } => {
                    let _ = detail.set_item("expected", expected);
                    let _ = detail.set_item("actual", actual);
                    "ErrBlobInvalidDigest"
                }
                StoreError::BlobInvalidLength { expected, actual } => {
                    let _ = detail.set_item("expected", expected);
                    let _ = detail.set_item("actual", actual);
                    "ErrBlobInvalidLength"
                }
                StoreError::BlobUploadUnknown { id } => {
                    let _ = detail.set_item("upload_id", id);
                    "ErrBlobUploadUnknown"
                }
                StoreError::BlobUploadInvalid { id, .. } => {
                    let _ = detail.set_item("upload_id", id);
                    "ErrBlobUploadInvalid"
                }
                StoreError::HashState(_) => "ErrHashStateInvalid",
                StoreError::Value(_) => return PyValueError::new_err(message),
                StoreError::ObjectStore { source, .. } => {
                    // The errno picks the OSError subclass that callers already handle for the
                    // filesystem store.
                    let errno = match source {
                        object_store::Error::NotFound { .. } => Some(libc::ENOENT),
                        object_store::Error::AlreadyExists { .. } => Some(libc::EEXIST),
                        object_store::Error::PermissionDenied { .. }
                        | object_store::Error::Unauthenticated { .. } => Some(libc::EACCES),
                        _ => None,
                    };
                    return match errno {
                        Some(errno) => PyOSError::new_err((errno, message)),
                        None => PyOSError::new_err(message),
                    };
                }
                StoreError::Io { source, .. } => {
                    return match source.raw_os_error() {
                        // OSError(errno, text) picks the matching subclass (FileNotFoundError, ...).
                        Some(errno) => PyOSError::new_err((errno, message)),
                        None => PyOSError::new_err(message),
                    };
                }
            };
            raise(py, class, message, detail)
        })
    }
}
