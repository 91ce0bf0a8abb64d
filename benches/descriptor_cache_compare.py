"""The blob descriptor cache on S3, side by side in one run: blob HEAD and manifest GET latency of
``ocistore serve`` on SeaweedFS without a cache, with ``inmemory`` and with ``redis``, each
with the native front before the application (``+front``) and without it (``app``).

    python benches/descriptor_cache_compare.py [--count 500] [--rounds 3]

One SeaweedFS and one redis-server on 127.0.0.1 (the tests' fixtures); each configuration is a
fresh server on its own bucket, the configurations alternating for ``--rounds`` rounds. Each
round: ``--count`` HEADs of a small blob, then ``--count`` GETs of a manifest by digest, one
connection each (``ocistore.bench.http``); the table shows p50 and p99 (ms), medians of the rounds.
Loops are bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ocistore.bench.http import Target, expect, heads, latencies, percentile

from tests.images import make_image
from tests.redis_server import redis_server
from tests.seaweedfs import seaweedfs
from tests.servers import ocistore_server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TIME_LIMIT = 120.0


def manifest_gets(target: Target, count: int) -> list[float]:
    image = make_image(5, layers=1)
    with target.client(timeout=60) as client:
        for digest, data in image.blobs.items():
            expect(client.post("/v2/bench/app/blobs/uploads/", params={"digest": digest},
                               content=data), 201)  # fmt: skip
        headers = {"Content-Type": OCI_MANIFEST}
        expect(client.put("/v2/bench/app/manifests/v1", content=image.manifest, headers=headers),
               201)  # fmt: skip

        def get(_: int) -> None:
            expect(client.get(f"/v2/bench/app/manifests/{image.digest}",
                              headers={"Accept": OCI_MANIFEST}), 200)  # fmt: skip

        return latencies(get, count, TIME_LIMIT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    variants = {
        "app": ("none", False), "none+front": ("none", True),
        "inmemory": ("inmemory", False), "inmemory+front": ("inmemory", True),
        "redis": ("redis", False), "redis+front": ("redis", True),
    }  # fmt: skip
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="ocistore-cache-bench-") as tmp:
        base = Path(tmp)
        with seaweedfs(base) as weed, redis_server(base) as redis_addr:
            for _ in range(args.rounds):
                for name, (kind, front) in variants.items():
                    storage: dict[str, Any] = {
                        "s3": weed.storage_s3(weed.bucket()),
                        "redirect": {"disable": True},
                    }
                    document: dict[str, Any] = {"storage": storage,
                                                "log": {"accesslog": {"disabled": True}}}  # fmt: skip
                    if kind != "none":
                        storage["cache"] = {"blobdescriptor": kind}
                    if kind == "redis":
                        document["redis"] = {"addr": redis_addr}
                    config = base / f"{name}.yml"
                    config.write_text(yaml.safe_dump(document))
                    extra = ["--config", str(config)] + ([] if front else ["--no-native-front"])
                    with ocistore_server(base / name, extra=extra) as server:
                        target = Target(server.url)
                        head = heads(target, "bench/app", args.count, TIME_LIMIT)
                        get = manifest_gets(target, args.count)
                    results[name].append({
                        "head_p50_ms": percentile(head, 0.5) * 1000,
                        "head_p99_ms": percentile(head, 0.99) * 1000,
                        "manifest_p50_ms": percentile(get, 0.5) * 1000,
                        "manifest_p99_ms": percentile(get, 0.99) * 1000,
                    })  # fmt: skip
    medians = {
        kind: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for kind, rows in results.items()
    }
    print(f"{'ms (medians of the rounds)':<28}" + "".join(f"{k:>12}" for k in medians))
    for key in medians["app"]:
        print(f"{key:<28}" + "".join(f"{medians[k][key]:>12.3f}" for k in medians))
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": results, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
