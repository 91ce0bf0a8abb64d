//! The registry's grammars (`crate::grammar`) for the Python application, which words the
//! errors; the native front judges requests with the same functions.

use pyo3::prelude::*;

use crate::grammar::{self, ByteRange, NameProblem};

/// Why `name` is not a repository name, as `(kind, detail)`: `("empty", "")`,
/// `("too_long", "<length>")` or `("component", "<the bad component>")`; None when it is one.
#[pyfunction]
pub fn repository_name_problem(name: &str) -> Option<(&'static str, String)> {
    match grammar::repository_name(name) {
        Ok(()) => None,
        Err(NameProblem::Empty) => Some(("empty", String::new())),
        Err(NameProblem::TooLong(length)) => Some(("too_long", length.to_string())),
        Err(NameProblem::Component(component)) => Some(("component", component)),
    }
}

#[pyfunction]
pub fn valid_tag(tag: &str) -> bool {
    grammar::valid_tag(tag)
}

#[pyfunction]
pub fn valid_upload_id(upload_id: &str) -> bool {
    grammar::valid_upload_id(upload_id)
}

/// ASCII digits only (`str.isdigit` also takes other scripts' digits, which `int` refuses).
#[pyfunction]
pub fn is_decimal(text: &str) -> bool {
    grammar::is_decimal(text)
}

/// A `Range` header against a blob of `size` bytes: None when it is to be ignored (the whole
/// blob is served), `(start, length)` when satisfiable, `(size, 0)` when not (416).
#[pyfunction]
pub fn byte_range(header: &str, size: u64) -> Option<(u64, u64)> {
    match grammar::byte_range(header, size) {
        ByteRange::Ignored => None,
        ByteRange::Unsatisfiable => Some((size, 0)),
        ByteRange::Satisfiable { start, length } => Some((start, length)),
    }
}

/// `(start, end)`, inclusive, of a PATCH's `Content-Range`; None when malformed.
#[pyfunction]
pub fn content_range(header: &str) -> Option<(u64, u64)> {
    grammar::content_range(header)
}

/// Whether a chunk of `range` (and `Content-Length` `length`) continues an upload of `size`.
#[pyfunction]
#[pyo3(signature = (range, length, size))]
pub fn upload_continues(range: (u64, u64), length: Option<&str>, size: u64) -> bool {
    grammar::continues(range, length, size)
}

/// The pagination `n`: None for absent or empty, the number, or ValueError.
#[pyfunction]
#[pyo3(signature = (raw))]
pub fn page_size(raw: Option<&str>) -> PyResult<Option<u64>> {
    grammar::page_size(raw).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!("invalid page size n={raw:?}"))
    })
}

/// A listing's page (`crate::listing::page`): the first `n` of `items` and the `Link` to the
/// next page, or None.
#[pyfunction]
#[pyo3(signature = (items, n, path))]
pub fn listing_page(
    items: Vec<String>,
    n: Option<u64>,
    path: &str,
) -> (Vec<String>, Option<String>) {
    crate::listing::page(items, n, path)
}

/// A tag listing's body and the `Link` to its next page (`crate::listing::tag_page`).
#[pyfunction]
#[pyo3(signature = (name, tags, n, last))]
pub fn tag_listing(
    name: &str,
    tags: Vec<String>,
    n: Option<u64>,
    last: Option<&str>,
) -> (String, Option<String>) {
    crate::listing::tag_page(name, tags, n, last)
}

/// The catalog's sort key: component by component, as distribution orders it.
#[pyfunction]
pub fn catalog_order_key(name: &str) -> String {
    grammar::catalog_order_key(name)
}

#[pyfunction]
#[pyo3(signature = (text, plus_is_space=false))]
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    grammar::percent_decode(text, plus_is_space)
}

/// The decoded `key=value` pairs of a query string, in order.
#[pyfunction]
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    grammar::query_pairs(query)
}

/// Whether `Accept` header values admit `media_type` (no value admits everything).
#[pyfunction]
pub fn accepts(headers: Vec<String>, media_type: &str) -> bool {
    grammar::accepts(headers.iter().map(String::as_str), media_type)
}

/// The media type a manifest's payload declares or its shape tells (`crate::manifest`).
#[pyfunction]
pub fn manifest_media_type(payload: &[u8]) -> Option<String> {
    crate::manifest::media_type(payload)
}
