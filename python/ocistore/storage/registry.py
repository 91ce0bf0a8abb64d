"""The registry: distribution's ``Namespace``, ``RepositoryEnumerator`` and
``RepositoryRemover`` on distribution's layout. Each service has a file of its own:
``repository.py``, ``linked_blobs.py``, ``manifest_service.py``, ``tags.py``; every key comes
from the core's ``Layout`` (src/layout.rs).

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
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from .._core import Layout
from ..errors import (
    ErrRepositoryUnknown,
    ErrUnsupported,
)
from ..interfaces import (
    BlobDescriptorServiceFactory,
    GlobalScope,
)
from ..store import BlobStore
from .descriptor_cache import DescriptorCache
from .driver import FilesystemDriver, ObjectStoreDriver, StorageDriver
from .names import check_repository_name, path_sort_key
from .repository import Repository
from .validation import ManifestValidation

if TYPE_CHECKING:
    pass

__all__ = ["GLOBAL_SCOPE", "Registry"]

GLOBAL_SCOPE = GlobalScope()


class Registry:
    """distribution's ``Namespace``, ``RepositoryEnumerator`` and ``RepositoryRemover``."""

    def __init__(
        self,
        root: str | os.PathLike[str] | FilesystemDriver | ObjectStoreDriver,
        *,
        delete_enabled: bool = True,
        validation: ManifestValidation | None = None,
        descriptor_cache: DescriptorCache | None = None,
        blob_descriptor_service_factory: BlobDescriptorServiceFactory | None = None,
    ) -> None:
        """``root``: a directory, or a storage driver (``ocistore.storage.driver``).
        ``validation``: what manifest pushes must satisfy (by default every child of an index
        present, and foreign layers with any http or https URL). ``descriptor_cache``: what
        blob lookups found (``ocistore.storage.descriptor_cache``), kept up to date by deletes
        and the garbage collector. ``blob_descriptor_service_factory``: middleware around every
        repository's blob access controller (distribution's ``BlobDescriptorServiceFactory``
        option), outside the cache."""
        self.driver: StorageDriver = (
            root
            if isinstance(root, (FilesystemDriver, ObjectStoreDriver))
            else FilesystemDriver(root)
        )
        self.root = self.driver.url
        self.delete_enabled = delete_enabled
        self.validation = validation or ManifestValidation()
        self.descriptor_cache = descriptor_cache
        self.blob_descriptor_service_factory = blob_descriptor_service_factory
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
