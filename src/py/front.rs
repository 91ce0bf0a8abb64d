use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::front::{Front, FrontConfig, tls};

/// The native front (see `ocistore.server.serve`): serves blob GET/HEAD from `blob_root`,
/// writes upload bodies there when `uploads`, and passes everything else to the application on
/// the unix socket `upstream` (which, with `authenticate`, also decides whose credentials the
/// front may serve); with `tls_certificate` and `tls_key` (PEM) it speaks TLS. A request body
/// the client sends nothing of, or a response it takes nothing of, for `body_idle_timeout`
/// seconds ends the request (0: never).
#[pyclass(name = "Front", module = "ocistore._core", frozen)]
pub struct PyFront {
    front: Mutex<Option<Front>>,
    address: SocketAddr,
}

#[pymethods]
impl PyFront {
    #[new]
    #[allow(clippy::too_many_arguments)] // keyword arguments from Python, one per setting
    #[pyo3(signature = (host, port, *, upstream, secret, blob_root=None, uploads=false, authenticate=false, headers=Vec::new(), tls_certificate=None, tls_key=None, tls_minimum="tls1.2", body_idle_timeout=0.0))]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        upstream: PathBuf,
        secret: String,
        blob_root: Option<PathBuf>,
        uploads: bool,
        authenticate: bool,
        headers: Vec<(String, String)>,
        tls_certificate: Option<PathBuf>,
        tls_key: Option<PathBuf>,
        tls_minimum: &str,
        body_idle_timeout: f64,
    ) -> PyResult<Self> {
        let ip = host
            .parse()
            .map_err(|_| PyValueError::new_err(format!("not an IP address: {host:?}")))?;
        let tls = match (tls_certificate, tls_key) {
            (None, None) => None,
            (Some(certificate), Some(key)) => Some(
                tls::server_config(&certificate, &key, tls_minimum)
                    .map_err(PyValueError::new_err)?,
            ),
            _ => {
                return Err(PyValueError::new_err(
                    "TLS needs both a certificate and a key",
                ));
            }
        };
        let config = FrontConfig {
            upstream,
            blob_root,
            uploads,
            authenticate,
            headers,
            secret,
            tls,
            // Zero (or less): no limit.
            body_idle: (body_idle_timeout > 0.0)
                .then(|| Duration::from_secs_f64(body_idle_timeout)),
        };
        let front = py
            .detach(|| Front::start(SocketAddr::new(ip, port), config))
            .map_err(|e| PyOSError::new_err(format!("cannot listen on {host}:{port}: {e}")))?;
        let address = front.address();
        Ok(PyFront {
            front: Mutex::new(Some(front)),
            address,
        })
    }

    /// `(host, port)` the front listens on (the port the system chose for port 0).
    #[getter]
    fn address(&self) -> (String, u16) {
        (self.address.ip().to_string(), self.address.port())
    }

    /// Stops accepting connections and waits up to `drain` seconds for requests in flight.
    #[pyo3(signature = (drain=0.0))]
    fn stop(&self, py: Python<'_>, drain: f64) {
        let front = self.front.lock().expect("no panics while held").take();
        if let Some(mut front) = front {
            py.detach(|| front.stop(Duration::from_secs_f64(drain.max(0.0))));
        }
    }
}
