//! The native front: an HTTP/1.1 server (hyper) that owns the registry's listening socket,
//! answers blob GET and HEAD from storage itself (a filesystem, or object storage: there a GET
//! may be a redirect to the store), starts uploads and writes upload bodies
//! into them (committing a PUT), and passes every other request, and every case out of the
//! plain one, to the Python application listening on a unix socket.
//!
//! Why: the Python server's floor (about 0.8 ms for a HEAD that does nothing, 1-2 GB/s for a
//! body) was the registry's floor; blob reads and pushes are most of a registry's traffic and
//! need no Python once the repository's link (or the upload) is checked.

pub mod blob;
mod deletes;
mod grants;
mod idle;
pub mod manifest;
mod observe;
pub mod protocol;
mod proxy;
mod splice;
mod tags;
mod tail;
pub mod tls;
pub mod upload;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, Notify, watch};
use tokio_rustls::TlsAcceptor;

use crate::digest::Digest;
use crate::error::ErrorCode;
use crate::grammar;
use crate::linked;
use crate::objstore::{ObjectBlobs, Remote};
use crate::storage::Storage;
use crate::store::backend::FsBlobs;
use idle::{BodyError, IdleBody, WriteStallGuard};
use observe::{Observations, Observed, Record, Who};
use proxy::Upstream;
use splice::{Pipe, SplicingStream, StoreConnections};

/// A response body, from disk or from the application.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// How often records of requests the front answered go to the application.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A client that has not finished the TLS handshake, or sent a whole request head, by then is
/// disconnected (as granian does), so idle or trickling connections cannot pile up.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the front is told at start.
pub struct FrontConfig {
    /// The application's unix socket.
    pub upstream: PathBuf,
    /// The filesystem storage root whose blobs the front serves; None sends every request on
    /// (the application then checks authentication), unless `object_store` is given.
    pub blob_root: Option<PathBuf>,
    /// Object storage whose blobs the front serves (instead of `blob_root`).
    pub object_store: Option<Arc<Remote>>,
    /// On object storage, whether a blob GET is answered with a redirect to a presigned URL
    /// (`storage.redirect`) rather than streamed through.
    pub redirect: bool,
    /// The application has a blob descriptor cache (`storage.cache.blobdescriptor`), which
    /// answers a lookup without the front's two round trips to object storage: there the front
    /// leaves it the HEADs and redirected GETs, and streams only proxied GETs itself.
    pub descriptor_cache: bool,
    /// Whether the front writes upload bodies into `blob_root` (not in read-only mode).
    pub uploads: bool,
    /// Whether the front stores plain manifest PUTs itself (see `manifest::put`): only with
    /// `uploads` on filesystem storage, and only where the application's validation requires
    /// every blob an image manifest references, which is the only check the front makes beyond
    /// the schema.
    pub manifest_puts: bool,
    /// Whether the front takes manifest DELETEs by digest and blob DELETEs itself (see
    /// `deletes`): only with `uploads` on filesystem storage with deletes enabled, without a
    /// blob descriptor cache (the application's, which must forget what is deleted) and
    /// without authentication (a delete needs its own grant, which only the application
    /// checks).
    pub deletes: bool,
    /// The manifest media types the application serves: on filesystem storage the front
    /// answers manifest GETs and HEADs of these, and tag listings, itself; empty: it leaves
    /// manifests and tags to the application (a pull-through cache, whose tags are the
    /// upstream's).
    pub manifest_media_types: Vec<String>,
    /// Whether the application checks credentials (the front then asks it, see `grants`).
    pub authenticate: bool,
    /// `http.headers` of the configuration, added to every response the front makes.
    pub headers: Vec<(String, String)>,
    /// Proves to the application that a request came through the front.
    pub secret: String,
    /// TLS on the listening socket (`http.tls`); None: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// A request body the client sends nothing of, or a response it takes nothing of, for this
    /// long ends the request (`http.bodyidletimeout`); None: never.
    pub body_idle: Option<Duration>,
}

/// The client address the front gives for its own requests to the application.
pub const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

struct Shared {
    config: FrontConfig,
    /// The storage of `config.blob_root`, through the seam every backend implements.
    storage: Option<Storage>,
    grants: Option<grants::Grants>,
    secret: HeaderValue,
    observations: Arc<Observations>,
    connections: AtomicUsize,
    idle: Notify,
    /// Connections to the object store for spliced GETs.
    store_connections: Arc<StoreConnections>,
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
        let storage = match (&config.object_store, &config.blob_root) {
            (Some(remote), _) => Some(Storage::new(Arc::new(ObjectBlobs::new(remote.clone())))),
            (None, Some(root)) => Some(Storage::new(Arc::new(FsBlobs::new(root.clone())))),
            (None, None) => None,
        };
        let shared = Arc::new(Shared {
            storage,
            grants: config.authenticate.then(grants::Grants::default),
            config,
            secret,
            observations: Arc::default(),
            connections: AtomicUsize::new(0),
            idle: Notify::new(),
            store_connections: Arc::default(),
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
                let _ = stream.set_nodelay(true);
                let stream = SplicingStream::new(stream);
                let pipe = stream.pipe();
                let stream = WriteStallGuard::new(stream, shared.config.body_idle);
                shared.connections.fetch_add(1, Ordering::AcqRel);
                let (shared, stopped) = (shared.clone(), stopped.clone());
                tokio::spawn(async move {
                    match shared.config.tls.clone() {
                        None => serve_connection(stream, peer, &shared, stopped, Some(pipe)).await,
                        Some(tls) => {
                            let handshake = TlsAcceptor::from(tls).accept(stream);
                            // A handshake that fails or stalls ends the connection, nothing else.
                            if let Ok(Ok(stream)) =
                                tokio::time::timeout(HEADER_READ_TIMEOUT, handshake).await
                            {
                                serve_connection(stream, peer, &shared, stopped, None).await;
                            }
                        }
                    }
                    if shared.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
                        shared.idle.notify_waiters();
                    }
                });
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

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    pipe: Option<Arc<Pipe>>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let upstream = Arc::new(Mutex::new(Upstream::default()));
    let service_shared = shared.clone();
    // Spliced bodies need hyper's queue strategy, which writes each body buffer as given.
    let writev = pipe.is_some();
    let service = service_fn(move |request| {
        let (shared, upstream, pipe) = (service_shared.clone(), upstream.clone(), pipe.clone());
        async move {
            let answer = handle(request, peer, &shared, &upstream, pipe.as_ref()).await;
            Ok::<_, Infallible>(answer)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .writev(writev)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    upstream: &Mutex<Upstream>,
    pipe: Option<&Arc<Pipe>>,
) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if let Some(storage) = &shared.storage
        && let Some((name, push)) = own_request(&request, &shared.config)
        && let Some(user) = authorized(&request, &name, push, shared, upstream).await
    {
        let who = Who {
            peer,
            started,
            user,
        };
        if (method == Method::GET || method == Method::HEAD)
            && shared.config.object_store.is_none()
            && let Some(found) = manifest::lookup(
                storage,
                &path,
                request.headers(),
                &shared.config.manifest_media_types,
            )
        {
            let response = manifest::respond(found, &method, &shared.config.headers);
            let record = Record::new("manifest", &method, response.status(), &path, &who);
            return response
                .map(|body| Observed::new(body, record, shared.observations.clone()).boxed());
        }
        if (method == Method::GET || method == Method::HEAD)
            && let Some(response) = blob_answer(storage, &request, shared, pipe).await
        {
            let record = Record::new("blob", &method, response.status(), &path, &who);
            return response
                .map(|body| Observed::new(body, record, shared.observations.clone()).boxed());
        }
        if method == Method::GET
            && let Some(tags_of) = tags::parse_tags_path(&path)
        {
            let query = request.uri().query();
            if let Some((body, link)) = tags::list(storage, tags_of, query) {
                let response = tags::respond(body, link, &shared.config.headers);
                let record = Record::new("tags", &method, response.status(), &path, &who);
                return response
                    .map(|body| Observed::new(body, record, shared.observations.clone()).boxed());
            }
        }
        if method == Method::DELETE
            && shared.config.deletes
            && let Some(target) = deletes::target(&path)
        {
            let route = target.route();
            let storage = storage.clone();
            let deleted = tokio::task::spawn_blocking(move || deletes::delete(&storage, &target));
            if deleted.await.unwrap_or(false) {
                let record = Record::new(route, &method, StatusCode::ACCEPTED, &path, &who);
                return answer(shared, StatusCode::ACCEPTED, Vec::new(), record);
            }
        }
        if method == Method::POST
            && let Some(response) = native_start(storage, &name, &path, &who, shared).await
        {
            return response;
        }
        if method == Method::PUT
            && shared.config.manifest_puts
            && let Some(target) =
                manifest::put_target(&path, request.uri().query(), request.headers())
        {
            return native_manifest_put(request, target, &who, shared, upstream).await;
        }
        if let Some(claimed) = claim_upload(storage, &request).await {
            let mut upstream = upstream.lock().await;
            return native_upload(request, claimed, &name, &who, shared, &mut upstream).await;
        }
    }
    // Only the front itself may post observations or ask for grants: from outside, those paths
    // go on without the secret, and the application answers them as the unknown endpoints
    // they then are.
    let secret = (!path.starts_with(protocol::PATH_PREFIX)).then_some(&shared.secret);
    if path == "/metrics" {
        shared
            .observations
            .flush(&shared.config.upstream, &shared.secret)
            .await;
    }
    let idle = shared.config.body_idle;
    let request = request.map(|body| {
        IdleBody::new(body, idle)
            .map_err(std::io::Error::other)
            .boxed()
    });
    let mut upstream = upstream.lock().await;
    let answer = upstream
        .forward(request, peer, &shared.config.upstream, secret)
        .await;
    // A blob the application's pull-through cache is fetching: the body is the front's to send.
    if let (Some(order), Some(storage), Some(root)) = (
        tail::order_of(&answer),
        &shared.storage,
        &shared.config.blob_root,
    ) {
        return tail::respond(storage, root, order, answer);
    }
    answer
}

/// The answer to a blob GET or HEAD the front may give itself; None sends it on. `pipe`: the
/// connection's, when a body proxied from object storage may be spliced into it.
async fn blob_answer(
    storage: &Storage,
    request: &Request<Incoming>,
    shared: &Shared,
    pipe: Option<&Arc<Pipe>>,
) -> Option<Response<Body>> {
    let (method, extra) = (request.method(), &shared.config.headers);
    let config = &shared.config;
    let Some(remote) = &config.object_store else {
        // Inline, not on the blocking pool: a link read, an open and a stat on a local
        // filesystem take microseconds, less than the hop (the application decided the same).
        let found = blob::lookup(storage, request.uri().path(), request.headers())?;
        return Some(blob::respond(found, method, extra));
    };
    if config.descriptor_cache && (*method == Method::HEAD || config.redirect) {
        return None;
    }
    let found =
        blob::lookup_remote(remote.clone(), request.uri().path(), request.headers()).await?;
    let splicing = pipe.map(|pipe| (pipe, &shared.store_connections));
    blob::respond_remote(found, method, extra, remote, config.redirect, splicing).await
}

/// The repository of a request the front may answer itself, and whether it writes: a blob
/// GET or HEAD; a manifest GET or HEAD when it serves manifests; with `uploads`, a plain upload
/// POST, or a PATCH or PUT of an upload.
fn own_request(request: &Request<Incoming>, config: &FrontConfig) -> Option<(String, bool)> {
    let path = request.uri().path();
    let method = request.method();
    if *method == Method::GET || *method == Method::HEAD {
        // `ns` (the spec's registry proxying) may name another repository than the path's:
        // a pull-through cache's application chooses.
        if grammar::query_param(request.uri().query().unwrap_or(""), "ns").is_some() {
            return None;
        }
        if let Some((name, _)) = blob::parse_blob_path(path) {
            return Some((name.to_owned(), false));
        }
        if config.manifest_media_types.is_empty() || config.object_store.is_some() {
            return None;
        }
        if *method == Method::GET
            && let Some(name) = tags::parse_tags_path(path)
        {
            return Some((name.to_owned(), false));
        }
        return manifest::parse_manifest_path(path).map(|(name, _)| (name.to_owned(), false));
    }
    if *method == Method::DELETE {
        let target = deletes::target(path).filter(|_| config.deletes)?;
        return Some((target.name().to_owned(), true));
    }
    if !config.uploads {
        return None;
    }
    if *method == Method::POST {
        return plain_post(request).map(|name| (name.to_owned(), true));
    }
    if *method == Method::PUT
        && config.manifest_puts
        && let Some((name, _)) = manifest::parse_manifest_path(path)
    {
        return Some((name.to_owned(), true));
    }
    if *method == Method::PATCH || *method == Method::PUT {
        return upload::parse_upload_path(path).map(|(name, _)| (name.to_owned(), true));
    }
    None
}

/// `Some(user)` when the request may be answered here: always without auth, else when the
/// application grants its credentials the access (see `grants`).
async fn authorized(
    request: &Request<Incoming>,
    name: &str,
    push: bool,
    shared: &Shared,
    upstream: &Mutex<Upstream>,
) -> Option<Option<String>> {
    let Some(grants) = &shared.grants else {
        return Some(None);
    };
    let authorization = request.headers().get(http::header::AUTHORIZATION);
    let mut upstream = upstream.lock().await;
    grants
        .check(
            authorization,
            name,
            push,
            &mut upstream,
            &shared.config.upstream,
            &shared.secret,
        )
        .await
}

/// The upload a PATCH, or a PUT with a digest to commit to, writes into, when the front may
/// take it (see `upload::claim`).
async fn claim_upload(storage: &Storage, request: &Request<Incoming>) -> Option<upload::Claimed> {
    let method = request.method();
    if *method != Method::PATCH && *method != Method::PUT {
        return None;
    }
    let (name, id) = upload::parse_upload_path(request.uri().path())?;
    if *method == Method::PUT {
        grammar::query_param(request.uri().query()?, "digest")?;
    }
    let (storage, name, id) = (storage.clone(), name.to_owned(), id.to_owned());
    let headers = request.headers().clone();
    tokio::task::spawn_blocking(move || upload::claim(&storage, &name, &id, &headers))
        .await
        .ok()
        .flatten()
}

/// The repository a plain POST (no query, no body) starts an upload in.
fn plain_post(request: &Request<Incoming>) -> Option<&str> {
    if request.method() != Method::POST || request.uri().query().is_some() {
        return None;
    }
    let headers = request.headers();
    let empty = headers.get(http::header::TRANSFER_ENCODING).is_none()
        && headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0");
    let path = request.uri().path().strip_prefix("/v2/")?;
    let name = path
        .strip_suffix("/blobs/uploads/")
        .or_else(|| path.strip_suffix("/blobs/uploads"))?;
    (empty && grammar::valid_name(name)).then_some(name)
}

fn answer(
    shared: &Shared,
    status: StatusCode,
    headers: Vec<(http::HeaderName, String)>,
    record: Record,
) -> Response<Body> {
    let mut builder = response_builder(&shared.config.headers).status(status);
    for (header, value) in headers {
        builder = builder.header(header, value);
    }
    builder
        .header(http::header::CONTENT_LENGTH, 0)
        .body(Observed::new(empty(), record, shared.observations.clone()).boxed())
        .expect("formatted header values are valid")
}

/// An error answer of the front's own, with the status of `record`, which it is recorded as.
fn error_answer(
    shared: &Shared,
    record: Record,
    code: ErrorCode,
    message: &str,
    detail: serde_json::Value,
) -> Response<Body> {
    proxy::api_error_detail(record.status, code, message, detail)
        .map(|body| Observed::new(body, record, shared.observations.clone()).boxed())
}

/// A storage failure, worded as the application words it (`http.error_response`).
fn storage_failed(error: &crate::error::StoreError) -> String {
    format!("the registry's storage failed: {error}")
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// How every answer of the front's own begins, as the application's do: the API version, then
/// the configuration's `http.headers` (`extra`).
fn response_builder(extra: &[(String, String)]) -> http::response::Builder {
    let mut builder = Response::builder().header("Docker-Distribution-API-Version", "registry/2.0");
    for (name, value) in extra {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
}

fn upload_headers(name: &str, id: &str, size: u64) -> Vec<(http::HeaderName, String)> {
    vec![
        (
            http::header::LOCATION,
            format!("/v2/{name}/blobs/uploads/{id}"),
        ),
        (http::header::RANGE, format!("0-{}", size.saturating_sub(1))),
        (
            http::HeaderName::from_static("docker-upload-uuid"),
            id.to_owned(),
        ),
    ]
}

/// A POST that starts an upload, answered as the application answers it.
async fn native_start(
    storage: &Storage,
    name: &str,
    path: &str,
    who: &Who,
    shared: &Shared,
) -> Option<Response<Body>> {
    let (storage, owned) = (storage.clone(), name.to_owned());
    let id = tokio::task::spawn_blocking(move || upload::start(&storage, &owned))
        .await
        .ok()?
        .ok()?; // a failure goes to the application, which reports it
    let record = Record::new(
        "upload_start",
        &Method::POST,
        StatusCode::ACCEPTED,
        path,
        who,
    );
    Some(answer(
        shared,
        StatusCode::ACCEPTED,
        upload_headers(name, &id, 0),
        record,
    ))
}

/// Sends a request the front took up but leaves to the application on, as the front's own
/// (with the secret and the client's address).
async fn pass_on(
    upstream: &mut Upstream,
    request: Request<Body>,
    who: &Who,
    shared: &Shared,
) -> Response<Body> {
    let secret = Some(&shared.secret);
    upstream
        .forward(request, who.peer, &shared.config.upstream, secret)
        .await
}

/// A manifest PUT: the body read whole, then stored here when it is the plain case
/// (`manifest::put`), else sent on to the application with it.
async fn native_manifest_put(
    request: Request<Incoming>,
    target: manifest::PutTarget,
    who: &Who,
    shared: &Shared,
    upstream: &Mutex<Upstream>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let payload = match IdleBody::new(body, shared.config.body_idle).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(failure) => {
            // Answered as the application answers a manifest whose body broke off.
            let (status, code, message) = match failure {
                BodyError::Stalled(idle) => idle::stalled_answer(idle),
                broken => {
                    let code = ErrorCode::for_broken_body(&path);
                    (code.status(), code, broken.to_string())
                }
            };
            let record = Record::new("manifest", &Method::PUT, status, &path, who);
            return error_answer(shared, record, code, &message, serde_json::Value::Null);
        }
    };
    let storage = shared
        .storage
        .clone()
        .expect("manifest PUTs need the storage");
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let (body, name) = (payload.clone(), target.name.clone());
    let stored = tokio::task::spawn_blocking(move || {
        manifest::put(&storage, &target, content_type.as_deref(), &body)
    })
    .await
    .unwrap_or_else(|join| Err(upload::joined(join)));
    let mut record = Record::new("manifest", &Method::PUT, StatusCode::CREATED, &path, who);
    record.bytes_in = payload.len() as u64;
    match stored {
        Ok(Some(stored)) => {
            let digest = stored.digest.to_string();
            let mut headers = vec![
                (
                    http::header::LOCATION,
                    format!("/v2/{name}/manifests/{digest}"),
                ),
                (
                    http::HeaderName::from_static("docker-content-digest"),
                    digest,
                ),
            ];
            if let Some(subject) = stored.subject {
                headers.push((
                    http::HeaderName::from_static("oci-subject"),
                    subject.to_string(),
                ));
            }
            answer(shared, StatusCode::CREATED, headers, record)
        }
        Err(error) => {
            let code = ErrorCode::Unknown;
            record.status = code.status();
            error_answer(
                shared,
                record,
                code,
                &storage_failed(&error),
                serde_json::Value::Null,
            )
        }
        Ok(None) => {
            // Not the plain case: the application decides, on the same bytes.
            let body = Full::new(payload).map_err(|never| match never {}).boxed();
            let request = Request::from_parts(parts, body);
            pass_on(&mut *upstream.lock().await, request, who, shared).await
        }
    }
}

/// Receives the body into the claimed upload; a PATCH is then answered here, a PUT committed
/// here, or, when that fails, sent on to the application without its body to commit (and to
/// answer the failure as it does).
async fn native_upload(
    request: Request<Incoming>,
    claimed: upload::Claimed,
    name: &str,
    who: &Who,
    shared: &Shared,
    upstream: &mut Upstream,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let id = claimed.upload.id().to_owned();
    let method = parts.method.clone();
    let body = IdleBody::new(body, shared.config.body_idle);
    let received = match upload::receive(claimed, body).await {
        Ok(received) => received,
        Err(failure) => {
            let (status, code, message) = match failure {
                upload::Failure::Body(BodyError::Stalled(idle)) => idle::stalled_answer(idle),
                upload::Failure::Body(error) => (
                    ErrorCode::BlobUploadInvalid.status(),
                    ErrorCode::BlobUploadInvalid,
                    format!("{error}; what arrived is kept"),
                ),
                upload::Failure::Store(error) => (
                    ErrorCode::Unknown.status(),
                    ErrorCode::Unknown,
                    storage_failed(&error),
                ),
            };
            let record = Record::new("upload", &method, status, &path, who);
            return error_answer(shared, record, code, &message, serde_json::Value::Null);
        }
    };
    let bytes = received.bytes;
    // Only a PUT commits (the application ignores a digest on a PATCH too).
    let digest = (method == Method::PUT)
        .then(|| {
            parts
                .uri
                .query()
                .and_then(|q| grammar::query_param(q, "digest"))
        })
        .flatten()
        .and_then(|d| Digest::parse(&d).ok());
    let storage = shared.storage.clone().expect("uploads need the storage");
    let commit_name = name.to_owned();
    let finished = tokio::task::spawn_blocking(move || {
        let upload::Received {
            mut claimed, tail, ..
        } = received;
        let written = claimed.upload.write(&tail);
        upload::give_back(tail);
        let committed = match (&written, digest) {
            (Ok(()), Some(digest)) => {
                let links = &*storage.links;
                match linked::commit(links, &mut *claimed.upload, &commit_name, &digest, None) {
                    Ok(_) => Some(Ok(digest)),
                    Err(linked::Commit::Refused(_)) => None,
                    Err(linked::Commit::Vanished) => Some(Err(digest)),
                    Err(linked::Commit::Failed(error)) => return Err(error),
                }
            }
            _ => None,
        };
        let size = claimed.upload.size();
        if committed.is_none() {
            // A PATCH, or a commit left to the application: keep the upload resumable.
            let _ = claimed.upload.close(false);
        }
        written.map(|()| (committed, size))
    })
    .await
    .unwrap_or_else(|join| Err(upload::joined(join)));
    let mut record = Record::new("upload", &method, StatusCode::ACCEPTED, &path, who);
    record.bytes_in = bytes;
    match finished {
        Err(error) => {
            let code = ErrorCode::Unknown;
            record.status = code.status();
            let message = storage_failed(&error);
            error_answer(shared, record, code, &message, serde_json::Value::Null)
        }
        Ok((_, size)) if method == Method::PATCH => answer(
            shared,
            StatusCode::ACCEPTED,
            upload_headers(name, &id, size),
            record,
        ),
        Ok((Some(Err(digest)), _)) => {
            let code = ErrorCode::BlobUnknown;
            record.status = code.status();
            let message = format!("blob unknown to registry: {digest}");
            let detail = serde_json::json!({"digest": digest.to_string()});
            error_answer(shared, record, code, &message, detail)
        }
        Ok((Some(Ok(digest)), _)) => {
            record.status = StatusCode::CREATED;
            let headers = vec![
                (http::header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
                (
                    http::HeaderName::from_static("docker-content-digest"),
                    digest.to_string(),
                ),
            ];
            answer(shared, StatusCode::CREATED, headers, record)
        }
        Ok((None, _)) => {
            // The PUT, its body in the upload: the application commits, or answers why not
            // (and counts the bytes it did not see).
            for header in [
                http::header::CONTENT_LENGTH,
                http::header::CONTENT_RANGE,
                http::header::CONTENT_TYPE,
            ] {
                parts.headers.remove(header);
            }
            parts
                .headers
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(0));
            parts
                .headers
                .insert(proxy::BODY_BYTES_HEADER, HeaderValue::from(bytes));
            let request = Request::from_parts(parts, empty());
            pass_on(upstream, request, who, shared).await
        }
    }
}
