//! A resumable upload, kept as distribution keeps it:
//!
//! ```text
//! <uploads>/<uuid>/data                       the bytes so far
//! <uploads>/<uuid>/startedat                  RFC 3339
//! <uploads>/<uuid>/hashstates/<alg>/<offset>  hash state after `offset` bytes (Go's format)
//! ```
//!
//! Writes hash and write at once (two threads for large buffers). `checkpoint` makes the data
//! and the hash state durable; `resume` continues from the newest state that the data file
//! covers and re-hashes only the bytes after it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};

use super::Layout;
use super::direct::DirectWriter;
use super::fsutil::{
    create_dir_all_durable, fsync_dir, remove_dir_holding, write_all_at_in_pieces, write_atomic,
    write_replace,
};
use crate::digest::{Algorithm, Digest};
use crate::error::{IoContext, Result, StoreError};
use crate::hashing::Hasher;
use crate::layout;
use crate::storage::{
    Caching, check_size, check_upload_id, copy_file_range_into, read_source, rfc3339_utc,
};

pub use crate::blocks::PARALLEL_WRITE_MIN as PARALLEL_MIN;
/// How often writeback is started early, so that the disk works while bytes still arrive and the
/// fsync at commit has little left to wait for.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;
/// With `Caching::Drop`, how far behind the write offset written-back pages leave the cache.
const WRITEBACK_LAG: u64 = 4 * WRITEBACK_STEP;
/// With `Caching::Keep`, dirty bytes after which a background fdatasync starts.
const FLUSH_STEP: u64 = 32 * 1024 * 1024;

/// In an upload's directory: "<boot id> <durable offset>" while volatile checkpoints exist.
pub use crate::layout::upload::VOLATILE_MARK;

/// Identifies this run of the kernel: page-cache contents survive exactly as long as it.
fn boot_id() -> Option<String> {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Block size for re-reading data (resume tail, re-hash with another algorithm).
const REHASH_BLOCK: usize = 1024 * 1024;
pub struct Upload {
    id: String,
    dir: PathBuf,
    started_at: String,
    file: Option<File>,
    size: u64,
    hasher: Hasher,
    checkpointed: Option<u64>,
    /// Offset of the newest state written by a durable checkpoint.
    durable: Option<u64>,
    caching: Caching,
    /// With `Caching::Direct`, where the file system allows it: writes bypass the page cache.
    direct: Option<DirectWriter>,
    written_back: u64,
    flusher: Option<std::thread::JoinHandle<io::Result<()>>>,
    broken: Option<String>,
}

fn open_direct(
    caching: Caching,
    path: &Path,
    size: u64,
    file: &File,
) -> Result<Option<DirectWriter>> {
    if caching != Caching::Direct {
        return Ok(None);
    }
    DirectWriter::open(path, size, file).at("open for direct writes", path)
}

fn hash_file_range(
    file: &File,
    path: &Path,
    hashers: &mut [Hasher],
    from: u64,
    to: u64,
) -> Result<()> {
    // Sized to what is left: most resumes have nothing to rehash, and a zeroed block is a
    // memset of its whole length on every claim of an upload.
    let left = usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; left.min(REHASH_BLOCK)];
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], pos).at("read", path)?;
        for hasher in hashers.iter_mut() {
            hasher.update(&buf[..n]);
        }
        pos += n as u64;
    }
    Ok(())
}

impl Upload {
    pub fn create(uploads: &Path, algorithm: Algorithm, caching: Caching) -> Result<Upload> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let dir = uploads.join(&id);
        create_dir_all_durable(uploads)?;
        fs::create_dir(&dir).at("create upload directory", &dir)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let started_at = rfc3339_utc(now);
        fs::write(dir.join(layout::upload::STARTED_AT), &started_at)
            .at("write", &dir.join(layout::upload::STARTED_AT))?;
        let data = dir.join(layout::upload::DATA);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&data)
            .at("create", &data)?;
        if algorithm != Algorithm::Sha256 {
            // Without a saved state, resume would assume sha256 (what distribution streams);
            // the directory records the algorithm until the first checkpoint.
            create_dir_all_durable(&dir.join(layout::upload::hash_states(algorithm.name())))?;
        }
        let direct = open_direct(caching, &data, 0, &file)?;
        Ok(Upload {
            id,
            dir,
            started_at,
            file: Some(file),
            size: 0,
            hasher: Hasher::new(algorithm),
            checkpointed: None,
            durable: None,
            caching,
            direct,
            written_back: 0,
            flusher: None,
            broken: None,
        })
    }

    pub fn resume(uploads: &Path, id: &str, caching: Caching) -> Result<Upload> {
        check_upload_id(id)?;
        let dir = uploads.join(id);
        let data = dir.join(layout::upload::DATA);
        let file = match OpenOptions::new().read(true).write(true).open(&data) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobUploadUnknown { id: id.to_owned() });
            }
            Err(e) => return Err(e).at("open", &data),
        };
        let size = file.metadata().at("stat", &data)?.len();
        let started_at = fs::read_to_string(dir.join(layout::upload::STARTED_AT))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let (mut hasher, offset, durable) = Self::newest_state(&dir, size)?;
        hash_file_range(
            &file,
            &data,
            std::slice::from_mut(&mut hasher),
            offset,
            size,
        )?;
        let direct = open_direct(caching, &data, size, &file)?;
        Ok(Upload {
            id: id.to_owned(),
            dir,
            started_at,
            file: Some(file),
            size,
            hasher,
            checkpointed: (offset > 0).then_some(offset),
            durable: durable.filter(|&d| d > 0),
            caching,
            direct,
            written_back: size,
            flusher: None,
            broken: None,
        })
    }

    /// The upload as it was at `size` bytes, `state` being the hash state of those bytes (one
    /// this upload's writer reported earlier, kept by a caller such as Quay's storage
    /// metadata). Bytes past `size` are dropped: the state is saved first and newer states
    /// removed, then the data is cut back, so a crash at any step leaves an upload that resumes
    /// correctly and that a rewind can finish. Fewer bytes than `size` on disk is
    /// `BlobUploadInvalid`.
    pub fn rewind(
        uploads: &Path,
        id: &str,
        size: u64,
        state: &[u8],
        caching: Caching,
    ) -> Result<Upload> {
        check_upload_id(id)?;
        let hasher = Hasher::from_any_state(state)?;
        if hasher.bytes_hashed() != size {
            return Err(StoreError::HashState(format!(
                "the state covers {} bytes, not {size}",
                hasher.bytes_hashed()
            )));
        }
        let dir = uploads.join(id);
        let data = dir.join(layout::upload::DATA);
        let on_disk = match fs::metadata(&data) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobUploadUnknown { id: id.to_owned() });
            }
            Err(e) => return Err(e).at("stat", &data),
        };
        if on_disk < size {
            return Err(StoreError::BlobUploadInvalid {
                id: id.to_owned(),
                reason: format!("it holds {on_disk} bytes, fewer than the {size} to rewind to"),
            });
        }
        if on_disk > size {
            let alg_dir = dir.join(layout::upload::hash_states(hasher.algorithm().name()));
            create_dir_all_durable(&alg_dir)?;
            write_atomic(&alg_dir.join(size.to_string()), state)?;
            // A stale state past the cut would be taken for valid once the data grows again.
            for entry in fs::read_dir(&alg_dir).at("list", &alg_dir)? {
                let entry = entry.at("list", &alg_dir)?;
                let past = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| name.parse::<u64>().ok())
                    .is_some_and(|offset| offset > size);
                if past {
                    fs::remove_file(entry.path()).at("remove", &entry.path())?;
                }
            }
            let file = OpenOptions::new()
                .write(true)
                .open(&data)
                .at("open", &data)?;
            file.set_len(size).at("truncate", &data)?;
            file.sync_all().at("fsync", &data)?;
        }
        Upload::resume(uploads, id, caching)
    }

    /// Moves the upload's bytes to `target` (a file outside the blob store, as Quay's uploads to
    /// arbitrary paths are completed): data made durable, renamed, directory synced; the upload
    /// is then gone.
    pub fn move_data_to(&mut self, target: &Path) -> Result<()> {
        self.join_flusher()?;
        let file = self.usable()?;
        file.sync_data().at("fsync", &self.data_path())?;
        let parent = target.parent().unwrap_or(Path::new("."));
        create_dir_all_durable(parent)?;
        fs::rename(self.data_path(), target).at("move to", target)?;
        fsync_dir(parent)?;
        self.file = None;
        self.direct = None;
        self.remove_dir()
    }

    /// The running hash state (Go's format for sha256 and sha512) of the bytes so far.
    pub fn hash_state(&self) -> Vec<u8> {
        self.hasher.state()
    }

    /// The newest usable saved state at or below `size`, preferring sha256 (what distribution
    /// writes); with none, a fresh sha256 hasher at offset 0.
    fn newest_state(dir: &Path, size: u64) -> Result<(Hasher, u64, Option<u64>)> {
        // States written by a volatile checkpoint in an earlier boot may describe data that
        // never reached the disk: only those up to the durable offset count then.
        let mark = fs::read_to_string(dir.join(VOLATILE_MARK)).ok();
        let (trusted_up_to, durable) = match mark.as_deref().and_then(|m| m.split_once(' ')) {
            Some((boot, offset)) => {
                let offset: u64 = offset.trim().parse().unwrap_or(0);
                if boot_id().as_deref() == Some(boot) {
                    (u64::MAX, Some(offset))
                } else {
                    (offset, Some(offset))
                }
            }
            None => (u64::MAX, None),
        };
        let states = dir.join(layout::upload::HASH_STATES);
        for alg in Algorithm::ALL {
            let alg_dir = states.join(alg.name());
            let entries = match fs::read_dir(&alg_dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).at("list", &alg_dir),
            };
            let mut offsets: Vec<u64> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse().ok())
                .filter(|&offset| offset <= size && offset <= trusted_up_to)
                .collect();
            offsets.sort_unstable_by(|a, b| b.cmp(a));
            for offset in offsets {
                let Ok(bytes) = fs::read(alg_dir.join(offset.to_string())) else {
                    continue;
                };
                match Hasher::from_state(alg, &bytes) {
                    Ok(h) if h.bytes_hashed() == offset => {
                        return Ok((h, offset, durable.or(Some(offset))));
                    }
                    _ => continue,
                }
            }
            return Ok((Hasher::new(alg), 0, durable));
        }
        Ok((Hasher::new(Algorithm::Sha256), 0, durable))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn started_at(&self) -> &str {
        &self.started_at
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn algorithm(&self) -> Algorithm {
        self.hasher.algorithm()
    }

    /// The digest of the bytes so far, in the streamed algorithm.
    pub fn digest(&self) -> Digest {
        self.hasher.digest()
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    fn data_path(&self) -> PathBuf {
        self.dir.join(layout::upload::DATA)
    }

    fn usable(&self) -> Result<&File> {
        if let Some(reason) = &self.broken {
            return Err(StoreError::BlobUploadInvalid {
                id: self.id.clone(),
                reason: format!("{reason}; resume it to continue from the last durable state"),
            });
        }
        self.file
            .as_ref()
            .ok_or_else(|| StoreError::Value(format!("upload {} is closed", self.id)))
    }

    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.usable()?;
        let file = self
            .file
            .as_ref()
            .expect("usable() checked the file is open");
        let offset = self.size;
        let hasher = &mut self.hasher;
        let written = match self.direct.as_mut() {
            Some(direct) if data.len() >= PARALLEL_MIN => std::thread::scope(|scope| {
                let hashing = scope.spawn(|| hasher.update(data));
                let staged = direct.append(data);
                hashing
                    .join()
                    .map_err(|_| io::Error::other("hashing thread panicked"))
                    .and(staged)
            }),
            Some(direct) => {
                hasher.update(data);
                direct.append(data)
            }
            None if data.len() >= PARALLEL_MIN => std::thread::scope(|scope| {
                let writer = scope.spawn(|| write_all_at_in_pieces(file, data, offset));
                hasher.update(data);
                writer
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")))
            }),
            None => {
                hasher.update(data);
                write_all_at_in_pieces(file, data, offset)
            }
        };
        if let Err(e) = written {
            // The hasher has seen bytes the file may not hold: never trust this state again.
            self.broken = Some(format!("a write failed ({e})"));
            return Err(e).at("write", &self.data_path());
        }
        self.size += data.len() as u64;
        match self.caching {
            Caching::Drop | Caching::Direct
                if self.direct.is_none() && self.size - self.written_back >= WRITEBACK_STEP =>
            {
                // POSIX_FADV_DONTNEED starts writeback of the dirty pages in the range without
                // waiting for it and drops the pages already clean (Linux mm/fadvise.c);
                // reaching back WRITEBACK_LAG drops what earlier calls sent to disk.
                // Advisory: a failure changes nothing.
                let from = self.written_back.saturating_sub(WRITEBACK_LAG);
                let _ = posix_fadvise(
                    file,
                    from as i64,
                    (self.size - from) as i64,
                    PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                );
                self.written_back = self.size;
            }
            Caching::Keep
                if self.size - self.written_back >= FLUSH_STEP
                    && self.flusher.as_ref().is_none_or(|f| f.is_finished()) =>
            {
                // One flush at a time, on a second descriptor of the same file. A failed
                // background flush is not fatal: the flush at checkpoint or commit reports any
                // real I/O error.
                if let Some(done) = self.flusher.take() {
                    let _ = done.join();
                }
                if let Ok(clone) = file.try_clone() {
                    self.flusher = Some(std::thread::spawn(move || clone.sync_data()));
                    self.written_back = self.size;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Appends `len` bytes of `src` from `offset` (fewer if `src` ends first); returns how
    /// many. In direct mode they are read straight into the aligned stage, one copy fewer than
    /// reading them into a buffer for `write`.
    pub fn write_from_file(&mut self, src: &File, offset: u64, len: u64) -> Result<u64> {
        self.usable()?;
        if self.direct.is_none() {
            return copy_file_range_into(src, offset, len, |bytes| self.write(bytes));
        }
        let mut done = 0u64;
        while done < len {
            let direct = self.direct.as_mut().expect("direct mode checked above");
            let n = read_source(src, direct.spare(), offset, done, len)?;
            if n == 0 {
                break;
            }
            let hasher = &mut self.hasher;
            if let Err(e) = direct.filled(n, |fresh| hasher.update(fresh)) {
                // The hasher has seen bytes the file may not hold: never trust this state again.
                self.broken = Some(format!("a write failed ({e})"));
                return Err(e).at("write", &self.data_path());
            }
            self.size += n as u64;
            done += n as u64;
        }
        Ok(done)
    }

    /// Makes the data and the hash state durable; the upload can be resumed from here by any
    /// process. Older states are removed: only the newest is needed.
    /// Waits for a background flush to end, and puts staged direct writes into the file.
    fn join_flusher(&mut self) -> Result<()> {
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        if let (Some(direct), Some(file)) = (self.direct.as_mut(), self.file.as_ref())
            && self.broken.is_none()
            && let Err(e) = direct.flush(file)
        {
            self.broken = Some(format!("a write failed ({e})"));
            return Err(e).at("write", &self.dir.join(layout::upload::DATA));
        }
        Ok(())
    }

    pub fn checkpoint(&mut self) -> Result<()> {
        self.checkpoint_with(true)
    }

    /// A checkpoint that does not wait for the disk: the hash state is written but neither it
    /// nor the data is fsynced. It is trusted by any process until the machine restarts (the
    /// page cache holds the data); after a restart, resume falls back to the last durable
    /// state (the boot id in `VOLATILE_MARK` tells). Where the boot id cannot be read, it is a
    /// durable checkpoint.
    pub fn checkpoint_volatile(&mut self) -> Result<()> {
        self.checkpoint_with(false)
    }

    fn checkpoint_with(&mut self, durable: bool) -> Result<()> {
        self.join_flusher()?;
        let boot = if durable { None } else { boot_id() };
        let durable = boot.is_none();
        let file = self.usable()?;
        if self.checkpointed == Some(self.size) && (!durable || self.durable == Some(self.size)) {
            return Ok(());
        }
        let data_path = self.data_path();
        let alg_dir = self
            .dir
            .join(layout::upload::hash_states(self.hasher.algorithm().name()));
        let first = self.checkpointed.is_none();
        create_dir_all_durable(&alg_dir)?;
        let state_path = alg_dir.join(self.size.to_string());
        if let Some(boot) = boot {
            // The mark must be on disk before any state it disowns could be.
            let mark = format!("{boot} {}\n", self.durable.unwrap_or(0));
            let mark_path = self.dir.join(VOLATILE_MARK);
            if fs::read_to_string(&mark_path).ok().as_deref() != Some(mark.as_str()) {
                write_atomic(&mark_path, mark.as_bytes())?;
            }
            write_replace(&state_path, &self.hasher.state())?;
        } else {
            file.sync_data().at("fsync", &data_path)?;
            write_atomic(&state_path, &self.hasher.state())?;
            // Every state that remains is durable now: the mark has nothing left to disown.
            match fs::remove_file(self.dir.join(VOLATILE_MARK)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at("remove", &self.dir.join(VOLATILE_MARK)),
            }
        }
        // Keep the newest state and the newest durable one; the others (older ones, and any
        // left by an earlier boot or by distribution) are not needed.
        let keep_durable = if durable { None } else { self.durable };
        if let Ok(entries) = fs::read_dir(&alg_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(offset) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                    continue;
                };
                if offset != self.size && Some(offset) != keep_durable {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        if first {
            fsync_dir(&self.dir)?;
            if let Some(uploads) = self.dir.parent() {
                fsync_dir(uploads)?;
            }
        }
        self.checkpointed = Some(self.size);
        if durable {
            self.durable = Some(self.size);
        }
        Ok(())
    }

    /// Checkpoints (durably or not) and releases the file; the upload stays on disk.
    pub fn close(&mut self, durable: bool) -> Result<()> {
        if self.file.is_none() || self.broken.is_some() {
            self.file = None;
            return Ok(());
        }
        let done = self.checkpoint_with(durable);
        self.file = None;
        done
    }

    /// Verifies size and digest from the running state and moves the data into place. On a
    /// mismatch nothing is moved and the upload stays as it was.
    pub fn commit(&mut self, layout: &Layout, expected: &Digest, size: Option<u64>) -> Result<u64> {
        self.commit_with(
            layout,
            expected,
            expected.algorithm(),
            size,
            &mut |_| Ok(()),
        )
    }

    /// `commit`, storing the bytes under their digest in `stored_as` (`layout::stored_algorithm`)
    /// and calling `before_publish` with that digest once the bytes are verified and before they
    /// are moved into place (a repository writes its link there: a crash after that leaves a
    /// dangling link and a resumable upload, never a blob no repository links).
    pub fn commit_with(
        &mut self,
        layout: &Layout,
        expected: &Digest,
        stored_as: Algorithm,
        size: Option<u64>,
        before_publish: &mut dyn FnMut(&Digest) -> Result<()>,
    ) -> Result<u64> {
        self.join_flusher()?;
        let file = self.usable()?;
        check_size(size, self.size)?;
        // What the running state does not give is hashed in one pass over the data.
        let mut others: Vec<Hasher> = [expected.algorithm(), stored_as]
            .into_iter()
            .filter(|&alg| alg != self.hasher.algorithm())
            .map(Hasher::new)
            .collect();
        others.dedup_by_key(|h| h.algorithm());
        if !others.is_empty() {
            hash_file_range(file, &self.data_path(), &mut others, 0, self.size)?;
        }
        let digest_in = |alg: Algorithm| {
            if alg == self.hasher.algorithm() {
                self.hasher.digest()
            } else {
                let h = others.iter().find(|h| h.algorithm() == alg);
                h.expect("hashed in the pass").digest()
            }
        };
        let actual = digest_in(expected.algorithm());
        if &actual != expected {
            return Err(StoreError::BlobInvalidDigest {
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        let stored = digest_in(stored_as);
        before_publish(&stored)?;
        let target = layout.blob_data(&stored);
        // An identical blob already stored is refreshed, as a new one would be: for garbage
        // collection a blob committed now is a blob in use (and if it vanishes meanwhile, the
        // rename below puts it back).
        let present = fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == self.size)
            && OpenOptions::new()
                .write(true)
                .open(&target)
                .and_then(|f| f.set_modified(SystemTime::now()))
                .is_ok();
        if !present {
            file.sync_data().at("fsync", &self.data_path())?;
            let blob_dir = target.parent().expect("blob data has a directory");
            create_dir_all_durable(blob_dir)?;
            fs::rename(self.data_path(), &target).at("move into place", &target)?;
            fsync_dir(blob_dir)?;
        }
        self.file = None;
        self.remove_dir()?;
        Ok(self.size)
    }

    /// Removes the upload and everything it wrote.
    pub fn cancel(&mut self) -> Result<()> {
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.direct = None;
        self.file = None;
        match fs::metadata(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobUploadUnknown {
                id: self.id.clone(),
            }),
            _ => self.remove_dir(),
        }
    }

    fn remove_dir(&self) -> Result<()> {
        // After a commit the data is gone (moved into place) or left (the blob was there).
        let usual = [layout::upload::STARTED_AT, layout::upload::DATA];
        remove_dir_holding(&self.dir, &usual).at("remove upload", &self.dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn sha256(data: &[u8]) -> Digest {
        Digest::from_raw(Algorithm::Sha256, &sha2::Sha256::digest(data)).unwrap()
    }

    #[test]
    fn write_checkpoint_resume_commit() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let uploads = layout.global_uploads();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let mut up = Upload::create(&uploads, Algorithm::Sha256, Caching::Keep).unwrap();
        up.write(&data[..1_000_000]).unwrap();
        up.close(true).unwrap();
        let id = up.id().to_owned();
        assert!(
            uploads
                .join(&id)
                .join("hashstates/sha256/1000000")
                .is_file()
        );

        // Bytes written after the checkpoint but never checkpointed: resume re-hashes them.
        let mut up = Upload::resume(&uploads, &id, Caching::Keep).unwrap();
        up.write(&data[1_000_000..2_000_000]).unwrap();
        drop(up);
        let mut up = Upload::resume(&uploads, &id, Caching::Keep).unwrap();
        assert_eq!(up.size(), 2_000_000);
        up.write(&data[2_000_000..]).unwrap();
        let digest = sha256(&data);
        assert_eq!(
            up.commit(&layout, &digest, Some(data.len() as u64))
                .unwrap(),
            3_000_000
        );
        assert_eq!(fs::read(layout.blob_data(&digest)).unwrap(), data);
        assert!(!uploads.join(&id).exists());
    }

    #[test]
    fn volatile_checkpoints_are_trusted_until_a_restart() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let uploads = layout.global_uploads();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 239) as u8).collect();
        let mut up = Upload::create(&uploads, Algorithm::Sha256, Caching::Keep).unwrap();
        up.write(&data[..1_000_000]).unwrap();
        up.checkpoint().unwrap();
        up.write(&data[1_000_000..2_000_000]).unwrap();
        up.close(false).unwrap();
        let id = up.id().to_owned();
        let dir = uploads.join(&id);
        let states = dir.join("hashstates/sha256");
        if boot_id().is_none() {
            return; // no boot id here: every checkpoint is durable, nothing to test
        }
        // Both the durable and the newer volatile state are kept, and the mark names the boot.
        assert!(states.join("1000000").is_file() && states.join("2000000").is_file());
        let mark = fs::read_to_string(dir.join(VOLATILE_MARK)).unwrap();
        assert!(mark.ends_with(" 1000000\n"));
        // Same boot: the volatile state is used, so bytes changed under it go unnoticed
        // (proof that nothing was re-read).
        let mut altered = data[..2_000_000].to_vec();
        altered[1_500_000] ^= 1;
        fs::write(dir.join(layout::upload::DATA), &altered).unwrap();
        let up = Upload::resume(&uploads, &id, Caching::Keep).unwrap();
        assert_eq!(up.digest(), sha256(&data[..2_000_000]));
        drop(up);
        // Another boot: only the durable state counts; the rest is re-hashed from the file.
        fs::write(dir.join(VOLATILE_MARK), "another-boot 1000000\n").unwrap();
        let mut up = Upload::resume(&uploads, &id, Caching::Keep).unwrap();
        assert_eq!(up.digest(), sha256(&altered));
        // A durable checkpoint retires the mark and the older states.
        up.write(&data[2_000_000..]).unwrap();
        up.close(true).unwrap();
        assert!(!dir.join(VOLATILE_MARK).exists());
        let left: Vec<_> = fs::read_dir(&states)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("3000000")]);
    }

    #[test]
    fn mismatches_leave_no_blob() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let mut up =
            Upload::create(&layout.global_uploads(), Algorithm::Sha256, Caching::Direct).unwrap();
        up.write(b"hello").unwrap();
        let wrong = sha256(b"world");
        assert!(matches!(
            up.commit(&layout, &wrong, None),
            Err(StoreError::BlobInvalidDigest { .. })
        ));
        assert!(matches!(
            up.commit(&layout, &sha256(b"hello"), Some(4)),
            Err(StoreError::BlobInvalidLength { .. })
        ));
        assert!(!layout.blob_data(&wrong).exists());
        assert!(!layout.blob_data(&sha256(b"hello")).exists());
        // Still usable after the failed attempts.
        up.commit(&layout, &sha256(b"hello"), Some(5)).unwrap();
        assert!(layout.blob_data(&sha256(b"hello")).is_file());
    }

    #[test]
    fn commit_in_another_algorithm_rehashes() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let mut up =
            Upload::create(&layout.global_uploads(), Algorithm::Sha256, Caching::Direct).unwrap();
        up.write(b"abc").unwrap();
        let b3 = Digest::from_raw(Algorithm::Blake3, blake3::hash(b"abc").as_bytes()).unwrap();
        up.commit(&layout, &b3, Some(3)).unwrap();
        assert_eq!(fs::read(layout.blob_data(&b3)).unwrap(), b"abc");
    }

    #[test]
    fn a_commit_stores_the_bytes_under_their_digest_in_the_algorithm_asked() {
        use sha2::Digest as _;
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        // Streamed in sha512 (checked from the state), stored under its sha256 (one pass); then
        // streamed in blake3 with both the check and the stored digest from the one pass.
        for streamed in [Algorithm::Sha512, Algorithm::Blake3] {
            let mut up =
                Upload::create(&layout.global_uploads(), streamed, Caching::Direct).unwrap();
            up.write(b"abc").unwrap();
            let sha512 =
                Digest::from_raw(Algorithm::Sha512, &sha2::Sha512::digest(b"abc")).unwrap();
            let mut published = None;
            let stored_as = Algorithm::Sha256;
            up.commit_with(&layout, &sha512, stored_as, Some(3), &mut |d| {
                published = Some(d.clone());
                Ok(())
            })
            .unwrap();
            assert_eq!(published, Some(sha256(b"abc")));
            assert_eq!(fs::read(layout.blob_data(&sha256(b"abc"))).unwrap(), b"abc");
            assert!(!layout.blob_data(&sha512).exists());
        }
    }

    #[test]
    fn unknown_ids_are_rejected() {
        let root = tempfile::tempdir().unwrap();
        let uploads = Layout::new(root.path()).global_uploads();
        for id in [
            "../../etc",
            "",
            "not-a-uuid",
            "6F9619FF-8B86-D011-B42D-00C04FC964FF",
        ] {
            assert!(matches!(
                Upload::resume(&uploads, id, Caching::Keep),
                Err(StoreError::BlobUploadUnknown { .. })
            ));
        }
        let missing = uuid::Uuid::new_v4().hyphenated().to_string();
        assert!(matches!(
            Upload::resume(&uploads, &missing, Caching::Keep),
            Err(StoreError::BlobUploadUnknown { .. })
        ));
    }
}
