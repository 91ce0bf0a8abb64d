"""Bulk import against its baselines, in one run.

    python benches/import_compare.py [--size-mib 2048] [--layers 40] [--repeat 5] [--dir DIR]
                                     [--keep-caches] [--json FILE]

A generated OCI image layout of ``--size-mib`` MiB in ``--layers`` layers is imported, durably,
(1) by ``ocistore import`` (parallel, Rust core, fsync at commit), (2) by a naive Python import of
the same layout (per blob: read 1 MiB at a time, ``hashlib.sha256``, write, fsync, rename), and
the machine's durable write rate over the same bytes is measured with ``dd conv=fsync``, both
(3) through the page cache and (4) with ``oflag=direct``; the target compares with the faster.
Each run starts from the same state: previous output removed, everything synced, the page cache
emptied (when run as root; on this VM a run's speed depends on what the cache held before it),
the source read back into the cache. Rounds of (1)-(4) are interleaved; medians are reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ocistore import Registry
from ocistore.bench import MIB
from ocistore.bench.ingest import dd_fsync, warm
from ocistore.bulk import import_image


def make_layout(root: Path, total: int, layers: int) -> None:
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    block = os.urandom(16 * MIB)

    def blob(data_parts: list[bytes], media_type: str) -> dict[str, object]:
        h = hashlib.sha256()
        for part in data_parts:
            h.update(part)
        path = root / "blobs" / "sha256" / h.hexdigest()
        with path.open("wb") as f:
            for part in data_parts:
                f.write(part)
        size = sum(len(p) for p in data_parts)
        return {"mediaType": media_type, "digest": "sha256:" + h.hexdigest(), "size": size}

    # Layers of varied sizes (as real images have), summing to `total`.
    weights = [1 + (i * 7919) % 13 for i in range(layers)]
    sizes = [total * w // sum(weights) for w in weights]
    sizes[0] += total - sum(sizes)
    descriptors = []
    for i, size in enumerate(sizes):
        parts = []
        left = size
        counter = 0
        while left:
            n = min(left, len(block))
            parts.append(i.to_bytes(4, "big") + counter.to_bytes(4, "big") + block[8:n])
            left -= n
            counter += 1
        descriptors.append(blob(parts, "application/vnd.oci.image.layer.v1.tar+gzip"))
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob([config], "application/vnd.oci.image.config.v1+json"),
        "layers": descriptors,
    }
    entry = blob([json.dumps(manifest).encode()], "application/vnd.oci.image.manifest.v1+json")
    entry["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


def naive_import(layout: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted((layout / "blobs" / "sha256").iterdir()):
        h = hashlib.sha256()
        tmp = target / (path.name + ".tmp")
        with path.open("rb") as src, tmp.open("wb") as dst:
            while block := src.read(MIB):
                h.update(block)
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
        assert h.hexdigest() == path.name
        os.rename(tmp, target / path.name)
    fd = os.open(target, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def warm_layout(layout: Path) -> None:
    for path in (layout / "blobs" / "sha256").iterdir():
        warm(path)


def drop_caches() -> bool:
    """Empties the page cache (root only), so every run starts from the same memory state."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


#: What is measured, in the order each round runs them.
MEASURES = [
    ("ocistore_import_s", "ocistore import (durable)"),
    ("naive_import_s", "naive Python import (durable)"),
    ("dd_fsync_s", "dd conv=fsync, page cache, 1 MiB"),
    ("dd_direct_s", "dd oflag=direct conv=fsync, 8 MiB"),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--jobs", type=int, default=None, help="ocistore import --jobs")
    parser.add_argument("--caching", choices=["direct", "stream"], default="direct")
    parser.add_argument(
        "--keep-caches", action="store_true",
        help="do not empty the page cache before each run (it is emptied when run as root)",
    )  # fmt: skip
    parser.add_argument(
        "--dir", help="work directory on the disk to measure (default ./.bench-tmp)"
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    base = Path(args.dir or ".bench-tmp")
    base.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MIB
    times: dict[str, list[float]] = {key: [] for key, _ in MEASURES}
    dropped = False
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        work = Path(tmp)
        layout = work / "layout"
        print(f"generating a {args.size_mib} MiB layout in {args.layers} layers ...", flush=True)
        make_layout(layout, size, args.layers)
        root = work / "root"
        naive = work / "naive"
        dd_target = work / "dd.bin"

        def reset() -> None:
            nonlocal dropped
            for path in (root, naive):
                shutil.rmtree(path, ignore_errors=True)
            dd_target.unlink(missing_ok=True)
            if not args.keep_caches:
                dropped = drop_caches()
            warm_layout(layout)
            os.sync()

        runs: dict[str, Callable[[], object]] = {
            "ocistore_import_s": lambda: import_image(
                layout,
                "bench/image",
                "v1",
                registry=Registry(root),
                jobs=args.jobs,
                caching=args.caching,
            ),
            "naive_import_s": lambda: naive_import(layout, naive),
            "dd_fsync_s": lambda: dd_fsync(dd_target, size),
            "dd_direct_s": lambda: dd_fsync(dd_target, size, direct=True),
        }
        # Rounds of all four, interleaved: the disk and the VM drift over minutes, and a
        # drift then touches every measure alike instead of whichever ran during it.
        for round_ in range(args.repeat):
            for key, label in MEASURES:
                reset()
                start = time.perf_counter()
                runs[key]()
                times[key].append(time.perf_counter() - start)
                print(f"  round {round_ + 1}: {label:36}{args.size_mib / times[key][-1]:7.0f} MiB/s",
                      file=sys.stderr, flush=True)  # fmt: skip
        reset()
    results = {key: statistics.median(samples) for key, samples in times.items()}
    mib = size / MIB
    print()
    print(f"medians of {args.repeat} interleaved rounds; page cache "
          + ("emptied before each run" if dropped else "kept between runs"))  # fmt: skip
    for key, label in MEASURES:
        print(f"{label:40}{mib / results[key]:8.0f} MiB/s")
    # The machine's durable write rate: the faster of the two ways dd writes.
    best_dd = min(results["dd_fsync_s"], results["dd_direct_s"])
    ratios = {
        "ocistore_vs_naive": results["naive_import_s"] / results["ocistore_import_s"],
        "ocistore_vs_dd_fsync": results["dd_fsync_s"] / results["ocistore_import_s"],
        "ocistore_vs_dd_direct": results["dd_direct_s"] / results["ocistore_import_s"],
        "ocistore_vs_best_dd": best_dd / results["ocistore_import_s"],
    }
    print()
    print(f"{'ocistore / naive, target >= 1.6':40}{ratios['ocistore_vs_naive']:8.2f}x")
    print(f"{'ocistore / dd conv=fsync':40}{ratios['ocistore_vs_dd_fsync']:8.2f}x")
    print(f"{'ocistore / dd oflag=direct':40}{ratios['ocistore_vs_dd_direct']:8.2f}x")
    print(f"{'ocistore / faster dd, target >= 0.9':40}{ratios['ocistore_vs_best_dd']:8.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "size_mib": args.size_mib, "layers": args.layers, "rounds": args.repeat,
            "page_cache_emptied": dropped, "seconds": times, "medians_s": results,
            "ratios": ratios,
        }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
