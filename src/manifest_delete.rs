//! How a manifest leaves a repository, one owner for the native front and the application's
//! `ManifestService.delete` (distribution's manifest DELETE: the tags pointing at it are
//! removed, then its revision link): the tags that point at it go first, so that no tag is
//! left naming a revision that is gone; then its entry in its subject's referrers index; then
//! its revision link. Its bytes stay until the garbage collector finds them unused.

use crate::digest::Digest;
use crate::error::Result;
use crate::layout;
use crate::linked::read_link;
use crate::storage::Storage;
use crate::tags;

/// Deletes manifest `digest` from repository `name`; `subject` is the manifest's subject (read
/// by the caller, who knows the schemas), whose referrers index entry goes too. False when the
/// repository does not hold the manifest.
pub fn delete(
    storage: &Storage,
    name: &str,
    digest: &Digest,
    subject: Option<&Digest>,
) -> Result<bool> {
    let links = &*storage.links;
    if read_link(links, &layout::revision_link(name, digest))?.as_ref() != Some(digest) {
        return Ok(false);
    }
    for tag in tags::tagged(links, name, digest)? {
        tags::untag(links, name, &tag)?; // false: another request removed it meanwhile
    }
    if let Some(subject) = subject {
        let of_subject = layout::referrers_of(name, subject);
        links.delete(&layout::digest_dir(&of_subject, digest))?;
        let by_algorithm = format!("{of_subject}/{}", digest.algorithm().name());
        links.prune_empty(&by_algorithm, &layout::referrers(name))?;
    }
    links.delete(&layout::digest_dir(&layout::revisions(name), digest))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::digest::Algorithm;
    use crate::manifest_commit;
    use crate::store::backend::FsBlobs;

    fn digest_of(payload: &[u8]) -> Digest {
        let mut hasher = crate::hashing::Hasher::new(Algorithm::Sha256);
        hasher.update(payload);
        hasher.digest()
    }

    #[test]
    fn a_delete_takes_the_tags_on_it_its_referrer_entry_and_its_revision() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(Arc::new(FsBlobs::new(root.path().to_path_buf())));
        let links = &*storage.links;
        let subject = digest_of(b"subject");
        let (one, two) = (b"{\"one\":1}".as_slice(), b"{\"two\":2}".as_slice());
        let (first, second) = (digest_of(one), digest_of(two));
        let tags = ["a".to_owned(), "b".to_owned()];
        manifest_commit::store(&storage, "r", &first, one, Some(&subject), &tags).unwrap();
        manifest_commit::store(&storage, "r", &second, two, None, &["c".to_owned()]).unwrap();
        // A tag moved away from `first` keeps pointing at what it points at now.
        manifest_commit::write_tag(&storage, "r", "b", &second).unwrap();
        assert_eq!(tags::tagged(links, "r", &first).unwrap(), ["a"]);

        assert!(!delete(&storage, "other", &first, Some(&subject)).unwrap());
        assert!(delete(&storage, "r", &first, Some(&subject)).unwrap());
        assert!(!delete(&storage, "r", &first, Some(&subject)).unwrap());

        assert_eq!(
            tags::tags(links, "r").unwrap(),
            Some(vec!["b".to_owned(), "c".to_owned()])
        );
        let gone = |key: &str| !root.path().join(key).exists();
        assert!(gone(&layout::digest_dir(&layout::revisions("r"), &first)));
        // The subject's index went with its last entry; the revisions' own tree stays.
        assert!(gone(&format!("{}/sha256", layout::referrers("r"))));
        assert!(!gone(&layout::revision_link("r", &second)));
        // The bytes stay for the collector.
        assert_eq!(storage.blobs.stat(&first).unwrap(), one.len() as u64);
    }

    #[test]
    fn tags_are_known_only_with_a_current_link_and_unknown_repositories_have_none() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(Arc::new(FsBlobs::new(root.path().to_path_buf())));
        let links = &*storage.links;
        assert_eq!(tags::tags(links, "nope").unwrap(), None);
        let payload = b"{}".as_slice();
        let digest = digest_of(payload);
        manifest_commit::store(&storage, "r", &digest, payload, None, &["t".to_owned()]).unwrap();
        // A tag directory without a current link (a crash between its two links) is no tag.
        links
            .write(&layout::tag_index_link("r", "half", &digest), b"x")
            .unwrap();
        assert_eq!(tags::tags(links, "r").unwrap(), Some(vec!["t".to_owned()]));
        assert!(!tags::untag(links, "r", "half").unwrap());
        assert!(tags::untag(links, "r", "t").unwrap());
        assert!(!tags::untag(links, "r", "t").unwrap());
        // Still a repository: it holds a manifest.
        assert_eq!(tags::tags(links, "r").unwrap(), Some(vec![]));
    }

    #[test]
    fn unlinking_a_blob_takes_only_the_repository_link() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::new(Arc::new(FsBlobs::new(root.path().to_path_buf())));
        let links = &*storage.links;
        let (digest, _) = storage.blobs.put(b"layer", Algorithm::Sha256).unwrap();
        assert!(!crate::linked::unlink(links, "r", &digest).unwrap());
        crate::linked::link(links, "r", &digest).unwrap();
        crate::linked::link(links, "s", &digest).unwrap();
        assert!(crate::linked::unlink(links, "r", &digest).unwrap());
        assert!(!crate::linked::is_linked(links, "r", &digest).unwrap());
        assert!(crate::linked::is_linked(links, "s", &digest).unwrap());
        assert!(
            !root
                .path()
                .join(layout::digest_dir(&layout::layers("r"), &digest))
                .exists()
        );
        assert_eq!(storage.blobs.stat(&digest).unwrap(), 5);
    }
}
