use super::objstore::PyObjectStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::front::{Front, FrontConfig, protocol, tls};

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
    #[pyo3(signature = (host, port, *, upstream, secret, blob_root=None, object_store=None, redirect=true, descriptor_cache=false, uploads=false, manifest_puts=false, deletes=false, manifest_media_types=Vec::new(), authenticate=false, headers=Vec::new(), tls_certificate=None, tls_key=None, tls_minimum="tls1.2", body_idle_timeout=0.0))]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        upstream: PathBuf,
        secret: String,
        blob_root: Option<PathBuf>,
        object_store: Option<Bound<'_, PyObjectStore>>,
        redirect: bool,
        descriptor_cache: bool,
        uploads: bool,
        manifest_puts: bool,
        deletes: bool,
        manifest_media_types: Vec<String>,
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
        let object_store = object_store.map(|store| store.get().remote.clone());
        let config = FrontConfig {
            upstream,
            blob_root,
            // Filesystem storage only, where the front writes: see `FrontConfig::manifest_puts`.
            manifest_puts: manifest_puts && uploads && object_store.is_none(),
            // The same, and see `FrontConfig::deletes`.
            deletes: deletes
                && uploads
                && object_store.is_none()
                && !descriptor_cache
                && !authenticate,
            object_store,
            redirect,
            descriptor_cache,
            uploads,
            manifest_media_types,
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

/// The front's private protocol (`crate::front::protocol`), for the application's half.
#[pyclass(frozen, module = "ocistore._core", name = "FrontProtocol")]
pub struct PyFrontProtocol;

#[pymethods]
impl PyFrontProtocol {
    #[classattr]
    const PATH_PREFIX: &'static str = protocol::PATH_PREFIX;
    #[classattr]
    const OBSERVATIONS_PATH: &'static str = protocol::OBSERVATIONS_PATH;
    #[classattr]
    const AUTHORIZE_PATH: &'static str = protocol::AUTHORIZE_PATH;
    #[classattr]
    const SECRET_HEADER: &'static str = protocol::SECRET_HEADER;
    #[classattr]
    const CLIENT_HEADER: &'static str = protocol::CLIENT_HEADER;
    #[classattr]
    const BODY_BYTES_HEADER: &'static str = protocol::BODY_BYTES_HEADER;
    #[classattr]
    const GRANT_SECONDS_HEADER: &'static str = protocol::GRANT_SECONDS_HEADER;
    #[classattr]
    const USER_HEADER: &'static str = protocol::USER_HEADER;
    #[classattr]
    const TAIL_HEADER: &'static str = protocol::TAIL_HEADER;
    #[classattr]
    const GRANT_SECONDS_MAX: f64 = protocol::GRANT_SECONDS_MAX;

    /// The `TAIL_HEADER` value for `length` bytes from `start` of a blob being fetched.
    #[staticmethod]
    fn tail_order(name: String, digest: String, start: u64, length: u64) -> String {
        let order = protocol::TailOrder {
            name,
            digest,
            start,
            length,
        };
        serde_json::to_string(&order).expect("an order serializes")
    }

    /// A fetch's state file's content (`protocol::FetchState`).
    #[staticmethod]
    #[pyo3(signature = (upload, size, failed, status, generation, verified))]
    fn fetch_state_dumps(
        upload: Option<String>,
        size: Option<u64>,
        failed: Option<String>,
        status: Option<u16>,
        generation: String,
        verified: bool,
    ) -> String {
        protocol::FetchState {
            upload,
            size,
            failed,
            status,
            generation,
            verified,
        }
        .to_json()
    }

    /// `(upload, size, failed, status, generation, verified)` of a state file's content; None
    /// when it holds no state.
    #[staticmethod]
    #[allow(clippy::type_complexity)]
    fn fetch_state_loads(
        data: &[u8],
    ) -> Option<(
        Option<String>,
        Option<u64>,
        Option<String>,
        Option<u16>,
        String,
        bool,
    )> {
        protocol::FetchState::parse(data).map(|s| {
            (
                s.upload,
                s.size,
                s.failed,
                s.status,
                s.generation,
                s.verified,
            )
        })
    }
    #[classattr]
    const BATCH_BYTES_MAX: usize = protocol::BATCH_BYTES_MAX;
}

/// One request the front answered itself (`protocol::Record`).
#[pyclass(frozen, get_all, module = "ocistore._core", name = "FrontRecord")]
pub struct PyFrontRecord {
    route: String,
    method: String,
    status: u16,
    seconds: f64,
    bytes_in: u64,
    bytes_out: u64,
    path: String,
    remote: String,
    port: u16,
    user: Option<String>,
}

/// The records of a batch the front posted; ValueError when it is not one.
#[pyfunction]
pub fn read_front_records(body: &[u8]) -> PyResult<Vec<PyFrontRecord>> {
    let records = protocol::read_records(body)
        .map_err(|e| PyValueError::new_err(format!("unreadable front records: {e}")))?;
    Ok(records
        .into_iter()
        .map(|r| PyFrontRecord {
            route: r.route,
            method: r.method,
            status: r.status,
            seconds: r.seconds,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            path: r.path,
            remote: r.remote,
            port: r.port,
            user: r.user,
        })
        .collect())
}
