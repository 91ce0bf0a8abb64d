"""OCI content descriptors, kept in the wire format.

``Descriptor.from_dict(d).to_dict() == d`` for every valid descriptor ``d``: absent fields stay
absent and present-but-empty ones stay present. ``to_json()`` writes the compact form with the
field order and HTML escaping of Go's ``encoding/json``, as distribution and containerd do.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
SIZE_MAX = 2**63 - 1


def _bad(message: str) -> ErrDescriptorInvalid:
    return ErrDescriptorInvalid(message)


def _str(d: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    if key not in d:
        if required:
            raise _bad(f"descriptor field {key!r} is required")
        return None
    value = d[key]
    if not isinstance(value, str):
        raise _bad(f"descriptor field {key!r} must be a string, not {type(value).__name__}")
    return value


def _str_list(d: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    if key not in d:
        return None
    value = d[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"descriptor field {key!r} must be a list of strings")
    return tuple(value)


def _str_map(d: Mapping[str, Any], key: str) -> dict[str, str] | None:
    if key not in d:
        return None
    value = d[key]
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _bad(f"descriptor field {key!r} must map strings to strings")
    return dict(value)


@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str
    os_version: str | None = None
    os_features: tuple[str, ...] | None = None
    variant: str | None = None
    features: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Platform:
        if not isinstance(d, Mapping):
            raise _bad("platform must be an object")
        return cls(
            architecture=_str(d, "architecture", required=True) or "",
            os=_str(d, "os", required=True) or "",
            os_version=_str(d, "os.version"),
            os_features=_str_list(d, "os.features"),
            variant=_str(d, "variant"),
            features=_str_list(d, "features"),
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
        if not isinstance(d, Mapping):
            raise _bad("a descriptor must be a JSON object")
        digest_text = _str(d, "digest", required=True) or ""
        size = d.get("size")
        if "size" not in d:
            raise _bad("descriptor field 'size' is required")
        if isinstance(size, bool) or not isinstance(size, int):
            raise _bad("descriptor field 'size' must be an integer")
        data: bytes | None = None
        encoded = _str(d, "data")
        if encoded is not None:
            try:
                data = base64.b64decode(encoded, validate=True)
            except binascii.Error as e:
                raise _bad(f"descriptor field 'data' is not base64: {e}") from None
        platform = d.get("platform")
        return cls(
            media_type=_str(d, "mediaType", required=True) or "",
            digest=Digest(digest_text),
            size=size,
            urls=_str_list(d, "urls"),
            annotations=_str_map(d, "annotations"),
            data=data,
            platform=Platform.from_dict(platform) if platform is not None else None,
            artifact_type=_str(d, "artifactType"),
        )

    @classmethod
    def from_json(cls, payload: bytes | str) -> Descriptor:
        try:
            parsed = json.loads(payload)
        except ValueError as e:
            raise _bad(f"descriptor is not JSON: {e}") from None
        except RecursionError:
            raise _bad("descriptor is nested too deeply") from None
        return cls.from_dict(parsed)

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
