"""Drop-in replacements for other resumable-hasher packages, backed by ``ocistore.hashing``.

``from ocistore.compat import resumablesha256`` replaces ``import resumablesha256``, and
``from ocistore.compat import rehash`` replaces ``import rehash``; each module's docstring lists
where it differs from the package it stands in for.
"""

from __future__ import annotations

from . import rehash, resumablesha256

__all__ = ["rehash", "resumablesha256"]
