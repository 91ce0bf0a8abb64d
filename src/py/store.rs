use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::digest::{PyDigest, digest_arg};
use super::objstore::PyObjectStore;
use super::reader::PyBlobReader;
use super::writer::PyBlobWriter;
use crate::digest::Algorithm;
use crate::objstore::ObjectBlobs;
use crate::py::buffer::InputBuffer;
use crate::storage::{BlobBackend, Caching, Location};
use crate::store::backend::FsBlobs;

/// A file path as the filesystem store has always returned it, or an object key as a str.
pub fn location_object(py: Python<'_>, location: Location) -> PyResult<Bound<'_, PyAny>> {
    match location {
        Location::Path(path) => Ok(path.into_pyobject(py)?.into_any()),
        Location::Key(key) => Ok(PyString::new(py, &key).into_any()),
    }
}

/// The global content-addressed store: distribution's layout under a directory, or under the
/// root directory of an object store (`BlobStore.on_object_store`).
#[pyclass(frozen, module = "ocistore._core", name = "BlobStore")]
pub struct PyBlobStore {
    backend: Arc<dyn BlobBackend>,
}

#[pymethods]
impl PyBlobStore {
    #[new]
    fn new(root: PathBuf) -> Self {
        Self {
            backend: Arc::new(FsBlobs::new(root)),
        }
    }

    /// The blob store on an object store's root directory; `path` then gives object keys
    /// relative to it and `uploads_dir` is a key prefix.
    #[staticmethod]
    fn on_object_store(store: &Bound<'_, PyObjectStore>) -> Self {
        Self {
            backend: Arc::new(ObjectBlobs::new(store.get().remote.clone())),
        }
    }

    /// The directory, or the object store's URL ("s3://bucket/rootdirectory").
    #[getter]
    fn root<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        location_object(py, self.backend.root())
    }

    /// Size of the blob; `ErrBlobUnknown` if absent.
    fn stat(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<u64> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| self.backend.stat(&digest))?)
    }

    /// Where the blob's bytes live (whether or not it exists): a file path, or an object key.
    fn path<'py>(&self, py: Python<'py>, digest: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        location_object(py, self.backend.location(&digest_arg(digest)?))
    }

    fn open(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<PyBlobReader> {
        let digest = digest_arg(digest)?;
        let (source, size) = py.detach(|| self.backend.open(&digest))?;
        Ok(PyBlobReader::new(
            source,
            size,
            self.backend.location(&digest),
            digest.to_string(),
        ))
    }

    fn get<'py>(
        &self,
        py: Python<'py>,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let digest = digest_arg(digest)?;
        let (mut source, size) = py.detach(|| self.backend.open(&digest))?;
        PyBytes::new_with(py, size as usize, |buf| {
            py.detach(|| source.read_exact_at(buf, 0))?;
            Ok(())
        })
    }

    /// Stores `data` in one go; returns its digest and size.
    #[pyo3(signature = (data, algorithm = "sha256"))]
    fn put(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        algorithm: &str,
    ) -> PyResult<(PyDigest, u64)> {
        let algorithm = Algorithm::parse(algorithm)?;
        let buf = InputBuffer::new(data)?;
        let bytes = buf.as_slice();
        let (digest, size) = py.detach(|| self.backend.put(bytes, algorithm))?;
        Ok((PyDigest { inner: digest }, size))
    }

    /// `caching`: "keep" (pages stay cached), "stream" (dropped once on disk) or "direct"
    /// (`O_DIRECT`); the last two are for bulk ingest. An object store ignores it.
    #[pyo3(signature = (algorithm = "sha256", uploads_dir = None, caching = "keep"))]
    fn create(
        &self,
        py: Python<'_>,
        algorithm: &str,
        uploads_dir: Option<PathBuf>,
        caching: &str,
    ) -> PyResult<PyBlobWriter> {
        let algorithm = Algorithm::parse(algorithm)?;
        let caching = Caching::parse(caching)?;
        let upload = py.detach(|| {
            self.backend
                .create(algorithm, uploads_dir.as_deref(), caching)
        })?;
        Ok(PyBlobWriter::new(upload))
    }

    #[pyo3(signature = (upload_id, uploads_dir = None, caching = "keep"))]
    fn resume(
        &self,
        py: Python<'_>,
        upload_id: &str,
        uploads_dir: Option<PathBuf>,
        caching: &str,
    ) -> PyResult<PyBlobWriter> {
        let caching = Caching::parse(caching)?;
        let upload = py.detach(|| {
            self.backend
                .resume(upload_id, uploads_dir.as_deref(), caching)
        })?;
        Ok(PyBlobWriter::new(upload))
    }

    fn delete(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<()> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| self.backend.delete(&digest))?)
    }

    /// Every stored blob's digest, sorted.
    fn enumerate(&self, py: Python<'_>) -> PyResult<Vec<PyDigest>> {
        let digests = py.detach(|| self.backend.enumerate())?;
        Ok(digests
            .into_iter()
            .map(|inner| PyDigest { inner })
            .collect())
    }
}
