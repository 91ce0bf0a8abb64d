"""ocistore's blob core against its baselines, side by side in one run.

    python benches/compare.py [--size-mib 1024] [--repeat 3] [--dir DIR] [--json FILE]

(a) ocistore ingest of a file with fsync at commit; (b) a naive Python ingest of the same file
(read 1 MiB, hashlib.sha256().update, write, fsync, rename); (c) hashlib.sha256 alone over the
same bytes, read the same way (the single-core limit of any ingest that hashes); (d) two ingests
of half the size on two threads vs one after the other; (e) ocistore.hashing.sha256 vs
resumablesha256 (PyPI) over in-memory bytes; (f) resuming an upload whose last 1 MiB was written
after its last checkpoint, against hashing 1 MiB. Also `dd conv=fsync` of the same size, the
machine's durable write rate. Each figure is the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ocistore import BlobStore, hashing

MIB = 1024 * 1024


def median_seconds(
    fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def dd_fsync(target: Path, size: int) -> None:
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", f"bs={MIB}", f"count={size // MIB}", "conv=fsync"],
        check=True,
        capture_output=True,
    )


def run(size: int, repeat: int, workdir: Path) -> dict[str, float]:
    src = workdir / "source.bin"
    make_source(src, size)
    halves = [workdir / "half-a.bin", workdir / "half-b.bin"]
    for half in halves:
        make_source(half, size // 2)
    store_root = workdir / "store"
    naive_root = workdir / "naive"
    naive_root.mkdir()
    store = BlobStore(store_root)

    def reset() -> None:
        shutil.rmtree(store_root, ignore_errors=True)
        shutil.rmtree(naive_root, ignore_errors=True)
        naive_root.mkdir()
        for f in (src, *halves):
            warm(f)
        os.sync()

    expected = hashlib_only(src)
    assert ocistore_ingest(store, src) == "sha256:" + expected
    reset()
    assert naive_ingest(naive_root, src) == expected

    r: dict[str, float] = {}
    r["a_ocistore_ingest_s"] = median_seconds(lambda: ocistore_ingest(store, src), repeat, reset)
    r["b_naive_ingest_s"] = median_seconds(lambda: naive_ingest(naive_root, src), repeat, reset)
    r["c_hashlib_only_s"] = median_seconds(lambda: hashlib_only(src), repeat, reset)
    dd_target = workdir / "dd.bin"
    r["dd_fsync_s"] = median_seconds(lambda: dd_fsync(dd_target, size), repeat, reset)
    dd_target.unlink()

    def sequential() -> None:
        for half in halves:
            ocistore_ingest(store, half)

    def parallel() -> None:
        threads = [threading.Thread(target=ocistore_ingest, args=(store, h)) for h in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    r["d_sequential_s"] = median_seconds(sequential, repeat, reset)
    r["d_two_threads_s"] = median_seconds(parallel, repeat, reset)

    memory = os.urandom(256 * MIB)
    r["e_ocistore_sha256_s"] = median_seconds(lambda: hashing.sha256(memory).digest(), repeat)
    try:
        import resumablesha256

        r["e_resumablesha256_s"] = median_seconds(
            lambda: resumablesha256.sha256(memory).digest(), repeat
        )
    except ImportError:
        print("resumablesha256 is not installed: (e) skipped", file=sys.stderr)
    r["e_bytes"] = len(memory)

    # (f) an upload of `size` bytes checkpointed at size - 1 MiB, then 1 MiB more written.
    reset()
    w = store.create()
    with src.open("rb") as f:
        w.read_from(f)
    upload_id = w.id
    uploads = store_root / "docker/registry/v2/_uploads" / upload_id
    w.close()
    state_dir = uploads / "hashstates/sha256"
    # Rewind the checkpoint to size - 1 MiB: the state a crash right after that checkpoint leaves.
    partial = hashing.sha256()
    with src.open("rb") as f:
        remaining = size - MIB
        while remaining:
            block = f.read(min(16 * MIB, remaining))
            partial.update(block)
            remaining -= len(block)
    for old in state_dir.iterdir():
        old.unlink()
    (state_dir / str(size - MIB)).write_bytes(partial.state())
    os.sync()
    resumed: list[int] = []
    r["f_resume_s"] = median_seconds(lambda: resumed.append(store.resume(upload_id).size), repeat)
    assert resumed[-1] == size
    tail = memory[:MIB]
    r["f_hash_1mib_s"] = median_seconds(lambda: hashing.sha256(tail).digest(), max(repeat, 5))
    store.resume(upload_id).cancel()
    r["size_bytes"] = size
    return r


def report(r: dict[str, float]) -> str:
    size_mib = r["size_bytes"] / MIB

    def rate(key: str, mib: float = size_mib) -> str:
        return f"{mib / r[key]:8.0f} MiB/s"

    rows = [
        ("(a) ocistore ingest, fsync at commit", rate("a_ocistore_ingest_s")),
        ("(b) naive Python ingest (hashlib + write + fsync)", rate("b_naive_ingest_s")),
        ("(c) hashlib.sha256 alone (read + hash)", rate("c_hashlib_only_s")),
        ("    dd conv=fsync (durable write rate)", rate("dd_fsync_s")),
        ("(d) two half-size ingests, one after the other", rate("d_sequential_s")),
        ("(d) two half-size ingests on two threads", rate("d_two_threads_s")),
    ]
    if "e_resumablesha256_s" in r:
        e_mib = r["e_bytes"] / MIB
        rows += [
            ("(e) ocistore.hashing.sha256", rate("e_ocistore_sha256_s", e_mib)),
            ("(e) resumablesha256", rate("e_resumablesha256_s", e_mib)),
        ]
    lines = [f"{name:<52}{value}" for name, value in rows]
    lines.append(
        f"{'(f) resume at size - 1 MiB':<52}{r['f_resume_s'] * 1000:8.2f} ms"
        f"   (hashing 1 MiB: {r['f_hash_1mib_s'] * 1000:.2f} ms)"
    )
    ratios = [
        ("(a)/(b) target >= 1.8", r["b_naive_ingest_s"] / r["a_ocistore_ingest_s"]),
        ("(a)/(c) target >= 0.85", r["c_hashlib_only_s"] / r["a_ocistore_ingest_s"]),
        ("(a)/dd", r["dd_fsync_s"] / r["a_ocistore_ingest_s"]),
        ("(d) threads vs sequential, target >= 1.7", r["d_sequential_s"] / r["d_two_threads_s"]),
    ]
    if "e_resumablesha256_s" in r:
        ratios.append(("(e) target >= 5", r["e_resumablesha256_s"] / r["e_ocistore_sha256_s"]))
    lines.append("")
    lines += [f"{name:<52}{value:8.2f}x" for name, value in ratios]
    budget = r["f_hash_1mib_s"] + 0.001
    lines.append(
        f"{'(f) resume - (hash 1 MiB + 1 ms), target <= 0':<52}"
        f"{(r['f_resume_s'] - budget) * 1000:8.2f} ms"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--dir", help="work directory on the disk to measure (default: ./.bench-tmp)"
    )
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    base = Path(args.dir or ".bench-tmp")
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        results = run(args.size_mib * MIB, args.repeat, Path(tmp))
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
