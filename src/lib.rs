//! `ocistore._core`: digests, resumable hashers and the blob store, for Python.
#![deny(unsafe_code)]

mod buffer;
pub mod digest;
pub mod error;
pub mod front;
pub mod grammar;
mod hashers;
pub mod hashing;
pub mod layout;
pub mod objstore;
mod py;
pub mod store;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<py::digest::PyDigest>()?;
    m.add_class::<py::store::PyBlobStore>()?;
    m.add_class::<py::objstore::PyObjectStore>()?;
    m.add_class::<py::writer::PyBlobWriter>()?;
    m.add_class::<py::front::PyFront>()?;
    m.add_class::<py::reader::PyBlobReader>()?;
    m.add_class::<hashers::PySha256>()?;
    m.add_class::<hashers::PySha512>()?;
    m.add_class::<hashers::PyBlake3>()?;
    m.add_function(wrap_pyfunction!(py::fs::write_file_atomic, m)?)?;
    m.add_function(wrap_pyfunction!(py::fs::hash_file, m)?)?;
    m.add_class::<py::layout::PyLayout>()?;
    m.add_function(wrap_pyfunction!(py::grammar::repository_name_problem, m)?)?;
    m.add_function(wrap_pyfunction!(py::grammar::valid_tag, m)?)?;
    m.add_function(wrap_pyfunction!(py::grammar::valid_upload_id, m)?)?;
    m.add_function(wrap_pyfunction!(py::grammar::is_decimal, m)?)?;
    m.add_function(wrap_pyfunction!(py::grammar::byte_range, m)?)?;
    m.add_function(wrap_pyfunction!(py::grammar::content_range, m)?)?;
    m.add_function(wrap_pyfunction!(py::grammar::upload_continues, m)?)?;
    m.add_function(wrap_pyfunction!(py::grammar::page_size, m)?)?;
    m.add_function(wrap_pyfunction!(py::grammar::percent_decode, m)?)?;
    m.add_function(wrap_pyfunction!(py::grammar::query_pairs, m)?)?;
    m.add("PARALLEL_WRITE_MIN", store::upload::PARALLEL_MIN)?;
    m.add("NAME_MAX", grammar::NAME_MAX)?;
    Ok(())
}
