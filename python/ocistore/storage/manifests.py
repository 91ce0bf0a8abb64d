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
from ..errors import ErrDescriptorInvalid, ErrManifestInvalid, ErrSchemaV1Unsupported

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
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
SCHEMA1_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
#: Content types that say nothing of the schema: the payload's own ``mediaType`` decides.
_GENERIC_CONTENT_TYPES = frozenset(
    {"", "application/json", "text/plain", "application/octet-stream"}
)


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


def register_manifest_schema(media_type: str, unmarshal: Unmarshaler) -> None:
    """Adds a schema: ``unmarshal(media_type, payload, parsed_json) -> Manifest``."""
    _SCHEMAS[media_type] = unmarshal


def manifest_media_types() -> list[str]:
    return sorted(_SCHEMAS)


def _invalid(message: str) -> ErrManifestInvalid:
    return ErrManifestInvalid(message)


def _descriptor(value: Any, where: str) -> Descriptor:
    try:
        return Descriptor.from_dict(value)
    except ErrDescriptorInvalid as e:
        raise _invalid(f"{where}: {e.message}") from None


def _common(media_type: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    if doc.get("schemaVersion") != 2:
        raise _invalid(f"{media_type}: schemaVersion must be 2, got {doc.get('schemaVersion')!r}")
    declared = doc.get("mediaType")
    if declared is not None and declared != media_type:
        raise _invalid(f"mediaType in manifest is {declared!r}, but it was sent as {media_type!r}")
    annotations = doc.get("annotations")
    if annotations is not None and (
        not isinstance(annotations, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
    ):
        raise _invalid("annotations must map strings to strings")
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    subject = doc.get("subject")
    return {
        "annotations": annotations,
        "artifact_type": artifact_type,
        "subject": _descriptor(subject, "subject") if subject is not None else None,
    }


def _unmarshal_image(media_type: str, raw: bytes, doc: Mapping[str, Any]) -> Manifest:
    common = _common(media_type, doc)
    if "config" not in doc:
        raise _invalid(f"{media_type}: config is required")
    layers = doc.get("layers", [])
    if not isinstance(layers, list):
        raise _invalid("layers must be a list")
    if media_type == DOCKER_MANIFEST and (common["subject"] or common["artifact_type"]):
        raise _invalid("Docker schema2 manifests have no subject or artifactType")
    return ImageManifest(
        media_type=media_type,
        raw=raw,
        config=_descriptor(doc["config"], "config"),
        layers=tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
        **common,
    )


def _unmarshal_index(media_type: str, raw: bytes, doc: Mapping[str, Any]) -> Manifest:
    common = _common(media_type, doc)
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise _invalid(f"{media_type}: manifests must be a list")
    return ImageIndex(
        media_type=media_type,
        raw=raw,
        manifests=tuple(_descriptor(m, f"manifests[{i}]") for i, m in enumerate(manifests)),
        **common,
    )


for _media_type in (OCI_MANIFEST, DOCKER_MANIFEST):
    register_manifest_schema(_media_type, _unmarshal_image)
for _media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST):
    register_manifest_schema(_media_type, _unmarshal_index)


def _sniff(payload: bytes) -> str:
    """The payload's own media type (the core's rule, which the native front reads stored
    manifests by too): declared, or for OCI manifests without one, their shape."""
    media_type = _core.manifest_media_type(payload)
    if media_type is None:
        raise _invalid("cannot tell the manifest's media type: no Content-Type and no mediaType")
    if media_type in SCHEMA1_MEDIA_TYPES:
        raise ErrSchemaV1Unsupported("Docker schema1 manifests are not supported")
    return media_type


def unmarshal_manifest(content_type: str | None, payload: bytes) -> tuple[Manifest, Descriptor]:
    """Parses ``payload`` sent with ``content_type``; returns the manifest and its descriptor
    (the digest of the exact bytes)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in SCHEMA1_MEDIA_TYPES:
        raise ErrSchemaV1Unsupported(f"{media_type} (Docker schema1) is not supported")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"manifest is not valid JSON: {e}") from None
    except RecursionError:
        raise _invalid("manifest is nested too deeply") from None
    if not isinstance(doc, dict):
        raise _invalid("a manifest must be a JSON object")
    if media_type in _GENERIC_CONTENT_TYPES:
        media_type = _sniff(bytes(payload))
    unmarshal = _SCHEMAS.get(media_type)
    if unmarshal is None:
        raise _invalid(
            f"unsupported manifest media type {media_type!r}; supported: "
            + ", ".join(manifest_media_types())
        )
    manifest = unmarshal(media_type, bytes(payload), doc)
    return manifest, manifest.descriptor()
