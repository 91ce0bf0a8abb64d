"""ocistore's blob core against its baselines, side by side in one run.

    python benches/compare.py [--size-mib 1024] [--repeat 3] [--dir DIR] [--json FILE]

(a) ocistore ingest of a file with fsync at commit; (b) a naive Python ingest of the same file
(read 1 MiB, hashlib.sha256().update, write, fsync, rename); (c) hashlib.sha256 alone over the
same bytes, read the same way (the single-core limit of any ingest that hashes); (d) two ingests
of half the size on two threads vs one after the other; (e) ocistore.hashing.sha256 vs
resumablesha256 (PyPI) over in-memory bytes; (f) resuming an upload whose last 1 MiB was written
after its last checkpoint, against hashing 1 MiB. Also `dd conv=fsync` of the same size, the
machine's durable write rate. Each figure is the median of --repeat runs.

(a), (b), (c) and dd are `ocistore bench ingest` (ocistore.bench.ingest); (d), (e) and (f) look
at ocistore's internals and live here, for developers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

from ocistore import hashing
from ocistore.bench import MIB, median_seconds
from ocistore.bench.ingest import (
    MEASUREMENTS,
    Workspace,
    make_source,
    measure_ingest,
    ocistore_ingest,
)


def run(size: int, repeat: int, workdir: Path) -> dict[str, float]:
    """(a), (b), (c) and dd as `ocistore bench ingest` measures them; then (d), (e) and (f),
    which look at ocistore's internals and are for developers only."""
    ws = Workspace.create(workdir, size)
    halves = [workdir / "half-a.bin", workdir / "half-b.bin"]
    for half in halves:
        make_source(half, size // 2)
    ws.warm_files += halves
    r = measure_ingest(ws, repeat)
    store, src, store_root = ws.store, ws.source, ws.store_root

    def sequential() -> None:
        for half in halves:
            ocistore_ingest(store, half)

    def parallel() -> None:
        threads = [threading.Thread(target=ocistore_ingest, args=(store, h)) for h in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    r["d_sequential_s"] = median_seconds(sequential, repeat, ws.reset)
    r["d_two_threads_s"] = median_seconds(parallel, repeat, ws.reset)

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
    ws.reset()
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
    return r


def report(r: dict[str, float]) -> str:
    size_mib = r["size_bytes"] / MIB

    def rate(key: str, mib: float = size_mib) -> str:
        return f"{mib / r[key]:8.0f} MiB/s"

    rows = [(label, rate(key)) for key, label in MEASUREMENTS if key in r]
    rows += [
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
        ("(a)/dd", r.get("dd_fsync_s", float("nan")) / r["a_ocistore_ingest_s"]),
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
