"""The pull-through cache, side by side in one run: ocistore's cache against pulling straight
from the upstream, and against distribution 3.1.1's pull-through cache.

    python benches/proxy_compare.py [--size-mib 256] [--layers 4] [--rounds 3] [--json out.json]

The upstream is a plain ``ocistore serve`` on 127.0.0.1 holding one image of ``--layers`` random
layers, ``--size-mib`` in all. A pull is what a client does: the manifest, then every blob, three
at a time, each body read to the end. Each round, alternating and in this order:

- **direct**: a pull from the upstream itself;
- **cold**: a pull through a fresh ocistore cache (nothing cached), with the cache's CPU time,
  and the same through a fresh distribution 3 cache;
- **warm**: the same pull through that cache again (everything cached);
- **8 cold, ocistore / distribution 3**: eight clients pull at once through a fresh cache of each
  kind; what the upstream sent, counted by a relay between cache and upstream, as a multiple of
  the image's size (1.0: each byte fetched once), and the time until the last client is done.

Then the direct and the cold pull again over an emulated link to the upstream (a relay that
passes at most ``--link-mib-s``, 100 by default: about a gigabit), where the link and not this
machine's two cores bounds a pull, as it does for a mirror. The table shows the medians of the
rounds. distribution 3 is the binary ``make peers`` installs
(``.peers/registry``; ``OCISTORE_DISTRIBUTION3`` overrides). All loops are bounded in count and in
time; servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ocistore import Registry, unmarshal_manifest

from benches.http_compare import tree_cpu_seconds, wait_ready
from tests.distribution import DISTRIBUTION3, free_port, reference_env
from tests.relay import relay
from tests.servers import stop

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MIB = 1024 * 1024
NAME, TAG = "bench/image", "v1"
PULL_TIMEOUT = 600.0


def make_upstream_tree(root: Path, size: int, layers: int) -> tuple[str, int]:
    """An image of ``layers`` random layers, ``size`` bytes in all; (manifest digest, bytes)."""
    rng = random.Random(17)
    repo = Registry(root).repository(NAME)
    descriptors: list[dict[str, Any]] = []
    for _ in range(layers):
        data = rng.randbytes(size // layers)
        d = repo.blobs().put("application/vnd.oci.image.layer.v1.tar", data)
        descriptors.append({"mediaType": d.media_type, "digest": str(d.digest), "size": d.size})
    config = json.dumps({"architecture": "amd64", "os": "linux", "bench": True}).encode()
    c = repo.blobs().put("application/vnd.oci.image.config.v1+json", config)
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": c.media_type, "digest": str(c.digest), "size": c.size},
        "layers": descriptors,
    }
    manifest, _ = unmarshal_manifest(OCI_MANIFEST, json.dumps(body).encode())
    digest = repo.manifests().put(manifest, tag=TAG)
    return str(digest), sum(d["size"] for d in descriptors) + c.size


@contextmanager
def ocistore(root: Path, workdir: Path, config: dict[str, Any] | None = None) -> Iterator[Any]:
    port = free_port()
    path = workdir / f"ocistore-{port}.yml"
    path.write_text(yaml.safe_dump({"log": {"accesslog": {"disabled": True}}, **(config or {})}))
    log = workdir / f"ocistore-{port}.log"
    args = [sys.executable, "-m", "ocistore.cli", "serve", "--config", str(path),
            "--addr", f"127.0.0.1:{port}", "--root", str(root)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)


@contextmanager
def distribution3_proxy(root: Path, workdir: Path, remoteurl: str) -> Iterator[Any]:
    port = free_port()
    path = workdir / f"distribution3-{port}.yml"
    config = {
        "version": "0.1",
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}},
        "http": {"addr": f"127.0.0.1:{port}"},
        "proxy": {"remoteurl": remoteurl},
    }
    path.write_text(yaml.safe_dump(config))
    log = workdir / f"distribution3-{port}.log"
    env = {**reference_env(), "OTEL_TRACES_EXPORTER": "none"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(DISTRIBUTION3), "serve", str(path)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)


def pull(url: str) -> float:
    """One client's pull; its seconds. Every body is read to the end and counted."""
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=PULL_TIMEOUT) as http:
        r = http.get(f"/v2/{NAME}/manifests/{TAG}", headers={"Accept": OCI_MANIFEST})
        r.raise_for_status()
        body = r.json()
        blobs = [body["config"], *body["layers"]]

        def get(descriptor: dict[str, Any]) -> None:
            got = 0
            with http.stream("GET", f"/v2/{NAME}/blobs/{descriptor['digest']}") as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(1 << 20):
                    got += len(chunk)
            if got != descriptor["size"]:
                raise RuntimeError(f"{descriptor['digest']}: {got} of {descriptor['size']} bytes")

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            list(pool.map(get, blobs))
    return time.perf_counter() - start


def upstream_bytes(url: str) -> float:
    """What the cache says it received from its upstreams (its metrics)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ocistore_proxy_upstream_received_bytes_total{")
    )


def eight_cold(url: str) -> float:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: pull(url), range(8)))
    return time.perf_counter() - start


def round_link(upstream_port: int, size: int, rate: float, workdir: Path) -> dict[str, float]:
    """Direct and cold pulls over a link of ``rate`` bytes/s to the upstream (a relay that
    passes no faster): where the link, not this machine's CPU, bounds a pull."""
    row: dict[str, float] = {}
    with relay(upstream_port, rate) as link:
        row["link_direct_mib_s"] = size / MIB / pull(f"http://127.0.0.1:{link.port}")
        with tempfile.TemporaryDirectory(dir=workdir) as cache_root:
            config = {"proxy": {"remoteurl": f"http://127.0.0.1:{link.port}"}}
            with ocistore(Path(cache_root), workdir, config) as (url, _):
                row["link_cold_mib_s"] = size / MIB / pull(url)
    return row


def round_once(workdir: Path, upstream_url: str, upstream_port: int, size: int) -> dict[str, float]:
    row: dict[str, float] = {}
    row["direct_mib_s"] = size / MIB / pull(upstream_url)
    # Straight to the upstream (no relay in the way): the cache's own count of upstream bytes.
    with tempfile.TemporaryDirectory(dir=workdir) as cache_root:
        config = {"proxy": {"remoteurl": upstream_url}}
        with ocistore(Path(cache_root), workdir, config) as (url, proc):
            cpu = tree_cpu_seconds(proc.pid)
            row["cold_mib_s"] = size / MIB / pull(url)
            row["cold_cpu_s_per_gib"] = (tree_cpu_seconds(proc.pid) - cpu) / (size / 1024 / MIB)
            row["cold_upstream_x"] = upstream_bytes(url) / size
            cpu = tree_cpu_seconds(proc.pid)
            row["warm_mib_s"] = size / MIB / pull(url)
            row["warm_cpu_s_per_gib"] = (tree_cpu_seconds(proc.pid) - cpu) / (size / 1024 / MIB)
    with (
        tempfile.TemporaryDirectory(dir=workdir) as cache_root,
        distribution3_proxy(Path(cache_root), workdir, upstream_url) as (url, proc),
    ):
        cpu = tree_cpu_seconds(proc.pid)
        row["cold_distribution3_mib_s"] = size / MIB / pull(url)
        row["cold_distribution3_cpu_s_per_gib"] = (tree_cpu_seconds(proc.pid) - cpu) / (
            size / 1024 / MIB
        )
    for kind in ("ocistore", "distribution3"):
        with relay(upstream_port) as pipe, tempfile.TemporaryDirectory(dir=workdir) as cache_root:
            remote = f"http://127.0.0.1:{pipe.port}"
            server = (
                ocistore(Path(cache_root), workdir, {"proxy": {"remoteurl": remote}})
                if kind == "ocistore"
                else distribution3_proxy(Path(cache_root), workdir, remote)
            )
            with server as (url, _):
                row[f"eight_{kind}_s"] = eight_cold(url)
            row[f"eight_{kind}_upstream_x"] = pipe.bytes_down / size
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--link-mib-s", type=float, default=100.0, help="the emulated link's speed (MiB/s)"
    )
    parser.add_argument("--json")
    args = parser.parse_args()
    if not DISTRIBUTION3.is_file():
        raise SystemExit(f"distribution 3 is not at {DISTRIBUTION3}: run `make peers`")
    with tempfile.TemporaryDirectory(prefix="ocistore-proxy-bench-") as tmp:
        workdir = Path(tmp)
        _, size = make_upstream_tree(workdir / "upstream", args.size_mib * MIB, args.layers)
        rows = []
        with ocistore(workdir / "upstream", workdir) as (upstream_url, _):
            port = int(upstream_url.rsplit(":", 1)[1])
            for i in range(args.rounds):
                row = round_once(workdir, upstream_url, port, size)
                row.update(round_link(port, size, args.link_mib_s * MIB, workdir))
                print(f"round {i + 1}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items()))
                rows.append(row)
    medians = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    labels = {
        "direct_mib_s": "pull straight from the upstream (MiB/s)",
        "cold_mib_s": "cold pull through the cache (MiB/s)",
        "cold_cpu_s_per_gib": "cache CPU, cold pull (s/GiB)",
        "cold_upstream_x": "upstream bytes, cold pull (x image)",
        "cold_distribution3_mib_s": "cold pull through distribution 3's cache (MiB/s)",
        "cold_distribution3_cpu_s_per_gib": "distribution 3's CPU, cold pull (s/GiB)",
        "warm_mib_s": "warm pull through the cache (MiB/s)",
        "warm_cpu_s_per_gib": "cache CPU, warm pull (s/GiB)",
        "eight_ocistore_s": "8 cold pulls at once, ocistore (s)",
        "eight_ocistore_upstream_x": "8 cold pulls, upstream bytes, ocistore (x image)",
        "eight_distribution3_s": "8 cold pulls at once, distribution 3 (s)",
        "eight_distribution3_upstream_x": "8 cold pulls, upstream bytes, distribution 3 (x image)",
    }
    print(f"\nimage {size / MIB:.0f} MiB in {args.layers} layers, {args.rounds} rounds (medians)")
    for key, label in labels.items():
        print(f"{label:<58} {medians[key]:>10.2f}")
    print(f"{'cold / direct':<58} {medians['cold_mib_s'] / medians['direct_mib_s']:>10.2f}")
    link = args.link_mib_s
    print(
        f"{f'over a {link:.0f} MiB/s link: direct (MiB/s)':<58} {medians['link_direct_mib_s']:>10.2f}"
    )
    print(f"{f'over a {link:.0f} MiB/s link: cold through the cache (MiB/s)':<58} "
          f"{medians['link_cold_mib_s']:>10.2f}")  # fmt: skip
    print(f"{'over the link: cold / direct':<58} "
          f"{medians['link_cold_mib_s'] / medians['link_direct_mib_s']:>10.2f}")  # fmt: skip
    print(f"{'warm / direct (a plain ocistore serve)':<58} "
          f"{medians['warm_mib_s'] / medians['direct_mib_s']:>10.2f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rows, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
