"""Blob store ingest and read paths.

make bench    # or: pytest benches -o python_files='bench_*.py' --benchmark-only
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from ocistore import BlobStore

SIZE = 128 * 1024 * 1024


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "blob"
    path.write_bytes(os.urandom(SIZE))
    return path


def test_ingest_file_128mib(benchmark: Any, source: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"

    def setup() -> None:
        shutil.rmtree(root, ignore_errors=True)

    def ingest() -> str:
        store = BlobStore(root)
        with source.open("rb") as f:
            w = store.create()
            w.read_from(f)
            return str(w.commit(w.digest()).digest)

    digest = benchmark.pedantic(ingest, setup=setup, rounds=5)
    assert digest == "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()


def test_naive_python_ingest_128mib(benchmark: Any, source: Path, tmp_path: Path) -> None:
    def ingest() -> str:
        h = hashlib.sha256()
        tmp = tmp_path / "upload"
        with source.open("rb") as src, tmp.open("wb") as dst:
            while block := src.read(1024 * 1024):
                h.update(block)
                dst.write(block)
            os.fsync(dst.fileno())
        os.rename(tmp, tmp_path / h.hexdigest())
        return h.hexdigest()

    benchmark.pedantic(ingest, rounds=5)


def test_put_4kib(benchmark: Any, tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "root")
    counter = iter(range(10**9))

    def put() -> None:
        store.put("application/octet-stream", next(counter).to_bytes(8, "big") * 512)

    benchmark.pedantic(put, rounds=200)
    assert len(list(store.enumerate())) == 200


def test_read_at_1mib(benchmark: Any, source: Path, tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "root")
    with source.open("rb") as f:
        w = store.create()
        w.read_from(f)
        digest = w.commit(w.digest()).digest
    offsets = iter(range(0, SIZE - (1 << 20), 4096 * 1021))
    with store.open(digest) as reader:
        benchmark(lambda: reader.read_at(next(offsets, 0), 1 << 20))
