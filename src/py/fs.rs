use std::path::PathBuf;

use pyo3::prelude::*;

use crate::buffer::InputBuffer;
use crate::store::fsutil::{create_dir_all_durable, write_atomic};

/// Writes a small file so that readers see the old or the new content, never a mix, and so that
/// it survives a power loss: missing parent directories are created durably, then a temporary
/// file is written, fsynced and renamed over `path`, and the directory is fsynced.
#[pyfunction]
pub fn write_file_atomic(py: Python<'_>, path: PathBuf, data: &Bound<'_, PyAny>) -> PyResult<()> {
    let buf = InputBuffer::new(data)?;
    let bytes = buf.as_slice();
    py.detach(|| {
        if let Some(parent) = path.parent() {
            create_dir_all_durable(parent)?;
        }
        write_atomic(&path, bytes)
    })?;
    Ok(())
}
