"""Bulk import against its baselines, in one run.

    python benches/import_compare.py [--size-mib 2048] [--layers 40] [--repeat 3] [--dir DIR]

A generated OCI image layout of ``--size-mib`` MiB in ``--layers`` layers is imported, durably,
(1) by ``ocistore import`` (parallel, Rust core, fsync at commit), (2) by a naive Python import of
the same layout (per blob: read 1 MiB at a time, ``hashlib.sha256``, write, fsync, rename), and
the machine's durable write rate over the same bytes is measured with (3) ``dd conv=fsync``.
Page caches are warmed for the source and synced before each run. Medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ocistore import Registry
from ocistore.bench import MIB, median_seconds
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=None, help="ocistore import --jobs")
    parser.add_argument("--caching", choices=["direct", "stream"], default="direct")
    parser.add_argument(
        "--dir", help="work directory on the disk to measure (default ./.bench-tmp)"
    )
    args = parser.parse_args()
    base = Path(args.dir or ".bench-tmp")
    base.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        work = Path(tmp)
        layout = work / "layout"
        print(f"generating a {args.size_mib} MiB layout in {args.layers} layers ...", flush=True)
        make_layout(layout, size, args.layers)
        root = work / "root"
        naive = work / "naive"
        dd_target = work / "dd.bin"

        def reset() -> None:
            for path in (root, naive):
                shutil.rmtree(path, ignore_errors=True)
            dd_target.unlink(missing_ok=True)
            warm_layout(layout)
            os.sync()

        def ocistore_import() -> None:
            import_image(
                layout, "bench/image", "v1", registry=Registry(root), jobs=args.jobs,
                caching=args.caching,
            )  # fmt: skip

        results = {
            "ocistore_import_s": median_seconds(ocistore_import, args.repeat, reset),
            "naive_import_s": median_seconds(
                lambda: naive_import(layout, naive), args.repeat, reset
            ),
            "dd_fsync_s": median_seconds(lambda: dd_fsync(dd_target, size), args.repeat, reset),
        }
        reset()
    mib = size / MIB
    print(f"{'ocistore import (durable)':40}{mib / results['ocistore_import_s']:8.0f} MiB/s")
    print(f"{'naive Python import (durable)':40}{mib / results['naive_import_s']:8.0f} MiB/s")
    print(f"{'dd conv=fsync (durable write rate)':40}{mib / results['dd_fsync_s']:8.0f} MiB/s")
    print()
    print(
        f"{'ocistore / naive, target >= 1.6':40}{results['naive_import_s'] / results['ocistore_import_s']:8.2f}x"
    )
    print(
        f"{'ocistore / dd, target >= 0.9':40}{results['dd_fsync_s'] / results['ocistore_import_s']:8.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
