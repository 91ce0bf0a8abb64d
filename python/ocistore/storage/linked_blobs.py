"""The blobs of one repository (distribution's ``linkedBlobStore``): only blobs its
``_layers`` links name are visible through it. Linking, committing an upload and claiming one
for a request are the core's linked-blob protocol (``crate::linked``), one call each."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _core, hashing
from .._core import BlobReader, Digest, Layout
from ..descriptor import Descriptor
from ..errors import (
    ErrBlobMounted,
    ErrBlobUnknown,
    ErrBlobUploadUnknown,
)
from ..interfaces import (
    AsgiReceive,
    AsgiScope,
    AsgiSend,
    BlobCreateOption,
    CreateOptions,
)
from ..store import BlobWriter
from .blob_descriptors import CachedBlobDescriptorService, LinkedBlobStatter
from .driver import FilesystemDriver
from .links import linked_digests

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ..interfaces import BlobDescriptorService
    from .repository import Repository

__all__ = ["LinkedBlobStore"]

DigestLike = Digest | str


class LinkedBlobStore:
    """The blobs linked into one repository: only those are visible through it."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.registry = repository.registry
        self.driver = repository.registry.driver
        self._global = repository.registry.blobs()
        self._layers = Layout.layers(repository.name)
        # The blob access controller, as distribution's repository builds it: the linked blobs,
        # behind the registry's descriptor cache, behind its middleware.
        descriptors: BlobDescriptorService = LinkedBlobStatter(self)
        if (cache := self.registry.descriptor_cache) is not None:
            scoped = cache.repository_scoped(repository.name)
            descriptors = CachedBlobDescriptorService(descriptors, scoped)
        if (factory := self.registry.blob_descriptor_service_factory) is not None:
            descriptors = factory.blob_access_controller(descriptors)
        self.descriptors = descriptors

    def _unknown(self, digest: Digest) -> ErrBlobUnknown:
        return ErrBlobUnknown(
            f"blob unknown to repository {self.repository.name}: {digest}",
            detail={"digest": str(digest)},
        )

    def resolve(self, digest: DigestLike) -> Digest:
        """The digest whose bytes this repository serves under ``digest``: itself, or the one
        distribution's alias link names (a blob pushed to distribution by a sha512 digest is
        stored under its sha256). ``ErrBlobUnknown`` when the repository does not link it."""
        parsed = Digest(digest)
        stored = self._global._core.resolve(self.repository.name, parsed)
        if stored is None:
            raise self._unknown(parsed)
        return stored

    def lookup(self, digest: DigestLike) -> tuple[Digest, int]:
        """``(stored digest, size)`` of a blob this repository links, through its blob access
        controller (``descriptors``): from the registry's descriptor cache when it has it (no
        storage round trip), else looked up and cached. ``ErrBlobUnknown`` when the repository
        does not link it."""
        found = self.descriptors.stat(digest)
        return found.digest, found.size

    def stat(self, digest: DigestLike) -> Descriptor:
        parsed = Digest(digest)
        found = self._global.stat(self.resolve(parsed))
        return found if found.digest == parsed else replace(found, digest=parsed)

    def get(self, digest: DigestLike) -> bytes:
        return self._global.get(self.resolve(digest))

    def open(self, digest: DigestLike) -> BlobReader:
        return self._global.open(self.resolve(digest))

    def path(self, digest: DigestLike) -> str:
        return self._global.path(self.resolve(digest))

    def link(self, digest: DigestLike, *, stored: DigestLike | None = None) -> Descriptor:
        """Links a blob of the global store into this repository. ``stored``: the digest its
        bytes are kept under when that is another (a blob distribution stored by a sha512
        digest under its sha256); the link is then an alias, as distribution writes it. Without
        it, a sha512 blob is found through ocistore's global alias (``crate::linked::link``)."""
        parsed = Digest(digest)
        # The core's protocol, GC mark included.
        self._global._core.link(
            self.repository.name, parsed, None if stored is None else Digest(stored)
        )
        return self.stat(parsed)

    def put(self, media_type: str, data: Buffer, *, algorithm: str = "sha256") -> Descriptor:
        """Stores ``data`` and links it here under its digest in ``algorithm``; the bytes are
        kept under the digest the layout says (``Layout.stored_algorithm``: a sha512 blob under
        its sha256, linked by an alias, as an upload's commit stores it)."""
        stored_as = Layout.stored_algorithm(algorithm)
        descriptor = self._global.put(media_type, data, algorithm=stored_as)
        self.link(descriptor.digest)
        if stored_as == algorithm:
            return descriptor
        digest = Digest.from_bytes(algorithm, hashing.new(algorithm, data).digest())
        return replace(self.link(digest, stored=descriptor.digest), media_type=media_type)

    def create(
        self,
        *options: BlobCreateOption,
        mount_from: tuple[str | None, DigestLike] | None = None,
        algorithm: str = "sha256",
    ) -> BlobWriter:
        """A new upload into this repository.

        With ``mount_from=(repository, digest)`` a blob that repository has is linked here
        instead, and ``ErrBlobMounted`` (carrying the descriptor) is raised, as distribution
        does; ``(None, digest)`` mounts any blob the registry has. When there is nothing to
        mount, a normal upload is returned. ``options`` (``WithMountFrom``, ``WithAlgorithm``)
        override the keywords.
        """
        if options:
            chosen = CreateOptions(mount_from, algorithm).with_options(options)
            mount_from, algorithm = chosen.mount_from, chosen.algorithm
        if mount_from is not None:
            source_name, digest = mount_from
            try:
                stored = None
                if source_name is not None:
                    stored = self.registry.repository(source_name).blobs().resolve(digest)
                descriptor = self.link(digest, stored=stored)
            except ErrBlobUnknown:
                pass
            else:
                raise ErrBlobMounted(
                    f"blob {descriptor.digest} mounted from {source_name or 'the registry'}",
                    descriptor=descriptor,
                )
        # Its commit links the blob here first, then publishes it and marks it for the GC, in
        # one call into the core (crate::linked).
        return BlobWriter(self._global._core.create(algorithm, repository=self.repository.name))

    def upload_data_path(self, upload_id: str) -> Path:
        """Where an upload's bytes are on the filesystem; ``ErrBlobUploadUnknown`` if the id
        cannot name one."""
        if not _core.valid_upload_id(upload_id):
            raise ErrBlobUploadUnknown(
                f"blob upload unknown: {upload_id}", detail={"upload_id": upload_id}
            )
        return self.registry.driver.require_filesystem("upload paths") / Layout.upload_data(
            self.repository.name, upload_id
        )

    def upload_size(self, upload_id: str) -> int:
        """Bytes an upload has received; ``ErrBlobUploadUnknown`` if there is no such upload."""
        if isinstance(self.driver, FilesystemDriver):
            try:
                return os.stat(self.upload_data_path(upload_id)).st_size
            except FileNotFoundError:
                raise ErrBlobUploadUnknown(
                    f"blob upload unknown: {upload_id}", detail={"upload_id": upload_id}
                ) from None
        return self.resume(upload_id).size  # the upload's state object says

    def resume(self, upload_id: str) -> BlobWriter:
        return BlobWriter(self._global._core.resume(upload_id, repository=self.repository.name))

    def claim(self, upload_id: str) -> BlobWriter:
        """The upload, resumed for one request and held against every other (in any process)
        until it is closed, committed or cancelled: ``ErrBlobUploadInUse`` while another
        request holds it. The HTTP API writes uploads through this."""
        return BlobWriter(self._global._core.claim(upload_id, self.repository.name))

    def delete(self, digest: DigestLike) -> None:
        """Unlinks the blob from this repository (the bytes go when GC finds them unused),
        through its blob access controller: the descriptor cache forgets it before the link
        goes, so no instance answers for it afterwards."""
        self.registry._check_delete()
        self.descriptors.clear(digest)

    def unlink(self, digest: DigestLike) -> None:
        """Removes the repository's link (``ErrBlobUnknown`` if there is none)."""
        self.registry._check_delete()
        parsed = Digest(digest)
        if not self.driver.unlink_blob(self.repository.name, parsed):
            raise self._unknown(parsed)

    def enumerate(self) -> Iterator[Digest]:
        for digest, _ in linked_digests(self.driver, self._layers):
            yield digest

    async def serve_blob(
        self, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend, digest: DigestLike
    ) -> None:
        """Answers a GET or HEAD of a linked blob on an ASGI connection (see
        ``ocistore.blob_server``)."""
        # Not at the top: blob_server needs ocistore.server, whose package imports the storage,
        # which imports this module.
        from ..blob_server import serve_blob

        await serve_blob(self, scope, receive, send, digest)
