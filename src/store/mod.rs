//! The content-addressed blob store on distribution's filesystem layout:
//! `<root>/docker/registry/v2/blobs/<alg>/<hex[:2]>/<hex>/data`.

pub mod backend;
mod direct;
pub mod fsutil;
pub mod links;
pub mod upload;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::{Algorithm, Digest};
use crate::error::{IoContext, Result, StoreError};
use crate::layout;

/// distribution's layout on a filesystem: the keys of `crate::layout` under a root directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The file or directory of a `crate::layout` key.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub fn blobs(&self) -> PathBuf {
        self.path(&layout::blobs())
    }

    pub fn blob_dir(&self, digest: &Digest) -> PathBuf {
        self.path(&layout::blob_dir(digest))
    }

    pub fn blob_data(&self, digest: &Digest) -> PathBuf {
        self.path(&layout::blob_data(digest))
    }

    /// Uploads that belong to no repository (the global store's `create`).
    pub fn global_uploads(&self) -> PathBuf {
        self.path(&layout::uploads(None))
    }
}

pub fn stat(layout: &Layout, digest: &Digest) -> Result<u64> {
    let path = layout.blob_data(digest);
    match fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(meta.len()),
        Ok(_) => Err(StoreError::BlobUnknown {
            digest: digest.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobUnknown {
            digest: digest.to_string(),
        }),
        Err(e) => Err(e).at("stat", &path),
    }
}

pub fn open(layout: &Layout, digest: &Digest) -> Result<(File, u64)> {
    let path = layout.blob_data(digest);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::BlobUnknown {
                digest: digest.to_string(),
            });
        }
        Err(e) => return Err(e).at("open", &path),
    };
    let size = file.metadata().at("stat", &path)?.len();
    Ok((file, size))
}

/// Removes a blob. Readers that already have it open keep reading the old inode.
pub fn delete(layout: &Layout, digest: &Digest) -> Result<()> {
    let data = layout.blob_data(digest);
    match fs::remove_file(&data) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::BlobUnknown {
                digest: digest.to_string(),
            });
        }
        Err(e) => return Err(e).at("remove", &data),
    }
    let dir = layout.blob_dir(digest);
    fsutil::remove_dir_holding(&dir, &[]).at("remove", &dir)?;
    if let Some(parent) = dir.parent() {
        fsutil::fsync_dir(parent)?;
    }
    Ok(())
}

fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at("list", dir),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.at("list", dir)?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Every blob with a data file, in (algorithm, hex) order. Entries that are not valid digests
/// or that sit under the wrong prefix directory are skipped.
pub fn enumerate(layout: &Layout) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    let blobs = layout.blobs();
    let mut algorithms: Vec<Algorithm> = Algorithm::ALL.to_vec();
    algorithms.sort_by_key(|a| a.name());
    for alg in algorithms {
        let alg_dir = blobs.join(alg.name());
        for prefix in sorted_names(&alg_dir)? {
            for hex in sorted_names(&alg_dir.join(&prefix))? {
                let Ok(digest) = Digest::parse(&format!("{alg}:{hex}")) else {
                    continue;
                };
                if hex.starts_with(&prefix)
                    && prefix.len() == 2
                    && layout.blob_data(&digest).is_file()
                {
                    out.push(digest);
                }
            }
        }
    }
    Ok(out)
}
