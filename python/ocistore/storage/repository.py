"""A repository: a named collection of linked blobs, manifests and tags (distribution's
``Repository``), and its referrers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._core import Digest, Layout
from ..errors import (
    ErrBlobUnknown,
    ErrManifestUnknownRevision,
)
from .linked_blobs import LinkedBlobStore
from .links import linked_digests
from .manifest_service import ManifestService
from .manifests import ImageIndex
from .tags import TagService

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["Repository"]

DigestLike = Digest | str


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
        """Whether anything is stored in it: manifests, linked blobs or uploads (the core's
        rule, ``crate::tags::repository_exists``)."""
        return self.registry.driver.repository_exists(self.name)

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
