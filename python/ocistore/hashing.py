"""hashlib-shaped, resumable hashers backed by the Rust core.

``sha256``/``sha512`` states are Go's ``encoding.BinaryMarshaler`` format (the hash states
distribution writes); ``blake3`` states are ocistore's own versioned format. Pickling stores the
state bytes only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer


from ._core import blake3, sha256, sha512

__all__ = ["algorithms_available", "blake3", "new", "sha256", "sha512"]

Hasher = sha256 | sha512 | blake3

_BY_NAME: dict[str, type[sha256] | type[sha512] | type[blake3]] = {
    "sha256": sha256,
    "sha512": sha512,
    "blake3": blake3,
}

algorithms_available = frozenset(_BY_NAME)


def new(name: str, data: Buffer = b"") -> Hasher:
    try:
        cls = _BY_NAME[name.lower()]
    except KeyError:
        raise ValueError(f"unsupported hash type {name}") from None
    return cls(data)
