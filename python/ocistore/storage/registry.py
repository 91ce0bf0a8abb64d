"""Repositories, linked blobs, manifests, tags and referrers on distribution's layout.

Under ``<root>/docker/registry/v2/repositories/<name>/``::

    _layers/<alg>/<hex>/link                         blobs linked into the repository
    _manifests/revisions/<alg>/<hex>/link            manifests stored in the repository
    _manifests/tags/<tag>/current/link               what the tag points at
    _manifests/tags/<tag>/index/<alg>/<hex>/link     every manifest the tag has pointed at
    _uploads/<uuid>/...                              resumable uploads (see ocistore.store)
    _referrers/<alg>/<subject hex>/<alg>/<hex>/link  ocistore's index of manifests by subject

A link holds ``<alg>:<hex>`` and nothing else, as distribution writes it. distribution ignores
``_referrers`` (its catalog skips every ``_``-directory), so trees stay interchangeable.

Garbage collection may run while pushes continue (see ``ocistore.storage.gc``): the operations
that make a blob or manifest newly referenced (linking a blob, verifying a manifest's references,
tagging) run under the shared GC lock and refresh the modification time of what they reference;
the collector deletes a candidate only under the exclusive lock after checking that time again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _core, interfaces
from .._core import BlobReader, Digest, Layout
from ..descriptor import Descriptor
from ..errors import (
    ErrBlobMounted,
    ErrBlobUnknown,
    ErrBlobUploadUnknown,
    ErrManifestBlobUnknown,
    ErrManifestUnknownRevision,
    ErrManifestVerification,
    ErrRepositoryUnknown,
    ErrTagUnknown,
    ErrUnsupported,
    OciStoreError,
)
from ..interfaces import (
    AsgiReceive,
    AsgiScope,
    AsgiSend,
    BlobCreateOption,
    CreateOptions,
    GlobalScope,
    ManifestOptions,
    ManifestServiceOption,
)
from ..store import BlobStore, BlobWriter
from .driver import FilesystemDriver, ObjectStoreDriver, StorageDriver
from .manifests import ImageIndex, Manifest, unmarshal_manifest
from .names import check_repository_name, check_tag, path_sort_key

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "GLOBAL_SCOPE",
    "LinkedBlobStore",
    "ManifestService",
    "Registry",
    "Repository",
    "TagService",
]

GLOBAL_SCOPE = GlobalScope()
DigestLike = Digest | str


def parse_link(data: bytes | None) -> Digest | None:
    """The digest a link holds; None when there is no link or it does not hold a digest."""
    if data is None:
        return None
    try:
        return Digest(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None


def read_link(path: Path) -> Digest | None:
    """A link file's digest (for the filesystem-only tools: fsck, gc)."""
    try:
        return parse_link(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def write_link(path: Path, digest: Digest) -> None:
    _core.write_file_atomic(path, str(digest).encode())


def linked_digests(driver: StorageDriver, base: str) -> Iterator[tuple[Digest, str]]:
    """``(digest, link key)`` for every ``<base>/<alg>/<hex>/link`` whose content matches."""
    for alg in driver.list(base):
        for hex_ in driver.list(f"{base}/{alg}"):
            link = f"{base}/{alg}/{hex_}/{Layout.LINK}"
            digest = parse_link(driver.read(link))
            if digest is not None and digest.algorithm == alg and digest.hex == hex_:
                yield digest, link


class Registry:
    """distribution's ``Namespace``, ``RepositoryEnumerator`` and ``RepositoryRemover``."""

    def __init__(
        self,
        root: str | os.PathLike[str] | FilesystemDriver | ObjectStoreDriver,
        *,
        delete_enabled: bool = True,
    ) -> None:
        """``root``: a directory, or a storage driver (``ocistore.storage.driver``)."""
        self.driver: StorageDriver = (
            root
            if isinstance(root, (FilesystemDriver, ObjectStoreDriver))
            else FilesystemDriver(root)
        )
        self.root = self.driver.url
        self.delete_enabled = delete_enabled
        self._blobs = self.driver.blob_store()
        self.repositories_key = Layout.repositories()

    @property
    def v2(self) -> Path:
        """``docker/registry/v2`` on the filesystem (``ErrUnsupported`` on object storage)."""
        return self.driver.require_filesystem("this operation") / Layout.V2

    @property
    def repositories_dir(self) -> Path:
        return self.v2 / "repositories"

    def scope(self) -> GlobalScope:
        return GLOBAL_SCOPE

    def repository(self, name: str) -> Repository:
        return Repository(self, check_repository_name(name))

    def blobs(self) -> BlobStore:
        """The global blob statter, provider and enumerator (every repository's blobs)."""
        return self._blobs

    def blob_statter(self) -> BlobStore:
        """The global blob statter (distribution's ``Namespace.BlobStatter``)."""
        return self._blobs

    def repositories(self, last: str | None = None, n: int | None = None) -> list[str]:
        """Names of repositories holding manifests, in distribution's catalog order, after
        ``last``, at most ``n``."""
        names = sorted(self.walk("_manifests"), key=path_sort_key)
        if last is not None:
            names = [name for name in names if path_sort_key(name) > path_sort_key(last)]
        if n is not None:
            names = names[: max(n, 0)]
        return names

    def enumerate(self) -> Iterator[str]:
        """Every repository the catalog lists, in its order (``RepositoryEnumerator``)."""
        yield from self.repositories()

    def upload_dirs(self) -> list[str]:
        """Keys of every directory of uploads: the global one and each repository's (including
        repositories with uploads and no manifest yet, which the catalog does not list)."""
        return [Layout.uploads(), *(Layout.uploads(name) for name in self.walk("_uploads"))]

    def walk(self, marker: str) -> list[str]:
        """Names of repository directories that hold ``marker`` (``_manifests``, ``_uploads``)."""
        return self.driver.dirs_holding(self.repositories_key, marker)

    def remove(self, name: str) -> None:
        """Removes a repository's links, tags and uploads (nested repositories stay)."""
        self._check_delete()
        repo = self.repository(name)
        if not repo.exists():
            raise ErrRepositoryUnknown(f"repository {name!r} is not known", detail={"name": name})
        for part in Layout.REPOSITORY_PARTS:
            self.driver.delete(f"{repo.key}/{part}")
        self.driver.prune_empty(repo.key, self.repositories_key)

    def _check_delete(self) -> None:
        if not self.delete_enabled:
            raise ErrUnsupported("deletes are disabled (storage.delete.enabled is false)")

    def gc_lock(self, *, exclusive: bool = False) -> AbstractContextManager[None]:
        """The lock between pushes (shared) and the garbage collector's deletes (exclusive)."""
        return self.driver.gc_lock(exclusive=exclusive)

    def __repr__(self) -> str:
        return f"Registry({self.root!r})"


class Repository:
    """A named collection of linked blobs, manifests and tags."""

    def __init__(self, registry: Registry, name: str) -> None:
        self.registry = registry
        self.name = name
        self.key = Layout.repository(name)

    @property
    def path(self) -> Path:
        """The repository's directory (filesystem storage only)."""
        return self.registry.repositories_dir / self.name

    def named(self) -> str:
        return self.name

    def exists(self) -> bool:
        driver = self.registry.driver
        return any(
            driver.exists(f"{self.key}/{part}") for part in ("_manifests", "_layers", "_uploads")
        )

    def blobs(self) -> LinkedBlobStore:
        return LinkedBlobStore(self)

    def manifests(self) -> ManifestService:
        return ManifestService(self)

    def tags(self) -> TagService:
        return TagService(self)

    def referrers(self, digest: DigestLike, artifact_type: str | None = None) -> ImageIndex:
        """The manifests whose ``subject`` is ``digest``, as an OCI image index, optionally only
        those of one artifact type."""
        subject = Digest(digest)
        manifests = self.manifests()
        found = []
        driver = self.registry.driver
        for referrer, _ in linked_digests(driver, Layout.referrers_of(self.name, subject)):
            try:
                manifest = manifests.get(referrer)
            except (ErrManifestUnknownRevision, ErrBlobUnknown):
                continue  # deleted since, or its blob was collected: not a referrer any more
            entry = manifest.referrer_descriptor()
            if artifact_type is None or entry.artifact_type == artifact_type:
                found.append(entry)
        return ImageIndex.build(found)

    def __repr__(self) -> str:
        return f"Repository({self.name!r})"


class LinkedBlobStore:
    """The blobs linked into one repository: only those are visible through it."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.registry = repository.registry
        self.driver = repository.registry.driver
        self._global = repository.registry.blobs()
        self._layers = Layout.layers(repository.name)

    def _is_linked(self, digest: Digest) -> bool:
        return self._global._core.is_linked(self.repository.name, digest)

    def _linked(self, digest: DigestLike) -> Digest:
        parsed = Digest(digest)
        if not self._is_linked(parsed):
            raise ErrBlobUnknown(
                f"blob unknown to repository {self.repository.name}: {parsed}",
                detail={"digest": str(parsed)},
            )
        return parsed

    def stat(self, digest: DigestLike) -> Descriptor:
        return self._global.stat(self._linked(digest))

    def get(self, digest: DigestLike) -> bytes:
        return self._global.get(self._linked(digest))

    def open(self, digest: DigestLike) -> BlobReader:
        return self._global.open(self._linked(digest))

    def path(self, digest: DigestLike) -> str:
        return self._global.path(self._linked(digest))

    def link(self, digest: DigestLike) -> Descriptor:
        """Links a blob of the global store into this repository."""
        parsed = Digest(digest)
        self._global._core.link(self.repository.name, parsed)  # the core's protocol, GC mark too
        return self._global.stat(parsed)

    def put(self, media_type: str, data: Buffer, *, algorithm: str = "sha256") -> Descriptor:
        descriptor = self._global.put(media_type, data, algorithm=algorithm)
        self.link(descriptor.digest)
        return descriptor

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
                if source_name is not None:
                    self.registry.repository(source_name).blobs().stat(digest)
                descriptor = self.link(digest)
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
        """Unlinks the blob from this repository (the bytes go when GC finds them unused)."""
        self.registry._check_delete()
        parsed = self._linked(digest)
        self.driver.delete(Layout.digest_dir(self._layers, parsed))

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


class ManifestService:
    """Manifests stored in a repository, addressed by digest."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.registry = repository.registry
        self.driver = repository.registry.driver
        self._revisions = Layout.revisions(repository.name)

    def _link_key(self, digest: Digest) -> str:
        return Layout.revision_link(self.repository.name, digest)

    def _is_stored(self, digest: Digest) -> bool:
        return parse_link(self.driver.read(self._link_key(digest))) == digest

    def exists(self, digest: DigestLike) -> bool:
        parsed = Digest(digest)
        if not self._is_stored(parsed):
            return False
        try:
            self.registry.blobs().stat(parsed)
        except ErrBlobUnknown:
            return False
        return True

    def get(
        self,
        digest: DigestLike,
        *options: ManifestServiceOption,
        media_types: Sequence[str] | None = None,
    ) -> Manifest:
        """The manifest; only if it is of one of ``media_types`` when given (also as the option
        ``WithManifestMediaTypes``), else ``ErrManifestUnknownRevision``."""
        if options:
            media_types = ManifestOptions(media_types=media_types).with_options(options).media_types
        parsed = Digest(digest)
        unknown = ErrManifestUnknownRevision(
            f"unknown manifest {parsed} in repository {self.repository.name}",
            detail={"name": self.repository.name, "revision": str(parsed)},
        )
        if not self._is_stored(parsed):
            raise unknown
        try:
            payload = self.registry.blobs().get(parsed)
        except ErrBlobUnknown:
            raise unknown from None
        manifest, _ = unmarshal_manifest(None, payload)
        if media_types is not None and manifest.media_type not in media_types:
            raise ErrManifestUnknownRevision(
                f"manifest {parsed} is a {manifest.media_type}, not one of the accepted types",
                detail={"name": self.repository.name, "revision": str(parsed)},
            )
        return manifest

    def enumerate(self) -> Iterator[Digest]:
        for digest, _ in linked_digests(self.driver, self._revisions):
            yield digest

    def _verify(self, manifest: Manifest) -> None:
        """Every referenced blob must be linked here (foreign layers with URLs excepted), every
        referenced manifest stored here. Refreshes what it finds, for the GC protocol."""
        problems: list[OciStoreError] = []
        blobs = self.repository.blobs()
        if isinstance(manifest, ImageIndex):
            for child in manifest.manifests:
                if not self.exists(child.digest) or not self.driver.touch(
                    self._link_key(child.digest)
                ):
                    problems.append(
                        ErrManifestBlobUnknown(
                            f"manifest {child.digest} referenced by the index is not in "
                            f"repository {self.repository.name}",
                            detail={"digest": str(child.digest)},
                        )
                    )
        else:
            for ref in manifest.references():
                if ref.urls:
                    continue  # a foreign layer: served from its URLs, not by this registry
                try:
                    self.driver.touch(Layout.blob_data(ref.digest))
                    blobs.stat(ref.digest)
                except ErrBlobUnknown:
                    problems.append(
                        ErrManifestBlobUnknown(
                            f"blob {ref.digest} ({ref.media_type}) is not in repository "
                            f"{self.repository.name}",
                            detail={"digest": str(ref.digest)},
                        )
                    )
        if problems:
            raise ErrManifestVerification(
                "; ".join(p.message for p in problems),
                detail=[p.detail for p in problems],
                errors=problems,
            )

    def put(
        self,
        manifest: interfaces.Manifest,
        *options: ManifestServiceOption,
        tag: str | None = None,
    ) -> Digest:
        """Verifies and stores ``manifest`` (its exact bytes); tags it if ``tag`` is given (also
        as the option ``WithTag``, which wins). A manifest of another implementation than
        ocistore's is parsed from its payload first, as if it had been pushed."""
        if options:
            tag = ManifestOptions(tag=tag).with_options(options).tag
        if not isinstance(manifest, Manifest):
            manifest, _ = unmarshal_manifest(manifest.media_type, manifest.payload())
        if tag is not None:
            check_tag(tag)
        digest = manifest.digest
        with self.registry.gc_lock():
            self._verify(manifest)
            stored = self.registry.blobs().put(manifest.media_type, manifest.payload())
            self.driver.touch(Layout.blob_data(stored.digest))
            self.driver.write(self._link_key(digest), str(digest).encode())
            if manifest.subject is not None:
                link = Layout.referrer_link(self.repository.name, manifest.subject.digest, digest)
                self.driver.write(link, str(digest).encode())
            if tag is not None:
                self.repository.tags()._write(tag, digest)
        return digest

    def delete(self, digest: DigestLike) -> None:
        """Removes the manifest from the repository, with the tags that point at it and its
        entry in the referrers index."""
        self.registry._check_delete()
        parsed = Digest(digest)
        if not self._is_stored(parsed):
            raise ErrManifestUnknownRevision(
                f"unknown manifest {parsed} in repository {self.repository.name}",
                detail={"name": self.repository.name, "revision": str(parsed)},
            )
        subject: Digest | None = None
        try:
            manifest = self.get(parsed)
            subject = manifest.subject.digest if manifest.subject is not None else None
        except OciStoreError:
            pass  # unreadable: there is no index entry to remove
        tags = self.repository.tags()
        for tag in tags.lookup(parsed):
            tags.untag(tag)
        if subject is not None:
            referrers = Layout.referrers_of(self.repository.name, subject)
            self.driver.delete(Layout.digest_dir(referrers, parsed))
            self.driver.prune_empty(
                f"{referrers}/{parsed.algorithm}", Layout.referrers(self.repository.name)
            )
        self.driver.delete(Layout.digest_dir(self._revisions, parsed))


class TagService:
    """Tags of a repository, as ``current`` links with an ``index`` of past targets."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.registry = repository.registry
        self.driver = repository.registry.driver
        self._tags = Layout.tags(repository.name)

    def _current(self, tag: str) -> Digest | None:
        name = self.repository.name
        return parse_link(self.driver.read(Layout.tag_current_link(name, check_tag(tag))))

    def resolve(self, tag: str) -> Digest:
        """The digest the tag points at (without reading the manifest)."""
        digest = self._current(tag)
        if digest is None:
            raise ErrTagUnknown(
                f"unknown tag {tag!r} in repository {self.repository.name}",
                detail={"name": self.repository.name, "tag": tag},
            )
        return digest

    def get(self, tag: str) -> Descriptor:
        digest = self.resolve(tag)
        try:
            manifest = self.repository.manifests().get(digest)
        except ErrManifestUnknownRevision:
            raise ErrTagUnknown(
                f"tag {tag!r} points at {digest}, which is not in repository "
                f"{self.repository.name}",
                detail={"name": self.repository.name, "tag": tag},
            ) from None
        return manifest.descriptor()

    def tag(self, tag: str, descriptor: Descriptor | DigestLike) -> None:
        digest = descriptor.digest if isinstance(descriptor, Descriptor) else Digest(descriptor)
        check_tag(tag)
        with self.registry.gc_lock():
            if not self.repository.manifests().exists(digest):
                raise ErrManifestUnknownRevision(
                    f"cannot tag {tag!r}: manifest {digest} is not in repository "
                    f"{self.repository.name}",
                    detail={"name": self.repository.name, "revision": str(digest)},
                )
            self._write(tag, digest)

    def _write(self, tag: str, digest: Digest) -> None:
        name = self.repository.name
        self.driver.write(Layout.tag_index_link(name, tag, digest), str(digest).encode())
        self.driver.write(Layout.tag_current_link(name, tag), str(digest).encode())

    def untag(self, tag: str) -> None:
        self.registry._check_delete()
        dir_ = Layout.tag_dir(self.repository.name, tag)
        if self._current(tag) is None or not self.driver.delete(dir_):
            raise ErrTagUnknown(
                f"unknown tag {tag!r} in repository {self.repository.name}",
                detail={"name": self.repository.name, "tag": tag},
            )

    def all(self) -> list[str]:
        names = self.driver.list(self._tags)
        if not names and not self.repository.exists():
            raise ErrRepositoryUnknown(
                f"repository {self.repository.name!r} is not known",
                detail={"name": self.repository.name},
            )
        return [
            name
            for name in names
            if parse_link(self.driver.read(Layout.tag_current_link(self.repository.name, name)))
            is not None
        ]

    def lookup(self, descriptor: Descriptor | DigestLike) -> list[str]:
        digest = descriptor.digest if isinstance(descriptor, Descriptor) else Digest(descriptor)
        try:
            tags = self.all()
        except ErrRepositoryUnknown:
            return []
        return [tag for tag in tags if self._current(tag) == digest]
