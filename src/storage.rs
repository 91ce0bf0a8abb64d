//! The storage seam: what the registry needs of where blobs, uploads and links live, above
//! both backends — the filesystem (`crate::store`) and object storage (`crate::objstore`). The
//! Python classes (`BlobStore`, `BlobWriter`, `BlobReader`), the native front and the
//! linked-blob protocol (`crate::linked`) hold these traits and never know which backend is
//! behind them; a new backend implements them and passes the suites both backends pass.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::digest::{Algorithm, Digest};
use crate::error::{IoContext, Result, StoreError};

/// Bytes of a local source file read per write by `BlobUpload::write_from_file`.
const COPY_BLOCK: usize = 8 * 1024 * 1024;

/// An upload id the backends accept: the core's grammar (`BlobUploadUnknown` otherwise, so an
/// id can never name a path of more than one segment).
pub fn check_upload_id(id: &str) -> Result<()> {
    if crate::grammar::valid_upload_id(id) {
        return Ok(());
    }
    Err(StoreError::BlobUploadUnknown { id: id.to_owned() })
}

/// Seconds since the Unix epoch as RFC 3339 in UTC, as Go's `time.RFC3339` writes it: an
/// upload's `startedat` on every backend.
pub fn rfc3339_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Where something lives: a file, or an object key relative to the store's root directory.
#[derive(Clone, Debug)]
pub enum Location {
    Path(PathBuf),
    Key(String),
}

/// The bytes of one blob, read at any offset.
pub trait BlobSource: Send {
    fn read_exact_at(&mut self, buf: &mut [u8], pos: u64) -> Result<()>;
    /// `len` bytes from `pos` in a new buffer.
    fn read_vec(&mut self, pos: u64, len: usize) -> Result<Vec<u8>> {
        let mut buffer = vec![0; len];
        self.read_exact_at(&mut buffer, pos)?;
        Ok(buffer)
    }
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
    /// Verifies the bytes against `expected` (and `size`), then stores them under their digest
    /// in `stored_as` (`crate::layout::stored_algorithm`; `expected.algorithm()` outside a
    /// repository), calling `before_publish` with that digest first. Returns the size.
    fn commit(
        &mut self,
        expected: &Digest,
        stored_as: Algorithm,
        size: Option<u64>,
        before_publish: &mut dyn FnMut(&Digest) -> Result<()>,
    ) -> Result<u64>;
    fn cancel(&mut self) -> Result<()>;
    /// The running hash state of the bytes so far (Go's format for sha256 and sha512), which
    /// `BlobBackend::rewind` takes back.
    fn hash_state(&self) -> Vec<u8>;
    /// Moves the bytes to a local file outside the blob store (no verification; the upload is
    /// then gone). Only where uploads are local files.
    fn move_data_to(&mut self, target: &Path) -> Result<()> {
        let _ = target;
        Err(StoreError::Value(format!(
            "upload {} is not a local file and cannot be moved to one",
            self.id()
        )))
    }
}

/// The global content-addressed store. `uploads` is where uploads live: a `crate::layout` key
/// such as `layout::uploads(Some(name))` (or, on a filesystem, any directory); None is the
/// store's own uploads area.
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
    /// The upload `id`, taken for one request: resumed, and held against every other request
    /// (in any process) until it is closed, committed, cancelled or dropped; another request
    /// holding it is `BlobUploadInUse`. On object storage the checkpoint's conditional write is
    /// that hold (a second writer fails at its checkpoint), so this is `resume`.
    fn claim(
        &self,
        id: &str,
        uploads: Option<&Path>,
        caching: Caching,
    ) -> Result<Box<dyn BlobUpload>> {
        self.resume(id, uploads, caching)
    }
    /// The upload as it was at `size` bytes with hash state `state` (see `Upload::rewind`): for
    /// callers that keep their own record of an upload. Only where uploads are local files.
    fn rewind(
        &self,
        id: &str,
        uploads: Option<&Path>,
        size: u64,
        state: &[u8],
        caching: Caching,
    ) -> Result<Box<dyn BlobUpload>> {
        let _ = (uploads, size, state, caching);
        Err(StoreError::Value(format!(
            "upload {id} cannot be rewound on this storage"
        )))
    }
    /// Links, tags and the GC lock on the same storage (see `crate::linked`).
    fn links(&self) -> Arc<dyn LinkStore>;
}

/// A registry's storage as the front and the linked-blob protocol use it: blobs and uploads,
/// and the links beside them.
#[derive(Clone)]
pub struct Storage {
    pub blobs: Arc<dyn BlobBackend>,
    pub links: Arc<dyn LinkStore>,
}

impl Storage {
    pub fn new(blobs: Arc<dyn BlobBackend>) -> Storage {
        let links = blobs.links();
        Storage { blobs, links }
    }
}

/// Held while it lives (a lock guard); dropped to release.
pub type Hold = Box<dyn Send + Sync>;

/// What the linked-blob protocol (`crate::linked`) needs of the storage: small objects read and
/// written whole, the GC mark, and the lock between pushes and the garbage collector. Keys are
/// `crate::layout` keys.
pub trait LinkStore: Send + Sync {
    /// The object's bytes; None when there is none.
    fn read(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Replaces the object atomically and durably.
    fn write(&self, key: &str, data: &[u8]) -> Result<()>;
    /// Marks the object used now, for the garbage collector (which keeps what was marked after
    /// it started); false when there is no such object.
    fn mark(&self, key: &str) -> Result<bool>;
    /// The names directly under `key` (objects and directories alike), sorted; empty when
    /// there are none.
    fn list(&self, key: &str) -> Result<Vec<String>>;
    /// Whether there is an object at `key` or any object under it.
    fn exists(&self, key: &str) -> Result<bool>;
    /// Removes the object at `key` and everything under it; false when there was nothing.
    fn delete(&self, key: &str) -> Result<bool>;
    /// Removes the empty directories from `key` up to, not including, `stop` (object storage
    /// has no empty directories to remove).
    fn prune_empty(&self, key: &str, stop: &str) -> Result<()>;
    /// The lock between pushes (shared: many at once) and the collector's deletes (exclusive).
    /// Object storage has no lock: there pushes and the collector meet through `mark` and
    /// `gc_claim` instead (`crate::objstore::gc`), and this holds nothing.
    fn gc_lock(&self, exclusive: bool) -> Result<Hold>;
    /// The collector's hold on the object at `key` while it decides whether to delete it: a
    /// mark made before the claim is seen by `GcClaim::marked_at`, and a mark made after it
    /// waits for the claim to end (the filesystem: the exclusive GC lock).
    fn gc_claim(&self, key: &str) -> Result<Box<dyn GcClaim>>;
    /// The one collector's lease, taken without waiting: `Err(holder)` (who holds it, for the
    /// message) while another collector holds it. `ttl`: how long it lasts unrenewed (on a
    /// filesystem the lease is an `flock`, which dies with its process).
    fn gc_lease(
        &self,
        owner: &str,
        ttl: Duration,
    ) -> Result<std::result::Result<Box<dyn GcLease>, String>>;
}

/// `LinkStore::gc_claim`: released when dropped.
pub trait GcClaim: Send + Sync {
    /// When the object was last marked or written, in UNIX seconds of the storage's clock; None
    /// when there is no such object.
    fn marked_at(&self) -> Result<Option<f64>>;
    /// Whether a delete may still rely on the claim (on object storage a claim lapses, so that
    /// a push never waits on a collector that died).
    fn holds(&self) -> bool;
    /// Removes the object's mark, once the object is deleted.
    fn forget(&self) -> Result<()>;
}

/// `LinkStore::gc_lease`: released when dropped or by `release`.
pub trait GcLease: Send + Sync {
    /// The storage's clock when the lease was taken (UNIX seconds): the collection's start,
    /// which marks are compared with.
    fn started_at(&self) -> f64;
    /// Renews the lease when it is due; false when it was lost (another collector took it
    /// after it expired) and the collection must stop deleting.
    fn renew(&self) -> Result<bool>;
    /// Whether the lease is surely still held (renewed recently enough).
    fn holds(&self) -> bool;
    fn release(&self) -> Result<()>;
}

/// What happens to an upload's pages once they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Keep them in the page cache (a blob just pushed to a registry is often pulled next);
    /// writeback starts early through a background fdatasync.
    Keep,
    /// Drop them once written back (bulk ingest): the upload streams through a bounded amount
    /// of page cache, which on machines where fresh page-cache pages are expensive is also the
    /// faster way, and nothing else is pushed out of the cache.
    Drop,
    /// Bypass the page cache with `O_DIRECT` (bulk ingest of many blobs at once); `Drop` where
    /// the file system refuses it.
    Direct,
}

impl Caching {
    pub fn parse(name: &str) -> Result<Caching> {
        match name {
            "keep" => Ok(Caching::Keep),
            "stream" => Ok(Caching::Drop),
            "direct" => Ok(Caching::Direct),
            other => Err(StoreError::Value(format!(
                "caching must be 'keep', 'stream' or 'direct', not {other:?}"
            ))),
        }
    }
}
/// The size a commit was told to expect against the size received; every backend checks it
/// before anything is published.
pub fn check_size(expected: Option<u64>, actual: u64) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => {
            Err(StoreError::BlobInvalidLength { expected, actual })
        }
        _ => Ok(()),
    }
}

/// Reads the next piece of a source range into `buf`: at most what is left of `len` after
/// `done`, from `offset + done`. 0 at the end of the file.
pub(crate) fn read_source(
    src: &File,
    buf: &mut [u8],
    offset: u64,
    done: u64,
    len: u64,
) -> Result<usize> {
    let want = buf
        .len()
        .min(usize::try_from(len - done).unwrap_or(usize::MAX));
    loop {
        match src.read_at(&mut buf[..want], offset + done) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            read => {
                return read.at(
                    "read source at offset",
                    Path::new(&(offset + done).to_string()),
                );
            }
        }
    }
}

/// Reads `len` bytes of `src` from `offset` block by block and hands each to `write`; stops
/// early where `src` ends. Returns how many bytes went to `write`.
pub(crate) fn copy_file_range_into(
    src: &File,
    offset: u64,
    len: u64,
    mut write: impl FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).min(COPY_BLOCK)];
    let mut done = 0u64;
    while done < len {
        let n = read_source(src, &mut buf, offset, done, len)?;
        if n == 0 {
            break;
        }
        write(&buf[..n])?;
        done += n as u64;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_735_230), "2026-11-26T23:20:30Z");
    }
}
