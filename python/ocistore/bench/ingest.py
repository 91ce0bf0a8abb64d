"""The core ingest comparison, on the disk of a given directory.

(a) ocistore ingest of a file with fsync at commit; (b) a naive Python ingest of the same file
(read 1 MiB, hashlib.sha256().update, write, fsync, rename); (c) hashlib.sha256 alone over the
same bytes, read the same way (the single-core limit of any ingest that hashes); and
``dd conv=fsync`` of the same size, the machine's durable write rate. Each figure is the median
of ``repeat`` runs, each run after the page cache was written back and the sources read into it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..store import BlobStore
from . import MIB, Row, format_table, measurement, median_seconds

#: (result key, label) of each measurement, in the order they run.
MEASUREMENTS = [
    ("a_ocistore_ingest_s", "(a) ocistore ingest, fsync at commit"),
    ("b_naive_ingest_s", "(b) naive Python ingest (hashlib + write + fsync)"),
    ("c_hashlib_only_s", "(c) hashlib.sha256 alone (read + hash)"),
    ("dd_fsync_s", "    dd conv=fsync (durable write rate)"),
]


def make_source(path: Path, size: int) -> None:
    block = os.urandom(16 * MIB)
    with path.open("wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])


def warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(16 * MIB):
            pass


def ocistore_ingest(store: BlobStore, source: Path) -> str:
    with source.open("rb") as f:
        w = store.create(caching="stream")  # bulk ingest, as `ocistore ingest` does
        w.read_from(f)
        return str(w.commit(w.digest()).digest)


def naive_ingest(root: Path, source: Path) -> str:
    h = hashlib.sha256()
    tmp = root / f"naive-{threading.get_ident()}.tmp"
    with source.open("rb") as src, tmp.open("wb") as dst:
        while block := src.read(MIB):
            h.update(block)
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    final = root / h.hexdigest()
    os.rename(tmp, final)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return h.hexdigest()


def hashlib_only(source: Path) -> str:
    h = hashlib.sha256()
    with source.open("rb") as f:
        while block := f.read(MIB):
            h.update(block)
    return h.hexdigest()


def dd_fsync(target: Path, size: int, *, direct: bool = False) -> None:
    """``dd conv=fsync`` of ``size`` zero bytes: through the page cache in 1 MiB writes, or with
    ``direct`` straight to the device (``oflag=direct``) in 8 MiB writes."""
    block = 8 * MIB if direct else MIB
    flags = ["oflag=direct"] if direct else []
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", f"bs={block}", f"count={size // block}",
         *flags, "conv=fsync"],
        check=True,
        capture_output=True,
    )  # fmt: skip


@dataclass
class Workspace:
    """The files the measurements read and write, all in ``root``: a random source file of
    ``size`` bytes, an ocistore store, the naive ingest's directory. ``warm_files`` are read into
    the page cache before each run (a caller adds sources of its own)."""

    root: Path
    size: int
    source: Path
    store_root: Path
    naive_root: Path
    store: BlobStore
    warm_files: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, size: int) -> Workspace:
        source = root / "source.bin"
        make_source(source, size)
        store_root = root / "store"
        naive_root = root / "naive"
        naive_root.mkdir()
        return cls(root, size, source, store_root, naive_root, BlobStore(store_root), [source])

    def reset(self) -> None:
        """Empty the store and the naive directory, warm the sources, write everything back."""
        shutil.rmtree(self.store_root, ignore_errors=True)
        shutil.rmtree(self.naive_root, ignore_errors=True)
        self.naive_root.mkdir()
        for path in self.warm_files:
            warm(path)
        os.sync()


def measure_ingest(workspace: Workspace, repeat: int) -> dict[str, float]:
    """(a), (b), (c) and dd as median seconds under the keys of :data:`MEASUREMENTS`, and
    ``size_bytes``. dd is left out where it is missing or lacks ``conv=fsync`` (BSD dd)."""
    ws = workspace
    expected = hashlib_only(ws.source)
    # Both ingests must store the right bytes, or their speed means nothing.
    if (got := ocistore_ingest(ws.store, ws.source)) != "sha256:" + expected:
        raise RuntimeError(f"ocistore ingest stored {got}, the source is sha256:{expected}")
    ws.reset()
    if (got := naive_ingest(ws.naive_root, ws.source)) != expected:
        raise RuntimeError(f"the naive ingest stored {got}, the source is sha256:{expected}")

    dd_target = ws.root / "dd.bin"
    runs = {
        "a_ocistore_ingest_s": lambda: ocistore_ingest(ws.store, ws.source),
        "b_naive_ingest_s": lambda: naive_ingest(ws.naive_root, ws.source),
        "c_hashlib_only_s": lambda: hashlib_only(ws.source),
        "dd_fsync_s": lambda: dd_fsync(dd_target, ws.size),
    }
    results: dict[str, float] = {}
    for key, label in MEASUREMENTS:
        if key == "dd_fsync_s" and not _dd_works(dd_target):
            continue
        with measurement(label.strip(), repeat, "run") as advance:
            results[key] = median_seconds(runs[key], repeat, ws.reset, advance)
    dd_target.unlink(missing_ok=True)
    results["size_bytes"] = ws.size
    return results


def _dd_works(target: Path) -> bool:
    try:
        dd_fsync(target, MIB)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def with_rates(results: dict[str, float]) -> dict[str, float]:
    """``results`` and, for each ``<name>_s``, ``<name>_mibps``."""
    size_mib = results["size_bytes"] / MIB
    rates = {
        key.removesuffix("_s") + "_mibps": size_mib / results[key]
        for key, _ in MEASUREMENTS
        if key in results
    }
    return {**results, **rates}


def ingest_table(results: dict[str, float]) -> str:
    size_mib = results["size_bytes"] / MIB
    rows: list[Row] = []
    for key, label in MEASUREMENTS:
        seconds = results.get(key)
        rows.append((label, [None if seconds is None else size_mib / seconds, seconds]))
    lines = [format_table(["MiB/s", "seconds"], rows), ""]
    ocistore, naive = results["a_ocistore_ingest_s"], results["b_naive_ingest_s"]
    lines.append(f"(a) runs at {naive / ocistore:.2f}x the rate of (b) and "
                 f"{results['c_hashlib_only_s'] / ocistore:.2f}x that of (c); "
                 f"{size_mib:.0f} MiB, medians")  # fmt: skip
    return "\n".join(lines)
