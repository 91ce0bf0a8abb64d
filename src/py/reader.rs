use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::store::location_object;
use crate::error::StoreError;
use crate::py::buffer::OutputBuffer;
use crate::storage::{BlobSource, Location};

struct Cursor {
    /// None once closed.
    file: Option<Box<dyn BlobSource>>,
    pos: u64,
}

/// A seekable reader over one blob (`ReadSeekCloser`): `read`, `readinto`, `seek`, `tell`, and
/// positional `read_at`, which does not move the cursor. Reads release the GIL.
#[pyclass(frozen, module = "ocistore", name = "BlobReader")]
pub struct PyBlobReader {
    cursor: Mutex<Cursor>,
    size: u64,
    location: Location,
    digest: String,
}

impl PyBlobReader {
    pub fn new(file: Box<dyn BlobSource>, size: u64, location: Location, digest: String) -> Self {
        Self {
            cursor: Mutex::new(Cursor {
                file: Some(file),
                pos: 0,
            }),
            size,
            location,
            digest,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cursor> {
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes available from `pos`, capped at `want` (negative: all).
    fn span(&self, pos: u64, want: i64) -> usize {
        let left = self.size.saturating_sub(pos);
        let n = if want < 0 {
            left
        } else {
            left.min(want as u64)
        };
        n as usize
    }

    fn read_into(&self, py: Python<'_>, pos: Option<u64>, buf: &mut [u8]) -> PyResult<u64> {
        py.detach(|| {
            let mut cursor = self.lock();
            let at = pos.unwrap_or(cursor.pos);
            let file = cursor
                .file
                .as_mut()
                .ok_or_else(|| StoreError::Value("I/O operation on closed blob reader".into()))?;
            file.read_exact_at(buf, at)?;
            if pos.is_none() {
                cursor.pos = at + buf.len() as u64;
            }
            Ok::<_, StoreError>(buf.len() as u64)
        })
        .map_err(PyErr::from)
    }

    fn check_open(&self) -> PyResult<u64> {
        let cursor = self.lock();
        if cursor.file.is_none() {
            return Err(PyValueError::new_err("I/O operation on closed blob reader"));
        }
        Ok(cursor.pos)
    }

    fn read_bytes<'py>(
        &self,
        py: Python<'py>,
        pos: Option<u64>,
        n: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        PyBytes::new_with(py, n, |buf| {
            if n > 0 {
                self.read_into(py, pos, buf)?;
            }
            Ok(())
        })
    }
}

#[pymethods]
impl PyBlobReader {
    #[pyo3(signature = (size = -1, /))]
    fn read<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let pos = self.check_open()?;
        let n = self.span(pos, size.unwrap_or(-1));
        self.read_bytes(py, None, n)
    }

    fn readall<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.read(py, Some(-1))
    }

    fn readinto(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<u64> {
        let mut out = OutputBuffer::new(buffer)?;
        let pos = self.check_open()?;
        let slice = out.as_mut_slice();
        let n = self.span(pos, slice.len() as i64);
        if n == 0 {
            return Ok(0);
        }
        self.read_into(py, None, &mut slice[..n])
    }

    /// Reads up to `size` bytes at `offset` without moving the cursor.
    fn read_at<'py>(
        &self,
        py: Python<'py>,
        offset: i64,
        size: i64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.check_open()?;
        if offset < 0 {
            return Err(PyValueError::new_err(format!("negative offset {offset}")));
        }
        if size < 0 {
            return Err(PyValueError::new_err(format!("negative size {size}")));
        }
        let n = self.span(offset as u64, size);
        self.read_bytes(py, Some(offset as u64), n)
    }

    #[pyo3(signature = (offset, whence = 0, /))]
    fn seek(&self, offset: i64, whence: i32) -> PyResult<u64> {
        let mut cursor = self.lock();
        if cursor.file.is_none() {
            return Err(PyValueError::new_err("I/O operation on closed blob reader"));
        }
        let base: i128 = match whence {
            0 => 0,
            1 => i128::from(cursor.pos),
            2 => i128::from(self.size),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "invalid whence ({whence}, should be 0, 1 or 2)"
                )));
            }
        };
        let target = base + i128::from(offset);
        if target < 0 {
            return Err(PyValueError::new_err(format!(
                "negative seek position {target}"
            )));
        }
        cursor.pos =
            u64::try_from(target).map_err(|_| PyValueError::new_err("seek position too large"))?;
        Ok(cursor.pos)
    }

    fn tell(&self) -> PyResult<u64> {
        self.check_open()
    }

    fn close(&self) {
        self.lock().file = None;
    }

    #[getter]
    fn closed(&self) -> bool {
        self.lock().file.is_none()
    }

    /// The blob's size in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.size
    }

    #[getter]
    fn digest(&self) -> &str {
        &self.digest
    }

    /// The file holding the blob, for servers with a zero-copy file path; on an object store,
    /// the blob's key relative to the root directory.
    #[getter]
    fn path<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        location_object(py, self.location.clone())
    }

    fn readable(&self) -> bool {
        true
    }

    fn seekable(&self) -> bool {
        true
    }

    fn writable(&self) -> bool {
        false
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        format!("<BlobReader {} size={}>", self.digest, self.size)
    }
}
