//! `StoreError` into Python: the exception tree that `ocistore/errors.py` defines (the tree lives
//! in Python so that the registry services and the HTTP layer raise the very same classes).

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyType};

use http::StatusCode;

use crate::descriptor::DescriptorError;
use crate::error::{ErrorCode, StoreError};
use crate::manifest::ManifestError;

/// Declares `PyErrorClass` from one list, so that its variants, `ALL`, each class's Python name
/// (the variant's own) and its code cannot disagree.
macro_rules! error_classes {
    (@status $code:ident) => { ErrorCode::$code.status() };
    (@status $code:ident $status:ident) => { StatusCode::$status };
    ($($class:ident => $code:ident $(@ $status:ident)?,)*) => {
        /// The classes of `ocistore.errors` the core raises.
        // Named as in Python (`name` is the variant's name), `Err` prefix and all.
        #[allow(clippy::enum_variant_names)]
        #[derive(Clone, Copy, Debug)]
        enum PyErrorClass {
            $($class,)*
        }

        impl PyErrorClass {
            const ALL: &[Self] = &[$(Self::$class,)*];

            const fn name(self) -> &'static str {
                match self {
                    $(Self::$class => stringify!($class),)*
                }
            }

            /// The code the class declares in `ocistore.errors`, which
            /// `tests/test_errors_table.py` checks through `error_classes`.
            const fn code(self) -> ErrorCode {
                match self {
                    $(Self::$class => ErrorCode::$code,)*
                }
            }

            /// Its HTTP status: the code's, unless the table gives another after `@`.
            const fn status(self) -> StatusCode {
                match self {
                    $(Self::$class => error_classes!(@status $code $($status)?),)*
                }
            }
        }
    };
}

error_classes! {
    ErrDigestInvalidFormat => DigestInvalid,
    ErrDigestUnsupported => DigestInvalid,
    ErrDigestInvalidLength => DigestInvalid,
    ErrBlobUnknown => BlobUnknown,
    ErrBlobInvalidDigest => DigestInvalid,
    ErrBlobInvalidLength => SizeInvalid,
    ErrBlobUploadUnknown => BlobUploadUnknown,
    ErrBlobUploadInvalid => BlobUploadInvalid,
    ErrBlobUploadInUse => BlobUploadInvalid @ RANGE_NOT_SATISFIABLE,
    ErrHashStateInvalid => BlobUploadInvalid,
    ErrManifestInvalid => ManifestInvalid,
    ErrDescriptorInvalid => ManifestInvalid,
    ErrSchemaV1Unsupported => ManifestInvalid,
}

/// `(code, status)` of a request to `path` whose body broke off before its end.
#[pyfunction]
pub fn broken_body_code(path: &str) -> (&'static str, u16) {
    let code = ErrorCode::for_broken_body(path);
    (code.as_str(), code.status().as_u16())
}

/// `(name, code, status)` of every `ocistore.errors` class the core raises.
#[pyfunction]
pub fn error_classes() -> Vec<(&'static str, &'static str, u16)> {
    PyErrorClass::ALL
        .iter()
        .map(|class| (class.name(), class.code().as_str(), class.status().as_u16()))
        .collect()
}

/// The classes of `PyErrorClass::ALL`, in its order. Looked up on the first error, not when
/// `_core` is imported: `ocistore.errors` is part of the package that imports `_core`.
static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn raise(py: Python<'_>, class: PyErrorClass, message: String, detail: Bound<'_, PyDict>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let classes = CLASSES.get_or_try_init(py, || {
            let module = PyModule::import(py, "ocistore.errors")?;
            PyErrorClass::ALL
                .iter()
                .map(|class| {
                    let cls = module.getattr(class.name())?.cast_into::<PyType>()?;
                    Ok(cls.unbind())
                })
                .collect::<PyResult<Vec<_>>>()
        })?;
        // `ALL` lists the variants in their declaration order, so a discriminant is an index.
        let cls = classes[class as usize].bind(py);
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
                    PyErrorClass::ErrDigestInvalidFormat
                }
                StoreError::DigestUnsupported { input, .. } => {
                    let _ = detail.set_item("digest", input);
                    PyErrorClass::ErrDigestUnsupported
                }
                StoreError::DigestInvalidLength { input, .. } => {
                    let _ = detail.set_item("digest", input);
                    PyErrorClass::ErrDigestInvalidLength
                }
                StoreError::BlobUnknown { digest } => {
                    let _ = detail.set_item("digest", digest);
                    PyErrorClass::ErrBlobUnknown
                }
                StoreError::BlobInvalidDigest { expected, actual } => {
                    let _ = detail.set_item("expected", expected);
                    let _ = detail.set_item("actual", actual);
                    PyErrorClass::ErrBlobInvalidDigest
                }
                StoreError::BlobInvalidLength { expected, actual } => {
                    let _ = detail.set_item("expected", expected);
                    let _ = detail.set_item("actual", actual);
                    PyErrorClass::ErrBlobInvalidLength
                }
                StoreError::BlobUploadUnknown { id } => {
                    let _ = detail.set_item("upload_id", id);
                    PyErrorClass::ErrBlobUploadUnknown
                }
                StoreError::BlobUploadInvalid { id, .. } => {
                    let _ = detail.set_item("upload_id", id);
                    PyErrorClass::ErrBlobUploadInvalid
                }
                StoreError::BlobUploadInUse { id, size } => {
                    let _ = detail.set_item("upload_id", id);
                    let _ = detail.set_item("size", size);
                    PyErrorClass::ErrBlobUploadInUse
                }
                StoreError::HashState(_) => PyErrorClass::ErrHashStateInvalid,
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

/// A refused descriptor as `ErrDescriptorInvalid`, or its digest's own error.
pub fn descriptor_error(error: DescriptorError) -> PyErr {
    match error {
        DescriptorError::Invalid(message) => Python::attach(|py| {
            raise(
                py,
                PyErrorClass::ErrDescriptorInvalid,
                message,
                PyDict::new(py),
            )
        }),
        DescriptorError::Digest(error) => error.into(),
    }
}

/// A refused manifest as `ErrManifestInvalid` or `ErrSchemaV1Unsupported`, or a descriptor's
/// digest's own error.
pub fn manifest_error(error: ManifestError) -> PyErr {
    let (class, message) = match error {
        ManifestError::Invalid(message) => (PyErrorClass::ErrManifestInvalid, message),
        ManifestError::SchemaV1(message) => (PyErrorClass::ErrSchemaV1Unsupported, message),
        ManifestError::Digest(error) => return error.into(),
    };
    Python::attach(|py| raise(py, class, message, PyDict::new(py)))
}
