//! The core's manifest and descriptor grammar (`crate::manifest`, `crate::descriptor`) for the
//! application, which builds its `Manifest` and `Descriptor` objects from what these return.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::descriptor::{Descriptor, Platform};
use crate::manifest::{self, Pushed, Schema};
use crate::py::buffer::InputBuffer;
use crate::py::digest::PyDigest;
use crate::py::errors::{descriptor_error, manifest_error};

fn strings<'py>(py: Python<'py>, items: &Option<Vec<String>>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match items {
        None => py.None().into_bound(py),
        Some(items) => PyList::new(py, items)?.into_any(),
    })
}

fn string_map<'py>(
    py: Python<'py>,
    pairs: &Option<Vec<(String, String)>>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(pairs) = pairs else {
        return Ok(py.None().into_bound(py));
    };
    let dict = PyDict::new(py);
    for (key, value) in pairs {
        dict.set_item(key, value)?;
    }
    Ok(dict.into_any())
}

fn platform<'py>(py: Python<'py>, p: &Platform) -> PyResult<Bound<'py, PyAny>> {
    let fields: [Bound<'py, PyAny>; 6] = [
        p.architecture.clone().into_pyobject(py)?.into_any(),
        p.os.clone().into_pyobject(py)?.into_any(),
        p.os_version.clone().into_pyobject(py)?.into_any(),
        strings(py, &p.os_features)?,
        p.variant.clone().into_pyobject(py)?.into_any(),
        strings(py, &p.features)?,
    ];
    Ok(PyTuple::new(py, fields)?.into_any())
}

/// `(media_type, digest, size, urls, annotations, data, platform, artifact_type)`.
fn descriptor<'py>(py: Python<'py>, d: &Descriptor) -> PyResult<Bound<'py, PyAny>> {
    let fields: [Bound<'py, PyAny>; 8] = [
        d.media_type.clone().into_pyobject(py)?.into_any(),
        // A `Digest` object: the application does not parse the digest again.
        Bound::new(
            py,
            PyDigest {
                inner: d.digest.clone(),
            },
        )?
        .into_any(),
        d.size.into_pyobject(py)?.into_any(),
        strings(py, &d.urls)?,
        string_map(py, &d.annotations)?,
        match &d.data {
            None => py.None().into_bound(py),
            Some(data) => PyBytes::new(py, data).into_any(),
        },
        match &d.platform {
            None => py.None().into_bound(py),
            Some(p) => platform(py, p)?,
        },
        d.artifact_type.clone().into_pyobject(py)?.into_any(),
    ];
    Ok(PyTuple::new(py, fields)?.into_any())
}

fn descriptors<'py>(py: Python<'py>, items: &[Descriptor]) -> PyResult<Bound<'py, PyAny>> {
    let items = items
        .iter()
        .map(|d| descriptor(py, d))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any())
}

/// A descriptor's fields from its JSON document (`Descriptor.from_json`, `from_dict`).
#[pyfunction]
pub fn parse_descriptor<'py>(
    py: Python<'py>,
    payload: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let buf = InputBuffer::new(payload)?;
    let parsed = Descriptor::from_json(buf.as_slice()).map_err(descriptor_error)?;
    descriptor(py, &parsed)
}

/// `(media_type, fields)` of a pushed manifest: `fields` is `(annotations, artifact_type,
/// subject, config, layers, manifests)` for a built-in schema (config and layers None for an
/// index, manifests None for an image manifest), None for another media type.
#[pyfunction]
#[pyo3(signature = (content_type, payload))]
pub fn parse_pushed_manifest<'py>(
    py: Python<'py>,
    content_type: Option<&str>,
    payload: &Bound<'py, PyAny>,
) -> PyResult<(String, Bound<'py, PyAny>)> {
    let buf = InputBuffer::new(payload)?;
    let manifest =
        match manifest::parse_pushed(content_type, buf.as_slice()).map_err(manifest_error)? {
            Pushed::Other { media_type } => return Ok((media_type, py.None().into_bound(py))),
            Pushed::BuiltIn(manifest) => manifest,
        };
    let none = || py.None().into_bound(py);
    let (config, layers, manifests) = match &manifest.schema {
        Schema::Image { config, layers } => {
            (descriptor(py, config)?, descriptors(py, layers)?, none())
        }
        Schema::Index { manifests } => (none(), none(), descriptors(py, manifests)?),
    };
    let fields: [Bound<'py, PyAny>; 6] = [
        string_map(py, &manifest.annotations)?,
        manifest.artifact_type.clone().into_pyobject(py)?.into_any(),
        match &manifest.subject {
            None => none(),
            Some(subject) => descriptor(py, subject)?,
        },
        config,
        layers,
        manifests,
    ];
    Ok((manifest.media_type, PyTuple::new(py, fields)?.into_any()))
}
