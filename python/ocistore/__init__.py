"""ocistore: a container-registry content store with a Rust core."""

from __future__ import annotations

import importlib.metadata

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
#: The installed distribution's version (pyproject.toml is its one owner).
__version__ = importlib.metadata.version("ocistore")
