"""The manifest schema registry: media type -> parser, and the built-in schemas.

Built in: OCI image manifest and image index, Docker schema2 manifest and manifest list, with
OCI 1.1 ``artifactType``, ``subject`` and annotations. A manifest keeps the exact bytes it was
parsed from: ``payload()`` returns them and its digest is theirs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from .. import _core, hashing
from .._core import Digest
from ..descriptor import Descriptor, go_json
from ..errors import ErrManifestInvalid

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SCHEMA1_MEDIA_TYPES",
    "ImageIndex",
    "ImageManifest",
    "Manifest",
    "manifest_media_types",
    "register_manifest_schema",
    "unmarshal_manifest",
]

# The core's, which reads a stored manifest's media type by them (``_core.manifest_media_type``).
OCI_MANIFEST: str = _core.OCI_MANIFEST
OCI_INDEX: str = _core.OCI_INDEX
DOCKER_MANIFEST: str = _core.DOCKER_MANIFEST
DOCKER_MANIFEST_LIST: str = _core.DOCKER_MANIFEST_LIST
OCI_EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
SCHEMA1_MEDIA_TYPES: frozenset[str] = frozenset(_core.SCHEMA1_MEDIA_TYPES)


@dataclass(frozen=True)
class Manifest:
    """What every schema offers: its media type, its exact bytes, and what it references."""

    media_type: str
    raw: bytes = field(repr=False)
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    #: The algorithm the manifest is addressed by: sha256 unless it was pushed by (or read as)
    #: a digest in another one (distribution-spec: content in sha512 or blake3 end to end).
    algorithm: str = field(default="sha256", compare=False)

    def payload(self) -> bytes:
        return self.raw

    def in_algorithm(self, algorithm: str) -> Self:
        """The same manifest, addressed by a digest in ``algorithm``."""
        if algorithm == self.algorithm:
            return self
        return replace(self, algorithm=algorithm)

    def references(self) -> list[Descriptor]:
        return []

    @property
    def digest(self) -> Digest:
        if self.algorithm == "sha256":
            return Digest("sha256:" + hashlib.sha256(self.raw).hexdigest())
        return Digest.from_bytes(self.algorithm, hashing.new(self.algorithm, self.raw).digest())

    def descriptor(self) -> Descriptor:
        return Descriptor(media_type=self.media_type, digest=self.digest, size=len(self.raw))

    def referrer_descriptor(self) -> Descriptor:
        """This manifest as an entry of a referrers index (OCI distribution-spec v1.1)."""
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=len(self.raw),
            annotations=self.annotations,
            artifact_type=self.effective_artifact_type,
        )

    @property
    def effective_artifact_type(self) -> str | None:
        return self.artifact_type


@dataclass(frozen=True)
class ImageManifest(Manifest):
    """An OCI image manifest or a Docker schema2 manifest: a config and layers."""

    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()

    def references(self) -> list[Descriptor]:
        return ([self.config] if self.config is not None else []) + list(self.layers)

    @property
    def effective_artifact_type(self) -> str | None:
        # The spec: artifactType if set, else the config's media type.
        if self.artifact_type is not None:
            return self.artifact_type
        return self.config.media_type if self.config is not None else None


@dataclass(frozen=True)
class ImageIndex(Manifest):
    """An OCI image index or a Docker manifest list: other manifests."""

    manifests: tuple[Descriptor, ...] = ()

    def references(self) -> list[Descriptor]:
        return list(self.manifests)

    @classmethod
    def build(
        cls,
        manifests: list[Descriptor],
        *,
        media_type: str = OCI_INDEX,
        annotations: Mapping[str, str] | None = None,
        artifact_type: str | None = None,
        subject: Descriptor | None = None,
    ) -> ImageIndex:
        """A new index, serialized compactly as Go would."""
        body: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type is not None:
            body["artifactType"] = artifact_type
        body["manifests"] = [m.to_dict() for m in manifests]
        if subject is not None:
            body["subject"] = subject.to_dict()
        if annotations is not None:
            body["annotations"] = dict(sorted(annotations.items()))
        return cls(
            media_type=media_type,
            raw=go_json(body),
            annotations=annotations,
            subject=subject,
            artifact_type=artifact_type,
            manifests=tuple(manifests),
        )


Unmarshaler = Callable[[str, bytes, Mapping[str, Any]], Manifest]
_SCHEMAS: dict[str, Unmarshaler] = {}


#: The schemas the core parses (``_core.parse_pushed_manifest``).
_BUILT_IN: frozenset[str] = frozenset(_core.BUILT_IN_MANIFEST_TYPES)


def register_manifest_schema(media_type: str, unmarshal: Unmarshaler) -> None:
    """Adds a schema: ``unmarshal(media_type, payload, parsed_json) -> Manifest``. The built-in
    schemas cannot be replaced: the native front reads them too."""
    if media_type in _BUILT_IN:
        raise ValueError(f"{media_type} is a built-in schema, which cannot be replaced")
    _SCHEMAS[media_type] = unmarshal


def manifest_media_types() -> list[str]:
    return sorted(_BUILT_IN | _SCHEMAS.keys())


def _descriptors(items: list[_core.DescriptorFields] | None) -> tuple[Descriptor, ...]:
    return tuple(Descriptor.from_core(item) for item in items or ())


def _built_in(media_type: str, raw: bytes, fields: _core.ManifestFields) -> Manifest:
    """A manifest of a built-in schema from what the core parsed."""
    annotations, artifact_type, subject, config, layers, manifests = fields
    common: dict[str, Any] = {
        "media_type": media_type,
        "raw": raw,
        "annotations": annotations,
        "artifact_type": artifact_type,
        "subject": Descriptor.from_core(subject) if subject is not None else None,
    }
    if manifests is not None:
        return ImageIndex(manifests=_descriptors(manifests), **common)
    return ImageManifest(
        config=Descriptor.from_core(config) if config is not None else None,
        layers=_descriptors(layers),
        **common,
    )


def unmarshal_manifest(content_type: str | None, payload: bytes) -> tuple[Manifest, Descriptor]:
    """Parses ``payload`` sent with ``content_type``; returns the manifest and its descriptor
    (the digest of the exact bytes). The built-in schemas are the core's (the native front
    parses pushed manifests by the same rules); other media types go to the schemas registered
    with ``register_manifest_schema``."""
    raw = bytes(payload)
    media_type, fields = _core.parse_pushed_manifest(content_type, raw)
    if fields is not None:
        manifest = _built_in(media_type, raw, fields)
    else:
        unmarshal = _SCHEMAS.get(media_type)
        if unmarshal is None:
            raise ErrManifestInvalid(
                f"unsupported manifest media type {media_type!r}; supported: "
                + ", ".join(manifest_media_types())
            )
        # The core has checked that the payload is a JSON object.
        manifest = unmarshal(media_type, raw, json.loads(raw))
    return manifest, manifest.descriptor()
