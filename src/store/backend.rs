//! The filesystem behind the storage seam (`crate::storage`): distribution's layout under a
//! directory.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};

use super::links::FsLinks;
use super::upload::Upload;
use super::{Layout, delete, enumerate, open, stat};
use crate::digest::{Algorithm, Digest};
use crate::error::{IoContext, Result, StoreError};
use crate::grammar::valid_upload_id;
use crate::layout;
use crate::storage::{BlobBackend, BlobSource, BlobUpload, Caching, Hold, LinkStore, Location};

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

    fn upload(&self, upload: Upload, hold: Option<Hold>) -> Box<dyn BlobUpload> {
        Box::new(FsUpload {
            upload,
            layout: self.layout.clone(),
            hold,
        })
    }

    fn uploads(&self, uploads: Option<&Path>) -> PathBuf {
        // A relative key is under the root; an absolute directory stays as it is.
        uploads.map_or_else(|| self.layout.global_uploads(), |key| self.root.join(key))
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

    /// Through `read_to_end` into fresh capacity, so the buffer is not zeroed first (a
    /// measurable share of a GET's CPU with a zeroed buffer and `pread`).
    fn read_vec(&mut self, pos: u64, len: usize) -> Result<Vec<u8>> {
        let mut buffer = Vec::with_capacity(len);
        (&self.file)
            .seek(SeekFrom::Start(pos))
            .at("seek", &self.path)?;
        let n = (&self.file)
            .take(len as u64)
            .read_to_end(&mut buffer)
            .at("read", &self.path)?;
        if n < len {
            let short = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob data ended {} bytes early", len - n),
            );
            return Err(short).at("read", &self.path);
        }
        Ok(buffer)
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
        Ok(self.upload(upload, None))
    }

    fn resume(
        &self,
        id: &str,
        uploads: Option<&Path>,
        caching: Caching,
    ) -> Result<Box<dyn BlobUpload>> {
        let upload = Upload::resume(&self.uploads(uploads), id, caching)?;
        Ok(self.upload(upload, None))
    }

    /// An exclusive, non-blocking `flock` on the upload's data file, taken before it is
    /// resumed, so two requests never write one upload (another request holding it is
    /// `BlobUploadInUse`, with the upload's size for the client's `Range`).
    fn claim(
        &self,
        id: &str,
        uploads: Option<&Path>,
        caching: Caching,
    ) -> Result<Box<dyn BlobUpload>> {
        let unknown = || StoreError::BlobUploadUnknown { id: id.to_owned() };
        if !valid_upload_id(id) {
            return Err(unknown());
        }
        let data = self.uploads(uploads).join(id).join(layout::upload::DATA);
        let file = match File::open(&data) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(e).at("open", &data),
        };
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                let size = file.metadata().at("stat", &data)?.len();
                return Err(StoreError::BlobUploadInUse {
                    id: id.to_owned(),
                    size,
                });
            }
            Err((_, errno)) => return Err(io::Error::from(errno)).at("lock", &data),
        };
        let upload = Upload::resume(&self.uploads(uploads), id, caching)?;
        Ok(self.upload(upload, Some(Box::new(lock))))
    }

    fn rewind(
        &self,
        id: &str,
        uploads: Option<&Path>,
        size: u64,
        state: &[u8],
        caching: Caching,
    ) -> Result<Box<dyn BlobUpload>> {
        let upload = Upload::rewind(&self.uploads(uploads), id, size, state, caching)?;
        Ok(self.upload(upload, None))
    }

    fn links(&self) -> Arc<dyn LinkStore> {
        Arc::new(FsLinks::new(&self.root))
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
    /// The claim on the upload (`FsBlobs::claim`), let go once the upload is closed,
    /// committed or cancelled.
    hold: Option<Hold>,
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
        let closed = self.upload.close(durable);
        self.hold = None;
        closed
    }

    fn commit(
        &mut self,
        expected: &Digest,
        stored_as: Algorithm,
        size: Option<u64>,
        before_publish: &mut dyn FnMut(&Digest) -> Result<()>,
    ) -> Result<u64> {
        let size =
            self.upload
                .commit_with(&self.layout, expected, stored_as, size, before_publish)?;
        self.hold = None;
        Ok(size)
    }

    fn hash_state(&self) -> Vec<u8> {
        self.upload.hash_state()
    }

    fn move_data_to(&mut self, target: &Path) -> Result<()> {
        let moved = self.upload.move_data_to(target);
        self.hold = None;
        moved
    }

    fn cancel(&mut self) -> Result<()> {
        let cancelled = self.upload.cancel();
        self.hold = None;
        cancelled
    }
}
