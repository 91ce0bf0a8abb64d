//! Writes that bypass the page cache (`O_DIRECT`), for bulk ingest.
//!
//! Bytes are staged in an aligned buffer and written a whole stage at a time at aligned file
//! offsets. (Writing each stage on a background thread while the next fills measured no faster
//! here: two import jobs already keep the disk busy.) On a flush the whole pages go out directly and the last, partial page through the
//! ordinary descriptor (it stays staged, so the next full stage rewrites it with what follows).
//! Writes happen strictly in file order, so after a crash the file holds a prefix of the stream.
//! Where the file system refuses `O_DIRECT` (tmpfs), `open` returns `None`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

const ALIGN: usize = 4096;
pub const STAGE: usize = 8 * 1024 * 1024;

/// A buffer with an aligned stage inside it.
struct Stage {
    buf: Vec<u8>,
    /// Where in `buf` the aligned stage begins.
    start: usize,
}

impl Stage {
    fn new() -> Stage {
        let buf = vec![0u8; STAGE + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Stage { buf, start }
    }

    fn bytes(&self, len: usize) -> &[u8] {
        &self.buf[self.start..self.start + len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + STAGE]
    }
}

pub struct DirectWriter {
    file: File,
    stage: Stage,
    /// The file offset of the stage's first byte (a multiple of ALIGN).
    base: u64,
    /// Bytes staged.
    len: usize,
}

impl DirectWriter {
    /// Opens `path` for direct writes continuing at `size`; the partial page before `size` is
    /// read back through `buffered` so that whole pages can be written.
    pub fn open(path: &Path, size: u64, buffered: &File) -> io::Result<Option<DirectWriter>> {
        let file = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e),
        };
        let tail = (size % ALIGN as u64) as usize;
        let mut writer = DirectWriter {
            file,
            stage: Stage::new(),
            base: size - tail as u64,
            len: tail,
        };
        if tail > 0 {
            let base = writer.base;
            buffered.read_exact_at(&mut writer.stage.bytes_mut()[..tail], base)?;
        }
        Ok(Some(writer))
    }

    pub fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = (STAGE - self.len).min(data.len());
            self.stage.bytes_mut()[self.len..self.len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == STAGE {
                self.file.write_all_at(self.stage.bytes(STAGE), self.base)?;
                self.base += STAGE as u64;
                self.len = 0;
            }
        }
        Ok(())
    }

    /// The stage's free space, for a caller that reads into it in place (then `filled`).
    pub fn spare(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.stage.bytes_mut()[len..]
    }

    /// Takes in the `n` bytes just put at the start of `spare()`: `inspect` sees them and, once
    /// the stage is full, the stage is written out meanwhile on a second thread.
    pub fn filled(&mut self, n: usize, inspect: impl FnOnce(&[u8])) -> io::Result<()> {
        let from = self.len;
        self.len += n;
        if self.len < STAGE {
            inspect(&self.stage.bytes(self.len)[from..]);
            return Ok(());
        }
        let stage = self.stage.bytes(STAGE);
        let (file, base) = (&self.file, self.base);
        std::thread::scope(|scope| {
            let writing = scope.spawn(|| file.write_all_at(stage, base));
            inspect(&stage[from..]);
            writing
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")))
        })?;
        self.base += STAGE as u64;
        self.len = 0;
        Ok(())
    }

    /// Puts everything staged into the file: whole pages directly, the partial last page
    /// through `buffered` (it stays staged).
    pub fn flush(&mut self, buffered: &File) -> io::Result<()> {
        let whole = self.len - self.len % ALIGN;
        if whole > 0 {
            self.file.write_all_at(self.stage.bytes(whole), self.base)?;
        }
        let tail = self.len - whole;
        if tail > 0 {
            let at = self.base + whole as u64;
            buffered.write_all_at(&self.stage.bytes(self.len)[whole..], at)?;
            let start = self.stage.start;
            self.stage
                .buf
                .copy_within(start + whole..start + self.len, start);
        }
        self.base += whole as u64;
        self.len = tail;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty file to write to, opened for buffered reads and writes.
    fn data_file(dir: &tempfile::TempDir) -> (std::path::PathBuf, File) {
        let path = dir.path().join("data");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    #[test]
    fn any_split_lands_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, buffered) = data_file(&dir);
        let data: Vec<u8> = (0..(3 * STAGE + 12345)).map(|i| (i % 251) as u8).collect();
        let Some(mut w) = DirectWriter::open(&path, 0, &buffered).unwrap() else {
            return; // no O_DIRECT on this file system: nothing to test
        };
        let mut cut = 0;
        for piece in [1usize, 4095, 100_000, STAGE, 7, STAGE + 3] {
            w.append(&data[cut..cut + piece]).unwrap();
            cut += piece;
            w.flush(&buffered).unwrap();
        }
        // Reopen in the middle of a page, as resume does.
        drop(w);
        let mut w = DirectWriter::open(&path, cut as u64, &buffered)
            .unwrap()
            .unwrap();
        w.append(&data[cut..]).unwrap();
        w.flush(&buffered).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn filling_in_place_lands_in_order_and_shows_every_byte_once() {
        let dir = tempfile::tempdir().unwrap();
        let (path, buffered) = data_file(&dir);
        let data: Vec<u8> = (0..(2 * STAGE + 777)).map(|i| (i % 253) as u8).collect();
        let Some(mut w) = DirectWriter::open(&path, 0, &buffered).unwrap() else {
            return;
        };
        let mut seen = Vec::new();
        let mut cut = 0;
        for piece in [5000usize, STAGE, STAGE, 1_000_000] {
            let spare = w.spare();
            let n = piece.min(spare.len()).min(data.len() - cut);
            spare[..n].copy_from_slice(&data[cut..cut + n]);
            w.filled(n, |fresh| seen.extend_from_slice(fresh)).unwrap();
            cut += n;
        }
        w.flush(&buffered).unwrap();
        assert_eq!(seen, data[..cut]);
        assert_eq!(std::fs::read(&path).unwrap(), data[..cut]);
    }
}
