"""Hashers over in-memory bytes: ocistore's against hashlib, blake3 (PyPI) and resumablesha256.

make bench    # or: pytest benches -o python_files='bench_*.py' --benchmark-only
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import blake3 as blake3_reference
import pytest
from ocistore import hashing

try:
    import resumablesha256
except ImportError:  # pragma: no cover - an optional baseline
    resumablesha256 = None

DATA = os.urandom(64 * 1024 * 1024)
SMALL = os.urandom(4096)

HASHERS: dict[str, Callable[[bytes], Any]] = {
    "ocistore.sha256": hashing.sha256,
    "hashlib.sha256": hashlib.sha256,
    "ocistore.sha512": hashing.sha512,
    "hashlib.sha512": hashlib.sha512,
    "ocistore.blake3": hashing.blake3,
    "blake3-py": blake3_reference.blake3,
}
if resumablesha256 is not None:
    HASHERS["resumablesha256"] = resumablesha256.sha256


@pytest.mark.parametrize("name", list(HASHERS))
def test_hash_64mib(benchmark: Any, name: str) -> None:
    benchmark.group = "hash 64 MiB " + name.split(".")[-1].replace("-py", "").replace(
        "resumablesha256", "sha256"
    )
    digest = benchmark(lambda: HASHERS[name](DATA).digest())
    assert len(digest) in (32, 64)


@pytest.mark.parametrize("name", list(HASHERS))
def test_hash_4kib(benchmark: Any, name: str) -> None:
    benchmark.group = "hash 4 KiB"
    benchmark(lambda: HASHERS[name](SMALL).digest())


def test_state_round_trip(benchmark: Any) -> None:
    h = hashing.sha256(DATA[:100_000])
    restored = benchmark(lambda: hashing.sha256.from_state(h.state()))
    assert restored.digest() == h.digest()
