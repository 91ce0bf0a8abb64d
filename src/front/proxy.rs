//! Requests the front does not answer itself go to the application over a unix socket: one
//! upstream connection per client connection (HTTP/1.1 requests on a connection come one at a
//! time, so no pool is needed), opened when first needed and again when the application closed it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::Body;
use super::idle::BodyError;
use crate::error::ErrorCode;

pub use super::protocol::{BODY_BYTES_HEADER, CLIENT_HEADER, SECRET_HEADER};
/// How long a request waits for the application's socket to appear (the front starts first).
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// Headers of one hop only (RFC 9110 7.6.1), plus `Expect`, which the front has answered.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Names listed in Connection are hop-by-hop too.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Opens a connection to the application, waiting while its socket is not there yet.
async fn connect(socket: &Path) -> std::io::Result<SendRequest<Body>> {
    let deadline = Instant::now() + CONNECT_PATIENCE;
    let stream = loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => break stream,
            Err(error)
                if Instant::now() < deadline
                    && matches!(
                        error.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error),
        }
    };
    let (sender, connection) = handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        // Ends when either side closes; a failure shows up in the request that meets it.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The upstream connection of one client connection.
#[derive(Default)]
pub struct Upstream {
    sender: Option<SendRequest<Body>>,
}

impl Upstream {
    async fn ready(&mut self, socket: &Path) -> std::io::Result<&mut SendRequest<Body>> {
        if let Some(sender) = self.sender.as_mut()
            && sender.ready().await.is_ok()
        {
            return Ok(self.sender.as_mut().expect("checked above"));
        }
        self.sender = Some(connect(socket).await?);
        Ok(self.sender.as_mut().expect("just set"))
    }

    /// Sends `request` to the application and returns its response, or a 502 that says why.
    pub async fn forward(
        &mut self,
        request: Request<Body>,
        peer: SocketAddr,
        socket: &Path,
        secret: Option<&HeaderValue>,
    ) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let broken_code = ErrorCode::for_broken_body(parts.uri.path());
        strip_hop_by_hop(&mut parts.headers);
        // A client's own copies never pass; the front's go with the secret only.
        if secret.is_none() {
            parts.headers.remove(BODY_BYTES_HEADER);
        }
        parts.headers.remove(SECRET_HEADER);
        parts.headers.remove(CLIENT_HEADER);
        if let Some(secret) = secret {
            parts.headers.insert(SECRET_HEADER, secret.clone());
            let client = HeaderValue::from_str(&peer.to_string()).expect("an address is ASCII");
            parts.headers.insert(CLIENT_HEADER, client);
        }
        let mut request = Request::from_parts(parts, body);
        // A kept-alive connection the application has just closed fails before anything is
        // sent; the request comes back and goes out again on a new connection, once.
        for attempt in 0..2 {
            let sender = match self.ready(socket).await {
                Ok(sender) => sender,
                Err(error) => return bad_gateway(&error.to_string()),
            };
            match sender.try_send_request(request).await {
                Ok(response) => return from_upstream(response),
                Err(mut failed) => {
                    self.sender = None;
                    match failed.take_message() {
                        Some(unsent) if attempt == 0 => request = unsent,
                        _ => {
                            let error = failed.into_error();
                            // The client's body stalled or broke off (a half-close before
                            // Content-Length, a chunk cut short): a client error, not the
                            // application's; the application saw the body end early and stored
                            // nothing of it (an upload keeps what arrived).
                            match super::idle::body_error_within(&error) {
                                Some(BodyError::Stalled(idle)) => {
                                    let (status, code, message) =
                                        super::idle::stalled_answer(*idle);
                                    return api_error(status, code, &message);
                                }
                                Some(broken) => {
                                    let message = broken.to_string();
                                    return api_error(broken_code.status(), broken_code, &message);
                                }
                                None => return bad_gateway(&error.to_string()),
                            }
                        }
                    }
                }
            }
        }
        unreachable!("the second attempt returns")
    }
    /// Sends one of the front's own requests (with the secret) and returns the response with
    /// its body read; None if the body could not be read.
    pub async fn send(
        &mut self,
        request: Request<Body>,
        socket: &Path,
        secret: &HeaderValue,
    ) -> Option<Response<()>> {
        let response = self
            .forward(request, super::LOOPBACK, socket, Some(secret))
            .await;
        let (parts, body) = response.into_parts();
        body.collect().await.ok()?;
        Some(Response::from_parts(parts, ()))
    }
}

fn from_upstream(response: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.map_err(std::io::Error::other).boxed())
}

fn bad_gateway(reason: &str) -> Response<Body> {
    let message = format!("the registry application is not reachable: {reason}");
    let code = ErrorCode::Unavailable;
    api_error(code.status(), code, &message)
}

/// A response with the spec's error body.
pub fn api_error(status: StatusCode, code: ErrorCode, message: &str) -> Response<Body> {
    api_error_detail(status, code, message, serde_json::Value::Null)
}

/// `api_error` with a `detail`.
pub fn api_error_detail(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    detail: serde_json::Value,
) -> Response<Body> {
    let code = code.as_str();
    let body =
        serde_json::json!({"errors": [{"code": code, "message": message, "detail": detail}]});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Docker-Distribution-API-Version", "registry/2.0")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_do_not_cross() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("expect", "100-continue"),
            ("content-length", "5"),
            ("authorization", "Basic eA=="),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["authorization", "content-length"]);
    }
}
