//! The Python-facing classes of `ocistore._core`, and the module itself.

mod buffer;
pub mod digest;
mod errors;
pub mod front;
pub mod fs;
pub mod grammar;
mod hashers;
pub mod layout;
pub mod objstore;
pub mod reader;
pub mod store;
pub mod writer;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<digest::PyDigest>()?;
    m.add_class::<store::PyBlobStore>()?;
    m.add_class::<objstore::PyObjectStore>()?;
    m.add_class::<writer::PyBlobWriter>()?;
    m.add_class::<front::PyFront>()?;
    m.add_class::<reader::PyBlobReader>()?;
    m.add_class::<hashers::PySha256>()?;
    m.add_class::<hashers::PySha512>()?;
    m.add_class::<hashers::PyBlake3>()?;
    m.add_function(wrap_pyfunction!(fs::write_file_atomic, m)?)?;
    m.add_function(wrap_pyfunction!(fs::hash_file, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_classes, m)?)?;
    m.add_class::<layout::PyLayout>()?;
    m.add_function(wrap_pyfunction!(grammar::repository_name_problem, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::valid_tag, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::valid_upload_id, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::is_decimal, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::byte_range, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::content_range, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::upload_continues, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::page_size, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::percent_decode, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::query_pairs, m)?)?;
    m.add("PARALLEL_WRITE_MIN", crate::store::upload::PARALLEL_MIN)?;
    m.add("NAME_MAX", crate::grammar::NAME_MAX)?;
    Ok(())
}
