//! The one owner of the storage layout: every path and key of distribution's tree, and the few
//! ocistore adds, as `/`-separated keys relative to the storage root. The filesystem joins them
//! to its root directory, the object store to its `rootdirectory`; the native front, the blob
//! store, uploads, the Python registry services, GC and fsck all build their paths here (the
//! Python side through `ocistore._core.layout_*`), as distribution's `registry/storage/paths.go`
//! owns its layout.
//!
//! ```text
//! docker/registry/v2/
//!   blobs/<alg>/<hex[0:2]>/<hex>/data
//!   repositories/<name>/_layers/<alg>/<hex>/link
//!   repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//!   repositories/<name>/_manifests/tags/<tag>/current/link
//!   repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//!   repositories/<name>/_referrers/<alg>/<subject hex>/<alg>/<hex>/link      (ocistore's own)
//!   repositories/<name>/_uploads/<uuid>/{data,startedat,hashstates/<alg>/<offset>}
//!   _uploads/<uuid>/...                                         (uploads of no repository)
//!   _ocistore/gc.lock, _ocistore/gc.collector, _ocistore/quarantine/, _ocistore/imports/
//!   _ocistore/gc/{lease,clock,marks/<key>,claims/<key>}   (object storage's GC; ocistore's own)
//!   _ocistore/aliases/<alg>/<hex>/link                          (ocistore's own)
//!   _ocistore/proxy/fetches/<name>/_blobs/<alg>/<hex>/{lock,state}  (ocistore's own)
//!   _ocistore/proxy/referrers/<name>/_referrers/<alg>/<hex>       (ocistore's own)
//! ```
//!
//! Callers check names, tags and digests (`crate::grammar`, `Digest::parse`) before they ask
//! for a key: nothing here validates, so nothing here can be the only check.

use crate::digest::{Algorithm, Digest};

use crate::error::{Result, StoreError};

/// Everything the registry stores is under this key.
pub const V2: &str = "docker/registry/v2";
/// A link's file name: it holds `<alg>:<hex>` and nothing else.
pub const LINK: &str = "link";

/// The files of an upload, relative to its directory (`uploads/<uuid>`).
pub mod upload {
    /// The bytes received so far.
    pub const DATA: &str = "data";
    /// When the upload began, RFC 3339.
    pub const STARTED_AT: &str = "startedat";
    /// Saved hash states, `hashstates/<alg>/<offset>` in Go's `BinaryMarshaler` format.
    pub const HASH_STATES: &str = "hashstates";
    /// The boot id and last durable offset, for states saved without fsync (filesystem).
    pub const VOLATILE_MARK: &str = "ocistore-volatile";
    /// The multipart upload's state and the lock between instances (object storage).
    pub const STATE_OBJECT: &str = "ocistore-upload.json";

    /// `hashstates/<alg>`.
    pub fn hash_states(algorithm: &str) -> String {
        format!("{HASH_STATES}/{algorithm}")
    }

    /// `hashstates/<alg>/<offset>`.
    pub fn hash_state(algorithm: &str, offset: u64) -> String {
        format!("{HASH_STATES}/{algorithm}/{offset}")
    }
}

/// `<base>/<alg>/<hex>`: how every digest-named directory is spelled.
pub fn digest_dir(base: &str, digest: &Digest) -> String {
    format!("{base}/{}/{}", digest.algorithm().name(), digest.hex())
}

/// `<base>/<alg>/<hex>/link`.
pub fn digest_link(base: &str, digest: &Digest) -> String {
    format!("{}/{LINK}", digest_dir(base, digest))
}

/// `docker/registry/v2/blobs`.
pub fn blobs() -> String {
    format!("{V2}/blobs")
}

/// `docker/registry/v2/blobs/<alg>`.
pub fn blobs_of(algorithm: Algorithm) -> String {
    format!("{V2}/blobs/{}", algorithm.name())
}

/// `docker/registry/v2/blobs/<alg>/<hex[0:2]>/<hex>`.
pub fn blob_dir(digest: &Digest) -> String {
    let hex = digest.hex();
    format!(
        "{V2}/blobs/{}/{}/{hex}",
        digest.algorithm().name(),
        &hex[..2]
    )
}

/// `docker/registry/v2/blobs/<alg>/<hex[0:2]>/<hex>/data`: the blob's bytes.
pub fn blob_data(digest: &Digest) -> String {
    format!("{}/data", blob_dir(digest))
}

/// `docker/registry/v2/repositories`.
pub fn repositories() -> String {
    format!("{V2}/repositories")
}

/// `docker/registry/v2/repositories/<name>`.
pub fn repository(name: &str) -> String {
    format!("{V2}/repositories/{name}")
}

/// The parts of a repository directory, in the order `Registry.remove` deletes them. The
/// catalog (and distribution's) takes a directory holding `_manifests` for a repository and
/// skips every `_`-directory when walking.
pub const REPOSITORY_PARTS: [&str; 4] = ["_manifests", "_layers", "_uploads", "_referrers"];

/// `repositories/<name>/_layers`: blobs linked into the repository.
pub fn layers(name: &str) -> String {
    format!("{}/_layers", repository(name))
}

/// `repositories/<name>/_layers/<alg>/<hex>/link`.
pub fn layer_link(name: &str, digest: &Digest) -> String {
    digest_link(&layers(name), digest)
}

/// The algorithm whose digest names the bytes of a blob linked into a repository by a digest
/// in `linked_by`. distribution keeps one copy of a blob under its canonical sha256: a blob
/// pushed by a sha512 digest is stored in `blobs/sha256/…`, and the repository links it under
/// both digests, each link holding `sha256:…` (its blob writer's `linkBlob` with the pushed
/// digest as an alias). ocistore writes that layout byte for byte. blake3, which distribution
/// has no layout for, is stored under its own digest (re-hashing it in sha256 would cost the
/// speed it is chosen for), as are blobs stored outside any repository.
pub fn stored_algorithm(linked_by: Algorithm) -> Algorithm {
    match linked_by {
        Algorithm::Sha512 => Algorithm::Sha256,
        other => other,
    }
}

/// `repositories/<name>/_manifests`.
pub fn manifests(name: &str) -> String {
    format!("{}/_manifests", repository(name))
}

/// `repositories/<name>/_manifests/revisions`: manifests stored in the repository.
pub fn revisions(name: &str) -> String {
    format!("{}/_manifests/revisions", repository(name))
}

/// `repositories/<name>/_manifests/revisions/<alg>/<hex>/link`.
pub fn revision_link(name: &str, digest: &Digest) -> String {
    digest_link(&revisions(name), digest)
}

/// `repositories/<name>/_manifests/tags`.
pub fn tags(name: &str) -> String {
    format!("{}/_manifests/tags", repository(name))
}

/// `repositories/<name>/_manifests/tags/<tag>`.
pub fn tag_dir(name: &str, tag: &str) -> String {
    format!("{}/{tag}", tags(name))
}

/// `repositories/<name>/_manifests/tags/<tag>/current/link`: what the tag points at.
pub fn tag_current_link(name: &str, tag: &str) -> String {
    format!("{}/current/{LINK}", tag_dir(name, tag))
}

/// `repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link`: every manifest the tag
/// has pointed at.
pub fn tag_index_link(name: &str, tag: &str, digest: &Digest) -> String {
    digest_link(&format!("{}/index", tag_dir(name, tag)), digest)
}

/// `repositories/<name>/_referrers`: ocistore's index of manifests by subject (distribution
/// skips `_`-directories, so trees stay interchangeable).
pub fn referrers(name: &str) -> String {
    format!("{}/_referrers", repository(name))
}

/// `repositories/<name>/_referrers/<alg>/<subject hex>`.
pub fn referrers_of(name: &str, subject: &Digest) -> String {
    digest_dir(&referrers(name), subject)
}

/// `repositories/<name>/_referrers/<alg>/<subject hex>/<alg>/<hex>/link`.
pub fn referrer_link(name: &str, subject: &Digest, digest: &Digest) -> String {
    digest_link(&referrers_of(name, subject), digest)
}

/// Where uploads live: a repository's `_uploads`, or with no repository the store's own
/// `docker/registry/v2/_uploads` (uploads of the global `BlobStore`).
pub fn uploads(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{}/_uploads", repository(name)),
        None => format!("{V2}/_uploads"),
    }
}

/// `<uploads>/<uuid>`.
pub fn upload_dir(name: Option<&str>, id: &str) -> String {
    format!("{}/{id}", uploads(name))
}

/// `<uploads>/<uuid>/data`.
pub fn upload_data(name: Option<&str>, id: &str) -> String {
    format!("{}/{}", upload_dir(name, id), upload::DATA)
}

/// `docker/registry/v2/_ocistore`: ocistore's own state, which distribution never reads.
pub fn ocistore_dir() -> String {
    format!("{V2}/_ocistore")
}

/// `_ocistore/aliases/<alg>/<hex>/link`: the digest a blob pushed by `digest` is stored under
/// when that is another (`stored_algorithm`), so that a mount naming no repository finds it.
/// distribution keeps that only in repositories' links; this global copy is ocistore's own.
pub fn blob_alias(digest: &Digest) -> String {
    digest_link(&blob_aliases(), digest)
}

/// `_ocistore/aliases`: where every `blob_alias` is.
pub fn blob_aliases() -> String {
    format!("{V2}/_ocistore/aliases")
}

/// `_ocistore/proxy/fetches/<name>/_blobs/<alg>/<hex>`: a pull-through cache's fetch of a blob
/// of repository `name` from its upstream, shared by every worker: `lock` (held by the one
/// fetching) and `state` (the upload it fetches into and the blob's size, or why it failed).
/// `_blobs` cannot be part of a name, so no repository's fetches meet another's.
pub fn proxy_fetch(name: &str, digest: &Digest) -> String {
    digest_dir(
        &format!("{V2}/_ocistore/proxy/fetches/{name}/_blobs"),
        digest,
    )
}

/// `_ocistore/proxy/referrers/<name>/_referrers/<alg>/<hex>`: the last referrers index the
/// upstream gave for subject `digest` of repository `name`, served when it cannot be reached.
pub fn proxy_referrers(name: &str, digest: &Digest) -> String {
    digest_dir(
        &format!("{V2}/_ocistore/proxy/referrers/{name}/_referrers"),
        digest,
    )
}

/// Taken by the one process expiring a pull-through cache's content (any other skips its turn).
pub fn proxy_expiry_lock() -> String {
    format!("{V2}/_ocistore/proxy/expiry.lock")
}

/// `_ocistore/imports/<key>.json`: the journal of an unfinished `ocistore import` (each
/// unfinished blob's upload, to resume it), `key` naming the source and the repository.
pub fn import_journal(key: &str) -> String {
    format!("{V2}/_ocistore/imports/{key}.json")
}

/// The lock between pushes (shared) and the garbage collector's deletes (exclusive).
pub fn gc_lock() -> String {
    format!("{V2}/_ocistore/gc.lock")
}

/// `_ocistore/gc/marks/<key>`: the mark of the object at `key` (a blob's data, a revision
/// link) on object storage, where an object's modification time cannot be refreshed: a push
/// writes it before checking the object is there, and the collector keeps what was marked
/// after its cutoff. Keys under the registry's `docker/registry/v2` drop that prefix.
pub fn gc_mark(key: &str) -> String {
    format!("{V2}/_ocistore/gc/marks/{}", under_v2(key))
}

/// `_ocistore/gc/claims/<key>`: written by the collector before it decides on the object at
/// `key` and removed once it has; a push that finds it waits (see `crate::objstore::gc`).
pub fn gc_claim(key: &str) -> String {
    format!("{V2}/_ocistore/gc/claims/{}", under_v2(key))
}

/// `_ocistore/gc/claims`: where every `gc_claim` is.
pub fn gc_claims() -> String {
    format!("{V2}/_ocistore/gc/claims")
}

/// `_ocistore/gc/lease`: held by the one collector of object storage, renewed while it runs.
pub fn gc_lease() -> String {
    format!("{V2}/_ocistore/gc/lease")
}

/// `_ocistore/gc/clock`: written and read back for the storage's own clock, which the marks'
/// times are in.
pub fn gc_clock() -> String {
    format!("{V2}/_ocistore/gc/clock")
}

/// Taken (without waiting) by the one collector of a filesystem tree.
pub fn gc_collector_lock() -> String {
    format!("{V2}/_ocistore/gc.collector")
}

fn under_v2(key: &str) -> &str {
    key.strip_prefix(V2)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(key)
}

/// Where `fsck` moves blobs whose bytes do not match their name (never deleted).
pub fn quarantine() -> String {
    format!("{V2}/_ocistore/quarantine")
}

/// Checks a key relative to the storage root, for keys that come from callers (the Python
/// drivers) rather than from the functions above. Empty, "." and ".." segments are refused
/// because S3 keys are plain strings: "a//b" and "a/./b" would be distinct objects that the
/// filesystem driver (and every listing by segment) treats as one, and ".." would let a key
/// climb out of the root directory once a proxy or another driver normalises it.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::Value("object key must not be empty".into()));
    }
    if key.starts_with('/') {
        return Err(StoreError::Value(format!(
            "object key {key:?} must be relative to the root directory (no leading '/')"
        )));
    }
    for segment in key.split('/') {
        check_segment(key, segment)?;
    }
    Ok(())
}

fn check_segment(key: &str, segment: &str) -> Result<()> {
    let reason = if segment.is_empty() {
        "an empty segment"
    } else if segment == "." || segment == ".." {
        "a '.' or '..' segment"
    } else if segment.chars().any(|c| c.is_ascii_control()) {
        "a control character"
    } else {
        return Ok(());
    };
    Err(StoreError::Value(format!(
        "object key {key:?} has {reason}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn keys_are_distributions() {
        let (a, b) = (digest('a'), digest('b'));
        let hex_a = "a".repeat(64);
        let hex_b = "b".repeat(64);
        let repo = "docker/registry/v2/repositories/lib/x";
        assert_eq!(
            blob_data(&a),
            format!("docker/registry/v2/blobs/sha256/aa/{hex_a}/data")
        );
        assert_eq!(
            layer_link("lib/x", &a),
            format!("{repo}/_layers/sha256/{hex_a}/link")
        );
        assert_eq!(
            revision_link("lib/x", &a),
            format!("{repo}/_manifests/revisions/sha256/{hex_a}/link")
        );
        assert_eq!(
            tag_current_link("lib/x", "v1"),
            format!("{repo}/_manifests/tags/v1/current/link")
        );
        assert_eq!(
            tag_index_link("lib/x", "v1", &a),
            format!("{repo}/_manifests/tags/v1/index/sha256/{hex_a}/link")
        );
        assert_eq!(
            referrer_link("lib/x", &a, &b),
            format!("{repo}/_referrers/sha256/{hex_a}/sha256/{hex_b}/link")
        );
        assert_eq!(
            upload_data(Some("lib/x"), "u"),
            format!("{repo}/_uploads/u/data")
        );
        assert_eq!(upload_data(None, "u"), "docker/registry/v2/_uploads/u/data");
        assert_eq!(upload::hash_state("sha256", 7), "hashstates/sha256/7");
        assert_eq!(gc_lock(), "docker/registry/v2/_ocistore/gc.lock");
        assert_eq!(
            gc_mark("docker/registry/v2/blobs/sha256/ab/abc/data"),
            "docker/registry/v2/_ocistore/gc/marks/blobs/sha256/ab/abc/data"
        );
        assert_eq!(
            gc_claim("docker/registry/v2/repositories/a/_manifests/revisions/sha256/ab/link"),
            "docker/registry/v2/_ocistore/gc/claims/repositories/a/_manifests/revisions/sha256/ab/link"
        );
        assert_eq!(
            gc_mark("other/key"),
            "docker/registry/v2/_ocistore/gc/marks/other/key"
        );
    }

    #[test]
    fn other_algorithms_name_their_directories() {
        let d = Digest::parse(&format!("sha512:{}", "c".repeat(128))).unwrap();
        assert!(blob_data(&d).starts_with("docker/registry/v2/blobs/sha512/cc/"));
        assert_eq!(
            blobs_of(Algorithm::Blake3),
            "docker/registry/v2/blobs/blake3"
        );
    }
}
