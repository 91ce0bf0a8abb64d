use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::digest::digest_arg;
use crate::objstore::keys::{check_key, check_prefix};
use crate::objstore::runtime::block_on;
use crate::objstore::{AzureConfig, GcsConfig, Remote, S3Config};
use crate::objstore::{blobs, upload};
use crate::py::buffer::InputBuffer;

/// An S3 bucket (or S3-compatible server) with distribution's S3 driver settings. Keys are
/// relative to `root_directory`; every method releases the GIL while it waits for the store.
#[pyclass(frozen, module = "ocistore._core", name = "ObjectStore")]
pub struct PyObjectStore {
    /// The bucket (S3, GCS) or container (Azure).
    bucket: String,
    pub(crate) remote: Arc<Remote>,
}

#[pymethods]
impl PyObjectStore {
    #[new]
    #[pyo3(signature = (
        bucket,
        *,
        region = "us-east-1",
        endpoint = None,
        access_key = None,
        secret_key = None,
        root_directory = "",
        force_path_style = true,
        chunk_size = 10485760,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        bucket: &str,
        region: &str,
        endpoint: Option<&str>,
        access_key: Option<&str>,
        secret_key: Option<&str>,
        root_directory: &str,
        force_path_style: bool,
        chunk_size: u64,
    ) -> PyResult<Self> {
        let config = S3Config::new(
            bucket,
            Some(region),
            endpoint,
            access_key,
            secret_key,
            root_directory,
            Some(force_path_style),
            Some(chunk_size),
        )?;
        let remote = Remote::connect(&config)?;
        Ok(Self {
            bucket: config.bucket.clone(),
            remote,
        })
    }

    /// An Azure Blob Storage container, with distribution's `storage.azure` settings
    /// (`service_url`, else `https://<account>.blob.<realm>`).
    #[staticmethod]
    #[pyo3(signature = (
        account,
        key,
        container,
        *,
        service_url = None,
        realm = None,
        root_directory = "",
        chunk_size = 10485760,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn azure(
        account: &str,
        key: &str,
        container: &str,
        service_url: Option<&str>,
        realm: Option<&str>,
        root_directory: &str,
        chunk_size: u64,
    ) -> PyResult<Self> {
        let config = AzureConfig::new(
            account,
            key,
            container,
            service_url,
            realm,
            root_directory,
            Some(chunk_size),
        )?;
        let remote = Remote::connect_azure(&config)?;
        Ok(Self {
            bucket: config.container.clone(),
            remote,
        })
    }

    /// A Google Cloud Storage bucket, with distribution's `storage.gcs` settings: a service
    /// account key as a file (`keyfile`) or as JSON text (`credentials`), else the application
    /// default credentials; `endpoint` for an emulator or a private endpoint.
    #[staticmethod]
    #[pyo3(signature = (
        bucket,
        *,
        keyfile = None,
        credentials = None,
        root_directory = "",
        chunk_size = 16777216,
        endpoint = None,
    ))]
    fn gcs(
        bucket: &str,
        keyfile: Option<&str>,
        credentials: Option<&str>,
        root_directory: &str,
        chunk_size: u64,
        endpoint: Option<&str>,
    ) -> PyResult<Self> {
        let config = GcsConfig::new(
            bucket,
            keyfile,
            credentials,
            root_directory,
            Some(chunk_size),
            endpoint,
        )?;
        let remote = Remote::connect_gcs(&config)?;
        Ok(Self {
            bucket: config.bucket.clone(),
            remote,
        })
    }

    #[getter]
    fn bucket(&self) -> &str {
        &self.bucket
    }

    #[getter]
    fn root_directory(&self) -> &str {
        self.remote.root().dir()
    }

    #[getter]
    fn chunk_size(&self) -> u64 {
        self.remote.chunk_size()
    }

    /// "s3://bucket/rootdirectory".
    #[getter]
    fn url(&self) -> &str {
        self.remote.url()
    }

    /// The object's bytes; None if there is no such object.
    fn read<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        check_key(key)?;
        let got = py.detach(|| block_on(self.remote.read(key)))?;
        Ok(got.map(|(bytes, _)| PyBytes::new(py, &bytes)))
    }

    /// Up to `length` bytes from `offset` (fewer at the end, none past it); an absent object
    /// raises FileNotFoundError.
    fn read_range<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        offset: u64,
        length: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        check_key(key)?;
        let end = offset
            .checked_add(length)
            .ok_or_else(|| PyValueError::new_err("offset + length overflows"))?;
        let bytes = py.detach(|| block_on(self.remote.read_range(key, offset..end)))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Replaces the object with `data` in one PUT: readers see the old or the new bytes.
    fn write(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        check_key(key)?;
        let buf = InputBuffer::new(data)?;
        let bytes = buf.as_slice();
        py.detach(|| block_on(self.remote.write(key, Bytes::copy_from_slice(bytes))))?;
        Ok(())
    }

    /// (size, last modified as UNIX seconds), or None if there is no such object.
    fn stat(&self, py: Python<'_>, key: &str) -> PyResult<Option<(u64, f64)>> {
        check_key(key)?;
        let meta = py.detach(|| block_on(self.remote.head(key)))?;
        Ok(meta.map(|m| (m.size, m.last_modified.timestamp_micros() as f64 / 1e6)))
    }

    /// The sorted names of the objects and "directories" directly under `prefix` ("" is the
    /// root directory), like `os.listdir`; [] when there are none.
    #[pyo3(signature = (prefix = ""))]
    fn list(&self, py: Python<'_>, prefix: &str) -> PyResult<Vec<String>> {
        let prefix = check_prefix(prefix)?;
        Ok(py.detach(|| block_on(self.remote.list(prefix)))?)
    }

    /// Every object key under `prefix`, relative to the root directory, sorted.
    #[pyo3(signature = (prefix = ""))]
    fn walk(&self, py: Python<'_>, prefix: &str) -> PyResult<Vec<String>> {
        let prefix = check_prefix(prefix)?;
        let objects = py.detach(|| block_on(self.remote.walk(prefix)))?;
        let root = self.remote.root();
        Ok(objects
            .iter()
            .filter_map(|o| root.relative(&o.location))
            .collect())
    }

    /// Whether any object is under `prefix` (one listing request, however many there are).
    /// Prefixes left behind empty do not count.
    fn any_under(&self, py: Python<'_>, prefix: &str) -> PyResult<bool> {
        let prefix = check_prefix(prefix)?;
        Ok(py.detach(|| block_on(self.remote.any_under(prefix)))?)
    }

    /// Deletes the object `key` and every object under `key/`; True if there was any.
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        check_key(key)?;
        Ok(py.detach(|| block_on(self.remote.delete_tree(key)))?)
    }

    /// Removes the upload under `key` as cancelling it does: aborts the multipart upload its
    /// state records, then deletes every object under it; True if there was any.
    fn delete_upload(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        check_key(key)?;
        Ok(py.detach(|| block_on(upload::purge(&self.remote, key)))?)
    }

    /// Copies the object `source` to `target` in the store (no byte through here).
    fn copy(&self, py: Python<'_>, source: &str, target: &str) -> PyResult<()> {
        check_key(source)?;
        check_key(target)?;
        Ok(py.detach(|| block_on(self.remote.copy(source, target)))?)
    }

    /// A presigned GET URL for the object, valid for `expires_seconds`.
    fn signed_url(&self, py: Python<'_>, key: &str, expires_seconds: f64) -> PyResult<String> {
        check_key(key)?;
        let expires = Duration::try_from_secs_f64(expires_seconds)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "expires_seconds must be positive, not {expires_seconds}"
                ))
            })?;
        Ok(py.detach(|| block_on(self.remote.signed_url(key, expires)))?)
    }

    /// The presigned URL a GET of blob `digest` is redirected to (`storage.redirect`).
    fn blob_redirect_url(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<String> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| block_on(blobs::redirect_url(&self.remote, &digest)))?)
    }

    fn __repr__(&self) -> String {
        format!("<ObjectStore {}>", self.remote.url())
    }
}
