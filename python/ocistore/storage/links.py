"""Links as the registry services read them: a link holds ``<alg>:<hex>`` and nothing else, as
distribution writes it (the keys are the core's ``Layout``; the blob protocol is the core's
``crate::linked``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _core
from .._core import Digest, Layout
from .driver import StorageDriver

if TYPE_CHECKING:
    pass

__all__ = ["linked_digests", "parse_link", "read_link", "write_link"]

DigestLike = Digest | str


def parse_link(data: bytes | None) -> Digest | None:
    """The digest a link holds (the core's reading of a link); None when there is no link or it
    does not hold a digest."""
    if data is None:
        return None
    return Layout.parse_link(data)


def read_link(path: Path) -> Digest | None:
    """A link file's digest (for the filesystem-only tools: fsck, gc)."""
    try:
        return parse_link(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def write_link(path: Path, digest: Digest) -> None:
    _core.write_file_atomic(path, str(digest).encode())


def linked_digests(driver: StorageDriver, base: str) -> Iterator[tuple[Digest, str]]:
    """``(digest, link key)`` for every ``<base>/<alg>/<hex>/link`` whose content matches."""
    for alg in driver.list(base):
        for hex_ in driver.list(f"{base}/{alg}"):
            link = f"{base}/{alg}/{hex_}/{Layout.LINK}"
            digest = parse_link(driver.read(link))
            if digest is not None and digest.algorithm == alg and digest.hex == hex_:
                yield digest, link
