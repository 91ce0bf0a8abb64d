//! Manifest GET and HEAD served by the front itself, on filesystem storage: a pull's first
//! requests (often its only ones, for an image whose layers the client has) need no Python.
//! And the plain manifest PUT, a push's last request: an image manifest of a built-in schema
//! whose config and layers are all in the repository, stored by the core's commit
//! (`crate::manifest_commit`) as the application stores it.
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
use crate::manifest::{Pushed, Schema};
use crate::storage::Storage;
use crate::{layout, linked, manifest, manifest_commit};

/// Largest manifest the front reads (the application accepts no larger one).
pub(super) const MANIFEST_MAX: u64 = 4 * 1024 * 1024;

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

/// What a manifest PUT names: the repository, and the tag or digest it is pushed by.
pub struct PutTarget {
    pub name: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// The manifest PUT the front may take: no query (a `tag` parameter goes to the application), a
/// valid tag or a digest, and a `Content-Length` within the manifest limit; None sends it on.
pub fn put_target(path: &str, query: Option<&str>, headers: &HeaderMap) -> Option<PutTarget> {
    if query.is_some() || headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    let length = headers.get(header::CONTENT_LENGTH)?.to_str().ok()?;
    if !grammar::is_decimal(length) || length.parse::<u64>().ok()? > MANIFEST_MAX {
        return None;
    }
    let (name, reference) = parse_manifest_path(path)?;
    let (tag, digest) = if reference.contains(':') {
        (None, Some(Digest::parse(reference).ok()?))
    } else if grammar::valid_tag(reference) {
        (Some(reference.to_owned()), None)
    } else {
        return None;
    };
    Some(PutTarget {
        name: name.to_owned(),
        tag,
        digest,
    })
}

/// A manifest the front stored.
pub struct Stored {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

/// Stores the pushed `payload` when it is the plain case: an image manifest of a built-in
/// schema, addressed by its own digest, with no foreign layers, whose every referenced blob
/// the repository has. Ok(None): anything else, which the application answers (and words the
/// refusal of); it stores nothing here but the revision link's mark.
pub fn put(
    storage: &Storage,
    target: &PutTarget,
    content_type: Option<&str>,
    payload: &[u8],
) -> crate::error::Result<Option<Stored>> {
    let Ok(Pushed::BuiltIn(parsed)) = manifest::parse_pushed(content_type, payload) else {
        return Ok(None);
    };
    if !matches!(parsed.schema, Schema::Image { .. })
        || parsed
            .references()
            .any(|reference| reference.urls.is_some())
    {
        return Ok(None);
    }
    let algorithm = target
        .digest
        .as_ref()
        .map_or(crate::digest::Algorithm::Sha256, |d| d.algorithm());
    let mut hasher = crate::hashing::Hasher::new(algorithm);
    hasher.update(payload);
    let digest = hasher.digest();
    if target
        .digest
        .as_ref()
        .is_some_and(|pushed_as| *pushed_as != digest)
    {
        return Ok(None);
    }
    let name = target.name.as_str();
    let _lock = storage.links.gc_lock(false)?;
    manifest_commit::mark_revision(storage, name, &digest)?;
    for reference in parsed.references() {
        if manifest_commit::check_blob_reference(storage, name, &reference.digest)?.is_none() {
            return Ok(None);
        }
    }
    let subject = parsed
        .subject
        .as_ref()
        .map(|subject| subject.digest.clone());
    let tags: Vec<String> = target.tag.iter().cloned().collect();
    manifest_commit::store(storage, name, &digest, payload, subject.as_ref(), &tags)?;
    Ok(Some(Stored { digest, subject }))
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
