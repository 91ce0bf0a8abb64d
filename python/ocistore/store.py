"""The global content-addressed blob store (``BlobStatter``, ``BlobProvider``, ``BlobIngester``,
``BlobDeleter``, ``BlobEnumerator``) on distribution's filesystem layout."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import IO, Any, Literal, Self

from . import _core
from ._core import BlobReader, Digest
from .descriptor import OCTET_STREAM, Descriptor
from .interfaces import AsgiReceive, AsgiScope, AsgiSend, BlobCreateOption, CreateOptions

__all__ = ["READ_BLOCK", "BlobStore", "BlobWriter"]

#: Bytes read from a source per write in ``read_from``: large enough that hashing and writing run
#: in parallel inside the core (the core's ``INGEST_READ_BLOCK``).
READ_BLOCK: int = _core.INGEST_READ_BLOCK

DigestLike = Digest | str
Caching = Literal["keep", "stream", "direct"]


def _parse_started_at(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class BlobWriter:
    """A resumable upload of one blob (distribution's ``BlobWriter``).

    ``write`` appends any contiguous buffer without copying it, with the GIL released. ``close``
    checkpoints: data and hash state are durable and ``BlobStore.resume(id)`` continues from there
    in any process. ``commit`` verifies size and digest from the running hash state (no re-read)
    and moves the blob into place atomically; on a mismatch nothing is stored and the upload is
    left as it was, so the caller can ``cancel`` it or go on writing.
    """

    __slots__ = ("_core",)

    def __init__(self, core: _core.Upload) -> None:
        self._core = core

    @property
    def id(self) -> str:
        return self._core.id

    @property
    def started_at(self) -> datetime | None:
        """When the upload began (from its ``startedat`` file; None if that is unreadable)."""
        return _parse_started_at(self._core.started_at)

    @property
    def size(self) -> int:
        return self._core.size

    @property
    def algorithm(self) -> str:
        return self._core.algorithm

    @property
    def closed(self) -> bool:
        return self._core.closed

    def write(self, data: Buffer) -> int:
        return self._core.write(data)

    def write_from(self, path: str | os.PathLike[str], offset: int, length: int) -> int:
        """Appends ``length`` bytes of the file at ``path`` from ``offset`` (fewer where the
        file ends first; returns how many), read by the core with the GIL released. With
        ``caching="direct"`` they go from the file straight into the aligned stage."""
        return self._core.write_from(path, offset, length)

    def read_from(
        self, fileobj: IO[bytes] | Any, progress: Callable[[int], object] | None = None
    ) -> int:
        """Appends everything ``fileobj`` yields until EOF; returns the byte count.

        With ``readinto`` the next block is read on a helper thread while the current one is
        hashed and written (two reusable buffers), so reading overlaps hashing; otherwise
        ``read`` is called in a loop. ``progress`` is called with each block's size.
        """
        total = 0
        readinto = getattr(fileobj, "readinto", None)
        if readinto is None:
            while chunk := fileobj.read(READ_BLOCK):
                self._core.write(chunk)
                total += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            return total
        buffers = (memoryview(bytearray(READ_BLOCK)), memoryview(bytearray(READ_BLOCK)))
        with ThreadPoolExecutor(1, thread_name_prefix="ocistore-read") as reader:
            which = 0
            pending = reader.submit(readinto, buffers[which])
            while n := pending.result():
                current = buffers[which][:n]
                which ^= 1
                pending = reader.submit(readinto, buffers[which])
                try:
                    self._core.write(current)
                except BaseException:
                    pending.cancel()
                    raise
                total += n
                if progress is not None:
                    progress(n)
        return total

    def digest(self) -> Digest:
        """The digest of the bytes written so far, in the streamed algorithm."""
        return self._core.digest()

    def checkpoint(self, *, durable: bool = True) -> None:
        """Saves the hash state so the upload can be resumed from here. ``durable=False`` does
        not wait for the disk: the checkpoint is trusted until the machine restarts, after which
        resume falls back to the last durable one (see docs/python-api.md, "Uploads and
        durability")."""
        self._core.checkpoint(durable)

    def close(self, *, durable: bool = True) -> None:
        """Checkpoints (see ``checkpoint``) and releases the writer."""
        self._core.close(durable)

    def commit(
        self, expected: Descriptor | DigestLike, *, media_type: str | None = None
    ) -> Descriptor:
        """Verifies and stores the blob; returns its descriptor.

        ``expected`` is a ``Descriptor`` (size and digest are both checked) or a digest (only the
        digest is). Raises ``ErrBlobInvalidLength`` or ``ErrBlobInvalidDigest`` on a mismatch.
        A digest in another algorithm than the streamed one costs one full re-hash.
        """
        if isinstance(expected, Descriptor):
            size = self._core.commit(expected.digest, expected.size)
            descriptor = Descriptor(
                media_type=media_type or expected.media_type, digest=expected.digest, size=size
            )
        else:
            digest = Digest(expected)
            size = self._core.commit(digest, None)
            descriptor = Descriptor(media_type=media_type or OCTET_STREAM, digest=digest, size=size)
        return descriptor

    def cancel(self) -> None:
        self._core.cancel()

    def hash_state(self) -> bytes:
        """The running hash state of the bytes so far (Go's ``encoding.BinaryMarshaler`` format
        for sha256 and sha512), which ``BlobStore.rewind`` takes back."""
        return self._core.hash_state()

    def move_data_to(self, target: str | os.PathLike[str]) -> None:
        """Moves the bytes, unverified, to a file outside the blob store (durably: fsync,
        rename, fsync of the directory); the upload is then gone. Filesystem storage only."""
        self._core.move_data_to(target)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._core.close()

    def __repr__(self) -> str:
        return f"<BlobWriter {self.id} size={self.size}>"


class BlobStore:
    """Blobs under ``<root>/docker/registry/v2/blobs/<alg>/<hex[:2]>/<hex>/data``."""

    __slots__ = ("_core", "root")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self._core = _core.Storage(self.root)

    @classmethod
    def on_object_store(cls, store: _core.ObjectStore) -> BlobStore:
        """The store on S3-compatible object storage (keys as distribution's S3 driver's)."""
        self = cls.__new__(cls)
        self.root = store.url
        self._core = _core.Storage.on_object_store(store)
        return self

    def stat(self, digest: DigestLike) -> Descriptor:
        """The blob's descriptor; ``ErrBlobUnknown`` if it is not stored."""
        size = self._core.stat(digest)
        return Descriptor(media_type=OCTET_STREAM, digest=Digest(digest), size=size)

    def get(self, digest: DigestLike) -> bytes:
        return self._core.get(digest)

    def open(self, digest: DigestLike) -> BlobReader:
        return self._core.open(digest)

    def path(self, digest: DigestLike) -> str:
        return os.fspath(self._core.path(digest))

    def put(self, media_type: str, data: Buffer, *, algorithm: str = "sha256") -> Descriptor:
        digest, size = self._core.put(data, algorithm)
        return Descriptor(media_type=media_type, digest=digest, size=size)

    def create(
        self, *options: BlobCreateOption, algorithm: str = "sha256", caching: Caching = "keep"
    ) -> BlobWriter:
        """A new upload. ``caching`` says what becomes of the written pages: ``"keep"`` them in
        the page cache (a registry push: the blob is often pulled next); ``"stream"`` them
        through it, dropping them once on disk (bulk ingest of one large file); write them
        ``"direct"`` to disk, bypassing the cache (bulk ingest of many blobs in parallel). The
        bulk modes neither fill memory nor evict anything else from the cache.

        Of ``options``, ``WithAlgorithm`` overrides ``algorithm``; a mount is ignored: every
        blob this store has is already in it, so there is nowhere to mount from."""
        if options:
            algorithm = CreateOptions(algorithm=algorithm).with_options(options).algorithm
        return BlobWriter(self._core.create(algorithm, caching=caching))

    def resume(self, upload_id: str, *, caching: Caching = "keep") -> BlobWriter:
        """Continues an upload from its newest durable state; ``ErrBlobUploadUnknown`` if none."""
        return BlobWriter(self._core.resume(upload_id, caching=caching))

    def rewind(self, upload_id: str, size: int, state: bytes) -> BlobWriter:
        """The upload as it was at ``size`` bytes, ``state`` being the ``hash_state()`` its
        writer reported then: later bytes are dropped, crash-safely (the state is saved first,
        newer states removed, then the data cut back). ``ErrBlobUploadInvalid`` if fewer than
        ``size`` bytes are on disk. Filesystem storage only."""
        return BlobWriter(self._core.rewind(upload_id, size, state))

    def delete(self, digest: DigestLike) -> None:
        self._core.delete(digest)

    def enumerate(self) -> Iterator[Digest]:
        return iter(self._core.enumerate())

    async def serve_blob(
        self, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend, digest: DigestLike
    ) -> None:
        """Answers a GET or HEAD of the blob on an ASGI connection (see
        ``ocistore.blob_server``)."""
        # Not at the top: blob_server needs ocistore.server, whose package imports the storage,
        # which imports this module.
        from .blob_server import serve_blob

        await serve_blob(self, scope, receive, send, digest)

    def __repr__(self) -> str:
        return f"BlobStore({self.root!r})"
