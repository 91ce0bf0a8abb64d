//! The Python-facing classes of `ocistore._core`, and the module itself.

mod buffer;
pub mod digest;
mod errors;
pub mod front;
pub mod fs;
pub mod grammar;
mod hashers;
pub mod layout;
mod manifest;
pub mod objstore;
pub mod reader;
pub mod store;
pub mod writer;

use pyo3::prelude::*;

use crate::blocks;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<digest::PyDigest>()?;
    m.add_class::<store::PyStorage>()?;
    m.add_class::<objstore::PyObjectStore>()?;
    m.add_class::<writer::PyUpload>()?;
    m.add_class::<store::PyGcLock>()?;
    m.add_class::<store::PyGcClaim>()?;
    m.add_class::<store::PyGcLease>()?;
    m.add_class::<front::PyFront>()?;
    m.add_class::<front::PyFrontProtocol>()?;
    m.add_class::<front::PyFrontRecord>()?;
    m.add_function(wrap_pyfunction!(front::read_front_records, m)?)?;
    m.add_class::<reader::PyBlobReader>()?;
    m.add_class::<hashers::PySha256>()?;
    m.add_class::<hashers::PySha512>()?;
    m.add_class::<hashers::PyBlake3>()?;
    m.add_function(wrap_pyfunction!(fs::write_file_atomic, m)?)?;
    m.add_function(wrap_pyfunction!(fs::hash_file, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_classes, m)?)?;
    m.add_function(wrap_pyfunction!(errors::broken_body_code, m)?)?;
    m.add_class::<layout::PyLayout>()?;
    m.add_function(wrap_pyfunction!(grammar::repository_name_problem, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::valid_tag, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::valid_upload_id, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::is_decimal, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::byte_range, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::content_range, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::upload_continues, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::page_size, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::listing_page, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::tag_listing, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::percent_decode, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::query_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::catalog_order_key, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::accepts, m)?)?;
    m.add_function(wrap_pyfunction!(grammar::manifest_media_type, m)?)?;
    m.add_function(wrap_pyfunction!(manifest::parse_descriptor, m)?)?;
    m.add_function(wrap_pyfunction!(manifest::parse_pushed_manifest, m)?)?;
    m.add("PARALLEL_WRITE_MIN", blocks::PARALLEL_WRITE_MIN)?;
    m.add("UPLOAD_BLOCK", blocks::UPLOAD_BLOCK)?;
    m.add("UPLOAD_SMALL_BLOCK", blocks::UPLOAD_SMALL_BLOCK)?;
    m.add("UPLOAD_LARGE_BODIES_MAX", blocks::UPLOAD_LARGE_BODIES_MAX)?;
    m.add("UPLOAD_INLINE_MAX", blocks::UPLOAD_INLINE_MAX)?;
    m.add("GET_READ_BLOCK", blocks::GET_READ_BLOCK)?;
    m.add("RANGE_READ_ONCE_MAX", blocks::RANGE_READ_ONCE_MAX)?;
    m.add("INGEST_READ_BLOCK", blocks::INGEST_READ_BLOCK)?;
    m.add("NAME_MAX", crate::grammar::NAME_MAX)?;
    m.add("OCI_MANIFEST", crate::manifest::OCI_MANIFEST)?;
    m.add("OCI_INDEX", crate::manifest::OCI_INDEX)?;
    m.add("DOCKER_MANIFEST", crate::manifest::DOCKER_MANIFEST)?;
    m.add(
        "DOCKER_MANIFEST_LIST",
        crate::manifest::DOCKER_MANIFEST_LIST,
    )?;
    m.add(
        "BUILT_IN_MANIFEST_TYPES",
        crate::manifest::BUILT_IN.to_vec(),
    )?;
    m.add(
        "SCHEMA1_MEDIA_TYPES",
        vec![
            crate::manifest::DOCKER_SCHEMA1,
            crate::manifest::DOCKER_SCHEMA1_SIGNED,
        ],
    )?;
    m.add("DESCRIPTOR_SIZE_MAX", crate::descriptor::SIZE_MAX)?;
    Ok(())
}
