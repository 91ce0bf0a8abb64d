//! hashlib-shaped classes over the resumable hashers: `update`, `digest`, `hexdigest`, `copy`,
//! `name`, `digest_size`, `block_size`, plus `state()`/`from_state()` and pickling through the
//! state bytes alone.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};

use crate::digest::{Algorithm, to_hex};
use crate::hashing::Hasher;
use crate::py::buffer::InputBuffer;

/// Below this size releasing and re-taking the GIL costs more than hashing (as in blake3-py).
pub const GIL_RELEASE_MIN: usize = 2048;

fn lock(m: &Mutex<Hasher>) -> MutexGuard<'_, Hasher> {
    // A panic while hashing cannot leave the state half-updated in a way we could detect, but it
    // also cannot happen for in-memory input; keep going rather than poison every later call.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn hasher_for(
    py: Python<'_>,
    algorithm: Algorithm,
    data: Option<&Bound<'_, PyAny>>,
) -> PyResult<Mutex<Hasher>> {
    let hasher = Mutex::new(Hasher::new(algorithm));
    if let Some(data) = data {
        update(py, &hasher, data)?;
    }
    Ok(hasher)
}

fn update(py: Python<'_>, hasher: &Mutex<Hasher>, data: &Bound<'_, PyAny>) -> PyResult<()> {
    if data.is_instance_of::<pyo3::types::PyString>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "Strings must be encoded before hashing",
        ));
    }
    let buf = InputBuffer::new(data)?;
    let bytes = buf.as_slice();
    if bytes.len() >= GIL_RELEASE_MIN {
        py.detach(|| lock(hasher).update(bytes));
    } else {
        lock(hasher).update(bytes);
    }
    Ok(())
}

fn restore(algorithm: Algorithm, state: &[u8]) -> PyResult<Mutex<Hasher>> {
    Ok(Mutex::new(Hasher::from_state(algorithm, state)?))
}

macro_rules! py_hasher {
    ($cls:ident, $pyname:literal, $alg:expr) => {
        #[pyclass(frozen, module = "ocistore.hashing", name = $pyname)]
        pub struct $cls {
            inner: Mutex<Hasher>,
        }

        #[pymethods]
        impl $cls {
            #[new]
            #[pyo3(signature = (data = None, /, *, usedforsecurity = true))]
            fn new(
                py: Python<'_>,
                data: Option<&Bound<'_, PyAny>>,
                usedforsecurity: bool,
            ) -> PyResult<Self> {
                let _ = usedforsecurity;
                Ok(Self {
                    inner: hasher_for(py, $alg, data)?,
                })
            }

            fn update(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
                update(py, &self.inner, data)
            }

            fn digest<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
                PyBytes::new(py, &lock(&self.inner).finalize())
            }

            fn hexdigest(&self) -> String {
                to_hex(&lock(&self.inner).finalize())
            }

            fn copy(&self) -> Self {
                Self {
                    inner: Mutex::new(lock(&self.inner).clone()),
                }
            }

            #[getter]
            fn name(&self) -> &'static str {
                $alg.name()
            }

            #[getter]
            fn digest_size(&self) -> usize {
                $alg.size()
            }

            #[getter]
            fn block_size(&self) -> usize {
                lock(&self.inner).block_size()
            }

            /// Bytes hashed so far.
            #[getter]
            fn length(&self) -> u64 {
                lock(&self.inner).bytes_hashed()
            }

            /// The running state: Go's BinaryMarshaler format for sha256/sha512, ocistore's
            /// versioned format for blake3.
            fn state<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
                PyBytes::new(py, &lock(&self.inner).state())
            }

            #[classmethod]
            fn from_state(_cls: &Bound<'_, PyType>, state: &[u8]) -> PyResult<Self> {
                Ok(Self {
                    inner: restore($alg, state)?,
                })
            }

            fn __setstate__(&self, state: &[u8]) -> PyResult<()> {
                let restored = Hasher::from_state($alg, state)?;
                *lock(&self.inner) = restored;
                Ok(())
            }

            fn __getstate__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
                self.state(py)
            }

            /// Pickles as (class, no arguments, state bytes): no code, only the state.
            fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
                let py = slf.py();
                let state = slf.get().state(py);
                PyTuple::new(
                    py,
                    [
                        slf.get_type().into_any(),
                        PyTuple::empty(py).into_any(),
                        state.into_any(),
                    ],
                )
            }

            fn __repr__(&self) -> String {
                format!(
                    "<ocistore.hashing.{} object, {} bytes hashed>",
                    $pyname,
                    self.length()
                )
            }
        }
    };
}

py_hasher!(PySha256, "sha256", Algorithm::Sha256);
py_hasher!(PySha512, "sha512", Algorithm::Sha512);
py_hasher!(PyBlake3, "blake3", Algorithm::Blake3);
