use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::digest::{Algorithm, Digest};

/// A validated `algorithm:hex` digest (sha256, sha512 or blake3). Compares and hashes equal to
/// its string form, so either can be used as a dictionary key.
#[pyclass(frozen, module = "ocistore", name = "Digest")]
pub struct PyDigest {
    pub inner: Digest,
}

/// Accepts a `Digest` or its string form.
pub fn digest_arg(obj: &Bound<'_, PyAny>) -> PyResult<Digest> {
    if let Ok(d) = obj.cast::<PyDigest>() {
        return Ok(d.get().inner.clone());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Digest::parse(s.to_str()?)?);
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "expected a Digest or str, not {}",
        obj.get_type().name()?
    )))
}

#[pymethods]
impl PyDigest {
    #[new]
    fn new(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            inner: digest_arg(value)?,
        })
    }

    /// The digest of raw hash output: `Digest.from_bytes("sha256", hashlib.sha256(b).digest())`.
    #[staticmethod]
    fn from_bytes(algorithm: &str, raw: &[u8]) -> PyResult<Self> {
        Ok(Self {
            inner: Digest::from_raw(Algorithm::parse(algorithm)?, raw)?,
        })
    }

    #[getter]
    fn algorithm(&self) -> &'static str {
        self.inner.algorithm().name()
    }

    #[getter]
    fn hex(&self) -> &str {
        self.inner.hex()
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Digest('{}')", self.inner)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyString::new(py, &self.inner.to_string()).hash()
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let mine = self.inner.to_string();
        let theirs = if let Ok(d) = other.cast::<PyDigest>() {
            d.get().inner.to_string()
        } else if let Ok(s) = other.cast::<PyString>() {
            s.to_str()?.to_owned()
        } else {
            return Ok(py.NotImplemented());
        };
        Ok(op
            .matches(mine.cmp(&theirs))
            .into_pyobject(py)?
            .to_owned()
            .into_any()
            .unbind())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let args = PyTuple::new(py, [slf.get().inner.to_string()])?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }
}
