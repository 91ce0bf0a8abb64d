//! Links, the GC mark and the GC lock on a filesystem (`crate::storage::LinkStore`): links are
//! written atomically and durably, the mark is the file's modification time, the lock an
//! `flock` on `_ocistore/gc.lock` (shared by pushes, exclusive for the collector's deletes).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::Layout;
use super::fsutil::{create_dir_all_durable, remove_dir_holding, write_atomic};
use crate::error::{IoContext, Result};
use crate::layout;
use crate::storage::{GcClaim, GcLease, Hold, LinkStore};

pub struct FsLinks {
    layout: Layout,
}

impl FsLinks {
    pub fn new(root: &Path) -> FsLinks {
        FsLinks {
            layout: Layout::new(root),
        }
    }
}

/// Absent, or a directory where a file was expected: no object there.
fn absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
    )
}

impl LinkStore for FsLinks {
    fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.layout.path(key);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(e).at("read", &path),
        }
    }

    fn write(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.layout.path(key);
        if let Some(parent) = path.parent() {
            create_dir_all_durable(parent)?;
        }
        write_atomic(&path, data)
    }

    fn mark(&self, key: &str) -> Result<bool> {
        let path = self.layout.path(key);
        let marked = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        match marked {
            Ok(()) => Ok(true),
            Err(e) if absent(&e) => Ok(false),
            Err(e) => Err(e).at("mark used", &path),
        }
    }

    fn list(&self, key: &str) -> Result<Vec<String>> {
        let path = self.layout.path(key);
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e).at("list", &path),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.at("list", &path)?;
            // Names the layout writes are UTF-8; anything else is no key of it.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let path = self.layout.path(key);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if absent(&e) => Ok(false),
            Err(e) => Err(e).at("stat", &path),
        }
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let path = self.layout.path(key);
        // Mostly a link's directory; a key that is a file is removed as one.
        match remove_dir_holding(&path, &[layout::LINK]) {
            Ok(found) => Ok(found),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => match fs::remove_file(&path) {
                Ok(()) => Ok(true),
                // Removed meanwhile by another request: gone all the same.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
                // A file where a directory above it should be: nothing at `key`.
                Err(e) if absent(&e) => Ok(false),
                Err(e) => Err(e).at("remove", &path),
            },
            Err(e) => Err(e).at("remove", &path),
        }
    }

    fn prune_empty(&self, key: &str, stop: &str) -> Result<()> {
        let (mut path, end) = (self.layout.path(key), self.layout.path(stop));
        while path != end && path.starts_with(&end) {
            if fs::remove_dir(&path).is_err() {
                return Ok(()); // not empty (or gone): the directories above stay
            }
            match path.parent() {
                Some(parent) => path = parent.to_path_buf(),
                None => return Ok(()),
            }
        }
        Ok(())
    }

    fn gc_lock(&self, exclusive: bool) -> Result<Hold> {
        let how = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        let lock = lock_file(&self.layout.path(&layout::gc_lock()), how)?;
        Ok(Box::new(lock.expect("a waiting lock is always taken")))
    }

    fn gc_claim(&self, key: &str) -> Result<Box<dyn GcClaim>> {
        let lock = lock_file(
            &self.layout.path(&layout::gc_lock()),
            FlockArg::LockExclusive,
        )?;
        Ok(Box::new(FsClaim {
            _lock: lock.expect("a waiting lock is always taken"),
            path: self.layout.path(key),
        }))
    }

    fn gc_lease(
        &self,
        owner: &str,
        _ttl: Duration,
    ) -> Result<std::result::Result<Box<dyn GcLease>, String>> {
        let path = self.layout.path(&layout::gc_collector_lock());
        let Some(mut lock) = lock_file(&path, FlockArg::LockExclusiveNonblock)? else {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            return Ok(Err(holder.trim().to_owned()));
        };
        // Who holds it, for the message another collector gives.
        lock.set_len(0).at("truncate", &path)?;
        lock.write_all(owner.as_bytes()).at("write", &path)?;
        Ok(Ok(Box::new(FsLease {
            lock: Mutex::new(Some(lock)),
            started_at: unix_seconds(SystemTime::now()),
        })))
    }
}

/// A time as the collector compares them: UNIX seconds.
fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Opens (creating) and locks `path`; None when a non-blocking lock is taken elsewhere.
fn lock_file(path: &Path, how: FlockArg) -> Result<Option<Flock<File>>> {
    create_dir_all_durable(path.parent().expect("a lock file has a directory"))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at("open", path)?;
    match Flock::lock(file, how) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) if how == FlockArg::LockExclusiveNonblock => Ok(None),
        Err((_, errno)) => Err(io::Error::from(errno)).at("lock", path),
    }
}

/// The filesystem's claim: the exclusive GC lock, and the object's modification time as its
/// mark.
struct FsClaim {
    _lock: Flock<File>,
    path: PathBuf,
}

impl GcClaim for FsClaim {
    fn marked_at(&self) -> Result<Option<f64>> {
        match fs::metadata(&self.path).and_then(|m| m.modified()) {
            Ok(time) => Ok(Some(unix_seconds(time))),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(e).at("stat", &self.path),
        }
    }

    fn holds(&self) -> bool {
        true
    }

    fn forget(&self) -> Result<()> {
        Ok(()) // the mark was the object's own time
    }
}

/// The filesystem's lease: an `flock` the kernel releases if the collector dies.
struct FsLease {
    lock: Mutex<Option<Flock<File>>>,
    started_at: f64,
}

impl GcLease for FsLease {
    fn started_at(&self) -> f64 {
        self.started_at
    }

    fn renew(&self) -> Result<bool> {
        Ok(self.holds())
    }

    fn holds(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn release(&self) -> Result<()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_removes_whatever_is_at_the_key() {
        let root = tempfile::tempdir().unwrap();
        let links = FsLinks::new(root.path());
        // A link's directory, the usual case.
        links.write("r/_layers/sha256/d/link", b"x").unwrap();
        assert!(links.delete("r/_layers/sha256/d").unwrap());
        assert!(!root.path().join("r/_layers/sha256/d").exists());
        assert!(root.path().join("r/_layers/sha256").is_dir());
        // Absent, or under a file: nothing there.
        assert!(!links.delete("r/_layers/sha256/d").unwrap());
        assert!(!links.delete("r/_layers/sha256/d/link/deeper").unwrap());
        // A tree (a tag's directory): removed whole.
        links.write("t/tag/current/link", b"x").unwrap();
        links.write("t/tag/index/sha256/a/link", b"x").unwrap();
        links.write("t/tag/index/sha256/b/link", b"x").unwrap();
        assert!(links.delete("t/tag").unwrap());
        assert!(!root.path().join("t/tag").exists());
        // A directory with something besides its link, and an empty one.
        links.write("u/d/link", b"x").unwrap();
        fs::write(root.path().join("u/d/other"), b"y").unwrap();
        assert!(links.delete("u/d").unwrap());
        assert!(!root.path().join("u/d").exists());
        fs::create_dir(root.path().join("u/empty")).unwrap();
        assert!(links.delete("u/empty").unwrap());
        // A file at the key.
        links.write("v/link", b"x").unwrap();
        assert!(links.delete("v/link").unwrap());
        assert!(!root.path().join("v/link").exists());
        assert!(!links.delete("v/link").unwrap());
    }

    #[test]
    fn links_marks_and_the_gc_lock() {
        let root = tempfile::tempdir().unwrap();
        let links = FsLinks::new(root.path());
        assert_eq!(links.read("a/b/link").unwrap(), None);
        links.write("a/b/link", b"x").unwrap();
        assert_eq!(links.read("a/b/link").unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(links.read("a/b/link/deeper").unwrap(), None);
        assert_eq!(links.read("a/b").unwrap(), None);
        let file = root.path().join("a/b/link");
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(links.mark("a/b/link").unwrap());
        assert!(fs::metadata(&file).unwrap().modified().unwrap() > old);
        assert!(!links.mark("a/c/link").unwrap());
        // Shared holds coexist; an exclusive one waits for them (checked with a try-lock).
        let first = links.gc_lock(false).unwrap();
        let _second = links.gc_lock(false).unwrap();
        let lock_file = File::open(root.path().join(layout::gc_lock())).unwrap();
        let tried = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock);
        assert!(tried.is_err(), "shared holds keep the collector out");
        drop(first);
    }

    #[test]
    fn the_collectors_claim_and_lease() {
        let root = tempfile::tempdir().unwrap();
        let links = FsLinks::new(root.path());
        links.write("a/link", b"x").unwrap();
        let claim = links.gc_claim("a/link").unwrap();
        assert!(claim.marked_at().unwrap().unwrap() > 1e9);
        assert!(claim.holds());
        // A claim is the exclusive lock: pushes wait for it.
        let lock_file = File::open(root.path().join(layout::gc_lock())).unwrap();
        assert!(Flock::lock(lock_file, FlockArg::LockSharedNonblock).is_err());
        drop(claim);
        let absent = links.gc_claim("a/none").unwrap();
        assert_eq!(absent.marked_at().unwrap(), None);
        drop(absent);

        let lease = links
            .gc_lease("first collector", Duration::from_secs(60))
            .unwrap()
            .unwrap();
        let refused = links
            .gc_lease("second collector", Duration::from_secs(60))
            .unwrap();
        assert_eq!(refused.err().as_deref(), Some("first collector"));
        assert!(lease.renew().unwrap());
        lease.release().unwrap();
        assert!(!lease.holds());
        assert!(
            links
                .gc_lease("second collector", Duration::from_secs(60))
                .unwrap()
                .is_ok()
        );
    }
}
