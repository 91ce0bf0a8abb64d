"""A cache of what a blob lookup finds (``storage.cache.blobdescriptor``): for a repository and a
digest, the digest its bytes are stored under and their size. A blob HEAD or GET on object
storage then costs no round trip to the store (a link read and a stat otherwise).

- ``MemoryDescriptorCache`` (``inmemory``): per process, the least recently used entries dropped
  first. Deletes on other instances are not seen by it (as with distribution's inmemory cache):
  with several instances on one bucket, use redis.
- ``RedisDescriptorCache`` (``redis``): shared by every instance; a delete or a collection on any
  of them removes the entry for all at once. Its keys follow distribution's redis cache
  (``blobs::<digest>``, ``repository::<name>::blobs::<digest>``, hashes with ``digest``, ``size``
  and ``mediatype``), so that the two tell the same story of a blob.

Only what was found is cached (never an absence), and a delete removes the entry before the link
or the blob goes, so the cache never answers for something a lookup would not find, except
for the moment between a delete on one instance and the same delete in an inmemory cache of
another.

Each cache is distribution's ``BlobDescriptorCacheProvider``: ``repository_scoped(name)`` is the
``BlobDescriptorService`` of one repository's entries, which the registry puts in front of the
repository's linked blobs (``CachedBlobDescriptorService``, as distribution's cached blob
statter), ahead of any ``BlobDescriptorServiceFactory`` middleware it is given.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

from .._core import Digest
from ..descriptor import Descriptor
from ..errors import ErrBlobUnknown

if TYPE_CHECKING:
    import redis
    from redis.typing import EncodableT, FieldT

__all__ = [
    "DescriptorCache",
    "Found",
    "MemoryDescriptorCache",
    "RedisDescriptorCache",
    "RepositoryDescriptors",
]

#: ``(stored digest, size)``: where a repository's blob lives and how large it is.
Found = tuple[Digest, int]


class DescriptorCache(Protocol):
    def get(self, name: str, digest: Digest) -> Found | None: ...
    def put(self, name: str, digest: Digest, found: Found) -> None: ...
    def forget(self, name: str, digest: Digest) -> None:
        """The repository no longer links the blob."""

    def forget_blob(self, digest: Digest) -> None:
        """The blob is gone from storage: every repository's entry for it goes too."""

    def repository_scoped(self, name: str) -> RepositoryDescriptors:
        """The entries of repository ``name``, as a ``BlobDescriptorService``."""


class RepositoryDescriptors:
    """One repository's entries of a cache, as a ``BlobDescriptorService``: a descriptor's
    digest is the one the bytes are stored under (as distribution's linked blob statter
    answers), which differs from the digest asked for only for an alias (sha512)."""

    def __init__(self, cache: DescriptorCache, name: str) -> None:
        self.cache = cache
        self.name = name

    def stat(self, digest: Digest | str) -> Descriptor:
        parsed = Digest(digest)
        found = self.cache.get(self.name, parsed)
        if found is None:
            raise ErrBlobUnknown(
                f"blob {parsed} of {self.name} is not in the cache", detail={"digest": str(parsed)}
            )
        stored, size = found
        return Descriptor(OCTET_STREAM, stored, size)

    def set_descriptor(self, digest: Digest | str, descriptor: Descriptor) -> None:
        self.cache.put(self.name, Digest(digest), (descriptor.digest, descriptor.size))

    def clear(self, digest: Digest | str) -> None:
        self.cache.forget(self.name, Digest(digest))


OCTET_STREAM = "application/octet-stream"


class _Scoping:
    def repository_scoped(self: DescriptorCache, name: str) -> RepositoryDescriptors:
        return RepositoryDescriptors(self, name)


class MemoryDescriptorCache(_Scoping):
    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError(f"a cache holds at least one descriptor, not {size}")
        self.size = size
        self._entries: OrderedDict[tuple[str, Digest], Found] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, digest: Digest) -> Found | None:
        with self._lock:
            found = self._entries.get((name, digest))
            if found is not None:
                self._entries.move_to_end((name, digest))
            return found

    def put(self, name: str, digest: Digest, found: Found) -> None:
        with self._lock:
            self._entries[(name, digest)] = found
            self._entries.move_to_end((name, digest))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, name: str, digest: Digest) -> None:
        with self._lock:
            self._entries.pop((name, digest), None)

    def forget_blob(self, digest: Digest) -> None:
        with self._lock:
            for key in [k for k, (stored, _) in self._entries.items() if digest in (k[1], stored)]:
                del self._entries[key]


class RedisDescriptorCache(_Scoping):
    """Over ``client`` (a ``redis.Redis``). Each blob's entry also lists, in the set
    ``blobs::<digest>::repositories``, the repositories that cached it, so that the blob's
    removal clears them all."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @staticmethod
    def _repository_key(name: str, digest: Digest) -> str:
        return f"repository::{name}::blobs::{digest}"

    def get(self, name: str, digest: Digest) -> Found | None:
        fields: dict[bytes, bytes] = self.client.hgetall(self._repository_key(name, digest))  # type: ignore[assignment]
        try:
            return Digest(fields[b"stored"].decode()), int(fields[b"size"])
        except (KeyError, ValueError):
            return None

    def put(self, name: str, digest: Digest, found: Found) -> None:
        stored, size = found
        blob: dict[FieldT, EncodableT] = {
            "digest": str(stored),
            "size": size,
            "mediatype": OCTET_STREAM,
        }
        entry: dict[FieldT, EncodableT] = {**blob, "digest": str(digest), "stored": str(stored)}
        pipe = self.client.pipeline()
        pipe.hset(f"blobs::{stored}", mapping=blob)
        pipe.hset(self._repository_key(name, digest), mapping=entry)
        pipe.sadd(f"repository::{name}::blobs", str(digest))
        pipe.sadd(f"blobs::{stored}::repositories", f"{name}\n{digest}")
        pipe.execute()

    def forget(self, name: str, digest: Digest) -> None:
        pipe = self.client.pipeline()
        pipe.delete(self._repository_key(name, digest))
        pipe.srem(f"repository::{name}::blobs", str(digest))
        pipe.execute()

    def forget_blob(self, digest: Digest) -> None:
        members: set[bytes] = self.client.smembers(f"blobs::{digest}::repositories")  # type: ignore[assignment]
        pipe = self.client.pipeline()
        for member in members:
            name, _, linked = member.decode().partition("\n")
            pipe.delete(f"repository::{name}::blobs::{linked}")
            pipe.srem(f"repository::{name}::blobs", linked)
        pipe.delete(f"blobs::{digest}", f"blobs::{digest}::repositories")
        pipe.execute()


def redis_cache(options: dict[str, Any]) -> RedisDescriptorCache:
    """A ``RedisDescriptorCache`` from the configuration's ``redis`` section (as
    ``ocistore.server.config`` reads it: ``addr``, ``password``, ``db``, ``dialtimeout``,
    ``readtimeout``, ``pool``)."""
    from ..extras import require

    require("redis", "the redis descriptor cache")
    import redis

    host, _, port = str(options["addr"]).rpartition(":")
    pool = redis.ConnectionPool(
        host=host.strip("[]") or "127.0.0.1",
        port=int(port),
        password=options.get("password"),
        db=int(options.get("db", 0)),
        socket_connect_timeout=options.get("dialtimeout"),
        socket_timeout=options.get("readtimeout"),
        max_connections=options.get("maxactive"),
    )
    return RedisDescriptorCache(redis.Redis(connection_pool=pool))
