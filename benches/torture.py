"""Crash torture: SIGKILL a pushing process at random moments, again and again, then check.

    python benches/torture.py [--kills 200] [--mode api|serve|both] [--seed N] [--dir DIR]

``api``: a child process pushes images through the Python API (uploads written in pieces with
checkpoints, commits, links, manifests, tags, and now and then a GC pass and an upload purge)
and is killed with SIGKILL after a random delay. ``serve``: ``ocistore serve`` is killed while a
client pushes through it in 1 MiB PATCHes; it is restarted and the client resumes each upload from
the ``Range`` the server reports. After every kill, for every upload the child left, the upload
must resume and, given the rest of its bytes, commit to the right digest (or be absent); at the
end every blob's bytes must hash to its name, no tag may point at an incomplete image, and
``fsck`` must report nothing. The test suite runs a short version (``tests/test_torture.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def stream(seed: int, size: int) -> bytes:
    """The bytes of a blob, from its seed and size: anyone can regenerate them."""
    rng = random.Random(seed)
    return rng.randbytes(size)


CHILD = textwrap.dedent(
    """
    import json, random, sys
    from datetime import timedelta
    from ocistore import Registry, unmarshal_manifest
    from ocistore.storage import collect_garbage, purge_uploads
    root, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    registry = Registry(root)
    def stream(s, n):
        return random.Random(s).randbytes(n)
    for image in range(1000):
        repo = registry.repository(f"torture/app{rng.randrange(3)}")
        layers = []
        for _ in range(rng.randrange(1, 4)):
            blob_seed = rng.randrange(10**9)
            size = rng.choice([0, 1, 4096, 300_000, 3_000_000, 20_000_000, 40_000_000])
            data = stream(blob_seed, size)
            w = repo.blobs().create()
            # Tell the checker what this upload should become, before any byte is written.
            w_dir = registry.repositories_dir / repo.name / "_uploads" / w.id
            (w_dir / "torture-intent.tmp").write_text(json.dumps([blob_seed, size]))
            (w_dir / "torture-intent.tmp").rename(w_dir / "torture-intent")
            at = 0
            while at < size:
                step = rng.choice([1000, 65536, 1 << 20, 4 << 20])
                w.write(data[at:at + step]); at += step
                if rng.random() < 0.3:
                    w.checkpoint(durable=rng.random() < 0.5)
            desc = w.commit("sha256:" + __import__("hashlib").sha256(data).hexdigest())
            layers.append({"mediaType": "application/octet-stream", "digest": str(desc.digest),
                           "size": size})
        config = repo.blobs().put("application/json", json.dumps({"image": image}).encode())
        body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": str(config.digest), "size": config.size},
                "layers": layers}
        manifest, _ = unmarshal_manifest(None, json.dumps(body).encode())
        repo.manifests().put(manifest, tag=f"t{rng.randrange(5)}")
        if rng.random() < 0.1:
            collect_garbage(registry, delete_untagged=rng.random() < 0.5)
        if rng.random() < 0.05:
            purge_uploads(registry, older_than=timedelta(hours=1))
    """
)


def check_uploads(root: Path) -> tuple[int, int]:
    """Finishes every upload a killed child left; returns (finished, absent-or-empty)."""
    from ocistore import Registry

    registry = Registry(root)
    finished = skipped = 0
    for pending in sorted(registry.repositories_dir.rglob("torture-intent.tmp")):
        # Killed before the intent was in place, so before any byte of the blob was written.
        data = pending.parent / "data"
        if data.exists() and data.stat().st_size:
            raise AssertionError(f"{pending.parent}: bytes written before the intent")
        skipped += 1
    for intent in sorted(registry.repositories_dir.rglob("torture-intent")):
        upload = intent.parent
        name = upload.parent.parent.relative_to(registry.repositories_dir).as_posix()
        blob_seed, size = json.loads(intent.read_text())
        if not (upload / "data").exists():
            skipped += 1  # killed between creating the upload and its data file
            continue
        data = stream(blob_seed, size)
        writer = registry.repository(name).blobs().resume(upload.name)
        if writer.size > size:
            raise AssertionError(f"{upload}: {writer.size} bytes, more than the {size} intended")
        on_disk = (upload / "data").read_bytes()
        if on_disk != data[: len(on_disk)]:
            raise AssertionError(f"{upload}: the data on disk is not a prefix of the stream")
        writer.write(data[writer.size :])
        writer.commit("sha256:" + hashlib.sha256(data).hexdigest())
        finished += 1
    return finished, skipped


def check_store(root: Path) -> None:
    from ocistore import Registry
    from ocistore.storage.fsck import fsck

    report = fsck(Registry(root))
    if not report.clean:
        raise AssertionError("fsck: " + "; ".join(map(str, report.problems)))


def torture_api(root: Path, kills: int, seed: int, log: bool) -> dict[str, int]:
    rng = random.Random(seed)
    totals = {"kills": 0, "uploads_finished": 0, "uploads_without_data": 0}
    for i in range(kills):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(rng.randrange(10**9))],
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.05, 1.2))
        if child.poll() is not None:
            raise AssertionError(
                f"the pusher died on its own: {child.stderr.read().decode() if child.stderr else ''}"
            )
        child.send_signal(signal.SIGKILL)
        child.wait()
        totals["kills"] += 1
        finished, skipped = check_uploads(root)
        totals["uploads_finished"] += finished
        totals["uploads_without_data"] += skipped
        # Interrupted uploads were finished above; what is left of them is purgeable.
        from datetime import timedelta

        from ocistore import Registry
        from ocistore.storage import purge_uploads

        purge_uploads(Registry(root), older_than=timedelta(0))
        if (i + 1) % 10 == 0:
            check_store(root)
        if log:
            print(
                f"  api kill {i + 1}/{kills}: {finished} interrupted uploads finished", flush=True
            )
    check_store(root)
    return totals


def finish_upload(client: httpx.Client, location: str, data: bytes) -> str:
    """Resumes an upload from the Range the server reports and commits it."""
    status = client.get(location)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if status.status_code == 404:
        name = location.split("/blobs/uploads/")[0].removeprefix("/v2/")
        if client.head(f"/v2/{name}/blobs/{digest}").status_code == 200:
            return "committed"  # committed; the server was killed before the client heard
        raise AssertionError(f"upload gone and its blob not in the repository: {location}")
    if status.status_code != 204:
        raise AssertionError(f"upload lost after a kill: {location} {status.status_code}")
    end = int(status.headers["range"].split("-")[1])
    # "0-0" means no byte or one byte (the spec's Range cannot tell): try both.
    for at in [0, 1] if end == 0 else [end + 1]:
        if at < len(data):
            r = client.patch(
                location, content=data[at:], headers={"Content-Range": f"{at}-{len(data) - 1}"}
            )
            if r.status_code == 416:
                continue
            if r.status_code != 202:
                raise AssertionError(f"resumed PATCH refused: {r.status_code} {r.text}")
        r = client.put(location, params={"digest": digest})
        if r.status_code != 201:
            raise AssertionError(f"resumed upload refused: {r.status_code} {r.text}")
        return "resumed"
    raise AssertionError(f"no offset continues {location}")


def torture_serve(root: Path, kills: int, seed: int, log: bool) -> dict[str, int]:
    """Kills the server under a pushing client; the client resumes from the reported Range."""
    import threading

    sys.path.insert(0, str(HERE.parent))
    from tests.servers import ocistore_server

    rng = random.Random(seed)
    totals = {"server_kills": 0, "blobs_pushed": 0, "resumed": 0, "committed": 0}
    pending: list[tuple[int, int, str]] = []  # (seed, size, location) of unfinished uploads
    for i in range(kills + 1):
        with ocistore_server(root) as server:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for blob_seed, size, location in pending:
                    totals[finish_upload(client, location, stream(blob_seed, size))] += 1
                pending.clear()
            if i == kills:
                break

            def push_until_killed(url: str = server.url) -> None:
                with httpx.Client(base_url=url, timeout=30) as client:
                    while True:
                        blob_seed, size = rng.randrange(10**9), rng.choice([100_000, 3_000_000])
                        data = stream(blob_seed, size)
                        location = client.post("/v2/torture/served/blobs/uploads/").headers[
                            "location"
                        ]
                        pending.append((blob_seed, size, location))
                        for at in range(0, size, 1 << 20):
                            piece = data[at : at + (1 << 20)]
                            span = f"{at}-{at + len(piece) - 1}"
                            client.patch(location, content=piece, headers={"Content-Range": span})
                        digest = "sha256:" + hashlib.sha256(data).hexdigest()
                        if client.put(location, params={"digest": digest}).status_code == 201:
                            pending.pop()
                            totals["blobs_pushed"] += 1

            pusher = threading.Thread(target=_swallow, args=(push_until_killed,))
            pusher.start()
            time.sleep(rng.uniform(0.1, 1.0))
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
            pusher.join(60)
            totals["server_kills"] += 1
            if log:
                print(f"  serve kill {i + 1}/{kills}: {len(pending)} uploads to resume", flush=True)
    check_store(root)
    return totals


def _swallow(fn: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.HTTPError, OSError, KeyError):
        fn()  # until the server is killed under the client


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--mode", choices=["api", "serve", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="work directory (default: a temporary directory)")
    args = parser.parse_args()
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ocistore-torture-"))
    results = {}
    started = time.monotonic()
    if args.mode in ("api", "both"):
        results["api"] = torture_api(base / "api", args.kills, args.seed, log=True)
    if args.mode in ("serve", "both"):
        serve_kills = args.kills if args.mode == "serve" else max(1, args.kills // 4)
        results["serve"] = torture_serve(base / "serve", serve_kills, args.seed, log=True)
    print(json.dumps({"seconds": round(time.monotonic() - started), **results}, indent=2))
    print("clean: every blob hashes to its name, every interrupted upload resumed, fsck clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
