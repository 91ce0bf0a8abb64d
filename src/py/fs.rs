use std::path::PathBuf;

use pyo3::prelude::*;

use crate::py::buffer::InputBuffer;
use crate::store::fsutil::{create_dir_all_durable, write_atomic, write_replace};

/// Writes a small file so that readers see the old or the new content, never a mix, and (unless
/// `durable=False`: state that may be lost with a power cut) so that it survives a power loss:
/// missing parent directories are created durably, then a temporary file is written, fsynced
/// and renamed over `path`, and the directory is fsynced.
#[pyfunction]
#[pyo3(signature = (path, data, durable = true))]
pub fn write_file_atomic(
    py: Python<'_>,
    path: PathBuf,
    data: &Bound<'_, PyAny>,
    durable: bool,
) -> PyResult<()> {
    let buf = InputBuffer::new(data)?;
    let bytes = buf.as_slice();
    py.detach(|| {
        if let Some(parent) = path.parent() {
            create_dir_all_durable(parent)?;
        }
        if durable {
            write_atomic(&path, bytes)
        } else {
            write_replace(&path, bytes)
        }
    })?;
    Ok(())
}

/// The digest of a file's bytes, read in 1 MiB blocks with the GIL released.
#[pyfunction]
pub fn hash_file(
    py: Python<'_>,
    path: PathBuf,
    algorithm: &str,
) -> PyResult<crate::py::digest::PyDigest> {
    use std::os::unix::fs::FileExt;

    use crate::error::IoContext;
    use crate::hashing::Hasher;

    let algorithm = crate::digest::Algorithm::parse(algorithm)?;
    let digest = py.detach(|| {
        let file = std::fs::File::open(&path).at("open", &path)?;
        let mut hasher = Hasher::new(algorithm);
        let mut buf = vec![0u8; 1024 * 1024];
        let mut pos = 0u64;
        loop {
            let n = file.read_at(&mut buf, pos).at("read", &path)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        Ok::<_, crate::error::StoreError>(hasher.digest())
    })?;
    Ok(crate::py::digest::PyDigest { inner: digest })
}
