"""Manifests stored in a repository, addressed by digest (distribution's ``ManifestService``):
verified against the repository's blobs and manifests, stored as blobs, linked in
``_manifests/revisions``, indexed by subject in ``_referrers``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .. import interfaces
from .._core import Digest, Layout
from ..errors import (
    ErrBlobUnknown,
    ErrManifestBlobUnknown,
    ErrManifestUnknownRevision,
    ErrManifestVerification,
    OciStoreError,
)
from ..interfaces import (
    ManifestOptions,
    ManifestServiceOption,
)
from .links import linked_digests, parse_link
from .manifests import ImageIndex, Manifest, unmarshal_manifest
from .names import check_tag

if TYPE_CHECKING:
    from .repository import Repository

__all__ = ["ManifestService"]

DigestLike = Digest | str


class ManifestService:
    """Manifests stored in a repository, addressed by digest."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.registry = repository.registry
        self.driver = repository.registry.driver
        self._revisions = Layout.revisions(repository.name)

    def _link_key(self, digest: Digest) -> str:
        return Layout.revision_link(self.repository.name, digest)

    def _cache_scope(self) -> str:
        """The repository's manifests in the descriptor cache (``_manifests`` cannot be part of
        a repository name, so this meets no repository's blobs)."""
        return f"{self.repository.name}/_manifests"

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
        # The descriptor cache knows a revision found before (no link read); it forgets it
        # when the manifest is deleted or its bytes collected.
        cache, scope = self.registry.descriptor_cache, self._cache_scope()
        cached = cache is not None and cache.get(scope, parsed) is not None
        if not cached and not self._is_stored(parsed):
            raise unknown
        try:
            payload = self.registry.blobs().get(parsed)
        except ErrBlobUnknown:
            raise unknown from None
        if cache is not None and not cached:
            cache.put(scope, parsed, (parsed, len(payload)))
        manifest, _ = unmarshal_manifest(None, payload)
        # Addressed as it was asked for: a manifest pushed by a sha512 digest is that digest.
        manifest = manifest.in_algorithm(parsed.algorithm)
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
        validation = self.registry.validation
        if isinstance(manifest, ImageIndex):
            for child in manifest.manifests:
                if not validation.child_required(child):
                    # A sparse index: a child present is refreshed all the same, for the GC.
                    self.driver.touch(self._link_key(child.digest))
                    continue
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
                    # A foreign layer: served from its URLs, not by this registry.
                    for url in ref.urls:
                        if (why := validation.url_problem(url)) is not None:
                            # The spec: a manifest refused for a blob the registry does not
                            # have is MANIFEST_BLOB_UNKNOWN, and a refused URL leaves it so.
                            problems.append(
                                ErrManifestBlobUnknown(
                                    f"layer {ref.digest} is not in repository "
                                    f"{self.repository.name} and its URL {url!r} is not "
                                    f"accepted: {why}",
                                    detail={"digest": str(ref.digest), "url": url},
                                )
                            )
                    continue
                # The bytes it names are marked (under an alias link's target too), then
                # checked: the collector's second look then keeps them.
                if self.driver.check_blob_reference(self.repository.name, ref.digest) is None:
                    if not validation.blobs_required:
                        continue  # a sparse image, as configured
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
        tags: Sequence[str] = (),
    ) -> Digest:
        """Verifies and stores ``manifest`` (its exact bytes) under its digest, in the algorithm
        it is addressed by (``Manifest.in_algorithm``); tags it with ``tag`` (also as the option
        ``WithTag``, which wins) and every one of ``tags``. Every tag is checked before anything
        is written, so a bad one leaves neither the manifest nor any tag. A manifest of another
        implementation than ocistore's is parsed from its payload first, as if it had been
        pushed."""
        if options:
            tag = ManifestOptions(tag=tag).with_options(options).tag
        if not isinstance(manifest, Manifest):
            manifest, _ = unmarshal_manifest(manifest.media_type, manifest.payload())
        every_tag = [*([] if tag is None else [tag]), *tags]
        for each in every_tag:
            check_tag(each)
        digest = manifest.digest
        # The commit's order and links are the core's (``crate::manifest_commit``), which the
        # native front commits pushes by too; what must be present is decided here.
        with self.registry.gc_lock():
            self.driver.mark_revision(self.repository.name, digest)
            self._verify(manifest)
            subject = manifest.subject.digest if manifest.subject is not None else None
            self.driver.store_manifest(
                self.repository.name, digest, manifest.payload(), subject, every_tag
            )
        return digest

    def delete(self, digest: DigestLike) -> None:
        """Removes the manifest from the repository, with the tags that point at it and its
        entry in the referrers index."""
        self.registry._check_delete()
        parsed = Digest(digest)
        unknown = ErrManifestUnknownRevision(
            f"unknown manifest {parsed} in repository {self.repository.name}",
            detail={"name": self.repository.name, "revision": str(parsed)},
        )
        if not self._is_stored(parsed):
            raise unknown
        subject: Digest | None = None
        try:
            manifest = self.get(parsed)
            subject = manifest.subject.digest if manifest.subject is not None else None
        except OciStoreError:
            pass  # unreadable: there is no index entry to remove
        if self.registry.descriptor_cache is not None:
            self.registry.descriptor_cache.forget(self._cache_scope(), parsed)
        if not self.driver.delete_manifest(self.repository.name, parsed, subject):
            raise unknown  # deleted meanwhile by another request
