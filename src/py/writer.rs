use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use super::digest::{PyDigest, digest_arg};
use crate::error::IoContext;
use crate::linked;
use crate::py::buffer::InputBuffer;
use crate::py::hashers::GIL_RELEASE_MIN;
use crate::storage::{BlobUpload, LinkStore};

/// A resumable upload (`ocistore.BlobWriter` wraps it). `write` takes any contiguous buffer
/// without copying it and releases the GIL; `close` checkpoints (the upload stays resumable by
/// id, from any process); `commit` verifies and moves the blob into place — for an upload of a
/// repository by the linked-blob protocol, in one call; `cancel` removes the upload.
#[pyclass(frozen, module = "ocistore._core", name = "Upload")]
pub struct PyUpload {
    upload: Mutex<Box<dyn BlobUpload>>,
    /// The links and the repository a commit links the blob into.
    linked: Option<(Arc<dyn LinkStore>, String)>,
    /// Even small writes release the GIL (see `BlobUpload::writes_may_wait`).
    writes_may_wait: bool,
    id: String,
    started_at: String,
}

impl PyUpload {
    pub fn new(upload: Box<dyn BlobUpload>, linked: Option<(Arc<dyn LinkStore>, String)>) -> Self {
        Self {
            linked,
            id: upload.id().to_owned(),
            started_at: upload.started_at().to_owned(),
            writes_may_wait: upload.writes_may_wait(),
            upload: Mutex::new(upload),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Box<dyn BlobUpload>> {
        self.upload.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the upload without ever waiting for its lock while holding the GIL (another
    /// thread may hold the lock for a long write, with the GIL released).
    fn with_upload<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Box<dyn BlobUpload>) -> T + Send,
    ) -> T {
        match self.upload.try_lock() {
            Ok(mut guard) => f(&mut guard),
            Err(TryLockError::Poisoned(poisoned)) => f(&mut poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => py.detach(|| f(&mut self.lock())),
        }
    }
}

#[pymethods]
impl PyUpload {
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
    fn size(&self, py: Python<'_>) -> u64 {
        self.with_upload(py, |u| u.size())
    }

    #[getter]
    fn algorithm(&self, py: Python<'_>) -> &'static str {
        self.with_upload(py, |u| u.algorithm().name())
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.with_upload(py, |u| !u.is_open())
    }

    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let buf = InputBuffer::new(data)?;
        let bytes = buf.as_slice();
        if bytes.len() >= GIL_RELEASE_MIN || self.writes_may_wait {
            py.detach(|| self.lock().write(bytes))?;
        } else {
            self.with_upload(py, |u| u.write(bytes))?;
        }
        Ok(bytes.len())
    }

    /// Appends `length` bytes of the file at `path` from `offset` (fewer if it ends first),
    /// read by the core with the GIL released; returns how many. With `caching="direct"` the
    /// bytes go from the file straight into the aligned stage (one copy fewer than `write`).
    fn write_from(&self, py: Python<'_>, path: PathBuf, offset: u64, length: u64) -> PyResult<u64> {
        let done = py.detach(|| {
            let src = File::open(&path).at("open", &path)?;
            self.lock().write_from_file(&src, offset, length)
        })?;
        Ok(done)
    }

    /// Data and hash state made durable (or, with `durable=False`, saved without waiting for
    /// the disk: trusted until the machine restarts; on an object store every checkpoint is
    /// durable); the writer stays open.
    #[pyo3(signature = (durable = true))]
    fn checkpoint(&self, py: Python<'_>, durable: bool) -> PyResult<()> {
        py.detach(|| self.lock().checkpoint(durable))?;
        Ok(())
    }

    #[pyo3(signature = (durable = true))]
    fn close(&self, py: Python<'_>, durable: bool) -> PyResult<()> {
        py.detach(|| self.lock().close(durable))?;
        Ok(())
    }

    /// Verifies and moves into place; returns the size. `digest` may use another algorithm than
    /// the one streamed, at the cost of one full re-hash. An upload of a repository is
    /// committed by the linked-blob protocol: link, publish, mark (`crate::linked`).
    #[pyo3(signature = (digest, size = None))]
    fn commit(
        &self,
        py: Python<'_>,
        digest: &Bound<'_, PyAny>,
        size: Option<u64>,
    ) -> PyResult<u64> {
        let expected = digest_arg(digest)?;
        let committed = py.detach(|| {
            let mut upload = self.lock();
            match &self.linked {
                Some((links, name)) => {
                    linked::commit(&**links, &mut **upload, name, &expected, size)
                        .map_err(|failed| failed.into_error(&expected))
                }
                None => upload.commit(&expected, expected.algorithm(), size, &mut |_| Ok(())),
            }
        })?;
        Ok(committed)
    }

    /// The running hash state of the bytes so far (Go's format for sha256 and sha512), which
    /// `Storage.rewind` takes back.
    fn hash_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let state = self.with_upload(py, |u| u.hash_state());
        PyBytes::new(py, &state)
    }

    /// Moves the bytes to the local file `target` without verifying them; the upload is then
    /// gone (filesystem storage only).
    fn move_data_to(&self, py: Python<'_>, target: PathBuf) -> PyResult<()> {
        py.detach(|| self.lock().move_data_to(&target))?;
        Ok(())
    }

    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.lock().cancel())?;
        Ok(())
    }

    /// The digest of the bytes so far in the streamed algorithm.
    fn digest(&self, py: Python<'_>) -> PyDigest {
        PyDigest {
            inner: self.with_upload(py, |u| u.digest()),
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
