"""asyncio access to the store: nothing here blocks the event loop on disk I/O or hashing.

Every call that may touch the disk or hash more than a few KiB runs on a worker thread (the Rust
core releases the GIL there). ``AsyncBlobWriter.write_stream`` takes an async iterable of chunks
(an ASGI request body, a socket) and writes it through two preallocated blocks, one filling while
the other is hashed and written; ``AsyncBlobReader.iter_range`` yields a byte range in large
reads. The HTTP server is built on these.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from . import _core
from ._core import BlobReader, Digest
from .descriptor import Descriptor
from .errors import OciStoreError
from .store import BlobWriter

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["STREAM_BLOCK", "AsyncBlobReader", "AsyncBlobStore", "AsyncBlobWriter"]

#: Bytes gathered from a stream before each write (an upload holds two such blocks); the
#: sizes and budgets here are the core's (src/blocks.rs), which the native front uses too.
STREAM_BLOCK: int = _core.UPLOAD_BLOCK
#: Below this, a write goes straight to the core on the loop: a thread hop would cost more.
INLINE_WRITE_MAX: int = _core.UPLOAD_INLINE_MAX
#: Size of the reads ``iter_range`` makes; a range up to this size is read in one piece.
READ_BLOCK: int = _core.RANGE_READ_ONCE_MAX

DigestLike = Digest | str


class _SyncBlobs(Protocol):
    """What ``ocistore.BlobStore`` and a repository's linked blob store both offer."""

    def stat(self, digest: DigestLike) -> Descriptor: ...
    def get(self, digest: DigestLike) -> bytes: ...
    def open(self, digest: DigestLike) -> BlobReader: ...
    def path(self, digest: DigestLike) -> str: ...
    def put(self, media_type: str, data: Buffer) -> Descriptor: ...
    def resume(self, upload_id: str) -> BlobWriter: ...
    def delete(self, digest: DigestLike) -> None: ...
    def enumerate(self) -> Iterator[Digest]: ...


class _BlockPool:
    """``STREAM_BLOCK`` buffers kept for the next upload. A fresh one is zero-filled page by
    page, which costs milliseconds: more than a small upload's whole write."""

    def __init__(self, keep: int) -> None:
        self._free: list[bytearray] = []
        self._keep = keep

    def take(self) -> bytearray:
        try:
            return self._free.pop()
        except IndexError:
            return bytearray(STREAM_BLOCK)

    def give(self, block: bytearray) -> None:
        if len(self._free) < self._keep:
            self._free.append(block)


#: At most this many spare blocks per process (16 MiB): enough for two uploads back to back.
_BLOCKS = _BlockPool(keep=4)

#: Streams written in ``STREAM_BLOCK`` blocks at the same time, per process; the ones beyond use
#: ``SMALL_STREAM_BLOCK`` blocks, so that a burst of pushes holds at most 64 x 8 MiB plus 512 KiB
#: for each further one, instead of 8 MiB each (the native front does the same).
LARGE_STREAMS_MAX: int = _core.UPLOAD_LARGE_BODIES_MAX
SMALL_STREAM_BLOCK: int = _core.UPLOAD_SMALL_BLOCK


class _LargeStreams:
    """How many streams hold ``STREAM_BLOCK`` blocks (a lock: event loops may run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0

    def take(self) -> bool:
        with self._lock:
            if self.active >= LARGE_STREAMS_MAX:
                return False
            self.active += 1
            return True

    def give(self) -> None:
        with self._lock:
            self.active -= 1


_LARGE_STREAMS = _LargeStreams()


class AsyncBlobWriter:
    def __init__(self, writer: BlobWriter) -> None:
        self.sync = writer

    @property
    def id(self) -> str:
        return self.sync.id

    @property
    def size(self) -> int:
        return self.sync.size

    @property
    def closed(self) -> bool:
        return self.sync.closed

    async def write(self, data: Buffer) -> int:
        if len(memoryview(data)) <= INLINE_WRITE_MAX:
            return self.sync.write(data)
        return await asyncio.to_thread(self.sync.write, data)

    async def write_stream(self, chunks: AsyncIterable[Buffer]) -> int:
        """Writes every chunk of ``chunks``; returns the byte count. A body of up to
        ``INLINE_WRITE_MAX`` bytes is written in one piece; a larger one is copied once, into
        blocks of ``STREAM_BLOCK`` bytes (``SMALL_STREAM_BLOCK`` while ``LARGE_STREAMS_MAX``
        other streams hold large ones), one written on a thread while the next fills (two
        blocks: the most an upload holds in memory). If the stream fails or the task is
        cancelled, what arrived is written before the exception goes on: it is valid data at the
        right offset."""
        head: list[bytes] = []  # the body so far, while it is small enough to need no block
        head_size = 0
        blocks: list[bytearray] = []
        block_size = 0  # chosen when the first block is needed
        which = 0
        filled = 0
        total = 0
        in_flight: asyncio.Future[int] | None = None

        async def put(view: memoryview) -> None:
            nonlocal block_size, which, filled, in_flight
            if not block_size:
                block_size = STREAM_BLOCK if _LARGE_STREAMS.take() else SMALL_STREAM_BLOCK
            while view:
                if len(blocks) <= which:
                    large = block_size == STREAM_BLOCK
                    blocks.append(_BLOCKS.take() if large else bytearray(block_size))
                n = min(len(view), block_size - filled)
                blocks[which][filled : filled + n] = view[:n]
                filled += n
                view = view[n:]
                if filled == block_size:
                    if in_flight is not None:
                        await in_flight
                    in_flight = asyncio.ensure_future(
                        asyncio.to_thread(self.sync.write, blocks[which])
                    )
                    which ^= 1
                    filled = 0

        try:
            async for chunk in chunks:
                view = memoryview(chunk).cast("B")
                total += len(view)
                if not blocks and head_size + len(view) <= INLINE_WRITE_MAX:
                    head.append(bytes(view))
                    head_size += len(view)
                    continue
                for piece in head:
                    await put(memoryview(piece))
                head.clear()
                await put(view)
            if in_flight is not None:
                await in_flight
                in_flight = None
        except BaseException:
            if in_flight is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(in_flight)
            # On the loop: a cancelled task cannot wait for a thread. If the writer itself is
            # what failed, the upload now refuses writes; the first error is the one to report.
            with contextlib.suppress(OciStoreError, OSError):
                if head:
                    self.sync.write(b"".join(head))
                elif filled:
                    self.sync.write(memoryview(blocks[which])[:filled])
            raise
        else:
            if head:
                self.sync.write(b"".join(head))
            elif filled:
                await asyncio.to_thread(self.sync.write, memoryview(blocks[which])[:filled])
            # Only here, with no write in flight, may the blocks serve another upload.
            if block_size == STREAM_BLOCK:
                for block in blocks:
                    _BLOCKS.give(block)
            return total
        finally:
            if block_size == STREAM_BLOCK:
                _LARGE_STREAMS.give()

    async def checkpoint(self) -> None:
        await asyncio.to_thread(self.sync.checkpoint)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def commit(
        self, expected: Descriptor | DigestLike, *, media_type: str | None = None
    ) -> Descriptor:
        return await asyncio.to_thread(self.sync.commit, expected, media_type=media_type)

    async def cancel(self) -> None:
        await asyncio.to_thread(self.sync.cancel)

    async def __aenter__(self) -> AsyncBlobWriter:
        return self

    async def __aexit__(self, *_: object) -> None:
        if not self.sync.closed:
            await self.close()


class AsyncBlobReader:
    def __init__(self, reader: BlobReader) -> None:
        self.sync = reader

    @property
    def size(self) -> int:
        return self.sync.size

    async def read(self, size: int = -1) -> bytes:
        return await asyncio.to_thread(self.sync.read, size)

    async def read_at(self, offset: int, size: int) -> bytes:
        return await asyncio.to_thread(self.sync.read_at, offset, size)

    async def iter_range(
        self, offset: int = 0, length: int | None = None, block: int = READ_BLOCK
    ) -> AsyncGenerator[bytes, None]:
        """Yields ``length`` bytes (default: to the end) from ``offset`` in reads of ``block``.
        The next read runs on a thread while the consumer handles the current chunk (one read
        ahead: a deeper queue measured slower). Close the iterator (``contextlib.aclosing``)
        before the reader when stopping early: closing waits for a read in flight."""
        end = self.size if length is None else min(self.size, offset + length)

        def read(position: int) -> asyncio.Future[bytes]:
            return asyncio.ensure_future(
                asyncio.to_thread(self.sync.read_at, position, min(block, end - position))
            )

        position = offset
        pending = read(position) if position < end else None
        try:
            while pending is not None:
                chunk = await pending
                pending = None
                if not chunk:
                    return
                position += len(chunk)
                if position < end:
                    pending = read(position)
                yield chunk
        finally:
            if pending is not None:
                # Never leave a read running on a reader the caller is about to close.
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending)

    async def close(self) -> None:
        self.sync.close()

    async def __aenter__(self) -> AsyncBlobReader:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.sync.close()


class AsyncBlobStore:
    """An async face for ``ocistore.BlobStore`` or a repository's ``blobs()``."""

    def __init__(self, blobs: _SyncBlobs) -> None:
        self.sync = blobs

    async def stat(self, digest: DigestLike) -> Descriptor:
        return await asyncio.to_thread(self.sync.stat, digest)

    async def get(self, digest: DigestLike) -> bytes:
        return await asyncio.to_thread(self.sync.get, digest)

    async def open(self, digest: DigestLike) -> AsyncBlobReader:
        return AsyncBlobReader(await asyncio.to_thread(self.sync.open, digest))

    async def put(self, media_type: str, data: Buffer) -> Descriptor:
        return await asyncio.to_thread(self.sync.put, media_type, data)

    async def create(self, **options: Any) -> AsyncBlobWriter:
        create = self.sync.create  # type: ignore[attr-defined]
        return AsyncBlobWriter(await asyncio.to_thread(lambda: create(**options)))

    async def resume(self, upload_id: str) -> AsyncBlobWriter:
        return AsyncBlobWriter(await asyncio.to_thread(self.sync.resume, upload_id))

    async def delete(self, digest: DigestLike) -> None:
        await asyncio.to_thread(self.sync.delete, digest)

    async def enumerate(self) -> list[Digest]:
        return await asyncio.to_thread(lambda: list(self.sync.enumerate()))
