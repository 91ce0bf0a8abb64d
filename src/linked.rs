//! The linked-blob protocol, one owner for the native front and the Python registry services:
//! how a blob becomes part of a repository (distribution's `linkedBlobStore`), safely beside a
//! garbage collector that runs while pushes continue.
//!
//! - **Link check**: a repository has a blob when `_layers/<alg>/<hex>/link` holds its digest.
//! - **Link-first commit**: an upload is verified, its link is written, and only then is the
//!   blob published (moved into `blobs/`). A crash in between leaves a dangling link (fsck
//!   repairs it) and a resumable upload, never a published blob no repository links.
//! - **GC mark**: under the shared GC lock the committed (or mounted) blob is marked used now
//!   and its link checked again; the collector deletes a candidate only under the exclusive
//!   lock after finding no newer mark, so a blob linked during a collection survives it.
//!
//! Everything goes through `LinkStore` and `BlobUpload` (`crate::storage`), so the filesystem
//! and object storage follow the same protocol.

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::layout;
use crate::storage::{BlobUpload, LinkStore};

/// The digest a link's content holds (`<alg>:<hex>`, surrounding whitespace allowed); None
/// when it holds none.
pub fn parse_link(bytes: &[u8]) -> Option<Digest> {
    let text = std::str::from_utf8(bytes).ok()?;
    Digest::parse(text.trim()).ok()
}

/// The digest a link holds; None when there is no link or it holds no digest.
pub fn read_link(links: &dyn LinkStore, key: &str) -> Result<Option<Digest>> {
    Ok(links.read(key)?.as_deref().and_then(parse_link))
}

/// Writes the link unless it already holds `digest`.
pub fn link_if_absent(links: &dyn LinkStore, key: &str, digest: &Digest) -> Result<()> {
    if read_link(links, key)?.as_ref() == Some(digest) {
        return Ok(());
    }
    links.write(key, digest.to_string().as_bytes())
}

/// The blob whose bytes repository `name` serves under `digest`, or None when it does not link
/// it: `digest` itself when its link holds it, or the digest the link names in another algorithm.
/// distribution stores a blob pushed by a sha512 digest under its canonical sha256 and writes
/// the repository's link under the sha512 digest holding `sha256:…`; such a tree is read as it
/// is. A link naming another digest of the same algorithm is no link (it cannot be an alias).
pub fn resolve(links: &dyn LinkStore, name: &str, digest: &Digest) -> Result<Option<Digest>> {
    let held = read_link(links, &layout::layer_link(name, digest))?;
    Ok(held.filter(|held| serves(held, digest)))
}

/// Removes repository `name`'s link to the blob `digest` (distribution's blob DELETE): the
/// bytes stay until the garbage collector finds no repository links them. False when the
/// repository does not link it.
pub fn unlink(links: &dyn LinkStore, name: &str, digest: &Digest) -> Result<bool> {
    if resolve(links, name, digest)?.is_none() {
        return Ok(false);
    }
    links.delete(&layout::digest_dir(&layout::layers(name), digest))
}

/// Whether a repository's link under `digest` holding `held` serves bytes (`resolve`).
pub fn serves(held: &Digest, digest: &Digest) -> bool {
    held == digest || held.algorithm() != digest.algorithm()
}

/// Whether repository `name` links the blob (itself, or by distribution's alias).
pub fn is_linked(links: &dyn LinkStore, name: &str, digest: &Digest) -> Result<bool> {
    Ok(resolve(links, name, digest)?.is_some())
}

/// Links a blob the registry already stores into repository `name` (a mount, or a blob stored
/// whole): under the shared GC lock the blob is marked used and the link written. A digest in
/// an algorithm stored under another (sha512) is found through ocistore's global alias.
/// `BlobUnknown` when the registry does not have the blob (or the collector took it).
pub fn link(links: &dyn LinkStore, name: &str, digest: &Digest) -> Result<()> {
    // A blob stored under its own digest (outside any repository, or by an older ocistore)
    // when there is no alias.
    let stored = if layout::stored_algorithm(digest.algorithm()) == digest.algorithm() {
        digest.clone()
    } else {
        read_link(links, &layout::blob_alias(digest))?.unwrap_or_else(|| digest.clone())
    };
    link_stored_as(links, name, digest, &stored)
}

/// `link`, for a blob whose bytes are stored under another digest (`stored`, the target of
/// the alias link in the repository it is mounted from): the new link is an alias too, the
/// link `commit` writes. (distribution's mount writes the sha512 digest itself there, a link
/// naming bytes it never stored; the alias is the link that serves.)
pub fn link_stored_as(
    links: &dyn LinkStore,
    name: &str,
    digest: &Digest,
    stored: &Digest,
) -> Result<()> {
    let _gc = links.gc_lock(false)?;
    if !links.mark(&layout::blob_data(stored))? {
        return Err(StoreError::BlobUnknown {
            digest: digest.to_string(),
        });
    }
    if stored != digest {
        link_alias(links, digest, stored)?;
    }
    link_if_absent(links, &layout::layer_link(name, digest), stored)
}

/// Writes (or keeps, marked for the collector, which removes aliases whose bytes are gone) the
/// global alias of `digest` to the digest it is `stored` under.
fn link_alias(links: &dyn LinkStore, digest: &Digest, stored: &Digest) -> Result<()> {
    let alias = layout::blob_alias(digest);
    links.mark(&alias)?;
    link_if_absent(links, &alias, stored)
}

/// Why `commit` did not finish.
#[derive(Debug)]
pub enum Commit {
    /// Nothing was published and the upload is as it was (a wrong digest or size, an I/O error
    /// before the move): the caller may answer the failure, and the client resume or cancel.
    Refused(StoreError),
    /// The blob was published and the upload is gone, but marking it for the GC protocol or
    /// checking the link failed.
    Failed(StoreError),
    /// The blob was published, then deleted by the garbage collector before it was marked (it
    /// may: nothing referenced it yet). Answered as an unknown blob.
    Vanished,
}

impl Commit {
    /// The error to report for it; `digest` names the blob that vanished.
    pub fn into_error(self, digest: &Digest) -> StoreError {
        match self {
            Commit::Refused(error) | Commit::Failed(error) => error,
            Commit::Vanished => StoreError::BlobUnknown {
                digest: digest.to_string(),
            },
        }
    }
}

/// Commits `upload` into repository `name` by the link-first protocol; returns the blob's size.
/// One call: verification, link, publication and the GC mark all happen here. The bytes are
/// stored under their digest in `layout::stored_algorithm`; when that is not the pushed
/// digest's algorithm (sha512), the repository links the blob under both digests, each link
/// holding the stored one, as distribution's blob writer does.
pub fn commit(
    links: &dyn LinkStore,
    upload: &mut dyn BlobUpload,
    name: &str,
    expected: &Digest,
    size: Option<u64>,
) -> std::result::Result<u64, Commit> {
    let stored_as = layout::stored_algorithm(expected.algorithm());
    let write_links = |stored: &Digest| -> Result<()> {
        if stored != expected {
            link_if_absent(links, &layout::layer_link(name, stored), stored)?;
            link_alias(links, expected, stored)?;
        }
        link_if_absent(links, &layout::layer_link(name, expected), stored)
    };
    let mut published = None;
    let size = upload
        .commit(expected, stored_as, size, &mut |stored| {
            write_links(stored)?;
            published = Some(stored.clone());
            Ok(())
        })
        .map_err(Commit::Refused)?;
    let stored = published.expect("a commit publishes after its links are written");
    let _gc = links.gc_lock(false).map_err(Commit::Failed)?;
    match links.mark(&layout::blob_data(&stored)) {
        Ok(true) => {}
        Ok(false) => return Err(Commit::Vanished),
        Err(error) => return Err(Commit::Failed(error)),
    }
    write_links(&stored).map_err(Commit::Failed)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::digest::Algorithm;
    use crate::storage::Hold;

    /// Records every step, to check the protocol's order.
    #[derive(Default)]
    struct Recorder {
        objects: Mutex<HashMap<String, Vec<u8>>>,
        steps: Mutex<Vec<String>>,
    }

    impl Recorder {
        fn step(&self, what: String) {
            self.steps.lock().unwrap().push(what);
        }
    }

    impl LinkStore for Recorder {
        fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.objects.lock().unwrap().get(key).cloned())
        }
        fn write(&self, key: &str, data: &[u8]) -> Result<()> {
            self.step(format!("write {key}"));
            self.objects
                .lock()
                .unwrap()
                .insert(key.to_owned(), data.to_vec());
            Ok(())
        }
        fn mark(&self, key: &str) -> Result<bool> {
            self.step(format!("mark {key}"));
            Ok(self.objects.lock().unwrap().contains_key(key))
        }
        fn list(&self, key: &str) -> Result<Vec<String>> {
            unreachable!("the linked-blob protocol never lists ({key})")
        }
        fn exists(&self, key: &str) -> Result<bool> {
            unreachable!("the linked-blob protocol never asks for prefixes ({key})")
        }
        fn delete(&self, key: &str) -> Result<bool> {
            self.step(format!("delete {key}"));
            let mut objects = self.objects.lock().unwrap();
            let before = objects.len();
            objects.retain(|k, _| k != key && !k.starts_with(&format!("{key}/")));
            Ok(objects.len() < before)
        }
        fn prune_empty(&self, key: &str, _stop: &str) -> Result<()> {
            unreachable!("the linked-blob protocol never prunes ({key})")
        }
        fn gc_lock(&self, exclusive: bool) -> Result<Hold> {
            self.step(format!("gc_lock exclusive={exclusive}"));
            Ok(Box::new(()))
        }
        fn gc_claim(&self, key: &str) -> Result<Box<dyn crate::storage::GcClaim>> {
            unreachable!("the linked-blob protocol never claims ({key})")
        }
        fn gc_lease(
            &self,
            owner: &str,
            _ttl: std::time::Duration,
        ) -> Result<std::result::Result<Box<dyn crate::storage::GcLease>, String>> {
            unreachable!("the linked-blob protocol never takes the lease ({owner})")
        }
    }

    /// An upload that publishes into the recorder's objects.
    struct FakeUpload<'a> {
        store: &'a Recorder,
        data: Vec<u8>,
    }

    impl FakeUpload<'_> {
        fn digest_in(&self, algorithm: Algorithm) -> Digest {
            let mut hasher = crate::hashing::Hasher::new(algorithm);
            hasher.update(&self.data);
            hasher.digest()
        }
    }

    impl BlobUpload for FakeUpload<'_> {
        fn id(&self) -> &str {
            "id"
        }
        fn started_at(&self) -> &str {
            ""
        }
        fn size(&self) -> u64 {
            self.data.len() as u64
        }
        fn algorithm(&self) -> Algorithm {
            Algorithm::Sha256
        }
        fn digest(&self) -> Digest {
            self.digest_in(Algorithm::Sha256)
        }
        fn is_open(&self) -> bool {
            true
        }
        fn write(&mut self, data: &[u8]) -> Result<()> {
            self.data.extend_from_slice(data);
            Ok(())
        }
        fn checkpoint(&mut self, _durable: bool) -> Result<()> {
            Ok(())
        }
        fn close(&mut self, _durable: bool) -> Result<()> {
            Ok(())
        }
        fn commit(
            &mut self,
            expected: &Digest,
            stored_as: Algorithm,
            size: Option<u64>,
            before_publish: &mut dyn FnMut(&Digest) -> Result<()>,
        ) -> Result<u64> {
            crate::storage::check_size(size, self.size())?;
            let actual = self.digest_in(expected.algorithm());
            if &actual != expected {
                return Err(StoreError::BlobInvalidDigest {
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
            let stored = self.digest_in(stored_as);
            before_publish(&stored)?;
            self.store.step("publish".into());
            self.store
                .objects
                .lock()
                .unwrap()
                .insert(layout::blob_data(&stored), self.data.clone());
            Ok(self.size())
        }
        fn cancel(&mut self) -> Result<()> {
            Ok(())
        }
        fn hash_state(&self) -> Vec<u8> {
            Vec::new()
        }
    }

    #[test]
    fn the_link_is_written_before_the_blob_is_published_and_marked_after() {
        let store = Recorder::default();
        let mut upload = FakeUpload {
            store: &store,
            data: b"hello".to_vec(),
        };
        let digest = upload.digest();
        assert_eq!(
            commit(&store, &mut upload, "a/b", &digest, Some(5)).unwrap(),
            5
        );
        let link = layout::layer_link("a/b", &digest);
        let steps = store.steps.lock().unwrap().clone();
        assert_eq!(
            steps,
            [
                format!("write {link}"),
                "publish".to_owned(),
                "gc_lock exclusive=false".to_owned(),
                format!("mark {}", layout::blob_data(&digest)),
            ]
        );
        assert!(is_linked(&store, "a/b", &digest).unwrap());
        assert!(!is_linked(&store, "a/c", &digest).unwrap());
    }

    #[test]
    fn a_sha512_blob_is_stored_under_its_sha256_and_linked_under_both() {
        let store = Recorder::default();
        let mut upload = FakeUpload {
            store: &store,
            data: b"hello".to_vec(),
        };
        let sha512 = upload.digest_in(Algorithm::Sha512);
        let sha256 = upload.digest_in(Algorithm::Sha256);
        commit(&store, &mut upload, "a/b", &sha512, Some(5)).unwrap();
        let canonical = layout::layer_link("a/b", &sha256);
        let alias = layout::layer_link("a/b", &sha512);
        let steps = store.steps.lock().unwrap().clone();
        assert_eq!(
            steps,
            [
                format!("write {canonical}"),
                // The global alias is marked before it is looked at, for the collector.
                format!("mark {}", layout::blob_alias(&sha512)),
                format!("write {}", layout::blob_alias(&sha512)),
                format!("write {alias}"),
                "publish".to_owned(),
                "gc_lock exclusive=false".to_owned(),
                format!("mark {}", layout::blob_data(&sha256)),
                // The links are checked again after the mark.
                format!("mark {}", layout::blob_alias(&sha512)),
            ]
        );
        let objects = store.objects.lock().unwrap().clone();
        // Both links hold the stored digest; no bytes under the sha512 digest.
        assert_eq!(objects[&canonical], sha256.to_string().as_bytes());
        assert_eq!(objects[&alias], sha256.to_string().as_bytes());
        assert_eq!(objects[&layout::blob_data(&sha256)], b"hello");
        assert!(!objects.contains_key(&layout::blob_data(&sha512)));
        assert_eq!(
            resolve(&store, "a/b", &sha512).unwrap(),
            Some(sha256.clone())
        );
        // A mount naming no repository finds the bytes through ocistore's global alias.
        link(&store, "c/d", &sha512).unwrap();
        assert_eq!(resolve(&store, "c/d", &sha512).unwrap(), Some(sha256));
        let unknown = FakeUpload {
            store: &store,
            data: b"other".to_vec(),
        };
        assert!(matches!(
            link(&store, "c/d", &unknown.digest_in(Algorithm::Sha512)),
            Err(StoreError::BlobUnknown { .. })
        ));
    }

    #[test]
    fn a_refused_commit_links_and_publishes_nothing() {
        let store = Recorder::default();
        let mut upload = FakeUpload {
            store: &store,
            data: b"hello".to_vec(),
        };
        let other = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
        let refused = commit(&store, &mut upload, "a", &other, None);
        assert!(matches!(
            refused,
            Err(Commit::Refused(StoreError::BlobInvalidDigest { .. }))
        ));
        let digest = upload.digest();
        let refused = commit(&store, &mut upload, "a", &digest, Some(4));
        assert!(matches!(
            refused,
            Err(Commit::Refused(StoreError::BlobInvalidLength { .. }))
        ));
        assert!(store.steps.lock().unwrap().is_empty());
    }

    #[test]
    fn linking_needs_the_blob_and_refreshes_it() {
        let store = Recorder::default();
        let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert!(matches!(
            link(&store, "x", &digest),
            Err(StoreError::BlobUnknown { .. })
        ));
        assert!(!is_linked(&store, "x", &digest).unwrap());
        store.write(&layout::blob_data(&digest), b"bytes").unwrap();
        link(&store, "x", &digest).unwrap();
        assert!(is_linked(&store, "x", &digest).unwrap());
        // A second link finds it linked and writes nothing new.
        let writes = |s: &Recorder| {
            s.steps
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.starts_with("write"))
                .count()
        };
        let before = writes(&store);
        link(&store, "x", &digest).unwrap();
        assert_eq!(writes(&store), before);
    }

    #[test]
    fn a_link_in_another_algorithm_is_an_alias() {
        let store = Recorder::default();
        let sha512 = Digest::parse(&format!("sha512:{}", "b".repeat(128))).unwrap();
        let sha256 = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let other256 = Digest::parse(&format!("sha256:{}", "c".repeat(64))).unwrap();
        store
            .write(
                &layout::layer_link("x", &sha512),
                sha256.to_string().as_bytes(),
            )
            .unwrap();
        assert_eq!(resolve(&store, "x", &sha512).unwrap(), Some(sha256.clone()));
        assert!(is_linked(&store, "x", &sha512).unwrap());
        store
            .write(
                &layout::layer_link("x", &sha256),
                other256.to_string().as_bytes(),
            )
            .unwrap();
        assert_eq!(resolve(&store, "x", &sha256).unwrap(), None);
    }

    #[test]
    fn a_blob_stored_under_another_digest_is_linked_as_an_alias() {
        let store = Recorder::default();
        let sha512 = Digest::parse(&format!("sha512:{}", "b".repeat(128))).unwrap();
        let sha256 = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert!(link_stored_as(&store, "y", &sha512, &sha256).is_err());
        store.write(&layout::blob_data(&sha256), b"bytes").unwrap();
        link_stored_as(&store, "y", &sha512, &sha256).unwrap();
        assert_eq!(resolve(&store, "y", &sha512).unwrap(), Some(sha256));
    }

    #[test]
    fn a_link_holding_something_else_is_no_link() {
        let store = Recorder::default();
        let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let key = layout::layer_link("x", &digest);
        store.write(&key, b"sha256:nonsense").unwrap();
        assert!(!is_linked(&store, "x", &digest).unwrap());
        store.write(&key, format!("{digest}\n").as_bytes()).unwrap();
        assert!(is_linked(&store, "x", &digest).unwrap());
    }
}
