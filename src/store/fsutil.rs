//! Durability helpers: fsync of directories, atomic replacement of small files, directory
//! creation that is itself durable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::error::{IoContext, Result};

pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("fsync directory", dir)
}

/// Creates `dir` and any missing parents, then fsyncs the parent of every directory it created,
/// so that the new entries survive a power loss.
pub fn create_dir_all_durable(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cursor = dir;
    // A relative path ends in "" (the working directory), which always exists.
    while !cursor.as_os_str().is_empty() && !cursor.is_dir() {
        missing.push(cursor);
        match cursor.parent() {
            Some(parent) => cursor = parent,
            None => break,
        }
    }
    for path in missing.iter().rev() {
        match fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).at("create directory", path),
        }
    }
    for path in missing.iter().rev() {
        match path.parent() {
            Some(parent) if parent.as_os_str().is_empty() => fsync_dir(Path::new("."))?,
            Some(parent) => fsync_dir(parent)?,
            None => {}
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` so that a reader sees either the old or the new content: a temporary
/// file beside it, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` atomically without waiting for the disk: readers see the old or the new
/// content, and after a power loss possibly neither.
pub fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().expect("file paths have a parent");
    let name = path
        .file_name()
        .expect("file paths have a name")
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e).at("write", path);
    }
    if durable {
        fsync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_relative_directories() {
        let dir = tempfile::tempdir().unwrap();
        let previous = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let made = create_dir_all_durable(Path::new("relative/nested/dir"));
        std::env::set_current_dir(previous).unwrap();
        made.unwrap();
        assert!(dir.path().join("relative/nested/dir").is_dir());
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
