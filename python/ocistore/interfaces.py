"""distribution's storage interfaces as ``typing.Protocol``s.

Go's ``context.Context`` has no counterpart. Go's variadic options stay option objects
(``BlobCreateOption``, ``ManifestServiceOption``) that each set their field of an options record
(``CreateOptions``, ``ManifestOptions``); the implementations also take the common ones as keyword
arguments. Enumerators return iterators instead of calling an ingester function, and
``BlobServer`` serves over ASGI instead of ``net/http``.

Which ocistore class implements which protocol: see docs/python-api.md, "Interfaces".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer

from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import IO, Any, Protocol, Self, runtime_checkable

from ._core import Digest
from .descriptor import Descriptor

__all__ = [
    "AsgiReceive",
    "AsgiScope",
    "AsgiSend",
    "BlobCreateOption",
    "BlobDeleter",
    "BlobDescriptorService",
    "BlobDescriptorServiceFactory",
    "BlobEnumerator",
    "BlobIngester",
    "BlobProvider",
    "BlobServer",
    "BlobService",
    "BlobStatter",
    "BlobStore",
    "BlobWriter",
    "CreateOptions",
    "Describable",
    "GlobalScope",
    "Manifest",
    "ManifestBuilder",
    "ManifestEnumerator",
    "ManifestOptions",
    "ManifestService",
    "ManifestServiceOption",
    "Namespace",
    "ReadSeekCloser",
    "Repository",
    "RepositoryEnumerator",
    "RepositoryRemover",
    "Scope",
    "TagService",
    "WithAlgorithm",
    "WithManifestMediaTypes",
    "WithMountFrom",
    "WithTag",
]

DigestLike = Digest | str

AsgiScope = MutableMapping[str, Any]
AsgiMessage = MutableMapping[str, Any]
AsgiReceive = Callable[[], Awaitable[AsgiMessage]]
AsgiSend = Callable[[AsgiMessage], Awaitable[None]]


# Options


@dataclass
class CreateOptions:
    """What the ``BlobCreateOption``s of one ``BlobIngester.create`` call ask for.

    ``mount_from``: ``(repository, digest)`` to link an existing blob instead of uploading it
    (``None`` as the repository: any blob the registry has). An ingester may honour any or none
    of them, as in distribution; ``ocistore.BlobStore`` ignores a mount (it holds every blob it
    has already), a repository's ``LinkedBlobStore`` honours it.
    """

    mount_from: tuple[str | None, DigestLike] | None = None
    algorithm: str = "sha256"

    def with_options(self, options: Iterable[BlobCreateOption]) -> Self:
        for option in options:
            option.apply(self)
        return self


@runtime_checkable
class BlobCreateOption(Protocol):
    def apply(self, options: CreateOptions) -> None: ...


@dataclass(frozen=True)
class WithMountFrom:
    """Mount ``digest`` from ``repository`` (distribution's ``storage.WithMountFrom``)."""

    repository: str | None
    digest: DigestLike

    def apply(self, options: CreateOptions) -> None:
        options.mount_from = (self.repository, self.digest)


@dataclass(frozen=True)
class WithAlgorithm:
    """Stream the upload's digest in ``algorithm`` (sha256, sha512 or blake3)."""

    algorithm: str

    def apply(self, options: CreateOptions) -> None:
        options.algorithm = self.algorithm


@dataclass
class ManifestOptions:
    """What the ``ManifestServiceOption``s of one ``ManifestService`` call ask for."""

    tag: str | None = None
    media_types: Sequence[str] | None = None

    def with_options(self, options: Iterable[ManifestServiceOption]) -> Self:
        for option in options:
            option.apply(self)
        return self


@runtime_checkable
class ManifestServiceOption(Protocol):
    def apply(self, options: ManifestOptions) -> None: ...


@dataclass(frozen=True)
class WithTag:
    """``ManifestService.put`` also points ``tag`` at the manifest."""

    tag: str

    def apply(self, options: ManifestOptions) -> None:
        options.tag = self.tag


@dataclass(frozen=True)
class WithManifestMediaTypes:
    """``ManifestService.get`` returns the manifest only if it is of one of ``media_types``
    (otherwise the manifest is unknown, as an ``Accept`` header that excludes it makes it)."""

    media_types: Sequence[str]

    def __post_init__(self) -> None:
        # A tuple: the option stays hashable and the caller's list cannot change under it.
        object.__setattr__(self, "media_types", tuple(self.media_types))

    def apply(self, options: ManifestOptions) -> None:
        options.media_types = self.media_types


# Blobs


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
    def create(self, *options: BlobCreateOption) -> BlobWriter: ...
    def resume(self, upload_id: str) -> BlobWriter: ...


@runtime_checkable
class BlobDeleter(Protocol):
    def delete(self, digest: DigestLike) -> None: ...


@runtime_checkable
class BlobEnumerator(Protocol):
    def enumerate(self) -> Iterator[Digest]: ...


@runtime_checkable
class BlobServer(Protocol):
    """Answers a GET or HEAD of one blob on an ASGI connection (ranges, ETag, 404 as the
    distribution spec words it); see ``ocistore.blob_server``."""

    async def serve_blob(
        self, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend, digest: DigestLike
    ) -> None: ...


@runtime_checkable
class BlobService(BlobStatter, BlobProvider, BlobIngester, Protocol):
    """Access, read and write blobs."""


@runtime_checkable
class BlobStore(BlobService, BlobServer, BlobDeleter, BlobEnumerator, Protocol):
    """Everything a blob store does; ``ocistore.BlobStore`` and a repository's
    ``LinkedBlobStore`` implement it. Unlike distribution's, it includes ``BlobEnumerator``:
    both ocistore stores enumerate."""


@runtime_checkable
class BlobDescriptorService(BlobStatter, Protocol):
    """Metadata of blobs by digest: what ``stat`` answers, and the means to set and drop it."""

    def set_descriptor(self, digest: DigestLike, descriptor: Descriptor) -> None: ...
    def clear(self, digest: DigestLike) -> None: ...


@runtime_checkable
class BlobDescriptorServiceFactory(Protocol):
    """Middleware for a ``BlobDescriptorService`` (caching, access control)."""

    def blob_access_controller(self, service: BlobDescriptorService) -> BlobDescriptorService: ...


# Manifests and tags


@runtime_checkable
class Describable(Protocol):
    def descriptor(self) -> Descriptor: ...


@runtime_checkable
class Manifest(Protocol):
    """A manifest: its media type, its exact bytes and what it references (Go's ``Payload``
    returns the media type with the bytes)."""

    @property
    def media_type(self) -> str: ...
    def references(self) -> list[Descriptor]: ...
    def payload(self) -> bytes: ...


@runtime_checkable
class ManifestBuilder(Protocol):
    def build(self) -> Manifest: ...
    def references(self) -> list[Descriptor]: ...
    def append_reference(self, dependency: Describable) -> None: ...


@runtime_checkable
class ManifestEnumerator(Protocol):
    def enumerate(self) -> Iterator[Digest]: ...


@runtime_checkable
class ManifestService(Protocol):
    def exists(self, digest: DigestLike) -> bool: ...
    def get(self, digest: DigestLike, *options: ManifestServiceOption) -> Manifest: ...
    def put(self, manifest: Manifest, *options: ManifestServiceOption) -> Digest: ...
    def delete(self, digest: DigestLike) -> None: ...


@runtime_checkable
class TagService(Protocol):
    def get(self, tag: str) -> Descriptor: ...
    def tag(self, tag: str, descriptor: Descriptor) -> None: ...
    def untag(self, tag: str) -> None: ...
    def all(self) -> list[str]: ...
    def lookup(self, descriptor: Descriptor) -> list[str]: ...


# Repositories and the namespace


@runtime_checkable
class Repository(Protocol):
    def named(self) -> str: ...
    def manifests(self) -> ManifestService: ...
    def blobs(self) -> BlobStore: ...
    def tags(self) -> TagService: ...


@runtime_checkable
class Scope(Protocol):
    def contains(self, name: str) -> bool: ...


@dataclass(frozen=True)
class GlobalScope:
    """The scope of the whole namespace: it contains every name."""

    def contains(self, name: str) -> bool:
        return True

    def __str__(self) -> str:
        return "global"


@runtime_checkable
class Namespace(Protocol):
    def scope(self) -> Scope: ...
    def repository(self, name: str) -> Repository: ...
    def repositories(self, last: str | None = None, n: int | None = None) -> list[str]: ...
    def blobs(self) -> BlobEnumerator: ...
    def blob_statter(self) -> BlobStatter: ...


@runtime_checkable
class RepositoryEnumerator(Protocol):
    def enumerate(self) -> Iterator[str]: ...


@runtime_checkable
class RepositoryRemover(Protocol):
    def remove(self, name: str) -> None: ...
