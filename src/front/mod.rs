//! The native front: an HTTP/1.1 server (hyper) that owns the registry's listening socket,
//! answers blob GET and HEAD from the filesystem itself, and passes every other request to the
//! Python application listening on a unix socket.
//!
//! Why: the Python server's floor (about 0.8 ms for a HEAD that does nothing, 1-2 GB/s for a
//! body) is the registry's floor; reads of blobs are most of a registry's traffic and need no
//! Python at all once the repository's link is checked.

pub mod blob;
mod observe;
mod proxy;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, Notify, watch};

use observe::{OBSERVATIONS_PATH, Observations, Observed, Record};
use proxy::Upstream;

/// A response body, from disk or from the application.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// How often records of requests the front answered go to the application.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A client that has not sent a whole request head by then is disconnected (as granian does),
/// so idle or trickling connections cannot pile up.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the front is told at start.
pub struct FrontConfig {
    /// The application's unix socket.
    pub upstream: PathBuf,
    /// The filesystem storage root whose blobs the front serves; None sends every request on
    /// (the application then checks authentication, or storage is not local).
    pub blob_root: Option<PathBuf>,
    /// `http.headers` of the configuration, added to every response the front makes.
    pub headers: Vec<(String, String)>,
    /// Proves to the application that a request came through the front.
    pub secret: String,
}

struct Shared {
    config: FrontConfig,
    secret: HeaderValue,
    observations: Arc<Observations>,
    connections: AtomicUsize,
    idle: Notify,
}

/// A running front; `stop` ends it.
pub struct Front {
    runtime: Option<Runtime>,
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    shared: Arc<Shared>,
}

impl Front {
    /// Binds `listen` (before returning, so a busy port fails here) and starts serving on
    /// threads of the front's own runtime.
    pub fn start(listen: SocketAddr, config: FrontConfig) -> std::io::Result<Front> {
        let secret = HeaderValue::from_str(&config.secret)
            .map_err(|_| std::io::Error::other("the front's secret must be visible ASCII"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ocistore-front")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind(listen))?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            secret,
            observations: Arc::default(),
            connections: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let (shutdown, stopped) = watch::channel(false);
        runtime.spawn(accept_loop(listener, shared.clone(), stopped.clone()));
        runtime.spawn(flush_loop(shared.clone(), stopped));
        Ok(Front {
            runtime: Some(runtime),
            address,
            shutdown,
            shared,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets requests in flight finish for up to `drain`, then sends the last
    /// records to the application (if it still answers) and ends the runtime.
    pub fn stop(&mut self, drain: Duration) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let _ = self.shutdown.send(true);
        let shared = self.shared.clone();
        runtime.block_on(async move {
            let deadline = tokio::time::Instant::now() + drain;
            while shared.connections.load(Ordering::Acquire) > 0 {
                let idle = shared.idle.notified();
                if shared.connections.load(Ordering::Acquire) == 0 {
                    break;
                }
                if tokio::time::timeout_at(deadline, idle).await.is_err() {
                    break;
                }
            }
            let flush = shared
                .observations
                .flush(&shared.config.upstream, &shared.secret);
            let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
        });
        runtime.shutdown_timeout(Duration::from_millis(100));
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                shared.connections.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    shared.clone(),
                    stopped.clone(),
                ));
            }
            // Out of descriptors or a connection reset before accept: keep serving the others.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn flush_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
            _ = stopped.changed() => return,
        }
        shared
            .observations
            .flush(&shared.config.upstream, &shared.secret)
            .await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let upstream = Arc::new(Mutex::new(Upstream::default()));
    let service_shared = shared.clone();
    let service = service_fn(move |request| {
        let (shared, upstream) = (service_shared.clone(), upstream.clone());
        async move { Ok::<_, Infallible>(handle(request, peer, &shared, &upstream).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
    if shared.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
        shared.idle.notify_waiters();
    }
}

async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    upstream: &Mutex<Upstream>,
) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path();
    if let Some(root) = &shared.config.blob_root
        && (method == Method::GET || method == Method::HEAD)
        && let Some(found) = blob::lookup(root, path, request.headers())
    {
        let response = blob::respond(found, &method, &shared.config.headers);
        let status = response.status();
        let record = Record {
            method,
            status,
            path: path.to_owned(),
            peer,
            started,
        };
        return response
            .map(|body| Observed::new(body, record, shared.observations.clone()).boxed());
    }
    // Only the front itself may post observations: from outside, that path goes on without the
    // secret, and the application answers it as the unknown endpoint it then is.
    let secret = (path != OBSERVATIONS_PATH).then_some(&shared.secret);
    if path == "/metrics" {
        shared
            .observations
            .flush(&shared.config.upstream, &shared.secret)
            .await;
    }
    let mut upstream = upstream.lock().await;
    upstream
        .forward(request, peer, &shared.config.upstream, secret)
        .await
}
