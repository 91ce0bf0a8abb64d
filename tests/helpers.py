"""Helpers shared by tests and by the subprocesses they start (importable without pytest)."""

from __future__ import annotations

import hashlib


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes, without a slow Python loop."""
    block = b"".join(hashlib.sha512(f"{seed}:{i}".encode()).digest() for i in range(1024))
    reps, rest = divmod(size, len(block))
    return block * reps + block[:rest]
