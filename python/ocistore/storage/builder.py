"""Building manifests (distribution's ``ManifestBuilder``): OCI image manifests and indexes, and
their Docker schema2 counterparts.

A builder writes the manifest's canonical JSON (compact, in the field order and escaping of Go's
``encoding/json``, as distribution and containerd write it) and parses it with
``unmarshal_manifest``, so what ``build`` returns is exactly what the registry reads back from
those bytes. As distribution's builder does, ``build`` checks what the manifest references through
the service given: an image manifest's blobs by ``stat`` (storing a config given as bytes when
it is not there yet), an index's manifests by ``exists``.

    manifest = (
        ManifestBuilder(repo.blobs())
        .set_config_data(CONFIG, config_json)
        .annotate("org.opencontainers.image.title", "app")
    )
    manifest.append_reference(layer_descriptor)
    repo.manifests().put(manifest.build(), WithTag("latest"))
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any, Self

from .._core import Digest
from ..descriptor import Descriptor, Platform, go_json
from ..errors import (
    ErrBlobInvalidLength,
    ErrBlobUnknown,
    ErrManifestBlobUnknown,
    ErrManifestInvalid,
    ErrManifestVerification,
    OciStoreError,
)
from ..interfaces import BlobService, Describable, ManifestService
from .manifests import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_EMPTY_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    unmarshal_manifest,
)

__all__ = ["EMPTY_CONFIG_DATA", "OCI_IMAGE_CONFIG", "IndexBuilder", "ManifestBuilder"]

OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
#: The config of a manifest that has none to speak of (an artifact), as the image spec defines.
EMPTY_CONFIG_DATA = b"{}"


def _sha256(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


class _Builder:
    _docker_media_type: str

    def __init__(self, media_type: str) -> None:
        self.media_type = media_type
        self._references: list[Descriptor] = []
        self._subject: Descriptor | None = None
        self._annotations: dict[str, str] | None = None
        self._artifact_type: str | None = None

    def references(self) -> list[Descriptor]:
        """What was appended, in order (base first)."""
        return list(self._references)

    def set_subject(self, subject: Describable) -> Self:
        """The manifest this one refers to (OCI 1.1 referrers). It need not exist yet."""
        self._subject = subject.descriptor()
        return self

    def annotate(self, key: str, value: str) -> Self:
        if self._annotations is None:
            self._annotations = {}
        self._annotations[key] = value
        return self

    def set_artifact_type(self, artifact_type: str) -> Self:
        self._artifact_type = artifact_type
        return self

    def _finish(self, body: dict[str, Any], references: str) -> Manifest:
        if self.media_type == self._docker_media_type and (
            self._subject is not None or self._artifact_type is not None
        ):
            raise ErrManifestInvalid(f"a {self.media_type} has no subject or artifactType")
        # Go's struct order: schemaVersion, mediaType, artifactType, then the references, subject
        # and annotations; maps marshal with sorted keys.
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        if self._artifact_type is not None:
            out["artifactType"] = self._artifact_type
        out.update(body)
        out[references] = [d.to_dict() for d in self._references]
        if self._subject is not None:
            out["subject"] = self._subject.to_dict()
        if self._annotations is not None:
            out["annotations"] = dict(sorted(self._annotations.items()))
        manifest, _ = unmarshal_manifest(self.media_type, go_json(out))
        return manifest


def _raise_problems(problems: list[OciStoreError]) -> None:
    if problems:
        raise ErrManifestVerification(
            "; ".join(p.message for p in problems),
            detail=[p.detail for p in problems],
            errors=problems,
        )


class ManifestBuilder(_Builder):
    """An OCI image manifest (or, with ``media_type=DOCKER_MANIFEST``, a Docker schema2 one)
    whose config and layers are blobs of ``blobs``, typically a repository's ``blobs()``.

    ``append_reference`` adds a layer. Without a config, ``build`` uses the image spec's empty
    one (``{}``, ``application/vnd.oci.empty.v1+json``), as artifacts do."""

    _docker_media_type = DOCKER_MANIFEST

    def __init__(self, blobs: BlobService, *, media_type: str = OCI_MANIFEST) -> None:
        if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
            raise ErrManifestInvalid(f"ManifestBuilder builds image manifests, not {media_type}")
        super().__init__(media_type)
        self.blobs = blobs
        self._config: Descriptor | None = None
        self._config_data: bytes | None = None

    def set_config(self, config: Describable) -> Self:
        """A config already stored in ``blobs``."""
        self._config, self._config_data = config.descriptor(), None
        return self

    def set_config_data(self, media_type: str, data: bytes) -> Self:
        """A config given as its bytes: ``build`` stores it in ``blobs`` unless it is there."""
        self._config = Descriptor(media_type=media_type, digest=_sha256(data), size=len(data))
        self._config_data = bytes(data)
        return self

    def append_reference(self, dependency: Describable) -> None:
        self._references.append(dependency.descriptor())

    def build(self) -> Manifest:
        """The manifest; ``ErrManifestVerification`` (listing each) if a blob it references is
        not in ``blobs`` or not of the size its descriptor says. Layers with ``urls`` (foreign
        layers) are not checked: the registry does not serve them."""
        config, data = self._config, self._config_data
        if config is None:
            if self.media_type == DOCKER_MANIFEST:
                raise ErrManifestInvalid("a Docker schema2 manifest needs a config")
            data = EMPTY_CONFIG_DATA
            config = Descriptor(OCI_EMPTY_CONFIG, _sha256(data), len(data))
        if data is not None:
            try:
                self.blobs.stat(config.digest)
            except ErrBlobUnknown:
                self.blobs.put(config.media_type, data)
        problems: list[OciStoreError] = []
        for ref in [config, *self._references]:
            if ref.urls:
                continue
            try:
                stored = self.blobs.stat(ref.digest)
            except ErrBlobUnknown:
                problems.append(
                    ErrManifestBlobUnknown(
                        f"blob {ref.digest} ({ref.media_type}) is not stored",
                        detail={"digest": str(ref.digest)},
                    )
                )
                continue
            if stored.size != ref.size:
                problems.append(
                    ErrBlobInvalidLength(
                        f"blob {ref.digest} has {stored.size} bytes; its descriptor says "
                        f"{ref.size}",
                        detail={"digest": str(ref.digest), "size": stored.size},
                    )
                )
        _raise_problems(problems)
        return self._finish({"config": config.to_dict()}, "layers")


class IndexBuilder(_Builder):
    """An OCI image index (or, with ``media_type=DOCKER_MANIFEST_LIST``, a Docker manifest list)
    of manifests stored in ``manifests``, typically a repository's ``manifests()``."""

    _docker_media_type = DOCKER_MANIFEST_LIST

    def __init__(self, manifests: ManifestService, *, media_type: str = OCI_INDEX) -> None:
        if media_type not in (OCI_INDEX, DOCKER_MANIFEST_LIST):
            raise ErrManifestInvalid(f"IndexBuilder builds indexes, not {media_type}")
        super().__init__(media_type)
        self.manifests = manifests

    def append_reference(
        self,
        dependency: Describable,
        *,
        platform: Platform | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Adds a manifest (a ``Manifest``, or its descriptor), for ``platform`` if given."""
        descriptor = dependency.descriptor()
        changes: dict[str, Any] = {}
        if platform is not None:
            changes["platform"] = platform
        if annotations is not None:
            changes["annotations"] = dict(annotations)
        self._references.append(dataclasses.replace(descriptor, **changes))

    def build(self) -> Manifest:
        """The index; ``ErrManifestVerification`` if a manifest it lists is not in
        ``manifests``."""
        _raise_problems(
            [
                ErrManifestBlobUnknown(
                    f"manifest {ref.digest} is not stored", detail={"digest": str(ref.digest)}
                )
                for ref in self._references
                if not self.manifests.exists(ref.digest)
            ]
        )
        return self._finish({}, "manifests")
