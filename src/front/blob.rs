//! Blob GET and HEAD served by the front itself, through the storage seam (`crate::storage`).
//!
//! Only the plain success is answered here: a well-formed repository name and digest, a link
//! in the repository holding that digest, the blob's data in storage and at most one
//! satisfiable byte range. Everything else (a missing link, a bad name, a malformed or
//! unsatisfiable range, `If-None-Match`) goes to the application, so each error is answered in
//! one place.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream;
use http::{HeaderMap, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::Body;
use super::splice::{self, Pipe, Spliced, StoreConnections};
use crate::blocks::SPLICE_MIN;
use crate::digest::Digest;
use crate::grammar::{self, ByteRange, valid_name};
use crate::layout;
use crate::linked;
use crate::objstore::runtime::runtime;
use crate::objstore::{Remote, blobs};
use crate::storage::{BlobSource, Storage};

/// Reads of a GET body, one kept ahead of the socket.
const READ_BLOCK: u64 = crate::blocks::GET_READ_BLOCK as u64;
/// GETs read on the front's thread.
const READ_INLINE_MAX: u64 = crate::blocks::GET_READ_INLINE_MAX as u64;

/// What the front found for a blob request it may answer.
pub struct LocalBlob {
    pub digest: Digest,
    pub source: Box<dyn BlobSource>,
    pub size: u64,
    /// `(start, length)` of a satisfiable single range, None for the whole blob.
    pub range: Option<(u64, u64)>,
}

/// What the front found for a blob request on object storage.
pub struct RemoteBlob {
    pub digest: Digest,
    /// The digest its bytes are stored under (`linked::resolve`).
    pub stored: Digest,
    pub size: u64,
    pub range: Option<(u64, u64)>,
}

/// `(name, digest)` of `/v2/<name>/blobs/<digest>`, when both are valid as sent (no
/// percent-encoding: anything encoded goes to the application, which decodes and judges it).
pub fn parse_blob_path(path: &str) -> Option<(&str, Digest)> {
    let rest = path.strip_prefix("/v2/")?;
    let (name, digest) = rest.rsplit_once("/blobs/")?;
    if !valid_name(name) || digest.contains('%') {
        return None;
    }
    Some((name, Digest::parse(digest).ok()?))
}

/// The repository and digest of a blob request the front may answer (not a conditional one).
fn wanted<'a>(path: &'a str, headers: &HeaderMap) -> Option<(&'a str, Digest)> {
    if headers.contains_key(header::IF_NONE_MATCH) {
        return None;
    }
    parse_blob_path(path)
}

/// The single satisfiable range asked for (None: the whole blob); None of that when the
/// application is to answer (a range it ignores or refuses).
fn range_of(headers: &HeaderMap, size: u64) -> Option<Option<(u64, u64)>> {
    let Some(value) = headers.get(header::RANGE) else {
        return Some(None);
    };
    match grammar::byte_range(value.to_str().ok()?, size) {
        ByteRange::Satisfiable { start, length } => Some(Some((start, length))),
        ByteRange::Ignored | ByteRange::Unsatisfiable => None,
    }
}

/// The blob behind a GET or HEAD the front may answer; None sends the request on.
pub fn lookup(storage: &Storage, path: &str, headers: &HeaderMap) -> Option<LocalBlob> {
    let (name, digest) = wanted(path, headers)?;
    // The bytes may live under another digest (distribution's alias links, `linked::resolve`).
    let stored = linked::resolve(&*storage.links, name, &digest).ok()??;
    let (source, size) = storage.blobs.open(&stored).ok()?;
    Some(LocalBlob {
        digest,
        source,
        size,
        range: range_of(headers, size)?,
    })
}

/// `lookup` on object storage, in one round trip: the repository's link read and the blob's
/// HEAD at once (a second HEAD only when the link names bytes stored under another digest).
pub async fn lookup_remote(
    remote: Arc<Remote>,
    path: &str,
    headers: &HeaderMap,
) -> Option<RemoteBlob> {
    let (name, digest) = wanted(path, headers)?;
    let (name, wanted_digest) = (name.to_owned(), digest.clone());
    let found = runtime().spawn(async move {
        let link = layout::layer_link(&name, &wanted_digest);
        let data = layout::blob_data(&wanted_digest);
        let (held, meta) = futures::join!(remote.read(&link), remote.head(&data));
        let held = held.ok()??.0;
        let stored = linked::parse_link(&held).filter(|h| linked::serves(h, &wanted_digest))?;
        let size = if stored == wanted_digest {
            meta.ok()??.size
        } else {
            remote.head(&layout::blob_data(&stored)).await.ok()??.size
        };
        Some((stored, size))
    });
    let (stored, size) = found.await.ok()??;
    Some(RemoteBlob {
        digest,
        stored,
        size,
        range: range_of(headers, size)?,
    })
}

/// The headers of every blob answer, as the application sends them.
fn blob_headers(digest: &Digest, extra: &[(String, String)]) -> http::response::Builder {
    let digest = digest.to_string();
    super::response_builder(extra)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("Docker-Content-Digest", &digest)
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "max-age=31536000")
}

/// The response for `blob`: headers as the application sends them, the body read from disk in
/// blocks, one read ahead.
pub fn respond(blob: LocalBlob, method: &Method, extra: &[(String, String)]) -> Response<Body> {
    let headers = blob_headers(&blob.digest, extra);
    let (builder, start, length) = status_and_range(headers, blob.size, blob.range);
    let body = if *method == Method::HEAD || length == 0 {
        super::empty()
    } else if length <= READ_INLINE_MAX {
        let mut source = blob.source;
        let read = read_piece(&mut *source, start, length).map(Frame::data);
        StreamBody::new(stream::iter([read])).boxed()
    } else {
        read_ahead(blob.source, start, length)
    };
    builder
        .body(body)
        .expect("static header names and formatted values are valid")
}

/// The response for a blob on object storage: a GET redirected to a presigned URL (with
/// `redirect`, as the application does, ranges included), else as `respond` with the body from
/// one GET of the store: spliced into the client's connection when `splicing` gives its pipe
/// and the store is plain HTTP, else streamed. None when the URL cannot be signed or the store
/// does not answer a spliced GET as asked (the application answers those failures).
pub async fn respond_remote(
    blob: RemoteBlob,
    method: &Method,
    extra: &[(String, String)],
    remote: &Arc<Remote>,
    redirect: bool,
    splicing: Option<(&Arc<Pipe>, &Arc<StoreConnections>)>,
) -> Option<Response<Body>> {
    let builder = blob_headers(&blob.digest, extra);
    if redirect && *method == Method::GET {
        let (signer, stored) = (remote.clone(), blob.stored.clone());
        let url = runtime()
            .spawn(async move { blobs::redirect_url(&signer, &stored).await })
            .await
            .ok()?
            .ok()?;
        let response = builder
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, url)
            .header(header::CONTENT_LENGTH, 0)
            .body(super::empty());
        return response.ok();
    }
    let (builder, start, length) = status_and_range(builder, blob.size, blob.range);
    if *method == Method::GET
        && length >= SPLICE_MIN
        && let Some((pipe, connections)) = splicing.filter(|(_, c)| c.may_splice())
    {
        let span = (start, length, blob.size);
        match splice::get(remote, &blob.stored, span, pipe, connections).await {
            Spliced::Body(body) => return builder.body(body.boxed()).ok(),
            Spliced::Failed => return None,
            Spliced::NotPlainHttp => {}
        }
    }
    let body = if *method == Method::HEAD || length == 0 {
        super::empty()
    } else {
        let pieces = blobs::stream(remote.clone(), &blob.stored, start, length).ok()?;
        let frames = stream::unfold(pieces, |mut pieces| async move {
            let piece = pieces.recv().await?;
            Some((
                piece.map(Frame::data).map_err(std::io::Error::other),
                pieces,
            ))
        });
        StreamBody::new(frames).boxed()
    };
    builder.body(body).ok()
}

/// The status, `Content-Range` and `Content-Length` of `blob`'s answer, and the span it sends.
fn status_and_range(
    mut builder: http::response::Builder,
    size: u64,
    range: Option<(u64, u64)>,
) -> (http::response::Builder, u64, u64) {
    let (status, start, length) = match range {
        None => (StatusCode::OK, 0, size),
        Some((start, length)) => {
            let end = start + length - 1;
            let range = format!("bytes {start}-{end}/{size}");
            builder = builder.header(header::CONTENT_RANGE, range);
            (StatusCode::PARTIAL_CONTENT, start, length)
        }
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, length);
    (builder, start, length)
}

type Read = tokio::task::JoinHandle<(Box<dyn BlobSource>, std::io::Result<Bytes>)>;

/// `length` bytes of the blob from `pos`, as a body frame's bytes.
fn read_piece(source: &mut dyn BlobSource, pos: u64, length: u64) -> std::io::Result<Bytes> {
    source
        .read_vec(pos, length as usize)
        .map(Bytes::from)
        .map_err(std::io::Error::other)
}

/// `length` bytes of the blob from `pos`, read on a blocking thread.
fn read_block(mut source: Box<dyn BlobSource>, pos: u64, length: u64) -> Read {
    tokio::task::spawn_blocking(move || {
        let block = read_piece(&mut *source, pos, length);
        (source, block)
    })
}

/// `length` bytes from `start`, in `READ_BLOCK` pieces, the next read running while the
/// previous piece goes out. A blob is immutable, so a short read is an I/O error, which ends
/// the response early (the client sees fewer bytes than Content-Length).
fn read_ahead(source: Box<dyn BlobSource>, start: u64, length: u64) -> Body {
    let first = read_block(source, start, length.min(READ_BLOCK));
    let frames = stream::unfold(
        (start, length, Some(first)),
        |(pos, left, pending)| async move {
            let (source, block) = match pending?.await {
                Ok(done) => done,
                Err(join) => return Some((Err(std::io::Error::other(join)), (pos, 0, None))),
            };
            let block = match block {
                Ok(block) => block,
                Err(error) => return Some((Err(error), (pos, 0, None))),
            };
            let (pos, left) = (pos + block.len() as u64, left - block.len() as u64);
            let next = (left > 0).then(|| read_block(source, pos, left.min(READ_BLOCK)));
            Some((Ok(Frame::data(block)), (pos, left, next)))
        },
    );
    StreamBody::new(frames).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_need_a_valid_digest() {
        let hex = "a".repeat(64);
        let path = format!("/v2/x/y/blobs/sha256:{hex}");
        let (name, digest) = parse_blob_path(&path).unwrap();
        assert_eq!((name, digest.hex()), ("x/y", hex.as_str()));
        assert!(parse_blob_path("/v2/x/blobs/uploads").is_none());
        assert!(parse_blob_path(&format!("/v2/x/blobs/sha256:{}", &hex[1..])).is_none());
        assert!(parse_blob_path(&format!("/v2/X/blobs/sha256:{hex}")).is_none());
        assert!(parse_blob_path(&format!("/v2/x/manifests/sha256:{hex}")).is_none());
    }
}
