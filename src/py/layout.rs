//! `ocistore._core.Layout`: the storage layout's keys (`crate::layout`) for the Python registry
//! services, GC, fsck and the adapters, so that no Python module spells a path of the tree.

use pyo3::prelude::*;

use super::digest::{PyDigest, digest_arg};
use crate::digest::Algorithm;
use crate::layout;

/// The keys of distribution's tree, relative to the storage root (join them to a directory, or
/// use them as object keys). Names and tags must have been checked before.
#[pyclass(frozen, module = "ocistore._core", name = "Layout")]
pub struct PyLayout;

#[pymethods]
impl PyLayout {
    #[classattr]
    const V2: &'static str = layout::V2;
    #[classattr]
    const LINK: &'static str = layout::LINK;
    #[classattr]
    const UPLOAD_DATA: &'static str = layout::upload::DATA;
    #[classattr]
    const UPLOAD_STARTED_AT: &'static str = layout::upload::STARTED_AT;
    #[classattr]
    const UPLOAD_HASH_STATES: &'static str = layout::upload::HASH_STATES;
    #[classattr]
    const REPOSITORY_PARTS: [&'static str; 4] = layout::REPOSITORY_PARTS;

    #[staticmethod]
    fn blobs() -> String {
        layout::blobs()
    }

    #[staticmethod]
    fn blob_data(digest: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::blob_data(&digest_arg(digest)?))
    }

    #[staticmethod]
    fn repositories() -> String {
        layout::repositories()
    }

    #[staticmethod]
    fn repository(name: &str) -> String {
        layout::repository(name)
    }

    /// `<base>/<alg>/<hex>`.
    #[staticmethod]
    fn digest_dir(base: &str, digest: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::digest_dir(base, &digest_arg(digest)?))
    }

    /// `<base>/<alg>/<hex>/link`.
    #[staticmethod]
    fn digest_link(base: &str, digest: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::digest_link(base, &digest_arg(digest)?))
    }

    #[staticmethod]
    fn layers(name: &str) -> String {
        layout::layers(name)
    }

    #[staticmethod]
    fn layer_link(name: &str, digest: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::layer_link(name, &digest_arg(digest)?))
    }

    #[staticmethod]
    fn stored_algorithm(linked_by: &str) -> PyResult<&'static str> {
        Ok(layout::stored_algorithm(Algorithm::parse(linked_by)?).name())
    }

    #[staticmethod]
    fn manifests(name: &str) -> String {
        layout::manifests(name)
    }

    #[staticmethod]
    fn revisions(name: &str) -> String {
        layout::revisions(name)
    }

    #[staticmethod]
    fn revision_link(name: &str, digest: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::revision_link(name, &digest_arg(digest)?))
    }

    #[staticmethod]
    fn tags(name: &str) -> String {
        layout::tags(name)
    }

    #[staticmethod]
    fn tag_dir(name: &str, tag: &str) -> String {
        layout::tag_dir(name, tag)
    }

    #[staticmethod]
    fn tag_current_link(name: &str, tag: &str) -> String {
        layout::tag_current_link(name, tag)
    }

    #[staticmethod]
    fn tag_index_link(name: &str, tag: &str, digest: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::tag_index_link(name, tag, &digest_arg(digest)?))
    }

    #[staticmethod]
    fn referrers(name: &str) -> String {
        layout::referrers(name)
    }

    #[staticmethod]
    fn referrers_of(name: &str, subject: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::referrers_of(name, &digest_arg(subject)?))
    }

    #[staticmethod]
    fn referrer_link(
        name: &str,
        subject: &Bound<'_, PyAny>,
        digest: &Bound<'_, PyAny>,
    ) -> PyResult<String> {
        Ok(layout::referrer_link(
            name,
            &digest_arg(subject)?,
            &digest_arg(digest)?,
        ))
    }

    /// A repository's `_uploads`, or with `None` the store's own.
    #[staticmethod]
    #[pyo3(signature = (name=None))]
    fn uploads(name: Option<&str>) -> String {
        layout::uploads(name)
    }

    #[staticmethod]
    #[pyo3(signature = (name, upload_id))]
    fn upload_data(name: Option<&str>, upload_id: &str) -> String {
        layout::upload_data(name, upload_id)
    }

    #[staticmethod]
    fn hash_state(algorithm: &str, offset: u64) -> String {
        layout::upload::hash_state(algorithm, offset)
    }

    /// Refuses (ValueError) a key that could leave the root or alias another: empty, absolute,
    /// with empty, "." or ".." segments, or control characters.
    #[staticmethod]
    fn check_key(key: &str) -> PyResult<()> {
        Ok(layout::check_key(key)?)
    }

    /// The digest a link's content holds; None when it holds none.
    #[staticmethod]
    fn parse_link(data: &[u8]) -> Option<PyDigest> {
        crate::linked::parse_link(data).map(|inner| PyDigest { inner })
    }

    #[staticmethod]
    fn proxy_fetch(name: &str, digest: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::proxy_fetch(name, &digest_arg(digest)?))
    }

    #[staticmethod]
    fn proxy_referrers(name: &str, digest: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::proxy_referrers(name, &digest_arg(digest)?))
    }

    #[staticmethod]
    fn import_journal(key: &str) -> String {
        layout::import_journal(key)
    }

    #[staticmethod]
    fn proxy_expiry_lock() -> String {
        layout::proxy_expiry_lock()
    }

    #[staticmethod]
    fn blob_aliases() -> String {
        layout::blob_aliases()
    }

    #[staticmethod]
    fn blob_alias(digest: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(layout::blob_alias(&digest_arg(digest)?))
    }

    #[staticmethod]
    fn gc_lock() -> String {
        layout::gc_lock()
    }

    #[staticmethod]
    fn gc_claims() -> String {
        layout::gc_claims()
    }

    #[staticmethod]
    fn gc_lease() -> String {
        layout::gc_lease()
    }

    #[staticmethod]
    fn quarantine() -> String {
        layout::quarantine()
    }
}
