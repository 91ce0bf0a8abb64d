"""A stand-in for the ``resumablesha256`` package (``resumablesha256.sha256``).

``sha256`` here is ``ocistore.hashing.sha256``: the same constructor (``sha256(data=b"", /)``,
positional), hashlib's methods and attributes, and resumable by pickling. Differences:

- Pickles are not interchangeable: a pickle names its class, and this one is
  ``ocistore.hashing.sha256`` holding Go's 108-byte state, where ``resumablesha256.sha256`` holds
  the 112-byte C structure of B-Con's implementation. ``loads`` reads both kinds (converting the
  old state), so stored pickles of the old package keep working; the old package cannot read
  the new ones.
- Code that unpickles with a class allow-list (Quay's ``data.fields._SafeUnpickler`` allows only
  ``resumablesha256.sha256``) must allow ``ocistore.hashing.sha256`` too, or call ``loads``,
  which is such an allow-list already.
- All pickle protocols work (the old package refuses protocols 0 and 1).
- Any contiguous buffer is accepted (``bytearray``, ``memoryview``); the old package takes only
  ``bytes``. ``str`` is refused by both.
- Keyword arguments are refused with ``TypeError``; the old package silently ignores them, so
  ``resumablesha256.sha256(data=b"x")`` there hashes nothing.
- The old package's states are read as little-endian, the byte order of the machines its wheels
  are built for.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Final

from ..errors import ErrHashStateInvalid
from ..hashing import sha256

__all__ = ["from_legacy_state", "loads", "sha256"]

#: ``struct { BYTE data[64]; WORD datalen; unsigned long long bitlen; WORD state[8]; }``, with
#: four bytes of padding before ``bitlen``.
LEGACY_STATE_SIZE: Final = 112
_LEGACY = struct.Struct("<64sI4xQ8I")


def from_legacy_state(state: bytes) -> sha256:
    """A hasher continuing from a state of the ``resumablesha256`` package (what its pickles
    hold); ``ErrHashStateInvalid`` if the bytes are not one."""
    if len(state) != LEGACY_STATE_SIZE:
        raise ErrHashStateInvalid(
            f"resumablesha256 state is {LEGACY_STATE_SIZE} bytes, got {len(state)}"
        )
    buffered, datalen, bitlen, *words = _LEGACY.unpack(state)
    # The package counts whole 64-byte blocks in bitlen and keeps the rest in data[:datalen].
    if datalen >= 64 or bitlen % 512:
        raise ErrHashStateInvalid(
            f"not a resumablesha256 state: {datalen} buffered bytes, {bitlen} bits hashed"
        )
    length = bitlen // 8 + datalen
    go_state = (
        b"sha\x03"
        + struct.pack(">8I", *words)
        + buffered[:datalen].ljust(64, b"\0")
        + struct.pack(">Q", length)
    )
    return sha256.from_state(go_state)


class _LegacyPickle:
    """What a ``resumablesha256.sha256`` pickle unpickles to here: its state, to convert."""

    __slots__ = ("state",)

    def __setstate__(self, state: bytes) -> None:
        self.state = state


_ALLOWED: Final[dict[tuple[str, str], type]] = {
    ("resumablesha256", "sha256"): _LegacyPickle,
    ("ocistore.hashing", "sha256"): sha256,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str, /) -> object:
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        # Protocols 0 to 2 spell bytes as a call to _codecs.encode; it builds data, nothing else.
        if (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden class {module}.{name}: only sha256 hashers load")


def loads(data: bytes) -> sha256:
    """Unpickles a sha256 hasher pickled by this module or by ``resumablesha256``.

    Only those classes are looked up, so a crafted pickle cannot run code.
    """
    obj = _Unpickler(io.BytesIO(data)).load()
    if isinstance(obj, _LegacyPickle):
        return from_legacy_state(obj.state)
    if isinstance(obj, sha256):
        return obj
    raise pickle.UnpicklingError(f"not a pickled sha256 hasher: {type(obj).__name__}")
