//! Requests the front answers itself still reach the application's metrics and access log: each
//! is recorded when its body ends and the records go to the application in batches, so
//! `/metrics` and the log stay the application's (one format, one exposition, any worker).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::Body;
use super::proxy::Upstream;

use super::protocol::{self, OBSERVATIONS_PATH, PENDING_RECORDS_MAX as PENDING_MAX};

/// Who sent a request, when it started, and who the credentials named (with auth).
pub struct Who {
    pub peer: SocketAddr,
    pub started: Instant,
    pub user: Option<String>,
}

/// One request the front answered.
pub struct Record {
    pub route: &'static str,
    pub method: Method,
    pub status: StatusCode,
    pub path: String,
    pub peer: SocketAddr,
    pub started: Instant,
    pub user: Option<String>,
    pub bytes_in: u64,
}

impl Record {
    pub fn new(
        route: &'static str,
        method: &Method,
        status: StatusCode,
        path: &str,
        who: &Who,
    ) -> Record {
        Record {
            route,
            method: method.clone(),
            status,
            path: path.to_owned(),
            peer: who.peer,
            started: who.started,
            user: who.user.clone(),
            bytes_in: 0,
        }
    }
}

#[derive(Default)]
pub struct Observations {
    pending: Mutex<VecDeque<protocol::Record>>,
}

impl Observations {
    fn push(&self, record: &Record, bytes_out: u64) {
        let value = protocol::Record {
            route: record.route.to_owned(),
            method: record.method.as_str().to_owned(),
            status: record.status.as_u16(),
            seconds: record.started.elapsed().as_secs_f64(),
            bytes_in: record.bytes_in,
            bytes_out,
            path: record.path.clone(),
            remote: record.peer.ip().to_string(),
            port: record.peer.port(),
            user: record.user.clone(),
        };
        let mut pending = self.pending.lock().expect("no panics while held");
        if pending.len() == PENDING_MAX {
            pending.pop_front();
        }
        pending.push_back(value);
    }

    /// Posts what is pending to the application; kept for the next try if it does not answer.
    pub async fn flush(&self, socket: &std::path::Path, secret: &HeaderValue) {
        let batch: Vec<protocol::Record> = {
            let mut pending = self.pending.lock().expect("no panics while held");
            if pending.is_empty() {
                return;
            }
            pending.drain(..).collect()
        };
        let body = protocol::write_records(&batch);
        let request = Request::post(OBSERVATIONS_PATH)
            .header("host", "ocistore-front")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
        let sent = match request {
            Ok(request) => Upstream::default()
                .send(request, socket, secret)
                .await
                .is_some_and(|response| response.status().is_success()),
            Err(_) => false,
        };
        if !sent {
            // The application is starting or stopping: keep the records, newest last.
            let mut pending = self.pending.lock().expect("no panics while held");
            for value in batch.into_iter().rev() {
                if pending.len() == PENDING_MAX {
                    break;
                }
                pending.push_front(value);
            }
        }
    }
}

/// A response body that records its request when it ends (or is dropped by a client that
/// went away), with the bytes that went out.
pub struct Observed {
    inner: Body,
    sent: u64,
    record: Option<Record>,
    observations: Arc<Observations>,
}

impl Observed {
    pub fn new(inner: Body, record: Record, observations: Arc<Observations>) -> Self {
        Observed {
            inner,
            sent: 0,
            record: Some(record),
            observations,
        }
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            self.observations.push(&record, self.sent);
        }
    }
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.sent += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
