//! Durability helpers: fsync of directories, atomic replacement of small files, directory
//! creation that is itself durable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::blocks::FILE_WRITE_PIECE;
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

/// Removes the directory `dir`, whose usual content is the files `files`: those are unlinked
/// by name and the directory removed, a system call each, where `fs::remove_dir_all` opens,
/// stats and lists the directory first (a dozen calls for a link's directory). Anything else
/// in it is removed by that walk. Returns whether `dir` was there. Paths in the storage root
/// are followed as every other access to them follows them: the root holds no symlinks of its
/// own.
pub fn remove_dir_holding(dir: &Path, files: &[&str]) -> io::Result<bool> {
    let mut found = false;
    for name in files {
        // Absent, or not a file: either way the directory's removal below says what is there.
        found |= fs::remove_file(dir.join(name)).is_ok();
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(found),
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => match fs::remove_dir_all(dir) {
            // Removed meanwhile by another request: gone all the same.
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(true),
        },
        Err(e) => Err(e),
    }
}

/// `write_all_at` in pieces of at most `FILE_WRITE_PIECE` (see there for why).
pub fn write_all_at_in_pieces(file: &File, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    while !data.is_empty() {
        let n = data.len().min(FILE_WRITE_PIECE);
        file.write_all_at(&data[..n], offset)?;
        data = &data[n..];
        offset += n as u64;
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
    fn removes_a_directory_by_its_usual_files_or_by_a_walk() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("upload");
        let usual = ["startedat", "data"];
        // The usual files, one of them already gone (moved into place by a commit).
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("startedat"), b"t").unwrap();
        assert!(remove_dir_holding(&dir, &usual).unwrap());
        assert!(!dir.exists());
        // Absent: nothing there.
        assert!(!remove_dir_holding(&dir, &usual).unwrap());
        // Something else in it as well (a checkpoint's hash states): walked.
        fs::create_dir_all(dir.join("hashstates/sha256")).unwrap();
        fs::write(dir.join("hashstates/sha256/5"), b"s").unwrap();
        fs::write(dir.join("data"), b"d").unwrap();
        assert!(remove_dir_holding(&dir, &usual).unwrap());
        assert!(!dir.exists());
        // A file where the directory should be is not removed.
        fs::write(&dir, b"f").unwrap();
        let error = remove_dir_holding(&dir, &usual).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotADirectory);
        assert!(dir.is_file());
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

    #[test]
    fn writes_in_pieces_land_where_one_write_would() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&p)
            .unwrap();
        let data: Vec<u8> = (0..3 * FILE_WRITE_PIECE + 777)
            .map(|i| (i % 251) as u8)
            .collect();
        write_all_at_in_pieces(&file, &data[..5], 0).unwrap();
        write_all_at_in_pieces(&file, &data[5..], 5).unwrap();
        write_all_at_in_pieces(&file, &[], data.len() as u64).unwrap();
        assert_eq!(fs::read(&p).unwrap(), data);
        // At an offset past the end, as a pwrite would: the gap reads as zeros.
        write_all_at_in_pieces(&file, b"tail", data.len() as u64 + 10).unwrap();
        let all = fs::read(&p).unwrap();
        assert_eq!(&all[data.len()..data.len() + 10], &[0; 10]);
        assert_eq!(&all[data.len() + 10..], b"tail");
    }
}
