//! Blob GET and HEAD served by the front itself, from distribution's filesystem layout.
//!
//! Only the plain success is answered here: a well-formed repository name and digest, a link
//! in the repository holding that digest, the blob's data on disk and at most one satisfiable
//! byte range. Everything else (a missing link, a bad name, a malformed or unsatisfiable range,
//! `If-None-Match`) goes to the application, so each error is answered in one place.

use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom};
use std::path::Path;

use bytes::Bytes;
use futures::stream;
use http::{HeaderMap, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;

use super::Body;
use crate::digest::Digest;
use crate::grammar::{self, ByteRange, valid_name};
use crate::layout;

/// Reads of a GET body: 2 MiB, one kept ahead of the socket (the size the application's reader
/// measured fastest on two cores).
const READ_BLOCK: u64 = 2 * 1024 * 1024;

/// What the front found for a blob request it may answer.
pub struct LocalBlob {
    pub digest: Digest,
    pub file: File,
    pub size: u64,
    /// `(start, length)` of a satisfiable single range, None for the whole blob.
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

/// The blob behind a GET or HEAD the front may answer; None sends the request on.
pub fn lookup(root: &Path, path: &str, headers: &HeaderMap) -> Option<LocalBlob> {
    if headers.contains_key(header::IF_NONE_MATCH) {
        return None;
    }
    let (name, digest) = parse_blob_path(path)?;
    let linked = std::fs::read(root.join(layout::layer_link(name, &digest))).ok()?;
    if std::str::from_utf8(&linked).ok()?.trim() != digest.to_string() {
        return None;
    }
    let file = File::open(root.join(layout::blob_data(&digest))).ok()?;
    let size = file.metadata().ok()?.len();
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => match grammar::byte_range(value.to_str().ok()?, size) {
            ByteRange::Satisfiable { start, length } => Some((start, length)),
            // The application ignores it or answers 416.
            ByteRange::Ignored | ByteRange::Unsatisfiable => return None,
        },
    };
    Some(LocalBlob {
        digest,
        file,
        size,
        range,
    })
}

/// The response for `blob`: headers as the application sends them, the body read from disk in
/// blocks, one read ahead.
pub fn respond(blob: LocalBlob, method: &Method, extra: &[(String, String)]) -> Response<Body> {
    let digest = blob.digest.to_string();
    let mut builder = Response::builder()
        .header("Docker-Distribution-API-Version", "registry/2.0")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("Docker-Content-Digest", &digest)
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "max-age=31536000");
    for (name, value) in extra {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let (status, start, length) = match blob.range {
        None => (StatusCode::OK, 0, blob.size),
        Some((start, length)) => {
            let end = start + length - 1;
            let range = format!("bytes {start}-{end}/{}", blob.size);
            builder = builder.header(header::CONTENT_RANGE, range);
            (StatusCode::PARTIAL_CONTENT, start, length)
        }
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, length);
    let body = if *method == Method::HEAD || length == 0 {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        read_ahead(blob.file, start, length)
    };
    builder
        .body(body)
        .expect("static header names and formatted values are valid")
}

type Read = tokio::task::JoinHandle<(File, std::io::Result<Bytes>)>;

/// The next `length` bytes of `file`. Read through `read_to_end` into fresh capacity, so the
/// buffer is not zeroed first (that was 7% of a GET's CPU with a zeroed buffer and `pread`).
fn read_block(mut file: File, length: u64) -> Read {
    tokio::task::spawn_blocking(move || {
        let mut buffer = Vec::with_capacity(length as usize);
        let read = (&mut file).take(length).read_to_end(&mut buffer);
        let block = match read {
            Ok(n) if n as u64 == length => Ok(Bytes::from(buffer)),
            Ok(n) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("blob data ended {} bytes early", length - n as u64),
            )),
            Err(error) => Err(error),
        };
        (file, block)
    })
}

/// `length` bytes from `start`, in `READ_BLOCK` pieces, the next read running while the
/// previous piece goes out. A blob is immutable, so a short file is an I/O error, which ends
/// the response early (the client sees fewer bytes than Content-Length).
fn read_ahead(mut file: File, start: u64, length: u64) -> Body {
    if let Err(error) = file.seek(SeekFrom::Start(start)) {
        return StreamBody::new(stream::iter([Err(error)])).boxed();
    }
    let first = read_block(file, length.min(READ_BLOCK));
    let frames = stream::unfold((length, Some(first)), |(left, pending)| async move {
        let (file, block) = match pending?.await {
            Ok(done) => done,
            Err(join) => return Some((Err(std::io::Error::other(join)), (0, None))),
        };
        let block = match block {
            Ok(block) => block,
            Err(error) => return Some((Err(error), (0, None))),
        };
        let left = left - block.len() as u64;
        let next = (left > 0).then(|| read_block(file, left.min(READ_BLOCK)));
        Some((Ok(Frame::data(block)), (left, next)))
    });
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
