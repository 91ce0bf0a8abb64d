"""A stand-in for the ``rehash`` package (resumable hashlib hashers).

``new(name, data=None, state=None)``, ``sha256(data=None, state=None)`` and
``sha512(data=None, state=None)`` return ``ocistore.hashing`` hashers: hashlib's methods and
attributes, resumable by pickling. Differences from ``rehash``:

- Only sha256 and sha512 (and blake3 through ``new``): ``rehash`` also has md5, sha1 and sha224
  (its sha384 is skipped by its own ``sha3`` prefix test). Other names raise ``ValueError``.
- ``sha256``/``sha512`` are functions returning ``ocistore.hashing.sha256``/``sha512``
  instances, not classes: check instances against ``ocistore.hashing.sha256``.
- ``copy()`` returns a resumable hasher (``rehash``'s returns a plain hashlib object), and
  ``sha256(data=b"x")`` hashes ``b"x"`` (``rehash`` drops a ``data`` keyword given to a named
  constructor).
- Pickles are not interchangeable: a pickle names its class, and ``rehash``'s hold OpenSSL's
  internal context; these hold Go's state format and unpickle as ``ocistore.hashing`` classes.
- ``state=`` takes the same encoding as ``rehash`` (base64 of the zlib-compressed state) of
  ocistore's state, as ``state_string(hasher)`` writes it; ``rehash`` embeds its state in
  ``repr()``, ocistore hashers do not, so ``opaque_repr`` is accepted and has no effect.
- ``rehash`` itself refuses to run with OpenSSL 3 (``NotImplementedError``); this does not
  depend on OpenSSL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer

import base64
import binascii
import zlib
from typing import TypeVar

from .. import hashing
from ..errors import ErrHashStateInvalid

H = TypeVar("H", hashing.sha256, hashing.sha512, hashing.blake3)

__all__ = ["new", "opaque_repr", "sha256", "sha512", "state_string"]

#: Kept so that code setting ``rehash.opaque_repr = True`` runs; the repr never holds the state.
opaque_repr = False


def _decode_state(state: str | bytes) -> bytes:
    try:
        return zlib.decompress(base64.b64decode(state, validate=True))
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise ErrHashStateInvalid(
            f"hasher state is not base64 of zlib-compressed bytes: {exc}"
        ) from exc


def _make(cls: type[H], data: Buffer | None, state: str | bytes | None) -> H:
    if state is None:
        return cls() if data is None else cls(data)
    raw = _decode_state(state)
    try:
        hasher = cls.from_state(raw)
    except ErrHashStateInvalid as exc:
        raise ErrHashStateInvalid(
            f"not an ocistore {cls.__name__} state ({exc}); states written by the rehash "
            "package hold OpenSSL's internal context and cannot be read"
        ) from exc
    if data is not None:
        hasher.update(data)
    return hasher


def new(name: str, data: Buffer | None = None, state: str | bytes | None = None) -> hashing.Hasher:
    """A hasher for ``name``; restored from ``state`` (see ``state_string``) when given, then
    fed ``data``. ``ValueError`` for a name ocistore does not hash."""
    key = name.lower()
    if key == "sha256":
        return _make(hashing.sha256, data, state)
    if key == "sha512":
        return _make(hashing.sha512, data, state)
    if key == "blake3":
        return _make(hashing.blake3, data, state)
    raise ValueError(f"unsupported hash type {name}")


def sha256(data: Buffer | None = None, state: str | bytes | None = None) -> hashing.sha256:
    return _make(hashing.sha256, data, state)


def sha512(data: Buffer | None = None, state: str | bytes | None = None) -> hashing.sha512:
    return _make(hashing.sha512, data, state)


def state_string(hasher: hashing.Hasher) -> str:
    """The hasher's state in the text form ``state=`` takes (``rehash`` puts it in ``repr``)."""
    return base64.b64encode(zlib.compress(hasher.state())).decode("ascii")
