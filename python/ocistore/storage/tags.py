"""Tags of a repository (distribution's ``TagService``): ``current`` links with an ``index`` of
past targets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core import Digest, Layout
from ..descriptor import Descriptor
from ..errors import (
    ErrManifestUnknownRevision,
    ErrRepositoryUnknown,
    ErrTagUnknown,
)
from .links import parse_link
from .names import check_tag

if TYPE_CHECKING:
    from .repository import Repository

__all__ = ["TagService"]

DigestLike = Digest | str


class TagService:
    """Tags of a repository, as ``current`` links with an ``index`` of past targets."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.registry = repository.registry
        self.driver = repository.registry.driver

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
            # Marked first: a collector about to delete the untagged revision keeps it, or
            # deletes it before the check below, which then refuses the tag.
            self.driver.mark_revision(self.repository.name, digest)
            if not self.repository.manifests().exists(digest):
                raise ErrManifestUnknownRevision(
                    f"cannot tag {tag!r}: manifest {digest} is not in repository "
                    f"{self.repository.name}",
                    detail={"name": self.repository.name, "revision": str(digest)},
                )
            self.driver.write_tag(self.repository.name, tag, digest)

    def untag(self, tag: str) -> None:
        self.registry._check_delete()
        if not self.driver.untag(self.repository.name, check_tag(tag)):
            raise ErrTagUnknown(
                f"unknown tag {tag!r} in repository {self.repository.name}",
                detail={"name": self.repository.name, "tag": tag},
            )

    def all(self) -> list[str]:
        tags = self.driver.tags(self.repository.name)
        if tags is None:
            raise ErrRepositoryUnknown(
                f"repository {self.repository.name!r} is not known",
                detail={"name": self.repository.name},
            )
        return tags

    def lookup(self, descriptor: Descriptor | DigestLike) -> list[str]:
        digest = descriptor.digest if isinstance(descriptor, Descriptor) else Digest(descriptor)
        return self.driver.tagged(self.repository.name, digest)
