//! Manifest DELETEs by digest and blob DELETEs served by the front itself, on filesystem
//! storage with deletes enabled: the core's steps (`crate::manifest_delete`,
//! `crate::linked::unlink`), the very ones the application takes. Only the plain success is
//! answered here; a manifest or blob the repository does not have, a DELETE by tag, a manifest
//! whose schema only the application knows (its subject is read to drop its referrers entry)
//! and any storage failure go to the application, which answers them.

use crate::digest::Digest;
use crate::manifest::{self, Pushed};
use crate::storage::Storage;
use crate::{layout, linked, manifest_delete};

use super::blob::parse_blob_path;
use super::manifest::{MANIFEST_MAX, parse_manifest_path};

/// What a DELETE names.
pub enum Target {
    Manifest { name: String, digest: Digest },
    Blob { name: String, digest: Digest },
}

impl Target {
    /// The repository it deletes from.
    pub fn name(&self) -> &str {
        match self {
            Target::Manifest { name, .. } | Target::Blob { name, .. } => name,
        }
    }

    /// The route it is recorded under, as the application's routing names it.
    pub fn route(&self) -> &'static str {
        match self {
            Target::Manifest { .. } => "manifest",
            Target::Blob { .. } => "blob",
        }
    }
}

/// The DELETE the front may take: a blob, or a manifest by digest.
pub fn target(path: &str) -> Option<Target> {
    if let Some((name, digest)) = parse_blob_path(path) {
        return Some(Target::Blob {
            name: name.to_owned(),
            digest,
        });
    }
    let (name, reference) = parse_manifest_path(path)?;
    let digest = Digest::parse(reference).ok()?;
    Some(Target::Manifest {
        name: name.to_owned(),
        digest,
    })
}

/// Deletes `target`; false: not the plain case, nothing was deleted, and the application
/// answers.
pub fn delete(storage: &Storage, target: &Target) -> bool {
    match target {
        Target::Blob { name, digest } => {
            matches!(linked::unlink(&*storage.links, name, digest), Ok(true))
        }
        Target::Manifest { name, digest } => {
            let Some(subject) = subject(storage, name, digest) else {
                return false;
            };
            matches!(
                manifest_delete::delete(storage, name, digest, subject.as_ref()),
                Ok(true)
            )
        }
    }
}

/// The subject of a stored manifest of a built-in schema (Some(None): it has none); None when
/// the repository does not hold it or its schema is not built in.
fn subject(storage: &Storage, name: &str, digest: &Digest) -> Option<Option<Digest>> {
    let revision = linked::read_link(&*storage.links, &layout::revision_link(name, digest));
    if revision.ok()?.as_ref() != Some(digest) {
        return None;
    }
    let (mut source, size) = storage.blobs.open(digest).ok()?;
    if size > MANIFEST_MAX {
        return None;
    }
    let payload = source.read_vec(0, usize::try_from(size).ok()?).ok()?;
    match manifest::parse_pushed(None, &payload) {
        Ok(Pushed::BuiltIn(parsed)) => Some(parsed.subject.map(|subject| subject.digest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_targets() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(
            target(&format!("/v2/a/b/blobs/{digest}")),
            Some(Target::Blob { name, .. }) if name == "a/b"
        ));
        assert!(matches!(
            target(&format!("/v2/a/manifests/{digest}")),
            Some(Target::Manifest { name, .. }) if name == "a"
        ));
        assert!(target("/v2/a/manifests/latest").is_none());
        assert!(target("/v2/a/blobs/uploads/x").is_none());
        assert!(target("/v2/A/manifests/sha256:00").is_none());
    }
}
