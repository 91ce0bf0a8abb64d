"""What limits the comparison with zot and distribution 3 on this machine, measured beside it.

    python benches/limits.py [--zot PATH] [--zb PATH] [--ocistore-workers 2] [--rounds 3]
                             [--zb-tests '^Pull 1MB;^Pull 75% and Push 25% Mixed 1MB']
                             [--zb-clients 8] [--zb-ops 200]

Starts ocistore (one instance per count in ``--ocistore-workers``, e.g. ``1,2``), distribution
3.1.1 and, with ``--zot``, zot (``storage.commit: true``) on fresh roots, as
benches/load_compare.py does, then in ``--rounds`` rounds, the order rotated:

- the client's share of a request: 2,000 HEADs of a 4 KiB blob and 300 GETs of 1 MiB ranges
  of a 64 MiB blob per registry, each timed (wall) with the client thread's own CPU
  (``time.thread_time``) around it: p50 of each, and what is left for the server, the kernel
  and waiting;
- with ``--zb`` (zot's benchmark, see docs/performance.md): each ``--zb-tests`` test, ``zb -c
  CLIENTS -n OPS``, its operations per second and p50/p99, zb's own CPU per operation (rusage
  of the child) and the server's (its process group, from /proc), in all and split into user
  and system time.

Medians of the rounds at the end. The profiles of where the servers' CPU goes (perf) are run by
hand; docs/performance.md gives the commands and the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_compare import start_distribution3, start_ocistore, start_zot
from ocistore.bench.load import process_group_cpu_split

RANGE = 1024 * 1024
BIG = 64 * 1024 * 1024


def push_blob(client: httpx.Client, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = client.post(f"/v2/{repository}/blobs/uploads/").headers["location"]
    separator = "&" if "?" in location else "?"
    r = client.put(f"{location}{separator}digest={digest}", content=data)
    if r.status_code != 201:
        raise RuntimeError(f"push to {client.base_url}: {r.status_code} {r.text[:200]}")
    return digest


def timed(fn: Callable[[], object], count: int) -> tuple[float, float]:
    """p50 of the wall time and of the calling thread's CPU time of ``count`` calls, in ms."""
    wall, cpu = [], []
    for _ in range(count):
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        fn()
        w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        wall.append((w1 - w0) / 1e6)
        cpu.append((c1 - c0) / 1e6)
    return statistics.median(wall), statistics.median(cpu)


def client_share(url: str) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=60) as client:
        big = push_blob(client, "limits/big", os.urandom(BIG))
        small = push_blob(client, "limits/small", os.urandom(4096))
        rng = random.Random(1)

        def head() -> None:
            client.head(f"/v2/limits/small/blobs/{small}").raise_for_status()

        def ranged() -> None:
            offset = rng.randrange(0, BIG - RANGE)
            r = client.get(
                f"/v2/limits/big/blobs/{big}",
                headers={"range": f"bytes={offset}-{offset + RANGE - 1}"},
            )
            if r.status_code != 206 or len(r.content) != RANGE:
                raise RuntimeError(f"range GET from {url}: {r.status_code}")

        for _ in range(50):
            head()
        head_wall, head_cpu = timed(head, 2000)
        range_wall, range_cpu = timed(ranged, 300)
    return {
        "head_p50_ms": head_wall,
        "head_client_cpu_ms": head_cpu,
        "head_rest_ms": head_wall - head_cpu,
        "range_p50_ms": range_wall,
        "range_client_cpu_ms": range_cpu,
        "range_rest_ms": range_wall - range_cpu,
    }


def _zb_duration(report: str, name: str) -> float | None:
    """zb's first ``<name>: <Go duration>`` line (the whole operation's), in ms."""
    found = re.search(rf"^{name}:\s*([\d.]+)(ms|s|µs|us)$", report, re.M)
    if found is None:
        return None
    scale = {"s": 1000.0, "ms": 1.0, "µs": 0.001, "us": 0.001}[found.group(2)]
    return float(found.group(1)) * scale


def zb_share(
    zb: str, test: str, url: str, pid: int, clients: int, ops: int, scratch: Path
) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    user_before, system_before = process_group_cpu_split(pid)
    out = subprocess.run(
        [zb, "-c", str(clients), "-n", str(ops), "-t", test, "-d", str(scratch), url],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    user_after, system_after = process_group_cpu_split(pid)
    user, system = user_after - user_before, system_after - system_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = re.search(r"Requests per second:\s*([\d.]+)", out.stdout)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"zb {test} against {url}: {out.stdout[-500:]} {out.stderr[-500:]}")
    client = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures = {f"{test}: {name}_ms": _zb_duration(out.stdout, name) for name in ("p50", "p99")}
    return {
        **{key: value for key, value in figures.items() if value is not None},
        f"{test}: ops_per_s": float(found.group(1)),
        f"{test}: zb_cpu_ms_per_op": client / ops * 1000,
        f"{test}: server_cpu_ms_per_op": (user + system) / ops * 1000,
        # The kernel's share (sockets, files, fsyncs) is work every registry does for the same
        # requests; the user share is what a server's own code can change.
        f"{test}: server_user_ms_per_op": user / ops * 1000,
        f"{test}: server_system_ms_per_op": system / ops * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zot", help="a zot binary (built from its source); omitted: no zot")
    parser.add_argument("--zb", help="zot's zb binary; omitted: no zb measurements")
    parser.add_argument("--ocistore-workers", default="2", help="comma-separated counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--zb-tests", default="^Pull 1MB;^Pull 75% and Push 25% Mixed 1MB")
    parser.add_argument("--zb-clients", type=int, default=8)
    parser.add_argument("--zb-ops", type=int, default=200)
    parser.add_argument("--json")
    args = parser.parse_args()
    base = Path(".bench-tmp")
    base.mkdir(exist_ok=True)
    runs: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(dir=base) as tmp, contextlib.ExitStack() as servers:
        work = Path(tmp)
        peers = [
            start_ocistore(servers, work, f"ocistore-w{count}", count)
            for count in (int(c) for c in args.ocistore_workers.split(","))
        ]
        peers.append(start_distribution3(servers, work))
        if args.zot:
            peers.append(start_zot(servers, work, args.zot))
        for round_ in range(args.rounds):
            shift = round_ % len(peers)
            for spec in peers[shift:] + peers[:shift]:
                name, rest = spec.split("=", 1)
                url, pid = rest.split(",pid=")
                figures = client_share(url)
                for test in args.zb_tests.split(";") if args.zb else []:
                    with tempfile.TemporaryDirectory(dir=work) as scratch:
                        figures.update(zb_share(
                            args.zb, test, url, int(pid), args.zb_clients, args.zb_ops,
                            Path(scratch),
                        ))  # fmt: skip
                runs.setdefault(name, []).append(figures)
                print(f"round {round_ + 1} {name}: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in figures.items()), flush=True)  # fmt: skip
    medians = {
        name: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for name, rows in runs.items()
    }
    print(f"\nmedians of {args.rounds} rounds")
    for name, figures in medians.items():
        print(name)
        for key, value in figures.items():
            print(f"  {key:60} {value:10.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": runs, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
