"""OCI content descriptors, kept in the wire format.

``Descriptor.from_dict(d).to_dict() == d`` for every valid descriptor ``d``: absent fields stay
absent and present-but-empty ones stay present. ``to_json()`` writes the compact form with the
field order and HTML escaping of Go's ``encoding/json``, as distribution and containerd do.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _core
from ._core import Digest
from .errors import ErrDescriptorInvalid

__all__ = ["OCTET_STREAM", "Descriptor", "Platform", "go_json"]

OCTET_STREAM = "application/octet-stream"


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it (``<``, ``>``, ``&`` escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode()


#: The largest size a descriptor may give: Go's ``int64``, which distribution and every Go
#: client decode it into (a larger one would be a different number to them).
SIZE_MAX: int = _core.DESCRIPTOR_SIZE_MAX


def _bad(message: str) -> ErrDescriptorInvalid:
    return ErrDescriptorInvalid(message)


@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str
    os_version: str | None = None
    os_features: tuple[str, ...] | None = None
    variant: str | None = None
    features: tuple[str, ...] | None = None

    @classmethod
    def from_core(cls, fields: _core.PlatformFields) -> Platform:
        """A platform from the fields the core parsed (``Descriptor.from_dict``)."""
        architecture, os, os_version, os_features, variant, features = fields
        return cls(
            architecture=architecture,
            os=os,
            os_version=os_version,
            os_features=tuple(os_features) if os_features is not None else None,
            variant=variant,
            features=tuple(features) if features is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version is not None:
            out["os.version"] = self.os_version
        if self.os_features is not None:
            out["os.features"] = list(self.os_features)
        if self.variant is not None:
            out["variant"] = self.variant
        if self.features is not None:
            out["features"] = list(self.features)
        return out


@dataclass(frozen=True)
class Descriptor:
    """What a registry knows of a piece of content: its media type, digest and size."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] | None = None
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    data: bytes | None = None
    platform: Platform | None = None
    artifact_type: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.digest, Digest):
            object.__setattr__(self, "digest", Digest(self.digest))
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int)
            or not 0 <= self.size <= SIZE_MAX
        ):
            raise _bad(
                f"descriptor size must be an integer from 0 to {SIZE_MAX} (Go's int64), "
                f"not {self.size!r}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Descriptor:
        """A descriptor from its JSON object, checked by the core's grammar (``_core``), which
        the manifest parser and the native front read descriptors by too."""
        if not isinstance(d, Mapping):
            raise _bad("a descriptor must be a JSON object")
        try:
            payload = json.dumps(dict(d), allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            raise _bad(f"a descriptor must hold JSON values only: {e}") from None
        except RecursionError:
            raise _bad("descriptor is nested too deeply") from None
        return cls.from_core(_core.parse_descriptor(payload))

    @classmethod
    def from_json(cls, payload: bytes | str) -> Descriptor:
        return cls.from_core(
            _core.parse_descriptor(payload.encode() if isinstance(payload, str) else payload)
        )

    @classmethod
    def from_core(cls, fields: _core.DescriptorFields) -> Descriptor:
        """A descriptor from the fields the core parsed."""
        media_type, digest, size, urls, annotations, data, platform, artifact_type = fields
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            urls=tuple(urls) if urls is not None else None,
            annotations=annotations,
            data=data,
            platform=Platform.from_core(platform) if platform is not None else None,
            artifact_type=artifact_type,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls is not None:
            out["urls"] = list(self.urls)
        if self.annotations is not None:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode()
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        return out

    def to_json(self) -> bytes:
        return go_json(self.to_dict())

    def descriptor(self) -> Descriptor:
        """Itself: a descriptor is ``Describable``, so anything that takes a describable object
        (``ManifestBuilder.append_reference``) takes a plain descriptor too."""
        return self
