//! Links, the GC mark and the GC lock on a filesystem (`crate::storage::LinkStore`): links are
//! written atomically and durably, the mark is the file's modification time, the lock an
//! `flock` on `_ocistore/gc.lock` (shared by pushes, exclusive for the collector's deletes).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};

use super::Layout;
use super::fsutil::{create_dir_all_durable, write_atomic};
use crate::error::{IoContext, Result};
use crate::layout;
use crate::storage::{Hold, LinkStore};

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

    fn gc_lock(&self, exclusive: bool) -> Result<Hold> {
        let path = self.layout.path(&layout::gc_lock());
        create_dir_all_durable(path.parent().expect("the lock has a directory"))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at("open", &path)?;
        let how = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        let lock: Flock<File> = Flock::lock(file, how)
            .map_err(|(_, errno)| io::Error::from(errno))
            .at("lock", &path)?;
        Ok(Box::new(lock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
