"""distribution's storage interfaces as ``typing.Protocol``s.

Go's ``context.Context`` has no counterpart; options become keyword arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer

from collections.abc import Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import IO, Any, Protocol, Self, runtime_checkable

from ._core import Digest
from .descriptor import Descriptor

__all__ = [
    "BlobDeleter",
    "BlobEnumerator",
    "BlobIngester",
    "BlobProvider",
    "BlobStatter",
    "BlobStore",
    "BlobWriter",
    "ReadSeekCloser",
]

DigestLike = Digest | str


@runtime_checkable
class ReadSeekCloser(Protocol):
    def read(self, size: int | None = -1, /) -> bytes: ...
    def readinto(self, buffer: Buffer, /) -> int: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...
    def read_at(self, offset: int, size: int) -> bytes: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...


@runtime_checkable
class BlobWriter(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def size(self) -> int: ...
    def write(self, data: Buffer) -> int: ...
    def read_from(
        self, fileobj: IO[bytes] | Any, progress: Callable[[int], object] | None = None
    ) -> int: ...
    def close(self) -> None: ...
    def commit(
        self, expected: Descriptor | DigestLike, *, media_type: str | None = None
    ) -> Descriptor: ...
    def cancel(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class BlobStatter(Protocol):
    def stat(self, digest: DigestLike) -> Descriptor: ...


@runtime_checkable
class BlobProvider(Protocol):
    def get(self, digest: DigestLike) -> bytes: ...
    def open(self, digest: DigestLike) -> ReadSeekCloser: ...


@runtime_checkable
class BlobIngester(Protocol):
    def put(self, media_type: str, data: Buffer) -> Descriptor: ...
    def create(self) -> BlobWriter: ...
    def resume(self, upload_id: str) -> BlobWriter: ...


@runtime_checkable
class BlobDeleter(Protocol):
    def delete(self, digest: DigestLike) -> None: ...


@runtime_checkable
class BlobEnumerator(Protocol):
    def enumerate(self) -> Iterator[Digest]: ...


@runtime_checkable
class BlobStore(BlobStatter, BlobProvider, BlobIngester, BlobDeleter, BlobEnumerator, Protocol):
    """Everything a blob store does; ``ocistore.BlobStore`` implements it."""
