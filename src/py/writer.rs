use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::digest::{PyDigest, digest_arg};
use crate::buffer::InputBuffer;
use crate::hashers::GIL_RELEASE_MIN;
use crate::store::Layout;
use crate::store::upload::Upload;

/// A resumable upload. `write` takes any contiguous buffer without copying it and releases the
/// GIL; `close` checkpoints (the upload stays resumable by id, from any process); `commit`
/// verifies and moves the blob into place; `cancel` removes the upload.
#[pyclass(frozen, module = "ocistore._core", name = "BlobWriter")]
pub struct PyBlobWriter {
    upload: Mutex<Upload>,
    layout: Layout,
    id: String,
    started_at: String,
}

impl PyBlobWriter {
    pub fn new(upload: Upload, layout: Layout) -> Self {
        Self {
            id: upload.id().to_owned(),
            started_at: upload.started_at().to_owned(),
            upload: Mutex::new(upload),
            layout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Upload> {
        self.upload.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl PyBlobWriter {
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// RFC 3339, as in the upload's `startedat` file.
    #[getter]
    fn started_at(&self) -> &str {
        &self.started_at
    }

    #[getter]
    fn size(&self) -> u64 {
        self.lock().size()
    }

    #[getter]
    fn algorithm(&self) -> &'static str {
        self.lock().algorithm().name()
    }

    #[getter]
    fn closed(&self) -> bool {
        !self.lock().is_open()
    }

    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let buf = InputBuffer::new(data)?;
        let bytes = buf.as_slice();
        if bytes.len() >= GIL_RELEASE_MIN {
            py.detach(|| self.lock().write(bytes))?;
        } else {
            self.lock().write(bytes)?;
        }
        Ok(bytes.len())
    }

    /// Data and hash state made durable (or, with `durable=False`, saved without waiting for
    /// the disk: trusted until the machine restarts); the writer stays open.
    #[pyo3(signature = (durable = true))]
    fn checkpoint(&self, py: Python<'_>, durable: bool) -> PyResult<()> {
        if durable {
            py.detach(|| self.lock().checkpoint())?;
        } else {
            py.detach(|| self.lock().checkpoint_volatile())?;
        }
        Ok(())
    }

    #[pyo3(signature = (durable = true))]
    fn close(&self, py: Python<'_>, durable: bool) -> PyResult<()> {
        py.detach(|| self.lock().close(durable))?;
        Ok(())
    }

    /// Verifies and moves into place; returns the size. `digest` may use another algorithm than
    /// the one streamed, at the cost of one full re-hash.
    #[pyo3(signature = (digest, size = None))]
    fn commit(
        &self,
        py: Python<'_>,
        digest: &Bound<'_, PyAny>,
        size: Option<u64>,
    ) -> PyResult<u64> {
        let expected = digest_arg(digest)?;
        Ok(py.detach(|| self.lock().commit(&self.layout, &expected, size))?)
    }

    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.lock().cancel())?;
        Ok(())
    }

    /// The digest of the bytes so far in the streamed algorithm.
    fn digest(&self) -> PyDigest {
        PyDigest {
            inner: self.lock().digest(),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close(py, true)
    }
}
