//! A blob the pull-through cache is fetching, sent by the front from the fetch's upload as it
//! grows (the application answers such a GET with a `protocol::TailOrder` and no body).
//!
//! The bytes come from the upload's data file while the fetch writes it; the answer's last byte
//! goes only once the fetch's state says every byte is there and matches the digest, or the
//! blob is published (`linked::resolve` finds it; then from the published blob). A fetch that fails (its state
//! says so), that stops (nobody holds its lock and nothing arrives), or that stalls ends the
//! body early: the client sees a broken transfer, never bytes it could take for the blob.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use http::{Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::Body;
use super::protocol::{FetchState, TailOrder};
use crate::digest::Digest;
use crate::layout;
use crate::linked;
use crate::storage::{BlobSource, Storage};

/// Reads of the growing file or of the published blob, per frame.
const READ_BLOCK: u64 = crate::blocks::GET_READ_BLOCK as u64;
/// How often the front looks for new bytes (doubling from the first to the last).
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_LAST: Duration = Duration::from_millis(20);
/// Without a byte for this long, the front checks that someone still holds the fetch's lock.
const CHECK_FETCHER_AFTER: Duration = Duration::from_secs(2);
/// ... and gives up after this long.
const STALL_LIMIT: Duration = Duration::from_secs(120);

/// The order carried by an application's answer, if it carries one.
pub fn order_of<B>(response: &Response<B>) -> Option<TailOrder> {
    let value = response.headers().get(super::protocol::TAIL_HEADER)?;
    serde_json::from_slice(value.as_bytes()).ok()
}

/// The application's answer with the body the order names.
pub fn respond(
    storage: &Storage,
    root: &Path,
    order: TailOrder,
    answer: Response<Body>,
) -> Response<Body> {
    let (mut parts, _) = answer.into_parts();
    parts.headers.remove(super::protocol::TAIL_HEADER);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, order.length.into());
    // The application's order names a checked repository; checked again before any path is
    // built from it.
    let body = match Digest::parse(&order.digest) {
        Ok(digest) if crate::grammar::valid_name(&order.name) => {
            tail(storage.clone(), root.to_owned(), order, digest)
        }
        _ => failed(format!("bad tail order for {}", order.name)),
    };
    Response::from_parts(parts, body)
}

fn failed(reason: String) -> Body {
    let frames = stream::iter([Err::<Frame<Bytes>, _>(std::io::Error::other(reason))]);
    StreamBody::new(frames).boxed()
}

/// Where the tail stands.
struct Tail {
    storage: Storage,
    root: PathBuf,
    name: String,
    digest: Digest,
    position: u64,
    end: u64,
    /// The upload being read, and its data file.
    reading: Option<(String, Arc<File>)>,
    published: Option<Arc<std::sync::Mutex<Box<dyn BlobSource>>>>,
    idle: Duration,
    pause: Duration,
    done: bool,
}

fn tail(storage: Storage, root: PathBuf, order: TailOrder, digest: Digest) -> Body {
    let state = Tail {
        storage,
        root,
        name: order.name,
        digest,
        position: order.start,
        end: order.start + order.length,
        reading: None,
        published: None,
        idle: Duration::ZERO,
        pause: POLL_FIRST,
        done: order.length == 0,
    };
    let frames = stream::unfold(state, |mut tail| async move {
        if tail.done {
            return None;
        }
        match tail.next().await {
            Ok(Some(bytes)) => Some((Ok(Frame::data(bytes)), tail)),
            Ok(None) => None,
            Err(error) => {
                tail.done = true;
                Some((Err(error), tail))
            }
        }
    });
    StreamBody::new(frames).boxed()
}

impl Tail {
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if self.position >= self.end {
                return Ok(None);
            }
            if let Some(source) = self.published.clone() {
                let (position, length) =
                    (self.position, (self.end - self.position).min(READ_BLOCK));
                let block = tokio::task::spawn_blocking(move || {
                    let mut source = source.lock().expect("one reader at a time");
                    source.read_vec(position, length as usize)
                })
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?;
                self.position += block.len() as u64;
                return Ok(Some(Bytes::from(block)));
            }
            if let Some(stored) = linked::resolve(&*self.storage.links, &self.name, &self.digest)
                .ok()
                .flatten()
                && let Ok((source, _)) = self.storage.blobs.open(&stored)
            {
                self.published = Some(Arc::new(std::sync::Mutex::new(source)));
                continue;
            }
            let fetch = self
                .root
                .join(layout::proxy_fetch(&self.name, &self.digest));
            let state = std::fs::read(fetch.join("state"))
                .ok()
                .and_then(|bytes| FetchState::parse(&bytes));
            if let Some(reason) = state.as_ref().and_then(|s| s.failed.clone()) {
                return Err(std::io::Error::other(reason));
            }
            let verified = state.as_ref().is_some_and(|s| s.verified);
            let verified_upload = state.as_ref().and_then(|s| s.upload.clone());
            if let Some(upload) = state.and_then(|s| s.upload)
                && self.reading.as_ref().is_none_or(|(id, _)| *id != upload)
                && crate::grammar::valid_upload_id(&upload)
            {
                let data = self
                    .root
                    .join(layout::upload_data(Some(&self.name), &upload));
                if let Ok(file) = File::open(&data) {
                    self.reading = Some((upload, Arc::new(file)));
                }
            }
            if let Some((reading, file)) = &self.reading {
                let available = file.metadata()?.len();
                // Everything but the answer's last byte may go before the blob is verified.
                let limit = if verified && verified_upload.as_ref() == Some(reading) {
                    self.end
                } else {
                    self.end - 1
                };
                let can = available.min(limit).saturating_sub(self.position);
                if can > 0 {
                    let (file, position) = (file.clone(), self.position);
                    let length = can.min(READ_BLOCK) as usize;
                    let block = tokio::task::spawn_blocking(move || {
                        let mut buffer = vec![0; length];
                        let n = file.read_at(&mut buffer, position)?;
                        buffer.truncate(n);
                        Ok::<_, std::io::Error>(buffer)
                    })
                    .await
                    .map_err(std::io::Error::other)??;
                    if !block.is_empty() {
                        self.position += block.len() as u64;
                        self.idle = Duration::ZERO;
                        self.pause = POLL_FIRST;
                        return Ok(Some(Bytes::from(block)));
                    }
                }
            }
            tokio::time::sleep(self.pause).await;
            self.idle += self.pause;
            self.pause = (self.pause * 2).min(POLL_LAST);
            if self.idle >= STALL_LIMIT {
                return Err(std::io::Error::other("the upstream fetch stalled"));
            }
            if self.idle >= CHECK_FETCHER_AFTER && !fetcher_alive(&fetch.join("lock")) {
                // Whoever fetched died; the client's next request starts the fetch again,
                // which resumes from what arrived.
                return Err(std::io::Error::other("the upstream fetch stopped"));
            }
        }
    }
}

/// Whether someone holds the fetch's lock (a lock the front can take is nobody's).
fn fetcher_alive(lock: &Path) -> bool {
    let Ok(file) = File::open(lock) else {
        return false;
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
        Ok(held) => {
            drop(held);
            false
        }
        Err(_) => true,
    }
}
