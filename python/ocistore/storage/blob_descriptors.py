"""Blob descriptor services (distribution's ``BlobDescriptorService``) and middleware for them.

``LinkedBlobStatter`` is a repository's view: a blob has a descriptor there when it is linked
into the repository, setting one links it, clearing one unlinks it. ``MemoryBlobDescriptorCache``
keeps descriptors in memory (least recently used ones go first). ``CachedBlobDescriptorService``
puts such a cache in front of a backend service, and ``DescriptorCacheFactory`` is the
``BlobDescriptorServiceFactory`` that does so for any service it is given.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from .._core import Digest
from ..descriptor import Descriptor
from ..errors import ErrBlobInvalidLength, ErrBlobUnknown, ErrDescriptorInvalid, ErrUnsupported
from ..interfaces import BlobDescriptorService

if TYPE_CHECKING:
    from .linked_blobs import LinkedBlobStore

__all__ = [
    "CachedBlobDescriptorService",
    "DescriptorCacheFactory",
    "LinkedBlobStatter",
    "MemoryBlobDescriptorCache",
]

DigestLike = Digest | str


class LinkedBlobStatter:
    """The descriptors of the blobs linked into one repository (``repository.blobs()``)."""

    def __init__(self, blobs: LinkedBlobStore) -> None:
        self.blobs = blobs

    def stat(self, digest: DigestLike) -> Descriptor:
        """The descriptor of the bytes the repository serves under ``digest`` (its digest is
        the one they are stored under: another only for distribution's sha512 aliases, as
        distribution's linked blob statter answers); ``ErrBlobUnknown`` unless the blob is
        linked into the repository."""
        return self.blobs.registry.blobs().stat(self.blobs.resolve(digest))

    def set_descriptor(self, digest: DigestLike, descriptor: Descriptor) -> None:
        """Links the stored blob ``digest`` into the repository.

        A link names the digest it is filed under and nothing else, so ``descriptor`` must be of
        that digest (distribution could link a digest to another one's blob; this layout cannot,
        ``ErrUnsupported``), and of the stored size (``ErrBlobInvalidLength``)."""
        parsed = Digest(digest)
        if descriptor.digest != parsed:
            raise ErrUnsupported(
                f"cannot file blob {descriptor.digest} under {parsed}: a link holds its own digest",
                detail={"digest": str(parsed), "descriptor": str(descriptor.digest)},
            )
        stored = self.blobs.registry.blobs().stat(parsed)
        if stored.size != descriptor.size:
            raise ErrBlobInvalidLength(
                f"blob {parsed} has {stored.size} bytes, not {descriptor.size}",
                detail={"digest": str(parsed), "size": stored.size},
            )
        self.blobs.link(parsed)

    def clear(self, digest: DigestLike) -> None:
        """Unlinks the blob (``ErrBlobUnknown`` if it is not linked; ``ErrUnsupported`` when the
        registry has deletes disabled)."""
        self.blobs.unlink(digest)


class MemoryBlobDescriptorCache:
    """At most ``size`` descriptors in memory, the least recently used dropped first.

    It knows only what it was told: use one per scope (a repository's linked blobs differ from
    another's), and clear what is deleted behind its back, or it answers for blobs gone since.
    Safe to use from several threads."""

    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError(f"a cache holds at least one descriptor, not {size}")
        self.size = size
        self._entries: OrderedDict[Digest, Descriptor] = OrderedDict()
        self._lock = threading.Lock()

    def stat(self, digest: DigestLike) -> Descriptor:
        parsed = Digest(digest)
        with self._lock:
            try:
                self._entries.move_to_end(parsed)
                return self._entries[parsed]
            except KeyError:
                pass
        raise ErrBlobUnknown(f"blob {parsed} is not in the cache", detail={"digest": str(parsed)})

    def set_descriptor(self, digest: DigestLike, descriptor: Descriptor) -> None:
        if not descriptor.media_type:
            # What distribution's caches refuse too: a descriptor that would answer a stat
            # without a media type.
            raise ErrDescriptorInvalid(f"descriptor of {descriptor.digest} has no media type")
        parsed = Digest(digest)
        with self._lock:
            self._entries[parsed] = descriptor
            self._entries.move_to_end(parsed)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self, digest: DigestLike) -> None:
        with self._lock:
            self._entries.pop(Digest(digest), None)

    def __len__(self) -> int:
        return len(self._entries)


class CachedBlobDescriptorService:
    """``backend`` with ``cache`` in front: a stat the cache cannot answer goes to the backend
    and its answer is cached; set and clear go to both (the cache written through, so it never
    claims what the backend refused)."""

    def __init__(self, backend: BlobDescriptorService, cache: BlobDescriptorService) -> None:
        self.backend = backend
        self.cache = cache

    def stat(self, digest: DigestLike) -> Descriptor:
        try:
            return self.cache.stat(digest)
        except ErrBlobUnknown:
            pass
        descriptor = self.backend.stat(digest)
        self.cache.set_descriptor(digest, descriptor)
        return descriptor

    def set_descriptor(self, digest: DigestLike, descriptor: Descriptor) -> None:
        self.backend.set_descriptor(digest, descriptor)
        self.cache.set_descriptor(digest, descriptor)

    def clear(self, digest: DigestLike) -> None:
        # The cache first: were the backend's clear to fail half way, the next stat asks it.
        self.cache.clear(digest)
        self.backend.clear(digest)


class DescriptorCacheFactory:
    """Middleware that caches: each service it wraps gets a cache of its own of ``size``
    descriptors, so what one repository's service answers never leaks into another's."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size

    def blob_access_controller(self, service: BlobDescriptorService) -> BlobDescriptorService:
        return CachedBlobDescriptorService(service, MemoryBlobDescriptorCache(self.size))
