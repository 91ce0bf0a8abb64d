"""ocistore against the registries people pick today, side by side in one run, driven by the same
clients: distribution 3.1.1 (``make peers``), zot (``--zot PATH``, a build from its source, with
``storage.commit: true`` so that it fsyncs as the others do) and, with ``--with-2.8.2``, Debian's
docker-registry (distribution 2.8.2, the older reference).

    python benches/http_compare.py [--zot PATH] [--with-2.8.2] [--quick] [--json out.json]
                                   [--plot out.png] [--workers N] [--dir WORKDIR] [--rounds N]
                                   [--s3]

Every registry runs on 127.0.0.1 in a fresh root of its own, for the whole run, in its own
process group; `ocistore bench compare` (ocistore.bench.compare) measures them in ``--rounds``
rounds (default 3) with the order rotated each round, the medians in the table, every round in
the JSON, each server's CPU read from its process group. Its single-client series (httpx: push
of a 1 GiB random blob monolithic and in 8 MiB PATCHes, full GET, 200 GETs of 1 MiB ranges,
2,000 HEADs, 4 KiB pushes from 8 threads, the server CPU for the series) is followed in each round
by this script's own: the same blob pushed and fetched with curl (MiB/s and server CPU-s per GiB),
the server CPU per 4 KiB push, the server's RSS growth during a 4 GiB chunked upload, and a
`skopeo copy` of a generated image (five layers, 256 MiB in all) into the registry and back.
``--quick`` divides the sizes and counts by 8 (for a smoke run, not for numbers). All loops are
bounded in count and in time.

``--s3`` compares the registries on S3 storage instead: one SeaweedFS (tests/seaweedfs.py) on
127.0.0.1, ocistore with a ``storage.s3`` section on one bucket, distribution 3.1.1 (``make
peers`` installs it in .peers/registry; ``--distribution PATH`` names another build, such as
Debian's docker-registry) with its S3 driver on another, a fresh bucket each round, in
``--rounds`` alternating rounds (medians in the table, every round in the JSON). Measured, for
each: push of a 256 MiB blob monolithic (POST + PUT with curl -T) and chunked (8 MiB PATCHes
with httpx), full GET with curl -L, each with the CPU time of the registry and of SeaweedFS;
distribution redirects blob GETs to presigned S3 URLs by default (ocistore too), so each GET is
measured again on a second instance with ``storage.redirect.disable``. If one registry fails,
its half is reported as an error and the run goes on.

The httpx measurements are those of `ocistore bench http` (ocistore.bench.http); this script
adds the servers, curl, skopeo, the servers' CPU and RSS.
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
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from ocistore.bench import MIB
from ocistore.bench.compare import Peer, compare, compare_plot, compare_table
from ocistore.bench.http import (
    RandomBlob,
    Target,
    absolute,
    expect,
    push_chunked,
    small_pushes,
    start_upload,
    with_digest,
)

# The helpers the tests start servers with: one way to pick a port and to stop a process group.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.distribution import (
    DISTRIBUTION3,
    free_port,
    reference_config,
    reference_env,
    zot_config,
)
from tests.seaweedfs import SeaweedFS, seaweedfs
from tests.servers import stop

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DEADLINE_SECONDS = 300  # no single measurement may run longer than this


@dataclass
class Registry:
    name: str
    url: str
    proc: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def target(self) -> Target:
        """What the client-side measurements of ocistore.bench.http take."""
        return Target(self.url)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v2/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not start:\n{log.read_text()}")


@contextmanager
def serving(
    name: str,
    command: list[str],
    port: int,
    root: Path,
    log: Path,
    env: dict[str, str] | None = None,
) -> Iterator[Registry]:
    """``command`` serving on 127.0.0.1:``port`` in a session of its own, its output in
    ``log``, until the block ends; then it is stopped and its ``root`` removed."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log)
        yield Registry(name, f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def ocistore_registry(
    workdir: Path,
    workers: int,
    s3: Mapping[str, Any] | None = None,
    redirect: bool = True,
    native_front: bool | None = None,
) -> Iterator[Registry]:
    """Filesystem storage in a fresh root, or, given ``s3``, that ``storage.s3`` section
    (``redirect=False``: blob GETs proxied instead of redirected); ``native_front``: with or
    without the Rust front (None: as ``ocistore serve`` decides: with it)."""
    port = free_port()
    root = workdir / "ocistore-root"
    log = workdir / "ocistore.log"
    config = workdir / "ocistore.yml"
    document: dict[str, Any] = {"log": {"accesslog": {"disabled": True}}}
    if s3 is not None:
        document["storage"] = {"s3": dict(s3), "redirect": {"disable": not redirect}}
    config.write_text(yaml.safe_dump(document))
    args = [
        sys.executable, "-m", "ocistore.cli", "serve", "--config", str(config),
        "--addr", f"127.0.0.1:{port}", "--workers", str(workers), "--delete",
        *(["--root", str(root)] if s3 is None else []),
        *([] if native_front is None else
          ["--native-front" if native_front else "--no-native-front"]),
    ]  # fmt: skip
    with serving("ocistore", args, port, root, log) as registry:
        yield registry


@contextmanager
def distribution_registry(
    workdir: Path,
    s3: Mapping[str, Any] | None = None,
    redirect: bool = True,
    name: str = "distribution",
    binary: str | None = None,
) -> Iterator[Registry]:
    """Filesystem storage in a fresh root, or, given ``s3``, the S3 driver with that section
    (``redirect=False``: storage.redirect.disable); ``binary``: another build than Debian's
    docker-registry (distribution 3)."""
    binary = binary or shutil.which("docker-registry")
    if binary is None:
        raise SystemExit("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    root = workdir / f"{name}-root"
    log = workdir / f"{name}.log"
    config = workdir / f"{name}.yml"
    config.write_text(reference_config(port, root, s3=s3, redirect=redirect, access_log=False))
    # distribution 3 exports traces unless told not to.
    env = {**reference_env(), "OTEL_TRACES_EXPORTER": "none"}
    with serving(name, [binary, "serve", str(config)], port, root, log, env) as registry:
        yield registry


@contextmanager
def zot_registry(workdir: Path, binary: str) -> Iterator[Registry]:
    """zot on filesystem storage in a fresh root, fsyncing (``storage.commit``)."""
    port = free_port()
    root = workdir / "zot-root"
    log = workdir / "zot.log"
    config = workdir / "zot.json"
    config.write_text(json.dumps(zot_config(root, port)))
    command = [shutil.which(binary) or binary, "serve", str(config)]
    with serving("zot", command, port, root, log) as registry:
        yield registry


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (granian runs workers as children)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending.extend(int(c) for c in children)
    return total


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending.extend(int(c) for c in children)
    return total


def curl(*args: str) -> str:
    done = subprocess.run(
        ["curl", "-sS", "--fail", *args], capture_output=True, text=True, timeout=DEADLINE_SECONDS
    )
    if done.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args)}: {done.stderr}")
    return done.stdout


def push_monolithic_curl(reg: Registry, path: Path, digest: str, name: str) -> None:
    with reg.target.client() as client:
        location = start_upload(client, name)
    curl(
        "-X",
        "PUT",
        "-T",
        str(path),
        "-H",
        "Content-Type: application/octet-stream",
        with_digest(location, digest),
    )


def push_chunked_curl(reg: Registry, pieces: list[Path], digest: str, name: str) -> None:
    with reg.target.client() as client:
        location = start_upload(client, name)
    offset = 0
    for piece in pieces:
        n = piece.stat().st_size
        headers = curl(
            "-X", "PATCH", "-T", str(piece), "-D", "-", "-o", "/dev/null",
            "-H", f"Content-Range: {offset}-{offset + n - 1}",
            "-H", "Content-Type: application/octet-stream", location,
        )  # fmt: skip
        offset += n
        for line in headers.splitlines():
            if line.lower().startswith("location:"):
                location = line.split(":", 1)[1].strip()
                if not location.startswith("http"):
                    location = reg.url + location
    curl("-X", "PUT", "-o", "/dev/null", with_digest(location, digest))


def get_full_curl(reg: Registry, name: str, digest: str, size: int) -> None:
    out = curl(
        "-o", "/dev/null", "-w", "%{size_download}", "-L", f"{reg.url}/v2/{name}/blobs/{digest}"
    )
    assert int(out) == size


def first_status(reg: Registry, name: str, digest: str) -> int:
    """The status of a blob GET without following redirects (200, or 307 to storage)."""
    with (
        reg.target.client(timeout=60) as client,
        client.stream("GET", f"/v2/{name}/blobs/{digest}") as r,
    ):
        return r.status_code


def small_pushes_with_cpu(reg: Registry, count: int, threads: int) -> tuple[float, float]:
    """Blobs per second and server CPU-ms per blob, POST + PUT each, `threads` clients."""
    cpu_before = tree_cpu_seconds(reg.proc.pid)
    pushes = small_pushes(reg.target, "small/blobs", count, threads, DEADLINE_SECONDS)
    cpu = tree_cpu_seconds(reg.proc.pid) - cpu_before
    return pushes.per_second, cpu / pushes.pushed * 1000


def rss_growth_during(reg: Registry, blob: RandomBlob, size: int) -> tuple[int, float]:
    """Peak RSS growth of the server tree while `size` bytes are uploaded in 8 MiB PATCHes
    (the blob is sent repeatedly), and the throughput."""
    baseline = tree_rss(reg.proc.pid)
    peak = baseline
    stop_sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop_sampling.is_set():
            peak = max(peak, tree_rss(reg.proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    h = hashlib.sha256()
    start = time.perf_counter()
    try:
        with reg.target.client(timeout=DEADLINE_SECONDS) as client:
            location = start_upload(client, "rss/blob")
            offset = 0
            while offset < size:
                n = min(8 * MIB, size - offset)
                # From the blob at offset % blob.size, wrapping around to its start.
                piece = b"".join(blob.chunks(offset % blob.size, n))
                piece += b"".join(blob.chunks(0, n - len(piece)))
                h.update(piece)
                r = client.patch(
                    location, content=piece, headers={"Content-Range": f"{offset}-{offset + n - 1}"}
                )
                location = absolute(client, expect(r, 202).headers["location"])
                offset += n
            expect(client.put(with_digest(location, "sha256:" + h.hexdigest())), 201)
    finally:
        stop_sampling.set()
        sampler.join()
    return peak - baseline, size / MIB / (time.perf_counter() - start)


def make_layout(root: Path, layer_sizes: list[int]) -> None:
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": blob(config, "application/vnd.oci.image.config.v1+json"),
        "layers": [
            blob(os.urandom(size), "application/vnd.oci.image.layer.v1.tar+gzip")
            for size in layer_sizes
        ],
    }
    entry = blob(json.dumps(manifest).encode(), OCI_MANIFEST)
    entry["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


def skopeo_round_trip(reg: Registry, layout: Path, out: Path) -> float:
    ref = f"docker://{reg.host}/skopeo/image:v1"
    start = time.perf_counter()
    for args in (
        ["--dest-tls-verify=false", f"oci:{layout}:v1", ref],
        ["--src-tls-verify=false", ref, f"oci:{out}:v1"],
    ):
        done = subprocess.run(
            ["skopeo", "--insecure-policy", "copy", "--preserve-digests", *args],
            capture_output=True, text=True, timeout=DEADLINE_SECONDS,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return elapsed


def run_timed(
    reg: Registry,
    timed: list[tuple[str, Callable[[], None]]],
    size: int,
    others: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """Runs each ``(key, fn)`` once, moving ``size`` bytes: ``<key>_mibps`` and the server's
    ``<key>_cpu_s_per_gib``; for each of ``others`` (label -> pid of another process tree, such
    as the S3 server), ``<key>_<label>_cpu_s_per_gib``."""
    r: dict[str, float] = {}
    gib = size / 1024 / MIB
    others = others or {}
    for key, fn in timed:
        cpu_before = tree_cpu_seconds(reg.proc.pid)
        others_before = {label: tree_cpu_seconds(pid) for label, pid in others.items()}
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        r[key + "_mibps"] = size / MIB / elapsed
        r[key + "_cpu_s_per_gib"] = (tree_cpu_seconds(reg.proc.pid) - cpu_before) / gib
        for label, pid in others.items():
            r[f"{key}_{label}_cpu_s_per_gib"] = (tree_cpu_seconds(pid) - others_before[label]) / gib
        print(f"  {reg.name:12} {key:24} {r[key + '_mibps']:8.0f} MiB/s", flush=True)
    return r


def measure_own(reg: Registry, files: dict[str, Any], scale: int) -> dict[str, float]:
    """This script's measurements of one registry in one round, after `bench compare`'s
    single-client series: curl transfers, the CPU of a small push, RSS growth, skopeo."""
    digest, size = files["digest"], files["size"]
    timed: list[tuple[str, Callable[[], None]]] = [
        (
            "curl_push_monolithic",
            lambda: push_monolithic_curl(reg, files["big"], digest, "push/mono-curl"),
        ),
        (
            "curl_push_chunked",
            lambda: push_chunked_curl(reg, files["pieces"], digest, "push/chunked-curl"),
        ),
        ("curl_get_full", lambda: get_full_curl(reg, "push/mono-curl", digest, size)),
    ]
    r = run_timed(reg, timed, size)
    _, r["small_push_cpu_ms"] = small_pushes_with_cpu(reg, 2000 // scale, 8)
    growth, rate = rss_growth_during(reg, files["blob"], files["rss_size"])
    r["rss_growth_mib"], r["rss_upload_mibps"] = growth / MIB, rate
    print(
        f"  {reg.name:12} RSS growth {r['rss_growth_mib']:.1f} MiB during {files['rss_size'] // MIB} MiB upload",
        flush=True,
    )
    r["skopeo_round_trip_s"] = skopeo_round_trip(
        reg, files["layout"], files["workdir"] / f"out-{reg.name}"
    )
    print(f"  {reg.name:12} skopeo round trip {r['skopeo_round_trip_s']:.2f} s", flush=True)
    return r


def measure_s3(
    reg: Registry, files: dict[str, Any], s3: SeaweedFS, bucket: str, root: str
) -> dict[str, float]:
    """The S3 comparison for one registry storing in ``bucket`` under ``root``."""
    blob, big, digest, size = files["blob"], files["big"], files["digest"], files["size"]
    chunked = "s3/chunked-httpx"
    timed: list[tuple[str, Callable[[], None]]] = [
        ("push_monolithic_curl", lambda: push_monolithic_curl(reg, big, digest, "s3/mono-curl")),
        ("push_chunked_httpx", lambda: push_chunked(reg.target, blob, digest, chunked)),
        ("get_full_curl", lambda: get_full_curl(reg, "s3/mono-curl", digest, size)),
    ]
    r = run_timed(reg, timed, size, {"s3": s3.proc.pid})
    r["get_status"] = first_status(reg, "s3/mono-curl", digest)
    # Where distribution keeps the blob; 1 when this registry put it in the same place.
    hex_digest = digest.removeprefix("sha256:")
    key = f"{root}/docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
    r["blob_at_distribution_key"] = float(key in s3.list_keys(bucket, key))
    return r


def last_lines(text: str, count: int = 6) -> str:
    """The last ``count`` non-blank lines of ``text`` (a server log in an error), indented."""
    return "\n    ".join([line for line in text.splitlines() if line.strip()][-count:])


#: Proxied GETs timed together: one GET of a fresh instance is too short a sample of its CPU
#: (10 ms ticks, first-request costs).
NOREDIRECT_GETS = 4


def measure_s3_noredirect(reg: Registry, files: dict[str, Any], s3: SeaweedFS) -> dict[str, float]:
    """A second instance on the same bucket with redirects off: the blob through the registry,
    ``NOREDIRECT_GETS`` times."""
    digest, size = files["digest"], files["size"]

    def gets() -> None:
        for _ in range(NOREDIRECT_GETS):
            get_full_curl(reg, "s3/mono-curl", digest, size)

    get = [("get_full_curl_noredirect", gets)]
    r = run_timed(reg, get, size * NOREDIRECT_GETS, {"s3": s3.proc.pid})
    r["get_status_noredirect"] = first_status(reg, "s3/mono-curl", digest)
    return r


def compare_s3(
    workdir: Path, scale: int, workers: int, only: str | None, rounds: int, distribution: str,
    native_front: bool | None = None,
) -> dict[str, Any]:  # fmt: skip
    size = 256 * MIB // scale
    big = workdir / "s3-big.bin"
    print(f"generating {size // MIB} MiB of test data ...", flush=True)
    blob = RandomBlob(size, seed=2)
    digest = blob.write(big)
    files: dict[str, Any] = {"blob": blob, "big": big, "digest": digest, "size": size}
    runs: dict[str, list[dict[str, float]]] = {}
    errors: dict[str, str] = {}
    print("starting SeaweedFS ...", flush=True)
    with seaweedfs(workdir) as s3:
        # Alternating, each round on fresh buckets: this VM drifts over minutes.
        for round_ in range(rounds):
            if only != "distribution" and "ocistore" not in errors:
                print(f"ocistore on S3 (round {round_ + 1} of {rounds}):", flush=True)
                bucket = s3.bucket(f"ocistore-bench-{round_}")
                storage = s3.storage_s3(bucket, "/ocistore")
                try:
                    front = {"native_front": native_front}
                    with ocistore_registry(workdir, workers, storage, **front) as reg:
                        r = measure_s3(reg, files, s3, bucket, "ocistore")
                    with ocistore_registry(
                        workdir, workers, storage, redirect=False, **front
                    ) as reg:
                        r.update(measure_s3_noredirect(reg, files, s3))
                    runs.setdefault("ocistore", []).append(r)
                except Exception as e:  # report it and let the distribution half go on
                    errors["ocistore"] = str(e)
                    print(
                        "  ocistore on S3 FAILED; the distribution half goes on. "
                        f"Last lines:\n    {last_lines(str(e))}",
                        flush=True,
                    )
            if only != "ocistore":
                print(f"distribution on S3 (round {round_ + 1} of {rounds}):", flush=True)
                bucket = s3.bucket(f"distribution-bench-{round_}")
                storage = s3.storage_s3(bucket, "/distribution")
                with distribution_registry(
                    workdir, storage, name="distribution-s3", binary=distribution
                ) as reg:
                    r = measure_s3(reg, files, s3, bucket, "distribution")
                # A second instance on the same bucket, redirects off: blobs through the registry.
                with distribution_registry(
                    workdir, storage, redirect=False, name="distribution-s3-noredirect",
                    binary=distribution,
                ) as reg:  # fmt: skip
                    r.update(measure_s3_noredirect(reg, files, s3))
                runs.setdefault("distribution", []).append(r)
    results = {
        name: {key: statistics.median(r[key] for r in measured) for key in measured[0]}
        for name, measured in runs.items()
    }
    return {
        "size_mib": size // MIB,
        "distribution": distribution,
        "results": results,
        "rounds": runs,
        "errors": errors,
    }


# (label, key, better: "higher" or "lower", target ratio ocistore/distribution or None)
S3_ROWS: list[tuple[str, str, str, float | None]] = [
    ("S3: push 256 MiB monolithic, curl -T (MiB/s)", "push_monolithic_curl_mibps", "higher", None),
    ("S3: push 256 MiB chunked 8 MiB, httpx (MiB/s)", "push_chunked_httpx_mibps", "higher", 1.5),
    ("S3: full GET, curl -L, default (MiB/s)", "get_full_curl_mibps", "higher", None),
    ("S3: full GET, redirect disabled (MiB/s)", "get_full_curl_noredirect_mibps", "higher", 1.2),
    ("registry CPU-s/GiB, monolithic push", "push_monolithic_curl_cpu_s_per_gib", "lower", None),
    ("SeaweedFS CPU-s/GiB, monolithic push", "push_monolithic_curl_s3_cpu_s_per_gib", "lower", None),
    ("registry CPU-s/GiB, chunked push", "push_chunked_httpx_cpu_s_per_gib", "lower", None),
    ("SeaweedFS CPU-s/GiB, chunked push", "push_chunked_httpx_s3_cpu_s_per_gib", "lower", None),
    ("registry CPU-s/GiB, GET default", "get_full_curl_cpu_s_per_gib", "lower", None),
    ("SeaweedFS CPU-s/GiB, GET default", "get_full_curl_s3_cpu_s_per_gib", "lower", None),
    ("registry CPU-s/GiB, GET no redirect", "get_full_curl_noredirect_cpu_s_per_gib", "lower", 0.5),
    ("SeaweedFS CPU-s/GiB, GET no redirect", "get_full_curl_noredirect_s3_cpu_s_per_gib", "lower", None),
]  # fmt: skip


def s3_notes(results: dict[str, dict[str, float]]) -> str:
    """What the table's numbers do not say: redirects, and whether the keys match."""
    o, d = results.get("ocistore", {}), results.get("distribution", {})

    def show(value: float | None, yes_no: bool = False) -> str:
        if value is None:
            return "-"
        return ("yes" if value else "NO") if yes_no else f"{value:.0f}"

    return "\n".join(
        [
            f"blob GET status, not following: ocistore {show(o.get('get_status'))}, "
            f"distribution {show(d.get('get_status'))}; with redirect disabled: ocistore "
            f"{show(o.get('get_status_noredirect'))}, "
            f"distribution {show(d.get('get_status_noredirect'))}",
            f"blob stored at distribution's key: ocistore "
            f"{show(o.get('blob_at_distribution_key'), True)}, "
            f"distribution {show(d.get('blob_at_distribution_key'), True)}",
        ]
    )


def table(
    results: dict[str, dict[str, float]], rows: list[tuple[str, str, str, float | None]]
) -> str:
    o, d = results.get("ocistore", {}), results.get("distribution", {})

    def cell(value: float | None, width: int) -> str:
        return f"{value:{width}.2f}" if value is not None else "-".rjust(width)

    width = max(44, *(len(label) + 2 for label, _, _, _ in rows))
    lines = [f"{'':{width}}{'ocistore':>12}{'distribution':>14}{'ratio':>9}  target"]
    for label, key, better, target in rows:
        ov, dv = o.get(key), d.get(key)
        ratio = ov / dv if ov is not None and dv else None
        goal = ""
        if target is not None and ratio is not None:
            met = ratio >= target if better == "higher" else ratio <= target
            sign = ">=" if better == "higher" else "<="
            goal = f"{sign} {target:.2f}  {'met' if met else 'MISSED'}"
        lines.append(f"{label:{width}}{cell(ov, 12)}{cell(dv, 14)}{cell(ratio, 9)}  {goal}")
    if "rss_growth_mib" in o:
        verdict = "met" if o["rss_growth_mib"] <= 64 else "MISSED"
        lines.append(f"{'ocistore RSS growth <= 64 MiB':{width}}{verdict:>12}")
    return "\n".join(lines)


def compare_filesystem(
    workdir: Path, scale: int, workers: int, rounds: int, native_front: bool | None,
    zot: str | None, with_282: bool,
) -> dict[str, Any]:  # fmt: skip
    """The filesystem comparison (the default): every registry started once, `bench compare`
    over them with this script's own measurements added to each round."""
    size = 1024 * MIB // scale
    big = workdir / "big.bin"
    print(f"generating {size // MIB} MiB of test data ...", flush=True)
    blob = RandomBlob(size, seed=1)
    digest = blob.write(big)
    pieces = []
    for i, offset in enumerate(range(0, size, 8 * MIB)):
        piece = workdir / f"piece-{i:04d}"
        piece.write_bytes(b"".join(blob.chunks(offset, 8 * MIB)))
        pieces.append(piece)
    layout = workdir / "layout"
    make_layout(layout, [s // scale for s in (128 * MIB, 64 * MIB, 32 * MIB, 24 * MIB, 8 * MIB)])
    files = {"blob": blob, "big": big, "digest": digest, "size": size, "pieces": pieces,
             "layout": layout, "workdir": workdir, "rss_size": 4096 * MIB // scale}  # fmt: skip
    with ExitStack() as servers:
        registries = [
            servers.enter_context(ocistore_registry(workdir, workers, native_front=native_front)),
            servers.enter_context(
                distribution_registry(workdir, name="distribution3", binary=str(DISTRIBUTION3))
            ),
        ]
        if zot is not None:
            registries.append(servers.enter_context(zot_registry(workdir, zot)))
        if with_282:
            registries.append(
                servers.enter_context(distribution_registry(workdir, name="distribution2.8.2"))
            )
        by_name = {r.name: r for r in registries}
        return compare(
            [Peer(r.name, r.url, r.proc.pid) for r in registries],
            rounds=rounds,
            single=(size, 200 // scale),
            time_limit=DEADLINE_SECONDS,
            say=lambda line: print(line, flush=True),
            extra=lambda peer: measure_own(by_name[peer.name], files, scale),
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="sizes and counts divided by 8")
    parser.add_argument("--json", help="write the raw figures here")
    parser.add_argument("--plot", help="draw the comparison into this PNG (matplotlib)")
    parser.add_argument("--workers", type=int, default=2, help="ocistore worker processes")
    parser.add_argument("--dir", help="work directory (default: ./.bench-tmp)")
    parser.add_argument("--only", choices=["ocistore", "distribution"], help="--s3: one of them")
    parser.add_argument("--zot", help="a zot binary (built from its source); omitted: no zot")
    parser.add_argument(
        "--with-2.8.2", dest="with_282", action="store_true",
        help="Debian's docker-registry (distribution 2.8.2) too",
    )  # fmt: skip
    parser.add_argument("--s3", action="store_true", help="compare on S3 storage (SeaweedFS)")
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="alternating rounds; the table shows medians (default 3)",
    )  # fmt: skip
    parser.add_argument(
        "--distribution", default=str(DISTRIBUTION3),
        help="--s3: the distribution build to compare with (default: distribution 3.1.1 as "
        "`make peers` installs it)",
    )  # fmt: skip
    parser.add_argument(
        "--native-front", action=argparse.BooleanOptionalAction, default=None,
        help="ocistore with or without its native front (default: as serve decides, with it)",
    )  # fmt: skip
    args = parser.parse_args()
    scale = 8 if args.quick else 1
    base = Path(args.dir or ".bench-tmp")
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        workdir = Path(tmp)
        if args.s3:
            s3_section = compare_s3(
                workdir, scale, args.workers, args.only, args.rounds, args.distribution,
                args.native_front,
            )  # fmt: skip
            print()
            print(table(s3_section["results"], S3_ROWS))
            print(s3_notes(s3_section["results"]))
            for name, error in s3_section["errors"].items():
                print(f"{name}: not measured: {last_lines(error, 2)}")
            if args.json:
                document = {"quick": args.quick, "workers": args.workers, "s3": s3_section,
                            "native_front": args.native_front is not False}  # fmt: skip
                Path(args.json).write_text(json.dumps(document, indent=2))
            return 0
        document = compare_filesystem(
            workdir, scale, args.workers, args.rounds, args.native_front, args.zot, args.with_282
        )
    print()
    print(f"medians of {args.rounds} rounds, the order rotated each round")
    print(compare_table(document))
    if args.json:
        document.update(quick=args.quick, workers=args.workers,
                        native_front=args.native_front is not False)  # fmt: skip
        # Written before the plot, so a plotting error loses nothing.
        Path(args.json).write_text(json.dumps(document, indent=2))
    if args.plot:
        compare_plot(document, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
