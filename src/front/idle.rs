//! Giving up on a client that stops: a request body it stops sending (`IdleBody`), a response
//! it stops reading (`WriteStallGuard`), both after `http.bodyidletimeout`. Without them a
//! client that vanishes mid-transfer (no FIN, no RST: a laptop closed, a NAT entry dropped)
//! holds its connection, read-ahead buffers, and for an upload the upload's lock, until TCP
//! notices, which may be never: the client that comes back to resume an upload would get 416
//! "in use" all along.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::ErrorCode;

/// Why a request body ended before its end.
#[derive(Debug)]
pub enum BodyError {
    /// The connection broke or the body was malformed.
    Broken(hyper::Error),
    /// Nothing arrived for this long.
    Stalled(Duration),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Broken(error) => write!(f, "the request body broke off ({error})"),
            BodyError::Stalled(idle) => write!(
                f,
                "the request body stalled: nothing arrived for {} s",
                idle.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for BodyError {}

/// `Incoming`, ending with `BodyError::Stalled` when the client sends nothing for `idle` while
/// the body is being read. The clock runs only while a read waits on the client, so time the
/// reader spends elsewhere (a slow disk, an application not reading yet) never counts.
pub struct IdleBody {
    inner: Incoming,
    clock: IdleClock,
}

impl IdleBody {
    pub fn new(inner: Incoming, idle: Option<Duration>) -> IdleBody {
        IdleBody {
            inner,
            clock: IdleClock::new(idle),
        }
    }
}

/// How long the client has kept us waiting: it runs from the first poll that had to wait and
/// stops at the next that did not.
pub(super) struct IdleClock {
    /// None: no limit.
    idle: Option<Duration>,
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
}

impl IdleClock {
    pub(super) fn new(idle: Option<Duration>) -> IdleClock {
        IdleClock {
            idle,
            deadline: Box::pin(tokio::time::sleep(Duration::ZERO)),
            waiting: false,
        }
    }

    /// The client moved (the inner poll was ready).
    pub(super) fn progressed(&mut self) {
        self.waiting = false;
    }

    /// The inner poll must wait: the limit if waiting has now lasted that long (the caller
    /// fails), else None (the caller waits; the clock will wake it at the limit).
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<Duration> {
        let idle = self.idle?;
        if !self.waiting {
            self.waiting = true;
            self.deadline.as_mut().reset(Instant::now() + idle);
        }
        self.deadline.as_mut().poll(cx).is_ready().then_some(idle)
    }
}

impl Body for IdleBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.clock.progressed();
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::Broken)));
        }
        match this.clock.poll_expired(cx) {
            Some(idle) => Poll::Ready(Some(Err(BodyError::Stalled(idle)))),
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The answer to a body that stalled, the application's too (`server.http.BodyStalled`): the
/// client may still be there, and an upload keeps what arrived.
pub fn stalled_answer(idle: Duration) -> (StatusCode, ErrorCode, String) {
    let message = format!(
        "{}; what arrived of an upload is kept",
        BodyError::Stalled(idle)
    );
    (StatusCode::REQUEST_TIMEOUT, ErrorCode::Unknown, message)
}

/// The client's body error behind a failed request to the application, when the client's body
/// (stalled or broken off) is what failed it rather than the application.
pub fn body_error_within<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e BodyError> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        // A body error reaches the client of the application wrapped in an io::Error.
        let inner = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            None => Some(error),
        };
        if let Some(body) = inner.and_then(|e| e.downcast_ref::<BodyError>()) {
            return Some(body);
        }
        cause = error.source();
    }
    None
}

/// A connection whose writes fail with `TimedOut` once one has waited `idle` for the client
/// to take bytes (a zero TCP window): a client that stops reading a response is let go.
/// Reads pass through (the header read timeout and `IdleBody` watch those).
pub struct WriteStallGuard<I> {
    inner: I,
    clock: IdleClock,
}

impl<I> WriteStallGuard<I> {
    pub fn new(inner: I, idle: Option<Duration>) -> WriteStallGuard<I> {
        WriteStallGuard {
            inner,
            clock: IdleClock::new(idle),
        }
    }

    /// After the inner write answered: Ready clears the clock, Pending starts it (or checks it).
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.clock.progressed();
            return polled;
        }
        match self.clock.poll_expired(cx) {
            Some(idle) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took no bytes for {} s", idle.as_secs_f64()),
            ))),
            None => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteStallGuard<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteStallGuard<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
