//! Proxied blob GETs whose bytes never enter the process: splice(2) moves them from the object
//! store's socket into a pipe, and from the pipe into the client's socket.
//!
//! Why: streamed through user space, every byte of a proxied GET is copied twice by the kernel
//! (out of one socket, into the other), and every piece wakes a task on two runtimes; those were
//! most of the front's CPU per GiB (docs/performance.md). Spliced, the kernel hands over page
//! references instead.
//!
//! Only for stores reached over plain HTTP (an in-cluster SeaweedFS or MinIO, the emulators):
//! TLS needs the bytes in user space, so an HTTPS store keeps the streamed path. The GET goes to
//! a presigned URL (`blobs::redirect_url`), so it needs no signing of its own, on S3, GCS and
//! Azure alike.
//!
//! How it fits under hyper, which owns the client's connection and writes whatever a response
//! body yields: `SplicedBody` yields placeholders, slices of the static `PLACEHOLDER`, each
//! standing for as many bytes it has put into the connection's pipe; `SplicingStream`, the
//! connection's IO, recognises a placeholder by its address when hyper writes it and splices
//! that many bytes out of the pipe instead. hyper keeps the framing, Content-Length, keep-alive
//! and timeouts. A placeholder reaches the IO only as the body gave it: the connection writes
//! vectored (hyper's queue strategy keeps each body buffer instead of copying it into its own),
//! and placeholders are only made for a connection whose IO is a `SplicingStream`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{StatusCode, Uri};
use hyper::body::{Body, Frame, SizeHint};
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::idle::IdleClock;
use crate::blocks::SPLICE_PIPE;
use crate::digest::Digest;
use crate::objstore::runtime::runtime;
use crate::objstore::{Remote, blobs};

/// What a placeholder points into; its bytes are never sent.
static PLACEHOLDER: [u8; SPLICE_PIPE] = [0; SPLICE_PIPE];

/// The store's response head must arrive within this, and be at most `HEAD_MAX` bytes.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const HEAD_MAX: usize = 16 * 1024;
/// A store that sends nothing of a body for this long ends the response (the client sees fewer
/// bytes than Content-Length).
const STORE_STALL: Duration = Duration::from_secs(60);
/// Idle store connections kept for the next spliced GET, and for how long.
const IDLE_KEPT: usize = 16;
const IDLE_FOR: Duration = Duration::from_secs(10);

/// Whether `slice` is (a part of) a placeholder.
fn is_placeholder(slice: &[u8]) -> bool {
    let start = PLACEHOLDER.as_ptr() as usize;
    !slice.is_empty() && (start..start + SPLICE_PIPE).contains(&(slice.as_ptr() as usize))
}

/// One splice(2), never blocking on the pipe (the sockets are non-blocking already).
fn splice_some(from: impl AsFd, to: impl AsFd, length: usize) -> io::Result<usize> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        match splice(&from, None, &to, None, length, flags) {
            Err(nix::errno::Errno::EINTR) => continue,
            moved => return moved.map_err(io::Error::from),
        }
    }
}

/// The pipe of one client connection, made for a spliced GET and closed once the last of its
/// bytes is in the client's socket: a pipe's capacity counts against its user's pipe budget
/// (`pipe-user-pages-soft`) for as long as it is open, so idle connections hold none.
#[derive(Default)]
pub struct Pipe {
    state: Mutex<PipeState>,
}

#[derive(Default)]
struct PipeState {
    /// The read end, the write end and the capacity.
    ends: Option<(OwnedFd, OwnedFd, usize)>,
    /// Bytes in the pipe, which placeholders hyper holds stand for.
    held: usize,
    /// A body waiting for room in the pipe.
    waiting: Option<Waker>,
    /// A spliced body is being sent.
    sending: bool,
}

impl PipeState {
    fn ends(&mut self) -> io::Result<&(OwnedFd, OwnedFd, usize)> {
        if self.ends.is_none() {
            let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
            // Refused past the user's pipe budget (`pipe-user-pages-soft`): then the pipe stays
            // as made, smaller, which costs splices, not bytes.
            let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(SPLICE_PIPE as i32));
            let capacity = fcntl(&write, FcntlArg::F_GETPIPE_SZ)?;
            let capacity = usize::try_from(capacity).unwrap_or(0).min(SPLICE_PIPE);
            self.ends = Some((read, write, capacity));
        }
        Ok(self.ends.as_ref().expect("made above"))
    }
}

impl PipeState {
    fn close_when_done(&mut self) {
        if !self.sending && self.held == 0 {
            self.ends = None;
        }
    }
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves up to `length` of the bytes placeholders stand for into `socket`.
    fn drain(&self, socket: &TcpStream, length: usize) -> io::Result<usize> {
        let mut state = self.lock();
        let wanted = length.min(state.held);
        let Some((read, ..)) = state.ends.as_ref().filter(|_| wanted > 0) else {
            return Err(io::Error::other(
                "a spliced body's placeholder stands for no bytes in the pipe",
            ));
        };
        let moved = splice_some(read, socket, wanted)?;
        state.held -= moved;
        if let Some(waiting) = state.waiting.take() {
            waiting.wake();
        }
        state.close_when_done();
        Ok(moved)
    }

    fn start_sending(&self) {
        self.lock().sending = true;
    }

    fn stop_sending(&self) {
        let mut state = self.lock();
        state.sending = false;
        state.close_when_done();
    }
}

/// A client connection's socket, which splices placeholders' bytes out of its pipe.
pub struct SplicingStream {
    stream: TcpStream,
    pipe: Arc<Pipe>,
}

impl SplicingStream {
    pub fn new(stream: TcpStream) -> SplicingStream {
        SplicingStream {
            stream,
            pipe: Arc::default(),
        }
    }

    /// The pipe the connection's spliced bodies fill.
    pub fn pipe(&self) -> Arc<Pipe> {
        self.pipe.clone()
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>, length: usize) -> Poll<io::Result<usize>> {
        loop {
            let (stream, pipe) = (&self.stream, &self.pipe);
            match stream.try_io(Interest::WRITABLE, || pipe.drain(stream, length)) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.stream.poll_write_ready(cx))?;
                }
                moved => return Poll::Ready(moved),
            }
        }
    }
}

impl AsyncRead for SplicingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SplicingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if is_placeholder(buf) {
            return this.poll_drain(cx, buf.len());
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    /// Writes the bytes before the first placeholder, or splices for the placeholder first in
    /// line: hyper writes the rest in its next call.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let skipped = bufs.iter().take_while(|b| b.is_empty()).count();
        let bufs = &bufs[skipped..];
        match bufs.first() {
            None => Poll::Ready(Ok(0)),
            Some(first) if is_placeholder(first) => this.poll_drain(cx, first.len()),
            Some(_) => {
                let plain = bufs.iter().take_while(|b| !is_placeholder(b)).count();
                Pin::new(&mut this.stream).poll_write_vectored(cx, &bufs[..plain])
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The front's connections to the store for spliced GETs, and whether its URLs are plain HTTP.
#[derive(Default)]
pub struct StoreConnections {
    idle: Mutex<Vec<(String, TcpStream, Instant)>>,
    /// Learnt from the first presigned URL: an HTTPS store is never spliced.
    plain_http: OnceLock<bool>,
}

impl StoreConnections {
    fn take(&self, authority: &str) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|(_, _, since)| since.elapsed() < IDLE_FOR);
        let at = idle.iter().rposition(|(held, ..)| held == authority)?;
        Some(idle.swap_remove(at).1)
    }

    fn put(&self, authority: String, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_KEPT {
            idle.push((authority, stream, Instant::now()));
        }
    }

    /// False once the store is known to be reached over HTTPS.
    pub fn may_splice(&self) -> bool {
        self.plain_http.get().copied().unwrap_or(true)
    }
}

/// What became of a spliced GET.
pub enum Spliced {
    Body(SplicedBody),
    /// The store is reached over HTTPS: stream the body instead.
    NotPlainHttp,
    /// The store did not answer as asked (the object gone, an error): the application answers.
    Failed,
}

/// `length` bytes from `start` of the blob stored under `stored` (`size` bytes), from one GET of
/// its presigned URL, to be spliced into the connection of `pipe`.
pub async fn get(
    remote: &Arc<Remote>,
    stored: &Digest,
    (start, length, size): (u64, u64, u64),
    pipe: &Arc<Pipe>,
    connections: &Arc<StoreConnections>,
) -> Spliced {
    let (signer, key) = (remote.clone(), stored.clone());
    let signed = runtime()
        .spawn(async move { blobs::redirect_url(&signer, &key).await })
        .await;
    let Ok(Ok(url)) = signed else {
        return Spliced::Failed;
    };
    let plain = *connections
        .plain_http
        .get_or_init(|| url.starts_with("http://"));
    let Some((authority, target)) = plain.then(|| request_target(&url)).flatten() else {
        return Spliced::NotPlainHttp;
    };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nRange: bytes={start}-{}\r\n\
         User-Agent: ocistore\r\n\r\n",
        start + length - 1
    );
    let wanted = Wanted {
        start,
        length,
        size,
    };
    let opened = tokio::time::timeout(
        HEAD_TIMEOUT,
        open(connections, &authority, request.as_bytes(), &wanted),
    )
    .await;
    let Ok(Some((store, head, reusable))) = opened else {
        return Spliced::Failed;
    };
    pipe.start_sending();
    Spliced::Body(SplicedBody {
        left: length - head.len() as u64,
        head: (!head.is_empty()).then_some(head),
        store: Some(store),
        authority,
        reusable,
        pipe: pipe.clone(),
        connections: connections.clone(),
        clock: IdleClock::new(Some(STORE_STALL)),
    })
}

/// `(authority, path and query)` of a plain-HTTP URL.
fn request_target(url: &str) -> Option<(String, String)> {
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?;
    let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    Some((authority, uri.path_and_query()?.as_str().to_owned()))
}

struct Wanted {
    start: u64,
    length: u64,
    size: u64,
}

/// The store's connection after sending `request` and reading a response head that promises
/// exactly the wanted bytes; the body bytes read with the head; whether the connection may be
/// kept. A kept connection the store has meanwhile closed is replaced by a new one.
async fn open(
    connections: &StoreConnections,
    authority: &str,
    request: &[u8],
    wanted: &Wanted,
) -> Option<(TcpStream, Bytes, bool)> {
    if let Some(mut kept) = connections.take(authority)
        && let Ok(answer) = exchange(&mut kept, request).await
    {
        return accept(kept, answer, wanted);
    }
    let mut fresh = TcpStream::connect(authority).await.ok()?;
    let _ = fresh.set_nodelay(true);
    let answer = exchange(&mut fresh, request).await.ok()?;
    accept(fresh, answer, wanted)
}

/// What a response head said, and the body bytes read with it.
struct Answer {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    rest: Bytes,
}

async fn exchange(stream: &mut TcpStream, request: &[u8]) -> io::Result<Answer> {
    stream.write_all(request).await?;
    let mut buf = BytesMut::with_capacity(HEAD_MAX);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(end)) => {
                let mut answer = Answer {
                    status: response.code.unwrap_or(0),
                    content_length: None,
                    chunked: false,
                    close: response.version != Some(1),
                    rest: Bytes::new(),
                };
                for header in response.headers.iter() {
                    let value = std::str::from_utf8(header.value).unwrap_or("").trim();
                    if header.name.eq_ignore_ascii_case("content-length") {
                        answer.content_length = value.parse().ok();
                    } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                        answer.chunked = true;
                    } else if header.name.eq_ignore_ascii_case("connection") {
                        answer.close |= value.eq_ignore_ascii_case("close");
                    }
                }
                answer.rest = buf.split_off(end).freeze();
                return Ok(answer);
            }
            Ok(httparse::Status::Partial) if buf.len() < HEAD_MAX => {}
            _ => return Err(io::ErrorKind::InvalidData.into()),
        }
    }
}

/// The connection, when the answer promises exactly the wanted bytes: a 206 of the range, or a
/// 200 of the whole object when the whole object was asked for.
fn accept(stream: TcpStream, answer: Answer, wanted: &Wanted) -> Option<(TcpStream, Bytes, bool)> {
    let whole = wanted.start == 0 && wanted.length == wanted.size;
    let status_fits = answer.status == StatusCode::PARTIAL_CONTENT.as_u16()
        || (whole && answer.status == StatusCode::OK.as_u16());
    let fits = status_fits
        && !answer.chunked
        && answer.content_length == Some(wanted.length)
        && answer.rest.len() as u64 <= wanted.length;
    fits.then_some((stream, answer.rest, !answer.close))
}

/// A response body spliced from the store's connection: first what came with the response
/// head (real bytes), then placeholders for what the pipe holds.
pub struct SplicedBody {
    head: Option<Bytes>,
    /// Bytes still to come from the store's socket.
    left: u64,
    store: Option<TcpStream>,
    authority: String,
    reusable: bool,
    pipe: Arc<Pipe>,
    connections: Arc<StoreConnections>,
    clock: IdleClock,
}

impl SplicedBody {
    /// Moves what the store has sent, as much as the pipe has room for, into the pipe. Ok(0):
    /// the store closed the connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(store) = &self.store else {
            return Poll::Ready(Ok(0));
        };
        loop {
            let mut state = self.pipe.lock();
            let held = state.held;
            let (_, write, capacity) = state.ends()?;
            let room = capacity.saturating_sub(held);
            let wanted = usize::try_from(self.left).map_or(room, |left| left.min(room));
            let moved = if wanted == 0 {
                Err(io::ErrorKind::WouldBlock.into())
            } else if held == 0 {
                // An empty pipe cannot be what blocks: a WouldBlock is the socket's, and clears
                // its readiness.
                store.try_io(Interest::READABLE, || splice_some(store, write, wanted))
            } else {
                // The pipe may be full (its slots can hold part pages), so leave the socket's
                // readiness alone and wait for the client to take some of the pipe.
                splice_some(store, write, wanted)
            };
            match moved {
                Ok(moved) => {
                    state.held += moved;
                    self.clock.progressed();
                    return Poll::Ready(Ok(moved));
                }
                Err(error) if error.kind() != io::ErrorKind::WouldBlock => {
                    return Poll::Ready(Err(error));
                }
                Err(_) if held > 0 => {
                    state.waiting = Some(cx.waker().clone());
                    self.clock.progressed();
                    return Poll::Pending;
                }
                Err(_) => {
                    drop(state);
                    if let Poll::Ready(ready) = store.poll_read_ready(cx) {
                        ready?;
                        continue;
                    }
                    return match self.clock.poll_expired(cx) {
                        Some(idle) => Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the store sent nothing for {} s", idle.as_secs()),
                        ))),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl Drop for SplicedBody {
    fn drop(&mut self) {
        self.pipe.stop_sending();
    }
}

impl Body for SplicedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if this.left == 0 {
            if let Some(store) = this.store.take().filter(|_| this.reusable) {
                this.connections.put(this.authority.clone(), store);
            }
            return Poll::Ready(None);
        }
        let moved = ready!(this.poll_fill(cx));
        Poll::Ready(Some(match moved {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the store's connection ended {} bytes short", this.left),
            )),
            Ok(moved) => {
                this.left -= moved as u64;
                Ok(Frame::data(Bytes::from_static(&PLACEHOLDER[..moved])))
            }
            Err(error) => {
                this.store = None;
                Err(error)
            }
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left + self.head.as_ref().map_or(0, |h| h.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn placeholders_are_known_by_address() {
        assert!(is_placeholder(&PLACEHOLDER[..1]));
        assert!(is_placeholder(&PLACEHOLDER[SPLICE_PIPE - 1..]));
        assert!(!is_placeholder(&PLACEHOLDER[..0]));
        let copy = PLACEHOLDER[..16].to_vec();
        assert!(!is_placeholder(&copy));
    }

    fn answer(status: u16, length: Option<u64>, chunked: bool, close: bool) -> Answer {
        Answer {
            status,
            content_length: length,
            chunked,
            close,
            rest: Bytes::from_static(b"abc"),
        }
    }

    /// Runs `test` on a runtime of its own, with a listener on 127.0.0.1 playing the store.
    fn on_loopback<F: Future<Output = ()>>(test: impl FnOnce(tokio::net::TcpListener) -> F) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            test(listener).await;
        });
    }

    #[test]
    fn only_an_answer_of_exactly_the_wanted_bytes_is_spliced() {
        let range = Wanted {
            start: 10,
            length: 100,
            size: 1000,
        };
        let whole = Wanted {
            start: 0,
            length: 1000,
            size: 1000,
        };
        on_loopback(|listener| async move {
            let address = listener.local_addr().unwrap();
            // `accept` only judges the head; the store's side of the socket is not needed.
            let socket = || async { TcpStream::connect(address).await.unwrap() };
            let (_, rest, keep) =
                accept(socket().await, answer(206, Some(100), false, false), &range).unwrap();
            assert_eq!((&rest[..], keep), (&b"abc"[..], true));
            let closing = accept(socket().await, answer(206, Some(100), false, true), &range);
            assert!(!closing.unwrap().2);
            assert!(
                accept(
                    socket().await,
                    answer(200, Some(1000), false, false),
                    &whole
                )
                .is_some()
            );
            // A store that ignored the range, sent another length, chunks or an error: refused.
            for (status, length, chunked, wanted) in [
                (200, Some(1000), false, &range),
                (206, Some(99), false, &range),
                (206, None, true, &range),
                (404, Some(100), false, &range),
                (403, None, false, &whole),
            ] {
                let refused = answer(status, length, chunked, false);
                assert!(
                    accept(socket().await, refused, wanted).is_none(),
                    "{status}"
                );
            }
        });
    }

    #[test]
    fn the_answer_head_is_read_to_its_end_and_the_body_kept() {
        on_loopback(|listener| async move {
            let address = listener.local_addr().unwrap();
            let store = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 1024];
                let n = socket.read(&mut request).await.unwrap();
                assert!(request[..n].starts_with(b"GET /k?sig=1 HTTP/1.1\r\n"));
                // The head in two pieces, the second with the body's first bytes.
                socket
                    .write_all(b"HTTP/1.1 206 Partial Content\r\nConte")
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                socket
                    .write_all(b"nt-Length: 5\r\nConnection: close\r\n\r\nhel")
                    .await
                    .unwrap();
                socket.write_all(b"lo").await.unwrap();
                // A head that never ends is refused once it passes HEAD_MAX.
                let (mut socket, _) = listener.accept().await.unwrap();
                let _ = socket.read(&mut request).await.unwrap();
                let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "y".repeat(HEAD_MAX));
                let _ = socket.write_all(endless.as_bytes()).await;
            });
            let mut stream = TcpStream::connect(address).await.unwrap();
            let request = b"GET /k?sig=1 HTTP/1.1\r\nHost: s\r\n\r\n";
            let answer = exchange(&mut stream, request).await.unwrap();
            assert_eq!((answer.status, answer.content_length), (206, Some(5)));
            assert!(answer.close && !answer.chunked);
            // What arrived with the head's end: at least the bytes sent in its piece.
            assert!(answer.rest.len() >= 3 && b"hello".starts_with(&answer.rest));
            let mut stream = TcpStream::connect(address).await.unwrap();
            let refused = exchange(&mut stream, request).await.err().unwrap();
            assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
            store.await.unwrap();
        });
    }

    /// A kept store connection and a body's frames written to a client's `SplicingStream`, as
    /// hyper writes them; returns the body's end (None: all of it) and what the client got.
    async fn splice_to_client(
        store: &str,
        wanted: Wanted,
        connections: &Arc<StoreConnections>,
    ) -> (Option<io::Error>, Vec<u8>, Arc<Pipe>) {
        let clients = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(clients.local_addr().unwrap())
            .await
            .unwrap();
        let mut io = SplicingStream::new(clients.accept().await.unwrap().0);
        let pipe = io.pipe();
        let request = b"GET /k HTTP/1.1\r\nHost: s\r\n\r\n";
        let (from, head, reusable) = open(connections, store, request, &wanted).await.unwrap();
        pipe.start_sending();
        let mut body = SplicedBody {
            left: wanted.length - head.len() as u64,
            head: (!head.is_empty()).then_some(head),
            store: Some(from),
            authority: store.to_owned(),
            reusable,
            pipe: pipe.clone(),
            connections: connections.clone(),
            clock: IdleClock::new(Some(STORE_STALL)),
        };
        let ended = loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame());
            match frame.await.expect("the body stalled") {
                Some(Ok(frame)) => io.write_all(&frame.into_data().unwrap()).await.unwrap(),
                Some(Err(error)) => break Some(error),
                None => break None,
            }
        };
        drop((body, io));
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        (ended, got, pipe)
    }

    #[test]
    fn a_store_that_ends_short_ends_the_body_with_an_error() {
        on_loopback(|listener| async move {
            let address = listener.local_addr().unwrap().to_string();
            let store = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let _ = socket.read(&mut [0; 1024]).await.unwrap();
                let head = "HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\nab";
                socket.write_all(head.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                socket.write_all(b"cdef").await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                // and the connection closes, 4 bytes short
            });
            let connections = Arc::new(StoreConnections::default());
            let wanted = Wanted {
                start: 0,
                length: 10,
                size: 100,
            };
            let (ended, got, pipe) = splice_to_client(&address, wanted, &connections).await;
            let error = ended.expect("a body of fewer bytes than promised fails");
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            assert!(error.to_string().contains("4 bytes short"), "{error}");
            // Every byte the store did send reached the client, in order, through the pipe.
            assert_eq!(got, b"abcdef");
            assert!(
                pipe.lock().ends.is_none(),
                "the pipe is closed once the body ends"
            );
            assert!(
                connections.take(&address).is_none(),
                "a cut connection is not kept"
            );
            store.await.unwrap();
        });
    }

    #[test]
    fn a_kept_connection_the_store_closed_is_replaced() {
        on_loopback(|listener| async move {
            let address = listener.local_addr().unwrap().to_string();
            let store = tokio::spawn(async move {
                // The connection kept from an earlier GET, closed by the store since.
                drop(listener.accept().await.unwrap());
                let (mut socket, _) = listener.accept().await.unwrap();
                for body in ["hello", "world"] {
                    let mut request = vec![0; 1024];
                    let n = socket.read(&mut request).await.unwrap();
                    assert!(request[..n].starts_with(b"GET /k HTTP/1.1\r\n"));
                    let answer =
                        format!("HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n\r\n{body}");
                    socket.write_all(answer.as_bytes()).await.unwrap();
                }
                // The second GET came on the same connection: it was kept after the first.
                assert_eq!(socket.read(&mut [0; 16]).await.unwrap(), 0);
            });
            let connections = Arc::new(StoreConnections::default());
            let stale = TcpStream::connect(&address).await.unwrap();
            connections.put(address.clone(), stale);
            tokio::time::sleep(Duration::from_millis(20)).await;
            let wanted = || Wanted {
                start: 5,
                length: 5,
                size: 100,
            };
            let (ended, got, _) = splice_to_client(&address, wanted(), &connections).await;
            assert!(ended.is_none());
            assert_eq!(got, b"hello");
            let (ended, got, _) = splice_to_client(&address, wanted(), &connections).await;
            assert!(ended.is_none());
            assert_eq!(got, b"world");
            drop(connections);
            store.await.unwrap();
        });
    }

    #[test]
    fn request_targets_keep_the_signature() {
        let (authority, target) =
            request_target("http://127.0.0.1:8333/b/docker/x?X-Amz-Signature=ab%2F").unwrap();
        assert_eq!(authority, "127.0.0.1:8333");
        assert_eq!(target, "/b/docker/x?X-Amz-Signature=ab%2F");
        assert_eq!(request_target("http://store/k").unwrap().0, "store:80");
    }
}
