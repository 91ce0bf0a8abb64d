"""Storage engines that let other registries keep their own code and store through ocistore."""

from __future__ import annotations

from .quay import InvalidStoragePath, OciStoreStorage

__all__ = ["InvalidStoragePath", "OciStoreStorage"]
