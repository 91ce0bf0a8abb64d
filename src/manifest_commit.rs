//! How a pushed manifest becomes part of a repository, one owner for the native front and the
//! application's `ManifestService.put` (distribution's `manifestStore.Put`):
//!
//! 1. under the shared GC lock, its revision link is marked first, so that a collector deciding
//!    on an untagged revision of the same digest keeps it, or deletes it before this push
//!    stores it again;
//! 2. every blob it references is checked: linked in the repository (`linked::resolve`), its
//!    bytes marked used now and stored (`check_blob_reference`);
//! 3. its bytes are stored as a blob and marked, then its revision link written, then the
//!    referrers index entry of its subject, then each tag's index link and current link
//!    (`store`, `write_tag`): a tag never names a revision whose link is not written.
//!
//! The caller holds the lock across all three and decides which references must be present
//! (the application's `validation.manifests`; the front only takes pushes whose every
//! reference must be).

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::layout;
use crate::linked;
use crate::storage::Storage;

/// Step 1: marks the revision link of `digest` in repository `name` (if there is one).
pub fn mark_revision(storage: &Storage, name: &str, digest: &Digest) -> Result<()> {
    storage.links.mark(&layout::revision_link(name, digest))?;
    Ok(())
}

/// Step 2 for one referenced blob: the digest of the bytes repository `name` serves under
/// `digest`, marked used now, when the repository links it and the bytes are stored; None
/// otherwise (the manifest references a blob the repository does not have).
pub fn check_blob_reference(
    storage: &Storage,
    name: &str,
    digest: &Digest,
) -> Result<Option<Digest>> {
    let Some(stored) = linked::resolve(&*storage.links, name, digest)? else {
        return Ok(None);
    };
    // Marked before it is looked at: the collector's second look then keeps it.
    storage.links.mark(&layout::blob_data(&stored))?;
    match storage.blobs.stat(&stored) {
        Ok(_) => Ok(Some(stored)),
        Err(StoreError::BlobUnknown { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Step 3: stores the verified manifest `payload` under `digest` in repository `name`, with the
/// referrers index entry of `subject` and the links of `tags` (each once, in order).
pub fn store(
    storage: &Storage,
    name: &str,
    digest: &Digest,
    payload: &[u8],
    subject: Option<&Digest>,
    tags: &[String],
) -> Result<()> {
    let (stored, _) = storage.blobs.put(payload, digest.algorithm())?;
    storage.links.mark(&layout::blob_data(&stored))?;
    let link = digest.to_string();
    storage
        .links
        .write(&layout::revision_link(name, digest), link.as_bytes())?;
    if let Some(subject) = subject {
        let entry = layout::referrer_link(name, subject, digest);
        storage.links.write(&entry, link.as_bytes())?;
    }
    for (i, tag) in tags.iter().enumerate() {
        if !tags[..i].contains(tag) {
            write_tag(storage, name, tag, digest)?;
        }
    }
    Ok(())
}

/// Points `tag` of repository `name` at the revision `digest`: the tag's index link, then its
/// current link (what a tag resolves to is written last). The caller has checked the revision
/// is stored, under the shared GC lock with its revision link marked (`store`, or the
/// application's `TagService.tag`).
pub fn write_tag(storage: &Storage, name: &str, tag: &str, digest: &Digest) -> Result<()> {
    let link = digest.to_string();
    storage
        .links
        .write(&layout::tag_index_link(name, tag, digest), link.as_bytes())?;
    storage
        .links
        .write(&layout::tag_current_link(name, tag), link.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::digest::Algorithm;
    use crate::store::backend::FsBlobs;

    fn storage(root: &std::path::Path) -> Storage {
        Storage::new(Arc::new(FsBlobs::new(root.to_path_buf())))
    }

    fn read(storage: &Storage, key: &str) -> Option<String> {
        let bytes = storage.links.read(key).unwrap()?;
        Some(String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn a_reference_counts_only_when_linked_and_stored() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());
        let (digest, _) = storage.blobs.put(b"layer", Algorithm::Sha256).unwrap();
        assert_eq!(
            check_blob_reference(&storage, "a/b", &digest).unwrap(),
            None
        );
        linked::link(&*storage.links, "a/b", &digest).unwrap();
        assert_eq!(
            check_blob_reference(&storage, "a/b", &digest).unwrap(),
            Some(digest.clone())
        );
        assert_eq!(
            check_blob_reference(&storage, "other", &digest).unwrap(),
            None
        );
        // Linked, but the bytes are gone (a collector took them): not there.
        std::fs::remove_file(root.path().join(layout::blob_data(&digest))).unwrap();
        assert_eq!(
            check_blob_reference(&storage, "a/b", &digest).unwrap(),
            None
        );
    }

    #[test]
    fn store_writes_the_bytes_then_the_links() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());
        let payload = br#"{"schemaVersion":2}"#;
        let mut hasher = crate::hashing::Hasher::new(Algorithm::Sha256);
        hasher.update(payload);
        let digest = hasher.digest();
        let subject = Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap();
        let tags = ["v1".to_owned(), "latest".to_owned(), "v1".to_owned()];
        store(&storage, "a", &digest, payload, Some(&subject), &tags).unwrap();
        let (mut source, size) = storage.blobs.open(&digest).unwrap();
        assert_eq!(source.read_vec(0, size as usize).unwrap(), payload);
        let expected = Some(digest.to_string());
        assert_eq!(
            read(&storage, &layout::revision_link("a", &digest)),
            expected
        );
        assert_eq!(
            read(&storage, &layout::referrer_link("a", &subject, &digest)),
            expected
        );
        for tag in ["v1", "latest"] {
            assert_eq!(
                read(&storage, &layout::tag_current_link("a", tag)),
                expected
            );
            assert_eq!(
                read(&storage, &layout::tag_index_link("a", tag, &digest)),
                expected
            );
        }
    }
}
