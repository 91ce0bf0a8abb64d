//! The seam between the Python classes and where blobs live: the filesystem layout
//! (`FsBlobs`) or an object store (`crate::objstore::ObjectBlobs`). `BlobStore`, `BlobWriter`
//! and `BlobReader` hold a backend, an upload and a source behind these traits and never know
//! which one.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::upload::{Caching, Upload, copy_file_range_into};
use super::{Layout, delete, enumerate, open, stat};
use crate::digest::{Algorithm, Digest};
use crate::error::{IoContext, Result, StoreError};

/// Where something lives: a file, or an object key relative to the store's root directory.
#[derive(Clone, Debug)]
pub enum Location {
    Path(PathBuf),
    Key(String),
}

/// The bytes of one blob, read at any offset.
pub trait BlobSource: Send {
    fn read_exact_at(&mut self, buf: &mut [u8], pos: u64) -> Result<()>;
}

/// A resumable upload; see `Upload` for the contract every backend keeps.
pub trait BlobUpload: Send {
    fn id(&self) -> &str;
    fn started_at(&self) -> &str;
    fn size(&self) -> u64;
    fn algorithm(&self) -> Algorithm;
    fn digest(&self) -> Digest;
    fn is_open(&self) -> bool;
    /// Whether any `write` may wait for the network (so that callers never do it holding a
    /// lock others need, such as the GIL), rather than only for a local disk.
    fn writes_may_wait(&self) -> bool {
        false
    }
    fn write(&mut self, data: &[u8]) -> Result<()>;
    /// Appends `len` bytes of `src` from `offset` (fewer if it ends first); returns how many.
    fn write_from_file(&mut self, src: &File, offset: u64, len: u64) -> Result<u64> {
        copy_file_range_into(src, offset, len, |bytes| self.write(bytes))
    }
    fn checkpoint(&mut self, durable: bool) -> Result<()>;
    fn close(&mut self, durable: bool) -> Result<()>;
    fn commit(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
        before_publish: &mut dyn FnMut(&Digest) -> Result<()>,
    ) -> Result<u64>;
    fn cancel(&mut self) -> Result<()>;
}

/// The global content-addressed store. `uploads` is a directory for the filesystem and a key
/// prefix for an object store; None is the store's own uploads area.
pub trait BlobBackend: Send + Sync {
    fn root(&self) -> Location;
    fn location(&self, digest: &Digest) -> Location;
    fn stat(&self, digest: &Digest) -> Result<u64>;
    /// The blob's bytes and size; `BlobUnknown` if absent.
    fn open(&self, digest: &Digest) -> Result<(Box<dyn BlobSource>, u64)>;
    fn put(&self, data: &[u8], algorithm: Algorithm) -> Result<(Digest, u64)>;
    fn create(
        &self,
        algorithm: Algorithm,
        uploads: Option<&Path>,
        caching: Caching,
    ) -> Result<Box<dyn BlobUpload>>;
    fn resume(
        &self,
        id: &str,
        uploads: Option<&Path>,
        caching: Caching,
    ) -> Result<Box<dyn BlobUpload>>;
    fn delete(&self, digest: &Digest) -> Result<()>;
    fn enumerate(&self) -> Result<Vec<Digest>>;
}

/// distribution's filesystem layout under `root`.
pub struct FsBlobs {
    root: PathBuf,
    layout: Layout,
}

impl FsBlobs {
    pub fn new(root: PathBuf) -> FsBlobs {
        let layout = Layout::new(&root);
        FsBlobs { root, layout }
    }

    fn uploads(&self, uploads: Option<&Path>) -> PathBuf {
        uploads.map_or_else(|| self.layout.global_uploads(), Path::to_path_buf)
    }
}

struct FileSource {
    file: File,
    path: PathBuf,
}

impl BlobSource for FileSource {
    fn read_exact_at(&mut self, buf: &mut [u8], pos: u64) -> Result<()> {
        self.file.read_exact_at(buf, pos).at("read", &self.path)
    }
}

impl BlobBackend for FsBlobs {
    fn root(&self) -> Location {
        Location::Path(self.root.clone())
    }

    fn location(&self, digest: &Digest) -> Location {
        Location::Path(self.layout.blob_data(digest))
    }

    fn stat(&self, digest: &Digest) -> Result<u64> {
        stat(&self.layout, digest)
    }

    fn open(&self, digest: &Digest) -> Result<(Box<dyn BlobSource>, u64)> {
        let (file, size) = open(&self.layout, digest)?;
        let path = self.layout.blob_data(digest);
        Ok((Box::new(FileSource { file, path }), size))
    }

    fn put(&self, data: &[u8], algorithm: Algorithm) -> Result<(Digest, u64)> {
        let mut upload = Upload::create(&self.layout.global_uploads(), algorithm, Caching::Keep)?;
        let stored = (|| {
            upload.write(data)?;
            let digest = upload.digest();
            let size = upload.commit(&self.layout, &digest, Some(data.len() as u64))?;
            Ok::<_, StoreError>((digest, size))
        })();
        if stored.is_err() {
            let _ = upload.cancel();
        }
        stored
    }

    fn create(
        &self,
        algorithm: Algorithm,
        uploads: Option<&Path>,
        caching: Caching,
    ) -> Result<Box<dyn BlobUpload>> {
        let upload = Upload::create(&self.uploads(uploads), algorithm, caching)?;
        Ok(Box::new(FsUpload {
            upload,
            layout: self.layout.clone(),
        }))
    }

    fn resume(
        &self,
        id: &str,
        uploads: Option<&Path>,
        caching: Caching,
    ) -> Result<Box<dyn BlobUpload>> {
        let upload = Upload::resume(&self.uploads(uploads), id, caching)?;
        Ok(Box::new(FsUpload {
            upload,
            layout: self.layout.clone(),
        }))
    }

    fn delete(&self, digest: &Digest) -> Result<()> {
        delete(&self.layout, digest)
    }

    fn enumerate(&self) -> Result<Vec<Digest>> {
        enumerate(&self.layout)
    }
}

struct FsUpload {
    upload: Upload,
    layout: Layout,
}

impl BlobUpload for FsUpload {
    fn id(&self) -> &str {
        self.upload.id()
    }

    fn started_at(&self) -> &str {
        self.upload.started_at()
    }

    fn size(&self) -> u64 {
        self.upload.size()
    }

    fn algorithm(&self) -> Algorithm {
        self.upload.algorithm()
    }

    fn digest(&self) -> Digest {
        self.upload.digest()
    }

    fn is_open(&self) -> bool {
        self.upload.is_open()
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.upload.write(data)
    }

    fn write_from_file(&mut self, src: &File, offset: u64, len: u64) -> Result<u64> {
        self.upload.write_from_file(src, offset, len)
    }

    fn checkpoint(&mut self, durable: bool) -> Result<()> {
        if durable {
            self.upload.checkpoint()
        } else {
            self.upload.checkpoint_volatile()
        }
    }

    fn close(&mut self, durable: bool) -> Result<()> {
        self.upload.close(durable)
    }

    fn commit(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
        before_publish: &mut dyn FnMut(&Digest) -> Result<()>,
    ) -> Result<u64> {
        self.upload
            .commit_with(&self.layout, expected, size, before_publish)
    }

    fn cancel(&mut self) -> Result<()> {
        self.upload.cancel()
    }
}
