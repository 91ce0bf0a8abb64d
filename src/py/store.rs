use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::digest::{PyDigest, digest_arg};
use super::objstore::PyObjectStore;
use super::reader::PyBlobReader;
use super::writer::PyUpload;
use crate::digest::Algorithm;
use crate::error::Result;
use crate::layout;
use crate::linked;
use crate::manifest_commit;
use crate::manifest_delete;
use crate::objstore::ObjectBlobs;
use crate::py::buffer::InputBuffer;
use crate::storage::{
    BlobBackend, BlobUpload, Caching, GcClaim, GcLease, Hold, LinkStore, Location, Storage,
};
use crate::store::backend::FsBlobs;
use crate::tags;

/// A file path as the filesystem store has always returned it, or an object key as a str.
pub fn location_object(py: Python<'_>, location: Location) -> PyResult<Bound<'_, PyAny>> {
    match location {
        Location::Path(path) => Ok(path.into_pyobject(py)?.into_any()),
        Location::Key(key) => Ok(PyString::new(py, &key).into_any()),
    }
}

/// The global content-addressed store: distribution's layout under a directory, or under the
/// root directory of an object store (`Storage.on_object_store`): blobs, uploads, links and the
/// GC lock. `ocistore.BlobStore` and the registry services wrap it.
#[pyclass(frozen, module = "ocistore._core", name = "Storage")]
pub struct PyStorage {
    storage: Storage,
}

impl PyStorage {
    fn over(backend: Arc<dyn BlobBackend>) -> Self {
        Self {
            storage: Storage::new(backend),
        }
    }

    fn upload(&self, upload: Box<dyn BlobUpload>, repository: Option<String>) -> PyUpload {
        let linked = repository.map(|name| (self.storage.links.clone(), name));
        PyUpload::new(upload, linked)
    }
}

/// A repository's uploads are in its `_uploads` unless the caller names a place.
fn uploads_for(uploads_dir: Option<PathBuf>, repository: Option<&str>) -> Option<PathBuf> {
    uploads_dir.or_else(|| repository.map(|name| PathBuf::from(layout::uploads(Some(name)))))
}

/// `Storage.gc_lock()`: held between `__enter__` and `__exit__`, waiting with the GIL
/// released.
#[pyclass(frozen, module = "ocistore._core", name = "GcLock")]
pub struct PyGcLock {
    links: Arc<dyn LinkStore>,
    exclusive: bool,
    hold: Mutex<Option<Hold>>,
}

#[pymethods]
impl PyGcLock {
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let py = slf.py();
        let this = slf.get();
        let hold = py.detach(|| this.links.gc_lock(this.exclusive))?;
        *this.hold.lock().unwrap_or_else(|e| e.into_inner()) = Some(hold);
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.hold.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// `Storage.gc_claim(key)`: the collector's hold on one object (`crate::storage::GcClaim`),
/// taken when made and released by `__exit__` (or `release`).
#[pyclass(frozen, module = "ocistore._core", name = "GcClaim")]
pub struct PyGcClaim {
    claim: Mutex<Option<Box<dyn GcClaim>>>,
}

impl PyGcClaim {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&dyn GcClaim) -> Result<T> + Send,
    ) -> PyResult<T> {
        let claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
        let claim = claim
            .as_deref()
            .ok_or_else(|| PyValueError::new_err("the claim was released"))?;
        Ok(py.detach(|| f(claim))?)
    }
}

#[pymethods]
impl PyGcClaim {
    /// When the object was last written or marked (UNIX seconds, the storage's clock); None
    /// when it is gone.
    fn marked_at(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        self.with(py, |claim| claim.marked_at())
    }

    /// Whether a delete may still rely on the claim.
    fn holds(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |claim| Ok(claim.holds()))
    }

    /// Removes the object's mark (once the object is deleted).
    fn forget(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |claim| claim.forget())
    }

    fn release(&self, py: Python<'_>) {
        let claim = self.claim.lock().unwrap_or_else(|e| e.into_inner()).take();
        py.detach(|| drop(claim));
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.release(py);
    }
}

/// `Storage.gc_lease(owner)`: the one collector's lease (`crate::storage::GcLease`).
#[pyclass(frozen, module = "ocistore._core", name = "GcLease")]
pub struct PyGcLease {
    lease: Box<dyn GcLease>,
}

#[pymethods]
impl PyGcLease {
    /// The storage's clock when the lease was taken (UNIX seconds).
    #[getter]
    fn started_at(&self) -> f64 {
        self.lease.started_at()
    }

    /// Renews the lease when due; False when it was lost.
    fn renew(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(py.detach(|| self.lease.renew())?)
    }

    fn holds(&self) -> bool {
        self.lease.holds()
    }

    fn release(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.lease.release())?)
    }
}

#[pymethods]
impl PyStorage {
    #[new]
    fn new(root: PathBuf) -> Self {
        Self::over(Arc::new(FsBlobs::new(root)))
    }

    /// The blob store on an object store's root directory; `path` then gives object keys
    /// relative to it and `uploads_dir` is a key prefix.
    #[staticmethod]
    fn on_object_store(store: &Bound<'_, PyObjectStore>) -> Self {
        Self::over(Arc::new(ObjectBlobs::new(store.get().remote.clone())))
    }

    /// The directory, or the object store's URL ("s3://bucket/rootdirectory").
    #[getter]
    fn root<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        location_object(py, self.storage.blobs.root())
    }

    /// Size of the blob; `ErrBlobUnknown` if absent.
    fn stat(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<u64> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| self.storage.blobs.stat(&digest))?)
    }

    /// Where the blob's bytes live (whether or not it exists): a file path, or an object key.
    fn path<'py>(&self, py: Python<'py>, digest: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        location_object(py, self.storage.blobs.location(&digest_arg(digest)?))
    }

    fn open(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<PyBlobReader> {
        let digest = digest_arg(digest)?;
        let (source, size) = py.detach(|| self.storage.blobs.open(&digest))?;
        Ok(PyBlobReader::new(
            source,
            size,
            self.storage.blobs.location(&digest),
            digest.to_string(),
        ))
    }

    fn get<'py>(
        &self,
        py: Python<'py>,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let digest = digest_arg(digest)?;
        let (mut source, size) = py.detach(|| self.storage.blobs.open(&digest))?;
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
        let (digest, size) = py.detach(|| self.storage.blobs.put(bytes, algorithm))?;
        Ok((PyDigest { inner: digest }, size))
    }

    /// `caching`: "keep" (pages stay cached), "stream" (dropped once on disk) or "direct"
    /// (`O_DIRECT`); the last two are for bulk ingest. An object store ignores it. With
    /// `repository`, the upload lives in that repository's `_uploads` (unless `uploads_dir` says
    /// otherwise) and its commit links the blob there (`crate::linked`).
    #[pyo3(signature = (algorithm = "sha256", uploads_dir = None, caching = "keep", repository = None))]
    fn create(
        &self,
        py: Python<'_>,
        algorithm: &str,
        uploads_dir: Option<PathBuf>,
        caching: &str,
        repository: Option<String>,
    ) -> PyResult<PyUpload> {
        let algorithm = Algorithm::parse(algorithm)?;
        let caching = Caching::parse(caching)?;
        let uploads = uploads_for(uploads_dir, repository.as_deref());
        let upload = py.detach(|| {
            self.storage
                .blobs
                .create(algorithm, uploads.as_deref(), caching)
        })?;
        Ok(self.upload(upload, repository))
    }

    #[pyo3(signature = (upload_id, uploads_dir = None, caching = "keep", repository = None))]
    fn resume(
        &self,
        py: Python<'_>,
        upload_id: &str,
        uploads_dir: Option<PathBuf>,
        caching: &str,
        repository: Option<String>,
    ) -> PyResult<PyUpload> {
        let caching = Caching::parse(caching)?;
        let uploads = uploads_for(uploads_dir, repository.as_deref());
        let upload = py.detach(|| {
            self.storage
                .blobs
                .resume(upload_id, uploads.as_deref(), caching)
        })?;
        Ok(self.upload(upload, repository))
    }

    /// The upload as it was at `size` bytes with hash state `state` (from `Upload.hash_state`):
    /// bytes past `size` are dropped, crash-safely. Filesystem storage only.
    #[pyo3(signature = (upload_id, size, state, uploads_dir = None, caching = "keep"))]
    fn rewind(
        &self,
        py: Python<'_>,
        upload_id: &str,
        size: u64,
        state: &[u8],
        uploads_dir: Option<PathBuf>,
        caching: &str,
    ) -> PyResult<PyUpload> {
        let caching = Caching::parse(caching)?;
        let upload = py.detach(|| {
            self.storage
                .blobs
                .rewind(upload_id, uploads_dir.as_deref(), size, state, caching)
        })?;
        Ok(self.upload(upload, None))
    }

    /// The upload of `repository`, taken for one request: held against every other request
    /// (any process) until closed, committed, cancelled or dropped; `ErrBlobUploadInUse` while
    /// another holds it.
    #[pyo3(signature = (upload_id, repository, caching = "keep"))]
    fn claim(
        &self,
        py: Python<'_>,
        upload_id: &str,
        repository: String,
        caching: &str,
    ) -> PyResult<PyUpload> {
        let caching = Caching::parse(caching)?;
        let uploads = PathBuf::from(layout::uploads(Some(&repository)));
        let upload = py.detach(|| self.storage.blobs.claim(upload_id, Some(&uploads), caching))?;
        Ok(self.upload(upload, Some(repository)))
    }

    /// Links a stored blob into `repository` (a mount, or a blob stored whole), marking it
    /// used for the garbage collector; `ErrBlobUnknown` if the registry does not have it.
    /// With `stored`, the bytes are those of another digest (a blob mounted from a repository
    /// that links it by distribution's alias) and the new link is an alias too; without, a
    /// sha512 digest is found through ocistore's global alias (`crate::linked::link`).
    #[pyo3(signature = (repository, digest, stored = None))]
    fn link(
        &self,
        py: Python<'_>,
        repository: &str,
        digest: &Bound<'_, PyAny>,
        stored: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let digest = digest_arg(digest)?;
        let stored = stored.map(digest_arg).transpose()?;
        Ok(py.detach(|| match &stored {
            Some(stored) => {
                linked::link_stored_as(&*self.storage.links, repository, &digest, stored)
            }
            None => linked::link(&*self.storage.links, repository, &digest),
        })?)
    }

    /// The digest whose bytes `repository` serves under `digest` (itself, or the target of
    /// distribution's alias link); None when it does not link the blob.
    fn resolve(
        &self,
        py: Python<'_>,
        repository: &str,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<Option<PyDigest>> {
        let digest = digest_arg(digest)?;
        let found = py.detach(|| linked::resolve(&*self.storage.links, repository, &digest))?;
        Ok(found.map(|inner| PyDigest { inner }))
    }

    /// Whether `repository` links the blob.
    fn is_linked(
        &self,
        py: Python<'_>,
        repository: &str,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| linked::is_linked(&*self.storage.links, repository, &digest))?)
    }

    /// The manifest commit's first step (`crate::manifest_commit`): marks the revision link of
    /// `digest` in `repository`, under the shared GC lock the caller holds.
    fn mark_revision(
        &self,
        py: Python<'_>,
        repository: &str,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| manifest_commit::mark_revision(&self.storage, repository, &digest))?)
    }

    /// A manifest's referenced blob, checked and marked (`crate::manifest_commit`): the digest
    /// of the bytes `repository` serves under `digest`; None when it does not have them.
    fn check_blob_reference(
        &self,
        py: Python<'_>,
        repository: &str,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<Option<PyDigest>> {
        let digest = digest_arg(digest)?;
        let found = py
            .detach(|| manifest_commit::check_blob_reference(&self.storage, repository, &digest))?;
        Ok(found.map(|inner| PyDigest { inner }))
    }

    /// Stores a verified manifest's bytes and links (`crate::manifest_commit::store`).
    #[pyo3(signature = (repository, digest, payload, subject, tags))]
    fn store_manifest(
        &self,
        py: Python<'_>,
        repository: &str,
        digest: &Bound<'_, PyAny>,
        payload: &Bound<'_, PyAny>,
        subject: Option<&Bound<'_, PyAny>>,
        tags: Vec<String>,
    ) -> PyResult<()> {
        let digest = digest_arg(digest)?;
        let subject = subject.map(digest_arg).transpose()?;
        let buf = InputBuffer::new(payload)?;
        let bytes = buf.as_slice();
        py.detach(|| {
            manifest_commit::store(
                &self.storage,
                repository,
                &digest,
                bytes,
                subject.as_ref(),
                &tags,
            )
        })?;
        Ok(())
    }

    /// Points `tag` of `repository` at `digest`: its index link, then its current link
    /// (`crate::manifest_commit::write_tag`), under the shared GC lock the caller holds.
    fn write_tag(
        &self,
        py: Python<'_>,
        repository: &str,
        tag: &str,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| manifest_commit::write_tag(&self.storage, repository, tag, &digest))?)
    }

    /// The names directly under `key`, sorted; [] when there are none.
    fn list(&self, py: Python<'_>, key: &str) -> PyResult<Vec<String>> {
        layout::check_key(key)?;
        Ok(py.detach(|| self.storage.links.list(key))?)
    }

    /// Whether there is an object at `key` or under it.
    fn exists(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        layout::check_key(key)?;
        Ok(py.detach(|| self.storage.links.exists(key))?)
    }

    /// Removes the object at `key` and everything under it; False when there was nothing.
    fn remove(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        layout::check_key(key)?;
        Ok(py.detach(|| self.storage.links.delete(key))?)
    }

    /// Removes empty directories from `key` up to, not including, `stop`.
    fn prune_empty(&self, py: Python<'_>, key: &str, stop: &str) -> PyResult<()> {
        layout::check_key(key)?;
        layout::check_key(stop)?;
        Ok(py.detach(|| self.storage.links.prune_empty(key, stop))?)
    }

    /// Removes `repository`'s link to the blob (`crate::linked::unlink`); False when it does
    /// not link it.
    fn unlink(
        &self,
        py: Python<'_>,
        repository: &str,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| linked::unlink(&*self.storage.links, repository, &digest))?)
    }

    /// The repository's tags, sorted (`crate::tags::tags`); None when the repository is not
    /// known.
    fn tags(&self, py: Python<'_>, repository: &str) -> PyResult<Option<Vec<String>>> {
        Ok(py.detach(|| tags::tags(&*self.storage.links, repository))?)
    }

    /// Whether the repository holds manifests, linked blobs or uploads.
    fn repository_exists(&self, py: Python<'_>, repository: &str) -> PyResult<bool> {
        Ok(py.detach(|| tags::repository_exists(&*self.storage.links, repository))?)
    }

    /// The repository's tags that point at `digest`, sorted.
    fn tagged(
        &self,
        py: Python<'_>,
        repository: &str,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<String>> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| tags::tagged(&*self.storage.links, repository, &digest))?)
    }

    /// Removes the tag (`crate::tags::untag`); False when there is no such tag.
    fn untag(&self, py: Python<'_>, repository: &str, tag: &str) -> PyResult<bool> {
        Ok(py.detach(|| tags::untag(&*self.storage.links, repository, tag))?)
    }

    /// Deletes the manifest from the repository (`crate::manifest_delete::delete`): the tags
    /// on it, its entry in `subject`'s referrers index, its revision link. False when the
    /// repository does not hold it.
    #[pyo3(signature = (repository, digest, subject))]
    fn delete_manifest(
        &self,
        py: Python<'_>,
        repository: &str,
        digest: &Bound<'_, PyAny>,
        subject: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let digest = digest_arg(digest)?;
        let subject = subject.map(digest_arg).transpose()?;
        Ok(py.detach(|| {
            manifest_delete::delete(&self.storage, repository, &digest, subject.as_ref())
        })?)
    }

    /// Marks the object at `key` used now, for the garbage collector; False if there is none.
    fn mark(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        Ok(py.detach(|| self.storage.links.mark(key))?)
    }

    /// The lock between pushes (shared) and the garbage collector's deletes (exclusive), as a
    /// context manager.
    #[pyo3(signature = (exclusive = false))]
    fn gc_lock(&self, exclusive: bool) -> PyGcLock {
        PyGcLock {
            links: self.storage.links.clone(),
            exclusive,
            hold: Mutex::new(None),
        }
    }

    /// The collector's claim on the object at `key` (the exclusive GC lock on a filesystem),
    /// as a context manager.
    fn gc_claim(&self, py: Python<'_>, key: &str) -> PyResult<PyGcClaim> {
        let claim = py.detach(|| self.storage.links.gc_claim(key))?;
        Ok(PyGcClaim {
            claim: Mutex::new(Some(claim)),
        })
    }

    /// The one collector's lease for a term of `ttl_seconds`, or (a str) who holds it now.
    #[pyo3(signature = (owner, ttl_seconds = 60.0))]
    fn gc_lease<'py>(
        &self,
        py: Python<'py>,
        owner: &str,
        ttl_seconds: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ttl = Duration::try_from_secs_f64(ttl_seconds)
            .ok()
            .filter(|ttl| *ttl >= Duration::from_secs(1))
            .ok_or_else(|| PyValueError::new_err("the lease's term must be at least 1 second"))?;
        match py.detach(|| self.storage.links.gc_lease(owner, ttl))? {
            Ok(lease) => Ok(Bound::new(py, PyGcLease { lease })?.into_any()),
            Err(holder) => Ok(PyString::new(py, &holder).into_any()),
        }
    }

    fn delete(&self, py: Python<'_>, digest: &Bound<'_, PyAny>) -> PyResult<()> {
        let digest = digest_arg(digest)?;
        Ok(py.detach(|| self.storage.blobs.delete(&digest))?)
    }

    /// Every stored blob's digest, sorted.
    fn enumerate(&self, py: Python<'_>) -> PyResult<Vec<PyDigest>> {
        let digests = py.detach(|| self.storage.blobs.enumerate())?;
        Ok(digests
            .into_iter()
            .map(|inner| PyDigest { inner })
            .collect())
    }
}
