//! Zero-copy access to Python objects that export the buffer protocol.
//!
//! This is the one place with `unsafe`: turning a `Py_buffer` into a Rust slice. The `PyBuffer`
//! keeps the exporter alive and its memory pinned (a `bytearray` cannot be resized while a
//! buffer view is held) for as long as the slice is borrowed from it.
#![allow(unsafe_code)]

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

fn byte_buffer(obj: &Bound<'_, PyAny>) -> PyResult<PyBuffer<u8>> {
    match PyBuffer::<u8>::get(obj) {
        Ok(buf) => Ok(buf),
        Err(_) => {
            // A buffer of other items (array('I'), a 2-D memoryview, ...): view its bytes.
            let view = PyMemoryView::from(obj).map_err(|_| {
                PyTypeError::new_err(format!(
                    "a bytes-like object is required, not '{}'",
                    obj.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            let bytes = view.call_method1("cast", ("B",))?;
            PyBuffer::<u8>::get(&bytes)
        }
    }
}

/// Read-only bytes of a buffer-protocol object.
pub struct InputBuffer(PyBuffer<u8>);

impl InputBuffer {
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let buf = byte_buffer(obj)?;
        if !buf.is_c_contiguous() {
            return Err(PyBufferError::new_err("buffer must be C-contiguous"));
        }
        Ok(Self(buf))
    }

    pub fn as_slice(&self) -> &[u8] {
        let len = self.0.len_bytes();
        if len == 0 {
            return &[];
        }
        // SAFETY: the buffer is C-contiguous bytes of `len_bytes` length, held by `self.0`,
        // and lives as long as the returned borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.0.buf_ptr() as *const u8, len) }
    }
}

/// Writable bytes of a buffer-protocol object (for `readinto`).
pub struct OutputBuffer(PyBuffer<u8>);

impl OutputBuffer {
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let buf = byte_buffer(obj)?;
        if buf.readonly() {
            return Err(PyTypeError::new_err("readinto() needs a writable buffer"));
        }
        if !buf.is_c_contiguous() {
            return Err(PyBufferError::new_err("buffer must be C-contiguous"));
        }
        Ok(Self(buf))
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.0.len_bytes();
        if len == 0 {
            return &mut [];
        }
        // SAFETY: as in `InputBuffer::as_slice`; the exporter declared the memory writable and
        // the `&mut self` borrow makes this the only slice over it handed out by us.
        unsafe { std::slice::from_raw_parts_mut(self.0.buf_ptr() as *mut u8, len) }
    }
}
