//! Manifest GET and HEAD served by the front itself, on filesystem storage: a pull's first
//! requests (often its only ones, for an image whose layers the client has) need no Python.
//!
//! Only the plain success is answered here: a well-formed repository name and reference (a tag
//! with its current link, or a digest), the revision linked in the repository, the manifest's
//! bytes stored, a media type the application serves (it gives the front the list) and admitted
//! by the request's `Accept`. Everything else (an unknown tag or revision, `If-None-Match`, an
//! `Accept` that excludes it, a pull-through cache's `ns`) goes to the application.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::Body;
use crate::digest::Digest;
use crate::grammar::{self, valid_name};
use crate::storage::Storage;
use crate::{layout, linked, manifest};

/// Largest manifest the front reads (the application accepts no larger one).
const MANIFEST_MAX: u64 = 4 * 1024 * 1024;

/// `(name, reference)` of `/v2/<name>/manifests/<reference>`, both as sent (anything
/// percent-encoded goes to the application).
pub fn parse_manifest_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    let (name, reference) = rest.rsplit_once("/manifests/")?;
    (valid_name(name) && !reference.is_empty() && !reference.contains(['%', '/']))
        .then_some((name, reference))
}

pub struct LocalManifest {
    digest: Digest,
    media_type: String,
    payload: Vec<u8>,
}

/// The manifest behind a GET or HEAD the front may answer; None sends the request on.
pub fn lookup(
    storage: &Storage,
    path: &str,
    headers: &HeaderMap,
    media_types: &[String],
) -> Option<LocalManifest> {
    if headers.contains_key(header::IF_NONE_MATCH) {
        return None;
    }
    let (name, reference) = parse_manifest_path(path)?;
    let links = &*storage.links;
    let digest = if reference.contains(':') {
        Digest::parse(reference).ok()?
    } else {
        if !grammar::valid_tag(reference) {
            return None;
        }
        linked::read_link(links, &layout::tag_current_link(name, reference)).ok()??
    };
    let revision = linked::read_link(links, &layout::revision_link(name, &digest)).ok()??;
    if revision != digest {
        return None;
    }
    let (mut source, size) = storage.blobs.open(&digest).ok()?;
    if size > MANIFEST_MAX {
        return None;
    }
    let payload = source.read_vec(0, size as usize).ok()?;
    let media_type = manifest::media_type(&payload)?;
    if !media_types.contains(&media_type) || HeaderValue::from_str(&media_type).is_err() {
        return None;
    }
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .map(|value| value.to_str().ok());
    let accept: Option<Vec<&str>> = accept.collect();
    if !grammar::accepts(accept?, &media_type) {
        return None;
    }
    Some(LocalManifest {
        digest,
        media_type,
        payload,
    })
}

/// The response for `found`, as the application answers it.
pub fn respond(
    found: LocalManifest,
    method: &Method,
    extra: &[(String, String)],
) -> Response<Body> {
    let digest = found.digest.to_string();
    let builder = super::response_builder(extra)
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, &found.media_type)
        .header("Docker-Content-Digest", &digest)
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::CONTENT_LENGTH, found.payload.len());
    let body = if *method == Method::HEAD {
        super::empty()
    } else {
        Full::new(bytes::Bytes::from(found.payload))
            .map_err(|never| match never {})
            .boxed()
    };
    builder
        .body(body)
        .expect("the media type was checked as a header value, the rest are formatted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths() {
        assert_eq!(
            parse_manifest_path("/v2/a/b/manifests/latest"),
            Some(("a/b", "latest"))
        );
        assert_eq!(
            parse_manifest_path("/v2/a/manifests/sha256:abc"),
            Some(("a", "sha256:abc"))
        );
        assert_eq!(parse_manifest_path("/v2/A/manifests/latest"), None);
        assert_eq!(parse_manifest_path("/v2/a/manifests/"), None);
        assert_eq!(parse_manifest_path("/v2/a/manifests/x%2Fy"), None);
        assert_eq!(parse_manifest_path("/v2/a/blobs/sha256:abc"), None);
    }
}
