"""ocistore: a container-registry content store with a Rust core."""

from __future__ import annotations

from . import errors, hashing
from ._core import BlobReader, Digest
from .descriptor import Descriptor, Platform
from .store import BlobStore, BlobWriter

__all__ = [
    "BlobReader",
    "BlobStore",
    "BlobWriter",
    "Descriptor",
    "Digest",
    "Platform",
    "errors",
    "hashing",
]
__version__ = "0.1.0"
