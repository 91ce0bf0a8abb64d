"""ocistore: a container-registry content store with a Rust core."""

from __future__ import annotations

from . import errors, hashing
from ._core import BlobReader, Digest
from .descriptor import Descriptor, Platform
from .storage import (
    Manifest,
    Registry,
    Repository,
    manifest_media_types,
    register_manifest_schema,
    unmarshal_manifest,
)
from .store import BlobStore, BlobWriter

__all__ = [
    "BlobReader",
    "BlobStore",
    "BlobWriter",
    "Descriptor",
    "Digest",
    "Manifest",
    "Platform",
    "Registry",
    "Repository",
    "errors",
    "hashing",
    "manifest_media_types",
    "register_manifest_schema",
    "unmarshal_manifest",
]
__version__ = "0.1.0"
