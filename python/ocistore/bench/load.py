"""Registries under load: the workloads zot's benchmark ``zb`` runs, from many clients at once.

One *image operation* is a whole image pushed or pulled, as zb counts them: an image is a
config and one layer of the workload's size; a push is each blob's POST and PUT (monolithic) or
POST, PATCHes and PUT (chunk-streamed, 8 MiB PATCHes) and the manifest's PUT; a pull is the
manifest's HEAD and GET and each blob's GET. ``concurrency`` clients (threads, each its own
connection) take operations from one counter until ``ops`` are done or ``time_limit`` passes.
Measured: image operations per second, their p50 and p99, for pulls the time to the layer's
first byte (from the start of the pull), and, given the server's pid, its process group's CPU
per operation.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from ..storage.manifests import OCI_MANIFEST
from . import MIB
from .http import (
    CHUNK,
    REQUEST_TIMEOUT,
    BenchError,
    Target,
    absolute,
    expect,
    percentile,
    push_small_blob,
    start_upload,
    with_digest,
)

__all__ = [
    "Image",
    "LoadResult",
    "Workload",
    "process_group_cpu_seconds",
    "process_group_cpu_split",
    "run_workload",
    "thundering_herd",
]

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
#: At most this many bytes of distinct images are generated for a push workload; beyond it
#: operations push the same images again (under new tags: every byte is still sent).
IMAGE_BUDGET = 1024 * MIB


def process_group_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of every live process in ``pid``'s process group (a server
    and its workers), from ``/proc``."""
    return sum(process_group_cpu_split(pid))


def process_group_cpu_split(pid: int) -> tuple[float, float]:
    """``(user, system)`` CPU seconds of every live process in ``pid``'s process group."""
    tick = os.sysconf("SC_CLK_TCK")
    group = os.getpgid(pid)
    user = system = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group:  # pgrp
            user += int(fields[11])
            system += int(fields[12])
    return user / tick, system / tick


@dataclass(frozen=True)
class Image:
    """A config and one layer of random bytes, and the manifest naming them."""

    config: bytes
    layer: bytes
    manifest: bytes

    @staticmethod
    def random(size: int, rng: random.Random) -> Image:
        layer = rng.randbytes(size)
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": rng.random()}).encode()

        def descriptor(media_type: str, data: bytes) -> dict[str, object]:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            return {"mediaType": media_type, "digest": digest, "size": len(data)}

        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer)],
        }
        return Image(config, layer, json.dumps(manifest).encode())

    @property
    def blobs(self) -> list[tuple[str, bytes]]:
        return [("sha256:" + hashlib.sha256(b).hexdigest(), b) for b in (self.config, self.layer)]


def push_image(
    client: httpx.Client, repository: str, tag: str, image: Image, chunked: bool
) -> None:
    for digest, data in image.blobs:
        if not chunked:
            push_small_blob(client, repository, data, digest)  # POST, then PUT with the bytes
            continue
        location = start_upload(client, repository)
        for offset in range(0, len(data), CHUNK):
            piece = data[offset : offset + CHUNK]
            r = client.patch(
                location,
                content=piece,
                headers={
                    "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                    "Content-Type": "application/octet-stream",
                },
            )
            location = absolute(client, expect(r, 202).headers["location"])
        expect(client.put(with_digest(location, digest)), 201)
    r = client.put(f"/v2/{repository}/manifests/{tag}", content=image.manifest,
                   headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
    expect(r, 201)


def pull_image(client: httpx.Client, repository: str, tag: str, image: Image) -> float:
    """Pulls the image, checking its size; returns the seconds to the layer's first byte."""
    start = time.perf_counter()
    accept = {"Accept": OCI_MANIFEST}
    expect(client.head(f"/v2/{repository}/manifests/{tag}", headers=accept), 200)
    r = expect(client.get(f"/v2/{repository}/manifests/{tag}", headers=accept), 200)
    manifest = r.json()
    first_byte = 0.0
    for descriptor in [manifest["config"], *manifest["layers"]]:
        got = 0
        path = f"/v2/{repository}/blobs/{descriptor['digest']}"
        with client.stream("GET", path, follow_redirects=True) as r:
            expect(r, 200)
            for piece in r.iter_raw(MIB):
                if not got and descriptor is manifest["layers"][0]:
                    first_byte = time.perf_counter() - start
                got += len(piece)
        if got != descriptor["size"]:
            raise BenchError(f"GET {path}: {got} bytes, the blob has {descriptor['size']}")
    return first_byte


@dataclass(frozen=True)
class Workload:
    """``kind``: "push" (monolithic), "push-chunked", "pull" or "mixed" (75% pulls, 25%
    pushes); ``size``: the layer's bytes."""

    kind: str
    size: int
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.kind} {self.size // MIB} MiB x{self.concurrency}"


@dataclass
class LoadResult:
    ops: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_bytes: list[float] = field(default_factory=list)
    cpu_seconds: float | None = None

    def figures(self) -> dict[str, float]:
        r = {
            "ops": float(self.ops),
            "ops_per_s": self.ops / self.seconds if self.seconds else 0.0,
            "p50_ms": percentile(self.latencies, 0.5) * 1000,
            "p99_ms": percentile(self.latencies, 0.99) * 1000,
        }
        if self.first_bytes:
            r["ttfb_p50_ms"] = percentile(self.first_bytes, 0.5) * 1000
            r["ttfb_p99_ms"] = percentile(self.first_bytes, 0.99) * 1000
        if self.cpu_seconds is not None and self.ops:
            r["cpu_ms_per_op"] = self.cpu_seconds / self.ops * 1000
        return r


def _run(
    target: Target,
    concurrency: int,
    ops: int,
    time_limit: float,
    operation: Callable[[httpx.Client, int], float | None],
    pid: int | None,
    start_together: bool = False,
) -> LoadResult:
    """``ops`` calls of ``operation(client, i)`` from ``concurrency`` threads; a float it
    returns is a time to first byte."""
    result = LoadResult()
    lock = threading.Lock()
    next_op = iter(range(ops))
    deadline = time.monotonic() + time_limit
    ready = threading.Barrier(concurrency + 1)
    # Released once the clock and the server's CPU are read: with many busy threads, reading
    # /proc could otherwise take longer than the operations it is meant to precede.
    go = threading.Event()
    ended: list[float] = []

    def worker() -> None:
        with target.client(timeout=REQUEST_TIMEOUT) as client:
            expect(client.get("/v2/"), 200)  # connected before the clock starts
            ready.wait()
            go.wait()
            try:
                work(client)
            finally:
                with lock:
                    ended.append(time.perf_counter())

    def work(client: httpx.Client) -> None:
        while True:
            with lock:
                late = time.monotonic() > deadline and result.latencies
                i = None if late else next(next_op, None)
            if i is None:
                return
            began = time.perf_counter()
            first_byte = operation(client, i)
            elapsed = time.perf_counter() - began
            with lock:
                result.latencies.append(elapsed)
                if first_byte is not None:
                    result.first_bytes.append(first_byte)
            if start_together:
                return

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        ready.wait(timeout=60)
        cpu = process_group_cpu_seconds(pid) if pid is not None else None
        began = time.perf_counter()
        go.set()
        for f in futures:
            f.result(timeout=time_limit + REQUEST_TIMEOUT)
        result.seconds = max(ended) - began
    if pid is not None and cpu is not None:
        result.cpu_seconds = process_group_cpu_seconds(pid) - cpu
    result.ops = len(result.latencies)
    return result


def run_workload(
    target: Target,
    repository: str,
    workload: Workload,
    ops: int,
    time_limit: float,
    pid: int | None = None,
    seed: int = 1,
) -> LoadResult:
    """One workload: pushes of fresh images (a distinct one per operation, generated before the
    clock starts), pulls of one image pushed beforehand, or both mixed."""
    rng = random.Random(seed)
    pushes = 0 if workload.kind == "pull" else ops if workload.kind.startswith("push") else ops // 4
    distinct = min(pushes, max(1, IMAGE_BUDGET // (workload.size + 1)))
    images = [Image.random(workload.size, rng) for _ in range(distinct)]
    pulled = Image.random(workload.size, rng)
    tag = f"pull-{workload.size}"
    if workload.kind in ("pull", "mixed"):
        with target.client() as client:
            push_image(client, repository, tag, pulled, chunked=False)
    chunked = workload.kind == "push-chunked"

    def operation(client: httpx.Client, i: int) -> float | None:
        push = workload.kind.startswith("push") or (workload.kind == "mixed" and i % 4 == 3)
        if push and images:
            push_image(client, repository, f"push-{i}", images[i % len(images)], chunked)
            return None
        return pull_image(client, repository, tag, pulled)

    return _run(target, workload.concurrency, ops, time_limit, operation, pid)


def thundering_herd(
    target: Target, repository: str, size: int, clients: int, pid: int | None = None
) -> LoadResult:
    """``clients`` clients pulling one image pushed just before, all released at once."""
    image = Image.random(size, random.Random(size))
    tag = f"herd-{size}"
    with target.client() as client:
        push_image(client, repository, tag, image, chunked=False)

    def operation(client: httpx.Client, _: int) -> float:
        return pull_image(client, repository, tag, image)

    return _run(target, clients, clients, REQUEST_TIMEOUT, operation, pid, start_together=True)
