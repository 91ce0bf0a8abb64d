//! Uploads served by the front: a POST that starts one, and PATCH and PUT bodies streamed
//! straight into the storage's upload (`crate::storage`), a PUT then committed here by the
//! linked-blob protocol (`crate::linked`). Only the plain case is taken:
//! an existing upload no other request holds, and a `Content-Range` (if any) that continues
//! it. Anything else goes to the application before a byte of the body is read, and a commit
//! refused here (a wrong digest) goes to the application too, the body already in the upload,
//! so each error is answered in one place.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Body as _;

use super::idle::{BodyError, IdleBody};
use crate::digest::Algorithm;
use crate::error::StoreError;
use crate::grammar::{self, valid_name, valid_upload_id};
use crate::layout;
use crate::storage::{BlobUpload, Caching, Storage};

use crate::blocks::{
    UPLOAD_BLOCK as BLOCK, UPLOAD_INLINE_MAX, UPLOAD_LARGE_BODIES_MAX as LARGE_MAX,
    UPLOAD_SMALL_BLOCK as SMALL_BLOCK, UPLOAD_SPARE_BLOCKS_MAX,
};

/// Emptied body blocks, at most `UPLOAD_SPARE_BLOCKS_MAX` bytes of capacity (see there).
static SPARE_BLOCKS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty block of at least `capacity` bytes, a spare one if there is one.
fn block_of(capacity: usize) -> Vec<u8> {
    if capacity > UPLOAD_INLINE_MAX {
        let mut spare = SPARE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = spare.iter().position(|b| b.capacity() >= capacity) {
            return spare.swap_remove(i);
        }
    }
    Vec::with_capacity(capacity)
}

/// Keeps `block` for a later body, if the spares have room for it.
pub fn give_back(mut block: Vec<u8>) {
    if block.capacity() <= UPLOAD_INLINE_MAX {
        return;
    }
    block.clear();
    let mut spare = SPARE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner());
    let held: usize = spare.iter().map(Vec::capacity).sum();
    if held + block.capacity() <= UPLOAD_SPARE_BLOCKS_MAX {
        spare.push(block);
    }
}

static LARGE_ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// One of the `LARGE_MAX` places for a body received in `BLOCK`s, given back on drop.
struct LargeSlot;

impl LargeSlot {
    fn take() -> Option<LargeSlot> {
        let taken = LARGE_ACTIVE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
            (active < LARGE_MAX).then_some(active + 1)
        });
        taken.ok().map(|_| LargeSlot)
    }
}

impl Drop for LargeSlot {
    fn drop(&mut self) {
        LARGE_ACTIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `(name, upload id)` of `/v2/<name>/blobs/uploads/<id>`, both valid as sent.
pub fn parse_upload_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    let (name, id) = rest.rsplit_once("/blobs/uploads/")?;
    (valid_name(name) && valid_upload_id(id)).then_some((name, id))
}

/// Whether the request's `Content-Range` and `Content-Length` (when given) continue an upload
/// of `size` bytes, as the application requires.
fn continues(headers: &HeaderMap, size: u64) -> bool {
    let Some(range) = headers.get(http::header::CONTENT_RANGE) else {
        return true;
    };
    let Some(range) = range.to_str().ok().and_then(grammar::content_range) else {
        return false;
    };
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    grammar::continues(range, length, size)
}

/// An upload taken for one request: resumed and held against other requests
/// (`BlobBackend::claim`) until it is closed, committed or dropped.
pub struct Claimed {
    pub upload: Box<dyn BlobUpload>,
}

/// The upload `id` of repository `name`, when the front may write this request's body into it:
/// no other request holds it and the body continues it. Blocking (opens files, and re-hashes
/// any bytes past the last saved hash state).
pub fn claim(storage: &Storage, name: &str, id: &str, headers: &HeaderMap) -> Option<Claimed> {
    let uploads = layout::uploads(Some(name));
    let upload = storage
        .blobs
        .claim(id, Some(Path::new(&uploads)), Caching::Keep)
        .ok()?;
    continues(headers, upload.size()).then_some(Claimed { upload })
}

/// How receiving a body into an upload ended, short of success.
pub enum Failure {
    /// The client's body broke off (disconnect, bad chunking) or stalled: what arrived is kept.
    Body(BodyError),
    /// The upload could not take the bytes (disk full, I/O error).
    Store(StoreError),
}

/// A body received: all of it is in the upload except `tail` (less than a block), which the
/// caller writes in the same blocking call that then closes or commits the upload.
pub struct Received {
    pub claimed: Claimed,
    pub tail: Vec<u8>,
    /// Bytes of this request's body.
    pub bytes: u64,
}

/// Writes `body` into the claimed upload in `BLOCK`s, receiving the next block while the
/// previous one is hashed and written on a blocking thread (started only for a body larger
/// than a block). On a failure the upload is closed, keeping what arrived (without waiting for
/// the disk, as the application does after a PATCH).
pub async fn receive(claimed: Claimed, mut body: IdleBody) -> Result<Received, Failure> {
    let mut writer: Option<Writer> = None;
    let mut claimed = Some(claimed);
    let mut bytes = 0u64;
    let announced = body.size_hint().upper().unwrap_or(u64::MAX);
    // Held until the body is in: the place is given back on return.
    let large = (announced > SMALL_BLOCK as u64)
        .then(LargeSlot::take)
        .flatten();
    let block_size = if large.is_some() { BLOCK } else { SMALL_BLOCK };
    // A small body announced as such gets a buffer of its size, not a whole block.
    let mut block = block_of(announced.min(block_size as u64) as usize);
    let mut broke = None;
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers
            },
            Err(error) => {
                broke = Some(error);
                break;
            }
        };
        bytes += data.len() as u64;
        // Blocks are filled to exactly `block_size`, so none outgrows its buffer (a grown Vec
        // would copy what it holds).
        let mut rest: &[u8] = &data;
        let mut failed = false;
        while !rest.is_empty() {
            let take = rest.len().min(block_size - block.len());
            block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if block.len() == block_size {
                let writer =
                    writer.get_or_insert_with(|| Writer::start(claimed.take(), block_size));
                if !writer.send(&mut block).await {
                    failed = true; // the writer's error is returned below
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    let claimed = match writer {
        Some(writer) => writer.finish().await,
        None => Ok(claimed.take().expect("not given to a writer")),
    };
    let mut claimed = match claimed {
        Ok(claimed) => claimed,
        Err(error) => return Err(Failure::Store(error)),
    };
    match broke {
        None => Ok(Received {
            claimed,
            tail: block,
            bytes,
        }),
        Some(error) => {
            // What arrived before a broken body is kept too: the client resumes after it.
            let kept = tokio::task::spawn_blocking(move || {
                let written = claimed.upload.write(&block);
                give_back(block);
                written?;
                claimed.upload.close(false)
            })
            .await;
            match kept {
                Ok(Ok(())) => Err(Failure::Body(error)),
                Ok(Err(store)) => Err(Failure::Store(store)),
                Err(join) => Err(Failure::Store(joined(join))),
            }
        }
    }
}

pub fn joined(join: tokio::task::JoinError) -> StoreError {
    StoreError::Io {
        context: "upload writer".to_owned(),
        source: std::io::Error::other(join),
    }
}

/// The blocking thread that writes full blocks while the next one is received; empty blocks
/// come back for reuse.
struct Writer {
    block_size: usize,
    full: tokio::sync::mpsc::Sender<Vec<u8>>,
    recycled: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    done: tokio::task::JoinHandle<Result<Claimed, StoreError>>,
}

impl Writer {
    fn start(claimed: Option<Claimed>, block_size: usize) -> Writer {
        let mut claimed = claimed.expect("one writer per body");
        let (full, mut filled) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
        let (recycle, recycled) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let done = tokio::task::spawn_blocking(move || {
            while let Some(mut block) = filled.blocking_recv() {
                if let Err(error) = claimed.upload.write(&block) {
                    // The upload is marked broken: close keeps its last good state.
                    let _ = claimed.upload.close(false);
                    return Err(error);
                }
                block.clear();
                let _ = recycle.send(block);
            }
            Ok(claimed)
        });
        Writer {
            block_size,
            full,
            recycled,
            done,
        }
    }

    /// Hands `block` over and leaves an empty one in its place; false if the writer failed.
    async fn send(&mut self, block: &mut Vec<u8>) -> bool {
        let next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| block_of(self.block_size));
        self.full.send(std::mem::replace(block, next)).await.is_ok()
    }

    async fn finish(mut self) -> Result<Claimed, StoreError> {
        drop(self.full);
        let done = self.done.await.map_err(joined)?;
        while let Ok(block) = self.recycled.try_recv() {
            give_back(block);
        }
        done
    }
}

/// Starts an upload in repository `name`, as the application's POST does; returns its id.
pub fn start(storage: &Storage, name: &str) -> Result<String, StoreError> {
    let uploads = layout::uploads(Some(name));
    let upload =
        storage
            .blobs
            .create(Algorithm::Sha256, Some(Path::new(&uploads)), Caching::Keep)?;
    Ok(upload.id().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_blocks_are_reused_up_to_their_budget() {
        let big = UPLOAD_INLINE_MAX + 1;
        // Blocks given back fill the spares up to the budget; the ones beyond are freed.
        let given = UPLOAD_SPARE_BLOCKS_MAX / big + 3;
        for _ in 0..given {
            give_back(Vec::with_capacity(big));
        }
        let held = |spare: &Vec<Vec<u8>>| spare.iter().map(Vec::capacity).sum::<usize>();
        {
            let spare = SPARE_BLOCKS.lock().unwrap();
            assert!(held(&spare) <= UPLOAD_SPARE_BLOCKS_MAX);
            assert!(held(&spare) > UPLOAD_SPARE_BLOCKS_MAX - big);
        }
        // A spare comes back empty and large enough, and only for a block that needs one.
        let mut used = block_of(big);
        assert!(used.is_empty() && used.capacity() >= big);
        used.extend_from_slice(b"bytes");
        give_back(used);
        let again = block_of(big);
        assert!(again.is_empty() && again.capacity() >= big);
        assert_eq!(block_of(16).capacity(), 16);
        // Small blocks are not kept.
        let before = held(&SPARE_BLOCKS.lock().unwrap());
        give_back(Vec::with_capacity(UPLOAD_INLINE_MAX));
        assert_eq!(held(&SPARE_BLOCKS.lock().unwrap()), before);
    }

    #[test]
    fn large_blocks_go_to_at_most_large_max_bodies_at_once() {
        let held: Vec<LargeSlot> = (0..LARGE_MAX).map_while(|_| LargeSlot::take()).collect();
        assert_eq!(held.len(), LARGE_MAX);
        assert!(LargeSlot::take().is_none(), "one more than LARGE_MAX");
        drop(held);
        let again = LargeSlot::take();
        assert!(again.is_some(), "dropped slots are given back");
    }

    #[test]
    fn upload_paths_need_a_valid_name_and_id() {
        let id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(
            parse_upload_path(&format!("/v2/a/b/blobs/uploads/{id}")),
            Some(("a/b", id))
        );
        for bad in [
            "/v2/a/blobs/uploads/",
            "/v2/a/blobs/uploads/0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
            "/v2/a/blobs/uploads/0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "/v2/a/blobs/uploads/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
            "/v2/a/blobs/uploads/../../x",
            "/v2/A/blobs/uploads/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ] {
            assert_eq!(parse_upload_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_range_must_continue_the_upload() {
        let headers = |range: Option<&str>, length: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(r) = range {
                h.insert("content-range", r.parse().unwrap());
            }
            if let Some(l) = length {
                h.insert("content-length", l.parse().unwrap());
            }
            h
        };
        assert!(continues(&headers(None, Some("5")), 10));
        assert!(continues(&headers(Some("10-14"), Some("5")), 10));
        assert!(continues(&headers(Some("10-14"), None), 10));
        assert!(!continues(&headers(Some("9-14"), None), 10));
        assert!(!continues(&headers(Some("10-14"), Some("4")), 10));
        assert!(!continues(&headers(Some("nonsense"), None), 10));
    }
}
