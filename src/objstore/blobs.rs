//! The blob store on an object store: distribution's S3 key layout, blobs read with ranged
//! GETs, uploads as in `upload.rs`.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::task::JoinHandle;

use super::client::{Remote, failed};
use super::keys::check_prefix;
use super::links::ObjectLinks;
use super::runtime::{block_on, runtime};
use super::upload::ObjectUpload;
use crate::digest::{Algorithm, Digest};
use crate::error::{Result, StoreError};
use crate::hashing::Hasher;
use crate::layout;
use crate::storage::{BlobBackend, BlobSource, BlobUpload, Caching, LinkStore, Location};

use crate::blocks::OBJECT_READ_BLOCK as READ_BLOCK;
/// A read that does not continue the previous one fetches at least this much, so that a
/// reader stepping through a blob in small pieces does not pay a request per piece.
const READ_MIN: usize = 256 * 1024;
/// Ranged GETs in flight for one large read.
const READ_PARALLEL: usize = 4;
/// Body pieces (as the connection delivers them, tens to hundreds of KiB) a streaming read
/// keeps ahead of its reader.
const STREAM_AHEAD: usize = 64;
/// Part uploads in flight for one `put`.
const PUT_PARALLEL: usize = 2;
/// How long the presigned URL of a redirected blob GET stays valid (the application's and the
/// native front's redirects alike; distribution's S3 driver gives 20 minutes too).
pub const REDIRECT_EXPIRY: Duration = Duration::from_secs(20 * 60);

/// The presigned URL a blob GET is redirected to (`storage.redirect`).
pub async fn redirect_url(remote: &Remote, digest: &Digest) -> Result<String> {
    remote
        .signed_url(&layout::blob_data(digest), REDIRECT_EXPIRY)
        .await
}

/// `length` bytes of blob `digest` from `start`, as one GET delivers them: the pieces the
/// connection hands over, passed on without a copy. The GET runs on the object-store runtime
/// (whose connections it uses) and keeps `STREAM_AHEAD` pieces ahead of the receiver; dropping
/// the receiver ends it.
pub fn stream(
    remote: Arc<Remote>,
    digest: &Digest,
    start: u64,
    length: u64,
) -> Result<tokio::sync::mpsc::Receiver<Result<Bytes>>> {
    let path = remote.path(&layout::blob_data(digest))?;
    // The GET ends when the receiver is dropped (its next send fails).
    let (pieces, _receiving) = receive(remote, path, start..start + length);
    Ok(pieces)
}

/// One GET of `range` of the object at `path`, its pieces sent to the receiver as they arrive
/// (`STREAM_AHEAD` at most waiting), on the object-store runtime.
fn receive(
    remote: Arc<Remote>,
    path: Path,
    range: std::ops::Range<u64>,
) -> (tokio::sync::mpsc::Receiver<Result<Bytes>>, JoinHandle<()>) {
    let (sender, pieces) = tokio::sync::mpsc::channel(STREAM_AHEAD);
    let receiving = runtime().spawn(async move {
        let options = object_store::GetOptions {
            range: Some(range.into()),
            ..Default::default()
        };
        let mut body = match remote.bucket().get_opts(&path, options).await {
            Ok(found) => found.into_stream(),
            Err(error) => {
                let _ = sender.send(Err(failed("GET", &path)(error))).await;
                return;
            }
        };
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(failed("GET", &path));
            if sender.send(piece).await.is_err() {
                return; // the reader went away
            }
        }
    });
    (pieces, receiving)
}

pub struct ObjectBlobs {
    remote: Arc<Remote>,
}

impl ObjectBlobs {
    pub fn new(remote: Arc<Remote>) -> ObjectBlobs {
        ObjectBlobs { remote }
    }

    fn uploads(&self, uploads: Option<&FsPath>) -> Result<String> {
        let Some(uploads) = uploads else {
            return Ok(layout::uploads(None));
        };
        let text = uploads.to_str().ok_or_else(|| {
            StoreError::Value(format!("uploads key prefix {uploads:?} is not UTF-8"))
        })?;
        if text.is_empty() {
            return Err(StoreError::Value(
                "uploads key prefix must not be empty".into(),
            ));
        }
        Ok(check_prefix(text)?.to_owned())
    }

    /// One PUT up to a part's size; larger blobs go up as a multipart upload straight to the
    /// blob key, which appears whole when the upload completes.
    async fn upload_blob(&self, key: &str, data: &[u8]) -> Result<()> {
        let chunk = self.remote.chunk_size() as usize;
        if data.len() <= chunk {
            self.remote.write(key, Bytes::copy_from_slice(data)).await?;
            return Ok(());
        }
        let path = self.remote.path(key)?;
        let bucket = self.remote.bucket();
        let id = bucket
            .create_multipart(&path)
            .await
            .map_err(failed("create multipart upload", &path))?;
        let uploaded: Result<Vec<_>> = futures::stream::iter(data.chunks(chunk).enumerate())
            .map(|(idx, piece)| {
                let payload = PutPayload::from(Bytes::copy_from_slice(piece));
                let (path, id) = (&path, &id);
                async move {
                    bucket
                        .put_part(path, id, idx, payload)
                        .await
                        .map_err(failed("upload part", path))
                }
            })
            .buffered(PUT_PARALLEL)
            .try_collect()
            .await;
        let completed = match uploaded {
            Ok(parts) => bucket
                .complete_multipart(&path, &id, parts)
                .await
                .map(|_| ())
                .map_err(failed("complete multipart upload", &path)),
            Err(e) => Err(e),
        };
        if completed.is_err() {
            let _ = bucket.abort_multipart(&path, &id).await;
        }
        completed
    }
}

impl BlobBackend for ObjectBlobs {
    fn root(&self) -> Location {
        Location::Key(self.remote.url().to_owned())
    }

    fn location(&self, digest: &Digest) -> Location {
        Location::Key(layout::blob_data(digest))
    }

    fn stat(&self, digest: &Digest) -> Result<u64> {
        match block_on(self.remote.head(&layout::blob_data(digest)))? {
            Some(meta) => Ok(meta.size),
            None => Err(StoreError::BlobUnknown {
                digest: digest.to_string(),
            }),
        }
    }

    fn open(&self, digest: &Digest) -> Result<(Box<dyn BlobSource>, u64)> {
        let size = self.stat(digest)?;
        let source = RangeSource {
            remote: self.remote.clone(),
            path: self.remote.path(&layout::blob_data(digest))?,
            size,
            block: Bytes::new(),
            block_at: 0,
            next: 0,
            ahead: None,
            sequential_blocks: 0,
            stream: None,
        };
        Ok((Box::new(source), size))
    }

    fn put(&self, data: &[u8], algorithm: Algorithm) -> Result<(Digest, u64)> {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(data);
        let digest = hasher.digest();
        let key = layout::blob_data(&digest);
        let size = data.len() as u64;
        block_on(async {
            match self.remote.head(&key).await? {
                Some(meta) if meta.size == size => Ok(()),
                _ => self.upload_blob(&key, data).await,
            }
        })?;
        Ok((digest, size))
    }

    fn create(
        &self,
        algorithm: Algorithm,
        uploads: Option<&FsPath>,
        _caching: Caching,
    ) -> Result<Box<dyn BlobUpload>> {
        let uploads = self.uploads(uploads)?;
        Ok(Box::new(ObjectUpload::create(
            self.remote.clone(),
            &uploads,
            algorithm,
        )?))
    }

    fn resume(
        &self,
        id: &str,
        uploads: Option<&FsPath>,
        _caching: Caching,
    ) -> Result<Box<dyn BlobUpload>> {
        let uploads = self.uploads(uploads)?;
        Ok(Box::new(ObjectUpload::resume(
            self.remote.clone(),
            &uploads,
            id,
        )?))
    }

    fn delete(&self, digest: &Digest) -> Result<()> {
        let key = layout::blob_data(digest);
        block_on(async {
            if self.remote.head(&key).await?.is_none() {
                return Err(StoreError::BlobUnknown {
                    digest: digest.to_string(),
                });
            }
            self.remote.delete(&key).await
        })
    }

    fn links(&self) -> Arc<dyn LinkStore> {
        Arc::new(ObjectLinks::new(self.remote.clone()))
    }

    fn enumerate(&self) -> Result<Vec<Digest>> {
        let blobs = layout::blobs();
        let objects = block_on(self.remote.walk(&blobs))?;
        let mut digests = Vec::new();
        for object in objects {
            let Some(key) = self.remote.root().relative(&object.location) else {
                continue;
            };
            let Some(rest) = key
                .strip_prefix(blobs.as_str())
                .and_then(|k| k.strip_prefix('/'))
            else {
                continue;
            };
            let parts: Vec<&str> = rest.split('/').collect();
            let [alg, prefix, hex, "data"] = parts[..] else {
                continue;
            };
            if prefix.len() != 2 || !hex.starts_with(prefix) {
                continue;
            }
            if let Ok(digest) = Digest::parse(&format!("{alg}:{hex}")) {
                digests.push(digest);
            }
        }
        digests
            .sort_by(|a, b| (a.algorithm().name(), a.hex()).cmp(&(b.algorithm().name(), b.hex())));
        Ok(digests)
    }
}

/// A blob read with ranged GETs. Small reads are served from one cached block, fetched whole
/// (`READ_BLOCK`) when reads follow each other and smaller when they jump around; while a
/// sequential reader consumes a block, the next one is already being fetched, so the GET
/// latency hides behind the caller's work. A reader still going on sequentially after those two
/// blocks reads the rest of the blob from one streaming GET, straight into its buffers: one
/// request instead of one per block (the object store's CPU for a proxied GET halves) and one
/// copy less. A read of a block or more that starts elsewhere goes straight into the caller's
/// buffer, several ranges at once.
struct RangeSource {
    remote: Arc<Remote>,
    path: Path,
    size: u64,
    block: Bytes,
    block_at: u64,
    /// Where the previous read ended.
    next: u64,
    /// The block after `block`, in flight: where it starts, and the fetch.
    ahead: Option<(u64, JoinHandle<Result<Bytes>>)>,
    /// Blocks fetched in a row by reads that each continued the previous one.
    sequential_blocks: u32,
    /// The rest of the blob, arriving, once reads have gone on sequentially past two blocks.
    stream: Option<BodyStream>,
}

/// One GET of a blob's bytes from `at` to its end, received on the I/O runtime a few pieces
/// ahead of the reader.
struct BodyStream {
    /// Where the first byte of `pending` is in the blob.
    at: u64,
    pending: Bytes,
    pieces: tokio::sync::mpsc::Receiver<Result<Bytes>>,
    receiving: JoinHandle<()>,
}

impl BodyStream {
    fn start(remote: Arc<Remote>, path: Path, from: u64, size: u64) -> BodyStream {
        let (pieces, receiving) = receive(remote, path, from..size);
        BodyStream {
            at: from,
            pending: Bytes::new(),
            pieces,
            receiving,
        }
    }

    /// Fills `buf` with the next bytes; an error if the body ends first.
    fn read(&mut self, buf: &mut [u8], path: &Path) -> Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.pending.is_empty() {
                self.pending = match self.pieces.blocking_recv() {
                    Some(piece) => piece?,
                    None => {
                        return Err(StoreError::Value(format!(
                            "the GET of {path} ended at byte {} (the blob changed or shrank)",
                            self.at
                        )));
                    }
                };
            }
            let n = self.pending.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&self.pending.split_to(n));
            filled += n;
            self.at += n as u64;
        }
        Ok(())
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        self.receiving.abort();
    }
}

async fn fetch_range(remote: &Remote, path: &Path, range: std::ops::Range<u64>) -> Result<Bytes> {
    let want = (range.end - range.start) as usize;
    let bytes = remote
        .bucket()
        .get_range(path, range.clone())
        .await
        .map_err(failed("GET", path))?;
    if bytes.len() != want {
        return Err(StoreError::ObjectStore {
            operation: "GET",
            key: path.to_string(),
            source: object_store::Error::Generic {
                store: "S3",
                source: format!(
                    "asked for bytes {}..{}, got {} (the blob changed or shrank)",
                    range.start,
                    range.end,
                    bytes.len()
                )
                .into(),
            },
        });
    }
    Ok(bytes)
}

impl RangeSource {
    async fn fetch(&self, range: std::ops::Range<u64>) -> Result<Bytes> {
        fetch_range(&self.remote, &self.path, range).await
    }

    /// The block starting at `at`: the one fetched ahead if it starts there, else a new GET.
    fn take_block(&mut self, at: u64, until: u64) -> Result<Bytes> {
        match self.ahead.take() {
            Some((start, fetching)) if start == at => block_on(fetching).map_err(|e| {
                StoreError::Value(format!("read-ahead of {} failed: {e}", self.path))
            })?,
            other => {
                if let Some((_, fetching)) = other {
                    fetching.abort();
                }
                block_on(self.fetch(at..until))
            }
        }
    }

    fn fetch_ahead(&mut self, from: u64) {
        if from >= self.size {
            return;
        }
        let until = (from + READ_BLOCK as u64).min(self.size);
        let (remote, path) = (self.remote.clone(), self.path.clone());
        let fetching =
            runtime().spawn(async move { fetch_range(&remote, &path, from..until).await });
        self.ahead = Some((from, fetching));
    }

    /// Reads from the stream (which is at the right place); a stream that failed is dropped,
    /// so that a reader trying again starts afresh with ranged GETs.
    fn read_stream(&mut self, buf: &mut [u8]) -> Result<()> {
        let stream = self.stream.as_mut().expect("the caller checked the stream");
        let read = stream.read(buf, &self.path);
        if read.is_err() {
            self.stream = None;
        }
        read
    }

    fn read_direct(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        block_on(
            futures::stream::iter(buf.chunks_mut(READ_BLOCK).enumerate())
                .map(|(i, piece)| async move {
                    let from = pos + (i * READ_BLOCK) as u64;
                    let bytes = self.fetch(from..from + piece.len() as u64).await?;
                    piece.copy_from_slice(&bytes);
                    Ok::<_, StoreError>(())
                })
                .buffer_unordered(READ_PARALLEL)
                .try_collect::<()>(),
        )
    }
}

impl Drop for RangeSource {
    fn drop(&mut self) {
        if let Some((_, fetching)) = self.ahead.take() {
            fetching.abort();
        }
    }
}

impl BlobSource for RangeSource {
    fn read_exact_at(&mut self, buf: &mut [u8], pos: u64) -> Result<()> {
        let end = pos + buf.len() as u64;
        if end > self.size {
            return Err(StoreError::Value(format!(
                "read of bytes {pos}..{end} past the end of a {}-byte blob",
                self.size
            )));
        }
        let cached = self.block_at..self.block_at + self.block.len() as u64;
        if !cached.contains(&pos) && self.stream.as_ref().is_some_and(|s| s.at == pos) {
            self.read_stream(buf)?;
            self.next = end;
            return Ok(());
        }
        if buf.len() >= READ_BLOCK {
            self.read_direct(buf, pos)?;
            self.next = end;
            return Ok(());
        }
        let mut filled = 0;
        while filled < buf.len() {
            let at = pos + filled as u64;
            let cached = self.block_at..self.block_at + self.block.len() as u64;
            if cached.contains(&at) {
                let from = (at - self.block_at) as usize;
                let n = (self.block.len() - from).min(buf.len() - filled);
                buf[filled..filled + n].copy_from_slice(&self.block[from..from + n]);
                filled += n;
                continue;
            }
            let sequential = at == self.next || at == cached.end;
            let want = if sequential {
                READ_BLOCK
            } else {
                READ_MIN.max(buf.len() - filled)
            };
            if self.stream.as_ref().is_some_and(|s| s.at == at) {
                self.read_stream(&mut buf[filled..])?;
                break;
            }
            self.stream = None;
            let until = (at + want as u64).min(self.size);
            self.block = self.take_block(at, until)?;
            self.block_at = at;
            if !sequential {
                self.sequential_blocks = 0;
                continue;
            }
            self.sequential_blocks += 1;
            let after = at + self.block.len() as u64;
            if self.sequential_blocks == 1 {
                self.fetch_ahead(after);
            } else if after < self.size {
                let (remote, path) = (self.remote.clone(), self.path.clone());
                self.stream = Some(BodyStream::start(remote, path, after, self.size));
            }
        }
        self.next = end;
        Ok(())
    }
}
