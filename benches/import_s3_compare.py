"""Bulk import into object storage, side by side in one run: ``ocistore import --config`` of an
OCI layout straight into a SeaweedFS bucket, against ``skopeo copy`` of the same layout into
distribution 3.1.1 on its own bucket of the same SeaweedFS.

    python benches/import_s3_compare.py [--size-mib 2048] [--layers 40] [--rounds 2]

The layout is generated once (``benches/import_compare.make_layout``: random layers, ``--size-mib``
in all). Each round, alternating: ocistore's import into a fresh bucket, then skopeo into
distribution 3 (``make peers``) on another fresh bucket; the table shows the medians (seconds,
MiB/s) and the ratio. Everything listens on 127.0.0.1; each run is bounded by a timeout.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benches.import_compare import make_layout
from tests.distribution import distribution3
from tests.seaweedfs import seaweedfs

TIMEOUT = 1800


def ocistore_import(layout: Path, storage: dict[str, object], workdir: Path) -> float:
    config = workdir / "ocistore.yml"
    config.write_text(yaml.safe_dump({"storage": storage}))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ocistore.cli", "import", "--config", str(config), str(layout),
         "bench/app:v1"],
        check=True, capture_output=True, timeout=TIMEOUT,
    )  # fmt: skip
    return time.perf_counter() - start


def skopeo_to_distribution3(layout: Path, storage: dict[str, object], workdir: Path) -> float:
    with distribution3(workdir, {"storage": storage}) as client:
        start = time.perf_counter()
        subprocess.run(
            ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
             f"oci:{layout}:v1", f"docker://127.0.0.1:{client.port}/bench/app:v1"],
            check=True, capture_output=True, timeout=TIMEOUT,
        )  # fmt: skip
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ocistore-import-s3-") as tmp:
        base = Path(tmp)
        layout = base / "layout"
        make_layout(layout, args.size_mib * 1024 * 1024, args.layers)
        seconds: dict[str, list[float]] = {"ocistore": [], "distribution3": []}
        with seaweedfs(base) as weed:
            for i in range(args.rounds):
                s3 = weed.storage_s3(weed.bucket())
                seconds["ocistore"].append(ocistore_import(layout, {"s3": s3}, base))
                s3 = weed.storage_s3(weed.bucket())
                seconds["distribution3"].append(
                    skopeo_to_distribution3(layout, {"s3": s3, "redirect": {"disable": True}}, base)
                )
                print(
                    f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in seconds.items())
                )
    medians = {k: statistics.median(v) for k, v in seconds.items()}
    for kind, value in medians.items():
        print(f"{kind:<16} {value:8.1f} s  {args.size_mib / value:8.1f} MiB/s")
    print(
        f"ocistore / distribution 3 (rate): {medians['distribution3'] / medians['ocistore']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
