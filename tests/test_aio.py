from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ocistore import BlobStore, BlobWriter, Descriptor, Digest, Registry, aio
from ocistore.aio import (
    INLINE_WRITE_MAX,
    SMALL_STREAM_BLOCK,
    STREAM_BLOCK,
    AsyncBlobStore,
    AsyncBlobWriter,
)
from ocistore.errors import ErrBlobInvalidDigest, ErrBlobUnknown

from .helpers import pattern


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[i : i + size]


@pytest.mark.parametrize("chunk", [1, 1000, 65536, STREAM_BLOCK, STREAM_BLOCK + 3])
def test_write_stream_and_read_back(tmp_path: Path, chunk: int) -> None:
    data = pattern(3 * STREAM_BLOCK // 2 + 11 if chunk > 1 else 5000, chunk)

    async def main() -> None:
        store = AsyncBlobStore(BlobStore(tmp_path))
        writer = await store.create()
        assert await writer.write_stream(chunks_of(data, chunk)) == len(data)
        digest = Digest("sha256:" + hashlib.sha256(data).hexdigest())
        desc = await writer.commit(Descriptor("x", digest, len(data)))
        assert (await store.stat(digest)).size == len(data) == desc.size
        async with await store.open(digest) as reader:
            parts = [c async for c in reader.iter_range(7, len(data) - 10, block=4096)]
            assert b"".join(parts) == data[7 : len(data) - 3]
            assert await reader.read_at(0, 5) == data[:5]
        assert await store.get(digest) == data
        assert await store.enumerate() == [digest]
        await store.delete(digest)
        with pytest.raises(ErrBlobUnknown):
            await store.stat(digest)

    asyncio.run(main())


@pytest.mark.parametrize("size", [1000, STREAM_BLOCK + 1000], ids=["small", "blocks"])
def test_a_failing_stream_keeps_what_arrived(tmp_path: Path, size: int) -> None:
    data = pattern(size)

    async def broken() -> AsyncIterator[bytes]:
        yield data[: size // 2]
        yield data[size // 2 :]
        raise ConnectionResetError("client went away")

    async def main() -> str:
        writer = await AsyncBlobStore(BlobStore(tmp_path)).create()
        with pytest.raises(ConnectionResetError):
            await writer.write_stream(broken())
        await writer.close()
        return writer.id

    upload_id = asyncio.run(main())
    resumed = BlobStore(tmp_path).resume(upload_id)
    assert resumed.size == len(data)
    with pytest.raises(ErrBlobInvalidDigest):
        resumed.commit("sha256:" + hashlib.sha256(b"other").hexdigest())
    assert resumed.commit("sha256:" + hashlib.sha256(data).hexdigest()).size == len(data)


def test_small_bodies_and_reused_blocks(tmp_path: Path) -> None:
    """Bodies around the size written in one piece, and blocks reused from a previous upload
    (which still hold its bytes): every blob reads back exactly."""
    sizes = [0, 1, INLINE_WRITE_MAX, INLINE_WRITE_MAX + 1, 2 * STREAM_BLOCK + 5, 300, 70_000]

    async def main() -> None:
        store = AsyncBlobStore(BlobStore(tmp_path))
        for i, size in enumerate(sizes):
            data = pattern(size, i + 1)
            writer = await store.create()
            assert await writer.write_stream(chunks_of(data, 40_000)) == size
            digest = Digest("sha256:" + hashlib.sha256(data).hexdigest())
            assert (await writer.commit(digest)).size == size
            assert await store.get(digest) == data

    asyncio.run(main())


def test_linked_store_through_aio(tmp_path: Path) -> None:
    async def main() -> None:
        blobs = AsyncBlobStore(Registry(tmp_path).repository("a/b").blobs())
        desc = await blobs.put("x", b"linked")
        assert await blobs.get(desc.digest) == b"linked"
        writer = await blobs.create(mount_from=None)
        await writer.write(b"small")
        await writer.cancel()

    asyncio.run(main())


def test_the_loop_keeps_running_during_large_writes(tmp_path: Path) -> None:
    data = pattern(256 * 1024 * 1024)
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> None:
        writer = await AsyncBlobStore(BlobStore(tmp_path)).create()
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        await asyncio.sleep(0)
        before = ticks
        await writer.write(data)  # one 256 MiB write: hashed and written on a thread
        during = ticks - before
        stop.set()
        await task
        # Had the write run on the loop, the ticker could not have run while it lasted.
        assert during > 100
        await writer.cancel()

    asyncio.run(main())


def test_iter_range_reads_ahead_and_stops_cleanly(tmp_path: Path) -> None:
    data = pattern(10 * 4096 + 17)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    BlobStore(tmp_path).put("x", data)

    async def main() -> None:
        store = AsyncBlobStore(BlobStore(tmp_path))
        async with await store.open(digest) as reader:
            # Every offset and length, across block edges, in order and whole.
            for offset, length in [(0, len(data)), (4095, 4098), (4096 * 9, 4096 + 17), (5, 0)]:
                parts = [c async for c in reader.iter_range(offset, length, block=4096)]
                assert b"".join(parts) == data[offset : offset + length]
                assert all(len(p) <= 4096 for p in parts)
            # Stopping after the first chunk: closing waits for the read in flight, and the
            # reader still works (nothing was left reading it).
            chunks = reader.iter_range(0, len(data), block=4096)
            assert await anext(chunks) == data[:4096]
            await chunks.aclose()
            assert await reader.read_at(4096, 10) == data[4096:4106]
        # A consumer that is cancelled mid-stream leaves no read behind either.
        async with await store.open(digest) as reader:

            async def consume() -> None:
                async for _ in reader.iter_range(0, len(data), block=4096):
                    await asyncio.sleep(10)

            task = asyncio.ensure_future(consume())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())


class _RecordingWriter:
    """A BlobWriter that records the size of each write it passes on."""

    def __init__(self, inner: BlobWriter) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.sizes.append(len(memoryview(data)))
        return self.inner.write(data)


def test_streams_beyond_the_large_block_limit_use_small_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `LARGE_STREAMS_MAX` streams holding 4 MiB blocks, the next one writes 256 KiB
    blocks (memory stays bounded in a burst of pushes); both blobs are exact, and the large
    place is free again afterwards."""
    monkeypatch.setattr(aio, "LARGE_STREAMS_MAX", 1)
    first_data = pattern(2 * STREAM_BLOCK + 9, 3)
    second_data = pattern(3 * SMALL_STREAM_BLOCK + 5, 4)

    async def main() -> None:
        store = BlobStore(tmp_path)
        gate = asyncio.Event()

        async def held(data: bytes) -> AsyncIterator[bytes]:
            yield data[: STREAM_BLOCK + 1]
            await gate.wait()
            yield data[STREAM_BLOCK + 1 :]

        first = _RecordingWriter(store.create())
        first_task = asyncio.create_task(
            AsyncBlobWriter(first).write_stream(held(first_data))  # type: ignore[arg-type]
        )
        while aio._LARGE_STREAMS.active < 1:
            await asyncio.sleep(0.001)
        second = _RecordingWriter(store.create())
        written = await AsyncBlobWriter(second).write_stream(  # type: ignore[arg-type]
            chunks_of(second_data, 100_000)
        )
        assert written == len(second_data)
        assert second.sizes == [SMALL_STREAM_BLOCK] * 3 + [5]
        gate.set()
        assert await first_task == len(first_data)
        assert first.sizes == [STREAM_BLOCK, STREAM_BLOCK, 9]
        assert aio._LARGE_STREAMS.active == 0
        for writer, data in ((first, first_data), (second, second_data)):
            digest = Digest("sha256:" + hashlib.sha256(data).hexdigest())
            assert writer.inner.commit(digest).size == len(data)
            assert store.get(digest) == data

    asyncio.run(main())
