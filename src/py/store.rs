use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::digest::{PyDigest, digest_arg};
use super::reader::PyBlobReader;
use super::writer::PyBlobWriter;
use crate::buffer::InputBuffer;
use crate::digest::Algorithm;
use crate::error::{IoContext, StoreError};
use crate::store::upload::{Caching, Upload};
use crate::store::{self, Layout};
use std::os::unix::fs::FileExt;

/// The global content-addressed store on distribution's layout under `root`.
#[pyclass(frozen, module = "ocistore._core", name = "BlobStore")]
pub struct PyBlobStore {
    root: PathBuf,
    layout: Layout,
}

impl PyBlobStore {
    fn uploads(&self, uploads_dir: Option<PathBuf>) -> PathBuf {
        uploads_dir.unwrap_or_else(|| self.layout.global_uploads())
    }
}

#[pymethods]
impl PyBlobStore {
    #[new]
    fn new(root: PathBuf) -> Self {
        let layout = Layout::new(&root);
        Self { root, layout }
    }

    #[getter]
    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// Size of the blob; `ErrBlobUnknown` if absent.
    fn stat(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<u64> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| store::stat(&self.layout, &digest))?)
    }

    /// Where the blob's bytes live (whether or not it exists).
    fn path(&self, digest: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
        Ok(self.layout.blob_data(&digest_arg(digest)?))
    }

    fn open(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<PyBlobReader> {
        let digest = digest_arg(digest)?;
        let (file, size) = py.detach(|| store::open(&self.layout, &digest))?;
        Ok(PyBlobReader::new(
            file,
            size,
            self.layout.blob_data(&digest),
            digest.to_string(),
        ))
    }

    fn get<'py>(
        &self,
        py: Python<'py>,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let digest = digest_arg(digest)?;
        let (file, size) = py.detach(|| store::open(&self.layout, &digest))?;
        let path = self.layout.blob_data(&digest);
        PyBytes::new_with(py, size as usize, |buf| {
            py.detach(|| file.read_exact_at(buf, 0).at("read", &path))?;
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
        let uploads = self.layout.global_uploads();
        let (digest, size) = py.detach(|| {
            let mut upload = Upload::create(&uploads, algorithm, Caching::Keep)?;
            let stored = (|| {
                upload.write(bytes)?;
                let digest = upload.digest();
                let size = upload.commit(&self.layout, &digest, Some(bytes.len() as u64))?;
                Ok::<_, StoreError>((digest, size))
            })();
            if stored.is_err() {
                let _ = upload.cancel();
            }
            stored
        })?;
        Ok((PyDigest { inner: digest }, size))
    }

    /// `caching`: "keep" (pages stay cached), "stream" (dropped once on disk) or "direct"
    /// (`O_DIRECT`); the last two are for bulk ingest.
    #[pyo3(signature = (algorithm = "sha256", uploads_dir = None, caching = "keep"))]
    fn create(
        &self,
        py: Python<'_>,
        algorithm: &str,
        uploads_dir: Option<PathBuf>,
        caching: &str,
    ) -> PyResult<PyBlobWriter> {
        let algorithm = Algorithm::parse(algorithm)?;
        let uploads = self.uploads(uploads_dir);
        let caching = Caching::parse(caching)?;
        let upload = py.detach(|| Upload::create(&uploads, algorithm, caching))?;
        Ok(PyBlobWriter::new(upload, self.layout.clone()))
    }

    #[pyo3(signature = (upload_id, uploads_dir = None, caching = "keep"))]
    fn resume(
        &self,
        py: Python<'_>,
        upload_id: &str,
        uploads_dir: Option<PathBuf>,
        caching: &str,
    ) -> PyResult<PyBlobWriter> {
        let uploads = self.uploads(uploads_dir);
        let caching = Caching::parse(caching)?;
        let upload = py.detach(|| Upload::resume(&uploads, upload_id, caching))?;
        Ok(PyBlobWriter::new(upload, self.layout.clone()))
    }

    fn delete(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<()> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| store::delete(&self.layout, &digest))?)
    }

    /// Every stored blob's digest, sorted.
    fn enumerate(&self, py: Python<'_>) -> PyResult<Vec<PyDigest>> {
        let digests = py.detach(|| store::enumerate(&self.layout))?;
        Ok(digests
            .into_iter()
            .map(|inner| PyDigest { inner })
            .collect())
    }
}
