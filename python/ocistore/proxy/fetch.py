"""A blob fetched from the upstream once, however many clients and workers ask for it.

The first request for a blob the cache does not have takes the fetch's lock
(``Layout.proxy_fetch(digest)/lock``, an ``flock``, so every worker and process sees it) and
starts the fetch: one upstream GET streamed into an ordinary upload of the repository, hashed
as it arrives, checkpointed as it goes, and committed by the link-first protocol (verified
against the digest before it is published). Every request for that blob, the first included,
streams from the upload's data file as it grows (ranges too), and sends the last byte of its
answer only once the blob is published: a blob that does not match its digest is discarded
and those connections are cut, so no client ever takes it for valid.

A fetch cut off (the upstream resets, this process dies) keeps its upload: whoever takes the
lock next resumes it from its last checkpoint with a ``Range`` request, not from zero. The
``state`` file beside the lock tells the waiting requests which upload to read, the blob's
size, or why the fetch failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import http.client
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _core
from .._core import Digest, FrontProtocol, Layout
from ..descriptor import Descriptor
from ..errors import ErrBlobInvalidDigest, ErrBlobUnknown, OciStoreError
from ..storage import Registry
from ..store import BlobWriter
from .upstream import Upstream, UpstreamError

if TYPE_CHECKING:
    from ..server.metrics import Metrics

__all__ = ["BlobFetches", "FetchFailed", "FetchState"]

log = logging.getLogger("ocistore.proxy")

#: Bytes gathered from the upstream before each write into the upload.
WRITE_BLOCK = 1024 * 1024
#: A checkpoint (the hash state saved) every so many bytes: how much a resumed fetch re-hashes.
CHECKPOINT_EVERY = 64 * 1024 * 1024
#: Reads of the growing data file, per send.
TAIL_BLOCK = 2 * 1024 * 1024
#: How often a waiting request looks for new bytes (doubling from the first to the last); a
#: fetch in the same process also wakes it as soon as it writes.
POLL_FIRST, POLL_LAST = 0.002, 0.02
#: A request whose fetch makes no progress for this long checks that someone still fetches.
TAKE_OVER_AFTER = 1.0
#: ... and gives up after this long without a byte.
STALL_LIMIT = 120.0
#: Times a fetch cut off by the upstream is resumed in a row before it fails.
RESUMES = 5


class FetchFailed(Exception):
    """The upstream fetch of a blob failed: ``status`` is 404 when the upstream does not have
    it, 502 when it failed, 504 when it stalled."""

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FetchState:
    upload: str | None = None
    size: int | None = None
    #: Why the fetch failed, and the status to answer for it.
    failed: str | None = None
    status: int | None = None
    generation: str = ""
    #: Every byte is there and matches the digest (the commit may still be under way).
    verified: bool = False


def _read_state(path: Path) -> FetchState | None:
    try:
        fields = FrontProtocol.fetch_state_loads(path.read_bytes())
    except OSError:
        return None
    return None if fields is None else FetchState(*fields)


def _write_state(path: Path, state: FetchState) -> None:
    """Replaced whole (a rename), so that no reader sees half of one; not waiting for the disk
    (a state lost with a power cut costs a fetch from the start). The format is the core's
    (``protocol::FetchState``): the native front reads it too."""
    dumped = FrontProtocol.fetch_state_dumps(
        state.upload, state.size, state.failed, state.status, state.generation, state.verified
    )
    _core.write_file_atomic(path, dumped.encode(), durable=False)


def _record_failure(state_path: Path, reason: str, status: int) -> None:
    """The fetch's state says it failed (what it fetched into stays named, to be resumed)."""
    current = _read_state(state_path) or FetchState()
    _write_state(
        state_path,
        FetchState(
            upload=current.upload,
            size=current.size,
            failed=reason,
            status=status,
            generation=current.generation,
        ),
    )


class _Following:
    """How a request waits on a fetch: it notes which fetch it joined and answers that one's
    failure, waits (woken early by a fetch in this process) with a pause that doubles, once a
    second without progress offers to take the fetch over (its fetcher may have died: then the
    lock is free), and gives up after ``STALL_LIMIT``."""

    def __init__(
        self,
        fetches: BlobFetches,
        upstream: Upstream,
        name: str,
        storage_name: str,
        digest: Digest,
    ) -> None:
        self.fetches, self.upstream = fetches, upstream
        self.name, self.storage_name, self.digest = name, storage_name, digest
        self.state_path = fetches._dir(storage_name, digest) / "state"
        self.joined: str | None = None
        self.progressed()

    def progressed(self) -> None:
        self.idle, self.pause, self.take_over_at = 0.0, POLL_FIRST, TAKE_OVER_AFTER

    def state(self) -> FetchState | None:
        """The fetch's state; ``FetchFailed`` when the fetch joined has failed."""
        state = _read_state(self.state_path)
        if state is not None:
            if self.joined is None:
                self.joined = state.generation
            if state.failed:
                raise FetchFailed(state.failed, status=state.status or 502)
        return state

    async def wait(self) -> None:
        await self.fetches._wait(self.state_path, self.pause)
        self.idle += self.pause
        self.pause = min(self.pause * 2, POLL_LAST)
        if self.idle >= self.take_over_at:
            self.take_over_at += TAKE_OVER_AFTER
            self.fetches.ensure(
                self.upstream, self.name, self.storage_name, self.digest, self.joined
            )
        if self.idle >= STALL_LIMIT:
            raise FetchFailed(f"the upstream fetch of {self.digest} stalled", status=504)


class BlobFetches:
    """The fetches of one registry's pull-through cache (filesystem storage)."""

    def __init__(self, registry: Registry, root: Path, metrics: Metrics | None = None) -> None:
        self.registry = registry
        self.root = root
        self.metrics = metrics
        self._leading: set[asyncio.Task[None]] = set()
        self._progress: dict[Path, asyncio.Event] = {}

    def _advanced(self, state_path: Path) -> None:
        """Wakes the requests of this process waiting on the fetch."""
        event = self._progress.pop(state_path, None)
        if event is not None:
            event.set()

    async def _wait(self, state_path: Path, pause: float) -> None:
        """Until the fetch advances (if it runs in this process) or ``pause`` has passed."""
        event = self._progress.setdefault(state_path, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), pause)

    def _dir(self, storage_name: str, digest: Digest) -> Path:
        return self.root / Layout.proxy_fetch(storage_name, digest)

    def published(self, storage_name: str, digest: Digest) -> Digest | None:
        """The digest the cached blob's bytes are stored under, once they are in place (its
        link is written before the bytes are: both must be there)."""
        try:
            stored = self.registry.repository(storage_name).blobs().resolve(digest)
            self.registry.blobs().stat(stored)
            return stored
        except ErrBlobUnknown:
            return None

    def ensure(
        self,
        upstream: Upstream,
        name: str,
        storage_name: str,
        digest: Digest,
        joined: str | None = None,
    ) -> None:
        """Starts the fetch here unless someone (any worker) is fetching the blob already.
        ``joined``: the generation of the fetch the caller waits on; when that one failed, the
        caller is to answer its failure, and no new fetch starts for it (a new request does
        start one)."""
        directory = self._dir(storage_name, digest)
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        previous = _read_state(directory / "state")
        failed = previous is not None and previous.failed
        if failed and joined is not None and previous is not None and previous.generation == joined:
            os.close(fd)
            return
        # A fresh generation, so that nobody waiting reads an earlier fetch's failure as this
        # one's; the upload of an earlier fetch is kept, to be resumed (a discarded one is gone
        # and a new one starts).
        _write_state(
            directory / "state",
            FetchState(
                upload=previous.upload if previous else None,
                size=previous.size if previous and not previous.failed else None,
                generation=uuid.uuid4().hex,
            ),
        )
        task = asyncio.create_task(self._lead(fd, upstream, name, storage_name, digest))
        self._leading.add(task)
        task.add_done_callback(self._leading.discard)

    async def wait_size(
        self, upstream: Upstream, name: str, storage_name: str, digest: Digest
    ) -> int:
        """The blob's size once the fetch knows it (from the upstream's answer)."""
        following = _Following(self, upstream, name, storage_name, digest)
        while True:
            if (stored := self.published(storage_name, digest)) is not None:
                return self.registry.blobs().stat(stored).size
            state = following.state()
            if state is not None and state.size is not None:
                return state.size
            await following.wait()

    async def tail(
        self,
        upstream: Upstream,
        name: str,
        storage_name: str,
        digest: Digest,
        start: int,
        length: int,
    ) -> AsyncGenerator[bytes]:
        """``length`` bytes of the blob from ``start``, as they arrive; the last one only once
        the blob is verified and published. Raises ``FetchFailed`` when the fetch fails (the
        caller cuts the connection)."""
        position, end = start, start + length
        if length == 0:
            return
        following = _Following(self, upstream, name, storage_name, digest)
        fd: int | None = None
        reading: str | None = None
        try:
            while position < end:
                if (stored := self.published(storage_name, digest)) is not None:
                    with self.registry.blobs().open(stored) as reader:
                        while position < end:
                            n = min(TAIL_BLOCK, end - position)
                            chunk = await asyncio.to_thread(reader.read_at, position, n)
                            if not chunk:
                                raise FetchFailed(f"blob {digest} is shorter than announced")
                            position += len(chunk)
                            yield chunk
                    return
                state = following.state()
                if state is not None and state.upload and state.upload != reading:
                    if fd is not None:
                        os.close(fd)
                        fd = None
                    data = self.root / Layout.upload_data(storage_name, state.upload)
                    with contextlib.suppress(FileNotFoundError):
                        fd = os.open(data, os.O_RDONLY)
                        reading = state.upload
                available = os.fstat(fd).st_size if fd is not None else 0
                # Everything but the answer's last byte may go before the blob is verified.
                verified = state is not None and state.verified and state.upload == reading
                can = min(available, end if verified else end - 1) - position
                if can > 0 and fd is not None:
                    chunk = await asyncio.to_thread(os.pread, fd, min(can, TAIL_BLOCK), position)
                    if chunk:
                        position += len(chunk)
                        following.progressed()
                        yield chunk
                        continue
                await following.wait()
        finally:
            if fd is not None:
                os.close(fd)

    # the fetch

    async def _lead(
        self, fd: int, upstream: Upstream, name: str, storage_name: str, digest: Digest
    ) -> None:
        directory = self._dir(storage_name, digest)
        state_path = directory / "state"
        started = time.monotonic()
        try:
            if self.published(storage_name, digest) is not None:
                with contextlib.suppress(FileNotFoundError):
                    state_path.unlink()
                return
            if await self._link_stored(upstream, name, storage_name, digest):
                log.info("linked %s for %s: the upstream has it, the registry had it", digest, name)
                with contextlib.suppress(FileNotFoundError):
                    state_path.unlink()
                return
            await self._fetch(upstream, name, storage_name, digest, state_path)
            log.info(
                "fetched %s for %s from %s in %.3f s",
                digest,
                name,
                upstream.config.remoteurl,
                time.monotonic() - started,
            )
        except FetchFailed as failed:
            log.warning("fetch of %s for %s failed: %s", digest, name, failed)
            if failed.status != 404 and self.metrics is not None:
                self.metrics.proxy_error(upstream.config.remoteurl)
            _record_failure(state_path, str(failed), failed.status)
        except Exception as error:
            log.exception("fetch of %s for %s failed", digest, name)
            if self.metrics is not None:
                self.metrics.proxy_error(upstream.config.remoteurl)
            _record_failure(state_path, f"the fetch failed: {error}", 502)
        finally:
            os.close(fd)
            self._advanced(state_path)

    async def _link_stored(
        self, upstream: Upstream, name: str, storage_name: str, digest: Digest
    ) -> bool:
        """Links a blob the registry already stores (another cached repository's, or another
        upstream's) once the upstream confirms it has it in this repository: no bytes move."""
        try:
            await asyncio.to_thread(self.registry.blobs().stat, digest)
        except ErrBlobUnknown:
            return False
        await upstream_size(upstream, name, digest)  # FetchFailed unless the upstream has it
        blobs = self.registry.repository(storage_name).blobs()
        try:
            await asyncio.to_thread(blobs.link, digest)
        except ErrBlobUnknown:  # collected meanwhile: fetched after all
            return False
        return True

    async def _fetch(
        self,
        upstream: Upstream,
        name: str,
        storage_name: str,
        digest: Digest,
        state_path: Path,
    ) -> None:
        state = _read_state(state_path)
        blobs = self.registry.repository(storage_name).blobs()
        writer: BlobWriter | None = None
        if state is not None and state.upload:
            with contextlib.suppress(OciStoreError):
                writer = await asyncio.to_thread(blobs.claim, state.upload)
        if writer is None:
            writer = await asyncio.to_thread(blobs.create, algorithm=digest.algorithm)
        generation = state.generation if state else ""
        size = state.size if state else None
        resumes = 0
        try:
            while True:
                _write_state(
                    state_path, FetchState(upload=writer.id, size=size, generation=generation)
                )
                try:
                    size = await self._receive(
                        upstream, name, digest, writer, state_path, generation
                    )
                    break
                except _StartOver:
                    await asyncio.to_thread(writer.cancel)
                    writer = await asyncio.to_thread(blobs.create, algorithm=digest.algorithm)
                    continue
                except UpstreamError as cut:
                    resumes += 1
                    if cut.permanent or resumes > RESUMES:
                        raise FetchFailed(f"the upstream failed: {cut}") from None
                    # Resume from what arrived, once it is saved: the next GET asks for the rest.
                    await asyncio.to_thread(writer.checkpoint, durable=False)
                    await asyncio.sleep(min(0.1 * 2**resumes, 2.0))
            if writer.size == size and writer.digest() == digest:
                # Verified: the answers may end now, while the commit makes the blob durable.
                _write_state(
                    state_path,
                    FetchState(upload=writer.id, size=size, generation=generation, verified=True),
                )
                self._advanced(state_path)
            try:
                await asyncio.to_thread(
                    writer.commit, Descriptor(media_type="", digest=digest, size=size)
                )
            except (ErrBlobInvalidDigest, OciStoreError) as wrong:
                await asyncio.to_thread(writer.cancel)
                writer = None
                raise FetchFailed(
                    f"the upstream's bytes for {digest} do not match it: {wrong}"
                ) from None
            writer = None
            # Nothing of the fetch is needed once the blob is published (whoever takes a lock
            # left behind finds the blob published and stops there).
            for leftover in ("state", "lock"):
                with contextlib.suppress(FileNotFoundError):
                    (state_path.parent / leftover).unlink()
            with contextlib.suppress(OSError):
                state_path.parent.rmdir()
        finally:
            if writer is not None and not writer.closed:
                # Kept for whoever resumes the fetch.
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(writer.close, durable=False)

    def _received(self, upstream: Upstream, size: int) -> None:
        if self.metrics is not None:
            self.metrics.proxy_received(upstream.config.remoteurl, size)

    async def _receive(
        self,
        upstream: Upstream,
        name: str,
        digest: Digest,
        writer: BlobWriter,
        state_path: Path,
        generation: str,
    ) -> int:
        """Streams the rest of the blob into ``writer``; returns the blob's size. The body is
        read on a worker thread, in ``WRITE_BLOCK`` pieces straight into one buffer and from
        there into the upload (no per-piece hop between threads); auth is answered here."""
        scope = upstream.scope(name)
        url = upstream.url(f"/v2/{name}/blobs/{digest}", None)
        loop = asyncio.get_running_loop()
        authorization = await upstream.authorization(scope)
        for attempt in range(2):
            headers = {"Range": f"bytes={writer.size}-"} if writer.size else {}
            if authorization is not None:
                headers["Authorization"] = authorization
            done = await asyncio.to_thread(
                self._download, upstream, url, headers, digest, writer, state_path, generation,
                loop,
            )  # fmt: skip
            if isinstance(done, int):
                return done
            # A 401: answer its challenge once.
            authorization = None if attempt else await upstream.answer_challenge(done, scope)
            if authorization is None:
                raise FetchFailed(f"the upstream refused access to {digest} (401)", status=502)
        raise AssertionError("unreachable")

    def _download(
        self,
        upstream: Upstream,
        url: str,
        headers: dict[str, str],
        digest: Digest,
        writer: BlobWriter,
        state_path: Path,
        generation: str,
        loop: asyncio.AbstractEventLoop,
    ) -> int | str:
        """On a worker thread: the GET and its body into ``writer``. The blob's size, or the
        ``WWW-Authenticate`` challenge of a 401."""
        offset = writer.size
        response, connection = upstream.get_blocking(url, headers)
        try:
            status = response.status
            if status == 401:
                return response.getheader("www-authenticate") or ""
            if status == 404:
                raise FetchFailed(f"blob unknown to upstream: {digest}", status=404)
            if status == 403:
                raise FetchFailed(f"the upstream refused access to {digest} (403)", status=502)
            if status == 200 and offset:
                raise _StartOver  # the upstream ignored the range
            if status not in (200, 206):
                raise UpstreamError(f"GET {digest} answered {status}")
            size = _total_size(response.getheader, offset, status)
            if size is None:
                raise FetchFailed(f"the upstream gave no size for {digest}", status=502)
            _write_state(state_path, FetchState(upload=writer.id, size=size, generation=generation))
            loop.call_soon_threadsafe(self._advanced, state_path)
            block = memoryview(bytearray(WRITE_BLOCK))
            since_checkpoint = 0
            while writer.size < size:
                n = response.readinto(block[: min(WRITE_BLOCK, size - writer.size)])
                if not n:
                    raise UpstreamError(f"GET {digest} ended at {writer.size} of {size} bytes")
                writer.write(block[:n])
                self._received(upstream, n)
                loop.call_soon_threadsafe(self._advanced, state_path)
                since_checkpoint += n
                if since_checkpoint >= CHECKPOINT_EVERY:
                    writer.checkpoint(durable=False)
                    since_checkpoint = 0
            return size
        except (OSError, http.client.HTTPException) as e:
            raise UpstreamError(f"GET {digest} broke off at {writer.size}: {e}") from None
        finally:
            connection.close()


class _StartOver(Exception):
    """The upstream answered a resumed fetch's ``Range`` with the whole blob."""


def _total_size(header: Callable[[str], str | None], offset: int, status: int) -> int | None:
    """The blob's size from a 200's ``Content-Length`` or a 206's ``Content-Range``, which must
    start where the upload stands."""
    if status == 206:
        content_range = header("content-range") or ""
        unit, _, rest = content_range.partition(" ")
        span, _, total = rest.partition("/")
        first = span.partition("-")[0]
        if unit != "bytes" or not total.isdigit() or first != str(offset):
            return None
        return int(total)
    length = header("content-length")
    return int(length) if length and length.isdigit() else None


async def upstream_size(
    upstream: Upstream, name: str, digest: Digest, ns: str | None = None
) -> int:
    """The blob's size from the upstream's HEAD; ``FetchFailed`` (404) when it does not have
    it, ``FetchFailed`` (502) when it cannot say."""
    try:
        async with upstream.request("HEAD", f"/v2/{name}/blobs/{digest}", name=name, ns=ns) as r:
            status, length = r.status_code, r.headers.get("content-length")
    except UpstreamError as unreachable:
        raise FetchFailed(f"the upstream cannot be reached: {unreachable}") from None
    if status == 404:
        raise FetchFailed(f"blob unknown to upstream: {digest}", status=404)
    if status != 200 or not (length and length.isdigit()):
        raise FetchFailed(f"the upstream's HEAD of {digest} answered {status}")
    return int(length)
